-- create: a new session. KEYS[4] the session hash, KEYS[5] the user's token set.
-- ARGV[6] token  ARGV[7] id  ARGV[8] ip  ARGV[9] ttl  ARGV[10] "1" = no_resave
-- ARGV[11] max sessions per id (0 = no cap)  ARGV[12] max bytes  ARGV[13] max keys  ARGV[14..] d
local key, user_key = KEYS[4], KEYS[5]
local token, id, ip, ttl = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local no_resave, max_sessions = ARGV[10] == '1', tonumber(ARGV[11])
local now = now_seconds()

if redis.call('EXISTS', key) == 1 then
  return redis.error_reply('RSEXISTS token already in use')
end
local d, count = merge(nil, 14)
local refused = refuse_data(d, count, tonumber(ARGV[12]), tonumber(ARGV[13]))
if refused then return redis.error_reply(refused) end

redis.call('HSET', key, 'id', id, 'r', 1, 'w', 1, 'ip', ip, 'la', now, 'ttl', ttl)
if d then redis.call('HSET', key, 'd', d) end
if no_resave then redis.call('HSET', key, 'no_resave', 1) end
redis.call('SADD', user_key, token)
local s = {key = key, id = id, ttl = ttl, la = now, idle = 0, no_resave = no_resave, new = true}
touch(s, token, now)

-- Evict the least recently active sessions of this id beyond the cap, atomically.
local evicted = 0
if max_sessions > 0 then
  local tokens = redis.call('SMEMBERS', user_key)
  local excess = #tokens - max_sessions
  if excess > 0 then
    local others = {}
    for _, t in ipairs(tokens) do
      if t ~= token then
        local score = tonumber(redis.call('ZSCORE', SESSIONS_KEY, t .. ':' .. id)) or -1
        others[#others + 1] = {t, score}
      end
    end
    table.sort(others, function(a, b) return a[2] < b[2] end)
    for n = 1, excess do
      kill(others[n][1], id)
      evicted = evicted + 1
    end
  end
end
return evicted

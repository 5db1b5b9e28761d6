-- create: a new session. KEYS[4] the session hash, KEYS[5] the user's token set.
-- ARGV[6] token  ARGV[7] id  ARGV[8] ip  ARGV[9] ttl  ARGV[10] "1" = no_resave
-- ARGV[11] max sessions per id (0 = no cap)  ARGV[12] max bytes  ARGV[13] max keys  ARGV[14..] d
-- Every check (and the choice of sessions to evict) comes before the first write.
local key, user_key = KEYS[4], KEYS[5]
local token, id, ip = ARGV[6], ARGV[7], ARGV[8]
local ttl, bad = checked_ttl(ARGV[9])
if not ttl then return bad end
local no_resave, max_sessions = ARGV[10] == '1', tonumber(ARGV[11])
local now = now_seconds()

if redis.call('EXISTS', key) == 1 then
  return redis.error_reply('RSEXISTS token already in use')
end
local d, count = merge(nil, 14)
local refused = refuse_data(d, count, tonumber(ARGV[12]), tonumber(ARGV[13]))
if refused then return redis.error_reply(refused) end

-- With a cap: the id's expired sessions go (they must not count), then the least recently
-- active live ones beyond the cap, the new session included in the count.
local doomed, evicted = {}, 0
if max_sessions > 0 then
  local live_sessions = {}
  for _, t in ipairs(redis.call('SMEMBERS', user_key)) do
    local other = load(SESSION_PREFIX .. t, now)
    if not other or other.expired then
      doomed[#doomed + 1] = t
    else
      local score = tonumber(redis.call('ZSCORE', SESSIONS_KEY, t .. ':' .. id)) or other.la
      live_sessions[#live_sessions + 1] = {t, score}
    end
  end
  local excess = #live_sessions + 1 - max_sessions
  if excess > 0 then
    table.sort(live_sessions, function(a, b) return a[2] < b[2] end)
    for n = 1, excess do
      doomed[#doomed + 1] = live_sessions[n][1]
      evicted = evicted + 1
    end
  end
end
for _, t in ipairs(doomed) do kill(t, id) end

store({key = key, id = id, ip = ip, ttl = ttl, d = d, no_resave = no_resave}, token, now)
return evicted

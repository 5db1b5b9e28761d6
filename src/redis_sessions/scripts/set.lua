-- set: merge encoded changes into one session's data, atomically. KEYS[4] the session hash.
-- ARGV[6] token  ARGV[7] max bytes  ARGV[8] max keys  ARGV[9..] pairs (JSON key, JSON value | "")
-- A missing or expired session is not recreated: the reply is nil.
local token = ARGV[6]
local now = now_seconds()
local s = live(KEYS[4], token, now)
if not s then return false end
local d, count = merge(s.d, 9)
local refused = refuse_data(d, count, tonumber(ARGV[7]), tonumber(ARGV[8]))
if refused then return redis.error_reply(refused) end
if d then
  redis.call('HSET', s.key, 'd', d)
else
  redis.call('HDEL', s.key, 'd')
end
s.d = d
s.w = redis.call('HINCRBY', s.key, 'w', 1)
touch(s, token, now)
publish(token)
return reply(s)

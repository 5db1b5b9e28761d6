-- get: read one session and record the activity. KEYS[4] the session hash.  ARGV[6] token
-- An expired session is removed on the spot (with its index entries) and reads as absent.
local token = ARGV[6]
local now = now_seconds()
local s = load(KEYS[4], now)
if not s then return false end
if s.expired then
  kill(token, s.id)
  return false
end
redis.call('HINCRBY', s.key, 'r', 1)
touch(s, token, now)
return reply(s)

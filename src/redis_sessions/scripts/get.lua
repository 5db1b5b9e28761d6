-- get: read one session and record the activity. KEYS[4] the session hash.  ARGV[6] token
local token = ARGV[6]
local now = now_seconds()
local s = live(KEYS[4], token, now)
if not s then return false end
redis.call('HINCRBY', s.key, 'r', 1)
touch(s, token, now)
return reply(s)

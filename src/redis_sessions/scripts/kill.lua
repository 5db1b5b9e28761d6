-- kill: remove one session. KEYS[4] the session hash.
-- ARGV[6] token  ARGV[7] the id when known ("" otherwise)  ARGV[8] "1" = only if expired (wipe)
-- With ARGV[8] = "1" a session that is still alive is kept and its expiry score corrected.
local token, known_id, only_expired = ARGV[6], ARGV[7], ARGV[8] == '1'
local now = now_seconds()
local s = load(KEYS[4], now)
if only_expired and s and not s.expired then
  redis.call('ZADD', EXPIRY_KEY, s.expires, APP .. ':' .. token .. ':' .. s.id)
  return 0
end
local id = redis.call('HGET', KEYS[4], 'id') or known_id
if id == '' then return 0 end
return kill(token, id)

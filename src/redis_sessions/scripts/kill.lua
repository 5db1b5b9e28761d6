-- kill: remove one session. KEYS[4] the session hash  KEYS[5] (optional) its anonymous key
-- ARGV[6] token  ARGV[7] the id when known ("" otherwise)  ARGV[8] "1" = only if expired (wipe)
-- With ARGV[8] = "1" a session that is still alive is kept and its expiry score corrected, and
-- an index entry whose hash Redis already expired counts as one expired session removed.
local token, known_id, only_expired = ARGV[6], ARGV[7], ARGV[8] == '1'
local now = now_seconds()
local s = load(KEYS[4], now)
if only_expired and s and not s.expired then
  redis.call('ZADD', EXPIRY_KEY, s.expires, APP .. ':' .. token .. ':' .. s.id)
  return 0
end
local id = (s and s.id) or redis.call('HGET', KEYS[4], 'id') or known_id
if id == '' then
  if KEYS[5] then return redis.call('DEL', KEYS[5]) end
  return 0
end
local n, indexed = kill(token, id)
if only_expired and n == 0 then return indexed end
return n

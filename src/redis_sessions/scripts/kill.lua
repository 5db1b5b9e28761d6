-- kill: remove one session. KEYS[4] the session hash  KEYS[5] (optional) its anonymous key
-- ARGV[6] token  ARGV[7] the id when known ("" otherwise)  ARGV[8] "1" = only if expired (wipe)
-- With ARGV[8] = "1" a session that is still alive is kept and its expiry score corrected, and
-- an index entry whose hash Redis already expired counts as one expired session removed.
local token, known_id = ARGV[6], ARGV[7]
if ARGV[8] == '1' then return wipe_one(KEYS[4], token, known_id, now_seconds()) end
local id = redis.call('HGET', KEYS[4], 'id') or known_id
if id == '' then
  if KEYS[5] then return redis.call('DEL', KEYS[5]) end
  return 0
end
return (kill(token, id))

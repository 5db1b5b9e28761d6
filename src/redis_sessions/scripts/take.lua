-- take (cluster layout), the first of a log-in's two steps when the old token lives in another
-- slot than the user's: the old session ends here and its data is handed to the client, which
-- passes it to rotate.lua in the user's slot. KEYS[4] old hash  KEYS[5] old anonymous session
-- KEYS[6] old rotation mark.  ARGV[6] old token  ARGV[7] mark lifetime
-- An anonymous session's data is returned (false when empty or when there was none); another
-- user's session is killed with its data (as rotate.lua does). The mark ("": a log-in) makes a
-- request still in flight with the old token save nothing rather than write into a dead key.
local old = ARGV[6]
local now = now_seconds()
local s = live(KEYS[4], old, now)
local data, ttl = nil, nil
if s then
  kill(old, s.id)
else
  data, ttl = load_anonymous(KEYS[5])
  if ttl then redis.call('DEL', KEYS[5]) end
end
if s or ttl then redis.call('SET', KEYS[6], '', 'EX', tonumber(ARGV[7])) end
return data or false

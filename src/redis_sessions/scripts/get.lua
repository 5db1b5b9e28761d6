-- get: read one session and record the activity.
-- KEYS[4] the session hash  KEYS[5] the anonymous session  KEYS[6] the rotation mark
-- ARGV[6] token  ARGV[7] "1" = anonymous sessions too ("0": user sessions only, as Node's get)
-- Reply: a user session; an anonymous one (empty id; its Redis TTL renewed); ROTATED for a
-- token that upgrade/regenerate replaced moments ago; false for nothing.
local token, anonymous = ARGV[6], ARGV[7] == '1'
local now = now_seconds()
local s = live(KEYS[4], token, now)
if s then
  touch(s, token, now, {'r', decimal(s.r + 1)})  -- the reply keeps r as read, as Node's does
  return reply(s)
end
if anonymous then
  local d, ttl = load_anonymous(KEYS[5])
  if ttl then
    redis.call('EXPIRE', KEYS[5], decimal(ttl))
    return anonymous_reply(d, ttl)
  end
end
if redis.call('EXISTS', KEYS[6]) == 1 then return ROTATED end
return false

-- get: read one session and record the activity.
-- KEYS[4] the session hash  KEYS[5] the anonymous session  KEYS[6] the rotation mark
-- ARGV[6] token  ARGV[7] "1" = anonymous sessions too ("0": user sessions only, as Node's get)
-- ARGV[8] the activity resolution in seconds (0 or 1: Node's rule; _lib.lua's fresh_limit)
-- Reply: a user session; an anonymous one (empty id; its Redis TTL renewed when it was idle
-- beyond the resolution); ROTATED for a token that upgrade/regenerate replaced moments ago;
-- false for nothing.
local token, anonymous, resolution = ARGV[6], ARGV[7] == '1', tonumber(ARGV[8])
local now = now_seconds()
local s = live(KEYS[4], token, now, resolution)
local r = s and tonumber(s.v[2])
if r then
  -- r counts the loads that ran this function; the reply keeps r as read, as Node's does
  touch(s, token, now, {'r', decimal(r + 1)}, resolution, 0)
  return reply(s)
end
if anonymous then
  local d, ttl, ttl_text, la = load_anonymous(KEYS[5])
  if ttl then
    if not la or now - la > fresh_limit(ttl, false, resolution) then
      redis.call('HSET', KEYS[5], 'la', NOW)
      redis.call('EXPIRE', KEYS[5], ttl_text)
    end
    return anonymous_reply(d, ttl_text)
  end
end
if redis.call('EXISTS', KEYS[6]) == 1 then return ROTATED end
return false

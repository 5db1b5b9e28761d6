-- soid: the live sessions of one id, read without recording activity. KEYS[4] the token set.
-- Returns a flat list: token, session reply, token, session reply, ...
local now = now_seconds()
local out = {}
for _, token in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local s = load(SESSION_PREFIX .. token, now)
  if s and not s.expired then
    out[#out + 1] = token
    out[#out + 1] = reply(s)
  end
end
return out

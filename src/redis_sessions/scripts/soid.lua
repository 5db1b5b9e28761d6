-- soid: the live sessions of one id, read without recording activity. KEYS[4] the token set.
-- Returns a flat list: token, session reply, token, session reply, ...
local now = now_seconds()
local out = {}
for _, token in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  collect(out, token, now)
end
return out

-- soapp: the live sessions of the app active within the last ARGV[6] seconds, newest first,
-- read without recording activity. Returns a flat list: token, session reply, ...
local now = now_seconds()
local out = {}
local members = redis.call('ZREVRANGEBYSCORE', SESSIONS_KEY, '+inf', now - tonumber(ARGV[6]))
for _, member in ipairs(members) do
  local token = split_member(member)
  if token then collect(out, token, now) end
end
return out

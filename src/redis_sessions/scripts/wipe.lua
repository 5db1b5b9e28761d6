-- wipe (cluster layout): remove up to ARGV[6] expired sessions of this bucket's expiry index,
-- each re-checked as kill.lua does for the wiper. Returns {sessions removed, members seen}.
local now = now_seconds()
local members = redis.call('ZRANGEBYSCORE', EXPIRY_KEY, '-inf', '(' .. now, 'LIMIT', 0,
                           tonumber(ARGV[6]))
local n, prefix = 0, APP .. ':'
for _, member in ipairs(members) do
  local token, id = nil, nil
  if string.sub(member, 1, #prefix) == prefix then
    token, id = split_member(string.sub(member, #prefix + 1))
  end
  if token then
    n = n + wipe_one(SESSION_PREFIX .. token, token, id, now)
  else
    redis.call('ZREM', EXPIRY_KEY, member)
  end
end
return {n, #members}

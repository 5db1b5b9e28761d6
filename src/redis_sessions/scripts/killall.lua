-- killall: remove up to ARGV[6] sessions of the app (the caller repeats until none are left).
-- Returns {sessions deleted, members processed}.
local members = redis.call('ZRANGE', SESSIONS_KEY, 0, tonumber(ARGV[6]) - 1)
local n = 0
for _, member in ipairs(members) do
  local token, id = split_member(member)
  if token then
    n = n + kill(token, id)
  else
    redis.call('ZREM', SESSIONS_KEY, member)
  end
end
return {n, #members}

-- killsoid: remove the sessions of one id, at most ARGV[7] of them per call (the caller repeats
-- while some are left, so a user with thousands of sessions never blocks Redis for long).
-- KEYS[4] the user's token set.  ARGV[6] id  ARGV[7] most sessions handled by this call
-- Returns {sessions deleted, tokens left in the set}.
local id = ARGV[6]
local n = 0
for _, token in ipairs(redis.call('SRANDMEMBER', KEYS[4], tonumber(ARGV[7]))) do
  n = n + kill(token, id)
end
return {n, redis.call('SCARD', KEYS[4])}

-- killsoid: remove the sessions of one id, at most ARGV[7] of them per call (the caller repeats
-- while some are left, so a user with thousands of sessions never blocks Redis for long).
-- KEYS[4] the user's token set.  ARGV[6] id  ARGV[7] most sessions handled by this call
-- ARGV[8] a token to keep ("" = none): then every other session of the id goes in this one call
-- ("log out other devices", atomic: a device signing in meanwhile is either ended or still
-- listed afterwards), and only when that token is a live session of the id (a device that was
-- logged out cannot log the others out).
-- Returns {sessions deleted, tokens left in the set}.
local id, keep = ARGV[6], ARGV[8]
local n = 0
if keep ~= '' then
  local s = redis.call('SISMEMBER', KEYS[4], keep) == 1 and load(SESSION_PREFIX .. keep, now_seconds())
  if s and not s.expired and s.id == id then
    for _, token in ipairs(redis.call('SMEMBERS', KEYS[4])) do
      if token ~= keep then n = n + kill(token, id) end
    end
  end
  return {n, redis.call('SCARD', KEYS[4])}
end
for _, token in ipairs(redis.call('SRANDMEMBER', KEYS[4], tonumber(ARGV[7]))) do
  n = n + kill(token, id)
end
return {n, redis.call('SCARD', KEYS[4])}

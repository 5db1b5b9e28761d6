-- killsoid: remove every session of one id. KEYS[4] the user's token set.  ARGV[6] id
local id = ARGV[6]
local n = 0
for _, token in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  n = n + kill(token, id)
end
return n

-- create_anonymous: store a visitor's first data. KEYS[4] the anonymous session.
-- ARGV[6] ttl  ARGV[7] max bytes  ARGV[8] max keys  ARGV[9..] d (pairs: JSON key, JSON value)
local ttl, bad = checked_ttl(ARGV[6])
if not ttl then return bad end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return redis.error_reply('RSEXISTS token already in use')
end
local d, count = merge(nil, 9)
local refused = refuse_data(d, count, tonumber(ARGV[7]), tonumber(ARGV[8]))
if refused then return redis.error_reply(refused) end
now_seconds()  -- the anonymous session's la
return anonymous_reply(d, store_anonymous(KEYS[4], d, ttl))

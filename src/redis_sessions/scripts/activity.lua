-- activity: how many distinct ids were active within the last ARGV[6] seconds.
return redis.call('ZCOUNT', USERS_KEY, now_seconds() - tonumber(ARGV[6]), '+inf')

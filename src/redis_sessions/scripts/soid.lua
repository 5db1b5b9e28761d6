-- soid: one page of the live sessions of one id, read without recording activity.
-- KEYS[4] the token set.  ARGV[6] SSCAN cursor ("0" = start)  ARGV[7] about how many per page
-- Returns {next cursor ("0" = done), token, session reply, token, session reply, ...}; a token
-- may come twice across pages (SSCAN's rule): the caller drops repeats.
local now = now_seconds()
local scan = redis.call('SSCAN', KEYS[4], ARGV[6], 'COUNT', tonumber(ARGV[7]))
local out = {scan[1]}
for _, token in ipairs(scan[2]) do
  collect(out, token, now, nil, true)
end
return out

-- killdevice: end the session of one id whose device handle is ARGV[8], looked for in one page
-- of the id's token set (the caller goes on with the next cursor until it is found or the scan
-- is over). With ARGV[10] (the requesting session's token, "" = none) nothing is ended unless
-- that token is a live session of the id: only a signed-in device of the user ends its devices,
-- and a handle of another user's session is never found in this user's set.
-- KEYS[4] the token set.  ARGV[6] id  ARGV[7] SSCAN cursor ("0" = start)  ARGV[8] handle
-- ARGV[9] about how many per page  ARGV[10] the requesting session's token ("" = none)
-- Returns {1 = ended (2 = it was the requesting session itself), 0 = not in this page, -1 = the
-- requester is not a live session of the id; the next cursor ("0" = done)}.
local id, handle, by = ARGV[6], ARGV[8], ARGV[10]
local now = now_seconds()
if by ~= '' then
  local s = redis.call('SISMEMBER', KEYS[4], by) == 1 and load(SESSION_PREFIX .. by, now)
  if not (s and not s.expired and s.id == id) then return {-1, '0'} end
end
local scan = redis.call('SSCAN', KEYS[4], ARGV[7], 'COUNT', tonumber(ARGV[9]))
for _, token in ipairs(scan[2]) do
  local key = SESSION_PREFIX .. token
  local s = load(key, now)
  if s and not s.expired and s.id == id and device(key, token).dv == handle then
    kill(token, id)
    return {token == by and 2 or 1, '0'}
  end
end
return {0, scan[1]}

-- devices: one page of the live sessions of one id as devices, read without recording activity.
-- KEYS[4] the token set.  ARGV[6] SSCAN cursor ("0" = start)  ARGV[7] about how many per page
-- ARGV[8] the requesting session's token ("" = none): its device is marked current
-- ARGV[9] "1" = only that session's device (when it is a live session of this id)
-- Returns {next cursor ("0" = done), then per device: handle, current (1 or 0), ip, last
-- activity (unix s), sign-in time (unix s, or false), User-Agent (or false)}. Tokens never
-- leave Redis here: a device is named by its handle only. A device may come twice across pages
-- (SSCAN's rule): the caller drops repeats.
local now = now_seconds()
local current = ARGV[8]
local tokens, cursor
if ARGV[9] == '1' then
  tokens, cursor = {}, '0'
  if current ~= '' and redis.call('SISMEMBER', KEYS[4], current) == 1 then tokens[1] = current end
else
  local scan = redis.call('SSCAN', KEYS[4], ARGV[6], 'COUNT', tonumber(ARGV[7]))
  tokens, cursor = scan[2], scan[1]
end
local out = {cursor}
for _, token in ipairs(tokens) do
  local key = SESSION_PREFIX .. token
  local s = load(key, now)
  if s and not s.expired then
    local dev = device(key, token)
    out[#out + 1] = dev.dv
    out[#out + 1] = token == current and 1 or 0
    out[#out + 1] = s.ip or false
    out[#out + 1] = s.la
    out[#out + 1] = dev.si or false
    out[#out + 1] = dev.ua or false
  end
end
return out

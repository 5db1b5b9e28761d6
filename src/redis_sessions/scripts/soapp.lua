-- soapp: one page of the live sessions of the app active within the last ARGV[6] seconds,
-- newest first, read without recording activity.
-- ARGV[6] dt  ARGV[7] lowest score ("" = now - dt: the first page fixes it)  ARGV[8] score and
-- ARGV[9] member of the last entry of the previous page ("" = start)  ARGV[10] page size
-- Returns {lowest score, next score, next member, token, session reply, score, ...}; next
-- score is false on the last page. The position is found again from the last entry (its rank,
-- O(log n)); when that entry moved or went, from its score, skipping what was already listed.
local now = now_seconds()
local floor = tonumber(ARGV[7]) or (now - tonumber(ARGV[6]))
local after_score, after_member, page = tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
local start = 0
if after_score then
  local score = tonumber(redis.call('ZSCORE', SESSIONS_KEY, after_member))
  if score == after_score then
    start = redis.call('ZREVRANK', SESSIONS_KEY, after_member) + 1
  else
    start = redis.call('ZCOUNT', SESSIONS_KEY, '(' .. ARGV[8], '+inf')
  end
end
local entries = redis.call('ZREVRANGE', SESSIONS_KEY, start, start + page - 1, 'WITHSCORES')
local out = {floor, false, false}
for i = 1, #entries, 2 do
  local member, text = entries[i], entries[i + 1]
  local score = tonumber(text)
  if score < floor then return out end
  if not (score == after_score and member >= after_member) then
    local token = split_member(member)
    if token then collect(out, token, now, text) end
  end
  if i + 1 == #entries and #entries == 2 * page then out[2], out[3] = text, member end
end
return out

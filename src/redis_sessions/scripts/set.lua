-- set: merge encoded changes into one session's data, atomically.
-- KEYS[4] the session hash  KEYS[5] the anonymous session  KEYS[6] the rotation mark
-- ARGV[6] token  ARGV[7] max bytes  ARGV[8] max keys  ARGV[9] new ttl ("" = keep)
-- ARGV[10] anonymous: "0" user sessions only, "1" anonymous ones too (deleted when emptied),
-- "2" anonymous ones kept even when emptied  ARGV[11] "1" = follow a rotation mark
-- ARGV[12..] pairs (JSON key, JSON value | "")
-- A missing or expired session is not recreated: the reply is false. Following a mark, the reply
-- is FORWARDED when the change went to the same user's successor session, else ROTATED.
local token, max_bytes, max_keys = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local new_ttl, anonymous, follow = nil, ARGV[10], ARGV[11] == '1'
if ARGV[9] ~= '' then
  local bad
  new_ttl, bad = checked_ttl(ARGV[9])
  if not new_ttl then return bad end
end
local now = now_seconds()

-- Merge into the user session s; returns its reply, or an error reply before any write.
local function update(s, session_token)
  local d, count = merge(s.d, 12)
  local refused = refuse_data(d, count, max_bytes, max_keys)
  if refused then return redis.error_reply(refused) end
  publish(session_token)
  s.w = s.w + 1
  local fields = {'w', decimal(s.w)}
  if d then
    fields[3], fields[4] = 'd', d
  else
    redis.call('HDEL', s.key, 'd')
  end
  s.d = d
  if new_ttl and new_ttl ~= s.ttl then
    -- a new ttl counts from now, for no_resave sessions too (their ttl field is the remainder)
    s.ttl, s.idle, s.la, s.new = new_ttl, 0, now, true
    fields[#fields + 1] = 'ttl' ; fields[#fields + 1] = decimal(new_ttl)
    fields[#fields + 1] = 'la' ; fields[#fields + 1] = decimal(now)
  end
  touch(s, session_token, now, fields)
  return reply(s)
end

local s = live(KEYS[4], token, now)
if s then return update(s, token) end

if anonymous ~= '0' then
  local stored, ttl = load_anonymous(KEYS[5])
  if ttl then
    local d, count = merge(stored or nil, 12)
    local refused = refuse_data(d, count, max_bytes, max_keys)
    if refused then return redis.error_reply(refused) end
    ttl = new_ttl or ttl
    if d or anonymous == '2' then
      store_anonymous(KEYS[5], d, ttl)
    else
      redis.call('DEL', KEYS[5])
    end
    return anonymous_reply(d, ttl)
  end
end

if not follow then return false end
local successor = redis.call('GET', KEYS[6])
if not successor then return false end
if successor ~= '' then
  local next_session = live(SESSION_PREFIX .. successor, successor, now)
  if next_session then
    local result = update(next_session, successor)
    if type(result) == 'table' and result.err then return result end
    return FORWARDED
  end
end
return ROTATED

-- set: merge encoded changes into one session's data, atomically.
-- KEYS[4] the session hash  KEYS[5] the anonymous session  KEYS[6] the rotation mark
-- ARGV[6] token  ARGV[7] max bytes  ARGV[8] max keys  ARGV[9] new ttl ("" = keep)
-- ARGV[10] anonymous: "0" user sessions only, "1" anonymous ones too (deleted when emptied),
-- "2" anonymous ones kept even when emptied  ARGV[11] "1" = follow a rotation mark
-- ARGV[12] the activity resolution in seconds (0 or 1: Node's rule; _lib.lua's fresh_limit)
-- ARGV[13..] pairs (JSON key, JSON value | "")
-- A missing or expired session is not recreated: the reply is false. Following a mark, the reply
-- is FORWARDED when the change went to the same user's successor session, else ROTATED.
local token, max_bytes, max_keys = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local new_ttl, anonymous, follow = nil, ARGV[10], ARGV[11] == '1'
local resolution = tonumber(ARGV[12])
if ARGV[9] ~= '' then
  local bad
  new_ttl, bad = checked_ttl(ARGV[9])
  if not new_ttl then return bad end
end
local now = now_seconds()

-- Merge into the user session s; returns its reply, or an error reply before any write.
local function update(s, session_token)
  local v = s.v
  local w = tonumber(v[3])
  if not w then return false end  -- not a session Node could read either
  local d, count = merge(s.d, 13)
  local refused = refuse_data(d, count, max_bytes, max_keys)
  if refused then return redis.error_reply(refused) end
  publish(session_token)
  v[3] = decimal(w + 1)
  local fields, added = {'w', v[3]}, 0
  if d then
    fields[3], fields[4] = 'd', d
    if not s.d then added = 1 end
  else
    redis.call('HDEL', s.key, 'd')
  end
  s.d = d
  if new_ttl and new_ttl ~= s.ttl then
    -- a new ttl counts from now, for no_resave sessions too (their ttl field is the remainder)
    s.ttl, s.stored_ttl, v[4], v[6] = new_ttl, new_ttl, decimal(new_ttl), NOW
    s.idle, s.la, s.renewed = 0, now, true
    fields[#fields + 1] = 'ttl' ; fields[#fields + 1] = v[4]
    fields[#fields + 1] = 'la' ; fields[#fields + 1] = NOW
  end
  touch(s, session_token, now, fields, resolution, added)
  return reply(s)
end

local s = live(KEYS[4], token, now, resolution)
if s then return update(s, token) end

if anonymous ~= '0' then
  local stored, ttl, ttl_text = load_anonymous(KEYS[5])
  if ttl then
    local d, count = merge(stored or nil, 13)
    local refused = refuse_data(d, count, max_bytes, max_keys)
    if refused then return redis.error_reply(refused) end
    if new_ttl then ttl, ttl_text = new_ttl, decimal(new_ttl) end
    if d or anonymous == '2' then
      store_anonymous(KEYS[5], d, ttl)
    else
      redis.call('DEL', KEYS[5])
    end
    return anonymous_reply(d, ttl_text)
  end
end

if not follow then return false end
local successor = redis.call('GET', KEYS[6])
if not successor then return false end
if successor ~= '' then
  local next_session = live(SESSION_PREFIX .. successor, successor, now, resolution)
  if next_session then
    local result = update(next_session, successor)
    if type(result) == 'table' and result.err then return result end
    return FORWARDED
  end
end
return ROTATED

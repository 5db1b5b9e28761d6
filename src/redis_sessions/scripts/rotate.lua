-- rotate: upgrade (log in) or regenerate, atomically: the stored data of the old session plus
-- this request's unsaved changes move to a new token, the old session is deleted and a
-- rotation mark is left for requests still in flight with the old token.
-- KEYS[4] old hash  KEYS[5] old anonymous session  KEYS[6] old rotation mark
-- KEYS[7] the new session's hash  KEYS[8] the new anonymous session (when regenerating one)
-- ARGV[6] old token ("" = none)  ARGV[7] new token  ARGV[8] user id ("" = regenerate: same kind
-- and user)  ARGV[9] ip  ARGV[10] ttl ("" = keep)  ARGV[11] mark lifetime  ARGV[12] max bytes
-- ARGV[13] max keys  ARGV[14] data taken from the old session by take.lua (cluster layout: the
-- old token in another slot; "" = none)  ARGV[15] the User-Agent of a sign-in ("" = none)
-- ARGV[16] the new device handle of a sign-in  ARGV[17..] changes (pairs: JSON key, JSON value | "")
-- Upgrade keeps the data of an anonymous session or of the same user's; a session of another
-- user is killed with its data. A sign-in records its device (_lib.lua's device()); regenerate
-- carries the session's device over, handle included. Reply: the new session (as get), or false
-- when regenerating a session that does not exist.
local old, new, id, ip = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local ttl, bad = nil, nil
if ARGV[10] ~= '' then
  ttl, bad = checked_ttl(ARGV[10])
  if not ttl then return bad end
end
local mark_ttl = tonumber(ARGV[11])
local user_agent, handle = ARGV[15], ARGV[16]
if #user_agent > 2048 then return redis.error_reply('RSINVALID user agent too long') end
local now = now_seconds()

local s, anonymous_data, anonymous_ttl = nil, nil, nil
if old ~= '' then
  s = live(KEYS[4], old, now)
  if not s then anonymous_data, anonymous_ttl = load_anonymous(KEYS[5]) end
end
local anonymous = anonymous_ttl ~= nil
if redis.call('EXISTS', KEYS[7]) == 1 or redis.call('EXISTS', KEYS[8]) == 1 then
  return redis.error_reply('RSEXISTS token already in use')
end

local base, new_session, successor = nil, nil, ''
if id == '' then  -- regenerate
  if s then
    base = s.d
    new_session = {key = KEYS[7], id = s.id, ip = ip, ttl = s.ttl, no_resave = s.no_resave,
                   device = device(KEYS[4], old)}
    successor = new
  elseif anonymous then
    base = anonymous_data or nil
  else
    return false
  end
else  -- upgrade
  if s and s.id == id then
    base, successor = s.d, new
  elseif not s then
    base = anonymous_data or nil
  end
  if old == '' and ARGV[14] ~= '' then base = ARGV[14] end
  if not ttl then return redis.error_reply('RSINVALID upgrade needs a ttl') end
  new_session = {key = KEYS[7], id = id, ip = ip, ttl = ttl, no_resave = false}
  if handle ~= '' then
    new_session.device = {dv = handle, si = now, ua = user_agent ~= '' and user_agent or nil}
  end
end
local d, count = merge(base, 17)
local refused = refuse_data(d, count, tonumber(ARGV[12]), tonumber(ARGV[13]))
if refused then return redis.error_reply(refused) end

-- every check is done: now the writes
if s then
  kill(old, s.id)
elseif anonymous then
  redis.call('DEL', KEYS[5])
end
if s or anonymous then
  redis.call('SET', KEYS[6], successor, 'EX', mark_ttl)
end
if not new_session then  -- an anonymous session regenerated, with its own ttl
  local lifetime = ttl or anonymous_ttl
  return anonymous_reply(d, store_anonymous(KEYS[8], d, lifetime))
end
new_session.d = d
store(new_session, new, now)
return reply(new_session)

-- Shared by every session function: the library's top (scripts/__init__.py), run once when
-- Redis loads the library; each function calls begin() with its keys and arguments first.
--
-- Calling convention of all functions (built by operations.py):
--   KEYS[1] {ns}:{app}:_sessions   KEYS[2] {ns}:{app}:_users   KEYS[3] {ns}:SESSIONS
--   (the cluster layout passes one bucket's indexes and prefixes instead, all in one slot, so
--   the scripts are the same for both layouts; keys.py)
--   KEYS[4..] script-specific
--   ARGV[1] app   ARGV[2] session key prefix "{ns}:{app}:"   ARGV[3] user set prefix "{ns}:{app}:us:"
--   ARGV[4] cache channel ("" = do not publish)   ARGV[5] "1" = keep a Redis TTL on the keys
--   ARGV[6..] script-specific
-- Key and member names come from keys.py; here a token or an id is only appended to a prefix,
-- and the two member formats ("token:id", "app:token:id") are built as keys.py documents them.
-- Time is the server's (TIME), so every process agrees on it.
--
-- Write order: a script does everything that can fail (argument checks, size limits, PUBLISH,
-- which an ACL may forbid) before its first write, because Redis does not roll a script back.
--
-- Anonymous sessions: a HASH "{ns}:{app}:an:{token}" with `ttl`, `la` (the last use that renewed
-- it) and `d` (the JSON text of the data, absent when empty) and a Redis TTL of ttl seconds,
-- renewed when it is used after more than the activity resolution (no index, no wiper; Node
-- never looks there). A rotated token (upgrade, regenerate)
-- leaves a short-lived STRING "{ns}:{app}:rt:{token}": the successor's token when the same user
-- keeps the session, "" when an anonymous session became a user's.

-- the convention's common part, set by begin() for the call running now (Redis runs one at a time)
local APP, SESSION_PREFIX, USER_PREFIX, CHANNEL, REDIS_TTL
local SESSIONS_KEY, USERS_KEY, EXPIRY_KEY
local ARGV
-- the server's time of the call running now, as TIME gave it (text; set by now_seconds)
local NOW

local function begin(keys, argv)
  ARGV = argv
  APP, SESSION_PREFIX, USER_PREFIX, CHANNEL = argv[1], argv[2], argv[3], argv[4]
  REDIS_TTL = argv[5] == '1'
  SESSIONS_KEY, USERS_KEY, EXPIRY_KEY = keys[1], keys[2], keys[3]
end
-- the largest ttl a script accepts: EXPIRE and the index scores stay exact far beyond it
local MAX_SCRIPT_TTL = 4294967295
-- reply codes besides a session: a rotated token, refused or forwarded to its successor
local ROTATED, FORWARDED = 2, 3

local function now_seconds()
  NOW = redis.call('TIME')[1]
  return tonumber(NOW)
end

-- A whole number as text for redis.call: Redis would turn a Lua number into text with
-- "%.17g", which costs about three times as much.
local function decimal(n)
  return string.format('%d', n)
end

-- One session's stored fields, or nil when there is no session (or r, w, ttl or la is
-- missing, or ttl or la no number). s.v holds the texts read, in STORED's order (the reply
-- carries them; get and set check the counter they increment, the client checks them all).
-- s.ttl is what get() returns (for no_resave sessions the time remaining).
local function load(key, now)
  local v = redis.call('HMGET', key, 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave')
  if not (v[1] and v[2] and v[3]) then return nil end
  local ttl, la = tonumber(v[4]), tonumber(v[6])
  if not (ttl and la) then return nil end
  local idle = now - la
  local s = {key = key, id = v[1], d = v[5], ip = v[7], ttl = ttl, la = la, idle = idle,
             no_resave = v[8] == '1', expires = la + ttl, expired = ttl < idle,
             stored_ttl = ttl, v = v}
  if s.no_resave then s.ttl = ttl - idle end
  return s
end

-- The seconds of idleness after which a use moves la (and the indexes and TTLs that follow
-- it): Node's rule (more than 1 s; no_resave sessions: more than 0 s) at an activity
-- resolution of 1 or less; above, the resolution, at most a tenth of the stored ttl (so a
-- session expires at most that much before its last use's ttl ran out).
local function fresh_limit(stored_ttl, no_resave, resolution)
  local limit = resolution
  if limit > stored_ttl / 10 then limit = math.floor(stored_ttl / 10) end
  if limit < 1 then limit = 1 end
  if no_resave then return limit - 1 end
  return limit
end

-- The reply operations.py parses: ONE text (a table reply costs Redis several times more),
-- its fields separated by line breaks: now r w ttl la no_resave id ip d, the server's time and
-- the stored texts (ttl and la as read: the client computes idle, and a no_resave session's
-- remaining ttl, from them). Ids and ips hold no line break (Node's rules and ours); d is last.
local function reply(s)
  local v = s.v
  return NOW .. '\n' .. v[2] .. '\n' .. v[3] .. '\n' .. v[4] .. '\n' .. v[6] .. '\n'
    .. (s.no_resave and '1' or '') .. '\n' .. s.id .. '\n' .. (s.ip or '') .. '\n' .. (s.d or '')
end

-- The same reply for an anonymous session: an empty id marks it (user ids are never empty).
local function anonymous_reply(d, ttl_text)
  return NOW .. '\n0\n0\n' .. ttl_text .. '\n' .. NOW .. '\n\n\n\n' .. (d or '')
end

-- An anonymous session's data text (false when empty), ttl, ttl text and la (nil when not
-- recorded), or nil when there is none.
local function load_anonymous(key)
  local v = redis.call('HMGET', key, 'd', 'ttl', 'la')
  local ttl = tonumber(v[2])
  if not ttl then return nil end
  return v[1], ttl, v[2], tonumber(v[3])
end

-- Write an anonymous session (d nil: empty) and give it ttl seconds from now (NOW: the caller
-- asked for the time).
local function store_anonymous(key, d, ttl)
  local secs = decimal(ttl)
  if d then redis.call('HSET', key, 'd', d, 'ttl', secs, 'la', NOW) else
    redis.call('HSET', key, 'ttl', secs, 'la', NOW)
    redis.call('HDEL', key, 'd')
  end
  redis.call('EXPIRE', key, secs)
  return secs
end

-- A ttl argument as a number, or an error reply before anything is written.
local function checked_ttl(text)
  local ttl = tonumber(text)
  if not ttl or ttl ~= math.floor(ttl) or ttl < 1 or ttl > MAX_SCRIPT_TTL then
    return nil, redis.error_reply('RSINVALID ttl out of range: ' .. tostring(text))
  end
  return ttl
end

local function publish(token)
  if CHANNEL ~= '' then redis.call('PUBLISH', CHANNEL, APP .. ':' .. token) end
end

-- Record activity now: la moves when the session was idle longer than fresh_limit() allows
-- (no_resave keeps its fixed expiry by storing the remaining ttl), and with it the three index
-- scores and the Redis TTL of the session's hash; a session used again sooner costs no index
-- update. ``fields`` (a flat list of hash fields and values the caller changes, may be empty;
-- ``added``: how many of them the hash may lack) is written in the same HSET.
-- The hash's Redis TTL runs to the end of the step (a minute, at most a tenth of the ttl) in
-- which the session expires (it counts as expired once now > la + ttl: every function treats it
-- so before Redis removes it), so a move renews it only when that step changes, at most once a
-- minute for an active session; a session not yet marked `p` (made by an earlier release, or by
-- Node: its TTL is another's, or none) gets its TTL at its first move.
-- No index carries a TTL (as in Node; the wiper keeps them tidy): under a volatile-* eviction
-- policy Redis may then evict a session, never the user's token set that killsoid and soid find
-- it by. A new session's set is persisted when the session is stored; a set left with a TTL by
-- an earlier release loses it at its sessions' first move: each move writes the field `p`, and
-- an HSET that added more fields than the caller's ``added`` found a session not yet marked.
local function touch(s, token, now, fields, resolution, added)
  local moved = s.new or s.renewed
  if s.idle > fresh_limit(s.stored_ttl, s.no_resave, resolution) then
    if s.no_resave then fields[#fields + 1] = 'ttl' ; fields[#fields + 1] = decimal(s.ttl) end
    fields[#fields + 1] = 'la' ; fields[#fields + 1] = NOW
    s.la = now
    moved = true
  end
  local mark = moved and REDIS_TTL and not s.new
  if mark then fields[#fields + 1] = 'p' ; fields[#fields + 1] = '1' end
  local unmarked = #fields > 0 and redis.call('HSET', s.key, unpack(fields)) > added and mark
  if unmarked then redis.call('PERSIST', USER_PREFIX .. s.id) end
  if not moved then return end
  local expires = now + s.ttl  -- (no_resave: s.ttl is the remainder, so this is fixed)
  redis.call('ZADD', SESSIONS_KEY, NOW, token .. ':' .. s.id)
  redis.call('ZADD', USERS_KEY, NOW, s.id)
  redis.call('ZADD', EXPIRY_KEY, decimal(expires), APP .. ':' .. token .. ':' .. s.id)
  if REDIS_TTL then
    local step = math.floor(s.stored_ttl / 10)
    if step > 60 then step = 60 elseif step < 1 then step = 1 end
    local ends = math.floor(expires / step)
    if s.new or s.renewed or unmarked or ends ~= math.floor(s.expires / step) then
      redis.call('EXPIREAT', s.key, decimal(ends * step + step))
    end
  end
end

-- Remove one session and its index entries; returns the number of hashes deleted (0 or 1) and
-- whether the wiper's index held it (1 or 0: a hash Redis expired already leaves only that).
-- The invalidation is published first: it is the step an ACL may refuse.
local function kill(token, id)
  publish(token)
  local n = redis.call('DEL', SESSION_PREFIX .. token)
  local user_key = USER_PREFIX .. id
  redis.call('ZREM', SESSIONS_KEY, token .. ':' .. id)
  redis.call('SREM', user_key, token)
  local indexed = redis.call('ZREM', EXPIRY_KEY, APP .. ':' .. token .. ':' .. id)
  if redis.call('EXISTS', user_key) == 0 then redis.call('ZREM', USERS_KEY, id) end
  return n, indexed
end

-- Whether the user's token set lists the session. A session it does not list has ended: an
-- allkeys-* eviction policy may drop the set while the hashes stay, and killsoid and soid find
-- sessions by that set only, so what it lost must never be served again.
local function listed(s, token)
  return redis.call('SISMEMBER', USER_PREFIX .. s.id, token) == 1
end

-- The session at key when it is live; an expired one (or one its user's set lost) is removed
-- on the spot (with its index entries) and, like a missing one, gives nil. Nothing is ever
-- recreated. With a ``resolution`` above 1 (get and set), the set is asked only when the use
-- records activity: within the resolution a hot load does not ask it either, so a lost set is
-- noticed at most one resolution late (docs/manager.md).
local function live(key, token, now, resolution)
  local s = load(key, now)
  if s and (s.expired or not ((resolution and resolution > 1
                               and s.idle <= fresh_limit(s.stored_ttl, s.no_resave, resolution))
                              or listed(s, token))) then
    kill(token, s.id)
    return nil
  end
  return s
end

-- Append token and its session reply (and score, when given) to out when the session is live
-- (read, not recorded). ``in_set``: the token came from its user's set (no need to ask it).
local function collect(out, token, now, score, in_set)
  local s = load(SESSION_PREFIX .. token, now)
  if s and not s.expired and (in_set or listed(s, token)) then
    out[#out + 1] = token
    out[#out + 1] = reply(s)
    if score then out[#out + 1] = score end
  end
end

-- The wiper's removal of one session, re-checked here: a session still alive is kept and its
-- expiry score corrected; an index entry whose hash Redis already expired counts as one expired
-- session removed. Returns 1 when an expired session went, else 0.
local function wipe_one(key, token, known_id, now)
  local s = load(key, now)
  if s and not s.expired and listed(s, token) then
    redis.call('ZADD', EXPIRY_KEY, s.expires, APP .. ':' .. token .. ':' .. s.id)
    return 0
  end
  local id = (s and s.id) or redis.call('HGET', key, 'id') or known_id
  if id == '' then return 0 end
  local n, indexed = kill(token, id)
  if n == 0 then return indexed end
  return n
end

-- Split a "token:id" member at its first colon (tokens never contain one; ids may).
local function split_member(member)
  local colon = string.find(member, ':', 1, true)
  if not colon then return nil end
  return string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
end

-- The JSON text of d, split into its top-level members without decoding any value, so values
-- keep their exact bytes (cjson would round numbers to 14 digits). A string without escapes (the
-- usual key or value) takes one pattern match; only escaped keys are decoded, by cjson.
local function end_of_string(s, i)
  local _, q = string.find(s, '^"[^"\\]*"', i)
  if q then return q + 1 end
  local j = i + 1
  while true do
    q = string.find(s, '["\\]', j)
    if not q then error('unterminated string') end
    if string.byte(s, q) == 92 then j = q + 2 else return q + 1 end
  end
end

-- A JSON key's string (raw: its text with the quotes).
local function key_name(raw)
  if string.find(raw, '\\', 2, true) then return cjson.decode(raw) end
  return string.sub(raw, 2, -2)
end

local function end_of_value(s, i)
  local c = string.byte(s, i)
  if c == 34 then return end_of_string(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local p = string.find(s, '[%[%]{}"]', j)
      if not p then error('unterminated container') end
      local b = string.byte(s, p)
      if b == 34 then
        j = end_of_string(s, p)
      else
        if b == 123 or b == 91 then depth = depth + 1 else depth = depth - 1 end
        j = p + 1
        if depth == 0 then return j end
      end
    end
  end
  local _, p = string.find(s, '^[^,}%] \t\r\n]+', i)  -- a number, true, false or null
  if not p then error('bad value') end
  return p + 1
end

-- The members into keys and values (their raw texts, in order) and index (key's string ->
-- position); returns their count. The usual member ("key":"text" or "key":scalar, no escapes, no
-- spaces) takes one match, and a comma after it one byte; anything else goes the long way.
local function json_members(s, keys, values, index)
  local n = 0
  local _, i = string.find(s, '^[ \t\r\n]*{[ \t\r\n]*')
  if not i then error('not an object') end
  i = i + 1
  if string.byte(s, i) == 125 then return n end
  while true do
    local _, e, raw_key, name, value = string.find(s, '^("([^"\\]*)"):("[^"\\]*")', i)
    if not e then
      _, e, raw_key, name, value = string.find(s, '^("([^"\\]*)"):([^,}%]%[{" \t\r\n]+)', i)
    end
    if not e then
      if string.byte(s, i) ~= 34 then error('bad key') end
      local key_end = end_of_string(s, i)
      raw_key = string.sub(s, i, key_end - 1)
      name = key_name(raw_key)
      local colon
      _, colon = string.find(s, '^[ \t\r\n]*:[ \t\r\n]*', key_end)
      if not colon then error('missing colon') end
      e = end_of_value(s, colon + 1) - 1
      value = string.sub(s, colon + 1, e)
    end
    n = n + 1
    keys[n], values[n], index[name] = raw_key, value, n
    if string.byte(s, e + 1) == 44 and string.byte(s, e + 2) == 34 then
      i = e + 2
    else
      local _, after, separator = string.find(s, '^[ \t\r\n]*([,}])[ \t\r\n]*', e + 1)
      if separator == '}' then return n end
      if not separator then error('bad separator') end
      i = after + 1
    end
  end
end

-- A change is checked before it is spliced into d (a malformed one would make the whole session
-- unreadable): each value must be exactly one JSON value as core's encoder writes it (no
-- whitespace, no control characters, strict numbers: cjson alone accepts hex, nan and leading
-- zeros, valid escapes, valid UTF-8), each key a JSON string. The usual value (a string without
-- escapes, a number, a literal) takes a match or two; the rest is scanned, its structure left to
-- cjson.

-- Whether t is valid UTF-8 as Python decodes it strictly (no overlong forms, no surrogates,
-- nothing beyond U+10FFFF); ASCII runs are skipped by one search each.
local function utf8(t)
  local i = string.find(t, '[\128-\255]')
  while i do
    local c, need, low, high = string.byte(t, i), 0, 128, 191
    if c >= 194 and c <= 223 then
      need = 1
    elseif c >= 224 and c <= 239 then
      need = 2
      if c == 224 then low = 160 elseif c == 237 then high = 159 end
    elseif c >= 240 and c <= 244 then
      need = 3
      if c == 240 then low = 144 elseif c == 244 then high = 143 end
    else
      return false
    end
    for k = 1, need do
      local b = string.byte(t, i + k)
      if not b or b < low or b > high then return false end
      low, high = 128, 191
    end
    i = string.find(t, '[\128-\255]', i + need + 1)
  end
  return true
end

local function json_number(t)
  local _, e = string.find(t, '^-?0')
  if not e then _, e = string.find(t, '^-?[1-9]%d*') end
  if not e then return false end
  local _, f = string.find(t, '^%.%d+', e + 1)
  if f then e = f end
  local _, x = string.find(t, '^[eE][-+]?%d+', e + 1)
  if x then e = x end
  return e == #t
end

local function json_token(t)
  return json_number(t) or t == 'true' or t == 'false' or t == 'null'
end

local function json_value(t)
  if string.find(t, '^"[^"\\%z\1-\31]*"$') then return utf8(t) end
  if json_token(t) then return true end
  if string.find(t, '[%z\1-\31]') or not utf8(t) then return false end
  local i = 1
  while true do  -- every escape valid
    local p = string.find(t, '\\', i, true)
    if not p then break end
    local c = string.sub(t, p + 1, p + 1)
    if c == 'u' then
      if not string.find(t, '^%x%x%x%x', p + 2) then return false end
      i = p + 6
    elseif c ~= '' and string.find('"\\/bfnrt', c, 1, true) then
      i = p + 2
    else
      return false
    end
  end
  -- what is left once strings are gone: only structure and strict scalar tokens
  local skeleton = string.gsub(string.gsub(t, '\\.', 'X'), '"[^"]*"', '0')
  if not string.find(skeleton, '^[%[%]{}:,%w%.%-+]+$') then return false end
  local ok = true
  for token in string.gmatch(skeleton, '[%w%.%-+]+') do
    if not json_token(token) then ok = false end
  end
  return ok and (pcall(cjson.decode, t))
end

local function json_key(t)
  if string.find(t, '^"[^"\\%z\1-\31]*"$') then return utf8(t) end
  return string.byte(t, 1) == 34 and string.byte(t, -1) == 34 and #t > 1 and json_value(t)
end

-- The usual change takes one match per key and one or two per value: a key or a string value
-- of printable ASCII without escapes, an integer, a literal; anything else is checked by
-- json_key and json_value. PLAIN_KEY captures the key's name.
local PLAIN_KEY = '^"([^"\\%c\128-\255]*)"$'
local PLAIN_STRING = '^"[^"\\%c\128-\255]*"$'

local function plain_value(t)
  return string.find(t, '^-?[1-9]%d*$') or string.find(t, PLAIN_STRING) or t == '0'
    or t == 'true' or t == 'false' or t == 'null'
end

-- Apply the encoded changes ARGV[first..] (pairs: JSON key, JSON value or "" = delete) to the
-- stored JSON text of d. Stored keys keep their order and untouched values their bytes; new keys
-- go at the end (as Node's merge does). Every change is checked first. Returns the new text (nil
-- when empty) and its key count; the count is -1 when the stored text is not a JSON object, -2
-- when a change is malformed.
local function merge(stored, first)
  local last = #ARGV
  if (last - first) % 2 == 0 then return nil, -2 end  -- a key without a value
  local names = {}
  for i = first, last, 2 do
    local key, value = ARGV[i], ARGV[i + 1]
    local _, _, name = string.find(key, PLAIN_KEY)
    if not name then
      if not json_key(key) then return nil, -2 end
      name = key_name(key)
    end
    if value ~= '' and not plain_value(value) and not json_value(value) then return nil, -2 end
    names[i] = name
  end
  local keys, values, index, n = {}, {}, {}, 0
  if stored then
    local ok, found = pcall(json_members, stored, keys, values, index)
    if not ok then return nil, -1 end
    n = found
  end
  for i = first, last, 2 do
    local name = names[i]
    local value = ARGV[i + 1]
    local at = index[name]
    if value == '' then
      if at then values[at] = false end
    elseif at then
      values[at] = value
    else
      n = n + 1
      keys[n], values[n], index[name] = ARGV[i], value, n
    end
  end
  local parts, p, count = {'{'}, 1, 0
  for j = 1, n do
    local value = values[j]
    if value then
      parts[p + 1], parts[p + 2], parts[p + 3], parts[p + 4] = keys[j], ':', value, ','
      p = p + 4
      count = count + 1
    end
  end
  if count == 0 then return nil, 0 end
  parts[p] = '}'
  return table.concat(parts), count
end

-- The device of a user session, as recorded at sign-in (rotate): 'dv' its handle (random, made
-- by the client), 'si' the sign-in time (unix seconds), 'ua' the User-Agent. Node never reads
-- these fields. A session signed in without them (Node made it, or create()) is named by a
-- digest of its token, which no one can turn back into the token, and signed in when its token
-- was made (Node's tokens end with "Z" and the time in ms, base 36). Returns {dv, si, ua}
-- (si and ua nil when unknown).
local function device(key, token)
  local v = redis.call('HMGET', key, 'dv', 'si', 'ua')
  local si = tonumber(v[2])
  if not si and string.sub(token, 56, 56) == 'Z' then
    local ms = tonumber(string.sub(token, 57), 36)
    if ms then si = math.floor(ms / 1000) end
  end
  return {dv = v[1] or string.sub(redis.sha1hex('rs-device:' .. token), 1, 24), si = si,
          ua = v[3] or nil}
end

-- Start a user session in hash s.key (checks done by the caller): Node's fields (and the mark
-- `p` with redis_ttl: touch()), token set (persisted: an earlier release gave sets a TTL),
-- indexes. s.device (optional, as device() gives it) is recorded with it.
local function store(s, token, now)
  local ttl_text = decimal(s.ttl)
  local fields = {'id', s.id, 'r', '1', 'w', '1', 'ip', s.ip, 'la', NOW, 'ttl', ttl_text}
  if s.d then fields[#fields + 1] = 'd' ; fields[#fields + 1] = s.d end
  if s.no_resave then fields[#fields + 1] = 'no_resave' ; fields[#fields + 1] = '1' end
  local dev = s.device
  if dev then
    fields[#fields + 1] = 'dv' ; fields[#fields + 1] = dev.dv
    if dev.si then fields[#fields + 1] = 'si' ; fields[#fields + 1] = decimal(dev.si) end
    if dev.ua then fields[#fields + 1] = 'ua' ; fields[#fields + 1] = dev.ua end
  end
  if REDIS_TTL then fields[#fields + 1] = 'p' ; fields[#fields + 1] = '1' end
  local user_key = USER_PREFIX .. s.id
  redis.call('SADD', user_key, token)
  if REDIS_TTL then redis.call('PERSIST', user_key) end
  s.v = {s.id, '1', '1', ttl_text, s.d, NOW, s.ip}
  s.stored_ttl, s.la, s.idle, s.new, s.expires = s.ttl, now, 0, true, now + s.ttl
  touch(s, token, now, fields, 1, 0)
end

local function refuse_data(text, count, max_bytes, max_keys)
  if count == -2 then return 'RSINVALID a change is not a JSON key and one JSON value' end
  if count < 0 then return 'RSCORRUPT the stored session data is not a JSON object' end
  if count > max_keys then
    return 'RSTOOLARGE the session data would have ' .. count .. ' keys; the limit is ' .. max_keys
  end
  if text and #text > max_bytes then
    return 'RSTOOLARGE the session data would take ' .. #text .. ' bytes; the limit is ' .. max_bytes
  end
  return nil
end


//! The Lua scripts. Each runs atomically in Redis, re-checks what it relies on and either
//! changes state or reports why not; every key it touches is passed in `KEYS` (all share the
//! tenant's hash slot). Loaded once, invoked with EVALSHA by `redis::Script`.

use std::sync::LazyLock;

use redis::Script;

/// Shared Lua: keeps the candidate index of an agent's services in step with his hash.
/// Every script that changes status, channels, load, capacity or rotation ends with it, so
/// the index is never stale (same atomic step).
///
/// `svcs` in the agent hash lists `service=policy` pairs (policy: `ll` least_loaded, `rot`
/// round_robin/ordered_offer, `oom` offer_or_miss, `man` manual). Scores, lowest first:
/// - `ll`: (load − max + 1024)·2⁴¹ + idle ms since 2020 — most free capacity, then longest
///   idle; ties by member (agent id), as `decide` orders them;
/// - `rot`: the rotation place; `oom`: agents holding an offer after the others, then place.
const REINDEX: &str = r#"
-- the tenant prefix of a key built for `agent_id`, e.g. the agent hash
local function prefix_of(agent_key, agent_id)
  return string.sub(agent_key, 1, #agent_key - #('agent:' .. agent_id))
end
-- the set of conversations an agent holds (offers and assignments): what reconciliation
-- walks to find holds Postgres does not know
local function holds_key(agent_key, agent_id)
  return prefix_of(agent_key, agent_id) .. 'holds:' .. agent_id
end
-- the invariant, checked where it could break: an agent's load above his max is counted
-- (never expected to move from 0; tests and operators read it)
local function check_capacity(agent_key, agent_id)
  local h = redis.call('HMGET', agent_key, 'assigned', 'offered', 'max')
  local load = tonumber(h[1] or '0') + tonumber(h[2] or '0')
  if h[3] and load > tonumber(h[3]) then
    redis.call('INCR', prefix_of(agent_key, agent_id) .. 'overcap')
  end
end
local function reindex(agent_key, agent_id)
  local prefix = string.sub(agent_key, 1, #agent_key - #('agent:' .. agent_id))
  local h = redis.call('HMGET', agent_key, 'status', 'kinds', 'assigned', 'offered', 'max', 'idle_since', 'svcs', 'ikinds')
  local status = h[1] or 'offline'
  local offered = tonumber(h[4] or '0')
  local load = tonumber(h[3] or '0') + offered
  local max = tonumber(h[5] or '0')
  local idle = tonumber(h[6] or '0') - 1577836800000
  if idle < 0 then idle = 0 end
  if idle > 2199023255551 then idle = 2199023255551 end
  -- kinds he is online for now, and kinds he was indexed under (to take him out of)
  local now_on, touch = {}, {}
  if status == 'available' then
    for k in string.gmatch(h[2] or '', '[^,]+') do now_on[k] = true; touch[k] = true end
  end
  local was_on = {}
  for k in string.gmatch(h[8] or '', '[^,]+') do was_on[k] = true; touch[k] = true end
  for svc, pol in string.gmatch(h[7] or '', '([^,=]+)=([^,]+)') do
    -- the service's view version: any change to a member moves it (see VIEW)
    redis.call('INCR', prefix .. 'ver:' .. svc)
    for k in pairs(touch) do
      if now_on[k] ~= was_on[k] then
        if now_on[k] then redis.call('SADD', prefix .. 'online:' .. svc .. ':' .. k, agent_id)
        else redis.call('SREM', prefix .. 'online:' .. svc .. ':' .. k, agent_id) end
      end
      local ckey = prefix .. 'cand:' .. svc .. ':' .. k
      if now_on[k] and load < max and pol ~= 'man' then
        local score
        if pol == 'll' then
          score = (load - max + 1024) * 2199023255552 + idle
        else
          score = tonumber(redis.call('ZSCORE', prefix .. 'rot:' .. svc, agent_id) or '0')
          if pol == 'oom' and offered > 0 then score = score + 1099511627776 end
        end
        redis.call('ZADD', ckey, score, agent_id)
      elseif was_on[k] then
        redis.call('ZREM', ckey, agent_id)
      end
    end
  end
  local on = {}
  for k in pairs(now_on) do on[#on + 1] = k end
  table.sort(on)
  local ikinds = table.concat(on, ',')
  if ikinds ~= (h[8] or '') then redis.call('HSET', agent_key, 'ikinds', ikinds) end
end
"#;

fn with_reindex(body: &str) -> Script {
    Script::new(&format!("{REINDEX}{body}"))
}

/// Shared Lua: the candidate view of a large service — what `LOAD_CANDIDATES` reads — and
/// its version, so a router replica can keep the view in memory and know exactly when it is
/// out of date.
///
/// The version is `<marker>:<ver:<service>>`: `reindex` increments `ver:<service>` for every
/// service of an agent it touches, and every change to an agent's status, channels, load,
/// capacity, idle time or rotation place goes through `reindex` (seeding a rotation place in
/// `LOAD_AGENTS` increments it too); the marker changes with a rebuild. So while the version
/// is unchanged, the index lists and every member's row are exactly what the view holds.
///
/// A view section of a reply is `tag, version, n_kinds, (kind, n, id × n) × n_kinds, then
/// rows (id, status, kinds, assigned, offered, idle_since, rotation) × m`, where `tag` is
/// `FULL` (the whole view: replace), `DELTA` (only rows that changed or entered: merge) or
/// `FRESH` (the caller's view is current; nothing follows the version).
const VIEW: &str = r#"
local function view_version(prefix, svc)
  return (redis.call('GET', prefix .. 'rebuilt') or '') .. ':' .. (redis.call('GET', prefix .. 'ver:' .. svc) or '0')
end
-- per kind: the best k candidates, or one online (full) agent when there are none; the
-- second value tells which ids came from the online fallback
local function view_lists(prefix, svc, k, kinds, online)
  local lists, fallback = {}, {}
  for kind in string.gmatch(kinds, '[^,]+') do
    local ids = redis.call('ZRANGE', prefix .. 'cand:' .. svc .. ':' .. kind, 0, k - 1)
    if #ids == 0 and online then
      local one = redis.call('SRANDMEMBER', prefix .. 'online:' .. svc .. ':' .. kind)
      if one then ids = {one}; fallback[one] = true end
    end
    lists[#lists + 1] = {kind, ids}
  end
  return lists, fallback
end
local function view_emit(out, tag, version, lists, rows, prefix, svc, rot)
  out[#out + 1] = tag
  out[#out + 1] = version
  if tag == 'FRESH' then return end
  out[#out + 1] = tostring(#lists)
  for _, l in ipairs(lists) do
    out[#out + 1] = l[1]
    out[#out + 1] = tostring(#l[2])
    for _, id in ipairs(l[2]) do out[#out + 1] = id end
  end
  for _, id in ipairs(rows) do
    local a = redis.call('HMGET', prefix .. 'agent:' .. id, 'status', 'kinds', 'assigned', 'offered', 'idle_since')
    out[#out + 1] = id
    out[#out + 1] = a[1] or 'offline'
    out[#out + 1] = a[2] or ''
    out[#out + 1] = a[3] or '0'
    out[#out + 1] = a[4] or '0'
    out[#out + 1] = a[5] or '0'
    out[#out + 1] = rot and redis.call('ZSCORE', prefix .. 'rot:' .. svc, id) or '0'
  end
end
-- the whole view: every listed id and every extra
local function view_full(out, prefix, svc, k, kinds, online, rot, extras)
  local lists = view_lists(prefix, svc, k, kinds, online)
  local seen, rows = {}, {}
  local function add(id) if id and not seen[id] then seen[id] = true; rows[#rows + 1] = id end end
  for _, l in ipairs(lists) do for _, id in ipairs(l[2]) do add(id) end end
  for _, id in ipairs(extras) do add(id) end
  view_emit(out, 'FULL', view_version(prefix, svc), lists, rows, prefix, svc, rot)
end
-- after a change to `agent` alone, given the lists before it: the new lists, his row and the
-- rows of whoever entered them (or came from the random online fallback)
local function view_delta(out, prefix, svc, k, kinds, online, rot, before, agent)
  local had = {}
  for _, l in ipairs(before) do for _, id in ipairs(l[2]) do had[id] = true end end
  local lists, fallback = view_lists(prefix, svc, k, kinds, online)
  local seen, rows = {}, {}
  local function add(id) if id and not seen[id] then seen[id] = true; rows[#rows + 1] = id end end
  add(agent)
  for _, l in ipairs(lists) do
    for _, id in ipairs(l[2]) do if not had[id] or fallback[id] then add(id) end end
  end
  view_emit(out, 'DELTA', view_version(prefix, svc), lists, rows, prefix, svc, rot)
end
"#;

fn with_view(body: &str) -> Script {
    Script::new(&format!("{REINDEX}{VIEW}{body}"))
}

/// KEYS: res, agent, offers, pending, rebuilt, lease
/// ARGV: conversation, agent, mode (offer|assign|supervisor), kind, max, now, deadline,
///       service, lease token ('' = no fencing), then optionally the caller's candidate view
///       of the service: k, kinds (comma list), online (0|1), rotation (0|1), the view's
///       version ('' = none), extra agent ids
///
/// Replies `{OK, new|again|accepted}` or `{NOMARKER}`, `{FENCED}`, `{TAKEN, agent, mode}`,
/// `{UNAVAILABLE, status}`, `{NOCHANNEL}`, `{FULL, load}`. With a view, whatever the outcome
/// (but `NOMARKER` and `FENCED`), the reply goes on with `VIEW` and a view section (see
/// `VIEW`) taken after the reservation: `DELTA` when the version was the caller's before it
/// (only this agent can have changed), `FULL` otherwise — so the caller's next decision
/// needs no read, and a refused one sees what refused it.
pub static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    with_view(
        r#"
local viewing = #ARGV >= 14
local prefix = string.sub(KEYS[5], 1, #KEYS[5] - #'rebuilt')
local vk, vkinds, vonline, vrot = tonumber(ARGV[10]), ARGV[11], ARGV[12] == '1', ARGV[13] == '1'
local before = nil
if viewing and ARGV[14] ~= '' and view_version(prefix, ARGV[8]) == ARGV[14] then
  before = view_lists(prefix, ARGV[8], vk, vkinds, vonline)
end
local function body()
if redis.call('EXISTS', KEYS[5]) == 0 then return {'NOMARKER'} end
if ARGV[9] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[9] then return {'FENCED'} end
local want = ARGV[3] == 'offer' and 'offer' or 'assign'
local cur = redis.call('HMGET', KEYS[1], 'agent', 'mode')
if cur[1] then
  if cur[1] == ARGV[2] and cur[2] == want then return {'OK', 'again'} end
  if cur[1] == ARGV[2] and cur[2] == 'offer' and want == 'assign' then
    -- accepting one's own offer: the load does not change, only its kind
    redis.call('HSET', KEYS[1], 'mode', 'assign', 'at', ARGV[6], 'state', 'pending')
    redis.call('HINCRBY', KEYS[2], 'offered', -1)
    redis.call('HINCRBY', KEYS[2], 'assigned', 1)
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
    reindex(KEYS[2], ARGV[2])
    return {'OK', 'accepted'}
  end
  return {'TAKEN', cur[1], cur[2]}
end
local a = redis.call('HMGET', KEYS[2], 'status', 'kinds', 'assigned', 'offered')
local status = a[1] or 'offline'
if ARGV[3] == 'supervisor' then
  if status ~= 'available' and status ~= 'paused' then return {'UNAVAILABLE', status} end
else
  if status ~= 'available' then return {'UNAVAILABLE', status} end
  if not string.find(',' .. (a[2] or '') .. ',', ',' .. ARGV[4] .. ',', 1, true) then return {'NOCHANNEL'} end
end
local load = tonumber(a[3] or '0') + tonumber(a[4] or '0')
if load >= tonumber(ARGV[5]) then return {'FULL', tostring(load)} end
redis.call('HSET', KEYS[1], 'agent', ARGV[2], 'mode', want, 'service', ARGV[8], 'at', ARGV[6],
  'deadline', ARGV[7], 'state', 'pending')
if want == 'offer' then
  redis.call('HINCRBY', KEYS[2], 'offered', 1)
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
else
  redis.call('HINCRBY', KEYS[2], 'assigned', 1)
end
redis.call('HSET', KEYS[2], 'idle_since', ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('SADD', holds_key(KEYS[2], ARGV[2]), ARGV[1])
check_capacity(KEYS[2], ARGV[2])
reindex(KEYS[2], ARGV[2])
return {'OK', 'new'}
end
local out = body()
if not viewing or out[1] == 'NOMARKER' or out[1] == 'FENCED' then return out end
out[#out + 1] = 'VIEW'
if before then
  view_delta(out, prefix, ARGV[8], vk, vkinds, vonline, vrot, before, ARGV[2])
else
  local extras = {}
  for i = 15, #ARGV do extras[#extras + 1] = ARGV[i] end
  view_full(out, prefix, ARGV[8], vk, vkinds, vonline, vrot, extras)
end
return out
"#,
    )
});

/// KEYS: res, agent, offers, pending, rebuilt
/// ARGV: conversation, agent, mode (offer|assign), deadline, service, now
///
/// After the Postgres commit. Replies `{OK}`, `{RESTORED}` (the reservation had been lost
/// with a Redis wipe after the rebuild read Postgres: it is re-created from the committed
/// fact), `{MISMATCH, agent, mode}` or `{NOMARKER}` (rebuild, then confirm again).
pub static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
if redis.call('EXISTS', KEYS[5]) == 0 then return {'NOMARKER'} end
local cur = redis.call('HMGET', KEYS[1], 'agent', 'mode')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'agent', ARGV[2], 'mode', ARGV[3], 'service', ARGV[5], 'at', ARGV[6],
    'deadline', ARGV[4], 'state', 'committed')
  if ARGV[3] == 'offer' then
    redis.call('HINCRBY', KEYS[2], 'offered', 1)
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  else
    redis.call('HINCRBY', KEYS[2], 'assigned', 1)
  end
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('SADD', holds_key(KEYS[2], ARGV[2]), ARGV[1])
  check_capacity(KEYS[2], ARGV[2])
  reindex(KEYS[2], ARGV[2])
  return {'RESTORED'}
end
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] then return {'MISMATCH', cur[1], cur[2]} end
redis.call('HSET', KEYS[1], 'state', 'committed')
redis.call('ZREM', KEYS[4], ARGV[1])
return {'OK'}
"#,
    )
});

/// KEYS: res, agent, offers, pending, rebuilt
/// ARGV: conversation, agent, mode ('' = any)
///
/// Replies `{RELEASED, mode}`, `{NONE}` (nothing reserved: already released), `{OTHER, agent,
/// mode}` (reserved for someone else, or in another mode: left alone) or `{NOMARKER}`.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
if redis.call('EXISTS', KEYS[5]) == 0 then return {'NOMARKER'} end
local cur = redis.call('HMGET', KEYS[1], 'agent', 'mode')
if not cur[1] then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {'NONE'}
end
if cur[1] ~= ARGV[2] or (ARGV[3] ~= '' and cur[2] ~= ARGV[3]) then return {'OTHER', cur[1], cur[2]} end
local field = cur[2] == 'offer' and 'offered' or 'assigned'
if redis.call('HINCRBY', KEYS[2], field, -1) < 0 then redis.call('HSET', KEYS[2], field, 0) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SREM', holds_key(KEYS[2], ARGV[2]), ARGV[1])
-- remembered for a while: reconciliation must not restore a hold released after it read
-- Postgres (see RECONCILE)
redis.call('SET', string.sub(KEYS[1], 1, #KEYS[1] - #('res:' .. ARGV[1])) .. 'rel:' .. ARGV[1], '1', 'PX', 120000)
reindex(KEYS[2], ARGV[2])
return {'RELEASED', cur[2]}
"#,
    )
});

/// KEYS: res, agent, offers, pending, rebuilt
/// ARGV: conversation, agent, deadline
///
/// Undoes an accept whose Postgres commit failed: the assignment becomes the agent's offer
/// again (same load). Replies `{OK}`, `{NONE}` (not an assignment of this agent) or
/// `{NOMARKER}`.
pub static REVERT_ACCEPT: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
if redis.call('EXISTS', KEYS[5]) == 0 then return {'NOMARKER'} end
local cur = redis.call('HMGET', KEYS[1], 'agent', 'mode')
if cur[1] ~= ARGV[2] or cur[2] ~= 'assign' then return {'NONE'} end
redis.call('HSET', KEYS[1], 'mode', 'offer', 'deadline', ARGV[3], 'state', 'committed')
redis.call('HINCRBY', KEYS[2], 'assigned', -1)
redis.call('HINCRBY', KEYS[2], 'offered', 1)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
reindex(KEYS[2], ARGV[2])
return {'OK'}
"#,
    )
});

/// KEYS: offers
/// ARGV: now, visibility ms, limit
///
/// Claims offers whose deadline passed: each is pushed `visibility` ms into the future, so
/// exactly one replica gets it; handling it removes it (the withdraw releases the offer), a
/// replica that died while handling lets it reappear.
pub static POP_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local later = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, c in ipairs(due) do redis.call('ZADD', KEYS[1], later, c) end
return due
"#,
    )
});

/// KEYS: agent
/// ARGV: agent id, status, receiving kinds (comma list), logins (kind:paused list),
///       connected (0|1), max, now, then (service, policy code, initial rotation) × n
///
/// Replies the previous status. idle_since restarts when the agent becomes Available, and
/// status_since whenever the status changes (a supervisor's "time in status"). The
/// agent's services are recorded (with their policies, for the candidate index) and his
/// missing rotation places seeded.
pub static SET_PRESENCE: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
local prev = redis.call('HGET', KEYS[1], 'status') or 'offline'
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #('agent:' .. ARGV[1]))
local svcs = {}
for i = 8, #ARGV, 3 do
  svcs[#svcs + 1] = ARGV[i] .. '=' .. ARGV[i + 1]
  redis.call('ZADD', prefix .. 'rot:' .. ARGV[i], 'NX', ARGV[i + 2], ARGV[1])
end
local old = redis.call('HGET', KEYS[1], 'svcs') or ''
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'kinds', ARGV[3], 'logins', ARGV[4],
  'connected', ARGV[5], 'max', ARGV[6], 'svcs', table.concat(svcs, ','))
if ARGV[2] == 'available' and prev ~= 'available' then
  redis.call('HSET', KEYS[1], 'idle_since', ARGV[7])
end
if ARGV[2] ~= prev or redis.call('HEXISTS', KEYS[1], 'status_since') == 0 then
  redis.call('HSET', KEYS[1], 'status_since', ARGV[7])
end
-- services the agent left: drop him from their index
if old ~= '' then
  redis.call('HSET', KEYS[1], 'status', 'offline', 'svcs', old)
  reindex(KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'svcs', table.concat(svcs, ','))
end
reindex(KEYS[1], ARGV[1])
return prev
"#,
    )
});

/// KEYS: rotation
/// ARGV: tenant key prefix, service, k, kinds (comma list), include one online agent per
///       kind (0|1), read rotation places (0|1), then extra agent ids
///
/// The candidate-index snapshot of a large service: the best `k` candidates per kind, one
/// online agent for a kind without candidates (so "nobody online" is answered right), and the extra agents
/// (the event's agent, holders of pending offers). Replies per agent
/// `id, status, kinds, assigned, offered, idle_since, rotation`.
pub static LOAD_CANDIDATES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix, svc, k = ARGV[1], ARGV[2], tonumber(ARGV[3])
local seen, ids = {}, {}
local function add(id) if id and not seen[id] then seen[id] = true; ids[#ids + 1] = id end end
for kind in string.gmatch(ARGV[4], '[^,]+') do
  local top = redis.call('ZRANGE', prefix .. 'cand:' .. svc .. ':' .. kind, 0, k - 1)
  for _, id in ipairs(top) do add(id) end
  -- a candidate is online; with none, one online (full) agent tells "nobody online" apart
  if #top == 0 and ARGV[5] == '1' then add(redis.call('SRANDMEMBER', prefix .. 'online:' .. svc .. ':' .. kind)) end
end
for i = 7, #ARGV do add(ARGV[i]) end
local rot = ARGV[6] == '1'
local out = {}
for _, id in ipairs(ids) do
  local a = redis.call('HMGET', prefix .. 'agent:' .. id, 'status', 'kinds', 'assigned', 'offered', 'idle_since')
  out[#out + 1] = id
  out[#out + 1] = a[1] or 'offline'
  out[#out + 1] = a[2] or ''
  out[#out + 1] = a[3] or '0'
  out[#out + 1] = a[4] or '0'
  out[#out + 1] = a[5] or '0'
  out[#out + 1] = rot and redis.call('ZSCORE', KEYS[1], id) or '0'
end
return out
"#,
    )
});

/// KEYS: rotation, agent_1 … agent_n
/// ARGV: (agent id, initial rotation) × n
///
/// One round trip for a service's agents: seeds missing rotation places (ZADD NX: a wiped
/// rotation restarts from the configured order), then replies per agent
/// `status, kinds, assigned, offered, idle_since, rotation`.
pub static LOAD_AGENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i = 2, #KEYS do
  local id = ARGV[(i - 2) * 2 + 1]
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[(i - 2) * 2 + 2], id) == 1 then
    redis.call('INCR', (string.gsub(KEYS[1], 'rot:([^:]+)$', 'ver:%1')))
  end
  local a = redis.call('HMGET', KEYS[i], 'status', 'kinds', 'assigned', 'offered', 'idle_since')
  local r = redis.call('ZSCORE', KEYS[1], id)
  out[#out + 1] = a[1] or 'offline'
  out[#out + 1] = a[2] or ''
  out[#out + 1] = a[3] or '0'
  out[#out + 1] = a[4] or '0'
  out[#out + 1] = a[5] or '0'
  out[#out + 1] = r or '0'
end
return out
"#,
    )
});

/// KEYS: rotation, agent
/// ARGV: agent
///
/// Moves the agent after the last place of the rotation; replies the new place.
pub static MOVE_TO_BACK: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local place = 1
if top[2] then place = math.floor(tonumber(top[2])) + 1 end
redis.call('ZADD', KEYS[1], place, ARGV[1])
reindex(KEYS[2], ARGV[1])
return place
"#,
    )
});

/// KEYS: lease, fence, rebuilt
/// ARGV: ttl ms
///
/// Replies a fresh fencing token when the lease was free, 0 when it is held, -1 when the
/// tenant's capacity must be rebuilt first (one round trip for both checks).
pub static LEASE_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', tonumber(ARGV[1]))
return token
"#,
    )
});

/// KEYS: lease, fence, rebuilt
/// ARGV: ttl ms, service, k, kinds (comma list), online (0|1), rotation (0|1), the caller's
///       view version ('' = none), extra agent ids
///
/// `LEASE_ACQUIRE` and the candidate read in one round trip: replies `{token}` like it
/// (0 held, -1 no marker), and when granted goes on with a view section: `FRESH` when the
/// caller's view is current, `FULL` otherwise.
pub static LEASE_VIEW: LazyLock<Script> = LazyLock::new(|| {
    with_view(
        r#"
if redis.call('EXISTS', KEYS[3]) == 0 then return {'-1'} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'0'} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', tonumber(ARGV[1]))
local out = {tostring(token)}
local prefix = string.sub(KEYS[3], 1, #KEYS[3] - #'rebuilt')
local version = view_version(prefix, ARGV[2])
if ARGV[7] ~= '' and version == ARGV[7] then
  view_emit(out, 'FRESH', version)
else
  local extras = {}
  for i = 8, #ARGV do extras[#extras + 1] = ARGV[i] end
  view_full(out, prefix, ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5] == '1', ARGV[6] == '1', extras)
end
return out
"#,
    )
});

/// KEYS: rebuilt
/// ARGV: service, k, kinds (comma list), online (0|1), rotation (0|1), extra agent ids
///
/// The candidate view alone (a `FULL` view section), for a step whose extra agents the
/// view did not hold.
pub static VIEW_READ: LazyLock<Script> = LazyLock::new(|| {
    with_view(
        r#"
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #'rebuilt')
local extras = {}
for i = 6, #ARGV do extras[#extras + 1] = ARGV[i] end
local out = {}
view_full(out, prefix, ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1', ARGV[5] == '1', extras)
return out
"#,
    )
});

/// KEYS: lease
/// ARGV: token
pub static LEASE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// KEYS: rebuilt, offers, pending, agent_1 … agent_n, res_1 … res_m
/// ARGV: n, (max, assigned, offered) × n, (conversation, agent, mode, service, deadline) × m, now
///
/// Writes the capacity counters and reservations Postgres knows, then the marker, in one
/// step: until the marker exists every reservation is refused, so none can slip in between.
pub static REBUILD: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
local n = tonumber(ARGV[1])
local now = ARGV[#ARGV]
for i = 1, n do
  local b = 1 + (i - 1) * 3
  redis.call('HSET', KEYS[3 + i], 'max', ARGV[b + 1], 'assigned', ARGV[b + 2], 'offered', ARGV[b + 3])
end
local m = #KEYS - 3 - n
for j = 1, m do
  local b = 1 + n * 3 + (j - 1) * 5
  redis.call('HSET', KEYS[3 + n + j], 'agent', ARGV[b + 2], 'mode', ARGV[b + 3], 'service', ARGV[b + 4],
    'deadline', ARGV[b + 5], 'at', now, 'state', 'committed')
  local res_key = KEYS[3 + n + j]
  redis.call('SADD', string.sub(res_key, 1, #res_key - #('res:' .. ARGV[b + 1])) .. 'holds:' .. ARGV[b + 2], ARGV[b + 1])
  if ARGV[b + 3] == 'offer' then redis.call('ZADD', KEYS[2], ARGV[b + 5], ARGV[b + 1]) end
end
for i = 1, n do
  local key = KEYS[3 + i]
  local id = string.match(key, 'agent:(.+)$')
  reindex(key, id)
end
redis.call('SET', KEYS[1], now)
return n + m
"#,
    )
});

/// KEYS: agent, offers, pending, rebuilt
/// ARGV: agent id, now, grace ms, n, (conversation, mode, service, deadline) × n — what Postgres
///       says the agent holds (open assignments and offers)
///
/// Converges the agent's reservations with Postgres, both ways, in one atomic step: a hold
/// Postgres has and Redis lost (an ambiguous commit, a partial wipe) is restored, committed,
/// with its load — unless Redis released it in the last two minutes, which may be a release
/// newer than the Postgres read (restored on a later pass if Postgres still has it then); a
/// committed hold Redis keeps and Postgres does not (a release whose Redis step never ran) is
/// freed once older than the grace — younger ones may belong to a commit newer than the
/// Postgres read. Pending reservations are left to the pending reconciler.
/// Loads only move with their reservations, so they stay equal to what the agent holds.
/// Replies `{OK, restored, freed}` or `{NOMARKER}`.
pub static RECONCILE: LazyLock<Script> = LazyLock::new(|| {
    with_reindex(
        r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return {'NOMARKER'} end
local agent, now, grace, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix = prefix_of(KEYS[1], agent)
local holds = holds_key(KEYS[1], agent)
local known, restored, freed = {}, 0, 0
for i = 1, n do
  local b = 4 + (i - 1) * 4
  local conv, mode, service, deadline = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  known[conv] = true
  local res = prefix .. 'res:' .. conv
  local cur = redis.call('HGET', res, 'agent')
  if not cur and redis.call('EXISTS', prefix .. 'rel:' .. conv) == 0 then
    redis.call('HSET', res, 'agent', agent, 'mode', mode, 'service', service, 'at', ARGV[2],
      'deadline', deadline, 'state', 'committed')
    if mode == 'offer' then
      redis.call('HINCRBY', KEYS[1], 'offered', 1)
      redis.call('ZADD', KEYS[2], deadline, conv)
    else
      redis.call('HINCRBY', KEYS[1], 'assigned', 1)
    end
    redis.call('SADD', holds, conv)
    restored = restored + 1
  elseif cur == agent then
    redis.call('SADD', holds, conv)
  end
  -- held by someone else: a conversation-level conflict, settled per conversation
end
for _, conv in ipairs(redis.call('SMEMBERS', holds)) do
  local res = prefix .. 'res:' .. conv
  local cur = redis.call('HMGET', res, 'agent', 'mode', 'state', 'at')
  if cur[1] ~= agent then
    redis.call('SREM', holds, conv)
  elseif not known[conv] and cur[3] == 'committed' and now - tonumber(cur[4] or '0') > grace then
    local field = cur[2] == 'offer' and 'offered' or 'assigned'
    if redis.call('HINCRBY', KEYS[1], field, -1) < 0 then redis.call('HSET', KEYS[1], field, 0) end
    redis.call('DEL', res)
    redis.call('ZREM', KEYS[2], conv)
    redis.call('ZREM', KEYS[3], conv)
    redis.call('SREM', holds, conv)
    freed = freed + 1
  end
end
if restored > 0 then check_capacity(KEYS[1], agent) end
if restored + freed > 0 then reindex(KEYS[1], agent) end
return {'OK', tostring(restored), tostring(freed)}
"#,
    )
});

/// KEYS: lock
/// ARGV: token, ttl ms
pub static LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return 1 end
return 0
"#,
    )
});

/// The benchmark's baseline: the cheapest script that still reads and writes one key.
pub static TRIVIAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
return redis.call('INCR', KEYS[1])
"#,
    )
});

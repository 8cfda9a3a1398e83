-- The mutation gate: the one home of the policy for calls that change a
-- source (patch, retry, delete, run, scenario create/update, on every kind).
-- Every such call goes through M.mutate at the point where it would send its
-- request or write its store, so:
--   * dry run is decided here, once: in a dry run the call is not made and a
--     result {dry_run = true, action = ..., ...details} comes back (with a
--     "dry-run: would ..." line on stderr);
--   * observers bound to the source (the rules runner's audit, see
--     lua/redrive/rules.lua) see every mutation, whichever call made it, and
--     may refuse it (a closed observer, a limit);
--   * each observer's mutations are counted here, and its `limit` enforced
--     before the call is made (dry-run calls count too, so a dry run shows
--     what the real one would do);
--   * with a ledger (lua/redrive/ledger.lua; a profile's `ledger`,
--     --ledger, $REDRIVE_LEDGER), a mutation of a remote item first takes
--     a lease on (source, item) in it, renewed while the call runs, and
--     records the outcome there: an item another live host holds, or whose
--     action is recorded as done, is skipped (nil, msg, "leased" | "done";
--     ev.skipped), never acted on twice. A batch request (op.ids) is
--     narrowed in place to the items leased; op.skipped lists the others
--     ({id, message, code}), for the caller to report. fn may set
--     op.outcomes[id] = "failed" for items of a batch the platform refused.
-- A bulk call goes through the gate once per request it sends (one item, or
-- one batch of ids), never as a whole, so a mutation is seen exactly once.
--
--   M.mutate(src, op, fn, ...) -> fn(...) | dry result | nil, msg, code
--     op = { action = "retry" | "patch" | "delete" | ..., id = target id,
--            ids = {...} (a batch request), n = how many items (default #ids,
--            or 1 with id; nil with neither: unknown, e.g. "all of a
--            scenario"), dry = table | function(op) -> details [, line]
--            | nil, msg, code, line = text of the dry-run line, quiet = true
--            (no dry-run line: a bulk call prints its own), detail = extra
--            fields for observers (e.g. {url = ...}) }
--     fn(...) makes the call; it may set op.n (or op.ids) once the count is
--     known. A call made from inside another gated call on the same task is
--     part of it and passes straight through.
--   M.dry_run(rd) -> boolean: whether mutations are dry now (a bulk call
--     plans its summary with it; the per-request decision is M.mutate's)
--   M.skipped(code) -> whether a failure code means "skipped" (the ledger)
--   M.ledger(src) -> whether src has a ledger
--   M.observe(src, obs) -> obs; M.unobserve(src, obs)
--     obs = { name = "...", limit = n | nil, count = 0 (kept here),
--             closed = "why" | nil (refuse everything),
--             before = function(ev), after = function(ev) }
--     ev = { source, action, id, ids, n, dry_run, detail, result, error,
--            code, refused, skipped, raised }: `after` gets the outcome of
--     every mutation the gate saw for that source, refused and skipped
--     ones included.
local L = require "redrive.ledger"

local M = {}

local observers = setmetatable({}, { __mode = "k" }) -- src -> {obs...}
local depth = setmetatable({}, { __mode = "k" })     -- coroutine -> gated calls in progress

function M.observe(src, obs)
  local list = observers[src]
  if not list then list = {}; observers[src] = list end
  for _, o in ipairs(list) do if o == obs then return obs end end
  obs.count = obs.count or 0
  list[#list + 1] = obs
  return obs
end

function M.unobserve(src, obs)
  local list = observers[src]
  if not list then return end
  for i = #list, 1, -1 do if list[i] == obs then table.remove(list, i) end end
end

function M.dry_run(rd) return rd.is_dry_run() end

-- skipped(code) -> whether a mutation's failure code says it was skipped
-- (another host holds the item, or did this already: the ledger)
function M.skipped(code) return L.SKIP[code] == true end

-- ledger(src) -> whether src has a ledger (a call that cannot name its
-- items, like Make's retry{all}, then names them)
function M.ledger(src) return L.of(src) ~= nil end

local function count_of(op)
  if op.n ~= nil then return op.n end
  if op.ids ~= nil then return #op.ids end
  if op.id ~= nil then return 1 end
  return nil
end

local function what(op)
  if op.id ~= nil then return op.action .. " " .. tostring(op.id) end
  if op.ids ~= nil then return string.format("%s %d item(s)", op.action, #op.ids) end
  return op.action
end

-- admit(list, op, n) -> true | nil, msg, code: every observer must accept;
-- the counts move only when all of them do.
local function admit(list, op, n)
  for _, o in ipairs(list) do
    if o.closed then
      return nil, string.format("%s: %s refused: %s", o.name or "redrive", what(op), o.closed), "refused"
    end
    if o.limit then
      if n == nil then
        return nil, string.format("%s: %s refused: its count is not known in advance and the limit is %d action(s)",
          o.name or "redrive", what(op), o.limit), "limit"
      end
      if o.count + n > o.limit then
        return nil, string.format("%s: %s refused: limit of %d action(s) reached", o.name or "redrive", what(op),
          o.limit), "limit"
      end
    end
  end
  for _, o in ipairs(list) do o.count = o.count + (n or 0) end
  return true
end

local function notify(list, hook, ev)
  for _, o in ipairs(list) do
    local f = o[hook]
    if f then f(ev) end
  end
end

-- the dry-run result: {dry_run = true, action, ...details}, and its line
local function dry_result(op)
  local details, line = op.dry, op.line
  if type(details) == "function" then
    local d, l, code = details(op)
    if d == nil then return nil, l, code end
    details, line = d, line or l
  end
  local r = { dry_run = true, action = op.action }
  for k, v in pairs(details or {}) do r[k] = v end
  if not op.quiet then
    io.stderr:write("dry-run: ", line or ("would " .. what(op)), "\n")
  end
  return r
end

-- the end of a gated call: leave the gate, pass the results or the error on
local function leave(co, ok, ...)
  depth[co] = depth[co] - 1
  if not ok then error((...), 0) end
  return ...
end

local NONE = {}
-- the rule a mutation is made for (the rules runner's observer), if any
local function rule_of(list)
  for _, o in ipairs(list) do
    if o.rule and o.rule.name then return o.rule.name end
  end
  return nil
end

-- leases(src, op, list) -> leases | nil, msg, code: the ledger's leases on
-- the items of op ({} when src has no ledger or op names no remote item);
-- op.ids is narrowed to the items leased, op.skipped lists the others.
local function take_leases(src, op, list)
  local ledger = L.of(src)
  if not ledger or not L.leases(op.action) then return {} end
  local rule = rule_of(list)
  if op.id ~= nil then
    local lease, err, code = ledger:take(src, op.id, op.action, rule)
    if not lease then return nil, err, code end
    return { lease }
  end
  if op.ids == nil then
    return nil, string.format("%s: %s refused: a ledger leases items by id, and this call names none " ..
      "(pass ids)", tostring(src.kind), what(op)), "ledger"
  end
  local leases, kept, skipped, owner = {}, {}, {}, nil
  for _, id in ipairs(op.ids) do
    local lease, err, code = ledger:take(src, id, op.action, rule, owner)
    if lease then
      owner = lease.owner
      leases[#leases + 1], kept[#kept + 1] = lease, id
    elseif L.SKIP[code] then
      skipped[#skipped + 1] = { id = id, message = err, code = code }
    else
      for _, l in ipairs(leases) do l:settle("failed", { code = code, message = "not sent: " .. tostring(err) }) end
      return nil, err, code
    end
  end
  for i = #op.ids, 1, -1 do op.ids[i] = nil end
  table.move(kept, 1, #kept, 1, op.ids)
  op.skipped = skipped
  if #kept == 0 then return nil, skipped[1].message, skipped[1].code end
  return leases
end

-- settle(leases, op, raised, ...): each lease gets the call's outcome
-- (op.outcomes[id] overrides it for one item of a batch)
local function settle_leases(rd, leases, op, raised, ...)
  if #leases == 0 then return end
  local outcome, d = L.outcome(rd, raised, ...)
  for _, lease in ipairs(leases) do
    local o = op.outcomes and op.outcomes[lease.item]
    if o then lease:settle(o, { code = o }) else lease:settle(outcome, d) end
  end
end

-- mutate(src, op, fn, ...) -> see the header
function M.mutate(src, op, fn, ...)
  local co = coroutine.running()
  if (depth[co] or 0) > 0 then return fn(...) end -- part of the call that is being gated
  local rd = src._rd
  local list = observers[src] or NONE
  local dry = M.dry_run(rd) or nil
  if not dry and #list == 0 and not L.of(src) then -- nobody to admit, tell or lease: the call, gated
    depth[co] = (depth[co] or 0) + 1
    return leave(co, pcall(fn, ...))
  end
  local ev = { source = src, action = op.action, id = op.id, ids = op.ids, detail = op.detail,
               dry_run = dry }
  local admitted = count_of(op)
  local ok, msg, code = admit(list, op, admitted)
  if not ok then
    ev.refused, ev.error, ev.code, ev.n = true, msg, code, count_of(op)
    notify(list, "after", ev)
    return nil, msg, code
  end
  if ev.dry_run then
    local r, err, ecode = dry_result(op)
    ev.n, ev.ids = count_of(op), op.ids
    if r then ev.result = r else ev.error, ev.code = err, ecode end
    notify(list, "after", ev)
    return r, err, ecode
  end
  local leases, lerr, lcode = take_leases(src, op, list)
  if not leases or (op.skipped and #op.skipped > 0) then
    -- what was skipped is not an action: its count goes back
    local back = not leases and (admitted or 0) or #op.skipped
    for _, o in ipairs(list) do o.count = math.max(0, o.count - back) end
  end
  if not leases then
    ev.skipped, ev.error, ev.code, ev.n = L.SKIP[lcode] or nil, lerr, lcode, count_of(op)
    if not L.SKIP[lcode] then ev.refused = true end
    notify(list, "after", ev)
    return nil, lerr, lcode
  end
  notify(list, "before", ev)
  local stop = leases[1] and leases[1]:renewing()
  depth[co] = (depth[co] or 0) + 1
  local res = table.pack(pcall(fn, ...))
  depth[co] = depth[co] - 1
  if stop then stop() end
  settle_leases(rd, leases, op, not res[1], table.unpack(res, 2, res.n))
  ev.n, ev.ids = count_of(op), op.ids
  if admitted == nil and ev.n then -- the count became known during the call
    for _, o in ipairs(list) do o.count = o.count + ev.n end
  end
  if not res[1] then
    ev.error, ev.raised = res[2], true
    notify(list, "after", ev)
    error(res[2], 0)
  end
  if res[2] == nil then ev.error, ev.code = res[3], res[4]
  else ev.result = res[2] end
  notify(list, "after", ev)
  return table.unpack(res, 2, res.n)
end

return M

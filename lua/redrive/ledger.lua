-- The ledger: several redrive hosts, one shared store, no double action on
-- a remote platform (docs/several-hosts.md). The mutation gate
-- (lua/redrive/mutation.lua) is its only caller for mutations: when a
-- source has a ledger, each mutation of a remote item first takes a lease
-- on (source, item) in it and records its outcome there.
--
--   L.open(rd, target, opts) -> ledger (opened on first use; cached per target)
--   L.attach(src, target, opts): src gets the ledger when target is set
--       (rd.connect does this for a remote kind: lua/redrive/sources.lua,
--       whose list of kinds says which are remote)
--   L.of(src) -> ledger | nil
--   L.identity(src) -> "make https://eu1.make.com/api/v2": the source as every
--       host names it (kind and base URL without userinfo or query)
--   L.action(action) -> the ledger's name for it (retry_execution -> retry)
--   L.leases(action) -> whether that action of a remote item takes a lease
--   ledger:take(src, id, action, rule [, owner]) -> lease | nil, msg, code: code
--       "leased" (another live host holds it), "in_doubt" (its outcome was
--       never recorded: an answer that never came, a host that died
--       mid-call; until `redrive audit --reconcile`) or "done" (that
--       action's outcome is recorded as done). A leased or in-doubt skip is
--       in the audit (a done one is there already, as done: a watch loop
--       that meets it every pass adds nothing). Other codes: the ledger
--       store failed (nothing was done).
--   lease:renewing() -> stop(): renew every ttl/3 while a long call runs
--   lease:settle(outcome, {code, message, execution}) -> true | nil, msg, code
--   ledger:events{since, source, after, limit} -> {event...}
--   ledger:reconcile(source, item, action, outcome) -> settled (0 or 1)
--   L.outcome(ok, res, ...) -> "done" | "failed" | "unknown", details
--   L.SKIP: the codes of a skip (leased, in_doubt, done)
local U = require "redrive.source.local_util"

local L = {}
L.SKIP = { leased = true, done = true, in_doubt = true }

-- What the store names an action: one name per thing done to an item, so
-- a bulk retry and an item's retry of one execution see each other's.
local ACTIONS = { retry_execution = "retry", delete_execution = "delete" }
function L.action(a) return ACTIONS[a] or a end

-- the mutations of an item (not a notification, a run, a scenario)
local ITEM = { retry = true, patch = true, delete = true, resolve = true }
function L.leases(action) return ITEM[L.action(action)] == true end

local Ledger = {}
Ledger.__index = Ledger
local Lease = {}
Lease.__index = Lease

local cache = {}      -- target -> ledger (one store per target per process)
local where = setmetatable({}, { __mode = "k" }) -- src -> ledger
local me, seq         -- this process: {host, pid, prefix}; leases taken

local function process()
  if not me then
    local id = U.process_id() -- host:pid:random
    local host, pid = id:match("^(.*):(%d+):%x+$")
    me = { id = id, host = host or id, pid = math.tointeger(tonumber(pid)) or 0 }
    seq = 0
  end
  return me
end

-- A URL without userinfo, query or fragment (never a secret in the ledger).
local function bare(url)
  local scheme, rest = tostring(url):match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return tostring(url) end
  rest = rest:gsub("[?#].*$", "")
  local auth, path = rest:match("^([^/]*)(.*)$")
  return scheme .. "://" .. auth:gsub("^.*@", "") .. path:gsub("/+$", "")
end

function L.identity(src)
  return tostring(src.kind) .. " " .. bare(src.base_url or "?")
end

function L.open(rd, target, opts)
  opts = opts or {}
  local key = target
  local l = cache[key]
  if l then return l end
  local ttl, terr = require("redrive.opts").number(opts.ttl or os.getenv("REDRIVE_LEDGER_TTL"), "ledger_ttl",
    "timeout", 60)
  if not ttl then error("ledger: " .. terr, 0) end
  l = setmetatable({ rd = rd, target = target, ttl = ttl, password_env = opts.password_env }, Ledger)
  cache[key] = l
  return l
end

function L.attach(src, target, opts)
  if type(src) ~= "table" or target == nil then return end
  where[src] = L.open(src._rd, target, opts)
end

function L.of(src) return where[src] end

-- the store, opened on first use: nil, msg, code when it cannot be
function Ledger:store()
  if self.st then return self.st end
  local core = require "redrive.core"
  local password
  if self.password_env then
    password = os.getenv(self.password_env)
    if not password or password == "" then
      return nil, "ledger: ledger_password_env names " .. self.password_env .. ", which is not set", "invalid"
    end
  end
  local st, err, code = core.store_open(self.target, password and { password = password } or nil)
  if not st then return nil, "ledger: " .. tostring(err), code end
  self.st = st
  return st
end

local function when(t)
  return t and os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) or "?"
end

-- why(hold, action) -> message, code of a refused take
local function why(hold, id, action)
  local who = string.format("%s (pid %s)", tostring(hold.host or "?"), tostring(hold.pid or "?"))
  if hold.why == "done" then
    return string.format("%s of %s already done by %s at %s (ledger)", action, id, who, when(hold.since)), "done"
  elseif hold.why == "unknown" then
    return string.format("%s is in doubt: %s took it at %s and its outcome was never recorded (an answer " ..
      "that never came, or a host stopped mid-call); check the platform, then `redrive audit --reconcile` " ..
      "(ledger)", id, who, when(hold.since)), "in_doubt"
  end
  return string.format("%s leased by %s until %s (ledger)", id, who, when(hold.expiry)), "leased"
end

-- owner: a lease's owner to share (the items of one batch request)
function Ledger:take(src, id, action, rule, owner)
  local st, err, code = self:store()
  if not st then return nil, err, code end
  local p = process()
  if not owner then seq = seq + 1; owner = p.id .. ":" .. seq end
  local lease = setmetatable({ ledger = self, source = L.identity(src), item = tostring(id),
                               action = L.action(action), owner = owner, rule = rule }, Lease)
  local ok, hold, hcode = st:ledger_take { source = lease.source, item = lease.item, action = lease.action,
    owner = lease.owner, host = p.host, pid = p.pid, rule = rule, ttl = self.ttl }
  if ok == nil then return nil, "ledger: " .. tostring(hold), hcode end
  if ok then return lease end
  local msg, skip = why(hold, lease.item, lease.action)
  if skip ~= "done" then lease:settle("skipped", { code = skip, message = msg }) end
  return nil, msg, skip
end

function Lease:renewing()
  local l = self.ledger
  local st, owner = l.st, self.owner
  return U.renewer(l.rd, { renew = function(_, o, t) return st:ledger_renew(o, t) end }, owner, l.ttl)
end

-- settle(outcome, {code, message, execution}) -> true | nil, msg, code
-- A failure to record is said on stderr (the action itself is done; its
-- lease then expires as a crashed host's would).
function Lease:settle(outcome, d)
  d = d or {}
  local p = process()
  local pretty = require "redrive.pretty"
  local msg = d.message ~= nil and pretty.redact(tostring(d.message)) or nil
  if msg and #msg > 1000 then msg = msg:sub(1, 1000) end
  local n, err, code = self.ledger.st:ledger_settle { source = self.source, item = self.item,
    action = self.action, owner = outcome ~= "skipped" and self.owner or nil, outcome = outcome, host = p.host,
    pid = p.pid, code = d.code ~= nil and tostring(d.code) or nil, rule = self.rule,
    execution = d.execution ~= nil and tostring(d.execution) or nil, message = msg }
  if n == nil then
    io.stderr:write("redrive: ledger: cannot record the ", outcome, " ", self.action, " of ", self.item, ": ",
      tostring(err), "\n")
    return nil, err, code
  end
  return true
end

function Ledger:events(f)
  local st, err, code = self:store()
  if not st then return nil, err, code end
  return st:ledger_events(f or {})
end

function Ledger:reconcile(source, item, action, outcome)
  local st, err, code = self:store()
  if not st then return nil, err, code end
  local p = process()
  return st:ledger_settle { source = source, item = tostring(item), action = L.action(action), outcome = outcome,
    host = p.host, pid = p.pid, code = "reconciled", message = "settled by hand (redrive audit --reconcile)" }
end

-- outcome(raised, ...) -> outcome, {code, message, execution}: what the
-- results of a gated call mean for the ledger. A call that raised was
-- interrupted (cancellation: its request may have been sent, "unknown") or
-- hit a bug ("failed"); nil, msg, code, "unknown" | {status = "unknown"}
-- (n8n's retry whose answer never came, a Make chunk interrupted in flight)
-- is "unknown"; any other nil is "failed"; anything else "done".
function L.outcome(rd, raised, r1, r2, r3, r4)
  if raised then
    if rd.is_canceled(r1) then return "unknown", { code = "canceled", message = "interrupted in flight" } end
    return "failed", { code = "error", message = tostring(r1) }
  end
  if r1 == nil then
    local unknown = r4 == "unknown" or (type(r4) == "table" and r4.status == "unknown")
    return unknown and "unknown" or "failed", { code = r3, message = r2 }
  end
  if type(r1) == "table" then
    if r1.status == "unknown" then return "unknown", { code = r1.code or "unknown", message = r1.message } end
    local ex = r1.execution
    if type(ex) == "table" then ex = ex.id end
    if ex == nil and type(r1.id) == "string" and r1.retry_of ~= nil then ex = r1.id end
    return "done", { execution = ex }
  end
  return "done", {}
end

return L

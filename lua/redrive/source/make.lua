-- The `make` source: Make's incomplete executions (DLQ), Web API v2.
--
--   rd.connect{kind = "make", zone = "eu1", token_env = "MAKE_TOKEN"}
--   rd.connect{kind = "make", base_url = "https://eu2.make.com/api/v2", token = ...}
--
-- Endpoint -> call:
--   GET    /dlqs?scenarioId&pg[...]          src:incomplete{scenario, ...}
--   GET    /dlqs/{id}                        src:incomplete_item(id), item:refresh()
--   GET    /dlqs/{id}/blueprint              item:blueprint()
--   GET    /dlqs/{id}/bundle                 item:bundle()
--   GET    /dlqs/{id}/logs                   item:logs{status, from, to, limit, sort_by, sort_dir}
--   GET    /dlqs/{id}/logs/{logId}           item:log(log_id)
--   PATCH  /dlqs/{id}                        item:patch{blueprint, failer}
--   POST   /dlqs/{id}/retry                  item:retry()
--   POST   /dlqs/retry?scenarioId            src:retry{ids | all, except, scenario}: {ids} in chunks
--                                            of 100 after the safe checks; {all, exceptIds} when
--                                            all = true, safe = false
--   DELETE /dlqs?scenarioId[&confirmed]      src:delete_incomplete{ids | all, confirmed, except, scenario}
--                                            (ids without scenario: each item read for its
--                                            scenario, one DELETE per scenario), item:delete()
--   DELETE /dlqs/{id} (deprecated)           item:delete() when the scenario is unknown
-- Make queues retries: item:retry() returns {status = "queued"}; the outcome
-- shows up later in item:logs(). item:retry{wait = true} and
-- src:retry{..., wait = true} follow those logs until Make has logged the
-- attempt (or a timeout) and report its outcome.
local C = require "redrive.source.common"

local M = {}
local Source, Item = {}, {}

local ZONES = {
  eu1 = "https://eu1.make.com/api/v2", eu2 = "https://eu2.make.com/api/v2",
  us1 = "https://us1.make.com/api/v2", us2 = "https://us2.make.com/api/v2",
  ["eu1.make.celonis"] = "https://eu1.make.celonis.com/api/v2",
  ["us1.make.celonis"] = "https://us1.make.celonis.com/api/v2",
}
ZONES["celonis-eu1"], ZONES["eu1.celonis"] = ZONES["eu1.make.celonis"], ZONES["eu1.make.celonis"]
ZONES["celonis-us1"], ZONES["us1.celonis"] = ZONES["us1.make.celonis"], ZONES["us1.make.celonis"]
M.ZONES = ZONES

local KIND = "make"

-- The scope a Make API token needs for a request (shared/contracts
-- make-dlq.openapi.json): every read of /dlqs needs dlqs:read; retry, patch
-- and delete need dlqs:write.
local function scope_of(req)
  return (req and req.method ~= "GET" and req.method ~= "HEAD") and "dlqs:write" or "dlqs:read"
end

-- Make's error body: {detail, message, code}. A 403 says which scope the
-- token lacks (Make's own text is only "Access denied"); detail.scope has it.
local function parse_error(status, data, _, req)
  if status == 403 then
    local scope = scope_of(req)
    local text = type(data) == "table" and (data.detail or data.message) or nil
    text = type(text) == "string" and text or "Forbidden"
    if type(data) == "table" and data.code then text = text .. " [" .. tostring(data.code) .. "]" end
    return string.format("%s (the token lacks the %s scope this call needs: reads need dlqs:read; " ..
      "retry, patch and delete need dlqs:write)", text, scope),
      { platform_code = type(data) == "table" and data.code or nil, scope = scope }
  end
  if type(data) ~= "table" then return nil end
  local text = data.detail or data.message
  if type(text) ~= "string" then return nil end
  local extra = { platform_code = data.code }
  if data.code == "IM004" then
    return "Make refused to delete all incomplete executions without confirmation (IM004): " .. text
      .. " Pass confirmed = true.", extra, "invalid"
  end
  if status == 400 and text:find("being processed") then
    return text .. " [" .. tostring(data.code) .. "]", extra, "conflict"
  end
  if data.code then text = text .. " [" .. tostring(data.code) .. "]" end
  return text, extra
end

local function scenario_id(v, fname)
  local n = math.tointeger(tonumber(v))
  if not n then error(string.format("bad argument #1 to '%s' (make scenario id expected, got %s)", fname, tostring(v)), 3) end
  return n
end

local function api(src, req) return C.api(src, req) end

-- Make lists an item's reason ("ConnectionError: [503] Service Unavailable")
-- but neither its module nor its class apart from it: the fingerprint is the
-- reason's. The detail (GET /dlqs/{id}) has no reason, so an item read
-- alone has no fingerprint (none rather than a wrong one).
local core = require "redrive.core"

local function item_obj(src, rec, scenario)
  local it = {
    id = rec.id, scenario = rec.scenarioId or scenario, scenario_name = rec.scenarioName,
    reason = rec.reason, created = C.iso_time(rec.created), size = rec.size,
    resolved = rec.resolved, attempts = rec.attempts, execution_id = rec.executionId,
    index = rec.index, failer = rec.failer, raw = rec,
  }
  if type(rec.reason) == "string" then it.fingerprint, it.cause = core.fingerprint(rec.reason) end
  return setmetatable(it, src._mt.item)
end

local function log_obj(l)
  return {
    id = l.id, status = l.status, duration = l.duration, operations = l.operations,
    transfer = l.transfer, timestamp = C.iso_time(l.timestamp), execution_id = l.imtId,
    type = l.type, raw = l,
  }
end

local function pg(q, o)
  if o.sort_by then q["pg[sortBy]"] = o.sort_by end
  if o.sort_dir then
    if o.sort_dir ~= "asc" and o.sort_dir ~= "desc" then error("bad argument (sort_dir must be \"asc\" or \"desc\")", 4) end
    q["pg[sortDir]"] = o.sort_dir
  end
  return q
end

-- scenario_name(src, sid, item_id) -> the scenario's name | nil. Make lists
-- incomplete executions without it; an item's own record has it
-- (scenarioName): read once per scenario and source, from the first item
-- listed. A name is only shown: a failure to read it leaves it nil.
local function scenario_name(src, sid, item_id)
  local names = src._scenario_names
  if not names then names = {}; src._scenario_names = names end
  if names[sid] == nil then
    local data = api(src, { path = "/dlqs/" .. tostring(item_id) })
    local dlq = type(data) == "table" and data.dlq
    names[sid] = type(dlq) == "table" and type(dlq.scenarioName) == "string" and dlq.scenarioName or false
  end
  return names[sid] or nil
end

-- src:incomplete{scenario, resolved = false, reason, fingerprint, since, until, limit, page, sort_by,
-- sort_dir}
-- (resolved: C.resolved_opt; Make lists both, the filter is here)
function Source:incomplete(opts)
  opts = opts or {}
  C.check_table(opts, 1, "incomplete")
  if opts.scenario == nil and self.scenario ~= nil then
    opts = setmetatable({ scenario = self.scenario }, { __index = opts })
  end
  if opts.scenario == nil then
    error("bad argument #1 to 'incomplete' (make: scenario = <scenario id> required: Make lists incomplete executions per scenario)", 2)
  end
  local sid = scenario_id(opts.scenario, "incomplete")
  local pat = C.pattern(opts.reason, "incomplete")
  local fp = C.fingerprint_arg(opts.fingerprint, "incomplete")
  local since, till, resolved = opts.since, opts["until"], C.resolved_opt(opts.resolved, "incomplete")
  local filter
  if pat or fp or since or till or resolved ~= nil then
    filter = function(rec)
      if resolved ~= nil and (rec.resolved and true or false) ~= resolved then return false end
      local t = C.iso_time(rec.created)
      if since and t and t < since then return false end
      if till and t and t >= till then return false end
      if pat and not (type(rec.reason) == "string" and pat(rec.reason)) then return false end
      if fp and not (type(rec.reason) == "string" and core.fingerprint(rec.reason) == fp) then return false end
      return true
    end
  end
  return C.offset_iter {
    page = math.min(opts.page or 100, 10000), limit = opts.limit, filter = filter,
    map = function(rec)
      local it = item_obj(self, rec, sid)
      if it.scenario_name == nil then it.scenario_name = scenario_name(self, sid, rec.id) end
      return it
    end,
    fetch = function(offset, n)
      local q = pg({ scenarioId = sid, ["pg[offset]"] = offset, ["pg[limit]"] = n }, opts)
      local data, err, code = api(self, { path = "/dlqs", query = q })
      if not data then return nil, err, code end
      return data.dlqs or {}
    end,
  }
end

-- src:incomplete_item(id) -> item
function Source:incomplete_item(id)
  if type(id) ~= "string" and type(id) ~= "number" then
    error("bad argument #1 to 'incomplete_item' (id expected, got " .. type(id) .. ")", 2)
  end
  local data, err, code = api(self, { path = "/dlqs/" .. tostring(id) })
  if not data then return nil, err, code end
  if type(data.dlq) ~= "table" then return nil, "make: GET /dlqs/" .. tostring(id) .. ": no dlq in the response", "invalid" end
  return item_obj(self, data.dlq)
end

local function isrc(it) return C.src_of(it) end

function Item:refresh() return isrc(self):incomplete_item(self.id) end

-- item:blueprint() -> bp (rd.blueprint)
function Item:blueprint()
  local src = isrc(self)
  local data, err, code = api(src, { path = "/dlqs/" .. self.id .. "/blueprint" })
  if not data then return nil, err, code end
  local bp = data.response and data.response.blueprint
  if bp == nil then return nil, "make: no blueprint in the response for " .. self.id, "not_found" end
  if type(bp) == "string" then bp = src._rd.json.decode(bp) or bp end
  if src._rd.blueprint == nil then return bp end -- no blueprint toolkit: the decoded table
  local b, berr = src._rd.blueprint(bp)
  if not b then return nil, "make: blueprint of " .. self.id .. ": " .. tostring(berr), "invalid" end
  return b
end

-- item:bundle() -> the failed module's input bundle
function Item:bundle()
  local data, err, code = api(isrc(self), { path = "/dlqs/" .. self.id .. "/bundle" })
  if not data then return nil, err, code end
  if data.response == nil then return nil, "make: no bundle stored for " .. self.id, "not_found" end
  return data.response
end

-- item:logs{status, from, to, limit, page, sort_by, sort_dir} -> iterator
function Item:logs(opts)
  opts = opts or {}
  C.check_table(opts, 1, "logs")
  if opts.status ~= nil and opts.status ~= 1 and opts.status ~= 2 and opts.status ~= 3 then
    error("bad argument #1 to 'logs' (status must be 1 success, 2 warning or 3 error)", 2)
  end
  local src, id = isrc(self), self.id
  return C.offset_iter {
    page = opts.page or 100, limit = opts.limit, map = log_obj,
    fetch = function(offset, n)
      local q = pg({ status = opts.status, from = opts.from and math.floor(opts.from) or nil,
        to = opts.to and math.floor(opts.to) or nil, ["pg[offset]"] = offset, ["pg[limit]"] = n }, opts)
      local data, err, code = api(src, { path = "/dlqs/" .. id .. "/logs", query = q })
      if not data then return nil, err, code end
      return data.dlqLogs or {}
    end,
  }
end

-- item:log(log_id) -> one retry log
function Item:log(log_id)
  local data, err, code = api(isrc(self), { path = "/dlqs/" .. self.id .. "/logs/" .. tostring(log_id) })
  if not data then return nil, err, code end
  if type(data.dlqLog) ~= "table" then return nil, "make: no dlqLog in the response", "invalid" end
  return log_obj(data.dlqLog)
end

-- item:patch{blueprint = bp | table | json, failer = module_id} -> item
-- The blueprint goes to Make as a JSON string (as its API wants).
function Item:patch(opts)
  C.check_table(opts, 1, "patch")
  local src = isrc(self)
  local rd = src._rd
  if opts.blueprint == nil and opts.failer == nil then
    error("bad argument #1 to 'patch' (blueprint and/or failer expected)", 2)
  end
  local body = {}
  local bp
  if opts.blueprint ~= nil then
    local b, err = opts.blueprint, nil
    if type(b) ~= "userdata" then b, err = rd.blueprint(opts.blueprint) end
    if not b then return nil, "invalid blueprint: " .. tostring(err), "invalid" end
    bp = b
    body.blueprint = b:json()
  end
  if opts.failer ~= nil then
    local f = math.tointeger(tonumber(opts.failer))
    if not f or f < 1 then error("bad argument #1 to 'patch' (failer must be a module id)", 2) end
    if bp and bp:module(f) == nil then return nil, string.format("failer: module %d is not in the blueprint", f), "invalid" end
    body.failer = f
  end
  return C.mutate(src, {
    action = "patch", id = self.id,
    dry = function()
      local cur, err, code = src:incomplete_item(self.id)
      if not cur then return nil, err, code end
      local details = { id = self.id, failer = body.failer }
      if bp then
        local old = cur:blueprint()
        details.diff = old and old:diff(bp) or nil
      end
      return details, string.format("would patch make incomplete execution %s%s%s", self.id,
        details.diff and string.format(" (%d blueprint change(s))", #details.diff) or "",
        body.failer and string.format(" (failer %d)", body.failer) or "")
    end,
  }, function()
    local data, err, code = api(src, { method = "PATCH", path = "/dlqs/" .. self.id, json = body })
    if not data then return nil, err, code end
    local it = {}
    for k, v in pairs(self) do it[k] = v end
    if type(data.dlq) == "table" and data.dlq.failer then it.failer = data.dlq.failer end
    return setmetatable(it, getmetatable(self))
  end)
end

local function resolved_msg(it)
  return string.format("incomplete execution %s is resolved already; pass safe = false to retry anyway", it.id)
end

-- ---------------------------------------------------------------------------
-- following a retry (wait = true)
--
-- Make queues a retry: its answer comes before the run, and the attempt is
-- logged in the item's logs (GET /dlqs/{id}/logs: status 1 success, 2
-- warning, 3 error) when it has ended. To report a retry's real outcome,
-- the logs recorded since a while before the retry are read before it is
-- sent (what was there already), then polled after it (C.wait: backoff, a
-- timeout) until a log that was not there shows up: the oldest such log is
-- the attempt. The window starts FOLLOW_SKEW seconds before the retry, for
-- a clock skew between this host and Make. Two retries of one item at the
-- same time (another process) may each take the other's log.
local FOLLOW_SKEW = 300
local LOG_STATUS = { [1] = "success", [2] = "warning", [3] = "error" }
local MAX_LOGS = 1000

local wait_opts = C.wait_opts

-- recent(src, id, from) -> the item's logs since `from` | nil, msg, code
local function recent(src, id, from)
  local list = {}
  local ok, err = pcall(function()
    for l in Item.logs(setmetatable({ id = id }, src._mt.item), { from = from, limit = MAX_LOGS }) do
      list[#list + 1] = l
    end
  end)
  if ok then return list end
  if src._rd.is_canceled(err) or type(err) ~= "table" or err.code == nil then error(err, 0) end
  return nil, tostring(err.message), err.code
end

-- before(src, id) -> seen = {from, ids} | nil, msg, code: the logs an item
-- has before its retry is sent
local function before(src, id)
  local from = math.floor(src._rd.time()) - FOLLOW_SKEW
  local list, err, code = recent(src, id, from)
  if not list then return nil, err, code end
  local ids = {}
  for _, l in ipairs(list) do ids[tostring(l.id)] = true end
  return { from = from, ids = ids }
end

-- follow(src, id, seen, o [, deadline]) -> attempt | nil, msg, code
-- attempt = {id, status = "success" | "warning" | "error", execution (the
-- run's imtId), log, duration (ms), operations, transfer}; "timeout" when
-- no new log showed by the deadline (o.timeout from now without one).
local function follow(src, id, seen, o, deadline)
  local function look()
    local list, err, code = recent(src, id, seen.from)
    if not list then return nil, err, code end
    local new
    for _, l in ipairs(list) do
      if not seen.ids[tostring(l.id)] and LOG_STATUS[l.status]
        and (not new or (l.timestamp or 0) < (new.timestamp or 0)) then new = l end
    end
    if not new then return { id = id, status = "queued" } end
    return { id = id, status = LOG_STATUS[new.status], execution = new.execution_id, log = new,
             duration = new.duration, operations = new.operations, transfer = new.transfer }
  end
  local rd = src._rd
  deadline = deadline or rd.now() + o.timeout
  local cur, err, code = look()
  if cur and cur.status == "queued" then
    local left = deadline - rd.now()
    if left > 0 then
      cur, err, code = C.wait(rd, cur, { timeout = left, interval = o.interval, max_interval = o.max_interval,
        what = "the retry of make incomplete execution" }, look)
    else
      cur, err, code = nil, "the retry of make incomplete execution " .. id .. " still queued", "timeout"
    end
  end
  if not cur and code == "timeout" then
    return nil, "make: " .. err .. ": Make has not logged its outcome yet (item:logs() shows it when it does)",
      "timeout"
  end
  return cur, err, code
end

-- item:retry{safe = true, wait, timeout, interval, max_interval}
-- -> {status = "queued", id} (Make runs it later) | with wait = true:
-- {id, status = "success" | "warning" | "error", success, execution, log,
-- duration, operations, transfer} once Make has logged the attempt, or
-- nil, msg, "timeout" (it stays queued)
function Item:retry(opts)
  opts = opts or {}
  C.check_table(opts, 1, "retry")
  local src = isrc(self)
  local safe = opts.safe ~= false
  local fo, ferr, fcode = wait_opts(opts)
  if fo == false then return nil, ferr, fcode end
  local wait = fo ~= nil
  local cur = self
  if safe then
    local c, err, code = src:incomplete_item(self.id)
    if not c then return nil, err, code end
    cur = c
    if cur.resolved then return nil, resolved_msg(cur), "conflict" end
  end
  local seen
  local r, err, code = C.mutate(src, {
    action = "retry", id = self.id,
    dry = function()
      if not safe then
        local c, cerr, ccode = src:incomplete_item(self.id)
        if not c then return nil, cerr, ccode end
        cur = c
      end
      return { id = self.id, scenario = cur.scenario, status = "dry_run", forced = cur.resolved or nil },
        string.format("would retry make incomplete execution %s (scenario %s)", self.id, tostring(cur.scenario))
    end,
  }, function()
    if wait then -- nothing is sent when the logs cannot be read to follow it
      local b, berr, bcode = before(src, self.id)
      if not b then return nil, "make: retry of " .. self.id .. " not sent: " .. tostring(berr), bcode end
      seen = b
    end
    local data, perr, pcode = api(src, { method = "POST", path = "/dlqs/" .. self.id .. "/retry" })
    if not data then return nil, perr, pcode end
    return { id = self.id, status = "queued", queued = true, raw = data }
  end)
  if not r or r.dry_run or not wait then return r, err, code end
  local a, aerr, acode = follow(src, self.id, seen, fo)
  if not a then return nil, aerr, acode end
  a.success, a.raw = a.status ~= "error", r.raw
  return a
end

-- item:delete() -> true
function Item:delete()
  local src = isrc(self)
  return C.mutate(src, {
    action = "delete", id = self.id,
    dry = function()
      local c, err, code = src:incomplete_item(self.id)
      if not c then return nil, err, code end
      return { id = self.id, deleted = 0, would_delete = 1, errors = C.list() },
        "would delete make incomplete execution " .. self.id
    end,
  }, function()
    if self.scenario then -- (the gated call inside is part of this one)
      local r, err, code = src:delete_incomplete { ids = { self.id }, scenario = self.scenario }
      if not r then return nil, err, code end
      return true
    end
    local data, err, code = api(src, { method = "DELETE", path = "/dlqs/" .. self.id })
    if not data then return nil, err, code end
    return true
  end)
end

function Item:execution()
  return C.unsupported(KIND, "reading the execution of an incomplete execution",
    "the item's execution_id names it in Make's scenario history (GET /scenarios/{id}/logs)")
end

-- ---------------------------------------------------------------------------
-- bulk

-- select_targets(src, opts, except, safe, s) -> targets, interrupted
-- targets = {{id, scenario}, ...}. With ids each item is read (bounded
-- concurrency) for its scenario and resolved flag, unless safe = false and
-- the scenario is given; with all the scenario is listed. Refusals
-- (resolved, unreadable) go to s. Interrupted (SIGINT, task:cancel) nothing
-- was sent: s says so (C.drive), and the targets read so far are returned
-- for the caller to count.
local function select_targets(src, opts, except, safe, s)
  local rd, out = src._rd, {}
  if opts.ids then
    local ids = {}
    for id in C.ids_iter(opts.ids, except) do ids[#ids + 1] = tostring(id) end
    if not safe and opts.scenario then
      local sid = scenario_id(opts.scenario, "retry")
      for i, id in ipairs(ids) do out[i] = { id = id, scenario = sid } end
      return out, false
    end
    local cut = C.drive(rd, s, { targets = ids, concurrency = opts.concurrency or src._bulk, act = function(id)
      local it, err, code = src:incomplete_item(id)
      if not it then
        C.outcome(s, id, "failed", { message = err, code = code })
      elseif opts.scenario and tostring(it.scenario) ~= tostring(opts.scenario) then
        -- not in the selected scenario: not part of this call
      elseif it.resolved and safe then
        C.outcome(s, it.id, "skipped", { message = resolved_msg(it) })
      else
        out[#out + 1] = { id = it.id, scenario = it.scenario }
      end
    end })
    return out, cut
  end
  local sid = scenario_id(opts.scenario, "retry")
  local ok, err = pcall(function()
    for it in src:incomplete { scenario = sid, resolved = "any", fingerprint = opts.fingerprint } do
      if not except[tostring(it.id)] then
        if it.resolved and safe then C.outcome(s, it.id, "skipped", { message = resolved_msg(it) })
        else out[#out + 1] = { id = it.id, scenario = sid } end
      end
    end
  end)
  if ok then return out, false end
  if not rd.is_canceled(err) then error(err, 0) end -- a listing that fails raises, as before
  s.interrupted, s.more = true, true -- the rest of the listing was not read
  return out, true
end

local CHUNK = 100

-- src:retry{ids = {...} | all = true, except, scenario, safe = true, concurrency, progress,
--           on_result, wait, timeout, interval, max_interval}
-- -> summary (common.summary): {total, succeeded, queued, failed, skipped, not_attempted,
-- unknown, errors, results}. Make queues retries: without wait an accepted
-- one is `queued` (not `succeeded`); with wait = true each is followed in
-- its logs (see follow) until Make logged it -- `succeeded` (success or
-- warning) or `failed` (error), with the run's imtId as `execution` -- or
-- until `timeout` seconds (300) after the last request: `unknown`.
-- Retries are sent as POST /dlqs/retry {ids} per scenario in chunks of 100
-- (after the safe checks); forced (safe = false) retry{all} without wait is
-- Make's one request {all = true, exceptIds}. Interrupted (SIGINT,
-- task:cancel) it returns its summary (interrupted = true): a chunk whose
-- request was in flight is `unknown` (Make may have queued it), the chunks
-- never sent `not_attempted`, the retries sent but not followed `queued`.
function Source:retry(opts)
  C.check_table(opts, 1, "retry")
  local rd = self._rd
  if opts.scenario == nil and self.scenario ~= nil then
    opts = setmetatable({ scenario = self.scenario }, { __index = opts })
  end
  if opts.ids == nil and not opts.all then return nil, "retry needs ids = {...} or all = true", "invalid" end
  if opts.ids ~= nil and opts.all then return nil, "retry takes ids or all = true, not both", "invalid" end
  if opts.all and opts.scenario == nil then
    return nil, "make: retry{all = true} needs scenario = <scenario id>", "invalid"
  end
  local except = C.set_of(opts.except, "except", "retry")
  if opts.ids then C.set_of(opts.ids, "ids", "retry") end
  if C.fingerprint_arg(opts.fingerprint, "retry") and opts.ids then
    return nil, "make: fingerprint selects from the scenario's listing: pass all = true (with scenario), not ids",
      "invalid"
  end
  local safe = opts.safe ~= false
  local fo, ferr, fcode = wait_opts(opts)
  if fo == false then return nil, ferr, fcode end
  local wait = fo ~= nil
  local s = C.summary(opts)
  local dry = C.dry_run(rd)
  if opts.all and not safe and not dry and not wait and not opts.fingerprint and not C.ledger(self) then
    -- forced: Make's own bulk form, one request {all = true, exceptIds}
    -- (a dry run counts the targets below instead)
    local sid = scenario_id(opts.scenario, "retry")
    local body = { all = true }
    if opts.except and #opts.except > 0 then
      body.exceptIds = {}
      for i, id in ipairs(opts.except) do body.exceptIds[i] = tostring(id) end
    end
    local op = { action = "retry" } -- how many: known from the answer
    local data, rerr, rcode = C.mutate(self, op, function()
      local d, e, c = api(self, { method = "POST", path = "/dlqs/retry", query = { scenarioId = sid }, json = body })
      if d then
        op.ids = {}
        for _, id in ipairs(d.dlqs or {}) do
          if not except[tostring(id)] then op.ids[#op.ids + 1] = tostring(id) end
        end
      end
      return d, e, c
    end)
    if not data then return nil, rerr, rcode end
    s.queued = 0
    for _, id in ipairs(op.ids) do C.outcome(s, id, "queued") end
    return s
  end
  local concurrency = opts.concurrency or self._bulk
  local targets, cut = select_targets(self, opts, except, safe, s)
  if cut then -- nothing was sent
    for _, t in ipairs(targets) do C.outcome(s, t.id, "not_attempted") end
    return s
  end
  if dry then s.dry_run, s.action, s.would = true, "retry", 0 end
  local bar = not dry and C.progress(rd, opts.progress, s.total + #targets, "retrying")

  -- wait: what each item's logs hold before its retry is sent
  local seen = {}
  if wait and not dry then
    local ready = {}
    cut = C.drive(rd, s, { targets = targets, id = function(t) return t.id end, concurrency = concurrency,
      act = function(t)
        local b, err, code = before(self, t.id)
        if b then
          seen[t.id], ready[#ready + 1] = b, t
        else
          C.outcome(s, t.id, "failed", { message = "not retried: its logs cannot be read to follow the retry: " ..
            tostring(err), code = code })
        end
      end })
    if cut then
      for _, t in ipairs(ready) do C.outcome(s, t.id, "not_attempted") end
      return s
    end
    targets = ready
  end

  -- send: one request per scenario and chunk of CHUNK ids
  local groups, order = {}, {}
  for _, t in ipairs(targets) do
    local k = tostring(t.scenario)
    if not groups[k] then groups[k] = {}; order[#order + 1] = k end
    local g = groups[k]
    g[#g + 1] = t.id
  end
  local chunks = {}
  for _, k in ipairs(order) do
    local ids = groups[k]
    for i = 1, #ids, CHUNK do
      chunks[#chunks + 1] = { scenario = k, ids = table.move(ids, i, math.min(#ids, i + CHUNK - 1), 1, {}) }
    end
  end
  local queued = {} -- ids Make queued, to follow (wait)
  local function send(c)
    -- the gate may narrow c.ids (the ledger: items another host has or did)
    local op = { action = "retry", ids = c.ids, quiet = true }
    local data, rerr, rcode = C.mutate(self, op, function()
      local d, e, code = api(self, { method = "POST", path = "/dlqs/retry", query = { scenarioId = c.scenario },
        json = { ids = c.ids } })
      if d and d.dlqs ~= nil then -- what Make did not queue was not done
        local accepted = {}
        for _, id in ipairs(d.dlqs) do accepted[tostring(id)] = true end
        op.outcomes = {}
        for _, id in ipairs(c.ids) do if not accepted[id] then op.outcomes[id] = "failed" end end
      end
      return d, e, code
    end)
    for _, k in ipairs(op.skipped or {}) do C.outcome(s, k.id, "skipped", { message = k.message, code = k.code }) end
    if data and data.dry_run then
      for _, id in ipairs(c.ids) do C.outcome(s, id, "would") end
    elseif not data then
      for _, id in ipairs(c.ids) do C.outcome(s, id, "failed", { message = rerr, code = rcode }) end
    else
      local accepted = {}
      for _, id in ipairs(data.dlqs or {}) do accepted[tostring(id)] = true end
      for _, id in ipairs(c.ids) do
        if accepted[id] or data.dlqs == nil then
          -- queued, not done: Make runs it later (its logs tell the outcome)
          if wait and not dry then queued[#queued + 1] = id else C.outcome(s, id, "queued") end
        else
          C.outcome(s, id, "failed", { message = "make did not queue incomplete execution " .. id .. " for retry" })
        end
      end
    end
  end
  local ci = 0
  cut = C.drive(rd, s, {
    targets = function() ci = ci + 1; return chunks[ci] end, id = function(c) return c end,
    concurrency = 1, counts_rest = true,
    act = function(c)
      c.started = true
      local ok, err = pcall(send, c)
      if not ok then
        if rd.is_canceled(err) then error(err, 0) end -- C.drive settles the chunk
        for _, id in ipairs(c.ids) do C.outcome(s, id, "failed", { message = err }) end
      end
      if bar then bar.update(s) end
    end,
    settle = function(c) -- its request was in flight: Make may have queued it
      for _, id in ipairs(c.ids) do
        C.outcome(s, id, "unknown", { message = "interrupted while Make was asked to retry it: it may be " ..
          "queued (item:logs() shows whether it ran)" })
      end
      return true
    end,
  })
  if cut then
    for _, c in ipairs(chunks) do
      if not c.started then for _, id in ipairs(c.ids) do C.outcome(s, id, "not_attempted") end end
    end
    for _, id in ipairs(queued) do
      C.outcome(s, id, "queued", { message = "interrupted before its outcome was followed: queued" })
    end
    if bar then bar.finish(s) end
    return s
  end

  -- wait: follow each queued retry in its logs, one deadline for all
  if #queued > 0 then
    local deadline, fi = rd.now() + fo.timeout, 0
    cut = C.drive(rd, s, {
      targets = function() fi = fi + 1; return queued[fi] end, concurrency = concurrency, counts_rest = true,
      act = function(id)
        local a, err, code = follow(self, id, seen[id], fo, deadline)
        if not a then -- queued; its outcome is not known (timeout, logs unreadable)
          C.outcome(s, id, "unknown", { message = err, code = code })
        elseif a.status == "error" then
          C.outcome(s, id, "failed", { execution = a.execution, code = "failed", message = string.format(
            "Make logged the retry of %s as an error (execution %s)", id, tostring(a.execution)) })
        else
          C.outcome(s, id, "succeeded", { execution = a.execution })
        end
        if bar then bar.update(s) end
      end,
      settle = function(_, id)
        C.outcome(s, id, "queued", { message = "interrupted while following its logs: queued, outcome not known" })
        return true
      end,
    })
    if cut then
      for k = fi + 1, #queued do
        C.outcome(s, queued[k], "queued", { message = "interrupted before its outcome was followed: queued" })
      end
    end
  end
  if bar then bar.finish(s) end
  if dry then
    s.would_retry = s.would
    local sample = {}
    for i = 1, math.min(3, #targets) do sample[i] = targets[i].id end
    io.stderr:write(string.format("dry-run: would retry %d make incomplete execution(s)%s%s\n", s.would_retry,
      s.skipped > 0 and string.format(", skipping %d", s.skipped) or "",
      #sample > 0 and (": " .. table.concat(sample, ", ") .. (#targets > 3 and ", ..." or "")) or ""))
    return s
  end
  s.queued = s.queued or 0
  return s
end

-- src:delete_incomplete{ids | all = true, confirmed = true, except, scenario, fingerprint}
-- -> {deleted, ids, errors}
function Source:delete_incomplete(opts)
  C.check_table(opts, 1, "delete_incomplete")
  local rd = self._rd
  if opts.scenario == nil and self.scenario ~= nil then
    opts = setmetatable({ scenario = self.scenario }, { __index = opts })
  end
  if opts.ids == nil and not opts.all then return nil, "delete_incomplete needs ids = {...} or all = true", "invalid" end
  if opts.all and opts.confirmed ~= true then
    return nil, "refusing to delete all incomplete executions without confirmed = true (Make would answer IM004)", "invalid"
  end
  if opts.scenario == nil and opts.all then
    return nil, "make: delete_incomplete{all = true} needs scenario = <scenario id> (DELETE /dlqs is per scenario)", "invalid"
  end
  if C.fingerprint_arg(opts.fingerprint, "delete_incomplete") or (opts.all and C.ledger(self)) then
    -- Make deletes by ids or everything: the group's ids, from the listing
    -- (a ledger leases each item by its id, too)
    if opts.ids then
      return nil, "make: fingerprint selects from the scenario's listing: pass all = true (with scenario), not ids",
        "invalid"
    end
    local except = C.set_of(opts.except, "except", "delete_incomplete")
    local ids = {}
    for it in self:incomplete { scenario = opts.scenario, resolved = "any", fingerprint = opts.fingerprint } do
      if not except[tostring(it.id)] then ids[#ids + 1] = it.id end
    end
    if #ids == 0 then return { deleted = 0, ids = {}, errors = {} } end
    return self:delete_incomplete { scenario = opts.scenario, ids = ids }
  end
  if opts.scenario == nil then
    -- ids only: read each item for its scenario, then one DELETE per scenario
    local except = C.set_of(opts.except, "except", "delete_incomplete")
    C.set_of(opts.ids, "ids", "delete_incomplete")
    local s = C.summary()
    local targets, cut = select_targets(self, { ids = opts.ids, concurrency = opts.concurrency }, except, false, s)
    if cut then error(rd.canceled, 0) end -- interrupted while reading: nothing was deleted
    local groups, order = {}, {}
    for _, t in ipairs(targets) do
      local k = tostring(t.scenario)
      if not groups[k] then groups[k] = {}; order[#order + 1] = k end
      table.insert(groups[k], t.id)
    end
    local r = { deleted = 0, ids = C.list(), errors = s.errors }
    if C.dry_run(rd) then r.dry_run, r.action, r.would_delete = true, "delete", 0 end
    for _, k in ipairs(order) do
      local g, gerr, gcode = self:delete_incomplete { scenario = k, ids = groups[k] }
      if g and g.dry_run then
        r.would_delete = r.would_delete + g.would_delete
      elseif g then
        r.deleted = r.deleted + g.deleted
        for _, id in ipairs(g.ids) do r.ids[#r.ids + 1] = id end
      else
        for _, id in ipairs(groups[k]) do C.add_error(r, { id = id, message = gerr, code = gcode }) end
      end
    end
    return r
  end
  local sid = scenario_id(opts.scenario, "delete_incomplete")
  local body = {}
  if opts.all then
    body.all = true
    if opts.except and #opts.except > 0 then
      body.exceptIds = {}
      for i, id in ipairs(opts.except) do body.exceptIds[i] = tostring(id) end
    end
  else
    local except = C.set_of(opts.except, "except", "delete_incomplete")
    body.ids = {}
    for id in C.ids_iter(opts.ids, except) do body.ids[#body.ids + 1] = tostring(id) end
  end
  local op = {
    action = "delete", ids = body.ids, -- all = true: how many is known from the answer
    dry = function(o)
      local n = body.ids and #body.ids
      if not n then
        local ex = C.set_of(opts.except, "except", "delete_incomplete")
        n = 0
        for it in self:incomplete { scenario = sid, resolved = "any" } do if not ex[tostring(it.id)] then n = n + 1 end end
        o.n = n
      end
      return { deleted = 0, would_delete = n, errors = C.list() },
        string.format("would delete %d make incomplete execution(s) of scenario %d", n, sid)
    end,
  }
  return C.mutate(self, op, function()
    local q = { scenarioId = sid }
    if opts.confirmed then q.confirmed = "true" end
    local data, err, code = api(self, { method = "DELETE", path = "/dlqs", query = q, json = body })
    if not data then return nil, err, code end
    local ids = data.dlqs or {}
    if body.ids then -- count what was asked for (Make answers with the deleted ids)
      local asked, kept = {}, {}
      for _, id in ipairs(body.ids) do asked[id] = true end
      for _, id in ipairs(ids) do if asked[tostring(id)] then kept[#kept + 1] = tostring(id) end end
      ids = kept
    end
    op.ids = ids
    return { deleted = #ids, ids = C.list(ids), errors = C.list() }
  end)
end

-- src:groups{scenario, since, until, resolved = false, limit} -> failure groups
-- of the scenario's incomplete executions, computed while paging them
function Source:groups(opts)
  opts = opts or {}
  C.check_table(opts, 1, "groups")
  local it = self:incomplete { scenario = opts.scenario, since = opts.since, ["until"] = opts["until"],
    resolved = opts.resolved }
  return C.groups(it, opts)
end

function Item:resolve()
  return C.unsupported(KIND, "marking an incomplete execution handled without a retry",
    "delete it (item:delete(), redrive delete ID) or retry it")
end
function Source:resolve()
  return C.unsupported(KIND, "marking incomplete executions handled without a retry",
    "delete them (src:delete_incomplete{ids = {...}}, redrive delete ID...) or retry them")
end

-- ---------------------------------------------------------------------------
-- what Make's DLQ API does not cover

local EXEC_HINT = "Make's execution history (GET /scenarios/{id}/logs) is not covered by this source; " ..
  "work with incomplete executions: src:incomplete{scenario = id}"
function Source:executions() return C.unsupported(KIND, "listing executions", EXEC_HINT) end
function Source:execution() return C.unsupported(KIND, "reading an execution", EXEC_HINT) end
function Source:health() return C.unsupported(KIND, "health", EXEC_HINT) end

function M.new(rd, opts)
  local base = opts.base_url
  if base == nil then
    local zone = opts.zone or "eu1"
    base = ZONES[zone]
    if not base then
      return nil, "make: unknown zone '" .. tostring(zone) ..
        "': expected eu1, eu2, us1, us2, eu1.make.celonis or us1.make.celonis (or pass base_url)", "invalid"
    end
  end
  return C.new_source(rd, opts, {
    kind = KIND, base_url = base, token_required = true, parse_error = parse_error,
    auth = function(token) return { Authorization = "Token " .. token } end,
    methods = Source, item_methods = Item, exec_methods = {},
    scenarios_instead = "edit the scenario in Make; a failed run keeps its own blueprint: " ..
      "item:blueprint() reads it, item:patch{blueprint = bp} fixes it before item:retry()",
  })
end

M.Source, M.Item = Source, Item
return M

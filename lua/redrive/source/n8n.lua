-- The `n8n` source: n8n's public REST API v1 (executions).
--
--   rd.connect{kind = "n8n", base_url = "https://n8n.example.com/api/v1", token_env = "N8N_API_KEY"}
--
-- Endpoint -> call:
--   GET    /executions?workflowId&status&includeData&limit&cursor
--                                   src:executions{...}, src:incomplete{...}, src:health{...}, exec:chain()
--   GET    /executions/{id}?includeData
--                                   src:execution(id), exec:run_data(), exec:wait{}, exec:refresh(),
--                                   src:incomplete_item(id), item:blueprint(), item:bundle()
--   POST   /executions/{id}/retry   exec:retry{}, item:retry{}, src:retry{ids | all}
--   DELETE /executions/{id}         exec:delete(), item:delete(), src:delete_incomplete{...}
--
-- n8n has no queue of incomplete executions. Here an "incomplete execution"
-- (src:incomplete) is a failed execution that has no successful retry and
-- has not been retried since (the newest failed retry stands for its chain);
-- its id is the execution's id, `failer` the node that failed, and
-- item:retry() is an n8n execution retry (POST /executions/{id}/retry: a new
-- execution, mode "retry", retryOf = the id). n8n cannot change the workflow
-- of a past execution, so item:patch is "unsupported": fix the workflow in
-- n8n, then item:retry{load_workflow = true} runs the saved workflow.
local C = require "redrive.source.common"

local M = {}
local Source, Exec, Item = {}, {}, {}
local KIND = "n8n"

local STATUS = {
  success = "success", error = "error", crashed = "error", canceled = "canceled",
  running = "running", new = "running", waiting = "running", unknown = "error",
}
local FILTER = { success = "success", error = "error", canceled = "canceled", running = "running", waiting = "waiting" }

local null
local function nn(v) if v == null then return nil end return v end
local function sid(v) v = nn(v); if v == nil then return nil end return tostring(v) end

local function ms(t) return t and math.floor(t * 1000 + 0.5) or nil end

local function exec_obj(src, rec)
  local rdata = type(rec.data) == "table" and type(rec.data.resultData) == "table" and rec.data.resultData or nil
  local started, stopped = C.iso_time(nn(rec.startedAt)), C.iso_time(nn(rec.stoppedAt))
  local e = {
    id = sid(rec.id), scenario = sid(rec.workflowId), status = STATUS[rec.status] or (rec.finished and "success" or "running"),
    mode = nn(rec.mode), started_at = started, stopped_at = stopped,
    duration = started and stopped and ms(stopped - started) or nil,
    retry_of = sid(rec.retryOf), retry_success_id = sid(rec.retrySuccessId), raw = rec,
  }
  if rdata and type(rdata.error) == "table" then
    e.error = { module = nn(rdata.lastNodeExecuted), message = nn(rdata.error.message),
      code = nn(rdata.error.name) or nn(rdata.error.httpCode) }
  end
  return setmetatable(e, src._mt.exec)
end

local function reason_of(rec)
  local rdata = type(rec.data) == "table" and rec.data.resultData
  if type(rdata) == "table" then
    local err = nn(rdata.error)
    if type(err) == "table" and type(err.message) == "string" then return err.message end
    -- else the failing node's own error
    local node = nn(rdata.lastNodeExecuted)
    local runs = node and type(rdata.runData) == "table" and rdata.runData[node]
    local last = type(runs) == "table" and runs[#runs]
    if type(last) == "table" and type(last.error) == "table" and last.error.message then return last.error.message end
  end
  return "execution " .. tostring(rec.status or "error")
end

local function item_obj(src, rec)
  local rdata = type(rec.data) == "table" and rec.data.resultData or nil
  local wf = type(rec.data) == "table" and nn(rec.data.workflowData) or nil
  local it = {
    id = sid(rec.id), scenario = sid(rec.workflowId), scenario_name = type(wf) == "table" and nn(wf.name) or nil,
    reason = reason_of(rec), created = C.iso_time(nn(rec.startedAt)), resolved = sid(rec.retrySuccessId) ~= nil,
    execution_id = sid(rec.id), failer = type(rdata) == "table" and nn(rdata.lastNodeExecuted) or nil,
    retry_of = sid(rec.retryOf), raw = rec,
  }
  it.index = it.failer
  return setmetatable(it, src._mt.item)
end

local function api(src, req) return C.api(src, req) end
local function esrc(e) return C.src_of(e) end

-- ---------------------------------------------------------------------------
-- executions

-- list(src, opts) -> iterator of raw records (newest first, as n8n lists them)
local function list(src, opts, map)
  local wf = opts.scenario
  if wf == nil then wf = src.scenario end -- the profile's default workflow
  local q = { workflowId = wf and tostring(wf) or nil,
    projectId = opts.project and tostring(opts.project) or nil }
  if opts.status ~= nil then
    local s = FILTER[opts.status]
    if not s then
      error("bad argument #1 to 'executions' (n8n status filter: success, error, canceled, running or waiting; got " ..
        tostring(opts.status) .. ")", 3)
    end
    q.status = s
  end
  if opts.include_data then q.includeData = "true" end
  local since, till, mode = opts.since, opts["until"], opts.mode
  local filter
  if till or mode or opts.filter then
    filter = function(rec)
      if mode and rec.mode ~= mode then return false end
      local t = C.iso_time(nn(rec.startedAt))
      if till and t and t >= till then return false end
      if opts.filter and not opts.filter(rec) then return false end
      return true
    end
  end
  return C.cursor_iter {
    page = math.max(1, math.min(250, opts.page or 100)), limit = opts.limit, filter = filter, map = map,
    -- n8n lists newest first: an execution older than `since` ends the listing
    stop = since and function(rec)
      local t = C.iso_time(nn(rec.startedAt))
      return t ~= nil and t < since
    end or nil,
    fetch = function(cursor, n)
      q.limit, q.cursor = n, cursor
      local data, err, code = api(src, { path = "/executions", query = q })
      if not data then return nil, err, code end
      return data.data or {}, nn(data.nextCursor)
    end,
  }
end

-- src:executions{scenario (workflow id), project, status, mode, since, until, limit, include_data}
function Source:executions(opts)
  opts = opts or {}
  C.check_table(opts, 1, "executions")
  return list(self, opts, function(rec) return exec_obj(self, rec) end)
end

-- src:execution(id, {include_data = true}) -> exec
function Source:execution(id, opts)
  if type(id) ~= "string" and type(id) ~= "number" then
    error("bad argument #1 to 'execution' (id expected, got " .. type(id) .. ")", 2)
  end
  local with = not (opts and opts.include_data == false)
  local data, err, code = api(self, { path = "/executions/" .. tostring(id),
    query = with and { includeData = "true" } or nil })
  if not data then return nil, err, code end
  return exec_obj(self, data)
end

function Exec:refresh() return esrc(self):execution(self.id) end

-- exec:run_data() -> {[node] = {input, output, error, duration, operations, runs}}
function Exec:run_data()
  local src = esrc(self)
  local rec = self.raw
  if not (type(rec.data) == "table" and type(rec.data.resultData) == "table") then
    local e, err, code = src:execution(self.id)
    if not e then return nil, err, code end
    rec = e.raw
  end
  local rd = type(rec.data) == "table" and rec.data.resultData
  if type(rd) ~= "table" or type(nn(rd.runData)) ~= "table" then
    return nil, "n8n: execution " .. self.id .. " has no run data (saving execution data may be off for this workflow)", "not_found"
  end
  local out = {}
  for node, runs in pairs(rd.runData) do
    local last = type(runs) == "table" and runs[#runs] or {}
    local items
    local main = type(last.data) == "table" and nn(last.data.main)
    if type(main) == "table" and type(main[1]) == "table" then
      items = {}
      for i, x in ipairs(main[1]) do items[i] = type(x) == "table" and nn(x.json) or x end
    end
    local dur = 0
    for _, r in ipairs(runs) do dur = dur + (tonumber(nn(r.executionTime)) or 0) end
    out[node] = {
      output = items, error = nn(last.error), duration = dur, operations = #runs,
      started_at = tonumber(nn(last.startTime)) and nn(last.startTime) / 1000 or nil, runs = runs,
    }
  end
  return out
end

-- exec:wait{timeout, interval} -> exec | nil, msg, "timeout"
function Exec:wait(opts)
  local src = esrc(self)
  return C.wait(src._rd, self, opts, function(id) return src:execution(id, { include_data = false }) end)
end

local function retry_once(src, e, opts)
  local rd = src._rd
  local safe = opts.safe ~= false
  local cur, err, code = src:execution(e.id, { include_data = false })
  if not cur then return nil, err, code end
  local refusal = C.refusal(cur)
  if refusal and safe then return nil, refusal, "conflict" end
  if rd.is_dry_run() then
    return C.dry(rd, "retry_execution", { id = cur.id, scenario = cur.scenario, forced = refusal ~= nil, status = "dry_run" },
      string.format("would retry n8n execution %s (workflow %s)%s", cur.id, tostring(cur.scenario),
        refusal and " (forced: " .. refusal .. ")" or ""))
  end
  if refusal then io.stderr:write("redrive: forced retry (safe = false) of n8n execution ", cur.id, "\n") end
  local body = rd.json.object {}
  if opts.load_workflow ~= nil then body.loadWorkflow = opts.load_workflow and true or false end
  local data, rerr, rcode = api(src, { method = "POST", path = "/executions/" .. cur.id .. "/retry", json = body })
  if not data then return nil, rerr, rcode end
  local new = exec_obj(src, data)
  new.retry_of = new.retry_of or cur.id
  return new
end

-- exec:retry{safe = true, load_workflow, attempts, backoff, timeout} -> exec
function Exec:retry(opts)
  opts = opts or {}
  C.check_table(opts, 1, "retry")
  local src = esrc(self)
  if opts.attempts == nil then return retry_once(src, self, opts) end
  return C.retry_attempts(src._rd, self, opts, function(cur, o) return retry_once(src, cur, o) end,
    function(new, o) return new:wait(o) end)
end

-- exec:chain() -> {exec...}: up through retryOf, down through retrySuccessId
-- and the workflow's listing (retries whose retryOf is in the chain).
function Exec:chain(opts)
  opts = opts or {}
  local src = esrc(self)
  local function get(id) return src:execution(id, { include_data = false }) end
  return C.chain(self, get, {
    up = function(e) return e.retry_of end,
    children = function(members)
      if not self.scenario then return {} end
      local found = {}
      local changed = true
      local scanned = {}
      for e in src:executions { scenario = self.scenario, limit = opts.scan or 500 } do scanned[#scanned + 1] = e end
      while changed do
        changed = false
        for _, e in ipairs(scanned) do
          if e.retry_of and members[e.retry_of] and not members[e.id] then
            members[e.id] = e
            found[#found + 1] = e
            changed = true
          end
        end
      end
      return found
    end,
  })
end

-- exec:delete() -> true
function Exec:delete()
  local src = esrc(self)
  if src._rd.is_dry_run() then
    local cur, err, code = src:execution(self.id, { include_data = false })
    if not cur then return nil, err, code end
    return C.dry(src._rd, "delete_execution", { id = self.id, scenario = cur.scenario },
      "would delete n8n execution " .. self.id)
  end
  local data, err, code = api(src, { method = "DELETE", path = "/executions/" .. self.id })
  if not data then return nil, err, code end
  return true
end

-- ---------------------------------------------------------------------------
-- incomplete executions: failed executions without a successful retry

-- src:incomplete{scenario, resolved = false, reason, since, until, limit}
function Source:incomplete(opts)
  opts = opts or {}
  C.check_table(opts, 1, "incomplete")
  local pat = C.pattern(opts.reason, "incomplete")
  local want_resolved = opts.resolved == true
  local retried = {} -- ids some newer execution retries (listed newest first)
  local o = {
    scenario = opts.scenario, status = "error", include_data = true, since = opts.since,
    ["until"] = opts["until"], limit = opts.limit, page = opts.page or 50,
  }
  o.filter = function(rec)
    local id, of = sid(rec.id), sid(rec.retryOf)
    local was_retried = retried[id]
    if of then retried[of] = true end
    if STATUS[rec.status] ~= "error" then return false end
    local resolved = sid(rec.retrySuccessId) ~= nil
    if want_resolved ~= resolved then return false end
    if not resolved and was_retried then return false end
    if type(rec.data) ~= "table" then
      -- the listing came without data (an older n8n, a proxy): read the
      -- execution for its error and failed node
      local full = api(self, { path = "/executions/" .. id, query = { includeData = "true" } })
      if type(full) == "table" and sid(full.id) == id and type(full.data) == "table" then rec.data = full.data end
    end
    if pat and not reason_of(rec):find(pat) then return false end
    return true
  end
  return list(self, o, function(rec) return item_obj(self, rec) end)
end

-- src:incomplete_item(id) -> item (the failed execution, with its data)
function Source:incomplete_item(id)
  if type(id) ~= "string" and type(id) ~= "number" then
    error("bad argument #1 to 'incomplete_item' (id expected, got " .. type(id) .. ")", 2)
  end
  local data, err, code = api(self, { path = "/executions/" .. tostring(id), query = { includeData = "true" } })
  if not data then return nil, err, code end
  return item_obj(self, data)
end

local function isrc(it) return C.src_of(it) end

function Item:refresh() return isrc(self):incomplete_item(self.id) end
function Item:execution() return isrc(self):execution(self.id) end

local function full(it)
  if type(it.raw.data) == "table" then return it.raw end
  local x, err, code = isrc(it):incomplete_item(it.id)
  if not x then return nil, err, code end
  return x.raw
end

-- item:blueprint() -> bp: the workflow snapshot stored with the execution
function Item:blueprint()
  local rec, err, code = full(self)
  if not rec then return nil, err, code end
  local wf = type(rec.data) == "table" and nn(rec.data.workflowData)
  if type(wf) ~= "table" then return nil, "n8n: execution " .. self.id .. " has no workflow snapshot", "not_found" end
  local bp, berr = isrc(self)._rd.blueprint(wf)
  if not bp then return nil, "n8n: workflow snapshot of " .. self.id .. ": " .. tostring(berr), "invalid" end
  return bp
end

-- item:bundle() -> the items the failed node received: the output of the
-- node before it (run data `source`, else the workflow's connections)
function Item:bundle()
  local rec, err, code = full(self)
  if not rec then return nil, err, code end
  local rdata = type(rec.data) == "table" and rec.data.resultData
  local node = type(rdata) == "table" and nn(rdata.lastNodeExecuted)
  local runData = type(rdata) == "table" and nn(rdata.runData)
  if not node or type(runData) ~= "table" then
    return nil, "n8n: execution " .. self.id .. " has no run data", "not_found"
  end
  local prev
  local runs = runData[node]
  local last = type(runs) == "table" and runs[#runs]
  local srcs = type(last) == "table" and nn(last.source)
  if type(srcs) == "table" and type(srcs[1]) == "table" then prev = nn(srcs[1].previousNode) end
  if not prev then
    local wf = type(rec.data) == "table" and nn(rec.data.workflowData)
    local conns = type(wf) == "table" and nn(wf.connections)
    for from, c in pairs(type(conns) == "table" and conns or {}) do
      for _, outs in ipairs(type(c.main) == "table" and c.main or {}) do
        for _, link in ipairs(type(outs) == "table" and outs or {}) do
          if type(link) == "table" and link.node == node then prev = from end
        end
      end
    end
  end
  local pruns = prev and runData[prev]
  local plast = type(pruns) == "table" and pruns[#pruns]
  local main = type(plast) == "table" and type(plast.data) == "table" and nn(plast.data.main)
  if type(main) ~= "table" or type(main[1]) ~= "table" then
    return nil, "n8n: no input recorded for node '" .. tostring(node) .. "' of execution " .. self.id, "not_found"
  end
  local items = {}
  for i, x in ipairs(main[1]) do items[i] = type(x) == "table" and nn(x.json) or x end
  return items
end

-- item:logs{status, from, to} -> iterator: the retries of this execution
-- (its chain after it), status 1 success / 3 error
function Item:logs(opts)
  opts = opts or {}
  C.check_table(opts, 1, "logs")
  local src = isrc(self)
  local e, err, code = src:execution(self.id, { include_data = false })
  if not e then error(tostring(err) .. " (" .. tostring(code) .. ")", 0) end
  local chain = e:chain()
  local logs, seen = {}, false
  for _, x in ipairs(chain) do
    if seen then
      local st = (x.status == "success" or x.status == "warning") and 1 or 3
      local l = { id = x.id, status = st, duration = x.duration, timestamp = x.started_at, execution_id = x.id, raw = x.raw }
      if (not opts.status or opts.status == st) and (not opts.from or (x.started_at or 0) >= opts.from)
        and (not opts.to or (x.started_at or 0) < opts.to) then
        logs[#logs + 1] = l
      end
    end
    if x.id == self.id then seen = true end
  end
  local i = 0
  return function() i = i + 1; return logs[i] end
end

function Item:patch()
  return C.unsupported(KIND, "patching the workflow of a past execution",
    "fix the workflow in n8n (editor or PUT /workflows/{id}), then item:retry{load_workflow = true} " ..
    "to retry with the saved workflow")
end

-- item:retry{safe = true, load_workflow} -> {status, execution, id}
function Item:retry(opts)
  opts = opts or {}
  local src = isrc(self)
  local e = setmetatable({ id = self.id, scenario = self.scenario, raw = self.raw }, src._mt.exec)
  local new, err, code = retry_once(src, e, opts)
  if not new then return nil, err, code end
  if new.dry_run then return new end
  return { id = self.id, status = new.status, execution = new, success = new.status == "success" }
end

function Item:delete() return Exec.delete(self) end

-- ---------------------------------------------------------------------------
-- bulk

local function targets(src, opts, except, fname)
  if opts.ids then
    C.set_of(opts.ids, "ids", fname)
    return C.ids_iter(opts.ids, except), #opts.ids
  end
  local it = src:incomplete { scenario = opts.scenario, reason = opts.reason }
  return C.filter_iter(it, function(x) return not except[x.id] end)
end

local function target_id(t) return type(t) == "table" and t.id or tostring(t) end

-- src:retry{ids = {...} | all = true, except, scenario, reason, concurrency,
--           progress, safe = true, load_workflow} -> summary
-- `succeeded` counts retries n8n accepted that did not fail at once (a new
-- execution still running counts as succeeded; its outcome is in n8n).
function Source:retry(opts)
  C.check_table(opts, 1, "retry")
  if opts.ids == nil and not opts.all then return nil, "retry needs ids = {...} or all = true", "invalid" end
  if opts.ids ~= nil and opts.all then return nil, "retry takes ids or all = true, not both", "invalid" end
  local except = C.set_of(opts.except, "except", "retry")
  local it, total = targets(self, opts, except, "retry")
  local src = self
  local safe = opts.safe ~= false
  return C.bulk(self._rd, opts, {
    targets = it, total = total, id = target_id, action = "retry", noun = "n8n execution(s)",
    concurrency = opts.concurrency or self._bulk,
    check = function(t)
      if type(t) == "table" then return C.refusal(t.raw and exec_obj(src, t.raw) or t), "conflict" end
      if not safe and not src._rd.is_dry_run() then return nil end
      local e, err, code = src:execution(t, { include_data = false })
      if not e then return err, code end
      if opts.scenario and e.scenario ~= tostring(opts.scenario) then
        return "execution " .. e.id .. " belongs to workflow " .. tostring(e.scenario) .. ", not " .. tostring(opts.scenario), "invalid"
      end
      return C.refusal(e), "conflict"
    end,
    act = function(t, forced)
      local id = target_id(t)
      if forced then io.stderr:write("redrive: forced retry (safe = false) of n8n execution ", id, "\n") end
      local body = src._rd.json.object {}
      if opts.load_workflow ~= nil then body.loadWorkflow = opts.load_workflow and true or false end
      local data, err, code = api(src, { method = "POST", path = "/executions/" .. id .. "/retry", json = body })
      if not data then return nil, err, code end
      local new = exec_obj(src, data)
      if new.status == "error" then
        return nil, "retry of " .. id .. " failed: execution " .. tostring(new.id) .. " ended with an error", "http"
      end
      return true
    end,
  })
end

-- src:delete_incomplete{ids | all = true, confirmed = true, except, scenario} -> {deleted, errors}
function Source:delete_incomplete(opts)
  C.check_table(opts, 1, "delete_incomplete")
  if opts.ids == nil and not opts.all then return nil, "delete_incomplete needs ids = {...} or all = true", "invalid" end
  if opts.all and opts.confirmed ~= true then
    return nil, "refusing to delete all incomplete executions without confirmed = true", "invalid"
  end
  local except = C.set_of(opts.except, "except", "delete_incomplete")
  local it, total = targets(self, opts, except, "delete_incomplete")
  local src = self
  local s = C.bulk(self._rd, { concurrency = opts.concurrency, progress = opts.progress or false, safe = true }, {
    targets = it, total = total, id = target_id, action = "delete", verb = "deleting", noun = "n8n execution(s)",
    concurrency = opts.concurrency or self._bulk,
    act = function(t)
      local data, err, code = api(src, { method = "DELETE", path = "/executions/" .. target_id(t) })
      if not data then return nil, err, code end
      return true
    end,
  })
  local r = { deleted = s.succeeded, errors = s.errors, total = s.total }
  if s.dry_run then r.dry_run, r.action, r.would_delete = true, "delete", s.would end
  return r
end

-- src:health{scenario, since, limit, max} from the listing (with data, for
-- the failure reasons); `max` bounds how many executions are read (5000).
function Source:health(opts)
  opts = opts or {}
  C.check_table(opts, 1, "health")
  local it = list(self, { scenario = opts.scenario, since = opts.since, include_data = true,
    limit = opts.max or 5000, page = 100 }, function(rec) return exec_obj(self, rec) end)
  local h = C.health(it, opts)
  h.source = "listing"
  return h
end

function M.new(rd, opts)
  null = rd.json.null
  if opts.base_url == nil then
    return nil, "n8n: base_url required (e.g. https://n8n.example.com/api/v1)", "invalid"
  end
  return C.new_source(rd, opts, {
    kind = KIND, base_url = opts.base_url, token_required = true,
    auth = function(token) return { ["X-N8N-API-KEY"] = token } end,
    methods = Source, exec_methods = Exec, item_methods = Item,
  })
end

M.Source, M.Exec, M.Item = Source, Exec, Item
return M

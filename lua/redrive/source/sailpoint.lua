-- The `sailpoint` source: SailPoint Identity Security Cloud V3 workflow
-- executions (read-only).
--
--   rd.connect{kind = "sailpoint", tenant = "acme", token_env = "SAIL_TOKEN"}
--   rd.connect{kind = "sailpoint", base_url = "https://acme.api.identitynow.com/v3", token = ...}
--
-- Endpoint -> call:
--   GET /workflows/{id}/executions?limit&offset&count&filters
--       src:executions{scenario = workflow_id, status, since, until, started, limit, page}
--       src:count_executions{scenario, status, since, until} (X-Total-Count)
--       src:health{scenario, since, limit}
-- Filters: since/until -> start_time ge/lt, started = {eq, lt, le, gt, ge} ->
-- start_time <op> (Unix seconds), status -> status eq (success =
-- Completed, error = Failed, canceled = Canceled, running = Executing).
-- Errors keep SailPoint's detailCode, messages and trackingId (quote the
-- trackingId to SailPoint support).
local C = require "redrive.source.common"

local M = {}
local Source, Exec = {}, {}
local KIND = "sailpoint"

local STATUS = { Completed = "success", Failed = "error", Canceled = "canceled", Executing = "running" }
local REVERSE = { success = "Completed", error = "Failed", canceled = "Canceled", running = "Executing" }

-- the texts of a messages[] / causes[] list ({locale, localeOrigin, text}):
-- the English ones when several locales are there, else all of them
local function texts(list)
  local all, en = {}, {}
  if type(list) ~= "table" then return all end
  for _, m in ipairs(list) do
    if type(m) == "table" and type(m.text) == "string" then
      all[#all + 1] = m.text
      if type(m.locale) ~= "string" or m.locale:match("^[Ee][Nn]") then en[#en + 1] = m.text end
    end
  end
  return #en > 0 and en or all
end

-- {detailCode, trackingId, messages[{locale, text}], causes} | {error} | {message}
local function parse_error(status, data)
  if type(data) ~= "table" then return nil end
  if data.detailCode or data.messages then
    local parts = {}
    if type(data.detailCode) == "string" then parts[#parts + 1] = data.detailCode end
    local msgs = texts(data.messages)
    if #msgs > 0 then parts[#parts + 1] = table.concat(msgs, "; ") end
    local causes = texts(data.causes)
    local text = table.concat(parts, ": ")
    if #causes > 0 and causes[1] ~= msgs[1] then text = text .. " (causes: " .. table.concat(causes, "; ") .. ")" end
    if data.trackingId then text = text .. " [trackingId " .. tostring(data.trackingId) .. "]" end
    return text, { tracking_id = data.trackingId, detail_code = data.detailCode }
  end
  if type(data.error) == "string" then return data.error end
  if type(data.message) == "string" then return (data.message:match("^%s*(.-)%s*$")) end
end

local function ms(t) return t and math.floor(t * 1000 + 0.5) or nil end

local function exec_obj(src, rec)
  local started, stopped = C.iso_time(rec.startTime), C.iso_time(rec.closeTime)
  local e = {
    id = rec.id, scenario = rec.workflowId, status = STATUS[rec.status] or (rec.status and rec.status:lower()),
    started_at = started, stopped_at = stopped, duration = started and stopped and ms(stopped - started) or nil,
    request_id = rec.requestId, raw = rec,
  }
  if e.status == "error" then
    -- SailPoint's listing says only that it failed: one cause per workflow
    e.error = { message = "workflow execution failed" }
    e.fingerprint, e.cause = require("redrive.core").fingerprint(e.error.message, { class = "Failed" })
  end
  return setmetatable(e, src._mt.exec)
end

-- filters: status eq; start_time from since (ge) / until (lt) and from
-- started = {eq = t, lt = t, le = t, gt = t, ge = t} (Unix seconds)
local OPS = { "eq", "lt", "le", "gt", "ge" }
local function filters(opts)
  local f = {}
  if opts.status ~= nil then
    local s = REVERSE[opts.status]
    if not s then error("bad argument #1 to 'executions' (sailpoint status: success, error, canceled or running)", 4) end
    f[#f + 1] = string.format('status eq "%s"', s)
  end
  if opts.since then f[#f + 1] = "start_time ge " .. C.iso(opts.since, true) end
  if opts["until"] then f[#f + 1] = "start_time lt " .. C.iso(opts["until"], true) end
  if opts.started ~= nil then
    if type(opts.started) ~= "table" then
      error("bad argument #1 to 'executions' (started must be a table {eq|lt|le|gt|ge = unix seconds})", 4)
    end
    for k in pairs(opts.started) do
      local known = false
      for _, op in ipairs(OPS) do if k == op then known = true end end
      if not known then error("bad argument #1 to 'executions' (started." .. tostring(k) .. ": use eq, lt, le, gt or ge)", 4) end
    end
    for _, op in ipairs(OPS) do
      local t = opts.started[op]
      if t ~= nil then
        if type(t) ~= "number" then error("bad argument #1 to 'executions' (started." .. op .. " must be Unix seconds)", 4) end
        f[#f + 1] = "start_time " .. op .. " " .. C.iso(t, true)
      end
    end
  end
  return #f > 0 and table.concat(f, " and ") or nil
end

-- the workflow id: opts.scenario, else the profile's `scenario`
local function workflow(src, opts, fname)
  local wf = opts.scenario
  if wf == nil then wf = src.scenario end
  if wf == nil then
    error("bad argument #1 to '" .. fname .. "' (sailpoint: scenario = <workflow id> required)", 3)
  end
  return tostring(wf)
end

-- src:executions{scenario = workflow_id, status, fingerprint, since, until, started, limit, page}
-- page: 1..250 (SailPoint's limit); offsets advance by the records received
function Source:executions(opts)
  opts = opts or {}
  C.check_table(opts, 1, "executions")
  local wf = workflow(self, opts, "executions")
  local fp = C.fingerprint_arg(opts.fingerprint, "executions")
  local f = filters(opts)
  local page = math.max(1, math.min(250, opts.page or 250))
  local filter
  if opts.mode then filter = function() return false end -- SailPoint has no mode
  elseif fp then filter = function(rec) return exec_obj(self, rec).fingerprint == fp end end
  return C.offset_iter {
    page = page, limit = opts.limit, map = function(rec) return exec_obj(self, rec) end,
    filter = filter,
    fetch = function(offset, n)
      local data, err, code = C.api(self, { path = "/workflows/" .. wf .. "/executions",
        query = { limit = n, offset = offset, filters = f } })
      if not data then return nil, err, code end
      return data
    end,
  }
end

-- src:count_executions{scenario, status, since, until} -> n (X-Total-Count)
function Source:count_executions(opts)
  opts = opts or {}
  local wf = workflow(self, opts, "count_executions")
  local res, err, code = self._client:request { path = "/workflows/" .. wf .. "/executions",
    query = { limit = 1, offset = 0, count = "true", filters = filters(opts) } }
  if not res then return nil, err, code end
  local n = tonumber(res.headers["x-total-count"])
  if not n then return nil, "sailpoint: no X-Total-Count header in the answer", "invalid" end
  return math.tointeger(n) or n
end

-- src:health{scenario, since, limit, max}
function Source:health(opts)
  opts = opts or {}
  C.check_table(opts, 1, "health")
  local wf = workflow(self, opts, "health")
  local h = C.health(self:executions { scenario = wf, since = opts.since, limit = opts.max or 10000 }, opts)
  h.source = "listing"
  return h
end

-- src:groups{scenario, since, until, limit, max} -> failure groups of the
-- workflow's failed executions (SailPoint has no queue of incomplete ones),
-- computed while paging; `max` bounds how many are read (10000)
function Source:groups(opts)
  opts = opts or {}
  C.check_table(opts, 1, "groups")
  if C.resolved_opt(opts.resolved, "groups") ~= false then
    return C.unsupported(KIND, "resolved failures", "SailPoint keeps no resolved flag: its failed executions are the groups")
  end
  local wf = workflow(self, opts, "groups")
  return C.groups(self:executions { scenario = wf, status = "error", since = opts.since, ["until"] = opts["until"],
    limit = opts.max or 10000 }, opts)
end

local READ_ONLY = "SailPoint's API lists workflow executions only; re-run the workflow in SailPoint " ..
  "(or POST /workflows/{id}/test) to run it again"
function Source:execution()
  return C.unsupported(KIND, "reading one execution by id", "list them with src:executions{scenario = workflow_id}")
end
function Source:incomplete() return C.unsupported(KIND, "incomplete executions", READ_ONLY) end
function Source:incomplete_item() return C.unsupported(KIND, "incomplete executions", READ_ONLY) end
function Source:retry() return C.unsupported(KIND, "retrying executions", READ_ONLY) end
function Source:delete_incomplete() return C.unsupported(KIND, "deleting executions", READ_ONLY) end
function Source:resolve() return C.unsupported(KIND, "resolving executions", READ_ONLY) end
function Exec:retry() return C.unsupported(KIND, "retrying an execution", READ_ONLY) end
function Exec:delete() return C.unsupported(KIND, "deleting an execution", READ_ONLY) end
function Exec:run_data() return C.unsupported(KIND, "run data", "open the execution in SailPoint's workflow history") end
function Exec:wait(opts)
  local src = C.src_of(self)
  return C.wait(src._rd, self, opts, function(id)
    for e in src:executions { scenario = self.scenario, since = self.started_at and self.started_at - 1 or nil } do
      if e.id == id then return e end
    end
    return nil, "sailpoint: execution " .. id .. " not found in its workflow's listing", "not_found"
  end)
end
function Exec:chain() return { self } end

function M.new(rd, opts)
  local base = opts.base_url
  if base == nil then
    if opts.tenant == nil then
      return nil, "sailpoint: pass tenant = \"name\" or base_url = \"https://<tenant>.api.identitynow.com/v3\"", "invalid"
    end
    base = "https://" .. tostring(opts.tenant) .. ".api.identitynow.com/v3"
  end
  return C.new_source(rd, opts, {
    kind = KIND, base_url = base, token_required = true, parse_error = parse_error,
    auth = function(token) return { Authorization = "Bearer " .. token } end,
    methods = Source, exec_methods = Exec, item_methods = {},
  })
end

M.Source, M.Exec = Source, Exec
return M

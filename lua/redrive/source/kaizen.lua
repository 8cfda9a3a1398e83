-- The `kaizen` source: Kaizen Automation's execution retry.
--
--   rd.connect{kind = "kaizen"}                       -- https://api.kaizenautomation.com
--   rd.connect{kind = "kaizen", base_url = ..., token_env = "KAIZEN_TOKEN"}   -- Bearer, if given
--
-- Endpoint -> call:
--   POST /executions/retry {id}   src:retry_execution(id), exec:retry{}, src:retry{ids = {...}}
-- The answer's attempts / totalAttempts / isLastAttempt / parentExecutionId
-- become exec.attempts, exec.total_attempts, exec.is_last_attempt,
-- exec.parent_id (and retry_of). Kaizen documents no other endpoint: every
-- other call returns "unsupported".
local C = require "redrive.source.common"

local M = {}
local Source, Exec = {}, {}
local KIND = "kaizen"

local STATUS = {
  inprogress = "running", running = "running", pending = "running", queued = "running",
  completed = "success", succeeded = "success", success = "success",
  failed = "error", error = "error", canceled = "canceled", cancelled = "canceled",
}

local function exec_obj(src, wrap)
  local x = type(wrap) == "table" and type(wrap.execution) == "table" and wrap.execution or wrap
  local wf = type(x.workflow) == "table" and x.workflow or {}
  local raw_status = type(x.status) == "string" and x.status or nil
  local e = {
    id = x.id, scenario = wf.id, scenario_name = wf.name, name = x.name,
    status = raw_status and (STATUS[raw_status:lower()] or raw_status:lower()) or nil,
    mode = "retry", started_at = C.iso_time(x.startTime),
    attempts = x.attempts, total_attempts = x.totalAttempts, is_last_attempt = x.isLastAttempt,
    parent_id = x.parentExecutionId, retry_of = x.parentExecutionId, raw = x,
  }
  e = setmetatable(e, src._mt.exec)
  if e.id then src._known[tostring(e.id)] = e end
  return e
end

local function post_retry(src, id)
  local data, err, code = C.api(src, { method = "POST", path = "/executions/retry", json = { id = tostring(id) } })
  if not data then return nil, err, code end
  if data.success == false then
    return nil, "kaizen: retry of " .. tostring(id) .. " refused: " .. tostring(data.message), "conflict"
  end
  if type(data.execution) ~= "table" then return nil, "kaizen: no execution in the retry answer", "invalid" end
  return exec_obj(src, data.execution)
end

-- src:retry_execution(id) -> exec (the new attempt)
function Source:retry_execution(id)
  if type(id) ~= "string" then error("bad argument #1 to 'retry_execution' (string id expected, got " .. type(id) .. ")", 2) end
  return C.mutate(self, { action = "retry_execution", id = id, dry = { id = id, status = "dry_run" },
    line = "would retry kaizen execution " .. id }, post_retry, self, id)
end

local function refusal(e)
  if e.is_last_attempt then
    return string.format("kaizen execution %s is the last attempt (%s of %s); pass safe = false to retry anyway",
      tostring(e.id), tostring(e.attempts), tostring(e.total_attempts))
  end
  return C.refusal(e)
end

-- exec:retry{safe = true, attempts, backoff} -> exec. Kaizen cannot be asked
-- for an execution's status, so the safe check uses what this object knows.
function Exec:retry(opts)
  opts = opts or {}
  local src = C.src_of(self)
  local function once(cur, o)
    local why = refusal(cur)
    if why and o.safe ~= false then return nil, why, "conflict" end
    return src:retry_execution(tostring(cur.id))
  end
  if opts.attempts == nil then return once(self, opts) end
  return C.retry_attempts(src._rd, self, opts, once, function(new) return new end)
end

-- exec:chain() -> the executions this source has seen, linked by parent_id;
-- a parent it never saw is reported in chain.missing (Kaizen cannot be read).
function Exec:chain()
  local src = C.src_of(self)
  return C.chain(self, function(id)
    local e = src._known[tostring(id)]
    if e then return e end
    return nil, "kaizen has no API to read execution " .. tostring(id), "unsupported"
  end, {
    up = function(e) return e.parent_id end,
    children = function(members)
      local out = {}
      for _, e in pairs(src._known) do
        if e.parent_id and members[tostring(e.parent_id)] and not members[tostring(e.id)] then out[#out + 1] = e end
      end
      return out
    end,
  })
end

-- what a bulk summary says of an answered retry: Kaizen answers with the
-- new execution, usually still running ("InProgress"): `running`, with its
-- id, never `succeeded` by guess (Kaizen cannot be asked how it ended, and
-- cannot list executions, so the id in results is the only record of it)
local FAILED = { error = true, canceled = true }

-- src:retry{ids = {...}, except, concurrency, progress, on_result} -> summary;
-- results = {{id, status, execution = the new execution's id}, ...}
function Source:retry(opts)
  C.check_table(opts, 1, "retry")
  if opts.all then return C.unsupported(KIND, "retry{all = true}", "Kaizen cannot list executions: pass ids = {...}") end
  if opts.wait then
    return C.unsupported(KIND, "retry{wait = true}", "Kaizen cannot be asked how an execution ended: without wait " ..
      "the summary lists each new execution as running, with its id")
  end
  if opts.ids == nil then return nil, "retry needs ids = {...}", "invalid" end
  C.set_of(opts.ids, "ids", "retry")
  local except = C.set_of(opts.except, "except", "retry")
  local src = self
  return C.bulk(self._rd, opts, {
    src = self, targets = C.ids_iter(opts.ids, except), total = #opts.ids, action = "retry", noun = "kaizen execution(s)",
    concurrency = opts.concurrency or self._bulk,
    act = function(id)
      local e, err, code = post_retry(src, id)
      if not e then return nil, err, code end
      if FAILED[e.status] then -- an answer that already says it failed
        return nil, string.format("kaizen: retry of %s: execution %s is %s", id, tostring(e.id), tostring(e.status)),
          "failed", { execution = e.id }
      end
      return { status = e.status == "success" and "succeeded" or "running", execution = e.id }
    end,
  })
end

local NO_API = "Kaizen's API documents only POST /executions/retry; use src:retry_execution(id) or src:retry{ids = {...}}"
function Source:executions() return C.unsupported(KIND, "listing executions", NO_API) end
function Source:execution() return C.unsupported(KIND, "reading an execution", NO_API) end
function Source:incomplete() return C.unsupported(KIND, "incomplete executions", NO_API) end
function Source:incomplete_item() return C.unsupported(KIND, "incomplete executions", NO_API) end
function Source:delete_incomplete() return C.unsupported(KIND, "deleting executions", NO_API) end
function Source:health() return C.unsupported(KIND, "health", NO_API) end
function Source:groups() return C.unsupported(KIND, "failure groups", NO_API) end
function Source:resolve() return C.unsupported(KIND, "resolving executions", NO_API) end
function Exec:wait() return C.unsupported(KIND, "waiting for an execution", "follow it in Kaizen (exec.raw.liveViewUrl)") end
function Exec:run_data() return C.unsupported(KIND, "run data", NO_API) end
function Exec:delete() return C.unsupported(KIND, "deleting an execution", NO_API) end

function M.new(rd, opts)
  local src, err, code = C.new_source(rd, opts, {
    kind = KIND, base_url = opts.base_url or "https://api.kaizenautomation.com", token_required = false,
    auth = function(token) return { Authorization = "Bearer " .. token } end,
    methods = Source, exec_methods = Exec, item_methods = {},
  })
  if not src then return nil, err, code end
  src._known = {}
  return src
end

M.Source, M.Exec = Source, Exec
return M

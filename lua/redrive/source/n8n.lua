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
-- The n8n listings each status filter reads, merged newest first. n8n's own
-- status=error leaves crashed runs out (what an outage leaves behind), and
-- every listing but status=running leaves the running executions out.
local QUERIES = {
  success = { "success" }, error = { "error", "crashed" }, crashed = { "crashed" },
  canceled = { "canceled" }, running = { "running" }, waiting = { "waiting" },
}
local UNFILTERED = { false, "running" }

local null
local function nn(v) if v == null then return nil end return v end
local function sid(v) v = nn(v); if v == nil then return nil end return tostring(v) end

local function ms(t) return t and math.floor(t * 1000 + 0.5) or nil end

local function result_data(rec)
  local d = type(rec.data) == "table" and rec.data or nil
  return d and type(d.resultData) == "table" and d.resultData or nil
end

-- n8n 2.x returns the workflow snapshot at the top level of an execution;
-- 1.x kept it under data.
local function workflow_of(rec)
  local wf = nn(rec.workflowData)
  if type(wf) ~= "table" and type(rec.data) == "table" then wf = nn(rec.data.workflowData) end
  return type(wf) == "table" and wf or nil
end

-- failure(rec) -> {module, message, code, description, http_code, n8n_message} | nil
-- n8n's own message for a failed HTTP call is generic ("The service was not
-- able to process your request", NodeApiError); what tells failures apart is
-- in error.description and error.httpCode, so the message leads with them.
local function failure(rec)
  local rdata = result_data(rec)
  if not rdata then return nil end
  local err = nn(rdata.error)
  local node = nn(rdata.lastNodeExecuted)
  if type(err) ~= "table" then
    local runs = node and type(rdata.runData) == "table" and rdata.runData[node]
    local last = type(runs) == "table" and runs[#runs]
    err = type(last) == "table" and type(last.error) == "table" and last.error or nil
  end
  if not err then return nil end
  if type(err.node) == "table" and type(err.node.name) == "string" then node = err.node.name end
  local msg = type(err.message) == "string" and err.message or nil
  local desc = type(err.description) == "string" and err.description:match("%S") and err.description or nil
  local http = sid(err.httpCode)
  local text = desc or msg or "error"
  if desc and msg and not desc:find(msg, 1, true) then text = desc .. " (" .. msg .. ")" end
  if http then text = "HTTP " .. http .. ": " .. text end
  return { module = node, message = text, code = http or nn(err.name), description = desc, http_code = http,
    n8n_message = msg }
end

-- The node type of `node` in the execution's workflow snapshot.
local function node_type(rec, node)
  local wf = workflow_of(rec)
  for _, n in ipairs(wf and type(nn(wf.nodes)) == "table" and wf.nodes or {}) do
    if type(n) == "table" and n.name == node then return type(n.type) == "string" and n.type or nil end
  end
end

-- fingerprint_of(rec) -> fingerprint, cause | nil: of the failed node (type
-- and name), the HTTP status or the error's class, and the message; one
-- function for the execution and its item, so both share it. A crash is its
-- own class. Nothing without run data (a listing without includeData).
local function fingerprint_of(rec, f)
  f = f or failure(rec)
  local crashed = rec.status == "crashed"
  if not f and not crashed then return nil end
  local msg = f and f.message or "crashed: n8n stopped while the execution ran"
  local class = crashed and "crashed" or (f and f.code)
  return require("redrive.core").fingerprint(msg, {
    module = f and f.module and node_type(rec, f.module) or nil, module_id = f and f.module or nil,
    class = class, status = f and tonumber(f.http_code) or nil,
  })
end

local function exec_obj(src, rec)
  local started, stopped = C.iso_time(nn(rec.startedAt)), C.iso_time(nn(rec.stoppedAt))
  local wf = workflow_of(rec)
  local e = {
    id = sid(rec.id), scenario = sid(rec.workflowId), status = STATUS[rec.status] or (rec.finished and "success" or "running"),
    mode = nn(rec.mode), started_at = started, stopped_at = stopped,
    duration = started and stopped and ms(stopped - started) or nil,
    retry_of = sid(rec.retryOf), retry_success_id = sid(rec.retrySuccessId), raw = rec,
    scenario_name = wf and nn(wf.name) or nil, crashed = rec.status == "crashed" or nil,
  }
  if e.status == "error" then
    e.error = failure(rec)
    if not e.error and rec.status == "crashed" then
      e.error = { message = "crashed: n8n stopped while the execution ran", code = "crashed" }
    end
    e.fingerprint, e.cause = fingerprint_of(rec)
  end
  return setmetatable(e, src._mt.exec)
end

local function reason_of(rec)
  local f = failure(rec)
  if f and rec.status == "crashed" then return "crashed: " .. f.message end
  if f then return f.message end
  if rec.status == "crashed" then return "crashed: n8n stopped while the execution ran" end
  return "execution " .. tostring(rec.status or "error")
end

local function item_obj(src, rec)
  local rdata = result_data(rec)
  local wf = workflow_of(rec)
  local f = failure(rec)
  local it = {
    id = sid(rec.id), scenario = sid(rec.workflowId), scenario_name = wf and nn(wf.name) or nil,
    reason = reason_of(rec), created = C.iso_time(nn(rec.startedAt)), resolved = sid(rec.retrySuccessId) ~= nil,
    execution_id = sid(rec.id), failer = (f and f.module) or (rdata and nn(rdata.lastNodeExecuted)) or nil,
    retry_of = sid(rec.retryOf), crashed = rec.status == "crashed" or nil, raw = rec,
  }
  it.index = it.failer
  it.fingerprint, it.cause = fingerprint_of(rec, f)
  return setmetatable(it, src._mt.item)
end

local function api(src, req) return C.api(src, req) end

local RETRY_TIMEOUT = 600

-- The scope an API key needs for each call: n8n's 403 says only "Forbidden".
local function parse_error(status, data, res)
  _ = res
  if status ~= 403 then return nil end
  local text = type(data) == "table" and type(data.message) == "string" and data.message or "Forbidden"
  return text .. " (the API key lacks the scope this call needs: execution:list and execution:read to read, " ..
    "execution:retry to retry, execution:delete to delete)"
end

local function esrc(e) return C.src_of(e) end

-- ---------------------------------------------------------------------------
-- executions

local function id_num(rec) return tonumber(rec.id) or 0 end

-- one n8n listing (query q) -> lazy iterator of raw records, newest first
local function stream(src, q, page)
  return C.cursor_iter {
    page = page,
    fetch = function(cursor, n)
      q.limit, q.cursor = n, cursor
      local data, err, code = api(src, { path = "/executions", query = q })
      if not data then return nil, err, code end
      return data.data or {}, nn(data.nextCursor)
    end,
  }
end

-- merged(iters) -> one iterator, newest (highest id) first, each id once
local function merged(iters)
  if #iters == 1 then return iters[1] end
  local heads, seen, started = {}, {}, false
  return C.iterator(function()
    if not started then
      started = true
      for i, it in ipairs(iters) do heads[i] = it() or false end
    end
    while true do
      local best
      for i = 1, #iters do
        if heads[i] and (not best or id_num(heads[i]) > id_num(heads[best])) then best = i end
      end
      if not best then return nil end
      local rec = heads[best]
      heads[best] = iters[best]() or false
      local k = tostring(rec.id)
      if not seen[k] then seen[k] = true; return rec end
    end
  end)
end

-- raw_list(src, opts) -> iterator of raw records (newest first, as n8n lists
-- them; the listings a status needs merged)
local function raw_list(src, opts)
  local wf = opts.scenario
  if wf == nil then wf = src.scenario end -- the profile's default workflow
  local statuses = UNFILTERED
  if opts.status ~= nil then
    statuses = QUERIES[opts.status]
    if not statuses then
      error("bad argument #1 to 'executions' (n8n status filter: success, error, crashed, canceled, running or " ..
        "waiting; got " .. tostring(opts.status) .. ")", 4)
    end
  end
  local page = math.max(1, math.min(250, opts.page or 100))
  local iters = {}
  for i, st in ipairs(statuses) do
    iters[i] = stream(src, { workflowId = wf and tostring(wf) or nil, projectId = opts.project and tostring(opts.project) or nil,
      status = st or nil, includeData = opts.include_data and "true" or nil }, page)
  end
  return merged(iters)
end

-- list(src, opts, map) -> iterator: raw_list with since/until/mode/filter/limit
local function list(src, opts, map)
  if opts.limit ~= nil and (type(opts.limit) ~= "number" or opts.limit < 0) then
    error("bad argument (limit must be a number >= 0)", 3)
  end
  local since, till, mode, keep, limit = opts.since, opts["until"], opts.mode, opts.filter, opts.limit
  if limit and not (till or mode or keep) and limit < (opts.page or 100) then
    opts = setmetatable({ page = math.max(1, limit) }, { __index = opts }) -- no page larger than needed
  end
  local it = raw_list(src, opts)
  local n, done = 0, false
  return C.iterator(function()
    while not done do
      if limit and n >= limit then return nil end
      local rec = it()
      if rec == nil then done = true; return nil end
      local t = C.iso_time(nn(rec.startedAt))
      -- n8n lists newest first: an execution older than `since` ends the listing
      if since and t and t < since then done = true; return nil end
      if not ((mode and rec.mode ~= mode) or (till and t and t >= till) or (keep and not keep(rec))) then
        n = n + 1
        return map and map(rec) or rec
      end
    end
  end)
end

-- src:executions{scenario (workflow id), project, status, mode, fingerprint, since, until, limit,
-- include_data}; a fingerprint filter reads the run data (include_data)
function Source:executions(opts)
  opts = opts or {}
  C.check_table(opts, 1, "executions")
  local fp = C.fingerprint_arg(opts.fingerprint, "executions")
  if fp then
    opts = setmetatable({ include_data = true, filter = function(rec) return fingerprint_of(rec) == fp end },
      { __index = opts })
  end
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

-- ---------------------------------------------------------------------------
-- retry chains
--
-- n8n links a retry to the execution it retried (retryOf) and sets
-- retrySuccessId only on that one, never on the chain's root, so a chain is
-- judged whole: its members are found in the workflow's listing from the
-- root's start on (a retry always starts after what it retries), running
-- executions included. `scan` bounds how many executions are read (SCAN);
-- a chain cut off there says so (chain.truncated).

local SCAN = 10000

-- index(src, wf, since, cap) -> {by_id, kids, since, scanned, truncated}
local function index(src, wf, since, cap)
  local ix = { by_id = {}, kids = {}, since = since or -math.huge, scanned = 0 }
  cap = cap or SCAN
  local it = raw_list(src, { scenario = wf, page = 250 })
  while true do
    local rec = it()
    if rec == nil then break end
    local t = C.iso_time(nn(rec.startedAt))
    if since and t and t < since then break end
    if ix.scanned >= cap then ix.truncated = true; break end
    ix.scanned = ix.scanned + 1
    ix.by_id[sid(rec.id)] = rec
    local of = sid(rec.retryOf)
    if of then
      ix.kids[of] = ix.kids[of] or {}
      table.insert(ix.kids[of], rec)
    end
  end
  return ix
end

-- verdict(ix, rec) -> {root, n, success, running, newest_failed}: the chain
-- of rec as far as the index reaches (up through retryOf, then every retry)
local function verdict(ix, rec)
  local root, hops = rec, 0
  while hops < 1000 do
    local up = ix.by_id[sid(root.retryOf) or ""]
    if not up then break end
    root, hops = up, hops + 1
  end
  local v = { root = sid(root.id), n = 0 }
  local queue, seen = { root }, {}
  while #queue > 0 do
    local m = table.remove(queue)
    local id = sid(m.id)
    if not seen[id] then
      seen[id] = true
      v.n = v.n + 1
      local st = STATUS[m.status] or "running"
      if st == "success" or st == "warning" then v.success = v.success or m
      elseif st == "running" then v.running = v.running or m
      elseif st == "error" and (not v.newest_failed or id_num(m) > id_num(v.newest_failed)) then v.newest_failed = m end
      for _, k in ipairs(ix.kids[id] or {}) do queue[#queue + 1] = k end
    end
  end
  return v
end

-- chain_members(src, e) -> {exec...} root first (C.chain), with attempts
-- (1 = the original) and .truncated when the scan stopped early
local function chain_of(src, e, opts)
  opts = opts or {}
  local function get(id) return src:execution(id, { include_data = false }) end
  local truncated
  local chain = C.chain(e, get, {
    up = function(x) return x.retry_of end,
    children = function(members)
      local start = math.huge
      for _, x in pairs(members) do if x.started_at and x.started_at < start then start = x.started_at end end
      local wf = e.scenario
      for _, x in pairs(members) do wf = wf or x.scenario end
      if not wf then return {} end
      local ix = index(src, wf, start < math.huge and start - 1 or nil, opts.scan)
      if ix.truncated then truncated = ix.scanned end
      local found, queue, have = {}, {}, {}
      for id in pairs(members) do queue[#queue + 1] = id; have[id] = true end
      while #queue > 0 do
        local id = table.remove(queue)
        for _, rec in ipairs(ix.kids[id] or {}) do
          local k = sid(rec.id)
          if not have[k] then
            have[k] = true
            found[#found + 1] = exec_obj(src, rec)
            queue[#queue + 1] = k
          end
        end
      end
      return found
    end,
  })
  for i, x in ipairs(chain) do x.attempts = i end
  if truncated then
    chain.truncated = true
    chain.missing = chain.missing or {}
    table.insert(chain.missing, { error = string.format("stopped after %d executions newer than the chain's root "
      .. "(scan = %d): later retries may be missing; pass a larger scan", truncated, opts.scan or SCAN) })
  end
  return chain
end

-- reconcile(src, cur, known) -> the retry of cur n8n started (retryOf =
-- cur.id, not in `known`), newest first | nil: what a retry call that got no
-- answer did. n8n answers POST /retry only when the retry has finished, but
-- records the retry execution when it starts.
local function reconcile(src, cur, known)
  local deadline = src._rd.now() + 10
  while true do
    for rec in list(src, { scenario = cur.scenario, since = cur.started_at and cur.started_at - 1, page = 50,
      limit = 1000 }) do
      if sid(rec.retryOf) == cur.id and not known[sid(rec.id)] then return exec_obj(src, rec) end
    end
    if src._rd.now() >= deadline then return nil end
    src._rd.sleep(0.5)
  end
end

-- post_retry(src, cur, opts, known) -> new exec | nil, msg, code, outcome
-- A retry whose answer did not arrive (timeout, broken connection) has an
-- unknown outcome: it is looked up (reconcile) and returned as found, most
-- often still running, with .reconciled = true. Only when nothing is found
-- is it an error, with outcome "unknown" (never "failed": it may still run).
local function post_retry(src, cur, opts, known)
  local rd = src._rd
  local body = rd.json.object {}
  if opts.load_workflow ~= nil then body.loadWorkflow = opts.load_workflow and true or false end
  local data, err, code, detail = api(src, { method = "POST", path = "/executions/" .. cur.id .. "/retry", json = body,
    timeout = opts.retry_timeout or src._retry_timeout })
  if data then
    local new = exec_obj(src, data)
    new.retry_of = new.retry_of or cur.id
    -- the answer has no stoppedAt: the execution as n8n keeps it has
    if new.id and new.stopped_at == nil and new.status ~= "running" then
      local full = src:execution(new.id, { include_data = false })
      if full and full.id == new.id then new = full end
    end
    return new
  end
  if not (type(detail) == "table" and detail.transport) or code == "connect" then return nil, err, code end
  if not cur.scenario or not cur.started_at then -- a bare id (bulk, safe = false): read it now
    local e = src:execution(cur.id, { include_data = false })
    if e then cur = e end
  end
  local found = reconcile(src, cur, known or {})
  if found then
    found.reconciled = true
    return found
  end
  return nil, err .. "; no retry of execution " .. cur.id .. " shows up in n8n: its outcome is unknown, " ..
    "check n8n before retrying it again", code, "unknown"
end

local function retry_once(src, e, opts)
  local rd = src._rd
  local safe = opts.safe ~= false
  local cur, err, code = src:execution(e.id, { include_data = false })
  if not cur then return nil, err, code end
  local refusal = C.refusal(cur)
  local known = {}
  if not refusal and (safe or C.dry_run(rd)) then
    local chain = chain_of(src, cur)
    for _, m in ipairs(chain) do known[m.id] = true end
    refusal = C.chain_refusal(chain, cur)
  end
  if refusal and safe then return nil, refusal, "conflict" end
  return C.mutate(src, {
    action = "retry_execution", id = cur.id,
    dry = { id = cur.id, scenario = cur.scenario, forced = refusal ~= nil, status = "dry_run" },
    line = string.format("would retry n8n execution %s (workflow %s)%s", cur.id, tostring(cur.scenario),
      refusal and " (forced: " .. refusal .. ")" or ""),
  }, function()
    if refusal then io.stderr:write("redrive: forced retry (safe = false) of n8n execution ", cur.id, "\n") end
    return post_retry(src, cur, opts, known)
  end)
end

-- exec:retry{safe = true, load_workflow, attempts, backoff, timeout, retry_timeout} -> exec
-- Safe (the default): refused when this execution or any execution of its
-- retry chain succeeded, or a retry of it still runs.
function Exec:retry(opts)
  opts = opts or {}
  C.check_table(opts, 1, "retry")
  local src = esrc(self)
  if opts.attempts == nil then return retry_once(src, self, opts) end
  return C.retry_attempts(src._rd, self, opts, function(cur, o) return retry_once(src, cur, o) end,
    function(new, o) return new:wait(o) end)
end

-- exec:chain{scan} -> {exec...}: up through retryOf, then every retry of a
-- member found in the workflow's listing since the root started (running
-- ones too); each member's `attempts` is its place in the chain.
function Exec:chain(opts)
  return chain_of(esrc(self), self, opts)
end

-- exec:delete() -> true
function Exec:delete()
  local src = esrc(self)
  return C.mutate(src, {
    action = "delete_execution", id = self.id,
    dry = function()
      local cur, err, code = src:execution(self.id, { include_data = false })
      if not cur then return nil, err, code end
      return { id = self.id, scenario = cur.scenario }, "would delete n8n execution " .. self.id
    end,
  }, function()
    local data, err, code = api(src, { method = "DELETE", path = "/executions/" .. self.id })
    if not data then return nil, err, code end
    return true
  end)
end

-- ---------------------------------------------------------------------------
-- incomplete executions: failed chains

-- src:incomplete{scenario, resolved = false, reason, since, until, limit, scan}
-- One item per retry chain: its newest failed execution (crashed ones
-- included). Unresolved (the default): no member of the chain succeeded and
-- none is running; resolved = true: a member succeeded; "any": both
-- (common.resolved_opt). `attempts` is the number of executions in the chain.
function Source:incomplete(opts)
  opts = opts or {}
  C.check_table(opts, 1, "incomplete")
  local pat = C.pattern(opts.reason, "incomplete")
  local want_resolved = C.resolved_opt(opts.resolved, "incomplete")
  local fp = C.fingerprint_arg(opts.fingerprint, "incomplete")
  local ix
  local o = {
    scenario = opts.scenario, status = "error", include_data = true, since = opts.since,
    ["until"] = opts["until"], limit = opts.limit, page = opts.page or 50,
  }
  o.filter = function(rec)
    ix = ix or index(self, opts.scenario or self.scenario, opts.since, opts.scan)
    local id = sid(rec.id)
    local resolved = sid(rec.retrySuccessId) ~= nil
    if ix.by_id[id] then
      local v = verdict(ix, ix.by_id[id])
      resolved = resolved or v.success ~= nil
      if not resolved and v.running then return false end -- a retry runs: its outcome decides
      if v.newest_failed and sid(v.newest_failed.id) ~= id then return false end -- a newer failure stands for it
      rec._attempts = v.n
    end
    if want_resolved ~= nil and want_resolved ~= resolved then return false end
    if type(rec.data) ~= "table" then
      -- the listing came without data (an older n8n, a proxy): read the
      -- execution for its error and failed node
      local full = api(self, { path = "/executions/" .. id, query = { includeData = "true" } })
      if type(full) == "table" and sid(full.id) == id and type(full.data) == "table" then
        rec.data, rec.workflowData = full.data, full.workflowData
      end
    end
    if pat and not pat(reason_of(rec)) then return false end
    if fp and fingerprint_of(rec) ~= fp then return false end
    return true
  end
  return list(self, o, function(rec)
    local it = item_obj(self, rec)
    it.attempts, rec._attempts = rec._attempts, nil
    return it
  end)
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
  if type(it.raw.data) == "table" and workflow_of(it.raw) then return it.raw end
  local x, err, code = isrc(it):incomplete_item(it.id)
  if not x then return nil, err, code end
  return x.raw
end

-- item:blueprint() -> bp: the workflow snapshot stored with the execution
function Item:blueprint()
  local rec, err, code = full(self)
  if not rec then return nil, err, code end
  local wf = workflow_of(rec)
  if not wf then return nil, "n8n: execution " .. self.id .. " has no workflow snapshot", "not_found" end
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
    local wf = workflow_of(rec)
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
  return C.iterator(function() i = i + 1; return logs[i] end)
end

function Item:patch()
  return C.unsupported(KIND, "patching the workflow of a past execution",
    "fix the workflow in n8n (editor or PUT /workflows/{id}), then item:retry{load_workflow = true} " ..
    "to retry with the saved workflow")
end

-- finish(new, fo) -> the retry execution once finished | nil, msg, code:
-- with wait = true, a retry n8n answered (or that was found) still running
-- is followed until it ends (exec:wait), at most fo.timeout seconds.
local function finish(new, fo)
  if not fo or new.status ~= "running" then return new end
  return new:wait { timeout = fo.timeout, interval = fo.interval, max_interval = fo.max_interval }
end

-- item:retry{safe = true, load_workflow, wait, timeout} -> {status, execution, id}
-- n8n answers a retry when it has finished, so its status is its outcome;
-- with wait = true one still running (a retry found after no answer came,
-- a waiting node) is followed until it ends: nil, msg, "timeout" if not.
function Item:retry(opts)
  opts = opts or {}
  local fo, ferr, fcode = C.wait_opts(opts)
  if fo == false then return nil, ferr, fcode end
  local src = isrc(self)
  local e = setmetatable({ id = self.id, scenario = self.scenario, raw = self.raw }, src._mt.exec)
  local new, err, code = retry_once(src, e, opts)
  if not new then return nil, err, code end
  if new.dry_run then return new end
  local done, werr, wcode = finish(new, fo)
  if not done then return nil, werr, wcode end
  return { id = self.id, status = done.status, execution = done, success = done.status == "success",
    reconciled = new.reconciled }
end

function Item:delete() return Exec.delete(self) end

-- ---------------------------------------------------------------------------
-- bulk

local function targets(src, opts, except, fname)
  if opts.ids then
    C.set_of(opts.ids, "ids", fname)
    if C.fingerprint_arg(opts.fingerprint, fname) then
      return nil, "n8n: fingerprint selects from the listing of failures: pass all = true, not ids", "invalid"
    end
    return C.ids_iter(opts.ids, except), #opts.ids
  end
  local it = src:incomplete { scenario = opts.scenario, reason = opts.reason, fingerprint = opts.fingerprint }
  return C.filter_iter(it, function(x) return not except[x.id] end)
end

local function target_id(t) return type(t) == "table" and t.id or tostring(t) end

-- src:retry{ids = {...} | all = true, except, scenario, reason, fingerprint, concurrency,
--           progress, safe = true, load_workflow, retry_timeout, wait, timeout} -> summary
-- Each target is judged on its whole retry chain (safe); two targets of one
-- chain are retried once. A retry is `succeeded` or `failed` by the outcome
-- n8n answered with; one still running (found after its answer did not
-- come: a workflow longer than retry_timeout) is `running`, never failed
-- nor succeeded -- with wait = true it is followed until it ends (then
-- succeeded or failed; still running after `timeout`: running, code
-- "timeout"); `results` has {id, status, execution} per target.
function Source:retry(opts)
  C.check_table(opts, 1, "retry")
  if opts.ids == nil and not opts.all then return nil, "retry needs ids = {...} or all = true", "invalid" end
  if opts.ids ~= nil and opts.all then return nil, "retry takes ids or all = true, not both", "invalid" end
  local fo, ferr, fcode = C.wait_opts(opts)
  if fo == false then return nil, ferr, fcode end
  local except = C.set_of(opts.except, "except", "retry")
  local it, total, tcode = targets(self, opts, except, "retry")
  if not it then return nil, total, tcode end
  local src = self
  local safe = opts.safe ~= false
  local claimed, known = {}, {} -- chain roots taken in this run; chain members per target
  local function claim(root, id)
    if claimed[root] and claimed[root] ~= id then
      return string.format("execution %s is in the same retry chain as %s, retried in this run", id, claimed[root])
    end
    claimed[root] = id
  end
  return C.bulk(self._rd, opts, {
    src = self, targets = it, total = total, id = target_id, action = "retry", noun = "n8n execution(s)",
    concurrency = opts.concurrency or self._bulk,
    check = function(t)
      if type(t) == "table" then -- from incomplete{}: judged on its chain already
        local why = C.refusal(t.raw and exec_obj(src, t.raw) or t)
        return why or claim(t.id, t.id), "conflict"
      end
      if not safe and not C.dry_run(src._rd) then return nil end
      local e, err, code = src:execution(t, { include_data = false })
      if not e then return err, code end
      if opts.scenario and e.scenario ~= tostring(opts.scenario) then
        return "execution " .. e.id .. " belongs to workflow " .. tostring(e.scenario) .. ", not " .. tostring(opts.scenario), "invalid"
      end
      local why = C.refusal(e)
      if why then return why, "conflict" end
      local chain = chain_of(src, e)
      local k = {}
      for _, m in ipairs(chain) do k[m.id] = true end
      known[e.id] = k
      return C.chain_refusal(chain, e) or claim(chain[1] and chain[1].id or e.id, e.id), "conflict"
    end,
    act = function(t, forced)
      local id = target_id(t)
      if forced then io.stderr:write("redrive: forced retry (safe = false) of n8n execution ", id, "\n") end
      local cur = type(t) == "table" and t.raw and exec_obj(src, t.raw) or { id = id }
      local new, err, code, outcome = post_retry(src, cur, opts, known[id])
      if not new then
        if outcome == "unknown" then return { status = "unknown", message = err } end
        return nil, err, code
      end
      local done, werr, wcode = finish(new, fo)
      if not done then
        return { status = "running", execution = new.id, code = wcode,
          message = "retry execution " .. tostring(new.id) .. " of " .. id .. ": " .. tostring(werr) }
      end
      new = done
      if new.status == "error" or new.status == "canceled" then
        return nil, "retry of " .. id .. " failed: execution " .. tostring(new.id) .. " ended with " ..
          (new.error and new.error.message or "an error"), "failed", { status = "failed", execution = new.id }
      end
      -- still running (found after no answer came, or answered early by a
      -- proxy or a waiting node): its outcome is not known yet, never
      -- succeeded by guess
      return { status = new.status == "running" and "running" or "succeeded", execution = new.id }
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
  local it, total, tcode = targets(self, opts, except, "delete_incomplete")
  if not it then return nil, total, tcode end
  local src = self
  local s = C.bulk(self._rd, { concurrency = opts.concurrency, progress = opts.progress or false, safe = true }, {
    src = self, targets = it, total = total, id = target_id, action = "delete", verb = "deleting", noun = "n8n execution(s)",
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

-- src:groups{scenario, since, until, resolved = false, limit, scan} -> failure
-- groups of the incomplete executions (failed chains), computed while paging
function Source:groups(opts)
  opts = opts or {}
  C.check_table(opts, 1, "groups")
  local it = self:incomplete { scenario = opts.scenario, since = opts.since, ["until"] = opts["until"],
    resolved = opts.resolved, scan = opts.scan }
  return C.groups(it, opts)
end

function Item:resolve()
  return C.unsupported(KIND, "marking a failed execution handled without a retry",
    "n8n keeps no such flag: delete the execution (item:delete(), redrive delete ID) or retry it")
end
function Source:resolve()
  return C.unsupported(KIND, "marking failed executions handled without a retry",
    "n8n keeps no such flag: delete them (src:delete_incomplete{ids = {...}}) or retry them")
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
  local src, err, code = C.new_source(rd, opts, {
    kind = KIND, base_url = opts.base_url, token_required = true, parse_error = parse_error,
    auth = function(token) return { ["X-N8N-API-KEY"] = token } end,
    methods = Source, exec_methods = Exec, item_methods = Item,
    scenarios_instead = "fix the workflow in n8n (editor or PUT /workflows/{id}), then " ..
      "item:retry{load_workflow = true} retries with the saved workflow",
  })
  if not src then return nil, err, code end
  -- n8n answers a retry only when the retried workflow has finished, which
  -- may take minutes: the retry call waits this long (then reconciles)
  src._retry_timeout = tonumber(opts.retry_timeout) or RETRY_TIMEOUT
  return src
end

M.Source, M.Exec, M.Item = Source, Exec, Item
return M

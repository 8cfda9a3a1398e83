-- The commands that read: executions, show, logs, bundle, blueprint,
-- health. A source that cannot answer one says so with its `unsupported`
-- error, which names what to use instead (exit 1).
local rd = require "redrive"
local cli = require "redrive.cli"
local U = require "redrive.cli.util"

local M = {}
local out, json_mode, usage = U.out, U.json_mode, U.usage

local function pretty() return require "redrive.pretty" end

local function one_id(a, cmd)
  local id = a.pos[1]
  if not id or a.pos[2] then usage(cmd .. " takes one ID") end
  return id
end

-- ---- executions -------------------------------------------------------------------

local EXEC_STATUS = { success = true, warning = true, error = true, running = true, canceled = true }

function M.executions(a)
  if a.pos[1] then usage("executions takes no arguments (options only)") end
  local status = a.flags["--status"]
  if status and not EXEC_STATUS[status] then
    usage("--status: success, warning, error, running or canceled, got '" .. status .. "'")
  end
  local limit = U.count(a, "--limit", 1000)
  local since, till = U.window(a)
  local src = U.connect()
  local it = U.check(src:executions {
    scenario = U.scenario(a, src, "executions"), status = status, since = since, ["until"] = till,
    fingerprint = a.flags["--fingerprint"],
  })
  U.listing(src, it, limit, function(e)
    if json_mode() then cli.emit(U.plain(e, U.EXEC_FIELDS))
    else
      out(string.format("%-34s %-8s %-8s %-20s %8s  %-12s %s", tostring(e.id), tostring(e.scenario),
        tostring(e.status), U.when(e.started_at), e.duration and string.format("%.0f", e.duration) or "-",
        tostring(e.fingerprint or "-"), U.trunc(pretty().redact(tostring(e.cause or "")), 60)))
    end
  end, "execution(s)", string.format("%-34s %-8s %-8s %-20s %8s  %-12s %s", "ID", "SCENARIO", "STATUS", "STARTED",
    "MS", "FINGERPRINT", "CAUSE"))
  return 0
end

-- ---- show -------------------------------------------------------------------------

-- run_data(exec) -> the execution's run data, or fails (unsupported: the
-- source's message says where to look instead)
local function run_data(e)
  return U.check(e:run_data())
end

function M.show(a)
  local id = one_id(a, "show")
  local src = U.connect()
  local item, err, code = src:incomplete_item(id)
  if item then
    if json_mode() then
      local t = U.plain(item, U.ITEM_FIELDS)
      t.kind = "incomplete"
      local okb, bundle = pcall(item.bundle, item)
      if okb and bundle ~= nil then t.bundle = bundle end
      if a.flags["--run-data"] then t.run_data = run_data(U.check(item:execution())) end
      cli.emit(t)
    else
      out(pretty().format(item))
      local okbp, bp = pcall(item.blueprint, item)
      if okbp and bp then out("blueprint: ", pretty().summary(bp) or pretty().format(bp)) end
      if a.flags["--run-data"] then out("run data: ", pretty().format(run_data(U.check(item:execution())))) end
    end
    return 0
  end
  if code ~= "not_found" and code ~= "unsupported" then U.fail(err, code) end
  local exec = U.check(src:execution(id))
  if json_mode() then
    local t = U.plain(exec, U.EXEC_FIELDS)
    t.kind = "execution"
    if a.flags["--run-data"] then t.run_data = run_data(exec) end
    cli.emit(t)
  else
    out(pretty().format(exec))
    if a.flags["--run-data"] then out("run data: ", pretty().format(run_data(exec))) end
  end
  return 0
end

-- ---- logs, bundle, blueprint ----------------------------------------------------------

local LOG_STATUS = { success = 1, warning = 2, error = 3 }
local LOG_NAME = { "success", "warning", "error" }

function M.logs(a)
  local id = one_id(a, "logs")
  local status = a.flags["--status"]
  if status and not LOG_STATUS[status] then usage("--status: success, warning or error, got '" .. status .. "'") end
  local limit = U.count(a, "--limit", 1000)
  local src = U.connect()
  local item = U.check(src:incomplete_item(id))
  local it = U.check(item:logs { status = LOG_STATUS[status] })
  U.listing(src, it, limit, function(l)
    if json_mode() then
      cli.emit({ id = l.id, status = LOG_NAME[l.status] or l.status, duration = l.duration,
                 operations = l.operations, transfer = l.transfer, timestamp = l.timestamp,
                 execution_id = l.execution_id })
    else
      out(string.format("%-20s %-8s %8s %5s  %s", U.when(l.timestamp), tostring(LOG_NAME[l.status] or l.status),
        l.duration and string.format("%.0f", l.duration) or "-", tostring(l.operations or "-"),
        tostring(l.execution_id or "-")))
    end
  end, "retry attempt(s)", string.format("%-20s %-8s %8s %5s  %s", "WHEN", "STATUS", "MS", "OPS", "EXECUTION"))
  return 0
end

-- print a JSON value: pretty on a terminal's reading, one line with --json
local function print_json(v)
  if json_mode() then cli.emit(v)
  else out(rd.json.encode(v, { pretty = true })) end
end

function M.bundle(a)
  local id = one_id(a, "bundle")
  local src = U.connect()
  local item = U.check(src:incomplete_item(id))
  print_json(U.check(item:bundle()))
  return 0
end

function M.blueprint(a)
  local id = one_id(a, "blueprint")
  local pointer = a.flags["--pointer"]
  if pointer and pointer:sub(1, 1) ~= "/" then
    usage("--pointer: a JSON Pointer starts with / (/flow/1/mapper/url), got '" .. pointer .. "'")
  end
  local src = U.connect()
  local item = U.check(src:incomplete_item(id))
  local bp = U.check(item:blueprint())
  if pointer then
    local v, err, code = bp:get(pointer)
    if v == nil and err then U.fail(err, code) end
    print_json(v == nil and rd.json.null or v)
  elseif json_mode() then
    io.stdout:write(pretty().redact(bp:json()), "\n")
  else
    out(bp:json { pretty = true })
  end
  return 0
end

-- ---- health ---------------------------------------------------------------------------

local function num(x, fmt)
  if type(x) ~= "number" or x ~= x then return "-" end
  return string.format(fmt, x)
end

function M.health(a)
  local scenario = a.pos[1]
  if a.pos[2] then usage("health takes one SCENARIO") end
  local since = U.time(a, "--since")
  local src = U.connect()
  local h = U.check(src:health { scenario = scenario, since = since })
  if json_mode() then
    local t = {}
    for k, v in pairs(h) do if type(v) ~= "number" or v == v then t[k] = v end end
    t.scenario = scenario
    cli.emit(t)
    return 0
  end
  out(string.format("scenario %s%s", scenario or "(all)",
    since and ("  since " .. U.when(since)) or ""))
  out(string.format("  total %-6s finished %-6s succeeded %-6s failed %-6s running %s",
    tostring(h.total or 0), tostring(h.finished or 0), tostring(h.succeeded or 0), tostring(h.failed or 0),
    tostring(h.running or 0)))
  out(string.format("  success rate %s   avg %s   p95 %s",
    num(h.success_rate and h.success_rate * 100, "%.1f%%"), num(h.avg_duration, "%.0f ms"),
    num(h.p95_duration, "%.0f ms")))
  if h.top_reasons and #h.top_reasons > 0 then
    out("  top causes:")
    for _, r in ipairs(h.top_reasons) do
      out(string.format("    %5d  %-12s %s", r.count or 0, tostring(r.fingerprint or "-"), U.trunc(r.reason, 70)))
    end
  end
  return 0
end

return M

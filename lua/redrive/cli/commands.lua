-- The subcommands of `redrive`: rules, run, and the quick incident actions
-- (ls, show, retry, patch, delete, health). The quick actions use only the
-- source API (shared/API.md), so they work on every source; --profile picks
-- it. Each honours --dry-run, --json, --profile and --db, given before or
-- after the command. Every command that changes something (retry, patch,
-- delete, run, rules) first names on stderr the source it acts on
-- ("redrive retry: acting on local store /x.db (profile 'ops')"), so a
-- wrong store or profile shows before anything is done.
local rd = require "redrive"
local cli = require "redrive.cli"

local M = {}

local GLOBAL_BOOL = { ["--json"] = "json", ["--dry-run"] = "dry_run", ["--quiet"] = "quiet", ["-q"] = "quiet",
                      ["--verbose"] = "verbose", ["--force"] = "force" }
local GLOBAL_VAL = { ["--db"] = "db", ["--profile"] = "profile" }

local function usage_error(name, msg)
  io.stderr:write("redrive ", name, ": ", msg, " (see redrive --help)\n")
  return 2
end

-- parse(args, spec) -> {positional..., flags} | nil, message
-- spec: flag -> "bool" | "value" | "list" (comma-separated, repeatable)
local function parse(args, spec)
  local r, globals = { pos = {}, flags = {} }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    if key then a = key end
    local function value()
      if inline then return inline end
      i = i + 1
      if args[i] == nil then error({ usage = "option '" .. a .. "' needs a value" }) end
      return args[i]
    end
    if GLOBAL_BOOL[a] then globals[GLOBAL_BOOL[a]] = true
    elseif GLOBAL_VAL[a] then
      local v = value()
      if v == "" then error({ usage = "option '" .. a .. "' needs a non-empty value" }) end
      globals[GLOBAL_VAL[a]] = v
    elseif spec[a] == "bool" then r.flags[a] = true
    elseif spec[a] == "value" then r.flags[a] = value()
    elseif spec[a] == "list" then
      r.flags[a] = r.flags[a] or {}
      for id in value():gmatch("[^,%s]+") do table.insert(r.flags[a], id) end
    elseif a == "--" then
      for j = i + 1, #args do table.insert(r.pos, args[j]) end
      break
    elseif a:match("^%-") and a ~= "-" then
      error({ usage = "unknown option '" .. a .. "'" })
    else
      table.insert(r.pos, a)
    end
    i = i + 1
  end
  return r, globals
end

local function json_mode() return cli.options.json end

-- out(...): one line on stdout, through the redactor (src/core/redact.c)
local function out(...)
  io.stdout:write(require("redrive.pretty").redact(table.concat({ ... })))
  io.stdout:write("\n")
end

-- connect(acting, opts) -> src (rd.connect(opts)), or raises an error the
-- runner maps to an exit status. `acting` is the name of a command that
-- changes something: the source is named on stderr before it acts.
local function connect(acting, opts)
  local src, err, code = rd.connect(opts)
  if not src then
    error({ code = (code == "connect" or code == "auth") and code or "script",
            message = "cannot connect to the source: " .. tostring(err) .. (code and (" (" .. code .. ")") or "") }, 0)
  end
  if acting and not cli.options.quiet then
    io.stderr:write("redrive ", acting, ": acting on ", rd._describe(src), "\n")
  end
  return src
end

local function fail(err, code)
  error({ code = (code == "connect" or code == "auth") and code or "script",
          message = tostring(err) .. (code and (" (" .. tostring(code) .. ")") or "") }, 0)
end

local ITEM_FIELDS = { "id", "scenario", "scenario_name", "reason", "created", "size", "resolved", "attempts",
                      "execution_id", "failer" }
local EXEC_FIELDS = { "id", "scenario", "status", "mode", "started_at", "stopped_at", "duration", "retry_of",
                      "retry_success_id", "parent_id", "attempts", "operations", "transfer", "error" }

-- plain(obj, fields) -> a JSON-friendly copy of the public fields
local function plain(obj, fields)
  local t = {}
  for _, k in ipairs(fields) do
    local v = obj[k]
    if type(v) ~= "function" then t[k] = v end
  end
  return t
end

local function when(t) return require("redrive.pretty").fmt_time(t) end

local function trunc(s, n)
  s = tostring(s or ""):gsub("%s+", " ")
  if #s > n then return s:sub(1, n - 1) .. "…" end
  return s
end

-- ---- ls ---------------------------------------------------------------------

local function cmd_ls(a)
  local src = connect()
  if src.kind == "make" and not a.flags["--scenario"] and src.scenario == nil then
    error({ usage = "Make lists incomplete executions per scenario: pass --scenario ID" })
  end
  local limit = a.flags["--limit"] and math.tointeger(tonumber(a.flags["--limit"]))
  if a.flags["--limit"] and not limit then error({ usage = "--limit needs an integer" }) end
  local resolved = a.flags["--all"] and "any" or false -- --all: resolved ones too
  local it, err, code = src:incomplete {
    scenario = a.flags["--scenario"], reason = a.flags["--reason"],
    resolved = resolved, limit = limit or 1000,
  }
  if not it then fail(err, code) end
  local n = 0
  if not json_mode() then out(string.format("%-34s %-8s %-20s %-4s %s", "ID", "SCENARIO", "CREATED", "TRY", "REASON")) end
  for item in it do
    n = n + 1
    if json_mode() then cli.emit(plain(item, ITEM_FIELDS))
    else
      out(string.format("%-34s %-8s %-20s %-4s %s%s", tostring(item.id), tostring(item.scenario),
        when(item.created), tostring(item.attempts or 0), item.resolved and "[resolved] " or "",
        trunc(require("redrive.pretty").redact(tostring(item.reason)), 70)))
    end
  end
  if not json_mode() and not cli.options.quiet then io.stderr:write(n, " incomplete execution(s)\n") end
  return 0
end

-- ---- show -------------------------------------------------------------------

local function cmd_show(a)
  local id = a.pos[1]
  if not id or a.pos[2] then error({ usage = "show takes one ID" }) end
  local src = connect()
  local pretty = require "redrive.pretty"
  local item, err, code = src:incomplete_item(id)
  if item then
    if json_mode() then
      local t = plain(item, ITEM_FIELDS)
      t.kind = "incomplete"
      local okb, bundle = pcall(item.bundle, item)
      if okb and bundle ~= nil then t.bundle = bundle end
      cli.emit(t)
    else
      out(pretty.format(item))
      local okbp, bp = pcall(item.blueprint, item)
      if okbp and bp then out("blueprint: ", pretty.summary(bp) or pretty.format(bp)) end
    end
    return 0
  end
  if code ~= "not_found" and code ~= "unsupported" then fail(err, code) end
  local exec, eerr, ecode = src:execution(id)
  if not exec then fail(eerr, ecode) end
  if json_mode() then
    local t = plain(exec, EXEC_FIELDS)
    t.kind = "execution"
    cli.emit(t)
  else
    out(pretty.format(exec))
  end
  return 0
end

-- ---- retry ------------------------------------------------------------------

local function cmd_retry(a)
  local all = a.flags["--all"]
  if not all and #a.pos == 0 then error({ usage = "retry needs IDs or --all" }) end
  if all and #a.pos > 0 then error({ usage = "retry takes IDs or --all, not both" }) end
  local src = connect("retry")
  local S = require "redrive.cli.sys"
  local summary, err, code = src:retry {
    ids = (not all) and a.pos or nil, all = all or nil, except = a.flags["--except"],
    scenario = a.flags["--scenario"], safe = not (a.flags["--force"] or cli.options.force),
    concurrency = a.flags["--concurrency"] and tonumber(a.flags["--concurrency"]) or nil,
    -- --json: one line per item as it settles (every one: the summary keeps
    -- only the first 1000), then the summary
    on_result = json_mode() and function(r) r.kind = "result"; cli.emit(r) end or nil,
  }
  if not summary then fail(err, code) end
  -- the summary is the output, interrupted or not (it then says so:
  -- interrupted = true, not_attempted = n); the exit status is 130
  if json_mode() then
    summary.kind = "summary"
    cli.emit(summary)
  else
    if summary.dry_run then
      out(string.format("dry run: would retry %s, skip %s", tostring(summary.would_retry or summary.total or 0),
        tostring(summary.skipped or 0)))
    else
      out(string.format("retried %d: %d succeeded, %d failed, %d skipped%s%s%s%s", summary.total or 0,
        summary.succeeded or 0, summary.failed or 0, summary.skipped or 0,
        (summary.queued or 0) > 0 and string.format(", %d queued", summary.queued) or "",
        (summary.running or 0) > 0 and string.format(", %d still running", summary.running) or "",
        (summary.not_attempted or 0) > 0 and string.format(", %d not attempted", summary.not_attempted) or "",
        summary.interrupted and " (interrupted)" or ""))
    end
    for _, e in ipairs(summary.errors or {}) do
      io.stderr:write("  ", tostring(e.id or "?"), ": ", require("redrive.pretty").redact(tostring(e.message or e.error)), "\n")
    end
  end
  if summary.interrupted or S.interrupted() then return 130 end
  if (summary.failed or 0) > 0 then return 1 end
  return 0
end

-- ---- patch ------------------------------------------------------------------

local function read_json(path)
  local f, err = io.open(path, "rb")
  if not f then error({ usage = "cannot open " .. tostring(err) }) end
  local text = f:read("a")
  f:close()
  local v, jerr = rd.json.decode(text)
  if v == nil then fail(path .. ": " .. tostring(jerr), "invalid") end
  return v
end

local function cmd_patch(a)
  local id, file = a.pos[1], a.pos[2]
  if not id or not file or a.pos[3] then error({ usage = "patch takes ID FILE" }) end
  local doc = read_json(file)
  local src = connect("patch")
  local item, err, code = src:incomplete_item(id)
  if not item then fail(err, code) end
  local opts = {}
  local is_array = rd.json.kind and rd.json.kind(doc) == "array" or (type(doc) == "table" and doc[1] ~= nil)
  if type(doc) ~= "table" then fail(file .. ": a JSON object or array expected", "invalid") end
  local keys = {}
  for k in pairs(doc) do keys[#keys + 1] = k end
  local only_opts = #keys > 0
  for _, k in ipairs(keys) do if k ~= "blueprint" and k ~= "failer" then only_opts = false end end
  if is_array then -- JSON Patch (RFC 6902) on the item's blueprint
    local bp, berr, bcode = item:blueprint()
    if not bp then fail(berr, bcode) end
    local ok, perr = bp:apply(doc)
    if not ok then fail(file .. ": " .. tostring(perr), "invalid") end
    opts.blueprint = bp
  elseif only_opts then -- {"blueprint": ..., "failer": n}
    opts.blueprint, opts.failer = doc.blueprint, doc.failer
  elseif doc.flow ~= nil then -- a whole blueprint
    opts.blueprint = doc
  else -- JSON Merge Patch (RFC 7386)
    local bp, berr, bcode = item:blueprint()
    if not bp then fail(berr, bcode) end
    local ok, merr = bp:merge(doc)
    if ok == nil and merr then fail(file .. ": " .. tostring(merr), "invalid") end
    opts.blueprint = bp
  end
  local res, perr, pcode = item:patch(opts)
  if not res then fail(perr, pcode) end
  if json_mode() then
    if type(res) == "table" and res.dry_run then cli.emit(res)
    else cli.emit({ patched = id }) end
  else
    if type(res) == "table" and res.dry_run then
      out("dry run: would patch ", id, res.diff and string.format(" (%d change(s))", #res.diff) or "")
    else
      out("patched ", id)
    end
  end
  return 0
end

-- ---- delete -----------------------------------------------------------------

local function cmd_delete(a)
  local all = a.flags["--all"]
  if not all and #a.pos == 0 then error({ usage = "delete needs IDs or --all --yes" }) end
  if all and #a.pos > 0 then error({ usage = "delete takes IDs or --all, not both" }) end
  if all and not a.flags["--yes"] and not rd.is_dry_run() then
    error({ usage = "delete --all deletes every incomplete execution: add --yes to confirm" })
  end
  local src = connect("delete")
  local res, err, code = src:delete_incomplete {
    ids = (not all) and a.pos or nil, all = all or nil, confirmed = all and true or nil,
    except = a.flags["--except"], scenario = a.flags["--scenario"],
  }
  if not res then fail(err, code) end
  if json_mode() then cli.emit(res)
  else
    if res.dry_run then out(string.format("dry run: would delete %d", res.would_delete or 0))
    else out(string.format("deleted %d", res.deleted or 0)) end
    for _, e in ipairs(res.errors or {}) do
      io.stderr:write("  ", tostring(e.id), ": ", require("redrive.pretty").redact(tostring(e.message)), "\n")
    end
  end
  return (res.errors and #res.errors > 0 and not res.dry_run) and 1 or 0
end

-- ---- health -----------------------------------------------------------------

local function num(x, fmt)
  if type(x) ~= "number" or x ~= x then return "-" end
  return string.format(fmt, x)
end

local function cmd_health(a)
  local scenario = a.pos[1]
  if a.pos[2] then error({ usage = "health takes one SCENARIO" }) end
  local since
  if a.flags["--since"] then
    local s = tonumber(a.flags["--since"])
    if not s then error({ usage = "--since needs seconds" }) end
    since = rd.time() - s
  end
  local src = connect()
  local h, err, code = src:health { scenario = scenario, since = since }
  if not h then fail(err, code) end
  if json_mode() then
    local t = {}
    for k, v in pairs(h) do if type(v) ~= "number" or v == v then t[k] = v end end
    t.scenario = scenario
    cli.emit(t)
    return 0
  end
  out(string.format("scenario %s%s", scenario or "(all)", a.flags["--since"] and ("  last " .. a.flags["--since"] .. " s") or ""))
  out(string.format("  total %-6s finished %-6s succeeded %-6s failed %-6s running %s",
    tostring(h.total or 0), tostring(h.finished or 0), tostring(h.succeeded or 0), tostring(h.failed or 0),
    tostring(h.running or 0)))
  out(string.format("  success rate %s   avg %s   p95 %s",
    num(h.success_rate and h.success_rate * 100, "%.1f%%"), num(h.avg_duration, "%.0f ms"),
    num(h.p95_duration, "%.0f ms")))
  if h.top_reasons and #h.top_reasons > 0 then
    out("  top reasons:")
    for _, r in ipairs(h.top_reasons) do
      out(string.format("    %5d  %s", r.count or r[2] or 0, trunc(r.reason or r[1], 80)))
    end
  end
  return 0
end

-- ---- run --------------------------------------------------------------------

local function cmd_run(a)
  local file = a.pos[1]
  if not file or a.pos[2] then error({ usage = "run takes BLUEPRINT.json" }) end
  local doc = read_json(file)
  local input
  if a.flags["--input"] then
    local v, jerr = rd.json.decode(a.flags["--input"])
    if v == nil then error({ usage = "--input: " .. tostring(jerr) }) end
    input = v
  end
  pcall(require, "redrive.engine") -- registers the module types validation checks against
  local bp, berr = rd.blueprint(doc)
  if not bp then fail(file .. ": " .. tostring(berr), "invalid") end
  local ok, verrs = bp:validate()
  if not ok then
    local msgs = {}
    for _, e in ipairs(type(verrs) == "table" and verrs or { verrs }) do
      msgs[#msgs + 1] = type(e) == "table" and ((e.module and ("module " .. tostring(e.module) .. " ") or "") ..
        (e.field and (e.field .. ": ") or "") .. (e.message or rd.json.encode(e))) or tostring(e)
    end
    fail(file .. ": invalid blueprint: " .. table.concat(msgs, "; "), "invalid")
  end
  local name = type(doc.name) == "string" and doc.name or ("run " .. (file:match("([^/]+)$") or file))
  -- the same source `show` and `retry` use: the selected profile when it is
  -- local; with a profile of another kind, the store --db or $REDRIVE_DB names
  local pname, profile = rd._selected()
  local opts
  if pname and profile and (profile.kind or "local") ~= "local" then
    if not (rd._db or (os.getenv("REDRIVE_DB") or "") ~= "") then
      error({ usage = string.format("run needs a local source: profile '%s' is a %s source " ..
        "(pass --profile with a local profile, or --db PATH)", pname, tostring(profile.kind)) })
    end
    opts = { kind = "local" }
  end
  local src = connect("run", opts)
  if rd.is_dry_run() then
    local r = { dry_run = true, action = "run", blueprint = file, name = name, modules = #bp:modules() }
    if json_mode() then cli.emit(r) else out(string.format("dry run: would run %q (%d modules)", name, r.modules)) end
    return 0
  end
  -- one scenario per blueprint name, updated to this file's blueprint, so
  -- a failed run's incomplete execution can be retried afterwards
  local sc
  for _, s in ipairs(src:scenarios() or {}) do if s.name == name then sc = s end end
  if sc then
    local okup, uerr, ucode = src:scenario_update(sc.id, { blueprint = doc })
    if not okup then fail(uerr, ucode) end
  else
    local s, cerr, ccode = src:scenario_create { name = name, blueprint = doc, dlq = true }
    if not s then fail(cerr, ccode) end
    sc = s
  end
  local exec, rerr, rcode = src:run(sc.id, { input = input, mode = "manual" })
  if not exec then fail(rerr, rcode) end
  if src.wait_auto_retries then src:wait_auto_retries() end
  if json_mode() then
    local t = plain(exec, EXEC_FIELDS)
    t.dlq_id = exec.dlq_id
    cli.emit(t)
  else
    out(require("redrive.pretty").format(exec))
    if exec.dlq_id then out("stored as incomplete execution ", tostring(exec.dlq_id), " (redrive show / retry)") end
  end
  return exec.status == "error" and 1 or 0
end

-- ---- rules ------------------------------------------------------------------

local function cmd_rules(a)
  local dir = a.pos[1]
  if not dir or a.pos[2] then error({ usage = "rules takes one DIR" }) end
  if a.flags["--once"] and a.flags["--watch"] then error({ usage = "rules: --once or --watch, not both" }) end
  return require("redrive.rules").main(dir, {
    watch = a.flags["--watch"], check = a.flags["--check"], audit = a.flags["--audit"],
    dry_run = rd.is_dry_run(), json = cli.options.json, quiet = cli.options.quiet,
    poll = a.flags["--poll"] and tonumber(a.flags["--poll"]) or nil,
  })
end

local COMMANDS = {
  ls = { cmd_ls, { ["--scenario"] = "value", ["--reason"] = "value", ["--all"] = "bool", ["--limit"] = "value" } },
  show = { cmd_show, {} },
  retry = { cmd_retry, { ["--all"] = "bool", ["--except"] = "list", ["--scenario"] = "value",
                         ["--concurrency"] = "value" } },
  patch = { cmd_patch, {} },
  delete = { cmd_delete, { ["--all"] = "bool", ["--yes"] = "bool", ["--except"] = "list", ["--scenario"] = "value" } },
  health = { cmd_health, { ["--since"] = "value" } },
  run = { cmd_run, { ["--input"] = "value" } },
  rules = { cmd_rules, { ["--once"] = "bool", ["--watch"] = "bool", ["--check"] = "bool", ["--audit"] = "value",
                         ["--poll"] = "value" } },
}

-- dispatch(name, args) -> exit status
function M.dispatch(name, args)
  local c = COMMANDS[name]
  if not c then return usage_error(name, "unknown command") end
  local ok, a, globals = pcall(parse, args, c[2])
  if not ok then
    if type(a) == "table" and a.usage then return usage_error(name, a.usage) end
    error(a, 0)
  end
  cli.configure(globals)
  return cli.task(function()
    local okc, res = pcall(c[1], a)
    if okc then return res end
    if type(res) == "table" and res.usage then return usage_error(name, res.usage) end
    error(res, 0)
  end)
end

return M

-- `redrive run` and `redrive rules`: the local engine and the rules runner.
local rd = require "redrive"
local cli = require "redrive.cli"
local U = require "redrive.cli.util"

local M = {}
local out, fail, json_mode = U.out, U.fail, U.json_mode

-- ---- run --------------------------------------------------------------------

function M.run(a)
  local file = a.pos[1]
  if not file or a.pos[2] then error({ usage = "run takes BLUEPRINT.json" }) end
  local doc = U.read_json(file)
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
  local src = U.connect("run", opts)
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
    local t = U.plain(exec, U.EXEC_FIELDS)
    t.dlq_id = exec.dlq_id
    cli.emit(t)
  else
    out(require("redrive.pretty").format(exec))
    if exec.dlq_id then out("stored as incomplete execution ", tostring(exec.dlq_id), " (redrive show / retry)") end
  end
  return exec.status == "error" and 1 or 0
end

-- ---- rules ------------------------------------------------------------------

function M.rules(a)
  local dir = a.pos[1]
  if not dir or a.pos[2] then error({ usage = "rules takes one DIR" }) end
  if a.flags["--once"] and a.flags["--watch"] then error({ usage = "rules: --once or --watch, not both" }) end
  return require("redrive.rules").main(dir, {
    watch = a.flags["--watch"], check = a.flags["--check"], audit = a.flags["--audit"],
    dry_run = rd.is_dry_run(), json = cli.options.json, quiet = cli.options.quiet,
    poll = a.flags["--poll"] and tonumber(a.flags["--poll"]) or nil,
  })
end


return M

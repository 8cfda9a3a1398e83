-- Rules: one Lua file per rule, kept in an ops repository and applied by
-- `redrive rules DIR [--once | --watch] [--check] [--dry-run] [--audit FILE]`.
--
-- A rule file returns
--   { name = "retry-timeouts", source = "prod" (profile; default rd.connect()),
--     scenario = id?, reason = "lua pattern"? (passed to src:incomplete),
--     match = function(item) -> boolean end,
--     action = function(item, ctx) ... end,
--     every = seconds (--watch, default 60), limit = max actions per pass,
--     concurrency = actions in flight (default 4), description = "..." }
--
-- Each file runs in its own _ENV: a proxy onto an allow list of globals in
-- which assigning a global or reading an undefined one raises. match and
-- action run under an instruction budget (a count hook) that, once tripped,
-- re-arms on every line of the rule so a pcall in the rule cannot swallow it.
-- A rule that raises is reported with file:line and the other rules go on.
-- ctx: retry(), patch{blueprint, failer}, delete(), notify{url, json},
-- log(...), dry_run, rule, source. Every action (or, in a dry run, the action
-- that would be taken) is appended to the audit log as a JSON line.
local rd = require "redrive"
local pretty = require "redrive.pretty"

local R = {}

R.BUDGET = tonumber(os.getenv("REDRIVE_RULE_BUDGET")) or 5000000 -- VM instructions per call
local FIELDS = {
  name = "string", source = "string", scenario = "any", reason = "string",
  match = "function", action = "function", every = "number", limit = "number",
  concurrency = "number", description = "string",
}
local FIELD_LIST = "name, source, scenario, reason, match, action, every, limit, concurrency, description"

-- ---- the sandbox ------------------------------------------------------------

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A read-only view of the redrive module: rules may read, request and
-- connect, but not switch dry-run off.
local function rd_view()
  local view = setmetatable({}, {
    __index = function(_, k)
      if k == "dry_run" then
        return function(on)
          if on == false and rd.is_dry_run() then error("rules cannot turn dry-run off", 2) end
          return rd.dry_run(on)
        end
      end
      return rd[k]
    end,
    __newindex = function(_, k) error("rd is read-only in rules (assignment to rd." .. tostring(k) .. ")", 2) end,
    __metatable = false,
  })
  return view
end

local function make_env(path, logf)
  local allowed = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
    xpcall = xpcall, select = select, tonumber = tonumber, tostring = tostring, type = type,
    rawequal = rawequal, rawget = rawget, rawlen = rawlen, setmetatable = setmetatable,
    getmetatable = getmetatable, unpack = table.unpack,
    string = copy(string), table = copy(table), math = copy(math), utf8 = copy(utf8),
    os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime, getenv = os.getenv },
    rd = rd_view(),
    print = function(...) logf(...) end,
    log = function(...) logf(...) end,
    _VERSION = _VERSION,
  }
  return setmetatable({}, {
    __index = function(_, k)
      local v = allowed[k]
      if v == nil then error(string.format("undefined global '%s'", tostring(k)), 2) end
      return v
    end,
    __newindex = function(_, k)
      error(string.format("assignment to global '%s' (rules cannot set globals: use local)", tostring(k)), 2)
    end,
    __metatable = false,
  })
end

-- ---- guarded calls -------------------------------------------------------------

-- The first frame running code of `chunk` (the rule file): "file:line".
local function rule_where(chunk, co)
  for level = 1, 60 do
    local info
    if co then info = debug.getinfo(co, level, "Sl") else info = debug.getinfo(level, "Sl") end
    if not info then break end
    if info.source == chunk and info.currentline and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline
    end
  end
  return nil
end

-- The guard of each coroutine running rule code, so an action can pause the
-- budget while the source works (its Lua code is not the rule's).
local guards = setmetatable({}, { __mode = "k" })

-- guard(rule, fn, ...) -> true, results... | false, message
-- Runs fn on the current coroutine under the instruction budget. The message
-- of a failure names the rule file and line.
function R.guard(rule, fn, ...)
  local chunk = rule.chunk
  local budget = math.max(1, (rule.budget or R.BUDGET) // 1000)
  local n, tripped = 0, false
  local stop
  local function hook(ev)
    local src = debug.getinfo(2, "S").source
    if tripped then
      if src == chunk then error(stop, 2) end
      return
    end
    n = n + 1
    if n > budget then
      tripped = true
      stop = string.format("rule '%s' exceeded its budget of %d instructions (runaway loop?)",
        rule.name or "?", budget * 1000)
      debug.sethook(hook, "l") -- raise again on every line of the rule
      error(stop, 2)
    end
  end
  local function handler(e)
    local msg = type(e) == "string" and e or pretty.format(e)
    local where = rule_where(chunk)
    if where and not msg:find(where, 1, true) then msg = where .. ": " .. msg end
    return msg
  end
  local co = coroutine.running()
  local outer = guards[co]
  guards[co] = {
    pause = function() debug.sethook() end,
    resume = function() if not tripped then debug.sethook(hook, "", 1000) end end,
  }
  debug.sethook(hook, "", 1000)
  local r = table.pack(xpcall(fn, handler, ...))
  debug.sethook()
  guards[co] = outer
  if tripped and r[1] then r = { false, stop, n = 2 } end
  return table.unpack(r, 1, r.n)
end

-- ---- loading ---------------------------------------------------------------------

-- load_file(path, opts) -> rule | nil, message
function R.load_file(path, opts)
  opts = opts or {}
  local name_hint = path:match("([^/]+)%.lua$") or path
  local logf = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = pretty.redact(tostring((select(i, ...)))) end
    io.stderr:write("rules: [", name_hint, "] ", table.concat(parts, " "), "\n")
  end
  local env = make_env(path, logf)
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, "syntax error: " .. err end
  local proto = { name = name_hint, chunk = "@" .. path, budget = opts.budget }
  local ok, res = R.guard(proto, chunk)
  if not ok then return nil, "error while loading: " .. tostring(res) end
  if type(res) ~= "table" then
    return nil, path .. ": a rule file must return a table {name, match, action, ...}, got " .. type(res)
  end
  local rule = { file = path, chunk = "@" .. path, env = env, log = logf }
  for k, v in pairs(res) do
    local want = FIELDS[k]
    if not want then
      return nil, string.format("%s: unknown field '%s' (expected %s)", path, tostring(k), FIELD_LIST)
    end
    if want ~= "any" and type(v) ~= want then
      return nil, string.format("%s: field '%s' must be a %s, got %s", path, k, want, type(v))
    end
    rule[k] = v
  end
  for _, k in ipairs { "name", "match", "action" } do
    if rule[k] == nil then return nil, string.format("%s: missing field '%s'", path, k) end
  end
  -- numbers: the one rule of options (redrive.opts): no NaN, infinity or
  -- value out of range reaches the scheduler or rd.each
  local num = require("redrive.opts").number
  for _, n in ipairs { { "every", "timeout", 60 }, { "limit", "count", false }, { "concurrency", "concurrency", 4 } } do
    local v, err = num(rule[n[1]], n[1], n[2], n[3])
    if v == nil then return nil, path .. ": " .. err end
    rule[n[1]] = v or nil
  end
  rule.budget = opts.budget
  return rule
end

-- files(dir) -> sorted paths of dir/*.lua | nil, message
function R.files(dir)
  local sys = require "redrive.cli.sys"
  local names, err = sys.listdir(dir)
  if not names then return nil, err end
  local out = {}
  for _, n in ipairs(names) do
    if n:match("%.lua$") and not n:match("^%.") then out[#out + 1] = dir:gsub("/+$", "") .. "/" .. n end
  end
  return out
end

-- load_dir(dir) -> rules, errors ({file, message}) | nil, message
function R.load_dir(dir, opts)
  local paths, err = R.files(dir)
  if not paths then return nil, err end
  local rules, errors, names = {}, {}, {}
  for _, p in ipairs(paths) do
    local rule, lerr = R.load_file(p, opts)
    if rule and names[rule.name] then
      rule, lerr = nil, string.format("%s: rule name '%s' is already used by %s", p, rule.name, names[rule.name])
    end
    if rule then
      names[rule.name] = p
      rules[#rules + 1] = rule
    else
      errors[#errors + 1] = { file = p, message = lerr }
    end
  end
  return rules, errors
end

-- ---- audit log -----------------------------------------------------------------------

local Audit = {}
Audit.__index = Audit

-- audit(path | nil) -> writer: appends JSON lines, flushed one by one
function R.audit(path)
  local a = setmetatable({ path = path, records = {} }, Audit)
  if path then
    local f, err = io.open(path, "a")
    if not f then return nil, "cannot open audit log: " .. tostring(err) end
    a.f = f
  end
  return a
end

function Audit:write(rec)
  rec.time = os.date("!%Y-%m-%dT%H:%M:%SZ")
  if rec.error ~= nil then rec.error = pretty.redact(tostring(rec.error)) end
  local ok, line = pcall(rd.json.encode, rec)
  if not ok then line = rd.json.encode({ time = rec.time, rule = rec.rule, error = "unencodable audit record" }) end
  self.records[#self.records + 1] = rec
  if self.f then
    self.f:write(line, "\n")
    self.f:flush()
  end
end

function Audit:close()
  if self.f then self.f:close() end
  self.f = nil
end

-- ---- running -------------------------------------------------------------------------

local function url_for_audit(url)
  return require("redrive.core").redact_url(tostring(url)) -- no userinfo, no query
end

local function summary_of(res)
  if type(res) ~= "table" then return res end
  if res.dry_run then return "dry-run" end
  if res.status then return res.status end
  return "ok"
end

-- ctx for one item: every call is recorded in the audit log
local function make_ctx(rule, item, src, state)
  local dry = state.dry_run
  local base = { rule = rule.name, file = rule.file, source = src.name or src.kind, item = item.id,
                 dry_run = dry or nil }
  local function record(action, result, err, extra)
    local rec = {}
    for k, v in pairs(base) do rec[k] = v end
    rec.action, rec.result, rec.error = action, result, err
    for k, v in pairs(extra or {}) do rec[k] = v end
    state.audit:write(rec)
    state.actions = state.actions + 1
    if err then state.action_errors = state.action_errors + 1 end
  end
  local function act(action, fn, extra)
    if dry then
      record(action, "dry-run", nil, extra)
      if not state.quiet then
        io.stderr:write(string.format("dry-run: rule '%s' would %s %s\n", rule.name, action, tostring(item.id)))
      end
      return { dry_run = true, action = action }
    end
    local g = guards[coroutine.running()]
    if g then g.pause() end
    local ok, res, err, code = pcall(fn)
    if g then g.resume() end
    if not ok then
      record(action, "error", res, extra)
      error(res, 0)
    end
    if res == nil then
      record(action, "error", tostring(err) .. (code and (" (" .. tostring(code) .. ")") or ""), extra)
      return nil, err, code
    end
    local ex = extra or {}
    if type(res) == "table" and type(res.execution) == "table" then ex.execution = res.execution.id end
    record(action, summary_of(res), nil, ex)
    return res
  end
  local ctx = { dry_run = dry, rule = rule.name, source = base.source }
  function ctx.retry(opts) return act("retry", function() return item:retry(opts) end) end
  function ctx.patch(p)
    if type(p) ~= "table" then error("ctx.patch: table expected {blueprint = bp, failer = id}", 2) end
    local what = {}
    for k in pairs(p) do what[#what + 1] = tostring(k) end
    table.sort(what)
    return act("patch", function() return item:patch(p) end, { fields = table.concat(what, ",") })
  end
  function ctx.delete() return act("delete", function() return item:delete() end) end
  function ctx.notify(n)
    if type(n) ~= "table" or type(n.url or n[1]) ~= "string" then
      error("ctx.notify: {url = string, json = value} expected", 2)
    end
    local url = n.url or n[1]
    return act("notify", function()
      local res, err, code = rd.http.request {
        method = n.method or "POST", url = url, json = n.json, body = n.body,
        headers = n.headers, timeout = n.timeout or 10,
      }
      if res and res.status >= 400 then return nil, "HTTP " .. res.status, "http" end
      return res, err, code
    end, { url = url_for_audit(url) })
  end
  function ctx.log(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = pretty.redact(tostring((select(i, ...)))) end
    local msg = table.concat(parts, " ")
    rule.log(tostring(item.id) .. ": " .. msg)
    local rec = {}
    for k, v in pairs(base) do rec[k] = v end
    rec.action, rec.result = "log", msg
    state.audit:write(rec)
  end
  return ctx
end

local function report(state, rule, msg)
  state.errors = state.errors + 1
  io.stderr:write("rules: rule '", rule.name, "' (", rule.file, "): ", pretty.redact(tostring(msg)), "\n")
end

-- One pass of a rule: list the source's unresolved incomplete executions,
-- match, act at bounded concurrency. Returns the pass summary.
function R.pass(rule, ctxopts)
  local state = {
    audit = ctxopts.audit, dry_run = ctxopts.dry_run, quiet = ctxopts.quiet,
    actions = 0, action_errors = 0, errors = 0,
  }
  local summary = { rule = rule.name, file = rule.file, matched = 0, actions = 0, errors = 0 }
  local src, err, code = ctxopts.connect(rule.source)
  summary.source = rule.source or (src and src.name) or "default"
  if not src then
    report(state, rule, "cannot connect to source '" .. tostring(rule.source or "default") .. "': " .. tostring(err))
    ctxopts.audit:write { rule = rule.name, file = rule.file, source = summary.source, action = "connect",
                          result = "error", error = tostring(err) }
    summary.errors, summary.source_failed = 1, (code == "connect" or code == "auth" or code == "http"
      or code == "timeout" or code == "tls") and code or "connect"
    return summary
  end
  local it, ierr = src:incomplete { resolved = false, scenario = rule.scenario, reason = rule.reason }
  if not it then
    report(state, rule, "listing incomplete executions failed: " .. tostring(ierr))
    summary.errors = 1
    return summary
  end
  local matched = {}
  local limit = rule.limit or math.huge
  local ok_iter, iter_err = pcall(function()
    for item in it do
      if #matched >= limit then break end
      local ok, m = R.guard(rule, rule.match, item)
      if not ok then
        report(state, rule, "match: " .. m)
        ctxopts.audit:write { rule = rule.name, file = rule.file, source = summary.source, item = item.id,
                              action = "match", result = "error", error = m }
        break
      end
      if m then matched[#matched + 1] = item end
    end
  end)
  if not ok_iter then
    if tostring(iter_err):find("interrupted") then error(iter_err, 0) end
    report(state, rule, "listing incomplete executions failed: " .. tostring(iter_err))
  end
  summary.matched = #matched
  if #matched > 0 then
    local res = rd.each(matched, function(item)
      local ctx = make_ctx(rule, item, src, state)
      local ok, e = R.guard(rule, rule.action, item, ctx)
      if not ok then
        report(state, rule, "action on " .. tostring(item.id) .. ": " .. e)
        ctxopts.audit:write { rule = rule.name, file = rule.file, source = summary.source, item = item.id,
                              action = "action", result = "error", error = e, dry_run = state.dry_run or nil }
      end
    end, { concurrency = rule.concurrency })
    for _, e in ipairs(res.errors) do report(state, rule, e.error) end
  end
  summary.actions = state.actions
  summary.errors = state.errors + state.action_errors
  summary.dry_run = state.dry_run or nil
  return summary
end

-- ---- the command ------------------------------------------------------------------

local function out(opts, fmt, ...)
  if not opts.quiet and not opts.json then io.stdout:write(string.format(fmt, ...), "\n") io.stdout:flush() end
end

local function show_summary(opts, s)
  if opts.json then
    require("redrive.cli").emit(s)
  else
    out(opts, "rule %s [%s]%s: %d matched, %d action(s), %d error(s)", s.rule, tostring(s.source),
      s.dry_run and " (dry run)" or "", s.matched, s.actions, s.errors)
  end
end

-- check(dir, opts) -> exit status: validate every file, touch no source
function R.check(dir, opts)
  local rules, errors = R.load_dir(dir, opts)
  if not rules then
    io.stderr:write("rules: ", tostring(errors), "\n")
    return 2
  end
  local cfg_ok, cfg = pcall(rd.config)
  for _, rule in ipairs(rules) do
    if rule.source and cfg_ok and type(cfg) == "table" and cfg.profiles and not cfg.profiles[rule.source] then
      errors[#errors + 1] = { file = rule.file, message = rule.file .. ": source profile '" .. rule.source ..
        "' is not in the config file" }
    else
      out(opts, "ok    %s (rule %s)", rule.file, rule.name)
      if opts.json then require("redrive.cli").emit { file = rule.file, rule = rule.name, ok = true } end
    end
  end
  for _, e in ipairs(errors) do
    io.stderr:write("rules: refusing ", e.file, ": ", e.message, "\n")
    if opts.json then require("redrive.cli").emit { file = e.file, ok = false, error = e.message } end
  end
  if #rules == 0 and #errors == 0 then io.stderr:write("rules: no *.lua files in ", dir, "\n") end
  return #errors == 0 and 0 or 1
end

-- main(dir, opts) -> exit status. opts: watch, check, dry_run, audit, json,
-- quiet, poll (seconds between checks of the files, --watch)
function R.main(dir, opts)
  if opts.check then return R.check(dir, opts) end
  local audit, aerr = R.audit(opts.audit)
  if not audit then
    io.stderr:write("rules: ", aerr, "\n")
    return 2
  end
  local sources = {}
  local function connect(name)
    local key = name or ""
    if sources[key] then return sources[key] end
    local s, e, c = rd.connect(name)
    if s then sources[key] = s end
    return s, e, c
  end
  local ctxopts = { audit = audit, dry_run = opts.dry_run or rd.is_dry_run(), quiet = opts.quiet, connect = connect }
  local rules, errors = R.load_dir(dir, opts)
  if not rules then
    io.stderr:write("rules: ", tostring(errors), "\n")
    return 2
  end
  for _, e in ipairs(errors) do io.stderr:write("rules: refusing ", e.file, ": ", e.message, "\n") end
  local failed, source_failed = #errors > 0, false

  if not opts.watch then
    for _, rule in ipairs(rules) do
      local s = R.pass(rule, ctxopts)
      show_summary(opts, s)
      if s.errors > 0 then failed = true end
      if s.source_failed then source_failed = true end
    end
    audit:close()
    if source_failed then return 3 end
    return failed and 1 or 0
  end

  -- --watch: a loop per rule on its own interval; the files are polled and a
  -- changed file is reloaded (a broken edit is refused and the old version
  -- keeps running); a removed file stops its rule.
  local entries = {} -- file -> {rule, mtime, task, stop, state}
  local sys = require "redrive.cli.sys"
  local function start(rule, mtime, old)
    local e = { rule = rule, mtime = mtime, state = "starting" }
    e.task = rd.spawn(function()
      if old then pcall(old.task.wait, old.task) end
      while not e.stop do
        e.state = "running"
        local ok, s = pcall(R.pass, rule, ctxopts)
        if ok then show_summary(opts, s)
        elseif tostring(s):find("interrupted") then return
        else report({ errors = 0 }, rule, s) end
        if e.stop then break end
        e.state = "sleeping"
        local slept = pcall(rd.sleep, rule.every)
        if not slept and not e.stop then return end
      end
      e.state = "stopped"
    end)
    return e
  end
  local function stop(e)
    e.stop = true
    if e.state == "sleeping" then e.task:cancel() end
  end
  local names = {}
  for _, rule in ipairs(rules) do
    local st = sys.stat(rule.file)
    entries[rule.file] = start(rule, st and st.mtime)
    names[rule.file] = rule.name
  end
  for _, e in ipairs(errors) do
    local st = sys.stat(e.file)
    entries[e.file] = { broken = true, mtime = st and st.mtime }
  end
  out(opts, "rules: watching %s (%d rule(s)); Ctrl-C to stop", dir, #rules)
  local poll = opts.poll or tonumber(os.getenv("REDRIVE_RULES_POLL")) or 1
  while true do
    rd.sleep(poll)
    local paths = R.files(dir) or {}
    local present = {}
    for _, p in ipairs(paths) do
      present[p] = true
      local st = sys.stat(p)
      local e = entries[p]
      if st and (not e or e.mtime ~= st.mtime) then
        local rule, lerr = R.load_file(p, opts)
        if rule then
          for f, n in pairs(names) do
            if n == rule.name and f ~= p then rule, lerr = nil, "rule name '" .. n .. "' is already used by " .. f end
          end
        end
        if rule then
          local old = e and not e.broken and e or nil
          if old then stop(old) end
          entries[p] = start(rule, st.mtime, old)
          names[p] = rule.name
          out(opts, "rules: %s %s (rule %s)", old and "reloaded" or "loaded", p, rule.name)
        else
          io.stderr:write("rules: refusing ", p, ": ", lerr, (e and not e.broken) and " (the previous version keeps running)" or "", "\n")
          if e then e.mtime = st.mtime else entries[p] = { broken = true, mtime = st.mtime } end
        end
      end
    end
    for p, e in pairs(entries) do
      if not present[p] then
        if not e.broken then stop(e) end
        entries[p], names[p] = nil, nil
        out(opts, "rules: %s removed, its rule stopped", p)
      end
    end
  end
end

return R

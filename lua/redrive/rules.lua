-- Rules: one Lua file per rule, kept in an ops repository and applied by
-- `redrive rules DIR [--once | --watch] [--check] [--dry-run] [--audit FILE]`.
--
-- A rule file returns
--   { name = "retry-timeouts", source = "prod" (profile; default rd.connect()),
--     scenario = id?, reason = "lua pattern"?, fingerprint = "failure group"?
--     (passed to src:incomplete),
--     match = function(item) -> boolean end,
--     action = function(item, ctx) ... end,
--     every = seconds (--watch, default 60), limit = max actions per pass,
--     concurrency = actions in flight (default 4), description = "..." }
--
-- Each file runs in the sandbox (lua/redrive/sandbox.lua, profile "rule"):
-- its own _ENV, a proxy onto an allow list of globals in which assigning a
-- global or reading an undefined one raises; bounded string functions, also
-- as ("x"):method(). match and action run under the sandbox's limits
-- (instructions, time of the rule's own code, memory), per call: once
-- tripped a limit raises again on every instruction, so a pcall in the rule
-- cannot swallow it, and a long rule yields to the loop every few ms. A
-- rule that raises or trips a limit is reported with file:line (and the
-- limit's code) and the other rules go on. ctx: retry(), patch{blueprint,
-- failer}, delete(), notify{url, json}, log(...), dry_run, rule, source.
--
-- Audit: each rule has an observer on the mutation gate
-- (lua/redrive/mutation.lua), bound to every source the rule reaches (its
-- `source`, and any source it gets from rd.connect). So every mutation made
-- while the rule runs — ctx.retry() or item:retry(), on any of those
-- sources, whatever call made it — is appended to the audit log as a JSON
-- line (in a dry run: the mutation that would be made), counted in the pass
-- summary and counted toward `limit` (the gate refuses the ones past it, code
-- "limit"). Outside its pass (while loading, under --check) a rule's
-- mutations are refused (code "refused").
local rd = require "redrive"
local pretty = require "redrive.pretty"
local G = require "redrive.mutation"
local S = require "redrive.sandbox"
local core = require "redrive.core"

local R = {}

local FIELDS = {
  name = "string", source = "string", scenario = "any", reason = "string", fingerprint = "string",
  match = "function", action = "function", every = "number", limit = "number",
  concurrency = "number", description = "string", timeout = "number", memory = "number",
  instructions = "number",
}
local FIELD_LIST = "name, source, scenario, reason, fingerprint, match, action, every, limit, concurrency, description, " ..
  "timeout, memory, instructions"

-- ---- the sandbox ------------------------------------------------------------

-- A read-only view of the redrive module: rules may read, request and
-- connect, but not switch dry-run off; a source they connect to is bound to
-- the rule's observer, so what they do there is audited too.
local function rd_view(scope)
  local function connect(...)
    local src, err, code = rd.connect(...)
    if src then G.observe(src, scope) end
    return src, err, code
  end
  local view = setmetatable({}, {
    __index = function(_, k)
      if k == "dry_run" then
        return function(on)
          if on == false and rd.is_dry_run() then error("rules cannot turn dry-run off", 2) end
          return rd.dry_run(on)
        end
      end
      if k == "connect" then return connect end
      return rd[k]
    end,
    __newindex = function(_, k) error("rd is read-only in rules (assignment to rd." .. tostring(k) .. ")", 2) end,
    __metatable = false,
  })
  return view
end

local function make_env(scope, logf)
  return S.env("rule", { rd = rd_view(scope), print = function(...) logf(...) end, log = function(...) logf(...) end })
end

-- ---- guarded calls -------------------------------------------------------------

-- guard(rule, fn, ...) -> true, results... | false, message, code
-- Runs fn on the current coroutine in the rule's sandbox run (its limits:
-- rule.limits). The message of a failure names the rule file and line; code
-- is "limit" or "nomem" when a limit stopped it, "script" when it raised.
-- rd.canceled comes back as itself (false, rd.canceled).
function R.guard(rule, fn, ...)
  local spec = { name = "rule '" .. tostring(rule.name or "?") .. "'", chunk = rule.chunk, limits = rule.limits }
  local r = table.pack(S.run(spec, fn, ...))
  if r[1] then return table.unpack(r, 1, r.n) end
  if rd.is_canceled(r[2]) then return false, r[2] end
  local msg, code = S.failure(r[2])
  return false, msg, code
end

-- ---- the rule's observer on the mutation gate ----------------------------------

local CLOSED = "a rule acts only while its pass runs (not while loading or checking)"

-- The observer (lua/redrive/mutation.lua) of one rule: closed (every
-- mutation refused) except during a pass, when R.pass opens it with the
-- audit writer, the pass state and the rule's limit.
local function new_scope(name_hint)
  return { name = "rule '" .. name_hint .. "'", closed = CLOSED, count = 0, before = nil, after = nil }
end

local function summary_of(res)
  if res == true then return "ok" end
  if type(res) ~= "table" then return res end
  if res.dry_run then return "dry-run" end
  if res.status then return res.status end
  return "ok"
end

local function source_name(src)
  return src.name or src.kind
end

-- The audit record of one gate event (see mutation.lua for ev).
local function record_of(scope, ev)
  local rule = scope.rule
  local rec = { rule = rule and rule.name or scope.name, file = rule and rule.file, source = source_name(ev.source),
                action = ev.action, dry_run = ev.dry_run }
  if ev.id ~= nil then rec.item = ev.id
  elseif ev.ids ~= nil then rec.items = ev.ids end
  if ev.n ~= nil and ev.id == nil then rec.count = ev.n end
  if ev.refused then rec.result, rec.error, rec.code = "refused", ev.error, ev.code
  elseif ev.skipped then rec.result, rec.error, rec.code = "skipped", ev.error, ev.code -- the ledger
  elseif ev.error ~= nil then
    rec.result, rec.code = "error", ev.code
    rec.error = rd.is_canceled(ev.error) and "interrupted" or tostring(ev.error)
  else
    local res = ev.result
    rec.result = summary_of(res)
    if type(res) == "table" and not res.dry_run then
      if type(res.execution) == "table" then rec.execution = res.execution.id
      elseif ev.action == "retry_execution" or ev.action == "run" then rec.execution = res.id end
    end
  end
  for k, v in pairs(ev.detail or {}) do rec[k] = v end
  return rec
end

-- open(scope, state, limit) / close(scope): a pass starts and ends
local function open_scope(scope, state, limit)
  scope.state, scope.audit, scope.closed = state, state.audit, nil
  scope.count, scope.limit = 0, limit
  -- the source's code is not the rule's: its time and memory are not the
  -- rule's to spend, and its string methods are the stock ones
  scope.before = function(ev) ev.run = core.sandbox_pause() end
  scope.after = function(ev)
    if ev.run then core.sandbox_resume(ev.run) end
    scope.audit:write(record_of(scope, ev))
    local st = scope.state
    if not st then return end
    if ev.refused then st.refused = st.refused + (ev.n or 1)
    elseif ev.skipped then st.skipped = st.skipped + (ev.n or 1)
    else
      st.actions = st.actions + (ev.n or 1)
      if ev.error ~= nil then st.action_errors = st.action_errors + 1 end
    end
  end
end

local function close_scope(scope)
  scope.state, scope.closed = nil, CLOSED
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
  local scope = new_scope(name_hint)
  local env = make_env(scope, logf)
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, "syntax error: " .. err end
  local glimits, gerr = S.limits()
  if not glimits then return nil, gerr end
  local proto = { name = name_hint, chunk = "@" .. path, limits = glimits }
  local ok, res = R.guard(proto, chunk)
  if not ok then return nil, "error while loading: " .. tostring(res) end
  if type(res) ~= "table" then
    return nil, path .. ": a rule file must return a table {name, match, action, ...}, got " .. type(res)
  end
  local rule = { file = path, chunk = "@" .. path, env = env, log = logf, scope = scope }
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
  local pat_ok, pat_err = true, nil
  if rule.reason ~= nil then pat_ok, pat_err = require("redrive.pattern_filter").compile(rule.reason) end
  if not pat_ok then return nil, path .. ": field 'reason': " .. pat_err end
  -- numbers: the one rule of options (redrive.opts): no NaN, infinity or
  -- value out of range reaches the scheduler or rd.each
  local num = require("redrive.opts").number
  for _, n in ipairs { { "every", "timeout", 60 }, { "limit", "count", false }, { "concurrency", "concurrency", 4 } } do
    local v, err = num(rule[n[1]], n[1], n[2], n[3])
    if v == nil then return nil, path .. ": " .. err end
    rule[n[1]] = v or nil
  end
  local limits, lerr = S.limits(rule) -- timeout, memory, instructions: at most the global ones
  if not limits then return nil, path .. ": " .. lerr end
  rule.limits = limits
  scope.rule, scope.name = rule, "rule '" .. rule.name .. "'"
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

-- audit(path | nil) -> writer: appends JSON lines, flushed one by one. A
-- new file is created with mode 0600: the log names items and errors.
function R.audit(path)
  local a = setmetatable({ path = path }, Audit)
  if path then
    local ok, cerr = require("redrive.cli.sys").create_private(path)
    if not ok then return nil, "cannot open audit log: " .. tostring(cerr) end
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

-- ctx for one item: thin calls on the item; the audit, the count and the
-- limit are the rule observer's (mutations go through the gate whatever
-- call makes them). notify goes through the gate too, on the rule's source.
local function make_ctx(rule, item, src, state)
  local ctx = { dry_run = state.dry_run, rule = rule.name, source = source_name(src) }
  function ctx.retry(opts) return item:retry(opts) end
  function ctx.patch(p)
    if type(p) ~= "table" then error("ctx.patch: table expected {blueprint = bp, failer = id}", 2) end
    return item:patch(p)
  end
  function ctx.delete() return item:delete() end
  function ctx.notify(n)
    if type(n) ~= "table" or type(n.url or n[1]) ~= "string" then
      error("ctx.notify: {url = string, json = value} expected", 2)
    end
    local url = n.url or n[1]
    local shown = url_for_audit(url)
    return G.mutate(src, { action = "notify", id = item.id, detail = { url = shown },
                           line = string.format("rule '%s' would notify %s about %s", rule.name, shown, tostring(item.id)) },
      function()
        local res, err, code = rd.http.request {
          method = n.method or "POST", url = url, json = n.json, body = n.body,
          headers = n.headers, timeout = n.timeout or 10,
        }
        if res and res.status >= 400 then return nil, "HTTP " .. res.status, "http" end
        return res, err, code
      end)
  end
  function ctx.log(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = pretty.redact(tostring((select(i, ...)))) end
    local msg = table.concat(parts, " ")
    rule.log(tostring(item.id) .. ": " .. msg)
    state.audit:write { rule = rule.name, file = rule.file, source = ctx.source, item = item.id,
                        dry_run = state.dry_run or nil, action = "log", result = msg }
  end
  return ctx
end

local function report(state, rule, msg)
  state.errors = state.errors + 1
  io.stderr:write("rules: rule '", rule.name, "' (", rule.file, "): ", pretty.redact(tostring(msg)), "\n")
end

-- A source failure that ends the command with 3 (unreachable, credentials
-- refused; see redrive.cli): by the error's code, else the CLI's classifier.
local SOURCE_DOWN = { connect = true, auth = true, http = true, timeout = true, tls = true }

local function failure_code(err, code)
  if code == nil and type(err) == "table" then code = err.code end
  if SOURCE_DOWN[code] then return code end
  local kind = require("redrive.cli").classify(err)
  if kind == "connect" or kind == "auth" then return kind end
  return nil
end

-- One pass of a rule: list the source's unresolved incomplete executions,
-- match, act at bounded concurrency, with the rule's observer open on the
-- gate (its mutations audited, counted and limited). Returns the summary.
function R.pass(rule, ctxopts)
  local state = {
    audit = ctxopts.audit, dry_run = ctxopts.dry_run, quiet = ctxopts.quiet,
    actions = 0, action_errors = 0, errors = 0, refused = 0, skipped = 0,
  }
  local summary = { rule = rule.name, file = rule.file, matched = 0, actions = 0, errors = 0 }
  -- a source that cannot be reached: reported, audited, and exit 3 (--once)
  local function source_error(action, what, err, code)
    local fc = failure_code(err, code)
    report(state, rule, what .. ": " .. tostring(err))
    ctxopts.audit:write { rule = rule.name, file = rule.file, source = summary.source,
                          action = action, result = "error", code = fc or code, error = tostring(err) }
    summary.source_failed = summary.source_failed or fc
  end
  local src, err, code = ctxopts.connect(rule.source, rule)
  summary.source = rule.source or (src and src.name) or "default"
  if not src then
    source_error("connect", "cannot connect to source '" .. tostring(rule.source or "default") .. "'", err,
      code or "connect")
    summary.errors, summary.source_failed = 1, summary.source_failed or "connect"
    return summary
  end
  local scope = rule.scope or new_scope(rule.name)
  G.observe(src, scope)
  local it, ierr, icode = src:incomplete { resolved = false, scenario = rule.scenario, reason = rule.reason,
    fingerprint = rule.fingerprint }
  if not it then
    source_error("list", "listing incomplete executions failed", ierr, icode)
    summary.errors = 1
    return summary
  end
  local matched = {}
  local limit = rule.limit or math.huge
  open_scope(scope, state, rule.limit)
  local _ <close> = setmetatable({}, { __close = function() close_scope(scope) end })
  local ok_iter, iter_err = pcall(function()
    for item in it do
      if #matched >= limit then break end
      local ok, m, mcode = R.guard(rule, rule.match, item)
      if not ok and rd.is_canceled(m) then error(m, 0) end
      if not ok then
        report(state, rule, "match: " .. m)
        ctxopts.audit:write { rule = rule.name, file = rule.file, source = summary.source, item = item.id,
                              action = "match", result = "error", error = m, code = mcode }
        if mcode ~= "script" then summary.error_code = mcode end -- a limit stopped it
        break
      end
      if m then matched[#matched + 1] = item end
    end
  end)
  if not ok_iter then
    if rd.is_canceled(iter_err) then error(iter_err, 0) end
    local icode = type(iter_err) == "table" and iter_err.code or nil -- "limit": the reason pattern
    source_error("list", "listing incomplete executions failed", iter_err, icode)
    summary.error_code = icode
  end
  summary.matched = #matched
  if #matched > 0 then
    local res = rd.each(matched, function(item)
      local ctx = make_ctx(rule, item, src, state)
      local ok, e, ecode = R.guard(rule, rule.action, item, ctx)
      if not ok and rd.is_canceled(e) then error(e, 0) end
      if not ok then
        report(state, rule, "action on " .. tostring(item.id) .. ": " .. e)
        ctxopts.audit:write { rule = rule.name, file = rule.file, source = summary.source, item = item.id,
                              action = "action", result = "error", error = e, code = ecode,
                              dry_run = state.dry_run or nil }
        if ecode ~= "script" then summary.error_code = ecode end
      end
    end, { concurrency = rule.concurrency })
    for _, e in ipairs(res.errors) do report(state, rule, e.error) end
  end
  summary.actions = state.actions
  if state.refused > 0 then summary.refused = state.refused end
  if state.skipped > 0 then summary.skipped = state.skipped end -- another host has them (the ledger)
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
    out(opts, "rule %s [%s]%s: %d matched, %d action(s), %d error(s)%s", s.rule, tostring(s.source),
      s.dry_run and " (dry run)" or "", s.matched, s.actions, s.errors,
      s.skipped and string.format(", %d skipped (ledger)", s.skipped) or "")
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
  if opts.dry_run then rd.dry_run(true) end -- the gate decides: one switch
  local audit, aerr = R.audit(opts.audit)
  if not audit then
    io.stderr:write("rules: ", aerr, "\n")
    return 2
  end
  -- one source object per rule (and profile), so the rule's observer sees
  -- only that rule's mutations; each named on stderr before it is used
  local sources = setmetatable({}, { __mode = "k" }) -- rule -> {profile -> src}
  local function connect(name, rule)
    local mine = sources[rule]
    if not mine then mine = {}; sources[rule] = mine end
    local key = name or ""
    if mine[key] then return mine[key] end
    local s, e, c = rd.connect(name)
    if s then
      mine[key] = s
      if not opts.quiet then
        io.stderr:write("rules: rule '", rule and rule.name or "?", "' acts on ", rd._describe(s), "\n")
      end
    end
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
        elseif rd.is_canceled(s) then return
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

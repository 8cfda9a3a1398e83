-- What the subcommands of `redrive` share (lua/redrive/cli/commands.lua and
-- the files it loads): the flag parser, the one parser of times given on
-- the command line (--since / --until), the errors that become exit
-- statuses, output helpers and the "acting on" connection.
--
-- Errors inside a command, by what they become (lua/redrive/cli.lua maps
-- codes to exit statuses):
--   U.usage(msg)        raises {usage = msg}: one line, exit 2
--   U.fail(msg, code)   raises {code, message}: connect / auth / tls (the
--                       source is unreachable or refused the credentials)
--                       exit 3, anything else 1. Codes, never texts.
local rd = require "redrive"
local cli = require "redrive.cli"

local U = {}

function U.usage(msg) error({ usage = msg }, 0) end

-- the codes that mean "the source is unreachable or refused us" (exit 3)
local SOURCE_DOWN = { connect = "connect", tls = "connect", auth = "auth" }

function U.fail(err, code)
  local msg = type(err) == "table" and (err.message or err.msg) or err
  error({ code = SOURCE_DOWN[code] or "script",
          message = tostring(msg) .. (code and (" (" .. tostring(code) .. ")") or "") }, 0)
end

-- down(errors) -> code when an error of a summary's list says the source
-- was unreachable or refused the credentials (connect, tls, auth) | nil:
-- a bulk call that met one exits 3, as a listing that meets one does
function U.down(list)
  for _, e in ipairs(list or {}) do
    if SOURCE_DOWN[e.code] then return SOURCE_DOWN[e.code] end
  end
end

-- check(v, err, code) -> v, or fail(err, code): a source call's answer
function U.check(v, err, code, ...)
  if v == nil then U.fail(err, code) end
  return v, err, code, ...
end

-- ---- flags ------------------------------------------------------------------

-- The global options: one table for the parser below (after a command),
-- redrive --help, each command's help (redrive help CMD, CMD --help) and
-- `redrive --json help CMD` (.globals), which tests/sh/test_docs.sh checks
-- docs/cli.md and redrive(1) against, and tests/sh/test_cli_commands.sh
-- the C parser (src/cli/opts.c, before a command) against.
-- {name, key (cli.options), metavar (a value) | nil, help, short = "-q"}
U.GLOBALS = {
  { "--dry-run", "dry_run", nil, "mutating calls log what they would do and change nothing" },
  { "--json", "json", nil, "results and errors as JSON lines on stdout" },
  { "--db", "db", "PATH|URL", "store of the local source: a file, or a postgresql:// URL (password: " ..
    "password_env, ~/.pgpass; never shown); which wins: rd.connect{db} > --db > $REDRIVE_DB > profile's db " ..
    "> default" },
  { "--profile", "profile", "NAME", "source profile for rd.connect() (else $REDRIVE_PROFILE)" },
  { "--ledger", "ledger", "PATH|URL", "the ledger several hosts share: each change to a Make, n8n or Kaizen " ..
    "item first takes a lease there and records its outcome; one another host holds or did is skipped; " ..
    "rd.connect{ledger} > --ledger > $REDRIVE_LEDGER > profile's ledger; `none` turns it off " ..
    "(docs/several-hosts.md)" },
  { "--quiet", "quiet", nil, "only errors on stderr", short = "-q" },
  { "--verbose", "verbose", nil, "log HTTP calls on stderr (tokens redacted)" },
  { "--force", "force", nil, "(retry) do not skip unsafe retries" },
}

local GLOBAL_BOOL, GLOBAL_VAL = {}, {}
for _, g in ipairs(U.GLOBALS) do
  local set = g[3] and GLOBAL_VAL or GLOBAL_BOOL
  set[g[1]] = g[2]
  if g.short then set[g.short] = g[2] end
end

-- parse(args, flags) -> {pos = {...}, flags = {[name] = value}}, globals
-- flags: list of {name, kind, metavar, help} with kind "bool", "value" or
-- "list" (comma-separated, repeatable). -h / --help sets flags["--help"].
-- Raises {usage = msg} on an unknown option or a missing value.
function U.parse(args, flags)
  local kinds = {}
  for _, f in ipairs(flags) do kinds[f[1]] = f[2] end
  local r, globals = { pos = {}, flags = {} }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    if key then a = key end
    local function value()
      if inline then return inline end
      i = i + 1
      if args[i] == nil then U.usage("option '" .. a .. "' needs a value") end
      -- `ls --scenario --all`: a forgotten value, not a scenario named --all
      -- (a value that starts so is written --scenario=--x)
      if args[i]:match("^%-%-%a") then
        U.usage("option '" .. a .. "' needs a value, got the option '" .. args[i] .. "'")
      end
      return args[i]
    end
    if a == "-h" or a == "--help" then r.flags["--help"] = true
    elseif GLOBAL_BOOL[a] then globals[GLOBAL_BOOL[a]] = true
    elseif GLOBAL_VAL[a] then
      local v = value()
      if v == "" then U.usage("option '" .. a .. "' needs a non-empty value") end
      globals[GLOBAL_VAL[a]] = v
    elseif kinds[a] == "bool" then r.flags[a] = true
    elseif kinds[a] == "value" then
      local v = value()
      if v == "" then U.usage("option '" .. a .. "' needs a non-empty value") end
      r.flags[a] = v
    elseif kinds[a] == "list" then
      r.flags[a] = r.flags[a] or {}
      for id in value():gmatch("[^,%s]+") do table.insert(r.flags[a], id) end
    elseif a == "--" then
      for j = i + 1, #args do table.insert(r.pos, args[j]) end
      break
    elseif a:match("^%-") and a ~= "-" then
      U.usage("unknown option '" .. a .. "'")
    else
      table.insert(r.pos, a)
    end
    i = i + 1
  end
  return r, globals
end

-- count(a, flag, dflt) -> a whole number >= 0 from a flag, or usage error
function U.count(a, flag, dflt)
  local v = a.flags[flag]
  if v == nil then return dflt end
  local n = math.tointeger(tonumber(v))
  if not n or n < 0 then U.usage(flag .. " needs a whole number >= 0, got '" .. v .. "'") end
  return n
end

-- ---- times ------------------------------------------------------------------

local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- duration(text) -> seconds | nil: "90" (seconds), "90s", "15m", "2h",
-- "7d", "1w", "1h30m", "1.5h"
function U.duration(s)
  if s:match("^%d+%.?%d*$") then return tonumber(s) end
  local total, pos = 0, 1
  while pos <= #s do
    local num, unit, nxt = s:match("^(%d+%.?%d*)([smhdw])()", pos)
    if not num then return nil end
    total, pos = total + tonumber(num) * UNITS[unit], nxt
  end
  return pos > 1 and total or nil
end

-- iso(text) -> Unix seconds | nil: 2026-12-01, 2026-12-01T03:00[:00[.123]]
-- with an optional zone (Z, +02:00, -0500; none is UTC). The text is
-- checked whole here; the conversion is the sources' own (remote.iso_time).
local function iso(s)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local yn, mn, dn = tonumber(y), tonumber(mo), tonumber(d)
  if mn < 1 or mn > 12 or dn < 1 then return nil end
  local leap = yn % 4 == 0 and (yn % 100 ~= 0 or yn % 400 == 0)
  local days = ({ 31, leap and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[mn]
  if dn > days then return nil end -- 2026-02-30 is a typo, not March 2nd
  if rest ~= "" then
    local sep, hh, mi, tail = rest:match("^([Tt ])(%d%d):(%d%d)(.*)$")
    if not hh or tonumber(hh) > 23 or tonumber(mi) > 59 then return nil end
    local ss, t2 = tail:match("^:(%d%d)(.*)$")
    if ss then
      if tonumber(ss) > 60 then return nil end
      tail = t2
      local frac, t3 = tail:match("^([%.,]%d+)(.*)$")
      if frac then tail = t3 end
    else
      -- hh:mm without seconds: the conversion wants them
      rest = sep .. hh .. ":" .. mi .. ":00" .. tail
    end
    if not (tail == "" or tail == "Z" or tail == "z" or tail:match("^[%+%-]%d%d:?%d%d$")) then return nil end
  end
  return require("redrive.remote").iso_time(y .. "-" .. mo .. "-" .. d .. rest)
end

-- time(a, flag [, now]) -> Unix seconds | nil (flag not given): a moment
-- given as a duration ago (2h: two hours before now) or an ISO date; a
-- usage error when it is neither.
function U.time(a, flag, now)
  local v = a.flags[flag]
  if v == nil then return nil end
  local d = U.duration(v)
  if d then return (now or rd.time()) - d end
  local t = iso(v)
  if t then return t end
  U.usage(string.format("%s: '%s' is neither a duration (90s, 15m, 2h, 7d, 1h30m) nor an ISO date " ..
    "(2026-12-01, 2026-12-01T03:00:00Z)", flag, v))
end

-- window(a) -> since, until: --since and --until, checked together
function U.window(a)
  local now = rd.time()
  local since, till = U.time(a, "--since", now), U.time(a, "--until", now)
  if since and till and since >= till then U.usage("--since must be before --until") end
  return since, till
end

-- ---- output -----------------------------------------------------------------

function U.json_mode() return cli.options.json end

-- out(...): one line on stdout, through the redactor (src/core/redact.c)
function U.out(...)
  io.stdout:write(require("redrive.pretty").redact(table.concat({ ... })))
  io.stdout:write("\n")
end

-- note(...): one line on stderr unless --quiet (counts, hints)
function U.note(...)
  if cli.options.quiet then return end
  io.stderr:write(require("redrive.pretty").redact(table.concat({ ... })), "\n")
end

function U.when(t) return require("redrive.pretty").fmt_time(t) end

function U.trunc(s, n)
  s = tostring(s or ""):gsub("%s+", " ")
  if utf8.len(s) and utf8.len(s) > n then return s:sub(1, utf8.offset(s, n) - 1) .. "…" end
  return s
end

-- thousands(n) -> "4 211"
function U.thousands(n)
  local s = tostring(math.tointeger(n) or n)
  local head, digits = s:match("^(%-?)(%d+)$")
  if not digits then return s end
  digits = digits:reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", "")
  return head .. digits
end

-- plain(obj, fields) -> a JSON-friendly copy of the public fields
function U.plain(obj, fields)
  local t = {}
  for _, k in ipairs(fields) do
    local v = obj[k]
    if type(v) ~= "function" then t[k] = v end
  end
  return t
end

-- the public fields of items and executions, as commands print them
U.ITEM_FIELDS = { "id", "scenario", "scenario_name", "reason", "fingerprint", "cause", "created", "size",
                  "resolved", "attempts", "execution_id", "failer" }
U.EXEC_FIELDS = { "id", "scenario", "status", "mode", "started_at", "stopped_at", "duration", "retry_of",
                  "retry_success_id", "parent_id", "attempts", "operations", "transfer", "error", "fingerprint",
                  "cause" }

-- read_json(path) -> value: a file named on the command line (missing: a
-- usage error; not JSON: a failure naming the file and the position)
function U.read_json(path)
  local f, err = io.open(path, "rb")
  if not f then U.usage("cannot open " .. tostring(err)) end
  local text = f:read("a")
  f:close()
  local v, jerr = rd.json.decode(text)
  if v == nil then U.fail(path .. ": " .. tostring(jerr), "invalid") end
  return v
end

-- shell(word) -> the word as a shell reads it back (quoted when needed)
function U.shell(w)
  w = tostring(w)
  if w:match("^[%w%-%._/:=@,+%%]+$") then return w end
  return "'" .. w:gsub("'", "'\\''") .. "'"
end

-- command(...) -> "redrive [--profile P] [--db D] ..." with the options that
-- chose the source in this run, each word quoted for the shell: a command
-- printed for the user to run acts on the same source.
function U.command(...)
  local words = { "redrive" }
  local o = cli.options
  if o.profile then words[#words + 1] = "--profile " .. U.shell(o.profile) end
  if o.db then words[#words + 1] = "--db " .. U.shell(o.db) end
  for _, w in ipairs({ ... }) do words[#words + 1] = U.shell(w) end
  return table.concat(words, " ")
end

-- listing(src, it, limit, row, what) -> shown, total, capped: calls row(x)
-- for the first `limit` records of the iterator, then counts the rest so
-- that a cut listing says so on stderr ("showing 1 000 of 4 211 incomplete
-- execution(s); --limit N shows more"). Counting reads the rest of the
-- listing: up to 100 000 more records from the local store, 10 000 from a
-- remote API (pages of requests), then "more than".
-- `header` (text mode) is printed before the first row: a listing that
-- fails before it has none.
function U.listing(src, it, limit, row, what, header)
  local COUNT_CAP = src.kind == "local" and 100000 or 10000
  local shown, total = 0, 0
  for x in it do
    total = total + 1
    if shown < limit then
      if shown == 0 and header and not U.json_mode() then U.out(header) end
      shown = shown + 1
      row(x)
    elseif total - shown >= COUNT_CAP then
      U.note(string.format("showing %s of more than %s %s; --limit N shows more", U.thousands(shown),
        U.thousands(total), what))
      return shown, total, true
    end
  end
  if total > shown then
    U.note(string.format("showing %s of %s %s; --limit N shows more", U.thousands(shown), U.thousands(total), what))
  elseif not U.json_mode() then
    U.note(U.thousands(total), " ", what)
  end
  return shown, total, false
end

-- ---- the source -------------------------------------------------------------

-- connect(acting [, opts]) -> src (rd.connect), or fails (exit 3 for an
-- unreachable host or refused credentials). `acting` is the name of a
-- command that changes something: the source is named on stderr before it
-- acts ("redrive retry: acting on local store /x.db (profile 'ops')").
function U.connect(acting, opts)
  local src, err, code = rd.connect(opts)
  if not src then U.fail("cannot connect to the source: " .. tostring(err), code) end
  if acting and not cli.options.quiet then
    io.stderr:write("redrive ", acting, ": acting on ", rd._describe(src), "\n")
  end
  return src
end

-- scenario(a, src, what) -> the --scenario value (a number when it is one),
-- or the profile's; a usage error when the source lists `what` per
-- scenario only and none is known (Make's incomplete executions,
-- SailPoint's workflow executions)
local PER_SCENARIO = {
  incomplete = { make = "Make lists incomplete executions per scenario: pass --scenario ID" },
  executions = { sailpoint = "SailPoint lists executions per workflow: pass --scenario WORKFLOW_ID" },
}
function U.scenario(a, src, what)
  local v = a.flags["--scenario"]
  if v == nil then
    local need = PER_SCENARIO[what] and PER_SCENARIO[what][src.kind]
    if need and src.scenario == nil then U.usage(need) end
    return nil
  end
  return math.tointeger(tonumber(v)) or v
end

-- pattern(a) -> the --reason pattern, checked (redrive.pattern_filter, the
-- one home of user patterns): a bad one is a usage error
function U.pattern(a)
  local p = a.flags["--reason"]
  if p == nil then return nil end
  local ok, msg = require("redrive.pattern_filter").compile(p)
  if not ok then U.usage("--reason: " .. tostring(msg)) end
  return p
end

return U

-- The subcommands of `redrive`: one table (COMMANDS below) says, for each
-- command, its synopsis, what it does, its flags and the function that runs
-- it. The parser, `redrive --help`, `redrive help CMD` / `redrive CMD --help`
-- and the C side's "is this word a command?" all read that table, so a new
-- command is one entry here and one function in a lua/redrive/cli/cmd_*.lua
-- file (loaded only when its command runs).
--
-- The commands use only the source API (shared/API.md), so they work on
-- every source; --profile picks it. Each honours the global options
-- (--dry-run, --json, --db, --ledger...: U.GLOBALS in cli/util.lua), given
-- before or after the command. Every command that
-- changes something names on stderr the source it acts on before it acts
-- ("redrive retry: acting on local store /x.db (profile 'ops')"). Expected
-- failures are one line: usage errors exit 2, an unreachable source or
-- refused credentials exit 3, anything else 1 (lua/redrive/cli.lua).
local cli = require "redrive.cli"
local U = require "redrive.cli.util"

local M = {}

-- ---- flags used by several commands ------------------------------------------

local F = {
  scenario = { "--scenario", "value", "ID", "the scenario (n8n, SailPoint: the workflow); Make needs one" },
  since = { "--since", "value", "T", "from T: a duration ago (90s, 15m, 2h, 7d, 1h30m) or an ISO date " ..
            "(2026-12-01, 2026-12-01T03:00:00Z)" },
  ["until"] = { "--until", "value", "T", "before T (a duration ago or an ISO date, as --since)" },
  reason = { "--reason", "value", "PATTERN", "the reason matches this Lua pattern ('HTTP 5%d%d')" },
  fingerprint = { "--fingerprint", "value", "FP", "one failure group (a fingerprint from redrive triage)" },
  except = { "--except", "list", "ID,...", "leave these out" },
  yes = { "--yes", "bool", nil, "confirm a change to a whole selection (--all, --fingerprint, --reason, " ..
          "--since, --until)" },
}

local function limit(dflt, what)
  return { "--limit", "value", "N", "show at most N " .. what .. " (default " .. dflt .. "); a cut listing " ..
           "says so on stderr" }
end

-- ---- the commands --------------------------------------------------------------
-- name, synopsis (after "redrive"), summary (the lines of redrive --help),
-- about (redrive help NAME), flags {name, "bool" | "value" | "list",
-- metavar, help}, run = {module, function} (lua/redrive/cli/cmd_<module>.lua)

local COMMANDS = {
  { name = "triage", synopsis = "triage [--since T] [--until T] [--scenario ID] [--resolved] [--limit N]",
    summary = "failures grouped by cause: count, cause, scenarios, first and last seen, and the command that " ..
      "retries, deletes or resolves each group",
    about = "The first screen of an on-call engineer: the pending failures grouped by fingerprint (their " ..
      "normalised cause, docs/fingerprints.md), biggest first. Each group ends with the exact commands that " ..
      "act on it (with the --profile / --db of this run). --json: one object per group, with its commands.",
    flags = { F.since, F["until"], F.scenario,
              { "--resolved", "bool", nil, "group the resolved failures instead of the pending ones" },
              limit(20, "groups") },
    run = { "triage", "triage" } },
  { name = "ls", synopsis = "ls [--scenario ID] [--since T] [--until T] [--reason PATTERN] [--fingerprint FP] " ..
      "[--status pending|resolved|any] [--all] [--limit N]",
    summary = "list incomplete executions (pending unless --status or --all)",
    about = "Lists incomplete executions (failed runs waiting in the queue), oldest first. A listing cut by " ..
      "--limit says so on stderr (\"showing 1 000 of 4 211\"). --json: one object per item.",
    flags = { F.scenario, F.since, F["until"], F.reason, F.fingerprint,
              { "--status", "value", "S", "pending (default), resolved or any" },
              { "--all", "bool", nil, "resolved ones too (--status any)" }, limit(1000, "items") },
    run = { "queue", "ls" } },
  { name = "executions", synopsis = "executions [--scenario ID] [--status S] [--since T] [--until T] " ..
      "[--fingerprint FP] [--limit N]",
    summary = "list executions, newest first on remote sources (SailPoint: --scenario WORKFLOW_ID)",
    about = "Lists executions (every run, failed or not). Status is success, warning, error, running or " ..
      "canceled. Make and Kaizen have no execution listing in their API: they say so and what to use instead.",
    flags = { F.scenario, { "--status", "value", "S", "success, warning, error, running or canceled" },
              F.since, F["until"], F.fingerprint, limit(1000, "executions") },
    run = { "inspect", "executions" } },
  { name = "show", synopsis = "show ID [--run-data]",
    summary = "show an incomplete execution (or an execution); --run-data: each module's input and output",
    about = "Shows an incomplete execution, or else the execution with that id. --run-data adds the run " ..
      "data of the execution (of an item: of the execution that failed), per module: input, output, " ..
      "error, duration (ms).",
    flags = { { "--run-data", "bool", nil, "each module's input, output, error and duration" } },
    run = { "inspect", "show" } },
  { name = "logs", synopsis = "logs ID [--status success|warning|error] [--limit N]",
    summary = "the retry attempts of an incomplete execution",
    flags = { { "--status", "value", "S", "only attempts that ended so: success, warning or error" },
              limit(1000, "attempts") },
    run = { "inspect", "logs" } },
  { name = "bundle", synopsis = "bundle ID", summary = "the input bundle of an item's failed module (JSON)",
    flags = {}, run = { "inspect", "bundle" } },
  { name = "blueprint", synopsis = "blueprint ID [--pointer P]",
    summary = "the blueprint stored with an item (JSON); --pointer: one value (RFC 6901, /flow/1/mapper/url)",
    flags = { { "--pointer", "value", "P", "print only the value at this JSON Pointer" } },
    run = { "inspect", "blueprint" } },
  { name = "retry", synopsis = "retry ID... | --all | --fingerprint FP | --reason PATTERN [--scenario ID] " ..
      "[--since T] [--until T] [--except ID,...] [--force] [--wait [--timeout S]] [--load-workflow] " ..
      "[--concurrency N]",
    summary = "retry incomplete executions; --wait: report each retry's outcome, not \"queued\"; --force also " ..
      "retries ones the safety checks would skip; --json: a line per item, then the summary",
    about = "Retries the items named, or a selection: --all (every pending item), --fingerprint (one failure " ..
      "group), --reason / --since / --until (the pending items that match; with --fingerprint and --scenario " ..
      "they narrow each other). Safe by default: items being retried, resolved or already retried " ..
      "successfully are skipped (--force retries them). Exit 1 when a retry failed.",
    flags = { { "--all", "bool", nil, "every pending item (of --scenario)" }, F.fingerprint, F.reason, F.since,
              F["until"], F.scenario, F.except,
              { "--force", "bool", nil, "also retry items the safety checks skip (resolved, being retried, " ..
                "already retried successfully)" },
              { "--wait", "bool", nil, "follow each retry until it ended (Make, n8n: the platform runs it later)" },
              { "--timeout", "value", "S", "with --wait: give up after S seconds (default 300): status unknown" },
              { "--load-workflow", "bool", nil, "n8n: retry with the saved workflow, not the one the " ..
                "execution ran" },
              { "--concurrency", "value", "N", "retries in flight at once (default 16)" } },
    run = { "queue", "retry" } },
  { name = "resolve", synopsis = "resolve ID... | --fingerprint FP | --reason PATTERN [--scenario ID] " ..
      "[--since T] [--until T] --yes",
    summary = "mark incomplete executions handled without retrying them (local; other sources say what to do " ..
      "instead)",
    flags = { F.fingerprint, F.reason, F.since, F["until"], F.scenario, F.yes },
    run = { "queue", "resolve" } },
  { name = "patch", synopsis = "patch ID FILE",
    summary = "patch an item's blueprint: FILE is a JSON Patch (array), a merge patch (object) or a whole " ..
      "blueprint (object with flow)",
    flags = {}, run = { "queue", "patch" } },
  { name = "delete", synopsis = "delete ID... | --all | --fingerprint FP | --reason PATTERN [--scenario ID] " ..
      "[--since T] [--until T] [--except ID,...] --yes",
    summary = "delete incomplete executions (a selection needs --yes)",
    flags = { { "--all", "bool", nil, "every incomplete execution (of --scenario)" }, F.fingerprint, F.reason,
              F.since, F["until"], F.scenario, F.except, F.yes },
    run = { "queue", "delete" } },
  { name = "health", synopsis = "health [SCENARIO] [--since T]",
    summary = "success rate, durations and top failure causes",
    flags = { F.since }, run = { "inspect", "health" } },
  { name = "run", synopsis = "run BLUEPRINT.json [--input JSON]",
    summary = "run a blueprint once on the local engine (the selected local profile, or the --db store), " ..
      "print the execution",
    flags = { { "--input", "value", "JSON", "the input bundle" } }, run = { "run", "run" } },
  { name = "rules", synopsis = "rules DIR [--once|--watch] [--check] [--audit FILE]",
    summary = "apply the rule files DIR/*.lua to incomplete executions; --once: one pass, for cron " ..
      "(default); --watch: run each rule every `every` seconds and reload edited files; --check: validate " ..
      "the files without touching any source; --audit: append every change a rule makes, by any call on any " ..
      "source it reaches, as a JSON line to FILE (created 0600); `limit` caps the changes per pass; exit 3 " ..
      "if a source is unreachable",
    flags = { { "--once", "bool", nil, "one pass (default)" },
              { "--watch", "bool", nil, "run each rule every `every` seconds, reload edited files" },
              { "--check", "bool", nil, "validate the files, touch no source" },
              { "--audit", "value", "FILE", "append each change as a JSON line to FILE" },
              { "--poll", "value", "S", "with --watch: how often to look for edited files" } },
    run = { "run", "rules" } },
  { name = "jobs", synopsis = "jobs [--state S] | jobs show ID [--results] | jobs resume ID | jobs cancel ID",
    summary = "the local store's durable bulk jobs (src:retry{job = true}): list, show (with --results its " ..
      "per-item ledger), resume (run one here from where its ledger says), cancel",
    about = "A durable job's ledger lives in the store, so the job outlives the process that ran it, and " ..
      "several processes may run it at once, each acting on different items (docs/jobs.md). resume joins " ..
      "the job's runners at once and follows it to its end: pending items are retried; one that was in " ..
      "flight when a runner died is failed, code in_doubt, never retried again (settled once that runner's " ..
      "lease expired). Exit 1 when items failed.",
    flags = { { "--state", "value", "S", "only jobs running, done or canceled" },
              { "--results", "bool", nil, "with show: one line per item (outcome, new execution, error)" } },
    run = { "jobs", "jobs" } },
  { name = "worker", synopsis = "worker [--once] [--poll S]",
    summary = "join every running job, one after the other, beside its other runners (each item is acted " ..
      "on by one of them), and keep looking (--once: until no job is left running)",
    about = "Start several workers, on one host or many, against one store to drain a large job in " ..
      "parallel. A worker that finds nothing left to take in a job looks again when an item another runner " ..
      "holds may be free, or a runner's lease may have expired (what a dead runner had in flight is settled " ..
      "in_doubt, what it had only claimed is retried by the others). One line per job it acted on.",
    flags = { { "--once", "bool", nil, "return when no job is left running (a job other runners are " ..
                "finishing is waited for)" },
              { "--poll", "value", "S", "how often to look for jobs (default 2 seconds)" } },
    run = { "jobs", "worker" } },
  { name = "audit", synopsis = "audit [--since T] [--source KIND|PROFILE] [--limit N] | " ..
      "audit --reconcile SOURCE ITEM ACTION done|failed",
    summary = "what every host sharing the --ledger did to remote items (host, pid, source, item, action, " ..
      "outcome, time, rule); --reconcile: settle an item in doubt after checking the platform",
    about = "With a ledger (--ledger, $REDRIVE_LEDGER or the profile's ledger; docs/several-hosts.md) every " ..
      "change to a Make, n8n or Kaizen item first takes a lease there and records its outcome. audit lists " ..
      "those records, oldest first; --json: one object per event. An item whose outcome was never recorded " ..
      "(an answer that never came, a host killed mid-call) is in doubt: no host acts on it until --reconcile " ..
      "settles it as done (it reached the platform) or failed (it did not). SOURCE is a profile or the source " ..
      "as audit shows it. Exit 1 when there was nothing in doubt to settle.",
    flags = { F.since, { "--source", "value", "KIND|PROFILE", "only this source: a kind (make) or a profile's" },
              { "--limit", "value", "N", "the first N events only" },
              { "--reconcile", "bool", nil, "settle SOURCE ITEM ACTION as done or failed" } },
    run = { "audit", "audit" } },
  { name = "help", synopsis = "help [COMMAND]", summary = "this help, or one command's", flags = {},
    run = { "help" } },
}

local BY_NAME = {}
for _, c in ipairs(COMMANDS) do BY_NAME[c.name] = c end

M.COMMANDS = COMMANDS

-- find(name) -> the command's entry | nil
function M.find(name) return BY_NAME[name] end

-- ---- help -----------------------------------------------------------------------

-- words(text) -> its words, a bracketed group ("[--wait [--timeout S]]")
-- being one word, so a synopsis never wraps inside an option
local function words(text)
  local t, cur, depth = {}, "", 0
  for ch in text:gmatch(".") do
    if ch == "[" then depth = depth + 1 elseif ch == "]" then depth = depth - 1 end
    if ch == " " and depth == 0 then
      if #cur > 0 then t[#t + 1] = cur end
      cur = ""
    else cur = cur .. ch end
  end
  if #cur > 0 then t[#t + 1] = cur end
  return t
end

-- wrap(text, width, indent [, first]) -> lines of at most width columns
-- (plus indent), the first one after `first` (default indent)
local function wrap(text, width, indent, first)
  local lines, line = {}, ""
  for _, word in ipairs(words(text)) do
    if #line > 0 and #line + 1 + #word > width then lines[#lines + 1] = line; line = word
    else line = #line > 0 and (line .. " " .. word) or word end
  end
  if #line > 0 then lines[#lines + 1] = line end
  return (first or indent) .. table.concat(lines, "\n" .. indent)
end

-- commands_help() -> the commands section of redrive --help: "  NAME ...", each
-- synopsis then its summary indented (tests/sh/test_json_out.sh and
-- test_docs.sh read the command names from the lines "  NAME ...")
function M.commands_help()
  local t = {}
  for _, c in ipairs(COMMANDS) do
    if #c.synopsis <= 15 then -- the summary on the same line
      t[#t + 1] = wrap(c.summary, 61, string.rep(" ", 19), "  " .. c.synopsis .. string.rep(" ", 17 - #c.synopsis))
    else
      t[#t + 1] = wrap(c.synopsis, 76, "      ", "  ")
      t[#t + 1] = wrap(c.summary, 61, string.rep(" ", 19))
    end
  end
  return table.concat(t, "\n")
end

-- command_help(c) -> redrive help NAME
local function command_help(c)
  local t = { wrap(c.synopsis, 70, string.rep(" ", 8), "usage: redrive [options] "), "", wrap(c.summary, 78, "") }
  if c.about then t[#t + 1] = ""; t[#t + 1] = wrap(c.about, 78, "") end
  if #c.flags > 0 then
    t[#t + 1] = ""
    t[#t + 1] = "options:"
    for _, f in ipairs(c.flags) do
      local head = "  " .. f[1] .. (f[3] and (" " .. f[3]) or "")
      local help = wrap(f[4], 56, "")
      if #head < 21 then
        t[#t + 1] = head .. string.rep(" ", 22 - #head) .. help:gsub("\n", "\n" .. string.rep(" ", 22))
      else
        t[#t + 1] = head
        t[#t + 1] = string.rep(" ", 22) .. help:gsub("\n", "\n" .. string.rep(" ", 22))
      end
    end
  end
  local g = {}
  for _, o in ipairs(U.GLOBALS) do
    g[#g + 1] = (o.short and (o.short .. "|") or "") .. o[1] .. (o[3] and (" " .. o[3]) or "")
  end
  t[#t + 1] = ""
  t[#t + 1] = wrap("global options (before or after the command): " .. table.concat(g, " ") .. "; exit " ..
    "status 0 ok, 1 failed, 2 usage error, 3 source unreachable or authentication refused, 130 interrupted. " ..
    "See redrive --help, docs/cli.md, redrive(1).", 78, "")
  return table.concat(t, "\n")
end

-- globals_help() -> the global options' lines of redrive --help
function M.globals_help()
  local t = {}
  for _, o in ipairs(U.GLOBALS) do
    local head = "  " .. (o.short and (o.short .. ", ") or "") .. o[1] .. (o[3] and (" " .. o[3]) or "")
    t[#t + 1] = wrap(o[4], 59, string.rep(" ", 19), head .. string.rep(" ", math.max(2, 19 - #head)))
  end
  return table.concat(t, "\n")
end

-- as_json(c) -> the command as data (redrive help --json: for tools)
local function as_json(c)
  local flags = require("redrive").json.array {}
  for i, f in ipairs(c.flags) do
    flags[i] = { name = f[1], kind = f[2], value = f[3], help = f[4] }
  end
  local globals = require("redrive").json.array {}
  for i, o in ipairs(U.GLOBALS) do
    globals[i] = { name = o[1], short = o.short, value = o[3], help = o[4] }
  end
  return { name = c.name, synopsis = c.synopsis, summary = c.summary, about = c.about, flags = flags,
           globals = globals }
end

function M.help(a)
  local name = a and a.pos[1]
  if name then
    local c = BY_NAME[name]
    if not c then U.usage("no command '" .. name .. "'") end
    if cli.options.json then cli.emit(as_json(c)) else io.stdout:write(command_help(c), "\n") end
    return 0
  end
  if cli.options.json then
    for _, c in ipairs(COMMANDS) do cli.emit(as_json(c)) end
    return 0
  end
  io.stdout:write(require("redrive.cli.help").text(M.commands_help(), M.globals_help()))
  return 0
end

-- ---- dispatch ---------------------------------------------------------------------

local function usage_error(name, msg)
  io.stderr:write("redrive ", name, ": ", msg, " (see redrive help ", BY_NAME[name] and name or "", ")\n")
  if cli.options.json then cli.emit({ error = name .. ": " .. msg, code = "usage", exit = 2 }) end
  return 2
end

-- a failure raised inside a command: kept as it is when it carries a code
-- (a source's error object: the runner maps the code), else one line --
-- the traceback of a failure inside redrive says nothing to the user
-- (--verbose keeps it)
local function settle(err)
  local rd = require "redrive"
  if rd.is_canceled(err) then error(err, 0) end
  if type(err) == "table" and err.code ~= nil then
    error({ code = err.code, message = tostring(err.message or err.msg or err.code) }, 0)
  end
  local msg = tostring(type(err) == "table" and (err.message or err.msg) or err)
  if not cli.options.verbose then msg = msg:match("^[^\n]*") end
  error({ code = "script", message = msg }, 0)
end

-- dispatch(name, args) -> exit status
function M.dispatch(name, args)
  local c = BY_NAME[name]
  if not c then return usage_error(name, "unknown command") end
  local ok, a, globals = pcall(U.parse, args, c.flags)
  if not ok then
    if type(a) == "table" and a.usage then return usage_error(name, a.usage) end
    error(a, 0)
  end
  cli.configure(globals)
  if a.flags["--help"] then
    io.stdout:write(command_help(c), "\n")
    return 0
  end
  local fn
  if c.run[1] == "help" then fn = M.help
  else fn = require("redrive.cli.cmd_" .. c.run[1])[c.run[2]] end
  return cli.task(function()
    local okc, res = xpcall(fn, function(e)
      if type(e) == "string" and cli.options.verbose then return debug.traceback(e, 2) end
      return e
    end, a)
    if okc then return res end
    if type(res) == "table" and res.usage then return usage_error(name, res.usage) end
    settle(res)
  end)
end

return M

-- The queue commands: ls, retry, resolve, patch, delete. Every change goes
-- through the source's own calls (src:retry, src:resolve,
-- src:delete_incomplete, item:patch), so through the mutation gate
-- (lua/redrive/mutation.lua: dry run, audit, limits); the source is named
-- on stderr before anything changes (U.connect).
local rd = require "redrive"
local cli = require "redrive.cli"
local U = require "redrive.cli.util"

local M = {}
local out, fail, json_mode, usage = U.out, U.fail, U.json_mode, U.usage

local function C() return require "redrive.source.common" end

-- ---- ls -------------------------------------------------------------------------

local STATUS = { pending = false, resolved = true, any = "any" }

function M.ls(a)
  if a.pos[1] then usage("ls takes no arguments (options only)") end
  local status = a.flags["--status"]
  if status ~= nil and STATUS[status] == nil then usage("--status: pending, resolved or any, got '" .. status .. "'") end
  if status and a.flags["--all"] and status ~= "any" then usage("--all is --status any: give one of them") end
  local resolved = a.flags["--all"] and "any" or STATUS[status or "pending"]
  local limit = U.count(a, "--limit", 1000)
  local since, till = U.window(a)
  local reason = U.pattern(a)
  local src = U.connect()
  local it = U.check(src:incomplete {
    scenario = U.scenario(a, src, "incomplete"), reason = reason, fingerprint = a.flags["--fingerprint"],
    resolved = resolved, since = since, ["until"] = till,
  })
  U.listing(src, it, limit, function(item)
    if json_mode() then cli.emit(U.plain(item, U.ITEM_FIELDS))
    else
      out(string.format("%-34s %-8s %-20s %-4s %-12s %s%s", tostring(item.id), tostring(item.scenario),
        U.when(item.created), tostring(item.attempts or 0), tostring(item.fingerprint or "-"),
        item.resolved and "[resolved] " or "", U.trunc(require("redrive.pretty").redact(tostring(item.reason)), 70)))
    end
  end, "incomplete execution(s)",
    string.format("%-34s %-8s %-20s %-4s %-12s %s", "ID", "SCENARIO", "CREATED", "TRY", "FINGERPRINT", "REASON"))
  return 0
end

-- ---- selections: retry, resolve, delete ---------------------------------------------

-- select(a, src, verb, o) -> opts for the source's call: {ids} (named, or
-- listed when --reason / --since / --until filter the items) or {all = true,
-- fingerprint} (the source selects), with scenario and except; nil when the
-- listing matched nothing. o.all: the command takes --all; o.yes: a
-- selection needs --yes (a dry run does not).
local function select(a, src, verb, o)
  local ids = a.pos
  local fp = a.flags["--fingerprint"]
  local reason = U.pattern(a)
  local since, till = U.window(a)
  local filtered = reason ~= nil or since ~= nil or till ~= nil
  local all = a.flags["--all"]
  local selection = all or fp or filtered
  if #ids > 0 and selection then
    usage(verb .. " takes IDs or a selection (" .. (o.all and "--all, " or "") ..
      "--fingerprint, --reason, --since, --until), not both")
  end
  if #ids == 0 and not selection then
    usage(verb .. " needs IDs or a selection: " .. (o.all and "--all, " or "") ..
      "--fingerprint FP, --reason PATTERN, --since T, --until T")
  end
  if selection and o.yes and not a.flags["--yes"] and not rd.is_dry_run() then
    usage(verb .. " of a whole selection: add --yes to confirm (or --dry-run to see it first)")
  end
  if #ids > 0 then return { ids = ids, except = a.flags["--except"], scenario = a.flags["--scenario"] } end
  local scenario = U.scenario(a, src, "incomplete")
  if not filtered then
    return { all = true, fingerprint = fp, scenario = scenario, except = a.flags["--except"] }
  end
  -- the items that match, listed with the source's own filters
  local list = {}
  for item in U.check(src:incomplete { scenario = scenario, reason = reason, fingerprint = fp, since = since,
                                       ["until"] = till }) do
    list[#list + 1] = item.id
  end
  if #list == 0 then return nil end
  return { ids = list, except = a.flags["--except"], scenario = scenario }
end

local function errors_to_stderr(list)
  for _, e in ipairs(list or {}) do
    io.stderr:write("  ", tostring(e.id or "?"), ": ",
      require("redrive.pretty").redact(tostring(e.message or e.error)), "\n")
  end
end

-- settled(res, verb) -> exit status: the answer of a delete or resolve
-- ({deleted | resolved = n, would_<verb> = n in a dry run, errors}) printed;
-- 1 when an item was kept, 3 when the source was unreachable for one
local function settled(res, verb)
  res.errors = C().list(res.errors)
  if json_mode() then cli.emit(res)
  else
    if res.dry_run then out(string.format("dry run: would %s %d", verb, res["would_" .. verb] or 0))
    else out(string.format("%sd %d", verb, res[verb .. "d"] or 0)) end
    errors_to_stderr(res.errors)
  end
  if #res.errors > 0 and not res.dry_run then return U.down(res.errors) and 3 or 1 end
  return 0
end

-- ---- retry ------------------------------------------------------------------------

local function retry_line(s)
  local parts = {}
  for _, k in ipairs { "queued", "running", "unknown" } do
    if (s[k] or 0) > 0 then
      parts[#parts + 1] = string.format(", %d %s", s[k], k == "running" and "still running" or k)
    end
  end
  if (s.not_attempted or 0) > 0 then parts[#parts + 1] = string.format(", %d not attempted", s.not_attempted) end
  return string.format("retried %d: %d succeeded, %d failed, %d skipped%s%s", s.total or 0, s.succeeded or 0,
    s.failed or 0, s.skipped or 0, table.concat(parts), s.interrupted and " (interrupted)" or "")
end

function M.retry(a)
  local timeout
  if a.flags["--timeout"] then
    if not a.flags["--wait"] then usage("--timeout goes with --wait") end
    timeout = tonumber(a.flags["--timeout"])
    if not timeout or timeout <= 0 then usage("--timeout needs seconds > 0, got '" .. a.flags["--timeout"] .. "'") end
  end
  local concurrency = U.count(a, "--concurrency", nil)
  if concurrency == 0 then usage("--concurrency needs a whole number >= 1") end
  local src = U.connect("retry")
  if a.flags["--load-workflow"] and src.kind ~= "n8n" then
    usage("--load-workflow is n8n's (retry with the saved workflow); this source is " .. tostring(src.kind))
  end
  local sel = select(a, src, "retry", { all = true })
  local S = require "redrive.cli.sys"
  local summary
  if sel == nil then
    summary = C().summary()
    if rd.is_dry_run() then summary.dry_run, summary.would_retry = true, 0 end
    U.note("nothing matches: no pending item to retry")
  else
    sel.safe = not (a.flags["--force"] or cli.options.force)
    sel.wait = a.flags["--wait"] or nil
    sel.timeout = timeout
    sel.load_workflow = a.flags["--load-workflow"] or nil
    sel.concurrency = concurrency
    -- --json: one line per item as it settles (every one: the summary keeps
    -- only the first 1000), then the summary
    sel.on_result = json_mode() and function(r) r.kind = "result"; cli.emit(r) end or nil
    summary = U.check(src:retry(sel))
  end
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
      out(retry_line(summary))
      if a.flags["--wait"] then
        for _, r in ipairs(summary.results or {}) do
          out(string.format("  %s: %s%s", tostring(r.id), tostring(r.status),
            r.execution and (" (execution " .. tostring(r.execution) .. ")") or ""))
        end
      end
    end
    errors_to_stderr(summary.errors)
  end
  if summary.interrupted or S.interrupted() then return 130 end
  if (summary.failed or 0) > 0 then return U.down(summary.errors) and 3 or 1 end
  return 0
end

-- ---- resolve ------------------------------------------------------------------------

function M.resolve(a)
  local src = U.connect("resolve")
  local sel = select(a, src, "resolve", { yes = true })
  local res
  if sel == nil then
    res = { resolved = 0, errors = C().list() }
    U.note("nothing matches: no pending item to resolve")
  else
    if sel.all then -- a whole group: the ids the source lists for it
      local ids = {}
      for item in U.check(src:incomplete { scenario = sel.scenario, fingerprint = sel.fingerprint }) do
        ids[#ids + 1] = item.id
      end
      sel = { ids = ids }
    end
    if #sel.ids == 0 then res = { resolved = 0, errors = C().list() }
    else res = U.check(src:resolve { ids = sel.ids }) end
  end
  return settled(res, "resolve")
end

-- ---- patch --------------------------------------------------------------------------

function M.patch(a)
  local id, file = a.pos[1], a.pos[2]
  if not id or not file or a.pos[3] then usage("patch takes ID FILE") end
  local doc = U.read_json(file)
  local src = U.connect("patch")
  local item = U.check(src:incomplete_item(id))
  local opts = {}
  if type(doc) ~= "table" then fail(file .. ": a JSON object or array expected", "invalid") end
  local is_array = rd.json.kind and rd.json.kind(doc) == "array" or doc[1] ~= nil
  local keys = {}
  for k in pairs(doc) do keys[#keys + 1] = k end
  local only_opts = #keys > 0
  for _, k in ipairs(keys) do if k ~= "blueprint" and k ~= "failer" then only_opts = false end end
  if is_array then -- JSON Patch (RFC 6902) on the item's blueprint
    local bp = U.check(item:blueprint())
    local ok, perr = bp:apply(doc)
    if not ok then fail(file .. ": " .. tostring(perr), "invalid") end
    opts.blueprint = bp
  elseif only_opts then -- {"blueprint": ..., "failer": n}
    opts.blueprint, opts.failer = doc.blueprint, doc.failer
  elseif doc.flow ~= nil then -- a whole blueprint
    opts.blueprint = doc
  else -- JSON Merge Patch (RFC 7386)
    local bp = U.check(item:blueprint())
    local ok, merr = bp:merge(doc)
    if ok == nil and merr then fail(file .. ": " .. tostring(merr), "invalid") end
    opts.blueprint = bp
  end
  local res = U.check(item:patch(opts))
  local dry = type(res) == "table" and res.dry_run
  if json_mode() then cli.emit(dry and res or { patched = id })
  elseif dry then out("dry run: would patch ", id, res.diff and string.format(" (%d change(s))", #res.diff) or "")
  else out("patched ", id) end
  return 0
end

-- ---- delete -------------------------------------------------------------------------

function M.delete(a)
  local src = U.connect("delete")
  local sel = select(a, src, "delete", { all = true, yes = true })
  local res
  if sel == nil then
    res = { deleted = 0, errors = C().list() }
    if rd.is_dry_run() then res.dry_run, res.would_delete = true, 0 end
    U.note("nothing matches: nothing to delete")
  else
    if sel.all then sel.confirmed = true end
    res = U.check(src:delete_incomplete(sel))
  end
  return settled(res, "delete")
end

return M

-- fix-and-retry.lua: the 3 a.m. routine, as a script. It runs unchanged on
-- every source that keeps incomplete executions: local, Make (a profile that
-- names its `scenario`) and n8n; only the profile changes.
--
--   redrive examples/fix-and-retry.lua                  (store: $REDRIVE_DB, or the default profile)
--   redrive --profile make examples/fix-and-retry.lua
--   redrive --dry-run examples/fix-and-retry.lua        (change nothing, show what it would do)
--
-- 1. list the incomplete executions (the DLQ) grouped by cause: failures
--    with one cause share a fingerprint, whatever host, port or order id
--    their messages name;
-- 2. fix one cause: the fulfilment webhook moved from /v1/webhook to
--    /v2/webhook and answers HTTP 410; patch the blueprint stored with each
--    item of that group only (and the scenario, for the runs to come), where
--    the source can;
-- 3. dry-run the retry to see what it would touch;
-- 4. retry everything except one item (kept for a colleague to look at);
-- 5. print the groups before and after.
local rd = require "redrive"
local src = assert(rd.connect())

local function say(fmt, ...) print(string.format(fmt, ...)) end
local function title(s) print(""); print("== " .. s) end

-- the pending failures by cause, largest group first -> groups, total
local function show_groups()
  local groups = assert(src:groups { resolved = false })
  local total = 0
  for _, g in ipairs(groups) do
    total = total + g.count
    local names = {} -- the scenarios' names where the source knows them, else their ids
    for i, sc in ipairs(g.scenarios) do names[i] = g.scenario_names[i] or tostring(sc) end
    say("  %4d  %s\n        in: %s  [fingerprint %s]", g.count, g.cause, table.concat(names, ", "), g.fingerprint)
  end
  return groups, total
end

-- ---------------------------------------------------------------------------
title("1. What failed? Incomplete executions waiting in the queue, by cause")
local groups, before = show_groups()
if before == 0 then say("  the queue is empty: nothing to do"); return end
say("  ----")
say("  %4d  pending", before)

-- ---------------------------------------------------------------------------
title("2. Fix the cause: the fulfilment webhook moved to /v2/webhook")
-- The groups to patch: failures that are an HTTP 410. A cause keeps a
-- number only where it is an HTTP status (`HTTP 410 from ...` locally,
-- `[410]` on Make, `HTTP 410: ...` on n8n); hosts, ports, order ids and other
-- numbers are templated out (`<host>`, `<n>`), so an item whose URL has port
-- 41047 or order 4102 is not taken for one. One cause may be several groups
-- (the fingerprint also names the module that failed): take them all.
local moved_groups = {}
for _, g in ipairs(groups) do
  if g.cause:find("%f[%d]410%f[%D]") then moved_groups[#moved_groups + 1] = g end
end

local function moved(url) return type(url) == "string" and url:find("/v1/webhook", 1, true) ~= nil end

local function fixed_copy(bp)
  local out, changed = bp:copy(), 0
  for _, m in ipairs(out:modules { module = "http:*" }) do
    local url = out:get(m.pointer .. "/mapper/url")
    if moved(url) then
      out:set(m.pointer .. "/mapper/url", (url:gsub("/v1/webhook", "/v2/webhook")))
      changed = changed + 1
    end
  end
  return out, changed
end

local patched, kept, shown = 0, nil, false
-- patch_group(g) -> false when the source cannot patch (said why)
local function patch_group(g)
  -- the items carry the blueprint as it was when they failed: patch each one
  for it in src:incomplete { resolved = false, fingerprint = g.fingerprint } do
    local bp, berr = it:blueprint()
    if not bp then say("  item %s: no blueprint (%s)", it.id, berr); return false end
    local fixed, changed = fixed_copy(bp)
    if changed > 0 then
      if not shown then
        say("  blueprint change (JSON Patch), on item %s:", it.id)
        for _, op in ipairs(bp:diff(fixed)) do say("    %s %s -> %s", op.op, op.path, tostring(op.value)) end
        shown = true
      end
      local ok, err, code = it:patch { blueprint = fixed }
      if not ok and code == "unsupported" then say("  %s", err); return false end
      assert(ok, err)
      patched = patched + 1
      kept = kept or it.id
    end
  end
  return true
end
if #moved_groups == 0 then say("  no failure answered HTTP 410: nothing to patch") end
for _, g in ipairs(moved_groups) do
  if not patch_group(g) then break end
end
local dry = rd.is_dry_run() -- mutations then only say what they would do
say("  %s %d incomplete execution(s)", dry and "would patch" or "patched", patched)
-- and the scenarios themselves, so that new runs go to the right place
local scenarios, serr, scode = src:scenarios()
if not scenarios then
  assert(scode == "unsupported", serr)
  say("  (scenarios: %s)", serr)
else
  for _, sc in ipairs(scenarios) do
    local fixed, changed = fixed_copy(sc:blueprint())
    if changed > 0 then
      assert(src:scenario_update(sc.id, { blueprint = fixed }))
      say("  scenario %s %q %s (%d module(s))", tostring(sc.id), sc.name, dry and "would be updated" or "updated",
        changed)
    end
  end
end

-- ---------------------------------------------------------------------------
local except = kept and { kept } or {}
title("3. Dry run: what would a retry of everything but one item do?")
local was_dry = rd.dry_run(true)
local plan = assert(src:retry { all = true, except = except })
rd.dry_run(was_dry)
say("  would retry %d item(s), skip %d%s", plan.would_retry or plan.total, plan.skipped,
  kept and (", keep " .. kept .. " for later") or "")

-- ---------------------------------------------------------------------------
title("4. Retry all except one")
local s = assert(src:retry { all = true, except = except, concurrency = 16 })
if s.dry_run then
  say("  (dry run: nothing retried)")
else
  -- Make queues a retry and runs it later, n8n may answer before the run
  -- ends: those are counted queued or running, never succeeded by guess
  local later = {}
  for _, k in ipairs { "queued", "running", "unknown", "not_attempted" } do
    if (s[k] or 0) > 0 then later[#later + 1] = string.format(", %d %s", s[k], k:gsub("_", " ")) end
  end
  say("  retried %d: %d succeeded, %d failed, %d skipped%s", s.total, s.succeeded, s.failed, s.skipped,
    table.concat(later))
  -- why, by cause: the failures, then the ones the safety checks skipped
  for _, skipped in ipairs { false, true } do
    local why, order = {}, {}
    for _, e in ipairs(s.errors) do
      if (e.skipped and true or false) == skipped then
        local cause = select(2, rd.fingerprint(e.message or "?"))
        if not why[cause] then order[#order + 1] = cause end
        why[cause] = (why[cause] or 0) + 1
      end
    end
    for _, c in ipairs(order) do say("    %s (%d): %s", skipped and "skipped" or "still failing", why[c], c) end
  end
end

-- ---------------------------------------------------------------------------
title("5. The queue, before and after")
local after_groups, after = show_groups()
say("  ----")
say("  before: %d pending   after: %d pending   resolved by this run: %d", before, after, before - after)
if kept then say("  kept on purpose: %s (see it with src:incomplete_item(%q))", kept, kept) end
for _, g in ipairs(after_groups) do
  if g.cause:find("/orders/", 1, true) then
    say("  the orders API itself still fails for %d item(s): that needs the orders team, not a patch", g.count)
  end
end

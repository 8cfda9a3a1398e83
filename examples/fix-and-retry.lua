-- fix-and-retry.lua: the 3 a.m. routine, as a script.
--
--   redrive examples/fix-and-retry.lua            (store: $REDRIVE_DB)
--   redrive --dry-run examples/fix-and-retry.lua  (change nothing, show what it would do)
--
-- 1. list the incomplete executions (the DLQ), grouped by reason;
-- 2. fix the cause: the fulfilment webhook moved from /v1/webhook to
--    /v2/webhook, so patch the blueprint stored with each affected item (and
--    the scenario, for the runs to come);
-- 3. dry-run the retry to see what it would touch;
-- 4. retry everything except one item (kept for a colleague to look at);
-- 5. print the queue before and after.
local rd = require "redrive"
local src = assert(rd.connect())

local function say(fmt, ...) print(string.format(fmt, ...)) end
local function title(s) print(""); print("== " .. s) end

-- A reason without what varies from item to item (host, ids in paths), so
-- that "HTTP 500 from http://host/orders/7" and ".../orders/14" group.
local function kind_of(reason)
  return (reason:gsub("https?://[^/%s]+", ""):gsub("/%d+", "/{id}"))
end

-- pending items grouped by reason, largest group first
local function by_reason()
  local groups, order, total = {}, {}, 0
  for it in src:incomplete { resolved = false } do
    local k = kind_of(it.reason)
    local g = groups[k]
    if not g then
      g = {}
      groups[k] = g
      order[#order + 1] = k
    end
    g[#g + 1] = it
    total = total + 1
  end
  table.sort(order, function(a, b) return #groups[a] > #groups[b] end)
  return groups, order, total
end

local function show(groups, order)
  for _, reason in ipairs(order) do
    local g = groups[reason]
    local names = {}
    for _, it in ipairs(g) do names[it.scenario_name] = true end
    local sc = {}
    for n in pairs(names) do sc[#sc + 1] = n end
    table.sort(sc)
    say("  %4d  %s\n        in: %s", #g, reason, table.concat(sc, ", "))
  end
end

-- ---------------------------------------------------------------------------
title("1. What failed? Incomplete executions waiting in the queue, by reason")
local groups, order, before = by_reason()
if before == 0 then say("  the queue is empty: nothing to do"); return end
show(groups, order)
say("  ----")
say("  %4d  pending", before)

-- ---------------------------------------------------------------------------
title("2. Fix the cause: the fulfilment webhook moved to /v2/webhook")
-- The items carry the blueprint as it was when they failed: patch each one.
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

local patched, shown, kept = 0, false, nil
for it in src:incomplete { resolved = false, reason = "410" } do
  local bp = assert(it:blueprint())
  local fixed, changed = fixed_copy(bp)
  if changed > 0 then
    if not shown then
      say("  blueprint change (JSON Patch), on item %s:", it.id)
      for _, op in ipairs(bp:diff(fixed)) do
        say("    %s %s -> %s", op.op, op.path, tostring(op.value))
      end
      shown = true
    end
    assert(it:patch { blueprint = fixed })
    patched = patched + 1
    kept = kept or it.id
  end
end
say("  patched %d incomplete execution(s)", patched)
-- and the scenarios themselves, so that new runs go to the right place
for _, sc in ipairs(src:scenarios()) do
  local fixed, changed = fixed_copy(sc:blueprint())
  if changed > 0 then
    assert(src:scenario_update(sc.id, { blueprint = fixed }))
    say("  scenario %d %q updated (%d module(s))", sc.id, sc.name, changed)
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
local t0 = rd.now()
local s = assert(src:retry { all = true, except = except, concurrency = 16 })
if s.dry_run then
  say("  (dry run: nothing retried)")
else
  say("  retried %d in %.2fs: %d succeeded, %d failed, %d skipped", s.total, rd.now() - t0,
    s.succeeded, s.failed, s.skipped)
  local why, order = {}, {}
  for _, e in ipairs(s.errors) do
    local m = kind_of(e.message or "?")
    if not why[m] then order[#order + 1] = m end
    why[m] = (why[m] or 0) + 1
  end
  for _, m in ipairs(order) do say("    still failing (%d): %s", why[m], m) end
end

-- ---------------------------------------------------------------------------
title("5. The queue, before and after")
local groups2, order2, after = by_reason()
show(groups2, order2)
say("  ----")
say("  before: %d pending   after: %d pending   resolved by this run: %d", before, after, before - after)
if kept then say("  kept on purpose: %s (see it with src:incomplete_item(%q))", kept, kept) end
for _, reason in ipairs(order2) do
  if reason:find("/orders/", 1, true) then
    say("  the orders API itself still fails for %d item(s): that needs the orders team, not a patch",
      #groups2[reason])
  end
end

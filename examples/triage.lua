-- triage.lua: list the failures waiting in a source's queue of incomplete
-- executions, grouped by reason, and retry the ones whose reason matches a
-- Lua pattern. The same script works on every source that has such a queue
-- (local, make, n8n): only the profile changes.
--
--   redrive examples/triage.lua [PROFILE] [PATTERN]
--
--   redrive examples/triage.lua make 'ConnectionError'
--   redrive --profile n8n examples/triage.lua '^ETIMEDOUT'
--   REDRIVE_PROFILE=local redrive examples/triage.lua
--   redrive --dry-run examples/triage.lua make '.'   -- show what would be retried
--
-- The first argument is taken as the profile when the config file has a
-- profile of that name; otherwise the profile comes from --profile,
-- $REDRIVE_PROFILE or the config's default. Without a pattern nothing is
-- retried: the groups are only listed.
--
-- A profile in ~/.config/redrive/config.lua (Make lists per scenario, so its
-- profile names the scenario):
--   return { default = "local", profiles = {
--     ["local"] = { kind = "local" },
--     make = { kind = "make", zone = "eu1", token_env = "MAKE_TOKEN", scenario = 112233 },
--     n8n  = { kind = "n8n", base_url = "https://n8n.example.com/api/v1", token_env = "N8N_API_KEY" },
--   } }
local rd = require "redrive"

local a1, a2 = arg and arg[1], arg and arg[2]
local profile, pattern
if a1 and rd.config().profiles[a1] then profile, pattern = a1, a2 else pattern = a1 end
pattern = pattern or "$^" -- default: retry nothing, just list
local src = assert(rd.connect(profile))
print(string.format("source: %s (%s)", src.name, src.kind))

-- group the unresolved items by reason
local groups, order, total = {}, {}, 0
for item in src:incomplete { resolved = false } do
  local reason = item.reason or "(no reason)"
  local g = groups[reason]
  if not g then g = { reason = reason, ids = {} }; groups[reason] = g; order[#order + 1] = g end
  g.ids[#g.ids + 1] = item.id
  total = total + 1
end
table.sort(order, function(a, b)
  if #a.ids ~= #b.ids then return #a.ids > #b.ids end
  return a.reason < b.reason
end)
print(string.format("%d incomplete execution(s) in %d group(s)", total, #order))
for _, g in ipairs(order) do
  local sample = table.concat(g.ids, ", ", 1, math.min(3, #g.ids))
  print(string.format("%6d  %s  [%s%s]", #g.ids, g.reason, sample, #g.ids > 3 and ", ..." or ""))
end

-- retry the groups whose reason matches the pattern
local ids = {}
for _, g in ipairs(order) do
  if g.reason:find(pattern) then
    for _, id in ipairs(g.ids) do ids[#ids + 1] = id end
  end
end
if #ids == 0 then
  print(string.format("nothing matches %q: nothing retried", pattern))
  return
end
local s = assert(src:retry { ids = ids, concurrency = 8 })
if s.dry_run then
  print(string.format("dry run: would retry %d of %d matching %q, %d skipped (dry run)", s.would_retry or 0, s.total,
    pattern, s.skipped))
else
  -- queued (Make), running, unknown: accepted, outcome not known yet
  local pending = {}
  for _, k in ipairs { "queued", "running", "unknown" } do
    if (s[k] or 0) > 0 then pending[#pending + 1] = string.format(", %d %s", s[k], k) end
  end
  print(string.format("retried %d matching %q: %d succeeded, %d failed, %d skipped%s", s.total, pattern,
    s.succeeded, s.failed, s.skipped, table.concat(pending)))
end
for i, e in ipairs(s.errors) do
  if i > 5 then print(string.format("  ... %d more", #s.errors - 5)); break end
  print(string.format("  %s: %s", tostring(e.id), tostring(e.message)))
end

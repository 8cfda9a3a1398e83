-- triage.lua: list the failures waiting in a source's queue of incomplete
-- executions, grouped by reason, and retry the ones whose reason matches a
-- Lua pattern. The same script works on every source that has such a queue
-- (local, make, n8n): only the profile changes.
--
--   redrive --profile prod-make examples/triage.lua 'ConnectionError'
--   REDRIVE_PROFILE=n8n redrive examples/triage.lua '^ETIMEDOUT'
--   redrive --dry-run examples/triage.lua '.'        -- show what would be retried
--
-- A profile in ~/.config/redrive/config.lua (Make lists per scenario, so its
-- profile names the scenario):
--   return { default = "local", profiles = {
--     ["local"] = { kind = "local" },
--     make = { kind = "make", zone = "eu1", token_env = "MAKE_TOKEN", scenario = 112233 },
--     n8n  = { kind = "n8n", base_url = "https://n8n.example.com/api/v1", token_env = "N8N_API_KEY" },
--   } }
local rd = require "redrive"

local pattern = (arg and arg[1]) or "$^" -- default: retry nothing, just list
local src = assert(rd.connect())
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
print(string.format("retried %d matching %q: %d succeeded, %d failed, %d skipped%s", s.total, pattern,
  s.succeeded, s.failed, s.skipped, s.dry_run and " (dry run)" or ""))
for i, e in ipairs(s.errors) do
  if i > 5 then print(string.format("  ... %d more", #s.errors - 5)); break end
  print(string.format("  %s: %s", tostring(e.id), tostring(e.message)))
end

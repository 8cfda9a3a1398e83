-- triage.lua: list the failures waiting in a source's queue of incomplete
-- executions, grouped by cause (failures with one cause share a fingerprint,
-- whatever host, port or id their messages name), and retry the groups whose
-- cause matches a Lua pattern. The same script works on every source that has
-- such a queue (local, make, n8n): only the profile changes.
--
--   redrive examples/triage.lua [PROFILE] [PATTERN]
--
--   redrive examples/triage.lua make 'ConnectionError'
--   redrive --profile n8n examples/triage.lua '^ETIMEDOUT'
--   REDRIVE_PROFILE=local redrive examples/triage.lua '^HTTP 5%d%d '
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

-- the unresolved items by cause, biggest group first
local groups = assert(src:groups { resolved = false })
local total = 0
for _, g in ipairs(groups) do total = total + g.count end
print(string.format("%d incomplete execution(s) in %d group(s)", total, #groups))
for _, g in ipairs(groups) do
  local sample = table.concat(g.example_ids or {}, ", ", 1, math.min(3, #(g.example_ids or {})))
  print(string.format("%6d  %s  [%s%s]", g.count, g.cause, sample, g.count > 3 and ", ..." or ""))
end

-- retry the groups whose cause matches the pattern, one group at a time
local matching = {}
for _, g in ipairs(groups) do
  if g.cause:find(pattern) then matching[#matching + 1] = g end
end
if #matching == 0 then
  print(string.format("nothing matches %q: nothing retried", pattern))
  return
end
local sum = { total = 0, succeeded = 0, failed = 0, skipped = 0, would_retry = 0, queued = 0, running = 0, errors = {} }
local dry
for _, g in ipairs(matching) do
  local s = assert(src:retry { all = true, fingerprint = g.fingerprint, concurrency = 8 })
  dry = s.dry_run
  for k in pairs(sum) do
    if k == "errors" then for _, e in ipairs(s.errors) do sum.errors[#sum.errors + 1] = e end
    else sum[k] = sum[k] + (s[k] or 0) end
  end
end
if dry then
  print(string.format("dry run: would retry %d of %d matching %q, %d skipped (dry run)", sum.would_retry, sum.total,
    pattern, sum.skipped))
else
  -- Make queues a retry and runs it later; n8n may answer before the run ends
  local later = {}
  if sum.queued > 0 then later[#later + 1] = string.format(", %d queued", sum.queued) end
  if sum.running > 0 then later[#later + 1] = string.format(", %d running", sum.running) end
  print(string.format("retried %d matching %q: %d succeeded, %d failed, %d skipped%s", sum.total, pattern,
    sum.succeeded, sum.failed, sum.skipped, table.concat(later)))
end
for i, e in ipairs(sum.errors) do
  if i > 5 then print(string.format("  ... %d more", #sum.errors - 5)); break end
  print(string.format("  %s: %s", tostring(e.id), tostring(e.message)))
end

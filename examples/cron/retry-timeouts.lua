-- Retry, every ten minutes, the incomplete executions that failed on a
-- timeout at least five minutes ago, at most three attempts each. Run by
-- cron (crontab) or a systemd timer (redrive-retry.timer):
--
--   redrive --profile prod examples/cron/retry-timeouts.lua [max_items]
--   redrive --profile prod --dry-run examples/cron/retry-timeouts.lua   # see what it would do
--
-- Exit status: 0 all retried fine (or nothing to do), 1 some retries failed
-- (cron mails the output), 3 the source was unreachable, 130 interrupted.
-- SIGTERM (systemd stop) cancels the in-flight retries; the summary says
-- what was done and the rest stay queued.
local rd = require "redrive"

local MAX = tonumber(arg and arg[1]) or 500
local MIN_AGE = 5 * 60
local MAX_ATTEMPTS = 3

local src = assert(rd.connect())          -- --profile picks the source
local now = rd.time()
local ids = {}
for item in src:incomplete { resolved = false, reason = "time[d ]?out" } do
  if (item.attempts or 0) < MAX_ATTEMPTS and (item.created or now) <= now - MIN_AGE then
    ids[#ids + 1] = item.id
    if #ids >= MAX then break end
  end
end

if #ids == 0 then
  print("retry-timeouts: nothing to retry")
  return { total = 0 }
end

local summary = assert(src:retry { ids = ids, concurrency = 8 })
print(string.format("retry-timeouts: %d selected, %d succeeded, %d failed, %d skipped%s",
  #ids, summary.succeeded or 0, summary.failed or 0, summary.skipped or 0,
  summary.dry_run and " (dry run)" or ""))
for _, e in ipairs(summary.errors or {}) do
  io.stderr:write("  ", tostring(e.id), ": ", tostring(e.message), "\n")
end
if (summary.failed or 0) > 0 then os.exit(1) end
return summary                            -- printed as JSON with --json

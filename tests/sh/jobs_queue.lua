-- Helper of tests/sh/test_jobs.sh: a queue of incomplete executions, a
-- durable bulk retry job over it, and the check of what the job did
-- against the loopback server's hit counts.
--
--   (the queue: tests/sh/local_queue.lua setup DB SERVER N PREFIX, whose
--   items fail once at /flaky?key=PREFIX-i, and whose retries take 20 ms
--   more at /delay/20, so a kill lands while retries are in flight)
--   redrive jobs_queue.lua create DB CONC TTL         a job over every pending item,
--       run by nobody yet (a `redrive worker` takes it); prints its id
--   redrive jobs_queue.lua start DB                   src:retry{all, job = true},
--       prints "job ID" (flushed), then waits for it
--   redrive jobs_queue.lua done DB ID                 prints the ledger's done count
--   redrive jobs_queue.lua check DB SERVER N PREFIX ID [KILLED_PID [RUNNERS]]
--       prints "check: ..." lines; exits 1 unless: the job is done, every one
--       of the N items has a settled ledger row (0 lost), no item's key was
--       hit more than twice -- the failed run and at most one retry (0
--       twice) --, every succeeded item exactly twice and resolved, every
--       other item failed "in_doubt" (in flight when its runner was killed)
--       and still pending; with KILLED_PID, every item in doubt was started
--       by that process (the ledger's runner names hold the pid); with
--       RUNNERS, at least that many processes started items.
local rd = require "redrive"
local cmd, db = arg[1], arg[2]

local function src_of(path)
  return assert(rd.connect { kind = "local", db = path, lease_ttl = 1 })
end

if cmd == "create" then -- a job nobody runs yet (for `redrive worker`s)
  local conc, ttl = arg[3] or "4", arg[4] or "1"
  local id = assert(require("redrive.core").store_open(db)):job_create {
    kind = "retry", all = true, params = string.format('{"concurrency":%d,"lease_ttl":%s}', conc, ttl) }
  print(assert(id))
elseif cmd == "start" then
  local src = src_of(db)
  local job = assert(src:retry { all = true, job = true, concurrency = 4, lease_ttl = 1 })
  io.stdout:write("job ", job.id, "\n")
  io.stdout:flush()
  local s = assert(job:wait())
  print("state " .. s.state)
elseif cmd == "done" then
  local s = assert(assert(src_of(db):job(arg[3])):status())
  print(s.done)
elseif cmd == "check" then
  local server, n, prefix, id = arg[3], tonumber(arg[4]), arg[5], arg[6]
  local killed, want_runners = arg[7], tonumber(arg[8] or "")
  local src = src_of(db)
  local job = assert(src:job(id))
  local s = assert(job:status())
  local problems = 0
  local function problem(fmt, ...)
    problems = problems + 1
    print("problem: " .. string.format(fmt, ...))
  end
  if s.state ~= "done" then problem("job %s is %s", id, s.state) end
  if s.total ~= n or s.done ~= n then problem("total %d, done %d of %d items", s.total, s.done, n) end
  -- which item is which key: the run's input
  local key_of = {}
  for e in src:executions { status = "error" } do
    local input = e:input()
    if e.dlq_id and e.mode ~= "retry" and type(input) == "table" and input.n then
      key_of[e.dlq_id] = prefix .. "-" .. input.n
    end
  end
  local rows = assert(job:results())
  local seen, in_doubt, succeeded = 0, 0, 0
  local by_pid = {} -- items started per process (runner names are host:pid:...)
  for _, r in ipairs(rows) do
    seen = seen + 1
    local pid = r.runner and r.runner:match("^[^:]*:(%d+):")
    if pid then by_pid[pid] = (by_pid[pid] or 0) + 1 end
    local key = key_of[r.id]
    if not key then problem("item %s: no key", r.id) else
      local res = assert(rd.http.request { url = server .. "/count?key=" .. key })
      local hits = res:json().count
      local item = assert(src:incomplete_item(r.id))
      if hits > 2 then problem("item %s retried twice (%d hits)", r.id, hits) end
      if r.outcome == "succeeded" then
        succeeded = succeeded + 1
        if hits ~= 2 then problem("item %s succeeded with %d hits", r.id, hits) end
        if not item.resolved then problem("item %s succeeded but is pending", r.id) end
      elseif r.outcome == "failed" and r.code == "in_doubt" then
        in_doubt = in_doubt + 1
        if item.resolved then problem("item %s in doubt but resolved", r.id) end
        if killed and pid ~= killed then
          problem("item %s in doubt, started by %s, not the killed process %s", r.id, tostring(r.runner), killed)
        end
      else
        problem("item %s: %s (%s) %s", r.id, r.outcome, tostring(r.code), tostring(r.error))
      end
    end
  end
  if seen ~= n then problem("%d ledger rows for %d items", seen, n) end
  local pids, started_by = {}, {}
  for pid, c in pairs(by_pid) do pids[#pids + 1] = pid; started_by[#started_by + 1] = pid .. ":" .. c end
  table.sort(started_by)
  if want_runners and #pids < want_runners then
    problem("%d processes started items, %d expected", #pids, want_runners)
  end
  print("check: started by pid:items " .. table.concat(started_by, " "))
  print(string.format("check: %d items, %d succeeded, %d in doubt, 0 twice: %s, problems: %d", seen, succeeded,
    in_doubt, problems == 0 and "yes" or "no", problems))
  os.exit(problems == 0 and 0 or 1)
end

-- `redrive jobs` and `redrive worker`: durable bulk jobs of the local store
-- (lua/redrive/source/local_job.lua, docs/jobs.md). A job outlives the
-- process that ran it, and several processes may run one at once: `jobs`
-- lists them, `jobs resume ID` joins one here and follows it to its end,
-- `worker` joins every running job (each item is acted on by one of them).
local cli = require "redrive.cli"
local U = require "redrive.cli.util"

local M = {}
local out, json_mode, usage = U.out, U.json_mode, U.usage

local function need_jobs(src)
  if not src.jobs then
    U.fail("jobs live in a local store; this source (" .. tostring(src.kind) .. ") has none", "unsupported")
  end
end

-- a job's status; a running one with its live runners; after a run, the
-- items this process acted on
local function line(s)
  return string.format("%s  %-6s %-8s %d/%d done: %d succeeded, %d failed, %d skipped, %d not attempted%s%s",
    s.id, s.kind, s.state, s.done or 0, s.total or 0, s.succeeded or 0, s.failed or 0, s.skipped or 0,
    s.not_attempted or 0, s.state == "running" and string.format("; %d runners", s.runners or 0) or "",
    s.acted and string.format("; acted on %d here", s.acted) or "")
end

local function show(s)
  if json_mode() then cli.emit(s) else out(line(s)) end
end

-- the exit status of a job that ended: 1 when items failed, 130 interrupted
local function status_code(s)
  if s.interrupted then return 130 end
  return (s.failed or 0) > 0 and 1 or 0
end

local STATES = { running = true, done = true, canceled = true }

local function list(a)
  local state = a.flags["--state"]
  if state and not STATES[state] then usage("--state: running, done or canceled, got '" .. state .. "'") end
  local src = U.connect()
  need_jobs(src)
  for _, j in ipairs(U.check(src:jobs { state = state })) do show(U.check(j:status())) end
  return 0
end

local function one(a, verb)
  local id = a.pos[2]
  if not id or a.pos[3] then usage("jobs " .. verb .. " takes one job ID") end
  local src = U.connect(verb ~= "show" and ("jobs " .. verb) or nil)
  need_jobs(src)
  return U.check(src:job(id))
end

-- jobs [--state S] | jobs show ID [--results] | jobs resume ID | jobs cancel ID
function M.jobs(a)
  local verb = a.pos[1]
  if verb == nil then return list(a) end
  if verb == "show" then
    local job = one(a, "show")
    show(U.check(job:status()))
    if a.flags["--results"] then
      for _, r in ipairs(U.check(job:results())) do
        if json_mode() then cli.emit(r)
        else out(string.format("  %s %s%s%s", r.id, r.outcome, r.execution and (" " .. r.execution) or "",
          r.error and (": " .. r.error) or "")) end
      end
    end
    return 0
  elseif verb == "resume" then
    local job = one(a, "resume")
    local s = U.check(job:resume { on_wait = function(j)
      if not cli.options.quiet then
        io.stderr:write(string.format("redrive jobs resume: job %s: nothing left to take here, %d other runners"
          .. " at work (the next lease ends %s); waiting\n", j.id, j.runners or 0, U.when(j.owner_expiry)))
      end
    end })
    show(s)
    return status_code(s)
  elseif verb == "cancel" then
    local job = one(a, "cancel")
    U.check(job:cancel())
    if json_mode() then cli.emit({ id = job.id, state = "canceled" }) else out("canceled " .. job.id) end
    return 0
  end
  usage("jobs: unknown action '" .. tostring(verb) .. "' (show, resume, cancel)")
end

-- worker [--once] [--poll S]
function M.worker(a)
  if a.pos[1] then usage("worker takes no arguments") end
  local poll = a.flags["--poll"] and tonumber(a.flags["--poll"])
  if a.flags["--poll"] and not (poll and poll > 0) then usage("--poll takes seconds > 0") end
  local src = U.connect("worker")
  need_jobs(src)
  local worst = 0
  U.check(src:_work_jobs { once = a.flags["--once"], poll = poll, on_job = function(s)
    show(s)
    worst = math.max(worst, status_code(s))
  end })
  return worst
end

return M

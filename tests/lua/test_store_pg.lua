-- What only the PostgreSQL backend has (tests/run runs this file only in the
-- PostgreSQL half, against the server tests/pg.sh started): calls that never
-- block the loop, the group commit as one transaction, claims that skip
-- locked rows, LISTEN/NOTIFY waking a worker, migrations run once by many
-- processes, passwords (password_env, PGPASSFILE) never shown, reconnecting,
-- the main thread and the command line on a URL.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"
local REDRIVE = os.getenv("REDRIVE") or "./build/redrive"
local PSQL = os.getenv("RD_TEST_PG_PSQL") or "psql"
local pg_only = H.pg_only

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- sh(cmd) -> output, ok: a shell command, stderr included
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  return out, p:close()
end

-- child(script, env) -> output, ok: `redrive -e script` with env set
local function child(script, env)
  local pre = {}
  for k, v in pairs(env or {}) do pre[#pre + 1] = k .. "=" .. q(v) end
  return sh(table.concat(pre, " ") .. " " .. q(REDRIVE) .. " -e " .. q(script))
end

-- until_true(f, what): poll a condition the test does not control (another
-- process's state), without sleeping a fixed time first
local function until_true(f, what)
  for _ = 1, 2000 do
    if f() then return end
    rd.sleep(0.01)
  end
  error("never happened: " .. what, 2)
end

local function item(reason)
  return { scenario_id = 1, scenario_name = "S", reason = reason or "R", size = 1, failer = 1,
           blueprint = '{"flow":[]}', state = '{"n":1}' }
end

local function failed_exec() return { scenario_id = 1, status = "error", mode = "manual" } end

pg_only("pg-1.1 another task keeps running while a query is in flight (nothing blocks the loop)", function()
  local st <close> = assert(core.store_open((H.new_db())))
  local events = {}
  local slow = rd.spawn(function()
    assert(st:_sleep(0.3))
    events[#events + 1] = "query done"
  end)
  local ticks = 0
  while slow:status() ~= "done" do
    ticks = ticks + 1
    if ticks <= 3 then events[#events + 1] = "tick" end
    rd.sleep(0.01)
  end
  -- a blocking call would have finished the query before any tick
  eq({ events[1], events[2], events[3], events[4] }, { "tick", "tick", "tick", "query done" })
end)

pg_only("pg-1.2 a call from a coroutine that is not a task raises; the main thread waits", function()
  local url = H.new_db()
  local st <close> = assert(core.store_open(url))
  raises("cannot wait inside a coroutine that is not a task",
    coroutine.wrap(function() return st:dlq_count() end))
  -- a plain script: its main thread runs the loop until each answer is there
  local out, okk = child([[
    local core = require "redrive.core"
    local st = assert(core.store_open(os.getenv("URL")))
    local eid, did = assert(st:record { exec = { status = "error" }, dlq = { reason = "main", blueprint = "{}", state = "{}" } })
    print(st:dlq_get(did).reason, st:dlq_count(), st:backend())
    st:close()
  ]], { URL = url })
  ok(okk, out)
  match(out, "main\t1\tpostgresql")
end)

pg_only("pg-2.1 the writes of one loop iteration are one transaction; a failing one fails alone", function()
  local url, schema = H.new_db()
  local st <close> = assert(core.store_open(url))
  local tasks = {}
  for i = 1, 20 do
    tasks[i] = rd.spawn(function() return assert(st:record { exec = { status = "success", scenario_id = i } }) end)
  end
  for _, t in ipairs(tasks) do t:wait() end
  -- rows written by one transaction share its id (xmin): one commit, one WAL flush
  eq(H.psql("SELECT count(*) || ' ' || count(DISTINCT xmin::text) FROM " .. schema .. ".execution"), "20 1")
  -- one bad write in the iteration: it fails, the others are sent again and commit
  local res = {}
  for i = 1, 10 do
    tasks[i] = rd.spawn(function()
      local e = { status = "success", scenario_id = 100 + i }
      if i == 5 then e.error = "{not json" end
      res[i] = table.pack(st:record { exec = e })
    end)
  end
  for i = 1, 10 do tasks[i]:wait() end
  for i = 1, 10 do
    if i == 5 then eq(res[i][3], "invalid") else ok(res[i][1], "write " .. i .. " failed", res[i][2]) end
  end
  eq(H.psql("SELECT count(*) || ' ' || count(DISTINCT xmin::text) FROM " .. schema ..
    ".execution WHERE scenario_id > 100"), "9 1")
end)

pg_only("pg-3.1 a claim skips the rows another transaction holds: it never waits for them", function()
  local url, schema = H.new_db()
  local st <close> = assert(core.store_open(url))
  local ids = {}
  for i = 1, 3 do
    local _, did = assert(st:record { exec = failed_exec(), dlq = item() })
    ids[i] = did
  end
  -- another session locks item 1 and keeps its transaction open
  local app = "rd-holder-" .. H.pid .. "-" .. math.random(1 << 30)
  local holder = assert(io.popen("PGAPPNAME=" .. app .. " " .. PSQL ..
    " -c 'BEGIN' -c " .. q("SELECT id FROM " .. schema .. ".dlq_item WHERE id = '" .. ids[1] .. "' FOR UPDATE") ..
    " -c 'SELECT pg_sleep(60)' >/dev/null 2>&1"))
  until_true(function()
    return H.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" .. app ..
      "' AND query LIKE 'SELECT pg_sleep%'") == "1"
  end, "the other session holds its lock")
  local got = st:claim { all = true, owner = "w", ttl = 60 }
  eq(#got, 2, "the locked item is skipped")
  eq({ got[1].id, got[2].id }, { ids[2], ids[3] })
  H.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" .. app .. "'")
  holder:close()
  got = st:claim { all = true, owner = "w", ttl = 60 }
  eq(#got, 3, "free again (and w's own leases are renewed)")
end)

pg_only("pg-4.1 a waiting worker is woken by another process's work (LISTEN/NOTIFY)", function()
  local url = H.new_db()
  local st <close> = assert(core.store_open(url))
  local woke = {}
  local function waiter() woke[#woke + 1] = st:wait_work { timeout = 60 } end
  local t = rd.spawn(waiter)
  coroutine.yield()      -- it parks; its LISTEN is on the wire
  eq(st:dlq_count(), 0)  -- an answer after the LISTEN's: it is in force
  local out, okk = child([[
    local core = require "redrive.core"
    local st = assert(core.store_open(os.getenv("URL")))
    assert(st:record { exec = { status = "error" }, dlq = { reason = "other", blueprint = "{}", state = "{}" } })
    print(#st:claim { all = true, owner = "other", ttl = 60 })
  ]], { URL = url })
  ok(okk, out)
  t:wait()
  eq(woke, { true }, "a new item in another process")
  t = rd.spawn(waiter)
  coroutine.yield()
  eq(st:dlq_count(), 1)
  out, okk = child([[
    local st = assert(require("redrive.core").store_open(os.getenv("URL")))
    print(st:release("other"))
  ]], { URL = url })
  ok(okk, out)
  match(out, "^1")
  t:wait()
  eq(woke, { true, true }, "a lease dropped in another process")
end)

pg_only("pg-5.1 processes opening a new store at once migrate it once, all of them open", function()
  local url, schema = H.new_db()
  -- hold the migrations' advisory lock, so the four wait for it together
  local app = "rd-lock-" .. H.pid .. "-" .. math.random(1 << 30)
  local holder = assert(io.popen("PGAPPNAME=" .. app .. " " .. PSQL ..
    " -c 'SELECT pg_advisory_lock(5927010551086923777)' -c 'SELECT pg_sleep(60)' >/dev/null 2>&1"))
  until_true(function()
    return H.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" .. app ..
      "' AND query LIKE 'SELECT pg_sleep%'") == "1"
  end, "the lock is held")
  local script = [[local st = assert(require("redrive.core").store_open(os.getenv("URL"))); print("opened")]]
  local kids = assert(io.popen("for i in 1 2 3 4; do URL=" .. q(url) .. " " .. q(REDRIVE) .. " -e " .. q(script) ..
    " 2>&1 & done; wait"))
  until_true(function()
    return H.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'redrive'" ..
      " AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%'") == "4"
  end, "all four wait for the lock")
  H.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" .. app .. "'")
  holder:close()
  local out = kids:read("a")
  kids:close()
  local n = select(2, out:gsub("opened", ""))
  eq(n, 4, out)
  eq(H.psql("SELECT count(*) || ' ' || max(version) FROM " .. schema .. ".redrive_schema"),
    "1 " .. core.store_schema_version())
  eq(H.psql("SELECT count(*) FROM pg_tables WHERE schemaname = '" .. schema .. "'"), "10") -- with job, job_item, ledger_item, ledger_event, job_runner
end)

pg_only("pg-6.1 passwords: from the URL, password_env or PGPASSFILE; never shown", function()
  local user, pw = assert(os.getenv("RD_TEST_PG_PWUSER")), assert(os.getenv("RD_TEST_PG_PASSWORD"))
  local _, schema = H.new_db()
  H.psql("GRANT ALL ON SCHEMA " .. schema .. " TO " .. user)
  local base = os.getenv("RD_TEST_PG"):gsub("user=redrive", "user=" .. user) ..
    "&options=-csearch_path%3D" .. schema
  -- no password anywhere: refused, and the code says why
  local msg = check_err("auth", nil, core.store_open, base)
  match(msg, "^store: cannot connect to 'postgresql:///redrive%?host=")
  -- in the URL: it works, and nothing shows it
  local with = base:gsub("^postgresql://", "postgresql://" .. user .. ":" .. pw .. "@")
  local st = assert(core.store_open(with))
  local shown = { tostring(st), st:path() }
  local _, emsg = st:scenario_create { name = "x", blueprint = "{oops " .. pw .. "}" }
  shown[#shown + 1] = emsg
  for _, s in ipairs(shown) do ok(not s:find(pw, 1, true), "password shown: " .. s) end
  eq(st:path(), base:gsub("^postgresql://", "postgresql://" .. user .. "@"))
  st:close()
  -- a wrong one: refused, not shown either
  local wrong = base:gsub("^postgresql://", "postgresql://" .. user .. ":not-" .. pw .. "@")
  msg = check_err("connect", "password authentication failed", core.store_open, wrong)
  ok(not msg:find("not-" .. pw, 1, true), msg)
  -- password_env through rd.connect, and the lines the CLI prints
  local script = [[
    local rd = require "redrive"
    local src = assert(rd.connect { kind = "local", db = os.getenv("URL"), password_env = "RD_PG_SECRET" })
    print(tostring(src)); print(rd._describe(src)); print(src:path())
    print(select(2, src:scenario_create { name = "x", blueprint = "{broken " .. os.getenv("RD_PG_SECRET") .. "}" }))
    local none, err, code = rd.connect { kind = "local", db = os.getenv("URL"), password_env = "RD_PG_UNSET" }
    print(none, err, code)
  ]]
  local out, okk = child(script, { URL = base, RD_PG_SECRET = pw })
  ok(okk, out)
  ok(not out:find(pw, 1, true), "password in the output:\n" .. out)
  match(out, "redrive source local %(postgresql:///redrive%?host=[^\n]*user=" .. user)
  match(out, "local store postgresql:///redrive%?host=[^\n]*user=" .. user)
  match(out, "password_env names RD_PG_UNSET, which is not set\tinvalid")
  -- libpq's own PGPASSFILE
  local passfile = H.tmpname(".pgpass")
  local f = assert(io.open(passfile, "w"))
  f:write("*:*:redrive:" .. user .. ":" .. pw .. "\n")
  f:close()
  os.execute("chmod 600 " .. q(passfile))
  out, okk = child([[print(assert(require("redrive.core").store_open(os.getenv("URL"))):dlq_count())]],
    { URL = base, PGPASSFILE = passfile })
  ok(okk, out)
  match(out, "^0")
end)

pg_only("pg-6.2 least privilege: a role without CREATE works on a store made for it, and says so on a new one", function()
  local user, pw = assert(os.getenv("RD_TEST_PG_PWUSER")), assert(os.getenv("RD_TEST_PG_PASSWORD"))
  local admin_url, schema = H.new_db()
  assert(core.store_open(admin_url)):close() -- the owner migrates once
  H.psql("GRANT USAGE ON SCHEMA " .. schema .. " TO " .. user .. ";" ..
    " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " .. schema .. " TO " .. user)
  local url = os.getenv("RD_TEST_PG"):gsub("user=redrive", "user=" .. user) .. "&options=-csearch_path%3D" .. schema
  local st <close> = assert(core.store_open(url, { password = pw }))
  local _, did = assert(st:record { exec = failed_exec(), dlq = item() })
  eq(#st:claim { ids = { did }, owner = "w", ttl = 60 }, 1)
  assert(st:retry_done { dlq_id = did, owner = "w", exec = { status = "success" }, success = true,
                         log = { status = 1 } })
  eq(st:dlq_get(did).resolved, true)
  -- a schema it may not create tables in: refused with 'auth', naming the store
  local _, bare = H.new_db()
  local url2 = os.getenv("RD_TEST_PG"):gsub("user=redrive", "user=" .. user) .. "&options=-csearch_path%3D" .. bare
  H.psql("GRANT USAGE ON SCHEMA " .. bare .. " TO " .. user)
  check_err("auth", "permission denied for schema " .. bare, core.store_open, url2, { password = pw })
end)

pg_only("pg-6.3 acknowledged means durable: a session set to commit without flushing is set back", function()
  local url = H.new_db()
  -- libpq's options: this connection starts with synchronous_commit off
  local st <close> = assert(core.store_open(url .. "%20-csynchronous_commit%3Doff"))
  eq(st:_setting("synchronous_commit"), "on")
  local plain <close> = assert(core.store_open(url))
  eq(plain:_setting("synchronous_commit"), "on")
end)

pg_only("pg-7.1 a connection the server dropped: the call in flight fails with 'io', the next reconnects", function()
  local app = "rd-reconnect-" .. H.pid .. "-" .. math.random(1 << 30)
  local url = H.new_db() .. "&application_name=" .. app
  local st <close> = assert(core.store_open(url))
  assert(st:record { exec = failed_exec(), dlq = item() })
  eq(H.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" .. app .. "'"), "1")
  H.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" .. app .. "'")
  check_err("io", "connection lost to 'postgresql:", st.dlq_count, st)
  eq(st:dlq_count(), 1, "a new connection")
  eq(H.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" .. app .. "'"), "1")
end)

pg_only("pg-7.2 unreachable servers: 'connect', quickly, naming the URL", function()
  check_err("connect", "cannot connect to 'postgresql://127%.0%.0%.1:1/x'", core.store_open, "postgresql://127.0.0.1:1/x")
  -- a host name is looked up off the loop (uv_getaddrinfo), never by libpq
  check_err("connect", 'cannot resolve host "no%-such%-host%.invalid"', core.store_open,
    "postgresql://no-such-host.invalid/x")
  check_err("invalid", nil, core.store_open, "postgresql://h/x?nosuchoption=1")
  -- a list of hosts: the first refuses, the connection moves to the next
  -- (another socket, perhaps with the same number: watched afresh)
  local url, schema = H.new_db()
  local dir = url:match("host=([^&]+)")
  local list = url:gsub("host=[^&]+", "host=127.0.0.1," .. dir .. "&port=1,5432")
  local st <close> = assert(core.store_open(list))
  eq(st:dlq_count(), 0)
  eq(H.psql("SELECT count(*) FROM pg_tables WHERE schemaname = '" .. schema .. "'"), "10") -- with job, job_item, ledger_item, ledger_event, job_runner
end)

pg_only("pg-7.3 a cancelled call raises rd.canceled; the store goes on", function()
  local st <close> = assert(core.store_open((H.new_db())))
  local t = rd.spawn(function() return st:_sleep(0.3) end)
  coroutine.yield() -- it parks on the query
  eq(t:cancel(), true)
  local okk, err = t:wait()
  eq(okk, nil)
  ok(rd.is_canceled(err), "canceled: " .. tostring(err))
  eq(st:dlq_count(), 0) -- answered after the sleep the server still ran
end)

pg_only("pg-7.4 closing a store fails what is in flight on it ('io'); the task goes on", function()
  local st = assert(core.store_open((H.new_db())))
  local t = rd.spawn(function() return st:_sleep(0.3) end)
  coroutine.yield() -- it parks on the query
  st:close()
  local r, msg, code = t:wait()
  eq({ r, code }, { nil, "io" })
  match(msg, "closed while the operation was in flight")
  raises("attempt to use a closed store", st.dlq_count, st)
end)

pg_only("pg-8.1 the command line on a URL: --db and REDRIVE_DB; the acting-on line shows no password", function()
  local url = H.new_db()
  local st = assert(core.store_open(url))
  local _, did = assert(st:record { exec = failed_exec(), dlq = item("cli reason") })
  st:close()
  local out, okk = sh(q(REDRIVE) .. " --db " .. q(url) .. " ls")
  ok(okk, out)
  match(out, did)
  out, okk = sh("REDRIVE_DB=" .. q(url) .. " " .. q(REDRIVE) .. " delete " .. did .. " --dry-run")
  ok(okk, out)
  match(out, "acting on local store postgresql:///redrive%?host=")
end)

H.done()

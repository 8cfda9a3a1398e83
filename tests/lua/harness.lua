-- Lua test harness: test(name, fn) runs fn as a task on the loop and records
-- pass/fail; done() prints "N passed, N failed[, N skipped]" and exits.
local rd = require "redrive"
local H = { passed = 0, failed = 0, skipped = 0 }

-- Each test process gets names and a random seed of its own: Lua's default
-- seed repeats between files started within one second when addresses are
-- predictable (ASan), and two files then share store paths and server keys.
do
  local f = io.open("/proc/self/stat")
  H.pid = f and f:read("n") or 0
  if f then f:close() end
  math.randomseed(os.time(), H.pid)
end
local expected_calls = {}

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    local ok, s = pcall(rd.json.encode, v)
    if ok then return s end
  end
  return tostring(v)
end

local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
H.deep_eq = deep_eq

function H.eq(a, b, what)
  if not deep_eq(a, b) then
    error(string.format("%sexpected %s, got %s", what and (what .. ": ") or "", show(b), show(a)), 2)
  end
end

function H.ok(v, what, ...)
  if not v then error((what or "expected a true value") .. " " .. show(select(1, ...)), 2) end
  return v
end

function H.match(s, pat, what)
  if type(s) ~= "string" or not s:find(pat) then
    error(string.format("%sexpected %s to match %q", what and (what .. ": ") or "", show(s), pat), 2)
  end
end

-- check_err(code, pattern, f, ...): f(...) must return nil, msg, code.
function H.check_err(code, pat, f, ...)
  local r = table.pack(f(...))
  if r[1] ~= nil or r[3] ~= code then
    error(string.format("expected nil, msg, %q; got %s, %s, %s", code, show(r[1]), show(r[2]), show(r[3])), 2)
  end
  if pat and not tostring(r[2]):find(pat) then
    error(string.format("error message %q does not match %q", r[2], pat), 2)
  end
  return r[2]
end

-- raises(pattern, f, ...): f must raise an error matching pattern.
function H.raises(pat, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error("expected an error matching " .. pat, 2) end
  if not tostring(err):find(pat) then error(string.format("error %q does not match %q", tostring(err), pat), 2) end
  return err
end

-- expect(fn): returns a wrapper that must be called before the test ends.
function H.expect(fn, times)
  local e = { want = times or 1, got = 0, where = debug.traceback("", 2) }
  expected_calls[#expected_calls + 1] = e
  return function(...) e.got = e.got + 1; if fn then return fn(...) end end
end

function H.test(name, fn)
  if H.skipping then return H.skip(name, H.skipping) end
  expected_calls = {}
  local t = rd.spawn(function() return xpcall(fn, debug.traceback) end)
  local ok, err = t:wait() -- xpcall's status and error, or nil, err
  if ok then
    for _, e in ipairs(expected_calls) do
      if e.got ~= e.want then
        ok, err = false, string.format("callback expected %d call(s), got %d%s", e.want, e.got, e.where)
      end
    end
  end
  if ok then
    H.passed = H.passed + 1
    print("ok   " .. name)
  else
    H.failed = H.failed + 1
    print("FAIL " .. name .. "\n    " .. tostring(err):gsub("\n", "\n    "))
  end
end

function H.skip(name, why)
  H.skipped = H.skipped + 1
  print("skip " .. name .. " (" .. why .. ")")
end

-- skip_rest(why): every test declared from here on is counted as skipped
-- (each case, not the file), with its reason; the file still reaches done().
-- skip_rest(nil) runs the tests declared after it again.
function H.skip_rest(why)
  H.skipping = why
end

-- mock(name) -> base URL of the Prism contract mock `name` (make, n8n,
-- sailpoint, kaizen) | nil, why it is missing (tests/mocks.sh says).
function H.mock(name)
  local url = os.getenv("RD_MOCK_" .. name:upper())
  if url and url ~= "" then return url end
  local why = os.getenv("RD_MOCK_" .. name:upper() .. "_WHY")
  if not why or why == "" then why = os.getenv("RD_MOCKS_WHY") end
  if not why or why == "" then why = "Prism not installed: run scripts/prism (or run through tests/run)" end
  return nil, why
end

-- Waiting on events. DEADLINE bounds a wait that should end: it turns a hang
-- into a failure and is never what a test synchronises on, so it is generous
-- (a loaded 2-core machine, ASan, valgrind).
H.DEADLINE = tonumber(os.getenv("RD_TEST_DEADLINE") or "")
  or ((os.getenv("VALGRIND") or "") ~= "" and 600 or 120)

-- wait_until(cond, what [, deadline]) -> cond's first true value. Polls cond()
-- giving the loop a turn between polls; fails naming `what` after the deadline.
function H.wait_until(cond, what, deadline)
  local limit = rd.now() + (deadline or H.DEADLINE)
  while true do
    local v = cond()
    if v then return v end
    if rd.now() > limit then error("gave up waiting for " .. (what or "a condition"), 2) end
    rd.sleep(0.005)
  end
end

-- bounded(fn, ...) -> fn's results. Runs fn in a task and fails the test if
-- it has not ended by the deadline (a hang), cancelling it; raises what fn
-- raised.
function H.bounded(fn, ...)
  local t = rd.spawn(fn, ...)
  local ended, st = pcall(H.wait_until, function()
    local s = t:status()
    return (s == "done" or s == "failed") and s
  end, "the call to end (a hang?)")
  if not ended then t:cancel(); error(st, 2) end
  local r = table.pack(t:wait())
  if st == "failed" then error(r[2], 0) end
  return table.unpack(r, 1, r.n)
end

-- hits(key) -> how many requests the loopback server has seen with ?key=key.
function H.hits(key)
  local res = assert(rd.http.request { url = H.server .. "/count", query = { key = key } })
  return rd.json.decode(res.body).count
end

-- key(prefix) -> a key no other test (of any process) uses: "prefix-n-random"
local uniq = 0
function H.key(prefix)
  uniq = uniq + 1
  return string.format("%s-%d-%d", prefix, uniq, math.random(1 << 30))
end

-- wait_hits(key, n): until the server has seen n requests with ?key=key.
function H.wait_hits(key, n)
  return H.wait_until(function() return H.hits(key) >= n end,
    string.format("%d request(s) with key %s at the test server", n, key))
end

function H.done()
  print(string.format("%d passed, %d failed, %d skipped", H.passed, H.failed, H.skipped))
  os.exit(H.failed == 0 and 0 or 1)
end

H.server = os.getenv("RD_TEST_SERVER")
H.root = os.getenv("RD_ROOT") or "."
H.shared = os.getenv("RD_SHARED") or "../shared"
function H.tmpname(suffix)
  local dir = os.getenv("REDRIVE_DB"):match("^(.*)/") or "/tmp"
  H._n = (H._n or 0) + 1
  return string.format("%s/t%d-%d-%d%s", dir, H.pid, math.random(1 << 30), H._n, suffix or "")
end

-- tmpfile(text, suffix) -> the path of a new temporary file holding text
function H.tmpfile(text, suffix)
  local path = H.tmpname(suffix)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- The store suites run on both backends (tests/run): RD_STORE=pg marks the
-- PostgreSQL half, RD_TEST_PG is its database (tests/pg.sh started it).
H.pg = os.getenv("RD_STORE") == "pg"
H.backend = H.pg and "postgresql" or "sqlite"

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- psql(sql) -> the output's first line (psql -At); raises when psql fails.
-- The tests' own SQL on the PostgreSQL test database, never the store's.
function H.psql(sql)
  local psql = assert(os.getenv("RD_TEST_PG_PSQL"), "RD_TEST_PG_PSQL is not set")
  local p = assert(io.popen(psql .. " -At -c " .. shell_quote(sql) .. " 2>&1"))
  local out = p:read("a")
  if not p:close() then error("psql failed: " .. sql .. "\n" .. out, 2) end
  return (out:match("^[^\n]*"))
end

-- new_db(suffix) -> target, schema: a new store's target for this run -- a
-- temp file, or a PostgreSQL URL whose search_path is a schema of its own
-- (made here), so every store of a test starts empty.
function H.new_db(suffix)
  if not H.pg then return H.tmpname(suffix or ".db") end
  H._schemas = (H._schemas or 0) + 1
  local schema = string.format("t%d_%d_%d", H.pid, math.random(1 << 30), H._schemas)
  H.psql("CREATE SCHEMA " .. schema)
  return os.getenv("RD_TEST_PG") .. "&options=-csearch_path%3D" .. schema, schema
end

-- sqlite_only(name, fn): a test of SQLite files themselves (modes, damaged
-- pages, the sqlite3 shell); counted as skipped on PostgreSQL.
function H.sqlite_only(name, fn)
  if H.pg then return H.skip(name, "about SQLite files") end
  return H.test(name, fn)
end

-- no_store(name, fn): a test in a store suite that touches no store (a pure
-- function, a remote source): run once, in the SQLite half.
function H.no_store(name, fn)
  if H.pg then return H.skip(name, "touches no store: run in the SQLite half") end
  return H.test(name, fn)
end

-- pg_only(name, fn): a test of what only PostgreSQL has (a server, schemas,
-- connections); counted as skipped on SQLite.
function H.pg_only(name, fn)
  if not H.pg then return H.skip(name, "about PostgreSQL") end
  return H.test(name, fn)
end

-- Work, measured without a clock (issue 13: growth is asserted, never time).
-- work(fn, ...) -> Lua VM instructions fn executed (a count hook on this
-- task's thread), then fn's results. Work inside C functions is not seen.
function H.work(fn, ...)
  local count = 0
  local oh, om, oc = debug.gethook()
  debug.sethook(function() count = count + 1 end, "", 100)
  local r = table.pack(fn(...))
  debug.sethook(oh, om or "", oc or 0)
  return count * 100, table.unpack(r, 1, r.n)
end

-- callgrind(script, args...) -> instructions `redrive script args...`
-- executed, C included (valgrind's count: the same on every machine, to a
-- small noise) | nil, why when valgrind cannot run here. Raises when
-- valgrind runs but gives no count.
function H.callgrind(script, ...)
  if (os.getenv("SAN") or "") ~= "" then return nil, "a sanitizer build: valgrind cannot run it" end
  if (os.getenv("VALGRIND") or "") ~= "" then return nil, "already under valgrind" end
  local p = io.popen("command -v valgrind 2>/dev/null")
  local found = p:read("a")
  p:close()
  if found == "" then return nil, "valgrind is not installed: apt-get install valgrind" end
  local words = { "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                  os.getenv("REDRIVE") or "./build/redrive", script, ... }
  for i, w in ipairs(words) do words[i] = "'" .. tostring(w):gsub("'", "'\\''") .. "'" end
  p = io.popen(table.concat(words, " ") .. " 2>&1")
  local out = p:read("a")
  p:close()
  local n = out:match("Collected : (%d+)")
  if not n then error("callgrind gave no count:\n" .. out:sub(1, 2000), 2) end
  return tonumber(n)
end

-- grows(what, n, w1, w4): work w4 for 4n is at most 6 times w1 for n
-- (linear is about 4, quadratic 16).
function H.grows(what, n, w1, w4)
  H.ok(w4 <= 6 * w1, string.format("%s: %d instructions for n = %d, %d for 4n: grows %.1fx (linear is 4x)",
    what, w1, n, w4, w4 / w1))
end

-- c_growth(name, source, n): a test that the work of the script `source`
-- (run as `redrive probe N`, N from arg[1]; N = 0 measures the start-up),
-- C included, grows linearly from n to 4n; skipped where callgrind cannot run.
function H.c_growth(name, source, n)
  local probe = H.tmpname(".lua")
  local f = assert(io.open(probe, "w"))
  f:write(source)
  f:close()
  local w0, why = H.callgrind(probe, 0)
  if not w0 then return H.skip(name, why) end
  H.test(name, function()
    H.grows("C included", n, H.callgrind(probe, n) - w0, H.callgrind(probe, 4 * n) - w0)
  end)
end

-- Raw SQL on a store file with the sqlite3 shell (test-only triggers, a
-- store taken back to an older schema); H.have_sqlite3 says whether it is
-- installed (tests that need it skip without).
H.have_sqlite3 = os.execute("command -v sqlite3 >/dev/null 2>&1") == true
function H.sql(path, text)
  local f = assert(io.popen(string.format("sqlite3 %q %q 2>&1", path, text)))
  local out = f:read("a")
  assert(f:close(), "sqlite3: " .. out)
  return out
end

test, eq, ok, match, check_err, raises, expect, skip = H.test, H.eq, H.ok, H.match, H.check_err, H.raises, H.expect, H.skip
return H

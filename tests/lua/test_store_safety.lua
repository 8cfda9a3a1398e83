-- Store safety: file modes, and hostile store files (garbage, foreign SQLite
-- databases, newer schemas, truncation, flipped bytes) give a clear error
-- naming the path, never a crash; on PostgreSQL (tests/run's second run),
-- hostile databases (a newer schema, another application's, tables in the
-- way, tables dropped behind the store's back) do the same. Hostile opens run in child processes
-- (`redrive -e`), so a crash shows as a signal, not as this test dying.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"
local REDRIVE = os.getenv("REDRIVE") or "./build/redrive"

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, ok, how, code
end

local function mode(path) return (sh("stat -c %a '" .. path .. "'"):gsub("%s+$", "")) end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A store with a scenario, executions and incomplete executions, closed
-- (so the WAL is checkpointed into the file that gets damaged).
local function populated(path, n)
  local st = assert(core.store_open(path))
  local sid = assert(st:scenario_create { name = "safety", blueprint = '{"name":"safety","flow":[]}' })
  for i = 1, n or 200 do
    assert(st:record {
      exec = { scenario_id = sid, status = "error", mode = "manual", started_at = 1700000000 + i,
               error = '{"message":"boom ' .. i .. '"}', run_data = '{"1":{"output":{"n":' .. i .. '}}}' },
      dlq = { scenario_id = sid, scenario_name = "safety", reason = "boom " .. i, size = 10, failer = 1,
              blueprint = '{"name":"safety","flow":[]}', state = '{"bundle":{"n":' .. i .. '}}' },
    })
  end
  st:close()
end

-- Run `code` (with DB bound to path) in a child redrive. Returns its output
-- and how it ended: "exit", code or "signal", n.
local CHILD = [[
local core = require "redrive.core"
local rd = require "redrive"
local path = os.getenv("SAFETY_DB")
local st, err, code = core.store_open(path)
if not st then print("open-failed", code, err) return end
-- every call returns a value or nil, msg, code: none may raise or crash
local function try(what, ...)
  local ok, a, b, c = pcall(...)
  if not ok then print("raised", what, a) os.exit(3) end
  if a == nil then print("error", what, c, b) end
end
try("scenario_list", st.scenario_list, st)
try("exec_list", st.exec_list, st, {})
try("dlq_list", st.dlq_list, st, {})
try("dlq_count", st.dlq_count, st, {})
try("claim", st.claim, st, { all = true, owner = "safety", ttl = 5 })
try("health", st.health, st, {})
try("record", st.record, st, { exec = { scenario_id = 1, status = "error", mode = "manual", started_at = 1 } })
local src, e2, c2 = rd.connect { kind = "local", db = path }
if src then
  local ok, err2 = pcall(function() for _ in src:incomplete {} do end end)
  if not ok then print("iter-raised", err2) end
else
  print("connect-failed", c2, e2)
end
st:close()
print("done")
]]

local function child(path)
  local script = H.tmpname(".lua")
  write(script, CHILD)
  local out, _, how, code = sh(string.format("SAFETY_DB='%s' '%s' '%s' 2>&1", path, REDRIVE, script))
  os.remove(script)
  return out, how, code
end

H.sqlite_only("safety-1.1 a new store file is 0600, its new directories 0700", function()
  local dir = H.tmpname("-dir")
  local path = dir .. "/sub/store.db"
  local st = assert(core.store_open(path))
  eq(mode(path), "600", "store file mode")
  eq(mode(dir .. "/sub"), "700", "created directory mode")
  assert(st:scenario_create { name = "x", blueprint = '{"flow":[]}' })
  for _, f in ipairs { path .. "-wal", path .. "-shm" } do
    local fh = io.open(f)
    if fh then fh:close(); eq(mode(f), "600", f .. " mode") end
  end
  st:close()
end)

H.sqlite_only("safety-1.2 the local source's default store is 0600 too, whatever the umask", function()
  local path = H.tmpname(".db")
  local out, how, code = child(path) -- creates it in a child process
  ok(how == "exit", "child ended by " .. tostring(how) .. " " .. tostring(code) .. ": " .. out)
  eq(mode(path), "600")
  local p2 = H.tmpname(".db")
  sh(string.format("umask 000; SAFETY_DB='%s' '%s' -e 'assert(require(\"redrive.core\").store_open(os.getenv(\"SAFETY_DB\")))'",
    p2, REDRIVE))
  eq(mode(p2), "600", "mode under umask 000")
end)

H.sqlite_only("safety-2.1 a file of garbage: 'corrupt', the message names the path", function()
  local path = H.tmpname(".db")
  local bytes = {}
  for i = 1, 8192 do bytes[i] = string.char((i * 7919 + 13) % 256) end
  write(path, table.concat(bytes))
  local msg = check_err("corrupt", nil, core.store_open, path)
  match(msg, path:gsub("%p", "%%%0"))
  local out, how = child(path)
  eq(how, "exit", out)
  match(out, "open%-failed\tcorrupt")
end)

H.sqlite_only("safety-2.2 a text file, an empty file, a directory", function()
  local path = H.tmpname(".db")
  write(path, "name,value\nsecret,hunter2\n")
  check_err("corrupt", nil, core.store_open, path)
  -- an empty file is a new database: it gets the schema
  local empty = H.tmpname(".db")
  write(empty, "")
  local st = assert(core.store_open(empty))
  eq(st:dlq_count {}, 0)
  st:close()
  local dir = H.tmpname("-d")
  os.execute("mkdir -p '" .. dir .. "'")
  local r, msg, code = core.store_open(dir)
  eq(r, nil)
  ok(code == "io" or code == "corrupt", "code " .. tostring(code))
  match(msg, dir:gsub("%p", "%%%0"))
end)

H.sqlite_only("safety-2.3 a foreign SQLite database (another program's tables): 'corrupt'", function()
  local path = H.tmpname(".db")
  local _, okc = sh("sqlite3 '" .. path .. "' 'CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); " ..
    "INSERT INTO users(name) VALUES (\"x\");' 2>&1")
  if not okc then return skip("safety-2.3", "no sqlite3 command") end
  local msg = check_err("corrupt", "not a redrive store", core.store_open, path)
  match(msg, path:gsub("%p", "%%%0"))
end)

H.sqlite_only("safety-2.4 a store from a newer redrive (schema version above ours): 'corrupt', says newer", function()
  local path = H.tmpname(".db")
  assert(core.store_open(path)):close()
  collectgarbage()
  -- PRAGMA user_version lives at byte 60 of the header (big-endian)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", 60)
  f:write(string.pack(">I4", 9999))
  f:close()
  local msg = check_err("corrupt", "newer", core.store_open, path)
  match(msg, "9999")
end)

H.sqlite_only("safety-2.5 damaged pages inside a store: 'corrupt', says damaged and how to recover", function()
  local path = H.tmpname(".db")
  populated(path, 2000)
  local full = read(path)
  local pages = #full // 4096
  ok(pages >= 40, "store has only " .. pages .. " pages")
  -- garbage over the middle half of the pages; the header page stays intact
  local bytes = {}
  for i = 1, 4096 do bytes[i] = string.char((i * 7919 + 13) % 256) end
  local junk = table.concat(bytes)
  local f = assert(io.open(path, "r+b"))
  for pg = pages // 4, 3 * pages // 4 do
    f:seek("set", pg * 4096)
    f:write(junk)
  end
  f:close()
  -- opening reads the header and schema only (a full check would read every
  -- page: seconds on a large store, at every cron start); the first read
  -- that reaches a damaged page says so
  local st = assert(core.store_open(path))
  local failures = 0
  local function check(r, msg, code)
    if r ~= nil then return end
    failures = failures + 1
    eq(code, "corrupt", msg)
    match(msg, "^store: '" .. path:gsub("%p", "%%%0") .. "' is damaged %(")
    match(msg, "sqlite3 '" .. path:gsub("%p", "%%%0") .. "' %.recover")
    ok(not msg:find("not a redrive store"), msg)
  end
  check(st:exec_list { limit = 5000 })
  check(st:dlq_list { limit = 5000 })
  check(st:dlq_count {})
  st:close()
  ok(failures > 0, "no read reported the damage")
  -- and a file that is not SQLite at all is still "not a redrive store"
  local other = H.tmpname(".db")
  write(other, junk .. junk)
  check_err("corrupt", "is not a redrive store", core.store_open, other)
end)

H.sqlite_only("safety-3.1 a truncated store: errors, never a crash", function()
  local path = H.tmpname(".db")
  populated(path)
  local full = read(path)
  ok(#full > 8192, "store is only " .. #full .. " bytes")
  for _, keep in ipairs { 100, 4096, 8192, #full // 2 } do
    local p = H.tmpname(".db")
    write(p, full:sub(1, keep))
    local out, how, code = child(p)
    ok(how == "exit" and code ~= 3, string.format("truncated to %d: ended by %s %s:\n%s", keep, how, code, out))
    ok(out:find("done") or out:find("open%-failed"), "truncated to " .. keep .. ": " .. out)
  end
end)

H.sqlite_only("safety-3.2 flipped bytes inside the store: errors, never a crash", function()
  local path = H.tmpname(".db")
  populated(path)
  local full = read(path)
  local seed = 12345
  local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
  local crashes = {}
  for round = 1, 12 do
    local b = { full:byte(1, -1) }
    for _ = 1, 4 + round * 4 do
      local at = 101 + rnd(#b - 101) -- keep the 100-byte file header
      b[at] = rnd(256)
    end
    local p = H.tmpname(".db")
    local parts = {}
    for i = 1, #b, 4096 do parts[#parts + 1] = string.char(table.unpack(b, i, math.min(i + 4095, #b))) end
    write(p, table.concat(parts))
    local out, how, code = child(p)
    if how ~= "exit" or code == 3 then crashes[#crashes + 1] = string.format("round %d: %s %s: %s", round, how, code, out) end
  end
  eq(#crashes, 0, table.concat(crashes, "\n"))
end)

-- ---- PostgreSQL: hostile databases ------------------------------------------

H.pg_only("safety-4.1 a schema from a newer redrive: 'corrupt', says newer, names the URL", function()
  local url, schema = H.new_db()
  assert(core.store_open(url)):close()
  H.psql("UPDATE " .. schema .. ".redrive_schema SET version = 99")
  local msg = check_err("corrupt", "has schema version 99, newer than this redrive knows", core.store_open,
    url)
  match(msg, url:gsub("%p", "%%%0"))
end)

H.pg_only("safety-4.2 another application's redrive_schema, or its tables in the way: 'corrupt'", function()
  local url, schema = H.new_db()
  H.psql("CREATE TABLE " .. schema .. ".redrive_schema (application text, version integer);" ..
    " INSERT INTO " .. schema .. ".redrive_schema VALUES ('ledgerly', 1)")
  check_err("corrupt", "is not a redrive store %(redrive_schema belongs to ledgerly%)", core.store_open, url)
  local url2, schema2 = H.new_db()
  H.psql("CREATE TABLE " .. schema2 .. ".execution (id int)")
  check_err("corrupt", 'relation "execution" already exists', core.store_open, url2)
  -- nothing was left half made: the migration is one transaction
  eq(H.psql("SELECT count(*) FROM pg_tables WHERE schemaname = '" .. schema2 .. "'"), "1")
end)

H.pg_only("safety-4.3 tables dropped behind the store's back: every call errors, never a crash", function()
  local url, schema = H.new_db()
  local st = assert(core.store_open(url))
  assert(st:record { exec = { status = "error", scenario_id = 1 },
                     dlq = { scenario_id = 1, reason = "x", blueprint = "{}", state = "{}" } })
  eq(st:dlq_count(), 1) -- its statements are prepared on the connection now
  H.psql("DROP TABLE " .. schema .. ".dlq_log, " .. schema .. ".dlq_item")
  check_err("corrupt", 'relation "dlq_item" does not exist', st.dlq_count, st)
  check_err("corrupt", nil, st.dlq_list, st, {})
  check_err("corrupt", nil, st.claim, st, { all = true, owner = "w", ttl = 5 })
  eq(#st:exec_list(), 1, "the rest of the store still works")
  st:close()
  -- a new process finds the schema incomplete when it opens the store
  local out, how, code = child(url)
  eq(how, "exit", out)
  ok(code ~= 3, "a call raised: " .. out)
  match(out, "open%-failed\tcorrupt\t.*has no table dlq_item")
end)

H.done()

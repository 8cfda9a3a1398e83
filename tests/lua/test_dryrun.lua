-- Dry run on the local source: every mutating call (scenario_create,
-- scenario_update, run, patch, retry one / many, exec retry, deletes) does its
-- reads, changes nothing, and returns a result marked dry_run = true. The
-- store's content is compared table by table before and after.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"
local S = H.server

local function blueprint(name, urls)
  local flow = {}
  for i, u in ipairs(urls) do
    flow[i] = { id = i, module = "http:ActionSendData", version = 3,
                mapper = { url = u, method = "get", parseResponse = true }, metadata = {} }
  end
  return { name = name, flow = flow, metadata = { version = 1 } }
end

local count = H.hits -- the test server's requests with ?key=key

local function collect(it)
  local out = {}
  for v in it do out[#out + 1] = v end
  return out
end

-- Every table of the store as text: the sqlite3 CLI when installed (a plain
-- SELECT per table, read-only), else the binding's list calls.
local function dump(path)
  local f = io.popen("command -v sqlite3 2>/dev/null")
  local have = f:read("a"); f:close()
  if have ~= "" then
    local p = io.popen(string.format(
      "sqlite3 -readonly %q \"SELECT name FROM sqlite_master WHERE type='table' ORDER BY name\"", path))
    local tables = {}
    for t in p:lines() do tables[#tables + 1] = t end
    p:close()
    assert(#tables >= 3, "the store has tables")
    local out = {}
    for _, t in ipairs(tables) do
      local q = io.popen(string.format("sqlite3 -readonly %q \"SELECT * FROM \\\"%s\\\" ORDER BY 1\"", path, t))
      out[#out + 1] = "== " .. t .. "\n" .. q:read("a")
      q:close()
    end
    return table.concat(out, "\n"), #tables
  end
  local st <close> = assert(core.store_open(path))
  local parts = { rd.json.encode(st:scenario_list()) }
  for _, e in ipairs(st:exec_list { limit = 10000 }) do parts[#parts + 1] = rd.json.encode(st:exec_get(e.id)) end
  for _, it in ipairs(st:dlq_list { limit = 10000 }) do
    parts[#parts + 1] = rd.json.encode(st:dlq_get(it.id))
    parts[#parts + 1] = rd.json.encode(st:dlq_logs(it.id, { limit = 10000 }))
  end
  return table.concat(parts, "\n"), 3
end

-- A store with two scenarios, successful and failed runs, items (one with a
-- failed retry already, so it has a log), all before dry run is switched on.
local function fixture()
  local path = H.tmpname(".db")
  local src = assert(rd.connect { kind = "local", db = path })
  local key = "dry-" .. math.random(1 << 30)
  local good = assert(src:scenario_create { name = "good", blueprint = blueprint("good", { S .. "/ok?key=" .. key }) })
  local bad = assert(src:scenario_create { name = "bad", blueprint = blueprint("bad", {
    S .. "/ok?key=" .. key, S .. "/v1/webhook?key=" .. key }) })
  assert(src:run(good.id))
  local failed = {}
  for i = 1, 5 do failed[i] = assert(src:run(bad.id, { input = { i = i } })) end
  local it = assert(src:incomplete_item(failed[1].dlq_id))
  eq(assert(it:retry()).status, "error")
  return src, path, key, good, bad, failed
end

local function with_dry(fn)
  rd.dry_run(true)
  local ok, err = pcall(fn)
  rd.dry_run(false)
  if not ok then error(err, 0) end
end

test("dry-1.1 every mutating call returns dry_run = true and the store is unchanged", function()
  local src, path, key, good, bad, failed = fixture()
  local before, ntables = dump(path)
  local hits = count(key)
  local items = collect(src:incomplete {})
  eq(#items, 5)
  with_dry(function()
    eq(rd.is_dry_run(), true)
    -- scenario_create: validated, not stored
    local r = assert(src:scenario_create { name = "new", blueprint = blueprint("new", { S .. "/ok" }) })
    eq(r.dry_run, true); eq(r.action, "scenario_create"); eq(r.id, nil)
    local broken = blueprint("new", { S .. "/ok" }); broken.flow[1].mapper.url = nil
    check_err("invalid", "module 1", src.scenario_create, src, { name = "x", blueprint = broken })
    -- scenario_update: shows the diff
    r = assert(src:scenario_update(good.id, { blueprint = blueprint("good", { S .. "/ok?v=2" }) }))
    eq(r.dry_run, true); ok(#r.diff >= 1, "diff", r.diff)
    -- run: no HTTP, no execution
    r = assert(src:run(good.id, { input = { n = 1 } }))
    eq(r.dry_run, true); eq(r.action, "run"); eq(r.scenario, good.id)
    -- patch: validated, diff shown
    local bp = items[2]:blueprint()
    bp:set("/flow/1/mapper/url", S .. "/v2/webhook")
    r = assert(items[2]:patch { blueprint = bp })
    eq(r.dry_run, true); eq(r.action, "patch"); eq(#r.diff, 1)
    check_err("invalid", "module 7", items[2].patch, items[2], { failer = 7 })
    -- retry one item
    r = assert(items[2]:retry())
    eq(r.dry_run, true); eq(r.action, "retry"); eq(r.failer, 2)
    -- bulk retry: counts what would be retried
    r = assert(src:retry { all = true, except = { items[5].id } })
    eq(r.dry_run, true); eq(r.total, 4); eq(r.would_retry, 4); eq(r.succeeded, 0)
    r = assert(src:retry { ids = { items[1].id, items[3].id } })
    eq(r.would_retry, 2)
    -- exec retry
    r = assert(failed[3]:retry())
    eq(r.dry_run, true); eq(r.action, "retry_execution")
    r = assert(failed[3]:retry { attempts = 3 })
    eq(r.dry_run, true)
    -- deletes
    r = assert(items[3]:delete())
    eq(r.dry_run, true); eq(r.would_delete, 1)
    r = assert(failed[4]:delete())
    eq(r.dry_run, true)
    check_err("invalid", "confirmed", src.delete_incomplete, src, { all = true })
    r = assert(src:delete_incomplete { all = true, confirmed = true, except = { items[1].id } })
    eq(r.dry_run, true); eq(r.would_delete, 4); eq(r.deleted, 0)
    -- reads still work
    eq(#collect(src:executions {}), 7)
    eq(src:incomplete_item(items[1].id).attempts, 1)
  end)
  eq(count(key), hits, "no HTTP call was made")
  local after = dump(path)
  ok(ntables >= 3, "dumped every table", ntables)
  eq(after, before, "store content")
  -- and out of dry run the same calls do change things
  local r = assert(items[2]:retry())
  eq(r.status, "error")
  ok(dump(path) ~= before, "a real retry changes the store")
end)

test("dry-1.2 a dry bulk retry reports leased and resolved items as skipped", function()
  local src, path = fixture()
  local items = collect(src:incomplete {})
  local other = assert(core.store_open(path))
  eq(#other:claim { ids = { items[1].id }, owner = "someone-else", ttl = 60 }, 1)
  local before = dump(path)
  with_dry(function()
    local r = assert(src:retry { all = true })
    eq(r.total, 5); eq(r.would_retry, 4); eq(r.skipped, 1)
    eq(r.errors[1].id, items[1].id); match(r.errors[1].message, "being retried")
    r = assert(src:delete_incomplete { ids = { items[1].id, items[2].id } })
    eq(r.would_delete, 1); eq(#r.errors, 1)
    check_err("conflict", "being retried", items[1].patch, items[1], { failer = 1 })
  end)
  eq(dump(path), before)
  other:close()
end)

local bin = os.getenv("REDRIVE")
local have_bin = bin and io.open(bin, "r")
if have_bin then have_bin:close() end
;(have_bin and test or skip)("dry-1.3 redrive --dry-run: what would be done is logged on stderr", have_bin and function()
  local src, path, key = fixture()
  local before = dump(path)
  local hits = count(key)
  local script = H.tmpname(".lua")
  local f = assert(io.open(script, "w"))
  f:write(string.format([[
    local rd = require "redrive"
    local src = assert(rd.connect { kind = "local", db = %q })
    local s = assert(src:retry { all = true })
    print("would_retry", s.would_retry, s.dry_run)
    for it in src:incomplete {} do assert(it:retry()) end
  ]], path))
  f:close()
  local p = io.popen(string.format("%q --dry-run %q 2>&1", bin, script))
  local out = p:read("a")
  p:close()
  match(out, "would_retry\t5\ttrue")
  match(out, "dry%-run: would retry 5 incomplete execution")
  match(out, "dry%-run: would retry incomplete execution %x+ %(scenario %d+ \"bad\"%) from module 2")
  eq(count(key), hits)
  eq(dump(path), before)
end or "no redrive binary")

H.done()

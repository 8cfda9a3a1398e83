-- Hostile numbers in options: NaN, infinities, negatives, huge values and
-- fractions where a count is meant. One rule decides (src/lua/lnum.c, used
-- by the bindings and, through redrive.opts, by the Lua parts): the value is
-- refused with code "invalid" naming the option (calls whose only failure
-- is misuse, rd.sleep and rd.each, raise the same message). Nothing is cast
-- out of range: `timeout = math.huge` once became a 1 ms timeout.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = assert(H.server, "RD_TEST_SERVER not set")

local HOSTILE = { math.huge, -math.huge, 0 / 0, 1e300, -1 }
local function show(v) return v ~= v and "nan" or tostring(v) end

test("options-1 the rule itself: core.check_number", function()
  local core = require "redrive.core"
  eq(core.check_number(2.5, "t", "timeout"), 2.5)
  eq(math.type(core.check_number(4.0, "n", "count")), "integer")
  for _, v in ipairs(HOSTILE) do
    for _, kind in ipairs { "timeout", "seconds", "bytes", "count", "concurrency", "rate", "number" } do
      check_err("invalid", "^option 'x' must be .* got " .. show(v):gsub("%+", "%%+"):gsub("%-", "%%-") .. "$",
        core.check_number, v, "x", kind)
    end
  end
  check_err("invalid", "must be a whole number", core.check_number, 1.5, "n", "count")
  check_err("invalid", "<= 20, got 21", core.check_number, 21, "n", "count", 1, 20)
  raises("unknown kind", core.check_number, 1, "n", "furlongs")
end)

test("options-2 rd.each concurrency: misuse raises, naming the option", function()
  for _, v in ipairs { math.huge, 0 / 0, 0, -1, 1e300, 1.5, 20000 } do
    raises("^bad argument #3 to 'each' %(option 'concurrency' must be a whole number >= 1 and <= 10000",
      rd.each, { 1 }, function() end, { concurrency = v })
  end
  eq(rd.each({ 1, 2 }, function() end, { concurrency = 10000 }).ok, 2)
end)

test("options-3 rd.connect: every numeric option of a remote source", function()
  local base = { kind = "n8n", base_url = S .. "/api/v1", token = "x" }
  local function with(k, v)
    local o = {}
    for kk, vv in pairs(base) do o[kk] = vv end
    o[k] = v
    return o
  end
  for _, k in ipairs { "rate", "concurrency", "retries", "rate_limit_retries", "max_wait", "timeout", "max_body" } do
    for _, v in ipairs(HOSTILE) do
      check_err("invalid", "^n8n: option '" .. k .. "' must be", rd.connect, with(k, v))
    end
  end
  check_err("invalid", "option 'backoff.base'", rd.connect, with("backoff", { base = 0 / 0 }))
  check_err("invalid", "option 'backoff.factor'", rd.connect, with("backoff", { factor = math.huge }))
  check_err("invalid", "option 'timeout' must be a number, got \"soon\"", rd.connect, with("timeout", "soon"))
  -- numeric text (a config value, an environment variable) is its number
  ok(rd.connect(with("timeout", "2.5")))
end)

test("options-4 the local source: lease_ttl, retry concurrency, exec:wait timeout", function()
  local db = H.tmpname(".db")
  check_err("invalid", "^local: option 'lease_ttl'", rd.connect, { kind = "local", db = db, lease_ttl = 0 / 0 })
  local src = assert(rd.connect { kind = "local", db = db })
  for _, v in ipairs(HOSTILE) do
    check_err("invalid", "^retry: option 'concurrency'", src.retry, src, { all = true, concurrency = v })
    check_err("invalid", "^retry: option 'lease_ttl'", src.retry, src, { all = true, lease_ttl = v })
  end
  local sc = assert(src:scenario_create { name = "n", blueprint = { name = "n", flow = {
    { id = 1, module = "util:SetVariable", mapper = { name = "a", value = "1" } } } } })
  local exec = assert(src:run(sc.id, {}))
  for _, v in ipairs(HOSTILE) do
    check_err("invalid", "^wait: option 'timeout'", exec.wait, exec, { timeout = v })
  end
  eq(assert(exec:wait { timeout = 5 }).id, exec.id)
  src:close()
end)

test("options-5 the http module: timeout and maxBody from the mapper", function()
  local engine = require "redrive.engine"
  local function run(mapper)
    return engine.run({ name = "t", flow = { { id = 1, module = "http:ActionSendData", mapper = mapper } } }, {})
  end
  -- a blueprint holds no NaN or infinity, but text does ("1e999" reads as inf)
  for _, v in ipairs { "1e999", "-1e999", "1e300", 1e300, -1, "-1" } do
    local out = run { url = S .. "/ok", timeout = v }
    eq(out.status, "error"); eq(out.error.code, "invalid")
    match(out.error.message, "option 'timeout' must be")
    out = run { url = S .. "/ok", maxBody = v }
    eq(out.error.code, "invalid"); match(out.error.message, "option 'maxBody' must be")
  end
  local out = run { url = S .. "/big/2000", maxBody = 1000 }
  eq(out.error.code, "too_large"); match(out.error.message, "max_body %(1000 bytes%)")
  eq(run({ url = S .. "/big/1000", maxBody = 1000 }).status, "success")
  -- redirects are followed only when asked, as rd.http.request does
  eq(run({ url = S .. "/redirect/1" }).run_data["1"].output.statusCode, 302)
  eq(run({ url = S .. "/redirect/1", followRedirect = true }).run_data["1"].output.statusCode, 200)
end)

test("options-6 rule files: every, limit and concurrency obey the rule", function()
  local rules = require "redrive.rules"
  local function rule_with(field)
    local path = H.tmpname(".lua")
    local f = assert(io.open(path, "w"))
    f:write("return { name = 'r', match = function() return true end, action = function() end, ", field, " }\n")
    f:close()
    return path
  end
  for _, c in ipairs {
    { "every = 0/0", "option 'every' must be a number of seconds > 0" },
    { "every = math.huge", "option 'every' .* got inf" },
    { "every = -1", "option 'every'" },
    { "limit = 1.5", "option 'limit' must be a whole number" },
    { "limit = -1", "option 'limit'" },
    { "concurrency = math.huge", "option 'concurrency' .* got inf" },
    { "concurrency = 0", "option 'concurrency'" },
  } do
    local path = rule_with(c[1])
    local r, msg = rules.load_file(path)
    eq(r, nil, c[1])
    match(msg, "^" .. path:gsub("%p", "%%%0") .. ": " .. c[2], c[1])
  end
  local r = assert(rules.load_file(rule_with("every = 5, limit = 3, concurrency = 2")))
  eq({ r.every, r.limit, r.concurrency }, { 5, 3, 2 })
  r = assert(rules.load_file(rule_with("every = nil")))
  eq({ r.every, r.limit, r.concurrency }, { 60, nil, 4 })
end)

H.done()

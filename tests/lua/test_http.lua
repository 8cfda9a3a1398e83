-- HTTP on the loop: rd.http.request against the loopback test server
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = assert(H.server, "RD_TEST_SERVER not set")

local function get(path, opts)
  opts = opts or {}
  opts.url = S .. path
  return rd.http.request(opts)
end

test("http-1.1 GET, status, lower-case headers, res:json()", function()
  local res = assert(get("/ok"))
  eq(res.status, 200)
  eq(res.headers["content-type"], "application/json")
  eq(res:json(), { ok = true })
  ok(res.transfer > 0, "transfer counted")
end)

test("http-1.2 method, headers, query and body reach the server", function()
  local res = assert(rd.http.request {
    method = "PUT", url = S .. "/echo", headers = { ["X-Thing"] = "v1" },
    query = { b = "two words", a = { "1", "2" } }, body = "payload",
  })
  local e = res:json()
  eq(e.method, "PUT"); eq(e.path, "/echo")
  eq(e.query, "a=1&a=2&b=two%20words")
  eq(e.headers["x-thing"], "v1"); eq(e.body, "payload")
end)

test("http-1.3 json body sets content-type and POST", function()
  local e = assert(rd.http.request { url = S .. "/echo", json = { x = 1, list = { 1, 2 } } }):json()
  eq(e.method, "POST")
  eq(e.headers["content-type"], "application/json")
  eq(rd.json.decode(e.body), { x = 1, list = { 1, 2 } })
end)

test("http-1.4 a 4xx/5xx is a response, not an error", function()
  local res, err = get("/status/503")
  eq(err, nil); eq(res.status, 503)
  eq(assert(get("/status/404")).status, 404)
end)

test("http-1.5 timeout returns nil, msg, 'timeout'", function()
  local msg = check_err("timeout", "timed out after 200 ms", get, "/stall", { timeout = 0.2 })
  match(msg, "^http: GET http://127%.0%.0%.1:%d+/stall")
end)

test("http-1.6 connection refused returns 'connect'", function()
  check_err("connect", "127%.0%.0%.1", rd.http.request, { url = "http://127.0.0.1:1/x" })
end)

test("http-1.7 server closing mid-body is a transport error", function()
  check_err("http", "close%-mid%-body", get, "/close-mid-body")
  check_err("http", nil, get, "/close")
  check_err("http", nil, get, "/garbage")
  check_err("http", nil, get, "/bad-chunked")
end)

test("http-1.8 redirects only on request", function()
  local res = assert(get("/redirect/3"))
  eq(res.status, 302)
  res = assert(get("/redirect/3", { follow = true }))
  eq(res.status, 200); eq(res:json().redirected, true)
  match(res.url, "/redirect/0$")
end)

test("http-1.9 large bodies", function()
  local res = assert(get("/big/5000000"))
  eq(#res.body, 5000000)
  eq(res.body:sub(1, 3), "abc"); eq(res.body:sub(27, 27), "a")
  local big = string.rep("x", 3 * 1024 * 1024)
  local e = assert(rd.http.request { url = S .. "/echo", body = big }):json()
  eq(#e.body, #big)
end)

test("http-1.10 gzip is decoded; broken gzip is an error", function()
  local res = assert(get("/gzip"))
  eq(res.headers["content-encoding"], "gzip")
  eq(res:json().gzip, true)
  check_err("http", nil, get, "/bad-gzip")
end)

test("http-1.11 malformed JSON bodies give a positioned error", function()
  local res = assert(get("/malformed-json"))
  check_err("invalid", "is not JSON: json: unexpected end of input at line 1", res.json, res)
end)

test("http-1.12 1000 requests from 1000 tasks at concurrency 100", function()
  local s = rd.each((function()
    local t = {}
    for i = 1, 1000 do t[i] = i end
    return t
  end)(), function(i)
    local res = assert(get("/ok?key=conc12&i=" .. i))
    assert(res.status == 200)
  end, { concurrency = 100 })
  eq(s.ok, 1000); eq(s.failed, 0)
  eq(assert(get("/count?key=conc12")):json().count, 1000)
end)

test("http-1.13 1000 spawned tasks each doing a GET complete on one thread", function()
  local tasks = {}
  for i = 1, 1000 do tasks[i] = rd.spawn(function() return assert(get("/ok")).status end) end
  local n = 0
  for i = 1, 1000 do if tasks[i]:wait() == 200 then n = n + 1 end end
  eq(n, 1000)
end)

test("http-1.14 keep-alive: sequential requests reuse the connection", function()
  assert(get("/ok"))
  local r2 = assert(get("/ok"))
  eq(r2.reused, true)
end)

test("http-1.15 misuse raises before anything starts", function()
  raises("table expected", rd.http.request, "http://x")
  raises("url: string expected", rd.http.request, {})
  raises("header 'X' contains a line break", rd.http.request, { url = S, headers = { ["X"] = "a\r\nInjected: 1" } })
  raises("timeout: number expected, got string", rd.http.request, { url = S, timeout = "1" })
  raises("body: string expected", rd.http.request, { url = S, body = {} })
end)

test("http-1.16 URLs in errors lose userinfo and query", function()
  local msg = check_err("connect", nil, rd.http.request, { url = "http://user:secret@127.0.0.1:1/p?token=abc" })
  ok(not msg:find("secret"), "no password in message")
  ok(not msg:find("abc"), "no query in message")
end)

test("http-1.17 a cancelled request frees its transfer and the loop goes on", function()
  local k = "cancel-" .. H.pid .. "-" .. math.random(1 << 30)
  local t = rd.spawn(function() return get("/stall?key=" .. k, { timeout = 30 }) end)
  H.wait_hits(k, 1) -- the request is in flight
  t:cancel()
  local r, err = t:wait()
  eq(r, nil); ok(rd.is_canceled(err), "cancelled: rd.canceled", err)
  eq(assert(get("/ok")).status, 200)
end)

H.done()

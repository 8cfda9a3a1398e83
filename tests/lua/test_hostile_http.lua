-- Hostile servers: whatever a server sends or does, a request ends with a
-- response or a classified error, and a limit that trips says so with its
-- code while other tasks keep running.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = assert(H.server, "RD_TEST_SERVER not set")

test("hostile-http-1 a kept-alive connection the server dropped is retried, not failed", function()
  -- /ok-drop answers with keep-alive framing, then answers the next request
  -- on that connection with a RST: curl reuses the connection, and must
  -- retry on a fresh one (a poll error handed to curl as CSELECT_ERR failed
  -- about half of these).
  local failures = {}
  for i = 1, 50 do
    local res, err = rd.http.request { url = S .. "/ok-drop" }
    if not res or res.status ~= 200 then failures[#failures + 1] = i .. ": " .. tostring(err) end
  end
  eq(failures, {}, "failed requests")
end)

-- Peak resident memory of this process (kB), from the kernel.
local function vm_hwm_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

test("hostile-http-2 max_body: exactly max_body passes, one byte more is too_large", function()
  local res = assert(rd.http.request { url = S .. "/big/1000", max_body = 1000 })
  eq(#res.body, 1000)
  local msg = check_err("too_large", "larger than max_body %(999 bytes%)", rd.http.request,
    { url = S .. "/big/1000", max_body = 999 })
  match(msg, "^http: GET http://127%.0%.0%.1:%d+/big/1000: response body larger than max_body")
  -- the default applies without the option: 16 MiB passes, 16 MiB + 1 does not
  eq(#assert(rd.http.request { url = S .. "/big/" .. (16 << 20) }).body, 16 << 20)
  check_err("too_large", "max_body %(16777216 bytes%)", rd.http.request, { url = S .. "/big/" .. (16 << 20) + 1 })
end)

test("hostile-http-3 max_body counts decoded bytes, not the bytes on the wire", function()
  local res = assert(rd.http.request { url = S .. "/gzip" })
  local n = #res.body
  ok(res.transfer < n - 1, "the gzip body is smaller on the wire than decoded")
  eq(#assert(rd.http.request { url = S .. "/gzip", max_body = n }).body, n)
  check_err("too_large", nil, rd.http.request, { url = S .. "/gzip", max_body = n - 1 })
end)

test("hostile-http-4 gzip bombs and endless bodies trip max_body, memory stays bounded, others keep going", function()
  -- /gzip-bomb is ~4 MB inflating to 4 GiB; /endless never ends. Eight of
  -- each at once with the default limit (16 MiB) and a neighbour task doing
  -- ordinary requests: every hostile transfer fails with too_large, the
  -- neighbour's all succeed, and the peak RSS stays far below one bomb.
  local codes, neighbour = {}, 0
  local fns = {}
  for i = 1, 16 do
    fns[i] = function()
      local path = i % 2 == 0 and "/gzip-bomb" or "/endless"
      local res, msg, code = rd.http.request { url = S .. path, timeout = 120 }
      codes[#codes + 1] = res and ("got " .. #res.body .. " bytes") or code
      if code ~= "too_large" then print(path, msg) end
    end
  end
  fns[#fns + 1] = function()
    for _ = 1, 20 do
      local res = rd.http.request { url = S .. "/ok" }
      if res and res.status == 200 then neighbour = neighbour + 1 end
    end
  end
  assert(rd.all(fns))
  for i, c in ipairs(codes) do eq(c, "too_large", "transfer " .. i) end
  eq(#codes, 16)
  eq(neighbour, 20, "neighbour requests")
  local peak_mb = vm_hwm_kb() / 1024
  -- bound: well above 16 transfers at max_body (their buffers), far below
  -- a single inflated bomb (4096 MiB); sanitizer builds included
  ok(peak_mb < 768, string.format("peak RSS %.0f MiB", peak_mb))
  print(string.format("peak RSS %.0f MiB", peak_mb))
end)

test("hostile-http-5 max_body per request can be lowered and raised; bad values are invalid", function()
  check_err("too_large", "max_body %(1024 bytes%)", rd.http.request, { url = S .. "/endless", max_body = 1024 })
  check_err("too_large", nil, rd.http.request, { url = S .. "/gzip-bomb", max_body = 1 })
  for _, v in ipairs { 0, -1, 0.5, math.huge, 0 / 0, 2 ^ 60 } do
    check_err("invalid", "option 'max_body' must be a whole number of bytes", rd.http.request,
      { url = S .. "/ok", max_body = v })
  end
  raises("max_body: number expected, got string", rd.http.request, { url = S .. "/ok", max_body = "1k" })
end)

test("hostile-http-6 response headers are bounded (256 KiB), too_large", function()
  eq(assert(rd.http.request { url = S .. "/many-headers?n=200" }).status, 200)
  local msg = check_err("too_large", "response headers larger than 262144 bytes", rd.http.request,
    { url = S .. "/many-headers?n=300" })
  match(msg, "/many%-headers")
end)

test("hostile-http-7 out-of-range timeouts are refused with invalid, never become 1 ms", function()
  for _, k in ipairs { "timeout", "connect_timeout" } do
    for _, v in ipairs { math.huge, -math.huge, 0 / 0, 1e300, -1, 0, 1e10 } do
      local msg = check_err("invalid", "^http: option '" .. k .. "' must be a number of seconds > 0",
        rd.http.request, { url = S .. "/ok", [k] = v })
      ok(msg:find("got " .. (v ~= v and "nan" or v == math.huge and "inf" or v == -math.huge and "-inf" or ""), 1, true), msg)
    end
  end
  eq(assert(rd.http.request { url = S .. "/ok", timeout = 1e9 }).status, 200) -- the top of the range
end)

local count = H.hits -- the test server's requests with ?key=key

test("hostile-http-8 max_body per source: a remote client's oversized answer is too_large, not retried", function()
  local remote = require "redrive.remote"
  local key = "maxbody-" .. math.random(1 << 30)
  local c = assert(remote.client(rd, { kind = "t", base_url = S, max_body = 1000, retries = 3 }))
  check_err("too_large", "^t: GET /big/1001: .*larger than max_body %(1000 bytes%)", c.request, c,
    { path = "/big/1001", query = { key = key } })
  eq(count(key), 1, "attempts")
  eq(#assert(c:request { path = "/big/1000" }).body, 1000)
  -- and through rd.connect (a remote kind passes it to its client)
  local src = assert(rd.connect { kind = "n8n", base_url = S .. "/api/v1", token = "x", max_body = 1000 })
  eq(src._client.stats.requests, 0)
  check_err("invalid", "^n8n: option 'max_body' must be a whole number of bytes", rd.connect,
    { kind = "n8n", base_url = S .. "/api/v1", token = "x", max_body = 0 / 0 })
end)

-- A TLS server with a self-signed certificate (openssl s_server), or nil, why.
local function tls_server()
  if not os.execute("command -v openssl >/dev/null 2>&1") then return nil, "openssl is not installed" end
  local dir = H.tmpname("-tls")
  local made = os.execute(string.format("mkdir -p %q && openssl req -x509 -newkey ec -pkeyopt " ..
    "ec_paramgen_curve:prime256v1 -nodes -keyout %q/k.pem -out %q/c.pem -subj /CN=localhost -days 1 " ..
    ">/dev/null 2>&1", dir, dir, dir))
  if not made then return nil, "openssl cannot make a certificate" end
  local p = io.popen(string.format("sh -c 'echo $$; exec openssl s_server -accept 127.0.0.1:0 " ..
    "-cert %q/c.pem -key %q/k.pem -www 2>&1'", dir, dir))
  local pid, port = p:read("l"), nil
  for line in p:lines() do -- wait for it to listen: it prints the port
    port = line:match("^ACCEPT 127%.0%.0%.1:(%d+)")
    if port then break end
  end
  local function stop() os.execute("kill " .. pid .. " 2>/dev/null"); p:close() end
  if not port then stop(); return nil, "openssl s_server did not start" end
  return { url = "https://127.0.0.1:" .. port, stop = stop }
end

local tls, why = tls_server()
if not tls then
  skip("hostile-http-9 a TLS verification failure is never retried", why)
else
  test("hostile-http-9 a TLS verification failure is final: tls at once, never retried", function()
    check_err("tls", "^http: GET https://127%.0%.0%.1:%d+/", rd.http.request, { url = tls.url .. "/" })
    eq(assert(rd.http.request { url = tls.url .. "/", verify = false }).status, 200)
    -- the n8n source (and every remote kind: one retry policy, remote.lua)
    local src = assert(rd.connect { kind = "n8n", base_url = tls.url .. "/api/v1", token = "t0ken-abc",
      retries = 4, backoff = { base = 0.01 } })
    local r, msg, code = src:execution("1")
    eq(r, nil); eq(code, "tls")
    eq(src._client.stats.requests, 1, "attempts")
    eq(src._client.stats.retries, 0, "retries")
    ok(not msg:find("gave up"), msg)
    ok(not msg:find("t0ken"), msg)
  end)
  tls.stop()
end

H.done()

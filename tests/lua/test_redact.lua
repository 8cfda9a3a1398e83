-- The one redactor seen from Lua: credentials are registered by sending
-- them (rd.http.request, rd.connect) and scrubbed from unrelated messages
-- afterwards; the local engine stores what an echoing server sent back
-- without them (execution error, incomplete-execution reason, run data).
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"
local pretty = require "redrive.pretty"
local S = H.server

local n = 0
local function secret(tag) -- unique, long enough to be registered
  n = n + 1
  return string.format("%s-%d-%08x-Zq9", tag, n, math.random(0, 0x7fffffff))
end

local function lacks(s, tok, what)
  if tostring(s):find(tok, 1, true) then
    error(string.format("%s holds the token: %s", what, tostring(s)), 2)
  end
end

test("redact-lua-1.1 a credential sent by rd.http.request is scrubbed from unrelated messages", function()
  local bearer, pass, user_pw, q, hdr, plain = secret("bearer"), secret("pass"), secret("userinfo"),
    secret("query"), secret("xauthkey"), secret("trace")
  local function msg(t) return "the remote said: " .. t .. " is not valid" end
  for _, t in ipairs { bearer, pass, user_pw, q, hdr } do
    eq(core.redact(msg(t)), msg(t), "not registered before it is sent")
  end
  local host = S:gsub("^http://", "")
  assert(rd.http.request {
    url = "http://u:" .. user_pw .. "@" .. host .. "/ok", query = { access_token = q },
    headers = { Authorization = "Bearer " .. bearer, ["X-Auth-Key"] = hdr, ["X-Trace"] = plain },
    user = "bob", password = pass,
  })
  for _, t in ipairs { bearer, pass, user_pw, q, hdr } do
    eq(core.redact(msg(t)), "the remote said: <redacted> is not valid")
    eq(pretty.redact(msg(t)), "the remote said: <redacted> is not valid", "pretty.redact is the C one")
  end
  eq(core.redact(msg(plain)), msg(plain), "a header that is no credential is not registered")
end)

test("redact-lua-1.2 a remote source's token is registered when it connects", function()
  local tok = secret("n8n")
  eq(core.redact("key " .. tok), "key " .. tok)
  local src = assert(rd.connect { kind = "n8n", base_url = "http://127.0.0.1:1/api/v1", token = tok })
  ok(src)
  eq(core.redact("key " .. tok), "key <redacted>")
end)

test("redact-lua-1.3 bad arguments raise", function()
  raises("bad argument #1 to '[%w.]*redact' %(string expected, got nil%)", core.redact, nil)
  raises("bad argument #1 to '[%w.]*redact_add' %(string expected, got table%)", core.redact_add, {})
end)

-- A scenario whose HTTP module sends one credential (a header, a form
-- field or a query value) to an endpoint that answers 500 with the request
-- echoed back as text; the module keeps the first 200 bytes of that answer
-- in its error, so the request is kept short enough for them to hold it.
local function echo_blueprint(mapper)
  mapper.method, mapper.gzip = "post", false
  mapper.url = S .. "/echo-raw/500" .. (mapper.url or "")
  return { name = "echo", flow = { { id = 1, module = "http:ActionSendData", mapper = mapper } } }
end

local ECHOED = {
  function(t) return { headers = { { name = "Authorization", value = "Bearer " .. t } } } end,
  function(t) return { headers = { { name = "X-Auth-Key", value = t } } } end,
  function(t) return { headers = { { name = "Ocp-Apim-Subscription-Key", value = t } } } end,
  function(t) return { bodyType = "x-www-form-urlencoded", data = { { name = "client_secret", value = t } } } end,
  function(t) return { url = "?pwd=" .. t } end,
}

test("redact-lua-2.1 an echoed request leaves no credential in the execution, the item or the run data", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  for i, make in ipairs(ECHOED) do
    local tok = secret("echo" .. i)
    local sc = assert(src:scenario_create { name = "echo" .. i, blueprint = echo_blueprint(make(tok)) })
    local e = assert(src:run(sc.id))
    local what = "case " .. i
    eq(e.status, "error", what)
    match(e.error.message, "^HTTP 500 from http://127%.0%.0%.1:%d+/echo%-raw/500: POST /echo%-raw/500", what)
    match(e.error.message, "<redacted>", what) -- the echo reached the message, scrubbed
    local stored = assert(src:execution(e.id))
    local item = assert(src:incomplete_item(e.dlq_id))
    lacks(e.error.message, tok, "the returned error, " .. what)
    lacks(rd.json.encode(stored.error), tok, "the stored error, " .. what)
    lacks(item.reason, tok, "the item's reason, " .. what)
    lacks(rd.json.encode(stored:run_data()), tok, "the run data, " .. what)
  end
end)

H.done()

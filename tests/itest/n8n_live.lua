-- The live n8n of `make itest` (tests/itest/run starts it): its setup through
-- n8n's own REST endpoints, as its UI does, and helpers the itest cases share.
--
--   local L = require "n8n_live"
--   L.setup() -> {api, keys = {exec, read, admin}, workflow}
--   L.trigger(url) -> execution id (a run of the test workflow that calls url)
--   L.finished(id) -> the raw execution once n8n has finished it
--   L.hits(key) -> how many requests the loopback server saw with ?key=key
--   L.record(name, body) / L.check_fixtures(): the real answers as fixtures
local H = require "harness"
local rd = require "redrive"

local L = {
  url = assert(os.getenv("N8N_URL"), "N8N_URL: run through tests/itest/run"),
  server = assert(os.getenv("RD_TEST_SERVER"), "RD_TEST_SERVER"),
  ctl = os.getenv("RD_ITEST_CTL"), dir = os.getenv("RD_ITEST_DIR"),
  version = os.getenv("RD_ITEST_N8N_VERSION") or "2.41.1",
}
L.api = L.url .. "/api/v1"
L.fixtures = H.root .. "/tests/fixtures/n8n-" .. L.version

local OWNER = { email = "owner@example.test", firstName = "Re", lastName = "Drive", password = "Itest-passw0rd-42" }
-- the browser-id header binds n8n's session cookie; any fixed value will do
local BROWSER = "redrive-itest"

local function rest(method, path, body, cookie)
  local res, err, code = rd.http.request { method = method, url = L.url .. "/rest" .. path, json = body,
    headers = { ["browser-id"] = BROWSER, Cookie = cookie }, timeout = 60 }
  assert(res, string.format("n8n REST %s %s: %s (%s)", method, path, tostring(err), tostring(code)))
  if res.status >= 300 then error(string.format("n8n REST %s %s: HTTP %d %s", method, path, res.status, res.body), 2) end
  return res:json().data, res
end

-- raw(method, path, body, key) -> res: a public API call as is (fixtures)
function L.raw(method, path, body, key)
  local res, err, code = rd.http.request { method = method, url = L.api .. path, json = body,
    headers = { ["X-N8N-API-KEY"] = key or L.keys.admin }, timeout = 120 }
  assert(res, string.format("n8n API %s %s: %s (%s)", method, path, tostring(err), tostring(code)))
  return res
end

local function api_json(method, path, body, key)
  local res = L.raw(method, path, body, key)
  if res.status >= 300 then error(string.format("n8n API %s %s: HTTP %d %s", method, path, res.status, res.body), 2) end
  return res:json()
end
L.api_json = api_json

local EXEC_SCOPES = { "execution:list", "execution:read", "execution:retry", "execution:delete" }

-- workflow(name, path): webhook (POST /webhook/<path>, answers at once) ->
-- HTTP Request to the url in the posted body. Saved with its execution data.
local function workflow(name, path)
  return {
    name = name,
    nodes = {
      { id = "0f1e7a10-0000-4000-8000-000000000001", name = "Webhook", type = "n8n-nodes-base.webhook",
        typeVersion = 2, position = { 0, 0 }, webhookId = "0f1e7a10-0000-4000-8000-0000000000" .. path:sub(-2),
        parameters = { httpMethod = "POST", path = path, responseMode = "onReceived", options = rd.json.object {} } },
      { id = "0f1e7a10-0000-4000-8000-000000000002", name = "HTTP Request", type = "n8n-nodes-base.httpRequest",
        typeVersion = 4.2, position = { 220, 0 },
        parameters = { url = "={{ $json.body.url }}", options = rd.json.object {} } },
    },
    connections = { Webhook = { main = { { { node = "HTTP Request", type = "main", index = 0 } } } } },
    settings = { saveDataErrorExecution = "all", saveDataSuccessExecution = "all", executionOrder = "v1" },
  }
end

-- setup(): owner, API keys, the published test workflows (once per process)
function L.setup()
  if L.keys then return L end
  local _, res = rest("POST", "/owner/setup", OWNER)
  local cookie = tostring(res.headers["set-cookie"] or ""):match("(n8n%-auth=[^;]+)")
  assert(cookie, "owner setup: no n8n-auth cookie")
  local function key(label, scopes)
    local k = rest("POST", "/api-keys", { label = label, scopes = scopes, expiresAt = rd.json.null }, cookie)
    return assert(k.rawApiKey, "api key " .. label)
  end
  L.keys = {
    exec = key("redrive itest", EXEC_SCOPES),
    read = key("redrive itest read-only", { "execution:list", "execution:read" }),
    admin = key("redrive itest setup", { "workflow:create", "workflow:read", "workflow:activate", "execution:list",
      "execution:read", "execution:retry", "execution:delete", "execution:stop" }),
  }
  L.workflows = {}
  for _, w in ipairs { { "main", "itest-http-01" }, { "chain", "itest-http-02" }, { "other", "itest-http-03" },
    { "examples", "itest-http-04" } } do
    local wf = api_json("POST", "/workflows", workflow("redrive itest " .. w[1], w[2]))
    api_json("POST", "/workflows/" .. wf.id .. "/publish", rd.json.object {})
    L.workflows[w[1]] = { id = tostring(wf.id), path = w[2], name = wf.name }
  end
  return L
end

-- src(extra) -> the n8n source on the live n8n (the execution-scoped key)
function L.src(extra)
  local o = { kind = "n8n", base_url = L.api, token = L.keys.exec, backoff = { base = 0.05, max = 0.5 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(rd.connect(o))
end

-- key(name): a loopback-server key unique to this run
function L.key(name) return string.format("%s-%d-%d", name, os.time(), math.random(1 << 30)) end

function L.hits(key)
  local res = assert(rd.http.request { url = L.server .. "/count?key=" .. key })
  return res:json().count
end

-- until_true(what, fn, timeout): polls fn (an API read) until it returns a
-- value; fails the test naming `what` after timeout seconds.
function L.until_true(what, fn, timeout)
  local deadline = rd.now() + (timeout or 60)
  local delay = 0.05
  while true do
    local v = fn()
    if v then return v end
    if rd.now() > deadline then error("itest: timed out waiting for " .. what, 2) end
    rd.sleep(delay)
    delay = math.min(delay * 1.5, 0.5)
  end
end

-- newest(wf) -> the highest execution id of the workflow, running ones too
local function newest(wf)
  local best = 0
  for _, st in ipairs { "", "&status=running", "&status=new" } do
    local page = api_json("GET", "/executions?limit=1&workflowId=" .. wf .. st)
    for _, e in ipairs(page.data) do best = math.max(best, tonumber(e.id)) end
  end
  return best
end
L.newest = newest

-- trigger(url, which) -> id of the execution the webhook started
function L.trigger(url, which)
  local wf = L.workflows[which or "main"]
  local before = newest(wf.id)
  local res = assert(rd.http.request { method = "POST", url = L.url .. "/webhook/" .. wf.path, json = { url = url } })
  assert(res.status == 200, "webhook: HTTP " .. res.status .. " " .. res.body)
  return tostring(L.until_true("the execution of " .. url, function()
    local n = newest(wf.id)
    return n > before and n
  end))
end

-- finished(id) -> the raw execution once it is no longer new/running
function L.finished(id, timeout)
  return L.until_true("execution " .. id .. " to finish", function()
    local e = api_json("GET", "/executions/" .. id)
    return e.status ~= "running" and e.status ~= "new" and e
  end, timeout)
end

-- A redrive process of its own (another cron job): runs the Lua chunk with
-- N8N_API and N8N_KEY set, returns its stdout and exit status.
function L.process(chunk)
  local f = H.tmpname(".lua")
  local fh = assert(io.open(f, "w"))
  fh:write(chunk)
  fh:close()
  local p = assert(io.popen(string.format("N8N_API=%q N8N_KEY=%q %q %q 2>&1", L.api, L.keys.exec,
    os.getenv("REDRIVE"), f)))
  local out = p:read("a")
  local _, _, st = p:close()
  os.remove(f)
  return out, st
end

-- ---------------------------------------------------------------------------
-- fixtures: the real answers, scrubbed of hosts, ports and keys

local recorded = {}

local function scrub(text)
  local s = text
  s = s:gsub(L.url:gsub("%p", "%%%0"), "http://n8n.test")
  s = s:gsub(L.server:gsub("%p", "%%%0"), "http://loopback.test")
  s = s:gsub("127%.0%.0%.1:%d+", "loopback.test")
  for _, k in pairs(L.keys or {}) do s = s:gsub(k:gsub("%p", "%%%0"), "<api-key>") end
  return s
end
L.scrub = scrub

-- record(name, res): keeps {status, body} of a real answer
function L.record(name, res)
  recorded[name] = { status = res.status, body = scrub(res.body) }
end

-- shape(v) -> the keys of objects and the type of each value, recursively
-- (array elements by their first one): what a field moving would change
local function shape(v, depth)
  depth = depth or 0
  if type(v) ~= "table" then return v == rd.json.null and "null" or type(v) end
  if depth > 3 then return "table" end
  if v[1] ~= nil or next(v) == nil then return { shape(v[1], depth + 1) } end
  local out = {}
  for k, x in pairs(v) do out[k] = shape(x, depth + 1) end
  return out
end

-- check_fixtures(): writes what was recorded (into the checkout with
-- RD_ITEST_RECORD=1), and checks each committed fixture's top-level shape
-- against this run's answer: a field n8n moved fails here and offline.
function L.check_fixtures()
  local record = os.getenv("RD_ITEST_RECORD") == "1"
  local dir = record and L.fixtures or (L.dir .. "/fixtures")
  os.execute("mkdir -p '" .. dir .. "'")
  local problems = {}
  for name, r in pairs(recorded) do
    local text = rd.json.encode({ status = r.status, body = rd.json.decode(r.body) or r.body }, { pretty = true })
    local fh = assert(io.open(dir .. "/" .. name .. ".json", "w"))
    fh:write(text, "\n")
    fh:close()
    if not record then
      local cf = io.open(L.fixtures .. "/" .. name .. ".json")
      if cf then
        local committed = rd.json.decode(cf:read("a"))
        cf:close()
        local now = rd.json.decode(text)
        if committed.status ~= now.status then
          problems[#problems + 1] = string.format("%s: status %s, the fixture has %s", name, now.status, committed.status)
        elseif type(committed.body) == "table" and type(now.body) == "table" then
          local a, b = shape(committed.body), shape(now.body)
          if type(a) == "table" and type(b) == "table" and a[1] == nil then
            for k in pairs(a) do
              if b[k] == nil then problems[#problems + 1] = name .. ": field " .. k .. " is gone" end
            end
            for k in pairs(b) do
              if a[k] == nil then problems[#problems + 1] = name .. ": new field " .. k end
            end
          end
        end
      else
        problems[#problems + 1] = name .. ": no committed fixture (run RD_ITEST_RECORD=1 make itest)"
      end
    end
  end
  table.sort(problems)
  return problems
end

return L

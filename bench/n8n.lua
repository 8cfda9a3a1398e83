-- bench/n8n.lua: the peer row's n8n, made ready for a wrk run.
--
--   redrive bench/n8n.lua N8N_URL SINK_URL   (n8n started by tests/itest/n8n-ctl)
--
-- Through n8n's own REST endpoints, as its UI does: the owner account, an
-- API key, then the workflow webhook (GET) -> HTTP Request GET SINK_URL ->
-- respond with the last node's output, saving every execution (as redrive
-- records every run), published. Sends one request through it and prints
-- {url} (the webhook's URL) for wrk.
local rd = require "redrive"
local n8n, sink = arg[1], arg[2]

local function call(method, path, body, headers)
  local res, err = rd.http.request { method = method, url = n8n .. path, json = body, headers = headers,
    timeout = 120 }
  assert(res, method .. " " .. path .. ": " .. tostring(err))
  assert(res.status < 300, method .. " " .. path .. ": HTTP " .. res.status .. " " .. res.body)
  return res
end

local browser = { ["browser-id"] = "redrive-bench" } -- binds n8n's session cookie
local owner = { email = "owner@example.test", firstName = "Re", lastName = "Drive", password = "Bench-passw0rd-42" }
local res = call("POST", "/rest/owner/setup", owner, browser)
browser.Cookie = assert(tostring(res.headers["set-cookie"]):match("(n8n%-auth=[^;]+)"), "no n8n-auth cookie")
local key = call("POST", "/rest/api-keys", { label = "redrive bench", expiresAt = rd.json.null,
  scopes = { "workflow:create", "workflow:read", "workflow:activate" } }, browser):json().data.rawApiKey
local api = { ["X-N8N-API-KEY"] = key }
local wf = call("POST", "/api/v1/workflows", {
  name = "redrive bench peer",
  nodes = {
    { id = "5b1e7a10-0000-4000-8000-000000000001", name = "Webhook", type = "n8n-nodes-base.webhook",
      typeVersion = 2, position = { 0, 0 }, webhookId = "5b1e7a10-0000-4000-8000-000000000011",
      parameters = { httpMethod = "GET", path = "redrive-bench", responseMode = "lastNode",
                     options = rd.json.object {} } },
    { id = "5b1e7a10-0000-4000-8000-000000000002", name = "HTTP Request", type = "n8n-nodes-base.httpRequest",
      typeVersion = 4.2, position = { 220, 0 }, parameters = { url = sink, options = rd.json.object {} } },
  },
  connections = { Webhook = { main = { { { node = "HTTP Request", type = "main", index = 0 } } } } },
  settings = { saveDataErrorExecution = "all", saveDataSuccessExecution = "all", executionOrder = "v1" },
}, api):json()
call("POST", "/api/v1/workflows/" .. wf.id .. "/publish", rd.json.object {}, api)
-- the webhook is registered a moment after the publish: ask until it answers
local url, first = n8n .. "/webhook/redrive-bench", nil
for _ = 1, 150 do
  first = assert(rd.http.request { url = url, timeout = 60 })
  if first.status ~= 404 then break end
  rd.sleep(0.2)
end
assert(first.status == 200 and first:json().ok == true, "the workflow answers the sink's body: " .. first.body)
print(rd.json.encode { url = url })

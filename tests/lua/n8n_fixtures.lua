-- The answers a real n8n gave (recorded by `make itest` into
-- tests/fixtures/n8n-2.41.1/), served as they were by a test transport, so
-- a field that moves in the real API breaks the tests that use them
-- (test_source_n8n.lua, test_fingerprint.lua).
--   local N = require "n8n_fixtures"
--   N.fixture("execution-error") -> {status, body}
--   N.real_n8n() -> transport: API key "bad" gets the 401, "read-only" a 403 on retry
local H = require "harness"
local rd = require "redrive"

local N = {}
local FIX = H.root .. "/tests/fixtures/n8n-2.41.1/"

function N.fixture(name)
  local f = assert(io.open(FIX .. name .. ".json"), "fixture " .. name)
  local v = rd.json.decode(f:read("a"))
  f:close()
  return v
end

function N.real_n8n()
  local fixture = N.fixture
  local by_id = {}
  for _, n in ipairs { "execution-error", "execution-success", "execution-crashed", "execution-retry-success" } do
    local fx = fixture(n)
    by_id[tostring(fx.body.id)] = fx
  end
  local reply = function(fx)
    return { status = fx.status, headers = {}, body = rd.json.encode(fx.body),
      json = function(self) return rd.json.decode(self.body) end }
  end
  return function(req)
    local path = req.url:match("^https?://[^/]+(/.*)$"):gsub("^/api/v1", "")
    local key = req.headers["X-N8N-API-KEY"]
    if key == "bad" then return reply(fixture("error-401")) end
    local q = req.query or {}
    if req.method == "GET" and path == "/executions" then
      if q.status == "running" or q.status == "crashed" then return reply { status = 200, body = { data = {}, nextCursor = rd.json.null } } end
      return reply(fixture(q.includeData == "true" and "list-page-with-data" or "list-page"))
    end
    local id, rest = path:match("^/executions/([^/]+)(.*)$")
    if req.method == "POST" and rest == "/retry" then
      if key == "read-only" then return reply(fixture("error-403")) end
      return reply(fixture("retry-response"))
    end
    if by_id[id] and rest == "" then return reply(by_id[id]) end
    return reply(fixture("error-404"))
  end
end

return N

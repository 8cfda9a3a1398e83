-- examples/triage.lua runs unchanged against the local source, a Make mock
-- and an n8n mock: only the profile (REDRIVE_PROFILE) changes.
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local S = H.server
local MAKE, MAKE_WHY = H.mock("make")
local N8N, N8N_WHY = H.mock("n8n")
local REDRIVE = os.getenv("REDRIVE") or (H.root .. "/redrive")
local TOKEN = "triage-secret-token-777"

local db = H.tmpname(".db")
local cfg = H.tmpname(".lua")
do
  local f = assert(io.open(cfg, "w"))
  f:write(string.format([[
return { profiles = {
  ["local"] = { kind = "local", db = %q },
  make = { kind = "make", base_url = %q, token = %q, scenario = 112233 },
  n8n = { kind = "n8n", base_url = %q, token = %q },
} }
]], db, MAKE or "http://127.0.0.1:9", TOKEN, N8N or "http://127.0.0.1:9", TOKEN))
  f:close()
end

-- how the profile is chosen: "arg" (redrive examples/triage.lua PROFILE PATTERN),
-- "option" (redrive --profile PROFILE ...) or "env" (REDRIVE_PROFILE)
local function triage(profile, pattern, dry, how)
  how = how or "arg"
  -- REDRIVE_DB would take precedence over the profile's db: unset it
  local cmd = string.format("cd %q && REDRIVE_DB= REDRIVE_CONFIG=%q %s %q %s %s examples/triage.lua %s %q 2>&1",
    H.root, cfg, how == "env" and ("REDRIVE_PROFILE=" .. profile) or "", REDRIVE, dry and "--dry-run" or "",
    how == "option" and ("--profile " .. profile) or "", how == "arg" and profile or "", pattern)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok_, _, rc = p:close()
  return out, ok_ and 0 or rc
end

test("local: grouped by reason, matching ones retried", function()
  if not S then return skip("local triage", "no test server") end
  local src = assert(rd.connect { kind = "local", db = db })
  local function sc(name, url)
    return assert(src:scenario_create { name = name, blueprint = { name = name, flow = {
      { id = 1, module = "http:ActionSendData", version = 3, mapper = { url = url, method = "get" } } } } })
  end
  local a = sc("gone", S .. "/status/410")
  local b = sc("broken", S .. "/status/500")
  for _ = 1, 3 do src:run(a.id) end
  for _ = 1, 2 do src:run(b.id) end
  src:close()
  local out, rc = triage("local", "HTTP 500", false, "env")
  eq(rc, 0, out)
  match(out, "source: local %(local%)")
  match(out, "5 incomplete execution%(s%) in 2 group%(s%)")
  match(out, "\n%s+3%s+[^\n]*410")
  match(out, "retried 2 matching \"HTTP 500\": 0 succeeded, 2 failed, 0 skipped")
  ok(not out:find(TOKEN, 1, true))
end)

H.skip_rest(not MAKE and MAKE_WHY or nil)

test("make mock: same script, grouped and retried", function()
  local out, rc = triage("make", "^ConnectionError")
  eq(rc, 0, out)
  match(out, "source: make %(make%)")
  match(out, "2 incomplete execution%(s%) in 2 group%(s%)")
  match(out, "DataError")
  match(out, "retried 1 matching \"%^ConnectionError\": 0 succeeded, 0 failed, 0 skipped, 1 queued") -- Make runs it later
  ok(not out:find(TOKEN, 1, true))
  out, rc = triage("make", ".", true)
  eq(rc, 0, out)
  match(out, "dry run: would retry 2 of 2 matching \"%.\", 0 skipped")
  -- no pattern: the groups are listed, nothing is retried
  local p = assert(io.popen(string.format("cd %q && REDRIVE_CONFIG=%q %q examples/triage.lua make 2>&1", H.root, cfg, REDRIVE)))
  out = p:read("a"); p:close()
  match(out, "2 incomplete execution%(s%) in 2 group%(s%)"); match(out, "nothing retried")
end)

H.skip_rest(not N8N and N8N_WHY or nil)
test("n8n mock: same script, grouped and retried", function()
  local out, rc = triage("n8n", "ETIMEDOUT", false, "option")
  eq(rc, 0, out)
  match(out, "source: n8n %(n8n%)")
  match(out, "1 incomplete execution%(s%) in 1 group%(s%)")
  match(out, "ETIMEDOUT: Connection timeout")
  -- the mock's execution 9877 reads as failed: the retry is accepted, and
  -- the mock answers with it still running: running, not succeeded by guess
  match(out, "retried 1 matching \"ETIMEDOUT\": 0 succeeded, 0 failed, 0 skipped, 1 running")
  ok(not out:find(TOKEN, 1, true))
end)

H.done()

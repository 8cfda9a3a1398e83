-- Contract tests of the `kaizen` source against the Prism mock of
-- shared/contracts/kaizen-executions.openapi.json (RD_MOCK_KAIZEN).
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local MOCK, MOCK_WHY = H.mock("kaizen")
local ORIG = "3f6b2a9c-8d1e-4f70-b5a4-c2e9d7f10a63"

test("connect and unsupported calls", function()
  local s = assert(rd.connect { kind = "kaizen" })
  eq(s.base_url, "https://api.kaizenautomation.com")
  for _, m in ipairs { "executions", "incomplete", "health", "delete_incomplete" } do
    check_err("unsupported", "POST /executions/retry", s[m], s, {})
  end
  check_err("unsupported", "POST /executions/retry", s.execution, s, ORIG)
  check_err("unsupported", "ids", s.retry, s, { all = true })
  check_err("unsupported", "cannot be asked how an execution ended", s.retry, s, { ids = { ORIG }, wait = true })
end)

if not MOCK then H.skip_rest(MOCK_WHY) end

local function mock(prefer)
  return assert(rd.connect { kind = "kaizen", base_url = MOCK, headers = prefer and { Prefer = prefer } or nil,
    backoff = { base = 0.01, max = 0.05 } })
end

test("retry: fields mapped, chain via parent_id, last attempt refused", function()
  local src = mock()
  local e = assert(src:retry_execution(ORIG))
  eq(e.id, "a71c4e02-5b9d-4c3f-8e16-0d2f7b9a4c85")
  eq(e.attempts, 2); eq(e.total_attempts, 3); eq(e.is_last_attempt, false)
  eq(e.parent_id, ORIG); eq(e.retry_of, ORIG); eq(e.status, "running")
  eq(e.scenario, "5e0d9b7a-3c21-4f8e-a6b4-91d2c7e3f058"); eq(e.scenario_name, "Download monthly supplier invoices")
  eq(e.started_at, 1736937600)
  eq(getmetatable(e).__name, "redrive.Execution")
  local chain = e:chain()
  eq(#chain, 1); eq(chain.missing[1].id, ORIG)
  check_err("conflict", "still running", e.retry, e)
  local last = assert(mock("example=lastAttempt"):retry_execution(ORIG))
  eq(last.attempts, 3); eq(last.is_last_attempt, true)
  last.status = "error"
  check_err("conflict", "last attempt", last.retry, last)
  ok(last:retry { safe = false }, "forced")
  check_err("unsupported", "liveViewUrl", e.wait, e, {})
end)

test("bulk retry ids; 422 for a missing id; dry run", function()
  local src = mock()
  local streamed = {}
  local s = assert(src:retry { ids = { ORIG, "b", "c" }, except = { "c" }, progress = false,
    on_result = function(r) streamed[#streamed + 1] = r end })
  -- Kaizen answers with the new execution, still running: `running`, not
  -- succeeded by guess, and its id kept (Kaizen cannot list it later)
  eq(s.total, 2); eq(s.running, 2); eq(s.succeeded, 0); eq(s.failed, 0)
  eq(#s.results, 2); eq(#streamed, 2)
  for _, r in ipairs(s.results) do
    eq(r.status, "running"); eq(r.execution, "a71c4e02-5b9d-4c3f-8e16-0d2f7b9a4c85")
  end
  rd.dry_run(true)
  local d = src:retry_execution(ORIG)
  local ds = src:retry { ids = { ORIG }, progress = false }
  rd.dry_run(false)
  eq(d.dry_run, true); eq(ds.would_retry, 1); eq(ds.succeeded, 0)
  local _, msg, code = src._client:json { method = "POST", path = "/executions/retry", json = rd.json.object {} }
  eq(code, "invalid"); match(msg, "HTTP 422")
end)

H.done()

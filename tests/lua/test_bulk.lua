-- Bulk summaries (lua/redrive/source/common.lua): one builder for every
-- source -- counts, results and errors bounded in memory, and an interrupted
-- bulk call that returns its summary and tells the truth about what it did
-- not attempt -- against the loopback test server.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local C = require "redrive.source.common"
local S = H.server

local count = H.hits -- the test server's requests with ?key=key

-- A bulk call of the remote kind: act sends one request per target (a slow
-- endpoint that counts the key) through C.bulk.
local function remote_bulk(targets, prefix, opts)
  return C.bulk(rd, opts, {
    src = { _rd = rd }, targets = targets, verb = "retrying",
    act = function(id)
      local res, err, code = rd.http.request { url = S .. "/delay/20?key=" .. prefix .. "-" .. id }
      if not res then return nil, err, code end
      return { status = "succeeded", execution = "x-" .. id }
    end,
  })
end

local function ids_of(n)
  local ids = {}
  for i = 1, n do ids[i] = tostring(i) end
  return ids
end

test("bulk-1.1 a summary counts each item once under its status; total is the sum", function()
  local s = C.summary()
  C.outcome(s, "a", "succeeded", { execution = "e1" })
  C.outcome(s, "b", "failed", { message = "boom", code = "http" })
  C.outcome(s, "c", "skipped", { message = "resolved already" })
  C.outcome(s, "d", "queued")
  C.not_attempted(s, 3)
  eq(s.total, 7)
  eq(s.succeeded + s.failed + s.skipped + s.queued + s.not_attempted, s.total)
  eq(s.results, { { id = "a", status = "succeeded", execution = "e1" }, { id = "b", status = "failed" },
                  { id = "c", status = "skipped" }, { id = "d", status = "queued" } })
  eq(s.errors, { { id = "b", message = "boom", code = "http" },
                 { id = "c", message = "resolved already", skipped = true } })
end)

test("bulk-1.2 results and errors keep the first 1000 in memory, and count the rest", function()
  local s = remote_bulk(ids_of(1005), "many-" .. math.random(1 << 30), { concurrency = 64, progress = false })
  eq(s.total, 1005); eq(s.succeeded, 1005)
  eq(#s.results, C.MAX_RESULTS); eq(C.MAX_RESULTS, 1000); eq(s.results_truncated, 5)
  eq(s.results[1].execution, "x-" .. s.results[1].id)
  local f = C.summary()
  for i = 1, 1002 do C.outcome(f, i, "failed", { message = "no" }) end
  eq(#f.errors, 1000); eq(f.errors_truncated, 2)
end)

test("bulk-1.3 on_result sees every result as it is recorded, past the first 1000 kept too", function()
  local seen = {}
  local s = C.summary { on_result = function(r) seen[#seen + 1] = r end }
  for i = 1, 1002 do C.outcome(s, tostring(i), i % 2 == 0 and "failed" or "succeeded", {
    execution = "e" .. i, message = i % 2 == 0 and "boom" or nil, code = i % 2 == 0 and "http" or nil }) end
  eq(#s.results, 1000); eq(s.results_truncated, 2)
  eq(#seen, 1002)
  eq(seen[1002], { id = "1002", status = "failed", execution = "e1002", message = "boom", code = "http" })
  eq(seen[1001], { id = "1001", status = "succeeded", execution = "e1001" })
  raises("on_result must be a function", C.summary, { on_result = 42 })
  -- through C.bulk (every source's bulk loop): the same entries as results
  local streamed = {}
  local b = remote_bulk(ids_of(5), "stream-" .. math.random(1 << 30),
    { concurrency = 2, progress = false, on_result = function(r) streamed[r.id] = r end })
  eq(b.succeeded, 5)
  for _, r in ipairs(b.results) do eq(streamed[r.id].execution, r.execution) end
end)

test("bulk-1.4 an on_result that raises is dropped, said once, and the bulk call goes on", function()
  local calls = 0
  local s = remote_bulk(ids_of(4), "raise-" .. math.random(1 << 30), { concurrency = 1, progress = false,
    on_result = function() calls = calls + 1; error("printer broke") end })
  eq(calls, 1)
  eq(s.succeeded, 4); eq(s.failed, 0)
  match(s.on_result_error, "printer broke")
end)

test("bulk-2.1 an interrupted remote bulk call returns its summary; what it never reached was never sent", function()
  local prefix = "cut-" .. math.random(1 << 30)
  local t
  t = rd.spawn(function()
    return remote_bulk(ids_of(30), prefix, { concurrency = 3, progress = function(s)
      if s.succeeded == 4 then t:cancel() end
    end })
  end)
  local s = assert(t:wait())
  eq(s.interrupted, true)
  eq(s.total, 30)
  eq(s.succeeded + s.failed + s.skipped + s.not_attempted, s.total)
  ok(s.succeeded >= 4 and s.not_attempted > 0, "some done, the rest not attempted", s)
  eq(s.failed, 0)
  -- every id the server saw is in the results; the others were never sent
  local listed = {}
  for _, r in ipairs(s.results) do listed[r.id] = r.status end
  local hit = 0
  for _, id in ipairs(ids_of(30)) do
    local n = count(prefix .. "-" .. id)
    if n > 0 then
      hit = hit + 1
      ok(listed[id] ~= nil, "an item the server saw is listed", id)
    end
  end
  ok(hit <= s.succeeded + 3, "no more requests than done plus those in flight", hit)
end)

test("bulk-2.2 an interrupted bulk call over an iterator stops pulling from it", function()
  local prefix = "iter-" .. math.random(1 << 30)
  local pulled, i = 0, 0
  local function targets()
    i = i + 1
    if i > 50 then return nil end
    pulled = pulled + 1
    return tostring(i)
  end
  local t
  t = rd.spawn(function()
    return remote_bulk(targets, prefix, { concurrency = 2, progress = function(s)
      if s.succeeded == 3 then t:cancel() end
    end })
  end)
  local s = assert(t:wait())
  eq(s.interrupted, true)
  eq(s.succeeded + s.failed + s.skipped + s.not_attempted, s.total)
  eq(s.total, pulled) -- what it pulled, each once; the iterator was left where it was
  ok(pulled < 50, "stopped pulling", pulled)
  eq(s.more, true) -- the rest of a listing cannot be counted: it says so
end)

H.done()

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

H.done()

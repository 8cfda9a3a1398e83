-- bench/http.lua: rd.http.request from Lua, CONCURRENCY tasks at once.
--
--   redrive bench/http.lua URL REQUESTS CONCURRENCY
--
-- CONCURRENCY tasks each send GET URL in a loop (the same keep-alive
-- connections curl keeps in its pool) until REQUESTS have been answered.
-- Prints one JSON line: {requests, seconds, rps, errors, concurrency}.
local rd = require "redrive"
local url, n, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

-- warm-up: load libcurl, open the connections
local warm = {}
for w = 1, conc do warm[w] = rd.spawn(function() assert(rd.http.request { url = url }) end) end
for _, t in ipairs(warm) do t:wait() end

local left, errors = n, 0
local function worker()
  while left > 0 do
    left = left - 1
    local res = rd.http.request { url = url }
    if not res or res.status ~= 200 then errors = errors + 1 end
  end
end
local tasks = {}
local t0 = rd.now()
for w = 1, conc do tasks[w] = rd.spawn(worker) end
for _, t in ipairs(tasks) do t:wait() end
local secs = rd.now() - t0
print(rd.json.encode { requests = n, seconds = secs, rps = n / secs, errors = errors, concurrency = conc })

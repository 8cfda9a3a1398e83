-- One of several processes opening the same brand-new store at the same
-- moment (tests/sh/test_first_open.sh):
--   redrive first_open.lua FIFO READY MODE PATH N
-- Opens FIFO for reading (the test holds its write end, so this does not
-- wait), says so in READY, then blocks reading FIFO until the test closes
-- its end: every process is released by that one event. Then, by MODE:
--   store   rd.connect{kind = "local", db = PATH} and one scenario created
--   ledger  PATH as a ledger (lua/redrive/ledger.lua) and one lease taken
-- and prints "ok N", or "error N: message (code)" and exits 1.
local rd = require "redrive"
local fifo, ready, mode, path, n = arg[1], arg[2], arg[3], arg[4], arg[5]

local f = assert(io.open(fifo, "r"))
local r = assert(io.open(ready, "a"))
r:write(n, "\n")
r:close()
f:read("a") -- the event: the test closed its end
f:close()

local ok, err, code
if mode == "store" then
  local src
  src, err, code = rd.connect { kind = "local", db = path }
  if src then
    ok, err, code = src:scenario_create { name = "first-open-" .. n,
      blueprint = { name = "x", flow = { { id = 1, module = "http:ActionSendData", version = 3,
        mapper = { url = "http://127.0.0.1:9/", method = "get" } } } } }
  end
elseif mode == "ledger" then
  local L = require "redrive.ledger"
  local st
  st, err, code = L.open(rd, path):store()
  if st then
    ok, err, code = st:ledger_take { source = "first-open", item = tostring(n), action = "retry",
      owner = "first-open:" .. n, host = "h", pid = tonumber(n), ttl = 60 }
  end
else
  error("first_open.lua: MODE is store or ledger, got " .. tostring(mode))
end
if ok then
  print("ok " .. n)
else
  print(string.format("error %s: %s (%s)", n, tostring(err), tostring(code)))
  os.exit(1)
end

-- Shared by the tests of the remote machinery (test_source_remote.lua,
-- test_ratelimit.lua): a test client of lua/redrive/remote.lua pointed at the
-- loopback server, and small helpers.
local H = require "harness"
local rd = require "redrive"
local remote = require "redrive.remote"

local R = { SERVER = H.server, TOKEN = "remote-secret-token-abcdef", remote = remote }

-- client{...}: a remote client with bearer auth and fast backoff; o overrides.
function R.client(o)
  local opts = { kind = "test", base_url = R.SERVER, token = R.TOKEN,
    auth = function(t) return { Authorization = "Bearer " .. t } end,
    backoff = { base = 0.005, factor = 2, max = 0.1 } }
  for k, v in pairs(o or {}) do opts[k] = v end
  return remote.client(rd, opts)
end

function R.get_json(path)
  local res = assert(rd.http.request { url = R.SERVER .. path })
  return res:json()
end

-- key(name): a key unique to this run, for the server's per-key state.
function R.key(name) return string.format("%s-%d-%d", name, os.time(), math.random(1 << 30)) end

return R

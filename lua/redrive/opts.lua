-- Numeric options read in Lua (durations, sizes, counts: rd.connect's rate,
-- concurrency, timeout, max_body, retries..., src:retry's concurrency, the
-- http module's timeout...). The rule is the bindings' own, in C
-- (core.check_number, src/lua/lnum.c), so a value refused by
-- rd.http.request is refused everywhere: NaN, infinities, negatives, values
-- out of the kind's range, fractions where a whole number is meant.
--
--   local num = require("redrive.opts").number
--   local n, err, code = num(opts.concurrency, "concurrency", "concurrency", 16)
--
-- number(v, name, kind, dflt [, min [, max]]) -> n | nil, msg, "invalid"
--   v nil (or rd.json.null) -> dflt; a numeric string (an environment
--   variable, a CLI flag) counts as its number; kind is "timeout" (seconds
--   > 0), "seconds" (>= 0), "bytes", "count", "concurrency", "rate" or
--   "number" (>= 0);
--   min / max narrow the kind's range.
-- check(v, name, kind, dflt [, min [, max]]) -> n, or raises the message
--   (for calls whose only failure is misuse, like rd.each).
local core = require "redrive.core"
local M = {}

M.MAX_BODY = core.MAX_BODY -- default response body limit (bytes, decoded)

function M.number(v, name, kind, dflt, min, max)
  if v == nil or v == core.rd.json.null then return dflt end
  local n = tonumber(v)
  if type(n) ~= "number" then
    return nil, string.format("option '%s' must be a number, got %s", name,
      type(v) == "string" and string.format("%q", v:sub(1, 40)) or type(v)), "invalid"
  end
  return core.check_number(n, name, kind, min, max)
end

function M.check(v, name, kind, dflt, min, max)
  local n, err = M.number(v, name, kind, dflt, min, max)
  if n == nil and err then error(err, 3) end
  return n
end

return M

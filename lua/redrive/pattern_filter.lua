-- lua/redrive/pattern_filter.lua: the one home for Lua patterns that users
-- supply as filters (`reason` of src:incomplete on every source and of
-- rules, the engine's text:pattern / text:notpattern operators). A pattern
-- is checked once, up front, for everything Lua would only report when a
-- subject reaches it, and matched with rd.pattern (src/core/pattern.c): a
-- bounded matcher, because Lua's string.find runs unbounded inside C where
-- no instruction hook or signal can stop it (docs/internals.md).
--
--   F.compile(pat) -> test | nil, message, "invalid"
--       test(s) -> boolean: does the string s contain a match of pat? A match
--       that exceeds rd.pattern.steps raises an error object
--       {code = "limit", message} (tostring gives the message): inside an
--       iterator or a filter, a tripped budget is never a silent non-match.
--   F.arg(pat, fname, what [, level]) -> test, or nil when pat is nil;
--       raises "bad argument #1 to 'fname' (what: message)" for a bad pattern
--       (level as error()'s, counted from the caller of F.arg; default 1).
-- core.pattern, not rd.pattern: a script may replace rd.pattern.find, and
-- the filters must stay bounded whatever scripts do
local P = require("redrive.core").pattern

local find, check = P.find, P.check

local F = {}

function F.compile(pat)
  if type(pat) ~= "string" then return nil, "a Lua pattern string expected, got " .. type(pat), "invalid" end
  local good, msg, code = check(pat)
  if not good then return nil, msg, code end
  return function(s) return find(s, pat) ~= nil end
end

function F.arg(pat, fname, what, level)
  if pat == nil then return nil end
  local test, msg = F.compile(pat)
  if not test then
    error(string.format("bad argument #1 to '%s' (%s: %s)", fname, what, msg), (level or 1) + 2)
  end
  return test
end

return F

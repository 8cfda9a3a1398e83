-- Conformance through the Lua API (rd.blueprint): the JSON Patch community
-- suite (json-patch-tests, read from ../shared/conformance at test time),
-- RFC 7386 appendix A and RFC 6901 section 5/6 (tests/fixtures). Every
-- non-disabled case is one test: the pass count is the conformance count.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"

if type(rd.blueprint) ~= "table" then
  skip("conformance", "rd.blueprint is not built in")
  H.done()
end

local json = rd.json

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return assert(json.decode(s))
end

-- Documents and patches go in as JSON text, so nothing is lost in a Lua
-- table (top-level scalars, empty object vs array).
local function bp_of(v) return assert(rd.blueprint(json.encode(v))) end

local function patch_suite(file)
  local cases = read(H.shared .. "/conformance/json-patch-tests/" .. file)
  for i, c in ipairs(cases) do
    local name = string.format("json-patch-tests %s #%d %s", file, i, c.comment or "")
    if c.disabled then
      skip(name, "disabled in the suite")
    elseif c.patch ~= nil then
      test(name, function()
        local bp = bp_of(c.doc)
        local before = bp:copy()
        local r, msg, code = bp:apply(json.encode(c.patch))
        if c.error then
          ok(r == nil and code == "invalid", "must fail: " .. c.error)
          match(msg, "^op %d+")
          ok(bp == before, "a failed patch changes nothing")
        elseif c.expected ~= nil then
          ok(r, msg)
          ok(bp == bp_of(c.expected), "result differs: " .. bp:json())
        end
      end)
    end
  end
end

patch_suite("tests.json")
patch_suite("spec_tests.json")

local merge = read(H.root .. "/tests/fixtures/rfc7386.json")
for _, c in ipairs(merge.cases) do
  test("rfc7386 " .. c.section, function()
    local bp = bp_of(c.doc)
    ok(bp:merge(json.encode(c.patch)))
    ok(bp == bp_of(c.expected), "got " .. bp:json())
  end)
end

local ptr = read(H.root .. "/tests/fixtures/rfc6901.json")
local doc = bp_of(ptr.doc)
for _, c in ipairs(ptr.cases) do
  test("rfc6901 " .. c.section .. " " .. c.pointer, function()
    local want = c.whole and ptr.doc or c.expected
    local got = doc:get(c.pointer)
    ok(bp_of(got) == bp_of(want), "got " .. json.encode(got))
  end)
end
for _, c in ipairs(ptr.errors) do
  test("rfc6901 error " .. c.pointer, function()
    check_err(c.code, nil, doc.get, doc, c.pointer)
  end)
end

H.done()

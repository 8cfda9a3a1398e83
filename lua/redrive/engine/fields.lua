-- Mapper field shapes shared by modules: the type the registry checks when a
-- blueprint is validated (src/engine/blueprint.c) and the check of the same
-- shape at run time, when a template has produced the value.
--
--   local fields = require "redrive.engine.fields"
--   fields.NAME_VALUE_LIST                -- field type of [{name, value}]
--   fields.name_value_list(v, what) -> {{name, value}, ...} | nil, message
local rd = require("redrive.core").rd
local null = rd.json.null

local F = {}

-- [{name, value}]: Make's headers, query strings, variables.
F.NAME_VALUE_LIST = {
  type = "array",
  items = { type = "object", fields = { name = "string", value = "any" }, required = { "name" } },
}

-- A table is an array when marked so, or when it is an unmarked sequence.
local function is_array(v)
  local kind = rd.json.kind(v)
  return kind == "array" or (kind == nil and #v > 0)
end

local function typename(v)
  if v == null then return "null" end
  if type(v) == "table" then return is_array(v) and "array" or "object" end
  return type(v)
end

-- The pairs of v, a list [{name, value}] (or an object {name = value}), in
-- order; nil/null/"" is an empty list, an element whose name is empty is
-- skipped (a blank row). A value of another shape, or a name that is not
-- text, is an error naming `what` and the element (0-based, as validation
-- names it: "headers[2]").
function F.name_value_list(v, what)
  local out = {}
  if v == nil or v == null or v == "" then return out end
  if type(v) ~= "table" then
    return nil, string.format("%s must be a list of {name, value}, got %s", what, typename(v))
  end
  if #v > 0 or rd.json.kind(v) == "array" then
    for i, p in ipairs(v) do
      local name = type(p) == "table" and p.name
      if type(p) ~= "table" or is_array(p) then
        return nil, string.format("%s[%d] must be {name, value}, got %s", what, i - 1, typename(p))
      end
      if math.type(name) == "integer" then name = tostring(name) end
      if name == nil or name == null or name == "" then
        -- a blank row (Make's editor keeps them): skipped
      elseif type(name) ~= "string" then
        return nil, string.format("%s[%d].name must be a string, got %s", what, i - 1, typename(name))
      else
        out[#out + 1] = { name, p.value }
      end
    end
  else
    for k, x in pairs(v) do out[#out + 1] = { tostring(k), x } end
  end
  return out
end

return F

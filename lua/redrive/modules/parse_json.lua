-- json:ParseJSON — parse mapper.json (text) into data. The output is the
-- parsed value (an object's keys are mapped as {{N.key}}).
local rd = require("redrive.core").rd

return {
  type = "json:ParseJSON",
  fields = { json = "string", type = "any" },
  required = { "json" },
  run = function(ctx, m)
    local s = m.json
    local id = ctx.module.id
    if s == nil or s == rd.json.null then
      return nil, string.format("json:ParseJSON (module %s): json is empty", tostring(id)), "invalid"
    end
    if type(s) == "table" then return s end -- already data (e.g. {{2.data}} of a parsed response)
    if type(s) ~= "string" then
      return nil, string.format("json:ParseJSON (module %s): json must be text, got %s", tostring(id), type(s)), "invalid"
    end
    local v, err = rd.json.decode(s)
    if v == nil and err then
      return nil, string.format("json:ParseJSON (module %s): %s", tostring(id), err), "invalid"
    end
    if v == rd.json.null then v = nil end
    return v
  end,
}

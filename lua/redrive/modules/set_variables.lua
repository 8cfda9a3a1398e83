-- util:SetVariables — mapper {variables = [{name, value}]} -> output
-- {name1 = value1, ...}.
local rd = require("redrive.core").rd

return {
  type = "util:SetVariables",
  fields = { variables = "array", scope = "string" },
  required = { "variables" },
  run = function(ctx, m)
    local out = rd.json.object {}
    for i, v in ipairs(m.variables or {}) do
      if type(v) ~= "table" or type(v.name) ~= "string" or v.name == "" then
        return nil, string.format("util:SetVariables (module %s): variables[%d] needs a name", tostring(ctx.module.id), i), "invalid"
      end
      out[v.name] = v.value
    end
    return out
  end,
}

-- util:SetVariables — mapper {variables = [{name, value}]} -> output
-- {name1 = value1, ...}.
local rd = require("redrive.core").rd
local fields = require "redrive.engine.fields"

return {
  type = "util:SetVariables",
  fields = { variables = fields.NAME_VALUE_LIST, scope = "string" },
  required = { "variables" },
  run = function(ctx, m)
    local list, err = fields.name_value_list(m.variables, "variables")
    if not list then
      return nil, string.format("util:SetVariables (module %s): %s", tostring(ctx.module.id), err), "invalid"
    end
    local out = rd.json.object {}
    for _, p in ipairs(list) do out[p[1]] = p[2] end
    return out
  end,
}

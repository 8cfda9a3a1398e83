-- util:SetVariable — mapper {name, value} -> output {[name] = value}.
local rd = require("redrive.core").rd

return {
  type = "util:SetVariable",
  fields = { name = "string", value = "any", scope = "string" },
  required = { "name" },
  run = function(ctx, m)
    if type(m.name) ~= "string" or m.name == "" then
      return nil, string.format("util:SetVariable (module %s): name is empty", tostring(ctx.module.id)), "invalid"
    end
    return rd.json.object { [m.name] = m.value }
  end,
}

-- util:SetVariable2 — the name Make's current "Set variable" module exports
-- under; same behaviour as util:SetVariable (scope is ignored: a variable
-- lives for the run).
local base = require "redrive.modules.set_variable"

return {
  type = "util:SetVariable2",
  fields = base.fields,
  required = base.required,
  run = base.run,
}

-- gateway:CustomWebHook — trigger: its output is the run's input bundle.
local rd = require("redrive.core").rd

return {
  type = "gateway:CustomWebHook",
  fields = { hook = "any", maxResults = "any" },
  trigger = true,
  run = function(ctx)
    local input = ctx.run.input
    if input == nil or input == rd.json.null then return rd.json.object {} end
    return input
  end,
}

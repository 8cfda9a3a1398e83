-- builtin:BasicFeeder — iterator: runs the rest of its route once per element
-- of mapper.array. Each element's bundle is {value = element,
-- __IMTINDEX__ = i, __IMTLENGTH__ = n}, plus the element's own keys when it
-- is an object (so {{N.id}} works as in Make).
local rd = require("redrive.core").rd

return {
  type = "builtin:BasicFeeder",
  fields = { array = "any" },
  required = { "array" },
  iterator = true,
  run = function(ctx, m)
    local arr = m.array
    if arr == nil or arr == rd.json.null or arr == "" then return {} end
    if type(arr) ~= "table" then
      return nil, string.format("builtin:BasicFeeder (module %s): array must be an array, got %s", tostring(ctx.module.id), type(arr)), "invalid"
    end
    local n, out = #arr, {}
    for i = 1, n do
      local v = arr[i]
      local b = rd.json.object {}
      if type(v) == "table" and rd.json.kind(v) ~= "array" and #v == 0 then
        for k, x in pairs(v) do b[k] = x end
      end
      b.value, b.__IMTINDEX__, b.__IMTLENGTH__ = v, i, n
      out[i] = b
    end
    return out
  end,
}

-- The fulfilment webhook moved from /v1/webhook to /v2/webhook: fix the
-- URL in the blueprint snapshot of each item that failed on it, then retry
-- from the failed module.
local OLD, NEW = "/v1/webhook", "/v2/webhook"

return {
  name = "moved-endpoint",
  description = "patch the moved webhook URL, then retry",
  reason = "v1/webhook",
  every = 120,
  -- the status from the cause (`HTTP 410 from http://<host>/v1/webhook`):
  -- a cause keeps a number only where it is an HTTP status, so a port or an
  -- id with 410 in it is never taken for one
  match = function(item)
    local cause = item.cause or ""
    return cause:find("%f[%d]410%f[%D]") ~= nil or cause:find("Gone", 1, true) ~= nil
  end,
  action = function(item, ctx)
    local bp = assert(item:blueprint())
    local changed = 0
    for _, m in ipairs(bp:modules { module = "http:*" }) do
      local url = m.mapper.url
      if type(url) == "string" and url:find(OLD, 1, true) then
        m.mapper.url = url:gsub(OLD:gsub("%p", "%%%0"), NEW)
        changed = changed + 1
      end
    end
    if changed == 0 then
      ctx.log("no URL to fix")
      return
    end
    local ok, err = ctx.patch { blueprint = bp }
    if not ok then error("patch refused: " .. tostring(err)) end
    ctx.retry()
  end,
}

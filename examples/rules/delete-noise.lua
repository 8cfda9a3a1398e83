-- Known noise: the inventory sync fails when a product was deleted
-- upstream (404). Nobody will retry those; drop them after 7 days, and tell
-- the team channel how many went (ctx.notify posts JSON; the audit log
-- keeps the URL without its query string).
local DAYS = 7
local NOTIFY_URL = os.getenv("REDRIVE_NOTIFY_URL") -- e.g. a chat webhook; unset: no notification

return {
  name = "delete-noise",
  description = "delete 404 'product not found' items older than 7 days",
  reason = "404",
  every = 3600,
  limit = 1000,
  -- 404 as a status in the cause (not a port or an id that has 404 in it)
  match = function(item)
    return (item.created or 0) < rd.time() - DAYS * 86400
      and (item.cause or ""):find("%f[%d]404%f[%D]") ~= nil
      and item.reason:lower():find("not found", 1, true) ~= nil
  end,
  action = function(item, ctx)
    ctx.delete()
    if NOTIFY_URL then
      ctx.notify { url = NOTIFY_URL, json = { text = "redrive: deleted stale item " .. item.id } }
    end
  end,
}

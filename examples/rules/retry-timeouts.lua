-- Retry incomplete executions that failed on a timeout, once they have
-- waited a little (the endpoint was probably overloaded), at most 3 times.
local DELAY = 5 * 60      -- seconds since the failure before we retry
local MAX_ATTEMPTS = 3

return {
  name = "retry-timeouts",
  description = "retry timeouts after a delay, up to 3 attempts",
  -- source = "make_eu",  -- a profile from ~/.config/redrive/config.lua; default: rd.connect()
  reason = "timed? ?out", -- narrows the listing (a Lua pattern on the reason)
  every = 60,
  limit = 200,            -- at most 200 retries per pass
  concurrency = 4,
  match = function(item)
    return (item.attempts or 0) < MAX_ATTEMPTS
      and (item.created or 0) <= rd.time() - DELAY
  end,
  action = function(item, ctx)
    local res, err = ctx.retry()
    if res and res.status ~= "success" and not ctx.dry_run then
      ctx.log("still failing:", res.status)
    elseif not res then
      ctx.log("retry refused:", err)
    end
  end,
}

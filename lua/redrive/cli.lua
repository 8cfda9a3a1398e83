-- Support for the redrive command: runs the script as a task and maps its
-- outcome to an exit status (0 ok, 1 script error, 3 source unreachable or
-- auth refused, 130 interrupted).
local rd = require "redrive"
local M = { options = {} }

local function is_source_failure(err)
  return type(err) == "string" and (err:find("%f[%w]connect%f[%W]") or err:find("%f[%w]auth%f[%W]"))
    and err:find("source", 1, true) ~= nil
end

function M.main(fn, ...)
  local t = rd.spawn(function(...) return xpcall(fn, debug.traceback, ...) end, ...)
  rd.run()
  if t:status() ~= "done" then
    io.stderr:write("redrive: interrupted\n")
    return 130
  end
  local ok, err = t:wait()
  if ok then return 0 end
  if tostring(err):find("^[^\n]*interrupted") then
    io.stderr:write("redrive: interrupted\n")
    return 130
  end
  if M.options.json then
    io.stdout:write(rd.json.encode({ error = tostring(err) }), "\n")
  end
  io.stderr:write("redrive: ", tostring(err), "\n")
  if type(err) == "table" and err.exit then return err.exit end
  if is_source_failure(err) then return 3 end
  return 1
end

return M

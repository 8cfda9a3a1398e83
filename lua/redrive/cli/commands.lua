local M = {}
function M.dispatch(name, args) io.stderr:write("redrive: ", name, ": not yet\n") return 2 end
return M

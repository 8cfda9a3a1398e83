-- Support for the redrive command: runs the script as a task and maps its
-- outcome to an exit status (0 ok, 1 script error, 2 usage error, 3 source
-- unreachable or auth refused, 130 interrupted), applies the global options
-- and dispatches the subcommands. Loaded at every start: keep it small and
-- require nothing heavy at load time.
local rd = require "redrive"
local M = { options = {} }

M.EXIT = { ok = 0, script = 1, usage = 2, source = 3, interrupted = 130 }

local function sys() return require "redrive.cli.sys" end

-- classify(err) -> "interrupted" | "connect" | "auth" | "usage" | "script"
-- By identity, never by text: cancellation is rd.canceled itself (a
-- script's own "payment was canceled" is a script error); an error object
-- carries its code; a message a script raised with assert() is looked up as
-- the very value a source returned (rd._failure_code). A message the script
-- rewrote is the script's error.
local BY_CODE = { connect = "connect", tls = "connect", auth = "auth", usage = "usage",
                  interrupted = "interrupted", canceled = "interrupted" }
function M.classify(err)
  if rd.is_canceled(err) then return "interrupted" end
  local code
  if type(err) == "table" then code = err.code
  elseif type(err) == "string" then code = M.noted_code(err) end
  return BY_CODE[code] or "script"
end

-- noted_code(msg) -> the code a call returned with this very message | nil.
-- error() and assert() put the position ("file:12: ") before a message: the
-- message after it is the value the call returned.
function M.noted_code(msg)
  local code = rd._failure_code(msg)
  if code then return code end
  local returned = msg:match("^[^\n]-:%d+: (.*)$")
  return returned and rd._failure_code(returned)
end

local EXIT_OF = { interrupted = 130, connect = 3, auth = 3, usage = 2, script = 1 }

-- emit(v): one JSON line on stdout (for --json); a value that JSON cannot
-- carry (a source, a function, infinity) is shown as {"value": text}: an
-- object's one-line description (`<source local "local">`), else its
-- pretty-printed form. rd.json.encode returns nil, msg for those.
function M.emit(v)
  local pretty = require "redrive.pretty"
  local s = rd.json.encode(v)
  if not s then s = rd.json.encode({ value = pretty.summary(v) or pretty.format(v) }) end
  io.stdout:write(pretty.redact(s), "\n") -- the redactor keeps JSON valid
  io.stdout:flush()
end

-- traceback(err): the message handler of the script's task: a string gets
-- its traceback; error(nil) says so instead of printing a bare traceback;
-- any other value (an error object) is kept as it is.
-- A noted failure's code follows its message onto the traced text.
function M.traceback(err)
  if err == nil then err = "an error with no message (nil)" end
  local tb = debug.traceback(err, 2)
  if type(err) == "string" then rd._note_failure(tb, M.noted_code(err)) end
  return tb
end

-- text(v): tostring that cannot fail: an error value whose __tostring
-- raises is reported as such, not with a second traceback.
local function text(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "an error value that cannot be shown (its __tostring: " .. (ok and type(s) or tostring(s)) .. ")"
end

-- report(err, kind): the error on stderr (and as JSON on stdout with --json)
function M.report(err, kind)
  local msg = type(err) == "table" and (err.message or err.msg) or err
  msg = require("redrive.pretty").redact(text(msg))
  -- the runner's own frames say nothing to the user
  msg = msg:gsub("\n%s*%[C%]: in function 'xpcall'\n.*$", "")
  -- an expected failure (a refused key, an unreachable host) is one line:
  -- where in Lua it surfaced says nothing to the user
  if kind == "auth" or kind == "connect" or kind == "interrupted" then
    msg = msg:gsub("\nstack traceback:.*$", "")
  end
  if M.options.json then
    M.emit({ error = msg:match("^[^\n]*"), code = kind, exit = EXIT_OF[kind] })
  end
  if kind == "interrupted" then
    io.stderr:write("redrive: interrupted\n")
  else
    io.stderr:write("redrive: ", msg, "\n")
  end
  io.stderr:flush()
end

local function log(fmt, ...)
  if M.options.quiet then return end
  io.stderr:write(string.format(fmt, ...), "\n")
end
M.log = log

-- configure(opts): the global options, once at start (src/cli/setup.c) and
-- again for options given after a subcommand.
function M.configure(opts)
  for k, v in pairs(opts) do M.options[k] = v end
  local o = M.options
  if o.profile then rd._default_profile = o.profile end
  if o.db then rd._db = o.db end -- rd.connect's precedence (lua/redrive/sources.lua) reads it
  if o.ledger then rd._ledger = o.ledger end -- the same for the ledger
  if o.dry_run then rd.dry_run(true) end
  rd._quiet = o.quiet or nil
  rd._verbose = o.verbose or nil
  rd._json = o.json or nil
  if o.verbose and rd.verbose then rd.verbose(true) end -- HTTP calls logged by lhttp.c, URLs redacted
end

-- Run fn(...) as a task and drive the loop until every task is done.
-- Returns the exit status. With `command`, fn's first result is the status.
local function run(command, fn, ...)
  local S = sys()
  local t = rd.spawn(function(...)
    S.watch_thread()
    return table.pack(xpcall(fn, M.traceback, ...))
  end, ...)
  rd.run()
  if S.interrupted() then
    -- cancel what is in flight and let the tasks unwind (their error paths
    -- and __close handlers run: a bulk retry reports what it did)
    local left = S.drain(5)
    if left > 0 then io.stderr:write("redrive: ", left, " task(s) did not stop in time\n") end
  end
  S.watch_thread(false)
  local st = t:status()
  local r, err = t:wait()
  if st == "failed" or (st == "done" and r == nil) then
    local kind = M.classify(err)
    M.report(err, kind)
    return EXIT_OF[kind]
  end
  if st ~= "done" then
    M.report(rd.canceled, "interrupted")
    return 130
  end
  if not r[1] then
    local kind = M.classify(r[2])
    if S.interrupted() and kind == "script" then
      -- the script turned the interruption into its own error
      M.report(r[2], kind)
      return 130
    end
    M.report(r[2], kind)
    return EXIT_OF[kind]
  end
  if S.interrupted() then
    if command then
      -- the command finished and printed what it did (a bulk retry's
      -- summary says interrupted): no second result, only the status
      io.stderr:write("redrive: interrupted\n")
      return 130
    end
    M.report(rd.canceled, "interrupted")
    return 130
  end
  if command then return math.tointeger(r[2]) or 0 end
  if M.options.json then
    for i = 2, r.n do
      if r[i] ~= nil then M.emit(r[i]) end
    end
  end
  return 0
end

function M.main(fn, ...) return run(false, fn, ...) end
-- task(fn, ...) -> exit status: fn returns the status (subcommands)
function M.task(fn, ...) return run(true, fn, ...) end

-- is_command(word) -> 0 when word names a command, else 1 (src/cli/main.c
-- reads it as a status: anything but 0, an error too, runs the word as a
-- script path)
function M.is_command(word)
  return require("redrive.cli.commands").find(word) and 0 or 1
end

-- command(name, args) -> exit status: the subcommands
function M.command(name, args)
  local cmds = require "redrive.cli.commands"
  return cmds.dispatch(name, args)
end

return M

-- The interactive REPL of `redrive` (no arguments, on a terminal).
--
-- Read: libedit line editing with persistent history ($REDRIVE_HISTORY, else
-- $XDG_STATE_HOME/redrive/history, else ~/.local/state/redrive/history).
-- Compile: `return <line>;` first, so expressions print without `return`;
-- then the line as a statement; while the error ends in `<eof>` keep reading
-- (multi-line input, lua.c's `incomplete`). Only complete input is saved to
-- history. Eval: each input runs as its own task and the loop is driven until
-- it ends; Ctrl-C cancels what it waits on (or stops a busy loop) and
-- returns to the prompt. Print: results through redrive.pretty.
local rd = require "redrive"
local sys = require "redrive.cli.sys"
local pretty = require "redrive.pretty"
local cli = require "redrive.cli"

local M = {}

local PROMPT, PROMPT2 = "rd> ", ">>  "

local HELP = [[
REPL commands:
  .help            this text
  .quit            leave (or Ctrl-D)
  Ctrl-C           cancel the running call (at the prompt: clear the line)
  TAB              complete globals, fields and methods (rd.<TAB>, src:<TAB>)
Expressions print their value (no `return` needed); unfinished statements
continue on the next line. Preloaded: rd (the redrive module) and src
(rd.connect(), or the --profile source, connected on first use).

API (see redrive(1) and the README):
  rd.spawn(fn, ...) -> task   task:wait()   rd.sleep(s)   rd.now()   rd.time()
  rd.all{fn...}   rd.each(list_or_iter, fn, {concurrency = n})
  rd.json.encode(v, {pretty = true})   rd.json.decode(s)   rd.json.null
  rd.http.request{method, url, headers, query, json, body, timeout}
  rd.connect() / rd.connect"profile" / rd.connect{kind = ..., ...} -> src
  rd.dry_run(true)   rd.blueprint(t_or_json) -> bp
  src:executions{scenario, status, since, limit} -> iterator   src:execution(id)
  exec:run_data()  exec:retry()  exec:wait()  exec:chain()  exec:delete()
  src:incomplete{scenario, reason, resolved, limit} -> iterator   src:incomplete_item(id)
  item:blueprint()  item:bundle()  item:logs()  item:patch{blueprint, failer}
  item:retry()  item:delete()
  src:retry{ids | all = true, except, scenario, safe}   src:delete_incomplete{...}
  src:health{scenario, since}
  bp:get(ptr) bp:set(ptr, v) bp:merge(p) bp:apply(ops) bp:diff(o) bp:modules{module = "http:*"}
  bp:module(id) bp:validate() bp:json{pretty = true}
A listing typed at the prompt shows its first rows (and uses them up):
  src:incomplete{}
To keep a listing, collect it (globals persist between inputs, locals don't):
  items = {} for it in src:incomplete{limit = 20} do items[#items+1] = it end; items]]

local function history_path()
  local p = os.getenv("REDRIVE_HISTORY")
  if p and p ~= "" then return p end
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then state = (os.getenv("HOME") or ".") .. "/.local/state" end
  return state .. "/redrive/history"
end

-- ---- completion -------------------------------------------------------------

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

-- fields(v, methods_only) -> set of names reachable with v.name / v:name
local function fields(v, methods_only, out, depth)
  out, depth = out or {}, depth or 0
  if depth > 4 then return out end
  if type(v) == "table" then
    for k, x in next, v do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and not k:match("^__") then
        if not methods_only or type(x) == "function" then out[k] = true end
      end
    end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local idx = rawget(mt, "__index")
    if type(idx) == "table" and idx ~= v then fields(idx, methods_only, out, depth + 1) end
  elseif type(v) == "string" then
    fields(string, methods_only, out, depth + 1)
  end
  return out
end

-- complete(word, line, start) -> candidates: start is the 0-based offset of
-- the word in line. Walks the dotted path before the word without calling
-- anything (no __index functions, no connecting `src`).
function M.complete(word, line, start)
  local before = line:sub(1, start)
  local chain, sep = before:match("([%a_][%w_%.]*)([%.:])$")
  local names = {}
  if chain then
    local v = _G
    for part in chain:gmatch("[^%.]+") do
      if type(v) ~= "table" and type(v) ~= "userdata" then return {} end
      local ok, x = pcall(function()
        if type(v) == "table" then
          local r = rawget(v, part)
          if r ~= nil then return r end
          local mt = getmetatable(v)
          local idx = type(mt) == "table" and rawget(mt, "__index")
          if type(idx) == "table" then return idx[part] end
          return nil
        end
        local mt = getmetatable(v)
        local idx = type(mt) == "table" and rawget(mt, "__index")
        return type(idx) == "table" and idx[part] or nil
      end)
      if not ok or x == nil then return {} end
      v = x
    end
    names = fields(v, sep == ":")
  else
    if before:match("[%.:]$") then return {} end
    names = fields(_G)
    names.src = true
    for _, k in ipairs(KEYWORDS) do names[k] = true end
  end
  local out = {}
  for k in pairs(names) do
    if k:sub(1, #word) == word then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

-- ---- compile ------------------------------------------------------------------

-- compile(text) -> chunk | nil, err, incomplete
-- An expression prints its value; statements run; statements followed by an
-- expression (`items = {} for ... end; items`) run and print the expression.
function M.compile(text)
  local chunk = load("return " .. text .. ";", "=stdin")
  if chunk then return chunk end
  local c, err = load(text, "=stdin")
  if c then return c end
  -- the last `;` that ends the statements (one inside a string does not
  -- compile, the search goes on to the one before)
  local at = #text + 1
  while true do
    at = text:sub(1, at - 1):match(".*();")
    if not at then break end
    local rest = text:sub(at + 1)
    if rest:match("%S") then
      c = load(text:sub(1, at) .. "\nreturn " .. rest .. ";", "=stdin")
      if c then return c end
    end
  end
  return nil, err, err:find("<eof>$") ~= nil
end

-- How many rows of an iterator typed at the prompt are shown.
M.PREVIEW_ROWS = 10

-- preview(v) -> v, or for a listing (a source's lazy iterator) its first
-- rows, pretty.rows: the REPL shows them where it would show <function>.
-- Reading them uses them up, as a `for` would.
local function preview(v)
  local C = package.loaded["redrive.source.common"] -- no listing without it
  if type(v) ~= "function" or not (C and C.is_iterator(v)) then return v end
  local rows = {}
  for i = 1, M.PREVIEW_ROWS do
    local x = v()
    if x == nil then return pretty.rows(rows, false) end
    rows[i] = x
  end
  return pretty.rows(rows, v() ~= nil)
end


-- ---- evaluation -----------------------------------------------------------------

local function trim_trace(msg)
  msg = tostring(msg)
  return (msg:gsub("\n%s*%[C%]: in function 'xpcall'\n.*$", ""))
end

-- eval(chunk) -> true, results (packed) | false, err
function M.eval(chunk)
  local t = rd.spawn(function()
    sys.watch_thread()
    local r = table.pack(xpcall(chunk, cli.traceback))
    -- listings among the results are read here, in the task: Ctrl-C stops a slow page
    if r[1] then for i = 2, r.n do r[i] = preview(r[i]) end end
    return r
  end)
  local ok, r, werr = pcall(t.wait, t)
  if sys.interrupted() then
    local left = sys.drain(3)
    if left > 0 then io.stderr:write("(", left, " task(s) still running)\n") end
    sys.clear_interrupt()
    sys.watch_thread(false)
    local st = t:status()
    if st == "done" or st == "failed" then pcall(t.wait, t) end -- observed: no late report
    return false, rd.canceled
  end
  sys.watch_thread(false)
  if not ok then return false, r end
  if r == nil then return false, werr end
  if not r[1] then return false, r[2] end
  return true, table.pack(table.unpack(r, 2, r.n))
end

local function show(ok, r)
  if ok then
    if r.n > 0 then
      local parts = {}
      for i = 1, r.n do
        local okf, s = pcall(pretty.format, r[i])
        parts[i] = okf and s or ("<" .. tostring(s) .. ">")
      end
      io.stdout:write(pretty.redact(table.concat(parts, "\t")), "\n")
    end
  else
    local kind = cli.classify(r)
    if kind == "interrupted" then io.stdout:write("interrupted\n")
    else io.stderr:write(pretty.redact(trim_trace(r)), "\n") end
  end
  io.stdout:flush()
  io.stderr:flush()
end

-- ---- the loop ---------------------------------------------------------------------

local function install_src()
  local mt = getmetatable(_G) or {}
  local prev = mt.__index
  mt.__index = function(t, k)
    if k == "src" then
      local s, err = rd.connect()
      if not s then error("src: " .. tostring(err), 2) end
      rawset(t, "src", s)
      return s
    end
    if type(prev) == "function" then return prev(t, k) end
    if type(prev) == "table" then return prev[k] end
    return nil
  end
  setmetatable(_G, mt)
end

-- run() -> exit status
function M.run()
  local hist = history_path()
  local dir = hist:match("^(.*)/[^/]*$")
  if dir then sys.mkdir_p(dir) end
  sys.load_history(hist, 1000)
  sys.set_completer(M.complete)
  install_src()
  if not cli.options.quiet then
    io.stdout:write(string.format("redrive %s (%s)%s%s  .help for help, .quit to leave\n",
      rd.version, _VERSION, rd.is_dry_run() and " [dry-run]" or "",
      rd._default_profile and (" [profile " .. rd._default_profile .. "]") or ""))
  end
  while true do
    local line = sys.readline(PROMPT)
    if line == nil then io.stdout:write("\n"); break end
    if line == false or line:match("^%s*$") then goto continue end
    do
      local cmd = line:match("^%s*(%.%a+)%s*$")
      if cmd == ".quit" or cmd == ".exit" or cmd == ".q" then
        sys.add_history(line)
        break
      elseif cmd == ".help" or cmd == ".h" then
        sys.add_history(line)
        io.stdout:write(HELP, "\n")
        goto continue
      elseif cmd then
        io.stderr:write("unknown command ", cmd, " (.help lists them)\n")
        goto continue
      end
      local text = line
      local chunk, err, more = M.compile(text)
      while not chunk and more do
        local l2 = sys.readline(PROMPT2)
        if l2 == nil or l2 == false then text = nil; break end
        text = text .. "\n" .. l2
        chunk, err, more = M.compile(text)
      end
      if text == nil then goto continue end -- Ctrl-C or Ctrl-D dropped the statement
      sys.add_history(text)
      if not chunk then
        io.stderr:write(err, "\n")
        goto continue
      end
      show(M.eval(chunk))
    end
    ::continue::
  end
  local ok, err = sys.save_history(hist, 1000)
  if not ok then io.stderr:write("redrive: ", err, "\n") end
  return 0
end

return M

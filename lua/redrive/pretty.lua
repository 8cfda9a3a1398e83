-- Pretty printing for the REPL and the quick commands.
--
--   local pretty = require "redrive.pretty"
--   print(pretty.format(value, {depth = 4, items = 40, width = 100}))
--   pretty.summary(v)   -- one line for an execution, item, blueprint or source; nil otherwise
--   pretty.rows(list, more) -- the first rows of an iterator: prints them, then "… more"
--   pretty.redact_url(url), pretty.is_secret_key(k), pretty.redact(s)
--
-- Tables are indented (short ones stay on one line), nesting is cut at
-- `depth`, tables at `items` entries, long strings at `string` bytes; a
-- table met again on the path to itself is printed as <cycle>. Executions,
-- incomplete executions, blueprints and sources print as one-line summaries.
-- Values under secret-looking keys (token, api_key, authorization, ...) and
-- bearer tokens in strings are never printed.
local M = {}

-- Redaction lives in C (src/core/redact.c, one list of names and rules for
-- everything that stores or prints); these entry points call it.
local core = require "redrive.core"

-- is_secret_key(k) -> boolean: does the key name a credential?
function M.is_secret_key(k)
  return type(k) == "string" and core.redact_is_secret_name(k)
end

-- redact(s) -> s with credentials (by name, Bearer/Basic, URL userinfo, and
-- every literal this process sent) replaced by <redacted>
M.redact = core.redact

-- redact_url(url) -> the URL with userinfo and secret query values masked
function M.redact_url(url)
  return core.redact(tostring(url))
end

local function fmt_time(t)
  if type(t) ~= "number" then return t and tostring(t) or "?" end
  return os.date("!%Y-%m-%d %H:%M:%S", math.floor(t)) .. "Z"
end
M.fmt_time = fmt_time

local function short(s, n)
  s = tostring(s):gsub("%s+", " ")
  if #s > n then return s:sub(1, n - 1) .. "…" end
  return s
end

local function meta_name(v)
  local mt = getmetatable(v)
  if type(mt) == "table" then return rawget(mt, "__name"), mt end
  return nil, mt
end

-- kind_of(v) -> "execution" | "item" | "blueprint" | "source" | nil
function M.kind_of(v)
  local tv = type(v)
  if tv ~= "table" and tv ~= "userdata" then return nil end
  local name, mt = meta_name(v)
  if name == "redrive.Blueprint" then return "blueprint" end
  if name == "redrive.Execution" then return "execution" end
  if name == "redrive.Item" or name == "redrive.IncompleteExecution" then return "item" end
  if name == "redrive.Source" then return "source" end
  if tv ~= "table" or mt == nil then return nil end
  local get = function(k) return rawget(v, k) end
  if get("kind") and get("name") and type(get("kind")) == "string" and get("id") == nil then
    return "source"
  end
  if get("id") == nil then return nil end
  if get("reason") ~= nil and (get("failer") ~= nil or get("created") ~= nil or get("scenario_name") ~= nil) then
    return "item"
  end
  if get("status") ~= nil and (get("started_at") ~= nil or get("mode") ~= nil or get("scenario") ~= nil) then
    return "execution"
  end
  return nil
end

-- summary(v) -> one line or nil
function M.summary(v)
  local k = M.kind_of(v)
  if k == "execution" then
    local parts = { "execution " .. tostring(v.id), "[" .. tostring(v.status) .. "]" }
    if v.scenario ~= nil then parts[#parts + 1] = "scenario " .. tostring(v.scenario) end
    if v.started_at then parts[#parts + 1] = fmt_time(v.started_at) end
    if type(v.started_at) == "number" and type(v.stopped_at) == "number" then
      parts[#parts + 1] = string.format("%.2fs", v.stopped_at - v.started_at)
    end
    if v.retry_of then parts[#parts + 1] = "retry of " .. tostring(v.retry_of) end
    local e = v.error
    if type(e) == "table" and e.message then
      parts[#parts + 1] = (e.module and ("module " .. tostring(e.module) .. ": ") or "") ..
        short(M.redact(tostring(e.message)), 60)
    end
    return "<" .. table.concat(parts, " ") .. ">"
  elseif k == "item" then
    local parts = { "incomplete " .. tostring(v.id) }
    local sc = v.scenario_name and (tostring(v.scenario) .. " " .. string.format("%q", v.scenario_name))
      or tostring(v.scenario)
    parts[#parts + 1] = "scenario " .. sc
    if v.resolved then parts[#parts + 1] = "[resolved]" end
    if v.created then parts[#parts + 1] = fmt_time(v.created) end
    if v.attempts and v.attempts ~= 0 then parts[#parts + 1] = "attempts " .. tostring(v.attempts) end
    if v.failer then parts[#parts + 1] = "failer " .. tostring(v.failer) end
    if v.reason then parts[#parts + 1] = string.format("%q", short(M.redact(tostring(v.reason)), 60)) end
    return "<" .. table.concat(parts, " ") .. ">"
  elseif k == "blueprint" then
    local ok, name = pcall(function() return v:get("/name") end)
    local okm, mods = pcall(function() return v:modules() end)
    return string.format("<blueprint %s, %s modules>", ok and name and string.format("%q", name) or "?",
      okm and type(mods) == "table" and #mods or "?")
  elseif k == "source" then
    return string.format("<source %s %q>", tostring(v.kind), tostring(v.name))
  end
  return nil
end

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") and not ({
    ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1, ["end"] = 1,
    ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1, ["if"] = 1, ["in"] = 1,
    ["local"] = 1, ["nil"] = 1, ["not"] = 1, ["or"] = 1, ["repeat"] = 1, ["return"] = 1,
    ["then"] = 1, ["true"] = 1, ["until"] = 1, ["while"] = 1 })[k]
end

local function quote(s, maxlen)
  s = M.redact(s)
  local cut = ""
  if #s > maxlen then
    cut = string.format("…(%d bytes)", #s)
    s = s:sub(1, maxlen)
  end
  local q = string.format("%q", s):gsub("\\\n", "\\n"):gsub("\\9", "\\t")
  return q .. cut
end

local TYPE_RANK = { number = 1, string = 2, boolean = 3 }
local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (TYPE_RANK[ta] or 4) < (TYPE_RANK[tb] or 4) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local DEFAULTS = { depth = 5, items = 40, width = 96, string = 400, indent = "  " }

-- rows(list, more) -> a value that prints as the rows an iterator gave (one
-- per line) and, when more is true, a last line "… more": how the REPL shows
-- a listing typed at the prompt.
local Rows = { __name = "redrive.Rows" }
function M.rows(list, more)
  return setmetatable({ list = list, more = more and true or false }, Rows)
end

-- format(v, opts) -> string
function M.format(v, opts)
  local o = {}
  for k, d in pairs(DEFAULTS) do o[k] = opts and opts[k] or d end
  local path = {}

  local fmt
  local function fmt_rows(r, level)
    local pad = string.rep(o.indent, level + 1)
    local lines = {}
    for i, row in ipairs(r.list) do lines[i] = pad .. fmt(row, level + 1) end
    if r.more then lines[#lines + 1] = pad .. "… more (the iterator has more rows)" end
    if #lines == 0 then return "{} (no rows)" end
    return "{\n" .. table.concat(lines, ",\n") .. "\n" .. string.rep(o.indent, level) .. "}"
  end

  local function fmt_table(t, level, top, keyw)
    if getmetatable(t) == Rows then return fmt_rows(t, level) end
    local s = M.summary(t)
    if s and not top then return s end
    if path[t] then return "<cycle>" end
    if level >= o.depth then return "{…}" end
    path[t] = true
    local entries, n = {}, 0
    local arr = rawlen(t)
    local shown = 0
    for i = 1, arr do
      shown = shown + 1
      if shown > o.items then break end
      entries[#entries + 1] = fmt(rawget(t, i), level + 1)
    end
    local keys = {}
    for k in next, t do
      if not (math.type(k) == "integer" and k >= 1 and k <= arr) then keys[#keys + 1] = k end
    end
    table.sort(keys, key_order)
    n = arr + #keys
    if s then -- an object: hide private fields, keep .raw folded
      local pub = {}
      for _, k in ipairs(keys) do
        if not (type(k) == "string" and k:sub(1, 1) == "_") then pub[#pub + 1] = k end
      end
      keys = pub
    end
    for _, k in ipairs(keys) do
      shown = shown + 1
      if shown > o.items then break end
      local ks = is_ident(k) and k or ("[" .. fmt(k, o.depth) .. "]")
      local val
      if M.is_secret_key(k) and rawget(t, k) ~= nil and type(rawget(t, k)) ~= "table" then
        val = "<redacted>"
      elseif s and k == "raw" and type(rawget(t, k)) == "table" then
        val = "{…}"
      else
        val = fmt(rawget(t, k), level + 1, nil, #ks + 3)
      end
      entries[#entries + 1] = ks .. " = " .. val
    end
    if n > o.items then entries[#entries + 1] = string.format("… (%d more)", n - o.items) end
    local methods
    if s then -- list the methods, so the object says what it can do
      local mt = getmetatable(t)
      local idx = type(mt) == "table" and rawget(mt, "__index")
      if type(idx) == "table" then
        local ms = {}
        for k, f in pairs(idx) do
          if type(k) == "string" and type(f) == "function" and k:sub(1, 1) ~= "_" then ms[#ms + 1] = k end
        end
        table.sort(ms)
        if #ms > 0 then methods = "-- methods: :" .. table.concat(ms, ", :") end
      end
    end
    path[t] = nil
    local head = ""
    if s then head = s .. " " end
    local mt = getmetatable(t)
    if #entries == 0 then
      local name = type(mt) == "table" and rawget(mt, "__name")
      if name == "redrive.json.array" then return head .. "[]" end
      return head .. "{}"
    end
    local one = "{ " .. table.concat(entries, ", ") .. " }"
    if not s and not one:find("\n") and #one + (level + 1) * #o.indent + (keyw or 0) <= o.width then return head .. one end
    local pad = string.rep(o.indent, level + 1)
    return head .. "{\n" .. pad .. table.concat(entries, ",\n" .. pad) .. ",\n" ..
      (methods and (pad .. methods .. "\n") or "") .. string.rep(o.indent, level) .. "}"
  end

  fmt = function(x, level, top, keyw)
    local tx = type(x)
    if tx == "string" then return quote(x, o.string)
    elseif tx == "number" or tx == "boolean" or tx == "nil" then return tostring(x)
    elseif tx == "table" then return fmt_table(x, level, top, keyw)
    elseif tx == "userdata" then
      local name = meta_name(x)
      if name == "redrive.null" then return "null" end
      local s = M.summary(x)
      if s then return s end
      local ok, str = pcall(tostring, x)
      return ok and M.redact(str) or "<userdata>"
    elseif tx == "function" then
      local info = debug.getinfo(x, "S")
      if info.what == "C" then return "<function: builtin>" end
      return string.format("<function %s:%d>", info.short_src, info.linedefined)
    else
      return "<" .. tostring(x) .. ">"
    end
  end

  return fmt(v, 0, true)
end

-- format_values(...) -> the values formatted, tab-separated (REPL results)
function M.format_values(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do out[i] = M.format((select(i, ...))) end
  return table.concat(out, "\t")
end

return M

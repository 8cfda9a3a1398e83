-- http:ActionSendData — make an HTTP request (Make's "HTTP > Make a request").
-- mapper: url, method, headers [{name, value}], qs [{name, value}],
--   bodyType ("raw" | "json" | "x-www-form-urlencoded"), data, contentType,
--   gzip, timeout (seconds), maxBody (bytes of decoded response body, default
--   16 MiB: a bigger body fails the module with code "too_large"),
--   parseResponse, followRedirect (redirects are followed only when true, as
--   rd.http.request does), rejectUnauthorized, authUser / authPass (basic
--   auth); shareCookies, useQuerystring, ca ignored.
-- output: {statusCode, headers, data}; data is parsed when parseResponse is
-- true and the response is JSON. A status >= 400 is a module error (code
-- "http") naming the status and the URL without its query or userinfo.
local core = require("redrive.core")
local rd = core.rd
local opts_num = require("redrive.opts").number
-- Redaction is the C redactor's (src/core/redact.c): URLs in messages lose
-- userinfo and query, response text loses every credential.
local redact, redact_url = core.redact, core.redact_url
local fields = require "redrive.engine.fields"
local pairs_of = fields.name_value_list

local function opt_bool(v, dflt)
  if v == nil or v == rd.json.null or v == "" then return dflt end
  if v == "false" or v == false or v == 0 then return false end
  return true
end

local function str(v)
  if v == nil or v == rd.json.null then return "" end
  if type(v) == "table" then return rd.json.encode(v) end
  if math.type(v) == "float" and v == math.floor(v) then return string.format("%d", v) end
  return tostring(v)
end

local function urlencode(s)
  return (str(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function truncate(s, n)
  s = s:gsub("%s+", " ")
  if #s > n then return s:sub(1, n) .. "..." end
  return s
end

local function run(ctx, m)
  local url = m.url
  if type(url) ~= "string" or url == "" then return nil, "http: url is empty", "invalid" end
  if not url:find("^https?://") then return nil, "http: url must start with http:// or https://: " .. redact_url(url), "invalid" end
  local method = (m.method == nil or m.method == "") and "GET" or str(m.method):upper()
  local headers = {}
  local hs, err = pairs_of(m.headers, "headers")
  if not hs then return nil, "http: " .. err, "invalid" end
  for _, h in ipairs(hs) do
    local v = str(h[2])
    -- rd.http.request refuses these too, but by raising (a script's bug);
    -- here they come from data, so the module fails with its own error
    if h[1]:find("[\r\n]") or v:find("[\r\n]") then
      return nil, string.format("http: header '%s' contains a line break", (h[1]:sub(1, 64):gsub("%c", "?"))), "invalid"
    end
    headers[h[1]] = v
  end
  local qs
  qs, err = pairs_of(m.qs, "qs")
  if not qs then return nil, "http: " .. err, "invalid" end
  local query
  for _, q in ipairs(qs) do
    query = query or {}
    local cur = query[q[1]]
    if cur == nil then query[q[1]] = str(q[2])
    elseif type(cur) == "table" then cur[#cur + 1] = str(q[2])
    else query[q[1]] = { cur, str(q[2]) } end
  end
  local function has_ctype()
    for k in pairs(headers) do if k:lower() == "content-type" then return true end end
  end
  local body
  local bt = m.bodyType
  local data = m.data
  if data ~= nil and data ~= rd.json.null and data ~= "" then
    if bt == "x-www-form-urlencoded" or bt == "x_www_form_urlencoded" then
      if type(data) == "table" then
        local form, ferr = pairs_of(data, "data")
        if not form then return nil, "http: " .. ferr, "invalid" end
        local parts = {}
        for i, f in ipairs(form) do parts[i] = urlencode(f[1]) .. "=" .. urlencode(f[2]) end
        body = table.concat(parts, "&")
      else
        body = str(data)
      end
      if not has_ctype() then headers["Content-Type"] = "application/x-www-form-urlencoded" end
    elseif bt == "json" or (type(data) == "table") then
      if type(data) == "table" then
        local ok, s = pcall(rd.json.encode, data)
        if not ok or not s then return nil, "http: data cannot be encoded as JSON: " .. tostring(s), "invalid" end
        body = s
      else
        body = str(data)
      end
      if not has_ctype() then headers["Content-Type"] = m.contentType or "application/json" end
    else
      body = str(data)
      if m.contentType and m.contentType ~= "" and not has_ctype() then headers["Content-Type"] = m.contentType end
    end
  end
  -- an empty or 0 timeout is Make's "default"; anything else obeys the rule
  local timeout, max_body
  local t = m.timeout
  if t == "" or tonumber(t) == 0 then t = nil end
  timeout, err = opts_num(t, "timeout", "timeout")
  if err == nil then max_body, err = opts_num(m.maxBody ~= "" and m.maxBody or nil, "maxBody", "bytes") end
  if err then return nil, "http: " .. err, "invalid" end
  local req = {
    method = method, url = url, headers = headers, query = query, body = body,
    timeout = timeout, max_body = max_body, follow = opt_bool(m.followRedirect, false),
    verify = opt_bool(m.rejectUnauthorized, true), gzip = opt_bool(m.gzip, true),
  }
  if m.authUser ~= nil and m.authUser ~= "" then
    req.user, req.password = str(m.authUser), str(m.authPass)
  end
  local res, msg, code = rd.http.request(req)
  if not res then return nil, msg, code end
  ctx.run.transfer = ctx.run.transfer + (res.transfer or 0)
  if res.status >= 400 then
    -- redacted before it is cut: half a token is no longer recognised
    return nil, string.format("HTTP %d from %s: %s", res.status, redact_url(url),
      truncate(redact(res.body or ""), 200)), "http"
  end
  local out = { statusCode = res.status, headers = res.headers, data = res.body }
  if opt_bool(m.parseResponse, false) then
    local ct = res.headers["content-type"] or ""
    if ct:find("json") and res.body ~= "" then
      local v, perr = rd.json.decode(res.body)
      if v == nil and perr then
        return nil, string.format("HTTP %d from %s: response is not valid JSON: %s", res.status, redact_url(url), perr), "invalid"
      end
      out.data = v
    end
  end
  return out
end

-- What run data records as the module's input: a copy of the mapper in
-- which every credential is hidden, so that stored executions and
-- incomplete executions hold no token. The names and rules are the C
-- redactor's: values under credential names (authPass, api_key, ...), the
-- value of a {name, value} pair with such a name (headers, qs, form
-- fields), and credentials inside strings (URL userinfo and query, a form
-- or JSON body, Bearer tokens, literals this process sent).
local HIDDEN = "<redacted>"
local secret_name = core.redact_is_secret_name

local function hide(v, depth)
  local t = type(v)
  if t == "string" then return redact(v) end
  if t ~= "table" or depth > 16 then return v end
  local pair = type(v.name) == "string" and v.value ~= nil and secret_name(v.name)
  local r = {}
  for k, x in pairs(v) do
    local scalar = (type(x) == "string" and x ~= "") or type(x) == "number"
    if (pair and k == "value") or (scalar and type(k) == "string" and secret_name(k)) then
      r[k] = HIDDEN
    else
      r[k] = hide(x, depth + 1)
    end
  end
  return setmetatable(r, getmetatable(v))
end

local function redact_input(m)
  return rd.json.object(hide(m, 0))
end

return {
  type = "http:ActionSendData",
  redact_input = redact_input,
  fields = {
    url = "url", method = "string", headers = fields.NAME_VALUE_LIST, qs = fields.NAME_VALUE_LIST,
    bodyType = "string",
    data = "any", contentType = "string", gzip = "boolean", timeout = "any", maxBody = "any",
    parseResponse = "boolean", followRedirect = "boolean", rejectUnauthorized = "boolean",
    authUser = "string", authPass = "string", shareCookies = "boolean", useQuerystring = "boolean",
    ca = "string", serializeUrl = "boolean", useMtls = "boolean",
  },
  required = { "url" },
  run = run,
}

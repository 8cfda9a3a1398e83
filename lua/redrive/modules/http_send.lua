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
local rd = require("redrive.core").rd
local opts_num = require("redrive.opts").number

local function redact(url)
  url = url:gsub("[?#].*$", "")
  url = url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1")
  return url
end

local function opt_bool(v, dflt)
  if v == nil or v == rd.json.null or v == "" then return dflt end
  if v == "false" or v == false or v == 0 then return false end
  return true
end

local function pairs_of(list, what)
  -- [{name, value}] (Make) or {name = value}
  local out = {}
  if list == nil or list == rd.json.null or list == "" then return out end
  if type(list) ~= "table" then return nil, what .. " must be a list of {name, value}" end
  if #list > 0 or rd.json.kind(list) == "array" then
    for _, p in ipairs(list) do
      if type(p) == "table" and p.name ~= nil and p.name ~= "" then
        out[#out + 1] = { tostring(p.name), p.value }
      end
    end
  else
    for k, v in pairs(list) do out[#out + 1] = { tostring(k), v } end
  end
  return out
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
  if not url:find("^https?://") then return nil, "http: url must start with http:// or https://: " .. redact(url), "invalid" end
  local method = (m.method == nil or m.method == "") and "GET" or str(m.method):upper()
  local headers = {}
  local hs, err = pairs_of(m.headers, "headers")
  if not hs then return nil, "http: " .. err, "invalid" end
  for _, h in ipairs(hs) do headers[h[1]] = str(h[2]) end
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
        local fields = pairs_of(data, "data") or {}
        local parts = {}
        for i, f in ipairs(fields) do parts[i] = urlencode(f[1]) .. "=" .. urlencode(f[2]) end
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
    return nil, string.format("HTTP %d from %s: %s", res.status, redact(url), truncate(res.body or "", 200)), "http"
  end
  local out = { statusCode = res.status, headers = res.headers, data = res.body }
  if opt_bool(m.parseResponse, false) then
    local ct = res.headers["content-type"] or ""
    if ct:find("json") and res.body ~= "" then
      local v, perr = rd.json.decode(res.body)
      if v == nil and perr then
        return nil, string.format("HTTP %d from %s: response is not valid JSON: %s", res.status, redact(url), perr), "invalid"
      end
      out.data = v
    end
  end
  return out
end

-- What run data records as the module's input: the mapper with credentials
-- replaced (password, secret-looking headers, query parameters and URL query
-- values), so that stored executions and incomplete executions hold no token.
local SECRET = { "authorization", "cookie", "token", "secret", "password", "passwd", "api%-?_?key",
                 "apikey", "signature", "sig$", "^key$", "credential", "session" }
-- Names repeat (the same headers on every run): remember each verdict.
local verdicts = {}
local nverdicts = 0
local function secretish(name)
  name = tostring(name)
  local v = verdicts[name]
  if v ~= nil then return v end
  local lower = name:lower()
  v = false
  for _, p in ipairs(SECRET) do if lower:find(p) then v = true; break end end
  if nverdicts >= 1024 then verdicts, nverdicts = {}, 0 end
  verdicts[name], nverdicts = v, nverdicts + 1
  return v
end
local HIDDEN = "[redacted]"

local function redact_list(list)
  if type(list) ~= "table" then return list end
  local out = rd.json.array {}
  for i, p in ipairs(list) do
    if type(p) == "table" and p.name ~= nil and secretish(p.name) and p.value ~= nil then
      out[i] = { name = p.name, value = HIDDEN }
    else
      out[i] = p
    end
  end
  return out
end

local function redact_input(m)
  local r = {}
  for k, v in pairs(m) do r[k] = v end
  if type(r.url) == "string" then
    r.url = r.url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1" .. HIDDEN .. "@")
    r.url = r.url:gsub("([?&])([^=&#]+)=([^&#]*)", function(sep, k, v)
      if secretish(k) then return sep .. k .. "=" .. HIDDEN end
      return sep .. k .. "=" .. v
    end)
  end
  if r.authPass ~= nil and r.authPass ~= "" then r.authPass = HIDDEN end
  r.headers = redact_list(r.headers)
  r.qs = redact_list(r.qs)
  return rd.json.object(r)
end

return {
  type = "http:ActionSendData",
  redact_input = redact_input,
  fields = {
    url = "string", method = "string", headers = "array", qs = "array", bodyType = "string",
    data = "any", contentType = "string", gzip = "boolean", timeout = "any", maxBody = "any",
    parseResponse = "boolean", followRedirect = "boolean", rejectUnauthorized = "boolean",
    authUser = "string", authPass = "string", shareCookies = "boolean", useQuerystring = "boolean",
    ca = "string", serializeUrl = "boolean", useMtls = "boolean",
  },
  required = { "url" },
  run = run,
  redact = redact,
}

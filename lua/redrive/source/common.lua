-- lua/redrive/source/common.lua: what every source shares (written with the
-- remote sources make, n8n, sailpoint, kaizen; usable by the local source).
-- `local C = require "redrive.source.common"`. The whole API:
--
-- Source skeleton (remote kinds)
--   C.new_source(rd, opts, spec) -> src | nil, msg, code
--       spec = {kind, base_url, auth = function(token) -> headers, token_required,
--               parse_error, methods, exec_methods, item_methods, scenarios_instead}
--       Resolves the token (opts.token / opts.token_env; profiles arrive as
--       opts), builds the HTTP client (redrive.remote: rate, concurrency,
--       429/5xx handling, redaction) and returns src with fields kind, name,
--       base_url, scenario (a profile's default) and hidden _rd/_client.
--       The token lives only in the client's closures; tostring(src) is
--       "redrive source <kind> (<base_url>)".
--   C.api(src, req) -> decoded JSON, res | nil, msg, code, detail
--
-- Object classes: executions and items are plain tables (snake_case fields,
-- platform JSON under .raw) whose metatable carries the methods and a hidden
-- reference to the source.
--   C.exec_class(src, methods) -> mt     C.item_class(src, methods) -> mt
--   setmetatable(fields, mt); C.src_of(obj) -> src
--
-- Lazy iterators (closures for `for x in it do`; pages fetched as consumed;
-- a failure mid-way raises an error object {message, code} whose tostring
-- is "message (code)", so a caller tells a dead host by its code)
--   C.offset_iter{fetch = function(offset, n) -> list | nil, msg, code,
--                 page, limit, offset, map, filter, stop}
--   C.cursor_iter{fetch = function(cursor, n) -> list, next_cursor | nil, msg, code, ...}
--   C.keyset_iter{fetch = function(after, n) -> list | nil, msg, code, key = "id", ...}
--   C.ids_iter(ids, except_set), C.filter_iter(it, keep)
--
-- Results and checks
--   C.unsupported(kind, what, instead) -> nil, msg, "unsupported"
--   Mutating calls go through the gate (lua/redrive/mutation.lua; C.mutate,
--   C.dry_run, C.ledger are its mutate, dry_run, ledger): it decides dry
--   run, notifies observers (the rules audit), counts, and leases remote
--   items in the ledger when the source has one.
--   C.refusal(exec) -> why a safe retry is refused (running, succeeded,
--       already retried successfully) | nil
--   C.chain_refusal(chain, exec) -> why, judged on the whole retry chain (a
--       member succeeded, or a retry of it still runs) | nil
--   C.wait(rd, exec, {timeout, interval, max_interval, what}, refresh) -> exec | nil, msg, "timeout"
--   C.wait_opts(opts) -> the options of a retry's wait = true (nil without;
--       false, msg, "invalid" when bad), checked before anything is sent
--   C.retry_attempts(rd, exec, {attempts, backoff}, once, wait) -> last exec
--   C.chain(exec, get, {up, children}) -> {exec...} (root first; .missing)
--   C.health(iterator, {limit}) -> {total, finished, succeeded, failed, running,
--       success_rate, avg_duration, p95_duration, top_reasons}: reasons are
--       fingerprint groups ({reason = cause, count, fingerprint})
--   C.groups(iterator, {limit}) -> failure groups computed while paging
--   C.fingerprint_arg(v, fname) -> v (a fingerprint filter, checked)
--
-- Bulk operations
--   C.bulk(rd, opts, spec) -> summary (C.summary)
--       spec = {src, targets (list or iterator), total, id(t), check(t) -> refusal, code,
--               act(t, forced) -> true | {status, execution, message} | nil, msg, code, {execution},
--               action, verb, noun, concurrency}
--       Runs act at bounded concurrency (rd.each), each call through the
--       mutation gate of src; safe checks skip (opts.safe ~= false); in a dry
--       run act is not called and the summary carries
--       dry_run = true, would_<action> = n; a progress line on stderr when it
--       is a TTY (opts.progress = true / false / function(summary) overrides).
--   C.summary([opts]) -> {total, succeeded, failed, skipped, not_attempted, errors,
--       results}: one summary for every source's bulk calls (results and
--       errors bounded to the first C.MAX_RESULTS / C.MAX_ERRORS = 1000;
--       opts.on_result(r) sees every result as it is recorded)
--   C.outcome(s, id, status, {execution, message, code}), C.not_attempted(s, n),
--   C.add_error(s, e), C.add_result(s, id, status, execution [, {message, code}])
--   C.drive(rd, s, {targets, id, act, concurrency, settle}) -> interrupted:
--       the bulk loop; a cancellation ends it with a true summary
--   C.progress(rd, want, total, verb), C.set_of(list, what, fname)
--   C.resolved_opt(v, fname) -> false | true | nil: a listing's `resolved`
--       (nil/false: pending only, the default; true: resolved only; "any": both)
--   C.pattern(pat, fname) -> test(s) -> boolean | nil: a reason filter
--       (redrive.pattern_filter: validated, bounded; a tripped budget raises
--       an error object with code "limit")
--
-- Small helpers: C.iso_time(text) -> Unix seconds, C.iso(t [, ms]) -> text,
--   C.check_table, C.when, C.stderr_is_tty.
local remote = require "redrive.remote"
local PF = require "redrive.pattern_filter"
local U = require "redrive.source.local_util"
local opts_num, opts_check = require("redrive.opts").number, require("redrive.opts").check
local G = require "redrive.mutation"

local C = {}
C.iso_time, C.iso = remote.iso_time, remote.iso
C.check_table, C.when, C.stderr_is_tty = U.check_table, U.when, U.stderr_is_tty

-- unsupported(kind, what, instead) -> nil, msg, "unsupported"
function C.unsupported(kind, what, instead)
  return nil, string.format("%s: %s is not supported by the %s API%s", kind, what, kind,
    instead and ("; " .. instead) or ""), "unsupported"
end

-- mutate(src, op, fn, ...): the mutation gate (lua/redrive/mutation.lua)
C.mutate, C.dry_run, C.ledger = G.mutate, G.dry_run, G.ledger

-- ---------------------------------------------------------------------------
-- the source skeleton

-- token(opts, kind) -> token | nil (from token, token_env; never stored)
local function resolve_token(opts, kind)
  if opts.token ~= nil then
    if type(opts.token) ~= "string" then error("bad argument #1 to 'connect' (token must be a string)", 4) end
    return opts.token
  end
  if opts.token_env ~= nil then
    local v = os.getenv(tostring(opts.token_env))
    if v == nil or v == "" then
      return nil, string.format("%s: environment variable %s (token_env) is not set", kind, tostring(opts.token_env))
    end
    return v
  end
  return nil
end

local Source = {}
Source.__index = Source
C.Source = Source

-- new_source(rd, opts, spec) -> src, methods | nil, msg, code
-- spec: kind, base_url (resolved), auth = function(token) -> headers,
-- token_required, parse_error, methods (table of source methods).
function C.new_source(rd, opts, spec)
  local kind = spec.kind
  local token, terr = resolve_token(opts, kind)
  if terr then return nil, terr, "auth" end
  if token == nil and spec.token_required then
    return nil, string.format("%s: no token: pass token = ..., token_env = \"VAR\" or a config profile with one", kind), "auth"
  end
  local base = spec.base_url
  if type(base) ~= "string" or not base:match("^https?://[^/]") then
    return nil, string.format("%s: base_url must be an http(s) URL, got %s", kind, tostring(base)), "invalid"
  end
  base = base:gsub("/+$", "")
  local client, cerr, ccode = remote.client(rd, {
    kind = kind, base_url = base, token = token, auth = spec.auth, headers = opts.headers,
    rate = opts.rate, concurrency = opts.concurrency, retries = opts.retries,
    rate_limit_retries = opts.rate_limit_retries, backoff = opts.backoff, max_wait = opts.max_wait,
    timeout = opts.timeout, verify = opts.verify, parse_error = spec.parse_error,
    transport = opts.transport, log = opts.log, max_body = opts.max_body,
  })
  if not client then return nil, cerr, ccode end
  token = nil -- the client's closures hold it now
  local methods = spec.methods
  -- every source answers the scenario calls (shared/API.md): a kind whose
  -- API redrive does not use for them says so, and what to do instead.
  -- (Not src:scenario(id): on a remote source `scenario` is the profile's
  -- default scenario id, a field.)
  for _, m in ipairs { "scenarios", "scenario_update" } do
    if methods[m] == nil then
      methods[m] = function() return C.unsupported(kind, "src:" .. m, spec.scenarios_instead) end
    end
  end
  local mt = {
    __index = methods, __name = "redrive.Source",
    __tostring = function(s) return string.format("redrive source %s (%s)", s.kind, s.base_url) end,
  }
  local src = setmetatable({
    -- base_url as shown: credentials in the URL (user:pass@, ?api_key=) redacted
    kind = kind, name = opts.profile or kind, base_url = client.scrub(base), scenario = opts.scenario,
    _rd = rd, _client = client, _bulk = opts_num(opts.concurrency, "concurrency", "concurrency", 16),
  }, mt)
  src._mt = {
    exec = C.exec_class(src, spec.exec_methods or {}),
    item = C.item_class(src, spec.item_methods or {}),
  }
  return src
end

-- exec_class(src, methods) / item_class(src, methods) -> metatable
function C.exec_class(src, methods)
  return { __index = methods, __src = src, __name = "redrive.Execution" }
end
function C.item_class(src, methods)
  return { __index = methods, __src = src, __name = "redrive.Item" }
end

function C.src_of(obj)
  local mt = getmetatable(obj)
  return type(mt) == "table" and mt.__src or nil
end

-- api(src, req) -> decoded JSON, res | nil, msg, code, detail
function C.api(src, req) return src._client:json(req) end

-- ---------------------------------------------------------------------------
-- lists in results

-- list([t]) -> t (or a new table) marked as a JSON array: a list in a result
-- (errors, results, ids, top reasons) prints as [] when empty, where an
-- unmarked empty table would print as {} (--json output is read by jq).
function C.list(t)
  return require("redrive.core").rd.json.array(t or {})
end

-- A top reason: {reason = r, count = n, ...}; [1] and [2] read the reason and
-- the count (the API's {reason, count}) without being keys of their own, so
-- JSON shows each field once.
local Reason = { __index = function(t, k)
  if k == 1 then return rawget(t, "reason") elseif k == 2 then return rawget(t, "count") end
end }

-- reason_entry(t) -> t without its positional copies, reading them through
-- Reason: {r, c, reason = r, count = c} or {reason = r, count = c} alike
function C.reason_entry(t)
  if rawget(t, "reason") == nil then t.reason = rawget(t, 1) end
  if rawget(t, "count") == nil then t.count = rawget(t, 2) end
  t[1], t[2] = nil, nil
  return setmetatable(t, Reason)
end

-- ---------------------------------------------------------------------------
-- iterators

-- what a listing raises when a page cannot be fetched
local ListError = { __name = "redrive.ListError" }
ListError.__tostring = function(e) return string.format("%s (%s)", tostring(e.message), tostring(e.code)) end

local function check_limit(limit)
  if limit ~= nil and (type(limit) ~= "number" or limit < 0) then
    error("bad argument (limit must be a number >= 0)", 4)
  end
end

-- Listings are lazy iterators (closures). iterator(f) marks f as one, so the
-- REPL can show a listing typed at the prompt (its first rows) where any
-- other function prints as <function>; is_iterator(v) asks. Weak keys: the
-- mark goes with the closure.
local iterators = setmetatable({}, { __mode = "k" })
function C.iterator(f) iterators[f] = true; return f end
function C.is_iterator(v) return iterators[v] == true end

-- paged{fetch, limit, page, map, filter, stop} -> iterator
-- fetch(state) -> list, next_state | nil, msg, code. With offset paging the
-- state is the offset (fetch(offset, n)); with cursor paging the cursor.
-- A page shorter than asked, an empty page, a nil next state or a repeated
-- cursor ends the listing; an error mid-way raises (with its code in the
-- message). filter(rec) may drop records; stop(rec) ends the listing.
local function paged(o)
  check_limit(o.limit)
  local buf, i, state, done, n, seen_state = {}, 0, o.start, false, 0, {}
  local seen_id = o.dedupe and {} or nil
  return C.iterator(function()
    while true do
      if o.limit and n >= o.limit then return nil end
      i = i + 1
      local rec = buf[i]
      if rec == nil then
        if done then return nil end
        local page, nxt, code = o.fetch(state, o.limit and not o.filter and math.max(1, math.min(o.page, o.limit - n)) or o.page)
        if page == nil then
          error(setmetatable({ message = tostring(nxt), code = code or "http" }, ListError), 0)
        end
        if #page == 0 then return nil end
        if nxt == nil or (o.cursor and seen_state[nxt]) then done = true end
        if nxt ~= nil then seen_state[nxt] = true end
        state = nxt
        buf, i = page, 1
        rec = page[1]
      end
      buf[i] = nil
      if seen_id and rec.id ~= nil then
        if seen_id[rec.id] then goto continue end
        seen_id[rec.id] = true
      end
      if o.stop and o.stop(rec) then done = true; buf = {}; return nil end
      if not o.filter or o.filter(rec) then
        n = n + 1
        return o.map and o.map(rec) or rec
      end
      ::continue::
    end
  end)
end

-- offset_iter{fetch = function(offset, n) -> list | nil, msg, code, page, limit, map, filter}
function C.offset_iter(o)
  local page_size = o.page or 100
  return paged {
    start = o.offset or 0, page = page_size, limit = o.limit, map = o.map, filter = o.filter, stop = o.stop,
    fetch = function(offset, n)
      local list, err, code = o.fetch(offset, n)
      if not list then return nil, err, code end
      local nxt = #list >= n and offset + #list or nil
      return list, nxt
    end,
  }
end

-- cursor_iter{fetch = function(cursor, n) -> list, next_cursor | nil, msg, code, ...}
-- Records are de-duplicated by id (a server that repeats a page).
function C.cursor_iter(o)
  return paged {
    start = nil, page = o.page or 100, limit = o.limit, map = o.map, filter = o.filter,
    stop = o.stop, cursor = true, dedupe = true,
    fetch = function(cursor, n)
      local list, nxt, code = o.fetch(cursor, n)
      if not list then return nil, nxt, code end
      if nxt == nil or nxt == "" or nxt == require("redrive").json.null then nxt = nil end
      return list, nxt
    end,
  }
end

-- keyset_iter{fetch = function(after, n) -> list | nil, msg, code, key = "id",
--             page, limit, map, filter, stop}: pages in key order, each page
-- asked for the records after the last key seen.
function C.keyset_iter(o)
  local key = o.key or "id"
  return paged {
    start = nil, page = o.page or 200, limit = o.limit, map = o.map, filter = o.filter, stop = o.stop,
    cursor = true,
    fetch = function(after, n)
      local list, err, code = o.fetch(after, n)
      if not list then return nil, err, code end
      local last = list[#list]
      local nxt = #list >= n and last and last[key] or nil
      return list, nxt
    end,
  }
end

-- resolved_opt(v, fname) -> false | true | nil: the one rule for the
-- `resolved` option of every listing of incomplete executions (local, make,
-- n8n): nil or false -> pending items only (the default), true -> resolved
-- ones only, "any" -> both (nil: no filter). Anything else raises.
function C.resolved_opt(v, fname)
  if v == nil or v == false then return false end
  if v == true then return true end
  if v == "any" then return nil end
  error(string.format("bad argument #1 to '%s' (resolved must be true, false or \"any\", got %s)", fname,
    type(v) == "string" and string.format("%q", v:sub(1, 40)) or type(v)), 3)
end

-- a reason filter (Lua pattern): checked once, matched bounded
-- (redrive.pattern_filter)
function C.pattern(pat, fname)
  return PF.arg(pat, fname, "reason", 2)
end

-- fingerprint_arg(v, fname) -> v: a fingerprint filter (rd.fingerprint's
-- hex id) is a string; anything else is a programmer error
function C.fingerprint_arg(v, fname)
  if v ~= nil and (type(v) ~= "string" or v == "") then
    error("bad argument #1 to '" .. fname .. "' (fingerprint must be a non-empty string, got " .. type(v) .. ")", 3)
  end
  return v
end

-- ---------------------------------------------------------------------------
-- safe retries

-- refusal(e) -> reason a safe retry of execution e is refused, or nil
function C.refusal(e)
  if e.status == "running" then
    return string.format("execution %s is still running (started %s): wait for it or pass safe = false",
      e.id, U.when(e.started_at))
  elseif e.status == "success" or e.status == "warning" then
    return string.format("execution %s succeeded (status %s): nothing to retry; pass safe = false to run it again",
      e.id, e.status)
  elseif e.retry_success_id ~= nil then
    return string.format("execution %s was already retried successfully by execution %s; pass safe = false to retry anyway",
      e.id, tostring(e.retry_success_id))
  end
end

-- chain_refusal(chain, e) -> why a safe retry of e is refused because of its
-- retry chain (root first, as C.chain returns it) | nil. A chain is one piece
-- of work: once any member succeeded there is nothing left to retry (a
-- platform may mark only the execution retried directly), and while any
-- retry in it still runs its outcome is unknown, so a second one would run
-- the work twice.
function C.chain_refusal(chain, e)
  for _, m in ipairs(chain or {}) do
    if tostring(m.id) ~= tostring(e.id) then
      if m.status == "success" or m.status == "warning" then
        return string.format("the retry chain of execution %s already succeeded (execution %s, status %s): "
          .. "nothing to retry; pass safe = false to run it again", e.id, m.id, m.status)
      elseif m.status == "running" then
        return string.format("execution %s of the same retry chain is still running (started %s): its outcome "
          .. "is not known yet; wait for it or pass safe = false", m.id, U.when(m.started_at))
      end
    end
  end
end

local FINISHED = { success = true, warning = true, error = true, canceled = true }
C.FINISHED = FINISHED

-- wait(e, opts, refresh) -> exec | nil, msg, "timeout": polls refresh() with
-- backoff (the client's rate cap and 429 handling apply to each poll) until
-- its status is a finished one. opts.what names e in the timeout message
-- ("execution" by default).
function C.wait(rd, e, opts, refresh)
  opts = opts or {}
  local timeout, delay, max, err
  timeout, err = opts_num(opts.timeout, "timeout", "timeout", false)
  if timeout ~= nil then delay, err = opts_num(opts.interval, "interval", "timeout", 0.25) end
  if delay ~= nil then max, err = opts_num(opts.max_interval, "max_interval", "timeout", 10) end
  if max == nil then return nil, "wait: " .. err, "invalid" end
  local deadline = timeout and rd.now() + timeout
  local cur = e
  while true do
    if FINISHED[cur.status] then return cur end
    if deadline and rd.now() >= deadline then
      return nil, string.format("%s %s still %s after %gs", opts.what or "execution", e.id, tostring(cur.status),
        opts.timeout), "timeout"
    end
    local d = delay * (0.75 + math.random() * 0.5)
    if deadline then d = math.min(d, math.max(0, deadline - rd.now())) end
    rd.sleep(d)
    delay = math.min(delay * 2, max)
    local nxt, err, code = refresh(cur.id)
    if not nxt then return nil, err, code end
    cur = nxt
  end
end

-- wait_opts(opts) -> {timeout, interval, max_interval} when opts.wait is
-- true, nil when not | false, msg, "invalid": the options of a retry's
-- wait = true (item:retry, src:retry), checked before anything is sent.
-- Defaults: timeout 300 s, polls from 1 s doubling to 15 s.
function C.wait_opts(opts)
  if opts.wait ~= nil and type(opts.wait) ~= "boolean" then
    error("bad argument #1 to 'retry' (wait must be a boolean, got " .. type(opts.wait) .. ")", 3)
  end
  if not opts.wait then return nil end
  local o, err = {}, nil
  o.timeout, err = opts_num(opts.timeout, "timeout", "timeout", 300)
  if o.timeout then o.interval, err = opts_num(opts.interval, "interval", "timeout", 1) end
  if o.interval then o.max_interval, err = opts_num(opts.max_interval, "max_interval", "timeout", 15) end
  if not o.max_interval then return false, "retry: " .. tostring(err), "invalid" end
  return o
end

-- retry_attempts(rd, e, opts, once, wait) -> last exec: retry, wait, and
-- retry again while it fails, until `attempts` attempts in all (e is attempt
-- 1), sleeping base * factor^(i-1) s (capped at max, with jitter) between.
-- once(cur, opts) -> new exec [, succeeded (boolean)] | nil, msg, code;
-- wait(new, {timeout}) -> the finished exec
function C.retry_attempts(rd, e, opts, once, wait)
  local n = opts.attempts
  if type(n) ~= "number" or n < 1 then error("bad argument #1 to 'retry' (attempts must be >= 1)", 3) end
  local b = opts.backoff or {}
  local base, factor, max = b.base or b[1] or 1, b.factor or b[2] or 2, b.max or b[3] or 30
  local cur, last, i = e, nil, 1
  local o = opts
  while i < n do
    local new, err, code = once(cur, o)
    if not new then
      if last then return last end
      return nil, err, code
    end
    if new.dry_run then return new end
    last = wait(new, { timeout = opts.timeout }) or new
    i = i + 1
    -- once may say itself whether the attempt succeeded (a boolean): the
    -- local engine's "warning" stopped by a Break handler did not
    local done = err
    if type(done) ~= "boolean" then done = last.status == "success" or last.status == "warning" end
    if done or i >= n then break end
    local delay = math.min(max, base * factor ^ (i - 2)) * (0.5 + math.random() * 0.5)
    rd.sleep(delay)
    cur = last
    o = setmetatable({ safe = true }, { __index = opts })
  end
  return last or e
end

-- chain(start, get, opts) -> {exec...}: walks up `up(e)` (retry_of /
-- parent_id) to the root, then down through `children(root_chain)`.
-- get(id) -> exec | nil, msg, code. Cycles stop the walk; a link that cannot
-- be read is recorded in chain.missing = {{id, error}}.
function C.chain(start, get, opts)
  opts = opts or {}
  local up = opts.up or function(e) return e.retry_of or e.parent_id end
  local by_id, order = { [tostring(start.id)] = start }, {}
  local missing = {}
  local cur, hops = start, 0
  local root = start
  while hops < 1000 do
    local pid = up(cur)
    if pid == nil then break end
    local key = tostring(pid)
    if by_id[key] then missing[#missing + 1] = { id = pid, error = "cycle" }; break end
    local p, err = get(pid)
    if not p or tostring(p.id) ~= key then
      missing[#missing + 1] = { id = pid, error = p and ("asked for " .. key .. ", got " .. tostring(p.id)) or tostring(err) }
      break
    end
    by_id[key] = p
    root, cur, hops = p, p, hops + 1
  end
  -- down: successful retries and whatever the source can list
  local function add(e)
    local key = tostring(e.id)
    if by_id[key] and by_id[key] ~= e then return false end
    by_id[key] = e
    return true
  end
  if opts.children then
    local ok, kids = pcall(opts.children, by_id)
    if not ok and require("redrive.core").rd.is_canceled(kids) then error(kids, 0) end
    if ok then
      for _, e in ipairs(kids or {}) do add(e) end
    else
      missing[#missing + 1] = { error = "listing retries failed: " .. tostring(kids) }
    end
  end
  local frontier = {}
  for _, e in pairs(by_id) do frontier[#frontier + 1] = e end
  local guard = 0
  while #frontier > 0 and guard < 1000 do
    guard = guard + 1
    local e = table.remove(frontier)
    local sid = e.retry_success_id
    if sid ~= nil and not by_id[tostring(sid)] then
      local s, err = get(sid)
      if s and tostring(s.id) == tostring(sid) then
        by_id[tostring(sid)] = s
        frontier[#frontier + 1] = s
      else
        missing[#missing + 1] = { id = sid, error = s and "mismatched id" or tostring(err) }
      end
    end
  end
  -- order: root first, then each retry after the one it retried
  local members = {}
  for _, e in pairs(by_id) do members[#members + 1] = e end
  local function key(e)
    return e.started_at or math.huge, tonumber(e.id) or 0, tostring(e.id)
  end
  table.sort(members, function(a, b)
    if a == root then return b ~= root end
    if b == root then return false end
    local a1, a2, a3 = key(a)
    local b1, b2, b3 = key(b)
    if a1 ~= b1 then return a1 < b1 end
    if a2 ~= b2 then return a2 < b2 end
    return a3 < b3
  end)
  for i, e in ipairs(members) do order[i] = e end
  if #missing > 0 then order.missing = missing end
  return order
end

-- ---------------------------------------------------------------------------
-- failure groups while paging

C.MAX_GROUPS = 10000 -- distinct fingerprints kept while paging (the rest counted)

-- groups(it, opts) -> {{fingerprint, cause, count, first, last, scenarios,
-- scenario_names, example_ids}, ...}, biggest first (then by fingerprint), at
-- most opts.limit (default 100): what the local source computes in SQL,
-- computed here over the failures an iterator yields (items or failed
-- executions: fingerprint, cause, created or started_at, scenario,
-- scenario_name, id). Memory is bounded by C.MAX_GROUPS groups, each with
-- up to 3 example ids and 32 scenarios; a failure of a group past that is
-- counted in list.dropped, one without a fingerprint under "(no message)".
function C.groups(it, opts)
  opts = opts or {}
  local limit = opts_check(opts.limit, "limit", "count", 100)
  local by, n, dropped = {}, 0, 0
  for x in it do
    local fp = x.fingerprint or ""
    local g = by[fp]
    if not g and n >= C.MAX_GROUPS then
      dropped = dropped + 1
    else
      if not g then
        n = n + 1
        g = { fingerprint = x.fingerprint, cause = x.cause or "(no message)", count = 0, scenarios = C.list(),
              scenario_names = C.list(), example_ids = C.list(), _seen = {} }
        by[fp] = g
      end
      g.count = g.count + 1
      local t = x.created or x.started_at
      if type(t) == "number" then
        if not g.first or t < g.first then g.first = t end
        if not g.last or t > g.last then g.last = t end
      end
      if #g.example_ids < 3 then g.example_ids[#g.example_ids + 1] = x.id end
      local sc = x.scenario
      if sc ~= nil and not g._seen[tostring(sc)] and #g.scenarios < 32 then
        g._seen[tostring(sc)] = true
        g.scenarios[#g.scenarios + 1] = sc
        g.scenario_names[#g.scenarios] = x.scenario_name or tostring(sc)
      end
    end
  end
  local list = C.list()
  for _, g in pairs(by) do g._seen = nil; list[#list + 1] = g end
  table.sort(list, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return (a.fingerprint or "") < (b.fingerprint or "")
  end)
  for i = #list, limit + 1, -1 do list[i] = nil end
  if dropped > 0 then list.dropped = dropped end
  return list
end

-- ---------------------------------------------------------------------------
-- health from an iterator of executions

function C.health(it, opts)
  opts = opts or {}
  local top = opts_check(opts.limit or opts.top, "limit", "count", 5)
  top = math.max(1, math.min(20, top))
  local h = { total = 0, finished = 0, succeeded = 0, failed = 0, running = 0 }
  local durations, reasons = {}, {}
  for e in it do
    h.total = h.total + 1
    if e.status == "running" then h.running = h.running + 1
    else
      h.finished = h.finished + 1
      if e.status == "success" or e.status == "warning" then h.succeeded = h.succeeded + 1
      elseif e.status == "error" then
        h.failed = h.failed + 1
        -- grouped by fingerprint (the cause), as the local source does
        local k = e.fingerprint or ((e.error and e.error.message) or "error")
        local r = reasons[k]
        if not r then
          r = { reason = e.cause or (e.error and e.error.message) or "error", count = 0, fingerprint = e.fingerprint }
          reasons[k] = r
        end
        r.count = r.count + 1
      end
      if type(e.duration) == "number" then durations[#durations + 1] = e.duration end
    end
  end
  if h.succeeded + h.failed > 0 then h.success_rate = h.succeeded / (h.succeeded + h.failed) end
  if #durations > 0 then
    local sum = 0
    for _, d in ipairs(durations) do sum = sum + d end
    h.avg_duration = sum / #durations
    table.sort(durations)
    h.p95_duration = durations[math.max(1, math.ceil(0.95 * #durations))]
  end
  local list = {}
  for _, r in pairs(reasons) do
    list[#list + 1] = C.reason_entry { reason = r.reason, count = r.count, fingerprint = r.fingerprint }
  end
  table.sort(list, function(a, b) if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end)
  local topl = C.list()
  for i = 1, math.min(top, #list) do topl[i] = list[i] end
  h.top_reasons = topl
  return h
end

-- ---------------------------------------------------------------------------
-- bulk operations

-- Summaries: one builder for every source's bulk calls. A summary counts
-- every item once, under its status -- succeeded, failed, skipped (a safe
-- retry refused it), not_attempted (never acted on: the call was interrupted
-- first, nothing of it was recorded), or a platform's own (queued, running,
-- unknown) -- and total is their sum. results = {{id, status, execution},
-- ...} and errors = {{id, message, code}, ...} keep the first C.MAX_RESULTS
-- and C.MAX_ERRORS entries (1000 each) in memory; results_truncated and
-- errors_truncated count the rest. An interrupted call (SIGINT,
-- task:cancel) still returns its summary, with interrupted = true (and
-- more = true when it stopped in a listing whose rest it cannot count).
C.MAX_ERRORS, C.MAX_RESULTS = 1000, 1000

-- Streams: a caller that wants every result, not only the first
-- C.MAX_RESULTS (the CLI's --json lines), passes on_result = function(r) to
-- the bulk call; C.summary(opts) keeps it here, beside the summary (which
-- stays plain data), and C.add_result calls it once per item with
-- {id, status, execution, message, code}.
local streams = setmetatable({}, { __mode = "k" })

-- summary([opts]) -> a new, empty summary; opts.on_result (a function or
-- nil) receives each result as it is recorded
function C.summary(opts)
  local s = { total = 0, succeeded = 0, failed = 0, skipped = 0, not_attempted = 0, errors = C.list(),
              results = C.list() }
  local f = type(opts) == "table" and opts.on_result or nil
  if f ~= nil then
    if type(f) ~= "function" then error("bad argument #1 to 'retry' (on_result must be a function)", 3) end
    streams[s] = f
  end
  return s
end

function C.add_error(s, e)
  if #s.errors < C.MAX_ERRORS then s.errors[#s.errors + 1] = e
  else s.errors_truncated = (s.errors_truncated or 0) + 1 end
end

-- add_result(s, id, status, execution [, o]): one entry of s.results
-- (bounded), and of the summary's stream (every one; o = {message, code}).
-- A stream that raises is dropped (s.on_result_error says why) and the
-- bulk call goes on: a printing callback must not decide its outcome.
function C.add_result(s, id, status, execution, o)
  s.results = s.results or C.list()
  if #s.results < C.MAX_RESULTS then
    s.results[#s.results + 1] = { id = id, status = status, execution = execution }
  else s.results_truncated = (s.results_truncated or 0) + 1 end
  local f = streams[s]
  if f then
    local ok, err = pcall(f, { id = id, status = status, execution = execution,
                               message = o and o.message ~= nil and tostring(o.message) or nil, code = o and o.code })
    if not ok then
      if require("redrive.core").rd.is_canceled(err) then error(err, 0) end
      streams[s], s.on_result_error = nil, tostring(err)
    end
  end
end

-- outcome(s, id, status, o): one item, counted under status and in total,
-- listed in results; o = {execution = id, message, code}: a message also
-- goes to errors (with skipped = true for a skipped item).
function C.outcome(s, id, status, o)
  o = o or {}
  s.total = s.total + 1
  s[status] = (s[status] or 0) + 1
  C.add_result(s, id, status, o.execution, o)
  if o.message ~= nil then
    C.add_error(s, { id = id, message = tostring(o.message), code = o.code, execution_id = o.execution,
                     skipped = status == "skipped" or nil })
  end
end

-- not_attempted(s, n): n more items an interrupted call never reached
-- (counted, not listed: their ids may not even be known)
function C.not_attempted(s, n)
  if n > 0 then s.not_attempted, s.total = s.not_attempted + n, s.total + n end
end

-- drive(rd, s, o) -> interrupted: the bulk loop of every source. Runs
-- o.act(t, id) for each target of o.targets (a list or an iterator; o.id(t)
-- names it) with rd.each at o.concurrency; act records its item's outcome in
-- s itself. A cancellation (rd.is_canceled: SIGINT, task:cancel) stops it:
-- rd.each cancels the calls in flight and waits for them; each item whose
-- act did not return is settled by o.settle(t, id) when given (what the
-- store knows of it), else counted not_attempted, and so is every target of
-- a list never reached (an iterator left before its end sets s.more = true:
-- more items were not reached, how many is not known, unless o.counts_rest
-- says the caller counts them); s.interrupted = true and nothing is raised.
-- Another raise of act counts its item failed; a failing iterator raises.
function C.drive(rd, s, o)
  local list = type(o.targets) == "table" and o.targets or nil
  local closed, inflight, i, pulled, ended = false, {}, 0, 0, false
  local function next_target()
    if closed then return nil end
    local t
    if list then i = i + 1; t = list[i] else t = o.targets() end
    if t ~= nil then pulled = pulled + 1 else ended = true end
    return t
  end
  local ok, r = pcall(rd.each, next_target, function(t)
    local id = o.id and o.id(t) or t
    inflight[id] = t
    local aok, err = pcall(o.act, t, id)
    if not aok and rd.is_canceled(err) then error(err, 0) end -- stops rd.each; id stays in flight
    inflight[id] = nil
    if not aok then C.outcome(s, id, "failed", { message = err }) end
  end, { concurrency = o.concurrency })
  closed = true
  local interrupted = not ok
  if not ok and not rd.is_canceled(r) then error(r, 0) end
  for _, e in ipairs(ok and r.errors or {}) do
    if rd.is_canceled(e.error) then interrupted = true end
  end
  if not interrupted then return false end
  s.interrupted = true
  for id, t in pairs(inflight) do
    if not (o.settle and o.settle(t, id)) then
      C.outcome(s, id, "not_attempted", { message = "interrupted in flight: nothing of it was recorded" ..
        (o.in_flight_note or "") })
    end
  end
  if list then C.not_attempted(s, #list - pulled)
  elseif not ended and not o.counts_rest then s.more = true end
  return true
end

function C.set_of(list, what, fname)
  local set = {}
  if list == nil then return set end
  if type(list) ~= "table" then error("bad argument #1 to '" .. fname .. "' (" .. what .. " must be a list of ids)", 3) end
  for _, id in ipairs(list) do set[tostring(id)] = true end
  return set
end

-- progress(rd, opts, total, verb) -> {update(s), finish(s)} | nil
function C.progress(rd, want, total, verb)
  if type(want) == "function" then
    return { update = want, finish = function() end }
  end
  if not (want == true or (want == nil and U.stderr_is_tty())) then return nil end
  return U.progress_bar(rd, total, verb)
end

-- bulk(rd, opts, spec) -> summary (see C.summary)
-- spec.targets: list or iterator of targets (records or ids); spec.id(t);
-- spec.check(t) -> refusal | nil (safe retries; nil when forced or fine);
-- spec.act(t, forced) -> true | {status, execution, message} | nil, msg,
-- code, {execution}; spec.verb; spec.total; spec.src: each act goes through
-- its mutation gate (one event per target). In a dry run act is not called:
-- the summary counts would_<action>. Interrupted (SIGINT, task:cancel), it
-- returns its summary with interrupted = true (C.drive).
function C.bulk(rd, opts, spec)
  local concurrency, cerr = opts_num(opts.concurrency or spec.concurrency, "concurrency", "concurrency", 16)
  if not concurrency then error("bad argument #1 to '" .. (spec.fname or "retry") .. "' (" .. cerr .. ")", 3) end
  local safe = opts.safe ~= false
  local dry = G.dry_run(rd)
  local s = C.summary(opts)
  if dry then s.dry_run, s.action, s.would = true, spec.action or "retry", 0 end
  local bar = C.progress(rd, opts.progress, spec.total, spec.verb)
  local sample = {}
  local function act(t, id)
    local refusal, forced
    if spec.check then
      local ok, why, code = pcall(spec.check, t)
      if not ok then
        if rd.is_canceled(why) then error(why, 0) end -- C.drive stops the run
        C.outcome(s, id, "failed", { message = why })
        if bar then bar.update(s) end
        return
      end
      refusal = why
      if refusal and code ~= "skip" and code ~= nil and code ~= "conflict" then
        C.outcome(s, id, "failed", { message = refusal, code = code })
        if bar then bar.update(s) end
        return
      end
    end
    if refusal then
      if safe then
        C.outcome(s, id, "skipped", { message = refusal })
        if bar then bar.update(s) end
        return
      end
      forced = true
    end
    local ok, err, code, res = G.mutate(spec.src, { action = spec.action or "retry", id = id, quiet = true },
      spec.act, t, forced)
    if type(ok) == "table" and ok.dry_run then
      C.outcome(s, id, "would")
      if #sample < 3 then sample[#sample + 1] = tostring(id) end
    elseif ok then
      -- act may say more than "done": {status = "running" | "queued" |
      -- "unknown" | "succeeded", execution}, counted under its status
      local st = type(ok) == "table" and ok.status or "succeeded"
      local o = type(ok) == "table" and ok or {}
      C.outcome(s, id, st, { execution = o.execution, message = st ~= "succeeded" and o.message or nil,
                              code = o.code or st })
    elseif G.skipped(code) then -- another host has it, or did it (the ledger)
      C.outcome(s, id, "skipped", { message = err, code = code })
    else
      C.outcome(s, id, "failed", { execution = type(res) == "table" and res.execution or nil,
                                   message = err, code = code })
    end
    if bar then bar.update(s) end
  end
  C.drive(rd, s, { targets = spec.targets, id = spec.id, act = act, concurrency = concurrency,
                   in_flight_note = "; the platform may have received its request" })
  if bar then bar.finish(s) end
  if dry then
    s["would_" .. (spec.action or "retry")] = s.would
    io.stderr:write(string.format("dry-run: would %s %d %s%s%s\n", spec.action or "retry", s.would,
      spec.noun or "item(s)", s.skipped > 0 and string.format(", skipping %d", s.skipped) or "",
      #sample > 0 and (": " .. table.concat(sample, ", ") .. (s.would > #sample and ", ..." or "")) or ""))
  end
  return s
end

-- iterator over a list of ids minus except
function C.ids_iter(ids, except)
  local i = 0
  return function()
    while true do
      i = i + 1
      local id = ids[i]
      if id == nil then return nil end
      if not except[tostring(id)] then return id end
    end
  end
end

-- filter an iterator
function C.filter_iter(it, keep)
  return function()
    while true do
      local v = it()
      if v == nil then return nil end
      if keep(v) then return v end
    end
  end
end

return C

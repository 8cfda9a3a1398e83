-- rd.connect: picks a source implementation by kind (or by profile from the
-- config file) and returns the source object. Each kind lives in
-- lua/redrive/source/<kind>.lua and exports `new(rd, opts) -> src | nil, err, code`.
--
-- Which store a local source opens is decided here, and only here:
--   1. `db` (or `path`) given to rd.connect{...} by the caller,
--   2. `redrive --db PATH` (rd._db, set by redrive.cli),
--   3. $REDRIVE_DB,
--   4. the profile's `db`,
--   5. the default path (rd_store_default_path: $XDG_DATA_HOME/redrive/redrive.db,
--      else ~/.local/share/redrive/redrive.db).
-- The kind's `new` gets the chosen path as opts.db (nil: the default).
--
-- The ledger a remote source shares with other hosts (lua/redrive/ledger.lua)
-- is chosen here too, with the same precedence: `ledger` given to
-- rd.connect{...}, `redrive --ledger TARGET` (rd._ledger), $REDRIVE_LEDGER,
-- the profile's `ledger`; none by default. `ledger = false` (or "none")
-- at any level turns it off below it. TARGET is a SQLite path or a
-- postgresql:// URL; its password may come from `ledger_password_env`.
-- The kinds of source, the one list: a remote one's mutations go through
-- its ledger when one is set (a new remote kind is guarded by saying so here)
local KINDS = { ["local"] = "store", make = "remote", n8n = "remote", sailpoint = "remote", kaizen = "remote" }

return function(rd)
  local config -- loaded once, on first use of a profile

  -- The config file: $REDRIVE_CONFIG, else $XDG_CONFIG_HOME/redrive/config.lua,
  -- else ~/.config/redrive/config.lua. It returns
  -- { default = "name", profiles = { name = { kind = ..., ... } } }.
  local function config_path()
    local p = os.getenv("REDRIVE_CONFIG")
    if p then return p end
    local xdg = os.getenv("XDG_CONFIG_HOME")
    if xdg and xdg ~= "" then return xdg .. "/redrive/config.lua" end
    return (os.getenv("HOME") or ".") .. "/.config/redrive/config.lua"
  end

  -- A broken config is the user's setup, not a script's bug: one line naming
  -- the file, code "usage" (the command line exits 2), never a traceback.
  local USAGE = { __tostring = function(e) return e.message end }
  local function usage_error(msg) error(setmetatable({ message = msg, code = "usage" }, USAGE), 0) end
  local function config_error(path, what) usage_error("config " .. path .. ": " .. what) end

  -- The file runs with an empty environment in the sandbox (its limits:
  -- lua/redrive/sandbox.lua): a loop or a runaway allocation in it stops
  -- with an error instead of hanging every command.
  local function load_config()
    if config then return config end
    local path = config_path()
    local f = io.open(path, "r")
    if not f then config = { profiles = {} }; return config end
    f:close()
    local chunk, err = loadfile(path, "t", {})
    if not chunk then config_error(path, (err:gsub("^" .. path:gsub("%p", "%%%0") .. ":", "line "))) end
    local S = require "redrive.sandbox"
    local limits, lerr = S.limits()
    if not limits then config_error(path, lerr) end
    local ok, res = S.run({ name = "config " .. path, limits = limits }, chunk)
    if not ok then
      if rd.is_canceled(res) then error(res, 0) end
      local msg, code = S.failure(res)
      if code ~= "script" then -- a limit: its message names the file and line already
        usage_error(msg)
      end
      config_error(path, msg)
    end
    if type(res) ~= "table" then config_error(path, "must return a table, got " .. type(res)) end
    if res.profiles == nil then res.profiles = {} end
    if type(res.profiles) ~= "table" then config_error(path, "profiles must be a table") end
    config = res
    return config
  end

  function rd.config()
    return load_config(), config_path()
  end

  local function nonempty(s) return s ~= nil and s ~= "" and s or nil end

  -- store_path(explicit, profile_db) -> path | nil (the default path): the
  -- precedence above, in one place
  local function store_path(explicit, profile_db)
    return explicit or nonempty(rd._db) or nonempty(os.getenv("REDRIVE_DB")) or profile_db
  end

  -- ledger_target(explicit, profile_ledger) -> target | nil: the same
  -- precedence for the ledger
  local function ledger_target(explicit, profile_ledger)
    local t = explicit
    if t == nil then t = nonempty(rd._ledger) end
    if t == nil then t = nonempty(os.getenv("REDRIVE_LEDGER")) end
    if t == nil then t = profile_ledger end
    if t == false or t == "none" then return nil end
    return t
  end

  -- rd._ledger_target() -> the ledger rd.connect() would give the selected
  -- profile's sources (redrive audit reads it), or nil
  function rd._ledger_target()
    local name = rd._default_profile or nonempty(os.getenv("REDRIVE_PROFILE")) or load_config().default
    local p = name and load_config().profiles[name]
    return ledger_target(nil, type(p) == "table" and p.ledger or nil), type(p) == "table" and p or nil
  end

  -- The profile rd.connect() uses: --profile, $REDRIVE_PROFILE, the config's
  -- `default`; nil when there is none (the local source then).
  local function selected_profile()
    return rd._default_profile or nonempty(os.getenv("REDRIVE_PROFILE")) or load_config().default
  end

  -- rd._selected() -> name, profile table | nil: what rd.connect() would use
  -- (the profile may be missing from the config: rd.connect() says so)
  function rd._selected()
    local name = selected_profile()
    if not name then return nil end
    return name, load_config().profiles[name]
  end

  -- rd.connect() -> local source on the default store (or the default profile)
  -- rd.connect("name") -> the profile `name` of the config file
  -- rd.connect{kind = ..., ...} -> a source of that kind
  function rd.connect(opts)
    if opts == nil then opts = selected_profile() or { kind = "local" } end
    local o = {}
    if type(opts) == "string" then
      local cfg = load_config()
      local p = cfg.profiles[opts]
      if not p then return nil, "no profile '" .. opts .. "' in " .. config_path(), "not_found" end
      if type(p) ~= "table" then config_error(config_path(), "profile '" .. opts .. "' must be a table") end
      for k, v in pairs(p) do o[k] = v end
      o.profile = opts
      local pdb = o.db or o.path
      o.path = nil
      o.db = store_path(nil, pdb)
      if o.ledger ~= nil and o.ledger ~= false and type(o.ledger) ~= "string" then
        config_error(config_path(), "profile '" .. opts .. "': ledger must be a path or postgresql:// URL")
      end
      o.ledger = ledger_target(nil, o.ledger)
    elseif type(opts) == "table" then
      for k, v in pairs(opts) do o[k] = v end
      local explicit = o.db or o.path
      if explicit ~= nil and type(explicit) ~= "string" then
        error("bad argument #1 to 'connect' (db must be a path or postgresql:// URL string)", 2)
      end
      o.path = nil
      o.db = store_path(explicit, nil)
      if o.ledger ~= nil and o.ledger ~= false and type(o.ledger) ~= "string" then
        error("bad argument #1 to 'connect' (ledger must be a path, a postgresql:// URL or false)", 2)
      end
      o.ledger = ledger_target(o.ledger, nil)
    else
      error("bad argument #1 to 'connect' (table, profile name or nil expected, got " .. type(opts) .. ")", 2)
    end
    local kind = o.kind or "local"
    if not KINDS[kind] and o.profile ~= nil then
      config_error(config_path(), "profile '" .. o.profile .. "': unknown kind '" .. tostring(kind) ..
        "' (expected local, make, n8n, sailpoint or kaizen)")
    elseif not KINDS[kind] then
      error("bad argument #1 to 'connect' (unknown kind '" .. tostring(kind) ..
        "': expected local, make, n8n, sailpoint or kaizen)", 2)
    end
    local impl = require("redrive.source." .. kind)
    local src, err, code = impl.new(rd, o)
    if src and o.profile ~= nil and type(src) == "table" then src.profile = o.profile end
    if src and o.ledger ~= nil and KINDS[kind] == "remote" then
      require("redrive.ledger").attach(src, o.ledger, { password_env = o.ledger_password_env, ttl = o.ledger_ttl })
    end
    return src, err, code
  end

  -- rd._describe(src) -> "local store /x/y.db (profile 'ops')" |
  -- "local store postgresql://ops@db.internal/redrive (no profile)" |
  -- "make at eu2.make.com (profile 'make_eu')": what a command acts on, for
  -- the line it prints first. Never a token or a password: a store's path
  -- is shown as the store gives it (a URL without its password, made by the
  -- C redactor), a remote's host without userinfo or query.
  function rd._describe(src)
    local where
    if src.kind == "local" then
      local ok, p = pcall(src.path, src)
      where = "local store " .. (ok and tostring(p) or "?")
    else
      local host = src.base_url and tostring(src.base_url):match("^%a[%w+.-]*://([^/?#]*)")
      where = tostring(src.kind) .. " at " .. (host and host:gsub("^.*@", "") or "?")
    end
    local profile = src.profile
    return where .. (profile and (" (profile '" .. profile .. "')") or " (no profile)")
  end
end

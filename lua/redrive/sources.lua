-- rd.connect: picks a source implementation by kind (or by profile from the
-- config file) and returns the source object. Each kind lives in
-- lua/redrive/source/<kind>.lua and exports `new(rd, opts) -> src | nil, err, code`.
local KINDS = { ["local"] = true, make = true, n8n = true, sailpoint = true, kaizen = true }

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

  local function load_config()
    if config then return config end
    local path = config_path()
    local f = io.open(path, "r")
    if not f then config = { profiles = {} }; return config end
    f:close()
    local chunk, err = loadfile(path, "t", {})
    if not chunk then error("redrive: config " .. err, 0) end
    local ok, res = pcall(chunk)
    if not ok then error("redrive: config " .. path .. ": " .. tostring(res), 0) end
    if type(res) ~= "table" then error("redrive: config " .. path .. " must return a table", 0) end
    res.profiles = res.profiles or {}
    config = res
    return config
  end

  function rd.config()
    return load_config(), config_path()
  end

  -- rd.connect() -> local source on the default store (or the default profile)
  -- rd.connect("name") -> the profile `name` of the config file
  -- rd.connect{kind = ..., ...} -> a source of that kind
  function rd.connect(opts)
    if opts == nil then
      local name = rd._default_profile or os.getenv("REDRIVE_PROFILE")
      if not name then
        local cfg = load_config()
        name = cfg.default
      end
      opts = name and name or { kind = "local" }
    end
    if type(opts) == "string" then
      local cfg = load_config()
      local p = cfg.profiles[opts]
      if not p then return nil, "no profile '" .. opts .. "' in " .. config_path(), "not_found" end
      local o = {}
      for k, v in pairs(p) do o[k] = v end
      o.profile = opts
      opts = o
    end
    if type(opts) ~= "table" then
      error("bad argument #1 to 'connect' (table, profile name or nil expected, got " .. type(opts) .. ")", 2)
    end
    local kind = opts.kind or "local"
    if not KINDS[kind] then
      error("bad argument #1 to 'connect' (unknown kind '" .. tostring(kind) ..
        "': expected local, make, n8n, sailpoint or kaizen)", 2)
    end
    local impl = require("redrive.source." .. kind)
    return impl.new(rd, opts)
  end
end

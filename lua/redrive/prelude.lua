-- The pure-Lua half of the `redrive` module: combinators on top of the C
-- tasks, and the entry points implemented in Lua (sources). Receives the
-- module table built by luaopen_redrive and completes it.
return function(rd)
  local spawn, traceback = rd.spawn, debug.traceback

  -- Wait for each task in turn, handing its outcome to on_result(i, ...).
  -- If the waiting task is cancelled (or on_result raises), on_stop() runs,
  -- the tasks are cancelled too and waited for, so nothing keeps running
  -- behind the caller's back, and the error goes on.
  local function wait_all(tasks, on_result, on_stop)
    local ok, err = pcall(function()
      for i, t in ipairs(tasks) do on_result(i, t:wait()) end
    end)
    if ok then return end
    if on_stop then on_stop() end
    for _, t in ipairs(tasks) do t:cancel() end
    for _, t in ipairs(tasks) do pcall(t.wait, t) end
    error(err, 0)
  end

  -- rd.all{fn1, fn2, ...} -> {r1, r2, ...} | nil, err
  -- Runs every function as its own task and waits for all of them; ri is the
  -- first result of fn i. If any fails, returns nil and the first error once
  -- all have finished.
  function rd.all(fns)
    if type(fns) ~= "table" then error("bad argument #1 to 'all' (table expected, got " .. type(fns) .. ")", 2) end
    local tasks = {}
    for i, fn in ipairs(fns) do
      if type(fn) ~= "function" then error("bad argument #1 to 'all' (element " .. i .. " is not a function)", 2) end
      tasks[i] = spawn(function() return xpcall(fn, traceback) end)
    end
    local results, first_err = {}, nil
    wait_all(tasks, function(i, ok, res_or_err)
      if ok then results[i] = res_or_err
      elseif first_err == nil then first_err = res_or_err end
    end)
    if first_err ~= nil then return nil, first_err end
    return results
  end

  -- rd.each(list_or_iterator, fn, {concurrency = N}) -> {ok, failed, errors}
  -- Calls fn(item, i) for every item with at most N calls in flight. A
  -- failing call is recorded in errors ({index, item, error}) and the others
  -- go on.
  function rd.each(src, fn, opts)
    if type(fn) ~= "function" then error("bad argument #2 to 'each' (function expected, got " .. type(fn) .. ")", 2) end
    local n, nerr = require("redrive.opts").number(opts and opts.concurrency, "concurrency", "concurrency", 16)
    if not n then error("bad argument #3 to 'each' (" .. nerr .. ")", 2) end
    local next_item
    if type(src) == "table" then
      local i = 0
      next_item = function() i = i + 1; if src[i] ~= nil then return i, src[i] end end
    elseif type(src) == "function" then
      local i, done = 0, false
      next_item = function()
        if done then return nil end
        local v = src()
        if v == nil then done = true; return nil end
        i = i + 1
        return i, v
      end
    else
      error("bad argument #1 to 'each' (table or iterator expected, got " .. type(src) .. ")", 2)
    end
    -- Iterators (e.g. paginated listings that fetch a page) are not
    -- reentrant: one worker at a time pulls the next item.
    -- A failing iterator (a listing whose page cannot be read) fails the
    -- whole call once, after every worker has stopped: one error, not one
    -- per worker left for nobody to wait on.
    local pull, busy, cv, pull_err = next_item, false, rd.cond(), nil
    next_item = function()
      while busy do cv:wait() end
      if pull_err ~= nil then cv:signal(); return nil end -- wake the next one: it stops too
      busy = true
      local ok, i, v = pcall(pull)
      busy = false
      cv:signal()
      if not ok then pull_err = i; return nil end
      return i, v
    end
    local summary = { ok = 0, failed = 0, errors = rd.json.array {} }
    local stopped = false
    local function worker()
      while not stopped do
        local i, item = next_item()
        if i == nil then return end
        local ok, err = xpcall(fn, traceback, item, i)
        if ok then summary.ok = summary.ok + 1
        else
          summary.failed = summary.failed + 1
          summary.errors[#summary.errors + 1] = { index = i, item = item, error = err }
          -- an interrupt (Ctrl-C, SIGTERM, task:cancel) stops the whole map
          if rd.is_canceled(err) then stopped = true end
        end
      end
    end
    local workers = {}
    for w = 1, n do workers[w] = spawn(worker) end
    local werr
    wait_all(workers, function(_, ok, err)
      if ok == nil and err and werr == nil then werr = err end
    end, function() stopped = true end)
    if pull_err ~= nil then error(pull_err, 0) end -- the iterator itself failed
    if werr ~= nil then error(werr, 0) end
    return summary
  end

  require("redrive.sources")(rd)
end

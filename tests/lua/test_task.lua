-- Loop and tasks: rd.spawn, task:wait, rd.sleep, rd.now, rd.all, rd.each, rd.run
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"

test("task-1.1 spawn returns the function's results", function()
  local t = rd.spawn(function(a, b) return a + b, "x" end, 2, 3)
  local s, x = t:wait()
  eq(s, 5); eq(x, "x")
  eq(t:status(), "done")
  -- waiting twice gives the same results
  eq(select("#", t:wait()), 2)
end)

test("task-1.2 a failing task returns nil and a traceback naming file:line", function()
  local t = rd.spawn(function() error("boom") end)
  local r, err = t:wait()
  eq(r, nil)
  match(err, "test_task%.lua:%d+: boom")
  match(err, "stack traceback")
  eq(t:status(), "failed")
end)

test("task-1.3 an error in one task does not disturb the others", function()
  local bad = rd.spawn(function() rd.sleep(0.01); error("bad one") end)
  local good = rd.spawn(function() rd.sleep(0.02); return "fine" end)
  eq(good:wait(), "fine")
  eq(bad:wait(), nil)
end)

test("task-1.4 sleeps overlap: 50 sleeping tasks are all parked at once", function()
  local asleep, peak = 0, 0
  local tasks = {}
  for i = 1, 50 do
    tasks[i] = rd.spawn(function()
      asleep = asleep + 1
      if asleep > peak then peak = asleep end
      rd.sleep(0.02)
      asleep = asleep - 1
      return i
    end)
  end
  for i = 1, 50 do eq(tasks[i]:wait(), i) end
  eq(peak, 50)
end)

test("task-1.5 rd.now advances with rd.sleep", function()
  local t0 = rd.now()
  rd.sleep(0.03)
  ok(rd.now() - t0 >= 0.029, "now advanced", rd.now() - t0)
end)

test("task-1.6 rd.all collects results in order", function()
  local r = rd.all {
    function() rd.sleep(0.02); return "a" end,
    function() return "b" end,
    function() rd.sleep(0.01); return "c" end,
  }
  eq(r, { "a", "b", "c" })
end)

test("task-1.7 rd.all reports the first error after all finished", function()
  local finished = false
  local r, err = rd.all {
    function() error("first") end,
    function() rd.sleep(0.02); finished = true end,
  }
  eq(r, nil); match(err, "first"); ok(finished, "the other function completed")
end)

test("task-1.8 rd.each bounds concurrency and collects errors", function()
  local inflight, peak = 0, 0
  local items = {}
  for i = 1, 40 do items[i] = i end
  local s = rd.each(items, function(item)
    inflight = inflight + 1
    if inflight > peak then peak = inflight end
    rd.sleep(0.005)
    inflight = inflight - 1
    if item % 10 == 0 then error("item " .. item .. " failed") end
  end, { concurrency = 4 })
  eq(s.ok, 36); eq(s.failed, 4); eq(#s.errors, 4)
  eq(peak, 4)
  match(s.errors[1].error, "item %d+ failed")
end)

test("task-1.9 rd.each consumes an iterator lazily", function()
  local produced = 0
  local function iter()
    if produced >= 10 then return nil end
    produced = produced + 1
    rd.sleep(0.001) -- an iterator may wait
    return produced
  end
  local sum = 0
  local s = rd.each(iter, function(v) sum = sum + v end, { concurrency = 3 })
  eq(s.ok, 10); eq(sum, 55)
end)

test("task-1.10 misuse raises", function()
  raises("function expected", rd.spawn, 42)
  raises("option 'seconds' must be a number of seconds >= 0 and <= 1000000000, got %-1", rd.sleep, -1)
  raises("got inf", rd.sleep, math.huge)
  raises("got nan", rd.sleep, 0 / 0)
  raises("not a task", function()
    local co = coroutine.wrap(function() rd.sleep(0) end)
    co()
  end)
  raises("function expected", rd.each, {}, nil)
end)

test("task-1.11 task:cancel interrupts a sleeping task", function()
  local t = rd.spawn(function() rd.sleep(10) end)
  H.wait_until(function() return t:status() == "waiting" end, "the task to park in rd.sleep")
  eq(t:cancel(), true)
  local r, err = t:wait()
  eq(r, nil); ok(rd.is_canceled(err), "cancelled: rd.canceled", err)
end)

test("task-1.12 to-be-closed variables run when a task fails", function()
  local closed = false
  local t = rd.spawn(function()
    local x <close> = setmetatable({}, { __close = function() closed = true end })
    rd.sleep(0.001)
    error("after close var")
  end)
  t:wait()
  ok(closed, "__close ran")
end)

test("task-1.13 coroutine.yield inside a task just lets others run", function()
  local order = {}
  local a = rd.spawn(function() order[#order + 1] = "a1"; coroutine.yield(); order[#order + 1] = "a2" end)
  local b = rd.spawn(function() order[#order + 1] = "b1" end)
  a:wait(); b:wait()
  eq(order, { "a1", "b1", "a2" })
end)

test("task-1.14 a thousand tasks", function()
  local tasks = {}
  for i = 1, 1000 do tasks[i] = rd.spawn(function() rd.sleep(0.001 * (i % 5)); return i end) end
  local sum = 0
  for i = 1, 1000 do sum = sum + tasks[i]:wait() end
  eq(sum, 500500)
end)

test("task-1.15 stock lua5.4 main chunk blocks on the loop, and unwaited failures are reported", function()
  local root = H.root
  local cmd = string.format(
    [[cd %s && lua5.4 -e 'package.cpath="%s/?.so;"..package.cpath
      local rd = require "redrive"
      local t = rd.spawn(function() rd.sleep(0.01); return 7 end)
      rd.sleep(0.02)
      print("waited", t:wait())
      rd.spawn(function() error("lost task") end)
      rd.run()' 2>&1]], root, os.getenv("RD_BUILD") or "build")
  if os.getenv("SAN") == "1" then return end -- stock lua cannot load an ASan module
  local p = io.popen(cmd)
  local out = p:read("a"); p:close()
  match(out, "waited\t7")
  match(out, "nobody waited for it: .*lost task")
end)

test("task-1.16 rd.each: an iterator that fails mid-way fails the call once, every worker stopped", function()
  local f = H.tmpname(".lua")
  local fh = assert(io.open(f, "w"))
  fh:write([[
    local rd = require "redrive"
    local n = 0
    local ok, err = pcall(rd.each, function()
      n = n + 1
      if n > 3 then error("listing failed (auth)", 0) end
      rd.sleep(0.001)
      return n
    end, function() rd.sleep(0.002) end, { concurrency = 8 })
    print(ok, err)
  ]])
  fh:close()
  local p = io.popen(string.format("%q %q 2>&1", os.getenv("REDRIVE"), f))
  local out = p:read("a"); p:close()
  os.remove(f)
  eq(out, "false\tlisting failed (auth)\n") -- no trace per worker, no deadlock
end)

H.done()

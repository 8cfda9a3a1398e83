-- The text of `redrive --help` around its commands and global options
-- sections (which lua/redrive/cli/commands.lua builds from its command
-- table and the global options' table, lua/redrive/cli/util.lua).
local M = {}

local HEAD = [==[
usage: redrive [options] [script.lua [args...]]   run a script (a task on the loop)
       redrive [options] -e 'code' [script [args]] run code (then the script)
       redrive [options] - [args...]              read the script from stdin
       redrive [options]                          the REPL (on a terminal)
       redrive [options] COMMAND [args...]

]==]

local OPTIONS = [==[
options:
  -e CODE          run CODE
  -l NAME          require module NAME (global NAME) before the script; -l g=NAME
  -v, --version    print the version
  -h, --help       this help
global options (before or after a command):
]==]

local TAIL = [==[

exit status: 0 ok, 1 script error (a command: it failed, e.g. a retry failed or
the source cannot do that), 2 usage error, 3 source unreachable or
authentication refused, 130 interrupted (SIGINT/SIGTERM).
environment: REDRIVE_DB, REDRIVE_LEDGER, REDRIVE_LEDGER_TTL, REDRIVE_PROFILE,
REDRIVE_CONFIG, REDRIVE_HISTORY,
REDRIVE_DRY_RUN=1, REDRIVE_SANDBOX_TIMEOUT / _MEMORY / _INSTRUCTIONS (limits of
lua:Run and rule code). See redrive(1).

Lua API (module `redrive`, preloaded as `rd`; failures return nil, msg, code):
  tasks   t = rd.spawn(fn, ...); t:wait(); rd.sleep(0.5); rd.now(); rd.time()
          rd.all{f1, f2}; rd.each(list_or_iter, fn, {concurrency = 8}); rd.run()
  json    rd.json.decode('[1]'); rd.json.encode(v, {pretty = true}); rd.json.null
          rd.json.array{}; rd.json.object{}
  pattern rd.pattern.find/match/gmatch/gsub: string.* with a step budget (code
          'limit'); rd.pattern.bounded(steps); rd.pattern.check(p)
  http    res = rd.http.request{url = u, method = 'POST', json = {a = 1},
            headers = {}, query = {}, timeout = 5, follow = true, verify = true}
          res.status, res.headers['content-type'], res.body, res:json()
  sources src = rd.connect() | rd.connect('profile') | rd.connect{kind = 'n8n', ...}
          for e in src:executions{scenario = 1, status = 'error'} do ... end
          e = src:execution(id); e:run_data(); e:retry{attempts = 3}; e:wait{timeout = 60}
          e:chain(); e:delete()
          for it in src:incomplete{reason = 'HTTP 5%d%d'} do ... end  (resolved = true | 'any')
          it = src:incomplete_item(id); it:blueprint(); it:bundle(); it:logs{status = 3}
          it:patch{blueprint = bp, failer = 2}; it:retry{wait = true}; it:delete()
          src:retry{all = true, except = {id}, concurrency = 16, safe = true, wait = true,
            on_result = function(r) end}  -> {total, succeeded, failed, ..., results}
          src:delete_incomplete{all = true, confirmed = true}; src:health{scenario = 1}
  jobs    job = src:retry{all = true, job = true} (delete_incomplete too): returns at
          once; job:status(); job:wait(); job:cancel(); job:results(); src:jobs{state}
  local   sc = src:scenario_create{name = 'x', blueprint = bp}; src:run(sc.id, {input = {}})
          src:scenario(id); src:scenarios(); src:scenario_update(id, {blueprint = bp})
  blueprint bp = rd.blueprint(t_or_json); bp:get('/flow/0/mapper/url'); bp:set(p, v)
          bp:remove(p); bp:merge{name = 'y'}; bp:apply{{op = 'test', path = '/name', value = 'x'}}
          bp:diff(other); bp:module(3).mapper.url = u; bp:modules{module = 'http:*'}
          bp:validate(); bp:json{pretty = true}; bp:copy()
  triage  for _, g in ipairs(src:groups{since = rd.time() - 3600}) do ... end
            (g.fingerprint, g.cause, g.count, g.first, g.last, g.scenarios)
          src:retry{all = true, fingerprint = fp}; src:resolve{ids = {id}}
          fp, cause = rd.fingerprint(message)
  dry run rd.dry_run(true); rd.is_dry_run()     logging: rd.verbose(true)
]==]

-- text(commands, globals) -> the whole help, with `commands` and `globals`
-- (the lines of those sections, from lua/redrive/cli/commands.lua)
function M.text(commands, globals)
  return HEAD .. "commands (they work on every source; --profile picks it; the ones that change\n" ..
    "something first print on stderr the source they act on; redrive help COMMAND\n" ..
    "or redrive COMMAND --help for one command):\n" .. commands .. "\n\n" .. OPTIONS .. globals .. "\n" .. TAIL
end

return M

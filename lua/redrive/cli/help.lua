-- The text of `redrive --help` around its commands section (which
-- lua/redrive/cli/commands.lua builds from its command table).
local M = {}

local HEAD = [==[
usage: redrive [options] [script.lua [args...]]   run a script (a task on the loop)
       redrive [options] -e 'code' [script [args]] run code (then the script)
       redrive [options] - [args...]              read the script from stdin
       redrive [options]                          the REPL (on a terminal)
       redrive [options] COMMAND [args...]

]==]

local TAIL = [==[
options (also accepted after a command):
  -e CODE          run CODE
  -l NAME          require module NAME (global NAME) before the script; -l g=NAME
  -v, --version    print the version
  -h, --help       this help
  --dry-run        mutating calls log what they would do and change nothing
  --json           results and errors as JSON lines on stdout
  --db PATH|URL    store of the local source: a file, or a postgresql:// URL
                   (password: password_env, ~/.pgpass; never shown); which wins:
                   rd.connect{db} > --db > $REDRIVE_DB > profile's db > default
  --profile NAME   source profile for rd.connect() (else $REDRIVE_PROFILE)
  --ledger PATH|URL  the ledger several hosts share: each change to a Make,
                   n8n or Kaizen item first takes a lease there and records
                   its outcome; one another host holds or did is skipped;
                   rd.connect{ledger} > --ledger > $REDRIVE_LEDGER > profile's
                   ledger; `none` turns it off (docs/several-hosts.md)
  -q, --quiet      only errors on stderr
  --verbose        log HTTP calls on stderr (tokens redacted)
  --force          (retry) do not skip unsafe retries

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

-- text(commands) -> the whole help, with `commands` (the section's lines)
function M.text(commands)
  return HEAD .. "commands (they work on every source; --profile picks it; the ones that change\n" ..
    "something first print on stderr the source they act on; redrive help COMMAND\n" ..
    "or redrive COMMAND --help for one command):\n" .. commands .. "\n\n" .. TAIL
end

return M

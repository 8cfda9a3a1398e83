/*
 * redrive: the command. Runs a Lua script (or -e code, or stdin) as a task
 * on the runtime's loop, with `arg` set as lua5.4 does; starts the REPL on a
 * terminal; dispatches the subcommands (rules, run, ls, show, retry, patch,
 * delete, health) to their Lua implementation (the files in lua/redrive/cli).
 *
 * Exit status: 0 success, 1 script error, 2 usage error, 3 a source was
 * unreachable or refused authentication, 130 interrupted.
 */
#include "cli/cli.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs(
    "usage: redrive [options] [script.lua [args...]]   run a script (a task on the loop)\n"
    "       redrive [options] -e 'code' [script [args]] run code (then the script)\n"
    "       redrive [options] - [args...]              read the script from stdin\n"
    "       redrive [options]                          the REPL (on a terminal)\n"
    "       redrive [options] COMMAND [args...]\n"
    "\n"
    "commands (they work on every source; --profile picks it; the ones that change\n"
    "something first print on stderr the source they act on):\n"
    "  rules DIR [--once|--watch] [--check] [--audit FILE]\n"
    "                   apply the rule files DIR/*.lua to incomplete executions;\n"
    "                   --once: one pass, for cron (default); --watch: run each rule\n"
    "                   every `every` seconds and reload edited files; --check:\n"
    "                   validate the files without touching any source; --audit:\n"
    "                   append every change a rule makes, by any call on any source\n"
    "                   it reaches, as a JSON line to FILE (created 0600); `limit`\n"
    "                   caps the changes per pass; exit 3 if a source is unreachable\n"
    "  run BLUEPRINT.json [--input JSON]\n"
    "                   run a blueprint once on the local engine (the selected local\n"
    "                   profile, or the --db store), print the execution\n"
    "  ls [--scenario ID] [--reason PATTERN] [--all] [--limit N]\n"
    "                   list incomplete executions (pending unless --all)\n"
    "  show ID          show an incomplete execution (or an execution)\n"
    "  retry ID... | --all [--scenario ID] [--except ID,...] [--force]\n"
    "                   retry incomplete executions; --force also retries ones the\n"
    "                   safety checks would skip; --json: a line per item, then the\n"
    "                   summary\n"
    "  patch ID FILE    patch an item's blueprint: FILE is a JSON Patch (array), a\n"
    "                   merge patch (object) or a whole blueprint (object with flow)\n"
    "  delete ID... | --all --yes [--except ID,...]\n"
    "                   delete incomplete executions\n"
    "  health SCENARIO [--since SECONDS]\n"
    "                   success rate, durations and top failure reasons\n"
    "\n"
    "options (also accepted after a command):\n"
    "  -e CODE          run CODE\n"
    "  -l NAME          require module NAME (global NAME) before the script; -l g=NAME\n"
    "  -v, --version    print the version\n"
    "  -h, --help       this help\n"
    "  --dry-run        mutating calls log what they would do and change nothing\n"
    "  --json           results and errors as JSON lines on stdout\n"
    "  --db PATH        store file of the local source; which store wins:\n"
    "                   rd.connect{db} > --db > $REDRIVE_DB > profile's db > default\n"
    "  --profile NAME   source profile for rd.connect() (else $REDRIVE_PROFILE)\n"
    "  -q, --quiet      only errors on stderr\n"
    "  --verbose        log HTTP calls on stderr (tokens redacted)\n"
    "  --force          (retry) do not skip unsafe retries\n"
    "\n"
    "exit status: 0 ok, 1 script error, 2 usage error, 3 source unreachable or\n"
    "authentication refused, 130 interrupted (SIGINT/SIGTERM).\n"
    "environment: REDRIVE_DB, REDRIVE_PROFILE, REDRIVE_CONFIG, REDRIVE_HISTORY,\n"
    "REDRIVE_DRY_RUN=1, REDRIVE_SANDBOX_TIMEOUT / _MEMORY / _INSTRUCTIONS (limits of\n"
    "lua:Run and rule code). See redrive(1).\n"
    "\n"
    "Lua API (module `redrive`, preloaded as `rd`; failures return nil, msg, code):\n"
    "  tasks   t = rd.spawn(fn, ...); t:wait(); rd.sleep(0.5); rd.now(); rd.time()\n"
    "          rd.all{f1, f2}; rd.each(list_or_iter, fn, {concurrency = 8}); rd.run()\n"
    "  json    rd.json.decode('[1]'); rd.json.encode(v, {pretty = true}); rd.json.null\n"
    "          rd.json.array{}; rd.json.object{}\n"
    "  pattern rd.pattern.find/match/gmatch/gsub: string.* with a step budget (code\n"
    "          'limit'); rd.pattern.bounded(steps); rd.pattern.check(p)\n"
    "  http    res = rd.http.request{url = u, method = 'POST', json = {a = 1},\n"
    "            headers = {}, query = {}, timeout = 5, follow = true, verify = true}\n"
    "          res.status, res.headers['content-type'], res.body, res:json()\n"
    "  sources src = rd.connect() | rd.connect('profile') | rd.connect{kind = 'n8n', ...}\n"
    "          for e in src:executions{scenario = 1, status = 'error'} do ... end\n"
    "          e = src:execution(id); e:run_data(); e:retry{attempts = 3}; e:wait{timeout = 60}\n"
    "          e:chain(); e:delete()\n"
    "          for it in src:incomplete{reason = 'HTTP 5%d%d'} do ... end  (resolved = true | 'any')\n"
    "          it = src:incomplete_item(id); it:blueprint(); it:bundle(); it:logs{status = 3}\n"
    "          it:patch{blueprint = bp, failer = 2}; it:retry{wait = true}; it:delete()\n"
    "          src:retry{all = true, except = {id}, concurrency = 16, safe = true, wait = true,\n"
    "            on_result = function(r) end}  -> {total, succeeded, failed, ..., results}\n"
    "          src:delete_incomplete{all = true, confirmed = true}; src:health{scenario = 1}\n"
    "  local   sc = src:scenario_create{name = 'x', blueprint = bp}; src:run(sc.id, {input = {}})\n"
    "          src:scenario(id); src:scenarios(); src:scenario_update(id, {blueprint = bp})\n"
    "  blueprint bp = rd.blueprint(t_or_json); bp:get('/flow/0/mapper/url'); bp:set(p, v)\n"
    "          bp:remove(p); bp:merge{name = 'y'}; bp:apply{{op = 'test', path = '/name', value = 'x'}}\n"
    "          bp:diff(other); bp:module(3).mapper.url = u; bp:modules{module = 'http:*'}\n"
    "          bp:validate(); bp:json{pretty = true}; bp:copy()\n"
    "  dry run rd.dry_run(true); rd.is_dry_run()     logging: rd.verbose(true)\n",
    f);
}

/* Message handler: add a traceback to string errors (lua.c msghandler). */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int rd__cli_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    size_t n = 0;
    const char *msg = lua_tolstring(L, -1, &n);
    char *clean = NULL; /* the message through the redactor */
    if (msg && rd_redact(msg, n, &clean, NULL, NULL) != 0)
      msg = "(message withheld: out of memory)";
    fprintf(stderr, "redrive: %s\n", clean ? clean : msg ? msg : "(error object is not a string)");
    free(clean);
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

int rd__cli_pcall(lua_State *L, int nargs, int nres) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int st = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  return st;
}

/* [-(nargs+1), +0] call require("redrive.cli")[name](args...) below which the
 * nargs arguments sit; returns its integer result (the exit status). */
static int call_cli(lua_State *L, const char *name, int nargs) {
  int first = lua_gettop(L) - nargs + 1;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "redrive.cli");
  if (rd__cli_report(L, rd__cli_pcall(L, 1, 1)) != LUA_OK) return lua_settop(L, first - 1), 1;
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, first);
  int st = rd__cli_pcall(L, nargs, 1);
  if (st != LUA_OK) return rd__cli_report(L, st), 1;
  int code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 1;
  lua_pop(L, 1);
  return code;
}

/* Load a chunk; a file that cannot be opened is a usage error (2), a syntax
 * error a script error (1). Pushes the chunk on success. */
static int load(lua_State *L, const char *path) {
  if (path && access(path, R_OK) != 0) {
    fprintf(stderr, "redrive: cannot open %s (see redrive --help)\n", path);
    return 2;
  }
  if (rd__cli_report(L, luaL_loadfile(L, path))) return 1;
  return 0;
}

static void set_arg(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static const char *const commands[] = {"rules", "run", "ls", "show", "retry",
                                       "patch", "delete", "health", NULL};

/* A word names a command unless it looks like a path (a script). */
static int is_command(const char *a) {
  for (int i = 0; commands[i]; i++)
    if (!strcmp(a, commands[i])) return 1;
  return 0;
}

int main(int argc, char **argv) {
  rd_cli_opts o = {0};
  int first = rd__cli_parse(&o, argc, argv);
  if (first < 0) return 2;
  if (o.help) return usage(stdout), 0;
  if (o.version) return printf("redrive %s (%s)\n", RD_VERSION, LUA_RELEASE), 0;
  lua_State *L = luaL_newstate();
  if (!L) return fprintf(stderr, "redrive: cannot create a Lua state\n"), 1;
  luaL_openlibs(L);
  int code = rd__cli_setup(L, &o);
  if (code != 0) goto done;
  if (first < argc && is_command(argv[first])) {
    lua_pushstring(L, argv[first]);
    lua_createtable(L, argc - first - 1, 0);
    for (int i = first + 1; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i - first);
    }
    code = call_cli(L, "command", 2);
    goto done;
  }
  if (o.code) {
    if (rd__cli_report(L, luaL_loadbuffer(L, o.code, strlen(o.code), "=(command line)"))) {
      code = 1;
      goto done;
    }
    set_arg(L, argv, argc, first < argc ? first : argc);
    code = call_cli(L, "main", 1);
    if (code != 0 || first >= argc) goto done;
  }
  if (first < argc) {
    const char *path = strcmp(argv[first], "-") == 0 ? NULL : argv[first];
    if ((code = load(L, path)) != 0) goto done;
    set_arg(L, argv, argc, first);
    for (int i = first + 1; i < argc; i++) lua_pushstring(L, argv[i]);
    code = call_cli(L, "main", argc - first);
  } else if (!o.code) {
    if (isatty(0)) {
      code = rd__cli_repl(L, &o);
    } else {
      if ((code = load(L, NULL)) != 0) goto done;
      set_arg(L, argv, argc, argc);
      code = call_cli(L, "main", 1);
    }
  }
done:
  lua_close(L);
  return code;
}

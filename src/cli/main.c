/*
 * redrive: the command. Runs a Lua script (or -e code, or stdin) as a task
 * on the runtime's loop, with `arg` set as lua5.4 does.
 */
#include "cli/cli.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs("usage: redrive [options] [script.lua [args...]]\n"
        "       redrive [options] -e 'code'\n"
        "       redrive [options] -          (script from stdin)\n"
        "\n"
        "options:\n"
        "  -e CODE          run CODE\n"
        "  -l NAME          require module NAME (as a global) before the script\n"
        "  -v, --version    print the version\n"
        "  -h, --help       this help\n"
        "  --dry-run        mutating calls log what they would do and change nothing\n"
        "  --json           results and errors as JSON lines on stdout\n"
        "  --db PATH        store file of the local source\n"
        "  --profile NAME   default source profile\n"
        "  --quiet          less output\n"
        "  --verbose        log HTTP calls (tokens redacted)\n",
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
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "redrive: %s\n", msg ? msg : "(error object is not a string)");
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

/* Run the function on top (with nargs below it... above it) as a task and
 * drive the loop until every task is done. Leaves nothing on the stack. */
static int run_as_task(lua_State *L, int nargs) {
  /* rd.spawn(fn, args...) then task:wait() — done in Lua for tracebacks */
  int fn = lua_gettop(L) - nargs;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "redrive.cli");
  if (rd__cli_report(L, rd__cli_pcall(L, 1, 1)) != LUA_OK) return 1;
  lua_getfield(L, -1, "main");
  lua_remove(L, -2);
  lua_insert(L, fn);
  int st = rd__cli_pcall(L, nargs + 1, 1);
  if (st != LUA_OK) return rd__cli_report(L, st), 1;
  int code = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return code;
}

static int push_args(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
  for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  return argc - script - 1;
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
  if (code == 0) {
    if (o.code) {
      if (rd__cli_report(L, luaL_loadbuffer(L, o.code, strlen(o.code), "=(command line)")))
        code = 1;
      else code = run_as_task(L, 0);
    } else if (first < argc) {
      const char *path = strcmp(argv[first], "-") == 0 ? NULL : argv[first];
      if (rd__cli_report(L, luaL_loadfile(L, path))) code = 1;
      else {
        int n = push_args(L, argv, argc, first);
        code = run_as_task(L, n);
      }
    } else if (isatty(0)) {
      code = rd__cli_repl(L, &o);
    } else {
      if (rd__cli_report(L, luaL_loadfile(L, NULL))) code = 1;
      else code = run_as_task(L, 0);
    }
  }
  lua_close(L);
  return code;
}

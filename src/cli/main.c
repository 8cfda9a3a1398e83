/*
 * redrive: the command. Runs a Lua script (or -e code, or stdin) as a task
 * on the runtime's loop, with `arg` set as lua5.4 does; starts the REPL on a
 * terminal; dispatches the subcommands (triage, ls, retry, ...) to their Lua
 * implementation. The commands, their flags and the --help text live in one
 * table, lua/redrive/cli/commands.lua: this file knows none of them.
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

/* Does argv word `a` name a command? Only a bare lower-case word can (a
 * script is named by a path: x.lua, ./x); for one, the command table
 * (lua/redrive/cli/commands.lua) decides, through redrive.cli.is_command.
 * Loading that table only for such words keeps a script's start cheap. */
static int is_command(lua_State *L, const char *a) {
  for (const char *p = a; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || (*p == '-' && p != a))) return 0;
  if (!*a) return 0;
  lua_pushstring(L, a);
  int yes = call_cli(L, "is_command", 1) == 0;
  return yes;
}

int main(int argc, char **argv) {
  rd_cli_opts o = {0};
  int first = rd__cli_parse(&o, argc, argv);
  if (first < 0) return 2;
  if (o.version) return printf("redrive %s (%s)\n", RD_VERSION, LUA_RELEASE), 0;
  lua_State *L = luaL_newstate();
  if (!L) return fprintf(stderr, "redrive: cannot create a Lua state\n"), 1;
  luaL_openlibs(L);
  int code = rd__cli_setup(L, &o);
  if (code != 0) goto done;
  if (o.help) { /* redrive --help: the help command (its text lives with the commands) */
    lua_pushliteral(L, "help");
    lua_newtable(L);
    code = call_cli(L, "command", 2);
    goto done;
  }
  if (first < argc && is_command(L, argv[first])) {
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

/* The redrive command: option parsing, script runner, REPL, rules. */
#ifndef RD_CLI_CLI_H
#define RD_CLI_CLI_H

#include "redrive.h"

#include <lauxlib.h>
#include <lua.h>

typedef struct rd_cli_opts {
  const char *code;        /* -e */
  const char *require[16]; /* -l, in order */
  int nrequire;
  const char *db, *profile, *ledger;
  int dry_run, json, quiet, verbose, help, version, force;
} rd_cli_opts;

/* Parse global options; returns the index of the first non-option argument
 * (the script), or -1 after printing a usage error. */
int rd__cli_parse(rd_cli_opts *o, int argc, char **argv);
/* Load redrive into L, apply options (-l, --db, --dry-run...); 0 or exit code. */
int rd__cli_setup(lua_State *L, const rd_cli_opts *o);
/* Interactive REPL on a TTY; returns the exit code. */
int rd__cli_repl(lua_State *L, const rd_cli_opts *o);
/* pcall with a traceback handler. */
int rd__cli_pcall(lua_State *L, int nargs, int nres);
/* Print the error on top (if status != OK) to stderr and pop it. */
int rd__cli_report(lua_State *L, int status);

struct rd_rt;
/* Install the SIGINT/SIGTERM handlers for rt (see sys.c). */
void rd__cli_signals(struct rd_rt *rt);
/* [-0, +0, m] register package.loaded["redrive.cli.sys"]. */
void rd__cli_open_sys(lua_State *L);

#endif

/* Loading redrive into the command's Lua state and applying options. */
#include "cli/cli.h"
#include "lua/lrd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_redrive(lua_State *L);

static uv_signal_t sigint_h, sigterm_h;

/* SIGINT/SIGTERM cancel what every task waits on; the waits raise
 * "interrupted" and the script unwinds through its __close handlers. */
static void on_signal(uv_signal_t *h, int signum) {
  rd_rt *rt = h->data;
  rt->signal = signum;
  rd__rt_interrupt(rt);
}

int rd__cli_setup(lua_State *L, const rd_cli_opts *o) {
  if (o->db) setenv("REDRIVE_DB", o->db, 1);
  luaL_requiref(L, "redrive", luaopen_redrive, 0);
  lua_setglobal(L, "rd");
  rd_rt *rt = rd__rt(L);
  rt->dry_run = o->dry_run;
  rt->verbose = o->verbose;
  uv_signal_init(&rt->loop, &sigint_h);
  uv_signal_init(&rt->loop, &sigterm_h);
  sigint_h.data = sigterm_h.data = rt;
  uv_signal_start(&sigint_h, on_signal, SIGINT);
  uv_signal_start(&sigterm_h, on_signal, SIGTERM);
  /* signal handles must not keep the loop alive */
  uv_unref((uv_handle_t *)&sigint_h);
  uv_unref((uv_handle_t *)&sigterm_h);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "redrive.cli");
  if (rd__cli_report(L, rd__cli_pcall(L, 1, 1))) return 1;
  lua_createtable(L, 0, 8);
  lua_pushboolean(L, o->json);
  lua_setfield(L, -2, "json");
  lua_pushboolean(L, o->quiet);
  lua_setfield(L, -2, "quiet");
  lua_pushboolean(L, o->verbose);
  lua_setfield(L, -2, "verbose");
  lua_pushboolean(L, o->force);
  lua_setfield(L, -2, "force");
  if (o->profile) {
    lua_pushstring(L, o->profile);
    lua_setfield(L, -2, "profile");
  }
  lua_setfield(L, -2, "options");
  lua_pop(L, 1);
  for (int i = 0; i < o->nrequire; i++) {
    lua_getglobal(L, "require");
    lua_pushstring(L, o->require[i]);
    if (rd__cli_report(L, rd__cli_pcall(L, 1, 1))) return 1;
    lua_setglobal(L, o->require[i]);
  }
  return 0;
}

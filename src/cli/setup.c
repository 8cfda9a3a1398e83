/* Loading redrive into the command's Lua state and applying options. Cheap on
 * purpose: no source, store or engine is loaded until a script asks. */
#include "cli/cli.h"
#include "lua/lrd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_redrive(lua_State *L);

static void setbool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

int rd__cli_setup(lua_State *L, const rd_cli_opts *o) {
  luaL_requiref(L, "redrive", luaopen_redrive, 0);
  lua_setglobal(L, "rd");
  rd_rt *rt = rd__rt(L);
  if (o->dry_run) rt->dry_run = 1;
  rt->verbose = o->verbose;
  /* SIGINT/SIGTERM cancel what every task waits on; the waits raise
   * rd.canceled and the script unwinds through its __close handlers. */
  rd__cli_signals(rt);
  rd__cli_open_sys(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "redrive.cli");
  if (rd__cli_report(L, rd__cli_pcall(L, 1, 1))) return 1;
  lua_getfield(L, -1, "configure");
  lua_createtable(L, 0, 8);
  setbool(L, "json", o->json);
  setbool(L, "quiet", o->quiet);
  setbool(L, "verbose", o->verbose);
  setbool(L, "force", o->force);
  setbool(L, "dry_run", o->dry_run);
  if (o->profile) {
    lua_pushstring(L, o->profile);
    lua_setfield(L, -2, "profile");
  }
  if (o->db) {
    lua_pushstring(L, o->db);
    lua_setfield(L, -2, "db");
  }
  if (o->ledger) {
    lua_pushstring(L, o->ledger);
    lua_setfield(L, -2, "ledger");
  }
  if (rd__cli_report(L, rd__cli_pcall(L, 1, 0))) return 1;
  lua_pop(L, 1);
  for (int i = 0; i < o->nrequire; i++) {
    /* -l mod, or -l g=mod as lua5.4 */
    const char *spec = o->require[i], *eq = strchr(spec, '=');
    const char *mod = eq ? eq + 1 : spec;
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    if (rd__cli_report(L, rd__cli_pcall(L, 1, 1))) return 1;
    if (eq) lua_pushlstring(L, spec, (size_t)(eq - spec));
    else lua_pushstring(L, mod);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return 0;
}

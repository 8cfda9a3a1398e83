/* Interactive REPL: filled in by the REPL work; for now stdin as a script. */
#include "cli/cli.h"

int rd__cli_repl(lua_State *L, const rd_cli_opts *o) {
  (void)o;
  if (rd__cli_report(L, luaL_loadfile(L, NULL))) return 1;
  return rd__cli_report(L, rd__cli_pcall(L, 0, 0)) ? 1 : 0;
}

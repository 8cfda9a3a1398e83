/* Interactive REPL: line editing and history come from sys.c (libedit), the
 * read-eval-print loop itself is lua/redrive/cli/repl.lua. */
#include "cli/cli.h"

int rd__cli_repl(lua_State *L, const rd_cli_opts *o) {
  (void)o; /* the options reached Lua through redrive.cli.configure */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "redrive.cli.repl");
  if (rd__cli_report(L, rd__cli_pcall(L, 1, 1))) return 1;
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  if (rd__cli_report(L, rd__cli_pcall(L, 0, 1))) return 1;
  int code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  return code;
}

/*
 * fuzz_mapper: hostile mapping expressions through the engine's mapper
 * (lua/redrive/engine/mapper.lua), run in the redrive Lua state.
 *
 * Input: TEMPLATE 0xFF SCOPE_JSON. The scope's outputs are the decoded JSON
 * (or {} when it is not JSON) under module ids "1" and "2", and the input
 * bundle ({{0.x}}). mapper.eval and mapper.resolve must return a value or
 * nil, message, "invalid": a raised Lua error (a bug in the mapper, such as
 * indexing a nil) aborts, and so does a template that runs for too long
 * (libFuzzer -timeout).
 */
#include "fuzz_common.h"

#include <stdint.h>

static lua_State *L;

static const char *HARNESS =
    "local M = require 'redrive.engine.mapper'\n"
    "return function(tmpl, sj)\n"
    "  local v = rd.json.decode(sj)\n"
    "  if v == nil then v = {} end\n"
    "  local scope = { outputs = { ['1'] = v, ['2'] = { data = v, statusCode = 200 } },\n"
    "                  input = v, scenario = { id = 7, name = 'fuzz' } }\n"
    "  local r, err, code = M.eval(tmpl, scope)\n"
    "  if r == nil and err ~= nil then\n"
    "    assert(code == 'invalid' and type(err) == 'string', 'eval: bad error triple')\n"
    "  end\n"
    "  if type(r) == 'table' or type(r) == 'string' then rd.json.encode(r) end\n"
    "  local r2, err2, code2 = M.resolve({ url = tmpl, list = rd.json.array { tmpl, 1 },\n"
    "                                      nested = { x = tmpl } }, scope)\n"
    "  if r2 == nil then assert(code2 == 'invalid' and type(err2) == 'string') end\n"
    "  M.truthy(r); M.empty(r); M.text(r)\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = fuzz_lua_state();
  if (luaL_loadstring(L, HARNESS) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz harness: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.mapper");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const unsigned char *rest;
  size_t rn;
  size_t tn = fuzz_split(data, size, 0xFF, &rest, &rn);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.mapper");
  lua_pushlstring(L, (const char *)data, tn);
  lua_pushlstring(L, (const char *)rest, rn);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_mapper: raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  if (size % 32 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

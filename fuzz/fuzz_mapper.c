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
  fuzz_lua_harness(L, "fuzz.mapper", HARNESS);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const unsigned char *parts[2];
  size_t lens[2];
  parts[0] = data;
  lens[0] = fuzz_split(data, size, 0xFF, &parts[1], &lens[1]);
  fuzz_lua_run(L, "fuzz.mapper", "fuzz_mapper", 2, parts, lens, size % 32 == 0);
  return 0;
}

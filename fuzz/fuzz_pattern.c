/*
 * fuzz_pattern: the bounded matcher (src/core/pattern.c through rd.pattern)
 * against Lua 5.4's own string library, on hostile patterns and subjects.
 *
 * Input: PATTERN 0xFF SUBJECT [0xFF REPLACEMENT]. For find, match, gmatch
 * and gsub, rd.pattern runs first under a small step budget; when it does
 * not trip, the stock function runs too (its work is then as small) and the
 * outcomes -- results, captures, error messages -- must be identical
 * (tests/lua/pattern_diff.lua describes them). And a pattern that
 * rd.pattern.check accepts must never raise a pattern error. A difference,
 * a crash, or a sanitizer report aborts.
 */
#define FUZZ_TARGET "fuzz_pattern"
#include "fuzz_common.h"

#include <stdint.h>

static lua_State *L;

static const char *HARNESS =
    "local D = dofile('tests/lua/pattern_diff.lua')\n"
    "local P = rd.pattern.bounded(20000)\n"
    "return function(p, s, r)\n"
    "  local a = { s = s, p = p, repl = r ~= '' and r or 'function', init = #s % 3 - 1 }\n"
    "  for _, op in ipairs { 'find', 'match', 'gmatch', 'gsub' } do\n"
    "    local got = D.outcome(P, op, a)\n"
    "    if not got:find('^error object limit ') then\n"
    "      local want = D.outcome(string, op, a)\n"
    "      if want ~= got then\n"
    "        error(D.desc(op, a) .. '\\n  string: ' .. want .. '\\n  rd.pattern: ' .. got)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if rd.pattern.check(p) then\n"
    "    local ok, e = pcall(P.find, s, p)\n"
    "    assert(ok or type(e) == 'table' and e.code == 'limit', 'checked pattern raised: ' .. tostring(e))\n"
    "  end\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = fuzz_lua_state();
  fuzz_lua_harness(L, "fuzz.pattern", HARNESS);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const unsigned char *parts[3], *rest;
  size_t lens[3], rn;
  parts[0] = data;
  lens[0] = fuzz_split(data, size, 0xFF, &rest, &rn);
  parts[1] = rest;
  lens[1] = fuzz_split(rest, rn, 0xFF, &parts[2], &lens[2]);
  fuzz_lua_run(L, "fuzz.pattern", FUZZ_TARGET, 3, parts, lens, size % 32 == 0);
  return 0;
}

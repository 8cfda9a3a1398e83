/* Blueprint internals shared with the Lua binding. Public API (registry,
 * validation, module walk): include/redrive.h. */
#ifndef RD_ENGINE_BLUEPRINT_H
#define RD_ENGINE_BLUEPRINT_H

#include "redrive.h"

#include <cJSON.h>
#include <stdint.h>

#define RD_BLUEPRINT_ROUTER "builtin:BasicRouter"

/* 1 and the value in *out if v is a JSON number holding an integer that a
 * double represents exactly (|v| < 2^53); else 0. */
int rd__json_int(const cJSON *v, int64_t *out);
/* The integer id of a module object, as rd__json_int; 0 if it has none. */
int rd__blueprint_module_id(const cJSON *module, int64_t *out);

#endif

/* Whole-value helpers on cJSON trees: depth and deep equality. */
#include "redrive.h"

#include <cJSON.h>
#include <string.h>

int rd_json_depth(const cJSON *doc, int max) {
  if (!doc || !(cJSON_IsArray(doc) || cJSON_IsObject(doc))) return 0;
  /* Stop descending once past max: the caller only needs to know "too
   * deep", and an unbounded walk is what we are guarding against. */
  if (max < 1) return 1;
  int deepest = 0;
  for (const cJSON *c = doc->child; c; c = c->next) {
    int d = rd_json_depth(c, max - 1);
    if (d > deepest) deepest = d;
    if (deepest >= max) break;
  }
  return deepest + 1;
}

static int count(const cJSON *c) {
  int n = 0;
  for (; c; c = c->next) n++;
  return n;
}

static int equal_at(const cJSON *a, const cJSON *b, int depth);

static int equal_objects(const cJSON *a, const cJSON *b, int depth) {
  if (count(a->child) != count(b->child)) return 0;
  /* Same member count and every member of a found equal in b: with unique
   * keys that is equality regardless of order. */
  for (const cJSON *c = a->child; c; c = c->next) {
    const cJSON *d = c->string ? cJSON_GetObjectItemCaseSensitive(b, c->string) : NULL;
    if (!d || !equal_at(c, d, depth + 1)) return 0;
  }
  return 1;
}

static int equal_at(const cJSON *a, const cJSON *b, int depth) {
  if (!a || !b) return a == b;
  if (depth > RD_JSON_MAX_DEPTH + 1) return 0;
  int ta = a->type & 0xFF, tb = b->type & 0xFF;
  if (ta != tb) return 0;
  switch (ta) {
  case cJSON_False:
  case cJSON_True:
  case cJSON_NULL: return 1;
  case cJSON_Number: return a->valuedouble == b->valuedouble;
  case cJSON_String:
  case cJSON_Raw:
    return a->valuestring && b->valuestring ? strcmp(a->valuestring, b->valuestring) == 0
                                            : a->valuestring == b->valuestring;
  case cJSON_Array: {
    const cJSON *c = a->child, *d = b->child;
    for (; c && d; c = c->next, d = d->next)
      if (!equal_at(c, d, depth + 1)) return 0;
    return !c && !d;
  }
  case cJSON_Object: return equal_objects(a, b, depth);
  default: return 0;
  }
}

int rd_json_equal(const cJSON *a, const cJSON *b) { return equal_at(a, b, 0); }

/* Internals shared by pointer.c and patch.c: parsed JSON Pointers and the
 * primitive edits JSON Patch is built from. Public API: include/redrive.h. */
#ifndef RD_JSON_POINTER_H
#define RD_JSON_POINTER_H

#include "core/buf.h"
#include "redrive.h"

#include <cJSON.h>
#include <stddef.h>

/* A parsed RFC 6901 pointer: n unescaped reference tokens. tok[i] point
 * into the same allocation as tok itself. */
typedef struct rd__jptr {
  size_t n;
  char **tok;
} rd__jptr;

/* Parse `s`; RD_EINVALID on bad syntax, RD_ENOMEM. On success free with
 * rd__jptr_free. Messages are short ("invalid pointer: ..."), without the
 * pointer itself: callers add context. */
int rd__jptr_parse(rd__jptr *p, const char *s, rd_err *err);
void rd__jptr_free(rd__jptr *p);
/* 1 if a is a proper prefix of b (a names an ancestor of what b names). */
int rd__jptr_is_ancestor(const rd__jptr *a, const rd__jptr *b);

/* Borrow the value named by the first `upto` tokens; RD_ENOT_FOUND. */
int rd__jptr_walk(cJSON *root, const rd__jptr *p, size_t upto, cJSON **out, rd_err *err);

/* How rd__jptr_put treats the target location. */
enum {
  RD__PUT_ADD,     /* RFC 6902 add: insert into arrays, add/replace members */
  RD__PUT_SET,     /* replace or append, never shift array elements */
  RD__PUT_REPLACE  /* the target must exist */
};

/* Store `value` at p in *root (an empty pointer replaces *root). On success
 * the document owns value; on failure the caller keeps it and nothing has
 * changed. Refuses results deeper than RD_JSON_MAX_DEPTH. */
int rd__jptr_put(cJSON **root, const rd__jptr *p, cJSON *value, int mode, rd_err *err);
/* Unlink the value at p (not the root) and give it to *out. */
int rd__jptr_detach(cJSON *root, const rd__jptr *p, cJSON **out, rd_err *err);

/* Append "/" and the escaped token (or index) to b, building a pointer;
 * 0 or RD_ENOMEM. */
int rd__jptr_push(rd_buf *b, const char *token);
int rd__jptr_push_index(rd_buf *b, size_t i);

/* Add or replace (in place) member `key` of obj; on success obj owns
 * value. 0 or RD_ENOMEM (then the caller keeps value). */
int rd__json_set_member(cJSON *obj, const char *key, cJSON *value);

#endif

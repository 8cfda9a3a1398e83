#include "core/buf.h"
#include "redrive.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(rd_buf *b, size_t need) {
  if (b->len + need + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + need + 1) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return RD_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int rd__buf_add(rd_buf *b, const void *p, size_t n) {
  if (grow(b, n)) return RD_ENOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int rd__buf_adds(rd_buf *b, const char *s) { return rd__buf_add(b, s, strlen(s)); }

int rd__buf_printf(rd_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || grow(b, (size_t)n)) return RD_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

char *rd__buf_steal(rd_buf *b, size_t *len) {
  if (grow(b, 0)) return NULL;
  char *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void rd__buf_free(rd_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

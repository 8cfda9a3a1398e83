/* Growable byte buffer, always NUL-terminated. */
#ifndef RD_CORE_BUF_H
#define RD_CORE_BUF_H

#include <stddef.h>

typedef struct rd_buf {
  char *data;   /* NULL until the first append */
  size_t len, cap;
} rd_buf;

/* Append n bytes; returns 0 or RD_ENOMEM (buffer unchanged then). */
int rd__buf_add(rd_buf *b, const void *p, size_t n);
int rd__buf_adds(rd_buf *b, const char *s);
int rd__buf_printf(rd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Give the bytes to the caller (free() them); the buffer becomes empty. */
char *rd__buf_steal(rd_buf *b, size_t *len);
void rd__buf_free(rd_buf *b);

#endif

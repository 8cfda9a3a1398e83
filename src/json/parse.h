/* Internals of src/json/parse.c shared with the JSON bindings. */
#ifndef RD_JSON_PARSE_H
#define RD_JSON_PARSE_H

#include "redrive.h"

#include <stddef.h>

/* Offset of the first byte of s[0..n) that does not start a valid UTF-8
 * sequence (overlong forms, surrogates and code points past U+10FFFF
 * included), or -1 when all of it is valid. */
long rd__utf8_invalid_at(const unsigned char *s, size_t n);

#endif

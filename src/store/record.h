/* The store's records as data: one descriptor per record, generated from the
 * X-macro lists of include/redrive.h (RD_EXEC_FIELDS, ...). The store builds
 * its SQL, binds and reads rows from them (record.c); the Lua binding builds
 * and reads its tables from them (src/lua/lstore.c). No SQLite, no Lua here. */
#ifndef RD_STORE_RECORD_H
#define RD_STORE_RECORD_H

#include "redrive.h"

#include <stddef.h>

typedef enum rd__kind {
  RD__K_TEXT, RD__K_JSON, RD__K_BIGINT, RD__K_INT, RD__K_BOOL, RD__K_REAL,
} rd__kind;

typedef struct rd__field {
  const char *name;   /* column, Lua key and struct member */
  const char *param;  /* ":name", the SQL parameter that binds it */
  rd__kind kind;
  unsigned flags;     /* RD_F_* */
  size_t off;         /* offsetof the member in the record struct */
} rd__field;

typedef struct rd__record {
  const char *table;  /* SQL table */
  const char *what;   /* for messages: "execution" */
  const rd__field *fields;
  int n;
  size_t size;        /* sizeof the record struct */
} rd__record;

extern const rd__record rd__rec_scenario, rd__rec_exec, rd__rec_item, rd__rec_log;

/* The member of `rec` that field f describes. */
#define RD__MEMBER(rec, f, type) ((type *)((char *)(rec) + (f)->off))
#define RD__CMEMBER(rec, f, type) ((const type *)((const char *)(rec) + (f)->off))

/* Copy record `rec` of kind r and the strings it points to into one malloc'd
 * block (free it with free()). NULL when out of memory. */
void *rd__rec_dup(const rd__record *r, const void *rec);

/* The SQL declared type of a kind in SQLite ("TEXT", "INTEGER", "REAL"). */
const char *rd__kind_sqlite(rd__kind k);

#endif

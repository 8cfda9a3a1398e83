/* The migrations of both backends (schema.c). */
#ifndef RD_STORE_SCHEMA_H
#define RD_STORE_SCHEMA_H

typedef struct rd__migration {
  const char *sqlite;  /* runs inside the opening transaction */
  const char *pg;      /* runs inside the migration transaction, lock held */
} rd__migration;

/* rd__migrations[i] takes the schema from version i to i + 1. */
extern const rd__migration rd__migrations[];
extern const int rd__schema_version;

#endif

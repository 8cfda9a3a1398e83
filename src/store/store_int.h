/* Internals shared by the store's files (src/store/): the store object,
 * the statement cache, transactions, error mapping, row helpers. */
#ifndef RD_STORE_STORE_INT_H
#define RD_STORE_STORE_INT_H

#include "core/buf.h"
#include "redrive.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct rd__stmt_entry {
  char *sql;
  sqlite3_stmt *stmt;
} rd__stmt_entry;

struct rd_store {
  sqlite3 *db;
  char *path;
  rd__stmt_entry *stmts;  /* every statement ever prepared, kept until close */
  size_t nstmts, capstmts;
  int batch;              /* a group-commit transaction is open */
};

/* Set *out to the cached statement for `sql` (prepared on first use), reset
 * and with its bindings cleared. 0 or an error code. The statement is
 * borrowed: owned by the store until close. */
int rd__st_prep(rd_store_t *st, const char *sql, sqlite3_stmt **out, rd_err *err);
/* Map the SQLite result `rc` to an RD_E* code and fill err with
 * "store: <what> '<path>': <sqlite message>". Returns the code. */
int rd__st_fail(rd_store_t *st, int rc, const char *what, rd_err *err);
/* BEGIN IMMEDIATE (waits for the write lock up to the busy timeout); inside
 * a group-commit batch, a savepoint instead, so each call stays atomic. */
int rd__st_begin(rd_store_t *st, rd_err *err);
/* COMMIT when rc == 0 (rolling back if the commit fails), else ROLLBACK.
 * Returns rc, or the commit's error. */
int rd__st_end(rd_store_t *st, int rc, rd_err *err);
/* Step a statement that returns no rows (or whose rows are ignored) and reset
 * it. 0 or an error code. */
int rd__st_exec(rd_store_t *st, sqlite3_stmt *s, const char *what, rd_err *err);

/* Now, seconds since the epoch with ms precision. */
double rd__st_now(void);
/* Check a page size: 0 -> default, > max -> max; RD_EINVALID if negative. */
int rd__st_limit(int limit, int *out, rd_err *err);

/* Bind by parameter name (":x"); parameters absent from s are skipped, so one
 * binding routine serves every variant of a generated query. NULL text and
 * NaN doubles bind SQL NULL. */
void rd__bind_text(sqlite3_stmt *s, const char *name, const char *v);
void rd__bind_int(sqlite3_stmt *s, const char *name, int64_t v);
void rd__bind_double(sqlite3_stmt *s, const char *name, double v);
/* Bind a JSON array of the strings (for json_each); RD_ENOMEM. */
int rd__bind_strings(sqlite3_stmt *s, const char *name, const char *const *v, size_t n);

/* Column readers: NULL for SQL NULL text, NaN for a NULL double. */
const char *rd__col_text(sqlite3_stmt *s, int i);
double rd__col_double(sqlite3_stmt *s, int i);

/* Copy a record struct of `size` bytes and the strings its `const char *`
 * fields at `offs` point to into one malloc'd block. NULL on no memory. */
void *rd__st_dup(const void *rec, size_t size, const size_t *offs, size_t noffs);

/* Is s one of the execution statuses? */
int rd__st_valid_status(const char *s);

/* Inside a transaction: insert (or replace, when it exists) execution `e`
 * under `id`, with dlq_id overridden by `dlq_id` when not NULL (exec.c). */
int rd__exec_put(rd_store_t *st, const rd_exec_t *e, const char *id, const char *dlq_id,
                 rd_err *err);

#endif

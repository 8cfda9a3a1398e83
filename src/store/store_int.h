/* Internals shared by the store's files (src/store/): the store object,
 * the statement cache, transactions, error mapping, row helpers. */
#ifndef RD_STORE_STORE_INT_H
#define RD_STORE_STORE_INT_H

#include "core/buf.h"
#include "redrive.h"
#include "store/record.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct rd__stmt_entry {
  char *sql;
  sqlite3_stmt *stmt;
} rd__stmt_entry;

/* Statements whose text is fixed once built (from the record lists): each
 * has a slot, so the hot paths find theirs without comparing SQL text. */
enum rd__slot {
  RD__Q_SCENARIO_INSERT, RD__Q_SCENARIO_GET, RD__Q_SCENARIO_LIST, RD__Q_SCENARIO_UPDATE,
  RD__Q_EXEC_PUT, RD__Q_EXEC_GET, RD__Q_EXEC_UPDATE,
  RD__Q_ITEM_INSERT, RD__Q_ITEM_GET, RD__Q_LOG_INSERT,
  RD__Q_RETRY_SETTLE, RD__Q_RETRY_WHY, RD__Q_RETRY_LINK,
  RD__Q_COUNT
};

struct rd_store {
  sqlite3 *db;
  char *path;
  rd__stmt_entry *stmts;  /* every statement ever prepared, kept until close */
  size_t nstmts, capstmts;
  sqlite3_stmt *slot[RD__Q_COUNT]; /* borrowed from stmts */
  int batch;              /* a batch transaction is open */
  /* Group commit on a loop (group.c): the batch was opened by it, the hook
   * that commits it, and the writes waiting for that commit. */
  rd_loop_t *loop;
  int group;
  rd_hook_t hook;
  rd_store_wait_t *waiters;
};

/* Set *out to the cached statement for `sql` (prepared on first use), reset
 * and with its bindings cleared. 0 or an error code. The statement is
 * borrowed: owned by the store until close. */
int rd__st_prep(rd_store_t *st, const char *sql, sqlite3_stmt **out, rd_err *err);
/* Set *out to the statement of `slot`, reset and with its bindings cleared;
 * on first use build() writes its SQL (0 or RD_ENOMEM) and it is prepared
 * and cached as rd__st_prep does. */
int rd__st_slot(rd_store_t *st, int slot, int (*build)(rd_buf *q), sqlite3_stmt **out,
                rd_err *err);
/* Map the SQLite result `rc` to an RD_E* code and fill err with
 * "store: <what> '<path>': <sqlite message>". Returns the code. */
int rd__st_fail(rd_store_t *st, int rc, const char *what, rd_err *err);
/* BEGIN IMMEDIATE (waits for the write lock up to the busy timeout); inside
 * a batch, a savepoint instead, so each call stays atomic. On a loop, the
 * group commit's rule first (group.c): an open group is committed. */
int rd__st_begin(rd_store_t *st, rd_err *err);
/* The same for a write that joins the loop's group commit when called from
 * a task (rd_store_record, rd_store_retry_done). */
int rd__st_begin_group(rd_store_t *st, rd_err *err);
/* Group commit's rule before a write begins (group.c): 0 or an error. */
int rd__group_enter(rd_store_t *st, int joins, rd_err *err);
/* COMMIT when rc == 0 (rolling back if the commit fails), else ROLLBACK.
 * Returns rc, or the commit's error. */
int rd__st_end(rd_store_t *st, int rc, rd_err *err);
/* Step a statement that returns no rows (or whose rows are ignored) and reset
 * it. 0 or an error code. */
int rd__st_exec(rd_store_t *st, sqlite3_stmt *s, const char *what, rd_err *err);

/* Register the store's SQL functions (sqlfn.c) on its connection. */
int rd__st_functions(rd_store_t *st, rd_err *err);

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

/* SQL from a record's list (record.c); each returns 0 or RD_ENOMEM.
 * cols: "a, b, c" (heavy fields only when `heavy`); select: "SELECT cols
 * FROM table"; insert: every column bound to its ":name", with `upsert` an
 * ON CONFLICT (key) DO UPDATE of every other column; update: "UPDATE table
 * SET f = CASE WHEN :mask & (1 << i) THEN :f ELSE f END, ..." over the
 * fields a caller may set (the caller appends the rest and WHERE). */
int rd__sql_cols(rd_buf *q, const rd__record *r, int heavy);
int rd__sql_select(rd_buf *q, const rd__record *r, int heavy);
int rd__sql_insert(rd_buf *q, const rd__record *r, int upsert);
int rd__sql_update(rd_buf *q, const rd__record *r);
/* Bind every field of `rec` a caller may set to its ":name" parameter
 * (strings are borrowed: SQLITE_STATIC); fields set by the store are left
 * for the caller to bind. */
void rd__rec_bind(sqlite3_stmt *s, const rd__record *r, const void *rec);
/* Read the current row, columns in list order from 0 (heavy ones only when
 * `heavy`, else left NULL), into `rec`; strings are borrowed from s until
 * its next step or reset. */
void rd__rec_read(sqlite3_stmt *s, const rd__record *r, int heavy, void *rec);

/* Is s one of the execution statuses? */
int rd__st_valid_status(const char *s);

/* ---- shared by dlq.c and retry.c ---------------------------------------- */

/* "Someone holds a lease right now" (binds :now). */
#define LEASED "(lease_owner IS NOT NULL AND lease_expiry > :now)"

/* Build and prepare a query: the columns of `cols` (light ones, "SELECT ...
 * FROM table") when not NULL, then head, each conds[i] for which use[i], and
 * tail. Cached by its text (rd__st_prep). */
int rd__prep_built(rd_store_t *st, const rd__record *cols, const char *head,
                   const char *const *conds, const int *use, size_t n, const char *tail,
                   sqlite3_stmt **s, rd_err *err);
/* Use the caller's id if given (RD_EINVALID unless it is a valid id), else
 * make a new one into out. `what` names the record in the message. */
int rd__pick_id(const char *given, char out[RD_STORE_ID_LEN + 1], const char *what, rd_err *err);
/* Inside a transaction: insert item d under `id`, pointing at exec_id. */
int rd__item_insert(rd_store_t *st, const rd_dlq_item_t *d, const char *id, const char *exec_id,
                    rd_err *err);
/* Read item `id` (with blueprint and state) and hand it to cb (RD_ECANCELED
 * if cb returns nonzero), or copy it to *out (free()) when out is not NULL;
 * RD_ENOT_FOUND. */
int rd__item_get(rd_store_t *st, const char *id, rd_dlq_item_t **out, rd_dlq_cb cb, void *ud,
                 rd_err *err);
/* A selection of items (rd_dlq_sel_t) in SQL: the conditions (scenario,
 * ids, except, fingerprint), which of them a selection uses, and their
 * bindings. */
#define RD__SEL_N 4
extern const char *const rd__sel_conds[RD__SEL_N];
/* RD_EINVALID unless sel names ids or all, without NULL ids. */
int rd__sel_check(const rd_dlq_sel_t *sel, rd_err *err);
void rd__sel_use(const rd_dlq_sel_t *sel, int use[RD__SEL_N]);
/* Bind :scenario, :fingerprint, :ids and :except; RD_ENOMEM. */
int rd__sel_bind(sqlite3_stmt *s, const rd_dlq_sel_t *sel, rd_err *err);

/* Inside a transaction: insert (or replace, when it exists) execution `e`
 * under `id`, with dlq_id overridden by `dlq_id` when not NULL (exec.c). */
int rd__exec_put(rd_store_t *st, const rd_exec_t *e, const char *id, const char *dlq_id,
                 rd_err *err);

#endif

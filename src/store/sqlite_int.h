/* Internals of the SQLite backend (src/store/sqlite*.c): its part of the
 * store, the statement cache, transactions, error mapping, parameters and
 * columns, and the operations each file implements. */
#ifndef RD_STORE_SQLITE_INT_H
#define RD_STORE_SQLITE_INT_H

#include "store/store_int.h"

#include <sqlite3.h>

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

struct rd__sq {
  sqlite3 *db;
  rd__stmt_entry *stmts;  /* every statement ever prepared, kept until close */
  size_t nstmts, capstmts;
  sqlite3_stmt *slot[RD__Q_COUNT]; /* borrowed from stmts */
  int batch;              /* a batch transaction is open */
};

/* Open st->path (RD__OP_OPEN): create it safely, configure, migrate. */
int rd__sq_open(rd_store_t *st, rd_err *err);
/* Register the store's SQL functions (sqlfn.c) on its connection. */
int rd__sq_functions(rd_store_t *st, rd_err *err);
/* Finalize the statements and close the file. */
void rd__sq_close(rd_store_t *st);
/* Open (or join) / commit the batch transaction; group.c and the public
 * batch API use them. */
int rd__sq_batch_begin(rd_store_t *st, rd_err *err);
int rd__sq_batch_commit(rd_store_t *st, rd_err *err);

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
/* COMMIT when rc == 0 (rolling back if the commit fails), else ROLLBACK.
 * Returns rc, or the commit's error. */
int rd__st_end(rd_store_t *st, int rc, rd_err *err);
/* Step a statement that returns no rows (or whose rows are ignored) and reset
 * it. 0 or an error code. */
int rd__st_exec(rd_store_t *st, sqlite3_stmt *s, const char *what, rd_err *err);
/* Rows changed by the last statement. */
int64_t rd__st_changes(rd_store_t *st);

/* Bind by parameter name (":x"); parameters absent from s are skipped, so one
 * binding routine serves every variant of a generated query. NULL text and
 * NaN doubles bind SQL NULL; text is borrowed (SQLITE_STATIC). */
void rd__bind_text(sqlite3_stmt *s, const char *name, const char *v);
void rd__bind_int(sqlite3_stmt *s, const char *name, int64_t v);
void rd__bind_double(sqlite3_stmt *s, const char *name, double v);
/* Bind a JSON array of the strings (for json_each); RD_ENOMEM. */
int rd__bind_strings(sqlite3_stmt *s, const char *name, const char *const *v, size_t n);

/* Column readers: NULL for SQL NULL text, NaN for a NULL double. */
const char *rd__col_text(sqlite3_stmt *s, int i);
double rd__col_double(sqlite3_stmt *s, int i);

/* The record binder and reader on SQLite statements (record.c's generated
 * routines with sqlite3_bind_* / sqlite3_column_*). */
extern const rd__binder rd__sq_binder;
extern const rd__reader rd__sq_reader;
#define rd__sq_rec_bind(s, r, rec) rd__rec_bind(&rd__sq_binder, (s), (r), (rec))
#define rd__sq_rec_read(s, r, heavy, rec) rd__rec_read(&rd__sq_reader, (s), (r), (heavy), (rec))

/* ---- shared by sqlite_dlq.c and sqlite_retry.c ---------------------------- */

/* "Someone holds a lease right now" (binds :now). */
#define LEASED "(lease_owner IS NOT NULL AND lease_expiry > :now)"

/* Build and prepare a query: the columns of `cols` (light ones, "SELECT ...
 * FROM table") when not NULL, then head, each conds[i] for which use[i], and
 * tail. Cached by its text (rd__st_prep). */
int rd__prep_built(rd_store_t *st, const rd__record *cols, const char *head,
                   const char *const *conds, const int *use, size_t n, const char *tail,
                   sqlite3_stmt **s, rd_err *err);
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
void rd__sel_use(const rd_dlq_sel_t *sel, int use[RD__SEL_N]);
/* Bind :scenario, :fingerprint, :ids and :except; RD_ENOMEM. */
int rd__sel_bind(sqlite3_stmt *s, const rd_dlq_sel_t *sel, rd_err *err);
/* Inside a transaction: insert (or replace, when it exists) execution `e`
 * under `id`, with dlq_id overridden by `dlq_id` when not NULL. */
int rd__exec_put(rd_store_t *st, const rd_exec_t *e, const char *id, const char *dlq_id,
                 rd_err *err);

/* ---- the operations (one file each: scenario, exec, dlq, retry, health) ---- */

int rd__sq_scenario_create(rd_store_t *st, const rd_scenario_t *sc, int64_t *id, rd_err *err);
int rd__sq_scenario_get(rd_store_t *st, int64_t id, rd_scenario_t **out, rd_err *err);
int rd__sq_scenario_list(rd_store_t *st, rd_scenario_cb cb, void *ud, rd_err *err);
int rd__sq_scenario_update(rd_store_t *st, int64_t id, const rd_scenario_t *f, unsigned mask,
                           rd_err *err);
int rd__sq_exec_get(rd_store_t *st, const char *id, rd_exec_t **out, rd_err *err);
int rd__sq_exec_list(rd_store_t *st, const rd_exec_filter_t *f, rd_exec_cb cb, void *ud,
                     rd_err *err);
int rd__sq_exec_update(rd_store_t *st, const char *id, const rd_exec_t *f, unsigned mask,
                       rd_err *err);
int rd__sq_exec_delete(rd_store_t *st, const char *id, rd_err *err);
int rd__sq_record(rd_store_t *st, const rd_exec_t *exec, const rd_dlq_item_t *dlq,
                  char *exec_id, char *dlq_id, rd_err *err);
int rd__sq_dlq_list(rd_store_t *st, const rd_dlq_filter_t *f, rd_dlq_cb cb, void *ud,
                    rd_err *err);
int rd__sq_dlq_count(rd_store_t *st, const rd_dlq_filter_t *f, int64_t *n, rd_err *err);
int rd__sq_dlq_patch(rd_store_t *st, const char *id, const char *blueprint, int64_t failer,
                     rd_err *err);
int rd__sq_dlq_delete(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *deleted,
                      rd_dlq_error_cb on_error, void *ud, rd_err *err);
int rd__sq_dlq_resolve(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *n,
                       rd_dlq_error_cb on_error, void *ud, rd_err *err);
int rd__sq_dlq_groups(rd_store_t *st, const rd_dlq_filter_t *f, rd_group_cb cb, void *ud,
                      rd_err *err);
int rd__sq_dlq_logs(rd_store_t *st, const char *dlq_id, const rd_log_filter_t *f,
                    rd_dlq_log_cb cb, void *ud, rd_err *err);
int rd__sq_claim(rd_store_t *st, const rd_claim_opts_t *o, rd_dlq_cb cb, void *ud, rd_err *err);
int rd__sq_renew(rd_store_t *st, const char *owner, double ttl, int64_t *n, rd_err *err);
int rd__sq_release(rd_store_t *st, const char *owner, const char *id, int64_t *n, rd_err *err);
int rd__sq_retry_done(rd_store_t *st, const rd_retry_done_t *d, char *exec_id, char *dlq_id,
                      rd_err *err);
int rd__sq_job_create(rd_store_t *st, const rd_job_t *job, const rd_dlq_sel_t *sel, char *id,
                      int64_t *total, rd_err *err);
int rd__sq_job_get(rd_store_t *st, const char *id, rd_job_t **out, rd_job_counts_t *counts,
                   rd_err *err);
int rd__sq_job_list(rd_store_t *st, const char *state, const char *after, int limit,
                    rd_job_cb cb, void *ud, rd_err *err);
int rd__sq_job_items(rd_store_t *st, const char *id, const char *outcome, const char *after,
                     int limit, rd_job_item_cb cb, void *ud, rd_err *err);
int rd__sq_job_mark(rd_store_t *st, const char *id, const char *const *items, size_t n,
                    const rd_job_item_t *m, int64_t *n_changed, rd_err *err);
int rd__sq_job_own(rd_store_t *st, const char *id, int what, const char *owner, double ttl,
                   int *ok, rd_err *err);
/* Inside retry_done's transaction: the ledger row of a job's retry. */
int rd__sq_job_retried(rd_store_t *st, const rd_retry_done_t *d, const char *exec_id,
                       rd_err *err);
int rd__sq_health(rd_store_t *st, int64_t scenario_id, double since, int top, rd_health_t *out,
                  rd_err *err);
/* The ledger (sqlite_ledger.c; ledger.h). */
int rd__sq_ledger_take(rd_store_t *st, const rd__ledger_take *t, rd__ledger_hold *h,
                       rd_err *err);
int rd__sq_ledger_renew(rd_store_t *st, const char *owner, double ttl, int64_t *n, rd_err *err);
int rd__sq_ledger_settle(rd_store_t *st, const rd__ledger_settle *l, int64_t *n, rd_err *err);
int rd__sq_ledger_events(rd_store_t *st, const rd__ledger_filter *f, rd__ledger_cb cb, void *ud,
                         rd_err *err);

#endif

/* One operation on a store, whichever backend holds it (src/store/op.c).
 *
 * Every call of the store is an operation: its kind, its arguments and
 * where its results go, plus the wait that completes once they may be read.
 * A backend may complete it at once (SQLite: the work is done in
 * rd__op_finish, on the caller's stack, as it always was) or later from the
 * loop (PostgreSQL: the statements are sent when the operation starts, the
 * wait completes when the server's answer, committed, has arrived).
 *
 * The synchronous API of include/redrive.h runs one on its stack
 * (rd__op_run: start, wait on the store's loop if needed, finish). The Lua
 * binding (src/lua/lstore.c) allocates one, starts it, parks its task on
 * op->base and finishes it in the continuation, where the callbacks may
 * push Lua values.
 *
 * Arguments, out pointers and callbacks are borrowed until rd__op_finish
 * (PostgreSQL copies the values it sends when the operation starts, and may
 * send them again; it reads ids back for its messages when it finishes). */
#ifndef RD_STORE_OP_H
#define RD_STORE_OP_H

#include "redrive.h"
#include "store/ledger.h"

/* XX(KIND, what it does, for messages) */
#define RD__OP_KINDS(XX)                                                      \
  XX(OPEN, "open")                                                            \
  XX(SCENARIO_CREATE, "create a scenario")                                    \
  XX(SCENARIO_GET, "read a scenario")                                         \
  XX(SCENARIO_LIST, "list scenarios")                                         \
  XX(SCENARIO_UPDATE, "update a scenario")                                    \
  XX(EXEC_GET, "read an execution")                                           \
  XX(EXEC_LIST, "list executions")                                            \
  XX(EXEC_UPDATE, "update an execution")                                      \
  XX(EXEC_DELETE, "delete an execution")                                      \
  XX(RECORD, "record an execution")                                           \
  XX(DLQ_GET, "read an incomplete execution")                                 \
  XX(DLQ_LIST, "list incomplete executions")                                  \
  XX(DLQ_COUNT, "count incomplete executions")                                \
  XX(DLQ_PATCH, "patch an incomplete execution")                              \
  XX(DLQ_DELETE, "delete incomplete executions")                              \
  XX(DLQ_RESOLVE, "resolve incomplete executions")                            \
  XX(DLQ_GROUPS, "group incomplete executions")                               \
  XX(DLQ_LOGS, "list retry logs")                                             \
  XX(CLAIM, "lease incomplete executions")                                    \
  XX(RENEW, "renew leases")                                                   \
  XX(RELEASE, "release leases")                                               \
  XX(RETRY_DONE, "record a retry")                                            \
  XX(HEALTH, "compute health")                                                \
  XX(JOB_CREATE, "create a job")                                              \
  XX(JOB_GET, "read a job")                                                   \
  XX(JOB_LIST, "list jobs")                                                   \
  XX(JOB_ITEMS, "read a job's ledger")                                        \
  XX(JOB_MARK, "record in a job's ledger")                                    \
  XX(JOB_OWN, "change who runs a job")                                        \
  XX(LEDGER_TAKE, "take a lease in the ledger")                               \
  XX(LEDGER_RENEW, "renew leases in the ledger")                              \
  XX(LEDGER_SETTLE, "record an outcome in the ledger")                        \
  XX(LEDGER_EVENTS, "read the ledger's audit")                                \
  XX(PROBE, "probe the server (a test hook)")

enum rd__opkind {
#define RD__OP_ENUM(K, what) RD__OP_##K,
  RD__OP_KINDS(RD__OP_ENUM)
#undef RD__OP_ENUM
  RD__OP_NKINDS
};

typedef struct rd__op rd__op;

struct rd__op {
  rd_wait_t base;    /* first; status 0 once the results may be read */
  rd_store_t *st;
  int kind;          /* RD__OP_* */
  union {
    struct { const char *target, *password; } open;
    struct { const rd_scenario_t *rec; int64_t *id; } scenario_create;
    struct { int64_t id; rd_scenario_t **out; } scenario_get;
    struct { rd_scenario_cb cb; void *ud; } scenario_list;
    struct { int64_t id; const rd_scenario_t *rec; unsigned mask; } scenario_update;
    struct { const char *id; rd_exec_t **out; } exec_get;
    struct { const rd_exec_filter_t *f; rd_exec_cb cb; void *ud; } exec_list;
    struct { const char *id; const rd_exec_t *rec; unsigned mask; } exec_update;
    struct { const char *id; } exec_delete;
    struct {
      const rd_exec_t *exec;
      const rd_dlq_item_t *dlq;
      char *exec_id, *dlq_id;      /* RD_STORE_ID_LEN + 1 bytes each, may be NULL */
    } record;
    struct { const char *id; rd_dlq_item_t **out; } dlq_get;
    struct { const rd_dlq_filter_t *f; rd_dlq_cb cb; void *ud; } dlq_list;
    struct { const rd_dlq_filter_t *f; int64_t *n; } dlq_count;
    struct { const char *id, *blueprint; int64_t failer; } dlq_patch;
    struct {                     /* DLQ_DELETE and DLQ_RESOLVE */
      const rd_dlq_sel_t *sel;
      int64_t *deleted;            /* deleted / resolved */
      rd_dlq_error_cb on_error;
      void *ud;
    } dlq_delete;
    struct { const rd_dlq_filter_t *f; rd_group_cb cb; void *ud; } dlq_groups;
    struct { const char *id; const rd_log_filter_t *f; rd_dlq_log_cb cb; void *ud; } dlq_logs;
    struct { const rd_claim_opts_t *o; rd_dlq_cb cb; void *ud; } claim;
    struct { const char *owner; double ttl; int64_t *n; } renew;
    struct { const char *owner, *id; int64_t *n; } release;
    struct { const rd_retry_done_t *r; char *exec_id, *dlq_id; } retry_done;
    struct { int64_t scenario_id; double since; int top; rd_health_t *out; } health;
    struct { const rd_job_t *job; const rd_dlq_sel_t *sel; char *id; int64_t *total; } job_create;
    struct { const char *id; rd_job_t **out; rd_job_counts_t *counts; } job_get;
    struct { const char *state, *after; int limit; rd_job_cb cb; void *ud; } job_list;
    struct {
      const char *id, *outcome, *after;
      int limit;
      rd_job_item_cb cb;
      void *ud;
    } job_items;
    struct {
      const char *id;
      const char *const *items;
      size_t n;
      const rd_job_item_t *m;
      int64_t *n_changed;
    } job_mark;
    struct { const char *id; int what; const char *owner; double ttl; int *ok; } job_own;
    struct { const rd__ledger_take *t; rd__ledger_hold *out; } ledger_take;
    struct { const char *owner; double ttl; int64_t *n; } ledger_renew;
    struct { const rd__ledger_settle *s; int64_t *n; } ledger_settle;
    struct { const rd__ledger_filter *f; rd__ledger_cb cb; void *ud; } ledger_events;
    /* a query that sleeps `sleep` seconds, or reads the session's
     * `setting` into out (outlen bytes) */
    struct { double sleep; const char *setting; char *out; size_t outlen; } probe;
  } a;
  rd_err err;        /* why it failed, when it failed after it started */
  /* The backend's table and its state for the op: finishing never reaches
   * through st, which a close may have freed while a task was parked. */
  const struct rd__backend *impl;
  void *state;
};

/* A store for target, not yet open: the backend it picks and the target as
 * shown; open it with an RD__OP_OPEN operation (or rd_store_close it).
 * RD_EINVALID (empty), RD_ENOMEM. */
int rd__store_new(rd_store_t **out, const char *target, rd_err *err);
/* What an operation does ("record an execution"), for messages. */
const char *rd__op_what(int kind);
/* Prepare op for kind on st; the caller then sets op->a.<kind>. release
 * frees op when the caller's wait machinery is done with it (NULL for an op
 * on the stack). */
void rd__op_init(rd__op *op, rd_store_t *st, int kind, void (*release)(rd_wait_t *));
/* Start op. It may complete at once (SQLite always does; PostgreSQL when it
 * fails before anything was sent). On an error returned here op never
 * completes and needs no finish. */
int rd__op_start(rd__op *op, rd_err *err);
/* After op->base completed: the operation's error (its status, with op->err
 * or a cancellation), or the work itself (SQLite) / the reading of its
 * results (PostgreSQL), which writes the out pointers and runs the
 * callbacks. Frees the backend's state. Call exactly once per started op. */
int rd__op_finish(rd__op *op, rd_err *err);
/* Start, wait (running the store's loop from outside any task when the
 * backend answers asynchronously), finish: the synchronous API. */
int rd__op_run(rd__op *op, rd_err *err);
/* Does st answer asynchronously (operations complete from the loop, so a
 * caller must be able to wait)? */
int rd__op_async(const rd_store_t *st);

#endif

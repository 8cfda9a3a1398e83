/* Internals of the PostgreSQL backend (src/store/pg*.c).
 *
 * One libpq connection per store, in pipeline mode, driven from the store's
 * loop: the socket is watched by a uv_poll, nothing ever blocks. An
 * operation becomes a request: the statements it needs (prepared once per
 * connection, parameters copied), sent at once into the open segment of the
 * pipeline; the group commit's before-poll hook ends the segment with a
 * sync point, so the server runs each segment as one implicit transaction.
 * Results come back in order and are matched to their requests; a request
 * completes (its operation's wait) when its segment's sync has been
 * answered, i.e. after the commit. A failed statement aborts its segment:
 * that request fails (or, for a transient error, is sent again) and the
 * others of the segment are sent again in a new one.
 *
 * pg.c: the connection, pipeline, segments, results, notifications.
 * pg_migrate.c: connecting's last step, the versioned schema under an
 * advisory lock. pg_scenario.c, pg_exec.c, pg_dlq.c, pg_retry.c,
 * pg_health.c: each operation's statements and how its results are read. */
#ifndef RD_STORE_PG_INT_H
#define RD_STORE_PG_INT_H

#include "store/store_int.h"

#include "store/pg_dl.h"

#define RD__PG_MAXQ 6        /* statements in one request at most */

typedef struct rd__pgstmt rd__pgstmt;
typedef struct rd__pgreq rd__pgreq;

/* A prepared statement of the connection, cached by its SQL text. */
struct rd__pgstmt {
  char *sql;                 /* as written, with ":name" parameters: the key */
  char *text;                /* as sent, with $1, $2, ... */
  char **params;             /* the ":name" of each $i */
  int nparams;
  char name[16];             /* "rd12" */
  int state;                 /* 0: not on the server, 1: Parse sent, 2: prepared */
  rd__pgstmt *next;
};

/* One statement of a request: what runs, with which values, and its result. */
typedef struct rd__pgq {
  rd__pgstmt *stmt;
  int *val;                  /* per parameter: offset into the request's buffer,
                                -1 for NULL */
  PGresult *res;             /* once answered */
} rd__pgq;

/* An operation on the wire. Owned by the connection until it completes;
 * then by its operation (op->state) until finished. */
struct rd__pgreq {
  rd__op *op;                /* NULL once its caller gave up on it */
  struct rd__pg *pg;
  int kind;                  /* RD__OP_* */
  rd__pgq q[RD__PG_MAXQ];
  int nq;
  rd_buf buf;                /* parameter values, NUL-terminated, back to back */
  int tries;                 /* times sent (a transient failure sends it again) */
  int failed_q;              /* which statement failed, -1 if none */
  int internal;              /* the connection's own (LISTEN): sent again
                                after a failure though nobody waits */
  char ids[2][RD_STORE_ID_LEN + 1]; /* ids it chose (record, retry_done) */
  char *lease_item, *lease_owner;   /* retry_done: for a refusal's message */
  rd__pgreq *next;           /* in the waiting queue or its segment */
};

/* The store's PostgreSQL part. */
typedef struct rd__pg rd__pg;

/* ---- pg.c: building requests (the operation files use these) ----------- */

/* Add a statement to r (prepared on the connection on first use); its
 * parameters are bound by name with the functions below. 0, RD_ENOMEM. */
int rd__pg_add(rd__pgreq *r, const char *sql, rd_err *err);
/* Same, the SQL built by build() (0 or RD_ENOMEM). */
int rd__pg_add_built(rd__pgreq *r, int (*build)(rd_buf *q, const void *ud), const void *ud,
                     rd_err *err);
/* Bind the last statement added: by ":name" (absent names are skipped);
 * values are copied. NULL text / NaN binds NULL. 0 or RD_ENOMEM (remembered:
 * the request then fails when it starts). */
void rd__pg_text(rd__pgreq *r, const char *name, const char *v);
void rd__pg_int(rd__pgreq *r, const char *name, int64_t v);
void rd__pg_bool(rd__pgreq *r, const char *name, int v);
void rd__pg_real(rd__pgreq *r, const char *name, double v);
/* A JSON array of the strings (json_array_elements_text). */
void rd__pg_strings(rd__pgreq *r, const char *name, const char *const *v, size_t n);
/* The binder on the last statement added (s is the request). */
extern const rd__binder rd__pg_binder;
/* Every field of rec a caller may set (rd__rec_bind on the last statement). */
void rd__pg_rec(rd__pgreq *r, const rd__record *rec_r, const void *rec);

/* ---- pg.c: reading results ---------------------------------------------- */

/* The reader of record rows (row = rd__pgrow). */
typedef struct rd__pgrow {
  PGresult *res;
  int row;
} rd__pgrow;
extern const rd__reader rd__pg_reader;
/* Read row i of statement qi's result into rec (strings borrowed from the
 * result until the request is freed). */
void rd__pg_read(rd__pgreq *r, int qi, int i, const rd__record *rec_r, int heavy, void *rec);
/* Rows of statement qi, rows changed by it (UPDATE / DELETE). */
int rd__pg_rows(const rd__pgreq *r, int qi);
int64_t rd__pg_changed(const rd__pgreq *r, int qi);
/* Column c of row i of statement qi: NULL for SQL NULL. */
const char *rd__pg_value(const rd__pgreq *r, int qi, int i, int c);

/* ---- the operations (pg_scenario.c, pg_exec.c, ...) ----------------------
 * build: the statements of op into r (0 or an error: the operation then
 * fails at once); read: the results into op's out pointers and callbacks. */
typedef struct rd__pgop {
  int (*build)(rd__pgreq *r, const rd__op *op, rd_err *err);
  int (*read)(rd__pgreq *r, rd__op *op, rd_err *err);
} rd__pgop;

extern const rd__pgop rd__pg_job_create, rd__pg_job_get, rd__pg_job_list, rd__pg_job_items,
    rd__pg_job_mark, rd__pg_job_own;
/* retry_done's ledger row, a statement of its segment (pg_job.c). */
int rd__pg_job_retried(rd__pgreq *r, const rd_retry_done_t *d, const char *exec_id, rd_err *err);
extern const rd__pgop rd__pg_scenario_create, rd__pg_scenario_get, rd__pg_scenario_list,
    rd__pg_scenario_update, rd__pg_exec_get, rd__pg_exec_list, rd__pg_exec_update,
    rd__pg_exec_delete, rd__pg_record, rd__pg_dlq_get, rd__pg_dlq_list, rd__pg_dlq_count,
    rd__pg_dlq_patch, rd__pg_dlq_delete, rd__pg_dlq_groups, rd__pg_dlq_logs, rd__pg_claim, rd__pg_renew,
    rd__pg_release, rd__pg_retry_done, rd__pg_health, rd__pg_probe;
/* pg_ledger.c (ledger.h) */
extern const rd__pgop rd__pg_ledger_take, rd__pg_ledger_renew, rd__pg_ledger_settle,
    rd__pg_ledger_events;

/* Shared by the operation files: an item with blueprint and state, and the
 * execution upsert. */
int rd__pg_item_insert(rd__pgreq *r, const rd_dlq_item_t *d, const char *id, const char *exec_id,
                       rd_err *err);
int rd__pg_exec_put(rd__pgreq *r, const rd_exec_t *e, const char *id, const char *dlq_id,
                    rd_err *err);
/* A selection of items (rd_dlq_sel_t): conditions appended to q, bound by
 * rd__pg_sel_bind on the statement added last. */
int rd__pg_sel_sql(rd_buf *q, const rd_dlq_sel_t *sel);
void rd__pg_sel_bind(rd__pgreq *r, const rd_dlq_sel_t *sel);
/* "Someone holds a lease right now" (binds :now). */
#define RD__PG_LEASED "(lease_owner IS NOT NULL AND lease_expiry > :now)"

/* ---- pg_migrate.c --------------------------------------------------------- */

/* The connection is up: start bringing the schema to rd__schema_version
 * (the setup state machine in pg.c sends what these return). */
typedef struct rd__pgsetup {
  int step;                  /* 0 lock and look, 1 read the version, 2 migrate */
  int version;
  int exists;                /* redrive_schema exists */
  int sync_off;              /* the session had synchronous_commit off */
  unsigned table_oid;        /* dlq_item's: its triggers notify
                                redrive_work_<oid> (unique per store) */
} rd__pgsetup;
/* The SQL of the setup's current step (malloc'd), or NULL when it is done. */
char *rd__pg_setup_sql(rd__pgsetup *s, rd_err *err);
/* The results of the step just run (res[0..n)): 0 and the next step, or an
 * error (RD_ECORRUPT: a newer schema or another application's). */
int rd__pg_setup_next(rd__pgsetup *s, PGresult **res, int n, const char *where, rd_err *err);

/* ---- errors ------------------------------------------------------------------ */

/* Map a failed result to an RD_E* code and err: "store: cannot <what> in
 * '<url>': <the server's message>" (never its DETAIL or CONTEXT, which can
 * hold row values); invalid JSON in a parameter names its column. */
int rd__pg_fail(const rd__pgreq *r, const PGresult *res, const char *where, rd_err *err);

#endif

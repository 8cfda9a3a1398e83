/* The store's records as data: one descriptor per record, generated from the
 * X-macro lists of include/redrive.h (RD_EXEC_FIELDS, ...). Both backends
 * build their SQL, bind parameters and read rows from them (record.c: the
 * SQL text, with `:name` parameters, is the same for SQLite and PostgreSQL;
 * each backend plugs in its own primitive binders and column readers); the
 * Lua binding builds and reads its tables from them (src/lua/lstore.c). No
 * SQLite, no libpq, no Lua here. */
#ifndef RD_STORE_RECORD_H
#define RD_STORE_RECORD_H

#include "core/buf.h"
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

extern const rd__record rd__rec_scenario, rd__rec_exec, rd__rec_item, rd__rec_log, rd__rec_job,
    rd__rec_job_item;

/* The member of `rec` that field f describes. */
#define RD__MEMBER(rec, f, type) ((type *)((char *)(rec) + (f)->off))
#define RD__CMEMBER(rec, f, type) ((const type *)((const char *)(rec) + (f)->off))

/* Copy record `rec` of kind r and the strings it points to into one malloc'd
 * block (free it with free()). NULL when out of memory. */
void *rd__rec_dup(const rd__record *r, const void *rec);

/* The SQL declared type of a kind in SQLite ("TEXT", "INTEGER", "REAL") and
 * in PostgreSQL ("text", "json", "bigint", "integer", "boolean", "double
 * precision"), as the catalogs spell them. */
const char *rd__kind_sqlite(rd__kind k);
const char *rd__kind_pg(rd__kind k);

/* ---- SQL from a record's list; each returns 0 or RD_ENOMEM ------------------
 * cols: "a, b, c" (heavy fields only when `heavy`); select: "SELECT cols
 * FROM table"; insert: every column bound to its ":name", with `upsert` an
 * ON CONFLICT (key) DO UPDATE of every other column; update: "UPDATE table
 * SET f = CASE WHEN (:mask & bit) <> 0 THEN :f ELSE f END, ..." over the
 * fields a caller may set (the caller appends the rest and WHERE). The text
 * is valid in both dialects. */
int rd__sql_cols(rd_buf *q, const rd__record *r, int heavy);
int rd__sql_select(rd_buf *q, const rd__record *r, int heavy);
int rd__sql_insert(rd_buf *q, const rd__record *r, int upsert);
int rd__sql_update(rd_buf *q, const rd__record *r);
/* insert_auto: every column but the key, which the database makes (an
 * identity), "RETURNING key"; get: "SELECT every column FROM table WHERE
 * id = :id". */
int rd__sql_insert_auto(rd_buf *q, const rd__record *r);
int rd__sql_get(rd_buf *q, const rd__record *r);

/* ---- parameters and rows: generated once, primitives per backend ----------
 * A binder sets a statement's parameter by its ":name" (absent names are
 * skipped, so one routine serves every variant of a query); strings are
 * borrowed as the backend says. A reader reads column `col` of a row. */
typedef struct rd__binder {
  void (*text)(void *s, const char *name, const char *v);  /* NULL: SQL NULL */
  void (*i64)(void *s, const char *name, int64_t v);
  void (*boolean)(void *s, const char *name, int v);
  void (*real)(void *s, const char *name, double v);      /* NaN: SQL NULL */
} rd__binder;
typedef struct rd__reader {
  const char *(*text)(void *row, int col);                /* NULL for SQL NULL */
  int64_t (*i64)(void *row, int col);                     /* 0 for SQL NULL */
  int (*boolean)(void *row, int col);
  double (*real)(void *row, int col);                     /* NaN for SQL NULL */
} rd__reader;

/* Bind every field of `rec` a caller may set to its ":name" parameter
 * (RD_F_ZERONULL fields that are 0 as NULL); fields set by the store are
 * left for the caller to bind. */
void rd__rec_bind(const rd__binder *b, void *s, const rd__record *r, const void *rec);
/* Read a row, columns in list order from 0 (heavy ones only when `heavy`,
 * else left NULL), into `rec`; strings are borrowed from the row as the
 * backend says. */
void rd__rec_read(const rd__reader *rd, void *row, const rd__record *r, int heavy, void *rec);

/* ---- queries from a caller's filter (query.c), for both backends ----------
 * Where the dialects differ: how pending and resolved items are written
 * (literals, so that the partial indexes on pending items apply). */
typedef struct rd__dialect {
  const char *pending, *resolved;  /* " AND resolved = 0" / " AND NOT resolved", ... */
  /* a JSON array parameter's strings: as a subquery ("SELECT value FROM
   * json_each(" p ")") and as rows v(value) of a FROM clause */
  const char *set_open, *set_close, *rows_open, *rows_close;
} rd__dialect;
extern const rd__dialect rd__dialect_sqlite, rd__dialect_pg;

/* A page of executions (light columns) and its parameters. */
int rd__sql_exec_list(rd_buf *q, const rd_exec_filter_t *f);
void rd__bind_exec_list(const rd__binder *b, void *s, const rd_exec_filter_t *f, int limit);
/* " WHERE ..." of a listing or count of items (`full`: created since /
 * until too) and its parameters. */
int rd__sql_dlq_filter(rd_buf *q, const rd__dialect *d, const rd_dlq_filter_t *f, int full);
void rd__bind_dlq_filter(const rd__binder *b, void *s, const rd_dlq_filter_t *f);
/* A group's scenarios from "3,1,12" (the distinct ids, as the aggregate
 * gives them): the first RD_GROUP_SCENARIOS listed, the rest counted. */
void rd__group_scenarios(rd_group_t *g, const char *list);
/* ---- bulk jobs (job.c): the SQL of each step, for both backends ---------- */
int rd__sql_job_insert(rd_buf *q);
int rd__sql_job_ledger(rd_buf *q, const rd__dialect *d, const rd_dlq_sel_t *sel,
                       int (*cond)(rd_buf *q, const rd_dlq_sel_t *sel));
int rd__sql_job_total(rd_buf *q);
int rd__sql_job_counts(rd_buf *q);
int rd__sql_job_list(rd_buf *q, const char *state, const char *after);
int rd__sql_job_items(rd_buf *q, const char *outcome, const char *after);
/* The same two as query builders of either backend (an operation's build
 * callback): ud is a const rd__job_sel * (state or outcome, after). */
typedef struct { const char *filter, *after; } rd__job_sel;
int rd__sql_job_list_q(rd_buf *q, const void *ud);
int rd__sql_job_items_q(rd_buf *q, const void *ud);
/* The mark of ledger rows (rd_store_job_mark) as a query builder of either
 * backend: ud is a const rd__job_mark_sel * (the dialect; marking started;
 * by a named runner). */
typedef struct { const rd__dialect *d; int started, by_runner; } rd__job_mark_sel;
int rd__sql_job_mark_q(rd_buf *q, const void *ud);
extern const char rd__sql_job_retried[];
/* The statements (sql[0..n)) of what a runner does to a job (RD_JOB_*);
 * returns n. Statement *decides's change count says whether it happened. */
#define RD__JOB_OWN_MAX 5
int rd__sql_job_own(int what, const char *sql[RD__JOB_OWN_MAX], int *decides);
/* Is o one of the ledger's outcomes? */
int rd__job_outcome_valid(const char *o);
/* Add n rows of outcome to c. */
void rd__job_count(rd_job_counts_t *c, const char *outcome, int64_t n);
/* RD_ENOT_FOUND: "store: no job 'x'". */
int rd__err_no_job(rd_err *err, const char *id);
/* A page of an item's logs and its parameters. */
int rd__sql_logs(rd_buf *q, const rd_log_filter_t *f);
void rd__bind_logs(const rd__binder *b, void *s, const char *dlq_id, const rd_log_filter_t *f,
                   int limit);

#endif

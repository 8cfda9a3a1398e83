/* The SQLite backend: opening a file safely, schema migrations, the
 * statement cache, transactions, the helpers its operation files share
 * (sqlite_*.c), and its entry in the backend table, which runs every
 * operation synchronously when it is finished. */
#include "store/sqlite_int.h"

#include "store/schema.h"

#include "core/ids.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 'RDrv': marks the file as ours, so a database of another application with
 * a user_version of its own is recognised as foreign. */
#define APPLICATION_ID 0x52447276
#define BUSY_TIMEOUT_MS 5000

int rd__st_fail(rd_store_t *st, int rc, const char *what, rd_err *err) {
  int code;
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: code = RD_EBUSY; break;
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT: code = RD_ECORRUPT; break;
  case SQLITE_NOMEM: code = RD_ENOMEM; break;
  case SQLITE_CONSTRAINT:
    code = (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
               ? RD_ECONFLICT : RD_EINVALID;
    break;
  case SQLITE_TOOBIG:
  case SQLITE_MISMATCH:
  case SQLITE_RANGE: code = RD_EINVALID; break;
  default: code = RD_EIO; break;
  }
  const char *msg = st->sq->db ? sqlite3_errmsg(st->sq->db) : sqlite3_errstr(rc);
  /* A file that is not SQLite at all, and a store with damaged pages (found
   * by the read that reaches them: a full check at open reads every page,
   * seconds on a large store, too slow for a cron start) are both
   * RD_ECORRUPT; the message tells them apart and says what to do. */
  if ((rc & 0xff) == SQLITE_NOTADB)
    return rd_err_set(err, code, "store: '%s' is not a redrive store (%s)", st->path, msg);
  if (code == RD_ECORRUPT)
    return rd_err_set(err, code,
                      "store: '%s' is damaged (%s); to save what is readable: "
                      "sqlite3 '%s' .recover | sqlite3 NEW.db",
                      st->path, msg, st->path);
  return rd_err_set(err, code, "store: %s '%s': %s", what, st->path, msg);
}

int rd__st_prep(rd_store_t *st, const char *sql, sqlite3_stmt **out, rd_err *err) {
  for (size_t i = 0; i < st->sq->nstmts; i++) {
    if (strcmp(st->sq->stmts[i].sql, sql) == 0) {
      sqlite3_stmt *s = st->sq->stmts[i].stmt;
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
      *out = s;
      return 0;
    }
  }
  if (st->sq->nstmts == st->sq->capstmts) {
    size_t cap = st->sq->capstmts ? st->sq->capstmts * 2 : 32;
    rd__stmt_entry *p = realloc(st->sq->stmts, cap * sizeof *p);
    if (!p) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
    st->sq->stmts = p;
    st->sq->capstmts = cap;
  }
  char *copy = strdup(sql);
  if (!copy) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v3(st->sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
  if (rc != SQLITE_OK) {
    free(copy);
    return rd__st_fail(st, rc, "cannot prepare a query on", err);
  }
  st->sq->stmts[st->sq->nstmts++] = (rd__stmt_entry){.sql = copy, .stmt = s};
  *out = s;
  return 0;
}

int rd__st_slot(rd_store_t *st, int slot, int (*build)(rd_buf *q), sqlite3_stmt **out,
                rd_err *err) {
  sqlite3_stmt *s = st->sq->slot[slot];
  if (s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    *out = s;
    return 0;
  }
  rd_buf q = {0};
  int r = build(&q) ? rd_err_set(err, RD_ENOMEM, "store: out of memory")
                    : rd__st_prep(st, q.data, &s, err);
  rd__buf_free(&q);
  if (r) return r;
  st->sq->slot[slot] = *out = s;
  return 0;
}

int rd__st_exec(rd_store_t *st, sqlite3_stmt *s, const char *what, rd_err *err) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {}
  int r = rc == SQLITE_DONE ? 0 : rd__st_fail(st, rc, what, err);
  sqlite3_reset(s);
  return r;
}

static int run_sql(rd_store_t *st, const char *sql, const char *what, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, sql, &s, err);
  return r ? r : rd__st_exec(st, s, what, err);
}

static int tx_begin(rd_store_t *st, rd_err *err) {
  if (st->sq->batch) return run_sql(st, "SAVEPOINT rd_call", "cannot open a savepoint in", err);
  /* A transaction left open would make everything after it part of it. */
  if (!sqlite3_get_autocommit(st->sq->db)) sqlite3_exec(st->sq->db, "ROLLBACK", NULL, NULL, NULL);
  return run_sql(st, "BEGIN IMMEDIATE", "cannot lock", err);
}

int rd__st_begin(rd_store_t *st, rd_err *err) {
  int r = rd__group_enter(st, 0, err);
  return r ? r : tx_begin(st, err);
}

int rd__st_begin_group(rd_store_t *st, rd_err *err) {
  int r = rd__group_enter(st, 1, err);
  return r ? r : tx_begin(st, err);
}

int rd__st_end(rd_store_t *st, int rc, rd_err *err) {
  if (st->sq->batch) {
    if (rc == 0) return run_sql(st, "RELEASE rd_call", "cannot release a savepoint in", err);
    run_sql(st, "ROLLBACK TO rd_call", "cannot roll back", NULL);
    run_sql(st, "RELEASE rd_call", "cannot release a savepoint in", NULL);
    return rc;
  }
  if (rc == 0) {
    rc = run_sql(st, "COMMIT", "cannot commit to", err);
    if (rc == 0) return 0;
  }
  if (!sqlite3_get_autocommit(st->sq->db)) {
    /* The error being returned is what matters; a failed rollback is
     * reported by SQLite rolling back on the next open. */
    if (run_sql(st, "ROLLBACK", "cannot roll back", NULL))
      sqlite3_exec(st->sq->db, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
}

void rd__bind_text(sqlite3_stmt *s, const char *name, const char *v) {
  int i = sqlite3_bind_parameter_index(s, name);
  if (i == 0) return;
  if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(s, i);
}

void rd__bind_int(sqlite3_stmt *s, const char *name, int64_t v) {
  int i = sqlite3_bind_parameter_index(s, name);
  if (i) sqlite3_bind_int64(s, i, v);
}

void rd__bind_double(sqlite3_stmt *s, const char *name, double v) {
  int i = sqlite3_bind_parameter_index(s, name);
  if (i == 0) return;
  if (isnan(v)) sqlite3_bind_null(s, i);
  else sqlite3_bind_double(s, i, v);
}

int rd__bind_strings(sqlite3_stmt *s, const char *name, const char *const *v, size_t n) {
  int idx = sqlite3_bind_parameter_index(s, name);
  if (idx == 0) return 0;
  rd_buf b = {0};
  int r = rd__buf_add(&b, "[", 1);
  for (size_t i = 0; r == 0 && i < n; i++) {
    if (i) r = rd__buf_add(&b, ",", 1);
    r = r ? r : rd__buf_add(&b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v[i]; r == 0 && *p; p++) {
      if (*p == '"' || *p == '\\') {
        char esc[2] = {'\\', (char)*p};
        r = rd__buf_add(&b, esc, 2);
      } else if (*p < 0x20) {
        r = rd__buf_printf(&b, "\\u%04x", *p);
      } else {
        r = rd__buf_add(&b, p, 1);
      }
    }
    r = r ? r : rd__buf_add(&b, "\"", 1);
  }
  r = r ? r : rd__buf_add(&b, "]", 1);
  if (r) {
    rd__buf_free(&b);
    return RD_ENOMEM;
  }
  size_t len;
  char *json = rd__buf_steal(&b, &len);
  return sqlite3_bind_text(s, idx, json, (int)len, free) == SQLITE_OK ? 0 : RD_ENOMEM;
}

const char *rd__col_text(sqlite3_stmt *s, int i) {
  return (const char *)sqlite3_column_text(s, i);
}

double rd__col_double(sqlite3_stmt *s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

/* ---- opening ------------------------------------------------------------ */

/* mkdir -p of the directory part of path (mode 0700 for what we create). */
static int make_parents(const char *path, rd_err *err) {
  char *dir = strdup(path);
  if (!dir) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  int r = 0;
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
      if (*p == '/' || *p == '\0') {
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
          r = rd_err_set(err, RD_EIO, "store: cannot create directory '%s': %s", dir,
                         strerror(errno));
          break;
        }
        *p = c;
        if (c == '\0') break;
      }
    }
  }
  free(dir);
  return r;
}

/* An existing store (or its -wal / -shm) readable by others is made
 * owner-only: it holds run data. Best effort: a file we do not own stays. */
static void tighten(const char *path) {
  static const char *const suffix[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
    char name[4096];
    struct stat sb;
    if ((size_t)snprintf(name, sizeof name, "%s%s", path, suffix[i]) >= sizeof name) return;
    if (stat(name, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 077))
      chmod(name, sb.st_mode & 0700);
  }
}

/* Create the file with mode 0600 if it does not exist, so SQLite (and its
 * -wal and -shm files, which copy the mode) never makes it world-readable. */
static int create_file(const char *path, rd_err *err) {
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    close(fd);
    /* Make the new directory entry durable too (SQLite does this for its
     * -wal file, not for a main file it did not create). */
    char *dir = strdup(path);
    if (dir) {
      char *slash = strrchr(dir, '/');
      if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
      int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
      }
      free(dir);
    }
    return 0;
  }
  if (errno == EEXIST) {
    tighten(path);
    return 0;
  }
  return rd_err_set(err, RD_EIO, "store: cannot create '%s': %s", path, strerror(errno));
}

static int pragma_int(rd_store_t *st, const char *sql, int *out, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, sql, &s, err);
  if (r) return r;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int(s, 0);
  else r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

/* Inside the write transaction: check that the file is ours (or empty) and
 * bring its schema to rd__schema_version. */
static int migrate(rd_store_t *st, rd_err *err) {
  int version = 0, appid = 0, ntables = 0;
  int r = pragma_int(st, "PRAGMA user_version", &version, err);
  if (!r) r = pragma_int(st, "PRAGMA application_id", &appid, err);
  if (!r) r = pragma_int(st, "SELECT count(*) FROM sqlite_schema", &ntables, err);
  if (r) return r;
  if (version == 0 && ntables > 0)
    return rd_err_set(err, RD_ECORRUPT,
                      "store: '%s' is not a redrive store (a database of something else)",
                      st->path);
  if (version > 0 && appid != APPLICATION_ID)
    return rd_err_set(err, RD_ECORRUPT,
                      "store: '%s' is not a redrive store (application id %d)", st->path,
                      appid);
  if (version > rd__schema_version)
    return rd_err_set(err, RD_ECORRUPT,
                      "store: '%s' has schema version %d, newer than this redrive knows (%d)",
                      st->path, version, rd__schema_version);
  if (version == rd__schema_version) return 0;
  for (int v = version; v < rd__schema_version; v++) {
    char *msg = NULL;
    int rc = sqlite3_exec(st->sq->db, rd__migrations[v].sqlite, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
      r = rd_err_set(err, RD_EIO, "store: cannot migrate '%s' to version %d: %s", st->path,
                     v + 1, msg ? msg : sqlite3_errstr(rc));
      sqlite3_free(msg);
      return r;
    }
  }
  char sql[96];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
           rd__schema_version, APPLICATION_ID);
  int rc = sqlite3_exec(st->sq->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : rd__st_fail(st, rc, "cannot migrate", err);
}

/* The store's one busy policy: a lock another connection holds is waited
 * for, a little longer each time, up to BUSY_TIMEOUT_MS in all (the steps
 * of sqlite3_busy_timeout). SQLite calls it (sqlite3_busy_handler), and so
 * does set_wal, where SQLite does not. count: the waits so far for this
 * lock. Returns 1 after waiting (try again), 0 when the time is up. */
static int busy_wait(void *ud, int count) {
  static const int delays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
  enum { N = sizeof delays / sizeof delays[0] };
  (void)ud;
  int waited = 0, delay = delays[N - 1];
  for (int i = 0; i < count && i < N; i++) waited += delays[i];
  if (count < N) delay = delays[count];
  else waited += delay * (count - N);
  if (waited >= BUSY_TIMEOUT_MS) return 0;
  if (waited + delay > BUSY_TIMEOUT_MS) delay = BUSY_TIMEOUT_MS - waited;
  sqlite3_sleep(delay);
  return 1;
}

/* PRAGMA journal_mode = WAL, waiting for locks as everything else does.
 * SQLite fails the switch at once with SQLITE_BUSY, without calling the
 * busy handler, when another connection holds the write lock: the switch
 * upgrades a read lock, and waiting while holding one could deadlock. Two
 * processes opening the same new store meet exactly that (one switches or
 * creates the schema while the other switches). A failed switch holds no
 * lock once reset, so it is tried again under busy_wait. */
static int set_wal(rd_store_t *st, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "PRAGMA journal_mode = WAL", &s, err);
  if (r) return r;
  int rc;
  for (int n = 0; (rc = sqlite3_step(s)) != SQLITE_ROW && (rc & 0xff) == SQLITE_BUSY; n++) {
    sqlite3_reset(s);
    if (!busy_wait(NULL, n)) break;
  }
  if (rc != SQLITE_ROW) r = rd__st_fail(st, rc, "cannot set WAL mode on", err);
  else if (sqlite3_stricmp(rd__col_text(s, 0), "wal") != 0)
    r = rd_err_set(err, RD_EIO, "store: cannot set WAL mode on '%s' (got %s)", st->path,
                   rd__col_text(s, 0));
  sqlite3_reset(s);
  return r;
}

int rd__sq_open(rd_store_t *st, rd_err *err) {
  const char *path = st->path;
  if (!(st->sq = calloc(1, sizeof *st->sq)))
    return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  int r = make_parents(path, err);
  if (!r) r = create_file(path, err);
  if (r) return r;
  int rc = sqlite3_open_v2(path, &st->sq->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    r = rd__st_fail(st, rc, "cannot open", err);
    if (r != RD_ECORRUPT)
      r = rd_err_set(err, RD_EIO, "store: cannot open '%s': %s", path,
                     st->sq->db ? sqlite3_errmsg(st->sq->db) : sqlite3_errstr(rc));
    return r;
  }
  sqlite3_extended_result_codes(st->sq->db, 1);
  sqlite3_busy_handler(st->sq->db, busy_wait, NULL);
  int version = 0;
  /* The first read tells a file that is not SQLite (SQLITE_NOTADB). */
  r = pragma_int(st, "PRAGMA user_version", &version, err);
  if (!r) r = set_wal(st, err);
  if (!r) r = run_sql(st, "PRAGMA synchronous = FULL", "cannot configure", err);
  if (!r) r = run_sql(st, "PRAGMA foreign_keys = ON", "cannot configure", err);
  if (!r) r = rd__sq_functions(st, err);
  if (r) return r;
  r = rd__st_begin(st, err);
  if (r) return r;
  return rd__st_end(st, migrate(st, err), err);
}

int rd__sq_batch_begin(rd_store_t *st, rd_err *err) {
  if (st->sq->batch) return 0;
  int r = tx_begin(st, err);
  if (r == 0) st->sq->batch = 1;
  return r;
}

int rd__sq_batch_commit(rd_store_t *st, rd_err *err) {
  if (!st->sq->batch) return 0;
  st->sq->batch = 0;
  return rd__st_end(st, 0, err);
}

/* Batches by hand are SQLite's: on PostgreSQL the writes of one loop
 * iteration share a transaction by themselves (group.c). */
static int no_batch(const rd_store_t *st, rd_err *err) {
  return rd_err_set(err, RD_EUNSUPPORTED,
                    "store: batches by hand are SQLite's; on %s '%s' the writes of one loop"
                    " iteration share a transaction by themselves",
                    st->be->name, st->path);
}

int rd_store_batch_begin(rd_store_t *st, rd_err *err) {
  return st->sq ? rd__sq_batch_begin(st, err) : no_batch(st, err);
}

int rd_store_batch_commit(rd_store_t *st, rd_err *err) {
  return st->sq ? rd__sq_batch_commit(st, err) : no_batch(st, err);
}

int rd_store_in_batch(const rd_store_t *st) { return st->sq ? st->sq->batch : 0; }

void rd__sq_close(rd_store_t *st) {
  struct rd__sq *q = st->sq;
  if (!q) return;
  if (q->batch) rd__sq_batch_commit(st, NULL);
  for (size_t i = 0; i < q->nstmts; i++) {
    sqlite3_finalize(q->stmts[i].stmt);
    free(q->stmts[i].sql);
  }
  free(q->stmts);
  if (q->db) {
    if (!sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    /* Keep the planner's statistics fresh (cheap: only where needed). */
    sqlite3_exec(q->db, "PRAGMA optimize", NULL, NULL, NULL);
    sqlite3_close(q->db);
  }
  free(q);
  st->sq = NULL;
}

int64_t rd__st_changes(rd_store_t *st) { return sqlite3_changes64(st->sq->db); }

/* ---- the record binder and reader ------------------------------------------ */

static void b_text(void *s, const char *name, const char *v) { rd__bind_text(s, name, v); }
static void b_i64(void *s, const char *name, int64_t v) { rd__bind_int(s, name, v); }
static void b_bool(void *s, const char *name, int v) { rd__bind_int(s, name, v != 0); }
static void b_real(void *s, const char *name, double v) { rd__bind_double(s, name, v); }
static const char *c_text(void *s, int i) { return rd__col_text(s, i); }
static int64_t c_i64(void *s, int i) { return sqlite3_column_int64(s, i); }
static int c_bool(void *s, int i) { return sqlite3_column_int(s, i) != 0; }
static double c_real(void *s, int i) { return rd__col_double(s, i); }

const rd__binder rd__sq_binder = {b_text, b_i64, b_bool, b_real};
const rd__reader rd__sq_reader = {c_text, c_i64, c_bool, c_real};

/* ---- the backend: every operation runs when it is finished ----------------- */

static int sq_start(rd__op *op, rd_err *err) {
  (void)err;
  rd_wait_done(&op->base, 0);
  return 0;
}

static int run(rd__op *op, rd_err *err) {
  rd_store_t *st = op->st;
  switch (op->kind) {
  case RD__OP_OPEN: return rd__sq_open(st, err);
#define A(k) op->a.k
  case RD__OP_SCENARIO_CREATE:
    return rd__sq_scenario_create(st, A(scenario_create).rec, A(scenario_create).id, err);
  case RD__OP_SCENARIO_GET:
    return rd__sq_scenario_get(st, A(scenario_get).id, A(scenario_get).out, err);
  case RD__OP_SCENARIO_LIST:
    return rd__sq_scenario_list(st, A(scenario_list).cb, A(scenario_list).ud, err);
  case RD__OP_SCENARIO_UPDATE:
    return rd__sq_scenario_update(st, A(scenario_update).id, A(scenario_update).rec,
                                  A(scenario_update).mask, err);
  case RD__OP_EXEC_GET: return rd__sq_exec_get(st, A(exec_get).id, A(exec_get).out, err);
  case RD__OP_EXEC_LIST:
    return rd__sq_exec_list(st, A(exec_list).f, A(exec_list).cb, A(exec_list).ud, err);
  case RD__OP_EXEC_UPDATE:
    return rd__sq_exec_update(st, A(exec_update).id, A(exec_update).rec, A(exec_update).mask,
                              err);
  case RD__OP_EXEC_DELETE: return rd__sq_exec_delete(st, A(exec_delete).id, err);
  case RD__OP_RECORD:
    return rd__sq_record(st, A(record).exec, A(record).dlq, A(record).exec_id, A(record).dlq_id,
                         err);
  case RD__OP_DLQ_GET: return rd__item_get(st, A(dlq_get).id, A(dlq_get).out, NULL, NULL, err);
  case RD__OP_DLQ_LIST:
    return rd__sq_dlq_list(st, A(dlq_list).f, A(dlq_list).cb, A(dlq_list).ud, err);
  case RD__OP_DLQ_COUNT: return rd__sq_dlq_count(st, A(dlq_count).f, A(dlq_count).n, err);
  case RD__OP_DLQ_PATCH:
    return rd__sq_dlq_patch(st, A(dlq_patch).id, A(dlq_patch).blueprint, A(dlq_patch).failer,
                            err);
  case RD__OP_DLQ_DELETE:
    return rd__sq_dlq_delete(st, A(dlq_delete).sel, A(dlq_delete).deleted,
                             A(dlq_delete).on_error, A(dlq_delete).ud, err);
  case RD__OP_DLQ_RESOLVE:
    return rd__sq_dlq_resolve(st, A(dlq_delete).sel, A(dlq_delete).deleted,
                              A(dlq_delete).on_error, A(dlq_delete).ud, err);
  case RD__OP_DLQ_GROUPS:
    return rd__sq_dlq_groups(st, A(dlq_groups).f, A(dlq_groups).cb, A(dlq_groups).ud, err);
  case RD__OP_DLQ_LOGS:
    return rd__sq_dlq_logs(st, A(dlq_logs).id, A(dlq_logs).f, A(dlq_logs).cb, A(dlq_logs).ud,
                           err);
  case RD__OP_CLAIM: return rd__sq_claim(st, A(claim).o, A(claim).cb, A(claim).ud, err);
  case RD__OP_RENEW: return rd__sq_renew(st, A(renew).owner, A(renew).ttl, A(renew).n, err);
  case RD__OP_RELEASE:
    return rd__sq_release(st, A(release).owner, A(release).id, A(release).n, err);
  case RD__OP_RETRY_DONE:
    return rd__sq_retry_done(st, A(retry_done).r, A(retry_done).exec_id, A(retry_done).dlq_id,
                             err);
  case RD__OP_HEALTH:
    return rd__sq_health(st, A(health).scenario_id, A(health).since, A(health).top,
                         A(health).out, err);
  case RD__OP_JOB_CREATE:
    return rd__sq_job_create(st, A(job_create).job, A(job_create).sel, A(job_create).id,
                             A(job_create).total, err);
  case RD__OP_JOB_GET:
    return rd__sq_job_get(st, A(job_get).id, A(job_get).out, A(job_get).counts, err);
  case RD__OP_JOB_LIST:
    return rd__sq_job_list(st, A(job_list).state, A(job_list).after, A(job_list).limit,
                           A(job_list).cb, A(job_list).ud, err);
  case RD__OP_JOB_ITEMS:
    return rd__sq_job_items(st, A(job_items).id, A(job_items).outcome, A(job_items).after,
                            A(job_items).limit, A(job_items).cb, A(job_items).ud, err);
  case RD__OP_JOB_MARK:
    return rd__sq_job_mark(st, A(job_mark).id, A(job_mark).items, A(job_mark).n, A(job_mark).m,
                           A(job_mark).n_changed, err);
  case RD__OP_JOB_OWN:
    return rd__sq_job_own(st, A(job_own).id, A(job_own).what, A(job_own).owner, A(job_own).ttl,
                          A(job_own).ok, err);
  case RD__OP_LEDGER_TAKE:
    return rd__sq_ledger_take(st, A(ledger_take).t, A(ledger_take).out, err);
  case RD__OP_LEDGER_RENEW:
    return rd__sq_ledger_renew(st, A(ledger_renew).owner, A(ledger_renew).ttl,
                               A(ledger_renew).n, err);
  case RD__OP_LEDGER_SETTLE:
    return rd__sq_ledger_settle(st, A(ledger_settle).s, A(ledger_settle).n, err);
  case RD__OP_LEDGER_EVENTS:
    return rd__sq_ledger_events(st, A(ledger_events).f, A(ledger_events).cb,
                                A(ledger_events).ud, err);
#undef A
  default:
    return rd_err_set(err, RD_EUNSUPPORTED, "store: cannot %s on SQLite '%s'",
                      rd__op_what(op->kind), st->path);
  }
}

/* Did op (done) make items claimable? A new item, or a lease dropped on an
 * item still pending. */
static int made_work(const rd__op *op) {
  switch (op->kind) {
  case RD__OP_RECORD: return op->a.record.dlq != NULL;
  case RD__OP_RETRY_DONE: return !op->a.retry_done.r->success || op->a.retry_done.r->dlq;
  case RD__OP_RELEASE: return !op->a.release.n || *op->a.release.n > 0;
  default: return 0;
  }
}

static int sq_finish(rd__op *op, rd_err *err) {
  int r = run(op, err);
  /* this process's waiting workers; other processes poll (a file cannot
   * notify) */
  if (!r && made_work(op)) rd__work_signal(op->st);
  return r;
}

static void sq_group_end(rd_store_t *st) { rd_store_group_commit(st, NULL); }

static int sq_set_loop(rd_store_t *st, rd_loop_t *loop, rd_err *err) {
  (void)st, (void)loop, (void)err;
  return 0; /* a file needs no loop */
}

const rd__backend rd__sqlite_backend = {
  .name = "sqlite",
  .start = sq_start,
  .finish = sq_finish,
  .group_end = sq_group_end,
  .set_loop = sq_set_loop,
  .close = rd__sq_close,
};

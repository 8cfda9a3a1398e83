/* The store: opening a SQLite file safely, schema migrations, the statement
 * cache, transactions and the helpers the entity files share. */
#include "store/store_int.h"

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

/* Migrations: entry i takes the schema from version i to i + 1. Never edit a
 * released entry; append a new one. Each runs inside the opening transaction. */
static const char *const migrations[] = {
  /* 0 -> 1 */
  "CREATE TABLE scenario ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  name TEXT NOT NULL,"
  "  blueprint TEXT NOT NULL CONSTRAINT blueprint_json CHECK (json_valid(blueprint)),"
  "  dlq INTEGER NOT NULL DEFAULT 0,"
  "  created REAL NOT NULL,"
  "  updated REAL NOT NULL);"
  "CREATE TABLE execution ("
  "  id TEXT NOT NULL PRIMARY KEY,"
  "  scenario_id INTEGER,"
  "  status TEXT NOT NULL CONSTRAINT status"
  "    CHECK (status IN ('success','warning','error','running','canceled')),"
  "  mode TEXT,"
  "  started_at REAL, stopped_at REAL, duration REAL,"
  "  operations INTEGER NOT NULL DEFAULT 0,"
  "  transfer INTEGER NOT NULL DEFAULT 0,"
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  error TEXT CONSTRAINT error_json CHECK (error IS NULL OR json_valid(error)),"
  "  run_data TEXT CONSTRAINT run_data_json CHECK (run_data IS NULL OR json_valid(run_data)),"
  "  retry_of TEXT, retry_success_id TEXT, parent_id TEXT, dlq_id TEXT);"
  "CREATE INDEX execution_scenario ON execution(scenario_id, id);"
  "CREATE INDEX execution_scenario_started ON execution(scenario_id, started_at);"
  "CREATE INDEX execution_started ON execution(started_at);"
  "CREATE TABLE dlq_item ("
  "  id TEXT NOT NULL PRIMARY KEY,"
  "  scenario_id INTEGER,"
  "  scenario_name TEXT,"
  "  reason TEXT,"
  "  created REAL NOT NULL,"
  "  size INTEGER NOT NULL DEFAULT 0,"
  "  resolved INTEGER NOT NULL DEFAULT 0,"
  "  retry INTEGER NOT NULL DEFAULT 0,"
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  execution_id TEXT,"
  "  failer INTEGER,"
  "  blueprint TEXT CONSTRAINT blueprint_json CHECK (blueprint IS NULL OR json_valid(blueprint)),"
  "  state TEXT CONSTRAINT state_json CHECK (state IS NULL OR json_valid(state)),"
  "  lease_owner TEXT,"
  "  lease_expiry REAL,"
  "  CONSTRAINT lease CHECK ((lease_owner IS NULL) = (lease_expiry IS NULL)));"
  "CREATE INDEX dlq_scenario ON dlq_item(scenario_id, id);"
  "CREATE INDEX dlq_pending ON dlq_item(id) WHERE resolved = 0;"
  "CREATE INDEX dlq_pending_scenario ON dlq_item(scenario_id, id) WHERE resolved = 0;"
  "CREATE INDEX dlq_lease ON dlq_item(lease_owner) WHERE lease_owner IS NOT NULL;"
  "CREATE TABLE dlq_log ("
  "  id TEXT NOT NULL PRIMARY KEY,"
  "  dlq_id TEXT NOT NULL REFERENCES dlq_item(id) ON DELETE CASCADE,"
  "  status INTEGER NOT NULL CONSTRAINT log_status CHECK (status IN (1, 2, 3)),"
  "  duration REAL,"
  "  operations INTEGER NOT NULL DEFAULT 0,"
  "  transfer INTEGER NOT NULL DEFAULT 0,"
  "  timestamp REAL NOT NULL,"
  "  execution_id TEXT,"
  "  forced INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX dlq_log_item ON dlq_log(dlq_id, id);",
  /* 1 -> 2: failure fingerprints (src/core/fingerprint.c) on executions with
   * an error and on items, backfilled with the store's SQL functions
   * (sqlfn.c) from what the local source fingerprints: the module (type from
   * the blueprint: the item's snapshot, else the scenario's), its id, the
   * error's code and the message (the item's reason). Indexed for grouping
   * and filtering; most executions succeed, so only rows with one. */
  "ALTER TABLE execution ADD COLUMN fingerprint TEXT;"
  "ALTER TABLE execution ADD COLUMN cause TEXT;"
  "ALTER TABLE dlq_item ADD COLUMN fingerprint TEXT;"
  "ALTER TABLE dlq_item ADD COLUMN cause TEXT;"
  "UPDATE dlq_item SET"
  "  fingerprint = rd_fingerprint(reason, rd_module_type(blueprint, failer), CAST(failer AS TEXT),"
  "    (SELECT json_extract(e.error, '$.code') FROM execution e WHERE e.id = dlq_item.execution_id)),"
  "  cause = rd_cause(reason);"
  "UPDATE execution SET"
  "  fingerprint = rd_fingerprint(json_extract(error, '$.message'),"
  "    rd_module_type(coalesce((SELECT d.blueprint FROM dlq_item d WHERE d.id = execution.dlq_id),"
  "                            (SELECT s.blueprint FROM scenario s WHERE s.id = execution.scenario_id)),"
  "                   json_extract(error, '$.module')),"
  "    CAST(json_extract(error, '$.module') AS TEXT), json_extract(error, '$.code')),"
  "  cause = rd_cause(json_extract(error, '$.message'))"
  "  WHERE error IS NOT NULL;"
  "CREATE INDEX execution_fingerprint ON execution(fingerprint, id) WHERE fingerprint IS NOT NULL;"
  "CREATE INDEX dlq_fingerprint ON dlq_item(fingerprint, id) WHERE fingerprint IS NOT NULL;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int rd_store_schema_version(void) { return SCHEMA_VERSION; }

const char *rd_store_path(const rd_store_t *st) { return st->path; }

double rd__st_now(void) { return (double)rd__now_ms() / 1000.0; }

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
  const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
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
  for (size_t i = 0; i < st->nstmts; i++) {
    if (strcmp(st->stmts[i].sql, sql) == 0) {
      sqlite3_stmt *s = st->stmts[i].stmt;
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
      *out = s;
      return 0;
    }
  }
  if (st->nstmts == st->capstmts) {
    size_t cap = st->capstmts ? st->capstmts * 2 : 32;
    rd__stmt_entry *p = realloc(st->stmts, cap * sizeof *p);
    if (!p) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
    st->stmts = p;
    st->capstmts = cap;
  }
  char *copy = strdup(sql);
  if (!copy) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
  if (rc != SQLITE_OK) {
    free(copy);
    return rd__st_fail(st, rc, "cannot prepare a query on", err);
  }
  st->stmts[st->nstmts++] = (rd__stmt_entry){.sql = copy, .stmt = s};
  *out = s;
  return 0;
}

int rd__st_slot(rd_store_t *st, int slot, int (*build)(rd_buf *q), sqlite3_stmt **out,
                rd_err *err) {
  sqlite3_stmt *s = st->slot[slot];
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
  st->slot[slot] = *out = s;
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
  if (st->batch) return run_sql(st, "SAVEPOINT rd_call", "cannot open a savepoint in", err);
  /* A transaction left open would make everything after it part of it. */
  if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
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
  if (st->batch) {
    if (rc == 0) return run_sql(st, "RELEASE rd_call", "cannot release a savepoint in", err);
    run_sql(st, "ROLLBACK TO rd_call", "cannot roll back", NULL);
    run_sql(st, "RELEASE rd_call", "cannot release a savepoint in", NULL);
    return rc;
  }
  if (rc == 0) {
    rc = run_sql(st, "COMMIT", "cannot commit to", err);
    if (rc == 0) return 0;
  }
  if (!sqlite3_get_autocommit(st->db)) {
    /* The error being returned is what matters; a failed rollback is
     * reported by SQLite rolling back on the next open. */
    if (run_sql(st, "ROLLBACK", "cannot roll back", NULL))
      sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
}

int rd__st_limit(int limit, int *out, rd_err *err) {
  if (limit < 0) return rd_err_set(err, RD_EINVALID, "store: limit must not be negative");
  *out = limit == 0 ? RD_STORE_DEFAULT_LIMIT : limit > RD_STORE_MAX_LIMIT ? RD_STORE_MAX_LIMIT
                                                                           : limit;
  return 0;
}

int rd__st_valid_status(const char *s) {
  static const char *const ok[] = {"success", "warning", "error", "running", "canceled"};
  if (!s) return 0;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strcmp(s, ok[i]) == 0) return 1;
  return 0;
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
 * bring its schema to SCHEMA_VERSION. */
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
  if (version > SCHEMA_VERSION)
    return rd_err_set(err, RD_ECORRUPT,
                      "store: '%s' has schema version %d, newer than this redrive knows (%d)",
                      st->path, version, SCHEMA_VERSION);
  if (version == SCHEMA_VERSION) return 0;
  for (int v = version; v < SCHEMA_VERSION; v++) {
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
      r = rd_err_set(err, RD_EIO, "store: cannot migrate '%s' to version %d: %s", st->path,
                     v + 1, msg ? msg : sqlite3_errstr(rc));
      sqlite3_free(msg);
      return r;
    }
  }
  char sql[96];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
           SCHEMA_VERSION, APPLICATION_ID);
  int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : rd__st_fail(st, rc, "cannot migrate", err);
}

static int set_wal(rd_store_t *st, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "PRAGMA journal_mode = WAL", &s, err);
  if (r) return r;
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) r = rd__st_fail(st, rc, "cannot set WAL mode on", err);
  else if (sqlite3_stricmp(rd__col_text(s, 0), "wal") != 0)
    r = rd_err_set(err, RD_EIO, "store: cannot set WAL mode on '%s' (got %s)", st->path,
                   rd__col_text(s, 0));
  sqlite3_reset(s);
  return r;
}

int rd_store_open(rd_store_t **out, const char *path, rd_err *err) {
  if (!path || !*path) return rd_err_set(err, RD_EINVALID, "store: empty path");
  rd_store_t *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path))) {
    free(st);
    return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  }
  int r = make_parents(path, err);
  if (!r) r = create_file(path, err);
  if (r) goto done;
  int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    r = rd__st_fail(st, rc, "cannot open", err);
    if (r != RD_ECORRUPT) r = rd_err_set(err, RD_EIO, "store: cannot open '%s': %s", path,
                                         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
    goto done;
  }
  sqlite3_extended_result_codes(st->db, 1);
  sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
  int version = 0;
  /* The first read tells a file that is not SQLite (SQLITE_NOTADB). */
  r = pragma_int(st, "PRAGMA user_version", &version, err);
  if (!r) r = set_wal(st, err);
  if (!r) r = run_sql(st, "PRAGMA synchronous = FULL", "cannot configure", err);
  if (!r) r = run_sql(st, "PRAGMA foreign_keys = ON", "cannot configure", err);
  if (!r) r = rd__st_functions(st, err);
  if (r) goto done;
  r = rd__st_begin(st, err);
  if (r) goto done;
  r = rd__st_end(st, migrate(st, err), err);
done:
  if (r) {
    rd_store_close(st);
    return r;
  }
  *out = st;
  return 0;
}

int rd_store_batch_begin(rd_store_t *st, rd_err *err) {
  if (st->batch) return 0;
  int r = tx_begin(st, err);
  if (r == 0) st->batch = 1;
  return r;
}

int rd_store_batch_commit(rd_store_t *st, rd_err *err) {
  if (!st->batch) return 0;
  st->batch = 0;
  return rd__st_end(st, 0, err);
}

int rd_store_in_batch(const rd_store_t *st) { return st->batch; }

void rd_store_close(rd_store_t *st) {
  if (!st) return;
  rd_store_set_loop(st, NULL); /* commits an open group, waking its writers */
  if (st->batch) rd_store_batch_commit(st, NULL);
  for (size_t i = 0; i < st->nstmts; i++) {
    sqlite3_finalize(st->stmts[i].stmt);
    free(st->stmts[i].sql);
  }
  free(st->stmts);
  if (st->db) {
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    /* Keep the planner's statistics fresh (cheap: only where needed). */
    sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
    sqlite3_close(st->db);
  }
  free(st->path);
  free(st);
}

int rd_store_default_path(char *buf, size_t n) {
  const char *env = getenv("REDRIVE_DB");
  int len;
  if (env && *env) {
    len = snprintf(buf, n, "%s", env);
  } else if ((env = getenv("XDG_DATA_HOME")) && env[0] == '/') {
    len = snprintf(buf, n, "%s/redrive/redrive.db", env);
  } else {
    const char *home = getenv("HOME");
    if (!home || !*home) {
      struct passwd *pw = getpwuid(getuid());
      home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !*home) return RD_ENOT_FOUND;
    len = snprintf(buf, n, "%s/.local/share/redrive/redrive.db", home);
  }
  return len < 0 || (size_t)len >= n ? RD_EINVALID : 0;
}

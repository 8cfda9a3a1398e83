/* Store tests: open/migrate, foreign files, records, pagination, leases
 * across connections and processes, delete rules, logs, health, and a
 * kill -9 test of durability and exactly-once resolution. tests/run runs
 * them twice: on SQLite files, then on PostgreSQL (RD_STORE=pg: each store
 * a schema of its own in the test server's database, rd_test_store); the
 * tests of SQLite files themselves skip there. */
#include "test.h"

#include "core/ids.h"
#include "redrive.h"
#include "store/record.h"

#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NONE RD_STORE_NONE

static char *tmp_path(const char *name) {
  static char buf[4][512];
  static int i;
  char *p = buf[i++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", rd_test_tmpdir(), name);
  return p;
}

static rd_store_t *open_store(const char *path) {
  rd_store_t *st = NULL;
  rd_err err = {0};
  int r = rd_store_open(&st, path, &err);
  if (r) RD__FAIL("rd_store_open(%s): %d %s", path, r, err.msg);
  return st;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
}

/* The schema of a PostgreSQL store target (rd_test_store). */
static const char *schema_of(const char *target) {
  const char *p = strstr(target, "search_path%3D");
  ASSERT(p);
  return p + 14;
}

/* Run one SQL statement on the store directly (sqlite3, or psql in the
 * store's schema); returns the first column of the first row as an integer
 * (or 0). Statements run on both must be written in SQL both accept. */
static long long raw_sql(const char *path, const char *sql) {
  if (rd_test_pg()) {
    char q[4096];
    snprintf(q, sizeof q, "SET search_path = %s; %s", schema_of(path), sql);
    return atoll(rd_test_psql(q));
  }
  sqlite3 *db;
  ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) RD__FAIL("%s: %s", sql, sqlite3_errmsg(db));
  long long v = 0;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  else if (rc != SQLITE_DONE) RD__FAIL("%s: %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

/* The same for a statement each dialect spells its own way. */
static long long raw_sql2(const char *path, const char *sqlite_sql, const char *pg_sql) {
  return raw_sql(path, rd_test_pg() ? pg_sql : sqlite_sql);
}

/* What a value that is not JSON is called: SQLite's CHECK constraint,
 * PostgreSQL's json type naming the field. */
static const char *bad_json(const char *col) {
  static char buf[96];
  if (rd_test_pg()) snprintf(buf, sizeof buf, "invalid input syntax for type json (in %s)", col);
  else snprintf(buf, sizeof buf, "%s_json", col);
  return buf;
}

#define SQLITE_ONLY()                                                            \
  do {                                                                           \
    if (rd_test_pg()) RD_SKIP("about SQLite files");                             \
  } while (0)

static rd_exec_t exec_rec(int64_t scenario, const char *status, double duration) {
  return (rd_exec_t){.scenario_id = scenario, .status = status, .mode = "manual",
                     .started_at = 1700000000.5, .stopped_at = NONE, .duration = duration};
}

static rd_dlq_item_t dlq_rec(int64_t scenario, const char *reason) {
  return (rd_dlq_item_t){.scenario_id = scenario, .scenario_name = "s", .reason = reason,
                         .created = NONE, .size = 10, .failer = 2,
                         .blueprint = "{\"flow\":[]}", .state = "{\"bundle\":{\"n\":1}}",
                         .lease_expiry = NONE};
}

/* Record an execution with a DLQ item; returns the item id in out. */
static void add_item(rd_store_t *st, int64_t scenario, char out[33]) {
  rd_exec_t e = exec_rec(scenario, "error", 5);
  e.error = "{\"message\":\"boom\"}";
  rd_dlq_item_t d = dlq_rec(scenario, "DataError: boom");
  char eid[33];
  rd_err err = {0};
  int r = rd_store_record(st, &e, &d, eid, out, &err);
  if (r) RD__FAIL("record: %s", err.msg);
}

/* rd_store_retry_done of a leased item. */
static int item_done(rd_store_t *st, const char *id, const char *owner, const rd_exec_t *e,
                     int success, const rd_dlq_log_t *log, char *eid, rd_err *err) {
  rd_retry_done_t d = {.exec = e, .success = success, .dlq_id = id, .owner = owner, .log = log};
  return rd_store_retry_done(st, &d, eid, NULL, err);
}

/* Collect ids from callbacks. */
typedef struct {
  char ids[400][33];
  int n;
  int with_blueprint;
} idlist;

static int collect_item(const rd_dlq_item_t *d, void *ud) {
  idlist *l = ud;
  if (l->n < 400) strcpy(l->ids[l->n++], d->id);
  if (d->blueprint) l->with_blueprint++;
  return 0;
}

static int collect_exec(const rd_exec_t *e, void *ud) {
  idlist *l = ud;
  if (l->n < 400) strcpy(l->ids[l->n++], e->id);
  ASSERT(e->run_data == NULL);
  return 0;
}

static int collect_error(const char *id, int code, const char *msg, void *ud) {
  idlist *l = ud;
  snprintf(l->ids[l->n++], 33, "%s", id);
  ASSERT((code == RD_ECONFLICT && strcmp(msg, "being retried") == 0) ||
         (code == RD_ENOT_FOUND && strcmp(msg, "not found") == 0));
  return 0;
}

/* ---- ids ---------------------------------------------------------------- */

RD_TEST(store_ids) {
  SQLITE_ONLY(); /* no store at all: once is enough */
  char a[33], b[33];
  ASSERT_OK(rd__id_new(a));
  ASSERT(rd__id_valid(a));
  for (int i = 0; i < 10000; i++) {
    ASSERT_OK(rd__id_new(b));
    if (strcmp(a, b) >= 0) RD__FAIL("ids not increasing: %s then %s", a, b);
    memcpy(a, b, sizeof a);
  }
  /* the first 12 hex digits are the time in ms */
  uint64_t before = rd__now_ms();
  ASSERT_OK(rd__id_new(a));
  uint64_t after = rd__now_ms();
  char head[13];
  memcpy(head, a, 12);
  head[12] = '\0';
  uint64_t ms = strtoull(head, NULL, 16);
  ASSERT(ms >= before && ms <= after);
  /* a clock going back does not break the order */
  ASSERT_OK(rd__id_new_at(b, 1000));
  ASSERT(strcmp(a, b) < 0);
  ASSERT(!rd__id_valid("0123"));
  ASSERT(!rd__id_valid("0123456789ABCDEF0123456789abcdef"));
  ASSERT(rd__id_valid("0123456789abcdef0123456789abcdef"));
}

/* ---- open, migrate, foreign files --------------------------------------- */

RD_TEST(store_open_migrate_reopen) {
  SQLITE_ONLY();
  const char *path = tmp_path("a/b/c/store.db");
  rd_store_t *st = open_store(path);
  ASSERT_STR_EQ(rd_store_path(st), path);
  struct stat sb;
  ASSERT_OK(stat(path, &sb));
  ASSERT_INT_EQ(sb.st_mode & 0777, 0600);
  char dir[512];
  snprintf(dir, sizeof dir, "%s", tmp_path("a/b/c"));
  ASSERT_OK(stat(dir, &sb));
  ASSERT(S_ISDIR(sb.st_mode));
  int64_t id;
  rd_err err = {0};
  ASSERT_OK(rd_store_scenario_create(st, &(rd_scenario_t){.name = "n", .blueprint = "{}"}, &id,
                                     &err));
  /* WAL side files take the mode of the database */
  char wal[600];
  snprintf(wal, sizeof wal, "%s-wal", path);
  ASSERT_OK(stat(wal, &sb));
  ASSERT_INT_EQ(sb.st_mode & 0777, 0600);
  rd_store_close(st);
  ASSERT_INT_EQ(raw_sql(path, "PRAGMA user_version"), rd_store_schema_version());
  ASSERT_INT_EQ(raw_sql(path, "PRAGMA application_id"), 0x52447276);
  st = open_store(path);
  rd_scenario_t *sc = NULL;
  ASSERT_OK(rd_store_scenario_get(st, id, &sc, &err));
  ASSERT_STR_EQ(sc->name, "n");
  free(sc);
  rd_store_close(st);
  rd_store_close(NULL);
  /* An empty SQLite database (no tables) becomes a store. */
  const char *empty = rd_test_store("empty.db");
  raw_sql(empty, "PRAGMA user_version");
  rd_store_close(open_store(empty));
}

/* The schema is migration text and the records are X-macro lists: they
 * must describe the same columns, in the same order, with the same SQL type,
 * NOT NULL and primary key, or one of them drifted. */
/* The same on PostgreSQL, from information_schema: name, type, NOT NULL,
 * primary key, in order. */
static void pg_schema_matches(const char *target, const rd__record *const *recs, size_t nrecs) {
  for (size_t k = 0; k < nrecs; k++) {
    const rd__record *r = recs[k];
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(c.column_name || ':' || c.data_type || ':' || c.is_nullable || ':'"
             " || (EXISTS (SELECT 1 FROM information_schema.key_column_usage k JOIN"
             " information_schema.table_constraints t USING (constraint_schema, constraint_name)"
             " WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema AND"
             " k.table_name = c.table_name AND k.column_name = c.column_name))::text, ','"
             " ORDER BY c.ordinal_position) FROM information_schema.columns c"
             " WHERE c.table_schema = '%s' AND c.table_name = '%s'",
             schema_of(target), r->table);
    char want[2048] = "";
    for (int i = 0; i < r->n; i++) {
      const rd__field *f = &r->fields[i];
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s:%s:%s:%s", i ? "," : "",
               /* a primary key is NOT NULL in PostgreSQL, declared or not */
               f->name, rd__kind_pg(f->kind), f->flags & (RD_F_NOTNULL | RD_F_KEY) ? "NO" : "YES",
               f->flags & RD_F_KEY ? "true" : "false");
    }
    ASSERT_STR_EQ(rd_test_psql(sql), want);
  }
}

RD_TEST(store_schema_matches_records) {
  const char *path = rd_test_store("schema.db");
  rd_store_close(open_store(path));
  const rd__record *recs[] = {&rd__rec_scenario, &rd__rec_exec, &rd__rec_item, &rd__rec_log,
                              &rd__rec_job, &rd__rec_job_item};
  if (rd_test_pg()) {
    pg_schema_matches(path, recs, sizeof recs / sizeof recs[0]);
    return;
  }
  sqlite3 *db;
  ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
  for (size_t k = 0; k < sizeof recs / sizeof recs[0]; k++) {
    const rd__record *r = recs[k];
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT name, type, \"notnull\", pk FROM pragma_table_info('%s')",
             r->table);
    sqlite3_stmt *s;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    int i = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
      const char *name = (const char *)sqlite3_column_text(s, 0);
      if (i >= r->n) RD__FAIL("%s: column %s is in the schema, not in the list", r->table, name);
      const rd__field *f = &r->fields[i];
      if (strcmp(name, f->name) != 0)
        RD__FAIL("%s: column %d is %s in the schema, %s in the list", r->table, i, name, f->name);
      ASSERT_STR_EQ((const char *)sqlite3_column_text(s, 1), rd__kind_sqlite(f->kind));
      if (sqlite3_column_int(s, 2) != !!(f->flags & RD_F_NOTNULL))
        RD__FAIL("%s.%s: NOT NULL differs between the schema and the list", r->table, name);
      if (!!sqlite3_column_int(s, 3) != !!(f->flags & RD_F_KEY))
        RD__FAIL("%s.%s: primary key differs between the schema and the list", r->table, name);
      i++;
    }
    sqlite3_finalize(s);
    if (i != r->n) RD__FAIL("%s: %d columns in the schema, %d in the list", r->table, i, r->n);
  }
  sqlite3_close(db);
}

RD_TEST(store_open_errors) {
  SQLITE_ONLY();
  rd_store_t *st = NULL;
  rd_err err = {0};
  /* not SQLite */
  const char *txt = rd_test_store("notes.db");
  FILE *f = fopen(txt, "w");
  ASSERT(f);
  for (int i = 0; i < 200; i++) fputs("this is not a database, just some text\n", f);
  fclose(f);
  ASSERT_INT_EQ(rd_store_open(&st, txt, &err), RD_ECORRUPT);
  ASSERT(st == NULL);
  ASSERT_CONTAINS(err.msg, txt);
  ASSERT_CONTAINS(err.msg, "not a redrive store");
  /* a database of something else */
  const char *foreign = rd_test_store("foreign.db");
  raw_sql(foreign, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
  memset(&err, 0, sizeof err);
  ASSERT_INT_EQ(rd_store_open(&st, foreign, &err), RD_ECORRUPT);
  ASSERT_CONTAINS(err.msg, foreign);
  ASSERT_CONTAINS(err.msg, "something else");
  ASSERT_INT_EQ(raw_sql(foreign, "SELECT count(*) FROM sqlite_schema"), 1); /* untouched */
  /* another application's versioned database */
  const char *other = rd_test_store("other.db");
  raw_sql(other, "PRAGMA user_version = 3");
  raw_sql(other, "CREATE TABLE t (x)");
  ASSERT_INT_EQ(rd_store_open(&st, other, &err), RD_ECORRUPT);
  ASSERT_CONTAINS(err.msg, "application id");
  /* a newer schema */
  const char *newer = rd_test_store("newer.db");
  rd_store_close(open_store(newer));
  raw_sql(newer, "PRAGMA user_version = 999");
  ASSERT_INT_EQ(rd_store_open(&st, newer, &err), RD_ECORRUPT);
  ASSERT_CONTAINS(err.msg, "schema version 999");
  ASSERT_CONTAINS(err.msg, newer);
  /* a directory, an unreachable place */
  ASSERT_INT_EQ(rd_store_open(&st, rd_test_tmpdir(), &err), RD_EIO);
  ASSERT_INT_EQ(rd_store_open(&st, "/proc/nope/x.db", &err), RD_EIO);
  ASSERT_CONTAINS(err.msg, "/proc/nope");
  ASSERT_INT_EQ(rd_store_open(&st, "", &err), RD_EINVALID);
  /* err may be NULL */
  ASSERT_INT_EQ(rd_store_open(&st, txt, NULL), RD_ECORRUPT);
}

RD_TEST(store_default_path) {
  SQLITE_ONLY();
  char buf[512];
  setenv("REDRIVE_DB", "/x/y.db", 1);
  ASSERT_OK(rd_store_default_path(buf, sizeof buf));
  ASSERT_STR_EQ(buf, "/x/y.db");
  unsetenv("REDRIVE_DB");
  setenv("XDG_DATA_HOME", "/data", 1);
  ASSERT_OK(rd_store_default_path(buf, sizeof buf));
  ASSERT_STR_EQ(buf, "/data/redrive/redrive.db");
  unsetenv("XDG_DATA_HOME");
  setenv("HOME", "/home/u", 1);
  ASSERT_OK(rd_store_default_path(buf, sizeof buf));
  ASSERT_STR_EQ(buf, "/home/u/.local/share/redrive/redrive.db");
  ASSERT_INT_EQ(rd_store_default_path(buf, 8), RD_EINVALID);
}

/* ---- scenarios and executions ------------------------------------------- */

static int count_scn(const rd_scenario_t *sc, void *ud) {
  (void)sc;
  ++*(int *)ud;
  return 0;
}

RD_TEST(store_scenarios) {
  rd_store_t *st = open_store(rd_test_store("s.db"));
  rd_err err = {0};
  int64_t a, b;
  ASSERT_OK(rd_store_scenario_create(
      st, &(rd_scenario_t){.name = "A", .blueprint = "{\"flow\":[]}", .dlq = 1}, &a, &err));
  ASSERT_OK(rd_store_scenario_create(st, &(rd_scenario_t){.name = "B", .blueprint = "[]"}, &b,
                                     &err));
  ASSERT(b > a);
  ASSERT_INT_EQ(rd_store_scenario_create(st, &(rd_scenario_t){.name = "C", .blueprint = "{"},
                                         &b, &err), RD_EINVALID);
  ASSERT_CONTAINS(err.msg, bad_json("blueprint"));
  ASSERT_OK(rd_store_scenario_update(st, a, &(rd_scenario_t){.name = "A2"}, RD_SCENARIO_NAME,
                                     &err));
  rd_scenario_t *sc;
  ASSERT_OK(rd_store_scenario_get(st, a, &sc, &err));
  ASSERT_STR_EQ(sc->name, "A2");
  ASSERT_STR_EQ(sc->blueprint, "{\"flow\":[]}");
  ASSERT_INT_EQ(sc->dlq, 1);
  ASSERT(sc->created > 1.6e9 && sc->updated >= sc->created);
  free(sc);
  ASSERT_INT_EQ(rd_store_scenario_get(st, 999, &sc, &err), RD_ENOT_FOUND);
  ASSERT_CONTAINS(err.msg, "no scenario 999");
  ASSERT_INT_EQ(rd_store_scenario_update(st, 999, &(rd_scenario_t){.dlq = 1}, RD_SCENARIO_DLQ,
                                         &err), RD_ENOT_FOUND);
  int n = 0;
  ASSERT_OK(rd_store_scenario_list(st, count_scn, &n, &err));
  ASSERT_INT_EQ(n, 2);
  rd_store_close(st);
}

RD_TEST(store_record_atomic) {
  const char *path = rd_test_store("r.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  char eid[33], did[33];
  /* without dlq */
  rd_exec_t e = exec_rec(1, "success", 12);
  e.run_data = "{\"1\":{\"output\":{\"a\":1}}}";
  ASSERT_OK(rd_store_record(st, &e, NULL, eid, NULL, &err));
  ASSERT(rd__id_valid(eid));
  rd_exec_t *got;
  ASSERT_OK(rd_store_exec_get(st, eid, &got, &err));
  ASSERT_STR_EQ(got->status, "success");
  ASSERT_STR_EQ(got->run_data, e.run_data);
  ASSERT(isnan(got->stopped_at));
  ASSERT(got->duration == 12 && got->started_at == 1700000000.5);
  ASSERT(got->dlq_id == NULL && got->error == NULL);
  free(got);
  /* with dlq: linked both ways */
  e = exec_rec(1, "error", 3);
  e.error = "{\"message\":\"bad\"}";
  rd_dlq_item_t d = dlq_rec(1, "DataError: bad");
  ASSERT_OK(rd_store_record(st, &e, &d, eid, did, &err));
  ASSERT_OK(rd_store_exec_get(st, eid, &got, &err));
  ASSERT_STR_EQ(got->dlq_id, did);
  free(got);
  rd_dlq_item_t *item;
  ASSERT_OK(rd_store_dlq_get(st, did, &item, &err));
  ASSERT_STR_EQ(item->execution_id, eid);
  ASSERT_STR_EQ(item->reason, "DataError: bad");
  ASSERT_STR_EQ(item->state, "{\"bundle\":{\"n\":1}}");
  ASSERT_STR_EQ(item->blueprint, "{\"flow\":[]}");
  ASSERT(item->lease_owner == NULL && isnan(item->lease_expiry));
  ASSERT_INT_EQ(item->failer, 2);
  ASSERT_INT_EQ(item->resolved, 0);
  free(item);
  /* the item fails (bad JSON state): nothing at all is written */
  long long before = raw_sql(path, "SELECT count(*) FROM execution");
  d.state = "{not json";
  memset(&err, 0, sizeof err);
  ASSERT_INT_EQ(rd_store_record(st, &e, &d, eid, did, &err), RD_EINVALID);
  ASSERT_CONTAINS(err.msg, bad_json("state"));
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM execution"), before);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item"), 1);
  /* invalid status, invalid given id */
  e.status = "done";
  ASSERT_INT_EQ(rd_store_record(st, &e, NULL, eid, NULL, &err), RD_EINVALID);
  ASSERT_CONTAINS(err.msg, "'done'");
  e.status = "success";
  e.id = "xyz";
  ASSERT_INT_EQ(rd_store_record(st, &e, NULL, eid, NULL, &err), RD_EINVALID);
  /* a given id: insert, then record again replaces (running -> finished) */
  e.id = "0000000000000000000000000000abcd";
  e.status = "running";
  ASSERT_OK(rd_store_record(st, &e, NULL, eid, NULL, &err));
  ASSERT_STR_EQ(eid, e.id);
  e.status = "error";
  d.state = "{}";
  ASSERT_OK(rd_store_record(st, &e, &d, eid, did, &err));
  ASSERT_OK(rd_store_exec_get(st, e.id, &got, &err));
  ASSERT_STR_EQ(got->status, "error");
  ASSERT_STR_EQ(got->dlq_id, did);
  free(got);
  rd_store_close(st);
}

RD_TEST(store_exec_list_update_delete) {
  rd_store_t *st = open_store(rd_test_store("e.db"));
  rd_err err = {0};
  char ids[250][33];
  for (int i = 0; i < 250; i++) {
    rd_exec_t e = exec_rec(i % 2 ? 1 : 2, i % 5 == 0 ? "error" : "success", i);
    e.started_at = 1000 + i;
    ASSERT_OK(rd_store_record(st, &e, NULL, ids[i], NULL, &err));
  }
  /* keyset pages of 100: every id once, in creation order */
  static idlist l;
  const char *after = NULL;
  char last[33];
  int total = 0, pages = 0;
  for (;;) {
    l.n = 0;
    rd_exec_filter_t f = {.since = NONE, .until = NONE, .after = after, .limit = 100};
    ASSERT_OK(rd_store_exec_list(st, &f, collect_exec, &l, &err));
    for (int i = 0; i < l.n; i++) ASSERT_STR_EQ(l.ids[i], ids[total + i]);
    total += l.n;
    pages++;
    if (l.n < 100) break;
    strcpy(last, l.ids[l.n - 1]);
    after = last;
  }
  ASSERT_INT_EQ(total, 250);
  ASSERT_INT_EQ(pages, 3);
  /* filters */
  l.n = 0;
  rd_exec_filter_t f = {.scenario_id = 2, .status = "error", .since = 1100, .until = 1200,
                        .limit = 1000};
  ASSERT_OK(rd_store_exec_list(st, &f, collect_exec, &l, &err));
  ASSERT_INT_EQ(l.n, 10); /* i in [100,200), even, multiple of 5 */
  f = (rd_exec_filter_t){.since = NONE, .until = NONE, .limit = -1};
  ASSERT_INT_EQ(rd_store_exec_list(st, &f, collect_exec, &l, &err), RD_EINVALID);
  /* update by mask */
  rd_exec_t u = {.status = "warning", .stopped_at = 2000, .error = "{\"message\":\"w\"}"};
  ASSERT_OK(rd_store_exec_update(st, ids[3], &u,
                                 RD_EXEC_STATUS | RD_EXEC_STOPPED_AT | RD_EXEC_ERROR, &err));
  rd_exec_t *got;
  ASSERT_OK(rd_store_exec_get(st, ids[3], &got, &err));
  ASSERT_STR_EQ(got->status, "warning");
  ASSERT(got->stopped_at == 2000 && got->duration == 3);
  ASSERT_STR_EQ(got->mode, "manual");
  free(got);
  u.status = "nope";
  ASSERT_INT_EQ(rd_store_exec_update(st, ids[3], &u, RD_EXEC_STATUS, &err), RD_EINVALID);
  ASSERT_INT_EQ(rd_store_exec_update(st, "0000", &u, RD_EXEC_MODE, &err), RD_ENOT_FOUND);
  ASSERT_OK(rd_store_exec_delete(st, ids[3], &err));
  ASSERT_INT_EQ(rd_store_exec_delete(st, ids[3], &err), RD_ENOT_FOUND);
  ASSERT_INT_EQ(rd_store_exec_get(st, ids[3], &got, &err), RD_ENOT_FOUND);
  rd_store_close(st);
}

/* ---- DLQ: list, count, claim, retry_done, patch, delete, logs ------------ */

RD_TEST(store_dlq_list_count) {
  rd_store_t *st = open_store(rd_test_store("d.db"));
  rd_err err = {0};
  char ids[120][33];
  for (int i = 0; i < 120; i++) add_item(st, i < 100 ? 1 : 2, ids[i]);
  int64_t n;
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.resolved = -1}, &n, &err));
  ASSERT_INT_EQ(n, 120);
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.scenario_id = 2, .resolved = 0}, &n,
                               &err));
  ASSERT_INT_EQ(n, 20);
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.resolved = 1}, &n, &err));
  ASSERT_INT_EQ(n, 0);
  static idlist l;
  rd_dlq_filter_t f = {.scenario_id = 1, .resolved = 0, .since = NONE, .until = NONE,
                       .after = ids[49], .limit = 30};
  ASSERT_OK(rd_store_dlq_list(st, &f, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 30);
  ASSERT_STR_EQ(l.ids[0], ids[50]);
  ASSERT_STR_EQ(l.ids[29], ids[79]);
  ASSERT_INT_EQ(l.with_blueprint, 0);
  rd_store_close(st);
}

RD_TEST(store_claim_two_connections) {
  const char *path = rd_test_store("c.db");
  rd_store_t *a = open_store(path), *b = open_store(path);
  rd_err err = {0};
  char ids[50][33];
  for (int i = 0; i < 50; i++) add_item(a, 1, ids[i]);
  static idlist la, lb;
  rd_claim_opts_t o = {.sel = {.all = 1}, .limit = 30, .owner = "A", .ttl = 60};
  ASSERT_OK(rd_store_claim(a, &o, collect_item, &la, &err));
  ASSERT_INT_EQ(la.n, 30);
  ASSERT_INT_EQ(la.with_blueprint, 30);
  o = (rd_claim_opts_t){.sel = {.all = 1}, .limit = 100, .owner = "B", .ttl = 1.5};
  ASSERT_OK(rd_store_claim(b, &o, collect_item, &lb, &err));
  ASSERT_INT_EQ(lb.n, 20);
  for (int i = 0; i < la.n; i++)
    for (int j = 0; j < lb.n; j++) ASSERT(strcmp(la.ids[i], lb.ids[j]) != 0);
  /* nothing left for anybody else */
  static idlist lc;
  o.owner = "C";
  ASSERT_OK(rd_store_claim(a, &o, collect_item, &lc, &err));
  ASSERT_INT_EQ(lc.n, 0);
  /* by ids: leased ones are skipped, except is honoured */
  const char *want[] = {ids[0], ids[49], ids[48]};
  const char *except[] = {ids[48]};
  o = (rd_claim_opts_t){.sel = {.ids = want, .n_ids = 3, .except = except, .n_except = 1},
                        .owner = "C", .ttl = 10};
  lc.n = 0;
  ASSERT_OK(rd_store_claim(a, &o, collect_item, &lc, &err));
  ASSERT_INT_EQ(lc.n, 0);
  /* B's leases expire (ttl 1.5 s): they are free again. Waited for by
   * claiming until the claim succeeds, 120 s at most (a hang bound). */
  lc.n = 0;
  for (int tries = 0; lc.n == 0 && tries < 6000; tries++) {
    if (tries) sleep_ms(20);
    ASSERT_OK(rd_store_claim(a, &o, collect_item, &lc, &err));
  }
  ASSERT_INT_EQ(lc.n, 1);
  ASSERT_STR_EQ(lc.ids[0], ids[49]);
  /* renew and release */
  int64_t n;
  ASSERT_OK(rd_store_renew(a, "A", 120, &n, &err));
  ASSERT_INT_EQ(n, 30);
  ASSERT_OK(rd_store_release(b, "A", ids[0], &n, &err));
  ASSERT_INT_EQ(n, 1);
  ASSERT_OK(rd_store_release(b, "A", NULL, &n, &err));
  ASSERT_INT_EQ(n, 29);
  /* bad options */
  o = (rd_claim_opts_t){.sel = {.all = 1}, .owner = "", .ttl = 1};
  ASSERT_INT_EQ(rd_store_claim(a, &o, collect_item, &lc, &err), RD_EINVALID);
  o = (rd_claim_opts_t){.owner = "x", .ttl = 1};
  ASSERT_INT_EQ(rd_store_claim(a, &o, collect_item, &lc, &err), RD_EINVALID);
  rd_store_close(a);
  rd_store_close(b);
}

static int count_logs(const rd_dlq_log_t *l, void *ud) {
  idlist *x = ud;
  strcpy(x->ids[x->n++], l->id);
  return 0;
}

RD_TEST(store_retry_done) {
  const char *path = rd_test_store("rd.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  char id[33], id2[33], eid[33];
  add_item(st, 1, id);
  add_item(st, 1, id2);
  rd_dlq_item_t *item;
  ASSERT_OK(rd_store_dlq_get(st, id, &item, &err));
  char orig[33];
  strcpy(orig, item->execution_id);
  free(item);
  rd_exec_t e = exec_rec(1, "error", 4);
  rd_dlq_log_t log = {.status = 3, .duration = 4, .operations = 2, .timestamp = NONE};
  /* not claimed: conflict, nothing written */
  ASSERT_INT_EQ(item_done(st, id, "me", &e, 0, &log, eid, &err), RD_ECONFLICT);
  ASSERT_CONTAINS(err.msg, "not held by 'me'");
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log"), 0);
  static idlist l;
  const char *one[] = {id};
  rd_claim_opts_t o = {.sel = {.ids = one, .n_ids = 1}, .owner = "me", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 1);
  /* failure: attempts + 1, lease released, log written, execution recorded */
  ASSERT_OK(item_done(st, id, "me", &e, 0, &log, eid, &err));
  rd_exec_t *re;
  ASSERT_OK(rd_store_exec_get(st, eid, &re, &err));
  ASSERT_STR_EQ(re->retry_of, orig);
  ASSERT_STR_EQ(re->dlq_id, id);
  free(re);
  ASSERT_OK(rd_store_dlq_get(st, id, &item, &err));
  ASSERT_INT_EQ(item->attempts, 1);
  ASSERT_INT_EQ(item->resolved, 0);
  ASSERT(item->lease_owner == NULL);
  free(item);
  ASSERT_INT_EQ(item_done(st, id, "me", &e, 0, &log, eid, &err), RD_ECONFLICT);
  /* another owner took it over: the first one's result is refused */
  l.n = 0;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  o.owner = "other";
  ASSERT_OK(rd_store_release(st, "me", id, NULL, &err));
  l.n = 0;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 1);
  ASSERT_INT_EQ(item_done(st, id, "me", &e, 1, &log, eid, &err), RD_ECONFLICT);
  ASSERT_CONTAINS(err.msg, "but by other");
  /* success: resolved, original execution points at the retry */
  e.status = "success";
  log.status = 1;
  ASSERT_OK(item_done(st, id, "other", &e, 1, &log, eid, &err));
  ASSERT_OK(rd_store_dlq_get(st, id, &item, &err));
  ASSERT_INT_EQ(item->resolved, 1);
  ASSERT_INT_EQ(item->attempts, 2);
  ASSERT(item->lease_owner == NULL);
  free(item);
  ASSERT_OK(rd_store_exec_get(st, orig, &re, &err));
  ASSERT_STR_EQ(re->retry_success_id, eid);
  free(re);
  /* resolved: cannot be claimed or completed again */
  l.n = 0;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 0);
  ASSERT_INT_EQ(item_done(st, id, "other", &e, 1, &log, eid, &err), RD_ECONFLICT);
  ASSERT_CONTAINS(err.msg, "not held by 'other'");
  ASSERT_INT_EQ(item_done(st, "ffff", "other", &e, 1, &log, eid, &err),
                RD_ENOT_FOUND);
  /* a bad execution rolls the whole thing back */
  const char *two[] = {id2};
  o.sel = (rd_dlq_sel_t){.ids = two, .n_ids = 1};
  l.n = 0;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  e.run_data = "{broken";
  long long logs = raw_sql(path, "SELECT count(*) FROM dlq_log");
  ASSERT_INT_EQ(item_done(st, id2, "other", &e, 1, &log, eid, &err), RD_EINVALID);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log"), logs);
  ASSERT_OK(rd_store_dlq_get(st, id2, &item, &err));
  ASSERT_STR_EQ(item->lease_owner, "other");
  ASSERT_INT_EQ(item->attempts, 0);
  free(item);
  /* logs, with filters */
  static idlist ll;
  ASSERT_OK(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.from = NONE, .to = NONE}, count_logs,
                              &ll, &err));
  ASSERT_INT_EQ(ll.n, 2);
  ll.n = 0;
  ASSERT_OK(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.status = 1, .from = NONE, .to = NONE},
                              count_logs, &ll, &err));
  ASSERT_INT_EQ(ll.n, 1);
  rd_store_close(st);
}

/* Defect 3: the link from the executions retried to their successful retry
 * is part of the retry's one transaction. A trigger refuses the link: the
 * whole retry is rolled back -- no execution, no log, the item pending, its
 * attempts unchanged and the lease still held -- instead of a resolved item
 * whose execution does not point at its retry. */
RD_TEST(store_retry_done_one_transaction) {
  const char *path = rd_test_store("rd.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  char id[33], eid[33];
  add_item(st, 1, id);
  static idlist l;
  const char *one[] = {id};
  rd_claim_opts_t o = {.sel = {.ids = one, .n_ids = 1}, .owner = "me", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  raw_sql2(path,
           "CREATE TRIGGER no_link BEFORE UPDATE OF retry_success_id ON execution"
           " BEGIN SELECT RAISE(ABORT, 'link refused'); END",
           "CREATE FUNCTION no_link() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
           " RAISE EXCEPTION 'link refused' USING ERRCODE = '23514'; END$$;"
           " CREATE TRIGGER no_link BEFORE UPDATE OF retry_success_id ON execution"
           " FOR EACH ROW EXECUTE FUNCTION no_link()");
  long long execs = raw_sql(path, "SELECT count(*) FROM execution");
  rd_exec_t e = exec_rec(1, "success", 4);
  rd_dlq_log_t log = {.status = 1, .duration = 4, .timestamp = NONE};
  ASSERT(item_done(st, id, "me", &e, 1, &log, eid, &err) != 0);
  ASSERT_CONTAINS(err.msg, "link refused");
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM execution"), execs);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log"), 0);
  rd_dlq_item_t *item;
  ASSERT_OK(rd_store_dlq_get(st, id, &item, &err));
  ASSERT_INT_EQ(item->resolved, 0);
  ASSERT_INT_EQ(item->attempts, 0);
  ASSERT_STR_EQ(item->lease_owner, "me");
  free(item);
  /* without an item: the new execution is not recorded either */
  rd_retry_done_t d = {.exec = &e, .success = 1};
  char orig[33];
  rd_exec_t first = exec_rec(1, "error", 3);
  ASSERT_OK(rd_store_record(st, &first, NULL, orig, NULL, &err));
  e.retry_of = orig;
  ASSERT(rd_store_retry_done(st, &d, eid, NULL, &err) != 0);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM execution"), execs + 1);
  /* a failed retry writes no link: it goes through */
  e.status = "error";
  d.success = 0;
  log.status = 3;
  ASSERT_OK(item_done(st, id, "me", &e, 0, &log, eid, &err));
  ASSERT_OK(rd_store_retry_done(st, &d, eid, NULL, &err));
  raw_sql2(path, "DROP TRIGGER no_link", "DROP TRIGGER no_link ON execution");
  rd_store_close(st);
}

/* A successful retry is linked from the execution retried, from the root
 * given, and from the root of the execution retried; a failed retry of an
 * execution without an item keeps a new item, linked both ways. */
RD_TEST(store_retry_done_links_chain) {
  const char *path = rd_test_store("rd.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  char root[33], r1[33], did[33], r2[33], r3[33];
  rd_exec_t e = exec_rec(1, "error", 3);
  ASSERT_OK(rd_store_record(st, &e, NULL, root, NULL, &err));
  /* r1 retries root and fails: kept as a new item */
  e.retry_of = root;
  e.parent_id = root;
  rd_dlq_item_t keep = dlq_rec(1, "again");
  rd_retry_done_t d = {.exec = &e, .success = 0, .dlq = &keep};
  ASSERT_OK(rd_store_retry_done(st, &d, r1, did, &err));
  rd_dlq_item_t *item;
  ASSERT_OK(rd_store_dlq_get(st, did, &item, &err));
  ASSERT_STR_EQ(item->execution_id, r1);
  free(item);
  rd_exec_t *got;
  ASSERT_OK(rd_store_exec_get(st, r1, &got, &err));
  ASSERT_STR_EQ(got->dlq_id, did);
  ASSERT(got->retry_success_id == NULL);
  free(got);
  ASSERT_OK(rd_store_exec_get(st, root, &got, &err));
  ASSERT(got->retry_success_id == NULL);
  free(got);
  /* the item is retried (its execution r1 is the one retried, as the local
   * source passes it: parent_id = the item's execution) and succeeds */
  static idlist l;
  const char *one[] = {did};
  rd_claim_opts_t o = {.sel = {.ids = one, .n_ids = 1}, .owner = "me", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  rd_exec_t ok = exec_rec(1, "success", 2);
  ok.parent_id = r1;
  rd_dlq_log_t log = {.status = 1, .timestamp = NONE};
  ASSERT_OK(item_done(st, did, "me", &ok, 1, &log, r2, &err));
  ASSERT_OK(rd_store_exec_get(st, r2, &got, &err));
  ASSERT_STR_EQ(got->retry_of, r1); /* defaulted to the item's execution */
  ASSERT_STR_EQ(got->dlq_id, did);
  free(got);
  const char *linked[] = {r1, root};
  for (int i = 0; i < 2; i++) {
    ASSERT_OK(rd_store_exec_get(st, linked[i], &got, &err));
    ASSERT_STR_EQ(got->retry_success_id, r2);
    free(got);
  }
  /* a forced retry of the resolved item: claimed only with `resolved` */
  l.n = 0;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 0);
  o.resolved = 1;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 1);
  int64_t n = 0;
  ASSERT_OK(rd_store_renew(st, "me", 60, &n, &err));
  ASSERT_INT_EQ(n, 1); /* its lease is renewed like any other */
  log.forced = 1;
  ASSERT_OK(item_done(st, did, "me", &ok, 1, &log, r3, &err));
  ASSERT_OK(rd_store_dlq_get(st, did, &item, &err));
  ASSERT_INT_EQ(item->resolved, 1);
  ASSERT_INT_EQ(item->attempts, 2);
  ASSERT(item->lease_owner == NULL);
  free(item);
  ASSERT_OK(rd_store_exec_get(st, root, &got, &err));
  ASSERT_STR_EQ(got->retry_success_id, r3);
  free(got);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log WHERE forced"), 1);
  /* misuse */
  d = (rd_retry_done_t){.exec = &ok, .dlq_id = did};
  ASSERT_INT_EQ(rd_store_retry_done(st, &d, r3, NULL, &err), RD_EINVALID);
  d = (rd_retry_done_t){.exec = &ok, .dlq_id = did, .owner = "me", .log = &log, .dlq = &keep};
  ASSERT_INT_EQ(rd_store_retry_done(st, &d, r3, NULL, &err), RD_EINVALID);
  rd_store_close(st);
}

RD_TEST(store_dlq_logs_filters) {
  rd_store_t *st = open_store(rd_test_store("l.db"));
  rd_err err = {0};
  char id[33], eid[33];
  add_item(st, 1, id);
  rd_claim_opts_t o = {.sel = {.all = 1}, .owner = "w", .ttl = 60};
  static idlist l;
  for (int i = 0; i < 6; i++) {
    l.n = 0;
    ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
    ASSERT_INT_EQ(l.n, 1);
    rd_exec_t e = exec_rec(1, i == 5 ? "success" : i % 2 ? "warning" : "error", i);
    rd_dlq_log_t log = {.status = i == 5 ? 1 : i % 2 ? 2 : 3, .duration = 10 * i,
                        .timestamp = 1000 + 100 * i, .forced = i == 5};
    ASSERT_OK(item_done(st, id, "w", &e, i == 5, &log, eid, &err));
  }
  static idlist ll;
  ASSERT_OK(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.status = 3, .from = NONE, .to = NONE},
                              count_logs, &ll, &err));
  ASSERT_INT_EQ(ll.n, 3);
  ll.n = 0;
  ASSERT_OK(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.from = 1100, .to = 1400}, count_logs,
                              &ll, &err));
  ASSERT_INT_EQ(ll.n, 3); /* 1100, 1200, 1300 */
  ll.n = 0;
  ASSERT_OK(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.from = NONE, .to = NONE, .limit = 4},
                              count_logs, &ll, &err));
  ASSERT_INT_EQ(ll.n, 4);
  char after[33];
  strcpy(after, ll.ids[3]);
  ll.n = 0;
  ASSERT_OK(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.from = NONE, .to = NONE,
                                                         .after = after}, count_logs, &ll, &err));
  ASSERT_INT_EQ(ll.n, 2);
  ASSERT_INT_EQ(rd_store_dlq_logs(st, "abc", &(rd_log_filter_t){.from = NONE, .to = NONE},
                                  count_logs, &ll, &err), RD_ENOT_FOUND);
  ASSERT_INT_EQ(rd_store_dlq_logs(st, id, &(rd_log_filter_t){.status = 7}, count_logs, &ll,
                                  &err), RD_EINVALID);
  rd_store_close(st);
}

RD_TEST(store_patch_conflict) {
  rd_store_t *st = open_store(rd_test_store("p.db"));
  rd_err err = {0};
  char id[33];
  add_item(st, 1, id);
  ASSERT_OK(rd_store_dlq_patch(st, id, "{\"flow\":[1]}", 0, &err));
  ASSERT_OK(rd_store_dlq_patch(st, id, NULL, 7, &err));
  rd_dlq_item_t *item;
  ASSERT_OK(rd_store_dlq_get(st, id, &item, &err));
  ASSERT_STR_EQ(item->blueprint, "{\"flow\":[1]}");
  ASSERT_INT_EQ(item->failer, 7);
  free(item);
  ASSERT_INT_EQ(rd_store_dlq_patch(st, id, "{oops", 0, &err), RD_EINVALID);
  static idlist l;
  rd_claim_opts_t o = {.sel = {.all = 1}, .owner = "w", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(rd_store_dlq_patch(st, id, "{}", 0, &err), RD_ECONFLICT);
  ASSERT_CONTAINS(err.msg, "being retried");
  ASSERT_OK(rd_store_dlq_get(st, id, &item, &err));
  ASSERT_STR_EQ(item->blueprint, "{\"flow\":[1]}");
  free(item);
  ASSERT_INT_EQ(rd_store_dlq_patch(st, "nope", "{}", 0, &err), RD_ENOT_FOUND);
  rd_store_close(st);
}

RD_TEST(store_delete_rules) {
  const char *path = rd_test_store("del.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  char ids[10][33], other[3][33], eid[33];
  for (int i = 0; i < 10; i++) add_item(st, 1, ids[i]);
  for (int i = 0; i < 3; i++) add_item(st, 2, other[i]);
  /* a log on ids[0], to see it go with its item */
  static idlist l;
  const char *first[] = {ids[0]};
  rd_claim_opts_t o = {.sel = {.ids = first, .n_ids = 1}, .owner = "w", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  rd_exec_t e = exec_rec(1, "error", 1);
  ASSERT_OK(item_done(st, ids[0], "w", &e, 0,
                                &(rd_dlq_log_t){.status = 3, .timestamp = NONE}, eid, &err));
  /* lease ids[1] */
  const char *second[] = {ids[1]};
  o.sel.ids = second;
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  /* by ids: one leased, one unknown, two deleted */
  static idlist errs;
  const char *del[] = {ids[0], ids[1], "00000000000000000000000000000000", ids[2]};
  int64_t n = -1;
  ASSERT_OK(rd_store_dlq_delete(st, &(rd_dlq_sel_t){.ids = del, .n_ids = 4}, &n, collect_error,
                                &errs, &err));
  ASSERT_INT_EQ(n, 2);
  ASSERT_INT_EQ(errs.n, 2);
  ASSERT_STR_EQ(errs.ids[0], ids[1]);
  ASSERT_STR_EQ(errs.ids[1], "00000000000000000000000000000000");
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log"), 0); /* cascaded */
  /* all of scenario 1 except ids[5]: ids[1] (leased) reported and kept */
  errs.n = 0;
  const char *except[] = {ids[5]};
  ASSERT_OK(rd_store_dlq_delete(st, &(rd_dlq_sel_t){.all = 1, .scenario_id = 1,
                                                     .except = except, .n_except = 1},
                                &n, collect_error, &errs, &err));
  ASSERT_INT_EQ(n, 6); /* ids 3,4,6,7,8,9 */
  ASSERT_INT_EQ(errs.n, 1);
  ASSERT_STR_EQ(errs.ids[0], ids[1]);
  int64_t left;
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.resolved = -1}, &left, &err));
  ASSERT_INT_EQ(left, 5); /* ids[1], ids[5], other[0..2] */
  /* neither ids nor all */
  ASSERT_INT_EQ(rd_store_dlq_delete(st, &(rd_dlq_sel_t){0}, &n, NULL, NULL, &err), RD_EINVALID);
  /* after release, all (no scenario) takes everything */
  ASSERT_OK(rd_store_release(st, "w", NULL, NULL, &err));
  ASSERT_OK(rd_store_dlq_delete(st, &(rd_dlq_sel_t){.all = 1}, &n, NULL, NULL, &err));
  ASSERT_INT_EQ(n, 5);
  rd_store_close(st);
}

/* ---- health --------------------------------------------------------------- */

RD_TEST(store_health) {
  rd_store_t *st = open_store(rd_test_store("h.db"));
  rd_err err = {0};
  char eid[33], did[33];
  for (int i = 1; i <= 70; i++) {
    rd_exec_t e = exec_rec(1, i % 10 == 0 ? "warning" : "success", i);
    e.started_at = 5000 + i;
    ASSERT_OK(rd_store_record(st, &e, NULL, eid, NULL, &err));
  }
  /* two causes, their messages different each time: grouped by the
   * fingerprint the writer gives (rd_fingerprint), shown by its cause */
  for (int i = 1; i <= 30; i++) {
    rd_exec_t e = exec_rec(1, "error", 100 + i);
    e.started_at = 6000 + i;
    char msg[64], json[96], fp[RD_FINGERPRINT_LEN + 1], cause[RD_CAUSE_MAX];
    snprintf(msg, sizeof msg, i <= 20 ? "DataError: missing field in row %d" : "Timeout after %d ms",
             i * 7);
    snprintf(json, sizeof json, "{\"message\":\"%s\",\"module\":3}", msg);
    rd_failure_t f = {.module_id = "3", .message = msg};
    rd_fingerprint(&f, fp, cause, sizeof cause);
    e.error = json;
    e.fingerprint = fp;
    e.cause = cause;
    if (i <= 20) {
      rd_dlq_item_t d = dlq_rec(1, msg);
      d.fingerprint = fp;
      d.cause = cause;
      ASSERT_OK(rd_store_record(st, &e, &d, eid, did, &err));
    } else {
      ASSERT_OK(rd_store_record(st, &e, NULL, eid, NULL, &err));
    }
  }
  for (int i = 0; i < 2; i++) {
    rd_exec_t e = exec_rec(1, "running", NONE);
    e.started_at = 7000;
    ASSERT_OK(rd_store_record(st, &e, NULL, eid, NULL, &err));
  }
  /* another scenario must not count */
  rd_exec_t x = exec_rec(2, "error", 99999);
  x.error = "{\"message\":\"elsewhere\"}";
  ASSERT_OK(rd_store_record(st, &x, NULL, eid, NULL, &err));

  rd_health_t h;
  ASSERT_OK(rd_store_health(st, 1, NONE, 0, &h, &err));
  ASSERT_INT_EQ(h.total, 102);
  ASSERT_INT_EQ(h.finished, 100);
  ASSERT_INT_EQ(h.succeeded, 70);
  ASSERT_INT_EQ(h.failed, 30);
  ASSERT_INT_EQ(h.running, 2);
  ASSERT(fabs(h.success_rate - 0.7) < 1e-12);
  /* (1 + ... + 70) + (101 + ... + 130) = 2485 + 3465 over 100 */
  ASSERT(fabs(h.avg_duration - 59.5) < 1e-9);
  /* nearest rank: the 95th of 1..70, 101..130 is 125 */
  ASSERT(h.p95_duration == 125);
  ASSERT_INT_EQ(h.n_top, 2);
  ASSERT_STR_EQ(h.top[0].reason, "DataError: missing field in row <n>");
  ASSERT_INT_EQ(h.top[0].count, 20);
  ASSERT_INT_EQ(strlen(h.top[0].fingerprint), RD_FINGERPRINT_LEN);
  ASSERT_STR_EQ(h.top[1].reason, "Timeout after <n> ms");
  ASSERT_INT_EQ(h.top[1].count, 10);
  ASSERT(strcmp(h.top[0].fingerprint, h.top[1].fingerprint) != 0);
  rd_store_health_free(&h);
  /* since: only the failures and the running ones */
  ASSERT_OK(rd_store_health(st, 1, 6000, 1, &h, &err));
  ASSERT_INT_EQ(h.total, 32);
  ASSERT_INT_EQ(h.succeeded, 0);
  ASSERT(h.success_rate == 0);
  ASSERT(h.p95_duration == 129); /* ceil(28.5) = 29th of 101..130 */
  ASSERT_INT_EQ(h.n_top, 1);
  rd_store_health_free(&h);
  /* all scenarios: the failure recorded without a fingerprint is "unknown" */
  ASSERT_OK(rd_store_health(st, 0, NONE, 5, &h, &err));
  ASSERT_INT_EQ(h.total, 103);
  ASSERT_INT_EQ(h.n_top, 3);
  ASSERT_STR_EQ(h.top[2].reason, "unknown");
  ASSERT_STR_EQ(h.top[2].fingerprint, "");
  rd_store_health_free(&h);
  /* nothing there */
  ASSERT_OK(rd_store_health(st, 42, NONE, 5, &h, &err));
  ASSERT_INT_EQ(h.total, 0);
  ASSERT(isnan(h.success_rate) && isnan(h.avg_duration) && isnan(h.p95_duration));
  ASSERT_INT_EQ(h.n_top, 0);
  rd_store_close(st);
}

/* ---- processes ------------------------------------------------------------ */

/* Child: claim in small batches and complete each retry (every 4th attempt
 * fails), writing each claimed id to fd and each recorded retry execution
 * id to done_fd (after the call returned), until nothing is left. work_ms
 * stands for the time the retries take. */
static void worker(const char *path, const char *owner, double ttl, int fd, int done_fd,
                   int work_ms) {
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  static idlist l;
  unsigned seed = (unsigned)getpid();
  for (;;) {
    l.n = 0;
    rd_claim_opts_t o = {.sel = {.all = 1}, .limit = 1 + (int)(rand_r(&seed) % 4),
                         .owner = owner, .ttl = ttl};
    if (rd_store_claim(st, &o, collect_item, &l, &err)) RD__FAIL("claim: %s", err.msg);
    if (l.n == 0) break;
    if (work_ms) sleep_ms(work_ms); /* the retries' HTTP calls, leases held */
    for (int i = 0; i < l.n; i++) {
      if (fd >= 0 && write(fd, l.ids[i], 33) != 33) RD__FAIL("write");
      int ok = rand_r(&seed) % 4 != 0;
      rd_exec_t e = exec_rec(1, ok ? "success" : "error", 1);
      rd_dlq_log_t log = {.status = ok ? 1 : 3, .duration = 1, .timestamp = NONE};
      char eid[33];
      int r = item_done(st, l.ids[i], owner, &e, ok, &log, eid, &err);
      if (r) RD__FAIL("retry_done: %s", err.msg);
      if (done_fd >= 0 && write(done_fd, eid, 33) != 33) RD__FAIL("write");
    }
  }
  rd_store_close(st);
}

RD_TEST(store_claim_two_processes) {
  const char *path = rd_test_store("pp.db");
  rd_store_t *st = open_store(path);
  char id[33];
  for (int i = 0; i < 150; i++) add_item(st, 1, id);
  rd_store_close(st);
  int fds[2][2];
  pid_t pids[2];
  for (int k = 0; k < 2; k++) {
    ASSERT_OK(pipe(fds[k]));
    pids[k] = fork();
    if (pids[k] == 0) {
      close(fds[k][0]);
      worker(path, k ? "P1" : "P0", 60, fds[k][1], -1, 2);
      _exit(0);
    }
    close(fds[k][1]);
  }
  /* Every claim of an item must come from one process only. (A failed
   * retry releases the lease, so the same process or the other may claim the
   * item again later: count claims per item and check each one's owner set
   * against the logs instead.) */
  static char seen[2][2000][33];
  int nseen[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    while (nseen[k] < 2000 && read(fds[k][0], seen[k][nseen[k]], 33) == 33) nseen[k]++;
    close(fds[k][0]);
  }
  for (int k = 0; k < 2; k++) {
    int status;
    ASSERT(waitpid(pids[k], &status, 0) == pids[k]);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  /* claims == logs (each claim completed exactly once), one success each */
  ASSERT_INT_EQ(nseen[0] + nseen[1], raw_sql(path, "SELECT count(*) FROM dlq_log"));
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item WHERE resolved"), 150);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM (SELECT dlq_id FROM dlq_log WHERE status = 1"
                              " GROUP BY dlq_id HAVING count(*) <> 1) AS x"), 0);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log WHERE status = 1"), 150);
  ASSERT(nseen[0] > 0 && nseen[1] > 0);
}

/* Check the invariants after a crash: every item is resolved exactly once
 * (one success log, its execution recorded, the original execution pointing
 * at it) or pending (no success log); attempts == logs; no torn rows. */
static void check_consistent(const char *path) {
  if (!rd_test_pg()) {
    ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM pragma_integrity_check"
                                " WHERE integrity_check <> 'ok'"), 0);
    ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
  }
  /* resolved <=> exactly one success log */
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item d WHERE"
                              " (CASE WHEN resolved THEN 1 ELSE 0 END) <>"
                              " (SELECT count(*) FROM dlq_log l WHERE l.dlq_id = d.id"
                              "  AND l.status = 1)"), 0);
  /* attempts == number of logs */
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item d WHERE attempts <>"
                              " (SELECT count(*) FROM dlq_log l WHERE l.dlq_id = d.id)"), 0);
  /* every log has its execution, and every retry execution its log */
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_log l WHERE NOT EXISTS"
                              " (SELECT 1 FROM execution e WHERE e.id = l.execution_id)"), 0);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM execution e WHERE retry_of IS NOT NULL"
                              " AND NOT EXISTS (SELECT 1 FROM dlq_log l"
                              " WHERE l.execution_id = e.id)"), 0);
  /* resolved items: original execution points at the successful retry */
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item d JOIN execution o"
                              " ON o.id = d.execution_id WHERE d.resolved AND"
                              " o.retry_success_id IS DISTINCT FROM"
                              " (SELECT execution_id FROM dlq_log l"
                              " WHERE l.dlq_id = d.id AND l.status = 1)"), 0);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item WHERE resolved"
                              " AND lease_owner IS NOT NULL"), 0);
}

RD_TEST(store_kill9) {
  const char *path = rd_test_store("k.db");
  rd_store_t *st = open_store(path);
  char id[33];
  enum { N = 300 };
  for (int i = 0; i < N; i++) add_item(st, 1, id);
  rd_store_close(st);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  int killed = 0;
  static char done[N * 4][33];
  for (int round = 0; round < 5; round++) {
    int fds[2];
    ASSERT_OK(pipe(fds));
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      char owner[32];
      snprintf(owner, sizeof owner, "crash-%d", round);
      worker(path, owner, 0.3, -1, fds[1], 0);
      _exit(0);
    }
    close(fds[1]);
    /* Let it complete a random number of retries, then kill it in the
     * middle of whatever it is doing (claiming, writing, committing). */
    int want = 1 + rand() % 40, n = 0;
    while (n < want && read(fds[0], done[n], 33) == 33) n++;
    if (rand() % 2) sleep_ms(rand() % 3);
    kill(pid, SIGKILL);
    int status;
    ASSERT(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) killed++;
    while (n < N * 4 && read(fds[0], done[n], 33) == 33) n++;
    close(fds[0]);
    /* every retry whose call returned is there */
    rd_store_t *chk = open_store(path);
    for (int i = 0; i < n; i++) {
      rd_exec_t *e;
      rd_err err = {0};
      if (rd_store_exec_get(chk, done[i], &e, &err)) RD__FAIL("lost %s: %s", done[i], err.msg);
      free(e);
    }
    rd_store_close(chk);
    check_consistent(path);
    /* a killed worker's leases expire; the next round takes over */
    sleep_ms(350);
  }
  /* finish the rest in-process */
  worker(path, "finisher", 60, -1, -1, 0);
  check_consistent(path);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM dlq_item WHERE resolved"), N);
  ASSERT(killed >= 4);
}

/* 100 000 items: pages, claims, counts and health stay bounded; delete all
 * removes them in one transaction. */
RD_TEST(store_large) {
  const char *path = rd_test_store("big.db");
  /* fewer under valgrind (tests/run sets VALGRIND), where SQLite is slow */
  const int N = getenv("VALGRIND") ? 20000 : 100000;
  char sql[600];
  rd_store_close(open_store(path));
  if (rd_test_pg()) {
    snprintf(sql, sizeof sql,
             "INSERT INTO dlq_item (id, scenario_id, created, blueprint, state)"
             " SELECT lpad(to_hex(i), 32, '0'), 1 + i %% 2, 1000 + i, '{\"flow\":[]}', '{}'"
             " FROM generate_series(1, %d) i;"
             " INSERT INTO execution (id, scenario_id, status, started_at, duration)"
             " SELECT lpad(to_hex(i), 32, '0'), 1 + i %% 2, CASE WHEN i %% 4 = 0 THEN 'error'"
             " ELSE 'success' END, 1000 + i, i %% 1000 FROM generate_series(1, %d) i",
             N, N);
    raw_sql(path, sql);
  } else {
    snprintf(sql, sizeof sql,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
            " INSERT INTO dlq_item (id, scenario_id, created, blueprint, state)"
            " SELECT printf('%%032x', i), 1 + i %% 2, 1000 + i, '{\"flow\":[]}', '{}' FROM n", N);
    raw_sql(path, sql);
    snprintf(sql, sizeof sql,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
            " INSERT INTO execution (id, scenario_id, status, started_at, duration)"
            " SELECT printf('%%032x', i), 1 + i %% 2, CASE WHEN i %% 4 = 0 THEN 'error'"
            " ELSE 'success' END, 1000 + i, i %% 1000 FROM n", N);
    raw_sql(path, sql);
  }
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  int64_t n;
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.resolved = 0}, &n, &err));
  ASSERT_INT_EQ(n, N);
  static idlist l;
  /* the last page */
  char last[33], before_last[33];
  snprintf(last, sizeof last, "%032x", N);
  snprintf(before_last, sizeof before_last, "%032x", N - 4);
  rd_dlq_filter_t f = {.scenario_id = 2, .resolved = 0, .since = NONE, .until = NONE,
                       .after = last, .limit = 100};
  ASSERT_OK(rd_store_dlq_list(st, &f, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 0);
  f.after = before_last;
  ASSERT_OK(rd_store_dlq_list(st, &f, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 2); /* N - 3, N - 1 (odd: scenario 2) */
  l.n = 0;
  rd_claim_opts_t o = {.sel = {.all = 1, .scenario_id = 1}, .limit = 100, .owner = "w",
                       .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 100);
  rd_health_t h;
  ASSERT_OK(rd_store_health(st, 1, NONE, 5, &h, &err));
  ASSERT_INT_EQ(h.total, N / 2);
  ASSERT_INT_EQ(h.failed, N / 4);
  rd_store_health_free(&h);
  static idlist errs;
  ASSERT_OK(rd_store_dlq_delete(st, &(rd_dlq_sel_t){.all = 1}, &n, collect_error, &errs, &err));
  ASSERT_INT_EQ(n, N - 100);
  ASSERT_INT_EQ(errs.n, 100);
  rd_store_close(st);
}

/* ---- fingerprints, groups, resolve --------------------------------------- */

/* A failed execution (and, with `item`, its item) of scenario sc whose
 * module 2 (an HTTP module in the blueprint bp) failed with msg; its
 * fingerprint is computed as the local source does (module type, id, the
 * error's code, the message) into fp / cause. */
static void add_failure(rd_store_t *st, int64_t sc, const char *bp, const char *msg, int item,
                        char fp[RD_FINGERPRINT_LEN + 1], char cause[RD_CAUSE_MAX], char did[33]) {
  rd_failure_t f = {.module = "http:ActionSendData", .module_id = "2", .error_class = "http",
                    .message = msg};
  rd_fingerprint(&f, fp, cause, RD_CAUSE_MAX);
  char json[512];
  snprintf(json, sizeof json, "{\"message\":\"%s\",\"module\":2,\"code\":\"http\"}", msg);
  rd_exec_t e = exec_rec(sc, "error", 5);
  e.error = json;
  e.fingerprint = fp;
  e.cause = cause;
  rd_dlq_item_t d = dlq_rec(sc, msg);
  d.blueprint = bp;
  d.fingerprint = fp;
  d.cause = cause;
  char eid[33];
  rd_err err = {0};
  if (rd_store_record(st, &e, item ? &d : NULL, eid, did, &err)) RD__FAIL("record: %s", err.msg);
}

/* A store back at schema version 1 (before fingerprints), its rows kept. */
static void downgrade_to_v1(const char *path) {
  static const char *const sql[] = {
    "DROP TABLE job_runner", /* version 5 */
    "DROP TABLE ledger_event", "DROP TABLE ledger_item", /* version 4 */
    "DROP TABLE job_item", "DROP TABLE job", /* version 3 */
    "DROP INDEX execution_fingerprint", "DROP INDEX dlq_fingerprint",
    "ALTER TABLE execution DROP COLUMN fingerprint", "ALTER TABLE execution DROP COLUMN cause",
    "ALTER TABLE dlq_item DROP COLUMN fingerprint", "ALTER TABLE dlq_item DROP COLUMN cause",
    "PRAGMA user_version = 1",
  };
  for (size_t i = 0; i < sizeof sql / sizeof *sql; i++) raw_sql(path, sql[i]);
}

/* store-job-5: a job run while its store is upgraded to version 5 (a lease
 * row per runner) keeps its runner: the lease it held and the row it had
 * started (not in doubt: its runner is alive), and others may join it. */
RD_TEST(store_job_runner_migration) {
  SQLITE_ONLY(); /* the upgrade of a SQLite file as version 4 left it */
  const char *path = tmp_path("mig5.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  const char *ids[] = {"item-a", "item-b"};
  rd_dlq_sel_t sel = {.ids = ids, .n_ids = 2};
  rd_job_t job = {.kind = "retry"};
  char id[RD_STORE_ID_LEN + 1];
  ASSERT_OK(rd_store_job_create(st, &job, &sel, id, NULL, &err));
  int ok = 0;
  ASSERT_OK(rd_store_job_own(st, id, RD_JOB_TAKE, "old", 60, &ok, &err));
  ASSERT_INT_EQ(ok, 1);
  rd_job_item_t m = {.outcome = "started"};
  int64_t n = 0;
  ASSERT_OK(rd_store_job_mark(st, id, ids, 1, &m, &n, &err));
  ASSERT_INT_EQ(n, 1);
  rd_store_close(st);
  /* version 4: the lease in the job row, no runner per ledger row */
  raw_sql(path, "DROP TABLE job_runner");
  raw_sql(path, "DROP INDEX job_item_started");
  raw_sql(path, "ALTER TABLE job_item DROP COLUMN runner");
  raw_sql(path, "PRAGMA user_version = 4");
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM job WHERE owner = 'old'"), 1);
  st = open_store(path);
  ASSERT_INT_EQ(raw_sql(path, "PRAGMA user_version"), rd_store_schema_version());
  ASSERT_OK(rd_store_job_own(st, id, RD_JOB_RENEW, "old", 60, &ok, &err));
  ASSERT_INT_EQ(ok, 1); /* its lease was kept */
  ASSERT_OK(rd_store_job_own(st, id, RD_JOB_TAKE, "new", 60, &ok, &err));
  ASSERT_INT_EQ(ok, 1);
  rd_job_counts_t c;
  ASSERT_OK(rd_store_job_get(st, id, NULL, &c, &err));
  ASSERT_INT_EQ(c.started, 1); /* still its runner's, not in doubt */
  ASSERT_INT_EQ(c.runners, 2);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM job_item WHERE runner = 'old'"), 1);
  rd_store_close(st);
}

/* store-fp-1: opening a version 1 store adds the columns and computes the
 * fingerprint of every failure already there exactly as a writer does now:
 * module type from the item's blueprint snapshot, else the scenario's */
RD_TEST(store_fingerprint_migration) {
  SQLITE_ONLY(); /* the backfill of a SQLite file (PostgreSQL stores have none to do) */
  const char *path = tmp_path("mig.db");
  rd_store_t *st = open_store(path);
  rd_err err = {0};
  const char *bp = "{\"flow\":[{\"id\":1,\"module\":\"gateway:CustomWebHook\"},"
                   "{\"id\":4,\"module\":\"builtin:BasicRouter\",\"routes\":[{\"flow\":"
                   "[{\"id\":2,\"module\":\"http:ActionSendData\"}]}]}]}";
  rd_scenario_t sc = {.name = "s", .blueprint = bp, .dlq = 1};
  int64_t sid;
  ASSERT_OK(rd_store_scenario_create(st, &sc, &sid, &err));
  char fp1[RD_FINGERPRINT_LEN + 1], fp2[RD_FINGERPRINT_LEN + 1], c1[RD_CAUSE_MAX],
      c2[RD_CAUSE_MAX], did[33];
  add_failure(st, sid, bp, "HTTP 503 from http://10.0.0.1:80/o/5", 1, fp1, c1, did);
  add_failure(st, sid, bp, "HTTP 503 from http://10.0.0.2:81/o/6", 0, fp2, c2, NULL);
  ASSERT_STR_EQ(fp1, fp2); /* one cause */
  rd_exec_t ok = exec_rec(sid, "success", 1);
  char okid[33];
  ASSERT_OK(rd_store_record(st, &ok, NULL, okid, NULL, &err));
  rd_store_close(st);
  downgrade_to_v1(path);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM pragma_table_info('execution')"
                              " WHERE name = 'fingerprint'"), 0);
  st = open_store(path);
  ASSERT_INT_EQ(raw_sql(path, "PRAGMA user_version"), rd_store_schema_version());
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM sqlite_schema WHERE name IN"
                              " ('execution_fingerprint', 'dlq_fingerprint')"), 2);
  rd_dlq_item_t *d = NULL;
  ASSERT_OK(rd_store_dlq_get(st, did, &d, &err));
  ASSERT_STR_EQ(d->fingerprint, fp1);
  ASSERT_STR_EQ(d->cause, "HTTP 503 from http://<host>/o/<n>");
  rd_exec_t *e = NULL;
  ASSERT_OK(rd_store_exec_get(st, d->execution_id, &e, &err));
  ASSERT_STR_EQ(e->fingerprint, fp1); /* the item's snapshot */
  free(e);
  free(d);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM execution WHERE fingerprint IS NOT NULL"), 2);
  ASSERT_INT_EQ(raw_sql(path, "SELECT count(*) FROM execution e, dlq_item d"
                              " WHERE e.fingerprint = d.fingerprint"), 2); /* the scenario's */
  ASSERT_OK(rd_store_exec_get(st, okid, &e, &err));
  ASSERT(e->fingerprint == NULL && e->cause == NULL);
  free(e);
  rd_store_close(st);
}

typedef struct {
  int n;
  char fp[8][RD_FINGERPRINT_LEN + 1];
  char cause[8][RD_CAUSE_MAX];
  int64_t count[8];
  double first[8], last[8];
  size_t nsc[8], nex[8];
  int64_t sc0[8];
  char ex0[8][33];
} groups_t;

static int collect_group(const rd_group_t *g, void *ud) {
  groups_t *l = ud;
  int i = l->n++;
  ASSERT(i < 8);
  snprintf(l->fp[i], sizeof l->fp[i], "%s", g->fingerprint ? g->fingerprint : "(null)");
  snprintf(l->cause[i], sizeof l->cause[i], "%s", g->cause ? g->cause : "(null)");
  l->count[i] = g->count;
  l->first[i] = g->first;
  l->last[i] = g->last;
  l->nsc[i] = g->n_scenarios;
  l->nex[i] = g->n_examples;
  l->sc0[i] = g->n_scenarios ? g->scenarios[0] : 0;
  snprintf(l->ex0[i], 33, "%s", g->n_examples ? g->examples[0] : "");
  for (size_t k = 1; k < g->n_examples; k++) ASSERT(strcmp(g->examples[k - 1], g->examples[k]) < 0);
  return 0;
}

/* store-fp-2: groups by fingerprint, biggest first, with cause, first and
 * last seen, scenarios and the first example ids; filtered by scenario,
 * resolved, since / until; limited */
RD_TEST(store_groups) {
  rd_store_t *st = open_store(tmp_path("groups.db"));
  rd_err err = {0};
  char fp[3][RD_FINGERPRINT_LEN + 1], cause[RD_CAUSE_MAX], did[33], first_a[33] = "";
  /* cause a: 5 items in scenarios 1 and 2; cause b: 3 items in scenario 1;
   * cause c: 1 item, resolved; one item without a fingerprint */
  for (int i = 0; i < 5; i++) {
    char msg[64];
    snprintf(msg, sizeof msg, "HTTP 500 from http://h:%d/orders/%d", 1000 + i, i);
    add_failure(st, i < 3 ? 1 : 2, "{\"flow\":[]}", msg, 1, fp[0], cause, did);
    if (!first_a[0]) strcpy(first_a, did);
  }
  for (int i = 0; i < 3; i++) {
    char msg[64];
    snprintf(msg, sizeof msg, "HTTP 410 from http://h/v%d/webhook/%d", 1, i);
    add_failure(st, 1, "{\"flow\":[]}", msg, 1, fp[1], cause, did);
  }
  add_failure(st, 3, "{\"flow\":[]}", "connect ECONNREFUSED 10.0.0.1:5432", 1, fp[2], cause, did);
  ASSERT_OK(rd_store_dlq_resolve(st, &(rd_dlq_sel_t){.ids = (const char *[]){did}, .n_ids = 1},
                                 NULL, NULL, NULL, &err));
  char bare[33];
  add_item(st, 1, bare); /* recorded without a fingerprint */
  ASSERT(strcmp(fp[0], fp[1]) != 0);

  static groups_t g;
  rd_dlq_filter_t f = {.resolved = 0, .since = NONE, .until = NONE};
  ASSERT_OK(rd_store_dlq_groups(st, &f, collect_group, &g, &err));
  ASSERT_INT_EQ(g.n, 3);
  ASSERT_STR_EQ(g.fp[0], fp[0]);
  ASSERT_INT_EQ(g.count[0], 5);
  ASSERT_STR_EQ(g.cause[0], "HTTP 500 from http://<host>/orders/<n>");
  ASSERT_INT_EQ(g.nsc[0], 2);
  ASSERT_INT_EQ(g.nex[0], RD_GROUP_EXAMPLES);
  ASSERT_STR_EQ(g.ex0[0], first_a);
  ASSERT(g.first[0] <= g.last[0]);
  ASSERT_STR_EQ(g.fp[1], fp[1]);
  ASSERT_INT_EQ(g.count[1], 3);
  ASSERT_STR_EQ(g.fp[2], "(null)"); /* the one without */
  ASSERT_INT_EQ(g.count[2], 1);
  ASSERT_INT_EQ(g.nex[2], 1);
  ASSERT_STR_EQ(g.ex0[2], bare);
  /* resolved ones */
  memset(&g, 0, sizeof g);
  f.resolved = 1;
  ASSERT_OK(rd_store_dlq_groups(st, &f, collect_group, &g, &err));
  ASSERT_INT_EQ(g.n, 1);
  ASSERT_STR_EQ(g.fp[0], fp[2]);
  ASSERT_INT_EQ(g.sc0[0], 3);
  /* one scenario; a limit */
  memset(&g, 0, sizeof g);
  f = (rd_dlq_filter_t){.scenario_id = 2, .resolved = -1, .since = NONE, .until = NONE};
  ASSERT_OK(rd_store_dlq_groups(st, &f, collect_group, &g, &err));
  ASSERT_INT_EQ(g.n, 1);
  ASSERT_INT_EQ(g.count[0], 2);
  memset(&g, 0, sizeof g);
  f = (rd_dlq_filter_t){.resolved = -1, .since = NONE, .until = NONE, .limit = 2};
  ASSERT_OK(rd_store_dlq_groups(st, &f, collect_group, &g, &err));
  ASSERT_INT_EQ(g.n, 2);
  /* a time window that holds nothing */
  memset(&g, 0, sizeof g);
  f = (rd_dlq_filter_t){.resolved = -1, .since = 1, .until = 2};
  ASSERT_OK(rd_store_dlq_groups(st, &f, collect_group, &g, &err));
  ASSERT_INT_EQ(g.n, 0);
  /* the fingerprint filters: list, count */
  static idlist l;
  ASSERT_OK(rd_store_dlq_list(st, &(rd_dlq_filter_t){.resolved = -1, .since = NONE, .until = NONE,
                                                      .fingerprint = fp[1]},
                              collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 3);
  int64_t n;
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.resolved = 0, .fingerprint = fp[0]}, &n, &err));
  ASSERT_INT_EQ(n, 5);
  l.n = 0;
  ASSERT_OK(rd_store_exec_list(st, &(rd_exec_filter_t){.since = NONE, .until = NONE,
                                                       .fingerprint = fp[0]},
                               collect_exec, &l, &err));
  ASSERT_INT_EQ(l.n, 5);
  rd_store_close(st);
}

/* store-fp-3: resolve marks items handled without a retry; a leased item
 * and an unknown id are kept and reported; a fingerprint selects a group
 * for claims, deletes and resolves */
RD_TEST(store_resolve_and_select) {
  rd_store_t *st = open_store(tmp_path("resolve.db"));
  rd_err err = {0};
  char ids[6][33], fpa[RD_FINGERPRINT_LEN + 1], fpb[RD_FINGERPRINT_LEN + 1], cause[RD_CAUSE_MAX];
  for (int i = 0; i < 6; i++)
    add_failure(st, 1, "{\"flow\":[]}", i < 4 ? "HTTP 500 from http://h/x/1" : "timeout after 5 s", 1,
                i < 4 ? fpa : fpb, cause, ids[i]);
  /* lease ids[1] */
  static idlist l, errs;
  rd_claim_opts_t o = {.sel = {.ids = (const char *[]){ids[1]}, .n_ids = 1}, .limit = 10,
                       .owner = "w", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 1);
  const char *sel[] = {ids[0], ids[1], "00000000000000000000000000000000"};
  int64_t n = -1;
  ASSERT_OK(rd_store_dlq_resolve(st, &(rd_dlq_sel_t){.ids = sel, .n_ids = 3}, &n, collect_error,
                                 &errs, &err));
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(errs.n, 2);
  ASSERT_STR_EQ(errs.ids[0], ids[1]);
  rd_dlq_item_t *d;
  ASSERT_OK(rd_store_dlq_get(st, ids[0], &d, &err));
  ASSERT(d->resolved && d->attempts == 0);
  free(d);
  /* resolving it again counts nothing */
  ASSERT_OK(rd_store_dlq_resolve(st, &(rd_dlq_sel_t){.ids = sel, .n_ids = 1}, &n, NULL, NULL, &err));
  ASSERT_INT_EQ(n, 0);
  /* claim all of group b: two items, none of a */
  l.n = 0;
  o = (rd_claim_opts_t){.sel = {.all = 1, .fingerprint = fpb}, .limit = 10, .owner = "v", .ttl = 60};
  ASSERT_OK(rd_store_claim(st, &o, collect_item, &l, &err));
  ASSERT_INT_EQ(l.n, 2);
  ASSERT_STR_EQ(l.ids[0], ids[4]);
  ASSERT_OK(rd_store_release(st, "v", NULL, NULL, &err));
  /* an id outside the group is "not found" in it */
  errs.n = 0;
  ASSERT_OK(rd_store_dlq_delete(st, &(rd_dlq_sel_t){.ids = (const char *[]){ids[2]}, .n_ids = 1,
                                                     .fingerprint = fpb},
                                &n, collect_error, &errs, &err));
  ASSERT_INT_EQ(n, 0);
  ASSERT_INT_EQ(errs.n, 1);
  /* delete group a: ids[1] leased stays, ids[0] resolved goes too */
  errs.n = 0;
  ASSERT_OK(rd_store_dlq_delete(st, &(rd_dlq_sel_t){.all = 1, .fingerprint = fpa}, &n,
                                collect_error, &errs, &err));
  ASSERT_INT_EQ(n, 3);
  ASSERT_INT_EQ(errs.n, 1);
  int64_t left;
  ASSERT_OK(rd_store_dlq_count(st, &(rd_dlq_filter_t){.resolved = -1}, &left, &err));
  ASSERT_INT_EQ(left, 3);
  rd_store_close(st);
}

/* The store's group commit on a loop (src/store/group.c), through the C API
 * as an embedder uses it: writes of tasks in one loop turn share one
 * transaction, each task is acknowledged only once that has committed
 * (another connection sees its row), other writes commit the open group
 * first, and two connections to one file on one loop never wait for each
 * other's lock. */
#include "test.h"

#include "redrive.h"

#include <sqlite3.h>
#include <stdint.h>

#define NONE RD_STORE_NONE

static char path[512];

static rd_store_t *open_on(rd_loop_t *l) {
  rd_store_t *st = NULL;
  rd_err err = {0};
  if (rd_store_open(&st, path, &err)) RD__FAIL("rd_store_open(%s): %s", path, err.msg);
  rd_store_set_loop(st, l);
  return st;
}

static rd_loop_t *setup(void) {
  /* the SQLite mechanism (a batch transaction, savepoints); PostgreSQL's
   * pipeline segments are tested by tests/lua/test_store_pg.lua (pg-2.1) */
  if (rd_test_pg()) RD_SKIP("SQLite's group mechanism");
  snprintf(path, sizeof path, "%s/group.db", rd_test_tmpdir());
  rd_loop_t *l = NULL;
  ASSERT_OK(rd_loop_new(&l, NULL));
  return l;
}

/* Executions another connection sees: what is committed. */
static long long committed(void) {
  sqlite3 *db;
  ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  ASSERT_INT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM execution", -1, &s, NULL), SQLITE_OK);
  ASSERT_INT_EQ(sqlite3_step(s), SQLITE_ROW);
  long long n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

static rd_exec_t exec_rec(void) {
  return (rd_exec_t){.scenario_id = 1, .status = "success", .mode = "manual",
                     .started_at = 1700000000.5, .stopped_at = NONE, .duration = 3};
}

/* A task that records one execution, then parks until it is durable. */
typedef struct {
  rd_store_t *st;
  rd_store_wait_t wait;  /* embedded: released by a no-op */
  int step;
  int pending;           /* the write joined an open group */
  long long seen_before; /* committed rows right after its own write */
  long long seen_acked;  /* committed rows when it is acknowledged */
  int status;            /* of its wait */
  char id[RD_STORE_ID_LEN + 1];
  rd_task_t *task;
} writer;

static void no_release(rd_wait_t *w) { (void)w; }

static void writer_fn(rd_task_t *t, void *ud) {
  writer *w = ud;
  if (w->step++ == 0) {
    rd_exec_t e = exec_rec();
    rd_err err = {0};
    if (rd_store_record(w->st, &e, NULL, w->id, NULL, &err)) RD__FAIL("record: %s", err.msg);
    w->pending = rd_store_group_pending(w->st);
    w->seen_before = committed();
    rd_store_group_wait(w->st, &w->wait, no_release);
    rd_task_park(t, &w->wait.base);
    return;
  }
  w->status = w->wait.base.status;
  w->seen_acked = committed();
  rd_wait_release(&w->wait.base);
}

RD_TEST(store_group_writes_of_one_turn_share_a_commit_and_are_acked_after_it) {
  rd_loop_t *l = setup();
  rd_store_t *st = open_on(l);
  writer w[3] = {{.st = st}, {.st = st}, {.st = st}};
  for (int i = 0; i < 3; i++) ASSERT_OK(rd_task_spawn(l, writer_fn, &w[i], NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  for (int i = 0; i < 3; i++) {
    ASSERT_INT_EQ(w[i].pending, 1);
    ASSERT_INT_EQ(w[i].seen_before, 0); /* nothing committed while the turn runs */
    ASSERT_INT_EQ(w[i].status, 0);
    ASSERT_INT_EQ(w[i].seen_acked, 3);  /* acknowledged: durable, all together */
  }
  ASSERT_INT_EQ(rd_store_group_pending(st), 0);
  rd_store_close(st);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* A write that does not join (here an update, from a task) commits the
 * open group first: it must not become durable only with it. */
typedef struct {
  rd_store_t *st;
  writer *a;
  long long seen;
  int a_done;
} updater;

static void updater_fn(rd_task_t *t, void *ud) {
  (void)t;
  updater *u = ud;
  rd_exec_t e = {.status = "error"};
  rd_err err = {0};
  if (rd_store_exec_update(u->st, u->a->id, &e, RD_EXEC_STATUS, &err)) RD__FAIL("update: %s", err.msg);
  u->seen = committed();
  u->a_done = u->a->wait.base.done;
}

RD_TEST(store_group_another_write_commits_the_open_group_first) {
  rd_loop_t *l = setup();
  rd_store_t *st = open_on(l);
  writer a = {.st = st};
  updater u = {.st = st, .a = &a};
  ASSERT_OK(rd_task_spawn(l, writer_fn, &a, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, updater_fn, &u, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(a.seen_before, 0);
  ASSERT_INT_EQ(u.a_done, 1); /* the group committed before the update ran */
  ASSERT_INT_EQ(u.seen, 1);
  ASSERT_INT_EQ(a.status, 0);
  rd_exec_t *got = NULL;
  ASSERT_OK(rd_store_exec_get(st, a.id, &got, NULL));
  ASSERT_STR_EQ(got->status, "error");
  free(got);
  /* outside any task a write never joins a group: durable on return */
  rd_exec_t e = exec_rec();
  char id[RD_STORE_ID_LEN + 1];
  ASSERT_OK(rd_store_record(st, &e, NULL, id, NULL, NULL));
  ASSERT_INT_EQ(rd_store_group_pending(st), 0);
  ASSERT_INT_EQ(committed(), 2);
  rd_store_wait_t w;
  rd_store_group_wait(st, &w, no_release);
  ASSERT(w.base.done && w.base.status == 0); /* nothing to wait for */
  rd_store_close(st);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

RD_TEST(store_group_two_connections_to_one_file_never_wait_for_each_other) {
  rd_loop_t *l = setup();
  rd_store_t *one = open_on(l), *two = open_on(l);
  /* one's group holds the write lock when two writes: without committing
   * it first, two would wait out the busy timeout and fail with "busy" */
  writer a = {.st = one}, b = {.st = two};
  ASSERT_OK(rd_task_spawn(l, writer_fn, &a, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, writer_fn, &b, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(a.status, 0);
  ASSERT_INT_EQ(b.status, 0);
  ASSERT_INT_EQ(b.seen_before, 1); /* one's group was committed for it */
  ASSERT_INT_EQ(committed(), 2);
  rd_store_close(one);
  rd_store_close(two);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* Closing the store commits the open group and wakes its writers. */
static void closer_fn(rd_task_t *t, void *ud) {
  (void)t;
  rd_store_close(ud);
}

RD_TEST(store_group_close_commits_the_open_group) {
  rd_loop_t *l = setup();
  rd_store_t *st = open_on(l);
  writer a = {.st = st};
  ASSERT_OK(rd_task_spawn(l, writer_fn, &a, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, closer_fn, st, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(a.seen_before, 0);
  ASSERT_INT_EQ(a.status, 0);
  ASSERT_INT_EQ(a.seen_acked, 1);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* A writer cancelled while it waits hears RD_ECANCELED; its write stays in
 * the group and is committed with it (cancellation stops waits, not
 * transactions others share). */
static void cancel_fn(rd_task_t *t, void *ud) {
  (void)t;
  writer *w = ud;
  ASSERT_INT_EQ(rd_task_cancel(w->task), 1);
}

RD_TEST(store_group_a_cancelled_writer_hears_canceled_and_the_group_commits) {
  rd_loop_t *l = setup();
  rd_store_t *st = open_on(l);
  writer a = {.st = st}, b = {.st = st};
  ASSERT_OK(rd_task_spawn(l, writer_fn, &a, &a.task, NULL));
  ASSERT_OK(rd_task_spawn(l, writer_fn, &b, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, cancel_fn, &a, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(a.status, RD_ECANCELED);
  ASSERT_INT_EQ(b.status, 0);
  ASSERT_INT_EQ(b.seen_acked, 2);
  rd_store_close(st);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/*
 * Group commit on a loop: the one home of the policy "the writes of one loop
 * iteration share one commit, made right before the loop next polls; a
 * writer is acknowledged only after that commit (acknowledged means
 * durable)". The hook that ends a group is a before-poll hook: libuv runs
 * it once every task made ready in this iteration has run.
 *
 * SQLite (the mechanism is a batch transaction): rd_store_record and
 * rd_store_retry_done begin with rd__st_begin_group: called from a task of
 * the store's loop, they open (or join) the group's batch transaction, each
 * in its own savepoint, and schedule its commit; the writers park on a
 * store wait (rd_store_group_wait) that the commit completes, with its
 * error when it failed (the whole group is then rolled back, and every
 * writer hears so). Any other write begins with rd__st_begin: it first
 * commits the open group, so that it is never made part of (and durable
 * only with) a transaction it did not join, and runs the loop's hooks,
 * which commits the groups of the other stores on the loop: two
 * connections to one file in this process would otherwise have the second
 * wait for the first one's write lock, which only this process's loop can
 * release.
 *
 * PostgreSQL (the mechanism is a pipeline segment, pg.c): every operation
 * started in one iteration is sent at once into the open segment, and the
 * hook sends the sync point that ends it. The server runs a segment as one
 * implicit transaction: one round trip and one WAL flush for all of them.
 * Every operation, read or write, completes only when the sync's answer has
 * arrived, so none is acknowledged before its transaction committed, and
 * nothing is ever left waiting for a group it did not join.
 */
#include "store/store_int.h"

#include <stddef.h>

static void commit_hook(rd_hook_t *h) {
  rd_store_t *st = (rd_store_t *)((char *)h - offsetof(rd_store_t, hook));
  st->be->group_end(st);
}

void rd__group_schedule(rd_store_t *st) {
  if (!st->loop) return;
  st->hook.fn = commit_hook;
  rd_loop_before_poll(st->loop, &st->hook);
}

int rd_store_group_pending(const rd_store_t *st) { return st->group; }

int rd__group_enter(rd_store_t *st, int joins, rd_err *err) {
  /* no loop, or a batch the caller opened by hand: nothing to decide */
  if (!st->loop || (rd_store_in_batch(st) && !st->group)) return 0;
  joins = joins && rd_loop_current(st->loop) != NULL;
  if (st->group) {
    if (joins) return 0;
    /* its failure is the group's writers' to hear, not this caller's */
    rd_store_group_commit(st, NULL);
  }
  rd_loop_run_hooks(st->loop);
  if (!joins) return 0;
  int r = rd_store_batch_begin(st, err);
  if (r) return r;
  st->group = 1;
  rd__group_schedule(st);
  return 0;
}

static void unlink_wait(rd_wait_t *base) {
  rd_store_wait_t *w = (rd_store_wait_t *)base;
  if (!w->st) return;
  for (rd_store_wait_t **p = &w->st->waiters; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  w->st = NULL;
}

void rd_store_group_wait(rd_store_t *st, rd_store_wait_t *w, void (*release)(rd_wait_t *)) {
  rd_wait_init(&w->base, unlink_wait, release);
  w->err = (rd_err){0};
  w->next = NULL;
  w->st = NULL;
  if (!st->group) {
    rd_wait_done(&w->base, 0); /* nothing open: the write was durable already */
    return;
  }
  w->st = st;
  w->next = st->waiters;
  st->waiters = w;
}

int rd_store_group_commit(rd_store_t *st, rd_err *err) {
  if (!st->group) return 0;
  st->group = 0;
  rd_hook_cancel(&st->hook);
  rd_err e = {0};
  int rc = rd_store_batch_commit(st, &e);
  rd_store_wait_t *w = st->waiters;
  st->waiters = NULL;
  while (w) {
    rd_store_wait_t *next = w->next;
    w->st = NULL;
    w->next = NULL;
    if (rc) w->err = e;
    rd_wait_done(&w->base, rc);
    w = next;
  }
  if (rc && err) *err = e;
  return rc;
}

/*
 * Group commit on a loop: the one home of the policy "writes from tasks join
 * one open transaction, committed right before the loop next polls; a task
 * is acknowledged only after the commit".
 *
 * rd_store_record and rd_store_retry_done begin with rd__st_begin_group:
 * called from a task of the store's loop, they open (or join) the group's
 * batch transaction and schedule its commit as a before-poll hook; libuv
 * runs that hook once every task made ready in this loop iteration has run,
 * so one sync covers all their writes. The writers park on a store wait
 * (rd_store_group_wait) that the commit completes, with its error when it
 * failed (the whole group is then rolled back, and every writer hears so).
 *
 * Any other write begins with rd__st_begin: it first commits the open group,
 * so that it is never made part of (and durable only with) a transaction it
 * did not join, and commits the groups of the other stores on the loop: two
 * connections to one file in this process would otherwise have the second
 * wait for the first one's write lock, which only this process's loop can
 * release.
 */
#include "store/store_int.h"

#include <stddef.h>

static void commit_hook(rd_hook_t *h) {
  rd_store_t *st = (rd_store_t *)((char *)h - offsetof(rd_store_t, hook));
  rd_store_group_commit(st, NULL);
}

void rd_store_set_loop(rd_store_t *st, rd_loop_t *loop) {
  if (st->loop == loop) return;
  rd_store_group_commit(st, NULL);
  st->loop = loop;
  st->hook.fn = commit_hook;
}

int rd_store_group_pending(const rd_store_t *st) { return st->group; }

int rd__group_enter(rd_store_t *st, int joins, rd_err *err) {
  /* no loop, or a batch the caller opened by hand: nothing to decide */
  if (!st->loop || (st->batch && !st->group)) return 0;
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
  rd_loop_before_poll(st->loop, &st->hook);
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

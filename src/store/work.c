/* Waits for new work (rd_store_wait_work): a worker with nothing to claim
 * parks on one until items may have become claimable, or its timeout (the
 * lease expiry it must not miss) passes. Woken by this process's writes
 * (both backends) and, on PostgreSQL, by NOTIFY from every other
 * connection (pg.c listens once the first wait is made). Never a tight
 * poll: a wait costs nothing until something happens. */
#include "store/store_int.h"

#include <stdlib.h>
#include <uv.h>

typedef struct work_wait {
  rd_wait_t base;            /* first */
  rd_store_t *st;            /* NULL once out of the store's list */
  struct work_wait *next;
  uv_timer_t timer;          /* the timeout, when there is one */
  int timing;                /* the timer was initialised (closed on release) */
} work_wait;

static void unlink_ww(work_wait *w) {
  if (!w->st) return;
  for (work_wait **p = (work_wait **)&w->st->work; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  w->st = NULL;
  w->next = NULL;
}

static void on_timeout(uv_timer_t *t) {
  work_wait *w = t->data;
  unlink_ww(w);
  rd_wait_done(&w->base, RD_ETIMEOUT);
}

static void ww_cancel(rd_wait_t *base) {
  work_wait *w = (work_wait *)base;
  unlink_ww(w);
  if (w->timing) uv_timer_stop(&w->timer);
}

static void ww_closed(uv_handle_t *h) { free(h->data); }

static void ww_release(rd_wait_t *base) {
  work_wait *w = (work_wait *)base;
  unlink_ww(w);
  if (w->timing) uv_close((uv_handle_t *)&w->timer, ww_closed);
  else free(w);
}

int rd_store_wait_work(rd_store_t *st, uint64_t timeout_ms, rd_wait_t **out, rd_err *err) {
  if (timeout_ms && !st->loop)
    return rd_err_set(err, RD_EINVALID, "store: a timed wait for work needs a loop");
  if (st->be->listen && !st->listening) {
    int r = st->be->listen(st, err);
    if (r) return r;
    st->listening = 1;
  }
  work_wait *w = calloc(1, sizeof *w);
  if (!w) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  rd_wait_init(&w->base, ww_cancel, ww_release);
  if (timeout_ms) {
    if (uv_timer_init(rd_loop_uv(st->loop), &w->timer) != 0) {
      free(w);
      return rd_err_set(err, RD_EIO, "store: cannot make a timer");
    }
    w->timer.data = w;
    w->timing = 1;
    uv_timer_start(&w->timer, on_timeout, timeout_ms, 0);
  }
  w->st = st;
  w->next = st->work;
  st->work = w;
  *out = &w->base;
  return 0;
}

void rd__work_signal(rd_store_t *st) {
  work_wait *w = st->work;
  st->work = NULL;
  while (w) {
    work_wait *next = w->next;
    w->st = NULL;
    w->next = NULL;
    if (w->timing) uv_timer_stop(&w->timer);
    rd_wait_done(&w->base, 0);
    w = next;
  }
}

/*
 * Timer waits: complete after a number of milliseconds. The record owns a
 * uv_timer_t, so releasing it closes the handle and the close callback frees
 * the memory (STYLE.md §8).
 */
#include "loop/loop_int.h"

#include <stdlib.h>

typedef struct {
  rd_wait_t base;  /* first: the wait is the record */
  uv_timer_t timer;
} timer_wait;

static void fire(uv_timer_t *h) { rd_wait_done(h->data, 0); }
static void cancel(rd_wait_t *w) { uv_timer_stop(&((timer_wait *)w)->timer); }
static void closed(uv_handle_t *h) { free(h->data); }
static void release(rd_wait_t *w) { uv_close((uv_handle_t *)&((timer_wait *)w)->timer, closed); }

int rd_wait_timer(rd_loop_t *l, uint64_t ms, rd_wait_t **out, rd_err *err) {
  timer_wait *w = malloc(sizeof *w);
  if (!w) return rd_err_set(err, RD_ENOMEM, "loop: out of memory for a timer");
  rd_wait_init(&w->base, cancel, release);
  uv_timer_init(&l->uv, &w->timer); /* cannot fail on an open loop */
  w->timer.data = w;
  uv_timer_start(&w->timer, fire, ms, 0);
  *out = &w->base;
  return 0;
}

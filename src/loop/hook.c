/*
 * Before-poll hooks: callbacks run once, right before the loop next waits
 * for I/O, in the order they were scheduled. libuv runs idle callbacks (our
 * ready tasks) before prepare callbacks, and the idle handle keeps the poll
 * from blocking, so by the time a hook runs every task made ready in this
 * iteration has run; tasks the hook wakes run on the next turn.
 */
#include "loop/loop_int.h"

static void on_prepare(uv_prepare_t *p) {
  rd_loop_t *l = p->data;
  rd_loop_run_hooks(l);
  uv_prepare_stop(&l->prep);
}

void rd_loop_before_poll(rd_loop_t *l, rd_hook_t *h) {
  if (h->loop) return;
  h->loop = l;
  h->next = NULL;
  if (l->hooks_tail) l->hooks_tail->next = h;
  else l->hooks_head = h;
  l->hooks_tail = h;
  /* closed only by rd_loop_close, which runs the hooks itself first */
  if (!uv_is_active((uv_handle_t *)&l->prep) && !uv_is_closing((uv_handle_t *)&l->prep))
    uv_prepare_start(&l->prep, on_prepare);
}

void rd_loop_run_hooks(rd_loop_t *l) {
  while (l->hooks_head) {
    rd_hook_t *h = l->hooks_head;
    l->hooks_head = h->next;
    if (!l->hooks_head) l->hooks_tail = NULL;
    h->next = NULL;
    h->loop = NULL; /* unscheduled before it runs: it may schedule itself again */
    h->fn(h);
  }
}

void rd_hook_cancel(rd_hook_t *h) {
  rd_loop_t *l = h->loop;
  if (!l) return;
  rd_hook_t *prev = NULL;
  for (rd_hook_t *p = l->hooks_head; p; prev = p, p = p->next) {
    if (p != h) continue;
    if (prev) prev->next = h->next;
    else l->hooks_head = h->next;
    if (l->hooks_tail == h) l->hooks_tail = prev;
    break;
  }
  h->next = NULL;
  h->loop = NULL;
}

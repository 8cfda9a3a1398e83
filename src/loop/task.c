/*
 * Tasks and waits: the ready queue, parking, completion and cancellation.
 *
 * A task runs only from rd__loop_run_ready (the loop's idle callback), never
 * from inside another task or an operation's callback: completing a wait
 * only queues the task parked on it. So a C function that completes a wait
 * can never find the waiting code half-way through its own call stack.
 */
#include "loop/loop_int.h"

#include <stdlib.h>

/* ---- waits -------------------------------------------------------------- */

void rd_wait_init(rd_wait_t *w, void (*cancel)(rd_wait_t *), void (*release)(rd_wait_t *)) {
  *w = (rd_wait_t){.cancel = cancel, .release = release};
}

void rd_wait_done(rd_wait_t *w, int status) {
  if (w->done) return;
  w->done = 1;
  w->status = status;
  rd_task_t *t = w->task;
  if (t && t->wait == w) {
    t->wait = NULL;
    t->woke_canceled = status == RD_ECANCELED;
    rd__task_enqueue(t);
  }
}

void rd_wait_cancel(rd_wait_t *w) {
  if (w->done) return;
  if (w->cancel) w->cancel(w);
  rd_wait_done(w, RD_ECANCELED);
}

void rd_wait_release(rd_wait_t *w) {
  if (w && w->release) w->release(w);
}

/* ---- the ready queue ---------------------------------------------------- */

void rd__task_enqueue(rd_task_t *t) {
  rd_loop_t *l = t->loop;
  t->state = RD_TASK_READY;
  t->next_ready = NULL;
  if (l->ready_tail) l->ready_tail->next_ready = t;
  else l->ready_head = t;
  l->ready_tail = t;
  if (!uv_is_active((uv_handle_t *)&l->idle)) uv_idle_start(&l->idle, rd__loop_run_ready);
}

static void unlink_live(rd_task_t *t) {
  rd_loop_t *l = t->loop;
  if (t->prev_live) t->prev_live->next_live = t->next_live;
  else l->live = t->next_live;
  if (t->next_live) t->next_live->prev_live = t->prev_live;
  l->ntasks--;
}

/* Run t's function once. Afterwards it is parked, queued again, or ended:
 * an ended task is freed here. */
static void run(rd_task_t *t) {
  rd_loop_t *l = t->loop;
  rd_task_t *outer = l->current;
  t->state = RD_TASK_RUNNING;
  t->woke_canceled = 0; /* it sees that wait's status now */
  l->current = t;
  t->fn(t, t->ud);
  l->current = outer;
  if (t->state != RD_TASK_RUNNING) return; /* parked, or queued again */
  unlink_live(t);
  free(t);
}

void rd__loop_run_ready(uv_idle_t *h) {
  rd_loop_t *l = h->data;
  /* Only the tasks ready now: those they make ready run on the next turn,
   * after the loop has looked at I/O and the hooks have run. */
  rd_task_t *t = l->ready_head;
  l->ready_head = l->ready_tail = NULL;
  while (t) {
    rd_task_t *next = t->next_ready;
    t->next_ready = NULL;
    run(t);
    t = next;
  }
  if (!l->ready_head) uv_idle_stop(&l->idle);
}

/* ---- tasks ----------------------------------------------------------------- */

int rd_task_spawn(rd_loop_t *l, rd_task_fn fn, void *ud, rd_task_t **out, rd_err *err) {
  if (l->shut) return rd_err_set(err, RD_EBUSY, "loop: closing, no new task");
  rd_task_t *t = calloc(1, sizeof *t);
  if (!t) return rd_err_set(err, RD_ENOMEM, "loop: out of memory for a task");
  t->loop = l;
  t->fn = fn;
  t->ud = ud;
  t->next_live = l->live;
  if (l->live) l->live->prev_live = t;
  l->live = t;
  l->ntasks++;
  rd__task_enqueue(t);
  if (out) *out = t;
  return 0;
}

void rd_task_park(rd_task_t *t, rd_wait_t *w) {
  w->task = t;
  if (!w->done && (t->cancel_owed || t->loop->interrupted || t->loop->shut)) {
    t->cancel_owed = 0;
    rd_wait_cancel(w);
  }
  if (w->done) {
    t->woke_canceled = w->status == RD_ECANCELED;
    rd__task_enqueue(t);
    return;
  }
  t->wait = w;
  t->state = RD_TASK_PARKED;
}

void rd_task_yield(rd_task_t *t) { rd__task_enqueue(t); }

/* A task that is not parked (queued to run because its wait just ended, or
 * running) is cancelled at its next wait: dropping the cancel would let it
 * run on unbounded, e.g. an rd.each worker whose poll answered in the same
 * loop turn as its caller's cancellation. One that is queued to see a
 * cancelled wait has it already: a second cancel must not also stop the
 * clean-up it may wait on next. */
int rd_task_cancel(rd_task_t *t) {
  rd_wait_t *w = t->wait;
  if (w) {
    rd_wait_cancel(w);
    return 1;
  }
  if (t->woke_canceled) return 0;
  t->cancel_owed = 1;
  return 1;
}

int rd_task_state(const rd_task_t *t) { return t->state; }

void rd__task_drop_all(rd_loop_t *l) {
  while (l->live) {
    rd_task_t *t = l->live;
    rd_wait_t *w = t->wait;
    t->wait = NULL;
    if (w) {
      w->task = NULL;
      rd_wait_cancel(w);
      rd_wait_release(w);
    }
    unlink_live(t);
    free(t);
  }
  l->ready_head = l->ready_tail = NULL;
}

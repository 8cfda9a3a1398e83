/*
 * The loop: one uv loop with the handles that run tasks (idle) and
 * before-poll hooks (prepare), the ways to drive it (run until no task is
 * left, wait for one operation, drain after an interrupt), interruption,
 * and teardown that leaves no handle behind (STYLE.md §8: handles are
 * freed only after their close callbacks, uv_loop_close must return 0).
 */
#include "loop/loop_int.h"

#include <stdlib.h>

int rd_loop_new(rd_loop_t **out, rd_err *err) {
  rd_loop_t *l = calloc(1, sizeof *l);
  if (!l) return rd_err_set(err, RD_ENOMEM, "loop: out of memory");
  int r = uv_loop_init(&l->uv);
  if (r != 0) {
    free(l);
    return rd_err_set(err, RD_EIO, "loop: cannot create the event loop: %s", uv_strerror(r));
  }
  /* init of these handles cannot fail on a loop that was just made */
  uv_idle_init(&l->uv, &l->idle);
  uv_prepare_init(&l->uv, &l->prep);
  uv_timer_init(&l->uv, &l->guard);
  l->idle.data = l->prep.data = l->guard.data = l;
  *out = l;
  return 0;
}

struct uv_loop_s *rd_loop_uv(rd_loop_t *l) { return &l->uv; }
size_t rd_loop_tasks(const rd_loop_t *l) { return l->ntasks; }
int rd_loop_running(const rd_loop_t *l) { return l->running; }
rd_task_t *rd_loop_current(const rd_loop_t *l) { return l->current; }
int rd_loop_interrupted(const rd_loop_t *l) { return l->interrupted; }
void rd_loop_clear_interrupt(rd_loop_t *l) { l->interrupted = 0; }

/* Refuse to run the loop from inside itself (a task, or a callback of a
 * run already going on). */
static int check_free(rd_loop_t *l, const char *what, rd_err *err) {
  if (l->current) return rd_err_set(err, RD_EBUSY, "loop: %s: called from inside a task", what);
  if (l->running) return rd_err_set(err, RD_EBUSY, "loop: %s: the loop is already running", what);
  return 0;
}

int rd_loop_run(rd_loop_t *l, rd_err *err) {
  int r = check_free(l, "run", err);
  if (r) return r;
  l->running++;
  while ((l->ntasks > 0 || l->ready_head) && !l->interrupted) {
    /* 0: no active handle left, so nothing could wake a parked task */
    if (!uv_run(&l->uv, UV_RUN_ONCE) && !l->ready_head) break;
  }
  l->running--;
  return 0;
}

int rd_loop_wait(rd_loop_t *l, rd_wait_t *w, rd_err *err) {
  int r = check_free(l, "wait", err);
  if (r) return r;
  l->running++;
  l->main_wait = w;
  while (!w->done) {
    if (l->interrupted || l->shut) {
      rd_wait_cancel(w);
      break;
    }
    if (!uv_run(&l->uv, UV_RUN_ONCE) && !w->done && !l->ready_head) {
      rd_wait_cancel(w);
      r = rd_err_set(err, RD_EINVALID, "deadlock: nothing left that could finish this wait");
      break;
    }
  }
  l->main_wait = NULL;
  l->running--;
  return r;
}

void rd_loop_interrupt(rd_loop_t *l) {
  l->interrupted = 1;
  if (l->main_wait) rd_wait_cancel(l->main_wait);
  for (rd_task_t *t = l->live; t; t = t->next_live)
    if (t->wait) rd_wait_cancel(t->wait);
}

static void guard_cb(uv_timer_t *h) { (void)h; }

size_t rd_loop_drain(rd_loop_t *l, uint64_t grace_ms) {
  if (check_free(l, "drain", NULL)) return l->ntasks;
  /* the guard timer makes each poll return in time for the deadline */
  uv_timer_start(&l->guard, guard_cb, 50, 50);
  uv_update_time(&l->uv);
  uint64_t deadline = uv_now(&l->uv) + grace_ms;
  l->running++;
  while ((l->ntasks > 0 || l->ready_head) && uv_now(&l->uv) < deadline) {
    rd_loop_interrupt(l); /* waits that unwinding code started meanwhile */
    uv_run(&l->uv, UV_RUN_ONCE);
  }
  l->running--;
  uv_timer_stop(&l->guard);
  return l->ntasks;
}

void rd_loop_shutdown(rd_loop_t *l) {
  if (l->shut) return;
  l->shut = 1;
  if (l->main_wait) rd_wait_cancel(l->main_wait);
  rd__task_drop_all(l);
  rd_loop_run_hooks(l); /* e.g. an open group commit: commit it now */
}

static void close_foreign(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) return;
  (*(int *)arg)++;
  uv_close(h, NULL);
}

int rd_loop_close(rd_loop_t *l) {
  if (!l) return 0;
  rd_loop_shutdown(l);
  uv_close((uv_handle_t *)&l->idle, NULL);
  uv_close((uv_handle_t *)&l->prep, NULL);
  uv_close((uv_handle_t *)&l->guard, NULL);
  int foreign = 0;
  uv_walk(&l->uv, close_foreign, &foreign);
  while (uv_loop_close(&l->uv) == UV_EBUSY) uv_run(&l->uv, UV_RUN_ONCE);
  free(l);
  return foreign;
}

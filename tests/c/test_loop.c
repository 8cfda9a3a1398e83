/* The loop's C API as an embedder uses it, without Lua: tasks that park on
 * timers and conditions, cancellation, interruption, before-poll hooks, the
 * main-thread wait, and teardown that leaves no handle behind. */
#include "test.h"

#include "redrive.h"

#include <stdint.h>
#include <uv.h>

static rd_loop_t *new_loop(void) {
  rd_loop_t *l = NULL;
  rd_err err = {0};
  ASSERT_OK(rd_loop_new(&l, &err));
  return l;
}

/* An event log the tests compare with what they expect. */
static char events[512];
static void ev(const char *s) {
  size_t n = strlen(events);
  snprintf(events + n, sizeof events - n, "%s%s", n ? " " : "", s);
}

/* ---- a task that sleeps `n` times `ms` each, counting its steps ---- */

typedef struct {
  rd_loop_t *loop;
  int n, ms;
  int steps;          /* calls of its function */
  int depth;          /* > 1 would be a re-entrant call */
  int max_depth;
  int canceled;       /* a wait ended with RD_ECANCELED */
  rd_wait_t *w;
  const char *name;
  rd_task_t *task;
} sleeper;

static void sleeper_fn(rd_task_t *t, void *ud) {
  sleeper *s = ud;
  if (++s->depth > s->max_depth) s->max_depth = s->depth;
  s->steps++;
  if (s->w) {
    if (s->w->status == RD_ECANCELED) s->canceled++;
    rd_wait_release(s->w);
    s->w = NULL;
  }
  if (s->n > 0 && !s->canceled) {
    s->n--;
    ASSERT_OK(rd_wait_timer(s->loop, (uint64_t)s->ms, &s->w, NULL));
    rd_task_park(t, s->w);
  } else if (s->name) {
    ev(s->name);
  }
  s->depth--;
}

RD_TEST(loop_tasks_park_on_timers_and_the_loop_closes_clean) {
  rd_loop_t *l = new_loop();
  sleeper a = {.loop = l, .n = 3, .ms = 1}, b = {.loop = l, .n = 1, .ms = 2};
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &a, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &b, NULL, NULL));
  ASSERT_INT_EQ(rd_loop_tasks(l), 2);
  ASSERT_INT_EQ(a.steps, 0); /* a task never runs inside rd_task_spawn */
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(a.steps, 4);
  ASSERT_INT_EQ(b.steps, 2);
  ASSERT_INT_EQ(a.max_depth, 1);
  ASSERT_INT_EQ(rd_loop_tasks(l), 0);
  ASSERT_INT_EQ(rd_loop_close(l), 0); /* no handle left behind */
}

/* ---- cancellation ---- */

typedef struct {
  rd_task_t *victim;
  int result;
} canceller;

static void canceller_fn(rd_task_t *t, void *ud) {
  (void)t;
  canceller *c = ud;
  c->result = rd_task_cancel(c->victim);
}

RD_TEST(loop_task_cancel_completes_the_wait_with_canceled) {
  rd_loop_t *l = new_loop();
  sleeper s = {.loop = l, .n = 1, .ms = 60000};
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &s, &s.task, NULL));
  canceller c = {.victim = s.task};
  /* spawned second: runs after the sleeper has parked */
  ASSERT_OK(rd_task_spawn(l, canceller_fn, &c, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(c.result, 1);
  ASSERT_INT_EQ(s.canceled, 1);
  ASSERT_INT_EQ(s.steps, 2);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* The cancel callback runs once, before the wait completes, and a late
 * completion of the stopped operation is ignored. */
typedef struct {
  rd_wait_t base;
  int cancels, releases;
} probe_wait;

static void probe_cancel(rd_wait_t *w) { ((probe_wait *)w)->cancels++; }
static void probe_release(rd_wait_t *w) { ((probe_wait *)w)->releases++; }

RD_TEST(loop_wait_cancel_calls_cancel_once_and_first_completion_wins) {
  probe_wait p;
  rd_wait_init(&p.base, probe_cancel, probe_release);
  p.cancels = p.releases = 0;
  rd_wait_cancel(&p.base);
  rd_wait_cancel(&p.base);
  rd_wait_done(&p.base, 0); /* too late: already cancelled */
  ASSERT_INT_EQ(p.cancels, 1);
  ASSERT_INT_EQ(p.base.status, RD_ECANCELED);
  rd_wait_release(&p.base);
  ASSERT_INT_EQ(p.releases, 1);
  rd_wait_t done;
  rd_wait_init(&done, NULL, NULL);
  rd_wait_done(&done, RD_ETIMEOUT);
  rd_wait_cancel(&done); /* a finished wait stays finished */
  ASSERT_INT_EQ(done.status, RD_ETIMEOUT);
  rd_wait_release(&done); /* NULL release: nothing to free */
}

/* After rd_loop_interrupt every parked wait fails, and so does every wait
 * started later, until the interrupt is cleared. */
typedef struct {
  rd_loop_t *loop;
  int phase, canceled_late;
  rd_wait_t *w;
} late;

static void late_fn(rd_task_t *t, void *ud) {
  late *s = ud;
  if (s->w) {
    if (s->w->status == RD_ECANCELED && s->phase == 2) s->canceled_late = 1;
    rd_wait_release(s->w);
    s->w = NULL;
  }
  if (s->phase++ < 2) {
    ASSERT_OK(rd_wait_timer(s->loop, 60000, &s->w, NULL));
    rd_task_park(t, s->w);
  }
}

static void interrupter_fn(rd_task_t *t, void *ud) {
  (void)t;
  rd_loop_interrupt(ud);
}

RD_TEST(loop_interrupt_cancels_parked_and_later_waits) {
  rd_loop_t *l = new_loop();
  sleeper s = {.loop = l, .n = 5, .ms = 60000};
  late lt = {.loop = l};
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &s, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, late_fn, &lt, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, interrupter_fn, l, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL)); /* stops: interrupted */
  ASSERT(rd_loop_interrupted(l));
  ASSERT_INT_EQ(rd_loop_drain(l, 5000), 0); /* the tasks unwind */
  ASSERT_INT_EQ(s.canceled, 1);
  ASSERT_INT_EQ(s.steps, 2);
  ASSERT_INT_EQ(lt.canceled_late, 1); /* its second wait failed at once */
  rd_loop_clear_interrupt(l);
  sleeper again = {.loop = l, .n = 1, .ms = 1};
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &again, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(again.canceled, 0);
  ASSERT_INT_EQ(again.steps, 2);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* ---- never re-entrant: completing a wait only queues its task ---- */

typedef struct {
  rd_cond_t cond;
  rd_wait_t *w;
  int in_signaller;   /* the signalling task is inside its function */
  int woke_inside;    /* the waiter ran while it was */
  int woken;
} pair;

static void waiter_fn(rd_task_t *t, void *ud) {
  pair *p = ud;
  if (p->w) {
    if (p->in_signaller) p->woke_inside = 1;
    p->woken = p->w->status == 0;
    rd_wait_release(p->w);
    p->w = NULL;
    return;
  }
  ASSERT_OK(rd_wait_cond(&p->cond, &p->w, NULL));
  rd_task_park(t, p->w);
}

static void signaller_fn(rd_task_t *t, void *ud) {
  (void)t;
  pair *p = ud;
  p->in_signaller = 1;
  ASSERT_INT_EQ(rd_cond_signal(&p->cond), 1);
  p->in_signaller = 0;
}

RD_TEST(loop_a_completed_wait_resumes_its_task_later_never_inside_the_caller) {
  rd_loop_t *l = new_loop();
  pair p = {0};
  rd_cond_init(&p.cond);
  ASSERT_OK(rd_task_spawn(l, waiter_fn, &p, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, signaller_fn, &p, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(p.woken, 1);
  ASSERT_INT_EQ(p.woke_inside, 0);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* rd_cond_signal wakes the oldest waiter; a cancelled one leaves the queue. */
typedef struct {
  rd_cond_t *cond;
  rd_wait_t *w;
  const char *name;
  rd_task_t *task;
} cwaiter;

static void cwaiter_fn(rd_task_t *t, void *ud) {
  cwaiter *c = ud;
  if (c->w) {
    ev(c->w->status == RD_ECANCELED ? "canceled" : c->name);
    rd_wait_release(c->w);
    c->w = NULL;
    return;
  }
  ASSERT_OK(rd_wait_cond(c->cond, &c->w, NULL));
  rd_task_park(t, c->w);
}

typedef struct {
  rd_cond_t *cond;
  rd_task_t *cancel;
  int step;
  rd_wait_t *w;
  rd_loop_t *loop;
} conductor;

static void conductor_fn(rd_task_t *t, void *ud) {
  conductor *c = ud;
  if (c->w) {
    rd_wait_release(c->w);
    c->w = NULL;
  }
  switch (c->step++) {
  case 0:
    ASSERT_INT_EQ(rd_task_cancel(c->cancel), 1); /* "b" leaves the queue */
    ASSERT_INT_EQ(rd_cond_signal(c->cond), 1);   /* wakes "a" */
    rd_task_yield(t);
    break;
  case 1:
    ASSERT_INT_EQ(rd_cond_broadcast(c->cond), 2); /* "c" and "d" */
    ASSERT_INT_EQ(rd_cond_signal(c->cond), 0);
    break;
  }
}

RD_TEST(loop_cond_signal_is_fifo_and_cancel_leaves_the_queue) {
  rd_loop_t *l = new_loop();
  rd_cond_t cond;
  rd_cond_init(&cond);
  events[0] = 0;
  cwaiter w[4] = {{&cond, NULL, "a", NULL}, {&cond, NULL, "b", NULL},
                  {&cond, NULL, "c", NULL}, {&cond, NULL, "d", NULL}};
  for (int i = 0; i < 4; i++) ASSERT_OK(rd_task_spawn(l, cwaiter_fn, &w[i], &w[i].task, NULL));
  conductor c = {.cond = &cond, .cancel = w[1].task, .loop = l};
  ASSERT_OK(rd_task_spawn(l, conductor_fn, &c, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_STR_EQ(events, "canceled a c d");
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* A cancel that reaches a task while it is not parked (queued to run: its
 * wait has just ended) is kept for the next wait it parks on: dropped, the
 * task would run on unbounded (an rd.each worker whose poll answered in the
 * loop turn its caller was cancelled in kept polling for minutes). */
typedef struct {
  rd_cond_t *first;  /* its first wait */
  int then_ms;       /* its second: a timer of then_ms, or a cond never signalled if < 0 */
  rd_cond_t never;
  int step;
  rd_wait_t *w;
  rd_loop_t *loop;
  rd_task_t *task;
} stepper;

static void stepper_fn(rd_task_t *t, void *ud) {
  stepper *s = ud;
  if (s->w) {
    ev(s->w->status == RD_ECANCELED ? "canceled" : "ok");
    rd_wait_release(s->w);
    s->w = NULL;
  }
  switch (s->step++) {
  case 0:
    ASSERT_OK(rd_wait_cond(s->first, &s->w, NULL));
    break;
  case 1:
    if (s->then_ms >= 0) ASSERT_OK(rd_wait_timer(s->loop, (uint64_t)s->then_ms, &s->w, NULL));
    else ASSERT_OK(rd_wait_cond(&s->never, &s->w, NULL));
    break;
  default:
    return;
  }
  rd_task_park(t, s->w);
}

typedef struct {
  stepper *victim;
  int signal_first;  /* wake the victim's first wait before cancelling */
  int cancels;       /* how many times to cancel it */
  int results[2];
} boss;

static void boss_fn(rd_task_t *t, void *ud) {
  (void)t;
  boss *b = ud;
  if (b->signal_first) ASSERT_INT_EQ(rd_cond_signal(b->victim->first), 1);
  for (int i = 0; i < b->cancels; i++) b->results[i] = rd_task_cancel(b->victim->task);
}

RD_TEST(loop_cancel_of_a_task_queued_to_run_cancels_its_next_wait) {
  rd_loop_t *l = new_loop();
  rd_cond_t first;
  rd_cond_init(&first);
  events[0] = 0;
  stepper s = {.first = &first, .then_ms = -1, .loop = l};
  rd_cond_init(&s.never);
  ASSERT_OK(rd_task_spawn(l, stepper_fn, &s, &s.task, NULL));
  /* spawned second: runs after the stepper has parked; wakes it, so it is
   * queued to run (not parked) when the cancel comes */
  boss b = {.victim = &s, .signal_first = 1, .cancels = 1};
  ASSERT_OK(rd_task_spawn(l, boss_fn, &b, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(b.results[0], 1);
  /* the wait that had ended keeps its outcome; the next one is cancelled,
   * so the stepper ends instead of waiting for ever */
  ASSERT_STR_EQ(events, "ok canceled");
  ASSERT_INT_EQ(rd_loop_tasks(l), 0);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

RD_TEST(loop_a_second_cancel_before_the_task_ran_does_not_cancel_its_next_wait) {
  rd_loop_t *l = new_loop();
  rd_cond_t first;
  rd_cond_init(&first);
  events[0] = 0;
  stepper s = {.first = &first, .then_ms = 1, .loop = l};
  ASSERT_OK(rd_task_spawn(l, stepper_fn, &s, &s.task, NULL));
  boss b = {.victim = &s, .signal_first = 0, .cancels = 2};
  ASSERT_OK(rd_task_spawn(l, boss_fn, &b, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  /* the first cancels its wait; the second finds it queued to see that
   * cancellation, so its clean-up wait (the timer) runs to its end */
  ASSERT_INT_EQ(b.results[0], 1);
  ASSERT_INT_EQ(b.results[1], 0);
  ASSERT_STR_EQ(events, "canceled ok");
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* ---- before-poll hooks ---- */

typedef struct {
  rd_hook_t hook;   /* first */
  const char *name;
  rd_hook_t *then;  /* scheduled from inside this hook */
  rd_loop_t *loop;
  rd_cond_t *wake;  /* woken by this hook (a group commit's waiters) */
} named_hook;

static void hook_fn(rd_hook_t *h) {
  named_hook *n = (named_hook *)h;
  ev(n->name);
  if (n->then) rd_loop_before_poll(n->loop, n->then);
  if (n->wake) rd_cond_broadcast(n->wake);
}

typedef struct {
  rd_loop_t *loop;
  const char *name;
  named_hook *hooks[3];
  rd_cond_t *cond;
  rd_wait_t *w;
} scheduler;

/* Schedules its hooks, parks until a hook wakes it, then logs "name:after". */
static void scheduler_fn(rd_task_t *t, void *ud) {
  scheduler *s = ud;
  if (s->w) {
    rd_wait_release(s->w);
    s->w = NULL;
    char buf[32];
    snprintf(buf, sizeof buf, "%s:after", s->name);
    ev(buf);
    return;
  }
  ev(s->name);
  for (int i = 0; i < 3 && s->hooks[i]; i++) rd_loop_before_poll(s->loop, &s->hooks[i]->hook);
  ASSERT_OK(rd_wait_cond(s->cond, &s->w, NULL));
  rd_task_park(t, s->w);
}

RD_TEST(loop_hooks_run_once_in_order_after_the_ready_tasks) {
  rd_loop_t *l = new_loop();
  rd_cond_t cond;
  rd_cond_init(&cond);
  events[0] = 0;
  named_hook late = {.name = "C", .loop = l, .wake = &cond};
  named_hook a = {.name = "A", .loop = l}, b = {.name = "B", .loop = l, .then = &late.hook};
  a.hook.fn = b.hook.fn = late.hook.fn = hook_fn;
  /* t1 schedules A then B, t2 schedules B (already scheduled) then A */
  scheduler t1 = {.loop = l, .name = "t1", .hooks = {&a, &b}, .cond = &cond};
  scheduler t2 = {.loop = l, .name = "t2", .hooks = {&b, &a}, .cond = &cond};
  ASSERT_OK(rd_task_spawn(l, scheduler_fn, &t1, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, scheduler_fn, &t2, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  /* both tasks first, each hook once in scheduling order, a hook scheduled
   * by a hook in the same pass, the woken tasks after */
  ASSERT_STR_EQ(events, "t1 t2 A B C t1:after t2:after");
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

RD_TEST(loop_hook_cancel_and_run_hooks_now) {
  rd_loop_t *l = new_loop();
  events[0] = 0;
  named_hook a = {.name = "A", .loop = l}, b = {.name = "B", .loop = l}, c = {.name = "C", .loop = l};
  a.hook.fn = b.hook.fn = c.hook.fn = hook_fn;
  rd_loop_before_poll(l, &a.hook);
  rd_loop_before_poll(l, &b.hook);
  rd_loop_before_poll(l, &c.hook);
  rd_hook_cancel(&b.hook);
  rd_hook_cancel(&b.hook); /* not scheduled: a no-op */
  rd_loop_run_hooks(l);
  ASSERT_STR_EQ(events, "A C");
  rd_loop_before_poll(l, &b.hook); /* runs at close, before the loop goes */
  ASSERT_INT_EQ(rd_loop_close(l), 0);
  ASSERT_STR_EQ(events, "A C B");
}

/* ---- the main thread's wait ---- */

RD_TEST(loop_wait_outside_tasks_runs_the_loop_until_done) {
  rd_loop_t *l = new_loop();
  sleeper s = {.loop = l, .n = 2, .ms = 1};
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &s, NULL, NULL));
  rd_wait_t *w;
  ASSERT_OK(rd_wait_timer(l, 5, &w, NULL));
  rd_err err = {0};
  ASSERT_OK(rd_loop_wait(l, w, &err));
  ASSERT_INT_EQ(w->status, 0);
  rd_wait_release(w);
  /* nothing can complete a condition wait nobody signals: an error, and the
   * wait is cancelled instead of blocking forever */
  ASSERT_OK(rd_loop_run(l, NULL));
  rd_cond_t cond;
  rd_cond_init(&cond);
  ASSERT_OK(rd_wait_cond(&cond, &w, NULL));
  ASSERT_INT_EQ(rd_loop_wait(l, w, &err), RD_EINVALID);
  ASSERT_CONTAINS(err.msg, "deadlock");
  ASSERT_INT_EQ(w->status, RD_ECANCELED);
  ASSERT(cond.head == NULL);
  rd_wait_release(w);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

typedef struct {
  rd_loop_t *loop;
  int run, wait;
} nester;

static void nester_fn(rd_task_t *t, void *ud) {
  (void)t;
  nester *n = ud;
  rd_err err = {0};
  n->run = rd_loop_run(n->loop, &err);
  rd_wait_t w;
  rd_wait_init(&w, NULL, NULL);
  n->wait = rd_loop_wait(n->loop, &w, &err);
  ASSERT_CONTAINS(err.msg, "inside a task");
  ASSERT(rd_loop_current(n->loop) == t);
}

RD_TEST(loop_refuses_to_run_from_inside_a_task) {
  rd_loop_t *l = new_loop();
  nester n = {.loop = l};
  ASSERT_OK(rd_task_spawn(l, nester_fn, &n, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_INT_EQ(n.run, RD_EBUSY);
  ASSERT_INT_EQ(n.wait, RD_EBUSY);
  ASSERT(rd_loop_current(l) == NULL);
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* ---- yield ---- */

typedef struct {
  const char *name;
  int left;
} yielder;

static void yielder_fn(rd_task_t *t, void *ud) {
  yielder *y = ud;
  ev(y->name);
  if (--y->left > 0) rd_task_yield(t);
}

RD_TEST(loop_yield_lets_the_other_ready_tasks_run_first) {
  rd_loop_t *l = new_loop();
  events[0] = 0;
  yielder a = {"a", 3}, b = {"b", 2};
  ASSERT_OK(rd_task_spawn(l, yielder_fn, &a, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, yielder_fn, &b, NULL, NULL));
  ASSERT_OK(rd_loop_run(l, NULL));
  ASSERT_STR_EQ(events, "a b a b a");
  ASSERT_INT_EQ(rd_loop_close(l), 0);
}

/* ---- teardown ---- */

static int released;
static void count_release(rd_wait_t *w) {
  released++;
  free(w);
}

static void park_forever(rd_task_t *t, void *ud) {
  (void)ud;
  rd_wait_t *w = malloc(sizeof *w);
  ASSERT(w);
  rd_wait_init(w, NULL, count_release);
  rd_task_park(t, w);
}

RD_TEST(loop_close_drops_parked_tasks_and_releases_their_waits) {
  rd_loop_t *l = new_loop();
  released = 0;
  sleeper s = {.loop = l, .n = 1, .ms = 60000};
  ASSERT_OK(rd_task_spawn(l, sleeper_fn, &s, &s.task, NULL));
  ASSERT_OK(rd_task_spawn(l, park_forever, NULL, NULL, NULL));
  ASSERT_OK(rd_task_spawn(l, park_forever, NULL, NULL, NULL));
  rd_wait_t *w; /* run the loop a little, until they have all parked */
  ASSERT_OK(rd_wait_timer(l, 1, &w, NULL));
  ASSERT_OK(rd_loop_wait(l, w, NULL));
  rd_wait_release(w);
  ASSERT_INT_EQ(rd_task_state(s.task), RD_TASK_PARKED);
  rd_loop_shutdown(l);
  ASSERT_INT_EQ(released, 2);
  ASSERT_INT_EQ(rd_loop_tasks(l), 0);
  ASSERT_INT_EQ(rd_task_spawn(l, park_forever, NULL, NULL, NULL), RD_EBUSY);
  ASSERT_INT_EQ(s.steps, 1); /* never run again */
  ASSERT_INT_EQ(rd_loop_close(l), 0); /* the sleeper's timer closed through its wait */
}

static void closed_cb(uv_handle_t *h) { (void)h; }

RD_TEST(loop_close_reports_handles_others_left_open) {
  rd_loop_t *l = new_loop();
  uv_timer_t t1, t2;
  uv_timer_init(rd_loop_uv(l), &t1);
  uv_timer_init(rd_loop_uv(l), &t2);
  uv_close((uv_handle_t *)&t2, closed_cb); /* closed by its owner: fine */
  ASSERT_INT_EQ(rd_loop_close(l), 1);
  rd_loop_close(NULL);
}

/* Internals shared by the loop's files (src/loop/): the loop and task
 * structs and the ready queue. */
#ifndef RD_LOOP_LOOP_INT_H
#define RD_LOOP_LOOP_INT_H

#include "redrive.h"

#include <uv.h>

struct rd_task {
  rd_loop_t *loop;
  rd_task_fn fn;
  void *ud;
  int state;              /* RD_TASK_* */
  rd_wait_t *wait;        /* what it is parked on, while RD_TASK_PARKED */
  int cancel_owed;        /* cancelled while not parked: its next wait is */
  int woke_canceled;      /* queued after a cancelled wait it has not seen */
  rd_task_t *next_ready;
  rd_task_t *prev_live, *next_live;
};

struct rd_loop {
  uv_loop_t uv;
  uv_idle_t idle;         /* active while tasks are ready: runs them */
  uv_prepare_t prep;      /* active while hooks are scheduled: runs them */
  uv_timer_t guard;       /* wakes rd_loop_drain's polls */
  rd_task_t *ready_head, *ready_tail;
  rd_task_t *live;        /* every unfinished task */
  size_t ntasks;
  rd_task_t *current;     /* whose function runs now */
  rd_hook_t *hooks_head, *hooks_tail;
  rd_wait_t *main_wait;   /* what rd_loop_wait waits for */
  int running;            /* depth of our uv_run calls */
  int interrupted;
  int shut;               /* rd_loop_shutdown ran */
};

/* Queue t to run (state READY) and make sure the idle handle runs it. */
void rd__task_enqueue(rd_task_t *t);
/* The idle callback: run every task that is ready now. */
void rd__loop_run_ready(uv_idle_t *h);
/* Drop every task (rd_loop_shutdown): release parked waits, free all. */
void rd__task_drop_all(rd_loop_t *l);

#endif

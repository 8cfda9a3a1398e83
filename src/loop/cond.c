/*
 * Condition variables: a FIFO of waits that rd_cond_signal completes one at
 * a time (oldest first) and rd_cond_broadcast all at once. Cancelling a
 * wait takes it out of the queue, so a later signal wakes a task that is
 * still waiting.
 */
#include "loop/loop_int.h"

#include <stdlib.h>

struct rd__cond_wait {
  rd_wait_t base;  /* first: the wait is the record */
  struct rd__cond_wait *next;
  rd_cond_t *cond; /* NULL once out of the queue */
};
typedef struct rd__cond_wait cond_wait;

void rd_cond_init(rd_cond_t *c) { c->head = c->tail = NULL; }

static void unlink_wait(rd_wait_t *w) {
  cond_wait *cw = (cond_wait *)w;
  rd_cond_t *c = cw->cond;
  if (!c) return;
  cond_wait *prev = NULL;
  for (cond_wait *p = c->head; p; prev = p, p = p->next) {
    if (p != cw) continue;
    if (prev) prev->next = p->next;
    else c->head = p->next;
    if (c->tail == cw) c->tail = prev;
    break;
  }
  cw->cond = NULL;
}

static void release(rd_wait_t *w) {
  unlink_wait(w);
  free(w);
}

int rd_wait_cond(rd_cond_t *c, rd_wait_t **out, rd_err *err) {
  cond_wait *cw = malloc(sizeof *cw);
  if (!cw) return rd_err_set(err, RD_ENOMEM, "loop: out of memory for a condition wait");
  rd_wait_init(&cw->base, unlink_wait, release);
  cw->next = NULL;
  cw->cond = c;
  if (c->tail) c->tail->next = cw;
  else c->head = cw;
  c->tail = cw;
  *out = &cw->base;
  return 0;
}

static size_t wake(rd_cond_t *c, int all) {
  size_t n = 0;
  while (c->head && (all || n == 0)) {
    cond_wait *cw = c->head;
    c->head = cw->next;
    if (!c->head) c->tail = NULL;
    cw->next = NULL;
    cw->cond = NULL;
    rd_wait_done(&cw->base, 0);
    n++;
  }
  return n;
}

size_t rd_cond_signal(rd_cond_t *c) { return wake(c, 0); }
size_t rd_cond_broadcast(rd_cond_t *c) { return wake(c, 1); }

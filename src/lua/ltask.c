/*
 * Tasks: coroutines scheduled on the runtime's single libuv loop.
 *
 * A task is a userdata (RD_MT_TASK) whose first user value is its thread.
 * While unfinished it is anchored in the registry; its rd_task pointer is
 * kept in a registry table keyed by thread so a waiting C function finds
 * its task. Tasks are resumed only from the idle callback (never
 * re-entrantly from inside another operation's callback). When a task ends,
 * its results stay on its (dead) thread's stack, from which task:wait()
 * copies them; a failure leaves the traceback there instead.
 */
#include "lua/lrd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { T_READY, T_PARKED, T_RUNNING, T_DONE, T_FAILED };

typedef struct join_wait join_wait;

struct rd_task {
  rd_rt *rt;
  lua_State *co;
  int anchor;            /* registry ref while unfinished, else LUA_NOREF */
  int state;
  int nargs;             /* values to pass to the next resume */
  int observed;          /* someone collected the outcome */
  rd_wait *wait;         /* what the task is parked on */
  rd_task *next_ready;
  rd_task *prev_live, *next_live;
  join_wait *joiners;    /* waits of task:wait() callers */
};

struct join_wait {
  rd_wait base;
  rd_task *target;
  join_wait *next;
};

/* Unfinished tasks by thread: registry[RD_TASKS_KEY][thread] = task pointer.
 * (LUA_EXTRASPACE would be faster, but a stock lua5.4 leaves the main
 * thread's copy uninitialised, and every thread created before redrive was
 * loaded inherits that garbage.) */
#define RD_TASKS_KEY "redrive.tasks"

static void set_task_of(lua_State *L, lua_State *co, rd_task *t) {
  lua_checkstack(L, 4);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, RD_TASKS_KEY);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (t) lua_pushlightuserdata(L, t);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* ---- scheduling ------------------------------------------------------------ */

static void on_idle(uv_idle_t *h);

static void enqueue(rd_task *t) {
  rd_rt *rt = t->rt;
  t->next_ready = NULL;
  if (rt->ready_tail) rt->ready_tail->next_ready = t;
  else rt->ready_head = t;
  rt->ready_tail = t;
  t->state = T_READY;
  if (!uv_is_active((uv_handle_t *)&rt->idle)) uv_idle_start(&rt->idle, on_idle);
}

void rd__wait_done(rd_wait *w) {
  if (w->done) return;
  w->done = 1;
  rd_task *t = w->task;
  if (t && t->wait == w) {
    t->wait = NULL;
    enqueue(t);
  }
}

static void unlink_live(rd_task *t) {
  rd_rt *rt = t->rt;
  if (t->prev_live) t->prev_live->next_live = t->next_live;
  else if (rt->all_tasks == t) rt->all_tasks = t->next_live;
  if (t->next_live) t->next_live->prev_live = t->prev_live;
  t->prev_live = t->next_live = NULL;
}

/* The task ended (state set): wake joiners, drop the anchor. */
static void finish(rd_task *t) {
  rd_rt *rt = t->rt;
  for (join_wait *j = t->joiners; j; j = j->next) rd__wait_done(&j->base);
  t->joiners = NULL;
  unlink_live(t);
  set_task_of(rt->L, t->co, NULL);
  rt->ntasks--;
  luaL_unref(rt->L, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
}

/* Keep the error on the dead thread's stack, with a traceback when it is a
 * string, so task:wait() and the failure report can show where. Any other
 * value (rd.canceled, an error table) stays itself: callers compare it. */
static void fail(rd_task *t) {
  lua_State *L = t->rt->L, *co = t->co;
  lua_checkstack(L, 4);
  if (lua_type(co, -1) == LUA_TSTRING) {
    luaL_traceback(L, co, lua_tostring(co, -1), 0);
  } else {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
  }
  lua_resetthread(co); /* runs pending __close handlers */
  lua_xmove(L, co, 1);
  t->state = T_FAILED;
}

static void resume(rd_task *t) {
  lua_State *co = t->co;
  int nres = 0, nargs = t->nargs;
  t->nargs = 0;
  t->state = T_RUNNING;
  int st = lua_resume(co, t->rt->L, nargs, &nres);
  if (st == LUA_YIELD) {
    if (t->wait) {
      t->state = T_PARKED;
    } else { /* a bare coroutine.yield(): let others run, then continue */
      lua_pop(co, nres);
      enqueue(t);
    }
    return;
  }
  if (st == LUA_OK) {
    t->state = T_DONE;
    /* results stay on co's stack; keep exactly them */
    for (int extra_n = lua_gettop(co) - nres; extra_n > 0; extra_n--) lua_remove(co, 1);
  } else {
    fail(t);
  }
  finish(t);
}

static void on_idle(uv_idle_t *h) {
  rd_rt *rt = h->data;
  rd_task *t = rt->ready_head;
  rt->ready_head = rt->ready_tail = NULL;
  while (t) {
    rd_task *next = t->next_ready;
    t->next_ready = NULL;
    resume(t);
    t = next;
  }
  if (!rt->ready_head) uv_idle_stop(&rt->idle);
}

/* ---- waiting ----------------------------------------------------------------- */

rd_task *rd__task_current(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, RD_TASKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_pushthread(L);
  lua_rawget(L, -2);
  rd_task *t = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
}

int rd__wait_check(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  if (rt->closing) return luaL_error(L, "redrive: runtime is closing");
  if (rd__task_current(L)) return 0;
  if (!lua_pushthread(L)) {
    lua_pop(L, 1);
    return luaL_error(L, "redrive: cannot wait inside a coroutine that is not a task "
                         "(run it with rd.spawn, or write the iterator as a closure)");
  }
  lua_pop(L, 1);
  if (rt->running)
    return luaL_error(L, "redrive: cannot block the main thread: the loop is already running");
  return 0;
}

int rd__wait_canceled(lua_State *L) {
  rd__lua_push_canceled(L);
  return lua_error(L);
}

int rd__await(lua_State *L, rd_wait *w, lua_KFunction k) {
  rd_rt *rt = w->rt;
  w->task = rd__task_current(L);
  if (rt->interrupted && !w->done) {
    /* after SIGINT nothing new may start waiting: stop it and unwind */
    if (w->cancel) w->cancel(w);
    w->status = RD_ECANCELED;
    w->done = 1;
  }
  if (w->done) return k(L, LUA_YIELD, (lua_KContext)w);
  if (w->task) {
    w->task->wait = w;
    return lua_yieldk(L, 0, (lua_KContext)w, k);
  }
  /* Main thread of a plain script: run the loop until this one wait ends. */
  rt->running++;
  rt->main_wait = w;
  while (!w->done) {
    if (rt->interrupted) {
      if (w->cancel) w->cancel(w);
      w->status = RD_ECANCELED;
      w->done = 1;
      break;
    }
    if (!uv_run(&rt->loop, UV_RUN_ONCE) && !w->done && !rt->ready_head) {
      if (w->cancel) w->cancel(w);
      w->status = RD_ECANCELED;
      w->done = 1;
      rt->main_wait = NULL;
      rt->running--;
      w->release(w);
      return luaL_error(L, "redrive: deadlock: nothing left that could finish this wait");
    }
  }
  rt->main_wait = NULL;
  rt->running--;
  return k(L, LUA_YIELD, (lua_KContext)w);
}

void rd__rt_interrupt(rd_rt *rt) {
  rt->interrupted = 1;
  if (rt->main_wait && !rt->main_wait->done) {
    rd_wait *w = rt->main_wait;
    if (w->cancel) w->cancel(w);
    w->status = RD_ECANCELED;
    w->done = 1;
  }
  for (rd_task *t = rt->all_tasks; t; t = t->next_live) {
    rd_wait *w = t->wait;
    if (!w) continue;
    if (w->cancel) w->cancel(w);
    w->status = RD_ECANCELED;
    rd__wait_done(w);
  }
}

/* ---- task objects ------------------------------------------------------------- */

static rd_task *check_task(lua_State *L, int i) {
  return luaL_checkudata(L, i, RD_MT_TASK);
}

/* rd.spawn(fn, ...) -> task */
static int l_task_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  rd_rt *rt = rd__rt(L);
  if (rt->closing) return luaL_error(L, "redrive: runtime is closing");
  int n = lua_gettop(L);
  rd_task *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  t->anchor = LUA_NOREF;
  luaL_setmetatable(L, RD_MT_TASK);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  /* fn and its arguments become the thread's initial stack */
  lua_checkstack(co, n);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, n);
  t->rt = rt;
  t->co = co;
  set_task_of(L, co, t);
  t->nargs = n - 1;
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  t->next_live = rt->all_tasks;
  if (rt->all_tasks) rt->all_tasks->prev_live = t;
  rt->all_tasks = t;
  rt->ntasks++;
  enqueue(t);
  return 1;
}

static void join_cancel(rd_wait *w) {
  join_wait *j = (join_wait *)w;
  for (join_wait **p = &j->target->joiners; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
}

static void join_release(rd_wait *w) { free(w); }

/* [-0, +n] push the outcome of a finished task: its results, or nil, err. */
static int push_outcome(lua_State *L, rd_task *t) {
  lua_State *co = t->co;
  t->observed = 1;
  if (t->state == T_FAILED) {
    lua_pushnil(L);
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    return 2;
  }
  int n = lua_gettop(co);
  luaL_checkstack(L, n, "too many results");
  lua_checkstack(co, n);
  for (int i = 1; i <= n; i++) lua_pushvalue(co, i);
  lua_xmove(co, L, n);
  return n;
}

static int join_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  join_wait *j = (join_wait *)ctx;
  int st = j->base.status;
  rd_task *t = j->target;
  free(j);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  return push_outcome(L, t);
}

/* task:wait() -> results of fn | nil, err */
static int l_task_wait(lua_State *L) {
  rd_task *t = check_task(L, 1);
  if (t->state == T_DONE || t->state == T_FAILED) return push_outcome(L, t);
  if (rd__task_current(L) == t) return luaL_error(L, "a task cannot wait for itself");
  rd__wait_check(L);
  join_wait *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "out of memory");
  j->base.rt = t->rt;
  j->base.cancel = join_cancel;
  j->base.release = join_release;
  j->target = t;
  j->next = t->joiners;
  t->joiners = j;
  lua_settop(L, 1); /* keeps the target alive while we wait */
  return rd__await(L, &j->base, join_done);
}

/* task:status() -> "ready" | "waiting" | "running" | "done" | "failed" */
static int l_task_status(lua_State *L) {
  static const char *const names[] = {"ready", "waiting", "running", "done", "failed"};
  rd_task *t = check_task(L, 1);
  lua_pushstring(L, names[t->state]);
  return 1;
}

/* task:cancel(): stop what the task waits on; the wait raises rd.canceled. */
static int l_task_cancel(lua_State *L) {
  rd_task *t = check_task(L, 1);
  rd_wait *w = t->wait;
  if (w) {
    if (w->cancel) w->cancel(w);
    w->status = RD_ECANCELED;
    rd__wait_done(w);
  }
  lua_pushboolean(L, w != NULL);
  return 1;
}

static int l_task_tostring(lua_State *L) {
  rd_task *t = check_task(L, 1);
  lua_pushfstring(L, "redrive.Task (%p)", (void *)t);
  return 1;
}

/* A failed task that nobody waited for is reported, never silently dropped. */
static int l_task_gc(lua_State *L) {
  rd_task *t = check_task(L, 1);
  if (t->state == T_FAILED && !t->observed) {
    t->observed = 1;
    lua_getiuservalue(L, 1, 1);
    lua_State *co = lua_tothread(L, -1);
    const char *msg = co ? luaL_tolstring(co, -1, NULL) : "?";
    fprintf(stderr, "redrive: a task failed and nobody waited for it: %s\n", msg);
    fflush(stderr);
  }
  return 0;
}

/* rd.sleep(seconds) */
typedef struct {
  rd_wait base;
  uv_timer_t timer;
} sleep_wait;

static void sleep_fire(uv_timer_t *h) { rd__wait_done(h->data); }
static void sleep_cancel(rd_wait *w) { uv_timer_stop(&((sleep_wait *)w)->timer); }
static void sleep_closed(uv_handle_t *h) { free(h->data); }
static void sleep_release(rd_wait *w) {
  uv_close((uv_handle_t *)&((sleep_wait *)w)->timer, sleep_closed);
}

static int sleep_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  rd_wait *w = (rd_wait *)ctx;
  int st = w->status;
  w->release(w);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  return 0;
}

static int l_task_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  rd_err err = {0};
  /* rd.sleep has no failure to return: a bad duration is misuse, raised */
  if (rd__num_check(s, "seconds", &rd__range_seconds, &err)) luaL_argerror(L, 1, err.msg);
  rd__wait_check(L);
  rd_rt *rt = rd__rt(L);
  sleep_wait *w = calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "out of memory");
  w->base.rt = rt;
  w->base.cancel = sleep_cancel;
  w->base.release = sleep_release;
  uv_timer_init(&rt->loop, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, sleep_fire, (uint64_t)(s * 1000.0 + 0.5), 0);
  return rd__await(L, &w->base, sleep_done);
}

/* rd.now() -> loop time in seconds */
static int l_task_now(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  uv_update_time(&rt->loop);
  lua_pushnumber(L, (double)uv_now(&rt->loop) / 1000.0);
  return 1;
}

/* rd.time() -> wall-clock Unix time in seconds (float) */
static int l_task_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

int rd__rt_run(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  if (rt->running) return luaL_error(L, "redrive: rd.run: the loop is already running");
  rt->running++;
  while (rt->ntasks > 0 || rt->ready_head) {
    if (rt->interrupted) break;
    if (!uv_run(&rt->loop, UV_RUN_ONCE) && !rt->ready_head) break;
  }
  rt->running--;
  return 0;
}

/* rd.run(): run the loop until no task is left */
static int l_task_run(lua_State *L) {
  rd__rt_run(L);
  return 0;
}

/* ---- before-poll hooks ------------------------------------------------------------ */

static void unlink_hook(rd_rt *rt, rd_hook *h) {
  if (h->prev) h->prev->next = h->next;
  else rt->hooks = h->next;
  if (h->next) h->next->prev = h->prev;
  h->prev = h->next = NULL;
  h->linked = 0;
}

static void on_prepare(uv_prepare_t *p) {
  rd_rt *rt = p->data;
  rd__rt_run_hooks(rt);
  uv_prepare_stop(&rt->prep);
}

void rd__rt_before_poll(rd_rt *rt, rd_hook *h) {
  if (h->linked) return;
  h->prev = NULL;
  h->next = rt->hooks;
  if (rt->hooks) rt->hooks->prev = h;
  rt->hooks = h;
  h->linked = 1;
  if (!uv_is_active((uv_handle_t *)&rt->prep)) {
    if (!uv_is_closing((uv_handle_t *)&rt->prep)) uv_prepare_start(&rt->prep, on_prepare);
  }
}

void rd__rt_run_hooks(rd_rt *rt) {
  while (rt->hooks) {
    rd_hook *h = rt->hooks;
    unlink_hook(rt, h);
    h->fn(h);
  }
}

void rd__rt_cancel_hook(rd_rt *rt, rd_hook *h) {
  if (h->linked) unlink_hook(rt, h);
}

/* Tasks parked at teardown: cancel and free their waits. */
void rd__rt_cancel_all(rd_rt *rt) {
  for (rd_task *t = rt->all_tasks; t; t = t->next_live) {
    rd_wait *w = t->wait;
    if (!w) continue;
    t->wait = NULL;
    if (w->cancel) w->cancel(w);
    w->status = RD_ECANCELED;
    w->release(w);
  }
}

/* ---- conditions: rd.cond() parks tasks until signalled ------------------------- */

typedef struct cond_wait {
  rd_wait base;
  struct cond_wait *next;
  struct cond *cv;
} cond_wait;

typedef struct cond {
  cond_wait *head, *tail;
} cond;

static void cond_unlink(rd_wait *w) {
  cond_wait *c = (cond_wait *)w;
  if (!c->cv) return;
  cond_wait *prev = NULL;
  for (cond_wait *p = c->cv->head; p; prev = p, p = p->next)
    if (p == c) {
      if (prev) prev->next = p->next;
      else c->cv->head = p->next;
      if (c->cv->tail == c) c->cv->tail = prev;
      break;
    }
  c->cv = NULL;
}

static void cond_release(rd_wait *w) { free(w); }

static int cond_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  cond_wait *c = (cond_wait *)ctx;
  int st = c->base.status;
  free(c);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  return 0;
}

/* cv:wait(): park until cv:signal() or cv:broadcast() */
static int l_cond_wait(lua_State *L) {
  cond *cv = luaL_checkudata(L, 1, RD_MT_COND);
  rd__wait_check(L);
  cond_wait *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "out of memory");
  c->base.rt = rd__rt(L);
  c->base.cancel = cond_unlink;
  c->base.release = cond_release;
  c->cv = cv;
  if (cv->tail) cv->tail->next = c;
  else cv->head = c;
  cv->tail = c;
  lua_settop(L, 1); /* keeps cv alive while parked */
  return rd__await(L, &c->base, cond_done);
}

static int wake(lua_State *L, int all) {
  cond *cv = luaL_checkudata(L, 1, RD_MT_COND);
  int n = 0;
  while (cv->head && (all || n == 0)) {
    cond_wait *c = cv->head;
    cv->head = c->next;
    if (!cv->head) cv->tail = NULL;
    c->cv = NULL;
    rd__wait_done(&c->base);
    n++;
  }
  lua_pushinteger(L, n);
  return 1;
}

/* cv:signal() -> n woken (0 or 1); cv:broadcast() -> n woken */
static int l_cond_signal(lua_State *L) { return wake(L, 0); }
static int l_cond_broadcast(lua_State *L) { return wake(L, 1); }

/* rd.cond() -> cv */
static int l_task_cond(lua_State *L) {
  cond *cv = lua_newuserdatauv(L, sizeof *cv, 0);
  cv->head = cv->tail = NULL;
  luaL_setmetatable(L, RD_MT_COND);
  return 1;
}

static const luaL_Reg cond_methods[] = {
  {"wait", l_cond_wait}, {"signal", l_cond_signal}, {"broadcast", l_cond_broadcast},
  {NULL, NULL},
};

static const luaL_Reg task_funcs[] = {
  {"cond", l_task_cond},
  {"spawn", l_task_spawn}, {"sleep", l_task_sleep}, {"now", l_task_now},
  {"time", l_task_time}, {"run", l_task_run}, {NULL, NULL},
};

static const luaL_Reg task_methods[] = {
  {"wait", l_task_wait}, {"status", l_task_status}, {"cancel", l_task_cancel}, {NULL, NULL},
};

static const luaL_Reg task_meta[] = {
  {"__tostring", l_task_tostring}, {"__gc", l_task_gc}, {NULL, NULL},
};

void rd__open_task(lua_State *L) {
  luaL_newmetatable(L, RD_MT_TASK);
  luaL_setfuncs(L, task_meta, 0);
  luaL_newlib(L, task_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, RD_MT_COND);
  luaL_newlib(L, cond_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, task_funcs, 0);
}

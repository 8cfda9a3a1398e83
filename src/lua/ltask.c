/*
 * Tasks for Lua: a coroutine mapped onto an rd_task_t of the runtime's loop
 * (src/loop does the scheduling, waits, cancellation and hooks).
 *
 * A task is a userdata (RD_MT_TASK) whose first user value is its thread.
 * While unfinished it is anchored in the registry, and found from its
 * thread through a registry table so that a waiting C function finds its
 * task. The loop runs step() for it, never re-entrantly; step() resumes the
 * coroutine. When the coroutine ends, its results stay on its (dead)
 * thread's stack, from which task:wait() copies them; a failure leaves the
 * error there instead (with a traceback when it is a string).
 */
#include "lua/lrd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { L_LIVE, L_DONE, L_FAILED };

typedef struct join_wait join_wait;

typedef struct ltask {
  rd_rt *rt;
  rd_task_t *t;          /* NULL once the coroutine has ended */
  lua_State *co;
  int anchor;            /* registry ref while unfinished, else LUA_NOREF */
  int end;               /* L_* */
  int nargs;             /* values to pass to the next resume */
  int observed;          /* someone collected the outcome */
  join_wait *joiners;    /* waits of task:wait() callers */
  rd_sbx_run *guard;     /* the sandboxed run its code is in (lsandbox.c), or NULL */
} ltask;

struct join_wait {
  rd_wait_t base;
  ltask *target;
  join_wait *next;
};

/* Unfinished tasks by thread: registry[RD_TASKS_KEY][thread] = ltask.
 * (LUA_EXTRASPACE would be faster, but a stock lua5.4 leaves the main
 * thread's copy uninitialised, and every thread created before redrive was
 * loaded inherits that garbage.) */
#define RD_TASKS_KEY "redrive.tasks"

static void set_task_of(lua_State *L, lua_State *co, ltask *t) {
  lua_checkstack(L, 4);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, RD_TASKS_KEY);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (t) lua_pushlightuserdata(L, t);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* The task whose thread is L, or NULL (main thread, plain coroutine). */
static ltask *current(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, RD_TASKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_pushthread(L);
  lua_rawget(L, -2);
  ltask *t = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
}

int rd__in_task(lua_State *L) { return current(L) != NULL; }

void rd__task_set_guard(lua_State *L, rd_sbx_run *g) {
  ltask *t = current(L);
  if (t) t->guard = g;
}

/* ---- running ------------------------------------------------------------------ */

/* The coroutine ended (t->end set): wake joiners, drop the anchor. */
static void finish(ltask *t) {
  rd_rt *rt = t->rt;
  for (join_wait *j = t->joiners; j; j = j->next) rd_wait_done(&j->base, 0);
  t->joiners = NULL;
  t->t = NULL; /* the loop frees it when step() returns */
  set_task_of(rt->L, t->co, NULL);
  luaL_unref(rt->L, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
}

/* Keep the error on the dead thread's stack, with a traceback when it is a
 * string, so task:wait() and the failure report can show where. Any other
 * value (rd.canceled, an error table) stays itself: callers compare it. */
static void fail(ltask *t) {
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
  t->end = L_FAILED;
}

/* The loop runs the task: resume its coroutine once. */
static void step(rd_task_t *rt_task, void *ud) {
  ltask *t = ud;
  lua_State *co = t->co;
  int nres = 0, nargs = t->nargs;
  t->nargs = 0;
  /* a sandboxed run's clock, hook and string methods follow its code: on
   * while it runs, off while it is parked or queued */
  rd_sbx_run *outer = rd__sbx_current();
  rd__sbx_switch(co, t->guard);
  int st = lua_resume(co, t->rt->L, nargs, &nres);
  rd__sbx_switch(NULL, outer);
  if (st == LUA_YIELD) {
    /* parked by rd__await; else a bare coroutine.yield(): let others run */
    if (rd_task_state(rt_task) == RD_TASK_RUNNING) {
      lua_pop(co, nres);
      rd_task_yield(rt_task);
    }
    return;
  }
  if (st == LUA_OK) {
    t->end = L_DONE;
    /* results stay on co's stack; keep exactly them */
    for (int extra_n = lua_gettop(co) - nres; extra_n > 0; extra_n--) lua_remove(co, 1);
  } else {
    fail(t);
  }
  finish(t);
}

/* ---- waiting ----------------------------------------------------------------- */

int rd__wait_check(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  if (rt->closing) return luaL_error(L, "redrive: runtime is closing");
  if (current(L)) return 0;
  if (!lua_pushthread(L)) {
    lua_pop(L, 1);
    return luaL_error(L, "redrive: cannot wait inside a coroutine that is not a task "
                         "(run it with rd.spawn, or write the iterator as a closure)");
  }
  lua_pop(L, 1);
  if (rd_loop_running(rt->loop))
    return luaL_error(L, "redrive: cannot block the main thread: the loop is already running");
  return 0;
}

int rd__wait_canceled(lua_State *L) {
  rd__lua_push_canceled(L);
  return lua_error(L);
}

int rd__await(lua_State *L, rd_wait_t *w, lua_KFunction k) {
  if (w->done) return k(L, LUA_YIELD, (lua_KContext)w); /* finished already */
  ltask *t = current(L);
  if (t) {
    rd_task_park(t->t, w);
    return lua_yieldk(L, 0, (lua_KContext)w, k);
  }
  /* The main thread of a plain script: run the loop until this one wait
   * ends. A sandboxed run waiting here is not running meanwhile. */
  rd_err err = {0};
  rd_sbx_run *run = rd__sbx_current();
  rd__sbx_switch(L, NULL);
  int rc = rd_loop_wait(rd__rt(L)->loop, w, &err);
  rd__sbx_switch(L, run);
  if (rc != 0) {
    rd_wait_release(w);
    return luaL_error(L, "redrive: %s", err.msg);
  }
  return k(L, LUA_YIELD, (lua_KContext)w);
}

/* ---- task objects ------------------------------------------------------------- */

static ltask *check_task(lua_State *L, int i) {
  return luaL_checkudata(L, i, RD_MT_TASK);
}

/* rd.spawn(fn, ...) -> task */
static int l_task_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  rd_rt *rt = rd__rt(L);
  if (rt->closing) return luaL_error(L, "redrive: runtime is closing");
  int n = lua_gettop(L);
  ltask *t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->anchor = LUA_NOREF;
  t->end = L_DONE; /* until it really starts, nothing to wait for or report */
  luaL_setmetatable(L, RD_MT_TASK);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  /* fn and its arguments become the thread's initial stack */
  lua_checkstack(co, n);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, n);
  t->rt = rt;
  t->co = co;
  t->nargs = n - 1;
  /* a task started by sandboxed code is that code too: same run, same
   * limits (its thread inherited the run's hook) */
  t->guard = rd__sbx_current();
  if (t->guard) {
    rd__sbx_push_run(L, t->guard);
    lua_setiuservalue(L, -2, 2);
  }
  /* anchored before the loop knows it, so step() never meets freed memory */
  set_task_of(L, co, t);
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  rd_err err = {0};
  if (rd_task_spawn(rt->loop, step, t, &t->t, &err) != 0) {
    set_task_of(L, co, NULL);
    luaL_unref(L, LUA_REGISTRYINDEX, t->anchor);
    t->anchor = LUA_NOREF;
    return luaL_error(L, "redrive: %s", err.msg);
  }
  t->end = L_LIVE;
  return 1;
}

static void join_cancel(rd_wait_t *w) {
  join_wait *j = (join_wait *)w;
  for (join_wait **p = &j->target->joiners; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
}

static void join_release(rd_wait_t *w) { free(w); }

/* [-0, +n] push the outcome of a finished task: its results, or nil, err. */
static int push_outcome(lua_State *L, ltask *t) {
  lua_State *co = t->co;
  t->observed = 1;
  if (t->end == L_FAILED) {
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
  ltask *t = j->target;
  free(j);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  return push_outcome(L, t);
}

/* task:wait() -> results of fn | nil, err */
static int l_task_wait(lua_State *L) {
  ltask *t = check_task(L, 1);
  if (t->end != L_LIVE) return push_outcome(L, t);
  if (current(L) == t) return luaL_error(L, "a task cannot wait for itself");
  rd__wait_check(L);
  join_wait *j = malloc(sizeof *j);
  if (!j) return luaL_error(L, "out of memory");
  rd_wait_init(&j->base, join_cancel, join_release);
  j->target = t;
  j->next = t->joiners;
  t->joiners = j;
  lua_settop(L, 1); /* keeps the target alive while we wait */
  return rd__await(L, &j->base, join_done);
}

/* task:status() -> "ready" | "waiting" | "running" | "done" | "failed" */
static int l_task_status(lua_State *L) {
  static const char *const live[] = {"ready", "waiting", "running"};
  ltask *t = check_task(L, 1);
  if (t->end == L_DONE) lua_pushliteral(L, "done");
  else if (t->end == L_FAILED) lua_pushliteral(L, "failed");
  else lua_pushstring(L, live[rd_task_state(t->t)]);
  return 1;
}

/* task:cancel(): stop what the task waits on, or its next wait when it is
 * not waiting now (rd_task_cancel); that wait raises rd.canceled. */
static int l_task_cancel(lua_State *L) {
  ltask *t = check_task(L, 1);
  lua_pushboolean(L, t->end == L_LIVE && rd_task_cancel(t->t));
  return 1;
}

static int l_task_tostring(lua_State *L) {
  ltask *t = check_task(L, 1);
  lua_pushfstring(L, "redrive.Task (%p)", (void *)t);
  return 1;
}

/* A failed task that nobody waited for is reported, never silently dropped. */
static int l_task_gc(lua_State *L) {
  ltask *t = check_task(L, 1);
  if (t->end == L_FAILED && !t->observed) {
    t->observed = 1;
    lua_getiuservalue(L, 1, 1);
    lua_State *co = lua_tothread(L, -1);
    const char *msg = co ? luaL_tolstring(co, -1, NULL) : "?";
    fprintf(stderr, "redrive: a task failed and nobody waited for it: %s\n", msg);
    fflush(stderr);
  }
  return 0;
}

/* ---- time ----------------------------------------------------------------------- */

/* The continuation of a wait whose only outcome is that it ended (a timer,
 * a condition): nothing to return, or rd.canceled raised. */
static int wait_ended(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  rd_wait_t *w = (rd_wait_t *)ctx;
  int st = w->status;
  rd_wait_release(w);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  return 0;
}

/* rd.sleep(seconds) */
static int l_task_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  rd_err err = {0};
  /* rd.sleep has no failure to return: a bad duration is misuse, raised */
  if (rd__num_check(s, "seconds", &rd__range_seconds, &err)) luaL_argerror(L, 1, err.msg);
  rd__wait_check(L);
  rd_wait_t *w;
  if (rd_wait_timer(rd__rt(L)->loop, (uint64_t)(s * 1000.0 + 0.5), &w, &err) != 0)
    return luaL_error(L, "redrive: %s", err.msg);
  return rd__await(L, w, wait_ended);
}

/* rd.now() -> loop time in seconds */
static int l_task_now(lua_State *L) {
  uv_loop_t *uv = rd_loop_uv(rd__rt(L)->loop);
  uv_update_time(uv);
  lua_pushnumber(L, (double)uv_now(uv) / 1000.0);
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
  rd_err err = {0};
  if (rd_loop_run(rd__rt(L)->loop, &err) != 0) return luaL_error(L, "redrive: rd.run: %s", err.msg);
  return 0;
}

/* rd.run(): run the loop until no task is left */
static int l_task_run(lua_State *L) {
  rd__rt_run(L);
  return 0;
}

/* ---- conditions: rd.cond() parks tasks until signalled ------------------------- */

/* cv:wait(): park until cv:signal() or cv:broadcast() */
static int l_cond_wait(lua_State *L) {
  rd_cond_t *cv = luaL_checkudata(L, 1, RD_MT_COND);
  rd__wait_check(L);
  rd_wait_t *w;
  rd_err err = {0};
  if (rd_wait_cond(cv, &w, &err) != 0) return luaL_error(L, "redrive: %s", err.msg);
  lua_settop(L, 1); /* keeps cv alive while parked */
  return rd__await(L, w, wait_ended);
}

/* cv:signal() -> n woken (0 or 1); cv:broadcast() -> n woken */
static int l_cond_signal(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)rd_cond_signal(luaL_checkudata(L, 1, RD_MT_COND)));
  return 1;
}

static int l_cond_broadcast(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)rd_cond_broadcast(luaL_checkudata(L, 1, RD_MT_COND)));
  return 1;
}

/* rd.cond() -> cv */
static int l_task_cond(lua_State *L) {
  rd_cond_t *cv = lua_newuserdatauv(L, sizeof *cv, 0);
  rd_cond_init(cv);
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
  rd__new_class(L, RD_MT_TASK, task_meta, task_methods);
  rd__new_class(L, RD_MT_COND, NULL, cond_methods);
  luaL_setfuncs(L, task_funcs, 0);
}

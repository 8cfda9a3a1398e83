/*
 * The limits of sandboxed code: the one home of what bounds the Lua code
 * redrive runs for users -- a `lua:Run` module (in a worker process, see
 * lworker.c) and a rule (in the main state, lua/redrive/rules.lua). The
 * environment they see is built by lua/redrive/sandbox.lua; what they may
 * spend is enforced here:
 *
 *  - an instruction budget and a wall-clock limit, checked by a count hook
 *    on the run's thread. The clock runs only while the run's own code runs:
 *    it stops while the run waits, yields or is paused for a source call
 *    (rd__sbx_switch, called by the task scheduler around every resume);
 *  - a memory cap enforced in the state's allocator: an allocation that
 *    would pass it fails, Lua raises its memory error, and no single
 *    `s .. s`, table.concat or gsub can take more (a cap sampled from a
 *    hook let one concatenation loop reach 3.6 GB, issue 13 finding 2);
 *  - a tripped limit stays tripped: the hook raises again on every
 *    instruction and the sandbox's pcall re-raises, so code cannot swallow
 *    it; string methods ("x"):find reach the bounded matcher while a run
 *    with `methods` is current (the shared string metatable is switched
 *    with the run, and back whenever it yields or pauses);
 *  - a long run yields to the loop every SBX_SLICE_NS of its time when its
 *    coroutine can, so other tasks keep running.
 * Work inside one C call (a pattern is bounded by its own step budget,
 * sizes by the allocator) is seen when the call returns; only the worker
 * process's SIGKILL stops a C call in the middle.
 */
#include "lua/lrd.h"

#include "core/pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SBX_COUNT 1000                  /* instructions between two hook calls */
#define SBX_SLICE_NS (10 * 1000000ULL)  /* run time before a yield to the loop */
#define SBX_SLACK (1u << 20)            /* what a tripped run may still take to unwind */
/* Steps a sandboxed pattern call may take in a state with a loop (rules):
 * one C call holds the loop, so a few ms at most; a worker's state has no
 * loop to hold and keeps the default budget. */
#define SBX_LOOP_STEPS 1000000ULL
#define SBX_RUNS_KEY "redrive.sandbox.runs"
#define SBX_ORIG_KEY "redrive.sandbox.strindex"
#define SBX_METHODS_KEY "redrive.sandbox.methods"
#define SBX_ALLOC_KEY "redrive.sandbox.alloc"

enum { W_NONE, W_INSTR, W_TIME, W_MEM };

struct rd_sbx_alloc {
  lua_Alloc f;            /* the allocator wrapped; NULL: realloc / free */
  void *ud;
  size_t limit;           /* cap on the state's own blocks (f == NULL only); 0: none */
  size_t cap;             /* what the cap allows above the state's size when it was set */
  long long total;        /* bytes of the state's blocks, when f == NULL */
  int tripped;
};

struct rd_sbx_run {
  char name[160];         /* "lua:Run (module 3)", "rule 'x'": names the run in messages */
  char scope[64];         /* appended to the instruction limit's message */
  char time_scope[64];    /* and to the time limit's */
  char at[LUA_IDSIZE + 32];  /* ", at file:line" where a limit tripped in Lua code */
  rd_sbx_alloc *alloc;    /* the state's allocator: allocations elsewhere are not ours */
  lua_State *main;        /* the state's main thread (for the string metatable) */
  rd_loop_t *loop;        /* to see an interrupt; NULL without a runtime */
  rd_sbx_run *prev;       /* current before this one started (nesting) */
  uint64_t instr_limit, instr_used, instr_shown;
  uint64_t ns_limit, ns_used, ns_shown;
  uint64_t since;         /* monotonic ns it became current; 0 while not */
  uint64_t slice;         /* start of its current slice (yields) */
  size_t mem_limit;       /* net growth while current; 0: none */
  long long mem_used;
  size_t mem_shown;
  int tripped;            /* 0, RD_ELIMIT or RD_ENOMEM */
  int what;               /* W_* */
  int methods;            /* string methods bounded while current */
  int yield;              /* may yield to the loop (a state with a loop) */
  int count;              /* the hook's count now */
  lua_Hook ohook;         /* the thread's hook before the run */
  int omask, ocount;
};

/* The run whose code runs on this OS thread now. One Lua state runs one
 * coroutine at a time, so this is enough to know whose budget is spent. */
static _Thread_local rd_sbx_run *cur;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void trip(rd_sbx_run *r, int what) {
  if (r->tripped) return;
  r->tripped = what == W_MEM ? RD_ENOMEM : RD_ELIMIT;
  r->what = what;
}

/* ---- memory ---------------------------------------------------------------- */

void *rd__sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  rd_sbx_alloc *a = ud;
  rd_sbx_run *r = cur && cur->alloc == a ? cur : NULL;
  size_t old = ptr ? osize : 0;
  if (nsize > old) {
    size_t grow = nsize - old;
    int over = a->limit && (unsigned long long)a->total + grow > a->limit + (a->tripped ? SBX_SLACK : 0);
    if (!over && r && r->mem_limit)
      over = r->mem_used + (long long)grow > (long long)(r->mem_limit + (r->tripped ? SBX_SLACK : 0));
    if (over) {
      a->tripped = 1;
      if (r) {
        if (!r->mem_limit) r->mem_shown = a->cap;
        trip(r, W_MEM);
      }
      return NULL; /* Lua collects and retries once, then raises its memory error */
    }
  }
  void *p;
  if (a->f) {
    p = a->f(a->ud, ptr, osize, nsize);
  } else if (nsize == 0) {
    free(ptr);
    p = NULL;
  } else {
    p = realloc(ptr, nsize);
  }
  if (p || nsize == 0) {
    long long d = (long long)nsize - (long long)old;
    a->total += d;
    if (r) r->mem_used += d;
  }
  return p;
}

static void alloc_init(rd_sbx_alloc *a, size_t limit) {
  memset(a, 0, sizeof *a);
  a->limit = a->cap = limit;
}

rd_sbx_alloc *rd__sbx_alloc_new(size_t limit) {
  rd_sbx_alloc *a = malloc(sizeof *a);
  if (a) alloc_init(a, limit);
  return a;
}

int rd__sbx_alloc_tripped(const rd_sbx_alloc *a) { return a->tripped; }

void rd__sbx_alloc_cap(rd_sbx_alloc *a, size_t cap) {
  a->limit = cap ? (size_t)a->total + cap : 0;
  a->cap = cap;
  a->tripped = 0;
}

/* The wrapper of a state redrive did not create (the CLI's, stock lua5.4's)
 * lives in a userdata anchored in the registry. Its __gc runs while the
 * state closes, before the userdata is freed: it hands the state back to
 * the allocator it wrapped, which then frees everything (ours only adds
 * counts). */
static int l_alloc_gc(lua_State *L) {
  rd_sbx_alloc *a = lua_touserdata(L, 1);
  lua_setallocf(L, a->f, a->ud);
  return 0;
}

/* [-0, +0, m] the allocator of L's state, wrapped once. */
static rd_sbx_alloc *state_alloc(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  if (f == rd__sbx_alloc) return ud;
  if (lua_getfield(L, LUA_REGISTRYINDEX, SBX_ALLOC_KEY) != LUA_TNIL) {
    lua_pop(L, 1);
    return NULL; /* someone replaced ours: counting is off */
  }
  lua_pop(L, 1);
  rd_sbx_alloc *a = lua_newuserdatauv(L, sizeof *a, 0);
  alloc_init(a, 0);
  a->f = f;
  a->ud = ud;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_alloc_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, SBX_ALLOC_KEY);
  lua_setallocf(L, rd__sbx_alloc, a);
  return a;
}

/* ---- switching: whose code runs ------------------------------------------- */

static void hook(lua_State *L, lua_Debug *ar);

/* The run's hook on thread L, every `count` instructions. In a state with
 * a loop it also runs when a function returns: a C call that took long (a
 * pattern, a big concat) is seen as soon as it is over, not 1000
 * instructions later, each of which could have been such a call. */
static void arm(lua_State *L, rd_sbx_run *r, int count) {
  r->count = count;
  lua_sethook(L, hook, LUA_MASKCOUNT | (r->yield ? LUA_MASKRET : 0), count);
}

/* Point ("x"):method at the bounded table (on) or back at the string
 * library. M is the state's main thread: it never sits in a yield, so its
 * stack takes the few pushes. */
static void set_methods(lua_State *M, int on) {
  lua_checkstack(M, 3);
  lua_pushliteral(M, "");
  if (!lua_getmetatable(M, -1)) {
    lua_pop(M, 1);
    return;
  }
  lua_getfield(M, LUA_REGISTRYINDEX, on ? SBX_METHODS_KEY : SBX_ORIG_KEY);
  if (lua_istable(M, -1)) lua_setfield(M, -2, "__index");
  else lua_pop(M, 1);
  lua_pop(M, 2);
}

rd_sbx_run *rd__sbx_current(void) { return cur; }

void rd__sbx_switch(lua_State *L, rd_sbx_run *to) {
  rd_sbx_run *from = cur;
  if (from == to) return;
  uint64_t now = mono_ns();
  if (from && from->since) {
    from->ns_used += now - from->since;
    from->since = 0;
  }
  if (to) {
    to->since = to->slice = now;
    /* whoever removed the hook meanwhile (a signal's stop hook), the run's
     * code does not run without it */
    if (L && lua_gethook(L) != hook) arm(L, to, to->tripped ? 1 : SBX_COUNT);
  }
  int fm = from && from->methods, tm = to && to->methods;
  cur = to;
  if (fm != tm) set_methods(tm ? to->main : from->main, tm);
}

void rd__sbx_forget(void) { cur = NULL; }

/* ---- limits ---------------------------------------------------------------- */

static void fmt_bytes(char *buf, size_t cap, size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) snprintf(buf, cap, "%zu MiB", n >> 20);
  else if (n >= 1024 && n % 1024 == 0) snprintf(buf, cap, "%zu KiB", n >> 10);
  else snprintf(buf, cap, "%zu bytes", n);
}

/* The error of a tripped run: what stopped it, naming the run and the limit. */
static void run_err(const rd_sbx_run *r, rd_err *e) {
  char b[48];
  switch (r->what) {
  case W_INSTR:
    rd_err_set(e, RD_ELIMIT, "%s: stopped after %llu instructions%s%s", r->name,
               (unsigned long long)r->instr_shown, r->scope, r->at);
    break;
  case W_TIME:
    rd_err_set(e, RD_ELIMIT, "%s: stopped at its time limit of %g s%s%s", r->name,
               (double)r->ns_shown / 1e9, r->time_scope, r->at);
    break;
  default:
    fmt_bytes(b, sizeof b, r->mem_shown);
    rd_err_set(e, RD_ENOMEM, "%s: stopped: it needs more than %s of memory", r->name, b);
    break;
  }
}

/* [-0, +0, v] raise the run's limit error, and make the hook fire on every
 * instruction from now on, so a pcall that caught it gets it again. */
static int raise_tripped(lua_State *L, rd_sbx_run *r) {
  rd_err e = {0};
  run_err(r, &e);
  arm(L, r, 1);
  return rd__lua_raise(L, &e);
}

/* ", at file:line" of the innermost Lua frame, for the message. */
static void note_where(lua_State *L, rd_sbx_run *r) {
  lua_Debug a;
  for (int level = 0; !r->at[0] && lua_getstack(L, level, &a); level++)
    if (lua_getinfo(L, "Sl", &a) && a.currentline > 0)
      snprintf(r->at, sizeof r->at, ", at %s:%d", a.short_src, a.currentline);
}

static void hook(lua_State *L, lua_Debug *ar) {
  rd_sbx_run *r = cur;
  if (!r) return; /* a thread whose run is not the running one */
  int counted = ar->event == LUA_HOOKCOUNT;
  if (!r->tripped) {
    if (counted) r->instr_used += (uint64_t)r->count;
    uint64_t now = mono_ns();
    if (r->instr_limit && r->instr_used > r->instr_limit) {
      trip(r, W_INSTR);
    } else if (r->ns_limit && r->ns_used + (now - r->since) > r->ns_limit) {
      trip(r, W_TIME);
    } else if (r->loop && rd_loop_interrupted(r->loop)) {
      rd__wait_canceled(L); /* as every wait does after an interrupt */
    } else if (r->yield && now - r->slice >= SBX_SLICE_NS) {
      /* its slice is over: give the loop a turn. Only a count hook may
       * yield, so a return asks for one at the next instruction. */
      if (!counted) {
        arm(L, r, 1);
        return;
      }
      r->slice = now;
      if (r->count != SBX_COUNT) arm(L, r, SBX_COUNT);
      if (lua_isyieldable(L) && rd__in_task(L)) {
        lua_yield(L, 0); /* the task is queued again; other tasks run meanwhile */
        return;
      }
    }
  }
  if (r->tripped) {
    note_where(L, r);
    raise_tripped(L, r);
  }
}

/* ---- runs ------------------------------------------------------------------ */

/* Limits come checked from lua/redrive/sandbox.lua (the one rule of
 * numeric options); here only their type and range are asserted again. */
static const rd_range range_whole = {0, 9007199254740992.0, 0, 1, NULL};

static double opt_number(lua_State *L, int t, const char *k, const rd_range *range) {
  double v = 0;
  rd_err err = {0};
  if (rd__opt_num(L, t, k, range, 0, &v, &err) != 0) luaL_argerror(L, t, err.msg);
  return v;
}

static void read_opts(lua_State *L, rd_sbx_run *r) {
  lua_getfield(L, 1, "name");
  snprintf(r->name, sizeof r->name, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "sandbox");
  lua_getfield(L, 1, "scope");
  if (lua_isstring(L, -1)) snprintf(r->scope, sizeof r->scope, " (%s)", lua_tostring(L, -1));
  lua_getfield(L, 1, "time_scope");
  if (lua_isstring(L, -1)) snprintf(r->time_scope, sizeof r->time_scope, " (%s)", lua_tostring(L, -1));
  lua_getfield(L, 1, "methods");
  r->methods = lua_toboolean(L, -1);
  lua_getfield(L, 1, "yield");
  r->yield = lua_toboolean(L, -1);
  lua_pop(L, 5);
  r->instr_limit = (uint64_t)opt_number(L, 1, "instructions", &range_whole);
  r->ns_limit = (uint64_t)(opt_number(L, 1, "timeout", &rd__range_seconds) * 1e9);
  r->mem_limit = (size_t)opt_number(L, 1, "memory", &range_whole);
  r->instr_shown = (uint64_t)opt_number(L, 1, "shown_instructions", &range_whole);
  r->ns_shown = (uint64_t)(opt_number(L, 1, "shown_timeout", &rd__range_seconds) * 1e9);
  if (!r->instr_shown) r->instr_shown = r->instr_limit;
  if (!r->ns_shown) r->ns_shown = r->ns_limit;
  r->mem_shown = r->mem_limit;
}

/* The message handler of a run: a string error gets the file:line of the
 * innermost frame of the run's chunk (upvalue 1) when it does not say it,
 * so an error raised deep in a library still points at the rule's line.
 * Other values (rd.canceled, error objects) stay themselves. */
static int l_sbx_msgh(lua_State *L) {
  const char *chunk = lua_tostring(L, lua_upvalueindex(1));
  if (!chunk || lua_type(L, 1) != LUA_TSTRING) return 1;
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || strcmp(ar.source, chunk) != 0)
      continue;
    char where[LUA_IDSIZE + 24];
    snprintf(where, sizeof where, "%s:%d:", ar.short_src, ar.currentline);
    if (!strstr(lua_tostring(L, 1), where)) {
      lua_pushfstring(L, "%s %s", where, lua_tostring(L, 1));
      return 1;
    }
    break;
  }
  return 1;
}

/* [-0, +1, m] push the userdata of run r (alive while its code can run). */
static void push_run(lua_State *L, rd_sbx_run *r) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, SBX_RUNS_KEY);
  lua_rawgetp(L, -1, r);
  lua_remove(L, -2);
}

void rd__sbx_push_run(lua_State *L, rd_sbx_run *r) { push_run(L, r); }

/* Leave run r on thread L: the run before it is current again. */
static void leave(lua_State *L, rd_sbx_run *r) {
  rd__sbx_switch(L, r->prev);
  rd__task_set_guard(L, r->prev);
  lua_sethook(L, r->ohook, r->omask, r->ocount);
}

/* [-0, +0, m] opts.used = {instructions, seconds, memory} */
static void write_used(lua_State *L, int opts, const rd_sbx_run *r) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)r->instr_used);
  lua_setfield(L, -2, "instructions");
  lua_pushnumber(L, (double)r->ns_used / 1e9);
  lua_setfield(L, -2, "seconds");
  lua_pushinteger(L, (lua_Integer)r->mem_used);
  lua_setfield(L, -2, "memory");
  lua_setfield(L, opts, "used");
}

/* Stack: [opts, run, msgh, results... | error]. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  rd_sbx_run *r = lua_touserdata(L, 2);
  leave(L, r);
  write_used(L, 1, r);
  if (r->tripped) {
    rd_err e = {0};
    run_err(r, &e);
    lua_settop(L, 0);
    lua_pushboolean(L, 0);
    lua_createtable(L, 0, 2); /* rd__lua_raise's object, without raising */
    lua_pushstring(L, e.msg);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, rd_err_name(e.code));
    lua_setfield(L, -2, "code");
    luaL_setmetatable(L, RD_MT_ERROR);
    return 2;
  }
  lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
  lua_replace(L, 3);
  return lua_gettop(L) - 2;
}

/* core.sandbox_run(opts, fn, ...) -> true, results... | false, err
 * Runs fn(...) on the calling coroutine under opts' limits: name (for
 * messages), instructions, timeout (seconds of its own code's time),
 * memory (bytes its code may add to the state), chunk (file:line of
 * errors), methods (bound ("x"):find while it runs), yield (give the loop
 * a turn every few ms), scope, shown_instructions, shown_timeout (what
 * messages say the limit is). err: the error raised (rd.canceled and error
 * objects stay themselves), or an error object {code = "limit" | "nomem",
 * message} when a limit stopped it. opts.used = {instructions, seconds,
 * memory} afterwards. fn may yield (waits); the limits follow it. */
static int l_sbx_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  rd_sbx_run *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  lua_insert(L, 2);
  lua_getfield(L, 1, "chunk");
  lua_pushcclosure(L, l_sbx_msgh, 1);
  lua_insert(L, 3); /* [opts, run, msgh, fn, args...] */
  read_opts(L, r);
  luaL_newmetatable(L, RD_MT_ERROR); /* run_k sets it without allocating a name */
  lua_pop(L, 1);
  r->alloc = state_alloc(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  r->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  rd_rt *rt = rd__rt_peek(L);
  r->loop = rt ? rt->loop : NULL;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, SBX_RUNS_KEY);
  lua_pushvalue(L, 2);
  lua_rawsetp(L, -2, r);
  lua_pop(L, 1);
  r->ohook = lua_gethook(L);
  r->omask = lua_gethookmask(L);
  r->ocount = lua_gethookcount(L);
  r->prev = cur;
  arm(L, r, SBX_COUNT);
  rd__task_set_guard(L, r);
  rd__sbx_switch(L, r);
  int n = lua_gettop(L) - 4;
  int st = lua_pcallk(L, n, LUA_MULTRET, 3, 0, run_k);
  return run_k(L, st, 0);
}

/* core.sandbox_pause() -> run | nil: the code about to run on this thread
 * is not the run's (a source call made by a rule): its clock stops, its
 * hook and string methods go. */
static int l_sbx_pause(lua_State *L) {
  rd_sbx_run *r = cur;
  if (!r) return 0;
  push_run(L, r);
  rd__sbx_switch(L, NULL);
  rd__task_set_guard(L, NULL);
  lua_sethook(L, NULL, 0, 0);
  return 1;
}

/* core.sandbox_resume(run): the run's code goes on on this thread. */
static int l_sbx_resume(lua_State *L) {
  luaL_checktype(L, 1, LUA_TUSERDATA);
  rd_sbx_run *r = lua_touserdata(L, 1);
  push_run(L, r);
  int mine = lua_rawequal(L, 1, -1);
  lua_pop(L, 1);
  luaL_argcheck(L, mine, 1, "sandbox run expected");
  arm(L, r, r->tripped ? 1 : SBX_COUNT);
  rd__task_set_guard(L, r);
  rd__sbx_switch(L, r);
  return 0;
}

/* After a protected call inside a run: a limit or a cancellation goes on
 * unwinding; anything else is the caller's to handle. */
static int pcall_k(lua_State *L, int status, lua_KContext ctx) {
  int base = (int)ctx;
  rd_sbx_run *r = cur;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (r && r->tripped) return raise_tripped(L, r);
    lua_pushboolean(L, 1);
    lua_replace(L, base);
    return lua_gettop(L) - base + 1;
  }
  if (r && r->tripped) return raise_tripped(L, r);
  if (rd__lua_is_canceled(L, -1)) return lua_error(L);
  lua_pushboolean(L, 0);
  lua_replace(L, base);
  lua_settop(L, base + 1);
  return 2;
}

/* The sandbox's pcall(f, ...): stock results, except that a tripped limit
 * and rd.canceled are raised again instead of returned. */
static int l_sbx_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1); /* the status slot */
  lua_insert(L, 1);
  return pcall_k(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 1, pcall_k), 1);
}

/* The sandbox's xpcall(f, msgh, ...), likewise. */
static int l_sbx_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);      /* status slot */
  lua_pushvalue(L, 1);        /* f */
  lua_rotate(L, 3, 2);        /* [f, msgh, true, f, args...] */
  return pcall_k(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 3, pcall_k), 3);
}

/* ---- string functions ------------------------------------------------------ */

/* [-0, +1, m] a copy of the string library whose find, match, gmatch and
 * gsub are the bounded ones. */
static void push_strings(lua_State *L) {
  uint64_t steps = rd__rt_peek(L) ? SBX_LOOP_STEPS : RD_PAT_DEFAULT_STEPS;
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_ORIG_KEY);
  lua_newtable(L);
  if (lua_istable(L, -2)) {
    lua_pushnil(L);
    while (lua_next(L, -3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  lua_remove(L, -2);
  rd__pattern_push_lib(L, steps, NULL);
  static const char *const names[] = {"find", "match", "gmatch", "gsub"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    lua_getfield(L, -1, names[i]);
    lua_setfield(L, -3, names[i]);
  }
  lua_pop(L, 1);
}

/* core.sandbox_strings() -> a fresh bounded copy of `string` for an env */
static int l_sbx_strings(lua_State *L) {
  push_strings(L);
  return 1;
}

/* core.sandbox_methods(true) makes the bounded methods the state's for
 * good (a worker's state: all its code is sandboxed). */
static int l_sbx_methods(lua_State *L) {
  rd_sbx_run *r = cur;
  if (lua_toboolean(L, 1) && (!r || !r->methods)) set_methods(L, 1);
  return 0;
}

static const luaL_Reg sbx_funcs[] = {
  {"sandbox_run", l_sbx_run}, {"sandbox_pause", l_sbx_pause},
  {"sandbox_resume", l_sbx_resume}, {"sandbox_pcall", l_sbx_pcall},
  {"sandbox_xpcall", l_sbx_xpcall}, {"sandbox_strings", l_sbx_strings},
  {"sandbox_methods", l_sbx_methods}, {NULL, NULL},
};

void rd__open_sandbox(lua_State *L) {
  /* the string library as it is now: what methods go back to */
  lua_getfield(L, LUA_REGISTRYINDEX, SBX_ORIG_KEY);
  int have = lua_istable(L, -1);
  lua_pop(L, 1);
  if (!have) {
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
      lua_getfield(L, -1, "__index");
      lua_setfield(L, LUA_REGISTRYINDEX, SBX_ORIG_KEY);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    push_strings(L);
    lua_setfield(L, LUA_REGISTRYINDEX, SBX_METHODS_KEY);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, SBX_RUNS_KEY);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
  state_alloc(L);
  luaL_setfuncs(L, sbx_funcs, 0);
}

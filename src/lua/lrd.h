/*
 * Shared internals of the Lua bindings (the files in src/lua). Only the bindings and
 * the CLI include this; the core never sees lua.h.
 */
#ifndef RD_LUA_LRD_H
#define RD_LUA_LRD_H

#include "redrive.h"

#include <cJSON.h>
#include <lauxlib.h>
#include <stdatomic.h>
#include <lua.h>
#include <uv.h>

/* Metatable names, each defined once. */
#define RD_MT_TASK "redrive.Task"
#define RD_MT_COND "redrive.Cond"
#define RD_MT_RUNTIME "redrive.Runtime"
#define RD_MT_RESPONSE "redrive.Response"
#define RD_MT_NULL "redrive.null"
#define RD_MT_JSON_ARRAY "redrive.json.array"
#define RD_MT_JSON_OBJECT "redrive.json.object"
#define RD_MT_STORE "redrive.Store"
#define RD_MT_BLUEPRINT "redrive.Blueprint"
#define RD_MT_CANCELED "redrive.canceled"
#define RD_MT_ERROR "redrive.Error"

/* ---- errors --------------------------------------------------------------
 * Expected failures return `nil, message, code` to Lua. */

/* [-0, +3, m] push nil, err->msg, rd_err_name(err->code); returns 3. */
int rd__lua_pusherr(lua_State *L, const rd_err *err);
/* [-0, +3, m] same with a code and printf-style message; returns 3. */
int rd__lua_fail(lua_State *L, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* [-0, +0, v] raise an error object {code = rd_err_name(err->code),
 * message = err->msg} whose tostring() is the message: for failures that
 * must raise (inside an iterator, a string.find) yet keep their code, so
 * callers compare `e.code`, never the text. */
int rd__lua_raise(lua_State *L, const rd_err *err);

/* ---- cancellation --------------------------------------------------------
 * A cancelled wait raises one unique value, rd.canceled, and code recognises
 * cancellation by identity (rd.is_canceled), never by the text of an error:
 * a module's own "payment was canceled" is an ordinary failure. The value
 * prints as "interrupted", so users still read that word. */

/* [-0, +1, -] push rd.canceled. */
void rd__lua_push_canceled(lua_State *L);
/* [-0, +0, -] is the value at idx rd.canceled? */
int rd__lua_is_canceled(lua_State *L, int idx);

/* ---- runtime -------------------------------------------------------------
 * One per lua_State (registry): the loop (src/loop: tasks, waits, hooks,
 * cancellation) and the HTTP multi handle on it, plus the few settings
 * scripts change. */
typedef struct rd_rt rd_rt;

struct rd_rt {
  rd_loop_t *loop;
  lua_State *L;          /* main state */
  rd_http_t *http;       /* created on first use */
  int dry_run;
  int verbose;           /* log HTTP calls (redacted) */
  int signal;            /* the signal that interrupted us, if any */
  int closing;
};

/* [-0, +0, -] the runtime of L (created by luaopen_redrive). */
rd_rt *rd__rt(lua_State *L);
/* [-0, +0, -] the runtime of L, or NULL when L has none (a sandbox
 * worker's state). */
rd_rt *rd__rt_peek(lua_State *L);
/* The HTTP multi handle of rt, created on first use; NULL + err on failure. */
rd_http_t *rd__rt_http(rd_rt *rt, rd_err *err);

/* ---- waiting -------------------------------------------------------------
 * A C function that waits embeds an rd_wait_t (include/redrive.h) as the
 * FIRST member of its own record (rd_wait_init), starts its operation,
 * then `return rd__await(L, w, k);`. The operation's callback fills the
 * record and calls rd_wait_done(w, status). `k` runs in the waiting
 * coroutine (or on the main thread) with ctx == (lua_KContext)w; it
 * converts the result to Lua values, releases the record, and may raise.
 * If w->status is RD_ECANCELED the wait was cancelled: release and raise
 * rd.canceled (rd__wait_canceled). */

/* Call from a waiting binding after arguments are checked. Raises if called
 * from a coroutine that is not a task, or on the main thread while the loop is
 * already running. */
int rd__wait_check(lua_State *L);
/* Park the caller until w completes: yields inside a task, runs the loop on
 * the main thread. Then continues with k(L, LUA_YIELD, w). */
int rd__await(lua_State *L, rd_wait_t *w, lua_KFunction k);
/* [-0, +0, v] raise rd.canceled (a wait ended with RD_ECANCELED). */
int rd__wait_canceled(lua_State *L);

/* ---- tasks --------------------------------------------------------------- */
/* Is L the thread of a task (not the main thread, not a plain coroutine)? */
int rd__in_task(lua_State *L);
typedef struct rd_sbx_run rd_sbx_run;
/* The sandboxed run whose code L's task runs (NULL: none); the scheduler
 * switches to it whenever it resumes the task. No-op outside a task. */
void rd__task_set_guard(lua_State *L, rd_sbx_run *g);
/* Run the loop until no task is left. Raises on nested use. */
int rd__rt_run(lua_State *L);

/* ---- JSON bridge (ljson.c) ----------------------------------------------- */
/* [-0, +1, m] push `item` as Lua (arrays/objects marked), 0 or RD_E*. On
 * error nothing is pushed. */
int rd__json_push(lua_State *L, const cJSON *item, rd_err *err);
/* [-0, +0, m] convert the Lua value at idx; NULL + err on unsupported value,
 * cycle, invalid UTF-8 or too deep. Caller owns the result. */
cJSON *rd__json_from_lua(lua_State *L, int idx, rd_err *err);
/* [-0, +0, m] the Lua value at idx as JSON text, numbers printed exactly;
 * NULL + err on failure. Free with cJSON_free. */
char *rd__json_encode(lua_State *L, int idx, int pretty, rd_err *err);
/* [-0, +0, -] is the value at idx the JSON null sentinel? */
int rd__json_isnull(lua_State *L, int idx);
/* [-0, +1, -] push the JSON null sentinel. */
void rd__json_pushnull(lua_State *L);

/* ---- numeric options (lnum.c) --------------------------------------------
 * The one rule for durations, sizes and counts read from options: a finite
 * number inside the range (a whole number where `whole`), else RD_EINVALID
 * naming the option. The Lua parts reach it through core.check_number. */
typedef struct rd_range {
  double min, max;       /* bounds; max inclusive */
  int above_min;         /* min itself is refused (> min, not >= min) */
  int whole;             /* a whole number is required (sizes, counts) */
  const char *unit;      /* "seconds", "bytes"... for the message, or NULL */
} rd_range;
extern const rd_range rd__range_timeout;     /* seconds, > 0, <= 1e9 */
extern const rd_range rd__range_seconds;     /* seconds, >= 0, <= 1e9 */
extern const rd_range rd__range_bytes;       /* whole bytes, 1..2^53 */
extern const rd_range rd__range_count;       /* whole, 0..1e9 */
extern const rd_range rd__range_concurrency; /* whole, 1..10000 */
extern const rd_range rd__range_rate;        /* per second, > 0, <= 1e6 */
/* The range of a kind by name ("timeout", "bytes"...), NULL if unknown. */
const rd_range *rd__range_named(const char *kind);
/* 0 when v is inside r, else RD_EINVALID with err naming option `name`. */
int rd__num_check(double v, const char *name, const rd_range *r, rd_err *err);
/* [-0, +0, v] Field k of the table at absolute index t (the argument
 * position): *out = dflt when nil; raises when it is not a number (a type
 * error); else rd__num_check, writing *out only when it passes. */
int rd__opt_num(lua_State *L, int t, const char *k, const rd_range *r, double dflt, double *out,
                rd_err *err);

/* ---- bounded patterns (lpattern.c) --------------------------------------- */
/* [-0, +1, m] push a table {find, match, gmatch, gsub, steps}: Lua 5.4's
 * string functions of those names (same signatures, results and errors),
 * each call bounded by `steps` matcher steps and stopped once *stop (if not
 * NULL) is nonzero; either raises an error object with code "limit". `stop`
 * is only read, may be set from another thread or a signal handler, and
 * must outlive the functions. For a sandbox's string table. */
void rd__pattern_push_lib(lua_State *L, uint64_t steps, const atomic_int *stop);

/* ---- sandboxed code (lsandbox.c: limits; lworker.c: worker processes) ----
 * A run (core.sandbox_run) bounds the code it calls: instructions and time
 * by a count hook, memory in the state's allocator; see lsandbox.c. */
typedef struct rd_sbx_alloc rd_sbx_alloc;
/* The counting allocator (lua_Alloc): ud is an rd_sbx_alloc. It refuses
 * growth past the alloc's own limit (a state made with it) and past the
 * current run's memory limit. */
void *rd__sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* An allocator over realloc/free capping a state at `limit` bytes (0: no
 * cap), for lua_newstate(rd__sbx_alloc, a); free() it after lua_close.
 * NULL without memory. */
rd_sbx_alloc *rd__sbx_alloc_new(size_t limit);
/* Did an allocation fail on the cap? */
int rd__sbx_alloc_tripped(const rd_sbx_alloc *a);
/* From now on the state may take `cap` bytes more than it holds now (0:
 * no cap); clears the tripped flag. */
void rd__sbx_alloc_cap(rd_sbx_alloc *a, size_t cap);
/* The run whose code is running on this OS thread, or NULL. */
rd_sbx_run *rd__sbx_current(void);
/* Make `to` the running one (NULL: none): the clock of the one before
 * stops, to's starts, string methods follow; L, when not NULL, is the
 * thread about to run to's code (its hook is put back if it was removed). */
void rd__sbx_switch(lua_State *L, rd_sbx_run *to);
/* [-0, +1, m] push the userdata of a run that is still running. */
void rd__sbx_push_run(lua_State *L, rd_sbx_run *r);
/* Forget the current run without touching any state (a forked child). */
void rd__sbx_forget(void);
/* [-0, +0, m] load a compiled-in Lua file by module name ("redrive.x")
 * as a function on the stack; LUA_OK or an error with its message. */
int rd__lua_load_embedded(lua_State *L, const char *name);

/* ---- submodules: each adds its functions to the table on top ------------- */
/* rd__new_class(L, name, meta, methods): registers the metatable `name` with
 * the metamethods `meta` (may be NULL) and an __index table of `methods`
 * (may be NULL); the stack is left as it was. One shape for every userdata
 * class of the bindings. */
void rd__new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

void rd__open_num(lua_State *L);
void rd__open_task(lua_State *L);
void rd__open_json(lua_State *L);
void rd__open_http(lua_State *L);
void rd__open_store(lua_State *L);
void rd__open_blueprint(lua_State *L);
void rd__open_redact(lua_State *L);
void rd__open_pattern(lua_State *L);
void rd__open_sandbox(lua_State *L);
void rd__open_worker(lua_State *L);
void rd__open_fingerprint(lua_State *L);

#endif

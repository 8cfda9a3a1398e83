/*
 * Sandbox workers: the processes `lua:Run` code runs in.
 *
 * A worker is a child of this process (fork, no exec, so it works the same
 * under the redrive binary and under stock lua5.4 with redrive.so) that
 * serves one request at a time over a socket: a frame with the request's
 * JSON text and its memory cap in, a frame with the reply's JSON text out.
 * It keeps one Lua state on the counting allocator and, for each request,
 * caps what the request may add to it and runs lua/redrive/sandbox.lua's
 * serve(), which builds the code a fresh environment. The loop never blocks on a worker: a call polls the socket
 * (uv_poll_t) and parks its task; a timer at the run's time limit plus a
 * grace kills the worker with SIGKILL, whatever its code is doing (a C call
 * that never returns included), and the call fails with RD_ELIMIT.
 * Cancelling the call (SIGINT/SIGTERM, task:cancel) kills the worker too.
 * Why a process and not a thread: docs/internals.md "Sandboxed code".
 *
 * In the child, right after fork: only async-signal-safe work and this
 * file's code run; it closes every descriptor it inherited but its socket
 * (it must not hold the parent's connections or store open), takes the
 * default action for the signals the parent handles (SIGINT ignored: the
 * parent decides), dies with its parent (PR_SET_PDEATHSIG) and exits with
 * _exit (no parent atexit handler, no Lua finalizer of the parent runs).
 */
#include "lua/lrd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lualib.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RD_MT_WORKER "redrive.SandboxWorker"
#define GRACE_MS 250                    /* after the time limit, before SIGKILL */
#define REQ_HDR 12                      /* u32 text length, u64 memory cap */
#define REPLY_SLACK (1u << 20)          /* a reply may pass the cap by this */
#define BACKSTOP_SLACK (64u << 20)      /* RLIMIT_DATA above cap and request */

typedef struct worker {
  pid_t pid;
  int fd;                 /* our end of the socket; -1 once closed */
  int dead;               /* killed, or found gone: never used again */
  int reaped;
  int busy;               /* a call is in flight */
  int refs;               /* the userdata, and the call in flight */
} worker;

typedef struct call {
  rd_wait_t base;         /* first: the wait the task parks on */
  worker *w;
  uv_poll_t poll;
  uv_timer_t timer;
  int open;               /* handles whose close callback is still due */
  char *out;              /* the request frame */
  size_t olen, ooff;
  unsigned char hdr[4];   /* the reply's length */
  size_t hoff;
  char *in;               /* the reply */
  size_t ilen, ioff, imax;
  double timeout;         /* seconds, for the message */
  rd_err err;
} call;

/* ---- the parent's side ------------------------------------------------------ */

static void reap(worker *w, int block) {
  if (w->reaped) return;
  int st;
  pid_t r;
  do r = waitpid(w->pid, &st, block ? 0 : WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == w->pid || (r < 0 && errno == ECHILD)) w->reaped = 1;
}

static void kill_worker(worker *w) {
  if (!w->dead) kill(w->pid, SIGKILL);
  w->dead = 1;
}

static void unref(worker *w) {
  if (--w->refs > 0) return;
  kill_worker(w);
  if (w->fd >= 0) close(w->fd);
  reap(w, 1); /* killed: it is gone at once */
  free(w);
}

static void finish(call *c, int status) {
  uv_poll_stop(&c->poll);
  uv_timer_stop(&c->timer);
  rd_wait_done(&c->base, status);
}

/* The worker ended while a call waited on it: a crash (its own signal), an
 * exit, or the kernel's OOM killer. */
static void gone(call *c) {
  worker *w = c->w;
  int st = 0;
  kill_worker(w);
  pid_t r;
  do r = waitpid(w->pid, &st, 0);
  while (r < 0 && errno == EINTR);
  w->reaped = 1;
  if (r == w->pid && WIFSIGNALED(st))
    rd_err_set(&c->err, RD_EIO, "its sandbox worker died (signal %d, %s)", WTERMSIG(st),
               strsignal(WTERMSIG(st)));
  else if (r == w->pid && WIFEXITED(st))
    rd_err_set(&c->err, RD_EIO, "its sandbox worker exited (status %d)", WEXITSTATUS(st));
  else
    rd_err_set(&c->err, RD_EIO, "its sandbox worker went away");
  finish(c, RD_EIO);
}

/* Read what the reply has ready; finish when it is complete. */
static void read_reply(call *c) {
  for (;;) {
    int head = c->hoff < sizeof c->hdr;
    char *dst = head ? (char *)c->hdr + c->hoff : c->in + c->ioff;
    size_t want = head ? sizeof c->hdr - c->hoff : c->ilen - c->ioff;
    ssize_t n = want ? read(c->w->fd, dst, want) : 0;
    if (want && n == 0) return gone(c);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return gone(c);
    }
    if (head) {
      c->hoff += (size_t)n;
      if (c->hoff < sizeof c->hdr) continue;
      uint32_t len;
      memcpy(&len, c->hdr, sizeof len);
      if (len > c->imax || !(c->in = malloc(len ? len : 1))) {
        kill_worker(c->w);
        rd_err_set(&c->err, RD_EIO, "its sandbox worker sent a reply of %u bytes", len);
        return finish(c, RD_EIO);
      }
      c->ilen = len;
    } else {
      c->ioff += (size_t)n;
    }
    if (c->ioff == c->ilen) return finish(c, 0);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  call *c = h->data;
  if (c->base.done) return;
  if (status < 0) {
    kill_worker(c->w);
    rd_err_set(&c->err, RD_EIO, "sandbox worker: %s", uv_strerror(status));
    return finish(c, RD_EIO);
  }
  if ((events & UV_WRITABLE) && c->ooff < c->olen) {
    ssize_t n = write(c->w->fd, c->out + c->ooff, c->olen - c->ooff);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return gone(c);
    if (n > 0) c->ooff += (size_t)n;
    if (c->ooff == c->olen) uv_poll_start(h, UV_READABLE, on_poll);
  }
  if (events & (UV_READABLE | UV_DISCONNECT)) read_reply(c);
}

/* The time limit passed: whatever the code does, it ends now. */
static void on_timer(uv_timer_t *h) {
  call *c = h->data;
  kill_worker(c->w);
  rd_err_set(&c->err, RD_ELIMIT, "stopped at its time limit of %g s (its worker process was killed)",
             c->timeout);
  finish(c, RD_ELIMIT);
}

static void call_cancel(rd_wait_t *base) {
  call *c = (call *)base;
  kill_worker(c->w);
  uv_poll_stop(&c->poll);
  uv_timer_stop(&c->timer);
}

static void on_closed(uv_handle_t *h) {
  call *c = h->data;
  if (--c->open == 0) free(c);
}

static void call_release(rd_wait_t *base) {
  call *c = (call *)base;
  c->w->busy = 0;
  unref(c->w);
  free(c->out);
  free(c->in);
  c->out = c->in = NULL;
  uv_close((uv_handle_t *)&c->poll, on_closed);
  uv_close((uv_handle_t *)&c->timer, on_closed);
}

static int call_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  call *c = (call *)ctx;
  int st = c->base.status;
  if (st == RD_ECANCELED) {
    rd_wait_release(&c->base);
    return rd__wait_canceled(L);
  }
  if (st != 0) {
    rd_err e = c->err;
    if (!e.code) rd_err_set(&e, st, "%s", rd_strerror(st));
    rd_wait_release(&c->base);
    return rd__lua_pusherr(L, &e);
  }
  lua_pushlstring(L, c->in, c->ilen);
  rd_wait_release(&c->base);
  return 1;
}

static worker *check_worker(lua_State *L, int i) {
  worker **ud = luaL_checkudata(L, i, RD_MT_WORKER);
  if (!*ud) luaL_error(L, "attempt to use a closed sandbox worker");
  return *ud;
}

/* Is it still there (it may have been killed, or died while idle)? */
static int alive(worker *w) {
  if (w->dead) return 0;
  reap(w, 0);
  if (w->reaped) w->dead = 1;
  return !w->dead;
}

/* w:call(text, timeout, memory) -> reply text | nil, msg, code
 * Sends a request (JSON text) and waits for the reply. `timeout`: the
 * seconds its code may run (the worker enforces them; this call kills the
 * worker GRACE_MS later); `memory`: the cap of the worker's Lua state. */
static int l_worker_call(lua_State *L) {
  worker *w = check_worker(L, 1);
  size_t len;
  const char *text = luaL_checklstring(L, 2, &len);
  double timeout = luaL_checknumber(L, 3);
  lua_Integer memory = luaL_checkinteger(L, 4);
  rd_err err = {0};
  if (rd__num_check(timeout, "timeout", &rd__range_timeout, &err)) luaL_argerror(L, 3, err.msg);
  luaL_argcheck(L, memory > 0, 4, "memory must be > 0");
  if (len > UINT32_MAX) return rd__lua_fail(L, RD_ETOO_LARGE, "sandbox request of %zu bytes", len);
  rd__wait_check(L);
  if (!alive(w) || w->busy) return rd__lua_fail(L, RD_EIO, "sandbox worker %d is gone", (int)w->pid);
  call *c = calloc(1, sizeof *c);
  char *out = malloc(REQ_HDR + len);
  if (!c || !out) {
    free(c);
    free(out);
    return rd__lua_fail(L, RD_ENOMEM, "out of memory");
  }
  uint32_t l32 = (uint32_t)len;
  uint64_t cap = (uint64_t)memory;
  memcpy(out, &l32, 4);
  memcpy(out + 4, &cap, 8);
  memcpy(out + REQ_HDR, text, len);
  uv_loop_t *uv = rd_loop_uv(rd__rt(L)->loop);
  int rc = uv_poll_init(uv, &c->poll, w->fd);
  if (rc < 0) {
    free(c);
    free(out);
    return rd__lua_fail(L, RD_EIO, "sandbox worker: %s", uv_strerror(rc));
  }
  uv_timer_init(uv, &c->timer);
  c->poll.data = c->timer.data = c;
  c->open = 2;
  rd_wait_init(&c->base, call_cancel, call_release);
  c->w = w;
  w->refs++;
  w->busy = 1;
  c->out = out;
  c->olen = REQ_HDR + len;
  c->imax = (size_t)cap + REPLY_SLACK;
  c->timeout = timeout;
  uv_poll_start(&c->poll, UV_READABLE | UV_WRITABLE | UV_DISCONNECT, on_poll);
  uv_timer_start(&c->timer, on_timer, (uint64_t)(timeout * 1000.0) + 1 + GRACE_MS, 0);
  lua_settop(L, 1); /* the worker stays alive while we wait */
  return rd__await(L, &c->base, call_done);
}

/* w:alive() -> boolean */
static int l_worker_alive(lua_State *L) {
  lua_pushboolean(L, alive(check_worker(L, 1)));
  return 1;
}

/* w:pid() -> process id */
static int l_worker_pid(lua_State *L) {
  lua_pushinteger(L, check_worker(L, 1)->pid);
  return 1;
}

/* w:close(): kill it (idempotent; also __gc and __close) */
static int l_worker_close(lua_State *L) {
  worker **ud = luaL_checkudata(L, 1, RD_MT_WORKER);
  worker *w = *ud;
  *ud = NULL;
  if (w) {
    kill_worker(w);
    unref(w);
  }
  return 0;
}

static int l_worker_tostring(lua_State *L) {
  worker **ud = luaL_checkudata(L, 1, RD_MT_WORKER);
  if (*ud) lua_pushfstring(L, "redrive.SandboxWorker (%d)", (int)(*ud)->pid);
  else lua_pushliteral(L, "redrive.SandboxWorker (closed)");
  return 1;
}

/* ---- the child's side ------------------------------------------------------- */

/* Read (out = 0) or write (out = 1) all n bytes, blocking; -1 on end of
 * file or error. */
static int io_full(int fd, void *buf, size_t n, int out) {
  char *p = buf;
  while (n) {
    ssize_t r = out ? write(fd, p, n) : read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Every descriptor but 0-2 and `keep` is the parent's: a connection, its
 * store, its loop. stdin and stdout become /dev/null. Descriptors at or
 * above the soft RLIMIT_NOFILE are left alone (valgrind keeps its own
 * there). */
static void close_others(int keep) {
  int nul = open("/dev/null", O_RDWR);
  if (nul >= 0) {
    dup2(nul, 0);
    dup2(nul, 1);
    if (nul > 2) close(nul);
  }
  struct rlimit rl;
  int max = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
    max = (int)rl.rlim_cur;
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    for (int fd = 3; fd < max; fd++)
      if (fd != keep) close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (fd > 2 && fd != keep && fd != dirfd(d) && fd < max) close(fd);
  }
  closedir(d);
}

static void child_signals(void) {
  static const int dfl[] = {SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = SIG_DFL;
  for (size_t i = 0; i < sizeof dfl / sizeof *dfl; i++) sigaction(dfl[i], &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGINT, &sa, NULL);  /* Ctrl-C reaches the whole group: the parent decides */
  sigaction(SIGPIPE, &sa, NULL); /* a parent gone is a failed write */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* A backstop under the allocator's cap, for memory Lua does not count (the
 * JSON trees of the request and the reply): RLIMIT_DATA at what the
 * process has now plus the cap, 4 times the request and a slack. Not under
 * ASan, whose shadow memory counts as data. */
static void backstop(uint64_t cap, size_t len) {
#if !defined(__SANITIZE_ADDRESS__)
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size, rss, shared, text, lib, data;
  int n = f ? fscanf(f, "%lu %lu %lu %lu %lu %lu", &size, &rss, &shared, &text, &lib, &data) : 0;
  if (f) fclose(f);
  struct rlimit rl;
  if (n != 6 || getrlimit(RLIMIT_DATA, &rl) != 0) return;
  rlim_t want = (rlim_t)data * (rlim_t)sysconf(_SC_PAGESIZE) + cap + 4 * (rlim_t)len + BACKSTOP_SLACK;
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
  rl.rlim_cur = want;
  setrlimit(RLIMIT_DATA, &rl);
#else
  (void)cap;
  (void)len;
#endif
}

typedef struct serve_args {
  const char *text;
  size_t len;
  char *reply;
  size_t rlen;
} serve_args;

/* The worker's Lua state: the libraries (the env is built from them by
 * sandbox.lua, which exposes only its allow list), a core table with
 * rd.json and the sandbox's C half, and sandbox.lua's serve() in the
 * registry. Made once and kept: a request gets a fresh environment, never
 * the globals of this state, so nothing one request leaves reaches the next. */
typedef struct wstate {
  rd_sbx_alloc *al;
  lua_State *L;
  int serve;              /* registry ref of S.serve */
} wstate;

static int setup_in(lua_State *L) {
  static const luaL_Reg libs[] = {
    {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
    {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_OSLIBNAME, luaopen_os},
    {NULL, NULL},
  };
  for (const luaL_Reg *l = libs; l->name; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  lua_newtable(L);
  rd__open_json(L);
  rd__open_sandbox(L);
  int core = lua_gettop(L);
  if (rd__lua_load_embedded(L, "redrive.sandbox") != LUA_OK) return lua_error(L);
  lua_pushvalue(L, core);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "serve");
  return 1;
}

static void wstate_close(wstate *w) {
  if (w->L) lua_close(w->L);
  free(w->al);
  w->L = NULL;
  w->al = NULL;
}

/* 0, or -1 without memory (the state is then closed). */
static int wstate_open(wstate *w) {
  if (!(w->al = rd__sbx_alloc_new(0)) || !(w->L = lua_newstate(rd__sbx_alloc, w->al))) {
    wstate_close(w);
    return -1;
  }
  lua_pushcfunction(w->L, setup_in);
  if (lua_pcall(w->L, 0, 1, 0) != LUA_OK) {
    wstate_close(w);
    return -1;
  }
  w->serve = luaL_ref(w->L, LUA_REGISTRYINDEX);
  return 0;
}

static int serve_in(lua_State *L) {
  serve_args *a = lua_touserdata(L, 2);
  lua_settop(L, 1); /* S.serve */
  lua_pushlstring(L, a->text, a->len);
  lua_call(L, 1, 1);
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (!s) return luaL_error(L, "sandbox: serve gave no reply");
  if (!(a->reply = malloc(n ? n : 1))) return luaL_error(L, "out of memory");
  memcpy(a->reply, s, n);
  a->rlen = n;
  return 0;
}

/* A reply made here when serve() itself failed: the cap reached before
 * the code ran (a bundle too big for it), or a bug. */
static void fallback(serve_args *a, int nomem, size_t cap, const char *why) {
  char msg[400];
  size_t k = 0;
  if (nomem) {
    snprintf(msg, sizeof msg, "stopped: it needs more than %zu MiB of memory (its input alone)",
             cap >> 20);
  } else {
    /* a JSON string of the message, printable ASCII only */
    for (const char *p = why ? why : "?"; *p && k < sizeof msg - 1; p++)
      msg[k++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '?';
    msg[k] = 0;
  }
  char *r = malloc(sizeof msg + 64);
  if (!r) return;
  int n = snprintf(r, sizeof msg + 64, "{\"ok\":false,\"code\":\"%s\",\"message\":\"%s\"}",
                   nomem ? "nomem" : "engine", msg);
  a->reply = r;
  a->rlen = (size_t)n;
}

/* One request: its memory cap counts from what the state holds now (after
 * a full collection), so it bounds what the request's data and code take. */
static void serve(wstate *w, serve_args *a, uint64_t cap) {
  if (!w->L && wstate_open(w) != 0) {
    fallback(a, 1, (size_t)cap, NULL);
    return;
  }
  lua_State *L = w->L;
  lua_gc(L, LUA_GCCOLLECT);
  rd__sbx_alloc_cap(w->al, (size_t)cap);
  lua_pushcfunction(L, serve_in);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->serve);
  lua_pushlightuserdata(L, a);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    free(a->reply);
    a->reply = NULL;
    fallback(a, rd__sbx_alloc_tripped(w->al), (size_t)cap, lua_tostring(L, -1));
    wstate_close(w); /* whatever went wrong, the next request starts afresh */
  } else {
    rd__sbx_alloc_cap(w->al, 0);
    lua_gc(L, LUA_GCCOLLECT);
  }
#ifdef __GLIBC__
  malloc_trim(0); /* an idle worker does not sit on its last request's peak */
#endif
}

static _Noreturn void child_main(int fd, pid_t parent) {
  rd__sbx_forget();
  child_signals();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);
  close_others(fd);
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  wstate ws = {0};
  for (;;) {
    unsigned char hdr[REQ_HDR];
    if (io_full(fd, hdr, sizeof hdr, 0) != 0) _exit(0);
    uint32_t len;
    uint64_t cap;
    memcpy(&len, hdr, 4);
    memcpy(&cap, hdr + 4, 8);
    serve_args a = {0};
    char *text = malloc(len ? len : 1);
    if (!text || io_full(fd, text, len, 0) != 0) _exit(1);
    a.text = text;
    a.len = len;
    backstop(cap, len);
    serve(&ws, &a, cap);
    free(text);
    if (!a.reply) _exit(1);
    uint32_t rlen = (uint32_t)a.rlen;
    int bad = io_full(fd, &rlen, sizeof rlen, 1) || io_full(fd, a.reply, a.rlen, 1);
    free(a.reply);
    if (bad) _exit(0);
  }
}

/* core.sandbox_worker() -> worker | nil, msg, code: start a worker process */
static int l_worker_new(lua_State *L) {
  worker **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, RD_MT_WORKER);
  worker *w = calloc(1, sizeof *w);
  if (!w) return rd__lua_fail(L, RD_ENOMEM, "out of memory");
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    free(w);
    return rd__lua_fail(L, RD_EIO, "cannot start a sandbox worker: socketpair: %s", strerror(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    child_main(sv[1], parent);
  }
  close(sv[1]);
  if (pid < 0) {
    int e = errno;
    close(sv[0]);
    free(w);
    return rd__lua_fail(L, RD_EIO, "cannot start a sandbox worker: fork: %s", strerror(e));
  }
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  w->pid = pid;
  w->fd = sv[0];
  w->refs = 1;
  *ud = w;
  return 1;
}

static const luaL_Reg worker_methods[] = {
  {"call", l_worker_call}, {"alive", l_worker_alive}, {"pid", l_worker_pid},
  {"close", l_worker_close}, {NULL, NULL},
};

static const luaL_Reg worker_meta[] = {
  {"__gc", l_worker_close}, {"__close", l_worker_close}, {"__tostring", l_worker_tostring},
  {NULL, NULL},
};

void rd__open_worker(lua_State *L) {
  rd__new_class(L, RD_MT_WORKER, worker_meta, worker_methods);
  lua_pushcfunction(L, l_worker_new);
  lua_setfield(L, -2, "sandbox_worker");
}

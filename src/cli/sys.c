/*
 * redrive.cli.sys: the few system services the command's Lua half needs and
 * stock Lua lacks — directory listing and mtimes (rules), line editing and
 * history (REPL), and signal handling (Ctrl-C stops the running work, not
 * the process).
 *
 * Signals: SIGINT and SIGTERM get a plain sigaction handler (no SA_RESTART,
 * so a blocking read at the REPL prompt returns). The handler only does
 * async-signal-safe things: record the signal, uv_async_send() so the loop
 * cancels every wait (rd_loop_interrupt), and lua_sethook() on the thread that
 * runs the user's code so a busy Lua loop stops too (lua.c `laction`). A
 * second SIGINT or SIGTERM while the first is still being handled ends the
 * process at once (exit 130): a script that ignores the cancellation, or a
 * __close handler that hangs, cannot make redrive unkillable short of -9.
 */
#include "cli/cli.h"
#include "lua/lrd.h"

#include <dirent.h>
#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static rd_rt *sig_rt;
static uv_async_t sig_async;
static volatile sig_atomic_t sig_pending;  /* signal seen, not yet handled */
static volatile sig_atomic_t sig_prompt;   /* blocked in readline */
static volatile sig_atomic_t sig_prompt_int;
static lua_State *volatile sig_thread;     /* thread running user code */

/* Raises rd.canceled, the same value a cancelled wait raises. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  rd__wait_canceled(L);
}

static void on_signal(int signo) {
  if (sig_prompt && signo == SIGINT) {
    sig_prompt_int = 1;
    return;
  }
  if (sig_pending) {
    static const char msg[] = "\nredrive: interrupted twice, exiting\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(130);
  }
  sig_pending = signo;
  lua_State *T = sig_thread;
  if (T) lua_sethook(T, stop_hook, LUA_MASKCOUNT, 1);
  uv_async_send(&sig_async);
}

/* On the loop: the user's thread is parked (not running Lua), so cancelling
 * its wait is enough; drop the hook, or it would fire in the __close
 * handlers and error paths that the cancellation is about to run. */
static void on_async(uv_async_t *h) {
  (void)h;
  if (!sig_pending) return;
  if (sig_thread) lua_sethook(sig_thread, NULL, 0, 0);
  sig_rt->signal = sig_pending;
  rd_loop_interrupt(sig_rt->loop);
}

void rd__cli_signals(rd_rt *rt) {
  sig_rt = rt;
  uv_async_init(rd_loop_uv(rt->loop), &sig_async, on_async);
  uv_unref((uv_handle_t *)&sig_async); /* must not keep the loop alive */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: readline must return on Ctrl-C */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* sys.interrupted() -> signal number or false */
static int l_interrupted(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  int s = sig_pending ? sig_pending
                      : (rd_loop_interrupted(rt->loop) ? (rt->signal ? rt->signal : SIGINT) : 0);
  if (s) lua_pushinteger(L, s);
  else lua_pushboolean(L, 0);
  return 1;
}

/* sys.clear_interrupt(): back to normal after the work was unwound (REPL). */
static int l_clear_interrupt(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  if (sig_thread) lua_sethook(sig_thread, NULL, 0, 0);
  rd_loop_clear_interrupt(rt->loop);
  rt->signal = 0;
  sig_pending = 0;
  return 0;
}

/* sys.watch_thread([co]): the thread a signal's hook stops (default: the
 * running one); sys.watch_thread(false) forgets it. */
static int l_watch_thread(lua_State *L) {
  lua_State *T = L;
  if (lua_isthread(L, 1)) T = lua_tothread(L, 1);
  else if (!lua_isnoneornil(L, 1) && !lua_toboolean(L, 1)) T = NULL;
  lua_State *old = sig_thread;
  if (old && old != T) lua_sethook(old, NULL, 0, 0);
  sig_thread = T;
  /* keep the thread alive while it is watched */
  if (T && T != L) lua_pushvalue(L, 1);
  else if (T) lua_pushthread(L);
  else lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "redrive.cli.watched");
  return 0;
}

/* sys.drain(grace) -> tasks left: after an interrupt, keep cancelling what
 * tasks wait on and run the loop so they unwind (their __close handlers
 * and error paths run), for at most `grace` seconds. */
static int l_drain(lua_State *L) {
  double grace = luaL_optnumber(L, 1, 5);
  rd_err err = {0};
  if (rd__num_check(grace, "grace", &rd__range_seconds, &err)) luaL_argerror(L, 1, err.msg);
  rd_rt *rt = rd__rt(L);
  if (rd_loop_running(rt->loop)) return luaL_error(L, "redrive: drain: the loop is already running");
  lua_pushinteger(L, (lua_Integer)rd_loop_drain(rt->loop, (uint64_t)(grace * 1000)));
  return 1;
}

/* sys.isatty(fd) -> boolean */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* sys.setenv(name, value|nil) */
static int l_setenv(lua_State *L) {
  const char *k = luaL_checkstring(L, 1);
  if (lua_isnoneornil(L, 2)) unsetenv(k);
  else setenv(k, luaL_checkstring(L, 2), 1);
  return 0;
}

/* sys.listdir(path) -> {names, sorted} | nil, msg, code */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static int l_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return rd__lua_fail(L, errno == ENOENT ? RD_ENOT_FOUND : RD_EIO,
                              "cannot open directory '%s': %s", path, strerror(errno));
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  /* sort in Lua-independent C for a stable order */
  const char **names = malloc(sizeof *names * (size_t)(n ? n : 1));
  if (!names) return luaL_error(L, "out of memory");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    names[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(names);
  return 1;
}

/* sys.stat(path) -> {mtime, size, dir} | nil, msg, code */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0)
    return rd__lua_fail(L, errno == ENOENT ? RD_ENOT_FOUND : RD_EIO, "cannot stat '%s': %s", path,
                        strerror(errno));
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushboolean(L, S_ISDIR(st.st_mode));
  lua_setfield(L, -2, "dir");
  return 1;
}

/* sys.mkdir_p(path) -> true | nil, msg */
static int l_mkdir_p(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  char *p = malloc(len + 1);
  if (!p) return luaL_error(L, "out of memory");
  memcpy(p, path, len + 1);
  int ok = 1;
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        ok = 0;
        break;
      }
      *s = c;
      if (!c) break;
    }
  }
  if (!ok) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create '%s': %s", p, strerror(errno));
    free(p);
    return 2;
  }
  free(p);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- line editing ----------------------------------------------------------- */

static lua_State *comp_L;
static int comp_ref = LUA_NOREF;
static char **comp_list;
static int comp_n, comp_i;

static char *comp_next(const char *text, int state) {
  (void)text;
  if (state == 0) comp_i = 0;
  if (comp_i < comp_n) return strdup(comp_list[comp_i++]);
  return NULL;
}

static void comp_free(void) {
  for (int i = 0; i < comp_n; i++) free(comp_list[i]);
  free(comp_list);
  comp_list = NULL;
  comp_n = 0;
}

/* Ask the Lua completer fn(word, line, start) for the candidates. */
static char **complete(const char *text, int start, int end) {
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  comp_free();
  lua_State *L = comp_L;
  if (!L || comp_ref == LUA_NOREF) return NULL;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, comp_ref);
  lua_pushstring(L, text);
  lua_pushstring(L, rl_line_buffer ? rl_line_buffer : "");
  lua_pushinteger(L, start);
  if (lua_pcall(L, 3, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    int n = (int)luaL_len(L, -1);
    if (n > 0 && (comp_list = calloc((size_t)n, sizeof *comp_list))) {
      for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const char *s = lua_tostring(L, -1);
        if (s) comp_list[comp_n++] = strdup(s);
        lua_pop(L, 1);
      }
    }
  }
  lua_settop(L, top);
  if (comp_n == 0) return NULL;
  return rl_completion_matches(text, comp_next);
}

/* sys.set_completer(fn): fn(word, line, start) -> {candidates} */
static int l_set_completer(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  if (comp_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, comp_ref);
  comp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  comp_L = L;
  rl_readline_name = "redrive";
  rl_catch_signals = 0;
  rl_attempted_completion_function = complete;
  /* '.' and ':' split words so "rd.js<TAB>" completes the field only */
  rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[].:";
  rl_completer_word_break_characters = (char *)rl_basic_word_break_characters;
  rl_completion_append_character = '\0';
  return 0;
}

/* sys.readline(prompt) -> line | nil (end of input) | false (Ctrl-C) */
static int l_readline(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  rl_catch_signals = 0;
  sig_prompt_int = 0;
  sig_prompt = 1;
  char *line = readline(prompt);
  sig_prompt = 0;
  if (sig_prompt_int) {
    sig_prompt_int = 0;
    free(line);
    fputs("^C\n", stdout);
    fflush(stdout);
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!line) return 0;
  lua_pushstring(L, line);
  free(line);
  return 1;
}

/* sys.add_history(line): a line that holds a secret someone typed (a
 * credential this process sent, `token = "..."`) is not kept. */
static int l_add_history(lua_State *L) {
  size_t n;
  const char *line = luaL_checklstring(L, 1, &n);
  if (!rd_redact_holds_secret(line, n)) add_history(line);
  return 0;
}

/* Drop the entries that hold a secret now: a literal typed before it was
 * sent is known to be a credential only once it has been. 0, or -1 when out
 * of memory (the history is then left as it was). */
static int scrub_history(void) {
  int n = history_length, kept = 0;
  char **keep = calloc((size_t)n + 1, sizeof *keep);
  if (!keep) return -1;
  int r = 0;
  for (int i = 0; i < n && r == 0; i++) {
    HIST_ENTRY *e = history_get(history_base + i);
    if (!e || !e->line || rd_redact_holds_secret(e->line, strlen(e->line))) continue;
    if (!(keep[kept++] = strdup(e->line))) r = -1;
  }
  if (r == 0 && kept < n) {
    clear_history();
    for (int i = 0; i < kept; i++) add_history(keep[i]);
  }
  for (int i = 0; i < kept; i++) free(keep[i]);
  free(keep);
  return r;
}

/* sys.load_history(path, max) */
static int l_load_history(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  stifle_history((int)luaL_optinteger(L, 2, 1000));
  lua_pushboolean(L, read_history(path) == 0);
  return 1;
}

/* sys.save_history(path, max) -> true | nil, msg */
static int l_save_history(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (scrub_history() != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "history '%s' not written: out of memory", path);
    return 2;
  }
  int r = write_history(path);
  if (r != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write history '%s': %s", path, strerror(r > 0 ? r : errno));
    return 2;
  }
  history_truncate_file(path, (int)luaL_optinteger(L, 2, 1000));
  chmod(path, 0600);
  lua_pushboolean(L, 1);
  return 1;
}

/* sys.create_private(path) -> true | nil, msg: create path with mode 0600 if
 * it does not exist (io.open would create it with the umask's mode); an
 * existing file is left as it is. */
static int l_create_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create '%s': %s", path, strerror(errno));
    return 2;
  }
  if (fd >= 0) close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg sys_funcs[] = {
  {"interrupted", l_interrupted}, {"clear_interrupt", l_clear_interrupt},
  {"watch_thread", l_watch_thread}, {"drain", l_drain}, {"isatty", l_isatty},
  {"setenv", l_setenv}, {"listdir", l_listdir}, {"stat", l_stat}, {"mkdir_p", l_mkdir_p},
  {"set_completer", l_set_completer}, {"readline", l_readline},
  {"add_history", l_add_history}, {"load_history", l_load_history},
  {"save_history", l_save_history}, {"create_private", l_create_private}, {NULL, NULL},
};

void rd__cli_open_sys(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  luaL_newlib(L, sys_funcs);
  lua_setfield(L, -2, "redrive.cli.sys");
  lua_pop(L, 1);
}

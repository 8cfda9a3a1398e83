/* The bounded matcher's C contract (src/core/pattern.h): stop flag set by
 * another thread or a signal handler, budgets shared across calls, subjects
 * without a terminating NUL, bounded depth, the static check. Lua-level
 * agreement with string.* is in tests/lua/test_pattern.lua. */
#include "core/pattern.h"
#include "redrive.h"
#include "test.h"

#include <pthread.h>
#include <signal.h>

/* A subject in a buffer of exactly its size, so ASan sees any read past it. */
static char *exact(const char *s, size_t n) {
  char *p = malloc(n ? n : 1);
  ASSERT(p);
  memcpy(p, s, n);
  return p;
}

static char *as_rep(char c, size_t n) {
  char *p = malloc(n);
  ASSERT(p);
  memset(p, c, n);
  return p;
}

static int find(const char *s, size_t ls, const char *p, rd_pat_budget *b, size_t *st, size_t *en,
                rd_err *err) {
  rd_pat m;
  rd__pat_init(&m, s, ls, p, strlen(p), 1, b);
  return rd__pat_search(&m, 0, st, en, err);
}

RD_TEST(pattern_basic_match_and_captures) {
  rd_pat_budget b = {.limit = 1000};
  rd_pat m;
  char *s = exact("key=val;", 8);
  rd__pat_init(&m, s, 8, "(%w+)=()(%w+)", 13, 1, &b);
  size_t st, en, at, len;
  rd_err err = {0};
  ASSERT_INT_EQ(rd__pat_search(&m, 0, &st, &en, &err), 1);
  ASSERT_INT_EQ(st, 0);
  ASSERT_INT_EQ(en, 7);
  ASSERT_INT_EQ(m.level, 3);
  ASSERT_INT_EQ(rd__pat_capture(&m, 0, st, en, &at, &len, &err), 0);
  ASSERT(at == 0 && len == 3);
  ASSERT_INT_EQ(rd__pat_capture(&m, 1, st, en, &at, &len, &err), 1); /* position */
  ASSERT_INT_EQ(at, 5);
  ASSERT_INT_EQ(rd__pat_capture(&m, 3, st, en, &at, &len, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "invalid capture index %4");
  ASSERT(b.used > 0 && b.used < 100);
  free(s);
}

RD_TEST(pattern_subject_needs_no_nul) {
  /* every construct that looks at the byte after the subject */
  const char *pats[] = {"%f[%z]", "b$", "%bab", "%f[%w]", "b%f[%W]", "b%z", "(b)%1", "b.?$"};
  char *s = exact("ab", 2);
  int want[] = {1, 1, 1, 1, 1, 0, 0, 1};
  for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
    rd_pat_budget b = {.limit = 1000};
    size_t st, en;
    rd_err err = {0};
    ASSERT_INT_EQ(find(s, 2, pats[i], &b, &st, &en, &err), want[i]);
  }
  free(s);
}

RD_TEST(pattern_budget_trips_with_limit_and_names_the_pattern) {
  size_t n = 3000, st, en;
  char *s = as_rep('a', n);
  rd_pat_budget b = {.limit = 1000000};
  rd_err err = {0};
  ASSERT_INT_EQ(find(s, n, ".-.-.-.-b", &b, &st, &en, &err), RD_ELIMIT);
  ASSERT_INT_EQ(err.code, RD_ELIMIT);
  ASSERT_STR_EQ(err.msg, "pattern '.-.-.-.-b': step budget of 1000000 exceeded");
  ASSERT(b.used > b.limit && b.used <= b.limit + 1);
  ASSERT_STR_EQ(rd_err_name(RD_ELIMIT), "limit");
  /* a long or binary pattern is shortened and escaped */
  char pat[200];
  memset(pat, '.', sizeof pat);
  memcpy(pat, "\x01-", 2);
  memcpy(pat + sizeof pat - 2, "-b", 2);
  rd_pat m;
  rd_pat_budget b2 = {.limit = 1000};
  rd__pat_init(&m, s, n, pat, sizeof pat, 1, &b2);
  ASSERT_INT_EQ(rd__pat_search(&m, 0, &st, &en, &err), RD_ELIMIT);
  ASSERT_CONTAINS(err.msg, "pattern '\\x01-......");
  ASSERT_CONTAINS(err.msg, "...': step budget of 1000 exceeded");
  ASSERT(strlen(err.msg) < 100);
  free(s);
}

RD_TEST(pattern_budget_is_shared_by_calls_that_share_it) {
  rd_pat_budget b = {.limit = 100};
  size_t st, en;
  rd_err err = {0};
  int r = 0, calls = 0;
  while ((r = find("abcabc", 6, "c", &b, &st, &en, &err)) == 1) calls++;
  ASSERT_INT_EQ(r, RD_ELIMIT);
  ASSERT(calls > 3 && calls < 100);
  ASSERT(b.used > 100);
}

RD_TEST(pattern_depth_is_bounded_without_stack_growth) {
  /* Lua's bound: 199 nesting items pass, 200 are "pattern too complex" */
  char *s = as_rep('a', 400);
  char pat[1000];
  for (int n = 199; n <= 200; n++) {
    for (int i = 0; i < n; i++) memcpy(pat + 2 * i, "a?", 2);
    pat[2 * n] = '\0';
    rd_pat_budget b = {.limit = UINT64_MAX};
    size_t st, en;
    rd_err err = {0};
    int r = find(s, (size_t)n, pat, &b, &st, &en, &err);
    if (n == 199) {
      ASSERT_INT_EQ(r, 1);
    } else {
      ASSERT_INT_EQ(r, RD_EINVALID);
      ASSERT_STR_EQ(err.msg, "pattern too complex");
    }
  }
  /* 10000 '(' stop at the capture limit */
  char *opens = as_rep('(', 10001);
  opens[10000] = '\0';
  rd_pat_budget b = {.limit = UINT64_MAX};
  size_t st, en;
  rd_err err = {0};
  ASSERT_INT_EQ(find(s, 400, opens, &b, &st, &en, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "too many captures");
  /* deep backtracking over a long subject trips the budget, not the stack */
  rd_pat_budget b2 = {.limit = 5000000};
  ASSERT_INT_EQ(find(s, 400, "a*a*a*a*a*a*a*a*a*a*a*a*b", &b2, &st, &en, &err), RD_ELIMIT);
  free(opens);
  free(s);
}

/* ---- the stop flag --------------------------------------------------------- */

static atomic_int stop_flag;
static pthread_t matcher_thread;

static void *set_flag(void *arg) {
  (void)arg;
  atomic_store(&stop_flag, 1);
  return NULL;
}

static void on_usr1(int sig) {
  (void)sig;
  atomic_store(&stop_flag, 1); /* lock-free atomics are async-signal-safe */
}

static void *send_usr1(void *arg) {
  (void)arg;
  pthread_kill(matcher_thread, SIGUSR1);
  return NULL;
}

/* Run the catastrophic match with an unlimited budget while `fn` runs in a
 * thread: only the stop flag can end it. */
static void stopped_by(void *(*fn)(void *)) {
  size_t n = 3000, st, en;
  char *s = as_rep('a', n);
  rd_pat_budget b = {.limit = UINT64_MAX, .stop = &stop_flag};
  rd_err err = {0};
  atomic_store(&stop_flag, 0);
  matcher_thread = pthread_self();
  pthread_t t;
  ASSERT_OK(pthread_create(&t, NULL, fn, NULL));
  ASSERT_INT_EQ(find(s, n, ".-.-.-.-b", &b, &st, &en, &err), RD_ELIMIT);
  ASSERT_STR_EQ(err.msg, "pattern '.-.-.-.-b': matching stopped");
  pthread_join(t, NULL);
  free(s);
}

RD_TEST(pattern_stop_flag_from_another_thread) { stopped_by(set_flag); }

RD_TEST(pattern_stop_flag_from_a_signal_handler) {
  struct sigaction sa = {.sa_handler = on_usr1};
  sigemptyset(&sa.sa_mask);
  ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));
  stopped_by(send_usr1);
}

RD_TEST(pattern_stop_flag_set_before_the_call_stops_at_once) {
  atomic_store(&stop_flag, 1);
  rd_pat_budget b = {.limit = 1000, .stop = &stop_flag};
  size_t st, en;
  rd_err err = {0};
  ASSERT_INT_EQ(find("abc", 3, "c", &b, &st, &en, &err), RD_ELIMIT);
  ASSERT(b.used <= 1);
}

/* ---- plain search and the static check -------------------------------------- */

RD_TEST(pattern_plain_find_is_linear_and_charged) {
  size_t n = 1 << 20, at;
  char *hay = as_rep('a', n);
  char *needle = as_rep('a', n / 2);
  needle[n / 2 - 1] = 'b';
  rd_pat_budget b = {.limit = UINT64_MAX};
  rd_err err = {0};
  ASSERT_INT_EQ(rd__pat_plain_find(hay, n, 0, needle, n / 2, &b, &at, &err), 0);
  ASSERT(b.used >= n / 64);
  hay[n - 1] = 'b';
  ASSERT_INT_EQ(rd__pat_plain_find(hay, n, 3, needle, n / 2, &b, &at, &err), 1);
  ASSERT_INT_EQ(at, n / 2);
  rd_pat_budget small = {.limit = 10};
  ASSERT_INT_EQ(rd__pat_plain_find(hay, n, 0, "b", 1, &small, &at, &err), RD_ELIMIT);
  ASSERT_INT_EQ(rd__pat_is_plain("abc def", 7), 1);
  ASSERT_INT_EQ(rd__pat_is_plain("a\0.", 3), 0);
  free(hay);
  free(needle);
}

RD_TEST(pattern_check_refuses_what_lua_reports_late) {
  struct { const char *p; const char *msg; } bad[] = {
    {"a(", "unfinished capture"},
    {"a)", "invalid pattern capture"},
    {"a[b", "malformed pattern (missing ']')"},
    {"a[]", "malformed pattern (missing ']')"},
    {"a%", "malformed pattern (ends with '%')"},
    {"a%b(", "malformed pattern (missing arguments to '%b')"},
    {"a%fx", "missing '[' after '%f' in pattern"},
    {"(a)%2", "invalid capture index %2"},
    {"(a%1)", "invalid capture index %1"},
    {"%0", "invalid capture index %0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rd_err err = {0};
    ASSERT_INT_EQ(rd__pat_check(bad[i].p, strlen(bad[i].p), &err), RD_EINVALID);
    ASSERT_STR_EQ(err.msg, bad[i].msg);
  }
  const char *good[] = {"", "^", "$", "^a$", "[]]", "[^]]", "%bxy", "%f[%w]", "()%1", "(a)(b)%2%1",
                        "a*b+c-d?", "[%]]", "%%", "^^", "a$b"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    rd_err err = {0};
    ASSERT_INT_EQ(rd__pat_check(good[i], strlen(good[i]), &err), 0);
  }
}

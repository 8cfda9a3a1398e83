/* Tiny C test framework: RD_TEST(name) { ... } registers a test; each test
 * runs in a forked child so a crash fails one test, not the run. */
#ifndef RD_TESTS_TEST_H
#define RD_TESTS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*rd_test_fn)(void);
void rd_test_register(const char *name, const char *file, rd_test_fn fn);
/* Directory for temporary files of the running test (created, removed after). */
const char *rd_test_tmpdir(void);
/* Base URL of the loopback test server ("http://127.0.0.1:PORT"), or NULL. */
const char *rd_test_server(void);

/* The store suite runs on both backends: tests/run runs the store tests a
 * second time with RD_STORE=pg and RD_TEST_PG set (tests/pg.sh). */
/* Is this the PostgreSQL run? */
int rd_test_pg(void);
/* The target of store `name` for this test: a file in its temp dir, or a
 * schema of its own in the test database (the same name gives the same
 * store within a test). */
const char *rd_test_store(const char *name);
/* Run SQL on the PostgreSQL test database (psql); fails the test if it fails.
 * Returns the first value of the output (static), "" if none. */
const char *rd_test_psql(const char *sql);

#define RD_TEST(name)                                                        \
  static void rd_test_##name(void);                                          \
  __attribute__((constructor)) static void rd_test_reg_##name(void) {       \
    rd_test_register(#name, __FILE__, rd_test_##name);                       \
  }                                                                          \
  static void rd_test_##name(void)

#define RD__FAIL(...)                                                        \
  do {                                                                       \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                          \
    fprintf(stderr, __VA_ARGS__);                                            \
    fputc('\n', stderr);                                                     \
    exit(1);                                                                 \
  } while (0)

/* Exit status of a skipped test (as automake's). */
#define RD_TEST_SKIP_STATUS 77
/* Records why the running test skips (the runner prints it on the test's
 * "skip" line). */
void rd_test_skip_why(const char *why);
/* Skip the running test: a tool it needs is missing. Says why. */
#define RD_SKIP(...)                                                         \
  do {                                                                       \
    char rd__why[256];                                                       \
    snprintf(rd__why, sizeof rd__why, __VA_ARGS__);                          \
    rd_test_skip_why(rd__why);                                               \
    exit(RD_TEST_SKIP_STATUS);                                               \
  } while (0)

#define ASSERT(expr)                                                         \
  do { if (!(expr)) RD__FAIL("assertion failed: %s", #expr); } while (0)

#define ASSERT_INT_EQ(a, b)                                                  \
  do {                                                                       \
    long long a_ = (long long)(a), b_ = (long long)(b);                      \
    if (a_ != b_) RD__FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);        \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                  \
  do {                                                                       \
    const char *a_ = (a), *b_ = (b);                                         \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                   \
      RD__FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",     \
               b_ ? b_ : "(null)");                                          \
  } while (0)

#define ASSERT_OK(expr)                                                      \
  do {                                                                       \
    int r_ = (expr);                                                         \
    if (r_ != 0) RD__FAIL("%s returned %d", #expr, r_);                      \
  } while (0)

#define ASSERT_CONTAINS(hay, needle)                                         \
  do {                                                                       \
    const char *h_ = (hay), *n_ = (needle);                                  \
    if (!h_ || !strstr(h_, n_))                                              \
      RD__FAIL("%s contains %s: \"%s\" lacks \"%s\"", #hay, #needle,         \
               h_ ? h_ : "(null)", n_);                                      \
  } while (0)

#endif

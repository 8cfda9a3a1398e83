/* Runs every registered C test in a forked child and prints one line per
 * test and a closing "N passed, N failed, N skipped". Arguments filter by
 * substring. A test that needs a missing tool calls RD_SKIP(why). */
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  const char *name, *file;
  rd_test_fn fn;
} entry;

static entry *tests;
static size_t ntests, captests;
static char tmpdir[256];

void rd_test_register(const char *name, const char *file, rd_test_fn fn) {
  if (ntests == captests) {
    captests = captests ? captests * 2 : 64;
    tests = realloc(tests, captests * sizeof *tests);
    if (!tests) abort();
  }
  tests[ntests++] = (entry){name, file, fn};
}

const char *rd_test_tmpdir(void) { return tmpdir; }

/* The child writes why it skips into its temp dir; the parent reads it
 * before removing the dir. */
static char skip_why[256];

static void why_path(char *out, size_t n) { snprintf(out, n, "%s/.skip-why", tmpdir); }

void rd_test_skip_why(const char *why) {
  char p[300];
  why_path(p, sizeof p);
  FILE *f = fopen(p, "w");
  if (f) {
    fputs(why, f);
    fclose(f);
  }
}

static void read_skip_why(void) {
  char p[300];
  why_path(p, sizeof p);
  skip_why[0] = '\0';
  FILE *f = fopen(p, "r");
  if (!f) return;
  if (!fgets(skip_why, sizeof skip_why, f)) skip_why[0] = '\0';
  fclose(f);
}
const char *rd_test_server(void) { return getenv("RD_TEST_SERVER"); }

int rd_test_pg(void) {
  const char *s = getenv("RD_STORE");
  return s && strcmp(s, "pg") == 0;
}

const char *rd_test_psql(const char *sql) {
  static char out[4096];
  const char *psql = getenv("RD_TEST_PG_PSQL");
  if (!psql) {
    fprintf(stderr, "rd_test_psql: RD_TEST_PG_PSQL is not set\n");
    exit(1);
  }
  /* sql in single quotes for the shell, each ' as '\'' */
  char cmd[16384];
  size_t n = (size_t)snprintf(cmd, sizeof cmd, "%s -At -c '", psql);
  for (const char *c = sql; *c && n + 8 < sizeof cmd; c++) {
    if (*c == '\'') n += (size_t)snprintf(cmd + n, sizeof cmd - n, "'\\''");
    else cmd[n++] = *c;
  }
  snprintf(cmd + n, sizeof cmd - n, "' 2>&1");
  FILE *p = popen(cmd, "r");
  n = p ? fread(out, 1, sizeof out - 1, p) : 0;
  out[n] = '\0';
  int rc = p ? pclose(p) : -1;
  if (rc != 0) {
    fprintf(stderr, "psql failed: %s\n%s\n", sql, out);
    exit(1);
  }
  out[strcspn(out, "\n")] = '\0';
  return out;
}

const char *rd_test_store(const char *name) {
  static char buf[8][1024];
  static int i;
  char *p = buf[i++ % 8];
  if (!rd_test_pg()) {
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
  }
  const char *url = getenv("RD_TEST_PG");
  if (!url) {
    fprintf(stderr, "rd_test_store: RD_TEST_PG is not set\n");
    exit(1);
  }
  char schema[96];
  int n = snprintf(schema, sizeof schema, "t%d_", (int)getpid());
  for (const char *c = name; *c && n < (int)sizeof schema - 1; c++)
    schema[n++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c : '_');
  schema[n] = '\0';
  char sql[160];
  snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", schema);
  rd_test_psql(sql);
  snprintf(p, sizeof buf[0], "%s&options=-csearch_path%%3D%s", url, schema);
  return p;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

enum { FAILED, PASSED, SKIPPED };

/* Seconds a test may run before it counts as hung: a bound on a hang, not a
 * speed test, so it is generous and grows where everything is slower:
 * RD_TEST_ALARM if set, else 20 minutes under valgrind (tests/run sets
 * VALGRIND; it runs code some 50 times slower), else 2 minutes. */
static unsigned alarm_seconds(void) {
  const char *s = getenv("RD_TEST_ALARM");
  if (s && atoi(s) > 0) return (unsigned)atoi(s);
  return getenv("VALGRIND") ? 1200 : 120;
}

static int run_one(const entry *t) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/rd-test-%d-%s", (int)getpid(), t->name);
  mkdir(tmpdir, 0700);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(alarm_seconds()); /* a hung test fails instead of hanging the run */
    t->fn();
    exit(0);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  read_skip_why();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return PASSED;
  if (WIFEXITED(st) && WEXITSTATUS(st) == RD_TEST_SKIP_STATUS) return SKIPPED;
  if (WIFSIGNALED(st)) fprintf(stderr, "  killed by signal %d\n", WTERMSIG(st));
  return FAILED;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0, skipped = 0;
  for (size_t i = 0; i < ntests; i++) {
    int selected = argc < 2;
    for (int a = 1; a < argc; a++)
      if (strstr(tests[i].name, argv[a]) || strstr(tests[i].file, argv[a])) selected = 1;
    if (!selected) continue;
    int r = run_one(&tests[i]);
    if (r == PASSED) passed++;
    else if (r == SKIPPED) skipped++;
    else failed++;
    printf("%s %s (%s)\n", r == PASSED ? "ok  " : r == SKIPPED ? "skip" : "FAIL", tests[i].name,
           r == SKIPPED && skip_why[0] ? skip_why : tests[i].file);
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  free(tests);
  return failed ? 1 : 0;
}

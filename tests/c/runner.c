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
const char *rd_test_server(void) { return getenv("RD_TEST_SERVER"); }

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

enum { FAILED, PASSED, SKIPPED };

static int run_one(const entry *t) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/rd-test-%d-%s", (int)getpid(), t->name);
  mkdir(tmpdir, 0700);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(120); /* a hung test fails instead of hanging the run */
    t->fn();
    exit(0);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
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
           tests[i].file);
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  free(tests);
  return failed ? 1 : 0;
}

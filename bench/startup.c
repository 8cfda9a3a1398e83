/*
 * bench/startup: median wall time of starting a command, many times.
 *
 *   startup RUNS CMD [ARGS...]   -> prints "median_us M min_us N runs R"
 *
 * fork + execvp + waitpid, stdout/stderr to /dev/null; fails if a run exits
 * non-zero. Three warm-up runs are not counted.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double once(char **argv) {
  double t0 = now_us();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  double t = now_us() - t0;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "startup: %s exited with status %d\n", argv[0], WEXITSTATUS(st));
    exit(1);
  }
  return t;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: startup RUNS CMD [ARGS...]\n");
    return 2;
  }
  int runs = atoi(argv[1]);
  double *t = malloc(sizeof *t * (size_t)runs);
  for (int i = 0; i < 3; i++) once(argv + 2);
  for (int i = 0; i < runs; i++) t[i] = once(argv + 2);
  qsort(t, (size_t)runs, sizeof *t, cmp);
  printf("median_us %.0f min_us %.0f runs %d\n", t[runs / 2], t[0], runs);
  free(t);
  return 0;
}

/*
 * bench/startup: median wall time of starting a command, many times.
 *
 *   startup RUNS CMD [ARGS...]              -> "median_us M min_us N runs R"
 *   startup RUNS CMD [ARGS...] -- CMD2 ...  -> the same line for each command;
 *        the runs of the two alternate, so a load change on the machine hits
 *        both alike and their ratio stays fair
 *
 * fork + execvp + waitpid, stdout/stderr to /dev/null; fails if a run exits
 * non-zero. Three warm-up runs of each are not counted.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    fprintf(stderr, "usage: startup RUNS CMD [ARGS...] [-- CMD2 [ARGS...]]\n");
    return 2;
  }
  int runs = atoi(argv[1]);
  char **cmd[2] = {argv + 2, NULL};
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      argv[i] = NULL;
      cmd[1] = argv + i + 1;
      break;
    }
  int n = cmd[1] && cmd[1][0] ? 2 : 1;
  double *t[2] = {malloc(sizeof(double) * (size_t)runs), malloc(sizeof(double) * (size_t)runs)};
  for (int i = 0; i < 3; i++)
    for (int c = 0; c < n; c++) once(cmd[c]);
  for (int i = 0; i < runs; i++)
    for (int c = 0; c < n; c++) t[c][i] = once(cmd[c]);
  for (int c = 0; c < n; c++) {
    qsort(t[c], (size_t)runs, sizeof(double), cmp);
    printf("median_us %.0f min_us %.0f runs %d\n", t[c][runs / 2], t[c][0], runs);
  }
  free(t[0]);
  free(t[1]);
  return 0;
}

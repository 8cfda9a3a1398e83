/* Global options of the redrive command, before a script or command. --db and
 * --profile only name what rd.connect uses; which store wins is decided in
 * lua/redrive/sources.lua. The global options' table is U.GLOBALS
 * (lua/redrive/cli/util.lua: the help, the parser after a command);
 * tests/sh/test_cli_commands.sh (help-1.6) holds this parser to it. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int need(int i, int argc, char **argv) {
  if (i + 1 >= argc) {
    fprintf(stderr, "redrive: option '%s' needs an argument\n", argv[i]);
    return 0;
  }
  return 1;
}

/* An option with a value, as "--name VALUE" or "--name=VALUE": sets *out and
 * returns 1 when argv[*i] is that option (advancing *i past the value), 0 when
 * it is another option, -1 after a usage error (missing or empty value). */
static int valued(const char *name, int *i, int argc, char **argv, const char **out) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '=')) return 0;
  const char *v;
  if (a[n] == '=') {
    v = a + n + 1;
  } else {
    if (!need(*i, argc, argv)) return -1;
    v = argv[++*i];
  }
  if (!*v) return fprintf(stderr, "redrive: option '%s' needs a non-empty value\n", name), -1;
  *out = v;
  return 1;
}

int rd__cli_parse(rd_cli_opts *o, int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    int r;
    if (a[0] != '-' || strcmp(a, "-") == 0) break;
    if (strcmp(a, "--") == 0) return i + 1;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) o->help = 1;
    else if (!strcmp(a, "-v") || !strcmp(a, "--version")) o->version = 1;
    else if (!strcmp(a, "--dry-run")) o->dry_run = 1;
    else if (!strcmp(a, "--json")) o->json = 1;
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o->quiet = 1;
    else if (!strcmp(a, "--verbose")) o->verbose = 1;
    else if (!strcmp(a, "--force")) o->force = 1;
    else if (!strcmp(a, "-e")) {
      if (!need(i, argc, argv)) return -1;
      o->code = argv[++i];
    } else if (!strcmp(a, "-l")) {
      if (!need(i, argc, argv)) return -1;
      if (o->nrequire == 16) return fprintf(stderr, "redrive: too many -l\n"), -1;
      o->require[o->nrequire++] = argv[++i];
    } else if ((r = valued("--db", &i, argc, argv, &o->db)) != 0 ||
               (r = valued("--profile", &i, argc, argv, &o->profile)) != 0 ||
               (r = valued("--ledger", &i, argc, argv, &o->ledger)) != 0) {
      if (r < 0) return -1;
    } else {
      fprintf(stderr, "redrive: unknown option '%s' (see redrive --help)\n", a);
      return -1;
    }
  }
  return i;
}

/* Loading libpq on first use: see pg_dl.h for why. */
#include "store/pg_dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <uv.h>

rd__pq_api rd__pq;

static int load_status;       /* 0 ok, else RD_EUNSUPPORTED */
static char load_msg[256];

static void load_once(void) {
  static const char *const names[] = {"libpq.so.5", "libpq.so"};
  void *lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
    lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(load_msg, sizeof load_msg,
             "store: cannot load libpq (install the libpq5 package): %s", dlerror());
    load_status = RD_EUNSUPPORTED;
    return;
  }
  const struct { void **slot; const char *name; } syms[] = {
#define RD__PQ_SYM(ret, name, args) {(void **)&rd__pq.name, "PQ" #name},
    RD__PQ_FUNCS(RD__PQ_SYM)
#undef RD__PQ_SYM
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    *syms[i].slot = dlsym(lib, syms[i].name);
    if (!*syms[i].slot) {
      snprintf(load_msg, sizeof load_msg, "store: libpq lacks %s (libpq 14 or later is needed)",
               syms[i].name);
      load_status = RD_EUNSUPPORTED;
      return; /* the library stays loaded: harmless, and dlclose could race */
    }
  }
}

int rd__pq_load(rd_err *err) {
  static uv_once_t once = UV_ONCE_INIT;
  uv_once(&once, load_once);
  if (load_status) return rd_err_set(err, load_status, "%s", load_msg);
  return 0;
}

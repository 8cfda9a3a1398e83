/* Loading libcurl on first use: see curl_dl.h for why. */
#include "http/curl_dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

rd__curl_api rd__curl;

static int load_status;       /* 0 ok, else RD_EHTTP */
static char load_msg[256];

#define SYM(field, name) {(void **)&rd__curl.field, name}

static void load_once(void) {
  static const char *const names[] = {"libcurl.so.4", "libcurl.so"};
  void *lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
    lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(load_msg, sizeof load_msg, "http: cannot load libcurl: %s", dlerror());
    load_status = RD_EHTTP;
    return;
  }
  const struct { void **slot; const char *name; } syms[] = {
    SYM(global_init, "curl_global_init"), SYM(multi_init, "curl_multi_init"),
    SYM(multi_setopt, "curl_multi_setopt"),
    SYM(multi_socket_action, "curl_multi_socket_action"),
    SYM(multi_info_read, "curl_multi_info_read"),
    SYM(multi_add_handle, "curl_multi_add_handle"),
    SYM(multi_remove_handle, "curl_multi_remove_handle"),
    SYM(multi_assign, "curl_multi_assign"), SYM(multi_cleanup, "curl_multi_cleanup"),
    SYM(easy_init, "curl_easy_init"), SYM(easy_cleanup, "curl_easy_cleanup"),
    SYM(easy_reset, "curl_easy_reset"), SYM(easy_setopt, "curl_easy_setopt"),
    SYM(easy_getinfo, "curl_easy_getinfo"), SYM(easy_strerror, "curl_easy_strerror"),
    SYM(slist_append, "curl_slist_append"), SYM(slist_free_all, "curl_slist_free_all"),
    SYM(version_info, "curl_version_info"),
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    *syms[i].slot = dlsym(lib, syms[i].name);
    if (!*syms[i].slot) {
      snprintf(load_msg, sizeof load_msg, "http: libcurl lacks %s", syms[i].name);
      load_status = RD_EHTTP;
      return; /* the library stays loaded: harmless, and dlclose could race */
    }
  }
  if (rd__curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(load_msg, sizeof load_msg, "http: curl_global_init failed");
    load_status = RD_EHTTP;
  }
}

int rd__curl_load(rd_err *err) {
  static uv_once_t once = UV_ONCE_INIT;
  uv_once(&once, load_once);
  if (load_status) return rd_err_set(err, load_status, "%s", load_msg);
  return 0;
}

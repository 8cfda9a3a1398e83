/*
 * libcurl, loaded on first use. Linking libcurl costs every start of the
 * command about 4 ms (the dynamic loader maps and relocates its ~35
 * dependent libraries), which a cron script that never makes an HTTP call
 * should not pay; so src/http calls libcurl through this table, filled by
 * dlopen("libcurl.so.4") the first time an rd_http is created.
 *
 * Include this instead of <curl/curl.h>: the macros below make the usual
 * curl_* names resolve to the table, so call sites read as plain libcurl.
 */
#ifndef RD_HTTP_CURL_DL_H
#define RD_HTTP_CURL_DL_H

#define CURL_DISABLE_TYPECHECK /* curl_easy_setopt as a plain function */
#include <curl/curl.h>

#include "redrive.h"

typedef struct rd__curl_api {
  CURLcode (*global_init)(long);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMcode (*multi_cleanup)(CURLM *);
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *);
  void (*easy_reset)(CURL *);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  const char *(*easy_strerror)(CURLcode);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  curl_version_info_data *(*version_info)(CURLversion);
} rd__curl_api;

extern rd__curl_api rd__curl;

/* Load libcurl (once; thread-safe) and run curl_global_init. 0, or RD_EHTTP
 * with a message naming the library. */
int rd__curl_load(rd_err *err);

/* curl.h defines some of these names as function-like macros: replace them */
#undef curl_multi_setopt
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init rd__curl.global_init
#define curl_multi_init rd__curl.multi_init
#define curl_multi_setopt rd__curl.multi_setopt
#define curl_multi_socket_action rd__curl.multi_socket_action
#define curl_multi_info_read rd__curl.multi_info_read
#define curl_multi_add_handle rd__curl.multi_add_handle
#define curl_multi_remove_handle rd__curl.multi_remove_handle
#define curl_multi_assign rd__curl.multi_assign
#define curl_multi_cleanup rd__curl.multi_cleanup
#define curl_easy_init rd__curl.easy_init
#define curl_easy_cleanup rd__curl.easy_cleanup
#define curl_easy_reset rd__curl.easy_reset
#define curl_easy_setopt rd__curl.easy_setopt
#define curl_easy_getinfo rd__curl.easy_getinfo
#define curl_easy_strerror rd__curl.easy_strerror
#define curl_slist_append rd__curl.slist_append
#define curl_slist_free_all rd__curl.slist_free_all
#define curl_version_info rd__curl.version_info

#endif

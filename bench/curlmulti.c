/*
 * bench/curlmulti: a raw libcurl-multi HTTP client, the like-for-like limit
 * for redrive's HTTP (same library, same keep-alive, no Lua, no loop glue).
 *
 *   curlmulti URL CONCURRENCY TOTAL [fresh]
 *       -> prints "requests N seconds S rps R errors E"
 *
 * Keeps CONCURRENCY transfers in flight with curl_multi_poll, re-adding each
 * finished easy handle (so connections and handles are reused) until TOTAL
 * requests have completed. With `fresh`, each request gets a new easy handle
 * instead (connections are still reused: they live in the multi handle),
 * which is what redrive must do with a libcurl older than 8.1.0
 * (src/http/multi.c, curl#11101).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t sink(char *p, size_t sz, size_t n, void *ud) {
  (void)p, (void)ud;
  return sz * n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static CURL *handle(const char *url) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  return e;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: curlmulti URL CONCURRENCY TOTAL [fresh]\n");
    return 2;
  }
  int fresh = argc == 5;
  const char *url = argv[1];
  int conc = atoi(argv[2]);
  long total = atol(argv[3]), started = 0, done = 0, errors = 0;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
  CURL **easy = calloc((size_t)conc, sizeof *easy);
  double t0 = now();
  for (int i = 0; i < conc && started < total; i++, started++) {
    easy[i] = handle(url);
    curl_multi_add_handle(m, easy[i]);
  }
  while (done < total) {
    int running;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      long code = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
      if (msg->data.result != CURLE_OK || code != 200) errors++;
      done++;
      curl_multi_remove_handle(m, e);
      if (fresh) {
        int i = 0;
        while (easy[i] != e) i++;
        curl_easy_cleanup(e);
        e = easy[i] = started < total ? handle(url) : NULL;
      }
      if (started < total) {
        started++;
        curl_multi_add_handle(m, e);
      }
    }
    if (done < total) curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  double secs = now() - t0;
  printf("requests %ld seconds %.3f rps %.0f errors %ld\n", done, secs, done / secs, errors);
  for (int i = 0; i < conc; i++)
    if (easy[i]) curl_easy_cleanup(easy[i]);
  curl_multi_cleanup(m);
  free(easy);
  return errors ? 1 : 0;
}

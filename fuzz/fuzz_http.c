/*
 * fuzz_http: hostile HTTP responses through rd.http.request (src/http with
 * libcurl multi on the runtime's loop, src/lua/lhttp.c, res:json()).
 *
 * A server thread listens on a loopback port; for each input it accepts one
 * connection, reads the request head, answers with the input's bytes
 * (truncated heads, huge headers, invalid chunking, invalid gzip, ...) and
 * closes. Input: FLAGS byte, then the raw response.
 *   bit 0  ask for gzip (gzip = true) so curl decodes Content-Encoding
 *   bit 1  write the answer in 7-byte pieces (exercises partial parsing)
 *   bit 2  use method POST with a small JSON body
 *   bit 3  HEAD request
 * The request must end (a response or nil, message, code) within its 3 s
 * timeout: a hang is caught by libFuzzer's -timeout, a crash by ASan.
 */

#include "fuzz_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

static lua_State *L;
static int lfd;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *answer;
static size_t answer_len;
static int answer_split;

static void write_all(int fd, const unsigned char *p, size_t n, int split) {
  while (n > 0) {
    size_t k = split && n > 7 ? 7 : n;
    ssize_t w = send(fd, p, k, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w, n -= (size_t)w;
  }
}

static void *server(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* read the request head (and a small body, which arrives with it) */
    char buf[8192];
    size_t got = 0;
    while (got < sizeof buf - 1) {
      ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
      if (r <= 0) break;
      got += (size_t)r;
      buf[got] = 0;
      char *end = strstr(buf, "\r\n\r\n");
      if (end) {
        const char *cl = strcasestr(buf, "content-length:");
        size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
        if (got >= want) break;
      }
    }
    pthread_mutex_lock(&mu);
    unsigned char *a = malloc(answer_len ? answer_len : 1);
    size_t an = answer_len;
    int split = answer_split;
    if (a) memcpy(a, answer, an);
    pthread_mutex_unlock(&mu);
    if (a) write_all(fd, a, an, split);
    free(a);
    close(fd);
  }
  return NULL;
}

static const char *HARNESS =
    "local url, gzip, post, head = ...\n"
    "local req = { url = url, timeout = 3, connect_timeout = 3, gzip = gzip }\n"
    "if post then req.method = 'POST'; req.json = { a = 1 } end\n"
    "if head then req.method = 'HEAD' end\n"
    "local res, err, code = rd.http.request(req)\n"
    "if not res then\n"
    "  assert(type(err) == 'string' and type(code) == 'string', 'bad error triple')\n"
    "  assert(not err:find('127.0.0.1:%d+/fuzz%?secret'), 'query string in error: ' .. err)\n"
    "  return\n"
    "end\n"
    "assert(math.type(res.status) == 'integer')\n"
    "assert(type(res.body) == 'string' and type(res.headers) == 'table')\n"
    "for k, v in pairs(res.headers) do assert(type(k) == 'string' and type(v) == 'string') end\n"
    "local v, jerr, jcode = res:json()\n"
    "if v == nil and jerr ~= nil then assert(jcode == 'invalid', tostring(jerr)) end\n";

static char url[128];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
    abort();
  snprintf(url, sizeof url, "http://127.0.0.1:%d/fuzz?secret=hunter2", ntohs(sa.sin_port));
  pthread_t th;
  if (pthread_create(&th, NULL, server, NULL) != 0) abort();
  pthread_detach(th);
  L = fuzz_lua_state();
  if (luaL_loadstring(L, HARNESS) != LUA_OK) abort();
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.http");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned flags = data[0];
  pthread_mutex_lock(&mu);
  free(answer);
  answer_len = size - 1;
  answer = malloc(answer_len ? answer_len : 1);
  if (answer) memcpy(answer, data + 1, answer_len);
  else answer_len = 0;
  answer_split = (flags & 2) != 0;
  pthread_mutex_unlock(&mu);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.http");
  lua_pushstring(L, url);
  lua_pushboolean(L, flags & 1);
  lua_pushboolean(L, flags & 4);
  lua_pushboolean(L, flags & 8);
  if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_http: raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  if (size % 16 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

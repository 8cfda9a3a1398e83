/* Id generation: 48 bits of ms time + 80 random bits from getrandom(), hex.
 * Within one process ids are strictly increasing, as in monotonic ULIDs: a
 * second id in the same (or an earlier, if the clock stepped back) ms reuses
 * the last time and adds one to the random part. */
#include "core/ids.h"
#include "redrive.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static unsigned char last_rnd[10];

uint64_t rd__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fill_random(unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return RD_EIO;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Add one to a big-endian number; returns 1 on overflow (all bytes wrapped). */
static int increment(unsigned char *p, size_t n) {
  while (n-- > 0)
    if (++p[n] != 0) return 0;
  return 1;
}

int rd__id_new_at(char out[RD_ID_LEN + 1], uint64_t ms) {
  static const char hex[] = "0123456789abcdef";
  unsigned char rnd[10];
  int r = fill_random(rnd, sizeof rnd);
  if (r) return r;
  pthread_mutex_lock(&lock);
  if (ms <= last_ms) {
    ms = last_ms;
    memcpy(rnd, last_rnd, sizeof rnd);
    if (increment(rnd, sizeof rnd)) ms = ++last_ms; /* 2^80 ids in one ms: move on */
  }
  last_ms = ms;
  memcpy(last_rnd, rnd, sizeof rnd);
  pthread_mutex_unlock(&lock);
  for (int i = 11; i >= 0; i--) {
    out[i] = hex[ms & 0xf];
    ms >>= 4;
  }
  for (int i = 0; i < 10; i++) {
    out[12 + 2 * i] = hex[rnd[i] >> 4];
    out[13 + 2 * i] = hex[rnd[i] & 0xf];
  }
  out[RD_ID_LEN] = '\0';
  return 0;
}

int rd__id_new(char out[RD_ID_LEN + 1]) { return rd__id_new_at(out, rd__now_ms()); }

int rd__id_valid(const char *s) {
  if (!s) return 0;
  size_t i = 0;
  for (; s[i]; i++) {
    if (i >= RD_ID_LEN) return 0;
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  }
  return i == RD_ID_LEN;
}

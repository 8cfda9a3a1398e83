/* Ids: 32 lowercase hex chars, the first 12 the creation time in ms, the
 * other 20 random, so that ordering by id is creation order. */
#ifndef RD_CORE_IDS_H
#define RD_CORE_IDS_H

#include <stdint.h>

#define RD_ID_LEN 32

/* Write a new id and its terminating NUL into out[RD_ID_LEN + 1]. Ids made by
 * one process are strictly increasing, even within one millisecond (the
 * random part is incremented then). Returns 0, or RD_EIO if the kernel gives
 * no random bytes (out is then unchanged). Thread-safe. */
int rd__id_new(char out[RD_ID_LEN + 1]);
/* Same, for a given time in ms (tests). */
int rd__id_new_at(char out[RD_ID_LEN + 1], uint64_t ms);
/* Is s a well-formed id (32 lowercase hex chars)? */
int rd__id_valid(const char *s);
/* Wall-clock time in ms since the Unix epoch. */
uint64_t rd__now_ms(void);

#endif

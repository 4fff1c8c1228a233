/*
 * limiter.h — token buckets in a fixed table: how strata bounds what one
 * client or one token may ask per second (the API's rate limits, the view
 * and Web Vitals beacons).
 *
 * A bucket holds at most `burst` tokens and refills at `rate` per second;
 * a request takes `cost` tokens or is refused. Buckets live in a table of
 * a fixed number of slots, 4-way set-associative by the key's hash, so
 * memory never grows with the number of clients: when a set is full, a
 * bucket that has refilled to its burst (the same as a new one) is
 * replaced first, else the one idle longest.
 */
#ifndef STRATA_LIMITER_H
#define STRATA_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct limiter limiter;

/* A bucket's shape: tokens per second and the most it holds. */
typedef struct limiter_rate {
    double rate;
    double burst;
} limiter_rate;

/* What a take found: the tokens left (rounded down) and, when refused,
 * the whole seconds until the cost is available again (≥ 1). */
typedef struct limiter_verdict {
    bool allowed;
    unsigned remaining;
    unsigned retry_after_s;
} limiter_verdict;

/* A table of `slots` buckets (rounded up to a power of two, at least 4).
 * locked: a mutex guards it (shared by threads); unlocked: its one owning
 * thread only. NULL when out of memory. */
limiter *limiter_new(size_t slots, bool locked);
void limiter_free(limiter **lim);

/* Takes cost tokens from the bucket of key (key_len bytes) at now_ns, a
 * monotonic clock; a key not in the table starts full. Returns
 * out->allowed. */
bool limiter_take(limiter *lim, const void *key, size_t key_len, const limiter_rate *shape, double cost,
                  uint64_t now_ns, limiter_verdict *out);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t limiter_now_ns(void);

#endif

/*
 * limiter.c — token buckets in a fixed, set-associative table (see
 * limiter.h).
 *
 * A slot is 32 bytes: the key's 64-bit hash, when the bucket was last
 * touched, its tokens, and its shape (rate, burst) — so one table may hold
 * buckets of different shapes (a token's role decides its rate), and
 * "refilled to its burst" is judged with the bucket's own burst. A lookup
 * touches one set of 4 slots (128 bytes, two cache lines).
 *
 * Locking: a shared table takes its mutex for a few comparisons; a table
 * owned by one event loop takes none, which is what lets the per-client
 * check of every API request (cache hits included) cost a hash and a
 * handful of loads.
 */
#include "core/limiter.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <xxhash.h>

#define WAYS 4

typedef struct bucket {
    uint64_t key; /* hash of the client; 0: free */
    uint64_t updated_ns;
    double tokens;
    float rate, burst;
} bucket;

struct limiter {
    bool locked;
    pthread_mutex_t lock;
    size_t set_count;
    bucket *slots;
};

limiter *limiter_new(size_t slots, bool locked)
{
    size_t n = WAYS;
    while (n < slots)
        n *= 2;
    limiter *lim = calloc(1, sizeof(*lim));
    bucket *table = calloc(n, sizeof(*table));
    if (lim == NULL || table == NULL) {
        free(lim);
        free(table);
        return NULL;
    }
    lim->locked = locked;
    if (locked)
        pthread_mutex_init(&lim->lock, NULL);
    lim->set_count = n / WAYS;
    lim->slots = table;
    return lim;
}

void limiter_free(limiter **lim)
{
    if (*lim == NULL)
        return;
    if ((*lim)->locked)
        pthread_mutex_destroy(&(*lim)->lock);
    free((*lim)->slots);
    free(*lim);
    *lim = NULL;
}

uint64_t limiter_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double refilled(const bucket *b, uint64_t now_ns)
{
    double elapsed = now_ns > b->updated_ns ? (double)(now_ns - b->updated_ns) / 1e9 : 0;
    double tokens = b->tokens + elapsed * b->rate;
    return tokens > b->burst ? b->burst : tokens;
}

/* The key's slot in its set, or the slot to give it (reset to full). */
static bucket *slot_for(limiter *lim, uint64_t key, const limiter_rate *shape, uint64_t now_ns)
{
    bucket *set = &lim->slots[(key % lim->set_count) * WAYS];
    bucket *victim = NULL;
    bool victim_idle = false; /* free, or refilled to its burst */
    for (int i = 0; i < WAYS; i++) {
        if (set[i].key == key)
            return &set[i];
        bool idle = set[i].key == 0 || refilled(&set[i], now_ns) >= set[i].burst;
        if (idle && !victim_idle) {
            victim = &set[i];
            victim_idle = true;
        } else if (!victim_idle && (victim == NULL || set[i].updated_ns < victim->updated_ns)) {
            victim = &set[i];
        }
    }
    *victim = (bucket){.key = key, .updated_ns = now_ns, .tokens = shape->burst};
    return victim;
}

bool limiter_take(limiter *lim, const void *key, size_t key_len, const limiter_rate *shape, double cost,
                  uint64_t now_ns, limiter_verdict *out)
{
    uint64_t hash = XXH3_64bits(key, key_len) | 1; /* never 0 (free) */
    if (lim->locked)
        pthread_mutex_lock(&lim->lock);
    bucket *b = slot_for(lim, hash, shape, now_ns);
    b->rate = (float)shape->rate; /* a changed setting applies at once */
    b->burst = (float)shape->burst;
    b->tokens = refilled(b, now_ns);
    b->updated_ns = now_ns;
    out->allowed = b->tokens >= cost;
    out->retry_after_s = 0;
    if (out->allowed) {
        b->tokens -= cost;
    } else {
        double wait = shape->rate > 0 ? (cost - b->tokens) / shape->rate : 1;
        out->retry_after_s = wait < 1 ? 1 : (unsigned)ceil(wait);
    }
    out->remaining = b->tokens >= 1 ? (unsigned)b->tokens : 0;
    if (lim->locked)
        pthread_mutex_unlock(&lim->lock);
    return out->allowed;
}

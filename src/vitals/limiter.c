/*
 * limiter.c — token buckets per client, for the public Web Vitals beacon.
 *
 * Each client (its address, reduced by vitals.c) has a bucket of `burst`
 * tokens refilled at `rate` per second; a beacon takes one token per
 * metric. Buckets live in a fixed table of VITALS_LIMITER_SLOTS entries,
 * 4-way set-associative by the key's 64-bit hash, so memory is fixed and a
 * lookup touches one cache line's worth of slots. When a set is full, the
 * slot replaced is one whose bucket has refilled to the burst (forgetting
 * it changes nothing), else the one idle longest: only a flood from more
 * clients than the table holds can make the limiter forget a client.
 *
 * One mutex guards the table: a beacon holds it for a few comparisons, and
 * beacons are rare next to reads.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <xxhash.h>

#include "vitals/vitals_internal.h"

#define WAYS 4

typedef struct bucket {
    uint64_t key; /* hash of the client; 0: free */
    uint64_t updated_ns;
    double tokens;
} bucket;

struct vitals_limiter {
    pthread_mutex_t lock;
    double rate, burst;
    bucket slots[VITALS_LIMITER_SLOTS];
};

vitals_limiter *vitals_limiter_new(double rate, double burst)
{
    vitals_limiter *lim = calloc(1, sizeof(*lim));
    if (lim == NULL)
        return NULL;
    pthread_mutex_init(&lim->lock, NULL);
    lim->rate = rate;
    lim->burst = burst;
    return lim;
}

void vitals_limiter_free(vitals_limiter **lim)
{
    if (*lim == NULL)
        return;
    pthread_mutex_destroy(&(*lim)->lock);
    free(*lim);
    *lim = NULL;
}

static double refilled(const vitals_limiter *lim, const bucket *b, uint64_t now_ns)
{
    double elapsed = now_ns > b->updated_ns ? (double)(now_ns - b->updated_ns) / 1e9 : 0;
    double tokens = b->tokens + elapsed * lim->rate;
    return tokens > lim->burst ? lim->burst : tokens;
}

/* The client's slot in its set, or the slot to give it (reset to full). */
static bucket *slot_for(vitals_limiter *lim, uint64_t key, uint64_t now_ns)
{
    bucket *set = &lim->slots[(key % (VITALS_LIMITER_SLOTS / WAYS)) * WAYS];
    bucket *victim = NULL;
    bool victim_idle = false; /* free, or refilled to the burst */
    for (int i = 0; i < WAYS; i++) {
        if (set[i].key == key)
            return &set[i];
        bool idle = set[i].key == 0 || refilled(lim, &set[i], now_ns) >= lim->burst;
        if (idle && !victim_idle) {
            victim = &set[i];
            victim_idle = true;
        } else if (!victim_idle && (victim == NULL || set[i].updated_ns < victim->updated_ns)) {
            victim = &set[i];
        }
    }
    *victim = (bucket){.key = key, .updated_ns = now_ns, .tokens = lim->burst};
    return victim;
}

bool vitals_limiter_take(vitals_limiter *lim, const char *client, size_t client_len, double cost, uint64_t now_ns,
                         unsigned *retry_after_s)
{
    uint64_t key = XXH3_64bits(client, client_len) | 1; /* never 0 (free) */
    pthread_mutex_lock(&lim->lock);
    bucket *b = slot_for(lim, key, now_ns);
    b->tokens = refilled(lim, b, now_ns);
    b->updated_ns = now_ns;
    bool taken = b->tokens >= cost;
    if (taken) {
        b->tokens -= cost;
    } else {
        double wait = (cost - b->tokens) / lim->rate;
        *retry_after_s = wait < 1 ? 1 : (unsigned)ceil(wait);
    }
    pthread_mutex_unlock(&lim->lock);
    return taken;
}

/*
 * cache_sim.c — hit ratio of strata's cache engine against a plain LRU of the
 * same capacity, replaying synthetic traces.
 *
 * The idea: the engine's header promises an eviction better than LRU
 * (S3-FIFO since issue 11; SIEVE before) and "about ten points of hit
 * ratio over LRU on skewed traffic". That is a claim about the policy,
 * so it is checked the way the SIEVE paper measures it: every object has the
 * same size, the clock never moves (no expiry), and each request is
 * get-or-insert. The real engine is driven through cache.h only — cache_get,
 * and on a miss cache_insert of a value charged SIM_OBJECT_BYTES — next to
 * two references written here: a textbook LRU (hash map + doubly linked list,
 * move to front on a hit) and a textbook SIEVE (the paper's pseudo-code). The
 * SIEVE reference is not the comparison asked for, it is a diagnostic: the
 * replay is deterministic, so at one shard the engine must match it exactly;
 * if it does not, the engine's policy differs from the algorithm it claims.
 *
 * Capacity: the engine is bounded in bytes and adds its own per-entry
 * overhead to the charge (the entry header and the key), so the number of
 * objects it holds is measured, not assumed. First the real cost of one
 * object is read off a probe cache (stats.bytes / stats.entries) and the
 * budget set to target objects × that cost, so "0.1 %" means about 1,000
 * objects rather than 1,000 × 1000 bytes of budget; then a fresh cache of that
 * max_bytes is filled with many distinct keys and cache_get_stats().entries
 * says how many objects fit. The references get exactly that many slots.
 * With 64 shards each shard holds floor(budget/64 / cost) objects, so the
 * total can be a little under the target. Target, budget and measured
 * objects are all printed.
 *
 * Traces (all deterministic, xoshiro256** seeded by splitmix64):
 *   zipf0.99  Zipf(α = 0.99) over 1,000,000 keys, sampled by binary search in
 *             a precomputed CDF; cache at 0.1 % and 1 % of the key space.
 *   mixed     the same Zipf hot set, and after every 50,000 of its requests a
 *             sequential scan of 20,000 keys never seen before or after;
 *             cache at 1 %. The scans are all misses for every policy; the
 *             question is how much of the hot set each policy loses to them.
 * Hit ratios count every request from a cold start (compulsory misses
 * included).
 *
 * The engine runs at shard_count = 1 (one global policy, comparable with
 * the published numbers) and at the default 64 shards (how strata runs it:
 * each shard evicts on its own with 1/64 of the budget).
 *
 * The replays are independent jobs handed out to two threads (the machine has
 * two cores); each job owns its cache, the traces are shared read-only.
 *
 * Usage: cache_sim [requests-per-trace]     (default 10,000,000)
 * Output: a table, then one line per row:
 *   RESULT cache_sim trace=zipf0.99 capacity_pct=0.1 shards=1 … strata=… lru=… delta=…
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"

#define SIM_KEY_COUNT 1000000u /* the Zipf key space */
#define SIM_ZIPF_ALPHA 0.99
#define SIM_DEFAULT_REQUESTS 10000000u
#define SIM_OBJECT_BYTES 1000u       /* every object's charge */
#define SIM_NOW_MS 1000000u          /* the clock never moves */
#define SIM_FRESH_MS 1000000000u     /* nothing ever expires */
#define SIM_MIXED_HOT_RUN 50000u     /* Zipf requests between two scans */
#define SIM_MIXED_SCAN_LENGTH 20000u /* keys per one-off scan */
#define SIM_WORKER_THREADS 2
#define SIM_NO_NODE UINT32_MAX

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- deterministic random numbers ------------------------------------------- */

static uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct xoshiro256 {
    uint64_t s[4];
} xoshiro256;

static void xoshiro256_seed(xoshiro256 *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64_next(&seed);
}

static inline uint64_t rotate_left(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro256_next(xoshiro256 *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotate_left(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotate_left(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double xoshiro256_unit(xoshiro256 *rng)
{
    return (double)(xoshiro256_next(rng) >> 11) * 0x1.0p-53;
}

/* ---- Zipf sampling ---------------------------------------------------------- */

/* P(rank i) ∝ 1 / (i+1)^alpha for i in [0, key_count). cdf[i] = P(rank ≤ i);
 * a sample is the first rank whose cdf exceeds a uniform draw. */
typedef struct zipf_table {
    double *cdf;
    uint32_t key_count;
} zipf_table;

static void zipf_table_init(zipf_table *zipf, uint32_t key_count, double alpha)
{
    zipf->key_count = key_count;
    zipf->cdf = malloc(sizeof(double) * key_count);
    if (!zipf->cdf) {
        perror("cache_sim: zipf table");
        exit(1);
    }
    double sum = 0;
    for (uint32_t i = 0; i < key_count; i++) {
        sum += pow((double)(i + 1), -alpha);
        zipf->cdf[i] = sum;
    }
    for (uint32_t i = 0; i < key_count; i++)
        zipf->cdf[i] /= sum;
    zipf->cdf[key_count - 1] = 1.0; /* no draw falls past the last rank */
}

static uint32_t zipf_sample(const zipf_table *zipf, xoshiro256 *rng)
{
    double u = xoshiro256_unit(rng);
    uint32_t low = 0, high = zipf->key_count - 1;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2;
        if (zipf->cdf[mid] > u)
            high = mid;
        else
            low = mid + 1;
    }
    return low;
}

/* The probability mass of the `count` most popular ranks: what a cache of
 * `count` objects that magically held exactly the top keys would hit. */
static double zipf_top_mass(const zipf_table *zipf, uint32_t count)
{
    return count == 0 ? 0 : zipf->cdf[count - 1];
}

/* ---- traces ----------------------------------------------------------------- */

/* A trace is a sequence of key ids. Zipf ranks are the ids of the hot keys
 * (0 is the most popular); scan keys are numbered from SIM_KEY_COUNT up. */
typedef struct trace {
    const char *name;
    uint32_t *keys;
    size_t length;
    size_t scan_requests; /* of which one-off scan keys */
} trace;

static uint32_t *trace_alloc(size_t length)
{
    uint32_t *keys = malloc(sizeof(uint32_t) * length);
    if (!keys) {
        perror("cache_sim: trace");
        exit(1);
    }
    return keys;
}

static void trace_make_zipf(trace *t, const zipf_table *zipf, size_t length, uint64_t seed)
{
    xoshiro256 rng;
    xoshiro256_seed(&rng, seed);
    t->name = "zipf0.99";
    t->keys = trace_alloc(length);
    t->length = length;
    t->scan_requests = 0;
    for (size_t i = 0; i < length; i++)
        t->keys[i] = zipf_sample(zipf, &rng);
}

static void trace_make_mixed(trace *t, const zipf_table *zipf, size_t length, uint64_t seed)
{
    xoshiro256 rng;
    xoshiro256_seed(&rng, seed);
    t->name = "mixed";
    t->keys = trace_alloc(length);
    t->length = length;
    t->scan_requests = 0;
    uint32_t next_scan_key = SIM_KEY_COUNT;
    size_t i = 0;
    while (i < length) {
        for (uint32_t n = 0; n < SIM_MIXED_HOT_RUN && i < length; n++)
            t->keys[i++] = zipf_sample(zipf, &rng);
        for (uint32_t n = 0; n < SIM_MIXED_SCAN_LENGTH && i < length; n++) {
            t->keys[i++] = next_scan_key++;
            t->scan_requests++;
        }
    }
}

/* ---- the engine under test -------------------------------------------------- */

/* Every cached value is the same static byte: only the charge matters here. */
static char sim_value_byte;
static void sim_value_free(void *value)
{
    (void)value;
}

static const cache_value sim_value = {
    .value = &sim_value_byte,
    .free_value = sim_value_free,
    .charge = SIM_OBJECT_BYTES,
    .tags = NULL,
    .tag_count = 0,
    .fresh_ms = SIM_FRESH_MS,
    .stale_ms = SIM_FRESH_MS,
    .grace_ms = SIM_FRESH_MS,
};

static cache *strata_cache_create(unsigned shard_count, size_t max_bytes)
{
    cache_options options = {.max_bytes = max_bytes, .shard_count = shard_count, .ttl_jitter = 0, .seed = 42};
    cache *c = cache_create(&options);
    if (!c) {
        fprintf(stderr, "cache_sim: cache_create(max_bytes=%zu, shards=%u) failed\n", max_bytes, shard_count);
        exit(1);
    }
    return c;
}

static void strata_insert_key(cache *c, uint64_t key)
{
    cache_insert(c, 0, &key, sizeof key, &sim_value, cache_epoch(c), SIM_NOW_MS);
}

/* What one SIM_OBJECT_BYTES object really costs the engine, overhead
 * included: the bytes a cache full of them accounts, per entry. */
static double strata_bytes_per_object(void)
{
    cache *c = strata_cache_create(1, 1000 * (size_t)SIM_OBJECT_BYTES);
    for (uint64_t i = 0; i < 100; i++)
        strata_insert_key(c, i);
    cache_stats stats;
    cache_get_stats(c, UINT32_MAX, &stats);
    cache_destroy(&c);
    if (stats.entries != 100) {
        fprintf(stderr, "cache_sim: 100 objects inserted into room for ~1000, %" PRIu64 " held\n", stats.entries);
        exit(1);
    }
    return (double)stats.bytes / (double)stats.entries;
}

/* How many objects a cache of max_bytes really holds: fill a fresh one with
 * far more distinct keys than could fit and count. */
static size_t strata_measure_capacity(unsigned shard_count, size_t max_bytes)
{
    cache *c = strata_cache_create(shard_count, max_bytes);
    size_t most = max_bytes / SIM_OBJECT_BYTES; /* overhead only lowers it */
    uint64_t key_base = 1ull << 40;             /* far from any trace key, not that it matters */
    for (uint64_t i = 0; i < 4 * most + 1000; i++)
        strata_insert_key(c, key_base + i);
    cache_stats stats;
    cache_get_stats(c, UINT32_MAX, &stats);
    cache_destroy(&c);
    return (size_t)stats.entries;
}

typedef struct replay_result {
    uint64_t hits;
    uint64_t not_fresh; /* STALE or EXPIRED answers: impossible with a frozen clock */
    uint64_t final_entries;
    bool stats_disagree; /* the engine's own hit/miss counters differ from ours */
    double seconds;
} replay_result;

static void strata_replay(const trace *t, unsigned shard_count, size_t max_bytes, replay_result *result)
{
    cache *c = strata_cache_create(shard_count, max_bytes);
    double start = seconds_now();
    uint64_t hits = 0, not_fresh = 0, misses = 0;
    for (size_t i = 0; i < t->length; i++) {
        uint64_t key = t->keys[i];
        cache_entry *entry = NULL;
        cache_state state = cache_get(c, 0, &key, sizeof key, SIM_NOW_MS, &entry);
        if (state == CACHE_MISS) {
            misses++;
            strata_insert_key(c, key);
            continue;
        }
        hits++;
        if (state != CACHE_FRESH)
            not_fresh++;
        cache_entry_release(&entry);
    }
    result->seconds = seconds_now() - start;
    cache_stats stats;
    cache_get_stats(c, UINT32_MAX, &stats);
    result->hits = hits;
    result->not_fresh = not_fresh;
    result->final_entries = stats.entries;
    /* Only FRESH answers and misses are possible here (not_fresh says if not),
     * so the engine's counters must equal ours exactly. */
    result->stats_disagree = stats.hits != hits - not_fresh || stats.misses != misses;
    cache_destroy(&c);
}

/* ---- reference policies: LRU and SIEVE -------------------------------------- */

/* Both keep the same structure: a fixed pool of `capacity` nodes, a chained
 * hash index from key to node, and a doubly linked list from newest (head)
 * to oldest (tail). Nodes are addressed by index; SIM_NO_NODE is null.
 *   LRU:   a hit moves the node to the head; a miss evicts the tail.
 *   SIEVE: a hit sets `visited`; a miss evicts at the hand, which walks from
 *          the tail towards the head clearing visited bits and stops at the
 *          first unvisited node (wrapping to the tail); new nodes go to the
 *          head. (Zhang et al., NSDI'24, figure 2.) */
typedef struct reference_node {
    uint64_t key;
    uint32_t newer, older; /* list links */
    uint32_t chain_next;   /* hash bucket chain */
    bool visited;
} reference_node;

typedef struct reference_cache {
    reference_node *nodes;
    uint32_t *buckets;
    uint32_t bucket_mask;
    uint32_t capacity, count;
    uint32_t head, tail; /* newest, oldest */
    uint32_t hand;       /* SIEVE only */
} reference_cache;

static void reference_cache_init(reference_cache *rc, uint32_t capacity)
{
    uint32_t bucket_count = 1;
    while (bucket_count < 2 * capacity)
        bucket_count <<= 1;
    rc->nodes = calloc(capacity ? capacity : 1, sizeof(reference_node));
    rc->buckets = malloc(sizeof(uint32_t) * bucket_count);
    if (!rc->nodes || !rc->buckets) {
        perror("cache_sim: reference cache");
        exit(1);
    }
    for (uint32_t i = 0; i < bucket_count; i++)
        rc->buckets[i] = SIM_NO_NODE;
    rc->bucket_mask = bucket_count - 1;
    rc->capacity = capacity;
    rc->count = 0;
    rc->head = rc->tail = rc->hand = SIM_NO_NODE;
}

static void reference_cache_free(reference_cache *rc)
{
    free(rc->nodes);
    free(rc->buckets);
}

static inline uint32_t reference_bucket(const reference_cache *rc, uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & rc->bucket_mask;
}

static uint32_t reference_find(const reference_cache *rc, uint64_t key)
{
    uint32_t n = rc->buckets[reference_bucket(rc, key)];
    while (n != SIM_NO_NODE && rc->nodes[n].key != key)
        n = rc->nodes[n].chain_next;
    return n;
}

static void reference_unindex(reference_cache *rc, uint32_t node)
{
    uint32_t *link = &rc->buckets[reference_bucket(rc, rc->nodes[node].key)];
    while (*link != node)
        link = &rc->nodes[*link].chain_next;
    *link = rc->nodes[node].chain_next;
}

static void reference_index(reference_cache *rc, uint32_t node)
{
    uint32_t *bucket = &rc->buckets[reference_bucket(rc, rc->nodes[node].key)];
    rc->nodes[node].chain_next = *bucket;
    *bucket = node;
}

static void reference_unlink(reference_cache *rc, uint32_t node)
{
    reference_node *n = &rc->nodes[node];
    if (n->newer != SIM_NO_NODE)
        rc->nodes[n->newer].older = n->older;
    else
        rc->head = n->older;
    if (n->older != SIM_NO_NODE)
        rc->nodes[n->older].newer = n->newer;
    else
        rc->tail = n->newer;
}

static void reference_push_head(reference_cache *rc, uint32_t node)
{
    reference_node *n = &rc->nodes[node];
    n->newer = SIM_NO_NODE;
    n->older = rc->head;
    if (rc->head != SIM_NO_NODE)
        rc->nodes[rc->head].newer = node;
    rc->head = node;
    if (rc->tail == SIM_NO_NODE)
        rc->tail = node;
}

/* A node for a new key: a free one while the pool lasts, else the victim the
 * policy chose (already unlinked and unindexed by the caller). */
static void reference_admit(reference_cache *rc, uint64_t key, uint32_t victim)
{
    uint32_t node = rc->count < rc->capacity ? rc->count++ : victim;
    rc->nodes[node].key = key;
    rc->nodes[node].visited = false;
    reference_index(rc, node);
    reference_push_head(rc, node);
}

static bool lru_access(reference_cache *rc, uint64_t key)
{
    uint32_t node = reference_find(rc, key);
    if (node != SIM_NO_NODE) {
        if (rc->head != node) {
            reference_unlink(rc, node);
            reference_push_head(rc, node);
        }
        return true;
    }
    if (rc->capacity == 0)
        return false;
    uint32_t victim = SIM_NO_NODE;
    if (rc->count == rc->capacity) {
        victim = rc->tail;
        reference_unlink(rc, victim);
        reference_unindex(rc, victim);
    }
    reference_admit(rc, key, victim);
    return false;
}

static bool sieve_access(reference_cache *rc, uint64_t key)
{
    uint32_t node = reference_find(rc, key);
    if (node != SIM_NO_NODE) {
        rc->nodes[node].visited = true;
        return true;
    }
    if (rc->capacity == 0)
        return false;
    uint32_t victim = SIM_NO_NODE;
    if (rc->count == rc->capacity) {
        victim = rc->hand != SIM_NO_NODE ? rc->hand : rc->tail;
        while (rc->nodes[victim].visited) {
            rc->nodes[victim].visited = false;
            victim = rc->nodes[victim].newer != SIM_NO_NODE ? rc->nodes[victim].newer : rc->tail;
        }
        rc->hand = rc->nodes[victim].newer; /* SIM_NO_NODE: restart from the tail next time */
        reference_unlink(rc, victim);
        reference_unindex(rc, victim);
    }
    reference_admit(rc, key, victim);
    return false;
}

typedef enum policy { POLICY_STRATA, POLICY_LRU, POLICY_SIEVE } policy;

static void reference_replay(const trace *t, policy which, uint32_t capacity, replay_result *result)
{
    reference_cache rc;
    reference_cache_init(&rc, capacity);
    double start = seconds_now();
    uint64_t hits = 0;
    bool (*access)(reference_cache *, uint64_t) = which == POLICY_LRU ? lru_access : sieve_access;
    for (size_t i = 0; i < t->length; i++)
        hits += access(&rc, t->keys[i]);
    memset(result, 0, sizeof *result);
    result->seconds = seconds_now() - start;
    result->hits = hits;
    result->final_entries = rc.count;
    reference_cache_free(&rc);
}

/* ---- the experiment --------------------------------------------------------- */

/* One row of the table: a trace, a budget, a shard count, and the three
 * replays that fill it. */
typedef struct sim_row {
    const trace *trace;
    double capacity_pct;   /* of the Zipf key space */
    size_t target_objects; /* capacity_pct of the key space */
    unsigned shard_count;
    size_t max_bytes;
    size_t strata_capacity; /* objects, measured */
    replay_result strata, lru, sieve;
} sim_row;

typedef struct sim_job {
    sim_row *row;
    policy which;
} sim_job;

typedef struct job_queue {
    sim_job *jobs;
    size_t count;
    atomic_size_t next;
} job_queue;

static void job_run(const sim_job *job)
{
    sim_row *row = job->row;
    switch (job->which) {
    case POLICY_STRATA: strata_replay(row->trace, row->shard_count, row->max_bytes, &row->strata); break;
    case POLICY_LRU: reference_replay(row->trace, POLICY_LRU, (uint32_t)row->strata_capacity, &row->lru); break;
    case POLICY_SIEVE: reference_replay(row->trace, POLICY_SIEVE, (uint32_t)row->strata_capacity, &row->sieve); break;
    }
}

static void *job_worker(void *arg)
{
    job_queue *queue = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&queue->next, 1);
        if (i >= queue->count)
            return NULL;
        job_run(&queue->jobs[i]);
    }
}

static double percent(uint64_t part, size_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0;
}

static size_t parse_request_count(int argc, char **argv)
{
    if (argc < 2)
        return SIM_DEFAULT_REQUESTS;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(argv[1], &end, 10);
    if (errno || *end || n < 1000 || n > 1000000000ull) {
        fprintf(stderr, "usage: cache_sim [requests-per-trace, 1000..1e9] (default %u)\n", SIM_DEFAULT_REQUESTS);
        exit(2);
    }
    return (size_t)n;
}

/* The mixed trace is built on a second thread while main builds the Zipf one. */
typedef struct mixed_trace_job {
    trace *trace;
    const zipf_table *zipf;
    size_t length;
} mixed_trace_job;

static void *mixed_trace_build(void *arg)
{
    mixed_trace_job *job = arg;
    trace_make_mixed(job->trace, job->zipf, job->length, 2);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t request_count = parse_request_count(argc, argv);
    double start = seconds_now();

    zipf_table zipf;
    zipf_table_init(&zipf, SIM_KEY_COUNT, SIM_ZIPF_ALPHA);
    trace zipf_trace, mixed_trace;
    mixed_trace_job mixed_job = {&mixed_trace, &zipf, request_count};
    pthread_t mixed_builder;
    int err = pthread_create(&mixed_builder, NULL, mixed_trace_build, &mixed_job);
    if (err) {
        fprintf(stderr, "cache_sim: pthread_create: %s\n", strerror(err));
        return 1;
    }
    trace_make_zipf(&zipf_trace, &zipf, request_count, 1);
    pthread_join(mixed_builder, NULL);

    /* The generator checks itself: the most popular key's share of the trace
     * against the distribution's. */
    size_t top_key_requests = 0;
    for (size_t i = 0; i < zipf_trace.length; i++)
        top_key_requests += zipf_trace.keys[i] == 0;
    printf("cache_sim: %zu requests per trace, %u keys, Zipf alpha %.2f, objects of %u bytes, clock frozen\n",
           request_count, SIM_KEY_COUNT, SIM_ZIPF_ALPHA, SIM_OBJECT_BYTES);
    printf("cache_sim: Zipf check: most popular key %.3f%% of requests (expected %.3f%%); traces built in %.1f s\n",
           percent(top_key_requests, zipf_trace.length), 100.0 * zipf.cdf[0], seconds_now() - start);
    printf("cache_sim: mixed trace: a scan of %u new keys after every %u Zipf requests; %zu of %zu requests "
           "(%.1f%%) are scan keys, always misses\n",
           SIM_MIXED_SCAN_LENGTH, SIM_MIXED_HOT_RUN, mixed_trace.scan_requests, mixed_trace.length,
           percent(mixed_trace.scan_requests, mixed_trace.length));

    static const struct {
        int trace_index; /* 0 zipf, 1 mixed */
        double capacity_pct;
    } experiments[] = {{0, 0.1}, {0, 1.0}, {1, 1.0}};
    static const unsigned shard_counts[] = {1, 64};
    const trace *traces[] = {&zipf_trace, &mixed_trace};

    double bytes_per_object = strata_bytes_per_object();
    printf("cache_sim: the engine accounts %.1f bytes per object of charge %u (%.1f bytes of overhead)\n",
           bytes_per_object, SIM_OBJECT_BYTES, bytes_per_object - SIM_OBJECT_BYTES);

    enum { ROW_COUNT = sizeof experiments / sizeof experiments[0] * sizeof shard_counts / sizeof shard_counts[0] };
    sim_row rows[ROW_COUNT];
    size_t row_count = 0;
    for (size_t e = 0; e < sizeof experiments / sizeof experiments[0]; e++) {
        for (size_t s = 0; s < sizeof shard_counts / sizeof shard_counts[0]; s++) {
            sim_row *row = &rows[row_count++];
            memset(row, 0, sizeof *row);
            row->trace = traces[experiments[e].trace_index];
            row->capacity_pct = experiments[e].capacity_pct;
            row->shard_count = shard_counts[s];
            row->target_objects = (size_t)llround(SIM_KEY_COUNT * experiments[e].capacity_pct / 100.0);
            row->max_bytes = (size_t)ceil((double)row->target_objects * bytes_per_object);
            row->strata_capacity = strata_measure_capacity(row->shard_count, row->max_bytes);
        }
    }

    sim_job jobs[3 * ROW_COUNT];
    job_queue queue = {.jobs = jobs, .count = 0};
    atomic_init(&queue.next, 0);
    for (size_t r = 0; r < row_count; r++) {
        jobs[queue.count++] = (sim_job){&rows[r], POLICY_STRATA};
        jobs[queue.count++] = (sim_job){&rows[r], POLICY_LRU};
        jobs[queue.count++] = (sim_job){&rows[r], POLICY_SIEVE};
    }
    pthread_t workers[SIM_WORKER_THREADS];
    for (int i = 0; i < SIM_WORKER_THREADS; i++) {
        err = pthread_create(&workers[i], NULL, job_worker, &queue);
        if (err) {
            fprintf(stderr, "cache_sim: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    for (int i = 0; i < SIM_WORKER_THREADS; i++)
        pthread_join(workers[i], NULL);

    printf("\n%-9s %5s %6s %7s %9s %8s %8s %8s %7s %10s %7s\n", "trace", "cap%", "shards", "target", "max_bytes",
           "objects", "strata%", "LRU%", "delta", "SIEVEref%", "strata");
    printf("%-9s %5s %6s %7s %9s %8s %8s %8s %7s %10s %7s\n", "", "", "", "objects", "", "(both)", "", "", "(pts)",
           "(same cap)", "(secs)");
    for (size_t r = 0; r < row_count; r++) {
        sim_row *row = &rows[r];
        size_t n = row->trace->length;
        double strata = percent(row->strata.hits, n), lru = percent(row->lru.hits, n);
        double sieve = percent(row->sieve.hits, n);
        printf("%-9s %5.1f %6u %7zu %9zu %8zu %8.2f %8.2f %+7.2f %10.2f %7.2f\n", row->trace->name, row->capacity_pct,
               row->shard_count, row->target_objects, row->max_bytes, row->strata_capacity, strata, lru, strata - lru,
               sieve, row->strata.seconds);
    }
    printf("\nmax_bytes = target objects x %.1f bytes; 'objects' is what the engine was measured to hold at that\n"
           "budget and what the LRU and SIEVE references were given. SIEVEref is the paper's SIEVE, one global\n"
           "queue: at 1 shard strata should equal it. Static top-k bound (a cache holding exactly the most popular\n"
           "keys): %.2f%% at 0.1%%, %.2f%% at 1%% (Zipf trace).\n",
           bytes_per_object, 100 * zipf_top_mass(&zipf, SIM_KEY_COUNT / 1000),
           100 * zipf_top_mass(&zipf, SIM_KEY_COUNT / 100));

    int anomalies = 0;
    for (size_t r = 0; r < row_count; r++) {
        sim_row *row = &rows[r];
        if (row->strata.not_fresh) {
            printf("WARNING: %s shards=%u: %" PRIu64 " hits were STALE/EXPIRED with a frozen clock\n", row->trace->name,
                   row->shard_count, row->strata.not_fresh);
            anomalies++;
        }
        if (row->strata.stats_disagree) {
            printf("WARNING: %s shards=%u: cache_get_stats hit/miss counts disagree with the replay\n",
                   row->trace->name, row->shard_count);
            anomalies++;
        }
        if (row->strata.final_entries > row->strata_capacity) {
            printf("WARNING: %s shards=%u: %" PRIu64 " entries at the end, more than the measured capacity %zu\n",
                   row->trace->name, row->shard_count, row->strata.final_entries, row->strata_capacity);
            anomalies++;
        }
    }

    printf("\n");
    for (size_t r = 0; r < row_count; r++) {
        sim_row *row = &rows[r];
        size_t n = row->trace->length;
        double strata = percent(row->strata.hits, n), lru = percent(row->lru.hits, n);
        printf("RESULT cache_sim trace=%s capacity_pct=%g shards=%u requests=%zu max_bytes=%zu strata_objects=%zu "
               "lru_objects=%zu strata=%.2f lru=%.2f delta=%.2f sieve_ref=%.2f\n",
               row->trace->name, row->capacity_pct, row->shard_count, n, row->max_bytes, row->strata_capacity,
               row->strata_capacity, strata, lru, strata - lru, percent(row->sieve.hits, n));
    }
    printf("cache_sim: done in %.1f s%s\n", seconds_now() - start, anomalies ? " (with warnings above)" : "");

    free(zipf.cdf);
    free(zipf_trace.keys);
    free(mixed_trace.keys);
    return 0;
}

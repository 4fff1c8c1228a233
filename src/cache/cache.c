/*
 * cache.c — the L1 engine: shards, S3-FIFO, tags, fencing, flights, stats.
 *
 * Layout. The key's 64-bit hash (XXH3) picks a shard; each shard has one
 * mutex guarding its hash table, its queues, its tag index, its flights
 * and its stats, so one lock acquisition covers a whole operation and the
 * counters cost nothing extra. Critical sections are a few pointer moves; at
 * 64 shards two loop threads rarely meet on one.
 *
 * Admission and eviction: S3-FIFO (SOSP'23). A shard keeps three FIFOs:
 * `small` (new entries, about a tenth of the budget), `main` (entries read
 * at least once while in small, or refilled soon after leaving), and
 * `negative` (entries the caller marks negative, under their own budget).
 * A hit only raises the entry's 2-bit read count, as SIEVE's visited bit
 * did: no list move, no extra lock. Room is made at insert: from small
 * while small (with the newcomer) is over its share — an entry read since
 * it came in moves to main, one never read leaves and its hash goes to the
 * ghost table — otherwise from main, where an entry with reads left is
 * moved to the head with one read fewer (CLOCK) and the first with none is
 * evicted. A newcomer larger than small's whole share, once small is
 * empty, is not stored at main's expense: it becomes a ghost, and its next
 * fill goes to main. A flood of keys read once therefore cycles through
 * small and the ghosts and never reaches main, where the warm entries
 * live. The
 * ghost table is direct-mapped (hash → slot, a newer ghost overwrites): a
 * key that is filled again while its ghost remains goes straight to main.
 * An entry of main that is invalidated or expires leaves a ghost too, so
 * its refill keeps its place.
 *
 * Tags. Each shard indexes, per tag, the entries of that shard carrying it
 * (intrusive lists through per-entry memberships). Invalidating a tag visits
 * each shard once and unlinks exactly the tagged entries.
 *
 * Fencing. A global epoch counts invalidations; the fence table remembers,
 * per tag, the epoch of its last invalidation (bounded: past FENCE_MAX tags
 * it is cleared and a floor epoch stands for every forgotten tag, which can
 * only fence more, never less). Lock order: a shard lock may be held while
 * taking the fence lock; the fence lock is never held while taking a shard
 * lock.
 *
 * Entries are freed by whoever drops the last reference; a cache's own
 * reference is held while the entry is linked into its shard.
 */
#include "cache/cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "core/sanity.h"

typedef struct membership membership;
typedef struct tag_node tag_node;

/* An entry's place in one tag's list, within the entry's shard. */
struct membership {
    cache_entry *entry;
    tag_node *tag;
    membership *prev, *next;
};

struct tag_node {
    tag_node *bucket_next;
    uint64_t hash;
    membership *head;
    size_t count;
    char name[];
};

struct cache_entry {
    _Atomic uint32_t refs;
    uint32_t ns;
    uint64_t hash;
    cache_entry *bucket_next;
    cache_entry *newer, *older; /* its queue: newest at the head */
    uint64_t created, fresh_until, stale_until, grace_until;
    size_t charge;
    void *value;
    void (*free_value)(void *value);
    uint8_t reads; /* since it came in, or since main's hand passed (0..READS_MAX) */
    uint8_t queue; /* Q_SMALL, Q_MAIN or Q_NEGATIVE */
    bool linked;
    uint16_t tag_count;
    membership *tags;
    size_t key_len;
    char key[];
};

struct cache_flight {
    cache_flight *next;
    uint32_t ns;
    uint64_t hash;
    uint64_t epoch;
    bool fenced;
    bool replaced; /* a newer flight of its key took over; this one only
                      answers the waiters it already has */
    cache_waiter *waiters;
#ifdef STRATA_SANITY
    size_t waiting; /* joins minus leaves: the waiters list's length */
#endif
    size_t key_len;
    char key[];
};

enum { Q_SMALL, Q_MAIN, Q_NEGATIVE, Q_COUNT };
#define READS_MAX 3
#define GHOSTS_MIN 64
#define GHOSTS_MAX (1u << 20)

typedef struct fifo {
    cache_entry *newest, *oldest;
    size_t bytes;
} fifo;

typedef struct shard {
    pthread_mutex_t lock;
    cache_entry **buckets;
    size_t bucket_mask;
    size_t count;
    fifo queues[Q_COUNT];
    size_t max_bytes;          /* small + main */
    size_t small_max_bytes;    /* small's share of it */
    size_t negative_max_bytes; /* the negative queue's own budget */
    uint64_t *ghosts;          /* hashes of entries that left small unread; 0 = empty */
    size_t ghost_mask;
    tag_node **tag_buckets;
    size_t tag_mask;
    size_t tag_count;
    cache_flight *flights;
    uint64_t rng;
    cache_stats stats[CACHE_MAX_NAMESPACES + 1];
#ifdef STRATA_SANITY
    unsigned operations; /* since the shard was made: every Nth is checked whole */
    cache_entry *hidden; /* taken out of the table by cache_sanity_break */
#endif
} __attribute__((aligned(64))) shard;

typedef struct fence {
    struct fence *next;
    uint64_t hash;
    uint64_t epoch;
    char tag[];
} fence;

#ifdef STRATA_SANITY
static void shard_checked(shard *s, bool whole);
static bool flight_sane(const cache_flight *f);
#else
#define shard_checked(s, whole) ((void)0)
#endif

#define FENCE_BUCKETS 4096
#define FENCE_MAX 65536

struct cache {
    shard *shards;
    size_t shard_mask;
    size_t max_bytes;
    double jitter;
    _Atomic uint64_t epoch;
    pthread_mutex_t fence_lock;
    fence *fences[FENCE_BUCKETS];
    size_t fence_count;
    uint64_t fence_floor;
};

static uint64_t hash_bytes(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}

static cache_stats *stats_for(shard *s, uint32_t ns)
{
    return &s->stats[ns < CACHE_MAX_NAMESPACES ? ns : CACHE_MAX_NAMESPACES];
}

static shard *shard_for(cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 32) & c->shard_mask];
}

/* ---- entries and references ------------------------------------------------- */

void *cache_entry_value(const cache_entry *e)
{
    return e->value;
}
uint64_t cache_entry_created(const cache_entry *e)
{
    return e->created;
}
uint64_t cache_entry_fresh_until(const cache_entry *e)
{
    return e->fresh_until;
}

void cache_entry_retain(cache_entry *e)
{
    uint32_t refs = atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    SANITY_CHECK(refs > 0, "an entry with no references left was retained");
    (void)refs;
}

void cache_entry_release(cache_entry **ep)
{
    cache_entry *e = *ep;
    *ep = NULL;
    if (e == NULL)
        return;
    uint32_t refs = atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel);
    SANITY_CHECK(refs > 0, "an entry with no references left was released");
    if (refs != 1)
        return;
    if (e->free_value != NULL)
        e->free_value(e->value);
    free(e);
}

static uint64_t next_random(shard *s)
{
    /* xorshift64* */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

/* Builds an entry (not linked anywhere; one reference) from a value. Called
 * outside any lock; the jitter draw uses a shard's generator, so it is done
 * at link time instead. */
static cache_entry *entry_create(uint32_t ns, uint64_t hash, const void *key, size_t key_len, const cache_value *v,
                                 uint64_t now_ms)
{
    size_t key_space = (key_len + 7) & ~(size_t)7;
    size_t size = sizeof(cache_entry) + key_space + v->tag_count * sizeof(membership);
    cache_entry *e = calloc(1, size);
    if (e == NULL)
        return NULL;
    atomic_init(&e->refs, 1);
    e->ns = ns;
    e->hash = hash;
    e->created = now_ms;
    e->fresh_until = now_ms + v->fresh_ms;
    e->stale_until = e->fresh_until + v->stale_ms;
    e->grace_until = e->stale_until + v->grace_ms;
    e->value = v->value;
    e->free_value = v->free_value;
    e->queue = v->negative ? Q_NEGATIVE : Q_SMALL; /* link_entry may choose main */
    e->tag_count = (uint16_t)v->tag_count;
    e->tags = (membership *)(e->key + key_space);
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    size_t tag_bytes = 0;
    for (size_t i = 0; i < v->tag_count; i++)
        tag_bytes += strlen(v->tags[i]) + sizeof(tag_node) / 4; /* a share of the node */
    e->charge = v->charge + size + tag_bytes;
    return e;
}

cache_entry *cache_entry_new(const cache_value *value, uint64_t now_ms)
{
    assert(value != NULL && value->tag_count <= UINT16_MAX);
    cache_entry *e = entry_create(0, 0, "", 0, value, now_ms);
    if (e == NULL && value->free_value != NULL)
        value->free_value(value->value);
    return e;
}

/* ---- the shard's hash table ---------------------------------------------------- */

static cache_entry **bucket_slot(shard *s, uint64_t hash, const void *key, size_t key_len)
{
    cache_entry **slot = &s->buckets[hash & s->bucket_mask];
    while (*slot != NULL &&
           ((*slot)->hash != hash || (*slot)->key_len != key_len || memcmp((*slot)->key, key, key_len) != 0))
        slot = &(*slot)->bucket_next;
    return slot;
}

static void table_grow(shard *s)
{
    size_t size = (s->bucket_mask + 1) * 2;
    cache_entry **buckets = calloc(size, sizeof(*buckets));
    if (buckets == NULL)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i <= s->bucket_mask; i++) {
        cache_entry *e = s->buckets[i];
        while (e != NULL) {
            cache_entry *next = e->bucket_next;
            e->bucket_next = buckets[e->hash & (size - 1)];
            buckets[e->hash & (size - 1)] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = buckets;
    s->bucket_mask = size - 1;
}

/* ---- tags within a shard ---------------------------------------------------------- */

static tag_node **tag_slot(shard *s, uint64_t hash, const char *name)
{
    tag_node **slot = &s->tag_buckets[hash & s->tag_mask];
    while (*slot != NULL && ((*slot)->hash != hash || strcmp((*slot)->name, name) != 0))
        slot = &(*slot)->bucket_next;
    return slot;
}

static void tag_table_grow(shard *s)
{
    size_t size = (s->tag_mask + 1) * 2;
    tag_node **buckets = calloc(size, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i <= s->tag_mask; i++) {
        tag_node *t = s->tag_buckets[i];
        while (t != NULL) {
            tag_node *next = t->bucket_next;
            t->bucket_next = buckets[t->hash & (size - 1)];
            buckets[t->hash & (size - 1)] = t;
            t = next;
        }
    }
    free(s->tag_buckets);
    s->tag_buckets = buckets;
    s->tag_mask = size - 1;
}

/* Links membership m of entry e into the list of tag `name`. False when out
 * of memory (the entry is then linked with fewer tags: see link_entry). */
static bool tag_attach(shard *s, membership *m, cache_entry *e, const char *name)
{
    uint64_t hash = hash_bytes(name, strlen(name));
    tag_node **slot = tag_slot(s, hash, name);
    if (*slot == NULL) {
        size_t len = strlen(name);
        tag_node *t = calloc(1, sizeof(*t) + len + 1);
        if (t == NULL)
            return false;
        t->hash = hash;
        memcpy(t->name, name, len + 1);
        *slot = t;
        if (++s->tag_count > s->tag_mask + 1)
            tag_table_grow(s);
        slot = tag_slot(s, hash, name);
    }
    tag_node *t = *slot;
    m->entry = e;
    m->tag = t;
    m->prev = NULL;
    m->next = t->head;
    if (t->head != NULL)
        t->head->prev = m;
    t->head = m;
    t->count++;
    return true;
}

static void tag_detach(shard *s, membership *m)
{
    tag_node *t = m->tag;
    if (t == NULL)
        return;
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        t->head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    m->tag = NULL;
    if (--t->count == 0) {
        *tag_slot(s, t->hash, t->name) = t->bucket_next;
        s->tag_count--;
        free(t);
    }
}

/* ---- linking and unlinking --------------------------------------------------------- */

static void fifo_push(fifo *q, cache_entry *e)
{
    e->older = q->newest;
    e->newer = NULL;
    if (q->newest != NULL)
        q->newest->newer = e;
    else
        q->oldest = e;
    q->newest = e;
    q->bytes += e->charge;
}

static void fifo_remove(fifo *q, cache_entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        q->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        q->oldest = e->newer;
    q->bytes -= e->charge;
}

static void unlink_entry(shard *s, cache_entry *e)
{
    *bucket_slot(s, e->hash, e->key, e->key_len) = e->bucket_next;
    s->count--;
    fifo_remove(&s->queues[e->queue], e);
    for (uint16_t i = 0; i < e->tag_count; i++)
        tag_detach(s, &e->tags[i]);
    cache_stats *st = stats_for(s, e->ns);
    st->entries--;
    st->bytes -= e->charge;
    if (e->queue == Q_NEGATIVE) {
        st->negative_entries--;
        st->negative_bytes -= e->charge;
    }
    e->linked = false;
    cache_entry_release(&e);
}

/* ---- admission and eviction (S3-FIFO) ----------------------------------------------- */

static void ghost_add(shard *s, uint64_t hash)
{
    s->ghosts[hash & s->ghost_mask] = hash;
}

/* True (and the ghost is gone) if hash left small unread, or main, lately. */
static bool ghost_take(shard *s, uint64_t hash)
{
    uint64_t *slot = &s->ghosts[hash & s->ghost_mask];
    if (hash == 0 || *slot != hash)
        return false;
    *slot = 0;
    return true;
}

/* Removes an entry that is not evicted (invalidated, expired): one from
 * main leaves a ghost, so its refill goes back to main. */
static void retire_entry(shard *s, cache_entry *e)
{
    if (e->queue == Q_MAIN)
        ghost_add(s, e->hash);
    unlink_entry(s, e);
}

static void evict_entry(shard *s, cache_entry *e)
{
    stats_for(s, e->ns)->evictions++;
    unlink_entry(s, e);
}

/* Small's oldest entry moves to main if it was read since it came in;
 * otherwise it leaves, remembered as a ghost. */
static void evict_small(shard *s)
{
    cache_entry *e = s->queues[Q_SMALL].oldest;
    if (e->reads > 0) {
        fifo_remove(&s->queues[Q_SMALL], e);
        e->queue = Q_MAIN;
        fifo_push(&s->queues[Q_MAIN], e);
        return;
    }
    ghost_add(s, e->hash);
    evict_entry(s, e);
}

/* CLOCK over main: an entry with reads left goes round again with one
 * fewer; the first without is evicted. Ends within READS_MAX rounds. */
static void evict_main(shard *s)
{
    fifo *q = &s->queues[Q_MAIN];
    cache_entry *e;
    while ((e = q->oldest)->reads > 0) {
        e->reads--;
        fifo_remove(q, e);
        fifo_push(q, e);
    }
    evict_entry(s, e);
}

/* Evicts until e (not linked yet) fits its budget; false, with nothing
 * more evicted, for a newcomer to small larger than small's whole share
 * once small is empty: it could only come in at main's expense, so it
 * stays out for now (link_entry remembers it as a ghost, and its next fill
 * goes to main). A flood of one-off pages larger than small's share —
 * lists of many items, in a small shard — then never costs main an entry
 * (it did, a CLOCK round at a time, as soon as small was empty). */
static bool make_room(shard *s, const cache_entry *e)
{
    fifo *small = &s->queues[Q_SMALL], *main_queue = &s->queues[Q_MAIN], *negative = &s->queues[Q_NEGATIVE];
    if (e->queue == Q_NEGATIVE) {
        while (negative->bytes + e->charge > s->negative_max_bytes && negative->oldest != NULL)
            evict_entry(s, negative->oldest);
        return true;
    }
    /* the newcomer counts toward small's share: with small shards (a few
     * entries each) small would otherwise never be over it, and main
     * would pay for every one-off key */
    size_t incoming = e->queue == Q_SMALL ? e->charge : 0;
    while (small->bytes + main_queue->bytes + e->charge > s->max_bytes &&
           (small->oldest != NULL || main_queue->oldest != NULL)) {
        if (main_queue->oldest == NULL || (small->oldest != NULL && small->bytes + incoming > s->small_max_bytes))
            evict_small(s);
        else if (small->oldest == NULL && incoming > s->small_max_bytes)
            return false;
        else
            evict_main(s);
    }
    return true;
}

/* Which queue a new entry joins: negative ones their own; a key that
 * replaces an entry of main, or whose ghost remains, main; others small. */
static uint8_t admit_to(shard *s, const cache_entry *e, const cache_entry *replaced)
{
    if (e->queue == Q_NEGATIVE)
        return Q_NEGATIVE;
    bool was_main = replaced != NULL && replaced->queue == Q_MAIN;
    return ghost_take(s, e->hash) || was_main ? Q_MAIN : Q_SMALL;
}

/* False when make_room keeps e out (a ghost now); the entry it replaces
 * is gone either way. */
static bool link_entry(shard *s, cache_entry *e, double jitter)
{
    cache_entry **slot = bucket_slot(s, e->hash, e->key, e->key_len);
    e->queue = admit_to(s, e, *slot);
    if (*slot != NULL)
        unlink_entry(s, *slot);
    if (!make_room(s, e)) {
        ghost_add(s, e->hash);
        return false;
    }
    if (jitter > 0) {
        uint64_t lifetime = e->fresh_until - e->created;
        uint64_t cut = (uint64_t)((double)lifetime * jitter * (double)(next_random(s) >> 11) / 9007199254740992.0);
        e->fresh_until -= cut;
    }
    slot = bucket_slot(s, e->hash, e->key, e->key_len);
    e->bucket_next = NULL;
    *slot = e;
    if (++s->count > s->bucket_mask + 1)
        table_grow(s);
    fifo_push(&s->queues[e->queue], e);
    e->linked = true;
    cache_stats *st = stats_for(s, e->ns);
    st->entries++;
    st->bytes += e->charge;
    if (e->queue == Q_NEGATIVE) {
        st->negative_entries++;
        st->negative_bytes += e->charge;
    }
    st->inserts++;
    cache_entry_retain(e); /* the cache's own reference */
    return true;
}

/* Links the memberships once the entry is in the table. An entry whose tag
 * could not be indexed (out of memory) must not stay: it could never be
 * invalidated by that tag. */
static bool link_tags(shard *s, cache_entry *e, const char *const *tags)
{
    for (uint16_t i = 0; i < e->tag_count; i++) {
        if (!tag_attach(s, &e->tags[i], e, tags[i])) {
            unlink_entry(s, e);
            return false;
        }
    }
    return true;
}

/* ---- fencing ------------------------------------------------------------------------- */

/* The epoch of the tag's last invalidation; the floor stands for every tag
 * (forgotten ones, and all of them after cache_clear). */
static uint64_t fence_epoch(cache *c, const char *tag, uint64_t hash)
{
    for (fence *f = c->fences[hash % FENCE_BUCKETS]; f != NULL; f = f->next)
        if (f->hash == hash && strcmp(f->tag, tag) == 0)
            return f->epoch > c->fence_floor ? f->epoch : c->fence_floor;
    return c->fence_floor;
}

static void fence_clear(cache *c)
{
    for (size_t i = 0; i < FENCE_BUCKETS; i++) {
        while (c->fences[i] != NULL) {
            fence *f = c->fences[i];
            c->fences[i] = f->next;
            free(f);
        }
    }
    c->fence_count = 0;
}

static void fence_record(cache *c, const char *tag, uint64_t epoch)
{
    uint64_t hash = hash_bytes(tag, strlen(tag));
    for (fence *f = c->fences[hash % FENCE_BUCKETS]; f != NULL; f = f->next) {
        if (f->hash == hash && strcmp(f->tag, tag) == 0) {
            f->epoch = epoch;
            return;
        }
    }
    fence *f = malloc(sizeof(*f) + strlen(tag) + 1);
    if (f == NULL || c->fence_count >= FENCE_MAX) {
        /* Forget every tag and fence every fill that began before now. */
        free(f);
        fence_clear(c);
        c->fence_floor = epoch;
        return;
    }
    f->hash = hash;
    f->epoch = epoch;
    strcpy(f->tag, tag);
    f->next = c->fences[hash % FENCE_BUCKETS];
    c->fences[hash % FENCE_BUCKETS] = f;
    c->fence_count++;
}

/* True if any tag was invalidated after `epoch`. */
static bool is_fenced(cache *c, const char *const *tags, size_t count, uint64_t epoch)
{
    bool fenced = false;
    pthread_mutex_lock(&c->fence_lock);
    for (size_t i = 0; i < count && !fenced; i++)
        fenced = fence_epoch(c, tags[i], hash_bytes(tags[i], strlen(tags[i]))) > epoch;
    pthread_mutex_unlock(&c->fence_lock);
    return fenced;
}

uint64_t cache_epoch(cache *c)
{
    return atomic_load(&c->epoch);
}

/* ---- creation ------------------------------------------------------------------------- */

cache *cache_create(const cache_options *opts)
{
    assert(opts != NULL && opts->shard_count <= (1u << 20));
    cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    size_t shards = 1;
    while (shards < (opts->shard_count ? opts->shard_count : 64))
        shards <<= 1;
    c->shards = aligned_alloc(64, shards * sizeof(shard));
    if (c->shards == NULL) {
        free(c);
        return NULL;
    }
    memset(c->shards, 0, shards * sizeof(shard));
    c->shard_mask = shards - 1;
    c->max_bytes = opts->max_bytes;
    c->jitter = opts->ttl_jitter < 0 ? 0 : opts->ttl_jitter > 0.5 ? 0.5 : opts->ttl_jitter;
    pthread_mutex_init(&c->fence_lock, NULL);
    uint64_t seed = opts->seed;
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
    }
    for (size_t i = 0; i < shards; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->max_bytes = opts->max_bytes / shards;
        s->small_max_bytes = s->max_bytes / 10;
        s->negative_max_bytes = opts->negative_max_bytes / shards;
        size_t ghosts = GHOSTS_MIN;
        while (ghosts < GHOSTS_MAX && ghosts < s->max_bytes / 1024)
            ghosts <<= 1; /* about one per KB of budget: main's entry count, roughly */
        s->ghost_mask = ghosts - 1;
        s->ghosts = calloc(ghosts, sizeof(*s->ghosts));
        s->bucket_mask = 63;
        s->buckets = calloc(64, sizeof(*s->buckets));
        s->tag_mask = 63;
        s->tag_buckets = calloc(64, sizeof(*s->tag_buckets));
        s->rng = (seed + i * 0x9E3779B97F4A7C15ULL) | 1;
        if (s->buckets == NULL || s->tag_buckets == NULL || s->ghosts == NULL) {
            cache_destroy(&c);
            return NULL;
        }
    }
    return c;
}

void cache_destroy(cache **cp)
{
    cache *c = *cp;
    *cp = NULL;
    if (c == NULL)
        return;
    for (size_t i = 0; i <= c->shard_mask; i++) {
        shard *s = &c->shards[i];
        for (int q = 0; q < Q_COUNT; q++)
            while (s->queues[q].oldest != NULL)
                unlink_entry(s, s->queues[q].oldest);
        while (s->flights != NULL) {
            cache_flight *f = s->flights;
            s->flights = f->next;
            for (cache_waiter *w = f->waiters, *next; w != NULL; w = next) {
                next = w->next;
                w->done(w, NULL);
            }
            free(f);
        }
        free(s->buckets);
        free(s->tag_buckets);
        free(s->ghosts);
        pthread_mutex_destroy(&s->lock);
    }
    fence_clear(c);
    pthread_mutex_destroy(&c->fence_lock);
    free(c->shards);
    free(c);
}

size_t cache_max_bytes(const cache *c)
{
    return c->max_bytes;
}

/* ---- reading -------------------------------------------------------------------------- */

cache_state cache_get(cache *c, uint32_t ns, const void *key, size_t key_len, uint64_t now_ms, cache_entry **out)
{
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    cache_state state = CACHE_MISS;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    cache_stats *st = stats_for(s, ns);
    cache_entry *e = *bucket_slot(s, hash, key, key_len);
    if (e != NULL && now_ms >= e->grace_until) {
        retire_entry(s, e);
        e = NULL;
    }
    if (e == NULL) {
        st->misses++;
    } else if (now_ms < e->fresh_until) {
        state = CACHE_FRESH;
        st->hits++;
    } else if (now_ms < e->stale_until) {
        state = CACHE_STALE;
        st->stale_hits++;
    } else {
        state = CACHE_EXPIRED;
        st->expired_hits++;
        st->misses++;
    }
    if (e != NULL) {
        /* write only when it changes: a store to a line the other core
         * reads costs more than the test */
        if (state != CACHE_EXPIRED && e->reads < READS_MAX)
            e->reads++;
        cache_entry_retain(e);
        *out = e;
    }
    shard_checked(s, false);
    pthread_mutex_unlock(&s->lock);
    return state;
}

cache_state cache_peek(cache *c, const void *key, size_t key_len, uint64_t now_ms, cache_entry **out)
{
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    cache_state state = CACHE_MISS;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    cache_entry *e = *bucket_slot(s, hash, key, key_len);
    if (e != NULL && now_ms < e->grace_until) {
        state = now_ms < e->fresh_until ? CACHE_FRESH : now_ms < e->stale_until ? CACHE_STALE : CACHE_EXPIRED;
        cache_entry_retain(e);
        *out = e;
    }
    pthread_mutex_unlock(&s->lock);
    return state;
}

/* ---- flights ---------------------------------------------------------------------------- */

static bool flight_is_for(const cache_flight *f, uint64_t hash, const void *key, size_t key_len)
{
    return f->hash == hash && f->key_len == key_len && memcmp(f->key, key, key_len) == 0;
}

/* Every flight of the key, replaced ones included, will not install. */
static void fence_flights_of(shard *s, uint64_t hash, const void *key, size_t key_len)
{
    for (cache_flight *f = s->flights; f != NULL; f = f->next)
        if (flight_is_for(f, hash, key, key_len))
            f->fenced = true;
}

/* The current (not replaced) flight of a key, or the list's end. */
static cache_flight **flight_slot(shard *s, uint64_t hash, const void *key, size_t key_len)
{
    cache_flight **slot = &s->flights;
    while (*slot != NULL && ((*slot)->replaced || !flight_is_for(*slot, hash, key, key_len)))
        slot = &(*slot)->next;
    return slot;
}

/* A flight can be joined only if nothing was invalidated since it began:
 * otherwise its result may predate a write whose response a joiner has
 * already seen. Such a flight is left to finish for the waiters it has,
 * and a new one takes its place in the table. */
static bool flight_joinable(cache *c, const cache_flight *f)
{
    return !f->fenced && f->epoch == atomic_load(&c->epoch);
}

cache_join cache_flight_join(cache *c, uint32_t ns, const void *key, size_t key_len, uint64_t now_ms,
                             cache_waiter *waiter, cache_flight **flight, cache_entry **filled)
{
    assert(c != NULL && (key != NULL || key_len == 0) && flight != NULL && filled != NULL);
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    cache_flight *fresh_flight = calloc(1, sizeof(*fresh_flight) + key_len);
    cache_join result;
    *flight = NULL;
    *filled = NULL;
    pthread_mutex_lock(&s->lock);
    cache_entry *e = *bucket_slot(s, hash, key, key_len);
    cache_flight **slot = flight_slot(s, hash, key, key_len);
    if (e != NULL && now_ms < e->fresh_until) {
        cache_entry_retain(e);
        *filled = e;
        result = CACHE_FILLED;
    } else if (*slot != NULL && flight_joinable(c, *slot)) {
        if (waiter != NULL) {
            waiter->first = (*slot)->waiters == NULL;
            waiter->next = (*slot)->waiters;
            (*slot)->waiters = waiter;
#ifdef STRATA_SANITY
            (*slot)->waiting++;
#endif
            stats_for(s, ns)->coalesced++;
        }
        result = CACHE_JOINED;
    } else if (fresh_flight == NULL) {
        /* Out of memory: fill without coalescing rather than fail. */
        result = CACHE_LEADER;
    } else {
        if (*slot != NULL) /* an outdated flight finishes for its own waiters */
            (*slot)->replaced = true;
        fresh_flight->ns = ns;
        fresh_flight->hash = hash;
        fresh_flight->epoch = atomic_load(&c->epoch);
        fresh_flight->key_len = key_len;
        memcpy(fresh_flight->key, key, key_len);
        fresh_flight->next = s->flights;
        s->flights = fresh_flight;
        *flight = fresh_flight;
        fresh_flight = NULL;
        result = CACHE_LEADER;
    }
    shard_checked(s, false);
    pthread_mutex_unlock(&s->lock);
    free(fresh_flight);
    return result;
}

bool cache_flight_leave(cache *c, const void *key, size_t key_len, cache_waiter *waiter)
{
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    bool found = false;
    pthread_mutex_lock(&s->lock);
    /* the waiter may be on a replaced flight of the key: look at every one */
    for (cache_flight *f = s->flights; f != NULL && !found; f = f->next) {
        if (!flight_is_for(f, hash, key, key_len))
            continue;
        for (cache_waiter **w = &f->waiters; *w != NULL; w = &(*w)->next) {
            if (*w == waiter) {
                *w = waiter->next;
#ifdef STRATA_SANITY
                f->waiting--;
#endif
                found = true;
                break;
            }
        }
    }
    shard_checked(s, false);
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* Installs e (under the shard lock) unless fenced; true if installed. */
static bool install(cache *c, shard *s, cache_entry *e, const cache_value *v, uint64_t epoch, bool fenced)
{
    cache_stats *st = stats_for(s, e->ns);
    if (fenced || is_fenced(c, v->tags, v->tag_count, epoch)) {
        st->fenced++;
        return false;
    }
    if (e->charge > (e->queue == Q_NEGATIVE ? s->negative_max_bytes : s->max_bytes))
        return false;
    return link_entry(s, e, c->jitter) && link_tags(s, e, v->tags);
}

bool cache_flight_finish(cache *c, cache_flight *flight, const cache_value *value, uint64_t now_ms, cache_entry **out)
{
    if (out != NULL)
        *out = NULL;
    if (flight == NULL) { /* a leader without a flight (out of memory at join): an entry of its own, uncached */
        cache_entry *own = value != NULL ? cache_entry_new(value, now_ms) : NULL;
        if (out != NULL)
            *out = own;
        else
            cache_entry_release(&own);
        return false;
    }
    assert(value == NULL || value->tag_count <= UINT16_MAX); /* entries count their tags in 16 bits */
    shard *s = shard_for(c, flight->hash);
    cache_entry *e =
        value != NULL ? entry_create(flight->ns, flight->hash, flight->key, flight->key_len, value, now_ms) : NULL;
    if (e == NULL && value != NULL && value->free_value != NULL)
        value->free_value(value->value);
    bool installed = false;
    pthread_mutex_lock(&s->lock);
    cache_flight **slot = &s->flights;
    while (*slot != flight) {
        SANITY_CHECK(*slot != NULL, "a flight that is not under way finishes (a second time?)");
        slot = &(*slot)->next;
    }
    *slot = flight->next;
#ifdef STRATA_SANITY
    flight_sane(flight);
#endif
    if (e != NULL) {
        stats_for(s, e->ns)->fills++;
        installed = !value->share_only && install(c, s, e, value, flight->epoch, flight->fenced);
    }
    for (cache_waiter *w = flight->waiters, *next; w != NULL; w = next) {
        next = w->next;
        if (e != NULL)
            cache_entry_retain(e);
        w->done(w, e);
    }
    shard_checked(s, false);
    pthread_mutex_unlock(&s->lock);
    free(flight);
    if (out != NULL)
        *out = e;
    else
        cache_entry_release(&e);
    return installed;
}

bool cache_insert(cache *c, uint32_t ns, const void *key, size_t key_len, const cache_value *value, uint64_t epoch,
                  uint64_t now_ms)
{
    /* The value is ours from here on, installed or not (cache.h). */
    assert(c != NULL && (key != NULL || key_len == 0) && value != NULL && value->tag_count <= UINT16_MAX);
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    cache_entry *e = entry_create(ns, hash, key, key_len, value, now_ms);
    if (e == NULL) {
        if (value->free_value != NULL)
            value->free_value(value->value);
        return false;
    }
    pthread_mutex_lock(&s->lock);
    bool installed = !value->share_only && install(c, s, e, value, epoch, false);
    if (installed)
        fence_flights_of(s, hash, key, key_len); /* an older fill must not overwrite this value */
    shard_checked(s, false);
    pthread_mutex_unlock(&s->lock);
    cache_entry_release(&e); /* ours; if refused, the last one: the value goes with it */
    return installed;
}

/* ---- invalidation ------------------------------------------------------------------------ */

size_t cache_invalidate_tag(cache *c, const char *tag)
{
    assert(c != NULL && tag != NULL);
    uint64_t hash = hash_bytes(tag, strlen(tag));
    pthread_mutex_lock(&c->fence_lock);
    uint64_t epoch = atomic_fetch_add(&c->epoch, 1) + 1;
    fence_record(c, tag, epoch);
    pthread_mutex_unlock(&c->fence_lock);

    size_t removed = 0;
    for (size_t i = 0; i <= c->shard_mask; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        tag_node **slot = tag_slot(s, hash, tag);
        /* Each unlink detaches one membership; the node is freed with the
         * last one, so re-read the slot every time. */
        while (*slot != NULL) {
            cache_entry *e = (*slot)->head->entry;
            stats_for(s, e->ns)->invalidations++;
            retire_entry(s, e);
            removed++;
            slot = tag_slot(s, hash, tag);
        }
        shard_checked(s, false);
        pthread_mutex_unlock(&s->lock);
    }
    return removed;
}

bool cache_invalidate_key(cache *c, const void *key, size_t key_len)
{
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    pthread_mutex_lock(&s->lock);
    cache_entry *e = *bucket_slot(s, hash, key, key_len);
    if (e != NULL) {
        stats_for(s, e->ns)->invalidations++;
        retire_entry(s, e);
    }
    fence_flights_of(s, hash, key, key_len);
    shard_checked(s, false);
    pthread_mutex_unlock(&s->lock);
    return e != NULL;
}

size_t cache_clear(cache *c)
{
    pthread_mutex_lock(&c->fence_lock);
    uint64_t epoch = atomic_fetch_add(&c->epoch, 1) + 1;
    fence_clear(c);
    c->fence_floor = epoch; /* every fill in flight began before: fenced */
    pthread_mutex_unlock(&c->fence_lock);
    size_t removed = 0;
    for (size_t i = 0; i <= c->shard_mask; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (int q = 0; q < Q_COUNT; q++) {
            while (s->queues[q].oldest != NULL) {
                stats_for(s, s->queues[q].oldest->ns)->invalidations++;
                unlink_entry(s, s->queues[q].oldest);
                removed++;
            }
        }
        for (cache_flight *f = s->flights; f != NULL; f = f->next)
            f->fenced = true;
        shard_checked(s, true);
        pthread_mutex_unlock(&s->lock);
    }
    return removed;
}

/* ---- stats --------------------------------------------------------------------------------- */

static void stats_add(cache_stats *sum, const cache_stats *x)
{
    sum->hits += x->hits;
    sum->misses += x->misses;
    sum->stale_hits += x->stale_hits;
    sum->expired_hits += x->expired_hits;
    sum->coalesced += x->coalesced;
    sum->fills += x->fills;
    sum->fenced += x->fenced;
    sum->inserts += x->inserts;
    sum->evictions += x->evictions;
    sum->invalidations += x->invalidations;
    sum->entries += x->entries;
    sum->bytes += x->bytes;
    sum->negative_entries += x->negative_entries;
    sum->negative_bytes += x->negative_bytes;
}

void cache_get_stats(cache *c, uint32_t ns, cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i <= c->shard_mask; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        if (ns == UINT32_MAX) {
            for (size_t k = 0; k <= CACHE_MAX_NAMESPACES; k++)
                stats_add(out, &s->stats[k]);
        } else {
            stats_add(out, stats_for(s, ns));
        }
        pthread_mutex_unlock(&s->lock);
    }
}

/* ---- load shedding ---------------------------------------------------------- */

bool cache_flight_has_waiters(cache *c, const cache_flight *flight)
{
    shard *s = shard_for(c, flight->hash);
    pthread_mutex_lock(&s->lock);
    bool waiting = flight->waiters != NULL;
    pthread_mutex_unlock(&s->lock);
    return waiting;
}

/* ---- sanity (test builds: core/sanity.h) ------------------------------------------------ */

#ifdef STRATA_SANITY

/* A whole walk of a shard every SANITY_WALK_EVERY operations on it, the
 * O(1) checks of its queues' ends on every one. A walk costs O(entries +
 * buckets + tags) of one shard, and the server's shards are small (64 of
 * them), so at 64 the cache-heavy system tests took no measurable longer
 * (issue 13); the unit tests with a single shard walk it often. */
enum { SANITY_WALK_EVERY = 64 };

/* A queue's ends agree with its emptiness. O(1). */
static bool fifo_ends_sane(const fifo *q, int which)
{
    SANITY_EXPECT((q->newest == NULL) == (q->oldest == NULL), "queue %d: newest %p but oldest %p", which,
                  (void *)q->newest, (void *)q->oldest);
    SANITY_EXPECT(q->newest == NULL || (q->newest->newer == NULL && q->oldest->older == NULL),
                  "queue %d: an end entry links past the end", which);
    SANITY_EXPECT(q->newest != NULL || q->bytes == 0, "queue %d is empty but holds %zu bytes", which, q->bytes);
    return true;
}

static bool shard_ends_sane(const shard *s)
{
    for (int q = 0; q < Q_COUNT; q++)
        if (!fifo_ends_sane(&s->queues[q], q))
            return false;
    bool empty =
        s->queues[Q_SMALL].newest == NULL && s->queues[Q_MAIN].newest == NULL && s->queues[Q_NEGATIVE].newest == NULL;
    SANITY_EXPECT(empty == (s->count == 0), "the shard counts %zu entries, its queues are%s empty", s->count,
                  empty ? "" : " not");
    SANITY_EXPECT(s->queues[Q_SMALL].bytes + s->queues[Q_MAIN].bytes <= s->max_bytes,
                  "small and main hold %zu + %zu bytes, over the shard's %zu", s->queues[Q_SMALL].bytes,
                  s->queues[Q_MAIN].bytes, s->max_bytes);
    SANITY_EXPECT(s->queues[Q_NEGATIVE].bytes <= s->negative_max_bytes,
                  "negative entries hold %zu bytes, over their budget of %zu", s->queues[Q_NEGATIVE].bytes,
                  s->negative_max_bytes);
    return true;
}

/* An entry of a queue: linked, referenced by the cache, found in the table
 * under its key, and a member of each of its tags. */
static bool entry_sane(shard *s, cache_entry *e, int which)
{
    SANITY_EXPECT(e->queue == which, "an entry of queue %d says it is in queue %d", which, e->queue);
    SANITY_EXPECT(e->linked, "an entry of queue %d is not marked linked", which);
    uint32_t refs = atomic_load(&e->refs);
    SANITY_EXPECT(refs > 0, "an entry of queue %d is linked with %u references", which, refs);
    SANITY_EXPECT(e->reads <= READS_MAX, "an entry was read %u times, more than %d", e->reads, READS_MAX);
    SANITY_EXPECT(*bucket_slot(s, e->hash, e->key, e->key_len) == e,
                  "an entry of queue %d is not in the hash table under its key", which);
    for (uint16_t i = 0; i < e->tag_count; i++) {
        const membership *m = &e->tags[i];
        SANITY_EXPECT(m->tag != NULL && m->entry == e, "tag %u of an entry is not linked to it", i);
        SANITY_EXPECT(*tag_slot(s, m->tag->hash, m->tag->name) == m->tag, "tag '%s' of an entry is not indexed",
                      m->tag->name);
    }
    return true;
}

typedef struct shard_sums {
    size_t entries, bytes, negative_entries, negative_bytes;
} shard_sums;

/* Walks queue `which` from its oldest entry: links agree both ways, the
 * walk ends within the shard's count (no cycle), and the bytes add up. */
static bool fifo_sane(shard *s, int which, shard_sums sums[], size_t *walked)
{
    const fifo *q = &s->queues[which];
    size_t bytes = 0;
    const cache_entry *older = NULL;
    for (cache_entry *e = q->oldest; e != NULL; older = e, e = e->newer) {
        SANITY_EXPECT(e->older == older, "queue %d: an entry's older link %p is not its predecessor %p", which,
                      (void *)e->older, (void *)older);
        SANITY_EXPECT(++*walked <= s->count, "the queues hold more than the shard's %zu entries (a cycle?)", s->count);
        if (!entry_sane(s, e, which))
            return false;
        bytes += e->charge;
        shard_sums *sum = &sums[e->ns < CACHE_MAX_NAMESPACES ? e->ns : CACHE_MAX_NAMESPACES];
        sum->entries++;
        sum->bytes += e->charge;
        sum->negative_entries += which == Q_NEGATIVE;
        sum->negative_bytes += which == Q_NEGATIVE ? e->charge : 0;
    }
    SANITY_EXPECT(older == q->newest, "queue %d: its walk ends at %p, its newest is %p", which, (void *)older,
                  (void *)q->newest);
    SANITY_EXPECT(bytes == q->bytes, "queue %d counts %zu bytes, its entries sum to %zu", which, q->bytes, bytes);
    return true;
}

/* Every entry of the table is a linked entry of a queue: with the walk of
 * the queues (each of their entries is found in the table), the two hold
 * the same entries. */
static bool table_sane(const shard *s)
{
    size_t found = 0;
    for (size_t i = 0; i <= s->bucket_mask; i++) {
        for (const cache_entry *e = s->buckets[i]; e != NULL; e = e->bucket_next) {
            SANITY_EXPECT((e->hash & s->bucket_mask) == i, "an entry sits in bucket %zu, its hash says %zu", i,
                          (size_t)(e->hash & s->bucket_mask));
            SANITY_EXPECT(e->linked && e->queue < Q_COUNT, "the table holds an entry of no queue");
            SANITY_EXPECT(++found <= s->count, "the table holds more than the shard's %zu entries", s->count);
        }
    }
    SANITY_EXPECT(found == s->count, "the table holds %zu entries, the shard counts %zu", found, s->count);
    return true;
}

static bool tags_sane(const shard *s)
{
    size_t nodes = 0;
    for (size_t i = 0; i <= s->tag_mask; i++) {
        for (const tag_node *t = s->tag_buckets[i]; t != NULL; t = t->bucket_next) {
            size_t members = 0;
            for (const membership *m = t->head; m != NULL; m = m->next) {
                SANITY_EXPECT(m->tag == t && m->entry->linked, "tag '%s' lists a membership not its own", t->name);
                SANITY_EXPECT(m->next == NULL || m->next->prev == m, "tag '%s': its list's links disagree", t->name);
                SANITY_EXPECT(++members <= t->count, "tag '%s' lists more than its %zu entries", t->name, t->count);
            }
            SANITY_EXPECT(members == t->count && members > 0, "tag '%s' counts %zu entries and lists %zu", t->name,
                          t->count, members);
            nodes++;
        }
    }
    SANITY_EXPECT(nodes == s->tag_count, "the shard counts %zu tags and indexes %zu", s->tag_count, nodes);
    return true;
}

/* Per namespace, the stats' entries and bytes are the sums over entries. */
static bool stats_sane(const shard *s, const shard_sums sums[])
{
    for (size_t ns = 0; ns <= CACHE_MAX_NAMESPACES; ns++) {
        const cache_stats *st = &s->stats[ns];
        const shard_sums *sum = &sums[ns];
        SANITY_EXPECT(st->entries == sum->entries && st->bytes == sum->bytes,
                      "namespace %zu counts %llu entries of %llu bytes; they are %zu of %zu", ns,
                      (unsigned long long)st->entries, (unsigned long long)st->bytes, sum->entries, sum->bytes);
        SANITY_EXPECT(st->negative_entries == sum->negative_entries && st->negative_bytes == sum->negative_bytes,
                      "namespace %zu counts %llu negative entries of %llu bytes; they are %zu of %zu", ns,
                      (unsigned long long)st->negative_entries, (unsigned long long)st->negative_bytes,
                      sum->negative_entries, sum->negative_bytes);
    }
    return true;
}

/* A flight's waiters are as many as joined and did not leave: the walk
 * ends within that bound (no waiter twice, no cycle). */
static bool flight_sane(const cache_flight *f)
{
    size_t waiters = 0;
    for (const cache_waiter *w = f->waiters; w != NULL; w = w->next)
        SANITY_EXPECT(++waiters <= f->waiting, "a flight lists more than its %zu waiters", f->waiting);
    SANITY_EXPECT(waiters == f->waiting, "a flight has %zu waiters, %zu joined and stayed", waiters, f->waiting);
    return true;
}

/* Each flight is sane, and a key has one current flight at most. */
static bool flights_sane(const shard *s)
{
    for (const cache_flight *f = s->flights; f != NULL; f = f->next) {
        if (!flight_sane(f))
            return false;
        for (const cache_flight *g = f->next; g != NULL && !f->replaced; g = g->next)
            SANITY_EXPECT(g->replaced || !flight_is_for(g, f->hash, f->key, f->key_len),
                          "a key has two current flights");
    }
    return true;
}

/* Every invariant of the shard; its lock is held. */
static bool shard_sane(shard *s)
{
    shard_sums sums[CACHE_MAX_NAMESPACES + 1] = {0};
    size_t walked = 0;
    if (!shard_ends_sane(s))
        return false;
    for (int q = 0; q < Q_COUNT; q++)
        if (!fifo_sane(s, q, sums, &walked))
            return false;
    SANITY_EXPECT(walked == s->count, "the queues hold %zu entries, the shard counts %zu", walked, s->count);
    return table_sane(s) && tags_sane(s) && stats_sane(s, sums) && flights_sane(s);
}

/* At the end of an operation that changed the shard, its lock held: the
 * O(1) checks, and every SANITY_WALK_EVERY operations (or when `whole`)
 * the walk. */
static void shard_checked(shard *s, bool whole)
{
    if (whole || ++s->operations % SANITY_WALK_EVERY == 0)
        shard_sane(s);
    else
        shard_ends_sane(s);
}

bool cache_sanity_check(cache *c)
{
    bool sane = true;
    for (size_t i = 0; i <= c->shard_mask; i++) {
        pthread_mutex_lock(&c->shards[i].lock);
        sane = shard_sane(&c->shards[i]) && sane;
        pthread_mutex_unlock(&c->shards[i].lock);
    }
    return sane;
}

/* Each breakage flips one field, so a second call mends it. */
void cache_sanity_break(cache *c, const void *key, size_t key_len, cache_breakage how)
{
    uint64_t hash = hash_bytes(key, key_len);
    shard *s = shard_for(c, hash);
    pthread_mutex_lock(&s->lock);
    cache_entry **slot = bucket_slot(s, hash, key, key_len);
    cache_entry *e = *slot;
    switch (how) {
    case CACHE_BREAK_QUEUE_BYTES: s->queues[e->queue].bytes ^= 1; break;
    case CACHE_BREAK_QUEUE_LINKS: {
        cache_entry *newer = e->newer;
        e->newer = e->older;
        e->older = newer;
        break;
    }
    case CACHE_BREAK_REFS: atomic_fetch_xor(&e->refs, 1); break;
    case CACHE_BREAK_TABLE:
        if (e != NULL) {
            *slot = e->bucket_next;
            s->hidden = e;
        } else {
            s->hidden->bucket_next = s->buckets[hash & s->bucket_mask];
            s->buckets[hash & s->bucket_mask] = s->hidden;
            s->hidden = NULL;
        }
        break;
    case CACHE_BREAK_STATS: stats_for(s, e->ns)->bytes ^= 1; break;
    case CACHE_BREAK_TAG_COUNT: e->tags[0].tag->count ^= 1; break;
    case CACHE_BREAK_WAITERS: (*flight_slot(s, hash, key, key_len))->waiting ^= 1; break;
    }
    pthread_mutex_unlock(&s->lock);
}

#endif

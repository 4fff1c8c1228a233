/*
 * cache.h — strata's cache engine: a sharded, byte-bounded, tag-aware L1.
 *
 * The engine knows nothing of HTTP or content. It stores opaque values
 * under byte-string keys; the caller says how many bytes a value costs, how
 * to free it, which tags it carries and how long it lives: cache_get /
 * flights / insert / invalidate are the whole surface a caller uses.
 *
 * This is the L1 only, in-process and synchronous. The second tier, Redis
 * (l2.h), is not behind these calls: it has an interface of its own,
 * asynchronous on the event loops (l2_lookup, l2_store, l2_release), with
 * its own coherence across instances (tag generations stamped in Redis,
 * leases for a fill per key). The request path (src/http) asks the L1,
 * then the L2, then the database, and installs what the L2 returns in the
 * L1; invalidations reach other instances' L1s and the L2's stamps through
 * cache_bus.h.
 *
 * Entries are refcounted: cache_get hands out a reference, so a caller can
 * serve a value without copying it while eviction or invalidation removes
 * the entry from the cache; the value is freed when the last reference goes.
 *
 * Admission and eviction are S3-FIFO (SOSP'23): a new entry waits in a
 * small FIFO (a tenth of the budget) and reaches the main one only if it
 * is read before it leaves, or filled again soon after (a ghost of its key
 * is kept); a hit only bumps a 2-bit counter (no list move). Keys read once
 * — a crawler, a flood of junk — pass through small and cannot push out
 * the warm entries of main. Entries the caller marks negative ("no such
 * item", an empty page) live in a third FIFO with their own, separate
 * budget, so they cannot take the room of positive ones either.
 *
 * Lifetimes: an entry is fresh until fresh_ms has passed (minus a random
 * jitter so entries filled together do not expire together), then stale for
 * stale_ms (serve it and refresh in the background), then kept for grace_ms
 * more only as a fail-safe (serve it when a refresh fails), then gone.
 *
 * Tags and fencing: invalidating a tag removes every entry carrying it (cost
 * O(shards + tagged entries), never a scan of the cache) and records the
 * invalidation's epoch. A fill reads the epoch when it starts (a flight
 * records it); at insert, a value any of whose tags was invalidated after
 * that epoch is not installed, so a fill racing a write cannot put the old
 * value back.
 *
 * Ownership of values: every call that is given a cache_value (cache_insert,
 * cache_flight_finish, cache_entry_new) takes the value over, whatever it
 * returns. Installed, the value lives in the entry and is freed (by
 * free_value) with it; refused — fenced, share_only, larger than one
 * shard's budget, or out of memory — it is freed before the call returns.
 * Either way the caller must neither free the value nor touch it after the
 * call (an installed entry can be evicted, and its value freed, by another
 * thread at once): use the reference the call hands back instead.
 *
 * Single flight: the first miss of a key becomes the leader of a flight and
 * fills; later misses join as waiters and are called back with the leader's
 * entry (or NULL if the fill failed). A waiter can leave (time out) at any
 * moment before it is called; callbacks run under the shard lock, so they
 * must only hand the result over (post it to a loop), never block.
 */
#ifndef STRATA_CACHE_H
#define STRATA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cache cache;
typedef struct cache_entry cache_entry;
typedef struct cache_flight cache_flight;

#define CACHE_MAX_NAMESPACES 64 /* stats are kept per namespace (site) below this id */

/* Memory: each entry is charged its value's `charge` plus the engine's own
 * bytes (about 128 + key + tags). Every shard gets max_bytes / shards, and a
 * value larger than one shard's budget is not stored (4 MB at the default
 * 256 MB and 64 shards); negative entries are charged to their own budget
 * the same way. The ghost table costs 8 bytes per KB of max_bytes. */
typedef struct cache_options {
    size_t max_bytes;          /* total budget across shards */
    size_t negative_max_bytes; /* negative entries' budget, apart from max_bytes */
    unsigned shard_count;      /* rounded up to a power of two; 0 = 64 */
    double ttl_jitter;         /* 0..0.5: fresh lifetime shortened by up to this fraction */
    uint64_t seed;             /* for jitter; 0 = from the clock */
} cache_options;

cache *cache_create(const cache_options *opts);
/* Frees every entry not referenced elsewhere; sets *c to NULL. */
void cache_destroy(cache **c);

/* ---- reading ------------------------------------------------------------ */

typedef enum cache_state {
    CACHE_MISS = 0,
    CACHE_FRESH,   /* serve it */
    CACHE_STALE,   /* serve it, refresh in the background */
    CACHE_EXPIRED, /* do not serve, unless the refresh fails (fail-safe) */
} cache_state;

/* Looks key up at time now_ms (any monotonic millisecond clock, the same
 * for every call). For FRESH, STALE and EXPIRED, *out gets a reference the
 * caller must release. ns is the namespace the stats are counted under. */
cache_state cache_get(cache *c, uint32_t ns, const void *key, size_t key_len, uint64_t now_ms, cache_entry **out);

/* Like cache_get, but neither counted in the stats nor marking the entry
 * as used: for checks that are not reads (does the cache hold this?). */
cache_state cache_peek(cache *c, const void *key, size_t key_len, uint64_t now_ms, cache_entry **out);

void *cache_entry_value(const cache_entry *e);
uint64_t cache_entry_created(const cache_entry *e);     /* now_ms at insert */
uint64_t cache_entry_fresh_until(const cache_entry *e); /* after jitter */
void cache_entry_retain(cache_entry *e);
/* Drops a reference; frees the entry (and its value) on the last one. Sets
 * *e to NULL. Safe from any thread. */
void cache_entry_release(cache_entry **e);

/* ---- filling ------------------------------------------------------------ */

typedef struct cache_value {
    void *value;                     /* the cache's once given, installed or not */
    void (*free_value)(void *value); /* called once, when the entry dies */
    size_t charge;                   /* bytes this value costs */
    const char *const *tags;         /* copied */
    size_t tag_count;
    uint64_t fresh_ms, stale_ms, grace_ms;
    bool share_only; /* hand it to the flight's waiters, never install it */
    bool negative;   /* an answer that something does not exist: the negative budget */
} cache_value;

/* An entry that lives outside any cache (one reference): the same handle
 * for a result that answers requests but is not stored. */
cache_entry *cache_entry_new(const cache_value *value, uint64_t now_ms);

typedef struct cache_waiter cache_waiter;
struct cache_waiter {
    cache_waiter *next; /* the engine's */
    bool first;         /* set by cache_flight_join: the flight had no waiter before this one */
    /* Called once with a reference to the flight's entry (release it), or
     * NULL when the fill failed or was abandoned. Runs on the completing
     * thread, under the shard lock: hand the result over, do not block. */
    void (*done)(cache_waiter *w, cache_entry *e);
};

typedef enum cache_join {
    CACHE_LEADER, /* the caller fills and must call cache_flight_finish */
    CACHE_JOINED, /* the waiter (if any) will be called back */
    CACHE_FILLED, /* a fresh entry arrived since the caller's miss: *filled */
} cache_join;

/* Joins the flight for key, or starts one and makes the caller its leader.
 * Checked atomically with the entry itself, so a fill that completes
 * between the caller's miss and this call is returned (CACHE_FILLED, a
 * reference in *filled) rather than filled twice. A NULL waiter joins
 * without waiting (background refreshes: if a flight is already under way
 * there is nothing to do). */
cache_join cache_flight_join(cache *c, uint32_t ns, const void *key, size_t key_len, uint64_t now_ms,
                             cache_waiter *waiter, cache_flight **flight, cache_entry **filled);

/* Ends a flight. With a value: makes an entry, installs it unless fenced
 * (a tag or the key was invalidated since the flight began), hands every
 * waiter a reference, and returns one in *out if out is not NULL (the entry
 * is returned even when fenced: it is what the fill produced, fit to answer
 * the requests that were waiting, only not cached). With value NULL: every
 * waiter gets NULL. Returns true if the entry was installed. */
bool cache_flight_finish(cache *c, cache_flight *flight, const cache_value *value, uint64_t now_ms, cache_entry **out);

/* Removes a waiter that gave up. True if it was still waiting (it will not
 * be called); false if it has already been called. */
bool cache_flight_leave(cache *c, const void *key, size_t key_len, cache_waiter *waiter);
/* Whether anyone waits on the flight now (its leader's client left: is
 * the fill still wanted?). The leader's flight is alive until it finishes. */
bool cache_flight_has_waiters(cache *c, const cache_flight *flight);

/* Inserts without a flight (write-through, warming). Fenced like a flight
 * that began at `epoch` (from cache_epoch before the data was read).
 * Takes value->value over in every case (see "Ownership" above): true if
 * it was installed; false if it was refused, and then already freed. */
bool cache_insert(cache *c, uint32_t ns, const void *key, size_t key_len, const cache_value *value, uint64_t epoch,
                  uint64_t now_ms);
uint64_t cache_epoch(cache *c);

/* ---- invalidating ------------------------------------------------------- */

/* Removes every entry tagged `tag` and fences fills in flight. Returns the
 * number of entries removed. */
size_t cache_invalidate_tag(cache *c, const char *tag);
/* Removes one key and fences its flight. True if an entry was removed. */
bool cache_invalidate_key(cache *c, const void *key, size_t key_len);

/* Removes every entry and fences every fill in flight (after a gap in the
 * invalidations this instance heard of). Returns the number removed. */
size_t cache_clear(cache *c);

/* ---- stats -------------------------------------------------------------- */

typedef struct cache_stats {
    /* lookups: hits (fresh), stale_hits, misses; an expired entry's lookup
     * counts as a miss and also in expired_hits (the fail-safe copies) */
    uint64_t hits, misses, stale_hits, expired_hits;
    uint64_t coalesced;     /* waiters that joined a flight */
    uint64_t fills, fenced; /* flights finished with a value; of which not installed */
    uint64_t inserts, evictions, invalidations;
    uint64_t entries, bytes;                   /* now, negative ones included */
    uint64_t negative_entries, negative_bytes; /* now */
} cache_stats;

/* Sums over shards. ns = UINT32_MAX for every namespace together. */
void cache_get_stats(cache *c, uint32_t ns, cache_stats *out);
size_t cache_max_bytes(const cache *c);

/* ---- sanity (test builds only: core/sanity.h) ------------------------------ */

#ifdef STRATA_SANITY
/* Walks every shard under its lock and reports each broken invariant to
 * the sanity hook: queues well linked with their bytes summed, the table
 * and the queues holding the same entries, each linked entry referenced,
 * tag lists and counts, per-namespace stats, flights' waiter counts. The
 * engine also runs it on a shard every 64th operation on that shard, and
 * O(1) checks on every one. True if nothing was broken. */
bool cache_sanity_check(cache *c);

/* For the checker's own tests: breaks one invariant of key's entry (or
 * flight, or shard) on purpose; the same call again mends it. */
typedef enum cache_breakage {
    CACHE_BREAK_QUEUE_BYTES, /* its queue's byte count */
    CACHE_BREAK_QUEUE_LINKS, /* its newer/older links swapped */
    CACHE_BREAK_REFS,        /* its reference count */
    CACHE_BREAK_TABLE,       /* taken out of the hash table, left in its queue */
    CACHE_BREAK_STATS,       /* its namespace's byte count */
    CACHE_BREAK_TAG_COUNT,   /* its first tag's entry count */
    CACHE_BREAK_WAITERS,     /* the key's flight's waiter count */
} cache_breakage;
void cache_sanity_break(cache *c, const void *key, size_t key_len, cache_breakage how);
#endif

#endif

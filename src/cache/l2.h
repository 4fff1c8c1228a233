/*
 * l2.h — the second cache tier: values in Redis, shared by every instance,
 * read and written asynchronously from the event loops.
 *
 * Like the L1 engine, the L2 knows nothing of HTTP or content: it stores an
 * opaque payload under (site, key) with the value's tags and lifetimes, in
 * one compact binary record with a version byte (see l2.c). What it adds is
 * coherence across instances without a round trip per tag:
 *
 *   - Tag generations. Invalidating a tag stamps it, in Redis, with the
 *     site's clock (microseconds, never going back). A fill takes a
 *     snapshot of that clock when it misses; its value records the
 *     snapshot, and a value is valid only while none of its tags (nor its
 *     key) was stamped at or after it. The check runs inside Redis, in the
 *     same script that reads the value: one round trip per lookup, O(tags).
 *   - An era. A value whose snapshot is older than `strata:era` is invalid.
 *     The era is set when Redis has lost its keys (restart, FLUSHALL: the
 *     first script to find it missing sets it to now), and when an instance
 *     announces that invalidations were lost (cache_bus's reset): nothing
 *     filled before a gap survives it. Flushing a site is one stamp of its
 *     `<site>:all` tag, which every value carries.
 *   - Distributed single flight. A lookup that misses may take the key's
 *     lease (SET NX PX, a token unique to the fill): the holder fills from
 *     the database; other instances see L2_BUSY and poll, bounded. A store
 *     or release is accepted only from the lease's holder (or with no lease
 *     out), and only if the value is still valid — a fill that raced an
 *     invalidation is refused, as in the L1.
 *
 * Threading: an `l2` is shared (settings, circuit breaker, stats — atomics);
 * each event loop opens its own `l2_conn` (pool_size pipelined hiredis
 * connections attached to that loop) and uses it only from its own thread.
 * Every command has a deadline from the loop's timers.
 *
 * Circuit breaker: `breaker_failures` errors or timeouts in a row open it;
 * while open, l2_usable() says no and callers go to the database. After
 * `breaker_cooldown_ms` one probe is let through; its success closes the
 * breaker, its failure opens it again.
 */
#ifndef STRATA_CACHE_L2_H
#define STRATA_CACHE_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "cache/tier.h"

typedef struct l2 l2;
typedef struct l2_conn l2_conn;

typedef struct l2_options {
    const char *host;
    int port;
    int timeout_ms;          /* per command, and per connection attempt */
    int pool_size;           /* connections per event loop */
    int breaker_failures;    /* consecutive failures that open the breaker */
    int breaker_cooldown_ms; /* open this long before a probe */
    uint64_t lease_ms;       /* a fill's lease on its key */
} l2_options;

l2 *l2_create(const l2_options *opts);
void l2_destroy(l2 **l);

/* Connects pool_size connections on `loop` (in the background: commands
 * fail fast until they are up, and reconnect on their own). Loop thread. */
l2_conn *l2_conn_open(l2 *l, h2o_loop_t *loop);
/* Pending callbacks are called with L2_ERROR; then everything is freed. */
void l2_conn_close(l2_conn **conn);

/* False while the breaker is open (or a half-open probe is out). */
bool l2_usable(l2 *l);

/* The L2 is a cache tier (tier.h): its results, records and lifetimes are
 * the tiers' own; these names keep the Redis code readable. */
typedef tier_lifetimes l2_lifetimes;
typedef tier_outcome l2_outcome;
#define L2_HIT TIER_HIT     /* a valid value: payload, life */
#define L2_MISS TIER_MISS   /* none; snapshot set; leased if this lookup took the lease */
#define L2_BUSY TIER_BUSY   /* none, and another fill holds the lease: wait or fill alone */
#define L2_ERROR TIER_ERROR /* Redis failed, timed out, or the connection is down */
#define L2_TOKEN_MAX TIER_TOKEN_MAX
typedef tier_result l2_result;
typedef tier_lookup_cb l2_lookup_cb;
typedef tier_lookup_mode l2_lookup_mode;
#define L2_READ TIER_READ         /* the value; on a miss, a snapshot and the lease */
#define L2_SNAPSHOT TIER_SNAPSHOT /* no value (it is known to be stale): a snapshot and the lease, to refill */

/* Looks (site, key) up. On a miss it takes a snapshot and tries to take
 * the key's lease. Returns true if cb will be called (once, on this loop);
 * false if the command could not be sent (no connection, out of memory) —
 * then cb is never called, and the failure has been counted. */
bool l2_lookup(l2_conn *conn, const char *site, const void *key, size_t key_len, l2_lookup_mode mode, l2_lookup_cb cb,
               void *ctx);

/* A record ready to store: l2_record_new writes the header (snapshot,
 * tags, lifetimes) and returns where the caller writes payload_len bytes.
 * Any thread. */
typedef tier_record l2_record;
char *l2_record_new(l2_record *rec, uint64_t snapshot, const char *const *tags, size_t tag_count,
                    const l2_lifetimes *life, size_t payload_len);
void l2_record_free(l2_record *rec);
/* Reads a record as GET returns it: snapshot, lifetimes and payload into
 * r (payload points into data), and where its tag list ends into
 * *tags_end. False if it is not a whole version-1 record. */
bool l2_record_parse(const char *data, size_t len, l2_result *r, size_t *tags_end);

/* Stores a record under (site, key) for `ttl_ms` if the lease allows it
 * (token, or "" when no lease was taken) and it is still valid: no stamp
 * of its key or tags at or after its snapshot, and, for a value read on a
 * replica at read_lsn (LSN_NONE: read on the primary), no tag invalidated
 * by a write past read_lsn. Always releases the lease if token holds it.
 * Takes over rec. Fire and forget. */
void l2_store(l2_conn *conn, const char *site, const void *key, size_t key_len, const char *token, l2_record *rec,
              uint64_t ttl_ms, lsn_t read_lsn);
/* Gives the lease up without storing (the fill failed). */
void l2_release(l2_conn *conn, const char *site, const void *key, size_t key_len, const char *token);

/* The L2 as a tier below the L1 (tier.h); its conn is a loop's l2_conn. */
extern const cache_tier l2_tier;

typedef struct l2_stats {
    uint64_t lookups, hits, misses, busy, errors, timeouts;
    uint64_t stores, stored, refused; /* refused: fenced, or not the lease's holder */
    uint64_t breaker_opens;
    bool breaker_open;
    uint64_t connections_up;
} l2_stats;
void l2_get_stats(l2 *l, l2_stats *out);

/* The invalidation script cache_bus runs for every message: stamps a tag
 * (kind 't') or a key ('k', its value deleted too) with the site's clock,
 * or moves the era ('r'), then publishes the message — one round trip. A
 * tag's stamp also keeps the highest WAL position of the writes that
 * invalidated it (l2_store's replica check).
 * ARGV: channel, message, kind, site, name, generation ttl (ms), the
 * write's position (16 hex digits; all zeros: none). */
extern const char l2_invalidate_script[];

#endif

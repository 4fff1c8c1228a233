/*
 * cache_bus.h — invalidations shared between instances over Redis pub/sub.
 *
 * Every instance keeps its own L1. When one instance invalidates a tag or a
 * key it also publishes it; every other instance applies it to its own L1.
 * The local invalidation is synchronous (a write is answered after it); the
 * remote ones follow within the propagation lag, which the bus measures per
 * message (publish time to apply time) and reports as percentiles.
 *
 * Messages can be missed: while this instance's subscription is down, or
 * when a publish fails. Either way the bus calls `reset`, which must drop
 * the whole L1 (nothing older than the gap survives), and after a failed
 * publish it tells every instance to do the same. So a gap costs hit ratio,
 * never a stale read.
 *
 * Each message also stamps the tag's (or key's) generation in Redis, in the
 * same script that publishes it (l2.h): the L2's values are checked against
 * those stamps, so once a publish is acknowledged no instance reads the
 * invalidated value from Redis. A writer can wait for that acknowledgement
 * (cache_bus_wait) before it answers.
 *
 * Two threads, each with its own blocking hiredis connection: a publisher
 * fed by a bounded queue, and a subscriber. Callbacks run on the subscriber
 * thread. The library knows nothing of HTTP or content.
 */
#ifndef STRATA_CACHE_BUS_H
#define STRATA_CACHE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lsn.h"

typedef struct cache_bus cache_bus;

typedef struct cache_bus_handlers {
    /* Apply a remote invalidation: is_tag, else a key (bytes, key_len);
     * lsn is the WAL position of the write that caused it (LSN_NONE: none
     * known). */
    void (*apply)(void *ctx, bool is_tag, const char *name, size_t len, lsn_t lsn);
    /* Messages may have been missed: drop every local entry. */
    void (*reset)(void *ctx);
    void *ctx;
} cache_bus_handlers;

#define CACHE_BUS_LAG_BUCKETS 12

/* Upper bounds (ms) of the lag histogram's buckets; the last is +Inf. */
extern const double cache_bus_lag_bounds_ms[CACHE_BUS_LAG_BUCKETS];

typedef struct cache_bus_stats {
    uint64_t published, publish_failures, received, applied, resets, reconnects;
    bool connected;
    bool reset_owed; /* invalidations were lost and the others not yet told */
    /* propagation lag of applied messages: percentiles over the last
     * samples, and a histogram of all of them (counts per bucket) */
    uint64_t lag_samples;
    double lag_p50_ms, lag_p99_ms, lag_max_ms;
    uint64_t lag_buckets[CACHE_BUS_LAG_BUCKETS];
} cache_bus_stats;

/* Connects to Redis at host:port (the publisher and the subscriber retry
 * on their own if Redis is not there yet). channel names the shared
 * invalidation channel; generation_ttl_ms is how long a stamp is kept in
 * Redis (longer than any L2 value lives). NULL on out of memory. */
cache_bus *cache_bus_start(const char *host, int port, const char *channel, int timeout_ms, uint64_t generation_ttl_ms,
                           const cache_bus_handlers *handlers);
/* Queues an invalidation of a tag (is_tag) or a key of `site` for the other
 * instances and the L2 (any thread, never blocks on Redis), with the WAL
 * position of the write that caused it (LSN_NONE: none). Returns its
 * sequence number, for cache_bus_wait. */
uint64_t cache_bus_publish(cache_bus *bus, const char *site, bool is_tag, const char *name, size_t len, lsn_t lsn);
/* Waits until every message up to seq is in Redis (true), or has failed or
 * timeout_ms has passed (false: a reset is then owed). While the last
 * publish failed and none has worked since (Redis is down), it does not
 * wait: a writer would hold its worker for the whole timeout, write after
 * write, for nothing — other instances cannot hear anything then, and the
 * reset owed tells them to drop everything once Redis is back. */
bool cache_bus_wait(cache_bus *bus, uint64_t seq, int timeout_ms);
/* True while a reset is owed: the L2 may hold values whose invalidation
 * has not reached it, so it must not be read. */
bool cache_bus_reset_owed(cache_bus *bus);
/* True while an invalidation this process published is not yet in Redis
 * (nor failed: then a reset is owed). Meanwhile the L2 may still hold, as
 * valid, a value this process has already dropped from its L1: a fill
 * that read it there would put it back, past the write's response. */
bool cache_bus_publishing(cache_bus *bus);
/* True while subscribed with the L1 cleared of whatever was published
 * before: every other instance's invalidation reaches this one within the
 * bus's lag. False from the moment the subscription breaks. */
bool cache_bus_listening(cache_bus *bus);
void cache_bus_get_stats(cache_bus *bus, cache_bus_stats *out);
/* Sends what is queued (bounded by the timeout), stops both threads. */
void cache_bus_stop(cache_bus **bus);

/* "redis://host:port" (or "host:port") → host and port. 0 or -1. */
int cache_bus_parse_url(const char *url, char host[256], int *port);

#endif

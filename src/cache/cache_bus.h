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
 * Two threads, each with its own blocking hiredis connection: a publisher
 * fed by a bounded queue, and a subscriber. Callbacks run on the subscriber
 * thread. The library knows nothing of HTTP or content.
 */
#ifndef STRATA_CACHE_BUS_H
#define STRATA_CACHE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cache_bus cache_bus;

typedef struct cache_bus_handlers {
    /* Apply a remote invalidation: is_tag, else a key (bytes, key_len). */
    void (*apply)(void *ctx, bool is_tag, const char *name, size_t len);
    /* Messages may have been missed: drop every local entry. */
    void (*reset)(void *ctx);
    void *ctx;
} cache_bus_handlers;

typedef struct cache_bus_stats {
    uint64_t published, publish_failures, received, applied, resets, reconnects;
    bool connected;
    /* propagation lag of applied messages, over the last samples */
    uint64_t lag_samples;
    double lag_p50_ms, lag_p99_ms, lag_max_ms;
} cache_bus_stats;

/* Connects to Redis at host:port (the publisher and the subscriber retry
 * on their own if Redis is not there yet). channel names the shared
 * invalidation channel. NULL on out of memory. */
cache_bus *cache_bus_start(const char *host, int port, const char *channel, int timeout_ms,
                           const cache_bus_handlers *handlers);
/* Queues an invalidation for the other instances (any thread, never
 * blocks on Redis). */
void cache_bus_publish(cache_bus *bus, bool is_tag, const char *name, size_t len);
void cache_bus_get_stats(cache_bus *bus, cache_bus_stats *out);
/* Sends what is queued (bounded by the timeout), stops both threads. */
void cache_bus_stop(cache_bus **bus);

/* "redis://host:port" (or "host:port") → host and port. 0 or -1. */
int cache_bus_parse_url(const char *url, char host[256], int *port);

#endif

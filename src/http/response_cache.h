/*
 * response_cache.h — internal to src/http: finished responses in the L1.
 *
 * The request path (request.c) and the fill machine (fill.c) call these:
 * build a request's normalised key (loop thread), turn a handler's
 * response into a cached representation (worker thread), the record every
 * tier below the L1 stores (cache/tier.h), and send a representation (loop
 * thread).
 */
#ifndef STRATA_HTTP_RESPONSE_CACHE_H
#define STRATA_HTTP_RESPONSE_CACHE_H

#include <h2o.h>

#include "cache/cache.h"
#include "cache/l2.h"
#include "http/http.h"

#define RC_KEY_MAX 1024
#define RC_SITE_MAX 64

/* The process's cache state; NULL functions when the cache is off. */
int rc_init(const strata_config *cfg, const http_route *routes, size_t route_count);
void rc_dispose(void);
cache *rc_cache(void);

/* The normalised key of a request on route `index` (see http.h). Returns
 * its length, or 0 when the request cannot be cached (too long, a NUL in a
 * parameter): it is then simply passed to the handler. *ns gets the
 * namespace (site) for stats, `site` the site's name ("_" for routes
 * without one), the L2's namespace. */
size_t rc_key(int index, const char *path, const http_captures *caps, const char *query, size_t query_len,
              char key[RC_KEY_MAX], uint32_t *ns, char site[RC_SITE_MAX + 1]);

/* ---- the L2 (NULL / false without one) ---- */
l2 *rc_l2(void);
/* The L2 may be read now: configured, its breaker closed (or this is the
 * half-open probe: the caller must then look up), and no invalidation
 * owed to it (see cache_bus_reset_owed). */
bool rc_l2_readable(void);
/* The L2 record of a stored-worthy representation, fenced at snapshot, and
 * its TTL (worker thread). False when it is not one to share. */
bool rc_l2_record(const cache_entry *e, uint64_t snapshot, l2_record *out, uint64_t *ttl_ms);
/* An L2 hit as an L1 value with the lifetimes it has left (loop thread).
 * False if it is past them, or does not decode. */
bool rc_from_l2(const l2_result *r, cache_value *out);
/* After a write's handler (worker thread): waits, bounded by
 * redis.timeout_ms, until the invalidations this thread published are in
 * Redis, so no instance reads their values from the L2 once the write is
 * answered. */
void rc_await_invalidations(void);

/* Builds the cache value for a handler's response on route `route`
 * (worker thread): compressed variants and ETags for a 200, identity only
 * otherwise; only a tagged 200 is storable (others are share_only).
 * handler_us is how long the handler ran, for Server-Timing. */
bool rc_build(const http_route *route, const http_response *res, uint64_t handler_us, cache_value *out);

/* The status of a representation. */
int rc_status(const cache_entry *e);

/* How a response came from the cache, for Cache-Status (RFC 9211) and
 * Server-Timing. */
typedef enum rc_outcome {
    RC_HIT,           /* fresh */
    RC_HIT_L2,        /* from Redis, fresh */
    RC_STALE_L2,      /* from Redis, stale; a refresh is running */
    RC_STALE,         /* stale, a background refresh is running */
    RC_MISS_STORED,   /* this request filled the entry */
    RC_MISS,          /* filled, not stored (not cacheable, or fenced) */
    RC_COLLAPSED,     /* waited for another request's fill */
    RC_FAILSAFE,      /* the fill failed; a stale copy is served */
    RC_STALE_WAITING, /* another instance fills; an expired copy is served meanwhile */
} rc_outcome;

/* Sends a representation (loop thread), taking over the reference *e:
 * encoding by Accept-Encoding, 304 on a matching If-None-Match, headers
 * prebuilt at fill time plus Cache-Status and Server-Timing. */
void rc_send(h2o_req_t *req, const char *request_id, cache_entry **e, rc_outcome outcome, uint64_t started_ns);

/* Cache-Control for cacheable routes answered without the cache (a request
 * with Authorization): private, no-store. */
void rc_send_bypass_headers(h2o_req_t *req);

uint64_t rc_now_ms(void);
uint64_t rc_now_ns(void);

#endif

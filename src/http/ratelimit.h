/*
 * ratelimit.h — who the client is, and how much it may ask (ratelimit.c).
 *
 * The client: the connection's peer, or — when the peer is one of the
 * trusted proxies (server.trusted_proxies) — the nearest untrusted address
 * of X-Forwarded-For. IPv6 clients are reduced to their /64.
 *
 * The limits (token buckets, docs/api.md "Rate limits"): per client
 * address for the content API (/v1/…), checked on the loop thread before
 * anything else is done for the request; per token, by its role, checked
 * where the token is resolved. A refusal is 429 problem+json with
 * Retry-After, RateLimit and RateLimit-Policy.
 */
#ifndef STRATA_HTTP_RATELIMIT_H
#define STRATA_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/limiter.h"
#include "http/http.h"

struct st_h2o_req_t;

/* A client's identity as a rate-limit key: a family byte, then 4 bytes of
 * IPv4 or the 8 bytes of an IPv6 /64. */
#define RATELIMIT_KEY_MAX 9

typedef struct ratelimit_client {
    uint8_t key[RATELIMIT_KEY_MAX];
    size_t key_len; /* 0: unknown peer */
    /* The peer is a trusted proxy that named no client (no usable
     * X-Forwarded-For): the proxy's own request (a health check, a
     * warmer), or a proxy that does not say whom it forwards for — either
     * way, no reader to limit. */
    bool proxy_own;
} ratelimit_client;

/* Reads server.trusted_proxies and the limits.* settings. Before it is
 * called, loopback is trusted and every limit is off. 0, or -1 with err. */
int ratelimit_configure(const strata_config *cfg, char err[CONFIG_ERR_MAX]);

/* The client of a request copy (peer text, X-Forwarded-For or NULL). */
void ratelimit_client_of(const char *peer, const char *forwarded_for, ratelimit_client *out);

/* Loop thread, every request: true when the client's bucket is empty; the
 * response's Retry-After and RateLimit headers are then added to req, and
 * detail (size bytes) says why. Only /v1/ paths are limited. Each loop
 * has its own table (no lock). */
bool ratelimit_refuse_client(int loop_index, struct st_h2o_req_t *req, char *detail, size_t size);

/* Worker thread: true, with res filled (429), when the token (its SHA-256)
 * has used its role's allowance. role: 0 read, 1 write, 2 admin. */
bool ratelimit_refuse_token(const uint8_t token_hash[32], int role, const http_request *req, http_response *res);

/* Fills res as a 429 of `policy` (a RateLimit policy name) for a verdict
 * of a bucket of `shape`; what_fmt says what was limited. */
void ratelimit_problem(http_response *res, const http_request *req, const char *policy, const limiter_rate *shape,
                       const limiter_verdict *v, const char *what);

#endif

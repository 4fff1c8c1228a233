/*
 * ratelimit.c — the client's address, and the content API's rate limits
 * (see ratelimit.h; settings in docs/operations.md, behaviour in
 * docs/api.md).
 *
 * Who the client is. X-Forwarded-For is believed only from a trusted
 * proxy, and only as far as it is written by trusted proxies: walking the
 * list from its right end (the entry the nearest proxy wrote), each entry
 * that is itself a trusted proxy passes the question one hop further; the
 * first that is not is the client. Anything to its left was written by
 * the client and is ignored, so a client cannot choose its own bucket by
 * sending the header. An entry that is not an address ends the walk at
 * the hop that wrote it, and so do HOPS_MAX trusted hops (a bound on the
 * work a long header can cause).
 *
 * Per client (anonymous requests, by address). Every /v1/ request, cache
 * hits included, takes a token from its client's bucket before anything
 * else is done for it, so the check must cost little: each event loop has
 * its own fixed table (core/limiter.c, no lock), created on its first use.
 * The price: a client whose connections land on several loops has a
 * bucket on each (at most server.threads × the burst). Requests that carry
 * Authorization use a second bucket per address, sized like the most
 * generous token role: a flood of made-up tokens (each a database lookup)
 * is bounded by address, while a valid token is limited by its role.
 *
 * Per token (by role). Applied on the worker where the token is resolved
 * (content/api.c), in one table shared by the workers under its mutex —
 * those requests go to the database anyway.
 *
 * The answer: 429 problem+json with Retry-After and the RateLimit fields
 * of draft-ietf-httpapi-ratelimit-headers-10: a policy per bucket kind,
 * its quota per one-second window, the burst as a vendor parameter
 * (`"client";q=100;w=1;strata-burst=400`), and the remaining tokens with
 * the seconds until one more. They are sent on refusals only: on a 2xx the
 * numbers would be one client's, in responses a shared cache stores for
 * every client.
 */
#include "http/ratelimit.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

#define PROXIES_MAX 32
#define LOOPS_MAX 256
#define CLIENT_SLOTS 16384 /* per loop: 512 KiB */
#define TOKEN_SLOTS 4096
#define HOPS_MAX 16 /* trusted proxies walked through in X-Forwarded-For */

/* ---- trusted proxies -------------------------------------------------------------- */

typedef struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} cidr;

/* An address in network order: 4 or 16 bytes. */
typedef struct address {
    int family;
    uint8_t bytes[16];
} address;

static cidr proxies[PROXIES_MAX] = {{AF_INET, {127}, 8}, {AF_INET6, {[15] = 1}, 128}};
static size_t proxy_count = 2;

/* An IPv4-mapped IPv6 address (a dual-stack listener's IPv4 peer) is IPv4. */
static void address_fold_mapped(address *a)
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (a->family == AF_INET6 && memcmp(a->bytes, mapped, 12) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        a->family = AF_INET;
    }
}

/* Parses "1.2.3.4", "::1", "[::1]", an IPv4-mapped IPv6 address as IPv4. */
static bool address_parse(const char *text, size_t len, address *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out->bytes) != 1)
        return false;
    out->family = AF_INET6;
    address_fold_mapped(out);
    return true;
}

static bool cidr_parse(const char *text, size_t len, cidr *out)
{
    const char *slash = memchr(text, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - text) : len;
    address a;
    if (!address_parse(text, alen, &a))
        return false;
    unsigned max = a.family == AF_INET ? 32 : 128, prefix = max;
    if (slash != NULL) {
        size_t digits = len - alen - 1;
        if (digits == 0 || digits > 3 || strspn(slash + 1, "0123456789") < digits)
            return false;
        prefix = (unsigned)atoi(slash + 1);
        if (prefix > max)
            return false;
    }
    *out = (cidr){.family = a.family, .prefix = prefix};
    memcpy(out->addr, a.bytes, sizeof(a.bytes));
    return true;
}

static bool cidr_contains(const cidr *c, const address *a)
{
    if (c->family != a->family)
        return false;
    unsigned whole = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, a->bytes, whole) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xff00 >> rest);
    return rest == 0 || (c->addr[whole] & mask) == (a->bytes[whole] & mask);
}

static bool trusted(const address *a)
{
    for (size_t i = 0; i < proxy_count; i++)
        if (cidr_contains(&proxies[i], a))
            return true;
    return false;
}

/* Parses the list into out; returns the count, or -1 with err. */
static int proxies_parse(const char *list, cidr out[PROXIES_MAX], char err[CONFIG_ERR_MAX])
{
    int n = 0;
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == 0)
            break;
        if (n == PROXIES_MAX) {
            snprintf(err, CONFIG_ERR_MAX, "server.trusted_proxies: more than %d entries", PROXIES_MAX);
            return -1;
        }
        if (!cidr_parse(p, len, &out[n])) {
            snprintf(err, CONFIG_ERR_MAX, "server.trusted_proxies: '%.*s' is not an address or ADDRESS/PREFIX",
                     (int)len, p);
            return -1;
        }
        n++;
        p += len;
    }
    return n;
}

/* ---- the client ---------------------------------------------------------------------- */

static void client_key(const address *a, ratelimit_client *out)
{
    out->key[0] = (uint8_t)a->family;
    out->key_len = a->family == AF_INET ? 5 : 9; /* IPv6: the /64 */
    memcpy(out->key + 1, a->bytes, out->key_len - 1);
}

/* The entry of X-Forwarded-For that ends at `end`, trimmed; *start is
 * where it begins (the list's start, or just after a comma). */
static const char *entry_before(const char *list, const char *end, const char **start, size_t *len)
{
    const char *s = end;
    while (s > list && s[-1] != ',')
        s--;
    *start = s;
    const char *e = end;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *len = (size_t)(e - s);
    return s;
}

/* peer: the connection's; xff: X-Forwarded-For (may be NULL). */
static void client_resolve(const address *peer, const char *xff, size_t xff_len, ratelimit_client *out)
{
    address hop = *peer;
    bool named = false;
    if (trusted(peer) && xff != NULL) {
        const char *end = xff + xff_len, *start;
        for (int hops = 0; hops < HOPS_MAX; hops++) {
            size_t len;
            const char *entry = entry_before(xff, end, &start, &len);
            address a;
            if (!address_parse(entry, len, &a))
                break;
            hop = a;
            named = true;
            if (!trusted(&a) || start == xff)
                break;
            end = start - 1; /* before the comma */
        }
    }
    out->proxy_own = trusted(peer) && !named;
    client_key(&hop, out);
}

void ratelimit_client_of(const char *peer, const char *forwarded_for, ratelimit_client *out)
{
    address a;
    *out = (ratelimit_client){0};
    if (peer == NULL || !address_parse(peer, strlen(peer), &a))
        return;
    client_resolve(&a, forwarded_for, forwarded_for != NULL ? strlen(forwarded_for) : 0, out);
}

static bool client_of_req(h2o_req_t *req, ratelimit_client *out)
{
    struct sockaddr_storage ss;
    address a = {0};
    *out = (ratelimit_client){0};
    if (req->conn->callbacks->get_peername == NULL ||
        req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        return false;
    if (ss.ss_family == AF_INET) {
        a.family = AF_INET;
        memcpy(a.bytes, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        a.family = AF_INET6;
        memcpy(a.bytes, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        address_fold_mapped(&a);
    } else {
        return false;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, -1);
    if (i >= 0)
        client_resolve(&a, req->headers.entries[i].value.base, req->headers.entries[i].value.len, out);
    else
        client_resolve(&a, NULL, 0, out);
    return true;
}

/* ---- the limits ------------------------------------------------------------------------ */

/* Written once by ratelimit_configure, before the loops start. rate 0: off. */
static limiter_rate client_shape, client_token_shape, token_shapes[3];
static const char *const token_policies[3] = {"token-read", "token-write", "token-admin"};

static limiter *loop_tables[LOOPS_MAX]; /* each touched only by its own loop */
static limiter *token_table;
static pthread_once_t token_once = PTHREAD_ONCE_INIT;

static limiter_rate shape_of(int rps, int burst)
{
    return (limiter_rate){.rate = rps, .burst = burst > rps ? burst : rps};
}

int ratelimit_configure(const strata_config *cfg, char err[CONFIG_ERR_MAX])
{
    cidr parsed[PROXIES_MAX];
    int n = proxies_parse(cfg->trusted_proxies, parsed, err);
    if (n < 0)
        return -1;
    memcpy(proxies, parsed, sizeof(parsed));
    proxy_count = (size_t)n;
    client_shape = shape_of(cfg->limits_client_rps, cfg->limits_client_burst);
    token_shapes[0] = shape_of(cfg->limits_read_rps, cfg->limits_read_burst);
    token_shapes[1] = shape_of(cfg->limits_write_rps, cfg->limits_write_burst);
    token_shapes[2] = shape_of(cfg->limits_admin_rps, cfg->limits_admin_burst);
    /* requests with Authorization, by address: as much as the most
     * generous role, and off if any role is unlimited */
    client_token_shape = token_shapes[0];
    for (int i = 1; i < 3; i++) {
        bool off = client_token_shape.rate == 0 || token_shapes[i].rate == 0;
        client_token_shape.rate = off ? 0 : fmax(client_token_shape.rate, token_shapes[i].rate);
        client_token_shape.burst = fmax(client_token_shape.burst, token_shapes[i].burst);
    }
    return 0;
}

static void policy_header(char *out, size_t size, const char *policy, const limiter_rate *shape)
{
    snprintf(out, size, "\"%s\";q=%.0f;w=1;strata-burst=%.0f", policy, shape->rate, shape->burst);
}

static void state_header(char *out, size_t size, const char *policy, const limiter_verdict *v)
{
    snprintf(out, size, "\"%s\";r=%u;t=%u", policy, v->remaining, v->retry_after_s);
}

void ratelimit_problem(http_response *res, const http_request *req, const char *policy, const limiter_rate *shape,
                       const limiter_verdict *v, const char *what)
{
    char value[160];
    metrics_rate_limited(policy);
    http_problem(res, req, 429, "rate_limited",
                 "%s: more than %.0f requests per second (bursts up to %.0f); retry after %u s", what, shape->rate,
                 shape->burst, v->retry_after_s);
    http_response_header(res, "retry-after", "%u", v->retry_after_s);
    policy_header(value, sizeof(value), policy, shape);
    http_response_header(res, "ratelimit-policy", "%s", value);
    state_header(value, sizeof(value), policy, v);
    http_response_header(res, "ratelimit", "%s", value);
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

bool ratelimit_refuse_client(int loop_index, h2o_req_t *req, char *detail, size_t size)
{
    if (req->path.len < 4 || memcmp(req->path.base, "/v1/", 4) != 0 || loop_index < 0 || loop_index >= LOOPS_MAX)
        return false;
    bool with_token = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) >= 0;
    const limiter_rate *shape = with_token ? &client_token_shape : &client_shape;
    ratelimit_client client;
    if (shape->rate <= 0 || !client_of_req(req, &client) || client.proxy_own)
        return false;
    if (loop_tables[loop_index] == NULL && (loop_tables[loop_index] = limiter_new(CLIENT_SLOTS, false)) == NULL)
        return false; /* out of memory: unlimited rather than refused */
    uint8_t key[RATELIMIT_KEY_MAX + 1];
    memcpy(key, client.key, client.key_len);
    key[client.key_len] = with_token; /* a bucket of its own */
    limiter_verdict v;
    if (limiter_take(loop_tables[loop_index], key, client.key_len + 1, shape, 1, limiter_now_ns(), &v))
        return false;
    const char *policy = with_token ? "client-token" : "client";
    metrics_rate_limited(policy);
    char value[160];
    snprintf(value, sizeof(value), "%u", v.retry_after_s);
    add_header(req, "retry-after", value);
    policy_header(value, sizeof(value), policy, shape);
    add_header(req, "ratelimit-policy", value);
    state_header(value, sizeof(value), policy, &v);
    add_header(req, "ratelimit", value);
    snprintf(detail, size,
             "this client address: more than %.0f requests per second (bursts up to %.0f); retry after %u s",
             shape->rate, shape->burst, v.retry_after_s);
    return true;
}

static void token_table_create(void)
{
    token_table = limiter_new(TOKEN_SLOTS, true);
}

bool ratelimit_refuse_token(const uint8_t token_hash[32], int role, const http_request *req, http_response *res)
{
    if (role < 0 || role > 2 || token_shapes[role].rate <= 0)
        return false;
    pthread_once(&token_once, token_table_create);
    limiter_verdict v;
    if (token_table == NULL || limiter_take(token_table, token_hash, 32, &token_shapes[role], 1, limiter_now_ns(), &v))
        return false;
    ratelimit_problem(res, req, token_policies[role], &token_shapes[role], &v, "this token");
    return true;
}

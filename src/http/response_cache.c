/*
 * response_cache.c — finished responses in the L1: keys, representations,
 * and sending them.
 *
 * A representation is everything a hit needs, made once on a worker at
 * fill time: the identity body and its compressed variants (brotli, zstd,
 * gzip, only above 1 KB and only when smaller), a strong ETag per variant
 * (the XXH3 of the identity bytes, suffixed by the encoding, so a client
 * revalidating a gzip copy never matches the brotli one), and the header
 * values Cache-Control, CDN-Cache-Control and Surrogate-Key. Sending a hit
 * is then a negotiation, a few header pointers into the representation and
 * one zero-copy send; the entry's reference is held by the request's
 * memory pool and dropped when h2o is done with the bytes.
 *
 * Keys are length-prefixed so no byte a client sends can make two
 * different requests collide: route index, each decoded path parameter,
 * then each query parameter the route's rule names, in name order, with
 * its default when absent and integers canonicalised, then what the
 * rule's query_key makes of the rest (a list's filters on fields; no key
 * at all for a query the handler refuses). Anything else in the query is
 * ignored, as the handlers ignore it. Every spelling a handler
 * reads as the same request is one key: integer path captures lose their
 * leading zeros ("/content/0001" is "/content/1"; a sign or a space stays
 * as sent, and the handler refuses it), integer query values are written
 * back in decimal ("limit=+020" is "limit=20"), case-folded ones are
 * lowercased. Otherwise a client could mint endless keys for one answer.
 *
 * Negative answers — a 404, an empty page for a filter value that matches
 * nothing (the handler says so: http_response.negative) — are stored, so a
 * repeated junk request costs no query, but only for cache.negative_ttl_s
 * (no stale, no grace), under the L1's separate negative budget, and in
 * the L2 with that TTL (at most cache.negative_l2_per_s of them a second
 * per instance). A stored problem (404) keeps its body without the
 * per-request fields; each answer is completed with its own instance and
 * request id.
 *
 * Namespaces: stats are kept per site. A site gets a namespace number the
 * first time one of its responses is stored (a worker registers it), so
 * requests for sites that do not exist never take a slot.
 */
#include "http/response_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "cache/cache_bus.h"
#include "cache/objects.h"
#include "core/fmt.h"
#include "core/log.h"
#include "http/compress.h"

typedef struct representation {
    int status;
    char *content_type;
    unsigned available; /* encodings with a body */
    h2o_iovec_t body[ENC_COUNT];
    h2o_iovec_t etag[ENC_COUNT];
    h2o_iovec_t cache_control;
    h2o_iovec_t cdn_cache_control;
    h2o_iovec_t surrogate_key;
    size_t header_count;
    struct {
        char *name;
        h2o_iovec_t value;
    } headers[HTTP_MAX_HEADERS];
    char **tags;
    size_t tag_count;
    uint64_t handler_us;
    uint64_t compress_us;
    bool negative;     /* stored briefly; a problem's body is completed per request */
    l2_lifetimes life; /* as built: created (wall clock) and the class's lifetimes */
    char *block;       /* decoded from the L2: every string above lives in it */
} representation;

static struct {
    cache *cache;
    cache_bus *bus; /* NULL without redis.url */
    l2 *l2;         /* NULL without redis.url or with redis.l2 off */
    bool redis_configured;
    void (*watch)(const char *tag); /* http_cache_watch */
    const strata_config *cfg;
    const http_route *routes;
    size_t route_count;
    pthread_mutex_t ns_lock;
    _Atomic size_t ns_count;
    char ns_names[CACHE_MAX_NAMESPACES][65];
} rc = {.ns_lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t rc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rc_now_ms(void)
{
    return rc_now_ns() / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- other instances' invalidations (subscriber thread) ------------------------ */

/* The highest commit position of an invalidation made or received here
 * (http_cache_lsn_floor). Only grows. */
static _Atomic lsn_t lsn_floor;

static void lsn_floor_raise(lsn_t lsn)
{
    lsn_t seen = atomic_load_explicit(&lsn_floor, memory_order_relaxed);
    while (lsn > seen && !atomic_compare_exchange_weak(&lsn_floor, &seen, lsn))
        ;
}

lsn_t http_cache_lsn_floor(void)
{
    return atomic_load_explicit(&lsn_floor, memory_order_acquire);
}

/* The floor as it was HEARD_SETTLE_MS ago or earlier: sampled now and then
 * (when asked), a sample becoming the settled value once that long has
 * passed. A write answered at position X was in Redis before its client
 * learned X; a floor past X a second ago means the invalidations of that
 * time have had a second, hundreds of bus lags, to arrive. */
enum { HEARD_SETTLE_MS = 1000 };
static struct {
    pthread_mutex_t lock;
    lsn_t settled, sampled;
    uint64_t sampled_at_ms;
} heard = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool http_cache_heard_through(lsn_t lsn)
{
    if (rc.redis_configured && (rc.bus == NULL || !cache_bus_listening(rc.bus) || cache_bus_reset_owed(rc.bus)))
        return false;
    uint64_t now = rc_now_ms();
    pthread_mutex_lock(&heard.lock);
    if (heard.sampled_at_ms == 0 || now - heard.sampled_at_ms >= HEARD_SETTLE_MS) {
        heard.settled = heard.sampled;
        heard.sampled = http_cache_lsn_floor();
        heard.sampled_at_ms = now;
    }
    lsn_t settled = heard.settled;
    pthread_mutex_unlock(&heard.lock);
    return lsn <= settled;
}

/* The floor rises before the entries go: a fill that starts once they are
 * gone already reads at or past the write. */
static void on_remote_invalidation(void *ctx, bool is_tag, const char *name, size_t len, lsn_t lsn)
{
    (void)ctx;
    lsn_floor_raise(lsn);
    char tag[512];
    if (!is_tag) {
        cache_invalidate_key(rc.cache, name, len);
    } else if (len < sizeof(tag)) {
        memcpy(tag, name, len);
        tag[len] = '\0';
        cache_invalidate_tag(rc.cache, tag);
        object_cache_invalidate_tag(tag); /* the object cache: in the same step (cache/objects.h) */
        if (rc.watch != NULL)
            rc.watch(tag);
    } else {
        cache_clear(rc.cache); /* a tag this long is no tag of ours: be safe */
        object_cache_clear();
        if (rc.watch != NULL)
            rc.watch(NULL);
    }
}

static void on_invalidations_missed(void *ctx)
{
    (void)ctx;
    size_t removed = cache_clear(rc.cache);
    object_cache_clear();
    if (rc.watch != NULL)
        rc.watch(NULL);
    log_line line;
    log_begin(&line, LOG_INFO, "cache cleared: invalidations from other instances may have been missed");
    log_int(&line, "entries", (int64_t)removed);
    log_end(&line);
}

int rc_init(const strata_config *cfg, const http_route *routes, size_t route_count)
{
    rc.cfg = cfg;
    rc.routes = routes;
    rc.route_count = route_count;
    rc.redis_configured = cfg->redis_url[0] != '\0';
    if (!cfg->cache_enabled)
        return 0;
    /* cache.l1 = false: a budget of nothing, so no value is kept, while
     * flights still collapse concurrent misses */
    cache_options opts = {.max_bytes = cfg->cache_l1 ? (size_t)cfg->cache_l1_max_bytes : 0,
                          .negative_max_bytes = cfg->cache_l1 ? (size_t)cfg->cache_negative_max_bytes : 0,
                          .ttl_jitter = cfg->cache_ttl_jitter_pct / 100.0};
    rc.cache = cache_create(&opts);
    if (rc.cache == NULL)
        return -1;
    if (cfg->redis_url[0] != '\0') {
        char host[256];
        int port;
        if (cache_bus_parse_url(cfg->redis_url, host, &port) != 0)
            return -1;
        /* A stamp must outlive every value that could carry its tag, and
         * any fill still running when it was made. */
        uint64_t longest_ms = 0;
        for (int i = 0; i < CACHE_CLASS_COUNT; i++) {
            const cache_lifetimes *life = &cfg->cache_class[i];
            uint64_t ms = ((uint64_t)life->ttl_s + (uint64_t)life->swr_s + (uint64_t)life->grace_s) * 1000u;
            longest_ms = ms > longest_ms ? ms : longest_ms;
        }
        uint64_t generation_ttl_ms = longest_ms + (uint64_t)cfg->cache_coalesce_timeout_ms + 60000u;
        cache_bus_handlers handlers = {.apply = on_remote_invalidation, .reset = on_invalidations_missed};
        rc.bus = cache_bus_start(host, port, cfg->redis_channel, cfg->redis_timeout_ms, generation_ttl_ms, &handlers);
        if (rc.bus == NULL)
            return -1;
        if (cfg->redis_l2) {
            l2_options l2opts = {.host = host,
                                 .port = port,
                                 .timeout_ms = cfg->redis_timeout_ms,
                                 .pool_size = cfg->redis_pool_size,
                                 .breaker_failures = cfg->redis_breaker_failures,
                                 .breaker_cooldown_ms = cfg->redis_breaker_cooldown_ms,
                                 .lease_ms = (uint64_t)cfg->cache_coalesce_timeout_ms};
            rc.l2 = l2_create(&l2opts);
            if (rc.l2 == NULL)
                return -1;
        }
    }
    return 0;
}

void rc_dispose(void)
{
    cache_bus_stop(&rc.bus);
    l2_destroy(&rc.l2);
    cache_destroy(&rc.cache);
}

cache *rc_cache(void)
{
    return rc.cache;
}

l2 *rc_l2(void)
{
    return rc.l2;
}

bool rc_l2_readable(void)
{
    return rc.l2 != NULL && !cache_bus_reset_owed(rc.bus) && !cache_bus_publishing(rc.bus) && l2_usable(rc.l2);
}

/* The invalidations this thread published, awaited by rc_await_invalidations. */
static _Thread_local uint64_t published_seq;

void rc_await_invalidations(void)
{
    if (rc.bus == NULL || published_seq == 0)
        return;
    cache_bus_wait(rc.bus, published_seq, rc.cfg->redis_timeout_ms);
    published_seq = 0;
}

/* ---- namespaces ------------------------------------------------------------- */

static uint32_t ns_find(const char *site, size_t len)
{
    size_t n = atomic_load_explicit(&rc.ns_count, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strncmp(rc.ns_names[i], site, len) == 0 && rc.ns_names[i][len] == '\0')
            return (uint32_t)i;
    return CACHE_MAX_NAMESPACES;
}

static uint32_t ns_register(const char *site, size_t len)
{
    uint32_t ns = ns_find(site, len);
    if (ns != CACHE_MAX_NAMESPACES || len >= sizeof(rc.ns_names[0]))
        return ns;
    pthread_mutex_lock(&rc.ns_lock);
    size_t n = atomic_load(&rc.ns_count);
    ns = ns_find(site, len);
    if (ns == CACHE_MAX_NAMESPACES && n < CACHE_MAX_NAMESPACES) {
        memcpy(rc.ns_names[n], site, len);
        rc.ns_names[n][len] = '\0';
        atomic_store_explicit(&rc.ns_count, n + 1, memory_order_release);
        ns = (uint32_t)n;
    }
    pthread_mutex_unlock(&rc.ns_lock);
    return ns;
}

static bool route_has_site(const http_route *route)
{
    return strncmp(route->pattern, "/v1/:site/", 10) == 0;
}

/* ---- keys -------------------------------------------------------------------- */

typedef struct key_writer {
    char *buf;
    size_t len;
    bool overflow;
} key_writer;

static void key_put(key_writer *w, const char *s, size_t len)
{
    char prefix[24];
    size_t n = fmt_u64(prefix, len);
    prefix[n++] = ':';
    if (w->len + n + len >= RC_KEY_MAX) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, prefix, n);
    memcpy(w->buf + w->len + n, s, len);
    w->len += n + len;
}

/* An all-digit value without its leading zeros (at least one digit is
 * kept): how a handler reads an id. Anything else is left as it is. */
static long canonical_digits(char *v, long len)
{
    long zeros = 0;
    for (long i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return len;
    while (zeros < len - 1 && v[zeros] == '0')
        zeros++;
    memmove(v, v + zeros, (size_t)(len - zeros));
    v[len - zeros] = '\0';
    return len - zeros;
}

/* An integer query value as the handler reads it (strtol over at most 31
 * bytes: spaces and a sign allowed), written back in decimal. A value the
 * handler refuses (not a number, out of range) stays as sent: it gets a
 * 400, which is never stored. */
static long canonical_integer(char *v, long len)
{
    if (len >= 32)
        return len;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno != 0)
        return len;
    long out = 0;
    if (n < 0)
        v[out++] = '-';
    uint64_t magnitude = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    return out + (long)fmt_u64(v + out, magnitude);
}

static void fold_case(char *v, long len)
{
    for (long i = 0; i < len; i++)
        if (v[i] >= 'A' && v[i] <= 'Z')
            v[i] = (char)(v[i] - 'A' + 'a');
}

/* "b,a,,b" → "a,b": the words sorted, each once (bounded: the value's
 * 512 bytes hold at most 256 words). */
static int word_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static long canonical_word_set(char *v, long len)
{
    char copy[512];
    const char *words[256];
    size_t n = 0;
    memcpy(copy, v, (size_t)len);
    copy[len] = '\0';
    for (char *save = NULL, *w = strtok_r(copy, ",", &save); w != NULL && n < 256; w = strtok_r(NULL, ",", &save))
        words[n++] = w;
    qsort(words, n, sizeof words[0], word_order);
    long out = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(words[i], words[i - 1]) == 0)
            continue;
        size_t wl = strlen(words[i]);
        if (out > 0)
            v[out++] = ',';
        memcpy(v + out, words[i], wl);
        out += (long)wl;
    }
    return out;
}

size_t rc_key(int index, const char *path, const http_captures *caps, const char *query, size_t query_len,
              char key[RC_KEY_MAX], uint32_t *ns, char site[RC_SITE_MAX + 1])
{
    const http_route *route = &rc.routes[index];
    key_writer w = {.buf = key};
    char value[512];
    key[0] = 'r';
    w.len = 1 + fmt_u64(key + 1, (uint64_t)index);
    key[w.len++] = '|';
    *ns = CACHE_MAX_NAMESPACES;
    strcpy(site, "_"); /* the L2 namespace of routes without a site */
    for (size_t i = 0; i < caps->count; i++) {
        long len = http_capture_decode(path, caps, i, value, sizeof(value));
        if (len < 0 || memchr(value, '\0', (size_t)len) != NULL)
            return 0;
        if (route->cache->integer_captures & (1u << i))
            len = canonical_digits(value, len);
        key_put(&w, value, (size_t)len);
        if (i == 0 && route_has_site(route)) {
            if (len > RC_SITE_MAX)
                return 0; /* no such site: let the handler say so */
            *ns = ns_find(value, (size_t)len);
            memcpy(site, value, (size_t)len);
            site[len] = '\0';
        }
    }
    for (size_t i = 0; i < route->cache->param_count; i++) {
        const http_cache_param *p = &route->cache->params[i];
        long len = http_query_value(query, query_len, p->name, value, sizeof(value));
        const char *v = value;
        if (len == -2)
            return 0;
        if (len == -1) {
            v = p->default_value;
            len = (long)strlen(v);
        } else if (p->integer) {
            len = canonical_integer(value, len);
        } else if (p->fold_case) {
            fold_case(value, len);
        }
        if (p->word_set && v == value)
            len = canonical_word_set(value, len);
        key_put(&w, p->name, strlen(p->name));
        key_put(&w, v, (size_t)len);
    }
    if (route->cache->query_key != NULL) {
        char extra[RC_KEY_MAX];
        long len = route->cache->query_key(query, query_len, extra, sizeof(extra));
        if (len < 0)
            return 0;
        if (len > 0)
            key_put(&w, extra, (size_t)len);
    }
    return w.overflow ? 0 : w.len;
}

/* ---- building representations (worker thread) -------------------------------- */

static void representation_free(void *p)
{
    representation *rep = p;
    for (size_t i = 0; i < rep->tag_count; i++)
        free(rep->tags[i]);
    free(rep->tags);
    if (rep->block != NULL) {
        free(rep->block);
        free(rep);
        return;
    }
    for (int e = 0; e < ENC_COUNT; e++) {
        free(rep->body[e].base);
        free(rep->etag[e].base);
    }
    free(rep->cache_control.base);
    free(rep->cdn_cache_control.base);
    free(rep->surrogate_key.base);
    free(rep->content_type);
    for (size_t i = 0; i < rep->header_count; i++) {
        free(rep->headers[i].name);
        free(rep->headers[i].value.base);
    }
    free(rep);
}

static h2o_iovec_t printf_iovec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static h2o_iovec_t printf_iovec(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? h2o_iovec_init(NULL, 0) : h2o_iovec_init(s, (size_t)n);
}

static bool split_tags(representation *rep, const char *tags, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += tags[i] == ' ';
    rep->tags = calloc(count + 1, sizeof(*rep->tags));
    if (rep->tags == NULL)
        return false;
    const char *p = tags, *end = tags + len;
    while (p < end) {
        const char *space = memchr(p, ' ', (size_t)(end - p));
        size_t n = space ? (size_t)(space - p) : (size_t)(end - p);
        if ((rep->tags[rep->tag_count] = strndup(p, n)) == NULL)
            return false;
        rep->tag_count++;
        p += n + 1;
    }
    return true;
}

/* The ETags, and the compressed variants when the representation may be
 * stored: compressing what is sent once and thrown away would cost more
 * than it saves (with the cache off, bodies go out as they are). */
static bool add_variants(representation *rep)
{
    uint64_t started = rc_now_ns();
    compressed variants[ENC_COUNT] = {{0}};
    if (rc.cache != NULL)
        rep->available |=
            compress_variants(rep->body[ENC_IDENTITY].base, rep->body[ENC_IDENTITY].len, COMPRESS_MIN_SIZE, variants);
    uint64_t hash = XXH3_64bits(rep->body[ENC_IDENTITY].base, rep->body[ENC_IDENTITY].len);
    bool ok = true;
    for (int e = 0; e < ENC_COUNT; e++) {
        if (e != ENC_IDENTITY) {
            rep->body[e] = h2o_iovec_init(variants[e].data, variants[e].len);
            variants[e].data = NULL;
        }
        if ((rep->available & (1u << e)) == 0)
            continue;
        rep->etag[e] = e == ENC_IDENTITY ? printf_iovec("\"%016llx\"", (unsigned long long)hash)
                                         : printf_iovec("\"%016llx-%s\"", (unsigned long long)hash,
                                                        http_encoding_name((http_encoding)e));
        ok = ok && rep->etag[e].base != NULL;
    }
    rep->compress_us = (rc_now_ns() - started) / 1000;
    return ok;
}

static void value_of(representation *rep, uint64_t fresh_ms, uint64_t stale_ms, uint64_t grace_ms, bool share_only,
                     cache_value *out)
{
    size_t charge = sizeof(*rep) + rep->cache_control.len + rep->cdn_cache_control.len + rep->surrogate_key.len;
    for (int e = 0; e < ENC_COUNT; e++)
        charge += rep->body[e].len + rep->etag[e].len;
    *out = (cache_value){.value = rep,
                         .free_value = representation_free,
                         .charge = charge,
                         .tags = (const char *const *)rep->tags,
                         .tag_count = rep->tag_count,
                         .fresh_ms = fresh_ms,
                         .stale_ms = stale_ms,
                         .grace_ms = grace_ms,
                         .share_only = share_only,
                         .negative = rep->negative};
}

/* A problem's body without its per-request members and its closing brace:
 * rc_send appends each request's own. False if it is no JSON object. */
static bool problem_strip(representation *rep)
{
    h2o_iovec_t *body = &rep->body[ENC_IDENTITY];
    json_t *doc = json_loadb(body->base, body->len, 0, NULL);
    json_object_del(doc, "instance");
    json_object_del(doc, "request_id");
    char *text = json_object_size(doc) > 0 ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        return false;
    free(body->base);
    body->base = text;
    body->len = strlen(text) - 1; /* without the '}' */
    return true;
}

bool rc_build(const http_route *route, const http_response *res, uint64_t handler_us, cache_value *out)
{
    representation *rep = calloc(1, sizeof(*rep));
    if (rep == NULL)
        return false;
    rep->status = res->status;
    rep->content_type = res->content_type != NULL ? strdup(res->content_type) : NULL;
    rep->handler_us = handler_us;
    rep->available = 1u << ENC_IDENTITY;
    rep->body[ENC_IDENTITY] = h2o_iovec_init(malloc(res->body_len + 1), res->body_len);
    bool ok = rep->body[ENC_IDENTITY].base != NULL && (res->content_type == NULL || rep->content_type != NULL);
    if (ok && res->body_len > 0)
        memcpy(rep->body[ENC_IDENTITY].base, res->body, res->body_len);

    /* a negative answer lives cache.negative_ttl_s, with no stale or grace
     * time: serving "does not exist" past a write that made it exist would
     * be wrong, and a junk key must not outlive that */
    const cache_lifetimes *class_life = &rc.cfg->cache_class[route->cache->data_class];
    const cache_lifetimes negative_life = {rc.cfg->cache_negative_ttl_s, 0, 0};
    bool negative_answer = res->negative && (res->status == 200 || res->status == 404);
    const cache_lifetimes *life = negative_answer ? &negative_life : class_life;
    rep->negative = negative_answer && negative_life.ttl_s > 0;
    bool storable = ((res->status == 200 && !negative_answer) || rep->negative) && res->tags_len > 0 &&
                    !res->uncacheable && rc.cache != NULL;
    if (ok && res->status == 200) {
        int browser = rc.cfg->cache_browser_ttl_s < life->ttl_s ? rc.cfg->cache_browser_ttl_s : life->ttl_s;
        ok = add_variants(rep);
        rep->cache_control =
            printf_iovec("public, max-age=%d, s-maxage=%d, stale-while-revalidate=%d, stale-if-error=%d", browser,
                         life->ttl_s, life->swr_s, life->grace_s);
        rep->cdn_cache_control = printf_iovec("max-age=%d, stale-while-revalidate=%d, stale-if-error=%d", life->ttl_s,
                                              life->swr_s, life->grace_s);
    } else if (ok) {
        rep->cache_control = printf_iovec("no-store");
        ok = rep->cache_control.base != NULL;
        if (ok && rep->negative && !problem_strip(rep))
            rep->negative = storable = false; /* not a problem object: answered, not stored */
    }
    if (ok && (res->status == 200 || rep->negative)) {
        /* a negative 404 keeps its tags too: for invalidation, and the L2
         * rebuilds them from the surrogate key */
        rep->surrogate_key = printf_iovec("%.*s", (int)res->tags_len, res->tags ? res->tags : "");
        ok = rep->surrogate_key.base && split_tags(rep, res->tags ? res->tags : "", res->tags_len);
    }
    ok = ok && (res->status != 200 || (rep->cache_control.base && rep->cdn_cache_control.base));
    for (size_t i = 0; ok && i < res->header_count; i++) {
        rep->headers[i].name = strdup(res->headers[i].name);
        rep->headers[i].value = printf_iovec("%s", res->headers[i].value);
        rep->header_count = i + 1;
        ok = rep->headers[i].name != NULL && rep->headers[i].value.base != NULL;
    }
    if (!ok) {
        representation_free(rep);
        return false;
    }
    if (storable && route->cache != NULL && rep->tag_count > 0 && route_has_site(route)) {
        /* register the site's namespace now that it has something stored */
        const char *first = rep->tags[0];
        const char *colon = strchr(first, ':');
        if (colon != NULL)
            ns_register(first, (size_t)(colon - first));
    }
    rep->life = (l2_lifetimes){.created_ms = wall_ms(),
                               .fresh_ms = (uint32_t)life->ttl_s * 1000u,
                               .stale_ms = (uint32_t)life->swr_s * 1000u,
                               .grace_ms = (uint32_t)life->grace_s * 1000u};
    value_of(rep, rep->life.fresh_ms, rep->life.stale_ms, rep->life.grace_ms, !storable, out);
    return true;
}

int rc_status(const cache_entry *e)
{
    return ((const representation *)cache_entry_value(e))->status;
}

/* ---- representations in the L2 -----------------------------------------------------
 *
 * The payload of an L2 record (l2.c frames it): every field length-prefixed,
 * big-endian —
 *
 *     u16 status | u8 encodings available, bit 7: negative | str content type
 *     | per available encoding, in enum order: str etag, u32 body length, body
 *     | str cache-control | str cdn-cache-control | str surrogate-key
 *     | u8 header count | per header: str name, str value
 *     | u64 handler µs | u64 compress µs
 *
 * where str is a u32 length and the bytes. The tags are the surrogate
 * key's words, so they are not stored twice. */

#define NEGATIVE_FLAG 0x80u

typedef struct wire {
    unsigned char *p, *end; /* writing: p == NULL measures */
    size_t size;
    bool bad;
    char *copy_to; /* reading: where strings are copied, NUL-terminated */
} wire;

static void wire_uint(wire *w, uint64_t v, int bytes)
{
    if (w->p != NULL)
        for (int i = bytes - 1; i >= 0; i--, v >>= 8)
            w->p[w->size + (size_t)i] = (unsigned char)v;
    w->size += (size_t)bytes;
}

static void wire_str(wire *w, const char *s, size_t len)
{
    wire_uint(w, len, 4);
    if (w->p != NULL && len > 0)
        memcpy(w->p + w->size, s, len);
    w->size += len;
}

static void write_representation(wire *w, const representation *rep)
{
    wire_uint(w, (uint64_t)rep->status, 2);
    wire_uint(w, rep->available | (rep->negative ? NEGATIVE_FLAG : 0u), 1);
    wire_str(w, rep->content_type ? rep->content_type : "", rep->content_type ? strlen(rep->content_type) : 0);
    for (int e = 0; e < ENC_COUNT; e++) {
        if ((rep->available & (1u << e)) == 0)
            continue;
        wire_str(w, rep->etag[e].base, rep->etag[e].len);
        wire_str(w, rep->body[e].base, rep->body[e].len);
    }
    wire_str(w, rep->cache_control.base, rep->cache_control.len);
    wire_str(w, rep->cdn_cache_control.base, rep->cdn_cache_control.len);
    wire_str(w, rep->surrogate_key.base, rep->surrogate_key.len);
    wire_uint(w, rep->header_count, 1);
    for (size_t i = 0; i < rep->header_count; i++) {
        wire_str(w, rep->headers[i].name, strlen(rep->headers[i].name));
        wire_str(w, rep->headers[i].value.base, rep->headers[i].value.len);
    }
    wire_uint(w, rep->handler_us, 8);
    wire_uint(w, rep->compress_us, 8);
}

/* At most cache.negative_l2_per_s negative records a second go to Redis
 * from this instance (a fixed one-second window, shared by the workers):
 * with their TTL, that bounds the keys a junk flood can leave there. The
 * rest are kept in this instance's L1 only. */
static bool negative_l2_admit(void)
{
    static _Atomic uint64_t window, count;
    uint64_t second = wall_ms() / 1000u, seen = atomic_load(&window);
    if (seen != second && atomic_compare_exchange_strong(&window, &seen, second))
        atomic_store(&count, 0);
    return atomic_fetch_add(&count, 1) < (uint64_t)rc.cfg->cache_negative_l2_per_s;
}

bool rc_l2_record(const cache_entry *e, uint64_t snapshot, l2_record *out, uint64_t *ttl_ms)
{
    const representation *rep = cache_entry_value(e);
    if ((rep->status != 200 && !rep->negative) || rep->tag_count == 0 || (rep->negative && !negative_l2_admit()))
        return false;
    wire measure = {0};
    write_representation(&measure, rep);
    char *payload =
        l2_record_new(out, snapshot, (const char *const *)rep->tags, rep->tag_count, &rep->life, measure.size);
    if (payload == NULL)
        return false;
    wire w = {.p = (unsigned char *)payload};
    write_representation(&w, rep);
    *ttl_ms = (uint64_t)rep->life.fresh_ms + rep->life.stale_ms + rep->life.grace_ms;
    return true;
}

static uint64_t read_uint(wire *w, int bytes)
{
    if (w->bad || w->end - w->p < bytes) {
        w->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | *w->p++;
    return v;
}

/* A NUL-terminated copy in the representation's block (which has room
 * for every string of the payload and a NUL after each). */
static h2o_iovec_t read_str(wire *w)
{
    uint64_t len = read_uint(w, 4);
    if (w->bad || (uint64_t)(w->end - w->p) < len) {
        w->bad = true;
        return h2o_iovec_init(NULL, 0);
    }
    char *s = w->copy_to;
    memcpy(s, w->p, len);
    s[len] = '\0';
    w->copy_to += len + 1;
    w->p += len;
    return h2o_iovec_init(s, len);
}

/* A string the record gives to be sent as a header: a control byte
 * (CR, LF, NUL...; tab is allowed) would let whoever can write to Redis
 * split or cut the response (h2o copies header values verbatim), so such
 * a record is refused (found by fuzz_l2). */
static h2o_iovec_t read_header_str(wire *w)
{
    h2o_iovec_t v = read_str(w);
    for (size_t i = 0; i < v.len && !w->bad; i++) {
        unsigned char ch = (unsigned char)v.base[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            w->bad = true;
    }
    return v;
}

/* A header name the record gives: token characters only (RFC 9110 5.1). */
static char *read_header_name(wire *w)
{
    h2o_iovec_t v = read_str(w);
    for (size_t i = 0; i < v.len && !w->bad; i++) {
        unsigned char ch = (unsigned char)v.base[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            w->bad = true;
    }
    return v.base;
}

/* Remaining lifetimes of a value `age` ms old. False once past them all. */
static bool remaining(const l2_lifetimes *life, uint64_t age, uint64_t *fresh, uint64_t *stale, uint64_t *grace)
{
    uint64_t f = life->fresh_ms, st = life->stale_ms, g = life->grace_ms;
    if (age >= f + st + g)
        return false;
    *fresh = age < f ? f - age : 0;
    *stale = age < f ? st : (age < f + st ? f + st - age : 0);
    *grace = age < f + st ? g : f + st + g - age;
    return true;
}

bool rc_from_l2(const l2_result *r, cache_value *out)
{
    uint64_t now = wall_ms(), fresh, stale, grace;
    uint64_t age = now > r->life.created_ms ? now - r->life.created_ms : 0;
    if (!remaining(&r->life, age, &fresh, &stale, &grace))
        return false;
    /* one block for every string: each is at least its 4-byte length in
     * the payload, so payload_len bytes hold them all with their NULs */
    representation *rep = calloc(1, sizeof(*rep));
    char *block = malloc(r->payload_len + 1);
    if (rep == NULL || block == NULL) {
        free(rep);
        free(block);
        return false;
    }
    rep->block = block;
    wire w = {.p = (unsigned char *)r->payload, .end = (unsigned char *)r->payload + r->payload_len, .copy_to = block};
    rep->status = (int)read_uint(&w, 2);
    unsigned flags = (unsigned)read_uint(&w, 1);
    rep->available = flags & ~NEGATIVE_FLAG;
    rep->negative = (flags & NEGATIVE_FLAG) != 0;
    rep->content_type = read_header_str(&w).base;
    for (int e = 0; e < ENC_COUNT && !w.bad; e++) {
        if ((rep->available & (1u << e)) == 0)
            continue;
        rep->etag[e] = read_header_str(&w);
        rep->body[e] = read_str(&w);
    }
    rep->cache_control = read_header_str(&w);
    rep->cdn_cache_control = read_header_str(&w);
    rep->surrogate_key = read_header_str(&w);
    size_t headers = (size_t)read_uint(&w, 1);
    if (headers > HTTP_MAX_HEADERS)
        w.bad = true;
    for (size_t i = 0; i < headers && !w.bad; i++) {
        rep->headers[i].name = read_header_name(&w);
        rep->headers[i].value = read_header_str(&w);
        rep->header_count = i + 1;
    }
    rep->handler_us = read_uint(&w, 8);
    rep->compress_us = read_uint(&w, 8);
    rep->life = r->life;
    bool ok = !w.bad && w.p == w.end && (rep->status == 200 || (rep->negative && rep->status == 404)) &&
              (rep->available & (1u << ENC_IDENTITY)) != 0 &&
              split_tags(rep, rep->surrogate_key.base, rep->surrogate_key.len);
    if (!ok) {
        representation_free(rep);
        return false;
    }
    const char *colon = rep->tag_count > 0 ? strchr(rep->tags[0], ':') : NULL;
    if (colon != NULL)
        ns_register(rep->tags[0], (size_t)(colon - rep->tags[0]));
    value_of(rep, fresh, stale, grace, false, out);
    return true;
}

/* ---- sending (loop thread) ------------------------------------------------------- */

static void release_entry(void *p)
{
    cache_entry_release((cache_entry **)p);
}

static void add_header(h2o_req_t *req, const char *name, size_t name_len, h2o_iovec_t value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 0, NULL, value.base, value.len);
}

/* "cache;desc="hit", total;dur=0.012" — and on a miss the handler's and the
 * compression's time — formatted by hand: this runs on every hit. */
static h2o_iovec_t server_timing(h2o_req_t *req, rc_outcome outcome, const representation *rep, uint64_t started_ns)
{
    char *out = h2o_mem_alloc_pool(&req->pool, 160), *p = out;
#define PUT(lit) (memcpy(p, lit, sizeof(lit) - 1), p += sizeof(lit) - 1)
    if (outcome == RC_HIT)
        PUT("cache;desc=\"hit\"");
    else if (outcome == RC_HIT_L2)
        PUT("cache;desc=\"hit-l2\"");
    else if (outcome == RC_STALE || outcome == RC_FAILSAFE || outcome == RC_STALE_L2 || outcome == RC_STALE_WAITING)
        PUT("cache;desc=\"stale\"");
    else {
        PUT("cache;desc=\"miss\", db;dur=");
        p += fmt_us_as_ms(p, rep->handler_us);
        PUT(", compress;dur=");
        p += fmt_us_as_ms(p, rep->compress_us);
    }
    PUT(", total;dur=");
    p += fmt_us_as_ms(p, (rc_now_ns() - started_ns) / 1000);
#undef PUT
    return h2o_iovec_init(out, (size_t)(p - out));
}

static const char *const outcome_status[] = {
    [RC_HIT] = "strata; hit",
    [RC_HIT_L2] = "strata; hit; detail=l2",
    [RC_STALE_L2] = "strata; hit; detail=l2-stale-while-revalidate",
    [RC_STALE] = "strata; hit; detail=stale-while-revalidate",
    [RC_MISS_STORED] = "strata; fwd=miss; stored",
    [RC_MISS] = "strata; fwd=miss",
    [RC_COLLAPSED] = "strata; fwd=miss; collapsed",
    [RC_FAILSAFE] = "strata; fwd=stale; detail=stale-if-error",
    [RC_STALE_WAITING] = "strata; hit; detail=stale-while-another-instance-fills",
};

/* Appends ,"NAME":"VALUE" — or nothing when VALUE has a byte outside
 * printable ASCII (http_problem leaves such a field out too). */
static char *put_member(char *p, const char *name, const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
            return p;
    p += sprintf(p, ",\"%s\":\"", name);
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '"' || value[i] == '\\')
            *p++ = '\\';
        *p++ = value[i];
    }
    *p++ = '"';
    return p;
}

/* A stored problem's body completed for this request: its instance (the
 * path without the query) and request id, as http_problem writes them. */
static h2o_iovec_t problem_complete(h2o_req_t *req, const representation *rep, const char *request_id)
{
    h2o_iovec_t prefix = rep->body[ENC_IDENTITY];
    const char *q = memchr(req->path.base, '?', req->path.len);
    size_t path_len = q ? (size_t)(q - req->path.base) : req->path.len, id_len = strlen(request_id);
    char *out = h2o_mem_alloc_pool(&req->pool, prefix.len + 2 * (path_len + id_len) + 64), *p = out;
    memcpy(p, prefix.base, prefix.len);
    p = put_member(p + prefix.len, "instance", req->path.base, path_len);
    p = put_member(p, "request_id", request_id, id_len);
    *p++ = '}';
    return h2o_iovec_init(out, (size_t)(p - out));
}

void rc_send(h2o_req_t *req, const char *request_id, cache_entry **entry, rc_outcome outcome, uint64_t started_ns)
{
    const representation *rep = cache_entry_value(*entry);
    http_encoding enc = ENC_IDENTITY;
    if (rep->available != (1u << ENC_IDENTITY)) {
        ssize_t ae = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT_ENCODING, -1);
        enc = ae >= 0 ? accept_encoding_choose(req->headers.entries[ae].value.base, req->headers.entries[ae].value.len,
                                               rep->available)
                      : ENC_IDENTITY;
    }
    int status = rep->status;
    if (status == 200) {
        ssize_t inm = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
        if (inm >= 0 &&
            http_etag_list_matches(req->headers.entries[inm].value.base, req->headers.entries[inm].value.len,
                                   rep->etag[enc].base, rep->etag[enc].len))
            status = 304;
    }
    req->res.status = status;
    req->res.reason = http_status_text(status);
    if (status != 304 && rep->content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, rep->content_type,
                       strlen(rep->content_type));
    if (status != 304 && enc != ENC_IDENTITY) {
        const char *name = http_encoding_name(enc);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_ENCODING, NULL, name, strlen(name));
    }
    if (rep->status == 200) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("accept-encoding"));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, rep->etag[enc].base, rep->etag[enc].len);
        add_header(req, H2O_STRLIT("cdn-cache-control"), rep->cdn_cache_control);
        add_header(req, H2O_STRLIT("surrogate-key"), rep->surrogate_key);
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, rep->cache_control.base,
                   rep->cache_control.len);
    for (size_t i = 0; i < rep->header_count; i++)
        add_header(req, rep->headers[i].name, strlen(rep->headers[i].name), rep->headers[i].value);
    add_header(req, H2O_STRLIT("cache-status"),
               h2o_iovec_init(outcome_status[outcome], strlen(outcome_status[outcome])));
    add_header(req, H2O_STRLIT("x-request-id"), h2o_strdup(&req->pool, request_id, strlen(request_id)));

    add_header(req, H2O_STRLIT("server-timing"), server_timing(req, outcome, rep, started_ns));

    /* The headers above point into the representation: the request's pool
     * owns the reference until h2o is done with the response. */
    cache_entry **hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), release_entry);
    *hold = *entry;
    *entry = NULL;
    if (status == 304) {
        h2o_send_inline(req, "", 0);
        return;
    }
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = rep->negative && rep->status != 200 ? problem_complete(req, rep, request_id) : rep->body[enc];
    req->res.content_length = body.len;
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

void rc_send_bypass_headers(h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, no-store"));
    add_header(req, H2O_STRLIT("cache-status"), h2o_iovec_init(H2O_STRLIT("strata; fwd=bypass; detail=authorization")));
}

/* ---- the handlers' side (any thread) ---------------------------------------------- */

/* The cacheable GET route of a target ("/v1/main/content?limit=5"), or -1. */
static int target_route(const char *target, http_captures *caps)
{
    const char *q = strchr(target, '?');
    unsigned allowed;
    int index = http_route_find(rc.routes, rc.route_count, HTTP_GET, target, q ? (size_t)(q - target) : strlen(target),
                                caps, &allowed);
    return index >= 0 && rc.routes[index].cache != NULL ? index : -1;
}

static size_t target_route_key(const char *target, int index, const http_captures *caps, char key[RC_KEY_MAX],
                               uint32_t *ns, char site[RC_SITE_MAX + 1])
{
    const char *q = strchr(target, '?');
    return rc_key(index, target, caps, q ? q + 1 : "", q ? strlen(q + 1) : 0, key, ns, site);
}

/* Finds the cacheable GET route of a target and its key (0: none). */
static size_t target_key(const char *target, char key[RC_KEY_MAX], uint32_t *ns, char site[RC_SITE_MAX + 1])
{
    http_captures caps;
    int index = target_route(target, &caps);
    return index >= 0 ? target_route_key(target, index, &caps, key, ns, site) : 0;
}

void http_cache_watch(void (*watch)(const char *tag))
{
    rc.watch = watch;
}

bool http_cache_invalidations_reach_all(void)
{
    return !rc.redis_configured || rc.bus != NULL;
}

size_t http_cache_invalidate_tag(const char *tag, lsn_t lsn)
{
    object_cache_invalidate_tag(tag); /* the object cache (cache/objects.h), with or without the response cache */
    if (rc.watch != NULL)
        rc.watch(tag);
    if (rc.cache == NULL)
        return 0;
    lsn_floor_raise(lsn);
    /* Published before the L1 drops its entries: from then until Redis has
     * it, the L2 is not read here (rc_l2_readable), so a fill that starts
     * once they are gone cannot bring the L2's old copy back into the L1;
     * a fill that started before is fenced by the L1's epoch. */
    if (rc.bus != NULL) {
        /* tags are "<site>:…" (content/cache_tags.c): the site names the
         * L2 namespace whose generation is stamped */
        char site[RC_SITE_MAX + 1] = "_";
        const char *colon = strchr(tag, ':');
        if (colon != NULL && (size_t)(colon - tag) <= RC_SITE_MAX) {
            memcpy(site, tag, (size_t)(colon - tag));
            site[colon - tag] = '\0';
        }
        published_seq = cache_bus_publish(rc.bus, site, true, tag, strlen(tag), lsn);
    }
    return cache_invalidate_tag(rc.cache, tag);
}

bool http_cache_invalidate_target(const char *target, lsn_t lsn)
{
    char key[RC_KEY_MAX], site[RC_SITE_MAX + 1];
    uint32_t ns;
    size_t len = rc.cache ? target_key(target, key, &ns, site) : 0;
    if (len == 0)
        return false;
    lsn_floor_raise(lsn);
    if (rc.bus != NULL) /* first, as http_cache_invalidate_tag says */
        published_seq = cache_bus_publish(rc.bus, site, false, key, len, lsn);
    return cache_invalidate_key(rc.cache, key, len);
}

uint64_t http_cache_epoch(void)
{
    return rc.cache ? cache_epoch(rc.cache) : 0;
}

bool http_cache_store(const char *path, const http_response *res, uint64_t epoch)
{
    http_captures caps;
    int index = rc.cache ? target_route(path, &caps) : -1;
    cache_value value;
    if (index < 0 || res->status != 200 || !rc_build(&rc.routes[index], res, 0, &value))
        return false;
    char key[RC_KEY_MAX], site[RC_SITE_MAX + 1];
    uint32_t ns; /* after rc_build, which registers the site's namespace */
    size_t len = target_route_key(path, index, &caps, key, &ns, site);
    if (value.share_only || len == 0) {
        representation_free(value.value);
        return false;
    }
    return cache_insert(rc.cache, ns, key, len, &value, epoch, rc_now_ms());
}

bool http_cache_holds(const char *path)
{
    char key[RC_KEY_MAX], site[RC_SITE_MAX + 1];
    uint32_t ns;
    size_t len = rc.cache ? target_key(path, key, &ns, site) : 0;
    cache_entry *e = NULL;
    cache_state state = len > 0 ? cache_peek(rc.cache, key, len, rc_now_ms(), &e) : CACHE_MISS;
    bool holds = (state == CACHE_FRESH || state == CACHE_STALE) && rc_status(e) == 200;
    cache_entry_release(&e);
    return holds;
}

static json_t *stats_json(const cache_stats *st)
{
    uint64_t lookups = st->hits + st->stale_hits + st->misses;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "hits",
                     (json_int_t)st->hits, "stale_hits", (json_int_t)st->stale_hits, "misses", (json_int_t)st->misses,
                     "expired_hits", (json_int_t)st->expired_hits, "coalesced", (json_int_t)st->coalesced, "fills",
                     (json_int_t)st->fills, "fenced", (json_int_t)st->fenced, "inserts", (json_int_t)st->inserts,
                     "evictions", (json_int_t)st->evictions, "invalidations", (json_int_t)st->invalidations, "entries",
                     (json_int_t)st->entries, "bytes", (json_int_t)st->bytes, "negative_entries",
                     (json_int_t)st->negative_entries, "negative_bytes", (json_int_t)st->negative_bytes, "hit_ratio",
                     lookups ? (double)(st->hits + st->stale_hits) / (double)lookups : 0.0);
}

/* The object cache's figures (cache/objects.h), reported with the
 * response cache's whether or not that one is on. */
static json_t *object_cache_json(void)
{
    object_cache_stats o;
    object_cache_get_stats(&o);
    uint64_t lookups = o.hits + o.misses;
    return json_pack("{s:b, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "enabled", o.enabled, "hits",
                     (json_int_t)o.hits, "misses", (json_int_t)o.misses, "hit_ratio",
                     lookups ? (double)o.hits / (double)lookups : 0.0, "inserts", (json_int_t)o.inserts, "evictions",
                     (json_int_t)o.evictions, "invalidations", (json_int_t)o.invalidations, "entries",
                     (json_int_t)o.entries, "bytes", (json_int_t)o.bytes, "max_bytes", (json_int_t)o.max_bytes);
}

json_t *http_cache_stats(const char *site)
{
    if (rc.cache == NULL)
        return json_pack("{s:b, s:o}", "enabled", 0, "objects", object_cache_json());
    cache_stats mine = {0}, all;
    uint32_t ns = ns_find(site, strlen(site));
    if (ns != CACHE_MAX_NAMESPACES)
        cache_get_stats(rc.cache, ns, &mine);
    cache_get_stats(rc.cache, UINT32_MAX, &all);
    char floor[LSN_TEXT_MAX];
    lsn_format(http_cache_lsn_floor(), floor);
    json_t *stats = json_pack("{s:b, s:I, s:o, s:o, s:s, s:o}", "enabled", 1, "max_bytes",
                              (json_int_t)cache_max_bytes(rc.cache), "site", stats_json(&mine), "all_sites",
                              stats_json(&all), "lsn_floor", floor, "objects", object_cache_json());
    if (rc.bus != NULL) {
        cache_bus_stats b;
        cache_bus_get_stats(rc.bus, &b);
        json_t *histogram = json_array();
        for (int i = 0; i < CACHE_BUS_LAG_BUCKETS; i++) {
            json_t *bucket = i < CACHE_BUS_LAG_BUCKETS - 1
                                 ? json_pack("{s:f, s:I}", "le_ms", cache_bus_lag_bounds_ms[i], "count",
                                             (json_int_t)b.lag_buckets[i])
                                 : json_pack("{s:s, s:I}", "le_ms", "+Inf", "count", (json_int_t)b.lag_buckets[i]);
            json_array_append_new(histogram, bucket);
        }
        json_object_set_new(stats, "bus",
                            json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:f, s:f, s:f, s:o}}",
                                      "connected", b.connected, "reset_owed", b.reset_owed, "published",
                                      (json_int_t)b.published, "publish_failures", (json_int_t)b.publish_failures,
                                      "received", (json_int_t)b.received, "applied", (json_int_t)b.applied, "resets",
                                      (json_int_t)b.resets, "reconnects", (json_int_t)b.reconnects, "lag_ms", "samples",
                                      (json_int_t)b.lag_samples, "p50", b.lag_p50_ms, "p99", b.lag_p99_ms, "max",
                                      b.lag_max_ms, "histogram", histogram));
    }
    if (rc.l2 != NULL) {
        l2_stats l;
        l2_get_stats(rc.l2, &l);
        json_object_set_new(
            stats, "l2",
            json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:b, s:I}, s:f}", "enabled", 1,
                      "connections_up", (json_int_t)l.connections_up, "lookups", (json_int_t)l.lookups, "hits",
                      (json_int_t)l.hits, "misses", (json_int_t)l.misses, "busy", (json_int_t)l.busy, "errors",
                      (json_int_t)l.errors, "timeouts", (json_int_t)l.timeouts, "stores", (json_int_t)l.stores,
                      "stored", (json_int_t)l.stored, "refused", (json_int_t)l.refused, "breaker", "open",
                      l.breaker_open, "opens", (json_int_t)l.breaker_opens, "hit_ratio",
                      l.hits + l.misses + l.busy ? (double)l.hits / (double)(l.hits + l.misses + l.busy) : 0.0));
    }
    return stats;
}

/*
 * vitals.c — the Web Vitals beacon (POST /api/performance/metrics) and the
 * percentiles it keeps per metric and per page.
 *
 * The endpoint is public and written to by every reader's browser, so
 * everything is bounded before it is believed, in the order that costs
 * least: the body's size (413), its type (415: application/json, or
 * text/plain, the type a cross-origin sendBeacon must use), one token of
 * the client's bucket (429), the JSON (400), every field of every metric
 * (422; nothing of a batch is recorded unless all of it is valid), then
 * one more token per further metric of a batch.
 *
 * Repeats: web-vitals gives every metric instance a unique id, and a
 * browser may send one twice (a beacon retried, CLS reported again when a
 * page is hidden twice). Ids are remembered in two generations of hash
 * sets of VITALS_RECENT_IDS each: when the current one fills, the previous
 * one is dropped, so at least the last VITALS_RECENT_IDS ids are always
 * known and memory is fixed. A repeated id records nothing.
 *
 * Storage: a histogram per metric for all pages, and per page for the
 * VITALS_PAGES_MAX pages seen most recently (hash table + LRU list). Page
 * histograms are sparse (hist.c); besides the page count, their bytes are
 * bounded by PAGE_BYTES_MAX, and the least recent pages go first.
 *
 * Privacy: no cookie is read or set, and the client's address is used only
 * as the key of its rate-limit bucket (hashed), never stored or logged.
 * Behind a trusted proxy (server.trusted_proxies), X-Forwarded-For names
 * the client (http/ratelimit.h); IPv6 clients are keyed by their /64.
 *
 * Locking: one mutex for the histograms, pages, id sets and samples; the
 * limiter has its own. A beacon holds the lock for a few hash lookups and
 * histogram increments; a summary holds it while it builds its JSON.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>

#include "core/limiter.h"
#include "core/log.h"
#include "http/ratelimit.h"
#include "vitals/vitals.h"
#include "vitals/vitals_internal.h"

#define PAGE_BUCKETS 1024                 /* hash heads, ≥ 2 × VITALS_PAGES_MAX */
#define PAGE_BYTES_MAX (4u * 1024 * 1024) /* page histograms, all together */
#define ID_MAX 128
#define NAV_MAX 32
#define TARGET_MAX 96 /* bytes of an attribution target kept with a sample */
#define SUMMARY_PAGES 20
#define ID_SLOTS (VITALS_RECENT_IDS * 2) /* per generation: at most half full */

/* ---- the metrics ------------------------------------------------------------------- */

typedef struct metric_info {
    const char *name;
    const char *unit;
    double scale; /* histogram units per unit (µs per ms; 1e-5 of a CLS score) */
    double max;   /* the largest value accepted */
    double good, poor;
} metric_info;

static const metric_info metrics[VITALS_METRIC_COUNT] = {
    [VITALS_LCP] = {"LCP", "ms", 1000, 60000, 2500, 4000},  [VITALS_INP] = {"INP", "ms", 1000, 60000, 200, 500},
    [VITALS_CLS] = {"CLS", "", 100000, 10, 0.1, 0.25},      [VITALS_FCP] = {"FCP", "ms", 1000, 60000, 1800, 3000},
    [VITALS_TTFB] = {"TTFB", "ms", 1000, 60000, 800, 1800},
};

const char *vitals_metric_name(vitals_metric m)
{
    return m < VITALS_METRIC_COUNT ? metrics[m].name : NULL;
}
const char *vitals_metric_unit(vitals_metric m)
{
    return m < VITALS_METRIC_COUNT ? metrics[m].unit : NULL;
}
double vitals_threshold_good(vitals_metric m)
{
    return m < VITALS_METRIC_COUNT ? metrics[m].good : 0;
}
double vitals_threshold_poor(vitals_metric m)
{
    return m < VITALS_METRIC_COUNT ? metrics[m].poor : 0;
}

const char *vitals_rating(vitals_metric m, double value)
{
    if (value <= metrics[m].good)
        return "good";
    return value <= metrics[m].poor ? "needs-improvement" : "poor";
}

static int metric_by_name(const char *name)
{
    for (int m = 0; m < VITALS_METRIC_COUNT; m++)
        if (strcmp(name, metrics[m].name) == 0)
            return m;
    return -1;
}

/* ---- the state ------------------------------------------------------------------------- */

typedef struct page {
    struct page *hash_next;
    struct page *newer, *older; /* LRU list */
    uint64_t hash;
    uint64_t count;
    vitals_hist hist[VITALS_METRIC_COUNT];
    char path[];
} page;

typedef struct sample {
    vitals_metric metric;
    double value;
    int64_t at_ms;
    char page[VITALS_PAGE_MAX + 1];
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    char target[TARGET_MAX + 1];
} sample;

typedef struct id_set {
    uint64_t slot[ID_SLOTS]; /* 0: empty */
    size_t used;
} id_set;

static struct {
    pthread_mutex_t lock;
    vitals_hist all[VITALS_METRIC_COUNT];
    page *heads[PAGE_BUCKETS];
    page *newest, *oldest;
    size_t page_count;
    size_t page_bytes;
    id_set ids[2]; /* current, previous */
    int current;
    sample recent[VITALS_RECENT_SAMPLES];
    size_t recent_next, recent_count;
    vitals_counters counters;
} state = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t limiter_once = PTHREAD_ONCE_INIT;
static limiter *beacon_limiter;
static const limiter_rate beacon_shape = {VITALS_RATE_PER_S, VITALS_BURST};

static void limiter_create(void)
{
    beacon_limiter = limiter_new(VITALS_LIMITER_SLOTS, true);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- recent ids ------------------------------------------------------------------------ */

static bool id_set_has(const id_set *s, uint64_t h)
{
    for (size_t i = h % ID_SLOTS;; i = (i + 1) % ID_SLOTS) {
        if (s->slot[i] == h)
            return true;
        if (s->slot[i] == 0)
            return false;
    }
}

static void id_set_put(id_set *s, uint64_t h)
{
    size_t i = h % ID_SLOTS;
    while (s->slot[i] != 0)
        i = (i + 1) % ID_SLOTS;
    s->slot[i] = h;
    s->used++;
}

/* True if the id was seen already; otherwise remembers it. Locked. */
static bool id_seen(vitals_metric m, const char *id)
{
    char key[8 + ID_MAX];
    int n = snprintf(key, sizeof(key), "%s:%s", metrics[m].name, id);
    uint64_t h = XXH3_64bits(key, n > 0 ? (size_t)n : 0) | 1; /* 0 marks an empty slot */
    id_set *cur = &state.ids[state.current], *prev = &state.ids[1 - state.current];
    if (id_set_has(cur, h) || id_set_has(prev, h))
        return true;
    if (cur->used == VITALS_RECENT_IDS) {
        memset(prev, 0, sizeof(*prev));
        state.current = 1 - state.current;
        cur = prev;
    }
    id_set_put(cur, h);
    return false;
}

/* ---- pages --------------------------------------------------------------------------- */

static void lru_unlink(page *p)
{
    if (p->newer != NULL)
        p->newer->older = p->older;
    else
        state.newest = p->older;
    if (p->older != NULL)
        p->older->newer = p->newer;
    else
        state.oldest = p->newer;
    p->newer = p->older = NULL;
}

static void lru_push_newest(page *p)
{
    p->older = state.newest;
    p->newer = NULL;
    if (state.newest != NULL)
        state.newest->newer = p;
    state.newest = p;
    if (state.oldest == NULL)
        state.oldest = p;
}

static size_t page_bytes(const page *p)
{
    size_t n = 0;
    for (int m = 0; m < VITALS_METRIC_COUNT; m++)
        n += vitals_hist_bytes(&p->hist[m]);
    return n;
}

static void page_drop(page *p)
{
    page **link = &state.heads[p->hash % PAGE_BUCKETS];
    while (*link != p)
        link = &(*link)->hash_next;
    *link = p->hash_next;
    lru_unlink(p);
    state.page_bytes -= page_bytes(p);
    for (int m = 0; m < VITALS_METRIC_COUNT; m++)
        vitals_hist_free(&p->hist[m]);
    free(p);
    state.page_count--;
}

static page *page_find(const char *path, uint64_t hash)
{
    for (page *p = state.heads[hash % PAGE_BUCKETS]; p != NULL; p = p->hash_next)
        if (p->hash == hash && strcmp(p->path, path) == 0)
            return p;
    return NULL;
}

/* The page's entry, made the most recent (created if new). Locked. */
static page *page_touch(const char *path)
{
    size_t len = strlen(path);
    uint64_t hash = XXH3_64bits(path, len);
    page *p = page_find(path, hash);
    if (p != NULL) {
        lru_unlink(p);
        lru_push_newest(p);
        return p;
    }
    p = calloc(1, sizeof(*p) + len + 1);
    if (p == NULL)
        return NULL;
    p->hash = hash;
    memcpy(p->path, path, len + 1);
    p->hash_next = state.heads[hash % PAGE_BUCKETS];
    state.heads[hash % PAGE_BUCKETS] = p;
    lru_push_newest(p);
    state.page_count++;
    return p;
}

/* Drops the least recent pages (never `keep`) until both bounds hold. */
static void pages_bound(const page *keep)
{
    while ((state.page_count > VITALS_PAGES_MAX || state.page_bytes > PAGE_BYTES_MAX) && state.oldest != NULL &&
           state.oldest != keep) {
        page_drop(state.oldest);
        state.counters.pages_evicted++;
    }
}

/* ---- reading a beacon ------------------------------------------------------------------ */

typedef struct beacon_metric {
    vitals_metric metric;
    double value;
    const char *id; /* borrowed from the JSON document */
    char page[VITALS_PAGE_MAX + 1];
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    char target[TARGET_MAX + 1]; /* attribution.target, visible ASCII ('?' for other bytes) */
} beacon_metric;

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_';
}

/* A page as its path only: "https://host/a/b?q#f" and "/a/b?q" are both
 * "/a/b". The path must start with '/' and hold only visible ASCII (what
 * location.pathname gives: anything else is percent-encoded); a longer one
 * is cut at VITALS_PAGE_MAX bytes. Returns false if it is not a path. */
static bool page_normalise(const char *in, char out[VITALS_PAGE_MAX + 1])
{
    const char *p = in;
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strchr(p + 8 - (p[4] == ':'), '/');
        if (p == NULL)
            p = "/";
    }
    if (*p != '/')
        return false;
    size_t n = 0;
    for (; *p != '\0' && *p != '?' && *p != '#'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
        if (n < VITALS_PAGE_MAX)
            out[n++] = *p;
    }
    out[n] = '\0';
    return true;
}

/* Fills *out from one metric object, or a 422 naming the field. */
static bool read_metric(const http_request *req, http_response *res, json_t *obj, size_t i, beacon_metric *out)
{
    char where[24] = "";
    if (i != SIZE_MAX)
        snprintf(where, sizeof(where), "[%zu]", i);
    if (!json_is_object(obj)) {
        http_problem(res, req, 422, "invalid_beacon", "metric%s: expected an object", where);
        return false;
    }
    const char *name = json_string_value(json_object_get(obj, "name"));
    int m = name != NULL ? metric_by_name(name) : -1;
    if (m < 0) {
        http_problem(res, req, 422, "unknown_metric", "metric%s.name: expected one of LCP, INP, CLS, FCP, TTFB", where);
        return false;
    }
    out->metric = (vitals_metric)m;
    json_t *value = json_object_get(obj, "value");
    if (!json_is_number(value)) {
        http_problem(res, req, 422, "invalid_beacon", "metric%s.value: expected a number", where);
        return false;
    }
    out->value = json_number_value(value);
    if (!isfinite(out->value) || out->value < 0 || out->value > metrics[m].max) {
        http_problem(res, req, 422, "value_out_of_range", "metric%s.value: %g is outside 0..%g%s%s for %s", where,
                     out->value, metrics[m].max, *metrics[m].unit ? " " : "", metrics[m].unit, metrics[m].name);
        return false;
    }
    json_t *id = json_object_get(obj, "id");
    size_t id_len = json_string_length(id);
    out->id = json_string_value(id);
    bool id_ok = out->id != NULL && id_len >= 1 && id_len <= ID_MAX;
    for (size_t k = 0; id_ok && k < id_len; k++)
        id_ok = (unsigned char)out->id[k] > 0x20 && (unsigned char)out->id[k] < 0x7f;
    if (!id_ok) {
        http_problem(res, req, 422, "invalid_beacon", "metric%s.id: expected 1..%d visible ASCII characters", where,
                     ID_MAX);
        return false;
    }
    const char *page_in = json_string_value(json_object_get(obj, "page"));
    if (page_in == NULL || strlen(page_in) != json_string_length(json_object_get(obj, "page")) ||
        !page_normalise(page_in, out->page)) {
        http_problem(res, req, 422, "invalid_beacon", "metric%s.page: expected a path starting with '/'", where);
        return false;
    }
    json_t *rid = json_object_get(obj, "request_id");
    out->request_id[0] = '\0';
    if (rid != NULL && !json_is_null(rid)) {
        size_t n = json_string_length(rid);
        bool ok = json_is_string(rid) && n <= HTTP_REQUEST_ID_MAX;
        for (size_t k = 0; ok && k < n; k++)
            ok = is_token_char(json_string_value(rid)[k]);
        if (!ok) {
            http_problem(res, req, 422, "invalid_beacon",
                         "metric%s.request_id: expected up to %d characters of [A-Za-z0-9._-]", where,
                         HTTP_REQUEST_ID_MAX);
            return false;
        }
        memcpy(out->request_id, json_string_value(rid), n + 1);
    }
    json_t *rating = json_object_get(obj, "rating");
    if (rating != NULL && !json_is_null(rating)) {
        const char *r = json_string_value(rating);
        if (r == NULL || (strcmp(r, "good") != 0 && strcmp(r, "needs-improvement") != 0 && strcmp(r, "poor") != 0)) {
            http_problem(res, req, 422, "invalid_beacon",
                         "metric%s.rating: expected \"good\", \"needs-improvement\" or \"poor\"", where);
            return false;
        }
    }
    json_t *nav = json_object_get(obj, "navigationType");
    if (nav != NULL && !json_is_null(nav)) {
        const char *t = json_string_value(nav);
        bool ok = t != NULL && json_string_length(nav) <= NAV_MAX;
        for (const char *c = t; ok && *c != '\0'; c++)
            ok = (*c >= 'a' && *c <= 'z') || *c == '-';
        if (!ok) {
            http_problem(res, req, 422, "invalid_beacon", "metric%s.navigationType: expected a word of a-z and '-'",
                         where);
            return false;
        }
    }
    /* Of the attribution, only the element's selector is kept (cut, and
     * shown only to operators); delta, entries and the rest are ignored. */
    const char *target = json_string_value(json_object_get(json_object_get(obj, "attribution"), "target"));
    size_t n = 0;
    for (; target != NULL && target[n] != '\0' && n < TARGET_MAX; n++)
        out->target[n] = (unsigned char)target[n] >= 0x20 && (unsigned char)target[n] < 0x7f ? target[n] : '?';
    out->target[n] = '\0';
    return true;
}

static bool content_type_accepted(const char *ct)
{
    if (ct == NULL)
        return false;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 10 && strncasecmp(ct, "text/plain", 10) == 0);
}

static void count(uint64_t *counter)
{
    pthread_mutex_lock(&state.lock);
    (*counter)++;
    pthread_mutex_unlock(&state.lock);
}

static bool rate_limited(const http_request *req, http_response *res, double cost)
{
    pthread_once(&limiter_once, limiter_create);
    ratelimit_client client;
    ratelimit_client_of(req->peer, req->forwarded_for, &client);
    limiter_verdict v;
    if (beacon_limiter == NULL ||
        limiter_take(beacon_limiter, client.key, client.key_len, &beacon_shape, cost, now_ns(), &v))
        return false;
    unsigned retry_after = v.retry_after_s;
    count(&state.counters.rate_limited);
    http_problem(res, req, 429, "rate_limited",
                 "more than %.0f Web Vitals per second from this client (bursts up to %.0f); retry after %u s",
                 VITALS_RATE_PER_S, VITALS_BURST, retry_after);
    http_response_header(res, "retry-after", "%u", retry_after);
    return true;
}

/* Records one validated metric. Locked. */
static void record(const beacon_metric *b)
{
    if (id_seen(b->metric, b->id)) {
        state.counters.duplicates++;
        return;
    }
    double units = round(b->value * metrics[b->metric].scale);
    uint64_t v = units < 0 ? 0 : (uint64_t)units;
    if (vitals_hist_add(&state.all[b->metric], v) != 0)
        return;
    state.counters.accepted++;
    page *p = page_touch(b->page);
    if (p != NULL) {
        size_t before = vitals_hist_bytes(&p->hist[b->metric]);
        if (vitals_hist_add(&p->hist[b->metric], v) == 0)
            p->count++;
        state.page_bytes += vitals_hist_bytes(&p->hist[b->metric]) - before;
        pages_bound(p);
    }
    sample *s = &state.recent[state.recent_next];
    state.recent_next = (state.recent_next + 1) % VITALS_RECENT_SAMPLES;
    if (state.recent_count < VITALS_RECENT_SAMPLES)
        state.recent_count++;
    s->metric = b->metric;
    s->value = b->value;
    s->at_ms = wall_ms();
    memcpy(s->page, b->page, sizeof(s->page));
    memcpy(s->request_id, b->request_id, sizeof(s->request_id));
    memcpy(s->target, b->target, sizeof(s->target));
}

bool vitals_beacon(const http_request *req, http_response *res)
{
    if (req->body_len > VITALS_BODY_MAX) {
        count(&state.counters.rejected);
        http_problem(res, req, 413, "body_too_large", "a Web Vitals beacon is at most %d bytes; this one is %zu",
                     VITALS_BODY_MAX, req->body_len);
        return true;
    }
    if (!content_type_accepted(req->content_type)) {
        count(&state.counters.rejected);
        http_problem(res, req, 415, "unsupported_media_type",
                     "send the beacon as application/json or text/plain (what sendBeacon sends cross-origin)");
        return true;
    }
    if (rate_limited(req, res, 1))
        return true;
    json_error_t err;
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL) {
        count(&state.counters.rejected);
        http_problem(res, req, 400, "invalid_json", "the body is not JSON: %s (line %d, column %d)", err.text, err.line,
                     err.column);
        return true;
    }
    size_t n = json_is_array(doc) ? json_array_size(doc) : 1;
    if (json_is_array(doc) && (n == 0 || n > VITALS_BATCH_MAX)) {
        count(&state.counters.rejected);
        http_problem(res, req, 422, "invalid_beacon", "a batch holds 1..%d metrics; this one holds %zu",
                     VITALS_BATCH_MAX, n);
        json_decref(doc);
        return true;
    }
    beacon_metric batch[VITALS_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        json_t *obj = json_is_array(doc) ? json_array_get(doc, i) : doc;
        if (!read_metric(req, res, obj, json_is_array(doc) ? i : SIZE_MAX, &batch[i])) {
            count(&state.counters.rejected);
            json_decref(doc);
            return true;
        }
    }
    if (n > 1 && rate_limited(req, res, (double)(n - 1))) {
        json_decref(doc);
        return true;
    }
    pthread_mutex_lock(&state.lock);
    for (size_t i = 0; i < n; i++)
        record(&batch[i]);
    pthread_mutex_unlock(&state.lock);
    json_decref(doc);
    http_response_body(res, 204, NULL, NULL, 0);
    return true;
}

/* ---- reading the percentiles ---------------------------------------------------------------- */

static void stats_of(vitals_metric m, const vitals_hist *h, vitals_stats *out)
{
    double scale = metrics[m].scale;
    out->count = h->total;
    out->sum = h->sum / scale;
    out->p50 = vitals_hist_quantile(h, 0.50) / scale;
    out->p75 = vitals_hist_quantile(h, 0.75) / scale;
    out->p95 = vitals_hist_quantile(h, 0.95) / scale;
}

void vitals_stats_get(vitals_metric m, vitals_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (m >= VITALS_METRIC_COUNT)
        return;
    pthread_mutex_lock(&state.lock);
    stats_of(m, &state.all[m], out);
    pthread_mutex_unlock(&state.lock);
}

void vitals_count_le(vitals_metric m, const double *bounds, size_t n, uint64_t *counts)
{
    if (m >= VITALS_METRIC_COUNT)
        return;
    pthread_mutex_lock(&state.lock);
    for (size_t i = 0; i < n; i++)
        counts[i] = vitals_hist_count_le(&state.all[m], bounds[i] * metrics[m].scale);
    pthread_mutex_unlock(&state.lock);
}

void vitals_counters_get(vitals_counters *out)
{
    pthread_mutex_lock(&state.lock);
    *out = state.counters;
    out->pages = state.page_count;
    pthread_mutex_unlock(&state.lock);
}

/* A rounded number: ms to 0.1, CLS to 0.0001 (more is noise). */
static json_t *value_json(vitals_metric m, double v)
{
    double step = m == VITALS_CLS ? 10000 : 10;
    return json_real(round(v * step) / step);
}

static json_t *metric_json(vitals_metric m, const vitals_hist *h)
{
    vitals_stats s;
    stats_of(m, h, &s);
    json_t *o = json_object();
    json_object_set_new(o, "unit", json_string(metrics[m].unit));
    json_object_set_new(o, "count", json_integer((json_int_t)s.count));
    json_object_set_new(o, "p50", s.count ? value_json(m, s.p50) : json_null());
    json_object_set_new(o, "p75", s.count ? value_json(m, s.p75) : json_null());
    json_object_set_new(o, "p95", s.count ? value_json(m, s.p95) : json_null());
    json_object_set_new(o, "rating", s.count ? json_string(vitals_rating(m, s.p75)) : json_null());
    json_object_set_new(o, "thresholds", json_pack("{s:f,s:f}", "good", metrics[m].good, "poor", metrics[m].poor));
    return o;
}

static json_t *metrics_json(const vitals_hist hist[VITALS_METRIC_COUNT])
{
    json_t *o = json_object();
    for (int m = 0; m < VITALS_METRIC_COUNT; m++)
        json_object_set_new(o, metrics[m].name, metric_json((vitals_metric)m, &hist[m]));
    return o;
}

static json_t *page_json(const page *p)
{
    return json_pack("{s:s,s:I,s:o}", "page", p->path, "count", (json_int_t)p->count, "metrics", metrics_json(p->hist));
}

static int by_count_desc(const void *a, const void *b)
{
    const page *x = *(const page *const *)a, *y = *(const page *const *)b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : strcmp(x->path, y->path);
}

static json_t *timestamp_json(int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char text[40];
    size_t n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof(text) - n, ".%03dZ", (int)(ms % 1000));
    return json_string(text);
}

static json_t *recent_json(void)
{
    json_t *list = json_array();
    for (size_t i = 0; i < state.recent_count; i++) {
        size_t at = (state.recent_next + VITALS_RECENT_SAMPLES - 1 - i) % VITALS_RECENT_SAMPLES;
        const sample *s = &state.recent[at];
        json_array_append_new(list, json_pack("{s:s,s:o,s:s,s:s,s:o,s:s,s:o}", "name", metrics[s->metric].name, "value",
                                              value_json(s->metric, s->value), "rating",
                                              vitals_rating(s->metric, s->value), "page", s->page, "request_id",
                                              s->request_id[0] ? json_string(s->request_id) : json_null(), "target",
                                              s->target, "at", timestamp_json(s->at_ms)));
    }
    return list;
}

json_t *vitals_summary_json(void)
{
    static const page *order[VITALS_PAGES_MAX];
    pthread_mutex_lock(&state.lock);
    size_t n = 0;
    for (const page *p = state.newest; p != NULL && n < VITALS_PAGES_MAX; p = p->older)
        order[n++] = p;
    qsort(order, n, sizeof(order[0]), by_count_desc);
    json_t *pages = json_array();
    for (size_t i = 0; i < n && i < SUMMARY_PAGES; i++)
        json_array_append_new(pages, page_json(order[i]));
    json_t *doc = json_pack("{s:o,s:o,s:I,s:i,s:{s:I,s:I,s:I,s:I},s:o}", "metrics", metrics_json(state.all), "pages",
                            pages, "pages_tracked", (json_int_t)state.page_count, "pages_max", VITALS_PAGES_MAX,
                            "beacons", "accepted", (json_int_t)state.counters.accepted, "duplicates",
                            (json_int_t)state.counters.duplicates, "rejected", (json_int_t)state.counters.rejected,
                            "rate_limited", (json_int_t)state.counters.rate_limited, "recent", recent_json());
    pthread_mutex_unlock(&state.lock);
    return doc;
}

json_t *vitals_page_json(const char *path)
{
    char normal[VITALS_PAGE_MAX + 1];
    if (path == NULL || !page_normalise(path, normal))
        return NULL;
    pthread_mutex_lock(&state.lock);
    const page *p = page_find(normal, XXH3_64bits(normal, strlen(normal)));
    json_t *doc = p != NULL ? page_json(p) : NULL;
    pthread_mutex_unlock(&state.lock);
    return doc;
}

void vitals_reset(void)
{
    pthread_mutex_lock(&state.lock);
    while (state.oldest != NULL)
        page_drop(state.oldest);
    for (int m = 0; m < VITALS_METRIC_COUNT; m++)
        vitals_hist_free(&state.all[m]);
    memset(state.ids, 0, sizeof(state.ids));
    state.current = 0;
    state.recent_next = state.recent_count = 0;
    memset(&state.counters, 0, sizeof(state.counters));
    state.page_bytes = 0;
    pthread_mutex_unlock(&state.lock);
    pthread_once(&limiter_once, limiter_create);
    limiter_free(&beacon_limiter);
    beacon_limiter = limiter_new(VITALS_LIMITER_SLOTS, true);
}

/*
 * views.c — view beacons, counted write-behind.
 *
 * A beacon for an item whose representation is in the cache is counted on
 * the loop thread without touching the database; otherwise a worker checks
 * that the item is published first (404 if not). Counts gather in a small
 * map under one mutex and are written by a periodic task
 * (views.flush_interval_ms) in one transaction, after which the viewed
 * items and the sites' popular lists are invalidated so they refill from
 * the new counts. Up to
 * one interval of counts can be lost if the process is killed: they are
 * analytics, and a graceful stop flushes them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "content/api.h"
#include "content/content.h"
#include "core/limiter.h"
#include "core/log.h"
#include "http/ratelimit.h"

typedef struct view_slot {
    char site[65]; /* "" marks an empty slot */
    int64_t item_id;
    int64_t count;
} view_slot;

/* Open addressing, linear probing, at most half full. */
static pthread_mutex_t views_lock = PTHREAD_MUTEX_INITIALIZER;
static view_slot *slots;
static size_t slot_count, slot_capacity;

#define VIEWS_MAX_PENDING 100000 /* distinct items between flushes; beyond, beacons are dropped */

static size_t slot_index(const char *site, int64_t id, size_t capacity)
{
    uint64_t h = XXH3_64bits(site, strlen(site)) ^ ((uint64_t)id * 0x9E3779B97F4A7C15ULL);
    size_t i = (size_t)h & (capacity - 1);
    while (slots[i].site[0] != '\0' && !(slots[i].item_id == id && strcmp(slots[i].site, site) == 0))
        i = (i + 1) & (capacity - 1);
    return i;
}

static bool views_grow(void)
{
    size_t capacity = slot_capacity ? slot_capacity * 2 : 256;
    view_slot *old = slots;
    size_t old_capacity = slot_capacity;
    view_slot *grown = calloc(capacity, sizeof(*grown));
    if (grown == NULL)
        return false;
    slots = grown;
    slot_capacity = capacity;
    for (size_t i = 0; i < old_capacity; i++)
        if (old[i].site[0] != '\0')
            slots[slot_index(old[i].site, old[i].item_id, capacity)] = old[i];
    free(old);
    return true;
}

void views_count(const char *site, int64_t id)
{
    if (site[0] == '\0' || strlen(site) >= sizeof(slots[0].site))
        return;
    pthread_mutex_lock(&views_lock);
    if ((slot_count + 1) * 2 > slot_capacity && (slot_count >= VIEWS_MAX_PENDING || !views_grow())) {
        pthread_mutex_unlock(&views_lock);
        return;
    }
    view_slot *s = &slots[slot_index(site, id, slot_capacity)];
    if (s->site[0] == '\0') {
        strcpy(s->site, site);
        s->item_id = id;
        slot_count++;
    }
    s->count++;
    pthread_mutex_unlock(&views_lock);
}

void content_flush_views(store_t *store)
{
    pthread_mutex_lock(&views_lock);
    view_slot *table = slots;
    size_t capacity = slot_capacity, n = slot_count;
    slots = NULL;
    slot_count = slot_capacity = 0;
    pthread_mutex_unlock(&views_lock);
    if (n == 0) {
        free(table);
        return;
    }
    /* compact the table into the list of counts */
    view_slot *taken = table;
    for (size_t i = 0, k = 0; i < capacity; i++)
        if (table[i].site[0] != '\0')
            taken[k++] = table[i];

    store_view_count *counts = calloc(n, sizeof(*counts));
    size_t m = 0;
    for (size_t i = 0; counts != NULL && i < n; i++) {
        int64_t site_id;
        if (store_site_lookup(store, taken[i].site, &site_id) != STORE_OK)
            continue;
        counts[m++] = (store_view_count){.site_id = site_id, .item_id = taken[i].item_id, .count = taken[i].count};
    }
    size_t applied = 0;
    int rc = counts != NULL ? store_views_add_batch(store, counts, m, store_now_ms(), &applied) : STORE_ERROR;
    if (rc != STORE_OK) {
        log_event_str(LOG_WARN, "view counts could not be written; they are dropped", "error", store_errmsg(store));
    } else {
        /* The database moved: the items' representations (which show their
         * view count) and the sites' popular lists go. A hot item is then
         * refilled once per flush interval, by one request. */
        char tag[160];
        lsn_t written = store_commit_lsn(store); /* a refill must see the new counts */
        for (size_t i = 0; i < n; i++) {
            snprintf(tag, sizeof(tag), "%s:item:%lld", taken[i].site, (long long)taken[i].item_id);
            http_cache_invalidate_tag(tag, written);
        }
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = strcmp(taken[k].site, taken[i].site) == 0;
            if (!seen) {
                snprintf(tag, sizeof(tag), "%s:popular", taken[i].site);
                http_cache_invalidate_tag(tag, written);
            }
        }
    }
    free(counts);
    free(taken);
}

/* ---- per client: a bucket, and one count per item and window --------------------------- */

#define DEDUPE_SLOTS 65536
#define DEDUPE_WAYS 4
#define BEACON_SLOTS 16384

typedef struct seen_view {
    uint64_t key; /* hash of client, site and item; 0: free */
    uint64_t at_ms;
} seen_view;

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static seen_view seen[DEDUPE_SLOTS];
static pthread_once_t beacon_once = PTHREAD_ONCE_INIT;
static limiter *beacon_limiter;

static void beacon_limiter_create(void)
{
    beacon_limiter = limiter_new(BEACON_SLOTS, true);
}

/* True if the client's view of the item counted within the window; else
 * the view is remembered as counted now. */
static bool view_repeated(const ratelimit_client *client, const char *site, int64_t id, uint64_t window_ms)
{
    char text[RATELIMIT_KEY_MAX + 64 + 1 + 20];
    size_t n = client->key_len;
    memcpy(text, client->key, n);
    n += (size_t)snprintf(text + n, sizeof(text) - n, "%s/%lld", site, (long long)id); /* "01" is 1 */
    uint64_t key = XXH3_64bits(text, n < sizeof(text) ? n : sizeof(text) - 1) | 1;
    uint64_t now = limiter_now_ns() / 1000000;
    pthread_mutex_lock(&seen_lock);
    seen_view *set = &seen[(key % (DEDUPE_SLOTS / DEDUPE_WAYS)) * DEDUPE_WAYS], *slot = &set[0];
    for (int i = 0; i < DEDUPE_WAYS; i++) {
        if (set[i].key == key) {
            slot = &set[i];
            break;
        }
        if (set[i].at_ms < slot->at_ms)
            slot = &set[i];
    }
    bool repeated = slot->key == key && now - slot->at_ms < window_ms;
    if (!repeated)
        *slot = (seen_view){.key = key, .at_ms = now};
    pthread_mutex_unlock(&seen_lock);
    return repeated;
}

/* The client's bucket and the dedupe: false when the beacon is answered
 * here (429, or 204 for a repeat); true when it is to be counted. */
static bool beacon_admitted(const http_request *req, http_response *res)
{
    const strata_config *cfg = api_config();
    ratelimit_client client;
    ratelimit_client_of(req->peer, req->forwarded_for, &client);
    if (cfg == NULL || client.proxy_own || client.key_len == 0)
        return true;
    limiter_rate shape = {cfg->views_client_rps, cfg->views_client_burst > cfg->views_client_rps
                                                     ? cfg->views_client_burst
                                                     : cfg->views_client_rps};
    limiter_verdict v;
    pthread_once(&beacon_once, beacon_limiter_create);
    if (shape.rate > 0 && beacon_limiter != NULL &&
        !limiter_take(beacon_limiter, client.key, client.key_len, &shape, 1, limiter_now_ns(), &v)) {
        ratelimit_problem(res, req, "views", &shape, &v, "view beacons from this client address");
        return false;
    }
    if (cfg->views_dedupe_window_s > 0 && view_repeated(&client, req->params[0], strtoll(req->params[1], NULL, 10),
                                                        (uint64_t)cfg->views_dedupe_window_s * 1000)) {
        res->status = 204; /* counted once already */
        return false;
    }
    return true;
}

/* Loop thread: every beacon passes the client's checks here; one for an
 * item the cache holds then needs no database. */
bool handle_view_cached(const http_request *req, http_response *res)
{
    const char *site = req->params[0], *id = req->params[1];
    if (!api_is_word(site, req->param_len[0], 64) || strspn(id, "0123456789") != req->param_len[1] ||
        req->param_len[1] == 0 || req->param_len[1] > 18)
        return false;
    if (!beacon_admitted(req, res))
        return true;
    char path[128];
    snprintf(path, sizeof(path), "/v1/%s/content/%s", site, id);
    if (!http_cache_holds(path))
        return false;
    views_count(site, strtoll(id, NULL, 10));
    res->status = 204;
    return true;
}

void handle_view(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!api_resolve_site(&c) || !api_param_id(&c, 1, "the item id", &id))
        return;
    int rc = store_item_is_published(store, c.site_id, id);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    views_count(c.site, id);
    res->status = 204;
}

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
#include "core/log.h"

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
        for (size_t i = 0; i < n; i++) {
            snprintf(tag, sizeof(tag), "%s:item:%lld", taken[i].site, (long long)taken[i].item_id);
            http_cache_invalidate_tag(tag);
        }
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = strcmp(taken[k].site, taken[i].site) == 0;
            if (!seen) {
                snprintf(tag, sizeof(tag), "%s:popular", taken[i].site);
                http_cache_invalidate_tag(tag);
            }
        }
    }
    free(counts);
    free(taken);
}

/* Loop thread: a beacon for an item the cache holds needs no database. */
bool handle_view_cached(const http_request *req, http_response *res)
{
    const char *site = req->params[0], *id = req->params[1];
    if (!api_is_word(site, req->param_len[0], 64) || strspn(id, "0123456789") != req->param_len[1] ||
        req->param_len[1] == 0 || req->param_len[1] > 18)
        return false;
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

/*
 * objects.c — the object cache's one engine instance (objects.h).
 *
 * A second cache_t rather than a structure of its own: it already has what
 * the object cache needs — a byte bound with S3-FIFO admission (a crawler's
 * one-off reads do not push out the rows everyone reads), tags with epoch
 * fences, per-thread-safe shards and stats. Entries never go stale (a key
 * names an immutable version), so they are fresh for a day and then simply
 * gone; memory, not time, is what evicts them.
 */
#include "cache/objects.h"

#include <time.h>

enum { OBJECT_FRESH_MS = 24 * 3600 * 1000 };

static cache *objects;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool object_cache_configure(bool enabled, size_t max_bytes)
{
    if (objects != NULL)
        cache_destroy(&objects);
    if (!enabled || max_bytes == 0)
        return true;
    /* 16 shards: a shard's budget bounds the largest entry (an item of up
     * to max_bytes / 16), and reads spread over 16 locks. */
    objects = cache_create(&(cache_options){.max_bytes = max_bytes, .shard_count = 16});
    return objects != NULL;
}

bool object_cache_enabled(void)
{
    return objects != NULL;
}

uint64_t object_cache_epoch(void)
{
    return objects ? cache_epoch(objects) : 0;
}

cache_entry *object_cache_get(const void *key, size_t key_len)
{
    cache_entry *e = NULL;
    if (objects == NULL)
        return NULL;
    if (cache_get(objects, 0, key, key_len, now_ms(), &e) == CACHE_FRESH)
        return e;
    if (e != NULL)
        cache_entry_release(&e);
    return NULL;
}

void object_cache_put(const void *key, size_t key_len, void *value, size_t charge, void (*free_value)(void *),
                      const char *const *tags, size_t tag_count, uint64_t epoch)
{
    if (objects == NULL) {
        free_value(value);
        return;
    }
    cache_value v = {.value = value,
                     .free_value = free_value,
                     .charge = charge,
                     .tags = tags,
                     .tag_count = tag_count,
                     .fresh_ms = OBJECT_FRESH_MS};
    (void)cache_insert(objects, 0, key, key_len, &v, epoch, now_ms());
}

void object_cache_invalidate_tag(const char *tag)
{
    if (objects != NULL)
        (void)cache_invalidate_tag(objects, tag);
}

void object_cache_clear(void)
{
    if (objects != NULL)
        (void)cache_clear(objects);
}

void object_cache_get_stats(object_cache_stats *out)
{
    *out = (object_cache_stats){.enabled = objects != NULL};
    if (objects == NULL)
        return;
    cache_stats s;
    cache_get_stats(objects, UINT32_MAX, &s);
    out->hits = s.hits;
    out->misses = s.misses;
    out->inserts = s.inserts;
    out->evictions = s.evictions;
    out->invalidations = s.invalidations;
    out->entries = s.entries;
    out->bytes = s.bytes;
    out->max_bytes = cache_max_bytes(objects);
}

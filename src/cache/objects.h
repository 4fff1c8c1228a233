/*
 * objects.h — the object cache: hydrated item rows under the response
 * cache (SPEC's "query cache"), shared by item fills, list fills and
 * editors' reads, which the response cache does not serve.
 *
 * One process-wide cache engine (cache.h) of its own, apart from the
 * response cache's budget. The engine knows nothing of items: src/content
 * (objects.c there) decides keys and values. Its keys name one version of
 * a row (store/item_text.h's stamp), so an entry never changes once made
 * and a read can never find an old row under a new key; entries are still
 * tagged like responses (<site>:item:<id>, <site>:all) and dropped in the
 * same step as them (response_cache.c calls object_cache_invalidate_tag
 * for every invalidation made here or heard from the bus), which frees
 * their memory and covers an id SQLite hands out again after a delete.
 *
 * Safe from any thread once object_cache_configure has run (before the
 * server starts); with it never run, or run disabled, every call is a
 * no-op and every lookup a miss that is not counted.
 */
#ifndef STRATA_CACHE_OBJECTS_H
#define STRATA_CACHE_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

/* Once, before serving. max_bytes bounds the entries (the engine's own
 * bytes per entry included). False when out of memory. */
bool object_cache_configure(bool enabled, size_t max_bytes);
bool object_cache_enabled(void);

/* The fence for a fill: read before the database, passed to the put. */
uint64_t object_cache_epoch(void);

/* A reference to the entry under key (release it with
 * cache_entry_release), or NULL; counted as a hit or a miss. */
cache_entry *object_cache_get(const void *key, size_t key_len);

/* Stores value (object_cache takes it over, as cache_insert) under key
 * with its tags, unless one of them was invalidated after epoch. */
void object_cache_put(const void *key, size_t key_len, void *value, size_t charge, void (*free_value)(void *),
                      const char *const *tags, size_t tag_count, uint64_t epoch);

/* Drops the entries tagged tag; object_cache_clear drops all. */
void object_cache_invalidate_tag(const char *tag);
void object_cache_clear(void);

typedef struct object_cache_stats {
    bool enabled;
    uint64_t hits, misses, inserts, evictions, invalidations, entries, bytes, max_bytes;
} object_cache_stats;
void object_cache_get_stats(object_cache_stats *out);

#endif

/*
 * content.h — the content API: strata's routes and what they do.
 *
 * src/content turns HTTP requests into repository calls and repository
 * results into representations: it owns the route table, authentication by
 * bearer token, input validation, keyset cursors and the mapping of store
 * failures to problem+json statuses. It holds no SQL (src/store does) and no
 * socket code (src/http does).
 */
#ifndef STRATA_CONTENT_H
#define STRATA_CONTENT_H

#include <stddef.h>

#include "config/config.h"
#include "http/http.h"
#include "store/store.h"

/* A content handler: a worker handler run with the worker's store (the HTTP
 * layer passes it as void *; routes.c's adapters convert). */
typedef void (*content_handler)(const http_request *req, store_t *store, http_response *res);

/* The data classes of the cached routes (routes.c's rules): the index of
 * each one's lifetimes in the configuration (cache.item_*, cache.list_*,
 * …, in config.c's order). */
enum content_cache_class {
    CACHE_CLASS_ITEM = 0,
    CACHE_CLASS_LIST = 1,
    CACHE_CLASS_POPULAR = 2,
    CACHE_CLASS_CATEGORIES = 3,
};
_Static_assert(CACHE_CLASS_CATEGORIES + 1 == CACHE_CLASS_COUNT, "a data class without its settings (config.c)");

extern const http_route content_routes[];
extern const size_t content_route_count;

/* Once, before serving: keeps the configuration the handlers read. */
void content_init(const strata_config *cfg);

/* Per worker thread, after its store opened: loads the signing secret. */
int content_worker_init(store_t *store);

/* On a worker after the server listens: warms every site's cache. */
void content_on_start(store_t *store);
/* Before jobs_start: registers the history jobs ("diff", "retention",
 * "compress"; src/content/history.c). */
void history_jobs_register(void);
/* Before jobs_start: registers "scheduled" (scheduled publishing,
 * src/content/schedules.c). */
void schedules_jobs_register(void);

/* Periodic: writes the view counts gathered in memory (write-behind). */
void content_flush_views(store_t *store);
/* The history's figures for the monitoring: {"cache":{"hits","misses",
 * "hit_ratio","entries","bytes","max_bytes"},"sites":{"main":{"versions",
 * "stored_bytes"},…},"counted_at"}; the per-site counts are at most
 * HISTORY_TOTALS_MAX_AGE_MS old (one aggregate query, then remembered). */
json_t *history_stats_json(store_t *store);

/* After alerts_configure: the sources of the alerts' quantities only
 * content can measure (db_disk_full). */
void monitoring_alerts_register(void);

/* Periodic: writes tokens' last uses, at most one a token a minute. */
void tokens_flush_uses(store_t *store);
/* The response cache's watcher (http_cache_watch): a revoked token's tag
 * drops it from memory; NULL drops every token. */
void tokens_watch(const char *tag);

/* Token text for a new API token ("st_" + 43 base64url characters) and the
 * hash under which it is stored. */
#define CONTENT_TOKEN_TEXT_MAX 64
int content_token_generate(char text[CONTENT_TOKEN_TEXT_MAX], uint8_t hash[32]);

#endif

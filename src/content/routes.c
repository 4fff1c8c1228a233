/*
 * routes.c — the route table of the content API (docs/api.md).
 *
 * Order matters only where two patterns could match one path: literal
 * segments ("by-slug", "cache") come before a capture in the same place.
 * Health and the OpenAPI document are answered on the loop thread;
 * everything that reads or writes content goes to a worker, except cache
 * hits, which the HTTP layer answers itself for routes with a cache rule.
 *
 * A cache rule names the data class (its lifetimes come from the
 * configuration) and every query parameter the handler reads, with its
 * default, sorted by name: exactly what makes two requests the same
 * response. The handler reads those parameters from the same rows
 * (api_query_param*), so the default it assumes is the one keyed here.
 * A rule also names the path captures that are integers, so every
 * spelling of an id ("0001", "%30001") is one key.
 */
#include <string.h>

#include "content/api.h"
#include "content/content.h"
#include "content/field_filters.h"
#include "vitals/vitals.h"
#include "web/web.h"

/* docs/openapi.yaml, linked into the binary by openapi_blob.S. */
extern const char openapi_yaml[];
extern const char openapi_yaml_end[];

static bool handle_healthz(const http_request *req, http_response *res)
{
    (void)req;
    http_response_copy(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
    return true;
}

static bool handle_openapi(const http_request *req, http_response *res)
{
    (void)req;
    http_response_copy(res, 200, "application/yaml", openapi_yaml, (size_t)(openapi_yaml_end - openapi_yaml));
    return true;
}

/* The cacheable parameters, one row each, indexed by the enums of api.h
 * (in name order, as the cache rule needs); the handlers read their
 * defaults from here. */
const http_cache_param list_params[LIST_PARAM_COUNT] = {
    [LIST_PARAM_CATEGORY] = {"category", "", false, false, false},
    [LIST_PARAM_CURSOR] = {"cursor", "", false, false, false},
    [LIST_PARAM_INCLUDE] = {"include", "", false, true, true},
    [LIST_PARAM_LIMIT] = {"limit", "20", true, false, false},
    [LIST_PARAM_Q] = {"q", "", false, false, false},         /* full-text search (search.c) */
    [LIST_PARAM_SELECT] = {"select", "", false, true, true}, /* a set of member names */
    /* relevance: by rank with q; without, the list's -published_at (search.c) */
    [LIST_PARAM_SORT] = {"sort", "relevance", false, false, false},
    [LIST_PARAM_STATUS] = {"status", "published", false, false, false},
    [LIST_PARAM_TAG] = {"tag", "", false, true, false}, /* tags are compared lowercased */
    [LIST_PARAM_TYPE] = {"type", "", false, false, false},
};
const http_cache_param popular_params[POPULAR_PARAM_COUNT] = {
    [POPULAR_PARAM_LIMIT] = {"limit", "10", true, false, false},
    [POPULAR_PARAM_TYPE] = {"type", "", false, false, false},
    [POPULAR_PARAM_WINDOW] = {"window", "24h", false, false, false},
};
const http_cache_param item_params[ITEM_PARAM_COUNT] = {
    [ITEM_PARAM_INCLUDE] = {"include", "", false, true, true},
    [ITEM_PARAM_SELECT] = {"select", "", false, true, true},
};

/* Whether the request's query has a non-empty `name` (its value, when it
 * fits, in value). */
static bool query_has(const http_request *req, const char *name, char *value, size_t size)
{
    long n = req->query != NULL ? http_query_value(req->query, strlen(req->query), name, value, size) : -1;
    return n > 0 || n == -2; /* -2: longer than value holds */
}

/* A list filtered on fields is a bounded read when each filter is an
 * equality in the default order: the field's index (site, type, status,
 * value, published_at, id) is walked in order for a page and stops. So is
 * a range on one field with few values (store/lists.c reads it value by
 * value, a walk each), which only the store can tell: a range runs on the
 * loop, and a range the store finds it must sort (too many values, or
 * with a tag or category) asks for a worker (STORE_UNBOUNDED,
 * http_response.needs_worker). An [in] or another sort always reads every
 * match that the filter keeps and sorts them (store/field_filters.c):
 * such a list goes to the pool, with its deadline and shedding, at once. */
static bool filter_on_fields_is_unbounded(const http_request *req)
{
    char value[16];
    if (strstr(req->query, "[in]") != NULL || strcasestr(req->query, "%5bin%5d") != NULL ||
        strcasestr(req->query, "[in%5d") != NULL || strcasestr(req->query, "%5bin]") != NULL)
        return true;
    return query_has(req, "sort", value, sizeof value) && strcmp(value, "-published_at") != 0 &&
           strcmp(value, "relevance") != 0;
}

/* Whether a list request is no bounded read after all (http.h). A list
 * filtered on fields: as above. A search (?q=) is a bounded read in relevance order alone: each tier's
 * walk of the index stops after a page (store/search.c), and a page costs
 * about three list pages. With a type, category or tag it may walk every
 * match that the filter then refuses, and another sort reads every match:
 * such a search goes to the pool (its fills' budget, deadline and
 * shedding) rather than the loop. */
static bool list_is_unbounded(const http_request *req)
{
    char value[16];
    if (req->query != NULL && (strstr(req->query, "fields.") != NULL || strcasestr(req->query, "fields%2e") != NULL))
        return filter_on_fields_is_unbounded(req);
    if (!query_has(req, "q", value, 2))
        return false;
    return query_has(req, "type", value, 2) || query_has(req, "category", value, 2) ||
           query_has(req, "tag", value, 2) ||
           (query_has(req, "sort", value, sizeof value) && strcmp(value, "relevance") != 0);
}

/* Captures: 0 is the site; 1 the item id (an integer) or the type. */
static const http_cache_rule item_rule = {CACHE_CLASS_ITEM, 1u << 1, item_params, ITEM_PARAM_COUNT, NULL, NULL};
static const http_cache_rule slug_rule = {CACHE_CLASS_ITEM, 0, item_params, ITEM_PARAM_COUNT, NULL, NULL};
static const http_cache_rule list_rule = {CACHE_CLASS_LIST, 0, list_params, LIST_PARAM_COUNT, field_filters_cache_key,
                                          list_is_unbounded};
static const http_cache_rule popular_rule = {CACHE_CLASS_POPULAR, 0, popular_params, POPULAR_PARAM_COUNT, NULL, NULL};
static const http_cache_rule categories_rule = {CACHE_CLASS_CATEGORIES, 0, NULL, 0, NULL, NULL};

/* The HTTP layer runs a worker handler with its worker's resource as a
 * void * (http.h knows no SQL): for strata that is the worker's store_t
 * (main.c's worker_open). Each handler keeps its store_t signature; an
 * adapter per handler makes the conversion, in this one place. */
#define ON_WORKER(name)                                                                                                \
    static void name##_on_worker(const http_request *req, void *worker, http_response *res)                            \
    {                                                                                                                  \
        name(req, worker, res);                                                                                        \
    }

ON_WORKER(handle_readyz)
ON_WORKER(handle_metrics)
ON_WORKER(handle_performance_metrics)
ON_WORKER(handle_vitals_summary)
ON_WORKER(handle_preview)
ON_WORKER(handle_cache_stats)
ON_WORKER(handle_jobs_stats)
ON_WORKER(handle_slow_queries)
ON_WORKER(handle_alerts)
ON_WORKER(handle_debug_faults)
ON_WORKER(handle_get_by_slug)
ON_WORKER(handle_list)
ON_WORKER(handle_create)
ON_WORKER(handle_get)
ON_WORKER(handle_save)
ON_WORKER(handle_delete)
ON_WORKER(handle_get_draft)
ON_WORKER(handle_publish)
ON_WORKER(handle_unpublish)
ON_WORKER(handle_preview_create)
ON_WORKER(handle_versions_list)
ON_WORKER(handle_version_get)
ON_WORKER(handle_version_restore)
ON_WORKER(handle_diff)
ON_WORKER(handle_autosave_put)
ON_WORKER(handle_autosave_get)
ON_WORKER(handle_popular)
ON_WORKER(handle_categories)
ON_WORKER(handle_category_create)
ON_WORKER(handle_preview_revoke)
ON_WORKER(handle_cache_invalidate)
ON_WORKER(handle_cache_warm)
ON_WORKER(handle_cache_flush)
ON_WORKER(handle_view)
ON_WORKER(handle_schedule_get)
ON_WORKER(handle_schedule_put)
ON_WORKER(handle_tokens_list)
ON_WORKER(handle_tokens_create)
ON_WORKER(handle_tokens_revoke)
ON_WORKER(handle_webhooks_list)
ON_WORKER(handle_webhooks_create)
ON_WORKER(handle_webhook_get)
ON_WORKER(handle_webhook_delete)
ON_WORKER(handle_webhook_test)
ON_WORKER(handle_webhook_deliveries)
ON_WORKER(handle_field_indexes_list)
ON_WORKER(handle_field_indexes_create)
ON_WORKER(handle_field_indexes_drop)

#define WORKER(h) h##_on_worker, NULL, false
#define LOOP(h) NULL, h, false
/* An item, a page of a list or the categories: one indexed statement (two
 * at most), never a scan or a sort of the whole site (their plans are
 * checked by test_query_plans), so they may run on an event loop. */
#define BOUNDED_READ(h) h##_on_worker, NULL, true

const http_route content_routes[] = {
    {HTTP_GET, "/healthz", LOOP(handle_healthz), NULL},
    {HTTP_GET, "/readyz", WORKER(handle_readyz), NULL},
    {HTTP_GET, "/openapi.yaml", LOOP(handle_openapi), NULL},
    {HTTP_GET, "/metrics", WORKER(handle_metrics), NULL},
    {HTTP_GET, "/api/performance/metrics", WORKER(handle_performance_metrics), NULL},
    {HTTP_POST, "/api/performance/metrics", LOOP(vitals_beacon), NULL},
    {HTTP_GET, "/api/performance/vitals", WORKER(handle_vitals_summary), NULL},
    {HTTP_GET, "/vitals.js", LOOP(web_vitals_js), NULL},
    {HTTP_GET, "/dashboard", LOOP(web_dashboard), NULL},
    {HTTP_GET, "/dashboard.js", LOOP(web_dashboard_js), NULL},
    {HTTP_GET, "/dashboard.css", LOOP(web_dashboard_css), NULL},
    {HTTP_GET, "/preview/:token", WORKER(handle_preview), NULL},
    {HTTP_GET, "/v1/cache/stats", WORKER(handle_cache_stats), NULL},
    {HTTP_GET, "/v1/jobs", WORKER(handle_jobs_stats), NULL},
    {HTTP_GET, "/v1/slow-queries", WORKER(handle_slow_queries), NULL},
    {HTTP_GET, "/v1/alerts", WORKER(handle_alerts), NULL},
    {HTTP_POST, "/v1/debug/faults", WORKER(handle_debug_faults), NULL},
    {HTTP_GET, "/v1/:site/content/by-slug/:type/:slug", BOUNDED_READ(handle_get_by_slug), &slug_rule},
    {HTTP_GET, "/v1/:site/content", BOUNDED_READ(handle_list), &list_rule},
    {HTTP_POST, "/v1/:site/content", WORKER(handle_create), NULL},
    {HTTP_GET, "/v1/:site/content/:id", BOUNDED_READ(handle_get), &item_rule},
    {HTTP_PUT, "/v1/:site/content/:id", WORKER(handle_save), NULL},
    {HTTP_DELETE, "/v1/:site/content/:id", WORKER(handle_delete), NULL},
    {HTTP_GET, "/v1/:site/content/:id/draft", WORKER(handle_get_draft), NULL},
    {HTTP_POST, "/v1/:site/content/:id/publish", WORKER(handle_publish), NULL},
    {HTTP_GET, "/v1/:site/content/:id/schedule", WORKER(handle_schedule_get), NULL},
    {HTTP_PUT, "/v1/:site/content/:id/schedule", WORKER(handle_schedule_put), NULL},
    {HTTP_POST, "/v1/:site/content/:id/unpublish", WORKER(handle_unpublish), NULL},
    {HTTP_POST, "/v1/:site/content/:id/previews", WORKER(handle_preview_create), NULL},
    {HTTP_GET, "/v1/:site/content/:id/versions", WORKER(handle_versions_list), NULL},
    {HTTP_GET, "/v1/:site/content/:id/versions/:n", WORKER(handle_version_get), NULL},
    {HTTP_POST, "/v1/:site/content/:id/versions/:n/restore", WORKER(handle_version_restore), NULL},
    {HTTP_GET, "/v1/:site/content/:id/diff", WORKER(handle_diff), NULL},
    {HTTP_POST, "/v1/:site/content/:id/autosave", WORKER(handle_autosave_put), NULL},
    {HTTP_GET, "/v1/:site/content/:id/autosave", WORKER(handle_autosave_get), NULL},
    {HTTP_POST, "/v1/:site/content/:id/views", handle_view_on_worker, handle_view_cached, false, NULL},
    {HTTP_GET, "/v1/:site/popular", WORKER(handle_popular), &popular_rule},
    {HTTP_GET, "/v1/:site/categories", BOUNDED_READ(handle_categories), &categories_rule},
    {HTTP_POST, "/v1/:site/categories", WORKER(handle_category_create), NULL},
    {HTTP_DELETE, "/v1/:site/previews/:token", WORKER(handle_preview_revoke), NULL},
    {HTTP_POST, "/v1/:site/cache/invalidate", WORKER(handle_cache_invalidate), NULL},
    {HTTP_POST, "/v1/:site/cache/warm", WORKER(handle_cache_warm), NULL},
    {HTTP_DELETE, "/v1/:site/cache", WORKER(handle_cache_flush), NULL},
    {HTTP_GET, "/v1/:site/tokens", WORKER(handle_tokens_list), NULL},
    {HTTP_POST, "/v1/:site/tokens", WORKER(handle_tokens_create), NULL},
    {HTTP_DELETE, "/v1/:site/tokens/:id", WORKER(handle_tokens_revoke), NULL},
    {HTTP_GET, "/v1/:site/webhooks", WORKER(handle_webhooks_list), NULL},
    {HTTP_POST, "/v1/:site/webhooks", WORKER(handle_webhooks_create), NULL},
    {HTTP_GET, "/v1/:site/webhooks/:id", WORKER(handle_webhook_get), NULL},
    {HTTP_DELETE, "/v1/:site/webhooks/:id", WORKER(handle_webhook_delete), NULL},
    {HTTP_POST, "/v1/:site/webhooks/:id/test", WORKER(handle_webhook_test), NULL},
    {HTTP_GET, "/v1/:site/webhooks/:id/deliveries", WORKER(handle_webhook_deliveries), NULL},
    {HTTP_GET, "/v1/:site/field-indexes", WORKER(handle_field_indexes_list), NULL},
    {HTTP_POST, "/v1/:site/field-indexes", WORKER(handle_field_indexes_create), NULL},
    {HTTP_DELETE, "/v1/:site/field-indexes/:type/:field", WORKER(handle_field_indexes_drop), NULL},
};

const size_t content_route_count = sizeof(content_routes) / sizeof(content_routes[0]);

/*
 * cache_tags.c — what each cached response is tagged with, and what a write
 * invalidates. The scheme (docs/caching.md):
 *
 *   <site>:all            every cached response of the site (flush = one tag)
 *   <site>:item:<id>      an item by id or by slug
 *   <site>:lists          every list page
 *   <site>:type:<t>, <site>:category:<c>, <site>:tag:<t>   filtered list pages
 *   <site>:popular, <site>:categories
 *
 * A list page shows summaries of many items in an order that any publish
 * can change, so an item write drops every list page of its site rather
 * than guessing which pages held it; lists refill through single flights,
 * one database query per page. The finer list tags are for operators and
 * for CDNs (Surrogate-Key).
 *
 * Negative answers (reads.c) carry the tags of what would end them: a 404
 * by id <site>:item:<id>, a 404 by slug and an empty list page
 * <site>:lists. The item write that makes them wrong (a publish, a
 * restore) invalidates both here, before it is answered, like any entry.
 */
#include <stdio.h>
#include <string.h>

#include "content/api.h"
#include "core/fmt.h"
#include "core/log.h"
#include "jobs/jobs.h"

/* "<site>:<what>[:<name>]", put together without printf (every fill
 * tags its response). */
static void tag_of(http_response *res, const char *site, const char *what, const char *name)
{
    const char *parts[] = {site, ":", what, ":", name};
    http_response_tag_parts(res, parts, name != NULL ? 5 : 3);
}

void api_tag_item(http_response *res, const char *site, int64_t id)
{
    char digits[24];
    digits[fmt_i64(digits, id)] = '\0';
    tag_of(res, site, "all", NULL);
    tag_of(res, site, "item", digits);
}

void api_tag_list(http_response *res, const char *site, const char *type, const char *category, const char *tag)
{
    tag_of(res, site, "all", NULL);
    tag_of(res, site, "lists", NULL);
    if (type != NULL)
        tag_of(res, site, "type", type);
    if (category != NULL)
        tag_of(res, site, "category", category);
    if (tag != NULL)
        tag_of(res, site, "tag", tag);
}

void api_tag_named(http_response *res, const char *site, const char *name)
{
    tag_of(res, site, "all", NULL);
    tag_of(res, site, name, NULL);
}

void api_invalidate_item(api_ctx *c, int64_t id)
{
    static const char *const shared[] = {"lists", "popular", "categories"};
    enum { SHARED = sizeof(shared) / sizeof(shared[0]) };
    char tags[1 + SHARED][160];
    const char *keys[1 + SHARED];
    snprintf(tags[0], sizeof tags[0], "%s:item:%lld", c->site, (long long)id);
    for (size_t i = 0; i < SHARED; i++)
        snprintf(tags[1 + i], sizeof tags[1 + i], "%s:%s", c->site, shared[i]);
    for (size_t i = 0; i < 1 + SHARED; i++) {
        http_cache_invalidate_tag(tags[i], c->written);
        keys[i] = tags[i];
    }
    /* The same keys for a CDN or Varnish in front (Surrogate-Key), by a
     * job: the write is done and answered whether or not the CDN is up. */
    if (jobs_purge_enqueue(c->store, keys, 1 + SHARED) != STORE_OK)
        log_event_str(LOG_WARN, "CDN purge not queued", "error", store_errmsg(c->store));
}

void api_store_item(api_ctx *c, int64_t id)
{
    /* The epoch is read after this write's invalidation and before the read
     * below: a later write's invalidation fences this insert. */
    uint64_t epoch = http_cache_epoch();
    json_t *item = NULL;
    if (store_item_get(c->store, c->site_id, c->site, id, true, &item) != STORE_OK)
        return;
    char *body = json_dumps(item, JSON_COMPACT);
    char path[400];
    http_response res = {0};
    if (body != NULL) {
        http_response_body(&res, 200, "application/json", body, strlen(body));
        api_tag_item(&res, c->site, id);
        snprintf(path, sizeof(path), "/v1/%s/content/%lld", c->site, (long long)id);
        http_cache_store(path, &res, epoch);
        snprintf(path, sizeof(path), "/v1/%s/content/by-slug/%s/%s", c->site,
                 json_string_value(json_object_get(item, "type")), json_string_value(json_object_get(item, "slug")));
        http_cache_store(path, &res, epoch);
    }
    http_response_free(&res);
    json_decref(item);
}

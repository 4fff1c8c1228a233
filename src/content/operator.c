/*
 * operator.c — the operator's routes (admin tokens) and cache warming.
 *
 * Warming fills a site's most-read representations ahead of the readers:
 * its N most viewed items (cache.warm_items), the first page of the
 * default list, the categories and the default popular list. It runs once
 * at start for every site and on POST /v1/{site}/cache/warm. Each fill goes
 * through the handler a reader would hit and is stored write-through, with
 * the epoch read before the data so a concurrent write still wins.
 *
 * Invalidating tags also queues their purge at the configured CDN or
 * Varnish (a "purge" job, src/jobs), where the same tags are surrogate keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/api.h"
#include "content/content.h"
#include "core/log.h"
#include "jobs/jobs.h"

/* Runs a read handler on a synthetic anonymous request for `path` (whose
 * first parameter is the site) and stores its 200 representation. */
static bool warm_path(store_t *store, content_handler handler, const char *site, const char *id_param, const char *path)
{
    http_request rq = {0};
    http_response res = {0};
    char site_copy[65], id_copy[24];
    snprintf(site_copy, sizeof(site_copy), "%s", site);
    rq.params[0] = site_copy;
    rq.param_len[0] = strlen(site_copy);
    rq.param_count = 1;
    if (id_param != NULL) {
        snprintf(id_copy, sizeof(id_copy), "%s", id_param);
        rq.params[1] = id_copy;
        rq.param_len[1] = strlen(id_copy);
        rq.param_count = 2;
    }
    rq.path = (char *)path;
    snprintf(rq.request_id, sizeof(rq.request_id), "warm");
    uint64_t epoch = http_cache_epoch();
    handler(&rq, store, &res);
    bool stored = res.status == 200 && http_cache_store(path, &res, epoch);
    http_response_free(&res);
    return stored;
}

static size_t warm_site(store_t *store, int64_t site_id, const char *site)
{
    char path[200];
    size_t warmed = 0;
    snprintf(path, sizeof(path), "/v1/%s/content", site);
    warmed += warm_path(store, handle_list, site, NULL, path);
    snprintf(path, sizeof(path), "/v1/%s/categories", site);
    warmed += warm_path(store, handle_categories, site, NULL, path);
    snprintf(path, sizeof(path), "/v1/%s/popular", site);
    warmed += warm_path(store, handle_popular, site, NULL, path);

    const strata_config *cfg = api_config();
    json_t *items = NULL;
    if (cfg->cache_warm_items > 0 &&
        store_popular(store, site_id, site, NULL, 0, cfg->cache_warm_items < 100 ? cfg->cache_warm_items : 100,
                      &items) == STORE_OK) {
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            char id[24];
            snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(item, "id")));
            snprintf(path, sizeof(path), "/v1/%s/content/%s", site, id);
            warmed += warm_path(store, handle_get, site, id, path);
        }
    }
    json_decref(items);
    return warmed;
}

void content_on_start(store_t *store)
{
    if (!api_config()->cache_enabled)
        return;
    json_t *sites = NULL;
    if (store_site_list(store, &sites) != STORE_OK)
        return;
    size_t i, warmed = 0;
    json_t *site;
    json_array_foreach(sites, i, site)
    {
        warmed += warm_site(store, json_integer_value(json_object_get(site, "id")),
                            json_string_value(json_object_get(site, "name")));
    }
    json_decref(sites);
    log_line line;
    log_begin(&line, LOG_INFO, "cache warmed");
    log_int(&line, "entries", (int64_t)warmed);
    log_end(&line);
}

void handle_cache_warm(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN))
        return;
    size_t warmed = api_config()->cache_enabled ? warm_site(store, c.site_id, c.site) : 0;
    api_send_json(&c, 200, json_pack("{s:I}", "warmed", (json_int_t)warmed));
}

void handle_cache_flush(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN))
        return;
    char tag[96];
    snprintf(tag, sizeof(tag), "%s:all", c.site);
    size_t removed = http_cache_invalidate_tag(tag, LSN_NONE);
    api_send_json(&c, 200, json_pack("{s:I}", "removed", (json_int_t)removed));
}

/* A tag as an operator names it: "item:12" (this site's), or with the
 * site prefix already. No whitespace, at most 128 bytes. */
static bool qualify_tag(const char *site, const char *tag, char out[200])
{
    size_t len = strlen(tag);
    if (len == 0 || len > 128 || strpbrk(tag, " \t\r\n") != NULL)
        return false;
    size_t site_len = strlen(site);
    if (strncmp(tag, site, site_len) == 0 && tag[site_len] == ':')
        snprintf(out, 200, "%s", tag);
    else
        snprintf(out, 200, "%s:%s", site, tag);
    return true;
}

void handle_cache_invalidate(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    json_t *doc;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN) || !api_json_body(&c, true, &doc))
        return;
    json_t *tags = json_object_get(doc, "tags"), *keys = json_object_get(doc, "keys");
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        if (strcmp(key, "tags") != 0 && strcmp(key, "keys") != 0) {
            http_problem(res, req, 422, "unknown_field", "unknown field '%.64s'; the fields are tags and keys", key);
            json_decref(doc);
            return;
        }
    }
    if ((tags != NULL && !json_is_array(tags)) || (keys != NULL && !json_is_array(keys)) ||
        json_array_size(tags) + json_array_size(keys) > 1000) {
        http_problem(res, req, 422, "invalid_field",
                     "'tags' and 'keys' must be arrays of strings, 1000 in all at most");
        json_decref(doc);
        return;
    }
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "/v1/%s/", c.site);
    size_t i;
    json_t *item;
    json_array_foreach(tags, i, item)
    {
        char tag[200];
        if (!json_is_string(item) || !qualify_tag(c.site, json_string_value(item), tag)) {
            http_problem(res, req, 422, "invalid_field", "tags[%zu] must be a string of 1 to 128 bytes without spaces",
                         i);
            json_decref(doc);
            return;
        }
    }
    json_array_foreach(keys, i, item)
    {
        if (!json_is_string(item) || strncmp(json_string_value(item), prefix, strlen(prefix)) != 0) {
            http_problem(res, req, 422, "invalid_field",
                         "keys[%zu] must be a request target of this site, like %scontent/12", i, prefix);
            json_decref(doc);
            return;
        }
    }
    /* the tags are the CDN's surrogate keys too: it is purged of them */
    size_t entries = 0, targets = 0, tag_count = json_array_size(tags);
    char(*qualified)[200] = malloc((tag_count > 0 ? tag_count : 1) * sizeof *qualified);
    const char **purge_keys = malloc((tag_count > 0 ? tag_count : 1) * sizeof *purge_keys);
    if (qualified == NULL || purge_keys == NULL) {
        free(qualified);
        free(purge_keys);
        json_decref(doc);
        http_problem(res, req, 503, "out_of_memory", "the server is short of memory; retry shortly");
        return;
    }
    json_array_foreach(tags, i, item)
    {
        qualify_tag(c.site, json_string_value(item), qualified[i]);
        entries += http_cache_invalidate_tag(qualified[i], LSN_NONE);
        purge_keys[i] = qualified[i];
    }
    int purge = jobs_purge_enqueue(store, purge_keys, tag_count);
    free(qualified);
    free(purge_keys);
    if (purge != STORE_OK) {
        json_decref(doc);
        api_store_failed(&c, purge);
        return;
    }
    json_array_foreach(keys, i, item) targets += http_cache_invalidate_target(json_string_value(item), LSN_NONE);
    json_decref(doc);
    api_send_json(
        &c, 200,
        json_pack("{s:I, s:I}", "tagged_entries_removed", (json_int_t)entries, "keys_removed", (json_int_t)targets));
}

void handle_cache_stats(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    if (!api_require_admin_token(&c, site))
        return;
    json_t *stats = http_cache_stats(site);
    json_object_set_new(stats, "site_name", json_string(site));
    json_object_set_new(stats, "db", json_pack("{s:I}", "queries", (json_int_t)store_queries_total()));
    api_send_json(&c, 200, stats);
}

/* The job queue (docs/jobs.md): counts, recent failures, this instance's
 * runner and its next scheduled ticks. Jobs are shared by every site, so
 * an admin token of any site may look. */
void handle_jobs_stats(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    if (!api_require_admin_token(&c, site))
        return;
    json_t *stats = jobs_stats(store);
    if (!stats) {
        api_store_failed(&c, STORE_ERROR);
        return;
    }
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200, stats);
}

void handle_debug_faults(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    json_t *doc;
    if (!api_config()->debug_fault_injection) {
        http_problem(res, req, 404, "no_route", "fault injection is off (debug.fault_injection)");
        return;
    }
    if (!api_require_admin_token(&c, site) || !api_json_body(&c, true, &doc))
        return;
    json_t *ms = json_object_get(doc, "database_down_ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0 || json_integer_value(ms) > 600000) {
        http_problem(res, req, 422, "invalid_field", "'database_down_ms' must be an integer in 0..600000");
        json_decref(doc);
        return;
    }
    int64_t until = json_integer_value(ms) > 0 ? store_now_ms() + json_integer_value(ms) : 0;
    json_decref(doc);
    store_inject_faults(until);
    log_event_str(LOG_WARN, "database fault injected", "by_site", site);
    api_send_json(&c, 200, json_pack("{s:I}", "database_down_until_ms", (json_int_t)until));
}

/*
 * reads.c — the public read routes: lists, items, popular, categories, the
 * view beacon, and readiness.
 *
 * Without a token only published content is visible. A token of the site
 * (any role) also sees drafts and archived items: it may list them with
 * `status` and read them by id or slug. Unknown query parameters are
 * ignored, but for those of a list that look like filters (refused,
 * field_filters.c); known ones are validated strictly (400 naming the
 * parameter). A list filters on declared custom fields (fields.NAME).
 * The parameters a cached route keys on are read from its table in
 * routes.c (api_query_param*), defaults included: none is written here.
 *
 * Negative answers. Anyone can ask for ids, slugs, types, tags and
 * categories that do not exist, each a new cache key; such answers are
 * marked negative (http_response.negative), and the cache keeps them only
 * briefly and under their own budget. Negative: a 404 for an id or slug,
 * and a first page with no items whose filters match nothing. Types and
 * tags exist only on items, so an empty first page filtered by one is
 * negative; a category exists on its own, so the empty first page of a
 * real category is an ordinary answer (a new section is read often) —
 * only an unknown category's is negative. Their tags make the write that
 * ends them invalidate them: item:<id> for an id, and lists for a slug and
 * for list pages, both dropped by every item write (cache_tags.c).
 *
 * Where they read. After the token is known, api_route_read picks the
 * database (positions.c): a replica that has replayed what this read must
 * see, else the primary; a read that fails on a replica runs again on the
 * primary (api_read_again), so a replica going away is never a 5xx.
 */
#include <stdio.h>
#include <string.h>

#include "content/api.h"
#include "content/field_filters.h"
#include "store/store_history.h"

/* Whether a parameter's value filters anything: one the request gave, or
 * a default other than "" (no filter). */
static bool param_applies(const http_cache_param *p, const char *value)
{
    return value != p->default_value || value[0] != '\0';
}

/* An optional word-valued filter (type, category). */
static bool word_filter(api_ctx *c, const http_cache_param *p, size_t max, char *buf, size_t size, const char **out)
{
    const char *value;
    *out = NULL;
    if (!api_query_param(c, p, buf, size, &value))
        return false;
    if (!param_applies(p, value))
        return true;
    if (!api_is_word(value, strlen(value), max)) {
        http_problem(c->res, c->req, 400, "bad_query",
                     "query parameter '%s' must be 1 to %zu characters of a-z, 0-9, '-' and '_'", p->name, max);
        return false;
    }
    *out = value;
    return true;
}

/* Does the category exist? Asked only for an empty page; on a failure,
 * the answer that keeps the page briefly. */
static bool category_exists(api_ctx *c, const char *slug)
{
    json_t *doc = NULL;
    bool found = false;
    if (store_category_list(c->store, c->site_id, &doc) == STORE_OK) {
        size_t i;
        json_t *category;
        json_array_foreach(json_object_get(doc, "categories"), i, category)
        {
            found = found || strcmp(json_string_value(json_object_get(category, "slug")), slug) == 0;
        }
    }
    json_decref(doc);
    return found;
}

/* An empty first page: is it because a filter names nothing? */
static bool list_filters_match_nothing(api_ctx *c, const store_list_query *q)
{
    if (q->type != NULL || q->tag != NULL)
        return true;
    return q->category != NULL && !category_exists(c, q->category);
}

void handle_list(const http_request *req, store_t *store, http_response *res)
{
    static const char *const sorts[] = {"-published_at", "published_at", "-updated_at", "title", "relevance"};
    static const char *const statuses[] = {"published", "draft", "archived", "any"};
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!api_resolve_site(&c) || !api_read_token(&c))
        return;

    store_list_query q = {.site_id = c.site_id, .site_name = c.site};
    char type[TYPE_MAX + 2], category[CATEGORY_MAX + 2], tag_raw[TAG_MAX_BYTES + 2], tag[TAG_MAX_BYTES + 1];
    const char *tag_value, *cursor_value;
    int sort, status;
    if (!word_filter(&c, &list_params[LIST_PARAM_TYPE], TYPE_MAX, type, sizeof(type), &q.type) ||
        !word_filter(&c, &list_params[LIST_PARAM_CATEGORY], CATEGORY_MAX, category, sizeof(category), &q.category) ||
        !api_query_param_choice(&c, &list_params[LIST_PARAM_SORT], sorts, 5, &sort) ||
        !api_query_param_choice(&c, &list_params[LIST_PARAM_STATUS], statuses, 4, &status) ||
        !api_query_param_int(&c, &list_params[LIST_PARAM_LIMIT], 1, 100, &q.limit) ||
        !api_query_param(&c, &list_params[LIST_PARAM_TAG], tag_raw, sizeof(tag_raw), &tag_value))
        return;
    if (param_applies(&list_params[LIST_PARAM_TAG], tag_value)) {
        if (!api_normalise_tag(tag_value, tag)) {
            http_problem(res, req, 400, "bad_query", "query parameter 'tag' must be 1 to 64 bytes without spaces");
            return;
        }
        q.tag = tag;
    }
    api_field_filters fields;
    if (!field_filters_read(&c, &q, &fields))
        return;
    /* full-text search (search.c): ?q= and the relevance sort */
    search_query sq;
    char search[SEARCH_RENDER_MAX];
    if (!api_search_read(&c, &sq, search, &q.search))
        return;
    if (q.search != NULL && q.field_count > 0) { /* the search's tiers (store/search.c) know no field filter */
        http_problem(res, req, 400, "bad_query",
                     "a search (q) does not combine with filters on fields (fields.NAME) yet: search, or filter the "
                     "list");
        return;
    }
    q.sort = (store_sort)sort;
    if (q.sort == SORT_RELEVANCE && q.search == NULL)
        q.sort = SORT_PUBLISHED_DESC;
    q.status = (store_status_filter)status;
    if (q.status != FILTER_PUBLISHED && !c.has_token) {
        http_problem(res, req, 401, "unauthorized", "listing status '%s' needs a bearer token of site '%s'",
                     statuses[status], c.site);
        http_response_header(res, "www-authenticate", "Bearer realm=\"strata\"");
        return;
    }

    char cursor[CURSOR_TEXT_MAX];
    if (!api_query_param(&c, &list_params[LIST_PARAM_CURSOR], cursor, sizeof(cursor), &cursor_value))
        return;
    if (param_applies(&list_params[LIST_PARAM_CURSOR], cursor_value) &&
        !api_cursor_decode(&c, cursor_value, &q, &q.after))
        return;

    size_t count = 0;
    int rc;
    api_shape shape;
    if (!api_shape_read(&c, &list_params[LIST_PARAM_SELECT], &list_params[LIST_PARAM_INCLUDE], &shape) ||
        !api_route_read(&c))
        return;
    q.bounded_only = req->on_loop;
    do
        rc = q.search ? api_search_list_read(&c, &q, &sq, &count) : api_list_read(&c, &q, &count);
    while (api_read_again(&c, rc));
    if (rc == STORE_UNBOUNDED) { /* a range with too many values for ordered walks: sorted on a worker */
        res->needs_worker = true;
        return;
    }
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    res->negative = count == 0 && !q.after.present && (q.search || list_filters_match_nothing(&c, &q));
    api_tag_list(res, c.site, q.type, q.category, q.tag);
    api_shape_apply(&c, &shape, true);
}

/* A 404 is negative, tagged with what a write that creates the item
 * invalidates: `missing_tag` (item:<id> by id, lists by slug). */
static void send_item_failure(api_ctx *c, int rc, const char *missing_tag)
{
    if (rc == STORE_NOT_FOUND) {
        api_store_failed(c, rc);
        c->res->negative = true;
        api_tag_named(c->res, c->site, missing_tag);
        return;
    }
    api_store_failed(c, rc);
}

void handle_get(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    api_shape shape;
    if (!api_resolve_site(&c) || !api_read_token(&c) || !api_param_id(&c, 1, "the item id", &id) ||
        !api_shape_read(&c, &item_params[ITEM_PARAM_SELECT], &item_params[ITEM_PARAM_INCLUDE], &shape) ||
        !api_route_read(&c))
        return;
    store_item_key key = {.id = id};
    int rc;
    do
        rc = api_item_read(&c, &key, !c.has_token);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        char missing_tag[32];
        snprintf(missing_tag, sizeof(missing_tag), "item:%lld", (long long)id);
        send_item_failure(&c, rc, missing_tag);
        return;
    }
    api_shape_apply(&c, &shape, false);
}

void handle_get_by_slug(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    const char *type, *slug;
    api_shape shape;
    if (!api_resolve_site(&c) || !api_read_token(&c) || !api_param_word(&c, 1, "the type", TYPE_MAX, &type) ||
        !api_param_word(&c, 2, "the slug", SLUG_MAX, &slug) ||
        !api_shape_read(&c, &item_params[ITEM_PARAM_SELECT], &item_params[ITEM_PARAM_INCLUDE], &shape) ||
        !api_route_read(&c))
        return;
    store_item_key key = {.type = type, .slug = slug};
    int rc;
    do
        rc = api_item_read(&c, &key, !c.has_token);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        send_item_failure(&c, rc, "lists");
        return;
    }
    api_shape_apply(&c, &shape, false);
}

void handle_popular(const http_request *req, store_t *store, http_response *res)
{
    static const char *const windows[] = {"1h", "24h", "7d", "all"};
    static const int64_t window_ms[] = {3600000LL, 86400000LL, 7 * 86400000LL, 0};
    api_ctx c = {.req = req, .store = store, .res = res};
    char type[TYPE_MAX + 2];
    const char *type_filter;
    int window, limit;
    if (!api_resolve_site(&c) || !api_read_token(&c) ||
        !word_filter(&c, &popular_params[POPULAR_PARAM_TYPE], TYPE_MAX, type, sizeof(type), &type_filter) ||
        !api_query_param_choice(&c, &popular_params[POPULAR_PARAM_WINDOW], windows, 4, &window) ||
        !api_query_param_int(&c, &popular_params[POPULAR_PARAM_LIMIT], 1, 100, &limit) || !api_route_read(&c))
        return;
    int64_t since = window_ms[window] ? store_now_ms() - window_ms[window] : 0;
    json_t *items = NULL;
    int rc;
    do
        rc = store_popular(c.store, c.site_id, c.site, type_filter, since, limit, &items);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    res->negative = type_filter != NULL && json_array_size(items) == 0;
    api_tag_named(res, c.site, "popular");
    api_send_json(&c, 200, json_pack("{s:s, s:o}", "window", windows[window], "items", items));
}

void handle_categories(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!api_resolve_site(&c) || !api_read_token(&c) || !api_route_read(&c))
        return;
    json_t *doc = NULL;
    int rc;
    do
        rc = store_category_list(c.store, c.site_id, &doc);
    while (api_read_again(&c, rc));
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_tag_named(res, c.site, "categories");
    api_send_json(&c, 200, doc);
}

/* Ready while the database answers. A full disk keeps the instance ready
 * (200: reads are served from the caches and the database, and every
 * instance shares that disk, so taking this one out of rotation helps no
 * one) but says so: writes answer 507 until space is freed. */
void handle_readyz(const http_request *req, store_t *store, http_response *res)
{
    if (store_ping(store) != STORE_OK) {
        http_problem(res, req, 503, "not_ready", "the database does not answer: %s", store_errmsg(store));
        return;
    }
    int64_t full_since = store_disk_full_since();
    if (full_since == 0) {
        http_response_copy(res, 200, "application/json", "{\"status\":\"ready\"}", 18);
        return;
    }
    char since[STORE_TIME_TEXT_SIZE];
    store_time_text(full_since, since);
    api_ctx c = {.req = req, .store = store, .res = res};
    http_response_header(res, "cache-control", "no-store");
    api_send_json(&c, 200,
                  json_pack("{s:s, s:s, s:s, s:s, s:s}", "status", "degraded", "writes", "failing", "reason",
                            "disk_full", "detail",
                            "the database's disk is full: writes answer 507 until space is freed; reads are served",
                            "since", since));
}

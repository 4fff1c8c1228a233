/*
 * shape.c — sparse fieldsets and includes: ?select=title,slug keeps only
 * those members of an item (and of each item of a list page), always with
 * its id; ?include=category puts the category object ({"slug","name",
 * "parent"}) in place of its slug.
 *
 * The body is shaped after it is built, from the same text the object
 * cache serves, so the ordinary path pays nothing and a shaped one pays a
 * parse and a dump of one page. Both parameters are part of the cache key
 * as a set (http_cache_param.word_set: "slug,title" and "title,slug,title"
 * share an entry), so a shaped representation is cached like any other.
 * An include reads the site's categories (one statement) and tags the
 * response with them.
 */
#include <stdio.h>
#include <string.h>

#include "content/api.h"

/* An item's members, in the order its body has them. */
static const char *const members[] = {
    "id",         "site",       "type",         "slug",     "status",        "title",
    "excerpt",    "body",       "fields",       "category", "tags",          "author",
    "created_at", "updated_at", "published_at", "views",    "draft_version", "published_version",
};
enum { MEMBER_COUNT = sizeof members / sizeof members[0] };
_Static_assert(MEMBER_COUNT <= 32, "a member a bit");

static int member_index(const char *name, size_t len)
{
    for (int i = 0; i < MEMBER_COUNT; i++)
        if (strlen(members[i]) == len && memcmp(members[i], name, len) == 0)
            return i;
    return -1;
}

static void refuse_select(api_ctx *c, const char *name, size_t len)
{
    char known[256];
    size_t n = 0;
    for (int i = 0; i < MEMBER_COUNT && n < sizeof known; i++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", members[i]);
    http_problem(c->res, c->req, 400, "bad_query",
                 "select names '%.*s', which is no member of an item; select from: %s", (int)(len < 64 ? len : 64),
                 name, known);
}

/* Each comma-separated word of text through one(word, len); false stops. */
static bool words_each(api_ctx *c, const char *text, bool (*one)(api_ctx *c, const char *w, size_t len, void *arg),
                       void *arg)
{
    for (const char *at = text; *at != '\0';) {
        const char *end = strchr(at, ',');
        size_t len = end != NULL ? (size_t)(end - at) : strlen(at);
        if (len > 0 && !one(c, at, len, arg))
            return false;
        at += len + (end != NULL);
    }
    return true;
}

static bool select_one(api_ctx *c, const char *w, size_t len, void *arg)
{
    int i = member_index(w, len);
    if (i < 0) {
        refuse_select(c, w, len);
        return false;
    }
    *(unsigned *)arg |= 1u << i;
    return true;
}

static bool include_one(api_ctx *c, const char *w, size_t len, void *arg)
{
    if (len != 8 || memcmp(w, "category", 8) != 0) {
        http_problem(c->res, c->req, 400, "bad_query", "include names '%.*s'; what may be included: category",
                     (int)(len < 64 ? len : 64), w);
        return false;
    }
    *(bool *)arg = true;
    return true;
}

bool api_shape_read(api_ctx *c, const http_cache_param *select, const http_cache_param *include, api_shape *shape)
{
    char buf[512];
    const char *value;
    *shape = (api_shape){0};
    if (!api_query_param(c, select, buf, sizeof buf, &value))
        return false;
    for (char *p = buf; value == buf && *p; p++) /* as the cache keys it (fold_case) */
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!words_each(c, value, select_one, &shape->members))
        return false;
    if (shape->members != 0)
        shape->members |= 1u; /* the id, always */
    if (!api_query_param(c, include, buf, sizeof buf, &value))
        return false;
    for (char *p = buf; value == buf && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return words_each(c, value, include_one, &shape->include_category);
}

/* ---- applying it ------------------------------------------------------------------------ */

/* {"slug": {"slug","name","parent"}} of the site's categories. */
static json_t *categories_by_slug(api_ctx *c)
{
    json_t *doc = NULL, *out = json_object();
    if (out == NULL || store_category_list(c->store, c->site_id, &doc) != STORE_OK) {
        json_decref(out);
        return NULL;
    }
    size_t i;
    json_t *cat;
    json_array_foreach(json_object_get(doc, "categories"), i, cat)
    {
        json_t *slug = json_object_get(cat, "slug");
        if (json_is_string(slug))
            json_object_set_new(out, json_string_value(slug),
                                json_pack("{s:O, s:O, s:O}", "slug", slug, "name", json_object_get(cat, "name"),
                                          "parent", json_object_get(cat, "parent")));
    }
    json_decref(doc);
    return out;
}

static void item_shape(json_t *item, const api_shape *shape, const json_t *categories)
{
    if (!json_is_object(item))
        return;
    json_t *slug = json_object_get(item, "category");
    if (categories != NULL && json_is_string(slug)) {
        json_t *cat = json_object_get(categories, json_string_value(slug));
        json_object_set(item, "category", cat != NULL ? cat : json_null());
    }
    for (int i = 0; shape->members != 0 && i < MEMBER_COUNT; i++)
        if (!(shape->members & (1u << i)))
            json_object_del(item, members[i]);
}

void api_shape_apply(api_ctx *c, const api_shape *shape, bool list)
{
    http_response *res = c->res;
    if ((shape->members == 0 && !shape->include_category) || res->status != 200 || res->body == NULL)
        return;
    json_error_t error;
    json_t *doc = json_loadb(res->body, res->body_len, 0, &error);
    json_t *categories = shape->include_category ? categories_by_slug(c) : NULL;
    if (doc == NULL || (shape->include_category && categories == NULL)) {
        json_decref(doc);
        json_decref(categories);
        http_problem(res, c->req, 503, "database_error", "the response could not be shaped; retry shortly");
        return;
    }
    if (list) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(doc, "items"), i, item) item_shape(item, shape, categories);
    } else {
        item_shape(doc, shape, categories);
    }
    json_decref(categories);
    if (shape->include_category)
        api_tag_named(res, c->site, "categories");
    api_send_json(c, 200, doc);
}

/*
 * editor.c — the editor routes: create, read and save drafts, publish,
 * unpublish, delete, and create categories.
 *
 * Lost updates are prevented by If-Match: a draft's ETag names its version
 * ("v7"); a save must name the version it was based on, and the store
 * refuses (412) when another save came in between. A save without If-Match
 * is refused with 428 rather than silently overwriting someone's work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/api.h"
#include "store/store_history.h"

static void send_draft(api_ctx *c, int status, json_t *draft, int64_t version)
{
    http_response_header(c->res, "etag", "\"v%lld\"", (long long)version);
    api_send_json(c, status, draft);
}

void handle_create(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    json_t *doc;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_json_body(&c, true, &doc))
        return;
    edit_input in;
    if (api_parse_edit(&c, doc, true, &in)) {
        json_t *draft = NULL;
        int rc = store_item_create(store, c.site_id, c.site, &in.edit, c.token.name, &draft);
        if (rc != STORE_OK) {
            api_store_failed(&c, rc);
        } else {
            api_wrote(&c);
            http_response_header(res, "location", "/v1/%s/content/%lld", c.site,
                                 (long long)json_integer_value(json_object_get(draft, "id")));
            send_draft(&c, 201, draft, 1);
        }
    }
    api_edit_free(&in);
    json_decref(doc);
}

void handle_get_draft(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, version;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id) ||
        !api_route_read(&c))
        return;
    int rc;
    do
        rc = api_draft_read(&c, id, &version); /* the object cache's (objects.c) */
    while (api_read_again(&c, rc));
    if (rc != STORE_OK)
        api_store_failed(&c, rc);
    else
        http_response_header(res, "etag", "\"v%lld\"", (long long)version);
}

void handle_save(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, base, version;
    json_t *doc;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id) ||
        !api_if_match_version(&c, true, &base) || !api_json_body(&c, true, &doc))
        return;
    edit_input in;
    if (api_parse_edit(&c, doc, false, &in)) {
        json_t *draft = NULL;
        int rc = store_item_save_draft_diffed(store, c.site_id, c.site, id, base, &in.edit, c.token.name, "diff",
                                              &draft, &version);
        if (rc != STORE_OK) {
            api_store_failed(&c, rc);
        } else {
            api_wrote(&c);
            history_after_save(&c, id, draft, version, true);
            send_draft(&c, 200, draft, version);
        }
    }
    api_edit_free(&in);
    json_decref(doc);
}

/* An optional body with only the given keys. */
static bool optional_body(api_ctx *c, const char *allowed, json_t **doc)
{
    if (!api_json_body(c, false, doc))
        return false;
    const char *key;
    json_t *value;
    json_object_foreach(*doc, key, value)
    {
        if (strcmp(key, allowed) != 0) {
            http_problem(c->res, c->req, 422, "unknown_field", "unknown field '%.64s'; only '%s' is accepted", key,
                         allowed);
            json_decref(*doc);
            return false;
        }
    }
    return true;
}

void handle_publish(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id, version = 0;
    json_t *doc;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id) ||
        !optional_body(&c, "version", &doc))
        return;
    json_t *v = json_object_get(doc, "version");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            http_problem(res, req, 422, "invalid_field", "field 'version' must be a positive integer");
            json_decref(doc);
            return;
        }
        version = json_integer_value(v);
    }
    json_decref(doc);
    json_t *item = NULL;
    int rc = store_item_publish(store, c.site_id, c.site, id, version, c.token.name, &item);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_wrote(&c);
    api_invalidate_item(&c, id);
    api_store_item(&c, id); /* write-through: the new representation is cached */
    api_send_json(&c, 200, item);
}

void handle_unpublish(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    json_t *doc;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id) ||
        !optional_body(&c, "archive", &doc))
        return;
    json_t *archive = json_object_get(doc, "archive");
    if (archive != NULL && !json_is_boolean(archive)) {
        http_problem(res, req, 422, "invalid_field", "field 'archive' must be true or false");
        json_decref(doc);
        return;
    }
    bool to_archive = json_is_true(archive);
    json_decref(doc);
    json_t *item = NULL;
    int rc = store_item_unpublish(store, c.site_id, c.site, id, to_archive, &item);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_wrote(&c);
    api_invalidate_item(&c, id);
    api_send_json(&c, 200, item);
}

void handle_delete(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    int64_t id;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_param_id(&c, 1, "the item id", &id))
        return;
    int rc = store_item_delete(store, c.site_id, id);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    api_wrote(&c);
    api_invalidate_item(&c, id);
    history_forget_item(c.site_id, id);
    res->status = 204;
}

void handle_category_create(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    json_t *doc;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_WRITE) || !api_json_body(&c, true, &doc))
        return;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        if (strcmp(key, "slug") != 0 && strcmp(key, "name") != 0 && strcmp(key, "parent") != 0) {
            http_problem(res, req, 422, "unknown_field", "unknown field '%.64s'; the fields are slug, name, parent",
                         key);
            json_decref(doc);
            return;
        }
    }
    json_t *slug = json_object_get(doc, "slug"), *name = json_object_get(doc, "name");
    json_t *parent = json_object_get(doc, "parent");
    if (!json_is_string(slug) || !api_is_word(json_string_value(slug), json_string_length(slug), CATEGORY_MAX)) {
        http_problem(res, req, 422, "invalid_field",
                     "field 'slug' is required: 1 to 64 characters of a-z, 0-9, '-' and '_'");
    } else if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 200) {
        http_problem(res, req, 422, "invalid_field", "field 'name' is required: a string of 1 to 200 bytes");
    } else if (parent != NULL && !json_is_null(parent) && !json_is_string(parent)) {
        http_problem(res, req, 422, "invalid_field", "field 'parent' must be a category slug or null");
    } else {
        json_t *category = NULL;
        int rc = store_category_create(store, c.site_id, json_string_value(slug), json_string_value(name),
                                       json_is_string(parent) ? json_string_value(parent) : NULL, &category);
        if (rc != STORE_OK) {
            api_store_failed(&c, rc);
        } else {
            api_wrote(&c);
            char tag[96];
            snprintf(tag, sizeof(tag), "%s:categories", c.site);
            http_cache_invalidate_tag(tag, c.written);
            http_response_header(res, "location", "/v1/%s/categories", c.site);
            api_send_json(&c, 201, category);
        }
    }
    json_decref(doc);
}

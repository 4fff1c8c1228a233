/*
 * field_indexes.c — the admin routes that declare which custom fields a
 * site's lists may filter on (field_filters.c reads them):
 *
 *   GET    /v1/{site}/field-indexes                 the declarations
 *   POST   /v1/{site}/field-indexes                 {"type","field","kind"}
 *   DELETE /v1/{site}/field-indexes/{type}/{field}
 *
 * Declaring creates the field's index in the same transaction, so a
 * declared field is never filtered on without it (on a large site the
 * POST takes as long as building the index; PostgreSQL holds writes to
 * items meanwhile). A change drops the site's cached lists on every
 * instance before it is answered: a filtered page cached while its field
 * was declared must not outlive the declaration.
 */
#include <string.h>

#include "content/field_filters.h"

static void lists_invalidate(api_ctx *c)
{
    char tag[96];
    snprintf(tag, sizeof tag, "%s:lists", c->site);
    http_cache_invalidate_tag(tag, LSN_NONE);
}

void handle_field_indexes_list(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN))
        return;
    json_t *list = NULL;
    int rc = store_field_index_list(store, c.site_id, &list);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200, json_pack("{s:o, s:i}", "field_indexes", list, "max", FIELD_INDEXES_PER_SITE));
}

/* {"type": a type word, "field": a field name, "kind": "bool"|"number"|"text"}. */
static bool declaration_read(api_ctx *c, json_t *body, const char **type, const char **field, store_field_kind *kind)
{
    *type = json_string_value(json_object_get(body, "type"));
    *field = json_string_value(json_object_get(body, "field"));
    const char *kind_name = json_string_value(json_object_get(body, "kind"));
    const char *problem = NULL;
    if (*type == NULL || !api_is_word(*type, strlen(*type), TYPE_MAX))
        problem = "\"type\" must be 1 to 32 characters of a-z, 0-9, '-' and '_'";
    else if (*field == NULL || !store_field_name_valid(*field))
        problem = "\"field\" must be 1 to 40 characters of a-z, 0-9 and '_', from a letter";
    else if (kind_name == NULL || !store_field_kind_parse(kind_name, kind))
        problem = "\"kind\" must be \"bool\", \"number\" or \"text\"";
    if (problem == NULL)
        return true;
    http_problem(c->res, c->req, 422, "invalid_field", "%s", problem);
    return false;
}

void handle_field_indexes_create(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    json_t *body = NULL;
    const char *type, *field;
    store_field_kind kind;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN) || !api_json_body(&c, true, &body))
        return;
    if (declaration_read(&c, body, &type, &field, &kind)) {
        int rc = store_field_index_declare(store, c.site_id, type, field, kind);
        if (rc != STORE_OK) {
            api_store_failed(&c, rc);
        } else {
            lists_invalidate(&c);
            http_response_header(res, "cache-control", "private, no-store");
            api_send_json(
                &c, 201,
                json_pack("{s:s, s:s, s:s}", "type", type, "field", field, "kind", store_field_kind_name(kind)));
        }
    }
    json_decref(body);
}

void handle_field_indexes_drop(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    const char *type, *field;
    if (!api_resolve_site(&c) || !api_require_role(&c, ROLE_ADMIN) ||
        !api_param_word(&c, 1, "the type", TYPE_MAX, &type) ||
        !api_param_word(&c, 2, "the field", FIELD_NAME_MAX, &field))
        return;
    int rc = store_field_index_drop(store, c.site_id, type, field);
    if (rc != STORE_OK) {
        api_store_failed(&c, rc);
        return;
    }
    lists_invalidate(&c);
    res->status = 204;
}

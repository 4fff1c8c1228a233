/*
 * api.h — internal to src/content: what every handler shares.
 *
 * A handler runs on a worker thread with an api_ctx that bundles the
 * request, the store connection and the response. The helpers here either
 * succeed or fill the response with the right problem and return false, so
 * a handler reads as a sequence of guards:
 *
 *     if (!api_resolve_site(c) || !api_require_role(c, ROLE_WRITE)) return;
 */
#ifndef STRATA_CONTENT_API_H
#define STRATA_CONTENT_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/search_query.h"
#include "core/textbuf.h"
#include "http/http.h"
#include "store/item_text.h"
#include "store/store.h"

typedef struct api_ctx {
    const http_request *req;
    store_t *store;
    http_response *res;
    int64_t site_id;
    const char *site; /* the {site} path parameter, once resolved */
    bool has_token;
    store_token token;
    /* Reads (positions.c): after api_route_read, `store` is where they run
     * (a replica or the primary) and `primary` the worker's own
     * connection; NULL before. */
    store_t *primary;
    lsn_t must_see;      /* the read's own position (Strata-LSN, the token's writes); LSN_NONE: none */
    bool primary_failed; /* a read on the primary was unavailable: not retried twice */
    /* Writes: the commit position api_wrote read (LSN_NONE: SQLite, or
     * no write yet), passed with every invalidation the write makes. */
    lsn_t written;
} api_ctx;

/* The {site} parameter (always params[0] on /v1/{site}/… routes) → site_id. */
bool api_resolve_site(api_ctx *c);
/* Reads the bearer token if one was sent: unknown → 401, other site → 403. */
bool api_read_token(api_ctx *c);
/* Requires a token of this site with at least `role`. */
bool api_require_role(api_ctx *c, store_role role);
/* For routes without {site}: an admin token of any site; c->site_id and
 * c->site become the token's site. site_name is the caller's buffer. */
bool api_require_admin_token(api_ctx *c, char site_name[65]);

/* Path parameter `index` as a positive integer id (400 otherwise). */
bool api_param_id(api_ctx *c, size_t index, const char *what, int64_t *id);
/* Path parameter that must be a type or slug word (400 otherwise). */
bool api_param_word(api_ctx *c, size_t index, const char *what, size_t max_len, const char **out);

/* Query parameter `name`, percent-decoded into buf. Returns false if absent.
 * A value with a NUL byte or longer than the buffer is reported as 400 via
 * *bad (set true, response filled). */
bool api_query(api_ctx *c, const char *name, char *buf, size_t size, bool *bad);
/* An integer query parameter in min..max; absent → def. */
bool api_query_int(api_ctx *c, const char *name, int min, int max, int def, int *out);

/* ---- cacheable query parameters: one table, read by the cache and the handler ----
 *
 * A route with a cache rule keys its responses on the parameters of its
 * table (name, default, integer, fold_case: http.h), sorted by name. The
 * handler reads the same rows through api_query_param*, so an absent
 * parameter means the table's default in both places and the two cannot
 * drift: a default is written once, in routes.c. */

enum list_param {
    LIST_PARAM_CATEGORY,
    LIST_PARAM_CURSOR,
    LIST_PARAM_INCLUDE,
    LIST_PARAM_LIMIT,
    LIST_PARAM_Q,
    LIST_PARAM_SELECT,
    LIST_PARAM_SORT,
    LIST_PARAM_STATUS,
    LIST_PARAM_TAG,
    LIST_PARAM_TYPE,
    LIST_PARAM_COUNT
};
enum popular_param { POPULAR_PARAM_LIMIT, POPULAR_PARAM_TYPE, POPULAR_PARAM_WINDOW, POPULAR_PARAM_COUNT };
enum item_param { ITEM_PARAM_INCLUDE, ITEM_PARAM_SELECT, ITEM_PARAM_COUNT };

/* GET /v1/{site}/content, GET /v1/{site}/popular and an item by id or
 * slug (routes.c). */
extern const http_cache_param list_params[LIST_PARAM_COUNT];
extern const http_cache_param popular_params[POPULAR_PARAM_COUNT];
extern const http_cache_param item_params[ITEM_PARAM_COUNT];

/* ---- sparse fieldsets and includes (shape.c) ---- */

/* What ?select= and ?include= ask of an item or list body. */
typedef struct api_shape {
    unsigned members;      /* bit per item member kept (select); 0: all */
    bool include_category; /* the category object in place of its slug */
} api_shape;
/* Reads ?select= and ?include= through their rows: false, with a 400
 * naming what may be asked, for anything else. */
bool api_shape_read(api_ctx *c, const http_cache_param *select, const http_cache_param *include, api_shape *shape);
/* Reshapes the 200 body just built: an item, or {"items":[…]} when list.
 * With include, the response is also tagged with the site's categories. */
void api_shape_apply(api_ctx *c, const api_shape *shape, bool list);

/* Parameter p's value: the request's, percent-decoded into buf, or p's
 * default when absent (then *value is p->default_value itself). False, with
 * a 400 sent, when the value is too long or holds a NUL byte. */
bool api_query_param(api_ctx *c, const http_cache_param *p, char *buf, size_t size, const char **value);
/* An integer parameter (p->integer) in min..max, its default included. */
bool api_query_param_int(api_ctx *c, const http_cache_param *p, int min, int max, int *out);
/* A parameter whose value is one of choices (its default must be one):
 * *out is the index; anything else is a 400 naming the choices. */
bool api_query_param_choice(api_ctx *c, const http_cache_param *p, const char *const *choices, size_t n, int *out);

/* If-Match → the version a write is based on: "vN" → N; "*" → 0, "whatever
 * is current" (the store takes the latest inside the write's transaction,
 * so concurrent writes with "*" never answer 412). Absent: 428 when
 * required, else *version = 0. Anything else is 412. */
bool api_if_match_version(api_ctx *c, bool required, int64_t *version);

/* Parses the body as a JSON object. Required: an empty body is 400.
 * Content-Type must be application/json (415). *out may be NULL when not
 * required and empty. */
bool api_json_body(api_ctx *c, bool required, json_t **out);

/* 200/201 with the JSON document (reference stolen). */
void api_send_json(api_ctx *c, int status, json_t *doc);
/* Maps a store failure to its problem response. */
void api_store_failed(api_ctx *c, int rc);

/* The database secret loaded by content_worker_init. */
const uint8_t *api_secret(void);

/* Word rules shared by paths and input: [a-z0-9][a-z0-9_-]{0,max-1}. */
bool api_is_word(const char *s, size_t len, size_t max_len);

#define TYPE_MAX 32
#define SLUG_MAX 128
#define CATEGORY_MAX 64
#define TAG_MAX_BYTES 64
#define TAGS_MAX 32

/* ---- input (input.c) ---- */

/* A validated create or save body. Strings point into the JSON document or
 * into copies owned here; free with api_edit_free before the document. */
typedef struct edit_input {
    store_edit_t edit;
    char *title; /* trimmed copy */
    char *tag_copies[TAGS_MAX];
    const char *tags[TAGS_MAX];
} edit_input;

/* create: type, slug and title required; save: type forbidden, all
 * optional. 422 naming the field on any rule broken. */
bool api_parse_edit(api_ctx *c, json_t *doc, bool create, edit_input *in);
void api_edit_free(edit_input *in);
/* A tag: 1..64 bytes, no whitespace, control characters, ',' or '/';
 * lowercased (ASCII) into out. */
bool api_normalise_tag(const char *tag, char out[TAG_MAX_BYTES + 1]);

/* ---- item and list bodies (objects.c) ---- */

/* Once, from content_init: the object cache as cache.objects says. */
void api_objects_init(const strata_config *cfg);
/* The item at key (by id, or by type and slug) as the 200 response (body
 * and tags) through the object cache; nothing is set unless STORE_OK. */
int api_item_read(api_ctx *c, const store_item_key *key, bool published_only);
/* Item id's draft as the 200 response body through the object cache;
 * *version its number (for the ETag). Nothing is set unless STORE_OK. */
int api_draft_read(api_ctx *c, int64_t id, int64_t *version);
/* The list page of q as the 200 response body ({"items":[…],
 * "next_cursor":…}); *count its items. Tags are the caller's. */
int api_list_read(api_ctx *c, const store_list_query *q, size_t *count);

/* ---- full-text search (search.c) ---- */

/* ?q= of the list route: absent or empty, *search = NULL; else parsed into
 * sq and *search = its canonical text (in canonical, for the cursor's
 * filters). False, with a 400 naming what is wrong and where, for a query
 * that cannot be parsed. */
bool api_search_read(api_ctx *c, search_query *sq, char canonical[SEARCH_RENDER_MAX], const char **search);
/* The search page of q (q->search set) as the 200 response body, as
 * api_list_read's, each item with its "snippet". */
int api_search_list_read(api_ctx *c, const store_list_query *q, const search_query *sq, size_t *count);

/* ---- keyset cursors (cursor.c) ---- */

#define CURSOR_TEXT_MAX 1024
/* The signed, opaque text for the position after a page. */
void api_cursor_encode(const store_list_query *q, const store_keyset *k, char out[CURSOR_TEXT_MAX]);
/* Verifies and decodes a cursor for query q: 400 if forged, altered or made
 * for another sort or other filters. */
bool api_cursor_decode(api_ctx *c, const char *text, const store_list_query *q, store_keyset *out);

/* ---- read routing and read-your-writes (positions.c) ---- */

/* Sends this request's reads where they may run: public reads (no token)
 * and cache fills to a replica that has replayed at least the larger of
 * the request's Strata-LSN and http_cache_lsn_floor(); a token's reads to
 * one that has the larger of Strata-LSN and the last position that token
 * wrote here; else the primary. Sets c->store, c->primary and
 * res->read_lsn. False, with a 400 sent, for a malformed Strata-LSN.
 * Called after the token is read, before the first read. */
bool api_route_read(api_ctx *c);
/* After a read failed with rc: true when it should run again, on c->store
 * (moved): from a replica that is gone, busy or failing to the primary (a
 * replica is never the client's 5xx); from a primary that is unreachable,
 * once per request, to any replica that is up and has the read's own
 * position (any, for a public read naming none: stale beats 503), else to
 * the primary again (a connection lost while idle reconnects on that call). */
bool api_read_again(api_ctx *c, int rc);
/* After a write committed: reads its commit position into c->written,
 * answers it in the Strata-LSN header and remembers it for the token. */
void api_wrote(api_ctx *c);

/* ---- caching (cache_tags.c) ---- */

/* The tags a response carries (docs/caching.md). Every cached response of
 * a site carries "<site>:all", so flushing a site is one invalidation. */
void api_tag_item(http_response *res, const char *site, int64_t id);
void api_tag_list(http_response *res, const char *site, const char *type, const char *category, const char *tag);
void api_tag_named(http_response *res, const char *site, const char *name); /* "popular", "categories" */
/* What a change to a published item makes stale: the item, every list
 * page, popular lists and category counts. Called before the write is
 * answered, so no read on this instance sees the old representation; the
 * same surrogate keys are queued for purging at the CDN (cdn.purge_url). */
void api_invalidate_item(api_ctx *c, int64_t id);
/* Write-through: stores the current public representation of item id
 * under its GET routes (by id and by slug). */
void api_store_item(api_ctx *c, int64_t id);

/* The configuration, for handlers that need it (warming, fault routes). */
const strata_config *api_config(void);

/* ---- view counting (views.c) ---- */

/* Counts one view in memory (any thread); views_flush writes them. */
void views_count(const char *site, int64_t id);

/* Handlers, one per route. */
void handle_list(const http_request *req, store_t *store, http_response *res);
void handle_get(const http_request *req, store_t *store, http_response *res);
void handle_get_by_slug(const http_request *req, store_t *store, http_response *res);
void handle_popular(const http_request *req, store_t *store, http_response *res);
void handle_categories(const http_request *req, store_t *store, http_response *res);
void handle_view(const http_request *req, store_t *store, http_response *res);
void handle_readyz(const http_request *req, store_t *store, http_response *res);

void handle_create(const http_request *req, store_t *store, http_response *res);
void handle_get_draft(const http_request *req, store_t *store, http_response *res);
void handle_save(const http_request *req, store_t *store, http_response *res);
void handle_publish(const http_request *req, store_t *store, http_response *res);
void handle_unpublish(const http_request *req, store_t *store, http_response *res);
void handle_delete(const http_request *req, store_t *store, http_response *res);
void handle_category_create(const http_request *req, store_t *store, http_response *res);

/* History (history.c). */
void handle_versions_list(const http_request *req, store_t *store, http_response *res);
void handle_version_get(const http_request *req, store_t *store, http_response *res);
void handle_version_restore(const http_request *req, store_t *store, http_response *res);
void handle_diff(const http_request *req, store_t *store, http_response *res);
void handle_autosave_put(const http_request *req, store_t *store, http_response *res);
void handle_autosave_get(const http_request *req, store_t *store, http_response *res);
/* The version representation of docs/api.md: {"item","site", metadata,
 * "content"}; snapshot is borrowed. NULL when out of memory. */
struct store_version_meta;
json_t *history_version_json(const char *site, int64_t id, const struct store_version_meta *meta, json_t *snapshot);
/* What every write that appends a version does before answering: the
 * public item's invalidation when it is published, and the diff to the
 * previous version queued for precomputing, unless the write queued it
 * in its own transaction (diff_queued: store_item_save_draft_diffed). */
void history_after_save(api_ctx *c, int64_t id, const json_t *draft, int64_t version, bool diff_queued);
/* Drops the rendered versions and diffs of an item (deleted), or of all
 * (retention removed versions). */
void history_forget_item(int64_t site_id, int64_t id);
void history_forget_all(void);
/* The same cache for other renderings that never change under a key the
 * caller makes (a preview page: token, published version, format):
 * history_send_cached answers 200 with the document kept under key, if
 * any (no header of its own). A rendering is written to the stream of
 * history_render_begin (NULL when out of memory), which refuses to grow
 * past history.max_render_bytes: the renderer stops at its first refused
 * write (ferror). history_render_send then answers 200 with the document
 * and keeps it under key, dropped with the item's history; or, when the
 * bound was reached, 422 too_large_to_render naming `what`, the limit and
 * source_bytes (the size of what was being rendered); or 500.
 * content_type must be static. history_render_json writes a JSON document
 * (compact) to the stream, stopping when it refuses. */
typedef struct history_render {
    textbuf buf;
    FILE *out;
    bool failed; /* a write failed for another reason than the bound */
} history_render;
FILE *history_render_begin(history_render *r);
void history_render_send(api_ctx *c, history_render *r, const char *key, int64_t site_id, int64_t id,
                         const char *content_type, const char *what, size_t source_bytes);
void history_render_json(history_render *r, const json_t *doc);
bool history_send_cached(api_ctx *c, const char *key);

/* Preview links (previews.c). */
void handle_preview_create(const http_request *req, store_t *store, http_response *res);
void handle_preview_revoke(const http_request *req, store_t *store, http_response *res);
void handle_preview(const http_request *req, store_t *store, http_response *res);

bool handle_view_cached(const http_request *req, http_response *res);
void handle_cache_stats(const http_request *req, store_t *store, http_response *res);
void handle_cache_invalidate(const http_request *req, store_t *store, http_response *res);
void handle_cache_warm(const http_request *req, store_t *store, http_response *res);
void handle_cache_flush(const http_request *req, store_t *store, http_response *res);
void handle_debug_faults(const http_request *req, store_t *store, http_response *res);
void handle_schedule_get(const http_request *req, store_t *store, http_response *res);  /* schedules.c */
void handle_schedule_put(const http_request *req, store_t *store, http_response *res);  /* schedules.c */
void handle_tokens_list(const http_request *req, store_t *store, http_response *res);   /* tokens.c */
void handle_tokens_create(const http_request *req, store_t *store, http_response *res); /* tokens.c */
void handle_tokens_revoke(const http_request *req, store_t *store, http_response *res); /* tokens.c */
/* Webhook subscriptions and their delivery log (webhooks.c). */
void handle_webhooks_list(const http_request *req, store_t *store, http_response *res);
void handle_webhooks_create(const http_request *req, store_t *store, http_response *res);
void handle_webhook_get(const http_request *req, store_t *store, http_response *res);
void handle_webhook_delete(const http_request *req, store_t *store, http_response *res);
void handle_webhook_test(const http_request *req, store_t *store, http_response *res);
void handle_webhook_deliveries(const http_request *req, store_t *store, http_response *res);
/* The token of hash, from memory when this instance holds it and may
 * trust it, else from the database (tokens.c). */
int tokens_lookup(store_t *store, const uint8_t hash[32], store_token *out);
void handle_jobs_stats(const http_request *req, store_t *store, http_response *res);
void handle_metrics(const http_request *req, store_t *store, http_response *res);             /* monitoring.c */
void handle_performance_metrics(const http_request *req, store_t *store, http_response *res); /* monitoring.c */
void handle_slow_queries(const http_request *req, store_t *store, http_response *res);        /* monitoring.c */
void handle_alerts(const http_request *req, store_t *store, http_response *res);              /* alerts_api.c */
void handle_vitals_summary(const http_request *req, store_t *store, http_response *res);      /* vitals_api.c */

#endif

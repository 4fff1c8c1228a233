/*
 * fuzz_list.c — the public list route's query, whole: GET
 * /v1/main/content?QUERY as a worker runs it for an anonymous reader
 * (handle_list in src/content/reads.c: type, category, tag, sort, status,
 * limit, the filters on declared fields and their typing against the
 * declarations, the search, the cursor, select and include), against a
 * real SQLite database in memory with the demo content (30 items, 2
 * versions each) and three declared fields of post: `featured` (bool),
 * `reading_minutes` (number) and `subtitle` (text, in no item).
 *
 * The input is the query string (without '?'), NULs kept. What must hold:
 *   - the answer is 200 (a page), 400 (a refused query) or 401 (a status
 *     other than published asked without a token) — a 500 would be a
 *     statement the query could break, a crash or a leak anything worse;
 *   - a refusal is problem+json, and a page is a JSON object with an
 *     `items` array of at most the page's limit (100);
 *   - the response cache's key agrees with the handler
 *     (field_filters_cache_key's contract, field_filters.h): given room
 *     for any key of the query, one it gives no key (-1: the handler
 *     refuses it) is never answered 200 — else whether a query is
 *     refused would depend on whether its answer was cached;
 *   - run as an event loop runs a bounded read (http_request.on_loop), it
 *     answers the same status and bytes, or asks for a worker
 *     (needs_worker: a range it would have to sort) having answered
 *     nothing.
 * The server hands the handler and the key the same NUL-terminated query
 * (h2o refuses a NUL in a request line), so both get it up to its first
 * NUL here.
 *
 * FUZZ_VERBOSE: print each answer's status and body (to check the seeds).
 */
#include <jansson.h>

#include "content/api.h"
#include "content/content.h"
#include "content/field_filters.h"
#include "fuzz.h"

#define LIST_LIMIT_MAX 100

static store_t *store;
static strata_config cfg;
static bool verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    int64_t site_id;
    config_defaults(&cfg);
    content_init(&cfg);
    if (store_open(":memory:", &store) != STORE_OK || store_migrate(store, NULL) != STORE_OK ||
        store_site_create(store, "main", &site_id) != STORE_OK ||
        store_seed_demo(store, site_id, "main", 30, 2, 1) != STORE_OK ||
        store_field_index_declare(store, site_id, "post", "featured", FIELD_BOOL) != STORE_OK ||
        store_field_index_declare(store, site_id, "post", "reading_minutes", FIELD_NUMBER) != STORE_OK ||
        store_field_index_declare(store, site_id, "post", "subtitle", FIELD_TEXT) != STORE_OK)
        abort();
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

/* A page: a JSON object whose `items` is an array of at most the limit. */
static bool is_page(const http_response *res)
{
    json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
    json_t *items = json_object_get(doc, "items");
    bool ok = json_is_array(items) && json_array_size(items) <= LIST_LIMIT_MAX;
    json_decref(doc);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *query = fuzz_strndup(data, size);
    http_request req;
    http_response res = {0};
    fuzz_request(&req);
    req.method = HTTP_GET;
    req.path = "/v1/main/content";
    req.query = query;
    req.params[0] = "main";
    req.param_len[0] = 4;
    req.param_count = 1;
    handle_list(&req, store, &res);
    if (verbose)
        fprintf(stderr, "status %d %.*s\n", res.status, (int)res.body_len, res.body);

    if (res.status != 200 && res.status != 400 && res.status != 401)
        fuzz_fail("the list answered other than 200, 400 or 401");
    if (res.status != 200 && (res.content_type == NULL || strcmp(res.content_type, "application/problem+json") != 0))
        fuzz_fail("a refused list query is not answered problem+json");
    if (res.status == 200 && !is_page(&res))
        fuzz_fail("a list answered 200 is not a page of at most 100 items");
    size_t key_size = 4 * size + 4096; /* room for any key of this query: -1 is then a refusal */
    char *key = malloc(key_size);
    if (key == NULL)
        abort();
    if (res.status == 200 && field_filters_cache_key(query, strlen(query), key, key_size) < 0)
        fuzz_fail("a query the cache gives no key (the handler's refusal) was answered 200");
    free(key);

    http_response looped = {0};
    req.on_loop = true;
    handle_list(&req, store, &looped);
    if (looped.needs_worker && looped.status != 0)
        fuzz_fail("on a loop, the list asked for a worker after answering");
    if (!looped.needs_worker && (looped.status != res.status || looped.body_len != res.body_len ||
                                 (res.body_len > 0 && memcmp(looped.body, res.body, res.body_len) != 0)))
        fuzz_fail("on a loop, the list answered otherwise than on a worker");
    http_response_free(&looped);

    http_response_free(&res);
    free(query);
    return 0;
}

/*
 * fuzz_route.c — request-target decoding and the response cache's key
 * normaliser (src/http/router.c, src/http/response_cache.c), against the
 * real route table (src/content/routes.c).
 *
 * The input is one byte choosing the method, then the target as a client
 * sends it ("/v1/main/content/0012?limit=020&tag=a%2Fb"). It goes the way
 * server.c takes it: http_route_find on the raw path, the percent-decoded
 * path parameters a worker gets (http_request_set_params), and for a route
 * with a cache rule the normalised key (rc_key), built twice to check it is
 * stable and bounded; then the handlers' side, http_cache_holds, which
 * normalises a target again and looks it up in a real L1. The query reader
 * every handler uses (http_query_value) reads a few names into a small
 * and a large buffer: a value that fits the large one must also be
 * reported, not cut, by the small one.
 */
#include "content/content.h"
#include "fuzz.h"
#include "http/response_cache.h"

static strata_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    config_defaults(&cfg);
    cfg.redis_url[0] = '\0'; /* the L1 only */
    if (rc_init(&cfg, content_routes, content_route_count) != 0)
        abort();
    return 0;
}

static const http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_OPTIONS};

static void key_check(int index, const char *path, const http_captures *caps, const char *query, size_t query_len)
{
    char key[RC_KEY_MAX], again[RC_KEY_MAX], site[RC_SITE_MAX + 1], site_again[RC_SITE_MAX + 1];
    uint32_t ns, ns_again;
    size_t len = rc_key(index, path, caps, query, query_len, key, &ns, site);
    size_t len_again = rc_key(index, path, caps, query, query_len, again, &ns_again, site_again);
    if (len >= RC_KEY_MAX || len != len_again || memcmp(key, again, len) != 0 || strcmp(site, site_again) != 0 ||
        strlen(site) > RC_SITE_MAX)
        abort();
}

static void query_check(const char *query, size_t query_len)
{
    static const char *const names[] = {"limit", "cursor", "tag", "from", "format"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char small[8], large[512];
        long n_large = http_query_value(query, query_len, names[i], large, sizeof large);
        long n_small = http_query_value(query, query_len, names[i], small, sizeof small);
        if (n_large >= (long)sizeof large || (n_large >= 0 && (long)strlen(large) != n_large))
            abort();
        if (n_small >= 0 && (n_small != n_large || memcmp(small, large, (size_t)n_small + 1) != 0))
            abort();
        if (n_large == -1 && n_small != -1)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    http_method method = methods[data[0] % (sizeof methods / sizeof methods[0])];
    char *target = fuzz_strndup(data + 1, size - 1);
    size_t target_len = size - 1;
    const char *q = memchr(target, '?', target_len);
    size_t path_len = q != NULL ? (size_t)(q - target) : target_len;
    const char *query = q != NULL ? q + 1 : "";
    size_t query_len = q != NULL ? target_len - path_len - 1 : 0;

    http_captures caps;
    unsigned allowed = 0;
    int index = http_route_find(content_routes, content_route_count, method, target, path_len, &caps, &allowed);
    if (index >= 0) {
        http_request req;
        fuzz_request(&req);
        if (http_request_set_params(&req, target, &caps) == 0 && req.param_count != caps.count)
            abort();
        for (size_t i = 0; i < req.param_count; i++)
            free(req.params[i]);
        if (content_routes[index].cache != NULL)
            key_check(index, target, &caps, query, query_len);
    }
    query_check(query, query_len);
    if (memchr(target, '\0', target_len) == NULL)
        http_cache_holds(target);
    free(target);
    return 0;
}

/*
 * fuzz_etag.c — the If-None-Match and If-Match readers: the entity-tag
 * list matcher every 304 goes through (http_etag_list_matches in
 * src/http/response.c, called by the cache hit path and the history
 * routes) and the If-Match reader of every editor write
 * (api_if_match_version in src/content/api.c).
 *
 * The input is an entity tag, a newline, then the header value. The list
 * matcher gets the header as h2o holds it (not NUL-terminated) and must
 * find a well-formed tag in a list made of it alone, weak or not. The
 * If-Match reader gets the NUL-terminated copy a worker gets and must
 * either give a positive version, or 0 for "*" alone ("whatever is
 * current", resolved by the store inside the write), or answer 412.
 */
#include "content/api.h"
#include "fuzz.h"

static void list_check(const uint8_t *header, size_t header_len, const uint8_t *etag, size_t etag_len)
{
    char *h = malloc(header_len + 1); /* +1: never 0 bytes; the byte after is not read */
    if (h == NULL)
        abort();
    if (header_len > 0)
        memcpy(h, header, header_len);
    http_etag_list_matches(h, header_len, (const char *)etag, etag_len);
    free(h);
    /* RFC 9110 8.8.3: DQUOTE, then etagc (visible ASCII but DQUOTE), DQUOTE */
    bool well_formed = etag_len >= 2 && etag_len <= 256 && etag[0] == '"' && etag[etag_len - 1] == '"';
    for (size_t i = 1; well_formed && i + 1 < etag_len; i++)
        well_formed = etag[i] >= 0x21 && etag[i] <= 0x7e && etag[i] != '"' && etag[i] != ',';
    if (!well_formed)
        return;
    char list[600];
    int n = snprintf(list, sizeof list, " W/%.*s, %.*s", (int)etag_len, etag, (int)etag_len, etag);
    if (!http_etag_list_matches(list, (size_t)n, (const char *)etag, etag_len) ||
        !http_etag_list_matches(list + 1, etag_len + 2, (const char *)etag, etag_len) ||
        !http_etag_list_matches(list + 3 + etag_len + 2, etag_len, (const char *)etag, etag_len))
        abort();
}

static void if_match_check(const uint8_t *header, size_t header_len)
{
    char *value = fuzz_strndup(header, header_len);
    bool any = strcmp(value + strspn(value, " "), "*") == 0;
    http_request req;
    http_response res = {0};
    fuzz_request(&req);
    req.if_match = value;
    api_ctx c = {.req = &req, .res = &res};
    int64_t version = -1;
    bool ok = api_if_match_version(&c, true, &version);
    if (ok ? (any ? version != 0 : version <= 0) || res.status != 0 : any || res.status != 412)
        abort();
    http_response_free(&res);
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t etag_len, header_len;
    const uint8_t *header = fuzz_split(data, size, '\n', &etag_len, &header_len);
    list_check(header, header_len, data, etag_len);
    if_match_check(header, header_len);
    return 0;
}

/*
 * cors.c — cross-origin resource sharing per site (see cors.h).
 *
 * cors.origins reads "SITE=ORIGIN ORIGIN…;SITE=*;*=ORIGIN…": each site its
 * list or `*`, and `*` as a site the policy of every site not named. An
 * origin is scheme://host[:port] (http or https, lowercased as browsers
 * send it), nothing after. The table is built once, before the loops
 * start, and only read afterwards.
 *
 * The path names the site: /v1/{site}/…, the only routes a site's pages
 * call. A preflight (OPTIONS with Origin and Access-Control-Request-Method)
 * is answered 204 with the path's methods, the request headers strata
 * reads (Authorization, Content-Type, If-Match, If-None-Match, Strata-LSN)
 * and Access-Control-Max-Age (cors.max_age_s; browsers cap it: Chromium at
 * 2 h, hence the default), or 403 with the reason; the other responses
 * get their headers from the filter as they leave.
 */
#include "http/cors.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "http/server_internal.h"

#define CORS_SITES_MAX 64
#define CORS_ORIGINS_MAX 256
#define CORS_ORIGIN_MAX 255
#define CORS_SITE_MAX 64

typedef struct cors_site {
    char name[CORS_SITE_MAX + 1]; /* "*": every site not named */
    bool any;                     /* `*`: every origin */
    size_t first, count;          /* its origins in the table's list */
} cors_site;

typedef struct cors_table {
    cors_site sites[CORS_SITES_MAX];
    size_t site_count;
    char origins[CORS_ORIGINS_MAX][CORS_ORIGIN_MAX + 1];
    size_t origin_count;
    char max_age[16];
} cors_table;

static cors_table table;

static const char allowed_headers[] = "authorization, content-type, if-match, if-none-match, strata-lsn";
static const char exposed_headers[] =
    "etag, cache-status, strata-lsn, retry-after, ratelimit, ratelimit-policy, x-request-id, server-timing, location";

/* ---- configuration ----------------------------------------------------------------- */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '[' || c == ']' || c == ':';
}

/* scheme://host[:port], nothing more; lowercased into out. */
static bool origin_parse(const char *text, size_t len, char out[CORS_ORIGIN_MAX + 1])
{
    size_t scheme = len >= 7 && strncasecmp(text, "http://", 7) == 0    ? 7
                    : len >= 8 && strncasecmp(text, "https://", 8) == 0 ? 8
                                                                        : 0;
    if (scheme == 0 || len == scheme || len > CORS_ORIGIN_MAX)
        return false;
    for (size_t i = scheme; i < len; i++)
        if (!host_char(text[i]))
            return false;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)text[i]);
    out[len] = '\0';
    return true;
}

static bool site_name_ok(const char *text, size_t len)
{
    if (len == 1 && text[0] == '*')
        return true;
    if (len == 0 || len > CORS_SITE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)text[i]) && text[i] != '-' && text[i] != '_')
            return false;
    return true;
}

/* The origins of one entry ("a b,c" or "*") into t for site s. */
static int origins_parse(cors_table *t, cors_site *s, const char *text, size_t len, char err[CONFIG_ERR_MAX])
{
    s->first = t->origin_count;
    for (size_t at = 0; at < len;) {
        while (at < len && (text[at] == ' ' || text[at] == ','))
            at++;
        size_t end = at;
        while (end < len && text[end] != ' ' && text[end] != ',')
            end++;
        if (end == at)
            break;
        if (end - at == 1 && text[at] == '*') {
            s->any = true;
        } else if (t->origin_count == CORS_ORIGINS_MAX) {
            snprintf(err, CONFIG_ERR_MAX, "cors.origins: more than %d origins", CORS_ORIGINS_MAX);
            return -1;
        } else if (!origin_parse(text + at, end - at, t->origins[t->origin_count])) {
            snprintf(err, CONFIG_ERR_MAX,
                     "cors.origins: '%.*s' is not an origin (scheme://host[:port], http or https, no path)",
                     (int)(end - at), text + at);
            return -1;
        } else {
            t->origin_count++;
        }
        at = end;
    }
    s->count = t->origin_count - s->first;
    if (!s->any && s->count == 0) {
        snprintf(err, CONFIG_ERR_MAX, "cors.origins: site '%s' has no origin (give a list, or *)", s->name);
        return -1;
    }
    return 0;
}

static int entry_parse(cors_table *t, const char *text, size_t len, char err[CONFIG_ERR_MAX])
{
    const char *eq = memchr(text, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - text) : 0;
    while (name_len > 0 && text[name_len - 1] == ' ')
        name_len--;
    size_t skip = 0;
    while (skip < name_len && text[skip] == ' ')
        skip++;
    if (eq == NULL || !site_name_ok(text + skip, name_len - skip)) {
        snprintf(err, CONFIG_ERR_MAX, "cors.origins: '%.*s' is not SITE=ORIGIN ORIGIN… or SITE=* (SITE may be *)",
                 (int)len, text);
        return -1;
    }
    if (t->site_count == CORS_SITES_MAX) {
        snprintf(err, CONFIG_ERR_MAX, "cors.origins: more than %d sites", CORS_SITES_MAX);
        return -1;
    }
    cors_site *s = &t->sites[t->site_count];
    snprintf(s->name, sizeof s->name, "%.*s", (int)(name_len - skip), text + skip);
    for (size_t i = 0; i < t->site_count; i++)
        if (strcmp(t->sites[i].name, s->name) == 0) {
            snprintf(err, CONFIG_ERR_MAX, "cors.origins: site '%s' is named twice", s->name);
            return -1;
        }
    if (origins_parse(t, s, eq + 1, len - (size_t)(eq + 1 - text), err) != 0)
        return -1;
    t->site_count++;
    return 0;
}

int cors_configure(const strata_config *cfg, char err[CONFIG_ERR_MAX])
{
    static cors_table parsed; /* 64 KB: not on the stack */
    memset(&parsed, 0, sizeof parsed);
    const char *text = cfg->cors_origins;
    for (size_t at = 0, len = strlen(text); at < len;) {
        const char *semi = memchr(text + at, ';', len - at);
        size_t end = semi != NULL ? (size_t)(semi - text) : len;
        bool blank = true;
        for (size_t i = at; i < end; i++)
            blank = blank && text[i] == ' ';
        if (!blank && entry_parse(&parsed, text + at, end - at, err) != 0)
            return -1;
        at = end + 1;
    }
    snprintf(parsed.max_age, sizeof parsed.max_age, "%d", cfg->cors_max_age_s);
    table = parsed;
    return 0;
}

/* ---- lookups ----------------------------------------------------------------------- */

/* The policy of the site the path names (/v1/{site}/…), or NULL. */
static const cors_site *site_of(const h2o_req_t *req)
{
    static const char prefix[] = "/v1/";
    if (table.site_count == 0 || req->path.len <= sizeof prefix - 1 ||
        memcmp(req->path.base, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *name = req->path.base + sizeof prefix - 1, *end = req->path.base + req->path.len;
    size_t len = 0;
    while (name + len < end && name[len] != '/' && name[len] != '?')
        len++;
    const cors_site *fallback = NULL;
    for (size_t i = 0; i < table.site_count; i++) {
        const cors_site *s = &table.sites[i];
        if (strlen(s->name) == len && memcmp(s->name, name, len) == 0)
            return s;
        if (strcmp(s->name, "*") == 0)
            fallback = s;
    }
    return fallback;
}

static bool origin_listed(const cors_site *s, h2o_iovec_t origin)
{
    for (size_t i = s->first; i < s->first + s->count; i++)
        if (strlen(table.origins[i]) == origin.len && memcmp(table.origins[i], origin.base, origin.len) == 0)
            return true;
    return false;
}

static bool request_header(h2o_req_t *req, const char *name, size_t name_len, h2o_iovec_t *value)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, name, name_len, -1);
    if (at < 0)
        return false;
    *value = req->headers.entries[at].value;
    return true;
}

static void response_header(h2o_req_t *req, const char *name, size_t name_len, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 0, NULL, value, len);
}

/* ---- every response ------------------------------------------------------------------ */

static void on_setup_cors_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    const cors_site *s = site_of(req);
    if (s != NULL) {
        h2o_iovec_t origin = {NULL, 0};
        bool has_origin = request_header(req, H2O_STRLIT("origin"), &origin);
        if (!s->any)
            response_header(req, H2O_STRLIT("vary"), H2O_STRLIT("origin"));
        if (s->any || (has_origin && origin_listed(s, origin))) {
            if (s->any)
                response_header(req, H2O_STRLIT("access-control-allow-origin"), H2O_STRLIT("*"));
            else
                response_header(req, H2O_STRLIT("access-control-allow-origin"), origin.base, origin.len);
            response_header(req, H2O_STRLIT("access-control-expose-headers"), exposed_headers,
                            sizeof exposed_headers - 1);
        }
    }
    h2o_setup_next_ostream(req, slot);
}

void cors_register(h2o_pathconf_t *pathconf)
{
    if (table.site_count == 0)
        return; /* no policy: not a call more per response */
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = on_setup_cors_ostream;
}

/* ---- preflight ------------------------------------------------------------------------ */

bool cors_is_preflight(h2o_req_t *req)
{
    h2o_iovec_t ignored;
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
           request_header(req, H2O_STRLIT("origin"), &ignored) &&
           request_header(req, H2O_STRLIT("access-control-request-method"), &ignored);
}

bool cors_preflight(h2o_req_t *req, unsigned methods, char *detail, size_t detail_size)
{
    const cors_site *s = site_of(req);
    h2o_iovec_t origin = {NULL, 0}, wanted = {NULL, 0};
    request_header(req, H2O_STRLIT("origin"), &origin);
    request_header(req, H2O_STRLIT("access-control-request-method"), &wanted);
    if (methods & HTTP_GET)
        methods |= HTTP_HEAD;
    char allow[96];
    request_allow_value(methods, allow, sizeof allow);
    if (s == NULL) {
        snprintf(detail, detail_size,
                 "no cross-origin request is allowed on this path (cors.origins names no site of it)");
        return false;
    }
    if (!s->any && !origin_listed(s, origin)) {
        snprintf(detail, detail_size, "the origin %.*s may not call this site (cors.origins)",
                 (int)(origin.len < 200 ? origin.len : 200), origin.base);
        return false;
    }
    if ((methods & request_method_bit(wanted)) == 0) {
        snprintf(detail, detail_size, "%.*s is not allowed on this path; use %s",
                 (int)(wanted.len < 20 ? wanted.len : 20), wanted.base, allow);
        return false;
    }
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_iovec_t methods_value = h2o_strdup(&req->pool, allow, SIZE_MAX);
    response_header(req, H2O_STRLIT("access-control-allow-methods"), methods_value.base, methods_value.len);
    response_header(req, H2O_STRLIT("access-control-allow-headers"), allowed_headers, sizeof allowed_headers - 1);
    response_header(req, H2O_STRLIT("access-control-max-age"), table.max_age, strlen(table.max_age));
    h2o_send_inline(req, "", 0);
    return true;
}

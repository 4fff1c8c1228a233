/*
 * router.c — matching a method and a raw path against the route table.
 *
 * Patterns are split on '/' and compared segment by segment; a ':' segment
 * captures. Matching works on the raw path and percent-decodes each captured
 * segment on its own, so an encoded slash (%2F) stays inside its segment and
 * can never change which route matches. The table is small (tens of routes)
 * and a linear scan of it costs less than hashing would.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes; a malformed escape is kept literally. Returns a
 * malloc'd NUL-terminated string and its decoded length. */
static char *percent_decode(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* Compares one route pattern with the path; captures into req on a match. */
static bool pattern_matches(const char *pattern, const char *path, size_t path_len, http_request *req)
{
    const char *p = pattern, *s = path, *end = path + path_len;
    size_t captured = 0;
    char *values[HTTP_MAX_PARAMS];
    size_t lengths[HTTP_MAX_PARAMS];
    bool ok = true;

    while (ok) {
        if (*p != '/' || s >= end || *s != '/') {
            ok = *p == '\0' && s == end;
            break;
        }
        p++, s++;
        const char *p_end = strchr(p, '/');
        if (p_end == NULL)
            p_end = p + strlen(p);
        const char *s_end = memchr(s, '/', (size_t)(end - s));
        if (s_end == NULL)
            s_end = end;
        if (*p == ':') {
            if (s_end == s || captured == HTTP_MAX_PARAMS) {
                ok = false;
                break;
            }
            if (req != NULL) {
                values[captured] = percent_decode(s, (size_t)(s_end - s), &lengths[captured]);
                if (values[captured] == NULL) {
                    ok = false;
                    break;
                }
            }
            captured++;
        } else if ((size_t)(p_end - p) != (size_t)(s_end - s) || memcmp(p, s, (size_t)(p_end - p)) != 0) {
            ok = false;
        }
        p = p_end, s = s_end;
    }

    if (req == NULL)
        return ok;
    if (!ok) {
        for (size_t i = 0; i < captured; i++)
            free(values[i]);
        return false;
    }
    for (size_t i = 0; i < captured; i++) {
        req->params[i] = values[i];
        req->param_len[i] = lengths[i];
    }
    req->param_count = captured;
    return true;
}

int http_route_match(const http_route *routes, size_t route_count, http_method method, const char *path,
                     size_t path_len, http_request *req, unsigned *allowed)
{
    *allowed = 0;
    http_method effective = method == HTTP_HEAD ? HTTP_GET : method;
    for (size_t i = 0; i < route_count; i++) {
        if (!pattern_matches(routes[i].pattern, path, path_len, NULL))
            continue;
        *allowed |= routes[i].methods;
        if ((routes[i].methods & effective) == 0)
            continue;
        if (!pattern_matches(routes[i].pattern, path, path_len, req))
            return -1; /* out of memory */
        req->route_id = (int)i;
        return (int)i;
    }
    if (*allowed & HTTP_GET)
        *allowed |= HTTP_HEAD;
    return -1;
}

/*
 * router.c — matching a method and a raw path against the route table.
 *
 * Patterns are split on '/' and compared segment by segment; a ':' segment
 * captures. Matching works on the raw path without allocating (a cache hit
 * routes every request) and records where each capture sits; decoding is a
 * separate step, per segment, so an encoded slash (%2F) stays inside its
 * segment and can never change which route matches. The table is small
 * (tens of routes) and a linear scan of it costs less than hashing would.
 * The query string's parameters are read here too, by one function for
 * every reader.
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

/* Compares one route pattern with the path, recording captures. */
static bool pattern_matches(const char *pattern, const char *path, size_t path_len, http_captures *caps)
{
    const char *p = pattern, *s = path, *end = path + path_len;
    caps->count = 0;
    for (;;) {
        if (*p != '/' || s >= end || *s != '/')
            return *p == '\0' && s == end;
        p++, s++;
        const char *p_end = strchr(p, '/');
        if (p_end == NULL)
            p_end = p + strlen(p);
        const char *s_end = memchr(s, '/', (size_t)(end - s));
        if (s_end == NULL)
            s_end = end;
        if (*p == ':') {
            if (s_end == s || caps->count == HTTP_MAX_PARAMS)
                return false;
            caps->offset[caps->count] = (size_t)(s - path);
            caps->length[caps->count] = (size_t)(s_end - s);
            caps->count++;
        } else if ((size_t)(p_end - p) != (size_t)(s_end - s) || memcmp(p, s, (size_t)(p_end - p)) != 0) {
            return false;
        }
        p = p_end, s = s_end;
    }
}

int http_route_find(const http_route *routes, size_t route_count, http_method method, const char *path, size_t path_len,
                    http_captures *caps, unsigned *allowed)
{
    http_method effective = method == HTTP_HEAD ? HTTP_GET : method;
    for (size_t i = 0; i < route_count; i++)
        if ((routes[i].methods & effective) != 0 && pattern_matches(routes[i].pattern, path, path_len, caps))
            return (int)i;
    /* No route: which methods would the path take (405 and Allow)? */
    *allowed = 0;
    for (size_t i = 0; i < route_count; i++)
        if (pattern_matches(routes[i].pattern, path, path_len, caps))
            *allowed |= routes[i].methods;
    if (*allowed & HTTP_GET)
        *allowed |= HTTP_HEAD;
    return -1;
}

long http_capture_decode(const char *path, const http_captures *caps, size_t index, char *out, size_t size)
{
    const char *s = path + caps->offset[index];
    size_t len = caps->length[index], n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        char ch = s[i];
        if (ch == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0) {
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (n + 1 >= size)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return (long)n;
}

long http_form_decode(const char *src, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        int hi, lo;
        if (ch == '+')
            ch = ' ';
        else if (ch == '%' && i + 2 < len && (hi = hex_value(src[i + 1])) >= 0 && (lo = hex_value(src[i + 2])) >= 0) {
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ch == '\0' || n + 1 >= size)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return (long)n;
}

long http_query_value(const char *query, size_t query_len, const char *name, char *out, size_t size)
{
    size_t name_len = strlen(name);
    const char *q = query, *end = query + query_len;
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t len = amp ? (size_t)(amp - q) : (size_t)(end - q);
        if (len > name_len && memcmp(q, name, name_len) == 0 && q[name_len] == '=') {
            long n = http_form_decode(q + name_len + 1, len - name_len - 1, out, size);
            return n < 0 ? -2 : n;
        }
        q = amp ? amp + 1 : NULL;
    }
    return -1;
}

int http_request_set_params(http_request *req, const char *path, const http_captures *caps)
{
    req->param_count = 0;
    for (size_t i = 0; i < caps->count; i++) {
        size_t size = caps->length[i] + 1;
        char *value = malloc(size);
        long n = value != NULL ? http_capture_decode(path, caps, i, value, size) : -1;
        if (n < 0) {
            free(value);
            return -1;
        }
        req->params[i] = value;
        req->param_len[i] = (size_t)n;
        req->param_count++;
    }
    return 0;
}

/*
 * db_url.c — PostgreSQL URLs told from SQLite paths, and shown without
 * their passwords (see db_url.h).
 *
 * The URL grammar is libpq's (RFC 3986 with libpq's query parameters):
 * the userinfo ends at the last '@' before the path, and its password is
 * what follows the first ':' in it; query parameters are '&'-separated
 * `key=value`. Nothing is decoded: the redacted text is the original with
 * the secret bytes replaced.
 */
#include "core/db_url.h"

#include <string.h>
#include <strings.h>

#define MASK "***"

bool db_url_is_postgres(const char *url)
{
    return url != NULL && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

/* Appends n bytes of s to out[*len] (cut to size - 1). */
static void put(char *out, size_t size, size_t *len, const char *s, size_t n)
{
    size_t room = size - 1 - *len;
    if (n > room)
        n = room;
    memcpy(out + *len, s, n);
    *len += n;
}

/* The query part: every password=… value masked. */
static void put_query(char *out, size_t size, size_t *len, const char *query)
{
    while (*query != '\0') {
        size_t n = strcspn(query, "&");
        const char *eq = memchr(query, '=', n);
        if (eq != NULL && (size_t)(eq - query) == 8 && strncasecmp(query, "password", 8) == 0) {
            put(out, size, len, query, 9);
            put(out, size, len, MASK, strlen(MASK));
        } else {
            put(out, size, len, query, n);
        }
        query += n;
        if (*query == '&')
            put(out, size, len, query++, 1);
    }
}

char *db_url_redact(const char *url, char *out, size_t size)
{
    if (size == 0)
        return out;
    size_t len = 0;
    if (!db_url_is_postgres(url)) {
        put(out, size, &len, url, strlen(url));
        out[len] = '\0';
        return out;
    }
    const char *rest = strstr(url, "://") + 3;
    put(out, size, &len, url, (size_t)(rest - url));
    size_t authority = strcspn(rest, "/?#");
    const char *at = NULL;
    for (const char *p = rest; p < rest + authority; p++)
        if (*p == '@')
            at = p;
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        put(out, size, &len, rest, (size_t)((colon != NULL ? colon : at) - rest));
        if (colon != NULL)
            put(out, size, &len, ":" MASK, strlen(MASK) + 1);
        rest = at;
    }
    size_t before_query = strcspn(rest, "?");
    put(out, size, &len, rest, before_query);
    if (rest[before_query] == '?') {
        put(out, size, &len, "?", 1);
        put_query(out, size, &len, rest + before_query + 1);
    }
    out[len] = '\0';
    return out;
}

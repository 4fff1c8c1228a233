/*
 * db_url.c — PostgreSQL URLs told from SQLite paths, and shown without
 * their passwords (see db_url.h).
 *
 * db_url_mask_secrets is for text that may quote the URL or part of it
 * (a driver's error message): it finds the passwords in the URL, then
 * masks every occurrence of them in the text, wherever they appear.
 *
 * The URL grammar is libpq's (RFC 3986 with libpq's query parameters):
 * the userinfo ends at the last '@' before the path, and its password is
 * what follows the first ':' in it; query parameters are '&'-separated
 * `key=value`. Nothing is decoded: the redacted text is the original with
 * the secret bytes replaced.
 */
#include "core/db_url.h"

#include <stdio.h>
#include <stdlib.h>
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

/* A password as written in a URL: after "user:" in "scheme://user:password@
 * host", or the value of a "password=" parameter. */
typedef struct url_secret {
    const char *at;
    size_t len;
} url_secret;

/* The URL's passwords, longest first (so a short one cannot split a
 * longer one before it is masked); returns how many. */
static size_t url_secrets(const char *url, url_secret out[2])
{
    size_t n = 0;
    const char *authority = strstr(url, "://");
    if (authority != NULL) {
        authority += 3;
        const char *at = memrchr(authority, '@', strcspn(authority, "/?#"));
        const char *colon = at != NULL ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
        if (colon != NULL && at > colon + 1)
            out[n++] = (url_secret){.at = colon + 1, .len = (size_t)(at - colon - 1)};
    }
    const char *param = strcasestr(url, "password=");
    size_t len = param != NULL ? strcspn(param + 9, "& ") : 0;
    if (len > 0)
        out[n++] = (url_secret){.at = param + 9, .len = len};
    if (n == 2 && out[1].len > out[0].len) {
        url_secret longer = out[1];
        out[1] = out[0];
        out[0] = longer;
    }
    return n;
}

void db_url_mask_secrets(const char *url, const char *text, char *out, size_t size)
{
    if (size == 0)
        return;
    url_secret secrets[2];
    size_t n = url_secrets(url, secrets);
    /* masked whole in a buffer of its own, then cut: a cut never leaves
     * half a password (each masked byte may become three) */
    size_t room = strlen(text) * 3 + 8;
    char *work = malloc(room);
    if (work == NULL) {
        snprintf(out, size, "%s", "(the database's words are withheld: out of memory)");
        return;
    }
    snprintf(work, room, "%s", text);
    for (size_t i = 0; i < n; i++) {
        char *hit = memmem(work, strlen(work), secrets[i].at, secrets[i].len);
        while (hit != NULL) {
            memmove(hit + 3, hit + secrets[i].len, strlen(hit + secrets[i].len) + 1);
            memcpy(hit, MASK, 3);
            hit = memmem(hit + 3, strlen(hit + 3), secrets[i].at, secrets[i].len);
        }
    }
    size_t len = strlen(work);
    if (len >= size)
        len = size - 1;
    memcpy(out, work, len);
    out[len] = '\0';
    free(work);
}

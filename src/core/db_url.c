/*
 * db_url.c — PostgreSQL URLs told from SQLite paths, and shown without
 * their passwords (see db_url.h).
 *
 * One parser (url_secrets) finds where the passwords stand in the URL;
 * db_url_redact replaces them there, and db_url_mask_secrets, for text that
 * may quote the URL or part of it (a driver's error message), replaces
 * every occurrence of them in the text, wherever they appear.
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
#define SECRETS_MAX 8 /* the userinfo's password and password= parameters: more are not masked */

bool db_url_is_postgres(const char *url)
{
    return url != NULL && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

/* Where a password stands in the URL. */
typedef struct url_secret {
    const char *at;
    size_t len;
} url_secret;

/* The URL's passwords, in the order they stand: the userinfo's (after the
 * first ':' before the last '@' of the authority), then the value of each
 * password= query parameter. The one parser both functions below use. */
static size_t url_secrets(const char *url, url_secret out[SECRETS_MAX])
{
    if (!db_url_is_postgres(url))
        return 0;
    size_t n = 0;
    const char *authority = strstr(url, "://") + 3;
    size_t authority_len = strcspn(authority, "/?#");
    const char *at = memrchr(authority, '@', authority_len);
    const char *colon = at != NULL ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
    if (colon != NULL)
        out[n++] = (url_secret){.at = colon + 1, .len = (size_t)(at - colon - 1)};
    const char *query = strchr(authority + authority_len, '?');
    for (const char *p = query; p != NULL && n < SECRETS_MAX; p = strchr(p + 1, '&'))
        if (strncasecmp(p + 1, "password=", 9) == 0)
            out[n++] = (url_secret){.at = p + 10, .len = strcspn(p + 10, "&#")};
    return n;
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

char *db_url_redact(const char *url, char *out, size_t size)
{
    if (size == 0)
        return out;
    url_secret secrets[SECRETS_MAX];
    size_t n = url_secrets(url, secrets), len = 0;
    const char *from = url;
    for (size_t i = 0; i < n; i++) {
        put(out, size, &len, from, (size_t)(secrets[i].at - from));
        put(out, size, &len, MASK, strlen(MASK));
        from = secrets[i].at + secrets[i].len;
    }
    put(out, size, &len, from, strlen(from));
    out[len] = '\0';
    return out;
}

/* Longest first, so a short password inside a longer one cannot split it
 * before it is masked. */
static int longer_first(const void *a, const void *b)
{
    size_t la = ((const url_secret *)a)->len, lb = ((const url_secret *)b)->len;
    return la < lb ? 1 : la > lb ? -1 : 0;
}

void db_url_mask_secrets(const char *url, const char *text, char *out, size_t size)
{
    if (size == 0)
        return;
    url_secret secrets[SECRETS_MAX];
    size_t n = url_secrets(url, secrets);
    qsort(secrets, n, sizeof secrets[0], longer_first);
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
        if (secrets[i].len == 0)
            continue;
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

/*
 * fuzz_field_filters.c — field_filters_cache_key (src/content/field_filters.c),
 * the canonical text of a list request's filters on declared fields that
 * becomes part of its cache key, run on the query of every list request,
 * cached or not. The `route` harness reaches it through rc_key; this one
 * checks what the cache relies on it for:
 *
 *   - it answers -1 (refused: never cached) or a length below the buffer,
 *     with the text NUL-terminated there, never writing past the buffer
 *     (an exact-size allocation, so ASan sees one byte over);
 *   - a key that fits does not depend on the buffer's size;
 *   - it is canonical: the same parameters in the reverse order give the
 *     same answer (two spellings of one query share one cache entry);
 *   - it is unambiguous: the text is a sequence of "<length>:<text>"
 *     parts, each length exact, so no two filter sets run together into
 *     one key.
 *
 * Input: one byte choosing the buffer's size (1 + 4 × byte: 1 to 1021
 * bytes; the server's is RC_KEY_MAX), then the query string as the server
 * hands it over (the bytes after `?`).
 */
#include "content/field_filters.h"
#include "fuzz.h"
#include "http/response_cache.h"

/* The query's '&'-separated parameters in the reverse order. */
static char *params_reversed(const char *query, size_t len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        abort();
    size_t used = 0, end = len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && query[start - 1] != '&')
            start--;
        memcpy(out + used, query + start, end - start);
        used += end - start;
        if (start > 0)
            out[used++] = '&';
        end = start > 0 ? start - 1 : 0;
    }
    out[used] = '\0';
    if (used != len)
        fuzz_fail("reversing the parameters changed the query's length");
    return out;
}

/* Whether key is a sequence of "<length>:<text>" parts, each length exact. */
static bool framed(const char *key, size_t len)
{
    size_t at = 0;
    while (at < len) {
        size_t part = 0, digits = 0;
        while (at < len && key[at] >= '0' && key[at] <= '9' && digits < 8) {
            part = part * 10 + (size_t)(key[at++] - '0');
            digits++;
        }
        if (digits == 0 || at >= len || key[at] != ':' || part > len - at - 1)
            return false;
        at += 1 + part;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t out_size = 1 + (size_t)data[0] * 4;
    char *query = fuzz_strndup(data + 1, size - 1);
    size_t query_len = size - 1;
    char *out = malloc(out_size);
    char *wide = malloc(RC_KEY_MAX);
    char *again = malloc(RC_KEY_MAX);
    if (out == NULL || wide == NULL || again == NULL)
        abort();

    long n = field_filters_cache_key(query, query_len, out, out_size);
    if (n < -1 || (n >= 0 && ((size_t)n >= out_size || strlen(out) != (size_t)n)))
        fuzz_fail("the key's length is not the text's, or not below the buffer");
    long wide_n = field_filters_cache_key(query, query_len, wide, RC_KEY_MAX);
    if (n >= 0 && (wide_n != n || memcmp(out, wide, (size_t)n + 1) != 0))
        fuzz_fail("a key that fits depends on the buffer's size");
    if (wide_n > 0 && !framed(wide, (size_t)wide_n))
        fuzz_fail("the key is not a sequence of exact <length>:<text> parts");

    char *reversed = params_reversed(query, query_len);
    long again_n = field_filters_cache_key(reversed, query_len, again, RC_KEY_MAX);
    if (again_n != wide_n || (wide_n >= 0 && memcmp(wide, again, (size_t)wide_n + 1) != 0))
        fuzz_fail("the same parameters in the reverse order give another key");

    free(reversed);
    free(again);
    free(wide);
    free(out);
    free(query);
    return 0;
}

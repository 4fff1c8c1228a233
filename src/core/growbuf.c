/*
 * growbuf.c — the growing byte buffer (growbuf.h): doubling from 4 KB, so
 * a document of n bytes costs O(log n) reallocations, and none once a
 * reused buffer has grown to its documents' size.
 */
#include "core/growbuf.h"

#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"

static bool growbuf_reserve(growbuf *b, size_t more)
{
    if (b->failed)
        return false;
    if (more <= b->cap - b->len)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void growbuf_put(growbuf *b, const char *s, size_t n)
{
    if (growbuf_reserve(b, n)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    }
}

void growbuf_put_int(growbuf *b, int64_t v)
{
    char digits[24];
    growbuf_put(b, digits, fmt_i64(digits, v));
}

void growbuf_free(growbuf *b)
{
    free(b->data);
    *b = (growbuf){0};
}

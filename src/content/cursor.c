/*
 * cursor.c — opaque, signed keyset cursors.
 *
 * A cursor is the position after the last item of a page: the sort key and
 * the id, which is all keyset pagination needs (no OFFSET, so inserts
 * between pages can neither duplicate nor skip an item). It also carries the
 * sort and a hash of the site and filters it was made for (filters on
 * fields and a search's query among them), and an HMAC-SHA256 (cut to 16
 * bytes) under the database's secret, so a client can neither forge a
 * position nor reuse a cursor with another query or on another site. Its
 * text is canonical base64url (core/crypto.h): one cursor has one
 * spelling, so one cache key. Layout, before base64url:
 *
 *   version(1) sort(1) filters(8) id(8) key_int(8) text_len(2) text(n) mac(16)
 */
#include <string.h>

#include "content/api.h"
#include "content/field_filters.h"
#include "core/crypto.h"

#define CURSOR_VERSION 2 /* 2: the site is in the filters hash */
#define CURSOR_HEADER 28
#define CURSOR_MAC 16
#define CURSOR_BYTES_MAX (CURSOR_HEADER + sizeof(((store_keyset *)0)->key_text) + CURSOR_MAC)

/* The identity of a query's site and filters: what the cursor must be
 * reused with. */
static void filters_hash(const store_list_query *q, uint8_t out[8])
{
    char text[512 + SEARCH_RENDER_MAX], fields[17];
    /* filters on fields, then a search's query, each after one more '|'
     * only when given: a plain list's cursors stay as they were */
    field_filters_identity(q, fields);
    int n = snprintf(text, sizeof(text), "%lld|%d|%s|%s|%s%s%s%s%s", (long long)q->site_id, (int)q->status,
                     q->type ? q->type : "", q->category ? q->category : "", q->tag ? q->tag : "", fields[0] ? "|" : "",
                     fields, q->search ? "|q:" : "", q->search ? q->search : "");
    uint8_t full[32];
    crypto_sha256(text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1, full);
    memcpy(out, full, 8);
}

void api_cursor_encode(const store_list_query *q, const store_keyset *k, char out[CURSOR_TEXT_MAX])
{
    uint8_t buf[CURSOR_BYTES_MAX];
    size_t text_len = strnlen(k->key_text, sizeof(k->key_text) - 1);
    buf[0] = CURSOR_VERSION;
    buf[1] = (uint8_t)q->sort;
    filters_hash(q, buf + 2);
    crypto_put_be64(buf + 10, (uint64_t)k->id);
    crypto_put_be64(buf + 18, (uint64_t)k->key_int);
    buf[26] = (uint8_t)(text_len >> 8);
    buf[27] = (uint8_t)text_len;
    memcpy(buf + CURSOR_HEADER, k->key_text, text_len);
    crypto_seal(api_secret(), buf, CURSOR_HEADER + text_len, CURSOR_MAC, out);
}

static bool bad_cursor(api_ctx *c, const char *why)
{
    http_problem(c->res, c->req, 400, "bad_cursor", "%s; start again without 'cursor'", why);
    return false;
}

bool api_cursor_decode(api_ctx *c, const char *text, const store_list_query *q, store_keyset *out)
{
    uint8_t buf[CURSOR_BYTES_MAX];
    long n = crypto_unseal(api_secret(), text, strlen(text), CURSOR_MAC, buf, sizeof(buf));
    if (n < CURSOR_HEADER || buf[0] != CURSOR_VERSION || (size_t)n != CURSOR_HEADER + ((size_t)buf[26] << 8 | buf[27]))
        return bad_cursor(c, "the cursor is not one this server made, or was altered");
    size_t text_len = (size_t)n - CURSOR_HEADER;
    /* the encoder writes at most sizeof(key_text) - 1 bytes; a longer one
     * was not made here, even with a valid MAC (found by fuzz_cursor) */
    if (text_len >= sizeof(out->key_text))
        return bad_cursor(c, "the cursor is not one this server made, or was altered");
    uint8_t expected[8];
    filters_hash(q, expected);
    if (buf[1] != (uint8_t)q->sort || memcmp(expected, buf + 2, 8) != 0)
        return bad_cursor(c, "the cursor was made for another site, sort or other filters than this request's");
    out->present = true;
    out->id = (int64_t)crypto_get_be64(buf + 10);
    out->key_int = (int64_t)crypto_get_be64(buf + 18);
    memcpy(out->key_text, buf + CURSOR_HEADER, text_len);
    out->key_text[text_len] = '\0';
    return true;
}

/*
 * fuzz_cursor.c — the keyset cursors of GET /v1/{site}/content
 * (api_cursor_decode in src/content/cursor.c, over crypto_unseal and
 * base64url_decode in src/core/crypto.c).
 *
 * The first input byte is a mode, the rest a cursor. Bit 0 clear: the rest
 * is the `cursor` text a client sends, decoded as handle_list decodes it —
 * a forged or altered cursor must be refused with 400, and one that is
 * accepted must be the very text this server would make for what it
 * decodes to (one spelling per cursor: issue 11, finding 9). Bit 0 set: the rest
 * is the cursor's payload, sealed here with the process's secret (the
 * all-zero one, as no database is opened) the way api_cursor_encode seals,
 * so the fuzzer reaches the code behind the MAC: the layout and length
 * checks and the copy of the sort key. Unless bit 1 is set, the header of
 * such a payload is made consistent (bytes 1..9 the sort and filter hash
 * of the request's query, bytes 26..27 the length of what follows), so the
 * decoder gets past those checks too. Bits 2-3 pick one of four list
 * queries. A cursor accepted must round-trip: encoding what it decoded
 * and decoding that again gives the same position.
 *
 * FUZZ_SEEDS_OUT=DIR: write real cursors made by api_cursor_encode (and
 * their payloads) as seeds into DIR, then exit.
 */
#include <stdio.h>

#include "content/api.h"
#include "core/crypto.h"
#include "fuzz.h"

#define CURSOR_MAC 16
#define CURSOR_PAYLOAD_MAX (28 + sizeof(((store_keyset *)0)->key_text))

static const store_list_query queries[4] = {
    {.site_id = 1, .site_name = "main", .status = FILTER_PUBLISHED, .sort = SORT_PUBLISHED_DESC, .limit = 20},
    {.site_id = 1, .site_name = "main", .type = "post", .sort = SORT_TITLE_ASC, .limit = 5},
    {.site_id = 1, .site_name = "main", .category = "news", .tag = "breaking", .status = FILTER_ANY, .limit = 100},
    {.site_id = 2, .site_name = "other", .status = FILTER_DRAFT, .sort = SORT_UPDATED_DESC, .limit = 1},
};
static uint8_t query_header[4][10]; /* sort and filter hash of each query's cursors */

/* The payload of a real cursor: its text decoded, the MAC cut off. */
static size_t cursor_payload(const char *text, uint8_t *out, size_t size)
{
    long n = base64url_decode(text, strlen(text), out, size);
    if (n < CURSOR_MAC + 28)
        abort();
    return (size_t)n - CURSOR_MAC;
}

static void seed_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        abort();
}

/* A cursor for query q at position k: as client text, and as its payload. */
static void write_pair(const char *dir, const char *name, int q, const store_keyset *k)
{
    char text[CURSOR_TEXT_MAX], file[64];
    uint8_t seed[1 + CURSOR_TEXT_MAX];
    api_cursor_encode(&queries[q], k, text);
    seed[0] = (uint8_t)(q << 2);
    memcpy(seed + 1, text, strlen(text));
    snprintf(file, sizeof file, "text_%s", name);
    seed_write(dir, file, seed, 1 + strlen(text));
    seed[0] = (uint8_t)(q << 2 | 1);
    size_t n = cursor_payload(text, seed + 1, sizeof seed - 1);
    snprintf(file, sizeof file, "sealed_%s", name);
    seed_write(dir, file, seed, 1 + n);
}

static void seeds_write(const char *dir)
{
    static const store_keyset positions[] = {
        {.present = true, .id = 42, .key_int = 1764806400000},
        {.present = true, .id = 7, .key_text = "Breaking: the council votes"},
        {.present = true, .id = 1, .key_int = 0},
        {.present = true, .id = 9000, .key_int = 1764800000123},
    };
    static store_keyset long_title = {.present = true, .id = 77}; /* titles are up to 500 bytes */
    memset(long_title.key_text, 'T', 500);
    write_pair(dir, "long_title", 1, &long_title);
    for (int q = 0; q < 4; q++) {
        char name[32];
        snprintf(name, sizeof name, "q%d", q);
        write_pair(dir, name, q, &positions[q]);
    }
    exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (int q = 0; q < 4; q++) {
        store_keyset k = {.present = true, .id = 1};
        char text[CURSOR_TEXT_MAX];
        uint8_t payload[CURSOR_PAYLOAD_MAX + CURSOR_MAC];
        api_cursor_encode(&queries[q], &k, text);
        cursor_payload(text, payload, sizeof payload);
        memcpy(query_header[q], payload, 10);
    }
    if (getenv("FUZZ_SEEDS_OUT") != NULL)
        seeds_write(getenv("FUZZ_SEEDS_OUT"));
    return 0;
}

static bool cursor_decode(const char *text, const store_list_query *q, store_keyset *out, int *status)
{
    http_request req;
    http_response res = {0};
    fuzz_request(&req);
    api_ctx c = {.req = &req, .res = &res};
    bool ok = api_cursor_decode(&c, text, q, out);
    *status = res.status;
    http_response_free(&res);
    if (ok ? *status != 0 : *status != 400)
        fuzz_fail("a cursor must be accepted silently or refused with 400");
    return ok;
}

static void accepted_check(const char *text, const store_list_query *q, const store_keyset *k, bool from_client)
{
    char again[CURSOR_TEXT_MAX];
    api_cursor_encode(q, k, again);
    if (from_client && strcmp(again, text) != 0)
        fuzz_fail("a second spelling of a cursor was accepted (issue 11, finding 9)");
    store_keyset back = {0};
    int status;
    if (!cursor_decode(again, q, &back, &status) || back.id != k->id || back.key_int != k->key_int ||
        strcmp(back.key_text, k->key_text) != 0)
        fuzz_fail("a cursor made of what an accepted one decoded to does not decode to the same position");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    const store_list_query *q = &queries[(mode >> 2) & 3];
    char *text;
    if (mode & 1) {
        uint8_t payload[CURSOR_PAYLOAD_MAX + CURSOR_MAC + 32];
        size_t len = size - 1 < CURSOR_PAYLOAD_MAX + 32 ? size - 1 : CURSOR_PAYLOAD_MAX + 32;
        memcpy(payload, data + 1, len);
        if (!(mode & 2) && len >= 28) {
            memcpy(payload, query_header[(mode >> 2) & 3], 10);
            payload[26] = (uint8_t)((len - 28) >> 8);
            payload[27] = (uint8_t)(len - 28);
        }
        text = malloc((len + CURSOR_MAC + 2) / 3 * 4 + 1);
        if (text == NULL)
            abort();
        crypto_seal(api_secret(), payload, len, CURSOR_MAC, text);
    } else {
        text = fuzz_strndup(data + 1, size - 1);
    }
    store_keyset k = {0};
    int status;
    if (cursor_decode(text, q, &k, &status))
        accepted_check(text, q, &k, !(mode & 1));
    free(text);
    return 0;
}

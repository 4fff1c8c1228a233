/*
 * fuzz_preview.c — preview links: GET /preview/{token} as a worker runs it
 * (handle_preview in src/content/previews.c: the token's decoding and MAC
 * over crypto_unseal, the expiry, the row lookup, the HTML and JSON pages),
 * against a real SQLite database in memory with the demo content and a few
 * links recorded in it.
 *
 * The first input byte is a mode, the rest a token. Bit 0 clear: the rest
 * is the token text from the URL (its decoded path parameter, NULs kept).
 * Bit 0 set: the rest is a link's payload (format, site, item, version,
 * expiry, nonce: 49 bytes, cut or zero-padded), sealed here with the
 * process's secret (the all-zero one: the database's own is never loaded)
 * as previews.c seals, so the fuzzer reaches what follows the MAC; unless
 * bit 1 is set its format byte is made the current one. Bit 2 asks for
 * JSON (Accept: application/json) rather than the HTML page. The recorded
 * links (items 1..3, versions 1..2, nonce 0, expiring in 2100; one of them
 * revoked, one expired) are exactly what those payloads seal to, so both
 * modes reach the pages. Every answer must be 200, 404 or 410, and
 * `private, no-store`.
 *
 * FUZZ_SEEDS_OUT=DIR: write those links (text and payload) into DIR, then
 * exit. FUZZ_VERBOSE: print every answer (to check the seeds).
 */
#include <stdio.h>

#include "content/api.h"
#include "content/content.h"
#include "core/crypto.h"
#include "fuzz.h"
#include "store/store_history.h"

enum { LINK_SIGNED = 49, LINK_MAC = 32, LINK_TEXT_LEN = (LINK_SIGNED + LINK_MAC) / 3 * 4 };

#define EXPIRES_2100_MS 4102444800000LL
#define EXPIRED_MS 946684800000LL

static store_t *store;
static strata_config cfg;
static int64_t site_id;
static bool verbose; /* FUZZ_VERBOSE: print each answer's status (checking seeds) */

/* A link's payload as link_sign lays it out, with a zero nonce. */
static void link_payload(int64_t item, int64_t version, int64_t expires_at, uint8_t raw[LINK_SIGNED + LINK_MAC])
{
    memset(raw, 0, LINK_SIGNED + LINK_MAC);
    raw[0] = 1;
    crypto_put_be64(raw + 1, (uint64_t)site_id);
    crypto_put_be64(raw + 9, (uint64_t)item);
    crypto_put_be64(raw + 17, (uint64_t)version);
    crypto_put_be64(raw + 25, (uint64_t)expires_at);
}

static void link_record(int64_t item, int64_t version, int64_t expires_at, bool revoked, char text[LINK_TEXT_LEN + 1])
{
    uint8_t raw[LINK_SIGNED + LINK_MAC], hash[32];
    link_payload(item, version, expires_at, raw);
    crypto_seal(api_secret(), raw, LINK_SIGNED, LINK_MAC, text);
    crypto_sha256(text, LINK_TEXT_LEN, hash);
    if (store_preview_create(store, site_id, item, version, expires_at, "fuzz", hash) != STORE_OK ||
        (revoked && store_preview_revoke(store, site_id, hash) != STORE_OK))
        abort();
}

static void seed_write(const char *dir, const char *name, uint8_t mode, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fputc(mode, f) == EOF || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        abort();
}

static void links_record(const char *seeds_dir)
{
    static const struct {
        int64_t item, version, expires_at;
        bool revoked;
        const char *name;
    } links[] = {
        {1, 1, EXPIRES_2100_MS, false, "item1_v1"},    {1, 2, EXPIRES_2100_MS, false, "item1_v2"},
        {2, 1, EXPIRES_2100_MS, false, "item2_v1"},    {3, 2, EXPIRES_2100_MS, true, "item3_v2_revoked"},
        {2, 2, EXPIRED_MS, false, "item2_v2_expired"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        char text[LINK_TEXT_LEN + 1], name[64];
        link_record(links[i].item, links[i].version, links[i].expires_at, links[i].revoked, text);
        if (seeds_dir == NULL)
            continue;
        uint8_t raw[LINK_SIGNED + LINK_MAC];
        link_payload(links[i].item, links[i].version, links[i].expires_at, raw);
        snprintf(name, sizeof name, "text_%s", links[i].name);
        seed_write(seeds_dir, name, (uint8_t)(i % 2 ? 4 : 0), text, LINK_TEXT_LEN);
        snprintf(name, sizeof name, "sealed_%s", links[i].name);
        seed_write(seeds_dir, name, (uint8_t)(i % 2 ? 5 : 1), raw, LINK_SIGNED);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    config_defaults(&cfg);
    content_init(&cfg);
    if (store_open(":memory:", &store) != STORE_OK || store_migrate(store, NULL) != STORE_OK ||
        store_site_create(store, "main", &site_id) != STORE_OK ||
        store_seed_demo(store, site_id, "main", 3, 2, 1) != STORE_OK)
        abort();
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    links_record(getenv("FUZZ_SEEDS_OUT"));
    if (getenv("FUZZ_SEEDS_OUT") != NULL)
        exit(0);
    return 0;
}

static bool header_has(const http_response *res, const char *name, const char *value)
{
    for (size_t i = 0; i < res->header_count; i++)
        if (strcmp(res->headers[i].name, name) == 0 && strcmp(res->headers[i].value, value) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    char *token;
    size_t token_len;
    if (mode & 1) {
        uint8_t raw[LINK_SIGNED + LINK_MAC] = {0};
        memcpy(raw, data + 1, size - 1 < LINK_SIGNED ? size - 1 : LINK_SIGNED);
        if (!(mode & 2))
            raw[0] = 1;
        token = malloc(LINK_TEXT_LEN + 1);
        if (token == NULL)
            abort();
        token_len = crypto_seal(api_secret(), raw, LINK_SIGNED, LINK_MAC, token);
    } else {
        token = fuzz_strndup(data + 1, size - 1);
        token_len = size - 1;
    }
    http_request req;
    http_response res = {0};
    fuzz_request(&req);
    req.route_id = 11;
    req.method = HTTP_GET;
    req.params[0] = token;
    req.param_len[0] = token_len;
    req.param_count = 1;
    req.accept = mode & 4 ? "application/json" : "text/html,application/xhtml+xml";
    handle_preview(&req, store, &res);
    if (verbose)
        fprintf(stderr, "status %d %.*s\n", res.status, (int)res.body_len, res.body);
    if ((res.status != 200 && res.status != 404 && res.status != 410) ||
        !header_has(&res, "cache-control", "private, no-store"))
        abort();
    http_response_free(&res);
    free(token);
    return 0;
}

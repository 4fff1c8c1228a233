/*
 * fuzz_l2.c — records read back from Redis: the L2 record decoder
 * (l2_record_parse in src/cache/l2.c, which every GET reply of a lookup
 * goes through) and the representation decoder behind it (rc_from_l2 in
 * src/http/response_cache.c, which turns a hit into an L1 value). Redis
 * is shared, so what it returns is input like any other: another
 * instance's bug, an operator's SET or a compromised Redis must not
 * crash this one.
 *
 * The input is the record as GET returns it, in a buffer of exactly its
 * length. A record that parses must point inside it; its payload is then
 * decoded twice, with the record's own lifetimes and as if stored just
 * now (so an old record still reaches the payload decoder). A payload
 * that decodes becomes response headers on a hit, so every string of it
 * that is sent as a header (content type, ETags, Cache-Control,
 * CDN-Cache-Control, Surrogate-Key, the handler's headers) must be one a
 * header field can hold: no NUL, CR, LF or other control byte but HTAB
 * (RFC 9110 5.5), names of token characters; and it must round-trip: the
 * L2 record this instance would write for that value carries the very
 * same payload bytes.
 *
 * FUZZ_SEEDS_OUT=DIR: write real records (rc_build of item responses,
 * small and compressed, then rc_l2_record) into DIR, then exit.
 */
#include <stdio.h>
#include <time.h>

#include "content/content.h"
#include "fuzz.h"
#include "http/compress.h"
#include "http/response_cache.h"

static strata_config cfg;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The record an instance stores for a 200 of the item route. */
static void seed_write(const char *dir, const char *name, const char *body, const char *tags)
{
    unsigned allowed;
    http_captures caps;
    int route =
        http_route_find(content_routes, content_route_count, HTTP_GET, "/v1/main/content/12", 19, &caps, &allowed);
    http_response res = {0};
    http_response_copy(&res, 200, "application/json", body, strlen(body));
    res.tags = strdup(tags);
    res.tags_len = strlen(tags);
    http_response_header(&res, "x-content-version", "3");
    cache_value value;
    l2_record rec;
    uint64_t ttl_ms;
    if (route < 0 || !rc_build(&content_routes[route], &res, 1234, &value))
        abort();
    cache_entry *e = cache_entry_new(&value, wall_ms());
    if (e == NULL || !rc_l2_record(e, 1764806400000000ULL, &rec, &ttl_ms))
        abort();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(rec.data, 1, rec.len, f) != rec.len || fclose(f) != 0)
        abort();
    l2_record_free(&rec);
    cache_entry_release(&e);
    http_response_free(&res);
}

static void seeds_write(const char *dir)
{
    seed_write(dir, "item_small", "{\"id\":12,\"title\":\"Hello\",\"tags\":[\"a\"]}", "main:item:12 main:all");
    char big[4096];
    int n = snprintf(big, sizeof big, "{\"id\":12,\"body\":\"");
    while (n < 3000)
        n += snprintf(big + n, sizeof big - (size_t)n, "The council votes on the budget tonight. ");
    snprintf(big + n, sizeof big - (size_t)n, "\"}");
    seed_write(dir, "item_compressed", big, "main:item:12 main:list main:all");
    exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    config_defaults(&cfg);
    cfg.redis_url[0] = '\0';
    if (rc_init(&cfg, content_routes, content_route_count) != 0)
        abort();
    if (getenv("FUZZ_SEEDS_OUT") != NULL)
        seeds_write(getenv("FUZZ_SEEDS_OUT"));
    return 0;
}

/* ---- the payload's layout (response_cache.c, write_representation) ---- */

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static uint64_t read_uint(reader *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes && r->p < r->end; i++)
        v = v << 8 | *r->p++;
    return v;
}

/* A string that becomes a header value (or name, with token characters). */
static void header_string_check(reader *r, bool name)
{
    uint64_t len = read_uint(r, 4);
    if (len > (uint64_t)(r->end - r->p))
        fuzz_fail("a payload rc_from_l2 accepted overruns itself");
    for (uint64_t i = 0; i < len; i++) {
        uint8_t c = r->p[i];
        bool ok = name ? (c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL)
                       : (c == '\t' || (c >= 0x20 && c != 0x7f));
        if (!ok)
            fuzz_fail("rc_from_l2 accepted a header string (content type, ETag, cache headers, surrogate key or a "
                      "handler header) with a byte no header field may hold: a NUL, CR, LF or control byte");
    }
    r->p += len;
}

static void skip_string(reader *r)
{
    uint64_t len = read_uint(r, 4);
    r->p += len < (uint64_t)(r->end - r->p) ? len : (uint64_t)(r->end - r->p);
}

static void header_strings_check(const l2_result *res)
{
    reader r = {(const uint8_t *)res->payload, (const uint8_t *)res->payload + res->payload_len};
    read_uint(&r, 2);
    unsigned available = (unsigned)read_uint(&r, 1);
    header_string_check(&r, false); /* content type */
    for (int e = 0; e < ENC_COUNT; e++) {
        if ((available & (1u << e)) == 0)
            continue;
        header_string_check(&r, false); /* etag */
        skip_string(&r);                /* body */
    }
    for (int i = 0; i < 3; i++)
        header_string_check(&r, false); /* cache-control, cdn-cache-control, surrogate-key */
    size_t headers = (size_t)read_uint(&r, 1);
    for (size_t i = 0; i < headers; i++) {
        header_string_check(&r, true);
        header_string_check(&r, false);
    }
}

/* What this instance would store for the decoded value: the same payload. */
static void round_trip_check(cache_value *value, const l2_result *r)
{
    cache_entry *e = cache_entry_new(value, wall_ms());
    if (e == NULL)
        abort();
    if (rc_status(e) != 200 && rc_status(e) != 404) /* 404: a negative record (docs/caching.md) */
        fuzz_fail("rc_from_l2 accepted a status other than 200 or a negative 404");
    l2_record rec;
    uint64_t ttl_ms;
    l2_result again;
    size_t tags_end;
    if (rc_l2_record(e, r->snapshot, &rec, &ttl_ms)) {
        if (!l2_record_parse(rec.data, rec.len, &again, &tags_end) || again.payload_len != r->payload_len ||
            memcmp(again.payload, r->payload, r->payload_len) != 0)
            fuzz_fail("a payload rc_from_l2 accepted is not what this instance writes for the value it decoded");
        l2_record_free(&rec);
    }
    cache_entry_release(&e);
}

static void payload_decode(l2_result *r, bool check)
{
    cache_value value;
    if (rc_from_l2(r, &value)) {
        if (check) {
            header_strings_check(r);
            round_trip_check(&value, r);
        } else
            value.free_value(value.value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *record = malloc(size > 0 ? size : 1);
    if (record == NULL)
        abort();
    if (size > 0)
        memcpy(record, data, size);
    l2_result r = {.outcome = L2_HIT};
    size_t tags_end = 0;
    if (l2_record_parse(record, size, &r, &tags_end)) {
        if (r.payload < record || r.payload + r.payload_len != record + size || tags_end > size)
            abort();
        payload_decode(&r, false);
        r.life.created_ms = wall_ms();
        r.life.fresh_ms |= 1;
        payload_decode(&r, true);
    }
    free(record);
    return 0;
}

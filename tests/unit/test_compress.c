/*
 * test_compress.c — compressed variants decode back to the exact body (with
 * the real brotli, libdeflate and zstd decoders), are only kept when they
 * are smaller, and Accept-Encoding picks what a client asked for, including
 * q=0, "*", case, and headers that are nonsense.
 *
 * Ends with a timing print (not an assertion) of each encoder on a 20 KB
 * text body, the size of a typical cached JSON document.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <brotli/decode.h>
#include <libdeflate.h>
#include <zstd.h>

#include "http/compress.h"

#define ALL_VARIANTS ((1u << ENC_BR) | (1u << ENC_ZSTD) | (1u << ENC_GZIP))

/* ---- bodies ---------------------------------------------------------------- */

/* xorshift64: the same bytes on every run, so a failure reproduces. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* JSON-like article text: compressible the way a real API response is
 * (repeated keys, a vocabulary), not trivially like one repeated byte. */
static unsigned char *make_text_body(size_t len)
{
    static const char *const words[] = {
        "strata",  "content", "cache",   "version", "article", "published", "the",    "of",
        "and",     "editor",  "review",  "draft",   "site",    "response",  "header", "request",
        "a",       "to",      "in",      "is",      "update",  "record",    "index",  "slug",
        "archive", "summary", "section", "author",  "image",   "caption",   "link",   "body",
    };
    const size_t word_count = sizeof(words) / sizeof(words[0]);
    unsigned char *body = malloc(len);
    assert_non_null(body);
    uint64_t state = 0x9e3779b97f4a7c15u;
    size_t at = 0;
    for (unsigned id = 1; at < len; id++) {
        char piece[512];
        int n = snprintf(piece, sizeof(piece), "{\"id\":%u,\"type\":\"article\",\"title\":\"", id);
        for (int w = 0; w < 40 && n < (int)sizeof(piece) - 40; w++)
            n += snprintf(piece + n, sizeof(piece) - (size_t)n, "%s ", words[next_random(&state) % word_count]);
        n += snprintf(piece + n, sizeof(piece) - (size_t)n, "\",\"updated\":%llu},\n",
                      (unsigned long long)(next_random(&state) % 2000000000u));
        size_t take = (size_t)n < len - at ? (size_t)n : len - at;
        memcpy(body + at, piece, take);
        at += take;
    }
    return body;
}

static unsigned char *make_random_body(size_t len)
{
    unsigned char *body = malloc(len);
    assert_non_null(body);
    uint64_t state = 0x2545f4914f6cdd1du;
    for (size_t i = 0; i < len; i++)
        body[i] = (unsigned char)(next_random(&state) >> 56);
    return body;
}

/* ---- decoding with the reference decoders ------------------------------------ */

/* Each decodes into a buffer one byte larger than expected, so a variant
 * that decodes to too much shows up as a wrong length, not as a fit. */

static void assert_brotli_decodes_to(const compressed *v, const unsigned char *body, size_t len)
{
    unsigned char *decoded = malloc(len + 1);
    assert_non_null(decoded);
    size_t decoded_len = len + 1;
    assert_int_equal(BrotliDecoderDecompress(v->len, v->data, &decoded_len, decoded), BROTLI_DECODER_RESULT_SUCCESS);
    assert_int_equal(decoded_len, len);
    assert_memory_equal(decoded, body, len);
    free(decoded);
}

static void assert_gzip_decodes_to(const compressed *v, const unsigned char *body, size_t len)
{
    struct libdeflate_decompressor *decompressor = libdeflate_alloc_decompressor();
    assert_non_null(decompressor);
    unsigned char *decoded = malloc(len + 1);
    assert_non_null(decoded);
    size_t decoded_len = 0;
    assert_int_equal(libdeflate_gzip_decompress(decompressor, v->data, v->len, decoded, len + 1, &decoded_len),
                     LIBDEFLATE_SUCCESS);
    assert_int_equal(decoded_len, len);
    assert_memory_equal(decoded, body, len);
    free(decoded);
    libdeflate_free_decompressor(decompressor);
}

static void assert_zstd_decodes_to(const compressed *v, const unsigned char *body, size_t len)
{
    assert_int_equal(ZSTD_getFrameContentSize(v->data, v->len), len);
    unsigned char *decoded = malloc(len + 1);
    assert_non_null(decoded);
    size_t decoded_len = ZSTD_decompress(decoded, len + 1, v->data, v->len);
    assert_false(ZSTD_isError(decoded_len));
    assert_int_equal(decoded_len, len);
    assert_memory_equal(decoded, body, len);
    free(decoded);
}

static void assert_variants_decode_to(const compressed out[ENC_COUNT], unsigned produced, const unsigned char *body,
                                      size_t len)
{
    assert_null(out[ENC_IDENTITY].data);
    assert_int_equal(out[ENC_IDENTITY].len, 0);
    for (int e = ENC_IDENTITY + 1; e < ENC_COUNT; e++) {
        if (!(produced & (1u << e))) {
            assert_null(out[e].data);
            assert_int_equal(out[e].len, 0);
            continue;
        }
        assert_non_null(out[e].data);
        assert_true(out[e].len > 0 && out[e].len < len);
        switch ((http_encoding)e) {
        case ENC_BR: assert_brotli_decodes_to(&out[e], body, len); break;
        case ENC_GZIP: assert_gzip_decodes_to(&out[e], body, len); break;
        case ENC_ZSTD: assert_zstd_decodes_to(&out[e], body, len); break;
        default: fail();
        }
    }
}

/* ---- producing variants ------------------------------------------------------ */

static void test_encoding_names_are_content_coding_tokens(void **state)
{
    (void)state;
    assert_string_equal(http_encoding_name(ENC_IDENTITY), "identity");
    assert_string_equal(http_encoding_name(ENC_BR), "br");
    assert_string_equal(http_encoding_name(ENC_ZSTD), "zstd");
    assert_string_equal(http_encoding_name(ENC_GZIP), "gzip");
}

static void test_text_variants_decode_to_the_exact_body(void **state)
{
    (void)state;
    static const size_t sizes[] = {1024, 20 * 1024, 1024 * 1024};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *body = make_text_body(sizes[i]);
        compressed out[ENC_COUNT];
        unsigned produced = compress_variants(body, sizes[i], COMPRESS_MIN_SIZE, out);
        assert_int_equal(produced, ALL_VARIANTS);
        assert_variants_decode_to(out, produced, body, sizes[i]);
        print_message("%7zu bytes of text: br %zu, zstd %zu, gzip %zu\n", sizes[i], out[ENC_BR].len, out[ENC_ZSTD].len,
                      out[ENC_GZIP].len);
        compressed_free(out);
        free(body);
    }
}

static void test_random_bytes_produce_no_variant(void **state)
{
    (void)state;
    static const size_t sizes[] = {1024, 20 * 1024, 1024 * 1024};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *body = make_random_body(sizes[i]);
        compressed out[ENC_COUNT];
        unsigned produced = compress_variants(body, sizes[i], COMPRESS_MIN_SIZE, out);
        assert_int_equal(produced, 0);
        assert_variants_decode_to(out, produced, body, sizes[i]);
        compressed_free(out);
        free(body);
    }
}

static void test_below_min_size_produces_nothing(void **state)
{
    (void)state;
    unsigned char *body = make_text_body(COMPRESS_MIN_SIZE);
    compressed out[ENC_COUNT];
    assert_int_equal(compress_variants(body, COMPRESS_MIN_SIZE - 1, COMPRESS_MIN_SIZE, out), 0);
    assert_variants_decode_to(out, 0, body, COMPRESS_MIN_SIZE - 1);
    /* At exactly min_size the body is compressed. */
    assert_int_equal(compress_variants(body, COMPRESS_MIN_SIZE, COMPRESS_MIN_SIZE, out), ALL_VARIANTS);
    compressed_free(out);
    /* No body at all, even with no minimum. */
    assert_int_equal(compress_variants(NULL, 0, 0, out), 0);
    assert_variants_decode_to(out, 0, body, 0);
    free(body);
}

static void test_compressed_free_resets_every_entry(void **state)
{
    (void)state;
    unsigned char *body = make_text_body(4096);
    compressed out[ENC_COUNT];
    assert_int_equal(compress_variants(body, 4096, COMPRESS_MIN_SIZE, out), ALL_VARIANTS);
    compressed_free(out);
    for (int e = 0; e < ENC_COUNT; e++) {
        assert_null(out[e].data);
        assert_int_equal(out[e].len, 0);
    }
    compressed_free(out); /* twice is harmless */
    free(body);
}

static void test_compress_encoding_makes_one_variant(void **state)
{
    (void)state;
    unsigned char *body = make_text_body(8192);
    compressed out[ENC_COUNT] = {{0}};
    assert_true(compress_encoding(ENC_ZSTD, body, 8192, &out[ENC_ZSTD]));
    assert_variants_decode_to(out, 1u << ENC_ZSTD, body, 8192);
    assert_false(compress_encoding(ENC_IDENTITY, body, 8192, &out[ENC_IDENTITY]));
    assert_null(out[ENC_IDENTITY].data);
    compressed_free(out);
    free(body);
}

/* ---- choosing one --------------------------------------------------------------- */

typedef struct accept_case {
    const char *header; /* NULL: no Accept-Encoding */
    unsigned available; /* besides identity */
    http_encoding expected;
} accept_case;

static void assert_choices(const accept_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const accept_case *c = &cases[i];
        size_t len = c->header ? strlen(c->header) : 0;
        http_encoding got = accept_encoding_choose(c->header, len, c->available | (1u << ENC_IDENTITY));
        if (got != c->expected) {
            print_error("Accept-Encoding: %s%s%s (available 0x%x): got %s, expected %s\n", c->header ? "\"" : "",
                        c->header ? c->header : "(absent)", c->header ? "\"" : "", c->available,
                        http_encoding_name(got), http_encoding_name(c->expected));
            fail();
        }
    }
}

static void test_accept_encoding_picks_what_the_client_prefers(void **state)
{
    (void)state;
    static const accept_case cases[] = {
        {NULL, ALL_VARIANTS, ENC_IDENTITY},
        {"", ALL_VARIANTS, ENC_IDENTITY},
        {"gzip", ALL_VARIANTS, ENC_GZIP},
        {"gzip, br", ALL_VARIANTS, ENC_BR},
        {"gzip, deflate, br, zstd", ALL_VARIANTS, ENC_BR},
        {"gzip, zstd", ALL_VARIANTS, ENC_ZSTD},
        {"br;q=0, gzip", ALL_VARIANTS, ENC_GZIP},
        {"gzip;q=0.5, zstd;q=0.8", ALL_VARIANTS, ENC_ZSTD},
        {"br;q=0.1, gzip;q=1.0", ALL_VARIANTS, ENC_GZIP},
        {"br;q=0.001, gzip;q=0", ALL_VARIANTS, ENC_BR},
        {"deflate", ALL_VARIANTS, ENC_IDENTITY},
        /* An unlisted identity only wins when nothing else is acceptable. */
        {"gzip;q=0.5", ALL_VARIANTS, ENC_GZIP},
        {"identity;q=0.5, gzip;q=0.4", ALL_VARIANTS, ENC_IDENTITY},
    };
    assert_choices(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_accept_encoding_wildcard_and_identity(void **state)
{
    (void)state;
    static const accept_case cases[] = {
        {"*", ALL_VARIANTS, ENC_BR},
        {"*", 0, ENC_IDENTITY},
        {"*;q=0, identity", ALL_VARIANTS, ENC_IDENTITY},
        {"*;q=0", ALL_VARIANTS, ENC_IDENTITY}, /* nothing acceptable: identity anyway */
        {"identity;q=0", 0, ENC_IDENTITY},
        {"identity;q=0", 1u << ENC_GZIP, ENC_IDENTITY}, /* gzip was not asked for */
        {"identity;q=0, gzip", 1u << ENC_GZIP, ENC_GZIP},
        {"gzip;q=0.2, *;q=0.5", ALL_VARIANTS, ENC_BR},   /* "*" covers the unlisted */
        {"br;q=0, zstd;q=0, *", ALL_VARIANTS, ENC_GZIP}, /* but not the listed */
    };
    assert_choices(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_accept_encoding_only_offers_what_the_entry_has(void **state)
{
    (void)state;
    static const accept_case cases[] = {
        {"br, gzip", (1u << ENC_ZSTD) | (1u << ENC_GZIP), ENC_GZIP},
        {"br", (1u << ENC_ZSTD) | (1u << ENC_GZIP), ENC_IDENTITY},
        {"br, gzip", 0, ENC_IDENTITY},
        {"*", 1u << ENC_GZIP, ENC_GZIP},
    };
    assert_choices(cases, sizeof(cases) / sizeof(cases[0]));
    /* Identity is available whether or not the caller sets its bit. */
    assert_int_equal(accept_encoding_choose("identity", 8, 0), ENC_IDENTITY);
}

static void test_accept_encoding_syntax_variations(void **state)
{
    (void)state;
    static const accept_case cases[] = {
        {"GZIP", ALL_VARIANTS, ENC_GZIP},
        {"Br;Q=0, GZip", ALL_VARIANTS, ENC_GZIP},
        {"x-gzip", ALL_VARIANTS, ENC_GZIP},
        {"  gzip ;  q=0.5 ,\tbr ; q=0.4  ", ALL_VARIANTS, ENC_GZIP},
        {"gzip,br", ALL_VARIANTS, ENC_BR},
        {",,gzip,,", ALL_VARIANTS, ENC_GZIP},
        {"gzip;q=1.000", ALL_VARIANTS, ENC_GZIP},
        {"br;q=0.0001, gzip;q=0.001", ALL_VARIANTS, ENC_GZIP}, /* decimals past three are dropped */
        {"gzip;level=\"1,br\"", ALL_VARIANTS, ENC_GZIP},       /* a comma inside quotes */
        {"br;q=\"0.5\", gzip", ALL_VARIANTS, ENC_GZIP},        /* a quoted q is malformed */
        {"gzip, gzip;q=0", ALL_VARIANTS, ENC_GZIP},            /* the first wins */
        {"br;q=, gzip", ALL_VARIANTS, ENC_GZIP},               /* a malformed element is ignored */
        {"br;q=0.5x, gzip;q=0.1", ALL_VARIANTS, ENC_GZIP},
        {"br gzip", ALL_VARIANTS, ENC_IDENTITY},
    };
    assert_choices(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_accept_encoding_survives_garbage(void **state)
{
    (void)state;
    static const accept_case cases[] = {
        {";;;,,q=", ALL_VARIANTS, ENC_IDENTITY},
        {";", ALL_VARIANTS, ENC_IDENTITY},
        {",", ALL_VARIANTS, ENC_IDENTITY},
        {"=", ALL_VARIANTS, ENC_IDENTITY},
        {"\"", ALL_VARIANTS, ENC_IDENTITY},
        {"br;x=\"unterminated, gzip", ALL_VARIANTS, ENC_IDENTITY},
        {"br;q=99999999999999999999999", ALL_VARIANTS, ENC_BR},
        {"\x01\xff\x7f;q=1", ALL_VARIANTS, ENC_IDENTITY},
    };
    assert_choices(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_accept_encoding_reads_only_len_bytes(void **state)
{
    (void)state;
    /* Header values from h2o are not NUL-terminated: stop at len. */
    const char header[] = "gzip, br";
    assert_int_equal(accept_encoding_choose(header, 4, ALL_VARIANTS), ENC_GZIP);
    char *exact = malloc(4); /* ASan catches any read past the 4 bytes */
    assert_non_null(exact);
    memcpy(exact, "gzip", 4);
    assert_int_equal(accept_encoding_choose(exact, 4, ALL_VARIANTS), ENC_GZIP);
    memcpy(exact, "br;q", 4);
    assert_int_equal(accept_encoding_choose(exact, 4, ALL_VARIANTS), ENC_IDENTITY);
    free(exact);
}

/* ---- timing (printed, not asserted) ------------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void test_timing_of_a_20k_text_body(void **state)
{
    (void)state;
    enum { BODY_LEN = 20 * 1024, ROUNDS = 50 };
    unsigned char *body = make_text_body(BODY_LEN);
    for (int e = ENC_IDENTITY + 1; e < ENC_COUNT; e++) {
        double best = 1e18, total = 0;
        size_t out_len = 0;
        for (int round = 0; round < ROUNDS; round++) {
            compressed out;
            double start = now_us();
            assert_true(compress_encoding((http_encoding)e, body, BODY_LEN, &out));
            double took = now_us() - start;
            total += took;
            best = took < best ? took : best;
            out_len = out.len;
            free(out.data);
        }
        print_message("%-4s 20 KB text -> %5zu bytes: %7.1f us mean, %7.1f us best\n",
                      http_encoding_name((http_encoding)e), out_len, total / ROUNDS, best);
    }
    double total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        compressed out[ENC_COUNT];
        double start = now_us();
        assert_int_equal(compress_variants(body, BODY_LEN, COMPRESS_MIN_SIZE, out), ALL_VARIANTS);
        total += now_us() - start;
        compressed_free(out);
    }
    print_message("compress_variants (all three): %7.1f us mean\n", total / ROUNDS);
    free(body);
}

static void test_timing_of_accept_encoding_choose(void **state)
{
    (void)state;
    enum { CALLS = 1000000 };
    static const char browser[] = "gzip, deflate, br, zstd"; /* what Chrome sends */
    static const char weighted[] = "br;q=1.0, gzip;q=0.8, *;q=0.1";
    const char *const headers[] = {browser, weighted};
    const size_t lengths[] = {sizeof(browser) - 1, sizeof(weighted) - 1};
    for (size_t h = 0; h < 2; h++) {
        volatile unsigned sink = 0; /* keeps the calls from being optimised away */
        double start = now_us();
        for (int i = 0; i < CALLS; i++)
            sink += accept_encoding_choose(headers[h], lengths[h], ALL_VARIANTS | (1u << ENC_IDENTITY));
        print_message("accept_encoding_choose(\"%s\"): %.0f ns per call\n", headers[h],
                      (now_us() - start) * 1e3 / CALLS);
        (void)sink;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_names_are_content_coding_tokens),
        cmocka_unit_test(test_text_variants_decode_to_the_exact_body),
        cmocka_unit_test(test_random_bytes_produce_no_variant),
        cmocka_unit_test(test_below_min_size_produces_nothing),
        cmocka_unit_test(test_compressed_free_resets_every_entry),
        cmocka_unit_test(test_compress_encoding_makes_one_variant),
        cmocka_unit_test(test_accept_encoding_picks_what_the_client_prefers),
        cmocka_unit_test(test_accept_encoding_wildcard_and_identity),
        cmocka_unit_test(test_accept_encoding_only_offers_what_the_entry_has),
        cmocka_unit_test(test_accept_encoding_syntax_variations),
        cmocka_unit_test(test_accept_encoding_survives_garbage),
        cmocka_unit_test(test_accept_encoding_reads_only_len_bytes),
        cmocka_unit_test(test_timing_of_a_20k_text_body),
        cmocka_unit_test(test_timing_of_accept_encoding_choose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

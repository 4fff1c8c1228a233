/*
 * compress.c — the br / zstd / gzip variants of a cached body, and the
 * Accept-Encoding negotiation that picks one (see compress.h for the idea).
 *
 * Producing. Each encoder writes into a scratch buffer one byte shorter than
 * the body, so "the variant must be smaller than the body" is the encoder's
 * own out-of-space failure rather than a separate check, and incompressible
 * bodies cost no worst-case-sized buffer. The scratch is shared by the three
 * encoders; each result is then copied into an exact-size allocation,
 * because the cache keeps it for the life of the entry.
 *
 * Choosing. One pass over the field value records the q-value (in
 * thousandths, an int) of each coding strata knows and of "*"; everything
 * else is skipped. The choice is then the highest q among what the entry
 * has, ties going to the order of http_encoding. Nothing is allocated and
 * no string is copied: this runs on every cache hit.
 */
#include "http/compress.h"

#include <stdlib.h>
#include <string.h>

#include <brotli/encode.h>
#include <libdeflate.h>
#include <zstd.h>

/* SPEC says brotli level 4; 5 is kept because a variant is made once per
 * fill and sent on every hit. Measured 2026-12-05 (Debian's libbrotli via
 * python3-brotli, window 22, text mode) on strata's own bodies: a 20,830 B
 * list page 4,151 B at 4 and 3,819 B at 5 (8 % fewer bytes) for 130 vs
 * 158 µs; an 18,787 B item 3,912 vs 3,489 B (11 %) for 129 vs 158 µs; 6
 * adds under 1 % more for another 3–7 %. 28 µs more per fill buys 8–11 %
 * fewer bytes on every hit of it. docs/caching.md. */
#define BROTLI_QUALITY 5
#define BROTLI_WINDOW_BITS 22
#define GZIP_LEVEL 6
#define ZSTD_LEVEL 3

static const char *const encoding_names[ENC_COUNT] = {
    [ENC_IDENTITY] = "identity",
    [ENC_BR] = "br",
    [ENC_ZSTD] = "zstd",
    [ENC_GZIP] = "gzip",
};

const char *http_encoding_name(http_encoding e)
{
    return (unsigned)e < ENC_COUNT ? encoding_names[e] : encoding_names[ENC_IDENTITY];
}

/* ---- producing variants ---------------------------------------------------- */

/* Each returns the compressed size, or 0 when the encoder failed or the
 * result did not fit in cap bytes. */

static size_t encode_brotli(const void *body, size_t len, unsigned char *dst, size_t cap)
{
    size_t written = cap;
    if (!BrotliEncoderCompress(BROTLI_QUALITY, BROTLI_WINDOW_BITS, BROTLI_MODE_TEXT, len, body, &written, dst))
        return 0;
    return written;
}

static size_t encode_gzip(const void *body, size_t len, unsigned char *dst, size_t cap)
{
    struct libdeflate_compressor *compressor = libdeflate_alloc_compressor(GZIP_LEVEL);
    if (!compressor)
        return 0;
    size_t written = libdeflate_gzip_compress(compressor, body, len, dst, cap);
    libdeflate_free_compressor(compressor);
    return written;
}

static size_t encode_zstd(const void *body, size_t len, unsigned char *dst, size_t cap)
{
    size_t written = ZSTD_compress(dst, cap, body, len, ZSTD_LEVEL);
    return ZSTD_isError(written) ? 0 : written;
}

static size_t encode(http_encoding e, const void *body, size_t len, unsigned char *dst, size_t cap)
{
    switch (e) {
    case ENC_BR: return encode_brotli(body, len, dst, cap);
    case ENC_ZSTD: return encode_zstd(body, len, dst, cap);
    case ENC_GZIP: return encode_gzip(body, len, dst, cap);
    default: return 0;
    }
}

/* Encodes into scratch (cap = len - 1) and, if that worked, moves the result
 * into an allocation of its own size. */
static bool encode_variant(http_encoding e, const void *body, size_t len, unsigned char *scratch, size_t cap,
                           compressed *out)
{
    *out = (compressed){NULL, 0};
    size_t written = encode(e, body, len, scratch, cap);
    if (written == 0)
        return false;
    unsigned char *data = malloc(written);
    if (!data)
        return false;
    memcpy(data, scratch, written);
    *out = (compressed){data, written};
    return true;
}

bool compress_encoding(http_encoding e, const void *body, size_t len, compressed *out)
{
    *out = (compressed){NULL, 0};
    /* Only a body of 2 bytes or more leaves room for a smaller variant. */
    if (e <= ENC_IDENTITY || e >= ENC_COUNT || len < 2)
        return false;
    unsigned char *scratch = malloc(len - 1);
    if (!scratch)
        return false;
    bool produced = encode_variant(e, body, len, scratch, len - 1, out);
    free(scratch);
    return produced;
}

unsigned compress_variants(const void *body, size_t len, size_t min_size, compressed out[ENC_COUNT])
{
    for (int e = 0; e < ENC_COUNT; e++)
        out[e] = (compressed){NULL, 0};
    if (len < min_size || len < 2)
        return 0;
    unsigned char *scratch = malloc(len - 1);
    if (!scratch)
        return 0;
    unsigned produced = 0;
    for (int e = ENC_IDENTITY + 1; e < ENC_COUNT; e++) {
        if (encode_variant((http_encoding)e, body, len, scratch, len - 1, &out[e]))
            produced |= 1u << e;
    }
    free(scratch);
    return produced;
}

void compressed_free(compressed out[ENC_COUNT])
{
    for (int e = 0; e < ENC_COUNT; e++) {
        free(out[e].data);
        out[e] = (compressed){NULL, 0};
    }
}

/* ---- choosing one: Accept-Encoding (RFC 9110 §12.5.3) ------------------------ */

/* q-values in thousandths: "0.5" is 500. */
#define Q_MAX 1000
#define Q_UNLISTED (-1)
/* An identity neither listed nor covered by "*" is acceptable, but only as
 * the last resort: "gzip;q=0.5" should get gzip, not the raw body. */
#define Q_IMPLICIT_IDENTITY 1

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* tchar from RFC 9110 §5.6.2. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && is_ows(*p))
        p++;
    return p;
}

static const char *skip_token(const char *p, const char *end)
{
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return p;
}

/* Past the closing quote, or NULL when there is none; p is at the opening one. */
static const char *skip_quoted_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* ASCII-only, so the result never depends on the process locale. */
static bool token_is(const char *token, size_t len, const char *lowercase)
{
    size_t i = 0;
    for (; i < len && lowercase[i] != '\0'; i++) {
        char c = token[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lowercase[i])
            return false;
    }
    return i == len && lowercase[i] == '\0';
}

/* "1", "0.5", "0.125", "1.000" → thousandths; more than three decimals are
 * truncated and values above 1 clamped (lenient where no harm comes of it).
 * -1 when it is not a number at all. */
static int parse_qvalue(const char *s, size_t len)
{
    size_t i = 0;
    int whole = 0;
    if (len == 0 || s[0] < '0' || s[0] > '9')
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (whole < 10) /* only "is it above 1" matters past here */
            whole = whole * 10 + (s[i] - '0');
    }
    int fraction = 0;
    if (i < len && s[i] == '.') {
        int place = 100;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            fraction += (s[i] - '0') * place;
            place /= 10;
        }
    }
    if (i != len)
        return -1;
    int q = whole * 1000 + fraction;
    return q > Q_MAX ? Q_MAX : q;
}

typedef struct accept_weights {
    int listed[ENC_COUNT]; /* Q_UNLISTED or 0..Q_MAX */
    int wildcard;          /* q of "*", or Q_UNLISTED */
} accept_weights;

static void accept_weights_record(accept_weights *weights, const char *token, size_t len, int q)
{
    int *slot = NULL;
    if (token_is(token, len, "*"))
        slot = &weights->wildcard;
    else if (token_is(token, len, "br"))
        slot = &weights->listed[ENC_BR];
    else if (token_is(token, len, "zstd"))
        slot = &weights->listed[ENC_ZSTD];
    else if (token_is(token, len, "gzip") || token_is(token, len, "x-gzip"))
        slot = &weights->listed[ENC_GZIP];
    else if (token_is(token, len, "identity"))
        slot = &weights->listed[ENC_IDENTITY];
    if (slot && *slot == Q_UNLISTED)
        *slot = q;
}

/*
 * One element: OWS coding *( OWS ";" OWS name "=" value ) OWS, up to the
 * next ',' or the end. Returns where the next element starts. A malformed
 * element is skipped to its ',' without being recorded.
 */
static const char *parse_accept_element(const char *p, const char *end, accept_weights *weights)
{
    p = skip_ows(p, end);
    const char *coding = p;
    p = skip_token(p, end);
    size_t coding_len = (size_t)(p - coding);
    bool well_formed = coding_len > 0;
    int q = Q_MAX;

    p = skip_ows(p, end);
    while (well_formed && p < end && *p == ';') {
        p = skip_ows(p + 1, end);
        const char *name = p;
        p = skip_token(p, end);
        size_t name_len = (size_t)(p - name);
        p = skip_ows(p, end);
        if (name_len == 0 || p == end || *p != '=') {
            well_formed = false;
            break;
        }
        p = skip_ows(p + 1, end);
        const char *value = p;
        bool quoted = p < end && *p == '"';
        p = quoted ? skip_quoted_string(p, end) : skip_token(p, end);
        if (p == NULL)
            return end; /* an unterminated quote swallows the rest of the field */
        if (token_is(name, name_len, "q")) {
            q = quoted ? -1 : parse_qvalue(value, (size_t)(p - value));
            well_formed = q >= 0;
        }
        p = skip_ows(p, end);
    }
    if (p < end && *p != ',')
        well_formed = false;
    while (p < end && *p != ',')
        p++;
    if (well_formed)
        accept_weights_record(weights, coding, coding_len, q);
    return p < end ? p + 1 : end;
}

http_encoding accept_encoding_choose(const char *header, size_t len, unsigned available)
{
    if (header == NULL || len == 0)
        return ENC_IDENTITY;

    accept_weights weights = {.wildcard = Q_UNLISTED};
    for (int e = 0; e < ENC_COUNT; e++)
        weights.listed[e] = Q_UNLISTED;
    const char *end = header + len;
    for (const char *p = header; p < end;)
        p = parse_accept_element(p, end, &weights);

    available |= 1u << ENC_IDENTITY;
    http_encoding best = ENC_IDENTITY;
    int best_q = 0;
    /* Ties go to the earlier entry: the usually smaller encodings first. */
    static const http_encoding preference[] = {ENC_BR, ENC_ZSTD, ENC_GZIP, ENC_IDENTITY};
    for (size_t i = 0; i < sizeof(preference) / sizeof(preference[0]); i++) {
        http_encoding e = preference[i];
        if (!(available & (1u << e)))
            continue;
        int q = weights.listed[e];
        if (q == Q_UNLISTED)
            q = weights.wildcard;
        if (q == Q_UNLISTED)
            q = e == ENC_IDENTITY ? Q_IMPLICIT_IDENTITY : 0;
        if (q > best_q) {
            best = e;
            best_q = q;
        }
    }
    return best;
}

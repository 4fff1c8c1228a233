/*
 * compress.h — content codings for cached responses: produce them once,
 * choose one per request.
 *
 * strata compresses a representation when it fills the cache (on a worker
 * thread), never on a hit: compress_variants makes the br, zstd and gzip
 * variants of a body side by side, and accept_encoding_choose picks the one a
 * client gets from its Accept-Encoding header on every hit (on the loop
 * thread, so it is a single pass that neither allocates nor calls strtod).
 *
 * Ownership. compressed.data is malloc'd by this module and owned by the
 * caller from then on; compressed_free releases a whole array and NULLs it.
 * The identity body is never copied here: the caller keeps it.
 *
 * A response served from a cache entry that has variants must carry
 * "Vary: Accept-Encoding", whichever variant was chosen (the caller's job).
 */
#ifndef STRATA_HTTP_COMPRESS_H
#define STRATA_HTTP_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>

/* Ordered by preference among equal q-values: the usually smaller first. */
typedef enum http_encoding { ENC_IDENTITY = 0, ENC_BR, ENC_ZSTD, ENC_GZIP, ENC_COUNT } http_encoding;

/* The Content-Encoding token: "identity", "br", "zstd", "gzip". */
const char *http_encoding_name(http_encoding e);

/* One compressed variant; data is malloc'd, NULL (len 0) when not produced. */
typedef struct compressed {
    unsigned char *data;
    size_t len;
} compressed;

/* The minimum body size strata compresses: below it the bytes saved do not
 * pay for the extra cache entry and the client's decoding. */
#define COMPRESS_MIN_SIZE 1024

/*
 * Fills out[ENC_BR], out[ENC_ZSTD] and out[ENC_GZIP]; out[ENC_IDENTITY] is
 * left {NULL, 0} because the caller keeps the body. Nothing is produced when
 * len < min_size, and a variant that would not be smaller than the body is
 * dropped. Settings: brotli quality 5 (text mode, lgwin 22), gzip by
 * libdeflate level 6, zstd level 3.
 *
 * Returns the bitmask of produced encodings (1u << e), 0 when none. Never
 * fails the caller: an encoder or allocation error just drops that variant.
 * Thread-safe (no shared state).
 */
unsigned compress_variants(const void *body, size_t len, size_t min_size, compressed out[ENC_COUNT]);

/* One variant with the same settings as compress_variants (no min_size):
 * true and *out filled, or false and *out = {NULL, 0} when the encoder fails
 * or the result would not be smaller than the body. For ENC_IDENTITY it
 * produces nothing. */
bool compress_encoding(http_encoding e, const void *body, size_t len, compressed *out);

/* Frees every variant and resets each entry to {NULL, 0}. */
void compressed_free(compressed out[ENC_COUNT]);

/*
 * Picks the encoding to send for the Accept-Encoding field value
 * header[0..len) (not necessarily NUL-terminated; NULL or empty means
 * identity only) among `available` (bits 1u << e; identity is always
 * available, whether or not its bit is set).
 *
 * Tokens are case-insensitive ("x-gzip" counts as gzip), q-values are read
 * to three decimals, q=0 forbids, "*" covers every coding not listed by
 * name, and an identity that is neither listed nor covered by "*" is
 * acceptable at the lowest weight. Among equal q: br, zstd, gzip, identity.
 * An element that cannot be parsed is ignored, and the first of two
 * elements naming the same coding wins. When nothing is acceptable (say
 * "identity;q=0" and no variant) it returns ENC_IDENTITY anyway, which RFC
 * 9110 §12.5.3 allows.
 */
http_encoding accept_encoding_choose(const char *header, size_t len, unsigned available);

#endif

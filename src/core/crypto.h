/*
 * crypto.h — the few primitives strata signs and hashes with (OpenSSL).
 *
 * Tokens are stored as SHA-256 hashes; cursors and preview links are
 * HMAC-SHA256-signed with the database's secret; both travel as unpadded
 * base64url text so they sit in URLs and headers unescaped.
 */
#ifndef STRATA_CRYPTO_H
#define STRATA_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
void crypto_hmac_sha256(const uint8_t key[32], const void *data, size_t len, uint8_t out[32]);
/* Constant-time comparison. */
bool crypto_equal(const void *a, const void *b, size_t len);
/* 0, or -1 if the system has no randomness to give. */
int crypto_random(void *out, size_t len);

/* Big-endian 64-bit integers in the byte layouts of signed tokens
 * (cursors, preview links). */
void crypto_put_be64(uint8_t *p, uint64_t v);
uint64_t crypto_get_be64(const uint8_t *p);

/* Unpadded base64url. encode writes 4*ceil(len/3) bytes at most plus NUL and
 * returns the text length; decode returns the byte count or -1 on a bad
 * character or a length that cannot be base64url. */
size_t base64url_encode(const uint8_t *data, size_t len, char *out);
long base64url_decode(const char *text, size_t len, uint8_t *out, size_t out_size);

#endif

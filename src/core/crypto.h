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
 * character, a length that cannot be base64url, or a text that is not
 * the canonical encoding of its bytes (non-zero unused bits in the last
 * character): decode(text) succeeds only if encode(bytes) == text. */
size_t base64url_encode(const uint8_t *data, size_t len, char *out);
long base64url_decode(const char *text, size_t len, uint8_t *out, size_t out_size);

/* Sealed tokens (cursors, preview links): payload bytes followed by the
 * first mac_len (1..32) bytes of their HMAC-SHA256 under key, as base64url.
 * crypto_seal writes the MAC at buf + len (buf needs len + mac_len bytes)
 * and the text to out (4*ceil((len+mac_len)/3) + 1 bytes); returns the
 * text's length. crypto_unseal decodes text into buf (size bytes) and
 * returns the payload's length, or -1 if the text is not canonical
 * base64url, is too short or too long, or its MAC does not match (compared in constant time). */
size_t crypto_seal(const uint8_t key[32], uint8_t *buf, size_t len, size_t mac_len, char *out);
long crypto_unseal(const uint8_t key[32], const char *text, size_t text_len, size_t mac_len, uint8_t *buf, size_t size);

#endif

/*
 * crypto.c — hashing, HMAC, randomness and base64url (see crypto.h).
 *
 * base64url is decoded strictly: only the canonical text of some bytes is
 * accepted (the alphabet, no padding, no length that leaves 6 bits, and
 * zero unused bits in the last character), so bytes and text correspond
 * one to one and a sealed token cannot be respelled.
 */
#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    SHA256(data, len, out);
}

void crypto_hmac_sha256(const uint8_t key[32], const void *data, size_t len, uint8_t out[32])
{
    unsigned int out_len = 32;
    HMAC(EVP_sha256(), key, 32, data, len, out, &out_len);
}

bool crypto_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int crypto_random(void *out, size_t len)
{
    return RAND_bytes(out, (int)len) == 1 ? 0 : -1;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t base64url_encode(const uint8_t *data, size_t len, char *out)
{
    size_t n = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
        out[n++] = b64url[v >> 6 & 63];
        out[n++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
        out[n++] = b64url[v >> 6 & 63];
    }
    out[n] = '\0';
    return n;
}

static int b64url_value(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

long base64url_decode(const char *text, size_t len, uint8_t *out, size_t out_size)
{
    if (len % 4 == 1)
        return -1;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(text[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == out_size)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* The last character's unused low bits must be zero: otherwise 3 (or
     * 15) other texts would decode to the same bytes, and a signed token
     * would have several spellings (each its own cache key). */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)n;
}

void crypto_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t crypto_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

size_t crypto_seal(const uint8_t key[32], uint8_t *buf, size_t len, size_t mac_len, char *out)
{
    uint8_t mac[32];
    crypto_hmac_sha256(key, buf, len, mac);
    memcpy(buf + len, mac, mac_len);
    return base64url_encode(buf, len + mac_len, out);
}

long crypto_unseal(const uint8_t key[32], const char *text, size_t text_len, size_t mac_len, uint8_t *buf, size_t size)
{
    long n = base64url_decode(text, text_len, buf, size);
    if (n < (long)mac_len)
        return -1;
    size_t len = (size_t)n - mac_len;
    uint8_t mac[32];
    crypto_hmac_sha256(key, buf, len, mac);
    return crypto_equal(mac, buf + len, mac_len) ? (long)len : -1;
}

/*
 * test_crypto.c — base64url and sealed tokens (src/core/crypto.c): every
 * byte string has exactly one accepted text, so a signed cursor or preview
 * link cannot be respelled into another cache key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/crypto.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void test_round_trip_of_every_length(void **state)
{
    (void)state;
    uint8_t data[64], back[64];
    char text[100];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        size_t n = base64url_encode(data, len, text);
        assert_int_equal(base64url_decode(text, n, back, sizeof(back)), (long)len);
        assert_memory_equal(back, data, len);
    }
}

/* Every other character in the last position decodes to the same bytes
 * when only unused bits differ: none of them may be accepted. */
static void test_only_the_canonical_text_is_accepted(void **state)
{
    (void)state;
    uint8_t data[8] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04}, back[16];
    char text[16];
    for (size_t len = 1; len <= sizeof(data); len++) {
        size_t n = base64url_encode(data, len, text);
        char last = text[n - 1];
        int accepted = 0;
        for (const char *c = alphabet; *c != '\0'; c++) {
            text[n - 1] = *c;
            long got = base64url_decode(text, n, back, sizeof(back));
            if (got == (long)len && memcmp(back, data, len) == 0)
                accepted++;
        }
        text[n - 1] = last;
        assert_int_equal(accepted, 1);
    }
    assert_int_equal(base64url_decode("QQ", 2, back, sizeof(back)), 1);  /* "A" */
    assert_int_equal(base64url_decode("QR", 2, back, sizeof(back)), -1); /* "A" respelled */
    assert_int_equal(base64url_decode("QUI", 3, back, sizeof(back)), 2);
    assert_int_equal(base64url_decode("QUJ", 3, back, sizeof(back)), -1);
    assert_int_equal(base64url_decode("QQ==", 4, back, sizeof(back)), -1); /* no padding */
}

static void test_sealed_tokens_have_one_spelling(void **state)
{
    (void)state;
    uint8_t key[32] = {1, 2, 3}, buf[64], out[64];
    char text[100];
    for (size_t len = 0; len < 20; len++) {
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(len + i);
        size_t n = crypto_seal(key, buf, len, 16, text);
        assert_int_equal(crypto_unseal(key, text, n, 16, out, sizeof(out)), (long)len);
        char last = text[n - 1];
        for (const char *c = alphabet; *c != '\0'; c++) {
            if (*c == last)
                continue;
            text[n - 1] = *c;
            assert_int_equal(crypto_unseal(key, text, n, 16, out, sizeof(out)), -1);
        }
        text[n - 1] = last;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_of_every_length),
        cmocka_unit_test(test_only_the_canonical_text_is_accepted),
        cmocka_unit_test(test_sealed_tokens_have_one_spelling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

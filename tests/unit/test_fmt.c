/*
 * test_fmt.c — the printf-free number formatting of the hot path, and the
 * growing buffer the item renderer writes into (core/growbuf.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/fmt.h"
#include "core/growbuf.h"

static void check_u64(uint64_t v, const char *expected)
{
    char out[32];
    size_t n = fmt_u64(out, v);
    out[n] = '\0';
    assert_string_equal(out, expected);
}

static void test_decimal(void **state)
{
    (void)state;
    check_u64(0, "0");
    check_u64(7, "7");
    check_u64(1000, "1000");
    check_u64(UINT64_MAX, "18446744073709551615");
}

static void check_i64(int64_t v, const char *expected)
{
    char out[32];
    size_t n = fmt_i64(out, v);
    out[n] = '\0';
    assert_string_equal(out, expected);
}

static void test_signed_decimal(void **state)
{
    (void)state;
    check_i64(0, "0");
    check_i64(-1, "-1");
    check_i64(42, "42");
    check_i64(INT64_MAX, "9223372036854775807");
    check_i64(INT64_MIN, "-9223372036854775808");
}

/* growbuf: appends across its doublings keep every byte, in order. */
static void test_growbuf_grows_and_keeps_everything(void **state)
{
    (void)state;
    growbuf b = {0};
    char expected[20000];
    size_t len = 0;
    for (int i = 0; len + 40 < sizeof expected; i++) {
        char piece[32];
        size_t n = fmt_i64(piece, (int64_t)i * -7919);
        growbuf_put(&b, piece, n);
        GROWBUF_LITERAL(&b, ",");
        memcpy(expected + len, piece, n);
        len += n;
        expected[len++] = ',';
    }
    growbuf_put_int(&b, INT64_MIN);
    memcpy(expected + len, "-9223372036854775808", 20);
    len += 20;
    assert_false(b.failed);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, expected, len);
    assert_true(b.cap >= b.len && b.cap <= 32768);
    growbuf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_hex_is_zero_padded(void **state)
{
    (void)state;
    char out[9] = {0};
    fmt_hex(out, 0xabc, 8);
    assert_string_equal(out, "00000abc");
    fmt_hex(out, 0x123456789ULL, 8); /* keeps the low digits */
    assert_string_equal(out, "23456789");
}

static void test_microseconds_as_milliseconds(void **state)
{
    (void)state;
    static const struct {
        uint64_t us;
        const char *ms;
    } cases[] = {{0, "0.000"}, {5, "0.005"}, {1234, "1.234"}, {60000, "60.000"}, {1000001, "1000.001"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        size_t n = fmt_us_as_ms(out, cases[i].us);
        out[n] = '\0';
        assert_string_equal(out, cases[i].ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_signed_decimal),
        cmocka_unit_test(test_growbuf_grows_and_keeps_everything),
        cmocka_unit_test(test_hex_is_zero_padded),
        cmocka_unit_test(test_microseconds_as_milliseconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_lsn.c — WAL positions as PostgreSQL writes them ("16/B374D848").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/lsn.h"

static void test_format_is_postgres_text(void **state)
{
    (void)state;
    char out[LSN_TEXT_MAX];
    assert_int_equal(lsn_format(0, out), 3);
    assert_string_equal(out, "0/0");
    lsn_format(0x16B374D848ULL, out);
    assert_string_equal(out, "16/B374D848");
    assert_int_equal(lsn_format(UINT64_MAX, out), LSN_TEXT_MAX - 1);
    assert_string_equal(out, "FFFFFFFF/FFFFFFFF");
}

static void test_parse_round_trips(void **state)
{
    (void)state;
    const lsn_t samples[] = {0, 1, 0x3000060ULL, 0x16B374D848ULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char text[LSN_TEXT_MAX];
        size_t n = lsn_format(samples[i], text);
        lsn_t back = 7;
        assert_true(lsn_parse(text, n, &back));
        assert_true(back == samples[i]);
    }
    lsn_t lower;
    assert_true(lsn_parse("16/b374d848", 11, &lower));
    assert_true(lower == 0x16B374D848ULL);
}

static void test_parse_refuses_anything_else(void **state)
{
    (void)state;
    const char *bad[] = {"",    "/",    "1/",          "/1",          "16B374D848", "1/2/3",
                         "g/1", "1/ 2", "123456789/0", "0/123456789", "-1/0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lsn_t out = 42;
        assert_false(lsn_parse(bad[i], strlen(bad[i]), &out));
        assert_true(out == 42);
    }
    lsn_t out = 42; /* the length bounds the text: a NUL-less buffer */
    assert_false(lsn_parse("1/2", 2, &out));
}

static void test_hex16_is_the_tiers_fixed_width(void **state)
{
    (void)state;
    lsn_t out = 0;
    assert_true(lsn_parse_hex16("00000016b374d848", &out));
    assert_true(out == 0x16B374D848ULL);
    assert_true(lsn_parse_hex16("FFFFFFFFFFFFFFFF", &out));
    assert_true(out == UINT64_MAX);
    out = 42;
    assert_false(lsn_parse_hex16("00000016b374d84g", &out));
    assert_false(lsn_parse_hex16("0000016/b374d848", &out));
    assert_true(out == 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_is_postgres_text),
        cmocka_unit_test(test_parse_round_trips),
        cmocka_unit_test(test_parse_refuses_anything_else),
        cmocka_unit_test(test_hex16_is_the_tiers_fixed_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

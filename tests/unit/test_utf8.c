/*
 * test_utf8.c — well-formed UTF-8 (src/core/utf8.c): each edge of RFC 3629
 * section 4's table on both sides, truncation, and the code points.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/utf8.h"

/* The length utf8_sequence gives the bytes of s (all of them available). */
static size_t length_of(const char *s)
{
    return utf8_sequence((const unsigned char *)s, strlen(s), NULL);
}

static void each_edge_of_the_table(void **state)
{
    (void)state;
    assert_int_equal(length_of("a"), 1);
    assert_int_equal(length_of("\x7f"), 1);
    assert_int_equal(length_of("\x80"), 0);             /* a continuation byte alone */
    assert_int_equal(length_of("\xc0\x80"), 0);         /* overlong NUL */
    assert_int_equal(length_of("\xc1\xbf"), 0);         /* overlong U+007F */
    assert_int_equal(length_of("\xc2\x80"), 2);         /* U+0080 */
    assert_int_equal(length_of("\xdf\xbf"), 2);         /* U+07FF */
    assert_int_equal(length_of("\xe0\x9f\xbf"), 0);     /* overlong U+07FF */
    assert_int_equal(length_of("\xe0\xa0\x80"), 3);     /* U+0800 */
    assert_int_equal(length_of("\xed\x9f\xbf"), 3);     /* U+D7FF */
    assert_int_equal(length_of("\xed\xa0\x80"), 0);     /* U+D800, a surrogate */
    assert_int_equal(length_of("\xed\xbf\xbf"), 0);     /* U+DFFF */
    assert_int_equal(length_of("\xee\x80\x80"), 3);     /* U+E000 */
    assert_int_equal(length_of("\xef\xbf\xbf"), 3);     /* U+FFFF */
    assert_int_equal(length_of("\xf0\x8f\xbf\xbf"), 0); /* overlong U+FFFF */
    assert_int_equal(length_of("\xf0\x90\x80\x80"), 4); /* U+10000 */
    assert_int_equal(length_of("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
    assert_int_equal(length_of("\xf4\x90\x80\x80"), 0); /* U+110000 */
    assert_int_equal(length_of("\xf5\x80\x80\x80"), 0); /* no such first byte */
    assert_int_equal(length_of("\xff"), 0);
    assert_int_equal(length_of("\xe2\x82\x41"), 0);     /* a third byte that is no continuation */
    assert_int_equal(length_of("\xf0\x9f\x98\xc0"), 0); /* a fourth */
}

/* A sequence cut by the end of what may be read is not one, and nothing
 * past a NUL is looked at (ASan would tell: the buffers are exact). */
static void truncated_and_nul_terminated(void **state)
{
    (void)state;
    const unsigned char euro[3] = {0xe2, 0x82, 0xac};
    assert_int_equal(utf8_sequence(euro, 3, NULL), 3);
    assert_int_equal(utf8_sequence(euro, 2, NULL), 0);
    assert_int_equal(utf8_sequence(euro, 1, NULL), 0);
    const unsigned char cut[2] = {0xe2, 0x00};
    assert_int_equal(utf8_sequence(cut, 4, NULL), 0); /* stops at the NUL, reads no third byte */
}

static void code_points(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        uint32_t cp;
    } cases[] = {{"A", 0x41},
                 {"\xc3\xa9", 0xe9},
                 {"\xe2\x82\xac", 0x20ac},
                 {"\xe3\x80\x80", 0x3000},
                 {"\xf0\x9f\x98\x80", 0x1f600},
                 {"\xf4\x8f\xbf\xbf", 0x10ffff}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t cp = 0;
        size_t len = strlen(cases[i].bytes);
        assert_int_equal(utf8_sequence((const unsigned char *)cases[i].bytes, len, &cp), len);
        assert_int_equal(cp, cases[i].cp);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_edge_of_the_table),
        cmocka_unit_test(truncated_and_nul_terminated),
        cmocka_unit_test(code_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

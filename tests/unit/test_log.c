/*
 * test_log.c — JSON escaping of log strings (src/core/log.c): whatever
 * bytes come in, what goes out is the inside of a valid JSON string, and
 * valid UTF-8 is kept as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "core/log.h"

static void assert_escaped(const char *in, size_t len, const char *expected)
{
    char out[256];
    char *end = json_escape_into(out, out + sizeof(out), in, len);
    *end = '\0';
    assert_string_equal(out, expected);
}

static void test_valid_utf8_is_kept(void **state)
{
    (void)state;
    assert_escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_escaped("a\"b\\c\n\x7f", 7, "a\\\"b\\\\c\\u000a\\u007f");
}

static void test_bytes_of_no_valid_utf8_are_escaped(void **state)
{
    (void)state;
    assert_escaped("\xff\xfe", 2, "\\u00ff\\u00fe");
    assert_escaped("\xc3", 1, "\\u00c3");                                  /* cut short */
    assert_escaped("\xc3(", 2, "\\u00c3(");                                /* bad continuation */
    assert_escaped("\xc0\xaf", 2, "\\u00c0\\u00af");                       /* overlong '/' */
    assert_escaped("\xe0\x80\xaf", 3, "\\u00e0\\u0080\\u00af");            /* overlong */
    assert_escaped("\xed\xa0\x80", 3, "\\u00ed\\u00a0\\u0080");            /* a surrogate */
    assert_escaped("\xf4\x90\x80\x80", 4, "\\u00f4\\u0090\\u0080\\u0080"); /* above U+10FFFF */
    assert_escaped("\x80"
                   "abc",
                   4, "\\u0080abc");
}

static void test_no_room_writes_nothing(void **state)
{
    (void)state;
    char out[8] = "xxxxxxx";
    /* a full line hands an end before its start: nothing is written */
    assert_ptr_equal(json_escape_into(out + 4, out + 3, "plain ascii", 11), out + 4);
    assert_ptr_equal(json_escape_into(out + 4, out + 4, "plain ascii", 11), out + 4);
    assert_string_equal(out, "xxxxxxx");
    /* room for part of a plain run: exactly that much */
    assert_ptr_equal(json_escape_into(out, out + 3, "plain", 5), out + 3);
    assert_memory_equal(out, "pla", 3);
}

static void test_never_half_a_character_or_escape(void **state)
{
    (void)state;
    char out[8] = {0};
    /* 4 bytes of room: "ab" fit, the 3-byte euro sign does not after them */
    char *end = json_escape_into(out, out + 4, "ab\xe2\x82\xac", 5);
    assert_int_equal(end - out, 2);
    end = json_escape_into(out, out + 5, "a\xff", 2);
    assert_int_equal(end - out, 1);
}

/* Whatever the length of a value, the line stays one JSON object: the
 * fields after one that does not fit are left out whole (before, a key
 * could be cut in the middle and the line was no JSON). */
static void test_a_full_line_is_still_json(void **state)
{
    (void)state;
    static char long_value[5000];
    memset(long_value, 'a', sizeof long_value);
    for (size_t pad = 3900; pad < 4100; pad++) {
        log_line line;
        log_begin(&line, LOG_ERROR, "request");
        log_strn(&line, "path", long_value, pad);
        log_str(&line, "request_id", "abc-123");
        log_int(&line, "status", -200);
        log_str(&line, "nothing", NULL);
        log_finish(&line);
        assert_true(line.len <= sizeof line.buf);
        json_error_t error;
        json_t *doc = json_loadb(line.buf, line.len, 0, &error);
        if (doc == NULL)
            fail_msg("pad %zu: %s in %.*s", pad, error.text, (int)line.len, line.buf);
        json_t *status = json_object_get(doc, "status");
        assert_true(status == NULL || json_integer_value(status) == -200);
        assert_true(json_is_true(json_object_get(doc, "truncated")) ||
                    json_object_get(doc, "nothing") != NULL); /* cut, or everything there */
        json_decref(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_utf8_is_kept),
        cmocka_unit_test(test_bytes_of_no_valid_utf8_are_escaped),
        cmocka_unit_test(test_never_half_a_character_or_escape),
        cmocka_unit_test(test_no_room_writes_nothing),
        cmocka_unit_test(test_a_full_line_is_still_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

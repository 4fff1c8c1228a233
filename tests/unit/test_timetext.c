/*
 * test_timetext.c — RFC 3339 date-times (src/core/timetext.c): what is
 * taken and the instant it names, and what is refused, untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/timetext.h"

static int64_t parsed(const char *text)
{
    int64_t ms = -1;
    assert_true(time_parse_rfc3339(text, strlen(text), &ms));
    return ms;
}

static void refused(const char *text)
{
    int64_t ms = -1;
    if (time_parse_rfc3339(text, strlen(text), &ms))
        fail_msg("'%s' was taken", text);
    assert_int_equal(ms, -1);
}

static void instants_are_read_in_utc(void **state)
{
    (void)state;
    assert_int_equal(parsed("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parsed("2026-12-05T10:00:00Z"), 1796464800000LL);
    assert_int_equal(parsed("2026-12-05t10:00:00z"), 1796464800000LL);
    assert_int_equal(parsed("2026-12-05T11:30:00+01:30"), 1796464800000LL);
    assert_int_equal(parsed("2026-12-05T08:00:00-02:00"), 1796464800000LL);
    assert_int_equal(parsed("2026-12-05T10:00:00.5Z"), 1796464800500LL);
    assert_int_equal(parsed("2026-12-05T10:00:00.123456789Z"), 1796464800123LL);
    assert_int_equal(parsed("2024-02-29T00:00:00Z"), 1709164800000LL); /* a leap day */
    assert_int_equal(parsed("2000-02-29T00:00:00Z"), 951782400000LL);  /* 2000 is a leap year */
    assert_int_equal(parsed("9999-12-31T23:59:59Z"), 253402300799000LL);
}

static void anything_else_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026-12-05",
        "2026-12-05T10:00:00",
        "2026-12-05 10:00:00Z",
        "2026-12-05T10:00Z",
        "2026-13-05T10:00:00Z",
        "2026-12-32T10:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-12-05T24:00:00Z",
        "2026-12-05T10:60:00Z",
        "2026-12-05T10:00:60Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+01:00",
        "2026-12-05T10:00:00.Z",
        "2026-12-05T10:00:00.1234567890Z",
        "2026-12-05T10:00:00+2:00",
        "2026-12-05T10:00:00+24:00",
        "2026-12-05T10:00:00+01:60",
        "2026-12-05T10:00:00ZZ",
        "2026-12-05T10:00:00Z ",
        "+026-12-05T10:00:00Z",
        "2026-1a-05T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(bad[i]);
    int64_t ms = -1; /* the length bounds the text: a valid prefix is not enough */
    assert_false(time_parse_rfc3339("2026-12-05T10:00:00Z", 19, &ms));
    assert_int_equal(ms, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(instants_are_read_in_utc),
        cmocka_unit_test(anything_else_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

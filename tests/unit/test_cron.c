/*
 * test_cron.c — schedules (src/jobs/cron.c): what parses, what is refused
 * and why, and the next tick of each form, in UTC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/cron.h"

/* 2026-03-02T10:20:30.500Z, a Monday */
static const int64_t MONDAY = 1772446830500LL;
#define MINUTE 60000LL
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

static cron_schedule parse_ok(const char *text)
{
    cron_schedule s;
    char err[256] = "";
    int rc = cron_parse(text, &s, err, sizeof err);
    if (rc != 0)
        fail_msg("'%s' should parse: %s", text, err);
    return s;
}

static void refused(const char *text, const char *mentions)
{
    cron_schedule s;
    char err[256] = "";
    assert_int_equal(cron_parse(text, &s, err, sizeof err), -1);
    if (strstr(err, mentions) == NULL)
        fail_msg("the error for '%s' should mention '%s': %s", text, mentions, err);
}

static int64_t next_of(const char *text, int64_t after)
{
    cron_schedule s = parse_ok(text);
    return cron_next(&s, after);
}

static void test_fixture_date_is_a_monday(void **state)
{
    (void)state;
    /* the day-of-week cases below rely on it: 1772409600 is 2026-03-02 00:00 */
    assert_int_equal(MONDAY / DAY * DAY, 1772409600000LL);
    assert_int_equal((MONDAY / DAY + 4) % 7, 1); /* 1970-01-01 was a Thursday */
}

static void test_empty_means_never(void **state)
{
    (void)state;
    cron_schedule s = parse_ok("");
    assert_int_equal(s.kind, CRON_NEVER);
    assert_int_equal(cron_next(&s, MONDAY), -1);
    assert_int_equal(parse_ok("   ").kind, CRON_NEVER);
}

static void test_every_is_aligned_to_the_epoch(void **state)
{
    (void)state;
    assert_int_equal(next_of("@every 1s", MONDAY), MONDAY - 500 + 1000);
    assert_int_equal(next_of("@every 5m", MONDAY), MONDAY / DAY * DAY + 10 * HOUR + 25 * MINUTE);
    assert_int_equal(next_of("@every 2h", MONDAY), MONDAY / DAY * DAY + 12 * HOUR);
    /* strictly after: a tick is never its own successor */
    int64_t tick = next_of("@every 1s", MONDAY);
    assert_int_equal(next_of("@every 1s", tick), tick + 1000);
    assert_int_equal(parse_ok(" @every\t30s ").every_ms, 30000);
}

static void test_every_refusals(void **state)
{
    (void)state;
    refused("@every", "@every N");
    refused("@every 0s", "@every N");
    refused("@every 5", "@every N");
    refused("@every 5d", "@every N");
    refused("@every 5ms", "@every N");
    refused("@every -1s", "@every N");
    refused("@every 9999h", "at most a year");
    refused("@daily", "five cron fields");
}

static void test_fields_next_tick(void **state)
{
    (void)state;
    int64_t midnight = MONDAY / DAY * DAY;
    assert_int_equal(next_of("* * * * *", MONDAY), midnight + 10 * HOUR + 21 * MINUTE);
    assert_int_equal(next_of("7 * * * *", MONDAY), midnight + 11 * HOUR + 7 * MINUTE);
    assert_int_equal(next_of("17 3 * * *", MONDAY), midnight + DAY + 3 * HOUR + 17 * MINUTE);
    assert_int_equal(next_of("*/15 * * * *", MONDAY), midnight + 10 * HOUR + 30 * MINUTE);
    assert_int_equal(next_of("0 9-17/4 * * *", MONDAY), midnight + 13 * HOUR);
    assert_int_equal(next_of("30 10,22 * * *", MONDAY), midnight + 10 * HOUR + 30 * MINUTE);
    assert_int_equal(next_of("5/20 10 * * *", MONDAY), midnight + 10 * HOUR + 25 * MINUTE);
    /* from exactly a tick, the next one */
    assert_int_equal(next_of("7 * * * *", midnight + 11 * HOUR + 7 * MINUTE), midnight + 12 * HOUR + 7 * MINUTE);
}

static void test_days_months_and_weekdays(void **state)
{
    (void)state;
    int64_t midnight = MONDAY / DAY * DAY;
    /* Wednesday at noon: two days on */
    assert_int_equal(next_of("0 12 * * 3", MONDAY), midnight + 2 * DAY + 12 * HOUR);
    /* 0 and 7 both name Sunday */
    assert_int_equal(next_of("0 0 * * 0", MONDAY), midnight + 6 * DAY);
    assert_int_equal(next_of("0 0 * * 7", MONDAY), midnight + 6 * DAY);
    /* the 1st of April 2026 */
    assert_int_equal(next_of("0 0 1 4 *", MONDAY), 1775001600000LL);
    /* both day fields restricted: either matches (the 15th, or a Tuesday) */
    assert_int_equal(next_of("0 0 15 * 2", MONDAY), midnight + DAY);
    /* a restricted day of month with weekday *: that day only */
    assert_int_equal(next_of("0 0 15 * *", MONDAY), midnight + 13 * DAY);
    /* 29 February: next in 2028 */
    assert_int_equal(next_of("0 0 29 2 *", MONDAY), 1835395200000LL);
}

static void test_a_date_that_never_comes(void **state)
{
    (void)state;
    assert_int_equal(next_of("0 0 30 2 *", MONDAY), -1);
    assert_int_equal(next_of("0 0 31 4 *", MONDAY), -1);
}

static void test_field_refusals(void **state)
{
    (void)state;
    refused("* * * *", "five fields");
    refused("* * * * * *", "five fields");
    refused("60 * * * *", "minute");
    refused("* 24 * * *", "hour: '24' is not within 0..23");
    refused("* * 0 * *", "day of month");
    refused("* * * 13 *", "month");
    refused("* * * * 8", "day of week");
    refused("5-1 * * * *", "not within");
    refused("*/0 * * * *", "step");
    refused("*/x * * * *", "step");
    refused("a * * * *", "not a number");
    refused("1,,2 * * * *", "empty item");
    refused("1, * * * *", "empty item");
    refused("1- * * * *", "no end");
    refused("1x * * * *", "unexpected 'x'");
    refused("99999 * * * *", "not a number");
}

static void test_long_text_is_refused(void **state)
{
    (void)state;
    char text[400];
    memset(text, '1', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    refused(text, "at most 255 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_date_is_a_monday),
        cmocka_unit_test(test_empty_means_never),
        cmocka_unit_test(test_every_is_aligned_to_the_epoch),
        cmocka_unit_test(test_every_refusals),
        cmocka_unit_test(test_fields_next_tick),
        cmocka_unit_test(test_days_months_and_weekdays),
        cmocka_unit_test(test_a_date_that_never_comes),
        cmocka_unit_test(test_field_refusals),
        cmocka_unit_test(test_long_text_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

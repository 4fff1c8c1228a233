/*
 * test_field_filters.c — the list route's key for filters on fields
 * (content/field_filters.c, run on the event loop for every list request):
 * every spelling of one set of filters is one key, different filters are
 * different keys, a query the handler refuses has none, and hostile
 * queries meet bounds. The system tests (test_field_filters.py) check
 * the answers themselves on both engines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "content/field_filters.h"

static long key_of(const char *query, char out[1024])
{
    return field_filters_cache_key(query, strlen(query), out, 1024);
}

static void expect_same_key(const char *a, const char *b)
{
    char ka[1024], kb[1024];
    long la = key_of(a, ka), lb = key_of(b, kb);
    assert_true(la >= 0);
    assert_int_equal(la, lb);
    assert_memory_equal(ka, kb, (size_t)la);
}

static void expect_other_keys(const char *a, const char *b)
{
    char ka[1024], kb[1024];
    long la = key_of(a, ka), lb = key_of(b, kb);
    assert_true(la >= 0 && lb >= 0);
    assert_true(la != lb || memcmp(ka, kb, (size_t)la) != 0);
}

static void expect_no_key(const char *query)
{
    char k[1024];
    assert_int_equal(key_of(query, k), -1);
}

static void test_a_query_without_filters_adds_nothing_to_the_key(void **state)
{
    (void)state;
    char k[1024];
    assert_int_equal(key_of("", k), 0);
    assert_int_equal(key_of("type=post&limit=5&sort=title&junk=1&_=17&utm_source=x", k), 0);
}

static void test_every_spelling_of_one_filter_set_is_one_key(void **state)
{
    (void)state;
    expect_same_key("fields.a[gt]=1&fields.b=x", "fields.b=x&fields.a%5Bgt%5D=1");
    expect_same_key("fields.a=1", "type=post&fields.a=1&limit=3");
    expect_same_key("fields.c[in]=b,a,b", "fields.c[in]=a,b");
    expect_same_key("fields.t=a+b", "fields.t=a%20b");
}

static void test_different_filters_are_different_keys(void **state)
{
    (void)state;
    expect_other_keys("fields.a=1", "fields.a=2");
    expect_other_keys("fields.a=1", "fields.a[gte]=1");
    expect_other_keys("fields.a=1", "fields.b=1");
    expect_other_keys("fields.a[in]=1,2", "fields.a[in]=1");
    /* a value holding the separator of another cannot forge it */
    expect_other_keys("fields.a=1&fields.b=2", "fields.a=1%261fields.b%3D2");
}

static void test_a_query_the_handler_refuses_has_no_key(void **state)
{
    (void)state;
    expect_no_key("categroy=news");
    expect_no_key("tpye=post");
    expect_no_key("fields[a]=1");
    expect_no_key("field.a=1");
    expect_no_key("filter=x");
    expect_no_key("where=x");
    expect_no_key("fields.a[between]=1");
    expect_no_key("fields.A=1");
    expect_no_key("fields.=1");
    expect_no_key("fields.a=1&fields.a=2");
    expect_no_key("fields.a=1&fields.b=1&fields.c=1&fields.d=1&fields.e=1");
    expect_no_key("fields.a=%00");
}

static void test_hostile_queries_meet_bounds(void **state)
{
    (void)state;
    enum { BIG = 64 * 1024 };
    char *query = malloc(BIG + 1), k[1024];
    assert_non_null(query);
    /* a value longer than a filter may hold */
    memcpy(query, "fields.a=", 9);
    memset(query + 9, 'x', BIG - 9);
    query[BIG] = '\0';
    assert_int_equal(key_of(query, k), -1);
    /* a name longer than any parameter's, unknown but not filter-like: ignored */
    memset(query, 'q', BIG);
    query[BIG - 2] = '=';
    assert_int_equal(key_of(query, k), 0);
    /* many ampersands, many unknown short names */
    memset(query, '&', BIG);
    assert_int_equal(key_of(query, k), 0);
    for (size_t i = 0; i + 4 <= BIG; i += 4)
        memcpy(query + i, "zz&&", 4);
    assert_int_equal(key_of(query, k), 0);
    free(query);
    /* a key that does not fit the caller's buffer: answered, never cached */
    char small[16];
    assert_int_equal(field_filters_cache_key("fields.abc=defghijklmnop", 24, small, sizeof small), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_query_without_filters_adds_nothing_to_the_key),
        cmocka_unit_test(test_every_spelling_of_one_filter_set_is_one_key),
        cmocka_unit_test(test_different_filters_are_different_keys),
        cmocka_unit_test(test_a_query_the_handler_refuses_has_no_key),
        cmocka_unit_test(test_hostile_queries_meet_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

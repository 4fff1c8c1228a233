/*
 * test_route_params.c — the cacheable query parameters have one table per
 * route (routes.c, indexed by api.h's enums) that the cache keys on and
 * the handlers read: the routes' cache rules point at those very tables,
 * each table is in name order (the key's order), each enum index names
 * the row the handler means, and every integer default is an integer.
 * The system tests (test_cache_keys.py) show the handlers' answers agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "content/api.h"
#include "content/content.h"

static const http_cache_rule *rule_of(const char *pattern)
{
    for (size_t i = 0; i < content_route_count; i++)
        if (strcmp(content_routes[i].pattern, pattern) == 0 && content_routes[i].methods == HTTP_GET)
            return content_routes[i].cache;
    return NULL;
}

static void expect_table(const http_cache_param *table, size_t count, const char *const names[])
{
    for (size_t i = 0; i < count; i++) {
        assert_string_equal(table[i].name, names[i]);
        if (i > 0)
            assert_true(strcmp(table[i - 1].name, table[i].name) < 0);
        if (table[i].integer) {
            char *end;
            strtol(table[i].default_value, &end, 10);
            assert_true(end != table[i].default_value && *end == '\0');
        }
    }
}

static void test_the_list_route_keys_on_the_table_its_handler_reads(void **state)
{
    (void)state;
    const http_cache_rule *rule = rule_of("/v1/:site/content");
    assert_non_null(rule);
    assert_ptr_equal(rule->params, list_params);
    assert_int_equal(rule->param_count, LIST_PARAM_COUNT);
    const char *const names[LIST_PARAM_COUNT] = {
        [LIST_PARAM_CATEGORY] = "category", [LIST_PARAM_CURSOR] = "cursor", [LIST_PARAM_INCLUDE] = "include",
        [LIST_PARAM_LIMIT] = "limit",       [LIST_PARAM_Q] = "q",           [LIST_PARAM_SELECT] = "select",
        [LIST_PARAM_SORT] = "sort",         [LIST_PARAM_STATUS] = "status", [LIST_PARAM_TAG] = "tag",
        [LIST_PARAM_TYPE] = "type",
    };
    expect_table(list_params, LIST_PARAM_COUNT, names);
}

static void test_the_popular_route_keys_on_the_table_its_handler_reads(void **state)
{
    (void)state;
    const http_cache_rule *rule = rule_of("/v1/:site/popular");
    assert_non_null(rule);
    assert_ptr_equal(rule->params, popular_params);
    assert_int_equal(rule->param_count, POPULAR_PARAM_COUNT);
    const char *const names[POPULAR_PARAM_COUNT] = {
        [POPULAR_PARAM_LIMIT] = "limit",
        [POPULAR_PARAM_TYPE] = "type",
        [POPULAR_PARAM_WINDOW] = "window",
    };
    expect_table(popular_params, POPULAR_PARAM_COUNT, names);
}

/* An item, by id or by slug: select and include, as sets. */
static void test_the_item_routes_key_on_the_table_their_handlers_read(void **state)
{
    (void)state;
    const char *const names[ITEM_PARAM_COUNT] = {[ITEM_PARAM_INCLUDE] = "include", [ITEM_PARAM_SELECT] = "select"};
    for (int i = 0; i < 2; i++) {
        const http_cache_rule *rule = rule_of(i ? "/v1/:site/content/by-slug/:type/:slug" : "/v1/:site/content/:id");
        assert_non_null(rule);
        assert_ptr_equal(rule->params, item_params);
        assert_int_equal(rule->param_count, ITEM_PARAM_COUNT);
    }
    expect_table(item_params, ITEM_PARAM_COUNT, names);
    assert_true(item_params[ITEM_PARAM_SELECT].word_set && list_params[LIST_PARAM_SELECT].word_set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_list_route_keys_on_the_table_its_handler_reads),
        cmocka_unit_test(test_the_popular_route_keys_on_the_table_its_handler_reads),
        cmocka_unit_test(test_the_item_routes_key_on_the_table_their_handlers_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

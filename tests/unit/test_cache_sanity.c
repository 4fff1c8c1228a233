/*
 * test_cache_sanity.c — the cache engine's invariant checker (cache.h,
 * core/sanity.h) reports each kind of broken structure: a cache built
 * through the real calls is sane; then one invariant at a time is broken on
 * purpose (cache_sanity_break), the checker must report it to the hook this
 * test installs (which records instead of aborting), and the same break
 * again mends the cache, which is sane again and freed normally.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "core/sanity.h"

static int reports;
static char last_report[512];

static void record_report(const char *file, int line, const char *what)
{
    (void)file;
    (void)line;
    reports++;
    strncpy(last_report, what, sizeof(last_report) - 1);
}

static const char *const tags[] = {"lists", "item:7"};

static void insert(cache *c, const char *key, bool negative)
{
    cache_value v = {.value = NULL,
                     .charge = 100,
                     .tags = tags,
                     .tag_count = 2,
                     .fresh_ms = 1000,
                     .stale_ms = 1000,
                     .grace_ms = 1000,
                     .negative = negative};
    assert_true(cache_insert(c, 3, key, strlen(key), &v, cache_epoch(c), 0));
}

/* One shard, so every key shares it; three entries in small (the middle
 * one has a neighbour on each side), one negative, and a flight with two
 * waiters. */
static int setup(void **state)
{
    cache_options opts = {.max_bytes = 1 << 20, .negative_max_bytes = 1 << 16, .shard_count = 1, .seed = 1};
    cache *c = cache_create(&opts);
    insert(c, "a", false);
    insert(c, "b", false);
    insert(c, "c", false);
    insert(c, "gone", true);
    reports = 0;
    sanity_set_hook(record_report);
    *state = c;
    return 0;
}

static void on_done(cache_waiter *w, cache_entry *e)
{
    (void)w;
    cache_entry_release(&e);
}

static int teardown(void **state)
{
    cache *c = *state;
    sanity_set_hook(NULL);
    cache_destroy(&c);
    return 0;
}

/* Breaks `how` on key, expects a report naming `words`, mends it. */
static void expect_reported(cache *c, const char *key, cache_breakage how, const char *words)
{
    assert_true(cache_sanity_check(c));
    assert_int_equal(reports, 0);
    cache_sanity_break(c, key, strlen(key), how);
    assert_false(cache_sanity_check(c));
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_report, words));
    cache_sanity_break(c, key, strlen(key), how);
    assert_true(cache_sanity_check(c));
    assert_int_equal(reports, 1);
}

static void test_queue_bytes_that_do_not_add_up(void **state)
{
    expect_reported(*state, "b", CACHE_BREAK_QUEUE_BYTES, "bytes, its entries sum to");
}

static void test_queue_links_that_disagree(void **state)
{
    expect_reported(*state, "b", CACHE_BREAK_QUEUE_LINKS, "is not its predecessor");
}

static void test_linked_entry_without_references(void **state)
{
    expect_reported(*state, "c", CACHE_BREAK_REFS, "linked with 0 references");
}

static void test_entry_in_a_queue_but_not_the_table(void **state)
{
    expect_reported(*state, "a", CACHE_BREAK_TABLE, "not in the hash table");
}

static void test_namespace_bytes_that_do_not_add_up(void **state)
{
    expect_reported(*state, "gone", CACHE_BREAK_STATS, "namespace 3 counts");
}

static void test_tag_count_that_does_not_match_its_list(void **state)
{
    expect_reported(*state, "a", CACHE_BREAK_TAG_COUNT, "tag 'lists' counts");
}

static void test_flight_waiters_over_their_count(void **state)
{
    cache *c = *state;
    cache_flight *flight, *none;
    cache_entry *filled;
    cache_waiter first = {.done = on_done}, second = {.done = on_done};
    assert_int_equal(cache_flight_join(c, 3, "new", 3, 0, NULL, &flight, &filled), CACHE_LEADER);
    assert_int_equal(cache_flight_join(c, 3, "new", 3, 0, &first, &none, &filled), CACHE_JOINED);
    assert_int_equal(cache_flight_join(c, 3, "new", 3, 0, &second, &none, &filled), CACHE_JOINED);
    expect_reported(c, "new", CACHE_BREAK_WAITERS, "waiters");
    assert_true(cache_flight_leave(c, "new", 3, &first));
    assert_true(cache_sanity_check(c));
    cache_flight_finish(c, flight, NULL, 0, NULL);
    assert_true(cache_sanity_check(c));
    assert_int_equal(reports, 1);
}

/* The walk the engine runs by itself every 64th operation on a shard
 * reports a broken shard without anyone asking. */
static void test_operations_walk_the_shard_by_themselves(void **state)
{
    cache *c = *state;
    cache_entry *e;
    cache_sanity_break(c, "a", 1, CACHE_BREAK_QUEUE_BYTES);
    for (int i = 0; i < 64 && reports == 0; i++) {
        cache_get(c, 3, "b", 1, 0, &e);
        cache_entry_release(&e);
    }
    assert_true(reports >= 1);
    cache_sanity_break(c, "a", 1, CACHE_BREAK_QUEUE_BYTES);
}

/* Evictions, invalidations and a clear keep every invariant. */
static void test_a_busy_cache_stays_sane(void **state)
{
    cache *c = *state;
    char key[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", i % 3000);
        cache_value v = {.charge = 200 + (size_t)(i % 700),
                         .tags = tags,
                         .tag_count = 1 + (size_t)(i % 2),
                         .fresh_ms = 10,
                         .stale_ms = 10,
                         .grace_ms = 10,
                         .negative = i % 5 == 0};
        cache_insert(c, (uint32_t)(i % 70), key, strlen(key), &v, cache_epoch(c), (uint64_t)i / 10);
        if (i % 997 == 0)
            cache_invalidate_tag(c, "item:7");
        if (i % 331 == 0)
            cache_invalidate_key(c, "k5", 2);
    }
    assert_true(cache_sanity_check(c));
    cache_clear(c);
    assert_true(cache_sanity_check(c));
    assert_int_equal(reports, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_bytes_that_do_not_add_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_links_that_disagree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linked_entry_without_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_in_a_queue_but_not_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace_bytes_that_do_not_add_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_count_that_does_not_match_its_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flight_waiters_over_their_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operations_walk_the_shard_by_themselves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_busy_cache_stays_sane, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

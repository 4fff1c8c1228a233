/*
 * test_cache_ownership.c — the ownership contract of cache.h: a call given
 * a cache_value (cache_insert, cache_flight_finish, cache_entry_new) owns
 * the value whatever it returns, so the value is freed exactly once — by
 * the call itself when it refuses it (larger than a shard, fenced,
 * share_only), by the entry's last reference when it was installed. A
 * caller that also freed a refused value (history.c did) made a double
 * free; the counts here would show 2, and ASan would stop the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"

static _Atomic int frees;

static void counted_free(void *value)
{
    free(value);
    atomic_fetch_add(&frees, 1);
}

static cache_value value_of_charge(size_t charge, const char *const *tags, size_t tag_count)
{
    atomic_store(&frees, 0);
    return (cache_value){.value = malloc(16),
                         .free_value = counted_free,
                         .charge = charge,
                         .tags = tags,
                         .tag_count = tag_count,
                         .fresh_ms = 1000};
}

static cache *small_cache(void)
{
    cache_options o = {.max_bytes = 64 * 1024, .shard_count = 4, .seed = 1}; /* 16 KiB a shard */
    cache *c = cache_create(&o);
    assert_non_null(c);
    return c;
}

static void test_insert_refused_as_too_large_frees_the_value_once(void **state)
{
    (void)state;
    cache *c = small_cache();
    cache_value v = value_of_charge(20 * 1024, NULL, 0);
    assert_false(cache_insert(c, 0, "big", 3, &v, cache_epoch(c), 0));
    assert_int_equal(atomic_load(&frees), 1);
    cache_entry *e = NULL;
    assert_int_equal(cache_get(c, 0, "big", 3, 0, &e), CACHE_MISS);
    cache_destroy(&c);
    assert_int_equal(atomic_load(&frees), 1);
}

static void test_insert_refused_as_fenced_frees_the_value_once(void **state)
{
    (void)state;
    cache *c = small_cache();
    static const char *const tags[] = {"item:1"};
    uint64_t epoch = cache_epoch(c);
    cache_invalidate_tag(c, "item:1"); /* after the data was read */
    cache_value v = value_of_charge(100, tags, 1);
    assert_false(cache_insert(c, 0, "k", 1, &v, epoch, 0));
    assert_int_equal(atomic_load(&frees), 1);
    cache_destroy(&c);
    assert_int_equal(atomic_load(&frees), 1);
}

static void test_share_only_insert_frees_the_value_once(void **state)
{
    (void)state;
    cache *c = small_cache();
    cache_value v = value_of_charge(100, NULL, 0);
    v.share_only = true;
    assert_false(cache_insert(c, 0, "k", 1, &v, cache_epoch(c), 0));
    assert_int_equal(atomic_load(&frees), 1);
    cache_destroy(&c);
}

static void test_installed_value_is_freed_with_its_entry(void **state)
{
    (void)state;
    cache *c = small_cache();
    cache_value v = value_of_charge(100, NULL, 0);
    assert_true(cache_insert(c, 0, "k", 1, &v, cache_epoch(c), 0));
    assert_int_equal(atomic_load(&frees), 0);
    cache_destroy(&c);
    assert_int_equal(atomic_load(&frees), 1);
}

/* A flight's fill too large to keep still answers its waiters and the
 * leader (the entry it returns), and is freed once, with the last
 * reference. */
static void test_flight_fill_too_large_answers_then_frees_once(void **state)
{
    (void)state;
    cache *c = small_cache();
    cache_flight *flight = NULL;
    cache_entry *filled = NULL, *out = NULL;
    assert_int_equal(cache_flight_join(c, 0, "f", 1, 0, NULL, &flight, &filled), CACHE_LEADER);
    cache_value v = value_of_charge(20 * 1024, NULL, 0);
    assert_false(cache_flight_finish(c, flight, &v, 0, &out));
    assert_non_null(out);
    assert_int_equal(atomic_load(&frees), 0); /* the leader's reference */
    cache_entry_release(&out);
    assert_int_equal(atomic_load(&frees), 1);
    cache_destroy(&c);
    assert_int_equal(atomic_load(&frees), 1);
}

/* A leader without a flight (cache_flight_join out of memory) still hands
 * its fill over: the value comes back as an entry of its own, never
 * cached, and is freed once, with it — or at once when nobody takes it. */
static void test_a_fill_without_a_flight_is_answered_then_freed_once(void **state)
{
    (void)state;
    cache *c = small_cache();
    cache_entry *out = NULL, *e = NULL;
    cache_value v = value_of_charge(100, NULL, 0);
    assert_false(cache_flight_finish(c, NULL, &v, 0, &out));
    assert_non_null(out);
    assert_int_equal(atomic_load(&frees), 0);
    assert_int_equal(cache_get(c, 0, "", 0, 0, &e), CACHE_MISS);
    cache_entry_release(&out);
    assert_int_equal(atomic_load(&frees), 1);
    cache_value dropped = value_of_charge(100, NULL, 0);
    assert_false(cache_flight_finish(c, NULL, &dropped, 0, NULL));
    assert_int_equal(atomic_load(&frees), 1);
    cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_refused_as_too_large_frees_the_value_once),
        cmocka_unit_test(test_insert_refused_as_fenced_frees_the_value_once),
        cmocka_unit_test(test_share_only_insert_frees_the_value_once),
        cmocka_unit_test(test_installed_value_is_freed_with_its_entry),
        cmocka_unit_test(test_flight_fill_too_large_answers_then_frees_once),
        cmocka_unit_test(test_a_fill_without_a_flight_is_answered_then_freed_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

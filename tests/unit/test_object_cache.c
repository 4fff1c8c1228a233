/*
 * test_object_cache.c — the object cache's engine instance
 * (src/cache/objects.c): lookups counted, tags dropping entries, the epoch
 * fence refusing a fill that raced an invalidation, the byte bound
 * evicting, and every call a no-op while it is off.
 */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/objects.h"

static int frees;

static void value_free(void *value)
{
    frees++;
    free(value);
}

static void put(const char *key, size_t charge, const char *tag, uint64_t epoch)
{
    const char *const tags[] = {tag, "main:all"};
    object_cache_put(key, strlen(key), strdup(key), charge, value_free, tags, 2, epoch);
}

static bool has(const char *key)
{
    cache_entry *e = object_cache_get(key, strlen(key));
    if (e == NULL)
        return false;
    assert_string_equal(cache_entry_value(e), key);
    cache_entry_release(&e);
    return true;
}

static int teardown(void **state)
{
    (void)state;
    assert_true(object_cache_configure(false, 0));
    return 0;
}

static void test_hits_misses_and_tags(void **state)
{
    (void)state;
    assert_true(object_cache_configure(true, 4 << 20));
    assert_true(object_cache_enabled());
    assert_false(has("a"));
    put("a", 100, "main:item:1", object_cache_epoch());
    put("b", 100, "main:item:2", object_cache_epoch());
    assert_true(has("a"));
    assert_true(has("b"));
    object_cache_stats s;
    object_cache_get_stats(&s);
    assert_true(s.enabled);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.entries, 2);
    assert_true(s.bytes >= 200);
    object_cache_invalidate_tag("main:item:1");
    assert_false(has("a"));
    assert_true(has("b"));
    object_cache_invalidate_tag("main:all");
    assert_false(has("b"));
    object_cache_get_stats(&s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.invalidations, 2);
}

static void test_a_fill_racing_an_invalidation_is_not_stored(void **state)
{
    (void)state;
    assert_true(object_cache_configure(true, 4 << 20));
    uint64_t epoch = object_cache_epoch();      /* a fill starts reading */
    object_cache_invalidate_tag("main:item:7"); /* a write's invalidation lands */
    int before = frees;
    put("old", 10, "main:item:7", epoch);
    assert_int_equal(frees, before + 1); /* refused, and freed */
    assert_false(has("old"));
    put("other", 10, "main:item:8", epoch); /* an untouched tag still goes in */
    assert_true(has("other"));
    object_cache_clear();
    assert_false(has("other"));
}

static void test_the_byte_bound_evicts(void **state)
{
    (void)state;
    assert_true(object_cache_configure(true, 1 << 20));
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        put(key, 16 << 10, "main:item:x", object_cache_epoch());
    }
    object_cache_stats s;
    object_cache_get_stats(&s);
    assert_true(s.bytes <= s.max_bytes);
    assert_true(s.evictions > 0);
    assert_true(s.entries < 200);
}

static void test_off_is_a_no_op(void **state)
{
    (void)state;
    assert_true(object_cache_configure(false, 1 << 20));
    assert_false(object_cache_enabled());
    int before = frees;
    put("a", 10, "main:item:1", object_cache_epoch());
    assert_int_equal(frees, before + 1);
    assert_false(has("a"));
    object_cache_stats s;
    object_cache_get_stats(&s);
    assert_false(s.enabled);
    assert_int_equal(s.misses, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hits_misses_and_tags, teardown),
        cmocka_unit_test_teardown(test_a_fill_racing_an_invalidation_is_not_stored, teardown),
        cmocka_unit_test_teardown(test_the_byte_bound_evicts, teardown),
        cmocka_unit_test_teardown(test_off_is_a_no_op, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

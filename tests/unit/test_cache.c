/*
 * test_cache.c — the cache engine's properties, one test each: refcounted
 * entries, the byte bound, S3-FIFO keeping read entries (and a warm set
 * through a flood of one-hit keys), ghosts, negative entries under their
 * own budget, lifetimes and jitter, tag invalidation that reclaims
 * memory, fencing of fills that race an invalidation, single flight
 * across threads, leaving a flight, stats per namespace, and a threaded
 * race that checks no stale value survives an invalidation. `make tsan`
 * runs this file under ThreadSanitizer.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cache/cache.h"

static _Atomic int values_freed;

static void count_free(void *v)
{
    free(v);
    atomic_fetch_add(&values_freed, 1);
}

static cache_value make_value(long n, const char *const *tags, size_t tag_count)
{
    long *v = malloc(sizeof(*v));
    *v = n;
    return (cache_value){.value = v,
                         .free_value = count_free,
                         .charge = 100,
                         .tags = tags,
                         .tag_count = tag_count,
                         .fresh_ms = 1000,
                         .stale_ms = 1000,
                         .grace_ms = 1000};
}

static long value_of(cache_entry *e)
{
    return *(long *)cache_entry_value(e);
}

static cache *new_cache(size_t max_bytes, unsigned shards)
{
    cache_options o = {.max_bytes = max_bytes, .shard_count = shards, .seed = 7};
    cache *c = cache_create(&o);
    assert_non_null(c);
    return c;
}

static void put(cache *c, const char *key, long n, const char *const *tags, size_t tag_count, uint64_t now)
{
    cache_value v = make_value(n, tags, tag_count);
    assert_true(cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), now));
}

static void test_hit_is_a_reference_that_outlives_removal(void **state)
{
    (void)state;
    atomic_store(&values_freed, 0);
    cache *c = new_cache(1 << 20, 4);
    put(c, "a", 42, NULL, 0, 0);
    cache_entry *e;
    assert_int_equal(cache_get(c, 0, "a", 1, 10, &e), CACHE_FRESH);
    assert_int_equal(value_of(e), 42);
    assert_true(cache_invalidate_key(c, "a", 1));
    assert_int_equal(atomic_load(&values_freed), 0); /* still referenced */
    assert_int_equal(value_of(e), 42);
    cache_entry_release(&e);
    assert_null(e);
    assert_int_equal(atomic_load(&values_freed), 1);
    cache_entry *miss;
    assert_int_equal(cache_get(c, 0, "a", 1, 10, &miss), CACHE_MISS);
    assert_null(miss);
    cache_destroy(&c);
}

static void test_bytes_stay_within_the_bound(void **state)
{
    (void)state;
    cache *c = new_cache(64 * 1024, 4);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        cache_value v = make_value(i, NULL, 0);
        cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0);
    }
    cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    assert_true(st.bytes <= 64 * 1024);
    assert_true(st.entries > 50);
    assert_true(st.evictions > 4000);
    cache_destroy(&c);
}

static void test_read_entries_outlive_one_off_keys(void **state)
{
    (void)state;
    cache *c = new_cache(40 * 1024, 1);
    char key[32];
    cache_entry *e;
    put(c, "hot", 1, NULL, 0, 0);
    for (int i = 0; i < 2000; i++) {
        /* touch the hot key between inserts; one-off keys stream past it */
        assert_int_equal(cache_get(c, 0, "hot", 3, 0, &e), CACHE_FRESH);
        cache_entry_release(&e);
        snprintf(key, sizeof(key), "cold-%d", i);
        put(c, key, i, NULL, 0, 0);
    }
    assert_int_equal(cache_get(c, 0, "hot", 3, 0, &e), CACHE_FRESH);
    cache_entry_release(&e);
    assert_int_equal(cache_get(c, 0, "cold-0", 6, 0, &e), CACHE_MISS);
    cache_destroy(&c);
}

static void test_lifetimes_fresh_stale_expired_gone(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 1);
    put(c, "k", 1, NULL, 0, 1000); /* fresh until 2000, stale until 3000, grace until 4000 */
    cache_entry *e;
    assert_int_equal(cache_get(c, 0, "k", 1, 1999, &e), CACHE_FRESH);
    cache_entry_release(&e);
    assert_int_equal(cache_get(c, 0, "k", 1, 2000, &e), CACHE_STALE);
    cache_entry_release(&e);
    assert_int_equal(cache_get(c, 0, "k", 1, 3500, &e), CACHE_EXPIRED);
    cache_entry_release(&e);
    assert_int_equal(cache_get(c, 0, "k", 1, 4000, &e), CACHE_MISS);
    cache_stats st;
    cache_get_stats(c, 0, &st);
    assert_int_equal(st.entries, 0);
    cache_destroy(&c);
}

static void test_jitter_shortens_within_bounds(void **state)
{
    (void)state;
    cache_options o = {.max_bytes = 1 << 24, .shard_count = 8, .ttl_jitter = 0.2, .seed = 3};
    cache *c = cache_create(&o);
    char key[32];
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "j-%d", i);
        put(c, key, i, NULL, 0, 0);
        cache_entry *e;
        assert_int_equal(cache_get(c, 0, key, strlen(key), 0, &e), CACHE_FRESH);
        uint64_t until = cache_entry_fresh_until(e);
        lo = until < lo ? until : lo;
        hi = until > hi ? until : hi;
        cache_entry_release(&e);
    }
    assert_true(lo >= 800 && hi <= 1000);
    assert_true(hi - lo > 100); /* spread, not one value */
    cache_destroy(&c);
}

static void test_tag_invalidation_removes_tagged_only_and_frees(void **state)
{
    (void)state;
    atomic_store(&values_freed, 0);
    cache *c = new_cache(1 << 20, 8);
    const char *item[] = {"s:main", "main:item:1"};
    const char *list[] = {"s:main", "main:list"};
    const char *other[] = {"s:other", "other:item:1"};
    put(c, "item1", 1, item, 2, 0);
    put(c, "list", 2, list, 2, 0);
    put(c, "other", 3, other, 2, 0);
    assert_int_equal(cache_invalidate_tag(c, "main:item:1"), 1);
    assert_int_equal(atomic_load(&values_freed), 1);
    cache_entry *e;
    assert_int_equal(cache_get(c, 0, "item1", 5, 0, &e), CACHE_MISS);
    assert_int_equal(cache_get(c, 0, "list", 4, 0, &e), CACHE_FRESH);
    cache_entry_release(&e);
    assert_int_equal(cache_invalidate_tag(c, "s:main"), 1); /* flushing a site */
    assert_int_equal(cache_get(c, 0, "other", 5, 0, &e), CACHE_FRESH);
    cache_entry_release(&e);
    assert_int_equal(cache_invalidate_tag(c, "no-such-tag"), 0);
    cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    assert_int_equal(st.entries, 1);
    cache_destroy(&c);
}

static _Atomic int waiter_calls;
typedef struct test_waiter {
    cache_waiter super;
    cache_entry *got;
    bool called;
} test_waiter;

static void on_done(cache_waiter *w, cache_entry *e)
{
    test_waiter *t = (test_waiter *)w;
    t->got = e;
    t->called = true;
    atomic_fetch_add(&waiter_calls, 1);
}

static void test_fill_racing_an_invalidation_is_not_installed(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    const char *tags[] = {"main:item:9"};
    cache_flight *flight;
    cache_entry *filled;
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &flight, &filled), CACHE_LEADER);
    test_waiter w = {.super.done = on_done};
    cache_flight *none;
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, &w.super, &none, &filled), CACHE_JOINED);
    cache_invalidate_tag(c, "main:item:9"); /* a write lands while the fill reads */
    cache_value v = make_value(1, tags, 1);
    cache_entry *out;
    assert_false(cache_flight_finish(c, flight, &v, 0, &out));
    assert_non_null(out); /* the fill's result still answers the waiting requests */
    assert_true(w.called);
    assert_ptr_equal(w.got, out);
    cache_entry_release(&w.got);
    cache_entry_release(&out);
    cache_entry *e;
    assert_int_equal(cache_get(c, 0, "k", 1, 0, &e), CACHE_MISS);
    /* a fill that starts after the invalidation is installed */
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &flight, &filled), CACHE_LEADER);
    v = make_value(2, tags, 1);
    assert_true(cache_flight_finish(c, flight, &v, 0, NULL));
    cache_stats st;
    cache_get_stats(c, 0, &st);
    assert_int_equal(st.fenced, 1);
    cache_destroy(&c);
}

static void test_key_invalidation_fences_its_flight(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    cache_flight *flight;
    cache_entry *filled;
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &flight, &filled), CACHE_LEADER);
    cache_invalidate_key(c, "k", 1);
    cache_value v = make_value(1, NULL, 0);
    assert_false(cache_flight_finish(c, flight, &v, 0, NULL));
    cache_destroy(&c);
}

static void test_write_through_wins_over_an_older_fill(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    cache_flight *flight;
    cache_entry *filled, *e;
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &flight, &filled), CACHE_LEADER);
    put(c, "k", 2, NULL, 0, 0); /* publish stores the new representation */
    cache_value old = make_value(1, NULL, 0);
    assert_false(cache_flight_finish(c, flight, &old, 0, NULL));
    assert_int_equal(cache_get(c, 0, "k", 1, 0, &e), CACHE_FRESH);
    assert_int_equal(value_of(e), 2);
    cache_entry_release(&e);
    cache_destroy(&c);
}

static void test_join_returns_an_entry_filled_since_the_miss(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    put(c, "k", 5, NULL, 0, 0);
    cache_flight *flight;
    cache_entry *filled;
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &flight, &filled), CACHE_FILLED);
    assert_int_equal(value_of(filled), 5);
    assert_null(flight);
    cache_entry_release(&filled);
    cache_destroy(&c);
}

static void test_a_flight_older_than_an_invalidation_is_not_joined(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    const char *tags[] = {"main:lists"};
    cache_flight *old_flight, *new_flight, *none;
    cache_entry *filled, *e;
    test_waiter before = {.super.done = on_done}, after = {.super.done = on_done};
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &old_flight, &filled), CACHE_LEADER);
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, &before.super, &none, &filled), CACHE_JOINED);
    cache_invalidate_tag(c, "main:lists"); /* a write answered after the old fill began */
    /* a request after the write must not be handed the old fill's result */
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, &after.super, &new_flight, &filled), CACHE_LEADER);
    assert_ptr_not_equal(new_flight, old_flight);
    assert_true(cache_flight_leave(c, "k", 1, &before.super)); /* still reachable on the replaced flight */
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, &before.super, &none, &filled), CACHE_JOINED);
    cache_value old_value = make_value(1, tags, 1), new_value = make_value(2, tags, 1);
    assert_false(cache_flight_finish(c, old_flight, &old_value, 0, NULL));
    assert_false(before.called); /* it rejoined the new flight */
    assert_true(cache_flight_finish(c, new_flight, &new_value, 0, NULL));
    assert_true(before.called);
    assert_int_equal(value_of(before.got), 2);
    cache_entry_release(&before.got);
    assert_int_equal(cache_get(c, 0, "k", 1, 0, &e), CACHE_FRESH);
    assert_int_equal(value_of(e), 2);
    cache_entry_release(&e);
    cache_destroy(&c);
}

static void test_a_waiter_that_left_is_not_called(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    cache_flight *flight, *none;
    cache_entry *filled;
    test_waiter stays = {.super.done = on_done}, leaves = {.super.done = on_done};
    assert_int_equal(cache_flight_join(c, 0, "k", 1, 0, NULL, &flight, &filled), CACHE_LEADER);
    cache_flight_join(c, 0, "k", 1, 0, &stays.super, &none, &filled);
    cache_flight_join(c, 0, "k", 1, 0, &leaves.super, &none, &filled);
    assert_true(cache_flight_leave(c, "k", 1, &leaves.super));
    assert_true(cache_flight_finish(c, flight, NULL, 0, NULL) == false);
    assert_true(stays.called);
    assert_null(stays.got); /* the fill failed */
    assert_false(leaves.called);
    assert_false(cache_flight_leave(c, "k", 1, &stays.super));
    cache_destroy(&c);
}

static void test_peek_is_not_a_read(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 1);
    put(c, "k", 1, NULL, 0, 0);
    cache_entry *e;
    assert_int_equal(cache_peek(c, "k", 1, 0, &e), CACHE_FRESH);
    assert_int_equal(value_of(e), 1);
    cache_entry_release(&e);
    assert_int_equal(cache_peek(c, "absent", 6, 0, &e), CACHE_MISS);
    assert_null(e);
    cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    assert_int_equal(st.hits + st.misses, 0);
    cache_destroy(&c);
}

static void test_stats_are_kept_per_namespace(void **state)
{
    (void)state;
    cache *c = new_cache(1 << 20, 4);
    cache_value v = make_value(1, NULL, 0);
    cache_insert(c, 1, "a", 1, &v, cache_epoch(c), 0);
    cache_entry *e;
    cache_get(c, 1, "a", 1, 0, &e);
    cache_entry_release(&e);
    cache_get(c, 2, "b", 1, 0, &e);
    cache_stats one, two, all;
    cache_get_stats(c, 1, &one);
    cache_get_stats(c, 2, &two);
    cache_get_stats(c, UINT32_MAX, &all);
    assert_int_equal(one.hits, 1);
    assert_int_equal(one.misses, 0);
    assert_int_equal(one.entries, 1);
    assert_int_equal(two.misses, 1);
    assert_int_equal(two.entries, 0);
    assert_int_equal(all.hits + all.misses, 2);
    cache_destroy(&c);
}

/* ---- admission ------------------------------------------------------------------ */

static bool holds(cache *c, const char *key)
{
    cache_entry *e;
    cache_state state = cache_get(c, 0, key, strlen(key), 0, &e);
    cache_entry_release(&e);
    return state == CACHE_FRESH;
}

/* The pollution of issue 11: a warm set read now and then, and 60,000 keys
 * of varied sizes each filled once, through a 1 MiB cache of 64 shards
 * (16 KiB, about a dozen entries, each). The warm set is read every 2,000
 * junk inserts — about 30 per shard, more than a shard holds — so it
 * survives only if one-hit keys cannot evict it (under LRU or FIFO they
 * would). */
static void test_warm_set_survives_a_flood_of_one_hit_keys(void **state)
{
    (void)state;
    enum { WARM = 200, JUNK = 60000, READ_EVERY = 2000 };
    cache *c = new_cache(1 << 20, 64);
    char key[32];
    for (int i = 0; i < WARM; i++) {
        snprintf(key, sizeof(key), "warm-%d", i);
        cache_value v = make_value(i, NULL, 0);
        v.charge = 1000;
        assert_true(cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0));
    }
    for (int j = 0; j < JUNK; j++) {
        if (j % READ_EVERY == 0) {
            for (int i = 0; i < WARM; i++) {
                snprintf(key, sizeof(key), "warm-%d", i);
                assert_true(holds(c, key));
            }
        }
        snprintf(key, sizeof(key), "junk-%d", j);
        cache_value v = make_value(j, NULL, 0);
        v.charge = 200 + (size_t)(j * 7919 % 1800); /* responses differ in size */
        cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0);
    }
    int kept = 0;
    for (int i = 0; i < WARM; i++) {
        snprintf(key, sizeof(key), "warm-%d", i);
        kept += holds(c, key);
    }
    assert_int_equal(kept, WARM);
    cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    assert_true(st.bytes <= 1 << 20);
    assert_true(st.evictions >= JUNK - 1000); /* the junk went through, and out */
    cache_destroy(&c);
}

/* A key that left small unread and is filled again soon after is let into
 * main: a second request is the sign of a key worth keeping. */
static void test_a_key_filled_again_after_leaving_goes_to_main(void **state)
{
    (void)state;
    cache *c = new_cache(16 * 1024, 1);
    char key[32];
    cache_entry *e;
    put(c, "again", 1, NULL, 0, 0);
    int streamed = 0;
    while (cache_peek(c, "again", 5, 0, &e) != CACHE_MISS) { /* one-off keys until it is gone */
        cache_entry_release(&e);
        snprintf(key, sizeof(key), "junk-a-%d", streamed++);
        put(c, key, 0, NULL, 0, 0);
        assert_true(streamed < 1000);
    }
    put(c, "again", 2, NULL, 0, 0);
    for (int i = 0; i < 1000; i++) { /* not read again, yet it stays: junk does not reach main */
        snprintf(key, sizeof(key), "junk-b-%d", i);
        put(c, key, i, NULL, 0, 0);
    }
    assert_int_equal(cache_peek(c, "again", 5, 0, &e), CACHE_FRESH);
    assert_int_equal(value_of(e), 2);
    cache_entry_release(&e);
    cache_destroy(&c);
}

/* One-off entries larger than small's whole share (a tenth of a 16 KiB
 * shard) but that would fit beside main, arriving when small is empty, are kept out rather than stored
 * at main's expense — else each would cost main its CLOCK victim, and a
 * warm set not read during the flood would go. Filled again, such a key
 * is let into main (its ghost). */
static void test_a_large_one_off_never_evicts_main(void **state)
{
    (void)state;
    cache *c = new_cache(16 * 1024, 1);
    char key[32];
    cache_entry *e;
    cache_stats st = {0};
    int warm = 0;
    while (st.bytes < 12 * 1024) { /* the warm set, 12 KiB: under main's share (nine tenths), read once */
        snprintf(key, sizeof(key), "warm-%d", warm++);
        cache_value v = make_value(warm, NULL, 0);
        v.charge = 100;
        assert_true(cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0));
        assert_true(holds(c, key));
        cache_get_stats(c, UINT32_MAX, &st);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "small-%d", i);
        cache_value v = make_value(i, NULL, 0);
        v.charge = 100;
        cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0);
    }
    for (int i = 0; i < 500; i++) { /* larger than small's share, each filled once, none read */
        snprintf(key, sizeof(key), "large-%d", i);
        cache_value v = make_value(i, NULL, 0);
        v.charge = 5000;
        cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0);
    }
    int kept = 0;
    for (int i = 0; i < warm; i++) {
        snprintf(key, sizeof(key), "warm-%d", i);
        kept += holds(c, key);
    }
    assert_int_equal(kept, warm);
    cache_value v = make_value(7, NULL, 0); /* filled again: in, through its ghost */
    v.charge = 5000;
    assert_true(cache_insert(c, 0, "large-499", 9, &v, cache_epoch(c), 0));
    assert_int_equal(cache_peek(c, "large-499", 9, 0, &e), CACHE_FRESH);
    cache_entry_release(&e);
    cache_destroy(&c);
}

/* Negative entries are kept under their own budget: a flood of them leaves
 * the positive entries alone and stays within it. */
static void test_negative_entries_have_their_own_budget(void **state)
{
    (void)state;
    cache_options o = {.max_bytes = 64 * 1024, .negative_max_bytes = 8 * 1024, .shard_count = 1, .seed = 7};
    cache *c = cache_create(&o);
    assert_non_null(c);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "real-%d", i);
        put(c, key, i, NULL, 0, 0);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "missing-%d", i);
        cache_value v = make_value(i, NULL, 0);
        v.negative = true;
        cache_insert(c, 0, key, strlen(key), &v, cache_epoch(c), 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "real-%d", i);
        assert_true(holds(c, key));
    }
    assert_true(holds(c, "missing-4999")); /* the newest negative one is there */
    assert_false(holds(c, "missing-0"));
    cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    assert_true(st.negative_bytes <= 8 * 1024);
    assert_true(st.negative_entries > 10);
    assert_int_equal(st.entries - st.negative_entries, 100);
    cache_destroy(&c);
}

/* ---- threads ------------------------------------------------------------------ */

typedef struct flight_race {
    cache *c;
    _Atomic int leaders;
    _Atomic int answered;
    pthread_barrier_t start;
} flight_race;

typedef struct thread_waiter {
    cache_waiter super;
    _Atomic int done;
    long value;
} thread_waiter;

static void on_thread_done(cache_waiter *w, cache_entry *e)
{
    thread_waiter *t = (thread_waiter *)w;
    t->value = e != NULL ? value_of(e) : -1;
    cache_entry_release(&e);
    atomic_store(&t->done, 1);
}

static void *miss_same_key(void *arg)
{
    flight_race *r = arg;
    thread_waiter w = {.super.done = on_thread_done};
    cache_entry *e, *filled;
    cache_flight *flight;
    pthread_barrier_wait(&r->start);
    if (cache_get(r->c, 0, "hot", 3, 0, &e) != CACHE_MISS) {
        cache_entry_release(&e);
        atomic_fetch_add(&r->answered, 1);
        return NULL;
    }
    switch (cache_flight_join(r->c, 0, "hot", 3, 0, &w.super, &flight, &filled)) {
    case CACHE_LEADER: {
        atomic_fetch_add(&r->leaders, 1);
        struct timespec pause = {0, 20 * 1000 * 1000}; /* the "database" takes 20 ms */
        nanosleep(&pause, NULL);
        cache_value v = make_value(77, NULL, 0);
        cache_flight_finish(r->c, flight, &v, 0, NULL);
        break;
    }
    case CACHE_JOINED:
        while (!atomic_load(&w.done))
            sched_yield();
        assert_int_equal(w.value, 77);
        break;
    case CACHE_FILLED: cache_entry_release(&filled); break;
    }
    atomic_fetch_add(&r->answered, 1);
    return NULL;
}

static void test_concurrent_misses_make_one_fill(void **state)
{
    (void)state;
    enum { THREADS = 16 };
    flight_race r = {.c = new_cache(1 << 20, 4)};
    pthread_barrier_init(&r.start, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, miss_same_key, &r);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&r.leaders), 1);
    assert_int_equal(atomic_load(&r.answered), THREADS);
    pthread_barrier_destroy(&r.start);
    cache_destroy(&r.c);
}

/* Writers bump the "database" version, invalidate, then publish the version
 * readers must not see below. Readers fill through flights. */
typedef struct coherence {
    cache *c;
    _Atomic long database;
    _Atomic long must_see_at_least;
    _Atomic int stop;
    _Atomic long stale_reads;
    _Atomic long reads;
} coherence;

static const char *const coherence_tags[] = {"main:item:1"};

static void *coherent_reader(void *arg)
{
    coherence *s = arg;
    while (!atomic_load(&s->stop)) {
        long floor = atomic_load(&s->must_see_at_least);
        cache_entry *e, *filled;
        cache_flight *flight;
        if (cache_get(s->c, 0, "item", 4, 0, &e) == CACHE_FRESH) {
            if (value_of(e) < floor)
                atomic_fetch_add(&s->stale_reads, 1);
            cache_entry_release(&e);
        } else {
            cache_entry_release(&e);
            if (cache_flight_join(s->c, 0, "item", 4, 0, NULL, &flight, &filled) == CACHE_LEADER) {
                long read = atomic_load(&s->database);
                /* the query's duration: writes land while it runs */
                struct timespec query = {0, 2000};
                nanosleep(&query, NULL);
                cache_value v = make_value(read, coherence_tags, 1);
                cache_flight_finish(s->c, flight, &v, 0, NULL);
            }
            cache_entry_release(&filled);
        }
        atomic_fetch_add(&s->reads, 1);
    }
    return NULL;
}

static void test_no_stale_read_after_invalidation_under_threads(void **state)
{
    (void)state;
    coherence s = {.c = new_cache(1 << 20, 4)};
    pthread_t readers[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&readers[i], NULL, coherent_reader, &s);
    /* At least 20,000 writes, and on until the readers have read enough to
     * mean something (the scheduler may starve them on a busy 2-core
     * machine): bounded by 10 s. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long version = 1;; version++) {
        if (version > 20000 && (version % 1024) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (atomic_load(&s.reads) > 1000 || now.tv_sec - start.tv_sec >= 10)
                break;
        }
        atomic_store(&s.database, version);
        cache_invalidate_tag(s.c, "main:item:1");
        atomic_store(&s.must_see_at_least, version);
        if (version % 16 == 0)
            sched_yield(); /* let fills complete between some writes */
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(readers[i], NULL);
    assert_int_equal(atomic_load(&s.stale_reads), 0);
    assert_true(atomic_load(&s.reads) > 1000);
    cache_destroy(&s.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_is_a_reference_that_outlives_removal),
        cmocka_unit_test(test_bytes_stay_within_the_bound),
        cmocka_unit_test(test_read_entries_outlive_one_off_keys),
        cmocka_unit_test(test_lifetimes_fresh_stale_expired_gone),
        cmocka_unit_test(test_jitter_shortens_within_bounds),
        cmocka_unit_test(test_tag_invalidation_removes_tagged_only_and_frees),
        cmocka_unit_test(test_fill_racing_an_invalidation_is_not_installed),
        cmocka_unit_test(test_key_invalidation_fences_its_flight),
        cmocka_unit_test(test_write_through_wins_over_an_older_fill),
        cmocka_unit_test(test_join_returns_an_entry_filled_since_the_miss),
        cmocka_unit_test(test_a_flight_older_than_an_invalidation_is_not_joined),
        cmocka_unit_test(test_a_waiter_that_left_is_not_called),
        cmocka_unit_test(test_peek_is_not_a_read),
        cmocka_unit_test(test_stats_are_kept_per_namespace),
        cmocka_unit_test(test_warm_set_survives_a_flood_of_one_hit_keys),
        cmocka_unit_test(test_a_key_filled_again_after_leaving_goes_to_main),
        cmocka_unit_test(test_a_large_one_off_never_evicts_main),
        cmocka_unit_test(test_negative_entries_have_their_own_budget),
        cmocka_unit_test(test_concurrent_misses_make_one_fill),
        cmocka_unit_test(test_no_stale_read_after_invalidation_under_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

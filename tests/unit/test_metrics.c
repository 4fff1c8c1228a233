/*
 * test_metrics.c — the latency histogram (src/metrics/hist.c) against sorted
 * samples, its merge and window difference, its edges and overflow; and the
 * metrics core's per-thread recording merged on read (src/metrics/metrics.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "metrics/hist.h"
#include "metrics/metrics.h"

/* A deterministic generator (xorshift64*), so a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sample of rank ceil(q·n), as hist_quantile defines it. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n);
    if ((double)rank < q * (double)n)
        rank++;
    return sorted[rank ? rank - 1 : 0];
}

static void assert_within_one_percent(uint64_t got, uint64_t want)
{
    double err = want ? ((double)got - (double)want) / (double)want : (double)got;
    if (err < 0)
        err = -err;
    if (err > 0.01)
        fail_msg("got %llu, want %llu (error %.3f %%)", (unsigned long long)got, (unsigned long long)want, err * 100);
}

static void check_accuracy(uint64_t (*draw)(void), size_t n)
{
    static hist h;
    hist_reset(&h);
    uint64_t *samples = malloc(n * sizeof(*samples));
    assert_non_null(samples);
    for (size_t i = 0; i < n; i++) {
        samples[i] = draw();
        hist_record(&h, samples[i]);
    }
    qsort(samples, n, sizeof(*samples), cmp_u64);
    static const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        assert_within_one_percent(hist_quantile(&h, qs[i]), exact_quantile(samples, n, qs[i]));
    assert_int_equal(h.total, n);
    assert_int_equal(h.max, samples[n - 1]);
    free(samples);
}

static uint64_t draw_uniform_wide(void)
{
    return 1 + rng() % 100000000;
} /* 1 µs .. 100 s */
static uint64_t draw_log_uniform(void)
{
    return (uint64_t)1 << (rng() % 27) | (rng() & 1023);
}
static uint64_t draw_latency_like(void) /* most around 30 µs, a tail to tens of ms */
{
    uint64_t r = rng() % 1000;
    return r < 900 ? 20 + rng() % 30 : r < 990 ? 100 + rng() % 5000 : 10000 + rng() % 90000;
}

static void test_quantiles_within_one_percent(void **state)
{
    (void)state;
    check_accuracy(draw_uniform_wide, 200000);
    check_accuracy(draw_log_uniform, 200000);
    check_accuracy(draw_latency_like, 200000);
}

static void test_every_bucket_edge(void **state)
{
    (void)state;
    /* indexes are contiguous, and a bucket's values all map back to it */
    for (size_t i = 0; i < HIST_OVERFLOW; i++) {
        uint64_t low = hist_bucket_low(i), high = hist_bucket_high(i);
        assert_int_equal(hist_index(low), i);
        assert_int_equal(hist_index(high), i);
        assert_int_equal(hist_index(high + 1), i + 1);
        assert_true((double)(high - low + 1) <= (double)low / 128.0 + 1.0); /* width ≤ 1/128 of the value */
    }
    assert_int_equal(hist_index(0), 0);
    assert_int_equal(hist_index(255), 255);
    assert_int_equal(hist_index(256), 256);
    assert_int_equal(hist_index(HIST_LIMIT - 1), HIST_OVERFLOW - 1);
    assert_int_equal(hist_index(HIST_LIMIT), HIST_OVERFLOW);
    assert_int_equal(hist_index(UINT64_MAX), HIST_OVERFLOW);
}

static void test_edges_and_overflow(void **state)
{
    (void)state;
    static hist h;
    hist_reset(&h);
    assert_int_equal(hist_quantile(&h, 0.5), 0); /* empty */
    hist_record(&h, 0);
    assert_int_equal(hist_quantile(&h, 0.5), 0);
    hist_record(&h, 1);
    assert_int_equal(hist_quantile(&h, 1.0), 1); /* small values are exact */
    /* past 2^27 µs: the overflow bucket, reported as the largest seen */
    hist_record(&h, 500000000);
    hist_record(&h, UINT64_MAX / 4);
    assert_int_equal(h.counts[HIST_OVERFLOW], 2);
    assert_int_equal(hist_quantile(&h, 1.0), UINT64_MAX / 4);
    assert_int_equal(hist_count_le(&h, 10000000), 2); /* the overflowed are above every bound */
    /* nonsense quantiles are clamped */
    assert_int_equal(hist_quantile(&h, -1), 0);
    assert_int_equal(hist_quantile(&h, 7), UINT64_MAX / 4);
}

static void test_count_le(void **state)
{
    (void)state;
    static hist h;
    hist_reset(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v);
    assert_int_equal(hist_count_le(&h, 100), 100); /* exact below 256 */
    assert_int_equal(hist_count_le(&h, 999), 999); /* 999 ends a bucket ([996, 999]) */
    uint64_t n = hist_count_le(&h, 2500);          /* inside [2496, 2511]: that bucket counts above */
    assert_int_equal(n, 2495);
    assert_int_equal(hist_count_le(&h, 200000), 100000);
}

static void test_merge_and_diff(void **state)
{
    (void)state;
    static hist a, b, merged, whole, later, window;
    hist_reset(&a), hist_reset(&b), hist_reset(&merged), hist_reset(&whole);
    for (int i = 0; i < 10000; i++) {
        uint64_t v = draw_latency_like();
        hist_record(i % 2 ? &a : &b, v);
        hist_record(&whole, v);
    }
    hist_merge(&merged, &a);
    hist_merge(&merged, &b);
    assert_memory_equal(merged.counts, whole.counts, sizeof(whole.counts));
    assert_int_equal(merged.total, whole.total);
    assert_int_equal(merged.sum, whole.sum);
    assert_int_equal(merged.max, whole.max);

    later = whole;
    for (int i = 0; i < 100; i++)
        hist_record(&later, 5000);
    hist_diff(&window, &later, &whole);
    assert_int_equal(window.total, 100);
    assert_int_equal(window.sum, 500000);
    assert_within_one_percent(hist_quantile(&window, 0.5), 5000);
}

/* ---- the metrics core ----------------------------------------------------------------------- */

static void *record_requests(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        metrics_request(1, 0, i % 10 == 0 ? 500 : 200, 100);
    metrics_request(-1, 2, 404, 50); /* unmatched */
    metrics_request(0, 0, 0, 7);     /* the client left: counted, no latency */
    return NULL;
}

static void test_threads_merge_on_read(void **state)
{
    (void)state;
    strata_config cfg = {0};
    cfg.metrics_enabled = true;
    cfg.db_slow_query_ms = 50;
    const char *routes[] = {"/healthz", "/v1/:site/content/:id"};
    assert_int_equal(metrics_init(&cfg, routes, 2), 0);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, record_requests, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);

    size_t n = 0;
    metrics_route_sample *samples = metrics_routes_collect(&n);
    assert_int_equal(n, 3);
    assert_string_equal(samples[0].route, "/healthz");
    assert_int_equal(samples[0].by_class[0], 4);
    assert_int_equal(samples[0].latency.total, 0);
    assert_string_equal(samples[1].route, "/v1/:site/content/:id");
    assert_string_equal(samples[1].method, "GET");
    assert_int_equal(samples[1].requests, 4000);
    assert_int_equal(samples[1].by_class[5], 400);
    assert_int_equal(samples[1].by_class[2], 3600);
    assert_int_equal(samples[1].latency.total, 4000);
    assert_int_equal(hist_quantile(&samples[1].latency, 0.99), 100);
    assert_string_equal(samples[2].route, METRICS_UNMATCHED);
    assert_string_equal(samples[2].method, "POST");
    assert_int_equal(samples[2].by_class[4], 4);
    free(samples);

    /* statements by text, over threads; a stable short name */
    metrics_query("SELECT id FROM items WHERE id = :id", 2000);
    metrics_query("SELECT id FROM items WHERE id = :id", 4000);
    metrics_query("PRAGMA journal_mode = WAL", 1000);
    metrics_statement_sample *st = metrics_statements_collect(&n);
    assert_int_equal(n, 2);
    assert_int_equal(st[0].queries, 2);
    assert_int_equal(st[0].total_ns, 6000);
    assert_int_equal(st[0].max_ns, 4000);
    assert_true(strncmp(st[0].name, "select_items_", 13) == 0);
    assert_true(strncmp(st[1].name, "pragma_journal_mode_", 20) == 0);
    free(st);

    /* the slow ring keeps the newest METRICS_SLOW_RING, newest first */
    for (int i = 0; i < METRICS_SLOW_RING + 5; i++)
        metrics_slow_query(i == METRICS_SLOW_RING + 4 ? "SELECT 'last'" : "SELECT 1", 60000000, "SCAN items");
    json_t *ring = metrics_slow_queries_json();
    assert_int_equal(json_array_size(ring), METRICS_SLOW_RING);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ring, 0), "sql")), "SELECT 'last'");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ring, 0), "plan")), "SCAN items");
    json_decref(ring);
    assert_int_equal(metrics_slow_queries_total(), METRICS_SLOW_RING + 5);

    /* switched off: nothing more is recorded */
    cfg.metrics_enabled = false;
    metrics_init(&cfg, routes, 2);
    metrics_request(1, 0, 200, 1);
    samples = metrics_routes_collect(&n);
    assert_int_equal(samples[1].requests, 4000);
    free(samples);
}

/* A statement is named by its verb and the table of its own FROM / INTO /
 * UPDATE, not by a subquery's (every item read selects its tags by one). */
static void test_statement_names(void **state)
{
    (void)state;
    char name[48];
    metrics_statement_name("SELECT i.id, (SELECT string_agg(tg.tag, ',') FROM item_tags tg WHERE tg.item_id = i.id) "
                           "FROM items i WHERE i.id = :id",
                           name);
    assert_memory_equal(name, "select_items_", 13);
    metrics_statement_name("UPDATE jobs SET a = 1 WHERE id = (SELECT id FROM jobs LIMIT 1 FOR UPDATE SKIP LOCKED)",
                           name);
    assert_memory_equal(name, "update_jobs_", 12);
    metrics_statement_name("INSERT INTO meta(key, value) VALUES ('a ( FROM x', :v)", name);
    assert_memory_equal(name, "insert_meta_", 12);
    metrics_statement_name("BEGIN", name);
    assert_memory_equal(name, "begin_", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_within_one_percent),
        cmocka_unit_test(test_every_bucket_edge),
        cmocka_unit_test(test_edges_and_overflow),
        cmocka_unit_test(test_count_le),
        cmocka_unit_test(test_merge_and_diff),
        cmocka_unit_test(test_threads_merge_on_read),
        cmocka_unit_test(test_statement_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

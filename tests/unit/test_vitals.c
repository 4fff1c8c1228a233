/*
 * test_vitals.c — the Web Vitals store (src/vitals): the histogram's
 * accuracy and bounds, and the beacon handler's validation, dedupe,
 * per-page bounds and rate limit (the token buckets themselves:
 * test_limiter.c), called directly with hand-made requests (the system
 * tests send the same over HTTP).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vitals/vitals.h"
#include "vitals/vitals_internal.h"

/* ---- the histogram ---- */

static void test_buckets_are_exact_then_within_one_percent(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 128; v++)
        assert_true(vitals_hist_midpoint(vitals_hist_bucket(v)) == (double)v);
    unsigned last = 0;
    for (uint64_t v = 128; v < VITALS_HIST_VALUE_MAX; v = v * 1.01 + 1) {
        unsigned b = vitals_hist_bucket(v);
        assert_true(b >= last);
        assert_true(b < VITALS_HIST_BUCKETS);
        double mid = vitals_hist_midpoint(b);
        assert_true(mid >= v * (1 - 1.0 / 128) && mid <= v * (1 + 1.0 / 128));
        last = b;
    }
    assert_int_equal(vitals_hist_bucket(VITALS_HIST_VALUE_MAX), VITALS_HIST_BUCKETS - 1);
    assert_int_equal(vitals_hist_bucket(UINT64_MAX), VITALS_HIST_BUCKETS - 1);
}

static void test_quantiles_of_known_values(void **state)
{
    (void)state;
    vitals_hist h = {0};
    assert_true(vitals_hist_quantile(&h, 0.75) == 0);
    for (uint64_t ms = 1; ms <= 100; ms++) /* 1..100 ms, as µs, shuffled order */
        assert_int_equal(vitals_hist_add(&h, ((ms * 37) % 100 + 1) * 1000), 0);
    assert_int_equal(h.total, 100);
    double p75 = vitals_hist_quantile(&h, 0.75) / 1000;
    assert_true(p75 > 75 * 0.99 && p75 < 75 * 1.01);
    double p50 = vitals_hist_quantile(&h, 0.5) / 1000;
    assert_true(p50 > 50 * 0.99 && p50 < 50 * 1.01);
    double p95 = vitals_hist_quantile(&h, 0.95) / 1000;
    assert_true(p95 > 95 * 0.99 && p95 < 95 * 1.01);
    assert_int_equal(vitals_hist_count_le(&h, 10.5 * 1000), 10);
    /* sparse: 100 distinct values, at most 100 pairs */
    assert_true(h.used <= 100);
    vitals_hist_free(&h);
    assert_int_equal(h.total, 0);
}

static void test_histogram_memory_is_bounded(void **state)
{
    (void)state;
    vitals_hist h = {0};
    for (uint64_t v = 0; v < VITALS_HIST_VALUE_MAX; v += 997)
        assert_int_equal(vitals_hist_add(&h, v), 0);
    assert_true(h.used <= VITALS_HIST_BUCKETS);
    assert_true(vitals_hist_bytes(&h) <= VITALS_HIST_BUCKETS * (sizeof(uint16_t) + sizeof(uint32_t)));
    vitals_hist_free(&h);
}

/* ---- the beacon handler ---- */

/* Sends body to the handler as from peer (behind a proxy if forwarded_for). */
static int beacon_via(const char *body, const char *content_type, const char *peer, const char *forwarded_for)
{
    http_request req = {0};
    req.method = HTTP_POST;
    req.path = "/api/performance/metrics";
    req.body = (char *)body;
    req.body_len = strlen(body);
    req.content_type = (char *)content_type;
    req.forwarded_for = (char *)forwarded_for;
    snprintf(req.peer, sizeof(req.peer), "%s", peer);
    http_response res = {0};
    assert_true(vitals_beacon(&req, &res));
    int status = res.status;
    http_response_free(&res);
    return status;
}

static int beacon(const char *body, const char *content_type, const char *peer)
{
    return beacon_via(body, content_type, peer, NULL);
}

static int forwarded(const char *forwarded_for, const char *body)
{
    return beacon_via(body, "application/json", "127.0.0.1", forwarded_for);
}

static int reset(void **state)
{
    (void)state;
    vitals_reset();
    return 0;
}

static void test_beacon_validation(void **state)
{
    (void)state;
    const char *json = "application/json";
    assert_int_equal(beacon("{\"name\":\"LCP\",\"value\":1200,\"id\":\"v1\",\"page\":\"/a?x=1\"}", json, "10.1.0.1"),
                     204);
    assert_int_equal(beacon("{\"name\":\"LCP\",\"value\":1200,\"id\":\"v2\",\"page\":\"/a\"}",
                            "text/plain;charset=UTF-8", "10.1.0.1"),
                     204);
    assert_int_equal(beacon("{\"name\":\"LCP\",\"value\":1,\"id\":\"v3\",\"page\":\"/a\"}", "text/html", "10.1.0.1"),
                     415);
    assert_int_equal(beacon("{\"name\":\"LCP\",", json, "10.1.0.1"), 400);
    assert_int_equal(beacon("{\"name\":\"FID\",\"value\":1,\"id\":\"v4\",\"page\":\"/a\"}", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("{\"name\":\"LCP\",\"value\":60001,\"id\":\"v5\",\"page\":\"/a\"}", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("{\"name\":\"CLS\",\"value\":-0.1,\"id\":\"v6\",\"page\":\"/a\"}", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("{\"name\":\"CLS\",\"value\":\"1\",\"id\":\"v7\",\"page\":\"/a\"}", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("{\"name\":\"CLS\",\"value\":0.1,\"id\":\"\",\"page\":\"/a\"}", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("{\"name\":\"CLS\",\"value\":0.1,\"id\":\"v8\",\"page\":\"a\"}", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("{\"name\":\"CLS\",\"value\":0.1,\"id\":\"v9\",\"page\":\"/a\",\"request_id\":\"a b\"}",
                            json, "10.1.0.1"),
                     422);
    assert_int_equal(beacon("[]", json, "10.1.0.1"), 422);
    assert_int_equal(beacon("7", json, "10.1.0.1"), 400); /* not an object or array */
    /* a batch with one bad metric records nothing */
    assert_int_equal(beacon("[{\"name\":\"TTFB\",\"value\":5,\"id\":\"b1\",\"page\":\"/b\"},"
                            "{\"name\":\"TTFB\",\"value\":-5,\"id\":\"b2\",\"page\":\"/b\"}]",
                            json, "10.1.0.1"),
                     422);
    vitals_stats s;
    vitals_stats_get(VITALS_TTFB, &s);
    assert_int_equal(s.count, 0);
    vitals_stats_get(VITALS_LCP, &s);
    assert_int_equal(s.count, 2);
    assert_true(s.p75 > 1200 * 0.99 && s.p75 < 1200 * 1.01);
    char big[VITALS_BODY_MAX + 2];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(beacon(big, json, "10.1.0.1"), 413);
}

static void test_repeated_ids_record_nothing(void **state)
{
    (void)state;
    const char *b = "[{\"name\":\"INP\",\"value\":100,\"id\":\"same\",\"page\":\"/p\"},"
                    "{\"name\":\"INP\",\"value\":900,\"id\":\"same\",\"page\":\"/p\"}]";
    assert_int_equal(beacon(b, "application/json", "10.2.0.1"), 204);
    assert_int_equal(beacon(b, "application/json", "10.2.0.1"), 204);
    vitals_stats s;
    vitals_stats_get(VITALS_INP, &s);
    assert_int_equal(s.count, 1);
    vitals_counters c;
    vitals_counters_get(&c);
    assert_int_equal(c.accepted, 1);
    assert_int_equal(c.duplicates, 3);
}

static void test_pages_are_bounded_and_separate(void **state)
{
    (void)state;
    char body[256];
    for (int i = 0; i < VITALS_PAGES_MAX + 50; i++) {
        snprintf(body, sizeof(body), "{\"name\":\"FCP\",\"value\":%d,\"id\":\"p%d\",\"page\":\"/page/%d\"}",
                 i % 2 ? 100 : 3000, i, i);
        /* a new client every 50 pages keeps the rate limit out of this test */
        char peer[32];
        snprintf(peer, sizeof(peer), "10.3.%d.1", i / 50);
        assert_int_equal(beacon(body, "application/json", peer), 204);
    }
    vitals_counters c;
    vitals_counters_get(&c);
    assert_int_equal(c.pages, VITALS_PAGES_MAX);
    assert_int_equal(c.pages_evicted, 50);
    assert_null(vitals_page_json("/page/0")); /* the least recent went first */
    json_t *p = vitals_page_json("https://example.com/page/549?q=1");
    assert_non_null(p);
    double fcp = json_real_value(json_object_get(json_object_get(json_object_get(p, "metrics"), "FCP"), "p75"));
    assert_true(fcp > 99 && fcp < 101);
    json_decref(p);
    p = vitals_page_json("/page/548");
    fcp = json_real_value(json_object_get(json_object_get(json_object_get(p, "metrics"), "FCP"), "p75"));
    assert_true(fcp > 2970 && fcp < 3030);
    json_decref(p);
    json_t *sum = vitals_summary_json();
    assert_non_null(sum);
    assert_int_equal(json_integer_value(json_object_get(sum, "pages_tracked")), VITALS_PAGES_MAX);
    assert_true(json_array_size(json_object_get(sum, "pages")) <= 20);
    json_decref(sum);
}

static void test_rate_limit_answers_429(void **state)
{
    (void)state;
    char body[128];
    int last = 0, accepted = 0;
    for (int i = 0; i < 100 && last != 429; i++) {
        snprintf(body, sizeof(body), "{\"name\":\"CLS\",\"value\":0.01,\"id\":\"r%d\",\"page\":\"/r\"}", i);
        last = beacon(body, "application/json", "10.4.0.1");
        accepted += last == 204;
    }
    assert_int_equal(last, 429);
    assert_true(accepted >= 60 && accepted < 70);
    /* behind a local proxy, the last forwarded address (the one the proxy
     * saw) is the client; what the client wrote before it is not trusted */
    assert_int_equal(forwarded("10.4.0.1, 203.0.113.9", body), 204);
    assert_int_equal(forwarded("203.0.113.7, 10.4.0.1", body), 429);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_are_exact_then_within_one_percent),
        cmocka_unit_test(test_quantiles_of_known_values),
        cmocka_unit_test(test_histogram_memory_is_bounded),
        cmocka_unit_test_setup(test_beacon_validation, reset),
        cmocka_unit_test_setup(test_repeated_ids_record_nothing, reset),
        cmocka_unit_test_setup(test_pages_are_bounded_and_separate, reset),
        cmocka_unit_test_setup(test_rate_limit_answers_429, reset),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    vitals_reset();
    return failed;
}

/*
 * test_limiter.c — token buckets (src/core/limiter.c) and the client's
 * address behind trusted proxies (src/http/ratelimit.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/limiter.h"
#include "http/ratelimit.h"

static const limiter_rate shape = {30, 60};

static bool take(limiter *lim, const char *key, uint64_t t, limiter_verdict *v)
{
    return limiter_take(lim, key, strlen(key), &shape, 1, t, v);
}

static void test_token_bucket_limits_and_refills(void **state)
{
    (void)state;
    limiter *lim = limiter_new(4096, true);
    assert_non_null(lim);
    uint64_t t = 1000000000;
    limiter_verdict v;
    for (int i = 0; i < 60; i++)
        assert_true(take(lim, "10.0.0.1", t, &v));
    assert_int_equal(v.remaining, 0);
    assert_false(take(lim, "10.0.0.1", t, &v));
    assert_int_equal(v.retry_after_s, 1);
    /* another client is not affected */
    assert_true(take(lim, "10.0.0.2", t, &v));
    assert_int_equal(v.remaining, 59);
    /* 100 ms later: 3 tokens */
    t += 100000000;
    for (int i = 0; i < 3; i++)
        assert_true(take(lim, "10.0.0.1", t, &v));
    assert_false(take(lim, "10.0.0.1", t, &v));
    limiter_free(&lim);
    assert_null(lim);
}

static void test_retry_after_covers_the_cost(void **state)
{
    (void)state;
    limiter *lim = limiter_new(16, false);
    const limiter_rate slow = {1, 5};
    limiter_verdict v;
    uint64_t t = 1000000000;
    assert_true(limiter_take(lim, "k", 1, &slow, 5, t, &v));
    assert_false(limiter_take(lim, "k", 1, &slow, 3, t, &v));
    assert_int_equal(v.retry_after_s, 3);
    limiter_free(&lim);
}

static void test_limiter_table_is_fixed_and_keeps_busy_clients(void **state)
{
    (void)state;
    limiter *lim = limiter_new(4096, false);
    uint64_t t = 1000000000;
    limiter_verdict v;
    for (int i = 0; i < 60; i++)
        assert_true(take(lim, "busy", t, &v));
    /* a flood of clients, each once, while the busy one keeps trying: the
     * least recently seen are forgotten, never the busy one */
    char key[32];
    for (int i = 0; i < 8 * 4096; i++) {
        snprintf(key, sizeof(key), "client-%d", i);
        assert_true(take(lim, key, ++t, &v));
        if (i % 64 == 0)
            assert_false(take(lim, "busy", ++t, &v));
    }
    limiter_free(&lim);
}

/* The per-client check runs on every API request, cache hits included:
 * a take on a loop's (unlocked) table must cost far less than a hit. The
 * bound is loose (ASan build, a shared machine); the figure is printed. */
static void test_a_take_is_cheap(void **state)
{
    (void)state;
    limiter *lim = limiter_new(16384, false);
    const limiter_rate big = {1e9, 1e9};
    limiter_verdict v;
    enum { N = 1000000 };
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (uint32_t i = 0; i < N; i++) {
        uint8_t key[5] = {2, 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        limiter_take(lim, key, sizeof(key), &big, 1, 1000000000 + i, &v);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
    printf("limiter_take, unlocked, 65536 clients over 16384 slots: %.0f ns CPU per take\n", ns);
    assert_true(ns < 2000);
    limiter_free(&lim);
}

/* ---- the client behind proxies ---- */

static void assert_same_client(const char *peer_a, const char *xff_a, const char *peer_b, const char *xff_b)
{
    ratelimit_client a, b;
    ratelimit_client_of(peer_a, xff_a, &a);
    ratelimit_client_of(peer_b, xff_b, &b);
    assert_int_equal(a.key_len, b.key_len);
    assert_memory_equal(a.key, b.key, a.key_len);
}

static void assert_other_client(const char *peer_a, const char *xff_a, const char *peer_b, const char *xff_b)
{
    ratelimit_client a, b;
    ratelimit_client_of(peer_a, xff_a, &a);
    ratelimit_client_of(peer_b, xff_b, &b);
    assert_true(a.key_len != b.key_len || memcmp(a.key, b.key, a.key_len) != 0);
}

static void test_forwarded_for_is_believed_only_from_trusted_proxies(void **state)
{
    (void)state;
    strata_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.trusted_proxies, sizeof(cfg.trusted_proxies), "127.0.0.0/8, ::1, 10.0.0.0/8");
    char err[CONFIG_ERR_MAX];
    assert_int_equal(ratelimit_configure(&cfg, err), 0);
    /* an untrusted peer is the client, whatever it writes */
    assert_same_client("198.51.100.1", "203.0.113.5", "198.51.100.1", NULL);
    /* a trusted peer: the nearest untrusted hop; what the client wrote
     * to its left is ignored */
    assert_same_client("127.0.0.1", "203.0.113.5", "203.0.113.5", NULL);
    assert_same_client("127.0.0.1", "1.2.3.4, 203.0.113.5", "127.0.0.1", "203.0.113.5");
    assert_same_client("127.0.0.1", "6.6.6.6, 203.0.113.5, 10.1.2.3", "127.0.0.1", "203.0.113.5");
    assert_other_client("127.0.0.1", "6.6.6.6, 203.0.113.5", "127.0.0.1", "6.6.6.6");
    /* IPv6 by /64; IPv4-mapped IPv6 is IPv4 */
    assert_same_client("2001:db8::1", NULL, "2001:db8::ffff:1", NULL);
    assert_other_client("2001:db8::1", NULL, "2001:db8:0:1::1", NULL);
    assert_same_client("::ffff:198.51.100.1", NULL, "198.51.100.1", NULL);
    /* a trusted proxy that names nobody: its own request */
    ratelimit_client c;
    ratelimit_client_of("127.0.0.1", NULL, &c);
    assert_true(c.proxy_own);
    ratelimit_client_of("127.0.0.1", "not an address", &c);
    assert_true(c.proxy_own);
    ratelimit_client_of("127.0.0.1", "203.0.113.5", &c);
    assert_false(c.proxy_own);
    ratelimit_client_of("198.51.100.1", NULL, &c);
    assert_false(c.proxy_own);
    /* bad settings are refused, naming the entry */
    snprintf(cfg.trusted_proxies, sizeof(cfg.trusted_proxies), "127.0.0.1/33");
    assert_int_equal(ratelimit_configure(&cfg, err), -1);
    assert_non_null(strstr(err, "127.0.0.1/33"));
    snprintf(cfg.trusted_proxies, sizeof(cfg.trusted_proxies), "10.0.0.0/8,localhost");
    assert_int_equal(ratelimit_configure(&cfg, err), -1);
    assert_non_null(strstr(err, "localhost"));
    /* an empty list trusts nobody */
    snprintf(cfg.trusted_proxies, sizeof(cfg.trusted_proxies), "%s", "");
    assert_int_equal(ratelimit_configure(&cfg, err), 0);
    assert_same_client("127.0.0.1", "203.0.113.5", "127.0.0.1", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_bucket_limits_and_refills),
        cmocka_unit_test(test_retry_after_covers_the_cost),
        cmocka_unit_test(test_limiter_table_is_fixed_and_keeps_busy_clients),
        cmocka_unit_test(test_a_take_is_cheap),
        cmocka_unit_test(test_forwarded_for_is_believed_only_from_trusted_proxies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_client_table.c — connections per client (src/http/client_table.c):
 * what a client is (IPv4 address, IPv6 /64, v4-mapped), counting up and
 * down, and removal under heavy collisions: a small table filled to its
 * limit, emptied in another order, checked against a plain array after
 * every step (the backward shift must keep every key reachable).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "http/client_table.h"

static client_key key_v4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, text, &sa.sin_addr);
    client_key k;
    assert_int_equal(client_key_of((struct sockaddr *)&sa, &k), 0);
    return k;
}

static client_key key_v6(const char *text)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, text, &sa.sin6_addr);
    client_key k;
    assert_int_equal(client_key_of((struct sockaddr *)&sa, &k), 0);
    return k;
}

static client_key key_n(uint32_t n)
{
    client_key k = {{0}};
    memcpy(k.addr + 12, &n, sizeof n);
    return k;
}

static void test_an_ipv6_client_is_its_slash_64(void **state)
{
    (void)state;
    client_key a = key_v6("2001:db8:1:2::1"), b = key_v6("2001:db8:1:2:ffff::9"), c = key_v6("2001:db8:1:3::1");
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_not_equal(&a, &c, sizeof a);
}

static void test_a_v4_mapped_address_is_the_ipv4_client(void **state)
{
    (void)state;
    client_key mapped = key_v6("::ffff:192.0.2.7"), plain = key_v4("192.0.2.7"), other = key_v4("192.0.2.8");
    assert_memory_equal(&mapped, &plain, sizeof mapped);
    assert_memory_not_equal(&plain, &other, sizeof plain);
}

static void test_other_families_have_no_key(void **state)
{
    (void)state;
    struct sockaddr sa = {.sa_family = AF_UNIX};
    client_key k;
    assert_int_equal(client_key_of(&sa, &k), -1);
}

static void test_counts_go_up_and_down(void **state)
{
    (void)state;
    client_table *t = client_table_new(8, 42);
    client_key a = key_v4("10.0.0.1"), b = key_v4("10.0.0.2");
    assert_int_equal(client_table_count(t, &a), 0);
    client_table_add(t, &a);
    client_table_add(t, &a);
    client_table_add(t, &b);
    assert_int_equal(client_table_count(t, &a), 2);
    assert_int_equal(client_table_count(t, &b), 1);
    client_table_remove(t, &a);
    assert_int_equal(client_table_count(t, &a), 1);
    client_table_remove(t, &b);
    client_table_remove(t, &b); /* not there any more: nothing */
    assert_int_equal(client_table_count(t, &b), 0);
    assert_int_equal(client_table_count(t, &a), 1);
    client_table_free(&t);
    assert_null(t);
}

#define MANY 4000

/* Every key's count in the table equals the model's. */
static void assert_matches(const client_table *t, const uint32_t *model, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        client_key k = key_n((uint32_t)i);
        assert_int_equal(client_table_count(t, &k), model[i]);
    }
}

static void test_removal_keeps_every_key_reachable_when_full(void **state)
{
    (void)state;
    static uint32_t model[MANY];
    memset(model, 0, sizeof model);
    /* 2,048 entries in 4,096 slots, each with 1..3 connections */
    const size_t n = 2048;
    client_table *t = client_table_new(n, 7);
    for (size_t round = 0; round < 3; round++)
        for (size_t i = 0; i < n; i++)
            if ((i * 2654435761u >> 7) % 3 >= round) {
                client_key k = key_n((uint32_t)i);
                client_table_add(t, &k);
                model[i]++;
            }
    assert_matches(t, model, MANY);
    /* empty it in a scrambled order, checking a neighbourhood at each step
     * and everything every 256 steps */
    for (size_t step = 0; step < n; step++) {
        size_t i = (step * 1237) % n;
        while (model[i] > 0) {
            client_key k = key_n((uint32_t)i);
            client_table_remove(t, &k);
            model[i]--;
            assert_int_equal(client_table_count(t, &k), model[i]);
        }
        if (step % 256 == 0)
            assert_matches(t, model, MANY);
    }
    assert_matches(t, model, MANY);
    /* and it fills again */
    for (size_t i = 0; i < n; i++) {
        client_key k = key_n((uint32_t)(i + MANY));
        client_table_add(t, &k);
        assert_int_equal(client_table_count(t, &k), 1);
    }
    client_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_ipv6_client_is_its_slash_64),
        cmocka_unit_test(test_a_v4_mapped_address_is_the_ipv4_client),
        cmocka_unit_test(test_other_families_have_no_key),
        cmocka_unit_test(test_counts_go_up_and_down),
        cmocka_unit_test(test_removal_keeps_every_key_reachable_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

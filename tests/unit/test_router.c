/*
 * test_router.c — route matching: captures, percent-decoding per segment,
 * 405 method sets, and paths that must not match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

static const http_route routes[] = {
    {HTTP_GET, "/healthz", NULL, NULL, false, NULL},
    {HTTP_GET, "/v1/:site/content/by-slug/:type/:slug", NULL, NULL, false, NULL},
    {HTTP_GET, "/v1/:site/content", NULL, NULL, false, NULL},
    {HTTP_POST, "/v1/:site/content", NULL, NULL, false, NULL},
    {HTTP_GET | HTTP_PUT, "/v1/:site/content/:id", NULL, NULL, false, NULL},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static void free_params(http_request *rq)
{
    for (size_t i = 0; i < rq->param_count; i++)
        free(rq->params[i]);
    memset(rq, 0, sizeof(*rq));
}

static int match(http_method m, const char *path, http_request *rq, unsigned *allowed)
{
    http_captures caps;
    int index = http_route_find(routes, N, m, path, strlen(path), &caps, allowed);
    if (index >= 0)
        assert_int_equal(http_request_set_params(rq, path, &caps), 0);
    return index;
}

static void test_captures_parameters(void **state)
{
    (void)state;
    http_request rq = {0};
    unsigned allowed;
    assert_int_equal(match(HTTP_GET, "/v1/main/content/42", &rq, &allowed), 4);
    assert_int_equal(rq.param_count, 2);
    assert_string_equal(rq.params[0], "main");
    assert_string_equal(rq.params[1], "42");
    free_params(&rq);
}

static void test_literal_segment_wins_over_capture(void **state)
{
    (void)state;
    http_request rq = {0};
    unsigned allowed;
    assert_int_equal(match(HTTP_GET, "/v1/main/content/by-slug/post/hello", &rq, &allowed), 1);
    assert_string_equal(rq.params[1], "post");
    assert_string_equal(rq.params[2], "hello");
    free_params(&rq);
}

static void test_encoded_slash_stays_in_its_segment(void **state)
{
    (void)state;
    http_request rq = {0};
    unsigned allowed;
    assert_int_equal(match(HTTP_GET, "/v1/main/content/by-slug/post/..%2F..%2Fetc", &rq, &allowed), 1);
    assert_string_equal(rq.params[2], "../../etc");
    free_params(&rq);
}

static void test_nul_escape_is_kept_with_its_length(void **state)
{
    (void)state;
    http_request rq = {0};
    unsigned allowed;
    assert_int_equal(match(HTTP_GET, "/v1/main/content/a%00b", &rq, &allowed), 4);
    assert_int_equal(rq.param_len[1], 3);
    assert_int_equal(strlen(rq.params[1]), 1);
    free_params(&rq);
}

static void test_wrong_method_reports_allowed(void **state)
{
    (void)state;
    http_request rq = {0};
    unsigned allowed;
    assert_int_equal(match(HTTP_DELETE, "/v1/main/content", &rq, &allowed), -1);
    assert_int_equal(allowed, HTTP_GET | HTTP_POST | HTTP_HEAD);
    assert_int_equal(rq.param_count, 0);
}

static void test_decode_refuses_a_short_buffer(void **state)
{
    (void)state;
    http_captures caps;
    unsigned allowed;
    const char *path = "/v1/main/content/12345";
    assert_int_equal(http_route_find(routes, N, HTTP_GET, path, strlen(path), &caps, &allowed), 4);
    char small[4], big[16];
    assert_int_equal(http_capture_decode(path, &caps, 1, small, sizeof(small)), -1);
    assert_int_equal(http_capture_decode(path, &caps, 1, big, sizeof(big)), 5);
    assert_string_equal(big, "12345");
}

static void test_query_values_are_read_one_way(void **state)
{
    (void)state;
    const char *q = "limitx=9&limit=5&sort=-title&tag=a+b%2Fc&limit=7&nul=a%00b&empty=";
    char out[8];
    assert_int_equal(http_query_value(q, strlen(q), "limit", out, sizeof(out)), 1);
    assert_string_equal(out, "5"); /* the first one, not limitx */
    assert_int_equal(http_query_value(q, strlen(q), "tag", out, sizeof(out)), 5);
    assert_string_equal(out, "a b/c");
    assert_int_equal(http_query_value(q, strlen(q), "sort", out, 4), -2); /* does not fit */
    assert_int_equal(http_query_value(q, strlen(q), "nul", out, sizeof(out)), -2);
    assert_int_equal(http_query_value(q, strlen(q), "empty", out, sizeof(out)), 0);
    assert_int_equal(http_query_value(q, strlen(q), "cursor", out, sizeof(out)), -1);
    assert_int_equal(http_query_value(q, 8, "limit", out, sizeof(out)), -1); /* only len bytes are read */
}

static void test_head_matches_get(void **state)
{
    (void)state;
    http_request rq = {0};
    unsigned allowed;
    assert_int_equal(match(HTTP_HEAD, "/healthz", &rq, &allowed), 0);
}

static void test_non_matching_paths(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "/", "", "/v1", "/v1//content", "/v1/main/content/", "/healthz/", "/v1/main/content/1/2/3/4/5", "/healthzz"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        http_request rq = {0};
        unsigned allowed;
        assert_int_equal(match(HTTP_GET, paths[i], &rq, &allowed), -1);
        assert_int_equal(allowed, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures_parameters),
        cmocka_unit_test(test_literal_segment_wins_over_capture),
        cmocka_unit_test(test_encoded_slash_stays_in_its_segment),
        cmocka_unit_test(test_nul_escape_is_kept_with_its_length),
        cmocka_unit_test(test_wrong_method_reports_allowed),
        cmocka_unit_test(test_decode_refuses_a_short_buffer),
        cmocka_unit_test(test_query_values_are_read_one_way),
        cmocka_unit_test(test_head_matches_get),
        cmocka_unit_test(test_non_matching_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

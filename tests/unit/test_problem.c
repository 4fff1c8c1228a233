/*
 * test_problem.c — RFC 9457 problems (http_problem in src/http/response.c)
 * stay problems whatever bytes their detail quotes: found by
 * tests/fuzz/fuzz_input.c, a JSON body whose syntax error jansson reports
 * with a character cut in half got a 500 with an empty body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "http/http.h"

static json_t *problem_of(const char *detail)
{
    http_request req = {.request_id = "rid"};
    http_response res = {0};
    http_problem(&res, &req, 400, "bad_json", "the body is not valid JSON: %s", detail);
    assert_int_equal(res.status, 400);
    assert_non_null(res.body);
    assert_string_equal(res.content_type, "application/problem+json");
    json_t *doc = json_loadb(res.body, res.body_len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), "rid");
    http_response_free(&res);
    return doc;
}

static void test_a_cut_character_becomes_a_question_mark(void **state)
{
    (void)state;
    /* jansson's own message for {"title":" \u00e<U+01D4>"} */
    json_t *doc = problem_of("invalid escape near '\" \\u00e\xc7'");
    assert_string_equal(json_string_value(json_object_get(doc, "detail")),
                        "the body is not valid JSON: invalid escape near '\" \\u00e?'");
    json_decref(doc);
}

static void test_invalid_sequences_are_replaced_valid_ones_kept(void **state)
{
    (void)state;
    /* overlong '/', a surrogate, above U+10FFFF, a lone continuation byte,
     * then é and 😀 which stay */
    json_t *doc = problem_of("\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\x80|\xc3\xa9|\xf0\x9f\x98\x80");
    assert_string_equal(json_string_value(json_object_get(doc, "detail")),
                        "the body is not valid JSON: ??|???|????|?|\xc3\xa9|\xf0\x9f\x98\x80");
    json_decref(doc);
}

/* The document is written by hand: every member, in jansson's compact
 * form, and whatever the path holds (quotes, backslashes, control bytes,
 * bytes of no character) escaped so the whole parses. */
static void test_the_document_is_jansson_compact_json_whatever_the_path(void **state)
{
    (void)state;
    char path[] = "/v1/\"a\\b\"/\x01\x7f\xff\xc3\xa9";
    http_request req = {.request_id = "rid-1", .path = path};
    http_response res = {0};
    http_problem(&res, &req, 503, "overloaded", "wait %d s", 1);
    const char *want = "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,"
                       "\"detail\":\"wait 1 s\",\"code\":\"overloaded\",\"instance\":"
                       "\"/v1/\\\"a\\\\b\\\"/\\u0001\\u007f\\u00ff\xc3\xa9\",\"request_id\":\"rid-1\"}";
    assert_string_equal(res.body, want);
    assert_int_equal(res.body_len, strlen(want));
    json_t *doc = json_loadb(res.body, res.body_len, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), 503);
    json_decref(doc);
    http_response_free(&res);

    http_problem(&res, NULL, 404, "no_route", "no route"); /* no request: no instance, no id */
    assert_string_equal(res.body, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
                                  "\"detail\":\"no route\",\"code\":\"no_route\"}");
    http_response_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_cut_character_becomes_a_question_mark),
        cmocka_unit_test(test_invalid_sequences_are_replaced_valid_ones_kept),
        cmocka_unit_test(test_the_document_is_jansson_compact_json_whatever_the_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

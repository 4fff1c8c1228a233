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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_cut_character_becomes_a_question_mark),
        cmocka_unit_test(test_invalid_sequences_are_replaced_valid_ones_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_protocol_guard.c — reading a request head as h2o does, and refusing
 * what h2o lets through: framing that could be read two ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/server_internal.h"

typedef struct head_case {
    const char *head;
    protocol_head expected;
    int status;           /* when refused */
    const char *code;     /* when refused */
    const char *mentions; /* in the detail, when refused */
} head_case;

static void check(const head_case *c)
{
    protocol_refusal r = {0};
    protocol_head got = protocol_guard_check_head(c->head, strlen(c->head), &r);
    if (got != c->expected)
        fail_msg("%s: got %d, expected %d (%s)", c->head, got, c->expected, r.detail);
    if (got != PROTOCOL_HEAD_REFUSED)
        return;
    assert_int_equal(r.status, c->status);
    assert_string_equal(r.code, c->code);
    if (strstr(r.detail, c->mentions) == NULL)
        fail_msg("%s: the detail '%s' does not name '%s'", c->head, r.detail, c->mentions);
}

static void check_all(const head_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check(&cases[i]);
}

static void test_good_heads_pass(void **state)
{
    (void)state;
    static const head_case cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", PROTOCOL_HEAD_OK, 0, NULL, NULL},
        {"GET / HTTP/1.0\n\n", PROTOCOL_HEAD_OK, 0, NULL, NULL},         /* bare LF, as h2o accepts */
        {"\r\nGET / HTTP/1.1\r\n\r\n", PROTOCOL_HEAD_OK, 0, NULL, NULL}, /* one empty line first */
        {"POST /a HTTP/1.1\r\nContent-Length: 12\r\n\r\n{...}", PROTOCOL_HEAD_OK, 0, NULL, NULL},
        {"POST /a HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n", PROTOCOL_HEAD_OK, 0, NULL, NULL},
        {"GET /caf\xc3\xa9 HTTP/1.1\r\nX-A: \xff\tb\r\n\r\n", PROTOCOL_HEAD_OK, 0, NULL, NULL}, /* 8-bit, HT */
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_unfinished_heads_wait(void **state)
{
    (void)state;
    static const head_case cases[] = {
        {"", PROTOCOL_HEAD_INCOMPLETE, 0, NULL, NULL},
        {"GET / HT", PROTOCOL_HEAD_INCOMPLETE, 0, NULL, NULL},
        {"GET / HTTP/1.1\r\nHost: x\r\n", PROTOCOL_HEAD_INCOMPLETE, 0, NULL, NULL},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r", PROTOCOL_HEAD_INCOMPLETE, 0, NULL, NULL},
        {"GET / HTTP/1.1\r\nX-Slow: aaa", PROTOCOL_HEAD_INCOMPLETE, 0, NULL, NULL},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_ambiguous_framing_is_refused(void **state)
{
    (void)state;
    static const head_case cases[] = {
        {"POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400,
         "ambiguous_framing", "2 Content-Length"},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400,
         "ambiguous_framing", "2 Content-Length"},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400,
         "ambiguous_framing", "both"},
        {"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nContent-Length: 5\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400,
         "ambiguous_framing", "both"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", PROTOCOL_HEAD_REFUSED,
         400, "ambiguous_framing", "2 Transfer-Encoding"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "ambiguous_framing",
         "HTTP/1.0"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "ambiguous_framing",
         "folding"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", PROTOCOL_HEAD_REFUSED, 501,
         "unsupported_transfer_encoding", "gzip, chunked"},
        {"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_content_length", "-5"},
        {"POST / HTTP/1.1\r\nContent-Length: 5 \r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_content_length", "5 "},
        {"POST / HTTP/1.1\r\nContent-Length: 12345678901234567890\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400,
         "bad_content_length", "19 digits"},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_malformed_heads_are_explained(void **state)
{
    (void)state;
    static const head_case cases[] = {
        {"HELLO\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_request_line", "'HELLO'"},
        {"GET  / HTTP/1.1\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_request_line", "METHOD SP TARGET"},
        {"GET / HTTP/2.0\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_request_line", "'HTTP/2.0'"},
        {"GET / HTTP/1.1 \r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_request_line", "HTTP/1.0 or HTTP/1.1"},
        {"GET /\x7f HTTP/1.1\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_request_line", "0x7f"},
        {"\x16\x03\x01\x02", PROTOCOL_HEAD_REFUSED, 400, "bad_request_line", "0x16"}, /* TLS, no line yet */
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_header", "no colon"},
        {"GET / HTTP/1.1\r\n: v\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_header", "empty header name"},
        {"GET / HTTP/1.1\r\nX(y): v\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_header", "0x28"},
        {"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", PROTOCOL_HEAD_REFUSED, 400, "bad_header", "0x0d"},
        {"GET / HTTP/1.1\r\nX-A: a\x00", PROTOCOL_HEAD_INCOMPLETE, 0, NULL, NULL}, /* strlen stops at NUL */
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_control_bytes_in_an_unfinished_line(void **state)
{
    (void)state;
    static const char head[] = "GET / HTTP/1.1\r\nX-A: a\x00"
                               "b";
    protocol_refusal r = {0};
    assert_int_equal(protocol_guard_check_head(head, sizeof(head) - 1, &r), PROTOCOL_HEAD_REFUSED);
    assert_string_equal(r.code, "bad_header");
    assert_non_null(strstr(r.detail, "0x00"));
}

static void test_over_100_header_lines(void **state)
{
    (void)state;
    char head[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100; i++)
        strcat(head, "X: v\r\n");
    protocol_refusal r = {0};
    assert_int_equal(protocol_guard_check_head(head, strlen(head), &r), PROTOCOL_HEAD_INCOMPLETE);
    strcat(head, "\r\n");
    assert_int_equal(protocol_guard_check_head(head, strlen(head), &r), PROTOCOL_HEAD_OK);
    strcpy(head + strlen(head) - 2, "X: v\r\n\r\n");
    assert_int_equal(protocol_guard_check_head(head, strlen(head), &r), PROTOCOL_HEAD_REFUSED);
    assert_int_equal(r.status, 431);
    assert_string_equal(r.code, "too_many_headers");
}

static void test_attacker_bytes_in_a_detail_are_ascii_and_short(void **state)
{
    (void)state;
    char head[512];
    snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nTransfer-Encoding: \xc3\xa9%s\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    protocol_refusal r = {0};
    assert_int_equal(protocol_guard_check_head(head, strlen(head), &r), PROTOCOL_HEAD_REFUSED);
    assert_non_null(strstr(r.detail, "'??aaa"));
    assert_non_null(strstr(r.detail, "...'"));
    for (const char *p = r.detail; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            fail_msg("a byte 0x%02x from the request in '%s'", (unsigned char)*p, r.detail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_heads_pass),
        cmocka_unit_test(test_unfinished_heads_wait),
        cmocka_unit_test(test_ambiguous_framing_is_refused),
        cmocka_unit_test(test_malformed_heads_are_explained),
        cmocka_unit_test(test_control_bytes_in_an_unfinished_line),
        cmocka_unit_test(test_over_100_header_lines),
        cmocka_unit_test(test_attacker_bytes_in_a_detail_are_ascii_and_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

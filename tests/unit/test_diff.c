/*
 * test_diff.c — the diff engine: applying the ops to a gives b (random
 * pairs, edge cases, NUL bytes, invalid UTF-8); the line diff is minimal
 * (against an O(N·M) LCS table); word refinement marks exactly the changed
 * words and never splits a UTF-8 sequence; the budget bounds the time on
 * large unrelated texts and says it fell back; the three renderers (unified
 * text as GNU diff -u prints it, escaped HTML, the documented JSON); the
 * renderers stopping at the first write a bounded stream refuses; and a
 * microbenchmark that prints the time to diff two 50 KB articles.
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

#include "core/textbuf.h"
#include "diff/diff.h"

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static diff_result *diff_strings(const char *a, const char *b)
{
    diff_result *r = diff_compute(a, strlen(a), b, strlen(b), NULL);
    assert_non_null(r);
    return r;
}

/* Checks the ops' invariant (diff.h) by applying them to a: the result must
 * be b byte for byte; also the counts and the word spans' placement. */
static void assert_ops_rebuild_b(const diff_result *r, const char *a, size_t a_len, const char *b, size_t b_len)
{
    assert_int_equal(r->a.len, a_len);
    assert_int_equal(r->b.len, b_len);
    assert_memory_equal(r->a.bytes, a, a_len);
    char *rebuilt = malloc(b_len + 1);
    size_t rebuilt_len = 0, a_line = 0, b_line = 0, added = 0, removed = 0;
    for (size_t i = 0; i < r->op_count; i++) {
        const diff_op *op = &r->ops[i];
        assert_int_equal(op->a_line, a_line);
        assert_int_equal(op->b_line, b_line);
        assert_true(op->line_count > 0);
        if (i > 0)
            assert_int_not_equal(op->kind, r->ops[i - 1].kind);
        for (size_t k = 0; k < op->line_count; k++) {
            if (op->kind != DIFF_INSERT)
                assert_true(a_line + k < r->a.line_count);
            if (op->kind != DIFF_DELETE)
                assert_true(b_line + k < r->b.line_count);
            if (op->kind == DIFF_EQUAL) {
                size_t len = diff_line_len(&r->a, a_line + k);
                assert_int_equal(len, diff_line_len(&r->b, b_line + k));
                assert_memory_equal(diff_line_bytes(&r->a, a_line + k), diff_line_bytes(&r->b, b_line + k), len);
                memcpy(rebuilt + rebuilt_len, diff_line_bytes(&r->a, a_line + k), len);
                rebuilt_len += len;
            } else if (op->kind == DIFF_INSERT) {
                size_t len = diff_line_len(&r->b, b_line + k);
                assert_true(rebuilt_len + len <= b_len);
                memcpy(rebuilt + rebuilt_len, diff_line_bytes(&r->b, b_line + k), len);
                rebuilt_len += len;
            }
        }
        if (op->refined) {
            const diff_text *t = op->kind == DIFF_DELETE ? &r->a : &r->b;
            size_t first = op->kind == DIFF_DELETE ? op->a_line : op->b_line, end_offset = 0;
            for (size_t w = 0; w < op->word_count; w++) {
                const diff_span *s = &op->words[w];
                assert_true(s->len > 0);
                assert_true(s->offset >= t->line_start[first] && s->offset >= end_offset);
                assert_true(s->offset + s->len <= t->line_start[first + op->line_count]);
                assert_null(memchr(t->bytes + s->offset, '\n', s->len));
                end_offset = s->offset + s->len;
            }
        }
        a_line += op->kind == DIFF_INSERT ? 0 : op->line_count;
        b_line += op->kind == DIFF_DELETE ? 0 : op->line_count;
        added += op->kind == DIFF_INSERT ? op->line_count : 0;
        removed += op->kind == DIFF_DELETE ? op->line_count : 0;
    }
    assert_int_equal(a_line, r->a.line_count);
    assert_int_equal(b_line, r->b.line_count);
    assert_int_equal(added, r->lines_added);
    assert_int_equal(removed, r->lines_removed);
    assert_int_equal(rebuilt_len, b_len);
    assert_memory_equal(rebuilt, b, b_len);
    free(rebuilt);
}

/* Random lines over a small alphabet ("a\n", "ab\n", ...), the last one
 * sometimes without its newline. Returns the length written. */
static size_t random_text(char *out, size_t max_lines, size_t alphabet)
{
    size_t lines = rng_below(max_lines + 1), len = 0;
    for (size_t i = 0; i < lines; i++) {
        size_t symbol = rng_below(alphabet);
        out[len++] = (char)('a' + symbol);
        if (symbol % 2)
            out[len++] = 'b';
        out[len++] = '\n';
    }
    if (len > 0 && rng_below(4) == 0)
        len--;
    return len;
}

/* Renders in every format; the sanitizers watch the reads. */
static void render_all(const diff_result *r)
{
    size_t len;
    char *unified = diff_render_unified(r, DIFF_DEFAULT_CONTEXT, "a", "b", &len);
    assert_non_null(unified);
    free(unified);
    char *html = diff_render_html(r, DIFF_DEFAULT_CONTEXT, &len);
    assert_non_null(html);
    assert_int_equal(strlen(html), len); /* no NUL inside */
    free(html);
    json_t *json = diff_render_json(r, DIFF_DEFAULT_CONTEXT);
    assert_non_null(json);
    char *dumped = json_dumps(json, 0);
    assert_non_null(dumped);
    free(dumped);
    json_decref(json);
}

/* ---- reconstruction ------------------------------------------------------------ */

static void check_pair(const char *a, size_t a_len, const char *b, size_t b_len)
{
    diff_result *r = diff_compute(a, a_len, b, b_len, NULL);
    assert_non_null(r);
    assert_false(r->fallback);
    assert_ops_rebuild_b(r, a, a_len, b, b_len);
    diff_free(&r);
    assert_null(r);
}

static void test_edge_cases_rebuild_b(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "\n", "a", "a\n", "a\nb", "a\nb\n", "b\na\n", "\n\n\n", "a\n\nb"};
    size_t n = sizeof(texts) / sizeof(texts[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            check_pair(texts[i], strlen(texts[i]), texts[j], strlen(texts[j]));

    diff_result *r = diff_strings("same\ntext", "same\ntext");
    assert_int_equal(r->op_count, 1);
    assert_int_equal(r->ops[0].kind, DIFF_EQUAL);
    assert_int_equal(r->lines_added + r->lines_removed, 0);
    diff_free(&r);

    r = diff_strings("", "");
    assert_int_equal(r->op_count, 0);
    diff_free(&r);

    r = diff_strings("x\ny\n", "x\ny"); /* only the last newline differs */
    assert_int_equal(r->lines_removed, 1);
    assert_int_equal(r->lines_added, 1);
    diff_free(&r);
}

static void test_random_pairs_rebuild_b(void **state)
{
    (void)state;
    rng_state = 42;
    char a[4096], b[4096];
    for (int round = 0; round < 3000; round++) {
        size_t alphabet = 1 + rng_below(6), max_lines = 1 + rng_below(round < 2500 ? 40 : 600);
        size_t a_len = random_text(a, max_lines, alphabet), b_len = random_text(b, max_lines, alphabet);
        if (rng_below(8) == 0) { /* identical texts */
            memcpy(b, a, a_len);
            b_len = a_len;
        }
        check_pair(a, a_len, b, b_len);
    }
}

/* ---- minimality ------------------------------------------------------------------ */

/* Lines deleted + inserted by a shortest edit script: n + m - 2 · LCS. */
static size_t edit_distance(const diff_result *r)
{
    size_t n = r->a.line_count, m = r->b.line_count;
    size_t *row = calloc((n + 1) * (m + 1), sizeof(size_t));
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t len = diff_line_len(&r->a, i - 1);
            bool same = len == diff_line_len(&r->b, j - 1) &&
                        memcmp(diff_line_bytes(&r->a, i - 1), diff_line_bytes(&r->b, j - 1), len) == 0;
            size_t up = row[(i - 1) * (m + 1) + j], left = row[i * (m + 1) + j - 1];
            row[i * (m + 1) + j] = same ? row[(i - 1) * (m + 1) + j - 1] + 1 : up > left ? up : left;
        }
    size_t lcs = row[n * (m + 1) + m];
    free(row);
    return n + m - 2 * lcs;
}

static void test_line_diff_is_minimal(void **state)
{
    (void)state;
    rng_state = 7;
    char a[2048], b[2048];
    for (int round = 0; round < 4000; round++) {
        size_t alphabet = 2 + rng_below(4), max_lines = 1 + rng_below(round < 3800 ? 30 : 200);
        size_t a_len = random_text(a, max_lines, alphabet), b_len = random_text(b, max_lines, alphabet);
        diff_result *r = diff_compute(a, a_len, b, b_len, NULL);
        assert_non_null(r);
        assert_false(r->fallback);
        assert_int_equal(r->lines_added + r->lines_removed, edit_distance(r));
        diff_free(&r);
    }
}

/* ---- word level ------------------------------------------------------------------- */

/* The refined op of kind `kind` must mark exactly one word: `word`. */
static void assert_only_changed_word(const diff_result *r, diff_op_kind kind, const char *word)
{
    for (size_t i = 0; i < r->op_count; i++) {
        const diff_op *op = &r->ops[i];
        if (op->kind != kind)
            continue;
        const diff_text *t = kind == DIFF_DELETE ? &r->a : &r->b;
        assert_true(op->refined);
        assert_int_equal(op->word_count, 1);
        assert_int_equal(op->words[0].len, strlen(word));
        assert_memory_equal(t->bytes + op->words[0].offset, word, strlen(word));
        return;
    }
    fail_msg("no op of kind %d", kind);
}

static void test_one_word_change_marks_that_word(void **state)
{
    (void)state;
    char a[4096] = "intro\n", b[4096] = "intro\n";
    for (int i = 0; i < 60; i++) {
        snprintf(a + strlen(a), sizeof(a) - strlen(a), "word%d, ", i);
        snprintf(b + strlen(b), sizeof(b) - strlen(b), i == 37 ? "changed%d, " : "word%d, ", i);
    }
    strcat(a, "end.\noutro\n");
    strcat(b, "end.\noutro\n");
    diff_result *r = diff_strings(a, b);
    assert_int_equal(r->lines_removed, 1);
    assert_int_equal(r->lines_added, 1);
    assert_false(r->words_incomplete);
    assert_only_changed_word(r, DIFF_DELETE, "word37");
    assert_only_changed_word(r, DIFF_INSERT, "changed37");
    assert_ops_rebuild_b(r, a, strlen(a), b, strlen(b));
    diff_free(&r);
}

static void test_utf8_words_are_not_split(void **state)
{
    (void)state;
    /* "テキスト" and "テクスト" share their first and last bytes; a byte
     * diff would mark a piece of a character. */
    diff_result *r = diff_strings("日本語のテキスト です。\n", "日本語のテクスト です。\n");
    assert_only_changed_word(r, DIFF_DELETE, "日本語のテキスト");
    assert_only_changed_word(r, DIFF_INSERT, "日本語のテクスト");
    diff_free(&r);

    r = diff_strings("a crème brûlée, please\n", "a creme brûlée, please\n");
    assert_only_changed_word(r, DIFF_DELETE, "crème");
    assert_only_changed_word(r, DIFF_INSERT, "creme");
    diff_free(&r);
}

static void test_word_refinement_limits(void **state)
{
    (void)state;
    diff_options opts = diff_options_default();
    opts.word_max_line_bytes = 10;
    const char *a = "a short line\n", *b = "a shorter line\n";
    diff_result *r = diff_compute(a, strlen(a), b, strlen(b), &opts);
    assert_true(r->words_incomplete);
    assert_false(r->ops[0].refined);
    assert_ops_rebuild_b(r, a, strlen(a), b, strlen(b));
    diff_free(&r);

    opts = diff_options_default();
    opts.word_max_steps = 0;
    r = diff_compute(a, strlen(a), b, strlen(b), &opts);
    assert_true(r->words_incomplete);
    assert_false(r->ops[0].refined);
    diff_free(&r);
}

/* ---- bounded time --------------------------------------------------------------- */

/* Budgets that run out anywhere in the recursion, at line and word level:
 * the ops are no longer minimal but must still turn a into b. */
static void test_tiny_budgets_still_rebuild_b(void **state)
{
    (void)state;
    rng_state = 11;
    char a[4096], b[4096];
    size_t fell_back = 0;
    for (int round = 0; round < 2000; round++) {
        diff_options opts = diff_options_default();
        opts.max_steps = rng_below(400);
        opts.word_max_steps = rng_below(100);
        size_t alphabet = 2 + rng_below(5), max_lines = 1 + rng_below(200);
        size_t a_len = random_text(a, max_lines, alphabet), b_len = random_text(b, max_lines, alphabet);
        diff_result *r = diff_compute(a, a_len, b, b_len, &opts);
        assert_non_null(r);
        assert_ops_rebuild_b(r, a, a_len, b, b_len);
        assert_true(r->lines_added + r->lines_removed >= edit_distance(r));
        fell_back += r->fallback;
        diff_free(&r);
    }
    assert_true(fell_back > 100); /* the budgets did run out */
}

/* lines of 1 to 8 random tokens drawn from a large vocabulary */
static char *random_token_lines(size_t lines, size_t *len)
{
    char *text = malloc(lines * 80), *p = text;
    for (size_t i = 0; i < lines; i++) {
        size_t tokens = 1 + rng_below(8);
        for (size_t t = 0; t < tokens; t++)
            p += sprintf(p, t + 1 < tokens ? "w%zu " : "w%zu\n", rng_below(1000000));
    }
    *len = (size_t)(p - text);
    return text;
}

static void check_bounded(const diff_options *opts, const char *what, double limit_ms)
{
    rng_state = 99;
    size_t a_len, b_len;
    char *a = random_token_lines(200000, &a_len), *b = random_token_lines(200000, &b_len);
    double start = now_ms();
    diff_result *r = diff_compute(a, a_len, b, b_len, opts);
    double elapsed = now_ms() - start;
    assert_non_null(r);
    printf("  diff of two unrelated 200,000-line texts (%s): %.1f ms, fallback=%d\n", what, elapsed, r->fallback);
    assert_true(r->fallback);
    assert_true(elapsed < limit_ms);
    assert_ops_rebuild_b(r, a, a_len, b, b_len);
    json_t *json = diff_render_json(r, 0);
    assert_true(json_is_true(json_object_get(json, "fallback")));
    json_decref(json);
    diff_free(&r);
    free(a);
    free(b);
}

static void test_budget_bounds_large_unrelated_inputs(void **state)
{
    (void)state;
    /* Generous limits: a shared two-core machine, a sanitizer build. The
     * work is the budget (tens of ms) plus hashing 2 × 4 MB of lines. */
    check_bounded(NULL, "default step budget", 5000);
    diff_options timed = diff_options_default();
    timed.max_steps = UINT64_MAX;
    timed.max_time_us = 200000;
    check_bounded(&timed, "no step budget, 200 ms deadline", 5000);
}

/* ---- renderers -------------------------------------------------------------------- */

static const char numbers_a[] = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\ntwelve\nthirteen\n"
                                "fourteen\nfifteen\n";
static const char numbers_b[] = "one\nTWO\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\ntwelve\nthirteen\n"
                                "fourteen and a half\nfifteen";

static void assert_unified(const char *a, const char *b, unsigned context, const char *expected)
{
    diff_result *r = diff_strings(a, b);
    size_t len;
    char *text = diff_render_unified(r, context, NULL, NULL, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, expected);
    free(text);
    diff_free(&r);
}

/* The expected texts are what GNU diff 3.8 prints (file header lines cut). */
static void test_unified_matches_gnu_diff(void **state)
{
    (void)state;
    assert_unified(numbers_a, numbers_b, 3,
                   "@@ -1,5 +1,5 @@\n one\n-two\n+TWO\n three\n four\n five\n"
                   "@@ -11,5 +11,5 @@\n eleven\n twelve\n thirteen\n-fourteen\n-fifteen\n+fourteen and a half\n"
                   "+fifteen\n\\ No newline at end of file\n");
    assert_unified(numbers_a, numbers_b, 0,
                   "@@ -2 +2 @@\n-two\n+TWO\n@@ -14,2 +14,2 @@\n-fourteen\n-fifteen\n+fourteen and a half\n"
                   "+fifteen\n\\ No newline at end of file\n");
    /* 6 equal lines between two changes (2 × context): one hunk */
    assert_unified("a\n1\n2\n3\n4\n5\n6\nb\n", "A\n1\n2\n3\n4\n5\n6\nB\n", 3,
                   "@@ -1,8 +1,8 @@\n-a\n+A\n 1\n 2\n 3\n 4\n 5\n 6\n-b\n+B\n");
    assert_unified("x\ny\n", "x\ny", 3, "@@ -1,2 +1,2 @@\n x\n-y\n+y\n\\ No newline at end of file\n");
    assert_unified("", "x\ny\n", 3, "@@ -0,0 +1,2 @@\n+x\n+y\n");
    assert_unified("x\ny\nz\n", "x\nz\n", 0, "@@ -2 +1,0 @@\n-y\n");
    assert_unified("same\n", "same\n", 3, "");

    diff_result *r = diff_strings("x\n", "y\n");
    size_t len;
    char *text = diff_render_unified(r, 3, "a/post", "b/post", &len);
    assert_string_equal(text, "--- a/post\n+++ b/post\n@@ -1 +1 @@\n-x\n+y\n");
    free(text);
    diff_free(&r);
}

static void test_html_escapes_and_marks_words(void **state)
{
    (void)state;
    diff_result *r = diff_strings("<p class=\"x\">Tom & 'Jerry'</p>\n", "<p class=\"x\">Tom & 'Spike'</p>\n");
    size_t len;
    char *html = diff_render_html(r, 3, &len);
    assert_non_null(html);
    assert_string_equal(html, "<table class=\"diff\">\n"
                              "<tbody class=\"diff-hunk\">\n"
                              "<tr class=\"diff-hunk-header\"><td colspan=\"3\">@@ -1 +1 @@</td></tr>\n"
                              "<tr class=\"diff-delete\"><td class=\"diff-ln-a\">1</td><td class=\"diff-ln-b\"></td>"
                              "<td class=\"diff-text\">&lt;p class=&quot;x&quot;&gt;Tom &amp; &#39;<del>Jerry</del>"
                              "&#39;&lt;/p&gt;</td></tr>\n"
                              "<tr class=\"diff-insert\"><td class=\"diff-ln-a\"></td><td class=\"diff-ln-b\">1</td>"
                              "<td class=\"diff-text\">&lt;p class=&quot;x&quot;&gt;Tom &amp; &#39;<ins>Spike</ins>"
                              "&#39;&lt;/p&gt;</td></tr>\n"
                              "</tbody>\n"
                              "</table>\n");
    free(html);
    diff_free(&r);

    r = diff_strings("<script>alert(1)</script>\nok\n", "ok\n<b>\n");
    html = diff_render_html(r, 3, &len);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<b>"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    free(html);
    diff_free(&r);
}

static void test_json_has_documented_shape(void **state)
{
    (void)state;
    diff_result *r = diff_strings(numbers_a, numbers_b);
    json_t *root = diff_render_json(r, 1);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "lines_added")), 3);
    assert_int_equal(json_integer_value(json_object_get(root, "lines_removed")), 3);
    assert_true(json_is_false(json_object_get(root, "fallback")));
    assert_true(json_is_false(json_object_get(root, "words_incomplete")));
    assert_int_equal(json_integer_value(json_object_get(root, "context")), 1);
    json_t *hunks = json_object_get(root, "hunks");
    assert_int_equal(json_array_size(hunks), 2);

    json_t *first = json_array_get(hunks, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "a_start")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "a_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(first, "b_start")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "b_count")), 3);
    json_t *lines = json_object_get(first, "lines");
    assert_int_equal(json_array_size(lines), 4);
    json_t *equal = json_array_get(lines, 0), *del = json_array_get(lines, 1), *ins = json_array_get(lines, 2);
    assert_string_equal(json_string_value(json_object_get(equal, "op")), "equal");
    assert_string_equal(json_string_value(json_object_get(equal, "text")), "one");
    assert_int_equal(json_integer_value(json_object_get(equal, "a")), 1);
    assert_int_equal(json_integer_value(json_object_get(equal, "b")), 1);
    assert_string_equal(json_string_value(json_object_get(del, "op")), "delete");
    assert_int_equal(json_integer_value(json_object_get(del, "a")), 2);
    assert_null(json_object_get(del, "b"));
    assert_string_equal(json_string_value(json_object_get(ins, "op")), "insert");
    assert_int_equal(json_integer_value(json_object_get(ins, "b")), 2);
    assert_null(json_object_get(ins, "a"));
    json_t *words = json_object_get(ins, "words");
    assert_int_equal(json_array_size(words), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(words, 0), "op")), "insert");
    assert_string_equal(json_string_value(json_object_get(json_array_get(words, 0), "text")), "TWO");

    /* "fourteen" → "fourteen and a half": the words concatenate to the text */
    json_t *second_lines = json_object_get(json_array_get(hunks, 1), "lines");
    json_t *longer = json_array_get(second_lines, 3);
    assert_string_equal(json_string_value(json_object_get(longer, "text")), "fourteen and a half");
    json_t *segments = json_object_get(longer, "words");
    char joined[64] = "";
    for (size_t i = 0; i < json_array_size(segments); i++)
        strcat(joined, json_string_value(json_object_get(json_array_get(segments, i), "text")));
    assert_string_equal(joined, "fourteen and a half");
    assert_string_equal(json_string_value(json_object_get(json_array_get(segments, 0), "op")), "equal");
    json_t *last = json_array_get(second_lines, 4);
    assert_true(json_is_true(json_object_get(last, "no_newline")));
    assert_null(json_object_get(json_array_get(second_lines, 0), "no_newline"));
    json_decref(root);
    diff_free(&r);
}

/* ---- robustness ---------------------------------------------------------------------- */

static void test_nul_bytes_and_invalid_utf8(void **state)
{
    (void)state;
    static const char a[] = "head\nnul\0inside\nbad \xff\xfe bytes\ntruncated \xc3\ntail \xe2\x82";
    static const char b[] = "head\nnul\0outside\nbad \xff\xfd bytes\ntruncated \xc3\xa9\ntail \xe2\x82\xac";
    diff_result *r = diff_compute(a, sizeof(a) - 1, b, sizeof(b) - 1, NULL);
    assert_non_null(r);
    assert_ops_rebuild_b(r, a, sizeof(a) - 1, b, sizeof(b) - 1);
    render_all(r);

    size_t len;
    char *unified = diff_render_unified(r, 3, NULL, NULL, &len);
    assert_non_null(memchr(unified, '\0', len)); /* unified output is the bytes */
    free(unified);
    char *html = diff_render_html(r, 3, &len);
    /* NUL and each invalid byte show as U+FFFD */
    assert_non_null(strstr(html, "nul\xEF\xBF\xBD"));
    assert_non_null(strstr(html, "bad <del>\xEF\xBF\xBD\xEF\xBF\xBD</del> bytes"));
    free(html);
    json_t *json = diff_render_json(r, 3);
    char *dumped = json_dumps(json, 0);
    assert_non_null(strstr(dumped, "nul\\u0000"));
    json_error_t error;
    json_t *again = json_loads(dumped, JSON_ALLOW_NUL, &error);
    assert_non_null(again);
    json_decref(again);
    free(dumped);
    json_decref(json);
    diff_free(&r);
}

static void test_random_bytes_rebuild_b(void **state)
{
    (void)state;
    static const char alphabet[] = {'a', 'b', ' ', '\n', '\0', (char)0xff, (char)0xc3, (char)0xa9, '<', '&', '.'};
    rng_state = 2024;
    char a[512], b[512];
    for (int round = 0; round < 2000; round++) {
        size_t a_len = rng_below(sizeof(a)), b_len = rng_below(sizeof(b));
        for (size_t i = 0; i < a_len; i++)
            a[i] = alphabet[rng_below(sizeof(alphabet))];
        for (size_t i = 0; i < b_len; i++)
            b[i] = rng_below(3) == 0 || i >= a_len ? alphabet[rng_below(sizeof(alphabet))] : a[i];
        diff_result *r = diff_compute(a, a_len, b, b_len, NULL);
        assert_non_null(r);
        assert_ops_rebuild_b(r, a, a_len, b, b_len);
        if (round % 20 == 0)
            render_all(r);
        diff_free(&r);
    }
}

/* ---- microbenchmark ------------------------------------------------------------------ */

static const char *const vocabulary[] = {"the",     "editor", "published", "a",      "story",    "about", "city",
                                         "council", "budget", "which",     "voters", "approved", "on",    "Tuesday",
                                         "after",   "long",   "debate",    "over",   "schools",  "roads", "and",
                                         "parks",   "while",  "critics",   "said",   "plan",     "was",   "late"};

/* About 50 KB of prose: paragraphs of sentences, one paragraph per line
 * when wrap is 0, else wrapped at `wrap` columns. */
static size_t make_article(char *out, size_t wrap)
{
    size_t len = 0, column = 0;
    rng_state = 5;
    while (len < 50000) {
        for (int sentence = 0; sentence < 6; sentence++) {
            for (int word = 0, words = 8 + (int)rng_below(12); word < words; word++) {
                const char *w = vocabulary[rng_below(sizeof(vocabulary) / sizeof(vocabulary[0]))];
                bool space = word > 0 || sentence > 0;
                if (wrap != 0 && column + strlen(w) + 1 > wrap) {
                    out[len++] = '\n';
                    column = 0, space = false;
                }
                len += (size_t)sprintf(out + len, "%s%s%s", space ? " " : "", w, word + 1 == words ? "." : "");
                column += strlen(w) + space + (word + 1 == words);
            }
        }
        out[len++] = '\n';
        out[len++] = '\n';
        column = 0;
    }
    return len;
}

/* A few small edits: three words replaced, a sentence added, a line gone. */
static size_t edit_article(const char *in, size_t len, char *out)
{
    memcpy(out, in, len);
    out[len] = '\0';
    size_t positions[] = {len / 7, len / 3, len / 2};
    for (size_t i = 0; i < 3; i++) {
        char *word = strstr(out + positions[i], " budget ");
        if (word != NULL)
            memcpy(word, " BUDGET ", 8);
    }
    char *line = strchr(out + 2 * len / 3, '\n') + 1;
    char *next = strchr(line, '\n') + 1;
    memmove(line, next, strlen(next) + 1); /* a line deleted */
    char *at = strchr(out + 5 * len / 6, '\n') + 1;
    const char *added = "A sentence the editor added.\n";
    memmove(at + strlen(added), at, strlen(at) + 1);
    memcpy(at, added, strlen(added));
    return strlen(out);
}

static int compare_doubles(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void bench_article(size_t wrap, const char *what)
{
    enum { RUNS = 200 };
    char *a = malloc(60000), *b = malloc(60000);
    size_t a_len = make_article(a, wrap), b_len = edit_article(a, a_len, b);
    double compute[RUNS], render[RUNS];
    for (int i = 0; i < RUNS; i++) {
        double start = now_ms();
        diff_result *r = diff_compute(a, a_len, b, b_len, NULL);
        double computed = now_ms();
        size_t len;
        char *html = diff_render_html(r, DIFF_DEFAULT_CONTEXT, &len);
        render[i] = now_ms() - start;
        compute[i] = computed - start;
        if (i == 0) {
            assert_ops_rebuild_b(r, a, a_len, b, b_len);
            printf("  article %s: %zu vs %zu bytes, %zu vs %zu lines, -%zu +%zu lines\n", what, a_len, b_len,
                   r->a.line_count, r->b.line_count, r->lines_removed, r->lines_added);
        }
        free(html);
        diff_free(&r);
    }
    qsort(compute, RUNS, sizeof(double), compare_doubles);
    qsort(render, RUNS, sizeof(double), compare_doubles);
    printf("  article %s: diff p50 %.3f ms, p99 %.3f ms; diff + HTML p50 %.3f ms, p99 %.3f ms (%d runs)\n", what,
           compute[RUNS / 2], compute[RUNS * 99 / 100], render[RUNS / 2], render[RUNS * 99 / 100], RUNS);
    free(a);
    free(b);
}

/* "x\na" -> "x\na\n": the replacement "a" -> "a\n" is refined, yet its only
 * changed word is the newline, which no span covers, so the diff has a
 * refined op and no span at all. Found by clang's UBSan (arithmetic on the
 * NULL span array); every renderer must take it too. */
static void test_refined_replacement_without_words(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {{"x\na", "x\na\n"}, {"a\n", "a"}, {"x\na", "x\na\n\n"}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        diff_result *r = diff_strings(pairs[i][0], pairs[i][1]);
        assert_ops_rebuild_b(r, pairs[i][0], strlen(pairs[i][0]), pairs[i][1], strlen(pairs[i][1]));
        size_t len = 0;
        char *html = diff_render_html(r, DIFF_DEFAULT_CONTEXT, &len);
        char *unified = diff_render_unified(r, DIFF_DEFAULT_CONTEXT, "a", "b", &len);
        json_t *json = diff_render_json(r, DIFF_DEFAULT_CONTEXT);
        assert_non_null(html);
        assert_non_null(unified);
        assert_non_null(json);
        free(html);
        free(unified);
        json_decref(json);
        diff_free(&r);
    }
    diff_result *r = diff_strings("x\na", "x\na\n");
    assert_int_equal(r->op_count, 3); /* equal, delete, insert */
    assert_true(r->ops[1].refined && r->ops[2].refined);
    assert_int_equal(r->ops[1].word_count + r->ops[2].word_count, 0);
    diff_free(&r);
}

/* A stream that takes `room` bytes and refuses every write after, counting
 * the writes it was offered once full. */
typedef struct refusing_sink {
    size_t room, taken;
    int offered_after_refusal;
    bool refused;
} refusing_sink;

static ssize_t refusing_write(void *cookie, const char *bytes, size_t size)
{
    (void)bytes;
    refusing_sink *sink = cookie;
    if (sink->refused || size > sink->room - sink->taken) {
        sink->offered_after_refusal += sink->refused;
        sink->refused = true;
        return 0;
    }
    sink->taken += size;
    return (ssize_t)size;
}

/* The renderers stop at the first refused write: a 10 MB HTML diff offered
 * to a stream that holds 64 KiB costs a few more writes, not the rest of
 * the document; the same through a bounded textbuf, which never holds more
 * than its bound. */
static void test_renderers_stop_at_the_first_refused_write(void **state)
{
    (void)state;
    enum { LINES = 50000, ROOM = 64 * 1024 };
    char *a = malloc(2 * LINES + 1), *b = malloc(2 * LINES + 1);
    for (size_t i = 0; i < LINES; i++)
        memcpy(a + 2 * i, "x\n", 2), memcpy(b + 2 * i, "y\n", 2);
    diff_result *r = diff_compute(a, 2 * LINES, b, 2 * LINES, NULL);
    assert_non_null(r);
    size_t full_len = 0;
    char *full = diff_render_html(r, DIFF_DEFAULT_CONTEXT, &full_len);
    assert_true(full_len > 100 * (size_t)ROOM); /* what it would have been */
    free(full);

    for (int format = 0; format < 3; format++) {
        refusing_sink sink = {.room = ROOM};
        FILE *out = fopencookie(&sink, "w", (cookie_io_functions_t){.write = refusing_write});
        assert_non_null(out);
        int rc = format == 0   ? diff_write_html(r, DIFF_DEFAULT_CONTEXT, out)
                 : format == 1 ? diff_write_json_members(r, DIFF_DEFAULT_CONTEXT, out)
                               : diff_write_unified(r, DIFF_DEFAULT_CONTEXT, "a", "b", out);
        assert_int_equal(rc, -1);
        fclose(out);
        assert_true(sink.refused);
        assert_true(sink.offered_after_refusal <= 3); /* the closing tags and the final flush */
    }

    textbuf buf;
    FILE *out = textbuf_open(&buf, 16, ROOM);
    assert_non_null(out);
    assert_int_equal(diff_write_html(r, DIFF_DEFAULT_CONTEXT, out), -1);
    assert_false(textbuf_close(&buf, out));
    assert_true(buf.over && !buf.no_memory);
    assert_true(buf.len <= ROOM && buf.capacity <= 16 + ROOM + 1);
    textbuf_free(&buf);

    out = textbuf_open(&buf, 16, 2 * full_len); /* room enough: the same bytes as diff_render_html */
    assert_int_equal(diff_write_html(r, DIFF_DEFAULT_CONTEXT, out), 0);
    assert_true(textbuf_close(&buf, out));
    full = diff_render_html(r, DIFF_DEFAULT_CONTEXT, &full_len);
    assert_int_equal(buf.len, full_len);
    char *taken = textbuf_take(&buf);
    assert_memory_equal(taken + 16, full, full_len);
    assert_int_equal(taken[16 + full_len], '\0');
    free(taken);
    free(full);
    diff_free(&r);
    free(a);
    free(b);
}

static void test_benchmark_50kb_article(void **state)
{
    (void)state;
    bench_article(0, "(one paragraph per line)");
    bench_article(72, "(wrapped at 72 columns)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases_rebuild_b),
        cmocka_unit_test(test_random_pairs_rebuild_b),
        cmocka_unit_test(test_line_diff_is_minimal),
        cmocka_unit_test(test_one_word_change_marks_that_word),
        cmocka_unit_test(test_utf8_words_are_not_split),
        cmocka_unit_test(test_word_refinement_limits),
        cmocka_unit_test(test_tiny_budgets_still_rebuild_b),
        cmocka_unit_test(test_budget_bounds_large_unrelated_inputs),
        cmocka_unit_test(test_unified_matches_gnu_diff),
        cmocka_unit_test(test_html_escapes_and_marks_words),
        cmocka_unit_test(test_json_has_documented_shape),
        cmocka_unit_test(test_nul_bytes_and_invalid_utf8),
        cmocka_unit_test(test_random_bytes_rebuild_b),
        cmocka_unit_test(test_refined_replacement_without_words),
        cmocka_unit_test(test_renderers_stop_at_the_first_refused_write),
        cmocka_unit_test(test_benchmark_50kb_article),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

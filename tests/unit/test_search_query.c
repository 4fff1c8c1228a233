/*
 * test_search_query.c — the ?q= language (src/core/search_query.c): what a
 * query means in each engine's syntax, what is refused and the detail
 * that says where, and the snippets of hits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/search_query.h"

/* One tier of text, in both syntaxes. */
static void tier_means(const char *text, int tier, const char *fts5, const char *tsquery)
{
    search_query q;
    char detail[256] = "", out[SEARCH_RENDER_MAX];
    assert_true(search_query_parse(text, strlen(text), &q, detail, sizeof detail));
    assert_true(search_query_fts5(&q, tier, out, sizeof out));
    assert_string_equal(out, fts5);
    assert_true(search_query_tsquery(&q, tier, out, sizeof out));
    assert_string_equal(out, tsquery);
}

/* text parsed, then written whole for FTS5 and for to_tsquery. */
static void means(const char *text, const char *fts5, const char *tsquery)
{
    tier_means(text, SEARCH_TIER_ANY, fts5, tsquery);
}

static void refused(const char *text, size_t len, const char *detail_has)
{
    search_query q;
    char detail[256] = "";
    if (search_query_parse(text, len, &q, detail, sizeof detail))
        fail_msg("'%s' was taken", text);
    if (strstr(detail, detail_has) == NULL)
        fail_msg("'%s': detail '%s' does not say '%s'", text, detail, detail_has);
}

static void words_phrases_prefixes_or_and_exclusions(void **state)
{
    (void)state;
    means("climate", "(\"climate\")", "('climate')");
    means("  Climate   POLICY ", "(\"climate\" AND \"policy\")", "('climate' & 'policy')");
    means("\"climate policy\"", "(\"climate policy\")", "(('climate' <-> 'policy'))");
    means("clim*", "(\"clim\"*)", "('clim':*)");
    means("\"new bud\"*", "(\"new bud\"*)", "(('new' <-> 'bud':*))");
    means("flood OR storm", "((\"flood\" OR \"storm\"))", "(('flood' | 'storm'))");
    means("a OR b OR c d", "((\"a\" OR \"b\" OR \"c\") AND \"d\")", "(('a' | 'b' | 'c') & 'd')");
    means("news -sport", "(\"news\") NOT \"sport\"", "('news') & !'sport'");
    means("news -\"live blog\"", "(\"news\") NOT \"live blog\"", "('news') & !('live' <-> 'blog')");
    /* punctuation inside a bare token splits it into a phrase */
    means("covid-19", "(\"covid 19\")", "(('covid' <-> '19'))");
    /* a lowercase "or" is a word; a token of punctuation only is skipped */
    means("this or that &&", "(\"this\" AND \"or\" AND \"that\")", "('this' & 'or' & 'that')");
    /* non-ASCII letters are words, as written (the engines fold them) */
    means("café Zürich", "(\"café\" AND \"zürich\")", "('café' & 'zürich')");
    /* an engine operator in the text is only words */
    means("NEAR(a b) AND", "(\"near a\" AND \"b\" AND \"and\")", "(('near' <-> 'a') & 'b' & 'and')");
}

static void tiers_keep_the_positive_part_to_a_column_and_take_the_tiers_above_away(void **state)
{
    (void)state;
    tier_means("flood OR storm", SEARCH_TIER_TITLE, "{title} : ((\"flood\" OR \"storm\"))",
               "(('flood':A | 'storm':A))");
    tier_means("clim* -sport", SEARCH_TIER_EXCERPT, "{excerpt} : (\"clim\"*) NOT {title} : (\"clim\"*) NOT \"sport\"",
               "('clim':*B) & !('clim':*A) & !'sport'");
    tier_means("\"next decade\"", SEARCH_TIER_REST,
               "(\"next decade\") NOT {title} : (\"next decade\") NOT {excerpt} : (\"next decade\")",
               "(('next' <-> 'decade')) & !(('next':A <-> 'decade':A)) & !(('next':B <-> 'decade':B))");
    search_query q;
    char detail[256], out[SEARCH_RENDER_MAX];
    assert_true(search_query_parse("x", 1, &q, detail, sizeof detail));
    assert_false(search_query_fts5(&q, SEARCH_TIERS, out, sizeof out));
    assert_false(search_query_tsquery(&q, -1, out, sizeof out));
}

static void bad_queries_say_what_and_where(void **state)
{
    (void)state;
    refused("\"climate", 8, "the '\"' at byte 0 is never closed");
    refused("a \"b\" \"c", 8, "byte 6 is never closed");
    refused("OR x", 4, "'OR' at byte 0 has no term before it");
    refused("x OR", 4, "'OR' at byte 2 has no term after it");
    refused("x OR OR y", 9, "'OR' at byte 5 follows another 'OR'");
    refused("x OR -y", 7, "'OR' at byte 2 is followed by an excluded term");
    refused("-x OR y", 7, "'OR' at byte 3 follows an excluded term");
    refused("x - y", 5, "the '-' at byte 2 excludes nothing");
    refused("x -&&", 5, "the '-' at byte 2 excludes nothing");
    refused("-x -y", 5, "only excludes");
    refused("", 0, "no words");
    refused("&& !!", 5, "no words");
    refused("\"\"", 2, "the phrase at byte 0 has no words");
    refused("a\0b", 3, "byte 1 of the query is a NUL");
    refused("ab\xff", 3, "byte 2 of the query is not valid UTF-8");
    refused("\xc0\xaf", 2, "byte 0 of the query is not valid UTF-8"); /* overlong '/' */
    char many[128] = "";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "w%d ", i);
    refused(many, strlen(many), "more than 16 words (the word at byte 54");
    char longword[80];
    memset(longword, 'a', 65);
    longword[65] = '\0';
    refused(longword, 65, "the word at byte 0 is longer than 64 bytes");
    char big[300];
    memset(big, 'a', sizeof big);
    for (size_t i = 3; i < sizeof big; i += 4)
        big[i] = ' ';
    refused(big, 257, "the query is 257 bytes; at most 256");
}

static void at_the_bounds_a_query_is_taken(void **state)
{
    (void)state;
    char text[SEARCH_QUERY_MAX_BYTES + 1];
    memset(text, ' ', SEARCH_QUERY_MAX_BYTES);
    memset(text, 'b', SEARCH_WORD_MAX_BYTES);
    text[SEARCH_QUERY_MAX_BYTES] = '\0';
    search_query q;
    char detail[256];
    assert_true(search_query_parse(text, SEARCH_QUERY_MAX_BYTES, &q, detail, sizeof detail));
    assert_int_equal(q.word_count, 1);
    /* sixteen prefixes in phrases with OR between: every tier's rendering fits */
    char worst[SEARCH_QUERY_MAX_BYTES + 1] = "";
    for (int i = 0; i < 16; i++)
        snprintf(worst + strlen(worst), sizeof worst - strlen(worst), "%s\"%c%c\"*", i ? " OR " : "", 'a' + i, 'b' + i);
    assert_true(search_query_parse(worst, strlen(worst), &q, detail, sizeof detail));
    char out[SEARCH_RENDER_MAX];
    for (int tier = 0; tier < SEARCH_TIERS; tier++) {
        assert_true(search_query_fts5(&q, tier, out, sizeof out));
        assert_true(search_query_tsquery(&q, tier, out, sizeof out));
    }
    /* the largest tree there is (sixteen 64-byte prefixes, OR between:
     * more than 256 bytes of text would say, so made here) fits too */
    q = (search_query){0};
    for (int i = 0; i < 16; i++) {
        memset(q.words[i], 'a' + i, SEARCH_WORD_MAX_BYTES);
        q.terms[i] = (search_term){.first_word = (unsigned char)i, .word_count = 1, .prefix = true, .or_next = i < 15};
    }
    q.word_count = q.term_count = 16;
    for (int tier = 0; tier < SEARCH_TIERS; tier++) {
        assert_true(search_query_fts5(&q, tier, out, sizeof out));
        assert_true(search_query_tsquery(&q, tier, out, sizeof out));
    }
}

static void snippet(const char *query, const char *title, const char *excerpt, const char *body, const char *expect)
{
    search_query q;
    char detail[256], out[SEARCH_SNIPPET_MAX];
    assert_true(search_query_parse(query, strlen(query), &q, detail, sizeof detail));
    search_snippet(&q, title, excerpt, body, out);
    assert_string_equal(out, expect);
}

static void snippets_mark_where_the_query_matched(void **state)
{
    (void)state;
    snippet("budget", "New Budget for towns", "x", "y", "New «Budget» for towns");
    snippet("rollout", "Title", "The broadband rollout starts", "body", "The broadband «rollout» starts");
    snippet("dec*", "Title", "", "plans for the next decade and beyond", "plans for the next «decade» and beyond");
    /* excluded words are not marked; nothing found as written: the excerpt */
    snippet("Ärger -title", "Title", "An excerpt", "body", "An excerpt");
    /* a long body: a window around the first match, cut at spaces */
    char body[2000] = "";
    for (int i = 0; i < 60; i++)
        strcat(body, "lorem ipsum ");
    strcat(body, "the needle is here ");
    for (int i = 0; i < 60; i++)
        strcat(body, "dolor sit amet ");
    search_query q;
    char detail[256], out[SEARCH_SNIPPET_MAX];
    assert_true(search_query_parse("needle", 6, &q, detail, sizeof detail));
    search_snippet(&q, "T", "E", body, out);
    assert_non_null(strstr(out, "the «needle» is here"));
    assert_memory_equal(out, "…", strlen("…"));
    assert_string_equal(out + strlen(out) - strlen("…"), "…");
    assert_true(strlen(out) <= SEARCH_SNIPPET_CONTEXT + 2 * strlen("…") + 4);
}

static void snippets_stay_utf8_and_bounded(void **state)
{
    (void)state;
    /* every word a match: the most marks a window can hold */
    char body[2000] = "";
    for (int i = 0; i < 300; i++)
        strcat(body, "é ");
    search_query q;
    char detail[256], out[SEARCH_SNIPPET_MAX];
    assert_true(search_query_parse("é", strlen("é"), &q, detail, sizeof detail));
    search_snippet(&q, "", "", body, out);
    assert_true(strlen(out) < SEARCH_SNIPPET_MAX);
    /* cut inside a multi-byte character never: the text is all 2-byte letters */
    char wide[1400] = "";
    for (int i = 0; i < 150; i++)
        strcat(wide, "ää");
    strcat(wide, " ziel ");
    for (int i = 0; i < 150; i++)
        strcat(wide, "öö");
    assert_true(search_query_parse("ziel", 4, &q, detail, sizeof detail));
    search_snippet(&q, NULL, NULL, wide, out);
    assert_non_null(strstr(out, "«ziel»"));
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        if (*p == 0xc3) /* ä and ö: a lead byte always followed by its continuation */
            assert_true((p[1] & 0xc0) == 0x80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(words_phrases_prefixes_or_and_exclusions),
        cmocka_unit_test(tiers_keep_the_positive_part_to_a_column_and_take_the_tiers_above_away),
        cmocka_unit_test(bad_queries_say_what_and_where),
        cmocka_unit_test(at_the_bounds_a_query_is_taken),
        cmocka_unit_test(snippets_mark_where_the_query_matched),
        cmocka_unit_test(snippets_stay_utf8_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

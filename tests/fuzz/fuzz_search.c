/*
 * fuzz_search.c — the full-text query language of ?q= (search_query_parse
 * and its renderings in src/core/search_query.c), which any client
 * reaches.
 *
 * The input is the percent-decoded value of q. A query refused must say
 * why (a non-empty detail); a query taken must be written in both
 * engines' syntax, whole and as each relevance tier, within its bound,
 * with balanced parentheses and quotes, and each FTS5 text must be a
 * query SQLite's FTS5 runs without an error (an in-memory table of three
 * rows: a syntax error there would be a 500 on the route). The snippet of the input itself, searched for by its own
 * query, must be valid UTF-8 within SEARCH_SNIPPET_MAX bytes.
 */
#include <sqlite3.h>

#include "core/search_query.h"
#include "fuzz.h"

static sqlite3 *db;
static sqlite3_stmt *match;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE VIRTUAL TABLE t USING fts5(title, excerpt, body,"
                     " tokenize='unicode61 remove_diacritics 0');"
                     "INSERT INTO t VALUES ('Climate talks', 'the next decade', 'budget café zürich 19'),"
                     " ('Flood defences', 'storm', 'news live blog'), ('a b c', 'd e', 'or and not near');",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH ?1", -1, &match, NULL) != SQLITE_OK)
        fuzz_fail("the FTS5 table could not be made");
    return 0;
}

static void balanced(const char *text, char quote)
{
    int depth = 0;
    bool quoted = false;
    for (const char *p = text; *p; p++) {
        if (*p == quote)
            quoted = !quoted;
        else if (!quoted && *p == '(')
            depth++;
        else if (!quoted && *p == ')' && --depth < 0)
            fuzz_fail("a rendering closes a parenthesis it never opened");
    }
    if (depth != 0 || quoted)
        fuzz_fail("a rendering leaves a parenthesis or a quote open");
}

static void fts5_runs(const char *text)
{
    sqlite3_bind_text(match, 1, text, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(match)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "fts5: %s: %s\n", text, sqlite3_errmsg(db));
        fuzz_fail("FTS5 refused a rendering");
    }
    sqlite3_reset(match);
}

static void utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
        if (n == 0)
            fuzz_fail("a snippet is not UTF-8 (a bad lead byte)");
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                fuzz_fail("a snippet is not UTF-8 (a character cut)");
        p += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    search_query q;
    char detail[256] = "";
    if (!search_query_parse(text, size, &q, detail, sizeof detail)) {
        if (detail[0] == '\0')
            fuzz_fail("a query was refused without a detail");
        free(text);
        return 0;
    }
    char fts5[SEARCH_RENDER_MAX], tsquery[SEARCH_RENDER_MAX], snippet[SEARCH_SNIPPET_MAX];
    for (int tier = 0; tier < SEARCH_TIERS; tier++) {
        if (!search_query_fts5(&q, tier, fts5, sizeof fts5) || !search_query_tsquery(&q, tier, tsquery, sizeof tsquery))
            fuzz_fail("a query taken does not fit its rendering");
        balanced(fts5, '"');
        balanced(tsquery, '\'');
        fts5_runs(fts5);
    }
    search_snippet(&q, text, text, text, snippet);
    if (strlen(snippet) >= SEARCH_SNIPPET_MAX)
        fuzz_fail("a snippet overran its bound");
    utf8_valid(snippet);
    free(text);
    return 0;
}

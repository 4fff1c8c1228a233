/*
 * search_query.h — the full-text query language of GET /v1/{site}/content?q=
 * (docs/api.md, "Search"): parsed here, by strata, into a small tree, and
 * written from the tree into each engine's syntax (SQLite FTS5 MATCH,
 * PostgreSQL to_tsquery). User text never reaches an engine's parser, so
 * no query is an engine syntax error (a 500): what strata cannot parse is
 * a 400 whose detail names what is wrong and the byte where it is.
 *
 *   climate policy        both words (AND)
 *   "climate policy"      the phrase
 *   clim*                 a word starting with "clim" (also "clim pol"*)
 *   flood OR storm        either (OR binds two neighbouring terms)
 *   -sport                not this word or phrase (at least one term must
 *                         be positive)
 *
 * Words are runs of ASCII letters and digits and of non-ASCII characters;
 * other bytes separate them (a bare "covid-19" is the phrase "covid 19").
 * ASCII letters are lowercased. Bounds: 256 bytes of query, 16 words,
 * 64 bytes a word. Plain C, no allocation.
 */
#ifndef STRATA_CORE_SEARCH_QUERY_H
#define STRATA_CORE_SEARCH_QUERY_H

#include <stdbool.h>
#include <stddef.h>

enum {
    SEARCH_QUERY_MAX_BYTES = 256,
    SEARCH_WORDS_MAX = 16,
    SEARCH_WORD_MAX_BYTES = 64,
    /* A rendering in either engine's syntax fits: the positive part up
     * to three times (a tier less the tiers above it), each word quoted
     * with its marks, operators and parentheses between. */
    SEARCH_RENDER_MAX = 6144,
    /* A snippet: SEARCH_SNIPPET_CONTEXT bytes of text at most, plus the
     * marks around its matches and the ellipses at its ends. */
    SEARCH_SNIPPET_CONTEXT = 160,
    SEARCH_SNIPPET_MAX = 768,
};

/* One term: a word, or a phrase of several; its last word may be a prefix. */
typedef struct search_term {
    unsigned char first_word, word_count; /* words[first_word ..] */
    bool prefix;                          /* the last word is a prefix ("clim*") */
    bool negated;                         /* "-term": excluded */
    bool or_next;                         /* "term OR next": either of the two */
} search_term;

typedef struct search_query {
    char words[SEARCH_WORDS_MAX][SEARCH_WORD_MAX_BYTES + 1]; /* lowercased, NUL-terminated */
    size_t word_count;
    search_term terms[SEARCH_WORDS_MAX];
    size_t term_count;
} search_query;

/* Parses text (len bytes, NULs included, so a NUL is an error): true with
 * *out filled, or false with a sentence for a 400 in detail ("the '\"' at
 * byte 7 is never closed"). Bytes are counted from 0. */
bool search_query_parse(const char *text, size_t len, search_query *out, char *detail, size_t detail_size);

/* Relevance tiers: where an item matches the whole query. The title tier
 * holds the items whose title alone matches its positive terms; the
 * excerpt tier those whose excerpt alone does, less the title tier's;
 * the rest tier every other match. Each tier's query is a query of its
 * own, so each is read in id order and stops at a page (store/search.c). */
enum {
    SEARCH_TIER_ANY = 0, /* the whole query, every column */
    SEARCH_TIER_REST = 1,
    SEARCH_TIER_EXCERPT = 2,
    SEARCH_TIER_TITLE = 3,
    SEARCH_TIERS = 4
};

/* The query (tier SEARCH_TIER_ANY) or one tier of it in SQLite FTS5
 * syntax, for `MATCH`: every word a quoted string, every operator
 * explicit and parenthesised, a tier's column a column filter ({title} :).
 * The whole query's text is also its canonical text (one spelling per
 * meaning: cursors hash it). False when it does not fit out (never, at
 * SEARCH_RENDER_MAX) or for a tier out of range. */
bool search_query_fts5(const search_query *q, int tier, char *out, size_t size);
/* The same in PostgreSQL tsquery syntax, for to_tsquery('simple', …):
 * quoted lexemes, & | ! <-> and :* for prefixes, a tier's column a weight
 * on each of its lexemes ('word':A title, :B excerpt: setweight's). */
bool search_query_tsquery(const search_query *q, int tier, char *out, size_t size);

/* Where the query matched, for a search hit: the first of title, excerpt
 * and body holding one of its positive words (ASCII case folded; a prefix
 * term's last word as a prefix), as at most SEARCH_SNIPPET_CONTEXT bytes
 * of that text around the first match, cut at character boundaries, each
 * matching word between « and », "…" where text was cut. Valid UTF-8 in,
 * valid UTF-8 out (NUL-terminated in out, which holds SEARCH_SNIPPET_MAX
 * bytes). When no word is found as written (a match the engine folded
 * otherwise), the start of the excerpt, else of the title, unmarked.
 * Any argument may be NULL (no text). */
void search_snippet(const search_query *q, const char *title, const char *excerpt, const char *body,
                    char out[SEARCH_SNIPPET_MAX]);

#endif

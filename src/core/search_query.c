/*
 * search_query.c — the search language of ?q= (search_query.h): a parser
 * that an attacker reaches (fuzzed by tests/fuzz/fuzz_search.c), the two
 * engines' renderings, and the snippet of a hit.
 *
 * The parser makes one pass over at most SEARCH_QUERY_MAX_BYTES bytes,
 * checked first to be UTF-8, and fills fixed arrays: a query that breaks a
 * bound is refused, never allocated for. Each refusal names the byte it
 * is about, counted from 0 in the percent-decoded value.
 *
 * The renderings quote every word (a word holds only letters and digits,
 * so quoting is total) and parenthesise every group, so what reaches the
 * engine is always well formed and means exactly the tree: AND of groups,
 * a group the OR of its terms, and the excluded terms taken away at the
 * end (FTS5's NOT is binary, so exclusions must follow a positive part:
 * the parser guarantees one). A tier's rendering keeps the positive part
 * to one column and takes away the tiers above it (search_query.h).
 *
 * Words. A word is a run of ASCII letters and digits and of non-ASCII
 * characters other than the common punctuation blocks (Latin-1's
 * punctuation and symbols, General Punctuation, CJK punctuation), which
 * both engines' tokenizers split on too; any other byte separates words.
 * ASCII letters are lowercased here; both engines fold the rest alike
 * (unicode61 without diacritics removal, PostgreSQL's 'simple').
 */
#include "core/search_query.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/utf8.h"

/* ---- characters ------------------------------------------------------------ */

static bool is_separator_code_point(uint32_t cp)
{
    return (cp >= 0xa0 && cp <= 0xbf) || cp == 0xd7 || cp == 0xf7 || (cp >= 0x2000 && cp <= 0x206f) ||
           (cp >= 0x3000 && cp <= 0x303f);
}

/* Bytes of the character at s (1 for a separator byte or a broken
 * sequence) and whether it belongs to a word. */
static size_t char_at(const char *s, size_t n, bool *word)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *word = (u[0] >= 'a' && u[0] <= 'z') || (u[0] >= 'A' && u[0] <= 'Z') || (u[0] >= '0' && u[0] <= '9');
        return 1;
    }
    uint32_t cp;
    size_t len = utf8_sequence(u, n, &cp);
    if (len == 0) {
        *word = false;
        return 1;
    }
    *word = !is_separator_code_point(cp);
    return len;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_space(char c)
{
    return c == ' ' || ((unsigned char)c < 0x20 && c != '\0') || c == 0x7f;
}

/* ---- the parser ------------------------------------------------------------- */

typedef struct parser {
    const char *text;
    size_t len, at;
    search_query *q;
    char *detail;
    size_t detail_size;
} parser;

static bool refuse(parser *p, const char *format, ...) __attribute__((format(printf, 2, 3)));
static bool refuse(parser *p, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(p->detail, p->detail_size, format, args);
    va_end(args);
    return false;
}

static bool text_is_clean(parser *p)
{
    for (size_t at = 0; at < p->len;) {
        uint32_t cp;
        if (p->text[at] == '\0')
            return refuse(p, "byte %zu of the query is a NUL", at);
        size_t n = utf8_sequence((const unsigned char *)p->text + at, p->len - at, &cp);
        if (n == 0)
            return refuse(p, "byte %zu of the query is not valid UTF-8", at);
        at += n;
    }
    return true;
}

/* Appends the words of text[from, to) to the term being built. */
static bool words_add(parser *p, size_t from, size_t to, search_term *t)
{
    search_query *q = p->q;
    for (size_t at = from; at < to;) {
        bool word;
        size_t n = char_at(p->text + at, to - at, &word);
        if (!word) {
            at += n;
            continue;
        }
        size_t start = at;
        while (at < to && word) {
            at += n;
            if (at < to)
                n = char_at(p->text + at, to - at, &word);
        }
        if (q->word_count == SEARCH_WORDS_MAX)
            return refuse(p, "the query has more than %d words (the word at byte %zu is one too many)",
                          SEARCH_WORDS_MAX, start);
        if (at - start > SEARCH_WORD_MAX_BYTES)
            return refuse(p, "the word at byte %zu is longer than %d bytes", start, SEARCH_WORD_MAX_BYTES);
        char *out = q->words[q->word_count++];
        for (size_t i = start; i < at; i++)
            *out++ = ascii_lower(p->text[i]);
        *out = '\0';
        t->word_count++;
    }
    return true;
}

/* "…" at p->at: a phrase, with a '*' after it making its last word a prefix. */
static bool phrase_read(parser *p, search_term *t)
{
    size_t open = p->at;
    const char *close = memchr(p->text + open + 1, '"', p->len - open - 1);
    if (close == NULL)
        return refuse(p, "the '\"' at byte %zu is never closed", open);
    size_t end = (size_t)(close - p->text);
    if (!words_add(p, open + 1, end, t))
        return false;
    if (t->word_count == 0)
        return refuse(p, "the phrase at byte %zu has no words", open);
    p->at = end + 1;
    if (p->at < p->len && p->text[p->at] == '*') {
        t->prefix = true;
        p->at++;
    }
    return true;
}

/* A bare token at p->at, up to a space or a quote; a '*' right after its
 * last word makes that word a prefix. */
static bool bare_read(parser *p, search_term *t)
{
    size_t end = p->at;
    while (end < p->len && !is_space(p->text[end]) && p->text[end] != '"')
        end++;
    if (!words_add(p, p->at, end, t))
        return false;
    if (t->word_count > 0 && p->text[end - 1] == '*' && end - p->at >= 2) {
        bool word;
        size_t back = end - 2; /* the byte before '*': the end of a word? */
        while (back > p->at && ((unsigned char)p->text[back] & 0xc0) == 0x80)
            back--;
        (void)char_at(p->text + back, end - 1 - back, &word);
        t->prefix = word;
    }
    p->at = end;
    return true;
}

static bool is_or_at(const parser *p)
{
    return p->len - p->at >= 2 && p->text[p->at] == 'O' && p->text[p->at + 1] == 'R' &&
           (p->len - p->at == 2 || is_space(p->text[p->at + 2]));
}

/* The term at p->at, negated after a '-'; *added false when it held no
 * word (a lone "&": skipped). */
static bool term_read(parser *p, search_term *t, bool *added)
{
    size_t start = p->at;
    *added = false;
    *t = (search_term){.first_word = (unsigned char)p->q->word_count};
    if (p->text[p->at] == '-') {
        t->negated = true;
        p->at++;
        if (p->at == p->len || is_space(p->text[p->at]))
            return refuse(p, "the '-' at byte %zu excludes nothing: put a word or a \"phrase\" right after it", start);
    }
    bool ok = p->text[p->at] == '"' ? phrase_read(p, t) : bare_read(p, t);
    if (ok && t->negated && t->word_count == 0)
        return refuse(p, "the '-' at byte %zu excludes nothing: put a word or a \"phrase\" right after it", start);
    *added = ok && t->word_count > 0;
    return ok;
}

/* An OR seen at or_at joins the term before it to t. */
static bool or_join(parser *p, size_t or_at, const search_term *t)
{
    if (t->negated)
        return refuse(p, "the 'OR' at byte %zu is followed by an excluded term: exclusions cannot be alternatives",
                      or_at);
    p->q->terms[p->q->term_count - 1].or_next = true;
    return true;
}

/* The OR at p->at: there must be a positive term before it. */
static bool or_read(parser *p, size_t *or_at)
{
    const search_query *q = p->q;
    if (*or_at != SIZE_MAX)
        return refuse(p, "the 'OR' at byte %zu follows another 'OR'", p->at);
    if (q->term_count == 0)
        return refuse(p, "the 'OR' at byte %zu has no term before it", p->at);
    if (q->terms[q->term_count - 1].negated)
        return refuse(p, "the 'OR' at byte %zu follows an excluded term: exclusions cannot be alternatives", p->at);
    *or_at = p->at;
    p->at += 2;
    return true;
}

static bool query_complete(parser *p, size_t or_at)
{
    const search_query *q = p->q;
    if (or_at != SIZE_MAX)
        return refuse(p, "the 'OR' at byte %zu has no term after it", or_at);
    if (q->term_count == 0)
        return refuse(p, "the query has no words to search for (words are letters and digits)");
    for (size_t i = 0; i < q->term_count; i++)
        if (!q->terms[i].negated)
            return true;
    return refuse(p, "the query only excludes: give at least one word or phrase to search for");
}

bool search_query_parse(const char *text, size_t len, search_query *out, char *detail, size_t detail_size)
{
    memset(out, 0, sizeof *out);
    parser p = {.text = text, .len = len, .q = out, .detail = detail, .detail_size = detail_size};
    if (len > SEARCH_QUERY_MAX_BYTES)
        return refuse(&p, "the query is %zu bytes; at most %d", len, SEARCH_QUERY_MAX_BYTES);
    if (!text_is_clean(&p))
        return false;
    size_t or_at = SIZE_MAX; /* an OR waiting for its second term */
    while (p.at < len) {
        if (is_space(text[p.at])) {
            p.at++;
            continue;
        }
        if (is_or_at(&p)) {
            if (!or_read(&p, &or_at))
                return false;
            continue;
        }
        search_term t;
        bool added;
        if (!term_read(&p, &t, &added))
            return false;
        if (!added)
            continue;
        if (or_at != SIZE_MAX && !or_join(&p, or_at, &t))
            return false;
        or_at = SIZE_MAX;
        out->terms[out->term_count++] = t;
    }
    return query_complete(&p, or_at);
}

/* ---- renderings ------------------------------------------------------------- */

typedef struct out_text {
    char *s;
    size_t size, len;
    bool overflow;
} out_text;

static void put(out_text *o, const char *s)
{
    size_t n = strlen(s);
    if (o->overflow || o->len + n >= o->size) {
        o->overflow = true;
        return;
    }
    memcpy(o->s + o->len, s, n + 1);
    o->len += n;
}

/* The syntax of one engine: how a term, a group and the whole are written,
 * and how a part is kept to one column (FTS5: a column filter before it;
 * tsquery: a weight after each word, setweight's A title, B excerpt). */
typedef struct dialect {
    const char *quote;                       /* around a word or a phrase */
    const char *phrase_join;                 /* between a phrase's words */
    const char *prefix;                      /* after a prefix word */
    const char *or_op, *and_op;              /* between terms of a group, between groups */
    const char *not_op;                      /* before a part taken away */
    bool phrase_quoted_whole;                /* FTS5: "a b"*, one string */
    const char *column_filter[SEARCH_TIERS]; /* before the positive part, by tier */
    const char *word_weight[SEARCH_TIERS];   /* after each word of it (after ':' or ':*'), by tier */
} dialect;

static const dialect fts5 = {
    "\"", " ", "*", " OR ", " AND ", " NOT ", true, {"", "", "{excerpt} : ", "{title} : "}, {"", "", "", ""}};
static const dialect tsquery = {"'", " <-> ", ":*", " | ", " & ", " & !", false, {"", "", "", ""}, {"", "", "B", "A"}};

static void word_put(out_text *o, const search_query *q, const search_term *t, unsigned i, const dialect *d, int tier)
{
    const char *weight = d->word_weight[tier];
    put(o, d->quote);
    put(o, q->words[t->first_word + i]);
    put(o, d->quote);
    if (i + 1 == t->word_count && t->prefix) /* tsquery: 'clim':*A */
        put(o, d->prefix);
    else if (weight[0] != '\0')
        put(o, ":");
    put(o, weight);
}

static void term_put(out_text *o, const search_query *q, const search_term *t, const dialect *d, int tier)
{
    bool phrase = t->word_count > 1;
    if (d->phrase_quoted_whole) {
        put(o, d->quote);
        for (unsigned i = 0; i < t->word_count; i++) {
            put(o, i ? d->phrase_join : "");
            put(o, q->words[t->first_word + i]);
        }
        put(o, d->quote);
        put(o, t->prefix ? d->prefix : "");
        return;
    }
    put(o, phrase ? "(" : "");
    for (unsigned i = 0; i < t->word_count; i++) {
        put(o, i ? d->phrase_join : "");
        word_put(o, q, t, i, d, tier);
    }
    put(o, phrase ? ")" : "");
}

/* The positive groups joined by AND, parenthesised, kept to tier's column. */
static void positive_put(out_text *o, const search_query *q, const dialect *d, int tier)
{
    put(o, d->column_filter[tier]);
    put(o, "(");
    bool first = true;
    for (size_t i = 0; i < q->term_count; i++) {
        const search_term *t = &q->terms[i];
        if (t->negated)
            continue;
        bool after_or = i > 0 && q->terms[i - 1].or_next;
        put(o, first ? "" : after_or ? d->or_op : d->and_op);
        put(o, !after_or && t->or_next ? "(" : "");
        term_put(o, q, t, d, tier);
        put(o, after_or && !t->or_next ? ")" : "");
        first = false;
    }
    put(o, ")");
}

/* A tier's part, then what lower tiers take away, then the exclusions. */
static bool render(const search_query *q, const dialect *d, int tier, char *out, size_t size)
{
    out_text o = {.s = out, .size = size};
    if (size > 0)
        out[0] = '\0';
    if (tier < 0 || tier >= SEARCH_TIERS)
        return false;
    positive_put(&o, q, d, tier);
    for (int above = SEARCH_TIERS - 1; tier != SEARCH_TIER_ANY && above > tier; above--) {
        put(&o, d->not_op);
        positive_put(&o, q, d, above);
    }
    for (size_t i = 0; i < q->term_count; i++) {
        if (!q->terms[i].negated)
            continue;
        put(&o, d->not_op);
        term_put(&o, q, &q->terms[i], d, SEARCH_TIER_ANY);
    }
    return !o.overflow;
}

bool search_query_fts5(const search_query *q, int tier, char *out, size_t size)
{
    return render(q, &fts5, tier, out, size);
}

bool search_query_tsquery(const search_query *q, int tier, char *out, size_t size)
{
    return render(q, &tsquery, tier, out, size);
}

/* ---- snippets -------------------------------------------------------------- */

/* Whether word text[0, n) is one of the query's positive words (a prefix
 * term's last word as a prefix), ASCII case folded. */
static bool word_matches(const search_query *q, const char *text, size_t n)
{
    for (size_t i = 0; i < q->term_count; i++) {
        const search_term *t = &q->terms[i];
        for (unsigned w = 0; !t->negated && w < t->word_count; w++) {
            const char *word = q->words[t->first_word + w];
            size_t len = strlen(word);
            bool prefix = t->prefix && w + 1 == t->word_count;
            if (len > n || (!prefix && len != n))
                continue;
            size_t k = 0;
            while (k < len && ascii_lower(text[k]) == word[k])
                k++;
            if (k == len)
                return true;
        }
    }
    return false;
}

/* The next word of text at or after *at: [*start, *end); false at the end. */
static bool word_next(const char *text, size_t len, size_t *at, size_t *start, size_t *end)
{
    bool word = false;
    size_t n = 0;
    while (*at < len && !word) {
        n = char_at(text + *at, len - *at, &word);
        if (!word)
            *at += n;
    }
    if (*at >= len)
        return false;
    *start = *at;
    while (*at < len && word) {
        *at += n;
        if (*at < len)
            n = char_at(text + *at, len - *at, &word);
    }
    *end = *at;
    return true;
}

static bool first_match(const search_query *q, const char *text, size_t len, size_t *match)
{
    size_t at = 0, start, end;
    while (word_next(text, len, &at, &start, &end))
        if (word_matches(q, text + start, end - start)) {
            *match = start;
            return true;
        }
    return false;
}

static size_t char_boundary_back(const char *text, size_t at)
{
    while (at > 0 && ((unsigned char)text[at] & 0xc0) == 0x80)
        at--;
    return at;
}

/* The window [*from, *to) of at most SEARCH_SNIPPET_CONTEXT bytes around
 * a match at match: a little before it, cut at spaces where there are. */
static void window_choose(const char *text, size_t len, size_t match, size_t *from, size_t *to)
{
    size_t start = match >= SEARCH_SNIPPET_CONTEXT / 2 ? match - SEARCH_SNIPPET_CONTEXT / 4 : 0;
    start = char_boundary_back(text, start);
    if (start > 0) { /* begin at a word: after the first space before the match */
        const char *space = memchr(text + start, ' ', match - start);
        if (space != NULL)
            start = (size_t)(space - text) + 1;
    }
    size_t end = len - start > SEARCH_SNIPPET_CONTEXT ? start + SEARCH_SNIPPET_CONTEXT : len;
    if (end < len) {
        end = char_boundary_back(text, end);
        size_t cut = end;
        while (cut > match && text[cut] != ' ')
            cut--;
        if (cut > match)
            end = cut;
    }
    *from = start;
    *to = end;
}

/* text[from, to) into o, the matching words marked. */
static void window_put(out_text *o, const search_query *q, const char *text, size_t from, size_t to, bool marked)
{
    char chunk[SEARCH_SNIPPET_CONTEXT + 1];
    size_t at = from, start, end;
    while (at < to) {
        size_t copied = at;
        bool found = marked && word_next(text, to, &at, &start, &end);
        size_t plain_end = found ? start : to;
        memcpy(chunk, text + copied, plain_end - copied);
        chunk[plain_end - copied] = '\0';
        put(o, chunk);
        if (!found)
            break;
        bool hit = word_matches(q, text + start, end - start);
        memcpy(chunk, text + start, end - start);
        chunk[end - start] = '\0';
        put(o, hit ? "«" : "");
        put(o, chunk);
        put(o, hit ? "»" : "");
        at = end;
    }
}

static void snippet_of(out_text *o, const search_query *q, const char *text, size_t len, size_t match, bool marked)
{
    size_t from, to;
    window_choose(text, len, match, &from, &to);
    put(o, from > 0 ? "…" : "");
    window_put(o, q, text, from, to, marked);
    put(o, to < len ? "…" : "");
}

void search_snippet(const search_query *q, const char *title, const char *excerpt, const char *body,
                    char out[SEARCH_SNIPPET_MAX])
{
    out_text o = {.s = out, .size = SEARCH_SNIPPET_MAX};
    out[0] = '\0';
    const char *fields[] = {title, excerpt, body};
    for (size_t i = 0; i < 3; i++) {
        size_t match;
        if (fields[i] != NULL && first_match(q, fields[i], strlen(fields[i]), &match)) {
            snippet_of(&o, q, fields[i], strlen(fields[i]), match, true);
            return;
        }
    }
    const char *plain = excerpt != NULL && excerpt[0] != '\0' ? excerpt : title != NULL ? title : "";
    snippet_of(&o, q, plain, strlen(plain), 0, false);
}

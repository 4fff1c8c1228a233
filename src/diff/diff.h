/*
 * diff.h — the differences between two texts, line by line and, inside
 * changed lines, word by word; and three ways to render them (JSON, unified
 * text as `diff -u` prints it, an HTML fragment). Version history serves
 * these; the library knows nothing of HTTP or the database.
 *
 * Texts are byte buffers: UTF-8 in practice, but anything is accepted (NUL
 * bytes, invalid sequences) and only the renderers care about encoding. A
 * text is split into lines after each '\n'; the last line may lack one.
 *
 * The algorithm is Myers' O((N+M)·D) difference algorithm with the
 * linear-space divide-and-conquer refinement (the "middle snake"), run on
 * line identities (each distinct line gets an integer id, so comparing two
 * lines costs one integer compare), after trimming the common prefix and
 * suffix. A replacement — deleted lines followed by inserted lines — is then
 * refined by the same algorithm on words (runs of letters and digits, bytes
 * >= 0x80 counting as letters so a UTF-8 sequence is never split; runs of
 * blanks; '\n'; any other single byte).
 *
 * Time is bounded by a budget of steps (one step: one diagonal visited or
 * one pair of elements compared). When it runs out, the part of the texts
 * still being compared is reported as "all these lines deleted, all those
 * inserted": still an exact edit script, only not minimal, and the result
 * says `fallback`. The budget is counted, not timed, so the same two texts
 * always give the same diff (a cacheable answer); a wall-clock limit can be
 * added on top. Total work is O(N+M) bytes of hashing plus the budget.
 *
 * Invariant: walking the ops in order, EQUAL and DELETE ops cover the lines
 * of a exactly once and in order, EQUAL and INSERT ops cover b likewise, and
 * the lines of an EQUAL op are byte for byte equal on both sides; so
 * applying the ops to a yields b.
 */
#ifndef STRATA_DIFF_H
#define STRATA_DIFF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DIFF_DEFAULT_CONTEXT 3 /* lines of context around a change, as diff -u */

typedef struct diff_options {
    /* Line-level budget, in steps (about 5 ns each on a current server core,
     * when the texts are large enough to miss the caches). */
    uint64_t max_steps;
    /* Wall-clock limit on the whole computation, in microseconds; 0 = none.
     * Makes the result depend on the machine's load: prefer max_steps. */
    uint64_t max_time_us;
    /* Word-level budget, shared by every replacement of the diff. A
     * replacement whose refinement runs out of it is left unrefined. */
    uint64_t word_max_steps;
    /* Replacements with a line longer than this, or more bytes than this in
     * all (both sides), are not refined word by word. */
    size_t word_max_line_bytes;
    size_t word_max_region_bytes;
} diff_options;

/* max_steps 10,000,000 (some 50 ms at most), no time limit,
 * word_max_steps 2,000,000, word_max_line_bytes 16 KiB,
 * word_max_region_bytes 64 KiB. */
diff_options diff_options_default(void);

typedef struct diff_text {
    const char *bytes; /* the result's own copy */
    size_t len;
    /* line_count + 1 offsets: line i is bytes[line_start[i], line_start[i+1]),
     * its '\n' included (the last line may have none). */
    const size_t *line_start;
    size_t line_count;
} diff_text;

static inline const char *diff_line_bytes(const diff_text *t, size_t i)
{
    return t->bytes + t->line_start[i];
}
/* With its '\n', if it has one. */
static inline size_t diff_line_len(const diff_text *t, size_t i)
{
    return t->line_start[i + 1] - t->line_start[i];
}

typedef enum diff_op_kind {
    DIFF_EQUAL,  /* lines a_line.. of a are lines b_line.. of b */
    DIFF_DELETE, /* lines a_line.. of a are removed (b_line: where, in b) */
    DIFF_INSERT, /* lines b_line.. of b are added, before line a_line of a */
} diff_op_kind;

/* Bytes [offset, offset + len) of a text; never includes a '\n'. */
typedef struct diff_span {
    size_t offset, len;
} diff_span;

typedef struct diff_op {
    diff_op_kind kind;
    size_t a_line, b_line; /* 0-based: where the op starts in a and in b */
    size_t line_count;
    /* On the DELETE and INSERT halves of a replacement that was refined:
     * the changed words, in order, as spans of a (DELETE) or b (INSERT);
     * the other bytes of the op's lines are common to both halves (but for
     * newlines, which a span never covers). When not refined, the lines
     * changed as a whole. */
    bool refined;
    const diff_span *words; /* NULL when word_count is 0 */
    size_t word_count;
} diff_op;

typedef struct diff_result {
    diff_text a, b;
    const diff_op *ops; /* adjacent ops differ in kind; a DELETE comes before its INSERT */
    size_t op_count;
    size_t lines_added, lines_removed;
    bool fallback;         /* the line budget ran out: exact, but not minimal */
    bool words_incomplete; /* some replacement was not refined (size, budget) */
} diff_result;

/* Compares a with b (copied: the caller's buffers may go once this returns).
 * opts NULL = diff_options_default(). Returns NULL when out of memory or when
 * the texts together exceed 4 GiB. */
diff_result *diff_compute(const void *a, size_t a_len, const void *b, size_t b_len, const diff_options *opts);
/* Frees the result and sets *r to NULL. */
void diff_free(diff_result **r);

/* ---- rendering (diff_render.c) ------------------------------------------
 *
 * The three renderers show the same hunks: the changes with `context` lines
 * around them, changes closer than 2 × context lines merged into one hunk,
 * exactly as `diff -u` groups them. Line numbers are 1-based. Text is
 * rendered as UTF-8: an invalid byte becomes U+FFFD in JSON and HTML (and is
 * kept as is in unified text, which is bytes, like diff's).
 */

/* {"lines_added": n, "lines_removed": n, "fallback": bool,
 *  "words_incomplete": bool, "context": n,
 *  "hunks": [{"a_start": n, "a_count": n, "b_start": n, "b_count": n,
 *             "lines": [LINE, ...]}, ...]}
 * a_start etc. are the numbers of the "@@ -a_start,a_count +b_start,b_count
 * @@" header. LINE: {"op": "equal"|"delete"|"insert", "a": n, "b": n,
 * "text": "without its newline"}, "a" on equal and delete lines, "b" on equal
 * and insert lines; "no_newline": true on a last line lacking its '\n'; on
 * the lines of a refined replacement, "words": [{"op": "equal"|"delete"
 * |"insert", "text": "..."}, ...], segments whose texts concatenate to
 * "text". diff_render_json_text writes that document as compact JSON text
 * (malloc'd, NUL-terminated, length in *len; NULL when out of memory):
 * what a server sends. diff_render_json parses it back into a new
 * reference (NULL when out of memory), for callers that want a tree. */
char *diff_render_json_text(const diff_result *r, unsigned context, size_t *len);
json_t *diff_render_json(const diff_result *r, unsigned context);

/* What `diff -u` prints: "--- a_label" and "+++ b_label" lines when the
 * labels are not NULL and the texts differ, then per hunk "@@ -a,b +c,d @@"
 * and its lines prefixed ' ', '-' or '+', with "\ No newline at end of file"
 * after a last line that lacks its '\n'. Nothing at all for equal texts.
 * Returns a malloc'd buffer (NUL-terminated, but the text may itself
 * contain NULs) and its length in *len; NULL when out of memory. */
char *diff_render_unified(const diff_result *r, unsigned context, const char *a_label, const char *b_label,
                          size_t *len);

/* An HTML fragment, every text byte escaped (& < > " ' and invalid UTF-8 or
 * NUL as U+FFFD), no scripts or styles, only these classes to style:
 *   table.diff                   the whole diff (also .diff-fallback when
 *                                the line budget ran out)
 *   tbody.diff-hunk              one hunk
 *   tr.diff-hunk-header          its "@@ -a,b +c,d @@" row (one td, colspan 3)
 *   tr.diff-equal / .diff-delete / .diff-insert
 *                                a line: td.diff-ln-a, td.diff-ln-b (line
 *                                numbers, empty on the side that lacks the
 *                                line), td.diff-text
 *   del, ins                     inside td.diff-text of a refined line: the
 *                                words that changed
 *   tr.diff-no-newline           "\ No newline at end of file" (one td)
 * Returns a malloc'd NUL-terminated buffer and its length; NULL when out of
 * memory. */
char *diff_render_html(const diff_result *r, unsigned context, size_t *len);

/* The same documents written to a stream the caller chose (a bounded one,
 * core/textbuf.h, for a server that must not build what it cannot send).
 * Each stops at the first write that fails (ferror(out)), so the work done
 * past a refused write is at most one line's; 0, or -1 when a write failed.
 * diff_write_json_members writes the JSON document's members without its
 * braces, for a caller that puts members of its own around them. */
int diff_write_json_members(const diff_result *r, unsigned context, FILE *out);
int diff_write_unified(const diff_result *r, unsigned context, const char *a_label, const char *b_label, FILE *out);
int diff_write_html(const diff_result *r, unsigned context, FILE *out);

#endif

/*
 * diff_render.c — a diff_result as JSON, as unified text, as HTML (the
 * formats are described in diff.h).
 *
 * The three share one walk: next_hunk groups the ops into hunks the way GNU
 * diff does (a change, `context` equal lines either side, and the next
 * change too when the equal lines between are at most 2 × context), and
 * visit_hunk_lines hands each line of a hunk to the renderer with its
 * numbers. Refined lines are cut into segments (common bytes, changed
 * words) by for_each_segment. Text goes out as bytes in unified output and
 * as valid UTF-8 in JSON and HTML (write_text, with each format's escape
 * of single bytes), an invalid byte replaced by U+FFFD.
 * Renderers write to a stdio stream. A write that fails sets the stream's
 * error flag; the walk looks at it before every line (and inside a long
 * line between escapes) and stops there, so a stream that refuses to grow
 * past a bound (core/textbuf.h) ends the rendering as soon as the output
 * passes it, whatever the size of the diff.
 */
#include "diff/diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

/* ---- hunks -------------------------------------------------------------------- */

typedef struct hunk {
    size_t first_op, last_op; /* the changes and the equal ops between them */
    size_t lead, trail;       /* context lines from the equal ops just outside */
    size_t a_start, a_count;  /* 0-based */
    size_t b_start, b_count;
} hunk;

static size_t min_size(size_t x, size_t y)
{
    return x < y ? x : y;
}

/* The hunk whose first change is at or after op *cursor; advances *cursor
 * past it. False when no change is left. */
static bool next_hunk(const diff_result *r, unsigned context, size_t *cursor, hunk *h)
{
    const diff_op *ops = r->ops;
    size_t i = *cursor;
    while (i < r->op_count && ops[i].kind == DIFF_EQUAL)
        i++;
    if (i == r->op_count)
        return false;
    size_t last = i;
    while (last + 1 < r->op_count) {
        const diff_op *next = &ops[last + 1];
        if (next->kind != DIFF_EQUAL)
            last++;
        else if (last + 2 < r->op_count && next->line_count <= 2 * (size_t)context)
            last += 2; /* the equal lines and the change after them */
        else
            break;
    }
    *h = (hunk){.first_op = i, .last_op = last};
    h->lead = i > 0 ? min_size(context, ops[i - 1].line_count) : 0;
    h->trail = last + 1 < r->op_count ? min_size(context, ops[last + 1].line_count) : 0;
    h->a_start = ops[i].a_line - h->lead;
    h->b_start = ops[i].b_line - h->lead;
    const diff_op *end = &ops[last];
    h->a_count = end->a_line + (end->kind == DIFF_INSERT ? 0 : end->line_count) + h->trail - h->a_start;
    h->b_count = end->b_line + (end->kind == DIFF_DELETE ? 0 : end->line_count) + h->trail - h->b_start;
    *cursor = last + 1;
    return true;
}

/* The 1-based line a range starts at, as diff numbers it: an empty range
 * names the line before it. */
static size_t header_start(size_t start, size_t count)
{
    return count == 0 ? start : start + 1;
}

/* "l,s" of a @@ header: s omitted when 1. */
static void print_range(FILE *out, size_t start, size_t count)
{
    if (count == 1)
        fprintf(out, "%zu", header_start(start, count));
    else
        fprintf(out, "%zu,%zu", header_start(start, count), count);
}

static void print_hunk_header(FILE *out, const hunk *h)
{
    fputs("@@ -", out);
    print_range(out, h->a_start, h->a_count);
    fputs(" +", out);
    print_range(out, h->b_start, h->b_count);
    fputs(" @@", out);
}

typedef struct hunk_line {
    const diff_op *op;
    const char *bytes; /* the line, without its '\n' */
    size_t len;
    size_t offset;             /* of the line in its text (a for equal and delete lines, b for insert) */
    bool newline;              /* false on a last line that lacks one */
    size_t a_number, b_number; /* 1-based; 0 on the side without the line */
} hunk_line;

typedef void line_visitor(void *ctx, const hunk_line *line);

static void visit_op_lines(const diff_result *r, const diff_op *op, size_t from, size_t to, FILE *out,
                           line_visitor *visit, void *ctx)
{
    const diff_text *text = op->kind == DIFF_INSERT ? &r->b : &r->a;
    size_t first = op->kind == DIFF_INSERT ? op->b_line : op->a_line;
    for (size_t i = from; i < to && !ferror(out); i++) {
        size_t index = first + i, len = diff_line_len(text, index);
        hunk_line line = {.op = op, .bytes = diff_line_bytes(text, index), .offset = text->line_start[index]};
        line.newline = line.bytes[len - 1] == '\n';
        line.len = len - line.newline;
        line.a_number = op->kind == DIFF_INSERT ? 0 : op->a_line + i + 1;
        line.b_number = op->kind == DIFF_DELETE ? 0 : op->b_line + i + 1;
        visit(ctx, &line);
    }
}

/* Hands each line of h to visit, until a write to out fails. */
static void visit_hunk_lines(const diff_result *r, const hunk *h, FILE *out, line_visitor *visit, void *ctx)
{
    if (h->lead > 0) {
        const diff_op *before = &r->ops[h->first_op - 1];
        visit_op_lines(r, before, before->line_count - h->lead, before->line_count, out, visit, ctx);
    }
    for (size_t i = h->first_op; i <= h->last_op; i++)
        visit_op_lines(r, &r->ops[i], 0, r->ops[i].line_count, out, visit, ctx);
    if (h->trail > 0)
        visit_op_lines(r, &r->ops[h->last_op + 1], 0, h->trail, out, visit, ctx);
}

typedef void segment_visitor(void *ctx, const char *bytes, size_t len, bool changed);

/* Cuts a line of a refined op into common and changed segments. */
static void for_each_segment(const hunk_line *line, segment_visitor *visit, void *ctx)
{
    const diff_span *words = line->op->words;
    size_t lo = 0, hi = line->op->word_count;
    while (lo < hi) { /* the first word at or after the line's start */
        size_t mid = lo + (hi - lo) / 2;
        if (words[mid].offset < line->offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t at = line->offset, end = line->offset + line->len;
    const char *text = line->bytes - line->offset;
    for (size_t i = lo; i < line->op->word_count && words[i].offset < end; i++) {
        if (words[i].offset > at)
            visit(ctx, text + at, words[i].offset - at, false);
        visit(ctx, text + words[i].offset, words[i].len, true);
        at = words[i].offset + words[i].len;
    }
    if (at < end)
        visit(ctx, text + at, end - at, false);
}

static const char *op_name(diff_op_kind kind)
{
    return kind == DIFF_EQUAL ? "equal" : kind == DIFF_DELETE ? "delete" : "insert";
}

/* ---- UTF-8 ---------------------------------------------------------------------- */

static const char replacement_character[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Writes bytes as valid UTF-8: each well-formed sequence as it is, but a
 * one-byte one for which escape() gives a replacement; an invalid byte as
 * U+FFFD. The JSON and HTML renderers differ only in escape(). */
typedef const char *byte_escape(unsigned char c, char buf[8]);

static void write_text(FILE *out, const char *bytes, size_t len, byte_escape *escape)
{
    size_t plain = 0; /* bytes[plain, i) go out as they are */
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence((const unsigned char *)bytes + i, len - i, NULL);
        char buf[8];
        const char *replacement = NULL;
        if (n == 0)
            replacement = replacement_character, n = 1;
        else if (n == 1)
            replacement = escape((unsigned char)bytes[i], buf);
        if (replacement != NULL) {
            fwrite(bytes + plain, 1, i - plain, out);
            fputs(replacement, out);
            plain = i + n;
            if (ferror(out)) /* refused: the rest of a long line would be too */
                return;
        }
        i += n;
    }
    fwrite(bytes + plain, 1, len - plain, out);
}

typedef int stream_writer(const diff_result *r, unsigned context, const void *arg, FILE *out);

/* Closes the stream; returns its buffer, or NULL (freed) if a write failed. */
static char *close_stream(FILE *out, char **buffer)
{
    bool failed = ferror(out) != 0;
    failed |= fclose(out) != 0;
    if (failed) {
        free(*buffer);
        return NULL;
    }
    return *buffer;
}

/* What write() writes, in a malloc'd buffer (open_memstream). */
static char *render_to_memory(const diff_result *r, unsigned context, const void *arg, stream_writer *write,
                              size_t *len)
{
    char *buffer = NULL;
    FILE *out = open_memstream(&buffer, len);
    if (out == NULL)
        return NULL;
    write(r, context, arg, out);
    return close_stream(out, &buffer);
}

static int stream_status(FILE *out)
{
    return ferror(out) ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------------- */

/* Written as text, not built as a jansson tree: a diff of two long texts has
 * tens of thousands of segments, and an object per segment cost more than
 * the diff itself. */

/* The JSON escape of one ASCII byte, or NULL when it goes out as it is. */
static const char *json_escape(unsigned char c, char buf[8])
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\t': return "\\t";
    case '\r': return "\\r";
    default:
        if (c >= 0x20)
            return NULL;
        snprintf(buf, 8, "\\u%04x", c);
        return buf;
    }
}

static void json_text(FILE *out, const char *bytes, size_t len)
{
    fputc('"', out);
    write_text(out, bytes, len, json_escape);
    fputc('"', out);
}

typedef struct json_walk {
    FILE *out;
    const char *changed_op;
    bool first_line, first_segment;
} json_walk;

static void json_segment(void *ctx, const char *bytes, size_t len, bool changed)
{
    json_walk *w = ctx;
    fprintf(w->out, "%s{\"op\":\"%s\",\"text\":", w->first_segment ? "" : ",", changed ? w->changed_op : "equal");
    json_text(w->out, bytes, len);
    fputc('}', w->out);
    w->first_segment = false;
}

static void json_line(void *ctx, const hunk_line *line)
{
    json_walk *w = ctx;
    fprintf(w->out, "%s{\"op\":\"%s\",\"text\":", w->first_line ? "" : ",", op_name(line->op->kind));
    json_text(w->out, line->bytes, line->len);
    if (line->a_number != 0)
        fprintf(w->out, ",\"a\":%zu", line->a_number);
    if (line->b_number != 0)
        fprintf(w->out, ",\"b\":%zu", line->b_number);
    if (!line->newline)
        fputs(",\"no_newline\":true", w->out);
    if (line->op->refined) {
        w->changed_op = op_name(line->op->kind);
        w->first_segment = true;
        fputs(",\"words\":[", w->out);
        for_each_segment(line, json_segment, w);
        fputc(']', w->out);
    }
    fputc('}', w->out);
    w->first_line = false;
}

int diff_write_json_members(const diff_result *r, unsigned context, FILE *out)
{
    fprintf(out,
            "\"lines_added\":%zu,\"lines_removed\":%zu,\"fallback\":%s,\"words_incomplete\":%s,"
            "\"context\":%u,\"hunks\":[",
            r->lines_added, r->lines_removed, r->fallback ? "true" : "false", r->words_incomplete ? "true" : "false",
            context);
    json_walk w = {.out = out};
    hunk h;
    for (size_t cursor = 0, n = 0; !ferror(out) && next_hunk(r, context, &cursor, &h); n++) {
        fprintf(out, "%s{\"a_start\":%zu,\"a_count\":%zu,\"b_start\":%zu,\"b_count\":%zu,\"lines\":[", n ? "," : "",
                header_start(h.a_start, h.a_count), h.a_count, header_start(h.b_start, h.b_count), h.b_count);
        w.first_line = true;
        visit_hunk_lines(r, &h, out, json_line, &w);
        fputs("]}", out);
    }
    fputc(']', out);
    return stream_status(out);
}

static int json_document(const diff_result *r, unsigned context, const void *arg, FILE *out)
{
    (void)arg;
    fputc('{', out);
    diff_write_json_members(r, context, out);
    fputc('}', out);
    return stream_status(out);
}

char *diff_render_json_text(const diff_result *r, unsigned context, size_t *len)
{
    return render_to_memory(r, context, NULL, json_document, len);
}

json_t *diff_render_json(const diff_result *r, unsigned context)
{
    size_t len = 0;
    char *text = diff_render_json_text(r, context, &len);
    json_t *doc = text ? json_loadb(text, len, JSON_ALLOW_NUL, NULL) : NULL;
    free(text);
    return doc;
}

/* ---- unified text --------------------------------------------------------------- */

static const char no_newline_note[] = "\\ No newline at end of file";

static void unified_line(void *ctx, const hunk_line *line)
{
    FILE *out = ctx;
    static const char prefix[] = {[DIFF_EQUAL] = ' ', [DIFF_DELETE] = '-', [DIFF_INSERT] = '+'};
    fputc(prefix[line->op->kind], out);
    fwrite(line->bytes, 1, line->len, out);
    fputc('\n', out);
    if (!line->newline)
        fprintf(out, "%s\n", no_newline_note);
}

int diff_write_unified(const diff_result *r, unsigned context, const char *a_label, const char *b_label, FILE *out)
{
    bool labels_due = a_label != NULL && b_label != NULL; /* before the first hunk */
    hunk h;
    for (size_t cursor = 0; !ferror(out) && next_hunk(r, context, &cursor, &h);) {
        if (labels_due)
            fprintf(out, "--- %s\n+++ %s\n", a_label, b_label);
        labels_due = false;
        print_hunk_header(out, &h);
        fputc('\n', out);
        visit_hunk_lines(r, &h, out, unified_line, out);
    }
    return stream_status(out);
}

static int unified_document(const diff_result *r, unsigned context, const void *arg, FILE *out)
{
    const char *const *labels = arg;
    return diff_write_unified(r, context, labels[0], labels[1], out);
}

char *diff_render_unified(const diff_result *r, unsigned context, const char *a_label, const char *b_label, size_t *len)
{
    const char *labels[] = {a_label, b_label};
    return render_to_memory(r, context, labels, unified_document, len);
}

/* ---- HTML ------------------------------------------------------------------------- */

/* The HTML escape of one ASCII byte (NUL included), or NULL. */
static const char *html_escape(unsigned char c, char buf[8])
{
    (void)buf;
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    case '\0': return replacement_character;
    default: return NULL;
    }
}

typedef struct html_walk {
    FILE *out;
    const char *changed_tag; /* "del" or "ins" */
} html_walk;

static void html_segment(void *ctx, const char *bytes, size_t len, bool changed)
{
    html_walk *w = ctx;
    if (changed)
        fprintf(w->out, "<%s>", w->changed_tag);
    write_text(w->out, bytes, len, html_escape);
    if (changed)
        fprintf(w->out, "</%s>", w->changed_tag);
}

static void html_line_number(FILE *out, const char *side, size_t number)
{
    fprintf(out, "<td class=\"diff-ln-%s\">", side);
    if (number != 0)
        fprintf(out, "%zu", number);
    fputs("</td>", out);
}

static void html_line(void *ctx, const hunk_line *line)
{
    html_walk *w = ctx;
    fprintf(w->out, "<tr class=\"diff-%s\">", op_name(line->op->kind));
    html_line_number(w->out, "a", line->a_number);
    html_line_number(w->out, "b", line->b_number);
    fputs("<td class=\"diff-text\">", w->out);
    if (line->op->refined) {
        w->changed_tag = line->op->kind == DIFF_DELETE ? "del" : "ins";
        for_each_segment(line, html_segment, w);
    } else {
        write_text(w->out, line->bytes, line->len, html_escape);
    }
    fputs("</td></tr>\n", w->out);
    if (!line->newline)
        fprintf(w->out, "<tr class=\"diff-no-newline\"><td colspan=\"3\">%s</td></tr>\n", no_newline_note);
}

int diff_write_html(const diff_result *r, unsigned context, FILE *out)
{
    html_walk w = {.out = out};
    fprintf(out, "<table class=\"diff%s\">\n", r->fallback ? " diff-fallback" : "");
    hunk h;
    for (size_t cursor = 0; !ferror(out) && next_hunk(r, context, &cursor, &h);) {
        fputs("<tbody class=\"diff-hunk\">\n<tr class=\"diff-hunk-header\"><td colspan=\"3\">", out);
        print_hunk_header(out, &h);
        fputs("</td></tr>\n", out);
        visit_hunk_lines(r, &h, out, html_line, &w);
        fputs("</tbody>\n", out);
    }
    fputs("</table>\n", out);
    return stream_status(out);
}

static int html_document(const diff_result *r, unsigned context, const void *arg, FILE *out)
{
    (void)arg;
    return diff_write_html(r, context, out);
}

char *diff_render_html(const diff_result *r, unsigned context, size_t *len)
{
    return render_to_memory(r, context, NULL, html_document, len);
}

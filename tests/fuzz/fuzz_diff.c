/*
 * fuzz_diff.c — the diff engine (diff_compute in src/diff/diff.c: Myers on
 * lines, then on the words of replaced lines, under step budgets) and its
 * three renderers (src/diff/diff_render.c: JSON, unified, HTML), as
 * GET …/diff and the precomputing job use them.
 *
 * The first input byte is a mode: bits 0-1 pick the context (0, 1, 3 or
 * 10 lines); bit 2 runs with tiny budgets (so the fallback and the
 * unrefined replacements are reached), else with the server's defaults.
 * The rest is the two texts, split at the first NUL byte (the second text
 * may hold NULs). Checked on every result: the ops walk both texts from
 * start to end without a gap, an EQUAL op's lines are the same bytes on
 * both sides, the counts of added and removed lines are the ops' counts,
 * word spans lie inside their lines; the JSON rendering is valid JSON.
 */
#include "diff/diff.h"
#include "fuzz.h"

static const unsigned contexts[] = {0, 1, DIFF_DEFAULT_CONTEXT, 10};

static void ops_check(const diff_result *r)
{
    size_t a = 0, b = 0, added = 0, removed = 0;
    for (size_t i = 0; i < r->op_count; i++) {
        const diff_op *op = &r->ops[i];
        if (op->a_line != a || op->b_line != b || op->line_count == 0)
            fuzz_fail("the ops leave a gap or overlap");
        const diff_text *side = op->kind == DIFF_INSERT ? &r->b : &r->a;
        size_t first = op->kind == DIFF_INSERT ? b : a;
        if (first + op->line_count > side->line_count)
            fuzz_fail("an op runs past the end of its text");
        if (op->kind == DIFF_EQUAL) {
            if (b + op->line_count > r->b.line_count)
                fuzz_fail("an EQUAL op runs past the end of b");
            for (size_t k = 0; k < op->line_count; k++)
                if (diff_line_len(&r->a, a + k) != diff_line_len(&r->b, b + k) ||
                    memcmp(diff_line_bytes(&r->a, a + k), diff_line_bytes(&r->b, b + k), diff_line_len(&r->a, a + k)) !=
                        0)
                    fuzz_fail("an EQUAL op pairs different lines");
        }
        size_t start = side->line_start[first], end = side->line_start[first + op->line_count];
        for (size_t w = 0; op->refined && w < op->word_count; w++)
            if (op->words[w].offset < start || op->words[w].offset + op->words[w].len > end)
                fuzz_fail("a changed word lies outside its op's lines");
        if (op->kind != DIFF_INSERT)
            a += op->line_count;
        if (op->kind != DIFF_DELETE)
            b += op->line_count;
        added += op->kind == DIFF_INSERT ? op->line_count : 0;
        removed += op->kind == DIFF_DELETE ? op->line_count : 0;
    }
    if (a != r->a.line_count || b != r->b.line_count)
        fuzz_fail("the ops do not cover both texts");
    if (added != r->lines_added || removed != r->lines_removed)
        fuzz_fail("lines_added or lines_removed is not the ops' count");
}

static void renders_check(const diff_result *r, unsigned context)
{
    size_t len = 0;
    char *text = diff_render_json_text(r, context, &len);
    if (text != NULL) {
        json_t *doc = json_loadb(text, len, JSON_ALLOW_NUL, NULL); /* NUL escaped is JSON */
        if (doc == NULL)
            fuzz_fail("the JSON rendering is not JSON");
        json_decref(doc);
    }
    free(text);
    json_decref(diff_render_json(r, context));
    free(diff_render_unified(r, context, "a/v1", "b/v2", &len));
    free(diff_render_html(r, context, &len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    size_t a_len, b_len;
    const uint8_t *b = fuzz_split(data + 1, size - 1, '\0', &a_len, &b_len);
    diff_options opts = diff_options_default();
    if (mode & 4) {
        opts.max_steps = 64;
        opts.word_max_steps = 16;
        opts.word_max_line_bytes = 24;
        opts.word_max_region_bytes = 64;
    }
    /* the engine copies the texts (diff.h): the caller's buffers go at once */
    char *a_copy = malloc(a_len + 1), *b_copy = malloc(b_len + 1);
    if (a_copy == NULL || b_copy == NULL)
        abort();
    memcpy(a_copy, data + 1, a_len);
    memcpy(b_copy, b, b_len);
    diff_result *r = diff_compute(a_copy, a_len, b_copy, b_len, &opts);
    free(a_copy);
    free(b_copy);
    if (r == NULL)
        return 0;
    ops_check(r);
    renders_check(r, contexts[mode & 3]);
    diff_free(&r);
    return 0;
}

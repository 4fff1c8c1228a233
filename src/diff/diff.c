/*
 * diff.c — Myers' difference algorithm in linear space, on lines and then on
 * the words of replaced lines (see diff.h for what it computes).
 *
 * The core compares two arrays of integer ids. Lines and words are turned
 * into ids by interning: equal bytes, equal id (a hash table keyed by XXH3,
 * confirmed by memcmp, so a hash collision can cost time but never
 * correctness).
 *
 * The core (E. Myers, "An O(ND) Difference Algorithm and Its Variations",
 * 1986, section 4b). Edit graph: x indexes a, y indexes b; a diagonal k is
 * the set of points with x - y = k; a deletion moves right (x+1), an
 * insertion down (y+1), a match along a diagonal for free. Round d computes,
 * for every diagonal reachable with d edits, the furthest point a path with
 * d edits reaches on it ("furthest-reaching" x, or -1 when no such path stays
 * in the grid), from the neighbouring diagonals of round d-1, then follows
 * the diagonal while elements match (a "snake"). The same runs backwards
 * from the end at the same time, in reversed coordinates. The first round in
 * which a forward and a backward point meet on one diagonal finds the middle
 * of an optimal path, with D = 2d or 2d-1 edits in all; the point where that
 * round's snake ended is on an optimal path, so the problem splits there
 * into two independent halves of about D/2 edits each (recursion depth
 * O(log D)), for O((N+M)·D) time and O(N+M) space.
 *
 * Budget: every round first checks the steps spent so far; once they pass
 * the limit (or the deadline has passed), the pair of ranges being split is
 * marked "all deleted, all inserted", and so is every range still waiting
 * (after trimming its common prefix and suffix, which is linear). Work is so
 * bounded by the budget plus O(N+M).
 */
#include "diff/diff.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define CLOCK_CHECK_STEPS 16384 /* steps between two looks at the clock */

diff_options diff_options_default(void)
{
    return (diff_options){.max_steps = 10000000,
                          .max_time_us = 0,
                          .word_max_steps = 2000000,
                          .word_max_line_bytes = 16384,
                          .word_max_region_bytes = 65536};
}

/* ---- budget ----------------------------------------------------------------- */

typedef struct budget {
    uint64_t spent, limit;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
    uint64_t next_clock_check;
    bool exhausted;
} budget;

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool budget_exhausted(budget *b)
{
    if (b->spent > b->limit)
        b->exhausted = true;
    if (!b->exhausted && b->deadline_ns != 0 && b->spent >= b->next_clock_check) {
        b->next_clock_check = b->spent + CLOCK_CHECK_STEPS;
        b->exhausted = monotonic_ns() >= b->deadline_ns;
    }
    return b->exhausted;
}

/* ---- the Myers core ------------------------------------------------------- */

typedef struct myers {
    const uint32_t *a, *b;
    uint8_t *a_changed, *b_changed; /* out: 1 = deleted from a / inserted from b */
    ptrdiff_t *forward, *backward;  /* furthest x (or -1) per diagonal, centred on 0 */
    budget *budget;
    bool fell_back;
} myers;

typedef enum split_outcome { SPLIT_FOUND, SPLIT_NOTHING_COMMON, SPLIT_OVER_BUDGET } split_outcome;

/* Round d's lowest and highest diagonals of d's parity that meet the grid
 * (diagonals run from -m to n). */
static ptrdiff_t lowest_diagonal(ptrdiff_t d, ptrdiff_t m)
{
    return d <= m ? -d : -m + (d - m) % 2;
}
static ptrdiff_t highest_diagonal(ptrdiff_t d, ptrdiff_t n)
{
    return d <= n ? d : n - (d - n) % 2;
}

/* The furthest x on diagonal k with one more edit than v holds: a deletion
 * from diagonal k-1 or an insertion from k+1, whichever goes further without
 * leaving the n × m grid; -1 if neither can. */
static ptrdiff_t one_more_edit(const ptrdiff_t *v, ptrdiff_t k, ptrdiff_t n, ptrdiff_t m)
{
    ptrdiff_t by_deletion = v[k - 1] >= 0 && v[k - 1] < n ? v[k - 1] + 1 : -1;
    ptrdiff_t by_insertion = v[k + 1] >= 0 && v[k + 1] - (k + 1) < m ? v[k + 1] : -1;
    return by_deletion > by_insertion ? by_deletion : by_insertion;
}

/* Finds a point (x, y) on an optimal path through a[0,n) × b[0,m), strictly
 * between the corners. n, m >= 1, a[0] != b[0], a[n-1] != b[m-1]. The
 * backward search uses u = n - x, v = m - y and its diagonals are u - v. */
static split_outcome find_split(myers *my, const uint32_t *a, ptrdiff_t n, const uint32_t *b, ptrdiff_t m,
                                ptrdiff_t *split_x, ptrdiff_t *split_y)
{
    ptrdiff_t max_d = (n + m + 1) / 2, delta = n - m;
    bool odd = delta % 2 != 0;
    ptrdiff_t *fwd = my->forward + max_d + 1, *bwd = my->backward + max_d + 1;
    if (budget_exhausted(my->budget))
        return SPLIT_OVER_BUDGET;
    for (ptrdiff_t k = -max_d - 1; k <= max_d + 1; k++)
        fwd[k] = bwd[k] = -1;
    my->budget->spent += (uint64_t)max_d;

    for (ptrdiff_t d = 0; d < max_d; d++) {
        if (budget_exhausted(my->budget))
            return SPLIT_OVER_BUDGET;
        uint64_t steps = 0;
        for (ptrdiff_t k = lowest_diagonal(d, m); k <= highest_diagonal(d, n); k += 2) {
            ptrdiff_t x = d == 0 ? 0 : one_more_edit(fwd, k, n, m);
            if (x < 0) {
                fwd[k] = -1;
                continue;
            }
            ptrdiff_t y = x - k, x0 = x;
            while (x < n && y < m && a[x] == b[y])
                x++, y++;
            fwd[k] = x;
            steps += 1 + (uint64_t)(x - x0);
            ptrdiff_t k_back = delta - k; /* diagonal k seen from the end */
            if (odd && k_back >= -(d - 1) && k_back <= d - 1 && bwd[k_back] >= 0 && x + bwd[k_back] >= n) {
                *split_x = x, *split_y = y;
                return SPLIT_FOUND;
            }
        }
        for (ptrdiff_t k = lowest_diagonal(d, m); k <= highest_diagonal(d, n); k += 2) {
            ptrdiff_t u = d == 0 ? 0 : one_more_edit(bwd, k, n, m);
            if (u < 0) {
                bwd[k] = -1;
                continue;
            }
            ptrdiff_t v = u - k, u0 = u;
            while (u < n && v < m && a[n - 1 - u] == b[m - 1 - v])
                u++, v++;
            bwd[k] = u;
            steps += 1 + (uint64_t)(u - u0);
            ptrdiff_t k_front = delta - k;
            if (!odd && k_front >= -d && k_front <= d && fwd[k_front] >= 0 && fwd[k_front] + u >= n) {
                *split_x = n - u, *split_y = m - v;
                return SPLIT_FOUND;
            }
        }
        my->budget->spent += steps;
    }
    return SPLIT_NOTHING_COMMON; /* the paths meet only after n + m edits */
}

static void mark_changed(myers *my, size_t a_lo, size_t a_hi, size_t b_lo, size_t b_hi)
{
    memset(my->a_changed + a_lo, 1, a_hi - a_lo);
    memset(my->b_changed + b_lo, 1, b_hi - b_lo);
}

static void myers_compare(myers *my, size_t a_lo, size_t a_hi, size_t b_lo, size_t b_hi)
{
    size_t a_lo0 = a_lo, a_hi0 = a_hi;
    while (a_lo < a_hi && b_lo < b_hi && my->a[a_lo] == my->b[b_lo])
        a_lo++, b_lo++;
    while (a_lo < a_hi && b_lo < b_hi && my->a[a_hi - 1] == my->b[b_hi - 1])
        a_hi--, b_hi--;
    my->budget->spent += (a_lo - a_lo0) + (a_hi0 - a_hi);
    if (a_lo == a_hi || b_lo == b_hi) {
        mark_changed(my, a_lo, a_hi, b_lo, b_hi);
        return;
    }
    ptrdiff_t x, y;
    switch (find_split(my, my->a + a_lo, (ptrdiff_t)(a_hi - a_lo), my->b + b_lo, (ptrdiff_t)(b_hi - b_lo), &x, &y)) {
    case SPLIT_FOUND:
        myers_compare(my, a_lo, a_lo + (size_t)x, b_lo, b_lo + (size_t)y);
        myers_compare(my, a_lo + (size_t)x, a_hi, b_lo + (size_t)y, b_hi);
        return;
    case SPLIT_OVER_BUDGET:
        my->fell_back = true;
        /* fall through */
    case SPLIT_NOTHING_COMMON: mark_changed(my, a_lo, a_hi, b_lo, b_hi); return;
    }
}

typedef enum myers_outcome { MYERS_MINIMAL, MYERS_FELL_BACK, MYERS_NO_MEMORY } myers_outcome;

/* Sets a_changed[i] (b_changed[j]) to 1 for the elements an edit script
 * from a to b deletes (inserts), 0 for the rest, which match in order. */
static myers_outcome myers_diff(const uint32_t *a, size_t n, const uint32_t *b, size_t m, budget *bud,
                                uint8_t *a_changed, uint8_t *b_changed)
{
    size_t diagonals = 2 * ((n + m + 1) / 2) + 3;
    myers my = {.a = a, .b = b, .a_changed = a_changed, .b_changed = b_changed, .budget = bud};
    my.forward = malloc(diagonals * sizeof(ptrdiff_t));
    my.backward = malloc(diagonals * sizeof(ptrdiff_t));
    if (my.forward == NULL || my.backward == NULL) {
        free(my.forward);
        free(my.backward);
        return MYERS_NO_MEMORY;
    }
    memset(a_changed, 0, n);
    memset(b_changed, 0, m);
    myers_compare(&my, 0, n, 0, m);
    free(my.forward);
    free(my.backward);
    return my.fell_back ? MYERS_FELL_BACK : MYERS_MINIMAL;
}

/* ---- interning: equal bytes, equal id --------------------------------------- */

/* Slots are 8 bytes, so the table of a large text stays as cache-friendly
 * as it can; the bytes behind an id are looked at only when hashes match. */
typedef struct intern_slot {
    uint32_t hash, id_plus_one; /* id_plus_one 0: empty */
} intern_slot;

typedef struct interner {
    intern_slot *slots;
    size_t mask;
    const char **id_bytes; /* per id: the bytes it stands for */
    size_t *id_len;
    uint32_t next_id;
} interner;

static bool interner_init(interner *t, size_t pieces)
{
    size_t capacity = 16;
    while (capacity < pieces + pieces / 2)
        capacity *= 2;
    t->slots = calloc(capacity, sizeof(*t->slots));
    t->mask = capacity - 1;
    t->id_bytes = malloc((pieces + 1) * sizeof(*t->id_bytes));
    t->id_len = malloc((pieces + 1) * sizeof(*t->id_len));
    t->next_id = 0;
    return t->slots != NULL && t->id_bytes != NULL && t->id_len != NULL;
}

static void interner_free(interner *t)
{
    free(t->slots);
    free(t->id_bytes);
    free(t->id_len);
}

static uint32_t intern(interner *t, const char *bytes, size_t len)
{
    uint32_t hash = (uint32_t)XXH3_64bits(bytes, len);
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        intern_slot *s = &t->slots[i];
        if (s->id_plus_one == 0) {
            uint32_t id = t->next_id++;
            *s = (intern_slot){.hash = hash, .id_plus_one = id + 1};
            t->id_bytes[id] = bytes, t->id_len[id] = len;
            return id;
        }
        uint32_t id = s->id_plus_one - 1;
        if (s->hash == hash && t->id_len[id] == len && memcmp(t->id_bytes[id], bytes, len) == 0)
            return id;
    }
}

/* ids[i] for the pieces base[bounds[i], bounds[i+1]) of both sequences. */
static bool intern_pieces(const char *a, const size_t *a_bounds, size_t a_count, const char *b, const size_t *b_bounds,
                          size_t b_count, uint32_t *a_ids, uint32_t *b_ids)
{
    interner t;
    bool ok = interner_init(&t, a_count + b_count);
    for (size_t i = 0; ok && i < a_count; i++)
        a_ids[i] = intern(&t, a + a_bounds[i], a_bounds[i + 1] - a_bounds[i]);
    for (size_t i = 0; ok && i < b_count; i++)
        b_ids[i] = intern(&t, b + b_bounds[i], b_bounds[i + 1] - b_bounds[i]);
    interner_free(&t);
    return ok;
}

/* ---- splitting -------------------------------------------------------------- */

/* Fills bounds with the piece boundaries of text[0, len) (bounds[0] = 0,
 * bounds[count] = len) and returns count; bounds needs len + 1 entries. */
static size_t split_lines(const char *text, size_t len, size_t *bounds)
{
    size_t count = 0;
    bounds[0] = 0;
    for (const char *p = text, *end = text + len; p < end; count++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl != NULL ? nl + 1 : end;
        bounds[count + 1] = (size_t)(p - text);
    }
    return count;
}

static bool is_word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_blank_byte(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static size_t split_words(const char *text, size_t len, size_t *bounds)
{
    size_t count = 0, i = 0;
    bounds[0] = 0;
    while (i < len) {
        unsigned char first = (unsigned char)text[i++];
        if (is_word_byte(first))
            while (i < len && is_word_byte((unsigned char)text[i]))
                i++;
        else if (is_blank_byte(first))
            while (i < len && is_blank_byte((unsigned char)text[i]))
                i++;
        bounds[++count] = i;
    }
    return count;
}

/* ---- the result ------------------------------------------------------------- */

/* The result with the storage it owns (the public part first). */
typedef struct diff_storage {
    diff_result result;
    char *bytes; /* both texts */
    size_t *line_starts;
    diff_op *ops;
    diff_span *spans;
    size_t span_count, span_capacity;
} diff_storage;

void diff_free(diff_result **r)
{
    if (*r == NULL)
        return;
    diff_storage *s = (diff_storage *)*r;
    free(s->bytes);
    free(s->line_starts);
    free(s->ops);
    free(s->spans);
    free(s);
    *r = NULL;
}

static bool push_span(diff_storage *s, size_t offset, size_t len)
{
    if (s->span_count == s->span_capacity) {
        size_t capacity = s->span_capacity ? 2 * s->span_capacity : 64;
        diff_span *grown = realloc(s->spans, capacity * sizeof(*grown));
        if (grown == NULL)
            return false;
        s->spans = grown, s->span_capacity = capacity;
    }
    s->spans[s->span_count++] = (diff_span){offset, len};
    return true;
}

/* Appends the changed words among text[base + bounds[i], base + bounds[i+1])
 * as spans, neighbours merged, newlines left out; *pushed says how many. */
static bool push_changed_words(diff_storage *s, const char *text, size_t base, const size_t *bounds, size_t count,
                               const uint8_t *changed, size_t *pushed)
{
    size_t first = s->span_count;
    for (size_t i = 0; i < count; i++) {
        size_t start = base + bounds[i], end = base + bounds[i + 1];
        if (!changed[i] || text[start] == '\n')
            continue;
        diff_span *last = s->span_count > first ? &s->spans[s->span_count - 1] : NULL;
        if (last != NULL && last->offset + last->len == start)
            last->len = end - last->offset;
        else if (!push_span(s, start, end - start))
            return false;
    }
    *pushed = s->span_count - first;
    return true;
}

static bool lines_fit(const diff_text *t, size_t first, size_t count, size_t max_line_bytes)
{
    for (size_t i = first; i < first + count; i++)
        if (diff_line_len(t, i) > max_line_bytes)
            return false;
    return true;
}

/* Refines the replacement del + ins word by word, appending its spans (the
 * op's words pointer is set once every span is in place); leaves it
 * unrefined when it is too large or the word budget runs out. False when
 * out of memory. */
static bool refine_replacement(diff_storage *s, diff_op *del, diff_op *ins, const diff_options *opts, budget *bud)
{
    diff_result *r = &s->result;
    size_t a_from = r->a.line_start[del->a_line], a_len = r->a.line_start[del->a_line + del->line_count] - a_from;
    size_t b_from = r->b.line_start[ins->b_line], b_len = r->b.line_start[ins->b_line + ins->line_count] - b_from;
    if (a_len + b_len > opts->word_max_region_bytes ||
        !lines_fit(&r->a, del->a_line, del->line_count, opts->word_max_line_bytes) ||
        !lines_fit(&r->b, ins->b_line, ins->line_count, opts->word_max_line_bytes)) {
        r->words_incomplete = true;
        return true;
    }
    size_t *a_bounds = malloc((a_len + 1) * sizeof(size_t)), *b_bounds = malloc((b_len + 1) * sizeof(size_t));
    uint32_t *ids = malloc((a_len + b_len) * sizeof(uint32_t));
    uint8_t *changed = malloc(a_len + b_len);
    myers_outcome outcome = MYERS_NO_MEMORY;
    size_t na = 0, nb = 0;
    if (a_bounds != NULL && b_bounds != NULL && ids != NULL && changed != NULL) {
        const char *a = r->a.bytes + a_from, *b = r->b.bytes + b_from;
        na = split_words(a, a_len, a_bounds);
        nb = split_words(b, b_len, b_bounds);
        if (intern_pieces(a, a_bounds, na, b, b_bounds, nb, ids, ids + na))
            outcome = myers_diff(ids, na, ids + na, nb, bud, changed, changed + na);
    }
    bool ok = outcome != MYERS_NO_MEMORY;
    if (outcome == MYERS_FELL_BACK)
        r->words_incomplete = true;
    if (outcome == MYERS_MINIMAL) {
        ok = push_changed_words(s, r->a.bytes, a_from, a_bounds, na, changed, &del->word_count) &&
             push_changed_words(s, r->b.bytes, b_from, b_bounds, nb, changed + na, &ins->word_count);
        del->refined = ins->refined = ok;
    }
    free(a_bounds);
    free(b_bounds);
    free(ids);
    free(changed);
    return ok;
}

static size_t count_lines(const char *text, size_t len)
{
    size_t count = 0;
    for (const char *p = text, *end = text + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        count++;
    return count + (len > 0 && text[len - 1] != '\n');
}

/* Turns the changed marks into runs; ops needs room for na + nb runs. */
static size_t build_ops(const uint8_t *a_changed, size_t na, const uint8_t *b_changed, size_t nb, diff_op *ops)
{
    size_t count = 0, i = 0, j = 0;
    while (i < na || j < nb) {
        diff_op op = {.a_line = i, .b_line = j};
        if (i < na && a_changed[i]) {
            op.kind = DIFF_DELETE;
            while (i < na && a_changed[i])
                i++;
            op.line_count = i - op.a_line;
        } else if (j < nb && b_changed[j]) {
            op.kind = DIFF_INSERT;
            while (j < nb && b_changed[j])
                j++;
            op.line_count = j - op.b_line;
        } else {
            op.kind = DIFF_EQUAL;
            while (i < na && j < nb && !a_changed[i] && !b_changed[j])
                i++, j++;
            op.line_count = i - op.a_line;
            assert(op.line_count > 0); /* every unchanged line of a has its partner in b */
        }
        ops[count++] = op;
    }
    return count;
}

/* Copies both texts and splits them into lines. */
static bool load_texts(diff_storage *s, const void *a, size_t a_len, const void *b, size_t b_len)
{
    size_t na = count_lines(a, a_len), nb = count_lines(b, b_len);
    s->bytes = malloc(a_len + b_len + 1);
    s->line_starts = malloc((na + nb + 2) * sizeof(size_t));
    if (s->bytes == NULL || s->line_starts == NULL)
        return false;
    memcpy(s->bytes, a, a_len);
    memcpy(s->bytes + a_len, b, b_len);
    diff_result *r = &s->result;
    r->a = (diff_text){.bytes = s->bytes, .len = a_len, .line_start = s->line_starts};
    r->a.line_count = split_lines(s->bytes, a_len, s->line_starts);
    r->b = (diff_text){.bytes = s->bytes + a_len, .len = b_len, .line_start = s->line_starts + na + 1};
    r->b.line_count = split_lines(s->bytes + a_len, b_len, s->line_starts + na + 1);
    return true;
}

/* The line diff: ops, counts and the fallback flag. */
static bool diff_lines(diff_storage *s, budget *bud)
{
    diff_result *r = &s->result;
    size_t na = r->a.line_count, nb = r->b.line_count;
    uint32_t *ids = malloc((na + nb + 1) * sizeof(uint32_t));
    uint8_t *changed = malloc(na + nb + 1);
    s->ops = malloc((na + nb + 1) * sizeof(diff_op));
    myers_outcome outcome = MYERS_NO_MEMORY;
    if (ids != NULL && changed != NULL && s->ops != NULL &&
        intern_pieces(r->a.bytes, r->a.line_start, na, r->b.bytes, r->b.line_start, nb, ids, ids + na))
        outcome = myers_diff(ids, na, ids + na, nb, bud, changed, changed + na);
    if (outcome != MYERS_NO_MEMORY) {
        r->fallback = outcome == MYERS_FELL_BACK;
        r->op_count = build_ops(changed, na, changed + na, nb, s->ops);
        r->ops = s->ops;
    }
    free(ids);
    free(changed);
    return outcome != MYERS_NO_MEMORY;
}

diff_result *diff_compute(const void *a, size_t a_len, const void *b, size_t b_len, const diff_options *opts)
{
    diff_options defaults = diff_options_default();
    if (opts == NULL)
        opts = &defaults;
    if (a_len > UINT32_MAX || b_len > UINT32_MAX - a_len)
        return NULL;                                /* ids and interned lengths are 32-bit */
    a = a_len > 0 ? a : "", b = b_len > 0 ? b : ""; /* no arithmetic on a NULL pointer, even of 0 */
    uint64_t deadline_ns = 0;
    if (opts->max_time_us != 0 && opts->max_time_us < UINT64_MAX / 2000) /* else: no limit in practice */
        deadline_ns = monotonic_ns() + opts->max_time_us * 1000;
    budget line_budget = {.limit = opts->max_steps, .deadline_ns = deadline_ns};
    budget word_budget = {.limit = opts->word_max_steps, .deadline_ns = deadline_ns};

    diff_storage *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    diff_result *r = &s->result;
    if (!load_texts(s, a, a_len, b, b_len) || !diff_lines(s, &line_budget))
        goto fail;
    for (size_t i = 0; i < r->op_count; i++) {
        diff_op *op = &s->ops[i];
        if (op->kind == DIFF_DELETE)
            r->lines_removed += op->line_count;
        if (op->kind == DIFF_INSERT)
            r->lines_added += op->line_count;
        if (op->kind == DIFF_INSERT && i > 0 && op[-1].kind == DIFF_DELETE &&
            !refine_replacement(s, &op[-1], op, opts, &word_budget))
            goto fail;
    }
    /* spans were appended in op order; a refined op may have none (its
     * only change a newline), and then spans may still be NULL */
    for (size_t i = 0, next_span = 0; i < r->op_count; i++) {
        if (s->ops[i].refined && s->ops[i].word_count > 0) {
            s->ops[i].words = s->spans + next_span;
            next_span += s->ops[i].word_count;
        }
    }
    return r;
fail:
    diff_free(&r);
    return NULL;
}

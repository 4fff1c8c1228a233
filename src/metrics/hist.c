/*
 * hist.c — the log-linear histogram (see hist.h for the layout).
 *
 * Index of a value v ≥ 256 with its highest bit k (8 ≤ k < 27): the 7 bits
 * below the highest one pick the sub-bucket, so
 *     index = 256 + (k − 8)·128 + (v >> (k − 7)) − 128,
 * one count-leading-zeros and two shifts. Reading walks the 2,689 counts;
 * that is the reader's cost, paid a few times a minute by a scrape.
 */
#include "metrics/hist.h"

#include <string.h>

/* The writer's bump and the reader's look: relaxed, so plain moves. */
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

size_t hist_index(uint64_t value)
{
    if (value < HIST_EXACT)
        return (size_t)value;
    if (value >= HIST_LIMIT)
        return HIST_OVERFLOW;
    unsigned k = 63u - (unsigned)__builtin_clzll(value);
    return HIST_EXACT + (size_t)(k - HIST_SUB_BITS - 1) * HIST_SUB_COUNT + (size_t)(value >> (k - HIST_SUB_BITS)) -
           HIST_SUB_COUNT;
}

/* How many values a bucket holds: 1 in the exact range, 2^(k−7) above. */
static uint64_t bucket_width(size_t index)
{
    return index < HIST_EXACT ? 1 : UINT64_C(1) << (1 + (index - HIST_EXACT) / HIST_SUB_COUNT);
}

uint64_t hist_bucket_low(size_t index)
{
    if (index < HIST_EXACT)
        return index;
    if (index >= HIST_OVERFLOW)
        return HIST_LIMIT;
    return (HIST_SUB_COUNT + (index - HIST_EXACT) % HIST_SUB_COUNT) * bucket_width(index);
}

uint64_t hist_bucket_high(size_t index)
{
    return index >= HIST_OVERFLOW ? UINT64_MAX : hist_bucket_low(index) + bucket_width(index) - 1;
}

void hist_reset(hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_record(hist *h, uint64_t value)
{
    uint64_t *slot = &h->counts[hist_index(value)];
    STORE(slot, LOAD(slot) + 1);
    STORE(&h->total, LOAD(&h->total) + 1);
    STORE(&h->sum, LOAD(&h->sum) + value);
    if (value > LOAD(&h->max))
        STORE(&h->max, value);
}

void hist_merge(hist *into, const hist *from)
{
    /* total is the sum of the counts read, not from->total, so a merged
     * histogram is consistent even when its writer ran meanwhile */
    uint64_t total = 0;
    for (size_t i = 0; i <= HIST_OVERFLOW; i++) {
        uint64_t n = LOAD(&from->counts[i]);
        into->counts[i] += n;
        total += n;
    }
    into->total += total;
    into->sum += LOAD(&from->sum);
    uint64_t max = LOAD(&from->max);
    if (max > into->max)
        into->max = max;
}

void hist_diff(hist *out, const hist *now, const hist *before)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= HIST_OVERFLOW; i++) {
        out->counts[i] = now->counts[i] >= before->counts[i] ? now->counts[i] - before->counts[i] : 0;
        total += out->counts[i];
    }
    out->total = total;
    out->sum = now->sum >= before->sum ? now->sum - before->sum : 0;
    out->max = now->max;
}

uint64_t hist_quantile(const hist *h, double q)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= HIST_OVERFLOW; i++)
        total += h->counts[i];
    if (total == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        q = 0;
    if (q > 1)
        q = 1;
    double wanted = q * (double)total;
    uint64_t rank = (uint64_t)wanted;
    if ((double)rank < wanted)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i <= HIST_OVERFLOW; i++) {
        seen += h->counts[i];
        if (seen < rank)
            continue;
        if (i == HIST_OVERFLOW)
            return h->max;
        uint64_t low = hist_bucket_low(i), mid = low + (hist_bucket_high(i) - low) / 2;
        return mid > h->max && h->max >= low ? h->max : mid;
    }
    return h->max;
}

uint64_t hist_count_le(const hist *h, uint64_t value)
{
    uint64_t n = 0;
    for (size_t i = 0; i < HIST_OVERFLOW && hist_bucket_high(i) <= value; i++)
        n += h->counts[i];
    return n;
}

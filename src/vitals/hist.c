/*
 * hist.c — the sparse log-linear histogram behind the Web Vitals
 * percentiles (p50/p75/p95 per metric, and per page).
 *
 * Bucketing (HDR-style): a value below 128 is its own bucket. Above, with
 * m the position of its highest set bit, the value is shifted right by
 * s = m − 6 so that 64 ≤ v >> s < 128; the bucket is (s, v >> s). Each
 * bucket spans 2^s values starting at a value ≥ 64·2^s, so its width is
 * at most 1/64 of its values and its midpoint within 1/128 of any of
 * them: a percentile read back is within 0.8 % of the true sample.
 *
 * Storage: many pages are seen a handful of times, so a page's histogram
 * keeps only the buckets it uses, as two sorted parallel arrays (index,
 * count) found by binary search and grown by doubling. A histogram never
 * holds more than VITALS_HIST_BUCKETS pairs (8 KB), and vitals.c bounds
 * the sum over all pages. Not thread-safe: vitals.c holds its lock.
 */
#include <stdlib.h>
#include <string.h>

#include "vitals/vitals_internal.h"

#define SUB_EXACT 128 /* values 0..127 are exact buckets */
#define SUB_HALF 64   /* buckets per power of two above */

unsigned vitals_hist_bucket(uint64_t value)
{
    if (value > VITALS_HIST_VALUE_MAX)
        value = VITALS_HIST_VALUE_MAX;
    if (value < SUB_EXACT)
        return (unsigned)value;
    unsigned msb = 63u - (unsigned)__builtin_clzll(value);
    unsigned shift = msb - 6;
    return SUB_EXACT + (shift - 1) * SUB_HALF + (unsigned)((value >> shift) - SUB_HALF);
}

double vitals_hist_midpoint(unsigned bucket)
{
    if (bucket < SUB_EXACT)
        return (double)bucket;
    unsigned shift = (bucket - SUB_EXACT) / SUB_HALF + 1;
    uint64_t low = (uint64_t)((bucket - SUB_EXACT) % SUB_HALF + SUB_HALF) << shift;
    uint64_t width = UINT64_C(1) << shift;
    return (double)low + (double)(width - 1) / 2.0;
}

/* The position of bucket in h->index, or where it would be inserted. */
static uint32_t find_slot(const vitals_hist *h, uint16_t bucket)
{
    uint32_t lo = 0, hi = h->used;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->index[mid] < bucket)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int grow(vitals_hist *h)
{
    uint32_t capacity = h->capacity == 0 ? 4 : h->capacity * 2;
    if (capacity > VITALS_HIST_BUCKETS)
        capacity = VITALS_HIST_BUCKETS;
    uint16_t *index = realloc(h->index, capacity * sizeof(*index));
    if (index == NULL)
        return -1;
    h->index = index;
    uint32_t *count = realloc(h->count, capacity * sizeof(*count));
    if (count == NULL)
        return -1; /* index is larger than needed; capacity unchanged */
    h->count = count;
    h->capacity = capacity;
    return 0;
}

int vitals_hist_add(vitals_hist *h, uint64_t value)
{
    if (value > VITALS_HIST_VALUE_MAX)
        value = VITALS_HIST_VALUE_MAX;
    uint16_t bucket = (uint16_t)vitals_hist_bucket(value);
    uint32_t at = find_slot(h, bucket);
    if (at == h->used || h->index[at] != bucket) {
        if (h->used == h->capacity && grow(h) != 0)
            return -1;
        memmove(h->index + at + 1, h->index + at, (h->used - at) * sizeof(*h->index));
        memmove(h->count + at + 1, h->count + at, (h->used - at) * sizeof(*h->count));
        h->index[at] = bucket;
        h->count[at] = 0;
        h->used++;
    }
    if (h->count[at] == UINT32_MAX)
        return 0; /* saturated: four billion samples of one bucket */
    h->count[at]++;
    if (h->total == 0 || value < h->min)
        h->min = value;
    if (h->total == 0 || value > h->max)
        h->max = value;
    h->total++;
    h->sum += (double)value;
    return 0;
}

double vitals_hist_quantile(const vitals_hist *h, double q)
{
    if (h->total == 0)
        return 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if ((double)rank < q * (double)h->total)
        rank++; /* ceil */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    double mid = vitals_hist_midpoint(h->index[h->used - 1]);
    for (uint32_t i = 0; i < h->used; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            mid = vitals_hist_midpoint(h->index[i]);
            break;
        }
    }
    return mid < (double)h->min ? (double)h->min : mid > (double)h->max ? (double)h->max : mid;
}

uint64_t vitals_hist_count_le(const vitals_hist *h, double bound)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < h->used && vitals_hist_midpoint(h->index[i]) <= bound; i++)
        n += h->count[i];
    return n;
}

size_t vitals_hist_bytes(const vitals_hist *h)
{
    return (size_t)h->capacity * (sizeof(*h->index) + sizeof(*h->count));
}

void vitals_hist_free(vitals_hist *h)
{
    free(h->index);
    free(h->count);
    memset(h, 0, sizeof(*h));
}

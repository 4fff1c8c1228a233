/*
 * vitals_internal.h — the parts of src/vitals that vitals.c composes and
 * the unit tests reach: the sparse histogram (hist.c); the per-client
 * rate limiter is core/limiter.h. Not for other folders: their contract
 * is vitals.h.
 */
#ifndef STRATA_VITALS_INTERNAL_H
#define STRATA_VITALS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- a sparse log-linear histogram (hist.c) ------------------------------ */

/* Values are non-negative integers in the metric's fixed unit (µs, or
 * 1e-5 of a CLS score). 0..127 are exact; above, each power of two is
 * split into 64 buckets, so a bucket's midpoint is within 1/128 (0.8 %) of
 * any value in it. Values above VITALS_HIST_VALUE_MAX are clamped. */
#define VITALS_HIST_VALUE_MAX ((UINT64_C(1) << 26) - 1)
#define VITALS_HIST_BUCKETS 1344 /* indices 0..1343 cover 0..2^26-1 */

/* Only the buckets in use are stored (sorted index/count pairs, grown by
 * doubling): a page seen a few times costs a few dozen bytes, and the
 * worst case is bounded by VITALS_HIST_BUCKETS pairs. Zeroed = empty. */
typedef struct vitals_hist {
    uint16_t *index;
    uint32_t *count;
    uint32_t used, capacity;
    uint64_t total;
    uint64_t min, max; /* of the values recorded (valid when total > 0) */
    double sum;        /* of the values recorded, in units */
} vitals_hist;

/* 0, or -1 when out of memory (nothing recorded). */
int vitals_hist_add(vitals_hist *h, uint64_t value);
/* The nearest-rank q-quantile (0 < q ≤ 1) as its bucket's midpoint, kept
 * within the smallest and largest value recorded, in units; 0 when empty. */
double vitals_hist_quantile(const vitals_hist *h, double q);
/* How many recorded values are ≤ bound (cumulative, by bucket midpoint). */
uint64_t vitals_hist_count_le(const vitals_hist *h, double bound);
/* Heap bytes held. */
size_t vitals_hist_bytes(const vitals_hist *h);
void vitals_hist_free(vitals_hist *h);
/* The bucket of a value, and a bucket's midpoint (exposed for tests). */
unsigned vitals_hist_bucket(uint64_t value);
double vitals_hist_midpoint(unsigned bucket);

/* Buckets of the per-client beacon limiter (core/limiter.h). */
#define VITALS_LIMITER_SLOTS 4096

#endif

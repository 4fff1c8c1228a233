/*
 * hist.h — a log-linear latency histogram (HDR-style) for microsecond values.
 *
 * Values 0..255 µs have a bucket each (exact). Above, every power of two
 * [2^k, 2^(k+1)) is cut into 128 equal sub-buckets, so a bucket is at most
 * 1/128 of its lower bound wide: reporting its midpoint is within 1/256
 * (0.4 %) of any value in it. The range ends at 2^27 µs (134 s); larger
 * values go to one overflow bucket, reported as the largest value seen.
 * 2,689 counters, 21 KB.
 *
 * One writer, any readers. A histogram is written by one thread only (the
 * caller keeps one per thread and merges them on read), so recording is a
 * few plain loads and stores: counters are bumped with a relaxed atomic
 * load and store (ordinary moves on x86-64 and arm64, no locked
 * instruction), which keeps a reader on another thread free of data races.
 * A reader may see a count a few records behind; never a torn one.
 */
#ifndef STRATA_METRICS_HIST_H
#define STRATA_METRICS_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7 /* 128 sub-buckets per power of two */
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_EXACT (2 * HIST_SUB_COUNT) /* 0..255: one bucket per value */
#define HIST_MAX_BITS 27                /* values below 2^27 µs are bucketed */
#define HIST_LIMIT (UINT64_C(1) << HIST_MAX_BITS)
#define HIST_BUCKETS (HIST_EXACT + (HIST_MAX_BITS - HIST_SUB_BITS - 1) * HIST_SUB_COUNT)
#define HIST_OVERFLOW HIST_BUCKETS /* the index of the overflow bucket */

typedef struct hist {
    uint64_t counts[HIST_BUCKETS + 1];
    uint64_t total; /* records */
    uint64_t sum;   /* of the values, µs */
    uint64_t max;   /* the largest value recorded */
} hist;

/* The bucket of a value, and the values a bucket holds (inclusive). */
size_t hist_index(uint64_t value);
uint64_t hist_bucket_low(size_t index);
uint64_t hist_bucket_high(size_t index); /* UINT64_MAX for the overflow bucket */

void hist_reset(hist *h);
/* The single writer's record. */
void hist_record(hist *h, uint64_t value);
/* Adds `from` (possibly being written by its own thread) into `into`
 * (the reader's private copy). */
void hist_merge(hist *into, const hist *from);
/* out = now − before, for a window between two merged snapshots of the same
 * histograms (max is now's). */
void hist_diff(hist *out, const hist *now, const hist *before);

/* The value at quantile q (0..1): the smallest recorded value v with at
 * least ceil(q·total) records ≤ v, within 1/256; 0 when empty. */
uint64_t hist_quantile(const hist *h, double q);
/* Records certainly ≤ value: whole buckets whose highest value is ≤ value
 * (a bucket straddling it counts above; off by at most one bucket width). */
uint64_t hist_count_le(const hist *h, uint64_t value);

#endif

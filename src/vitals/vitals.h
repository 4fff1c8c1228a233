/*
 * vitals.h — browser Core Web Vitals: the public beacon endpoint and the
 * percentiles it keeps (docs/web-vitals.md).
 *
 * Pages that embed /vitals.js send LCP, INP, CLS, FCP and TTFB to
 * POST /api/performance/metrics. vitals_beacon validates and bounds each
 * beacon (size, rate per client, value ranges, a recent-id set against
 * repeats) and records the values in log-linear histograms per metric,
 * for all pages together and for each of the VITALS_PAGES_MAX pages seen
 * most recently. Readers (the JSON summary, the dashboard, /metrics,
 * budgets) take percentiles with vitals_stats or vitals_summary_json.
 *
 * Every function is thread-safe; the state is process-wide and lives
 * until vitals_reset.
 */
#ifndef STRATA_VITALS_H
#define STRATA_VITALS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"

typedef enum vitals_metric {
    VITALS_LCP = 0,
    VITALS_INP,
    VITALS_CLS,
    VITALS_FCP,
    VITALS_TTFB,
    VITALS_METRIC_COUNT
} vitals_metric;

/* Limits of the beacon endpoint. */
#define VITALS_BODY_MAX 8192     /* bytes; more is 413 */
#define VITALS_BATCH_MAX 20      /* metrics in one beacon; more is 422 */
#define VITALS_RATE_PER_S 30.0   /* metrics per second per client */
#define VITALS_BURST 60.0        /* … with bursts up to */
#define VITALS_PAGES_MAX 500     /* pages kept; the least recent is dropped */
#define VITALS_PAGE_MAX 256      /* bytes of a page path; longer is cut */
#define VITALS_RECENT_IDS 16384  /* ids remembered at least (dedupe) */
#define VITALS_RECENT_SAMPLES 20 /* latest samples shown, with request ids */

/* "LCP"…; NULL when out of range. */
const char *vitals_metric_name(vitals_metric m);
/* "ms", or "" for CLS (a unitless score). */
const char *vitals_metric_unit(vitals_metric m);
/* Google's thresholds: p75 ≤ good is "good", > poor is "poor". */
double vitals_threshold_good(vitals_metric m);
double vitals_threshold_poor(vitals_metric m);
/* "good" | "needs-improvement" | "poor" for a value of metric m. */
const char *vitals_rating(vitals_metric m, double value);

/* The beacon handler (a loop handler: it needs no database): 204, or a
 * problem (413, 415, 400, 422, 429 with Retry-After). */
bool vitals_beacon(const http_request *req, http_response *res);

/* One metric's distribution over all pages, in its unit (ms, or CLS). */
typedef struct vitals_stats {
    uint64_t count;
    double sum;
    double p50, p75, p95; /* 0 when count is 0 */
} vitals_stats;

void vitals_stats_get(vitals_metric m, vitals_stats *out);
/* How many values of m are ≤ each of n bounds (ascending, in the metric's
 * unit), cumulative, for a Prometheus histogram. */
void vitals_count_le(vitals_metric m, const double *bounds, size_t n, uint64_t *counts);

/* What the endpoint has done since start. */
typedef struct vitals_counters {
    uint64_t accepted;     /* metrics recorded */
    uint64_t duplicates;   /* metrics whose id was seen already (ignored) */
    uint64_t rejected;     /* beacons refused as invalid (4xx but 429) */
    uint64_t rate_limited; /* beacons refused with 429 */
    uint64_t pages;        /* pages tracked now */
    uint64_t pages_evicted;
} vitals_counters;

void vitals_counters_get(vitals_counters *out);

/* The summary for GET /api/performance/metrics and the dashboard:
 *   {"metrics": {"LCP": {"unit","count","p50","p75","p95","rating",
 *                        "thresholds":{"good","poor"}}, …},
 *    "pages": [{"page","count","metrics":{…}}, …]   (the most counted, ≤ 20)
 *    "pages_tracked", "pages_max",
 *    "beacons": {accepted, duplicates, rejected, rate_limited},
 *    "recent": [{"name","value","rating","page","request_id","at"}, …]}
 * NULL when out of memory. */
json_t *vitals_summary_json(void);
/* The same for one page (normalised like a beacon's), or NULL if it is not
 * tracked. */
json_t *vitals_page_json(const char *page);

/* Forgets everything (tests; a fresh start). */
void vitals_reset(void);

#endif

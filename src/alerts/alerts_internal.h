/*
 * alerts_internal.h — internal to src/alerts: the built-in sources that
 * alerts.c wires to the budgets.
 *
 *   budget.c   hysteresis and the route budget list (pure)
 *   window.c   request time and errors over a window (the metrics core)
 *   sources.c  memory, the cache's hit ratio, database statement time
 *   alerts.c   budgets, the evaluator and notifier threads, the outputs
 */
#ifndef STRATA_ALERTS_INTERNAL_H
#define STRATA_ALERTS_INTERNAL_H

#include "alerts/alerts.h"

/* ---- window.c ---- */

/* Sets up the tracks (every route together, then one per route budget)
 * for windows of window_ms; fewer than min_requests requests in a window
 * is no data. 0, or -1 when out of memory. */
int window_configure(int64_t window_ms, const alert_route_budget *budgets, size_t budget_count, int min_requests);

/* Sources over the metrics core's request counts; ctx is the track as
 * (void *)(uintptr_t): 0 for every route, 1 + i for budgets[i]. */
bool window_p95_ms(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
bool window_error_rate(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
/* Requests shed under load (answered stale or 503) over requests; track 0 only. */
bool window_shed_rate(void *ctx, int64_t now_ms, int64_t window_ms, double *value);

/* ---- sources.c ---- */

/* Sizes the histories of the counter sources for windows of window_ms
 * sampled every interval_ms; fewer than min_events (lookups, queries) in
 * a window is no data. 0, or -1 when out of memory. */
int sources_configure(int64_t window_ms, int interval_ms, int min_events);
bool source_memory_bytes(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
bool source_hit_ratio(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
bool source_db_query_ms(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
bool source_replica_lag_ms(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
/* The p75 of a Web Vitals metric over the window; ctx is
 * source_vitals_window(VITALS_LCP | VITALS_INP | VITALS_CLS). */
bool source_vitals_p75(void *ctx, int64_t now_ms, int64_t window_ms, double *value);
void *source_vitals_window(int metric);

#endif

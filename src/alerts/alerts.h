/*
 * alerts.h — performance budgets and the alerts they raise and clear.
 *
 * A budget is a limit on one measured quantity, from the configuration
 * (budget.*). Every alerts.interval_ms an evaluator thread asks each
 * budget's *source* for the quantity's value over the last alerts.window_s
 * and feeds it to the budget's state machine. The machine raises an alert
 * after the value has broken the budget alerts.raise_after evaluations in
 * a row, and clears it after it has stayed clearly inside — past a margin
 * of alerts.clear_margin — alerts.clear_after evaluations in a row, so a
 * value wobbling around the budget neither flaps nor chatters.
 *
 * Quantities (the names sources register under):
 *
 *     api_p95_ms            p95 of request time, every route together (ms)
 *     api_p95_ms:PATTERN    the same for one route pattern ("/v1/:site/content")
 *     error_rate            share of responses that were 5xx (0..1)
 *     shed_rate             share of requests shed under load, answered stale or 503 (0..1)
 *     db_query_ms           database statement time (ms)
 *     replica_lag_ms        the most lagging replica's lag (ms; a replica that is down counts too)
 *     hit_ratio             cache hit ratio (0..1): lower is bad, the budget is a floor
 *     memory_bytes          resident set size
 *     db_disk_full          1 while the database's disk is full (writes answer 507), else 0:
 *                           a budget always on (0.5); its source is content's (monitoring.c)
 *     lcp_p75_ms, inp_p75_ms, cls_p75   Web Vitals p75 from browsers
 *
 * Sources are plain functions, so whoever measures a quantity plugs it in
 * (alerts_register_source); a later registration of a name replaces an
 * earlier one. Built in, over the metrics core's counters (metrics.h):
 * api_p95_ms*, error_rate, shed_rate (window.c), db_query_ms (the mean statement
 * time), memory_bytes, hit_ratio, replica_lag_ms (sources.c). The Web Vitals have none yet.
 * A budget whose quantity has no source, or whose source has too little
 * data (fewer than alerts.min_requests requests, lookups or statements in
 * the window), is "no data": it neither raises nor clears.
 *
 * Where alerts go: the log (warn when raised, info when cleared), the
 * JSON of GET /v1/alerts (alerts_json) and of the dashboard
 * (alerts_active_json), and alerts.webhook_url: each change is queued as a
 * "webhook" job (jobs.h: persistent, retried with backoff), held in memory
 * while the database cannot take it. docs/alerts.md has the details.
 *
 * Threads: nothing here runs on the request path; sources run on the
 * evaluator thread; everything else may be called from any thread.
 */
#ifndef STRATA_ALERTS_H
#define STRATA_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "http/http.h"

/* The value of a quantity over the window_ms before now_ms (CLOCK_MONOTONIC
 * milliseconds). True with *value set, or false when there is no value to
 * judge (nothing measured, too few samples). Called on the evaluator
 * thread only; must not block for long. */
typedef bool (*alert_source_fn)(void *ctx, int64_t now_ms, int64_t window_ms, double *value);

#define ALERT_QUANTITY_MAX 160 /* bytes of a quantity's name, with "api_p95_ms:" and the pattern */
#define ALERT_ROUTE_BUDGETS_MAX 16

/* ---- hysteresis (machine.c) --------------------------------------------- */

typedef enum alert_state {
    ALERT_OK = 0,   /* within budget (or no data) */
    ALERT_PENDING,  /* broken, not yet for raise_after evaluations */
    ALERT_FIRING,   /* raised */
    ALERT_CLEARING, /* raised, clearly within budget, not yet for clear_after evaluations */
} alert_state;

typedef enum alert_change { ALERT_UNCHANGED = 0, ALERT_RAISED, ALERT_CLEARED } alert_change;

typedef struct alert_rule {
    double budget;
    bool floor;                   /* lower is bad (hit ratio): broken below the budget */
    int raise_after, clear_after; /* >= 1 */
    double clear_margin;          /* 0..1 */
} alert_rule;

typedef struct alert_machine {
    alert_state state;
    int streak; /* evaluations in a row counting toward the next change */
} alert_machine;

/* True if value breaks the rule's budget (above it; below it for a floor). */
bool alert_rule_broken(const alert_rule *rule, double value);
/* True if value is clearly within: at most budget × (1 − margin); for a
 * floor (a ratio), at least budget + margin × (1 − budget), i.e. the
 * shortfall to 1 is smaller by the margin. */
bool alert_rule_recovered(const alert_rule *rule, double value);
/* One evaluation. measured false (no data) holds the state: it resets a
 * pending streak and never counts toward raising or clearing. */
alert_change alert_machine_step(alert_machine *m, const alert_rule *rule, bool measured, double value);
const char *alert_state_name(alert_state state);

/* ---- per-route budgets ---------------------------------------------------- */

typedef struct alert_route_budget {
    char pattern[128];
    double budget_ms;
} alert_route_budget;

/* Parses "PATTERN=MS,PATTERN=MS" (spaces around items allowed; "" = none)
 * into out (at most max). Each PATTERN must be one of routes' patterns when
 * routes is not NULL. 0, or -1 with err (naming budget.api_p95_routes). */
int alerts_parse_route_budgets(const char *text, const http_route *routes, size_t route_count, alert_route_budget *out,
                               size_t max, size_t *count, char *err, size_t err_size);

/* ---- lifecycle and outputs (alerts.c) -------------------------------------------- */

/* Keeps cfg (borrowed for the life of the process), checks the budget and
 * alerts settings (route patterns against routes), builds the budgets and
 * registers the built-in sources and the "webhook" job kind. 0, or -1 with
 * err naming the key. Call it once, before jobs_start and alerts_start,
 * also from check-config. */
int alerts_configure(const strata_config *cfg, const http_route *routes, size_t route_count, char *err,
                     size_t err_size);

/* Registers (or replaces) the source of a quantity; any time, any thread.
 * -1 if the name is too long or the table (64) is full. */
int alerts_register_source(const char *quantity, alert_source_fn fn, void *ctx);

/* Starts the evaluator and notifier threads if any budget is set; 0 or -1
 * after logging why. alerts_stop stops them (idempotent, bounded). */
int alerts_start(void);
void alerts_stop(void);

/* One evaluation at now_ms (CLOCK_MONOTONIC ms), as the evaluator thread
 * runs it; for tests that drive time themselves. */
void alerts_evaluate(int64_t now_ms);

/* [{id, quantity, value, budget, since, state}] of the raised alerts (new
 * reference; NULL only when out of memory). */
json_t *alerts_active_json(void);
/* GET /v1/alerts: {"active":[…], "recent":[the last 50 raises and clears,
 * newest first], "budgets":[every budget with its state and last value],
 * "window_s", "interval_ms"}. */
json_t *alerts_json(void);

#endif

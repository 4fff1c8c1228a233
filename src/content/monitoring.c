/*
 * monitoring.c — the operator's read-outs of src/metrics: GET /metrics
 * (Prometheus), GET /api/performance/metrics (the JSON summary) and
 * GET /v1/slow-queries (docs/monitoring.md).
 *
 * They run on a worker: the summary reads the job queue and the list of
 * sites from the database, and the admin check needs the token table.
 * /metrics is public unless metrics.token_required says otherwise (a
 * Prometheus server then sends the token as a bearer credential); the
 * other two always need an admin token. None of them is ever cached.
 */
#include <stdlib.h>

#include "alerts/alerts.h"
#include "content/api.h"
#include "content/content.h"
#include "metrics/metrics.h"
#include "vitals/vitals.h"

/* The alert's quantity db_disk_full (alerts.h): 1 while writes fail for
 * want of disk. Always measured. */
static bool disk_full_source(void *ctx, int64_t now_ms, int64_t window_ms, double *value)
{
    (void)ctx, (void)now_ms, (void)window_ms;
    *value = store_disk_full_since() != 0 ? 1.0 : 0.0;
    return true;
}

void monitoring_alerts_register(void)
{
    alerts_register_source("db_disk_full", disk_full_source, NULL);
}

void handle_metrics(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    const strata_config *cfg = api_config();
    if (cfg->metrics_token_required && !api_require_admin_token(&c, site))
        return;
    size_t len = 0;
    char *text = metrics_prometheus(store, cfg->metrics_token_required || cfg->metrics_public_site_labels, &len);
    if (text == NULL) {
        http_problem(res, req, 503, "out_of_memory", "the metrics could not be formatted: out of memory");
        return;
    }
    http_response_body(res, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    http_response_header(res, "cache-control", "no-store");
}

void handle_performance_metrics(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    if (!api_require_admin_token(&c, site))
        return;
    json_t *summary = metrics_summary_json(store);
    if (summary == NULL) {
        api_store_failed(&c, STORE_ERROR);
        return;
    }
    json_t *vitals = vitals_summary_json(), *alerts = alerts_active_json();
    json_object_set_new(summary, "web_vitals", vitals != NULL ? vitals : json_null());
    json_object_set_new(summary, "alerts", alerts != NULL ? alerts : json_null());
    json_t *judged = alerts_json(); /* the budgets, each with its state and latest value */
    json_t *budgets = json_object_get(judged, "budgets");
    json_object_set(summary, "budgets", budgets != NULL ? budgets : json_null());
    json_decref(judged);
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200, summary);
}

void handle_slow_queries(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    if (!api_require_admin_token(&c, site))
        return;
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200,
                  json_pack("{s:i, s:I, s:o}", "slow_query_ms", metrics_slow_query_ms(), "total",
                            (json_int_t)metrics_slow_queries_total(), "queries", metrics_slow_queries_json()));
}

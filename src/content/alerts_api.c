/*
 * alerts_api.c — GET /v1/alerts: the raised alerts, the last changes and
 * every budget's state (src/alerts, docs/alerts.md), for an admin token of
 * any site: budgets are the instance's, not a site's.
 */
#include "alerts/alerts.h"
#include "content/api.h"

void handle_alerts(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    if (!api_require_admin_token(&c, site))
        return;
    json_t *doc = alerts_json();
    if (doc == NULL) {
        http_problem(res, req, 503, "out_of_memory", "the alerts could not be listed");
        return;
    }
    http_response_header(res, "cache-control", "private, no-store");
    api_send_json(&c, 200, doc);
}

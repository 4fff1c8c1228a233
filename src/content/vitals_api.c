/*
 * vitals_api.c — GET /api/performance/vitals: the Web Vitals that browsers
 * sent (src/vitals) as operators read them: the summary (p50/p75/p95 per
 * metric with Google's rating, the most measured pages, the latest samples
 * with the request id of the page they came from), or one page's with
 * ?page=/path. An admin token, like every operator route. The beacon
 * itself (POST /api/performance/metrics) is public and answered on the
 * loop by vitals_beacon; the same summary is the "web_vitals" member of
 * GET /api/performance/metrics.
 */
#include "content/api.h"
#include "vitals/vitals.h"

void handle_vitals_summary(const http_request *req, store_t *store, http_response *res)
{
    api_ctx c = {.req = req, .store = store, .res = res};
    char site[65];
    if (!api_require_admin_token(&c, site))
        return;
    char page[VITALS_PAGE_MAX * 3 + 1];
    bool bad = false;
    if (api_query(&c, "page", page, sizeof(page), &bad)) {
        json_t *doc = vitals_page_json(page);
        if (doc == NULL) {
            http_problem(res, req, 404, "unknown_page", "no Web Vitals are kept for page %s", page);
            return;
        }
        api_send_json(&c, 200, doc);
        return;
    }
    if (bad)
        return;
    json_t *doc = vitals_summary_json();
    if (doc == NULL) {
        http_problem(res, req, 503, "out_of_memory", "the server is out of memory");
        return;
    }
    api_send_json(&c, 200, doc);
}

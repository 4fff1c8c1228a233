/*
 * web.c — serving the embedded browser assets (web.h).
 *
 * The bytes are constant for the life of the process, so each asset's
 * ETag (the XXH3 of its bytes) is computed once, on first use. A request
 * copies the asset into its response (the http layer owns response
 * bodies); these are tens of kilobytes, fetched once per page view at
 * most and cached by browsers (vitals.js for an hour, the dashboard's
 * files revalidated so a new build shows at once).
 *
 * The dashboard is CSP-strict: its script and styles are separate files
 * from 'self', there is no inline script, and it talks to nothing but
 * strata ('self'), so the page makes no external request.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "web/web.h"

/* assets_blob.S */
extern const char asset_vitals_js[], asset_vitals_js_end[];
extern const char asset_dashboard_html[], asset_dashboard_html_end[];
extern const char asset_dashboard_js[], asset_dashboard_js_end[];
extern const char asset_dashboard_css[], asset_dashboard_css_end[];

enum { ASSET_VITALS_JS, ASSET_DASHBOARD_HTML, ASSET_DASHBOARD_JS, ASSET_DASHBOARD_CSS, ASSET_COUNT };

typedef struct asset {
    const char *start, *end;
    const char *content_type;
    const char *cache_control;
    bool cross_origin; /* embedded by other sites */
    char etag[19];     /* "\"" + 16 hex + "\"" */
} asset;

static asset assets[ASSET_COUNT] = {
    [ASSET_VITALS_JS] = {asset_vitals_js, asset_vitals_js_end, "text/javascript; charset=utf-8", "public, max-age=3600",
                         true, ""},
    [ASSET_DASHBOARD_HTML] = {asset_dashboard_html, asset_dashboard_html_end, "text/html; charset=utf-8", "no-cache",
                              false, ""},
    [ASSET_DASHBOARD_JS] = {asset_dashboard_js, asset_dashboard_js_end, "text/javascript; charset=utf-8", "no-cache",
                            false, ""},
    [ASSET_DASHBOARD_CSS] = {asset_dashboard_css, asset_dashboard_css_end, "text/css; charset=utf-8", "no-cache", false,
                             ""},
};

static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

static void etags_compute(void)
{
    for (int i = 0; i < ASSET_COUNT; i++)
        snprintf(assets[i].etag, sizeof(assets[i].etag), "\"%016llx\"",
                 (unsigned long long)XXH3_64bits(assets[i].start, (size_t)(assets[i].end - assets[i].start)));
}

static bool serve(int index, const http_request *req, http_response *res)
{
    pthread_once(&etags_once, etags_compute);
    const asset *a = &assets[index];
    http_response_header(res, "etag", "%s", a->etag);
    http_response_header(res, "cache-control", "%s", a->cache_control);
    http_response_header(res, "x-content-type-options", "nosniff");
    if (a->cross_origin)
        http_response_header(res, "access-control-allow-origin", "*");
    if (index == ASSET_DASHBOARD_HTML) {
        http_response_header(res, "content-security-policy",
                             "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                             "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        http_response_header(res, "referrer-policy", "no-referrer");
    }
    if (req->if_none_match != NULL &&
        http_etag_list_matches(req->if_none_match, strlen(req->if_none_match), a->etag, strlen(a->etag))) {
        http_response_body(res, 304, NULL, NULL, 0);
        return true;
    }
    http_response_copy(res, 200, a->content_type, a->start, (size_t)(a->end - a->start));
    return true;
}

bool web_vitals_js(const http_request *req, http_response *res)
{
    return serve(ASSET_VITALS_JS, req, res);
}
bool web_dashboard(const http_request *req, http_response *res)
{
    return serve(ASSET_DASHBOARD_HTML, req, res);
}
bool web_dashboard_js(const http_request *req, http_response *res)
{
    return serve(ASSET_DASHBOARD_JS, req, res);
}
bool web_dashboard_css(const http_request *req, http_response *res)
{
    return serve(ASSET_DASHBOARD_CSS, req, res);
}

/*
 * web.h — the browser assets strata serves from its own binary: the Web
 * Vitals snippet sites embed (/vitals.js) and the live dashboard
 * (/dashboard, /dashboard.js, /dashboard.css). They are built from web/ at
 * build time (npm packages from web/package-lock.json) and linked in by
 * assets_blob.S, so no file is read at run time.
 *
 * Each handler is a loop handler (no database): 200 with a strong ETag,
 * or 304 when If-None-Match names it.
 */
#ifndef STRATA_WEB_H
#define STRATA_WEB_H

#include <stdbool.h>

#include "http/http.h"

bool web_vitals_js(const http_request *req, http_response *res);
bool web_dashboard(const http_request *req, http_response *res);
bool web_dashboard_js(const http_request *req, http_response *res);
bool web_dashboard_css(const http_request *req, http_response *res);

#endif

/*
 * cors.h — internal to src/http: cross-origin reads and writes from the
 * browsers of the sites an operator names (cors.origins), answered so
 * that caches keep their hit ratios.
 *
 * The policy is per site: a list of origins, or `*` (any origin). The
 * headers are added to each response as it leaves (an h2o filter), never
 * stored in a cached representation, so one L1 entry serves every origin.
 * Only a site with a list varies by Origin — and then every response of
 * it says `Vary: Origin`, with the header or without it, since a CDN that
 * kept a response made for one origin (or for none) must not hand it to
 * another. A `*` site answers `Access-Control-Allow-Origin: *` to all and
 * varies by nothing. A site without a policy gets no CORS header at all.
 */
#ifndef STRATA_HTTP_CORS_H
#define STRATA_HTTP_CORS_H

#include <h2o.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* Parses cors.origins and cors.max_age_s: 0, or -1 with err set. Called
 * before the loops start (and by check-config). */
int cors_configure(const strata_config *cfg, char err[CONFIG_ERR_MAX]);
/* Adds the CORS headers to every response of pathconf (nothing at all
 * without a policy). After cors_configure. */
void cors_register(h2o_pathconf_t *pathconf);
/* Whether req is a CORS preflight: OPTIONS with Origin and
 * Access-Control-Request-Method. */
bool cors_is_preflight(h2o_req_t *req);
/* Answers a preflight of a path whose routes allow `methods` (http_method
 * bits) with 204 and true; false, with a detail for a 403, when the site
 * has no policy, the origin is not in it, or the method is not allowed. */
bool cors_preflight(h2o_req_t *req, unsigned methods, char *detail, size_t detail_size);

#endif

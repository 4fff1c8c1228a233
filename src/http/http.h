/*
 * http.h — the HTTP server: event loops, routing, and the worker pool.
 *
 * Threads. strata runs `threads` event-loop threads, each with its own h2o
 * context and its own SO_REUSEPORT listening socket, so the kernel spreads
 * connections and no lock is taken on the request path. Loop threads never
 * block: anything that touches the database is a job for the worker pool
 * (`workers` threads, each owning one store_t connection). A job carries a
 * self-contained copy of the request (http_request), runs its route's
 * handler on a worker, fills an http_response, and is handed back to its
 * loop thread through h2o's multithread queue, where the response is sent.
 *
 * Routes. The caller (src/content) gives a table of http_route. A route
 * with a `loop_handler` is answered on the loop thread without the pool
 * (health, static documents — and, in the cache issue, cache hits); a route
 * with a `worker_handler` is deferred to the pool.
 *
 * Ownership. http_request strings are malloc'd copies owned by the job, so a
 * client that disconnects while its job runs frees nothing the worker uses;
 * the job notices at completion that its h2o request is gone and drops the
 * response. http_response bodies are malloc'd and owned by the response.
 */
#ifndef STRATA_HTTP_H
#define STRATA_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_HEADERS 8
#define HTTP_REQUEST_ID_MAX 64

typedef enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_DELETE = 1 << 4,
    HTTP_PATCH = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
    HTTP_OTHER = 1 << 7,
} http_method;

/* A request as a handler sees it: copies, independent of h2o's memory. */
typedef struct http_request {
    int route_id;
    http_method method;
    char *path;  /* raw path, without the query */
    char *query; /* raw query string without '?', or NULL */
    /* Path parameters, percent-decoded, in the order of the pattern's ':'
     * segments. NUL bytes from %00 are kept as found, so param_len tells the
     * true length: a handler rejects any param with an embedded NUL. */
    char *params[HTTP_MAX_PARAMS];
    size_t param_len[HTTP_MAX_PARAMS];
    size_t param_count;
    char *body; /* NUL-terminated copy; body_len is the true length */
    size_t body_len;
    char *authorization; /* header values, NULL if absent */
    char *if_match;
    char *content_type;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
} http_request;

typedef struct http_header {
    const char *name; /* static */
    char value[256];
} http_header;

typedef struct http_response {
    int status;
    const char *content_type; /* static; NULL when there is no body */
    char *body;               /* malloc'd, owned by the response */
    size_t body_len;
    http_header headers[HTTP_MAX_HEADERS];
    size_t header_count;
} http_response;

typedef void (*http_worker_handler)(const http_request *req, store_t *store, http_response *res);
typedef void (*http_loop_handler)(const http_request *req, http_response *res);

typedef struct http_route {
    unsigned methods; /* http_method bits; GET routes answer HEAD too */
    const char *pattern; /* "/v1/:site/content/:id"; ':' segments are captured */
    http_worker_handler worker_handler;
    http_loop_handler loop_handler;
} http_route;

/* ---- responses (usable on any thread) ------------------------------------ */

/* Adds a header; the value is copied (truncated to 255 bytes). */
void http_response_header(http_response *res, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Takes ownership of body (malloc'd). */
void http_response_body(http_response *res, int status, const char *content_type, char *body,
                        size_t len);
/* Copies len bytes of body. */
void http_response_copy(http_response *res, int status, const char *content_type, const char *body,
                        size_t len);
/* An RFC 9457 problem: type about:blank, title from the status, the detail
 * (printf format), a stable machine word `code`, the instance path and the
 * request id. Replaces any body already set. */
void http_problem(http_response *res, const http_request *req, int status, const char *code,
                  const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));
void http_response_free(http_response *res);
const char *http_status_text(int status);

/* ---- the server ---------------------------------------------------------- */

/* Fills *next with the configuration re-read for SIGHUP (see config_reload).
 * 0, or -1 with err filled. */
typedef int (*http_reload_fn)(strata_config *next, char err[CONFIG_ERR_MAX]);

/* Called once on each worker thread after its store connection opened (to
 * load per-database state such as the signing secret); nonzero aborts start. */
typedef int (*http_worker_init_fn)(store_t *store);

/* Runs the server until SIGTERM/SIGINT: then it stops accepting, lets the
 * requests it has begun finish (up to server.shutdown_timeout_ms) and
 * returns 0. SIGHUP calls reload and applies the reloadable keys. Returns
 * the process exit code. */
int http_serve(strata_config *cfg, const http_route *routes, size_t route_count,
               http_worker_init_fn worker_init, http_reload_fn reload);

/* Matches method and path against the table: the route index, or -1 with
 * *allowed set to the methods that would match the path (0: no path match).
 * Fills req->params. Exposed for the unit tests. */
int http_route_match(const http_route *routes, size_t route_count, http_method method,
                     const char *path, size_t path_len, http_request *req, unsigned *allowed);

#endif

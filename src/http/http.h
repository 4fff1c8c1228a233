/*
 * http.h — the HTTP server: event loops, routing, and the worker pool.
 *
 * Threads. strata runs `threads` event-loop threads, each with its own h2o
 * context and its own SO_REUSEPORT listening socket, so the kernel spreads
 * connections and no lock is taken on the request path. Loop threads never
 * block: anything that touches the database is a job for the worker pool
 * (`workers` threads, each holding for life the resource the app's
 * worker_open gave it: for strata, a database connection; this layer
 * knows no SQL and passes it along as `void *worker`). A job carries a
 * self-contained copy of the request (http_request), runs its route's
 * handler on a worker, fills an http_response, and is handed back to its
 * loop thread through h2o's multithread queue, where the response is sent.
 *
 * Routes. The caller (src/content) gives a table of http_route. A route's
 * `loop_handler`, if any, runs first on the loop thread and may answer at
 * once (health, static documents, a view beacon for a cached item); what it
 * does not answer goes to the `worker_handler` on the pool.
 *
 * Response cache. A route with a cache rule is answered from the L1 cache
 * when it can be (response_cache.c): the key is the route, its decoded path
 * parameters and only the query parameters the rule names, with defaults
 * filled in; a hit is sent from the loop thread, zero-copy, in the encoding
 * the client accepts. A miss fills through a single flight; a worker turns
 * the handler's response into a representation (compressed variants, ETags,
 * headers) once. Requests with an Authorization header bypass the cache.
 * Handlers tag their responses (http_response_tag) and invalidate by tag
 * before answering a write (http_cache_invalidate_tag).
 *
 * Ownership. http_request strings are malloc'd copies owned by the job, so a
 * client that disconnects while its job runs frees nothing the worker uses;
 * the job notices at completion that its h2o request is gone and drops the
 * response. http_response bodies are malloc'd and owned by the response.
 */
#ifndef STRATA_HTTP_H
#define STRATA_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/lsn.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_HEADERS 8
#define HTTP_REQUEST_ID_MAX 64
#define HTTP_PEER_MAX 45 /* INET6_ADDRSTRLEN - 1 */

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
    char *if_none_match;
    char *content_type;
    char *accept;
    char *strata_lsn; /* Strata-LSN: the WAL position a read must see (docs/api.md) */
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    /* A worker handler running on an event loop (a bounded read, with the
     * loop's own worker resource): it must answer within a loop read's
     * bound, or ask for a worker (http_response.needs_worker). */
    bool on_loop;
    /* For loop handlers only (worker handlers get NULL and ""): */
    char *forwarded_for;          /* X-Forwarded-For, NULL if absent (trust is the handler's call) */
    char peer[HTTP_PEER_MAX + 1]; /* the connection's peer address ("127.0.0.1", "::1"); "" if unknown */
} http_request;

typedef struct http_header {
    const char *name; /* static */
    char value[256];
} http_header;

typedef struct http_response {
    int status;
    char *tags; /* space-separated cache tags, malloc'd (http_response_tag) */
    size_t tags_len;
    bool uncacheable; /* a tag could not be recorded: never store this */
    /* An answer that what was asked for does not exist (404, an empty page
     * of a filter value that matches nothing): kept only briefly
     * (cache.negative_ttl_s), under its own budget, and its tags must name
     * what a write that makes it exist invalidates. */
    bool negative;
    /* The WAL position the data is known to include when it was read from
     * a replica (its replayed position when the read began); LSN_NONE when
     * it was read from the primary or the embedded database, which hold
     * every commit made before the read. The cache refuses to store a
     * representation read below an invalidation it knows of. */
    lsn_t read_lsn;
    /* Set by a worker handler running on a loop (http_request.on_loop)
     * whose request turned out not to be a bounded read after all: the
     * response is dropped and the request runs again on a worker. */
    bool needs_worker;
    const char *content_type; /* static; NULL when there is no body */
    char *body;               /* malloc'd, owned by the response */
    size_t body_len;
    http_header headers[HTTP_MAX_HEADERS];
    size_t header_count;
} http_response;

/* worker: the resource the running worker opened (http_app.worker_open). */
typedef void (*http_worker_handler)(const http_request *req, void *worker, http_response *res);
/* Returns true if it answered (res filled); false defers to the worker. */
typedef bool (*http_loop_handler)(const http_request *req, http_response *res);

/* A query parameter that takes part in a cache key. */
typedef struct http_cache_param {
    const char *name;
    const char *default_value; /* what the handler assumes when it is absent */
    bool integer;              /* canonicalised ("020" and "20" share a key) */
    bool fold_case;            /* ASCII letters lowercased, as the handler does */
    bool word_set;             /* "b,a,b" keyed as "a,b": a set of words, in canonical order */
} http_cache_param;

typedef struct http_cache_rule {
    unsigned data_class;            /* its lifetimes: cfg->cache_class[data_class] (config.h) */
    unsigned integer_captures;      /* bit i: path capture i is an integer ("0001" keyed as "1") */
    const http_cache_param *params; /* sorted by name */
    size_t param_count;
    /* What else of the query makes another answer, that the table cannot
     * name (parameters by a prefix: fields.NAME[OP]): its canonical text
     * into out and its length (0: nothing), keyed after the table's; < 0:
     * the handler refuses this query, so it gets no key and is never
     * answered from the cache. NULL: nothing else. */
    long (*query_key)(const char *query, size_t query_len, char *out, size_t size);
    /* On a bounded_read route, the requests that are no bounded read after
     * all (a full-text search ranks every match): true keeps one off the
     * event loop (request.c). NULL: none. */
    bool (*unbounded)(const http_request *req);
} http_cache_rule;

typedef struct http_route {
    unsigned methods;    /* http_method bits; GET routes answer HEAD too */
    const char *pattern; /* "/v1/:site/content/:id"; ':' segments are captured */
    http_worker_handler worker_handler;
    http_loop_handler loop_handler;
    /* A GET whose handler only reads, bounded in time (an index lookup of
     * at most a page): with http_app.reads_on_loops it may run on the event
     * loop that received it (request.c, "reads on the loop"). */
    bool bounded_read;
    const http_cache_rule *cache; /* NULL: never cached */
} http_route;

/* ---- responses (usable on any thread) ------------------------------------ */

/* Adds a header; the value is copied (truncated to 255 bytes). */
void http_response_header(http_response *res, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Takes ownership of body (malloc'd). */
void http_response_body(http_response *res, int status, const char *content_type, char *body, size_t len);
/* Copies len bytes of body. */
void http_response_copy(http_response *res, int status, const char *content_type, const char *body, size_t len);
/* An RFC 9457 problem: type about:blank, title from the status, the detail
 * (printf format), a stable machine word `code`, the instance path and the
 * request id. Replaces any body already set. */
void http_problem(http_response *res, const http_request *req, int status, const char *code, const char *detail_fmt,
                  ...) __attribute__((format(printf, 5, 6)));
/* Adds a cache tag (printf format); tags name what a response was built
 * from ("main:item:12"), for invalidation and Surrogate-Key. */
void http_response_tag(http_response *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same, the tag being parts[0..count) end to end: no printf on the
 * hot path of a fill. */
void http_response_tag_parts(http_response *res, const char *const *parts, size_t count);
void http_response_free(http_response *res);
const char *http_status_text(int status);
/* If-None-Match semantics (RFC 9110 13.1.2, weak comparison: W/ is
 * ignored, "*" matches): does the header's list name etag (quoted)? */
bool http_etag_list_matches(const char *header, size_t header_len, const char *etag, size_t etag_len);

/* ---- the response cache, for handlers (any thread) ----------------------- */

/* All return quietly (0 / false) when the cache is off.
 *
 * `lsn` is the commit position (core/lsn.h) of the write that caused the
 * invalidation, LSN_NONE when there is none (SQLite, an operator's
 * purge). The cache remembers the highest position it has been told of,
 * here or by another instance (http_cache_lsn_floor): a fill that starts
 * after an invalidation must read data that includes its write. */
size_t http_cache_invalidate_tag(const char *tag, lsn_t lsn);
/* Something besides the response cache that keeps what a write may make
 * wrong (content/tokens.c): told of every tag invalidated here or
 * received from another instance, and of NULL when invalidations may
 * have been missed (then it forgets everything). One watcher, set before
 * serving; it is called on any thread and must be quick. */
void http_cache_watch(void (*watch)(const char *tag));
/* Whether an invalidation made here reaches every instance that could
 * keep what it names: true without Redis (a lone instance) or with the
 * bus running; false with Redis but the cache, hence the bus, off. */
bool http_cache_invalidations_reach_all(void);
/* Drops the entry of a request target ("/v1/main/content?limit=5"),
 * normalised like a request. */
bool http_cache_invalidate_target(const char *target, lsn_t lsn);
/* The highest commit position of any invalidation this instance has made
 * or received: a read for a fill must come from a database that has
 * replayed at least this far (a replica behind it would put an old
 * version back). LSN_NONE when no invalidation carried one. */
lsn_t http_cache_lsn_floor(void);
/* Whether every invalidation of a write at or before `lsn` has surely
 * reached this instance, so a read naming that write (Strata-LSN) may be
 * answered from the cache: never while the bus is down or catching up
 * (Redis configured but not listening, or a reset owed), and only for
 * positions the floor had passed HEARD_SETTLE_MS ago. The floor alone
 * (a maximum, raised by this instance's own writes too) passed writes of
 * other instances whose invalidations never came (bench/chaos.sh). */
bool http_cache_heard_through(lsn_t lsn);
/* The epoch to pass to http_cache_store: read it after invalidating and
 * before reading the data being stored. */
uint64_t http_cache_epoch(void);
/* Write-through: stores res (a 200 with its tags) as the representation of
 * GET `path` (no query: the defaults). False if not stored (fenced, not a
 * cacheable path, cache off). */
bool http_cache_store(const char *path, const http_response *res, uint64_t epoch);
/* True if GET `path` has a fresh or stale 200 representation in L1. */
bool http_cache_holds(const char *path);
/* {"l1":{hits,misses,…}} for one site and for every site together. */
json_t *http_cache_stats(const char *site);

/* ---- the server ---------------------------------------------------------- */

/* Fills *next with the configuration re-read for SIGHUP (see config_reload).
 * 0, or -1 with err filled. */
typedef int (*http_reload_fn)(strata_config *next, char err[CONFIG_ERR_MAX]);

/* Work run on a worker thread on a schedule (every interval_ms) and once
 * more at shutdown (final flushes). */
typedef struct http_periodic {
    int interval_ms;
    void (*run)(void *worker);
} http_periodic;

/* What the composition root (main.c) gives the server; it has created the
 * metrics core (metrics_init) and the response cache (rc_init) before
 * http_serve, and disposes the cache (rc_dispose) after it returns. */
typedef struct http_app {
    const http_route *routes;
    size_t route_count;
    /* Each worker thread's resource for its life: worker_open runs on the
     * worker at start (NULL: the server does not start; it logs why),
     * worker_close on it when the pool stops. */
    void *(*worker_open)(void *arg);
    void (*worker_close)(void *worker, void *arg);
    void *worker_arg;
    /* Each event loop opens a worker resource of its own too (worker_open,
     * on the loop's thread) and runs bounded reads with it, while CPU is
     * not scarce: for an embedded database, whose reads never wait on a
     * writer, the hand-off to a worker costs more than the read. */
    bool reads_on_loops;
    http_reload_fn reload;
    void (*on_start)(void *worker); /* once, on a worker, after listening (cache warming) */
    void (*on_stop)(void);          /* once, when shutdown begins, before the cache goes (background work) */
    const http_periodic *periodic;
    size_t periodic_count;
} http_app;

/* Runs the server until SIGTERM/SIGINT: then it stops accepting, lets the
 * requests it has begun finish (up to server.shutdown_timeout_ms), runs the
 * periodic tasks once more, closes the workers' resources and returns 0.
 * SIGHUP calls reload and applies the reloadable keys. Returns the process
 * exit code. */
int http_serve(strata_config *cfg, const http_app *app);

/* Where a pattern's ':' segments sit in a raw path (not decoded). */
typedef struct http_captures {
    size_t count;
    size_t offset[HTTP_MAX_PARAMS];
    size_t length[HTTP_MAX_PARAMS];
} http_captures;

/* Matches method and path against the table without allocating: the route
 * index, or -1 with *allowed set to the methods that would match the path
 * (0: no path match). */
int http_route_find(const http_route *routes, size_t route_count, http_method method, const char *path, size_t path_len,
                    http_captures *caps, unsigned *allowed);
/* Percent-decodes one capture into out (size bytes); returns the decoded
 * length, or -1 if it does not fit. NUL bytes are kept. */
long http_capture_decode(const char *path, const http_captures *caps, size_t index, char *out, size_t size);
/* Form-decodes len bytes of src into out ('+' is a space, %XX a byte):
 * the decoded length, or -1 for a NUL byte or when it does not fit in
 * size - 1 bytes. */
long http_form_decode(const char *src, size_t len, char *out, size_t size);
/* The first value of `name` in a query string, form-decoded ('+' is a
 * space, %XX a byte) into out. Returns its length, -1 if absent, -2 if it
 * does not fit in size bytes or holds a NUL. The one reader of query
 * parameters: handlers and cache keys must agree on what a request asks. */
long http_query_value(const char *query, size_t query_len, const char *name, char *out, size_t size);

/* Fills req->params with decoded copies of the captures. 0 or -1. */
int http_request_set_params(http_request *req, const char *path, const http_captures *caps);

#endif

/*
 * filters.c — h2o hooks: its own errors as problem+json, and the access log.
 *
 * Errors h2o produces by itself (400 on a broken chunked body, 413 on an
 * oversize body) are plain text and bypass strata's handlers; a filter on
 * both the handler's path and the host's fallback path rewrites them into
 * problem+json with a request id so a client always gets the same kind of
 * error body. (The 400 h2o writes for a head it cannot parse never reaches
 * a filter: protocol_guard.c rewrites that one.)
 *
 * The access log is an h2o logger, so it sees every response, those h2o
 * makes itself included: one JSON line per request, with its id.
 */
#include <h2o.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "core/log.h"
#include "http/server_internal.h"
#include "metrics/metrics.h"

/* ---- h2o's own errors as problem+json ------------------------------------------- */

typedef struct problem_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
} problem_ostream;

static void problem_ostream_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                                 h2o_send_state_t state)
{
    problem_ostream *p = (problem_ostream *)self;
    (void)bufs, (void)bufcnt;
    if (p->body.base != NULL && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_iovec_t body = p->body;
        p->body = h2o_iovec_init(NULL, 0);
        h2o_ostream_send_next(self, req, &body, 1, state);
    } else {
        h2o_ostream_send_next(self, req, NULL, 0, state);
    }
}

static void on_setup_problem_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && ct >= 0 &&
        h2o_memis(req->res.headers.entries[ct].value.base, req->res.headers.entries[ct].value.len,
                  H2O_STRLIT("text/plain; charset=utf-8"))) {
        char detail[160];
        if (req->res.status == 413)
            snprintf(detail, sizeof(detail),
                     "the request body is larger than the limit of %zu bytes (server.max_body_bytes)",
                     req->conn->ctx->globalconf->max_request_entity_size);
        else
            snprintf(detail, sizeof(detail), "%s",
                     protocol_guard_h2o_error_text() != NULL ? protocol_guard_h2o_error_text() : req->res.reason);
        http_request rq = {0};
        http_response res = {0};
        assign_request_id(H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, req->conn->ctx), req, rq.request_id);
        h2o_iovec_t id = h2o_strdup(&req->pool, rq.request_id, SIZE_MAX);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 1, NULL, id.base, id.len);
        http_problem(&res, &rq, req->res.status, req->res.status == 413 ? "body_too_large" : "bad_request", "%s",
                     detail);
        problem_ostream *p = (problem_ostream *)h2o_add_ostream(req, sizeof(*p), slot);
        p->super.do_send = problem_ostream_send;
        p->body = h2o_strdup(&req->pool, res.body != NULL ? res.body : "", res.body_len);
        http_response_free(&res);
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/problem+json"));
        req->res.content_length = p->body.len;
        slot = &p->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- access log ------------------------------------------------------------------- */

/* From h2o's start of the request to now (the line is written when h2o
 * lets the request go, right after its last byte). h2o's own end stamp is
 * its loop's cached clock, taken once a tick: a request answered within
 * the tick it began in (a hit, a read on the loop) would read 0 µs. */
uint64_t filters_request_micros(h2o_req_t *req)
{
    struct timeval begin = req->timestamps.request_begin_at, end;
    if (begin.tv_sec == 0)
        return 0;
    gettimeofday(&end, NULL);
    int64_t us = (int64_t)(end.tv_sec - begin.tv_sec) * 1000000 + (end.tv_usec - begin.tv_usec);
    return us > 0 ? (uint64_t)us : 0;
}

/* Preview links are credentials: a path holding one is logged up to the
 * token ("/preview/", "/v1/main/previews/") followed by "…". Returns the
 * length to log and whether the rest was cut. */
static size_t path_without_secrets(const char *path, size_t len, bool *cut)
{
    static const char *const marks[] = {"/preview/", "/previews/"};
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++) {
        const char *at = memmem(path, len, marks[i], strlen(marks[i]));
        if (at != NULL && (size_t)(at - path) + strlen(marks[i]) < len) {
            *cut = true;
            return (size_t)(at - path) + strlen(marks[i]);
        }
    }
    *cut = false;
    return len;
}

/* log.sample_hits: one in N requests answered 2xx/304 from the cache is
 * logged (set before the loops start). Misses, errors and writes are
 * always logged: they are the lines an operator looks for. */
static int sample_hits = 1;

void filters_set_hit_sampling(int one_in)
{
    sample_hits = one_in > 1 ? one_in : 1;
}

/* Whether this line is one the sampling leaves out: a cache hit (its
 * Cache-Status says "hit") that is not this thread's Nth. */
static bool sampled_out(h2o_req_t *req)
{
    static _Thread_local unsigned hits_seen;
    if (sample_hits == 1 || req->res.status >= 400)
        return false;
    ssize_t at = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("cache-status"), -1);
    if (at < 0)
        return false;
    const h2o_iovec_t *v = &req->res.headers.entries[at].value;
    if (v->len < sizeof "strata; hit" - 1 || memcmp(v->base, "strata; hit", sizeof "strata; hit" - 1) != 0)
        return false;
    return hits_seen++ % (unsigned)sample_hits != 0;
}

static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    /* Requests routed by strata are counted by their tracker (request.c),
     * which knows the route; the fallback path has h2o's own early errors. */
    if (metrics_enabled() && req->pathconf == &req->hostconf->fallback_path)
        metrics_request(-1, request_method_index(req->input.method), req->res.status, filters_request_micros(req));
    /* a 5xx is an error line: kept at log.level warn or error too */
    log_level level = req->res.status >= 500 ? LOG_ERROR : LOG_INFO;
    if (!log_enabled(level) || sampled_out(req))
        return;
    log_line line;
    /* ts: when h2o began processing the request (its loop's clock: no
     * clock read per line); the current time for one it never processed */
    if (req->processed_at.at.tv_sec != 0)
        log_begin_at(&line, level, "request", req->processed_at.at.tv_sec, (long)req->processed_at.at.tv_usec);
    else
        log_begin(&line, level, "request");
    log_strn(&line, "method", req->input.method.base, req->input.method.len);
    bool cut;
    size_t path_len = path_without_secrets(req->input.path.base, req->input.path.len, &cut);
    char path[256];
    if (cut && path_len + sizeof "…" <= sizeof path) {
        memcpy(path, req->input.path.base, path_len);
        memcpy(path + path_len, "…", sizeof "…");
        log_str(&line, "path", path);
    } else {
        log_strn(&line, "path", req->input.path.base, cut ? path_len : req->input.path.len);
    }
    log_int(&line, "status", req->res.status);
    log_int(&line, "bytes", (int64_t)req->bytes_sent);
    log_int(&line, "us", (int64_t)filters_request_micros(req));
    ssize_t id = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
    if (id >= 0)
        log_strn(&line, "request_id", req->res.headers.entries[id].value.base, req->res.headers.entries[id].value.len);
    log_end_buffered(&line);
}

void filters_register(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = on_setup_problem_ostream;
    h2o_logger_t *logger = h2o_create_logger(pathconf, sizeof(*logger));
    logger->log_access = on_log_access;
}

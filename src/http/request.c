/*
 * request.c — the request path: from h2o's callback to a response.
 *
 * On the loop thread a request is given an id, checked against the limits,
 * routed, and then, for a cacheable public read, looked up in the L1:
 *
 *   fresh   → sent at once from the loop thread (no worker, no copy);
 *   stale   → sent at once, and one background refresh is started;
 *   miss    → the fill machine's (fill.c): the first request of a key
 *             leads the key's flight and fills it — the tiers below the
 *             L1 (the L2), then the database — and the others wait for it
 *             (bounded by cache.coalesce_timeout_ms, after which they read
 *             for themselves) and are sent the leader's representation;
 *   expired → like a miss, but the expired copy is held: if the fill fails
 *             (5xx), it is served instead (fail-safe).
 *
 * Everything else (writes, editor reads, requests with Authorization) is a
 * job for the worker pool. A job carries a copy of the request, so a client
 * that disconnects while its job runs frees nothing a worker reads; its
 * tracker tells the job, and the result is dropped.
 *
 * Load shedding. Jobs of requests with Authorization go to the pool's
 * editor lane, ahead of anonymous ones (worker_pool.h), bounded by
 * server.queue_max and never timed: an editor's save is not shed because
 * readers are many. An anonymous job (a miss's fill, a preview) goes to
 * the public lane, bounded by server.queue_max, with a deadline of
 * server.queue_timeout_ms to reach a worker. A job that does not fit, or
 * is still waiting at its deadline — the loop's queue_timeout takes it
 * back off the lane, and a worker that takes it late does not run it — or
 * waited past server.queue_target_ms in a standing queue (worker_pool.h:
 * the loop's next public submit takes it back, or a worker marks it late), is
 * shed: its request is answered on the loop from the stale copy the miss
 * found, if any (Cache-Status: fwd=stale), else with 503, Retry-After and
 * a problem+json detail; its flight ends empty, so its waiters answer
 * alone (and, once older than the deadline themselves, are shed too).
 *
 * Reads on the loop. On an embedded database (SQLite: its reads never
 * wait on a writer in WAL mode, and cost a few microseconds) handing a
 * read to a worker and its answer back costs more than the read: two
 * thread wake-ups, a lock both ways, a copy of the work through the
 * scheduler (measured: 46 % of a miss's CPU in the kernel). So an
 * anonymous GET of a route marked bounded_read (an item, a page of a
 * list, the categories: one statement walking an index in order, no sort)
 * runs on the loop that received it, with the loop's
 * own connection (http_app.reads_on_loops, server.loop_reads), through
 * the same handler and fill machine a worker would run — while misses
 * are most of the traffic (fill_budget_loops_may_fill: the cache off, a
 * crawler). Beside hits a read goes to the pool as before, where the
 * budget, the workers' lower priority, the deadline and shedding keep
 * hits first under a flood of misses. Once a turn of the loop has run
 * reads for LOOP_READ_SLICE_MS, the rest of that turn's wait on the loop
 * for the next turns (deferred reads), each run after the loop's poll for
 * another slice, the newest first once the list is congested; once the
 * list has stood non-empty for LOOP_READ_STANDING_MS (the loop is behind,
 * not catching up on a burst), each deferred read that has waited
 * LOOP_READ_TARGET_MS (or server.queue_target_ms, if lower) is shed
 * (stale or 503), as the pool's lane sheds: the loops keep serving
 * their sockets, and a flood of misses alone is answered by the threads
 * that are fastest at it — not handed to workers that, ten nice steps down, get almost no
 * CPU beside two saturated loops (measured: the misses those workers
 * answered under a 3× flood took 30–50 ms, against 2.7 ms unloaded).
 * Writes, editors' reads (a list of every status sorts), other reads and
 * every read on PostgreSQL (which waits on the network) go to the pool.
 *
 * A read whose client has gone before a worker takes it is not run unless
 * someone else waits for its fill (its flight has waiters): the tracker
 * marks it when h2o lets the request go (an HTTP/2 stream reset), and,
 * since HTTP/1 in h2o reads nothing while a request is processed, a
 * probe every QUEUE_PROBE_MS peeks at queued HTTP/1 clients' sockets for
 * their end: QUEUE_PROBE_BATCH of them a turn, the oldest looked-at first
 * (each looked at goes to the back), so a standing queue of a thousand
 * costs the loop a bounded number of peeks a second, not a thousand every
 * turn. A write whose client has gone still runs: its client may
 * have sent it and died, and it will look for the result.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"
#include "core/log.h"
#include "http/cors.h"
#include "http/ratelimit.h"
#include "http/server_internal.h"
#include "metrics/metrics.h"

#define QUEUE_PROBE_MS 50        /* how often queued HTTP/1 clients are looked at */
#define QUEUE_PROBE_BATCH 64     /* …and how many of them at most, each time */
#define LOOP_READ_SLICE_MS 1     /* how long a turn of a loop may run reads itself */
#define LOOP_READ_TARGET_MS 10   /* how long a deferred read may wait in a standing list (or queue_target_ms) */
#define LOOP_READ_STANDING_MS 50 /* how long the deferred reads must not have emptied for the list to stand */

/* ---- request copies ------------------------------------------------------------ */

static char *copy_iovec(const char *base, size_t len)
{
    char *s = malloc(len + 1);
    if (s != NULL) {
        if (len > 0)
            memcpy(s, base, len);
        s[len] = '\0';
    }
    return s;
}

static char *copy_header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0)
        return NULL;
    return copy_iovec(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

static void request_free(http_request *rq)
{
    free(rq->path);
    free(rq->query);
    for (size_t i = 0; i < rq->param_count; i++)
        free(rq->params[i]);
    free(rq->body);
    free(rq->authorization);
    free(rq->if_match);
    free(rq->if_none_match);
    free(rq->content_type);
    free(rq->accept);
    free(rq->strata_lsn);
    free(rq->forwarded_for);
    memset(rq, 0, sizeof(*rq));
}

static size_t path_length(h2o_req_t *req)
{
    return req->query_at != SIZE_MAX ? req->query_at : req->path.len;
}

http_method request_method_bit(h2o_iovec_t m)
{
    static const struct {
        const char *name;
        http_method method;
    } methods[] = {{"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},      {"PUT", HTTP_PUT},
                   {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH}, {"OPTIONS", HTTP_OPTIONS}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (h2o_memis(m.base, m.len, methods[i].name, strlen(methods[i].name)))
            return methods[i].method;
    return HTTP_OTHER;
}

unsigned request_method_index(h2o_iovec_t method)
{
    return (unsigned)__builtin_ctz((unsigned)request_method_bit(method));
}

static void copy_peer(h2o_req_t *req, char out[HTTP_PEER_MAX + 1])
{
    struct sockaddr_storage ss;
    out[0] = '\0';
    if (req->conn->callbacks->get_peername == NULL ||
        req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, HTTP_PEER_MAX + 1);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, HTTP_PEER_MAX + 1);
}

/* Copies what a handler may read. caps may be NULL (no parameters). The
 * client's address (peer, X-Forwarded-For) only with `client`: loop
 * handlers (beacons) rate-limit by it, database routes never read it. */
static int request_copy(h2o_req_t *req, const request_tracker *tracker, int route_index, const http_captures *caps,
                        bool client, http_request *rq)
{
    size_t plen = path_length(req);
    rq->route_id = route_index;
    rq->method = request_method_bit(req->method);
    memcpy(rq->request_id, tracker->request_id, sizeof(rq->request_id));
    rq->path = copy_iovec(req->path.base, plen);
    if (req->query_at != SIZE_MAX)
        rq->query = copy_iovec(req->path.base + plen + 1, req->path.len - plen - 1);
    rq->body = copy_iovec(req->entity.base != NULL ? req->entity.base : "", req->entity.len);
    rq->body_len = req->entity.len;
    rq->authorization = copy_header(req, H2O_TOKEN_AUTHORIZATION);
    rq->if_match = copy_header(req, H2O_TOKEN_IF_MATCH);
    rq->if_none_match = copy_header(req, H2O_TOKEN_IF_NONE_MATCH);
    rq->content_type = copy_header(req, H2O_TOKEN_CONTENT_TYPE);
    rq->accept = copy_header(req, H2O_TOKEN_ACCEPT);
    ssize_t lsn_at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("strata-lsn"), -1);
    if (lsn_at >= 0)
        rq->strata_lsn = copy_iovec(req->headers.entries[lsn_at].value.base, req->headers.entries[lsn_at].value.len);
    if (client) {
        rq->forwarded_for = copy_header(req, H2O_TOKEN_X_FORWARDED_FOR);
        copy_peer(req, rq->peer);
    }
    if (rq->path == NULL || rq->body == NULL || (req->query_at != SIZE_MAX && rq->query == NULL))
        return -1;
    return caps != NULL ? http_request_set_params(rq, req->path.base, caps) : 0;
}

static bool request_id_is_sane(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > HTTP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_'))
            return false;
    }
    return true;
}

void assign_request_id(loop_thread *lt, h2o_req_t *req, char out[HTTP_REQUEST_ID_MAX + 1])
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0 && request_id_is_sane(req->headers.entries[i].value)) {
        memcpy(out, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        out[req->headers.entries[i].value.len] = '\0';
        return;
    }
    request_id_generate(lt, out);
}

void request_id_generate(loop_thread *lt, char out[HTTP_REQUEST_ID_MAX + 1])
{
    /* <instance:8 hex>-<loop:2 hex>-<sequence>, without printf: every
     * request, cache hits included, pays for this */
    char *p = out;
    fmt_hex(p, lt->srv->instance_tag, 8);
    p[8] = '-';
    fmt_hex(p + 9, (uint64_t)lt->index, 2);
    p[11] = '-';
    p += 12 + fmt_u64(p + 12, ++lt->request_seq);
    *p = '\0';
}

static size_t header_bytes(h2o_req_t *req)
{
    size_t total = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return total;
}

/* ---- sending plain responses ------------------------------------------------------ */

static void add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

/* An HTML page (the dashboard, a preview) learns its own response's id from
 * its navigation entry's serverTiming, and tags its Web Vitals beacons with
 * it (docs/web-vitals.md). Never on a cache hit: those are JSON. */
static void add_request_id_timing(h2o_req_t *req, const char *request_id)
{
    char value[HTTP_REQUEST_ID_MAX + 16];
    int n = snprintf(value, sizeof(value), "reqid;desc=\"%s\"", request_id);
    if (n > 0 && (size_t)n < sizeof(value))
        add_header(req, "server-timing", value, (size_t)n);
}

static void send_response(h2o_req_t *req, const char *request_id, const http_request *rq, http_response *res)
{
    if (res->status == 0)
        http_problem(res, rq, 500, "internal", "the handler produced no response");
    req->res.status = res->status;
    req->res.reason = http_status_text(res->status);
    if (res->content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, res->content_type,
                       strlen(res->content_type));
    add_header(req, "x-request-id", request_id, strlen(request_id));
    if (res->content_type != NULL && strncmp(res->content_type, "text/html", 9) == 0)
        add_request_id_timing(req, request_id);
    for (size_t i = 0; i < res->header_count; i++)
        add_header(req, res->headers[i].name, res->headers[i].value, strlen(res->headers[i].value));
    if (res->status == 204 || res->status == 304) {
        h2o_send_inline(req, "", 0);
        return;
    }
    req->res.content_length = res->body_len;
    h2o_send_inline(req, res->body != NULL ? res->body : "", res->body_len);
}

/* A problem answered on the loop thread, before any copy of the request,
 * with one more header if header_name is not NULL. */
static void send_problem_with(h2o_req_t *req, request_tracker *t, int status, const char *code, const char *detail,
                              const char *header_name, const char *header_value)
{
    http_request rq = {0};
    http_response res = {0};
    memcpy(rq.request_id, t->request_id, sizeof(rq.request_id));
    rq.path = copy_iovec(req->path.base, path_length(req));
    http_problem(&res, &rq, status, code, "%s", detail);
    if (header_name != NULL)
        http_response_header(&res, header_name, "%s", header_value);
    send_response(req, t->request_id, &rq, &res);
    http_response_free(&res);
    request_free(&rq);
}

static void send_problem(h2o_req_t *req, request_tracker *t, int status, const char *code, const char *detail,
                         const char *allow)
{
    send_problem_with(req, t, status, code, detail, allow != NULL ? "allow" : NULL, allow);
}

/* 503 for a request shed under load: Retry-After is the queue's deadline,
 * rounded up to a second (by then the queue has turned over). */
void request_send_overloaded(h2o_req_t *req, request_tracker *t, const strata_config *cfg, metrics_shed_reason reason)
{
    int retry_s = (cfg->queue_timeout_ms + 999) / 1000;
    char detail[200], retry[16];
    if (reason == METRICS_SHED_QUEUE_FULL)
        snprintf(detail, sizeof(detail),
                 "the server is overloaded: %d requests already wait for the database (server.queue_max); "
                 "retry after %d s",
                 cfg->queue_max, retry_s);
    else if (reason == METRICS_SHED_DEADLINE)
        snprintf(detail, sizeof(detail),
                 "the server is overloaded: the request could not start in time for the database "
                 "(server.queue_timeout_ms %d ms; server.queue_target_ms %d ms while requests queue); "
                 "retry after %d s",
                 cfg->queue_timeout_ms, cfg->queue_target_ms, retry_s);
    else
        snprintf(detail, sizeof(detail), "the client closed its connection before the request started");
    snprintf(retry, sizeof(retry), "%d", retry_s);
    send_problem_with(req, t, 503, "overloaded", detail, "retry-after", retry);
}

void request_send_no_memory(h2o_req_t *req, request_tracker *t)
{
    send_problem(req, t, 503, "out_of_memory", "the server is out of memory", NULL);
}

void request_allow_value(unsigned methods, char *out, size_t size)
{
    static const struct {
        http_method method;
        const char *name;
    } names[] = {{HTTP_GET, "GET"}, {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},
                 {HTTP_PUT, "PUT"}, {HTTP_DELETE, "DELETE"}, {HTTP_PATCH, "PATCH"}};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < size; i++)
        if (methods & names[i].method)
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "", names[i].name);
}

/* ---- jobs ---------------------------------------------------------------------------- */

static void job_free(job *j)
{
    if (j->kind != JOB_TASK) {
        request_free(&j->request.rq);
        http_response_free(&j->request.res);
    }
    if (j->kind == JOB_FILL)
        fill_free(j);
    free(j);
}

/* Any thread: whether the job's work is still wanted by someone — a
 * write always is; a read while its client is there, or while another
 * request waits on its flight. */
static bool job_wanted(job *j)
{
    if (j->kind == JOB_TASK || !atomic_load_explicit(&j->queue.client_gone, memory_order_relaxed))
        return true;
    if (j->request.rq.method != HTTP_GET && j->request.rq.method != HTTP_HEAD)
        return true;
    return j->kind == JOB_FILL && fill_has_waiters(j);
}

/* Any thread, under the pool's lock (pool_job.awaited): a fill that
 * another request waits for. */
static bool job_awaited(pool_job *pj)
{
    return fill_has_waiters(H2O_STRUCT_FROM_MEMBER(job, super, pj));
}

/* Any thread: the job will not run; a fill's flight ends empty. */
static void job_mark_shed(job *j, metrics_shed_reason reason)
{
    j->queue.shed = true;
    j->queue.reason = reason;
    if (j->kind == JOB_FILL)
        fill_abandon(j);
}

/* Worker thread: true, with the job marked shed, when it must not run
 * (past its deadline, or nobody wants it). */
static bool job_skip(job *j)
{
    if (j->super.late || (j->queue.deadline_ns != 0 && rc_now_ns() > j->queue.deadline_ns))
        job_mark_shed(j, METRICS_SHED_DEADLINE);
    else if (!job_wanted(j))
        job_mark_shed(j, METRICS_SHED_CLIENT_GONE);
    else
        return false;
    return true;
}

/* Worker thread, or a loop for a loop read: the route's handler; a
 * fill's representation is built and handed to the fill machine
 * (fill_ran). False when a handler on the loop asked for a worker. */
static bool job_handle(job *j, void *worker, bool on_loop)
{
    job_request *r = &j->request;
    uint64_t started = rc_now_ns();
    worker_pool *pool = !on_loop && j->owner != NULL && j->super.lane == POOL_PUBLIC ? &j->owner->srv->pool : NULL;
    if (pool != NULL)
        worker_pool_background(pool, true);
    r->rq.on_loop = on_loop;
    r->route->worker_handler(&r->rq, worker, &r->res);
    if (on_loop && r->res.needs_worker) { /* not a bounded read after all: nothing of it is kept */
        http_response_free(&r->res);
        memset(&r->res, 0, sizeof r->res);
        return false;
    }
    uint64_t handler_us = (rc_now_ns() - started) / 1000;
    cache_value value;
    bool built = j->kind == JOB_FILL && rc_build(r->route, &r->res, handler_us, &value);
    /* Read on a replica behind an invalidation this instance has heard of
     * since the read began: the answer may go to this request and its
     * waiters, which came before that invalidation reached here, but no
     * tier keeps it. */
    if (built && r->res.read_lsn != LSN_NONE && r->res.read_lsn < http_cache_lsn_floor())
        value.share_only = true;
    if (pool != NULL)
        worker_pool_background(pool, false);
    if (j->kind == JOB_FILL)
        fill_ran(j, built ? &value : NULL, r->res.read_lsn);
    return true;
}

/* Worker thread. */
static void job_run(pool_job *pj, void *worker)
{
    job *j = H2O_STRUCT_FROM_MEMBER(job, super, pj);
    if (job_skip(j)) {
        h2o_multithread_send_message(&j->owner->jobs_done, &j->done);
        return;
    }
    if (j->kind == JOB_TASK)
        j->task.run(worker);
    else
        job_handle(j, worker, false);
    rc_await_invalidations(); /* a write is answered once Redis has its invalidations */
    if (j->owner == NULL)
        job_free(j);
    else
        h2o_multithread_send_message(&j->owner->jobs_done, &j->done);
}

static job *job_new(loop_thread *lt, job_kind kind)
{
    job *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        j->super.run = job_run;
        j->super.awaited = kind == JOB_FILL ? job_awaited : NULL;
        j->owner = lt;
        j->kind = kind;
    }
    return j;
}

job *request_job_new(loop_thread *lt, h2o_req_t *req, const request_tracker *t, int route_index,
                     const http_captures *caps, job_kind kind)
{
    job *j = job_new(lt, kind);
    if (j == NULL)
        return NULL;
    j->request.route = &lt->srv->app->routes[route_index];
    if (request_copy(req, t, route_index, caps, false, &j->request.rq) != 0) {
        job_free(j);
        return NULL;
    }
    return j;
}

void request_job_attach(job *j, h2o_req_t *req, request_tracker *t)
{
    j->request.req = req;
    j->request.tracker = t;
    t->job = j;
}

void request_job_send_response(job *j)
{
    job_request *r = &j->request;
    r->tracker->job = NULL;
    if (j->kind == JOB_REQUEST && r->route->cache != NULL) /* a cacheable route read with Authorization */
        rc_send_bypass_headers(r->req);
    send_response(r->req, r->tracker->request_id, &r->rq, &r->res);
}

void request_job_finish(job *j)
{
    j->owner->jobs_outstanding--;
    job_free(j);
}

/* Back on the loop from the pool (run or shed), or shed on the loop:
 * the request answered, the job freed — a fill by the fill machine. */
static void job_complete(job *j)
{
    if (h2o_timeout_is_linked(&j->queue.deadline))
        h2o_timeout_unlink(&j->queue.deadline);
    if (h2o_linklist_is_linked(&j->queue.queued_link))
        h2o_linklist_unlink(&j->queue.queued_link);
    if (j->kind == JOB_TASK) {
        *j->task.running = false;
        request_job_finish(j);
        return;
    }
    if (j->queue.shed && (j->request.req != NULL || j->queue.reason == METRICS_SHED_CLIENT_GONE))
        metrics_shed(j->request.rq.route_id, j->queue.reason);
    if (j->kind == JOB_FILL) {
        fill_returned(j);
        return;
    }
    if (j->request.req != NULL) {
        if (j->queue.shed) {
            j->request.tracker->job = NULL;
            request_send_overloaded(j->request.req, j->request.tracker, j->owner->srv->cfg, j->queue.reason);
        } else {
            request_job_send_response(j);
        }
    }
    request_job_finish(j);
}

void request_on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        job_complete(H2O_STRUCT_FROM_MEMBER(job, done, m));
    }
}

/* A job answering req with the route's handler's response. */
static void submit_request_job(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index,
                               const http_captures *caps)
{
    job *j = request_job_new(lt, req, t, route_index, caps, JOB_REQUEST);
    if (j == NULL) {
        request_send_no_memory(req, t);
        return;
    }
    request_job_attach(j, req, t);
    lt->jobs_outstanding++;
    request_job_enqueue(j);
}

/* ---- load shedding (see the top of the file) ------------------------------------------ */

/* Loop thread: ends a job that will not run (its flight empty), answering
 * its request as shed. */
static void job_shed(job *j, metrics_shed_reason reason)
{
    job_mark_shed(j, reason);
    job_complete(j);
}

static void on_job_deadline(h2o_timeout_entry_t *entry)
{
    job *j = H2O_STRUCT_FROM_MEMBER(job, queue.deadline, entry);
    if (worker_pool_cancel(&j->owner->srv->pool, &j->super))
        job_shed(j, METRICS_SHED_DEADLINE);
    /* else a worker has it: it runs, or finds it late and sends it back */
}

/* Loop thread: the client of a queued job is gone. Taken back and ended
 * at once if nobody wants it; otherwise the worker decides. */
static void job_client_gone(job *j)
{
    atomic_store_explicit(&j->queue.client_gone, true, memory_order_relaxed);
    if (!job_wanted(j) && worker_pool_cancel(&j->owner->srv->pool, &j->super))
        job_shed(j, METRICS_SHED_CLIENT_GONE);
}

/* Whether an HTTP/1 client has closed its connection (or it broke):
 * h2o reads nothing from it while its request is processed, so peek. */
static bool http1_client_gone(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return false;
    char byte;
    ssize_t n = recv(h2o_socket_get_fd(sock), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void on_queue_probe(h2o_timeout_entry_t *entry)
{
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, queue_probe, entry);
    size_t turn = 0; /* each job at most once a turn */
    for (h2o_linklist_t *node = lt->queued_jobs.next; node != &lt->queued_jobs && turn < QUEUE_PROBE_BATCH;
         node = node->next)
        turn++;
    for (size_t n = 0; n < turn && !h2o_linklist_is_empty(&lt->queued_jobs); n++) {
        job *j = H2O_STRUCT_FROM_MEMBER(job, queue.queued_link, lt->queued_jobs.next);
        h2o_linklist_unlink(&j->queue.queued_link); /* to the back: the next turn looks at others */
        h2o_linklist_insert(&lt->queued_jobs, &j->queue.queued_link);
        if (j->request.req != NULL && !atomic_load_explicit(&j->queue.client_gone, memory_order_relaxed) &&
            http1_client_gone(j->request.req))
            job_client_gone(j); /* may free j */
    }
    if (!h2o_linklist_is_empty(&lt->queued_jobs))
        h2o_timeout_link(lt->ctx.loop, &lt->queue_probe_timeout, &lt->queue_probe);
}

static pool_lane job_lane(const job *j)
{
    if (j->kind == JOB_TASK)
        return POOL_TASK;
    return j->request.rq.authorization != NULL ? POOL_EDITOR : POOL_PUBLIC;
}

/* ---- reads on the loop (see the top of the file) ---------------------------------------- */

/* Whether this turn of the loop (since its poll returned) has run for
 * LOOP_READ_SLICE_MS: the rest of the turn's reads are deferred, so a
 * flood of misses never keeps the loop from its sockets (an open loop of
 * misses at 3× capacity hung requests without it). A turn is then about
 * two slices and the loop's sockets; what is answered waits about one
 * turn, so the slice is short: 1 ms halved the answered misses' median
 * under a 3× flood (9 → 5 ms) at the same throughput. In h2o's clock:
 * wall milliseconds, taken when the poll returned. */
static bool loop_turn_spent(loop_thread *lt)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;
    return now_ms >= h2o_now(lt->ctx.loop) + LOOP_READ_SLICE_MS;
}

/* Whether j is an anonymous bounded read this loop could run with its own
 * connection. An editor's read stays on the workers: it may list every
 * status, which no index orders. */
static bool job_is_loop_read(const job *j)
{
    const loop_thread *lt = j->owner;
    const job_request *r = &j->request;
    return j->kind != JOB_TASK && lt->reader != NULL && r->route->bounded_read &&
           !(r->route->cache != NULL && r->route->cache->unbounded != NULL && r->route->cache->unbounded(&r->rq)) &&
           job_lane(j) == POOL_PUBLIC && (r->rq.method == HTTP_GET || r->rq.method == HTTP_HEAD);
}

static void job_to_pool(job *j);

/* Loop thread: runs a loop read here and now, and completes it — or gives
 * it to the pool when its handler found it was no bounded read (a range on
 * a declared field with more values than ordered walks pay for:
 * store/lists.c). */
static void loop_read_run(job *j)
{
    loop_thread *lt = j->owner;
    metrics_loop_read();
    uint64_t started = rc_now_ns();
    bool answered = job_handle(j, lt->reader, true);
    worker_pool_ran_on_loop(&lt->srv->pool, rc_now_ns() - started);
    if (answered) {
        job_complete(j);
        return;
    }
    metrics_loop_read_to_worker();
    job_to_pool(j);
}

/* How long a deferred read may wait once the list stands: LOOP_READ_TARGET_MS,
 * or the queue's own target if that is lower (0: none, only the deadline).
 * Tighter than the pool's target, which also covers unbounded reads and
 * PostgreSQL's round trips: a loop read costs well under a millisecond,
 * so one that has waited 10 ms has seen the loop's turns pass it by, and
 * answering it later only makes the answered late (measured under
 * bench/overload.sh: answered misses' p99 21–25 ms with the 50 ms target,
 * 9.4–9.6 ms with 10 ms; docs/benchmarks.md). */
static uint64_t loop_read_target_ns(const strata_config *cfg)
{
    uint64_t ms = (uint64_t)cfg->queue_target_ms;
    return (ms < LOOP_READ_TARGET_MS ? ms : LOOP_READ_TARGET_MS) * 1000000u;
}

/* Loop thread: keeps a loop read for the loop's next turns (newest last);
 * shed at once when server.queue_max reads wait already. */
static void loop_read_defer(job *j)
{
    loop_thread *lt = j->owner;
    const strata_config *cfg = lt->srv->cfg;
    if (lt->deferred_count >= (size_t)cfg->queue_max) {
        job_shed(j, METRICS_SHED_QUEUE_FULL);
        return;
    }
    j->queue.deferred_ns = rc_now_ns();
    if (lt->deferred_count == 0)
        lt->deferred_since_ns = j->queue.deferred_ns;
    h2o_linklist_insert(&lt->deferred_reads, &j->queue.queued_link);
    lt->deferred_count++;
    metrics_loop_read_deferred();
}

bool request_deferred_waiting(const loop_thread *lt)
{
    return lt->deferred_count > 0;
}

/* Loop thread: j leaves the deferred reads. */
static void loop_read_undefer(loop_thread *lt, job *j)
{
    h2o_linklist_unlink(&j->queue.queued_link);
    lt->deferred_count--;
}

/* Loop thread: after the loop's poll, sheds the deferred reads past their
 * wait, then runs others for a slice. What a read may wait is CoDel's
 * distinction, as in the pool's public lane (worker_pool.c): while the
 * list has been empty within LOOP_READ_STANDING_MS it is a burst (a Redis
 * restart clearing the cache sends every reader to a miss at once) and
 * its reads wait up to the queue's deadline, server.queue_timeout_ms —
 * shedding them at 10 ms answered 503 to readers of a server far from
 * its capacity (the soak on the ASan build, 1 run in 3: waits of 16 and
 * 20 ms); once it stands, the loop is behind and a read that has waited
 * loop_read_target_ns is shed. Half the pool's POOL_STANDING_MS, as the
 * loop's turns are short: measured under bench/overload.sh, answered
 * misses' p99 4.2–4.7× unloaded with 100 ms, 2.6–3.5× with 50 ms
 * (3.0–3.2× shedding at once), and none of 6 soaks answered 5xx.
 * The order is adaptive LIFO: arrival order while the oldest has waited
 * less than half that target (a closed loop of clients keeps a short
 * list that is never empty, and the newest first would leave its oldest
 * to be shed: measured, a fifth fewer of a 16-client loop's requests
 * shed), the newest first past that, so that under a flood what is
 * answered is answered at once. */
void request_run_deferred(loop_thread *lt)
{
    if (lt->deferred_count == 0) /* every turn of every loop: nothing more then */
        return;
    const strata_config *cfg = lt->srv->cfg;
    uint64_t started = rc_now_ns(), slice_ns = (uint64_t)LOOP_READ_SLICE_MS * 1000000u;
    uint64_t deadline_ns = (uint64_t)cfg->queue_timeout_ms * 1000000u, target_ns = loop_read_target_ns(cfg);
    bool standing = target_ns != 0 && started - lt->deferred_since_ns > (uint64_t)LOOP_READ_STANDING_MS * 1000000u;
    uint64_t wait_max_ns = standing ? target_ns : deadline_ns;
    uint64_t congested_ns = (target_ns != 0 ? target_ns : deadline_ns) / 2;
    while (lt->deferred_count > 0) { /* the oldest first: those past their wait are shed */
        job *j = H2O_STRUCT_FROM_MEMBER(job, queue.queued_link, lt->deferred_reads.next);
        if (started - j->queue.deferred_ns <= wait_max_ns)
            break;
        loop_read_undefer(lt, j);
        job_shed(j, METRICS_SHED_DEADLINE);
    }
    uint64_t now;
    while (lt->deferred_count > 0 && (now = rc_now_ns()) - started < slice_ns) {
        job *oldest = H2O_STRUCT_FROM_MEMBER(job, queue.queued_link, lt->deferred_reads.next);
        bool congested = now - oldest->queue.deferred_ns >= congested_ns;
        job *j = congested ? H2O_STRUCT_FROM_MEMBER(job, queue.queued_link, lt->deferred_reads.prev) : oldest;
        loop_read_undefer(lt, j);
        loop_read_run(j);
    }
}

/* Loop thread: a loop read runs here and now, or waits for the loop's
 * next turns once this one has run reads for its slice — while the pool
 * lets loops fill (misses are most of the traffic). */
static bool job_run_on_loop(job *j)
{
    if (!job_is_loop_read(j) || !worker_pool_admit_on_loop(&j->owner->srv->pool))
        return false;
    if (loop_turn_spent(j->owner))
        loop_read_defer(j);
    else
        loop_read_run(j);
    return true;
}

/* Loop thread: runs a bounded read on the loop (or keeps it for the next
 * turn), or gives the job to the pool, or sheds it when its lane is full.
 * An anonymous job given to the pool gets its deadline and a place in the
 * probe's list. */
void request_job_enqueue(job *j)
{
    if (!job_run_on_loop(j))
        job_to_pool(j);
}

/* Loop thread: gives j to the pool, or sheds it when its lane is full.
 * A public job's submit also takes back this loop's jobs that a standing
 * queue has kept past its target; they are shed here, once j is in
 * place (shedding answers their waiters, which may submit jobs of their
 * own), instead of each waking a worker that would only mark it late
 * and send it back: under bench/overload.sh's flood beside hits the
 * workers slept and woke 37,000 times in 8 s before, 4,000 after. */
static void job_to_pool(job *j)
{
    loop_thread *lt = j->owner;
    pool_lane lane = job_lane(j);
    bool timed = lane == POOL_PUBLIC;
    j->queue.deadline_ns = timed ? rc_now_ns() + (uint64_t)lt->srv->cfg->queue_timeout_ms * 1000000u : 0;
    j->super.owner = timed ? lt : NULL;
    pool_job *late;
    if (!worker_pool_submit(&lt->srv->pool, &j->super, lane, &late)) {
        job_shed(j, METRICS_SHED_QUEUE_FULL);
    } else if (timed) {
        j->queue.deadline.cb = on_job_deadline;
        h2o_timeout_link(lt->ctx.loop, &lt->queue_timeout, &j->queue.deadline);
        h2o_linklist_insert(&lt->queued_jobs, &j->queue.queued_link);
        if (!h2o_timeout_is_linked(&lt->queue_probe))
            h2o_timeout_link(lt->ctx.loop, &lt->queue_probe_timeout, &lt->queue_probe);
    }
    while (late != NULL) {
        job *taken = H2O_STRUCT_FROM_MEMBER(job, super, late);
        late = late->next;
        job_shed(taken, METRICS_SHED_DEADLINE);
    }
}

void request_loop_init(loop_thread *lt)
{
    h2o_timeout_init(lt->ctx.loop, &lt->queue_timeout, (uint64_t)lt->srv->cfg->queue_timeout_ms);
    h2o_timeout_init(lt->ctx.loop, &lt->queue_probe_timeout, QUEUE_PROBE_MS);
    h2o_linklist_init_anchor(&lt->queued_jobs);
    h2o_linklist_init_anchor(&lt->deferred_reads);
    lt->queue_probe.cb = on_queue_probe;
}

void request_loop_dispose(loop_thread *lt)
{
    if (h2o_timeout_is_linked(&lt->queue_probe))
        h2o_timeout_unlink(&lt->queue_probe);
    h2o_timeout_dispose(lt->ctx.loop, &lt->queue_probe_timeout);
    h2o_timeout_dispose(lt->ctx.loop, &lt->queue_timeout);
}

void request_submit_task(loop_thread *lt, void (*task)(void *worker), bool *running)
{
    job *j = job_new(lt, JOB_TASK);
    if (j == NULL)
        return;
    j->task.run = task;
    j->task.running = running;
    *running = true;
    lt->jobs_outstanding++;
    request_job_enqueue(j);
}

void request_submit_detached_task(server *srv, void (*task)(void *worker))
{
    job *j = job_new(NULL, JOB_TASK);
    if (j == NULL)
        return;
    j->task.run = task;
    worker_pool_submit(&srv->pool, &j->super, POOL_TASK, NULL);
}

/* ---- the tracker's end ------------------------------------------------------------------- */

static void on_request_disposed(void *p)
{
    request_tracker *t = p;
    /* h2o lets the request's memory go once its response is sent, while
     * the request is still whole: its status is final. h2o's timestamps
     * are the loop's cached clock (a hit begins and ends within one tick),
     * so the time is measured from the handler's start. */
    if (metrics_enabled())
        metrics_request(t->route, t->method_index, t->req->res.status, (rc_now_ns() - t->started_ns) / 1000);
    t->owner->active_requests--;
    /* this loop is the only writer: no locked add on the hit path */
    atomic_store_explicit(&t->owner->requests_done,
                          atomic_load_explicit(&t->owner->requests_done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    protocol_guard_stream_disposed(t->req);
    conn_guard_request_done(t->req);
    if (t->job != NULL) {
        t->job->request.req = NULL;
        job_client_gone(t->job);
    }
    if (t->waiter != NULL)
        fill_waiter_gone(t->waiter);
}

/* ---- cacheable reads -------------------------------------------------------------------------- */

/* The hit path: a fresh entry is sent from here, on the loop, with no
 * worker, copy or lock beyond the L1's own; anything else is the fill
 * machine's (fill.c). */
static void cached_read(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps)
{
    char key[RC_KEY_MAX], site[RC_SITE_MAX + 1];
    uint32_t ns;
    size_t plen = path_length(req);
    const char *query = req->query_at != SIZE_MAX ? req->path.base + plen + 1 : "";
    size_t query_len = req->query_at != SIZE_MAX ? req->path.len - plen - 1 : 0;
    size_t key_len = rc_key(route_index, req->path.base, caps, query, query_len, key, &ns, site);
    if (key_len == 0) {
        fill_alone(lt, req, t, route_index, caps);
        return;
    }
    fill_key k = {key, key_len, ns, site};
    cache *c = rc_cache();
    uint64_t now = rc_now_ms();
    cache_entry *e = NULL;
    switch (cache_get(c, ns, key, key_len, now, &e)) {
    case CACHE_FRESH: rc_send(req, t->request_id, &e, RC_HIT, t->started_ns); return;
    case CACHE_STALE:
        fill_refresh(lt, req, t, route_index, caps, &k);
        rc_send(req, t->request_id, &e, RC_STALE, t->started_ns);
        return;
    case CACHE_EXPIRED: /* e is kept: the fail-safe copy */
    case CACHE_MISS: fill_miss(lt, req, t, route_index, caps, &k, &e); return;
    }
}

/* A read naming a write (Strata-LSN) that this instance has not surely
 * heard of (http_cache_heard_through) — made on another instance, its bus
 * message still on the way, the bus down, or no bus at all — cannot be
 * answered from the cache, which may predate it: it goes to a worker like
 * a token's read, and reads at or past that position
 * (content/positions.c). A malformed value goes there too, to be answered
 * 400. One header scan on the hit path; no more unless the header is there. */
static bool names_an_unheard_write(h2o_req_t *req)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("strata-lsn"), -1);
    if (at < 0)
        return false;
    const h2o_iovec_t *value = &req->headers.entries[at].value;
    lsn_t lsn;
    return !lsn_parse(value->base, value->len, &lsn) || !http_cache_heard_through(lsn);
}

/* ---- the entry point ---------------------------------------------------------------------------- */

int request_on_request(h2o_handler_t *self, h2o_req_t *req)
{
    server *srv = ((strata_handler *)self)->srv;
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, req->conn->ctx);
    request_tracker *t = h2o_mem_alloc_shared(&req->pool, sizeof(*t), on_request_disposed);
    *t = (request_tracker){.owner = lt,
                           .started_ns = rc_now_ns(),
                           .req = req,
                           .route = -1,
                           .method_index = request_method_index(req->method)};
    lt->active_requests++;
    assign_request_id(lt, req, t->request_id);

    char detail[160];
    if (protocol_guard_stream_refused(req, detail, sizeof(detail))) {
        send_problem(req, t, 429, "too_many_resets", detail, NULL);
        return 0;
    }
    int64_t limit = atomic_load_explicit(&srv->max_header_bytes, memory_order_relaxed);
    if ((int64_t)req->path.len > limit) {
        snprintf(detail, sizeof(detail), "the request target is %zu bytes; the limit is %lld (server.max_header_bytes)",
                 req->path.len, (long long)limit);
        send_problem(req, t, 414, "uri_too_long", detail, NULL);
        return 0;
    }
    if ((int64_t)header_bytes(req) > limit) {
        snprintf(detail, sizeof(detail), "request headers total %zu bytes; the limit is %lld (server.max_header_bytes)",
                 header_bytes(req), (long long)limit);
        send_problem(req, t, 431, "headers_too_large", detail, NULL);
        return 0;
    }

    http_method method = (http_method)(1u << t->method_index);
    http_captures caps;
    unsigned allowed;
    int index = http_route_find(srv->app->routes, srv->app->route_count, method, req->path.base, path_length(req),
                                &caps, &allowed);
    t->route = index;
    if (index < 0 && allowed != 0 && cors_is_preflight(req)) {
        if (!cors_preflight(req, allowed, detail, sizeof(detail)))
            send_problem(req, t, 403, "origin_not_allowed", detail, NULL);
        return 0;
    }
    if (index < 0) {
        if (allowed == 0) {
            send_problem(req, t, 404, "no_route", "no route for this path", NULL);
        } else {
            char allow[96];
            request_allow_value(allowed, allow, sizeof(allow));
            snprintf(detail, sizeof(detail), "%.*s is not allowed on this path; use %s", (int)req->method.len,
                     req->method.base, allow);
            send_problem(req, t, 405, "method_not_allowed", detail, allow);
        }
        return 0;
    }

    if (ratelimit_refuse_client(lt->index, req, detail, sizeof(detail))) {
        send_problem(req, t, 429, "rate_limited", detail, NULL);
        return 0;
    }
    const http_route *route = &srv->app->routes[index];
    bool anonymous = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) < 0;
    if (route->cache != NULL && rc_cache() != NULL && anonymous && (method == HTTP_GET || method == HTTP_HEAD) &&
        !names_an_unheard_write(req)) {
        cached_read(lt, req, t, index, &caps);
        return 0;
    }
    if (route->loop_handler != NULL) {
        http_request rq = {0};
        http_response res = {0};
        bool answered = request_copy(req, t, index, &caps, true, &rq) == 0 && route->loop_handler(&rq, &res);
        if (answered)
            send_response(req, t->request_id, &rq, &res);
        http_response_free(&res);
        request_free(&rq);
        if (answered || route->worker_handler == NULL) {
            if (!answered)
                send_problem(req, t, 503, "out_of_memory", "the server is out of memory", NULL);
            return 0;
        }
    }
    /* a cacheable route without the cache (off, or Authorization): a
     * representation only when the cache is off, so headers stay alike */
    if (route->cache != NULL && rc_cache() == NULL && anonymous)
        fill_alone(lt, req, t, index, &caps);
    else
        submit_request_job(lt, req, t, index, &caps);
    return 0;
}

/*
 * request.c — the request path: from h2o's callback to a response.
 *
 * On the loop thread a request is given an id, checked against the limits,
 * routed, and then, for a cacheable public read, looked up in the L1:
 *
 *   fresh   → sent at once from the loop thread (no worker, no copy);
 *   stale   → sent at once, and one background refresh is started;
 *   miss    → the first request of a key becomes the flight's leader and
 *             its job fills the entry; the others wait for it (bounded by
 *             cache.coalesce_timeout_ms, after which they read for
 *             themselves) and are sent the leader's representation;
 *   expired → like a miss, but the expired copy is held: if the fill fails
 *             (5xx), it is served instead (fail-safe).
 *
 * A flight's leader asks the L2 (Redis) first, on the loop, when there is
 * one and its breaker is closed: a hit is promoted to the L1 and answers
 * the flight; a miss takes the key's lease and the job fills from the
 * database, then stores the result in the L2 fenced at the lookup's
 * snapshot; if another instance holds the lease the leader polls the L2
 * (bounded by cache.coalesce_timeout_ms, then fills alone), serving its
 * expired copy at once if it has one. Any L2 error: the database.
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
 * waited past server.queue_target_ms in a standing queue (worker_pool.h), is
 * shed: its request is answered on the loop from the stale copy the miss
 * found, if any (Cache-Status: fwd=stale), else with 503, Retry-After and
 * a problem+json detail; its flight ends empty, so its waiters answer
 * alone (and, once older than the deadline themselves, are shed too).
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
#include "http/ratelimit.h"
#include "http/server_internal.h"
#include "metrics/metrics.h"

#define QUEUE_PROBE_MS 50    /* how often queued HTTP/1 clients are looked at */
#define QUEUE_PROBE_BATCH 64 /* …and how many of them at most, each time */

struct job {
    pool_job super;                 /* worker queue link */
    h2o_multithread_message_t done; /* loop queue link */
    loop_thread *owner;             /* NULL: detached, nobody to tell */
    h2o_req_t *req;                 /* NULL once the client is gone, or none */
    request_tracker *tracker;
    const http_route *route;
    http_request rq;
    http_response res;
    /* response cache */
    bool represent;       /* answer with a representation (cacheable route) */
    bool bypass;          /* cacheable route read with Authorization */
    cache_flight *flight; /* this job is the flight's leader */
    cache_entry *entry;   /* the representation built */
    bool stored;
    cache_entry *stale; /* fail-safe copy */
    rc_outcome outcome; /* with outcome_set: an entry not from this job's handler */
    bool outcome_set;
    /* the L2: a flight's key, and what the fill stores there */
    bool l2_fill;
    bool l2_refill;        /* refreshing a stale L2 value: no read, only a snapshot and the lease */
    bool l2_others_refill; /* another instance refreshes it: a stale value ends the flight */
    uint64_t l2_snapshot;
    char l2_token[L2_TOKEN_MAX + 1];
    l2_record l2_rec; /* built by the worker */
    uint64_t l2_ttl_ms;
    uint64_t l2_poll_until;
    h2o_timeout_entry_t l2_poll;
    uint32_t ns;
    char site[RC_SITE_MAX + 1];
    size_t key_len;
    char key[RC_KEY_MAX];
    /* periodic work */
    void (*task)(void *worker);
    bool *task_running;
    /* load shedding */
    h2o_timeout_entry_t deadline; /* loop: in lt->queue_timeout while on the public lane */
    h2o_linklist_t queued_link;   /* loop: in lt->queued_jobs, likewise */
    uint64_t deadline_ns;         /* a worker taking it later does not run it; 0: none */
    atomic_bool client_gone;      /* set on the loop, read by the worker */
    bool shed;
    metrics_shed_reason shed_reason;
};

struct waiter {
    cache_waiter super;
    h2o_multithread_message_t done;
    loop_thread *owner;
    h2o_req_t *req; /* NULL once the client is gone */
    request_tracker *tracker;
    h2o_timeout_entry_t timer;
    cache_entry *result;
    cache_entry *stale;
    int route_index;
    http_captures caps;
    size_t key_len;
    char key[RC_KEY_MAX];
};

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
    free(rq->forwarded_for);
    memset(rq, 0, sizeof(*rq));
}

static size_t path_length(h2o_req_t *req)
{
    return req->query_at != SIZE_MAX ? req->query_at : req->path.len;
}

static http_method method_of(h2o_iovec_t m)
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
    return (unsigned)__builtin_ctz((unsigned)method_of(method));
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
    rq->method = method_of(req->method);
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
static void send_overloaded(h2o_req_t *req, request_tracker *t, const strata_config *cfg, metrics_shed_reason reason)
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

static void allow_header_value(unsigned methods, char *out, size_t size)
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
    request_free(&j->rq);
    http_response_free(&j->res);
    cache_entry_release(&j->entry);
    cache_entry_release(&j->stale);
    l2_record_free(&j->l2_rec);
    free(j);
}

/* Any thread: whether the job's work is still wanted by someone — a
 * write always is; a read while its client is there, or while another
 * request waits on its flight. */
static bool job_wanted(job *j)
{
    if (j->task != NULL || !atomic_load_explicit(&j->client_gone, memory_order_relaxed))
        return true;
    if (j->rq.method != HTTP_GET && j->rq.method != HTTP_HEAD)
        return true;
    return j->flight != NULL && cache_flight_has_waiters(rc_cache(), j->flight);
}

/* Worker thread: true, with the job marked shed and its flight ended
 * empty, when it must not run (past its deadline, or nobody wants it). */
static bool job_skip(job *j)
{
    if (j->super.late || (j->deadline_ns != 0 && rc_now_ns() > j->deadline_ns))
        j->shed_reason = METRICS_SHED_DEADLINE;
    else if (!job_wanted(j))
        j->shed_reason = METRICS_SHED_CLIENT_GONE;
    else
        return false;
    j->shed = true;
    if (j->flight != NULL)
        cache_flight_finish(rc_cache(), j->flight, NULL, rc_now_ms(), NULL);
    j->flight = NULL;
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
    if (j->task != NULL) {
        j->task(worker);
    } else {
        uint64_t started = rc_now_ns();
        worker_pool *pool = j->owner != NULL && j->super.lane == POOL_PUBLIC ? &j->owner->srv->pool : NULL;
        if (pool != NULL)
            worker_pool_background(pool, true);
        j->route->worker_handler(&j->rq, worker, &j->res);
        uint64_t handler_us = (rc_now_ns() - started) / 1000;
        cache_value value;
        bool built = j->represent && rc_build(j->route, &j->res, handler_us, &value);
        if (pool != NULL)
            worker_pool_background(pool, false);
        bool shared = built && !value.share_only;
        if (j->flight != NULL)
            j->stored = cache_flight_finish(rc_cache(), j->flight, built ? &value : NULL, rc_now_ms(), &j->entry);
        else if (built)
            j->entry = cache_entry_new(&value, rc_now_ms());
        j->flight = NULL;
        if (j->l2_fill && shared && j->entry != NULL)
            rc_l2_record(j->entry, j->l2_snapshot, &j->l2_rec, &j->l2_ttl_ms);
    }
    rc_await_invalidations(); /* a write is answered once Redis has its invalidations */
    if (j->owner == NULL)
        job_free(j);
    else
        h2o_multithread_send_message(&j->owner->jobs_done, &j->done);
}

static job *job_new(loop_thread *lt, const http_route *route)
{
    job *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        j->super.run = job_run;
        j->owner = lt;
        j->route = route;
    }
    return j;
}

static void job_enqueue(job *j);

static void job_submit(job *j)
{
    j->owner->jobs_outstanding++;
    job_enqueue(j);
}

static void fill_start(job *j);

/* A cacheable key, for the fill that leads its flight. */
typedef struct fill_key {
    const char *key;
    size_t key_len;
    uint32_t ns;
    const char *site;
} fill_key;

static void job_set_key(job *j, const fill_key *k)
{
    memcpy(j->key, k->key, k->key_len);
    j->key_len = k->key_len;
    j->ns = k->ns;
    snprintf(j->site, sizeof(j->site), "%s", k->site);
}

/* A job answering req (its tracker is attached); with a flight, the fill
 * of key k that leads it. Returns false, having answered 503, when memory
 * runs out. */
static bool submit_request_job(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index,
                               const http_captures *caps, bool represent, cache_flight *flight, cache_entry **stale,
                               const fill_key *k)
{
    const http_route *route = &lt->srv->app->routes[route_index];
    job *j = job_new(lt, route);
    if (j == NULL || request_copy(req, t, route_index, caps, false, &j->rq) != 0) {
        if (j != NULL)
            job_free(j);
        if (flight != NULL)
            cache_flight_finish(rc_cache(), flight, NULL, rc_now_ms(), NULL);
        send_problem(req, t, 503, "out_of_memory", "the server is out of memory", NULL);
        return false;
    }
    j->req = req;
    j->tracker = t;
    j->represent = represent;
    j->bypass = route->cache != NULL && !represent;
    j->flight = flight;
    if (stale != NULL) {
        j->stale = *stale;
        *stale = NULL;
    }
    t->job = j;
    if (flight != NULL) {
        job_set_key(j, k);
        fill_start(j);
    } else {
        job_submit(j);
    }
    return true;
}

/* The answer of a shed job's request: its stale copy, or 503. */
static void answer_shed(job *j)
{
    request_tracker *t = j->tracker;
    t->job = NULL;
    if (j->stale != NULL)
        rc_send(j->req, t->request_id, &j->stale, RC_FAILSAFE, t->started_ns);
    else
        send_overloaded(j->req, t, j->owner->srv->cfg, j->shed_reason);
}

/* Answers the job's request, if it still waits, and hands the L2 what the
 * fill owes it. Loop thread; the job is freed. */
static void job_complete(job *j)
{
    loop_thread *lt = j->owner;
    if (h2o_timeout_is_linked(&j->deadline))
        h2o_timeout_unlink(&j->deadline);
    if (h2o_linklist_is_linked(&j->queued_link))
        h2o_linklist_unlink(&j->queued_link);
    if (j->task_running != NULL)
        *j->task_running = false;
    if (j->shed && (j->req != NULL || j->shed_reason == METRICS_SHED_CLIENT_GONE))
        metrics_shed(j->rq.route_id, j->shed_reason);
    if (j->shed) {
        if (j->req != NULL)
            answer_shed(j);
    } else if (j->req != NULL) {
        request_tracker *t = j->tracker;
        t->job = NULL;
        if (j->entry != NULL && rc_status(j->entry) >= 500 && j->stale != NULL)
            rc_send(j->req, t->request_id, &j->stale, RC_FAILSAFE, t->started_ns);
        else if (j->entry != NULL) /* "stored": in the L1, or sent to the L2 */
            rc_send(j->req, t->request_id, &j->entry,
                    j->outcome_set                        ? j->outcome
                    : j->stored || j->l2_rec.data != NULL ? RC_MISS_STORED
                                                          : RC_MISS,
                    t->started_ns);
        else {
            if (j->bypass)
                rc_send_bypass_headers(j->req);
            send_response(j->req, t->request_id, &j->rq, &j->res);
        }
    }
    if (j->l2_fill && lt->l2 != NULL) {
        if (j->l2_rec.data != NULL)
            l2_store(lt->l2, j->site, j->key, j->key_len, j->l2_token, &j->l2_rec, j->l2_ttl_ms);
        else if (j->l2_token[0] != '\0')
            l2_release(lt->l2, j->site, j->key, j->key_len, j->l2_token);
    }
    lt->jobs_outstanding--;
    job_free(j);
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

/* ---- fills: the L2, then the database ------------------------------------------------ */

/* The job leads its key's flight and is counted outstanding from here on;
 * it ends in job_complete either way. */
static bool fill_lookup(job *j);
static void on_fill_lookup(void *ctx, const l2_result *r);

static void fill_from_database(job *j)
{
    job_enqueue(j);
}

/* ---- load shedding (see the top of the file) ------------------------------------------ */

/* Loop thread: ends a job that will not run (its flight empty), answering
 * its request as shed. */
static void job_shed(job *j, metrics_shed_reason reason)
{
    if (j->flight != NULL)
        cache_flight_finish(rc_cache(), j->flight, NULL, rc_now_ms(), NULL);
    j->flight = NULL;
    j->shed = true;
    j->shed_reason = reason;
    job_complete(j);
}

static void on_job_deadline(h2o_timeout_entry_t *entry)
{
    job *j = H2O_STRUCT_FROM_MEMBER(job, deadline, entry);
    if (worker_pool_cancel(&j->owner->srv->pool, &j->super))
        job_shed(j, METRICS_SHED_DEADLINE);
    /* else a worker has it: it runs, or finds it late and sends it back */
}

/* Loop thread: the client of a queued job is gone. Taken back and ended
 * at once if nobody wants it; otherwise the worker decides. */
static void job_client_gone(job *j)
{
    atomic_store_explicit(&j->client_gone, true, memory_order_relaxed);
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
        job *j = H2O_STRUCT_FROM_MEMBER(job, queued_link, lt->queued_jobs.next);
        h2o_linklist_unlink(&j->queued_link); /* to the back: the next turn looks at others */
        h2o_linklist_insert(&lt->queued_jobs, &j->queued_link);
        if (j->req != NULL && !atomic_load_explicit(&j->client_gone, memory_order_relaxed) && http1_client_gone(j->req))
            job_client_gone(j); /* may free j */
    }
    if (!h2o_linklist_is_empty(&lt->queued_jobs))
        h2o_timeout_link(lt->ctx.loop, &lt->queue_probe_timeout, &lt->queue_probe);
}

static pool_lane job_lane(const job *j)
{
    if (j->task != NULL)
        return POOL_TASK;
    return j->rq.authorization != NULL ? POOL_EDITOR : POOL_PUBLIC;
}

/* Loop thread: gives the job to the pool, or sheds it when its lane is
 * full. An anonymous job gets its deadline and a place in the probe's list. */
static void job_enqueue(job *j)
{
    loop_thread *lt = j->owner;
    pool_lane lane = job_lane(j);
    bool timed = lane == POOL_PUBLIC;
    j->deadline_ns = timed ? rc_now_ns() + (uint64_t)lt->srv->cfg->queue_timeout_ms * 1000000u : 0;
    if (!worker_pool_submit(&lt->srv->pool, &j->super, lane)) {
        job_shed(j, METRICS_SHED_QUEUE_FULL);
        return;
    }
    if (!timed)
        return;
    j->deadline.cb = on_job_deadline;
    h2o_timeout_link(lt->ctx.loop, &lt->queue_timeout, &j->deadline);
    h2o_linklist_insert(&lt->queued_jobs, &j->queued_link);
    if (!h2o_timeout_is_linked(&lt->queue_probe))
        h2o_timeout_link(lt->ctx.loop, &lt->queue_probe_timeout, &lt->queue_probe);
}

void request_loop_init(loop_thread *lt)
{
    h2o_timeout_init(lt->ctx.loop, &lt->queue_timeout, (uint64_t)lt->srv->cfg->queue_timeout_ms);
    h2o_timeout_init(lt->ctx.loop, &lt->queue_probe_timeout, QUEUE_PROBE_MS);
    h2o_linklist_init_anchor(&lt->queued_jobs);
    lt->queue_probe.cb = on_queue_probe;
}

void request_loop_dispose(loop_thread *lt)
{
    if (h2o_timeout_is_linked(&lt->queue_probe))
        h2o_timeout_unlink(&lt->queue_probe);
    h2o_timeout_dispose(lt->ctx.loop, &lt->queue_probe_timeout);
    h2o_timeout_dispose(lt->ctx.loop, &lt->queue_timeout);
}

/* Answers the request now with `e` (taking it over) while the job goes
 * on without it. */
static void answer_early(job *j, cache_entry **e, rc_outcome outcome)
{
    if (j->req == NULL)
        return;
    request_tracker *t = j->tracker;
    t->job = NULL;
    rc_send(j->req, t->request_id, e, outcome, t->started_ns);
    j->req = NULL;
}

static void on_l2_poll(h2o_timeout_entry_t *entry)
{
    job *j = H2O_STRUCT_FROM_MEMBER(job, l2_poll, entry);
    if (!(rc_l2_readable() && fill_lookup(j)))
        fill_from_database(j);
}

/* A stale value from the L2 answered the flight: refresh it in the
 * background, the same job leading a new flight (if none is under way),
 * unless another instance holds the key's lease (it is refreshing). */
static void refresh_after_stale_hit(job *j)
{
    cache_flight *flight;
    cache_entry *filled = NULL;
    if (cache_flight_join(rc_cache(), j->ns, j->key, j->key_len, rc_now_ms(), NULL, &flight, &filled) != CACHE_LEADER) {
        cache_entry_release(&filled);
        job_complete(j);
        return;
    }
    cache_entry_release(&j->entry);
    cache_entry_release(&j->stale);
    j->flight = flight;
    j->stored = false;
    j->outcome_set = false;
    j->l2_refill = true;
    if (!(rc_l2_readable() && fill_lookup(j)))
        fill_from_database(j);
}

static void on_fill_lookup(void *ctx, const l2_result *r)
{
    job *j = ctx;
    uint64_t now = rc_now_ms();
    switch (r->outcome) {
    case L2_HIT: {
        cache_value value;
        if (!rc_from_l2(r, &value)) { /* past its lifetimes, or unreadable */
            fill_from_database(j);
            return;
        }
        bool stale = value.fresh_ms == 0;
        j->stored = cache_flight_finish(rc_cache(), j->flight, &value, now, &j->entry);
        j->flight = NULL;
        if (!stale || j->l2_others_refill) {
            j->outcome = RC_HIT_L2;
            j->outcome_set = true;
            job_complete(j);
            return;
        }
        answer_early(j, &j->entry, RC_STALE_L2);
        refresh_after_stale_hit(j);
        return;
    }
    case L2_MISS:
        j->l2_fill = true;
        j->l2_snapshot = r->snapshot;
        if (r->leased)
            memcpy(j->l2_token, r->token, sizeof(j->l2_token));
        fill_from_database(j);
        return;
    case L2_BUSY:
        if (j->l2_refill) {
            /* another instance refreshes it: read the value once more and
             * hand it, stale or fresh, to whoever joined this flight */
            j->l2_refill = false;
            j->l2_others_refill = true;
            if (!(rc_l2_readable() && fill_lookup(j))) {
                cache_flight_finish(rc_cache(), j->flight, NULL, now, NULL);
                j->flight = NULL;
                job_complete(j);
            }
            return;
        }
        /* another instance fills: wait for its value, bounded */
        if (j->l2_poll_until == 0)
            j->l2_poll_until = now + (uint64_t)j->owner->srv->cfg->cache_coalesce_timeout_ms;
        if (j->stale != NULL)
            answer_early(j, &j->stale, RC_STALE_WAITING);
        if (now >= j->l2_poll_until) {
            j->l2_fill = true; /* stored only if the lease is gone by then */
            j->l2_snapshot = r->snapshot;
            fill_from_database(j);
            return;
        }
        h2o_timeout_link(j->owner->ctx.loop, &j->owner->l2_poll_timeout, &j->l2_poll);
        return;
    case L2_ERROR: fill_from_database(j); return;
    }
}

static bool fill_lookup(job *j)
{
    return l2_lookup(j->owner->l2, j->site, j->key, j->key_len, j->l2_refill ? L2_SNAPSHOT : L2_READ, on_fill_lookup,
                     j);
}

static void fill_start(job *j)
{
    j->owner->jobs_outstanding++;
    j->l2_poll.cb = on_l2_poll;
    if (j->owner->l2 != NULL && j->key_len > 0 && rc_l2_readable() && fill_lookup(j))
        return;
    fill_from_database(j);
}

void request_submit_task(loop_thread *lt, void (*task)(void *worker), bool *running)
{
    job *j = job_new(lt, NULL);
    if (j == NULL)
        return;
    j->task = task;
    j->task_running = running;
    *running = true;
    job_submit(j);
}

void request_submit_detached_task(server *srv, void (*task)(void *worker))
{
    job *j = job_new(NULL, NULL);
    if (j == NULL)
        return;
    j->task = task;
    worker_pool_submit(&srv->pool, &j->super, POOL_TASK);
}

/* ---- waiters (requests collapsed onto another's fill) ------------------------------------ */

static void waiter_free(waiter *w)
{
    cache_entry_release(&w->result);
    cache_entry_release(&w->stale);
    free(w);
}

/* Any thread, under the cache shard's lock: only hand the result over. */
static void on_waiter_called(cache_waiter *cw, cache_entry *e)
{
    waiter *w = (waiter *)cw;
    w->result = e;
    h2o_multithread_send_message(&w->owner->waiters_done, &w->done);
}

/* The waiter's request is alive and nobody will call it: answer it. One
 * that has already waited longer than a job may is shed, not queued. */
static void waiter_answer_alone(waiter *w)
{
    request_tracker *t = w->tracker;
    const strata_config *cfg = w->owner->srv->cfg;
    t->waiter = NULL;
    if (w->stale != NULL) {
        rc_send(w->req, t->request_id, &w->stale, RC_FAILSAFE, t->started_ns);
    } else if (rc_now_ns() - t->started_ns > (uint64_t)cfg->queue_timeout_ms * 1000000u) {
        metrics_shed(w->route_index, METRICS_SHED_DEADLINE);
        send_overloaded(w->req, t, cfg, METRICS_SHED_DEADLINE);
    } else {
        submit_request_job(w->owner, w->req, t, w->route_index, &w->caps, true, NULL, NULL, NULL);
    }
}

void request_on_waiters_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        waiter *w = H2O_STRUCT_FROM_MEMBER(waiter, done, m);
        if (h2o_timeout_is_linked(&w->timer))
            h2o_timeout_unlink(&w->timer);
        if (w->req != NULL) {
            request_tracker *t = w->tracker;
            if (w->result == NULL || (rc_status(w->result) >= 500 && w->stale != NULL)) {
                waiter_answer_alone(w);
            } else {
                t->waiter = NULL;
                rc_send(w->req, t->request_id, &w->result, RC_COLLAPSED, t->started_ns);
            }
        }
        waiter_free(w);
    }
}

static void on_waiter_timeout(h2o_timeout_entry_t *entry)
{
    waiter *w = H2O_STRUCT_FROM_MEMBER(waiter, timer, entry);
    if (!cache_flight_leave(rc_cache(), w->key, w->key_len, &w->super))
        return; /* already called: its message is on the way */
    if (w->req != NULL)
        waiter_answer_alone(w);
    waiter_free(w);
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
        t->job->req = NULL;
        job_client_gone(t->job);
    }
    waiter *w = t->waiter;
    if (w != NULL) {
        w->req = NULL;
        if (cache_flight_leave(rc_cache(), w->key, w->key_len, &w->super)) {
            if (h2o_timeout_is_linked(&w->timer))
                h2o_timeout_unlink(&w->timer);
            waiter_free(w);
        }
    }
}

/* ---- cacheable reads -------------------------------------------------------------------------- */

/* Starts one background refresh of a stale key, unless one is running. */
static void start_refresh(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index,
                          const http_captures *caps, const fill_key *k)
{
    cache_flight *flight;
    cache_entry *filled;
    if (cache_flight_join(rc_cache(), k->ns, k->key, k->key_len, rc_now_ms(), NULL, &flight, &filled) != CACHE_LEADER) {
        cache_entry_release(&filled);
        return;
    }
    job *j = job_new(lt, &lt->srv->app->routes[route_index]);
    if (j == NULL || request_copy(req, t, route_index, caps, false, &j->rq) != 0) {
        if (j != NULL)
            job_free(j);
        cache_flight_finish(rc_cache(), flight, NULL, rc_now_ms(), NULL);
        return;
    }
    j->represent = true;
    j->flight = flight;
    job_set_key(j, k);
    fill_start(j);
}

static void cached_read(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps)
{
    char key[RC_KEY_MAX], site[RC_SITE_MAX + 1];
    uint32_t ns;
    size_t plen = path_length(req);
    const char *query = req->query_at != SIZE_MAX ? req->path.base + plen + 1 : "";
    size_t query_len = req->query_at != SIZE_MAX ? req->path.len - plen - 1 : 0;
    size_t key_len = rc_key(route_index, req->path.base, caps, query, query_len, key, &ns, site);
    if (key_len == 0) {
        submit_request_job(lt, req, t, route_index, caps, true, NULL, NULL, NULL);
        return;
    }
    fill_key k = {key, key_len, ns, site};
    cache *c = rc_cache();
    uint64_t now = rc_now_ms();
    cache_entry *e = NULL;
    switch (cache_get(c, ns, key, key_len, now, &e)) {
    case CACHE_FRESH: rc_send(req, t->request_id, &e, RC_HIT, t->started_ns); return;
    case CACHE_STALE:
        start_refresh(lt, req, t, route_index, caps, &k);
        rc_send(req, t->request_id, &e, RC_STALE, t->started_ns);
        return;
    case CACHE_EXPIRED: /* e is kept: the fail-safe copy */
    case CACHE_MISS: break;
    }

    cache_flight *flight = NULL;
    cache_entry *filled = NULL;
    cache_join joined = CACHE_LEADER; /* without memory for a waiter: fill alone */
    waiter *w = calloc(1, sizeof(*w));
    if (w != NULL) {
        /* Complete before it joins: another thread may finish the flight,
         * and call it, the moment it is on the flight's list. */
        w->super.done = on_waiter_called;
        w->owner = lt;
        w->req = req;
        w->tracker = t;
        w->route_index = route_index;
        w->caps = *caps;
        w->key_len = key_len;
        memcpy(w->key, key, key_len);
        w->timer.cb = on_waiter_timeout;
        joined = cache_flight_join(c, ns, key, key_len, now, &w->super, &flight, &filled);
    }
    switch (joined) {
    case CACHE_FILLED:
        free(w);
        cache_entry_release(&e);
        rc_send(req, t->request_id, &filled, RC_HIT, t->started_ns);
        return;
    case CACHE_LEADER:
        free(w);
        submit_request_job(lt, req, t, route_index, caps, true, flight, &e, &k);
        return;
    case CACHE_JOINED: /* its message is handled on this thread, after this */
        w->stale = e;
        t->waiter = w;
        h2o_timeout_link(lt->ctx.loop, &lt->coalesce_timeout, &w->timer);
        return;
    }
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
    if (index < 0) {
        if (allowed == 0) {
            send_problem(req, t, 404, "no_route", "no route for this path", NULL);
        } else {
            char allow[96];
            allow_header_value(allowed, allow, sizeof(allow));
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
    if (route->cache != NULL && rc_cache() != NULL && anonymous && (method == HTTP_GET || method == HTTP_HEAD)) {
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
    bool represent = route->cache != NULL && rc_cache() == NULL && anonymous;
    submit_request_job(lt, req, t, index, &caps, represent, NULL, NULL, NULL);
    return 0;
}

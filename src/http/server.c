/*
 * server.c — event-loop threads on h2o, the request path, and shutdown.
 *
 * Each loop thread owns an h2o context, an SO_REUSEPORT listener and two
 * multithread receivers: one for finished jobs, one for control messages
 * (shutdown). A request enters on_request on its loop thread, is given a
 * request id, checked against the header limit, routed, and either answered
 * there (loop handlers, 404/405/431) or copied into a job for the worker
 * pool. The job comes back through the receiver and is sent from the loop
 * thread that owns the connection, so h2o objects are only ever touched by
 * their own thread.
 *
 * Every request carries a tracker allocated from its h2o pool with a
 * dispose callback. The tracker counts the loop's active requests (for
 * graceful shutdown) and, when a client vanishes while its job runs, tells
 * the job that there is no longer anyone to answer.
 *
 * Errors h2o produces by itself (400 on a malformed request, 413 on an
 * oversize body) are plain text; a filter turns them into problem+json so a
 * client always gets the same kind of error body.
 *
 * Signals are blocked in every thread and taken by sigwait in the main
 * thread, which turns SIGTERM/SIGINT into a shutdown message for each loop
 * and SIGHUP into a configuration reload.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <h2o.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "http/http.h"
#include "http/worker_pool.h"

typedef struct server server;

typedef struct loop_thread {
    server *srv;
    int index;
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t jobs_done;
    h2o_multithread_receiver_t control;
    size_t active_requests;  /* requests whose h2o memory is still alive */
    size_t jobs_outstanding; /* jobs submitted and not yet returned */
    uint64_t request_seq;
    bool stopping;
} loop_thread;

struct server {
    strata_config *cfg;
    const http_route *routes;
    size_t route_count;
    h2o_globalconf_t globalconf;
    loop_thread *loops;
    int loop_count;
    worker_pool pool;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t instance_tag; /* random, so request ids differ across instances */
    _Atomic int64_t max_header_bytes;
};

typedef struct strata_handler {
    h2o_handler_t super;
    server *srv;
} strata_handler;

typedef struct job job;

typedef struct request_tracker {
    loop_thread *owner;
    job *job;
} request_tracker;

struct job {
    pool_job super; /* worker queue link */
    h2o_multithread_message_t done; /* loop queue link */
    loop_thread *owner;
    h2o_req_t *req; /* NULL once the client is gone */
    request_tracker *tracker;
    const http_route *route;
    http_request rq;
    http_response res;
};

/* ---- request copies --------------------------------------------------------- */

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
    free(rq->content_type);
}

static size_t path_length(h2o_req_t *req)
{
    return req->query_at != SIZE_MAX ? req->query_at : req->path.len;
}

/* Copies what a handler may read. Params are filled by the router. */
static int request_copy(h2o_req_t *req, http_request *rq)
{
    size_t plen = path_length(req);
    rq->path = copy_iovec(req->path.base, plen);
    if (req->query_at != SIZE_MAX)
        rq->query = copy_iovec(req->path.base + plen + 1, req->path.len - plen - 1);
    rq->body = copy_iovec(req->entity.base != NULL ? req->entity.base : "", req->entity.len);
    rq->body_len = req->entity.len;
    rq->authorization = copy_header(req, H2O_TOKEN_AUTHORIZATION);
    rq->if_match = copy_header(req, H2O_TOKEN_IF_MATCH);
    rq->content_type = copy_header(req, H2O_TOKEN_CONTENT_TYPE);
    if (rq->path == NULL || rq->body == NULL || (req->query_at != SIZE_MAX && rq->query == NULL))
        return -1;
    return 0;
}

static http_method method_of(h2o_iovec_t m)
{
    static const struct {
        const char *name;
        http_method method;
    } methods[] = {{"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},       {"POST", HTTP_POST}, {"PUT", HTTP_PUT},
                   {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH}, {"OPTIONS", HTTP_OPTIONS}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (h2o_memis(m.base, m.len, methods[i].name, strlen(methods[i].name)))
            return methods[i].method;
    return HTTP_OTHER;
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

static void assign_request_id(loop_thread *lt, h2o_req_t *req, char out[HTTP_REQUEST_ID_MAX + 1])
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0 && request_id_is_sane(req->headers.entries[i].value)) {
        memcpy(out, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        out[req->headers.entries[i].value.len] = '\0';
        return;
    }
    snprintf(out, HTTP_REQUEST_ID_MAX + 1, "%08x-%x-%llu", lt->srv->instance_tag, lt->index,
             (unsigned long long)++lt->request_seq);
}

static size_t header_bytes(h2o_req_t *req)
{
    size_t total = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return total;
}

/* ---- sending ------------------------------------------------------------------ */

static void add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

static void allow_header_value(unsigned methods, char *out, size_t size)
{
    static const struct {
        http_method method;
        const char *name;
    } names[] = {{HTTP_GET, "GET"},       {HTTP_HEAD, "HEAD"},   {HTTP_POST, "POST"},
                 {HTTP_PUT, "PUT"},       {HTTP_DELETE, "DELETE"}, {HTTP_PATCH, "PATCH"}};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((methods & names[i].method) == 0)
            continue;
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "", names[i].name);
        if (n >= size)
            break;
    }
}

static void send_response(h2o_req_t *req, const http_request *rq, http_response *res)
{
    if (res->status == 0)
        http_problem(res, rq, 500, "internal", "the handler produced no response");
    req->res.status = res->status;
    req->res.reason = http_status_text(res->status);
    if (res->content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, res->content_type,
                       strlen(res->content_type));
    add_header(req, "x-request-id", rq->request_id, strlen(rq->request_id));
    for (size_t i = 0; i < res->header_count; i++)
        add_header(req, res->headers[i].name, res->headers[i].value, strlen(res->headers[i].value));
    if (res->status == 204 || res->status == 304) {
        h2o_send_inline(req, "", 0);
        return;
    }
    req->res.content_length = res->body_len;
    h2o_send_inline(req, res->body != NULL ? res->body : "", res->body_len);
}

/* ---- jobs ------------------------------------------------------------------------ */

static void job_free(job *j)
{
    request_free(&j->rq);
    http_response_free(&j->res);
    free(j);
}

/* Worker thread. */
static void job_run(pool_job *pj, store_t *store)
{
    job *j = H2O_STRUCT_FROM_MEMBER(job, super, pj);
    j->route->worker_handler(&j->rq, store, &j->res);
    h2o_multithread_send_message(&j->owner->jobs_done, &j->done);
}

/* Loop thread: finished jobs come home. */
static void on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, jobs_done, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        job *j = H2O_STRUCT_FROM_MEMBER(job, done, m);
        if (j->req != NULL) {
            j->tracker->job = NULL;
            send_response(j->req, &j->rq, &j->res);
        }
        lt->jobs_outstanding--;
        job_free(j);
    }
}

static void on_request_disposed(void *p)
{
    request_tracker *t = p;
    t->owner->active_requests--;
    if (t->job != NULL)
        t->job->req = NULL;
}

/* ---- the request path ------------------------------------------------------------ */

static void answer_now(h2o_req_t *req, http_request *rq, http_response *res)
{
    send_response(req, rq, res);
    http_response_free(res);
    request_free(rq);
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    server *srv = ((strata_handler *)self)->srv;
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, req->conn->ctx);
    request_tracker *tracker = h2o_mem_alloc_shared(&req->pool, sizeof(*tracker), on_request_disposed);
    *tracker = (request_tracker){.owner = lt};
    lt->active_requests++;

    http_request rq = {0};
    http_response res = {0};
    assign_request_id(lt, req, rq.request_id);
    if (request_copy(req, &rq) != 0) {
        http_problem(&res, &rq, 503, "out_of_memory", "the server is out of memory");
        answer_now(req, &rq, &res);
        return 0;
    }
    rq.method = method_of(req->method);

    int64_t header_limit = atomic_load_explicit(&srv->max_header_bytes, memory_order_relaxed);
    if ((int64_t)req->path.len > header_limit) {
        http_problem(&res, &rq, 414, "uri_too_long", "the request target is %zu bytes; the limit is %lld (server.max_header_bytes)",
                     req->path.len, (long long)header_limit);
        answer_now(req, &rq, &res);
        return 0;
    }
    if ((int64_t)header_bytes(req) > header_limit) {
        http_problem(&res, &rq, 431, "headers_too_large",
                     "request headers total %zu bytes; the limit is %lld (server.max_header_bytes)",
                     header_bytes(req), (long long)header_limit);
        answer_now(req, &rq, &res);
        return 0;
    }

    unsigned allowed;
    int index = http_route_match(srv->routes, srv->route_count, rq.method, req->path.base, path_length(req), &rq,
                                 &allowed);
    if (index < 0) {
        if (allowed != 0) {
            char allow[96];
            allow_header_value(allowed, allow, sizeof(allow));
            http_problem(&res, &rq, 405, "method_not_allowed", "%.*s is not allowed on this path; use %s",
                         (int)req->method.len, req->method.base, allow);
            http_response_header(&res, "allow", "%s", allow);
        } else {
            http_problem(&res, &rq, 404, "no_route", "no route for this path");
        }
        answer_now(req, &rq, &res);
        return 0;
    }

    const http_route *route = &srv->routes[index];
    if (route->loop_handler != NULL) {
        route->loop_handler(&rq, &res);
        answer_now(req, &rq, &res);
        return 0;
    }

    job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        http_problem(&res, &rq, 503, "out_of_memory", "the server is out of memory");
        answer_now(req, &rq, &res);
        return 0;
    }
    j->super.run = job_run;
    j->owner = lt;
    j->req = req;
    j->tracker = tracker;
    j->route = route;
    j->rq = rq;
    tracker->job = j;
    lt->jobs_outstanding++;
    worker_pool_submit(&srv->pool, &j->super);
    return 0;
}

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
            snprintf(detail, sizeof(detail), "the request body is larger than the limit of %zu bytes (server.max_body_bytes)",
                     req->conn->ctx->globalconf->max_request_entity_size);
        else
            snprintf(detail, sizeof(detail), "%s", req->res.reason);
        http_response res = {0};
        http_problem(&res, NULL, req->res.status, req->res.status == 413 ? "body_too_large" : "bad_request", "%s",
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

static int64_t micros_between(struct timeval a, struct timeval b)
{
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000000 + (b.tv_usec - a.tv_usec);
}

static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    if (!log_enabled(LOG_INFO))
        return;
    struct timeval end = req->timestamps.response_end_at;
    if (end.tv_sec == 0)
        gettimeofday(&end, NULL);
    log_line line;
    log_begin(&line, req->res.status >= 500 ? LOG_ERROR : LOG_INFO, "request");
    log_strn(&line, "method", req->input.method.base, req->input.method.len);
    log_strn(&line, "path", req->input.path.base, req->input.path.len);
    log_int(&line, "status", req->res.status);
    log_int(&line, "bytes", (int64_t)req->bytes_sent);
    log_int(&line, "us", req->timestamps.request_begin_at.tv_sec ? micros_between(req->timestamps.request_begin_at, end) : 0);
    ssize_t id = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
    if (id >= 0)
        log_strn(&line, "request_id", req->res.headers.entries[id].value.base, req->res.headers.entries[id].value.len);
    log_end(&line);
}

/* ---- loop threads -------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    loop_thread *lt = listener->data;
    h2o_socket_t *sock;
    /* Accept a few per wake-up so a burst of connections drains quickly. */
    for (int i = 0; i < 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; i++)
        h2o_accept(&lt->accept_ctx, sock);
}

static int open_listener(server *srv)
{
    int fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&srv->addr, srv->addr_len) != 0 || listen(fd, 4096) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static void close_listener(loop_thread *lt)
{
    if (lt->listener != NULL) {
        h2o_socket_read_stop(lt->listener);
        h2o_socket_close(lt->listener);
        lt->listener = NULL;
    }
}

typedef struct control_message {
    h2o_multithread_message_t super;
} control_message;

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, control, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        free(m);
    }
    if (!lt->stopping) {
        lt->stopping = true;
        close_listener(lt);
        h2o_context_request_shutdown(&lt->ctx);
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int shutdown_connection(h2o_req_t *req, void *cbdata)
{
    (void)cbdata;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    return 0;
}

static int count_started_request(h2o_req_t *req, void *cbdata)
{
    /* An HTTP/1 connection's request has a method once its head is parsed;
     * between requests h2o re-initialises it to empty. */
    if (req->input.method.len != 0)
        ++*(size_t *)cbdata;
    return 0;
}

/* True while this loop still owes a response: a request being received,
 * processed by a job, or sent. */
static bool has_work_in_flight(loop_thread *lt)
{
    size_t started = 0;
    if (lt->ctx.globalconf->http1.callbacks.foreach_request != NULL)
        lt->ctx.globalconf->http1.callbacks.foreach_request(&lt->ctx, count_started_request, &started);
    return started > 0 || lt->active_requests > 0 || lt->jobs_outstanding > 0;
}

static bool has_connections(loop_thread *lt)
{
    return !h2o_linklist_is_empty(&lt->ctx.http1._conns) || !h2o_linklist_is_empty(&lt->ctx.http2._conns);
}

/* Idle keep-alive connections would otherwise wait for their timeout: shut
 * their sockets so h2o sees the end and frees them itself, which leaves the
 * context empty and safe to dispose. Bounded to one second. */
static void close_idle_connections(loop_thread *lt)
{
    if (lt->ctx.globalconf->http1.callbacks.foreach_request != NULL)
        lt->ctx.globalconf->http1.callbacks.foreach_request(&lt->ctx, shutdown_connection, NULL);
    for (int i = 0; i < 100 && has_connections(lt); i++)
        h2o_evloop_run(lt->ctx.loop, 10);
}

static void *loop_main(void *arg)
{
    loop_thread *lt = arg;
    server *srv = lt->srv;
    uint64_t deadline = 0;
    for (;;) {
        h2o_evloop_run(lt->ctx.loop, 100);
        if (!lt->stopping)
            continue;
        if (deadline == 0)
            deadline = now_ms() + (uint64_t)srv->cfg->shutdown_timeout_ms;
        if (!has_work_in_flight(lt)) {
            close_idle_connections(lt);
            break;
        }
        if (now_ms() >= deadline) {
            log_line line;
            log_begin(&line, LOG_WARN, "shutdown timeout: abandoning requests");
            log_int(&line, "loop", lt->index);
            log_int(&line, "active", (int64_t)lt->active_requests);
            log_end(&line);
            break;
        }
    }
    return NULL;
}

static int loop_init(server *srv, loop_thread *lt, int index)
{
    lt->srv = srv;
    lt->index = index;
    h2o_context_init(&lt->ctx, h2o_evloop_create(), &srv->globalconf);
    lt->accept_ctx.ctx = &lt->ctx;
    lt->accept_ctx.hosts = srv->globalconf.hosts;
    h2o_multithread_register_receiver(lt->ctx.queue, &lt->jobs_done, on_jobs_done);
    h2o_multithread_register_receiver(lt->ctx.queue, &lt->control, on_control);
    lt->listen_fd = open_listener(srv);
    if (lt->listen_fd < 0)
        return -1;
    lt->listener = h2o_evloop_socket_create(lt->ctx.loop, lt->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    lt->listener->data = lt;
    h2o_socket_read_start(lt->listener, on_accept);
    return 0;
}

static void loop_dispose(loop_thread *lt)
{
    close_listener(lt);
    if (has_connections(lt)) {
        /* A connection outlived the shutdown timeout; h2o cannot dispose a
         * context with live connections, and the process is exiting. */
        log_event(LOG_WARN, "exiting with connections still open");
        return;
    }
    /* h2o's HTTP/2 graceful-shutdown timer (GOAWAY resend) may still be
     * armed; a context cannot be disposed with a linked timer. */
    if (h2o_timeout_is_linked(&lt->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&lt->ctx.http2._graceful_shutdown_timeout);
    h2o_multithread_unregister_receiver(lt->ctx.queue, &lt->jobs_done);
    h2o_multithread_unregister_receiver(lt->ctx.queue, &lt->control);
    h2o_evloop_t *loop = lt->ctx.loop;
    h2o_context_dispose(&lt->ctx);
    h2o_evloop_destroy(loop);
}

/* ---- configuration of h2o ------------------------------------------------------------- */

static void configure_h2o(server *srv)
{
    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("strata"));
    srv->globalconf.max_request_entity_size = (size_t)srv->cfg->max_body_bytes;
    srv->globalconf.http1.req_timeout = (uint64_t)srv->cfg->idle_timeout_ms;
    srv->globalconf.http1.upgrade_to_http2 = srv->cfg->http2;
    srv->globalconf.http2.idle_timeout = (uint64_t)srv->cfg->idle_timeout_ms;

    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *root = h2o_config_register_path(host, "/", 0);
    strata_handler *handler = (strata_handler *)h2o_create_handler(root, sizeof(*handler));
    handler->super.on_req = on_request;
    handler->srv = srv;

    /* The fallback path serves h2o's own early errors (before routing). */
    h2o_pathconf_t *paths[] = {root, &host->fallback_path};
    for (size_t i = 0; i < 2; i++) {
        h2o_filter_t *filter = h2o_create_filter(paths[i], sizeof(*filter));
        filter->on_setup_ostream = on_setup_problem_ostream;
        h2o_logger_t *logger = h2o_create_logger(paths[i], sizeof(*logger));
        logger->log_access = on_log_access;
    }
}

/* ---- the main thread --------------------------------------------------------------------- */

static void broadcast_shutdown(server *srv)
{
    for (int i = 0; i < srv->loop_count; i++) {
        control_message *m = calloc(1, sizeof(*m));
        if (m != NULL)
            h2o_multithread_send_message(&srv->loops[i].control, &m->super);
    }
}

static void apply_reload(server *srv, http_reload_fn reload)
{
    strata_config next = *srv->cfg;
    char err[CONFIG_ERR_MAX];
    if (reload == NULL || reload(&next, err) != 0) {
        log_event_str(LOG_ERROR, "reload failed; keeping the running configuration", "error",
                      reload ? err : "no reload");
        return;
    }
    log_set_level(next.log_level);
    atomic_store(&srv->max_header_bytes, next.max_header_bytes);
    srv->cfg->log_level = next.log_level;
    srv->cfg->max_header_bytes = next.max_header_bytes;
    log_event(LOG_INFO, "configuration reloaded (log.level, server.max_header_bytes)");
}

static void wait_for_signals(server *srv, const sigset_t *signals, http_reload_fn reload)
{
    for (;;) {
        int sig;
        if (sigwait(signals, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            apply_reload(srv, reload);
            continue;
        }
        log_event_str(LOG_INFO, "shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        broadcast_shutdown(srv);
        return;
    }
}

int http_serve(strata_config *cfg, const http_route *routes, size_t route_count, http_worker_init_fn worker_init,
               http_reload_fn reload)
{
    server srv = {.cfg = cfg, .routes = routes, .route_count = route_count};
    atomic_store(&srv.max_header_bytes, cfg->max_header_bytes);
    if (RAND_bytes((unsigned char *)&srv.instance_tag, sizeof(srv.instance_tag)) != 1)
        srv.instance_tag = (uint32_t)getpid();
    unsigned addr_len;
    if (config_parse_listen(cfg->listen, &srv.addr, &addr_len) != 0) {
        log_event_str(LOG_ERROR, "server.listen is not ADDR:PORT", "listen", cfg->listen);
        return 2;
    }
    srv.addr_len = addr_len;

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (worker_pool_start(&srv.pool, (size_t)cfg->workers, cfg->db_path, worker_init) != 0) {
        log_event_str(LOG_ERROR, "cannot start: the database could not be opened", "db", cfg->db_path);
        return 1;
    }
    configure_h2o(&srv);

    srv.loop_count = config_thread_count(cfg);
    srv.loops = calloc((size_t)srv.loop_count, sizeof(*srv.loops));
    int exit_code = 0, started = 0;
    for (int i = 0; i < srv.loop_count; i++) {
        if (loop_init(&srv, &srv.loops[i], i) != 0) {
            log_event_str(LOG_ERROR, "cannot listen", "error", strerror(errno));
            loop_dispose(&srv.loops[i]);
            exit_code = 1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started && exit_code == 0; i++)
        pthread_create(&srv.loops[i].tid, NULL, loop_main, &srv.loops[i]);

    if (exit_code == 0) {
        log_line line;
        log_begin(&line, LOG_INFO, "serving");
        log_str(&line, "listen", cfg->listen);
        log_int(&line, "threads", srv.loop_count);
        log_int(&line, "workers", cfg->workers);
        log_str(&line, "db", cfg->db_path);
        log_end(&line);
        wait_for_signals(&srv, &signals, reload);
        for (int i = 0; i < started; i++)
            pthread_join(srv.loops[i].tid, NULL);
    }

    worker_pool_stop(&srv.pool);
    for (int i = 0; i < started; i++) {
        /* Completions posted after the loop stopped are drained here. */
        h2o_evloop_run(srv.loops[i].ctx.loop, 0);
        loop_dispose(&srv.loops[i]);
    }
    free(srv.loops);
    h2o_config_dispose(&srv.globalconf);
    if (exit_code == 0)
        log_event(LOG_INFO, "stopped");
    return exit_code;
}

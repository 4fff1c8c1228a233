/*
 * server.c — event-loop threads on h2o, their lifecycle, and periodic work.
 *
 * Each loop thread owns an h2o context, an SO_REUSEPORT listener and three
 * multithread receivers: finished jobs, waiters called back by the cache,
 * and control messages (shutdown). The request path itself is request.c.
 *
 * Signals are blocked in every thread and taken by sigwait in the main
 * thread, which turns SIGTERM/SIGINT into a shutdown message for each loop
 * and SIGHUP into a configuration reload. A loop that is told to stop
 * closes its listener, asks h2o to end keep-alive, waits until every
 * request it has begun is answered (bounded by server.shutdown_timeout_ms),
 * then closes idle connections. The periodic tasks then run once more (the
 * final flush of view counts) before the workers drain and exit.
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
#include "http/cors.h"
#include "http/server_internal.h"

/* ---- loop threads -------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    loop_thread *lt = listener->data;
    /* Accept a few per wake-up so a burst of connections drains quickly;
     * out of descriptors, the listener rests instead of spinning. */
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            conn_guard_accept_failed(lt, errno, on_accept);
            return;
        }
        conn_guard_accept(lt, sock);
    }
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

static int loop_init(server *srv, loop_thread *lt, int index);
static void loop_dispose(loop_thread *lt);

/* Waits (under phase_lock) until cond holds. */
#define PHASE_WAIT(srv, cond)                                                                                          \
    do {                                                                                                               \
        pthread_mutex_lock(&(srv)->phase_lock);                                                                        \
        while (!(cond))                                                                                                \
            pthread_cond_wait(&(srv)->phase_changed, &(srv)->phase_lock);                                              \
        pthread_mutex_unlock(&(srv)->phase_lock);                                                                      \
    } while (0)

static void phase_update(server *srv, int *counter, bool *flag)
{
    pthread_mutex_lock(&srv->phase_lock);
    if (counter != NULL)
        ++*counter;
    if (flag != NULL)
        *flag = true;
    pthread_cond_broadcast(&srv->phase_changed);
    pthread_mutex_unlock(&srv->phase_lock);
}

static void serve_until_stopped(loop_thread *lt)
{
    uint64_t deadline = 0;
    for (;;) {
        h2o_evloop_run(lt->ctx.loop, request_deferred_waiting(lt) ? 0 : 100);
        request_run_deferred(lt);
        if (!lt->stopping)
            continue;
        if (deadline == 0)
            deadline = now_ms() + (uint64_t)lt->srv->cfg->shutdown_timeout_ms;
        if (!has_work_in_flight(lt)) {
            close_idle_connections(lt);
            return;
        }
        if (now_ms() >= deadline) {
            log_line line;
            log_begin(&line, LOG_WARN, "shutdown timeout: abandoning requests");
            log_int(&line, "loop", lt->index);
            log_int(&line, "active", (int64_t)lt->active_requests);
            log_end(&line);
            return;
        }
    }
}

/* A loop thread's whole life: its context is created, run and disposed
 * here, never on another thread. */
static void *loop_main(void *arg)
{
    loop_thread *lt = arg;
    server *srv = lt->srv;
    int failed = loop_init(srv, lt, lt->index) != 0;
    worker_pool_watch_loop(&srv->pool, &lt->requests_done);
    if (failed)
        log_event_str(LOG_ERROR, "cannot listen", "error", strerror(errno));
    pthread_mutex_lock(&srv->phase_lock);
    srv->loops_ready++;
    srv->loops_failed += failed;
    pthread_cond_broadcast(&srv->phase_changed);
    while (!srv->go && !srv->abort_start)
        pthread_cond_wait(&srv->phase_changed, &srv->phase_lock);
    bool serve = srv->go;
    pthread_mutex_unlock(&srv->phase_lock);
    if (serve) {
        serve_until_stopped(lt);
        phase_update(srv, &srv->loops_stopped, NULL);
        PHASE_WAIT(srv, srv->pool_stopped);
        /* completions posted after the loop stopped are drained here */
        h2o_evloop_run(lt->ctx.loop, 0);
    }
    loop_dispose(lt);
    return NULL;
}

/* Loop 0 drives the periodic tasks: a timer per task submits it to the
 * pool, at most one run of a task at a time. */
static void on_periodic(h2o_timeout_entry_t *entry)
{
    periodic_slot *slot = H2O_STRUCT_FROM_MEMBER(periodic_slot, entry, entry);
    loop_thread *lt = slot->owner;
    if (lt->stopping)
        return;
    if (!slot->running)
        request_submit_task(lt, lt->srv->app->periodic[slot->index].run, &slot->running);
    h2o_timeout_link(lt->ctx.loop, &slot->timeout, entry);
}

/* The loop's own connection for bounded reads (request.c, "reads on the
 * loop"), opened on its thread. A loop that cannot open one hands its
 * reads to the workers, as a server without reads_on_loops does. */
static void loop_reader_open(loop_thread *lt)
{
    const http_app *app = lt->srv->app;
    if (!app->reads_on_loops)
        return;
    lt->reader = app->worker_open(app->worker_arg);
    if (lt->reader == NULL)
        log_event(LOG_WARN, "an event loop could not open its own database connection: its reads go to the workers");
}

static void loop_reader_close(loop_thread *lt)
{
    const http_app *app = lt->srv->app;
    if (lt->reader != NULL)
        app->worker_close(lt->reader, app->worker_arg);
    lt->reader = NULL;
}

static int loop_init(server *srv, loop_thread *lt, int index)
{
    lt->srv = srv;
    lt->index = index;
    h2o_context_init(&lt->ctx, h2o_evloop_create(), &srv->globalconf);
    lt->accept_ctx.ctx = &lt->ctx;
    lt->accept_ctx.hosts = srv->globalconf.hosts;
    h2o_multithread_register_receiver(lt->ctx.queue, &lt->jobs_done, request_on_jobs_done);
    h2o_multithread_register_receiver(lt->ctx.queue, &lt->waiters_done, request_on_waiters_done);
    h2o_multithread_register_receiver(lt->ctx.queue, &lt->control, on_control);
    h2o_timeout_init(lt->ctx.loop, &lt->coalesce_timeout, (uint64_t)srv->cfg->cache_coalesce_timeout_ms);
    h2o_timeout_init(lt->ctx.loop, &lt->l2_poll_timeout, L2_POLL_MS);
    request_loop_init(lt);
    loop_reader_open(lt);
    if (rc_l2() != NULL && (lt->l2 = l2_conn_open(rc_l2(), lt->ctx.loop)) == NULL)
        return -1;
    for (size_t i = 0; index == 0 && i < srv->app->periodic_count && i < MAX_PERIODIC; i++) {
        periodic_slot *slot = &lt->periodic[i];
        slot->owner = lt;
        slot->index = i;
        slot->entry.cb = on_periodic;
        h2o_timeout_init(lt->ctx.loop, &slot->timeout, (uint64_t)srv->app->periodic[i].interval_ms);
        h2o_timeout_link(lt->ctx.loop, &slot->timeout, &slot->entry);
    }
    conn_guard_loop_init(lt);
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
    loop_reader_close(lt); /* no request holds it between two events: a read on the loop runs whole */
    if (has_connections(lt)) {
        /* A connection outlived the shutdown timeout; h2o cannot dispose a
         * context with live connections, and the process is exiting. */
        log_event(LOG_WARN, "exiting with connections still open");
        return;
    }
    for (size_t i = 0; i < MAX_PERIODIC; i++) {
        periodic_slot *slot = &lt->periodic[i];
        if (h2o_timeout_is_linked(&slot->entry))
            h2o_timeout_unlink(&slot->entry);
        if (slot->owner != NULL)
            h2o_timeout_dispose(lt->ctx.loop, &slot->timeout);
    }
    h2o_timeout_dispose(lt->ctx.loop, &lt->coalesce_timeout);
    conn_guard_loop_dispose(lt);
    l2_conn_close(&lt->l2);
    h2o_timeout_dispose(lt->ctx.loop, &lt->l2_poll_timeout);
    request_loop_dispose(lt);
    h2o_evloop_run(lt->ctx.loop, 0); /* the closed sockets are freed */
    /* h2o's HTTP/2 graceful-shutdown timer (GOAWAY resend) may still be
     * armed; a context cannot be disposed with a linked timer. */
    if (h2o_timeout_is_linked(&lt->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&lt->ctx.http2._graceful_shutdown_timeout);
    h2o_multithread_unregister_receiver(lt->ctx.queue, &lt->jobs_done);
    h2o_multithread_unregister_receiver(lt->ctx.queue, &lt->waiters_done);
    h2o_multithread_unregister_receiver(lt->ctx.queue, &lt->control);
    h2o_evloop_t *loop = lt->ctx.loop;
    h2o_context_dispose(&lt->ctx);
    h2o_evloop_destroy(loop);
}

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
    handler->super.on_req = request_on_request;
    handler->srv = srv;
    /* The fallback path serves h2o's own early errors (before routing). */
    filters_register(root);
    filters_register(&host->fallback_path);
    cors_register(root);
    filters_set_hit_sampling(srv->cfg->log_sample_hits);
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

int http_serve(strata_config *cfg, const http_app *app)
{
    server srv = {.cfg = cfg, .app = app};
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

    if (!protocol_guard_installed()) {
        log_event(LOG_ERROR, "cannot start: strata's checks of h2o's request parsing are not in effect");
        return 1;
    }
    if (conn_guard_init(cfg) != 0) {
        log_event(LOG_ERROR, "cannot start: out of memory for the connection caps");
        return 1;
    }
    pool_worker_fns workers = {app->worker_open, app->worker_close, app->worker_arg};
    if (worker_pool_start(&srv.pool, (size_t)config_worker_count(cfg), &workers, config_worker_nice(cfg)) != 0) {
        log_event(LOG_ERROR, "cannot start: a worker could not open what it holds (logged above)");
        conn_guard_dispose();
        return 1;
    }
    worker_pool_limit(&srv.pool, POOL_PUBLIC, (size_t)cfg->queue_max);
    worker_pool_limit(&srv.pool, POOL_EDITOR, (size_t)cfg->queue_max);
    worker_pool_target(&srv.pool, (uint64_t)cfg->queue_target_ms);
    worker_pool_idle_public(&srv.pool, cfg->idle_fills);
    worker_pool_fill_share(&srv.pool, cfg->fill_cpu_share);
    configure_h2o(&srv);

    srv.loop_count = config_thread_count(cfg);
    srv.loops = calloc((size_t)srv.loop_count, sizeof(*srv.loops));
    pthread_mutex_init(&srv.phase_lock, NULL);
    pthread_cond_init(&srv.phase_changed, NULL);
    int exit_code = srv.loops != NULL ? 0 : 1, started = 0;
    for (int i = 0; i < srv.loop_count && exit_code == 0; i++) {
        srv.loops[i].srv = &srv;
        srv.loops[i].index = i;
        if (pthread_create(&srv.loops[i].tid, NULL, loop_main, &srv.loops[i]) != 0)
            exit_code = 1;
        else
            started++;
    }
    PHASE_WAIT(&srv, srv.loops_ready == started);
    exit_code |= srv.loops_failed > 0;
    phase_update(&srv, NULL, exit_code == 0 ? &srv.go : &srv.abort_start);

    if (exit_code == 0) {
        log_line line;
        log_begin(&line, LOG_INFO, "serving");
        log_str(&line, "listen", cfg->listen);
        log_int(&line, "threads", srv.loop_count);
        log_int(&line, "workers", config_worker_count(cfg));
        log_str(&line, "db", cfg->db_shown);
        log_int(&line, "cache_bytes", cfg->cache_enabled ? cfg->cache_l1_max_bytes : 0);
        log_end(&line);
        if (app->on_start != NULL)
            request_submit_detached_task(&srv, app->on_start);
        wait_for_signals(&srv, &signals, app->reload);
        if (app->on_stop != NULL)
            app->on_stop();
        PHASE_WAIT(&srv, srv.loops_stopped == started);
        for (size_t i = 0; i < app->periodic_count; i++)
            request_submit_detached_task(&srv, app->periodic[i].run); /* the final flush */
    }
    worker_pool_stop(&srv.pool);
    phase_update(&srv, NULL, &srv.pool_stopped);
    for (int i = 0; i < started; i++)
        pthread_join(srv.loops[i].tid, NULL);
    pthread_mutex_destroy(&srv.phase_lock);
    pthread_cond_destroy(&srv.phase_changed);
    free(srv.loops);
    h2o_config_dispose(&srv.globalconf);
    conn_guard_dispose();
    if (exit_code == 0)
        log_event(LOG_INFO, "stopped");
    return exit_code;
}

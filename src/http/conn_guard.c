/*
 * conn_guard.c — what a connection may cost before it is a request: caps on
 * open connections, a bound on a request head while it is still arriving,
 * a pause in accepting when descriptors run out, and memory handed back to
 * the system after a flood.
 *
 * Connection caps. Every accepted socket is counted before h2o sees it, in
 * total (server.max_connections) and per client address
 * (server.max_connections_per_client; an IPv4 address, or an IPv6 /64,
 * which is what one IPv6 client usually holds). By default the total is
 * 10,000, or what the open-file limit leaves after DESCRIPTOR_RESERVE for
 * the database, Redis and files, so that clients cannot take the
 * descriptors the server needs itself. A socket over a cap is closed at
 * once, before a byte of it is read: a 503 would need the request read
 * first (a response written before it, then a close with the request
 * unread, reaches the client as a reset more often than not), and a flood
 * is exactly when the server should spend nothing on a connection. The
 * counts (client_table.c, its hash seeded at random) live under one mutex,
 * taken at accept and at close only. The socket's on_close callback (h2o
 * calls it whoever closes) gives the count back, so every way out of h2o
 * is covered.
 *
 * The head bound. h2o 2.2.5 parses a head only once it is whole and buffers
 * up to 417,792 bytes of one that is not (H2O_MAX_REQLEN), so the exact
 * limits that request.c applies to a parsed head (414, 431) cannot bound an
 * unfinished one. The guard stands in front of h2o's HTTP/1 reader: it
 * replaces the socket's read callback with its own, which looks at
 * sock->input before h2o does. It needs to know nothing of h2o's state,
 * because h2o 2.2.5 keeps a request's head at the start of sock->input until
 * its response has been sent (it consumes head and body together, after the
 * response): sock->input always begins with the head of the current
 * request, whether h2o is still reading that head or the body after it. So:
 * when sock->input holds more than the bound and no end of head (an empty
 * line, "\n\r\n" or "\n\n" as picohttpparser accepts) within its first
 * `bound` bytes, the head is too large, whatever h2o is doing. An ordinary
 * request costs one comparison per read; a request with a large body costs
 * a search that stops at the end of its head.
 *
 *     bound = server.max_header_bytes + HEAD_LINE_ALLOWANCE
 *
 * The allowance (8 KiB) is for the request line and the separators that
 * server.max_header_bytes does not count; a head that ends within the bound
 * still meets request.c's exact limits.
 *
 * h2o puts its own reader back each time it starts on the next request of a
 * keep-alive connection (after the response is written). request.c tells
 * the guard when a request's memory is let go (conn_guard_request_done),
 * which h2o does just before that; the guard then links a zero-delay timer
 * that puts the guard back once h2o has restarted reading, in the same turn
 * of the loop, before the next poll. If that write completes while the
 * loop runs its timers, the guard returns one turn later: one read may then
 * reach h2o unguarded, and h2o's own cap still holds for it. The guard wraps
 * only h2o's HTTP/1 reader; a connection upgraded to HTTP/2 is left to h2o,
 * which bounds its frames itself.
 *
 * Over the bound, the guard writes a whole problem+json response itself
 * (conn_guard_send_problem: one write of a small response on a socket with
 * nothing else queued; a head is read only when no response is being
 * written), then tells h2o's reader the peer has closed, so that h2o closes
 * the connection through its own path and frees its state. A request line
 * that has not ended within the bound gets 414, anything else 431.
 *
 * Out of descriptors (with a server.max_connections set above what the
 * limit leaves, or descriptors taken elsewhere). accept fails with EMFILE
 * while the listener stays readable, so a loop that only retried would
 * spin. The loop stops reading
 * its listener for ACCEPT_PAUSE_MS and then tries again (what nginx does):
 * queued clients wait in the kernel's backlog and are served as soon as a
 * descriptor is free. No descriptor is kept in reserve to accept and close
 * them meanwhile: that would turn away the very clients that the pause
 * lets in a moment later. The event is counted and logged at most once per
 * LOG_INTERVAL_MS.
 *
 * Memory. The allocator keeps what a flood's connections freed. Loop 0
 * looks every TRIM_CHECK_MS: once the number of open connections has
 * fallen TRIM_AFTER_DROP or more below its peak, every look that finds it
 * lower still has a worker call heap_trim (core/heap.c), which hands every
 * free page back, until a look finds it no lower. Ordinary churn, where as
 * many connections open as close, never triggers it. Measured (release
 * build on glibc, 2,000 connections trickling heads to the bound, then
 * closing): RSS 15 → 74 → 16 MB; without the trim it stayed at 43 MB.
 *
 * The caches churn too: every save drops an item's representations and
 * its lists', refilled on other threads, and the full history cache evicts
 * a diff for each one it keeps. So a trim is also made every
 * TRIM_EVERY_MS whatever the connections do: a few milliseconds of one
 * worker. (On glibc that did not stop the free bytes it held from growing
 * under that churn: core/heap.c, which is why the release build runs on
 * jemalloc.)
 */
#include <errno.h>
#include <h2o.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "core/fmt.h"
#include "core/heap.h"
#include "core/log.h"
#include "http/client_table.h"
#include "http/server_internal.h"
#include "metrics/metrics.h"

#define HEAD_LINE_ALLOWANCE 8192
#define ACCEPT_PAUSE_MS 100
#define LOG_INTERVAL_MS 10000
#define TRIM_CHECK_MS 1000
#define TRIM_AFTER_DROP 256
#define TRIM_EVERY_MS 10000
#define DESCRIPTOR_RESERVE 64 /* for the database, Redis, logs, files */
#define AUTO_MAX_CONNECTIONS 10000

/* ---- the counts ----------------------------------------------------------------------- */

/* A rate-limited log line: the first event of an interval is logged with
 * how many came since the last line. */
typedef struct rate_log {
    _Atomic uint64_t next_ms;
    _Atomic uint64_t events;
} rate_log;

static struct {
    pthread_mutex_t lock;  /* over the counts and the table */
    client_table *clients; /* NULL without a per-client cap */
    int max_total, max_per_client;
    int open;
    int peak_open;       /* the most open since the last recession ended */
    int trimmed_at_open; /* open at the last trim of a recession; INT_MAX: none under way */
    rate_log refused_log, descriptors_log;
} limits = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct conn_guard {
    loop_thread *owner;
    h2o_socket_t *sock;
    h2o_socket_cb h2o_read; /* h2o's HTTP/1 reader, which the guard stands in front of */
    h2o_timeout_entry_t rearm;
    client_key client;
    bool has_client;
};

static uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void rate_log_event(rate_log *r, log_level level, const char *msg, const char *key, int64_t value)
{
    uint64_t events = atomic_fetch_add(&r->events, 1) + 1, now = clock_ms(), next = atomic_load(&r->next_ms);
    if (now < next || !atomic_compare_exchange_strong(&r->next_ms, &next, now + LOG_INTERVAL_MS))
        return;
    atomic_fetch_sub(&r->events, events);
    log_line line;
    log_begin(&line, level, msg);
    log_int(&line, "events", (int64_t)events);
    log_int(&line, key, value);
    log_end(&line);
}

typedef enum admission { ADMITTED, OVER_TOTAL, OVER_CLIENT } admission;

static admission connection_admit(const client_key *client)
{
    admission verdict = ADMITTED;
    bool per_client = client != NULL && limits.clients != NULL;
    pthread_mutex_lock(&limits.lock);
    if (limits.open >= limits.max_total)
        verdict = OVER_TOTAL;
    else if (per_client && client_table_count(limits.clients, client) >= (uint32_t)limits.max_per_client)
        verdict = OVER_CLIENT;
    if (verdict == ADMITTED) {
        if (++limits.open > limits.peak_open)
            limits.peak_open = limits.open;
        if (per_client)
            client_table_add(limits.clients, client);
    }
    pthread_mutex_unlock(&limits.lock);
    return verdict;
}

static void connection_release(const client_key *client)
{
    pthread_mutex_lock(&limits.lock);
    limits.open--;
    if (client != NULL && limits.clients != NULL)
        client_table_remove(limits.clients, client);
    pthread_mutex_unlock(&limits.lock);
}

/* ---- a problem written on the socket itself --------------------------------------------- */

int conn_guard_send_problem(loop_thread *lt, h2o_socket_t *sock, int status, const char *code, const char *detail)
{
    size_t len = 0;
    char *response = protocol_problem_response(lt, status, code, detail, &len);
    ssize_t written = -1;
    if (response != NULL && !h2o_socket_is_writing(sock))
        while ((written = write(h2o_socket_get_fd(sock), response, len)) < 0 && errno == EINTR)
            ;
    free(response);
    return written == (ssize_t)len && response != NULL ? 0 : -1;
}

/* ---- the head bound ------------------------------------------------------------------- */

static size_t head_bound(loop_thread *lt)
{
    return (size_t)atomic_load_explicit(&lt->srv->max_header_bytes, memory_order_relaxed) + HEAD_LINE_ALLOWANCE;
}

/* True when the first len bytes hold an empty line: the end of a head. */
static bool head_ends_within(const char *bytes, size_t len)
{
    for (const char *lf = memchr(bytes, '\n', len); lf != NULL;
         lf = memchr(lf + 1, '\n', len - (size_t)(lf + 1 - bytes))) {
        size_t rest = len - (size_t)(lf + 1 - bytes);
        if ((rest >= 1 && lf[1] == '\n') || (rest >= 2 && lf[1] == '\r' && lf[2] == '\n'))
            return true;
    }
    return false;
}

static void head_refuse(conn_guard *g, size_t bound)
{
    h2o_socket_t *sock = g->sock;
    const char *bytes = sock->input->bytes;
    const char *space = memchr(bytes, ' ', sock->input->size < 16 ? sock->input->size : 16);
    h2o_iovec_t method = h2o_iovec_init(bytes, space != NULL ? (size_t)(space - bytes) : 0);
    bool line_ended = memchr(bytes, '\n', bound) != NULL;
    long long limit = (long long)(bound - HEAD_LINE_ALLOWANCE);
    char detail[200];
    if (line_ended)
        snprintf(detail, sizeof detail,
                 "the request head passed %zu bytes without ending; headers may total %lld bytes "
                 "(server.max_header_bytes), plus %d for the request line",
                 bound, limit, HEAD_LINE_ALLOWANCE);
    else
        snprintf(detail, sizeof detail,
                 "the request line passed %zu bytes without ending; the target may be %lld bytes "
                 "(server.max_header_bytes)",
                 bound, limit);
    int status = line_ended ? 431 : 414;
    conn_guard_send_problem(g->owner, sock, status, line_ended ? "headers_too_large" : "uri_too_long", detail);
    metrics_connection_event(METRICS_CONN_HEAD_TOO_LARGE);
    if (metrics_enabled())
        metrics_request(-1, request_method_index(method), status, 0);
    /* h2o closes the connection through its own path: its state goes with it. */
    g->h2o_read(sock, h2o_socket_error_closed);
}

static void on_read_guarded(h2o_socket_t *sock, const char *err)
{
    conn_guard *g = sock->on_close.data;
    size_t bound = head_bound(g->owner);
    if (err == NULL && sock->input->size > bound && !head_ends_within(sock->input->bytes, bound)) {
        head_refuse(g, bound);
        return;
    }
    g->h2o_read(sock, err);
}

static void on_rearm(h2o_timeout_entry_t *entry)
{
    conn_guard *g = H2O_STRUCT_FROM_MEMBER(conn_guard, rearm, entry);
    if (g->sock->_cb.read == g->h2o_read)
        g->sock->_cb.read = on_read_guarded;
}

static void on_socket_close(void *data)
{
    conn_guard *g = data;
    if (h2o_timeout_is_linked(&g->rearm))
        h2o_timeout_unlink(&g->rearm);
    connection_release(g->has_client ? &g->client : NULL);
    metrics_connections_open(-1);
    free(g);
}

void conn_guard_request_done(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->on_close.cb != on_socket_close)
        return;
    conn_guard *g = sock->on_close.data;
    if (!h2o_timeout_is_linked(&g->rearm))
        h2o_timeout_link(g->owner->ctx.loop, &g->owner->guard.rearm_timeout, &g->rearm);
}

/* ---- accepting ---------------------------------------------------------------------- */

static void connection_refuse(h2o_socket_t *sock, admission verdict)
{
    bool total = verdict == OVER_TOTAL;
    metrics_connection_event(total ? METRICS_CONN_REFUSED_TOTAL : METRICS_CONN_REFUSED_CLIENT);
    rate_log_event(&limits.refused_log, LOG_WARN,
                   total ? "connection refused: server.max_connections reached"
                         : "connection refused: server.max_connections_per_client reached",
                   "limit", total ? limits.max_total : limits.max_per_client);
    h2o_socket_close(sock);
}

void conn_guard_accept(loop_thread *lt, h2o_socket_t *sock)
{
    conn_guard *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        h2o_socket_close(sock);
        return;
    }
    struct sockaddr_storage peer;
    g->has_client = h2o_socket_getpeername(sock, (struct sockaddr *)&peer) != 0 &&
                    client_key_of((struct sockaddr *)&peer, &g->client) == 0;
    admission verdict = connection_admit(g->has_client ? &g->client : NULL);
    if (verdict != ADMITTED) {
        free(g);
        connection_refuse(sock, verdict);
        return;
    }
    metrics_connections_open(1);
    g->owner = lt;
    g->sock = sock;
    g->rearm.cb = on_rearm;
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = g;
    h2o_accept(&lt->accept_ctx, sock);
    /* A plain-text connection starts as HTTP/1, reading its first head. */
    g->h2o_read = sock->_cb.read;
    sock->_cb.read = on_read_guarded;
}

static void on_accept_resume(h2o_timeout_entry_t *entry)
{
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, guard.accept_resume, entry);
    if (lt->listener != NULL && !lt->stopping)
        h2o_socket_read_start(lt->listener, lt->guard.on_accept);
}

bool conn_guard_accept_failed(loop_thread *lt, int err, h2o_socket_cb on_accept)
{
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return false;
    h2o_socket_read_stop(lt->listener);
    lt->guard.on_accept = on_accept;
    if (!h2o_timeout_is_linked(&lt->guard.accept_resume))
        h2o_timeout_link(lt->ctx.loop, &lt->guard.accept_pause, &lt->guard.accept_resume);
    metrics_connection_event(METRICS_CONN_ACCEPT_PAUSED);
    rate_log_event(&limits.descriptors_log, LOG_ERROR,
                   err == EMFILE || err == ENFILE ? "out of file descriptors: accepting paused"
                                                  : "out of socket memory: accepting paused",
                   "pause_ms", ACCEPT_PAUSE_MS);
    return true;
}

/* ---- giving memory back ------------------------------------------------------------------ */

static void heap_trim_on_worker(void *worker)
{
    (void)worker;
    heap_trim();
}

/* A recession: open connections have fallen TRIM_AFTER_DROP below their
 * peak. Each look that finds them lower still trims; the first that does
 * not ends the recession, and the peak starts again from there. */
static bool heap_trim_due(void)
{
    bool due = false;
    pthread_mutex_lock(&limits.lock);
    if (limits.peak_open - limits.open >= TRIM_AFTER_DROP && limits.open < limits.trimmed_at_open) {
        due = true;
        limits.trimmed_at_open = limits.open;
    } else if (limits.trimmed_at_open != INT_MAX && limits.open >= limits.trimmed_at_open) {
        limits.peak_open = limits.open;
        limits.trimmed_at_open = INT_MAX;
    }
    pthread_mutex_unlock(&limits.lock);
    return due;
}

static void on_trim_check(h2o_timeout_entry_t *entry)
{
    loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, guard.trim_check, entry);
    if (lt->stopping)
        return;
    uint64_t now = h2o_now(lt->ctx.loop);
    bool periodic = now - lt->guard.trimmed_ms >= TRIM_EVERY_MS;
    if (!lt->guard.trimming && (heap_trim_due() || periodic)) {
        lt->guard.trimmed_ms = now;
        request_submit_task(lt, heap_trim_on_worker, &lt->guard.trimming);
    }
    h2o_timeout_link(lt->ctx.loop, &lt->guard.trim_timeout, entry);
}

/* ---- lifecycle ----------------------------------------------------------------------- */

void conn_guard_loop_init(loop_thread *lt)
{
    conn_guard_loop *gl = &lt->guard;
    h2o_timeout_init(lt->ctx.loop, &gl->rearm_timeout, 0);
    h2o_timeout_init(lt->ctx.loop, &gl->accept_pause, ACCEPT_PAUSE_MS);
    gl->accept_resume.cb = on_accept_resume;
    h2o_timeout_init(lt->ctx.loop, &gl->trim_timeout, TRIM_CHECK_MS);
    gl->trim_check.cb = on_trim_check;
    if (lt->index == 0)
        h2o_timeout_link(lt->ctx.loop, &gl->trim_timeout, &gl->trim_check);
    gl->ready = true;
}

void conn_guard_loop_dispose(loop_thread *lt)
{
    conn_guard_loop *gl = &lt->guard;
    if (!gl->ready)
        return;
    if (h2o_timeout_is_linked(&gl->accept_resume))
        h2o_timeout_unlink(&gl->accept_resume);
    if (h2o_timeout_is_linked(&gl->trim_check))
        h2o_timeout_unlink(&gl->trim_check);
    h2o_timeout_dispose(lt->ctx.loop, &gl->rearm_timeout);
    h2o_timeout_dispose(lt->ctx.loop, &gl->accept_pause);
    h2o_timeout_dispose(lt->ctx.loop, &gl->trim_timeout);
    gl->ready = false;
}

/* server.max_connections = 0: as many as the open-file limit leaves after
 * DESCRIPTOR_RESERVE for the server's own files, at most AUTO_MAX_CONNECTIONS.
 * A value set by the operator is kept, with a warning when the limit cannot
 * hold it (accepting then pauses whenever descriptors run out). */
static int connections_allowed(int configured)
{
    struct rlimit rl;
    bool known = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
    rlim_t room = known && rl.rlim_cur > DESCRIPTOR_RESERVE + 16 ? rl.rlim_cur - DESCRIPTOR_RESERVE : 16;
    int allowed = configured;
    if (configured == 0)
        allowed = known && room < AUTO_MAX_CONNECTIONS ? (int)room : AUTO_MAX_CONNECTIONS;
    log_line line;
    log_begin(&line, known && (rlim_t)allowed > room ? LOG_WARN : LOG_INFO,
              known && (rlim_t)allowed > room
                  ? "server.max_connections is above what the open-file limit leaves; accepting pauses when "
                    "descriptors run out"
                  : "connection caps");
    log_int(&line, "max_connections", allowed);
    log_int(&line, "max_connections_per_client", limits.max_per_client);
    log_int(&line, "open_file_limit", known ? (int64_t)rl.rlim_cur : -1);
    log_end(&line);
    return allowed;
}

int conn_guard_init(const strata_config *cfg)
{
    limits.max_per_client = cfg->max_connections_per_client;
    limits.max_total = connections_allowed(cfg->max_connections);
    limits.open = limits.peak_open = 0;
    limits.trimmed_at_open = INT_MAX;
    if (limits.max_per_client == 0)
        return 0;
    uint64_t seed;
    if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
        seed = clock_ms();
    limits.clients = client_table_new((size_t)limits.max_total, seed);
    return limits.clients != NULL ? 0 : -1;
}

void conn_guard_dispose(void)
{
    if (limits.clients != NULL)
        client_table_free(&limits.clients);
}

/*
 * server_internal.h — internal to src/http: the structures the server's
 * files share.
 *
 *   server.c   threads, listeners, signals, graceful shutdown, periodic work
 *   request.c  the request path: limits, routing, the L1 hit, jobs, shedding
 *   fill.c     a cacheable key's fill: the tiers, the database, waiters
 *   filters.c  h2o's own errors as problem+json, and the access log
 *   protocol_guard.c  ambiguous framing, h2o's early errors, HTTP/2 resets
 *   conn_guard.c  connection caps, the bound on an unfinished head, accept
 *              pauses when descriptors run out, memory back after a flood
 *
 * Threading rule: everything reachable from a loop_thread (its h2o
 * context, requests, trackers, waiters' requests) is touched only by that
 * loop's thread; workers touch jobs' copies and the thread-safe cache, and
 * hand results back through the loop's multithread receivers.
 */
#ifndef STRATA_HTTP_SERVER_INTERNAL_H
#define STRATA_HTTP_SERVER_INTERNAL_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cache/cache.h"
#include "http/fill.h"
#include "http/http.h"
#include "http/response_cache.h"
#include "http/worker_pool.h"
#include "metrics/metrics.h"

typedef struct server server;
typedef struct job job;
typedef struct waiter waiter;

#define MAX_PERIODIC 4
#define L2_POLL_MS 2 /* how often a fill waiting on another instance's lease looks again */

typedef struct loop_thread loop_thread;

/* One periodic task's timer on loop 0. */
typedef struct periodic_slot {
    h2o_timeout_t timeout;
    h2o_timeout_entry_t entry;
    loop_thread *owner;
    size_t index;
    bool running;
} periodic_slot;

/* conn_guard.c's per-loop part. */
typedef struct conn_guard_loop {
    h2o_timeout_t rearm_timeout; /* 0 ms: the guard back in front of h2o's reader */
    h2o_timeout_t accept_pause;  /* out of descriptors: the listener rests this long */
    h2o_timeout_entry_t accept_resume;
    h2o_socket_cb on_accept;
    h2o_timeout_t trim_timeout; /* loop 0: how often to look whether to trim the heap */
    h2o_timeout_entry_t trim_check;
    bool trimming;       /* a heap_trim is queued or running */
    uint64_t trimmed_ms; /* when the last was queued (h2o's clock) */
    bool ready;
} conn_guard_loop;

struct loop_thread {
    server *srv;
    int index;
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t jobs_done;
    h2o_multithread_receiver_t waiters_done;
    h2o_multithread_receiver_t control;
    h2o_timeout_t coalesce_timeout; /* how long a waiter waits for a fill */
    l2_conn *l2;                    /* this loop's Redis connections; NULL without an L2 */
    void *reader;                  /* its own worker resource for bounded reads (http_app.reads_on_loops); NULL: none */
    h2o_timeout_t l2_poll_timeout; /* between looks at a key another instance fills */
    h2o_timeout_t queue_timeout;   /* an anonymous job's wait for a worker (server.queue_timeout_ms) */
    h2o_timeout_t queue_probe_timeout; /* between looks at queued jobs' HTTP/1 clients */
    h2o_timeout_entry_t queue_probe;
    h2o_linklist_t queued_jobs;    /* this loop's anonymous jobs given to the pool, not yet returned */
    h2o_linklist_t deferred_reads; /* reads kept for this loop's next turns, the newest last (request.c) */
    size_t deferred_count;
    uint64_t deferred_since_ns;     /* when deferred_reads last went from empty to not */
    size_t active_requests;         /* requests whose h2o memory is alive */
    _Atomic uint64_t requests_done; /* requests finished; read by the fill budget (fill_budget.h) */
    size_t jobs_outstanding;        /* jobs submitted and not yet returned */
    uint64_t request_seq;
    bool stopping;
    periodic_slot periodic[MAX_PERIODIC]; /* driven by loop 0 only */
    conn_guard_loop guard;
};

struct server {
    strata_config *cfg;
    const http_app *app;
    h2o_globalconf_t globalconf;
    loop_thread *loops;
    int loop_count;
    worker_pool pool;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t instance_tag; /* random, so request ids differ across instances */
    _Atomic int64_t max_header_bytes;
    /* The phases of the loops' lives, told to and by the main thread. h2o
     * keeps per-thread buffer allocators, so each loop must create and
     * dispose its own context on its own thread. */
    pthread_mutex_t phase_lock;
    pthread_cond_t phase_changed;
    int loops_ready, loops_failed, loops_stopped;
    bool go, abort_start, pool_stopped;
};

typedef struct strata_handler {
    h2o_handler_t super;
    server *srv;
} strata_handler;

/* Lives in the request's h2o pool; its dispose callback tells whoever is
 * working for the request that it is gone. */
typedef struct request_tracker {
    loop_thread *owner;
    job *job;
    waiter *waiter;
    uint64_t started_ns;
    /* metrics, recorded when the request's memory is let go (request.c) */
    h2o_req_t *req;
    int route;             /* −1 until routed, or when no route matched */
    unsigned method_index; /* bit index of its http_method */
    char request_id[HTTP_REQUEST_ID_MAX + 1];
} request_tracker;

/* ---- jobs (request.c) and fills (fill.c) ---------------------------------------- */

typedef enum job_kind {
    JOB_REQUEST, /* a request's handler, answered as it responds (writes, editors, Authorization) */
    JOB_FILL,    /* a request answered with a representation: the fill machine (fill.h) */
    JOB_TASK,    /* periodic or start-up work: nobody's request */
} job_kind;

/* The request a job answers: a copy the worker reads, and, on the loop, the
 * live request. */
typedef struct job_request {
    h2o_req_t *req; /* NULL once the client is gone, once answered early, or none */
    request_tracker *tracker;
    const http_route *route;
    http_request rq;
    http_response res;
} job_request;

typedef struct job_task {
    void (*run)(void *worker);
    bool *running; /* cleared when it is done; NULL: detached */
} job_task;

/* Load shedding's part (request.c). */
typedef struct job_queueing {
    h2o_timeout_entry_t deadline; /* loop: in lt->queue_timeout while on the public lane */
    h2o_linklist_t queued_link;   /* loop: in lt->queued_jobs, likewise; or in lt->deferred_reads */
    uint64_t deadline_ns;         /* a worker taking it later does not run it; 0: none */
    uint64_t deferred_ns;         /* loop: when it joined lt->deferred_reads */
    atomic_bool client_gone;      /* set on the loop, read by the worker */
    bool shed;                    /* not run: reason says why */
    metrics_shed_reason reason;
} job_queueing;

struct job {
    pool_job super;                 /* worker queue link */
    h2o_multithread_message_t done; /* loop queue link */
    loop_thread *owner;             /* NULL: detached, nobody to tell */
    job_kind kind;
    job_queueing queue;
    union {
        job_task task; /* JOB_TASK */
        struct {
            job_request request; /* JOB_REQUEST, JOB_FILL */
            fill fill;           /* JOB_FILL */
        };
    };
};

/* request.c */
int request_on_request(h2o_handler_t *self, h2o_req_t *req);
void request_on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
/* Runs task(worker) on a worker; the loop is told when it is done through
 * jobs_done, with *running cleared. detached: nobody is told (shutdown). */
void request_submit_task(loop_thread *lt, void (*task)(void *worker), bool *running);
void request_submit_detached_task(server *srv, void (*task)(void *worker));
/* The bit index of a method's http_method (metrics' method index). */
unsigned request_method_index(h2o_iovec_t method);
/* The http_method bit of a method's name (HTTP_OTHER for one strata does
 * not know). */
http_method request_method_bit(h2o_iovec_t method);
/* "GET, HEAD, …" of http_method bits, for Allow and its CORS kin. */
void request_allow_value(unsigned methods, char *out, size_t size);
/* A new request id (<instance>-<loop>-<sequence>), on lt's thread. */
void request_id_generate(loop_thread *lt, char out[HTTP_REQUEST_ID_MAX + 1]);
/* The client's X-Request-Id when it is sane, else a new one. */
void assign_request_id(loop_thread *lt, h2o_req_t *req, char out[HTTP_REQUEST_ID_MAX + 1]);
/* A loop's load-shedding timers, on its own thread (request.c). */
void request_loop_init(loop_thread *lt);
void request_loop_dispose(loop_thread *lt);
/* Reads kept for this loop's next turns: whether any wait, and running
 * them (after each poll) for a slice, the newest first, the stale shed. */
bool request_deferred_waiting(const loop_thread *lt);
void request_run_deferred(loop_thread *lt);
/* For fill.c. A job of `kind` with a copy of req, answering nobody until
 * attached; NULL without memory. */
job *request_job_new(loop_thread *lt, h2o_req_t *req, const request_tracker *t, int route_index,
                     const http_captures *caps, job_kind kind);
/* The job answers req (its tracker points at it). */
void request_job_attach(job *j, h2o_req_t *req, request_tracker *t);
/* Gives the job to the pool, or sheds it (then it is complete at once). */
void request_job_enqueue(job *j);
/* The job's request answered with its handler's response as it is. */
void request_job_send_response(job *j);
/* Counted back and freed. */
void request_job_finish(job *j);
/* 503 out_of_memory, and 503 overloaded for a request shed for `reason`. */
void request_send_no_memory(h2o_req_t *req, request_tracker *t);
void request_send_overloaded(h2o_req_t *req, request_tracker *t, const strata_config *cfg, metrics_shed_reason reason);

/* fill.c (the fill machine; see its diagram) */
/* The L1 missed (e: the expired copy, or NULL; taken over): lead the key's
 * flight, or wait on it. */
void fill_miss(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps,
               const fill_key *k, cache_entry **e);
/* The L1 had a stale entry: one background refresh, unless one runs. */
void fill_refresh(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps,
                  const fill_key *k);
/* A representation without a flight (no key, or the cache off). */
void fill_alone(loop_thread *lt, h2o_req_t *req, request_tracker *t, int route_index, const http_captures *caps);
/* Job hooks (request.c): back on the loop from the pool, run or shed;
 * worker: the handler ran (value: its representation, taken over, or
 * NULL); any thread: still wanted by a waiter; ends the flight empty. */
void fill_returned(job *j);
void fill_ran(job *j, const cache_value *value, lsn_t read_lsn);
bool fill_has_waiters(const job *j);
void fill_abandon(job *j);
void fill_free(job *j);
/* Waiters: server.c's receiver; a waiter's request let go. */
void request_on_waiters_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
void fill_waiter_gone(waiter *w);

/* filters.c */
void filters_register(h2o_pathconf_t *pathconf);
/* log.sample_hits: log one cache hit in `one_in` (before the loops start). */
void filters_set_hit_sampling(int one_in);
/* From the request's first byte to its response's last (or now), µs. */
uint64_t filters_request_micros(h2o_req_t *req);

/* protocol_guard.c */
typedef enum protocol_head {
    PROTOCOL_HEAD_OK,         /* complete, nothing refused */
    PROTOCOL_HEAD_INCOMPLETE, /* nothing refused in its complete lines so far */
    PROTOCOL_HEAD_REFUSED,    /* see the refusal */
} protocol_head;

typedef struct protocol_refusal {
    int status;       /* 400, 431 or 501 */
    const char *code; /* problem+json code, static */
    char detail[200];
} protocol_refusal;

/* Reads the request head at the start of bytes (len bytes received so far,
 * the head and maybe more) as h2o's parser does, and refuses, besides what
 * h2o refuses, a body length that could be read two ways. */
protocol_head protocol_guard_check_head(const char *bytes, size_t len, protocol_refusal *refusal);
/* A whole HTTP/1.1 problem+json response (a new X-Request-Id, Connection:
 * close), malloc'd, for errors answered on the socket itself before h2o
 * has a request; logged as "request refused". NULL without memory. */
char *protocol_problem_response(loop_thread *lt, int status, const char *code, const char *detail, size_t *len);
/* True when libh2o's calls reach strata's phr_parse_request,
 * h2o_socket_write and h2o_send_error_generic (ELF interposition; checked
 * at start). */
bool protocol_guard_installed(void);
/* While h2o sends an error of its own, its plain-text body (the precise
 * reason), else NULL. */
const char *protocol_guard_h2o_error_text(void);
/* HTTP/2: a request is let go (request.c's dispose); counted against its
 * connection when no response had begun. */
void protocol_guard_stream_disposed(h2o_req_t *req);
/* HTTP/2: true (detail filled) when req's connection has reset too many
 * streams; it is then sent GOAWAY, and req is to be refused. */
bool protocol_guard_stream_refused(h2o_req_t *req, char *detail, size_t size);
/* conn_guard.c */
typedef struct conn_guard conn_guard;
/* The process-wide caps (server.max_connections, …_per_client). 0, or -1
 * when out of memory. */
int conn_guard_init(const strata_config *cfg);
void conn_guard_dispose(void);
void conn_guard_loop_init(loop_thread *lt);
void conn_guard_loop_dispose(loop_thread *lt);
/* A socket just accepted: counted and handed to h2o behind the head bound,
 * or closed at once when over a cap. */
void conn_guard_accept(loop_thread *lt, h2o_socket_t *sock);
/* accept failed with err: true when it was for want of descriptors or
 * memory, and the listener now rests for a moment before on_accept again. */
bool conn_guard_accept_failed(loop_thread *lt, int err, h2o_socket_cb on_accept);
/* A request's memory is being let go (request.c): the connection may go
 * back to reading a head, which the guard must bound again. */
void conn_guard_request_done(h2o_req_t *req);
/* Writes a whole problem+json response (a new X-Request-Id, connection:
 * close) straight on an HTTP/1 socket that h2o is reading a head from, for
 * errors found before h2o has a request; logs it. The caller then has h2o
 * close the connection. 0 when all of it was written, else -1. */
int conn_guard_send_problem(loop_thread *lt, h2o_socket_t *sock, int status, const char *code, const char *detail);

#endif

/*
 * metrics.h — what strata measures about itself, and how others read it.
 *
 * Recorded: per route and method, requests by status class and a latency
 * histogram (hist.h); per SQL statement, queries and time; slow queries
 * with their plan (a ring of the last METRICS_SLOW_RING); the worker
 * pool's busy workers, queue length and queue wait. The response cache,
 * the job queue and memory are read from their owners when asked
 * (export.c), through the readers main.c registers (metrics_sources).
 *
 * Threads. Every recording thread (event loops, workers, the job runner)
 * writes its own shard, made on its first record and kept for the life of
 * the process; readers merge the shards. The request path therefore takes
 * no lock, makes no atomic read-modify-write and allocates nothing (a
 * route's histogram is allocated the first time that thread serves it).
 * Slow queries, which are rare, go through one mutex.
 *
 * Routes are named by their pattern ("/v1/:site/content/:id"), never by
 * what a request put in it; requests that matched no route (404, 405, and
 * h2o's own errors) share the name "unmatched".
 *
 * metrics.enabled = false makes every record function return at once.
 */
#ifndef STRATA_METRICS_H
#define STRATA_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "metrics/hist.h"

#define METRICS_METHODS 8 /* bit i of http_method (http.h) is method index i */
#define METRICS_CLASSES 6 /* 0: no response (the client left), 1..5: 1xx..5xx */
#define METRICS_SLOW_RING 50
#define METRICS_UNMATCHED "unmatched"

/* Once, before any thread records: the configuration and the route
 * patterns (static strings; the array is copied). Later calls only change
 * the settings. 0, or -1 when out of memory. */
int metrics_init(const strata_config *cfg, const char *const *route_patterns, size_t route_count);

extern bool metrics_on; /* read through metrics_enabled() */
static inline bool metrics_enabled(void)
{
    return metrics_on;
}

uint64_t metrics_now_ns(void); /* CLOCK_MONOTONIC */

/* ---- recording (any thread, each into its own shard) ---------------------- */

/* One answered request: route index (−1 or out of range: unmatched), the
 * method's index (METRICS_METHODS), its status (0: none was sent) and how
 * long it took in µs. */
void metrics_request(int route, unsigned method_index, int status, uint64_t micros);

/* The worker pool: a job queued (returns its stamp, 0 when off), a worker
 * taking it (the stamp gives the queue wait), a worker done with it. */
void metrics_pool_workers(size_t count);
/* The fills' CPU budget has been in force this long in all (fill_budget.h). */
void metrics_pool_budget_scarce(uint64_t total_ns);
/* A fill started while the budget held the others back, because other
 * requests waited for it (worker_pool.h). */
void metrics_pool_awaited_fill(void);
uint64_t metrics_pool_enqueued(void);
void metrics_pool_started(uint64_t stamp);
void metrics_pool_finished(void);
/* A queued job taken back before any worker took it (its deadline passed). */
void metrics_pool_dequeued(void);
/* A read an event loop ran itself instead of queueing it (request.c). */
void metrics_loop_read(void);
/* A loop read kept for the loop's next turns: its turn had run reads for
 * its whole slice (request.c). */
void metrics_loop_read_deferred(void);
/* A loop read whose handler found it was no bounded read and asked for a
 * worker (a range on a declared field with many values: request.c). */
void metrics_loop_read_to_worker(void);

/* Load shedding (src/http/request.c): a request answered without its
 * job, from a stale copy or with 503, because its lane was full or it
 * could not start before its deadline; or a read whose fill was skipped
 * because its client had gone before a worker took it. */
typedef enum metrics_shed_reason {
    METRICS_SHED_QUEUE_FULL,
    METRICS_SHED_DEADLINE,
    METRICS_SHED_CLIENT_GONE,
    METRICS_SHED_REASONS
} metrics_shed_reason;
void metrics_shed(int route, metrics_shed_reason reason);

/* A statement run from start to end (ns), by its SQL text. */
void metrics_query(const char *sql, uint64_t nanos);
/* The slow-query threshold in ns (db.slow_query_ms); UINT64_MAX when off. */
uint64_t metrics_slow_query_ns(void);
/* A statement over the threshold: logged at warn with its plan and kept in
 * the ring. plan may be NULL. */
void metrics_slow_query(const char *sql, uint64_t nanos, const char *plan);

/* ---- reading (any thread; everything returned is the caller's) ------------ */

typedef struct metrics_route_sample {
    const char *route;  /* the pattern, or METRICS_UNMATCHED */
    const char *method; /* "GET" … */
    uint64_t by_class[METRICS_CLASSES];
    uint64_t requests; /* the sum of by_class */
    hist latency;      /* merged over the threads */
} metrics_route_sample;

/* Every (route, method) that has had a request, in route-table order.
 * free() the array. NULL with *count 0 when there is none. */
metrics_route_sample *metrics_routes_collect(size_t *count);

typedef struct metrics_statement_sample {
    char name[48];   /* stable short name: "select_items_3fa2c91d" */
    const char *sql; /* kept by metrics for the life of the process */
    uint64_t queries;
    uint64_t total_ns;
    uint64_t max_ns;
} metrics_statement_sample;

/* Per SQL text over every connection, by total time, largest first.
 * free() the array. */
metrics_statement_sample *metrics_statements_collect(size_t *count);
/* A statement's stable short name: its verb, its first table, and eight hex
 * digits of the hash of its text. */
void metrics_statement_name(const char *sql, char out[48]);

typedef struct metrics_pool_sample {
    size_t workers;
    int64_t busy;
    int64_t queued;
    uint64_t budget_scarce_ns;     /* time anonymous fills were held to their CPU budget */
    uint64_t awaited_fills;        /* fills started past the budget: others waited for them */
    uint64_t loop_reads;           /* reads run on an event loop, not queued */
    uint64_t loop_reads_deferred;  /* …of which, or shed, kept for a later turn first */
    uint64_t loop_reads_to_worker; /* …of which handed to a worker by their handler */
    hist wait;                     /* queue wait, µs */
} metrics_pool_sample;
void metrics_pool_collect(metrics_pool_sample *out);

typedef struct metrics_shed_sample {
    const char *route;  /* the pattern, or METRICS_UNMATCHED */
    const char *reason; /* "queue_full", "deadline", "client_gone" */
    uint64_t count;
} metrics_shed_sample;
/* Every (route, reason) that has shed, in route-table order. free() the
 * array. NULL with *count 0 when there is none. */
metrics_shed_sample *metrics_shed_collect(size_t *count);
/* Requests shed and answered (queue_full + deadline), every route: what
 * the shed_rate budget counts. */
uint64_t metrics_shed_answered(void);

/* The slow-query ring, newest first: [{"at","statement","sql","ms","plan"}…]. */
json_t *metrics_slow_queries_json(void);
uint64_t metrics_slow_queries_total(void);
int metrics_slow_query_ms(void);

/* Resident memory from /proc/self/statm, in bytes (0 if unreadable). */
uint64_t metrics_rss_bytes(void);
/* Seconds since metrics_init. */
double metrics_uptime_s(void);

/* ---- exposition (export.c; on a worker thread) ---------------------------- */

/* What the export reads from the layers above (the site list, the response
 * cache, the job queue): registered once by the composition root (main.c),
 * so metrics includes none of them. `worker` is what the exporting
 * handler runs with (its store), passed through untouched. A reader that
 * is NULL, or returns NULL, leaves its part out. */
typedef struct metrics_sources {
    json_t *(*sites)(void *worker);           /* [{"name":…}…], every site of the database */
    json_t *(*cache_stats)(const char *site); /* {"enabled",…,"l1":{…}} ("": every site) */
    json_t *(*jobs_stats)(void *worker);      /* the job queue's figures */
    json_t *(*replicas)(void);                /* {"reads":{…},"replicas":[…]} (store/replicas.h) */
    json_t *(*history)(void *worker);         /* {"cache":{…},"sites":{…}} (content/history.c) */
    json_t *(*writes)(void *worker);          /* {"group_commit":{…}|null,"disk_full"} (store_writes_json) */
} metrics_sources;
/* Before the server starts; sources is copied. */
void metrics_set_sources(const metrics_sources *sources);
/* The replicas reader's answer (NULL without one): for the alerts' lag budget. */
json_t *metrics_replicas(void);

/* The Prometheus text exposition format 0.0.4 of everything above, the
 * cache, the job queue and memory. malloc'd; *len its length. NULL when out
 * of memory. Without site_labels the per-site cache samples are summed
 * into site="_all" (a public /metrics does not list the tenants). */
char *metrics_prometheus(void *worker, bool site_labels, size_t *len);
/* GET /api/performance/metrics (docs/monitoring.md). */
json_t *metrics_summary_json(void *worker);

/* ---- connections (http/conn_guard.c; per connection, never per request) -- */

typedef enum metrics_conn_event {
    METRICS_CONN_REFUSED_TOTAL,  /* closed at accept: server.max_connections */
    METRICS_CONN_REFUSED_CLIENT, /* closed at accept: server.max_connections_per_client */
    METRICS_CONN_HEAD_TOO_LARGE, /* answered 431 before its head had ended */
    METRICS_CONN_ACCEPT_PAUSED,  /* accept failed for want of descriptors */
    METRICS_CONN_RAPID_RESET,    /* an HTTP/2 connection closed for resetting streams */
    METRICS_CONN_EVENTS
} metrics_conn_event;

typedef struct metrics_conn_sample {
    uint64_t events[METRICS_CONN_EVENTS];
    int64_t open;
} metrics_conn_sample;

void metrics_connection_event(metrics_conn_event event);
/* A connection opened (+1) or closed (−1). */
void metrics_connections_open(int delta);
void metrics_connections_collect(metrics_conn_sample *out);

/* ---- rate limits (http/ratelimit.c, content/views.c; refusals only) ----- */

/* The policies a 429 names (its RateLimit-Policy), in export order. */
#define METRICS_LIMIT_POLICIES "client", "client-token", "token-read", "token-write", "token-admin", "views"
enum { METRICS_LIMIT_POLICY_COUNT = 6 };
/* A request refused with 429 under policy (one of the names above). */
void metrics_rate_limited(const char *policy);
void metrics_rate_limited_collect(uint64_t out[METRICS_LIMIT_POLICY_COUNT]);

#endif

/*
 * export.c — what metrics.c recorded, and what the cache, the job queue and
 * the process say of themselves, as Prometheus text and as the JSON summary.
 *
 * Both are built on a worker thread at request time, from merged copies:
 * nothing here runs on the request path. The Prometheus text follows the
 * exposition format 0.0.4 and Prometheus's naming rules: a `strata_` prefix,
 * base units (seconds, bytes), `_total` on counters, HELP and TYPE before
 * each family and a family's samples together, labels that name routes by
 * pattern and statements by a short stable name (never an item id).
 *
 * Latency histograms are exported in fixed `le` buckets (100 µs … 10 s),
 * each counting the fine buckets (hist.h) that lie wholly below it, so a
 * bucket is exact to within one fine bucket (< 1 %).
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/heap.h"
#include "core/log.h"
#include "metrics/metrics.h"

static const double le_seconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define LE_COUNT (sizeof(le_seconds) / sizeof(le_seconds[0]))
#define TOP_STATEMENTS 20 /* in the JSON summary */

static const char *const class_names[METRICS_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

/* ---- the text buffer -------------------------------------------------------------------- */

typedef struct prom {
    char *buf;
    size_t len, cap;
    bool failed;
} prom;

static void prom_grow(prom *p, size_t more)
{
    if (p->failed || p->len + more + 1 <= p->cap)
        return;
    size_t cap = p->cap ? p->cap : 16384;
    while (cap < p->len + more + 1)
        cap *= 2;
    char *buf = realloc(p->buf, cap);
    if (buf == NULL) {
        p->failed = true;
        return;
    }
    p->buf = buf;
    p->cap = cap;
}

static void prom_printf(prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prom_printf(prom *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    prom_grow(p, (size_t)n);
    if (p->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    p->len += (size_t)n;
}

static void prom_family(prom *p, const char *name, const char *type, const char *help)
{
    prom_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k="v",…} value — labels are NULL-terminated key, value pairs; a
 * value is escaped as the format wants (\\, \", \n). */
static void prom_sample(prom *p, const char *name, const char *const *labels, double value)
{
    prom_printf(p, "%s", name);
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        prom_printf(p, "%s%s=\"", i == 0 ? "{" : ",", labels[i]);
        for (const char *c = labels[i + 1]; *c; c++)
            if (*c == '\\' || *c == '"')
                prom_printf(p, "\\%c", *c);
            else if (*c == '\n')
                prom_printf(p, "\\n");
            else
                prom_printf(p, "%c", *c);
        prom_printf(p, "\"%s", labels[i + 2] == NULL ? "}" : "");
    }
    if (value == floor(value) && fabs(value) < 1e15)
        prom_printf(p, " %.0f\n", value);
    else
        prom_printf(p, " %.9g\n", value);
}

#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* One histogram's _bucket, _sum and _count lines, from µs. */
static void prom_histogram(prom *p, const char *name, const char *const *labels, size_t label_count, const hist *h)
{
    char metric[128], le[32];
    const char *with_le[16];
    if (label_count > 6)
        return;
    for (size_t i = 0; i < label_count * 2; i++)
        with_le[i] = labels[i];
    with_le[label_count * 2] = "le";
    with_le[label_count * 2 + 1] = le;
    with_le[label_count * 2 + 2] = NULL;
    snprintf(metric, sizeof(metric), "%s_bucket", name);
    for (size_t i = 0; i < LE_COUNT; i++) {
        snprintf(le, sizeof(le), "%g", le_seconds[i]);
        prom_sample(p, metric, with_le, (double)hist_count_le(h, (uint64_t)llround(le_seconds[i] * 1e6)));
    }
    snprintf(le, sizeof(le), "+Inf");
    prom_sample(p, metric, with_le, (double)h->total);
    snprintf(metric, sizeof(metric), "%s_sum", name);
    prom_sample(p, metric, label_count ? labels : NULL, (double)h->sum / 1e6);
    snprintf(metric, sizeof(metric), "%s_count", name);
    prom_sample(p, metric, label_count ? labels : NULL, (double)h->total);
}

/* ---- what is read from the others ------------------------------------------------------- */

static metrics_sources sources;

void metrics_set_sources(const metrics_sources *src)
{
    sources = *src;
}

static json_t *cache_stats(const char *site)
{
    return sources.cache_stats != NULL ? sources.cache_stats(site) : NULL;
}

static json_t *jobs_stats(void *worker)
{
    return sources.jobs_stats != NULL ? sources.jobs_stats(worker) : NULL;
}

static double num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

json_t *metrics_replicas(void)
{
    return sources.replicas != NULL ? sources.replicas() : NULL;
}

static json_t *history_stats(void *worker)
{
    return sources.history != NULL ? sources.history(worker) : NULL;
}

static json_t *writes_stats(void *worker)
{
    return sources.writes != NULL ? sources.writes(worker) : NULL;
}

/* The database's writes: SQLite's group commit (how many writes each fsync
 * carried) and whether its disk is full. */
static void export_writes(prom *p, const json_t *writes)
{
    const json_t *group = json_object_get(writes, "group_commit");
    if (json_is_object(group)) {
        prom_family(p, "strata_db_group_commits_total", "counter",
                    "Transactions the SQLite group commit committed (one fsync each).");
        prom_sample(p, "strata_db_group_commits_total", NULL, num(group, "commits"));
        prom_family(p, "strata_db_group_writes_total", "counter",
                    "Writes committed in them, by whose: requests' or the job runner's (background).");
        prom_sample(p, "strata_db_group_writes_total", LABELS("class", "request"),
                    num(group, "writes") - num(group, "background_writes"));
        prom_sample(p, "strata_db_group_writes_total", LABELS("class", "background"), num(group, "background_writes"));
        prom_family(p, "strata_db_group_failed_writes_total", "counter",
                    "Writes that failed in a group (rolled back alone, or with their batch).");
        prom_sample(p, "strata_db_group_failed_writes_total", NULL, num(group, "failed_writes"));
    }
    prom_family(p, "strata_db_disk_full", "gauge",
                "1 while writes are refused because the database's disk is full (docs/operations.md).");
    prom_sample(p, "strata_db_disk_full", NULL, json_is_true(json_object_get(writes, "disk_full")));
}

/* The history cache's lookups and every site's versions and their stored
 * bytes (summed into site="_all" without site labels). */
static void export_history(prom *p, const json_t *history, bool site_labels)
{
    json_t *cache = json_object_get(history, "cache"), *sites = json_object_get(history, "sites");
    prom_family(p, "strata_history_cache_lookups_total", "counter",
                "Lookups of rendered versions and diffs in the history cache, by result.");
    prom_sample(p, "strata_history_cache_lookups_total", LABELS("result", "hit"), num(cache, "hits"));
    prom_sample(p, "strata_history_cache_lookups_total", LABELS("result", "miss"), num(cache, "misses"));
    prom_family(p, "strata_history_cache_bytes", "gauge", "Bytes held in the history cache.");
    prom_sample(p, "strata_history_cache_bytes", NULL, num(cache, "bytes"));
    const char *site;
    json_t *figures;
    double versions = 0, bytes = 0;
    prom_family(p, "strata_history_versions", "gauge", "Versions kept, by site (counted at most a minute ago).");
    json_object_foreach((json_t *)sites, site, figures)
    {
        versions += num(figures, "versions");
        if (site_labels)
            prom_sample(p, "strata_history_versions", LABELS("site", site), num(figures, "versions"));
    }
    if (!site_labels)
        prom_sample(p, "strata_history_versions", LABELS("site", "_all"), versions);
    prom_family(p, "strata_history_stored_bytes", "gauge",
                "Bytes the versions' data takes as stored (compressed), by site (counted at most a minute ago).");
    json_object_foreach((json_t *)sites, site, figures)
    {
        bytes += num(figures, "stored_bytes");
        if (site_labels)
            prom_sample(p, "strata_history_stored_bytes", LABELS("site", site), num(figures, "stored_bytes"));
    }
    if (!site_labels)
        prom_sample(p, "strata_history_stored_bytes", LABELS("site", "_all"), bytes);
}

/* {"site name": cache_stats(site)…} for every site of the database
 * (only those the cache has seen have numbers). NULL if the cache is off. */
static json_t *cache_by_site(void *worker, json_t **all)
{
    json_t *sites = sources.sites != NULL ? sources.sites(worker) : NULL, *out = json_object(), *entry;
    size_t i;
    *all = NULL;
    if (sites == NULL || out == NULL) {
        json_decref(sites);
        json_decref(out);
        return NULL;
    }
    json_array_foreach(sites, i, entry)
    {
        const char *name = json_string_value(json_object_get(entry, "name"));
        json_t *stats = name != NULL ? cache_stats(name) : NULL;
        if (stats != NULL && json_is_true(json_object_get(stats, "enabled"))) {
            if (*all == NULL)
                *all = json_incref(stats);
            json_object_set_new(out, name, stats);
        } else {
            json_decref(stats);
        }
    }
    json_decref(sites);
    if (*all == NULL) { /* no site, or the cache is off: the process-wide view */
        *all = cache_stats("");
        if (!json_is_true(json_object_get(*all, "enabled"))) {
            json_decref(*all);
            *all = NULL;
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* ---- Prometheus --------------------------------------------------------------------------- */

static void export_http(prom *p)
{
    size_t n = 0;
    metrics_route_sample *routes = metrics_routes_collect(&n);
    prom_family(p, "strata_http_requests_total", "counter",
                "HTTP requests answered, by route pattern, method and status class (none: the client left first).");
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < METRICS_CLASSES; c++)
            if (routes[i].by_class[c] != 0)
                prom_sample(p, "strata_http_requests_total",
                            LABELS("route", routes[i].route, "method", routes[i].method, "code_class", class_names[c]),
                            (double)routes[i].by_class[c]);
    prom_family(p, "strata_http_request_duration_seconds", "histogram",
                "Time from a request's first byte to its response's last, by route pattern and method.");
    for (size_t i = 0; i < n; i++)
        if (routes[i].latency.total != 0)
            prom_histogram(p, "strata_http_request_duration_seconds",
                           LABELS("route", routes[i].route, "method", routes[i].method), 2, &routes[i].latency);
    free(routes);
}

typedef struct cache_counter {
    const char *metric; /* without strata_cache_ and _total */
    const char *key;    /* in cache_stats' "site" object */
    const char *l2_key; /* in its "l2" object, or NULL */
    const char *help;
} cache_counter;

static const cache_counter cache_counters[] = {
    {"hits", "hits", "hits", "Fresh cache hits, by tier and site (the L2 is counted for all sites together: _all)."},
    {"stale_hits", "stale_hits", NULL, "Stale hits served while one refresh runs."},
    {"misses", "misses", "misses", "Cache misses, by tier and site."},
    {"expired_hits", "expired_hits", NULL, "Lookups that found only an expired copy (kept for fail-safe)."},
    {"coalesced", "coalesced", NULL, "Requests that waited for another request's fill of the same key."},
    {"fills", "fills", NULL, "Fills of the cache from the database."},
    {"inserts", "inserts", "stored", "Entries stored, by tier and site."},
    {"evictions", "evictions", NULL, "Entries evicted to stay within the memory budget."},
    {"invalidations", "invalidations", NULL, "Entries removed by tag or key invalidation."},
};

/* PREFIX_KEY_total for each {key, help}, its value from the JSON object. */
static void export_counters(prom *p, const char *prefix, const char *const (*table)[2], size_t count,
                            const json_t *from)
{
    char name[96];
    for (size_t i = 0; i < count; i++) {
        snprintf(name, sizeof(name), "%s_%s_total", prefix, table[i][0]);
        prom_family(p, name, "counter", table[i][1]);
        prom_sample(p, name, NULL, num(from, table[i][0]));
    }
}

static void export_cache(prom *p, const json_t *sites, const json_t *all)
{
    const char *site;
    json_t *stats;
    json_t *l2 = json_object_get(all, "l2"), *bus = json_object_get(all, "bus");
    char name[96];
    for (size_t i = 0; i < sizeof(cache_counters) / sizeof(cache_counters[0]); i++) {
        const cache_counter *cc = &cache_counters[i];
        snprintf(name, sizeof(name), "strata_cache_%s_total", cc->metric);
        prom_family(p, name, "counter", cc->help);
        json_object_foreach((json_t *)sites, site, stats)
            prom_sample(p, name, LABELS("tier", "l1", "site", site), num(json_object_get(stats, "site"), cc->key));
        if (l2 != NULL && cc->l2_key != NULL)
            prom_sample(p, name, LABELS("tier", "l2", "site", "_all"), num(l2, cc->l2_key));
    }
    prom_family(p, "strata_cache_entries", "gauge", "Entries held in the L1, by site.");
    json_object_foreach((json_t *)sites, site, stats) prom_sample(
        p, "strata_cache_entries", LABELS("tier", "l1", "site", site), num(json_object_get(stats, "site"), "entries"));
    prom_family(p, "strata_cache_bytes", "gauge", "Bytes held in the L1, by site.");
    json_object_foreach((json_t *)sites, site, stats) prom_sample(
        p, "strata_cache_bytes", LABELS("tier", "l1", "site", site), num(json_object_get(stats, "site"), "bytes"));
    prom_family(p, "strata_cache_max_bytes", "gauge", "The L1's memory budget (cache.l1_max_bytes).");
    prom_sample(p, "strata_cache_max_bytes", LABELS("tier", "l1"), num(all, "max_bytes"));
    if (l2 != NULL) {
        static const char *const l2_counters[][2] = {
            {"lookups", "L2 (Redis) lookups."},
            {"busy", "L2 lookups that found another instance filling the key."},
            {"errors", "L2 commands that failed."},
            {"timeouts", "L2 commands that timed out."},
            {"refused", "L2 stores refused by the fence (a newer invalidation)."},
        };
        export_counters(p, "strata_cache_l2", l2_counters, sizeof(l2_counters) / sizeof(l2_counters[0]), l2);
        json_t *breaker = json_object_get(l2, "breaker");
        prom_family(p, "strata_cache_l2_breaker_opens_total", "counter", "Times the L2 circuit breaker opened.");
        prom_sample(p, "strata_cache_l2_breaker_opens_total", NULL, num(breaker, "opens"));
        prom_family(p, "strata_cache_l2_connections", "gauge", "L2 connections up.");
        prom_sample(p, "strata_cache_l2_connections", NULL, num(l2, "connections_up"));
        prom_family(p, "strata_cache_l2_breaker_open", "gauge", "1 while the L2 circuit breaker is open.");
        prom_sample(p, "strata_cache_l2_breaker_open", NULL, json_is_true(json_object_get(breaker, "open")));
    }
    if (bus != NULL) {
        static const char *const bus_counters[][2] = {
            {"published", "Invalidations published to the other instances."},
            {"publish_failures", "Invalidations that could not be published."},
            {"received", "Invalidations received from the bus."},
            {"applied", "Received invalidations applied to this L1."},
            {"resets", "Full L1 resets after the bus lost messages."},
            {"reconnects", "Reconnections of the bus subscriber."},
        };
        export_counters(p, "strata_cache_bus", bus_counters, sizeof(bus_counters) / sizeof(bus_counters[0]), bus);
        prom_family(p, "strata_cache_bus_connected", "gauge", "1 while the invalidation bus is connected.");
        prom_sample(p, "strata_cache_bus_connected", NULL, json_is_true(json_object_get(bus, "connected")));
    }
}

/* The object cache's figures (cache/objects.h), which the response
 * cache's reader carries whether or not that cache is on; NULL without. */
static json_t *objects_stats(void)
{
    json_t *stats = sources.cache_stats != NULL ? sources.cache_stats("") : NULL;
    json_t *objects = json_incref(json_object_get(stats, "objects"));
    json_decref(stats);
    return objects;
}

static void export_objects(prom *p)
{
    static const char *const counters[][2] = {
        {"hits", "Object cache lookups that found the row's version (no row read)."},
        {"misses", "Object cache lookups that did not (the row was read and stored)."},
        {"evictions", "Object cache entries evicted to stay within cache.objects_bytes."},
        {"invalidations", "Object cache entries dropped with the responses of a write."},
    };
    json_t *objects = objects_stats();
    if (objects == NULL)
        return;
    export_counters(p, "strata_object_cache", counters, sizeof(counters) / sizeof(counters[0]), objects);
    prom_family(p, "strata_object_cache_bytes", "gauge", "Bytes held in the object cache.");
    prom_sample(p, "strata_object_cache_bytes", NULL, num(objects, "bytes"));
    prom_family(p, "strata_object_cache_entries", "gauge", "Rows held in the object cache.");
    prom_sample(p, "strata_object_cache_entries", NULL, num(objects, "entries"));
    prom_family(p, "strata_object_cache_max_bytes", "gauge", "The object cache's budget (cache.objects_bytes).");
    prom_sample(p, "strata_object_cache_max_bytes", NULL, num(objects, "max_bytes"));
    json_decref(objects);
}

static void export_db(prom *p)
{
    size_t n = 0;
    metrics_statement_sample *statements = metrics_statements_collect(&n);
    prom_family(p, "strata_db_queries_total", "counter", "SQL statements run, by statement (verb_table_hash).");
    for (size_t i = 0; i < n; i++)
        prom_sample(p, "strata_db_queries_total", LABELS("statement", statements[i].name),
                    (double)statements[i].queries);
    prom_family(p, "strata_db_query_duration_seconds_total", "counter",
                "Time spent in SQL statements, from start to end of each query, by statement.");
    for (size_t i = 0; i < n; i++)
        prom_sample(p, "strata_db_query_duration_seconds_total", LABELS("statement", statements[i].name),
                    (double)statements[i].total_ns / 1e9);
    free(statements);
    prom_family(p, "strata_db_slow_queries_total", "counter", "Statements slower than db.slow_query_ms.");
    prom_sample(p, "strata_db_slow_queries_total", NULL, (double)metrics_slow_queries_total());
    prom_family(p, "strata_db_slow_query_threshold_seconds", "gauge", "db.slow_query_ms, in seconds.");
    prom_sample(p, "strata_db_slow_query_threshold_seconds", NULL, metrics_slow_query_ms() / 1e3);
}

/* Reads by where they ran, and each replica's state by its index in
 * db.replicas (its URL is in the JSON summary only). */
static void export_replicas(prom *p, const json_t *stats)
{
    const json_t *reads = json_object_get(stats, "reads"), *list = json_object_get(stats, "replicas");
    prom_family(p, "strata_db_reads_total", "counter",
                "Routed database reads, by where they ran: the primary or a replica (db.replicas).");
    prom_sample(p, "strata_db_reads_total", LABELS("target", "primary"), num(reads, "primary"));
    prom_sample(p, "strata_db_reads_total", LABELS("target", "replica"), num(reads, "replica"));
    static const char *const gauges[][3] = {
        {"strata_db_replica_up", "up", "1 when the replica answered its last poll."},
        {"strata_db_replica_lag_bytes", "lag_bytes", "WAL bytes the replica has yet to replay."},
        {"strata_db_replica_lag_seconds", "lag_seconds", "Age of the oldest primary position the replica lacks."},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        prom_family(p, gauges[g][0], "gauge", gauges[g][2]);
        size_t i;
        const json_t *r;
        json_array_foreach(list, i, r)
        {
            char index[24];
            snprintf(index, sizeof index, "%zu", i);
            const json_t *v = json_object_get(r, gauges[g][1]);
            prom_sample(p, gauges[g][0], LABELS("replica", index),
                        json_is_boolean(v) ? json_is_true(v) : num(r, gauges[g][1]));
        }
    }
}

static void export_pool(prom *p)
{
    static metrics_pool_sample pool; /* 21 KB; one export at a time under export_lock */
    metrics_pool_collect(&pool);
    prom_family(p, "strata_worker_pool_workers", "gauge", "Database worker threads (one connection each).");
    prom_sample(p, "strata_worker_pool_workers", NULL, (double)pool.workers);
    prom_family(p, "strata_worker_pool_busy_workers", "gauge", "Workers running a job now.");
    prom_sample(p, "strata_worker_pool_busy_workers", NULL, (double)pool.busy);
    prom_family(p, "strata_worker_pool_queue_length", "gauge", "Jobs waiting for a worker.");
    prom_sample(p, "strata_worker_pool_queue_length", NULL, (double)pool.queued);
    prom_family(p, "strata_worker_pool_queue_wait_seconds", "histogram", "Time a job waited for a worker.");
    prom_histogram(p, "strata_worker_pool_queue_wait_seconds", NULL, 0, &pool.wait);
    prom_family(p, "strata_fill_budget_scarce_seconds_total", "counter",
                "Time the machine was short of CPU with the event loops busy, so anonymous cache fills were held "
                "to server.fill_cpu_share.");
    prom_sample(p, "strata_fill_budget_scarce_seconds_total", NULL, (double)pool.budget_scarce_ns / 1e9);
    prom_family(p, "strata_fill_budget_awaited_fills_total", "counter",
                "Anonymous cache fills started while the budget held the others back, because other requests "
                "waited for them (readers of a page just invalidated).");
    prom_sample(p, "strata_fill_budget_awaited_fills_total", NULL, (double)pool.awaited_fills);
    prom_family(p, "strata_loop_reads_total", "counter",
                "Bounded reads an event loop ran itself with its own connection instead of queueing them for a "
                "worker (SQLite, server.loop_reads, while CPU is not scarce).");
    prom_sample(p, "strata_loop_reads_total", NULL, (double)pool.loop_reads);
    prom_family(p, "strata_loop_reads_deferred_total", "counter",
                "Loop reads kept for the loop's next turns because its turn had run reads for its whole slice "
                "(misses are the traffic and the loops are saturated); each runs later or is shed.");
    prom_sample(p, "strata_loop_reads_deferred_total", NULL, (double)pool.loop_reads_deferred);
    prom_family(p, "strata_loop_reads_to_workers_total", "counter",
                "Loop reads whose handler found them no bounded read after all and handed them to a worker (a "
                "range on a declared field with more values than ordered walks pay for).");
    prom_sample(p, "strata_loop_reads_to_workers_total", NULL, (double)pool.loop_reads_to_worker);
}

static void export_shed(prom *p)
{
    size_t n = 0;
    metrics_shed_sample *shed = metrics_shed_collect(&n);
    prom_family(p, "strata_http_shed_total", "counter",
                "Requests shed under load, by route and reason: queue_full and deadline were answered stale or 503; "
                "client_gone were reads not run because their client had left.");
    for (size_t i = 0; i < n; i++)
        prom_sample(p, "strata_http_shed_total", LABELS("route", shed[i].route, "reason", shed[i].reason),
                    (double)shed[i].count);
    free(shed);
}

static void export_jobs(prom *p, void *worker)
{
    json_t *jobs = jobs_stats(worker);
    if (jobs == NULL)
        return;
    prom_family(p, "strata_jobs", "gauge", "Jobs in the persistent queue, by state (shared by every instance).");
    static const char *const states[] = {"queued", "due", "running", "failed"};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        prom_sample(p, "strata_jobs", LABELS("state", states[i]), num(jobs, states[i]));
    prom_family(p, "strata_jobs_oldest_due_seconds", "gauge", "How long the oldest due job has waited.");
    prom_sample(p, "strata_jobs_oldest_due_seconds", NULL, num(jobs, "oldest_due_ms") / 1e3);
    json_t *runner = json_object_get(jobs, "runner");
    prom_family(p, "strata_jobs_runs_total", "counter", "Jobs this instance's runner ran.");
    prom_sample(p, "strata_jobs_runs_total", NULL, num(runner, "jobs_run"));
    prom_family(p, "strata_jobs_run_failures_total", "counter", "Job runs of this instance that failed.");
    prom_sample(p, "strata_jobs_run_failures_total", NULL, num(runner, "jobs_failed"));
    json_decref(jobs);
}

/* The per-site cache numbers summed into one pseudo-site, "_all": what a
 * public /metrics shows unless metrics.public_site_labels, so that it does
 * not list the tenants. */
static json_t *sites_summed(json_t *sites)
{
    json_t *sum = json_object(), *stats;
    const char *site, *key;
    json_t *value;
    json_object_foreach(sites, site, stats)
    {
        json_object_foreach(json_object_get(stats, "site"), key, value)
        {
            if (json_is_number(value))
                json_object_set_new(sum, key, json_real(num(sum, key) + json_number_value(value)));
        }
    }
    json_t *out = json_pack("{s:{s:o}}", "_all", "site", sum);
    json_decref(sites);
    return out;
}

static pthread_mutex_t export_lock = PTHREAD_MUTEX_INITIALIZER;

static void export_connections(prom *p);
static void export_rate_limits(prom *p);

char *metrics_prometheus(void *worker, bool site_labels, size_t *len)
{
    prom p = {0};
    json_t *all = NULL, *sites = cache_by_site(worker, &all);
    if (sites != NULL && !site_labels)
        sites = sites_summed(sites);
    pthread_mutex_lock(&export_lock);
    export_http(&p);
    if (sites != NULL)
        export_cache(&p, sites, all);
    export_objects(&p);
    export_db(&p);
    export_pool(&p);
    export_shed(&p);
    pthread_mutex_unlock(&export_lock);
    export_jobs(&p, worker);
    json_t *replicas = metrics_replicas();
    if (replicas != NULL)
        export_replicas(&p, replicas);
    json_decref(replicas);
    json_t *history = history_stats(worker);
    if (history != NULL)
        export_history(&p, history, site_labels);
    json_decref(history);
    json_t *writes = writes_stats(worker);
    if (writes != NULL)
        export_writes(&p, writes);
    json_decref(writes);
    export_connections(&p);
    export_rate_limits(&p);
    uint64_t log_written, log_dropped;
    log_writer_stats(&log_written, &log_dropped);
    prom_family(&p, "strata_log_lines_total", "counter",
                "Log lines by what became of them: written to stderr, or dropped because the sink was too slow "
                "(log.buffer_bytes).");
    prom_sample(&p, "strata_log_lines_total", LABELS("outcome", "written"), (double)log_written);
    prom_sample(&p, "strata_log_lines_total", LABELS("outcome", "dropped"), (double)log_dropped);
    prom_family(&p, "strata_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
    prom_sample(&p, "strata_process_resident_memory_bytes", NULL, (double)metrics_rss_bytes());
    heap_stats heap;
    heap_stats_read(&heap);
    prom_family(&p, "strata_heap_bytes", "gauge",
                "The allocator's heap: bytes allocated (in_use) and bytes it holds free (free).");
    prom_sample(&p, "strata_heap_bytes", LABELS("state", "in_use"), (double)heap.in_use);
    prom_sample(&p, "strata_heap_bytes", LABELS("state", "free"), (double)heap.free_held);
    prom_family(&p, "strata_uptime_seconds", "gauge", "Seconds since the server started.");
    prom_sample(&p, "strata_uptime_seconds", NULL, metrics_uptime_s());
    prom_family(&p, "strata_metrics_enabled", "gauge", "1 when metrics are recorded (metrics.enabled).");
    prom_sample(&p, "strata_metrics_enabled", NULL, metrics_enabled());
    json_decref(sites);
    json_decref(all);
    if (p.failed) {
        free(p.buf);
        return NULL;
    }
    *len = p.len;
    return p.buf;
}

/* ---- the JSON summary ---------------------------------------------------------------------- */

static json_t *latency_json(const hist *h)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "p50", hist_quantile(h, 0.50) / 1e3, "p95",
                     hist_quantile(h, 0.95) / 1e3, "p99", hist_quantile(h, 0.99) / 1e3, "p999",
                     hist_quantile(h, 0.999) / 1e3, "max", h->max / 1e3, "mean",
                     h->total ? (double)h->sum / (double)h->total / 1e3 : 0.0);
}

static json_t *api_json(void)
{
    size_t n = 0;
    metrics_route_sample *routes = metrics_routes_collect(&n);
    json_t *list = json_array();
    static hist all; /* under export_lock */
    hist_reset(&all);
    uint64_t requests = 0, errors = 0;
    for (size_t i = 0; i < n; i++) {
        const metrics_route_sample *r = &routes[i];
        json_t *status = json_object();
        for (size_t c = 0; c < METRICS_CLASSES; c++)
            if (r->by_class[c] != 0)
                json_object_set_new(status, class_names[c], json_integer((json_int_t)r->by_class[c]));
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:o, s:o}", "route", r->route, "method",
                                        r->method, "count", (json_int_t)r->requests, "errors",
                                        (json_int_t)r->by_class[5], "client_errors", (json_int_t)r->by_class[4],
                                        "error_rate", r->requests ? (double)r->by_class[5] / (double)r->requests : 0.0,
                                        "status", status, "latency_ms", latency_json(&r->latency)));
        requests += r->requests;
        errors += r->by_class[5];
        hist_merge(&all, &r->latency);
    }
    free(routes);
    return json_pack("{s:I, s:I, s:f, s:o, s:o}", "requests", (json_int_t)requests, "errors", (json_int_t)errors,
                     "error_rate", requests ? (double)errors / (double)requests : 0.0, "latency_ms", latency_json(&all),
                     "routes", list);
}

static double ratio(double hits, double lookups)
{
    return lookups > 0 ? hits / lookups : 0.0;
}

static json_t *cache_json(const json_t *sites, const json_t *all)
{
    if (sites == NULL)
        return json_pack("{s:b}", "enabled", 0);
    json_t *per_site = json_object(), *stats;
    const char *site;
    double hits = 0, stale = 0, misses = 0, bytes = 0, entries = 0, evictions = 0;
    json_object_foreach((json_t *)sites, site, stats)
    {
        json_t *s = json_object_get(stats, "site");
        hits += num(s, "hits"), stale += num(s, "stale_hits"), misses += num(s, "misses");
        bytes += num(s, "bytes"), entries += num(s, "entries"), evictions += num(s, "evictions");
        json_object_set(per_site, site, s);
    }
    json_t *l1 = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o}", "hits", hits, "stale_hits", stale, "misses",
                           misses, "hit_ratio", ratio(hits + stale, hits + stale + misses), "bytes", bytes, "entries",
                           entries, "evictions", evictions, "max_bytes", num(all, "max_bytes"), "sites", per_site);
    json_t *l2 = json_object_get(all, "l2"), *bus = json_object_get(all, "bus");
    return json_pack("{s:b, s:o, s:O?, s:O?}", "enabled", 1, "l1", l1, "l2", l2, "bus", bus);
}

static json_t *db_json(void)
{
    size_t n = 0;
    metrics_statement_sample *statements = metrics_statements_collect(&n);
    json_t *top = json_array();
    uint64_t queries = 0, total_ns = 0;
    for (size_t i = 0; i < n; i++) {
        const metrics_statement_sample *s = &statements[i];
        queries += s->queries;
        total_ns += s->total_ns;
        if (i < TOP_STATEMENTS)
            json_array_append_new(top,
                                  json_pack("{s:s, s:s, s:I, s:f, s:f, s:f}", "statement", s->name, "sql", s->sql,
                                            "count", (json_int_t)s->queries, "total_ms", s->total_ns / 1e6, "mean_ms",
                                            s->queries ? (double)s->total_ns / (double)s->queries / 1e6 : 0.0, "max_ms",
                                            s->max_ns / 1e6));
    }
    free(statements);
    return json_pack("{s:I, s:f, s:I, s:o, s:i, s:I, s:o}", "queries", (json_int_t)queries, "time_ms", total_ns / 1e6,
                     "statements", (json_int_t)n, "top_statements", top, "slow_query_ms", metrics_slow_query_ms(),
                     "slow_queries_total", (json_int_t)metrics_slow_queries_total(), "slow_queries",
                     metrics_slow_queries_json());
}

static json_t *pool_json(void)
{
    static metrics_pool_sample pool; /* under export_lock */
    metrics_pool_collect(&pool);
    return json_pack("{s:I, s:I, s:I, s:f, s:o, s:I, s:I, s:I, s:I}", "workers", (json_int_t)pool.workers, "busy",
                     (json_int_t)pool.busy, "queue_length", (json_int_t)pool.queued, "utilisation",
                     pool.workers ? (double)pool.busy / (double)pool.workers : 0.0, "queue_wait_ms",
                     latency_json(&pool.wait), "loop_reads", (json_int_t)pool.loop_reads, "loop_reads_deferred",
                     (json_int_t)pool.loop_reads_deferred, "loop_reads_to_workers",
                     (json_int_t)pool.loop_reads_to_worker, "awaited_fills", (json_int_t)pool.awaited_fills);
}

/* {"answered": n, "client_gone": n, "routes": [{"route","reason","count"}…]} */
static json_t *shed_json(void)
{
    size_t n = 0;
    metrics_shed_sample *shed = metrics_shed_collect(&n);
    json_t *routes = json_array();
    uint64_t gone = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(shed[i].reason, "client_gone") == 0)
            gone += shed[i].count;
        json_array_append_new(routes, json_pack("{s:s, s:s, s:I}", "route", shed[i].route, "reason", shed[i].reason,
                                                "count", (json_int_t)shed[i].count));
    }
    free(shed);
    return json_pack("{s:I, s:I, s:o}", "answered", (json_int_t)metrics_shed_answered(), "client_gone",
                     (json_int_t)gone, "routes", routes);
}

json_t *metrics_summary_json(void *worker)
{
    json_t *all = NULL, *sites = cache_by_site(worker, &all);
    pthread_mutex_lock(&export_lock);
    json_t *api = api_json(), *cache = cache_json(sites, all), *db = db_json(), *pool = pool_json();
    pthread_mutex_unlock(&export_lock);
    json_t *jobs = jobs_stats(worker);
    heap_stats heap;
    heap_stats_read(&heap);
    json_t *out =
        json_pack("{s:b, s:f, s:o, s:o, s:o, s:o, s:o, s:{s:s, s:I, s:I, s:I, s:I, s:I, s:I}}", "enabled",
                  metrics_enabled(), "uptime_s", metrics_uptime_s(), "api", api, "cache", cache, "db", db, "pool", pool,
                  "jobs", jobs != NULL ? jobs : json_null(), "memory", "allocator", heap_allocator(), "rss_bytes",
                  (json_int_t)metrics_rss_bytes(), "heap_in_use_bytes", (json_int_t)heap.in_use, "heap_free_bytes",
                  (json_int_t)heap.free_held, "heap_fragmented_bytes", (json_int_t)heap.fragmented,
                  "heap_metadata_bytes", (json_int_t)heap.metadata, "cache_bytes",
                  (json_int_t)(sites != NULL ? num(json_object_get(cache, "l1"), "bytes") : 0));
    if (out != NULL)
        json_object_set_new(out, "shed", shed_json());
    json_t *objects = objects_stats();
    if (out != NULL && objects != NULL)
        json_object_set(out, "objects", objects);
    json_decref(objects);
    json_t *replicas = metrics_replicas();
    if (out != NULL && replicas != NULL) {
        json_object_set(out, "replicas", json_object_get(replicas, "replicas"));
        json_object_set(out, "db_reads", json_object_get(replicas, "reads"));
    }
    json_decref(replicas);
    json_t *history = history_stats(worker);
    if (out != NULL && history != NULL)
        json_object_set(out, "history", history);
    json_decref(history);
    json_t *writes = writes_stats(worker);
    if (out != NULL && writes != NULL)
        json_object_set(out, "writes", writes);
    json_decref(writes);
    json_decref(sites);
    json_decref(all);
    return out;
}

/* ---- connections (appended: http/conn_guard.c) ---------------------------------------------- */

static void export_connections(prom *p)
{
    static const char *const reasons[METRICS_CONN_EVENTS] = {"max_connections", "max_connections_per_client",
                                                             "head_too_large", NULL, NULL};
    metrics_conn_sample c;
    metrics_connections_collect(&c);
    prom_family(p, "strata_connections_open", "gauge", "Client connections open now.");
    prom_sample(p, "strata_connections_open", NULL, (double)c.open);
    prom_family(p, "strata_connections_refused_total", "counter",
                "Connections closed by a bound before a response: at accept by a cap, or with 431 mid-head.");
    for (size_t i = 0; i < METRICS_CONN_EVENTS; i++)
        if (reasons[i] != NULL)
            prom_sample(p, "strata_connections_refused_total", LABELS("reason", reasons[i]), (double)c.events[i]);
    prom_family(p, "strata_accept_paused_total", "counter",
                "Times accepting stopped for a moment because the process was out of file descriptors.");
    prom_sample(p, "strata_accept_paused_total", NULL, (double)c.events[METRICS_CONN_ACCEPT_PAUSED]);
    prom_family(p, "strata_http2_rapid_reset_closes_total", "counter",
                "HTTP/2 connections closed for resetting more streams than server.http2_max_resets allows.");
    prom_sample(p, "strata_http2_rapid_reset_closes_total", NULL, (double)c.events[METRICS_CONN_RAPID_RESET]);
}

static void export_rate_limits(prom *p)
{
    static const char *const policies[METRICS_LIMIT_POLICY_COUNT] = {METRICS_LIMIT_POLICIES};
    uint64_t refused[METRICS_LIMIT_POLICY_COUNT];
    metrics_rate_limited_collect(refused);
    prom_family(p, "strata_rate_limited_total", "counter",
                "Requests refused with 429, by the policy their RateLimit-Policy names (limits.*).");
    for (size_t i = 0; i < METRICS_LIMIT_POLICY_COUNT; i++)
        prom_sample(p, "strata_rate_limited_total", LABELS("policy", policies[i]), (double)refused[i]);
}

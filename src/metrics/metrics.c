/*
 * metrics.c — the recording side of metrics.h: per-thread shards, merged
 * when read.
 *
 * A shard is one thread's: its route slots (a histogram pointer and six
 * status-class counters per route and method), its statement table, and
 * its queue-wait histogram. Only its thread writes it, with relaxed
 * atomic loads and stores (plain moves), so recording a request is a
 * thread-local lookup, an index, and a handful of increments. Shards are
 * linked into one list under a mutex when made and never freed: counters
 * are cumulative for the life of the process (as Prometheus expects), and
 * a thread that exits leaves its counts behind for the readers.
 *
 * The statement table is open-addressed by the hash of the SQL text (text_hash.h),
 * fixed in size so a reader may walk it while its writer adds to it: a new
 * slot's text is set first and its hash published last (release), and a
 * reader skips slots whose hash it does not yet see (acquire). The set of
 * SQL texts is finite by construction (src/store builds lists from fixed
 * fragments); anything past the table's capacity is counted under
 * "other".
 *
 * The slow-query ring and the pool's gauges are process-wide: a slow query
 * is rare enough for a mutex, and the pool's queue already takes one.
 */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/text_hash.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define BUMP(p, n) STORE((p), LOAD(p) + (n))

enum {
    STATEMENT_SLOTS = 512, /* a power of two; filled to at most 3/4 */
    SLOW_SQL_MAX = 2000,   /* bytes of SQL and of plan kept per slow query */
};

static const char *const method_names[METRICS_METHODS] = {"GET",    "HEAD",  "POST",    "PUT",
                                                          "DELETE", "PATCH", "OPTIONS", "OTHER"};

typedef struct route_slot {
    hist *latency; /* NULL until this thread's first request of the slot */
    uint64_t by_class[METRICS_CLASSES];
} route_slot;

typedef struct statement_stat {
    uint64_t hash; /* 0: empty; published last */
    char *sql;
    uint64_t queries, total_ns, max_ns;
} statement_stat;

typedef struct shard shard;
struct shard {
    shard *next;
    route_slot *routes; /* [(route_count + 1) · METRICS_METHODS]; the last route is "unmatched" */
    statement_stat statements[STATEMENT_SLOTS];
    size_t statement_count;
    statement_stat other; /* statements past the table's capacity */
    hist *queue_wait;     /* made by the first worker record */
};

typedef struct slow_query {
    int64_t at_ms; /* wall clock */
    uint64_t nanos;
    char name[48];
    char *sql;
    char *plan;
} slow_query;

static struct {
    pthread_mutex_t lock; /* shards list, init, slow ring */
    shard *shards;
    const char **routes; /* patterns; routes[route_count] is METRICS_UNMATCHED */
    size_t route_count;
    uint64_t slow_ns;
    int slow_ms;
    uint64_t started_ns;
    /* pool */
    size_t pool_workers;
    int64_t pool_busy, pool_queued;
    uint64_t pool_budget_scarce_ns;
    uint64_t pool_awaited_fills;
    uint64_t loop_reads;
    uint64_t loop_reads_deferred;
    uint64_t loop_reads_to_worker;
    uint64_t *shed; /* [(route_count + 1) · METRICS_SHED_REASONS], atomic */
    /* slow ring: next is where the next one goes */
    slow_query slow[METRICS_SLOW_RING];
    size_t slow_next;
    uint64_t slow_total;
} m = {.lock = PTHREAD_MUTEX_INITIALIZER, .slow_ns = UINT64_MAX};

bool metrics_on;

static _Thread_local shard *my_shard;

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int metrics_init(const strata_config *cfg, const char *const *route_patterns, size_t route_count)
{
    pthread_mutex_lock(&m.lock);
    int rc = 0;
    if (m.routes == NULL) {
        m.routes = calloc(route_count + 1, sizeof(*m.routes));
        if (m.routes == NULL) {
            rc = -1;
        } else {
            for (size_t i = 0; i < route_count; i++)
                m.routes[i] = route_patterns[i];
            m.routes[route_count] = METRICS_UNMATCHED;
            m.route_count = route_count;
            m.shed = calloc((route_count + 1) * METRICS_SHED_REASONS, sizeof(*m.shed));
            if (m.shed == NULL)
                rc = -1;
            m.started_ns = metrics_now_ns();
        }
    }
    m.slow_ms = cfg->db_slow_query_ms;
    m.slow_ns = (uint64_t)cfg->db_slow_query_ms * 1000000u;
    pthread_mutex_unlock(&m.lock);
    __atomic_store_n(&metrics_on, rc == 0 && cfg->metrics_enabled, __ATOMIC_RELEASE);
    return rc;
}

/* This thread's shard, made on its first record. NULL when out of memory
 * (nothing is recorded then). */
static shard *shard_here(void)
{
    if (my_shard != NULL)
        return my_shard;
    shard *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    pthread_mutex_lock(&m.lock);
    s->routes = calloc((m.route_count + 1) * METRICS_METHODS, sizeof(*s->routes));
    if (s->routes == NULL) {
        pthread_mutex_unlock(&m.lock);
        free(s);
        return NULL;
    }
    s->next = m.shards;
    m.shards = s;
    pthread_mutex_unlock(&m.lock);
    my_shard = s;
    return s;
}

/* ---- requests -------------------------------------------------------------------- */

static size_t class_of(int status)
{
    return status >= 100 && status < 600 ? (size_t)(status / 100) : 0;
}

void metrics_request(int route, unsigned method_index, int status, uint64_t micros)
{
    if (!metrics_on)
        return;
    shard *s = shard_here();
    if (s == NULL)
        return;
    size_t r = route >= 0 && (size_t)route < m.route_count ? (size_t)route : m.route_count;
    route_slot *slot = &s->routes[r * METRICS_METHODS + (method_index < METRICS_METHODS ? method_index : 7)];
    size_t cls = class_of(status);
    BUMP(&slot->by_class[cls], 1);
    if (cls == 0)
        return; /* nothing was answered: no latency to speak of */
    hist *h = slot->latency;
    if (h == NULL) {
        h = calloc(1, sizeof(*h));
        if (h == NULL)
            return;
        __atomic_store_n(&slot->latency, h, __ATOMIC_RELEASE);
    }
    hist_record(h, micros);
}

metrics_route_sample *metrics_routes_collect(size_t *count)
{
    *count = 0;
    pthread_mutex_lock(&m.lock);
    size_t slots = (m.route_count + 1) * METRICS_METHODS, used = 0;
    uint64_t *requests = m.routes ? calloc(slots, sizeof(*requests)) : NULL;
    for (shard *s = m.shards; s != NULL && requests != NULL; s = s->next)
        for (size_t i = 0; i < slots; i++)
            for (size_t c = 0; c < METRICS_CLASSES; c++)
                requests[i] += LOAD(&s->routes[i].by_class[c]);
    for (size_t i = 0; requests != NULL && i < slots; i++)
        used += requests[i] != 0;
    metrics_route_sample *out = used ? calloc(used, sizeof(*out)) : NULL;
    for (size_t i = 0, n = 0; out != NULL && i < slots; i++) {
        if (requests[i] == 0)
            continue;
        metrics_route_sample *o = &out[n++];
        o->route = m.routes[i / METRICS_METHODS];
        o->method = method_names[i % METRICS_METHODS];
        for (shard *s = m.shards; s != NULL; s = s->next) {
            for (size_t c = 0; c < METRICS_CLASSES; c++)
                o->by_class[c] += LOAD(&s->routes[i].by_class[c]);
            hist *h = __atomic_load_n(&s->routes[i].latency, __ATOMIC_ACQUIRE);
            if (h != NULL)
                hist_merge(&o->latency, h);
        }
        for (size_t c = 0; c < METRICS_CLASSES; c++)
            o->requests += o->by_class[c];
        *count = n;
    }
    pthread_mutex_unlock(&m.lock);
    free(requests);
    return out;
}

/* ---- the worker pool ----------------------------------------------------------------- */

void metrics_pool_workers(size_t count)
{
    __atomic_store_n(&m.pool_workers, count, __ATOMIC_RELAXED);
}

void metrics_pool_budget_scarce(uint64_t total_ns)
{
    __atomic_store_n(&m.pool_budget_scarce_ns, total_ns, __ATOMIC_RELAXED);
}

void metrics_pool_awaited_fill(void)
{
    __atomic_fetch_add(&m.pool_awaited_fills, 1, __ATOMIC_RELAXED);
}

uint64_t metrics_pool_enqueued(void)
{
    if (!metrics_on)
        return 0;
    __atomic_fetch_add(&m.pool_queued, 1, __ATOMIC_RELAXED);
    return metrics_now_ns();
}

void metrics_pool_started(uint64_t stamp)
{
    if (stamp == 0)
        return; /* queued while off */
    __atomic_fetch_sub(&m.pool_queued, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&m.pool_busy, 1, __ATOMIC_RELAXED);
    shard *s = shard_here();
    if (s == NULL)
        return;
    if (s->queue_wait == NULL) {
        hist *h = calloc(1, sizeof(*h));
        if (h == NULL)
            return;
        __atomic_store_n(&s->queue_wait, h, __ATOMIC_RELEASE);
    }
    uint64_t now = metrics_now_ns();
    hist_record(s->queue_wait, now > stamp ? (now - stamp) / 1000 : 0);
}

void metrics_pool_finished(void)
{
    __atomic_fetch_sub(&m.pool_busy, 1, __ATOMIC_RELAXED);
}

void metrics_pool_dequeued(void)
{
    __atomic_fetch_sub(&m.pool_queued, 1, __ATOMIC_RELAXED);
}

void metrics_loop_read(void)
{
    __atomic_fetch_add(&m.loop_reads, 1, __ATOMIC_RELAXED);
}

void metrics_loop_read_deferred(void)
{
    __atomic_fetch_add(&m.loop_reads_deferred, 1, __ATOMIC_RELAXED);
}

void metrics_loop_read_to_worker(void)
{
    __atomic_fetch_add(&m.loop_reads_to_worker, 1, __ATOMIC_RELAXED);
}

void metrics_pool_collect(metrics_pool_sample *out)
{
    memset(out, 0, sizeof(*out));
    out->workers = __atomic_load_n(&m.pool_workers, __ATOMIC_RELAXED);
    out->busy = __atomic_load_n(&m.pool_busy, __ATOMIC_RELAXED);
    out->queued = __atomic_load_n(&m.pool_queued, __ATOMIC_RELAXED);
    out->budget_scarce_ns = __atomic_load_n(&m.pool_budget_scarce_ns, __ATOMIC_RELAXED);
    out->awaited_fills = __atomic_load_n(&m.pool_awaited_fills, __ATOMIC_RELAXED);
    out->loop_reads = __atomic_load_n(&m.loop_reads, __ATOMIC_RELAXED);
    out->loop_reads_deferred = __atomic_load_n(&m.loop_reads_deferred, __ATOMIC_RELAXED);
    out->loop_reads_to_worker = __atomic_load_n(&m.loop_reads_to_worker, __ATOMIC_RELAXED);
    pthread_mutex_lock(&m.lock);
    for (shard *s = m.shards; s != NULL; s = s->next) {
        hist *h = __atomic_load_n(&s->queue_wait, __ATOMIC_ACQUIRE);
        if (h != NULL)
            hist_merge(&out->wait, h);
    }
    pthread_mutex_unlock(&m.lock);
}

/* ---- load shedding ----------------------------------------------------------------------- */

/* Shedding happens under overload only, so one process-wide counter per
 * route and reason, bumped atomically, costs nothing worth a shard. */
static const char *const shed_reason_names[METRICS_SHED_REASONS] = {"queue_full", "deadline", "client_gone"};

void metrics_shed(int route, metrics_shed_reason reason)
{
    if (!metrics_on || m.shed == NULL || (unsigned)reason >= METRICS_SHED_REASONS)
        return;
    size_t r = route >= 0 && (size_t)route < m.route_count ? (size_t)route : m.route_count;
    __atomic_fetch_add(&m.shed[r * METRICS_SHED_REASONS + reason], 1, __ATOMIC_RELAXED);
}

metrics_shed_sample *metrics_shed_collect(size_t *count)
{
    *count = 0;
    if (m.shed == NULL)
        return NULL;
    size_t n = 0, cap = (m.route_count + 1) * METRICS_SHED_REASONS;
    metrics_shed_sample *out = calloc(cap, sizeof(*out));
    for (size_t i = 0; out != NULL && i < cap; i++) {
        uint64_t v = __atomic_load_n(&m.shed[i], __ATOMIC_RELAXED);
        if (v != 0)
            out[n++] = (metrics_shed_sample){m.routes[i / METRICS_SHED_REASONS],
                                             shed_reason_names[i % METRICS_SHED_REASONS], v};
    }
    if (out != NULL && n == 0) {
        free(out);
        out = NULL;
    }
    *count = n;
    return out;
}

uint64_t metrics_shed_answered(void)
{
    uint64_t total = 0;
    for (size_t r = 0; m.shed != NULL && r <= m.route_count; r++)
        total += __atomic_load_n(&m.shed[r * METRICS_SHED_REASONS + METRICS_SHED_QUEUE_FULL], __ATOMIC_RELAXED) +
                 __atomic_load_n(&m.shed[r * METRICS_SHED_REASONS + METRICS_SHED_DEADLINE], __ATOMIC_RELAXED);
    return total;
}

/* ---- statements ------------------------------------------------------------------------- */

/* The writer's slot for sql in its own table: found, newly claimed, or
 * "other" when the table is full or the copy cannot be made. */
static statement_stat *statement_slot(shard *s, const char *sql)
{
    uint64_t hash = text_hash(sql);
    size_t mask = STATEMENT_SLOTS - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        statement_stat *st = &s->statements[i];
        if (st->hash == hash && strcmp(st->sql, sql) == 0)
            return st;
        if (st->hash != 0)
            continue;
        if ((s->statement_count + 1) * 4 > STATEMENT_SLOTS * 3 || (st->sql = strdup(sql)) == NULL)
            return &s->other;
        s->statement_count++;
        __atomic_store_n(&st->hash, hash, __ATOMIC_RELEASE);
        return st;
    }
}

void metrics_query(const char *sql, uint64_t nanos)
{
    if (!metrics_on || sql == NULL)
        return;
    shard *s = shard_here();
    if (s == NULL)
        return;
    statement_stat *st = statement_slot(s, sql);
    BUMP(&st->queries, 1);
    BUMP(&st->total_ns, nanos);
    if (nanos > LOAD(&st->max_ns))
        STORE(&st->max_ns, nanos);
}

uint64_t metrics_slow_query_ns(void)
{
    return metrics_on ? m.slow_ns : UINT64_MAX;
}
int metrics_slow_query_ms(void)
{
    return m.slow_ms;
}

/* Just past the first FROM, INTO or UPDATE of the statement itself, not
 * of a subquery in it (outside parentheses and quotes); NULL if none. */
static const char *statement_table_mark(const char *sql)
{
    static const char *const marks[] = {" FROM ", " INTO ", "UPDATE ", " from ", " into ", "update "};
    int depth = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            quote = *p == quote ? 0 : quote;
            continue;
        }
        if (*p == '\'' || *p == '"')
            quote = *p;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        else if (depth == 0)
            for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
                if ((p == sql || marks[i][0] == ' ') && strncmp(p, marks[i], strlen(marks[i])) == 0)
                    return p + strlen(marks[i]);
    }
    return NULL;
}

/* FNV-1a of the text, for statement names only: names outlive a release
 * in operators' dashboards and alert rules, so they keep the hash they
 * were first given (the tables use text_hash, faster: a name is made only
 * for an export or a slow query). */
static uint32_t name_hash(const char *sql)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        hash = (hash ^ *p) * 1099511628211ULL;
    return (uint32_t)(hash ? hash : 1);
}

void metrics_statement_name(const char *sql, char out[48])
{
    /* verb: the first word; table: the word after the first FROM, INTO or
     * UPDATE (or the verb's own object for PRAGMA, BEGIN…) */
    char verb[12] = "", table[24] = "";
    const char *p = sql + strspn(sql, " \t\n(");
    size_t n = strcspn(p, " \t\n(;");
    for (size_t i = 0; i < n && i + 1 < sizeof(verb); i++)
        verb[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
    const char *at = statement_table_mark(sql);
    if (at != NULL) {
        at += strspn(at, " \t\n");
        size_t len = 0;
        for (; len + 1 < sizeof(table) && ((at[len] >= 'a' && at[len] <= 'z') || (at[len] >= 'A' && at[len] <= 'Z') ||
                                           at[len] == '_' || (at[len] >= '0' && at[len] <= '9'));
             len++)
            table[len] = (char)((at[len] >= 'A' && at[len] <= 'Z') ? at[len] + 32 : at[len]);
        table[len] = '\0';
    } else if (strcmp(verb, "pragma") == 0) { /* PRAGMA journal_mode = WAL → pragma_journal_mode */
        at = p + n + strspn(p + n, " \t\n");
        size_t len = strspn(at, "abcdefghijklmnopqrstuvwxyz_");
        snprintf(table, sizeof(table), "%.*s", (int)(len < sizeof(table) - 1 ? len : sizeof(table) - 1), at);
    }
    /* keep only [a-z0-9_] so the name is a clean label value */
    for (char *c = verb; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    snprintf(out, 48, "%s%s%s_%08x", verb[0] ? verb : "sql", table[0] ? "_" : "", table, (unsigned)name_hash(sql));
}

static int by_total_desc(const void *a, const void *b)
{
    const metrics_statement_sample *x = a, *y = b;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : strcmp(x->name, y->name);
}

/* Adds one shard's slot into the merged list (found by text). */
static void statement_merge(metrics_statement_sample *out, size_t *n, size_t cap, const char *sql,
                            const statement_stat *st)
{
    size_t i = 0;
    while (i < *n && strcmp(out[i].sql, sql) != 0)
        i++;
    if (i == *n) {
        if (*n == cap)
            return;
        out[i].sql = sql;
        if (st->sql == NULL)
            snprintf(out[i].name, sizeof(out[i].name), "other");
        else
            metrics_statement_name(sql, out[i].name);
        (*n)++;
    }
    out[i].queries += LOAD(&st->queries);
    out[i].total_ns += LOAD(&st->total_ns);
    uint64_t max = LOAD(&st->max_ns);
    if (max > out[i].max_ns)
        out[i].max_ns = max;
}

metrics_statement_sample *metrics_statements_collect(size_t *count)
{
    *count = 0;
    pthread_mutex_lock(&m.lock);
    size_t cap = 1; /* "other" */
    for (shard *s = m.shards; s != NULL; s = s->next)
        cap += __atomic_load_n(&s->statement_count, __ATOMIC_RELAXED) + 8; /* + what arrives meanwhile */
    metrics_statement_sample *out = calloc(cap, sizeof(*out));
    size_t n = 0;
    for (shard *s = m.shards; s != NULL && out != NULL; s = s->next) {
        for (size_t i = 0; i < STATEMENT_SLOTS; i++)
            if (__atomic_load_n(&s->statements[i].hash, __ATOMIC_ACQUIRE) != 0)
                statement_merge(out, &n, cap, s->statements[i].sql, &s->statements[i]);
        if (LOAD(&s->other.queries) != 0)
            statement_merge(out, &n, cap, "other", &s->other);
    }
    pthread_mutex_unlock(&m.lock);
    if (out != NULL)
        qsort(out, n, sizeof(*out), by_total_desc);
    *count = n;
    return out;
}

/* ---- slow queries ------------------------------------------------------------------------- */

static char *copy_cut(const char *s)
{
    size_t len = strnlen(s, SLOW_SQL_MAX);
    char *out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

void metrics_slow_query(const char *sql, uint64_t nanos, const char *plan)
{
    if (!metrics_on || sql == NULL)
        return;
    char name[48];
    metrics_statement_name(sql, name);
    log_line line;
    log_begin(&line, LOG_WARN, "slow query");
    log_str(&line, "statement", name);
    log_int(&line, "us", (int64_t)(nanos / 1000));
    log_int(&line, "threshold_ms", m.slow_ms);
    log_str(&line, "sql", sql);
    log_str(&line, "plan", plan != NULL ? plan : "");
    log_end(&line);

    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    char *sql_copy = copy_cut(sql), *plan_copy = copy_cut(plan != NULL ? plan : "");
    pthread_mutex_lock(&m.lock);
    slow_query *q = &m.slow[m.slow_next];
    free(q->sql);
    free(q->plan);
    *q = (slow_query){.at_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
                      .nanos = nanos,
                      .sql = sql_copy,
                      .plan = plan_copy};
    memcpy(q->name, name, sizeof(name));
    m.slow_next = (m.slow_next + 1) % METRICS_SLOW_RING;
    m.slow_total++;
    pthread_mutex_unlock(&m.lock);
}

uint64_t metrics_slow_queries_total(void)
{
    pthread_mutex_lock(&m.lock);
    uint64_t n = m.slow_total;
    pthread_mutex_unlock(&m.lock);
    return n;
}

json_t *metrics_slow_queries_json(void)
{
    json_t *list = json_array();
    pthread_mutex_lock(&m.lock);
    for (size_t k = 1; k <= METRICS_SLOW_RING && list != NULL; k++) {
        const slow_query *q = &m.slow[(m.slow_next + METRICS_SLOW_RING - k) % METRICS_SLOW_RING];
        if (q->sql == NULL)
            break;
        char at[32];
        time_t secs = (time_t)(q->at_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t len = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(at + len, sizeof(at) - len, ".%03dZ", (int)(q->at_ms % 1000));
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:s, s:f, s:s}", "at", at, "statement", q->name, "sql", q->sql,
                                        "ms", (double)q->nanos / 1e6, "plan", q->plan != NULL ? q->plan : ""));
    }
    pthread_mutex_unlock(&m.lock);
    return list;
}

/* ---- the process ---------------------------------------------------------------------------- */

uint64_t metrics_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return got == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

double metrics_uptime_s(void)
{
    return m.started_ns ? (double)(metrics_now_ns() - m.started_ns) / 1e9 : 0.0;
}

/* ---- connections ---------------------------------------------------------------------------- */

/* Counted per connection, not per request: a relaxed atomic add each is
 * cheaper than a shard, and they are kept even with metrics.enabled off
 * because an operator needs them most during an attack. */
static metrics_conn_sample connections;

void metrics_connection_event(metrics_conn_event event)
{
    __atomic_fetch_add(&connections.events[event], 1, __ATOMIC_RELAXED);
}

void metrics_connections_open(int delta)
{
    __atomic_fetch_add(&connections.open, delta, __ATOMIC_RELAXED);
}

void metrics_connections_collect(metrics_conn_sample *out)
{
    for (size_t i = 0; i < METRICS_CONN_EVENTS; i++)
        out->events[i] = __atomic_load_n(&connections.events[i], __ATOMIC_RELAXED);
    out->open = __atomic_load_n(&connections.open, __ATOMIC_RELAXED);
}

/* ---- rate limits --------------------------------------------------------------------------- */

/* Refusals are the exception, so one process-wide atomic counter per
 * policy; the name is looked up among a handful. */
static const char *const limit_policies[METRICS_LIMIT_POLICY_COUNT] = {METRICS_LIMIT_POLICIES};
static uint64_t rate_limited[METRICS_LIMIT_POLICY_COUNT];

void metrics_rate_limited(const char *policy)
{
    for (size_t i = 0; i < METRICS_LIMIT_POLICY_COUNT; i++)
        if (strcmp(limit_policies[i], policy) == 0) {
            __atomic_fetch_add(&rate_limited[i], 1, __ATOMIC_RELAXED);
            return;
        }
}

void metrics_rate_limited_collect(uint64_t out[METRICS_LIMIT_POLICY_COUNT])
{
    for (size_t i = 0; i < METRICS_LIMIT_POLICY_COUNT; i++)
        out[i] = __atomic_load_n(&rate_limited[i], __ATOMIC_RELAXED);
}

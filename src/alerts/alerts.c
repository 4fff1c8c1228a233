/*
 * alerts.c — the budgets of the configuration, the evaluator that judges
 * them, and where their alerts go (alerts.h has the model).
 *
 * Two threads. The evaluator wakes every alerts.interval_ms, asks each
 * budget's source for its value (outside any lock: a source may take a
 * while) and steps the budget's state machine (budget.c) under
 * alerts.lock. A raise or a clear is logged, kept in the ring of recent
 * changes, and, with a webhook, put in the outbox. The notifier thread
 * empties the outbox into the job queue as "webhook" jobs on a database
 * connection of its own, so a slow or failing database never delays an
 * evaluation; while the database refuses (the very outage an alert may be
 * about), payloads wait in the outbox (bounded: the oldest is dropped and
 * counted) and are retried every second. The job runner then delivers
 * them with purge.c's client, retried with the queue's backoff.
 *
 * alerts.lock guards the source table, the budgets' states, the recent
 * ring and the outbox; it is never held while a source runs, while the
 * database is written or while a line is logged. Request threads never
 * take it: what they do is recorded by the metrics core, which the
 * built-in sources read (window.c, sources.c).
 */
#include "alerts/alerts.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alerts/alerts_internal.h"
#include "core/log.h"
#include "jobs/jobs.h"
#include "jobs/purge.h"
#include "vitals/vitals.h"

enum {
    SOURCES_MAX = 64,
    BUDGETS_MAX = 9 + ALERT_ROUTE_BUDGETS_MAX, /* the fixed budgets and the route budgets */
    RECENT_MAX = 50,
    OUTBOX_MAX = 64,
    ALERT_ID_MAX = ALERT_QUANTITY_MAX + 24,
    WEBHOOK_TIMEOUT_MS = 5000,
    OUTBOX_RETRY_MS = 1000,
    ERR_MAX = 512,
};

typedef struct source_entry {
    char quantity[ALERT_QUANTITY_MAX];
    alert_source_fn fn;
    void *ctx;
} source_entry;

typedef struct budget {
    char quantity[ALERT_QUANTITY_MAX];
    const char *unit; /* "ms", "ratio", "bytes" or "" */
    alert_rule rule;
    alert_machine machine;
    bool measured; /* the last evaluation had a value */
    double value;  /* the last value measured */
    int64_t since; /* when the alert was raised (ms since the epoch) */
    char id[ALERT_ID_MAX];
} budget;

typedef struct alert_event {
    char id[ALERT_ID_MAX];
    char quantity[ALERT_QUANTITY_MAX];
    const char *unit;
    bool firing; /* raised, else cleared */
    bool floor;
    double value, budget;
    int64_t since, at;
} alert_event;

static struct {
    const strata_config *cfg;
    purge_target webhook;
    bool webhook_enabled;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* stop, or something in the outbox (CLOCK_MONOTONIC) */
    source_entry sources[SOURCES_MAX];
    size_t source_count;
    budget budgets[BUDGETS_MAX];
    size_t budget_count;
    alert_event recent[RECENT_MAX]; /* a ring; recent_next is the next to write */
    size_t recent_count, recent_next;
    json_t *outbox[OUTBOX_MAX]; /* webhook job payloads, oldest first */
    size_t outbox_count;
    uint64_t outbox_dropped;
    bool wake_ready, started, stopping, closed;
    pthread_t evaluator, notifier;
} alerts = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- sources -------------------------------------------------------------- */

static source_entry *source_find(const char *quantity)
{
    for (size_t i = 0; i < alerts.source_count; i++)
        if (strcmp(alerts.sources[i].quantity, quantity) == 0)
            return &alerts.sources[i];
    return NULL;
}

/* Under alerts.lock. replace: whether a name already taken is taken over. */
static int source_put(const char *quantity, alert_source_fn fn, void *ctx, bool replace)
{
    if (fn == NULL || strlen(quantity) >= ALERT_QUANTITY_MAX)
        return -1;
    source_entry *s = source_find(quantity);
    if (s != NULL && !replace)
        return 0;
    if (s == NULL) {
        if (alerts.source_count == SOURCES_MAX)
            return -1;
        s = &alerts.sources[alerts.source_count++];
        snprintf(s->quantity, sizeof s->quantity, "%s", quantity);
    }
    s->fn = fn;
    s->ctx = ctx;
    return 0;
}

int alerts_register_source(const char *quantity, alert_source_fn fn, void *ctx)
{
    pthread_mutex_lock(&alerts.lock);
    int rc = source_put(quantity, fn, ctx, true);
    pthread_mutex_unlock(&alerts.lock);
    return rc;
}

/* ---- the webhook job ----------------------------------------------------------- */

/* {"url": the endpoint, "alert": the body to post}. The URL travels with
 * the job, so any instance sharing the queue can deliver it. */
static int webhook_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    (void)st;
    const char *url = json_string_value(json_object_get(payload, "url"));
    const json_t *alert = json_object_get(payload, "alert");
    if (url == NULL || !json_is_object(alert)) {
        snprintf(err, err_size, "the payload is not {\"url\":…, \"alert\":{…}}");
        return -1;
    }
    purge_target target;
    if (purge_endpoint_parse(url, "alerts.webhook_url", &target, err, err_size) != 0)
        return -1;
    char *body = json_dumps(alert, JSON_COMPACT);
    if (body == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    int rc = purge_post_json(&target, body, strlen(body), WEBHOOK_TIMEOUT_MS, err, err_size);
    free(body);
    return rc;
}

/* db_disk_full is 1 while writes fail for want of disk and 0 otherwise:
 * any full disk breaks this budget. Not a setting: nobody wants it off. */
#define DISK_FULL_BUDGET 0.5

/* ---- configuration ---------------------------------------------------------------- */

static void budget_add(const char *quantity, double limit, bool floor, const char *unit)
{
    if (!(limit > 0) || alerts.budget_count == BUDGETS_MAX)
        return;
    budget *b = &alerts.budgets[alerts.budget_count++];
    *b = (budget){.unit = unit};
    snprintf(b->quantity, sizeof b->quantity, "%s", quantity);
    b->rule = (alert_rule){.budget = limit,
                           .floor = floor,
                           .raise_after = alerts.cfg->alerts_raise_after,
                           .clear_after = alerts.cfg->alerts_clear_after,
                           .clear_margin = alerts.cfg->alerts_clear_margin};
}

int alerts_configure(const strata_config *cfg, const http_route *routes, size_t route_count, char *err, size_t err_size)
{
    alert_route_budget route_budgets[ALERT_ROUTE_BUDGETS_MAX];
    size_t route_budget_count = 0;
    if (alerts_parse_route_budgets(cfg->budget_api_p95_routes, routes, route_count, route_budgets,
                                   ALERT_ROUTE_BUDGETS_MAX, &route_budget_count, err, err_size) != 0)
        return -1;
    if (cfg->alerts_clear_margin >= 1) {
        snprintf(err, err_size, "alerts.clear_margin: must be below 1 (a budget must be able to clear), got %g",
                 cfg->alerts_clear_margin);
        return -1;
    }
    purge_target webhook;
    bool webhook_enabled = cfg->alerts_webhook_url[0] != '\0';
    if (webhook_enabled &&
        purge_endpoint_parse(cfg->alerts_webhook_url, "alerts.webhook_url", &webhook, err, err_size) != 0)
        return -1;

    pthread_mutex_lock(&alerts.lock);
    if (!alerts.wake_ready) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&alerts.wake, &attr);
        pthread_condattr_destroy(&attr);
        alerts.wake_ready = true;
    }
    for (size_t i = 0; i < alerts.outbox_count; i++)
        json_decref(alerts.outbox[i]);
    alerts.outbox_count = 0;
    alerts.cfg = cfg;
    alerts.webhook_enabled = webhook_enabled;
    if (webhook_enabled)
        alerts.webhook = webhook;
    alerts.budget_count = 0;
    alerts.recent_count = alerts.recent_next = 0;
    budget_add("api_p95_ms", cfg->budget_api_p95_ms, false, "ms");
    for (size_t i = 0; i < route_budget_count; i++) {
        char quantity[ALERT_QUANTITY_MAX];
        snprintf(quantity, sizeof quantity, "api_p95_ms:%.127s", route_budgets[i].pattern);
        budget_add(quantity, route_budgets[i].budget_ms, false, "ms");
        source_put(quantity, window_p95_ms, (void *)(uintptr_t)(i + 1), false);
    }
    budget_add("error_rate", cfg->budget_error_rate, false, "ratio");
    budget_add("db_query_ms", cfg->budget_db_query_ms, false, "ms");
    budget_add("replica_lag_ms", cfg->budget_replica_lag_ms, false, "ms");
    budget_add("hit_ratio", cfg->budget_hit_ratio_min, true, "ratio");
    budget_add("memory_bytes", (double)cfg->budget_memory_mb * 1048576.0, false, "bytes");
    budget_add("lcp_p75_ms", cfg->budget_lcp_p75_ms, false, "ms");
    budget_add("inp_p75_ms", cfg->budget_inp_p75_ms, false, "ms");
    budget_add("cls_p75", cfg->budget_cls_p75, false, "");
    budget_add("shed_rate", cfg->budget_shed_rate, false, "ratio");
    budget_add("db_disk_full", DISK_FULL_BUDGET, false, ""); /* always on: its source is registered by content */
    source_put("api_p95_ms", window_p95_ms, (void *)(uintptr_t)0, false);
    source_put("error_rate", window_error_rate, (void *)(uintptr_t)0, false);
    source_put("shed_rate", window_shed_rate, (void *)(uintptr_t)0, false);
    source_put("memory_bytes", source_memory_bytes, NULL, false);
    source_put("hit_ratio", source_hit_ratio, NULL, false);
    source_put("db_query_ms", source_db_query_ms, NULL, false);
    source_put("replica_lag_ms", source_replica_lag_ms, NULL, false);
    source_put("lcp_p75_ms", source_vitals_p75, source_vitals_window(VITALS_LCP), false);
    source_put("inp_p75_ms", source_vitals_p75, source_vitals_window(VITALS_INP), false);
    source_put("cls_p75", source_vitals_p75, source_vitals_window(VITALS_CLS), false);
    pthread_mutex_unlock(&alerts.lock);

    int64_t window_ms = (int64_t)cfg->alerts_window_s * 1000;
    if (window_configure(window_ms, route_budgets, route_budget_count, cfg->alerts_min_requests) != 0 ||
        sources_configure(window_ms, cfg->alerts_interval_ms, cfg->alerts_min_requests) != 0) {
        snprintf(err, err_size, "alerts: out of memory");
        return -1;
    }
    jobs_register("webhook", webhook_job); /* already there when configured twice (tests) */
    return 0;
}

/* ---- evaluation ------------------------------------------------------------------------ */

static void recent_push(const alert_event *e)
{
    alerts.recent[alerts.recent_next] = *e;
    alerts.recent_next = (alerts.recent_next + 1) % RECENT_MAX;
    if (alerts.recent_count < RECENT_MAX)
        alerts.recent_count++;
}

/* "120 ms", "0.25", "512 MB": a value as a sentence would say it. */
static void value_text(double value, const char *unit, char *out, size_t size)
{
    if (strcmp(unit, "bytes") == 0)
        snprintf(out, size, "%.1f MB", value / 1048576.0);
    else if (strcmp(unit, "ms") == 0)
        snprintf(out, size, "%.3g ms", value);
    else
        snprintf(out, size, "%.3g", value);
}

/* The body a webhook receives (new reference). */
static json_t *event_json(const alert_event *e)
{
    char value[48], limit[48], summary[ALERT_QUANTITY_MAX + 160];
    value_text(e->value, e->unit, value, sizeof value);
    value_text(e->budget, e->unit, limit, sizeof limit);
    if (e->firing)
        snprintf(summary, sizeof summary, "%s is %s, %s its budget of %s (%d s window)", e->quantity, value,
                 e->floor ? "below" : "over", limit, alerts.cfg->alerts_window_s);
    else
        snprintf(summary, sizeof summary, "%s is back within its budget of %s: %s (%d s window)", e->quantity, limit,
                 value, alerts.cfg->alerts_window_s);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:f, s:f, s:s, s:b, s:i, s:I, s:I, s:s}", "status",
                  e->firing ? "firing" : "resolved", "id", e->id, "quantity", e->quantity, "value", e->value, "budget",
                  e->budget, "unit", e->unit, "floor", e->floor, "window_s", alerts.cfg->alerts_window_s, "since",
                  (json_int_t)e->since, "at", (json_int_t)e->at, "summary", summary);
    return doc;
}

/* Under alerts.lock: queues the webhook payload of e, dropping the oldest
 * when the outbox is full. */
static void outbox_push(const alert_event *e)
{
    json_t *payload = json_pack("{s:s, s:o}", "url", alerts.cfg->alerts_webhook_url, "alert", event_json(e));
    if (payload == NULL)
        return;
    if (alerts.outbox_count == OUTBOX_MAX) {
        json_decref(alerts.outbox[0]);
        memmove(alerts.outbox, alerts.outbox + 1, (OUTBOX_MAX - 1) * sizeof alerts.outbox[0]);
        alerts.outbox_count--;
        alerts.outbox_dropped++;
    }
    alerts.outbox[alerts.outbox_count++] = payload;
    pthread_cond_broadcast(&alerts.wake);
}

static void event_log(const alert_event *e)
{
    char value[48], limit[48];
    snprintf(value, sizeof value, "%.6g", e->value);
    snprintf(limit, sizeof limit, "%.6g", e->budget);
    log_line line;
    log_begin(&line, e->firing ? LOG_WARN : LOG_INFO, e->firing ? "alert raised" : "alert cleared");
    log_str(&line, "id", e->id);
    log_str(&line, "quantity", e->quantity);
    log_str(&line, "value", value);
    log_str(&line, "budget", limit);
    log_str(&line, "unit", e->unit);
    log_int(&line, "window_s", alerts.cfg->alerts_window_s);
    if (!e->firing)
        log_int(&line, "firing_ms", e->at - e->since);
    log_end(&line);
}

/* Steps budget i with a measurement; fills *e and returns true on a change. */
static bool budget_step(size_t i, bool measured, double value, alert_event *e)
{
    pthread_mutex_lock(&alerts.lock);
    bool changed = false;
    if (i < alerts.budget_count) {
        budget *b = &alerts.budgets[i];
        alert_change change = alert_machine_step(&b->machine, &b->rule, measured, value);
        b->measured = measured;
        if (measured)
            b->value = value;
        if (change != ALERT_UNCHANGED) {
            int64_t now = store_now_ms();
            if (change == ALERT_RAISED) {
                b->since = now;
                snprintf(b->id, sizeof b->id, "%s@%lld", b->quantity, (long long)now);
            }
            *e = (alert_event){.firing = change == ALERT_RAISED,
                               .floor = b->rule.floor,
                               .unit = b->unit,
                               .value = b->value,
                               .budget = b->rule.budget,
                               .since = b->since,
                               .at = now};
            snprintf(e->id, sizeof e->id, "%s", b->id);
            snprintf(e->quantity, sizeof e->quantity, "%s", b->quantity);
            recent_push(e);
            if (alerts.webhook_enabled)
                outbox_push(e);
            changed = true;
        }
    }
    pthread_mutex_unlock(&alerts.lock);
    return changed;
}

void alerts_evaluate(int64_t now_ms)
{
    int64_t window_ms = (int64_t)alerts.cfg->alerts_window_s * 1000;
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&alerts.lock);
        bool more = i < alerts.budget_count;
        source_entry source = {.fn = NULL};
        const source_entry *found = more ? source_find(alerts.budgets[i].quantity) : NULL;
        if (found != NULL)
            source = *found;
        pthread_mutex_unlock(&alerts.lock);
        if (!more)
            return;
        double value = 0;
        bool measured = source.fn != NULL && source.fn(source.ctx, now_ms, window_ms, &value);
        alert_event e;
        if (budget_step(i, measured, value, &e))
            event_log(&e);
    }
}

/* ---- threads ----------------------------------------------------------------------------- */

static struct timespec monotonic_at(int64_t at_ms)
{
    struct timespec t = {.tv_sec = at_ms / 1000, .tv_nsec = (at_ms % 1000) * 1000000};
    return t;
}

/* Under alerts.lock: waits until at_ms (monotonic) or a stop; true if stopping. */
static bool wait_until(int64_t at_ms)
{
    struct timespec until = monotonic_at(at_ms);
    while (!alerts.stopping && monotonic_ms() < at_ms)
        if (pthread_cond_timedwait(&alerts.wake, &alerts.lock, &until) == ETIMEDOUT)
            break;
    return alerts.stopping;
}

static void *evaluator_main(void *arg)
{
    (void)arg;
    int64_t next = monotonic_ms();
    pthread_mutex_lock(&alerts.lock);
    while (!alerts.stopping) {
        pthread_mutex_unlock(&alerts.lock);
        alerts_evaluate(monotonic_ms());
        next += alerts.cfg->alerts_interval_ms;
        int64_t now = monotonic_ms();
        if (next < now) /* an evaluation ran late: no catching up in a burst */
            next = now;
        pthread_mutex_lock(&alerts.lock);
        wait_until(next);
    }
    pthread_mutex_unlock(&alerts.lock);
    return NULL;
}

/* Moves the outbox into the job queue, oldest first, on its own connection. */
static void *notifier_main(void *arg)
{
    (void)arg;
    store_t *store = NULL;
    uint64_t dropped_told = 0;
    pthread_mutex_lock(&alerts.lock);
    while (!alerts.stopping) {
        if (alerts.outbox_dropped != dropped_told) {
            uint64_t dropped = alerts.outbox_dropped - dropped_told;
            dropped_told = alerts.outbox_dropped;
            pthread_mutex_unlock(&alerts.lock);
            log_line line;
            log_begin(&line, LOG_WARN, "alert webhooks dropped: the outbox was full while the database refused them");
            log_int(&line, "dropped", (int64_t)dropped);
            log_end(&line);
            pthread_mutex_lock(&alerts.lock);
        }
        if (alerts.outbox_count == 0) {
            pthread_cond_wait(&alerts.wake, &alerts.lock);
            continue;
        }
        json_t *payload = json_incref(alerts.outbox[0]);
        pthread_mutex_unlock(&alerts.lock);
        if (store == NULL && store_open(alerts.cfg->db_url, &store) != STORE_OK)
            log_event_str(LOG_WARN, "alert webhook not queued yet", "error", store_errmsg(NULL));
        int status = store != NULL ? jobs_enqueue(store, "webhook", payload, 0, NULL) : STORE_ERROR;
        if (store != NULL && status != STORE_OK)
            log_event_str(LOG_WARN, "alert webhook not queued yet; will retry", "error", store_errmsg(store));
        pthread_mutex_lock(&alerts.lock);
        if (status == STORE_OK && alerts.outbox_count > 0 && alerts.outbox[0] == payload) {
            json_decref(alerts.outbox[0]);
            memmove(alerts.outbox, alerts.outbox + 1, (alerts.outbox_count - 1) * sizeof alerts.outbox[0]);
            alerts.outbox_count--;
        } else if (status != STORE_OK) {
            wait_until(monotonic_ms() + OUTBOX_RETRY_MS);
        }
        json_decref(payload);
    }
    pthread_mutex_unlock(&alerts.lock);
    store_close(&store);
    return NULL;
}

int alerts_start(void)
{
    pthread_mutex_lock(&alerts.lock);
    bool skip = alerts.cfg == NULL || alerts.started || alerts.closed || alerts.budget_count == 0;
    if (skip) {
        pthread_mutex_unlock(&alerts.lock);
        return 0;
    }
    alerts.stopping = false;
    int rc = pthread_create(&alerts.evaluator, NULL, evaluator_main, NULL);
    if (rc == 0 && pthread_create(&alerts.notifier, NULL, notifier_main, NULL) != 0) {
        alerts.stopping = true;
        pthread_cond_broadcast(&alerts.wake);
        pthread_mutex_unlock(&alerts.lock);
        pthread_join(alerts.evaluator, NULL);
        pthread_mutex_lock(&alerts.lock);
        rc = -1;
    }
    alerts.started = rc == 0;
    size_t budgets = alerts.budget_count;
    pthread_mutex_unlock(&alerts.lock);
    if (rc != 0) {
        log_event(LOG_ERROR, "alerts not started: no thread");
        return -1;
    }
    const strata_config *cfg = alerts.cfg;
    log_line line;
    log_begin(&line, LOG_INFO, "alerts started");
    log_int(&line, "budgets", (int64_t)budgets);
    log_int(&line, "interval_ms", cfg->alerts_interval_ms);
    log_int(&line, "window_s", cfg->alerts_window_s);
    log_str(&line, "webhook", cfg->alerts_webhook_url);
    log_end(&line);
    if (alerts.webhook_enabled && !cfg->jobs_enabled)
        log_event(LOG_WARN, "alerts.webhook_url is set but jobs are off here: another instance must deliver");
    return 0;
}

void alerts_stop(void)
{
    pthread_mutex_lock(&alerts.lock);
    alerts.closed = true;
    bool started = alerts.started;
    alerts.started = false;
    alerts.stopping = true;
    if (started)
        pthread_cond_broadcast(&alerts.wake);
    pthread_mutex_unlock(&alerts.lock);
    if (!started)
        return;
    /* The evaluator finishes within one evaluation; the notifier within one
     * INSERT (bounded by the store's busy timeout). */
    pthread_join(alerts.evaluator, NULL);
    pthread_join(alerts.notifier, NULL);
    pthread_mutex_lock(&alerts.lock);
    size_t unsent = alerts.outbox_count;
    for (size_t i = 0; i < alerts.outbox_count; i++)
        json_decref(alerts.outbox[i]);
    alerts.outbox_count = 0;
    pthread_mutex_unlock(&alerts.lock);
    if (unsent > 0)
        log_event(LOG_WARN, "alert webhooks not queued at shutdown were dropped");
    log_event(LOG_INFO, "alerts stopped");
}

/* ---- outputs ---------------------------------------------------------------------------------- */

/* A number, or null when not finite (JSON has no NaN). */
static json_t *number_json(double value)
{
    return isfinite(value) ? json_real(value) : json_null();
}

/* Under alerts.lock. */
static json_t *active_json_locked(void)
{
    json_t *active = json_array();
    for (size_t i = 0; active != NULL && i < alerts.budget_count; i++) {
        const budget *b = &alerts.budgets[i];
        if (b->machine.state != ALERT_FIRING && b->machine.state != ALERT_CLEARING)
            continue;
        json_array_append_new(active,
                              json_pack("{s:s, s:s, s:o, s:f, s:s, s:I, s:s}", "id", b->id, "quantity", b->quantity,
                                        "value", number_json(b->value), "budget", b->rule.budget, "unit", b->unit,
                                        "since", (json_int_t)b->since, "state", alert_state_name(b->machine.state)));
    }
    return active;
}

json_t *alerts_active_json(void)
{
    pthread_mutex_lock(&alerts.lock);
    json_t *active = active_json_locked();
    pthread_mutex_unlock(&alerts.lock);
    return active;
}

json_t *alerts_json(void)
{
    pthread_mutex_lock(&alerts.lock);
    json_t *recent = json_array(), *budgets = json_array();
    for (size_t i = 1; recent != NULL && i <= alerts.recent_count; i++) {
        const alert_event *e = &alerts.recent[(alerts.recent_next + RECENT_MAX - i) % RECENT_MAX];
        json_array_append_new(recent, json_pack("{s:s, s:s, s:s, s:o, s:f, s:s, s:I, s:I}", "id", e->id, "quantity",
                                                e->quantity, "status", e->firing ? "firing" : "resolved", "value",
                                                number_json(e->value), "budget", e->budget, "unit", e->unit, "since",
                                                (json_int_t)e->since, "at", (json_int_t)e->at));
    }
    for (size_t i = 0; budgets != NULL && i < alerts.budget_count; i++) {
        const budget *b = &alerts.budgets[i];
        const source_entry *source = source_find(b->quantity);
        json_array_append_new(
            budgets, json_pack("{s:s, s:f, s:s, s:b, s:s, s:o, s:b}", "quantity", b->quantity, "budget", b->rule.budget,
                               "unit", b->unit, "floor", b->rule.floor, "state", alert_state_name(b->machine.state),
                               "value", b->measured ? number_json(b->value) : json_null(), "source", source != NULL));
    }
    const strata_config *cfg = alerts.cfg;
    json_t *doc = json_pack("{s:o, s:o, s:o, s:i, s:i, s:I}", "active", active_json_locked(), "recent", recent,
                            "budgets", budgets, "window_s", cfg ? cfg->alerts_window_s : 0, "interval_ms",
                            cfg ? cfg->alerts_interval_ms : 0, "webhooks_dropped", (json_int_t)alerts.outbox_dropped);
    pthread_mutex_unlock(&alerts.lock);
    return doc;
}

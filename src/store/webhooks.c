/*
 * webhooks.c — webhook subscriptions, the deliveries an item write queues
 * in its own transaction, and the delivery log (store_webhooks.h has the
 * model).
 *
 * Fan-out in SQL. An event becomes one job per interested subscription in
 * one statement: INSERT INTO jobs … SELECT … FROM webhooks WHERE site,
 * active and the event's bit. The payload is the event's JSON, made here
 * in C (jansson escapes it), with the subscription's id put in front by
 * the SQL ('{"webhook":' || id || ',' || the rest): every engine spells
 * that alike. A site without subscriptions pays one indexed read that
 * finds nothing. The event's id is 128 random bits, so a body run again
 * after a retry makes new ids for jobs whose first run was rolled back.
 *
 * The log's row of a message is written by the runner that holds its job
 * (one at a time: the job's lease), so reading the attempts it had and
 * writing them back in one transaction loses none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/store_internal.h"
#include "store/store_webhooks.h"

static _Thread_local bool events_queued;

static const char *const event_names[] = {"created", "saved", "published", "unpublished", "deleted", "test"};
enum { EVENT_NAME_COUNT = sizeof event_names / sizeof event_names[0] };

const char *store_webhook_event_name(unsigned bit)
{
    for (unsigned i = 0; i < EVENT_NAME_COUNT; i++)
        if (bit == 1u << i)
            return event_names[i];
    return NULL;
}

unsigned store_webhook_event_bit(const char *name)
{
    for (unsigned i = 0; name != NULL && i < EVENT_NAME_COUNT; i++)
        if (strcmp(name, event_names[i]) == 0 && (1u << i) != WEBHOOK_TEST)
            return 1u << i;
    return 0;
}

bool store_webhook_events_take(void)
{
    bool queued = events_queued;
    events_queued = false;
    return queued;
}

/* ---- events ------------------------------------------------------------------ */

static json_t *event_item_json(const webhook_item *item)
{
    if (item == NULL)
        return json_null();
    json_t *o = json_object();
    bool ok = o != NULL;
    ok = ok && json_put(o, "id", json_integer(item->id));
    ok = ok && json_put(o, "type", json_string(item->type));
    ok = ok && json_put(o, "slug", json_string(item->slug));
    ok = ok && json_put(o, "status", json_string(item->status));
    ok = ok && json_put(o, "version", json_integer(item->version));
    ok = ok && json_put(o, "draft_version", json_integer(item->draft_version));
    ok = ok && json_put(o, "published_version",
                        item->published_version ? json_integer(item->published_version) : json_null());
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The payload after its first member: `"event_id":…,…}` (malloc'd). */
static char *event_payload_rest(const char *event_id, unsigned event, const webhook_item *item, int64_t now)
{
    json_t *doc = json_pack("{s:s, s:s, s:o, s:I}", "event_id", event_id, "event", store_webhook_event_name(event),
                            "item", event_item_json(item), "occurred_at", (json_int_t)now);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text != NULL)
        memmove(text, text + 1, strlen(text)); /* without its '{' */
    return text;
}

static int event_id_make(store_t *st, char out[STORE_WEBHOOK_EVENT_ID_SIZE])
{
    uint8_t bytes[16];
    if (crypto_random(bytes, sizeof bytes) != 0)
        return db_fail(st, STORE_ERROR, "no randomness for a webhook event id");
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return STORE_OK;
}

/* Queues the event for each subscription of the site (only_id: only that
 * one, whatever its events and flag) that wants it; *queued (if not NULL)
 * gets how many. Inside a transaction (the write's, or the test send's). */
static int event_fan_out(store_t *st, int64_t site_id, unsigned event, const webhook_item *item, int64_t only_id,
                         char event_id[STORE_WEBHOOK_EVENT_ID_SIZE], int64_t *queued)
{
    int status = event_id_make(st, event_id);
    int64_t now = store_now_ms();
    char *rest = status == STORE_OK ? event_payload_rest(event_id, event, item, now) : NULL;
    if (status == STORE_OK && rest == NULL)
        status = db_fail(st, STORE_ERROR, "out of memory building a webhook event");
    db_query q;
    if (status == STORE_OK)
        status = db_query_start(
            st,
            "INSERT INTO jobs(kind, payload, run_at, created_at) "
            "SELECT CAST(:kind AS TEXT), '{\"webhook\":' || CAST(w.id AS TEXT) || ',' || CAST(:rest AS TEXT), "
            "CAST(:now AS BIGINT), CAST(:now AS BIGINT) "
            "FROM webhooks w WHERE w.site_id = :site AND "
            "(w.id = :only OR (CAST(:only AS BIGINT) = 0 AND w.active = 1 AND (w.events & :bit) <> 0))",
            &q);
    if (status == STORE_OK) {
        db_bind_text(&q, ":kind", STORE_WEBHOOK_JOB_KIND);
        db_bind_text(&q, ":rest", rest);
        db_bind_int(&q, ":now", now);
        db_bind_int(&q, ":site", site_id);
        db_bind_int(&q, ":only", only_id);
        db_bind_int(&q, ":bit", event);
        status = db_query_run(&q, "queueing the webhook deliveries");
    }
    free(rest);
    if (status == STORE_OK && db_changes(st) > 0)
        events_queued = true;
    if (queued != NULL)
        *queued = status == STORE_OK ? db_changes(st) : 0;
    return status;
}

int webhook_event_queue(store_t *st, int64_t site_id, unsigned event, const webhook_item *item)
{
    char event_id[STORE_WEBHOOK_EVENT_ID_SIZE];
    return event_fan_out(st, site_id, event, item, 0, event_id, NULL);
}

typedef struct test_tx {
    int64_t site_id, id, queued;
    char *event_id;
} test_tx;

static int test_queue_tx(store_t *st, void *arg)
{
    test_tx *tx = arg;
    return event_fan_out(st, tx->site_id, WEBHOOK_TEST, NULL, tx->id, tx->event_id, &tx->queued);
}

int store_webhook_test_queue(store_t *st, int64_t site_id, int64_t id, char event_id[STORE_WEBHOOK_EVENT_ID_SIZE])
{
    db_clear_error(st);
    test_tx tx = {.site_id = site_id, .id = id, .event_id = event_id};
    int status = db_transact(st, test_queue_tx, &tx, "queueing the test message");
    if (status == STORE_OK && tx.queued == 0)
        return db_fail(st, STORE_NOT_FOUND, "this site has no webhook %lld", (long long)id);
    return status;
}

/* ---- subscriptions ----------------------------------------------------------- */

typedef struct create_tx {
    int64_t site_id;
    const char *url;
    unsigned events;
    bool active;
    const uint8_t *key;
    int64_t id;
} create_tx;

static int webhook_create_tx(store_t *st, void *arg)
{
    create_tx *tx = arg;
    db_query q;
    int status = db_query_start(st, "SELECT COUNT(*) FROM webhooks WHERE site_id = :site", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", tx->site_id);
    int64_t count = db_next_row(&q) ? db_column_int(&q, 0) : 0;
    status = db_query_end(&q, "counting the webhooks");
    if (status == STORE_OK && count >= STORE_WEBHOOKS_PER_SITE_MAX)
        return db_fail(st, STORE_STATE, "a site has at most %d webhooks; delete one first",
                       STORE_WEBHOOKS_PER_SITE_MAX);
    if (status == STORE_OK)
        status = db_query_start(st,
                                "INSERT INTO webhooks(site_id, url, events, secret, active, created_at) "
                                "VALUES (:site, :url, :events, :secret, :active, :now) RETURNING id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", tx->site_id);
    db_bind_text(&q, ":url", tx->url);
    db_bind_int(&q, ":events", tx->events);
    db_bind_blob(&q, ":secret", tx->key, 32);
    db_bind_int(&q, ":active", tx->active);
    db_bind_int(&q, ":now", store_now_ms());
    tx->id = db_next_row(&q) ? db_column_int(&q, 0) : 0;
    return db_query_end(&q, "creating the webhook");
}

int store_webhook_create(store_t *st, int64_t site_id, const char *url, unsigned events, bool active,
                         const uint8_t key[32], int64_t *id)
{
    db_clear_error(st);
    if (strlen(url) > STORE_WEBHOOK_URL_MAX || events == 0 || (events & ~(unsigned)WEBHOOK_EVENTS_ALL) != 0)
        return db_fail(st, STORE_INVALID, "a webhook needs a URL of at most %d bytes and known events",
                       STORE_WEBHOOK_URL_MAX);
    create_tx tx = {.site_id = site_id, .url = url, .events = events, .active = active, .key = key};
    int status = db_transact(st, webhook_create_tx, &tx, "creating the webhook");
    if (status == STORE_OK)
        *id = tx.id;
    return status;
}

static json_t *events_json(unsigned events)
{
    json_t *names = json_array();
    for (unsigned bit = 1; names != NULL && bit <= WEBHOOK_DELETED; bit <<= 1)
        if ((events & bit) != 0 && json_array_append_new(names, json_string(store_webhook_event_name(bit))) != 0) {
            json_decref(names);
            return NULL;
        }
    return names;
}

static const char webhook_columns[] = "id, url, events, active, created_at";

static json_t *webhook_from_row(const db_query *q)
{
    return json_pack("{s:I, s:s, s:o, s:b, s:o}", "id", (json_int_t)db_column_int(q, 0), "url",
                     db_column_text(q, 1) ? db_column_text(q, 1) : "", "events",
                     events_json((unsigned)db_column_int(q, 2)), "active", db_column_int(q, 3) != 0, "created_at",
                     time_json(db_column_int(q, 4)));
}

/* The site's subscriptions (only_id > 0: that one) as a JSON array. */
static int webhooks_read(store_t *st, int64_t site_id, int64_t only_id, json_t **out)
{
    db_clear_error(st);
    *out = NULL;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM webhooks WHERE site_id = :site AND (CAST(:only AS BIGINT) = 0 OR id = :only) "
             "ORDER BY id",
             webhook_columns);
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_int(&q, ":only", only_id);
    json_t *list = json_array();
    bool ok = list != NULL;
    while (ok && db_next_row(&q)) {
        json_t *one = webhook_from_row(&q);
        ok = one != NULL && json_array_append_new(list, one) == 0;
    }
    status = db_query_end(&q, "listing the webhooks");
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory listing the webhooks");
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *out = list;
    return STORE_OK;
}

int store_webhook_list(store_t *st, int64_t site_id, json_t **out)
{
    return webhooks_read(st, site_id, 0, out);
}

int store_webhook_get(store_t *st, int64_t site_id, int64_t id, json_t **out)
{
    json_t *list = NULL;
    int status = webhooks_read(st, site_id, id, &list);
    *out = NULL;
    if (status == STORE_OK && json_array_size(list) == 0)
        status = db_fail(st, STORE_NOT_FOUND, "this site has no webhook %lld", (long long)id);
    if (status == STORE_OK)
        *out = json_incref(json_array_get(list, 0));
    json_decref(list);
    return status;
}

static int webhook_delete_tx(store_t *st, void *arg)
{
    const int64_t *ids = arg; /* site, webhook */
    db_query q;
    int status = db_query_start(st, "DELETE FROM webhooks WHERE id = :id AND site_id = :site RETURNING id", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", ids[1]);
    db_bind_int(&q, ":site", ids[0]);
    bool found = db_next_row(&q);
    status = db_query_end(&q, "deleting the webhook");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "this site has no webhook %lld", (long long)ids[1]);
    return status;
}

int store_webhook_delete(store_t *st, int64_t site_id, int64_t id)
{
    db_clear_error(st);
    int64_t ids[2] = {site_id, id};
    return db_transact(st, webhook_delete_tx, ids, "deleting the webhook");
}

int store_webhook_load(store_t *st, int64_t id, store_webhook *out)
{
    db_clear_error(st);
    memset(out, 0, sizeof *out);
    db_query q;
    int status = db_query_start(st,
                                "SELECT w.id, w.site_id, w.url, w.events, w.active, w.created_at, w.secret, s.name "
                                "FROM webhooks w JOIN sites s ON s.id = w.site_id WHERE w.id = :id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    bool found = db_next_row(&q);
    if (found) {
        size_t size = 0;
        const void *key = db_column_blob(&q, 6, &size);
        out->id = db_column_int(&q, 0);
        out->site_id = db_column_int(&q, 1);
        snprintf(out->url, sizeof out->url, "%s", db_column_text(&q, 2) ? db_column_text(&q, 2) : "");
        out->events = (unsigned)db_column_int(&q, 3);
        out->active = db_column_int(&q, 4) != 0;
        out->created_at = db_column_int(&q, 5);
        snprintf(out->site, sizeof out->site, "%s", db_column_text(&q, 7) ? db_column_text(&q, 7) : "");
        if (key != NULL && size == sizeof out->key)
            memcpy(out->key, key, sizeof out->key);
        else
            found = false;
    }
    status = db_query_end(&q, "reading the webhook");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no webhook %lld", (long long)id);
    return status;
}

/* ---- the delivery log -------------------------------------------------------- */

int store_webhook_delivered(store_t *st, const char *message_id, bool *delivered)
{
    db_clear_error(st);
    db_query q;
    int status =
        db_query_start(st, "SELECT 1 FROM webhook_deliveries WHERE message_id = :m AND delivered_at IS NOT NULL", &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":m", message_id);
    *delivered = db_next_row(&q);
    return db_query_end(&q, "reading the delivery");
}

typedef struct attempt_tx {
    const store_webhook_attempt *a;
    int attempts;
} attempt_tx;

/* The attempt log with a's attempt (number n) appended, the oldest
 * dropped beyond STORE_WEBHOOK_HISTORY_MAX; malloc'd text or NULL. */
static char *history_append(const char *previous, const store_webhook_attempt *a, int n)
{
    json_error_t error;
    json_t *log = previous != NULL ? json_loads(previous, 0, &error) : NULL;
    if (!json_is_array(log)) {
        json_decref(log);
        log = json_array();
    }
    json_t *entry =
        json_pack("{s:i, s:o, s:I, s:o, s:o}", "attempt", n, "at", time_json(a->at), "ms", (json_int_t)a->ms,
                  "status_code", a->status_code > 0 ? json_integer(a->status_code) : json_null(), "error",
                  a->error != NULL ? json_string(a->error) : json_null());
    char *text = NULL;
    if (log != NULL && entry != NULL && json_array_append_new(log, entry) == 0) {
        entry = NULL;
        while (json_array_size(log) > STORE_WEBHOOK_HISTORY_MAX)
            json_array_remove(log, 0);
        text = json_dumps(log, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(entry);
    json_decref(log);
    return text;
}

static int attempt_row_write(store_t *st, const store_webhook_attempt *a, bool exists, int n, const char *history)
{
    db_query q;
    int status = db_query_start(
        st,
        exists ? "UPDATE webhook_deliveries SET attempts = :n, status_code = :code, error = :error, "
                 "last_attempt_at = :at, delivered_at = :delivered, history = :history WHERE message_id = :m"
               : "INSERT INTO webhook_deliveries(webhook_id, message_id, event, attempts, status_code, error, "
                 "created_at, last_attempt_at, delivered_at, history) VALUES (:hook, :m, :event, :n, :code, "
                 ":error, :occurred, :at, :delivered, :history)",
        &q);
    if (status != STORE_OK)
        return status;
    if (!exists) {
        db_bind_int(&q, ":hook", a->webhook_id);
        db_bind_text(&q, ":event", a->event);
        db_bind_int(&q, ":occurred", a->occurred_at);
    }
    db_bind_text(&q, ":m", a->message_id);
    db_bind_int(&q, ":n", n);
    db_bind_int_or_null(&q, ":code", a->status_code, a->status_code > 0);
    db_bind_text(&q, ":error", a->error);
    db_bind_int(&q, ":at", a->at);
    db_bind_int_or_null(&q, ":delivered", a->at + a->ms, a->error == NULL);
    db_bind_text(&q, ":history", history);
    return db_query_run(&q, "recording the delivery attempt");
}

static int deliveries_prune(store_t *st, int64_t webhook_id)
{
    db_query q;
    int status = db_query_start(st,
                                "DELETE FROM webhook_deliveries WHERE webhook_id = :hook AND id <= "
                                "(SELECT id FROM webhook_deliveries WHERE webhook_id = :hook "
                                "ORDER BY id DESC LIMIT 1 OFFSET :keep)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":hook", webhook_id);
    db_bind_int(&q, ":keep", STORE_WEBHOOK_DELIVERIES_KEPT);
    return db_query_run(&q, "pruning the delivery log");
}

static int attempt_record_tx(store_t *st, void *arg)
{
    attempt_tx *tx = arg;
    const store_webhook_attempt *a = tx->a;
    db_query q;
    int status = db_query_start(st, "SELECT attempts, history FROM webhook_deliveries WHERE message_id = :m", &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":m", a->message_id);
    bool exists = db_next_row(&q);
    int n = exists ? (int)db_column_int(&q, 0) + 1 : 1;
    char *history = history_append(exists ? db_column_text(&q, 1) : NULL, a, n);
    status = db_query_end(&q, "reading the delivery");
    if (status == STORE_OK && history == NULL)
        status = db_fail(st, STORE_ERROR, "out of memory recording a delivery attempt");
    if (status == STORE_OK)
        status = attempt_row_write(st, a, exists, n, history);
    if (status == STORE_OK && !exists)
        status = deliveries_prune(st, a->webhook_id);
    free(history);
    tx->attempts = n;
    return status;
}

int store_webhook_attempt_record(store_t *st, const store_webhook_attempt *a, int *attempts)
{
    db_clear_error(st);
    attempt_tx tx = {.a = a};
    int status = db_transact(st, attempt_record_tx, &tx, "recording the delivery attempt");
    if (status == STORE_OK && attempts != NULL)
        *attempts = tx.attempts;
    return status;
}

static json_t *delivery_from_row(const db_query *q)
{
    json_error_t error;
    const char *history = db_column_text(q, 9);
    json_t *log = history != NULL ? json_loads(history, 0, &error) : NULL;
    if (!json_is_array(log)) {
        json_decref(log);
        log = json_array();
    }
    return json_pack("{s:s, s:s, s:I, s:b, s:o, s:o, s:o, s:o, s:o, s:o}", "id", db_column_text(q, 0), "event",
                     db_column_text(q, 1), "attempts", (json_int_t)db_column_int(q, 2), "delivered",
                     !db_column_is_null(q, 8), "status_code",
                     db_column_is_null(q, 3) ? json_null() : json_integer(db_column_int(q, 3)), "error",
                     db_column_text(q, 4) ? json_string(db_column_text(q, 4)) : json_null(), "occurred_at",
                     time_json(db_column_int(q, 5)), "last_attempt_at",
                     db_column_is_null(q, 6) ? json_null() : time_json(db_column_int(q, 6)), "delivered_at",
                     db_column_is_null(q, 8) ? json_null() : time_json(db_column_int(q, 8)), "attempt_log", log);
}

int store_webhook_deliveries(store_t *st, int64_t site_id, int64_t id, int limit, json_t **out)
{
    *out = NULL;
    json_t *hook = NULL;
    int status = store_webhook_get(st, site_id, id, &hook); /* the site's, or 404 */
    json_decref(hook);
    db_query q;
    if (status == STORE_OK)
        status = db_query_start(st,
                                "SELECT message_id, event, attempts, status_code, error, created_at, "
                                "last_attempt_at, webhook_id, delivered_at, history FROM webhook_deliveries "
                                "WHERE webhook_id = :hook ORDER BY id DESC LIMIT :limit",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":hook", id);
    db_bind_int(&q, ":limit", limit);
    json_t *list = json_array();
    bool ok = list != NULL;
    while (ok && db_next_row(&q)) {
        json_t *one = delivery_from_row(&q);
        ok = one != NULL && json_array_append_new(list, one) == 0;
    }
    status = db_query_end(&q, "reading the delivery log");
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory reading the delivery log");
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *out = list;
    return STORE_OK;
}

/*
 * webhooks.c — one delivery of a content webhook (webhooks.h has the
 * protocol; store/webhooks.c queues the jobs in the writes' transactions).
 *
 * A run: read the subscription (gone: nothing to do; inactive: dropped,
 * except a test send), ask the log whether the message was delivered
 * already (a run after a success whose completion was lost sends nothing),
 * build the body from the payload — the same bytes on every attempt —
 * sign it with this attempt's time, POST it with purge.c's bounded client,
 * and log the attempt. Exactly one runner holds a job at a time (its
 * lease, jobs.lease_ms, is far above WEBHOOK_TIMEOUT_MS), so two instances
 * never send one message at once; a receiver that still sees a Webhook-Id
 * twice (a crash between its 2xx and the log's write) drops the repeat.
 */
#include "jobs/webhooks.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "jobs/jobs.h"
#include "jobs/purge.h"
#include "store/store_history.h"
#include "store/store_webhooks.h"

enum { MESSAGE_ID_MAX = WEBHOOK_MESSAGE_ID_MAX, WHY_MAX = 300, HEADERS_MAX = 512 };

/* What the payload says. */
typedef struct delivery {
    int64_t webhook;
    const char *event_id, *event;
    const json_t *item;
    int64_t occurred_at;
    char message_id[MESSAGE_ID_MAX];
} delivery;

static bool delivery_read(const json_t *payload, delivery *d)
{
    d->webhook = json_integer_value(json_object_get(payload, "webhook"));
    d->event_id = json_string_value(json_object_get(payload, "event_id"));
    d->event = json_string_value(json_object_get(payload, "event"));
    d->item = json_object_get(payload, "item");
    d->occurred_at = json_integer_value(json_object_get(payload, "occurred_at"));
    if (d->webhook <= 0 || d->event_id == NULL || strlen(d->event_id) != STORE_WEBHOOK_EVENT_ID_SIZE - 1 ||
        d->event == NULL || d->item == NULL || d->occurred_at <= 0)
        return false;
    webhooks_message_id(d->event_id, d->webhook, d->message_id);
    return true;
}

void webhooks_message_id(const char *event_id, int64_t webhook, char out[WEBHOOK_MESSAGE_ID_MAX])
{
    snprintf(out, WEBHOOK_MESSAGE_ID_MAX, "msg_%s_%lld", event_id, (long long)webhook);
}

/* The body, compact, its members in a fixed order (malloc'd). */
static char *body_build(const delivery *d, const char *site)
{
    char at[STORE_TIME_TEXT_SIZE];
    store_time_text(d->occurred_at, at);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:O, s:s}", "id", d->message_id, "event", d->event, "site", site, "item",
                            d->item, "occurred_at", at);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return text;
}

/* The three Webhook-* header lines for this attempt. -1 if they do not fit. */
static int headers_sign(const delivery *d, const uint8_t key[32], const char *body, int64_t now_ms,
                        char out[HEADERS_MAX])
{
    long long timestamp = (long long)(now_ms / 1000);
    char prefix[MESSAGE_ID_MAX + 32];
    int prefix_len = snprintf(prefix, sizeof prefix, "%s.%lld.", d->message_id, timestamp);
    size_t body_len = strlen(body);
    char *signed_text = malloc((size_t)prefix_len + body_len);
    if (signed_text == NULL)
        return -1;
    memcpy(signed_text, prefix, (size_t)prefix_len);
    memcpy(signed_text + prefix_len, body, body_len);
    uint8_t mac[32];
    crypto_hmac_sha256(key, signed_text, (size_t)prefix_len + body_len, mac);
    free(signed_text);
    unsigned char signature[4 * ((sizeof mac + 2) / 3) + 1];
    EVP_EncodeBlock(signature, mac, sizeof mac); /* standard base64, padded */
    int n = snprintf(out, HEADERS_MAX, "Webhook-Id: %s\r\nWebhook-Timestamp: %lld\r\nWebhook-Signature: v1,%s\r\n",
                     d->message_id, timestamp, (const char *)signature);
    return n > 0 && n < HEADERS_MAX ? 0 : -1;
}

/* Sends the message once: 0 delivered, -1 with why. *status_code gets the
 * answer's status (0: none). */
static int message_send(const delivery *d, const store_webhook *hook, const char *body, int64_t now_ms,
                        int *status_code, char *why, size_t why_size)
{
    *status_code = 0;
    purge_target target;
    char headers[HEADERS_MAX];
    if (purge_endpoint_parse(hook->url, "the webhook's url", &target, why, why_size) != 0)
        return -1;
    if (headers_sign(d, hook->key, body, now_ms, headers) != 0) {
        snprintf(why, why_size, "the signature headers could not be made");
        return -1;
    }
    int status = purge_post(&target, headers, body, strlen(body), WEBHOOK_TIMEOUT_MS, why, why_size);
    if (status < 0)
        return -1;
    *status_code = status;
    if (status >= 200 && status < 300)
        return 0;
    snprintf(why, why_size, "POST %.200s answered %d", hook->url, status);
    return -1;
}

static void attempt_log(const delivery *d, const store_webhook_attempt *a, int attempts)
{
    log_line line;
    log_begin(&line, a->error == NULL ? LOG_INFO : LOG_WARN,
              a->error == NULL ? "webhook delivered" : "webhook delivery failed");
    log_int(&line, "webhook", d->webhook);
    log_str(&line, "message", d->message_id);
    log_str(&line, "event", d->event);
    log_int(&line, "attempt", attempts);
    log_int(&line, "status_code", a->status_code);
    log_int(&line, "ms", a->ms);
    if (a->error != NULL)
        log_str(&line, "error", a->error);
    log_end(&line);
}

/* Sends and logs one attempt; the job's outcome. */
static int attempt_run(store_t *st, const delivery *d, const store_webhook *hook, char *err, size_t err_size)
{
    char *body = body_build(d, hook->site);
    if (body == NULL) {
        snprintf(err, err_size, "out of memory building the webhook body");
        return -1;
    }
    char why[WHY_MAX];
    int64_t started = store_now_ms();
    store_webhook_attempt a = {
        .webhook_id = d->webhook, .message_id = d->message_id, .event = d->event, .occurred_at = d->occurred_at};
    int rc = message_send(d, hook, body, started, &a.status_code, why, sizeof why);
    free(body);
    a.at = started;
    a.ms = store_now_ms() - started;
    a.error = rc == 0 ? NULL : why;
    int attempts = 0;
    if (store_webhook_attempt_record(st, &a, &attempts) != STORE_OK)
        log_event_str(LOG_WARN, "webhook attempt not logged", "error", store_errmsg(st));
    attempt_log(d, &a, attempts);
    if (rc != 0)
        snprintf(err, err_size, "%s", why);
    return rc;
}

static int webhook_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    delivery d;
    if (!delivery_read(payload, &d)) {
        snprintf(err, err_size, "a webhook delivery without its subscription, event, item or time");
        return -1;
    }
    store_webhook hook;
    int rc = store_webhook_load(st, d.webhook, &hook);
    if (rc == STORE_NOT_FOUND)
        return 0; /* deleted since: nobody to tell */
    bool delivered = false;
    if (rc == STORE_OK)
        rc = store_webhook_delivered(st, d.message_id, &delivered);
    if (rc != STORE_OK) {
        snprintf(err, err_size, "%s", store_errmsg(st));
        return -1;
    }
    if (delivered || (!hook.active && strcmp(d.event, "test") != 0))
        return 0; /* sent already, or paused: not sent */
    return attempt_run(st, &d, &hook, err, err_size);
}

void webhooks_jobs_register(void)
{
    if (jobs_register(STORE_WEBHOOK_JOB_KIND, webhook_job) != 0)
        log_event_str(LOG_ERROR, "job kind not registered", "kind", STORE_WEBHOOK_JOB_KIND);
}

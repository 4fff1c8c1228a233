/*
 * store_webhooks.h — the repository's webhook half: per-site subscriptions,
 * the events that queue their deliveries, and the delivery log.
 *
 * A subscription (a row of `webhooks`) is a site's URL, the set of events
 * it wants (a bit each), a 32-byte signing key and an active flag. An item
 * write that is an event (created, saved, published, unpublished, deleted)
 * queues, in its own transaction, one job of kind STORE_WEBHOOK_JOB_KIND
 * per active subscription of the site that wants it — one INSERT … SELECT,
 * which adds nothing when nobody subscribed — so an acknowledged write's
 * event is never lost and a rolled-back one never sent. The payload carries
 * the event as it was at that moment: {"webhook","event_id","event",
 * "item":{…},"occurred_at"} (the site is the subscription's); the delivery (jobs/webhooks.c) signs and sends
 * it. A scheduled publish goes through the same store call as the route,
 * so it is an event too.
 *
 * The delivery log (`webhook_deliveries`) has one row per message (an
 * event for one subscription): its attempts, the last status or error, the
 * times, and the last STORE_WEBHOOK_HISTORY_MAX attempts; each
 * subscription keeps its latest STORE_WEBHOOK_DELIVERIES_KEPT messages.
 * A message whose row says delivered is never sent again.
 *
 * Same conventions as store.h: STORE_OK or a negative store_status, and
 * store_errmsg() for a sentence. Times are ms since the epoch.
 */
#ifndef STRATA_STORE_WEBHOOKS_H
#define STRATA_STORE_WEBHOOKS_H

#include "store/store.h"

#define STORE_WEBHOOK_JOB_KIND "content_webhook" /* "webhook" is the alerts' */
#define STORE_WEBHOOKS_PER_SITE_MAX 20
#define STORE_WEBHOOK_URL_MAX 1024
#define STORE_WEBHOOK_DELIVERIES_KEPT 100 /* messages kept per subscription */
#define STORE_WEBHOOK_HISTORY_MAX 20      /* attempts kept per message */
#define STORE_WEBHOOK_EVENT_ID_SIZE 33    /* 32 hex digits and the NUL */

/* The events, one bit each; "test" is the test send's, never subscribed. */
enum store_webhook_event {
    WEBHOOK_CREATED = 1u << 0,
    WEBHOOK_SAVED = 1u << 1,
    WEBHOOK_PUBLISHED = 1u << 2,
    WEBHOOK_UNPUBLISHED = 1u << 3,
    WEBHOOK_DELETED = 1u << 4,
    WEBHOOK_EVENTS_ALL = (1u << 5) - 1,
    WEBHOOK_TEST = 1u << 5,
};
/* "created", … for one bit (NULL for anything else); the bit of a name (0
 * if unknown; "test" is not a name one subscribes to). */
const char *store_webhook_event_name(unsigned bit);
unsigned store_webhook_event_bit(const char *name);

typedef struct store_webhook {
    int64_t id, site_id;
    char site[65]; /* the site's name */
    char url[STORE_WEBHOOK_URL_MAX + 1];
    unsigned events;
    bool active;
    uint8_t key[32]; /* the signing key (the secret's bytes) */
    int64_t created_at;
} store_webhook;

/* A new subscription; STORE_STATE when the site already has
 * STORE_WEBHOOKS_PER_SITE_MAX. *id gets its id. */
int store_webhook_create(store_t *st, int64_t site_id, const char *url, unsigned events, bool active,
                         const uint8_t key[32], int64_t *id);
/* *out: the site's subscriptions, oldest first, as {"id","url","events":
 * [names],"active","created_at"} (never the key). */
int store_webhook_list(store_t *st, int64_t site_id, json_t **out);
/* One of them in the same shape; STORE_NOT_FOUND if the site has no such. */
int store_webhook_get(store_t *st, int64_t site_id, int64_t id, json_t **out);
/* Deletes it and its log; its queued deliveries find it gone and stop. */
int store_webhook_delete(store_t *st, int64_t site_id, int64_t id);
/* For a delivery: the subscription id with its site's name. */
int store_webhook_load(store_t *st, int64_t id, store_webhook *out);

/* Queues a "test" message to the site's subscription id, delivered like
 * any other (even while the subscription is inactive). event_id gets the
 * event's id. STORE_NOT_FOUND if the site has no such subscription. */
int store_webhook_test_queue(store_t *st, int64_t site_id, int64_t id, char event_id[STORE_WEBHOOK_EVENT_ID_SIZE]);

/* True if this thread queued deliveries since it last asked: the caller
 * wakes the job runner once the write is answered. */
bool store_webhook_events_take(void);

/* ---- the delivery log ---------------------------------------------------- */

/* Whether message_id was delivered already. */
int store_webhook_delivered(store_t *st, const char *message_id, bool *delivered);

/* One attempt at a message, as the delivery saw it. */
typedef struct store_webhook_attempt {
    int64_t webhook_id;
    const char *message_id, *event;
    int64_t occurred_at; /* the event's time */
    int64_t at, ms;      /* when the attempt started, how long it took */
    int status_code;     /* the answer's status; 0: none came */
    const char *error;   /* why it failed (NULL: it was delivered) */
} store_webhook_attempt;
/* Records the attempt on its message (made at the first), and keeps the
 * subscription's STORE_WEBHOOK_DELIVERIES_KEPT latest messages. *attempts
 * gets the message's attempts, this one included. */
int store_webhook_attempt_record(store_t *st, const store_webhook_attempt *a, int *attempts);
/* *out: the latest `limit` messages of the site's subscription id, newest
 * first: {"id","event","attempts","delivered","status_code","error",
 * "occurred_at","last_attempt_at","delivered_at","attempt_log":[{"attempt",
 * "at","ms","status_code","error"}…]}. STORE_NOT_FOUND if no such. */
int store_webhook_deliveries(store_t *st, int64_t site_id, int64_t id, int limit, json_t **out);

#endif

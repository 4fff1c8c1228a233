/*
 * webhooks.h — delivering content webhooks: the job kind "content_webhook" that
 * sends one message (an item event for one subscription) signed the
 * Standard Webhooks way, and logs each attempt (store_webhooks.h).
 *
 * A message is POSTed as JSON {"id","event","site","item","occurred_at"}
 * with `Webhook-Id` (the message's id, the same on every attempt, so a
 * receiver can drop a repeat), `Webhook-Timestamp` (seconds, this
 * attempt's) and `Webhook-Signature: v1,<base64 of HMAC-SHA256 under the
 * subscription's key of "id.timestamp.body">`. A 2xx answer delivers it;
 * anything else (another status, no answer within WEBHOOK_TIMEOUT_MS)
 * fails the job, which the queue retries with its backoff up to
 * jobs.max_attempts. Only the status line of an answer is read.
 */
#ifndef STRATA_JOBS_WEBHOOKS_H
#define STRATA_JOBS_WEBHOOKS_H

#define WEBHOOK_TIMEOUT_MS 5000 /* one attempt: connect, send, status line */

#include <stdint.h>

#define WEBHOOK_MESSAGE_ID_MAX 64

/* The id of event_id's message to subscription webhook ("msg_…_N"). */
void webhooks_message_id(const char *event_id, int64_t webhook, char out[WEBHOOK_MESSAGE_ID_MAX]);

/* Before jobs_start: registers the kind "content_webhook". */
void webhooks_jobs_register(void);

#endif

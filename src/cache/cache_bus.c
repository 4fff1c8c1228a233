/*
 * cache_bus.c — invalidations between instances over Redis pub/sub (see
 * cache_bus.h for the contract).
 *
 * Channels carry the site: a message about site S goes on CHANNEL:S (a
 * reset, about every site, on CHANNEL:_), and each instance subscribes to
 * the pattern CHANNEL:*.
 *
 * Wire format of a message (hiredis sends it binary-safe):
 *
 *     <instance:16 hex>|<published at, µs since the epoch>|<kind>|<lsn:16 hex>|<payload>
 *
 * kind 't' a tag, 'k' a key, 'r' "reset: drop everything" (sent after this
 * instance failed to publish, so others may have missed something). lsn is
 * the WAL position of the write that caused it (all zeros: none): the
 * receiver raises the floor its fills must read at before it drops the
 * entries (cache_bus_handlers.apply). An instance ignores its own
 * messages; every instance must speak this format (a fleet is upgraded
 * together: an older instance would read the position as the payload). Each is sent by l2_invalidate_script,
 * which stamps the generation (or moves the era, for a reset) and
 * publishes in one atomic step. The lag is the subscriber's clock minus
 * the publisher's, both CLOCK_REALTIME on one host or NTP-close hosts.
 *
 * The publisher keeps at most QUEUE_MAX messages; past that, or when Redis
 * refuses one, the messages are dropped and a reset is owed: it is sent
 * first as soon as a publish works again.
 */
#include "cache/cache_bus.h"

#include "cache/l2.h"
#include "core/fmt.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 100000
#define LAG_SAMPLES 4096

#define BACKOFF_MAX_MS 200

const double cache_bus_lag_bounds_ms[CACHE_BUS_LAG_BUCKETS] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 1000, 1e300};

typedef struct bus_message {
    struct bus_message *next;
    uint64_t seq;
    char kind;
    char lsn[17]; /* 16 hex digits, for the L2's stamp */
    char site[128];
    size_t name_at; /* the payload: data + name_at */
    size_t len;
    char data[];
} bus_message;

struct cache_bus {
    char host[256];
    int port;
    char channel[128];
    char generation_ttl_ms[24];
    struct timeval timeout;
    cache_bus_handlers handlers;
    char instance[17];

    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t acked; /* acked_seq or failed_seq moved */
    uint64_t next_seq, acked_seq, failed_seq;
    bool unreachable; /* the last publish failed, and none has worked since */
    /* next_seq and max(acked_seq, failed_seq), mirrored for readers on the
     * request path (cache_bus_publishing), who do not take the lock */
    _Atomic uint64_t published, settled;
    /* subscribed, and the L1 cleared of what was published while it was
     * not: every invalidation since has been or will be applied */
    atomic_bool listening;
    bool stopping;
    bus_message *head, *tail;
    size_t queued;
    /* a reset is owed while resets_wanted != resets_sent; `owed` mirrors
     * that for readers on the request path, who do not take the lock */
    uint64_t resets_wanted, resets_sent;
    _Atomic bool owed;
    int subscriber_fd; /* -1 when not connected; shut down to stop */
    cache_bus_stats stats;
    double lags[LAG_SAMPLES];
    size_t lag_next;

    pthread_t publisher, subscriber;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cache_bus_parse_url(const char *url, char host[256], int *port)
{
    if (strncmp(url, "redis://", 8) == 0)
        url += 8;
    const char *colon = strrchr(url, ':');
    size_t len = colon ? (size_t)(colon - url) : strlen(url);
    if (len == 0 || len >= 256)
        return -1;
    memcpy(host, url, len);
    host[len] = '\0';
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : 6379;
    if (colon != NULL && (*end != '\0' && *end != '/'))
        return -1;
    if (p <= 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* A connection whose connect and every command time out after
 * redis.timeout_ms: hiredis 0.14's redisConnectWithTimeout bounds only the
 * connect, and a publisher blocked on a hung Redis would hold every
 * writer's wait to its end, write after write. */
static redisContext *bus_connect(cache_bus *bus)
{
    redisContext *c = redisConnectWithTimeout(bus->host, bus->port, bus->timeout);
    if (c == NULL || c->err || redisSetTimeout(c, bus->timeout) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* ---- publishing ----------------------------------------------------------- */

static bus_message *message_new(cache_bus *bus, char kind, const char *site, lsn_t lsn, const char *payload, size_t len)
{
    bus_message *m = malloc(sizeof(*m) + 96 + len);
    if (m == NULL)
        return NULL;
    fmt_hex(m->lsn, lsn, 16);
    m->lsn[16] = '\0';
    int n = snprintf(m->data, 96, "%s|%llu|%c|%s|", bus->instance, (unsigned long long)now_us(), kind, m->lsn);
    memcpy(m->data + n, payload, len);
    m->name_at = (size_t)n;
    m->len = (size_t)n + len;
    m->kind = kind;
    snprintf(m->site, sizeof(m->site), "%s", site);
    m->next = NULL;
    return m;
}

/* Under bus->lock, after acked_seq or failed_seq moved (and, for a
 * failure, after `owed` was set: a reader never sees neither). */
static void bus_settled(cache_bus *bus)
{
    atomic_store(&bus->settled, bus->acked_seq > bus->failed_seq ? bus->acked_seq : bus->failed_seq);
}

uint64_t cache_bus_publish(cache_bus *bus, const char *site, bool is_tag, const char *name, size_t len, lsn_t lsn)
{
    bus_message *m = message_new(bus, is_tag ? 't' : 'k', site, lsn, name, len);
    pthread_mutex_lock(&bus->lock);
    uint64_t seq = ++bus->next_seq;
    atomic_store(&bus->published, seq);
    if (m == NULL || bus->queued >= QUEUE_MAX) {
        bus->resets_wanted++;
        atomic_store(&bus->owed, true);
        bus->stats.publish_failures++;
        bus->failed_seq = seq;
        bus_settled(bus);
        pthread_cond_broadcast(&bus->acked);
        free(m);
    } else {
        m->seq = seq;
        if (bus->tail != NULL)
            bus->tail->next = m;
        else
            bus->head = m;
        bus->tail = m;
        bus->queued++;
    }
    pthread_cond_signal(&bus->wake);
    pthread_mutex_unlock(&bus->lock);
    return seq;
}

bool cache_bus_wait(cache_bus *bus, uint64_t seq, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&bus->lock);
    while (bus->acked_seq < seq && bus->failed_seq < seq && !bus->stopping && !bus->unreachable)
        if (pthread_cond_timedwait(&bus->acked, &bus->lock, &deadline) != 0)
            break;
    bool ok = bus->acked_seq >= seq && bus->failed_seq < seq;
    if (!ok && bus->failed_seq < seq) { /* timed out: whatever happens next, L2 is suspect until a reset */
        bus->resets_wanted++;
        atomic_store(&bus->owed, true);
    }
    pthread_mutex_unlock(&bus->lock);
    return ok;
}

bool cache_bus_reset_owed(cache_bus *bus)
{
    return atomic_load(&bus->owed);
}

bool cache_bus_listening(cache_bus *bus)
{
    return atomic_load(&bus->listening);
}

bool cache_bus_publishing(cache_bus *bus)
{
    return atomic_load(&bus->published) > atomic_load(&bus->settled);
}

/* Sends a batch in one round trip (pipelined): true if Redis took all. */
static bool publish_batch(cache_bus *bus, redisContext *c, const bus_message *batch)
{
    size_t sent = 0;
    for (const bus_message *m = batch; m != NULL; m = m->next, sent++) {
        char kind[2] = {m->kind, '\0'};
        char channel[sizeof(bus->channel) + sizeof(m->site) + 1];
        snprintf(channel, sizeof(channel), "%s:%s", bus->channel, m->site[0] != '\0' ? m->site : "_");
        const char *argv[] = {"EVAL",
                              l2_invalidate_script,
                              "0",
                              channel,
                              m->data,
                              kind,
                              m->site,
                              m->data + m->name_at,
                              bus->generation_ttl_ms,
                              m->lsn};
        size_t argvlen[] = {4,
                            strlen(l2_invalidate_script),
                            1,
                            strlen(channel),
                            m->len,
                            1,
                            strlen(m->site),
                            m->len - m->name_at,
                            strlen(bus->generation_ttl_ms),
                            16};
        if (redisAppendCommandArgv(c, 10, argv, argvlen) != REDIS_OK)
            return false;
    }
    bool ok = true;
    for (size_t i = 0; i < sent; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK)
            return false;
        ok = ok && ((redisReply *)reply)->type == REDIS_REPLY_INTEGER;
        freeReplyObject(reply);
    }
    return ok;
}

static void free_batch(bus_message *m)
{
    while (m != NULL) {
        bus_message *next = m->next;
        free(m);
        m = next;
    }
}

/* Takes everything queued at once: a write's several invalidations go out
 * in one round trip instead of queueing behind each other. A reset owed
 * goes first. */
static void *publisher_main(void *arg)
{
    cache_bus *bus = arg;
    redisContext *c = NULL;
    int backoff = 50;
    pthread_mutex_lock(&bus->lock);
    for (;;) {
        while (bus->head == NULL && bus->resets_wanted == bus->resets_sent && !bus->stopping)
            pthread_cond_wait(&bus->wake, &bus->lock);
        if (bus->stopping && (bus->head == NULL || c == NULL))
            break;
        uint64_t wanted = bus->resets_wanted;
        bool owe_reset = wanted != bus->resets_sent;
        bus_message *batch = bus->head;
        size_t count = bus->queued;
        uint64_t last_seq = bus->tail != NULL ? bus->tail->seq : 0;
        bus->head = bus->tail = NULL;
        bus->queued = 0;
        pthread_mutex_unlock(&bus->lock);

        if (owe_reset) {
            bus_message *reset = message_new(bus, 'r', "", LSN_NONE, "", 0);
            if (reset != NULL) {
                reset->next = batch;
                batch = reset;
            }
        }
        if (c == NULL && (c = bus_connect(bus)) != NULL)
            backoff = 50;
        bool ok = c != NULL && batch != NULL && publish_batch(bus, c, batch);
        if (c != NULL && !ok) {
            redisFree(c);
            c = NULL;
        }
        free_batch(batch);
        pthread_mutex_lock(&bus->lock);
        bus->unreachable = !ok;
        if (ok) {
            bus->stats.published += count;
            if (last_seq > bus->acked_seq)
                bus->acked_seq = last_seq;
            /* what was owed when the batch began is paid; a failure
             * since then (a dropped message, a wait timed out) is not */
            if (owe_reset)
                bus->resets_sent = wanted;
            atomic_store(&bus->owed, bus->resets_wanted != bus->resets_sent);
        } else {
            /* whatever was dropped, the others must drop everything */
            bus->resets_wanted++;
            atomic_store(&bus->owed, true);
            bus->stats.publish_failures += count;
            if (last_seq > bus->failed_seq)
                bus->failed_seq = last_seq;
        }
        bus_settled(bus);
        pthread_cond_broadcast(&bus->acked);
        if (!ok && !bus->stopping) {
            pthread_mutex_unlock(&bus->lock);
            pause_ms(backoff);
            backoff = backoff < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
            pthread_mutex_lock(&bus->lock);
        }
    }
    pthread_mutex_unlock(&bus->lock);
    redisFree(c);
    return NULL;
}

/* ---- subscribing ------------------------------------------------------------- */

static void record_lag(cache_bus *bus, double lag_ms)
{
    if (lag_ms < 0)
        lag_ms = 0;
    bus->lags[bus->lag_next++ % LAG_SAMPLES] = lag_ms;
    bus->stats.lag_samples++;
    int b = 0;
    while (b < CACHE_BUS_LAG_BUCKETS - 1 && lag_ms > cache_bus_lag_bounds_ms[b])
        b++;
    bus->stats.lag_buckets[b]++;
}

/* Parses and applies one message payload. */
static void on_message(cache_bus *bus, const char *data, size_t len)
{
    const char *end = data + len, *p = data;
    const char *bar1 = memchr(p, '|', len);
    const char *bar2 = bar1 ? memchr(bar1 + 1, '|', (size_t)(end - bar1 - 1)) : NULL;
    const char *bar3 = bar2 ? memchr(bar2 + 1, '|', (size_t)(end - bar2 - 1)) : NULL;
    pthread_mutex_lock(&bus->lock);
    bus->stats.received++;
    pthread_mutex_unlock(&bus->lock);
    lsn_t lsn;
    if (bar3 == NULL || bar3 != bar2 + 2 || (size_t)(bar1 - p) != 16 || end - bar3 < 18 || bar3[17] != '|' ||
        !lsn_parse_hex16(bar3 + 1, &lsn))
        return; /* not ours */
    if (memcmp(p, bus->instance, 16) == 0)
        return; /* our own invalidation, already applied */
    uint64_t sent = strtoull(bar1 + 1, NULL, 10);
    char kind = bar2[1];
    const char *payload = bar3 + 18;
    size_t payload_len = (size_t)(end - payload);
    if (kind == 'r')
        bus->handlers.reset(bus->handlers.ctx);
    else if (kind == 't' || kind == 'k')
        bus->handlers.apply(bus->handlers.ctx, kind == 't', payload, payload_len, lsn);
    else
        return;
    pthread_mutex_lock(&bus->lock);
    if (kind == 'r')
        bus->stats.resets++;
    else
        bus->stats.applied++;
    record_lag(bus, (double)(now_us() - sent) / 1000.0);
    pthread_mutex_unlock(&bus->lock);
}

static void *subscriber_main(void *arg)
{
    cache_bus *bus = arg;
    int backoff = 50;
    for (;;) {
        pthread_mutex_lock(&bus->lock);
        bool stopping = bus->stopping;
        pthread_mutex_unlock(&bus->lock);
        if (stopping)
            break;
        redisContext *c = bus_connect(bus);
        redisReply *r = c ? redisCommand(c, "PSUBSCRIBE %s:*", bus->channel) : NULL;
        if (r == NULL) {
            redisFree(c);
            pause_ms(backoff);
            backoff = backoff < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
            continue;
        }
        freeReplyObject(r);
        backoff = 50;
        /* Blocking reads from here on: the stopper shuts the socket down. */
        struct timeval forever = {0, 0};
        redisSetTimeout(c, forever);
        pthread_mutex_lock(&bus->lock);
        bus->subscriber_fd = c->fd;
        bus->stats.connected = true;
        bus->stats.reconnects++;
        stopping = bus->stopping;
        pthread_mutex_unlock(&bus->lock);
        /* Whatever was published while we were not subscribed is lost. */
        bus->handlers.reset(bus->handlers.ctx);
        atomic_store(&bus->listening, true);
        while (!stopping) {
            void *reply = NULL;
            if (redisGetReply(c, &reply) != REDIS_OK)
                break;
            r = reply;
            /* "pmessage", pattern, channel, message */
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 && r->element[3]->type == REDIS_REPLY_STRING)
                on_message(bus, r->element[3]->str, r->element[3]->len);
            freeReplyObject(r);
            pthread_mutex_lock(&bus->lock);
            stopping = bus->stopping;
            pthread_mutex_unlock(&bus->lock);
        }
        atomic_store(&bus->listening, false);
        pthread_mutex_lock(&bus->lock);
        bus->subscriber_fd = -1;
        bus->stats.connected = false;
        pthread_mutex_unlock(&bus->lock);
        redisFree(c);
    }
    return NULL;
}

/* ---- life ---------------------------------------------------------------------- */

cache_bus *cache_bus_start(const char *host, int port, const char *channel, int timeout_ms, uint64_t generation_ttl_ms,
                           const cache_bus_handlers *handlers)
{
    cache_bus *bus = calloc(1, sizeof(*bus));
    if (bus == NULL)
        return NULL;
    snprintf(bus->host, sizeof(bus->host), "%s", host);
    snprintf(bus->channel, sizeof(bus->channel), "%s", channel);
    bus->port = port;
    snprintf(bus->generation_ttl_ms, sizeof(bus->generation_ttl_ms), "%llu", (unsigned long long)generation_ttl_ms);
    bus->timeout = (struct timeval){timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    bus->handlers = *handlers;
    bus->subscriber_fd = -1;
    uint64_t id = now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)bus;
    snprintf(bus->instance, sizeof(bus->instance), "%016llx", (unsigned long long)id);
    pthread_mutex_init(&bus->lock, NULL);
    pthread_cond_init(&bus->wake, NULL);
    pthread_cond_init(&bus->acked, NULL);
    pthread_create(&bus->publisher, NULL, publisher_main, bus);
    pthread_create(&bus->subscriber, NULL, subscriber_main, bus);
    return bus;
}

void cache_bus_get_stats(cache_bus *bus, cache_bus_stats *out)
{
    double lags[LAG_SAMPLES];
    pthread_mutex_lock(&bus->lock);
    *out = bus->stats;
    out->reset_owed = bus->resets_wanted != bus->resets_sent;
    size_t n = bus->stats.lag_samples < LAG_SAMPLES ? (size_t)bus->stats.lag_samples : LAG_SAMPLES;
    memcpy(lags, bus->lags, n * sizeof(double));
    pthread_mutex_unlock(&bus->lock);
    if (n == 0)
        return;
    /* insertion sort: at most 4096 samples, read rarely */
    for (size_t i = 1; i < n; i++) {
        double v = lags[i];
        size_t k = i;
        while (k > 0 && lags[k - 1] > v) {
            lags[k] = lags[k - 1];
            k--;
        }
        lags[k] = v;
    }
    out->lag_p50_ms = lags[(n - 1) / 2];
    out->lag_p99_ms = lags[(n - 1) * 99 / 100];
    out->lag_max_ms = lags[n - 1];
}

void cache_bus_stop(cache_bus **busp)
{
    cache_bus *bus = *busp;
    *busp = NULL;
    if (bus == NULL)
        return;
    pthread_mutex_lock(&bus->lock);
    bus->stopping = true;
    if (bus->subscriber_fd >= 0)
        shutdown(bus->subscriber_fd, SHUT_RDWR);
    pthread_cond_broadcast(&bus->wake);
    pthread_cond_broadcast(&bus->acked);
    pthread_mutex_unlock(&bus->lock);
    pthread_join(bus->publisher, NULL);
    pthread_join(bus->subscriber, NULL);
    while (bus->head != NULL) {
        bus_message *m = bus->head;
        bus->head = m->next;
        free(m);
    }
    pthread_mutex_destroy(&bus->lock);
    pthread_cond_destroy(&bus->wake);
    pthread_cond_destroy(&bus->acked);
    free(bus);
}

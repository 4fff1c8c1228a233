/*
 * config.c — the settings table and its three sources (see config.h).
 *
 * Like nginx's directive tables, each row says where a value lives
 * (offsetof into strata_config), how to parse and bound it, and how to name
 * it in each source. Adding a setting is adding a row; parsing, help, error
 * messages and check-config follow from the table.
 *
 * The INI parser (libinih) cuts lines at 200 characters; rather than let a
 * long value be silently truncated, the file is pre-scanned and a long line
 * is reported with its number.
 */
#include "config/config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/db_url.h"

typedef enum setting_type {
    SETTING_STRING,
    SETTING_INT,
    SETTING_INT64,
    SETTING_BOOL,
    SETTING_LOG_LEVEL,
    SETTING_DOUBLE
} setting_type;

typedef struct setting {
    const char *key;  /* INI "section.name" */
    const char *flag; /* without "--" */
    const char *env;
    setting_type type;
    size_t offset;
    size_t size; /* for strings: the buffer size */
    int64_t min, max;
    const char *default_value;
    bool reloadable;
    const char *help;
} setting;

#define FIELD(name) offsetof(strata_config, name), sizeof(((strata_config *)0)->name)

/* A number with a fraction (ratios, budgets), bounded by the integers lo..hi. */
#define DOUBLE_ROW(key, flag, env, name, lo, hi, def, help)                                                            \
    {                                                                                                                  \
        key, flag, env, SETTING_DOUBLE, FIELD(name), lo, hi, def, false, help                                          \
    }

/* The three lifetimes of one cache class (see config.h), at its index in
 * cache_class[]: the order content.h's CACHE_CLASS_* names. */
#define CLASS_ROWS(name, NAME, index, ttl, swr, grace)                                                                 \
    {"cache." name "_ttl_s",                                                                                           \
     "cache-" name "-ttl-s",                                                                                           \
     "STRATA_CACHE_" #NAME "_TTL_S",                                                                                   \
     SETTING_INT,                                                                                                      \
     FIELD(cache_class[index].ttl_s),                                                                                  \
     0,                                                                                                                \
     31536000,                                                                                                         \
     ttl,                                                                                                              \
     false,                                                                                                            \
     "seconds a cached " name " response stays fresh"},                                                                \
        {"cache." name "_swr_s",                                                                                       \
         "cache-" name "-swr-s",                                                                                       \
         "STRATA_CACHE_" #NAME "_SWR_S",                                                                               \
         SETTING_INT,                                                                                                  \
         FIELD(cache_class[index].swr_s),                                                                              \
         0,                                                                                                            \
         31536000,                                                                                                     \
         swr,                                                                                                          \
         false,                                                                                                        \
         "seconds it may then be served stale while one refresh runs"},                                                \
    {                                                                                                                  \
        "cache." name "_grace_s", "cache-" name "-grace-s", "STRATA_CACHE_" #NAME "_GRACE_S", SETTING_INT,             \
            FIELD(cache_class[index].grace_s), 0, 31536000, grace, false,                                              \
            "seconds more it is kept to serve when the database fails"                                                 \
    }

static const setting settings[] = {
    {"server.listen", "listen", "STRATA_LISTEN", SETTING_STRING, FIELD(listen), 0, 0, "127.0.0.1:8080", false,
     "address and port to serve on (ADDR:PORT, [V6ADDR]:PORT)"},
    {"server.threads", "threads", "STRATA_THREADS", SETTING_INT, FIELD(threads), 0, 256, "0", false,
     "event-loop threads (0 = one per core)"},
    {"server.workers", "workers", "STRATA_WORKERS", SETTING_INT, FIELD(workers), 0, 256, "0", false,
     "database worker threads, one connection each (0 = 4 on SQLite, 4 per CPU and at least 8 on PostgreSQL)"},
    {"server.http2", "http2", "STRATA_HTTP2", SETTING_BOOL, FIELD(http2), 0, 1, "false", false,
     "accept cleartext HTTP/2 (h2c upgrade and prior knowledge)"},
    {"server.http2_max_resets", "http2-max-resets", "STRATA_HTTP2_MAX_RESETS", SETTING_INT, FIELD(http2_max_resets), 1,
     1000000, "100", false,
     "HTTP/2: streams a connection may reset before their responses per window; more closes it (GOAWAY)"},
    {"server.http2_reset_window_ms", "http2-reset-window-ms", "STRATA_HTTP2_RESET_WINDOW_MS", SETTING_INT,
     FIELD(http2_reset_window_ms), 100, 3600000, "10000", false,
     "HTTP/2: the window server.http2_max_resets counts in"},
    {"server.max_body_bytes", "max-body-bytes", "STRATA_MAX_BODY_BYTES", SETTING_INT64, FIELD(max_body_bytes), 1024,
     1073741824, "1048576", false, "largest request body (413 above)"},
    {"server.max_header_bytes", "max-header-bytes", "STRATA_MAX_HEADER_BYTES", SETTING_INT64, FIELD(max_header_bytes),
     1024, 1048576, "16384", true, "largest total of request headers (431 above)"},
    {"server.max_connections", "max-connections", "STRATA_MAX_CONNECTIONS", SETTING_INT, FIELD(max_connections), 0,
     1000000, "0", false,
     "open client connections in total, more are closed at accept (0 = 10000, or fewer if the open-file limit "
     "leaves fewer after 64 for the server's own files)"},
    {"server.max_connections_per_client", "max-connections-per-client", "STRATA_MAX_CONNECTIONS_PER_CLIENT",
     SETTING_INT, FIELD(max_connections_per_client), 0, 1000000, "256", false,
     "open connections from one address (IPv6: one /64); 0 = no per-client cap"},
    {"server.idle_timeout_ms", "idle-timeout-ms", "STRATA_IDLE_TIMEOUT_MS", SETTING_INT, FIELD(idle_timeout_ms), 100,
     3600000, "10000", false, "close a connection idle or sending a request slower than this"},
    {"server.shutdown_timeout_ms", "shutdown-timeout-ms", "STRATA_SHUTDOWN_TIMEOUT_MS", SETTING_INT,
     FIELD(shutdown_timeout_ms), 0, 600000, "10000", false, "on SIGTERM, wait this long for in-flight requests"},
    {"server.trusted_proxies", "trusted-proxies", "STRATA_TRUSTED_PROXIES", SETTING_STRING, FIELD(trusted_proxies), 0,
     0, "127.0.0.0/8,::1", false,
     "proxies whose X-Forwarded-For names the client (comma-separated addresses and ADDRESS/PREFIX)"},
    {"server.queue_max", "queue-max", "STRATA_QUEUE_MAX", SETTING_INT, FIELD(queue_max), 1, 1000000, "1024", false,
     "requests that may wait for a database worker, per lane (anonymous; editors); past it, shed at once"},
    {"server.queue_timeout_ms", "queue-timeout-ms", "STRATA_QUEUE_TIMEOUT_MS", SETTING_INT, FIELD(queue_timeout_ms), 10,
     600000, "1000", false, "an anonymous request that has not reached a worker in this long is answered stale or 503"},
    {"server.queue_target_ms", "queue-target-ms", "STRATA_QUEUE_TARGET_MS", SETTING_INT, FIELD(queue_target_ms), 0,
     600000, "50", false,
     "once the anonymous queue has not been empty for 100 ms, a request that waited longer than this is shed "
     "(0 = only the deadline)"},
    {"server.worker_nice", "worker-nice", "STRATA_WORKER_NICE", SETTING_INT, FIELD(worker_nice), -1, 19, "-1", false,
     "database workers run this many nice steps below the event loops, so cache hits never wait for CPU behind fills "
     "(-1 = 10 on SQLite, 0 on PostgreSQL)"},
    {"server.idle_fills", "idle-fills", "STRATA_IDLE_FILLS", SETTING_BOOL, FIELD(idle_fills), 0, 1, "false", false,
     "anonymous cache fills use only CPU the event loops leave (SCHED_IDLE): hits first, even over new content"},
    {"server.loop_reads", "loop-reads", "STRATA_LOOP_READS", SETTING_BOOL, FIELD(loop_reads), 0, 1, "true", false,
     "on SQLite, a bounded read (an item, a list page, the categories) that misses the cache runs on the event loop "
     "that received it, with the loop's own connection, while CPU is not scarce (no hand-off to a worker)"},
    DOUBLE_ROW("server.fill_cpu_share", "fill-cpu-share", "STRATA_FILL_CPU_SHARE", fill_cpu_share, 0, 1, "0.02",
               "while the machine has no idle CPU and the event loops are busy, anonymous cache fills may use this "
               "share of its CPUs (1 = no limit; 0 = none until the CPU is idle again)"),
    {"db.url", "db", "STRATA_DB", SETTING_STRING, FIELD(db_url), 0, 0, "data/strata.db", false,
     "the database: a SQLite file path, or a postgres:// (postgresql://) URL; its password never reaches the logs"},
    {"db.slow_query_ms", "db-slow-query-ms", "STRATA_DB_SLOW_QUERY_MS", SETTING_INT, FIELD(db_slow_query_ms), 0,
     3600000, "50", false,
     "a statement slower than this is logged (warn) with its plan and kept for GET /v1/slow-queries"},
    {"db.replicas", "db-replicas", "STRATA_DB_REPLICAS", SETTING_STRING, FIELD(db_replicas), 0, 0, "", false,
     "PostgreSQL streaming replicas for reads: comma-separated postgres:// URLs (at most 8; empty: none; only with a "
     "PostgreSQL db.url); their passwords never reach the logs"},
    {"db.replica_max_lag_ms", "db-replica-max-lag-ms", "STRATA_DB_REPLICA_MAX_LAG_MS", SETTING_INT,
     FIELD(db_replica_max_lag_ms), 0, 3600000, "1000", false,
     "a replica further behind the primary than this is not read from until it catches up"},
    {"db.replica_poll_ms", "db-replica-poll-ms", "STRATA_DB_REPLICA_POLL_MS", SETTING_INT, FIELD(db_replica_poll_ms), 5,
     60000, "20", false, "how often each replica's replayed WAL position (and the primary's) is read"},
    {"log.level", "log-level", "STRATA_LOG_LEVEL", SETTING_LOG_LEVEL, FIELD(log_level), 0, 0, "info", true,
     "debug | info | warn | error"},
    {"log.flush_ms", "log-flush-ms", "STRATA_LOG_FLUSH_MS", SETTING_INT, FIELD(log_flush_ms), 1, 60000, "200", false,
     "access-log lines are written in batches: each reaches stderr within this (docs/operations.md, Logs)"},
    {"log.buffer_bytes", "log-buffer-bytes", "STRATA_LOG_BUFFER_BYTES", SETTING_INT64, FIELD(log_buffer_bytes), 65536,
     1073741824, "4194304", false,
     "at most this many bytes of access-log lines wait for a slow sink; beyond it lines are dropped and counted"},
    {"log.sample_hits", "log-sample-hits", "STRATA_LOG_SAMPLE_HITS", SETTING_INT, FIELD(log_sample_hits), 1, 1000000,
     "1", false, "log one in N requests answered 2xx/304 from the cache; 1 logs every request"},
    {"cache.enabled", "cache", "STRATA_CACHE", SETTING_BOOL, FIELD(cache_enabled), 0, 1, "true", false,
     "cache finished responses of public reads in memory (L1)"},
    {"cache.l1", "cache-l1", "STRATA_CACHE_L1", SETTING_BOOL, FIELD(cache_l1), 0, 1, "true", false,
     "keep responses in this instance's memory; false sends every cached read to the L2 (for measuring it)"},
    {"cache.l1_max_bytes", "cache-l1-max-bytes", "STRATA_CACHE_L1_MAX_BYTES", SETTING_INT64, FIELD(cache_l1_max_bytes),
     1048576, 68719476736LL, "268435456", false, "memory budget of the L1 response cache"},
    {"cache.ttl_jitter_pct", "cache-ttl-jitter-pct", "STRATA_CACHE_TTL_JITTER_PCT", SETTING_INT,
     FIELD(cache_ttl_jitter_pct), 0, 50, "10", false,
     "shorten each entry's freshness by up to this percentage, at random"},
    {"cache.coalesce_timeout_ms", "cache-coalesce-timeout-ms", "STRATA_CACHE_COALESCE_TIMEOUT_MS", SETTING_INT,
     FIELD(cache_coalesce_timeout_ms), 10, 60000, "3000", false,
     "a request waiting for another's fill of the same key gives up and reads itself after this"},
    {"cache.browser_ttl_s", "cache-browser-ttl-s", "STRATA_CACHE_BROWSER_TTL_S", SETTING_INT,
     FIELD(cache_browser_ttl_s), 0, 86400, "5", false,
     "max-age sent to browsers (shared caches get the class TTL as s-maxage)"},
    {"cache.negative_ttl_s", "cache-negative-ttl-s", "STRATA_CACHE_NEGATIVE_TTL_S", SETTING_INT,
     FIELD(cache_negative_ttl_s), 0, 3600, "5", false,
     "seconds a negative answer (404, empty page of a filter matching nothing) is kept in L1 and L2; 0 = never"},
    {"cache.negative_max_bytes", "cache-negative-max-bytes", "STRATA_CACHE_NEGATIVE_MAX_BYTES", SETTING_INT64,
     FIELD(cache_negative_max_bytes), 0, 68719476736LL, "4194304", false,
     "memory budget of negative answers in the L1, apart from cache.l1_max_bytes"},
    {"cache.negative_l2_per_s", "cache-negative-l2-per-s", "STRATA_CACHE_NEGATIVE_L2_PER_S", SETTING_INT,
     FIELD(cache_negative_l2_per_s), 0, 1000000, "100", false,
     "negative answers an instance stores in Redis per second at most (the rest stay in its L1)"},
    {"cache.warm_items", "cache-warm-items", "STRATA_CACHE_WARM_ITEMS", SETTING_INT, FIELD(cache_warm_items), 0, 10000,
     "50", false, "items (most viewed first) filled at start and by POST /v1/{site}/cache/warm"},
    {"cache.objects", "cache-objects", "STRATA_CACHE_OBJECTS", SETTING_BOOL, FIELD(cache_objects), 0, 1, "true", false,
     "keep item rows rendered as JSON in memory, keyed by their version (the object cache, under the response cache)"},
    {"cache.objects_bytes", "cache-objects-bytes", "STRATA_CACHE_OBJECTS_BYTES", SETTING_INT64,
     FIELD(cache_objects_bytes), 1048576, 68719476736LL, "67108864", false, "memory budget of the object cache"},
    CLASS_ROWS("item", ITEM, 0, "60", "30", "600"),
    CLASS_ROWS("list", LIST, 1, "10", "10", "300"),
    CLASS_ROWS("popular", POPULAR, 2, "30", "30", "300"),
    CLASS_ROWS("categories", CATEGORIES, 3, "300", "60", "3600"),
    {"redis.url", "redis", "STRATA_REDIS", SETTING_STRING, FIELD(redis_url), 0, 0, "", false,
     "redis://HOST:PORT shared by the instances: invalidations reach every instance's cache"},
    {"redis.timeout_ms", "redis-timeout-ms", "STRATA_REDIS_TIMEOUT_MS", SETTING_INT, FIELD(redis_timeout_ms), 10, 60000,
     "100", false, "connect and command timeout for Redis (a read that times out goes to the database)"},
    {"redis.channel", "redis-channel", "STRATA_REDIS_CHANNEL", SETTING_STRING, FIELD(redis_channel), 0, 0,
     "strata:invalidate", false, "the pub/sub channels' prefix: invalidations of site S go on PREFIX:S"},
    {"redis.l2", "redis-l2", "STRATA_REDIS_L2", SETTING_BOOL, FIELD(redis_l2), 0, 1, "true", false,
     "with redis.url: keep responses in Redis too (L2), shared by the instances"},
    {"redis.pool_size", "redis-pool-size", "STRATA_REDIS_POOL_SIZE", SETTING_INT, FIELD(redis_pool_size), 1, 64, "1",
     false, "L2 connections per event loop (each pipelines its commands)"},
    {"redis.breaker_failures", "redis-breaker-failures", "STRATA_REDIS_BREAKER_FAILURES", SETTING_INT,
     FIELD(redis_breaker_failures), 1, 1000, "5", false,
     "L2 errors or timeouts in a row that open the circuit breaker (reads then skip Redis)"},
    {"redis.breaker_cooldown_ms", "redis-breaker-cooldown-ms", "STRATA_REDIS_BREAKER_COOLDOWN_MS", SETTING_INT,
     FIELD(redis_breaker_cooldown_ms), 10, 600000, "1000", false,
     "how long the breaker stays open before one probe tries Redis again"},
    {"views.flush_interval_ms", "views-flush-interval-ms", "STRATA_VIEWS_FLUSH_INTERVAL_MS", SETTING_INT,
     FIELD(views_flush_interval_ms), 50, 600000, "1000", false,
     "view beacons are counted in memory and written to the database this often"},
    {"views.client_rps", "views-client-rps", "STRATA_VIEWS_CLIENT_RPS", SETTING_INT, FIELD(views_client_rps), 0,
     1000000, "2", false, "view beacons per second one client address may send (429 above; 0 = no limit)"},
    {"views.client_burst", "views-client-burst", "STRATA_VIEWS_CLIENT_BURST", SETTING_INT, FIELD(views_client_burst), 0,
     1000000, "30", false, "… in bursts of up to this many"},
    {"views.dedupe_window_s", "views-dedupe-window-s", "STRATA_VIEWS_DEDUPE_WINDOW_S", SETTING_INT,
     FIELD(views_dedupe_window_s), 0, 86400, "1800", false,
     "a client's repeated views of one item count once in this many seconds (0 = every beacon counts)"},
    {"history.keyframe_interval", "history-keyframe-interval", "STRATA_HISTORY_KEYFRAME_INTERVAL", SETTING_INT,
     FIELD(history_keyframe_interval), 1, 65536, "256", false,
     "versions are stored as zstd skip-deltas; every Nth is a self-contained keyframe"},
    {"history.keep_latest", "history-keep-latest", "STRATA_HISTORY_KEEP_LATEST", SETTING_INT,
     FIELD(history_keep_latest), 1, 1000000, "50", false, "retention never removes an item's latest N versions"},
    {"history.draft_max_age_s", "history-draft-max-age-s", "STRATA_HISTORY_DRAFT_MAX_AGE_S", SETTING_INT64,
     FIELD(history_draft_max_age_s), 0, INT64_MAX / 1000, "0", false,
     "retention removes unpublished versions older than this (beyond keep_latest); 0 keeps every version"},
    {"history.autosave_max_age_s", "history-autosave-max-age-s", "STRATA_HISTORY_AUTOSAVE_MAX_AGE_S", SETTING_INT64,
     FIELD(history_autosave_max_age_s), 0, INT64_MAX / 1000, "2592000", false,
     "retention removes autosave slots not written for this long (default 30 days); 0 keeps them"},
    {"history.preview_max_ttl_s", "history-preview-max-ttl-s", "STRATA_HISTORY_PREVIEW_MAX_TTL_S", SETTING_INT,
     FIELD(history_preview_max_ttl_s), 1, 31536000, "2592000", false,
     "the longest lifetime a preview link may ask for (default 30 days)"},
    {"history.max_render_bytes", "history-max-render-bytes", "STRATA_HISTORY_MAX_RENDER_BYTES", SETTING_INT64,
     FIELD(history_max_render_bytes), 65536, 1073741824, "8388608", false,
     "largest diff or preview page rendered for one request or job; a larger one is refused (422)"},
    {"jobs.enabled", "jobs", "STRATA_JOBS", SETTING_BOOL, FIELD(jobs_enabled), 0, 1, "true", false,
     "run the background job queue in this instance (several instances share it safely)"},
    {"jobs.poll_interval_ms", "jobs-poll-interval-ms", "STRATA_JOBS_POLL_INTERVAL_MS", SETTING_INT,
     FIELD(jobs_poll_interval_ms), 10, 600000, "1000", false,
     "how often an idle job runner looks for due jobs (new jobs of this instance wake it at once)"},
    {"jobs.max_attempts", "jobs-max-attempts", "STRATA_JOBS_MAX_ATTEMPTS", SETTING_INT, FIELD(jobs_max_attempts), 1,
     100, "8", false, "a failing job is retried with exponential backoff, then kept as failed"},
    {"jobs.retry_base_ms", "jobs-retry-base-ms", "STRATA_JOBS_RETRY_BASE_MS", SETTING_INT, FIELD(jobs_retry_base_ms), 1,
     3600000, "1000", false, "the first retry's delay; each later one doubles it (capped at one hour)"},
    {"jobs.lease_ms", "jobs-lease-ms", "STRATA_JOBS_LEASE_MS", SETTING_INT, FIELD(jobs_lease_ms), 100, 86400000,
     "60000", false, "a claimed job is another instance's to retry only after this long without finishing"},
    {"jobs.schedule_retention", "jobs-schedule-retention", "STRATA_JOBS_SCHEDULE_RETENTION", SETTING_STRING,
     FIELD(jobs_schedule_retention), 0, 0, "17 3 * * *", false,
     "when version retention runs: 5-field cron (minute hour day month weekday) or @every N[s|m|h]; empty: never"},
    {"jobs.schedule_warm", "jobs-schedule-warm", "STRATA_JOBS_SCHEDULE_WARM", SETTING_STRING, FIELD(jobs_schedule_warm),
     0, 0, "@every 5m", false, "when the cache warming job runs (as above)"},
    {"jobs.schedule_rollup", "jobs-schedule-rollup", "STRATA_JOBS_SCHEDULE_ROLLUP", SETTING_STRING,
     FIELD(jobs_schedule_rollup), 0, 0, "7 * * * *", false,
     "when hourly view counts older than 8 days are rolled up into daily ones (as above)"},
    {"backup.schedule", "backup-schedule", "STRATA_BACKUP_SCHEDULE", SETTING_STRING, FIELD(backup_schedule), 0, 0, "",
     false, "when an online backup of the embedded database is made (as the jobs' schedules); empty: never"},
    {"backup.dir", "backup-dir", "STRATA_BACKUP_DIR", SETTING_STRING, FIELD(backup_dir), 0, 0, "backups", false,
     "where scheduled backups go, each strata-<UTC time>.db"},
    {"backup.keep", "backup-keep", "STRATA_BACKUP_KEEP", SETTING_INT, FIELD(backup_keep), 1, 10000, "7", false,
     "how many scheduled backups are kept: the oldest beyond it are removed after each new one"},
    {"cdn.purge_url", "cdn-purge-url", "STRATA_CDN_PURGE_URL", SETTING_STRING, FIELD(cdn_purge_url), 0, 0, "", false,
     "http://HOST:PORT/PATH of a Varnish or CDN purge endpoint told the surrogate keys of every write; empty: none"},
    {"cdn.purge_method", "cdn-purge-method", "STRATA_CDN_PURGE_METHOD", SETTING_STRING, FIELD(cdn_purge_method), 0, 0,
     "PURGE", false, "the HTTP method of a purge request"},
    {"cdn.repurge_ms", "cdn-repurge-ms", "STRATA_CDN_REPURGE_MS", SETTING_INT, FIELD(cdn_repurge_ms), 0, 60000, "2000",
     false,
     "each purge is sent again this much later: another instance that had not yet heard of the write may have handed "
     "the CDN the old copy after the first one (0: once only)"},
    {"cdn.purge_header", "cdn-purge-header", "STRATA_CDN_PURGE_HEADER", SETTING_STRING, FIELD(cdn_purge_header), 0, 0,
     "Surrogate-Key", false, "the header that carries the space-separated keys of a purge request"},
    {"debug.fault_injection", "debug-fault-injection", "STRATA_DEBUG_FAULT_INJECTION", SETTING_BOOL,
     FIELD(debug_fault_injection), 0, 1, "false", false,
     "allow POST /v1/debug/faults (admin) to make the database fail, for drills and tests"},
    {"metrics.enabled", "metrics-enabled", "STRATA_METRICS_ENABLED", SETTING_BOOL, FIELD(metrics_enabled), 0, 1, "true",
     false, "record request, database and pool metrics (false: nothing is recorded, for measuring their cost)"},
    {"metrics.token_required", "metrics-token-required", "STRATA_METRICS_TOKEN_REQUIRED", SETTING_BOOL,
     FIELD(metrics_token_required), 0, 1, "false", false, "GET /metrics needs an admin token (else it is public)"},
    {"metrics.public_site_labels", "metrics-public-site-labels", "STRATA_METRICS_PUBLIC_SITE_LABELS", SETTING_BOOL,
     FIELD(metrics_public_site_labels), 0, 1, "false", false,
     "a public (tokenless) /metrics shows per-site samples, naming every site; false sums them as site=\"_all\""},
    {"limits.client_rps", "limits-client-rps", "STRATA_LIMITS_CLIENT_RPS", SETTING_INT, FIELD(limits_client_rps), 0,
     1000000, "100", false, "requests per second to /v1/ without a token, per client address (429 above; 0 = off)"},
    {"limits.client_burst", "limits-client-burst", "STRATA_LIMITS_CLIENT_BURST", SETTING_INT,
     FIELD(limits_client_burst), 0, 1000000, "400", false, "… in bursts of up to this many"},
    {"limits.read_rps", "limits-read-rps", "STRATA_LIMITS_READ_RPS", SETTING_INT, FIELD(limits_read_rps), 0, 1000000,
     "500", false, "requests per second of one read token (0 = off)"},
    {"limits.read_burst", "limits-read-burst", "STRATA_LIMITS_READ_BURST", SETTING_INT, FIELD(limits_read_burst), 0,
     1000000, "2000", false, "… in bursts of up to this many"},
    {"limits.write_rps", "limits-write-rps", "STRATA_LIMITS_WRITE_RPS", SETTING_INT, FIELD(limits_write_rps), 0,
     1000000, "200", false, "requests per second of one write token (0 = off)"},
    {"limits.write_burst", "limits-write-burst", "STRATA_LIMITS_WRITE_BURST", SETTING_INT, FIELD(limits_write_burst), 0,
     1000000, "2000", false, "… in bursts of up to this many"},
    {"limits.admin_rps", "limits-admin-rps", "STRATA_LIMITS_ADMIN_RPS", SETTING_INT, FIELD(limits_admin_rps), 0,
     1000000, "500", false, "requests per second of one admin token (0 = off)"},
    {"limits.admin_burst", "limits-admin-burst", "STRATA_LIMITS_ADMIN_BURST", SETTING_INT, FIELD(limits_admin_burst), 0,
     1000000, "2000", false, "… in bursts of up to this many"},
    DOUBLE_ROW("budget.api_p95_ms", "budget-api-p95-ms", "STRATA_BUDGET_API_P95_MS", budget_api_p95_ms, 0, 3600000, "0",
               "alert when the p95 of request time, every route together, is above this (ms; 0 = no budget)"),
    {"cors.origins", "cors-origins", "STRATA_CORS_ORIGINS", SETTING_STRING, FIELD(cors_origins), 0, 0, "", false,
     "which browser origins may call each site: SITE=ORIGIN ORIGIN…;SITE=* (any origin); * as SITE: every other site; "
     "empty: no cross-origin access"},
    {"cors.max_age_s", "cors-max-age-s", "STRATA_CORS_MAX_AGE_S", SETTING_INT, FIELD(cors_max_age_s), 0, 86400, "7200",
     false, "how long a browser may keep a preflight's answer (Access-Control-Max-Age; Chromium caps it at 7200)"},
    {"budget.api_p95_routes", "budget-api-p95-routes", "STRATA_BUDGET_API_P95_ROUTES", SETTING_STRING,
     FIELD(budget_api_p95_routes), 0, 0, "", false,
     "per-route p95 budgets: PATTERN=MS,PATTERN=MS (\"/v1/:site/content=50\"); every method of the pattern"},
    DOUBLE_ROW("budget.error_rate", "budget-error-rate", "STRATA_BUDGET_ERROR_RATE", budget_error_rate, 0, 1, "0",
               "alert when the share of 5xx responses is above this (0..1; 0 = no budget)"),
    DOUBLE_ROW("budget.db_query_ms", "budget-db-query-ms", "STRATA_BUDGET_DB_QUERY_MS", budget_db_query_ms, 0, 3600000,
               "0", "alert when the mean database statement time is above this (ms; 0 = no budget)"),
    DOUBLE_ROW("budget.replica_lag_ms", "budget-replica-lag-ms", "STRATA_BUDGET_REPLICA_LAG_MS", budget_replica_lag_ms,
               0, 3600000, "0",
               "alert when the most lagging replica (db.replicas) is further behind than this (ms; 0 = no budget)"),
    DOUBLE_ROW("budget.hit_ratio_min", "budget-hit-ratio-min", "STRATA_BUDGET_HIT_RATIO_MIN", budget_hit_ratio_min, 0,
               1, "0", "alert when the response cache's hit ratio is below this (0..1; 0 = no budget)"),
    {"budget.memory_mb", "budget-memory-mb", "STRATA_BUDGET_MEMORY_MB", SETTING_INT64, FIELD(budget_memory_mb), 0,
     16777216, "0", false, "alert when the resident memory is above this (MB; 0 = no budget)"},
    DOUBLE_ROW("budget.lcp_p75_ms", "budget-lcp-p75-ms", "STRATA_BUDGET_LCP_P75_MS", budget_lcp_p75_ms, 0, 600000, "0",
               "alert when the p75 of browsers' Largest Contentful Paint is above this (ms; 0 = no budget)"),
    DOUBLE_ROW("budget.inp_p75_ms", "budget-inp-p75-ms", "STRATA_BUDGET_INP_P75_MS", budget_inp_p75_ms, 0, 600000, "0",
               "alert when the p75 of browsers' Interaction to Next Paint is above this (ms; 0 = no budget)"),
    DOUBLE_ROW("budget.cls_p75", "budget-cls-p75", "STRATA_BUDGET_CLS_P75", budget_cls_p75, 0, 100, "0",
               "alert when the p75 of browsers' Cumulative Layout Shift is above this (0 = no budget)"),
    DOUBLE_ROW("budget.shed_rate", "budget-shed-rate", "STRATA_BUDGET_SHED_RATE", budget_shed_rate, 0, 1, "0",
               "alert when the share of requests shed under overload (stale or 503) is above this "
               "(0..1; 0 = no budget)"),
    {"alerts.interval_ms", "alerts-interval-ms", "STRATA_ALERTS_INTERVAL_MS", SETTING_INT, FIELD(alerts_interval_ms),
     10, 600000, "1000", false, "how often the budgets are evaluated"},
    {"alerts.window_s", "alerts-window-s", "STRATA_ALERTS_WINDOW_S", SETTING_INT, FIELD(alerts_window_s), 1, 86400,
     "60", false, "the sliding window each evaluation measures over"},
    {"alerts.raise_after", "alerts-raise-after", "STRATA_ALERTS_RAISE_AFTER", SETTING_INT, FIELD(alerts_raise_after), 1,
     10000, "3", false, "evaluations in a row over budget that raise an alert"},
    {"alerts.clear_after", "alerts-clear-after", "STRATA_ALERTS_CLEAR_AFTER", SETTING_INT, FIELD(alerts_clear_after), 1,
     10000, "5", false, "evaluations in a row clearly within budget that clear it"},
    DOUBLE_ROW("alerts.clear_margin", "alerts-clear-margin", "STRATA_ALERTS_CLEAR_MARGIN", alerts_clear_margin, 0, 1,
               "0.1", "clearly within: below budget × (1 − margin) (a floor: margin × the way to 1 above it)"),
    {"alerts.min_requests", "alerts-min-requests", "STRATA_ALERTS_MIN_REQUESTS", SETTING_INT,
     FIELD(alerts_min_requests), 1, 1000000, "10", false,
     "fewer requests (lookups, statements) in the window is no data: it neither raises nor clears"},
    {"alerts.webhook_url", "alerts-webhook-url", "STRATA_ALERTS_WEBHOOK_URL", SETTING_STRING, FIELD(alerts_webhook_url),
     0, 0, "", false, "http://HOST:PORT/PATH told each raise and clear as JSON (a queued job, retried); empty: none"},
};

#define SETTING_COUNT (sizeof(settings) / sizeof(settings[0]))

/* Keys renamed since a release, so files written for the old name keep
 * working: the old name is read as the new one. */
static const struct {
    const char *old, *now;
} renamed_keys[] = {
    {"db.path", "db.url"}, /* a URL since PostgreSQL (issue 12) */
};

static const setting *setting_by_key(const char *key)
{
    for (size_t i = 0; i < sizeof(renamed_keys) / sizeof(renamed_keys[0]); i++)
        if (strcmp(key, renamed_keys[i].old) == 0)
            key = renamed_keys[i].now;
    for (size_t i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static const setting *setting_by_flag(const char *flag)
{
    for (size_t i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings[i].flag, flag) == 0)
            return &settings[i];
    return NULL;
}

bool config_is_flag(const char *flag)
{
    return strcmp(flag, "config") == 0 || setting_by_flag(flag) != NULL;
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Parses value into the setting's field. `source` names where the value came
 * from, for the error message. */
static int setting_apply(strata_config *cfg, const setting *s, const char *value, const char *source,
                         char err[CONFIG_ERR_MAX])
{
    char *field = (char *)cfg + s->offset;
    switch (s->type) {
    case SETTING_STRING:
        if (strlen(value) >= s->size) {
            snprintf(err, CONFIG_ERR_MAX, "%s: value longer than %zu characters", source, s->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case SETTING_INT:
    case SETTING_INT64: {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || n < s->min || n > s->max) {
            snprintf(err, CONFIG_ERR_MAX, "%s: must be an integer in %lld..%lld, got '%s'", source, (long long)s->min,
                     (long long)s->max, value);
            return -1;
        }
        if (s->type == SETTING_INT)
            *(int *)field = (int)n;
        else
            *(int64_t *)field = n;
        return 0;
    }
    case SETTING_BOOL:
        if (parse_bool(value, (bool *)field) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s: must be true or false, got '%s'", source, value);
            return -1;
        }
        return 0;
    case SETTING_LOG_LEVEL:
        if (log_level_parse(value, (log_level *)field) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s: must be debug, info, warn or error, got '%s'", source, value);
            return -1;
        }
        return 0;
    case SETTING_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !(d >= (double)s->min && d <= (double)s->max)) {
            snprintf(err, CONFIG_ERR_MAX, "%s: must be a number in %lld..%lld, got '%s'", source, (long long)s->min,
                     (long long)s->max, value);
            return -1;
        }
        *(double *)field = d;
        return 0;
    }
    }
    return -1;
}

void config_defaults(strata_config *cfg)
{
    char err[CONFIG_ERR_MAX];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        int rc = setting_apply(cfg, &settings[i], settings[i].default_value, settings[i].key, err);
        (void)rc; /* the defaults are within their own bounds */
    }
}

/* ---- the INI file ---------------------------------------------------------- */

#define INI_LINE_LIMIT 200 /* libinih's INI_MAX_LINE, including the newline */

typedef struct file_load {
    strata_config *cfg;
    const char *path;
    bool only_reloadable;
    int lineno;
    int failed;
    char *err;
} file_load;

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    file_load *load = user;
    if (load->failed)
        return 0;
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", section, name);
    const setting *s = setting_by_key(key);
    if (s == NULL) {
        snprintf(load->err, CONFIG_ERR_MAX, "%s: unknown key '%s'", load->path, key);
        load->failed = 1;
        return 0;
    }
    if (load->only_reloadable && !s->reloadable)
        return 1;
    char source[CONFIG_ERR_MAX / 2];
    snprintf(source, sizeof(source), "%s: %s", load->path, key);
    if (setting_apply(load->cfg, s, value, source, load->err) != 0) {
        load->failed = 1;
        return 0;
    }
    return 1;
}

/* Reports the first line the INI parser would cut, with its number. */
static int check_line_lengths(const char *path, char err[CONFIG_ERR_MAX])
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, CONFIG_ERR_MAX, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int lineno = 1, length = 0, c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n') {
            lineno++;
            length = 0;
        } else if (++length >= INI_LINE_LIMIT - 1) {
            fclose(f);
            snprintf(err, CONFIG_ERR_MAX,
                     "%s: line %d is longer than %d characters, the INI parser's limit; shorten it", path, lineno,
                     INI_LINE_LIMIT - 2);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int load_file(strata_config *cfg, const char *path, bool only_reloadable, char err[CONFIG_ERR_MAX])
{
    if (check_line_lengths(path, err) != 0)
        return -1;
    file_load load = {.cfg = cfg, .path = path, .only_reloadable = only_reloadable, .err = err};
    int rc = ini_parse(path, on_ini_value, &load);
    if (load.failed)
        return -1;
    if (rc != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%s: line %d is not 'key = value', '[section]' or a ';' comment", path, rc);
        return -1;
    }
    return 0;
}

/* ---- environment and flags --------------------------------------------------- */

static int load_env(strata_config *cfg, bool only_reloadable, char err[CONFIG_ERR_MAX])
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const char *value = getenv(settings[i].env);
        if (value == NULL || (only_reloadable && !settings[i].reloadable))
            continue;
        if (setting_apply(cfg, &settings[i], value, settings[i].env, err) != 0)
            return -1;
    }
    return 0;
}

static int load_flags(strata_config *cfg, const char *const *names, const char *const *values, size_t count,
                      bool only_reloadable, char err[CONFIG_ERR_MAX])
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(names[i], "config") == 0)
            continue;
        const setting *s = setting_by_flag(names[i]);
        if (s == NULL) {
            snprintf(err, CONFIG_ERR_MAX, "unknown flag --%s", names[i]);
            return -1;
        }
        if (only_reloadable && !s->reloadable)
            continue;
        char source[80];
        snprintf(source, sizeof(source), "--%s", names[i]);
        if (setting_apply(cfg, s, values[i], source, err) != 0)
            return -1;
    }
    return 0;
}

static void resolve_config_path(strata_config *cfg, const char *const *names, const char *const *values, size_t count)
{
    const char *path = getenv("STRATA_CONFIG");
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], "config") == 0)
            path = values[i];
    if (path != NULL)
        snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
}

/* One URL of db.replicas, trimmed, into the next slot. */
static int replica_add(strata_config *cfg, const char *start, size_t len, char err[CONFIG_ERR_MAX])
{
    while (len > 0 && (*start == ' ' || *start == '\t'))
        start++, len--;
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len == 0)
        return 0;
    char *url = cfg->db_replica_url[cfg->db_replica_count];
    if (cfg->db_replica_count == CONFIG_REPLICAS_MAX || len >= sizeof(cfg->db_replica_url[0])) {
        snprintf(err, CONFIG_ERR_MAX, "db.replicas: at most %d URLs of fewer than %zu bytes each", CONFIG_REPLICAS_MAX,
                 sizeof(cfg->db_replica_url[0]));
        return -1;
    }
    memcpy(url, start, len);
    url[len] = '\0';
    char shown[sizeof(cfg->db_replica_url[0])];
    if (!db_url_is_postgres(url)) {
        snprintf(err, CONFIG_ERR_MAX, "db.replicas: '%s' is not a postgres:// or postgresql:// URL",
                 db_url_redact(url, shown, sizeof(shown)));
        return -1;
    }
    cfg->db_replica_count++;
    return 0;
}

/* db.replicas into db_replica_url[]: PostgreSQL URLs, only beside a
 * PostgreSQL primary (a SQLite file has no replicas to read). */
static int replicas_parse(strata_config *cfg, char err[CONFIG_ERR_MAX])
{
    cfg->db_replica_count = 0;
    for (const char *p = cfg->db_replicas; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (replica_add(cfg, p, len, err) != 0)
            return -1;
        p += len + (p[len] == ',');
    }
    if (cfg->db_replica_count > 0 && !db_url_is_postgres(cfg->db_url)) {
        snprintf(err, CONFIG_ERR_MAX,
                 "db.replicas: replicas are PostgreSQL streaming replicas and need a PostgreSQL db.url, not a SQLite "
                 "file");
        return -1;
    }
    return 0;
}

int config_load(strata_config *cfg, const char *const *flag_names, const char *const *flag_values, size_t flag_count,
                char err[CONFIG_ERR_MAX])
{
    resolve_config_path(cfg, flag_names, flag_values, flag_count);
    if (cfg->config_path[0] != '\0' && load_file(cfg, cfg->config_path, false, err) != 0)
        return -1;
    if (load_env(cfg, false, err) != 0 || load_flags(cfg, flag_names, flag_values, flag_count, false, err) != 0)
        return -1;
    if (cfg->redis_url[0] != '\0' && strncmp(cfg->redis_url, "redis://", 8) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "redis.url: must be redis://HOST:PORT, got '%s'", cfg->redis_url);
        return -1;
    }
    struct sockaddr_storage addr;
    unsigned addr_len;
    if (config_parse_listen(cfg->listen, &addr, &addr_len) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "server.listen: must be ADDR:PORT with a numeric address, got '%s'", cfg->listen);
        return -1;
    }
    db_url_redact(cfg->db_url, cfg->db_shown, sizeof(cfg->db_shown));
    return replicas_parse(cfg, err);
}

int config_reload(strata_config *cfg, const char *const *flag_names, const char *const *flag_values, size_t flag_count,
                  char err[CONFIG_ERR_MAX])
{
    strata_config next = *cfg;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (!settings[i].reloadable)
            continue;
        int rc = setting_apply(&next, &settings[i], settings[i].default_value, settings[i].key, err);
        (void)rc;
    }
    if (next.config_path[0] != '\0' && load_file(&next, next.config_path, true, err) != 0)
        return -1;
    if (load_env(&next, true, err) != 0 || load_flags(&next, flag_names, flag_values, flag_count, true, err) != 0)
        return -1;
    *cfg = next;
    return 0;
}

void config_print_help(void)
{
    printf("Configuration (flag, environment variable, INI key, default):\n");
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const setting *s = &settings[i];
        printf("  --%-22s %-28s %s (default %s)%s\n      %s\n", s->flag, s->env, s->key, s->default_value,
               s->reloadable ? ", reloaded on SIGHUP" : "", s->help);
    }
    printf("  --%-22s %-28s the INI file to read\n", "config FILE", "STRATA_CONFIG");
    printf("Precedence: flags over environment over the file over defaults.\n");
}

int config_thread_count(const strata_config *cfg)
{
    if (cfg->threads > 0)
        return cfg->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)(cores < 256 ? cores : 256) : 1;
}

/* SQLite's work is CPU in the worker itself, and writers queue on one lock:
 * a few workers keep the cores busy. A PostgreSQL worker mostly waits for
 * its answer on the network, so more of them are needed to keep the
 * server and the cores busy (measured: 4 workers left 18 % of 2 cores idle
 * and answered 9,750 misses/s; 8 answered 12,000; 16, 12,200). */
int config_worker_count(const strata_config *cfg)
{
    if (cfg->workers > 0)
        return cfg->workers;
    if (!db_url_is_postgres(cfg->db_url))
        return 4;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long n = cores > 0 ? cores * 4 : 8;
    return (int)(n < 8 ? 8 : n > 64 ? 64 : n);
}

/* On SQLite a fill's CPU is the worker's own, and running it 10 nice steps
 * down keeps the event loops' hits ahead of it. On PostgreSQL most of a
 * fill's CPU is spent in PostgreSQL's backends, at their own priority:
 * lowering the workers only makes every fill wait for its share of the
 * little CPU it needs behind them (measured, misses on 2 cores: 12,150
 * req/s at nice 10, 14,000 at nice 0). The loops' protection there is the
 * fill budget (server.fill_cpu_share, which counts strata's own share of a
 * fill) and the queue's deadlines. */
int config_worker_nice(const strata_config *cfg)
{
    if (cfg->worker_nice >= 0)
        return cfg->worker_nice;
    return db_url_is_postgres(cfg->db_url) ? 0 : 10;
}

int config_parse_listen(const char *listen, struct sockaddr_storage *addr, unsigned *addr_len)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon[1] == '\0')
        return -1;
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= sizeof(host))
        return -1;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    char *h = host;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        h = host + 1;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    if (getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &res) != 0)
        return -1;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

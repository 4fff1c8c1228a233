/*
 * config.h — strata's configuration: one table, three sources.
 *
 * Every setting is a row of a declarative table (config.c): its INI key
 * (`section.name`), its command-line flag, its STRATA_* environment
 * variable, its type, bounds and default, and whether SIGHUP may change it
 * in a running server. Sources apply in increasing precedence: defaults,
 * the INI file, the environment, the flags. Errors name the key and the
 * source ("STRATA_THREADS: must be an integer in 0..256").
 */
#ifndef STRATA_CONFIG_H
#define STRATA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

/* Data classes: each cached route belongs to one, and a class sets how
 * long its entries stay fresh, how long they may then be served stale while
 * one background refresh runs, and how long more they are kept to serve if
 * the database fails (fail-safe). What the classes are is the content
 * layer's business (content.h names them, routes.c gives each cached route
 * one); the configuration only parses their settings, cache.item_*,
 * cache.list_*, cache.popular_* and cache.categories_*, into a plain array
 * in that order, which the response cache indexes by a rule's data_class. */
#define CACHE_CLASS_COUNT 4

typedef struct cache_lifetimes {
    int ttl_s;
    int swr_s;
    int grace_s;
} cache_lifetimes;

/* At most this many entries in db.replicas. */
#define CONFIG_REPLICAS_MAX 8

typedef struct strata_config {
    char config_path[512]; /* "" when no file */
    /* [server] */
    char listen[128];
    int threads; /* 0 = one per core */
    int workers; /* database worker threads */
    bool http2;
    int http2_max_resets;      /* streams reset before a response, per connection and window */
    int http2_reset_window_ms; /* that window */
    int64_t max_body_bytes;
    int64_t max_header_bytes;
    int max_connections;            /* in total, more are closed at accept; 0 = from the open-file limit */
    int max_connections_per_client; /* per address (IPv6: per /64); 0 = no cap */
    int idle_timeout_ms;
    int shutdown_timeout_ms;
    char trusted_proxies[512]; /* addresses/CIDRs whose X-Forwarded-For is believed */
    int queue_max;             /* jobs waiting for a worker, per lane (load shedding) */
    int queue_timeout_ms;      /* how long an anonymous request may wait for a worker */
    int queue_target_ms;       /* …and, while the queue stands, how long it may have waited (CoDel) */
    int worker_nice;           /* workers' CPU priority below the event loops' */
    bool idle_fills;           /* anonymous fills' CPU work at SCHED_IDLE */
    bool loop_reads;           /* SQLite: bounded reads run on the event loops (server.loop_reads) */
    double fill_cpu_share;     /* anonymous fills' CPU while it is scarce (fill_budget.h) */
    /* [db] */
    char db_url[512];
    char db_shown[512];        /* db_url without its password: what logs and messages show (core/db_url.h) */
    int db_slow_query_ms;      /* a statement slower than this is logged with its plan */
    char db_replicas[2048];    /* db.replicas as given: comma-separated postgres URLs */
    int db_replica_max_lag_ms; /* a replica further behind is not read from */
    int db_replica_poll_ms;    /* how often the replicas' positions are read */
    /* db.replicas parsed by config_load: each URL (with its password; show
     * it only through db_url_redact) */
    int db_replica_count;
    char db_replica_url[CONFIG_REPLICAS_MAX][512];
    /* [log] */
    log_level log_level;
    int log_flush_ms;
    int64_t log_buffer_bytes;
    int log_sample_hits;
    /* [cache] */
    bool cache_enabled;
    bool cache_l1;
    int64_t cache_l1_max_bytes;
    int cache_ttl_jitter_pct;
    int cache_coalesce_timeout_ms;
    int cache_browser_ttl_s;
    int cache_warm_items;
    int cache_negative_ttl_s;         /* lifetime of negative answers (404, empty filtered pages) */
    int64_t cache_negative_max_bytes; /* their own L1 budget */
    int cache_negative_l2_per_s;      /* at most so many of them stored in the L2 a second */
    bool cache_objects;               /* the object cache: item rows by version (cache/objects.h) */
    int64_t cache_objects_bytes;      /* its memory budget */
    cache_lifetimes cache_class[CACHE_CLASS_COUNT];
    /* [redis] */
    char redis_url[256]; /* "" = no Redis: each instance's L1 stands alone */
    int redis_timeout_ms;
    char redis_channel[128];
    bool redis_l2;
    int redis_pool_size;
    int redis_breaker_failures;
    int redis_breaker_cooldown_ms;
    /* [views] */
    int views_flush_interval_ms;
    int views_client_rps; /* beacons per second per client (0 = no limit) */
    int views_client_burst;
    int views_dedupe_window_s; /* one client's views of one item count once per window (0 = every beacon) */
    /* [history] */
    int history_keyframe_interval;      /* versions per zstd keyframe group (skip-deltas in between) */
    int history_keep_latest;            /* retention never removes an item's latest N versions */
    int64_t history_draft_max_age_s;    /* older unpublished versions are removed; 0 = keep all */
    int64_t history_autosave_max_age_s; /* autosave slots untouched this long are removed; 0 = keep */
    int history_preview_max_ttl_s;
    int64_t history_max_render_bytes; /* a diff or preview page larger than this is refused, not built */
    /* [jobs] */
    bool jobs_enabled;
    int jobs_poll_interval_ms;
    int jobs_max_attempts;
    int jobs_retry_base_ms;
    int jobs_lease_ms;
    char jobs_schedule_retention[64]; /* cron-like schedule; "" = never */
    char jobs_schedule_warm[64];
    char jobs_schedule_rollup[64];
    char backup_schedule[64]; /* when the "backup" job runs (as the jobs' schedules); "" = never */
    char backup_dir[512];     /* where it writes strata-<UTC time>.db */
    int backup_keep;          /* how many of them it keeps */
    /* [cdn] */
    char cdn_purge_url[256]; /* "" = no CDN/Varnish to purge */
    char cdn_purge_method[16];
    char cdn_purge_header[64];
    int cdn_repurge_ms; /* a second purge of the same keys this much later (0: none) */
    /* [debug] */
    bool debug_fault_injection;
    /* [metrics] */
    bool metrics_enabled;
    bool metrics_token_required;     /* GET /metrics needs an admin token */
    bool metrics_public_site_labels; /* public /metrics names the sites */
    /* [limits] (token buckets, 0 = off; src/http/ratelimit.c) */
    int limits_client_rps; /* anonymous /v1/ requests per client address */
    int limits_client_burst;
    int limits_read_rps; /* per token, by role */
    int limits_read_burst;
    int limits_write_rps;
    int limits_write_burst;
    int limits_admin_rps;
    int limits_admin_burst;
    /* [budget] (0 = no budget; src/alerts) */
    double budget_api_p95_ms;
    char budget_api_p95_routes[1024]; /* "PATTERN=MS,…" */
    char cors_origins[2048];          /* "SITE=ORIGIN ORIGIN…;SITE=*" (http/cors.c) */
    int cors_max_age_s;               /* how long browsers may keep a preflight's answer */
    double budget_error_rate;
    double budget_db_query_ms;
    double budget_replica_lag_ms; /* the most lagging replica's lag, in ms */
    double budget_hit_ratio_min;
    int64_t budget_memory_mb;
    double budget_lcp_p75_ms;
    double budget_inp_p75_ms;
    double budget_cls_p75;
    double budget_shed_rate;
    /* [alerts] */
    int alerts_interval_ms;
    int alerts_window_s;
    int alerts_raise_after;
    int alerts_clear_after;
    double alerts_clear_margin;
    int alerts_min_requests;
    char alerts_webhook_url[256]; /* "" = no webhook */
} strata_config;

#define CONFIG_ERR_MAX 512

void config_defaults(strata_config *cfg);

/* True if `flag` (without the leading "--") is a configuration flag. */
bool config_is_flag(const char *flag);

/* Applies the sources in precedence order: the file (cfg->config_path, or
 * STRATA_CONFIG, when set), the environment, then the given flags (pairs of
 * name without "--" and value). 0, or -1 with err filled. */
int config_load(strata_config *cfg, const char *const *flag_names, const char *const *flag_values, size_t flag_count,
                char err[CONFIG_ERR_MAX]);

/* Re-reads the file for SIGHUP and applies only the reloadable keys (and
 * environment and flags again over them). Reports what changed in the log. */
int config_reload(strata_config *cfg, const char *const *flag_names, const char *const *flag_values, size_t flag_count,
                  char err[CONFIG_ERR_MAX]);

/* Prints every key with its flag, environment variable, default and help,
 * for --help and docs. */
void config_print_help(void);

struct sockaddr_storage;
/* Parses server.listen ("127.0.0.1:8080", "[::1]:8080", ":8080" for every
 * address) into a socket address. 0, or -1 if it is not ADDR:PORT. */
int config_parse_listen(const char *listen, struct sockaddr_storage *addr, unsigned *addr_len);

/* The number of event-loop threads to run (resolves 0 to the core count). */
int config_thread_count(const strata_config *cfg);
/* server.workers, or its default for the database (0: see config.c). */
int config_worker_count(const strata_config *cfg);
/* server.worker_nice, or its default for the database (-1: see config.c). */
int config_worker_nice(const strata_config *cfg);

#endif

/*
 * main.c — the strata command line.
 *
 *   strata serve | migrate | seed | copy | site create | token create |
 *          fields index|list|drop | check-config | version   (each with --help)
 *
 * Every command takes the configuration flags (config.c's table) besides
 * its own; a flag is `--name value` or `--name=value`. Exit codes: 0 done,
 * 1 a runtime failure (database, network), 2 a usage or configuration error.
 *
 * `serve` is the composition root (scripts/layers.txt): the layers know
 * only those below them, and this file wires them together. It creates
 * the metrics core (named by the content routes' patterns) and points the
 * store's statement observer and the metrics export's readers at their
 * sources, creates the response cache, gives the HTTP layer how a worker
 * opens and closes its store (and the content layer's per-worker state),
 * the periodic tasks and the background jobs, and disposes the cache
 * once the server has stopped.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alerts/alerts.h"
#include "config/config.h"
#include "content/content.h"
#include "core/db_url.h"
#include "core/heap.h"
#include "core/log.h"
#include "http/cors.h"
#include "http/http.h"
#include "http/ratelimit.h"
#include "http/response_cache.h"
#include "jobs/backups.h"
#include "jobs/jobs.h"
#include "jobs/webhooks.h"
#include "metrics/metrics.h"
#include "store/replicas.h"
#include "store/store.h"
#include "store/store_fields.h"

#define STRATA_VERSION "0.1.0"
#define MAX_ARGS 64

typedef struct command_line {
    const char *positional[MAX_ARGS];
    size_t positional_count;
    /* configuration flags, in order */
    const char *config_names[MAX_ARGS];
    const char *config_values[MAX_ARGS];
    size_t config_count;
    /* the command's own flags */
    const char *own_names[MAX_ARGS];
    const char *own_values[MAX_ARGS];
    size_t own_count;
    bool help;
} command_line;

static command_line cli; /* kept for SIGHUP reloads */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "strata: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(try: strata --help)\n");
    return 2;
}

/* Splits argv into positional words, configuration flags and the command's
 * own flags (those in `own`, a NULL-terminated list). */
static int parse_args(int argc, char **argv, const char *const *own)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cli.help = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (cli.positional_count == MAX_ARGS)
                return usage_error("too many arguments%s", "");
            cli.positional[cli.positional_count++] = arg;
            continue;
        }
        static char names[MAX_ARGS][64];
        const char *name = arg + 2, *value;
        const char *eq = strchr(name, '=');
        size_t slot = cli.config_count + cli.own_count;
        if (slot == MAX_ARGS)
            return usage_error("too many flags%s", "");
        if (eq != NULL) {
            snprintf(names[slot], sizeof(names[slot]), "%.*s", (int)(eq - name), name);
            name = names[slot];
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return usage_error("flag %s needs a value", arg);
        }
        bool is_own = false;
        for (size_t k = 0; own != NULL && own[k] != NULL; k++)
            is_own |= strcmp(own[k], name) == 0;
        if (is_own) {
            cli.own_names[cli.own_count] = name;
            cli.own_values[cli.own_count++] = value;
        } else if (config_is_flag(name)) {
            cli.config_names[cli.config_count] = name;
            cli.config_values[cli.config_count++] = value;
        } else {
            return usage_error("unknown flag --%s", name);
        }
    }
    return 0;
}

static const char *own_flag(const char *name)
{
    const char *value = NULL;
    for (size_t i = 0; i < cli.own_count; i++)
        if (strcmp(cli.own_names[i], name) == 0)
            value = cli.own_values[i];
    return value;
}

static int load_config(strata_config *cfg)
{
    char err[CONFIG_ERR_MAX];
    config_defaults(cfg);
    if (config_load(cfg, cli.config_names, cli.config_values, cli.config_count, err) != 0) {
        fprintf(stderr, "strata: configuration error: %s\n", err);
        return 2;
    }
    log_set_level(cfg->log_level);
    return 0;
}

/* The settings jobs and alerts read (schedules, the purge endpoint, route
 * budgets, the webhook) are checked apart from config.c's table; a bad one
 * is a configuration error all the same. */
static int configure_jobs(const strata_config *cfg)
{
    char err[CONFIG_ERR_MAX];
    if (jobs_configure(cfg, err, sizeof err) != 0 || backups_configure(cfg, err, sizeof err) != 0 ||
        ratelimit_configure(cfg, err) != 0 || cors_configure(cfg, err) != 0 ||
        alerts_configure(cfg, content_routes, content_route_count, err, sizeof err) != 0) {
        fprintf(stderr, "strata: configuration error: %s\n", err);
        return 2;
    }
    monitoring_alerts_register();
    return 0;
}

static int reload_config(strata_config *next, char err[CONFIG_ERR_MAX])
{
    return config_reload(next, cli.config_names, cli.config_values, cli.config_count, err);
}

/* Opens and migrates the database named by the configuration. */
static int open_store(const strata_config *cfg, store_t **store)
{
    int rc = store_open(cfg->db_url, store);
    int applied = 0;
    if (rc == STORE_OK)
        rc = store_migrate(*store, &applied);
    if (rc != STORE_OK) {
        fprintf(stderr, "strata: database %s: %s\n", cfg->db_shown,
                *store ? store_errmsg(*store) : store_status_name(rc));
        store_close(store);
        return 1;
    }
    if (applied > 0)
        log_event_str(LOG_INFO, "database migrated", "db", cfg->db_shown);
    return 0;
}

/* ---- serve: the composition root ------------------------------------------------ */

/* Each statement the store ran, into metrics: its time by its text, and a
 * slow one with its plan (BEGIN and COMMIT have none). */
static void statement_timed(const store_statement_timing *timing, void *arg)
{
    (void)arg;
    metrics_query(timing->sql, timing->nanos);
    if (timing->nanos < metrics_slow_query_ns())
        return;
    char plan[1024] = "";
    if (!timing->control)
        store_explain(timing->store, timing->sql, plan, sizeof plan);
    metrics_slow_query(timing->sql, timing->nanos, plan);
}

/* What the metrics export reads from the layers above it; `worker` is the
 * exporting handler's store. */
static json_t *metrics_sites(void *worker)
{
    json_t *sites = NULL;
    return store_site_list(worker, &sites) == STORE_OK ? sites : NULL;
}

static json_t *metrics_jobs(void *worker)
{
    return jobs_stats(worker);
}

static json_t *metrics_history(void *worker)
{
    return history_stats_json(worker);
}

static json_t *metrics_writes(void *worker)
{
    return store_writes_json(worker);
}

/* The metrics core, named by the content routes' patterns; the store's
 * timings and the export's readers pointed at their sources. 0 or -1. */
static int metrics_start(const strata_config *cfg)
{
    const char **patterns = calloc(content_route_count + 1, sizeof(*patterns));
    for (size_t i = 0; patterns != NULL && i < content_route_count; i++)
        patterns[i] = content_routes[i].pattern;
    int rc = patterns != NULL ? metrics_init(cfg, patterns, content_route_count) : -1;
    free(patterns);
    if (rc != 0)
        return -1;
    if (metrics_enabled())
        store_set_observer(statement_timed, NULL);
    metrics_set_sources(&(metrics_sources){metrics_sites, http_cache_stats, metrics_jobs, replicas_json,
                                           metrics_history, metrics_writes});
    return 0;
}

/* A worker's resource for its life: its own connection (SQLite's are
 * per-thread here) with the content layer's per-worker state loaded. */
static void *worker_open(void *arg)
{
    const strata_config *cfg = arg;
    store_t *store = NULL;
    int rc = store_open(cfg->db_url, &store);
    if (rc == STORE_OK && content_worker_init(store) != 0)
        rc = STORE_ERROR;
    if (rc != STORE_OK) {
        log_event_str(LOG_ERROR, "worker could not open the database", "error",
                      store != NULL ? store_errmsg(store) : store_status_name(rc));
        store_close(&store);
    }
    return store;
}

static void worker_close(void *worker, void *arg)
{
    (void)arg;
    store_t *store = worker;
    store_close(&store);
}

static void flush_views(void *worker)
{
    content_flush_views(worker);
}

static void tokens_flush_uses_on_worker(void *worker)
{
    tokens_flush_uses(worker);
}

/* ---- commands ------------------------------------------------------------------ */

/* The "warm" job: what the server does once at start, again on schedule. */
static int warm_job(store_t *store, const json_t *payload, char *err, size_t err_size)
{
    (void)payload, (void)err, (void)err_size;
    content_on_start(store);
    return 0;
}

static void serve_started(void *worker)
{
    store_t *store = worker;
    content_on_start(store);
    /* Versions an older binary stored uncompressed (none after the first
     * run): one job per start. Instances starting together may both run
     * it; a row is rewritten only while still plain, so that is harmless. */
    jobs_enqueue(store, "compress", NULL, 0, NULL);
    jobs_start();
    alerts_start();
}

/* Shutdown begins: background work stops before what it uses goes. */
static void serve_stopping(void)
{
    alerts_stop();
    jobs_stop();
}

/* Every connection is a descriptor, and the default soft limit (often
 * 1024) is far below what the hard limit allows: serve with the hard one. */
static void raise_open_file_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_event(LOG_WARN, "cannot raise the open-file limit to its hard limit");
        return;
    }
    log_line line;
    log_begin(&line, LOG_INFO, "open-file limit raised");
    log_int(&line, "from", (int64_t)was);
    log_int(&line, "to", rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur);
    log_end(&line);
}

/* The server, from its parts to its end (cmd_serve runs it inside the log
 * writer's life). */
static int serve(strata_config *cfg)
{
    raise_open_file_limit();
    content_init(cfg);
    jobs_register("warm", warm_job);
    history_jobs_register();
    schedules_jobs_register();
    webhooks_jobs_register();
    http_cache_watch(tokens_watch); /* a revoked token leaves every instance's memory with the bus */
    if (metrics_start(cfg) != 0 || rc_init(cfg, content_routes, content_route_count) != 0) {
        log_event(LOG_ERROR, "cannot start: the cache could not be created");
        return 1;
    }
    http_periodic tasks[] = {{cfg->views_flush_interval_ms, flush_views}, {1000, tokens_flush_uses_on_worker}};
    http_app app = {.routes = content_routes,
                    .route_count = content_route_count,
                    .worker_open = worker_open,
                    .worker_close = worker_close,
                    .worker_arg = cfg,
                    /* SQLite's reads never wait on its writer; PostgreSQL's
                     * wait on the network, which a loop must never do */
                    .reads_on_loops = cfg->loop_reads && !db_url_is_postgres(cfg->db_url),
                    .reload = reload_config,
                    .on_start = serve_started,
                    .on_stop = serve_stopping,
                    .periodic = tasks,
                    .periodic_count = 2};
    store_checkpointer_start(cfg->db_url); /* without it, commits checkpoint themselves */
    int rc = 1;
    if (replicas_start(cfg) == 0) { /* before the workers: their reads are routed from the first */
        rc = http_serve(cfg, &app);
        rc_dispose(); /* after the workers and loops that used it are gone */
        replicas_stop();
    } else {
        log_event(LOG_ERROR, "cannot start: the replica monitor could not be started");
    }
    store_checkpointer_stop();
    return rc;
}

static int cmd_serve(void)
{
    strata_config cfg;
    store_t *store = NULL;
    int rc = load_config(&cfg);
    if (rc != 0 || (rc = configure_jobs(&cfg)) != 0 || (rc = open_store(&cfg, &store)) != 0)
        return rc;
    store_close(&store);
    /* The access log is batched while the server runs (core/log.h); what
     * is buffered when it stops is written before the process ends. */
    if (log_writer_start(cfg.log_flush_ms, (size_t)cfg.log_buffer_bytes) != 0) {
        log_event(LOG_ERROR, "cannot start: the log writer thread could not be created");
        return 1;
    }
    rc = serve(&cfg);
    log_writer_stop();
    return rc;
}

static int cmd_migrate(void)
{
    strata_config cfg;
    store_t *store = NULL;
    int rc = load_config(&cfg);
    if (rc != 0 || (rc = open_store(&cfg, &store)) != 0)
        return rc;
    int version = 0;
    store_schema_version(store, &version);
    printf("database %s is at schema version %d\n", cfg.db_shown, version);
    store_close(&store);
    return 0;
}

/* One end of `strata copy`: opened, and migrated when asked (the
 * destination); what it is shown as, without its password. */
static int copy_end(const char *flag, const char *url, bool migrate, store_t **store, char shown[512])
{
    db_url_redact(url, shown, 512);
    int rc = store_open(url, store);
    if (rc == STORE_OK && migrate)
        rc = store_migrate(*store, NULL);
    if (rc != STORE_OK) {
        fprintf(stderr, "strata: --%s %s: %s\n", flag, shown, *store ? store_errmsg(*store) : store_errmsg(NULL));
        store_close(store);
        return 1;
    }
    return 0;
}

static int cmd_copy(void)
{
    const char *from_url = own_flag("from"), *to_url = own_flag("to");
    if (from_url == NULL || to_url == NULL)
        return usage_error("usage: strata copy --from DB --to DB%s", "");
    strata_config cfg;
    int rc = load_config(&cfg);
    if (rc != 0)
        return rc;
    store_t *from = NULL, *to = NULL;
    char from_shown[512], to_shown[512];
    if ((rc = copy_end("to", to_url, true, &to, to_shown)) != 0 ||
        (rc = copy_end("from", from_url, false, &from, from_shown)) != 0) {
        store_close(&to);
        return rc;
    }
    int from_version = 0, to_version = 0;
    store_schema_version(from, &from_version);
    store_schema_version(to, &to_version);
    store_copy_counts counts;
    if (from_version != to_version) {
        fprintf(
            stderr,
            "strata: --from %s is at schema version %d, this strata's is %d: run `strata migrate --db` on it first\n",
            from_shown, from_version, to_version);
        rc = 1;
    } else if (store_copy(from, to, &counts) != STORE_OK) {
        fprintf(stderr, "strata: copy failed, %s is unchanged: %s\n", to_shown, store_errmsg(from));
        rc = 1;
    } else {
        printf("copied %s into %s:", from_shown, to_shown);
        for (size_t i = 0; i < store_copy_table_count(); i++)
            printf("%s %lld %s", i ? "," : "", (long long)counts.rows[i], store_copy_table_name(i));
        printf("; %lld versions verified (read back, hash checked)\n", (long long)counts.versions_verified);
    }
    store_close(&from);
    store_close(&to);
    return rc;
}

/* ---- backups (SQLite; PostgreSQL has pg_basebackup and WAL archiving) ------------ */

static bool refused_on_postgres(const strata_config *cfg, const char *command)
{
    if (!db_url_is_postgres(cfg->db_url))
        return false;
    fprintf(stderr,
            "strata: %s is for the embedded database; back PostgreSQL up with pg_basebackup and WAL archiving "
            "(docs/operations.md, \"Backups\"), or export it with strata copy\n",
            command);
    return true;
}

/* Opens db (a file, or a PostgreSQL URL, shown without its password) and
 * checks it whole (store_verify), printing what it found. */
static int verify_file(const char *db)
{
    store_t *store = NULL;
    bool postgres = db_url_is_postgres(db), missing = !postgres && access(db, R_OK) != 0; /* store_open makes one */
    char shown[512];
    db_url_redact(db, shown, sizeof shown);
    if (missing || store_open(db, &store) != STORE_OK) {
        fprintf(stderr, "strata: cannot open %s: %s\n", shown, missing ? strerror(errno) : store_errmsg(NULL));
        store_close(&store);
        return 1;
    }
    store_verify_report report;
    int rc = store_verify(store, &report) == STORE_OK ? 0 : 1;
    if (rc != 0) {
        fprintf(stderr, "strata: %s does not verify: %s\n", shown, store_errmsg(store));
    } else {
        printf("%s verifies: schema %d,%s", shown, report.schema_version, postgres ? "" : " integrity ok,");
        for (size_t i = 0; i < store_copy_table_count(); i++)
            printf("%s %lld %s", i ? "," : "", (long long)report.rows[i], store_copy_table_name(i));
        printf("; %lld versions decoded, hashes match\n", (long long)report.versions_verified);
    }
    store_close(&store);
    return rc;
}

static int cmd_backup(void)
{
    const char *to = own_flag("to");
    if (to == NULL)
        return usage_error("usage: strata backup --to FILE%s", "");
    strata_config cfg;
    int rc = load_config(&cfg);
    if (rc != 0)
        return rc;
    if (refused_on_postgres(&cfg, "strata backup"))
        return 2;
    char err[512];
    if (store_backup_sqlite(cfg.db_url, to, err, sizeof err) != 0) {
        fprintf(stderr, "strata: backup of %s failed: %s\n", cfg.db_shown, err);
        return 1;
    }
    return verify_file(to);
}

static int cmd_verify(void)
{
    if (cli.positional_count != 2)
        return usage_error("usage: strata verify FILE%s", "");
    return verify_file(cli.positional[1]);
}

/* The database replaced by a verified backup. The server must be stopped:
 * the old database's WAL and shared-memory files go with it (a WAL left
 * beside the new file would be replayed into it). */
static int cmd_restore(void)
{
    const char *from = own_flag("from");
    if (from == NULL)
        return usage_error("usage: strata restore --from FILE [--force true]%s", "");
    strata_config cfg;
    int rc = load_config(&cfg);
    if (rc != 0)
        return rc;
    if (refused_on_postgres(&cfg, "strata restore"))
        return 2;
    if ((rc = verify_file(from)) != 0)
        return rc;
    bool force = own_flag("force") != NULL && strcmp(own_flag("force"), "true") == 0;
    if (access(cfg.db_url, F_OK) == 0 && !force) {
        fprintf(stderr, "strata: %s exists; stop strata and add --force true to replace it with %s\n", cfg.db_shown,
                from);
        return 1;
    }
    char err[512], side[4096];
    if (store_backup_sqlite(from, cfg.db_url, err, sizeof err) != 0) {
        fprintf(stderr, "strata: restore into %s failed, it is unchanged: %s\n", cfg.db_shown, err);
        return 1;
    }
    for (size_t i = 0; i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", cfg.db_url, i ? "-shm" : "-wal");
        unlink(side);
    }
    printf("restored %s from %s\n", cfg.db_shown, from);
    return 0;
}

static int parse_count(const char *flag, const char *text, int def, int max, int *out)
{
    if (text == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1 || v > max) {
        fprintf(stderr, "strata: --%s must be an integer in 1..%d\n", flag, max);
        return 2;
    }
    *out = (int)v;
    return 0;
}

/* The site id for name, creating the site if asked and absent. */
static int site_id_for(store_t *store, const char *name, bool create, int64_t *id)
{
    int rc = store_site_lookup(store, name, id);
    if (rc == STORE_NOT_FOUND && create)
        rc = store_site_create(store, name, id);
    if (rc != STORE_OK) {
        fprintf(stderr, "strata: site '%s': %s\n", name, rc == STORE_NOT_FOUND ? "no such site" : store_errmsg(store));
        return 1;
    }
    return 0;
}

static int cmd_seed(void)
{
    strata_config cfg;
    store_t *store = NULL;
    int items, versions, rc;
    if ((rc = parse_count("items", own_flag("items"), 300, 1000000, &items)) != 0 ||
        (rc = parse_count("versions", own_flag("versions"), 1, 100000, &versions)) != 0 ||
        (rc = load_config(&cfg)) != 0 || (rc = open_store(&cfg, &store)) != 0)
        return rc;
    const char *site = own_flag("site") ? own_flag("site") : "main";
    int64_t site_id;
    if ((rc = site_id_for(store, site, true, &site_id)) == 0) {
        rc = store_seed_demo(store, site_id, site, items, versions, 42);
        if (rc != STORE_OK) {
            fprintf(stderr, "strata: seeding failed: %s\n", store_errmsg(store));
            rc = 1;
        } else {
            printf("seeded %d items (%d versions each) into site '%s' of %s\n", items, versions, site, cfg.db_shown);
        }
    }
    store_close(&store);
    return rc;
}

static int cmd_site(void)
{
    if (cli.positional_count != 3 || strcmp(cli.positional[1], "create") != 0)
        return usage_error("usage: strata site create NAME%s", "");
    const char *name = cli.positional[2];
    strata_config cfg;
    store_t *store = NULL;
    int rc = load_config(&cfg);
    if (rc != 0 || (rc = open_store(&cfg, &store)) != 0)
        return rc;
    int64_t id;
    rc = STORE_ERROR;
    size_t len = strlen(name);
    bool valid = len > 0 && len <= 64;
    for (size_t i = 0; i < len && valid; i++)
        valid = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
                (i > 0 && (name[i] == '-' || name[i] == '_'));
    if (!valid) {
        fprintf(stderr, "strata: a site name is 1 to 64 characters of a-z, 0-9, '-' and '_'\n");
        store_close(&store);
        return 2;
    }
    rc = store_site_create(store, name, &id);
    if (rc == STORE_CONFLICT)
        fprintf(stderr, "strata: site '%s' already exists\n", name);
    else if (rc != STORE_OK)
        fprintf(stderr, "strata: %s\n", store_errmsg(store));
    else
        printf("created site '%s'\n", name);
    store_close(&store);
    return rc == STORE_OK ? 0 : 1;
}

static int token_create(store_t *store, int64_t site_id)
{
    const char *role_text = own_flag("role");
    const char *name = own_flag("name") ? own_flag("name") : "editor";
    store_role role;
    int days = 0;
    if (role_text == NULL)
        return usage_error("token create needs --role%s", "");
    if (strcmp(role_text, "read") == 0)
        role = ROLE_READ;
    else if (strcmp(role_text, "write") == 0)
        role = ROLE_WRITE;
    else if (strcmp(role_text, "admin") == 0)
        role = ROLE_ADMIN;
    else
        return usage_error("--role must be read, write or admin, not '%s'", role_text);
    if (strlen(name) == 0 || strlen(name) > 64)
        return usage_error("--name must be 1 to 64 characters%s", "");
    if (own_flag("expires-days") != NULL && parse_count("expires-days", own_flag("expires-days"), 0, 36500, &days) != 0)
        return 2;
    char text[CONTENT_TOKEN_TEXT_MAX];
    uint8_t hash[32];
    int64_t expires_at = days > 0 ? store_now_ms() + (int64_t)days * 86400000 : 0;
    if (content_token_generate(text, hash) != 0 ||
        store_token_create(store, site_id, role, name, hash, expires_at, NULL) != STORE_OK) {
        fprintf(stderr, "strata: could not create the token: %s\n", store_errmsg(store));
        return 1;
    }
    printf("%s\n", text);
    return 0;
}

static const char *json_text_or_dash(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "-";
}

static int token_list(store_t *store, int64_t site_id)
{
    json_t *tokens = NULL;
    if (store_token_list(store, site_id, &tokens) != STORE_OK) {
        fprintf(stderr, "strata: could not list the tokens: %s\n", store_errmsg(store));
        return 1;
    }
    printf("%-6s %-20s %-6s %-24s %-24s %-24s %s\n", "id", "name", "role", "created", "expires", "last used",
           "revoked");
    size_t i;
    json_t *t;
    json_array_foreach(tokens, i, t)
    {
        printf("%-6lld %-20s %-6s %-24s %-24s %-24s %s\n", (long long)json_integer_value(json_object_get(t, "id")),
               json_string_value(json_object_get(t, "name")), json_string_value(json_object_get(t, "role")),
               json_text_or_dash(json_object_get(t, "created_at")), json_text_or_dash(json_object_get(t, "expires_at")),
               json_text_or_dash(json_object_get(t, "last_used_at")),
               json_text_or_dash(json_object_get(t, "revoked_at")));
    }
    json_decref(tokens);
    return 0;
}

/* Revoked in the database at once; a running server that has the token in
 * its memory drops it within TOKENS_CACHE_TTL_MS (the admin route reaches
 * every instance at once, through the bus). */
static int token_revoke(store_t *store, int64_t site_id)
{
    int id = 0;
    if (own_flag("id") == NULL)
        return usage_error("token revoke needs --id (see strata token list)%s", "");
    if (parse_count("id", own_flag("id"), 0, INT_MAX, &id) != 0)
        return 2;
    int rc = store_token_revoke(store, site_id, id);
    if (rc != STORE_OK) {
        fprintf(stderr, "strata: %s\n", store_errmsg(store));
        return 1;
    }
    printf("revoked token %d\n", id);
    return 0;
}

static int cmd_token(void)
{
    static const char usage[] = "usage: strata token create|list|revoke --site S (see strata --help)%s";
    const char *verb = cli.positional_count == 2 ? cli.positional[1] : "";
    bool known = strcmp(verb, "create") == 0 || strcmp(verb, "list") == 0 || strcmp(verb, "revoke") == 0;
    const char *site = own_flag("site");
    if (!known)
        return usage_error(usage, "");
    if (site == NULL)
        return usage_error("token %s needs --site", verb);
    strata_config cfg;
    store_t *store = NULL;
    int rc = load_config(&cfg);
    if (rc != 0 || (rc = open_store(&cfg, &store)) != 0)
        return rc;
    int64_t site_id;
    if ((rc = site_id_for(store, site, false, &site_id)) == 0) {
        if (strcmp(verb, "create") == 0)
            rc = token_create(store, site_id);
        else if (strcmp(verb, "list") == 0)
            rc = token_list(store, site_id);
        else
            rc = token_revoke(store, site_id);
    }
    store_close(&store);
    return rc;
}

/* ---- fields: declared custom fields (store_fields.h) ------------------------------- */

/* A type as the API takes it: [a-z0-9][a-z0-9_-]{0,31}. */
static bool type_valid(const char *type)
{
    size_t len = strlen(type);
    bool valid = len > 0 && len <= 32;
    for (size_t i = 0; i < len && valid; i++)
        valid = (type[i] >= 'a' && type[i] <= 'z') || (type[i] >= '0' && type[i] <= '9') ||
                (i > 0 && (type[i] == '-' || type[i] == '_'));
    return valid;
}

static int fields_list(store_t *store, int64_t site_id)
{
    json_t *list = NULL;
    if (store_field_index_list(store, site_id, &list) != STORE_OK) {
        fprintf(stderr, "strata: could not list the fields: %s\n", store_errmsg(store));
        return 1;
    }
    printf("%-20s %-24s %-7s %-40s %s\n", "type", "field", "kind", "index", "created");
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        printf("%-20s %-24s %-7s %-40s %s\n", json_string_value(json_object_get(f, "type")),
               json_string_value(json_object_get(f, "field")), json_string_value(json_object_get(f, "kind")),
               json_string_value(json_object_get(f, "index")), json_text_or_dash(json_object_get(f, "created_at")));
    }
    json_decref(list);
    return 0;
}

/* index or drop: --type and --field, and --kind to index. */
static int fields_change(store_t *store, int64_t site_id, bool index)
{
    const char *type = own_flag("type"), *field = own_flag("field"), *kind_name = own_flag("kind");
    store_field_kind kind = FIELD_BOOL;
    if (type == NULL || field == NULL || (index && kind_name == NULL))
        return usage_error(index ? "fields index needs --type, --field and --kind%s"
                                 : "fields drop needs --type and "
                                   "--field%s",
                           "");
    if (!type_valid(type))
        return usage_error("--type '%s' must be 1 to 32 characters of a-z, 0-9, '-' and '_'", type);
    if (index && !store_field_kind_parse(kind_name, &kind))
        return usage_error("--kind must be bool, number or text, not '%s'", kind_name);
    int rc = index ? store_field_index_declare(store, site_id, type, field, kind)
                   : store_field_index_drop(store, site_id, type, field);
    if (rc != STORE_OK) {
        fprintf(stderr, "strata: %s\n", store_errmsg(store));
        return rc == STORE_INVALID || rc == STORE_CONFLICT ? 2 : 1;
    }
    if (index)
        printf("field '%s' of type '%s' is indexed as %s\n", field, type, kind_name);
    else
        printf("field '%s' of type '%s' is no longer indexed\n", field, type);
    return 0;
}

static int cmd_fields(void)
{
    const char *verb = cli.positional_count == 2 ? cli.positional[1] : "";
    bool known = strcmp(verb, "index") == 0 || strcmp(verb, "list") == 0 || strcmp(verb, "drop") == 0;
    const char *site = own_flag("site") ? own_flag("site") : "main";
    if (!known)
        return usage_error("usage: strata fields index|list|drop [--site S] (see strata fields --help)%s", "");
    strata_config cfg;
    store_t *store = NULL;
    int rc = load_config(&cfg);
    if (rc != 0 || (rc = open_store(&cfg, &store)) != 0)
        return rc;
    int64_t site_id;
    if ((rc = site_id_for(store, site, false, &site_id)) == 0)
        rc = strcmp(verb, "list") == 0 ? fields_list(store, site_id) : fields_change(store, site_id, verb[0] == 'i');
    store_close(&store);
    return rc;
}

static int cmd_check_config(void)
{
    strata_config cfg;
    int rc = load_config(&cfg);
    if (rc != 0 || (rc = configure_jobs(&cfg)) != 0)
        return rc;
    printf("configuration is valid%s%s\n", cfg.config_path[0] ? ": " : "", cfg.config_path);
    return 0;
}

/* ---- dispatch ----------------------------------------------------------------------- */

typedef struct command {
    const char *name;
    int (*run)(void);
    const char *const *own_flags;
    const char *usage;
} command;

static const char *const seed_flags[] = {"items", "versions", "site", NULL};
static const char *const token_flags[] = {"site", "role", "name", "expires-days", "id", NULL};
static const char *const copy_flags[] = {"from", "to", NULL};
static const char *const backup_flags[] = {"to", NULL};
static const char *const restore_flags[] = {"from", "force", NULL};
static const char *const fields_flags[] = {"site", "type", "field", "kind", NULL};

static int cmd_version(void)
{
    printf("strata %s\n", STRATA_VERSION);
    return 0;
}

static const command commands[] = {
    {"serve", cmd_serve, NULL,
     "strata serve [--config FILE] [--listen ADDR:PORT] [--db URL_OR_PATH] [--threads N]\n"
     "  Serve the API until SIGTERM (graceful) ; SIGHUP reloads log.level and\n"
     "  server.max_header_bytes. Migrates the database first."},
    {"migrate", cmd_migrate, NULL, "strata migrate [--db URL_OR_PATH]\n  Create or upgrade the database schema."},
    {"backup", cmd_backup, backup_flags,
     "strata backup --to FILE [--db PATH]\n"
     "  An online copy of the embedded database while strata serves (one consistent snapshot; writers\n"
     "  go on), written whole or not at all, then verified as strata verify does."},
    {"verify", cmd_verify, NULL,
     "strata verify FILE\n"
     "  Check a database or backup: SQLite's integrity check, the schema version, every table's rows\n"
     "  counted, every version decoded and its hash matched."},
    {"restore", cmd_restore, restore_flags,
     "strata restore --from FILE [--force true] [--db PATH]\n"
     "  Replace the (stopped) embedded database with a verified backup; --force true if it exists."},
    {"copy", cmd_copy, copy_flags,
     "strata copy --from DB --to DB\n"
     "  Copy every site, item, version, autosave, preview, token, category, job and view count\n"
     "  of one database into another, empty one (SQLite path or postgres:// URL, either way),\n"
     "  in one transaction, checking row counts and every version's hash."},
    {"seed", cmd_seed, seed_flags,
     "strata seed [--items N] [--versions M] [--site NAME] [--db URL_OR_PATH]\n"
     "  Add N demo articles (default 300) with M versions each to a site (default main,\n"
     "  created if absent)."},
    {"site", cmd_site, NULL, "strata site create NAME [--db URL_OR_PATH]\n  Create a site (a tenant namespace)."},
    {"token", cmd_token, token_flags,
     "strata token create --site S --role read|write|admin [--name NAME] [--expires-days N] [--db URL_OR_PATH]\n"
     "  Create an API token; it is printed once, only its hash is stored. NAME is\n"
     "  recorded as the author of what the token writes (default editor).\n"
     "strata token list --site S\n  The site's tokens: name, role, created, expires, last used, revoked.\n"
     "strata token revoke --site S --id N\n  Revoke a token (running servers drop it within 30 s; the admin route\n"
     "  DELETE /v1/{site}/tokens/{id} reaches every instance at once)."},
    {"fields", cmd_fields, fields_flags,
     "strata fields index --type T --field F --kind bool|number|text [--site S]\n"
     "  Declare a custom field of items of type T indexed, so lists may filter on it\n"
     "  (?type=T&fields.F=…): creates its index. At most 16 per site.\n"
     "strata fields list [--site S]\n  The site's declared fields.\n"
     "strata fields drop --type T --field F [--site S]\n  Drop a declaration (and its index when no other uses it).\n"
     "  A running server sees a change at once; its cached filtered lists expire with their\n"
     "  lifetime (the admin route /v1/{site}/field-indexes drops them at once)."},
    {"check-config", cmd_check_config, NULL,
     "strata check-config [--config FILE]\n  Validate the file, the environment and the flags; exit 2 naming a bad "
     "key."},
    {"version", cmd_version, NULL, "strata version\n  Print the version."},
};

static void print_help(const command *only)
{
    printf("strata %s — a content API server built for traffic spikes\n\nUsage:\n", STRATA_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (only == NULL || only == &commands[i])
            printf("  %s\n\n", commands[i].usage);
    config_print_help();
}

int main(int argc, char **argv)
{
    heap_init();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help(NULL);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        int rc = parse_args(argc - 1, argv + 1, commands[i].own_flags);
        if (cli.help) {
            print_help(&commands[i]);
            return 0;
        }
        return rc != 0 ? rc : commands[i].run();
    }
    return usage_error("unknown command '%s'", argv[1]);
}

/*
 * backups.c — the scheduled backup (see backups.h).
 *
 * Each run writes backup.dir/strata-YYYYMMDDTHHMMSSZ.db with the store's
 * online backup (store_backup_sqlite: one snapshot, whole or nothing), so
 * the names sort as their times; then it removes the oldest beyond
 * backup.keep. A failed backup removes nothing and is retried as any job
 * is. The schedule is one of the runner's (jobs.c): one job per tick for
 * every instance together.
 */
#include "jobs/backups.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/db_url.h"
#include "core/log.h"
#include "jobs/jobs.h"

#define BACKUP_PREFIX "strata-"
#define BACKUP_SUFFIX ".db"
#define BACKUPS_MAX 10000

static const strata_config *settings;

static bool is_backup_name(const char *name)
{
    size_t len = strlen(name), p = strlen(BACKUP_PREFIX), s = strlen(BACKUP_SUFFIX);
    return len > p + s && strncmp(name, BACKUP_PREFIX, p) == 0 && strcmp(name + len - s, BACKUP_SUFFIX) == 0;
}

static int name_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int backups_prune(const char *dir, int keep, int *removed)
{
    *removed = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    char **names = calloc(BACKUPS_MAX, sizeof *names);
    size_t n = 0;
    for (struct dirent *e; names != NULL && n < BACKUPS_MAX && (e = readdir(d)) != NULL;)
        if (is_backup_name(e->d_name) && (names[n] = strdup(e->d_name)) != NULL)
            n++;
    closedir(d);
    if (names == NULL)
        return -1;
    qsort(names, n, sizeof *names, name_order);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        *removed += unlink(path) == 0;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return 0;
}

static int backup_job(store_t *st, const json_t *payload, char *err, size_t err_size)
{
    (void)st, (void)payload;
    const char *dir = settings->backup_dir;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot make backup.dir %s: %s", dir, strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    struct tm utc;
    char stamp[32], path[4096];
    gmtime_r(&now, &utc);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    snprintf(path, sizeof path, "%s/" BACKUP_PREFIX "%s" BACKUP_SUFFIX, dir, stamp);
    if (store_backup_sqlite(settings->db_url, path, err, err_size) != 0)
        return -1;
    int removed = 0;
    backups_prune(dir, settings->backup_keep, &removed);
    log_line line;
    log_begin(&line, LOG_INFO, "backup made");
    log_str(&line, "file", path);
    log_int(&line, "removed", removed);
    log_end(&line);
    return 0;
}

int backups_configure(const strata_config *cfg, char *err, size_t err_size)
{
    settings = cfg;
    if (cfg->backup_schedule[0] != '\0' && db_url_is_postgres(cfg->db_url)) {
        snprintf(err, err_size,
                 "backup.schedule: scheduled backups are the embedded database's; back PostgreSQL up with "
                 "pg_basebackup and WAL archiving (docs/operations.md, \"Backups\")");
        return -1;
    }
    jobs_register("backup", backup_job);
    return 0;
}

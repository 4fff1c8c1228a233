/*
 * backups.h — the scheduled backup of the embedded database: the "backup"
 * job (backup.schedule, backup.dir, backup.keep).
 */
#ifndef STRATA_JOBS_BACKUPS_H
#define STRATA_JOBS_BACKUPS_H

#include <stddef.h>

#include "config/config.h"

/* Checks the backup settings against the database (a schedule on
 * PostgreSQL is a configuration error: its backups are pg_basebackup's)
 * and registers the "backup" kind. 0, or -1 with err naming the key.
 * After jobs_configure. */
int backups_configure(const strata_config *cfg, char *err, size_t err_size);

/* The backups of dir (strata-<UTC time>.db), oldest first, beyond keep
 * removed; *removed counts them. For the job and its test. */
int backups_prune(const char *dir, int keep, int *removed);

#endif

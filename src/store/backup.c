/*
 * backup.c — backups of the embedded database and checks of a database
 * whole (strata backup, verify, restore).
 *
 * A backup is SQLite's online backup API in one step: the source is read
 * within one read transaction, so the copy is one consistent snapshot,
 * and in WAL mode writers go on meanwhile (they only append to the WAL;
 * nothing waits for the copy). It is written to FILE.partial, which
 * SQLite syncs as it commits, then renamed into place and the directory
 * synced: FILE is a whole backup or absent, never half of one.
 *
 * A check (store_verify) reads what strata itself vouches for: SQLite's
 * integrity_check (on SQLite), the schema version (this binary's latest),
 * every table's rows counted (the tables strata copy moves), and every
 * version decoded and matched against its stored SHA-256.
 */
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_internal.h"

static int backup_fail(char *err, size_t size, const char *what, sqlite3 *db)
{
    snprintf(err, size, "%s: %s", what, db != NULL ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

/* The directory holding path, synced so that a rename in it lasts. */
static void directory_sync(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int backup_copy(sqlite3 *src, const char *partial, char *err, size_t err_size)
{
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(partial, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        backup_fail(err, err_size, "cannot create the backup file", dst);
        sqlite3_close(dst);
        return -1;
    }
    sqlite3_exec(dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int result = -1;
    if (b == NULL) {
        backup_fail(err, err_size, "cannot start the backup", dst);
    } else {
        rc = sqlite3_backup_step(b, -1); /* every page, one snapshot */
        int finished = sqlite3_backup_finish(b);
        if (rc != SQLITE_DONE || finished != SQLITE_OK)
            backup_fail(err, err_size, "the backup did not complete", dst);
        else
            result = 0;
    }
    if (sqlite3_close(dst) != SQLITE_OK && result == 0)
        result = backup_fail(err, err_size, "cannot close the backup file", NULL);
    return result;
}

int store_backup_sqlite(const char *from_path, const char *to_path, char *err, size_t err_size)
{
    char partial[4096];
    if (snprintf(partial, sizeof partial, "%s.partial", to_path) >= (int)sizeof partial) {
        snprintf(err, err_size, "the backup's path is too long");
        return -1;
    }
    sqlite3 *src = NULL;
    if (sqlite3_open_v2(from_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        backup_fail(err, err_size, "cannot open the database", src);
        sqlite3_close(src);
        return -1;
    }
    sqlite3_busy_timeout(src, 5000);
    unlink(partial); /* a partial file of an earlier, interrupted backup */
    int rc = backup_copy(src, partial, err, err_size);
    sqlite3_close(src);
    if (rc == 0 && rename(partial, to_path) != 0) {
        snprintf(err, err_size, "cannot move the backup into place: %m");
        rc = -1;
    }
    if (rc != 0) {
        unlink(partial);
        return -1;
    }
    directory_sync(to_path);
    return 0;
}

/* ---- checks -------------------------------------------------------------------------- */

static int integrity_check(store_t *st)
{
    if (strcmp(db_driver_of(st)->name, "sqlite") != 0)
        return STORE_OK; /* PostgreSQL checks its pages itself (data checksums) */
    db_query q;
    int status = db_query_start(st, "PRAGMA integrity_check", &q);
    if (status != STORE_OK)
        return status;
    char first[256] = "";
    if (db_next_row(&q) && db_column_text(&q, 0) != NULL)
        snprintf(first, sizeof first, "%s", db_column_text(&q, 0));
    status = db_query_end(&q, "checking the database's integrity");
    if (status == STORE_OK && strcmp(first, "ok") != 0)
        return db_fail(st, STORE_ERROR, "SQLite's integrity check failed: %s", first[0] ? first : "no answer");
    return status;
}

int store_verify(store_t *st, store_verify_report *report)
{
    db_clear_error(st);
    memset(report, 0, sizeof *report);
    int status = integrity_check(st);
    if (status == STORE_OK)
        status = store_schema_version(st, &report->schema_version);
    if (status == STORE_OK && report->schema_version != schema_latest(st))
        return db_fail(st, STORE_STATE, "the schema is at version %d, this strata's is %d", report->schema_version,
                       schema_latest(st));
    for (size_t i = 0; status == STORE_OK && i < store_copy_table_count(); i++)
        status = store_table_rows(st, store_copy_table_name(i), &report->rows[i]);
    if (status == STORE_OK)
        status = store_versions_verify(st, &report->versions_verified);
    return status;
}

/*
 * checkpoint.c — WAL checkpoints off the request path (the SQLite driver's).
 *
 * In WAL mode every commit appends pages to the -wal file, and a checkpoint
 * copies them back into the database file and fsyncs it. By default SQLite
 * runs that checkpoint inside whichever COMMIT pushes the WAL past 1,000
 * pages, so one write in a few hundred — an editor's save, an autosave —
 * pays for copying megabytes and an extra fsync: that request's latency is
 * the p99.
 *
 * Here every connection gets a WAL hook instead (installing one replaces
 * SQLite's automatic checkpoint). After a commit that leaves the WAL at
 * CHECKPOINT_PAGES or more, the hook wakes a thread of the server's own,
 * which runs a PASSIVE checkpoint on its own connection: it copies what no
 * reader still needs, never takes the writer's lock, and writers keep
 * appending meanwhile. Where no checkpointer runs (the CLI, unit tests), or
 * if the WAL grows past RUNAWAY_PAGES anyway, the committing connection
 * checkpoints itself, exactly as SQLite would have.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "store/db_sqlite.h"
#include "store/store.h"

enum { CHECKPOINT_PAGES = 1000, RUNAWAY_PAGES = 4000, IDLE_WAIT_MS = 1000 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stopping, due;
    sqlite3 *db;
} cp = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

int db_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)arg;
    if (pages < CHECKPOINT_PAGES)
        return SQLITE_OK;
    pthread_mutex_lock(&cp.lock);
    bool delegated = cp.running && pages < RUNAWAY_PAGES;
    if (delegated) {
        cp.due = true;
        pthread_cond_signal(&cp.wake);
    }
    pthread_mutex_unlock(&cp.lock);
    if (!delegated) /* what SQLite's own automatic checkpoint does; a failure only leaves the WAL longer */
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cp.lock);
    while (!cp.stopping) {
        if (!cp.due) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += IDLE_WAIT_MS / 1000;
            pthread_cond_timedwait(&cp.wake, &cp.lock, &until);
            continue;
        }
        cp.due = false;
        pthread_mutex_unlock(&cp.lock);
        int wal_pages = 0, copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(cp.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_event_str(LOG_WARN, "WAL checkpoint failed", "error", sqlite3_errmsg(cp.db));
        pthread_mutex_lock(&cp.lock);
    }
    pthread_mutex_unlock(&cp.lock);
    return NULL;
}

int store_checkpointer_start(const char *path)
{
    if (!db_sqlite_driver.accepts(path)) /* another engine checkpoints by itself */
        return STORE_OK;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 1000);
    if (rc != SQLITE_OK) {
        log_event_str(LOG_WARN, "no WAL checkpointer; commits checkpoint themselves", "error",
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return STORE_ERROR;
    }
    pthread_mutex_lock(&cp.lock);
    cp.db = db;
    cp.stopping = cp.due = false;
    cp.running = pthread_create(&cp.thread, NULL, checkpointer_main, NULL) == 0;
    pthread_mutex_unlock(&cp.lock);
    if (!cp.running) {
        sqlite3_close(db);
        cp.db = NULL;
        return STORE_ERROR;
    }
    return STORE_OK;
}

void store_checkpointer_stop(void)
{
    pthread_mutex_lock(&cp.lock);
    bool running = cp.running;
    cp.stopping = true;
    cp.running = false; /* commits from here on checkpoint themselves */
    pthread_cond_signal(&cp.wake);
    pthread_mutex_unlock(&cp.lock);
    if (!running)
        return;
    pthread_join(cp.thread, NULL);
    sqlite3_close(cp.db);
    cp.db = NULL;
}

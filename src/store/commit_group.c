/*
 * commit_group.c — group commit: the write transactions of one SQLite file
 * that wait at the same moment share one COMMIT, hence one fsync of the
 * WAL, and each is still answered only once that COMMIT is durable.
 *
 * Why. With synchronous=FULL every COMMIT fsyncs the WAL, and SQLite has
 * one writer: N workers saving at once queue on its lock, and each waits
 * for every commit ahead of it. Commits are cheap to share, not to repeat.
 *
 * How. Every store of this process opened on the same file joins the
 * file's group, which owns one more connection: the writer. db_transact on
 * a grouped store comes here. A caller waits for its turn at the writer
 * (one at a time: the token `taken`); with it, it begins a transaction if
 * none is open, runs its body on the writer inside a SAVEPOINT of its own,
 * and releases the savepoint, or rolls back to it when the body failed: a
 * failing write (a lost base, a taken slug, an absent item) is undone
 * alone and its caller hears its own status and words at once, while the
 * writes before it in the transaction stay. Then, if nobody else waits
 * for a turn (or the batch is full), that caller commits for everyone in
 * the batch and tells each of them the outcome; otherwise it hands the
 * turn on and sleeps until whoever commits last settles its batch. While
 * one COMMIT waits for the disk the token stays taken, so the writes that
 * arrive meanwhile queue and become the next batch: the busier it is, the
 * more writes one fsync carries, with no timer and no added wait when it
 * is quiet. Bodies run on their callers' threads (thread-locals, the
 * sanity checks of db.c and CPU accounting stay the callers'), one at a
 * time: SQLite would serialize them anyway.
 *
 * The rare error that makes SQLite roll the whole transaction back (I/O,
 * a full disk, out of memory) takes the batch's earlier writes with it:
 * their callers are woken to run their bodies again (a body is safe to run
 * twice, db.h), in the next transaction.
 *
 * Background writes (the job runner's store, store_writes_background) take
 * a turn only when no request write waits, or after waiting
 * COMMIT_GROUP_BACKGROUND_WAIT_MS, so jobs never starve editors and are
 * never starved for good either.
 *
 * Stores on PostgreSQL never join: PostgreSQL groups concurrent commits of
 * its own connections itself.
 */
#include "store/commit_group.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "store/db_sqlite.h"
#include "store/store_internal.h"

enum {
    BATCH_MAX = 64,                        /* writes in one transaction at most: bounds how long one is open */
    COMMIT_GROUP_BACKGROUND_WAIT_MS = 100, /* a background write goes after request writes, at most this long */
    MEMBER_RERUN = -200,                   /* the member's transaction was rolled back whole: run the body again */
};

enum member_class { REQUEST, BACKGROUND };

/* One caller whose body ran in the open transaction, on its own stack. */
typedef struct member {
    struct member *next;
    store_t *caller;
    bool settled; /* the batch committed or failed: status holds how */
    int status;
} member;

struct commit_group {
    struct commit_group *next; /* in the registry */
    char *url;
    int refs; /* stores joined; under the registry's lock */

    pthread_mutex_t lock;
    pthread_cond_t turn;    /* the token was given back */
    pthread_cond_t settled; /* a batch committed or failed */
    int waiting[2];         /* callers waiting for a turn, by member_class */
    bool taken;             /* a caller uses the writer (a body, a commit) */

    /* Touched only by the holder of the token, but batch and batch_size,
     * which are also under lock. */
    store_t *writer;
    sqlite3_stmt *savepoint, *release, *rollback_to;
    bool open; /* a transaction is open on the writer */
    member *batch;
    int batch_size;
    commit_group_stats stats;             /* under lock */
    _Atomic int64_t last_request_turn_ms; /* when a request write last asked for a turn (store_now_ms) */
};

static struct {
    pthread_mutex_t lock;
    commit_group *groups;
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool commit_group_wanted(const char *url)
{
    return url[0] != '\0' && strcmp(url, ":memory:") != 0 && strstr(url, "mode=memory") == NULL &&
           strncmp(url, "file::memory:", 13) != 0;
}

/* ---- the registry ---------------------------------------------------------- */

static commit_group *group_new(const char *url)
{
    commit_group *g = calloc(1, sizeof *g);
    if (g == NULL || (g->url = strdup(url)) == NULL) {
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->turn, NULL);
    pthread_cond_init(&g->settled, NULL);
    return g;
}

commit_group *commit_group_join(const char *url)
{
    pthread_mutex_lock(&registry.lock);
    commit_group *g = registry.groups;
    while (g != NULL && strcmp(g->url, url) != 0)
        g = g->next;
    if (g == NULL && (g = group_new(url)) != NULL) {
        g->next = registry.groups;
        registry.groups = g;
    }
    if (g != NULL)
        g->refs++;
    pthread_mutex_unlock(&registry.lock);
    return g;
}

/* What the group did, said once when its last store closes (at shutdown)
 * if it grouped anything: writes per commit is how much it carried. A
 * command of the CLI, one write at a time, says nothing. */
static void stats_log(const commit_group *g)
{
    if (g->stats.writes <= g->stats.commits)
        return;
    log_line line;
    log_begin(&line, LOG_INFO, "commit group closed");
    log_int(&line, "commits", (int64_t)g->stats.commits);
    log_int(&line, "writes", (int64_t)g->stats.writes);
    log_int(&line, "background_writes", (int64_t)g->stats.background);
    log_int(&line, "failed_writes", (int64_t)g->stats.failed);
    log_end(&line);
}

static void group_free(commit_group *g)
{
    stats_log(g);
    sqlite3_finalize(g->savepoint);
    sqlite3_finalize(g->release);
    sqlite3_finalize(g->rollback_to);
    store_close(&g->writer);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->turn);
    pthread_cond_destroy(&g->settled);
    free(g->url);
    free(g);
}

void commit_group_leave(commit_group **group)
{
    commit_group *g = *group;
    if (g == NULL)
        return;
    *group = NULL;
    pthread_mutex_lock(&registry.lock);
    bool last = --g->refs == 0;
    if (last) {
        commit_group **at = &registry.groups;
        while (*at != g)
            at = &(*at)->next;
        *at = g->next;
    }
    pthread_mutex_unlock(&registry.lock);
    if (last)
        group_free(g);
}

void commit_group_stats_of(const store_t *st, commit_group_stats *out)
{
    *out = (commit_group_stats){0};
    commit_group *g = st->group;
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    *out = g->stats;
    pthread_mutex_unlock(&g->lock);
}

/* ---- turns ------------------------------------------------------------------- */

static struct timespec realtime_after_ms(int ms)
{
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_nsec += (long)ms * 1000000L;
    at.tv_sec += at.tv_nsec / 1000000000L;
    at.tv_nsec %= 1000000000L;
    return at;
}

/* Waits for the token. A background caller lets request callers go first,
 * up to COMMIT_GROUP_BACKGROUND_WAIT_MS. */
static void turn_take(commit_group *g, enum member_class cls)
{
    struct timespec until = realtime_after_ms(COMMIT_GROUP_BACKGROUND_WAIT_MS);
    bool yielding = cls == BACKGROUND;
    pthread_mutex_lock(&g->lock);
    g->waiting[cls]++;
    while (g->taken || (yielding && g->waiting[REQUEST] > 0)) {
        if (yielding) {
            if (pthread_cond_timedwait(&g->turn, &g->lock, &until) == ETIMEDOUT)
                yielding = false;
        } else {
            pthread_cond_wait(&g->turn, &g->lock);
        }
    }
    g->waiting[cls]--;
    g->taken = true;
    pthread_mutex_unlock(&g->lock);
}

/* Under lock: tells every member of the batch its outcome (words of a
 * failure from the writer's errmsg) and empties the batch. */
static void batch_settle(commit_group *g, int status)
{
    for (member *m = g->batch; m != NULL; m = m->next) {
        m->status = status;
        m->settled = true;
        if (status != STORE_OK && status != MEMBER_RERUN)
            memcpy(m->caller->errmsg, g->writer->errmsg, sizeof m->caller->errmsg);
        if (status == STORE_OK) {
            g->stats.writes++;
            g->stats.background += m->caller->background;
        }
    }
    g->stats.commits += status == STORE_OK && g->batch != NULL;
    g->batch = NULL;
    g->batch_size = 0;
    pthread_cond_broadcast(&g->settled);
}

/* With the token: commits the open transaction if nobody else waits for a
 * turn or the batch is full (an empty one is rolled back), then gives the
 * token back. */
static void turn_give(commit_group *g)
{
    pthread_mutex_lock(&g->lock);
    bool others = g->waiting[REQUEST] + g->waiting[BACKGROUND] > 0;
    if (g->open && (g->batch == NULL || !others || g->batch_size >= BATCH_MAX)) {
        bool empty = g->batch == NULL;
        pthread_mutex_unlock(&g->lock); /* the disk's wait: others queue meanwhile */
        store_t *w = g->writer;
        int status = STORE_OK;
        if (!empty)
            status = db_control(w, "COMMIT", w->driver->commit, "committing");
        if (empty || status != STORE_OK)
            w->driver->rollback(w->conn);
        g->open = false;
        pthread_mutex_lock(&g->lock);
        batch_settle(g, status);
    }
    g->taken = false;
    pthread_cond_broadcast(&g->turn); /* all: a background caller may be the one woken, and wait on */
    pthread_mutex_unlock(&g->lock);
}

/* ---- a member's body ----------------------------------------------------------- */

/* Runs fixed SQL without parameters from a statement kept in *slot. */
static int fixed_run(commit_group *g, sqlite3_stmt **slot, const char *sql, const char *doing)
{
    sqlite3 *db = db_sqlite_handle(g->writer->conn);
    int rc = *slot ? SQLITE_OK : sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(*slot);
        sqlite3_reset(*slot);
    }
    if (rc == SQLITE_DONE || rc == SQLITE_OK)
        return STORE_OK;
    return db_fail(g->writer, STORE_ERROR, "database error while %s: %s", doing, sqlite3_errmsg(db));
}

/* With the token: the writer connection open, a transaction begun. */
static int writer_ready(commit_group *g)
{
    if (g->writer == NULL && store_open_alone(g->url, &g->writer) != STORE_OK)
        return STORE_UNAVAILABLE;
    if (g->open)
        return STORE_OK;
    db_clear_error(g->writer);
    int status = db_control(g->writer, "BEGIN", g->writer->driver->begin, "starting a transaction");
    g->open = status == STORE_OK;
    return status;
}

/* With the token, after a body failed: undoes that body alone; or, when
 * SQLite already rolled the whole transaction back, ends it and wakes the
 * batch's members to run again. */
static void body_undo(commit_group *g)
{
    store_t *w = g->writer;
    char kept[sizeof w->errmsg];
    memcpy(kept, w->errmsg, sizeof kept);
    bool whole = sqlite3_get_autocommit(db_sqlite_handle(w->conn)) != 0;
    if (!whole && (fixed_run(g, &g->rollback_to, "ROLLBACK TO member", "undoing a write") != STORE_OK ||
                   fixed_run(g, &g->release, "RELEASE member", "undoing a write") != STORE_OK))
        whole = true;
    if (whole) {
        w->driver->rollback(w->conn);
        g->open = false;
        pthread_mutex_lock(&g->lock);
        g->stats.failed += g->batch_size;
        batch_settle(g, MEMBER_RERUN);
        pthread_mutex_unlock(&g->lock);
    }
    memcpy(w->errmsg, kept, sizeof kept);
}

/* With the token: body in a savepoint of the open transaction. STORE_OK
 * joins me to the batch; otherwise the status and caller's errmsg say why. */
static int member_run(commit_group *g, member *me, int (*body)(store_t *st, void *arg), void *arg)
{
    int status = writer_ready(g);
    if (status == STORE_UNAVAILABLE && g->writer == NULL) {
        db_fail(me->caller, STORE_ERROR, "%s", store_errmsg(NULL));
        return STORE_ERROR;
    }
    store_t *w = g->writer;
    if (status == STORE_OK)
        status = fixed_run(g, &g->savepoint, "SAVEPOINT member", "starting a write");
    if (status == STORE_OK) {
        db_clear_error(w);
        status = db_body_run(w, body, arg);
        if (status == STORE_OK)
            status = fixed_run(g, &g->release, "RELEASE member", "ending a write");
        if (status != STORE_OK)
            body_undo(g);
    }
    if (status != STORE_OK) {
        memcpy(me->caller->errmsg, w->errmsg, sizeof me->caller->errmsg);
        pthread_mutex_lock(&g->lock);
        g->stats.failed++;
        pthread_mutex_unlock(&g->lock);
        return status;
    }
    pthread_mutex_lock(&g->lock);
    me->next = g->batch;
    me->settled = false;
    g->batch = me;
    g->batch_size++;
    pthread_mutex_unlock(&g->lock);
    return STORE_OK;
}

/* Until my batch is settled; its outcome. */
static int member_wait(commit_group *g, member *me)
{
    pthread_mutex_lock(&g->lock);
    while (!me->settled)
        pthread_cond_wait(&g->settled, &g->lock);
    int status = me->status;
    pthread_mutex_unlock(&g->lock);
    return status;
}

int commit_group_transact(commit_group *g, store_t *caller, int (*body)(store_t *st, void *arg), void *arg,
                          const char *doing)
{
    member me = {.caller = caller};
    enum member_class cls = caller->background ? BACKGROUND : REQUEST;
    if (cls == REQUEST)
        atomic_store_explicit(&g->last_request_turn_ms, store_now_ms(), memory_order_relaxed);
    for (int attempt = 1;; attempt++) {
        turn_take(g, cls);
        int status = member_run(g, &me, body, arg);
        turn_give(g);
        if (status == STORE_OK)
            status = member_wait(g, &me);
        /* a body asking to run again (DB_RETRY), or rolled back with its batch */
        if (status != DB_RETRY && status != MEMBER_RERUN)
            return status;
        if (attempt == DB_RETRY_MAX)
            return db_fail(caller, STORE_BUSY,
                           "the database is busy (%s met concurrent writes %d times); try again shortly", doing,
                           attempt);
        db_clear_error(caller);
    }
}

bool store_request_writes_recent(const store_t *st, int64_t within_ms)
{
    const commit_group *g = st->group;
    return g != NULL &&
           store_now_ms() - atomic_load_explicit(&g->last_request_turn_ms, memory_order_relaxed) < within_ms;
}

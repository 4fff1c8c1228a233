/*
 * worker_pool.h — internal to src/http: threads that run database work.
 *
 * A FIFO of jobs under one mutex and condition variable. Each worker opens
 * its own store_t at start and keeps it for life (SQLite connections are
 * per-thread here). The pool knows nothing of HTTP: a job is a function and
 * an argument; completion is the job's own business (the server hands it
 * back to its loop thread).
 */
#ifndef STRATA_HTTP_WORKER_POOL_H
#define STRATA_HTTP_WORKER_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct pool_job pool_job;
struct pool_job {
    pool_job *next;
    void (*run)(pool_job *job, store_t *store);
    uint64_t queued_stamp; /* metrics: when it was queued (0: not measured) */
};

typedef int (*pool_worker_init_fn)(store_t *store);

typedef struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pool_job *head, *tail;
    size_t queued;
    bool stopping;
    pthread_t *threads;
    size_t thread_count;
    size_t started;  /* workers that opened their store */
    int start_error; /* first worker's open failure, if any */
    const char *db_path;
    pool_worker_init_fn worker_init;
} worker_pool;

/* Starts count workers, each opening db_path; waits until every one has
 * opened its connection. 0, or -1 if a connection could not be opened. */
int worker_pool_start(worker_pool *pool, size_t count, const char *db_path, pool_worker_init_fn init);
/* Queues a job; never blocks on the database. */
void worker_pool_submit(worker_pool *pool, pool_job *job);
/* Runs every queued job, then joins the workers and closes their stores. */
void worker_pool_stop(worker_pool *pool);

#endif

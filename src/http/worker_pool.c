/*
 * worker_pool.c — the database worker threads (see worker_pool.h).
 *
 * Stopping drains: a worker exits only when the queue is empty and stopping
 * is set, so every job submitted before worker_pool_stop runs to the end and
 * an acknowledged write is never abandoned half way.
 */
#include "http/worker_pool.h"

#include <stdlib.h>

#include "core/log.h"
#include "metrics/metrics.h"

typedef struct worker_start {
    worker_pool *pool;
} worker_start;

static void *worker_main(void *arg)
{
    worker_pool *pool = arg;
    store_t *store = NULL;
    int rc = store_open(pool->db_path, &store);
    if (rc == STORE_OK && pool->worker_init != NULL && pool->worker_init(store) != 0)
        rc = STORE_ERROR;
    if (rc != STORE_OK)
        log_event_str(LOG_ERROR, "worker could not open the database", "error",
                      store != NULL ? store_errmsg(store) : store_status_name(rc));

    pthread_mutex_lock(&pool->lock);
    pool->started++;
    if (rc != STORE_OK && pool->start_error == 0)
        pool->start_error = rc;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    if (rc != STORE_OK) {
        store_close(&store);
        return NULL;
    }

    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        pool_job *job = pool->head;
        if (job == NULL) { /* stopping and drained */
            pthread_mutex_unlock(&pool->lock);
            break;
        }
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
        pthread_mutex_unlock(&pool->lock);
        job->next = NULL;
        uint64_t stamp = job->queued_stamp; /* the job may be gone once run */
        metrics_pool_started(stamp);
        job->run(job, store);
        if (stamp != 0)
            metrics_pool_finished();
    }
    store_close(&store);
    return NULL;
}

int worker_pool_start(worker_pool *pool, size_t count, const char *db_path, pool_worker_init_fn init)
{
    *pool = (worker_pool){.db_path = db_path, .worker_init = init};
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc(count, sizeof(*pool->threads));
    if (pool->threads == NULL)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
            break;
        pool->thread_count++;
    }
    pthread_mutex_lock(&pool->lock);
    while (pool->started < pool->thread_count)
        pthread_cond_wait(&pool->wake, &pool->lock);
    int failed = pool->start_error != 0 || pool->thread_count < count;
    pthread_mutex_unlock(&pool->lock);
    metrics_pool_workers(failed ? 0 : count);
    if (failed) {
        worker_pool_stop(pool);
        return -1;
    }
    return 0;
}

void worker_pool_submit(worker_pool *pool, pool_job *job)
{
    job->next = NULL;
    job->queued_stamp = metrics_pool_enqueued();
    pthread_mutex_lock(&pool->lock);
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

void worker_pool_stop(worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->thread_count; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pool->threads = NULL;
    pool->thread_count = 0;
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
}

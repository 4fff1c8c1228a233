/*
 * pool_fixture.h — the per-thread resource of a worker pool under test: a
 * store opened on the path or URL given as the pool's argument, as the
 * server's workers hold one (the tests' jobs need not touch it). Included
 * by test_worker_pool.c and test_fill_budget.c.
 */
#ifndef STRATA_TESTS_POOL_FIXTURE_H
#define STRATA_TESTS_POOL_FIXTURE_H

#include "http/worker_pool.h"
#include "store/store.h"

static void *store_opened(void *arg)
{
    store_t *store = NULL;
    if (store_open(arg, &store) != STORE_OK)
        store_close(&store);
    return store;
}

static void store_closed(void *worker, void *arg)
{
    (void)arg;
    store_t *store = worker;
    store_close(&store);
}

#endif

/*
 * test_store_observer.c — the store's statement observer (store.h,
 * src/store/db.c): every statement that ends is told to the one observer,
 * with its text, its time and the connection it ran on, and BEGIN / COMMIT
 * as control statements; store_explain gives a statement's plan on that
 * connection; with no observer, nothing is told. This is how statement
 * timings reach metrics without the store knowing metrics (main.c wires
 * it; scripts/layers.txt forbids the include).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

typedef struct seen {
    int statements, controls, begins, commits;
    int site_statements; /* statements whose text names the sites table */
    bool other_store;    /* a timing named a connection other than the test's */
    uint64_t nanos;      /* their sum */
    store_t *store;
} seen;

static void observed(const store_statement_timing *timing, void *arg)
{
    seen *s = arg;
    s->other_store |= timing->store != s->store;
    s->nanos += timing->nanos;
    if (timing->control) {
        s->controls++;
        s->begins += strcmp(timing->sql, "BEGIN") == 0;
        s->commits += strcmp(timing->sql, "COMMIT") == 0;
        return;
    }
    s->statements++;
    s->site_statements += strstr(timing->sql, "sites") != NULL;
}

typedef struct fixture {
    char path[64];
    store_t *store;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->path, sizeof f->path, "/tmp/strata-test-observer-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    if (store_open(f->path, &f->store) != STORE_OK || store_migrate(f->store, NULL) != STORE_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_set_observer(NULL, NULL);
    store_close(&f->store);
    char side[80];
    unlink(f->path);
    snprintf(side, sizeof side, "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", f->path);
    unlink(side);
    free(f);
    return 0;
}

static void every_statement_is_told_with_its_text_and_connection(void **state)
{
    fixture *f = *state;
    seen s = {.store = f->store};
    store_set_observer(observed, &s);
    int64_t id;
    json_t *sites = NULL;
    assert_int_equal(store_site_create(f->store, "main", &id), STORE_OK);
    assert_int_equal(store_site_list(f->store, &sites), STORE_OK);
    assert_int_equal(json_array_size(sites), 1);
    json_decref(sites);
    assert_true(s.statements >= 2); /* the insert and the list */
    assert_true(s.site_statements >= 2);
    assert_false(s.other_store);
    assert_true(s.nanos > 0);
    assert_int_equal(s.begins, s.commits); /* a transaction is BEGIN … COMMIT */
}

static void the_plan_is_read_on_request(void **state)
{
    fixture *f = *state;
    char plan[1024] = "unset";
    store_explain(f->store, "SELECT id, name FROM sites WHERE name = 'main'", plan, sizeof plan);
    assert_string_not_equal(plan, "unset");
    assert_true(strlen(plan) > 0);
}

static void without_an_observer_nothing_is_told(void **state)
{
    fixture *f = *state;
    seen s = {.store = f->store};
    store_set_observer(observed, &s);
    store_set_observer(NULL, NULL);
    json_t *sites = NULL;
    assert_int_equal(store_site_list(f->store, &sites), STORE_OK);
    json_decref(sites);
    assert_int_equal(s.statements + s.controls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_statement_is_told_with_its_text_and_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(the_plan_is_read_on_request, setup, teardown),
        cmocka_unit_test_setup_teardown(without_an_observer_nothing_is_told, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

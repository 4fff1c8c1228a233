/*
 * test_config.c — defaults, precedence (flag > environment > file), errors
 * that name the key, and the long-line guard in front of the INI parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

static char path[64];

static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/strata-config-test-%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unsetenv("STRATA_THREADS");
    unsetenv("STRATA_CONFIG");
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    strata_config cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.log_level, LOG_INFO);
}

static void test_flag_beats_env_beats_file(void **state)
{
    (void)state;
    write_file("[server]\nthreads = 3\nworkers = 5\n");
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"config", "threads"};
    const char *values[] = {path, "7"};

    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), 0);
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.workers, 5);

    setenv("STRATA_THREADS", "4", 1);
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), 0);
    assert_int_equal(cfg.threads, 4);

    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 2, err), 0);
    assert_int_equal(cfg.threads, 7);
    assert_int_equal(cfg.workers, 5);
}

static void test_unknown_key_is_named(void **state)
{
    (void)state;
    write_file("[server]\nthreads = 2\nlisten_port = 9\n");
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"config"};
    const char *values[] = {path};
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), -1);
    assert_non_null(strstr(err, "server.listen_port"));
}

static void test_bad_value_names_key_and_bounds(void **state)
{
    (void)state;
    setenv("STRATA_THREADS", "many", 1);
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, err), -1);
    assert_non_null(strstr(err, "STRATA_THREADS"));
    assert_non_null(strstr(err, "0..256"));
}

static void test_long_line_is_reported_not_cut(void **state)
{
    (void)state;
    char text[400] = "[db]\npath = /";
    memset(text + strlen(text), 'x', 250);
    strcat(text, "\n");
    write_file(text);
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"config"};
    const char *values[] = {path};
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), -1);
    assert_non_null(strstr(err, "line 2"));
}

static void test_listen_must_parse(void **state)
{
    (void)state;
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"listen"};
    const char *bad[] = {"localhost:80", "127.0.0.1", "1.2.3.4:http"};
    for (size_t i = 0; i < 3; i++) {
        const char *values[] = {bad[i]};
        config_defaults(&cfg);
        assert_int_equal(config_load(&cfg, names, values, 1, err), -1);
        assert_non_null(strstr(err, "server.listen"));
    }
    const char *good[] = {"[::1]:0", ":8080", "127.0.0.1:65535"};
    for (size_t i = 0; i < 3; i++) {
        const char *values[] = {good[i]};
        config_defaults(&cfg);
        assert_int_equal(config_load(&cfg, names, values, 1, err), 0);
    }
}

static void test_reload_changes_only_reloadable_keys(void **state)
{
    (void)state;
    write_file("[server]\nthreads = 2\n[log]\nlevel = warn\n");
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"config"};
    const char *values[] = {path};
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), 0);
    write_file("[server]\nthreads = 9\n[log]\nlevel = debug\n");
    assert_int_equal(config_reload(&cfg, names, values, 1, err), 0);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.threads, 2);
}

static void test_db_url_and_its_older_name(void **state)
{
    (void)state;
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"config", "db"};
    const char *values[] = {path, "postgresql://strata:s3cret@127.0.0.1:5432/news"};

    write_file("[db]\npath = /srv/strata/old.db\n"); /* written before db.url existed */
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), 0);
    assert_string_equal(cfg.db_url, "/srv/strata/old.db");
    assert_string_equal(cfg.db_shown, "/srv/strata/old.db");

    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 2, err), 0);
    assert_string_equal(cfg.db_url, values[1]);
    assert_string_equal(cfg.db_shown, "postgresql://strata:***@127.0.0.1:5432/news");
}

/* db.replicas: a list of PostgreSQL URLs (spaces trimmed), at most 8,
 * only beside a PostgreSQL primary; each refusal says why, never with a
 * password. */
static void test_db_replicas(void **state)
{
    (void)state;
    strata_config cfg;
    char err[CONFIG_ERR_MAX];
    const char *names[] = {"db", "db-replicas"};
    const char *values[] = {"postgres://strata:pw@127.0.0.1:5432/news",
                            "postgres://strata:r1@127.0.0.1:5433/news, postgresql://strata:r2@127.0.0.1:5434/news"};
    config_defaults(&cfg);
    assert_int_equal(cfg.db_replica_max_lag_ms, 1000);
    assert_int_equal(cfg.db_replica_poll_ms, 20);
    assert_int_equal(config_load(&cfg, names, values, 2, err), 0);
    assert_int_equal(cfg.db_replica_count, 2);
    assert_string_equal(cfg.db_replica_url[1], "postgresql://strata:r2@127.0.0.1:5434/news");

    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, values, 1, err), 0);
    assert_int_equal(cfg.db_replica_count, 0);

    const char *not_pg[] = {values[0], "postgres://a@h/db,/srv/strata/replica.db"};
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, not_pg, 2, err), -1);
    assert_non_null(strstr(err, "db.replicas"));
    assert_non_null(strstr(err, "/srv/strata/replica.db"));

    const char *on_sqlite[] = {"/srv/strata/main.db", "postgres://strata:r1@127.0.0.1:5433/news"};
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, on_sqlite, 2, err), -1);
    assert_non_null(strstr(err, "SQLite"));
    assert_null(strstr(err, "r1"));

    const char *nine[] = {values[0], "postgres://h/a,postgres://h/a,postgres://h/a,postgres://h/a,postgres://h/a,"
                                     "postgres://h/a,postgres://h/a,postgres://h/a,postgres://h/a"};
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, names, nine, 2, err), -1);
    assert_non_null(strstr(err, "at most 8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_flag_beats_env_beats_file, teardown),
        cmocka_unit_test_teardown(test_unknown_key_is_named, teardown),
        cmocka_unit_test_teardown(test_bad_value_names_key_and_bounds, teardown),
        cmocka_unit_test_teardown(test_long_line_is_reported_not_cut, teardown),
        cmocka_unit_test_teardown(test_listen_must_parse, teardown),
        cmocka_unit_test_teardown(test_reload_changes_only_reloadable_keys, teardown),
        cmocka_unit_test_teardown(test_db_url_and_its_older_name, teardown),
        cmocka_unit_test_teardown(test_db_replicas, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

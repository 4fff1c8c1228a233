/*
 * test_db_url.c — telling PostgreSQL URLs from SQLite paths, and showing
 * them without their passwords (src/core/db_url.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/db_url.h"

static void postgres_urls_are_told_from_paths(void **state)
{
    (void)state;
    assert_true(db_url_is_postgres("postgres://h/db"));
    assert_true(db_url_is_postgres("postgresql://u@h/db"));
    assert_false(db_url_is_postgres("data/strata.db"));
    assert_false(db_url_is_postgres("/srv/postgres://x"));
    assert_false(db_url_is_postgres("postgres:/h"));
}

static void expect(const char *url, const char *shown)
{
    char out[256];
    assert_string_equal(db_url_redact(url, out, sizeof out), shown);
}

static void passwords_are_masked(void **state)
{
    (void)state;
    expect("postgresql://strata:s3cret@127.0.0.1:5432/strata", "postgresql://strata:***@127.0.0.1:5432/strata");
    expect("postgres://u:p@ss@h/db", "postgres://u:***@h/db"); /* the last '@' ends the userinfo */
    expect("postgres://u@h/db", "postgres://u@h/db");
    expect("postgres://h:5432/db", "postgres://h:5432/db"); /* a port is no password */
    expect("postgres:///db?host=/run/pg&password=x&sslmode=require",
           "postgres:///db?host=/run/pg&password=***&sslmode=require");
    expect("postgres://u:p@h/db?PASSWORD=x", "postgres://u:***@h/db?PASSWORD=***");
    expect("data/strata.db", "data/strata.db");
}

static void a_small_buffer_cuts_but_never_leaks(void **state)
{
    (void)state;
    char out[20];
    db_url_redact("postgres://user:secretsecret@host/db", out, sizeof out);
    assert_int_equal(strlen(out), sizeof out - 1);
    assert_null(strstr(out, "secret"));
}

static void secrets_are_masked_wherever_words_quote_them(void **state)
{
    (void)state;
    char out[128];
    const char *url = "postgres://strata:hunter2@db.example:5432/strata?sslmode=require&password=hunter3";
    db_url_mask_secrets(url, "auth failed for hunter2 (also hunter3; hunter2)", out, sizeof out);
    assert_string_equal(out, "auth failed for *** (also ***; ***)");
    db_url_mask_secrets("data/strata.db", "no such file: data/strata.db", out, sizeof out);
    assert_string_equal(out, "no such file: data/strata.db");
    char small[12];
    db_url_mask_secrets(url, "x hunter2 hunter2", small, sizeof small);
    assert_string_equal(small, "x *** ***");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(postgres_urls_are_told_from_paths),
        cmocka_unit_test(passwords_are_masked),
        cmocka_unit_test(a_small_buffer_cuts_but_never_leaks),
        cmocka_unit_test(secrets_are_masked_wherever_words_quote_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * db_url.h — what a database address says, and how to show it without
 * its secret.
 *
 * `--db` / `db.url` takes a SQLite path or a PostgreSQL URL
 * (postgres://user:password@host:port/db?…, or postgresql://). The URL
 * reaches logs, the CLI's messages, /metrics and the dashboard only
 * through db_url_redact, which replaces the password (and any
 * `password=` query parameter) with "***", so an operator can still see
 * which database is meant and a screenshot of the dashboard never leaks
 * a credential.
 */
#ifndef STRATA_CORE_DB_URL_H
#define STRATA_CORE_DB_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the address is a PostgreSQL URL (else a SQLite path). */
bool db_url_is_postgres(const char *url);
/* url without its secrets into out (always NUL-terminated; cut if out is
 * too small). A SQLite path is copied as it is. Returns out. */
char *db_url_redact(const char *url, char *out, size_t size);
/* text into out with every occurrence of url's passwords replaced by
 * "***": for words that may echo the URL (a driver's error message).
 * Where out is too small it ends before a password, never inside one. */
void db_url_mask_secrets(const char *url, const char *text, char *out, size_t size);

#endif

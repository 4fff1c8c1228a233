/*
 * db_postgres.c — the PostgreSQL driver (libpq) behind db_driver.h.
 *
 * Connection. A db_conn is one libpq connection used by one thread. It is
 * opened from the URL (libpq conninfo) with defaults the URL may override:
 * connect_timeout 3 s, application name "strata", UTF-8, and TCP keepalives
 * that find a vanished server within ~25 s even while a query waits for
 * its answer. Then one round trip configures the session: UTC, a
 * statement_timeout (a statement stuck behind a lock or a runaway plan must
 * not hold a worker thread for ever: after 30 s it fails as STORE_BUSY; the
 * HTTP layer has long answered by then) and a lock_timeout equal to
 * SQLite's busy_timeout (5 s); and generic plans for prepared statements:
 * every statement strata prepares is an index lookup or walk whose plan
 * does not depend on its parameters' values, and PostgreSQL's default
 * (plan_cache_mode = auto) planned the item read afresh on every execution
 * (the custom plan can fold ":any_status = 1 OR …"), a third of its CPU
 * per miss. Notices are dropped: libpq would print them on stderr.
 *
 * Losing the server. A failure that leaves the connection bad (libpq's
 * status, SQLSTATE class 08, 57P01..57P03) is STORE_UNAVAILABLE and marks
 * the connection lost. The next call re-establishes it (PQreset) unless a
 * transaction was open when it was lost: then everything but rollback keeps
 * failing until the caller rolls back, so no statement of a half-done
 * transaction runs in a new session as if nothing had happened. A failed
 * reconnect waits before the next one, 250 ms doubling up to 1 s, and calls
 * in between fail at once without touching the network: a restarted
 * server is found within a second of its return (its "starting up" answer
 * costs a backoff too), while a server that is down is asked at most once
 * a second per connection. Every successful
 * (re)connect bumps the connection's generation; a statement prepared in an
 * older generation is prepared again before it runs.
 *
 * Statements. SQL arrives with ":name" parameters; prepare rewrites it once
 * to "$1".."$n" (skipping '…' and "…" quotes, -- and block comments and the
 * "::" cast; one name used twice is one $k) and PQprepares it under a name
 * unique to the connection. Values travel as text (integers in decimal),
 * blobs in binary. Results come back in text: libpq asks for one format
 * for all columns, and text keeps integers, booleans and numerics readable
 * without knowing each column's type; a bytea column is decoded
 * (PQunescapeBytea) when column_blob asks for it, once per row. The whole
 * result is fetched at the first step, so two statements of a connection
 * can be iterated at once (a list and its per-row lookups), as on SQLite.
 *
 * Transactions are SERIALIZABLE: the domain code reads, decides and writes
 * as if alone; a conflict is SQLSTATE 40001/40P01 → DB_RETRY, and
 * db_transact runs the transaction again. A COMMIT that PostgreSQL answers
 * with ROLLBACK (the transaction had failed) is an error, never success.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/db_driver.h"

enum {
    ERRMSG_SIZE = 512,
    TARGET_SIZE = 200,
    BACKOFF_FIRST_MS = 250,
    BACKOFF_MAX_MS = 1000,
    BYTEA_OID = 17,
    BOOL_OID = 16,
};

/* The session's settings, sent after every (re)connect. */
static const char session_settings[] = "SET TIME ZONE 'UTC'; SET statement_timeout = 30000; SET lock_timeout = 5000; "
                                       "SET plan_cache_mode = force_generic_plan";
static const char relaxed_setting[] = "SET synchronous_commit = off";

struct db_conn {
    PGconn *pg;
    char target[TARGET_SIZE];  /* host:port/dbname, for messages */
    char *secrets[3];          /* password spellings scrubbed from libpq's messages */
    uint64_t generation;       /* bumped by every successful (re)connect */
    uint64_t statement_serial; /* names statements strata_1, strata_2, … */
    bool lost;                 /* the connection is bad: reconnect on next use */
    bool in_transaction;       /* begin called, commit/rollback not yet */
    bool transaction_lost;     /* the connection broke inside that transaction */
    bool relaxed;              /* relax_durability was asked: re-applied on reconnect */
    int64_t retry_at_ms;       /* no reconnect attempt before this (monotonic) */
    int backoff_ms;
    int64_t changes;
    db_stmt *statements; /* every live statement, freed by close */
    char errmsg[ERRMSG_SIZE];
};

typedef enum stmt_state { STMT_READY, STMT_ROWS, STMT_DONE } stmt_state;

typedef struct param {
    char *heap;      /* text or blob copy, or NULL */
    char number[32]; /* an integer's or a double's decimal text */
} param;

typedef struct decoded {
    unsigned char *data; /* PQunescapeBytea of a bytea column, or NULL */
    size_t size;
} decoded;

struct db_stmt {
    db_conn *conn;
    db_stmt *next;
    char *sql;           /* as given */
    char *pg_sql;        /* with $1..$n */
    char name[32];       /* server-side name, unique per connection */
    uint64_t generation; /* the connection generation it was prepared in; 0: never */
    int count;           /* parameters */
    char **names;        /* names[k-1] is the ":name" of $k */
    param *params;
    const char **values;
    int *lengths;
    int *formats;
    stmt_state state;
    PGresult *result;
    int row;
    decoded *columns; /* per column of result, for column_blob */
};

/* ---- time and messages ----------------------------------------------------- */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Replaces every occurrence of each secret in text with "***" (in place,
 * never longer than before: secrets shorter than 3 bytes become '*'s). */
static void text_scrub(char *text, char *const secrets[], size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const char *secret = secrets[i];
        size_t n = secret ? strlen(secret) : 0;
        if (n == 0)
            continue;
        for (char *hit = strstr(text, secret); hit; hit = strstr(hit, secret)) {
            size_t stars = n < 3 ? n : 3;
            memset(hit, '*', stars);
            memmove(hit + stars, hit + n, strlen(hit + n) + 1);
            hit += stars;
        }
    }
}

/* libpq's multi-line messages as one line: newlines and tabs become single
 * spaces, trailing space removed. */
static void text_one_line(char *text)
{
    char *out = text;
    for (const char *in = text; *in; in++) {
        bool blank = *in == '\n' || *in == '\t' || *in == '\r' || *in == ' ';
        if (blank && (out == text || out[-1] == ' '))
            continue;
        *out++ = blank ? ' ' : *in;
    }
    while (out > text && out[-1] == ' ')
        out--;
    *out = '\0';
}

/* Copies a message about a URL libpq could not parse into out, with what
 * it quotes ("…") hidden: the quoted value may be any part of the URL,
 * the password too. */
static void text_unquote(const char *text, char *out, size_t size)
{
    size_t used = 0;
    bool quoted = false;
    for (const char *in = text; *in && used + 1 < size; in++) {
        if (*in == '"')
            quoted = !quoted;
        const char *piece = *in == '"' ? (quoted ? "\"(hidden" : ")\"") : quoted ? "" : (char[]){*in, '\0'};
        size_t n = strlen(piece);
        if (used + n >= size)
            break;
        memcpy(out + used, piece, n);
        used += n;
    }
    out[used] = '\0';
}

/* Sets errmsg from a format; the result is scrubbed of the password. */
static void conn_say(db_conn *c, const char *prefix, const char *detail)
{
    snprintf(c->errmsg, sizeof c->errmsg, "%s%s", prefix, detail ? detail : "");
    text_one_line(c->errmsg);
    text_scrub(c->errmsg, c->secrets, sizeof c->secrets / sizeof c->secrets[0]);
}

/* ---- statuses ----------------------------------------------------------------- */

/* db_driver.h's mapping of a SQLSTATE (NULL: none was sent), plus one of
 * this driver's own: class 22, a value PostgreSQL cannot hold where SQLite
 * would (text that is not UTF-8, "\u0000" in jsonb, a number out of
 * range), is STORE_INVALID: the client's input, not a server fault. */
static int status_of_sqlstate(const char *state)
{
    if (!state)
        return STORE_ERROR;
    if (strcmp(state, "23505") == 0)
        return STORE_CONFLICT;
    if (strcmp(state, "23503") == 0)
        return DB_FOREIGN_KEY;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return DB_RETRY;
    if (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)
        return STORE_BUSY;
    if (strcmp(state, "53100") == 0) /* disk_full */
        return STORE_FULL;
    if (strncmp(state, "22", 2) == 0)
        return STORE_INVALID;
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
        strcmp(state, "57P03") == 0)
        return STORE_UNAVAILABLE;
    return STORE_ERROR;
}

static void conn_mark_lost(db_conn *c)
{
    c->lost = true;
    if (c->in_transaction)
        c->transaction_lost = true;
}

/* The status of a failed result (res may be NULL: libpq ran out of memory
 * or lost the connection before any answer), with errmsg set. */
static int conn_fail(db_conn *c, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int status = status_of_sqlstate(state);
    if (PQstatus(c->pg) != CONNECTION_OK)
        status = STORE_UNAVAILABLE;
    if (status == STORE_UNAVAILABLE) {
        conn_mark_lost(c);
        char prefix[TARGET_SIZE + 64];
        snprintf(prefix, sizeof prefix, "lost the connection to PostgreSQL at %s: ", c->target);
        conn_say(c, prefix, primary ? primary : PQerrorMessage(c->pg));
    } else {
        conn_say(c, "", primary ? primary : PQerrorMessage(c->pg));
    }
    return status;
}

/* STORE_OK for a command or a query that succeeded; otherwise conn_fail. */
static int result_check(db_conn *c, const PGresult *res)
{
    ExecStatusType rs = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK)
        return STORE_OK;
    return conn_fail(c, res);
}

/* Runs one command without parameters or rows of interest. */
static int conn_run(db_conn *c, const char *sql)
{
    PGresult *res = PQexec(c->pg, sql);
    int status = result_check(c, res);
    PQclear(res);
    return status;
}

/* ---- the URL ---------------------------------------------------------------------- */

static bool postgres_accepts(const char *url)
{
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

/* A copy of the raw text between start and end (NULL if empty). */
static char *span_copy(const char *start, const char *end)
{
    return end > start ? strndup(start, (size_t)(end - start)) : NULL;
}

/* The password as spelt in the URL (user:PASS@ or ?password=PASS), before
 * libpq decodes it: a message about a URL that does not parse may echo it. */
static void url_raw_passwords(const char *url, char **userinfo, char **query)
{
    *userinfo = *query = NULL;
    const char *authority = strstr(url, "://");
    if (!authority)
        return;
    authority += 3;
    const char *end = authority + strcspn(authority, "/?#");
    const char *at = NULL;
    for (const char *p = authority; p < end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
    if (colon)
        *userinfo = span_copy(colon + 1, at);
    const char *key = strstr(end, "password=");
    if (key && (key[-1] == '?' || key[-1] == '&')) {
        key += strlen("password=");
        *query = span_copy(key, key + strcspn(key, "&#"));
    }
}

/* Whether libpq would split the user and password elsewhere than the
 * user meant: an unencoded '/' ends its authority early ("user:pa/ss@h")
 * and it splits at the first of several '@' ("user:p@ss@h"); host, port
 * and dbname, which messages show, would then hold pieces of the password. */
static bool url_password_split(const char *url)
{
    const char *authority = strstr(url, "://");
    if (!authority)
        return false;
    authority += 3;
    const char *end = authority + strcspn(authority, "?#");
    const char *slash = memchr(authority, '/', (size_t)(end - authority));
    int ats = 0;
    const char *last = NULL;
    for (const char *p = authority; p < end; p++)
        if (*p == '@') {
            ats++;
            last = p;
        }
    return ats > 1 || (last && slash && slash < last);
}

/* Fills c->target ("host:port/dbname") and c->secrets from the URL; false
 * if libpq cannot parse it (errmsg says so, without the URL). */
static bool conn_parse_url(db_conn *c, const char *url)
{
    if (url_password_split(url)) {
        snprintf(c->errmsg, sizeof c->errmsg,
                 "the PostgreSQL URL is not valid: a '/' or '@' in its user or password must be "
                 "percent-encoded (%%2F, %%40)");
        return false;
    }
    url_raw_passwords(url, &c->secrets[0], &c->secrets[1]);
    char *why = NULL;
    PQconninfoOption *options = PQconninfoParse(url, &why);
    if (!options) {
        char hidden[ERRMSG_SIZE];
        text_unquote(why ? why : "out of memory", hidden, sizeof hidden);
        conn_say(c, "the PostgreSQL URL is not valid: ", hidden);
        PQfreemem(why);
        return false;
    }
    const char *host = NULL, *port = NULL, *dbname = NULL;
    for (PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && !host))
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = o->val;
        else if (strcmp(o->keyword, "password") == 0 && o->val[0])
            c->secrets[2] = strdup(o->val);
    }
    snprintf(c->target, sizeof c->target, "%s:%s/%s", host ? host : "localhost", port ? port : "5432",
             dbname ? dbname : "(default)");
    text_scrub(c->target, c->secrets, sizeof c->secrets / sizeof c->secrets[0]);
    PQconninfoFree(options);
    return true;
}

/* ---- connections ---------------------------------------------------------------- */

/* After a (re)connect: the session settings, then a new generation. */
static int conn_configure(db_conn *c)
{
    int status = conn_run(c, session_settings);
    if (status == STORE_OK && c->relaxed)
        status = conn_run(c, relaxed_setting);
    if (status == STORE_OK)
        c->generation++;
    return status;
}

/* Why a connection attempt failed, in c->errmsg. */
static void conn_say_refused(db_conn *c)
{
    char prefix[TARGET_SIZE + 64];
    snprintf(prefix, sizeof prefix, "cannot connect to PostgreSQL at %s: ", c->target);
    conn_say(c, prefix, PQerrorMessage(c->pg));
}

static void conn_backoff(db_conn *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    c->retry_at_ms = monotonic_ms() + c->backoff_ms;
}

/* A usable connection, re-established if it was lost (see the header). */
static int conn_ready(db_conn *c)
{
    if (!c->lost && PQstatus(c->pg) == CONNECTION_OK)
        return STORE_OK;
    if (c->in_transaction) {
        c->transaction_lost = true;
        snprintf(c->errmsg, sizeof c->errmsg,
                 "lost the connection to PostgreSQL at %s inside a transaction; it is re-established after rollback",
                 c->target);
        return STORE_UNAVAILABLE;
    }
    int64_t now = monotonic_ms();
    if (now < c->retry_at_ms) {
        snprintf(c->errmsg, sizeof c->errmsg, "PostgreSQL at %s is unreachable; the next attempt is in %d ms",
                 c->target, (int)(c->retry_at_ms - now));
        return STORE_UNAVAILABLE;
    }
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        conn_say_refused(c);
        conn_backoff(c);
        return STORE_UNAVAILABLE;
    }
    c->lost = false;
    int status = conn_configure(c);
    if (status != STORE_OK) {
        conn_mark_lost(c);
        conn_backoff(c);
        return STORE_UNAVAILABLE;
    }
    c->backoff_ms = 0;
    return STORE_OK;
}

static void conn_free(db_conn *c)
{
    for (size_t i = 0; i < sizeof c->secrets / sizeof c->secrets[0]; i++)
        free(c->secrets[i]);
    free(c);
}

static int postgres_open(const char *url, db_conn **out, char *err, size_t err_size)
{
    *out = NULL;
    db_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_size, "out of memory opening a PostgreSQL connection");
        return STORE_ERROR;
    }
    if (!conn_parse_url(c, url)) {
        snprintf(err, err_size, "%s", c->errmsg);
        conn_free(c);
        return STORE_ERROR;
    }
    /* Earlier keywords are defaults: the URL (expanded from dbname) overrides them. */
    const char *const keys[] = {
        "connect_timeout",     "fallback_application_name", "client_encoding", "keepalives_idle",
        "keepalives_interval", "keepalives_count",          "dbname",          NULL};
    const char *const values[] = {"3", "strata", "UTF8", "10", "5", "3", url, NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    int status = STORE_OK;
    if (!c->pg) {
        snprintf(c->errmsg, sizeof c->errmsg, "out of memory opening a PostgreSQL connection");
        status = STORE_ERROR;
    } else if (PQstatus(c->pg) != CONNECTION_OK) {
        conn_say_refused(c);
        status = STORE_UNAVAILABLE;
    } else {
        PQsetNoticeProcessor(c->pg, notice_ignore, NULL);
        status = conn_configure(c);
    }
    if (status != STORE_OK) {
        snprintf(err, err_size, "%s", c->errmsg);
        PQfinish(c->pg);
        conn_free(c);
        return status;
    }
    *out = c;
    return STORE_OK;
}

static void postgres_finalize(db_stmt *s);

static void postgres_close(db_conn *c)
{
    if (!c)
        return;
    while (c->statements)
        postgres_finalize(c->statements);
    PQfinish(c->pg);
    conn_free(c);
}

static void postgres_relax_durability(db_conn *c)
{
    c->relaxed = true;
    if (!c->lost)
        conn_run(c, relaxed_setting);
}

static int64_t postgres_changes(db_conn *c)
{
    return c->changes;
}

static const char *postgres_errmsg(db_conn *c)
{
    return c->errmsg;
}

/* ---- rewriting ":name" to "$k" ------------------------------------------------ */

static bool is_name_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static bool is_name_char(char ch)
{
    return is_name_start(ch) || (ch >= '0' && ch <= '9');
}

/* The length of the quoted string, comment or cast at sql (0: none), which
 * is copied as it is. An unterminated one runs to the end. */
static size_t sql_verbatim_length(const char *sql)
{
    if (sql[0] == '\'' || sql[0] == '"') {
        const char *close = strchr(sql + 1, sql[0]); /* a doubled quote closes and reopens */
        return close ? (size_t)(close - sql) + 1 : strlen(sql);
    }
    if (sql[0] == '-' && sql[1] == '-')
        return strcspn(sql, "\n");
    if (sql[0] == '/' && sql[1] == '*') {
        const char *close = strstr(sql + 2, "*/");
        return close ? (size_t)(close - sql) + 2 : strlen(sql);
    }
    if (sql[0] == ':' && sql[1] == ':')
        return 2;
    return 0;
}

/* The 1-based index of name (len bytes, with the colon), added if new. */
static int stmt_name_index(db_stmt *s, const char *name, size_t len)
{
    for (int k = 0; k < s->count; k++)
        if (strlen(s->names[k]) == len && memcmp(s->names[k], name, len) == 0)
            return k + 1;
    char **grown = realloc(s->names, (size_t)(s->count + 1) * sizeof *grown);
    if (!grown)
        return -1;
    s->names = grown;
    if (!(s->names[s->count] = strndup(name, len)))
        return -1;
    return ++s->count;
}

/* s->pg_sql and s->names from s->sql; false when out of memory. */
static bool stmt_rewrite(db_stmt *s)
{
    const char *sql = s->sql;
    size_t colons = 0;
    for (const char *p = sql; *p; p++)
        colons += *p == ':';
    char *out = malloc(strlen(sql) + colons * 11 + 1); /* "$" and up to 10 digits per parameter */
    if (!out)
        return false;
    s->pg_sql = out;
    while (*sql) {
        size_t verbatim = sql_verbatim_length(sql);
        if (verbatim) {
            memcpy(out, sql, verbatim);
            out += verbatim;
            sql += verbatim;
        } else if (sql[0] == ':' && is_name_start(sql[1])) {
            size_t len = 2;
            while (is_name_char(sql[len]))
                len++;
            int k = stmt_name_index(s, sql, len);
            if (k < 0)
                return false;
            out += sprintf(out, "$%d", k);
            sql += len;
        } else {
            *out++ = *sql++;
        }
    }
    *out = '\0';
    return true;
}

/* ---- statements ------------------------------------------------------------------ */

static void stmt_clear_result(db_stmt *s)
{
    if (s->columns) {
        int n = s->result ? PQnfields(s->result) : 0;
        for (int i = 0; i < n; i++)
            PQfreemem(s->columns[i].data);
        free(s->columns);
        s->columns = NULL;
    }
    PQclear(s->result);
    s->result = NULL;
}

static void stmt_clear_params(db_stmt *s)
{
    for (int k = 0; k < s->count; k++) {
        free(s->params[k].heap);
        s->params[k].heap = NULL;
        s->values[k] = NULL;
        s->lengths[k] = 0;
        s->formats[k] = 0;
    }
}

static void stmt_free(db_stmt *s)
{
    stmt_clear_result(s);
    if (s->params)
        stmt_clear_params(s);
    for (int k = 0; k < s->count; k++)
        free(s->names[k]);
    free(s->names);
    free(s->params);
    free(s->values);
    free(s->lengths);
    free(s->formats);
    free(s->pg_sql);
    free(s->sql);
    free(s);
}

/* Prepares s on the server in the connection's current generation. */
static int stmt_prepare_remote(db_stmt *s)
{
    db_conn *c = s->conn;
    PGresult *res = PQprepare(c->pg, s->name, s->pg_sql, s->count, NULL);
    int status = result_check(c, res);
    PQclear(res);
    if (status == STORE_OK)
        s->generation = c->generation;
    return status;
}

/* The local half of prepare: the copy, the rewrite, the parameter arrays. */
static db_stmt *stmt_create(db_conn *c, const char *sql)
{
    db_stmt *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    snprintf(s->name, sizeof s->name, "strata_%llu", (unsigned long long)++c->statement_serial);
    bool ok = (s->sql = strdup(sql)) && stmt_rewrite(s);
    size_t n = s->count ? (size_t)s->count : 1;
    ok = ok && (s->params = calloc(n, sizeof *s->params)) && (s->values = calloc(n, sizeof *s->values)) &&
         (s->lengths = calloc(n, sizeof *s->lengths)) && (s->formats = calloc(n, sizeof *s->formats));
    if (!ok) {
        stmt_free(s);
        return NULL;
    }
    return s;
}

static int postgres_prepare(db_conn *c, const char *sql, db_stmt **out)
{
    *out = NULL;
    int status = conn_ready(c);
    if (status != STORE_OK)
        return status;
    db_stmt *s = stmt_create(c, sql);
    if (!s) {
        snprintf(c->errmsg, sizeof c->errmsg, "out of memory preparing a statement");
        return STORE_ERROR;
    }
    status = stmt_prepare_remote(s);
    if (status != STORE_OK) {
        stmt_free(s);
        return status;
    }
    s->next = c->statements;
    c->statements = s;
    *out = s;
    return STORE_OK;
}

/* Drops the server's copy while the session can take a command; otherwise
 * (lost, or a failed transaction) the copy dies with the session or stays
 * as a harmless unused name. */
static void stmt_deallocate(db_stmt *s)
{
    db_conn *c = s->conn;
    if (c->lost || s->generation != c->generation || PQstatus(c->pg) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS)
        return;
    char sql[64];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
    PQclear(PQexec(c->pg, sql));
}

static void postgres_finalize(db_stmt *s)
{
    if (!s)
        return;
    db_conn *c = s->conn;
    for (db_stmt **link = &c->statements; *link; link = &(*link)->next)
        if (*link == s) {
            *link = s->next;
            break;
        }
    stmt_deallocate(s);
    stmt_free(s);
}

static void postgres_reset(db_stmt *s)
{
    stmt_clear_result(s);
    stmt_clear_params(s);
    s->state = STMT_READY;
}

static int postgres_param_index(db_stmt *s, const char *name)
{
    for (int k = 0; k < s->count; k++)
        if (strcmp(s->names[k], name) == 0)
            return k + 1;
    return 0;
}

/* The slot of 1-based index, emptied; NULL (errmsg set) if out of range. */
static param *stmt_param(db_stmt *s, int index)
{
    if (index < 1 || index > s->count) {
        snprintf(s->conn->errmsg, sizeof s->conn->errmsg, "no parameter %d in: %.200s", index, s->sql);
        return NULL;
    }
    param *p = &s->params[index - 1];
    free(p->heap);
    p->heap = NULL;
    s->values[index - 1] = NULL;
    s->lengths[index - 1] = 0;
    s->formats[index - 1] = 0;
    return p;
}

static int postgres_bind_null(db_stmt *s, int index)
{
    return stmt_param(s, index) ? STORE_OK : STORE_ERROR;
}

static int postgres_bind_int(db_stmt *s, int index, int64_t value)
{
    param *p = stmt_param(s, index);
    if (!p)
        return STORE_ERROR;
    snprintf(p->number, sizeof p->number, "%lld", (long long)value);
    s->values[index - 1] = p->number;
    return STORE_OK;
}

/* "%.17g" is exact for every double, and PostgreSQL reads it back exactly */
static int postgres_bind_double(db_stmt *s, int index, double value)
{
    param *p = stmt_param(s, index);
    if (!p)
        return STORE_ERROR;
    snprintf(p->number, sizeof p->number, "%.17g", value);
    s->values[index - 1] = p->number;
    return STORE_OK;
}

static int postgres_bind_bytes(db_stmt *s, int index, const void *data, size_t size, int format)
{
    param *p = stmt_param(s, index);
    if (!p)
        return STORE_ERROR;
    if (size > INT32_MAX || !(p->heap = malloc(size + 1))) {
        snprintf(s->conn->errmsg, sizeof s->conn->errmsg, "a value of %zu bytes cannot be bound", size);
        return STORE_ERROR;
    }
    if (size)
        memcpy(p->heap, data, size);
    p->heap[size] = '\0';
    s->values[index - 1] = p->heap;
    s->lengths[index - 1] = (int)size;
    s->formats[index - 1] = format;
    return STORE_OK;
}

static int postgres_bind_text(db_stmt *s, int index, const char *text)
{
    if (!text)
        return postgres_bind_null(s, index);
    return postgres_bind_bytes(s, index, text, strlen(text), 0);
}

static int postgres_bind_blob(db_stmt *s, int index, const void *data, size_t size)
{
    return postgres_bind_bytes(s, index, data, size, 1);
}

/* The first step: runs s (prepared again first if the connection is newer). */
static int stmt_execute(db_stmt *s)
{
    db_conn *c = s->conn;
    int status = conn_ready(c);
    if (status == STORE_OK && s->generation != c->generation)
        status = stmt_prepare_remote(s);
    if (status != STORE_OK)
        return status;
    PGresult *res = PQexecPrepared(c->pg, s->name, s->count, s->values, s->lengths, s->formats, 0);
    status = result_check(c, res);
    if (status != STORE_OK) {
        PQclear(res);
        return status;
    }
    const char *verb = PQcmdStatus(res);
    if (strncmp(verb, "INSERT", 6) == 0 || strncmp(verb, "UPDATE", 6) == 0 || strncmp(verb, "DELETE", 6) == 0 ||
        strncmp(verb, "MERGE", 5) == 0)
        c->changes = strtoll(PQcmdTuples(res), NULL, 10);
    s->result = res;
    s->row = -1;
    return STORE_OK;
}

static int postgres_step(db_stmt *s, bool *row)
{
    *row = false;
    if (s->state == STMT_DONE)
        return STORE_OK;
    if (s->state == STMT_READY) {
        int status = stmt_execute(s);
        if (status != STORE_OK) {
            s->state = STMT_DONE;
            return status;
        }
        s->state = STMT_ROWS;
    }
    if (s->columns) /* the previous row's decoded blobs */
        for (int i = 0; i < PQnfields(s->result); i++) {
            PQfreemem(s->columns[i].data);
            s->columns[i] = (decoded){0};
        }
    if (++s->row < PQntuples(s->result)) {
        *row = true;
        return STORE_OK;
    }
    stmt_clear_result(s);
    s->state = STMT_DONE;
    return STORE_OK;
}

/* Whether (row, column) exists: a current row and a column in range. */
static bool stmt_has(db_stmt *s, int column)
{
    return s->state == STMT_ROWS && s->result && column >= 0 && column < PQnfields(s->result);
}

static bool postgres_column_is_null(db_stmt *s, int column)
{
    return !stmt_has(s, column) || PQgetisnull(s->result, s->row, column);
}

static int64_t postgres_column_int(db_stmt *s, int column)
{
    if (postgres_column_is_null(s, column))
        return 0;
    const char *text = PQgetvalue(s->result, s->row, column);
    if (PQftype(s->result, column) == BOOL_OID)
        return text[0] == 't';
    return strtoll(text, NULL, 10);
}

/* PostgreSQL 12 and later print a double exactly (extra_float_digits 1,
 * the default): the shortest text that reads back as the same value */
static double postgres_column_double(db_stmt *s, int column)
{
    if (postgres_column_is_null(s, column))
        return 0;
    return strtod(PQgetvalue(s->result, s->row, column), NULL);
}

static const char *postgres_column_text(db_stmt *s, int column)
{
    if (postgres_column_is_null(s, column))
        return NULL;
    return PQgetvalue(s->result, s->row, column);
}

static const void *postgres_column_blob(db_stmt *s, int column, size_t *size)
{
    *size = 0;
    if (postgres_column_is_null(s, column))
        return NULL;
    const char *text = PQgetvalue(s->result, s->row, column);
    if (PQftype(s->result, column) != BYTEA_OID) { /* text read as bytes, as SQLite allows */
        *size = (size_t)PQgetlength(s->result, s->row, column);
        return text;
    }
    if (!s->columns && !(s->columns = calloc((size_t)PQnfields(s->result), sizeof *s->columns)))
        return NULL;
    decoded *d = &s->columns[column];
    if (!d->data)
        d->data = PQunescapeBytea((const unsigned char *)text, &d->size);
    *size = d->data ? d->size : 0;
    return d->data;
}

static const char *postgres_sql(db_stmt *s)
{
    return s->sql;
}

static bool postgres_busy(db_stmt *s)
{
    return s->state == STMT_ROWS;
}

/* ---- scripts, transactions, plans -------------------------------------------------- */

/* A migration may run longer than statement_timeout (an index on a big
 * table), and a second migrator waits for the first however long it takes
 * (its advisory lock would otherwise give up at lock_timeout): SET LOCAL
 * lifts both for the rest of the script's transaction only. */
static int postgres_exec(db_conn *c, const char *script)
{
    int status = conn_ready(c);
    if (status != STORE_OK)
        return status;
    static const char unbounded[] = "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0;\n";
    size_t n = strlen(script);
    char *sql = malloc(sizeof unbounded + n);
    if (!sql) {
        snprintf(c->errmsg, sizeof c->errmsg, "out of memory running a script");
        return STORE_ERROR;
    }
    memcpy(sql, unbounded, sizeof unbounded - 1);
    memcpy(sql + sizeof unbounded - 1, script, n + 1);
    status = conn_run(c, sql);
    free(sql);
    return status;
}

static int postgres_begin(db_conn *c)
{
    int status = conn_ready(c);
    if (status != STORE_OK)
        return status;
    status = conn_run(c, "BEGIN ISOLATION LEVEL SERIALIZABLE");
    c->in_transaction = status == STORE_OK;
    return status;
}

/* Ends the bookkeeping of a transaction, however it ended. */
static void conn_transaction_over(db_conn *c)
{
    c->in_transaction = false;
    c->transaction_lost = false;
}

static int postgres_commit(db_conn *c)
{
    if (c->transaction_lost || c->lost) {
        conn_transaction_over(c);
        snprintf(c->errmsg, sizeof c->errmsg,
                 "lost the connection to PostgreSQL at %s before COMMIT: the transaction was not committed", c->target);
        return STORE_UNAVAILABLE;
    }
    PGresult *res = PQexec(c->pg, "COMMIT");
    int status = result_check(c, res);
    if (status == STORE_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(c->errmsg, sizeof c->errmsg, "the transaction had failed, so PostgreSQL rolled it back");
        status = STORE_ERROR;
    }
    PQclear(res);
    conn_transaction_over(c);
    return status;
}

static void postgres_rollback(db_conn *c)
{
    bool lost = c->transaction_lost || c->lost;
    conn_transaction_over(c);
    if (lost)
        return;
    char kept[ERRMSG_SIZE]; /* the failure that led here stays the one reported */
    memcpy(kept, c->errmsg, sizeof kept);
    int status = conn_run(c, "ROLLBACK");
    memcpy(c->errmsg, kept, sizeof kept);
    if (status != STORE_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->lost = true; /* cannot roll back: a new session next time */
}

/* Appends the rows of an EXPLAIN result to out, one line each. */
static void plan_copy(const PGresult *res, char *out, size_t size)
{
    size_t used = 0;
    for (int i = 0; i < PQntuples(res) && used + 1 < size; i++) {
        int n = snprintf(out + used, size - used, "%s\n", PQgetvalue(res, i, 0));
        used = n < 0 ? size : used + (size_t)n;
    }
}

/* EXPLAIN EXECUTE of s with a NULL for each parameter, into out. */
static void plan_run(db_conn *c, db_stmt *s, char *out, size_t size)
{
    size_t len = 64 + strlen(s->name) + (size_t)s->count * 6;
    char *explain = malloc(len);
    if (!explain)
        return;
    int n = snprintf(explain, len, "EXPLAIN EXECUTE %s", s->name);
    for (int k = 0; k < s->count; k++)
        n += snprintf(explain + n, len - (size_t)n, "%sNULL", k ? ", " : "(");
    snprintf(explain + n, len - (size_t)n, "%s", s->count ? ")" : "");
    PGresult *res = PQexec(c->pg, explain);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        plan_copy(res, out, size);
    else
        conn_fail(c, res);
    PQclear(res);
    free(explain);
}

/* PostgreSQL 15 cannot EXPLAIN a statement with unbound $n, and NULL
 * values would fold the plan into "One-Time Filter: false". So the
 * statement is prepared, and EXPLAIN EXECUTE runs it with NULLs under
 * plan_cache_mode = force_generic_plan: the plan every parameter value
 * would get. enable_seqscan = off asks for the plan of a big table (a
 * test's table is tiny, and a sequential scan of ten rows is cheapest):
 * "Seq Scan" then means that no index can serve the query at all.
 *
 * A slow query is explained where it ran, maybe inside the caller's
 * transaction, which nothing here may end or doom: the settings are SET
 * LOCAL in a transaction (or a savepoint) of explain's own, rolled back;
 * a failed transaction is not touched; the caller's errmsg is kept. */
static void postgres_explain(db_conn *c, const char *sql, char *out, size_t size)
{
    if (size)
        out[0] = '\0';
    if (conn_ready(c) != STORE_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS)
        return;
    char kept[ERRMSG_SIZE];
    memcpy(kept, c->errmsg, sizeof kept);
    bool nested = ts == PQTRANS_INTRANS;
    if (conn_run(c, nested ? "SAVEPOINT strata_explain" : "BEGIN") == STORE_OK) {
        db_stmt *s = NULL;
        if (postgres_prepare(c, sql, &s) == STORE_OK &&
            conn_run(c, "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off") == STORE_OK)
            plan_run(c, s, out, size);
        conn_run(c, nested ? "ROLLBACK TO SAVEPOINT strata_explain; RELEASE SAVEPOINT strata_explain" : "ROLLBACK");
        postgres_finalize(s); /* after the rollback, so that DEALLOCATE can run */
    }
    memcpy(c->errmsg, kept, sizeof kept);
}

/* ---- the schema and the driver ------------------------------------------------------ */

/* schema_postgres.c: the DDL of each migration, the numbers of schema.c's. */
extern const char postgres_schema_v1[];
extern const char postgres_schema_v2[];
extern const char postgres_schema_v3[];
extern const char postgres_schema_v4[];
extern const char postgres_schema_v5[];
extern const char postgres_schema_v6[];
extern const char postgres_schema_v7[];
extern const char postgres_schema_v8[];

static const db_migration postgres_migrations[] = {
    {1, postgres_schema_v1}, {2, postgres_schema_v2}, {3, postgres_schema_v3}, {4, postgres_schema_v4},
    {5, postgres_schema_v5}, {6, postgres_schema_v6}, {7, postgres_schema_v7}, {8, postgres_schema_v8},
};

const db_driver db_postgres_driver = {
    .name = "postgres",
    .accepts = postgres_accepts,
    .open = postgres_open,
    .close = postgres_close,
    .relax_durability = postgres_relax_durability,
    .prepare = postgres_prepare,
    .finalize = postgres_finalize,
    .reset = postgres_reset,
    .param_index = postgres_param_index,
    .bind_int = postgres_bind_int,
    .bind_null = postgres_bind_null,
    .bind_double = postgres_bind_double,
    .bind_text = postgres_bind_text,
    .bind_blob = postgres_bind_blob,
    .step = postgres_step,
    .column_is_null = postgres_column_is_null,
    .column_int = postgres_column_int,
    .column_double = postgres_column_double,
    .column_text = postgres_column_text,
    .column_blob = postgres_column_blob,
    .changes = postgres_changes,
    .sql = postgres_sql,
    .busy = postgres_busy,
    .exec = postgres_exec,
    .begin = postgres_begin,
    .commit = postgres_commit,
    .rollback = postgres_rollback,
    .errmsg = postgres_errmsg,
    .explain = postgres_explain,
    .fragments =
        {
            /* One fixed key ("strata" in ASCII), held until the migration's
             * COMMIT. The transaction first drops to READ COMMITTED: a
             * SERIALIZABLE snapshot is taken by the statement that waits for
             * the lock, so a second migrator would not see what the first
             * applied and would apply it again; under READ COMMITTED each
             * statement after the wait sees it. (exec runs this: two statements.) */
            [DB_SQL_MIGRATION_LOCK] = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;"
                                      " SELECT pg_advisory_xact_lock(126943972389985)",
            [DB_SQL_SCHEMA_EXISTS] = "SELECT 1 WHERE to_regclass('schema_migrations') IS NOT NULL",
            [DB_SQL_BEGIN_SNAPSHOT] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            /* an identity "by default" takes explicit ids without moving its sequence */
            [DB_SQL_IDENTITY_RESET] = "SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                      "COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)",
            /* columns kept by triggers (schema_postgres.c, version 3); the
             * planner removes ITEM_FROM's join to categories, then unused */
            [DB_SQL_TAGS_OF_ITEM] = "i.tags",
            [DB_SQL_CATEGORY_OF_ITEM] = "i.category",
            [DB_SQL_SKIP_LOCKED] = "FOR UPDATE SKIP LOCKED",
            /* Not pg_current_wal_lsn(): with synchronous_commit = off the
             * write position can still be BEFORE the commit record once
             * COMMIT has returned (seen: 0/30011E8 after a commit that the
             * replica replayed at 0/3001228); the insert position is past
             * every record this session inserted. */
            [DB_SQL_COMMIT_POSITION] = "SELECT pg_current_wal_insert_lsn()::text",
            /* items.fields is json (schema_postgres.c): ->, ->> and json_typeof are immutable */
            [DB_SQL_FIELD_BOOL] = "(CASE json_typeof({fields} -> '{field}') WHEN 'boolean' THEN"
                                  " CASE {fields} ->> '{field}' WHEN 'true' THEN 1 ELSE 0 END END)",
            [DB_SQL_FIELD_NUMBER] = "(CASE json_typeof({fields} -> '{field}') WHEN 'number' THEN"
                                    " ({fields} ->> '{field}')::double precision END)",
            [DB_SQL_FIELD_TEXT] = "(CASE json_typeof({fields} -> '{field}') WHEN 'string' THEN"
                                  " ({fields} ->> '{field}') COLLATE \"C\" END)",
        },
    /* the generic plan of bare per-value SELECTs appended them and sorted
       all 320 matches of the bench's range (EXPLAIN ANALYZE); limited, each
       is a Limit over an ordered index scan under a Merge Append: 0.14 ms
       against 0.65 ms for the sorted matches, warm */
    .by_value_limits_each_walk = true,
    .migrations = postgres_migrations,
    .migration_count = sizeof postgres_migrations / sizeof postgres_migrations[0],
};

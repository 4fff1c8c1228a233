/*
 * store_tables.c — the small tables: sites, tokens and categories.
 *
 * Tokens are found by the SHA-256 of their secret text, so a copy of the
 * database hands nobody a working token; the final match is made in
 * constant time. Categories are per-site slugs with an optional parent.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

enum { TOKEN_NAME_MAX = 64 };

/* ---- sites -------------------------------------------------------------- */

int store_site_create(store_t *st, const char *name, int64_t *site_id)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st, "INSERT INTO sites(name, created_at) VALUES (:name, :now) RETURNING id", &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":name", name);
    db_bind_int(&q, ":now", store_now_ms());
    int64_t id = db_next_row(&q) ? db_column_int(&q, 0) : 0;
    status = db_query_end(&q, "creating the site");
    if (status == STORE_CONFLICT)
        return db_fail(st, STORE_CONFLICT, "site '%s' already exists", name);
    if (status == STORE_OK && site_id)
        *site_id = id;
    return status;
}

/* A site is never renamed or deleted, so the id this connection read for a
 * name stays true for the life of the connection, and an item or list miss
 * needs no statement to find its site (SPEC: one or two statements a miss).
 * Kept: only what was read outside a transaction (so committed), and only
 * names found (one not found may be created by another instance at any
 * time); the first SITE_MEMO_MAX names, beyond them each lookup asks. */
static bool site_remembered(const store_t *st, const char *name, int64_t *site_id)
{
    for (size_t i = 0; i < st->site_count; i++)
        if (strcmp(st->sites[i].name, name) == 0) {
            if (site_id)
                *site_id = st->sites[i].id;
            return true;
        }
    return false;
}

static void site_remember(store_t *st, const char *name, int64_t id)
{
    if (st->in_transaction || st->site_count == SITE_MEMO_MAX || strlen(name) > SITE_NAME_MAX)
        return;
    site_memo *m = &st->sites[st->site_count++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->id = id;
}

int store_site_preload(store_t *st)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st, "SELECT id, name FROM sites ORDER BY id", &q);
    if (status != STORE_OK)
        return status;
    while (db_next_row(&q)) {
        const char *name = db_column_text(&q, 1);
        if (name != NULL && !site_remembered(st, name, NULL))
            site_remember(st, name, db_column_int(&q, 0));
    }
    return db_query_end(&q, "reading the sites");
}

int store_site_lookup(store_t *st, const char *name, int64_t *site_id)
{
    db_clear_error(st);
    if (site_remembered(st, name, site_id))
        return STORE_OK;
    db_query q;
    int status = db_query_start(st, "SELECT id FROM sites WHERE name = :name", &q);
    if (status != STORE_OK)
        return status;
    db_bind_text(&q, ":name", name);
    bool found = db_next_row(&q);
    int64_t id = found ? db_column_int(&q, 0) : 0;
    status = db_query_end(&q, "looking up the site");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no site '%s'", name);
    if (status == STORE_OK) {
        site_remember(st, name, id);
        if (site_id)
            *site_id = id;
    }
    return status;
}

int store_site_list(store_t *st, json_t **sites)
{
    db_clear_error(st);
    *sites = NULL;
    db_query q;
    int status = db_query_start(st, "SELECT id, name FROM sites ORDER BY id", &q);
    if (status != STORE_OK)
        return status;
    json_t *list = json_array();
    bool ok = list != NULL;
    while (ok && db_next_row(&q))
        ok = json_array_append_new(list, json_pack("{s:I, s:s}", "id", (json_int_t)db_column_int(&q, 0), "name",
                                                   db_column_text(&q, 1))) == 0;
    status = db_query_end(&q, "listing sites");
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory listing sites");
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *sites = list;
    return STORE_OK;
}

/* ---- tokens ------------------------------------------------------------- */

int store_token_create(store_t *st, int64_t site_id, store_role role, const char *name, const uint8_t hash[32],
                       int64_t expires_at, int64_t *id)
{
    db_clear_error(st);
    if (role < ROLE_READ || role > ROLE_ADMIN)
        return db_fail(st, STORE_INVALID, "unknown token role %d", (int)role);
    if (strlen(name) > TOKEN_NAME_MAX)
        return db_fail(st, STORE_INVALID, "a token name is at most %d bytes", TOKEN_NAME_MAX);
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO tokens(site_id, role, name, hash, created_at, expires_at) "
                                "VALUES (:site, :role, :name, :hash, :now, :expires) RETURNING id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_int(&q, ":role", role);
    db_bind_text(&q, ":name", name);
    db_bind_blob(&q, ":hash", hash, 32);
    db_bind_int(&q, ":now", store_now_ms());
    db_bind_int_or_null(&q, ":expires", expires_at, expires_at != 0);
    int64_t made = db_next_row(&q) ? db_column_int(&q, 0) : 0;
    status = db_query_end(&q, "creating the token");
    if (status == STORE_OK && id != NULL)
        *id = made;
    if (status == STORE_CONFLICT)
        return db_fail(st, STORE_CONFLICT, "a token with this secret already exists");
    if (q.failure == DB_FOREIGN_KEY)
        return db_fail(st, STORE_NOT_FOUND, "no site with id %lld", (long long)site_id);
    return status;
}

static void token_from_row(const db_query *q, store_token *out)
{
    out->id = db_column_int(q, 0);
    out->site_id = db_column_int(q, 1);
    out->role = (store_role)db_column_int(q, 2);
    snprintf(out->name, sizeof out->name, "%s", db_column_text(q, 3) ? db_column_text(q, 3) : "");
    out->expires_at = db_column_is_null(q, 5) ? 0 : db_column_int(q, 5);
}

int store_token_lookup(store_t *st, const uint8_t hash[32], store_token *out)
{
    db_clear_error(st);
    db_query q;
    int status =
        db_query_start(st,
                       "SELECT id, site_id, role, name, hash, expires_at FROM tokens "
                       "WHERE hash = :hash AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)",
                       &q);
    if (status != STORE_OK)
        return status;
    db_bind_blob(&q, ":hash", hash, 32);
    db_bind_int(&q, ":now", store_now_ms());
    bool matched = false;
    if (db_next_row(&q)) {
        size_t size = 0;
        const void *stored = db_column_blob(&q, 4, &size);
        /* The index lookup already matched; comparing again in constant
         * time keeps the final decision free of timing differences. */
        matched = stored && size == 32 && CRYPTO_memcmp(stored, hash, 32) == 0;
        if (matched) {
            token_from_row(&q, out);
            memcpy(out->hash, stored, 32);
        }
    }
    status = db_query_end(&q, "looking up the token");
    if (status == STORE_OK && !matched)
        return db_fail(st, STORE_NOT_FOUND, "unknown, expired or revoked token");
    return status;
}

static const char *const role_names[] = {[ROLE_READ] = "read", [ROLE_WRITE] = "write", [ROLE_ADMIN] = "admin"};

static json_t *column_time_or_null(const db_query *q, int column)
{
    return db_column_is_null(q, column) ? json_null() : time_json(db_column_int(q, column));
}

int store_token_list(store_t *st, int64_t site_id, json_t **tokens)
{
    db_clear_error(st);
    *tokens = NULL;
    db_query q;
    int status = db_query_start(st,
                                "SELECT id, name, role, created_at, expires_at, last_used_at, revoked_at FROM tokens "
                                "WHERE site_id = :site ORDER BY id DESC",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    json_t *list = json_array();
    bool ok = list != NULL;
    while (ok && db_next_row(&q)) {
        int64_t role = db_column_int(&q, 2);
        json_t *one = json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o}", "id", (json_int_t)db_column_int(&q, 0), "name",
                                db_column_text(&q, 1) ? db_column_text(&q, 1) : "", "role",
                                role >= ROLE_READ && role <= ROLE_ADMIN ? role_names[role] : "unknown", "created_at",
                                column_time_or_null(&q, 3), "expires_at", column_time_or_null(&q, 4), "last_used_at",
                                column_time_or_null(&q, 5), "revoked_at", column_time_or_null(&q, 6));
        ok = one != NULL && json_array_append_new(list, one) == 0;
    }
    status = db_query_end(&q, "listing the tokens");
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory listing the tokens");
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *tokens = list;
    return STORE_OK;
}

int store_token_revoke(store_t *st, int64_t site_id, int64_t id)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, :now) "
                                "WHERE id = :id AND site_id = :site RETURNING id",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":now", store_now_ms());
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    status = db_query_end(&q, "revoking the token");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "this site has no token %lld", (long long)id);
    return status;
}

typedef struct touch_tx {
    const store_token_use *uses;
    size_t n;
} touch_tx;

static int touch_body(store_t *st, void *arg)
{
    const touch_tx *tx = arg;
    int status = STORE_OK;
    for (size_t i = 0; i < tx->n && status == STORE_OK; i++) {
        db_query q;
        status = db_query_start(st,
                                "UPDATE tokens SET last_used_at = :at "
                                "WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :at)",
                                &q);
        if (status != STORE_OK)
            break;
        db_bind_int(&q, ":at", tx->uses[i].at);
        db_bind_int(&q, ":id", tx->uses[i].id);
        status = db_query_run(&q, "recording a token's use");
    }
    return status;
}

int store_tokens_touch(store_t *st, const store_token_use *uses, size_t n)
{
    db_clear_error(st);
    touch_tx tx = {uses, n};
    return n == 0 ? STORE_OK : db_transact(st, touch_body, &tx, "recording tokens' use");
}

/* ---- categories --------------------------------------------------------- */

int category_id_lookup(store_t *st, int64_t site_id, const char *slug, int64_t *category_id)
{
    db_query q;
    int status = db_query_start(st, "SELECT id FROM categories WHERE site_id = :site AND slug = :slug", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_text(&q, ":slug", slug);
    bool found = db_next_row(&q);
    if (found)
        *category_id = db_column_int(&q, 0);
    status = db_query_end(&q, "looking up the category");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_INVALID, "unknown category '%s'", slug);
    return status;
}

static json_t *category_json(const char *slug, const char *name, const char *parent, int64_t items)
{
    json_t *category = json_object();
    bool ok = category != NULL;
    ok = ok && json_put(category, "slug", json_string(slug));
    ok = ok && json_put(category, "name", json_string(name));
    ok = ok && json_put(category, "parent", parent ? json_string(parent) : json_null());
    ok = ok && json_put(category, "items", json_integer(items));
    if (!ok) {
        json_decref(category);
        return NULL;
    }
    return category;
}

typedef struct category_tx {
    int64_t site_id;
    const char *slug, *name, *parent_slug;
} category_tx;

static int category_insert(store_t *st, void *arg)
{
    const category_tx *tx = arg;
    int64_t site_id = tx->site_id, parent_id = 0;
    const char *slug = tx->slug, *name = tx->name, *parent_slug = tx->parent_slug;
    if (parent_slug) {
        int status = category_id_lookup(st, site_id, parent_slug, &parent_id);
        if (status == STORE_INVALID)
            return db_fail(st, STORE_INVALID, "unknown parent category '%s'", parent_slug);
        if (status != STORE_OK)
            return status;
    }
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO categories(site_id, slug, name, parent_id) "
                                "VALUES (:site, :slug, :name, :parent)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    db_bind_text(&q, ":slug", slug);
    db_bind_text(&q, ":name", name);
    db_bind_int_or_null(&q, ":parent", parent_id, parent_slug != NULL);
    status = db_query_run(&q, "creating the category");
    if (status == STORE_CONFLICT)
        return db_fail(st, STORE_CONFLICT, "category '%s' already exists", slug);
    if (q.failure == DB_FOREIGN_KEY)
        return db_fail(st, STORE_NOT_FOUND, "no site with id %lld", (long long)site_id);
    return status;
}

int store_category_create(store_t *st, int64_t site_id, const char *slug, const char *name, const char *parent_slug,
                          json_t **out)
{
    db_clear_error(st);
    *out = NULL;
    json_t *category = category_json(slug, name, parent_slug, 0);
    if (!category)
        return db_fail(st, STORE_ERROR, "out of memory building the category");
    category_tx tx = {.site_id = site_id, .slug = slug, .name = name, .parent_slug = parent_slug};
    int status = db_transact(st, category_insert, &tx, "creating the category");
    if (status != STORE_OK) {
        json_decref(category);
        return status;
    }
    *out = category;
    return STORE_OK;
}

int store_category_list(store_t *st, int64_t site_id, json_t **out)
{
    db_clear_error(st);
    *out = NULL;
    db_query q;
    int status =
        db_query_start(st,
                       "SELECT c.slug, c.name, p.slug, (SELECT count(*) FROM items i WHERE i.site_id = c.site_id "
                       "AND i.status = 'published' AND i.category_id = c.id) "
                       "FROM categories c LEFT JOIN categories p ON p.id = c.parent_id "
                       "WHERE c.site_id = :site ORDER BY c.slug",
                       &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    json_t *categories = json_array();
    bool ok = categories != NULL;
    while (ok && db_next_row(&q)) {
        json_t *category =
            category_json(db_column_text(&q, 0), db_column_text(&q, 1), db_column_text(&q, 2), db_column_int(&q, 3));
        ok = category && json_array_append_new(categories, category) == 0;
    }
    status = db_query_end(&q, "listing categories");
    json_t *result = status == STORE_OK && ok ? json_object() : NULL;
    if (result && !json_put(result, "categories", categories)) {
        json_decref(result); /* json_put took categories with it */
        result = NULL;
    } else if (!result) {
        json_decref(categories);
    }
    if (status != STORE_OK)
        return status;
    if (!result)
        return db_fail(st, STORE_ERROR, "out of memory listing categories");
    *out = result;
    return STORE_OK;
}

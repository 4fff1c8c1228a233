/*
 * previews.c — the rows behind preview links (GET /preview/{token}).
 *
 * A preview link is a signed token that src/content makes and verifies;
 * the signature alone says which site, item, version and expiry it names.
 * The row exists for what a signature cannot do: a link can be revoked,
 * and a deleted item takes its links with it (previews.item_id is ON DELETE
 * CASCADE). Only the SHA-256 of the token's text is stored, so a copy of
 * the database hands nobody a working link. Every lookup is one primary-
 * key probe: a preview request costs its verification, this probe, one
 * item read and the version itself.
 *
 * The few reads a preview page needs beyond the link live here too (the
 * site's name, the item's published version, whether a version exists),
 * each one indexed statement.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "store/store_history.h"
#include "store/store_internal.h"

int store_preview_create(store_t *st, int64_t site_id, int64_t id, int64_t version, int64_t expires_at,
                         const char *author, const uint8_t token_hash[32])
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO previews(token_hash, site_id, item_id, version, expires_at, "
                                "created_at, created_by) "
                                "VALUES (:hash, :site, :item, :version, :expires, :now, :author)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_blob(&q, ":hash", token_hash, 32);
    db_bind_int(&q, ":site", site_id);
    db_bind_int(&q, ":item", id);
    db_bind_int(&q, ":version", version);
    db_bind_int(&q, ":expires", expires_at);
    db_bind_int(&q, ":now", store_now_ms());
    db_bind_text(&q, ":author", author);
    status = db_query_run(&q, "recording the preview link");
    if (q.failure == DB_FOREIGN_KEY)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    if (status == STORE_CONFLICT)
        return db_fail(st, STORE_CONFLICT, "a preview link with this token already exists");
    return status;
}

int store_preview_lookup(store_t *st, const uint8_t token_hash[32], store_preview *out)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(
        st,
        "SELECT site_id, item_id, version, expires_at, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, token_hash "
        "FROM previews WHERE token_hash = :hash",
        &q);
    if (status != STORE_OK)
        return status;
    db_bind_blob(&q, ":hash", token_hash, 32);
    bool matched = false;
    if (db_next_row(&q)) {
        /* As for API tokens: the index matched, the decision is made in
         * constant time. */
        size_t size = 0;
        const void *stored = db_column_blob(&q, 5, &size);
        matched = stored && size == 32 && CRYPTO_memcmp(stored, token_hash, 32) == 0;
        if (matched) {
            out->site_id = db_column_int(&q, 0);
            out->item_id = db_column_int(&q, 1);
            out->version = db_column_int(&q, 2);
            out->expires_at = db_column_int(&q, 3);
            out->revoked = db_column_int(&q, 4) != 0;
        }
    }
    status = db_query_end(&q, "looking up the preview link");
    if (status == STORE_OK && !matched)
        return db_fail(st, STORE_NOT_FOUND, "no such preview link (never made, or its item was deleted)");
    return status;
}

int store_preview_revoke(store_t *st, int64_t site_id, const uint8_t token_hash[32])
{
    db_clear_error(st);
    db_query q;
    /* A second revocation keeps the first one's time; both engines count the
     * row as changed all the same, which is what makes this idempotent. */
    int status = db_query_start(st,
                                "UPDATE previews SET revoked_at = COALESCE(revoked_at, :now) "
                                "WHERE token_hash = :hash AND site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":now", store_now_ms());
    db_bind_blob(&q, ":hash", token_hash, 32);
    db_bind_int(&q, ":site", site_id);
    status = db_query_run(&q, "revoking the preview link");
    if (status == STORE_OK && db_changes(st) == 0)
        return db_fail(st, STORE_NOT_FOUND, "no such preview link in this site");
    return status;
}

int store_version_exists(store_t *st, int64_t id, int64_t number)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st, "SELECT 1 FROM versions WHERE item_id = :item AND number = :number", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", id);
    db_bind_int(&q, ":number", number);
    bool found = db_next_row(&q);
    status = db_query_end(&q, "looking up the version");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld", (long long)id, (long long)number);
    return status;
}

int store_preview_item(store_t *st, int64_t site_id, int64_t id, char site_name[65], int64_t *published_version)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                "SELECT s.name, COALESCE(i.published_version, 0) "
                                "FROM items i JOIN sites s ON s.id = i.site_id "
                                "WHERE i.id = :item AND i.site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    if (found) {
        const char *name = db_column_text(&q, 0);
        snprintf(site_name, 65, "%s", name ? name : "");
        *published_version = db_column_int(&q, 1);
    }
    status = db_query_end(&q, "reading the previewed item");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    return status;
}

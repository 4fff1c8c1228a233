/*
 * autosaves.c — one rolling autosave slot per item and author.
 *
 * Editors' tools save every few seconds while someone types. Appending a
 * version each time would bury the history under near-identical snapshots,
 * so an autosave overwrites its author's slot instead: the edit merged
 * over the draft version it was based on, stored as plain JSON (a slot is
 * rewritten, never accumulated, so there is nothing to gain from deltas).
 *
 * The base must be the latest version, checked in the same write
 * transaction as the slot is written, so an autosave racing a save either
 * lands before it (and the save clears it) or is refused as stale (412):
 * the tab then reloads the draft and nothing anyone saved is overwritten.
 * Everything else (decoding the base, merging, encoding) happens before
 * that transaction, so the write lock is held for a lookup and one row.
 * An autosave sent with If-Match: * asks for no particular base (RFC 9110:
 * whatever is current), so when a save got in first it is not refused:
 * the transaction builds it again over the version it finds latest. That
 * rebuild holds the lock a little longer, only on such a race.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_history.h"
#include "store/store_internal.h"

static json_t *slot_json(int64_t id, const char *author, int64_t base_version, int64_t saved_at, json_t *content)
{
    json_t *slot = json_object();
    bool ok = slot != NULL;
    ok = ok && json_put(slot, "item", json_integer(id));
    ok = ok && json_put(slot, "author", json_string(author));
    ok = ok && json_put(slot, "base_version", json_integer(base_version));
    ok = ok && json_put(slot, "saved_at", time_json(saved_at));
    ok = ok && json_put(slot, "content", json_incref(content));
    if (!ok) {
        json_decref(slot);
        return NULL;
    }
    return slot;
}

static int refuse_stale(store_t *st, int64_t draft_version, int64_t base_version)
{
    return db_fail(st, STORE_STALE, "draft is at version %lld; this autosave was based on version %lld",
                   (long long)draft_version, (long long)base_version);
}

/* The slot's JSON: the edit merged over version base_version, which is
 * immutable, so it can be built before the write transaction. */
static int autosave_build(store_t *st, int64_t id, int64_t base_version, const store_edit_t *edit, json_t **snapshot,
                          char **data)
{
    int status = version_snapshot(st, id, base_version, snapshot);
    if (status == STORE_OK && !snapshot_merge_edit(*snapshot, edit))
        status = db_fail(st, STORE_INVALID, "a text of the edit is not valid UTF-8");
    if (status == STORE_OK && !(*data = json_dumps(*snapshot, JSON_COMPACT)))
        status = db_fail(st, STORE_ERROR, "out of memory encoding the autosave");
    return status;
}

typedef struct autosave_tx {
    int64_t site_id, id, now;
    const char *author;
    const store_edit_t *edit;
    bool any_base;        /* If-Match: *: over whatever version is latest when written */
    int64_t base_version; /* the version snapshot and data were built over */
    json_t *snapshot;
    char *data;
} autosave_tx;

static void autosave_tx_free(autosave_tx *tx)
{
    json_decref(tx->snapshot);
    free(tx->data);
    tx->snapshot = NULL;
    tx->data = NULL;
}

/* Inside the transaction: the base is still the latest (a save may have
 * come in since the slot was built), or, for If-Match: *, the slot is built
 * again over the latest; then it is written. */
static int autosave_write_tx(store_t *st, void *arg)
{
    autosave_tx *tx = arg;
    store_item_facts item;
    int status = store_item_exists(st, tx->site_id, tx->id, &item);
    if (status == STORE_OK && tx->base_version != item.draft_version) {
        if (tx->any_base) {
            autosave_tx_free(tx);
            tx->base_version = item.draft_version;
            status = autosave_build(st, tx->id, tx->base_version, tx->edit, &tx->snapshot, &tx->data);
        } else {
            status = refuse_stale(st, item.draft_version, tx->base_version);
        }
    }
    db_query q;
    if (status == STORE_OK)
        status = db_query_start(st,
                                "INSERT INTO autosaves(item_id, author, base_version, saved_at, data) "
                                "VALUES (:item, :author, :base, :now, :data) ON CONFLICT(item_id, author) "
                                "DO UPDATE SET base_version = excluded.base_version, "
                                "saved_at = excluded.saved_at, data = excluded.data",
                                &q);
    if (status == STORE_OK) {
        db_bind_int(&q, ":item", tx->id);
        db_bind_text(&q, ":author", tx->author);
        db_bind_int(&q, ":base", tx->base_version);
        db_bind_int(&q, ":now", tx->now);
        db_bind_blob(&q, ":data", tx->data, strlen(tx->data));
        status = db_query_run(&q, "writing the autosave");
    }
    return status;
}

int store_autosave_put(store_t *st, int64_t site_id, int64_t id, int64_t base_version, bool any_base,
                       const store_edit_t *edit, const char *author, json_t **slot)
{
    db_clear_error(st);
    *slot = NULL;
    autosave_tx tx = {.site_id = site_id,
                      .id = id,
                      .now = store_now_ms(),
                      .author = author,
                      .edit = edit,
                      .any_base = any_base,
                      .base_version = base_version};
    store_item_facts item;
    int status = edit_check(st, edit);
    if (status == STORE_OK)
        status = store_item_exists(st, site_id, id, &item);
    if (status == STORE_OK && any_base)
        tx.base_version = item.draft_version;
    else if (status == STORE_OK && base_version != item.draft_version)
        status = refuse_stale(st, item.draft_version, base_version);
    if (status == STORE_OK)
        status = autosave_build(st, id, tx.base_version, edit, &tx.snapshot, &tx.data);
    if (status == STORE_OK)
        status = db_transact_item(st, id, autosave_write_tx, &tx, "writing the autosave");
    if (status == STORE_OK && !(*slot = slot_json(id, author, tx.base_version, tx.now, tx.snapshot)))
        status = db_fail(st, STORE_ERROR, "out of memory building the autosave");
    autosave_tx_free(&tx);
    return status;
}

int store_autosave_get(store_t *st, int64_t site_id, int64_t id, const char *author, json_t **slot)
{
    db_clear_error(st);
    *slot = NULL;
    int status = store_item_exists(st, site_id, id, NULL);
    if (status != STORE_OK)
        return status;
    db_query q;
    status = db_query_start(st,
                            "SELECT base_version, saved_at, data FROM autosaves "
                            "WHERE item_id = :item AND author = :author",
                            &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", id);
    db_bind_text(&q, ":author", author);
    bool found = db_next_row(&q);
    if (found) {
        json_error_t error;
        size_t size = 0;
        const void *data = db_column_blob(&q, 2, &size);
        json_t *content = data ? json_loadb(data, size, 0, &error) : NULL;
        if (!content || !snapshot_valid(content))
            status = db_fail(st, STORE_ERROR, "the autosave of item %lld is damaged", (long long)id);
        else if (!(*slot = slot_json(id, author, db_column_int(&q, 0), db_column_int(&q, 1), content)))
            status = db_fail(st, STORE_ERROR, "out of memory building the autosave");
        json_decref(content);
    }
    int end = db_query_end(&q, "reading the autosave");
    if (status == STORE_OK)
        status = end;
    if (status == STORE_OK && !found)
        status = db_fail(st, STORE_NOT_FOUND, "no autosave of item %lld by %s", (long long)id, author);
    if (status != STORE_OK) {
        json_decref(*slot);
        *slot = NULL;
    }
    return status;
}

int store_autosave_clear(store_t *st, int64_t id, const char *author, int64_t up_to_version)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                "DELETE FROM autosaves WHERE item_id = :item AND author = :author "
                                "AND base_version <= :version",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", id);
    db_bind_text(&q, ":author", author);
    db_bind_int(&q, ":version", up_to_version);
    return db_query_run(&q, "clearing the autosave");
}

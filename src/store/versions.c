/*
 * versions.c — how versions are stored, and the history reads and
 * retention.
 *
 * A version row holds the compact JSON of an item's editable state,
 * immutable, as the bytes version_codec.c makes of it: a zstd frame alone
 * (a keyframe, encoding 1) or against the JSON of its skip-delta base
 * (encoding 2, `base` names the version). Reading a version gathers its
 * chain of bases (at most 1 + log2(K) rows) and decodes from the keyframe
 * up. (docs/history.md has the measured bytes per version.)
 *
 * Encoding 0, plain JSON, is what binaries before schema 2 wrote: it stays
 * readable, and store_versions_compress rewrites it (the "compress" job).
 *
 * Every decode is checked: a frame's content size must be the row's size,
 * and the SHA-256 of the result the row's hash, so a damaged row or a wrong
 * prefix is reported as an error, never served as content.
 *
 * Retention removes a version only when no remaining version names it as
 * its base, so whatever is kept stays readable; a later version whose base
 * was removed is simply written as a keyframe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/store_history.h"
#include "store/store_internal.h"

enum {
    CHAIN_MAX = 64, /* > 1 + log2 of the largest keyframe interval */
    RETENTION_BATCH = 500,
};

/* One stored row, copied out of the driver's result (so the statement can
 * serve the next row of a chain). */
typedef struct version_row {
    int64_t number;
    int encoding;
    int64_t base;
    int64_t size;
    uint8_t hash[32];
    void *data;
    size_t data_len;
} version_row;

static int row_load(store_t *st, int64_t item_id, int64_t number, version_row *row)
{
    memset(row, 0, sizeof *row);
    row->number = number;
    db_query q;
    int status = db_query_start(st,
                                "SELECT encoding, COALESCE(base, 0), size, hash, data FROM versions "
                                "WHERE item_id = :item AND number = :number",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", item_id);
    db_bind_int(&q, ":number", number);
    bool found = db_next_row(&q);
    if (found) {
        row->encoding = (int)db_column_int(&q, 0);
        row->base = db_column_int(&q, 1);
        row->size = db_column_int(&q, 2);
        size_t hash_size = 0;
        const void *hash = db_column_blob(&q, 3, &hash_size);
        const void *data = db_column_blob(&q, 4, &row->data_len);
        if (hash && hash_size == 32)
            memcpy(row->hash, hash, 32);
        row->data = malloc(row->data_len ? row->data_len : 1);
        if (!row->data)
            status = db_fail(st, STORE_ERROR, "out of memory reading version %lld", (long long)number);
        else if (row->data_len)
            memcpy(row->data, data, row->data_len);
    }
    int end = db_query_end(&q, "reading a version");
    if (status == STORE_OK)
        status = end;
    if (status == STORE_OK && !found)
        status = db_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld", (long long)item_id, (long long)number);
    if (status != STORE_OK) {
        free(row->data);
        row->data = NULL;
    }
    return status;
}

static int row_damaged(store_t *st, int64_t item_id, const version_row *row)
{
    return db_fail(st, STORE_ERROR, "version %lld of item %lld is damaged", (long long)row->number, (long long)item_id);
}

/* The row's JSON text (malloc'd, NUL-terminated); prefix: its base's. */
static int row_decode(store_t *st, int64_t item_id, const version_row *row, const char *prefix, size_t prefix_len,
                      char **out)
{
    switch (
        version_frame_decode(&st->codec, row->encoding, row->data, row->data_len, row->size, prefix, prefix_len, out)) {
    case VERSION_CODEC_OK: return STORE_OK;
    case VERSION_CODEC_NO_MEMORY:
        return db_fail(st, STORE_ERROR, "out of memory decoding version %lld", (long long)row->number);
    case VERSION_CODEC_UNKNOWN_ENCODING:
        return db_fail(st, STORE_ERROR, "version %lld of item %lld uses encoding %d, unknown here",
                       (long long)row->number, (long long)item_id, row->encoding);
    default: return row_damaged(st, item_id, row);
    }
}

int version_json(store_t *st, int64_t item_id, int64_t number, char **json, size_t *len)
{
    *json = NULL;
    version_row chain[CHAIN_MAX];
    size_t depth = 0;
    int status = STORE_OK;
    /* Gather the row and its bases down to a self-contained frame. */
    for (int64_t at = number; status == STORE_OK;) {
        if (depth == CHAIN_MAX) {
            status = db_fail(st, STORE_ERROR, "version %lld of item %lld has too long a chain of bases",
                             (long long)number, (long long)item_id);
            break;
        }
        status = row_load(st, item_id, at, &chain[depth]);
        if (status != STORE_OK) {
            if (depth > 0 && status == STORE_NOT_FOUND) /* a base vanished under a kept version: never by design */
                status = db_fail(st, STORE_ERROR, "version %lld of item %lld lost its base %lld", (long long)number,
                                 (long long)item_id, (long long)at);
            break;
        }
        const version_row *row = &chain[depth++];
        if (row->encoding != VERSION_ENCODING_ZSTD_DELTA)
            break;
        if (row->base <= 0 || row->base >= row->number) {
            status = row_damaged(st, item_id, row);
            break;
        }
        at = row->base;
    }
    /* Decode from the keyframe up. */
    char *text = NULL;
    for (size_t i = depth; status == STORE_OK && i-- > 0;) {
        char *next = NULL;
        status = row_decode(st, item_id, &chain[i], text, text ? (size_t)chain[i + 1].size : 0, &next);
        free(text);
        text = next;
    }
    if (status == STORE_OK) {
        uint8_t hash[32];
        crypto_sha256(text, (size_t)chain[0].size, hash);
        if (!crypto_equal(hash, chain[0].hash, sizeof hash))
            status = row_damaged(st, item_id, &chain[0]);
    }
    for (size_t i = 0; i < depth; i++)
        free(chain[i].data);
    if (status != STORE_OK) {
        free(text);
        return status;
    }
    *json = text;
    *len = (size_t)chain[0].size;
    return STORE_OK;
}

int version_snapshot(store_t *st, int64_t item_id, int64_t number, json_t **snapshot)
{
    *snapshot = NULL;
    char *text = NULL;
    size_t len = 0;
    int status = version_json(st, item_id, number, &text, &len);
    if (status != STORE_OK)
        return status;
    json_error_t error;
    json_t *decoded = json_loadb(text, len, 0, &error);
    free(text);
    if (!decoded || !snapshot_valid(decoded)) {
        json_decref(decoded);
        return db_fail(st, STORE_ERROR, "version %lld of item %lld is damaged", (long long)number, (long long)item_id);
    }
    *snapshot = decoded;
    return STORE_OK;
}

/* The frame for version `number` with JSON data: against its skip-delta
 * base when that base still exists, else a keyframe. */
static int version_encode(store_t *st, int64_t item_id, int64_t number, const char *data, size_t size, void **frame,
                          size_t *frame_len, int *encoding, int64_t *base)
{
    *base = version_skip_delta_base(number);
    char *prefix = NULL;
    size_t prefix_len = 0;
    if (*base > 0) {
        int status = version_json(st, item_id, *base, &prefix, &prefix_len);
        if (status == STORE_NOT_FOUND) { /* removed by retention */
            db_clear_error(st);
            *base = 0;
        } else if (status != STORE_OK) {
            return status;
        }
    }
    *encoding = *base > 0 ? VERSION_ENCODING_ZSTD_DELTA : VERSION_ENCODING_ZSTD;
    const char *why = "";
    version_codec_result result =
        version_frame_encode(&st->codec, data, size, prefix, prefix_len, frame, frame_len, &why);
    int status = result == VERSION_CODEC_OK ? STORE_OK
                 : result == VERSION_CODEC_NO_MEMORY
                     ? db_fail(st, STORE_ERROR, "out of memory compressing a version")
                     : db_fail(st, STORE_ERROR, "compressing a version failed: %s", why);
    free(prefix);
    return status;
}

int version_prepare(store_t *st, int64_t item_id, int64_t number, const json_t *snapshot, version_prepared *out)
{
    *out = (version_prepared){.item_id = item_id, .number = number};
    char *data = json_dumps(snapshot, JSON_COMPACT);
    if (!data)
        return db_fail(st, STORE_ERROR, "out of memory encoding version %lld", (long long)number);
    out->size = strlen(data);
    crypto_sha256(data, out->size, out->hash);
    int status =
        version_encode(st, item_id, number, data, out->size, &out->frame, &out->frame_len, &out->encoding, &out->base);
    free(data);
    return status;
}

void version_prepared_free(version_prepared *p)
{
    free(p->frame);
    p->frame = NULL;
}

int version_prepared_usable(store_t *st, const version_prepared *p, int64_t item_id, int64_t number, bool *usable)
{
    *usable = false;
    if (p->frame == NULL || p->item_id != item_id || p->number != number)
        return STORE_OK;
    if (p->base == 0) {
        *usable = true;
        return STORE_OK;
    }
    db_query q;
    int status = db_query_start(st, "SELECT 1 FROM versions WHERE item_id = :item AND number = :number", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", item_id);
    db_bind_int(&q, ":number", p->base);
    *usable = db_next_row(&q);
    return db_query_end(&q, "checking a version's base");
}

int version_insert(store_t *st, const version_prepared *p, const char *kind, const char *author, int64_t created_at)
{
    db_query q;
    int status = db_query_start(st,
                                "INSERT INTO versions(item_id, number, kind, author, created_at, size, hash, "
                                "encoding, base, data) VALUES (:item, :number, :kind, :author, :created, :size, "
                                ":hash, :encoding, :base, :data)",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", p->item_id);
    db_bind_int(&q, ":number", p->number);
    db_bind_text(&q, ":kind", kind);
    db_bind_text(&q, ":author", author);
    db_bind_int(&q, ":created", created_at);
    db_bind_int(&q, ":size", (int64_t)p->size);
    db_bind_blob(&q, ":hash", p->hash, sizeof p->hash);
    db_bind_int(&q, ":encoding", p->encoding);
    db_bind_int_or_null(&q, ":base", p->base, p->base > 0);
    db_bind_blob(&q, ":data", p->frame, p->frame_len);
    status = db_query_run(&q, "saving the version");
    if (status == STORE_CONFLICT)
        return db_fail(st, STORE_CONFLICT, "version %lld of item %lld already exists", (long long)p->number,
                       (long long)p->item_id);
    return status;
}

int version_append(store_t *st, int64_t item_id, int64_t number, const char *kind, const char *author,
                   int64_t created_at, const json_t *snapshot)
{
    version_prepared p;
    int status = version_prepare(st, item_id, number, snapshot, &p);
    if (status == STORE_OK)
        status = version_insert(st, &p, kind, author, created_at);
    version_prepared_free(&p);
    return status;
}

/* ---- reads ---------------------------------------------------------------- */

int store_item_exists(store_t *st, int64_t site_id, int64_t id, store_item_facts *facts)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                "SELECT created_at, draft_version, COALESCE(published_version, 0) FROM items "
                                "WHERE id = :id AND site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    if (found && facts)
        *facts = (store_item_facts){.created_at = db_column_int(&q, 0),
                                    .draft_version = db_column_int(&q, 1),
                                    .published_version = db_column_int(&q, 2)};
    status = db_query_end(&q, "reading the item");
    if (status == STORE_OK && !found)
        status = db_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    return status;
}

static void hash_hex(const uint8_t hash[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[64] = '\0';
}

/* The columns of a version's metadata, from column 0 of a query selecting
 * number, kind, author, created_at, size, length(data), hash. */
static void meta_from_row(const db_query *q, store_version_meta *m)
{
    memset(m, 0, sizeof *m);
    m->number = db_column_int(q, 0);
    snprintf(m->kind, sizeof m->kind, "%s", db_column_text(q, 1) ? db_column_text(q, 1) : "");
    snprintf(m->author, sizeof m->author, "%s", db_column_text(q, 2) ? db_column_text(q, 2) : "");
    m->created_at = db_column_int(q, 3);
    m->size = db_column_int(q, 4);
    m->stored = db_column_int(q, 5);
    size_t hash_size = 0;
    const void *hash = db_column_blob(q, 6, &hash_size);
    if (hash && hash_size == 32)
        memcpy(m->hash, hash, 32);
}

json_t *store_version_meta_json(const store_version_meta *m)
{
    char hex[65];
    hash_hex(m->hash, hex);
    json_t *o = json_object();
    bool ok = o != NULL;
    ok = ok && json_put(o, "number", json_integer(m->number));
    ok = ok && json_put(o, "kind", json_string(m->kind));
    ok = ok && json_put(o, "author", json_string(m->author));
    ok = ok && json_put(o, "created_at", time_json(m->created_at));
    ok = ok && json_put(o, "size", json_integer(m->size));
    ok = ok && json_put(o, "hash", json_string(hex));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

#define META_COLUMNS "number, kind, author, created_at, size, length(data), hash"

int store_version_list(store_t *st, int64_t site_id, int64_t id, int64_t before, int limit, json_t **versions,
                       int64_t *next)
{
    *versions = NULL;
    *next = 0;
    store_item_facts item;
    int status = store_item_exists(st, site_id, id, &item);
    if (status != STORE_OK)
        return status;
    if (limit < 1 || limit > 100)
        return db_fail(st, STORE_INVALID, "limit must be 1..100");
    int64_t published = item.published_version;
    db_query q;
    json_t *list = json_array();
    if (!list)
        return db_fail(st, STORE_ERROR, "out of memory listing versions");
    status = db_query_start(st,
                            "SELECT " META_COLUMNS " FROM versions WHERE item_id = :item AND number < :before "
                            "ORDER BY number DESC LIMIT :limit",
                            &q);
    if (status == STORE_OK) {
        db_bind_int(&q, ":item", id);
        db_bind_int(&q, ":before", before > 0 ? before : INT64_MAX);
        db_bind_int(&q, ":limit", limit + 1); /* one more: is there a next page? */
        int rows = 0;
        int64_t last = 0;
        bool more = false;
        while (status == STORE_OK && db_next_row(&q)) {
            if (rows == limit) {
                more = true;
                break;
            }
            store_version_meta m;
            meta_from_row(&q, &m);
            json_t *entry = store_version_meta_json(&m);
            if (!entry || !json_put(entry, "published", json_boolean(m.number == published)) ||
                !json_put(entry, "stored_bytes", json_integer(m.stored)) || json_array_append_new(list, entry) != 0)
                status = db_fail(st, STORE_ERROR, "out of memory listing versions");
            rows++;
            last = m.number;
        }
        int end = db_query_end(&q, "listing versions");
        if (status == STORE_OK)
            status = end;
        if (more)
            *next = last;
    }
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    *versions = list;
    return STORE_OK;
}

int store_version_get(store_t *st, int64_t site_id, int64_t id, int64_t number, store_version_meta *meta,
                      json_t **snapshot)
{
    *snapshot = NULL;
    store_item_facts item;
    int status = store_item_exists(st, site_id, id, &item);
    if (status != STORE_OK)
        return status;
    int64_t latest = item.draft_version;
    db_query q;
    status = db_query_start(st, "SELECT " META_COLUMNS " FROM versions WHERE item_id = :item AND number = :number", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":item", id);
    db_bind_int(&q, ":number", number);
    bool found = db_next_row(&q);
    if (found)
        meta_from_row(&q, meta);
    status = db_query_end(&q, "reading a version");
    if (status == STORE_OK && !found) {
        if (number >= 1 && number <= latest)
            return db_fail(st, STORE_NOT_FOUND, "version %lld of item %lld was removed by the retention policy",
                           (long long)number, (long long)id);
        return db_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld (its latest is %lld)", (long long)id,
                       (long long)number, (long long)latest);
    }
    if (status == STORE_OK)
        status = version_snapshot(st, id, number, snapshot);
    return status;
}

/* ---- the compress job ----------------------------------------------------- */

static int compress_one(store_t *st, int64_t id, int64_t number)
{
    char *data = NULL;
    size_t size = 0;
    void *frame = NULL;
    size_t frame_len = 0;
    int encoding = 0;
    int64_t base = 0;
    int status = version_json(st, id, number, &data, &size);
    if (status == STORE_OK)
        status = version_encode(st, id, number, data, size, &frame, &frame_len, &encoding, &base);
    db_query q;
    if (status == STORE_OK)
        status = db_query_start(st,
                                "UPDATE versions SET encoding = :encoding, base = :base, data = :data "
                                "WHERE item_id = :item AND number = :number AND encoding = 0",
                                &q);
    if (status == STORE_OK) {
        db_bind_int(&q, ":encoding", encoding);
        db_bind_int_or_null(&q, ":base", base, base > 0);
        db_bind_blob(&q, ":data", frame, frame_len);
        db_bind_int(&q, ":item", id);
        db_bind_int(&q, ":number", number);
        status = db_query_run(&q, "compressing a version");
    }
    free(frame);
    free(data);
    return status;
}

typedef struct compress_tx {
    int64_t id;
    const int64_t *numbers;
    size_t count;
} compress_tx;

static int compress_batch_tx(store_t *st, void *arg)
{
    const compress_tx *tx = arg;
    int status = STORE_OK;
    for (size_t i = 0; status == STORE_OK && i < tx->count; i++)
        status = compress_one(st, tx->id, tx->numbers[i]);
    return status;
}

int store_versions_compress(store_t *st, int64_t id, int64_t *converted)
{
    db_clear_error(st);
    *converted = 0;
    for (;;) {
        /* A batch at a time, oldest first, each in its own transaction. */
        int64_t numbers[RETENTION_BATCH];
        size_t n = 0;
        db_query q;
        int status = db_query_start(st,
                                    "SELECT number FROM versions WHERE item_id = :item AND encoding = 0 "
                                    "ORDER BY number LIMIT :limit",
                                    &q);
        if (status != STORE_OK)
            return status;
        db_bind_int(&q, ":item", id);
        db_bind_int(&q, ":limit", RETENTION_BATCH);
        while (db_next_row(&q))
            numbers[n++] = db_column_int(&q, 0);
        status = db_query_end(&q, "finding versions to compress");
        if (status != STORE_OK || n == 0)
            return status;
        compress_tx tx = {.id = id, .numbers = numbers, .count = n};
        status = db_transact(st, compress_batch_tx, &tx, "compressing versions");
        if (status != STORE_OK)
            return status;
        *converted += (int64_t)n;
    }
}

int store_versions_compress_all(store_t *st, int64_t *converted)
{
    db_clear_error(st);
    *converted = 0;
    int64_t ids[RETENTION_BATCH];
    size_t n = 0;
    db_query q;
    int status = db_query_start(st, "SELECT DISTINCT item_id FROM versions WHERE encoding = 0 LIMIT :limit", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":limit", RETENTION_BATCH);
    while (db_next_row(&q))
        ids[n++] = db_column_int(&q, 0);
    status = db_query_end(&q, "finding versions to compress");
    /* At most RETENTION_BATCH items a run: a job that finds more queues
     * itself again through its caller. */
    for (size_t i = 0; status == STORE_OK && i < n; i++) {
        int64_t done = 0;
        status = store_versions_compress(st, ids[i], &done);
        *converted += done;
    }
    return status;
}

/* ---- retention ------------------------------------------------------------ */

typedef struct retention_tx {
    const store_retention *policy;
    int64_t removed;
} retention_tx;

/* One batch of removable versions: old enough, unpublished (never
 * published), not among the item's latest keep_latest, and no remaining
 * version's base. Counts them in removed. */
static int retention_versions_tx(store_t *st, void *arg)
{
    retention_tx *tx = arg;
    const store_retention *p = tx->policy;
    tx->removed = 0;
    db_query q;
    int status = db_query_start(
        st,
        "DELETE FROM versions WHERE (item_id, number) IN ("
        " SELECT v.item_id, v.number FROM versions v JOIN items i ON i.id = v.item_id"
        " WHERE v.created_at < :cutoff"
        "  AND v.number <= i.draft_version - :keep"
        "  AND v.number IS DISTINCT FROM i.published_version"
        "  AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.item_id = v.item_id AND p.version = v.number)"
        "  AND NOT EXISTS (SELECT 1 FROM versions d WHERE d.item_id = v.item_id AND d.base = v.number)"
        " LIMIT :limit)",
        &q);
    if (status == STORE_OK) {
        db_bind_int(&q, ":cutoff", p->now_ms - p->draft_max_age_ms);
        db_bind_int(&q, ":keep", p->keep_latest);
        db_bind_int(&q, ":limit", RETENTION_BATCH);
        status = db_query_run(&q, "removing old versions");
    }
    if (status == STORE_OK)
        tx->removed = db_changes(st);
    return status;
}

static int retention_versions_batch(store_t *st, const store_retention *p, int64_t *removed)
{
    retention_tx tx = {.policy = p};
    int status = db_transact(st, retention_versions_tx, &tx, "removing old versions");
    *removed = status == STORE_OK ? tx.removed : 0;
    return status;
}

static int retention_delete(store_t *st, const char *sql, int64_t cutoff, const char *doing, int64_t *removed)
{
    db_query q;
    int status = db_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":cutoff", cutoff);
    status = db_query_run(&q, doing);
    if (status == STORE_OK)
        *removed = db_changes(st);
    return status;
}

int store_history_retention(store_t *st, const store_retention *policy, store_retention_result *out)
{
    db_clear_error(st);
    memset(out, 0, sizeof *out);
    int status = STORE_OK;
    /* Removing a version can free its base for the next batch: repeat
     * until a batch removes nothing (at most about log2(K) rounds per
     * chain, each bounded). */
    while (status == STORE_OK && policy->draft_max_age_ms > 0) {
        int64_t removed = 0;
        status = retention_versions_batch(st, policy, &removed);
        out->versions_removed += removed;
        if (removed == 0)
            break;
    }
    if (status == STORE_OK && policy->autosave_max_age_ms > 0)
        status = retention_delete(st, "DELETE FROM autosaves WHERE saved_at < :cutoff",
                                  policy->now_ms - policy->autosave_max_age_ms, "removing old autosaves",
                                  &out->autosaves_removed);
    if (status == STORE_OK)
        status = retention_delete(st, "DELETE FROM previews WHERE expires_at < :cutoff",
                                  policy->now_ms - policy->preview_grace_ms, "removing expired preview links",
                                  &out->previews_removed);
    return status;
}

int store_history_totals(store_t *st, json_t **sites)
{
    db_clear_error(st);
    *sites = NULL;
    db_query q;
    int status = db_query_start(st,
                                "SELECT s.name, COUNT(v.item_id), COALESCE(SUM(LENGTH(v.data)), 0) FROM sites s "
                                "LEFT JOIN items i ON i.site_id = s.id LEFT JOIN versions v ON v.item_id = i.id "
                                "GROUP BY s.name",
                                &q);
    if (status != STORE_OK)
        return status;
    json_t *out = json_object();
    bool ok = out != NULL;
    while (ok && db_next_row(&q)) {
        const char *name = db_column_text(&q, 0);
        ok = name != NULL && json_object_set_new(out, name,
                                                 json_pack("{s:I, s:I}", "versions", (json_int_t)db_column_int(&q, 1),
                                                           "stored_bytes", (json_int_t)db_column_int(&q, 2))) == 0;
    }
    status = db_query_end(&q, "counting the versions");
    if (status == STORE_OK && !ok)
        status = db_fail(st, STORE_ERROR, "out of memory counting the versions");
    if (status != STORE_OK) {
        json_decref(out);
        return status;
    }
    *sites = out;
    return STORE_OK;
}

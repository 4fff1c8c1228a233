/*
 * versions.c — how versions are stored, and the history reads and
 * retention.
 *
 * A version is the compact JSON of an item's editable state, immutable.
 * Stored whole, 10,000 versions of a 20 KB article would take 200 MB; but
 * consecutive versions differ by a few words, so each one is a zstd frame
 * compressed against a related version's JSON given to zstd as a "prefix"
 * (a raw-content dictionary: its matches may point into that text), and a
 * small edit costs tens of bytes.
 *
 * Which version is the prefix follows the skip-delta scheme (Subversion's).
 * Versions fall in groups of K (history.keyframe_interval, 256). The first
 * of a group, its keyframe, is compressed alone (encoding 1). Version
 * first + j is compressed against version first + (j & (j - 1)) — j with
 * its lowest set bit cleared — and records that number in `base`
 * (encoding 2). Reading any version therefore decodes at most
 * 1 + popcount(j) <= 1 + log2(K) frames (9 at K = 256), never a long chain,
 * while most prefixes are recent versions that share nearly all their text.
 * (docs/history.md has the measured bytes per version.)
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
#include <zstd.h>

#include "core/crypto.h"
#include "store/sqlite_internal.h"
#include "store/store_history.h"

enum {
    ENCODING_JSON = 0,
    ENCODING_ZSTD = 1,
    ENCODING_ZSTD_DELTA = 2,
    /* zstd level 6: against a prefix, a small edit costs about as many bytes
     * as at 19, at a tenth of the time (a save stays well under 1 ms). */
    ZSTD_LEVEL = 6,
    CHAIN_MAX = 64, /* > 1 + log2 of the largest keyframe interval */
    RETENTION_BATCH = 500,
};

static int keyframe_interval = 256; /* set once, before any thread starts */

void store_history_configure(int interval)
{
    if (interval >= 1)
        keyframe_interval = interval;
}

/* The version that version `number` is compressed against; 0: a keyframe. */
static int64_t skip_delta_base(int64_t number)
{
    int64_t j = (number - 1) % keyframe_interval;
    return j == 0 ? 0 : number - j + (j & (j - 1));
}

/* ---- the codec ---------------------------------------------------------- */

void sq_codec_free(store_t *st)
{
    ZSTD_freeCCtx(st->zstd_c);
    ZSTD_freeDCtx(st->zstd_d);
    st->zstd_c = NULL;
    st->zstd_d = NULL;
}

/* data compressed alone, or against prefix when it is not NULL. */
static int frame_encode(store_t *st, const char *data, size_t len, const char *prefix, size_t prefix_len, void **frame,
                        size_t *frame_len)
{
    *frame = NULL;
    if (!st->zstd_c && !(st->zstd_c = ZSTD_createCCtx()))
        return sq_fail(st, STORE_ERROR, "out of memory for the version compressor");
    ZSTD_CCtx *c = st->zstd_c;
    size_t bound = ZSTD_compressBound(len);
    void *out = malloc(bound);
    if (!out)
        return sq_fail(st, STORE_ERROR, "out of memory compressing a version");
    size_t rc = ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    if (!ZSTD_isError(rc) && prefix)
        rc = ZSTD_CCtx_refPrefix(c, prefix, prefix_len);
    if (!ZSTD_isError(rc))
        rc = ZSTD_compress2(c, out, bound, data, len);
    if (ZSTD_isError(rc)) {
        free(out);
        return sq_fail(st, STORE_ERROR, "compressing a version failed: %s", ZSTD_getErrorName(rc));
    }
    *frame = out;
    *frame_len = rc;
    return STORE_OK;
}

/* One stored row, copied out of SQLite (so the statement can serve the
 * next row of a chain). */
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
    sq_query q;
    int status = sq_query_start(st,
                                "SELECT encoding, IFNULL(base, 0), size, hash, data FROM versions "
                                "WHERE item_id = :item AND number = :number",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":item", item_id);
    sq_bind_int(&q, ":number", number);
    bool found = sq_next_row(&q);
    if (found) {
        row->encoding = sqlite3_column_int(q.stmt, 0);
        row->base = sqlite3_column_int64(q.stmt, 1);
        row->size = sqlite3_column_int64(q.stmt, 2);
        const void *hash = sqlite3_column_blob(q.stmt, 3);
        const void *data = sqlite3_column_blob(q.stmt, 4);
        row->data_len = (size_t)sqlite3_column_bytes(q.stmt, 4);
        if (hash && sqlite3_column_bytes(q.stmt, 3) == 32)
            memcpy(row->hash, hash, 32);
        row->data = malloc(row->data_len ? row->data_len : 1);
        if (!row->data)
            status = sq_fail(st, STORE_ERROR, "out of memory reading version %lld", (long long)number);
        else if (row->data_len)
            memcpy(row->data, data, row->data_len);
    }
    int end = sq_query_end(&q, "reading a version");
    if (status == STORE_OK)
        status = end;
    if (status == STORE_OK && !found)
        status = sq_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld", (long long)item_id, (long long)number);
    if (status != STORE_OK) {
        free(row->data);
        row->data = NULL;
    }
    return status;
}

static int row_damaged(store_t *st, int64_t item_id, const version_row *row)
{
    return sq_fail(st, STORE_ERROR, "version %lld of item %lld is damaged", (long long)row->number,
                   (long long)item_id);
}

/* The row's JSON text (malloc'd, NUL-terminated); prefix: its base's. */
static int row_decode(store_t *st, int64_t item_id, const version_row *row, const char *prefix, size_t prefix_len,
                      char **out)
{
    *out = NULL;
    if (row->size < 0 || (row->encoding == ENCODING_ZSTD_DELTA) != (prefix != NULL))
        return row_damaged(st, item_id, row);
    char *text = malloc((size_t)row->size + 1);
    if (!text)
        return sq_fail(st, STORE_ERROR, "out of memory decoding version %lld", (long long)row->number);
    if (row->encoding == ENCODING_JSON) {
        if (row->data_len != (size_t)row->size) {
            free(text);
            return row_damaged(st, item_id, row);
        }
        memcpy(text, row->data, row->data_len);
    } else if (row->encoding == ENCODING_ZSTD || row->encoding == ENCODING_ZSTD_DELTA) {
        if (!st->zstd_d && !(st->zstd_d = ZSTD_createDCtx())) {
            free(text);
            return sq_fail(st, STORE_ERROR, "out of memory for the version decompressor");
        }
        unsigned long long declared = ZSTD_getFrameContentSize(row->data, row->data_len);
        size_t rc = ZSTD_DCtx_reset(st->zstd_d, ZSTD_reset_session_and_parameters);
        if (!ZSTD_isError(rc) && prefix)
            rc = ZSTD_DCtx_refPrefix(st->zstd_d, prefix, prefix_len);
        if (!ZSTD_isError(rc) && declared == (unsigned long long)row->size)
            rc = ZSTD_decompressDCtx(st->zstd_d, text, (size_t)row->size, row->data, row->data_len);
        if (ZSTD_isError(rc) || declared != (unsigned long long)row->size || rc != (size_t)row->size) {
            free(text);
            return row_damaged(st, item_id, row);
        }
    } else {
        free(text);
        return sq_fail(st, STORE_ERROR, "version %lld of item %lld uses encoding %d, unknown here",
                       (long long)row->number, (long long)item_id, row->encoding);
    }
    text[row->size] = '\0';
    *out = text;
    return STORE_OK;
}

int sq_version_json(store_t *st, int64_t item_id, int64_t number, char **json, size_t *len)
{
    *json = NULL;
    version_row chain[CHAIN_MAX];
    size_t depth = 0;
    int status = STORE_OK;
    /* Gather the row and its bases down to a self-contained frame. */
    for (int64_t at = number; status == STORE_OK;) {
        if (depth == CHAIN_MAX) {
            status = sq_fail(st, STORE_ERROR, "version %lld of item %lld has too long a chain of bases",
                             (long long)number, (long long)item_id);
            break;
        }
        status = row_load(st, item_id, at, &chain[depth]);
        if (status != STORE_OK) {
            if (depth > 0) /* a base vanished under a kept version: never by design */
                status = sq_fail(st, STORE_ERROR, "version %lld of item %lld lost its base %lld", (long long)number,
                                 (long long)item_id, (long long)at);
            break;
        }
        const version_row *row = &chain[depth++];
        if (row->encoding != ENCODING_ZSTD_DELTA)
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

int sq_version_snapshot(store_t *st, int64_t item_id, int64_t number, json_t **snapshot)
{
    *snapshot = NULL;
    char *text = NULL;
    size_t len = 0;
    int status = sq_version_json(st, item_id, number, &text, &len);
    if (status != STORE_OK)
        return status;
    json_error_t error;
    json_t *decoded = json_loadb(text, len, 0, &error);
    free(text);
    if (!decoded || !sq_snapshot_valid(decoded)) {
        json_decref(decoded);
        return sq_fail(st, STORE_ERROR, "version %lld of item %lld is damaged", (long long)number, (long long)item_id);
    }
    *snapshot = decoded;
    return STORE_OK;
}

/* The frame for version `number` with JSON data: against its skip-delta
 * base when that base still exists, else a keyframe. */
static int version_encode(store_t *st, int64_t item_id, int64_t number, const char *data, size_t size, void **frame,
                          size_t *frame_len, int *encoding, int64_t *base)
{
    *base = skip_delta_base(number);
    char *prefix = NULL;
    size_t prefix_len = 0;
    if (*base > 0) {
        int status = sq_version_json(st, item_id, *base, &prefix, &prefix_len);
        if (status == STORE_NOT_FOUND) { /* removed by retention */
            sq_clear_error(st);
            *base = 0;
        } else if (status != STORE_OK) {
            return status;
        }
    }
    *encoding = *base > 0 ? ENCODING_ZSTD_DELTA : ENCODING_ZSTD;
    int status = frame_encode(st, data, size, prefix, prefix_len, frame, frame_len);
    free(prefix);
    return status;
}

int sq_version_append(store_t *st, int64_t item_id, int64_t number, const char *kind, const char *author,
                      int64_t created_at, const json_t *snapshot)
{
    char *data = json_dumps(snapshot, JSON_COMPACT);
    if (!data)
        return sq_fail(st, STORE_ERROR, "out of memory encoding version %lld", (long long)number);
    size_t size = strlen(data);
    uint8_t hash[32];
    crypto_sha256(data, size, hash);
    void *frame = NULL;
    size_t frame_len = 0;
    int encoding = 0;
    int64_t base = 0;
    sq_query q;
    int status = version_encode(st, item_id, number, data, size, &frame, &frame_len, &encoding, &base);
    if (status == STORE_OK)
        status = sq_query_start(st,
                                "INSERT INTO versions(item_id, number, kind, author, created_at, size, hash, "
                                "encoding, base, data) VALUES (:item, :number, :kind, :author, :created, :size, "
                                ":hash, :encoding, :base, :data)",
                                &q);
    if (status == STORE_OK) {
        sq_bind_int(&q, ":item", item_id);
        sq_bind_int(&q, ":number", number);
        sq_bind_text(&q, ":kind", kind);
        sq_bind_text(&q, ":author", author);
        sq_bind_int(&q, ":created", created_at);
        sq_bind_int(&q, ":size", (int64_t)size);
        sq_bind_blob(&q, ":hash", hash, sizeof hash);
        sq_bind_int(&q, ":encoding", encoding);
        sq_bind_int_or_null(&q, ":base", base, base > 0);
        sq_bind_blob(&q, ":data", frame, frame_len);
        status = sq_query_run(&q, "saving the version");
    }
    free(frame);
    free(data);
    if (status == STORE_CONFLICT)
        return sq_fail(st, STORE_CONFLICT, "version %lld of item %lld already exists", (long long)number,
                       (long long)item_id);
    return status;
}

/* ---- reads ---------------------------------------------------------------- */

int store_item_exists(store_t *st, int64_t site_id, int64_t id, store_item_facts *facts)
{
    sq_clear_error(st);
    sq_query q;
    int status = sq_query_start(st,
                                "SELECT created_at, draft_version, IFNULL(published_version, 0) FROM items "
                                "WHERE id = :id AND site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":id", id);
    sq_bind_int(&q, ":site", site_id);
    bool found = sq_next_row(&q);
    if (found && facts)
        *facts = (store_item_facts){.created_at = sqlite3_column_int64(q.stmt, 0),
                                    .draft_version = sqlite3_column_int64(q.stmt, 1),
                                    .published_version = sqlite3_column_int64(q.stmt, 2)};
    status = sq_query_end(&q, "reading the item");
    if (status == STORE_OK && !found)
        status = sq_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
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
static void meta_from_row(const sq_query *q, store_version_meta *m)
{
    memset(m, 0, sizeof *m);
    m->number = sqlite3_column_int64(q->stmt, 0);
    snprintf(m->kind, sizeof m->kind, "%s", sq_column_text(q, 1) ? sq_column_text(q, 1) : "");
    snprintf(m->author, sizeof m->author, "%s", sq_column_text(q, 2) ? sq_column_text(q, 2) : "");
    m->created_at = sqlite3_column_int64(q->stmt, 3);
    m->size = sqlite3_column_int64(q->stmt, 4);
    m->stored = sqlite3_column_int64(q->stmt, 5);
    const void *hash = sqlite3_column_blob(q->stmt, 6);
    if (hash && sqlite3_column_bytes(q->stmt, 6) == 32)
        memcpy(m->hash, hash, 32);
}

json_t *store_version_meta_json(const store_version_meta *m)
{
    char hex[65];
    hash_hex(m->hash, hex);
    json_t *o = json_object();
    bool ok = o != NULL;
    ok = ok && sq_put(o, "number", json_integer(m->number));
    ok = ok && sq_put(o, "kind", json_string(m->kind));
    ok = ok && sq_put(o, "author", json_string(m->author));
    ok = ok && sq_put(o, "created_at", sq_time_json(m->created_at));
    ok = ok && sq_put(o, "size", json_integer(m->size));
    ok = ok && sq_put(o, "hash", json_string(hex));
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
        return sq_fail(st, STORE_INVALID, "limit must be 1..100");
    int64_t published = item.published_version;
    sq_query q;
    json_t *list = json_array();
    if (!list)
        return sq_fail(st, STORE_ERROR, "out of memory listing versions");
    status = sq_query_start(st,
                            "SELECT " META_COLUMNS " FROM versions WHERE item_id = :item AND number < :before "
                            "ORDER BY number DESC LIMIT :limit",
                            &q);
    if (status == STORE_OK) {
        sq_bind_int(&q, ":item", id);
        sq_bind_int(&q, ":before", before > 0 ? before : INT64_MAX);
        sq_bind_int(&q, ":limit", limit + 1); /* one more: is there a next page? */
        int rows = 0;
        int64_t last = 0;
        bool more = false;
        while (status == STORE_OK && sq_next_row(&q)) {
            if (rows == limit) {
                more = true;
                break;
            }
            store_version_meta m;
            meta_from_row(&q, &m);
            json_t *entry = store_version_meta_json(&m);
            if (!entry || !sq_put(entry, "published", json_boolean(m.number == published)) ||
                !sq_put(entry, "stored_bytes", json_integer(m.stored)) ||
                json_array_append_new(list, entry) != 0)
                status = sq_fail(st, STORE_ERROR, "out of memory listing versions");
            rows++;
            last = m.number;
        }
        int end = sq_query_end(&q, "listing versions");
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
    sq_query q;
    status = sq_query_start(st, "SELECT " META_COLUMNS " FROM versions WHERE item_id = :item AND number = :number",
                            &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":item", id);
    sq_bind_int(&q, ":number", number);
    bool found = sq_next_row(&q);
    if (found)
        meta_from_row(&q, meta);
    status = sq_query_end(&q, "reading a version");
    if (status == STORE_OK && !found) {
        if (number >= 1 && number <= latest)
            return sq_fail(st, STORE_NOT_FOUND, "version %lld of item %lld was removed by the retention policy",
                           (long long)number, (long long)id);
        return sq_fail(st, STORE_NOT_FOUND, "item %lld has no version %lld (its latest is %lld)", (long long)id,
                       (long long)number, (long long)latest);
    }
    if (status == STORE_OK)
        status = sq_version_snapshot(st, id, number, snapshot);
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
    int status = sq_version_json(st, id, number, &data, &size);
    if (status == STORE_OK)
        status = version_encode(st, id, number, data, size, &frame, &frame_len, &encoding, &base);
    sq_query q;
    if (status == STORE_OK)
        status = sq_query_start(st,
                                "UPDATE versions SET encoding = :encoding, base = :base, data = :data "
                                "WHERE item_id = :item AND number = :number AND encoding = 0",
                                &q);
    if (status == STORE_OK) {
        sq_bind_int(&q, ":encoding", encoding);
        sq_bind_int_or_null(&q, ":base", base, base > 0);
        sq_bind_blob(&q, ":data", frame, frame_len);
        sq_bind_int(&q, ":item", id);
        sq_bind_int(&q, ":number", number);
        status = sq_query_run(&q, "compressing a version");
    }
    free(frame);
    free(data);
    return status;
}

int store_versions_compress(store_t *st, int64_t id, int64_t *converted)
{
    sq_clear_error(st);
    *converted = 0;
    for (;;) {
        /* A batch at a time, oldest first, each in its own transaction. */
        int64_t numbers[RETENTION_BATCH];
        size_t n = 0;
        sq_query q;
        int status = sq_query_start(st,
                                    "SELECT number FROM versions WHERE item_id = :item AND encoding = 0 "
                                    "ORDER BY number LIMIT :limit",
                                    &q);
        if (status != STORE_OK)
            return status;
        sq_bind_int(&q, ":item", id);
        sq_bind_int(&q, ":limit", RETENTION_BATCH);
        while (sq_next_row(&q))
            numbers[n++] = sqlite3_column_int64(q.stmt, 0);
        status = sq_query_end(&q, "finding versions to compress");
        if (status != STORE_OK || n == 0)
            return status;
        status = sq_begin(st);
        for (size_t i = 0; status == STORE_OK && i < n; i++)
            status = compress_one(st, id, numbers[i]);
        status = sq_end(st, status);
        if (status != STORE_OK)
            return status;
        *converted += (int64_t)n;
    }
}

int store_versions_compress_all(store_t *st, int64_t *converted)
{
    sq_clear_error(st);
    *converted = 0;
    int64_t ids[RETENTION_BATCH];
    size_t n = 0;
    sq_query q;
    int status = sq_query_start(st, "SELECT DISTINCT item_id FROM versions WHERE encoding = 0 LIMIT :limit", &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":limit", RETENTION_BATCH);
    while (sq_next_row(&q))
        ids[n++] = sqlite3_column_int64(q.stmt, 0);
    status = sq_query_end(&q, "finding versions to compress");
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

/* One batch of removable versions: old enough, unpublished (never
 * published), not among the item's latest keep_latest, and no remaining
 * version's base. Returns the number removed in *removed. */
static int retention_versions_batch(store_t *st, const store_retention *p, int64_t *removed)
{
    int status = sq_begin(st);
    sq_query q;
    if (status == STORE_OK)
        status = sq_query_start(
            st,
            "DELETE FROM versions WHERE (item_id, number) IN ("
            " SELECT v.item_id, v.number FROM versions v JOIN items i ON i.id = v.item_id"
            " WHERE v.created_at < :cutoff"
            "  AND v.number <= i.draft_version - :keep"
            "  AND v.number IS NOT i.published_version"
            "  AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.item_id = v.item_id AND p.version = v.number)"
            "  AND NOT EXISTS (SELECT 1 FROM versions d WHERE d.item_id = v.item_id AND d.base = v.number)"
            " LIMIT :limit)",
            &q);
    if (status == STORE_OK) {
        sq_bind_int(&q, ":cutoff", p->now_ms - p->draft_max_age_ms);
        sq_bind_int(&q, ":keep", p->keep_latest);
        sq_bind_int(&q, ":limit", RETENTION_BATCH);
        status = sq_query_run(&q, "removing old versions");
    }
    if (status == STORE_OK)
        *removed = sq_changes(st);
    return sq_end(st, status);
}

static int retention_delete(store_t *st, const char *sql, int64_t cutoff, const char *doing, int64_t *removed)
{
    sq_query q;
    int status = sq_query_start(st, sql, &q);
    if (status != STORE_OK)
        return status;
    sq_bind_int(&q, ":cutoff", cutoff);
    status = sq_query_run(&q, doing);
    if (status == STORE_OK)
        *removed = sq_changes(st);
    return status;
}

int store_history_retention(store_t *st, const store_retention *policy, store_retention_result *out)
{
    sq_clear_error(st);
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

/*
 * store_history.h — the repository's history half: versions, autosave
 * slots, preview links and retention (store.h has items, lists, sites).
 *
 * Versions are immutable: once version n of an item exists its content
 * never changes, so callers may cache what these functions return for as
 * long as the item exists. How they are stored (zstd skip-deltas) is
 * private to store/versions.c.
 *
 * Same conventions as store.h: STORE_OK or a negative store_status, and
 * store_errmsg() for a sentence fit for a problem+json detail.
 */
#ifndef STRATA_STORE_HISTORY_H
#define STRATA_STORE_HISTORY_H

#include "store/store.h"

/* Storage parameters, set once at start from [history] (defaults apply
 * otherwise: keyframe every 256 versions). */
void store_history_configure(int keyframe_interval);

/* ---- versions ----------------------------------------------------------- */

/* Metadata of one version, as listed. */
typedef struct store_version_meta {
    int64_t number;
    char kind[16]; /* draft | autosave | publish | restore */
    char author[65];
    int64_t created_at; /* ms */
    int64_t size;       /* bytes of the snapshot's JSON */
    int64_t stored;     /* bytes it takes in the database */
    uint8_t hash[32];   /* SHA-256 of the snapshot's JSON */
} store_version_meta;

/* {"number","kind","author","created_at","size","hash"}: the metadata as
 * the API shows it (immutable, unlike "published"). NULL when out of
 * memory. */
json_t *store_version_meta_json(const store_version_meta *meta);

/* What the history routes need to know of an item first. */
typedef struct store_item_facts {
    int64_t created_at;        /* ms */
    int64_t draft_version;     /* the latest version's number */
    int64_t published_version; /* 0: never published */
} store_item_facts;

/* Checks that item id exists in the site and fills *facts (if not NULL).
 * One indexed lookup. STORE_NOT_FOUND otherwise. */
int store_item_exists(store_t *st, int64_t site_id, int64_t id, store_item_facts *facts);

/* Versions of item id, newest first, numbers below `before` (0: from the
 * latest), at most limit (1..100). *versions: [{"number","kind","author",
 * "created_at","size","stored_bytes","hash","published"}…] where published
 * says the version is the item's published one. *next: the number to pass
 * as `before` for the next page, 0 when this page reached version 1. Cost
 * is O(limit) whatever the depth (a primary-key range). */
int store_version_list(store_t *st, int64_t site_id, int64_t id, int64_t before, int limit, json_t **versions,
                       int64_t *next);

/* Version n's metadata and snapshot ({"slug","title","excerpt","body",
 * "fields","category","tags"}). STORE_NOT_FOUND if the item or the version
 * does not exist; the message says when retention removed it. */
int store_version_get(store_t *st, int64_t site_id, int64_t id, int64_t number, store_version_meta *meta,
                      json_t **snapshot);

/* Appends version latest+1 of kind "restore" with version n's content.
 * base_version > 0: STORE_STALE unless it is the latest (If-Match); 0: no
 * check. *draft: the draft representation (as store_item_get_draft). */
int store_version_restore(store_t *st, int64_t site_id, const char *site_name, int64_t id, int64_t number,
                          int64_t base_version, const char *author, json_t **draft, int64_t *new_version);

/* Re-encodes every version of item id that is not stored compressed (rows
 * written before compression, by an older binary). *converted gets the
 * count. For the "compress" job. */
int store_versions_compress(store_t *st, int64_t id, int64_t *converted);
/* The same for the items that have such rows (up to 500 items a call). */
int store_versions_compress_all(store_t *st, int64_t *converted);

/* ---- autosave ----------------------------------------------------------- */

/* Writes author's autosave slot of item id: edit merged over version
 * base_version, which must be the latest (STORE_STALE otherwise), or,
 * when any_base (If-Match: *), over whatever version is the latest as the
 * slot is written. The history does not grow. *slot: {"item","author","base_version",
 * "saved_at","content":{snapshot}}. */
int store_autosave_put(store_t *st, int64_t site_id, int64_t id, int64_t base_version, bool any_base,
                       const store_edit_t *edit, const char *author, json_t **slot);
/* author's slot, STORE_NOT_FOUND if none. */
int store_autosave_get(store_t *st, int64_t site_id, int64_t id, const char *author, json_t **slot);
/* Removes author's slot if its base is at most up_to_version (a save that
 * supersedes it); no error if there is none. */
int store_autosave_clear(store_t *st, int64_t id, const char *author, int64_t up_to_version);

/* ---- preview links ------------------------------------------------------ */

/* Records a preview link by the SHA-256 of its token text. */
int store_preview_create(store_t *st, int64_t site_id, int64_t id, int64_t version, int64_t expires_at,
                         const char *author, const uint8_t token_hash[32]);

typedef struct store_preview {
    int64_t site_id, item_id, version, expires_at;
    bool revoked;
} store_preview;

/* The link with this token hash; STORE_NOT_FOUND if none (never made, or
 * its item was deleted). */
int store_preview_lookup(store_t *st, const uint8_t token_hash[32], store_preview *out);
/* Revokes it; STORE_NOT_FOUND if no such link in the site. Idempotent. */
int store_preview_revoke(store_t *st, int64_t site_id, const uint8_t token_hash[32]);
/* STORE_OK if item id has version number (not removed by retention),
 * STORE_NOT_FOUND otherwise. One primary-key probe, no content read. */
int store_version_exists(store_t *st, int64_t id, int64_t number);
/* For a preview page: the site's name and the item's published version (0
 * if never published, as in store_version_list). STORE_NOT_FOUND if no item
 * id in the site. */
int store_preview_item(store_t *st, int64_t site_id, int64_t id, char site_name[65], int64_t *published_version);
/* ms as every API timestamp reads: "2026-11-21T10:00:00.000Z". */
enum { STORE_TIME_TEXT_SIZE = 80 };
void store_time_text(int64_t ms, char out[STORE_TIME_TEXT_SIZE]);

/* ---- retention ---------------------------------------------------------- */

typedef struct store_retention {
    int64_t now_ms;
    int keep_latest;             /* each item's latest N versions stay */
    int64_t draft_max_age_ms;    /* 0: keep every version */
    int64_t autosave_max_age_ms; /* 0: keep autosave slots */
    int64_t preview_grace_ms;    /* expired links are deleted this long after expiry */
} store_retention;

typedef struct store_retention_result {
    int64_t versions_removed, autosaves_removed, previews_removed;
} store_retention_result;

/* Applies the policy in bounded transactions. Published versions (any
 * version ever published) and versions other kept versions are stored
 * against are never removed. */
int store_history_retention(store_t *st, const store_retention *policy, store_retention_result *out);

/* ---- scheduled publishing (schedules.c) ---- */

/* An item's scheduled changes, ms since the epoch; 0: none. */
typedef struct store_schedule {
    int64_t publish_at;
    int64_t unpublish_at;
} store_schedule;

/* Sets (or, both 0, clears) item id's schedule in the site.
 * STORE_NOT_FOUND if the site has no such item. */
int store_schedule_set(store_t *st, int64_t site_id, int64_t id, const store_schedule *schedule);
/* The item's schedule (both 0 when none); STORE_NOT_FOUND if the site has
 * no such item. */
int store_schedule_get(store_t *st, int64_t site_id, int64_t id, store_schedule *out);
/* Clears the item's publish_at (publish) or unpublish_at if it is `at` or
 * earlier: a change carried out is not carried out twice, and a later
 * time (a reschedule) stays. Publishing and unpublishing call it with their
 * own moment, in their transaction, so a schedule never still shows a
 * change readers can already see. */
int store_schedule_done(store_t *st, int64_t id, bool publish, int64_t at);

/* Every site's versions: how many, and the bytes their data takes as
 * stored (compressed). *sites: {"main":{"versions":n,"stored_bytes":n},…}.
 * One aggregate over the versions (their sizes are read from the row, not
 * the data): for the monitoring, not the request path. */
int store_history_totals(store_t *st, json_t **sites);

#endif

/*
 * schedules.c — an item's scheduled publish and unpublish (item_schedules,
 * schema version 4; the jobs that carry them out are content/schedules.c).
 *
 * One row per item with a schedule, none without: setting both times to
 * none deletes it. The item must be the site's: the row is written only
 * through a statement that finds it there, so a schedule never names
 * another site's item.
 */
#include "store/store_history.h"
#include "store/store_internal.h"

int store_schedule_set(store_t *st, int64_t site_id, int64_t id, const store_schedule *schedule)
{
    db_clear_error(st);
    bool clear = schedule->publish_at == 0 && schedule->unpublish_at == 0;
    db_query q;
    int status = db_query_start(st,
                                clear ? "DELETE FROM item_schedules WHERE item_id = "
                                        "(SELECT id FROM items WHERE id = :id AND site_id = :site)"
                                      : "INSERT INTO item_schedules(item_id, site_id, publish_at, unpublish_at) "
                                        "SELECT id, site_id, :publish, :unpublish FROM items "
                                        "WHERE id = :id AND site_id = :site "
                                        "ON CONFLICT(item_id) DO UPDATE SET publish_at = excluded.publish_at, "
                                        "unpublish_at = excluded.unpublish_at",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    if (!clear) {
        db_bind_int_or_null(&q, ":publish", schedule->publish_at, schedule->publish_at != 0);
        db_bind_int_or_null(&q, ":unpublish", schedule->unpublish_at, schedule->unpublish_at != 0);
    }
    status = db_query_run(&q, "scheduling the item");
    if (status == STORE_OK && !clear && db_changes(st) == 0)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    return status;
}

int store_schedule_get(store_t *st, int64_t site_id, int64_t id, store_schedule *out)
{
    db_clear_error(st);
    *out = (store_schedule){0};
    db_query q;
    int status = db_query_start(st,
                                "SELECT s.publish_at, s.unpublish_at FROM items i "
                                "LEFT JOIN item_schedules s ON s.item_id = i.id WHERE i.id = :id AND i.site_id = :site",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    if (found) {
        out->publish_at = db_column_is_null(&q, 0) ? 0 : db_column_int(&q, 0);
        out->unpublish_at = db_column_is_null(&q, 1) ? 0 : db_column_int(&q, 1);
    }
    status = db_query_end(&q, "reading the item's schedule");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no item %lld in this site", (long long)id);
    return status;
}

int store_schedule_done(store_t *st, int64_t id, bool publish, int64_t at)
{
    db_clear_error(st);
    db_query q;
    int status = db_query_start(st,
                                publish ? "UPDATE item_schedules SET publish_at = NULL WHERE item_id = :id AND "
                                          "publish_at <= :at"
                                        : "UPDATE item_schedules SET unpublish_at = NULL WHERE item_id = :id AND "
                                          "unpublish_at <= :at",
                                &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    db_bind_int(&q, ":at", at);
    status = db_query_run(&q, "marking the scheduled change done");
    if (status != STORE_OK)
        return status;
    status = db_query_start(
        st, "DELETE FROM item_schedules WHERE item_id = :id AND publish_at IS NULL AND unpublish_at IS NULL", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":id", id);
    return db_query_run(&q, "removing the finished schedule");
}

/*
 * search_sqlite.c — strata_rank, the rank of a full-text hit on SQLite: an
 * FTS5 auxiliary function registered on every connection (db_sqlite.c).
 *
 * Why not bm25. bm25 weighs a term by its rarity in the whole index and a
 * row by its length against the average, so every insert moves every
 * row's score: a keyset cursor holding (rank, id) would then point
 * somewhere else on the next page, and rows would repeat or be skipped.
 * strata_rank reads the row alone (as PostgreSQL's ts_rank does): for
 * each phrase of the query and each column, its hits h in that column
 * count weight × 2h / (h + 1) — the first hit a full weight, repetitions
 * less and less, never more than twice — with weights title 1000, excerpt
 * 300 and body 100, so one title hit (1000) outranks any number of hits
 * in the excerpt and body together (below 2 × 300 + 2 × 100 = 800). The
 * sum is an integer: exact in a cursor, equal for equal rows (ties are
 * broken by id).
 */
#include "store/db_sqlite.h"

static const int64_t column_weight[] = {1000, 300, 100}; /* title, excerpt, body */
enum { RANK_COLUMNS = sizeof column_weight / sizeof column_weight[0] };

static void strata_rank(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int argc,
                        sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    int64_t score = 0;
    int phrases = api->xPhraseCount(fts);
    for (int p = 0; p < phrases; p++) {
        int64_t hits[RANK_COLUMNS] = {0};
        Fts5PhraseIter iter;
        int column, offset;
        int rc = api->xPhraseFirst(fts, p, &iter, &column, &offset);
        if (rc != SQLITE_OK) {
            sqlite3_result_error_code(ctx, rc);
            return;
        }
        for (; column >= 0; api->xPhraseNext(fts, &iter, &column, &offset))
            if (column < RANK_COLUMNS)
                hits[column]++;
        for (int c = 0; c < RANK_COLUMNS; c++)
            score += column_weight[c] * 2 * hits[c] / (hits[c] + 1);
    }
    sqlite3_result_int64(ctx, score);
}

int db_sqlite_search_register(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_pointer(stmt, 1, (void *)&api, "fts5_api_ptr", NULL);
    (void)sqlite3_step(stmt);
    rc = sqlite3_finalize(stmt);
    if (rc != SQLITE_OK)
        return rc;
    if (api == NULL || api->iVersion < 2)
        return SQLITE_ERROR; /* an SQLite built without FTS5 */
    return api->xCreateFunction(api, "strata_rank", NULL, strata_rank, NULL);
}

/*
 * commit_group.h — group commit for the write transactions of one SQLite
 * file (commit_group.c says how it works). Internal to the store: db.c
 * hands db_transact here for a store that joined a group.
 */
#ifndef STRATA_STORE_COMMIT_GROUP_H
#define STRATA_STORE_COMMIT_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

typedef struct commit_group commit_group;

/* Whether a store on this SQLite URL should share its file's group: not
 * for an in-memory database, which is a different database per connection. */
bool commit_group_wanted(const char *url);
/* The group of the file at url, made on first use and shared by every
 * store of this process opened with the same url; NULL if memory is short
 * (the store then commits alone). Its writer connection is opened at its
 * first transaction. */
commit_group *commit_group_join(const char *url);
/* Leaves the group; the last to leave closes its connection. */
void commit_group_leave(commit_group **group);

/* db_transact for a store of the group: body runs on the group's writer
 * connection, in a savepoint of the transaction open there, and the call
 * returns once that transaction committed (its fsync included) or the
 * body failed. errmsg of caller gets the failure's words. A background
 * store's body waits while request writes queue (at most
 * COMMIT_GROUP_BACKGROUND_WAIT_MS). */
int commit_group_transact(commit_group *group, store_t *caller, int (*body)(store_t *st, void *arg), void *arg,
                          const char *doing);

/* What a group did since the process started (tests, benches). */
typedef struct commit_group_stats {
    uint64_t commits;    /* transactions committed */
    uint64_t writes;     /* bodies committed in them */
    uint64_t failed;     /* bodies that failed, each rolled back alone */
    uint64_t background; /* bodies of background stores committed */
} commit_group_stats;
void commit_group_stats_of(const store_t *st, commit_group_stats *out);

#endif

/*
 * replicas.h — PostgreSQL streaming replicas: how far each has replayed,
 * whether it may be read, and the figures operators watch.
 *
 * One poller thread (replicas.c) asks the primary for its WAL insert
 * position and each replica of db.replicas for the position it has
 * replayed, every db.replica_poll_ms, over connections of its own. What it
 * learns is kept in atomics that store_reader (store.h) reads on every
 * routed read, on any worker, without a lock.
 */
#ifndef STRATA_STORE_REPLICAS_H
#define STRATA_STORE_REPLICAS_H

#include <jansson.h>

#include "config/config.h"

/* Starts the poller when cfg names replicas (db.replicas); 0, or -1 when
 * the thread cannot start. Replicas that do not answer yet are down, not
 * an error: they are retried at every poll. */
int replicas_start(const strata_config *cfg);
/* Stops the poller and closes its connections (nothing if not started). */
void replicas_stop(void);
/* {"reads":{"primary":n,"replica":n},"replicas":[{"index","url","up",
 * "usable","replayed","lag_bytes","lag_seconds","reads"}…]}: the URL
 * without its password; "replayed" as "X/Y" (null before the first
 * answer). Reads are counted from process start, replicas or not. */
json_t *replicas_json(void);

#endif

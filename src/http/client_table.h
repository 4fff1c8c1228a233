/*
 * client_table.h — open connections counted per client address, for
 * server.max_connections_per_client (conn_guard.c).
 *
 * A client is an IPv4 address, or an IPv6 /64 (what one IPv6 client
 * usually holds). The table is sized once for the most entries it may hold
 * and never grows; it is not thread-safe (conn_guard.c holds a lock).
 */
#ifndef STRATA_HTTP_CLIENT_TABLE_H
#define STRATA_HTTP_CLIENT_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct client_key {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d; IPv6 cut to its /64 */
} client_key;

typedef struct client_table client_table;

/* The key of a peer address: 0, or -1 for a family without one. */
int client_key_of(const struct sockaddr *sa, client_key *out);

/* A table for up to max_entries clients at once; seed keys its hash (a
 * random one, so that addresses cannot be chosen to collide). NULL when out
 * of memory. */
client_table *client_table_new(size_t max_entries, uint64_t seed);
void client_table_free(client_table **table);

/* Open connections of the client. */
uint32_t client_table_count(const client_table *table, const client_key *key);
/* One more; the caller keeps to max_entries distinct clients. */
void client_table_add(client_table *table, const client_key *key);
/* One fewer; the client's entry goes at 0. A client not in it: nothing. */
void client_table_remove(client_table *table, const client_key *key);

#endif

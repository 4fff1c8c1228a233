/*
 * client_table.c — open connections per client address.
 *
 * Open addressing with linear probing, at least twice as many slots as
 * entries, so a probe always meets an empty slot and stays short. A slot
 * whose count drops to 0 is emptied by backward shift: the entries after it
 * that probed past it move back, so every key stays reachable from its home
 * slot and no tombstones pile up under connection churn.
 */
#include "http/client_table.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct client_slot {
    client_key key;
    uint32_t count; /* 0: the slot is empty */
} client_slot;

struct client_table {
    size_t mask; /* slots − 1, a power of two minus one */
    uint64_t seed;
    client_slot slots[];
};

int client_key_of(const struct sockaddr *sa, client_key *out)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        memcpy(out->addr, v4_mapped, sizeof v4_mapped);
        memcpy(out->addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        /* a v4-mapped address is one IPv4 client, kept whole */
        memcpy(out->addr, a, memcmp(a, v4_mapped, sizeof v4_mapped) == 0 ? 16 : 8);
        return 0;
    }
    return -1;
}

client_table *client_table_new(size_t max_entries, uint64_t seed)
{
    size_t slots = 16;
    while (slots < 2 * max_entries)
        slots *= 2;
    client_table *t = calloc(1, sizeof(*t) + slots * sizeof(client_slot));
    if (t != NULL) {
        t->mask = slots - 1;
        t->seed = seed;
    }
    return t;
}

void client_table_free(client_table **table)
{
    free(*table);
    *table = NULL;
}

static size_t slot_home(const client_table *t, const client_key *k)
{
    return (size_t)XXH3_64bits_withSeed(k->addr, sizeof k->addr, t->seed) & t->mask;
}

/* The key's slot, or the empty slot where it would go. */
static size_t slot_find(const client_table *t, const client_key *k)
{
    size_t i = slot_home(t, k);
    while (t->slots[i].count != 0 && memcmp(&t->slots[i].key, k, sizeof *k) != 0)
        i = (i + 1) & t->mask;
    return i;
}

uint32_t client_table_count(const client_table *table, const client_key *key)
{
    return table->slots[slot_find(table, key)].count;
}

void client_table_add(client_table *table, const client_key *key)
{
    client_slot *s = &table->slots[slot_find(table, key)];
    if (s->count++ == 0)
        s->key = *key;
}

void client_table_remove(client_table *table, const client_key *key)
{
    size_t i = slot_find(table, key);
    if (table->slots[i].count == 0 || --table->slots[i].count != 0)
        return;
    /* an entry at j may move back into the hole at i unless its home lies
     * cyclically within (i, j] */
    for (size_t j = (i + 1) & table->mask; table->slots[j].count != 0; j = (j + 1) & table->mask) {
        size_t home = slot_home(table, &table->slots[j].key);
        if (((j - home) & table->mask) >= ((j - i) & table->mask)) {
            table->slots[i] = table->slots[j];
            i = j;
        }
    }
    table->slots[i].count = 0;
}

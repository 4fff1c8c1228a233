/*
 * lsn.h — PostgreSQL WAL positions ("log sequence numbers"), as strata
 * carries them from a write to the reads and cache fills that must see it.
 *
 * A position is the 64-bit byte offset PostgreSQL writes as "X/Y" (two hex
 * numbers: the high and low 32 bits). A write's response names the
 * position of its commit; a replica that has replayed at least that far
 * holds the write. Positions only grow, so "has replayed ≥ P" stays true
 * once seen.
 *
 * LSN_NONE (0) means "no position to respect": SQLite, a read from the
 * primary (which holds every commit made before the read began), or a
 * request that carries none.
 */
#ifndef STRATA_CORE_LSN_H
#define STRATA_CORE_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t lsn_t;

#define LSN_NONE ((lsn_t)0)
/* "X/Y": at most 8 + 1 + 8 characters, and the NUL. */
#define LSN_TEXT_MAX 18

/* Writes lsn as PostgreSQL does ("16/B374D848", uppercase hex); returns
 * the length (no more than LSN_TEXT_MAX - 1), NUL-terminated. */
size_t lsn_format(lsn_t lsn, char out[LSN_TEXT_MAX]);
/* Reads "X/Y" (1 to 8 hex digits each, either case, nothing else) from
 * text[0..len). False, *out untouched, for anything else. */
bool lsn_parse(const char *text, size_t len, lsn_t *out);
/* The fixed-width form the cache tiers exchange (the bus message, the L2's
 * stamps): exactly 16 hex digits, written by fmt_hex(out, lsn, 16) in
 * lowercase, so that text order is position order. False, *out untouched,
 * unless all 16 are hex digits. */
bool lsn_parse_hex16(const char text[16], lsn_t *out);

#endif

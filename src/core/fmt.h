/*
 * fmt.h — number formatting for hot paths, where printf's machinery costs
 * more than the work it formats (a cache hit formats a request id, a
 * duration and key lengths).
 */
#ifndef STRATA_FMT_H
#define STRATA_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v in decimal (no NUL); returns the length (at most 20). */
size_t fmt_u64(char *out, uint64_t v);
/* Writes v in decimal, '-' first if negative (no NUL); returns the length
 * (at most 20). */
size_t fmt_i64(char *out, int64_t v);
/* Writes v in lowercase hex with exactly `digits` digits (no NUL). */
void fmt_hex(char *out, uint64_t v, int digits);
/* Writes microseconds as milliseconds with three decimals ("1.234"); no
 * NUL; returns the length. */
size_t fmt_us_as_ms(char *out, uint64_t us);

#endif

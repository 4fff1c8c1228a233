/*
 * timetext.h — RFC 3339 date-times as people write them, read into
 * milliseconds since the epoch (UTC).
 *
 * The grammar is the RFC's date-time, strictly: "YYYY-MM-DDTHH:MM:SS",
 * an optional fraction of 1 to 9 digits (kept to the millisecond, the
 * rest dropped), then "Z" or an offset "+HH:MM" / "-HH:MM"; 'T' and 'Z'
 * in either case. Calendar checked (days of each month, leap years),
 * years 1970 to 9999, no leap second. Computed from the civil date
 * (no timegm, no TZ, no locale).
 */
#ifndef STRATA_CORE_TIMETEXT_H
#define STRATA_CORE_TIMETEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The whole of len bytes as a date-time: true and *ms set; false and *ms
 * untouched for anything else. */
bool time_parse_rfc3339(const char *text, size_t len, int64_t *ms);

#endif

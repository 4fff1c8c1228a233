/*
 * cron.h — when a scheduled job runs: a cron-like schedule and its next tick.
 *
 * Two forms, both in UTC so instances in different time zones agree:
 *
 *   "M H DOM MON DOW"  five cron fields: minute 0-59, hour 0-23, day of
 *                      month 1-31, month 1-12, day of week 0-7 (0 and 7 are
 *                      Sunday). Each field is a comma list of `*`, `N`,
 *                      `A-B`, each optionally `/STEP` (`N/STEP` means N to the
 *                      field's maximum). As in Vixie cron, when neither day
 *                      field begins with `*`, a day matching either runs.
 *   "@every N[s|m|h]"  every N seconds, minutes or hours, at the multiples of
 *                      N since the epoch (so every instance ticks together).
 *   ""                 never.
 *
 * A tick is a time in ms; the scheduler makes tick T's job unique by its
 * key "KIND@T", so instances that see the same tick enqueue one job.
 */
#ifndef STRATA_CRON_H
#define STRATA_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cron_kind { CRON_NEVER = 0, CRON_EVERY, CRON_FIELDS } cron_kind;

typedef struct cron_schedule {
    cron_kind kind;
    int64_t every_ms; /* CRON_EVERY */
    uint64_t minutes; /* CRON_FIELDS: bit n set = n matches */
    uint32_t hours;
    uint32_t days;        /* bits 1..31 */
    uint16_t months;      /* bits 1..12 */
    uint8_t weekdays;     /* bits 0..6, Sunday = 0 */
    bool days_restricted; /* the field was not `*` */
    bool weekdays_restricted;
} cron_schedule;

/* Parses text (at most 255 bytes). 0, or -1 with err saying what is wrong
 * ("hour: 24 is not in 0..23"). */
int cron_parse(const char *text, cron_schedule *out, char *err, size_t err_size);

/* The first tick strictly after after_ms, or -1 for never (CRON_NEVER, or
 * fields that match no date in the next eight years, like "0 0 30 2 *"). */
int64_t cron_next(const cron_schedule *schedule, int64_t after_ms);

#endif

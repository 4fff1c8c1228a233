/*
 * cron.c — parsing a schedule into bit sets and finding its next tick.
 *
 * A field becomes a bit set of the values it matches, so matching a date is
 * five bit tests. The next tick is found day by day: a day that matches the
 * month and day fields is searched hour by hour and minute by minute from
 * its first candidate minute; a day that does not is skipped whole. At most
 * eight years of days are looked at (enough for the rarest date a schedule
 * can name, 29 February, across a skipped leap year such as 2100), so a
 * schedule that never matches ("0 0 30 2 *") costs ~3000 steps.
 */
#include "jobs/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { FIELD_COUNT = 5, TEXT_MAX = 255, SEARCH_DAYS = 8 * 366 };

#define MS_PER_MINUTE 60000LL
#define EVERY_MAX_MS (366LL * 24 * 3600 * 1000)

typedef struct field_spec {
    const char *name;
    int min, max;
} field_spec;

static const field_spec fields[FIELD_COUNT] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7},
};

/* ---- parsing ------------------------------------------------------------- */

/* A decimal number of at most 4 digits at *p; advances *p. */
static bool number_read(const char **p, int *out)
{
    int digits = 0, value = 0;
    while (isdigit((unsigned char)**p) && digits < 5) {
        value = value * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    *out = value;
    return digits > 0 && digits <= 4;
}

/* One comma-separated item of a field: `*`, `N` or `A-B`, then `/STEP`. */
static int item_parse(const char *item, const field_spec *spec, uint64_t *bits, char *err, size_t err_size)
{
    const char *p = item;
    int lo = spec->min, hi = spec->max, step = 1;
    bool ranged = false;
    if (*p == '*') {
        p++;
        ranged = true;
    } else {
        if (!number_read(&p, &lo)) {
            snprintf(err, err_size, "%s: '%s' is not a number, a range or *", spec->name, item);
            return -1;
        }
        hi = lo;
        if (*p == '-') {
            p++;
            ranged = true;
            if (!number_read(&p, &hi)) {
                snprintf(err, err_size, "%s: '%s' has no end to its range", spec->name, item);
                return -1;
            }
        }
    }
    if (*p == '/') {
        p++;
        if (!number_read(&p, &step) || step < 1 || step > spec->max) {
            snprintf(err, err_size, "%s: the step of '%s' must be a number in 1..%d", spec->name, item, spec->max);
            return -1;
        }
        if (!ranged)
            hi = spec->max; /* "N/STEP": from N to the end */
    }
    if (*p != '\0') {
        snprintf(err, err_size, "%s: unexpected '%c' in '%s'", spec->name, *p, item);
        return -1;
    }
    if (lo < spec->min || hi > spec->max || lo > hi) {
        snprintf(err, err_size, "%s: '%s' is not within %d..%d", spec->name, item, spec->min, spec->max);
        return -1;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << v;
    return 0;
}

static int field_parse(const char *text, const field_spec *spec, uint64_t *bits, char *err, size_t err_size)
{
    char copy[TEXT_MAX + 1];
    snprintf(copy, sizeof copy, "%s", text);
    *bits = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
        if (item_parse(item, spec, bits, err, err_size) != 0)
            return -1;
    if (*bits == 0 || text[0] == ',' || text[strlen(text) - 1] == ',' || strstr(text, ",,") != NULL) {
        snprintf(err, err_size, "%s: '%s' has an empty item", spec->name, text);
        return -1;
    }
    return 0;
}

static int every_parse(const char *text, cron_schedule *out, char *err, size_t err_size)
{
    const char *p = text + strlen("@every");
    while (*p == ' ' || *p == '\t')
        p++;
    int n = 0;
    bool digits = number_read(&p, &n);
    int64_t unit = *p == 's' ? 1000 : *p == 'm' ? 60000 : *p == 'h' ? 3600000 : 0;
    if (!digits || n < 1 || unit == 0 || p[1] != '\0' || n * unit > EVERY_MAX_MS) {
        snprintf(err, err_size, "'%s' is not @every N followed by s, m or h (N from 1, at most a year)", text);
        return -1;
    }
    out->kind = CRON_EVERY;
    out->every_ms = n * unit;
    return 0;
}

int cron_parse(const char *text, cron_schedule *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    if (strnlen(text, TEXT_MAX + 1) > TEXT_MAX) {
        snprintf(err, err_size, "a schedule is at most %d bytes", TEXT_MAX);
        return -1;
    }
    char copy[TEXT_MAX + 1];
    const char *start = text;
    while (isspace((unsigned char)*start))
        start++;
    size_t len = strlen(start);
    while (len > 0 && isspace((unsigned char)start[len - 1]))
        len--;
    snprintf(copy, sizeof copy, "%.*s", (int)len, start);
    if (copy[0] == '\0') {
        out->kind = CRON_NEVER;
        return 0;
    }
    if (strncmp(copy, "@every", 6) == 0 && (copy[6] == ' ' || copy[6] == '\t'))
        return every_parse(copy, out, err, err_size);
    if (copy[0] == '@') {
        snprintf(err, err_size, "'%s' is not a schedule: use @every N[s|m|h] or five cron fields", copy);
        return -1;
    }
    char *words[FIELD_COUNT + 1], *save = NULL;
    size_t count = 0;
    for (char *w = strtok_r(copy, " \t", &save); w != NULL && count <= FIELD_COUNT; w = strtok_r(NULL, " \t", &save))
        words[count++] = w;
    if (count != FIELD_COUNT) {
        snprintf(err, err_size, "'%.*s' needs five fields (minute hour day-of-month month day-of-week)", (int)len,
                 start);
        return -1;
    }
    uint64_t bits[FIELD_COUNT];
    for (size_t i = 0; i < FIELD_COUNT; i++)
        if (field_parse(words[i], &fields[i], &bits[i], err, err_size) != 0)
            return -1;
    if (bits[4] & (1u << 7))
        bits[4] = (bits[4] | 1u) & ~(1u << 7); /* 7 is Sunday too */
    out->kind = CRON_FIELDS;
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->weekdays = (uint8_t)bits[4];
    out->days_restricted = words[2][0] != '*';
    out->weekdays_restricted = words[4][0] != '*';
    return 0;
}

/* ---- the next tick ------------------------------------------------------- */

static bool day_matches(const cron_schedule *s, const struct tm *tm)
{
    if (!(s->months & (1u << (tm->tm_mon + 1))))
        return false;
    bool dom = s->days & (1u << tm->tm_mday), dow = s->weekdays & (1u << tm->tm_wday);
    if (s->days_restricted && s->weekdays_restricted)
        return dom || dow;
    return dom && dow;
}

/* The first matching minute of the day in *tm at or after its hour and
 * minute, as ms; -1 if none is left in that day. */
static int64_t first_minute_of_day(const cron_schedule *s, struct tm *tm)
{
    for (int h = tm->tm_hour; h < 24; h++) {
        if (!(s->hours & (1u << h)))
            continue;
        for (int m = h == tm->tm_hour ? tm->tm_min : 0; m < 60; m++) {
            if (s->minutes & (1ULL << m)) {
                tm->tm_hour = h;
                tm->tm_min = m;
                tm->tm_sec = 0;
                return (int64_t)timegm(tm) * 1000;
            }
        }
    }
    return -1;
}

int64_t cron_next(const cron_schedule *s, int64_t after_ms)
{
    if (after_ms < 0)
        after_ms = 0;
    if (s->kind == CRON_EVERY)
        return (after_ms / s->every_ms + 1) * s->every_ms;
    if (s->kind != CRON_FIELDS)
        return -1;
    time_t secs = (time_t)((after_ms / MS_PER_MINUTE + 1) * 60);
    struct tm tm;
    gmtime_r(&secs, &tm);
    for (int day = 0; day < SEARCH_DAYS; day++) {
        if (day_matches(s, &tm)) {
            int64_t tick = first_minute_of_day(s, &tm);
            if (tick >= 0)
                return tick;
        }
        tm.tm_mday += 1; /* the next day's midnight; timegm normalises */
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        secs = timegm(&tm);
        gmtime_r(&secs, &tm);
    }
    return -1;
}

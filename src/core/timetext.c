/*
 * timetext.c — RFC 3339 date-times (see timetext.h).
 *
 * Fixed positions first (the date and time are 19 bytes), then what may
 * follow; each field is read from exactly its digits. Days since the
 * epoch come from Howard Hinnant's days_from_civil (a year starting in
 * March puts the leap day last), exact for every year here.
 */
#include "core/timetext.h"

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = y / 400; /* y >= 1969 here: no negative years */
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS" at text: the seconds since the epoch as written. */
static bool date_time(const char *t, int64_t *secs)
{
    int y, mo, d, h, mi, s;
    if (!digits(t, 4, &y) || t[4] != '-' || !digits(t + 5, 2, &mo) || t[7] != '-' || !digits(t + 8, 2, &d) ||
        (t[10] != 'T' && t[10] != 't') || !digits(t + 11, 2, &h) || t[13] != ':' || !digits(t + 14, 2, &mi) ||
        t[16] != ':' || !digits(t + 17, 2, &s))
        return false;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59)
        return false;
    *secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return true;
}

/* ".d…" at text (up to end): its milliseconds and where it stops. */
static bool fraction(const char *t, const char *end, int *ms, const char **after)
{
    *ms = 0;
    *after = t;
    if (t == end || *t != '.')
        return true;
    size_t n = 0;
    for (t++; t + n < end && t[n] >= '0' && t[n] <= '9'; n++)
        if (n < 3)
            *ms = *ms * 10 + (t[n] - '0');
    if (n == 0 || n > 9)
        return false;
    for (size_t i = n; i < 3; i++)
        *ms *= 10;
    *after = t + n;
    return true;
}

/* "Z" or "±HH:MM", the rest of the text: the offset east of UTC in seconds. */
static bool offset(const char *t, const char *end, int *east)
{
    if (end - t == 1 && (*t == 'Z' || *t == 'z')) {
        *east = 0;
        return true;
    }
    int h, m;
    if (end - t != 6 || (*t != '+' && *t != '-') || !digits(t + 1, 2, &h) || t[3] != ':' || !digits(t + 4, 2, &m) ||
        h > 23 || m > 59)
        return false;
    *east = (*t == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return true;
}

bool time_parse_rfc3339(const char *text, size_t len, int64_t *ms)
{
    int64_t secs;
    int milli, east;
    const char *end = text + len, *rest;
    if (len < 20 || !date_time(text, &secs) || !fraction(text + 19, end, &milli, &rest) || !offset(rest, end, &east))
        return false;
    int64_t at = (secs - east) * 1000 + milli;
    if (at < 0)
        return false; /* 1970-01-01 written with an offset east of UTC */
    *ms = at;
    return true;
}

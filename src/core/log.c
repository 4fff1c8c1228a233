/*
 * log.c — JSON-lines logging (see log.h for the idea).
 *
 * Timestamps are RFC 3339 UTC with microseconds. A line that would overflow
 * its buffer is cut at a field boundary and marked "truncated":true rather
 * than written as invalid JSON.
 *
 * Every line is valid JSON, whatever bytes a client sent: strings keep
 * valid UTF-8 as it is, and each byte that is not part of a valid UTF-8
 * sequence is written as \u00XX of that byte (0xff → "\u00ff"). The byte's
 * value survives for the reader of the log; decoded, it reads as the
 * Latin-1 character of that value, which a valid UTF-8 character would
 * have written raw rather than escaped (so the log's text tells them
 * apart).
 */
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/fmt.h"
#include "core/utf8.h"

static volatile int log_threshold = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level level)
{
    log_threshold = level;
}

bool log_enabled(log_level level)
{
    return (int)level >= log_threshold;
}

int log_level_parse(const char *name, log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

/* How many leading bytes of s need no escaping: printable ASCII other
 * than '"' and '\\' (most of a path, a method, a request id). */
static size_t plain_ascii_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

char *json_escape_into(char *out, const char *out_end, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    /* the common case, copied at once */
    size_t room = out < out_end ? (size_t)(out_end - out) : 0; /* a full line may hand an end before its start */
    size_t plain = plain_ascii_prefix(u, len);
    if (plain > room)
        plain = room;
    memcpy(out, s, plain);
    out += plain;
    for (size_t i = plain; i < len && out < out_end; i++) {
        unsigned char c = u[i];
        size_t seq = c >= 0x80 ? utf8_sequence(u + i, len - i, NULL) : 0;
        if (c == '"' || c == '\\') {
            if (out_end - out < 2)
                break;
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && seq == 0)) {
            if (out_end - out < 6) /* a byte of no valid UTF-8: \u00XX of it */
                break;
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 15];
            out += 6;
        } else if (seq > 0) {
            if ((size_t)(out_end - out) < seq) /* never half a character */
                break;
            memcpy(out, u + i, seq);
            out += seq;
            i += seq - 1;
        } else {
            *out++ = (char)c;
        }
    }
    return out;
}

/* Reserve room for the closing `,"truncated":true}\n`. */
#define LOG_TAIL_RESERVE 24

static void log_append(log_line *line, const char *s, size_t n)
{
    size_t room = sizeof(line->buf) - LOG_TAIL_RESERVE - line->len;
    if (n > room)
        n = room;
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

/* Starts a field: its key, if the key and value_min bytes of its value
 * fit. Else the line is cut here — nothing of this field or any later one
 * is written, and log_finish marks the line truncated — so a line never
 * ends inside a key, a number or a null: it stays valid JSON. */
static bool log_key(log_line *line, const char *key, size_t value_min)
{
    size_t key_len = strlen(key);
    if (line->cut || line->len + 4 + key_len + value_min > sizeof(line->buf) - LOG_TAIL_RESERVE) {
        line->cut = true;
        return false;
    }
    log_append(line, ",\"", 2);
    log_append(line, key, key_len);
    log_append(line, "\":", 2);
    return true;
}

/* "2026-12-05T05:51:37" of a second, formatted once per second per thread
 * (gmtime_r and strftime cost more than the rest of an access line). */
static size_t timestamp_second(time_t sec, char out[24])
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    static _Thread_local size_t cached_len;
    if (sec != cached_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = sec;
    }
    memcpy(out, cached, cached_len);
    return cached_len;
}

void log_begin(log_line *line, log_level level, const char *msg)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    log_begin_at(line, level, msg, now.tv_sec, now.tv_nsec / 1000);
}

void log_begin_at(log_line *line, log_level level, const char *msg, time_t sec, long usec)
{
    line->active = log_enabled(level);
    line->len = 0;
    line->cut = false;
    if (!line->active)
        return;
    char ts[40];
    size_t n = timestamp_second(sec, ts);
    ts[n++] = '.';
    char micros[20];
    size_t m = fmt_u64(micros, (uint64_t)usec);
    memset(ts + n, '0', 6 - m); /* zero-padded to six digits */
    memcpy(ts + n + 6 - m, micros, m);
    n += 6;
    ts[n++] = 'Z';
    log_append(line, "{\"ts\":\"", 7);
    log_append(line, ts, n);
    log_append(line, "\",\"level\":\"", 11);
    log_append(line, level_names[level], strlen(level_names[level]));
    log_append(line, "\"", 1);
    log_str(line, "msg", msg);
}

void log_strn(log_line *line, const char *key, const char *value, size_t len)
{
    if (!line->active || !log_key(line, key, value == NULL ? 4 : 2))
        return;
    if (value == NULL) {
        log_append(line, "null", 4);
        return;
    }
    /* a string may be cut short (never inside an escape or a character):
     * the room for its closing quote is kept */
    log_append(line, "\"", 1);
    char *start = line->buf + line->len;
    char *end = line->buf + sizeof(line->buf) - LOG_TAIL_RESERVE - 1;
    char *stop = json_escape_into(start, end, value, len);
    line->len += (size_t)(stop - start);
    log_append(line, "\"", 1);
    if (stop == end && len > 0)
        line->cut = true;
}

void log_str(log_line *line, const char *key, const char *value)
{
    log_strn(line, key, value, value ? strlen(value) : 0);
}

void log_int(log_line *line, const char *key, int64_t value)
{
    if (!line->active)
        return;
    char num[24];
    size_t n = 0;
    if (value < 0)
        num[n++] = '-';
    n += fmt_u64(num + n, value < 0 ? 0u - (uint64_t)value : (uint64_t)value);
    if (log_key(line, key, n))
        log_append(line, num, n);
}

void log_finish(log_line *line)
{
    /* log_append never uses the reserve, so the tail always fits. */
    if (line->cut || line->len >= sizeof(line->buf) - LOG_TAIL_RESERVE - 1) {
        static const char cut[] = ",\"truncated\":true";
        memcpy(line->buf + line->len, cut, sizeof(cut) - 1);
        line->len += sizeof(cut) - 1;
    }
    line->buf[line->len++] = '}';
    line->buf[line->len++] = '\n';
}

void log_end(log_line *line)
{
    if (!line->active)
        return;
    log_finish(line);
    log_write_line(line->buf, line->len, false);
}

void log_end_buffered(log_line *line)
{
    if (!line->active)
        return;
    log_finish(line);
    log_write_line(line->buf, line->len, true);
}

void log_event(log_level level, const char *msg)
{
    log_line line;
    log_begin(&line, level, msg);
    log_end(&line);
}

void log_event_str(log_level level, const char *msg, const char *key, const char *value)
{
    log_line line;
    log_begin(&line, level, msg);
    log_str(&line, key, value);
    log_end(&line);
}

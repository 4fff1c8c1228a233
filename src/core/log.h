/*
 * log.h — structured logging: one JSON object per line on stderr.
 *
 * A line is built field by field in a fixed buffer on the caller's stack and
 * written with one write(2), so lines from different threads never
 * interleave and logging never allocates. The level threshold is a global
 * read without a lock (an int; SIGHUP may change it).
 *
 *     log_line line;
 *     log_begin(&line, LOG_INFO, "request");
 *     log_str(&line, "path", path);
 *     log_int(&line, "status", 200);
 *     log_end(&line);
 */
#ifndef STRATA_LOG_H
#define STRATA_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

typedef struct log_line {
    char buf[4096];
    size_t len;
    bool active; /* false when below the threshold: the calls do nothing */
} log_line;

void log_set_level(log_level level);
bool log_enabled(log_level level);
/* "debug" | "info" | "warn" | "error" → 0 and *out, else -1. */
int log_level_parse(const char *name, log_level *out);

void log_begin(log_line *line, log_level level, const char *msg);
void log_str(log_line *line, const char *key, const char *value);
void log_strn(log_line *line, const char *key, const char *value, size_t len);
void log_int(log_line *line, const char *key, int64_t value);
void log_end(log_line *line);

/* One-call forms for events with at most one string field. */
void log_event(log_level level, const char *msg);
void log_event_str(log_level level, const char *msg, const char *key, const char *value);

/* Appends s (len bytes) to out as the inside of a JSON string, escaping
 * quotes, backslashes, control bytes, and every byte that is not part of
 * valid UTF-8 (as \u00XX of the byte); stops before out_end, never within
 * an escape or a character. Returns the new end. Shared with anything that
 * hand-writes JSON. */
char *json_escape_into(char *out, const char *out_end, const char *s, size_t len);

#endif

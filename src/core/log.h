/*
 * log.h — structured logging: one JSON object per line on stderr.
 *
 * A line is built field by field in a fixed buffer on the caller's stack,
 * so logging a line never allocates, and is written whole, so lines from
 * different threads never interleave (log_writer.c). The level threshold
 * is a global read without a lock (an int; SIGHUP may change it).
 *
 * Serving never waits for the log: once log_writer_start has run, the
 * access log's lines (log_end_buffered) are batched per thread and written
 * by a writer thread, and other lines are written at once only when the
 * sink can take them without waiting; a sink too slow for the lines is
 * met by dropping them, counted (log_writer_stats), never by a stall.
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
#include <time.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

typedef struct log_line {
    char buf[4096];
    size_t len;
    bool active; /* false when below the threshold: the calls do nothing */
    bool cut;    /* a field did not fit: it and every later one are left out */
} log_line;

void log_set_level(log_level level);
bool log_enabled(log_level level);
/* "debug" | "info" | "warn" | "error" → 0 and *out, else -1. */
int log_level_parse(const char *name, log_level *out);

void log_begin(log_line *line, log_level level, const char *msg);
/* With the time given (sec, usec since 1970 UTC) instead of read: the
 * access log uses the loop's clock of the request. */
void log_begin_at(log_line *line, log_level level, const char *msg, time_t sec, long usec);
void log_str(log_line *line, const char *key, const char *value);
void log_strn(log_line *line, const char *key, const char *value, size_t len);
void log_int(log_line *line, const char *key, int64_t value);
void log_end(log_line *line);
/* The closing brace and newline (and ,"truncated":true when a field was
 * cut), without writing: log_end's first half, for the fuzz harness. */
void log_finish(log_line *line);
/* For the access log: the line joins this thread's buffer (written within
 * the writer's flush interval); log_end writes at once when it can. */
void log_end_buffered(log_line *line);

/* The writer thread (log_writer.c): lines buffered per thread are written
 * when a thread's 64 KB buffer fills or its oldest line is flush_ms old; at
 * most queue_bytes wait for the sink, beyond that lines are dropped.
 * Before start and after stop, every line is written directly (blocking).
 * Stop writes what is buffered (waiting at most about a second for a stalled
 * sink) and ends the thread; call it once no other thread logs. */
int log_writer_start(int flush_ms, size_t queue_bytes);
void log_writer_stop(void);
/* Lines written by the writer or directly while it ran, and lines dropped. */
void log_writer_stats(uint64_t *written, uint64_t *dropped);
/* log_end's and log_end_buffered's way out (log_writer.c). */
void log_write_line(const char *line, size_t len, bool buffered);

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

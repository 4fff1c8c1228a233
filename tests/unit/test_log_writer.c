/*
 * test_log_writer.c — the log's writer thread (src/core/log_writer.c), with
 * stderr made a real pipe: buffered lines come out whole and all of them
 * while someone reads; with nobody reading, writers are never held up,
 * lines are dropped and counted, and stop still returns.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"

enum { THREADS = 3, LINES_PER_THREAD = 20000 };

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* stderr becomes the write end of a new pipe; returns the read end and
 * keeps the old stderr in *saved. */
static int stderr_to_pipe(int *saved)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    *saved = dup(STDERR_FILENO);
    assert_true(*saved >= 0);
    assert_int_equal(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    close(fds[1]);
    return fds[0];
}

static void stderr_restore(int saved)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
}

static void *write_lines(void *arg)
{
    intptr_t thread = (intptr_t)arg;
    for (int i = 0; i < LINES_PER_THREAD; i++) {
        log_line line;
        log_begin(&line, LOG_INFO, "request");
        log_int(&line, "thread", thread);
        log_int(&line, "n", i);
        log_str(&line, "path", "/v1/main/content/12345?some=padding&to=make&the=line&a=bit&longer=yes");
        log_end_buffered(&line);
    }
    return NULL;
}

typedef struct reader {
    int fd;
    size_t lines, bad;
    size_t next[THREADS]; /* each thread's lines arrive in order */
} reader;

static void reader_take(reader *r, const char *line, size_t len)
{
    int thread = -1, n = -1;
    if (len > 0 && line[0] == '{' && line[len - 1] == '}') {
        const char *t = strstr(line, "\"thread\":"), *k = strstr(line, "\"n\":");
        if (t != NULL && k != NULL) {
            thread = atoi(t + 9);
            n = atoi(k + 4);
        }
    }
    if (thread < 0 || thread >= THREADS || (size_t)n != r->next[thread]) {
        r->bad++;
        return;
    }
    r->next[thread]++;
    r->lines++;
}

static void *read_lines(void *arg)
{
    reader *r = arg;
    static char buf[1 << 16];
    size_t have = 0;
    ssize_t got;
    while ((got = read(r->fd, buf + have, sizeof(buf) - have)) > 0) {
        have += (size_t)got;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
            reader_take(r, start, (size_t)(nl - start));
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
    }
    return NULL;
}

static void run_writers(void)
{
    pthread_t threads[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, write_lines, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
}

static void test_every_line_arrives_whole_and_in_order(void **state)
{
    (void)state;
    int saved;
    reader r = {.fd = stderr_to_pipe(&saved)};
    pthread_t rt;
    pthread_create(&rt, NULL, read_lines, &r);
    uint64_t written0, dropped0;
    log_writer_stats(&written0, &dropped0);
    assert_int_equal(log_writer_start(20, 64u << 20), 0); /* room for every line: none may be dropped */
    run_writers();
    log_event(LOG_WARN, "a direct line among them"); /* not counted by the reader: no "thread" */
    log_writer_stop();
    stderr_restore(saved); /* the pipe's last write end goes: the reader sees EOF */
    pthread_join(rt, NULL);
    close(r.fd);
    uint64_t written, dropped;
    log_writer_stats(&written, &dropped);
    assert_int_equal(r.lines, THREADS * LINES_PER_THREAD);
    assert_int_equal(r.bad, 1); /* the direct line, whole */
    assert_int_equal(dropped - dropped0, 0);
    assert_int_equal(written - written0, THREADS * LINES_PER_THREAD + 1);
}

static void test_a_stalled_sink_never_holds_the_writers(void **state)
{
    (void)state;
    int saved;
    int unread = stderr_to_pipe(&saved); /* nobody reads: the pipe fills at 64 KB */
    uint64_t written0, dropped0;
    log_writer_stats(&written0, &dropped0);
    assert_int_equal(log_writer_start(20, 256u << 10), 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_writers();
    log_event(LOG_ERROR, "a direct line the sink cannot take"); /* queued, not blocking */
    double writing = seconds_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    log_writer_stop();
    double stopping = seconds_since(&t0);
    stderr_restore(saved);
    close(unread);
    uint64_t written, dropped;
    log_writer_stats(&written, &dropped);
    print_message("%d lines in %.3f s, stop in %.3f s: %llu written, %llu dropped\n", THREADS * LINES_PER_THREAD,
                  writing, stopping, (unsigned long long)(written - written0),
                  (unsigned long long)(dropped - dropped0));
    /* 60,000 lines take ~0.1 s to format; a writer waiting on the pipe
     * would never finish */
    assert_true(writing < 10.0);
    assert_true(stopping < 5.0);
    assert_true(dropped - dropped0 > 0);
    assert_int_equal(written - written0 + dropped - dropped0, THREADS * LINES_PER_THREAD + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_line_arrives_whole_and_in_order),
        cmocka_unit_test(test_a_stalled_sink_never_holds_the_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * log_writer.c — where log lines go: stderr, written so that logging never
 * stalls serving (see log.h).
 *
 * The access log is one line per request, on the loop threads: at 175,000
 * requests/s one write(2) per line cost a fifth of a hit's time. Like
 * nginx's `access_log … buffer= flush=`, its lines are copied into a
 * buffer of the thread that wrote them (a 64 KB chunk, under a mutex only
 * that thread and the writer ever take) and a writer thread writes whole
 * chunks. A chunk leaves its thread when it is full, or when its oldest
 * line is `flush_ms` old (the writer collects it), or at stop.
 *
 * A slow sink (a pipe nobody reads, a stalled journal) must never stop a
 * loop: the chunks waiting for the writer are bounded (`queue_bytes`), and
 * a full chunk that finds the queue full is dropped, its lines counted.
 * The writer itself waits for the sink with poll(2), so it can give up at
 * stop. Other lines (warnings, errors, events) are rare and wanted at
 * once: they are written directly when the sink can take them without
 * waiting (poll with no timeout), else queued like an access line.
 *
 * Lines stay whole: the writer writes a pipe, terminal or socket in pieces
 * of whole lines of at most PIPE_BUF bytes (atomic on a pipe, and poll's
 * POLLOUT promises that much room), so a direct line never lands inside a
 * buffered one; a regular file takes a whole chunk in one write(2).
 *
 * Without log_writer_start (the command-line tools, unit tests) every line
 * is written directly, blocking, as it always was.
 */
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    CHUNK_BYTES = 64 * 1024,
    FREE_CHUNKS_KEPT = 8,
    SINK_WAIT_MS = 1000, /* one wait for the sink before the writer drops a chunk's rest */
};

typedef struct chunk {
    struct chunk *next;
    size_t len, lines;
    char data[CHUNK_BYTES];
} chunk;

/* One per thread that has written an access line; never freed (a thread's
 * pointer to it must stay valid), a few dozen at most. */
typedef struct thread_buffer {
    pthread_mutex_t lock; /* the owner and the writer */
    chunk *current;
    uint64_t oldest_ms; /* when current's first line came */
    struct thread_buffer *next;
} thread_buffer;

static struct {
    pthread_mutex_t lock; /* queue, free list, registry head */
    pthread_cond_t wake;
    chunk *head, *tail;
    size_t queued_bytes, queue_bytes;
    chunk *free;
    size_t free_count;
    thread_buffer *threads;
    int flush_ms;
    bool stopping;
    pthread_t thread;
    _Atomic bool running;
    _Atomic uint64_t written, dropped;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Thread_local thread_buffer *mine;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t count_lines(const char *data, size_t len)
{
    size_t n = 0;
    for (const char *p = data; (p = memchr(p, '\n', (size_t)(data + len - p))) != NULL; p++)
        n++;
    return n;
}

/* ---- the sink ------------------------------------------------------------------- */

static bool sink_is_file(void)
{
    struct stat st;
    return fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode);
}

/* Waits until the sink takes PIPE_BUF bytes without blocking. */
static bool sink_ready(int timeout_ms)
{
    struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc == 1 && (p.revents & POLLOUT) != 0;
}

static bool write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* The longest run of whole lines from data that fits in PIPE_BUF (a line
 * is at most sizeof(log_line.buf) = PIPE_BUF bytes). */
static size_t whole_lines(const char *data, size_t len)
{
    size_t limit = len < PIPE_BUF ? len : PIPE_BUF;
    while (limit > 0 && data[limit - 1] != '\n')
        limit--;
    return limit;
}

/* Set when the sink made the writer wait SINK_WAIT_MS in vain: from then
 * on it does not wait (the rest is dropped at once) until a write goes
 * through again, so neither a stalled sink nor a stop waits more than
 * once. Writer thread only. */
static bool sink_stalled;

static void sink_write_chunk(const chunk *c, bool is_file)
{
    if (is_file) {
        if (write_all(c->data, c->len))
            atomic_fetch_add(&w.written, c->lines);
        else
            atomic_fetch_add(&w.dropped, c->lines);
        return;
    }
    size_t at = 0;
    while (at < c->len) {
        size_t piece = whole_lines(c->data + at, c->len - at);
        if (piece == 0)
            break;
        if (!sink_ready(sink_stalled ? 0 : SINK_WAIT_MS)) {
            sink_stalled = true;
            break;
        }
        sink_stalled = false;
        if (!write_all(c->data + at, piece))
            break;
        atomic_fetch_add(&w.written, count_lines(c->data + at, piece));
        at += piece;
    }
    if (at < c->len)
        atomic_fetch_add(&w.dropped, count_lines(c->data + at, c->len - at));
}

/* ---- chunks ------------------------------------------------------------------------ */

/* Under w.lock. */
static chunk *chunk_take(void)
{
    chunk *c = w.free;
    if (c != NULL) {
        w.free = c->next;
        w.free_count--;
    } else if ((c = malloc(sizeof(*c))) == NULL) {
        return NULL;
    }
    c->next = NULL;
    c->len = c->lines = 0;
    return c;
}

/* Under w.lock. */
static void chunk_give_back(chunk *c)
{
    if (w.free_count >= FREE_CHUNKS_KEPT) {
        free(c);
        return;
    }
    c->next = w.free;
    w.free = c;
    w.free_count++;
}

/* The thread's chunk goes to the writer, or, with the queue full, its
 * lines are dropped and the chunk is reused. Under t->lock. */
static void buffer_hand_off(thread_buffer *t)
{
    chunk *c = t->current;
    pthread_mutex_lock(&w.lock);
    if (w.queued_bytes + c->len > w.queue_bytes) {
        atomic_fetch_add(&w.dropped, c->lines);
        c->len = c->lines = 0;
    } else {
        if (w.tail != NULL)
            w.tail->next = c;
        else
            w.head = c;
        w.tail = c;
        w.queued_bytes += c->len;
        t->current = NULL;
        pthread_cond_signal(&w.wake);
    }
    pthread_mutex_unlock(&w.lock);
}

static thread_buffer *buffer_of_this_thread(void)
{
    if (mine != NULL)
        return mine;
    thread_buffer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_lock(&w.lock);
    t->next = w.threads;
    w.threads = t;
    pthread_mutex_unlock(&w.lock);
    return mine = t;
}

static void buffer_append(const char *line, size_t len)
{
    thread_buffer *t = buffer_of_this_thread();
    if (t == NULL) {
        atomic_fetch_add(&w.dropped, 1);
        return;
    }
    pthread_mutex_lock(&t->lock);
    if (t->current != NULL && t->current->len + len > CHUNK_BYTES)
        buffer_hand_off(t);
    if (t->current == NULL) {
        pthread_mutex_lock(&w.lock);
        t->current = chunk_take();
        pthread_mutex_unlock(&w.lock);
    }
    if (t->current == NULL) {
        atomic_fetch_add(&w.dropped, 1);
    } else {
        if (t->current->len == 0)
            t->oldest_ms = now_ms();
        memcpy(t->current->data + t->current->len, line, len);
        t->current->len += len;
        t->current->lines++;
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---- the writer thread ------------------------------------------------------------- */

/* Hands over every thread's chunk whose oldest line is due (all of them
 * when stopping). The registry only grows at its head, so it is walked
 * without w.lock once its head is read; t->lock is taken before w.lock,
 * as on the append path. */
static void collect_due(bool all)
{
    pthread_mutex_lock(&w.lock);
    thread_buffer *t = w.threads;
    pthread_mutex_unlock(&w.lock);
    uint64_t now = now_ms();
    for (; t != NULL; t = t->next) {
        pthread_mutex_lock(&t->lock);
        if (t->current != NULL && t->current->len > 0 && (all || now - t->oldest_ms >= (uint64_t)w.flush_ms))
            buffer_hand_off(t);
        pthread_mutex_unlock(&t->lock);
    }
}

static void *writer_main(void *arg)
{
    (void)arg;
    bool is_file = sink_is_file();
    pthread_mutex_lock(&w.lock);
    for (;;) {
        if (w.head == NULL && !w.stopping) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += (long)(w.flush_ms % 1000) * 1000000L;
            deadline.tv_sec += w.flush_ms / 1000 + deadline.tv_nsec / 1000000000L;
            deadline.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&w.wake, &w.lock, &deadline);
        }
        bool stopping = w.stopping;
        pthread_mutex_unlock(&w.lock);
        collect_due(stopping);
        pthread_mutex_lock(&w.lock);
        chunk *batch = w.head;
        w.head = w.tail = NULL;
        w.queued_bytes = 0;
        pthread_mutex_unlock(&w.lock);
        while (batch != NULL) {
            chunk *next = batch->next;
            sink_write_chunk(batch, is_file);
            pthread_mutex_lock(&w.lock);
            chunk_give_back(batch);
            pthread_mutex_unlock(&w.lock);
            batch = next;
        }
        pthread_mutex_lock(&w.lock);
        if (stopping && w.head == NULL)
            break;
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

/* ---- the interface (log.h) ----------------------------------------------------------- */

int log_writer_start(int flush_ms, size_t queue_bytes)
{
    w.flush_ms = flush_ms > 0 ? flush_ms : 1;
    w.queue_bytes = queue_bytes > CHUNK_BYTES ? queue_bytes : CHUNK_BYTES;
    w.stopping = false;
    if (pthread_create(&w.thread, NULL, writer_main, NULL) != 0)
        return -1;
    atomic_store(&w.running, true);
    return 0;
}

void log_writer_stop(void)
{
    if (!atomic_exchange(&w.running, false))
        return;
    pthread_mutex_lock(&w.lock);
    w.stopping = true;
    pthread_cond_signal(&w.wake);
    pthread_mutex_unlock(&w.lock);
    pthread_join(w.thread, NULL);
}

void log_writer_stats(uint64_t *written, uint64_t *dropped)
{
    *written = atomic_load_explicit(&w.written, memory_order_relaxed);
    *dropped = atomic_load_explicit(&w.dropped, memory_order_relaxed);
}

void log_write_line(const char *line, size_t len, bool buffered)
{
    if (!atomic_load_explicit(&w.running, memory_order_acquire)) {
        write_all(line, len);
        return;
    }
    if (!buffered && sink_ready(0)) {
        if (write_all(line, len))
            atomic_fetch_add(&w.written, 1);
        else
            atomic_fetch_add(&w.dropped, 1);
        return;
    }
    buffer_append(line, len);
}

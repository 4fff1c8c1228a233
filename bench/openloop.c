/*
 * bench/openloop.c — an open-loop HTTP/1.1 load generator for
 * bench/overload.sh (built by it: cc -O2 -o openloop openloop.c).
 *
 * Requests arrive at a fixed rate whatever the server does: request i is
 * due at start + i/rate (an open loop, what "offered at 3x" means; wrk is a
 * closed loop, whose offered rate falls as the server slows). Request i
 * GETs line first + i of the --paths file (one path a line; the bench
 * writes distinct cache keys there, so every request is a miss). A
 * due request is sent on an idle keep-alive connection of a fixed set
 * (--conns, opened at start); when none is idle it waits in a backlog, and
 * its latency still counts from when it was due, so a slow server (or a
 * generator behind) shows as latency, never as a lower offered rate
 * (no coordinated omission).
 *
 * Bounded: arrivals stop after --duration s; a request without an answer
 * --timeout s after it was due is `hung`, and a request still waiting in
 * the backlog then is `unsent` (the generator could not keep up); the run
 * ends by then.
 *
 * Prints one JSON object: requests, offered_rps, ok (200), stale (200 with
 * "stale" in Cache-Status), shed_503, other, hung, unsent,
 * retry_after_missing, p50_ms and p99_ms of the answered 200s, and
 * slowest_503_ms. Connects to 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BUF = 65536 };

typedef struct conn {
    int fd;
    bool busy;
    bool idle;  /* on the idle stack */
    double due; /* of the request in flight */
    size_t len; /* bytes read of its response */
    char buf[BUF];
} conn;

static struct {
    int port;
    const char *paths_file;
    char **paths;
    long path_count;
    double rate, duration, timeout;
    int conns;
    long first;
} opt = {.conns = 256, .timeout = 10};

static struct {
    int *stack; /* idle connections, by index */
    int count;
} idle;

static conn *conns;

static void idle_push(conn *c)
{
    if (!c->idle && !c->busy && c->fd >= 0) {
        c->idle = true;
        idle.stack[idle.count++] = (int)(c - conns);
    }
}

static struct {
    long ok, stale, shed, other, hung, unsent, no_retry, answered_cap, answered;
    double *lat; /* ms of answered 200s */
    double slowest_503;
} out;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conn_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void conn_reset(int ep, conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = conn_open();
    c->busy = false;
    c->len = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (c->fd >= 0)
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    idle_push(c);
}

static bool conn_send(conn *c, long key, double due)
{
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", opt.paths[key % opt.path_count]);
    if (c->fd < 0 || write(c->fd, req, (size_t)n) != n)
        return false;
    c->busy = true;
    c->due = due;
    c->len = 0;
    return true;
}

static const char *header(const char *head, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, len) == 0 && p[2 + len] == ':')
            return p + 3 + len;
    return NULL;
}

/* A whole response in c->buf: recorded, true. False while incomplete. */
static bool conn_complete(conn *c, double t)
{
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL)
        return false;
    *end = '\0';
    const char *cl = header(c->buf, "content-length");
    size_t body = cl != NULL ? strtoul(cl, NULL, 10) : 0;
    if ((size_t)(end + 4 - c->buf) + body > c->len) {
        *end = '\r';
        return false;
    }
    int status = atoi(c->buf + 9);
    const char *cs = header(c->buf, "cache-status");
    double ms = (t - c->due) * 1000;
    if (status == 200) {
        const char *eol = cs != NULL ? strstr(cs, "\r\n") : NULL;
        bool stale = cs != NULL && memmem(cs, eol != NULL ? (size_t)(eol - cs) : strlen(cs), "stale", 5) != NULL;
        stale ? out.stale++ : out.ok++;
        if (out.answered < out.answered_cap)
            out.lat[out.answered++] = ms;
    } else if (status == 503) {
        out.shed++;
        if (header(c->buf, "retry-after") == NULL)
            out.no_retry++;
        if (ms > out.slowest_503)
            out.slowest_503 = ms;
    } else {
        out.other++;
    }
    c->busy = false;
    c->len = 0;
    return true;
}

/* One path a line; false if the file is unreadable or empty. */
static bool paths_load(void)
{
    FILE *f = fopen(opt.paths_file, "r");
    if (f == NULL)
        return false;
    char line[900];
    long cap = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] != '/')
            continue;
        if (opt.path_count == cap) {
            cap = cap ? cap * 2 : 1024;
            opt.paths = realloc(opt.paths, sizeof(char *) * (size_t)cap);
        }
        opt.paths[opt.path_count++] = strdup(line);
    }
    fclose(f);
    return opt.path_count > 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q)
{
    return out.answered ? out.lat[(size_t)(q * (double)(out.answered - 1))] : -1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(k, "--paths"))
            opt.paths_file = v;
        else if (!strcmp(k, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(k, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(k, "--timeout"))
            opt.timeout = atof(v);
        else if (!strcmp(k, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(k, "--first"))
            opt.first = atol(v);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (opt.port <= 0 || opt.paths_file == NULL || opt.rate <= 0 || opt.duration <= 0 || opt.duration > 120 ||
        opt.conns < 1 || opt.conns > 20000) {
        fprintf(stderr, "usage: openloop --port P --paths FILE --rate R --duration S (<=120) "
                        "[--timeout S] [--conns N] [--first K]\n");
        return 2;
    }
    if (!paths_load()) {
        fprintf(stderr, "no paths in %s\n", opt.paths_file);
        return 2;
    }
    long total = (long)(opt.rate * opt.duration);
    out.answered_cap = total;
    out.lat = malloc(sizeof(double) * (size_t)(total > 0 ? total : 1));
    double *backlog = malloc(sizeof(double) * (size_t)(total > 0 ? total : 1)); /* due times, FIFO */
    conn *cs = conns = calloc((size_t)opt.conns, sizeof(conn));
    idle.stack = calloc((size_t)opt.conns, sizeof(int));
    int ep = epoll_create1(0);
    if (out.lat == NULL || backlog == NULL || cs == NULL || idle.stack == NULL || ep < 0)
        return 1;
    for (int i = 0; i < opt.conns; i++) {
        cs[i].fd = conn_open();
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (cs[i].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0)
            return 1;
        idle_push(&cs[i]);
    }
    usleep(100000); /* the connections are accepted */

    long next = 0, head = 0, tail = 0; /* arrivals scheduled; backlog [head, tail) */
    double start = now_s(), sent_end = 0, scanned_at = start;
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        while (next < total && start + (double)next / opt.rate <= t)
            backlog[tail++] = start + (double)next++ / opt.rate;
        if (next == total && sent_end == 0)
            sent_end = t;
        /* send what is due on idle connections */
        while (head < tail && idle.count > 0) {
            conn *c = &cs[idle.stack[--idle.count]];
            c->idle = false;
            if (conn_send(c, opt.first + head, backlog[head]))
                head++;
            else
                conn_reset(ep, c);
        }
        /* what waited past the timeout in the backlog never went out */
        while (head < tail && t - backlog[head] > opt.timeout) {
            out.unsent++;
            head++;
        }
        if (t - scanned_at > 0.1 || (next == total && head == tail)) { /* hangs, and the end */
            scanned_at = t;
            bool busy = false;
            for (int i = 0; i < opt.conns; i++) {
                if (cs[i].busy && t - cs[i].due > opt.timeout) {
                    out.hung++;
                    cs[i].busy = false;
                    conn_reset(ep, &cs[i]);
                }
                busy |= cs[i].busy;
            }
            if (next == total && head == tail && !busy)
                break;
        }
        int n = epoll_wait(ep, evs, 256, 1);
        t = now_s();
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->len, BUF - 1 - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                if (c->busy)
                    out.other++; /* the server closed a connection with a request on it */
                c->busy = false;
                conn_reset(ep, c);
                continue;
            }
            c->len += (size_t)r;
            if (c->busy && conn_complete(c, t))
                idle_push(c);
            else if (c->len >= BUF - 1) {
                out.other++; /* a response larger than the bench reads */
                c->busy = false;
                conn_reset(ep, c);
            }
        }
    }
    qsort(out.lat, (size_t)out.answered, sizeof(double), by_value);
    double sent_s = (sent_end > start ? sent_end : now_s()) - start;
    printf("{\"requests\": %ld, \"offered_rps\": %.1f, \"target_rps\": %.1f, \"ok\": %ld, \"stale\": %ld, "
           "\"shed_503\": %ld, \"other\": %ld, \"hung\": %ld, \"unsent\": %ld, \"retry_after_missing\": %ld, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"slowest_503_ms\": %.1f, \"conns\": %d}\n",
           total, (double)total / sent_s, opt.rate, out.ok, out.stale, out.shed, out.other, out.hung, out.unsent,
           out.no_retry, pct(0.50), pct(0.99), out.slowest_503, opt.conns);
    return 0;
}

/*
 * purge.c — the purge request (see purge.h): parse the endpoint once, then
 * for each purge resolve, connect, write and read the status line against
 * one deadline.
 *
 * The socket is non-blocking from the start, so connect(2) returns at once
 * and poll(2) bounds each wait by what is left of the deadline; every
 * address getaddrinfo returns is tried in turn until one connects. Only the
 * status line is read: it says all a purge needs, and closing early never
 * loses anything (the endpoint acted before it answered), and an answer's
 * body, however large, is never read. Name resolution
 * itself is the resolver's own (bounded by resolv.conf's timeouts); use an
 * address in the URL where that matters. A webhook's JSON POST (alerts'
 * and content's, purge_post) goes the same way (exchange), with a body
 * after the head.
 */
#include "jobs/purge.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { REQUEST_MAX = PURGE_KEYS_MAX_BYTES + 2048, STATUS_LINE_MAX = 512 };

/* ---- the endpoint -------------------------------------------------------- */

static bool is_token(const char *s, size_t max)
{
    size_t len = strnlen(s, max + 1);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c) != NULL))
            return false;
    }
    return true;
}

/* Printable ASCII without spaces: what may sit in a request line or a
 * header value as it is. */
static bool is_visible(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

bool purge_key_valid(const char *key)
{
    size_t len = strnlen(key, PURGE_KEY_MAX + 1);
    return len > 0 && len <= PURGE_KEY_MAX && is_visible(key, len);
}

/* HOST[:PORT] or [V6][:PORT] of length len at authority. */
static int authority_parse(const char *authority, size_t len, purge_target *out)
{
    const char *host = authority, *end = authority + len, *colon;
    size_t host_len;
    if (len > 0 && *authority == '[') {
        const char *close = memchr(authority, ']', len);
        if (close == NULL)
            return -1;
        host = authority + 1;
        host_len = (size_t)(close - host);
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return -1;
    } else {
        colon = memchr(authority, ':', len);
        host_len = (size_t)((colon ? colon : end) - host);
    }
    if (host_len == 0 || host_len >= sizeof out->host || len >= sizeof out->host_header)
        return -1;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    memcpy(out->host_header, authority, len);
    out->host_header[len] = '\0';
    const char *port = colon ? colon + 1 : "80";
    size_t port_len = colon ? (size_t)(end - port) : 2;
    unsigned value = 0;
    for (size_t i = 0; i < port_len; i++)
        value = port[i] >= '0' && port[i] <= '9' && value < 100000 ? value * 10 + (unsigned)(port[i] - '0') : 100000;
    if (port_len == 0 || value == 0 || value > 65535)
        return -1;
    snprintf(out->port, sizeof out->port, "%u", value);
    return 0;
}

int purge_endpoint_parse(const char *url, const char *key, purge_target *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(url);
    const char *authority = url + strlen("http://");
    const char *slash = len > 7 ? strchr(authority, '/') : NULL;
    size_t authority_len = slash ? (size_t)(slash - authority) : len > 7 ? strlen(authority) : 0;
    const char *path = slash ? slash : "/";
    if (len <= 7 || strncasecmp(url, "http://", 7) != 0 || !is_visible(url, len) || strlen(path) >= sizeof out->path ||
        authority_parse(authority, authority_len, out) != 0) {
        snprintf(err, err_size,
                 "%s: '%s' is not http://HOST[:PORT][/PATH] (HOST a name, an IPv4 address or [IPv6]; "
                 "https is not spoken: put a local Varnish or proxy in front)",
                 key, url);
        return -1;
    }
    snprintf(out->path, sizeof out->path, "%s", path);
    return 0;
}

int purge_target_parse(const char *url, const char *method, const char *header, purge_target *out, char *err,
                       size_t err_size)
{
    memset(out, 0, sizeof *out);
    if (!is_token(method, sizeof out->method - 1)) {
        snprintf(err, err_size, "cdn.purge_method: '%s' is not an HTTP method (a token of at most %zu bytes)", method,
                 sizeof out->method - 1);
        return -1;
    }
    if (!is_token(header, sizeof out->header - 1)) {
        snprintf(err, err_size, "cdn.purge_header: '%s' is not a header name (a token of at most %zu bytes)", header,
                 sizeof out->header - 1);
        return -1;
    }
    if (purge_endpoint_parse(url, "cdn.purge_url", out, err, err_size) != 0)
        return -1;
    snprintf(out->method, sizeof out->method, "%s", method);
    snprintf(out->header, sizeof out->header, "%s", header);
    return 0;
}

/* ---- one request ----------------------------------------------------------- */

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_for(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* A connected non-blocking socket to one of the target's addresses, or -1
 * with err saying why the last one failed. */
static int connect_any(const purge_target *t, int64_t deadline, char *err, size_t err_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *addrs = NULL;
    int rc = getaddrinfo(t->host, t->port, &hints, &addrs);
    if (rc != 0) {
        snprintf(err, err_size, "cannot resolve %s: %s", t->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, err_size, "no address for %s", t->host);
    for (struct addrinfo *a = addrs; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(err, err_size, "socket: %s", strerror(errno));
            continue;
        }
        int so_error = 0;
        socklen_t so_len = sizeof so_error;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            so_error = errno;
            if (so_error == EINPROGRESS) {
                int ready = wait_for(fd, POLLOUT, deadline);
                if (ready <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0)
                    so_error = ready == 0 ? ETIMEDOUT : errno;
            }
        }
        if (so_error != 0) {
            snprintf(err, err_size, "connecting to %s port %s: %s", t->host, t->port, strerror(so_error));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(addrs);
    return fd;
}

static int send_all(int fd, const char *data, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        } else if (n < 0 && errno == EAGAIN && wait_for(fd, POLLOUT, deadline) <= 0) {
            return -1;
        }
    }
    return 0;
}

/* Reads until the status line is complete; its status code, or -1. */
static int status_read(int fd, int64_t deadline)
{
    char line[STATUS_LINE_MAX + 1];
    size_t got = 0;
    while (got < STATUS_LINE_MAX && memchr(line, '\n', got) == NULL) {
        ssize_t n = recv(fd, line + got, STATUS_LINE_MAX - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR) || wait_for(fd, POLLIN, deadline) <= 0)
            return -1;
    }
    line[got] = '\0';
    int status = -1;
    if (strncmp(line, "HTTP/1.", 7) != 0 || sscanf(line + 8, " %3d", &status) != 1 || status < 100)
        return -1;
    return status;
}

/* Connects, sends head then body, reads the status line, all within
 * timeout_ms: the status, or -1 with err. */
static int exchange(const purge_target *t, const char *method, const char *head, size_t head_len, const char *body,
                    size_t body_len, int timeout_ms, char *err, size_t err_size)
{
    int64_t deadline = monotonic_ms() + timeout_ms;
    int fd = connect_any(t, deadline, err, err_size);
    if (fd < 0)
        return -1;
    int status = send_all(fd, head, head_len, deadline) == 0 && send_all(fd, body, body_len, deadline) == 0
                     ? status_read(fd, deadline)
                     : -1;
    close(fd);
    if (status < 0)
        snprintf(err, err_size, "%s %s:%s%s: no HTTP answer within %d ms", method, t->host, t->port, t->path,
                 timeout_ms);
    return status;
}

static int request_build(const purge_target *t, const char *const *keys, size_t count, char *out, size_t size)
{
    int n = snprintf(out, size, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: strata\r\n%s:", t->method, t->path,
                     t->host_header, t->header);
    size_t len = n > 0 ? (size_t)n : size, key_bytes = 0;
    for (size_t i = 0; i < count && len < size; i++) {
        key_bytes += strlen(keys[i]) + 1;
        if (!purge_key_valid(keys[i]) || key_bytes > PURGE_KEYS_MAX_BYTES)
            return -1;
        n = snprintf(out + len, size - len, " %s", keys[i]);
        len += n > 0 ? (size_t)n : size;
    }
    if (len < size) {
        n = snprintf(out + len, size - len, "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        len += n > 0 ? (size_t)n : size;
    }
    return len < size ? (int)len : -1;
}

int purge_send(const purge_target *t, const char *const *keys, size_t count, int timeout_ms, char *err, size_t err_size)
{
    char request[REQUEST_MAX];
    int len = count > 0 ? request_build(t, keys, count, request, sizeof request) : -1;
    if (len < 0) {
        snprintf(err, err_size, "the keys must be 1 to %d visible characters each, %d bytes in all", PURGE_KEY_MAX,
                 PURGE_KEYS_MAX_BYTES);
        return -1;
    }
    int status = exchange(t, t->method, request, (size_t)len, NULL, 0, timeout_ms, err, err_size);
    if (status < 0)
        return -1;
    if ((status >= 200 && status < 300) || status == 404)
        return 0;
    snprintf(err, err_size, "%s %s:%s%s answered %d", t->method, t->host, t->port, t->path, status);
    return -1;
}

int purge_post(const purge_target *t, const char *headers, const char *body, size_t body_len, int timeout_ms, char *err,
               size_t err_size)
{
    char head[REQUEST_MAX];
    int len = snprintf(head, sizeof head,
                       "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: strata\r\nContent-Type: application/json\r\n"
                       "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                       t->path, t->host_header, headers, body_len);
    if (len < 0 || (size_t)len >= sizeof head) {
        snprintf(err, err_size, "the request head does not fit in %d bytes", REQUEST_MAX);
        return -1;
    }
    return exchange(t, "POST", head, (size_t)len, body, body_len, timeout_ms, err, err_size);
}

int purge_post_json(const purge_target *t, const char *body, size_t body_len, int timeout_ms, char *err,
                    size_t err_size)
{
    int status = purge_post(t, "", body, body_len, timeout_ms, err, err_size);
    if (status < 0)
        return -1;
    if (status >= 200 && status < 300)
        return 0;
    snprintf(err, err_size, "POST %s:%s%s answered %d", t->host, t->port, t->path, status);
    return -1;
}

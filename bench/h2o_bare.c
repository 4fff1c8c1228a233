/*
 * bench/h2o_bare.c — the ceiling for bench/hot_path.sh: the least an h2o
 * 2.2.5 (libh2o-evloop) server can do to answer a request.
 *
 * Same shape as strata's server (src/http/server.c): N event-loop threads,
 * each with its own h2o context, evloop and SO_REUSEPORT listener on the
 * same address, TCP_NODELAY, HTTP/1.1 keep-alive at h2o's defaults. Every
 * request, whatever its method or path, is answered 200 with the same
 * bytes, read once from a file at start, sent from memory without a copy
 * (h2o_send of a static buffer), content-type application/json. No
 * routing, no cache, no logger, no filter: what is left is h2o itself.
 *
 * Usage: h2o_bare BODY_FILE 127.0.0.1:PORT [THREADS]   (THREADS default 2)
 * Stops on SIGTERM or SIGINT (exit 0).
 *
 * Build (what bench/hot_path.sh does):
 *   cc -O2 -std=gnu11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 bench/h2o_bare.c \
 *      -o build/bench/h2o_bare $(pkg-config --libs libh2o-evloop) -lssl -lcrypto -lpthread
 */
#include <arpa/inet.h>
#include <errno.h>
#include <h2o.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64

typedef struct loop_thread {
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
} loop_thread;

static h2o_globalconf_t globalconf;
static h2o_iovec_t body;
static struct sockaddr_in addr;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = body.len;
    h2o_start_response(req, &generator);
    h2o_iovec_t buf = body; /* h2o_send may keep the pointer until the write completes: the bytes live forever */
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    loop_thread *lt = listener->data;
    h2o_socket_t *sock;
    for (int i = 0; i < 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; i++)
        h2o_accept(&lt->accept_ctx, sock);
}

static int open_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 4096) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Each loop creates its h2o context on its own thread: h2o 2.2.5's socket
 * buffer allocator is thread-local, so a context made on another thread
 * would share that thread's allocator (the bug strata fixed in 8c970bc).
 * The listener is opened first, so a failure is seen before serving. */
static void *loop_main(void *arg)
{
    loop_thread *lt = arg;
    h2o_context_init(&lt->ctx, h2o_evloop_create(), &globalconf);
    lt->accept_ctx.ctx = &lt->ctx;
    lt->accept_ctx.hosts = globalconf.hosts;
    lt->listener = h2o_evloop_socket_create(lt->ctx.loop, lt->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    lt->listener->data = lt;
    h2o_socket_read_start(lt->listener, on_accept);
    for (;;)
        h2o_evloop_run(lt->ctx.loop, INT32_MAX);
    return NULL;
}

static int read_file(const char *path, h2o_iovec_t *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
        }
    }
    int failed = ferror(f) || buf == NULL;
    fclose(f);
    if (failed) {
        free(buf);
        return -1;
    }
    *out = h2o_iovec_init(buf, len);
    return 0;
}

static int parse_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return -1;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &addr.sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s BODY_FILE 127.0.0.1:PORT [THREADS]\n", argv[0]);
        return 2;
    }
    int threads = argc == 4 ? atoi(argv[3]) : 2;
    if (threads < 1 || threads > MAX_THREADS || parse_listen(argv[2]) != 0) {
        fprintf(stderr, "h2o_bare: bad address or thread count\n");
        return 2;
    }
    if (read_file(argv[1], &body) != 0) {
        fprintf(stderr, "h2o_bare: cannot read %s: %s\n", argv[1], strerror(errno));
        return 1;
    }

    /* Signals go to the main thread only (sigwait below). */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&globalconf);
    h2o_hostconf_t *host = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *root = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(root, sizeof(*handler));
    handler->on_req = on_req;

    static loop_thread loops[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        loops[i].listen_fd = open_listener();
        if (loops[i].listen_fd < 0) {
            fprintf(stderr, "h2o_bare: cannot listen on %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_create(&loops[i].tid, NULL, loop_main, &loops[i]);
    fprintf(stderr, "h2o_bare: %zu bytes on %s, %d threads\n", body.len, argv[2], threads);

    int sig;
    while (sigwait(&signals, &sig) != 0)
        ;
    /* A benchmark stub: nothing to flush, the kernel closes the sockets. */
    _exit(0);
}

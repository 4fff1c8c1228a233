/*
 * protocol_guard.c — what h2o 2.2.5 lets through or answers by itself at
 * the protocol level: ambiguous request framing (request smuggling), its
 * own early errors, and HTTP/2 rapid reset (CVE-2023-44487).
 *
 * Framing. h2o takes the first of two Content-Length headers and, given
 * Content-Length and Transfer-Encoding together, reads chunked and keeps
 * the connection: a proxy in front that frames the same bytes the other
 * way sends a request h2o then parses as a second one. RFC 9112 §6.1/§6.3
 * leave a server the right to refuse such a message; strata refuses every
 * head whose body length could be read two ways (two Content-Lengths,
 * Content-Length with Transfer-Encoding, two Transfer-Encodings, one in
 * HTTP/1.0, obsolete line folding) with 400 before any byte of the body
 * is read, and closes the connection, so nothing after the head is ever
 * parsed as a request. A Transfer-Encoding other than chunked is 501.
 *
 * Where the check runs. h2o parses a head in http1.c's
 * handle_incoming_request with phr_parse_request; it does so from the
 * socket's read callback, but also directly, without a read event, when a
 * pipelined head is already buffered after a response (reqread_start), so
 * a read-callback wrapper would miss the second request of a pipeline.
 * Every head does pass through phr_parse_request, and libh2o calls it (and
 * h2o_socket_write, h2o_send_error_generic) through its PLT (objdump -d
 * libh2o-evloop.so.0.13.5), so strata defines them: ELF symbol
 * interposition, the executable's definition coming first; each calls
 * libh2o's own (dlsym RTLD_NEXT). phr_parse_request below runs h2o's
 * parser and, when the head is complete but its framing is ambiguous,
 * reports it as malformed (-1); h2o then refuses it the way it refuses any
 * malformed head: send_bad_request, read stopped, connection closed after
 * the write.
 * protocol_guard_installed() checks at start that the executable's
 * definitions are the ones in effect.
 *
 * Early errors. send_bad_request writes one fixed text/plain 400 with
 * h2o_socket_write, for every head h2o cannot parse (a malformed request
 * line, a header without a colon, control bytes, over 100 headers, a head
 * over h2o's 417,792 bytes) and for the refusals above. h2o_socket_write
 * below recognises exactly those bytes and writes instead a problem+json
 * response with a request id, whose detail comes from reading the same
 * head again with protocol_guard_check_head (the head is still whole at
 * the start of the socket's input buffer). h2o keeps only a pointer to the
 * bytes until the write completes, so they live in a record hung on the
 * socket's on_close callback (chained to any earlier one) and are freed
 * with the socket. protocol_guard_check_head takes only the unparsed
 * bytes, so a read wrapper can use it too. The errors h2o sends through
 * h2o_send_error_generic (a broken chunked body, 413) reach filters.c,
 * which makes them problem+json; their precise reason is only in h2o's
 * plain-text body, so h2o_send_error_generic is interposed as well, to
 * hold that text for the filter while it runs.
 *
 * Rapid reset. An HTTP/2 client may open a stream and reset it at once;
 * the reset stream no longer counts against the concurrency limit, so one
 * connection can make the server start unbounded work. Each stream that
 * reached strata's handler and is let go before its response began
 * (request.c's dispose) counts against its connection, in the same socket
 * record; over server.http2_max_resets in server.http2_reset_window_ms,
 * the next stream the handler is given is answered 429 and the connection
 * is sent GOAWAY (ENHANCE_YOUR_CALM) and marked half-closed, as h2o's own
 * enqueue_goaway does: h2o then ignores every further HEADERS frame and
 * closes the connection itself once its open streams are done. This is
 * done from the handler, never from the dispose callback: a dispose can run
 * inside h2o's close_connection_now, where queueing a write would leave a
 * timer linked on a connection about to be freed.
 */
#include <dlfcn.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/server_internal.h"
#include "metrics/metrics.h"

/* ---- reading a request head ---------------------------------------------------------- */

static void refusal_set(protocol_refusal *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refusal_set(protocol_refusal *r, int status, const char *code, const char *fmt, ...)
{
    r->status = status;
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

/* Attacker bytes in a detail: printable ASCII only (a detail must be valid
 * UTF-8 for the JSON), cut at 40 characters. */
static const char *quoted(char out[48], const char *s, size_t len)
{
    size_t n = len < 40 ? len : 40;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (len > n)
        memcpy(out + n, "...", 4);
    else
        out[n] = '\0';
    return out;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* The first control byte other than HT in s, or -1. */
static int first_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (is_ctl((unsigned char)s[i]) && s[i] != '\t')
            return (unsigned char)s[i];
    return -1;
}

/* The headers that decide where a request's body ends. */
typedef struct framing {
    unsigned content_lengths, transfer_encodings;
    h2o_iovec_t content_length, transfer_encoding; /* the first of each */
    bool folded;                                   /* a continuation line (obs-fold) */
} framing;

static void framing_add(framing *f, const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (name == NULL) {
        f->folded = true;
    } else if (h2o_lcstris(name, name_len, H2O_STRLIT("content-length"))) {
        if (f->content_lengths++ == 0)
            f->content_length = h2o_iovec_init(value, value_len);
    } else if (h2o_lcstris(name, name_len, H2O_STRLIT("transfer-encoding"))) {
        if (f->transfer_encodings++ == 0)
            f->transfer_encoding = h2o_iovec_init(value, value_len);
    }
}

static bool is_byte_count(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > 19)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if (v.base[i] < '0' || v.base[i] > '9')
            return false;
    return true;
}

/* True (r filled) when the body's length could be read two ways. */
static bool framing_refused(const framing *f, int minor_version, protocol_refusal *r)
{
    char q[48];
    if (f->folded)
        refusal_set(r, 400, "ambiguous_framing",
                    "a header line starts with a space or tab (obsolete line folding is refused, RFC 9112 §5.2)");
    else if (f->content_lengths > 1)
        refusal_set(r, 400, "ambiguous_framing",
                    "the request has %u Content-Length headers; at most one is allowed (RFC 9112 §6.3)",
                    f->content_lengths);
    else if (f->transfer_encodings > 1)
        refusal_set(r, 400, "ambiguous_framing", "the request has %u Transfer-Encoding headers; at most one is allowed",
                    f->transfer_encodings);
    else if (f->content_lengths == 1 && f->transfer_encodings == 1)
        refusal_set(r, 400, "ambiguous_framing",
                    "the request has both Content-Length and Transfer-Encoding; send one of them (RFC 9112 §6.1)");
    else if (f->transfer_encodings == 1 && minor_version == 0)
        refusal_set(r, 400, "ambiguous_framing",
                    "Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 §6.1)");
    else if (f->transfer_encodings == 1 &&
             !h2o_lcstris(f->transfer_encoding.base, f->transfer_encoding.len, H2O_STRLIT("chunked")))
        refusal_set(r, 501, "unsupported_transfer_encoding", "Transfer-Encoding '%s' is not supported; only chunked is",
                    quoted(q, f->transfer_encoding.base, f->transfer_encoding.len));
    else if (f->content_lengths == 1 && !is_byte_count(f->content_length))
        refusal_set(r, 400, "bad_content_length", "Content-Length '%s' is not a number of bytes (1 to 19 digits)",
                    quoted(q, f->content_length.base, f->content_length.len));
    else
        return false;
    return true;
}

/* METHOD SP TARGET SP HTTP/1.d, as h2o's parser reads it; *minor_version
 * is the d. */
static bool request_line_refused(const char *s, size_t len, int *minor_version, protocol_refusal *r)
{
    char q[48];
    int ctl = first_ctl(s, len);
    if (ctl >= 0) {
        refusal_set(r, 400, "bad_request_line", "the request line contains the control byte 0x%02x", ctl);
        return true;
    }
    const char *sp1 = memchr(s, ' ', len);
    const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - s)) : NULL;
    if (sp1 == NULL || sp1 == s || sp2 == NULL || sp2 == sp1 + 1) {
        refusal_set(r, 400, "bad_request_line", "the request line '%s' is not METHOD SP TARGET SP HTTP/1.x",
                    quoted(q, s, len));
        return true;
    }
    const char *version = sp2 + 1;
    size_t version_len = (size_t)(s + len - version);
    if (version_len != 8 || memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' || version[7] > '9') {
        refusal_set(r, 400, "bad_request_line", "the protocol '%s' is not HTTP/1.0 or HTTP/1.1",
                    quoted(q, version, version_len));
        return true;
    }
    *minor_version = version[7] - '0';
    return false;
}

/* NAME ":" OWS VALUE; line is the head's line number (1 is the request line). */
static bool header_line_refused(const char *s, size_t len, int line, framing *f, protocol_refusal *r)
{
    char q[48];
    const char *colon = memchr(s, ':', len);
    if (s[0] == ' ' || s[0] == '\t') {
        framing_add(f, NULL, 0, NULL, 0);
        return framing_refused(f, 1, r);
    }
    if (colon == NULL) {
        refusal_set(r, 400, "bad_header", "line %d of the head ('%s') is not NAME: VALUE (it has no colon)", line,
                    quoted(q, s, len));
        return true;
    }
    size_t name_len = (size_t)(colon - s);
    for (size_t i = 0; i < name_len; i++) {
        if (!is_tchar((unsigned char)s[i])) {
            refusal_set(r, 400, "bad_header",
                        "the header name on line %d ('%s') contains the byte 0x%02x, which is not allowed in a name",
                        line, quoted(q, s, name_len), (unsigned char)s[i]);
            return true;
        }
    }
    if (name_len == 0) {
        refusal_set(r, 400, "bad_header", "line %d of the head starts with a colon (an empty header name)", line);
        return true;
    }
    const char *value = colon + 1, *end = s + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    int ctl = first_ctl(value, (size_t)(end - value));
    if (ctl >= 0) {
        refusal_set(r, 400, "bad_header", "the value of header '%s' contains the control byte 0x%02x",
                    quoted(q, s, name_len), ctl);
        return true;
    }
    framing_add(f, s, name_len, value, (size_t)(end - value));
    return false;
}

/* The end of the line at p (after its LF) with its length without CR LF in
 * *len; NULL when the line is not complete yet. */
static const char *line_take(const char *p, const char *end, size_t *len)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (lf == NULL)
        return NULL;
    *len = (size_t)(lf - p) - (lf > p && lf[-1] == '\r');
    return lf + 1;
}

protocol_head protocol_guard_check_head(const char *bytes, size_t len, protocol_refusal *r)
{
    const char *p = bytes, *end = bytes + len, *next;
    size_t n;
    /* like h2o's parser, one empty line before the request line is skipped */
    if (p < end && *p == '\n')
        p++;
    else if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;
    if ((next = line_take(p, end, &n)) == NULL) {
        int ctl = first_ctl(p, (size_t)(end - p) - (end > p && end[-1] == '\r'));
        if (ctl < 0)
            return PROTOCOL_HEAD_INCOMPLETE;
        refusal_set(r, 400, "bad_request_line", "the request line contains the control byte 0x%02x", ctl);
        return PROTOCOL_HEAD_REFUSED;
    }
    int minor_version;
    if (request_line_refused(p, n, &minor_version, r))
        return PROTOCOL_HEAD_REFUSED;
    framing f = {0};
    for (int line = 2;; line++) {
        p = next;
        if (p == end || (*p == '\r' && p + 1 == end))
            return PROTOCOL_HEAD_INCOMPLETE;
        if (*p == '\n' || (p[0] == '\r' && p[1] == '\n'))
            return framing_refused(&f, minor_version, r) ? PROTOCOL_HEAD_REFUSED : PROTOCOL_HEAD_OK;
        if (line - 1 > H2O_MAX_HEADERS) {
            refusal_set(r, 431, "too_many_headers", "the request has more than %d header lines", H2O_MAX_HEADERS);
            return PROTOCOL_HEAD_REFUSED;
        }
        if ((next = line_take(p, end, &n)) == NULL) {
            int ctl = first_ctl(p, (size_t)(end - p) - (end[-1] == '\r'));
            if (ctl < 0)
                return PROTOCOL_HEAD_INCOMPLETE;
            refusal_set(r, 400, "bad_header", "line %d of the head contains the control byte 0x%02x", line, ctl);
            return PROTOCOL_HEAD_REFUSED;
        }
        if (header_line_refused(p, n, line, &f, r))
            return PROTOCOL_HEAD_REFUSED;
    }
}

/* ---- a record per socket, freed with it ------------------------------------------------ */

typedef struct guard_socket {
    void (*next_close_cb)(void *data); /* whoever was told of the close before */
    void *next_close_data;
    char *response; /* an early error's bytes, written until the socket closes */
    /* HTTP/2: streams let go before a response, in the window begun at window_start_ms */
    uint64_t window_start_ms;
    uint32_t resets;
    bool goaway_sent;
} guard_socket;

static void guard_socket_on_close(void *data)
{
    guard_socket *g = data;
    if (g->next_close_cb != NULL)
        g->next_close_cb(g->next_close_data);
    free(g->response);
    free(g);
}

/* The socket's record; with create, made and hung on it when missing. */
static guard_socket *guard_socket_of(h2o_socket_t *sock, bool create)
{
    if (sock->on_close.cb == guard_socket_on_close)
        return sock->on_close.data;
    guard_socket *g = create ? calloc(1, sizeof(*g)) : NULL;
    if (g != NULL) {
        g->next_close_cb = sock->on_close.cb;
        g->next_close_data = sock->on_close.data;
        sock->on_close.cb = guard_socket_on_close;
        sock->on_close.data = g;
    }
    return g;
}

/* ---- h2o's parser and its early errors -------------------------------------------------- */

/* picohttpparser's header (the ABI libh2o exports; its header is not installed). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

typedef int (*parse_request_fn)(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                                size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                                size_t last_len);
typedef void (*socket_write_fn)(h2o_socket_t *sock, h2o_iovec_t *bufs, size_t bufcnt, h2o_socket_cb cb);
typedef void (*send_error_fn)(h2o_req_t *req, int status, const char *reason, const char *body, int flags);

static parse_request_fn libh2o_parse_request;
static socket_write_fn libh2o_socket_write;
static send_error_fn libh2o_send_error;
static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void resolve_h2o(void)
{
    libh2o_parse_request = (parse_request_fn)dlsym(RTLD_NEXT, "phr_parse_request");
    libh2o_socket_write = (socket_write_fn)dlsym(RTLD_NEXT, "h2o_socket_write");
    libh2o_send_error = (send_error_fn)dlsym(RTLD_NEXT, "h2o_send_error_generic");
    if (libh2o_parse_request == NULL || libh2o_socket_write == NULL || libh2o_send_error == NULL) {
        log_event(LOG_ERROR, "libh2o's phr_parse_request, h2o_socket_write or h2o_send_error_generic is missing");
        abort();
    }
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len)
{
    pthread_once(&resolved, resolve_h2o);
    int r = libh2o_parse_request(buf, len, method, method_len, path, path_len, minor_version, headers, num_headers,
                                 last_len);
    if (r <= 0)
        return r;
    framing f = {0};
    for (size_t i = 0; i < *num_headers; i++)
        framing_add(&f, headers[i].name, headers[i].name_len, headers[i].value, headers[i].value_len);
    protocol_refusal unused;
    return framing_refused(&f, *minor_version, &unused) ? -1 : r;
}

/* What h2o 2.2.5's send_bad_request (lib/http1.c) writes. */
static const char H2O_BAD_REQUEST[] = "HTTP/1.1 400 Bad Request\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\n"
                                      "Connection: close\r\n"
                                      "Content-Length: 11\r\n"
                                      "\r\n"
                                      "Bad Request";

/* Why h2o refused the head at the start of sock's input. */
static void early_error_explain(h2o_socket_t *sock, protocol_refusal *r)
{
    size_t len = sock->input->size < H2O_MAX_REQLEN ? sock->input->size : H2O_MAX_REQLEN;
    protocol_head head = protocol_guard_check_head(sock->input->bytes, len, r);
    if (head == PROTOCOL_HEAD_REFUSED)
        return;
    if (head == PROTOCOL_HEAD_INCOMPLETE && len == H2O_MAX_REQLEN)
        refusal_set(r, 431, "headers_too_large", "the request head is longer than %d bytes", H2O_MAX_REQLEN);
    else
        refusal_set(r, 400, "bad_request", "the request head is not valid HTTP/1.1 (RFC 9112)");
}

char *protocol_problem_response(loop_thread *lt, int status, const char *code, const char *detail, size_t *len)
{
    http_request rq = {0};
    http_response res = {0};
    request_id_generate(lt, rq.request_id);
    http_problem(&res, &rq, status, code, "%s", detail);
    static const char head_fmt[] = "HTTP/1.1 %d %s\r\n"
                                   "Content-Type: application/problem+json\r\n"
                                   "X-Request-Id: %s\r\n"
                                   "Connection: close\r\n"
                                   "Content-Length: %zu\r\n"
                                   "\r\n";
    size_t cap = sizeof(head_fmt) + 64 + HTTP_REQUEST_ID_MAX + 20 + res.body_len;
    char *out = res.body != NULL ? malloc(cap) : NULL;
    if (out != NULL) {
        int n = snprintf(out, cap, head_fmt, status, http_status_text(status), rq.request_id, res.body_len);
        memcpy(out + n, res.body, res.body_len);
        *len = (size_t)n + res.body_len;
        log_line line;
        log_begin(&line, LOG_INFO, "request refused");
        log_int(&line, "status", status);
        log_str(&line, "code", code);
        log_str(&line, "detail", detail);
        log_str(&line, "request_id", rq.request_id);
        log_end(&line);
    }
    http_response_free(&res);
    return out;
}

void h2o_socket_write(h2o_socket_t *sock, h2o_iovec_t *bufs, size_t bufcnt, h2o_socket_cb cb)
{
    pthread_once(&resolved, resolve_h2o);
    if (bufcnt == 1 && bufs[0].len == sizeof(H2O_BAD_REQUEST) - 1 &&
        memcmp(bufs[0].base, H2O_BAD_REQUEST, bufs[0].len) == 0) {
        /* only http1.c's send_bad_request writes this: sock->data is its
         * connection, whose first member is the h2o_conn_t */
        loop_thread *lt = H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, ((h2o_conn_t *)sock->data)->ctx);
        protocol_refusal r;
        early_error_explain(sock, &r);
        metrics_request(-1, request_method_index(h2o_iovec_init(NULL, 0)), r.status, 0);
        guard_socket *g = guard_socket_of(sock, true);
        size_t len;
        if (g != NULL && g->response == NULL &&
            (g->response = protocol_problem_response(lt, r.status, r.code, r.detail, &len)) != NULL) {
            h2o_iovec_t mine = h2o_iovec_init(g->response, len);
            libh2o_socket_write(sock, &mine, 1, cb);
            return;
        }
    }
    libh2o_socket_write(sock, bufs, bufcnt, cb);
}

/* h2o's errors sent through h2o_send_error_* (a broken chunked body, an
 * oversize one, a bad HTTP/2 header block) carry their precise reason in
 * the plain-text body only; filters.c turns them into problem+json while
 * h2o_send_error_generic runs, and reads that text from here. */
static __thread const char *h2o_error_text;

void h2o_send_error_generic(h2o_req_t *req, int status, const char *reason, const char *body, int flags)
{
    pthread_once(&resolved, resolve_h2o);
    const char *outer = h2o_error_text;
    h2o_error_text = body;
    libh2o_send_error(req, status, reason, body, flags);
    h2o_error_text = outer;
}

const char *protocol_guard_h2o_error_text(void)
{
    return h2o_error_text;
}

bool protocol_guard_installed(void)
{
    return dlsym(RTLD_DEFAULT, "phr_parse_request") == (void *)phr_parse_request &&
           dlsym(RTLD_DEFAULT, "h2o_socket_write") == (void *)h2o_socket_write &&
           dlsym(RTLD_DEFAULT, "h2o_send_error_generic") == (void *)h2o_send_error_generic;
}

/* ---- HTTP/2 rapid reset ------------------------------------------------------------------ */

static h2o_socket_t *request_socket(h2o_req_t *req)
{
    return req->version >= 0x200 && req->conn->callbacks->get_socket != NULL
               ? req->conn->callbacks->get_socket(req->conn)
               : NULL;
}

/* The connection's resets in the current window (a new one once it is over). */
static uint32_t *window_resets(guard_socket *g, h2o_req_t *req)
{
    const strata_config *cfg = H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, req->conn->ctx)->srv->cfg;
    uint64_t now = h2o_now(req->conn->ctx->loop);
    if (now - g->window_start_ms >= (uint64_t)cfg->http2_reset_window_ms) {
        g->window_start_ms = now;
        g->resets = 0;
    }
    return &g->resets;
}

void protocol_guard_stream_disposed(h2o_req_t *req)
{
    h2o_socket_t *sock = req->res.status == 0 ? request_socket(req) : NULL;
    guard_socket *g = sock != NULL ? guard_socket_of(sock, true) : NULL;
    if (g != NULL)
        ++*window_resets(g, req);
}

/* GOAWAY with the last stream begun, then half-closed: what h2o's own
 * (static) enqueue_goaway does. h2o closes the connection once the streams
 * still open are done, and meanwhile starts no new one. */
static void goaway_send(h2o_http2_conn_t *conn)
{
    if (conn->state != H2O_HTTP2_CONN_STATE_OPEN)
        return;
    h2o_http2_encode_goaway_frame(&conn->_write.buf, conn->pull_stream_ids.max_open, H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM,
                                  h2o_iovec_init(H2O_STRLIT("too many resets")));
    h2o_http2_conn_request_write(conn);
    conn->state = H2O_HTTP2_CONN_STATE_HALF_CLOSED;
}

bool protocol_guard_stream_refused(h2o_req_t *req, char *detail, size_t size)
{
    h2o_socket_t *sock = request_socket(req);
    guard_socket *g = sock != NULL ? guard_socket_of(sock, false) : NULL;
    const strata_config *cfg = H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, req->conn->ctx)->srv->cfg;
    if (g == NULL || (*window_resets(g, req) <= (uint32_t)cfg->http2_max_resets && !g->goaway_sent))
        return false;
    snprintf(detail, size,
             "this connection reset more than %d streams before their responses within %d ms "
             "(server.http2_max_resets); it is being closed",
             cfg->http2_max_resets, cfg->http2_reset_window_ms);
    if (!g->goaway_sent) {
        g->goaway_sent = true;
        goaway_send((h2o_http2_conn_t *)req->conn);
        metrics_connection_event(METRICS_CONN_RAPID_RESET);
        log_line line;
        log_begin(&line, LOG_WARN, "HTTP/2 connection closed for resetting streams (rapid reset)");
        log_int(&line, "resets", g->resets);
        log_int(&line, "window_ms", cfg->http2_reset_window_ms);
        log_end(&line);
    }
    return true;
}

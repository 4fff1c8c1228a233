/*
 * purge.h — telling a Varnish or a CDN to drop what it cached under some
 * surrogate keys: one small HTTP/1.1 request on a plain socket.
 *
 * The request is `METHOD PATH HTTP/1.1` with `Host`, `HEADER: key1 key2 …`,
 * `Content-Length: 0` and `Connection: close`; the answer counts as done
 * when its status is 2xx, or 404 (Varnish's "nothing had those keys").
 * Everything is bounded: the connection, the request and the status line
 * share one deadline, on a non-blocking socket watched with poll(2). Only
 * http:// is spoken (put a local Varnish or proxy in front of a TLS CDN).
 *
 * The same client posts JSON to other endpoints (alert and content
 * webhooks): purge_endpoint_parse, then purge_post_json or purge_post.
 */
#ifndef STRATA_PURGE_H
#define STRATA_PURGE_H

#include <stdbool.h>
#include <stddef.h>

#define PURGE_KEY_MAX 200         /* bytes of one surrogate key */
#define PURGE_KEYS_MAX_BYTES 4096 /* bytes of one request's key list */

typedef struct purge_target {
    char host[256]; /* for getaddrinfo: a name or an address, no brackets */
    char port[6];
    char host_header[272]; /* as the URL wrote it: "[::1]:6081" */
    char path[1024];
    char method[16];
    char header[64];
} purge_target;

/* Parses url ("http://HOST[:PORT][/PATH]", HOST a name, an IPv4 address or
 * a bracketed IPv6 one) and checks that method and header are HTTP tokens.
 * 0, or -1 with err saying which is wrong. */
int purge_target_parse(const char *url, const char *method, const char *header, purge_target *out, char *err,
                       size_t err_size);

/* Parses only url into out's host, port, host_header and path; messages
 * name the setting `key` ("alerts.webhook_url"). 0, or -1 with err. */
int purge_endpoint_parse(const char *url, const char *key, purge_target *out, char *err, size_t err_size);

/* POSTs body (body_len bytes of JSON) with the extra header lines headers
 * ("Name: value\r\n" each, or "") to the target's URL within timeout_ms:
 * the answer's status (only its status line is read), or -1 with err when
 * none came. */
int purge_post(const purge_target *target, const char *headers, const char *body, size_t body_len, int timeout_ms,
               char *err, size_t err_size);

/* POSTs body (body_len bytes of JSON) to the target's URL within
 * timeout_ms. 0 when it answered 2xx; -1 with err otherwise. */
int purge_post_json(const purge_target *target, const char *body, size_t body_len, int timeout_ms, char *err,
                    size_t err_size);

/* True if key can travel in the header: 1..PURGE_KEY_MAX visible ASCII
 * bytes, no spaces. */
bool purge_key_valid(const char *key);

/* Sends one purge of keys (each purge_key_valid, PURGE_KEYS_MAX_BYTES in
 * all with their separators) within timeout_ms. 0 when the endpoint
 * answered 2xx or 404; -1 with err otherwise (unreachable, timed out, any
 * other status). */
int purge_send(const purge_target *target, const char *const *keys, size_t count, int timeout_ms, char *err,
               size_t err_size);

#endif

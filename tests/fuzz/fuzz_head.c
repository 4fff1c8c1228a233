/*
 * fuzz_head.c — the request-head validator every HTTP/1 head passes
 * before h2o acts on it (protocol_guard_check_head in
 * src/http/protocol_guard.c: the framing rules against request smuggling,
 * and the precise detail of h2o's own early errors), and the client
 * reader of every rate-limited request (ratelimit_client_of in
 * src/http/ratelimit.c: the peer text and X-Forwarded-For behind the
 * trusted proxies).
 *
 * The input is the raw bytes a client sent, as they sit at the start of
 * the socket's buffer (not NUL-terminated). Besides not crashing, the
 * validator must be consistent: a refusal has a status of 400, 431 or 501,
 * a code and a NUL-terminated detail; cutting a head that was judged
 * complete and OK anywhere before its end never yields a refusal (bytes
 * not yet received cannot make the earlier ones wrong).
 * The same bytes, split at the first newline, are an X-Forwarded-For
 * value and a peer text for the client reader, which must give a key of
 * at most RATELIMIT_KEY_MAX bytes.
 */
#include "fuzz.h"
#include "http/ratelimit.h"
#include "http/server_internal.h"

static void head_check(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exactly size bytes: ASan sees a read past them */
    if (copy == NULL)
        abort();
    if (size > 0)
        memcpy(copy, data, size);
    protocol_refusal refusal;
    memset(&refusal, 0x55, sizeof refusal);
    protocol_head verdict = protocol_guard_check_head((const char *)copy, size, &refusal);
    if (verdict == PROTOCOL_HEAD_REFUSED) {
        if (refusal.status != 400 && refusal.status != 431 && refusal.status != 501)
            fuzz_fail("a refusal with a status other than 400, 431 or 501");
        if (refusal.code == NULL || memchr(refusal.detail, '\0', sizeof refusal.detail) == NULL)
            fuzz_fail("a refusal without a code or a terminated detail");
    } else if (verdict == PROTOCOL_HEAD_OK && size > 1) {
        protocol_refusal cut;
        if (protocol_guard_check_head((const char *)copy, size / 2, &cut) == PROTOCOL_HEAD_REFUSED)
            fuzz_fail("a prefix of an accepted head refused");
    }
    free(copy);
}

static void client_check(const uint8_t *data, size_t size)
{
    size_t xff_len, peer_len;
    const uint8_t *peer = fuzz_split(data, size, '\n', &xff_len, &peer_len);
    char *xff = fuzz_strndup(data, xff_len), *peer_text = fuzz_strndup(peer, peer_len);
    ratelimit_client client;
    ratelimit_client_of(peer_text, xff, &client);
    if (client.key_len > RATELIMIT_KEY_MAX)
        fuzz_fail("a client key longer than RATELIMIT_KEY_MAX");
    ratelimit_client_of(peer_text, NULL, &client);
    free(xff);
    free(peer_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    head_check(data, size);
    client_check(data, size);
    return 0;
}

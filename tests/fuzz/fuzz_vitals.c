/*
 * fuzz_vitals.c — the public Web Vitals beacon, POST
 * /api/performance/metrics (vitals_beacon in src/vitals/vitals.c, the loop
 * handler the server calls with the request's body).
 *
 * The first input byte is a mode, the rest the request. Bits 0-1 choose the
 * Content-Type (text/plain as sendBeacon sends it, application/json with a
 * charset, application/json, or one it refuses). With bit 2 clear the rest
 * is the body, sent by a new client address each time (10.x.y.z from a
 * counter), so the per-client limit never answers: a 429 then is a bug.
 * With bit 2 set the rest is an X-Forwarded-For value, a newline, then the
 * body, from the loopback proxy whose last forwarded address is trusted;
 * 429 is then a right answer. Every answer must be 204 or a 4xx problem the
 * endpoint documents, and every thousandth input the summary the
 * dashboard reads is built too, over whatever the beacons recorded.
 */
#include <stdio.h>

#include "fuzz.h"
#include "vitals/vitals.h"

static const char *const content_types[] = {"text/plain;charset=UTF-8", "application/json; charset=utf-8",
                                            "application/json", "application/x-www-form-urlencoded"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint32_t clients, inputs;
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    http_request req;
    http_response res = {0};
    fuzz_request(&req);
    req.method = HTTP_POST;
    req.content_type = (char *)content_types[mode & 3];
    const uint8_t *body = data + 1;
    size_t body_len = size - 1, xff_len = 0;
    char *xff = NULL;
    if (mode & 4) {
        body = fuzz_split(data + 1, size - 1, '\n', &xff_len, &body_len);
        xff = fuzz_strndup(data + 1, xff_len);
        req.forwarded_for = xff;
        strcpy(req.peer, "127.0.0.1");
    } else {
        uint32_t n = ++clients;
        snprintf(req.peer, sizeof req.peer, "10.%u.%u.%u", n >> 16 & 255, n >> 8 & 255, n & 255);
        if (n >> 24)
            snprintf(req.peer, sizeof req.peer, "11.%u.%u.%u", n >> 16 & 255, n >> 8 & 255, n & 255);
    }
    req.body = fuzz_strndup(body, body_len);
    req.body_len = body_len;
    if (!vitals_beacon(&req, &res))
        abort(); /* it always answers */
    int s = res.status;
    bool documented = s == 204 || s == 400 || s == 413 || s == 415 || s == 422 || (s == 429 && (mode & 4));
    if (!documented || (s != 204 && (res.body == NULL || strstr(res.body, "\"detail\"") == NULL)))
        abort();
    http_response_free(&res);
    free(req.body);
    free(xff);
    if (++inputs % 1000 == 0) {
        json_t *summary = vitals_summary_json();
        if (summary == NULL)
            abort();
        json_decref(summary);
    }
    return 0;
}

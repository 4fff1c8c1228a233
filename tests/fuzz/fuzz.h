/*
 * fuzz.h — what the libFuzzer harnesses share (docs/fuzzing.md).
 *
 * libFuzzer hands a harness bytes that are not NUL-terminated; the server
 * hands parsers NUL-terminated copies (h2o's header values, the request
 * copies of http.h). fuzz_strndup makes that copy in a buffer of exactly
 * len + 1 bytes, so ASan catches a read one byte past the NUL too.
 * fuzz_request is the zeroed request a handler sees, with the request id
 * every problem response quotes.
 */
#ifndef STRATA_FUZZ_H
#define STRATA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the harness checks does not hold: say which, and stop as a
 * crash does (libFuzzer keeps the input). */
static inline void fuzz_fail(const char *why)
{
    fprintf(stderr, "fuzz: %s\n", why);
    abort();
}

static inline char *fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    if (len > 0)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* Splits data at the first byte `sep`: *head_len bytes before it, the rest
 * after it (all of data and nothing when there is no sep). */
static inline const uint8_t *fuzz_split(const uint8_t *data, size_t size, uint8_t sep, size_t *head_len,
                                        size_t *tail_len)
{
    const uint8_t *at = size > 0 ? memchr(data, sep, size) : NULL;
    *head_len = at != NULL ? (size_t)(at - data) : size;
    *tail_len = at != NULL ? size - *head_len - 1 : 0;
    return at != NULL ? at + 1 : data + size;
}

static inline void fuzz_request(http_request *req)
{
    memset(req, 0, sizeof(*req));
    strcpy(req->request_id, "fuzz");
}

#endif

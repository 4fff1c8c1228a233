/*
 * khash.h — a stand-in for klib's khash.h, for one include only.
 *
 * Debian's libh2o-evloop-dev (h2o 2.2.5) installs h2o/http2_internal.h,
 * which includes "khash.h" (klib's hash table, bundled in h2o's source)
 * without installing it. strata includes http2_internal.h only for the
 * layout of h2o_http2_conn_t (protocol_guard.c sends a GOAWAY the way h2o's
 * own enqueue_goaway does), in which the stream map is one pointer. So this
 * header declares the map's type with klib's members and leaves its lookup
 * undefined: a call to it (h2o_http2_conn_get_stream) fails at link time
 * instead of running a guess. The Makefile puts this directory on the
 * include path.
 */
#ifndef STRATA_KHASH_STANDIN_H
#define STRATA_KHASH_STANDIN_H

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

#define khash_t(name) kh_##name##_t
#define kh_get(name, h, key) kh_get_##name(h, key)
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, i) ((h)->vals[i])

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                                            \
    typedef struct kh_##name##_s {                                                                                     \
        khint_t n_buckets, size, n_occupied, upper_bound;                                                              \
        uint32_t *flags;                                                                                               \
        uint64_t *keys;                                                                                                \
        khval_t *vals;                                                                                                 \
    } kh_##name##_t;                                                                                                   \
    khint_t kh_get_##name(const kh_##name##_t *h, uint64_t key);

#endif

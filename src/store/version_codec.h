/*
 * version_codec.h — how a version's JSON becomes the bytes of its row and
 * back: zstd frames, alone or against a prefix, in the skip-delta scheme
 * (version_codec.c explains it). No database: versions.c reads and writes
 * the rows and asks this for the bytes.
 */
#ifndef STRATA_STORE_VERSION_CODEC_H
#define STRATA_STORE_VERSION_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* versions.encoding */
enum {
    VERSION_ENCODING_JSON = 0,       /* plain JSON: binaries before schema 2 */
    VERSION_ENCODING_ZSTD = 1,       /* a keyframe: compressed alone */
    VERSION_ENCODING_ZSTD_DELTA = 2, /* compressed against its base's JSON */
};

/* A connection's zstd contexts, made on first use. */
typedef struct version_codec version_codec;
void version_codec_free(version_codec **codec);

/* The version that version `number` is compressed against; 0: a keyframe. */
int64_t version_skip_delta_base(int64_t number);

typedef enum version_codec_result {
    VERSION_CODEC_OK,
    VERSION_CODEC_DAMAGED, /* the bytes do not decode to the declared size */
    VERSION_CODEC_NO_MEMORY,
    VERSION_CODEC_UNKNOWN_ENCODING, /* written by a newer binary */
    VERSION_CODEC_FAILED,           /* zstd refused to compress (why says why) */
} version_codec_result;

/* data compressed alone, or against prefix when it is not NULL; *frame is
 * malloc'd. On VERSION_CODEC_FAILED *why is zstd's reason. */
version_codec_result version_frame_encode(version_codec **codec, const char *data, size_t len, const char *prefix,
                                          size_t prefix_len, void **frame, size_t *frame_len, const char **why);
/* The JSON text (malloc'd, NUL-terminated, `size` bytes before the NUL) of
 * a row's bytes; prefix: its base's JSON, exactly when encoding is a delta. */
version_codec_result version_frame_decode(version_codec **codec, int encoding, const void *data, size_t data_len,
                                          int64_t size, const char *prefix, size_t prefix_len, char **out);

#endif

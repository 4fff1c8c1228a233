/*
 * version_codec.c — the bytes of a version: zstd skip-deltas.
 *
 * A version is the compact JSON of an item's editable state, immutable.
 * Stored whole, 10,000 versions of a 20 KB article would take 200 MB; but
 * consecutive versions differ by a few words, so each one is a zstd frame
 * compressed against a related version's JSON given to zstd as a "prefix"
 * (a raw-content dictionary: its matches may point into that text), and a
 * small edit costs tens of bytes.
 *
 * Which version is the prefix follows the skip-delta scheme (Subversion's).
 * Versions fall in groups of K (history.keyframe_interval, 256). The first
 * of a group, its keyframe, is compressed alone (encoding 1). Version
 * first + j is compressed against version first + (j & (j - 1)) — j with
 * its lowest set bit cleared — and records that number in `base`
 * (encoding 2). Reading any version therefore decodes at most
 * 1 + popcount(j) <= 1 + log2(K) frames (9 at K = 256), never a long chain,
 * while most prefixes are recent versions that share nearly all their text.
 * (docs/history.md has the measured bytes per version.)
 *
 * Every decode is checked here against the row's size (a frame's content
 * size must be it); versions.c checks the SHA-256 of the result.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/store_history.h"
#include "store/version_codec.h"

/* zstd level 6: against a prefix, a small edit costs about as many bytes as
 * at 19, at a tenth of the time (a save stays well under 1 ms). */
enum { ZSTD_LEVEL = 6 };

struct version_codec {
    ZSTD_CCtx *compress;
    ZSTD_DCtx *decompress;
};

static int keyframe_interval = 256; /* set once, before any thread starts */

void store_history_configure(int interval)
{
    if (interval >= 1)
        keyframe_interval = interval;
}

int64_t version_skip_delta_base(int64_t number)
{
    int64_t j = (number - 1) % keyframe_interval;
    return j == 0 ? 0 : number - j + (j & (j - 1));
}

void version_codec_free(version_codec **codec)
{
    if (!*codec)
        return;
    ZSTD_freeCCtx((*codec)->compress);
    ZSTD_freeDCtx((*codec)->decompress);
    free(*codec);
    *codec = NULL;
}

static version_codec *codec_get(version_codec **codec)
{
    if (!*codec)
        *codec = calloc(1, sizeof **codec);
    return *codec;
}

version_codec_result version_frame_encode(version_codec **codec, const char *data, size_t len, const char *prefix,
                                          size_t prefix_len, void **frame, size_t *frame_len, const char **why)
{
    *frame = NULL;
    version_codec *vc = codec_get(codec);
    if (!vc || (!vc->compress && !(vc->compress = ZSTD_createCCtx())))
        return VERSION_CODEC_NO_MEMORY;
    ZSTD_CCtx *c = vc->compress;
    size_t bound = ZSTD_compressBound(len);
    void *out = malloc(bound);
    if (!out)
        return VERSION_CODEC_NO_MEMORY;
    size_t rc = ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    if (!ZSTD_isError(rc) && prefix)
        rc = ZSTD_CCtx_refPrefix(c, prefix, prefix_len);
    if (!ZSTD_isError(rc))
        rc = ZSTD_compress2(c, out, bound, data, len);
    if (ZSTD_isError(rc)) {
        free(out);
        *why = ZSTD_getErrorName(rc);
        return VERSION_CODEC_FAILED;
    }
    *frame = out;
    *frame_len = rc;
    return VERSION_CODEC_OK;
}

/* A zstd frame of exactly size bytes into text. */
static version_codec_result zstd_decode(version_codec **codec, const void *data, size_t data_len, int64_t size,
                                        const char *prefix, size_t prefix_len, char *text)
{
    version_codec *vc = codec_get(codec);
    if (!vc || (!vc->decompress && !(vc->decompress = ZSTD_createDCtx())))
        return VERSION_CODEC_NO_MEMORY;
    unsigned long long declared = ZSTD_getFrameContentSize(data, data_len);
    size_t rc = ZSTD_DCtx_reset(vc->decompress, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(rc) && prefix)
        rc = ZSTD_DCtx_refPrefix(vc->decompress, prefix, prefix_len);
    if (!ZSTD_isError(rc) && declared == (unsigned long long)size)
        rc = ZSTD_decompressDCtx(vc->decompress, text, (size_t)size, data, data_len);
    if (ZSTD_isError(rc) || declared != (unsigned long long)size || rc != (size_t)size)
        return VERSION_CODEC_DAMAGED;
    return VERSION_CODEC_OK;
}

version_codec_result version_frame_decode(version_codec **codec, int encoding, const void *data, size_t data_len,
                                          int64_t size, const char *prefix, size_t prefix_len, char **out)
{
    *out = NULL;
    if (size < 0 || (encoding == VERSION_ENCODING_ZSTD_DELTA) != (prefix != NULL))
        return VERSION_CODEC_DAMAGED;
    if (encoding != VERSION_ENCODING_JSON && encoding != VERSION_ENCODING_ZSTD &&
        encoding != VERSION_ENCODING_ZSTD_DELTA)
        return VERSION_CODEC_UNKNOWN_ENCODING;
    char *text = malloc((size_t)size + 1);
    if (!text)
        return VERSION_CODEC_NO_MEMORY;
    version_codec_result result = VERSION_CODEC_OK;
    if (encoding == VERSION_ENCODING_JSON) {
        if (data_len != (size_t)size)
            result = VERSION_CODEC_DAMAGED;
        else if (data_len)
            memcpy(text, data, data_len);
    } else {
        result = zstd_decode(codec, data, data_len, size, prefix, prefix_len, text);
    }
    if (result != VERSION_CODEC_OK) {
        free(text);
        return result;
    }
    text[size] = '\0';
    *out = text;
    return VERSION_CODEC_OK;
}

/*
 * text_hash.c — text_hash.h's hash: words of eight bytes, each folded in
 * with a multiply by an odd constant and a shift, then a final mix
 * (MurmurHash3's 64-bit finalizer) so every input bit reaches every output
 * bit.
 */
#include "core/text_hash.h"

#include <string.h>

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t text_hash(const char *text)
{
    size_t length = strlen(text);
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ length;
    const char *p = text;
    for (; length >= 8; p += 8, length -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        h = (h ^ word) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, length);
    h = mix((h ^ tail) * 0x9e3779b97f4a7c15ULL);
    return h ? h : 1;
}

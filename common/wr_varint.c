/* wr_varint.c -- unsigned LEB128 varints and zigzag-encoded signed varints.
 *
 * Encoding: 7 value bits per byte, least significant group first; bit 7 set means another
 * byte follows. A uint64 needs at most 10 bytes, and the 10th byte may only be 0 or 1.
 *
 *   value     bytes
 *   0         00
 *   127       7f
 *   128       80 01
 *   2^63      80 80 80 80 80 80 80 80 80 01
 *
 * Invariants: (1) decoders never read at or past @end; (2) they return 0 (corrupt) for a
 * truncated input, an 11th byte, or a 10th byte that would overflow 64 bits. Non-minimal
 * encodings within 10 bytes (80 00 for 0) decode; writers never produce them. */
#include "wr.h"

size_t wr_put_uvarint(uint8_t *dst, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        dst[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[n++] = (uint8_t)v;
    return n;
}

static uint64_t wr_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

static int64_t wr_unzigzag(uint64_t u)
{
    int64_t half = (int64_t)(u >> 1); /* <= INT64_MAX, so the conversion is exact */

    return (u & 1) ? -half - 1 : half;
}

size_t wr_put_svarint(uint8_t *dst, int64_t v)
{
    return wr_put_uvarint(dst, wr_zigzag(v));
}

size_t wr_uvarint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t wr_get_uvarint_slow(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (size_t i = 0; i < WR_VARINT_MAX; i++) {
        uint8_t c;

        if (p + i >= end)
            return 0; /* truncated */
        c = p[i];
        if (i == WR_VARINT_MAX - 1 && c > 1)
            return 0; /* overflows 64 bits, or an 11th byte follows */
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0; /* unreachable: the 10th byte either ends the varint or is rejected */
}

size_t wr_get_svarint(const uint8_t *p, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    size_t n = wr_get_uvarint(p, end, &u);

    if (n != 0)
        *v = wr_unzigzag(u);
    return n;
}

/* kv_bloom.c -- the per-table bloom filter over user keys (docs/formats/sst.md §4).
 *
 * Filter contents:
 *
 *   | size     | field   | meaning                                                   |
 *   | m / 8    | bits    | bit j of the filter is bit (j % 8) of byte j / 8          |
 *   | 1        | k       | probes per key, 1..30                                     |
 *   | 1        | scheme  | 1: h1 = XXH3-64(user key), h2 = fmix64(h1), probe i sets  |
 *   |          |         |    bit (h1 + i * h2) mod m (u64 arithmetic, wrapping)     |
 *
 * m = max(64, key count * bits per key) rounded up to a multiple of 8. k = round(bits per key *
 * ln 2) clamped to 1..30, the k that minimises the false-positive rate (1 - e^(-kn/m))^k; at 10
 * bits per key k = 7 and the rate is about 0.82%. Double hashing (Kirsch and Mitzenmacher,
 * "Less hashing, same performance", 2006) derives all k probes from one 64-bit hash; h2 comes
 * from murmur3's 64-bit finaliser so the two are independent in practice, and reducing mod m
 * (not a power of two) uses every bit of both.
 *
 * Invariants: (1) no false negatives: build and probe compute the same positions; (2) the parser
 * rejects k outside 1..30, an unknown scheme and an empty bit array. */
#include <math.h>

#include "kv_sst.h"

static inline uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

uint64_t kv_bloom_hash(wr_bytes ukey)
{
    return wr_xxh3(ukey.ptr, ukey.len);
}

uint32_t kv_bloom_probes(uint32_t bits_per_key)
{
    double k = floor((double)bits_per_key * 0.69314718055994531 + 0.5);
    if (k < 1)
        return 1;
    if (k > KV_BLOOM_K_MAX)
        return KV_BLOOM_K_MAX;
    return (uint32_t)k;
}

wr_status kv_bloom_build(const uint64_t *hashes, size_t cnt, uint32_t bits_per_key, wr_buf *out)
{
    uint64_t nbits = (uint64_t)cnt * (bits_per_key ? bits_per_key : 1);
    uint32_t k = kv_bloom_probes(bits_per_key);
    size_t nbytes;
    uint8_t *bits;

    if (nbits < 64)
        nbits = 64;
    nbits = (nbits + 7) / 8 * 8;
    if (nbits / 8 > SIZE_MAX / 2)
        return WR_ERR_TOOBIG;
    nbytes = (size_t)(nbits / 8);
    WR_TRY(wr_buf_reserve(out, nbytes + 2));
    bits = out->ptr + out->len;
    memset(bits, 0, nbytes);
    for (size_t i = 0; i < cnt; i++) {
        uint64_t h = hashes[i], d = fmix64(h);
        for (uint32_t j = 0; j < k; j++, h += d) {
            uint64_t bit = h % nbits;
            bits[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        }
    }
    bits[nbytes] = (uint8_t)k;
    bits[nbytes + 1] = KV_BLOOM_SCHEME;
    out->len += nbytes + 2;
    return WR_OK;
}

wr_status kv_bloom_parse(const uint8_t *p, size_t len, kv_bloom *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 3 || p[len - 1] != KV_BLOOM_SCHEME || p[len - 2] < 1 || p[len - 2] > KV_BLOOM_K_MAX)
        return WR_CORRUPT();
    out->bits = p;
    out->nbits = (uint64_t)(len - 2) * 8;
    out->k = p[len - 2];
    return WR_OK;
}

bool kv_bloom_may_contain(const kv_bloom *f, uint64_t hash)
{
    uint64_t h = hash, d = fmix64(hash);
    for (uint32_t j = 0; j < f->k; j++, h += d) {
        uint64_t bit = h % f->nbits;
        if ((f->bits[bit >> 3] & (1u << (bit & 7))) == 0)
            return false;
    }
    return true;
}

/* wr_xxh3.c -- XXH3 wrappers over the system libxxhash (Debian libxxhash-dev).
 *
 * wr_xxh3_128() writes the canonical (big-endian) form, XXH128_canonical_t, so the bytes are
 * the same on every platform and may go to disk.
 *
 * Invariants: (1) the streaming state comes from wr_malloc (so tests can fail it) and is
 * aligned to 64 bytes by hand, because XXH3_state_t declares 64-byte aligned members and
 * malloc only promises 16; (2) the raw block pointer is kept in the state for wr_free. */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t's definition */
#include <xxhash.h>

#include "wr.h"

struct wr_xxh3_state {
    XXH3_state_t st;
    void *raw; /* owned: the block from wr_malloc that contains this struct */
};

#define WR_XXH3_ALIGN 64

uint64_t wr_xxh3(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

uint64_t wr_xxh3_seed(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

void wr_xxh3_128(const void *p, size_t n, uint8_t out[16])
{
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
    _Static_assert(sizeof(c.digest) == 16, "XXH128 canonical form is 16 bytes");
    memcpy(out, c.digest, 16);
}

wr_status wr_xxh3_begin(wr_xxh3_state **out)
{
    void *raw;
    wr_xxh3_state *st;

    *out = NULL;
    if ((raw = wr_malloc(sizeof(*st) + WR_XXH3_ALIGN - 1)) == NULL)
        return wr_err(WR_ERR_NOMEM, "xxh3: out of memory for a streaming state");
    st = (wr_xxh3_state *)(((uintptr_t)raw + WR_XXH3_ALIGN - 1) & ~(uintptr_t)(WR_XXH3_ALIGN - 1));
    st->raw = raw;
    if (XXH3_64bits_reset(&st->st) != XXH_OK) {
        wr_free(raw);
        return wr_err(WR_ERR_INTERNAL, "xxh3: XXH3_64bits_reset failed");
    }
    *out = st;
    return WR_OK;
}

void wr_xxh3_update(wr_xxh3_state *st, const void *p, size_t n)
{
    /* XXH3_64bits_update fails only for a NULL input with n > 0, a caller bug */
    WR_VERIFY(XXH3_64bits_update(&st->st, p, n) == XXH_OK);
}

uint64_t wr_xxh3_digest(const wr_xxh3_state *st)
{
    return XXH3_64bits_digest(&st->st);
}

void wr_xxh3_end(wr_xxh3_state *st)
{
    if (st != NULL)
        wr_free(st->raw);
}

/* kv_key.h -- internal keys of the LSM store (private to index/kv/).
 *
 * An internal key is the user key followed by an 8-byte little-endian trailer
 * (seq << 8) | type. Entries order by user key (bytewise, shorter first on a tie), then by
 * sequence number descending (newest first), then by type descending, so a seek to
 * (key, snapshot seq, KV_TYPE_SEEK) lands on the newest version visible to that snapshot
 * (LevelDB's dbformat.h, the same idea).
 *
 * Invariants: (1) sequence numbers are < 2^56; (2) every entry in a memtable or SST is an
 * internal key; (3) user keys are at most KV_KEY_MAX bytes. */
#ifndef WEIR_KV_KEY_H
#define WEIR_KV_KEY_H

#include "wr.h"

#define KV_SEQ_MAX   ((UINT64_C(1) << 56) - 1)
#define KV_TRAILER   8
#define KV_KEY_MAX   (64u << 10) /* user key bytes */
#define KV_VALUE_MAX (64u << 20) /* value bytes */

typedef enum kv_type {
    KV_TYPE_DEL = 0, /* tombstone */
    KV_TYPE_PUT = 1,
    KV_TYPE_SEEK = KV_TYPE_PUT /* the largest type: seeks use it */
} kv_type;

static inline uint64_t kv_trailer(uint64_t seq, kv_type t)
{
    return (seq << 8) | (uint64_t)t;
}

/* Write user key + trailer into @dst (cap >= key.len + 8). Returns the length. */
static inline size_t kv_ikey_put(uint8_t *dst, wr_bytes ukey, uint64_t seq, kv_type t)
{
    if (ukey.len)
        memcpy(dst, ukey.ptr, ukey.len);
    wr_put64(dst + ukey.len, kv_trailer(seq, t));
    return ukey.len + KV_TRAILER;
}

static inline wr_bytes kv_ikey_user(wr_bytes ikey)
{
    return wr_bytes_of(ikey.ptr, ikey.len - KV_TRAILER);
}

static inline uint64_t kv_ikey_seq(wr_bytes ikey)
{
    return wr_get64(ikey.ptr + ikey.len - KV_TRAILER) >> 8;
}

static inline kv_type kv_ikey_type(wr_bytes ikey)
{
    return (kv_type)(wr_get64(ikey.ptr + ikey.len - KV_TRAILER) & 0xff);
}

/* Internal-key order: user key ascending, then trailer descending. */
static inline int kv_ikey_cmp(wr_bytes a, wr_bytes b)
{
    int c = wr_bytes_cmp(kv_ikey_user(a), kv_ikey_user(b));
    uint64_t ta, tb;
    if (c != 0)
        return c;
    ta = wr_get64(a.ptr + a.len - KV_TRAILER);
    tb = wr_get64(b.ptr + b.len - KV_TRAILER);
    return ta > tb ? -1 : ta < tb;
}

#endif

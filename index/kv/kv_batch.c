/* kv_batch.c -- atomic write batches and their encoding, which is also the payload of a WAL
 * record (docs/formats/kv-wal.md).
 *
 *   off size field
 *     0    8 sequence number of the first entry (set when the batch is written)
 *     8    4 entry count
 *    12    . entries: u8 type (0 delete, 1 put), uvarint key length, key,
 *              and for a put: uvarint value length, value
 * Entry i gets sequence number base + i. */
#include "kv_int.h"

#define KV_BATCH_HDR 12

struct kv_batch {
    wr_buf rep; /* owned */
    uint32_t count;
};

wr_status kv_batch_create(kv_batch **out)
{
    kv_batch *b = wr_calloc(1, sizeof(*b));
    *out = NULL;
    if (b == NULL)
        return WR_ERR_NOMEM;
    kv_batch_clear(b);
    if (b->rep.len != KV_BATCH_HDR) {
        wr_free(b);
        return WR_ERR_NOMEM;
    }
    *out = b;
    return WR_OK;
}

void kv_batch_destroy(kv_batch *b)
{
    if (b == NULL)
        return;
    wr_buf_fini(&b->rep);
    wr_free(b);
}

void kv_batch_clear(kv_batch *b)
{
    static const uint8_t zero[KV_BATCH_HDR];
    b->rep.len = 0;
    b->count = 0;
    WR_IGNORE(wr_buf_append(&b->rep, zero, sizeof(zero))); /* len stays 0 on NOMEM */
}

size_t kv_batch_encode1(uint8_t *dst, size_t cap, kv_type t, wr_bytes key, wr_bytes val)
{
    size_t n = KV_BATCH_HDR;
    if (t != KV_TYPE_PUT)
        val.len = 0;
    if (KV_BATCH_HDR + 1 + 2 * WR_VARINT_MAX + key.len + val.len > cap)
        return 0;
    memset(dst, 0, 8);
    wr_put32(dst + 8, 1);
    dst[n++] = (uint8_t)t;
    n += wr_put_uvarint(dst + n, key.len);
    if (key.len)
        memcpy(dst + n, key.ptr, key.len);
    n += key.len;
    if (t == KV_TYPE_PUT) {
        n += wr_put_uvarint(dst + n, val.len);
        if (val.len)
            memcpy(dst + n, val.ptr, val.len);
        n += val.len;
    }
    return n;
}

static wr_status add(kv_batch *b, kv_type t, wr_bytes key, wr_bytes val)
{
    uint8_t hdr[1 + WR_VARINT_MAX], vl[WR_VARINT_MAX];
    size_t n = 0, old = b->rep.len;
    wr_status st;

    if (b->rep.len < KV_BATCH_HDR)
        return WR_ERR_NOMEM; /* clear() could not allocate */
    if (key.len > KV_KEY_MAX)
        return wr_err(WR_ERR_TOOBIG, "key of %zu bytes: the limit is %u", key.len, KV_KEY_MAX);
    if (t == KV_TYPE_PUT && val.len > KV_VALUE_MAX)
        return wr_err(WR_ERR_TOOBIG, "value of %zu bytes: the limit is %u", val.len, KV_VALUE_MAX);
    hdr[n++] = (uint8_t)t;
    n += wr_put_uvarint(hdr + n, key.len);
    if ((st = wr_buf_append(&b->rep, hdr, n)) != WR_OK ||
        (st = wr_buf_append(&b->rep, key.ptr, key.len)) != WR_OK)
        goto undo;
    if (t == KV_TYPE_PUT) {
        size_t m = wr_put_uvarint(vl, val.len);
        if ((st = wr_buf_append(&b->rep, vl, m)) != WR_OK ||
            (st = wr_buf_append(&b->rep, val.ptr, val.len)) != WR_OK)
            goto undo;
    }
    b->count++;
    wr_put32(b->rep.ptr + 8, b->count);
    return WR_OK;
undo:
    b->rep.len = old; /* all or nothing */
    return st;
}

wr_status kv_batch_put(kv_batch *b, wr_bytes key, wr_bytes val)
{
    return add(b, KV_TYPE_PUT, key, val);
}

wr_status kv_batch_delete(kv_batch *b, wr_bytes key)
{
    return add(b, KV_TYPE_DEL, key, wr_bytes_of(NULL, 0));
}

uint32_t kv_batch_count(const kv_batch *b)
{
    return b->count;
}

wr_bytes kv_batch_rep(const kv_batch *b)
{
    return wr_bytes_of(b->rep.ptr, b->rep.len);
}

void kv_batch_set_seq(kv_batch *b, uint64_t seq)
{
    wr_put64(b->rep.ptr, seq);
}

wr_status kv_batch_iterate(wr_bytes rep, kv_batch_fn fn, void *ctx)
{
    const uint8_t *p, *end = rep.ptr + rep.len;
    uint64_t seq;
    uint32_t count;

    if (rep.len < KV_BATCH_HDR)
        return wr_err(WR_ERR_CORRUPT, "write batch of %zu bytes is shorter than its header",
                      rep.len);
    seq = wr_get64(rep.ptr);
    count = wr_get32(rep.ptr + 8);
    p = rep.ptr + KV_BATCH_HDR;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t kl, vl = 0;
        size_t k;
        wr_bytes key, val = {NULL, 0};
        kv_type t;
        if (p >= end || *p > KV_TYPE_PUT)
            goto corrupt;
        t = (kv_type)*p++;
        if ((k = wr_get_uvarint(p, end, &kl)) == 0 || kl > (uint64_t)(end - p - k))
            goto corrupt;
        key = wr_bytes_of(p + k, (size_t)kl);
        p += k + kl;
        if (t == KV_TYPE_PUT) {
            if ((k = wr_get_uvarint(p, end, &vl)) == 0 || vl > (uint64_t)(end - p - k))
                goto corrupt;
            val = wr_bytes_of(p + k, (size_t)vl);
            p += k + vl;
        }
        WR_TRY(fn(ctx, seq + i, t, key, val));
    }
    if (p != end)
        goto corrupt;
    return WR_OK;
corrupt:
    return wr_err(WR_ERR_CORRUPT, "malformed write batch at byte %zu", (size_t)(p - rep.ptr));
}

/* kv_block.c -- one block of sorted internal keys: builder, restart-array parser, iterator.
 *
 * Block contents (before the trailer that kv_sst.c adds; docs/formats/sst.md §3):
 *
 *   entry*      shared: uvarint     bytes of the key shared with the previous entry's key
 *               non_shared: uvarint bytes of key that follow
 *               val_len: uvarint
 *               key[shared, shared + non_shared)   the key delta
 *               value[val_len]
 *   restart*    u32 LE each: offset of an entry stored with shared = 0
 *   count       u32 LE: number of restarts
 *
 * The first entry and every interval-th entry after it is a restart point: it stores its key
 * whole, so a reader can start decoding there. Seeks binary-search the restart keys, then scan.
 *
 * Invariants: (1) the builder is given strictly increasing internal keys (kv_sst.c checks);
 * (2) restart offsets are strictly increasing, start at 0 and lie inside the entries (parser
 * checks); (3) every decoded key is KV_TRAILER..KV_KEY_MAX + KV_TRAILER bytes and every length
 * is checked against the end of the entries before it is used, so any byte string yields
 * WR_OK, WR_EOF or WR_ERR_CORRUPT, never an out-of-bounds read; (4) each decoded entry is at
 * least 3 bytes, so scans terminate. */
#include "kv_sst.h"

/* ---------------------------------------------------------------- builder */
void kv_block_builder_init(kv_block_builder *b, uint32_t restart_interval)
{
    memset(b, 0, sizeof(*b));
    b->interval = restart_interval ? restart_interval : 1;
}

void kv_block_builder_fini(kv_block_builder *b)
{
    wr_buf_fini(&b->buf);
    wr_buf_fini(&b->last);
    wr_free(b->rst);
    memset(b, 0, sizeof(*b));
}

void kv_block_builder_reset(kv_block_builder *b)
{
    b->buf.len = 0;
    b->last.len = 0;
    b->rst_cnt = 0;
    b->since = 0;
    b->entry_cnt = 0;
}

size_t kv_block_builder_size(const kv_block_builder *b)
{
    return b->buf.len + 4 * b->rst_cnt + 4;
}

wr_status kv_block_builder_add(kv_block_builder *b, wr_bytes key, wr_bytes val)
{
    uint8_t hdr[3 * WR_VARINT_MAX];
    size_t shared = 0, n;

    if (b->entry_cnt == 0 || b->since >= b->interval) {
        if (b->rst_cnt == b->rst_cap) {
            size_t cap = b->rst_cap ? 2 * b->rst_cap : 16;
            uint32_t *r = wr_realloc(b->rst, cap * sizeof(*r));
            if (r == NULL)
                return WR_ERR_NOMEM;
            b->rst = r;
            b->rst_cap = cap;
        }
        if (b->buf.len > UINT32_MAX)
            return WR_ERR_TOOBIG;
        b->rst[b->rst_cnt++] = (uint32_t)b->buf.len;
        b->since = 0;
    } else {
        size_t lim = key.len < b->last.len ? key.len : b->last.len;
        while (shared < lim && key.ptr[shared] == b->last.ptr[shared])
            shared++;
    }
    n = wr_put_uvarint(hdr, shared);
    n += wr_put_uvarint(hdr + n, key.len - shared);
    n += wr_put_uvarint(hdr + n, val.len);
    if (b->buf.len + n + key.len + val.len > KV_BLOCK_MAX)
        return WR_ERR_TOOBIG;
    WR_TRY(wr_buf_reserve(&b->buf, n + (key.len - shared) + val.len));
    memcpy(b->buf.ptr + b->buf.len, hdr, n);
    b->buf.len += n;
    if (key.len > shared) {
        memcpy(b->buf.ptr + b->buf.len, key.ptr + shared, key.len - shared);
        b->buf.len += key.len - shared;
    }
    if (val.len) {
        memcpy(b->buf.ptr + b->buf.len, val.ptr, val.len);
        b->buf.len += val.len;
    }
    b->last.len = 0;
    WR_TRY(wr_buf_append(&b->last, key.ptr, key.len));
    b->since++;
    b->entry_cnt++;
    return WR_OK;
}

wr_status kv_block_builder_finish(kv_block_builder *b, wr_bytes *out)
{
    uint8_t *p;

    WR_TRY(wr_buf_reserve(&b->buf, 4 * b->rst_cnt + 4));
    p = b->buf.ptr + b->buf.len;
    for (size_t i = 0; i < b->rst_cnt; i++, p += 4)
        wr_put32(p, b->rst[i]);
    wr_put32(p, (uint32_t)b->rst_cnt);
    b->buf.len += 4 * b->rst_cnt + 4;
    *out = wr_bytes_of(b->buf.ptr, b->buf.len);
    return WR_OK;
}

/* ---------------------------------------------------------------- parser */
wr_status kv_block_parse(const uint8_t *p, size_t len, kv_block *out)
{
    uint32_t cnt, prev = 0;
    size_t rst_off;

    memset(out, 0, sizeof(*out));
    if (len < 4 || len > KV_BLOCK_MAX)
        return WR_CORRUPT();
    cnt = wr_get32(p + len - 4);
    if (cnt > (len - 4) / 4)
        return WR_CORRUPT();
    rst_off = len - 4 - 4 * (size_t)cnt;
    if ((cnt == 0) != (rst_off == 0)) /* entries need a restart; a restart needs entries */
        return WR_CORRUPT();
    for (uint32_t i = 0; i < cnt; i++) {
        uint32_t r = wr_get32(p + rst_off + 4 * (size_t)i);
        if ((i == 0 && r != 0) || (i > 0 && r <= prev) || r >= rst_off)
            return WR_CORRUPT();
        prev = r;
    }
    out->p = p;
    out->len = (uint32_t)len;
    out->rst_off = (uint32_t)rst_off;
    out->rst_cnt = cnt;
    return WR_OK;
}

static inline uint32_t rst_at(const kv_block *b, uint32_t i)
{
    return wr_get32(b->p + b->rst_off + 4 * (size_t)i);
}

/* ---------------------------------------------------------------- iterator */
void kv_block_iter_init(kv_block_iter *it, const kv_block *blk)
{
    memset(it, 0, sizeof(*it));
    it->blk = blk;
}

void kv_block_iter_fini(kv_block_iter *it)
{
    wr_buf_fini(&it->key);
    it->valid = false;
}

static wr_status unpositioned(kv_block_iter *it, wr_status st)
{
    it->valid = false;
    it->key.len = 0;
    return st;
}

/* Decode the entry at @off on top of the current key (cleared by the caller at a restart, so a
 * restart entry with shared > 0 is caught as corrupt). */
static wr_status decode_at(kv_block_iter *it, uint32_t off)
{
    const kv_block *b = it->blk;
    const uint8_t *p = b->p + off, *end = b->p + b->rst_off;
    uint64_t shared, nons, vlen;
    size_t n;
    wr_status st;

    if (off >= b->rst_off)
        return unpositioned(it, WR_CORRUPT());
    if ((n = wr_get_uvarint(p, end, &shared)) == 0)
        return unpositioned(it, WR_CORRUPT());
    p += n;
    if ((n = wr_get_uvarint(p, end, &nons)) == 0)
        return unpositioned(it, WR_CORRUPT());
    p += n;
    if ((n = wr_get_uvarint(p, end, &vlen)) == 0)
        return unpositioned(it, WR_CORRUPT());
    p += n;
    if (shared > it->key.len || nons > (uint64_t)(end - p) || vlen > (uint64_t)(end - p) - nons)
        return unpositioned(it, WR_CORRUPT());
    if (shared + nons < KV_TRAILER || shared + nons > (uint64_t)KV_KEY_MAX + KV_TRAILER)
        return unpositioned(it, WR_CORRUPT());
    it->key.len = (size_t)shared;
    if ((st = wr_buf_append(&it->key, p, (size_t)nons)) != WR_OK)
        return unpositioned(it, st);
    p += nons;
    it->val = wr_bytes_of(p, (size_t)vlen);
    it->cur = off;
    it->next = (uint32_t)(p + vlen - b->p);
    it->valid = true;
    return WR_OK;
}

static wr_status seek_restart(kv_block_iter *it, uint32_t i)
{
    it->key.len = 0;
    return decode_at(it, rst_at(it->blk, i));
}

wr_status kv_block_iter_first(kv_block_iter *it)
{
    if (it->blk->rst_cnt == 0)
        return unpositioned(it, WR_EOF);
    return seek_restart(it, 0);
}

wr_status kv_block_iter_next(kv_block_iter *it)
{
    if (!it->valid)
        return WR_EOF;
    if (it->next >= it->blk->rst_off)
        return unpositioned(it, WR_EOF);
    return decode_at(it, it->next);
}

wr_status kv_block_iter_last(kv_block_iter *it)
{
    if (it->blk->rst_cnt == 0)
        return unpositioned(it, WR_EOF);
    WR_TRY(seek_restart(it, it->blk->rst_cnt - 1));
    while (it->next < it->blk->rst_off)
        WR_TRY(decode_at(it, it->next));
    return WR_OK;
}

wr_status kv_block_iter_prev(kv_block_iter *it)
{
    const kv_block *b = it->blk;
    uint32_t target = it->cur, lo = 0, hi;

    if (!it->valid)
        return WR_EOF;
    if (target == 0)
        return unpositioned(it, WR_EOF);
    /* the last restart strictly before the current entry (restart 0 is offset 0 < target) */
    hi = b->rst_cnt - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (rst_at(b, mid) < target)
            lo = mid;
        else
            hi = mid - 1;
    }
    WR_TRY(seek_restart(it, lo));
    while (it->next < target)
        WR_TRY(decode_at(it, it->next));
    if (it->next != target) /* the chain jumped over the entry we came from */
        return unpositioned(it, WR_CORRUPT());
    return WR_OK;
}

wr_status kv_block_iter_seek(kv_block_iter *it, wr_bytes target)
{
    const kv_block *b = it->blk;
    uint32_t lo = 0, hi;

    if (b->rst_cnt == 0)
        return unpositioned(it, WR_EOF);
    /* the last restart whose key is < target; scanning from there finds the first key >= */
    hi = b->rst_cnt - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        WR_TRY(seek_restart(it, mid));
        if (kv_ikey_cmp(kv_block_iter_key(it), target) < 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    WR_TRY(seek_restart(it, lo));
    while (kv_ikey_cmp(kv_block_iter_key(it), target) < 0) {
        if (it->next >= b->rst_off)
            return unpositioned(it, WR_EOF);
        WR_TRY(decode_at(it, it->next));
    }
    return WR_OK;
}

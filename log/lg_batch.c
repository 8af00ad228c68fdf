/* lg_batch.c -- the record batch: encoding, sealing, header parsing, checking, and record
 * iteration. Byte layout (all integers little-endian; docs/formats/log.md):
 *
 *   off size field
 *     0    4 magic "WRB1"
 *     4    4 batch length in bytes, header included (72 .. 64 MiB)
 *     8    8 base offset
 *    16    8 checksum: XXH3-64(bytes [24, len)) XOR XXH3-64(bytes [0, 16))
 *    24    1 format version (1)
 *    25    1 attributes: bits 0-1 compression (0 none, 1 zstd); others 0
 *    26    2 reserved, 0
 *    28    4 record count (>= 1)
 *    32    4 last offset delta (>= count - 1; larger after compaction left gaps)
 *    36    8 first timestamp (ms since the epoch)
 *    44    8 max timestamp
 *    52    8 producer id (UINT64_MAX: none)
 *    60    2 producer epoch
 *    62    2 reserved, 0
 *    64    4 base sequence
 *    68    4 uncompressed length of the records
 *    72    . records, zstd-compressed as a whole when attributes say so
 *
 * A record: uvarint length of the rest, uvarint offset delta, svarint timestamp delta
 * (from the first timestamp), svarint key length (-1: no key), key, svarint value length
 * (-1: tombstone), value, uvarint header count, then per header: uvarint key length, key,
 * svarint value length (-1: null), value.
 *
 * Invariant: the checksum splits in two so an appender can hash the body before it knows
 * its base offset; sealing the batch under the partition lock costs a 16-byte hash. */
#include <zstd.h>

#include "lg_int.h"

static size_t rec_body_len(const lg_rec_in *r, uint32_t delta, int64_t tsd)
{
    size_t n = wr_uvarint_len(delta) + wr_uvarint_len(((uint64_t)tsd << 1) ^ (uint64_t)(tsd >> 63));
    n += r->key.ptr ? wr_uvarint_len((uint64_t)r->key.len << 1) + r->key.len : 1;
    n += r->tombstone ? 1 : wr_uvarint_len((uint64_t)r->val.len << 1) + r->val.len;
    n += wr_uvarint_len(r->hdr_cnt);
    for (uint32_t i = 0; i < r->hdr_cnt; i++) {
        const lg_header *h = &r->hdrs[i];
        n += wr_uvarint_len(h->key.len) + h->key.len;
        n += h->val.ptr ? wr_uvarint_len((uint64_t)h->val.len << 1) + h->val.len : 1;
    }
    return n;
}

static uint8_t *put_bytes(uint8_t *w, wr_bytes b, bool nullable)
{
    if (nullable && b.ptr == NULL) {
        w += wr_put_svarint(w, -1);
        return w;
    }
    w += wr_put_svarint(w, (int64_t)b.len);
    if (b.len)
        memcpy(w, b.ptr, b.len);
    return w + b.len;
}

wr_status lg_batch_encode(const lg_batch_in *b, int64_t now_ms, uint32_t max_record_bytes,
                          wr_buf *out, uint64_t *body_hash_out)
{
    int64_t first_ts, max_ts;
    size_t raw = 0, total;
    uint8_t *h, *w;

    if (b->rec_cnt == 0)
        return wr_err(WR_ERR_INVAL, "empty batch: a batch needs at least one record");
    first_ts = b->recs[0].ts_ms ? b->recs[0].ts_ms : now_ms;
    max_ts = first_ts;
    for (uint32_t i = 0; i < b->rec_cnt; i++) {
        const lg_rec_in *r = &b->recs[i];
        int64_t ts = r->ts_ms ? r->ts_ms : now_ms;
        size_t sz = (r->key.ptr ? r->key.len : 0) + (r->tombstone ? 0 : r->val.len), body;
        for (uint32_t j = 0; j < r->hdr_cnt; j++)
            sz += r->hdrs[j].key.len + r->hdrs[j].val.len;
        if (sz > max_record_bytes)
            return wr_err(WR_ERR_TOOBIG,
                          "record %u of the batch is %zu bytes (key + value + headers); the "
                          "topic's max.record.bytes is %u",
                          i, sz, max_record_bytes);
        if (r->hdr_cnt && r->hdrs == NULL)
            return wr_err(WR_ERR_INVAL, "record %u: hdr_cnt %u but no headers", i, r->hdr_cnt);
        if (ts > max_ts)
            max_ts = ts;
        body = rec_body_len(r, i, ts - first_ts);
        raw += wr_uvarint_len(body) + body;
    }
    if (raw > LG_BATCH_MAX - LG_BATCH_HDR)
        return wr_err(WR_ERR_TOOBIG, "batch of %u records is %zu bytes; a batch holds at most %u",
                      b->rec_cnt, raw, LG_BATCH_MAX - LG_BATCH_HDR);
    total = LG_BATCH_HDR + raw;
    out->len = 0;
    WR_TRY(wr_buf_reserve(out, total));
    h = out->ptr;
    w = h + LG_BATCH_HDR;
    for (uint32_t i = 0; i < b->rec_cnt; i++) {
        const lg_rec_in *r = &b->recs[i];
        int64_t tsd = (r->ts_ms ? r->ts_ms : now_ms) - first_ts;
        w += wr_put_uvarint(w, rec_body_len(r, i, tsd));
        w += wr_put_uvarint(w, i);
        w += wr_put_svarint(w, tsd);
        w = put_bytes(w, r->key, true);
        if (r->tombstone)
            w += wr_put_svarint(w, -1);
        else
            w = put_bytes(w, r->val, false);
        w += wr_put_uvarint(w, r->hdr_cnt);
        for (uint32_t j = 0; j < r->hdr_cnt; j++) {
            w += wr_put_uvarint(w, r->hdrs[j].key.len);
            if (r->hdrs[j].key.len)
                memcpy(w, r->hdrs[j].key.ptr, r->hdrs[j].key.len);
            w += r->hdrs[j].key.len;
            w = put_bytes(w, r->hdrs[j].val, true);
        }
    }
    WR_VERIFY((size_t)(w - h) == total);

    memset(h, 0, LG_BATCH_HDR);
    wr_put32(h + 0, LG_BATCH_MAGIC);
    h[24] = LG_BATCH_VERSION;
    wr_put32(h + 28, b->rec_cnt);
    wr_put32(h + 32, b->rec_cnt - 1);
    wr_put64(h + 36, (uint64_t)first_ts);
    wr_put64(h + 44, (uint64_t)max_ts);
    wr_put64(h + 52, b->producer_id);
    wr_put16(h + 60, b->producer_epoch);
    wr_put32(h + 64, b->base_seq);
    wr_put32(h + 68, (uint32_t)raw);

    if (b->compression == LG_COMP_ZSTD) {
        size_t bound = ZSTD_compressBound(raw), z;
        uint8_t *tmp = wr_malloc(bound);
        if (tmp == NULL)
            return WR_ERR_NOMEM;
        z = ZSTD_compress(tmp, bound, h + LG_BATCH_HDR, raw, 1);
        if (!ZSTD_isError(z) && z < raw) { /* keep it raw when compression does not help */
            memcpy(h + LG_BATCH_HDR, tmp, z);
            total = LG_BATCH_HDR + z;
            h[25] = LG_COMP_ZSTD;
        }
        wr_free(tmp);
    }
    wr_put32(h + 4, (uint32_t)total);
    out->len = total;
    *body_hash_out = wr_xxh3(h + 24, total - 24);
    return WR_OK;
}

void lg_batch_seal(uint8_t *batch, uint64_t base, uint64_t body_hash)
{
    wr_put64(batch + 8, base);
    wr_put64(batch + 16, body_hash ^ wr_xxh3(batch, 16));
}

uint64_t lg_batch_checksum(const uint8_t *p, size_t len)
{
    return wr_xxh3(p + 24, len - 24) ^ wr_xxh3(p, 16);
}

wr_status lg_bhdr_parse(const uint8_t *p, size_t avail, lg_bhdr *out)
{
    if (avail < LG_BATCH_HDR)
        return WR_EOF;
    if (wr_get32(p) != LG_BATCH_MAGIC)
        return wr_err(WR_ERR_CORRUPT, "bad batch magic %08x", wr_get32(p));
    out->len = wr_get32(p + 4);
    out->base = wr_get64(p + 8);
    out->checksum = wr_get64(p + 16);
    out->version = p[24];
    out->attrs = p[25];
    out->count = wr_get32(p + 28);
    out->last_delta = wr_get32(p + 32);
    out->first_ts = (int64_t)wr_get64(p + 36);
    out->max_ts = (int64_t)wr_get64(p + 44);
    out->producer_id = wr_get64(p + 52);
    out->producer_epoch = wr_get16(p + 60);
    out->base_seq = wr_get32(p + 64);
    out->raw_len = wr_get32(p + 68);
    if (out->len < LG_BATCH_HDR || out->len > LG_BATCH_MAX)
        return wr_err(WR_ERR_CORRUPT, "bad batch length %u", out->len);
    if (out->len > avail)
        return WR_EOF;
    return WR_OK;
}

wr_status lg_batch_check(const uint8_t *p, size_t avail, lg_bhdr *out)
{
    wr_status st = lg_bhdr_parse(p, avail, out);
    if (st != WR_OK)
        return st;
    if (lg_batch_checksum(p, out->len) != out->checksum)
        return wr_err(WR_ERR_CORRUPT, "batch checksum mismatch");
    /* Only now are the fields trustworthy enough to judge. */
    /* The checksum holds, so these bytes were written on purpose, by a newer weir: refuse
     * them as unsupported (never treat them as a torn tail to truncate). */
    if (out->version != LG_BATCH_VERSION)
        return wr_err(WR_ERR_UNSUPPORTED,
                      "batch format version %u is not supported (this weir reads version %u); "
                      "upgrade weir",
                      out->version, LG_BATCH_VERSION);
    if ((out->attrs & ~LG_ATTR_COMP) != 0 || (out->attrs & LG_ATTR_COMP) > LG_COMP_ZSTD)
        return wr_err(WR_ERR_UNSUPPORTED,
                      "batch attributes %02x are not supported by this weir; upgrade weir",
                      out->attrs);
    if (out->count == 0 || out->last_delta < out->count - 1 ||
        out->base > UINT64_MAX - out->last_delta - 1)
        return wr_err(WR_ERR_CORRUPT, "bad record count %u / last delta %u", out->count,
                      out->last_delta);
    if (out->raw_len > LG_BATCH_MAX)
        return wr_err(WR_ERR_CORRUPT, "bad uncompressed length %u", out->raw_len);
    return WR_OK;
}

wr_status lg_rec_iter_init(lg_rec_iter *it, const uint8_t *batch, wr_buf *scratch)
{
    wr_status st = lg_batch_check(batch, UINT32_MAX, &it->h);
    const uint8_t *payload = batch + LG_BATCH_HDR;
    size_t plen = it->h.len - LG_BATCH_HDR;

    if (st != WR_OK)
        return st == WR_EOF ? WR_ERR_CORRUPT : st;
    if ((it->h.attrs & LG_ATTR_COMP) == LG_COMP_ZSTD) {
        size_t z;
        scratch->len = 0;
        WR_TRY(wr_buf_reserve(scratch, it->h.raw_len));
        z = ZSTD_decompress(scratch->ptr, it->h.raw_len, payload, plen);
        if (ZSTD_isError(z) || z != it->h.raw_len)
            return wr_err(WR_ERR_CORRUPT, "zstd payload does not decompress to %u bytes",
                          it->h.raw_len);
        payload = scratch->ptr;
        plen = z;
    } else if (plen != it->h.raw_len) {
        return wr_err(WR_ERR_CORRUPT, "payload is %zu bytes, header says %u", plen, it->h.raw_len);
    }
    it->pos = payload;
    it->end = payload + plen;
    it->left = it->h.count;
    return WR_OK;
}

static wr_status get_bytes(const uint8_t **pp, const uint8_t *end, bool nullable, wr_bytes *out)
{
    int64_t n;
    size_t k = wr_get_svarint(*pp, end, &n);
    if (k == 0)
        return WR_ERR_CORRUPT;
    *pp += k;
    if (n == -1 && nullable) {
        out->ptr = NULL;
        out->len = 0;
        return WR_OK;
    }
    if (n < 0 || (uint64_t)n > (uint64_t)(end - *pp))
        return WR_ERR_CORRUPT;
    out->ptr = *pp;
    out->len = (size_t)n;
    *pp += n;
    return WR_OK;
}

wr_status lg_rec_iter_next(lg_rec_iter *it, lg_record *r)
{
    const uint8_t *p = it->pos, *end;
    uint64_t len, delta, hcnt;
    int64_t tsd;
    size_t k;

    if (it->left == 0)
        return p == it->end ? WR_EOF : wr_err(WR_ERR_CORRUPT, "bytes after the last record");
    if ((k = wr_get_uvarint(p, it->end, &len)) == 0 || len > (uint64_t)(it->end - p - k))
        goto corrupt;
    p += k;
    end = p + len;
    if ((k = wr_get_uvarint(p, end, &delta)) == 0 || delta > it->h.last_delta)
        goto corrupt;
    p += k;
    if ((k = wr_get_svarint(p, end, &tsd)) == 0)
        goto corrupt;
    p += k;
    if (get_bytes(&p, end, true, &r->key) != WR_OK)
        goto corrupt;
    if (get_bytes(&p, end, true, &r->val) != WR_OK)
        goto corrupt;
    r->tombstone = r->val.ptr == NULL;
    if ((k = wr_get_uvarint(p, end, &hcnt)) == 0 || hcnt > len)
        goto corrupt;
    p += k;
    r->hdrs.ptr = p;
    r->hdrs.len = (size_t)(end - p);
    r->hdr_cnt = (uint32_t)hcnt;
    {
        /* Validate the headers now so lg_header_next never sees bad bytes. */
        size_t pos = 0;
        lg_header hh;
        for (uint64_t i = 0; i < hcnt; i++)
            if (lg_header_next(r->hdrs, &pos, &hh) != WR_OK)
                goto corrupt;
        if (pos != r->hdrs.len)
            goto corrupt;
    }
    r->offset = it->h.base + delta;
    r->ts_ms = it->h.first_ts + tsd;
    r->producer_id = it->h.producer_id;
    it->pos = end;
    it->left--;
    return WR_OK;
corrupt:
    return wr_err(WR_ERR_CORRUPT, "malformed record %u of the batch at offset %llu",
                  it->h.count - it->left, (unsigned long long)it->h.base);
}

wr_status lg_header_next(wr_bytes hdrs, size_t *pos, lg_header *out)
{
    const uint8_t *p = hdrs.ptr + *pos, *end = hdrs.ptr + hdrs.len;
    uint64_t kl;
    size_t k;

    if (p >= end)
        return WR_EOF;
    if ((k = wr_get_uvarint(p, end, &kl)) == 0 || kl > (uint64_t)(end - p - k))
        return WR_ERR_CORRUPT;
    p += k;
    out->key = wr_bytes_of(p, (size_t)kl);
    p += kl;
    if (get_bytes(&p, end, true, &out->val) != WR_OK)
        return WR_ERR_CORRUPT;
    *pos = (size_t)(p - hdrs.ptr);
    return WR_OK;
}

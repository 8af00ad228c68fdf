/* lg_compact.c -- the key-compaction cleaner for cleanup=compact topics.
 *
 * One run over a partition:
 *   MAP     read every durable record (sealed segments and the active one) and build a map
 *           XXH3-128(key) -> newest offset. The map is bounded (LG_CLEAN_MAP_MAX entries);
 *           when it fills, the run covers only the segments that end before that point.
 *   COPY    for each sealed segment covered: keep a record iff it is the newest for its key,
 *           and drop a newest record that is a tombstone once it is older than
 *           delete.retention.ms. Batches kept whole are copied byte for byte; others are
 *           re-encoded with the same offsets (gaps allowed) into "<base>.log.cleaned".
 *   SWAP    fsync the new file, rename it over the old one (atomic), fsync the directory,
 *           write fresh indexes, and swap the segment in the partition's list under the lock.
 * Crash safety: before the rename the old segment is intact and the leftover *.cleaned file
 * is deleted at the next open; after it the new segment is complete, and stale index files
 * (which record the size of the segment they index) are rebuilt. Appends never wait: the
 * active segment is never rewritten. Readers holding the old segment finish it.
 * Two keys with the same 128-bit hash would merge; the chance is ~n^2 / 2^129. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <zstd.h>

#include "lg_int.h"

#define LG_CLEAN_MAP_MAX (8u << 20) /* 8 Mi keys, 24 B each: at most 192 MiB (x2 while growing) */

typedef struct lg_kent {
    uint8_t h[16];
    uint64_t off; /* 0 = empty slot; stored as offset + 1 */
} lg_kent;

typedef struct lg_kmap {
    lg_kent *e;
    size_t cap, cnt;
} lg_kmap;

static size_t kslot(const uint8_t h[16], size_t cap)
{
    return (size_t)wr_get64(h) & (cap - 1);
}

static wr_status kmap_grow(lg_kmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1u << 16;
    lg_kent *n = wr_calloc(ncap, sizeof(*n));
    if (n == NULL)
        return WR_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->e[i].off == 0)
            continue;
        size_t j = kslot(m->e[i].h, ncap);
        while (n[j].off)
            j = (j + 1) & (ncap - 1);
        n[j] = m->e[i];
    }
    wr_free(m->e);
    m->e = n;
    m->cap = ncap;
    return WR_OK;
}

static lg_kent *kmap_find(const lg_kmap *m, const uint8_t h[16])
{
    for (size_t j = kslot(h, m->cap);; j = (j + 1) & (m->cap - 1)) {
        if (m->e[j].off == 0 || memcmp(m->e[j].h, h, 16) == 0)
            return &m->e[j];
    }
}

/* WR_ERR_FULL when the map may not grow any more. */
static wr_status kmap_put(lg_kmap *m, wr_bytes key, uint64_t off)
{
    uint8_t h[16];
    lg_kent *e;
    wr_xxh3_128(key.ptr, key.len, h);
    if ((m->cnt + 1) * 2 > m->cap) {
        if (m->cnt >= LG_CLEAN_MAP_MAX)
            return WR_ERR_FULL;
        WR_TRY(kmap_grow(m));
    }
    e = kmap_find(m, h);
    if (e->off == 0) {
        memcpy(e->h, h, 16);
        m->cnt++;
    }
    e->off = off + 1;
    return WR_OK;
}

static uint64_t kmap_get(const lg_kmap *m, wr_bytes key)
{
    uint8_t h[16];
    wr_xxh3_128(key.ptr, key.len, h);
    return kmap_find(m, h)->off; /* offset + 1, or 0 */
}

/* "cleaner.ckpt": how far compaction has covered, so a restart does not recompact
 * everything. u32 magic "WRCK", u32 version 1, u64 cleaned offset, u64 XXH3-64 of the
 * first 16 bytes. Damaged or missing: start from 0 (a wasted run, never a wrong result). */
#define LG_CK_MAGIC 0x4b435257u

static void ckpt_path(const lg_part *p, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s/cleaner.ckpt", p->dir);
}

uint64_t lg_cleaner_ckpt_load(lg_part *p)
{
    char path[4200];
    wr_buf b = {0};
    uint64_t off = 0;
    ckpt_path(p, path, sizeof(path));
    if (wr_file_read(path, &b) == WR_OK) {
        if (b.len == 24 && wr_get32(b.ptr) == LG_CK_MAGIC && wr_get32(b.ptr + 4) == 1 &&
            wr_get64(b.ptr + 16) == wr_xxh3(b.ptr, 16))
            off = wr_get64(b.ptr + 8);
        else
            WR_LOGW("%s: damaged; the next compaction starts from offset 0", path);
    }
    wr_buf_fini(&b);
    return off;
}

static wr_status ckpt_save(const lg_part *p, uint64_t off)
{
    char path[4200];
    uint8_t b[24];
    ckpt_path(p, path, sizeof(path));
    wr_put32(b, LG_CK_MAGIC);
    wr_put32(b + 4, 1);
    wr_put64(b + 8, off);
    wr_put64(b + 16, wr_xxh3(b, 16));
    return wr_file_write_atomic(path, b, sizeof(b));
}

double lg_part_dirty_ratio(lg_part *p)
{
    uint64_t dirty = 0, total = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i + 1 < p->seg_cnt; i++) {
        uint64_t sz = atomic_load(&p->segs[i]->size);
        total += sz;
        if (atomic_load(&p->segs[i]->end) > p->cleaned_offset)
            dirty += sz;
    }
    pthread_mutex_unlock(&p->mu);
    return total ? (double)dirty / (double)total : 0.0;
}

/* Iterate all records of a segment up to @limit bytes, calling @fn. */
typedef wr_status (*rec_fn)(void *ctx, const lg_bhdr *h, const uint8_t *batch, const lg_record *r);

static wr_status each_record(lg_part *p, lg_seg *s, uint64_t limit, rec_fn fn, void *ctx,
                             bool per_batch)
{
    wr_buf win = {0}, scratch = {0};
    uint64_t pos = 0;
    wr_status st = WR_OK;

    while (pos < limit) {
        uint8_t hb[LG_BATCH_HDR];
        lg_bhdr h;
        lg_rec_iter it;
        lg_record r;
        size_t got;
        if ((st = lg_seg_read(s, p->t->io, hb, sizeof(hb), pos, &got)) != WR_OK)
            break;
        if (got < sizeof(hb) || lg_bhdr_parse(hb, sizeof(hb), &h) == WR_ERR_CORRUPT ||
            pos + h.len > limit) {
            st = wr_err(WR_ERR_CORRUPT, "%s: bad batch at byte %" PRIu64, s->path, pos);
            break;
        }
        win.len = 0;
        if ((st = wr_buf_reserve(&win, h.len)) != WR_OK ||
            (st = lg_seg_read(s, p->t->io, win.ptr, h.len, pos, &got)) != WR_OK)
            break;
        if ((st = lg_rec_iter_init(&it, win.ptr, &scratch)) != WR_OK) {
            st = wr_err(WR_ERR_CORRUPT, "%s: damaged batch at byte %" PRIu64, s->path, pos);
            break;
        }
        if (per_batch) {
            if ((st = fn(ctx, &it.h, win.ptr, NULL)) != WR_OK)
                break;
        } else {
            while ((st = lg_rec_iter_next(&it, &r)) == WR_OK)
                if ((st = fn(ctx, &it.h, win.ptr, &r)) != WR_OK)
                    break;
            if (st != WR_EOF)
                break;
            st = WR_OK;
        }
        pos += h.len;
    }
    wr_buf_fini(&win);
    wr_buf_fini(&scratch);
    return st;
}

typedef struct map_ctx {
    lg_kmap *m;
    uint64_t stop_at; /* first offset not in the map */
    bool full;
} map_ctx;

static wr_status map_rec(void *ctx, const lg_bhdr *h, const uint8_t *batch, const lg_record *r)
{
    map_ctx *c = ctx;
    wr_status st;
    (void)h;
    (void)batch;
    if (c->full)
        return WR_OK;
    if ((st = kmap_put(c->m, r->key, r->offset)) == WR_ERR_FULL) {
        c->full = true;
        c->stop_at = r->offset;
        return WR_OK;
    }
    return st;
}

typedef struct copy_ctx {
    const lg_kmap *m;
    int64_t tomb_before; /* tombstones with ts below this are dropped */
    wr_buf out;          /* the new segment's bytes */
    wr_buf recs;         /* records kept from the current batch, re-encoded */
    wr_buf scratch;
    uint64_t kept, dropped;
} copy_ctx;

static bool keep(const copy_ctx *c, const lg_record *r)
{
    uint64_t newest = kmap_get(c->m, r->key);
    if (newest != 0 && newest - 1 > r->offset)
        return false;
    return !(r->tombstone && r->ts_ms < c->tomb_before);
}

/* Encode the kept records of one batch as a new batch with the same offsets. */
static wr_status rebuild_batch(copy_ctx *c, const lg_bhdr *oh, const uint8_t *batch)
{
    lg_rec_iter it;
    lg_record r;
    wr_status st;
    uint64_t base = 0, last = 0;
    int64_t first_ts = 0, max_ts = INT64_MIN;
    uint32_t cnt = 0;
    size_t start = c->out.len;
    uint8_t *h;

    WR_TRY(lg_rec_iter_init(&it, batch, &c->scratch));
    c->recs.len = 0;
    while ((st = lg_rec_iter_next(&it, &r)) == WR_OK) {
        uint8_t tmp[6 * WR_VARINT_MAX];
        size_t n = 0, body;
        if (!keep(c, &r)) {
            c->dropped++;
            continue;
        }
        if (cnt == 0) {
            base = r.offset;
            first_ts = r.ts_ms;
        }
        last = r.offset;
        if (r.ts_ms > max_ts)
            max_ts = r.ts_ms;
        cnt++;
        c->kept++;
        /* body = delta, ts delta, key, value, header count + headers */
        n += wr_put_uvarint(tmp + n, r.offset - base);
        n += wr_put_svarint(tmp + n, r.ts_ms - first_ts);
        body = n + wr_uvarint_len((uint64_t)r.key.len << 1) + r.key.len +
               (r.tombstone ? 1 : wr_uvarint_len((uint64_t)r.val.len << 1) + r.val.len) +
               wr_uvarint_len(r.hdr_cnt) + r.hdrs.len;
        {
            uint8_t lenb[WR_VARINT_MAX], kb[WR_VARINT_MAX], vb[WR_VARINT_MAX], hb[WR_VARINT_MAX];
            size_t ln = wr_put_uvarint(lenb, body), kn = wr_put_svarint(kb, (int64_t)r.key.len),
                   vn = wr_put_svarint(vb, r.tombstone ? -1 : (int64_t)r.val.len),
                   hn = wr_put_uvarint(hb, r.hdr_cnt);
            WR_TRY(wr_buf_append(&c->recs, lenb, ln));
            WR_TRY(wr_buf_append(&c->recs, tmp, n));
            WR_TRY(wr_buf_append(&c->recs, kb, kn));
            WR_TRY(wr_buf_append(&c->recs, r.key.ptr, r.key.len));
            WR_TRY(wr_buf_append(&c->recs, vb, vn));
            if (!r.tombstone)
                WR_TRY(wr_buf_append(&c->recs, r.val.ptr, r.val.len));
            WR_TRY(wr_buf_append(&c->recs, hb, hn));
            WR_TRY(wr_buf_append(&c->recs, r.hdrs.ptr, r.hdrs.len));
        }
    }
    if (st != WR_EOF)
        return st;
    if (cnt == 0)
        return WR_OK;
    WR_TRY(wr_buf_reserve(&c->out, LG_BATCH_HDR + c->recs.len));
    h = c->out.ptr + start;
    memset(h, 0, LG_BATCH_HDR);
    wr_put32(h, LG_BATCH_MAGIC);
    h[24] = LG_BATCH_VERSION;
    wr_put32(h + 28, cnt);
    wr_put32(h + 32, (uint32_t)(last - base));
    wr_put64(h + 36, (uint64_t)first_ts);
    wr_put64(h + 44, (uint64_t)max_ts);
    /* The batch no longer matches the producer's sequence numbers: drop the producer, so a
     * rebuild of producer state from the log does not learn a wrong next sequence. The
     * producer snapshots written at each roll keep the real state. */
    (void)oh;
    wr_put64(h + 52, LG_NO_PRODUCER);
    wr_put32(h + 68, (uint32_t)c->recs.len);
    memcpy(h + LG_BATCH_HDR, c->recs.ptr, c->recs.len);
    wr_put32(h + 4, (uint32_t)(LG_BATCH_HDR + c->recs.len));
    lg_batch_seal(h, base, wr_xxh3(h + 24, LG_BATCH_HDR + c->recs.len - 24));
    c->out.len = start + LG_BATCH_HDR + c->recs.len;
    return WR_OK;
}

static wr_status copy_batch(void *ctx, const lg_bhdr *h, const uint8_t *batch,
                            const lg_record *unused)
{
    copy_ctx *c = ctx;
    lg_rec_iter it;
    lg_record r;
    wr_status st;
    bool all = true;
    (void)unused;

    WR_TRY(lg_rec_iter_init(&it, batch, &c->scratch));
    while ((st = lg_rec_iter_next(&it, &r)) == WR_OK)
        if (!keep(c, &r)) {
            all = false;
            break;
        }
    if (st != WR_OK && st != WR_EOF)
        return st;
    if (all) {
        c->kept += h->count;
        return wr_buf_append(&c->out, batch, h->len);
    }
    return rebuild_batch(c, h, batch);
}

/* Replace segment @i of @p by a cleaned copy. */
static wr_status clean_one(lg_part *p, lg_seg *old, copy_ctx *c, uint64_t *in, uint64_t *out)
{
    const lg_io *io = p->t->io;
    char tmp[4200];
    lg_seg *s;
    int fd;
    uint64_t size = atomic_load(&old->size), valid;
    wr_status st;
    lg_io_op op = {0};

    c->out.len = 0;
    c->kept = c->dropped = 0;
    WR_TRY(each_record(p, old, size, copy_batch, c, true));
    *in += size;
    if (c->out.len == size) { /* nothing dropped */
        *out += size;
        return WR_OK;
    }
    snprintf(tmp, sizeof(tmp), "%s.cleaned", old->path);
    if ((fd = io->open(io->ctx, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0)
        return wr_err(wr_status_from_errno(-fd), "%s: %s", tmp, strerror(-fd));
    op.fd = fd;
    op.buf = c->out.ptr;
    op.len = c->out.len;
    op.sync = true;
    io->submit(io->ctx, &op, 1);
    if (op.err) {
        io->close(io->ctx, fd);
        io->unlink(io->ctx, tmp);
        return wr_err(wr_status_from_errno(op.err), "%s: write: %s", tmp, strerror(op.err));
    }
    if ((st = lg_seg_create(p, old->base, &s)) != WR_OK) {
        io->close(io->ctx, fd);
        return st;
    }
    s->fd = fd;
    s->sealed = true;
    /* Index the new bytes (and check them) before they replace the old ones. */
    if ((st = lg_seg_scan(s, io, p->t->cfg.index_interval_bytes, false, c->out.len, NULL, NULL,
                          &valid)) != WR_OK) {
        lg_seg_unref(s, io);
        io->unlink(io->ctx, tmp);
        return st;
    }
    if (io->rename(io->ctx, tmp, old->path) < 0 || io->fsync_dir(io->ctx, p->dir) < 0) {
        lg_seg_unref(s, io);
        return wr_err(WR_ERR_IO, "%s: cannot swap in the compacted segment", old->path);
    }
    if ((st = lg_seg_write_indexes(s, io)) != WR_OK) {
        WR_LOGW("%s: %s (indexes will be rebuilt at the next open)", s->path, wr_errmsg());
        st = WR_OK;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->seg_cnt; i++)
        if (p->segs[i] == old) {
            p->segs[i] = s;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    lg_seg_unref(old, io); /* the list's reference */
    *out += c->out.len;
    return WR_OK;
}

wr_status lg_part_compact(lg_part *p, int64_t now_ms)
{
    lg_topic *t = p->t;
    lg_seg **segs = NULL;
    size_t n = 0;
    uint64_t act_size = 0, in = 0, out = 0, cleaned_to = 0;
    lg_kmap m = {0};
    map_ctx mc = {0};
    copy_ctx cc = {0};
    wr_status st = WR_OK;

    if (t->cfg.cleanup != LG_CLEANUP_COMPACT)
        return wr_err(WR_ERR_INVAL, "topic %s is not compacted (cleanup.policy=delete)", t->name);
    pthread_mutex_lock(&t->compact_mu);
    pthread_mutex_lock(&p->mu);
    p->cleaner = LG_CLEANER_RUNNING;
    n = p->seg_cnt;
    if ((segs = wr_malloc(n * sizeof(*segs))) == NULL) {
        pthread_mutex_unlock(&p->mu);
        st = WR_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        segs[i] = p->segs[i];
        lg_seg_ref(segs[i]);
    }
    act_size = atomic_load(&segs[n - 1]->size);
    pthread_mutex_unlock(&p->mu);

    mc.m = &m;
    mc.stop_at = UINT64_MAX;
    for (size_t i = 0; i < n && !mc.full; i++) {
        uint64_t lim = i + 1 == n ? act_size : atomic_load(&segs[i]->size);
        if ((st = each_record(p, segs[i], lim, map_rec, &mc, false)) != WR_OK)
            goto out;
    }
    cc.m = &m;
    cc.tomb_before = now_ms - t->cfg.delete_retention_ms;
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t end = atomic_load(&segs[i]->end);
        if (end > mc.stop_at)
            break;
        if ((st = clean_one(p, segs[i], &cc, &in, &out)) != WR_OK)
            goto out;
        cleaned_to = end;
    }
    if (cleaned_to > 0)
        st = ckpt_save(p, cleaned_to);
out:
    pthread_mutex_lock(&p->mu);
    if (st == WR_OK) {
        p->cleaner = LG_CLEANER_IDLE;
        if (cleaned_to > p->cleaned_offset)
            p->cleaned_offset = cleaned_to;
        p->cleaner_runs++;
        p->cleaner_in += in;
        p->cleaner_out += out;
        p->cleaner_error[0] = '\0';
    } else {
        p->cleaner = LG_CLEANER_FAILED;
        snprintf(p->cleaner_error, sizeof(p->cleaner_error), "%s", wr_errmsg());
        WR_LOGE("topic %s partition %u: compaction failed: %s", t->name, p->id, p->cleaner_error);
    }
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; segs && i < n; i++)
        lg_seg_unref(segs[i], t->io);
    wr_free(segs);
    wr_free(m.e);
    wr_buf_fini(&cc.out);
    wr_buf_fini(&cc.recs);
    wr_buf_fini(&cc.scratch);
    pthread_mutex_unlock(&t->compact_mu);
    return st;
}

wr_status lg_topic_compact(lg_topic *t)
{
    if (t->opts.readonly)
        return wr_err(WR_ERR_INVAL, "topic %s is open read-only", t->name);
    for (uint32_t i = 0; i < t->cfg.partitions; i++)
        WR_TRY(lg_part_compact(t->parts[i], wr_wall_ms()));
    return WR_OK;
}

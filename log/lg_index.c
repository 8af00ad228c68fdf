/* lg_index.c -- the sparse offset index (.idx) and time index (.tim) of a segment.
 *
 * Both live in memory while the segment is open (appended by the writer) and are written
 * whole, with a checksum, when the segment is sealed and at a clean close. A missing, stale
 * or damaged index file is rebuilt from its segment, so index files are never trusted
 * beyond their checksum and the segment size they say they cover.
 *
 * File layout (little-endian; docs/formats/log.md):
 *   off size field
 *     0    4 magic "WRIX" (offset index) or "WRTI" (time index)
 *     4    2 version (1)
 *     6    2 entry size (8 for .idx, 16 for .tim)
 *     8    8 segment base offset
 *    16    8 segment end offset (next offset after its last batch)
 *    24    8 segment size in bytes that the index covers
 *    32    4 entry count
 *    36    4 reserved, 0
 *    40    8 max timestamp of the segment
 *    48    8 XXH3-64 of bytes [0, 48) and of all entries
 *    56    . entries: .idx = {u32 relative offset, u32 position};
 *                     .tim = {i64 max timestamp so far, u32 relative offset, u32 position} */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "lg_int.h"

static wr_status grow(void **arr, size_t *cap, size_t cnt, size_t esz)
{
    void *n;
    size_t ncap;
    if (cnt < *cap)
        return WR_OK;
    ncap = *cap ? *cap * 2 : 64;
    if ((n = wr_realloc(*arr, ncap * esz)) == NULL)
        return WR_ERR_NOMEM;
    *arr = n;
    *cap = ncap;
    return WR_OK;
}

wr_status lg_seg_index_add(lg_seg *s, uint32_t interval, uint64_t pos, uint64_t base,
                           int64_t max_ts)
{
    bool first = s->idx_cnt == 0;
    /* Every batch counts toward the running max, indexed or not: a time-index entry must
     * promise that nothing before its batch reaches its timestamp. */
    if (first || max_ts > s->run_max_ts)
        s->run_max_ts = max_ts;
    if (!first && pos - s->last_idx_pos < interval)
        return WR_OK;
    WR_TRY(grow((void **)&s->idx, &s->idx_cap, s->idx_cnt, sizeof(lg_ient)));
    s->idx[s->idx_cnt].rel = (uint32_t)(base - s->base);
    s->idx[s->idx_cnt].pos = (uint32_t)pos;
    s->idx_cnt++;
    s->last_idx_pos = pos;
    if (s->tim_cnt == 0 || s->run_max_ts > s->tim[s->tim_cnt - 1].ts) {
        WR_TRY(grow((void **)&s->tim, &s->tim_cap, s->tim_cnt, sizeof(lg_tent)));
        s->tim[s->tim_cnt].ts = s->run_max_ts;
        s->tim[s->tim_cnt].rel = (uint32_t)(base - s->base);
        s->tim[s->tim_cnt].pos = (uint32_t)pos;
        s->tim_cnt++;
    }
    return WR_OK;
}

uint64_t lg_seg_index_lookup(const lg_seg *s, uint64_t off)
{
    size_t lo = 0, hi = s->idx_cnt;
    if (off < s->base || s->idx_cnt == 0)
        return 0;
    while (lo < hi) { /* first entry with rel > target */
        size_t mid = (lo + hi) / 2;
        if ((uint64_t)s->idx[mid].rel <= off - s->base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : s->idx[lo - 1].pos;
}

uint64_t lg_seg_time_lookup(const lg_seg *s, int64_t ts)
{
    /* Entries hold the running max timestamp: everything before the last entry whose max is
     * below @ts is older than @ts, so the scan may start at that entry's batch. */
    size_t lo = 0, hi = s->tim_cnt;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->tim[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : s->tim[lo - 1].pos;
}

static void index_path(char *dst, size_t cap, const lg_seg *s, const char *ext)
{
    size_t n = strlen(s->path);
    /* s->path ends in ".log" */
    snprintf(dst, cap, "%.*s%s", (int)(n - 4), s->path, ext);
}

static void put_hdr(uint8_t *h, uint32_t magic, uint16_t esz, const lg_seg *s, uint64_t cnt)
{
    memset(h, 0, LG_IDX_HDR);
    wr_put32(h, magic);
    wr_put16(h + 4, LG_IDX_VERSION);
    wr_put16(h + 6, esz);
    wr_put64(h + 8, s->base);
    wr_put64(h + 16, atomic_load(&s->end));
    wr_put64(h + 24, atomic_load(&s->size));
    wr_put32(h + 32, (uint32_t)cnt);
    wr_put64(h + 40, (uint64_t)atomic_load(&s->max_ts));
}

static wr_status write_file(const lg_io *io, const char *path, const uint8_t *p, size_t n)
{
    char tmp[4200];
    int fd, rc;
    lg_io_op op = {0};

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((fd = io->open(io->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        return wr_err(wr_status_from_errno(-fd), "%s: cannot create: %s", tmp, strerror(-fd));
    op.fd = fd;
    op.buf = p;
    op.len = n;
    op.sync = true;
    io->submit(io->ctx, &op, 1);
    io->close(io->ctx, fd);
    if (op.err)
        return wr_err(wr_status_from_errno(op.err), "%s: write: %s", tmp, strerror(op.err));
    if ((rc = io->rename(io->ctx, tmp, path)) < 0)
        return wr_err(wr_status_from_errno(-rc), "%s: rename: %s", path, strerror(-rc));
    return WR_OK;
}

wr_status lg_seg_write_indexes(const lg_seg *s, const lg_io *io)
{
    wr_buf b = {0};
    char path[4200];
    wr_status st;
    size_t need = LG_IDX_HDR + s->idx_cnt * 8;

    if (LG_IDX_HDR + s->tim_cnt * 16 > need)
        need = LG_IDX_HDR + s->tim_cnt * 16;
    if ((st = wr_buf_reserve(&b, need)) != WR_OK)
        return st;

    put_hdr(b.ptr, LG_IDX_MAGIC, 8, s, s->idx_cnt);
    for (size_t i = 0; i < s->idx_cnt; i++) {
        wr_put32(b.ptr + LG_IDX_HDR + i * 8, s->idx[i].rel);
        wr_put32(b.ptr + LG_IDX_HDR + i * 8 + 4, s->idx[i].pos);
    }
    b.len = LG_IDX_HDR + s->idx_cnt * 8;
    wr_put64(b.ptr + 48, wr_xxh3(b.ptr, 48) ^ wr_xxh3(b.ptr + LG_IDX_HDR, b.len - LG_IDX_HDR));
    index_path(path, sizeof(path), s, ".idx");
    if ((st = write_file(io, path, b.ptr, b.len)) != WR_OK)
        goto out;

    put_hdr(b.ptr, LG_TIM_MAGIC, 16, s, s->tim_cnt);
    for (size_t i = 0; i < s->tim_cnt; i++) {
        uint8_t *e = b.ptr + LG_IDX_HDR + i * 16;
        wr_put64(e, (uint64_t)s->tim[i].ts);
        wr_put32(e + 8, s->tim[i].rel);
        wr_put32(e + 12, s->tim[i].pos);
    }
    b.len = LG_IDX_HDR + s->tim_cnt * 16;
    wr_put64(b.ptr + 48, wr_xxh3(b.ptr, 48) ^ wr_xxh3(b.ptr + LG_IDX_HDR, b.len - LG_IDX_HDR));
    index_path(path, sizeof(path), s, ".tim");
    st = write_file(io, path, b.ptr, b.len);
out:
    wr_buf_fini(&b);
    return st;
}

/* Load one index file into @b; check header and checksum against the segment. */
static bool load_one(const lg_seg *s, const lg_io *io, const char *ext, uint32_t magic,
                     uint16_t esz, uint64_t file_size, wr_buf *b, uint64_t *end, int64_t *max_ts,
                     uint32_t *cnt)
{
    char path[4200];
    int fd;
    int64_t n;
    uint8_t h[LG_IDX_HDR];

    index_path(path, sizeof(path), s, ext);
    if ((fd = io->open(io->ctx, path, O_RDONLY, 0)) < 0)
        return false;
    n = io->pread(io->ctx, fd, h, LG_IDX_HDR, 0);
    if (n != LG_IDX_HDR || wr_get32(h) != magic || wr_get16(h + 4) != LG_IDX_VERSION ||
        wr_get16(h + 6) != esz || wr_get64(h + 8) != s->base || wr_get64(h + 24) != file_size ||
        wr_get32(h + 32) > file_size / LG_BATCH_HDR + 1)
        goto fail;
    *cnt = wr_get32(h + 32);
    *end = wr_get64(h + 16);
    *max_ts = (int64_t)wr_get64(h + 40);
    b->len = 0;
    if (wr_buf_reserve(b, (size_t)*cnt * esz) != WR_OK)
        goto fail;
    if (io->pread(io->ctx, fd, b->ptr, (size_t)*cnt * esz, LG_IDX_HDR) != (int64_t)*cnt * esz)
        goto fail;
    b->len = (size_t)*cnt * esz;
    if ((wr_xxh3(h, 48) ^ wr_xxh3(b->ptr, b->len)) != wr_get64(h + 48))
        goto fail;
    io->close(io->ctx, fd);
    return true;
fail:
    io->close(io->ctx, fd);
    WR_LOGW("%s: index file is stale or damaged; rebuilding it from the segment", path);
    return false;
}

bool lg_seg_load_indexes(lg_seg *s, const lg_io *io, uint64_t file_size)
{
    wr_buf a = {0}, b = {0};
    uint64_t end1, end2;
    int64_t ts1, ts2;
    uint32_t c1, c2;
    bool ok = false;

    if (!load_one(s, io, ".idx", LG_IDX_MAGIC, 8, file_size, &a, &end1, &ts1, &c1) ||
        !load_one(s, io, ".tim", LG_TIM_MAGIC, 16, file_size, &b, &end2, &ts2, &c2) ||
        end1 != end2 || end1 < s->base || (file_size > 0 && c1 == 0))
        goto out;
    s->idx_cnt = s->tim_cnt = 0;
    if (c1 > s->idx_cap) {
        lg_ient *n = wr_realloc(s->idx, c1 * sizeof(lg_ient));
        if (n == NULL)
            goto out;
        s->idx = n;
        s->idx_cap = c1;
    }
    if (c2 > s->tim_cap) {
        lg_tent *n = wr_realloc(s->tim, c2 * sizeof(lg_tent));
        if (n == NULL)
            goto out;
        s->tim = n;
        s->tim_cap = c2;
    }
    for (uint32_t i = 0; i < c1; i++) {
        s->idx[i].rel = wr_get32(a.ptr + i * 8);
        s->idx[i].pos = wr_get32(a.ptr + i * 8 + 4);
        if (s->idx[i].pos >= file_size || (i && s->idx[i].pos <= s->idx[i - 1].pos))
            goto out;
    }
    for (uint32_t i = 0; i < c2; i++) {
        s->tim[i].ts = (int64_t)wr_get64(b.ptr + i * 16);
        s->tim[i].rel = wr_get32(b.ptr + i * 16 + 8);
        s->tim[i].pos = wr_get32(b.ptr + i * 16 + 12);
        if (s->tim[i].pos >= file_size)
            goto out;
    }
    s->idx_cnt = c1;
    s->tim_cnt = c2;
    s->last_idx_pos = c1 ? s->idx[c1 - 1].pos : 0;
    atomic_store(&s->end, end1);
    atomic_store(&s->size, file_size);
    atomic_store(&s->max_ts, ts1);
    s->run_max_ts = ts1;
    s->wsize = file_size;
    ok = true;
out:
    if (!ok)
        s->idx_cnt = s->tim_cnt = 0;
    wr_buf_fini(&a);
    wr_buf_fini(&b);
    return ok;
}

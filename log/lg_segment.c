/* lg_segment.c -- one segment file: creation, reference counting, reads, and the recovery
 * scan that checks every batch and rebuilds the indexes.
 *
 * A segment is "<20-digit base offset>.log", a plain concatenation of record batches
 * (lg_batch.c). Invariants: (1) batches are contiguous from byte 0; (2) base offsets increase
 * and each batch starts at or after the previous batch's last offset + 1; (3) only the last
 * segment of a partition (the active one) may end in a torn batch, which recovery truncates;
 * damage anywhere else is reported, never repaired silently. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lg_int.h"

#define LG_SCAN_CHUNK (4u << 20)

void lg_seg_name(char *dst, size_t cap, uint64_t base, const char *ext)
{
    snprintf(dst, cap, "%020" PRIu64 "%s", base, ext);
}

wr_status lg_seg_create(lg_part *p, uint64_t base, lg_seg **out)
{
    lg_seg *s;
    char name[32];

    *out = NULL;
    if ((s = wr_calloc(1, sizeof(*s))) == NULL)
        return WR_ERR_NOMEM;
    s->base = base;
    atomic_store(&s->end, base);
    atomic_store(&s->refs, 1);
    atomic_store(&s->max_ts, INT64_MIN);
    s->fd = -1;
    s->dfd = -1;
    s->created_ms = wr_wall_ms();
    lg_seg_name(name, sizeof(name), base, ".log");
    if (wr_path(s->path, sizeof(s->path), "%s/%s", p->dir, name) != WR_OK) {
        wr_free(s);
        return wr_err(WR_ERR_INVAL, "%s: path too long", p->dir);
    }
    *out = s;
    return WR_OK;
}

void lg_seg_ref(lg_seg *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void lg_seg_unref(lg_seg *s, const lg_io *io)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->fd >= 0)
        io->close(io->ctx, s->fd);
    if (s->dfd >= 0)
        io->close(io->ctx, s->dfd);
    wr_free(s->idx);
    wr_free(s->tim);
    wr_free(s);
}

void lg_seg_open_direct(lg_seg *s, const lg_io *io)
{
    const char *no = getenv("WEIR_NO_DIRECT");
    int fd;
    if (s->dfd >= 0 || (no && *no && strcmp(no, "0") != 0))
        return;
    if ((fd = io->open(io->ctx, s->path, O_WRONLY | O_DIRECT, 0)) < 0) {
        WR_LOGD("%s: O_DIRECT refused (%s); appends go through the page cache", s->path,
                strerror(-fd));
        return;
    }
    s->dfd = fd;
}

wr_status lg_seg_end_direct(lg_seg *s, const lg_io *io)
{
    int rc;
    if (s->dfd < 0)
        return WR_OK;
    io->close(io->ctx, s->dfd);
    s->dfd = -1;
    if ((rc = io->ftruncate(io->ctx, s->fd, s->wsize)) < 0 || (rc = io->fsync(io->ctx, s->fd)) < 0)
        return wr_err(wr_status_from_errno(-rc), "%s: cannot cut the block padding: %s", s->path,
                      strerror(-rc));
    return WR_OK;
}

wr_status lg_seg_read(const lg_seg *s, const lg_io *io, void *buf, size_t len, uint64_t off,
                      size_t *got)
{
    int64_t n = io->pread(io->ctx, s->fd, buf, len, off);
    if (n < 0) {
        *got = 0;
        return wr_err(wr_status_from_errno((int)-n), "%s: read at byte %" PRIu64 ": %s", s->path,
                      off, strerror((int)-n));
    }
    *got = (size_t)n;
    return WR_OK;
}

/* Is there a complete, checksum-valid batch anywhere in [from, size)? Used to tell a torn
 * tail (nothing valid after the damage) from damage in the middle (valid data follows). */
static bool valid_batch_after(const lg_seg *s, const lg_io *io, uint64_t from, uint64_t size,
                              wr_buf *buf)
{
    uint8_t magic[4];
    wr_put32(magic, LG_BATCH_MAGIC);
    for (uint64_t pos = from; pos + LG_BATCH_HDR <= size;) {
        size_t want = size - pos > LG_SCAN_CHUNK ? LG_SCAN_CHUNK : (size_t)(size - pos), got;
        const uint8_t *hit;
        buf->len = 0;
        if (wr_buf_reserve(buf, want) != WR_OK ||
            lg_seg_read(s, io, buf->ptr, want, pos, &got) != WR_OK || got < 4)
            return false;
        hit = memmem(buf->ptr, got, magic, 4);
        if (hit == NULL) {
            pos += got - 3;
            continue;
        }
        {
            uint64_t at = pos + (uint64_t)(hit - buf->ptr);
            uint8_t h[LG_BATCH_HDR];
            lg_bhdr bh;
            size_t g2;
            if (lg_seg_read(s, io, h, sizeof(h), at, &g2) == WR_OK && g2 == sizeof(h) &&
                lg_bhdr_parse(h, sizeof(h), &bh) != WR_ERR_CORRUPT && at + bh.len <= size) {
                wr_buf one = {0};
                bool ok = wr_buf_reserve(&one, bh.len) == WR_OK &&
                          lg_seg_read(s, io, one.ptr, bh.len, at, &g2) == WR_OK && g2 == bh.len &&
                          lg_batch_check(one.ptr, g2, &bh) == WR_OK;
                wr_buf_fini(&one);
                if (ok)
                    return true;
            }
            pos = at + 1;
        }
    }
    return false;
}

/* Make [pos, pos + need) available in @buf (a window of the file starting at *wpos). */
static wr_status window(const lg_seg *s, const lg_io *io, wr_buf *buf, uint64_t *wpos, uint64_t pos,
                        size_t need, const uint8_t **out)
{
    size_t want = need > LG_SCAN_CHUNK ? need : LG_SCAN_CHUNK, got;
    if (pos >= *wpos && pos + need <= *wpos + buf->len) {
        *out = buf->ptr + (pos - *wpos);
        return WR_OK;
    }
    buf->len = 0;
    WR_TRY(wr_buf_reserve(buf, want));
    WR_TRY(lg_seg_read(s, io, buf->ptr, want, pos, &got));
    *wpos = pos;
    buf->len = got;
    if (got < need)
        return WR_EOF;
    *out = buf->ptr;
    return WR_OK;
}

wr_status lg_seg_scan(lg_seg *s, const lg_io *io, uint32_t interval, bool tail, uint64_t file_size,
                      lg_batch_fn on_batch, void *ctx, uint64_t *valid_out)
{
    wr_buf buf = {0};
    uint64_t pos = 0, next = s->base, wpos = 0;
    int64_t max_ts = INT64_MIN;
    wr_status st = WR_OK;
    char why[200] = "";

    s->idx_cnt = s->tim_cnt = 0;
    s->last_idx_pos = 0;
    while (pos < file_size) {
        const uint8_t *p;
        lg_bhdr h;
        wr_status bs;

        if (file_size - pos < LG_BATCH_HDR) {
            snprintf(why, sizeof(why), "incomplete batch header (%" PRIu64 " bytes left)",
                     file_size - pos);
            goto damaged;
        }
        if ((st = window(s, io, &buf, &wpos, pos, LG_BATCH_HDR, &p)) != WR_OK)
            goto io_short;
        if ((bs = lg_bhdr_parse(p, LG_BATCH_HDR, &h)) == WR_ERR_CORRUPT) {
            snprintf(why, sizeof(why), "%s", wr_errmsg());
            goto damaged;
        }
        if (pos + h.len > file_size) {
            snprintf(why, sizeof(why),
                     "incomplete batch: %u bytes long, %" PRIu64 " left in the file", h.len,
                     file_size - pos);
            goto damaged;
        }
        if ((st = window(s, io, &buf, &wpos, pos, h.len, &p)) != WR_OK)
            goto io_short;
        if ((bs = lg_batch_check(p, h.len, &h)) == WR_ERR_UNSUPPORTED) {
            char msg[300];
            snprintf(msg, sizeof(msg), "%s", wr_errmsg());
            st = wr_err(bs, "%s: byte %" PRIu64 ": %s", s->path, pos, msg);
            goto out;
        }
        if (bs != WR_OK) {
            snprintf(why, sizeof(why), "%s", wr_errmsg());
            goto damaged;
        }
        if (h.base < next) {
            snprintf(why, sizeof(why),
                     "batch base offset %" PRIu64 " goes backwards (expected >= %" PRIu64 ")",
                     h.base, next);
            goto damaged;
        }
        if ((st = lg_seg_index_add(s, interval, pos, h.base, h.max_ts)) != WR_OK)
            goto out;
        if (on_batch)
            on_batch(ctx, &h);
        next = h.base + h.last_delta + 1;
        if (h.max_ts > max_ts)
            max_ts = h.max_ts;
        pos += h.len;
    }
    goto done;
io_short:
    if (st == WR_EOF) /* the file shrank under us */
        st = wr_err(WR_ERR_IO, "%s: short read at byte %" PRIu64, s->path, pos);
    goto out;
damaged:
    /* [pos, ...) is not a valid batch: a torn tail only if nothing valid follows. */
    if (!tail || valid_batch_after(s, io, pos + 1, file_size, &buf)) {
        st = wr_err(WR_ERR_CORRUPT,
                    "%s: damaged batch at byte %" PRIu64 " (%s); %s. Run 'weir log verify' for "
                    "a full report",
                    s->path, pos, why,
                    tail ? "valid batches follow the damage, so it is not a torn tail"
                         : "the segment is sealed, so this is not a torn tail");
        goto out;
    }
done:
    *valid_out = pos;
    atomic_store(&s->end, next);
    atomic_store(&s->size, pos);
    atomic_store(&s->max_ts, max_ts);
    s->wsize = pos;
    st = WR_OK;
out:
    wr_buf_fini(&buf);
    return st;
}

/* Read-only opens: take in the complete, valid batches another process appended after the
 * current end. Stops quietly at the first incomplete or invalid batch (it may be mid-write);
 * never truncates. Only the new bytes are read. */
void lg_seg_extend(lg_seg *s, const lg_io *io, uint32_t interval, uint64_t file_size)
{
    wr_buf buf = {0};
    uint64_t pos = atomic_load(&s->size), next = atomic_load(&s->end), wpos = 0;
    int64_t max_ts = atomic_load(&s->max_ts);

    while (pos + LG_BATCH_HDR <= file_size) {
        const uint8_t *p;
        lg_bhdr h;
        if (window(s, io, &buf, &wpos, pos, LG_BATCH_HDR, &p) != WR_OK ||
            lg_bhdr_parse(p, LG_BATCH_HDR, &h) == WR_ERR_CORRUPT || pos + h.len > file_size ||
            window(s, io, &buf, &wpos, pos, h.len, &p) != WR_OK ||
            lg_batch_check(p, h.len, &h) != WR_OK || h.base < next ||
            lg_seg_index_add(s, interval, pos, h.base, h.max_ts) != WR_OK)
            break;
        next = h.base + h.last_delta + 1;
        if (h.max_ts > max_ts)
            max_ts = h.max_ts;
        pos += h.len;
        /* Publish batch by batch: readers of this topic may be waiting on it. */
        atomic_store(&s->max_ts, max_ts);
        atomic_store(&s->end, next);
        atomic_store(&s->size, pos);
        s->wsize = pos;
    }
    wr_buf_fini(&buf);
}

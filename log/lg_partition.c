/* lg_partition.c -- a partition directory: recovery on open, the segment list, clean close.
 *
 * Files in a partition directory:
 *   <base>.log / .idx / .tim   segments and their indexes (lg_segment.c, lg_index.c)
 *   <offset>.snap              producer-state snapshots (lg_producer.c)
 *   CLEAN                      present only between a clean close and the next open
 *
 * Recovery (state machine, one pass per open):
 *   LIST     list *.log, delete leftovers of interrupted work (*.tmp, *.cleaned)
 *   SEALED   every segment but the last: load its indexes if they match the file (size,
 *            base, checksum), else rebuild them by scanning it; damage = WR_ERR_CORRUPT
 *   ACTIVE   the last segment: after a clean close, load its indexes like a sealed one;
 *            otherwise scan it, and truncate a torn tail (lg_seg_scan decides what is torn)
 *   PRODUCERS load the newest producer snapshot, then replay the batch headers after it
 *   OPEN     delete CLEAN (and fsync the directory) before the first append
 * A clean restart reads only index files and a snapshot: no segment is rescanned. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lg_int.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void lg_part_fail(lg_part *p, wr_status st, const char *fmt, ...)
{
    va_list ap;
    if (atomic_load(&p->failed))
        return;
    va_start(ap, fmt);
    vsnprintf(p->failure, sizeof(p->failure), fmt, ap);
    va_end(ap);
    p->fail_st = st;
    atomic_store(&p->failed, true);
    WR_LOGE("topic %s partition %u FAILED: %s (appends are refused until the topic is reopened)",
            p->t->name, p->id, p->failure);
}

static wr_status push_seg(lg_part *p, lg_seg *s)
{
    if (p->seg_cnt == p->seg_cap) {
        size_t ncap = p->seg_cap ? p->seg_cap * 2 : 16;
        lg_seg **n = wr_realloc(p->segs, ncap * sizeof(*n));
        if (n == NULL)
            return WR_ERR_NOMEM;
        p->segs = n;
        p->seg_cap = ncap;
    }
    p->segs[p->seg_cnt++] = s;
    return WR_OK;
}

/* Collect segment bases; remove leftovers of interrupted writes. */
static wr_status list_dir(lg_part *p, uint64_t **bases_out, size_t *cnt_out, bool *clean_out)
{
    DIR *d = opendir(p->dir);
    struct dirent *de;
    uint64_t *bases = NULL;
    size_t cnt = 0, cap = 0;

    *clean_out = false;
    if (d == NULL)
        return wr_err(errno == ENOENT ? WR_ERR_CORRUPT : WR_ERR_IO,
                      "%s: cannot open partition directory: %s", p->dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        if (strcmp(n, "CLEAN") == 0) {
            *clean_out = true;
        } else if (len == 24 && strcmp(n + 20, ".log") == 0 && strspn(n, "0123456789") == 20) {
            if (cnt == cap) {
                uint64_t *nb = wr_realloc(bases, (cap = cap ? cap * 2 : 64) * sizeof(*nb));
                if (nb == NULL) {
                    closedir(d);
                    wr_free(bases);
                    return WR_ERR_NOMEM;
                }
                bases = nb;
            }
            bases[cnt++] = strtoull(n, NULL, 10);
        } else if (!p->t->opts.readonly && ((len > 4 && strcmp(n + len - 4, ".tmp") == 0) ||
                                            (len > 8 && strcmp(n + len - 8, ".cleaned") == 0))) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", p->dir, n);
            WR_LOGI("%s: removing leftover of interrupted work", path);
            p->t->io->unlink(p->t->io->ctx, path);
        }
    }
    closedir(d);
    if (cnt > 1) /* qsort(NULL, 0, ...) is undefined (glibc declares it nonnull) */
        qsort(bases, cnt, sizeof(*bases), cmp_u64);
    *bases_out = bases;
    *cnt_out = cnt;
    return WR_OK;
}

static wr_status open_seg_file(lg_part *p, lg_seg *s, bool create, uint64_t *size_out)
{
    const lg_io *io = p->t->io;
    int flags = p->t->opts.readonly ? O_RDONLY : O_RDWR;
    struct stat stb;

    if (create)
        flags |= O_CREAT | O_EXCL;
    if ((s->fd = io->open(io->ctx, s->path, flags, 0644)) < 0) {
        int e = -s->fd;
        s->fd = -1;
        return wr_err(wr_status_from_errno(e), "%s: cannot open: %s", s->path, strerror(e));
    }
    if (fstat(s->fd, &stb) != 0)
        return wr_err(WR_ERR_IO, "%s: stat: %s", s->path, strerror(errno));
    *size_out = (uint64_t)stb.st_size;
    return WR_OK;
}

/* Walk batch headers of @s from the batch at @pos, feeding the producer table. The bytes were
 * checked by the recovery scan or are covered by checked indexes, so only headers are read. */
static wr_status replay_producers(lg_part *p, lg_seg *s, uint64_t from_offset)
{
    uint64_t pos = lg_seg_index_lookup(s, from_offset), size = atomic_load(&s->size);
    uint8_t hb[LG_BATCH_HDR];

    while (pos < size) {
        lg_bhdr h;
        size_t got;
        WR_TRY(lg_seg_read(s, p->t->io, hb, sizeof(hb), pos, &got));
        if (got < sizeof(hb) || lg_bhdr_parse(hb, sizeof(hb), &h) == WR_ERR_CORRUPT)
            return wr_err(WR_ERR_CORRUPT, "%s: bad batch header at byte %" PRIu64, s->path, pos);
        if (h.base >= from_offset)
            WR_TRY(lg_prodtab_apply(&p->prods, &h));
        pos += h.len;
    }
    return WR_OK;
}

void lg_part_prune_snapshots(lg_part *p, uint64_t keep_from)
{
    DIR *d = opendir(p->dir);
    struct dirent *de;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n == 25 && strcmp(de->d_name + 20, ".snap") == 0 &&
            strtoull(de->d_name, NULL, 10) < keep_from) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", p->dir, de->d_name);
            p->t->io->unlink(p->t->io->ctx, path);
        }
    }
    closedir(d);
}

static wr_status recover(lg_part *p)
{
    const lg_io *io = p->t->io;
    const uint32_t interval = p->t->cfg.index_interval_bytes;
    uint64_t *bases = NULL, snap_off = 0, prev_end = 0;
    size_t cnt = 0;
    bool clean;
    wr_status st;

    if ((st = list_dir(p, &bases, &cnt, &clean)) != WR_OK)
        return st;
    for (size_t i = 0; i < cnt; i++) {
        bool last = i + 1 == cnt;
        uint64_t size, valid;
        lg_seg *s;
        if ((st = lg_seg_create(p, bases[i], &s)) != WR_OK)
            goto out;
        if ((st = push_seg(p, s)) != WR_OK) {
            lg_seg_unref(s, io);
            goto out;
        }
        if ((st = open_seg_file(p, s, false, &size)) != WR_OK)
            goto out;
        if ((!last || clean) && lg_seg_load_indexes(s, io, size)) {
            valid = size;
        } else {
            if ((st = lg_seg_scan(s, io, interval, last, size, NULL, NULL, &valid)) != WR_OK)
                goto out;
            if (valid < size && !p->t->opts.readonly) {
                int rc;
                WR_LOGW("%s: truncating a torn tail at byte %" PRIu64 " (%" PRIu64
                        " bytes of an unfinished append)",
                        s->path, valid, size - valid);
                if ((rc = io->ftruncate(io->ctx, s->fd, valid)) < 0 ||
                    (rc = io->fsync(io->ctx, s->fd)) < 0) {
                    st = wr_err(wr_status_from_errno(-rc), "%s: cannot truncate the torn tail: %s",
                                s->path, strerror(-rc));
                    goto out;
                }
            }
            /* Sealed segments get fresh index files so the next open is fast. */
            if (!last && !p->t->opts.readonly && (st = lg_seg_write_indexes(s, io)) != WR_OK)
                goto out;
        }
        if (s->base < prev_end) {
            st = wr_err(WR_ERR_CORRUPT,
                        "%s: segment starts at offset %" PRIu64
                        " but the previous one ends at %" PRIu64,
                        s->path, s->base, prev_end);
            goto out;
        }
        prev_end = atomic_load(&s->end);
        s->sealed = !last;
        /* Age for segment.ms counts from the first batch, not from this open, so a topic
         * that restarts often still rolls. */
        if (s->tim_cnt > 0)
            s->created_ms = s->tim[0].ts;
    }
    if (cnt == 0) {
        lg_seg *s;
        uint64_t size;
        if (p->t->opts.readonly) {
            st = wr_err(WR_ERR_CORRUPT, "%s: partition has no segment", p->dir);
            goto out;
        }
        if ((st = lg_seg_create(p, 0, &s)) != WR_OK)
            goto out;
        if ((st = push_seg(p, s)) != WR_OK) {
            lg_seg_unref(s, io);
            goto out;
        }
        if ((st = open_seg_file(p, s, true, &size)) != WR_OK)
            goto out;
        if (io->fsync_dir(io->ctx, p->dir) < 0) {
            st = wr_err(WR_ERR_IO, "%s: fsync of the directory failed", p->dir);
            goto out;
        }
    }
    p->next_offset = atomic_load(&p->segs[p->seg_cnt - 1]->end);
    atomic_store(&p->hw, p->next_offset);

    if ((st = lg_prodtab_load(&p->prods, p->dir, p->next_offset, &snap_off)) != WR_OK)
        goto out;
    for (size_t i = 0; i < p->seg_cnt; i++)
        if (atomic_load(&p->segs[i]->end) > snap_off &&
            (st = replay_producers(p, p->segs[i], snap_off)) != WR_OK)
            goto out;
    if ((st = lg_prodtab_copy(&p->wprods, &p->prods)) != WR_OK)
        goto out;

    if (clean && !p->t->opts.readonly) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/CLEAN", p->dir);
        if (io->unlink(io->ctx, path) < 0 || io->fsync_dir(io->ctx, p->dir) < 0) {
            st = wr_err(WR_ERR_IO, "%s: cannot remove the clean-shutdown marker", path);
            goto out;
        }
    }
    if (!p->t->opts.readonly)
        lg_part_prune_snapshots(p, snap_off);
    p->last_snap_off = snap_off;
out:
    wr_free(bases);
    return st;
}

wr_status lg_part_open(lg_topic *t, uint32_t id, lg_part **out)
{
    lg_part *p;
    wr_status st;

    *out = NULL;
    if ((p = wr_calloc(1, sizeof(*p))) == NULL)
        return WR_ERR_NOMEM;
    p->t = t;
    p->id = id;
    p->cleaner = t->cfg.cleanup == LG_CLEANUP_COMPACT ? LG_CLEANER_IDLE : LG_CLEANER_OFF;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (wr_path(p->dir, sizeof(p->dir), "%s/%05u", t->dir, id) != WR_OK) {
        st = wr_err(WR_ERR_INVAL, "%s: path too long", t->dir);
        goto err;
    }
    if ((st = recover(p)) != WR_OK)
        goto err;
    if (t->cfg.cleanup == LG_CLEANUP_COMPACT)
        p->cleaned_offset = lg_cleaner_ckpt_load(p);
    if (!t->opts.readonly)
        lg_seg_open_direct(p->segs[p->seg_cnt - 1], t->io);
    p->last_sync_ns = wr_now_ns();
    *out = p;
    return WR_OK;
err:
    lg_part_close(p, false);
    return st;
}

static void pq_fini(lg_pq *q)
{
    wr_buf_fini(&q->buf);
    wr_free(q->ents);
    memset(q, 0, sizeof(*q));
}

void lg_part_close(lg_part *p, bool clean)
{
    const lg_io *io;
    if (p == NULL)
        return;
    io = p->t->io;
    if (clean && !p->t->opts.readonly && !atomic_load(&p->failed) && p->seg_cnt > 0) {
        lg_seg *a = p->segs[p->seg_cnt - 1];
        char path[4200];
        int fd;
        wr_status st = WR_ERR_IO;
        if (lg_seg_end_direct(a, io) == WR_OK && io->fsync(io->ctx, a->fd) == 0 &&
            lg_seg_write_indexes(a, io) == WR_OK &&
            lg_prodtab_save(&p->prods, p->dir, p->next_offset) == WR_OK) {
            snprintf(path, sizeof(path), "%s/CLEAN", p->dir);
            if ((fd = io->open(io->ctx, path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0) {
                if (io->fsync(io->ctx, fd) == 0 && io->close(io->ctx, fd) == 0 &&
                    io->fsync_dir(io->ctx, p->dir) == 0)
                    st = WR_OK;
            }
        }
        if (st != WR_OK)
            WR_LOGW("%s: clean shutdown incomplete (%s); the next open will rescan the active "
                    "segment",
                    p->dir, wr_errmsg());
    }
    for (size_t i = 0; i < p->seg_cnt; i++)
        lg_seg_unref(p->segs[i], io);
    wr_free(p->segs);
    wr_free(p->dbuf_raw);
    pq_fini(&p->pend);
    pq_fini(&p->work);
    lg_prodtab_fini(&p->prods);
    lg_prodtab_fini(&p->wprods);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    wr_free(p);
}

lg_seg *lg_part_seg_for(lg_part *p, uint64_t off)
{
    lg_seg *s = NULL;
    size_t lo = 0, hi;
    pthread_mutex_lock(&p->mu);
    hi = p->seg_cnt;
    while (lo < hi) { /* first segment with base > off */
        size_t mid = (lo + hi) / 2;
        if (p->segs[mid]->base <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* segs[lo-1] holds off unless off is past its end (a gap): then the next one. */
    if (lo > 0 && (off < atomic_load(&p->segs[lo - 1]->end) || lo == p->seg_cnt))
        s = p->segs[lo - 1];
    else if (lo < p->seg_cnt)
        s = p->segs[lo];
    if (s)
        lg_seg_ref(s);
    pthread_mutex_unlock(&p->mu);
    return s;
}

lg_seg *lg_part_seg_next(lg_part *p, const lg_seg *s)
{
    lg_seg *n = NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->seg_cnt; i++) {
        if (p->segs[i]->base > s->base) {
            n = p->segs[i];
            lg_seg_ref(n);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

void lg_part_refresh_ro(lg_part *p)
{
    const lg_io *io = p->t->io;
    uint64_t *bases = NULL;
    size_t cnt = 0;
    bool clean;
    lg_seg *a;

    pthread_mutex_lock(&p->mu);
    /* Pick up bytes appended to the active segment, then any newer segments. */
    if (list_dir(p, &bases, &cnt, &clean) != WR_OK)
        goto out;
    for (size_t i = 0; i < cnt; i++) {
        lg_seg *s;
        uint64_t size;
        if (bases[i] <= p->segs[p->seg_cnt - 1]->base)
            continue;
        if (lg_seg_create(p, bases[i], &s) != WR_OK)
            break;
        if (open_seg_file(p, s, false, &size) != WR_OK || push_seg(p, s) != WR_OK) {
            lg_seg_unref(s, io);
            break;
        }
        p->segs[p->seg_cnt - 2]->sealed = true;
    }
    for (size_t i = 0; i < p->seg_cnt; i++) {
        struct stat stb;
        a = p->segs[i];
        /* Only bytes past the known end are read: a writer may be mid-batch there. */
        if (fstat(a->fd, &stb) == 0 && (uint64_t)stb.st_size > atomic_load(&a->size))
            lg_seg_extend(a, io, p->t->cfg.index_interval_bytes, (uint64_t)stb.st_size);
    }
    a = p->segs[p->seg_cnt - 1];
    p->next_offset = atomic_load(&a->end);
    atomic_store(&p->hw, p->next_offset);
out:
    pthread_mutex_unlock(&p->mu);
    wr_free(bases);
}

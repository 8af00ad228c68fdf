/* lg_reader.c -- reading a partition from an offset, a timestamp, the start or the end, and
 * following it. Readers see only bytes below each segment's durable size, so only records
 * below the high watermark. A reader reads ahead in 1 MiB windows and decodes batches in
 * place; a reader holds a reference on its segment, so retention and compaction can swap or
 * drop segments under it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "lg_int.h"

#define LG_READ_AHEAD (1u << 20)

struct lg_reader {
    lg_topic *t;       /* borrowed */
    lg_part *p;        /* borrowed */
    lg_seg *seg;       /* ref */
    uint64_t pos;      /* byte position of the next batch in seg */
    uint64_t next_off; /* records below this are skipped */
    bool by_time;
    int64_t min_ts;
    wr_buf win; /* bytes [win_pos, win_pos + win.len) of seg */
    uint64_t win_pos;
    wr_buf scratch;
    lg_rec_iter it;
    bool in_batch;
    uint32_t cur_len;
};

static void set_seg(lg_reader *r, lg_seg *s, uint64_t pos)
{
    lg_seg_unref(r->seg, r->t->io);
    r->seg = s;
    r->pos = pos;
    r->win.len = 0;
    r->in_batch = false;
}

wr_status lg_reader_open(lg_topic *t, uint32_t partition, lg_start how, int64_t arg,
                         lg_reader **out)
{
    lg_reader *r;
    lg_part *p;

    *out = NULL;
    if (partition >= t->cfg.partitions)
        return wr_err(WR_ERR_INVAL, "partition %u does not exist (topic %s has %u partitions)",
                      partition, t->name, t->cfg.partitions);
    if ((r = wr_calloc(1, sizeof(*r))) == NULL)
        return WR_ERR_NOMEM;
    p = t->parts[partition];
    r->t = t;
    r->p = p;
    if (t->opts.readonly)
        lg_part_refresh_ro(p);
    pthread_mutex_lock(&p->mu);
    switch (how) {
    case LG_FROM_LATEST: {
        lg_seg *a = p->segs[p->seg_cnt - 1];
        lg_seg_ref(a);
        r->seg = a;
        r->pos = atomic_load(&a->size);
        r->next_off = atomic_load(&p->hw);
        break;
    }
    case LG_FROM_TIME: {
        size_t i = 0;
        while (i + 1 < p->seg_cnt && atomic_load(&p->segs[i]->max_ts) < arg)
            i++;
        r->seg = p->segs[i];
        lg_seg_ref(r->seg);
        r->pos = lg_seg_time_lookup(r->seg, arg);
        r->by_time = true;
        r->min_ts = arg;
        break;
    }
    case LG_FROM_OFFSET:
    case LG_FROM_EARLIEST:
    default:
        r->next_off = how == LG_FROM_OFFSET && arg > 0 ? (uint64_t)arg : 0;
        pthread_mutex_unlock(&p->mu);
        r->seg = lg_part_seg_for(p, r->next_off);
        pthread_mutex_lock(&p->mu);
        if (r->seg == NULL) { /* every segment ends before it: wait at the end */
            r->seg = p->segs[p->seg_cnt - 1];
            lg_seg_ref(r->seg);
            r->pos = atomic_load(&r->seg->size);
        } else {
            r->pos = lg_seg_index_lookup(r->seg, r->next_off);
        }
        break;
    }
    pthread_mutex_unlock(&p->mu);
    *out = r;
    return WR_OK;
}

void lg_reader_close(lg_reader *r)
{
    if (r == NULL)
        return;
    lg_seg_unref(r->seg, r->t->io);
    wr_buf_fini(&r->win);
    wr_buf_fini(&r->scratch);
    wr_free(r);
}

uint64_t lg_reader_position(const lg_reader *r)
{
    return r->next_off;
}

/* Wait until there is more to read than @limit in the current segment, a next segment, or
 * the deadline passes. Returns false on timeout. */
static bool wait_more(lg_reader *r, uint64_t limit, int timeout_ms)
{
    lg_part *p = r->p;
    struct timespec ts;
    bool more = false;

    if (timeout_ms == 0)
        return false;
    if (r->t->opts.readonly) { /* another process writes: poll */
        uint64_t deadline = wr_now_ns() + (uint64_t)(timeout_ms < 0 ? 1000 : timeout_ms) * 1000000;
        do {
            lg_part_refresh_ro(p);
            if (atomic_load(&r->seg->size) > limit)
                return true;
            pthread_mutex_lock(&p->mu);
            more = p->segs[p->seg_cnt - 1] != r->seg;
            pthread_mutex_unlock(&p->mu);
            if (more)
                return true;
            wr_sleep_ns(20000000);
        } while (timeout_ms < 0 || wr_now_ns() < deadline);
        return false;
    }
    if (timeout_ms > 0)
        wr_abstime(&ts, (uint64_t)timeout_ms * 1000000u);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (atomic_load(&r->seg->size) > limit || p->segs[p->seg_cnt - 1] != r->seg ||
            atomic_load(&p->failed)) {
            more = true;
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&p->cv, &p->mu);
        else if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&p->mu);
    return more;
}

static wr_status corrupt_here(lg_reader *r)
{
    char why[200];
    snprintf(why, sizeof(why), "%s", wr_errmsg());
    return wr_err(WR_ERR_CORRUPT,
                  "topic %s partition %u: %s: damaged batch at byte %" PRIu64 ": %s", r->t->name,
                  r->p->id, r->seg->path, r->pos, why);
}

/* Make the batch at r->pos available in the window; WR_EOF if not fully durable yet. */
static wr_status load_batch(lg_reader *r, uint64_t limit, const uint8_t **out)
{
    lg_bhdr h;
    wr_status st;
    size_t got;

    for (int pass = 0; pass < 2; pass++) {
        if (r->pos >= r->win_pos && r->pos + LG_BATCH_HDR <= r->win_pos + r->win.len) {
            const uint8_t *b = r->win.ptr + (r->pos - r->win_pos);
            size_t avail = (size_t)(r->win_pos + r->win.len - r->pos);
            st = lg_bhdr_parse(b, avail, &h);
            if (st == WR_OK) {
                *out = b;
                r->cur_len = h.len;
                return WR_OK;
            }
            if (st == WR_ERR_CORRUPT)
                return corrupt_here(r);
            if (r->pos + h.len > limit)
                return r->seg->sealed ? corrupt_here(r) : WR_EOF;
            if (pass == 1)
                return WR_EOF;
        }
        {
            uint64_t want = limit - r->pos;
            size_t n = want > LG_READ_AHEAD ? LG_READ_AHEAD : (size_t)want;
            if (r->pos + LG_BATCH_HDR <= limit && r->win.len && r->pos >= r->win_pos &&
                r->pos + LG_BATCH_HDR <= r->win_pos + r->win.len) {
                /* header is here but the batch is longer than the window */
                const uint8_t *b = r->win.ptr + (r->pos - r->win_pos);
                lg_bhdr hh;
                if (lg_bhdr_parse(b, LG_BATCH_HDR, &hh) != WR_ERR_CORRUPT && hh.len > n &&
                    r->pos + hh.len <= limit)
                    n = hh.len;
            }
            r->win.len = 0;
            WR_TRY(wr_buf_reserve(&r->win, n));
            WR_TRY(lg_seg_read(r->seg, r->t->io, r->win.ptr, n, r->pos, &got));
            r->win.len = got;
            r->win_pos = r->pos;
        }
    }
    return WR_EOF;
}

wr_status lg_reader_next(lg_reader *r, lg_record *rec, int timeout_ms)
{
    for (;;) {
        wr_status st;
        uint64_t limit;
        const uint8_t *b = NULL;

        if (r->in_batch) {
            st = lg_rec_iter_next(&r->it, rec);
            if (st == WR_OK) {
                if (rec->offset < r->next_off || (r->by_time && rec->ts_ms < r->min_ts))
                    continue;
                r->by_time = false;
                r->next_off = rec->offset + 1;
                return WR_OK;
            }
            if (st != WR_EOF)
                return corrupt_here(r);
            r->in_batch = false;
            r->pos += r->cur_len;
            continue;
        }
        limit = atomic_load(&r->seg->size);
        if (r->pos >= limit) {
            lg_seg *n = lg_part_seg_next(r->p, r->seg);
            if (n != NULL) {
                if (atomic_load(&r->seg->size) > r->pos) { /* it grew before the roll */
                    lg_seg_unref(n, r->t->io);
                    continue;
                }
                set_seg(r, n, 0);
                continue;
            }
            if (atomic_load(&r->p->failed) && !r->t->opts.readonly)
                return wr_err(WR_ERR_FAILED, "topic %s partition %u is FAILED: %s", r->t->name,
                              r->p->id, r->p->failure);
            if (!wait_more(r, limit, timeout_ms))
                return WR_EOF;
            continue;
        }
        st = load_batch(r, limit, &b);
        if (st == WR_EOF) {
            if (!wait_more(r, limit, timeout_ms))
                return WR_EOF;
            continue;
        }
        if (st != WR_OK)
            return st;
        if (lg_rec_iter_init(&r->it, b, &r->scratch) != WR_OK)
            return corrupt_here(r);
        r->in_batch = true;
    }
}

/* lg_verify.c -- full check of a topic: every batch's checksum and records, offset order
 * across batches and segments, and every index entry against the batch it points at.
 * Reports each problem as one line naming topic, partition, file and byte offset. */
#include <inttypes.h>
#include <stdio.h>

#include "lg_int.h"

typedef struct vctx {
    lg_report_fn report;
    void *ctx;
    uint64_t problems;
} vctx;

static void say(vctx *v, const char *fmt, ...) WR_PRINTF(2, 3);
static void say(vctx *v, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    v->problems++;
    if (v->report)
        v->report(v->ctx, line);
}

static wr_status verify_seg(lg_part *p, lg_seg *s, uint64_t *prev_end, vctx *v)
{
    const lg_io *io = p->t->io;
    uint64_t size = atomic_load(&s->size), pos = 0;
    wr_buf b = {0}, scratch = {0};
    size_t ii = 0;
    wr_status st = WR_OK;

    if (s->base < *prev_end)
        say(v,
            "topic %s partition %u: %s: segment base %" PRIu64 " overlaps the previous "
            "segment (ends at %" PRIu64 ")",
            p->t->name, p->id, s->path, s->base, *prev_end);
    while (pos < size) {
        uint8_t hb[LG_BATCH_HDR];
        lg_bhdr h;
        lg_rec_iter it;
        lg_record r;
        size_t got;
        wr_status rs;
        if ((st = lg_seg_read(s, io, hb, sizeof(hb), pos, &got)) != WR_OK)
            goto out;
        if (got < sizeof(hb) || lg_bhdr_parse(hb, sizeof(hb), &h) == WR_ERR_CORRUPT ||
            pos + h.len > size) {
            say(v,
                "topic %s partition %u: %s: byte %" PRIu64 ": bad batch header (%s); the "
                "rest of the segment (%" PRIu64 " bytes) cannot be read",
                p->t->name, p->id, s->path, pos,
                got < sizeof(hb) || pos + h.len > size ? "truncated" : wr_errmsg(), size - pos);
            goto out;
        }
        b.len = 0;
        if ((st = wr_buf_reserve(&b, h.len)) != WR_OK ||
            (st = lg_seg_read(s, io, b.ptr, h.len, pos, &got)) != WR_OK)
            goto out;
        if (lg_rec_iter_init(&it, b.ptr, &scratch) != WR_OK) {
            say(v,
                "topic %s partition %u: %s: byte %" PRIu64 ": batch at offset %" PRIu64
                " is damaged (%s)",
                p->t->name, p->id, s->path, pos, h.base, wr_errmsg());
        } else {
            while ((rs = lg_rec_iter_next(&it, &r)) == WR_OK)
                ;
            if (rs != WR_EOF)
                say(v, "topic %s partition %u: %s: byte %" PRIu64 ": %s", p->t->name, p->id,
                    s->path, pos, wr_errmsg());
            if (h.base < *prev_end)
                say(v,
                    "topic %s partition %u: %s: byte %" PRIu64 ": offset %" PRIu64
                    " goes backwards (expected >= %" PRIu64 ")",
                    p->t->name, p->id, s->path, pos, h.base, *prev_end);
            *prev_end = h.base + h.last_delta + 1;
        }
        /* Index entries must point exactly at batch starts with the right offset. */
        pthread_mutex_lock(&p->mu);
        while (ii < s->idx_cnt && s->idx[ii].pos < pos) {
            say(v, "topic %s partition %u: %s: index entry %zu points inside a batch (byte %u)",
                p->t->name, p->id, s->path, ii, s->idx[ii].pos);
            ii++;
        }
        if (ii < s->idx_cnt && s->idx[ii].pos == pos) {
            if (s->base + s->idx[ii].rel != h.base)
                say(v,
                    "topic %s partition %u: %s: index entry %zu says offset %" PRIu64
                    ", the batch at byte %" PRIu64 " has %" PRIu64,
                    p->t->name, p->id, s->path, ii, s->base + s->idx[ii].rel, pos, h.base);
            ii++;
        }
        pthread_mutex_unlock(&p->mu);
        pos += h.len;
    }
out:
    wr_buf_fini(&b);
    wr_buf_fini(&scratch);
    return st;
}

wr_status lg_topic_verify(lg_topic *t, lg_report_fn report, void *ctx)
{
    vctx v = {report, ctx, 0};
    for (uint32_t i = 0; i < t->cfg.partitions; i++) {
        lg_part *p = t->parts[i];
        uint64_t prev_end = 0;
        for (lg_seg *s = lg_part_seg_for(p, 0); s != NULL;) {
            lg_seg *n;
            wr_status st = verify_seg(p, s, &prev_end, &v);
            n = lg_part_seg_next(p, s);
            lg_seg_unref(s, t->io);
            if (st != WR_OK) {
                lg_seg_unref(n, t->io);
                return st;
            }
            s = n;
        }
    }
    return v.problems ? wr_err(WR_ERR_CORRUPT, "%" PRIu64 " problem(s) found", v.problems) : WR_OK;
}

/* lg_writer.c -- appends and group commit.
 *
 * Life of an append:
 *   1. lg_append_async() encodes the batch outside any lock (thread-local scratch buffer),
 *      then under part->mu: checks FAILED and back-pressure, runs the producer-sequence
 *      check, assigns offsets, seals the batch (base offset + checksum) into the partition's
 *      pending queue, and puts the partition on the topic's to-do list.
 *   2. The writer thread (one per topic) takes every queued partition's pending queue and
 *      submits one write per partition, linked to one fdatasync under fsync=always, all in
 *      one io_uring submission: a round. Everything that queued while a round was on disk
 *      goes into the next one, so a single fdatasync covers many appenders.
 *   3. When the round completes, the writer adds index entries, moves the high watermark,
 *      wakes readers and runs the completion callbacks. A failed write or sync marks the
 *      partition FAILED and fails every append queued on it; nothing is retried.
 *   4. A segment rolls between rounds: the old segment is written and fdatasync'ed first,
 *      then its index files and a producer snapshot are written, then the new segment file
 *      is created (and the directory synced). So a sealed segment is always complete.
 *
 * Back-pressure: bytes queued or on disk but not yet acknowledged are bounded by
 * lg_open_opts.max_inflight_bytes; beyond it, appends get WR_AGAIN. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#include "lg_int.h"

typedef struct lg_span { /* one partition's share of a write pass */
    lg_part *p;
    size_t from, to; /* entries of p->work covered */
    bool roll;
    bool direct;    /* the op writes p->dbuf through the O_DIRECT descriptor */
    uint64_t bytes; /* data bytes in the op (without the block prefix and padding) */
    size_t op;      /* index into the ops array, SIZE_MAX if none */
} lg_span;

typedef struct lg_writer_st {
    lg_part **parts;
    size_t cnt, cap;
    lg_io_op *ops;
    lg_span *spans;
    size_t *wi; /* next entry to write, per part */
    size_t ops_cap;
} lg_writer_st;

/* Each appending thread encodes into its own scratch buffer; a pthread key frees it when
 * the thread exits (else every short-lived appender thread leaks it). */
static _Thread_local wr_buf tl_scratch;
static _Thread_local bool tl_scratch_reg;
static pthread_key_t tl_scratch_key;
static pthread_once_t tl_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    wr_buf_fini(p);
}

static void scratch_key_init(void)
{
    WR_VERIFY(pthread_key_create(&tl_scratch_key, scratch_free) == 0);
}

static void scratch_register(void)
{
    if (tl_scratch_reg)
        return;
    pthread_once(&tl_scratch_once, scratch_key_init);
    tl_scratch_reg = pthread_setspecific(tl_scratch_key, &tl_scratch) == 0;
}

static wr_status pq_push(lg_pq *q, lg_pent **out)
{
    if (q->cnt == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        lg_pent *n = wr_realloc(q->ents, ncap * sizeof(*n));
        if (n == NULL)
            return WR_ERR_NOMEM;
        q->ents = n;
        q->cap = ncap;
    }
    *out = &q->ents[q->cnt++];
    memset(*out, 0, sizeof(**out));
    return WR_OK;
}

static wr_status failed_status(lg_part *p)
{
    return wr_err(WR_ERR_FAILED,
                  "topic %s partition %u is FAILED (%s); appends are refused until the topic "
                  "is reopened",
                  p->t->name, p->id, p->failure);
}

wr_status lg_append_async(lg_topic *t, uint32_t partition, const lg_batch_in *b, lg_ack_fn fn,
                          void *ctx)
{
    lg_part *p;
    uint64_t body_hash, base, dup_base = 0;
    wr_status st;
    lg_pent *e;
    bool signal;

    if (t->opts.readonly)
        return wr_err(WR_ERR_INVAL, "topic %s is open read-only", t->name);
    if (partition >= t->cfg.partitions)
        return wr_err(WR_ERR_INVAL, "partition %u does not exist (topic %s has %u partitions)",
                      partition, t->name, t->cfg.partitions);
    if (fn == NULL || b == NULL || b->rec_cnt == 0)
        return wr_err(WR_ERR_INVAL, "append needs a callback and at least one record");
    if (t->cfg.cleanup == LG_CLEANUP_COMPACT)
        for (uint32_t i = 0; i < b->rec_cnt; i++)
            if (b->recs[i].key.ptr == NULL)
                return wr_err(WR_ERR_INVAL,
                              "record %u has no key; topic %s is compacted, so every record "
                              "needs one",
                              i, t->name);
    scratch_register();
    if ((st = lg_batch_encode(b, wr_wall_ms(), t->cfg.max_record_bytes, &tl_scratch, &body_hash)) !=
        WR_OK)
        return st;
    p = t->parts[partition];

    pthread_mutex_lock(&p->mu);
    if (atomic_load(&p->failed)) {
        st = failed_status(p);
        goto out_unlock;
    }
    if (atomic_load(&t->inflight_bytes) + tl_scratch.len > t->opts.max_inflight_bytes &&
        atomic_load(&t->inflight_bytes) > 0) {
        st = WR_AGAIN;
        goto out_unlock;
    }
    base = p->next_offset;
    if (b->producer_id != LG_NO_PRODUCER) {
        st = lg_prodtab_check(&p->prods, partition, b->producer_id, b->producer_epoch, b->base_seq,
                              b->rec_cnt, base, wr_wall_ms(), &dup_base);
        if (st == WR_EOF) {
            /* A retry: acknowledge with the original offsets once they are durable, in
             * order behind whatever is queued (the original may still be on its way). */
            if ((st = pq_push(&p->pend, &e)) != WR_OK)
                goto out_unlock;
            e->off = p->pend.buf.len;
            e->base = dup_base;
            e->count = b->rec_cnt;
            e->dup = true;
            e->fn = fn;
            e->ctx = ctx;
            goto queued;
        }
        if (st != WR_OK)
            goto out_unlock;
    }
    if ((st = wr_buf_reserve(&p->pend.buf, tl_scratch.len)) != WR_OK ||
        (st = pq_push(&p->pend, &e)) != WR_OK)
        goto out_unlock; /* the producer state is ahead now, but NOMEM is fatal enough */
    e->off = p->pend.buf.len;
    e->len = tl_scratch.len;
    e->base = base;
    e->count = b->rec_cnt;
    e->max_ts = (int64_t)wr_get64(tl_scratch.ptr + 44);
    e->fn = fn;
    e->ctx = ctx;
    memcpy(p->pend.buf.ptr + p->pend.buf.len, tl_scratch.ptr, tl_scratch.len);
    lg_batch_seal(p->pend.buf.ptr + p->pend.buf.len, base, body_hash);
    p->pend.buf.len += tl_scratch.len;
    p->next_offset += b->rec_cnt;
    atomic_fetch_add(&t->inflight_bytes, tl_scratch.len);
queued:
    signal = !p->queued;
    p->queued = true;
    pthread_mutex_unlock(&p->mu);
    {
        /* The writer may be lingering for the appenders it just acknowledged to come back. */
        uint64_t n = atomic_fetch_add(&t->pend_entries, 1) + 1;
        uint64_t want = atomic_load(&t->linger_want);
        if (!signal && want && n >= want) {
            pthread_mutex_lock(&t->mu);
            pthread_cond_signal(&t->work_cv);
            pthread_mutex_unlock(&t->mu);
        }
    }
    if (tl_scratch.cap > (4u << 20)) /* do not keep a huge scratch per thread forever */
        wr_buf_fini(&tl_scratch);
    if (signal) {
        pthread_mutex_lock(&t->mu);
        if (t->todo_cnt == t->todo_cap) {
            size_t ncap = t->todo_cap ? t->todo_cap * 2 : 16;
            lg_part **n = wr_realloc(t->todo, ncap * sizeof(*n));
            WR_VERIFY(n != NULL); /* bounded by the partition count; tiny */
            t->todo = n;
            t->todo_cap = ncap;
        }
        t->todo[t->todo_cnt++] = p;
        pthread_cond_signal(&t->work_cv);
        pthread_mutex_unlock(&t->mu);
    }
    return WR_OK;
out_unlock:
    pthread_mutex_unlock(&p->mu);
    return st;
}

typedef struct lg_waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool done;
    wr_status st;
    lg_ack ack;
} lg_waiter;

static void waiter_done(void *ctx, wr_status st, const lg_ack *ack)
{
    lg_waiter *w = ctx;
    pthread_mutex_lock(&w->m);
    w->st = st;
    if (ack)
        w->ack = *ack;
    w->done = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

wr_status lg_append(lg_topic *t, uint32_t partition, const lg_batch_in *b, lg_ack *out)
{
    lg_waiter w;
    wr_status st;

    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.m, NULL);
    pthread_cond_init(&w.c, NULL);
    st = lg_append_async(t, partition, b, waiter_done, &w);
    if (st == WR_OK) {
        pthread_mutex_lock(&w.m);
        while (!w.done)
            pthread_cond_wait(&w.c, &w.m);
        pthread_mutex_unlock(&w.m);
        st = w.st;
        if (st == WR_OK && out)
            *out = w.ack;
        else if (st == WR_ERR_FAILED)
            st = failed_status(t->parts[partition]);
        else if (st != WR_OK) /* this append hit the failure: keep its cause */
            st = wr_err(st, "topic %s partition %u: %s", t->name, partition,
                        t->parts[partition]->failure);
    }
    pthread_mutex_destroy(&w.m);
    pthread_cond_destroy(&w.c);
    return st;
}

/* ---------------------------------------------------------------- the writer thread */

static wr_status ws_reserve(lg_writer_st *w, size_t n)
{
    if (n <= w->ops_cap)
        return WR_OK;
    lg_io_op *o = wr_realloc(w->ops, n * sizeof(*o));
    if (o == NULL)
        return WR_ERR_NOMEM;
    w->ops = o;
    lg_span *s = wr_realloc(w->spans, n * sizeof(*s));
    if (s == NULL)
        return WR_ERR_NOMEM;
    w->spans = s;
    size_t *wi = wr_realloc(w->wi, n * sizeof(*wi));
    if (wi == NULL)
        return WR_ERR_NOMEM;
    w->wi = wi;
    w->ops_cap = n;
    return WR_OK;
}

/* Fail every entry of p->work from @from on. */
static void fail_rest(lg_part *p, size_t from, wr_status st)
{
    for (size_t i = from; i < p->work.cnt; i++) {
        lg_pent *e = &p->work.ents[i];
        atomic_fetch_sub(&p->t->inflight_bytes, e->len);
        e->fn(e->ctx, st, NULL);
    }
    p->work.cnt = from;
}

static wr_status roll(lg_part *p, uint64_t new_base)
{
    const lg_io *io = p->t->io;
    lg_seg *old = p->segs[p->seg_cnt - 1], *s;
    wr_status st;
    int fd;

    /* The old segment's bytes were fdatasync'ed by the pass that decided to roll. */
    WR_TRY(lg_seg_end_direct(old, io));
    p->dtail_ok = false;
    WR_TRY(lg_seg_write_indexes(old, io));
    lg_prodtab_expire(&p->wprods, wr_wall_ms() - p->t->cfg.producer_expiration_ms);
    WR_TRY(lg_prodtab_save(&p->wprods, p->dir, new_base));
    lg_part_prune_snapshots(p, p->last_snap_off); /* keep this one and the one before */
    p->last_snap_off = new_base;
    WR_TRY(lg_seg_create(p, new_base, &s));
    if ((fd = io->open(io->ctx, s->path, O_RDWR | O_CREAT | O_EXCL, 0644)) < 0) {
        st = wr_err(wr_status_from_errno(-fd), "%s: cannot create segment: %s", s->path,
                    strerror(-fd));
        lg_seg_unref(s, io);
        return st;
    }
    s->fd = fd;
    lg_seg_open_direct(s, io);
    if (io->fsync_dir(io->ctx, p->dir) < 0) {
        lg_seg_unref(s, io);
        return wr_err(WR_ERR_IO, "%s: fsync of the directory failed", p->dir);
    }
    pthread_mutex_lock(&p->mu);
    if (p->seg_cnt == p->seg_cap) {
        size_t ncap = p->seg_cap * 2;
        lg_seg **n = wr_realloc(p->segs, ncap * sizeof(*n));
        if (n == NULL) {
            pthread_mutex_unlock(&p->mu);
            lg_seg_unref(s, io);
            return WR_ERR_NOMEM;
        }
        p->segs = n;
        p->seg_cap = ncap;
    }
    old->sealed = true;
    p->segs[p->seg_cnt++] = s;
    pthread_mutex_unlock(&p->mu);
    return WR_OK;
}

/* Plan one write for @p from entry w->wi[k]: as many entries as fit the active segment. */
/* Direct I/O: O_DIRECT writes skip the page-cache copy, which on these VMs costs more than
 * the disk (fresh page-cache memory faults in the hypervisor). They must be whole aligned
 * blocks, so each write rewrites the segment's last partial block: dbuf holds it, then the
 * new bytes, then zeros to the block end. The file may thus end in padding; the padding is
 * cut at seal and close, and after a crash recovery truncates it like any torn tail.
 * Small writes stay in the page cache: an O_DIRECT write that extends the file costs ext4 a
 * journal commit of its own, on top of the fdatasync (W2, 64 appenders of 100 B: 114k/s
 * buffered, 52k/s direct), while big ones gain (W1, 100 B records: 7.2 M/s direct, 3.0 M/s
 * buffered). Mixing is safe: the kernel writes back and drops cached pages of a range before
 * a direct write to it, and the tail block is re-read from the page cache.
 * Returns false (use the page cache for this write) when not possible or not worth it. */
/* The threshold is lg_topic.dio_min: 128 KiB, or $WEIR_DIO_MIN (tests use 0: always). */
static bool dio_stage(lg_part *p, lg_seg *a, const uint8_t *src, size_t bytes, lg_io_op *op)
{
    const lg_io *io = p->t->io;
    uint64_t blk = a->wsize & ~(uint64_t)(LG_DIO_ALIGN - 1);
    size_t pre = (size_t)(a->wsize - blk), total = pre + bytes;
    size_t padded = (total + LG_DIO_ALIGN - 1) & ~(size_t)(LG_DIO_ALIGN - 1);

    if (a->dfd < 0 || bytes == 0 || bytes < p->t->dio_min)
        return false;
    if (padded > p->dbuf_cap) {
        size_t cap = padded > 2 * p->dbuf_cap ? padded : 2 * p->dbuf_cap;
        uint8_t *raw = wr_malloc(cap + LG_DIO_ALIGN), *al;
        if (raw == NULL)
            return false;
        al = (uint8_t *)(((uintptr_t)raw + LG_DIO_ALIGN - 1) & ~(uintptr_t)(LG_DIO_ALIGN - 1));
        if (p->dtail_ok && pre)
            memcpy(al, p->dbuf, pre);
        wr_free(p->dbuf_raw);
        p->dbuf_raw = raw;
        p->dbuf = al;
        p->dbuf_cap = cap;
    }
    if (!p->dtail_ok || p->dtail_blk != blk) {
        if (pre && io->pread(io->ctx, a->fd, p->dbuf, pre, blk) != (int64_t)pre)
            return false;
        p->dtail_blk = blk;
        p->dtail_ok = true;
    }
    memcpy(p->dbuf + pre, src, bytes);
    memset(p->dbuf + total, 0, padded - total);
    op->fd = a->dfd;
    op->buf = p->dbuf;
    op->len = padded;
    op->off = blk;
    return true;
}

/* After a direct write of [dtail_blk, new_wsize): keep the new last partial block. */
static void dio_advance(lg_part *p, uint64_t new_wsize)
{
    uint64_t blk = new_wsize & ~(uint64_t)(LG_DIO_ALIGN - 1);
    size_t keep = (size_t)(new_wsize - blk);
    if (keep)
        memmove(p->dbuf, p->dbuf + (blk - p->dtail_blk), keep);
    p->dtail_blk = blk;
}

static void plan(lg_writer_st *w, size_t k, size_t *nops)
{
    lg_part *p = w->parts[k];
    const lg_config *c = &p->t->cfg;
    lg_seg *a = p->segs[p->seg_cnt - 1];
    lg_span *sp = &w->spans[k];
    size_t i = w->wi[k];
    uint64_t bytes = 0;
    bool aged = a->wsize > 0 && (uint64_t)(wr_wall_ms() - a->created_ms) >= c->segment_ms;

    sp->p = p;
    sp->from = i;
    sp->roll = false;
    sp->direct = false;
    sp->op = SIZE_MAX;
    for (; i < p->work.cnt; i++) {
        const lg_pent *e = &p->work.ents[i];
        if (e->len == 0)
            continue;
        if ((a->wsize + bytes > 0 && a->wsize + bytes + e->len > c->segment_bytes) || aged) {
            sp->roll = true;
            break;
        }
        bytes += e->len;
    }
    sp->to = i;
    if (bytes == 0 && !sp->roll)
        return;
    {
        lg_io_op *op = &w->ops[*nops];
        size_t first = sp->from;
        while (first < sp->to && p->work.ents[first].len == 0)
            first++;
        const uint8_t *src = bytes ? p->work.buf.ptr + p->work.ents[first].off : NULL;
        sp->direct = dio_stage(p, a, src, (size_t)bytes, op);
        if (!sp->direct) {
            if (a->dfd >= 0)
                p->dtail_ok = false; /* the page cache gets these bytes: restage next time */
            op->fd = a->fd;
            op->buf = src;
            op->len = (size_t)bytes;
            op->off = a->wsize;
        }
        sp->bytes = bytes;
        op->sync = c->fsync == LG_FSYNC_ALWAYS || sp->roll;
        op->err = 0;
        sp->op = (*nops)++;
    }
}

static void complete(lg_writer_st *w, size_t k)
{
    lg_span *sp = &w->spans[k];
    lg_part *p = sp->p;
    const lg_config *c = &p->t->cfg;
    lg_seg *a = p->segs[p->seg_cnt - 1];
    const lg_io_op *op = sp->op == SIZE_MAX ? NULL : &w->ops[sp->op];
    uint64_t hw = atomic_load(&p->hw);
    wr_status st = WR_OK;

    if (op && op->err) {
        /* The appends of this write get the cause (WR_ERR_IO, WR_ERR_FULL for ENOSPC); later
         * ones get WR_ERR_FAILED. */
        st = wr_status_from_errno(op->err);
        pthread_mutex_lock(&p->mu);
        lg_part_fail(p, st, "%s of %s at byte %" PRIu64 " failed: %s",
                     op->len ? "write" : "fdatasync", a->path, op->off, strerror(op->err));
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        fail_rest(p, sp->from, wr_failed(st) ? st : WR_ERR_IO);
        w->wi[k] = p->work.cnt;
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = sp->from; i < sp->to; i++) {
        lg_pent *e = &p->work.ents[i];
        if (e->len == 0)
            continue;
        if (st == WR_OK)
            st = lg_seg_index_add(a, c->index_interval_bytes, a->wsize, e->base, e->max_ts);
        a->wsize += e->len;
        if (e->max_ts > atomic_load(&a->max_ts))
            atomic_store(&a->max_ts, e->max_ts);
        hw = e->base + e->count;
        {
            lg_bhdr h;
            if (lg_bhdr_parse(p->work.buf.ptr + e->off, e->len, &h) == WR_OK &&
                lg_prodtab_apply(&p->wprods, &h) != WR_OK)
                st = WR_ERR_NOMEM;
        }
    }
    if (sp->direct)
        dio_advance(p, a->wsize);
    if (op && op->len) {
        atomic_store(&a->end, hw);
        atomic_store(&a->size, a->wsize);
        atomic_store(&p->hw, hw);
        a->dirty_sync = !op->sync;
        if (op->sync)
            p->last_sync_ns = wr_now_ns();
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (st != WR_OK) {
        pthread_mutex_lock(&p->mu);
        lg_part_fail(p, st, "out of memory while indexing %s", a->path);
        pthread_mutex_unlock(&p->mu);
    }
    for (size_t i = sp->from; i < sp->to; i++) {
        lg_pent *e = &p->work.ents[i];
        lg_ack ack = {p->id, e->base, e->count, e->dup};
        atomic_fetch_sub(&p->t->inflight_bytes, e->len);
        e->fn(e->ctx, WR_OK, &ack);
    }
    w->wi[k] = sp->to;
    if (sp->roll) {
        /* The first entry not written tells the new base; all later ones follow it. */
        uint64_t nb = p->next_offset;
        for (size_t i = sp->to; i < p->work.cnt; i++)
            if (p->work.ents[i].len) {
                nb = p->work.ents[i].base;
                break;
            }
        if (sp->to == p->work.cnt || (st = roll(p, nb)) != WR_OK) {
            if (sp->to < p->work.cnt) {
                char why[200];
                snprintf(why, sizeof(why), "%s", wr_errmsg());
                pthread_mutex_lock(&p->mu);
                lg_part_fail(p, st, "segment roll failed: %s", why);
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
                fail_rest(p, sp->to, WR_ERR_IO);
                w->wi[k] = p->work.cnt;
            }
        }
    }
}

/* Write every queued batch of the taken partitions, in as many passes as rolls need. */
static void round_run(lg_writer_st *w)
{
    const lg_io *io = w->cnt ? w->parts[0]->t->io : NULL;
    for (size_t k = 0; k < w->cnt; k++)
        w->wi[k] = 0;
    for (;;) {
        size_t nops = 0, active = 0;
        for (size_t k = 0; k < w->cnt; k++) {
            lg_part *p = w->parts[k];
            w->spans[k].op = SIZE_MAX;
            w->spans[k].p = p;
            w->spans[k].from = w->spans[k].to = w->wi[k];
            w->spans[k].roll = false;
            w->spans[k].direct = false;
            if (w->wi[k] >= p->work.cnt)
                continue;
            if (atomic_load(&p->failed)) {
                fail_rest(p, w->wi[k], WR_ERR_FAILED);
                w->wi[k] = p->work.cnt;
                continue;
            }
            plan(w, k, &nops);
            active++;
        }
        if (active == 0)
            break;
        if (nops) {
            lg_topic *t = w->parts[0]->t;
            uint64_t t0 = wr_now_ns();
            io->submit(io->ctx, w->ops, nops);
            t->stat_io_ns += wr_now_ns() - t0;
            for (size_t i = 0; i < nops; i++) {
                t->stat_writes += w->ops[i].len > 0;
                t->stat_syncs += w->ops[i].sync;
            }
        }
        for (size_t k = 0; k < w->cnt; k++)
            if (w->wi[k] < w->parts[k]->work.cnt || w->spans[k].op != SIZE_MAX)
                complete(w, k);
    }
    for (size_t k = 0; k < w->cnt; k++) {
        lg_part *p = w->parts[k];
        p->work.cnt = 0;
        p->work.buf.len = 0;
    }
}

/* fdatasync dirty active segments: all of them (@all) or those past the interval. */
static void sync_dirty(lg_topic *t, bool all)
{
    uint64_t now = wr_now_ns();
    lg_writer_st w = {0};
    size_t n = 0;

    if (ws_reserve(&w, t->cfg.partitions) != WR_OK) {
        WR_LOGE("topic %s: out of memory for a sync pass", t->name);
        goto out;
    }
    for (uint32_t i = 0; i < t->cfg.partitions; i++) {
        lg_part *p = t->parts[i];
        lg_seg *a = p->segs[p->seg_cnt - 1];
        if (!a->dirty_sync || atomic_load(&p->failed))
            continue;
        if (!all && now - p->last_sync_ns < (uint64_t)t->cfg.fsync_interval_ms * 1000000)
            continue;
        memset(&w.ops[n], 0, sizeof(w.ops[n]));
        w.ops[n].fd = a->fd;
        w.ops[n].sync = true;
        w.spans[n].p = p;
        n++;
    }
    if (n)
        t->io->submit(t->io->ctx, w.ops, n);
    for (size_t k = 0; k < n; k++) {
        lg_part *p = w.spans[k].p;
        lg_seg *a = p->segs[p->seg_cnt - 1];
        pthread_mutex_lock(&p->mu);
        if (w.ops[k].err)
            lg_part_fail(p, wr_status_from_errno(w.ops[k].err), "fdatasync of %s failed: %s",
                         a->path, strerror(w.ops[k].err));
        else
            a->dirty_sync = false;
        p->last_sync_ns = now;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
out:
    wr_free(w.ops);
    wr_free(w.spans);
    wr_free(w.wi);
}

/* Group commit under fsync=always: the appenders just acknowledged usually append again at
 * once. Starting the next round with only those that queued meanwhile splits the appenders
 * into two cohorts that alternate, each round half full. So wait, briefly, until as many
 * appends are queued as were acknowledged plus queued: then one fdatasync covers them all.
 * Bounded by LG_LINGER_NS, so a shrinking crowd costs at most that much latency. */
#define LG_LINGER_NS 200000

static void linger(lg_topic *t, uint64_t acked)
{
    uint64_t want = acked + atomic_load(&t->pend_entries);
    uint64_t deadline = wr_now_ns() + LG_LINGER_NS;
    struct timespec ts;

    wr_abstime(&ts, LG_LINGER_NS);
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->linger_want, want);
    while (atomic_load(&t->pend_entries) < want && !t->stop && wr_now_ns() < deadline)
        if (pthread_cond_timedwait(&t->work_cv, &t->mu, &ts) == ETIMEDOUT)
            break;
    atomic_store(&t->linger_want, 0);
    pthread_mutex_unlock(&t->mu);
}

static void *writer_main(void *arg)
{
    lg_topic *t = arg;
    lg_writer_st w = {0};
    uint64_t taken;
    const bool interval = t->cfg.fsync == LG_FSYNC_INTERVAL;

    for (;;) {
        uint64_t sync_want;
        bool stop;
        pthread_mutex_lock(&t->mu);
        while (t->todo_cnt == 0 && !t->stop && t->sync_want == t->sync_done) {
            if (interval) {
                struct timespec ts;
                wr_abstime(&ts, (uint64_t)t->cfg.fsync_interval_ms * 1000000u);
                if (pthread_cond_timedwait(&t->work_cv, &t->mu, &ts) == ETIMEDOUT)
                    break;
            } else {
                pthread_cond_wait(&t->work_cv, &t->mu);
            }
        }
        if (ws_reserve(&w, t->todo_cnt > 16 ? t->todo_cnt : 16) != WR_OK) {
            pthread_mutex_unlock(&t->mu);
            WR_LOGE("topic %s: writer out of memory; retrying", t->name);
            wr_sleep_ns(10000000);
            continue;
        }
        if (w.cap < t->todo_cnt) {
            lg_part **np = wr_realloc(w.parts, t->todo_cnt * sizeof(*np));
            if (np == NULL) {
                pthread_mutex_unlock(&t->mu);
                wr_sleep_ns(10000000);
                continue;
            }
            w.parts = np;
            w.cap = t->todo_cnt;
        }
        if (t->todo_cnt) /* memcpy from NULL is undefined even for 0 bytes */
            memcpy(w.parts, t->todo, t->todo_cnt * sizeof(*w.parts));
        w.cnt = t->todo_cnt;
        t->todo_cnt = 0;
        sync_want = t->sync_want;
        stop = t->stop;
        pthread_mutex_unlock(&t->mu);

        taken = 0;
        for (size_t k = 0; k < w.cnt; k++) {
            lg_part *p = w.parts[k];
            lg_pq tmp;
            pthread_mutex_lock(&p->mu);
            tmp = p->work;
            p->work = p->pend;
            p->pend = tmp;
            p->queued = false;
            pthread_mutex_unlock(&p->mu);
            taken += p->work.cnt;
        }
        atomic_fetch_sub(&t->pend_entries, taken);
        round_run(&w);
        if (t->cfg.fsync == LG_FSYNC_ALWAYS && taken >= 2)
            linger(t, taken);
        if (interval || sync_want != t->sync_done || (stop && w.cnt == 0))
            sync_dirty(t, sync_want != t->sync_done || stop);

        pthread_mutex_lock(&t->mu);
        t->sync_done = sync_want;
        t->rounds_done++;
        pthread_cond_broadcast(&t->idle_cv);
        stop = t->stop && t->todo_cnt == 0 && w.cnt == 0;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
    }
    wr_free(w.parts);
    wr_free(w.ops);
    wr_free(w.spans);
    wr_free(w.wi);
    return NULL;
}

wr_status lg_writer_start(lg_topic *t)
{
    int rc = pthread_create(&t->writer, NULL, writer_main, t);
    if (rc != 0)
        return wr_err(wr_status_from_errno(rc), "cannot start the writer thread: %s", strerror(rc));
    t->writer_started = true;
    return WR_OK;
}

void lg_writer_stop(lg_topic *t)
{
    if (!t->writer_started)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->writer, NULL);
    t->writer_started = false;
    WR_LOGI("topic %s: writer did %llu rounds, %llu writes, %llu fdatasyncs, %.3f s in I/O",
            t->name, (unsigned long long)t->rounds_done, (unsigned long long)t->stat_writes,
            (unsigned long long)t->stat_syncs, (double)t->stat_io_ns / 1e9);
}

wr_status lg_topic_sync(lg_topic *t)
{
    uint64_t want;
    if (t->opts.readonly)
        return WR_OK;
    pthread_mutex_lock(&t->mu);
    want = ++t->sync_want;
    pthread_cond_signal(&t->work_cv);
    while (t->sync_done < want)
        pthread_cond_wait(&t->idle_cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    for (uint32_t i = 0; i < t->cfg.partitions; i++)
        if (atomic_load(&t->parts[i]->failed))
            return failed_status(t->parts[i]);
    return WR_OK;
}

/* lg_retain.c -- retention by time and size, and the maintenance thread that runs it, and
 * the compaction cleaner, once a second.
 *
 * Retention (cleanup=delete topics) deletes whole sealed segments from the oldest on, while
 * (a) the segment's newest record is older than retention.ms, or the partition is larger
 * than retention.bytes without it; and (b) every offset in the segment is below the low
 * watermark (lg_group.c). The active segment is never deleted. Readers that hold a deleted
 * segment finish it: its descriptor stays valid after unlink. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "lg_int.h"

#define LG_MAINT_PERIOD_MS 1000

static void unlink_seg_files(lg_part *p, const lg_seg *s)
{
    const lg_io *io = p->t->io;
    char path[4200];
    size_t n = strlen(s->path) - 4;
    io->unlink(io->ctx, s->path);
    snprintf(path, sizeof(path), "%.*s.idx", (int)n, s->path);
    io->unlink(io->ctx, path);
    snprintf(path, sizeof(path), "%.*s.tim", (int)n, s->path);
    io->unlink(io->ctx, path);
}

wr_status lg_part_retain(lg_part *p, int64_t now_ms)
{
    const lg_config *c = &p->t->cfg;
    uint64_t lw, total = 0;
    lg_seg *gone[256];
    size_t ngone = 0;

    if (c->cleanup != LG_CLEANUP_DELETE || (c->retention_ms < 0 && c->retention_bytes < 0))
        return WR_OK;
    lw = lg_low_watermark(p->t, p->id);
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->seg_cnt; i++)
        total += atomic_load(&p->segs[i]->size);
    while (p->seg_cnt > 1 && ngone < 256) {
        lg_seg *s = p->segs[0];
        uint64_t sz = atomic_load(&s->size);
        bool old = c->retention_ms >= 0 && atomic_load(&s->max_ts) < now_ms - c->retention_ms;
        bool big = c->retention_bytes >= 0 && total - sz >= (uint64_t)c->retention_bytes;
        if (!(old || big))
            break;
        if (lw != LG_NO_OFFSET && atomic_load(&s->end) > lw)
            break; /* pinned */
        gone[ngone++] = s;
        total -= sz;
        memmove(p->segs, p->segs + 1, (p->seg_cnt - 1) * sizeof(*p->segs));
        p->seg_cnt--;
    }
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < ngone; i++) {
        WR_LOGI("%s: deleted by retention", gone[i]->path);
        unlink_seg_files(p, gone[i]);
        lg_seg_unref(gone[i], p->t->io);
    }
    if (ngone && p->t->io->fsync_dir(p->t->io->ctx, p->dir) < 0)
        return wr_err(WR_ERR_IO, "%s: fsync of the directory failed", p->dir);
    return WR_OK;
}

wr_status lg_topic_retain(lg_topic *t)
{
    int64_t now = wr_wall_ms();
    if (t->opts.readonly)
        return wr_err(WR_ERR_INVAL, "topic %s is open read-only", t->name);
    for (uint32_t i = 0; i < t->cfg.partitions; i++)
        WR_TRY(lg_part_retain(t->parts[i], now));
    return WR_OK;
}

static void *maint_main(void *arg)
{
    lg_topic *t = arg;
    pthread_mutex_lock(&t->maint_mu);
    while (!t->maint_stop) {
        struct timespec ts;
        wr_abstime(&ts, (uint64_t)LG_MAINT_PERIOD_MS * 1000000u);
        pthread_cond_timedwait(&t->maint_cv, &t->maint_mu, &ts);
        if (t->maint_stop)
            break;
        pthread_mutex_unlock(&t->maint_mu);
        for (uint32_t i = 0; i < t->cfg.partitions && !t->maint_stop; i++) {
            lg_part *p = t->parts[i];
            pthread_mutex_lock(&p->mu);
            lg_prodtab_expire(&p->prods, wr_wall_ms() - t->cfg.producer_expiration_ms);
            pthread_mutex_unlock(&p->mu);
            if (lg_part_retain(p, wr_wall_ms()) != WR_OK)
                WR_LOGW("topic %s partition %u: retention: %s", t->name, i, wr_errmsg());
            if (t->cfg.cleanup == LG_CLEANUP_COMPACT &&
                lg_part_dirty_ratio(p) >= t->cfg.min_cleanable_ratio &&
                lg_part_compact(p, wr_wall_ms()) != WR_OK)
                WR_LOGW("topic %s partition %u: compaction: %s", t->name, i, wr_errmsg());
        }
        pthread_mutex_lock(&t->maint_mu);
    }
    pthread_mutex_unlock(&t->maint_mu);
    return NULL;
}

wr_status lg_maint_start(lg_topic *t)
{
    int rc = pthread_create(&t->maint, NULL, maint_main, t);
    if (rc != 0)
        return wr_err(wr_status_from_errno(rc), "cannot start the maintenance thread: %s",
                      strerror(rc));
    t->maint_started = true;
    return WR_OK;
}

void lg_maint_stop(lg_topic *t)
{
    if (!t->maint_started)
        return;
    pthread_mutex_lock(&t->maint_mu);
    t->maint_stop = true;
    pthread_cond_signal(&t->maint_cv);
    pthread_mutex_unlock(&t->maint_mu);
    pthread_join(t->maint, NULL);
    t->maint_started = false;
}

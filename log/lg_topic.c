/* lg_topic.c -- topics: creation, open (lock, recovery of every partition, threads), close.
 *
 * Layout: <root>/<topic>/topic.meta (lg_config.c), <root>/<topic>/LOCK (flock'ed by the one
 * process that has the topic open for writing), <root>/<topic>/<5-digit partition>/ (segments),
 * <root>/<topic>/groups/ and pins/ (lg_group.c).
 * Creation is atomic: everything is built in "<root>/.<topic>.creating" and renamed into
 * place, so a crash never leaves a half-made topic under its real name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lg_int.h"

uint32_t lg_partition_for_key(wr_bytes key, uint32_t partitions)
{
    return partitions ? (uint32_t)(wr_xxh3(key.ptr, key.len) % partitions) : 0;
}

const lg_config *lg_topic_config(const lg_topic *t)
{
    return &t->cfg;
}

uint32_t lg_topic_partitions(const lg_topic *t)
{
    return t->cfg.partitions;
}

const char *lg_topic_name(const lg_topic *t)
{
    return t->name;
}

static wr_status check_cfg(const lg_config *c)
{
    if (c->partitions < 1 || c->partitions > LG_MAX_PARTITIONS)
        return wr_err(WR_ERR_INVAL, "partitions must be in 1..%d, not %u", LG_MAX_PARTITIONS,
                      c->partitions);
    if (c->segment_bytes < 4096 || c->segment_bytes > (1ull << 31))
        return wr_err(WR_ERR_INVAL, "segment.bytes must be in 4096..2147483648");
    if (c->index_interval_bytes == 0)
        return wr_err(WR_ERR_INVAL, "index.interval.bytes must be >= 1");
    return WR_OK;
}

wr_status lg_topic_create(const char *root, const char *name, const lg_config *cfg)
{
    char tmp[4096], dir[4096], path[4200];
    wr_buf meta = {0};
    wr_status st;
    struct stat stb;

    if (!lg_name_valid(name))
        return wr_err(WR_ERR_INVAL,
                      "invalid topic name '%s': use 1..%d characters from [A-Za-z0-9._-]", name,
                      LG_TOPIC_NAME_MAX);
    WR_TRY(check_cfg(cfg));
    WR_TRY(wr_path(dir, sizeof(dir), "%s/%s", root, name));
    WR_TRY(wr_path(tmp, sizeof(tmp), "%s/.%s.creating", root, name));
    if (stat(dir, &stb) == 0)
        return wr_err(WR_ERR_EXISTS, "topic '%s' already exists in %s", name, root);
    WR_TRY(wr_mkdir_p(root));
    if (stat(tmp, &stb) == 0) { /* a crashed creation: start over */
        DIR *d = opendir(tmp);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            char sub[4400];
            if (de->d_name[0] == '.')
                continue;
            snprintf(sub, sizeof(sub), "%s/%s", tmp, de->d_name);
            if (unlink(sub) != 0 && errno == EISDIR) {
                DIR *d2 = opendir(sub);
                struct dirent *e2;
                while (d2 && (e2 = readdir(d2)) != NULL) {
                    char f[4700];
                    snprintf(f, sizeof(f), "%s/%s", sub, e2->d_name);
                    if (e2->d_name[0] != '.')
                        unlink(f);
                }
                if (d2)
                    closedir(d2);
                rmdir(sub);
            }
        }
        if (d)
            closedir(d);
        rmdir(tmp);
    }
    if (mkdir(tmp, 0755) != 0)
        return wr_err(wr_status_from_errno(errno), "%s: cannot create: %s", tmp, strerror(errno));
    for (uint32_t i = 0; i < cfg->partitions; i++) {
        WR_TRY(wr_path(path, sizeof(path), "%s/%05u", tmp, i));
        if (mkdir(path, 0755) != 0)
            return wr_err(wr_status_from_errno(errno), "%s: %s", path, strerror(errno));
        WR_TRY(wr_fsync_dir(path));
    }
    WR_TRY(wr_path(path, sizeof(path), "%s/groups", tmp));
    if (mkdir(path, 0755) != 0)
        return wr_err(wr_status_from_errno(errno), "%s: %s", path, strerror(errno));
    WR_TRY(wr_path(path, sizeof(path), "%s/pins", tmp));
    if (mkdir(path, 0755) != 0)
        return wr_err(wr_status_from_errno(errno), "%s: %s", path, strerror(errno));
    WR_TRY(lg_config_encode(cfg, &meta));
    WR_TRY(wr_path(path, sizeof(path), "%s/topic.meta", tmp));
    st = wr_file_write_atomic(path, meta.ptr, meta.len);
    wr_buf_fini(&meta);
    WR_TRY(st);
    WR_TRY(wr_fsync_dir(tmp));
    if (rename(tmp, dir) != 0)
        return wr_err(wr_status_from_errno(errno), "%s: rename into place: %s", dir,
                      strerror(errno));
    return wr_fsync_dir(root);
}

static wr_status take_lock(lg_topic *t)
{
    char path[4200], pid[32];
    int fd;
    ssize_t n;

    WR_TRY(wr_path(path, sizeof(path), "%s/LOCK", t->dir));
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return wr_err(wr_status_from_errno(errno), "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        close(fd);
        return wr_err(WR_ERR_BUSY,
                      "topic '%s' is open for writing by another process (pid %s, lock %s); "
                      "stop it, or open read-only",
                      t->name, pid[0] ? pid : "?", path);
    }
    n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        close(fd);
        return wr_err(WR_ERR_IO, "%s: cannot write the lock file", path);
    }
    t->lock_fd = fd;
    return WR_OK;
}

static void topic_free(lg_topic *t)
{
    if (t->parts) {
        for (uint32_t i = 0; i < t->cfg.partitions; i++)
            lg_part_close(t->parts[i], false);
        wr_free(t->parts);
    }
    if (t->lock_fd >= 0)
        close(t->lock_fd);
    wr_free(t->todo);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->idle_cv);
    pthread_mutex_destroy(&t->maint_mu);
    pthread_cond_destroy(&t->maint_cv);
    pthread_mutex_destroy(&t->compact_mu);
    wr_free(t);
}

wr_status lg_topic_open(const char *root, const char *name, const lg_open_opts *opts,
                        lg_topic **out)
{
    lg_topic *t;
    char path[4200];
    wr_buf meta = {0};
    wr_status st;

    *out = NULL;
    if (!lg_name_valid(name))
        return wr_err(WR_ERR_INVAL, "invalid topic name '%s'", name);
    if ((t = wr_calloc(1, sizeof(*t))) == NULL)
        return WR_ERR_NOMEM;
    t->lock_fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->idle_cv, NULL);
    pthread_mutex_init(&t->maint_mu, NULL);
    pthread_cond_init(&t->maint_cv, NULL);
    pthread_mutex_init(&t->compact_mu, NULL);
    if (opts)
        t->opts = *opts;
    if (t->opts.max_inflight_bytes == 0)
        t->opts.max_inflight_bytes = 64ull << 20;
    t->io = t->opts.io ? t->opts.io : lg_io_default();
    {
        const char *e = getenv("WEIR_DIO_MIN");
        t->dio_min = e && *e ? strtoull(e, NULL, 10) : (128u << 10);
    }
    snprintf(t->root, sizeof(t->root), "%s", root);
    snprintf(t->name, sizeof(t->name), "%s", name);
    if ((st = wr_path(t->dir, sizeof(t->dir), "%s/%s", root, name)) != WR_OK)
        goto err;
    if ((st = wr_path(path, sizeof(path), "%s/topic.meta", t->dir)) != WR_OK)
        goto err;
    if ((st = wr_file_read(path, &meta)) != WR_OK) {
        if (st == WR_ERR_NOTFOUND)
            st = wr_err(WR_ERR_NOTFOUND, "topic '%s' not found in %s", name, root);
        goto err;
    }
    st = lg_config_decode(meta.ptr, meta.len, &t->cfg);
    wr_buf_fini(&meta);
    if (st != WR_OK) {
        char why[300];
        snprintf(why, sizeof(why), "%s", wr_errmsg());
        st = wr_err(st, "%s/%s", t->dir, why);
        goto err;
    }
    if (!t->opts.readonly && (st = take_lock(t)) != WR_OK)
        goto err;
    if ((t->parts = wr_calloc(t->cfg.partitions, sizeof(*t->parts))) == NULL) {
        st = WR_ERR_NOMEM;
        goto err;
    }
    for (uint32_t i = 0; i < t->cfg.partitions; i++) {
        if ((st = lg_part_open(t, i, &t->parts[i])) != WR_OK) {
            char why[400];
            snprintf(why, sizeof(why), "%s", wr_errmsg());
            st = wr_err(st, "topic %s partition %u: %s", name, i, why);
            goto err;
        }
    }
    if (!t->opts.readonly) {
        if ((st = lg_writer_start(t)) != WR_OK)
            goto err;
        if (!t->opts.no_cleaner && (st = lg_maint_start(t)) != WR_OK)
            goto err_writer;
    }
    *out = t;
    return WR_OK;
err_writer:
    lg_writer_stop(t);
err:
    topic_free(t);
    return st;
}

void lg_topic_close(lg_topic *t)
{
    if (t == NULL)
        return;
    lg_maint_stop(t);
    lg_writer_stop(t);
    for (uint32_t i = 0; i < t->cfg.partitions; i++) {
        lg_part_close(t->parts[i], true);
        t->parts[i] = NULL;
    }
    topic_free(t);
}

wr_status lg_topic_list(const char *root, void (*fn)(void *ctx, const char *name), void *ctx)
{
    DIR *d = opendir(root);
    struct dirent *de;
    if (d == NULL)
        return wr_err(errno == ENOENT ? WR_ERR_NOTFOUND : WR_ERR_IO, "%s: cannot list: %s", root,
                      strerror(errno));
    while ((de = readdir(d)) != NULL) {
        char path[4400];
        struct stat stb;
        if (de->d_name[0] == '.' || !lg_name_valid(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s/topic.meta", root, de->d_name);
        if (stat(path, &stb) == 0)
            fn(ctx, de->d_name);
    }
    closedir(d);
    return WR_OK;
}

wr_status lg_partition_info_get(lg_topic *t, uint32_t partition, lg_partition_info *out)
{
    lg_part *p;
    memset(out, 0, sizeof(*out));
    if (partition >= t->cfg.partitions)
        return wr_err(WR_ERR_INVAL, "partition %u does not exist (topic %s has %u)", partition,
                      t->name, t->cfg.partitions);
    p = t->parts[partition];
    if (t->opts.readonly)
        lg_part_refresh_ro(p);
    out->low_watermark = lg_low_watermark(t, partition);
    pthread_mutex_lock(&p->mu);
    out->log_start_offset = p->segs[0]->base;
    out->high_watermark = atomic_load(&p->hw);
    for (size_t i = 0; i < p->seg_cnt; i++)
        out->bytes += atomic_load(&p->segs[i]->size);
    out->segments = (uint32_t)p->seg_cnt;
    out->failed = atomic_load(&p->failed);
    snprintf(out->failure, sizeof(out->failure), "%s", p->failure);
    out->cleaner = p->cleaner;
    out->cleaned_offset = p->cleaned_offset;
    out->cleaner_runs = p->cleaner_runs;
    out->cleaner_bytes_in = p->cleaner_in;
    out->cleaner_bytes_out = p->cleaner_out;
    snprintf(out->cleaner_error, sizeof(out->cleaner_error), "%s", p->cleaner_error);
    out->producers = (uint32_t)p->prods.cnt;
    pthread_mutex_unlock(&p->mu);
    out->dirty_ratio = lg_part_dirty_ratio(p);
    return WR_OK;
}

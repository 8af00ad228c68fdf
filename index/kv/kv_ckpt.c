/* kv_ckpt.c -- checkpoints (a consistent, openable copy of a store) and verify.
 *
 * Checkpoint: flush the memtable, pin the current version, hard-link every SST of it into the
 * new directory (copy when the directories are on different file systems), then write a fresh
 * MANIFEST holding that version and point CURRENT at it. SSTs are immutable, so a link is a
 * consistent copy; the pinned version keeps compaction from deleting a file before it is
 * linked. The copy has no WAL: it reflects exactly the writes flushed before the call (and,
 * under the engine, the applied offset recorded with that flush). The directory is complete
 * once CURRENT exists in it; a failed checkpoint removes what it created.
 *
 * Verify: every SST of the current version (kv_sst_verify: footer, every block checksum and
 * decoding, key order, index, filter, properties) and its size against the MANIFEST, then the
 * MANIFEST itself (replayed from CURRENT as an open would). Each problem is reported as one
 * line naming the file and the byte offset. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv_db.h"

/* Copy @src to @dst (a new file) and fdatasync it: the fallback when a link is impossible. */
static wr_status copy_file(const char *src, const char *dst)
{
    static const size_t chunk = 1u << 20;
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
    uint8_t *buf = NULL;
    wr_status st = WR_OK;
    if (in < 0)
        return wr_err(wr_status_from_errno(errno), "%s: %s", src, strerror(errno));
    if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        st = wr_err(wr_status_from_errno(errno), "%s: %s", dst, strerror(errno));
        goto out;
    }
    if ((buf = wr_malloc(chunk)) == NULL) {
        st = WR_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(in, buf, chunk);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            st = wr_err(wr_status_from_errno(errno), "%s: read: %s", src, strerror(errno));
            goto out;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                st = wr_err(wr_status_from_errno(errno), "%s: write: %s", dst, strerror(errno));
                goto out;
            }
            done += w;
        }
    }
    if (fdatasync(out) != 0)
        st = wr_err(wr_status_from_errno(errno), "%s: fdatasync: %s", dst, strerror(errno));
out:
    wr_free(buf);
    if (out >= 0)
        close(out);
    close(in);
    return st;
}

/* Remove what a failed checkpoint created in @dir, then @dir itself. */
static void ckpt_undo(const char *dir, const kv_version *v, uint64_t mnum)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/MANIFEST-%06" PRIu64, dir, mnum);
    unlink(path);
    for (int l = 0; l < KV_LEVELS; l++)
        for (size_t i = 0; i < v->cnt[l]; i++) {
            snprintf(path, sizeof(path), "%s/%06" PRIu64 ".sst", dir, v->files[l][i]->number);
            unlink(path);
        }
    rmdir(dir);
}

wr_status kv_checkpoint(kv_db *db, const char *dir)
{
    kv_manifest_state ms;
    kv_manifest *man = NULL;
    kv_version *v;
    uint64_t mnum;
    wr_status st = WR_OK;
    struct stat sb;

    if (stat(dir, &sb) == 0)
        return wr_err(WR_ERR_EXISTS, "checkpoint directory %s already exists: pick a new one", dir);
    WR_TRY(kv_flush(db));
    if (mkdir(dir, 0755) != 0)
        return wr_err(wr_status_from_errno(errno), "checkpoint directory %s: %s", dir,
                      strerror(errno));
    memset(&ms, 0, sizeof(ms));
    pthread_mutex_lock(&db->mu);
    v = db->cur;
    kv_version_ref(v);
    mnum = db->next_file;
    ms.next_file = mnum + 1;
    ms.last_seq = atomic_load(&db->seq);
    ms.applied = db->manifest_applied; /* recorded by the flush that produced v's files */
    pthread_mutex_unlock(&db->mu);

    for (int l = 0; l < KV_LEVELS && st == WR_OK; l++)
        for (size_t i = 0; i < v->cnt[l] && st == WR_OK; i++) {
            char src[4200], dst[4200];
            kv_file_path(db, src, sizeof(src), v->files[l][i]->number, "sst");
            snprintf(dst, sizeof(dst), "%s/%06" PRIu64 ".sst", dir, v->files[l][i]->number);
            if (link(src, dst) == 0)
                continue;
            if (errno == EXDEV || errno == EPERM || errno == EMLINK)
                st = copy_file(src, dst);
            else
                st = wr_err(wr_status_from_errno(errno), "checkpoint: link %s -> %s: %s", src, dst,
                            strerror(errno));
        }
    if (st == WR_OK)
        st = wr_fsync_dir(dir);
    if (st == WR_OK) {
        ms.version = v;
        st = kv_manifest_create(dir, mnum, &ms, &man); /* CURRENT last: the copy is complete */
        kv_manifest_close(man);
    }
    if (st != WR_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", wr_errmsg());
        ckpt_undo(dir, v, mnum);
        st = wr_err(st, "%s", msg);
    }
    kv_version_unref(v);
    return st;
}

typedef struct vfy_ctx {
    void (*report)(void *ctx, const char *line);
    void *ctx;
    unsigned problems;
} vfy_ctx;

static void vfy_line(vfy_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vfy_line(vfy_ctx *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->problems++;
    if (c->report)
        c->report(c->ctx, line);
}

static void vfy_sst(void *arg, wr_status st, uint64_t off, const char *msg)
{
    (void)st;
    vfy_line(arg, "%s (byte %" PRIu64 ")", msg, off);
}

wr_status kv_verify(kv_db *db, void (*report)(void *ctx, const char *line), void *ctx)
{
    vfy_ctx c = {report, ctx, 0};
    kv_manifest_state ms;
    kv_version *v;
    wr_status st;

    pthread_mutex_lock(&db->mu);
    v = db->cur;
    kv_version_ref(v); /* its files stay on disk while we read them */
    pthread_mutex_unlock(&db->mu);
    for (int l = 0; l < KV_LEVELS; l++)
        for (size_t i = 0; i < v->cnt[l]; i++) {
            const kv_fmeta *f = v->files[l][i];
            char path[4200];
            struct stat sb;
            kv_file_path(db, path, sizeof(path), f->number, "sst");
            if (stat(path, &sb) != 0) {
                vfy_line(&c, "%s: listed on level %d by the MANIFEST but cannot be read: %s", path,
                         l, strerror(errno));
                continue;
            }
            if ((uint64_t)sb.st_size != f->size)
                vfy_line(&c, "%s: %" PRIu64 " bytes, the MANIFEST says %" PRIu64, path,
                         (uint64_t)sb.st_size, f->size);
            WR_IGNORE(kv_sst_verify(path, vfy_sst, &c));
        }
    kv_version_unref(v);
    if ((st = kv_manifest_recover(db->dir, &ms)) == WR_OK)
        kv_manifest_state_fini(&ms);
    else
        vfy_line(&c, "%s", wr_errmsg());
    if (c.problems)
        return wr_err(WR_ERR_CORRUPT, "%s: %u problem%s found", db->dir, c.problems,
                      c.problems == 1 ? "" : "s");
    return WR_OK;
}

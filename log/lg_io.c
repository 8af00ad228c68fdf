/* lg_io.c -- the real I/O vtable: writes and fdatasyncs go to the calling thread's io_uring
 * in one submission (write linked to its sync), the rest are plain syscalls.
 * A test swaps in another lg_io to fail the Nth operation (tests/logfault/lg_faultio.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lg_int.h"

#define LG_IO_BATCH 64 /* ops per submission; each takes at most two SQEs */

static void fallback_op(lg_io_op *op)
{
    size_t done = 0;
    while (done < op->len) {
        ssize_t n = pwrite(op->fd, (const uint8_t *)op->buf + done, op->len - done,
                           (off_t)(op->off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            op->err = errno;
            return;
        }
        done += (size_t)n;
    }
    if (op->sync && fdatasync(op->fd) != 0)
        op->err = errno;
}

/* Short writes are continued synchronously: they are rare (a signal, a nearly full disk)
 * and the next write would fail with ENOSPC anyway. */
static void finish_short(lg_io_op *op, size_t done)
{
    lg_io_op rest = *op;
    rest.buf = (const uint8_t *)op->buf + done;
    rest.len = op->len - done;
    rest.off = op->off + done;
    rest.err = 0;
    fallback_op(&rest);
    op->err = rest.err;
}

static void real_submit(void *ctx, lg_io_op *ops, size_t n)
{
    wr_ring *r = wr_ring_thread();
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        ops[i].err = 0;
    if (r == NULL) {
        for (size_t i = 0; i < n; i++)
            fallback_op(&ops[i]);
        return;
    }
    for (size_t base = 0; base < n; base += LG_IO_BATCH) {
        size_t cnt = n - base < LG_IO_BATCH ? n - base : LG_IO_BATCH, want = 0;
        wr_cqe cq[2 * LG_IO_BATCH];
        bool short_w[LG_IO_BATCH] = {false};
        size_t wdone[LG_IO_BATCH] = {0};
        for (size_t i = 0; i < cnt; i++) {
            lg_io_op *op = &ops[base + i];
            /* tag: index * 2 + (0 write, 1 sync) */
            if (op->len) {
                if (wr_ring_write(r, op->fd, op->buf, op->len, op->off, op->sync ? WR_RING_LINK : 0,
                                  i * 2) != WR_OK) {
                    op->err = EAGAIN;
                    continue;
                }
                want++;
            }
            if (op->sync) {
                if (wr_ring_fdatasync(r, op->fd, 0, i * 2 + 1) != WR_OK) {
                    op->err = EAGAIN;
                    continue;
                }
                want++;
            }
        }
        if (wr_ring_submit(r, (unsigned)want) != WR_OK) {
            /* The ring itself failed: nothing can be trusted, fail every op. */
            for (size_t i = 0; i < cnt; i++)
                ops[base + i].err = EIO;
            return;
        }
        for (size_t got = 0; got < want;) {
            unsigned k = wr_ring_reap(r, cq, (unsigned)(want - got));
            if (k == 0) {
                if (wr_ring_submit(r, 1) != WR_OK)
                    break;
                continue;
            }
            for (unsigned j = 0; j < k; j++) {
                size_t i = cq[j].tag / 2;
                lg_io_op *op = &ops[base + i];
                if (cq[j].tag % 2 == 0) {
                    if (cq[j].res < 0) {
                        op->err = -cq[j].res;
                    } else if ((size_t)cq[j].res < op->len) {
                        short_w[i] = true;
                        wdone[i] = (size_t)cq[j].res;
                    }
                } else if (cq[j].res < 0 && op->err == 0) {
                    /* -ECANCELED after a short write: finish_short() syncs. */
                    if (!(cq[j].res == -ECANCELED && short_w[i]))
                        op->err = -cq[j].res;
                }
            }
            got += k;
        }
        for (size_t i = 0; i < cnt; i++)
            if (short_w[i] && ops[base + i].err == 0)
                finish_short(&ops[base + i], wdone[i]);
    }
}

static int real_open(void *ctx, const char *path, int flags, unsigned mode)
{
    int fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
    (void)ctx;
    return fd < 0 ? -errno : fd;
}

static int real_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd) < 0 ? -errno : 0;
}

static int64_t real_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    (void)ctx;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (int64_t)done;
}

static int real_ftruncate(void *ctx, int fd, uint64_t len)
{
    (void)ctx;
    return ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}

static int real_fsync(void *ctx, int fd)
{
    (void)ctx;
    return fsync(fd) < 0 ? -errno : 0;
}

static int real_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) < 0 ? -errno : 0;
}

static int real_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) < 0 ? -errno : 0;
}

static int real_fsync_dir(void *ctx, const char *path)
{
    (void)ctx;
    return wr_fsync_dir(path) == WR_OK ? 0 : -EIO;
}

static const lg_io lg_io_real = {
    .ctx = NULL,
    .submit = real_submit,
    .open = real_open,
    .close = real_close,
    .pread = real_pread,
    .ftruncate = real_ftruncate,
    .fsync = real_fsync,
    .rename = real_rename,
    .unlink = real_unlink,
    .fsync_dir = real_fsync_dir,
};

const lg_io *lg_io_default(void)
{
    return &lg_io_real;
}

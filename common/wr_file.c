/* wr_file.c -- file-system helpers: mkdir -p, directory fsync, atomic replace, whole-file
 * read, and a snprintf for paths that refuses to truncate.
 *
 * Atomic replace protocol (wr_file_write_atomic), each step's failure undoes the earlier ones:
 *
 *   1. open "<path>.tmp" O_CREAT|O_TRUNC      (a stale tmp from a crash is overwritten)
 *   2. write all bytes, fsync the tmp file    (data durable before it gets the name)
 *   3. rename "<path>.tmp" -> "<path>"        (atomic: readers see old or new, never a mix)
 *   4. fsync the parent directory             (the rename itself durable)
 *
 * Fault hook (wr_fault_set, for tests): every write-side operation here asks the hook first
 * (wr_int.h) and, when it injects an errno, takes the same error path as a failed syscall.
 *
 * Invariants: (1) every failure sets wr_err() naming the path and strerror(errno); (2) no
 * file descriptor leaks on any path; (3) paths are built with wr_path(), never cut short;
 * (4) no write, sync, create or rename bypasses the fault hook. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wr.h"
#include "wr_int.h"

_Atomic(wr_fault_fn) wr_fault_hook;
static _Atomic(void *) wr_fault_ctx;

void wr_fault_set(wr_fault_fn fn, void *ctx)
{
    atomic_store_explicit(&wr_fault_ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&wr_fault_hook, fn, memory_order_release);
}

int wr_fault_call(wr_fault_op op, const char *path, const char *path2, int fd, uint64_t off,
                  size_t *len_inout)
{
    wr_fault_fn fn = atomic_load_explicit(&wr_fault_hook, memory_order_acquire);
    wr_fault_io io = {op, path, path2, fd, off, len_inout ? *len_inout : 0};
    int e;

    if (fn == NULL)
        return 0; /* removed since the caller looked */
    e = fn(atomic_load_explicit(&wr_fault_ctx, memory_order_relaxed), &io);
    if (e != 0 && len_inout != NULL && io.len < *len_inout)
        *len_inout = io.len;
    return e;
}

static wr_status wr_file_errno(const char *what, const char *path, int err)
{
    return wr_err(wr_status_from_errno(err), "%s %s: %s", what, path, strerror(err));
}

wr_status wr_path(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            dst[0] = '\0'; /* a cut path must not be used by accident */
        return wr_err(WR_ERR_INVAL, "path too long: needs %d bytes, buffer holds %zu (format %s)",
                      n + 1, cap, fmt);
    }
    return WR_OK;
}

wr_status wr_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    struct stat st;
    size_t n;

    if (path[0] == '\0')
        return wr_err(WR_ERR_INVAL, "mkdir: empty path");
    WR_TRY(wr_path(buf, sizeof buf, "%s", path));
    n = strlen(buf);
    /* create each prefix that ends before a '/', then the full path */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue; /* "a//b" */
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return wr_file_errno("mkdir", buf, errno);
        if (i < n)
            buf[i] = '/';
    }
    if (stat(path, &st) != 0)
        return wr_file_errno("stat", path, errno);
    if (!S_ISDIR(st.st_mode))
        return wr_err(WR_ERR_EXISTS, "mkdir %s: exists and is not a directory", path);
    return WR_OK;
}

/* pwrite until @n bytes are written or an error (*err_out; 0 bytes written is ENOSPC).
 * Returns the bytes written. */
static size_t wr_pwrite_raw(int fd, const uint8_t *p, size_t n, uint64_t off, int *err_out)
{
    size_t done = 0;

    *err_out = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, p + done, n - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *err_out = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    return done;
}

wr_status wr_file_create(const char *path, int *fd_out)
{
    int fd, err;

    *fd_out = -1;
    if ((err = wr_fault_hit(WR_FAULT_OPEN, path, NULL, -1, 0, NULL)) != 0)
        return wr_file_errno("create", path, err);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return wr_file_errno("create", path, errno);
    *fd_out = fd;
    return WR_OK;
}

wr_status wr_pwrite_all(int fd, const void *p, size_t n, uint64_t off, const char *path)
{
    size_t len = n, done;
    int err, ign;

    if ((err = wr_fault_hit(WR_FAULT_WRITE, path, NULL, fd, off, &len)) != 0)
        done = len < n ? wr_pwrite_raw(fd, p, len, off, &ign) : 0; /* the hook's torn prefix */
    else
        done = wr_pwrite_raw(fd, p, n, off, &err);
    if (err == 0)
        return WR_OK;
    return wr_err(wr_status_from_errno(err), "write %s: %zu bytes at offset %llu: %s", path,
                  n - done, (unsigned long long)(off + done), strerror(err));
}

wr_status wr_fdatasync(int fd, const char *path)
{
    int err = wr_fault_hit(WR_FAULT_SYNC, path, NULL, fd, 0, NULL);

    if (err == 0 && fdatasync(fd) != 0)
        err = errno;
    return err == 0 ? WR_OK : wr_file_errno("fdatasync", path, err);
}

wr_status wr_fsync_dir(const char *path)
{
    int fd, err;

    if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return wr_file_errno("open directory", path, errno);
    if ((err = wr_fault_hit(WR_FAULT_SYNC_DIR, path, NULL, -1, 0, NULL)) != 0 || fsync(fd) != 0) {
        if (err == 0)
            err = errno;
        close(fd);
        return wr_file_errno("fsync directory", path, err);
    }
    close(fd);
    return WR_OK;
}

/* The directory holding @path: "a/b/c" -> "a/b", "c" -> ".", "/c" -> "/". */
static wr_status wr_parent_dir(const char *path, char *dst, size_t cap)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return wr_path(dst, cap, ".");
    if (slash == path)
        return wr_path(dst, cap, "/");
    return wr_path(dst, cap, "%.*s", (int)(slash - path), path);
}

wr_status wr_file_write_atomic(const char *path, const void *p, size_t n)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    wr_status rc;
    int fd, err;

    WR_TRY(wr_path(tmp, sizeof tmp, "%s.tmp", path));
    WR_TRY(wr_parent_dir(path, dir, sizeof dir));
    if ((err = wr_fault_hit(WR_FAULT_OPEN, tmp, NULL, -1, 0, NULL)) != 0)
        return wr_file_errno("create", tmp, err);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        return wr_file_errno("create", tmp, errno);
    if ((rc = wr_pwrite_all(fd, p, n, 0, tmp)) != WR_OK)
        goto err_close_tmp;
    if ((err = wr_fault_hit(WR_FAULT_SYNC, tmp, NULL, fd, 0, NULL)) != 0 || fsync(fd) != 0) {
        rc = wr_file_errno("fsync", tmp, err != 0 ? err : errno);
        goto err_close_tmp;
    }
    if (close(fd) != 0) {
        rc = wr_file_errno("close", tmp, errno);
        goto err_unlink_tmp;
    }
    if ((err = wr_fault_hit(WR_FAULT_RENAME, tmp, path, -1, 0, NULL)) != 0 ||
        rename(tmp, path) != 0) {
        if (err == 0)
            err = errno;
        rc = wr_err(wr_status_from_errno(err), "rename %s -> %s: %s", tmp, path, strerror(err));
        goto err_unlink_tmp;
    }
    return wr_fsync_dir(dir);
err_close_tmp:
    close(fd);
err_unlink_tmp:
    unlink(tmp);
    return rc;
}

wr_status wr_file_read(const char *path, wr_buf *out)
{
    struct stat st;
    wr_status rc;
    int fd;

    out->len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return wr_file_errno("open", path, errno);
    if (fstat(fd, &st) != 0) {
        rc = wr_file_errno("fstat", path, errno);
        goto err_close;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = wr_err(WR_ERR_INVAL, "read %s: is a directory", path);
        goto err_close;
    }
    /* st_size is a hint only: the file may grow, and /proc files report 0 */
    if ((rc = wr_buf_reserve(out, st.st_size > 0 ? (size_t)st.st_size + 1 : 4096)) != WR_OK)
        goto err_grow;
    for (;;) {
        ssize_t k;

        if (out->cap - out->len < 1024 && (rc = wr_buf_reserve(out, out->cap)) != WR_OK)
            goto err_grow;
        k = read(fd, out->ptr + out->len, out->cap - out->len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = wr_file_errno("read", path, errno);
            goto err_close;
        }
        if (k == 0)
            break;
        out->len += (size_t)k;
    }
    close(fd);
    return WR_OK;
err_grow:
    rc = wr_err(rc, "read %s: %s", path, wr_errmsg());
err_close:
    close(fd);
    out->len = 0;
    return rc;
}

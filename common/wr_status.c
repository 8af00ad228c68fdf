/* wr_status.c -- status names, the single errno -> wr_status mapping, the thread-local error
 * detail behind wr_err()/wr_errmsg(), and the corruption and verify hooks.
 *
 * Invariants: (1) wr_status_from_errno() is the only place errno becomes a status; (2) the
 * error detail is per thread and always NUL-terminated; (3) wr_err() preserves errno, so a
 * caller may format strerror(errno) and still inspect errno afterwards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "wr.h"

#define WR_ERRMSG_MAX 512

static _Thread_local char wr_errbuf[WR_ERRMSG_MAX];

const char *wr_status_str(wr_status s)
{
    switch (s) {
    case WR_OK:
        return "ok";
    case WR_EOF:
        return "eof";
    case WR_AGAIN:
        return "again";
    case WR_ERR_INVAL:
        return "inval";
    case WR_ERR_NOMEM:
        return "nomem";
    case WR_ERR_IO:
        return "io";
    case WR_ERR_CORRUPT:
        return "corrupt";
    case WR_ERR_NOTFOUND:
        return "notfound";
    case WR_ERR_FULL:
        return "full";
    case WR_ERR_FAILED:
        return "failed";
    case WR_ERR_EXISTS:
        return "exists";
    case WR_ERR_BUSY:
        return "busy";
    case WR_ERR_SEQUENCE:
        return "sequence";
    case WR_ERR_FENCED:
        return "fenced";
    case WR_ERR_TOOBIG:
        return "toobig";
    case WR_ERR_UNSUPPORTED:
        return "unsupported";
    case WR_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

/* Accepts both errno and -errno, because io_uring completions carry the negative form. */
wr_status wr_status_from_errno(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return WR_OK;
    case ENOMEM:
        return WR_ERR_NOMEM;
    case ENOENT:
    case ENOTDIR:
        return WR_ERR_NOTFOUND;
    case EEXIST:
    case ENOTEMPTY:
        return WR_ERR_EXISTS;
    case EAGAIN:
    case EINTR:
        return WR_AGAIN;
    case EINVAL:
    case EBADF:
    case EFAULT:
    case ENAMETOOLONG:
    case EISDIR:
    case ERANGE:
        return WR_ERR_INVAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case EMFILE:
    case ENFILE:
        return WR_ERR_FULL;
    case E2BIG:
    case EMSGSIZE:
    case EOVERFLOW:
        return WR_ERR_TOOBIG;
    case EBUSY:
    case ETXTBSY:
    case EDEADLK:
        return WR_ERR_BUSY;
    case ENOSYS:
    case EOPNOTSUPP:
        return WR_ERR_UNSUPPORTED;
    default:
        return WR_ERR_IO; /* EIO, EACCES, EPERM, ECANCELED, ... */
    }
}

wr_status wr_err(wr_status s, const char *fmt, ...)
{
    char tmp[WR_ERRMSG_MAX];
    int saved = errno;
    va_list ap;

    /* Format into a temporary first: the arguments may point into wr_errbuf itself
     * (wr_err(s, "%s: %s", path, wr_errmsg()) is a natural way to add context). */
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        tmp[0] = '\0';
    memcpy(wr_errbuf, tmp, sizeof tmp);
    errno = saved;
    return s;
}

const char *wr_errmsg(void)
{
    return wr_errbuf;
}

void wr_err_clear(void)
{
    wr_errbuf[0] = '\0';
}

wr_status wr_corrupt_at(const char *file, int line)
{
    WR_LOGW("corrupt at %s:%d", file, line);
    return wr_err(WR_ERR_CORRUPT, "corrupt data detected at %s:%d", file, line);
}

void wr_verify_fail(const char *expr, const char *file, int line)
{
    WR_LOGE("verify failed: %s at %s:%d", expr, file, line);
    abort();
}

/* wr_bytes.c -- byte-view ordering and the growable wr_buf.
 *
 * Invariants: (1) a zero-initialised wr_buf is empty and valid; (2) len <= cap, and ptr is
 * NULL only when cap == 0; (3) capacity grows by doubling (from 64 bytes), so appends are
 * amortised O(1); (4) a failed reserve or append leaves the buffer exactly as it was. */
#include <stdint.h>

#include "wr.h"

#define WR_BUF_MIN_CAP 64

int wr_bytes_cmp(wr_bytes a, wr_bytes b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;

    if (c != 0)
        return c < 0 ? -1 : 1;
    if (a.len == b.len)
        return 0;
    return a.len < b.len ? -1 : 1;
}

wr_status wr_buf_reserve(wr_buf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;

    if (extra > SIZE_MAX - b->len)
        return wr_err(WR_ERR_TOOBIG, "wr_buf: %zu + %zu bytes overflows size_t", b->len, extra);
    need = b->len + extra;
    if (need <= b->cap)
        return WR_OK;
    cap = b->cap ? b->cap : WR_BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if ((p = wr_realloc(b->ptr, cap)) == NULL)
        return wr_err(WR_ERR_NOMEM, "wr_buf: out of memory growing %zu -> %zu bytes", b->cap, cap);
    b->ptr = p;
    b->cap = cap;
    return WR_OK;
}

wr_status wr_buf_append(wr_buf *b, const void *p, size_t n)
{
    const uint8_t *src = p;
    bool inside;
    size_t at = 0;

    if (n == 0)
        return WR_OK;
    /* Appending a slice of the buffer to itself must survive the realloc below. */
    inside = b->ptr != NULL && (uintptr_t)src >= (uintptr_t)b->ptr &&
             (uintptr_t)src < (uintptr_t)b->ptr + b->len;
    if (inside)
        at = (size_t)((uintptr_t)src - (uintptr_t)b->ptr);
    WR_TRY(wr_buf_reserve(b, n));
    if (inside)
        src = b->ptr + at;
    memmove(b->ptr + b->len, src, n);
    b->len += n;
    return WR_OK;
}

void wr_buf_fini(wr_buf *b)
{
    if (b == NULL)
        return;
    wr_free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

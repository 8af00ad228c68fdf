/* wr_alloc.c -- the one allocator: libc malloc behind a counter and a fail-at-Nth test hook.
 *
 * Invariants: (1) every allocation attempt (malloc, calloc, realloc, strdup) increments
 * wr_alloc_count(), including attempts the hook fails; (2) when the hook is armed at N, the
 * attempt numbered N returns NULL, and so does every later one while sticky; (3) a failed
 * wr_realloc() leaves the old block untouched, as realloc() does; (4) a zero-byte request
 * returns a unique non-NULL block, so NULL always means out of memory. */
#include <stdatomic.h>
#include <stdlib.h>

#include "wr.h"

static atomic_uint_fast64_t wr_alloc_cnt;
static atomic_uint_fast64_t wr_alloc_fail_nth; /* absolute attempt number; 0 = disarmed */
static atomic_bool wr_alloc_fail_sticky;

/* Counts the attempt; returns true when the hook says this one must fail. */
static bool wr_alloc_should_fail(size_t n)
{
    uint64_t k = (uint64_t)atomic_fetch_add(&wr_alloc_cnt, 1) + 1;
    uint64_t f = (uint64_t)atomic_load(&wr_alloc_fail_nth);

    if (f == 0 || k < f)
        return false;
    if (k == f || atomic_load(&wr_alloc_fail_sticky)) {
        WR_IGNORE(wr_err(WR_ERR_NOMEM, "out of memory allocating %zu bytes (injected failure)", n));
        return true;
    }
    return false;
}

static void *wr_alloc_null(size_t n)
{
    WR_IGNORE(wr_err(WR_ERR_NOMEM, "out of memory allocating %zu bytes", n));
    return NULL;
}

void *wr_malloc(size_t n)
{
    void *p;

    if (wr_alloc_should_fail(n))
        return NULL;
    if ((p = malloc(n ? n : 1)) == NULL)
        return wr_alloc_null(n);
    return p;
}

void *wr_calloc(size_t cnt, size_t n)
{
    void *p;

    if (wr_alloc_should_fail(cnt * n))
        return NULL;
    if (cnt == 0 || n == 0)
        cnt = n = 1;
    if ((p = calloc(cnt, n)) == NULL) /* calloc checks cnt * n for overflow */
        return wr_alloc_null(cnt * n);
    return p;
}

void *wr_realloc(void *p, size_t n)
{
    void *q;

    if (wr_alloc_should_fail(n))
        return NULL;
    /* realloc(p, 0) may free p and return NULL; keep NULL meaning failure only */
    if ((q = realloc(p, n ? n : 1)) == NULL)
        return wr_alloc_null(n);
    return q;
}

void wr_free(void *p)
{
    free(p);
}

char *wr_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = wr_malloc(n);

    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void wr_alloc_fail_at(uint64_t nth, bool sticky)
{
    uint64_t now = (uint64_t)atomic_load(&wr_alloc_cnt);

    atomic_store(&wr_alloc_fail_sticky, sticky);
    atomic_store(&wr_alloc_fail_nth, nth ? now + nth : 0);
}

uint64_t wr_alloc_count(void)
{
    return (uint64_t)atomic_load(&wr_alloc_cnt);
}

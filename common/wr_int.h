/* wr_int.h -- common/'s private declarations (never included outside common/): the fast path
 * of the fault hook (wr_fault_set() in wr.h), shared by wr_file.c and wr_ring.c.
 *
 * Invariant: with no hook installed, a hooked operation costs one relaxed atomic load and a
 * branch; the arguments are only looked at by the out-of-line wr_fault_call(). */
#ifndef WEIR_WR_INT_H
#define WEIR_WR_INT_H

#include <stdatomic.h>

#include "wr.h"

extern _Atomic(wr_fault_fn) wr_fault_hook; /* wr_file.c; NULL when no hook is installed */

/* Ask the hook about one operation: 0 or the errno to inject. @len_inout (WRITE only, else
 * NULL) may come back lowered: the bytes to write before failing. */
int wr_fault_call(wr_fault_op op, const char *path, const char *path2, int fd, uint64_t off,
                  size_t *len_inout);

static inline bool wr_fault_armed(void)
{
    return atomic_load_explicit(&wr_fault_hook, memory_order_relaxed) != NULL;
}

static inline int wr_fault_hit(wr_fault_op op, const char *path, const char *path2, int fd,
                               uint64_t off, size_t *len_inout)
{
    return wr_fault_armed() ? wr_fault_call(op, path, path2, fd, off, len_inout) : 0;
}

#endif

/* wr_ring.c -- the io_uring wrapper, with a synchronous fallback that keeps the semantics.
 *
 * Every queued op takes one slot in r->ops[] from a free list; the slot index is the SQE's
 * user_data, and the slot keeps the caller's tag, so tags may use all 64 bits. A slot stays
 * taken until its completion is reaped, which gives the sizing argument:
 *
 *   queued + submitted-not-reaped = r->used <= depth      (slots)
 *   completions waiting in r->cq  <= r->used <= depth     (so r->cq never overflows)
 *   kernel CQ ring = 2 * depth    >= in-flight SQEs       (so the kernel never drops a CQE)
 *
 * Op life cycle (function behind each transition):
 *
 *   FREE --wr_ring_write/read/fdatasync--> QUEUED --wr_ring_submit--> SUBMITTED
 *   SUBMITTED --ring_collect--> COMPLETE (index pushed on r->cq, or op->done for internal ops)
 *   COMPLETE --wr_ring_reap (or the *_all helper for internal ops)--> FREE
 *
 * Fallback mode (no io_uring, or $WEIR_NO_URING set to anything but "" or "0", a test hook):
 * ops are queued in r->sq and run in order at submit time with pwrite/pread/fdatasync. As in
 * the kernel, a read or write that returns less than asked, or an op that fails, breaks its
 * link chain: every later op of the chain completes with -ECANCELED. A chain ends at the
 * first op without WR_RING_LINK or at the end of the submitted batch. Ops run one at a time,
 * so WR_RING_DRAIN holds trivially.
 *
 * Invariants: (1) n_reaped <= n_completed <= n_submitted, and every submitted op completes
 * exactly once; (2) internal ops (issued by wr_ring_pwrite_all/pread_all) are never handed
 * to wr_ring_reap(); (3) after an io_uring_enter error other than EINTR the ring is FAILED
 * (sticky) because the kernel's view of the queue is unknown.
 *
 * Fault hook (wr_fault_set, tests only): while one is installed, wr_ring_pwrite_all asks it
 * before each write and before the sync, and queues the sync on its own after the write
 * completed (not linked), so the hook sees the sync once the bytes it covers are written. An
 * injected errno takes the same error path as a failed op. No hook: one relaxed load. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "wr.h"
#include "wr_int.h"

#define WR_RING_RW_MAX     0x7ffff000u /* the kernel's MAX_RW_COUNT: results fit in int32 */
#define WR_RING_DEPTH_MAX  32768u      /* IORING_MAX_ENTRIES */
#define WR_RING_THREAD_DEP 256u
#define WR_SLOT_NONE       UINT32_MAX

enum wr_opcode { WR_OP_WRITE, WR_OP_READ, WR_OP_FDATASYNC };

typedef struct wr_op {
    uint64_t tag;
    void *buf; /* borrowed from the caller until the completion is reaped */
    size_t len;
    uint64_t off;
    int fd;
    int32_t res;
    uint8_t opcode;
    uint8_t flags;
    bool internal; /* issued by a *_all helper: its completion never reaches wr_ring_reap */
    bool done;     /* internal op completed; res is valid */
    uint32_t next_free;
} wr_op;

struct wr_ring {
    struct io_uring ring; /* valid when uring */
    bool uring;
    bool failed;
    unsigned depth;
    wr_op *ops;         /* owned: depth slots */
    uint32_t free_head; /* slot free list */
    unsigned used;      /* slots taken: queued, in flight, or completed and not reaped */
    uint32_t *sq;       /* owned, fallback only: queued slot indices in order */
    unsigned queued;    /* prepared, not yet submitted */
    uint32_t *cq;       /* owned: completed user slots, circular, depth entries */
    unsigned cq_head, cq_cnt;
    uint64_t n_submitted, n_completed, n_reaped;
    pid_t pid; /* the process that created it: a forked child must not touch it */
};

/* ------------------------------------------------------------------ probing */

static bool wr_uring_ok;
static pthread_once_t wr_uring_probe_once = PTHREAD_ONCE_INIT;

static void wr_uring_probe(void)
{
    struct io_uring ring;

    if (io_uring_queue_init(2, &ring, 0) == 0) {
        wr_uring_ok = true;
        io_uring_queue_exit(&ring);
    }
}

bool wr_uring_supported(void)
{
    pthread_once(&wr_uring_probe_once, wr_uring_probe);
    return wr_uring_ok;
}

static bool wr_ring_forced_fallback(void)
{
    const char *e = getenv("WEIR_NO_URING");

    return e != NULL && e[0] != '\0' && strcmp(e, "0") != 0;
}

/* ------------------------------------------------------------------ life cycle */

wr_status wr_ring_init(unsigned depth, wr_ring **out)
{
    wr_ring *r;
    int rc;

    *out = NULL;
    if (depth == 0 || depth > WR_RING_DEPTH_MAX)
        return wr_err(WR_ERR_INVAL, "wr_ring_init: depth %u out of range 1..%u", depth,
                      WR_RING_DEPTH_MAX);
    if ((r = wr_calloc(1, sizeof(*r))) == NULL)
        return wr_err(WR_ERR_NOMEM, "wr_ring_init: out of memory for the ring");
    r->depth = depth;
    r->pid = getpid();
    if ((r->ops = wr_calloc(depth, sizeof(*r->ops))) == NULL)
        goto err_free_ring;
    if ((r->sq = wr_calloc(depth, sizeof(*r->sq))) == NULL)
        goto err_free_ops;
    if ((r->cq = wr_calloc(depth, sizeof(*r->cq))) == NULL)
        goto err_free_sq;
    for (uint32_t i = 0; i < depth; i++)
        r->ops[i].next_free = i + 1 < depth ? i + 1 : WR_SLOT_NONE;
    r->free_head = 0;

    if (!wr_ring_forced_fallback()) {
        rc = io_uring_queue_init(depth, &r->ring, 0);
        if (rc == 0)
            r->uring = true;
        else
            WR_LOGI("io_uring_queue_init(%u): %s; using the synchronous fallback", depth,
                    strerror(-rc));
    }
    *out = r;
    return WR_OK;
err_free_sq:
    wr_free(r->sq);
err_free_ops:
    wr_free(r->ops);
err_free_ring:
    wr_free(r);
    return wr_err(WR_ERR_NOMEM, "wr_ring_init: out of memory for %u slots", depth);
}

static void wr_ring_collect(wr_ring *r);

/* Queued ops that were never submitted are dropped; submitted ones are waited for, because
 * the kernel may still read or fill their buffers. */
void wr_ring_destroy(wr_ring *r)
{
    if (r == NULL)
        return;
    if (r->uring) {
        while (r->n_completed < r->n_submitted) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&r->ring, &cqe);
            if (rc == -EINTR)
                continue;
            if (rc < 0) {
                WR_LOGE("wr_ring_destroy: io_uring_wait_cqe: %s; %llu ops still in flight",
                        strerror(-rc), (unsigned long long)(r->n_submitted - r->n_completed));
                break;
            }
            wr_ring_collect(r);
        }
        io_uring_queue_exit(&r->ring);
    }
    wr_free(r->cq);
    wr_free(r->sq);
    wr_free(r->ops);
    wr_free(r);
}

static pthread_key_t wr_ring_key;
static pthread_once_t wr_ring_key_once = PTHREAD_ONCE_INIT;

static void wr_ring_key_destroy(void *p)
{
    wr_ring_destroy(p);
}

static void wr_ring_key_init(void)
{
    WR_VERIFY(pthread_key_create(&wr_ring_key, wr_ring_key_destroy) == 0);
}

wr_ring *wr_ring_thread(void)
{
    wr_ring *r;

    pthread_once(&wr_ring_key_once, wr_ring_key_init);
    if ((r = pthread_getspecific(wr_ring_key)) != NULL) {
        if (r->pid == getpid())
            return r;
        /* A forked child inherited its parent's ring: the submission and completion queues
         * are memory shared with the parent, so using (or even tearing down) them here would
         * corrupt the parent's ring. Leak the inherited copy and start a ring of our own. */
        pthread_setspecific(wr_ring_key, NULL);
    }
    if (wr_ring_init(WR_RING_THREAD_DEP, &r) != WR_OK)
        return NULL;
    if (pthread_setspecific(wr_ring_key, r) != 0) {
        wr_ring_destroy(r);
        WR_IGNORE(wr_err(WR_ERR_NOMEM, "wr_ring_thread: pthread_setspecific failed"));
        return NULL;
    }
    return r;
}

bool wr_ring_is_uring(const wr_ring *r)
{
    return r->uring;
}

unsigned wr_ring_inflight(const wr_ring *r)
{
    return r->used;
}

/* ------------------------------------------------------------------ queueing */

static void wr_ring_slot_free(wr_ring *r, uint32_t idx)
{
    r->ops[idx].next_free = r->free_head;
    r->free_head = idx;
    r->used--;
}

static wr_status wr_ring_queue(wr_ring *r, uint8_t opcode, int fd, void *buf, size_t len,
                               uint64_t off, unsigned flags, uint64_t tag, bool internal,
                               uint32_t *slot_out)
{
    struct io_uring_sqe *sqe = NULL;
    uint32_t idx;
    wr_op *op;

    if (r->failed)
        return wr_err(WR_ERR_FAILED, "wr_ring: failed earlier; destroy it");
    if (flags & ~(unsigned)(WR_RING_LINK | WR_RING_DRAIN))
        return wr_err(WR_ERR_INVAL, "wr_ring: unknown flags 0x%x", flags);
    if (r->free_head == WR_SLOT_NONE)
        return WR_AGAIN;
    if (r->uring && (sqe = io_uring_get_sqe(&r->ring)) == NULL)
        return WR_AGAIN; /* unreachable while queued <= used <= depth, kept for safety */
    if (len > WR_RING_RW_MAX)
        len = WR_RING_RW_MAX; /* a short transfer, as the kernel would do */

    idx = r->free_head;
    op = &r->ops[idx];
    r->free_head = op->next_free;
    r->used++;
    *op = (wr_op){.tag = tag,
                  .buf = buf,
                  .len = len,
                  .off = off,
                  .fd = fd,
                  .opcode = opcode,
                  .flags = (uint8_t)flags,
                  .internal = internal,
                  .next_free = WR_SLOT_NONE};
    if (sqe != NULL) {
        switch (opcode) {
        case WR_OP_WRITE:
            io_uring_prep_write(sqe, fd, buf, (unsigned)len, off);
            break;
        case WR_OP_READ:
            io_uring_prep_read(sqe, fd, buf, (unsigned)len, off);
            break;
        default:
            io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
            break;
        }
        io_uring_sqe_set_data64(sqe, idx);
        io_uring_sqe_set_flags(sqe, ((flags & WR_RING_LINK) ? IOSQE_IO_LINK : 0u) |
                                        ((flags & WR_RING_DRAIN) ? IOSQE_IO_DRAIN : 0u));
    } else {
        r->sq[r->queued] = idx;
    }
    r->queued++;
    if (slot_out != NULL)
        *slot_out = idx;
    return WR_OK;
}

wr_status wr_ring_write(wr_ring *r, int fd, const void *buf, size_t len, uint64_t off,
                        unsigned flags, uint64_t tag)
{
    /* The kernel only reads from buf; the slot is shared with reads, hence the cast. */
    return wr_ring_queue(r, WR_OP_WRITE, fd, (void *)(uintptr_t)buf, len, off, flags, tag, false,
                         NULL);
}

wr_status wr_ring_read(wr_ring *r, int fd, void *buf, size_t len, uint64_t off, unsigned flags,
                       uint64_t tag)
{
    return wr_ring_queue(r, WR_OP_READ, fd, buf, len, off, flags, tag, false, NULL);
}

wr_status wr_ring_fdatasync(wr_ring *r, int fd, unsigned flags, uint64_t tag)
{
    return wr_ring_queue(r, WR_OP_FDATASYNC, fd, NULL, 0, 0, flags, tag, false, NULL);
}

/* ------------------------------------------------------------------ completion */

static void wr_ring_complete(wr_ring *r, uint32_t idx, int32_t res)
{
    wr_op *op = &r->ops[idx];

    op->res = res;
    r->n_completed++;
    if (op->internal) {
        op->done = true;
        return;
    }
    WR_VERIFY(r->cq_cnt < r->depth);
    r->cq[(r->cq_head + r->cq_cnt) % r->depth] = idx;
    r->cq_cnt++;
}

/* Moves every CQE the kernel has posted into r->cq (or into its internal slot). */
static void wr_ring_collect(wr_ring *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    if (!r->uring)
        return;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        uint64_t idx = io_uring_cqe_get_data64(cqe);
        WR_VERIFY(idx < r->depth && r->ops[idx].next_free == WR_SLOT_NONE);
        wr_ring_complete(r, (uint32_t)idx, cqe->res);
        n++;
    }
    io_uring_cq_advance(&r->ring, n);
}

static int32_t wr_ring_exec(const wr_op *op)
{
    ssize_t k;

    for (;;) {
        switch (op->opcode) {
        case WR_OP_WRITE:
            k = pwrite(op->fd, op->buf, op->len, (off_t)op->off);
            break;
        case WR_OP_READ:
            k = pread(op->fd, op->buf, op->len, (off_t)op->off);
            break;
        default:
            k = fdatasync(op->fd);
            break;
        }
        if (k >= 0)
            return (int32_t)k; /* len <= WR_RING_RW_MAX, so k fits */
        if (errno != EINTR)
            return -errno;
    }
}

static void wr_ring_run_fallback(wr_ring *r)
{
    bool cancel = false;

    for (unsigned i = 0; i < r->queued; i++) {
        uint32_t idx = r->sq[i];
        wr_op *op = &r->ops[idx];
        int32_t res;
        bool failed;

        if (cancel) {
            res = -ECANCELED;
            failed = true;
        } else {
            res = wr_ring_exec(op);
            failed = res < 0 || (op->opcode != WR_OP_FDATASYNC && (size_t)res != op->len);
        }
        /* a chain runs while ops carry LINK; the first op without it ends the chain */
        cancel = (op->flags & WR_RING_LINK) && failed;
        r->n_submitted++;
        wr_ring_complete(r, idx, res);
    }
    r->queued = 0;
}

static wr_status wr_ring_fail(wr_ring *r, const char *what, int err)
{
    r->failed = true;
    return wr_err(WR_ERR_FAILED, "wr_ring: %s: %s; the ring is unusable, destroy it", what,
                  strerror(err));
}

static wr_status wr_ring_flush(wr_ring *r)
{
    if (!r->uring) {
        wr_ring_run_fallback(r);
        return WR_OK;
    }
    while (r->queued > 0) {
        int k = io_uring_submit(&r->ring);
        if (k == -EINTR)
            continue;
        if (k < 0)
            return wr_ring_fail(r, "io_uring_submit", -k);
        if (k == 0)
            return wr_ring_fail(r, "io_uring_submit consumed nothing", EIO);
        r->n_submitted += (unsigned)k;
        r->queued -= (unsigned)k;
    }
    return WR_OK;
}

/* Blocks for one more CQE while any submitted op is outstanding. */
static wr_status wr_ring_wait_one(wr_ring *r)
{
    struct io_uring_cqe *cqe;
    int rc;

    do
        rc = io_uring_wait_cqe(&r->ring, &cqe);
    while (rc == -EINTR);
    if (rc < 0)
        return wr_ring_fail(r, "io_uring_wait_cqe", -rc);
    wr_ring_collect(r);
    return WR_OK;
}

/* @wait_nr is capped at what can still complete, so it never blocks forever. */
wr_status wr_ring_submit(wr_ring *r, unsigned wait_nr)
{
    if (r->failed)
        return wr_err(WR_ERR_FAILED, "wr_ring: failed earlier; destroy it");
    WR_TRY(wr_ring_flush(r));
    wr_ring_collect(r);
    while (r->cq_cnt < wait_nr && r->n_completed < r->n_submitted)
        WR_TRY(wr_ring_wait_one(r));
    return WR_OK;
}

unsigned wr_ring_reap(wr_ring *r, wr_cqe *out, unsigned max)
{
    unsigned n = 0;

    wr_ring_collect(r);
    while (n < max && r->cq_cnt > 0) {
        uint32_t idx = r->cq[r->cq_head];
        out[n].tag = r->ops[idx].tag;
        out[n].res = r->ops[idx].res;
        n++;
        r->cq_head = (r->cq_head + 1) % r->depth;
        r->cq_cnt--;
        r->n_reaped++;
        wr_ring_slot_free(r, idx);
    }
    return n;
}

/* ------------------------------------------------------------------ synchronous helpers */

/* Submits the caller's queued ops on their own, so a trailing WR_RING_LINK of theirs cannot
 * chain into the helper's ops, and checks there is room for @n helper ops. */
static wr_status wr_ring_helper_begin(wr_ring *r, unsigned n, const char *who)
{
    if (r->failed)
        return wr_err(WR_ERR_FAILED, "%s: the ring failed earlier; destroy it", who);
    if (r->queued > 0)
        WR_TRY(wr_ring_flush(r));
    if (r->depth - r->used < n)
        return wr_err(WR_AGAIN, "%s: ring full (%u of %u slots taken); reap completions first", who,
                      r->used, r->depth);
    return WR_OK;
}

static wr_status wr_ring_helper_wait(wr_ring *r, uint32_t idx)
{
    WR_TRY(wr_ring_flush(r));
    wr_ring_collect(r);
    while (!r->ops[idx].done)
        WR_TRY(wr_ring_wait_one(r));
    return WR_OK;
}

static int32_t wr_ring_helper_take(wr_ring *r, uint32_t idx)
{
    int32_t res = r->ops[idx].res;

    r->n_reaped++;
    wr_ring_slot_free(r, idx);
    return res;
}

static wr_status wr_ring_write_err(int fd, size_t chunk, uint64_t off, int e, int *err_out)
{
    if (err_out != NULL)
        *err_out = e;
    return wr_err(wr_status_from_errno(e) == WR_ERR_FULL ? WR_ERR_FULL : WR_ERR_IO,
                  "pwrite fd %d, %zu bytes at offset %llu: %s", fd, chunk, (unsigned long long)off,
                  strerror(e));
}

static wr_status wr_ring_sync_err(int fd, int e, int *err_out)
{
    /* never retry an fsync: the kernel may have dropped the dirty pages */
    if (err_out != NULL)
        *err_out = e;
    return wr_err(WR_ERR_IO, "fdatasync fd %d: %s", fd, strerror(e));
}

/* One internal op queued on its own and waited for; *res_out gets bytes or -errno. */
static wr_status wr_ring_one(wr_ring *r, enum wr_opcode opc, int fd, const void *buf, size_t len,
                             uint64_t off, int32_t *res_out)
{
    uint32_t slot;

    WR_TRY(wr_ring_queue(r, (uint8_t)opc, fd, (void *)(uintptr_t)buf, len, off, 0, 0, true, &slot));
    WR_TRY(wr_ring_helper_wait(r, slot));
    *res_out = wr_ring_helper_take(r, slot);
    return WR_OK;
}

/* wr_ring_pwrite_all with a fault hook installed: the write, then (once it is complete) the
 * sync, each announced to the hook first. */
static wr_status wr_ring_pwrite_hooked(wr_ring *r, int fd, const uint8_t *p, size_t len,
                                       uint64_t off, bool sync, int *err_out)
{
    size_t done = 0;
    int32_t res;
    int e;

    while (done < len) {
        size_t chunk = len - done < WR_RING_RW_MAX ? len - done : WR_RING_RW_MAX, want = chunk;

        if ((e = wr_fault_call(WR_FAULT_WRITE, NULL, NULL, fd, off + done, &want)) != 0) {
            if (want > 0 && want < chunk) /* the hook's torn prefix lands, then the error */
                WR_TRY(wr_ring_one(r, WR_OP_WRITE, fd, p + done, want, off + done, &res));
            return wr_ring_write_err(fd, chunk, off + done, e, err_out);
        }
        WR_TRY(wr_ring_one(r, WR_OP_WRITE, fd, p + done, chunk, off + done, &res));
        if (res == -EINTR || res == -EAGAIN)
            continue;
        if (res <= 0)
            return wr_ring_write_err(fd, chunk, off + done, res < 0 ? -res : ENOSPC, err_out);
        done += (size_t)res;
    }
    if (!sync)
        return WR_OK;
    if ((e = wr_fault_call(WR_FAULT_SYNC, NULL, NULL, fd, 0, NULL)) == 0) {
        WR_TRY(wr_ring_one(r, WR_OP_FDATASYNC, fd, NULL, 0, 0, &res));
        e = res < 0 ? -res : 0;
    }
    return e != 0 ? wr_ring_sync_err(fd, e, err_out) : WR_OK;
}

wr_status wr_ring_pwrite_all(wr_ring *r, int fd, const void *buf, size_t len, uint64_t off,
                             bool sync, int *err_out)
{
    const uint8_t *p = buf;
    size_t done = 0;

    if (err_out != NULL)
        *err_out = 0;
    WR_TRY(wr_ring_helper_begin(r, 2, "wr_ring_pwrite_all"));
    if (wr_fault_armed())
        return wr_ring_pwrite_hooked(r, fd, p, len, off, sync, err_out);
    for (;;) {
        size_t chunk = len - done < WR_RING_RW_MAX ? len - done : WR_RING_RW_MAX;
        bool last = done + chunk == len;
        uint32_t wslot = WR_SLOT_NONE, sslot = WR_SLOT_NONE;
        int32_t wres = 0, sres = 0;

        if (chunk > 0)
            WR_TRY(wr_ring_queue(r, WR_OP_WRITE, fd, (void *)(uintptr_t)(p + done), chunk,
                                 off + done, sync && last ? WR_RING_LINK : 0, 0, true, &wslot));
        if (sync && last)
            WR_TRY(wr_ring_queue(r, WR_OP_FDATASYNC, fd, NULL, 0, 0, 0, 0, true, &sslot));
        if (wslot == WR_SLOT_NONE && sslot == WR_SLOT_NONE)
            return WR_OK; /* len == 0 and no sync */
        if (wslot != WR_SLOT_NONE)
            WR_TRY(wr_ring_helper_wait(r, wslot));
        if (sslot != WR_SLOT_NONE)
            WR_TRY(wr_ring_helper_wait(r, sslot));
        if (wslot != WR_SLOT_NONE)
            wres = wr_ring_helper_take(r, wslot);
        if (sslot != WR_SLOT_NONE)
            sres = wr_ring_helper_take(r, sslot);
        if (wres == -EINTR || wres == -EAGAIN)
            continue;
        if (wres < 0 || (wres == 0 && chunk > 0))
            return wr_ring_write_err(fd, chunk, off + done, wres < 0 ? -wres : ENOSPC, err_out);
        done += (size_t)wres;
        if (done < len || (size_t)wres < chunk)
            continue; /* short write: the linked sync was cancelled; write the rest */
        if (sres < 0)
            return wr_ring_sync_err(fd, -sres, err_out);
        return WR_OK;
    }
}

/* Reads until @len bytes or end of file. WR_OK with *got_out < len at end of file; when
 * @got_out is NULL a short read is reported as WR_EOF, since the caller cannot see it. */
wr_status wr_ring_pread_all(wr_ring *r, int fd, void *buf, size_t len, uint64_t off,
                            size_t *got_out, int *err_out)
{
    uint8_t *p = buf;
    size_t done = 0;

    if (err_out != NULL)
        *err_out = 0;
    if (got_out != NULL)
        *got_out = 0;
    WR_TRY(wr_ring_helper_begin(r, 1, "wr_ring_pread_all"));
    while (done < len) {
        size_t chunk = len - done < WR_RING_RW_MAX ? len - done : WR_RING_RW_MAX;
        uint32_t slot;
        int32_t res;

        WR_TRY(wr_ring_queue(r, WR_OP_READ, fd, p + done, chunk, off + done, 0, 0, true, &slot));
        WR_TRY(wr_ring_helper_wait(r, slot));
        res = wr_ring_helper_take(r, slot);
        if (res == -EINTR || res == -EAGAIN)
            continue;
        if (res < 0) {
            if (err_out != NULL)
                *err_out = -res;
            return wr_err(WR_ERR_IO, "pread fd %d, %zu bytes at offset %llu: %s", fd, chunk,
                          (unsigned long long)(off + done), strerror(-res));
        }
        if (res == 0)
            break; /* end of file */
        done += (size_t)res;
        if (got_out != NULL)
            *got_out = done;
    }
    if (done < len && got_out == NULL)
        return WR_EOF;
    return WR_OK;
}

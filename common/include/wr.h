/* wr.h -- weir's common layer (public API): status codes, error detail, the allocator hook,
 * byte views and growable buffers, XXH3 and varint helpers, fixed-width little-endian
 * encoding, the io_uring wrapper, clocks, a latency histogram, leveled logging and a few
 * file-system helpers (atomic file replace, directory fsync).
 *
 * Invariants: (1) every function that can fail returns wr_status and passes results through
 * OUT parameters; (2) all heap memory goes through wr_malloc/wr_free so a test can make the
 * Nth allocation fail; (3) errno is converted to wr_status in one place only,
 * wr_status_from_errno(); (4) a failing function may leave a human-readable detail in the
 * calling thread's error buffer (wr_errmsg()), which says what failed, where, and what to do.
 *
 * Threading: everything here is thread-safe unless noted; a wr_ring belongs to one thread. */
#ifndef WEIR_WR_H
#define WEIR_WR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WR_VERSION "0.1.0"

/* ---------------------------------------------------------------- status */
typedef enum wr_status {
    WR_OK = 0,
    WR_EOF,   /* not a failure: end of data, or a wait timed out */
    WR_AGAIN, /* back-pressure: retry later */
    WR_ERR_INVAL = 16,
    WR_ERR_NOMEM,
    WR_ERR_IO, /* errno kept by the handle and in wr_errmsg() */
    WR_ERR_CORRUPT,
    WR_ERR_NOTFOUND,
    WR_ERR_FULL,
    WR_ERR_FAILED, /* sticky: the handle failed earlier; close and reopen */
    WR_ERR_EXISTS,
    WR_ERR_BUSY,     /* locked by another process or thread */
    WR_ERR_SEQUENCE, /* producer sequence out of order */
    WR_ERR_FENCED,   /* producer epoch older than the one the log knows */
    WR_ERR_TOOBIG,   /* a record or batch over the configured limit */
    WR_ERR_UNSUPPORTED,
    WR_ERR_INTERNAL /* a bug */
} wr_status;

#define WR_MUST_CHECK   __attribute__((warn_unused_result))
#define WR_PRINTF(a, b) __attribute__((format(printf, a, b)))

static inline bool wr_failed(wr_status s)
{
    return s >= WR_ERR_INVAL;
}
/* Short stable name, e.g. "WR_ERR_CORRUPT" -> "corrupt". Never NULL. */
const char *wr_status_str(wr_status s);
/* The only errno -> status mapping. */
wr_status wr_status_from_errno(int err);

/* Thread-local error detail. wr_err() formats it and returns @s, so callers write
 * `return wr_err(WR_ERR_CORRUPT, "%s: bad checksum at byte %llu", path, off);`. */
wr_status wr_err(wr_status s, const char *fmt, ...) WR_PRINTF(2, 3);
const char *wr_errmsg(void); /* "" when none; valid until the thread's next wr_err() */
void wr_err_clear(void);

/* Logs file:line and returns WR_ERR_CORRUPT (SQLITE_CORRUPT_BKPT). */
wr_status wr_corrupt_at(const char *file, int line);
#define WR_CORRUPT() wr_corrupt_at(__FILE__, __LINE__)
#define WR_TRY(e)                                                                                  \
    do {                                                                                           \
        wr_status s_ = (e);                                                                        \
        if (s_ != WR_OK)                                                                           \
            return s_;                                                                             \
    } while (0)
#define WR_IGNORE(e)                                                                               \
    do {                                                                                           \
        wr_status i_ = (e);                                                                        \
        (void)i_;                                                                                  \
    } while (0)
void wr_verify_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
/* Stays on in release builds and aborts (Redis serverAssert). */
#define WR_VERIFY(e) ((e) ? (void)0 : wr_verify_fail(#e, __FILE__, __LINE__))

/* ---------------------------------------------------------------- allocator */
void *wr_malloc(size_t n);
void *wr_calloc(size_t cnt, size_t n);
void *wr_realloc(void *p, size_t n);
void wr_free(void *p); /* NULL is a no-op */
char *wr_strdup(const char *s);
/* Test hook: the @nth allocation from now (1 = the next one) returns NULL, and so does every
 * later one while @sticky; 0 disarms. Returns the number of allocations made so far. */
void wr_alloc_fail_at(uint64_t nth, bool sticky);
uint64_t wr_alloc_count(void);

/* ---------------------------------------------------------------- bytes and buffers */
typedef struct wr_bytes {
    const uint8_t *ptr; /* borrowed */
    size_t len;
} wr_bytes;

static inline wr_bytes wr_bytes_of(const void *p, size_t n)
{
    wr_bytes b = {(const uint8_t *)p, n};
    return b;
}
static inline wr_bytes wr_bytes_str(const char *s)
{
    return wr_bytes_of(s, strlen(s));
}
static inline bool wr_bytes_eq(wr_bytes a, wr_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}
int wr_bytes_cmp(wr_bytes a, wr_bytes b); /* memcmp order, shorter first on a tie */

/* Growable byte buffer. Zero-initialised is empty and valid. */
typedef struct wr_buf {
    uint8_t *ptr; /* owned */
    size_t len, cap;
} wr_buf;
WR_MUST_CHECK wr_status wr_buf_reserve(wr_buf *b, size_t extra); /* cap >= len + extra */
WR_MUST_CHECK wr_status wr_buf_append(wr_buf *b, const void *p, size_t n);
void wr_buf_fini(wr_buf *b);

/* ---------------------------------------------------------------- fixed-width LE */
static inline void wr_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void wr_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void wr_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t wr_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t wr_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t wr_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---------------------------------------------------------------- varints (LEB128) */
#define WR_VARINT_MAX 10
/* Writes at most WR_VARINT_MAX bytes; returns the count written. */
size_t wr_put_uvarint(uint8_t *dst, uint64_t v);
size_t wr_put_svarint(uint8_t *dst, int64_t v); /* zigzag */
size_t wr_uvarint_len(uint64_t v);
/* Decode from [p, end). Returns bytes consumed, or 0 when truncated or over-long (> 10 bytes
 * or overflowing 64 bits): the caller treats 0 as corrupt input. */
size_t wr_get_uvarint_slow(const uint8_t *p, const uint8_t *end, uint64_t *v);
static inline size_t wr_get_uvarint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    if (p < end && p[0] < 0x80) { /* one byte: the common case, inlined */
        *v = p[0];
        return 1;
    }
    return wr_get_uvarint_slow(p, end, v);
}
size_t wr_get_svarint(const uint8_t *p, const uint8_t *end, int64_t *v);

/* ---------------------------------------------------------------- XXH3 */
uint64_t wr_xxh3(const void *p, size_t n);
uint64_t wr_xxh3_seed(const void *p, size_t n, uint64_t seed);
void wr_xxh3_128(const void *p, size_t n, uint8_t out[16]);
/* Streaming XXH3-64 for data that arrives in pieces. */
typedef struct wr_xxh3_state wr_xxh3_state;
WR_MUST_CHECK wr_status wr_xxh3_begin(wr_xxh3_state **out);
void wr_xxh3_update(wr_xxh3_state *st, const void *p, size_t n);
uint64_t wr_xxh3_digest(const wr_xxh3_state *st);
void wr_xxh3_end(wr_xxh3_state *st); /* NULL is a no-op */

/* ---------------------------------------------------------------- clocks */
uint64_t wr_now_ns(void); /* CLOCK_MONOTONIC */
int64_t wr_wall_ms(void); /* CLOCK_REALTIME, milliseconds since the epoch */
void wr_sleep_ns(uint64_t ns);
struct timespec;
/* The CLOCK_REALTIME instant @ns from now, for pthread_cond_timedwait(). */
void wr_abstime(struct timespec *ts, uint64_t ns);

/* ---------------------------------------------------------------- latency histogram */
/* Log-linear buckets (HdrHistogram-like): 3 significant bits per power of two would be too
 * coarse, so each power of two is split into 64 sub-buckets (relative error <= 1.6%).
 * Values are nanoseconds (any unit works). Mergeable; not thread-safe (one per thread). */
#define WR_HIST_SUB     64
#define WR_HIST_BUCKETS (64 * WR_HIST_SUB)
typedef struct wr_hist {
    uint64_t cnt, sum, min, max;
    uint64_t b[WR_HIST_BUCKETS];
} wr_hist;
void wr_hist_init(wr_hist *h);
void wr_hist_record(wr_hist *h, uint64_t v);
void wr_hist_merge(wr_hist *dst, const wr_hist *src);
/* @q in [0,1]; returns an upper bound of the bucket holding the q-quantile (exact max for 1). */
uint64_t wr_hist_quantile(const wr_hist *h, double q);
double wr_hist_mean(const wr_hist *h);

/* ---------------------------------------------------------------- logging */
typedef enum wr_log_level { WR_LOG_ERROR = 0, WR_LOG_WARN, WR_LOG_INFO, WR_LOG_DEBUG } wr_log_level;
/* Level from $WEIR_LOG (error|warn|info|debug), default warn; wr_log_set_level overrides. */
void wr_log_set_level(wr_log_level lvl);
bool wr_log_enabled(wr_log_level lvl);
void wr_log(wr_log_level lvl, const char *fmt, ...) WR_PRINTF(2, 3);
#define WR_LOGE(...) wr_log(WR_LOG_ERROR, __VA_ARGS__)
#define WR_LOGW(...) wr_log(WR_LOG_WARN, __VA_ARGS__)
#define WR_LOGI(...) wr_log(WR_LOG_INFO, __VA_ARGS__)
#define WR_LOGD(...) wr_log(WR_LOG_DEBUG, __VA_ARGS__)

/* ---------------------------------------------------------------- io_uring wrapper */
/* A wr_ring queues I/O operations and submits them in batches. Flags chain operations:
 * WR_RING_LINK makes the next op start only after this one succeeds (a write linked to its
 * fdatasync); WR_RING_DRAIN makes this op start only after all earlier ones complete.
 * When the kernel refuses io_uring (old kernel, seccomp), wr_ring_init() still succeeds in
 * fallback mode, which runs the queued ops with plain syscalls at submit time with the same
 * semantics (a failed linked op cancels the rest of its chain with -ECANCELED);
 * wr_ring_is_uring() tells which mode is active. Test hook: with $WEIR_NO_URING set to anything
 * but "" or "0", wr_ring_init() always picks the fallback (read at each init). */
typedef struct wr_ring wr_ring;
enum { WR_RING_LINK = 1u << 0, WR_RING_DRAIN = 1u << 1 };
typedef struct wr_cqe {
    uint64_t tag; /* the caller's tag from the prep call */
    int32_t res;  /* bytes transferred, 0, or -errno */
} wr_cqe;

WR_MUST_CHECK wr_status wr_ring_init(unsigned depth, wr_ring **out);
void wr_ring_destroy(wr_ring *r); /* NULL is a no-op; waits for in-flight ops */
/* The calling thread's ring (depth 256), created on first use, destroyed at thread exit.
 * NULL only when out of memory. */
wr_ring *wr_ring_thread(void);
bool wr_ring_is_uring(const wr_ring *r);
/* True when the kernel lets this process create an io_uring (tests skip with 77 if not). */
bool wr_uring_supported(void);

/* Queue ops. WR_AGAIN when the submission queue is full: submit, reap, then retry. Buffers
 * must stay valid until the op's completion is reaped. */
WR_MUST_CHECK wr_status wr_ring_write(wr_ring *r, int fd, const void *buf, size_t len, uint64_t off,
                                      unsigned flags, uint64_t tag);
WR_MUST_CHECK wr_status wr_ring_read(wr_ring *r, int fd, void *buf, size_t len, uint64_t off,
                                     unsigned flags, uint64_t tag);
WR_MUST_CHECK wr_status wr_ring_fdatasync(wr_ring *r, int fd, unsigned flags, uint64_t tag);
/* Submit everything queued and wait until at least @wait_nr completions are available. */
WR_MUST_CHECK wr_status wr_ring_submit(wr_ring *r, unsigned wait_nr);
/* Move up to @max available completions to @out (never blocks). Returns the count. */
unsigned wr_ring_reap(wr_ring *r, wr_cqe *out, unsigned max);
unsigned wr_ring_inflight(const wr_ring *r); /* submitted or queued, not yet reaped */

/* Synchronous helpers on top of a ring: the full buffer is written (short writes continued)
 * and, when @sync, followed by a linked fdatasync. On failure *err_out (if not NULL) gets the
 * errno. */
WR_MUST_CHECK wr_status wr_ring_pwrite_all(wr_ring *r, int fd, const void *buf, size_t len,
                                           uint64_t off, bool sync, int *err_out);
WR_MUST_CHECK wr_status wr_ring_pread_all(wr_ring *r, int fd, void *buf, size_t len, uint64_t off,
                                          size_t *got_out, int *err_out);

/* ---------------------------------------------------------------- files */
WR_MUST_CHECK wr_status wr_mkdir_p(const char *path);
WR_MUST_CHECK wr_status wr_fsync_dir(const char *path);
/* Replace @path atomically: write "<path>.tmp", fsync it, rename over @path, fsync the
 * directory. A crash leaves either the old or the new content. */
WR_MUST_CHECK wr_status wr_file_write_atomic(const char *path, const void *p, size_t n);
/* Read a whole file into @out (replacing its content). WR_ERR_NOTFOUND if it does not exist. */
WR_MUST_CHECK wr_status wr_file_read(const char *path, wr_buf *out);
/* snprintf that reports truncation as WR_ERR_INVAL instead of silently cutting a path. */
WR_MUST_CHECK wr_status wr_path(char *dst, size_t cap, const char *fmt, ...) WR_PRINTF(3, 4);

/* Write-side syscalls with an error naming @path (and the fault hook below). wr_file_create
 * makes a new file for writing (O_CREAT | O_EXCL, 0644; WR_ERR_EXISTS if it exists);
 * wr_pwrite_all continues short writes and retries EINTR; a failed wr_fdatasync must never be
 * retried (the kernel may have dropped the dirty pages): the caller's handle becomes FAILED. */
WR_MUST_CHECK wr_status wr_file_create(const char *path, int *fd_out);
WR_MUST_CHECK wr_status wr_pwrite_all(int fd, const void *p, size_t n, uint64_t off,
                                      const char *path);
WR_MUST_CHECK wr_status wr_fdatasync(int fd, const char *path);

/* ---------------------------------------------------------------- fault injection (tests) */
/* One process-wide hook, consulted before every write-side operation of wr_file_create,
 * wr_pwrite_all, wr_fdatasync, wr_fsync_dir, wr_file_write_atomic and wr_ring_pwrite_all (so
 * before every write, sync, create and rename of the KV store). It returns 0 to let the
 * operation run, or an errno to make it fail as if the syscall had returned that errno: the
 * caller takes its ordinary error path (same status mapping, same message naming the file).
 * A failed WRITE writes nothing, or the first io->len bytes if the hook lowered io->len (a
 * disk that filled up part-way); a failed SYNC leaves the written bytes in the page cache,
 * not durable. The hook runs on whichever thread does the I/O (writers, background threads),
 * so it must be thread-safe; a SYNC is announced after the data it covers was written, so a
 * hook can fstat(io->fd) to learn the bytes that become durable when it returns 0.
 * Unset (the default), it costs one relaxed atomic load per operation. */
typedef enum wr_fault_op {
    WR_FAULT_OPEN,    /* create @path for writing */
    WR_FAULT_WRITE,   /* write io->len bytes at io->off to io->fd */
    WR_FAULT_SYNC,    /* fdatasync/fsync of io->fd */
    WR_FAULT_RENAME,  /* rename @path -> @path2 */
    WR_FAULT_SYNC_DIR /* fsync of the directory @path */
} wr_fault_op;
typedef struct wr_fault_io {
    wr_fault_op op;
    const char *path;  /* the file; NULL when only io->fd is known (wr_ring_pwrite_all) */
    const char *path2; /* RENAME: the new name; otherwise NULL */
    int fd;            /* WRITE, SYNC: the descriptor; otherwise -1 */
    uint64_t off;      /* WRITE: the file offset */
    size_t len;        /* WRITE: the byte count (the hook may lower it, see above) */
} wr_fault_io;
typedef int (*wr_fault_fn)(void *ctx, wr_fault_io *io);
/* Install (@fn NULL: remove) the hook. Not synchronised with I/O in flight: set it before
 * the operations it should see start, clear it after they ended. */
void wr_fault_set(wr_fault_fn fn, void *ctx);

#endif

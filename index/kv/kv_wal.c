/* kv_wal.c -- the store's optional write-ahead log (standalone mode; under the engine the
 * event log is the WAL). A file "<number>.wal" is a sequence of records
 * (docs/formats/kv-wal.md):
 *
 *   off size field
 *     0    4 magic "WRKW"
 *     4    4 payload length
 *     8    8 XXH3-64 of bytes [0, 8) and of the payload (seeded chain: see record_sum)
 *    16    . payload: one encoded write batch (kv_batch.c)
 *
 * Invariants: (1) records are contiguous from byte 0; (2) a record is acknowledged only
 * after its bytes are written (and synced, when asked); (3) after a failed write or sync the
 * WAL refuses every later append. Recovery stops at a torn tail, and refuses damage that
 * valid records follow (it would be acknowledged data).
 *
 * A mapped WAL (kv_wal_create_mapped; the store uses it when appends are not synced one by
 * one) reserves the file in KV_WAL_CHUNK steps with fallocate and copies records into a
 * MAP_SHARED mapping of it: a record then costs a memcpy instead of a write() (measured: the
 * syscall was two thirds of a fillrandom put). The bytes land in the same page cache a write()
 * would fill, so a crash of the process loses nothing a write() would have kept, and
 * fdatasync covers them the same way. The reserved tail reads as zeros until written;
 * closing truncates it away, and replay treats an all-zero rest of the file as the end (a
 * process killed before closing leaves one). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv_int.h"

#define KV_WAL_HDR   16
#define KV_WAL_CHUNK (4u << 20) /* a mapped WAL grows by this much at a time */

struct kv_wal {
    uint32_t magic;
    int fd;
    char path[4096];
    uint64_t size;
    bool failed;
    wr_buf buf; /* header + payload of the record being written */
    bool mapped;
    bool prefill;      /* a WAL (not a MANIFEST): synced appends go over zeros written ahead */
    uint64_t zeroed;   /* bytes of zeros (then records) written ahead from byte 0 */
    uint8_t *map;      /* MAP_SHARED over [0, reserved) when mapped and written to */
    uint64_t reserved; /* bytes fallocated (mapped) */
};

static uint64_t record_sum(const uint8_t *hdr8, const uint8_t *payload, size_t n)
{
    return wr_xxh3_seed(payload, n, wr_xxh3(hdr8, 8));
}

wr_status kv_wal_create(const char *dir, uint64_t number, kv_wal **out)
{
    char path[4096];
    WR_TRY(wr_path(path, sizeof(path), "%s/%06" PRIu64 ".wal", dir, number));
    WR_TRY(kv_recfile_create(dir, path, KV_WAL_MAGIC, out));
    (*out)->prefill = true;
    return WR_OK;
}

/* Synced appends overwrite zeros written ahead (KV_WAL_CHUNK at a time): an fdatasync then
 * flushes the record's data block alone. Appending past the end instead changes the file
 * size, and every fdatasync also commits that to the file system's journal: one more
 * synchronous write per acknowledged record. (fallocate would leave unwritten extents, whose
 * first write is a metadata change too; hence real zeros.) */
static wr_status prefill(kv_wal *w, uint64_t need)
{
    static const uint8_t zeros[4096]; /* page-sized: larger writes make larger page-cache folios,
                                         and each later record would dirty a whole one */
    uint64_t end = (need + KV_WAL_CHUNK - 1) / KV_WAL_CHUNK * KV_WAL_CHUNK;
    if (w->zeroed < w->size) /* unsynced appends went past the zeros: never overwrite records */
        w->zeroed = w->size;
    while (w->zeroed < end) {
        wr_status st = wr_pwrite_all(w->fd, zeros, sizeof(zeros), w->zeroed, w->path);
        if (st != WR_OK)
            return st;
        w->zeroed += sizeof(zeros);
    }
    return WR_OK;
}

wr_status kv_wal_create_mapped(const char *dir, uint64_t number, kv_wal **out)
{
    kv_wal *w;
    int fd;
    WR_TRY(kv_wal_create(dir, number, &w));
    /* A mapping needs a descriptor open for reading too. */
    if ((fd = open(w->path, O_RDWR | O_CLOEXEC)) < 0) {
        wr_status st = wr_err(wr_status_from_errno(errno), "%s: %s", w->path, strerror(errno));
        unlink(w->path);
        kv_wal_close(w);
        return st;
    }
    close(w->fd);
    w->fd = fd;
    w->mapped = true;
    *out = w;
    return WR_OK;
}

/* Make room for @need bytes in a mapped WAL: reserve disk blocks, then (re)map. */
static wr_status map_reserve(kv_wal *w, uint64_t need)
{
    uint64_t nres = (need + KV_WAL_CHUNK - 1) / KV_WAL_CHUNK * KV_WAL_CHUNK;
    void *m;
    int e;
    if (need <= w->reserved)
        return WR_OK;
    /* Blocks reserved now: a full disk is an error here, never a SIGBUS in memcpy later. */
    if ((e = posix_fallocate(w->fd, 0, (off_t)nres)) != 0)
        return wr_err(wr_status_from_errno(e), "%s: cannot reserve %" PRIu64 " bytes: %s", w->path,
                      nres, strerror(e));
    m = w->map ? mremap(w->map, w->reserved, nres, MREMAP_MAYMOVE)
               : mmap(NULL, nres, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
    if (m == MAP_FAILED)
        return wr_err(wr_status_from_errno(errno), "%s: cannot map %" PRIu64 " bytes: %s", w->path,
                      nres, strerror(errno));
    w->map = m;
    w->reserved = nres;
    return WR_OK;
}

/* Append one record to a mapped WAL. */
static wr_status append_mapped(kv_wal *w, wr_bytes payload, bool sync)
{
    uint8_t *h;
    wr_status st;
    if ((st = map_reserve(w, w->size + KV_WAL_HDR + payload.len)) != WR_OK) {
        w->failed = true;
        return st;
    }
    h = w->map + w->size;
    wr_put32(h, w->magic);
    wr_put32(h + 4, (uint32_t)payload.len);
    memcpy(h + KV_WAL_HDR, payload.ptr, payload.len);
    wr_put64(h + 8, record_sum(h, payload.ptr, payload.len));
    w->size += KV_WAL_HDR + payload.len;
    if (sync && (st = wr_fdatasync(w->fd, w->path)) != WR_OK) {
        w->failed = true;
        return st;
    }
    return WR_OK;
}

wr_status kv_recfile_create(const char *dir, const char *path, uint32_t magic, kv_wal **out)
{
    kv_wal *w;
    wr_status st;

    *out = NULL;
    if ((w = wr_calloc(1, sizeof(*w))) == NULL)
        return WR_ERR_NOMEM;
    w->magic = magic;
    if ((st = wr_path(w->path, sizeof(w->path), "%s", path)) != WR_OK)
        goto err;
    if ((st = wr_file_create(w->path, &w->fd)) != WR_OK)
        goto err;
    if ((st = wr_fsync_dir(dir)) != WR_OK) {
        close(w->fd);
        unlink(w->path);
        goto err;
    }
    *out = w;
    return WR_OK;
err:
    wr_free(w);
    return st;
}

wr_status kv_wal_append(kv_wal *w, wr_bytes payload, bool sync)
{
    wr_ring *r;
    uint8_t *h;
    wr_status st;
    int err = 0;

    if (w->failed)
        return wr_err(WR_ERR_FAILED, "%s: an earlier write or sync failed; reopen the store",
                      w->path);
    if (payload.len > UINT32_MAX)
        return wr_err(WR_ERR_TOOBIG, "write batch of %zu bytes is too big for one WAL record",
                      payload.len);
    if (w->mapped)
        return append_mapped(w, payload, sync);
    w->buf.len = 0;
    if ((st = wr_buf_reserve(&w->buf, KV_WAL_HDR + payload.len)) != WR_OK)
        return st;
    h = w->buf.ptr;
    wr_put32(h, w->magic);
    wr_put32(h + 4, (uint32_t)payload.len);
    wr_put64(h + 8, record_sum(h, payload.ptr, payload.len));
    memcpy(h + KV_WAL_HDR, payload.ptr, payload.len);
    w->buf.len = KV_WAL_HDR + payload.len;
    if (!sync) {
        /* A buffered write that only reaches the page cache: a plain pwrite. Through io_uring
         * the kernel hands such a write to an io-wq worker thread, and the two context
         * switches cost ~30 us per append (measured with perf on fillrandom); a pwrite ~1.5. */
        if ((st = wr_pwrite_all(w->fd, w->buf.ptr, w->buf.len, w->size, w->path)) != WR_OK) {
            w->failed = true;
            return st;
        }
        w->size += w->buf.len;
        return WR_OK;
    }
    if ((r = wr_ring_thread()) == NULL) /* nothing was written: the WAL is still good */
        return wr_err(WR_ERR_NOMEM, "%s: no I/O ring for this thread (out of memory)", w->path);
    if (w->prefill && sync && (st = prefill(w, w->size + w->buf.len)) != WR_OK) {
        w->failed = true; /* zeros past the records: replay reads them as the end */
        return st;
    }
    st = wr_ring_pwrite_all(r, w->fd, w->buf.ptr, w->buf.len, w->size, sync, &err);
    if (st != WR_OK) {
        w->failed = true;
        return wr_err(st, "%s: %s at byte %" PRIu64 " failed: %s", w->path,
                      sync ? "write+fdatasync" : "write", w->size, strerror(err));
    }
    w->size += w->buf.len;
    return WR_OK;
}

wr_status kv_wal_sync(kv_wal *w)
{
    wr_status st;

    if (w->failed)
        return wr_err(WR_ERR_FAILED, "%s: an earlier write or sync failed", w->path);
    if ((st = wr_fdatasync(w->fd, w->path)) != WR_OK)
        w->failed = true; /* never retry a failed sync */
    return st;
}

uint64_t kv_wal_bytes(const kv_wal *w)
{
    return w->size;
}

void kv_wal_close(kv_wal *w)
{
    if (w == NULL)
        return;
    if (w->map)
        munmap(w->map, w->reserved);
    if ((w->map || w->zeroed > w->size) && ftruncate(w->fd, (off_t)w->size) != 0)
        WR_LOGW("%s: cannot drop the reserved tail: %s", w->path, strerror(errno)); /* replay
                                                                       skips the zeros anyway */
    close(w->fd);
    wr_buf_fini(&w->buf);
    wr_free(w);
}

/* Does a complete, valid record start anywhere in [from, n)? */
static bool valid_after(const uint8_t *p, size_t n, size_t from, uint32_t magic)
{
    for (size_t at = from; at + KV_WAL_HDR <= n; at++) {
        uint32_t len;
        if (wr_get32(p + at) != magic)
            continue;
        len = wr_get32(p + at + 4);
        if (len <= n - at - KV_WAL_HDR &&
            record_sum(p + at, p + at + KV_WAL_HDR, len) == wr_get64(p + at + 8))
            return true;
    }
    return false;
}

wr_status kv_wal_replay(const char *path, kv_wal_fn fn, void *ctx, uint64_t *torn_at)
{
    return kv_recfile_replay(path, KV_WAL_MAGIC, fn, ctx, torn_at);
}

wr_status kv_recfile_replay(const char *path, uint32_t magic, kv_wal_fn fn, void *ctx,
                            uint64_t *torn_at)
{
    wr_buf b = {0};
    wr_status st;
    size_t pos = 0;

    *torn_at = UINT64_MAX;
    /* WAL files are bounded by the memtable size, so reading one whole is fine. */
    if ((st = wr_file_read(path, &b)) != WR_OK)
        return st;
    while (pos < b.len) {
        const uint8_t *h = b.ptr + pos;
        uint32_t len;
        if (b.len - pos < KV_WAL_HDR || wr_get32(h) != magic ||
            (len = wr_get32(h + 4)) > b.len - pos - KV_WAL_HDR ||
            record_sum(h, h + KV_WAL_HDR, len) != wr_get64(h + 8)) {
            size_t z = pos;
            while (z < b.len && b.ptr[z] == 0)
                z++;
            if (z == b.len) /* the unused reserve of a mapped WAL: the end */
                break;
            if (valid_after(b.ptr, b.len, pos + 1, magic)) {
                st = wr_err(WR_ERR_CORRUPT,
                            "%s: damaged record at byte %zu, and valid records follow it; the "
                            "WAL cannot be replayed past it",
                            path, pos);
                goto out;
            }
            *torn_at = pos; /* a write the crash cut short: never acknowledged */
            break;
        }
        if ((st = fn(ctx, wr_bytes_of(h + KV_WAL_HDR, len))) != WR_OK)
            goto out;
        pos += KV_WAL_HDR + len;
    }
    st = WR_OK;
out:
    wr_buf_fini(&b);
    return st;
}

/* kv_sst.c -- table files: the builder (sorted entries in, one immutable file out), the reader
 * (open, get, iterator) and the verifier. Format byte by byte in docs/formats/sst.md.
 *
 *   file    [data block]* [filter block]? [properties block] [index block] [footer]
 *   block   [contents: raw, or uvarint raw_len + one zstd frame][type: u8][XXH3-64: u64]
 *           the checksum covers contents and type; type 0 raw, 1 zstd
 *   index   a kv_block (restart interval 1) of [separator ikey] -> [uvarint off][uvarint size],
 *           one per data block, in file order; last key of block i <= separator i < first key
 *           of block i + 1
 *   footer  | 0 index off | 8 index size | 16 filter off | 24 filter size | 32 props off |
 *           | 40 props size | 48 version u32 | 52 reserved u32 = 0 | 56 XXH3-64 of [0, 56) |
 *           | 64 magic "WEIRSST1" |                                    (72 bytes, all LE)
 *
 * Builder states: OPEN --add--> OPEN --finish--> (freed; file complete and fdatasync'ed)
 *                   \--(I/O or memory error)--> FAILED --abandon/finish--> (freed; file removed)
 * Blocks are appended to a 1 MiB write buffer and written with large sequential write()s. The
 * index entry of a block is added when the next key arrives (or at finish), so its separator can
 * be shortened: the shortest user key between the two, with the largest trailer.
 *
 * Reader: open reads the footer (magic, then version, then checksum: a newer version may lay the
 * footer out differently, so the version is decided before the layout is trusted), then the
 * properties, the index (decoded into an array) and the filter; they stay in memory and are
 * never written again, so gets and iterators on one table run concurrently without locks. Data
 * blocks come from kv_sst_read_block(): a read through the calling thread's io_uring
 * (wr_ring_pread_all; pread when the thread has no usable ring), then checksum and zstd. With a
 * block cache (kv_sst_set_cache) a reader first looks the block up by (file id, offset), pins
 * the cached copy while it uses it, and inserts what it read on a miss; kv_sst_multi_get()
 * reads all the blocks its keys need that the cache lacks with one io_uring submission.
 *
 * Invariants: (1) keys in a file strictly increase in kv_ikey_cmp order; (2) every handle the
 * reader uses was bounds-checked against the file length at open; (3) every error message names
 * the file and a byte offset. */
#include "kv_sst.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define SST_WBUF (1u << 20) /* write buffer: blocks leave in writes of about this size */

typedef unsigned long long ull;

void kv_sst_opts_init(kv_sst_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->block_size = KV_DEFAULT_BLOCK;
    o->restart_interval = KV_DEFAULT_RESTART;
    o->bloom_bits_per_key = KV_DEFAULT_BLOOM;
    o->compression = KV_COMP_NONE;
    o->zstd_level = KV_DEFAULT_ZSTD_LVL;
}

void kv_sst_props_fini(kv_sst_props *p)
{
    if (p == NULL)
        return;
    wr_buf_fini(&p->smallest);
    wr_buf_fini(&p->largest);
}

static wr_status buf_set(wr_buf *b, wr_bytes v)
{
    b->len = 0;
    return wr_buf_append(b, v.ptr, v.len);
}

static void put_handle(uint8_t *dst, size_t *n, kv_handle h)
{
    *n = wr_put_uvarint(dst, h.off);
    *n += wr_put_uvarint(dst + *n, h.size);
}

/* ================================================================ builder */
struct kv_sst_builder {
    char *path; /* owned */
    int fd;
    kv_sst_opts o;
    wr_buf wbuf;  /* owned: bytes not yet written */
    uint64_t off; /* file offset of wbuf.ptr[0] */
    kv_block_builder data, index;
    wr_buf last;       /* owned: the last key added */
    wr_buf sep;        /* owned: scratch for separators */
    kv_handle pending; /* the flushed block still waiting for its index entry */
    bool has_pending;
    uint64_t *hashes; /* owned: XXH3 of each distinct user key, for the filter */
    size_t hash_cnt, hash_cap;
    wr_buf zbuf;        /* owned: compression and meta block scratch */
    ZSTD_CCtx *cctx;    /* owned; NULL without compression */
    kv_sst_props props; /* owned smallest/largest; moved out by finish */
    wr_status failed;   /* WR_OK, or WR_ERR_FAILED once a write or allocation failed */
};

static void builder_free(kv_sst_builder *b)
{
    if (b->fd >= 0)
        close(b->fd);
    wr_buf_fini(&b->wbuf);
    kv_block_builder_fini(&b->data);
    kv_block_builder_fini(&b->index);
    wr_buf_fini(&b->last);
    wr_buf_fini(&b->sep);
    wr_free(b->hashes);
    wr_buf_fini(&b->zbuf);
    ZSTD_freeCCtx(b->cctx);
    kv_sst_props_fini(&b->props);
    wr_free(b->path);
    wr_free(b);
}

wr_status kv_sst_builder_open(const char *path, const kv_sst_opts *opts, kv_sst_builder **out)
{
    kv_sst_builder *b;
    wr_status rc;

    *out = NULL;
    if ((b = wr_calloc(1, sizeof(*b))) == NULL)
        return WR_ERR_NOMEM;
    b->fd = -1;
    if (opts)
        b->o = *opts;
    else
        kv_sst_opts_init(&b->o);
    if (b->o.block_size == 0)
        b->o.block_size = KV_DEFAULT_BLOCK;
    if (b->o.restart_interval == 0)
        b->o.restart_interval = KV_DEFAULT_RESTART;
    if (b->o.zstd_level == 0)
        b->o.zstd_level = KV_DEFAULT_ZSTD_LVL;
    if (b->o.block_size > (1u << 20) ||
        /* a block + one entry stays under KV_BLOCK_MAX */ b->o.restart_interval > (1u << 20) ||
        b->o.bloom_bits_per_key > 1000 ||
        (b->o.compression != KV_COMP_NONE && b->o.compression != KV_COMP_ZSTD)) {
        rc = wr_err(WR_ERR_INVAL, "%s: bad SST options (block %u, restart %u, bloom %u, comp %d)",
                    path, b->o.block_size, b->o.restart_interval, b->o.bloom_bits_per_key,
                    (int)b->o.compression);
        goto err_free;
    }
    if ((b->path = wr_strdup(path)) == NULL) {
        rc = WR_ERR_NOMEM;
        goto err_free;
    }
    if (b->o.compression == KV_COMP_ZSTD && (b->cctx = ZSTD_createCCtx()) == NULL) {
        rc = WR_ERR_NOMEM;
        goto err_free;
    }
    if ((rc = wr_buf_reserve(&b->wbuf, SST_WBUF + (64u << 10))) != WR_OK)
        goto err_free;
    kv_block_builder_init(&b->data, b->o.restart_interval);
    kv_block_builder_init(&b->index, 1);
    if ((b->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        int e = errno;
        rc = wr_err(wr_status_from_errno(e), "%s: create: %s", path, strerror(e));
        goto err_free;
    }
    *out = b;
    return WR_OK;
err_free:
    builder_free(b);
    return rc;
}

static wr_status builder_fail(kv_sst_builder *b, wr_status st)
{
    if (b->failed == WR_OK)
        b->failed = WR_ERR_FAILED;
    return st;
}

static wr_status wbuf_flush(kv_sst_builder *b)
{
    wr_status st = wr_pwrite_all(b->fd, b->wbuf.ptr, b->wbuf.len, b->off, b->path);

    if (st != WR_OK)
        return builder_fail(b, st); /* the message names the file and the offset */
    b->off += b->wbuf.len;
    b->wbuf.len = 0;
    return WR_OK;
}

/* Append one block with its trailer; @h gets where it went. */
static wr_status emit_block(kv_sst_builder *b, wr_bytes contents, bool compress, kv_handle *h)
{
    wr_bytes stored = contents;
    uint8_t type = KV_COMP_NONE;
    size_t start;

    if (compress && b->cctx != NULL && contents.len > 0) {
        size_t bound = ZSTD_compressBound(contents.len) + WR_VARINT_MAX, n, z;
        WR_TRY(wr_buf_reserve(&b->zbuf, bound));
        n = wr_put_uvarint(b->zbuf.ptr, contents.len);
        z = ZSTD_compressCCtx(b->cctx, b->zbuf.ptr + n, bound - n, contents.ptr, contents.len,
                              b->o.zstd_level);
        if (!ZSTD_isError(z) && n + z < contents.len) { /* kept raw when it does not shrink */
            stored = wr_bytes_of(b->zbuf.ptr, n + z);
            type = KV_COMP_ZSTD;
        }
    }
    WR_TRY(wr_buf_reserve(&b->wbuf, stored.len + KV_BLOCK_TRAILER));
    start = b->wbuf.len;
    h->off = b->off + start;
    h->size = stored.len;
    if (stored.len)
        memcpy(b->wbuf.ptr + start, stored.ptr, stored.len);
    b->wbuf.ptr[start + stored.len] = type;
    wr_put64(b->wbuf.ptr + start + stored.len + 1, wr_xxh3(b->wbuf.ptr + start, stored.len + 1));
    b->wbuf.len += stored.len + KV_BLOCK_TRAILER;
    if (b->wbuf.len >= SST_WBUF)
        return wbuf_flush(b);
    return WR_OK;
}

/* The index entry for the pending block: a key >= its last key (b->last) and < @next. */
static wr_status add_index_entry(kv_sst_builder *b, const wr_bytes *next)
{
    wr_bytes last = wr_bytes_of(b->last.ptr, b->last.len), key = last;
    uint8_t hv[2 * WR_VARINT_MAX];
    size_t n;

    if (next != NULL) {
        wr_bytes ul = kv_ikey_user(last), un = kv_ikey_user(*next);
        size_t i = 0, lim = ul.len < un.len ? ul.len : un.len;
        while (i < lim && ul.ptr[i] == un.ptr[i])
            i++;
        /* ul[0, i) + (ul[i] + 1) is > ul and < un; worth it only when shorter than ul */
        if (i < lim && i + 1 < ul.len && ul.ptr[i] != 0xff && ul.ptr[i] + 1 < un.ptr[i]) {
            WR_TRY(wr_buf_reserve(&b->sep, i + 1 + KV_TRAILER));
            memcpy(b->sep.ptr, ul.ptr, i);
            b->sep.ptr[i] = (uint8_t)(ul.ptr[i] + 1);
            b->sep.len =
                kv_ikey_put(b->sep.ptr, wr_bytes_of(b->sep.ptr, i + 1), KV_SEQ_MAX, KV_TYPE_SEEK);
            key = wr_bytes_of(b->sep.ptr, b->sep.len);
        }
    }
    put_handle(hv, &n, b->pending);
    WR_TRY(kv_block_builder_add(&b->index, key, wr_bytes_of(hv, n)));
    b->has_pending = false;
    return WR_OK;
}

static wr_status flush_data_block(kv_sst_builder *b)
{
    wr_bytes contents;

    if (b->data.entry_cnt == 0)
        return WR_OK;
    WR_TRY(kv_block_builder_finish(&b->data, &contents));
    WR_TRY(emit_block(b, contents, b->o.compression == KV_COMP_ZSTD, &b->pending));
    kv_block_builder_reset(&b->data);
    b->has_pending = true;
    b->props.data_block_cnt++;
    return WR_OK;
}

static wr_status builder_add(kv_sst_builder *b, wr_bytes ikey, wr_bytes val)
{
    wr_bytes ukey = kv_ikey_user(ikey);
    uint64_t seq = kv_ikey_seq(ikey);
    bool new_user = b->props.entry_cnt == 0 ||
                    !wr_bytes_eq(ukey, kv_ikey_user(wr_bytes_of(b->last.ptr, b->last.len)));

    if (b->has_pending)
        WR_TRY(add_index_entry(b, &ikey));
    if (new_user && b->o.bloom_bits_per_key) {
        if (b->hash_cnt == b->hash_cap) {
            size_t cap = b->hash_cap ? 2 * b->hash_cap : 1024;
            uint64_t *h = wr_realloc(b->hashes, cap * sizeof(*h));
            if (h == NULL)
                return WR_ERR_NOMEM;
            b->hashes = h;
            b->hash_cap = cap;
        }
        b->hashes[b->hash_cnt++] = kv_bloom_hash(ukey);
    }
    WR_TRY(kv_block_builder_add(&b->data, ikey, val));
    WR_TRY(buf_set(&b->last, ikey));
    if (b->props.entry_cnt == 0) {
        WR_TRY(buf_set(&b->props.smallest, ikey));
        b->props.min_seq = b->props.max_seq = seq;
    }
    b->props.entry_cnt++;
    b->props.del_cnt += kv_ikey_type(ikey) == KV_TYPE_DEL;
    b->props.raw_key_len += ikey.len;
    b->props.raw_val_len += val.len;
    b->props.min_seq = seq < b->props.min_seq ? seq : b->props.min_seq;
    b->props.max_seq = seq > b->props.max_seq ? seq : b->props.max_seq;
    if (kv_block_builder_size(&b->data) >= b->o.block_size)
        return flush_data_block(b);
    return WR_OK;
}

wr_status kv_sst_builder_add(kv_sst_builder *b, wr_bytes ikey, wr_bytes val)
{
    wr_status st;

    if (b->failed != WR_OK)
        return b->failed;
    if (ikey.len < KV_TRAILER || kv_ikey_type(ikey) > KV_TYPE_PUT)
        return wr_err(WR_ERR_INVAL, "%s: not an internal key (%zu bytes)", b->path, ikey.len);
    if (ikey.len - KV_TRAILER > KV_KEY_MAX || val.len > KV_VALUE_MAX)
        return wr_err(WR_ERR_TOOBIG, "%s: key of %zu or value of %zu bytes over the limit", b->path,
                      ikey.len - KV_TRAILER, val.len);
    if (b->props.entry_cnt > 0 && kv_ikey_cmp(ikey, wr_bytes_of(b->last.ptr, b->last.len)) <= 0)
        return wr_err(WR_ERR_INVAL, "%s: key %llu added out of order (not above the previous key)",
                      b->path, (ull)b->props.entry_cnt);
    if ((st = builder_add(b, ikey, val)) != WR_OK)
        return builder_fail(b, st);
    return WR_OK;
}

uint64_t kv_sst_builder_entry_cnt(const kv_sst_builder *b)
{
    return b->props.entry_cnt;
}

uint64_t kv_sst_builder_file_len(const kv_sst_builder *b)
{
    return b->off + b->wbuf.len;
}

static wr_status encode_props(const kv_sst_props *p, wr_buf *out)
{
    const uint64_t f[KV_PROPS_FIELDS] = {p->entry_cnt,   p->del_cnt,        p->raw_key_len,
                                         p->raw_val_len, p->data_block_cnt, p->min_seq,
                                         p->max_seq,     p->created_ms,     p->bloom_bits_per_key};
    uint8_t *d;

    out->len = 0;
    WR_TRY(wr_buf_reserve(out, (KV_PROPS_FIELDS + 3) * WR_VARINT_MAX + p->smallest.len +
                                   p->largest.len));
    d = out->ptr;
    d += wr_put_uvarint(d, KV_PROPS_FIELDS);
    for (unsigned i = 0; i < KV_PROPS_FIELDS; i++)
        d += wr_put_uvarint(d, f[i]);
    d += wr_put_uvarint(d, p->smallest.len);
    if (p->smallest.len)
        memcpy(d, p->smallest.ptr, p->smallest.len);
    d += p->smallest.len;
    d += wr_put_uvarint(d, p->largest.len);
    if (p->largest.len)
        memcpy(d, p->largest.ptr, p->largest.len);
    d += p->largest.len;
    out->len = (size_t)(d - out->ptr);
    return WR_OK;
}

static wr_status builder_finish(kv_sst_builder *b)
{
    kv_handle filter_h = {0, 0}, props_h, index_h;
    wr_bytes contents;
    uint8_t *f;

    WR_TRY(flush_data_block(b));
    if (b->has_pending)
        WR_TRY(add_index_entry(b, NULL));
    if (b->o.bloom_bits_per_key) {
        b->zbuf.len = 0;
        WR_TRY(kv_bloom_build(b->hashes, b->hash_cnt, b->o.bloom_bits_per_key, &b->zbuf));
        /* emit_block copies before it reuses zbuf only when compressing, which it is not here */
        WR_TRY(emit_block(b, wr_bytes_of(b->zbuf.ptr, b->zbuf.len), false, &filter_h));
    }
    b->props.bloom_bits_per_key = b->o.bloom_bits_per_key;
    b->props.created_ms = (uint64_t)wr_wall_ms();
    WR_TRY(buf_set(&b->props.largest, wr_bytes_of(b->last.ptr, b->last.len)));
    WR_TRY(encode_props(&b->props, &b->zbuf));
    WR_TRY(emit_block(b, wr_bytes_of(b->zbuf.ptr, b->zbuf.len), false, &props_h));
    WR_TRY(kv_block_builder_finish(&b->index, &contents));
    WR_TRY(emit_block(b, contents, false, &index_h));
    WR_TRY(wr_buf_reserve(&b->wbuf, KV_SST_FOOTER));
    f = b->wbuf.ptr + b->wbuf.len;
    wr_put64(f, index_h.off);
    wr_put64(f + 8, index_h.size);
    wr_put64(f + 16, filter_h.off);
    wr_put64(f + 24, filter_h.size);
    wr_put64(f + 32, props_h.off);
    wr_put64(f + 40, props_h.size);
    wr_put32(f + 48, KV_SST_VERSION);
    wr_put32(f + 52, 0);
    wr_put64(f + 56, wr_xxh3(f, 56));
    wr_put64(f + 64, KV_SST_MAGIC);
    b->wbuf.len += KV_SST_FOOTER;
    WR_TRY(wbuf_flush(b));
    WR_TRY(wr_fdatasync(b->fd, b->path));
    if (close(b->fd) != 0) {
        int e = errno;
        b->fd = -1;
        return wr_err(wr_status_from_errno(e), "%s: close: %s", b->path, strerror(e));
    }
    b->fd = -1;
    return WR_OK;
}

wr_status kv_sst_builder_finish(kv_sst_builder *b, kv_sst_props *props_out, uint64_t *file_len_out)
{
    wr_status st = b->failed;

    if (st == WR_OK && (st = builder_finish(b)) == WR_OK) {
        if (file_len_out)
            *file_len_out = b->off;
        if (props_out) {
            *props_out = b->props;
            memset(&b->props, 0, sizeof(b->props)); /* moved */
        }
        builder_free(b);
        return WR_OK;
    }
    kv_sst_builder_abandon(b);
    return st;
}

void kv_sst_builder_abandon(kv_sst_builder *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
    if (unlink(b->path) != 0 && errno != ENOENT)
        WR_LOGW("%s: remove abandoned SST: %s", b->path, strerror(errno));
    builder_free(b);
}

/* ================================================================ reader */
typedef struct sst_idx {
    uint64_t off, size;        /* the data block's handle */
    uint32_t key_off, key_len; /* its separator, in kv_sst.keys */
} sst_idx;

struct kv_sst {
    char *path; /* owned */
    int fd;
    uint64_t file_len;
    uint64_t data_end; /* data blocks lie in [0, data_end) */
    kv_handle index_h, filter_h, props_h;
    kv_sst_props props; /* owned smallest/largest */
    sst_idx *idx;       /* owned: one per data block */
    uint32_t idx_cnt;
    wr_buf keys;    /* owned: separators back to back */
    wr_buf filter;  /* owned: filter block contents */
    kv_bloom bloom; /* borrowed from filter */
    bool has_filter;
    kv_cache *cache;      /* borrowed from kv_sst_set_cache()'s caller; NULL: no block cache */
    uint64_t file_id;     /* this table's key in the cache */
    const uint8_t *map;   /* kv_sst_map(): the whole file, read-only; NULL: not mapped */
    _Atomic uint8_t *mok; /* owned, per data block: MAP_UNKNOWN, MAP_RAW or MAP_PACKED */
};

enum { MAP_UNKNOWN = 0, MAP_RAW = 1, MAP_PACKED = 2 }; /* a data block's state in a mapping */

static inline wr_bytes idx_key(const kv_sst *t, uint32_t i)
{
    return wr_bytes_of(t->keys.ptr + t->idx[i].key_off, t->idx[i].key_len);
}

static inline kv_handle idx_handle(const kv_sst *t, uint32_t i)
{
    kv_handle h = {t->idx[i].off, t->idx[i].size};
    return h;
}

const kv_sst_props *kv_sst_properties(const kv_sst *t)
{
    return &t->props;
}

uint64_t kv_sst_file_len(const kv_sst *t)
{
    return t->file_len;
}

const char *kv_sst_path(const kv_sst *t)
{
    return t->path;
}

static wr_status read_error(const kv_sst *t, int e, uint64_t off)
{
    return wr_err(wr_status_from_errno(e), "%s: read at offset %llu: %s", t->path, (ull)off,
                  strerror(e));
}

static wr_status read_truncated(const kv_sst *t, uint64_t off)
{
    return wr_err(WR_ERR_CORRUPT, "%s: truncated: no bytes at offset %llu", t->path, (ull)off);
}

/* Read [off, off + n) with pread(): the path when the thread's ring is unusable. */
static wr_status pread_sync(const kv_sst *t, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = pread(t->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            return read_error(t, e, off + done);
        }
        if (r == 0)
            return read_truncated(t, off + done);
        done += (size_t)r;
    }
    return WR_OK;
}

/* Read [off, off + n) through the calling thread's io_uring. A thread without a ring (out of
 * memory) or whose ring failed or is full of its own caller's ops reads with pread() instead:
 * the result is the same, only the path differs. */
static wr_status pread_full(const kv_sst *t, void *buf, size_t n, uint64_t off)
{
    wr_ring *r = wr_ring_thread();
    size_t got = 0;
    int err = 0;
    wr_status st;

    if (r == NULL)
        return pread_sync(t, buf, n, off);
    st = wr_ring_pread_all(r, t->fd, buf, n, off, &got, &err);
    if (st == WR_OK)
        return got == n ? WR_OK : read_truncated(t, off + got);
    if (err != 0)
        return read_error(t, err, off + got);
    return pread_sync(t, (uint8_t *)buf + got, n - got, off + got);
}

/* One zstd decompression context per thread, made on first use and freed at thread exit:
 * ZSTD_decompress() would allocate and initialise a fresh one (~100 KiB) for every block. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static bool dctx_key_ok;

static void dctx_free(void *p)
{
    ZSTD_freeDCtx(p);
}

static void dctx_key_init(void)
{
    dctx_key_ok = pthread_key_create(&dctx_key, dctx_free) == 0;
}

static ZSTD_DCtx *thread_dctx(void)
{
    ZSTD_DCtx *d;

    pthread_once(&dctx_once, dctx_key_init);
    if (!dctx_key_ok)
        return NULL;
    if ((d = pthread_getspecific(dctx_key)) == NULL) {
        if ((d = ZSTD_createDCtx()) == NULL)
            return NULL;
        if (pthread_setspecific(dctx_key, d) != 0) {
            ZSTD_freeDCtx(d);
            return NULL;
        }
    }
    return d;
}

static wr_status block_check_handle(const kv_sst *t, kv_handle h)
{
    uint64_t lim = t->file_len - KV_SST_FOOTER; /* open checked file_len >= KV_SST_FOOTER */

    if (h.size > lim || lim - h.size < KV_BLOCK_TRAILER || h.off > lim - h.size - KV_BLOCK_TRAILER)
        return wr_err(WR_ERR_CORRUPT, "%s: block at offset %llu of %llu bytes lies past the end",
                      t->path, (ull)h.off, (ull)h.size);
    return WR_OK;
}

/* @out->ptr holds the h.size + KV_BLOCK_TRAILER stored bytes of the block at @h: check the
 * trailer and decompress; @out gets the contents. */
static wr_status block_decode(const kv_sst *t, kv_handle h, wr_buf *out)
{
    wr_buf z = {0};
    ZSTD_DCtx *dctx;
    uint64_t raw_len;
    size_t n, got;
    uint8_t type;

    out->len = 0;
    if (wr_xxh3(out->ptr, (size_t)h.size + 1) != wr_get64(out->ptr + h.size + 1))
        return wr_err(WR_ERR_CORRUPT, "%s: block checksum mismatch at offset %llu (%llu bytes)",
                      t->path, (ull)h.off, (ull)h.size);
    type = out->ptr[h.size];
    if (type == KV_COMP_NONE) {
        out->len = (size_t)h.size;
        return WR_OK;
    }
    if (type != KV_COMP_ZSTD)
        return wr_err(WR_ERR_UNSUPPORTED, "%s: block at offset %llu: compression type %u unknown",
                      t->path, (ull)h.off, type);
    n = wr_get_uvarint(out->ptr, out->ptr + h.size, &raw_len);
    if (n == 0 || raw_len > KV_BLOCK_MAX)
        return wr_err(WR_ERR_CORRUPT, "%s: block at offset %llu: bad uncompressed length", t->path,
                      (ull)h.off);
    if (wr_buf_reserve(&z, (size_t)raw_len + 1) != WR_OK)
        return WR_ERR_NOMEM;
    if ((dctx = thread_dctx()) == NULL) {
        wr_buf_fini(&z);
        return WR_ERR_NOMEM;
    }
    got = ZSTD_decompressDCtx(dctx, z.ptr, (size_t)raw_len, out->ptr + n, (size_t)h.size - n);
    if (ZSTD_isError(got) || got != raw_len) {
        wr_buf_fini(&z);
        return wr_err(WR_ERR_CORRUPT,
                      "%s: block at offset %llu: zstd frame does not decode to "
                      "%llu bytes",
                      t->path, (ull)h.off, (ull)raw_len);
    }
    z.len = got;
    wr_buf_fini(out);
    *out = z;
    return WR_OK;
}

wr_status kv_sst_read_block(const kv_sst *t, kv_handle h, wr_buf *out)
{
    WR_TRY(block_check_handle(t, h));
    out->len = 0;
    WR_TRY(wr_buf_reserve(out, (size_t)h.size + KV_BLOCK_TRAILER));
    WR_TRY(pread_full(t, out->ptr, (size_t)h.size + KV_BLOCK_TRAILER, h.off));
    return block_decode(t, h, out);
}

static wr_status decode_props(const kv_sst *t, const uint8_t *p, size_t len, kv_sst_props *out)
{
    const uint8_t *end = p + len;
    uint64_t f[KV_PROPS_FIELDS], cnt, v, klen;
    wr_buf *keys[2] = {&out->smallest, &out->largest};
    size_t n;

#define PROPS_BAD(what)                                                                            \
    wr_err(WR_ERR_CORRUPT, "%s: properties block at offset %llu: %s", t->path,                     \
           (ull)t->props_h.off, what)
    if ((n = wr_get_uvarint(p, end, &cnt)) == 0 || cnt < KV_PROPS_FIELDS || cnt > 1000)
        return PROPS_BAD("bad field count");
    p += n;
    for (uint64_t i = 0; i < cnt; i++) { /* fields after the known ones are skipped */
        if ((n = wr_get_uvarint(p, end, &v)) == 0)
            return PROPS_BAD("truncated field");
        p += n;
        if (i < KV_PROPS_FIELDS)
            f[i] = v;
    }
    for (int k = 0; k < 2; k++) {
        if ((n = wr_get_uvarint(p, end, &klen)) == 0 || klen > (uint64_t)(end - p - n))
            return PROPS_BAD("truncated key");
        p += n;
        if ((f[0] == 0) != (klen == 0) || (klen && klen < KV_TRAILER))
            return PROPS_BAD("bad smallest/largest key");
        WR_TRY(buf_set(keys[k], wr_bytes_of(p, (size_t)klen)));
        p += klen;
    }
    if (p != end)
        return PROPS_BAD("bytes after the last field");
    out->entry_cnt = f[0];
    out->del_cnt = f[1];
    out->raw_key_len = f[2];
    out->raw_val_len = f[3];
    out->data_block_cnt = f[4];
    out->min_seq = f[5];
    out->max_seq = f[6];
    out->created_ms = f[7];
    out->bloom_bits_per_key = f[8];
    if (out->del_cnt > out->entry_cnt || out->min_seq > out->max_seq ||
        (out->entry_cnt > 0 && kv_ikey_cmp(wr_bytes_of(out->smallest.ptr, out->smallest.len),
                                           wr_bytes_of(out->largest.ptr, out->largest.len)) > 0))
        return PROPS_BAD("inconsistent counts, sequence range or key range");
#undef PROPS_BAD
    return WR_OK;
}

static wr_status decode_index(kv_sst *t, const uint8_t *p, size_t len)
{
    kv_block blk;
    kv_block_iter it;
    wr_status st;
    size_t cap = 0;

#define INDEX_BAD(what)                                                                            \
    wr_err(WR_ERR_CORRUPT, "%s: index block at offset %llu: %s", t->path, (ull)t->index_h.off, what)
    if (kv_block_parse(p, len, &blk) != WR_OK)
        return INDEX_BAD("bad restart array");
    kv_block_iter_init(&it, &blk);
    for (st = kv_block_iter_first(&it); st == WR_OK; st = kv_block_iter_next(&it)) {
        wr_bytes k = kv_block_iter_key(&it);
        const uint8_t *v = it.val.ptr, *vend = it.val.ptr + it.val.len;
        uint64_t off, size;
        size_t n, m;
        sst_idx *e;

        if (t->idx_cnt == cap) {
            sst_idx *ni;
            cap = cap ? 2 * cap : 64;
            if (cap > UINT32_MAX || (ni = wr_realloc(t->idx, cap * sizeof(*ni))) == NULL) {
                st = WR_ERR_NOMEM;
                break;
            }
            t->idx = ni;
        }
        if ((n = wr_get_uvarint(v, vend, &off)) == 0 ||
            (m = wr_get_uvarint(v + n, vend, &size)) == 0 || n + m != it.val.len) {
            st = INDEX_BAD("malformed block handle");
            break;
        }
        if (size < 4 || size > KV_BLOCK_MAX || off > t->data_end ||
            size + KV_BLOCK_TRAILER > t->data_end - off) {
            st = INDEX_BAD("block handle outside the data area");
            break;
        }
        if (t->idx_cnt > 0 && kv_ikey_cmp(idx_key(t, t->idx_cnt - 1), k) >= 0) {
            st = INDEX_BAD("separators out of order");
            break;
        }
        e = &t->idx[t->idx_cnt];
        e->off = off;
        e->size = size;
        e->key_off = (uint32_t)t->keys.len;
        e->key_len = (uint32_t)k.len;
        if (t->keys.len + k.len > UINT32_MAX) {
            st = INDEX_BAD("too many separator bytes");
            break;
        }
        if ((st = wr_buf_append(&t->keys, k.ptr, k.len)) != WR_OK)
            break;
        t->idx_cnt++;
    }
    kv_block_iter_fini(&it);
    if (st == WR_ERR_CORRUPT)
        return INDEX_BAD("malformed entry");
    if (st != WR_EOF)
        return st;
    if (t->idx_cnt != t->props.data_block_cnt)
        return INDEX_BAD("entry count differs from the properties' data block count");
#undef INDEX_BAD
    return WR_OK;
}

/* Check a meta-block handle from the footer; @opt allows {0, 0} (absent). */
static wr_status check_meta(const kv_sst *t, kv_handle h, const char *what, bool opt)
{
    uint64_t lim = t->file_len - KV_SST_FOOTER;

    if (opt && h.off == 0 && h.size == 0)
        return WR_OK;
    if (h.size < 1 || h.size > lim || h.off > lim - h.size ||
        lim - h.size - h.off < KV_BLOCK_TRAILER)
        return wr_err(WR_ERR_CORRUPT,
                      "%s: footer at offset %llu: %s handle (offset %llu, %llu bytes) outside "
                      "the file",
                      t->path, (ull)lim, what, (ull)h.off, (ull)h.size);
    return WR_OK;
}

/* Open and load the meta blocks; *bad_off gets the offset an error refers to. */
static wr_status sst_open(const char *path, kv_sst **out, uint64_t *bad_off)
{
    uint8_t f[KV_SST_FOOTER];
    struct stat sb;
    wr_buf blk = {0};
    kv_sst *t;
    uint64_t foot;
    uint32_t ver;
    wr_status rc;

    *out = NULL;
    *bad_off = 0;
    if ((t = wr_calloc(1, sizeof(*t))) == NULL)
        return WR_ERR_NOMEM;
    t->fd = -1;
    if ((t->path = wr_strdup(path)) == NULL) {
        rc = WR_ERR_NOMEM;
        goto err_close;
    }
    if ((t->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(t->fd, &sb) != 0) {
        int e = errno;
        rc = wr_err(wr_status_from_errno(e), "%s: open: %s", path, strerror(e));
        goto err_close;
    }
    t->file_len = (uint64_t)sb.st_size;
    if (t->file_len < KV_SST_FOOTER) {
        rc = wr_err(WR_ERR_CORRUPT, "%s: %llu bytes at offset 0: too short for an SST footer", path,
                    (ull)t->file_len);
        goto err_close;
    }
    foot = *bad_off = t->file_len - KV_SST_FOOTER;
    if ((rc = pread_full(t, f, sizeof f, foot)) != WR_OK)
        goto err_close;
    if (wr_get64(f + 64) != KV_SST_MAGIC) {
        *bad_off = foot + 64;
        rc = wr_err(WR_ERR_CORRUPT, "%s: bad magic at offset %llu: not a weir SST, or damaged",
                    path, (ull)*bad_off);
        goto err_close;
    }
    if ((ver = wr_get32(f + 48)) != KV_SST_VERSION) {
        *bad_off = foot + 48;
        rc = wr_err(WR_ERR_UNSUPPORTED,
                    "%s: SST format version %u at offset %llu; this build reads version %u", path,
                    ver, (ull)*bad_off, KV_SST_VERSION);
        goto err_close;
    }
    if (wr_xxh3(f, 56) != wr_get64(f + 56) || wr_get32(f + 52) != 0) {
        rc = wr_err(WR_ERR_CORRUPT, "%s: footer checksum mismatch at offset %llu", path, (ull)foot);
        goto err_close;
    }
    t->index_h.off = wr_get64(f);
    t->index_h.size = wr_get64(f + 8);
    t->filter_h.off = wr_get64(f + 16);
    t->filter_h.size = wr_get64(f + 24);
    t->props_h.off = wr_get64(f + 32);
    t->props_h.size = wr_get64(f + 40);
    if ((rc = check_meta(t, t->index_h, "index", false)) != WR_OK ||
        (rc = check_meta(t, t->props_h, "properties", false)) != WR_OK ||
        (rc = check_meta(t, t->filter_h, "filter", true)) != WR_OK)
        goto err_close;
    t->data_end = t->props_h.off < t->index_h.off ? t->props_h.off : t->index_h.off;
    if (t->filter_h.size && t->filter_h.off < t->data_end)
        t->data_end = t->filter_h.off;

    *bad_off = t->props_h.off;
    if ((rc = kv_sst_read_block(t, t->props_h, &blk)) != WR_OK ||
        (rc = decode_props(t, blk.ptr, blk.len, &t->props)) != WR_OK)
        goto err_free_blk;
    if ((t->props.bloom_bits_per_key == 0) != (t->filter_h.size == 0)) {
        rc = wr_err(WR_ERR_CORRUPT,
                    "%s: properties block at offset %llu: filter %s but footer "
                    "says otherwise",
                    path, (ull)*bad_off, t->props.bloom_bits_per_key ? "expected" : "unexpected");
        goto err_free_blk;
    }
    *bad_off = t->index_h.off;
    if ((rc = kv_sst_read_block(t, t->index_h, &blk)) != WR_OK ||
        (rc = decode_index(t, blk.ptr, blk.len)) != WR_OK)
        goto err_free_blk;
    if (t->filter_h.size) {
        *bad_off = t->filter_h.off;
        if ((rc = kv_sst_read_block(t, t->filter_h, &t->filter)) != WR_OK)
            goto err_free_blk;
        if (kv_bloom_parse(t->filter.ptr, t->filter.len, &t->bloom) != WR_OK) {
            rc = wr_err(WR_ERR_CORRUPT, "%s: filter block at offset %llu: malformed", path,
                        (ull)*bad_off);
            goto err_free_blk;
        }
        t->has_filter = true;
    }
    wr_buf_fini(&blk);
    *out = t;
    return WR_OK;
err_free_blk:
    wr_buf_fini(&blk);
err_close:
    kv_sst_close(t);
    return rc;
}

wr_status kv_sst_open(const char *path, kv_sst **out)
{
    uint64_t bad_off;
    return sst_open(path, out, &bad_off);
}

void kv_sst_close(kv_sst *t)
{
    if (t == NULL)
        return;
    if (t->map != NULL)
        munmap((void *)(uintptr_t)t->map, (size_t)t->file_len);
    wr_free(t->mok);
    if (t->fd >= 0)
        close(t->fd);
    kv_sst_props_fini(&t->props);
    wr_free(t->idx);
    wr_buf_fini(&t->keys);
    wr_buf_fini(&t->filter);
    wr_free(t->path);
    wr_free(t);
}

bool kv_sst_may_contain(const kv_sst *t, wr_bytes ukey)
{
    return !t->has_filter || kv_bloom_may_contain(&t->bloom, kv_bloom_hash(ukey));
}

/* The first data block whose separator is >= @target (idx_cnt when none). */
static uint32_t idx_lower_bound(const kv_sst *t, wr_bytes target)
{
    uint32_t lo = 0, hi = t->idx_cnt;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (kv_ikey_cmp(idx_key(t, mid), target) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static wr_status data_block_bad(const kv_sst *t, uint32_t i, const char *what)
{
    return wr_err(WR_ERR_CORRUPT, "%s: data block %u at offset %llu: %s", t->path, i,
                  (ull)t->idx[i].off, what);
}

wr_status kv_sst_map(kv_sst *t)
{
    void *m;
    if (t->map != NULL || t->idx_cnt == 0)
        return WR_OK;
    if ((t->mok = wr_calloc(t->idx_cnt, sizeof(*t->mok))) == NULL)
        return WR_ERR_NOMEM;
    if ((m = mmap(NULL, (size_t)t->file_len, PROT_READ, MAP_SHARED, t->fd, 0)) == MAP_FAILED) {
        wr_free(t->mok);
        t->mok = NULL;
        return wr_err(wr_status_from_errno(errno), "%s: cannot map: %s", t->path, strerror(errno));
    }
    t->map = m;
    return WR_OK;
}

void kv_sst_set_cache(kv_sst *t, kv_cache *c, uint64_t file_id)
{
    t->cache = c;
    t->file_id = file_id;
}

/* ---------------------------------------------------------------- data blocks in use */
/* One data block a reader is using: pinned in the block cache, or in the reader's own buffer. */
typedef struct sst_blk {
    kv_cache_handle *ch; /* pinned entry holding the bytes, or NULL */
    wr_buf raw;          /* owned: the bytes when not cached (kept for reuse) */
    kv_block blk;        /* view of ch's value or of raw */
} sst_blk;

static void blk_unpin(const kv_sst *t, sst_blk *b)
{
    if (b->ch != NULL) {
        kv_cache_release(t->cache, b->ch);
        b->ch = NULL;
    }
}

static void blk_fini(const kv_sst *t, sst_blk *b)
{
    blk_unpin(t, b);
    wr_buf_fini(&b->raw);
}

/* A view of a cached block: only blocks that passed kv_block_parse() are inserted, and cached
 * bytes never change, so the restart array need not be checked again. */
static void blk_view_cached(sst_blk *b)
{
    wr_bytes v = kv_cache_value(b->ch);
    uint32_t cnt = wr_get32(v.ptr + v.len - 4);

    assert(v.len >= 4 && v.len <= KV_BLOCK_MAX && cnt <= (v.len - 4) / 4);
    b->blk.p = v.ptr;
    b->blk.len = (uint32_t)v.len;
    b->blk.rst_cnt = cnt;
    b->blk.rst_off = (uint32_t)(v.len - 4 - 4 * (size_t)cnt);
}

/* b->raw holds the contents of data block @i, just read: parse them and, with a cache, move
 * them into it (trimmed to their length, since the cache charges what they occupy). When the
 * cache cannot take them (out of memory), they stay in b->raw and the read still succeeds. */
static wr_status blk_adopt(const kv_sst *t, uint32_t i, sst_blk *b, bool fill)
{
    uint8_t *p;

    if (kv_block_parse(b->raw.ptr, b->raw.len, &b->blk) != WR_OK)
        return data_block_bad(t, i, "bad restart array");
    if (t->cache == NULL || !fill)
        return WR_OK;
    if (b->raw.cap > b->raw.len && (p = wr_realloc(b->raw.ptr, b->raw.len)) != NULL) {
        b->raw.ptr = p;
        b->raw.cap = b->raw.len;
        b->blk.p = p;
    }
    if (kv_cache_insert(t->cache, t->file_id, t->idx[i].off, b->raw.ptr, b->raw.len,
                        b->raw.cap + KV_CACHE_OVERHEAD, &b->ch) == WR_OK)
        memset(&b->raw, 0, sizeof(b->raw)); /* moved; b->blk still views the same bytes */
    return WR_OK;
}

/* Data block @i straight from the mapping: its checksum is checked the first time (the file
 * never changes), then the block is viewed in place, no copy and no system call. WR_AGAIN for
 * a compressed block: it takes the cache path. */
static wr_status blk_map(const kv_sst *t, uint32_t i, sst_blk *b)
{
    kv_handle h = idx_handle(t, i);
    const uint8_t *p = t->map + h.off;
    uint8_t state = atomic_load_explicit(&t->mok[i], memory_order_acquire);

    if (state == MAP_PACKED)
        return WR_AGAIN;
    if (state == MAP_UNKNOWN) {
        WR_TRY(block_check_handle(t, h));
        if (wr_xxh3(p, (size_t)h.size + 1) != wr_get64(p + h.size + 1))
            return wr_err(WR_ERR_CORRUPT, "%s: block checksum mismatch at offset %llu (%llu bytes)",
                          t->path, (ull)h.off, (ull)h.size);
        state = p[h.size] == KV_COMP_NONE ? MAP_RAW : MAP_PACKED;
        atomic_store_explicit(&t->mok[i], state, memory_order_release);
        if (state == MAP_PACKED)
            return WR_AGAIN;
    }
    if (kv_block_parse(p, (size_t)h.size, &b->blk) != WR_OK)
        return data_block_bad(t, i, "bad restart array");
    return WR_OK;
}

/* Make @b hold data block @i (unpinning what it held): from the cache, else from disk (and,
 * with @fill, into the cache). */
static wr_status blk_load(const kv_sst *t, uint32_t i, sst_blk *b, bool fill)
{
    blk_unpin(t, b);
    if (t->map != NULL) {
        wr_status st = blk_map(t, i, b);
        if (st != WR_AGAIN)
            return st;
    }
    if (t->cache != NULL &&
        (b->ch = kv_cache_lookup(t->cache, t->file_id, t->idx[i].off)) != NULL) {
        blk_view_cached(b);
        return WR_OK;
    }
    WR_TRY(kv_sst_read_block(t, idx_handle(t, i), &b->raw));
    return blk_adopt(t, i, b, fill);
}

/* The newest version of @ukey at or below @target's sequence in data block @i (@blk). */
static wr_status blk_find(const kv_sst *t, uint32_t i, const kv_block *blk, wr_bytes target,
                          wr_bytes ukey, wr_buf *val, kv_found *found_out)
{
    kv_block_iter it;
    wr_status st;

    kv_block_iter_init(&it, blk);
    st = kv_block_iter_seek(&it, target);
    if (st == WR_OK && wr_bytes_eq(kv_ikey_user(kv_block_iter_key(&it)), ukey)) {
        kv_type type = kv_ikey_type(kv_block_iter_key(&it));
        if (type == KV_TYPE_PUT) {
            if ((st = buf_set(val, it.val)) == WR_OK)
                *found_out = KV_FOUND_PUT;
        } else if (type == KV_TYPE_DEL) {
            *found_out = KV_FOUND_DEL;
        } else {
            st = data_block_bad(t, i, "unknown entry type");
        }
    } else if (st == WR_ERR_CORRUPT) {
        st = data_block_bad(t, i, "malformed entry");
    } else if (st == WR_EOF) {
        st = WR_OK;
    }
    kv_block_iter_fini(&it);
    return st;
}

static wr_bytes seek_key(uint8_t *dst, wr_bytes ukey, uint64_t snap_seq)
{
    return wr_bytes_of(
        dst, kv_ikey_put(dst, ukey, snap_seq < KV_SEQ_MAX ? snap_seq : KV_SEQ_MAX, KV_TYPE_SEEK));
}

wr_status kv_sst_get(const kv_sst *t, wr_bytes ukey, uint64_t snap_seq, wr_buf *val,
                     kv_found *found_out)
{
    uint8_t small[256];
    uint8_t *tk = small;
    sst_blk b = {0};
    wr_bytes target;
    uint32_t i;
    wr_status st;

    *found_out = KV_FOUND_NONE;
    if (ukey.len > KV_KEY_MAX)
        return WR_ERR_TOOBIG;
    if (!kv_sst_may_contain(t, ukey))
        return WR_OK;
    if (ukey.len + KV_TRAILER > sizeof small && (tk = wr_malloc(ukey.len + KV_TRAILER)) == NULL)
        return WR_ERR_NOMEM;
    target = seek_key(tk, ukey, snap_seq);
    /* Only block i can hold the answer: if every key of it is < target, then target <= its
     * separator < the next block's first user key. */
    if ((i = idx_lower_bound(t, target)) == t->idx_cnt) {
        st = WR_OK;
        goto out_free_key;
    }
    if ((st = blk_load(t, i, &b, true)) == WR_OK)
        st = blk_find(t, i, &b.blk, target, ukey, val, found_out);
    blk_fini(t, &b);
out_free_key:
    if (tk != small)
        wr_free(tk);
    return st;
}

/* ---------------------------------------------------------------- multi-get */
#define MGET_TAG      (UINT64_C(0x4b564d47) << 32) /* "KVMG": marks this file's ring reads */
#define MGET_TAG_MASK (UINT64_C(0xffffffff) << 32)
#define MGET_REAP     64u /* completions per wr_ring_reap() call */

typedef struct mget_key {
    uint32_t blk; /* the data block that can hold it */
    size_t key;   /* its index in the caller's arrays */
} mget_key;

/* One distinct data block the keys need. */
typedef struct mget_blk {
    uint32_t i;     /* data block index */
    int32_t res;    /* the ring read's result, when ring_done */
    bool queued;    /* on the ring, completion not reaped yet */
    bool ring_done; /* the ring read completed: res is valid */
    wr_status st;   /* of getting the block */
    char *err;      /* owned: wr_errmsg() of a failed st (NULL if strdup failed) */
    sst_blk b;
} mget_blk;

static int mget_key_cmp(const void *a, const void *b)
{
    const mget_key *x = a, *y = b;
    if (x->blk != y->blk)
        return x->blk < y->blk ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static void mget_fail(mget_blk *m, wr_status st)
{
    m->st = st;
    m->err = wr_strdup(wr_errmsg());
}

/* Queue the reads of @rd on the thread's ring, as many as it has room for, submit them in one
 * go, reap them all, and repeat until every read completed. Blocks the ring could not take
 * (no ring, a ring full of its caller's own ops, a failed ring) keep ring_done false and are
 * read with pread by mget_finish(). */
static void mget_ring_reads(const kv_sst *t, mget_blk **rd, size_t nrd)
{
    wr_ring *r = wr_ring_thread();
    size_t next = 0, inflight = 0, leaked = 0;
    wr_cqe cq[MGET_REAP];

    if (r == NULL)
        return;
    while (next < nrd) {
        for (; next < nrd; next++, inflight++) {
            mget_blk *m = rd[next];
            kv_handle h = idx_handle(t, m->i);
            if (wr_ring_read(r, t->fd, m->b.raw.ptr, (size_t)h.size + KV_BLOCK_TRAILER, h.off, 0,
                             MGET_TAG | next) != WR_OK)
                break; /* WR_AGAIN: no free slot; anything else: the ring failed */
            m->queued = true;
        }
        if (inflight == 0)
            return;
        if (wr_ring_submit(r, (unsigned)inflight) != WR_OK)
            goto err_ring;
        while (inflight > 0) {
            unsigned k = wr_ring_reap(r, cq, inflight < MGET_REAP ? (unsigned)inflight : MGET_REAP);
            if (k == 0) {
                if (wr_ring_inflight(r) == 0 || wr_ring_submit(r, 1) != WR_OK)
                    goto err_ring;
                continue;
            }
            for (unsigned j = 0; j < k; j++) {
                uint64_t idx = cq[j].tag & ~MGET_TAG_MASK;
                if ((cq[j].tag & MGET_TAG_MASK) != MGET_TAG || idx >= nrd || !rd[idx]->queued) {
                    /* someone left a completion on the thread's ring: a bug in that caller */
                    WR_LOGE("%s: multi-get reaped a foreign ring completion (tag %llx); dropped",
                            t->path, (ull)cq[j].tag);
                    continue;
                }
                rd[idx]->queued = false;
                rd[idx]->ring_done = true;
                rd[idx]->res = cq[j].res;
                inflight--;
            }
        }
    }
    return;
err_ring:
    /* The ring's state is unknown and the kernel may still fill the buffers of reads in
     * flight: leak those buffers rather than free them; mget_finish() reads the blocks again. */
    for (size_t j = 0; j < next; j++)
        if (rd[j]->queued) {
            memset(&rd[j]->b.raw, 0, sizeof(rd[j]->b.raw));
            rd[j]->queued = false;
            leaked++;
        }
    WR_LOGE("%s: io_uring failed in a multi-get (%s); %zu read buffers leaked, using pread",
            t->path, wr_errmsg(), leaked);
}

/* Turn block @m's read into a parsed (and, with a cache, cached) block, or a failure. */
static void mget_finish(const kv_sst *t, mget_blk *m)
{
    kv_handle h = idx_handle(t, m->i);
    size_t len = (size_t)h.size + KV_BLOCK_TRAILER, got;
    wr_status st;

    if (!m->ring_done) {
        st = kv_sst_read_block(t, h, &m->b.raw);
    } else if (m->res < 0 && m->res != -EINTR && m->res != -EAGAIN) {
        st = read_error(t, -m->res, h.off);
    } else {
        /* a short or interrupted read: the rest (or the truncation error) the slow way */
        got = m->res < 0 ? 0 : (size_t)m->res;
        st = got < len ? pread_full(t, m->b.raw.ptr + got, len - got, h.off + got) : WR_OK;
        if (st == WR_OK)
            st = block_decode(t, h, &m->b.raw);
    }
    if (st == WR_OK)
        st = blk_adopt(t, m->i, &m->b, true);
    if (st != WR_OK)
        mget_fail(m, st);
}

wr_status kv_sst_multi_get(const kv_sst *t, const wr_bytes *ukeys, size_t n, uint64_t snap_seq,
                           wr_buf *vals, kv_found *found, wr_status *st)
{
    mget_key *mk = NULL;  /* the keys that need a block, sorted by block */
    size_t *kmb = NULL;   /* per key: its entry in mb, SIZE_MAX when none */
    size_t *toff = NULL;  /* per key: its seek key's offset in tk */
    mget_blk *mb = NULL;  /* the distinct blocks, in file order */
    mget_blk **rd = NULL; /* the blocks to read from disk */
    wr_buf tk = {0};      /* seek keys back to back */
    size_t nk = 0, keep = 0, nb = 0, nrd = 0, tlen = 0;
    char *first_msg = NULL;
    wr_status ret = WR_OK;

    for (size_t i = 0; i < n; i++) {
        found[i] = KV_FOUND_NONE;
        st[i] = WR_OK;
    }
    if (n == 0)
        return WR_OK;
    if ((mk = wr_malloc(n * sizeof(*mk))) == NULL || (kmb = wr_malloc(n * sizeof(*kmb))) == NULL ||
        (toff = wr_malloc(n * sizeof(*toff))) == NULL)
        goto err_nomem;
    for (size_t i = 0; i < n; i++) {
        kmb[i] = SIZE_MAX;
        if (ukeys[i].len > KV_KEY_MAX) {
            st[i] = WR_ERR_TOOBIG;
        } else if (kv_sst_may_contain(t, ukeys[i])) {
            toff[i] = tlen;
            tlen += ukeys[i].len + KV_TRAILER;
            mk[nk++].key = i;
        }
    }
    if (wr_buf_reserve(&tk, tlen) != WR_OK)
        goto err_nomem;
    for (size_t k = 0; k < nk; k++) {
        size_t i = mk[k].key;
        uint32_t b = idx_lower_bound(t, seek_key(tk.ptr + toff[i], ukeys[i], snap_seq));
        if (b < t->idx_cnt) /* else past the table's last key: not here */
            mk[keep++] = (mget_key){.blk = b, .key = i};
    }
    nk = keep;
    qsort(mk, nk, sizeof(*mk), mget_key_cmp);
    if ((mb = wr_calloc(nk, sizeof(*mb))) == NULL || (rd = wr_malloc(nk * sizeof(*rd))) == NULL)
        goto err_nomem;
    for (size_t k = 0; k < nk; k++) {
        if (nb == 0 || mb[nb - 1].i != mk[k].blk)
            mb[nb++].i = mk[k].blk;
        kmb[mk[k].key] = nb - 1;
    }

    /* cached blocks are pinned now; the others are read together */
    for (size_t j = 0; j < nb; j++) {
        mget_blk *m = &mb[j];
        kv_handle h = idx_handle(t, m->i);
        wr_status s;
        if (t->cache != NULL &&
            (m->b.ch = kv_cache_lookup(t->cache, t->file_id, t->idx[m->i].off)) != NULL) {
            blk_view_cached(&m->b);
            continue;
        }
        if ((s = block_check_handle(t, h)) != WR_OK ||
            (s = wr_buf_reserve(&m->b.raw, (size_t)h.size + KV_BLOCK_TRAILER)) != WR_OK) {
            mget_fail(m, s);
            continue;
        }
        rd[nrd++] = m;
    }
    mget_ring_reads(t, rd, nrd);
    for (size_t j = 0; j < nrd; j++)
        mget_finish(t, rd[j]);

    for (size_t i = 0; i < n; i++) {
        if (st[i] == WR_ERR_TOOBIG) {
            st[i] = wr_err(WR_ERR_TOOBIG, "%s: multi-get key %zu of %zu bytes over the limit",
                           t->path, i, ukeys[i].len);
        } else if (kmb[i] != SIZE_MAX) {
            mget_blk *m = &mb[kmb[i]];
            if (m->st != WR_OK)
                st[i] = m->err ? wr_err(m->st, "%s", m->err)
                               : wr_err(m->st, "%s: data block %u at offset %llu: read failed",
                                        t->path, m->i, (ull)t->idx[m->i].off);
            else
                st[i] = blk_find(t, m->i, &m->b.blk,
                                 wr_bytes_of(tk.ptr + toff[i], ukeys[i].len + KV_TRAILER), ukeys[i],
                                 &vals[i], &found[i]);
        }
        if (st[i] != WR_OK && ret == WR_OK) {
            ret = st[i];
            first_msg = wr_strdup(wr_errmsg());
        }
    }
    if (first_msg != NULL)
        WR_IGNORE(wr_err(ret, "%s", first_msg)); /* the first failed key's message wins */
    goto out_free;
err_nomem:
    for (size_t i = 0; i < n; i++)
        st[i] = WR_ERR_NOMEM;
    ret = WR_ERR_NOMEM;
out_free:
    for (size_t j = 0; j < nb; j++) {
        blk_fini(t, &mb[j].b);
        wr_free(mb[j].err);
    }
    wr_free(first_msg);
    wr_buf_fini(&tk);
    wr_free(rd);
    wr_free(mb);
    wr_free(toff);
    wr_free(kmb);
    wr_free(mk);
    return ret;
}

/* ================================================================ table iterator */
struct kv_sst_iter {
    const kv_sst *t;  /* borrowed */
    uint32_t bi;      /* the block held in b; UINT32_MAX: none */
    sst_blk b;        /* owned: block bi, pinned in the cache while the iterator is in it */
    kv_block_iter it; /* it.blk points at b.blk */
    bool valid;
    bool no_fill; /* blocks read from disk stay out of the cache */
};

void kv_sst_iter_no_fill(kv_sst_iter *it)
{
    it->no_fill = true;
}

wr_status kv_sst_iter_create(const kv_sst *t, kv_sst_iter **out)
{
    kv_sst_iter *it;

    *out = NULL;
    if ((it = wr_calloc(1, sizeof(*it))) == NULL)
        return WR_ERR_NOMEM;
    it->t = t;
    it->bi = UINT32_MAX;
    kv_block_iter_init(&it->it, &it->b.blk);
    *out = it;
    return WR_OK;
}

void kv_sst_iter_destroy(kv_sst_iter *it)
{
    if (it == NULL)
        return;
    kv_block_iter_fini(&it->it);
    blk_fini(it->t, &it->b);
    wr_free(it);
}

static wr_status iter_fail(kv_sst_iter *it, wr_status st)
{
    it->valid = false;
    it->it.valid = false;
    if (st == WR_ERR_CORRUPT && it->bi != UINT32_MAX)
        return data_block_bad(it->t, it->bi, "malformed entry");
    return st;
}

static wr_status iter_load(kv_sst_iter *it, uint32_t i)
{
    wr_status st;

    if (it->bi == i)
        return WR_OK;
    it->bi = UINT32_MAX;
    it->it.valid = false;
    if ((st = blk_load(it->t, i, &it->b, !it->no_fill)) != WR_OK)
        return st;
    it->bi = i;
    return WR_OK;
}

/* After a block-level positioning that gave @st: move into later blocks while it says EOF. */
static wr_status iter_forward(kv_sst_iter *it, wr_status st)
{
    while (st == WR_EOF && it->bi + 1 < it->t->idx_cnt) {
        if ((st = iter_load(it, it->bi + 1)) != WR_OK) {
            it->valid = false;
            return st;
        }
        st = kv_block_iter_first(&it->it);
    }
    if (st != WR_OK)
        return iter_fail(it, st);
    it->valid = true;
    return WR_OK;
}

static wr_status iter_backward(kv_sst_iter *it, wr_status st)
{
    while (st == WR_EOF && it->bi > 0 && it->bi != UINT32_MAX) {
        if ((st = iter_load(it, it->bi - 1)) != WR_OK) {
            it->valid = false;
            return st;
        }
        st = kv_block_iter_last(&it->it);
    }
    if (st != WR_OK)
        return iter_fail(it, st);
    it->valid = true;
    return WR_OK;
}

wr_status kv_sst_iter_seek(kv_sst_iter *it, wr_bytes ikey)
{
    uint32_t i = idx_lower_bound(it->t, ikey);
    wr_status st;

    it->valid = false;
    if (i == it->t->idx_cnt)
        return WR_EOF;
    if ((st = iter_load(it, i)) != WR_OK)
        return st;
    return iter_forward(it, kv_block_iter_seek(&it->it, ikey));
}

wr_status kv_sst_iter_first(kv_sst_iter *it)
{
    wr_status st;

    it->valid = false;
    if (it->t->idx_cnt == 0)
        return WR_EOF;
    if ((st = iter_load(it, 0)) != WR_OK)
        return st;
    return iter_forward(it, kv_block_iter_first(&it->it));
}

wr_status kv_sst_iter_last(kv_sst_iter *it)
{
    wr_status st;

    it->valid = false;
    if (it->t->idx_cnt == 0)
        return WR_EOF;
    if ((st = iter_load(it, it->t->idx_cnt - 1)) != WR_OK)
        return st;
    return iter_backward(it, kv_block_iter_last(&it->it));
}

wr_status kv_sst_iter_next(kv_sst_iter *it)
{
    if (!it->valid)
        return WR_EOF;
    return iter_forward(it, kv_block_iter_next(&it->it));
}

wr_status kv_sst_iter_prev(kv_sst_iter *it)
{
    if (!it->valid)
        return WR_EOF;
    return iter_backward(it, kv_block_iter_prev(&it->it));
}

bool kv_sst_iter_valid(const kv_sst_iter *it)
{
    return it->valid;
}

wr_bytes kv_sst_iter_key(const kv_sst_iter *it)
{
    return kv_block_iter_key(&it->it);
}

wr_bytes kv_sst_iter_value(const kv_sst_iter *it)
{
    return it->it.val;
}

/* ================================================================ verify */
typedef struct sst_vfy {
    kv_sst_report_fn report;
    void *arg;
    wr_status first; /* the first problem's status */
    uint64_t problems;
} sst_vfy;

static void vfy_report(sst_vfy *v, wr_status st, uint64_t off, const char *fmt, ...)
    WR_PRINTF(4, 5);
static void vfy_report(sst_vfy *v, wr_status st, uint64_t off, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (v->first == WR_OK)
        v->first = st;
    v->problems++;
    if (v->report == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v->report(v->arg, st, off, msg);
}

typedef struct sst_tally {
    kv_sst_props p; /* counted from the data; smallest/largest owned */
    wr_buf prev;    /* owned: the previous key seen in the file */
    uint64_t filter_misses;
} sst_tally;

/* Walk one data block's entries, checking order and tallying the properties. */
static wr_status vfy_block(const kv_sst *t, sst_vfy *v, sst_tally *ty, uint32_t i,
                           const wr_buf *raw)
{
    kv_block blk;
    kv_block_iter it;
    wr_status st;
    uint64_t off = t->idx[i].off;

    if (kv_block_parse(raw->ptr, raw->len, &blk) != WR_OK) {
        vfy_report(v, WR_ERR_CORRUPT, off, "%s: data block %u at offset %llu: bad restart array",
                   t->path, i, (ull)off);
        return WR_OK;
    }
    kv_block_iter_init(&it, &blk);
    if (kv_block_iter_first(&it) == WR_EOF)
        vfy_report(v, WR_ERR_CORRUPT, off, "%s: data block %u at offset %llu: empty", t->path, i,
                   (ull)off);
    for (st = kv_block_iter_first(&it); st == WR_OK; st = kv_block_iter_next(&it)) {
        wr_bytes k = kv_block_iter_key(&it), prev = wr_bytes_of(ty->prev.ptr, ty->prev.len);
        kv_type type = kv_ikey_type(k);
        uint64_t seq = kv_ikey_seq(k);
        bool new_user = ty->p.entry_cnt == 0 || !wr_bytes_eq(kv_ikey_user(k), kv_ikey_user(prev));

        if (type != KV_TYPE_PUT && type != KV_TYPE_DEL)
            vfy_report(v, WR_ERR_CORRUPT, off,
                       "%s: data block %u at offset %llu: entry %llu has unknown type %u", t->path,
                       i, (ull)off, (ull)ty->p.entry_cnt, (unsigned)type);
        if (ty->p.entry_cnt > 0 && kv_ikey_cmp(prev, k) >= 0)
            vfy_report(v, WR_ERR_CORRUPT, off,
                       "%s: data block %u at offset %llu: entry %llu out of key order", t->path, i,
                       (ull)off, (ull)ty->p.entry_cnt);
        if (kv_ikey_cmp(k, idx_key(t, i)) > 0 || (i > 0 && kv_ikey_cmp(k, idx_key(t, i - 1)) <= 0))
            vfy_report(v, WR_ERR_CORRUPT, off,
                       "%s: data block %u at offset %llu: entry %llu outside the range of its "
                       "index separators",
                       t->path, i, (ull)off, (ull)ty->p.entry_cnt);
        if (new_user && t->has_filter &&
            !kv_bloom_may_contain(&t->bloom, kv_bloom_hash(kv_ikey_user(k))))
            ty->filter_misses++;
        if (ty->p.entry_cnt == 0) {
            WR_TRY(buf_set(&ty->p.smallest, k));
            ty->p.min_seq = ty->p.max_seq = seq;
        }
        ty->p.entry_cnt++;
        ty->p.del_cnt += type == KV_TYPE_DEL;
        ty->p.raw_key_len += k.len;
        ty->p.raw_val_len += it.val.len;
        ty->p.min_seq = seq < ty->p.min_seq ? seq : ty->p.min_seq;
        ty->p.max_seq = seq > ty->p.max_seq ? seq : ty->p.max_seq;
        if ((st = buf_set(&ty->prev, k)) != WR_OK)
            break;
    }
    kv_block_iter_fini(&it);
    if (st == WR_ERR_CORRUPT)
        vfy_report(v, WR_ERR_CORRUPT, off,
                   "%s: data block %u at offset %llu: malformed entry after entry %llu", t->path, i,
                   (ull)off, (ull)ty->p.entry_cnt);
    else if (st != WR_EOF)
        return st;
    return WR_OK;
}

static void vfy_props(const kv_sst *t, sst_vfy *v, const sst_tally *ty)
{
    const kv_sst_props *a = &t->props, *b = &ty->p;
    uint64_t off = t->props_h.off;

#define PROP_EQ(f)                                                                                 \
    if (a->f != b->f)                                                                              \
        vfy_report(v, WR_ERR_CORRUPT, off,                                                         \
                   "%s: properties block at offset %llu: " #f " is %llu, the data has %llu",       \
                   t->path, (ull)off, (ull)a->f, (ull)b->f);
    PROP_EQ(entry_cnt)
    PROP_EQ(del_cnt)
    PROP_EQ(raw_key_len)
    PROP_EQ(raw_val_len)
    PROP_EQ(min_seq)
    PROP_EQ(max_seq)
#undef PROP_EQ
    if (!wr_bytes_eq(wr_bytes_of(a->smallest.ptr, a->smallest.len),
                     wr_bytes_of(b->smallest.ptr, b->smallest.len)) ||
        !wr_bytes_eq(wr_bytes_of(a->largest.ptr, a->largest.len),
                     wr_bytes_of(ty->prev.ptr, ty->p.entry_cnt ? ty->prev.len : 0)))
        vfy_report(v, WR_ERR_CORRUPT, off,
                   "%s: properties block at offset %llu: smallest/largest key differ from the "
                   "data",
                   t->path, (ull)off);
}

wr_status kv_sst_verify(const char *path, kv_sst_report_fn report, void *arg)
{
    sst_vfy v = {report, arg, WR_OK, 0};
    sst_tally ty;
    wr_buf raw = {0};
    uint64_t expect = 0, bad_off;
    kv_sst *t;
    wr_status st;

    memset(&ty, 0, sizeof(ty));
    if ((st = sst_open(path, &t, &bad_off)) != WR_OK) {
        vfy_report(&v, st, bad_off, "%s", wr_errmsg());
        return st;
    }
    for (uint32_t i = 0; i < t->idx_cnt; i++) {
        kv_handle h = idx_handle(t, i);
        if (h.off != expect)
            vfy_report(&v, WR_ERR_CORRUPT, h.off,
                       "%s: data block %u at offset %llu: expected at offset %llu", path, i,
                       (ull)h.off, (ull)expect);
        expect = h.off + h.size + KV_BLOCK_TRAILER;
        if ((st = kv_sst_read_block(t, h, &raw)) != WR_OK) {
            if (st == WR_ERR_NOMEM)
                goto out;
            vfy_report(&v, st, h.off, "%s", wr_errmsg());
            continue;
        }
        if ((st = vfy_block(t, &v, &ty, i, &raw)) != WR_OK)
            goto out;
    }
    /* meta blocks follow the data in the order the builder writes them */
    if (t->has_filter) {
        if (t->filter_h.off != expect)
            vfy_report(&v, WR_ERR_CORRUPT, t->filter_h.off,
                       "%s: filter block at offset %llu: expected at offset %llu", path,
                       (ull)t->filter_h.off, (ull)expect);
        expect = t->filter_h.off + t->filter_h.size + KV_BLOCK_TRAILER;
    }
    if (t->props_h.off != expect ||
        t->index_h.off != t->props_h.off + t->props_h.size + KV_BLOCK_TRAILER ||
        t->index_h.off + t->index_h.size + KV_BLOCK_TRAILER != t->file_len - KV_SST_FOOTER)
        vfy_report(&v, WR_ERR_CORRUPT, t->file_len - KV_SST_FOOTER,
                   "%s: footer at offset %llu: meta blocks not where the data ends (%llu)", path,
                   (ull)(t->file_len - KV_SST_FOOTER), (ull)expect);
    if (ty.filter_misses)
        vfy_report(&v, WR_ERR_CORRUPT, t->filter_h.off,
                   "%s: filter block at offset %llu: %llu user keys of the file are missing", path,
                   (ull)t->filter_h.off, (ull)ty.filter_misses);
    if (v.first == WR_OK || ty.p.entry_cnt == t->props.entry_cnt)
        vfy_props(t, &v, &ty);
    st = v.first;
out:
    wr_buf_fini(&raw);
    kv_sst_props_fini(&ty.p);
    wr_buf_fini(&ty.prev);
    kv_sst_close(t);
    return st;
}

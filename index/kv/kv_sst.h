/* kv_sst.h -- sorted string tables: the immutable on-disk files of the LSM store (private to
 * index/kv/). Format byte by byte in docs/formats/sst.md.
 *
 * A table is [data blocks][filter block][properties block][index block][footer]. Data and
 * index blocks hold internal keys (kv_key.h) in strictly increasing order, prefix-compressed,
 * with a restart point every N entries; every block carries a 9-byte trailer (compression type,
 * XXH3-64). The filter is one bloom filter over the file's user keys. The 72-byte footer at the
 * end locates the three meta blocks and ends with the format version and the magic.
 *
 * Layers: kv_block.c builds and decodes blocks, kv_bloom.c builds and probes the filter,
 * kv_sst.c writes (kv_sst_builder) and reads (kv_sst, kv_sst_iter, kv_sst_verify) tables,
 * kv_cache.c keeps decoded data blocks shared by all readers (optional, kv_sst_set_cache).
 * Reads from disk go through the calling thread's io_uring (wr_ring_thread()).
 *
 * Invariants: (1) every byte a reader uses is covered by a checksum it checked first, and every
 * decoder bounds-checks anyway, so damaged input yields WR_ERR_CORRUPT, never a crash;
 * (2) errors from a table name the file and the byte offset in wr_errmsg(); (3) a kv_sst is
 * read-only after kv_sst_open() (and kv_sst_set_cache()), so any number of threads may call
 * kv_sst_get() and kv_sst_multi_get() and use their own iterators on it concurrently.
 *
 * Threading: a kv_sst_builder, a kv_block_builder and an iterator belong to one thread. */
#ifndef WEIR_KV_SST_H
#define WEIR_KV_SST_H

#include "kv_cache.h"
#include "kv_key.h"
#include "wr.h"

/* ---------------------------------------------------------------- constants */
#define KV_SST_MAGIC        UINT64_C(0x3154535352494557) /* "WEIRSST1" in file order */
#define KV_SST_VERSION      1u
#define KV_SST_FOOTER       72u /* bytes */
#define KV_BLOCK_TRAILER    9u  /* 1 byte compression type + XXH3-64 */
#define KV_BLOCK_MAX        (KV_VALUE_MAX + 2 * KV_KEY_MAX + (1u << 20)) /* stored or raw */
#define KV_PROPS_FIELDS     9u /* uvarint fields in a version-1 properties block */
#define KV_BLOOM_K_MAX      30u
#define KV_BLOOM_SCHEME     1u /* the hashing scheme byte of the filter block */
#define KV_DEFAULT_BLOCK    4096u
#define KV_DEFAULT_RESTART  16u
#define KV_DEFAULT_BLOOM    10u
#define KV_DEFAULT_ZSTD_LVL 3

typedef enum kv_compression { KV_COMP_NONE = 0, KV_COMP_ZSTD = 1 } kv_compression;

/* Where a block lives: its stored bytes are [off, off + size), the trailer follows. */
typedef struct kv_handle {
    uint64_t off, size;
} kv_handle;

/* ---------------------------------------------------------------- blocks (kv_block.c) */
/* Builds one block: entries [shared][non_shared][val_len][key delta][value] (uvarints), then
 * the restart offsets (u32 each) and their count (u32). Keys must be internal keys added in
 * strictly increasing kv_ikey_cmp order (the caller checks). */
typedef struct kv_block_builder {
    wr_buf buf;    /* owned: entries so far */
    wr_buf last;   /* owned: the last key added */
    uint32_t *rst; /* owned: restart offsets */
    size_t rst_cnt, rst_cap;
    uint32_t interval; /* restart every @interval entries (>= 1) */
    uint32_t since;    /* entries since the last restart */
    uint32_t entry_cnt;
} kv_block_builder;

void kv_block_builder_init(kv_block_builder *b, uint32_t restart_interval);
void kv_block_builder_fini(kv_block_builder *b);
void kv_block_builder_reset(kv_block_builder *b); /* empty again, memory kept */
WR_MUST_CHECK wr_status kv_block_builder_add(kv_block_builder *b, wr_bytes key, wr_bytes val);
size_t kv_block_builder_size(const kv_block_builder *b); /* bytes kv_block_builder_finish makes */
/* Appends the restart array; *out borrows b's memory until the next reset or fini. */
WR_MUST_CHECK wr_status kv_block_builder_finish(kv_block_builder *b, wr_bytes *out);

/* A decoded view of one block's contents (no trailer). Borrowed bytes, validated restarts. */
typedef struct kv_block {
    const uint8_t *p; /* borrowed */
    uint32_t len;
    uint32_t rst_off; /* where the restart array starts = end of the entries */
    uint32_t rst_cnt;
} kv_block;

/* WR_ERR_CORRUPT when the restart array is malformed. */
WR_MUST_CHECK wr_status kv_block_parse(const uint8_t *p, size_t len, kv_block *out);

/* Iterator over one block. Positioning calls return WR_OK (on an entry), WR_EOF (off either
 * end; the iterator is then unpositioned) or WR_ERR_CORRUPT (unpositioned). */
typedef struct kv_block_iter {
    const kv_block *blk; /* borrowed */
    wr_buf key;          /* owned: the current key, rebuilt from the prefix chain */
    wr_bytes val;        /* borrowed from blk */
    uint32_t cur;        /* offset of the current entry */
    uint32_t next;       /* offset just past it */
    bool valid;
} kv_block_iter;

void kv_block_iter_init(kv_block_iter *it, const kv_block *blk);
void kv_block_iter_fini(kv_block_iter *it);
WR_MUST_CHECK wr_status kv_block_iter_first(kv_block_iter *it);
WR_MUST_CHECK wr_status kv_block_iter_last(kv_block_iter *it);
WR_MUST_CHECK wr_status kv_block_iter_next(kv_block_iter *it);
WR_MUST_CHECK wr_status kv_block_iter_prev(kv_block_iter *it);
/* The first entry >= @target (internal-key order). */
WR_MUST_CHECK wr_status kv_block_iter_seek(kv_block_iter *it, wr_bytes target);
static inline wr_bytes kv_block_iter_key(const kv_block_iter *it)
{
    return wr_bytes_of(it->key.ptr, it->key.len);
}

/* ---------------------------------------------------------------- bloom filter (kv_bloom.c) */
/* Filter contents: [bit array, m/8 bytes][k: u8][scheme: u8]. Probe i (0 <= i < k) sets bit
 * (h1 + i * h2) mod m, h1 = XXH3-64(user key), h2 = fmix64(h1) (Kirsch-Mitzenmacher). */
typedef struct kv_bloom {
    const uint8_t *bits; /* borrowed */
    uint64_t nbits;
    uint32_t k;
} kv_bloom;

uint64_t kv_bloom_hash(wr_bytes ukey);
uint32_t kv_bloom_probes(uint32_t bits_per_key); /* round(bpk * ln 2), clamped to 1..30 */
/* Appends a filter for @cnt key hashes at @bits_per_key (>= 1) to @out. */
WR_MUST_CHECK wr_status kv_bloom_build(const uint64_t *hashes, size_t cnt, uint32_t bits_per_key,
                                       wr_buf *out);
WR_MUST_CHECK wr_status kv_bloom_parse(const uint8_t *p, size_t len, kv_bloom *out);
bool kv_bloom_may_contain(const kv_bloom *f, uint64_t hash);

/* ---------------------------------------------------------------- tables (kv_sst.c) */
typedef struct kv_sst_opts {
    uint32_t block_size;         /* target uncompressed data block bytes; 0: 4096; <= 1 MiB */
    uint32_t restart_interval;   /* 0: 16 */
    uint32_t bloom_bits_per_key; /* 0: no filter block */
    kv_compression compression;  /* per data block; kept raw when zstd does not shrink it */
    int zstd_level;              /* 0: 3 */
} kv_sst_opts;

/* Defaults: 4 KiB blocks, restart every 16, 10 bloom bits per key, no compression. */
void kv_sst_opts_init(kv_sst_opts *o);

typedef struct kv_sst_props {
    uint64_t entry_cnt, del_cnt;       /* entries; of which tombstones */
    uint64_t raw_key_len, raw_val_len; /* internal key and value bytes, before compression */
    uint64_t data_block_cnt;
    uint64_t min_seq, max_seq;   /* 0, 0 when empty */
    uint64_t created_ms;         /* wall clock when the builder finished */
    uint64_t bloom_bits_per_key; /* 0: the table has no filter */
    wr_buf smallest, largest;    /* owned: internal keys; empty when the table is */
} kv_sst_props;

void kv_sst_props_fini(kv_sst_props *p); /* frees smallest/largest */

typedef struct kv_sst_builder kv_sst_builder;

/**
 * kv_sst_builder_open() - create the table file @path (it must not exist) for writing.
 * @opts: NULL for kv_sst_opts_init() defaults; copied.  @out: OUT; NULL on error.
 * Return: WR_OK, WR_ERR_EXISTS, WR_ERR_IO, WR_ERR_NOMEM, WR_ERR_INVAL (bad options).
 * Ownership: release with kv_sst_builder_finish() or kv_sst_builder_abandon(). */
WR_MUST_CHECK wr_status kv_sst_builder_open(const char *path, const kv_sst_opts *opts,
                                            kv_sst_builder **out);
/* Add one entry. @ikey must be greater than every key added before (else WR_ERR_INVAL, and the
 * builder stays usable). WR_ERR_TOOBIG over KV_KEY_MAX/KV_VALUE_MAX. After an I/O error the
 * builder is FAILED: every later call returns WR_ERR_FAILED; abandon it. */
WR_MUST_CHECK wr_status kv_sst_builder_add(kv_sst_builder *b, wr_bytes ikey, wr_bytes val);
/* Write filter, properties, index and footer, fdatasync and close; frees @b on every path (on
 * failure the file is removed). @props_out (may be NULL) gets the properties (caller calls
 * kv_sst_props_fini), @file_len_out (may be NULL) the file size. The caller fsyncs the
 * directory when it publishes the file. */
WR_MUST_CHECK wr_status kv_sst_builder_finish(kv_sst_builder *b, kv_sst_props *props_out,
                                              uint64_t *file_len_out);
void kv_sst_builder_abandon(kv_sst_builder *b); /* close, remove the file, free; NULL no-op */
uint64_t kv_sst_builder_entry_cnt(const kv_sst_builder *b);
uint64_t kv_sst_builder_file_len(const kv_sst_builder *b); /* bytes written or buffered so far */

typedef struct kv_sst kv_sst;

/**
 * kv_sst_open() - open a table: read and check the footer, index, filter and properties.
 * Return: WR_OK, WR_ERR_NOTFOUND, WR_ERR_IO, WR_ERR_NOMEM, WR_ERR_CORRUPT (bad magic, checksum or
 * meta block; the message names the file and offset), WR_ERR_UNSUPPORTED (newer version).
 * Ownership: the caller releases *out with kv_sst_close(). */
WR_MUST_CHECK wr_status kv_sst_open(const char *path, kv_sst **out);
void kv_sst_close(kv_sst *t); /* NULL is a no-op; no iterator may outlive the table */
const kv_sst_props *kv_sst_properties(const kv_sst *t); /* borrowed from t */
uint64_t kv_sst_file_len(const kv_sst *t);
const char *kv_sst_path(const kv_sst *t);
bool kv_sst_may_contain(const kv_sst *t, wr_bytes ukey); /* true without a filter */

/**
 * kv_sst_set_cache() - make gets and iterators of @t take data blocks from @c, under the key
 * (@file_id, block offset), and insert the blocks they read. Call it right after kv_sst_open(),
 * before @t is shared with other threads. Without it (or with @c NULL) every read goes to disk.
 * @file_id: unique to the file for @c's lifetime (the store's file number); when the file is
 *           deleted, the owner calls kv_cache_erase_file(@c, @file_id).
 * Ownership: @c is borrowed and must outlive @t and its iterators. */
void kv_sst_set_cache(kv_sst *t, kv_cache *c, uint64_t file_id);
/* Map the whole table read-only: point reads and iterators then view uncompressed data blocks
 * in place (each block's checksum checked on first use), with no copy and no system call, as
 * LevelDB does; compressed blocks still go through the cache and io_uring, and so does
 * kv_sst_multi_get. Call right after kv_sst_open(); on failure the table keeps reading as
 * before. The file must not shrink while mapped (SSTs never change). */
WR_MUST_CHECK wr_status kv_sst_map(kv_sst *t);

typedef enum kv_found { KV_FOUND_NONE = 0, KV_FOUND_PUT, KV_FOUND_DEL } kv_found;

/**
 * kv_sst_get() - the newest version of @ukey with seq <= @snap_seq.
 * @val: replaced by the value on KV_FOUND_PUT, untouched otherwise.  @found_out: OUT.
 * Context: any thread, concurrently with other gets and iterators on @t.
 * Return: WR_OK (see *found_out), WR_ERR_CORRUPT/WR_ERR_IO naming file and offset, NOMEM. */
WR_MUST_CHECK wr_status kv_sst_get(const kv_sst *t, wr_bytes ukey, uint64_t snap_seq, wr_buf *val,
                                   kv_found *found_out);

/**
 * kv_sst_multi_get() - kv_sst_get() for @n keys at once. The data blocks the keys need (keys
 * the filter rules out need none; keys sharing a block share one read) that are not in the
 * block cache are read together: one io_uring submission for the lot, then each key is looked
 * up in its block.
 * @ukeys: @n user keys, in any order, duplicates allowed.  @vals: @n buffers; vals[i] is
 * replaced by the value when found[i] is KV_FOUND_PUT, untouched otherwise.  @found, @st: OUT,
 * @n each: per key, as kv_sst_get()'s *found_out and return value (a damaged or unreadable
 * block fails only the keys that need it).
 * Context: any thread, concurrently with other readers of @t. Uses the thread's ring: the
 * caller must not have completions of its own pending on it (reap what you submit).
 * Return: WR_OK when every st[i] is WR_OK, else the first failed st[i] (in key order), whose
 * message (naming file and offset) wr_errmsg() then holds; WR_ERR_NOMEM for the whole call
 * (every st[i] set to it) when the scratch arrays cannot be allocated. */
WR_MUST_CHECK wr_status kv_sst_multi_get(const kv_sst *t, const wr_bytes *ukeys, size_t n,
                                         uint64_t snap_seq, wr_buf *vals, kv_found *found,
                                         wr_status *st);

/* Read the block at @h, check its trailer and decompress it: @out gets the block contents.
 * Bypasses the block cache (the readers look there first). */
WR_MUST_CHECK wr_status kv_sst_read_block(const kv_sst *t, kv_handle h, wr_buf *out);

/* Iterator over the table's entries in internal-key order. Positioning calls return WR_OK (on an
 * entry), WR_EOF (past either end) or an error naming file and offset (then unpositioned). */
typedef struct kv_sst_iter kv_sst_iter;
WR_MUST_CHECK wr_status kv_sst_iter_create(const kv_sst *t, kv_sst_iter **out);
/* Blocks this iterator reads from disk are not inserted into the block cache (cached ones are
 * still used): for compactions, which read every block once and would evict what readers use. */
void kv_sst_iter_no_fill(kv_sst_iter *it);
void kv_sst_iter_destroy(kv_sst_iter *it);                                /* NULL is a no-op */
WR_MUST_CHECK wr_status kv_sst_iter_seek(kv_sst_iter *it, wr_bytes ikey); /* first >= ikey */
WR_MUST_CHECK wr_status kv_sst_iter_first(kv_sst_iter *it);
WR_MUST_CHECK wr_status kv_sst_iter_last(kv_sst_iter *it);
WR_MUST_CHECK wr_status kv_sst_iter_next(kv_sst_iter *it);
WR_MUST_CHECK wr_status kv_sst_iter_prev(kv_sst_iter *it);
bool kv_sst_iter_valid(const kv_sst_iter *it);
/* Borrowed: valid until the next positioning call on @it. */
wr_bytes kv_sst_iter_key(const kv_sst_iter *it);
wr_bytes kv_sst_iter_value(const kv_sst_iter *it);

/* Called once per problem found: @off is the byte offset in the file, @msg names the file. */
typedef void (*kv_sst_report_fn)(void *arg, wr_status st, uint64_t off, const char *msg);

/**
 * kv_sst_verify() - check a whole table: footer, every block's checksum and decoding, key order
 * within and across blocks, index separators, data block placement, that the filter holds
 * every user key, and that the properties match the data.
 * @report: may be NULL.  Return: WR_OK when clean, else the first problem's status. */
WR_MUST_CHECK wr_status kv_sst_verify(const char *path, kv_sst_report_fn report, void *arg);

#endif

/* kv.h -- weir's LSM key-value store (public API).
 *
 * A store is a directory: SST files ("<number>.sst"), a MANIFEST log of version edits with a
 * CURRENT pointer to it, an optional write-ahead log ("<number>.wal"), and a LOCK file.
 * Writes go to a memtable (an arena skiplist); a full memtable becomes immutable and a
 * background thread flushes it to a level-0 SST; background compaction merges SSTs level by
 * level (level i+1 holds 10x level i). Formats: docs/formats/sst.md, docs/formats/manifest.md.
 *
 * Invariants:
 *  (1) every write gets a sequence number; a read at snapshot s sees exactly the writes with
 *      sequence <= s, and a write batch is visible all at once or not at all;
 *  (2) with a WAL and fsync=always, a write is acknowledged only once it is durable; under the
 *      engine (no WAL), the caller records its own replay position with kv_set_applied() and
 *      replays its log after kv_applied() on open;
 *  (3) SST and MANIFEST files are immutable once written; the store moves forward by appending
 *      a version edit to the MANIFEST (and, for a new MANIFEST, by an atomic CURRENT swap);
 *  (4) a damaged file is an error naming it (WR_ERR_CORRUPT), never a crash or a wrong answer.
 *
 * Threading: a kv_db is shared by any number of threads. Writes are serialised internally;
 * reads (get, iterators, snapshots) never wait for writes. An iterator belongs to one thread. */
#ifndef WEIR_KV_H
#define WEIR_KV_H

#include "wr.h"

typedef struct kv_db kv_db;
typedef struct kv_iter kv_iter;
typedef struct kv_batch kv_batch;
typedef struct kv_snapshot kv_snapshot;

typedef enum kv_wal_mode {
    KV_WAL_OFF = 0,  /* no WAL: the caller's own log is the WAL (engine mode) */
    KV_WAL_ALWAYS,   /* fdatasync before a write is acknowledged */
    KV_WAL_INTERVAL, /* fdatasync every wal_interval_ms */
    KV_WAL_NEVER     /* the kernel flushes when it likes */
} kv_wal_mode;

typedef struct kv_options {
    bool create_if_missing; /* default true */
    bool error_if_exists;
    kv_wal_mode wal;                /* default KV_WAL_OFF */
    uint32_t wal_interval_ms;       /* default 100 */
    size_t memtable_bytes;          /* a memtable becomes immutable at this size; 8 MiB */
    size_t block_bytes;             /* SST data block target; 4 KiB */
    uint32_t bloom_bits_per_key;    /* 10; 0 = no filter */
    bool compress;                  /* zstd per block; default false */
    size_t block_cache_bytes;       /* 64 MiB */
    bool mmap_reads;                /* default true: point reads and iterators view
                                       uncompressed blocks in a read-only mapping of each
                                       table (LevelDB's way: no copy, no system call); the
                                       block cache and io_uring serve compressed blocks and
                                       multi-get. false: every block through cache + io_uring */
    uint32_t max_open_files;        /* table cache size; 1000 */
    uint32_t l0_compaction_trigger; /* 4 files */
    uint32_t l0_slowdown_writes;    /* 20 files: each write is delayed 1 ms */
    uint32_t l0_stop_writes;        /* 36 files: writes wait for compaction */
    uint64_t l1_bytes;              /* target size of level 1; 256 MiB; x10 per level */
    uint64_t sst_bytes;             /* target size of one compaction output file; 64 MiB */
    uint32_t background_threads;    /* flush + compaction threads; 2 */
    uint32_t max_key_bytes;         /* 64 KiB */
    uint32_t max_value_bytes;       /* 64 MiB */
} kv_options;

void kv_options_default(kv_options *o);

/* Open (recover) or create a store in @dir. WR_ERR_BUSY if another process has it open,
 * WR_ERR_NOTFOUND without create_if_missing, WR_ERR_EXISTS with error_if_exists,
 * WR_ERR_CORRUPT / WR_ERR_UNSUPPORTED naming the damaged or too-new file. */
WR_MUST_CHECK wr_status kv_open(const char *dir, const kv_options *opts, kv_db **out);
/* Flushes nothing by itself (call kv_flush first to avoid a WAL replay); waits for background
 * work to stop. NULL is a no-op. */
void kv_close(kv_db *db);

/* Single writes. WR_ERR_TOOBIG for a key or value over the configured limit. */
WR_MUST_CHECK wr_status kv_put(kv_db *db, wr_bytes key, wr_bytes val);
WR_MUST_CHECK wr_status kv_delete(kv_db *db, wr_bytes key);

/* Atomic write batches. */
WR_MUST_CHECK wr_status kv_batch_create(kv_batch **out);
void kv_batch_destroy(kv_batch *b); /* NULL is a no-op */
void kv_batch_clear(kv_batch *b);
WR_MUST_CHECK wr_status kv_batch_put(kv_batch *b, wr_bytes key, wr_bytes val);
WR_MUST_CHECK wr_status kv_batch_delete(kv_batch *b, wr_bytes key);
uint32_t kv_batch_count(const kv_batch *b);
WR_MUST_CHECK wr_status kv_write(kv_db *db, const kv_batch *b);

/* Reads. @snap NULL = the latest state. The value is copied into @val (replacing its
 * content). WR_ERR_NOTFOUND when the key has no value at that snapshot. */
WR_MUST_CHECK wr_status kv_get(kv_db *db, const kv_snapshot *snap, wr_bytes key, wr_buf *val);
/* Look up @n keys together: memtables first, then per table one batch whose block reads go
 * to the disk in one io_uring submission. st[i] is WR_OK (vals[i] holds the value),
 * WR_ERR_NOTFOUND, or that key's error (a damaged block: WR_ERR_CORRUPT naming file and
 * offset). Returns WR_OK once every key has its st[i], or the error that stopped the lookup
 * (WR_ERR_NOMEM, ...). */
WR_MUST_CHECK wr_status kv_multi_get(kv_db *db, const kv_snapshot *snap, const wr_bytes *keys,
                                     size_t n, wr_buf *vals, wr_status *st);

/* Snapshots pin a sequence number: compaction keeps every version a snapshot can see. */
WR_MUST_CHECK wr_status kv_snapshot_take(kv_db *db, kv_snapshot **out);
void kv_snapshot_release(kv_db *db, kv_snapshot *s); /* NULL is a no-op */
uint64_t kv_snapshot_seq(const kv_snapshot *s);

/* Iterators over a consistent view (a snapshot of their own if @snap is NULL). Bounds: keys in
 * [lower, upper) when given (ptr != NULL). Key and value are borrowed until the next move. */
typedef struct kv_iter_opts {
    const kv_snapshot *snap;
    wr_bytes lower, upper;
} kv_iter_opts;
WR_MUST_CHECK wr_status kv_iter_open(kv_db *db, const kv_iter_opts *o, kv_iter **out);
void kv_iter_close(kv_iter *it);                                 /* NULL is a no-op */
WR_MUST_CHECK wr_status kv_iter_seek(kv_iter *it, wr_bytes key); /* first key >= key */
WR_MUST_CHECK wr_status kv_iter_seek_first(kv_iter *it);
WR_MUST_CHECK wr_status kv_iter_seek_last(kv_iter *it);
WR_MUST_CHECK wr_status kv_iter_next(kv_iter *it);
WR_MUST_CHECK wr_status kv_iter_prev(kv_iter *it);
bool kv_iter_valid(const kv_iter *it);
wr_bytes kv_iter_key(const kv_iter *it);
wr_bytes kv_iter_value(const kv_iter *it);

/* Engine mode: the log offset this store reflects, persisted with the next flush. */
WR_MUST_CHECK wr_status kv_set_applied(kv_db *db, uint64_t log_offset);
uint64_t kv_applied(const kv_db *db); /* 0 when never set */

/* Flush the memtable to an SST now and wait for it. */
WR_MUST_CHECK wr_status kv_flush(kv_db *db);
/* Compact the whole key range: every level merged into the next, down to the deepest
 * non-empty one (at least level 1), which is then rewritten in place, dropping every version
 * no snapshot needs and every tombstone with nothing below it. Waits for it. */
WR_MUST_CHECK wr_status kv_compact_all(kv_db *db);
/* A consistent, openable copy in @dir (which must not exist) by hard-linking immutable files
 * and writing a fresh MANIFEST. Flushes first. */
WR_MUST_CHECK wr_status kv_checkpoint(kv_db *db, const char *dir);
/* Check every block checksum and filter of every SST and the MANIFEST; problems go to
 * @report, one line each naming the file and offset. WR_ERR_CORRUPT if any. */
WR_MUST_CHECK wr_status kv_verify(kv_db *db, void (*report)(void *ctx, const char *line),
                                  void *ctx);

typedef struct kv_stats {
    uint64_t seq; /* last sequence number */
    uint64_t memtable_bytes, imm_memtables;
    uint32_t files[8]; /* SSTs per level */
    uint64_t level_bytes[8];
    uint64_t flushes, compactions;
    uint64_t bytes_written;         /* flush + compaction output (write amplification) */
    uint64_t user_bytes;            /* key + value bytes written by the user */
    uint64_t stall_count, stall_us; /* writes delayed or stopped by L0 pressure */
    uint64_t block_cache_hits, block_cache_misses;
    uint64_t bloom_useful; /* SST probes the bloom filter avoided */
    char bg_error[160];    /* last background error; "" if none */
} kv_stats;
void kv_stats_get(kv_db *db, kv_stats *out);

#endif

/* lg.h -- weir's segmented append-only log with key compaction (public API).
 *
 * A log root directory holds topics. A topic is a directory with P partitions (P fixed at
 * creation, kept in topic.meta); a key goes to partition XXH3(key) % P. A partition is a
 * directory of segments named by their 20-digit base offset ("00000000000000000000.log"),
 * each with a sparse offset index (.idx) and a time index (.tim). Records travel in batches
 * (docs/formats/log.md): one header with base offset, count, timestamps, producer id/epoch/
 * sequence, compression and an XXH3-64 checksum, then the records.
 *
 * Invariants:
 *  (1) offsets within a partition increase; compaction may leave gaps, never reorders;
 *  (2) readers see only records below the partition's high watermark, which is the end of
 *      the data that is durable under the topic's fsync policy (fsync=always: fdatasync'd);
 *  (3) an append is acknowledged (its callback runs with WR_OK) only once it is below the
 *      high watermark;
 *  (4) after a failed write or fsync the partition is FAILED (sticky) until reopened;
 *  (5) a retried producer batch (same producer id, epoch and sequence) is stored once, also
 *      across restarts;
 *  (6) sealed segments never change except by an atomic swap with a compacted copy;
 *  (7) retention never deletes a segment holding offsets at or above the low watermark
 *      (the smallest pinned offset).
 *
 * Threading: an lg_topic is shared by any number of threads. Appends are coalesced by the
 * topic's writer thread (group commit: one write and one fdatasync per partition per round).
 * The writer also runs the interval fdatasyncs. A second thread runs retention and the
 * compaction cleaner, once a second. An lg_reader
 * belongs to one thread. Only one process may open a topic for writing (a LOCK file);
 * lg_open_opts.readonly opens it beside a writer, for readers only. */
#ifndef WEIR_LG_H
#define WEIR_LG_H

#include "wr.h"

typedef struct lg_topic lg_topic;
typedef struct lg_reader lg_reader;

#define LG_MAX_PARTITIONS 4096
#define LG_TOPIC_NAME_MAX 200
#define LG_NO_PRODUCER    UINT64_MAX /* producer_id of a batch that is not idempotent */
#define LG_NO_OFFSET      UINT64_MAX

typedef enum lg_fsync {
    LG_FSYNC_ALWAYS = 0, /* ack after fdatasync (default) */
    LG_FSYNC_INTERVAL,   /* ack after write; fdatasync every fsync_interval_ms */
    LG_FSYNC_NEVER       /* ack after write; the kernel flushes when it likes */
} lg_fsync;

typedef enum lg_cleanup {
    LG_CLEANUP_DELETE = 0, /* retention by time and size */
    LG_CLEANUP_COMPACT,    /* keep the newest record per key; no time/size retention */
} lg_cleanup;

typedef enum lg_compression { LG_COMP_NONE = 0, LG_COMP_ZSTD = 1 } lg_compression;

/* Topic configuration, stored in topic.meta at creation. */
typedef struct lg_config {
    uint32_t partitions;        /* fixed at creation; 1..LG_MAX_PARTITIONS */
    lg_fsync fsync;             /* default LG_FSYNC_ALWAYS */
    uint32_t fsync_interval_ms; /* for LG_FSYNC_INTERVAL; default 100 */
    uint64_t segment_bytes;     /* roll when the active segment would exceed it; 256 MiB */
    uint64_t segment_ms;        /* roll when the active segment is older; 7 days */
    int64_t retention_ms;       /* -1 = keep forever (default 7 days) */
    int64_t retention_bytes;    /* per partition; -1 = unlimited (default) */
    lg_cleanup cleanup;
    int64_t delete_retention_ms;    /* compacted topics keep tombstones this long; 1 day */
    double min_cleanable_ratio;     /* compact when dirty bytes / total >= this; 0.5 */
    uint32_t max_record_bytes;      /* key + value + headers; default 1 MiB */
    uint32_t index_interval_bytes;  /* one index entry per this many bytes; 4096 */
    lg_compression compression;     /* default for batches the CLI builds */
    int64_t producer_expiration_ms; /* forget idle producers' sequences after this; 7 days */
} lg_config;

void lg_config_default(lg_config *c);
/* Parse "name=value" (e.g. "fsync=interval=100", "segment.bytes=1048576",
 * "cleanup=compact", "retention.ms=-1") into @c. Unknown names or bad values: WR_ERR_INVAL
 * with wr_errmsg() naming the setting and the accepted values. */
WR_MUST_CHECK wr_status lg_config_set(lg_config *c, const char *assignment);
/* Every setting as "name=value\n" lines, in the names lg_config_set() accepts (the body of
 * topic.meta). Returns the length, or the length it would need when @cap is too small. */
size_t lg_config_format(const lg_config *c, char *dst, size_t cap);

/* ---------------------------------------------------------------- I/O vtable */
/* Every file operation of the log goes through an lg_io, so tests can fail the Nth write or
 * fsync and drop bytes that were never synced (SQLite test6.c, LevelDB fault_injection_test).
 * Functions return 0 / a byte count / an fd, or -errno. */
typedef struct lg_io_op {
    int fd;
    const void *buf; /* borrowed */
    size_t len;      /* 0: no write, only the sync (if @sync) */
    uint64_t off;
    bool sync; /* fdatasync after the write (linked: skipped if the write fails) */
    int err;   /* OUT: 0, or the errno of the write or sync that failed */
} lg_io_op;

typedef struct lg_io {
    void *ctx;
    /* Run @n ops, in parallel where the implementation can (the real one submits them all to
     * the calling thread's io_uring in one go); fills each op's err. A short write is
     * continued; ENOSPC and friends are errors. */
    void (*submit)(void *ctx, lg_io_op *ops, size_t n);
    int (*open)(void *ctx, const char *path, int flags, unsigned mode);
    int (*close)(void *ctx, int fd);
    int64_t (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t off);
    int (*ftruncate)(void *ctx, int fd, uint64_t len);
    int (*fsync)(void *ctx, int fd);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*fsync_dir)(void *ctx, const char *path);
} lg_io;

/* The real implementation (io_uring for writes and syncs, pread for reads). */
const lg_io *lg_io_default(void);

/* Open options (process-local, not stored). */
typedef struct lg_open_opts {
    bool readonly;               /* no LOCK, no recovery writes, no background threads */
    uint64_t max_inflight_bytes; /* appends beyond this get WR_AGAIN; default 64 MiB */
    const struct lg_io *io;      /* I/O vtable; NULL = the real one (tests inject faults) */
    bool no_cleaner;             /* do not start the background maintenance thread */
} lg_open_opts;

WR_MUST_CHECK wr_status lg_topic_create(const char *root, const char *name, const lg_config *cfg);
/* Open (and recover) a topic. WR_ERR_NOTFOUND if it does not exist, WR_ERR_BUSY if another
 * process has it open for writing, WR_ERR_CORRUPT if a segment that recovery reads is damaged
 * (wr_errmsg() names topic, partition, file and byte offset). Sealed segments with valid index
 * files are not reread at open: damage inside them surfaces when a reader reaches it, and in
 * lg_topic_verify(). The caller releases *out with lg_topic_close.*/
WR_MUST_CHECK wr_status lg_topic_open(const char *root, const char *name, const lg_open_opts *opts,
                                      lg_topic **out);
/* Waits for queued appends, syncs everything, writes indexes and a clean-shutdown marker so
 * the next open does not rescan. NULL is a no-op. */
void lg_topic_close(lg_topic *t);
const lg_config *lg_topic_config(const lg_topic *t);
uint32_t lg_topic_partitions(const lg_topic *t);
const char *lg_topic_name(const lg_topic *t);
uint32_t lg_partition_for_key(wr_bytes key, uint32_t partitions); /* XXH3(key) % P */

/* ---------------------------------------------------------------- appends */
typedef struct lg_header {
    wr_bytes key, val;
} lg_header;

typedef struct lg_rec_in {
    wr_bytes key;   /* key.ptr == NULL: no key (not allowed on compacted topics) */
    wr_bytes val;   /* ignored when tombstone */
    bool tombstone; /* absent value */
    int64_t ts_ms;  /* 0: the time of the append */
    const lg_header *hdrs;
    uint32_t hdr_cnt;
} lg_rec_in;

typedef struct lg_batch_in {
    const lg_rec_in *recs;
    uint32_t rec_cnt;
    uint64_t producer_id; /* LG_NO_PRODUCER for none */
    uint16_t producer_epoch;
    uint32_t base_seq; /* sequence of recs[0]; the batch uses base_seq..base_seq+cnt-1 */
    lg_compression compression;
} lg_batch_in;

typedef struct lg_ack {
    uint32_t partition;
    uint64_t base_offset; /* offset of recs[0]; records are base_offset .. base_offset+cnt-1 */
    uint32_t count;
    bool duplicate; /* a retried batch: nothing stored, offsets of the original */
} lg_ack;

/* Completion callback; runs on the topic's writer thread, must not block or append. */
typedef void (*lg_ack_fn)(void *ctx, wr_status st, const lg_ack *ack);

/* Asynchronous append. WR_OK means queued: @fn runs exactly once later with the verdict.
 * Immediate failures (WR_AGAIN back-pressure, WR_ERR_TOOBIG, WR_ERR_INVAL, WR_ERR_FAILED,
 * WR_ERR_SEQUENCE, WR_ERR_FENCED) are returned and @fn is not called. A duplicate batch is
 * acknowledged through @fn with ack->duplicate set. */
WR_MUST_CHECK wr_status lg_append_async(lg_topic *t, uint32_t partition, const lg_batch_in *b,
                                        lg_ack_fn fn, void *ctx);
/* Synchronous append: queues and waits for the verdict. */
WR_MUST_CHECK wr_status lg_append(lg_topic *t, uint32_t partition, const lg_batch_in *b,
                                  lg_ack *out);
/* Make everything appended so far durable now (also under fsync=never). */
WR_MUST_CHECK wr_status lg_topic_sync(lg_topic *t);

/* ---------------------------------------------------------------- readers */
typedef struct lg_record {
    uint64_t offset;
    int64_t ts_ms;
    wr_bytes key; /* key.ptr == NULL: no key */
    wr_bytes val; /* val.ptr == NULL: tombstone */
    bool tombstone;
    uint32_t hdr_cnt;
    wr_bytes hdrs; /* encoded headers; iterate with lg_header_next */
    uint64_t producer_id;
} lg_record;

/* Iterate encoded headers: *pos starts at 0. Returns WR_EOF after the last. */
WR_MUST_CHECK wr_status lg_header_next(wr_bytes hdrs, size_t *pos, lg_header *out);

typedef enum lg_start {
    LG_FROM_OFFSET = 0, /* first record with offset >= arg */
    LG_FROM_TIME,       /* first record with timestamp >= arg (ms) */
    LG_FROM_EARLIEST,
    LG_FROM_LATEST /* only records appended after the reader opens */
} lg_start;

WR_MUST_CHECK wr_status lg_reader_open(lg_topic *t, uint32_t partition, lg_start how, int64_t arg,
                                       lg_reader **out);
/* Next record. Borrowed: rec's bytes stay valid until the next call on @r.
 * @timeout_ms: 0 = do not wait; > 0 = wait that long for new durable data; < 0 = forever.
 * WR_EOF at the high watermark (after waiting). WR_ERR_CORRUPT names file and byte offset. */
WR_MUST_CHECK wr_status lg_reader_next(lg_reader *r, lg_record *rec, int timeout_ms);
uint64_t lg_reader_position(const lg_reader *r); /* offset the next record will have, at least */
void lg_reader_close(lg_reader *r);              /* NULL is a no-op */

/* ---------------------------------------------------------------- consumer groups, pins */
/* Committed offsets are "next offset to read" per partition, written durably (temp file,
 * fsync, rename, fsync dir). A group's committed offsets pin the low watermark. Commits and
 * pins work on read-only opens too (a consumer beside the producing process); one process
 * per group at a time. */
WR_MUST_CHECK wr_status lg_group_commit(lg_topic *t, const char *group, uint32_t partition,
                                        uint64_t next_offset);
/* LG_NO_OFFSET in *out when the group has committed nothing for that partition. */
WR_MUST_CHECK wr_status lg_group_fetch(lg_topic *t, const char *group, uint32_t partition,
                                       uint64_t *out);
WR_MUST_CHECK wr_status lg_group_delete(lg_topic *t, const char *group);
/* Named pins (checkpoints): retention keeps every offset >= @offset in @partition.
 * LG_NO_OFFSET releases the pin. Durable. */
WR_MUST_CHECK wr_status lg_pin_set(lg_topic *t, const char *holder, uint32_t partition,
                                   uint64_t offset);

/* ---------------------------------------------------------------- maintenance */
/* Run retention now (normally done by the background thread). */
WR_MUST_CHECK wr_status lg_topic_retain(lg_topic *t);
/* Compact every partition of a compacted topic now, regardless of the dirty ratio. */
WR_MUST_CHECK wr_status lg_topic_compact(lg_topic *t);
/* Verify every batch checksum and index of every segment. Problems are reported through
 * @report (one line each, naming topic/partition/file/byte offset); returns WR_ERR_CORRUPT
 * if any was found. */
typedef void (*lg_report_fn)(void *ctx, const char *line);
WR_MUST_CHECK wr_status lg_topic_verify(lg_topic *t, lg_report_fn report, void *ctx);

typedef enum lg_cleaner_state {
    LG_CLEANER_IDLE = 0,
    LG_CLEANER_RUNNING,
    LG_CLEANER_FAILED,
    LG_CLEANER_OFF /* not a compacted topic, or no maintenance thread */
} lg_cleaner_state;

typedef struct lg_partition_info {
    uint64_t log_start_offset; /* first offset still stored */
    uint64_t high_watermark;   /* next offset; readers see offsets below it */
    uint64_t low_watermark;    /* smallest pinned offset, LG_NO_OFFSET if none */
    uint64_t bytes;            /* all segments */
    uint32_t segments;
    bool failed;
    char failure[160];
    lg_cleaner_state cleaner;
    double dirty_ratio;
    uint64_t cleaned_offset; /* compaction has covered offsets below this */
    uint64_t cleaner_runs;
    uint64_t cleaner_bytes_in, cleaner_bytes_out;
    char cleaner_error[160];
    uint32_t producers;
} lg_partition_info;
WR_MUST_CHECK wr_status lg_partition_info_get(lg_topic *t, uint32_t partition,
                                              lg_partition_info *out);

/* List topic names in @root; @fn is called once per topic. */
WR_MUST_CHECK wr_status lg_topic_list(const char *root, void (*fn)(void *ctx, const char *name),
                                      void *ctx);

#endif

/* lg_int.h -- private declarations shared by the files of log/ (never included outside it,
 * except by white-box tests).
 *
 * Objects: lg_topic (topic.meta, LOCK, the writer thread, the maintenance thread) owns
 * lg_part (one per partition: segment list, pending appends, producer table, cleaner state),
 * which owns lg_seg (one .log file with its in-memory offset and time indexes).
 *
 * Locking: topic->mu and part->mu are never held together; topic->compact_mu is taken before
 * part->mu; topic->maint_mu serialises group and pin file updates. Segments are reference counted;
 * a reader holds a reference so retention or compaction can drop a segment from the list while the
 * reader finishes it (the file descriptor stays valid after unlink). */
#ifndef WEIR_LG_INT_H
#define WEIR_LG_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "lg.h"

/* ---------------------------------------------------------------- batch format */
#define LG_BATCH_MAGIC   0x31425257u /* bytes "WRB1" */
#define LG_BATCH_VERSION 1
#define LG_BATCH_HDR     72
#define LG_BATCH_MAX     (64u << 20) /* one batch is at most 64 MiB on disk */
#define LG_ATTR_COMP     0x03u

/* Header fields (docs/formats/log.md). */
typedef struct lg_bhdr {
    uint32_t len;  /* whole batch, header included */
    uint64_t base; /* base offset */
    uint64_t checksum;
    uint8_t version, attrs;
    uint32_t count;
    uint32_t last_delta; /* last offset - base offset */
    int64_t first_ts, max_ts;
    uint64_t producer_id;
    uint16_t producer_epoch;
    uint32_t base_seq;
    uint32_t raw_len; /* uncompressed payload length */
} lg_bhdr;

/* Encode @b (records + header with base offset 0) into @out, replacing its content.
 * Validates every record against @max_record_bytes (WR_ERR_TOOBIG naming the record index)
 * and the batch size. The checksum is left for lg_batch_seal(). *body_hash_out is the XXH3
 * of bytes [24, len), which does not depend on the base offset. */
WR_MUST_CHECK wr_status lg_batch_encode(const lg_batch_in *b, int64_t now_ms,
                                        uint32_t max_record_bytes, wr_buf *out,
                                        uint64_t *body_hash_out);
/* Set the base offset and the checksum = body hash XOR XXH3(bytes [0, 16)). */
void lg_batch_seal(uint8_t *batch, uint64_t base, uint64_t body_hash);
/* Parse the fixed header of the bytes at @p (@avail bytes available).
 * WR_EOF: fewer than a header or than the batch length available (a torn tail or data not
 * yet written); WR_ERR_CORRUPT: bad magic or length. Checks neither checksum nor version. */
WR_MUST_CHECK wr_status lg_bhdr_parse(const uint8_t *p, size_t avail, lg_bhdr *out);
/* Full check of a complete batch: header, checksum, then version and attributes
 * (WR_ERR_UNSUPPORTED: a valid batch from a newer format). */
WR_MUST_CHECK wr_status lg_batch_check(const uint8_t *p, size_t avail, lg_bhdr *out);
uint64_t lg_batch_checksum(const uint8_t *p, size_t len);

/* Iterates the records of one batch (decompressing when needed into @scratch). */
typedef struct lg_rec_iter {
    lg_bhdr h;
    const uint8_t *pos, *end;
    uint32_t left;
} lg_rec_iter;
WR_MUST_CHECK wr_status lg_rec_iter_init(lg_rec_iter *it, const uint8_t *batch, wr_buf *scratch);
/* WR_EOF after the last record; WR_ERR_CORRUPT on malformed records. */
WR_MUST_CHECK wr_status lg_rec_iter_next(lg_rec_iter *it, lg_record *out);

/* ---------------------------------------------------------------- indexes */
#define LG_IDX_MAGIC   0x58495257u /* "WRIX" */
#define LG_TIM_MAGIC   0x49545257u /* "WRTI" */
#define LG_IDX_VERSION 1
#define LG_IDX_HDR     56

typedef struct lg_ient {
    uint32_t rel; /* offset - segment base */
    uint32_t pos; /* byte position of the batch in the segment */
} lg_ient;
typedef struct lg_tent {
    int64_t ts; /* max timestamp of all batches up to and including this one */
    uint32_t rel;
    uint32_t pos;
} lg_tent;

/* ---------------------------------------------------------------- segments */
typedef struct lg_seg {
    uint64_t base;         /* first offset (the file name) */
    _Atomic uint64_t end;  /* next offset after the last durable batch */
    _Atomic uint64_t size; /* durable bytes: readers read below this */
    uint64_t wsize;        /* bytes written or being written (writer thread only) */
    _Atomic int64_t max_ts;
    int64_t created_ms; /* for rolling by age */
    int fd;             /* owned */
    int dfd;            /* O_DIRECT descriptor for appends to the active segment, or -1 (owned) */
    bool sealed;
    bool dirty_sync; /* written since the last fdatasync (interval policy) */
    char path[4096];
    /* In-memory sparse indexes, appended by the writer under part->mu. */
    lg_ient *idx;
    size_t idx_cnt, idx_cap;
    lg_tent *tim;
    size_t tim_cnt, tim_cap;
    uint64_t last_idx_pos;
    int64_t run_max_ts; /* max timestamp of every batch indexed so far (time index) */
    _Atomic int refs;
} lg_seg;

struct lg_part;
#define LG_DIO_ALIGN 4096u
WR_MUST_CHECK wr_status lg_seg_create(struct lg_part *p, uint64_t base, lg_seg **out);
/* Open the O_DIRECT append descriptor of an active segment (s->dfd stays -1 when the file
 * system refuses O_DIRECT, or $WEIR_NO_DIRECT is set: appends then go through the page cache). */
void lg_seg_open_direct(lg_seg *s, const lg_io *io);
/* Seal-time tidy-up of a segment written with O_DIRECT: cut the zero padding of the last
 * block (ftruncate to the data size), fsync, close the direct descriptor. */
WR_MUST_CHECK wr_status lg_seg_end_direct(lg_seg *s, const lg_io *io);
void lg_seg_ref(lg_seg *s);
void lg_seg_unref(lg_seg *s, const lg_io *io);
/* Record an index entry for a batch at @pos (caller holds part->mu or owns the segment). */
WR_MUST_CHECK wr_status lg_seg_index_add(lg_seg *s, uint32_t interval, uint64_t pos, uint64_t base,
                                         int64_t max_ts);
/* Byte position of the last index entry with offset <= @off (0 if none). */
uint64_t lg_seg_index_lookup(const lg_seg *s, uint64_t off);
/* Byte position from which to scan for the first record with ts >= @ts. */
uint64_t lg_seg_time_lookup(const lg_seg *s, int64_t ts);
/* Write both index files (with header, checksum), fsync them. */
WR_MUST_CHECK wr_status lg_seg_write_indexes(const lg_seg *s, const lg_io *io);
/* Load index files if they match the segment (size, base); false if missing/stale/damaged. */
bool lg_seg_load_indexes(lg_seg *s, const lg_io *io, uint64_t file_size);
/* Scan the segment from byte 0, checking every batch, and rebuild the indexes.
 * @tail: this is the active segment, a torn tail is allowed (*valid_out < file size).
 * Damage followed by a valid batch, or any damage in a sealed segment, is WR_ERR_CORRUPT
 * with wr_errmsg() naming file and byte offset. @on_batch (may be NULL) sees every batch
 * header in order (producer-state rebuild). */
typedef void (*lg_batch_fn)(void *ctx, const lg_bhdr *h);
WR_MUST_CHECK wr_status lg_seg_scan(lg_seg *s, const lg_io *io, uint32_t interval, bool tail,
                                    uint64_t file_size, lg_batch_fn on_batch, void *ctx,
                                    uint64_t *valid_out);
/* Read-only opens: index the complete, valid batches appended after s->size (stops quietly
 * at an incomplete one). Caller holds part->mu. */
void lg_seg_extend(lg_seg *s, const lg_io *io, uint32_t interval, uint64_t file_size);
/* Read [off, off+len) of a segment. Short reads are returned in *got. */
WR_MUST_CHECK wr_status lg_seg_read(const lg_seg *s, const lg_io *io, void *buf, size_t len,
                                    uint64_t off, size_t *got);
void lg_seg_name(char *dst, size_t cap, uint64_t base, const char *ext);

/* ---------------------------------------------------------------- producers */
#define LG_PROD_CACHE 5 /* batches remembered per producer for duplicate detection */
typedef struct lg_prod {
    uint64_t pid;
    uint16_t epoch;
    bool used;
    uint32_t next_seq; /* expected next base sequence */
    uint8_t ring_len, ring_head;
    struct {
        uint32_t base_seq, count;
        uint64_t base_offset;
    } ring[LG_PROD_CACHE];
    int64_t last_ms;
} lg_prod;
typedef struct lg_prodtab {
    lg_prod *slots; /* open addressing, owned */
    size_t cap, cnt;
} lg_prodtab;
void lg_prodtab_fini(lg_prodtab *t);
/* Decide what to do with a batch: WR_OK (new, state updated with @base_offset),
 * WR_EOF (duplicate: *dup_base_out = original base offset), or WR_ERR_SEQUENCE /
 * WR_ERR_FENCED / WR_ERR_NOMEM (state unchanged; wr_errmsg() explains). */
WR_MUST_CHECK wr_status lg_prodtab_check(lg_prodtab *t, uint32_t partition, uint64_t pid,
                                         uint16_t epoch, uint32_t base_seq, uint32_t count,
                                         uint64_t base_offset, int64_t now_ms,
                                         uint64_t *dup_base_out);
/* Forget producers whose last batch is older than @before_ms. Returns how many. */
size_t lg_prodtab_expire(lg_prodtab *t, int64_t before_ms);
/* Apply a stored batch unconditionally (recovery). */
WR_MUST_CHECK wr_status lg_prodtab_apply(lg_prodtab *t, const lg_bhdr *h);
WR_MUST_CHECK wr_status lg_prodtab_copy(lg_prodtab *dst, const lg_prodtab *src);
/* Snapshot file "<20-digit offset>.snap": state of all batches below that offset. */
WR_MUST_CHECK wr_status lg_prodtab_save(const lg_prodtab *t, const char *dir, uint64_t offset);
/* Load the newest valid snapshot with offset <= @max_offset; *offset_out = its offset, or 0
 * with an empty table when there is none. Damaged snapshots are skipped with a warning. */
WR_MUST_CHECK wr_status lg_prodtab_load(lg_prodtab *t, const char *dir, uint64_t max_offset,
                                        uint64_t *offset_out);

/* ---------------------------------------------------------------- partitions */
typedef struct lg_pent {
    size_t off, len; /* bytes in the pending buffer; len 0: an ack-only entry (duplicate) */
    uint64_t base;
    uint32_t count;
    int64_t max_ts;
    bool dup;
    lg_ack_fn fn;
    void *ctx;
} lg_pent;

typedef struct lg_pq { /* a queue of encoded batches */
    wr_buf buf;
    lg_pent *ents;
    size_t cnt, cap;
} lg_pq;

typedef struct lg_part {
    struct lg_topic *t; /* borrowed */
    uint32_t id;
    char dir[4096];
    pthread_mutex_t mu;
    pthread_cond_t cv; /* high watermark moved, or the partition failed */
    lg_seg **segs;     /* owned refs; sorted by base; the last one is active */
    size_t seg_cnt, seg_cap;
    uint64_t next_offset; /* next offset to assign (under mu) */
    _Atomic uint64_t hw;  /* high watermark */
    lg_pq pend;           /* queued, not yet taken by the writer (under mu) */
    lg_pq work;           /* taken by the writer (writer thread only) */
    bool queued;          /* on the writer's to-do list */
    uint64_t inflight_bytes;
    _Atomic bool failed;
    wr_status fail_st;
    char failure[160];
    lg_prodtab prods;  /* enqueue-side producer state, ahead of the disk (under mu) */
    lg_prodtab wprods; /* state of the batches written so far (writer thread only) */
    uint64_t last_sync_ns;
    uint64_t last_snap_off; /* newest producer snapshot (writer thread) */
    /* Direct I/O staging (writer thread): the active segment's last partial 4 KiB block
     * followed by the bytes of the current write, padded to a whole block. */
    uint8_t *dbuf_raw, *dbuf; /* owned; dbuf is dbuf_raw aligned to LG_DIO_ALIGN */
    size_t dbuf_cap;
    uint64_t dtail_blk; /* file offset of dbuf[0] */
    bool dtail_ok;      /* dbuf holds the bytes [dtail_blk, wsize) of the active segment */
    /* Cleaner (compacted topics). */
    lg_cleaner_state cleaner;
    uint64_t cleaned_offset, cleaner_runs, cleaner_in, cleaner_out;
    char cleaner_error[160];
} lg_part;

WR_MUST_CHECK wr_status lg_part_open(struct lg_topic *t, uint32_t id, lg_part **out);
void lg_part_close(lg_part *p, bool clean);
void lg_part_fail(lg_part *p, wr_status st, const char *fmt, ...) WR_PRINTF(3, 4);
/* Segment holding @off (or the first one after it), with a reference; NULL if none. */
lg_seg *lg_part_seg_for(lg_part *p, uint64_t off);
/* The segment after @s with a reference, NULL if @s is the last. */
lg_seg *lg_part_seg_next(lg_part *p, const lg_seg *s);
/* Readonly topics: pick up segments and bytes another process appended. */
void lg_part_refresh_ro(lg_part *p);
/* Delete producer snapshots below @keep_from (the older of the two newest is kept). */
void lg_part_prune_snapshots(lg_part *p, uint64_t keep_from);

/* ---------------------------------------------------------------- topics */
struct lg_topic {
    char root[4096], name[LG_TOPIC_NAME_MAX + 1], dir[4096];
    lg_config cfg;
    lg_open_opts opts;
    const lg_io *io; /* borrowed */
    int lock_fd;
    lg_part **parts;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the writer has work */
    pthread_cond_t idle_cv; /* the writer finished a round */
    lg_part **todo;         /* partitions with pending appends (under mu) */
    size_t todo_cnt, todo_cap;
    _Atomic uint64_t inflight_bytes;
    _Atomic uint64_t pend_entries; /* appends queued, not yet taken by the writer */
    _Atomic uint64_t linger_want;  /* the writer lingers until pend_entries reaches this */
    bool stop;
    uint64_t sync_want, sync_done;
    uint64_t rounds_done;
    uint64_t stat_batches, stat_writes, stat_syncs, stat_io_ns; /* writer thread only */
    pthread_t writer, maint;
    bool writer_started, maint_started;
    pthread_mutex_t maint_mu;
    pthread_cond_t maint_cv;
    bool maint_stop;
    pthread_mutex_t compact_mu; /* one compaction per topic at a time */
    uint64_t dio_min;           /* writes of at least this many bytes use O_DIRECT */
};

WR_MUST_CHECK wr_status lg_writer_start(lg_topic *t);
void lg_writer_stop(lg_topic *t); /* drains queued appends first */
WR_MUST_CHECK wr_status lg_maint_start(lg_topic *t);
void lg_maint_stop(lg_topic *t);
/* Low watermark of a partition from groups and pins (LG_NO_OFFSET if none). */
uint64_t lg_low_watermark(lg_topic *t, uint32_t partition);
WR_MUST_CHECK wr_status lg_part_retain(lg_part *p, int64_t now_ms);
WR_MUST_CHECK wr_status lg_part_compact(lg_part *p, int64_t now_ms);
double lg_part_dirty_ratio(lg_part *p);
uint64_t lg_cleaner_ckpt_load(lg_part *p); /* 0 when there is none */

WR_MUST_CHECK wr_status lg_config_encode(const lg_config *c, wr_buf *out);
WR_MUST_CHECK wr_status lg_config_decode(const uint8_t *p, size_t n, lg_config *c);
const char *lg_fsync_name(lg_fsync f);
bool lg_name_valid(const char *s);

#endif

/* kv_int.h -- private declarations of the store core (index/kv/): write batches and the
 * write-ahead log. The memtable (kv_mem.h) and the SST format (kv_sst.h) have their own. */
#ifndef WEIR_KV_INT_H
#define WEIR_KV_INT_H

#include "kv.h"
#include "kv_key.h"

/* ---------------------------------------------------------------- write batches */
typedef wr_status (*kv_batch_fn)(void *ctx, uint64_t seq, kv_type t, wr_bytes key, wr_bytes val);
wr_bytes kv_batch_rep(const kv_batch *b); /* borrowed */
/* Encode a batch of one entry into @dst (no allocation: the single-write fast path). Returns
 * the length, or 0 when it does not fit in @cap. */
size_t kv_batch_encode1(uint8_t *dst, size_t cap, kv_type t, wr_bytes key, wr_bytes val);
void kv_batch_set_seq(kv_batch *b, uint64_t seq);
/* Walk an encoded batch (from kv_batch_rep or a WAL record). WR_ERR_CORRUPT on bad bytes;
 * stops at the first error @fn returns. */
WR_MUST_CHECK wr_status kv_batch_iterate(wr_bytes rep, kv_batch_fn fn, void *ctx);

/* ---------------------------------------------------------------- record files */
/* The WAL and the MANIFEST share one framing: magic, length, checksum, payload
 * (docs/formats/kv-wal.md); only the magic differs. */
#define KV_WAL_MAGIC      0x574b5257u /* "WRKW" */
#define KV_MANIFEST_MAGIC 0x4d4b5257u /* "WRKM" */
typedef struct kv_wal kv_wal;
/* Create "<dir>/<number>.wal" (it must not exist) for appending. */
WR_MUST_CHECK wr_status kv_wal_create(const char *dir, uint64_t number, kv_wal **out);
/* The same, appending through a shared mapping of space reserved ahead (kv_wal.c): for WALs
 * whose appends are not synced one by one. */
WR_MUST_CHECK wr_status kv_wal_create_mapped(const char *dir, uint64_t number, kv_wal **out);
/* Append one record; with @sync, fdatasync before returning. On failure the WAL is FAILED:
 * every later append fails too (sticky). */
WR_MUST_CHECK wr_status kv_wal_append(kv_wal *w, wr_bytes payload, bool sync);
WR_MUST_CHECK wr_status kv_wal_sync(kv_wal *w);
uint64_t kv_wal_bytes(const kv_wal *w);
void kv_wal_close(kv_wal *w); /* NULL is a no-op; does not sync */
/* Replay a WAL file: @fn gets every complete record's payload in order. A torn tail (an
 * incomplete or damaged last record with nothing valid after it) ends the replay quietly and
 * is reported in *torn_at (UINT64_MAX if none); damage followed by valid records is
 * WR_ERR_CORRUPT naming the file and byte offset. */
typedef wr_status (*kv_wal_fn)(void *ctx, wr_bytes payload);
WR_MUST_CHECK wr_status kv_wal_replay(const char *path, kv_wal_fn fn, void *ctx, uint64_t *torn_at);
/* The same for any record file: @path is created in @dir (which is fsynced). */
WR_MUST_CHECK wr_status kv_recfile_create(const char *dir, const char *path, uint32_t magic,
                                          kv_wal **out);
WR_MUST_CHECK wr_status kv_recfile_replay(const char *path, uint32_t magic, kv_wal_fn fn, void *ctx,
                                          uint64_t *torn_at);

#endif

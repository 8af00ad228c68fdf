/* kv_version.h -- versions (which SST files make up the store, per level), version edits,
 * and the MANIFEST that logs the edits (private to index/kv/; docs/formats/manifest.md).
 *
 * A version is immutable and reference counted: readers pin the version they started with,
 * compaction installs a new one. An edit describes the step from one version to the next:
 * files added and deleted per level, plus counters (next file number, last sequence, WAL
 * number, the engine's applied log offset).
 *
 * Invariants of a version: (1) level-0 files are ordered by file number (newer last) and may
 * overlap; (2) on levels >= 1 files are ordered by smallest key and do not overlap;
 * (3) a file number appears at most once. kv_version_apply() refuses an edit that would break
 * them (WR_ERR_CORRUPT), so a damaged MANIFEST cannot produce a wrong store. */
#ifndef WEIR_KV_VERSION_H
#define WEIR_KV_VERSION_H

#include <stdatomic.h>

#include "kv_int.h"

#define KV_LEVELS 7

typedef struct kv_fmeta {
    uint64_t number, size;
    wr_buf smallest, largest; /* internal keys, owned */
    uint64_t min_seq, max_seq;
    uint64_t entries, tombstones;
    _Atomic int refs;
    /* Set when a compaction replaces the file: called once no version holds it, so the file
     * can go (readers of older versions keep it alive until they finish). Must not block. */
    void (*on_free)(void *ctx, uint64_t number);
    void *on_free_ctx;
} kv_fmeta;

typedef struct kv_version {
    kv_fmeta **files[KV_LEVELS]; /* owned refs */
    size_t cnt[KV_LEVELS];
    _Atomic int refs;
} kv_version;

typedef struct kv_edit_add {
    uint32_t level;
    kv_fmeta *f; /* a reference owned by the edit */
} kv_edit_add;

typedef struct kv_edit_del {
    uint32_t level;
    uint64_t number;
} kv_edit_del;

typedef struct kv_edit {
    bool has_next_file, has_last_seq, has_log_number, has_applied;
    uint64_t next_file, last_seq, log_number, applied;
    kv_edit_add *adds; /* owned */
    size_t add_cnt, add_cap;
    kv_edit_del *dels; /* owned */
    size_t del_cnt, del_cap;
} kv_edit;

WR_MUST_CHECK wr_status kv_fmeta_create(uint64_t number, uint64_t size, wr_bytes smallest,
                                        wr_bytes largest, kv_fmeta **out);
void kv_fmeta_ref(kv_fmeta *f);
void kv_fmeta_unref(kv_fmeta *f); /* NULL is a no-op */

WR_MUST_CHECK wr_status kv_version_create(kv_version **out); /* empty */
void kv_version_ref(kv_version *v);
void kv_version_unref(kv_version *v); /* NULL is a no-op */
uint64_t kv_version_level_bytes(const kv_version *v, int level);

void kv_edit_init(kv_edit *e);
void kv_edit_fini(kv_edit *e);
/* Takes a new reference on @f. */
WR_MUST_CHECK wr_status kv_edit_add_file(kv_edit *e, uint32_t level, kv_fmeta *f);
WR_MUST_CHECK wr_status kv_edit_del_file(kv_edit *e, uint32_t level, uint64_t number);
WR_MUST_CHECK wr_status kv_edit_encode(const kv_edit *e, wr_buf *out);
WR_MUST_CHECK wr_status kv_edit_decode(wr_bytes in, kv_edit *e); /* @e initialised, empty */
/* @base + @e -> *out (a new version with one reference). */
WR_MUST_CHECK wr_status kv_version_apply(const kv_version *base, const kv_edit *e,
                                         kv_version **out);

/* ---------------------------------------------------------------- MANIFEST */
typedef struct kv_manifest_state {
    kv_version *version; /* owned reference */
    uint64_t next_file, last_seq, log_number, applied;
    uint64_t manifest_number;
} kv_manifest_state;

/* Read CURRENT and replay the MANIFEST it names. WR_ERR_NOTFOUND when there is no CURRENT
 * (a new store). A torn last record (a crash mid-append) is ignored: its edit never took
 * effect. */
WR_MUST_CHECK wr_status kv_manifest_recover(const char *dir, kv_manifest_state *out);
void kv_manifest_state_fini(kv_manifest_state *s);

typedef struct kv_manifest kv_manifest;
/* Start MANIFEST-<number> holding a snapshot of @s (the whole version and counters), then
 * point CURRENT at it atomically. */
WR_MUST_CHECK wr_status kv_manifest_create(const char *dir, uint64_t number,
                                           const kv_manifest_state *s, kv_manifest **out);
/* Append an edit and fdatasync it: once this returns WR_OK the edit survives a crash. */
WR_MUST_CHECK wr_status kv_manifest_log(kv_manifest *m, const kv_edit *e);
uint64_t kv_manifest_bytes(const kv_manifest *m);
void kv_manifest_close(kv_manifest *m); /* NULL is a no-op */

#endif

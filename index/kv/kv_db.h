/* kv_db.h -- the store object shared by the files of the store core (private to index/kv/):
 * kv_db.c (open, writes, point reads, flush, compaction), kv_iter.c (iterators, multi-get),
 * kv_ckpt.c (checkpoints, verify).
 *
 * Locking: db->mu guards the memtables, the current version, the table cache, the snapshot
 * list and the background state; db->wmu serialises writers. Readers take references
 * (memtables, version, tables) under db->mu and then work without it. */
#ifndef WEIR_KV_DB_H
#define WEIR_KV_DB_H

#include <pthread.h>

#include "kv_cache.h"
#include "kv_mem.h"
#include "kv_sst.h"
#include "kv_version.h"

typedef struct kv_table { /* the table cache: open SSTs by number (under db->mu) */
    uint64_t number;
    kv_sst *t;              /* owned */
    int refs;               /* readers using t (under db->tmu) */
    bool dead;              /* the file is obsolete: close when refs drops to 0 */
    uint64_t used;          /* db->ttick at the last kv_table_get: LRU eviction */
    struct kv_table *hnext; /* hash chain */
} kv_table;

struct kv_snapshot { /* a pinned sequence number, in db->snaps (under db->mu) */
    uint64_t seq;
    kv_snapshot *prev, *next;
};

struct kv_db {
    char dir[4096];
    kv_options o;
    int lock_fd;
    pthread_mutex_t mu;  /* mem, imm, cur, tables, counters, bg state */
    pthread_cond_t cv;   /* background work finished, or there is some */
    pthread_mutex_t wmu; /* serialises writers */
    kv_mem *mem, *imm;   /* refs */
    uint64_t imm_applied;
    kv_wal *wal; /* NULL without a WAL */
    uint64_t wal_number, imm_wal_number;
    kv_manifest *man;
    uint64_t manifest_number;
    kv_version *cur; /* ref */
    uint64_t next_file;
    _Atomic uint64_t seq; /* last published sequence */
    uint64_t applied, manifest_applied;
    kv_cache *bcache;    /* owned: decoded blocks of every table */
    pthread_mutex_t tmu; /* the table cache: tbuckets, table_cnt, ttick, kv_table refs */
    kv_table **tbuckets; /* owned: KV_TBUCKETS hash chains of open tables */
    size_t table_cnt;    /* open tables; at most max_open_files beyond those in use */
    uint64_t ttick;
    pthread_mutex_t omu; /* obsolete file numbers, pushed by kv_fmeta on_free hooks */
    uint64_t *obs;
    size_t obs_cnt, obs_cap;
    pthread_t bg[2]; /* flush, compaction */
    bool bg_started[2], stop;
    wr_status bg_err;
    char bg_error[160];
    uint64_t last_wal_sync_ns;
    _Atomic bool failed;     /* bg_err != WR_OK (set with it): the writers' lock-free check */
    _Atomic uint32_t l0_cnt; /* files on level 0 of cur */
    kv_snapshot snaps;       /* list head: oldest first (sequences only grow) */
    bool manual;             /* kv_compact_all() asked for a full compaction */
    uint64_t rr[KV_LEVELS];  /* round-robin file choice per level for compaction */
    wr_buf scratch;          /* the batch being written (writer only) */
    kv_stats st;
};

/* What a read sees: the memtables and the version, pinned together under db->mu (so a flush
 * that moves the immutable memtable into a level-0 file is seen whole or not at all). */
typedef struct kv_view {
    kv_mem *mem, *imm; /* refs; imm may be NULL */
    kv_version *v;     /* ref */
} kv_view;
void kv_view_pin(kv_db *db, kv_view *out);
void kv_view_unpin(kv_view *vw);

/* "<dir>/<number, 6+ digits>.<ext>" */
void kv_file_path(const kv_db *db, char *dst, size_t cap, uint64_t number, const char *ext);
/* The open table for file @number (opened on first use) with a reference the caller drops
 * with kv_table_put(). Takes db->tmu (lock order: db->mu, then db->tmu); any thread. The
 * table cache keeps at most max_open_files tables open beyond those in use, closing the least
 * recently used. */
WR_MUST_CHECK wr_status kv_table_get(kv_db *db, uint64_t number, kv_table **out);
void kv_table_put(kv_db *db, kv_table *tb);

#endif

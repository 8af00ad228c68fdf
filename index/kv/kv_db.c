/* kv_db.c -- the store: open and recovery, the write path, point reads and multi-get,
 * snapshots, the table cache, and the two background threads (flush, compaction).
 * Iterators are in kv_iter.c, checkpoints and verify in kv_ckpt.c.
 *
 * Files in a store directory: LOCK (flock), CURRENT + MANIFEST-<n> (kv_version.c),
 * <n>.sst (kv_sst.c), <n>.wal (kv_wal.c; only with a WAL). All numbers come from one counter
 * (next_file), so a number names one file forever; after a crash it restarts past every
 * numbered file in the directory.
 *
 * Open (state machine):
 *   LOCK      take LOCK (WR_ERR_BUSY if another process holds it)
 *   MANIFEST  recover the version and counters, or start an empty store
 *   WAL       replay every WAL numbered >= the manifest's WAL number into a memtable, in
 *             order; flush that memtable to level 0 (so replayed data never depends on the
 *             old WALs again), then start a new MANIFEST and a new WAL
 *   CLEAN     delete files no version references: old WALs, old MANIFESTs, orphan SSTs
 *   RUN       start the flush thread and the compaction thread
 *
 * Write path (writers serialised by wmu): room check (a full memtable becomes immutable;
 * when one is still being flushed, the writer waits; level 0 too full slows or stops it:
 * stalls, counted in stats), sequence numbers, WAL append (fdatasync under KV_WAL_ALWAYS),
 * memtable insert, then the new last sequence is published (release store). Readers take the
 * published sequence (acquire), so they never see half a batch. A failed WAL append or sync
 * stops all writes until reopen.
 *
 * Flush (flush thread): imm -> SST <n>.sst -> version edit (add file on level 0, WAL number
 * of the live memtable, applied offset recorded when imm was sealed) logged to the MANIFEST ->
 * new version installed -> imm dropped, its WAL deleted.
 *
 * Compaction (compaction thread): see the comment above level_score(). */
#include "kv_db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void kv_options_default(kv_options *o)
{
    memset(o, 0, sizeof(*o));
    o->create_if_missing = true;
    o->wal = KV_WAL_OFF;
    o->wal_interval_ms = 100;
    o->memtable_bytes = 8u << 20;
    o->block_bytes = 4096;
    o->bloom_bits_per_key = 10;
    o->block_cache_bytes = 64u << 20;
    o->mmap_reads = true;
    o->max_open_files = 1000;
    o->l0_compaction_trigger = 4;
    o->l0_slowdown_writes = 20;
    o->l0_stop_writes = 36;
    o->l1_bytes = 256ull << 20;
    o->sst_bytes = 64ull << 20;
    o->background_threads = 2;
    o->max_key_bytes = KV_KEY_MAX;
    o->max_value_bytes = KV_VALUE_MAX;
}

void kv_file_path(const kv_db *db, char *dst, size_t cap, uint64_t number, const char *ext)
{
    snprintf(dst, cap, "%s/%06" PRIu64 ".%s", db->dir, number, ext);
}

/* ---------------------------------------------------------------- table cache */

#define KV_TBUCKETS 1024u /* table cache hash buckets (file numbers are sequential) */

static kv_table **tbucket(kv_db *db, uint64_t number)
{
    return &db->tbuckets[number & (KV_TBUCKETS - 1)];
}

static kv_table *table_find(kv_db *db, uint64_t number)
{
    kv_table *tb = *tbucket(db, number);
    while (tb && tb->number != number)
        tb = tb->hnext;
    return tb;
}

/* Unhook and close @tb. Caller holds db->tmu; refs == 0. */
static void table_free(kv_db *db, kv_table *tb)
{
    kv_table **pp = tbucket(db, tb->number);
    while (*pp != tb)
        pp = &(*pp)->hnext;
    *pp = tb->hnext;
    db->table_cnt--;
    kv_sst_close(tb->t);
    wr_free(tb);
}

/* Close least recently used tables nobody reads until at most max_open_files stay open (or
 * every open one is in use). Caller holds db->tmu. */
static void table_evict(kv_db *db)
{
    while (db->table_cnt > db->o.max_open_files) {
        kv_table *lru = NULL;
        for (size_t b = 0; b < KV_TBUCKETS; b++)
            for (kv_table *tb = db->tbuckets[b]; tb; tb = tb->hnext)
                if (tb->refs == 0 && (lru == NULL || tb->used < lru->used))
                    lru = tb;
        if (lru == NULL)
            return;
        table_free(db, lru);
    }
}

wr_status kv_table_get(kv_db *db, uint64_t number, kv_table **out)
{
    char path[4200];
    kv_sst *t;
    kv_table *tb;
    pthread_mutex_lock(&db->tmu);
    if ((tb = table_find(db, number)) != NULL) {
        tb->refs++;
        tb->used = ++db->ttick;
        pthread_mutex_unlock(&db->tmu);
        *out = tb;
        return WR_OK;
    }
    pthread_mutex_unlock(&db->tmu);
    /* Open without the lock: it reads the footer, index and filter. */
    kv_file_path(db, path, sizeof(path), number, "sst");
    WR_TRY(kv_sst_open(path, &t));
    kv_sst_set_cache(t, db->bcache, number);
    if (db->o.mmap_reads && kv_sst_map(t) != WR_OK) /* it still reads, through the cache */
        WR_LOGW("%s; reading it through the block cache", wr_errmsg());
    pthread_mutex_lock(&db->tmu);
    if ((tb = table_find(db, number)) != NULL) { /* another reader was faster */
        kv_sst_close(t);
    } else {
        if ((tb = wr_calloc(1, sizeof(*tb))) == NULL) {
            pthread_mutex_unlock(&db->tmu);
            kv_sst_close(t);
            return WR_ERR_NOMEM;
        }
        tb->number = number;
        tb->t = t;
        tb->hnext = *tbucket(db, number);
        *tbucket(db, number) = tb;
        db->table_cnt++;
    }
    tb->refs++;
    tb->used = ++db->ttick;
    table_evict(db);
    pthread_mutex_unlock(&db->tmu);
    *out = tb;
    return WR_OK;
}

void kv_table_put(kv_db *db, kv_table *tb)
{
    pthread_mutex_lock(&db->tmu);
    if (--tb->refs == 0 && (tb->dead || db->table_cnt > db->o.max_open_files))
        table_free(db, tb);
    pthread_mutex_unlock(&db->tmu);
}

/* on_free hook of a compacted-away file: no version holds it any more. */
static void file_obsolete(void *ctx, uint64_t number)
{
    kv_db *db = ctx;
    pthread_mutex_lock(&db->omu);
    if (db->obs_cnt == db->obs_cap) {
        size_t ncap = db->obs_cap ? db->obs_cap * 2 : 32;
        uint64_t *n = wr_realloc(db->obs, ncap * sizeof(*n));
        if (n == NULL) { /* the file stays until the next open removes it */
            pthread_mutex_unlock(&db->omu);
            return;
        }
        db->obs = n;
        db->obs_cap = ncap;
    }
    db->obs[db->obs_cnt++] = number;
    pthread_mutex_unlock(&db->omu);
}

/* Close and delete the files no version needs. Caller holds db->mu. */
static void drain_obsolete(kv_db *db)
{
    pthread_mutex_lock(&db->omu);
    for (size_t k = 0; k < db->obs_cnt; k++) {
        char path[4200];
        kv_table *tb;
        pthread_mutex_lock(&db->tmu);
        if ((tb = table_find(db, db->obs[k])) != NULL) {
            tb->dead = true;
            if (tb->refs == 0)
                table_free(db, tb);
        }
        pthread_mutex_unlock(&db->tmu);
        kv_file_path(db, path, sizeof(path), db->obs[k], "sst");
        unlink(path); /* an open descriptor keeps the bytes for whoever still reads */
        kv_cache_erase_file(db->bcache, db->obs[k]);
    }
    db->obs_cnt = 0;
    pthread_mutex_unlock(&db->omu);
}

/* ---------------------------------------------------------------- flush */

/* Write @m as SST number @number; *out gets its metadata (NULL when @m is empty). */
static wr_status write_sst(kv_db *db, kv_mem *m, uint64_t number, kv_fmeta **out)
{
    char path[4200];
    kv_sst_opts so;
    kv_sst_builder *b;
    kv_sst_props props;
    kv_mem_iter it;
    uint64_t len;
    wr_status st = WR_OK;

    *out = NULL;
    if (kv_mem_count(m) == 0)
        return WR_OK;
    kv_sst_opts_init(&so);
    so.block_size = (uint32_t)db->o.block_bytes;
    so.bloom_bits_per_key = db->o.bloom_bits_per_key;
    so.compression = db->o.compress ? KV_COMP_ZSTD : KV_COMP_NONE;
    kv_file_path(db, path, sizeof(path), number, "sst");
    WR_TRY(kv_sst_builder_open(path, &so, &b));
    kv_mem_iter_init(&it, m);
    for (kv_mem_iter_seek_first(&it); kv_mem_iter_valid(&it) && st == WR_OK; kv_mem_iter_next(&it))
        st = kv_sst_builder_add(b, kv_mem_iter_key(&it), kv_mem_iter_value(&it));
    kv_mem_iter_fini(&it);
    if (st != WR_OK) {
        kv_sst_builder_abandon(b);
        return st;
    }
    memset(&props, 0, sizeof(props));
    WR_TRY(kv_sst_builder_finish(b, &props, &len));
    st = wr_fsync_dir(db->dir);
    if (st == WR_OK)
        st = kv_fmeta_create(number, len, wr_bytes_of(props.smallest.ptr, props.smallest.len),
                             wr_bytes_of(props.largest.ptr, props.largest.len), out);
    if (st == WR_OK) {
        (*out)->min_seq = props.min_seq;
        (*out)->max_seq = props.max_seq;
        (*out)->entries = props.entry_cnt;
        (*out)->tombstones = props.del_cnt;
        pthread_mutex_lock(&db->mu);
        db->st.bytes_written += len;
        db->st.flushes++;
        pthread_mutex_unlock(&db->mu);
    }
    kv_sst_props_fini(&props);
    return st;
}

/* Log @e (plus counters) and install the resulting version. Caller holds db->mu. */
static wr_status log_and_apply(kv_db *db, kv_edit *e)
{
    kv_version *nv;
    e->has_next_file = e->has_last_seq = true;
    e->next_file = db->next_file;
    e->last_seq = atomic_load(&db->seq);
    WR_TRY(kv_version_apply(db->cur, e, &nv));
    if (db->man) {
        wr_status st = kv_manifest_log(db->man, e);
        if (st != WR_OK) {
            kv_version_unref(nv);
            return st;
        }
    }
    kv_version_unref(db->cur);
    db->cur = nv;
    atomic_store_explicit(&db->l0_cnt, (uint32_t)nv->cnt[0], memory_order_relaxed);
    return WR_OK;
}

/* Flush db->imm. Called by the background thread with db->mu held; drops it while writing. */
static wr_status flush_imm(kv_db *db)
{
    kv_mem *m = db->imm;
    uint64_t number = db->next_file++, old_wal = db->imm_wal_number;
    kv_fmeta *f = NULL;
    kv_edit e;
    wr_status st;
    char path[4200];

    pthread_mutex_unlock(&db->mu);
    st = write_sst(db, m, number, &f);
    pthread_mutex_lock(&db->mu);
    if (st != WR_OK)
        return st;
    kv_edit_init(&e);
    if (f && (st = kv_edit_add_file(&e, 0, f)) != WR_OK)
        goto out;
    e.has_log_number = true;
    e.log_number = db->wal_number; /* the memtable that stays lives in this WAL */
    e.has_applied = true;
    e.applied = db->imm_applied;
    if ((st = log_and_apply(db, &e)) != WR_OK)
        goto out;
    db->manifest_applied = db->imm_applied;
    kv_mem_unref(db->imm);
    db->imm = NULL;
    if (old_wal && old_wal != db->wal_number) {
        kv_file_path(db, path, sizeof(path), old_wal, "wal");
        unlink(path);
    }
out:
    kv_edit_fini(&e);
    kv_fmeta_unref(f);
    return st;
}

/* ---------------------------------------------------------------- compaction */
/* Leveled: level 0 compacts when it holds l0_compaction_trigger files; level n >= 1 when it
 * holds more than l1_bytes * 10^(n-1). The level with the highest score >= 1 goes first.
 * Inputs: all of level 0 (its files overlap), or one file of level n chosen round-robin, plus
 * every file of the next level that overlaps their key range. The merge keeps the newest
 * version of each key in each snapshot stripe (the versions a snapshot sees: see merge())
 * and drops a tombstone that every snapshot sees when no deeper level holds the key. Output
 * files are cut at sst_bytes, between user keys. Inputs become obsolete when no version holds
 * them.
 *
 * Besides the size triggers: a file whose entries are mostly tombstones (KV_DENSE_*) is
 * compacted into the next level even when no level is over its size, so that deleted ranges
 * vanish and seeks over them stay fast; kv_compact_all() merges every level down into the
 * deepest non-empty one. */
#define KV_DENSE_MIN_ENTRIES 64 /* smaller files are not worth a compaction of their own */
#define KV_DENSE_PCT         50 /* tombstones as a share of entries */

static bool dense(const kv_fmeta *f)
{
    return f->entries >= KV_DENSE_MIN_ENTRIES && f->tombstones * 100 >= f->entries * KV_DENSE_PCT;
}

static double level_score(const kv_db *db, const kv_version *v, int l)
{
    double target = (double)db->o.l1_bytes;
    if (l == 0)
        return (double)v->cnt[0] / (double)db->o.l0_compaction_trigger;
    for (int i = 1; i < l; i++)
        target *= 10;
    return (double)kv_version_level_bytes(v, l) / target;
}

/* The level to compact next, or -1. *file_out: the input file of that level (an index into
 * it), or -1 for round-robin (levels >= 1) / every file (level 0). */
static int pick_level(const kv_db *db, long *file_out)
{
    const kv_version *v = db->cur;
    int best = -1;
    double bs = 1.0;
    *file_out = -1;
    for (int l = 0; l < KV_LEVELS - 1; l++) {
        double s = level_score(db, v, l);
        if (s >= bs) {
            bs = s;
            best = l;
        }
    }
    if (best >= 0)
        return best;
    for (int l = 0; l < KV_LEVELS - 1; l++)
        for (size_t i = 0; i < v->cnt[l]; i++)
            if (dense(v->files[l][i])) {
                *file_out = l == 0 ? -1 : (long)i;
                return l;
            }
    return -1;
}

static wr_bytes fuser(const wr_buf *ikey)
{
    return kv_ikey_user(wr_bytes_of(ikey->ptr, ikey->len));
}

static bool overlaps(const kv_fmeta *f, wr_bytes lo, wr_bytes hi)
{
    return wr_bytes_cmp(fuser(&f->largest), lo) >= 0 && wr_bytes_cmp(fuser(&f->smallest), hi) <= 0;
}

typedef struct kv_compaction {
    int level, out_level; /* out_level: level + 1, or level itself (bottom of a full compaction) */
    uint64_t *snaps;      /* owned: the live snapshots' sequences, ascending */
    size_t snap_cnt;
    kv_fmeta **in[2]; /* owned refs: level, level + 1 */
    size_t n[2];
    kv_version *v; /* ref: the version the inputs came from */
} kv_compaction;

static void compaction_fini(kv_compaction *c)
{
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < c->n[k]; i++)
            kv_fmeta_unref(c->in[k][i]);
        wr_free(c->in[k]);
    }
    wr_free(c->snaps);
    kv_version_unref(c->v);
    memset(c, 0, sizeof(*c));
}

/* Choose the inputs: every file of @level (@file == -1 and level 0, or @all), file @file,
 * or one chosen round-robin; plus the overlapping files of the next level, or none when the
 * output stays on @level (@in_place: the last step of a full compaction). Caller holds
 * db->mu. */
static wr_status pick(kv_db *db, int level, long file, bool all, bool in_place, kv_compaction *c)
{
    kv_version *v = db->cur;
    wr_bytes lo, hi;
    size_t ns = 0;

    memset(c, 0, sizeof(*c));
    c->level = level;
    c->out_level = in_place ? level : level + 1;
    c->v = v;
    kv_version_ref(v);
    for (kv_snapshot *s = db->snaps.next; s != &db->snaps; s = s->next)
        ns++;
    if ((c->in[0] = wr_malloc((v->cnt[level] + 1) * sizeof(kv_fmeta *))) == NULL ||
        (c->in[1] = wr_malloc(((in_place ? 0 : v->cnt[level + 1]) + 1) * sizeof(kv_fmeta *))) ==
            NULL ||
        (c->snaps = wr_malloc((ns + 1) * sizeof(uint64_t))) == NULL)
        return WR_ERR_NOMEM;
    for (kv_snapshot *s = db->snaps.next; s != &db->snaps; s = s->next)
        c->snaps[c->snap_cnt++] = s->seq; /* taken in sequence order: already ascending */
    if (level == 0 || all) {
        for (size_t i = 0; i < v->cnt[level]; i++)
            c->in[0][c->n[0]++] = v->files[level][i];
    } else if (file >= 0) {
        c->in[0][c->n[0]++] = v->files[level][file];
    } else {
        c->in[0][c->n[0]++] = v->files[level][db->rr[level]++ % v->cnt[level]];
    }
    lo = fuser(&c->in[0][0]->smallest);
    hi = fuser(&c->in[0][0]->largest);
    for (size_t i = 1; i < c->n[0]; i++) {
        if (wr_bytes_cmp(fuser(&c->in[0][i]->smallest), lo) < 0)
            lo = fuser(&c->in[0][i]->smallest);
        if (wr_bytes_cmp(fuser(&c->in[0][i]->largest), hi) > 0)
            hi = fuser(&c->in[0][i]->largest);
    }
    for (size_t i = 0; !in_place && i < v->cnt[level + 1]; i++)
        if (overlaps(v->files[level + 1][i], lo, hi))
            c->in[1][c->n[1]++] = v->files[level + 1][i];
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < c->n[k]; i++)
            kv_fmeta_ref(c->in[k][i]);
    return WR_OK;
}

/* May a tombstone for @ukey be dropped at @out_level: does no deeper level hold the key? */
static bool is_bottom(const kv_version *v, int out_level, wr_bytes ukey)
{
    for (int l = out_level + 1; l < KV_LEVELS; l++)
        for (size_t i = 0; i < v->cnt[l]; i++)
            if (overlaps(v->files[l][i], ukey, ukey))
                return false;
    return true;
}

typedef struct kv_out {
    kv_sst_builder *b;
    kv_fmeta **files; /* owned refs */
    size_t cnt, cap;
} kv_out;

static wr_status out_finish(kv_db *db, kv_out *o, uint64_t number)
{
    kv_sst_props props;
    uint64_t len;
    kv_fmeta *f;
    wr_status st;
    if (o->b == NULL)
        return WR_OK;
    memset(&props, 0, sizeof(props));
    st = kv_sst_builder_finish(o->b, &props, &len);
    o->b = NULL;
    if (st != WR_OK)
        return st;
    if (o->cnt == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 8;
        kv_fmeta **n = wr_realloc(o->files, ncap * sizeof(*n));
        if (n == NULL) {
            kv_sst_props_fini(&props);
            return WR_ERR_NOMEM;
        }
        o->files = n;
        o->cap = ncap;
    }
    st = kv_fmeta_create(number, len, wr_bytes_of(props.smallest.ptr, props.smallest.len),
                         wr_bytes_of(props.largest.ptr, props.largest.len), &f);
    if (st == WR_OK) {
        f->min_seq = props.min_seq;
        f->max_seq = props.max_seq;
        f->entries = props.entry_cnt;
        f->tombstones = props.del_cnt;
        o->files[o->cnt++] = f;
        pthread_mutex_lock(&db->mu);
        db->st.bytes_written += len;
        pthread_mutex_unlock(&db->mu);
    }
    kv_sst_props_fini(&props);
    return st;
}

/* The snapshot stripe of @seq: the index of the oldest snapshot that sees it (the first
 * snapshot sequence >= seq), snap_cnt when only the latest state does. Two versions of a key
 * in the same stripe are seen by the same snapshots, so only the newer one matters. */
static size_t stripe(const kv_compaction *c, uint64_t seq)
{
    size_t lo = 0, hi = c->snap_cnt;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->snaps[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Merge the inputs into new files. Runs without db->mu. */
static wr_status merge(kv_db *db, kv_compaction *c, kv_out *o)
{
    kv_sst_iter **its = NULL;
    kv_table **tbs = NULL;
    size_t n = c->n[0] + c->n[1], k = 0;
    wr_buf last = {0};
    bool have_last = false;
    size_t last_stripe = 0;
    bool key_out = false; /* a version of the current user key went to the output */
    uint64_t number = 0;
    kv_sst_opts so;
    wr_status st = WR_OK;
    char path[4200];

    kv_sst_opts_init(&so);
    so.block_size = (uint32_t)db->o.block_bytes;
    so.bloom_bits_per_key = db->o.bloom_bits_per_key;
    so.compression = db->o.compress ? KV_COMP_ZSTD : KV_COMP_NONE;
    if ((its = wr_calloc(n, sizeof(*its))) == NULL || (tbs = wr_calloc(n, sizeof(*tbs))) == NULL) {
        st = WR_ERR_NOMEM;
        goto out;
    }
    for (int lv = 0; lv < 2; lv++)
        for (size_t i = 0; i < c->n[lv]; i++, k++) {
            st = kv_table_get(db, c->in[lv][i]->number, &tbs[k]);
            if (st != WR_OK || (st = kv_sst_iter_create(tbs[k]->t, &its[k])) != WR_OK)
                goto out;
            kv_sst_iter_no_fill(its[k]);
            st = kv_sst_iter_first(its[k]);
            if (st != WR_OK && st != WR_EOF)
                goto out;
            st = WR_OK;
        }
    for (;;) {
        size_t m = n;
        wr_bytes key, val;
        bool drop;
        for (size_t i = 0; i < n; i++) /* the smallest current key: few inputs, a scan */
            if (kv_sst_iter_valid(its[i]) &&
                (m == n || kv_ikey_cmp(kv_sst_iter_key(its[i]), kv_sst_iter_key(its[m])) < 0))
                m = i;
        if (m == n)
            break;
        key = kv_sst_iter_key(its[m]);
        val = kv_sst_iter_value(its[m]);
        size_t sp = stripe(c, kv_ikey_seq(key));
        if (have_last && wr_bytes_eq(kv_ikey_user(key), wr_bytes_of(last.ptr, last.len)) &&
            sp == last_stripe) {
            drop = true; /* a newer version is seen by every snapshot that sees this one */
        } else {
            if (!have_last || !wr_bytes_eq(kv_ikey_user(key), wr_bytes_of(last.ptr, last.len))) {
                last.len = 0;
                if ((st = wr_buf_append(&last, key.ptr, key.len - KV_TRAILER)) != WR_OK)
                    goto out;
                have_last = true;
                key_out = false;
            }
            last_stripe = sp;
            /* A tombstone every snapshot sees hides every older version (they are in the same
             * stripe, dropped above): with no deeper level holding the key, nothing is left
             * for it to hide. */
            drop = kv_ikey_type(key) == KV_TYPE_DEL && sp == 0 &&
                   is_bottom(c->v, c->out_level, kv_ikey_user(key));
        }
        if (!drop) {
            /* Cut the output only between user keys: all versions of a key kept in one file,
             * or levels >= 1 would hold files that overlap. */
            if (o->b && !key_out && kv_sst_builder_file_len(o->b) >= db->o.sst_bytes &&
                (st = out_finish(db, o, number)) != WR_OK)
                goto out;
            if (o->b == NULL) {
                pthread_mutex_lock(&db->mu);
                number = db->next_file++;
                pthread_mutex_unlock(&db->mu);
                kv_file_path(db, path, sizeof(path), number, "sst");
                if ((st = kv_sst_builder_open(path, &so, &o->b)) != WR_OK)
                    goto out;
            }
            if ((st = kv_sst_builder_add(o->b, key, val)) != WR_OK)
                goto out;
            key_out = true;
        }
        st = kv_sst_iter_next(its[m]);
        if (st != WR_OK && st != WR_EOF)
            goto out;
        st = WR_OK;
    }
    st = out_finish(db, o, number);
out:
    if (st != WR_OK && o->b) {
        kv_sst_builder_abandon(o->b);
        o->b = NULL;
    }
    for (size_t i = 0; its && i < n; i++)
        kv_sst_iter_destroy(its[i]);
    for (size_t i = 0; tbs && i < n; i++)
        if (tbs[i])
            kv_table_put(db, tbs[i]);
    wr_free(its);
    wr_free(tbs);
    wr_buf_fini(&last);
    return st;
}

/* Do the inputs of @level overlap each other? (Only level 0's can.) */
static bool disjoint(const kv_compaction *c)
{
    for (size_t i = 0; i < c->n[0]; i++)
        for (size_t j = i + 1; j < c->n[0]; j++)
            if (overlaps(c->in[0][j], fuser(&c->in[0][i]->smallest), fuser(&c->in[0][i]->largest)))
                return false;
    return true;
}

/* Input files that overlap nothing on the next level (nor each other) move there by a version
 * edit, without being rewritten: a sequential load then writes each byte once. Not for
 * tombstone-triggered or full compactions: their point is to rewrite. Caller holds db->mu. */
static wr_status move_files(kv_db *db, kv_compaction *c)
{
    kv_edit e;
    wr_status st = WR_OK;
    kv_edit_init(&e);
    for (size_t i = 0; i < c->n[0] && st == WR_OK; i++) {
        st = kv_edit_del_file(&e, (uint32_t)c->level, c->in[0][i]->number);
        if (st == WR_OK)
            st = kv_edit_add_file(&e, (uint32_t)c->out_level, c->in[0][i]);
    }
    if (st == WR_OK)
        st = log_and_apply(db, &e);
    if (st == WR_OK) {
        db->st.compactions++;
        WR_LOGD("%s: moved %zu file(s) from level %d to %d", db->dir, c->n[0], c->level,
                c->out_level);
    }
    kv_edit_fini(&e);
    compaction_fini(c);
    return st;
}

/* Run one compaction of @level (inputs as for pick()). Called by the background thread with
 * db->mu held. */
static wr_status compact_level(kv_db *db, int level, long file, bool all, bool in_place)
{
    kv_compaction c;
    kv_out o = {0};
    kv_edit e;
    wr_status st;
    bool logged = false; /* the edit may be in the MANIFEST: its outputs must stay */

    if (db->cur->cnt[level] == 0) /* e.g. a full compaction whose merges dropped everything */
        return WR_OK;
    if ((st = pick(db, level, file, all, in_place, &c)) != WR_OK) {
        compaction_fini(&c);
        return st;
    }
    if (!all && file < 0 && c.n[1] == 0 && disjoint(&c))
        return move_files(db, &c);
    pthread_mutex_unlock(&db->mu);
    st = merge(db, &c, &o);
    if (st == WR_OK)
        st = wr_fsync_dir(db->dir);
    pthread_mutex_lock(&db->mu);
    kv_edit_init(&e);
    for (int k = 0; k < 2 && st == WR_OK; k++)
        for (size_t i = 0; i < c.n[k] && st == WR_OK; i++)
            st = kv_edit_del_file(&e, (uint32_t)(level + k), c.in[k][i]->number);
    for (size_t i = 0; i < o.cnt && st == WR_OK; i++)
        st = kv_edit_add_file(&e, (uint32_t)c.out_level, o.files[i]);
    if (st == WR_OK) {
        /* Once no version holds an input, its file can go. */
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < c.n[k]; i++) {
                c.in[k][i]->on_free = file_obsolete;
                c.in[k][i]->on_free_ctx = db;
            }
        logged = true;
        if ((st = log_and_apply(db, &e)) != WR_OK)
            for (int k = 0; k < 2; k++)
                for (size_t i = 0; i < c.n[k]; i++)
                    c.in[k][i]->on_free = NULL;
    }
    if (st == WR_OK) {
        db->st.compactions++;
        WR_LOGD("%s: compacted level %d (%s): %zu + %zu files -> %zu on level %d", db->dir, level,
                all         ? "all"
                : file >= 0 ? "tombstones"
                            : "size",
                c.n[0], c.n[1], o.cnt, c.out_level);
    }
    kv_edit_fini(&e);
    for (size_t i = 0; i < o.cnt; i++) {
        /* Never installed, and not in the MANIFEST either: the outputs are garbage. (When the
         * MANIFEST append failed part-way, the next open keeps or removes them, whichever
         * the MANIFEST says.) */
        if (st != WR_OK && !logged) {
            char path[4200];
            kv_file_path(db, path, sizeof(path), o.files[i]->number, "sst");
            unlink(path);
        }
        kv_fmeta_unref(o.files[i]);
    }
    wr_free(o.files);
    compaction_fini(&c);
    drain_obsolete(db);
    return st;
}

/* kv_compact_all(): merge every level into the next, down to the deepest non-empty one (at
 * least level 1). Caller holds db->mu (compact_level drops it while merging). */
static wr_status compact_manual(kv_db *db)
{
    int deepest = 1;
    for (int l = 0; l < KV_LEVELS; l++)
        if (db->cur->cnt[l] > 0 && l > deepest)
            deepest = l;
    for (int l = 0; l < deepest; l++)
        if (db->cur->cnt[l] > 0)
            WR_TRY(compact_level(db, l, -1, true, false));
    /* The deepest level too, in place: versions no snapshot needs any more and tombstones
     * with nothing below them go, also where no level above had anything to merge. */
    return compact_level(db, deepest, -1, true, true);
}

static void bg_fail(kv_db *db, wr_status st, const char *what, int level)
{
    if (st == WR_OK || db->bg_err != WR_OK)
        return;
    db->bg_err = st;
    atomic_store(&db->failed, true);
    if (level >= 0)
        snprintf(db->bg_error, sizeof(db->bg_error), "%s of level %d: %s", what, level,
                 wr_errmsg());
    else
        snprintf(db->bg_error, sizeof(db->bg_error), "%s: %s", what, wr_errmsg());
    WR_LOGE("%s: background %s; writes are refused until the store is reopened", db->dir,
            db->bg_error);
}

/* The flush thread: turns each immutable memtable into a level-0 file, so that writers never
 * wait for a compaction to finish (only for a flush, or for level 0 to shrink). */
static void *flush_main(void *arg)
{
    kv_db *db = arg;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        while (!db->stop && db->bg_err == WR_OK && db->imm == NULL)
            pthread_cond_wait(&db->cv, &db->mu);
        if (db->bg_err != WR_OK || db->imm == NULL)
            break; /* stopping with nothing (more) to flush */
        bg_fail(db, flush_imm(db), "flush", -1);
        pthread_cond_broadcast(&db->cv);
    }
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

/* The compaction thread: size- and tombstone-triggered compactions, kv_compact_all(), and the
 * removal of files no version holds any more. */
static void *compact_main(void *arg)
{
    kv_db *db = arg;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        int level;
        long file;
        while (!db->stop && db->bg_err == WR_OK && !db->manual && pick_level(db, &file) < 0) {
            /* Readers drop the last reference to a compacted-away file at any time, without
             * a signal: look for such files every 100 ms. */
            struct timespec ts;
            wr_abstime(&ts, 100000000u);
            pthread_cond_timedwait(&db->cv, &db->mu, &ts);
            drain_obsolete(db);
        }
        if (db->bg_err != WR_OK || db->stop)
            break;
        if (db->manual) {
            bg_fail(db, compact_manual(db), "full compaction", -1);
            db->manual = false;
        } else if ((level = pick_level(db, &file)) >= 0) {
            bg_fail(db, compact_level(db, level, file, false, false), "compaction", level);
        }
        pthread_cond_broadcast(&db->cv);
    }
    db->manual = false;
    drain_obsolete(db);
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

static wr_status bg_status(kv_db *db)
{
    return wr_err(WR_ERR_FAILED, "%s: %s", db->dir, db->bg_error);
}

/* Arena blocks of 1/16 of the memtable budget (4 KiB .. 1 MiB): a memtable's usage starts at
 * one block, so a block as big as the budget would seal every memtable after one write. */
static size_t arena_block(const kv_db *db)
{
    size_t b = db->o.memtable_bytes / 16;
    return b < 4096 ? 4096 : b > (1u << 20) ? (1u << 20) : b;
}

/* A new WAL: mapped unless every append is synced (kv_wal.c says why). */
static wr_status wal_create(kv_db *db, uint64_t number, kv_wal **out)
{
    return db->o.wal == KV_WAL_ALWAYS ? kv_wal_create(db->dir, number, out)
                                      : kv_wal_create_mapped(db->dir, number, out);
}

/* Seal the memtable (mem -> imm) and start a new one (and a new WAL). Caller holds db->mu
 * and wmu; imm must be NULL. */
static wr_status seal_mem(kv_db *db)
{
    kv_mem *nm;
    kv_wal *nw = NULL;
    uint64_t wn = 0;

    wr_status st;

    WR_TRY(kv_mem_create(arena_block(db), &nm));
    if (db->o.wal != KV_WAL_OFF) {
        wn = db->next_file++;
        if ((st = wal_create(db, wn, &nw)) != WR_OK) {
            kv_mem_unref(nm);
            return st;
        }
        /* The old WAL's unsynced tail must be durable before a crash could need it: a failed
         * sync leaves it in an unknown state, so the store stops taking writes. */
        if (db->wal && db->o.wal != KV_WAL_NEVER && (st = kv_wal_sync(db->wal)) != WR_OK) {
            kv_wal_close(nw);
            kv_mem_unref(nm);
            db->bg_err = st;
            atomic_store(&db->failed, true);
            snprintf(db->bg_error, sizeof(db->bg_error), "WAL sync failed: %s", wr_errmsg());
            return st;
        }
        kv_wal_close(db->wal);
        db->wal = nw;
    }
    db->imm = db->mem;
    db->imm_wal_number = db->wal_number;
    db->imm_applied = db->applied;
    db->wal_number = wn;
    db->mem = nm;
    pthread_cond_broadcast(&db->cv);
    return WR_OK;
}

/* Make room for a write: seal a full memtable; wait while the previous one is flushing. */
static wr_status make_room(kv_db *db, bool force)
{
    wr_status st = WR_OK;
    bool slowed = false;
    /* The common case without db->mu (readers take it): room in the memtable (db->mem only
     * changes under wmu, which the caller holds), level 0 below the slowdown, no failure. */
    if (!force && !atomic_load_explicit(&db->failed, memory_order_relaxed) &&
        atomic_load_explicit(&db->l0_cnt, memory_order_relaxed) < db->o.l0_slowdown_writes &&
        kv_mem_usage(db->mem) < db->o.memtable_bytes)
        return WR_OK;
    pthread_mutex_lock(&db->mu);
    while (st == WR_OK) {
        if (db->bg_err != WR_OK) {
            st = bg_status(db);
            break;
        }
        if (db->cur->cnt[0] >= db->o.l0_stop_writes) { /* compaction is far behind: wait */
            uint64_t t0 = wr_now_ns();
            db->st.stall_count++;
            pthread_cond_wait(&db->cv, &db->mu);
            db->st.stall_us += (wr_now_ns() - t0) / 1000;
            continue;
        }
        if (db->cur->cnt[0] >= db->o.l0_slowdown_writes && !slowed) {
            /* Behind, not yet stopped: give compaction 1 ms of this writer, once per write. */
            slowed = true;
            db->st.stall_count++;
            db->st.stall_us += 1000;
            pthread_mutex_unlock(&db->mu);
            wr_sleep_ns(1000000);
            pthread_mutex_lock(&db->mu);
            continue;
        }
        if (!force && kv_mem_usage(db->mem) < db->o.memtable_bytes)
            break;
        if (db->imm != NULL) { /* flush behind: stall until it finishes */
            uint64_t t0 = wr_now_ns();
            db->st.stall_count++;
            pthread_cond_wait(&db->cv, &db->mu);
            db->st.stall_us += (wr_now_ns() - t0) / 1000;
            continue;
        }
        if (force && kv_mem_count(db->mem) == 0)
            break;
        st = seal_mem(db);
        break;
    }
    pthread_mutex_unlock(&db->mu);
    return st;
}

/* ---------------------------------------------------------------- writes */

static wr_status mem_apply(void *ctx, uint64_t seq, kv_type t, wr_bytes key, wr_bytes val)
{
    return kv_mem_add(ctx, seq, t, key, val);
}

static wr_status check_limits(void *ctx, uint64_t seq, kv_type t, wr_bytes key, wr_bytes val)
{
    const kv_db *db = ctx;
    (void)seq;
    if (key.len > db->o.max_key_bytes)
        return wr_err(WR_ERR_TOOBIG, "key of %zu bytes: this store's limit is %u", key.len,
                      db->o.max_key_bytes);
    if (t == KV_TYPE_PUT && val.len > db->o.max_value_bytes)
        return wr_err(WR_ERR_TOOBIG, "value of %zu bytes: this store's limit is %u", val.len,
                      db->o.max_value_bytes);
    return WR_OK;
}

/* Write an encoded batch of @count entries. */
static wr_status write_rep(kv_db *db, wr_bytes rep, uint32_t count)
{
    uint64_t base;
    wr_status st;

    if (count == 0)
        return WR_OK;
    WR_TRY(kv_batch_iterate(rep, check_limits, db));
    pthread_mutex_lock(&db->wmu);
    if ((st = make_room(db, false)) != WR_OK)
        goto out;
    base = atomic_load(&db->seq) + 1;
    db->scratch.len = 0;
    if ((st = wr_buf_append(&db->scratch, rep.ptr, rep.len)) != WR_OK)
        goto out;
    wr_put64(db->scratch.ptr, base); /* kv_batch_set_seq on our copy */
    if (db->wal) {
        bool sync = db->o.wal == KV_WAL_ALWAYS;
        if (db->o.wal == KV_WAL_INTERVAL &&
            wr_now_ns() - db->last_wal_sync_ns >= (uint64_t)db->o.wal_interval_ms * 1000000u) {
            sync = true;
            db->last_wal_sync_ns = wr_now_ns();
        }
        if ((st = kv_wal_append(db->wal, wr_bytes_of(db->scratch.ptr, db->scratch.len), sync)) !=
            WR_OK) {
            /* The record may be in the WAL in part or whole (a failed sync): its sequence
             * numbers must never be handed out again, so the store stops taking writes. */
            pthread_mutex_lock(&db->mu);
            if (db->bg_err == WR_OK) {
                db->bg_err = st;
                atomic_store(&db->failed, true);
                snprintf(db->bg_error, sizeof(db->bg_error), "WAL append failed: %s", wr_errmsg());
            }
            pthread_mutex_unlock(&db->mu);
            goto out;
        }
    }
    /* The WAL has it: the memtable must take it too, or the store would lie after restart. */
    if ((st = kv_batch_iterate(wr_bytes_of(db->scratch.ptr, db->scratch.len), mem_apply,
                               db->mem)) != WR_OK) {
        pthread_mutex_lock(&db->mu);
        db->bg_err = st;
        atomic_store(&db->failed, true);
        snprintf(db->bg_error, sizeof(db->bg_error), "memtable insert failed: %s", wr_errmsg());
        pthread_mutex_unlock(&db->mu);
        goto out;
    }
    db->st.user_bytes += rep.len;
    atomic_store_explicit(&db->seq, base + count - 1, memory_order_release);
out:
    pthread_mutex_unlock(&db->wmu);
    return st;
}

wr_status kv_write(kv_db *db, const kv_batch *b)
{
    return write_rep(db, kv_batch_rep(b), kv_batch_count(b));
}

/* One entry: encoded on the stack when small, else through a batch. */
static wr_status write1(kv_db *db, kv_type t, wr_bytes key, wr_bytes val)
{
    uint8_t buf[1024];
    size_t n = kv_batch_encode1(buf, sizeof(buf), t, key, val);
    kv_batch *b;
    wr_status st;
    if (n > 0)
        return write_rep(db, wr_bytes_of(buf, n), 1);
    WR_TRY(kv_batch_create(&b));
    st = t == KV_TYPE_PUT ? kv_batch_put(b, key, val) : kv_batch_delete(b, key);
    if (st == WR_OK)
        st = kv_write(db, b);
    kv_batch_destroy(b);
    return st;
}

wr_status kv_put(kv_db *db, wr_bytes key, wr_bytes val)
{
    return write1(db, KV_TYPE_PUT, key, val);
}

wr_status kv_delete(kv_db *db, wr_bytes key)
{
    return write1(db, KV_TYPE_DEL, key, wr_bytes_of(NULL, 0));
}

/* ---------------------------------------------------------------- reads */

static bool in_range(const kv_fmeta *f, wr_bytes ukey)
{
    return wr_bytes_cmp(ukey, kv_ikey_user(wr_bytes_of(f->smallest.ptr, f->smallest.len))) >= 0 &&
           wr_bytes_cmp(ukey, kv_ikey_user(wr_bytes_of(f->largest.ptr, f->largest.len))) <= 0;
}

static wr_status sst_probe(kv_db *db, const kv_fmeta *f, wr_bytes key, uint64_t snap, wr_buf *val,
                           kv_found *found)
{
    kv_table *tb;
    wr_status st;
    WR_TRY(kv_table_get(db, f->number, &tb));
    st = kv_sst_get(tb->t, key, snap, val, found);
    kv_table_put(db, tb);
    return st;
}

void kv_view_pin(kv_db *db, kv_view *out)
{
    pthread_mutex_lock(&db->mu);
    out->mem = kv_mem_ref(db->mem);
    out->imm = db->imm ? kv_mem_ref(db->imm) : NULL;
    out->v = db->cur;
    kv_version_ref(out->v);
    pthread_mutex_unlock(&db->mu);
}

void kv_view_unpin(kv_view *vw)
{
    kv_mem_unref(vw->mem);
    kv_mem_unref(vw->imm);
    kv_version_unref(vw->v);
    memset(vw, 0, sizeof(*vw));
}

wr_status kv_get(kv_db *db, const kv_snapshot *snap, wr_bytes key, wr_buf *val)
{
    uint64_t seq = atomic_load_explicit(&db->seq, memory_order_acquire);
    kv_view vw;
    kv_mem *mem, *imm;
    kv_version *v;
    wr_bytes mv;
    wr_status st = WR_ERR_NOTFOUND;
    kv_mem_found mf = KV_MEM_MISS;
    kv_found sf = KV_FOUND_NONE;

    if (snap)
        seq = snap->seq;
    kv_view_pin(db, &vw);
    mem = vw.mem;
    imm = vw.imm;
    v = vw.v;

    mf = kv_mem_get(mem, key, seq, &mv, NULL);
    if (mf == KV_MEM_MISS && imm)
        mf = kv_mem_get(imm, key, seq, &mv, NULL);
    if (mf == KV_MEM_PUT) {
        val->len = 0;
        st = wr_buf_append(val, mv.ptr, mv.len);
        goto out;
    }
    if (mf == KV_MEM_DEL)
        goto out;
    /* Level 0 newest first (files may overlap), then one file per deeper level. */
    for (size_t i = v->cnt[0]; i-- > 0 && sf == KV_FOUND_NONE;)
        if (in_range(v->files[0][i], key) &&
            (st = sst_probe(db, v->files[0][i], key, seq, val, &sf)) != WR_OK)
            goto out;
    for (int l = 1; l < KV_LEVELS && sf == KV_FOUND_NONE; l++) {
        size_t lo = 0, hi = v->cnt[l];
        while (lo < hi) { /* first file whose largest user key >= key */
            size_t mid = (lo + hi) / 2;
            const kv_fmeta *f = v->files[l][mid];
            if (wr_bytes_cmp(kv_ikey_user(wr_bytes_of(f->largest.ptr, f->largest.len)), key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < v->cnt[l] && in_range(v->files[l][lo], key) &&
            (st = sst_probe(db, v->files[l][lo], key, seq, val, &sf)) != WR_OK)
            goto out;
    }
    st = sf == KV_FOUND_PUT ? WR_OK : WR_ERR_NOTFOUND;
out:
    kv_view_unpin(&vw);
    return st;
}

/* Multi-get: memtables first, then per table one kv_sst_multi_get() for every key still open
 * that falls in its range (level 0 newest first, then each deeper level), so the block reads
 * of all those keys go to the disk in one io_uring submission per table. */
typedef struct mget {
    kv_db *db;
    uint64_t seq;
    const wr_bytes *keys;
    wr_buf *vals;
    wr_status *st;
    bool *done;
    /* scratch for one table's batch */
    wr_bytes *sk;
    size_t *si;
    wr_buf *sv;
    kv_found *sf;
    wr_status *ss;
} mget;

static wr_status mget_table(mget *g, const kv_fmeta *f, size_t m)
{
    kv_table *tb;
    wr_status st;
    if (m == 0)
        return WR_OK;
    WR_TRY(kv_table_get(g->db, f->number, &tb));
    st = kv_sst_multi_get(tb->t, g->sk, m, g->seq, g->sv, g->sf, g->ss);
    kv_table_put(g->db, tb);
    for (size_t j = 0; j < m; j++) {
        size_t i = g->si[j];
        if (g->ss[j] != WR_OK) { /* that key's block is damaged: its error, the rest go on */
            g->st[i] = g->ss[j];
            g->done[i] = true;
        } else if (g->sf[j] != KV_FOUND_NONE) {
            g->done[i] = true;
            g->st[i] = g->sf[j] == KV_FOUND_PUT ? WR_OK : WR_ERR_NOTFOUND;
            if (g->sf[j] == KV_FOUND_PUT) { /* hand over the buffer holding the value */
                wr_buf t = g->vals[i];
                g->vals[i] = g->sv[j];
                g->sv[j] = t;
            }
        }
    }
    return st == WR_OK || st == WR_ERR_CORRUPT || st == WR_ERR_IO ? WR_OK : st;
}

wr_status kv_multi_get(kv_db *db, const kv_snapshot *snap, const wr_bytes *keys, size_t n,
                       wr_buf *vals, wr_status *st)
{
    mget g = {db, 0, keys, vals, st, NULL, NULL, NULL, NULL, NULL, NULL};
    kv_view vw;
    kv_mem *mem, *imm;
    kv_version *v;
    wr_status rc = WR_OK;

    if (n == 0)
        return WR_OK;
    g.seq = snap ? snap->seq : atomic_load_explicit(&db->seq, memory_order_acquire);
    if ((g.done = wr_calloc(n, sizeof(bool))) == NULL ||
        (g.sk = wr_calloc(n, sizeof(wr_bytes))) == NULL ||
        (g.si = wr_calloc(n, sizeof(size_t))) == NULL ||
        (g.sv = wr_calloc(n, sizeof(wr_buf))) == NULL ||
        (g.sf = wr_calloc(n, sizeof(kv_found))) == NULL ||
        (g.ss = wr_calloc(n, sizeof(wr_status))) == NULL) {
        rc = WR_ERR_NOMEM;
        goto out_free;
    }
    kv_view_pin(db, &vw);
    mem = vw.mem;
    imm = vw.imm;
    v = vw.v;

    for (size_t i = 0; i < n; i++) {
        wr_bytes mv;
        kv_mem_found mf = kv_mem_get(mem, keys[i], g.seq, &mv, NULL);
        if (mf == KV_MEM_MISS && imm)
            mf = kv_mem_get(imm, keys[i], g.seq, &mv, NULL);
        st[i] = WR_ERR_NOTFOUND;
        if (mf == KV_MEM_PUT) {
            vals[i].len = 0;
            st[i] = wr_buf_append(&vals[i], mv.ptr, mv.len);
        }
        g.done[i] = mf != KV_MEM_MISS;
    }
    for (size_t f = v->cnt[0]; f-- > 0 && rc == WR_OK;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!g.done[i] && in_range(v->files[0][f], keys[i])) {
                g.sk[m] = keys[i];
                g.si[m++] = i;
            }
        rc = mget_table(&g, v->files[0][f], m);
    }
    for (int l = 1; l < KV_LEVELS && rc == WR_OK; l++)
        for (size_t f = 0; f < v->cnt[l] && rc == WR_OK; f++) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (!g.done[i] && in_range(v->files[l][f], keys[i])) {
                    g.sk[m] = keys[i];
                    g.si[m++] = i;
                }
            rc = mget_table(&g, v->files[l][f], m);
        }
    kv_view_unpin(&vw);
out_free:
    for (size_t j = 0; g.sv && j < n; j++)
        wr_buf_fini(&g.sv[j]);
    wr_free(g.done);
    wr_free(g.sk);
    wr_free(g.si);
    wr_free(g.sv);
    wr_free(g.sf);
    wr_free(g.ss);
    return rc;
}

/* ---------------------------------------------------------------- snapshots */

wr_status kv_snapshot_take(kv_db *db, kv_snapshot **out)
{
    kv_snapshot *s = wr_calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return WR_ERR_NOMEM;
    pthread_mutex_lock(&db->mu);
    /* Under mu, so a compaction choosing its inputs sees either this snapshot or none of the
     * writes after it; appended last, the list stays in sequence order. */
    s->seq = atomic_load_explicit(&db->seq, memory_order_acquire);
    s->prev = db->snaps.prev;
    s->next = &db->snaps;
    db->snaps.prev->next = s;
    db->snaps.prev = s;
    pthread_mutex_unlock(&db->mu);
    *out = s;
    return WR_OK;
}

void kv_snapshot_release(kv_db *db, kv_snapshot *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&db->mu);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    pthread_mutex_unlock(&db->mu);
    wr_free(s);
}

uint64_t kv_snapshot_seq(const kv_snapshot *s)
{
    return s->seq;
}

/* ---------------------------------------------------------------- engine mode */

wr_status kv_set_applied(kv_db *db, uint64_t log_offset)
{
    pthread_mutex_lock(&db->wmu); /* ordered with the writes it describes */
    pthread_mutex_lock(&db->mu);
    db->applied = log_offset;
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->wmu);
    return WR_OK;
}

uint64_t kv_applied(const kv_db *db)
{
    return db->manifest_applied;
}

wr_status kv_flush(kv_db *db)
{
    wr_status st;
    pthread_mutex_lock(&db->wmu);
    st = make_room(db, true);
    pthread_mutex_unlock(&db->wmu);
    if (st != WR_OK)
        return st;
    pthread_mutex_lock(&db->mu);
    while (db->imm != NULL && db->bg_err == WR_OK)
        pthread_cond_wait(&db->cv, &db->mu);
    st = db->bg_err != WR_OK ? bg_status(db) : WR_OK;
    pthread_mutex_unlock(&db->mu);
    return st;
}

wr_status kv_compact_all(kv_db *db)
{
    wr_status st;
    WR_TRY(kv_flush(db));
    pthread_mutex_lock(&db->mu);
    while (db->manual && db->bg_err == WR_OK) /* someone else's: let it finish first */
        pthread_cond_wait(&db->cv, &db->mu);
    db->manual = true;
    pthread_cond_broadcast(&db->cv);
    while (db->manual && db->bg_err == WR_OK)
        pthread_cond_wait(&db->cv, &db->mu);
    st = db->bg_err != WR_OK ? bg_status(db) : WR_OK;
    pthread_mutex_unlock(&db->mu);
    return st;
}

void kv_stats_get(kv_db *db, kv_stats *out)
{
    pthread_mutex_lock(&db->mu);
    *out = db->st;
    out->seq = atomic_load(&db->seq);
    out->memtable_bytes = kv_mem_usage(db->mem);
    out->imm_memtables = db->imm != NULL;
    for (int l = 0; l < KV_LEVELS && l < 8; l++) {
        out->files[l] = (uint32_t)db->cur->cnt[l];
        out->level_bytes[l] = kv_version_level_bytes(db->cur, l);
    }
    snprintf(out->bg_error, sizeof(out->bg_error), "%s", db->bg_error);
    kv_cache_stats(db->bcache, &out->block_cache_hits, &out->block_cache_misses, NULL);
    pthread_mutex_unlock(&db->mu);
}

/* ---------------------------------------------------------------- open / close */

static wr_status take_lock(kv_db *db)
{
    char path[4200];
    WR_TRY(wr_path(path, sizeof(path), "%s/LOCK", db->dir));
    if ((db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return wr_err(wr_status_from_errno(errno), "%s: %s", path, strerror(errno));
    if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return wr_err(WR_ERR_BUSY, "store %s is open in another process (lock %s)", db->dir, path);
    return WR_OK;
}

typedef struct wal_list {
    uint64_t *n;
    size_t cnt, cap;
} wal_list;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Files by kind: WALs >= @min_wal go to @wals (sorted); with @clean, files that no version
 * needs are deleted (WALs below @min_wal, other MANIFESTs, SSTs not in db->cur, temps). */
static wr_status scan_dir(kv_db *db, uint64_t min_wal, wal_list *wals, bool clean)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;
    if (d == NULL)
        return wr_err(WR_ERR_IO, "%s: cannot list: %s", db->dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        char *end, path[4400];
        uint64_t n = strtoull(de->d_name, &end, 10);
        bool drop = false;
        snprintf(path, sizeof(path), "%s/%s", db->dir, de->d_name);
        /* A crash (or a failed open) can leave a file numbered past the MANIFEST's counter:
         * never hand out its number again. */
        if (end != de->d_name && (strcmp(end, ".wal") == 0 || strcmp(end, ".sst") == 0) &&
            n >= db->next_file)
            db->next_file = n + 1;
        if (strncmp(de->d_name, "MANIFEST-", 9) == 0 &&
            strtoull(de->d_name + 9, NULL, 10) >= db->next_file)
            db->next_file = strtoull(de->d_name + 9, NULL, 10) + 1;
        if (end != de->d_name && strcmp(end, ".wal") == 0) {
            if (n >= min_wal && wals) {
                if (wals->cnt == wals->cap) {
                    uint64_t *nn = wr_realloc(wals->n, (wals->cap = wals->cap * 2 + 8) * 8);
                    if (nn == NULL) {
                        closedir(d);
                        return WR_ERR_NOMEM;
                    }
                    wals->n = nn;
                }
                wals->n[wals->cnt++] = n;
            } else if (n < min_wal) {
                drop = clean;
            }
        } else if (end != de->d_name && strcmp(end, ".sst") == 0 && clean) {
            bool live = false;
            for (int l = 0; l < KV_LEVELS && !live; l++)
                for (size_t i = 0; i < db->cur->cnt[l] && !live; i++)
                    live = db->cur->files[l][i]->number == n;
            drop = !live;
        } else if (strncmp(de->d_name, "MANIFEST-", 9) == 0 && clean) {
            drop = strtoull(de->d_name + 9, NULL, 10) != db->manifest_number && db->man != NULL;
        }
        if (drop) {
            WR_LOGI("%s: removing obsolete file", path);
            unlink(path);
        }
    }
    closedir(d);
    if (wals && wals->cnt > 1)
        qsort(wals->n, wals->cnt, sizeof(uint64_t), cmp_u64);
    return WR_OK;
}

typedef struct replay_ctx {
    kv_db *db;
    uint64_t max_seq;
} replay_ctx;

static wr_status replay_apply(void *ctx, uint64_t seq, kv_type t, wr_bytes key, wr_bytes val)
{
    replay_ctx *c = ctx;
    wr_status st = kv_mem_add(c->db->mem, seq, t, key, val);
    if (st == WR_ERR_EXISTS) /* the same record twice (a retried append): harmless */
        st = WR_OK;
    if (seq > c->max_seq)
        c->max_seq = seq;
    return st;
}

static wr_status replay_record(void *ctx, wr_bytes payload)
{
    return kv_batch_iterate(payload, replay_apply, ctx);
}

static wr_status recover(kv_db *db)
{
    kv_manifest_state ms;
    wal_list wals = {0};
    replay_ctx rc = {db, 0};
    wr_status st = kv_manifest_recover(db->dir, &ms);
    uint64_t mnum;
    kv_fmeta *f = NULL;

    if (st == WR_ERR_NOTFOUND) {
        if (!db->o.create_if_missing)
            return wr_err(WR_ERR_NOTFOUND, "%s: no store here (no CURRENT file)", db->dir);
        memset(&ms, 0, sizeof(ms));
        WR_TRY(kv_version_create(&ms.version));
        ms.next_file = 1;
    } else if (st != WR_OK) {
        return st;
    } else if (db->o.error_if_exists) {
        kv_manifest_state_fini(&ms);
        return wr_err(WR_ERR_EXISTS, "%s: a store already exists here", db->dir);
    }
    db->cur = ms.version;
    ms.version = NULL;
    db->next_file = ms.next_file;
    atomic_store(&db->seq, ms.last_seq);
    db->applied = db->manifest_applied = ms.applied;

    /* Replay the WALs the MANIFEST still needs, oldest first, then flush what they held. */
    if ((st = kv_mem_create(arena_block(db), &db->mem)) != WR_OK)
        goto out;
    if ((st = scan_dir(db, ms.log_number ? ms.log_number : 1, &wals, false)) != WR_OK)
        goto out;
    for (size_t i = 0; i < wals.cnt; i++) {
        char path[4200];
        uint64_t torn;
        kv_file_path(db, path, sizeof(path), wals.n[i], "wal");
        if ((st = kv_wal_replay(path, replay_record, &rc, &torn)) != WR_OK)
            goto out;
        if (torn != UINT64_MAX)
            WR_LOGW("%s: ignoring a torn last record at byte %" PRIu64
                    " (a write that was never acknowledged)",
                    path, torn);
        if (wals.n[i] >= db->next_file)
            db->next_file = wals.n[i] + 1;
    }
    if (rc.max_seq > atomic_load(&db->seq))
        atomic_store(&db->seq, rc.max_seq);
    mnum = db->next_file++;
    if (kv_mem_count(db->mem) > 0) {
        kv_edit e;
        if ((st = write_sst(db, db->mem, db->next_file++, &f)) != WR_OK)
            goto out;
        kv_edit_init(&e);
        st = kv_edit_add_file(&e, 0, f);
        if (st == WR_OK)
            st = log_and_apply(db, &e); /* no MANIFEST yet: just the in-memory version */
        kv_edit_fini(&e);
        if (st != WR_OK)
            goto out;
        kv_mem_unref(db->mem);
        if ((st = kv_mem_create(arena_block(db), &db->mem)) != WR_OK)
            goto out;
    }
    if (db->o.wal != KV_WAL_OFF) {
        db->wal_number = db->next_file++;
        if ((st = wal_create(db, db->wal_number, &db->wal)) != WR_OK)
            goto out;
    }
    ms.version = db->cur;
    ms.next_file = db->next_file;
    ms.last_seq = atomic_load(&db->seq);
    ms.log_number = db->wal_number;
    ms.applied = db->applied;
    if ((st = kv_manifest_create(db->dir, mnum, &ms, &db->man)) != WR_OK)
        goto out;
    db->manifest_number = mnum;
    st = scan_dir(db, db->wal_number ? db->wal_number : db->next_file, NULL, true);
out:
    ms.version = NULL;
    kv_fmeta_unref(f);
    wr_free(wals.n);
    return st;
}

void kv_close(kv_db *db)
{
    if (db == NULL)
        return;
    pthread_mutex_lock(&db->mu);
    db->stop = true;
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
    for (int i = 0; i < 2; i++)
        if (db->bg_started[i])
            pthread_join(db->bg[i], NULL);
    if (db->wal && db->o.wal != KV_WAL_NEVER)
        WR_IGNORE(kv_wal_sync(db->wal));
    kv_wal_close(db->wal);
    kv_manifest_close(db->man);
    kv_mem_unref(db->mem);
    kv_mem_unref(db->imm);
    kv_version_unref(db->cur);
    for (size_t b = 0; db->tbuckets && b < KV_TBUCKETS; b++)
        while (db->tbuckets[b])
            table_free(db, db->tbuckets[b]);
    wr_free(db->tbuckets);
    pthread_mutex_destroy(&db->tmu);
    kv_cache_destroy(db->bcache);
    wr_free(db->obs);
    pthread_mutex_destroy(&db->omu);
    wr_buf_fini(&db->scratch);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->wmu);
    pthread_cond_destroy(&db->cv);
    wr_free(db);
}

wr_status kv_open(const char *dir, const kv_options *opts, kv_db **out)
{
    kv_db *db;
    wr_status st;
    struct stat stb;

    *out = NULL;
    if ((db = wr_calloc(1, sizeof(*db))) == NULL)
        return WR_ERR_NOMEM;
    db->lock_fd = -1;
    db->snaps.next = db->snaps.prev = &db->snaps;
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->wmu, NULL);
    pthread_mutex_init(&db->omu, NULL);
    pthread_mutex_init(&db->tmu, NULL);
    pthread_cond_init(&db->cv, NULL);
    if (opts)
        db->o = *opts;
    else
        kv_options_default(&db->o);
    if (db->o.max_key_bytes == 0 || db->o.max_key_bytes > KV_KEY_MAX)
        db->o.max_key_bytes = KV_KEY_MAX;
    if (db->o.max_value_bytes == 0 || db->o.max_value_bytes > KV_VALUE_MAX)
        db->o.max_value_bytes = KV_VALUE_MAX;
    if (db->o.memtable_bytes < (64u << 10))
        db->o.memtable_bytes = 64u << 10;
    if ((st = wr_path(db->dir, sizeof(db->dir), "%s", dir)) != WR_OK ||
        (st = kv_cache_create(db->o.block_cache_bytes, 0, &db->bcache)) != WR_OK)
        goto err;
    if ((db->tbuckets = wr_calloc(KV_TBUCKETS, sizeof(kv_table *))) == NULL) {
        st = WR_ERR_NOMEM;
        goto err;
    }
    if (stat(dir, &stb) != 0) {
        if (!db->o.create_if_missing) {
            st = wr_err(WR_ERR_NOTFOUND, "%s: no store here", dir);
            goto err;
        }
        if ((st = wr_mkdir_p(dir)) != WR_OK)
            goto err;
    }
    if ((st = take_lock(db)) != WR_OK || (st = recover(db)) != WR_OK)
        goto err;
    atomic_store(&db->l0_cnt, (uint32_t)db->cur->cnt[0]);
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&db->bg[i], NULL, i == 0 ? flush_main : compact_main, db) != 0) {
            st = wr_err(WR_ERR_IO, "%s: cannot start the background threads", dir);
            goto err;
        }
        db->bg_started[i] = true;
    }
    *out = db;
    return WR_OK;
err:
    kv_close(db);
    return st;
}

/* kv_iter.c -- iterators over a consistent view of the store, and multi-get.
 *
 * Three layers:
 *   children   one cursor per sorted source of internal keys: the memtable, the immutable
 *              memtable, each level-0 file, and one "level cursor" per deeper level that walks
 *              the level's files in order, opening one table at a time;
 *   merge      the children merged in internal-key order, in either direction (LevelDB's
 *              MergingIterator, the same idea: on a change of direction every other child is
 *              repositioned around the current key);
 *   user view  kv_iter: the newest version of each user key visible at the snapshot, with
 *              tombstoned keys and keys outside [lower, upper) skipped.
 *
 * Invariants: (1) the view is fixed at kv_iter_open(): the iterator holds references to the
 * memtables and the version it started with and ignores entries newer than its sequence
 * number, so neither writes nor compactions change what it returns; (2) going forward, the merge
 * sits on the entry the iterator returns; going backward, it sits on the entry just before
 * the current user key's versions (LevelDB's DBIter, the same idea); (3) the current key and
 * value are copies (it->key, it->val), so they stay valid while the merge moves.
 *
 * Errors: a damaged table makes the move that met it return the error (naming the file and
 * offset) and leaves the iterator invalid. */
#include <stdlib.h>

#include "kv_db.h"

/* ---------------------------------------------------------------- children */
typedef enum { CH_MEM, CH_SST, CH_LEVEL } ch_kind;

typedef struct child {
    ch_kind kind;
    bool valid;
    kv_mem_iter mi;    /* CH_MEM */
    kv_sst_iter *si;   /* CH_SST, CH_LEVEL: the current table's iterator */
    kv_table *tb;      /* CH_SST, CH_LEVEL: its table (a reference) */
    kv_fmeta **files;  /* CH_LEVEL: the level's files (borrowed from the version) */
    size_t nfiles, fi; /* CH_LEVEL: which file tb is */
} child;

struct kv_iter {
    kv_db *db;
    kv_mem *mem, *imm; /* refs */
    kv_version *v;     /* ref */
    uint64_t seq;      /* the view: entries with seq <= this */
    child *ch;
    size_t nch;
    long cur; /* the merge's current child, -1 when invalid */
    bool fwd; /* the merge's direction */
    wr_buf seek;
    /* user view */
    bool valid, reverse;
    wr_buf key, val;
    wr_buf lower, upper;
    bool has_lower, has_upper;
};

static wr_status ch_set_file(kv_iter *it, child *c, size_t fi)
{
    kv_db *db = it->db;
    wr_status st;
    if (c->tb && c->fi == fi)
        return WR_OK;
    kv_sst_iter_destroy(c->si);
    c->si = NULL;
    if (c->tb)
        kv_table_put(db, c->tb);
    c->tb = NULL;
    st = kv_table_get(db, c->files[fi]->number, &c->tb);
    if (st != WR_OK)
        return st;
    c->fi = fi;
    return kv_sst_iter_create(c->tb->t, &c->si);
}

/* Map an SST iterator result to the child's state. */
static wr_status ch_result(child *c, wr_status st)
{
    c->valid = st == WR_OK;
    return st == WR_EOF ? WR_OK : st;
}

/* A level cursor that ran off a file's end moves to the next / previous file. */
static wr_status lvl_forward(kv_iter *it, child *c, wr_status st)
{
    while (st == WR_EOF && c->fi + 1 < c->nfiles) {
        WR_TRY(ch_set_file(it, c, c->fi + 1));
        st = kv_sst_iter_first(c->si);
    }
    return ch_result(c, st);
}

static wr_status lvl_backward(kv_iter *it, child *c, wr_status st)
{
    while (st == WR_EOF && c->fi > 0) {
        WR_TRY(ch_set_file(it, c, c->fi - 1));
        st = kv_sst_iter_last(c->si);
    }
    return ch_result(c, st);
}

/* The moves every child supports; seeks take an internal key. */
typedef enum { MV_SEEK, MV_FIRST, MV_LAST, MV_NEXT, MV_PREV } mv_op;

static void mem_move(kv_mem_iter *mi, mv_op op, wr_bytes ikey)
{
    switch (op) {
    case MV_SEEK:
        kv_mem_iter_seek(mi, ikey);
        break;
    case MV_FIRST:
        kv_mem_iter_seek_first(mi);
        break;
    case MV_LAST:
        kv_mem_iter_seek_last(mi);
        break;
    case MV_NEXT:
        kv_mem_iter_next(mi);
        break;
    case MV_PREV:
        kv_mem_iter_prev(mi);
        break;
    }
}

static wr_status sst_move(kv_sst_iter *si, mv_op op, wr_bytes ikey)
{
    switch (op) {
    case MV_SEEK:
        return kv_sst_iter_seek(si, ikey);
    case MV_FIRST:
        return kv_sst_iter_first(si);
    case MV_LAST:
        return kv_sst_iter_last(si);
    case MV_NEXT:
        return kv_sst_iter_next(si);
    case MV_PREV:
        return kv_sst_iter_prev(si);
    }
    return WR_ERR_INTERNAL;
}

/* The first file of a level whose largest key >= @ikey; nfiles when none. */
static size_t lvl_find(const child *c, wr_bytes ikey)
{
    size_t lo = 0, hi = c->nfiles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const kv_fmeta *f = c->files[mid];
        if (kv_ikey_cmp(wr_bytes_of(f->largest.ptr, f->largest.len), ikey) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Move child @c. A level cursor first picks the file a positioning move starts in, and moves
 * on to the next (previous) file when it runs off one. Next and prev need a valid child. */
static wr_status ch_move(kv_iter *it, child *c, mv_op op, wr_bytes ikey)
{
    wr_status st;
    if (c->kind == CH_MEM) {
        mem_move(&c->mi, op, ikey);
        c->valid = kv_mem_iter_valid(&c->mi);
        return WR_OK;
    }
    if (c->kind == CH_LEVEL && op != MV_NEXT && op != MV_PREV) {
        size_t fi = op == MV_FIRST ? 0 : op == MV_LAST ? c->nfiles - 1 : lvl_find(c, ikey);
        if (fi == c->nfiles) {
            c->valid = false;
            return WR_OK;
        }
        WR_TRY(ch_set_file(it, c, fi));
    }
    st = sst_move(c->si, op, ikey);
    if (c->kind == CH_SST)
        return ch_result(c, st);
    return op == MV_LAST || op == MV_PREV ? lvl_backward(it, c, st) : lvl_forward(it, c, st);
}

static wr_bytes ch_key(const child *c)
{
    return c->kind == CH_MEM ? kv_mem_iter_key(&c->mi) : kv_sst_iter_key(c->si);
}

static wr_bytes ch_value(const child *c)
{
    return c->kind == CH_MEM ? kv_mem_iter_value(&c->mi) : kv_sst_iter_value(c->si);
}

/* ---------------------------------------------------------------- merge */

static void m_smallest(kv_iter *it)
{
    it->cur = -1;
    for (size_t i = 0; i < it->nch; i++)
        if (it->ch[i].valid &&
            (it->cur < 0 || kv_ikey_cmp(ch_key(&it->ch[i]), ch_key(&it->ch[it->cur])) < 0))
            it->cur = (long)i;
}

static void m_largest(kv_iter *it)
{
    it->cur = -1;
    for (size_t i = 0; i < it->nch; i++)
        if (it->ch[i].valid &&
            (it->cur < 0 || kv_ikey_cmp(ch_key(&it->ch[i]), ch_key(&it->ch[it->cur])) > 0))
            it->cur = (long)i;
}

static bool m_valid(const kv_iter *it)
{
    return it->cur >= 0;
}

static wr_bytes m_key(const kv_iter *it)
{
    return ch_key(&it->ch[it->cur]);
}

static wr_status m_seek(kv_iter *it, wr_bytes ikey)
{
    for (size_t i = 0; i < it->nch; i++)
        WR_TRY(ch_move(it, &it->ch[i], MV_SEEK, ikey));
    it->fwd = true;
    m_smallest(it);
    return WR_OK;
}

static wr_status m_first(kv_iter *it)
{
    for (size_t i = 0; i < it->nch; i++)
        WR_TRY(ch_move(it, &it->ch[i], MV_FIRST, wr_bytes_of(NULL, 0)));
    it->fwd = true;
    m_smallest(it);
    return WR_OK;
}

static wr_status m_last(kv_iter *it)
{
    for (size_t i = 0; i < it->nch; i++)
        WR_TRY(ch_move(it, &it->ch[i], MV_LAST, wr_bytes_of(NULL, 0)));
    it->fwd = false;
    m_largest(it);
    return WR_OK;
}

static wr_status m_next(kv_iter *it)
{
    child *cur = &it->ch[it->cur];
    if (!it->fwd) {
        /* Every other child sits before the current key: move each to the first entry after
         * it. Internal keys are unique across children, so "after" is "> key". */
        wr_bytes k = m_key(it);
        it->seek.len = 0;
        WR_TRY(wr_buf_append(&it->seek, k.ptr, k.len));
        k = wr_bytes_of(it->seek.ptr, it->seek.len);
        for (size_t i = 0; i < it->nch; i++) {
            child *c = &it->ch[i];
            if (c == cur)
                continue;
            WR_TRY(ch_move(it, c, MV_SEEK, k));
            if (c->valid && kv_ikey_cmp(ch_key(c), k) == 0)
                WR_TRY(ch_move(it, c, MV_NEXT, wr_bytes_of(NULL, 0)));
        }
        it->fwd = true;
    }
    WR_TRY(ch_move(it, cur, MV_NEXT, wr_bytes_of(NULL, 0)));
    m_smallest(it);
    return WR_OK;
}

static wr_status m_prev(kv_iter *it)
{
    child *cur = &it->ch[it->cur];
    if (it->fwd) {
        /* Every other child sits after the current key: move each to the last entry before. */
        wr_bytes k = m_key(it);
        it->seek.len = 0;
        WR_TRY(wr_buf_append(&it->seek, k.ptr, k.len));
        k = wr_bytes_of(it->seek.ptr, it->seek.len);
        for (size_t i = 0; i < it->nch; i++) {
            child *c = &it->ch[i];
            if (c == cur)
                continue;
            WR_TRY(ch_move(it, c, MV_SEEK, k));
            if (c->valid)
                WR_TRY(ch_move(it, c, MV_PREV, wr_bytes_of(NULL, 0)));
            else
                WR_TRY(ch_move(it, c, MV_LAST, wr_bytes_of(NULL, 0)));
        }
        it->fwd = false;
    }
    WR_TRY(ch_move(it, cur, MV_PREV, wr_bytes_of(NULL, 0)));
    m_largest(it);
    return WR_OK;
}

/* ---------------------------------------------------------------- user view */

static wr_status fail(kv_iter *it, wr_status st)
{
    it->valid = false;
    it->cur = -1;
    return st;
}

static bool above_upper(const kv_iter *it, wr_bytes ukey)
{
    return it->has_upper && wr_bytes_cmp(ukey, wr_bytes_of(it->upper.ptr, it->upper.len)) >= 0;
}

static bool below_lower(const kv_iter *it, wr_bytes ukey)
{
    return it->has_lower && wr_bytes_cmp(ukey, wr_bytes_of(it->lower.ptr, it->lower.len)) < 0;
}

/* Forward from the merge's position to the newest visible version of the next live user key.
 * With @skipping, versions of it->key (a user key already returned or deleted) are passed. */
static wr_status find_next(kv_iter *it, bool skipping)
{
    it->reverse = false;
    while (m_valid(it)) {
        wr_bytes ik = m_key(it), uk = kv_ikey_user(ik);
        if (above_upper(it, uk))
            break;
        if (kv_ikey_seq(ik) <= it->seq &&
            !(skipping && wr_bytes_eq(uk, wr_bytes_of(it->key.ptr, it->key.len)))) {
            it->key.len = 0;
            WR_TRY(wr_buf_append(&it->key, uk.ptr, uk.len));
            if (kv_ikey_type(ik) == KV_TYPE_PUT) {
                wr_bytes v = ch_value(&it->ch[it->cur]);
                it->val.len = 0;
                WR_TRY(wr_buf_append(&it->val, v.ptr, v.len));
                it->valid = true;
                return WR_OK;
            }
            skipping = true; /* deleted: pass its older versions */
        }
        WR_TRY(m_next(it));
    }
    it->valid = false;
    return WR_OK;
}

/* Backward from the merge's position: the previous live user key, its newest visible value.
 * Going back, a key's versions come oldest first: the last one seen before a smaller key
 * decides. Leaves the merge just before that key's versions. */
static wr_status find_prev(kv_iter *it)
{
    bool have = false; /* it->key/val hold a live candidate */
    it->reverse = true;
    while (m_valid(it)) {
        wr_bytes ik = m_key(it), uk = kv_ikey_user(ik);
        if (kv_ikey_seq(ik) <= it->seq) {
            if (have && wr_bytes_cmp(uk, wr_bytes_of(it->key.ptr, it->key.len)) < 0)
                break; /* past the candidate's oldest version: it is the answer */
            if (below_lower(it, uk))
                break;
            if (kv_ikey_type(ik) == KV_TYPE_DEL) {
                have = false;
            } else if (!above_upper(it, uk)) {
                wr_bytes v = ch_value(&it->ch[it->cur]);
                it->key.len = it->val.len = 0;
                WR_TRY(wr_buf_append(&it->key, uk.ptr, uk.len));
                WR_TRY(wr_buf_append(&it->val, v.ptr, v.len));
                have = true;
            }
        }
        WR_TRY(m_prev(it));
    }
    it->valid = have;
    return WR_OK;
}

/* The merge position for @ukey's newest version visible in the view. */
static wr_status seek_user(kv_iter *it, wr_bytes ukey, uint64_t seq)
{
    it->seek.len = 0;
    WR_TRY(wr_buf_reserve(&it->seek, ukey.len + KV_TRAILER));
    it->seek.len = kv_ikey_put(it->seek.ptr, ukey, seq, KV_TYPE_SEEK);
    return m_seek(it, wr_bytes_of(it->seek.ptr, it->seek.len));
}

wr_status kv_iter_seek(kv_iter *it, wr_bytes key)
{
    wr_status st;
    if (below_lower(it, key))
        key = wr_bytes_of(it->lower.ptr, it->lower.len);
    if ((st = seek_user(it, key, it->seq)) != WR_OK || (st = find_next(it, false)) != WR_OK)
        return fail(it, st);
    return WR_OK;
}

wr_status kv_iter_seek_first(kv_iter *it)
{
    wr_status st;
    if (it->has_lower)
        return kv_iter_seek(it, wr_bytes_of(it->lower.ptr, it->lower.len));
    if ((st = m_first(it)) != WR_OK || (st = find_next(it, false)) != WR_OK)
        return fail(it, st);
    return WR_OK;
}

wr_status kv_iter_seek_last(kv_iter *it)
{
    wr_status st;
    if (it->has_upper) {
        /* Every version of the upper bound itself sorts at or after (upper, max seq). */
        st = seek_user(it, wr_bytes_of(it->upper.ptr, it->upper.len), KV_SEQ_MAX);
        if (st == WR_OK)
            st = m_valid(it) ? m_prev(it) : m_last(it);
    } else {
        st = m_last(it);
    }
    if (st != WR_OK || (st = find_prev(it)) != WR_OK)
        return fail(it, st);
    return WR_OK;
}

wr_status kv_iter_next(kv_iter *it)
{
    wr_status st = WR_OK;
    if (!it->valid)
        return wr_err(WR_ERR_INVAL, "kv_iter_next on an iterator that is not positioned");
    if (it->reverse) {
        /* The merge sits before the current key's versions: step onto them (or onto the
         * very first entry when nothing precedes them), then skip them. */
        st = m_valid(it) ? m_next(it) : m_first(it);
    } else {
        st = m_next(it);
    }
    if (st != WR_OK || (st = find_next(it, true)) != WR_OK)
        return fail(it, st);
    return WR_OK;
}

wr_status kv_iter_prev(kv_iter *it)
{
    wr_status st = WR_OK;
    if (!it->valid)
        return wr_err(WR_ERR_INVAL, "kv_iter_prev on an iterator that is not positioned");
    if (!it->reverse) {
        /* The merge sits on the current key's newest visible version: back off every
         * version of it (newer invisible ones included). */
        wr_bytes k = wr_bytes_of(it->key.ptr, it->key.len);
        while (st == WR_OK && m_valid(it) && wr_bytes_cmp(kv_ikey_user(m_key(it)), k) >= 0)
            st = m_prev(it);
    }
    if (st != WR_OK || (st = find_prev(it)) != WR_OK)
        return fail(it, st);
    return WR_OK;
}

bool kv_iter_valid(const kv_iter *it)
{
    return it->valid;
}

wr_bytes kv_iter_key(const kv_iter *it)
{
    return wr_bytes_of(it->key.ptr, it->key.len);
}

wr_bytes kv_iter_value(const kv_iter *it)
{
    return wr_bytes_of(it->val.ptr, it->val.len);
}

/* ---------------------------------------------------------------- open / close */

void kv_iter_close(kv_iter *it)
{
    if (it == NULL)
        return;
    for (size_t i = 0; i < it->nch; i++) {
        child *c = &it->ch[i];
        if (c->kind == CH_MEM) {
            kv_mem_iter_fini(&c->mi);
            continue;
        }
        kv_sst_iter_destroy(c->si);
        if (c->tb)
            kv_table_put(it->db, c->tb);
    }
    wr_free(it->ch);
    kv_mem_unref(it->mem);
    kv_mem_unref(it->imm);
    kv_version_unref(it->v);
    wr_buf_fini(&it->seek);
    wr_buf_fini(&it->key);
    wr_buf_fini(&it->val);
    wr_buf_fini(&it->lower);
    wr_buf_fini(&it->upper);
    wr_free(it);
}

wr_status kv_iter_open(kv_db *db, const kv_iter_opts *o, kv_iter **out)
{
    kv_iter *it;
    kv_view vw;
    size_t n = 0;
    wr_status st = WR_OK;

    *out = NULL;
    if ((it = wr_calloc(1, sizeof(*it))) == NULL)
        return WR_ERR_NOMEM;
    it->db = db;
    it->cur = -1;
    if (o && o->lower.ptr) {
        it->has_lower = true;
        if ((st = wr_buf_append(&it->lower, o->lower.ptr, o->lower.len)) != WR_OK)
            goto err;
    }
    if (o && o->upper.ptr) {
        it->has_upper = true;
        if ((st = wr_buf_append(&it->upper, o->upper.ptr, o->upper.len)) != WR_OK)
            goto err;
    }
    /* The sequence first: the view pinned after it holds every write up to it. */
    it->seq = o && o->snap ? kv_snapshot_seq(o->snap)
                           : atomic_load_explicit(&db->seq, memory_order_acquire);
    kv_view_pin(db, &vw);
    it->mem = vw.mem;
    it->imm = vw.imm;
    it->v = vw.v;

    n = 2 + it->v->cnt[0] + KV_LEVELS;
    if ((it->ch = wr_calloc(n, sizeof(child))) == NULL) {
        st = WR_ERR_NOMEM;
        goto err;
    }
    it->ch[it->nch].kind = CH_MEM;
    kv_mem_iter_init(&it->ch[it->nch++].mi, it->mem);
    if (it->imm) {
        it->ch[it->nch].kind = CH_MEM;
        kv_mem_iter_init(&it->ch[it->nch++].mi, it->imm);
    }
    for (size_t i = 0; i < it->v->cnt[0]; i++) {
        child *c = &it->ch[it->nch++];
        c->kind = CH_SST;
        st = kv_table_get(db, it->v->files[0][i]->number, &c->tb);
        if (st != WR_OK || (st = kv_sst_iter_create(c->tb->t, &c->si)) != WR_OK)
            goto err;
    }
    for (int l = 1; l < KV_LEVELS; l++) {
        child *c;
        if (it->v->cnt[l] == 0)
            continue;
        c = &it->ch[it->nch++];
        c->kind = CH_LEVEL;
        c->files = it->v->files[l];
        c->nfiles = it->v->cnt[l];
    }
    *out = it;
    return WR_OK;
err:
    kv_iter_close(it);
    return st;
}

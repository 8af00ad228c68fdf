/* kv_memtable.c -- the memtable: a lock-free-read skiplist in an arena (kv_mem.h).
 *
 * A node is one arena allocation: its tower of next pointers, then its entry. A node pointer
 * points at the entry, and the link of level i sits i + 1 slots below it (RocksDB's inline
 * skiplist does the same), so a node carries no height or key pointer:
 *
 *     | next[h-1] | ... | next[1] | next[0] | varint ikey_len | ikey | varint val_len | value |
 *                                           ^ kv_mem_node *
 *
 * The head is a node of KV_MEM_MAX_HEIGHT levels with an empty entry that is never read.
 *
 * Invariants (beyond those of kv_mem.h):
 *  (1) a node is fully written -- entry and all its own next pointers -- before the release
 *      store that links it into level 0, and it is linked bottom-up, so a reader that reaches
 *      it at level i through an acquire load also sees its links at levels <= i;
 *  (2) only the writer stores links or height; readers load links with acquire and height
 *      relaxed: a stale height only makes a search start lower, a newer one finds NULL in the
 *      head's fresh levels and descends;
 *  (3) heights are geometric with branching 4 (P(h > k) = 4^-k), capped at KV_MEM_MAX_HEIGHT,
 *      drawn from a per-memtable xorshift64* PRNG that a failed add rewinds.
 *
 * Insertion (writer): find the predecessors at every level, allocate and fill the node, then
 * splice it in level by level from 0 up. Readers never wait and never retry. */
#include <assert.h>
#include <stdalign.h>

#include "kv_mem.h"

typedef _Atomic(kv_mem_node *) kv_link;

struct kv_mem {
    kv_arena arena;           /* owned: every node and the head */
    kv_mem_node *head;        /* borrowed from arena */
    atomic_int height;        /* levels in use, 1..KV_MEM_MAX_HEIGHT */
    atomic_uint_fast64_t cnt; /* entries */
    atomic_uint refs;
    uint64_t rng; /* writer only */
};

#define KV_MEM_RNG_SEED 0x2545f4914f6cdd1dull

/* ---------------------------------------------------------------- nodes */
static inline kv_link *kv_link_at(kv_mem_node *n, int level)
{
    return (kv_link *)(void *)n - 1 - level;
}

static inline kv_mem_node *kv_next(kv_mem_node *n, int level)
{
    return atomic_load_explicit(kv_link_at(n, level), memory_order_acquire);
}

/* Our own encoding, so no bounds: the fast path is the one-byte varint. */
static inline const uint8_t *kv_mem_varint(const uint8_t *p, size_t *v)
{
    uint64_t x;
    size_t k;

    if (p[0] < 0x80) {
        *v = p[0];
        return p + 1;
    }
    k = wr_get_uvarint(p, p + WR_VARINT_MAX, &x);
    assert(k != 0);
    *v = (size_t)x;
    return p + k;
}

static inline wr_bytes kv_node_ikey(const kv_mem_node *n)
{
    size_t len;
    const uint8_t *p = kv_mem_varint((const uint8_t *)n, &len);
    return wr_bytes_of(p, len);
}

static inline wr_bytes kv_node_value(const kv_mem_node *n)
{
    wr_bytes ik = kv_node_ikey(n);
    size_t len;
    const uint8_t *p = kv_mem_varint(ik.ptr + ik.len, &len);
    return wr_bytes_of(p, len);
}

/* kv_ikey_cmp(node's key, ukey + trailer) without building the search key. */
static inline int kv_node_cmp(const kv_mem_node *n, wr_bytes ukey, uint64_t trailer)
{
    wr_bytes ik = kv_node_ikey(n);
    int c = wr_bytes_cmp(kv_ikey_user(ik), ukey);
    uint64_t t;

    if (c != 0)
        return c;
    t = wr_get64(ik.ptr + ik.len - KV_TRAILER);
    return t > trailer ? -1 : t < trailer;
}

static inline int kv_mem_height(const kv_mem *m)
{
    return atomic_load_explicit(&m->height, memory_order_relaxed);
}

/* ---------------------------------------------------------------- searches */
/* The first node >= (ukey, trailer), or NULL. With @prev, prev[i] gets the last node < the
 * key at level i for every level in use. */
static kv_mem_node *kv_mem_find_ge(const kv_mem *m, wr_bytes ukey, uint64_t trailer,
                                   kv_mem_node **prev)
{
    kv_mem_node *x = m->head, *next, *larger = NULL;
    int level = kv_mem_height(m) - 1;

    for (;;) {
        next = kv_next(x, level);
        /* a node found >= key one level up is still >= key here: skip comparing it again */
        if (next != NULL && next != larger && kv_node_cmp(next, ukey, trailer) < 0) {
            x = next;
            continue;
        }
        larger = next;
        if (prev != NULL)
            prev[level] = x;
        if (level == 0)
            return next;
        level--;
    }
}

/* The last node < (ukey, trailer), or the head: the level-0 predecessor of the search. */
static kv_mem_node *kv_mem_find_lt(const kv_mem *m, wr_bytes ukey, uint64_t trailer)
{
    kv_mem_node *prev[KV_MEM_MAX_HEIGHT];
    kv_mem_find_ge(m, ukey, trailer, prev);
    return prev[0];
}

/* The last node, or the head when empty. */
static kv_mem_node *kv_mem_find_last(const kv_mem *m)
{
    kv_mem_node *x = m->head, *next;
    int level = kv_mem_height(m) - 1;

    for (;;) {
        next = kv_next(x, level);
        if (next != NULL) {
            x = next;
            continue;
        }
        if (level == 0)
            return x;
        level--;
    }
}

/* ---------------------------------------------------------------- lifecycle */
wr_status kv_mem_create(size_t block_size, kv_mem **out)
{
    kv_mem *m;
    uint8_t *p;

    *out = NULL;
    if ((m = wr_calloc(1, sizeof(*m))) == NULL)
        return WR_ERR_NOMEM;
    kv_arena_init(&m->arena, block_size ? block_size : KV_MEM_BLOCK_DEFAULT);
    /* the head's entry is one byte (an empty varint) so it never aliases the next node */
    p = kv_arena_alloc(&m->arena, KV_MEM_MAX_HEIGHT * sizeof(kv_link) + 1, alignof(kv_link));
    if (p == NULL) {
        kv_arena_fini(&m->arena);
        wr_free(m);
        return WR_ERR_NOMEM;
    }
    m->head = (kv_mem_node *)(void *)(p + KV_MEM_MAX_HEIGHT * sizeof(kv_link));
    p[KV_MEM_MAX_HEIGHT * sizeof(kv_link)] = 0;
    for (int i = 0; i < KV_MEM_MAX_HEIGHT; i++)
        atomic_init(kv_link_at(m->head, i), NULL);
    atomic_init(&m->height, 1);
    atomic_init(&m->cnt, 0);
    atomic_init(&m->refs, 1);
    m->rng = KV_MEM_RNG_SEED;
    *out = m;
    return WR_OK;
}

kv_mem *kv_mem_ref(kv_mem *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void kv_mem_unref(kv_mem *m)
{
    if (m == NULL)
        return;
    /* acq_rel: every use through other references happens before the free */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    kv_arena_fini(&m->arena);
    wr_free(m);
}

/* ---------------------------------------------------------------- writer */
static int kv_mem_random_height(uint64_t *s)
{
    uint64_t r;
    int h = 1;

    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    r = (*s * 2685821657736338717ull) >> 32; /* the high half is the good half */
    while (h < KV_MEM_MAX_HEIGHT && (r & 3) == 0) {
        h++;
        r >>= 2;
    }
    return h;
}

wr_status kv_mem_add(kv_mem *m, uint64_t seq, kv_type t, wr_bytes ukey, wr_bytes val)
{
    kv_mem_node *prev[KV_MEM_MAX_HEIGHT], *x;
    uint64_t trailer, rng = m->rng;
    size_t ikey_len, entry_len, tower;
    int h, cur;
    uint8_t *p;

    if (seq > KV_SEQ_MAX)
        return wr_err(WR_ERR_INVAL, "memtable: sequence number %llu over the maximum",
                      (unsigned long long)seq);
    if (t != KV_TYPE_PUT && t != KV_TYPE_DEL)
        return wr_err(WR_ERR_INVAL, "memtable: unknown entry type %d", (int)t);
    if (t == KV_TYPE_DEL)
        val = wr_bytes_of(NULL, 0);
    if (ukey.len > KV_KEY_MAX || val.len > KV_VALUE_MAX)
        return wr_err(WR_ERR_TOOBIG, "memtable: key %zu or value %zu bytes over (%u, %u)", ukey.len,
                      val.len, KV_KEY_MAX, KV_VALUE_MAX);
    trailer = kv_trailer(seq, t);
    x = kv_mem_find_ge(m, ukey, trailer, prev);
    if (x != NULL && kv_node_cmp(x, ukey, trailer) == 0)
        return wr_err(WR_ERR_EXISTS, "memtable: key of %zu bytes at seq %llu added twice", ukey.len,
                      (unsigned long long)seq);

    h = kv_mem_random_height(&rng);
    ikey_len = ukey.len + KV_TRAILER;
    entry_len = wr_uvarint_len(ikey_len) + ikey_len + wr_uvarint_len(val.len) + val.len;
    tower = (size_t)h * sizeof(kv_link);
    if ((p = kv_arena_alloc(&m->arena, tower + entry_len, alignof(kv_link))) == NULL)
        return wr_err(WR_ERR_NOMEM, "memtable: out of memory adding an entry of %zu bytes",
                      entry_len); /* m->rng not advanced: the list is as it was */
    m->rng = rng;
    x = (kv_mem_node *)(void *)(p + tower);
    p += tower;
    p += wr_put_uvarint(p, ikey_len);
    p += kv_ikey_put(p, ukey, seq, t);
    p += wr_put_uvarint(p, val.len);
    if (val.len)
        memcpy(p, val.ptr, val.len);

    cur = kv_mem_height(m);
    if (h > cur) {
        for (int i = cur; i < h; i++)
            prev[i] = m->head;
        /* relaxed: see invariant (2) */
        atomic_store_explicit(&m->height, h, memory_order_relaxed);
    }
    for (int i = 0; i < h; i++) {
        /* x is not reachable yet: its own links need no ordering beyond the release below */
        atomic_store_explicit(kv_link_at(x, i),
                              atomic_load_explicit(kv_link_at(prev[i], i), memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(kv_link_at(prev[i], i), x, memory_order_release);
    }
    atomic_store_explicit(&m->cnt, atomic_load_explicit(&m->cnt, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return WR_OK;
}

/* ---------------------------------------------------------------- readers */
kv_mem_found kv_mem_get(const kv_mem *m, wr_bytes ukey, uint64_t snap_seq, wr_bytes *val_out,
                        uint64_t *seq_out)
{
    kv_mem_node *x;
    wr_bytes ik;

    *val_out = wr_bytes_of(NULL, 0);
    if (seq_out != NULL)
        *seq_out = 0;
    if (snap_seq > KV_SEQ_MAX)
        snap_seq = KV_SEQ_MAX;
    /* the newest version <= snap_seq is the first entry >= (ukey, snap_seq, SEEK) */
    x = kv_mem_find_ge(m, ukey, kv_trailer(snap_seq, KV_TYPE_SEEK), NULL);
    if (x == NULL)
        return KV_MEM_MISS;
    ik = kv_node_ikey(x);
    if (!wr_bytes_eq(kv_ikey_user(ik), ukey))
        return KV_MEM_MISS;
    if (seq_out != NULL)
        *seq_out = kv_ikey_seq(ik);
    if (kv_ikey_type(ik) == KV_TYPE_DEL)
        return KV_MEM_DEL;
    *val_out = kv_node_value(x);
    return KV_MEM_PUT;
}

size_t kv_mem_usage(const kv_mem *m)
{
    return sizeof(*m) + kv_arena_usage(&m->arena);
}

uint64_t kv_mem_count(const kv_mem *m)
{
    return (uint64_t)atomic_load_explicit(&m->cnt, memory_order_relaxed);
}

wr_status kv_mem_check(const kv_mem *m)
{
    int height = kv_mem_height(m);
    uint64_t n = 0;

    if (height < 1 || height > KV_MEM_MAX_HEIGHT)
        return wr_err(WR_ERR_INTERNAL, "memtable: height %d out of range", height);
    for (int i = height; i < KV_MEM_MAX_HEIGHT; i++)
        if (kv_next(m->head, i) != NULL)
            return wr_err(WR_ERR_INTERNAL, "memtable: level %d above the height is linked", i);
    for (int i = 0; i < height; i++) {
        kv_mem_node *x = kv_next(m->head, i), *below = m->head, *last = NULL;

        for (; x != NULL; last = x, x = kv_next(x, i)) {
            if (last != NULL && kv_ikey_cmp(kv_node_ikey(last), kv_node_ikey(x)) >= 0)
                return wr_err(WR_ERR_INTERNAL, "memtable: level %d out of order", i);
            if (kv_node_ikey(x).len < KV_TRAILER)
                return wr_err(WR_ERR_INTERNAL, "memtable: internal key too short");
            if (i == 0) {
                n++;
                continue;
            }
            /* x must appear on the level below, after the previous node of this level */
            while ((below = kv_next(below, i - 1)) != NULL && below != x)
                ;
            if (below == NULL)
                return wr_err(WR_ERR_INTERNAL, "memtable: a node of level %d is missing below", i);
        }
    }
    if (n != kv_mem_count(m))
        return wr_err(WR_ERR_INTERNAL, "memtable: %llu entries linked, count says %llu",
                      (unsigned long long)n, (unsigned long long)kv_mem_count(m));
    return WR_OK;
}

/* ---------------------------------------------------------------- iterator */
void kv_mem_iter_init(kv_mem_iter *it, kv_mem *m)
{
    it->m = kv_mem_ref(m);
    it->node = NULL;
}

void kv_mem_iter_fini(kv_mem_iter *it)
{
    kv_mem_unref(it->m);
    it->m = NULL;
    it->node = NULL;
}

bool kv_mem_iter_valid(const kv_mem_iter *it)
{
    return it->node != NULL;
}

void kv_mem_iter_seek(kv_mem_iter *it, wr_bytes ikey)
{
    assert(ikey.len >= KV_TRAILER);
    it->node =
        kv_mem_find_ge(it->m, kv_ikey_user(ikey), wr_get64(ikey.ptr + ikey.len - KV_TRAILER), NULL);
}

void kv_mem_iter_seek_first(kv_mem_iter *it)
{
    it->node = kv_next(it->m->head, 0);
}

void kv_mem_iter_seek_last(kv_mem_iter *it)
{
    kv_mem_node *x = kv_mem_find_last(it->m);
    it->node = x == it->m->head ? NULL : x;
}

void kv_mem_iter_next(kv_mem_iter *it)
{
    assert(it->node != NULL);
    it->node = kv_next(it->node, 0);
}

void kv_mem_iter_prev(kv_mem_iter *it)
{
    wr_bytes ik;
    kv_mem_node *x;

    assert(it->node != NULL);
    ik = kv_node_ikey(it->node);
    x = kv_mem_find_lt(it->m, kv_ikey_user(ik), wr_get64(ik.ptr + ik.len - KV_TRAILER));
    it->node = x == it->m->head ? NULL : x;
}

wr_bytes kv_mem_iter_key(const kv_mem_iter *it)
{
    assert(it->node != NULL);
    return kv_node_ikey(it->node);
}

wr_bytes kv_mem_iter_value(const kv_mem_iter *it)
{
    assert(it->node != NULL);
    return kv_node_value(it->node);
}

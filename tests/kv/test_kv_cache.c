/* tests/kv/test_kv_cache.c -- the block cache on its own: unheld bytes never exceed the capacity,
 * held handles survive eviction pressure, LRU order, erase_file, oversized and replaced entries,
 * allocation failures leave it intact, 4 threads hammering it with values derived from the key;
 * then SST reads through it: gets, iterators and multi-gets agree with a reference and with
 * kv_sst_get(), with and without a cache, through io_uring and its fallback (WEIR_NO_URING),
 * with batches over the ring's depth, concurrently, and with a damaged data block. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_cache.h"
#include "kv_sst.h"

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- values from keys */
static size_t val_len(uint64_t file, uint64_t off)
{
    return 1 + (size_t)((file * 31 + off * 7) % 300);
}

static uint8_t val_byte(uint64_t file, uint64_t off, size_t i)
{
    return (uint8_t)(file * 131 + off * 17 + i * 7);
}

static void *val_make(uint64_t file, uint64_t off, size_t *len)
{
    uint8_t *p;
    *len = val_len(file, off);
    p = wr_malloc(*len);
    assert_non_null(p);
    for (size_t i = 0; i < *len; i++)
        p[i] = val_byte(file, off, i);
    return p;
}

static bool val_ok(const kv_cache_handle *h, uint64_t file, uint64_t off)
{
    wr_bytes v = kv_cache_value(h);
    if (v.len != val_len(file, off))
        return false;
    for (size_t i = 0; i < v.len; i++)
        if (v.ptr[i] != val_byte(file, off, i))
            return false;
    return true;
}

/* Insert (file, off) with its derived value and @charge; returns the pinned handle. */
static kv_cache_handle *put(kv_cache *c, uint64_t file, uint64_t off, size_t charge)
{
    kv_cache_handle *h;
    size_t len;
    void *p = val_make(file, off, &len);
    assert_int_equal(kv_cache_insert(c, file, off, p, len, charge, &h), WR_OK);
    assert_non_null(h);
    return h;
}

static uint64_t usage(const kv_cache *c)
{
    uint64_t u;
    kv_cache_stats(c, NULL, NULL, &u);
    return u;
}

/* The @cnt first offsets (file @file) that land in shard @shard, from @start. */
static void same_shard(const kv_cache *c, uint64_t file, unsigned shard, uint64_t *offs, size_t cnt)
{
    for (uint64_t off = 0, n = 0; n < cnt; off += 4096)
        if (kv_cache_shard_of(c, file, off) == shard)
            offs[n++] = off;
}

/* ---------------------------------------------------------------- the cache alone */
static void test_create_args_and_null_destroy(void **state)
{
    kv_cache *c;
    (void)state;
    assert_int_equal(kv_cache_create(1000, KV_CACHE_SHARD_BITSMAX + 1, &c), WR_ERR_INVAL);
    assert_null(c);
    assert_int_equal(kv_cache_create(1000, 0, &c), WR_OK);
    assert_int_equal(kv_cache_shard_cnt(c), 16);
    assert_int_equal(kv_cache_capacity(c), 1000);
    kv_cache_destroy(c);
    assert_int_equal(kv_cache_create(1000, 1, &c), WR_OK);
    assert_int_equal(kv_cache_shard_cnt(c), 2);
    kv_cache_release(c, NULL);
    kv_cache_destroy(c);
    kv_cache_destroy(NULL);
}

static void test_unheld_bytes_never_exceed_capacity(void **state)
{
    const size_t cap = 64 << 10;
    kv_cache *c;
    uint64_t s = 1, hits, misses;
    unsigned lookups = 0;
    (void)state;

    assert_int_equal(kv_cache_create(cap, 2, &c), WR_OK);
    for (unsigned n = 0; n < 20000; n++) {
        uint64_t file = rng(&s) % 4, off = (rng(&s) % 2000) * 4096;
        kv_cache_handle *h = kv_cache_lookup(c, file, off);
        lookups++;
        if (h == NULL)
            h = put(c, file, off, 100 + (size_t)(rng(&s) % 3000));
        assert_true(val_ok(h, file, off));
        kv_cache_release(c, h);
        assert_true(usage(c) <= cap); /* nothing held: every cached byte is unheld */
    }
    assert_true(usage(c) > cap / 2); /* and it does fill up */
    kv_cache_stats(c, &hits, &misses, NULL);
    assert_int_equal(hits + misses, lookups);
    assert_true(hits > 0 && misses > 0);
    kv_cache_destroy(c);
}

static void test_held_handles_survive_eviction_pressure(void **state)
{
    kv_cache *c;
    kv_cache_handle *held[8];
    uint64_t held_in[2] = {0, 0}, bound = 0;
    (void)state;

    assert_int_equal(kv_cache_create(8000, 1, &c), WR_OK); /* 4000 per shard */
    for (uint64_t i = 0; i < 8; i++) {
        held[i] = put(c, 1, i * 4096, 900); /* 7200 held: most of the capacity */
        held_in[kv_cache_shard_of(c, 1, i * 4096)] += 900;
    }
    for (int k = 0; k < 2; k++) /* a shard holds its held entries, or at most its capacity */
        bound += held_in[k] > 4000 ? held_in[k] : 4000;
    for (uint64_t i = 0; i < 2000; i++) /* pressure */
        kv_cache_release(c, put(c, 2, i * 4096, 700));
    for (uint64_t i = 0; i < 8; i++) {
        kv_cache_handle *h;
        assert_true(val_ok(held[i], 1, i * 4096));
        /* still cached, since held ones are never evicted */
        assert_non_null(h = kv_cache_lookup(c, 1, i * 4096));
        assert_ptr_equal(h, held[i]);
        kv_cache_release(c, h);
    }
    /* the unheld part stays within what the held part left */
    assert_true(usage(c) <= bound);
    for (int i = 0; i < 8; i++)
        kv_cache_release(c, held[i]);
    assert_true(usage(c) <= 8000);
    kv_cache_destroy(c);
}

static void test_lru_order_recently_used_survives(void **state)
{
    kv_cache *c;
    uint64_t off[6];
    kv_cache_handle *h;
    (void)state;

    assert_int_equal(kv_cache_create(4 * 2 * 100, 1, &c), WR_OK); /* 4 entries of 100 per shard */
    same_shard(c, 7, 0, off, 6);
    for (int i = 0; i < 4; i++)
        kv_cache_release(c, put(c, 7, off[i], 100));
    assert_int_equal(usage(c), 400);
    /* touch 0: 1 becomes the least recently used */
    assert_non_null(h = kv_cache_lookup(c, 7, off[0]));
    kv_cache_release(c, h);
    kv_cache_release(c, put(c, 7, off[4], 100));
    assert_null(kv_cache_lookup(c, 7, off[1]));
    assert_non_null(h = kv_cache_lookup(c, 7, off[0]));
    kv_cache_release(c, h);
    /* now 2 is the oldest, then 3, 4, 0 */
    kv_cache_release(c, put(c, 7, off[5], 200));
    assert_null(kv_cache_lookup(c, 7, off[2]));
    assert_null(kv_cache_lookup(c, 7, off[3]));
    for (int k = 0; k < 3; k++) { /* 0, 4, 5 stay */
        const int keep[3] = {0, 4, 5};
        assert_non_null(h = kv_cache_lookup(c, 7, off[keep[k]]));
        assert_true(val_ok(h, 7, off[keep[k]]));
        kv_cache_release(c, h);
    }
    assert_int_equal(usage(c), 400);
    kv_cache_destroy(c);
}

static void test_erase_file_drops_its_entries_held_ones_on_release(void **state)
{
    kv_cache *c;
    kv_cache_handle *held, *h;
    uint64_t u;
    (void)state;

    assert_int_equal(kv_cache_create(1 << 20, 0, &c), WR_OK);
    for (uint64_t i = 0; i < 500; i++) {
        kv_cache_release(c, put(c, 1, i * 4096, 100));
        kv_cache_release(c, put(c, 2, i * 4096, 100));
    }
    assert_int_equal(usage(c), 100000);
    held = kv_cache_lookup(c, 1, 4096 * 10);
    assert_non_null(held);
    kv_cache_erase_file(c, 1);
    assert_int_equal(usage(c), 50000);
    for (uint64_t i = 0; i < 500; i++) {
        assert_null(kv_cache_lookup(c, 1, i * 4096));
        assert_non_null(h = kv_cache_lookup(c, 2, i * 4096));
        assert_true(val_ok(h, 2, i * 4096));
        kv_cache_release(c, h);
    }
    assert_true(val_ok(held, 1, 4096 * 10)); /* detached but alive */
    kv_cache_release(c, held);               /* freed here (ASan checks) */
    kv_cache_erase_file(c, 3);               /* no such file */
    kv_cache_stats(c, NULL, NULL, &u);
    assert_int_equal(u, 50000);
    kv_cache_destroy(c);
}

static void test_oversized_entry_returned_not_kept(void **state)
{
    kv_cache *c, *z;
    kv_cache_handle *h, *h2;
    (void)state;

    assert_int_equal(kv_cache_create(1000, 1, &c), WR_OK); /* 500 per shard */
    kv_cache_release(c, put(c, 1, 0, 400));
    h = put(c, 1, 4096, 501);
    assert_true(val_ok(h, 1, 4096));
    assert_null(kv_cache_lookup(c, 1, 4096));
    assert_int_equal(usage(c), 400);
    assert_non_null(h2 = kv_cache_lookup(c, 1, 0)); /* and it evicted nothing */
    kv_cache_release(c, h2);
    kv_cache_release(c, h);
    /* a zero-capacity cache keeps nothing */
    assert_int_equal(kv_cache_create(0, 0, &z), WR_OK);
    h = put(z, 1, 0, 1);
    assert_true(val_ok(h, 1, 0));
    assert_null(kv_cache_lookup(z, 1, 0));
    kv_cache_release(z, h);
    assert_int_equal(usage(z), 0);
    kv_cache_destroy(z);
    kv_cache_destroy(c);
}

static void test_insert_of_present_key_replaces_held_old_stays_valid(void **state)
{
    kv_cache *c;
    kv_cache_handle *old, *nw, *h;
    uint8_t *p = wr_malloc(3);
    (void)state;

    assert_non_null(p);
    memcpy(p, "new", 3);
    assert_int_equal(kv_cache_create(1 << 16, 0, &c), WR_OK);
    old = put(c, 5, 0, 100);
    assert_int_equal(kv_cache_insert(c, 5, 0, p, 3, 50, &nw), WR_OK);
    assert_int_equal(usage(c), 50);
    assert_true(val_ok(old, 5, 0));
    assert_non_null(h = kv_cache_lookup(c, 5, 0));
    assert_ptr_equal(h, nw);
    assert_true(wr_bytes_eq(kv_cache_value(h), wr_bytes_str("new")));
    kv_cache_release(c, h);
    kv_cache_release(c, old);
    kv_cache_release(c, nw);
    assert_int_equal(usage(c), 50);
    kv_cache_destroy(c);
}

static void test_alloc_failures_return_nomem_and_leave_cache_intact(void **state)
{
    kv_cache *c = NULL;
    kv_cache_handle *h;
    uint64_t nth, hits, misses, u;
    size_t len;
    void *p;
    (void)state;

    /* create fails cleanly at every allocation it makes (ASan: no leaks) */
    for (nth = 1;; nth++) {
        wr_status st;
        wr_alloc_fail_at(nth, false);
        st = kv_cache_create(1 << 22, 3, &c);
        wr_alloc_fail_at(0, false);
        if (st == WR_OK)
            break;
        assert_int_equal(st, WR_ERR_NOMEM);
        assert_null(c);
    }
    assert_true(nth > 2);
    for (uint64_t i = 0; i < 100; i++)
        kv_cache_release(c, put(c, 1, i * 4096, 1000));
    kv_cache_stats(c, &hits, &misses, &u);

    /* the entry allocation fails: NOMEM, data still the caller's, nothing changed */
    p = val_make(1, 999 * 4096, &len);
    wr_alloc_fail_at(1, false);
    assert_int_equal(kv_cache_insert(c, 1, 999 * 4096, p, len, 1000, &h), WR_ERR_NOMEM);
    wr_alloc_fail_at(0, false);
    assert_null(h);
    wr_free(p);
    assert_int_equal(usage(c), u);
    assert_null(kv_cache_lookup(c, 1, 999 * 4096));

    /* growing the hash table fails: the insert still succeeds (longer chains) */
    for (uint64_t i = 100; i < 1000; i++) {
        p = val_make(1, i * 4096, &len);
        wr_alloc_fail_at(2, true); /* the entry gets memory, a resize would not */
        assert_int_equal(kv_cache_insert(c, 1, i * 4096, p, len, 1000, &h), WR_OK);
        wr_alloc_fail_at(0, false);
        kv_cache_release(c, h);
    }
    for (uint64_t i = 0; i < 1000; i++) {
        assert_non_null(h = kv_cache_lookup(c, 1, i * 4096));
        assert_true(val_ok(h, 1, i * 4096));
        kv_cache_release(c, h);
    }
    assert_int_equal(usage(c), 1000 * 1000);
    kv_cache_destroy(c);
}

/* ---------------------------------------------------------------- 4 threads */
typedef struct hammer_job {
    kv_cache *c;
    uint64_t seed;
    unsigned bad, inserts, lookups;
} hammer_job;

static void *hammer(void *arg)
{
    hammer_job *j = arg;
    kv_cache_handle *held[4] = {NULL};
    uint64_t hk[4][2];

    for (unsigned n = 0; n < 200000; n++) {
        uint64_t file = rng(&j->seed) % 4, off = (rng(&j->seed) % 512) * 4096;
        unsigned slot = (unsigned)(rng(&j->seed) % 4);
        kv_cache_handle *h = kv_cache_lookup(j->c, file, off);
        j->lookups++;
        if (h == NULL) {
            size_t len;
            void *p = val_make(file, off, &len);
            if (kv_cache_insert(j->c, file, off, p, len, len + KV_CACHE_OVERHEAD, &h) != WR_OK) {
                wr_free(p);
                j->bad++;
                continue;
            }
            j->inserts++;
        }
        if (!val_ok(h, file, off))
            j->bad++;
        /* keep a few handles across iterations, releasing them later */
        if (held[slot] != NULL) {
            if (!val_ok(held[slot], hk[slot][0], hk[slot][1]))
                j->bad++;
            kv_cache_release(j->c, held[slot]);
        }
        held[slot] = h;
        hk[slot][0] = file;
        hk[slot][1] = off;
        if (n % 5000 == 0 && file == 3)
            kv_cache_erase_file(j->c, 3);
    }
    for (int i = 0; i < 4; i++)
        kv_cache_release(j->c, held[i]);
    return NULL;
}

static void test_four_threads_hammer_small_cache(void **state)
{
    kv_cache *c;
    pthread_t th[4];
    hammer_job jobs[4];
    uint64_t hits, misses, u, lookups = 0;
    (void)state;

    assert_int_equal(kv_cache_create(32 << 10, 2, &c), WR_OK);
    for (int i = 0; i < 4; i++) {
        jobs[i] = (hammer_job){c, (uint64_t)i * 977 + 1, 0, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].bad, 0);
        lookups += jobs[i].lookups;
        assert_true(jobs[i].inserts > 0);
    }
    kv_cache_stats(c, &hits, &misses, &u);
    assert_int_equal(hits + misses, lookups);
    assert_true(hits > 0);
    assert_true(u <= 32 << 10); /* nothing held any more */
    kv_cache_destroy(c);
}

/* ---------------------------------------------------------------- SST reads through the cache */
#define KVT_NAME "cache"
#include "kvt_util.h"

/* User key u (even u present, odd absent) has 1 + u % 3 versions, seqs 30/20/10 + u % 5. */
#define NUSER 20000u

static size_t ukey_of(char *dst, uint32_t u)
{
    return (size_t)sprintf(dst, "key%07u", u);
}

static uint32_t nver(uint32_t u)
{
    return 1 + u % 3;
}

static uint64_t ver_seq(uint32_t u, uint32_t j)
{
    return 10 * (3 - j) + u % 5;
}

static bool ver_del(uint32_t u, uint32_t j)
{
    return (u * 7 + j) % 11 == 0;
}

static size_t ver_val(char *dst, uint32_t u, uint32_t j)
{
    size_t n = (size_t)(u * 13 + j) % 120, k = 0;
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "v%u@%u;", u, j);
    for (; k < n; k++)
        dst[k] = pat[k % (size_t)pl];
    return n;
}

/* The reference: -1 absent, 0 deleted, 1 put (value in @val). */
static int ref_get(uint32_t u, uint64_t snap, char *val, size_t *vlen)
{
    if (u % 2 || u / 2 >= NUSER)
        return -1;
    for (uint32_t j = 0; j < nver(u); j++)
        if (ver_seq(u, j) <= snap) {
            if (ver_del(u, j))
                return 0;
            *vlen = ver_val(val, u, j);
            return 1;
        }
    return -1;
}

static void build(const char *path, kv_compression comp)
{
    kv_sst_builder *b;
    kv_sst_opts o;
    char uk[32], v[128];
    uint8_t ik[64];

    kv_sst_opts_init(&o);
    o.block_size = 1024; /* many blocks */
    o.compression = comp;
    assert_int_equal(kv_sst_builder_open(path, &o, &b), WR_OK);
    for (uint32_t u = 0; u < 2 * NUSER; u += 2)
        for (uint32_t j = 0; j < nver(u); j++) {
            size_t kl = ukey_of(uk, u), vl = ver_del(u, j) ? 0 : ver_val(v, u, j);
            size_t il = kv_ikey_put(ik, wr_bytes_of(uk, kl), ver_seq(u, j),
                                    ver_del(u, j) ? KV_TYPE_DEL : KV_TYPE_PUT);
            assert_int_equal(kv_sst_builder_add(b, wr_bytes_of(ik, il), wr_bytes_of(v, vl)), WR_OK);
        }
    assert_int_equal(kv_sst_builder_finish(b, NULL, NULL), WR_OK);
}

static uint64_t rand_snap(uint64_t *s)
{
    static const uint64_t snaps[] = {KV_SEQ_MAX, 0, 5, 12, 15, 22, 25, 33, 35};
    return snaps[rng(s) % (sizeof snaps / sizeof snaps[0])];
}

/* One batch of multi-get against the reference and against kv_sst_get. Returns mismatches. */
#define MAXB 3000
typedef struct batch {
    char keys[MAXB][16];
    wr_bytes uk[MAXB];
    uint32_t u[MAXB];
    wr_buf vals[MAXB];
    kv_found found[MAXB];
    wr_status st[MAXB];
} batch;

static unsigned check_batch(const kv_sst *t, batch *b, size_t n, uint64_t *s)
{
    uint64_t snap = rand_snap(s);
    unsigned bad = 0;
    wr_buf gv = {0};
    char rv[128];

    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(rng(s) % (2 * NUSER + 200)); /* odd and past the end: absent */
        if (i > 0 && rng(s) % 8 == 0)
            u = b->u[rng(s) % i]; /* duplicates */
        b->u[i] = u;
        b->uk[i] = wr_bytes_of(b->keys[i], ukey_of(b->keys[i], u));
    }
    if (kv_sst_multi_get(t, b->uk, n, snap, b->vals, b->found, b->st) != WR_OK)
        bad++;
    for (size_t i = 0; i < n; i++) {
        size_t rl = 0;
        int want = ref_get(b->u[i], snap, rv, &rl);
        kv_found gf;
        if (b->st[i] != WR_OK || kv_sst_get(t, b->uk[i], snap, &gv, &gf) != WR_OK ||
            gf != b->found[i]) {
            bad++;
            continue;
        }
        if (b->found[i] != (want < 0 ? KV_FOUND_NONE : want ? KV_FOUND_PUT : KV_FOUND_DEL))
            bad++;
        else if (want == 1 &&
                 (!wr_bytes_eq(wr_bytes_of(b->vals[i].ptr, b->vals[i].len), wr_bytes_of(rv, rl)) ||
                  !wr_bytes_eq(wr_bytes_of(gv.ptr, gv.len), wr_bytes_of(rv, rl))))
            bad++;
    }
    wr_buf_fini(&gv);
    return bad;
}

static unsigned check_iter(const kv_sst *t)
{
    kv_sst_iter *it;
    unsigned bad = 0;
    uint32_t u = 0, j = 0, fwd = 0, back = 0;
    char uk[32], v[128];
    uint8_t ik[64];
    wr_status st;

    if (kv_sst_iter_create(t, &it) != WR_OK)
        return 1;
    for (st = kv_sst_iter_first(it); st == WR_OK; st = kv_sst_iter_next(it)) {
        size_t kl = ukey_of(uk, u), vl = ver_del(u, j) ? 0 : ver_val(v, u, j);
        size_t il = kv_ikey_put(ik, wr_bytes_of(uk, kl), ver_seq(u, j),
                                ver_del(u, j) ? KV_TYPE_DEL : KV_TYPE_PUT);
        if (!wr_bytes_eq(kv_sst_iter_key(it), wr_bytes_of(ik, il)) ||
            !wr_bytes_eq(kv_sst_iter_value(it), wr_bytes_of(v, vl)))
            bad++;
        fwd++;
        if (++j == nver(u)) {
            j = 0;
            u += 2;
        }
    }
    if (st != WR_EOF || u != 2 * NUSER)
        bad++;
    /* and backwards from the end, through blocks pinned one after another */
    for (st = kv_sst_iter_last(it); st == WR_OK; st = kv_sst_iter_prev(it))
        back++;
    if (st != WR_EOF || back != fwd)
        bad++;
    kv_sst_iter_destroy(it);
    return bad;
}

typedef struct mode_job {
    const char *path;
    size_t cache_bytes; /* SIZE_MAX: no cache */
    bool no_uring;
    bool uring_used; /* OUT */
    unsigned bad;
    uint64_t hits;
} mode_job;

/* Runs in its own thread, so its thread ring is made under the job's WEIR_NO_URING. */
static void *mode_run(void *arg)
{
    mode_job *j = arg;
    kv_sst *t;
    kv_cache *c = NULL;
    batch *b = calloc(1, sizeof(*b));
    uint64_t s = 17;
    wr_ring *r = wr_ring_thread();

    j->uring_used = r != NULL && wr_ring_is_uring(r);
    if (b == NULL || kv_sst_open(j->path, &t) != WR_OK) {
        j->bad++;
        free(b);
        return NULL;
    }
    if (j->cache_bytes != SIZE_MAX) {
        if (kv_cache_create(j->cache_bytes, 0, &c) != WR_OK) {
            j->bad++;
            kv_sst_close(t);
            free(b);
            return NULL;
        }
        kv_sst_set_cache(t, c, 42);
    }
    for (int round = 0; round < 3; round++) { /* later rounds find blocks cached */
        j->bad += check_batch(t, b, 1, &s);
        j->bad += check_batch(t, b, 50, &s);
        j->bad += check_batch(t, b, 700, &s);
        j->bad += check_batch(t, b, MAXB, &s); /* ~1000 distinct blocks: over the ring's 256 */
        j->bad += check_iter(t);
    }
    j->bad += check_batch(t, b, 0, &s);
    if (c != NULL) {
        uint64_t m, u;
        kv_cache_stats(c, &j->hits, &m, &u);
        if (u > j->cache_bytes)
            j->bad++;
    }
    for (size_t i = 0; i < MAXB; i++)
        wr_buf_fini(&b->vals[i]);
    kv_sst_close(t);
    kv_cache_destroy(c);
    free(b);
    return NULL;
}

static void run_mode(mode_job *j)
{
    pthread_t th;
    if (j->no_uring)
        setenv("WEIR_NO_URING", "1", 1);
    else
        unsetenv("WEIR_NO_URING");
    assert_int_equal(pthread_create(&th, NULL, mode_run, j), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    unsetenv("WEIR_NO_URING");
    assert_int_equal(j->bad, 0);
    if (j->no_uring)
        assert_false(j->uring_used);
    else if (wr_uring_supported())
        assert_true(j->uring_used);
}

static void multi_get_modes(kv_compression comp)
{
    const char *path = tpath(comp == KV_COMP_ZSTD ? "z.sst" : "r.sst");
    const size_t caches[] = {SIZE_MAX, 64u << 20, 48u << 10};

    build(path, comp);
    for (size_t k = 0; k < sizeof caches / sizeof caches[0]; k++)
        for (int nu = 0; nu < 2; nu++) {
            mode_job j = {path, caches[k], nu == 1, false, 0, 0};
            run_mode(&j);
            if (caches[k] == (64u << 20))
                assert_true(j.hits > 1000);
        }
}

static void test_multi_get_matches_get_raw(void **state)
{
    (void)state;
    multi_get_modes(KV_COMP_NONE);
}

static void test_multi_get_matches_get_zstd(void **state)
{
    (void)state;
    multi_get_modes(KV_COMP_ZSTD);
}

typedef struct conc_job {
    const kv_sst *t;
    uint64_t seed;
    unsigned bad;
} conc_job;

static void *conc_run(void *arg)
{
    conc_job *j = arg;
    batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        j->bad++;
        return NULL;
    }
    for (int n = 0; n < 20; n++) {
        j->bad += check_batch(j->t, b, 1 + rng(&j->seed) % 400, &j->seed);
        if (n % 5 == 0)
            j->bad += check_iter(j->t);
    }
    for (size_t i = 0; i < MAXB; i++)
        wr_buf_fini(&b->vals[i]);
    free(b);
    return NULL;
}

static void test_concurrent_readers_share_a_small_cache(void **state)
{
    kv_sst *t;
    kv_cache *c;
    pthread_t th[4];
    conc_job jobs[4];
    uint64_t hits, misses, u;
    (void)state;

    build(tpath("c.sst"), KV_COMP_ZSTD);
    assert_int_equal(kv_sst_open(tpath("c.sst"), &t), WR_OK);
    assert_int_equal(kv_cache_create(96u << 10, 0, &c), WR_OK);
    kv_sst_set_cache(t, c, 1);
    for (int i = 0; i < 4; i++) {
        jobs[i] = (conc_job){t, (uint64_t)i + 5, 0};
        assert_int_equal(pthread_create(&th[i], NULL, conc_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].bad, 0);
    }
    kv_cache_stats(c, &hits, &misses, &u);
    assert_true(hits > 0 && misses > 0);
    assert_true(u <= 96u << 10);
    kv_sst_close(t);
    kv_cache_erase_file(c, 1);
    kv_cache_stats(c, NULL, NULL, &u);
    assert_int_equal(u, 0);
    kv_cache_destroy(c);
}

/* The first data blocks' handles, from the footer and the index (docs/formats/sst.md). */
static size_t data_blocks(const wr_buf *f, kv_handle *out, size_t max)
{
    const uint8_t *ft = f->ptr + f->len - KV_SST_FOOTER;
    kv_handle ih = {wr_get64(ft), wr_get64(ft + 8)};
    kv_block blk;
    kv_block_iter it;
    size_t n = 0;
    wr_status st;

    assert_int_equal(kv_block_parse(f->ptr + ih.off, ih.size, &blk), WR_OK);
    kv_block_iter_init(&it, &blk);
    for (st = kv_block_iter_first(&it); st == WR_OK && n < max; st = kv_block_iter_next(&it)) {
        uint64_t off, size;
        size_t a = wr_get_uvarint(it.val.ptr, it.val.ptr + it.val.len, &off);
        assert_true(a > 0);
        assert_true(wr_get_uvarint(it.val.ptr + a, it.val.ptr + it.val.len, &size) > 0);
        out[n++] = (kv_handle){off, size};
    }
    kv_block_iter_fini(&it);
    return n;
}

static void damaged_block_fails_only_its_keys(bool with_cache, bool no_uring)
{
    const char *good = tpath("g.sst"), *bad = tpath("b.sst");
    wr_buf f = {0};
    kv_handle h[8];
    kv_sst *t;
    kv_cache *c = NULL;
    wr_bytes uk[400];
    char keys[400][16], want_off[64];
    wr_buf vals[400] = {{0}};
    kv_found found[400];
    wr_status st[400], ret;
    unsigned failed = 0;
    FILE *fp;

    if (no_uring)
        setenv("WEIR_NO_URING", "1", 1);
    build(good, KV_COMP_NONE);
    assert_int_equal(wr_file_read(good, &f), WR_OK);
    assert_int_equal(data_blocks(&f, h, 8), 8);
    f.ptr[h[3].off + h[3].size / 2] ^= 0x10; /* data block 3: checksum mismatch */
    assert_non_null(fp = fopen(bad, "wb"));
    assert_int_equal(fwrite(f.ptr, 1, f.len, fp), f.len);
    assert_int_equal(fclose(fp), 0);
    snprintf(want_off, sizeof want_off, "offset %llu", (unsigned long long)h[3].off);

    assert_int_equal(kv_sst_open(bad, &t), WR_OK);
    if (with_cache) {
        assert_int_equal(kv_cache_create(1 << 20, 0, &c), WR_OK);
        kv_sst_set_cache(t, c, 9);
    }
    for (uint32_t i = 0; i < 400; i++) /* the first 400 user keys span blocks 0..~10 */
        uk[i] = wr_bytes_of(keys[i], ukey_of(keys[i], 2 * (i / 2) + (i % 7 == 0)));
    for (int round = 0; round < 2; round++) {
        failed = 0;
        ret = kv_sst_multi_get(t, uk, 400, KV_SEQ_MAX, vals, found, st);
        assert_int_equal(ret, WR_ERR_CORRUPT);
        assert_non_null(strstr(wr_errmsg(), bad));
        assert_non_null(strstr(wr_errmsg(), want_off));
        for (size_t i = 0; i < 400; i++) {
            wr_buf gv = {0};
            kv_found gf;
            wr_status gs = kv_sst_get(t, uk[i], KV_SEQ_MAX, &gv, &gf);
            assert_int_equal(gs, st[i]);
            if (st[i] != WR_OK) {
                assert_int_equal(st[i], WR_ERR_CORRUPT);
                assert_non_null(strstr(wr_errmsg(), want_off)); /* kv_sst_get's message */
                failed++;
            } else {
                assert_int_equal(gf, found[i]);
                if (gf == KV_FOUND_PUT)
                    assert_true(wr_bytes_eq(wr_bytes_of(gv.ptr, gv.len),
                                            wr_bytes_of(vals[i].ptr, vals[i].len)));
            }
            wr_buf_fini(&gv);
        }
        assert_true(failed > 0 && failed < 200);
    }
    for (size_t i = 0; i < 400; i++)
        wr_buf_fini(&vals[i]);
    kv_sst_close(t);
    kv_cache_destroy(c);
    wr_buf_fini(&f);
    unlink(good);
    unlink(bad);
    unsetenv("WEIR_NO_URING");
}

typedef struct dmg_job {
    bool with_cache, no_uring;
} dmg_job;

static void *dmg_run(void *arg)
{
    dmg_job *j = arg;
    damaged_block_fails_only_its_keys(j->with_cache, j->no_uring);
    return NULL;
}

static void test_damaged_block_fails_only_its_keys_naming_file_and_offset(void **state)
{
    (void)state;
    /* the main thread's ring is io_uring (when the kernel allows); fallback in a fresh thread */
    damaged_block_fails_only_its_keys(false, false);
    damaged_block_fails_only_its_keys(true, false);
    for (int k = 0; k < 2; k++) {
        dmg_job j = {k == 1, true};
        pthread_t th;
        /* cmocka asserts must run on the main thread: a failure in the worker aborts the test
         * binary (non-zero exit), which still fails the run */
        assert_int_equal(pthread_create(&th, NULL, dmg_run, &j), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
    }
}

static void test_too_big_key_shared_blocks_and_cache_hits(void **state)
{
    kv_sst *t;
    kv_cache *c;
    uint8_t *big = calloc(1, KV_KEY_MAX + 1);
    wr_bytes uk[2];
    wr_buf vals[2] = {{0}}, v = {0};
    kv_found found[2], f;
    wr_status st[2];
    uint64_t hits, misses;
    char k0[16];
    (void)state;

    assert_non_null(big);
    build(tpath("k.sst"), KV_COMP_NONE);
    assert_int_equal(kv_sst_open(tpath("k.sst"), &t), WR_OK);
    assert_int_equal(kv_cache_create(1 << 20, 0, &c), WR_OK);
    kv_sst_set_cache(t, c, 3);
    uk[0] = wr_bytes_of(big, KV_KEY_MAX + 1);
    uk[1] = wr_bytes_of(k0, ukey_of(k0, 2));
    assert_int_equal(kv_sst_multi_get(t, uk, 2, KV_SEQ_MAX, vals, found, st), WR_ERR_TOOBIG);
    assert_int_equal(st[0], WR_ERR_TOOBIG);
    assert_int_equal(st[1], WR_OK);
    assert_int_equal(found[1], KV_FOUND_PUT);
    kv_cache_stats(c, &hits, &misses, NULL);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 1);
    assert_int_equal(kv_sst_get(t, uk[1], KV_SEQ_MAX, &v, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_PUT);
    assert_true(wr_bytes_eq(wr_bytes_of(v.ptr, v.len), wr_bytes_of(vals[1].ptr, vals[1].len)));
    kv_cache_stats(c, &hits, &misses, NULL);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);
    /* keys sharing a block share one lookup (and one read) */
    {
        wr_bytes dk[4];
        char kb[4][16];
        wr_buf dv[4] = {{0}};
        kv_found df[4];
        wr_status ds[4];
        const uint32_t us[4] = {4, 0, 2, 0};
        kv_cache_erase_file(c, 3);
        for (int i = 0; i < 4; i++)
            dk[i] = wr_bytes_of(kb[i], ukey_of(kb[i], us[i]));
        assert_int_equal(kv_sst_multi_get(t, dk, 4, KV_SEQ_MAX, dv, df, ds), WR_OK);
        kv_cache_stats(c, &hits, &misses, NULL);
        assert_int_equal(hits, 1);
        assert_int_equal(misses, 2);
        assert_int_equal(kv_sst_multi_get(t, dk, 4, KV_SEQ_MAX, dv, df, ds), WR_OK);
        kv_cache_stats(c, &hits, &misses, NULL);
        assert_int_equal(hits, 2);
        assert_int_equal(misses, 2);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(ds[i], WR_OK);
            wr_buf_fini(&dv[i]);
        }
    }
    /* out of memory while inserting: the get still answers, uncached */
    kv_cache_erase_file(c, 3);
    wr_alloc_fail_at(1, true);
    {
        /* every allocation fails: the get may fail with NOMEM but must not crash or lie */
        wr_status s = kv_sst_get(t, uk[1], KV_SEQ_MAX, &v, &f);
        wr_alloc_fail_at(0, false);
        assert_true(s == WR_OK || s == WR_ERR_NOMEM);
    }
    for (uint64_t nth = 1; nth < 12; nth++) {
        wr_status s;
        kv_cache_erase_file(c, 3);
        wr_alloc_fail_at(nth, false);
        s = kv_sst_multi_get(t, uk, 2, KV_SEQ_MAX, vals, found, st);
        wr_alloc_fail_at(0, false);
        assert_true(s == WR_ERR_TOOBIG || s == WR_ERR_NOMEM);
        assert_true(st[1] == WR_OK || st[1] == WR_ERR_NOMEM);
        if (st[1] == WR_OK)
            assert_int_equal(found[1], KV_FOUND_PUT);
    }
    kv_sst_close(t);
    kv_cache_destroy(c);
    for (int i = 0; i < 2; i++)
        wr_buf_fini(&vals[i]);
    wr_buf_fini(&v);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_args_and_null_destroy),
        cmocka_unit_test(test_unheld_bytes_never_exceed_capacity),
        cmocka_unit_test(test_held_handles_survive_eviction_pressure),
        cmocka_unit_test(test_lru_order_recently_used_survives),
        cmocka_unit_test(test_erase_file_drops_its_entries_held_ones_on_release),
        cmocka_unit_test(test_oversized_entry_returned_not_kept),
        cmocka_unit_test(test_insert_of_present_key_replaces_held_old_stays_valid),
        cmocka_unit_test(test_alloc_failures_return_nomem_and_leave_cache_intact),
        cmocka_unit_test(test_four_threads_hammer_small_cache),
        cmocka_unit_test_setup_teardown(test_multi_get_matches_get_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_get_matches_get_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers_share_a_small_cache, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_damaged_block_fails_only_its_keys_naming_file_and_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big_key_shared_blocks_and_cache_hits, setup,
                                        teardown),
    };
    wr_log_set_level(WR_LOG_ERROR); /* damaged input logs a WARN per WR_CORRUPT() */
    return cmocka_run_group_tests_name("kv_cache", tests, NULL, NULL);
}

/* tests/kv/test_kv_memtable.c -- the memtable (kv_mem.h) against a reference, under allocation
 * failure, and with readers racing one writer.
 *
 * The reference is a sorted array of internal keys built with kv_key.h. Random operation
 * sequences (a small key space with empty keys, shared prefixes, 0x00 and 0xff bytes; values
 * from empty to 200 KiB; sequence numbers in order or shuffled) are checked at intervals for:
 * gets at random snapshots, full forward and backward iteration, and seeks followed by next and
 * prev. Seeds: four fixed ones plus WEIR_SEED (default: the clock), printed on failure. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kv_mem.h"

static uint64_t seed;        /* of the run being checked */
static const char *run = ""; /* which run of that seed */

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            char m_[512];                                                                          \
            snprintf(m_, sizeof(m_), __VA_ARGS__);                                                 \
            fail_msg("%s (%s) -- seed %" PRIu64 "%s", m_, #c, seed, run);                          \
        }                                                                                          \
    } while (0)

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static wr_bytes ikey_make(uint8_t *dst, wr_bytes ukey, uint64_t seq, kv_type t)
{
    return wr_bytes_of(dst, kv_ikey_put(dst, ukey, seq, t));
}

/* ---------------------------------------------------------------- the reference */
typedef struct ref_ent {
    uint8_t *ikey; /* owned */
    size_t ikey_len;
    uint8_t *val; /* owned */
    size_t val_len;
} ref_ent;

typedef struct ref_model {
    ref_ent *e; /* owned; sorted by kv_ikey_cmp */
    size_t n, cap;
} ref_model;

static wr_bytes ref_key(const ref_model *r, size_t i)
{
    return wr_bytes_of(r->e[i].ikey, r->e[i].ikey_len);
}

static wr_bytes ref_val(const ref_model *r, size_t i)
{
    return wr_bytes_of(r->e[i].val, r->e[i].val_len);
}

/* Index of the first entry >= @ikey. */
static size_t ref_lower_bound(const ref_model *r, wr_bytes ikey)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kv_ikey_cmp(ref_key(r, mid), ikey) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* False when the internal key is already there. */
static bool ref_add(ref_model *r, uint64_t seq, kv_type t, wr_bytes ukey, wr_bytes val)
{
    uint8_t *ik = malloc(ukey.len + KV_TRAILER);
    wr_bytes k = ikey_make(ik, ukey, seq, t);
    size_t i = ref_lower_bound(r, k);
    ref_ent e;

    assert_non_null(ik);
    if (i < r->n && kv_ikey_cmp(ref_key(r, i), k) == 0) {
        free(ik);
        return false;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->e = realloc(r->e, r->cap * sizeof(*r->e));
        assert_non_null(r->e);
    }
    e.ikey = ik;
    e.ikey_len = k.len;
    e.val_len = t == KV_TYPE_DEL ? 0 : val.len;
    e.val = malloc(e.val_len + 1);
    assert_non_null(e.val);
    if (e.val_len)
        memcpy(e.val, val.ptr, e.val_len);
    memmove(&r->e[i + 1], &r->e[i], (r->n - i) * sizeof(*r->e));
    r->e[i] = e;
    r->n++;
    return true;
}

static void ref_free(ref_model *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->e[i].ikey);
        free(r->e[i].val);
    }
    free(r->e);
    memset(r, 0, sizeof(*r));
}

/* What kv_mem_get must answer, by a linear look at the key's versions. */
static kv_mem_found ref_get(const ref_model *r, wr_bytes ukey, uint64_t snap, wr_bytes *val,
                            uint64_t *seq)
{
    *val = wr_bytes_of(NULL, 0);
    *seq = 0;
    for (size_t i = 0; i < r->n; i++) {
        wr_bytes k = ref_key(r, i);
        if (!wr_bytes_eq(kv_ikey_user(k), ukey) || kv_ikey_seq(k) > snap)
            continue;
        *seq = kv_ikey_seq(k); /* versions are newest first: the first match is the answer */
        if (kv_ikey_type(k) == KV_TYPE_DEL)
            return KV_MEM_DEL;
        *val = ref_val(r, i);
        return KV_MEM_PUT;
    }
    return KV_MEM_MISS;
}

/* ---------------------------------------------------------------- checks against it */
static void check_entry(const kv_mem_iter *it, const ref_model *r, size_t i, const char *what)
{
    CHECK(kv_mem_iter_valid(it), "%s: invalid at reference entry %zu of %zu", what, i, r->n);
    CHECK(wr_bytes_eq(kv_mem_iter_key(it), ref_key(r, i)), "%s: wrong key at entry %zu", what, i);
    CHECK(wr_bytes_eq(kv_mem_iter_value(it), ref_val(r, i)), "%s: wrong value at entry %zu", what,
          i);
}

static void check_iteration(kv_mem *m, const ref_model *r)
{
    kv_mem_iter it;
    size_t i;

    kv_mem_iter_init(&it, m);
    CHECK(!kv_mem_iter_valid(&it), "a new iterator is valid");
    kv_mem_iter_seek_first(&it);
    for (i = 0; i < r->n; i++, kv_mem_iter_next(&it))
        check_entry(&it, r, i, "forward");
    CHECK(!kv_mem_iter_valid(&it), "forward: valid past the last of %zu entries", r->n);
    kv_mem_iter_seek_last(&it);
    for (i = r->n; i-- > 0; kv_mem_iter_prev(&it))
        check_entry(&it, r, i, "backward");
    CHECK(!kv_mem_iter_valid(&it), "backward: valid before the first entry");
    kv_mem_iter_fini(&it);
}

static void check_seek(kv_mem_iter *it, const ref_model *r, wr_bytes ikey)
{
    size_t i = ref_lower_bound(r, ikey);

    kv_mem_iter_seek(it, ikey);
    if (i == r->n) {
        CHECK(!kv_mem_iter_valid(it), "seek past the end is valid");
        return;
    }
    check_entry(it, r, i, "seek");
    kv_mem_iter_next(it);
    if (i + 1 < r->n)
        check_entry(it, r, i + 1, "seek+next");
    else
        CHECK(!kv_mem_iter_valid(it), "seek+next past the end is valid");
    kv_mem_iter_seek(it, ikey);
    kv_mem_iter_prev(it);
    if (i > 0)
        check_entry(it, r, i - 1, "seek+prev");
    else
        CHECK(!kv_mem_iter_valid(it), "seek+prev before the first is valid");
}

typedef struct keyspace {
    uint8_t k[48][12];
    size_t len[48];
    size_t n;
} keyspace;

/* Short keys over {0x00, 'a', 'b', 0xff}: empty keys, prefixes and extreme bytes abound. */
static void keyspace_init(keyspace *ks, uint64_t *rs)
{
    static const uint8_t alpha[4] = {0x00, 'a', 'b', 0xff};

    ks->n = 48;
    for (size_t i = 0; i < ks->n; i++) {
        ks->len[i] = i == 0 ? 0 : rnd(rs) % 12;
        for (size_t j = 0; j < ks->len[i]; j++)
            ks->k[i][j] = alpha[rnd(rs) % 4];
    }
}

static wr_bytes keyspace_pick(const keyspace *ks, uint64_t *rs)
{
    size_t i = rnd(rs) % ks->n;
    return wr_bytes_of(ks->k[i], ks->len[i]);
}

static void check_all(kv_mem *m, const ref_model *r, const keyspace *ks, uint64_t max_seq,
                      uint64_t *rs)
{
    uint8_t buf[64];
    kv_mem_iter it;

    CHECK(kv_mem_check(m) == WR_OK, "kv_mem_check: %s", wr_errmsg());
    CHECK(kv_mem_count(m) == r->n, "count %" PRIu64 " != %zu", kv_mem_count(m), r->n);
    check_iteration(m, r);

    kv_mem_iter_init(&it, m);
    for (int k = 0; k < 300; k++) {
        kv_type t = rnd(rs) % 2 ? KV_TYPE_PUT : KV_TYPE_DEL;
        uint64_t s = rnd(rs) % (max_seq + 3);
        wr_bytes ik;
        if (k % 10 == 0 && r->n > 0) /* an exact key */
            ik = ref_key(r, rnd(rs) % r->n);
        else
            ik = ikey_make(buf, keyspace_pick(ks, rs), s, t);
        check_seek(&it, r, ik);
    }
    kv_mem_iter_fini(&it);

    for (size_t i = 0; i < ks->n; i++) {
        wr_bytes uk = wr_bytes_of(ks->k[i], ks->len[i]);
        for (int k = 0; k < 6; k++) {
            uint64_t snap = k == 0 ? KV_SEQ_MAX : k == 1 ? 0 : rnd(rs) % (max_seq + 2);
            wr_bytes want_v, got_v;
            uint64_t want_s, got_s;
            kv_mem_found want = ref_get(r, uk, snap, &want_v, &want_s);
            kv_mem_found got = kv_mem_get(m, uk, snap, &got_v, &got_s);
            CHECK(got == want, "get(key %zu, snap %" PRIu64 ") = %d, want %d", i, snap, (int)got,
                  (int)want);
            CHECK(got_s == want_s, "get(key %zu, snap %" PRIu64 ") seq %" PRIu64 ", want %" PRIu64,
                  i, snap, got_s, want_s);
            CHECK(wr_bytes_eq(got_v, want_v), "get(key %zu, snap %" PRIu64 ") wrong value", i,
                  snap);
        }
    }
}

/* ---------------------------------------------------------------- random operations */
static uint8_t *big_random(size_t n, uint64_t *rs)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(rs);
    return p;
}

static void random_run(uint64_t s, bool shuffled)
{
    enum { OPS = 4000, CHECK_EVERY = 800 };
    uint64_t rs = (s ^ (shuffled ? 0xabcdefull : 0)) | 1, seq = 0, max_seq = 0;
    uint8_t *pool = big_random(200 << 10, &rs);
    ref_model r = {0};
    keyspace ks;
    kv_mem *m;
    size_t dup = 0;

    seed = s;
    run = shuffled ? ", shuffled run (WEIR_SEED=<seed> reruns it)"
                   : ", ordered run (WEIR_SEED=<seed> reruns it)";
    keyspace_init(&ks, &rs);
    CHECK(kv_mem_create(4096, &m) == WR_OK, "create");
    for (int op = 1; op <= OPS; op++) {
        kv_type t = rnd(&rs) % 5 == 0 ? KV_TYPE_DEL : KV_TYPE_PUT;
        wr_bytes uk = keyspace_pick(&ks, &rs), val;
        uint64_t pick = rnd(&rs) % 100;
        size_t vlen = pick < 90   ? rnd(&rs) % 65
                      : pick < 99 ? 64 + rnd(&rs) % 2000
                                  : (20 << 10) + rnd(&rs) % (180 << 10);
        wr_status rc;
        bool fresh;

        val = wr_bytes_of(pool + rnd(&rs) % ((200 << 10) - vlen + 1), vlen);
        if (shuffled) /* old versions arrive after new ones; some (key, seq, type) repeat */
            seq = rnd(&rs) % 64 == 0 ? KV_SEQ_MAX - rnd(&rs) % 4 : rnd(&rs) % 3000;
        else
            seq += 1 + (rnd(&rs) % 4 == 0 ? rnd(&rs) % 5 : 0);
        if (seq > max_seq)
            max_seq = seq;
        fresh = ref_add(&r, seq, t, uk, val);
        rc = kv_mem_add(m, seq, t, uk, val);
        CHECK(rc == (fresh ? WR_OK : WR_ERR_EXISTS), "op %d: add seq %" PRIu64 ": %s", op, seq,
              wr_status_str(rc));
        dup += !fresh;
        if (op % CHECK_EVERY == 0)
            check_all(m, &r, &ks, max_seq, &rs);
    }
    CHECK(!shuffled || dup > 0, "the shuffled run never repeated an internal key");
    kv_mem_unref(m);
    ref_free(&r);
    free(pool);
}

static uint64_t env_seed(void)
{
    const char *e = getenv("WEIR_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : wr_now_ns();
    return s ? s : 1;
}

static void test_random_ops_match_reference(void **state)
{
    uint64_t seeds[5] = {1, 2, 42, 0x5eed5eedull, env_seed()};
    (void)state;

    for (int i = 0; i < 5; i++) {
        fprintf(stderr, "random ops: seed %" PRIu64 "\n", seeds[i]);
        random_run(seeds[i], false);
        random_run(seeds[i], true);
    }
}

/* ---------------------------------------------------------------- specific cases */
static kv_mem_found get_str(kv_mem *m, const char *k, uint64_t snap, wr_bytes *v, uint64_t *s)
{
    return kv_mem_get(m, wr_bytes_str(k), snap, v, s);
}

static void test_tombstone_shadows_older_put(void **state)
{
    kv_mem *m;
    wr_bytes v;
    uint64_t s;
    (void)state;

    assert_int_equal(kv_mem_create(0, &m), WR_OK);
    assert_int_equal(kv_mem_add(m, 10, KV_TYPE_PUT, wr_bytes_str("k"), wr_bytes_str("v10")), WR_OK);
    assert_int_equal(kv_mem_add(m, 20, KV_TYPE_DEL, wr_bytes_str("k"), wr_bytes_str("ignored")),
                     WR_OK);
    assert_int_equal(kv_mem_add(m, 30, KV_TYPE_PUT, wr_bytes_str("k"), wr_bytes_str("v30")), WR_OK);
    /* neighbours that a sloppy comparison would confuse with "k" */
    assert_int_equal(kv_mem_add(m, 25, KV_TYPE_PUT, wr_bytes_of("k\0", 2), wr_bytes_str("nul")),
                     WR_OK);
    assert_int_equal(kv_mem_add(m, 5, KV_TYPE_PUT, wr_bytes_str(""), wr_bytes_str("empty")), WR_OK);
    assert_int_equal(kv_mem_add(m, 15, KV_TYPE_PUT, wr_bytes_str("ka"), wr_bytes_str("ka")), WR_OK);

    assert_int_equal(get_str(m, "k", 9, &v, &s), KV_MEM_MISS);
    assert_int_equal(s, 0);
    assert_int_equal(v.len, 0);
    assert_int_equal(get_str(m, "k", 10, &v, &s), KV_MEM_PUT);
    assert_true(wr_bytes_eq(v, wr_bytes_str("v10")));
    assert_int_equal(get_str(m, "k", 19, &v, &s), KV_MEM_PUT);
    assert_int_equal(s, 10);
    assert_int_equal(get_str(m, "k", 20, &v, &s), KV_MEM_DEL);
    assert_int_equal(s, 20);
    assert_int_equal(v.len, 0);
    assert_int_equal(get_str(m, "k", 29, &v, NULL), KV_MEM_DEL);
    assert_int_equal(get_str(m, "k", 30, &v, &s), KV_MEM_PUT);
    assert_true(wr_bytes_eq(v, wr_bytes_str("v30")));
    assert_int_equal(get_str(m, "k", UINT64_MAX, &v, &s), KV_MEM_PUT); /* clamped to the max */
    assert_int_equal(s, 30);
    assert_int_equal(kv_mem_get(m, wr_bytes_of("k\0", 2), 100, &v, &s), KV_MEM_PUT);
    assert_true(wr_bytes_eq(v, wr_bytes_str("nul")));
    assert_int_equal(get_str(m, "", 100, &v, &s), KV_MEM_PUT);
    assert_true(wr_bytes_eq(v, wr_bytes_str("empty")));
    assert_int_equal(get_str(m, "", 4, &v, &s), KV_MEM_MISS);
    assert_int_equal(get_str(m, "j", 100, &v, &s), KV_MEM_MISS);
    assert_int_equal(get_str(m, "kb", 100, &v, &s), KV_MEM_MISS);
    assert_int_equal(kv_mem_count(m), 6);
    assert_int_equal(kv_mem_check(m), WR_OK);
    kv_mem_unref(m);
}

static void test_same_key_many_versions_newest_first(void **state)
{
    enum { N = 3000 };
    kv_mem *m;
    kv_mem_iter it;
    uint8_t buf[32];
    wr_bytes v;
    uint64_t s, want;
    (void)state;

    assert_int_equal(kv_mem_create(0, &m), WR_OK);
    /* odd seqs only, inserted in a scrambled order */
    for (uint64_t i = 0; i < N; i++) {
        uint64_t seq = 2 * ((i * 7919) % N) + 1;
        kv_type t = seq % 7 == 0 ? KV_TYPE_DEL : KV_TYPE_PUT;
        assert_int_equal(kv_mem_add(m, seq, t, wr_bytes_str("key"), wr_bytes_of(&seq, sizeof seq)),
                         WR_OK);
    }
    assert_int_equal(kv_mem_add(m, 1, KV_TYPE_PUT, wr_bytes_str("key"), wr_bytes_str("x")),
                     WR_ERR_EXISTS);
    assert_int_equal(kv_mem_count(m), N);
    assert_int_equal(kv_mem_check(m), WR_OK);
    for (uint64_t snap = 0; snap <= 2 * N + 5; snap++) {
        kv_mem_found f = get_str(m, "key", snap, &v, &s);
        want = snap == 0 ? 0 : snap >= 2 * N ? 2 * N - 1 : snap % 2 ? snap : snap - 1;
        assert_int_equal(s, want);
        if (want == 0)
            assert_int_equal(f, KV_MEM_MISS);
        else if (want % 7 == 0)
            assert_int_equal(f, KV_MEM_DEL);
        else {
            assert_int_equal(f, KV_MEM_PUT);
            assert_memory_equal(v.ptr, &want, sizeof want);
        }
    }
    kv_mem_iter_init(&it, m);
    want = 2 * N - 1;
    for (kv_mem_iter_seek_first(&it); kv_mem_iter_valid(&it); kv_mem_iter_next(&it), want -= 2)
        assert_int_equal(kv_ikey_seq(kv_mem_iter_key(&it)), want);
    assert_int_equal(want + 2, 1);
    kv_mem_iter_seek(&it, ikey_make(buf, wr_bytes_str("key"), 100, KV_TYPE_SEEK));
    assert_int_equal(kv_ikey_seq(kv_mem_iter_key(&it)), 99);
    kv_mem_iter_prev(&it);
    assert_int_equal(kv_ikey_seq(kv_mem_iter_key(&it)), 101);
    kv_mem_iter_fini(&it);
    kv_mem_unref(m);
}

static void test_empty_keys_and_large_values_round_trip(void **state)
{
    uint64_t rs = 7;
    size_t sizes[4] = {0, 1000, 1 << 20, 5 << 20}, total = 0, before;
    uint8_t *vals[4];
    kv_mem *m;
    kv_mem_iter it;
    wr_bytes v;
    uint64_t s;
    (void)state;

    assert_int_equal(kv_mem_create(KV_ARENA_BLOCK_MIN, &m), WR_OK);
    before = kv_mem_usage(m);
    for (int i = 0; i < 4; i++) {
        size_t u = kv_mem_usage(m);
        vals[i] = big_random(sizes[i] + 1, &rs);
        assert_int_equal(kv_mem_add(m, (uint64_t)i + 1, KV_TYPE_PUT, wr_bytes_of(NULL, 0),
                                    wr_bytes_of(vals[i], sizes[i])),
                         WR_OK);
        total += sizes[i];
        assert_true(kv_mem_usage(m) >= u + sizes[i]); /* usage follows the bytes held */
    }
    assert_true(kv_mem_usage(m) >= before + total);
    assert_true(kv_mem_usage(m) <= before + total + 8 * KV_ARENA_BLOCK_MIN);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(kv_mem_get(m, wr_bytes_of("", 0), (uint64_t)i + 1, &v, &s), KV_MEM_PUT);
        assert_int_equal(s, i + 1);
        assert_int_equal(v.len, sizes[i]);
        if (sizes[i])
            assert_memory_equal(v.ptr, vals[i], sizes[i]);
    }
    /* a user key at the limit, and one over it */
    uint8_t *bigkey = big_random(KV_KEY_MAX + 1, &rs);
    assert_int_equal(
        kv_mem_add(m, 9, KV_TYPE_PUT, wr_bytes_of(bigkey, KV_KEY_MAX), wr_bytes_str("big")), WR_OK);
    assert_int_equal(
        kv_mem_add(m, 10, KV_TYPE_PUT, wr_bytes_of(bigkey, KV_KEY_MAX + 1), wr_bytes_str("x")),
        WR_ERR_TOOBIG);
    assert_int_equal(kv_mem_add(m, 10, KV_TYPE_PUT, wr_bytes_str("k"),
                                wr_bytes_of(vals[3], (size_t)KV_VALUE_MAX + 1)),
                     WR_ERR_TOOBIG);
    assert_int_equal(
        kv_mem_add(m, KV_SEQ_MAX + 1, KV_TYPE_PUT, wr_bytes_str("k"), wr_bytes_str("x")),
        WR_ERR_INVAL);
    assert_int_equal(kv_mem_add(m, 11, (kv_type)7, wr_bytes_str("k"), wr_bytes_str("x")),
                     WR_ERR_INVAL);
    assert_int_equal(kv_mem_get(m, wr_bytes_of(bigkey, KV_KEY_MAX), 100, &v, &s), KV_MEM_PUT);
    assert_true(wr_bytes_eq(v, wr_bytes_str("big")));
    assert_int_equal(kv_mem_count(m), 5);
    assert_int_equal(kv_mem_check(m), WR_OK);
    /* the empty key sorts first: its versions, newest first, then the big key */
    kv_mem_iter_init(&it, m);
    kv_mem_iter_seek_first(&it);
    for (int i = 3; i >= 0; i--, kv_mem_iter_next(&it)) {
        assert_int_equal(kv_mem_iter_key(&it).len, KV_TRAILER);
        assert_int_equal(kv_mem_iter_value(&it).len, sizes[i]);
    }
    assert_int_equal(kv_mem_iter_key(&it).len, KV_KEY_MAX + KV_TRAILER);
    kv_mem_iter_next(&it);
    assert_false(kv_mem_iter_valid(&it));
    kv_mem_iter_fini(&it);
    kv_mem_unref(m);
    free(bigkey);
    for (int i = 0; i < 4; i++)
        free(vals[i]);
}

/* A memtable an iterator still holds outlives its creator's reference (ASan checks both
 * sides: no use after free, no leak). */
static void test_references_keep_the_memtable_alive(void **state)
{
    kv_mem *m;
    kv_mem_iter it;
    wr_bytes v;
    (void)state;

    assert_int_equal(kv_mem_create(0, &m), WR_OK);
    assert_int_equal(kv_mem_add(m, 1, KV_TYPE_PUT, wr_bytes_str("a"), wr_bytes_str("1")), WR_OK);
    assert_ptr_equal(kv_mem_ref(m), m); /* a "flush thread" */
    kv_mem_iter_init(&it, m);
    kv_mem_unref(m); /* the writer lets go */
    assert_int_equal(kv_mem_get(m, wr_bytes_str("a"), 1, &v, NULL), KV_MEM_PUT);
    kv_mem_unref(m); /* the flush is done */
    kv_mem_iter_seek_last(&it);
    assert_true(kv_mem_iter_valid(&it));
    assert_true(wr_bytes_eq(kv_mem_iter_value(&it), wr_bytes_str("1")));
    kv_mem_iter_fini(&it); /* the last reference: frees */
    kv_mem_iter_fini(&it); /* a finished iterator is a no-op */
    kv_mem_unref(NULL);

    /* an empty memtable iterates as empty */
    assert_int_equal(kv_mem_create(0, &m), WR_OK);
    kv_mem_iter_init(&it, m);
    kv_mem_iter_seek_first(&it);
    assert_false(kv_mem_iter_valid(&it));
    kv_mem_iter_seek_last(&it);
    assert_false(kv_mem_iter_valid(&it));
    kv_mem_iter_fini(&it);
    assert_int_equal(kv_mem_check(m), WR_OK);
    kv_mem_unref(m);
}

static void test_alloc_failure_is_nomem_and_list_unchanged(void **state)
{
    uint64_t rs = 99;
    uint8_t *pool = big_random(4096, &rs);
    ref_model r = {0};
    keyspace ks;
    kv_mem *m;
    int nomem = 0, fit = 0;
    (void)state;

    seed = 99;
    run = " (fixed)";
    for (uint64_t nth = 1; nth <= 2; nth++) {
        wr_alloc_fail_at(nth, false);
        m = (kv_mem *)&r; /* must be reset */
        assert_int_equal(kv_mem_create(0, &m), WR_ERR_NOMEM);
        assert_null(m);
    }
    wr_alloc_fail_at(0, false);

    keyspace_init(&ks, &rs);
    assert_int_equal(kv_mem_create(KV_ARENA_BLOCK_MIN, &m), WR_OK);
    for (uint64_t seq = 1; seq <= 400; seq++) {
        wr_bytes uk = keyspace_pick(&ks, &rs);
        /* some values over a quarter block: they need a dedicated block every time */
        size_t vlen = rnd(&rs) % 8 == 0 ? 300 + rnd(&rs) % 2000 : rnd(&rs) % 100;
        wr_bytes val = wr_bytes_of(pool + rnd(&rs) % (4096 - vlen), vlen);
        uint64_t cnt = kv_mem_count(m), got_seq;
        size_t usage = kv_mem_usage(m);
        wr_bytes got;
        wr_status rc;

        wr_alloc_fail_at(1, true); /* every allocation from now fails */
        rc = kv_mem_add(m, seq, KV_TYPE_PUT, uk, val);
        wr_alloc_fail_at(0, false);
        if (rc == WR_ERR_NOMEM) {
            nomem++;
            CHECK(kv_mem_count(m) == cnt, "seq %" PRIu64 ": count moved on NOMEM", seq);
            CHECK(kv_mem_usage(m) == usage, "seq %" PRIu64 ": usage moved on NOMEM", seq);
            CHECK(kv_mem_get(m, uk, seq, &got, &got_seq) == KV_MEM_MISS || got_seq < seq,
                  "seq %" PRIu64 ": a failed add is visible", seq);
            if (nomem % 8 == 1)
                check_all(m, &r, &ks, seq, &rs);
            val = wr_bytes_of(pool + rnd(&rs) % (4096 - vlen), vlen);
            rc = kv_mem_add(m, seq, KV_TYPE_PUT, uk, val); /* memory is back */
        } else {
            fit++;
        }
        CHECK(rc == WR_OK, "seq %" PRIu64 ": %s", seq, wr_status_str(rc));
        assert_true(ref_add(&r, seq, KV_TYPE_PUT, uk, val));
    }
    CHECK(nomem > 20 && fit > 20, "%d failed and %d fitted: the test lost its point", nomem, fit);
    check_all(m, &r, &ks, 400, &rs);
    kv_mem_unref(m);
    ref_free(&r);
    free(pool);
}

/* ---------------------------------------------------------------- the arena */
static void test_arena_aligns_never_overlaps_and_survives_nomem(void **state)
{
    enum { N = 300 };
    uint64_t rs = 5;
    uint8_t *p[N], *q1, *q2, *big, *saved_ptr;
    size_t n[N], sum = 0, usage, saved_left;
    kv_arena a;
    (void)state;

    kv_arena_init(&a, 100);
    assert_int_equal(a.block_size, KV_ARENA_BLOCK_MIN);
    assert_int_equal(kv_arena_usage(&a), 0);
    for (int i = 0; i < N; i++) {
        size_t align = (size_t)1 << (rnd(&rs) % 7);
        n[i] = rnd(&rs) % 5 == 0 ? 300 + rnd(&rs) % 3000 : rnd(&rs) % 200;
        p[i] = kv_arena_alloc(&a, n[i], align);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] & (align - 1), 0);
        memset(p[i], i, n[i]);
        sum += n[i];
    }
    for (int i = 0; i < N; i++) /* nothing overwrote anything */
        for (size_t j = 0; j < n[i]; j++)
            assert_int_equal(p[i][j], (uint8_t)i);
    assert_true(kv_arena_usage(&a) >= sum);
    assert_true(kv_arena_usage(&a) <= 2 * sum + 2 * KV_ARENA_BLOCK_MIN);
    kv_arena_fini(&a);
    assert_int_equal(kv_arena_usage(&a), 0);

    /* a large request gets its own block; small ones keep filling the current block */
    kv_arena_init(&a, 4096);
    q1 = kv_arena_alloc(&a, 8, 8);
    big = kv_arena_alloc(&a, 4096, 8);
    q2 = kv_arena_alloc(&a, 8, 8);
    assert_non_null(big);
    assert_ptr_equal(q2, q1 + 8);

    /* out of memory: NULL, and the arena is as it was */
    while (a.left >= 1024)
        assert_non_null(kv_arena_alloc(&a, 512, 8));
    usage = kv_arena_usage(&a);
    saved_ptr = a.ptr;
    saved_left = a.left;
    wr_alloc_fail_at(1, true);
    assert_null(kv_arena_alloc(&a, 100000, 8)); /* a dedicated block */
    assert_null(kv_arena_alloc(&a, 1024, 8));   /* a new standard block */
    assert_non_null(kv_arena_alloc(&a, 16, 8)); /* the tail still serves small requests */
    wr_alloc_fail_at(0, false);
    assert_int_equal(kv_arena_usage(&a), usage);
    assert_ptr_equal(a.ptr, saved_ptr + 16);
    assert_int_equal(a.left, saved_left - 16);
    kv_arena_fini(&a);
}

/* ---------------------------------------------------------------- one writer, three readers */
/* The writer adds seqs 1..CONC_N in order, each entry derived from its seq (key, type,
 * value), and publishes the last seq it added. Readers scan, get and seek without pause and
 * check that the order is strict, every entry is the one its seq implies, every published
 * entry is found, and a scan never sees fewer entries than the one before it. */
enum { CONC_N = 200000, CONC_READERS = 3, CONC_KEYS = 30000 };

typedef struct conc {
    kv_mem *m;                      /* the test's reference */
    atomic_uint_fast64_t published; /* every seq <= this one was added */
    atomic_bool done, failed;
    pthread_mutex_t mu; /* guards msg */
    char msg[512];      /* the first failure */
} conc;

typedef struct conc_reader {
    conc *c;
    uint64_t rs, scans;
} conc_reader;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static wr_bytes conc_key(uint64_t seq, char buf[16])
{
    snprintf(buf, 16, "k%06" PRIu64, mix(seq) % CONC_KEYS);
    return wr_bytes_str(buf);
}

static kv_type conc_type(uint64_t seq)
{
    return mix(seq ^ 0x55) % 8 == 0 ? KV_TYPE_DEL : KV_TYPE_PUT;
}

static wr_bytes conc_val(uint64_t seq, uint8_t buf[48])
{
    size_t len = 8 + mix(seq ^ 0xaa) % 40;

    wr_put64(buf, seq);
    for (size_t i = 8; i < len; i++)
        buf[i] = (uint8_t)(seq + i);
    return wr_bytes_of(buf, conc_type(seq) == KV_TYPE_DEL ? 0 : len);
}

/* Record the first failure; returns false so a check can `return conc_fail(...)`. */
static bool conc_fail(conc *c, const char *fmt, ...) WR_PRINTF(2, 3);
static bool conc_fail(conc *c, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->mu);
    if (!atomic_load(&c->failed)) {
        va_start(ap, fmt);
        vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
        va_end(ap);
        atomic_store(&c->failed, true);
    }
    pthread_mutex_unlock(&c->mu);
    return false;
}

/* Is (ik, val) the entry the writer derives from ik's seq? */
static bool conc_entry_ok(wr_bytes ik, wr_bytes val)
{
    uint64_t seq = kv_ikey_seq(ik);
    char kb[16];
    uint8_t vb[48];

    return seq >= 1 && seq <= CONC_N && wr_bytes_eq(kv_ikey_user(ik), conc_key(seq, kb)) &&
           kv_ikey_type(ik) == conc_type(seq) && wr_bytes_eq(val, conc_val(seq, vb));
}

static void *conc_writer_main(void *arg)
{
    conc *c = arg;
    char kb[16];
    uint8_t vb[48];

    for (uint64_t seq = 1; seq <= CONC_N && !atomic_load(&c->failed); seq++) {
        wr_status rc = kv_mem_add(c->m, seq, conc_type(seq), conc_key(seq, kb), conc_val(seq, vb));
        if (rc != WR_OK) {
            conc_fail(c, "writer: add seq %" PRIu64 ": %s", seq, wr_status_str(rc));
            break;
        }
        atomic_store_explicit(&c->published, seq, memory_order_release);
    }
    atomic_store_explicit(&c->done, true, memory_order_release);
    return NULL;
}

/* A full forward scan: strict order, right entries, none lost. */
static bool conc_scan(conc_reader *rd, kv_mem_iter *it, uint64_t published, uint64_t *last_cnt)
{
    conc *c = rd->c;
    wr_bytes prev = {NULL, 0}, k;
    uint64_t n = 0;

    for (kv_mem_iter_seek_first(it); kv_mem_iter_valid(it); kv_mem_iter_next(it), n++) {
        k = kv_mem_iter_key(it);
        if (prev.ptr != NULL && kv_ikey_cmp(prev, k) >= 0)
            return conc_fail(c, "scan: entry %" PRIu64 " (seq %" PRIu64 ") out of order", n,
                             kv_ikey_seq(k));
        if (!conc_entry_ok(k, kv_mem_iter_value(it)))
            return conc_fail(c, "scan: entry %" PRIu64 " (seq %" PRIu64 ") is wrong", n,
                             kv_ikey_seq(k));
        prev = k; /* arena memory: stable while the iterator holds its reference */
    }
    if (n < published || n < *last_cnt)
        return conc_fail(c,
                         "scan: %" PRIu64 " entries, but %" PRIu64 " were published and the "
                         "previous scan saw %" PRIu64,
                         n, published, *last_cnt);
    *last_cnt = n;
    rd->scans++;
    return true;
}

/* Gets and seeks of published entries, with short walks both ways from each seek. */
static bool conc_probe(conc_reader *rd, kv_mem_iter *it, uint64_t published)
{
    conc *c = rd->c;
    uint8_t ikb[32], seekb[32], vb[48];
    char kb[16];

    for (int k = 0; k < 300 && published > 0; k++) {
        uint64_t j = 1 + rnd(&rd->rs) % published, s;
        wr_bytes uk = conc_key(j, kb), v, want_ik = ikey_make(ikb, uk, j, conc_type(j)), pk;
        kv_mem_found f = kv_mem_get(c->m, uk, j, &v, &s);

        if (s != j || f != (conc_type(j) == KV_TYPE_PUT ? KV_MEM_PUT : KV_MEM_DEL) ||
            !wr_bytes_eq(v, conc_val(j, vb)))
            return conc_fail(c, "get(seq %" PRIu64 "): found %d at seq %" PRIu64, j, (int)f, s);
        f = kv_mem_get(c->m, uk, KV_SEQ_MAX, &v, &s);
        if (f == KV_MEM_MISS || s < j || s > CONC_N || mix(s) % CONC_KEYS != mix(j) % CONC_KEYS)
            return conc_fail(c, "get(seq %" PRIu64 ", latest): found %d at seq %" PRIu64, j, (int)f,
                             s);
        kv_mem_iter_seek(it, ikey_make(seekb, uk, j, KV_TYPE_SEEK));
        if (!kv_mem_iter_valid(it) || !wr_bytes_eq(kv_mem_iter_key(it), want_ik))
            return conc_fail(c, "seek(seq %" PRIu64 ") missed it", j);
        for (int step = 0; step < 10 && kv_mem_iter_valid(it); step++) {
            pk = kv_mem_iter_key(it);
            kv_mem_iter_next(it);
            if (kv_mem_iter_valid(it) && kv_ikey_cmp(pk, kv_mem_iter_key(it)) >= 0)
                return conc_fail(c, "next after seek(seq %" PRIu64 ") went backwards", j);
        }
        kv_mem_iter_seek(it, want_ik);
        for (int step = 0; step < 4 && kv_mem_iter_valid(it); step++) {
            pk = kv_mem_iter_key(it);
            kv_mem_iter_prev(it);
            if (kv_mem_iter_valid(it) &&
                (kv_ikey_cmp(kv_mem_iter_key(it), pk) >= 0 ||
                 !conc_entry_ok(kv_mem_iter_key(it), kv_mem_iter_value(it))))
                return conc_fail(c, "prev after seek(seq %" PRIu64 ") is wrong", j);
        }
    }
    return true;
}

static void *conc_reader_main(void *arg)
{
    conc_reader *rd = arg;
    conc *c = rd->c;
    uint64_t last_cnt = 0;
    kv_mem_iter it;

    kv_mem_iter_init(&it, c->m);
    while (!atomic_load(&c->failed)) {
        /* read done first: when it is set, everything is published */
        bool done = atomic_load_explicit(&c->done, memory_order_acquire);
        uint64_t published = atomic_load_explicit(&c->published, memory_order_acquire);

        if (!conc_scan(rd, &it, published, &last_cnt) || !conc_probe(rd, &it, published))
            break;
        if (done)
            break;
    }
    if (!atomic_load(&c->failed) && last_cnt != CONC_N)
        conc_fail(c, "the last scan saw %" PRIu64 " of %d entries", last_cnt, (int)CONC_N);
    kv_mem_iter_fini(&it);
    return NULL;
}

static void test_readers_race_one_writer_without_locks(void **state)
{
    pthread_t w, r[CONC_READERS];
    conc_reader rd[CONC_READERS];
    conc c;
    (void)state;

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    atomic_init(&c.published, 0);
    atomic_init(&c.done, false);
    atomic_init(&c.failed, false);
    assert_int_equal(kv_mem_create(0, &c.m), WR_OK);
    for (int i = 0; i < CONC_READERS; i++) {
        rd[i].c = &c;
        rd[i].rs = (uint64_t)i + 1;
        rd[i].scans = 0;
        assert_int_equal(pthread_create(&r[i], NULL, conc_reader_main, &rd[i]), 0);
    }
    assert_int_equal(pthread_create(&w, NULL, conc_writer_main, &c), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < CONC_READERS; i++)
        pthread_join(r[i], NULL);
    if (atomic_load(&c.failed))
        fail_msg("%s", c.msg);
    for (int i = 0; i < CONC_READERS; i++)
        fprintf(stderr, "reader %d: %" PRIu64 " full scans\n", i, rd[i].scans);
    assert_int_equal(kv_mem_count(c.m), CONC_N);
    assert_int_equal(kv_mem_check(c.m), WR_OK);
    kv_mem_unref(c.m);
    pthread_mutex_destroy(&c.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_aligns_never_overlaps_and_survives_nomem),
        cmocka_unit_test(test_random_ops_match_reference),
        cmocka_unit_test(test_tombstone_shadows_older_put),
        cmocka_unit_test(test_same_key_many_versions_newest_first),
        cmocka_unit_test(test_empty_keys_and_large_values_round_trip),
        cmocka_unit_test(test_references_keep_the_memtable_alive),
        cmocka_unit_test(test_alloc_failure_is_nomem_and_list_unchanged),
        cmocka_unit_test(test_readers_race_one_writer_without_locks),
    };
    return cmocka_run_group_tests_name("kv_memtable", tests, NULL, NULL);
}

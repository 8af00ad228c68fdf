/* tests/kv/test_kv_model.c -- model-based randomized test of the whole store: random sequences
 * of put / delete / batch / snapshot / get / multi-get / iterate (seek, next, prev, bounds) / flush
 * / compact-all / reopen, checked step by step against an in-memory reference map (and a copy of it
 * per live snapshot). Small memtables and levels make flushes and background compactions happen all
 * the time, so reads cross memtables, level 0 and deeper levels, and snapshots must survive
 * compactions. Seeds: WEIR_KV_MODEL_SEEDS (default 3) seeds from WEIR_KV_MODEL_SEED (default 1),
 * WEIR_KV_MODEL_OPS operations each (default 6000); the failing seed and step are printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"

#define NK    300 /* the key universe */
#define NSNAP 4   /* live snapshots at most */

typedef struct ref {
    char *v[NK]; /* NULL: absent */
    size_t len[NK];
} ref;

static char dir[64];
static char keys[NK][24];
static size_t klen[NK];
static unsigned seed, step;
static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        char m_[512];                                                                              \
        snprintf(m_, sizeof(m_), __VA_ARGS__);                                                     \
        fail_msg("seed %u step %u: %s (rerun: WEIR_KV_MODEL_SEED=%u WEIR_KV_MODEL_SEEDS=1)", seed, \
                 step, m_, seed);                                                                  \
    } while (0)

static int kcmp(const void *a, const void *b)
{
    const char *x = a, *y = b;
    return strcmp(x, y);
}

/* Keys of different lengths and shared prefixes, sorted bytewise. */
static void make_keys(void)
{
    for (int i = 0; i < NK; i++) {
        if (i % 3 == 0)
            snprintf(keys[i], sizeof(keys[i]), "u%03d", i);
        else if (i % 3 == 1)
            snprintf(keys[i], sizeof(keys[i]), "u%03d/sub/%d", i - 1, i % 7);
        else
            snprintf(keys[i], sizeof(keys[i]), "t%d", i * 7919 % 1000);
    }
    qsort(keys, NK, sizeof(keys[0]), kcmp);
    for (int i = 0; i < NK; i++)
        klen[i] = strlen(keys[i]);
}

static wr_bytes K(int i)
{
    return wr_bytes_of(keys[i], klen[i]);
}

static void ref_set(ref *r, int k, const char *v, size_t n)
{
    free(r->v[k]);
    r->v[k] = NULL;
    if (v) {
        r->v[k] = malloc(n + 1);
        if (n)
            memcpy(r->v[k], v, n);
        r->len[k] = n;
    }
}

static void ref_copy(ref *dst, const ref *src)
{
    for (int k = 0; k < NK; k++) {
        dst->v[k] = NULL;
        ref_set(dst, k, src->v[k], src->len[k]);
    }
}

static void ref_free(ref *r)
{
    for (int k = 0; k < NK; k++)
        ref_set(r, k, NULL, 0);
}

static size_t make_value(char *buf, int k)
{
    size_t n = rnd(10) == 0 ? 2000 + rnd(3000) : rnd(120);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (k + i + step) % 26);
    if (n > 8)
        snprintf(buf, 9, "%08u", step);
    return n;
}

static kv_db *open_db(void)
{
    kv_options o;
    kv_db *db;
    kv_options_default(&o);
    o.wal = KV_WAL_NEVER;
    o.memtable_bytes = 64u << 10;
    o.block_bytes = 512;
    o.l0_compaction_trigger = 2;
    o.l1_bytes = 128u << 10;
    o.sst_bytes = 32u << 10;
    o.mmap_reads = seed % 2 == 0; /* both read paths: mapped tables, and cache + io_uring */
    if (kv_open(dir, &o, &db) != WR_OK)
        FAIL("kv_open: %s", wr_errmsg());
    return db;
}

static void check_get(kv_db *db, const kv_snapshot *s, const ref *r, int k)
{
    wr_buf v = {0};
    wr_status st = kv_get(db, s, K(k), &v);
    if (r->v[k] == NULL) {
        if (st != WR_ERR_NOTFOUND)
            FAIL("get %s (snap %d): want absent, got %s", keys[k], s != NULL, wr_status_str(st));
    } else if (st != WR_OK) {
        FAIL("get %s (snap %d): want a value, got %s: %s", keys[k], s != NULL, wr_status_str(st),
             wr_errmsg());
    } else if (v.len != r->len[k] || (v.len && memcmp(v.ptr, r->v[k], v.len) != 0)) {
        FAIL("get %s (snap %d): wrong value (%zu bytes, want %zu)", keys[k], s != NULL, v.len,
             r->len[k]);
    }
    wr_buf_fini(&v);
}

/* kv_multi_get of up to 64 random keys (repeats included) against the model. */
static void check_multi_get(kv_db *db, const kv_snapshot *s, const ref *r)
{
    wr_bytes ks[64];
    wr_buf vals[64];
    wr_status st[64];
    int idx[64];
    size_t n = 1 + rnd(64);
    memset(vals, 0, sizeof(vals));
    for (size_t i = 0; i < n; i++) {
        idx[i] = (int)rnd(NK);
        ks[i] = K(idx[i]);
    }
    if (kv_multi_get(db, s, ks, n, vals, st) != WR_OK)
        FAIL("multi_get: %s", wr_errmsg());
    for (size_t i = 0; i < n; i++) {
        int k = idx[i];
        if (r->v[k] == NULL) {
            if (st[i] != WR_ERR_NOTFOUND)
                FAIL("multi_get %s: want absent, got %s", keys[k], wr_status_str(st[i]));
        } else if (st[i] != WR_OK) {
            FAIL("multi_get %s: want a value, got %s", keys[k], wr_status_str(st[i]));
        } else if (vals[i].len != r->len[k] ||
                   (r->len[k] && memcmp(vals[i].ptr, r->v[k], r->len[k]) != 0)) {
            FAIL("multi_get %s: wrong value", keys[k]);
        }
        wr_buf_fini(&vals[i]);
    }
}

/* The model of an iterator: index into keys[] (NK = invalid), with bounds [lo, hi). */
static bool live(const ref *r, int k, int lo, int hi)
{
    return k >= lo && k < hi && r->v[k] != NULL;
}

static int m_next(const ref *r, int from, int lo, int hi)
{
    for (int k = from < lo ? lo : from; k < hi; k++)
        if (live(r, k, lo, hi))
            return k;
    return NK;
}

static int m_prev(const ref *r, int from, int lo, int hi)
{
    for (int k = from >= hi ? hi - 1 : from; k >= lo; k--)
        if (live(r, k, lo, hi))
            return k;
    return NK;
}

static void expect_at(const kv_iter *it, const ref *r, int want, const char *what)
{
    if (want == NK) {
        if (kv_iter_valid(it))
            FAIL("%s: want end, got key %.*s", what, (int)kv_iter_key(it).len,
                 (const char *)kv_iter_key(it).ptr);
        return;
    }
    if (!kv_iter_valid(it))
        FAIL("%s: want key %s, got end", what, keys[want]);
    if (!wr_bytes_eq(kv_iter_key(it), K(want)))
        FAIL("%s: want key %s, got %.*s", what, keys[want], (int)kv_iter_key(it).len,
             (const char *)kv_iter_key(it).ptr);
    if (kv_iter_value(it).len != r->len[want] ||
        (r->len[want] && memcmp(kv_iter_value(it).ptr, r->v[want], r->len[want]) != 0))
        FAIL("%s: key %s: wrong value", what, keys[want]);
}

/* A random walk of one iterator, compared with the model after every move. */
static void check_iter(kv_db *db, const kv_snapshot *s, const ref *r)
{
    kv_iter_opts o = {.snap = s};
    kv_iter *it;
    int lo = 0, hi = NK, pos;
    char probe[32];
    if (rnd(3) == 0) { /* bounds: keys of the universe, or a prefix range */
        lo = (int)rnd(NK);
        hi = lo + (int)rnd(NK - (uint32_t)lo) + 1;
        o.lower = K(lo);
        if (hi < NK)
            o.upper = K(hi);
    }
    if (kv_iter_open(db, &o, &it) != WR_OK)
        FAIL("kv_iter_open: %s", wr_errmsg());
    switch (rnd(4)) {
    case 0:
        if (kv_iter_seek_first(it) != WR_OK)
            FAIL("seek_first: %s", wr_errmsg());
        pos = m_next(r, lo, lo, hi);
        break;
    case 1:
        if (kv_iter_seek_last(it) != WR_OK)
            FAIL("seek_last: %s", wr_errmsg());
        pos = m_prev(r, hi - 1, lo, hi);
        break;
    case 2: { /* a key of the universe */
        int k = (int)rnd(NK);
        if (kv_iter_seek(it, K(k)) != WR_OK)
            FAIL("seek: %s", wr_errmsg());
        pos = m_next(r, k, lo, hi);
        break;
    }
    default: { /* a key between keys of the universe */
        int k = (int)rnd(NK), first = NK;
        snprintf(probe, sizeof(probe), "%s!", keys[k]);
        for (int i = 0; i < NK; i++)
            if (strcmp(keys[i], probe) >= 0) {
                first = i;
                break;
            }
        if (kv_iter_seek(it, wr_bytes_str(probe)) != WR_OK)
            FAIL("seek: %s", wr_errmsg());
        pos = m_next(r, first, lo, hi);
    }
    }
    expect_at(it, r, pos, "position");
    for (int i = 0; i < 40 && pos != NK; i++) {
        bool fwd = rnd(3) != 0;
        if (fwd) {
            if (kv_iter_next(it) != WR_OK)
                FAIL("next: %s", wr_errmsg());
            pos = m_next(r, pos + 1, lo, hi);
        } else {
            if (kv_iter_prev(it) != WR_OK)
                FAIL("prev: %s", wr_errmsg());
            pos = pos == 0 ? NK : m_prev(r, pos - 1, lo, hi);
        }
        expect_at(it, r, pos, fwd ? "next" : "prev");
    }
    kv_iter_close(it);
}

/* Full scans both ways. */
static void check_scan(kv_db *db, const kv_snapshot *s, const ref *r)
{
    kv_iter_opts o = {.snap = s};
    kv_iter *it;
    int pos;
    if (kv_iter_open(db, &o, &it) != WR_OK)
        FAIL("kv_iter_open: %s", wr_errmsg());
    assert_int_equal(kv_iter_seek_first(it), WR_OK);
    for (pos = m_next(r, 0, 0, NK); pos != NK; pos = m_next(r, pos + 1, 0, NK)) {
        expect_at(it, r, pos, "scan");
        assert_int_equal(kv_iter_next(it), WR_OK);
    }
    expect_at(it, r, NK, "scan end");
    assert_int_equal(kv_iter_seek_last(it), WR_OK);
    for (pos = m_prev(r, NK - 1, 0, NK); pos != NK; pos = pos ? m_prev(r, pos - 1, 0, NK) : NK) {
        expect_at(it, r, pos, "reverse scan");
        assert_int_equal(kv_iter_prev(it), WR_OK);
    }
    expect_at(it, r, NK, "reverse scan end");
    kv_iter_close(it);
}

static void run_seed(unsigned s, unsigned ops)
{
    static char val[8192];
    static ref snapref[NSNAP];
    ref cur = {0};
    kv_snapshot *snap[NSNAP] = {0};
    kv_db *db;
    kv_batch *b;
    char cmd[128];

    seed = s;
    step = 0;
    rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)s * 0x2545f4914f6cdd1dull);
    snprintf(dir, sizeof(dir), "/tmp/test_kv_model.XXXXXX");
    assert_non_null(mkdtemp(dir));
    db = open_db();
    assert_int_equal(kv_batch_create(&b), WR_OK);
    for (step = 0; step < ops; step++) {
        uint32_t op = rnd(100);
        int k = (int)rnd(NK);
        if (op < 40) {
            size_t n = make_value(val, k);
            if (kv_put(db, K(k), wr_bytes_of(val, n)) != WR_OK)
                FAIL("put: %s", wr_errmsg());
            ref_set(&cur, k, val, n);
        } else if (op < 55) {
            if (kv_delete(db, K(k)) != WR_OK)
                FAIL("delete: %s", wr_errmsg());
            ref_set(&cur, k, NULL, 0);
        } else if (op < 62) { /* a batch, sometimes a range of deletes; later entries win */
            ref next = {0};
            ref_copy(&next, &cur);
            kv_batch_clear(b);
            for (uint32_t i = 0, n = 1 + rnd(20); i < n; i++) {
                int kk = rnd(2) ? (k + (int)i) % NK : (int)rnd(NK);
                if (rnd(3) == 0) {
                    assert_int_equal(kv_batch_delete(b, K(kk)), WR_OK);
                    ref_set(&next, kk, NULL, 0);
                } else {
                    size_t vn = make_value(val, kk);
                    assert_int_equal(kv_batch_put(b, K(kk), wr_bytes_of(val, vn)), WR_OK);
                    ref_set(&next, kk, val, vn);
                }
            }
            if (kv_write(db, b) != WR_OK)
                FAIL("write: %s", wr_errmsg());
            ref_free(&cur);
            cur = next;
        } else if (op < 72) {
            int si = (int)rnd(NSNAP + 1);
            bool multi = rnd(3) == 0;
            if (si < NSNAP && snap[si]) {
                if (multi)
                    check_multi_get(db, snap[si], &snapref[si]);
                else
                    check_get(db, snap[si], &snapref[si], k);
            } else if (multi) {
                check_multi_get(db, NULL, &cur);
            } else {
                check_get(db, NULL, &cur, k);
            }
        } else if (op < 82) {
            int si = (int)rnd(NSNAP + 1);
            if (si < NSNAP && snap[si])
                check_iter(db, snap[si], &snapref[si]);
            else
                check_iter(db, NULL, &cur);
        } else if (op < 87) { /* take or release a snapshot */
            int si = (int)rnd(NSNAP);
            if (snap[si]) {
                check_scan(db, snap[si], &snapref[si]);
                kv_snapshot_release(db, snap[si]);
                snap[si] = NULL;
                ref_free(&snapref[si]);
            } else {
                assert_int_equal(kv_snapshot_take(db, &snap[si]), WR_OK);
                ref_copy(&snapref[si], &cur);
            }
        } else if (op < 89) {
            if (kv_flush(db) != WR_OK)
                FAIL("flush: %s", wr_errmsg());
        } else if (op < 90) {
            if (kv_compact_all(db) != WR_OK)
                FAIL("compact_all: %s", wr_errmsg());
            for (int si = 0; si < NSNAP; si++)
                if (snap[si])
                    check_scan(db, snap[si], &snapref[si]);
            check_scan(db, NULL, &cur);
        } else if (op < 91) { /* reopen: snapshots do not outlive the handle */
            for (int si = 0; si < NSNAP; si++) {
                kv_snapshot_release(db, snap[si]);
                snap[si] = NULL;
                ref_free(&snapref[si]);
            }
            kv_close(db);
            db = open_db();
            check_scan(db, NULL, &cur);
        } else if (op < 93) {
            check_scan(db, NULL, &cur);
        } else { /* overwrite a hot key: many versions of one key across files */
            size_t n = make_value(val, 7);
            if (kv_put(db, K(7), wr_bytes_of(val, n)) != WR_OK)
                FAIL("put: %s", wr_errmsg());
            ref_set(&cur, 7, val, n);
        }
    }
    check_scan(db, NULL, &cur);
    for (int si = 0; si < NSNAP; si++) {
        if (snap[si])
            check_scan(db, snap[si], &snapref[si]);
        kv_snapshot_release(db, snap[si]);
        ref_free(&snapref[si]);
    }
    kv_batch_destroy(b);
    kv_close(db);
    ref_free(&cur);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static unsigned env_u(const char *name, unsigned def)
{
    const char *e = getenv(name);
    return e && *e ? (unsigned)strtoul(e, NULL, 10) : def;
}

static void test_random_sequences_match_the_model(void **state)
{
    unsigned first = env_u("WEIR_KV_MODEL_SEED", 1), n = env_u("WEIR_KV_MODEL_SEEDS", 3);
    unsigned ops = env_u("WEIR_KV_MODEL_OPS", 6000);
    (void)state;
    make_keys();
    for (unsigned s = first; s < first + n; s++)
        run_seed(s, ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_sequences_match_the_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

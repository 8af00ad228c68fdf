/* tests/kv/test_kv_sst.c -- table files against a reference: 100k random user keys with 1-3
 * versions each (a fifth of them tombstones), built with zstd off and on, then every key read at
 * several snapshots, full iteration both ways, random seeks with steps; concurrent gets; then
 * damage: bit flips in every block kind (data, filter, properties, index, footer) give an error
 * naming the file and the offset (from open, iteration or kv_sst_verify), truncations, unknown
 * versions, out-of-order adds and abandoned builders. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_sst.h"

/* ---------------------------------------------------------------- scratch directory */
#define KVT_NAME "sst"
#include "kvt_util.h"

/* ---------------------------------------------------------------- reference */
static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct ref_ent {
    size_t koff, voff; /* in ref.keys / ref.vals */
    uint32_t klen, vlen;
    uint32_t user;
} ref_ent;

typedef struct ref {
    wr_buf keys, vals;
    ref_ent *e;
    size_t n;
    size_t *ufirst; /* entries of user u: [ufirst[u], ufirst[u + 1]) */
    size_t ucnt;
} ref;

static wr_bytes rkey(const ref *r, size_t i)
{
    return wr_bytes_of(r->keys.ptr + r->e[i].koff, r->e[i].klen);
}

static wr_bytes rval(const ref *r, size_t i)
{
    return wr_bytes_of(r->vals.ptr + r->e[i].voff, r->e[i].vlen);
}

static wr_bytes ruser(const ref *r, size_t u)
{
    return kv_ikey_user(rkey(r, r->ufirst[u]));
}

typedef struct ukey {
    char s[32];
    uint8_t len;
} ukey;

static int ukey_cmp(const void *a, const void *b)
{
    const ukey *x = a, *y = b;
    return wr_bytes_cmp(wr_bytes_of(x->s, x->len), wr_bytes_of(y->s, y->len));
}

static void rand_ukey(uint64_t *s, ukey *k)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789/";
    k->len = (uint8_t)(4 + rng(s) % 20);
    for (int j = 0; j < k->len; j++)
        k->s[j] = al[rng(s) % (sizeof al - 1)];
}

static void ref_make(ref *r, size_t want, uint64_t seed)
{
    ukey *u = malloc(want * sizeof(*u));
    uint64_t s = seed;
    size_t cnt = 0, cap = want * 3 + 1;

    memset(r, 0, sizeof(*r));
    assert_non_null(u);
    for (size_t i = 0; i < want; i++)
        rand_ukey(&s, &u[i]);
    qsort(u, want, sizeof(*u), ukey_cmp);
    for (size_t i = 0; i < want; i++) /* dedupe */
        if (cnt == 0 || ukey_cmp(&u[cnt - 1], &u[i]) != 0)
            u[cnt++] = u[i];
    r->e = malloc(cap * sizeof(*r->e));
    r->ufirst = malloc((cnt + 1) * sizeof(size_t));
    assert_non_null(r->e);
    assert_non_null(r->ufirst);
    for (size_t i = 0; i < cnt; i++) {
        uint64_t seqs[3];
        unsigned v = 1 + (unsigned)(rng(&s) % 3);
        for (unsigned j = 0; j < v; j++) /* distinct, descending */
            seqs[j] = 1 + rng(&s) % 1000000;
        for (unsigned a = 0; a < v; a++)
            for (unsigned b = a + 1; b < v; b++)
                if (seqs[b] > seqs[a]) {
                    uint64_t t = seqs[a];
                    seqs[a] = seqs[b];
                    seqs[b] = t;
                }
        if ((v > 1 && seqs[0] == seqs[1]) || (v > 2 && seqs[1] == seqs[2]))
            v = 1;
        r->ufirst[i] = r->n;
        for (unsigned j = 0; j < v; j++) {
            ref_ent *e = &r->e[r->n++];
            kv_type t = rng(&s) % 5 == 0 ? KV_TYPE_DEL : KV_TYPE_PUT;
            uint8_t ik[64];
            char pat[64];
            int pl = snprintf(pat, sizeof pat, "value of %.*s at %llu; ", u[i].len, u[i].s,
                              (unsigned long long)seqs[j]);
            uint32_t vl = t == KV_TYPE_PUT ? (uint32_t)(rng(&s) % 200) : 0;
            e->klen = (uint32_t)kv_ikey_put(ik, wr_bytes_of(u[i].s, u[i].len), seqs[j], t);
            e->koff = r->keys.len;
            assert_int_equal(wr_buf_append(&r->keys, ik, e->klen), WR_OK);
            e->voff = r->vals.len;
            e->vlen = vl;
            for (uint32_t k = 0; k < vl; k++) /* repetitive, so zstd has something to do */
                assert_int_equal(wr_buf_append(&r->vals, &pat[k % (uint32_t)pl], 1), WR_OK);
            e->user = (uint32_t)i;
        }
    }
    r->ufirst[cnt] = r->n;
    r->ucnt = cnt;
    free(u);
}

static void ref_free(ref *r)
{
    wr_buf_fini(&r->keys);
    wr_buf_fini(&r->vals);
    free(r->e);
    free(r->ufirst);
}

/* The reference answer for (user u, snapshot): entry index or SIZE_MAX. */
static size_t ref_get(const ref *r, size_t u, uint64_t snap)
{
    for (size_t i = r->ufirst[u]; i < r->ufirst[u + 1]; i++)
        if (kv_ikey_seq(rkey(r, i)) <= snap)
            return i;
    return SIZE_MAX;
}

/* First entry >= @t (r->n when none). */
static size_t ref_lower_bound(const ref *r, wr_bytes t)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kv_ikey_cmp(rkey(r, mid), t) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void build_table(const char *path, const ref *r, const kv_sst_opts *o, kv_sst_props *p,
                        uint64_t *len)
{
    kv_sst_builder *b;
    assert_int_equal(kv_sst_builder_open(path, o, &b), WR_OK);
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(kv_sst_builder_add(b, rkey(r, i), rval(r, i)), WR_OK);
    assert_int_equal(kv_sst_builder_entry_cnt(b), r->n);
    assert_int_equal(kv_sst_builder_finish(b, p, len), WR_OK);
}

static void check_get(const kv_sst *t, const ref *r, size_t u, uint64_t snap, wr_buf *val)
{
    size_t want = ref_get(r, u, snap);
    kv_found f;
    assert_int_equal(kv_sst_get(t, ruser(r, u), snap, val, &f), WR_OK);
    if (want == SIZE_MAX) {
        assert_int_equal(f, KV_FOUND_NONE);
    } else if (kv_ikey_type(rkey(r, want)) == KV_TYPE_DEL) {
        assert_int_equal(f, KV_FOUND_DEL);
    } else {
        assert_int_equal(f, KV_FOUND_PUT);
        assert_true(wr_bytes_eq(wr_bytes_of(val->ptr, val->len), rval(r, want)));
    }
}

static void check_at(const kv_sst_iter *it, const ref *r, size_t i)
{
    assert_true(kv_sst_iter_valid(it));
    assert_true(wr_bytes_eq(kv_sst_iter_key(it), rkey(r, i)));
    assert_true(wr_bytes_eq(kv_sst_iter_value(it), rval(r, i)));
}

static unsigned g_reports;
static void count_report(void *arg, wr_status st, uint64_t off, const char *msg)
{
    (void)arg;
    (void)st;
    (void)off;
    fprintf(stderr, "verify: %s\n", msg);
    g_reports++;
}

static void full_roundtrip(kv_compression comp)
{
    ref r;
    kv_sst_opts o;
    kv_sst_props p;
    const kv_sst_props *q;
    uint64_t len, s = 7, raw;
    kv_sst *t;
    kv_sst_iter *it;
    wr_buf val = {0};
    struct stat sb;
    const char *path = tpath(comp == KV_COMP_ZSTD ? "zstd.sst" : "raw.sst");
    uint8_t tk[64];
    wr_status st;
    size_t i;

    ref_make(&r, 100000, 42);
    kv_sst_opts_init(&o);
    o.compression = comp;
    build_table(path, &r, &o, &p, &len);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, len);
    raw = r.keys.len + r.vals.len;
    printf("sst %s: %zu entries, %zu user keys, %llu data blocks, %llu bytes (raw %llu)\n",
           comp == KV_COMP_ZSTD ? "zstd" : "raw", r.n, r.ucnt, (unsigned long long)p.data_block_cnt,
           (unsigned long long)len, (unsigned long long)raw);
    if (comp == KV_COMP_ZSTD)
        assert_true(len < raw / 2);
    else
        assert_true(len < raw); /* prefix compression alone */

    assert_int_equal(kv_sst_open(path, &t), WR_OK);
    q = kv_sst_properties(t);
    assert_int_equal(q->entry_cnt, r.n);
    assert_int_equal(p.entry_cnt, r.n);
    assert_int_equal(q->data_block_cnt, p.data_block_cnt);
    assert_true(q->data_block_cnt > 100);
    assert_int_equal(q->raw_key_len, r.keys.len);
    assert_int_equal(q->raw_val_len, r.vals.len);
    assert_int_equal(q->created_ms, p.created_ms);
    assert_int_equal(q->bloom_bits_per_key, 10);
    assert_true(wr_bytes_eq(wr_bytes_of(q->smallest.ptr, q->smallest.len), rkey(&r, 0)));
    assert_true(wr_bytes_eq(wr_bytes_of(q->largest.ptr, q->largest.len), rkey(&r, r.n - 1)));
    {
        uint64_t dels = 0, mn = UINT64_MAX, mx = 0;
        for (i = 0; i < r.n; i++) {
            uint64_t sq = kv_ikey_seq(rkey(&r, i));
            dels += kv_ikey_type(rkey(&r, i)) == KV_TYPE_DEL;
            mn = sq < mn ? sq : mn;
            mx = sq > mx ? sq : mx;
        }
        assert_int_equal(q->del_cnt, dels);
        assert_int_equal(q->min_seq, mn);
        assert_int_equal(q->max_seq, mx);
        assert_true(dels > r.n / 10);
    }
    kv_sst_props_fini(&p);
    assert_int_equal(kv_sst_file_len(t), len);

    /* every user key at the latest snapshot, at a fixed older one, and exactly at and just
     * below one of its own versions */
    for (size_t u = 0; u < r.ucnt; u++) {
        size_t nv = r.ufirst[u + 1] - r.ufirst[u];
        uint64_t vs = kv_ikey_seq(rkey(&r, r.ufirst[u] + rng(&s) % nv));
        check_get(t, &r, u, KV_SEQ_MAX, &val);
        check_get(t, &r, u, 500000, &val);
        check_get(t, &r, u, vs, &val);
        check_get(t, &r, u, vs - 1, &val);
    }
    /* absent keys: mostly stopped by the filter, the rest by the block */
    for (i = 0; i < 20000; i++) {
        ukey k;
        kv_found f;
        rand_ukey(&s, &k);
        k.s[0] = 'A'; /* outside the key alphabet's first letter set: never present */
        assert_int_equal(kv_sst_get(t, wr_bytes_of(k.s, k.len), KV_SEQ_MAX, &val, &f), WR_OK);
        assert_int_equal(f, KV_FOUND_NONE);
    }

    /* full iteration both ways */
    assert_int_equal(kv_sst_iter_create(t, &it), WR_OK);
    for (i = 0, st = kv_sst_iter_first(it); st == WR_OK; st = kv_sst_iter_next(it), i++)
        check_at(it, &r, i);
    assert_int_equal(st, WR_EOF);
    assert_int_equal(i, r.n);
    for (i = r.n, st = kv_sst_iter_last(it); st == WR_OK; st = kv_sst_iter_prev(it))
        check_at(it, &r, --i);
    assert_int_equal(st, WR_EOF);
    assert_int_equal(i, 0);

    /* seeks: exact keys, user keys at random snapshots, random keys; then step both ways */
    for (unsigned n = 0; n < 20000; n++) {
        wr_bytes target;
        size_t want;
        switch (n % 3) {
        case 0:
            target = rkey(&r, rng(&s) % r.n);
            break;
        case 1: {
            wr_bytes uk = ruser(&r, rng(&s) % r.ucnt);
            target = wr_bytes_of(tk, kv_ikey_put(tk, uk, rng(&s) % 1100000, KV_TYPE_SEEK));
            break;
        }
        default: {
            ukey k;
            rand_ukey(&s, &k);
            target =
                wr_bytes_of(tk, kv_ikey_put(tk, wr_bytes_of(k.s, k.len), KV_SEQ_MAX, KV_TYPE_SEEK));
        }
        }
        want = ref_lower_bound(&r, target);
        st = kv_sst_iter_seek(it, target);
        if (want == r.n) {
            assert_int_equal(st, WR_EOF);
            continue;
        }
        assert_int_equal(st, WR_OK);
        check_at(it, &r, want);
        if (n % 2) {
            st = kv_sst_iter_next(it);
            if (want + 1 < r.n)
                check_at(it, &r, want + 1);
            else
                assert_int_equal(st, WR_EOF);
        } else {
            st = kv_sst_iter_prev(it);
            if (want > 0)
                check_at(it, &r, want - 1);
            else
                assert_int_equal(st, WR_EOF);
        }
    }
    /* past both ends */
    assert_int_equal(kv_sst_iter_seek(it, wr_bytes_of(tk, kv_ikey_put(tk, wr_bytes_str("~~~~"), 1,
                                                                      KV_TYPE_SEEK))),
                     WR_EOF);
    assert_int_equal(
        kv_sst_iter_seek(it, wr_bytes_of(tk, kv_ikey_put(tk, wr_bytes_str(""), 1, KV_TYPE_SEEK))),
        WR_OK);
    check_at(it, &r, 0);
    kv_sst_iter_destroy(it);
    kv_sst_close(t);
    wr_buf_fini(&val);

    g_reports = 0;
    assert_int_equal(kv_sst_verify(path, count_report, NULL), WR_OK);
    assert_int_equal(g_reports, 0);
    ref_free(&r);
}

static void test_100k_keys_raw(void **state)
{
    (void)state;
    full_roundtrip(KV_COMP_NONE);
}

static void test_100k_keys_zstd(void **state)
{
    (void)state;
    full_roundtrip(KV_COMP_ZSTD);
}

/* ---------------------------------------------------------------- concurrency */
typedef struct get_job {
    const kv_sst *t;
    const ref *r;
    uint64_t seed;
    int bad;
} get_job;

static void *get_worker(void *arg)
{
    get_job *j = arg;
    wr_buf val = {0};
    kv_sst_iter *it;

    if (kv_sst_iter_create(j->t, &it) != WR_OK) {
        j->bad++;
        return NULL;
    }
    for (unsigned n = 0; n < 20000; n++) {
        size_t u = rng(&j->seed) % j->r->ucnt, want = ref_get(j->r, u, KV_SEQ_MAX);
        kv_found f;
        if (kv_sst_get(j->t, ruser(j->r, u), KV_SEQ_MAX, &val, &f) != WR_OK ||
            (want == SIZE_MAX) != (f == KV_FOUND_NONE))
            j->bad++;
        else if (f == KV_FOUND_PUT && !wr_bytes_eq(wr_bytes_of(val.ptr, val.len), rval(j->r, want)))
            j->bad++;
        if (kv_sst_iter_seek(it, rkey(j->r, j->r->ufirst[u])) != WR_OK ||
            !wr_bytes_eq(kv_sst_iter_key(it), rkey(j->r, j->r->ufirst[u])))
            j->bad++;
    }
    kv_sst_iter_destroy(it);
    wr_buf_fini(&val);
    return NULL;
}

static void test_concurrent_gets_and_iterators(void **state)
{
    ref r;
    kv_sst *t;
    pthread_t th[4];
    get_job jobs[4];
    (void)state;

    ref_make(&r, 20000, 9);
    build_table(tpath("conc.sst"), &r, NULL, NULL, NULL);
    assert_int_equal(kv_sst_open(tpath("conc.sst"), &t), WR_OK);
    for (int i = 0; i < 4; i++) {
        jobs[i] = (get_job){t, &r, (uint64_t)i + 100, 0};
        assert_int_equal(pthread_create(&th[i], NULL, get_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].bad, 0);
    }
    kv_sst_close(t);
    ref_free(&r);
}

/* ---------------------------------------------------------------- small cases */
static wr_bytes ik(uint8_t *buf, const char *uk, uint64_t seq, kv_type t)
{
    return wr_bytes_of(buf, kv_ikey_put(buf, wr_bytes_str(uk), seq, t));
}

static void test_out_of_order_add_is_inval(void **state)
{
    kv_sst_builder *b;
    kv_sst *t;
    uint8_t k[64];
    wr_buf val = {0};
    kv_found f;
    kv_sst_props p;
    (void)state;

    assert_int_equal(kv_sst_builder_open(tpath("order.sst"), NULL, &b), WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "b", 5, KV_TYPE_PUT), wr_bytes_str("b5")), WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "b", 5, KV_TYPE_PUT), wr_bytes_str("x")),
                     WR_ERR_INVAL); /* duplicate */
    assert_int_equal(kv_sst_builder_add(b, ik(k, "b", 6, KV_TYPE_PUT), wr_bytes_str("x")),
                     WR_ERR_INVAL); /* newer version after an older one */
    assert_int_equal(kv_sst_builder_add(b, ik(k, "a", 9, KV_TYPE_PUT), wr_bytes_str("x")),
                     WR_ERR_INVAL); /* smaller user key */
    assert_non_null(strstr(wr_errmsg(), "order.sst"));
    assert_int_equal(kv_sst_builder_add(b, wr_bytes_str("short"), wr_bytes_str("x")),
                     WR_ERR_INVAL); /* not an internal key */
    /* the builder is still usable */
    assert_int_equal(kv_sst_builder_add(b, ik(k, "b", 4, KV_TYPE_DEL), wr_bytes_str("")), WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "c", 1, KV_TYPE_PUT), wr_bytes_str("c1")), WR_OK);
    assert_int_equal(kv_sst_builder_finish(b, &p, NULL), WR_OK);
    assert_int_equal(p.entry_cnt, 3);
    assert_int_equal(p.del_cnt, 1);
    assert_int_equal(p.min_seq, 1);
    assert_int_equal(p.max_seq, 5);
    kv_sst_props_fini(&p);
    assert_int_equal(kv_sst_open(tpath("order.sst"), &t), WR_OK);
    assert_int_equal(kv_sst_get(t, wr_bytes_str("b"), 10, &val, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_PUT);
    assert_true(wr_bytes_eq(wr_bytes_of(val.ptr, val.len), wr_bytes_str("b5")));
    assert_int_equal(kv_sst_get(t, wr_bytes_str("b"), 4, &val, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_DEL);
    assert_int_equal(kv_sst_get(t, wr_bytes_str("b"), 3, &val, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_NONE);
    assert_int_equal(kv_sst_get(t, wr_bytes_str("c"), 0, &val, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_NONE);
    kv_sst_close(t);
    wr_buf_fini(&val);
}

static void test_abandon_removes_file_and_create_refuses_existing(void **state)
{
    kv_sst_builder *b, *b2;
    struct stat sb;
    uint8_t k[64];
    (void)state;

    assert_int_equal(kv_sst_builder_open(tpath("gone.sst"), NULL, &b), WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "a", 1, KV_TYPE_PUT), wr_bytes_str("x")), WR_OK);
    assert_int_equal(kv_sst_builder_open(tpath("gone.sst"), NULL, &b2), WR_ERR_EXISTS);
    assert_null(b2);
    kv_sst_builder_abandon(b);
    assert_int_equal(stat(tpath("gone.sst"), &sb), -1);
    kv_sst_builder_abandon(NULL);
}

static void test_empty_table_and_big_values(void **state)
{
    kv_sst_builder *b;
    kv_sst *t;
    kv_sst_iter *it;
    kv_sst_opts o;
    uint8_t k[64];
    wr_buf val = {0};
    kv_found f;
    uint8_t *big = malloc(3 << 20);
    (void)state;

    assert_non_null(big);
    assert_int_equal(kv_sst_builder_open(tpath("empty.sst"), NULL, &b), WR_OK);
    assert_int_equal(kv_sst_builder_finish(b, NULL, NULL), WR_OK);
    assert_int_equal(kv_sst_open(tpath("empty.sst"), &t), WR_OK);
    assert_int_equal(kv_sst_properties(t)->entry_cnt, 0);
    assert_int_equal(kv_sst_get(t, wr_bytes_str("a"), KV_SEQ_MAX, &val, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_NONE);
    assert_int_equal(kv_sst_iter_create(t, &it), WR_OK);
    assert_int_equal(kv_sst_iter_first(it), WR_EOF);
    assert_int_equal(kv_sst_iter_last(it), WR_EOF);
    assert_int_equal(kv_sst_iter_seek(it, ik(k, "a", 1, KV_TYPE_SEEK)), WR_EOF);
    kv_sst_iter_destroy(it);
    kv_sst_close(t);
    assert_int_equal(kv_sst_verify(tpath("empty.sst"), NULL, NULL), WR_OK);

    /* values far over the block size, without and with a filter, with zstd */
    for (size_t i = 0; i < (3u << 20); i++)
        big[i] = (uint8_t)(i * 7 / 1000);
    kv_sst_opts_init(&o);
    o.compression = KV_COMP_ZSTD;
    o.bloom_bits_per_key = 0;
    o.block_size = 256;
    o.restart_interval = 2;
    assert_int_equal(kv_sst_builder_open(tpath("big.sst"), &o, &b), WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "a", 3, KV_TYPE_PUT), wr_bytes_of(big, 3 << 20)),
                     WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "b", 2, KV_TYPE_PUT), wr_bytes_str("small")),
                     WR_OK);
    assert_int_equal(kv_sst_builder_add(b, ik(k, "c", 1, KV_TYPE_PUT), wr_bytes_of(big + 1, 70000)),
                     WR_OK);
    assert_int_equal(kv_sst_builder_finish(b, NULL, NULL), WR_OK);
    assert_int_equal(kv_sst_open(tpath("big.sst"), &t), WR_OK);
    assert_true(kv_sst_may_contain(t, wr_bytes_str("zzz"))); /* no filter */
    assert_int_equal(kv_sst_get(t, wr_bytes_str("a"), KV_SEQ_MAX, &val, &f), WR_OK);
    assert_int_equal(f, KV_FOUND_PUT);
    assert_true(wr_bytes_eq(wr_bytes_of(val.ptr, val.len), wr_bytes_of(big, 3 << 20)));
    assert_int_equal(kv_sst_get(t, wr_bytes_str("c"), KV_SEQ_MAX, &val, &f), WR_OK);
    assert_true(wr_bytes_eq(wr_bytes_of(val.ptr, val.len), wr_bytes_of(big + 1, 70000)));
    kv_sst_close(t);
    assert_int_equal(kv_sst_verify(tpath("big.sst"), NULL, NULL), WR_OK);
    wr_buf_fini(&val);
    free(big);
}

/* ---------------------------------------------------------------- damage */
static wr_buf g_file;      /* the good table's bytes */
static char g_msg[1024];   /* the first report of the last verify */
static uint64_t g_msg_off; /* and its offset */

static void first_report(void *arg, wr_status st, uint64_t off, const char *msg)
{
    (void)arg;
    (void)st;
    if (g_reports++ == 0) {
        snprintf(g_msg, sizeof g_msg, "%s", msg);
        g_msg_off = off;
    }
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

typedef struct layout {
    kv_handle index, filter, props;
    kv_handle data[4]; /* first three and last data blocks */
    uint64_t foot;
} layout;

/* Find the blocks from the footer and the index, as docs/formats/sst.md describes them. */
static void read_layout(const wr_buf *f, layout *l)
{
    const uint8_t *ft = f->ptr + f->len - KV_SST_FOOTER;
    kv_block blk;
    kv_block_iter it;
    unsigned n = 0;
    wr_status st;

    l->foot = f->len - KV_SST_FOOTER;
    assert_int_equal(wr_get64(ft + 64), KV_SST_MAGIC);
    l->index = (kv_handle){wr_get64(ft), wr_get64(ft + 8)};
    l->filter = (kv_handle){wr_get64(ft + 16), wr_get64(ft + 24)};
    l->props = (kv_handle){wr_get64(ft + 32), wr_get64(ft + 40)};
    assert_int_equal(f->ptr[l->index.off + l->index.size], KV_COMP_NONE);
    assert_int_equal(kv_block_parse(f->ptr + l->index.off, l->index.size, &blk), WR_OK);
    kv_block_iter_init(&it, &blk);
    for (st = kv_block_iter_first(&it); st == WR_OK; st = kv_block_iter_next(&it), n++) {
        uint64_t off, size;
        size_t a = wr_get_uvarint(it.val.ptr, it.val.ptr + it.val.len, &off);
        assert_true(a > 0);
        assert_true(wr_get_uvarint(it.val.ptr + a, it.val.ptr + it.val.len, &size) > 0);
        if (n < 3)
            l->data[n] = (kv_handle){off, size};
        l->data[3] = (kv_handle){off, size};
    }
    assert_int_equal(st, WR_EOF);
    assert_true(n > 3);
    kv_block_iter_fini(&it);
}

/* Damage the byte at @at (xor @mask), then expect an error naming the file and, when @blk is
 * not UINT64_MAX, that block's offset: from open or a full iteration, and from verify. */
static void expect_damage(const char *path, size_t at, uint8_t mask, uint64_t blk)
{
    char want_off[64];
    kv_sst *t;
    kv_sst_iter *it;
    wr_status st;

    snprintf(want_off, sizeof want_off, "offset %llu", (unsigned long long)blk);
    g_file.ptr[at] ^= mask;
    write_file(path, g_file.ptr, g_file.len);
    g_file.ptr[at] ^= mask;

    st = kv_sst_open(path, &t);
    if (st == WR_OK) { /* only data blocks are not read at open: iteration must trip */
        assert_int_equal(kv_sst_iter_create(t, &it), WR_OK);
        for (st = kv_sst_iter_first(it); st == WR_OK; st = kv_sst_iter_next(it))
            ;
        kv_sst_iter_destroy(it);
        kv_sst_close(t);
    }
    assert_true(st == WR_ERR_CORRUPT || st == WR_ERR_UNSUPPORTED);
    assert_non_null(strstr(wr_errmsg(), path));
    assert_non_null(strstr(wr_errmsg(), blk == UINT64_MAX ? "offset " : want_off));

    g_reports = 0;
    g_msg[0] = '\0';
    st = kv_sst_verify(path, first_report, NULL);
    assert_true(st == WR_ERR_CORRUPT || st == WR_ERR_UNSUPPORTED);
    assert_true(g_reports > 0);
    assert_non_null(strstr(g_msg, path));
    if (blk != UINT64_MAX) {
        assert_non_null(strstr(g_msg, want_off));
        assert_int_equal(g_msg_off, blk);
    }
}

static void damage_block(const char *path, kv_handle h)
{
    /* first byte, middle, last content byte, the type byte, first and last checksum bytes */
    const uint64_t at[] = {0, h.size / 2, h.size - 1, h.size, h.size + 1, h.size + 8};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        for (int bit = 0; bit < 8; bit += 3)
            expect_damage(path, (size_t)(h.off + at[i]), (uint8_t)(1u << bit), h.off);
}

static void damage_all_kinds(kv_compression comp)
{
    ref r;
    kv_sst_opts o;
    layout l;
    const char *good = tpath("good.sst"), *bad = tpath("bad.sst");
    (void)comp;

    ref_make(&r, 3000, 5);
    kv_sst_opts_init(&o);
    o.compression = comp;
    o.block_size = 1024;
    build_table(good, &r, &o, NULL, NULL);
    assert_int_equal(wr_file_read(good, &g_file), WR_OK);
    read_layout(&g_file, &l);
    for (int i = 0; i < 4; i++)
        damage_block(bad, l.data[i]);
    damage_block(bad, l.filter);
    damage_block(bad, l.props);
    damage_block(bad, l.index);
    for (size_t i = 0; i < KV_SST_FOOTER; i++) /* every footer byte */
        for (int bit = 0; bit < 8; bit += 7)
            expect_damage(bad, (size_t)(l.foot + i), (uint8_t)(1u << bit), UINT64_MAX);
    unlink(good);
    unlink(bad);
    wr_buf_fini(&g_file);
    ref_free(&r);
}

static void test_bit_flips_in_every_block_kind_name_file_and_offset(void **state)
{
    (void)state;
    damage_all_kinds(KV_COMP_NONE);
    damage_all_kinds(KV_COMP_ZSTD);
}

static void test_truncation_bad_magic_and_newer_version(void **state)
{
    ref r;
    const char *good = tpath("t.sst"), *bad = tpath("t-bad.sst");
    kv_sst *t;
    uint8_t *ft;
    (void)state;

    ref_make(&r, 500, 3);
    build_table(good, &r, NULL, NULL, NULL);
    assert_int_equal(wr_file_read(good, &g_file), WR_OK);
    {
        const size_t cuts[] = {
            0, 10, KV_SST_FOOTER - 1, KV_SST_FOOTER, g_file.len / 2, g_file.len - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            write_file(bad, g_file.ptr, cuts[i]);
            assert_int_equal(kv_sst_open(bad, &t), WR_ERR_CORRUPT);
            assert_non_null(strstr(wr_errmsg(), bad));
            assert_non_null(strstr(wr_errmsg(), "offset"));
            assert_int_equal(kv_sst_verify(bad, NULL, NULL), WR_ERR_CORRUPT);
        }
    }
    ft = g_file.ptr + g_file.len - KV_SST_FOOTER;
    /* a newer version, checksum and all: unsupported, not corrupt */
    wr_put32(ft + 48, 2);
    wr_put64(ft + 56, wr_xxh3(ft, 56));
    write_file(bad, g_file.ptr, g_file.len);
    assert_int_equal(kv_sst_open(bad, &t), WR_ERR_UNSUPPORTED);
    assert_non_null(strstr(wr_errmsg(), bad));
    assert_non_null(strstr(wr_errmsg(), "version 2"));
    /* not an SST at all */
    wr_put32(ft + 48, KV_SST_VERSION);
    wr_put64(ft + 56, wr_xxh3(ft, 56));
    memcpy(ft + 64, "WRONGMAG", 8);
    write_file(bad, g_file.ptr, g_file.len);
    assert_int_equal(kv_sst_open(bad, &t), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "bad magic"));
    assert_int_equal(kv_sst_open(tpath("missing.sst"), &t), WR_ERR_NOTFOUND);
    wr_buf_fini(&g_file);
    ref_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_100k_keys_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100k_keys_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_gets_and_iterators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_add_is_inval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon_removes_file_and_create_refuses_existing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_table_and_big_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flips_in_every_block_kind_name_file_and_offset,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_bad_magic_and_newer_version, setup,
                                        teardown),
    };
    wr_log_set_level(WR_LOG_ERROR); /* damaged input logs a WARN per WR_CORRUPT() */
    return cmocka_run_group_tests_name("kv_sst", tests, NULL, NULL);
}

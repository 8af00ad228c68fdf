/* tests/vec/test_vec_live.c -- the index under live writes: exact search before training and
 * automatic training at the threshold; upserts that replace; deletes that never come back
 * (exact mode, IVF mode, after list compaction, after retraining); filters (agent, key prefix,
 * time range) that still return k results, all matching; the three metrics at dims 128 and
 * 384 against brute force; partitions (fan-out equals one partition); searches running while
 * a background retraining swaps the index; bad input refused with a clear error. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vt_util.h"

enum { D = 32, K = 10 };

static vec_index *open_mem(uint32_t dim, vec_metric met, uint64_t threshold, bool background,
                           uint32_t parts)
{
    vec_options o;
    vec_options_init(&o);
    o.dim = dim;
    o.metric = met;
    o.nlist = 32;
    o.m = dim / 4;
    o.train_threshold = threshold;
    o.background = background;
    o.partitions = parts;
    vec_index *ix;
    assert_int_equal(vec_open(NULL, &o, &ix), WR_OK);
    return ix;
}

static uint32_t search(vec_index *ix, const float *q, uint32_t nprobe, bool exact,
                       const vec_filter *f, vec_hit *hits)
{
    vec_query o;
    vec_query_init(&o);
    o.k = K;
    o.nprobe = nprobe;
    o.exact = exact;
    o.filter = f;
    uint32_t n;
    assert_int_equal(vec_search(ix, q, &o, hits, &n), WR_OK);
    return n;
}

static void test_exact_then_auto_train(void **state)
{
    (void)state;
    size_t n = 6000;
    float *x = vt_clustered(1, n, D, 20, 0.3f, 0);
    vec_index *ix = open_mem(D, VEC_L2, 4000, true, 1);
    vt_insert(ix, 0, x, 3000, D, "k", 0);
    vec_stats s;
    vec_get_stats(ix, &s);
    assert_false(s.trained);
    assert_int_equal(s.live, 3000);
    /* untrained: every search is exact, whatever nprobe says */
    long gt[K];
    vec_hit hits[K];
    for (size_t qi = 0; qi < 20; qi++) {
        const float *q = x + (n - 1 - qi) * D;
        vt_truth(x, 3000, q, 1, D, K, gt);
        assert_int_equal(search(ix, q, 1, false, NULL, hits), K);
        for (size_t j = 0; j < K; j++)
            assert_int_equal(vt_row(hits[j].key), gt[j]);
    }
    /* crossing the threshold starts training in the background */
    vt_insert(ix, 0, x + 3000 * D, 3000, D, "k", 3000);
    vec_wait_idle(ix);
    vec_get_stats(ix, &s);
    assert_true(s.trained);
    assert_int_equal(s.quant_version, 1);
    assert_int_equal(s.nlist, 32);
    assert_int_equal(s.live, 6000);
    /* every vector is in a list: a full probe finds each vector as its own nearest */
    for (size_t i = 0; i < n; i += 97) {
        assert_int_equal(search(ix, x + i * D, 32, false, NULL, hits), K);
        assert_true(vt_row(hits[0].key) == (long)i || hits[0].dist <= 1e-3f);
    }
    vec_close(ix);
    free(x);
}

static bool has_key(const vec_hit *h, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(h[i].key, key) == 0)
            return true;
    return false;
}

static void test_deletes_never_return(void **state)
{
    (void)state;
    size_t n = 8000;
    float *x = vt_clustered(2, n, D, 16, 0.3f, 0);
    vec_index *ix = open_mem(D, VEC_L2, 4000, false, 1);
    vt_insert(ix, 0, x, n, D, "k", 0);
    char key[32];
    /* delete every third vector: enough to compact lists */
    for (size_t i = 0; i < n; i += 3) {
        vt_key(key, sizeof key, "k", i);
        assert_int_equal(vec_delete(ix, key), WR_OK);
    }
    assert_int_equal(vec_delete(ix, "k0"), WR_ERR_NOTFOUND);
    vec_stats s;
    vec_get_stats(ix, &s);
    assert_int_equal(s.live, n - (n + 2) / 3);
    vec_hit hits[K];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i += 3) {
            /* query with the deleted vector itself: it must not come back, in any mode */
            for (int mode = 0; mode < 2; mode++) {
                uint32_t got = search(ix, x + i * D, 32, mode == 0, NULL, hits);
                assert_int_equal(got, K);
                for (uint32_t j = 0; j < got; j++)
                    assert_int_not_equal(vt_row(hits[j].key) % 3, 0);
            }
        }
        assert_int_equal(vec_train(ix, true), WR_OK); /* and again after a retraining */
    }
    /* a replaced key returns its new vector only */
    vt_key(key, sizeof key, "k", 1);
    const float *far = x + 2 * D;
    assert_int_equal(vec_upsert(ix, 0, key, far, NULL), WR_OK);
    uint32_t got = search(ix, x + 1 * D, 32, true, NULL, hits);
    for (uint32_t j = 0; j < got; j++)
        if (strcmp(hits[j].key, "k1") == 0)
            assert_true(hits[j].dist > 1e-6f); /* not its old vector */
    got = search(ix, far, 32, false, NULL, hits);
    assert_true(has_key(hits, got, "k1") && has_key(hits, got, "k2"));
    vec_get_stats(ix, &s);
    assert_int_equal(s.live, n - (n + 2) / 3);
    vec_close(ix);
    free(x);
}

static void test_filters_fill_k(void **state)
{
    (void)state;
    size_t n = 8000;
    float *x = vt_clustered(3, n, D, 16, 0.3f, 0);
    vec_index *ix = open_mem(D, VEC_L2, 4000, false, 1);
    const char *agents[] = {"planner", "critic", "coder", "rare"};
    enum { B = 500 };
    for (size_t i = 0; i < n; i += B) {
        char kb[B][32];
        const char *keys[B];
        vec_attr at[B];
        for (size_t j = 0; j < B; j++) {
            size_t r = i + j;
            snprintf(kb[j], sizeof kb[j], "%s/%zu", r % 2 ? "users/a" : "users/b", r);
            keys[j] = kb[j];
            /* "rare": 20 vectors only, spread over every list */
            at[j].agent = r % 400 == 7 ? agents[3] : agents[r % 3];
            at[j].time = (int64_t)r * 10;
        }
        assert_int_equal(vec_upsert_batch(ix, 0, B, keys, x + i * D, at), WR_OK);
    }
    vec_hit hits[K];
    for (size_t qi = 0; qi < 50; qi++) {
        const float *q = x + (qi * 131) * D;
        vec_filter f = {0};
        f.agent = "critic";
        uint32_t got = search(ix, q, 2, false, &f, hits);
        assert_int_equal(got, K);
        for (uint32_t j = 0; j < got; j++)
            assert_int_equal(vt_row(hits[j].key) % 3, 1);
        memset(&f, 0, sizeof f);
        f.key_prefix = "users/a/";
        got = search(ix, q, 2, false, &f, hits);
        assert_int_equal(got, K);
        for (uint32_t j = 0; j < got; j++)
            assert_int_equal(strncmp(hits[j].key, "users/a/", 8), 0);
        memset(&f, 0, sizeof f);
        f.time_min = 20000;
        f.time_max = 20990; /* rows 2000..2099 */
        got = search(ix, q, 2, false, &f, hits);
        assert_int_equal(got, K);
        for (uint32_t j = 0; j < got; j++) {
            long r = vt_row(hits[j].key);
            assert_true(r >= 2000 && r <= 2099);
        }
        /* a rare agent in lists nprobe=1 does not reach: still k results, all matching */
        memset(&f, 0, sizeof f);
        f.agent = "rare";
        got = search(ix, q, 1, false, &f, hits);
        assert_int_equal(got, K);
        for (uint32_t j = 0; j < got; j++)
            assert_int_equal(vt_row(hits[j].key) % 400, 7);
        /* combined, and an agent nobody has */
        memset(&f, 0, sizeof f);
        f.agent = "planner";
        f.key_prefix = "users/b/";
        got = search(ix, q, 2, false, &f, hits);
        assert_int_equal(got, K);
        for (uint32_t j = 0; j < got; j++) {
            assert_int_equal(vt_row(hits[j].key) % 6, 0);
        }
        f.agent = "nobody";
        assert_int_equal(search(ix, q, 2, false, &f, hits), 0);
    }
    vec_close(ix);
    free(x);
}

/* Brute-force distance in the index's convention. */
static double ref_dist(vec_metric m, const float *a, const float *b, size_t d)
{
    double s = 0, na = 0, nb = 0;
    for (size_t t = 0; t < d; t++) {
        if (m == VEC_L2)
            s += ((double)a[t] - (double)b[t]) * ((double)a[t] - (double)b[t]);
        else
            s += (double)a[t] * (double)b[t];
        na += (double)a[t] * (double)a[t];
        nb += (double)b[t] * (double)b[t];
    }
    if (m == VEC_IP)
        return -s;
    if (m == VEC_COSINE)
        return 1 - s / sqrt(na * nb);
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check_metric(vec_metric met, size_t d)
{
    size_t n = 3000;
    float *x = vt_clustered(4 + d, n, d, 10, 0.5f, 0.2f);
    vec_index *ix = open_mem((uint32_t)d, met, 1000000, true, 1);
    vt_insert(ix, 0, x, n, d, "", 0);
    vec_hit hits[K];
    double *all = malloc(n * sizeof(double));
    for (size_t qi = 0; qi < 10; qi++) {
        const float *q = x + (qi * 7 + 1) * d;
        assert_int_equal(search(ix, q, 0, true, NULL, hits), K);
        for (size_t i = 0; i < n; i++)
            all[i] = ref_dist(met, q, x + i * d, d);
        for (size_t j = 0; j < K; j++) {
            long r = vt_row(hits[j].key);
            assert_true(fabs((double)hits[j].dist - all[r]) <= 1e-3 * (1 + fabs(all[r])));
        }
        /* the j-th hit is the j-th smallest distance of all */
        qsort(all, n, sizeof(double), cmp_double);
        for (size_t j = 0; j < K; j++)
            assert_true(fabs((double)hits[j].dist - all[j]) <= 1e-3 * (1 + fabs(all[j])));
    }
    /* trained: IVF search with every list probed finds the exact nearest for most queries */
    assert_int_equal(vec_train(ix, true), WR_OK);
    vec_query o;
    vec_query_init(&o);
    o.k = K;
    o.nprobe = 32;
    o.refine = 8;
    size_t top1 = 0;
    for (size_t qi = 0; qi < 20; qi++) {
        const float *q = x + (qi * 11 + 3) * d;
        uint32_t got;
        assert_int_equal(vec_search(ix, q, &o, hits, &got), WR_OK);
        assert_int_equal(got, K);
        top1 += vt_row(hits[0].key) == (long)(qi * 11 + 3) || hits[0].dist <= hits[1].dist;
    }
    assert_true(top1 >= 19);
    free(all);
    vec_close(ix);
    free(x);
}

static void test_metrics_128(void **state)
{
    (void)state;
    check_metric(VEC_L2, 128);
    check_metric(VEC_IP, 128);
    check_metric(VEC_COSINE, 128);
}

static void test_metrics_384(void **state)
{
    (void)state;
    check_metric(VEC_L2, 384);
    check_metric(VEC_IP, 384);
    check_metric(VEC_COSINE, 384);
}

static void test_partitions_fan_out(void **state)
{
    (void)state;
    size_t n = 9000;
    float *x = vt_clustered(5, n, D, 16, 0.3f, 0);
    vec_index *one = open_mem(D, VEC_L2, 4000, false, 1);
    vec_index *three = open_mem(D, VEC_L2, 4000, false, 3);
    vt_insert(one, 0, x, n, D, "k", 0);
    for (uint32_t p = 0; p < 3; p++)
        vt_insert(three, p, x + (size_t)p * 3000 * D, 3000, D, "k", (size_t)p * 3000);
    vec_stats s;
    vec_get_stats(three, &s);
    assert_true(s.trained);
    assert_int_equal(s.partitions, 3);
    assert_int_equal(s.live, n);
    vec_hit a[K], b[K];
    for (size_t qi = 0; qi < 30; qi++) {
        const float *q = x + (qi * 289) * D;
        assert_int_equal(search(one, q, 0, true, NULL, a), K);
        assert_int_equal(search(three, q, 0, true, NULL, b), K);
        for (size_t j = 0; j < K; j++)
            assert_true(a[j].dist == b[j].dist);
        /* IVF: every partition's lists are probed; hits come from all partitions */
        assert_int_equal(search(three, q, 32, false, NULL, b), K);
        for (size_t j = 0; j < K; j++)
            assert_int_equal(b[j].part, (uint32_t)(vt_row(b[j].key) / 3000));
    }
    /* a key moved to another partition leaves the first */
    assert_int_equal(vec_upsert(three, 2, "k5", x, NULL), WR_OK);
    assert_int_equal(search(three, x, 0, true, NULL, b), K);
    for (size_t j = 0; j < K; j++)
        if (strcmp(b[j].key, "k5") == 0)
            assert_int_equal(b[j].part, 2);
    assert_int_equal(vec_upsert(three, 3, "k5", x, NULL), WR_ERR_INVAL);
    vec_close(one);
    vec_close(three);
    free(x);
}

typedef struct reader_arg {
    vec_index *ix;
    const float *x;
    atomic_int stop;
    size_t searches, bad;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    vec_hit hits[K];
    vec_query o;
    vec_query_init(&o);
    o.k = K;
    o.nprobe = 4;
    for (size_t i = 0; !atomic_load(&a->stop); i++) {
        uint32_t got;
        if (vec_search(a->ix, a->x + (i % 5000) * D, &o, hits, &got) != WR_OK || got != K)
            a->bad++;
        for (uint32_t j = 0; j < got; j++)
            if (vt_row(hits[j].key) % 5 == 4) /* deleted before the reader started */
                a->bad++;
        a->searches++;
    }
    return NULL;
}

static void test_search_during_retrain(void **state)
{
    (void)state;
    size_t n = 20000;
    float *x = vt_clustered(6, n, D, 16, 0.3f, 0);
    vec_index *ix = open_mem(D, VEC_L2, 5000, true, 1);
    vt_insert(ix, 0, x, 10000, D, "k", 0);
    vec_wait_idle(ix);
    char key[32];
    for (size_t i = 4; i < 10000; i += 5) {
        vt_key(key, sizeof key, "k", i);
        assert_int_equal(vec_delete(ix, key), WR_OK);
    }
    reader_arg a = {ix, x, 0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader, &a), 0);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(vec_train(ix, false), WR_OK);
        /* writes go on during the training; none of them are rows = 4 mod 5 */
        for (size_t i = 10000 + (size_t)r * 3000; i < 10000 + (size_t)(r + 1) * 3000; i++)
            if (i % 5 != 4)
                vt_insert(ix, 0, x + i * D, 1, D, "k", i);
        vec_wait_idle(ix);
    }
    atomic_store(&a.stop, 1);
    pthread_join(t, NULL);
    assert_true(a.searches > 0);
    assert_int_equal(a.bad, 0);
    vec_stats s;
    vec_get_stats(ix, &s);
    assert_int_equal(s.quant_version, 4);
    assert_int_equal(s.live, 8000 + 9000 - 1800);
    vec_close(ix);
    free(x);
}

static void test_bad_input(void **state)
{
    (void)state;
    vec_options o;
    vec_options_init(&o);
    vec_index *ix;
    assert_int_equal(vec_open(NULL, &o, &ix), WR_ERR_INVAL); /* dim 0 */
    assert_non_null(strstr(wr_errmsg(), "dim"));
    o.dim = 30;
    o.m = 7;
    assert_int_equal(vec_open(NULL, &o, &ix), WR_ERR_INVAL);
    assert_non_null(strstr(wr_errmsg(), "m=7"));
    o.m = 0;
    o.nbits = 5;
    assert_int_equal(vec_open(NULL, &o, &ix), WR_ERR_INVAL);
    ix = open_mem(D, VEC_COSINE, 100, true, 1);
    float v[D] = {0};
    assert_int_equal(vec_upsert(ix, 0, "zero", v, NULL), WR_ERR_INVAL);
    v[3] = NAN;
    assert_int_equal(vec_upsert(ix, 0, "nan", v, NULL), WR_ERR_INVAL);
    assert_non_null(strstr(wr_errmsg(), "non-finite"));
    v[3] = 1;
    assert_int_equal(vec_upsert(ix, 0, "", v, NULL), WR_ERR_INVAL);
    vec_hit h[K];
    vec_query q;
    vec_query_init(&q);
    q.k = 0;
    uint32_t n;
    assert_int_equal(vec_search(ix, v, &q, h, &n), WR_ERR_INVAL);
    q.k = K;
    assert_int_equal(vec_search(ix, v, &q, h, &n), WR_OK);
    assert_int_equal(n, 0); /* empty index */
    assert_int_equal(vec_train(ix, true), WR_ERR_INVAL);
    vec_stats s;
    vec_get_stats(ix, &s);
    assert_int_equal(s.live, 0);
    vec_close(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_then_auto_train), cmocka_unit_test(test_deletes_never_return),
        cmocka_unit_test(test_filters_fill_k),        cmocka_unit_test(test_metrics_128),
        cmocka_unit_test(test_metrics_384),           cmocka_unit_test(test_partitions_fan_out),
        cmocka_unit_test(test_search_during_retrain), cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

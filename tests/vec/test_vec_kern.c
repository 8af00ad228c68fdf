/* tests/vec/test_vec_kern.c -- every SIMD kernel against its scalar twin on seeded random data:
 * all dimensions 1..385 that hit a different tail, n with tails (0, 1, 17, 33, 1000), assign with
 * k up to 1024 and duplicated centroids (the lower index must win in every variant), PQ tables for
 * ksub 16 and 256, pq_scan8 for m 1..64, pq_scan4 bit-exact up to m = 256 with bytes of 255;
 * vk_pack4 round trips through vk_code4; WEIR_FORCE_SCALAR=1 picks the scalar table. Every input
 * lives in a buffer of exactly its size, so ASan sees any read past a tail. A variant the CPU
 * lacks is skipped, never passed. Floats agree within 1e-4 of the magnitude of the sum. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vec_kern.h"

#define TOL 1e-4f

static const size_t dims[] = {1,  2,  3,  4,  5,  7,  8,   15,  16,  17,  31,
                              32, 33, 63, 64, 65, 96, 127, 128, 129, 384, 385};
#define NDIMS (sizeof dims / sizeof dims[0])

typedef struct variant {
    const char *name;
    const vk_ops *(*get)(void);
} variant;

static variant avx2 = {"avx2", vk_avx2};
static variant avx512 = {"avx512", vk_avx512};
#ifdef VT_AVX512_EMUL
/* The AVX-512 kernels built for AVX2, every 512-bit operation emulated by SIMDe (see
 * index/vec/meson.build): the same code as the native variant, runnable on any AVX2 CPU. */
extern const vk_ops vk_ops_avx512_emul;
static const vk_ops *avx512_emul_get(void)
{
    return vk_avx2() ? &vk_ops_avx512_emul : NULL;
}
static variant avx512_emul = {"avx512", avx512_emul_get};
#endif

/* The variant under test, or skip() when the CPU lacks it. */
static const vk_ops *under_test(void **state)
{
    const variant *v = *state;
    const vk_ops *o = v->get();
    if (o == NULL) {
        print_message("%s: not supported by this CPU, skipped\n", v->name);
        skip();
    }
    assert_string_equal(o->name, v->name);
    return o;
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float frand(uint64_t *s) /* uniform in [-1, 1) */
{
    return (float)(rng(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* Exactly n items, so ASan sees an access one past the end. */
static void *xalloc(size_t n, size_t size)
{
    void *p = malloc(n ? n * size : 1);
    assert_non_null(p);
    return p;
}

static float *frandv(size_t n, uint64_t *s)
{
    float *p = xalloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand(s);
    return p;
}

static void check_close(float got, float ref, float scale, const char *what, size_t a, size_t b)
{
    float tol = TOL * fmaxf(1.0f, fmaxf(fabsf(ref), scale));
    if (!(fabsf(got - ref) <= tol))
        fail_msg("%s (%zu, %zu): got %.9g, scalar %.9g, tolerance %.3g", what, a, b, (double)got,
                 (double)ref, (double)tol);
}

/* sum |a_i * b_i|, resp. sum (a_i - b_i)^2: the magnitude the float error scales with. */
static float mag(const float *a, const float *b, size_t d, int l2)
{
    float s = 0.0f;
    for (size_t t = 0; t < d; t++)
        s += l2 ? (a[t] - b[t]) * (a[t] - b[t]) : fabsf(a[t] * b[t]);
    return s;
}

/* ---------------------------------------------------------------- tables and dispatch */

static void test_force_scalar_in_child_picks_scalar(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the child has not called vk_get() yet: the parent never does first */
        setenv("WEIR_FORCE_SCALAR", "1", 1);
        _exit(strcmp(vk_get()->name, "scalar") == 0 && vk_get() == vk_scalar() ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_vk_get_follows_env_and_cpu(void **state)
{
    (void)state;
    const char *force = getenv("WEIR_FORCE_SCALAR");
    const vk_ops *want = vk_scalar();
    if (force == NULL || strcmp(force, "1") != 0)
        want = vk_avx512() ? vk_avx512() : vk_avx2() ? vk_avx2() : vk_scalar();
    print_message("vk_get(): %s (WEIR_FORCE_SCALAR=%s)\n", vk_get()->name, force ? force : "");
    assert_ptr_equal(vk_get(), want);
    assert_ptr_equal(vk_get(), want); /* chosen once */
}

static void check_complete(const vk_ops *o, const char *name)
{
    assert_string_equal(o->name, name);
    assert_non_null(o->l2sq);
    assert_non_null(o->ip);
    assert_non_null(o->l2sq_n);
    assert_non_null(o->ip_n);
    assert_non_null(o->assign);
    assert_non_null(o->assign_packed);
    assert_non_null(o->pq_lut_l2);
    assert_non_null(o->pq_lut_ip);
    assert_non_null(o->pq_scan8);
    assert_non_null(o->pq_scan4);
    assert_non_null(o->dots_packed);
}

static void test_tables_are_complete(void **state)
{
    (void)state;
    check_complete(vk_scalar(), "scalar");
    if (vk_avx2())
        check_complete(vk_avx2(), "avx2");
    if (vk_avx512())
        check_complete(vk_avx512(), "avx512");
}

/* ---------------------------------------------------------------- l2sq, ip */

static void test_l2sq_ip_match_scalar(void **state)
{
    const vk_ops *o = under_test(state), *r = vk_scalar();
    uint64_t s = 1;

    for (size_t di = 0; di < NDIMS; di++) {
        size_t d = dims[di];
        for (int rep = 0; rep < 4; rep++) {
            float *a = frandv(d, &s), *b = frandv(d, &s);
            check_close(o->l2sq(a, b, d), r->l2sq(a, b, d), mag(a, b, d, 1), "l2sq", d, 0);
            check_close(o->ip(a, b, d), r->ip(a, b, d), mag(a, b, d, 0), "ip", d, 0);
            check_close(o->l2sq(a, a, d), 0.0f, 0.0f, "l2sq self", d, 0);
            free(a);
            free(b);
        }
    }
}

/* ---------------------------------------------------------------- l2sq_n, ip_n */

static void test_l2sq_n_ip_n_match_scalar_with_tails(void **state)
{
    static const size_t ns[] = {0, 1, 2, 7, 15, 16, 17, 33, 100, 1000};
    const vk_ops *o = under_test(state), *r = vk_scalar();
    uint64_t s = 2;

    for (size_t di = 0; di < NDIMS; di++) {
        size_t d = dims[di];
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            size_t n = ns[ni];
            float *q = frandv(d, &s), *x = frandv(n * d, &s);
            float *got = xalloc(n, sizeof(float)), *ref = xalloc(n, sizeof(float));
            for (int l2 = 0; l2 < 2; l2++) {
                (l2 ? o->l2sq_n : o->ip_n)(q, x, n, d, got);
                (l2 ? r->l2sq_n : r->ip_n)(q, x, n, d, ref);
                for (size_t i = 0; i < n; i++)
                    check_close(got[i], ref[i], mag(q, x + i * d, d, l2),
                                l2 ? "l2sq_n (d, i)" : "ip_n (d, i)", d, i);
            }
            free(q);
            free(x);
            free(got);
            free(ref);
        }
    }
}

/* ---------------------------------------------------------------- assign */

/* assign_packed on the same points and centroids (packed): the nearest as assign's reference
 * (ri, rd; a copy never wins over its original), and the second-nearest distance against the
 * scalar twin's: equal to the nearest when a copy ties, +inf when k = 1. Without dist2_out the
 * nearest must not change. */
static void check_assign_packed(const vk_ops *o, const float *x, size_t n, const float *c,
                                const float *cn, size_t k, size_t d, const size_t *first,
                                const uint32_t *ri, const float *rd)
{
    const vk_ops *r = vk_scalar();
    float *pk = xalloc((k + VK_PANEL - 1) / VK_PANEL * VK_PANEL * d, sizeof(float));
    uint32_t *gi = xalloc(n, sizeof(uint32_t)), *gi1 = xalloc(n, sizeof(uint32_t));
    uint32_t *si = xalloc(n, sizeof(uint32_t));
    float *gd = xalloc(n, sizeof(float)), *gd1 = xalloc(n, sizeof(float));
    float *g2 = xalloc(n, sizeof(float)), *sd = xalloc(n, sizeof(float));
    float *s2 = xalloc(n, sizeof(float));

    vk_pack_panels(c, k, d, pk);
    o->assign_packed(x, n, pk, cn, k, d, gi, gd, g2);
    o->assign_packed(x, n, pk, cn, k, d, gi1, gd1, NULL);
    r->assign_packed(x, n, pk, cn, k, d, si, sd, s2);
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float scale = r->ip(xi, xi, d) + cn[ri[i]];
        assert_true(gi[i] < k);
        assert_int_equal(si[i], ri[i]); /* the scalar twins agree exactly */
        assert_true(sd[i] == rd[i]);
        assert_int_equal(gi1[i], gi[i]);
        assert_true(gd1[i] == gd[i]);
        if (first[gi[i]] != gi[i])
            fail_msg("assign_packed n=%zu k=%zu d=%zu point %zu: %s chose %u, a copy of %zu", n, k,
                     d, i, o->name, gi[i], first[gi[i]]);
        check_close(gd[i], rd[i], scale, "assign_packed dist (d, i)", d, i);
        if (k == 1) {
            assert_true(isinf(g2[i]) && g2[i] > 0 && isinf(s2[i]) && s2[i] > 0);
            continue;
        }
        assert_true(g2[i] >= gd[i]);
        assert_true(s2[i] >= sd[i]);
        check_close(g2[i], s2[i], scale, "assign_packed second (d, i)", d, i);
    }
    free(pk);
    free(gi);
    free(gi1);
    free(si);
    free(gd);
    free(gd1);
    free(g2);
    free(sd);
    free(s2);
}

/* n points against k centroids of which about a third are copies of lower ones; a quarter of
 * the points sit exactly on a centroid, a quarter near one. */
static void check_assign(const vk_ops *o, size_t n, size_t k, size_t d, uint64_t *s)
{
    const vk_ops *r = vk_scalar();
    float *c = frandv(k * d, s), *x = frandv(n * d, s);
    float *cn = xalloc(k, sizeof(float));
    size_t *first = xalloc(k, sizeof(size_t));
    uint32_t *gi = xalloc(n, sizeof(uint32_t)), *ri = xalloc(n, sizeof(uint32_t));
    float *gd = xalloc(n, sizeof(float)), *rd = xalloc(n, sizeof(float));

    for (size_t j = 0; j < k; j++) {
        first[j] = j;
        if (j > 0 && rng(s) % 3 == 0) {
            first[j] = first[rng(s) % j];
            memcpy(c + j * d, c + first[j] * d, d * sizeof(float));
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = rng(s) % k;
        unsigned kind = (unsigned)(rng(s) % 4);
        for (size_t t = 0; t < d && kind < 2; t++)
            x[i * d + t] = c[j * d + t] + (kind == 0 ? 0.0f : 0.01f * frand(s));
    }
    for (size_t j = 0; j < k; j++)
        cn[j] = r->ip(c + j * d, c + j * d, d);

    o->assign(x, n, c, cn, k, d, gi, gd);
    r->assign(x, n, c, cn, k, d, ri, rd);
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float scale = r->ip(xi, xi, d) + cn[ri[i]];
        assert_true(gi[i] < k);
        if (first[gi[i]] != gi[i] || first[ri[i]] != ri[i])
            fail_msg("assign n=%zu k=%zu d=%zu point %zu: %s chose %u, a copy of %zu", n, k, d, i,
                     first[gi[i]] != gi[i] ? o->name : "scalar",
                     first[gi[i]] != gi[i] ? gi[i] : ri[i],
                     first[gi[i]] != gi[i] ? first[gi[i]] : first[ri[i]]);
        check_close(gd[i], rd[i], scale, "assign dist (d, i)", d, i);
        if (gi[i] != ri[i]) /* a near tie: the other centroid must be as near */
            check_close(r->l2sq(xi, c + gi[i] * d, d), rd[i], scale, "assign near tie (d, i)", d,
                        i);
    }
    check_assign_packed(o, x, n, c, cn, k, d, first, ri, rd);
    free(c);
    free(x);
    free(cn);
    free(first);
    free(gi);
    free(ri);
    free(gd);
    free(rd);
}

static void test_assign_matches_scalar_lower_index_wins_ties(void **state)
{
    static const size_t ks[] = {1, 2, 3, 15, 16, 17, 100, 1024};
    static const size_t ns[] = {0, 1, 5, 33, 64};
    const vk_ops *o = under_test(state);
    uint64_t s = 3;

    for (size_t di = 0; di < NDIMS; di++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                check_assign(o, ns[ni], ks[ki], dims[di], &s);
}

/* Enough points for the packed micro-kernel (n >= 64) with every point-block tail, several
 * panels, PQ training shapes, and d past the packed micro-kernel's limit. */
static void test_assign_large_shapes(void **state)
{
    static const size_t ks[] = {1, 3, 17, 100};
    const vk_ops *o = under_test(state);
    uint64_t s = 4;

    for (size_t di = 0; di < NDIMS; di++) /* packed panels, every point-block tail */
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            check_assign(o, 65 + di % 6, ks[ki], dims[di], &s);
    check_assign(o, 301, 256, 4, &s);
    check_assign(o, 1000, 256, 8, &s);
    check_assign(o, 250, 1024, 128, &s);
    check_assign(o, 97, 300, 96, &s);
    check_assign(o, 40, 64, 512, &s);
    check_assign(o, 33, 17, 600, &s);
    check_assign(o, 13, 100, 1100, &s);
}

/* ---------------------------------------------------------------- PQ tables */

static void test_pq_lut_match_scalar(void **state)
{
    static const size_t ksubs[] = {16, 256};
    static const size_t dsubs[] = {1, 2, 3, 4, 8, 12};
    static const size_t ms[] = {1, 3, 8, 32};
    const vk_ops *o = under_test(state), *r = vk_scalar();
    uint64_t s = 5;

    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < sizeof dsubs / sizeof dsubs[0]; b++)
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                size_t ksub = ksubs[a], dsub = dsubs[b], m = ms[mi];
                float *q = frandv(m * dsub, &s), *cb = frandv(m * ksub * dsub, &s);
                float *got = xalloc(m * ksub, sizeof(float)),
                      *ref = xalloc(m * ksub, sizeof(float));
                for (int l2 = 0; l2 < 2; l2++) {
                    (l2 ? o->pq_lut_l2 : o->pq_lut_ip)(q, cb, m, ksub, dsub, got);
                    (l2 ? r->pq_lut_l2 : r->pq_lut_ip)(q, cb, m, ksub, dsub, ref);
                    for (size_t j = 0; j < m; j++)
                        for (size_t c = 0; c < ksub; c++)
                            check_close(got[j * ksub + c], ref[j * ksub + c],
                                        mag(q + j * dsub, cb + (j * ksub + c) * dsub, dsub, l2),
                                        l2 ? "pq_lut_l2 (dsub, c)" : "pq_lut_ip (dsub, c)", dsub,
                                        c);
                }
                free(q);
                free(cb);
                free(got);
                free(ref);
            }
}

/* ---------------------------------------------------------------- pq_scan8 */

static void test_pq_scan8_matches_scalar(void **state)
{
    static const size_t ms[] = {1, 2, 3, 4, 8, 16, 32, 48, 64};
    static const size_t ns[] = {0, 1, 15, 16, 17, 33, 100, 1000};
    const vk_ops *o = under_test(state), *r = vk_scalar();
    uint64_t s = 6;

    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            size_t m = ms[mi], n = ns[ni];
            float *lut = frandv(m * 256, &s);
            uint8_t *codes = xalloc(n * m, 1);
            float *got = xalloc(n, sizeof(float)), *ref = xalloc(n, sizeof(float));
            for (size_t i = 0; i < n * m; i++)
                codes[i] = (uint8_t)rng(&s);
            if (n > 0) /* the extreme codes of every sub-quantizer */
                memset(codes, 255, m);
            o->pq_scan8(codes, n, m, lut, got);
            r->pq_scan8(codes, n, m, lut, ref);
            for (size_t i = 0; i < n; i++) {
                float sc = 0.0f;
                for (size_t j = 0; j < m; j++)
                    sc += fabsf(lut[j * 256 + codes[i * m + j]]);
                check_close(got[i], ref[i], sc, "pq_scan8 (m, i)", m, i);
            }
            free(lut);
            free(codes);
            free(got);
            free(ref);
        }
}

/* ---------------------------------------------------------------- pq_scan4, vk_pack4 */

static void test_pack4_round_trips_through_code4(void **state)
{
    static const size_t ns[] = {1, 5, 31, 32, 33, 100};
    static const size_t ms[] = {2, 4, 6, 16, 34};
    uint64_t s = 7;

    (void)state;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            size_t n = ns[ni], m = ms[mi], nb = (n + VK_BLOCK - 1) / VK_BLOCK;
            uint8_t *codes = xalloc(n * m, 1), *packed = xalloc(nb * m * 16, 1);
            for (size_t i = 0; i < n * m; i++)
                codes[i] = (uint8_t)(rng(&s) & 15);
            vk_pack4(codes, n, m, packed);
            for (size_t v = 0; v < nb * VK_BLOCK; v++)
                for (size_t j = 0; j < m; j++) {
                    uint8_t want = v < n ? codes[v * m + j] : 0;
                    assert_int_equal(vk_code4(packed + v / VK_BLOCK * m * 16, v % VK_BLOCK, j),
                                     want);
                }
            free(codes);
            free(packed);
        }
}

/* The scalar twin against the definition on plain codes, then the variant bit for bit. */
static void check_scan4(const vk_ops *o, size_t m, size_t nb, int maxed, uint64_t *s)
{
    size_t n = nb * VK_BLOCK - (nb > 1 ? 5 : 0); /* a short last block: padding codes are 0 */
    uint8_t *codes = xalloc(n * m, 1), *packed = xalloc(nb * m * 16, 1);
    uint8_t *lut8 = xalloc(m * 16, 1);
    uint16_t *got = xalloc(nb * VK_BLOCK, 2), *ref = xalloc(nb * VK_BLOCK, 2);

    for (size_t i = 0; i < n * m; i++)
        codes[i] = (uint8_t)(maxed ? 15 : rng(s) & 15);
    for (size_t i = 0; i < m * 16; i++)
        lut8[i] = (uint8_t)(maxed ? 255 : rng(s) % 4 == 0 ? 255 : rng(s));
    vk_pack4(codes, n, m, packed);
    vk_scalar()->pq_scan4(packed, nb, m, lut8, ref);
    for (size_t v = 0; v < nb * VK_BLOCK; v++) {
        unsigned want = 0;
        for (size_t j = 0; j < m; j++)
            want += lut8[j * 16 + (v < n ? codes[v * m + j] : 0)];
        assert_int_equal(ref[v], want);
    }
    if (o != NULL) {
        memset(got, 0xAB, nb * VK_BLOCK * 2);
        o->pq_scan4(packed, nb, m, lut8, got);
        for (size_t v = 0; v < nb * VK_BLOCK; v++)
            if (got[v] != ref[v])
                fail_msg("pq_scan4 %s m=%zu nblocks=%zu vector %zu: got %u, scalar %u", o->name, m,
                         nb, v, got[v], ref[v]);
    }
    free(codes);
    free(packed);
    free(lut8);
    free(got);
    free(ref);
}

static void test_pq_scan4_bit_exact(void **state)
{
    static const size_t ms[] = {2, 4, 6, 8, 16, 32, 64, 96, 128};
    static const size_t nbs[] = {0, 1, 2, 7};
    const vk_ops *o = under_test(state);
    uint64_t s = 8;

    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t bi = 0; bi < sizeof nbs / sizeof nbs[0]; bi++)
            check_scan4(o, ms[mi], nbs[bi], 0, &s);
    /* the largest sums allowed: every lookup 255, m up to 256 (65280) */
    check_scan4(o, 128, 2, 1, &s);
    check_scan4(o, 254, 3, 1, &s);
    check_scan4(o, 256, 3, 1, &s);
    check_scan4(o, 256, 2, 0, &s);
}

static void test_pq_scan4_scalar_matches_definition(void **state)
{
    uint64_t s = 9;
    (void)state;
    check_scan4(NULL, 2, 1, 0, &s);
    check_scan4(NULL, 6, 3, 0, &s);
    check_scan4(NULL, 256, 2, 1, &s);
}

/* ---------------------------------------------------------------- dots_packed */

/* Every (point, centroid) pair against ip() of the unpacked rows, for point counts around the
 * micro-kernels' 4 and 8 and centroid counts around the 16-wide panels; canaries after the
 * output catch a write past n * k. */
static void test_dots_packed_match_scalar(void **state)
{
    static const size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 17};
    static const size_t ks[] = {1, 15, 16, 17, 33, 64, 100};
    const vk_ops *o = under_test(state), *r = vk_scalar();
    uint64_t s = 10;

    for (size_t di = 0; di < NDIMS; di++) {
        size_t d = dims[di];
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            size_t k = ks[ki], kp = (k + VK_PANEL - 1) / VK_PANEL * VK_PANEL;
            float *c = frandv(k * d, &s), *pk = xalloc(kp * d, sizeof(float));
            vk_pack_panels(c, k, d, pk);
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                size_t n = ns[ni];
                float *x = frandv(n * d, &s), *got = xalloc(n * k + 4, sizeof(float));
                float *ref = xalloc(n * k, sizeof(float));
                for (size_t i = 0; i < 4; i++)
                    got[n * k + i] = 12345.0f;
                o->dots_packed(x, n, pk, k, d, got);
                r->dots_packed(x, n, pk, k, d, ref);
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < k; j++) {
                        float want = r->ip(x + i * d, c + j * d, d);
                        check_close(ref[i * k + j], want, mag(x + i * d, c + j * d, d, 0),
                                    "dots_packed scalar (d, i*k+j)", d, i * k + j);
                        check_close(got[i * k + j], ref[i * k + j], mag(x + i * d, c + j * d, d, 0),
                                    "dots_packed (d, i*k+j)", d, i * k + j);
                    }
                for (size_t i = 0; i < 4; i++)
                    assert_true(got[n * k + i] == 12345.0f);
                free(x);
                free(got);
                free(ref);
            }
            free(c);
            free(pk);
        }
    }
}

/* One entry per kernel test and variant, named "<variant>: <test>". */
/* clang-format off */
#define VT(v, f) { #v ": " #f, f, NULL, NULL, (void *)&v }
#define VARIANT_TESTS(v)                                                                           \
    VT(v, test_l2sq_ip_match_scalar), VT(v, test_l2sq_n_ip_n_match_scalar_with_tails),             \
    VT(v, test_assign_matches_scalar_lower_index_wins_ties), VT(v, test_assign_large_shapes),      \
    VT(v, test_pq_lut_match_scalar), VT(v, test_pq_scan8_matches_scalar),                          \
    VT(v, test_pq_scan4_bit_exact), VT(v, test_dots_packed_match_scalar)
/* clang-format on */

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: the child must fork before this process has called vk_get() */
        cmocka_unit_test(test_force_scalar_in_child_picks_scalar),
        cmocka_unit_test(test_vk_get_follows_env_and_cpu),
        cmocka_unit_test(test_tables_are_complete),
        cmocka_unit_test(test_pack4_round_trips_through_code4),
        cmocka_unit_test(test_pq_scan4_scalar_matches_definition),
        VARIANT_TESTS(avx2),
        VARIANT_TESTS(avx512),
#ifdef VT_AVX512_EMUL
        VARIANT_TESTS(avx512_emul),
#endif
    };
    return cmocka_run_group_tests_name("vec_kern", tests, NULL, NULL);
}

/* vec_kern_avx512.c -- the AVX-512 (F+BW+VL+DQ) twins of vec_kern_scalar.c, written with SIMDe.
 * Built as its own library with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mbmi2:
 * the compiler may use those instructions anywhere in this file, so nothing here runs except
 * through vk_ops_avx512, which vk_avx512() hands out only after CPUID said yes (no constructors).
 *
 * Techniques (16 float lanes, 32 zmm registers):
 *   l2sq/ip        4 independent FMA accumulators, one masked load for the tail.
 *   l2sq_n/ip_n    16 vectors at a time, each reduced to one zmm of partial sums; one
 *                  transpose-add tree (ax_tree16) turns the 16 zmm into 16 sums, so there is no
 *                  per-vector horizontal sum. d = 1, 2, 4, 8: dense loads of 16 vectors.
 *   assign         maximise w_j = <x, c_j> - ||c_j||^2 / 2 (||x - c_j||^2 = ||x||^2 - 2 w_j).
 *                  A panel of centroids is packed transposed on the stack (d rows of 32 floats
 *                  per 32 centroids); a 6-point x 32-centroid micro-kernel does 12 FMA chains per
 *                  row (2 loads, 6 broadcasts), starting from -||c_j||^2 / 2, and the running
 *                  maximum per lane and its index stay in registers across the panel (28 zmm);
 *                  ||x||^2 is added once per point at the end. Fewer than 64 points or d > 512:
 *                  asg_direct, 2 points x 4 centroids vectorised along d.
 *   assign_packed  the same micro-kernel reading vk_pack_panels' 16-wide panels two at a time as
 *                  one 32-wide column block (nothing packed per call), any n and d; with
 *                  dist2_out each lane also keeps its second-largest w (6 more zmm: not measured,
 *                  this project's machine has no AVX-512; tests run it under emulation).
 *   pq_lut_*       one l2sq_n/ip_n per sub-quantizer (dsub = 4: dense path, 16 centroids/zmm op).
 *   pq_scan8       per vector, vgatherdps of 16 LUT entries at a time (vpmovzxbd of 16 code bytes
 *                  plus the sub-quantizer offsets), 16 vectors reduced by ax_tree16.
 *   pq_scan4       vpshufb lookups, 4 sub-quantizers per zmm, 16-bit accumulation (see
 *                  ax_pq_scan4 for the even/odd byte trick), vpermw puts the 32 sums in order.
 *   dots_packed    panel by panel, 8 points x 16 centroids (one zmm each: 8 FMA chains), the
 *                  last panel's tail stored under a mask.
 * SIMDe 0.7.4 (Debian 12) lacks the masked loads and stores, the 512-bit gathers and vpmovzxbd:
 * the ax_* shims below use the native intrinsic when SIMDe is native (the normal case) and a
 * portable stack-copy otherwise, which is also what lets the test suite run this file's logic
 * under emulation on a machine without AVX-512 (compile it with -mavx2 -mfma only).
 * Invariants: (1) loads never touch memory past the end of an input (masked loads or copies);
 * (2) in assign every (point, centroid) pair is computed by the same sequence of operations
 * wherever it falls in a block, so identical centroids produce identical values and the strict
 * comparisons in index order keep the lower index; (3) pq_scan4 is exact. */
#include <math.h>
#include <simde/x86/avx512.h>
#include <simde/x86/fma.h>
#include <string.h>

#include "vec_kern.h"

#define AX_INLINE static inline __attribute__((always_inline))
/* Loops over registers (points, centroids, accumulators) must unroll completely, or the
 * arrays of vectors they index end up in memory (gcc -O2 does not do it by itself). */
#define AX_UNROLL _Pragma("GCC unroll 16")

/* ---------------------------------------------------------------- shims over SIMDe 0.7.4 */

/* Floats p[0 .. r), r in 1..15; lanes r.. are zero. */
AX_INLINE simde__m512 ax_load_tail(const float *p, size_t r)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    return _mm512_maskz_loadu_ps((__mmask16)((1u << r) - 1u), p);
#else
    float buf[16] = {0};
    memcpy(buf, p, r * sizeof(float));
    return simde_mm512_loadu_ps(buf);
#endif
}

AX_INLINE void ax_store_tail(float *p, simde__m512 v, size_t r)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << r) - 1u), v);
#else
    float buf[16];
    simde_mm512_storeu_ps(buf, v);
    memcpy(p, buf, r * sizeof(float));
#endif
}

/* 16 bytes zero-extended to 16 int32. */
AX_INLINE simde__m512i ax_u8_to_i32(simde__m128i b)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    return _mm512_cvtepu8_epi32(b);
#else
    simde__m256i lo = simde_mm256_cvtepu8_epi32(b);
    simde__m256i hi = simde_mm256_cvtepu8_epi32(simde_mm_srli_si128(b, 8));
    return simde_mm512_inserti64x4(simde_mm512_castsi256_si512(lo), hi, 1);
#endif
}

/* lut[idx[l]] for the 16 lanes; for lanes >= r (r in 1..16) 0, without touching lut. */
AX_INLINE simde__m512 ax_gather(simde__m512i idx, const float *lut, size_t r)
{
#if defined(SIMDE_X86_AVX512F_NATIVE)
    if (r == 16)
        return _mm512_i32gather_ps(idx, lut, 4);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)((1u << r) - 1u), idx, lut, 4);
#else
    int32_t ix[16];
    float v[16] = {0};
    simde_mm512_storeu_si512((void *)ix, idx);
    for (size_t l = 0; l < r; l++)
        v[l] = lut[ix[l]];
    return simde_mm512_loadu_ps(v);
#endif
}

AX_INLINE float ax_first(simde__m512 v)
{
    return simde_mm_cvtss_f32(simde_mm512_castps512_ps128(v));
}

/* A constant vector from a table: SIMDe 0.7.4's simde_mm512_setr_epi32 is not constant-folded
 * (it builds the vector lane by lane with masked broadcasts). */
AX_INLINE simde__m512i ax_const(const int32_t *v)
{
    return simde_mm512_loadu_si512((const void *)v);
}

static const int32_t ax_iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* ---------------------------------------------------------------- helpers */

AX_INLINE float ax_hsum(simde__m512 v)
{
    simde__m256 h = simde_mm256_add_ps(
        simde_mm512_castps512_ps256(v),
        simde_mm256_castpd_ps(simde_mm512_extractf64x4_pd(simde_mm512_castps_pd(v), 1)));
    simde__m128 s =
        simde_mm_add_ps(simde_mm256_castps256_ps128(h), simde_mm256_extractf128_ps(h, 1));
    s = simde_mm_add_ps(s, simde_mm_movehl_ps(s, s));
    s = simde_mm_add_ss(s, simde_mm_shuffle_ps(s, s, 0x55));
    return simde_mm_cvtss_f32(s);
}

/* Pairwise level of the trees: per 128-bit lane [a0+a2, b0+b2, a1+a3, b1+b3]. */
AX_INLINE simde__m512 ax_pair_ps(simde__m512 a, simde__m512 b)
{
    return simde_mm512_add_ps(simde_mm512_unpacklo_ps(a, b), simde_mm512_unpackhi_ps(a, b));
}

/* Second level: per 128-bit lane [a's, b's, c's, d's] from two ax_pair_ps results. */
AX_INLINE simde__m512 ax_quad_ps(simde__m512 ab, simde__m512 cd)
{
    simde__m512d x = simde_mm512_castps_pd(ab), y = simde_mm512_castps_pd(cd);
    return simde_mm512_add_ps(simde_mm512_castpd_ps(simde_mm512_unpacklo_pd(x, y)),
                              simde_mm512_castpd_ps(simde_mm512_unpackhi_pd(x, y)));
}

/* Third and fourth levels: 128-bit lanes [x0+x1, x2+x3, y0+y1, y2+y3]. */
AX_INLINE simde__m512 ax_lanes_ps(simde__m512 x, simde__m512 y)
{
    return simde_mm512_add_ps(simde_mm512_shuffle_f32x4(x, y, 0x88),
                              simde_mm512_shuffle_f32x4(x, y, 0xDD));
}

/* Sixteen zmm in, one out: lane i = sum of the 16 lanes of v[i] (30 shuffles, 15 adds). */
AX_INLINE simde__m512 ax_tree16(const simde__m512 *v)
{
    simde__m512 q[4];
    AX_UNROLL
    for (size_t g = 0; g < 4; g++) /* 128-bit lane l of q[g] = v[4g .. 4g+3], quarter l */
        q[g] =
            ax_quad_ps(ax_pair_ps(v[4 * g], v[4 * g + 1]), ax_pair_ps(v[4 * g + 2], v[4 * g + 3]));
    /* lanes: [v0-3 half, v0-3 half, v4-7 half, v4-7 half], then the halves meet in order */
    return ax_lanes_ps(ax_lanes_ps(q[0], q[1]), ax_lanes_ps(q[2], q[3]));
}

AX_INLINE simde__m512 ax_term(simde__m512 x, simde__m512 q, simde__m512 acc, int l2)
{
    if (l2) {
        simde__m512 e = simde_mm512_sub_ps(x, q);
        return simde_mm512_fmadd_ps(e, e, acc);
    }
    return simde_mm512_fmadd_ps(x, q, acc);
}

/* ---------------------------------------------------------------- l2sq, ip */

AX_INLINE float ax_dist(const float *a, const float *b, size_t d, int l2)
{
    simde__m512 s0 = simde_mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t t = 0;

    for (; t + 64 <= d; t += 64) {
        s0 = ax_term(simde_mm512_loadu_ps(a + t), simde_mm512_loadu_ps(b + t), s0, l2);
        s1 = ax_term(simde_mm512_loadu_ps(a + t + 16), simde_mm512_loadu_ps(b + t + 16), s1, l2);
        s2 = ax_term(simde_mm512_loadu_ps(a + t + 32), simde_mm512_loadu_ps(b + t + 32), s2, l2);
        s3 = ax_term(simde_mm512_loadu_ps(a + t + 48), simde_mm512_loadu_ps(b + t + 48), s3, l2);
    }
    for (; t + 16 <= d; t += 16)
        s0 = ax_term(simde_mm512_loadu_ps(a + t), simde_mm512_loadu_ps(b + t), s0, l2);
    if (t < d)
        s1 = ax_term(ax_load_tail(a + t, d - t), ax_load_tail(b + t, d - t), s1, l2);
    return ax_hsum(simde_mm512_add_ps(simde_mm512_add_ps(s0, s1), simde_mm512_add_ps(s2, s3)));
}

static float ax_l2sq(const float *a, const float *b, size_t d)
{
    return ax_dist(a, b, d, 1);
}

static float ax_ip(const float *a, const float *b, size_t d)
{
    return ax_dist(a, b, d, 0);
}

/* ---------------------------------------------------------------- l2sq_n, ip_n */

/* Partial sums of 4 vectors, one register each: 4 independent FMA chains, one load of q for 4
 * vectors. The lanes are reduced later, 4 * 4 at a time by the tree. */
AX_INLINE void ax_partial4(const float *q, const float *const *xs, size_t d, int l2, simde__m512 *v)
{
    size_t t = 0;

    AX_UNROLL
    for (size_t g = 0; g < 4; g++)
        v[g] = simde_mm512_setzero_ps();
    for (; t + 16 <= d; t += 16) {
        simde__m512 qv = simde_mm512_loadu_ps(q + t);
        AX_UNROLL
        for (size_t g = 0; g < 4; g++)
            v[g] = ax_term(simde_mm512_loadu_ps(xs[g] + t), qv, v[g], l2);
    }
    if (t < d) {
        simde__m512 qv = ax_load_tail(q + t, d - t);
        AX_UNROLL
        for (size_t g = 0; g < 4; g++)
            v[g] = ax_term(ax_load_tail(xs[g] + t, d - t), qv, v[g], l2);
    }
}

AX_INLINE simde__m512 ax_elem(const float *x, simde__m512 q, int l2)
{
    return ax_term(simde_mm512_loadu_ps(x), q, simde_mm512_setzero_ps(), l2);
}

/* Dense blocks of 16 vectors of d = 2, 4 or 8 floats (d zmm). Returns the first index not done.
 * The comments give the vector each output lane holds before the final vpermps. */
AX_INLINE size_t ax_dense(const float *q, const float *x, size_t n, size_t d, float *out, int l2)
{
    static const int32_t order2[16] = {0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15};
    static const int32_t order4[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
    static const int32_t order8[16] = {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15};
    simde__m512 qq;
    simde__m512i perm;
    size_t i = 0;

    if (d == 2) {
        double q2;
        memcpy(&q2, q, sizeof q2);
        qq = simde_mm512_castpd_ps(simde_mm512_set1_pd(q2));
        /* lanes: 0 1 8 9 | 2 3 10 11 | 4 5 12 13 | 6 7 14 15 */
        perm = ax_const(order2);
    } else if (d == 4) {
        qq = simde_mm512_broadcast_f32x4(simde_mm_loadu_ps(q));
        /* lanes: 0 4 8 12 | 1 5 9 13 | 2 6 10 14 | 3 7 11 15 */
        perm = ax_const(order4);
    } else {
        qq = simde_mm512_broadcast_f32x8(simde_mm256_loadu_ps(q));
        /* lanes: 0 2 4 6 | 1 3 5 7 | 8 10 12 14 | 9 11 13 15 */
        perm = ax_const(order8);
    }
    for (; i + 16 <= n; i += 16) {
        const float *p = x + i * d;
        simde__m512 s;
        if (d == 2) {
            simde__m512 a = ax_elem(p, qq, l2), b = ax_elem(p + 16, qq, l2);
            s = simde_mm512_add_ps(simde_mm512_shuffle_ps(a, b, 0x88),
                                   simde_mm512_shuffle_ps(a, b, 0xDD));
        } else if (d == 4) {
            s = ax_quad_ps(ax_pair_ps(ax_elem(p, qq, l2), ax_elem(p + 16, qq, l2)),
                           ax_pair_ps(ax_elem(p + 32, qq, l2), ax_elem(p + 48, qq, l2)));
        } else {
            simde__m512 lo =
                ax_quad_ps(ax_pair_ps(ax_elem(p, qq, l2), ax_elem(p + 16, qq, l2)),
                           ax_pair_ps(ax_elem(p + 32, qq, l2), ax_elem(p + 48, qq, l2)));
            simde__m512 hi =
                ax_quad_ps(ax_pair_ps(ax_elem(p + 64, qq, l2), ax_elem(p + 80, qq, l2)),
                           ax_pair_ps(ax_elem(p + 96, qq, l2), ax_elem(p + 112, qq, l2)));
            s = ax_lanes_ps(lo, hi);
        }
        simde_mm512_storeu_ps(out + i, simde_mm512_permutexvar_ps(perm, s));
    }
    return i;
}

AX_INLINE void ax_dist_n(const float *q, const float *x, size_t n, size_t d, float *out, int l2)
{
    size_t i = 0;

    if (d == 1) {
        simde__m512 qq = simde_mm512_set1_ps(q[0]);
        for (; i + 16 <= n; i += 16)
            simde_mm512_storeu_ps(out + i, ax_elem(x + i, qq, l2));
    } else if (d == 2 || d == 4 || d == 8) {
        i = ax_dense(q, x, n, d, out, l2);
    } else if (d >= 256) { /* the horizontal sum is noise next to d / 16 FMAs */
        for (; i < n; i++)
            out[i] = ax_dist(q, x + i * d, d, l2);
        return;
    }
    for (; i < n; i += 16) {
        size_t r = n - i < 16 ? n - i : 16;
        simde__m512 v[16];
        for (size_t g = 0; g < 16; g += 4) {
            const float *xs[4];
            for (size_t e = 0; e < 4; e++) /* past the tail: repeat the last vector */
                xs[e] = x + (i + (g + e < r ? g + e : r - 1)) * d;
            ax_partial4(q, xs, d, l2, v + g);
        }
        for (size_t g = r; g < 16; g++)
            v[g] = simde_mm512_setzero_ps();
        simde__m512 s = ax_tree16(v);
        if (r == 16)
            simde_mm512_storeu_ps(out + i, s);
        else
            ax_store_tail(out + i, s, r);
    }
}

static void ax_l2sq_n(const float *q, const float *x, size_t n, size_t d, float *out)
{
    ax_dist_n(q, x, n, d, out, 1);
}

static void ax_ip_n(const float *q, const float *x, size_t n, size_t d, float *out)
{
    ax_dist_n(q, x, n, d, out, 0);
}

/* ---------------------------------------------------------------- assign */

#define ASG_W   32    /* centroids per micro-kernel column block (2 zmm) */
#define ASG_P   6     /* points per micro-kernel: 12 accumulators + 12 running best/index */
#define ASG_BUF 16384 /* floats of packed centroids on the stack (64 KiB): d <= 512 */
#define ASG_KP  1024  /* at most this many centroids per panel (small d) */
#define ASG_FEW 64    /* fewer points: packing k * d floats costs more than it saves */

/* Dot products of R points (1 or 2) with 4 centroids, d-vectorised, no packing: one FMA chain
 * per pair, each chain the same sequence of operations. For few points or large d. */
AX_INLINE void asg_dots(const float *const *xr, size_t R, const float *const *cq, size_t d,
                        float *dots)
{
    simde__m512 a[16];
    size_t t = 0;

    AX_UNROLL
    for (size_t g = 0; g < 16; g++)
        a[g] = simde_mm512_setzero_ps();
    for (; t + 16 <= d; t += 16) {
        simde__m512 cv[4];
        AX_UNROLL
        for (size_t q = 0; q < 4; q++)
            cv[q] = simde_mm512_loadu_ps(cq[q] + t);
        AX_UNROLL
        for (size_t r = 0; r < R; r++) {
            simde__m512 xv = simde_mm512_loadu_ps(xr[r] + t);
            AX_UNROLL
            for (size_t q = 0; q < 4; q++)
                a[r * 4 + q] = simde_mm512_fmadd_ps(xv, cv[q], a[r * 4 + q]);
        }
    }
    if (t < d) {
        simde__m512 cv[4];
        AX_UNROLL
        for (size_t q = 0; q < 4; q++)
            cv[q] = ax_load_tail(cq[q] + t, d - t);
        AX_UNROLL
        for (size_t r = 0; r < R; r++) {
            simde__m512 xv = ax_load_tail(xr[r] + t, d - t);
            AX_UNROLL
            for (size_t q = 0; q < 4; q++)
                a[r * 4 + q] = simde_mm512_fmadd_ps(xv, cv[q], a[r * 4 + q]);
        }
    }
    simde_mm512_storeu_ps(dots, ax_tree16(a));
}

#define VKT_INLINE AX_INLINE
#define VKT_UNROLL AX_UNROLL
#define VKT_DIST   ax_dist
#define VKT_DOTS   16
#include "vec_kern_asg.h"

/* Lane-wise maximum of best (indices in bi) folded to one (value, lowest index among equals).
 * With sec (each lane's second-largest), also the second-largest of all (w2_out): the largest
 * of every lane's second and every lane's best but the winner's. */
AX_INLINE void asg_fold(simde__m512 best, simde__m512i bi, const simde__m512 *sec, float *w_out,
                        uint32_t *j_out, float *w2_out)
{
    simde__m512 m = simde_mm512_max_ps(best, simde_mm512_shuffle_f32x4(best, best, 0x4E));
    m = simde_mm512_max_ps(m, simde_mm512_shuffle_f32x4(m, m, 0xB1));
    m = simde_mm512_max_ps(m, simde_mm512_shuffle_ps(m, m, 0x4E));
    m = simde_mm512_max_ps(m, simde_mm512_shuffle_ps(m, m, 0xB1));
    simde__mmask16 eq = simde_mm512_cmp_ps_mask(best, m, SIMDE_CMP_EQ_OQ);
    simde__m512i c = simde_mm512_mask_mov_epi32(simde_mm512_set1_epi32(-1), eq, bi);
    c = simde_mm512_min_epu32(c, simde_mm512_shuffle_i32x4(c, c, 0x4E));
    c = simde_mm512_min_epu32(c, simde_mm512_shuffle_i32x4(c, c, 0xB1));
    simde__m512 cf = simde_mm512_castsi512_ps(c);
    c = simde_mm512_min_epu32(c, simde_mm512_castps_si512(simde_mm512_shuffle_ps(cf, cf, 0x4E)));
    cf = simde_mm512_castsi512_ps(c);
    c = simde_mm512_min_epu32(c, simde_mm512_castps_si512(simde_mm512_shuffle_ps(cf, cf, 0xB1)));
    *w_out = ax_first(m);
    *j_out = (uint32_t)simde_mm_cvtsi128_si32(simde_mm512_castsi512_si128(c));
    if (sec) { /* lanes hold distinct indices, so only the winner's lane matches */
        simde__mmask16 won =
            simde_mm512_cmpeq_epi32_mask(bi, simde_mm512_set1_epi32((int32_t)*j_out));
        simde__m512 r = simde_mm512_mask_mov_ps(best, won, simde_mm512_set1_ps(-INFINITY));
        r = simde_mm512_max_ps(r, *sec);
        r = simde_mm512_max_ps(r, simde_mm512_shuffle_f32x4(r, r, 0x4E));
        r = simde_mm512_max_ps(r, simde_mm512_shuffle_f32x4(r, r, 0xB1));
        r = simde_mm512_max_ps(r, simde_mm512_shuffle_ps(r, r, 0x4E));
        r = simde_mm512_max_ps(r, simde_mm512_shuffle_ps(r, r, 0xB1));
        *w2_out = ax_first(r);
    }
}

/* With sec: the lane's second-largest so far becomes the larger of it and min(w, best) (a tie
 * with the best makes the second equal to it). */
AX_INLINE void asg_update(simde__m512 w, simde__m512i jv, simde__m512 *best, simde__m512i *bi,
                          simde__m512 *sec)
{
    if (sec)
        *sec = simde_mm512_max_ps(*sec, simde_mm512_min_ps(w, *best));
    simde__mmask16 gt = simde_mm512_cmp_ps_mask(w, *best, SIMDE_CMP_GT_OQ); /* lower index wins */
    *best = simde_mm512_mask_mov_ps(*best, gt, w);
    *bi = simde_mm512_mask_mov_epi32(*bi, gt, jv);
}

/* Points x[i0 .. i0 + np) (np <= ASG_P; missing rows repeat the last) against kp centroids from
 * j0, column blocks of ASG_W = 2 x 16 at pk + s * d * ASG_W: row t of block s's first half at
 * + t * row, of its second half at + half + t * row (the stack panel: row 32, half 16; the
 * vk_pack_panels layout: row 16, half 16 * d, or 0 for a lone last panel). hn[j - j0] =
 * -||c_j||^2 / 2 (-inf for padding). w_out/idx_out: the best w = <x, c> - ||c||^2 / 2 over the
 * panels so far (@first: these are the first); w2_out (NULL: not wanted) the second best. */
AX_INLINE void asg_block(const float *pk, size_t row, size_t half, const float *hn, const float *x,
                         size_t i0, size_t np, size_t d, size_t j0, size_t kp, int first,
                         uint32_t *idx_out, float *w_out, float *w2_out)
{
    const float *xp[ASG_P];
    simde__m512 best[ASG_P], sec[ASG_P];
    simde__m512i bi[ASG_P];
    simde__m512i jv = simde_mm512_add_epi32(simde_mm512_set1_epi32((int32_t)j0), ax_const(ax_iota));
    const simde__m512i step = simde_mm512_set1_epi32(16);

    AX_UNROLL
    for (size_t p = 0; p < ASG_P; p++) {
        xp[p] = x + (i0 + (p < np ? p : np - 1)) * d;
        best[p] = simde_mm512_set1_ps(-INFINITY);
        sec[p] = best[p];
        bi[p] = simde_mm512_setzero_si512();
    }
    for (size_t s = 0; s < kp / ASG_W; s++) {
        const float *ct = pk + s * d * ASG_W;
        simde__m512 h0 = simde_mm512_load_ps(hn + s * ASG_W);
        simde__m512 h1 = simde_mm512_load_ps(hn + s * ASG_W + 16);
        simde__m512 a0[ASG_P], a1[ASG_P];
        AX_UNROLL
        for (size_t p = 0; p < ASG_P; p++) {
            a0[p] = h0;
            a1[p] = h1;
        }
        for (size_t t = 0; t < d; t++) {
            simde__m512 c0 = simde_mm512_loadu_ps(ct + t * row);
            simde__m512 c1 = simde_mm512_loadu_ps(ct + half + t * row);
            AX_UNROLL
            for (size_t p = 0; p < ASG_P; p++) {
                simde__m512 xb = simde_mm512_set1_ps(xp[p][t]);
                a0[p] = simde_mm512_fmadd_ps(xb, c0, a0[p]);
                a1[p] = simde_mm512_fmadd_ps(xb, c1, a1[p]);
            }
        }
        simde__m512i jv1 = simde_mm512_add_epi32(jv, step);
        AX_UNROLL
        for (size_t p = 0; p < ASG_P; p++) {
            asg_update(a0[p], jv, &best[p], &bi[p], w2_out ? &sec[p] : NULL);
            asg_update(a1[p], jv1, &best[p], &bi[p], w2_out ? &sec[p] : NULL);
        }
        jv = simde_mm512_add_epi32(jv1, step);
    }
    AX_UNROLL
    for (size_t p = 0; p < ASG_P; p++) {
        float w, w2 = -INFINITY;
        uint32_t j;
        if (p >= np)
            break;
        asg_fold(best[p], bi[p], w2_out ? &sec[p] : NULL, &w, &j, &w2);
        asg_merge(i0 + p, first, w, j, w2, idx_out, w_out, w2_out);
    }
}

/* The blocks of points against one group of panels. */
AX_INLINE void asg_group_run(const float *pk, size_t row, size_t half, const float *hn,
                             const float *x, size_t n, size_t d, size_t j0, size_t kp,
                             uint32_t *idx_out, float *w_out, float *w2_out)
{
    size_t i = 0;
    for (; i + ASG_P <= n; i += ASG_P)
        asg_block(pk, row, half, hn, x, i, ASG_P, d, j0, kp, j0 == 0, idx_out, w_out, w2_out);
    if (i < n)
        asg_block(pk, row, half, hn, x, i, n - i, d, j0, kp, j0 == 0, idx_out, w_out, w2_out);
}

static void ax_assign(const float *x, size_t n, const float *c, const float *cnorm, size_t k,
                      size_t d, uint32_t *idx_out, float *dist_out)
{
    if (n == 0 || k == 0)
        return;
    /* dist_out holds the best w while the panels run; the last pass turns it into a distance */
    if (n < ASG_FEW || d * ASG_W > ASG_BUF) {
        asg_direct(x, n, c, cnorm, k, d, idx_out, dist_out);
    } else {
        asg_panel pn;
        size_t kmax = asg_group(d), kall = (k + ASG_W - 1) / ASG_W * ASG_W;

        for (size_t j0 = 0; j0 < k; j0 += kmax) {
            size_t kp = kall - j0 < kmax ? kall - j0 : kmax;
            asg_pack(&pn, c, cnorm, k, d, j0, kp);
            asg_group_run(pn.pk, ASG_W, 16, pn.hn, x, n, d, j0, kp, idx_out, dist_out, NULL);
        }
    }
    asg_finish(x, n, d, dist_out, NULL);
}

/* assign_packed: vk_pack_panels' 16-wide panels read in pairs as the 32-wide column blocks, so
 * nothing is packed; a lone last panel is read as both halves, its second half's -||c||^2 / 2
 * row -inf. */
AX_INLINE void asg_packed_run(const float *x, size_t n, const float *pk, const float *cnorm,
                              size_t k, size_t d, uint32_t *idx_out, float *dist_out,
                              float *dist2_out)
{
    _Alignas(64) float hn[ASG_KP];
    size_t panels = (k + VK_PANEL - 1) / VK_PANEL, kpair = panels / 2 * ASG_W;
    size_t kmax = asg_group(d);

    for (size_t j0 = 0; j0 < kpair; j0 += kmax) {
        size_t kp = kpair - j0 < kmax ? kpair - j0 : kmax;
        for (size_t l = 0; l < kp; l++)
            hn[l] = j0 + l < k ? -0.5f * cnorm[j0 + l] : -INFINITY;
        asg_group_run(pk + j0 * d, VK_PANEL, VK_PANEL * d, hn, x, n, d, j0, kp, idx_out, dist_out,
                      dist2_out);
    }
    if (panels % 2) {
        for (size_t l = 0; l < ASG_W; l++)
            hn[l] = l < VK_PANEL && kpair + l < k ? -0.5f * cnorm[kpair + l] : -INFINITY;
        asg_group_run(pk + kpair * d, VK_PANEL, 0, hn, x, n, d, kpair, ASG_W, idx_out, dist_out,
                      dist2_out);
    }
    asg_finish(x, n, d, dist_out, dist2_out);
}

static void ax_assign_packed(const float *x, size_t n, const float *pk, const float *cnorm,
                             size_t k, size_t d, uint32_t *idx_out, float *dist_out,
                             float *dist2_out)
{
    if (n == 0 || k == 0)
        return;
    if (dist2_out) /* two copies: the one without a second keeps assign's register use */
        asg_packed_run(x, n, pk, cnorm, k, d, idx_out, dist_out, dist2_out);
    else
        asg_packed_run(x, n, pk, cnorm, k, d, idx_out, dist_out, NULL);
}

/* ---------------------------------------------------------------- PQ look-up tables */

static void ax_pq_lut_l2(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                         float *lut)
{
    for (size_t j = 0; j < m; j++)
        ax_dist_n(q + j * dsub, cb + j * ksub * dsub, ksub, dsub, lut + j * ksub, 1);
}

static void ax_pq_lut_ip(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                         float *lut)
{
    for (size_t j = 0; j < m; j++)
        ax_dist_n(q + j * dsub, cb + j * ksub * dsub, ksub, dsub, lut + j * ksub, 0);
}

/* ---------------------------------------------------------------- pq_scan8 */

/* 16-lane gathers. On Zen 3 the AVX2 gather (8 lanes) lost to scalar lookups by 2x, so the
 * AVX2 variant is scalar (four codes, eight add chains); this one has not been measured on
 * AVX-512 hardware yet (none was at hand): compare it with the AVX2 file's scalar scan there. */
/* LUT entries of one code, 16 sub-quantizers per gather, summed lane-wise. */
AX_INLINE simde__m512 ax_scan8_one(const uint8_t *code, size_t m, const float *lut)
{
    static const int32_t lut_offs[16] = {0,    256,  512,  768,  1024, 1280, 1536, 1792,
                                         2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840};
    const simde__m512i offs = ax_const(lut_offs);
    const simde__m512i step = simde_mm512_set1_epi32(16 * 256);
    simde__m512 acc = simde_mm512_setzero_ps();
    simde__m512i base = offs;
    size_t j = 0;

    for (; j + 16 <= m; j += 16) {
        simde__m512i idx = simde_mm512_add_epi32(
            ax_u8_to_i32(simde_mm_loadu_si128((const void *)(code + j))), base);
        acc = simde_mm512_add_ps(acc, ax_gather(idx, lut, 16));
        base = simde_mm512_add_epi32(base, step);
    }
    if (j < m) {
        uint8_t b[16] = {0};
        memcpy(b, code + j, m - j);
        simde__m512i idx =
            simde_mm512_add_epi32(ax_u8_to_i32(simde_mm_loadu_si128((const void *)b)), base);
        acc = simde_mm512_add_ps(acc, ax_gather(idx, lut, m - j));
    }
    return acc;
}

static void ax_pq_scan8_gather(const uint8_t *codes, size_t n, size_t m, const float *lut,
                               float *out)
{
    for (size_t i = 0; i < n; i += 16) {
        size_t r = n - i < 16 ? n - i : 16;
        simde__m512 v[16];
        for (size_t g = 0; g < 16; g++)
            v[g] = g < r ? ax_scan8_one(codes + (i + g) * m, m, lut) : simde_mm512_setzero_ps();
        simde__m512 s = ax_tree16(v);
        if (r == 16)
            simde_mm512_storeu_ps(out + i, s);
        else
            ax_store_tail(out + i, s, r);
    }
}

static void ax_pq_scan8(const uint8_t *codes, size_t n, size_t m, const float *lut, float *out)
{
    ax_pq_scan8_gather(codes, n, m, lut, out);
}

/* ---------------------------------------------------------------- dots_packed */

#define DP_P 8 /* points per micro-kernel: 8 x 16 centroids = 8 FMA chains of one zmm each */

/* Points x[i0 .. i0 + np) (np <= DP_P; missing rows repeat the last) against one panel. */
AX_INLINE void dp_block(const float *x, size_t i0, size_t np, const float *panel, size_t d,
                        float *out, size_t k, size_t j0)
{
    const float *xp[DP_P];
    simde__m512 a[DP_P];

    AX_UNROLL
    for (size_t p = 0; p < DP_P; p++) {
        xp[p] = x + (i0 + (p < np ? p : np - 1)) * d;
        a[p] = simde_mm512_setzero_ps();
    }
    for (size_t t = 0; t < d; t++) {
        simde__m512 c = simde_mm512_loadu_ps(panel + t * VK_PANEL);
        AX_UNROLL
        for (size_t p = 0; p < DP_P; p++)
            a[p] = simde_mm512_fmadd_ps(simde_mm512_set1_ps(xp[p][t]), c, a[p]);
    }
    size_t r = k - j0 < VK_PANEL ? k - j0 : VK_PANEL; /* the last panel: its real centroids */
    AX_UNROLL
    for (size_t p = 0; p < DP_P; p++) {
        if (p >= np)
            break;
        ax_store_tail(out + (i0 + p) * k + j0, a[p], r);
    }
}

/* Panel by panel (d * 64 bytes: stays in L1 while every point uses it). */
static void ax_dots_packed(const float *x, size_t n, const float *pk, size_t k, size_t d,
                           float *out)
{
    for (size_t j0 = 0; j0 < k; j0 += VK_PANEL) {
        const float *panel = pk + j0 * d;
        size_t i = 0;
        for (; i + DP_P <= n; i += DP_P)
            dp_block(x, i, DP_P, panel, d, out, k, j0);
        if (i < n)
            dp_block(x, i, n - i, panel, d, out, k, j0);
    }
}

/* ---------------------------------------------------------------- pq_scan4 */

/* Sub-quantizers j .. j + 3 of a block and their four 16-entry tables, one per 128-bit lane. */
AX_INLINE void ax_scan4_step(simde__m512i cd, simde__m512i lt, simde__m512i *acc)
{
    const simde__m512i nib = simde_mm512_set1_epi8(0x0F);
    simde__m512i rl = simde_mm512_shuffle_epi8(lt, simde_mm512_and_si512(cd, nib));
    simde__m512i rh =
        simde_mm512_shuffle_epi8(lt, simde_mm512_and_si512(simde_mm512_srli_epi16(cd, 4), nib));
    acc[0] = simde_mm512_add_epi16(acc[0], rl);
    acc[1] = simde_mm512_add_epi16(acc[1], simde_mm512_srli_epi16(rl, 8));
    acc[2] = simde_mm512_add_epi16(acc[2], rh);
    acc[3] = simde_mm512_add_epi16(acc[3], simde_mm512_srli_epi16(rh, 8));
}

/* 128-bit lanes [a0+a1, a2+a3, b0+b1, b2+b3] as uint16 sums. */
AX_INLINE simde__m512i ax_lanes_epi16(simde__m512i a, simde__m512i b)
{
    return simde_mm512_add_epi16(simde_mm512_shuffle_i32x4(a, b, 0x88),
                                 simde_mm512_shuffle_i32x4(a, b, 0xDD));
}

/* The low nibbles look up vectors 0..15, the high nibbles vectors 16..31. Widening: adding the
 * looked-up bytes as uint16 gives even + 256 * odd (mod 2^16) per pair of bytes; a second
 * accumulator adds the odd bytes alone (srli 8). At the end even = all - (odd << 8) (mod 2^16),
 * exact because every true sum is below 2^16 (m <= 256, bytes <= 255): 3 operations per
 * lookup instead of 4. */
static void ax_pq_scan4(const uint8_t *blocks, size_t nblocks, size_t m, const uint8_t *lut8,
                        uint16_t *out)
{
    /* sums in u16 lanes: 0-7 even 0..14, 8-15 odd 1..15, 16-23 even 16..30, 24-31 odd 17..31 */
    static const uint16_t order[32] = {0,  8,  1,  9,  2,  10, 3,  11, 4,  12, 5,
                                       13, 6,  14, 7,  15, 16, 24, 17, 25, 18, 26,
                                       19, 27, 20, 28, 21, 29, 22, 30, 23, 31};
    const simde__m512i perm = simde_mm512_loadu_si512((const void *)order);

    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + b * m * 16;
        simde__m512i acc[4];
        size_t j = 0;

        AX_UNROLL
        for (size_t a = 0; a < 4; a++)
            acc[a] = simde_mm512_setzero_si512();
        for (; j + 4 <= m; j += 4)
            ax_scan4_step(simde_mm512_loadu_si512((const void *)(blk + j * 16)),
                          simde_mm512_loadu_si512((const void *)(lut8 + j * 16)), acc);
        if (j < m) { /* m = 2 mod 4: two sub-quantizers left, upper lanes zero (tables too) */
            simde__m512i z = simde_mm512_setzero_si512();
            ax_scan4_step(simde_mm512_inserti64x4(
                              z, simde_mm256_loadu_si256((const void *)(blk + j * 16)), 0),
                          simde_mm512_inserti64x4(
                              z, simde_mm256_loadu_si256((const void *)(lut8 + j * 16)), 0),
                          acc);
        }
        simde__m512i lo_even = simde_mm512_sub_epi16(acc[0], simde_mm512_slli_epi16(acc[1], 8));
        simde__m512i hi_even = simde_mm512_sub_epi16(acc[2], simde_mm512_slli_epi16(acc[3], 8));
        simde__m512i s =
            ax_lanes_epi16(ax_lanes_epi16(lo_even, acc[1]), ax_lanes_epi16(hi_even, acc[3]));
        simde_mm512_storeu_si512((void *)(out + b * VK_BLOCK),
                                 simde_mm512_permutexvar_epi16(perm, s));
    }
}

const vk_ops vk_ops_avx512 = {
    .name = "avx512",
    .l2sq = ax_l2sq,
    .ip = ax_ip,
    .l2sq_n = ax_l2sq_n,
    .ip_n = ax_ip_n,
    .assign = ax_assign,
    .assign_packed = ax_assign_packed,
    .pq_lut_l2 = ax_pq_lut_l2,
    .pq_lut_ip = ax_pq_lut_ip,
    .pq_scan8 = ax_pq_scan8,
    .pq_scan4 = ax_pq_scan4,
    .dots_packed = ax_dots_packed,
};

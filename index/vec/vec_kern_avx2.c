/* vec_kern_avx2.c -- the AVX2 + FMA twins of vec_kern_scalar.c, written with SIMDe intrinsics.
 * Built as its own library with -mavx2 -mfma: every function here may use those instructions,
 * so nothing in this file runs except through vk_ops_avx2, which vk_avx2() hands out only after
 * CPUID said yes (no constructors, no exported helpers).
 *
 * Techniques (8 float lanes, 16 ymm registers):
 *   l2sq/ip        4 independent FMA accumulators, one masked load (vmaskmovps) for the tail.
 *   l2sq_n/ip_n    8 vectors at a time, each reduced to one ymm of partial sums; the 8 ymm are
 *                  then summed by one transpose-add tree (tree8), so there is no per-vector
 *                  horizontal sum. d = 1, 2, 4: dense loads of 8 vectors, reduced in-register.
 *   assign         w_j = <x, c_j> - ||c_j||^2 / 2 is maximised (equivalently ||x - c_j||^2 =
 *                  ||x||^2 - 2 w_j is minimised). A panel of centroids is packed transposed on
 *                  the stack (asg_panel: d rows of 16 floats per 16 centroids), then a 4-point
 *                  x 16-centroid micro-kernel broadcasts x[p][t] against one packed row: 8 FMA
 *                  chains starting from -||c_j||^2 / 2, every centroid value reused 4 times from
 *                  a register. The running maximum per lane and its index live across the
 *                  panel; ||x||^2 is added once per point at the end. Fewer than 64 points or
 *                  d > 512: asg_direct, 2 points x 4 centroids vectorised along d.
 *   assign_packed  the same micro-kernel reading centroids already packed by vk_pack_panels (the
 *                  asg_panel layout), any n and d; with dist2_out, each lane also keeps its
 *                  second-largest w (max(sec, min(w, best))), folded with every lane's best
 *                  but the winner's.
 *   pq_lut_*       one l2sq_n/ip_n per sub-quantizer (ksub vectors of dsub floats).
 *   pq_scan8       scalar, 4 codes and 8 add chains at a time (faster than vgatherdps on Zen 3).
 *   pq_scan4       vpshufb lookups, 2 sub-quantizers per ymm, 16-bit accumulation (see
 *                  av_pq_scan4 for the even/odd byte trick).
 *   dots_packed    panel by panel, a 4-point x 16-centroid micro-kernel like assign's (8 FMA
 *                  chains, broadcasts of x[p][t] against one packed row), stored as they are.
 * Invariants: (1) loads never touch memory past the end of an input (tails use vmaskmovps); (2) in
 * assign every (point, centroid) pair is computed by the same sequence of operations wherever it
 * falls in a block, so identical centroids produce identical values and the strict comparisons in
 * index order keep the lower index; (3) pq_scan4 is exact. */
#include <math.h>
#include <simde/x86/avx2.h>
#include <simde/x86/fma.h>
#include <string.h>

#include "vec_kern.h"

#define AV_INLINE static inline __attribute__((always_inline))
/* Loops over registers (points, centroids, accumulators) must unroll completely, or the
 * arrays of vectors they index end up in memory (gcc -O2 does not do it by itself). */
#define AV_UNROLL _Pragma("GCC unroll 16")

/* ---------------------------------------------------------------- helpers */

/* Lanes 0..r-1 all ones (r in 0..8), for vmaskmovps. */
AV_INLINE simde__m256i av_tail_mask(size_t r)
{
    return simde_mm256_cmpgt_epi32(simde_mm256_set1_epi32((int32_t)r),
                                   simde_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AV_INLINE float av_hsum(simde__m256 v)
{
    simde__m128 s =
        simde_mm_add_ps(simde_mm256_castps256_ps128(v), simde_mm256_extractf128_ps(v, 1));
    s = simde_mm_add_ps(s, simde_mm_movehl_ps(s, s));
    s = simde_mm_add_ss(s, simde_mm_shuffle_ps(s, s, 0x55));
    return simde_mm_cvtss_f32(s);
}

/* Eight ymm in, one out: lane i = sum of the 8 lanes of v[i]. */
AV_INLINE simde__m256 av_tree8(const simde__m256 *v)
{
    simde__m256 a0 = simde_mm256_add_ps(simde_mm256_unpacklo_ps(v[0], v[1]),
                                        simde_mm256_unpackhi_ps(v[0], v[1]));
    simde__m256 a1 = simde_mm256_add_ps(simde_mm256_unpacklo_ps(v[2], v[3]),
                                        simde_mm256_unpackhi_ps(v[2], v[3]));
    simde__m256 a2 = simde_mm256_add_ps(simde_mm256_unpacklo_ps(v[4], v[5]),
                                        simde_mm256_unpackhi_ps(v[4], v[5]));
    simde__m256 a3 = simde_mm256_add_ps(simde_mm256_unpacklo_ps(v[6], v[7]),
                                        simde_mm256_unpackhi_ps(v[6], v[7]));
    /* per 128-bit lane: a0 = [v0 v1 v0 v1] partials; now 64-bit unpacks give [v0 v1 v2 v3] */
    simde__m256d b0l =
        simde_mm256_unpacklo_pd(simde_mm256_castps_pd(a0), simde_mm256_castps_pd(a1));
    simde__m256d b0h =
        simde_mm256_unpackhi_pd(simde_mm256_castps_pd(a0), simde_mm256_castps_pd(a1));
    simde__m256d b1l =
        simde_mm256_unpacklo_pd(simde_mm256_castps_pd(a2), simde_mm256_castps_pd(a3));
    simde__m256d b1h =
        simde_mm256_unpackhi_pd(simde_mm256_castps_pd(a2), simde_mm256_castps_pd(a3));
    simde__m256 b0 = simde_mm256_add_ps(simde_mm256_castpd_ps(b0l), simde_mm256_castpd_ps(b0h));
    simde__m256 b1 = simde_mm256_add_ps(simde_mm256_castpd_ps(b1l), simde_mm256_castpd_ps(b1h));
    /* b0 = [v0..v3 | v0..v3] halves, b1 likewise for v4..v7 */
    return simde_mm256_add_ps(simde_mm256_permute2f128_ps(b0, b1, 0x20),
                              simde_mm256_permute2f128_ps(b0, b1, 0x31));
}

/* l2: (x - q)^2 summed into acc; else x * q. */
AV_INLINE simde__m256 av_term(simde__m256 x, simde__m256 q, simde__m256 acc, int l2)
{
    if (l2) {
        simde__m256 e = simde_mm256_sub_ps(x, q);
        return simde_mm256_fmadd_ps(e, e, acc);
    }
    return simde_mm256_fmadd_ps(x, q, acc);
}

/* ---------------------------------------------------------------- l2sq, ip */

AV_INLINE float av_dist(const float *a, const float *b, size_t d, int l2)
{
    simde__m256 s0 = simde_mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t t = 0;

    for (; t + 32 <= d; t += 32) {
        s0 = av_term(simde_mm256_loadu_ps(a + t), simde_mm256_loadu_ps(b + t), s0, l2);
        s1 = av_term(simde_mm256_loadu_ps(a + t + 8), simde_mm256_loadu_ps(b + t + 8), s1, l2);
        s2 = av_term(simde_mm256_loadu_ps(a + t + 16), simde_mm256_loadu_ps(b + t + 16), s2, l2);
        s3 = av_term(simde_mm256_loadu_ps(a + t + 24), simde_mm256_loadu_ps(b + t + 24), s3, l2);
    }
    for (; t + 8 <= d; t += 8)
        s0 = av_term(simde_mm256_loadu_ps(a + t), simde_mm256_loadu_ps(b + t), s0, l2);
    if (t < d) {
        simde__m256i mk = av_tail_mask(d - t);
        s1 =
            av_term(simde_mm256_maskload_ps(a + t, mk), simde_mm256_maskload_ps(b + t, mk), s1, l2);
    }
    return av_hsum(simde_mm256_add_ps(simde_mm256_add_ps(s0, s1), simde_mm256_add_ps(s2, s3)));
}

static float av_l2sq(const float *a, const float *b, size_t d)
{
    return av_dist(a, b, d, 1);
}

static float av_ip(const float *a, const float *b, size_t d)
{
    return av_dist(a, b, d, 0);
}

/* ---------------------------------------------------------------- l2sq_n, ip_n */

/* Partial sums of 4 vectors, one register each: 4 independent FMA chains, one load of q for 4
 * vectors. The lanes are reduced later, 4 * 4 at a time by the tree. */
AV_INLINE void av_partial4(const float *q, const float *const *xs, size_t d, int l2, simde__m256 *v)
{
    size_t t = 0;

    AV_UNROLL
    for (size_t g = 0; g < 4; g++)
        v[g] = simde_mm256_setzero_ps();
    for (; t + 8 <= d; t += 8) {
        simde__m256 qv = simde_mm256_loadu_ps(q + t);
        AV_UNROLL
        for (size_t g = 0; g < 4; g++)
            v[g] = av_term(simde_mm256_loadu_ps(xs[g] + t), qv, v[g], l2);
    }
    if (t < d) {
        simde__m256i mk = av_tail_mask(d - t);
        simde__m256 qv = simde_mm256_maskload_ps(q + t, mk);
        AV_UNROLL
        for (size_t g = 0; g < 4; g++)
            v[g] = av_term(simde_mm256_maskload_ps(xs[g] + t, mk), qv, v[g], l2);
    }
}

AV_INLINE simde__m256 av_elem(simde__m256 x, simde__m256 q, int l2)
{
    return av_term(x, q, simde_mm256_setzero_ps(), l2);
}

/* d = 4: 8 vectors in 4 ymm, two per register. Returns the index of the first vector not done. */
AV_INLINE size_t av_dense4(const float *q, const float *x, size_t n, float *out, int l2)
{
    simde__m256 qq = simde_mm256_set_m128(simde_mm_loadu_ps(q), simde_mm_loadu_ps(q));
    const simde__m256i perm = simde_mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        const float *p = x + i * 4;
        simde__m256 a = av_elem(simde_mm256_loadu_ps(p), qq, l2);
        simde__m256 b = av_elem(simde_mm256_loadu_ps(p + 8), qq, l2);
        simde__m256 c = av_elem(simde_mm256_loadu_ps(p + 16), qq, l2);
        simde__m256 e = av_elem(simde_mm256_loadu_ps(p + 24), qq, l2);
        simde__m256 ab =
            simde_mm256_add_ps(simde_mm256_unpacklo_ps(a, b), simde_mm256_unpackhi_ps(a, b));
        simde__m256 ce =
            simde_mm256_add_ps(simde_mm256_unpacklo_ps(c, e), simde_mm256_unpackhi_ps(c, e));
        simde__m256 s = simde_mm256_add_ps(
            simde_mm256_castpd_ps(
                simde_mm256_unpacklo_pd(simde_mm256_castps_pd(ab), simde_mm256_castps_pd(ce))),
            simde_mm256_castpd_ps(
                simde_mm256_unpackhi_pd(simde_mm256_castps_pd(ab), simde_mm256_castps_pd(ce))));
        /* 128-bit lane g holds vectors g, 2 + g, 4 + g, 6 + g */
        simde_mm256_storeu_ps(out + i, simde_mm256_permutevar8x32_ps(s, perm));
    }
    return i;
}

/* d = 2: 8 vectors in 2 ymm. */
AV_INLINE size_t av_dense2(const float *q, const float *x, size_t n, float *out, int l2)
{
    simde__m256 qq = simde_mm256_setr_ps(q[0], q[1], q[0], q[1], q[0], q[1], q[0], q[1]);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        const float *p = x + i * 2;
        simde__m256 a = av_elem(simde_mm256_loadu_ps(p), qq, l2);
        simde__m256 b = av_elem(simde_mm256_loadu_ps(p + 8), qq, l2);
        simde__m256 s = simde_mm256_add_ps(simde_mm256_shuffle_ps(a, b, 0x88),
                                           simde_mm256_shuffle_ps(a, b, 0xDD));
        /* lanes hold vectors 0 1 4 5 | 2 3 6 7 */
        s = simde_mm256_castpd_ps(simde_mm256_permute4x64_pd(simde_mm256_castps_pd(s), 0xD8));
        simde_mm256_storeu_ps(out + i, s);
    }
    return i;
}

AV_INLINE void av_dist_n(const float *q, const float *x, size_t n, size_t d, float *out, int l2)
{
    size_t i = 0;

    if (d == 1) {
        simde__m256 qq = simde_mm256_set1_ps(q[0]);
        for (; i + 8 <= n; i += 8)
            simde_mm256_storeu_ps(out + i, av_elem(simde_mm256_loadu_ps(x + i), qq, l2));
    } else if (d == 2) {
        i = av_dense2(q, x, n, out, l2);
    } else if (d == 4) {
        i = av_dense4(q, x, n, out, l2);
    } else if (d >= 256) { /* the horizontal sum is noise next to d / 8 FMAs */
        for (; i < n; i++)
            out[i] = av_dist(q, x + i * d, d, l2);
        return;
    }
    for (; i < n; i += 8) {
        size_t r = n - i < 8 ? n - i : 8;
        simde__m256 v[8];
        for (size_t g = 0; g < 8; g += 4) {
            const float *xs[4];
            for (size_t e = 0; e < 4; e++) /* past the tail: repeat the last vector */
                xs[e] = x + (i + (g + e < r ? g + e : r - 1)) * d;
            av_partial4(q, xs, d, l2, v + g);
        }
        for (size_t g = r; g < 8; g++)
            v[g] = simde_mm256_setzero_ps();
        simde__m256 s = av_tree8(v);
        if (r == 8)
            simde_mm256_storeu_ps(out + i, s);
        else
            simde_mm256_maskstore_ps(out + i, av_tail_mask(r), s);
    }
}

static void av_l2sq_n(const float *q, const float *x, size_t n, size_t d, float *out)
{
    av_dist_n(q, x, n, d, out, 1);
}

static void av_ip_n(const float *q, const float *x, size_t n, size_t d, float *out)
{
    av_dist_n(q, x, n, d, out, 0);
}

/* ---------------------------------------------------------------- assign */

#define ASG_W   16   /* centroids per micro-kernel column block (2 ymm) */
#define ASG_P   4    /* points per micro-kernel */
#define ASG_BUF 8192 /* floats of packed centroids on the stack (32 KiB): d <= 512 */
#define ASG_KP  1024 /* at most this many centroids per panel (small d) */
#define ASG_FEW 64   /* fewer points: packing k * d floats costs more than it saves */

/* Dot products of R points (1 or 2) with 4 centroids, d-vectorised, no packing: one FMA chain
 * per pair, each chain the same sequence of operations. For few points or large d. */
AV_INLINE void asg_dots(const float *const *xr, size_t R, const float *const *cq, size_t d,
                        float *dots)
{
    simde__m256 a[8];
    size_t t = 0;

    AV_UNROLL
    for (size_t g = 0; g < 8; g++)
        a[g] = simde_mm256_setzero_ps();
    for (; t + 8 <= d; t += 8) {
        simde__m256 cv[4];
        AV_UNROLL
        for (size_t q = 0; q < 4; q++)
            cv[q] = simde_mm256_loadu_ps(cq[q] + t);
        AV_UNROLL
        for (size_t r = 0; r < R; r++) {
            simde__m256 xv = simde_mm256_loadu_ps(xr[r] + t);
            AV_UNROLL
            for (size_t q = 0; q < 4; q++)
                a[r * 4 + q] = simde_mm256_fmadd_ps(xv, cv[q], a[r * 4 + q]);
        }
    }
    if (t < d) {
        simde__m256i mk = av_tail_mask(d - t);
        simde__m256 cv[4];
        AV_UNROLL
        for (size_t q = 0; q < 4; q++)
            cv[q] = simde_mm256_maskload_ps(cq[q] + t, mk);
        AV_UNROLL
        for (size_t r = 0; r < R; r++) {
            simde__m256 xv = simde_mm256_maskload_ps(xr[r] + t, mk);
            AV_UNROLL
            for (size_t q = 0; q < 4; q++)
                a[r * 4 + q] = simde_mm256_fmadd_ps(xv, cv[q], a[r * 4 + q]);
        }
    }
    simde_mm256_storeu_ps(dots, av_tree8(a));
}

#define VKT_INLINE AV_INLINE
#define VKT_UNROLL AV_UNROLL
#define VKT_DIST   av_dist
#define VKT_DOTS   8
#include "vec_kern_asg.h"

/* Lane-wise maximum of best (indices in bi) folded to one (value, lowest index among equals).
 * With sec (each lane's second-largest), also the second-largest of all (w2_out): the largest
 * of every lane's second and every lane's best but the winner's. */
AV_INLINE void asg_fold(simde__m256 best, simde__m256i bi, const simde__m256 *sec, float *w_out,
                        uint32_t *j_out, float *w2_out)
{
    simde__m256 m = simde_mm256_max_ps(best, simde_mm256_permute2f128_ps(best, best, 1));
    m = simde_mm256_max_ps(m, simde_mm256_shuffle_ps(m, m, 0x4E));
    m = simde_mm256_max_ps(m, simde_mm256_shuffle_ps(m, m, 0xB1));
    simde__m256 eq = simde_mm256_cmp_ps(best, m, SIMDE_CMP_EQ_OQ);
    simde__m256i cand =
        simde_mm256_blendv_epi8(simde_mm256_set1_epi32(-1), bi, simde_mm256_castps_si256(eq));
    cand = simde_mm256_min_epu32(cand, simde_mm256_permute2x128_si256(cand, cand, 1));
    cand = simde_mm256_min_epu32(cand, simde_mm256_shuffle_epi32(cand, 0x4E));
    cand = simde_mm256_min_epu32(cand, simde_mm256_shuffle_epi32(cand, 0xB1));
    *w_out = simde_mm256_cvtss_f32(m);
    *j_out = (uint32_t)simde_mm256_cvtsi256_si32(cand);
    if (sec) { /* lanes hold distinct indices, so only the winner's lane matches */
        simde__m256i won = simde_mm256_cmpeq_epi32(bi, cand);
        simde__m256 r = simde_mm256_blendv_ps(best, simde_mm256_set1_ps(-INFINITY),
                                              simde_mm256_castsi256_ps(won));
        r = simde_mm256_max_ps(r, *sec);
        r = simde_mm256_max_ps(r, simde_mm256_permute2f128_ps(r, r, 1));
        r = simde_mm256_max_ps(r, simde_mm256_shuffle_ps(r, r, 0x4E));
        r = simde_mm256_max_ps(r, simde_mm256_shuffle_ps(r, r, 0xB1));
        *w2_out = simde_mm256_cvtss_f32(r);
    }
}

/* With sec: the lane's second-largest so far becomes the larger of it and min(w, best) (a tie
 * with the best makes the second equal to it). */
AV_INLINE void asg_update(simde__m256 w, simde__m256i jv, simde__m256 *best, simde__m256i *bi,
                          simde__m256 *sec)
{
    if (sec)
        *sec = simde_mm256_max_ps(*sec, simde_mm256_min_ps(w, *best));
    simde__m256 gt = simde_mm256_cmp_ps(w, *best, SIMDE_CMP_GT_OQ); /* strict: lower index wins */
    *best = simde_mm256_blendv_ps(*best, w, gt);
    *bi = simde_mm256_blendv_epi8(*bi, jv, simde_mm256_castps_si256(gt));
}

/* The micro-kernel of assign and dots_packed: 4 points (xp) against one column block of 16
 * packed centroids (ct: d rows of 16 floats), a0/a1[p] += x[p][t] * the block's row t, for
 * every t -- 8 FMA chains, each centroid value loaded once and reused 4 times from a register. */
AV_INLINE void av_panel_fma(const float *const *xp, const float *ct, size_t d, simde__m256 *a0,
                            simde__m256 *a1)
{
    for (size_t t = 0; t < d; t++) {
        simde__m256 c0 = simde_mm256_loadu_ps(ct + t * 16);
        simde__m256 c1 = simde_mm256_loadu_ps(ct + t * 16 + 8);
        AV_UNROLL
        for (size_t p = 0; p < 4; p++) {
            simde__m256 xb = simde_mm256_broadcast_ss(xp[p] + t);
            a0[p] = simde_mm256_fmadd_ps(xb, c0, a0[p]);
            a1[p] = simde_mm256_fmadd_ps(xb, c1, a1[p]);
        }
    }
}

/* Points x[i0 .. i0 + np) (np <= ASG_P; missing rows repeat the last) against kp centroids
 * from j0 packed at pk (the vk_pack_panels layout: ASG_W == VK_PANEL), hn[j - j0] =
 * -||c_j||^2 / 2 (-inf for padding). w_out/idx_out: the best w = <x, c> - ||c||^2 / 2 over the
 * panels so far (@first: these are the first); w2_out (NULL: not wanted) the second best. */
AV_INLINE void asg_block(const float *pk, const float *hn, const float *x, size_t i0, size_t np,
                         size_t d, size_t j0, size_t kp, int first, uint32_t *idx_out, float *w_out,
                         float *w2_out)
{
    const float *xp[ASG_P];
    simde__m256 best[ASG_P], sec[ASG_P];
    simde__m256i bi[ASG_P];
    simde__m256i jv = simde_mm256_add_epi32(simde_mm256_set1_epi32((int32_t)j0),
                                            simde_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const simde__m256i step = simde_mm256_set1_epi32(8);

    AV_UNROLL
    for (size_t p = 0; p < ASG_P; p++) {
        xp[p] = x + (i0 + (p < np ? p : np - 1)) * d;
        best[p] = simde_mm256_set1_ps(-INFINITY);
        sec[p] = best[p];
        bi[p] = simde_mm256_setzero_si256();
    }
    for (size_t s = 0; s < kp / ASG_W; s++) {
        const float *ct = pk + s * d * ASG_W;
        simde__m256 h0 = simde_mm256_load_ps(hn + s * ASG_W);
        simde__m256 h1 = simde_mm256_load_ps(hn + s * ASG_W + 8);
        simde__m256 a0[ASG_P], a1[ASG_P];
        AV_UNROLL
        for (size_t p = 0; p < ASG_P; p++) {
            a0[p] = h0;
            a1[p] = h1;
        }
        av_panel_fma(xp, ct, d, a0, a1);
        simde__m256i jv1 = simde_mm256_add_epi32(jv, step);
        AV_UNROLL
        for (size_t p = 0; p < ASG_P; p++) {
            asg_update(a0[p], jv, &best[p], &bi[p], w2_out ? &sec[p] : NULL);
            asg_update(a1[p], jv1, &best[p], &bi[p], w2_out ? &sec[p] : NULL);
        }
        jv = simde_mm256_add_epi32(jv1, step);
    }
    AV_UNROLL
    for (size_t p = 0; p < ASG_P; p++) {
        float w, w2 = -INFINITY;
        uint32_t j;
        if (p >= np)
            break;
        asg_fold(best[p], bi[p], w2_out ? &sec[p] : NULL, &w, &j, &w2);
        asg_merge(i0 + p, first, w, j, w2, idx_out, w_out, w2_out);
    }
}

static void av_assign(const float *x, size_t n, const float *c, const float *cnorm, size_t k,
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
            size_t i = 0;
            for (; i + ASG_P <= n; i += ASG_P)
                asg_block(pn.pk, pn.hn, x, i, ASG_P, d, j0, kp, j0 == 0, idx_out, dist_out, NULL);
            if (i < n)
                asg_block(pn.pk, pn.hn, x, i, n - i, d, j0, kp, j0 == 0, idx_out, dist_out, NULL);
        }
    }
    asg_finish(x, n, d, dist_out, NULL);
}

/* assign_packed: the centroids come packed (the layout asg_block reads), so there is nothing to
 * pack; only the -||c||^2 / 2 row is built per group of panels. */
AV_INLINE void asg_packed_run(const float *x, size_t n, const float *pk, const float *cnorm,
                              size_t k, size_t d, uint32_t *idx_out, float *dist_out,
                              float *dist2_out)
{
    _Alignas(32) float hn[ASG_KP];
    size_t kmax = asg_group(d), kall = (k + ASG_W - 1) / ASG_W * ASG_W;

    for (size_t j0 = 0; j0 < k; j0 += kmax) {
        size_t kp = kall - j0 < kmax ? kall - j0 : kmax;
        for (size_t l = 0; l < kp; l++)
            hn[l] = j0 + l < k ? -0.5f * cnorm[j0 + l] : -INFINITY;
        const float *g = pk + j0 * d;
        size_t i = 0;
        for (; i + ASG_P <= n; i += ASG_P)
            asg_block(g, hn, x, i, ASG_P, d, j0, kp, j0 == 0, idx_out, dist_out, dist2_out);
        if (i < n)
            asg_block(g, hn, x, i, n - i, d, j0, kp, j0 == 0, idx_out, dist_out, dist2_out);
    }
    asg_finish(x, n, d, dist_out, dist2_out);
}

static void av_assign_packed(const float *x, size_t n, const float *pk, const float *cnorm,
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

static void av_pq_lut_l2(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                         float *lut)
{
    for (size_t j = 0; j < m; j++)
        av_dist_n(q + j * dsub, cb + j * ksub * dsub, ksub, dsub, lut + j * ksub, 1);
}

static void av_pq_lut_ip(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                         float *lut)
{
    for (size_t j = 0; j < m; j++)
        av_dist_n(q + j * dsub, cb + j * ksub * dsub, ksub, dsub, lut + j * ksub, 0);
}

/* ---------------------------------------------------------------- pq_scan8 */

/* Sum of one code's LUT entries in two chains (even and odd sub-quantizers), reading the code
 * bytes 8 at a time. */
AV_INLINE void av_scan8_two(const uint8_t *c0, const uint8_t *c1, size_t m, const float *lut,
                            float *o0, float *o1)
{
    float s0 = 0.0f, t0 = 0.0f, s1 = 0.0f, t1 = 0.0f;
    size_t j = 0;

    for (; j + 8 <= m; j += 8) {
        const float *l = lut + j * 256;
        uint64_t w0, w1;
        memcpy(&w0, c0 + j, 8);
        memcpy(&w1, c1 + j, 8);
        AV_UNROLL
        for (unsigned b = 0; b < 8; b += 2) {
            s0 += l[b * 256 + ((w0 >> (8 * b)) & 255)];
            t0 += l[(b + 1) * 256 + ((w0 >> (8 * b + 8)) & 255)];
            s1 += l[b * 256 + ((w1 >> (8 * b)) & 255)];
            t1 += l[(b + 1) * 256 + ((w1 >> (8 * b + 8)) & 255)];
        }
    }
    for (; j < m; j++) {
        s0 += lut[j * 256 + c0[j]];
        s1 += lut[j * 256 + c1[j]];
    }
    *o0 = s0 + t0;
    *o1 = s1 + t1;
}

/* Scalar on purpose: on Zen 3, vgatherdps of 8 LUT entries per code measured 40-64 Mvec/s at
 * m = 32 against 100-130 Mvec/s for this (two codes, four add chains, 8-byte code loads). */
/* Four codes at a time, two chains each: eight independent add chains hide the 3-cycle add
 * latency, so the loop is bound by the two loads per cycle (one LUT entry per sub-quantizer),
 * about 1.5x the two-code version at m = 32. */
AV_INLINE void av_scan8_four(const uint8_t *c, size_t m, const float *lut, float *o)
{
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    size_t j = 0;

    for (; j + 8 <= m; j += 8) {
        const float *l = lut + j * 256;
        uint64_t w[4];
        AV_UNROLL
        for (unsigned v = 0; v < 4; v++)
            memcpy(&w[v], c + v * m + j, 8);
        AV_UNROLL
        for (unsigned b = 0; b < 8; b += 2) {
            AV_UNROLL
            for (unsigned v = 0; v < 4; v++) {
                s[v] += l[b * 256 + ((w[v] >> (8 * b)) & 255)];
                t[v] += l[(b + 1) * 256 + ((w[v] >> (8 * b + 8)) & 255)];
            }
        }
    }
    for (; j < m; j++)
        AV_UNROLL
    for (unsigned v = 0; v < 4; v++)
        s[v] += lut[j * 256 + c[v * m + j]];
    AV_UNROLL
    for (unsigned v = 0; v < 4; v++)
        o[v] = s[v] + t[v];
}

static void av_pq_scan8(const uint8_t *codes, size_t n, size_t m, const float *lut, float *out)
{
    size_t i = 0;
    float dummy;

    for (; i + 4 <= n; i += 4)
        av_scan8_four(codes + i * m, m, lut, out + i);
    for (; i + 2 <= n; i += 2)
        av_scan8_two(codes + i * m, codes + (i + 1) * m, m, lut, out + i, out + i + 1);
    if (i < n)
        av_scan8_two(codes + i * m, codes + i * m, m, lut, out + i, &dummy);
}

/* ---------------------------------------------------------------- dots_packed */

#define DP_P ASG_P /* av_panel_fma's 4 points x 16 centroids */
_Static_assert(VK_PANEL == ASG_W && ASG_W == 16 && ASG_P == 4, "av_panel_fma's shape");

/* Points x[i0 .. i0 + np) (np <= DP_P; missing rows repeat the last) against panel s. */
AV_INLINE void dp_block(const float *x, size_t i0, size_t np, const float *panel, size_t d,
                        float *out, size_t k, size_t j0)
{
    const float *xp[DP_P];
    simde__m256 a0[DP_P], a1[DP_P];

    AV_UNROLL
    for (size_t p = 0; p < DP_P; p++) {
        xp[p] = x + (i0 + (p < np ? p : np - 1)) * d;
        a0[p] = simde_mm256_setzero_ps();
        a1[p] = simde_mm256_setzero_ps();
    }
    av_panel_fma(xp, panel, d, a0, a1);
    AV_UNROLL
    for (size_t p = 0; p < DP_P; p++) {
        if (p >= np)
            break;
        float *o = out + (i0 + p) * k + j0;
        if (j0 + VK_PANEL <= k) {
            simde_mm256_storeu_ps(o, a0[p]);
            simde_mm256_storeu_ps(o + 8, a1[p]);
        } else { /* the last panel: only its k - j0 real centroids */
            _Alignas(32) float tmp[VK_PANEL];
            simde_mm256_store_ps(tmp, a0[p]);
            simde_mm256_store_ps(tmp + 8, a1[p]);
            memcpy(o, tmp, (k - j0) * sizeof(float));
        }
    }
}

/* Panel by panel (d * 64 bytes: stays in L1 while every point uses it). */
static void av_dots_packed(const float *x, size_t n, const float *pk, size_t k, size_t d,
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

/* One ymm covers sub-quantizers j and j + 1 of a block (16 code bytes each, one per 128-bit
 * lane), and lut8 + j * 16 holds their two 16-entry tables in the same lanes, so one vpshufb on
 * the low nibbles looks up vectors 0..15 and one on the high nibbles vectors 16..31.
 * Widening: adding the looked-up bytes as uint16 gives even + 256 * odd (mod 2^16) per pair of
 * bytes; a second accumulator adds the odd bytes alone (srli 8). At the end even = all -
 * (odd << 8) (mod 2^16), exact because every true sum is below 2^16 (m <= 256, bytes <= 255).
 * That is 3 operations per lookup instead of 4 for mask + shift + two adds. */
static void av_pq_scan4(const uint8_t *blocks, size_t nblocks, size_t m, const uint8_t *lut8,
                        uint16_t *out)
{
    const simde__m256i nib = simde_mm256_set1_epi8(0x0F);

    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + b * m * 16;
        simde__m256i lo_all = simde_mm256_setzero_si256(), lo_odd = lo_all;
        simde__m256i hi_all = lo_all, hi_odd = lo_all;

        for (size_t j = 0; j + 2 <= m; j += 2) {
            simde__m256i cd = simde_mm256_loadu_si256((const void *)(blk + j * 16));
            simde__m256i lt = simde_mm256_loadu_si256((const void *)(lut8 + j * 16));
            simde__m256i rl = simde_mm256_shuffle_epi8(lt, simde_mm256_and_si256(cd, nib));
            simde__m256i rh = simde_mm256_shuffle_epi8(
                lt, simde_mm256_and_si256(simde_mm256_srli_epi16(cd, 4), nib));
            lo_all = simde_mm256_add_epi16(lo_all, rl);
            lo_odd = simde_mm256_add_epi16(lo_odd, simde_mm256_srli_epi16(rl, 8));
            hi_all = simde_mm256_add_epi16(hi_all, rh);
            hi_odd = simde_mm256_add_epi16(hi_odd, simde_mm256_srli_epi16(rh, 8));
        }
        simde__m256i lo_even = simde_mm256_sub_epi16(lo_all, simde_mm256_slli_epi16(lo_odd, 8));
        simde__m256i hi_even = simde_mm256_sub_epi16(hi_all, simde_mm256_slli_epi16(hi_odd, 8));
        /* fold the two 128-bit lanes: [even | odd] sums, 8 uint16 each */
        simde__m256i lo =
            simde_mm256_add_epi16(simde_mm256_permute2x128_si256(lo_even, lo_odd, 0x20),
                                  simde_mm256_permute2x128_si256(lo_even, lo_odd, 0x31));
        simde__m256i hi =
            simde_mm256_add_epi16(simde_mm256_permute2x128_si256(hi_even, hi_odd, 0x20),
                                  simde_mm256_permute2x128_si256(hi_even, hi_odd, 0x31));
        simde__m128i le = simde_mm256_castsi256_si128(lo),
                     lodd = simde_mm256_extracti128_si256(lo, 1);
        simde__m128i he = simde_mm256_castsi256_si128(hi),
                     hodd = simde_mm256_extracti128_si256(hi, 1);
        uint16_t *o = out + b * VK_BLOCK;
        simde_mm_storeu_si128((void *)o, simde_mm_unpacklo_epi16(le, lodd));
        simde_mm_storeu_si128((void *)(o + 8), simde_mm_unpackhi_epi16(le, lodd));
        simde_mm_storeu_si128((void *)(o + 16), simde_mm_unpacklo_epi16(he, hodd));
        simde_mm_storeu_si128((void *)(o + 24), simde_mm_unpackhi_epi16(he, hodd));
    }
}

const vk_ops vk_ops_avx2 = {
    .name = "avx2",
    .l2sq = av_l2sq,
    .ip = av_ip,
    .l2sq_n = av_l2sq_n,
    .ip_n = av_ip_n,
    .assign = av_assign,
    .assign_packed = av_assign_packed,
    .pq_lut_l2 = av_pq_lut_l2,
    .pq_lut_ip = av_pq_lut_ip,
    .pq_scan8 = av_pq_scan8,
    .dots_packed = av_dots_packed,
    .pq_scan4 = av_pq_scan4,
};

/* vec_kern_asg.h -- the parts of the assign kernels that read the same in the AVX2 and the
 * AVX-512 file: the packing of a panel of centroids, the direct path for few points or large
 * d, the merge of one group of panels' results into the earlier groups', the final distance
 * pass, and the size of a group. Not a header of declarations: each of the two files includes
 * it once and compiles its own copy for its instruction set.
 *
 * The includer defines first:
 *  - VKT_INLINE, VKT_UNROLL: its always-inline and unroll macros;
 *  - VKT_DIST(a, b, d, l2): its squared L2 distance (l2 = 1) or inner product (l2 = 0);
 *  - VKT_DOTS: the floats asg_dots writes (4 per point, 2 points, padded to a register);
 *  - asg_dots(xr, R, cq, d, dots): dots[r * 4 + q] = <xr[r], cq[q]>, R of 1 or 2 points;
 *  - ASG_W, ASG_BUF, ASG_KP: its column-block width, panel buffer and panel limit. */
#ifndef VEC_KERN_ASG_H
#define VEC_KERN_ASG_H

/* Packed panel: centroids j0 .. j0 + kp (kp a multiple of ASG_W), transposed per column block:
 * pk[(s * d + t) * ASG_W + l] = c[j0 + s * ASG_W + l][t], zero past k; hn[...] = -cnorm / 2,
 * -inf past k so padding never wins. */
typedef struct asg_panel {
    _Alignas(64) float pk[ASG_BUF];
    _Alignas(64) float hn[ASG_KP];
} asg_panel;

static void asg_pack(asg_panel *pn, const float *c, const float *cnorm, size_t k, size_t d,
                     size_t j0, size_t kp)
{
    for (size_t s = 0; s < kp / ASG_W; s++) {
        float *dst = pn->pk + s * d * ASG_W;
        for (size_t l = 0; l < ASG_W; l++) {
            size_t j = j0 + s * ASG_W + l;
            if (j < k) {
                const float *cj = c + j * d;
                for (size_t t = 0; t < d; t++)
                    dst[t * ASG_W + l] = cj[t];
                pn->hn[s * ASG_W + l] = -0.5f * cnorm[j];
            } else {
                for (size_t t = 0; t < d; t++)
                    dst[t * ASG_W + l] = 0.0f;
                pn->hn[s * ASG_W + l] = -INFINITY;
            }
        }
    }
}

/* Points two at a time against centroids four at a time, vectorised along d, no packing: the
 * best w = <x, c> - ||c||^2 / 2 and its index (the lower one on a tie) into w_out, idx_out. */
static void asg_direct(const float *x, size_t n, const float *c, const float *cnorm, size_t k,
                       size_t d, uint32_t *idx_out, float *w_out)
{
    for (size_t i = 0; i < n; i += 2) {
        size_t R = n - i >= 2 ? 2 : 1;
        const float *xr[2] = {x + i * d, x + (i + R - 1) * d};
        float bw[2] = {0.0f, 0.0f};
        uint32_t bj[2] = {0, 0};
        for (size_t j = 0; j < k; j += 4) {
            const float *cq[4];
            float dots[VKT_DOTS];
            VKT_UNROLL
            for (size_t q = 0; q < 4; q++)
                cq[q] = c + (j + q < k ? j + q : k - 1) * d;
            if (R == 2)
                asg_dots(xr, 2, cq, d, dots);
            else
                asg_dots(xr, 1, cq, d, dots);
            VKT_UNROLL
            for (size_t r = 0; r < R; r++) {
                for (size_t q = 0; q < 4 && j + q < k; q++) {
                    float w = dots[r * 4 + q] - 0.5f * cnorm[j + q];
                    if (j + q == 0 || w > bw[r]) { /* strict: the lower index wins a tie */
                        bw[r] = w;
                        bj[r] = (uint32_t)(j + q);
                    }
                }
            }
        }
        VKT_UNROLL
        for (size_t r = 0; r < R; r++) {
            w_out[i + r] = bw[r];
            idx_out[i + r] = bj[r];
        }
    }
}

/* One point's best w (index j) and second-best w2 over a group of panels, merged into what
 * the groups before it found (@first: there were none). */
VKT_INLINE void asg_merge(size_t i, int first, float w, uint32_t j, float w2, uint32_t *idx_out,
                          float *w_out, float *w2_out)
{
    if (first) {
        w_out[i] = w;
        idx_out[i] = j;
        if (w2_out)
            w2_out[i] = w2;
        return;
    }
    if (w2_out) { /* the larger of both seconds and the lesser of both bests */
        float lo = w < w_out[i] ? w : w_out[i];
        w2 = w2 > lo ? w2 : lo;
        w2_out[i] = w2 > w2_out[i] ? w2 : w2_out[i];
    }
    if (w > w_out[i]) { /* panels come in index order: strict keeps the lower */
        w_out[i] = w;
        idx_out[i] = j;
    }
}

/* w (and w2) -> ||x||^2 - 2w, clamped at 0 (w2 = -inf, k = 1: +inf). */
VKT_INLINE void asg_finish(const float *x, size_t n, size_t d, float *dist_out, float *dist2_out)
{
    for (size_t i = 0; i < n; i++) {
        float xn = VKT_DIST(x + i * d, x + i * d, d, 0), e = xn - 2.0f * dist_out[i];
        dist_out[i] = e > 0.0f ? e : 0.0f;
        if (dist2_out) {
            e = xn - 2.0f * dist2_out[i];
            dist2_out[i] = e > 0.0f ? e : 0.0f;
        }
    }
}

/* Centroids per panel group: d * ASG_W floats per column block, ASG_BUF floats in all (L1), at
 * least one block. */
VKT_INLINE size_t asg_group(size_t d)
{
    size_t kmax = ASG_BUF / (d * ASG_W) * ASG_W;
    return kmax < ASG_W ? ASG_W : kmax < ASG_KP ? kmax : ASG_KP;
}

#endif

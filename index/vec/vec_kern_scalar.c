/* vec_kern_scalar.c -- the reference kernels of vec_kern.h: plain C, one obvious loop each.
 * These are the specification the AVX2 and AVX-512 twins are tested against, and the variant
 * WEIR_FORCE_SCALAR=1 (or a CPU without AVX2) runs. Keep them simple rather than fast: every sum
 * runs in index order with one float accumulator, so the result is reproducible anywhere.
 * Invariants: (1) assign() uses the direct form sum (x - c)^2, never the norm expansion, so its
 * distances are the exact reference; (2) on equal distances the lower centroid index wins;
 * (3) pq_scan4 is integer arithmetic and exact. */
#include <math.h>

#include "vec_kern.h"

static float sc_l2sq(const float *a, const float *b, size_t d)
{
    float s = 0.0f;
    for (size_t t = 0; t < d; t++) {
        float e = a[t] - b[t];
        s += e * e;
    }
    return s;
}

static float sc_ip(const float *a, const float *b, size_t d)
{
    float s = 0.0f;
    for (size_t t = 0; t < d; t++)
        s += a[t] * b[t];
    return s;
}

static void sc_l2sq_n(const float *q, const float *x, size_t n, size_t d, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sc_l2sq(q, x + i * d, d);
}

static void sc_ip_n(const float *q, const float *x, size_t n, size_t d, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sc_ip(q, x + i * d, d);
}

/* cnorm is not needed by the direct form; it is part of the signature for the SIMD twins. */
static void sc_assign(const float *x, size_t n, const float *c, const float *cnorm, size_t k,
                      size_t d, uint32_t *idx_out, float *dist_out)
{
    (void)cnorm;
    if (k == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        uint32_t best = 0;
        float bd = sc_l2sq(xi, c, d);
        for (size_t j = 1; j < k; j++) {
            float e = sc_l2sq(xi, c + j * d, d);
            if (e < bd) { /* strict: the lower index wins a tie */
                bd = e;
                best = (uint32_t)j;
            }
        }
        idx_out[i] = best;
        dist_out[i] = bd;
    }
}

/* The direct form again, reading centroid j as column j % VK_PANEL of panel j / VK_PANEL. */
static void sc_assign_packed(const float *x, size_t n, const float *pk, const float *cnorm,
                             size_t k, size_t d, uint32_t *idx_out, float *dist_out,
                             float *dist2_out)
{
    (void)cnorm;
    for (size_t i = 0; i < n && k > 0; i++) {
        const float *xi = x + i * d;
        uint32_t best = 0;
        float b1 = INFINITY, b2 = INFINITY;
        for (size_t j = 0; j < k; j++) {
            const float *col = pk + (j / VK_PANEL) * d * VK_PANEL + j % VK_PANEL;
            float e = 0.0f;
            for (size_t t = 0; t < d; t++) {
                float u = xi[t] - col[t * VK_PANEL];
                e += u * u;
            }
            if (j == 0 || e < b1) { /* strict: the lower index wins a tie */
                b2 = b1;
                b1 = e;
                best = (uint32_t)j;
            } else if (e < b2) {
                b2 = e;
            }
        }
        idx_out[i] = best;
        dist_out[i] = b1;
        if (dist2_out)
            dist2_out[i] = b2;
    }
}

static void sc_pq_lut_l2(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                         float *lut)
{
    for (size_t j = 0; j < m; j++)
        sc_l2sq_n(q + j * dsub, cb + j * ksub * dsub, ksub, dsub, lut + j * ksub);
}

static void sc_pq_lut_ip(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                         float *lut)
{
    for (size_t j = 0; j < m; j++)
        sc_ip_n(q + j * dsub, cb + j * ksub * dsub, ksub, dsub, lut + j * ksub);
}

static void sc_pq_scan8(const uint8_t *codes, size_t n, size_t m, const float *lut, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *ci = codes + i * m;
        float s = 0.0f;
        for (size_t j = 0; j < m; j++)
            s += lut[j * 256 + ci[j]];
        out[i] = s;
    }
}

static void sc_pq_scan4(const uint8_t *blocks, size_t nblocks, size_t m, const uint8_t *lut8,
                        uint16_t *out)
{
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + b * m * 16;
        for (size_t v = 0; v < VK_BLOCK; v++) {
            unsigned s = 0;
            for (size_t j = 0; j < m; j++)
                s += lut8[j * 16 + vk_code4(blk, v, j)];
            out[b * VK_BLOCK + v] = (uint16_t)s;
        }
    }
}

static void sc_dots_packed(const float *x, size_t n, const float *pk, size_t k, size_t d,
                           float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        for (size_t j = 0; j < k; j++) {
            const float *col = pk + (j / VK_PANEL) * d * VK_PANEL + j % VK_PANEL;
            float acc = 0.0f;
            for (size_t t = 0; t < d; t++)
                acc += xi[t] * col[t * VK_PANEL];
            out[i * k + j] = acc;
        }
    }
}

const vk_ops vk_ops_scalar = {
    .name = "scalar",
    .l2sq = sc_l2sq,
    .ip = sc_ip,
    .l2sq_n = sc_l2sq_n,
    .ip_n = sc_ip_n,
    .assign = sc_assign,
    .assign_packed = sc_assign_packed,
    .pq_lut_l2 = sc_pq_lut_l2,
    .pq_lut_ip = sc_pq_lut_ip,
    .pq_scan8 = sc_pq_scan8,
    .pq_scan4 = sc_pq_scan4,
    .dots_packed = sc_dots_packed,
};

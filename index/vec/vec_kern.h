/* vec_kern.h -- the SIMD kernels of the vector index, behind one table of function pointers.
 * Every kernel has three variants with the same signature: scalar (vec_kern_scalar.c, the
 * reference), AVX2 (vec_kern_avx2.c) and AVX-512 (vec_kern_avx512.c), the last two written with
 * SIMDe intrinsics and each built as its own small library with its -m flags. vk_get() picks
 * one at first use by CPUID (AVX-512F+BW+VL+DQ, else AVX2+FMA, else scalar);
 * WEIR_FORCE_SCALAR=1 in the environment forces the scalar one.
 *
 * Conventions: d is the vector dimension (any d >= 1, no alignment or padding assumed);
 * arrays are row-major; no kernel allocates; outputs never alias inputs.
 * Float kernels may differ from the scalar twin by summation order only (relative error
 * ~1e-5); the integer kernels (pq_scan4) are bit-exact against the twin. */
#ifndef WEIR_VEC_KERN_H
#define WEIR_VEC_KERN_H
#include <stddef.h>
#include <stdint.h>

/* 4-bit fast-scan layout. Vectors are grouped in blocks of VK_BLOCK = 32. A block of m
 * sub-quantizers (m even) is m * 16 bytes: for sub-quantizer j, 16 bytes at offset j * 16, where
 * byte i (0..15) holds the code of vector i in its low nibble and the code of vector i + 16 in
 * its high nibble. vk_pack4() builds this layout from plain codes (one byte per code). */
#define VK_BLOCK 32

/* Packed centroids for dots_packed: k centroids of d floats in ceil(k / VK_PANEL) panels of
 * d * VK_PANEL floats, transposed: pk[(s * d + t) * VK_PANEL + l] = c[s * VK_PANEL + l][t], zero
 * past k. vk_pack_panels() builds it. */
#define VK_PANEL 16

typedef struct vk_ops {
    const char *name; /* "avx512", "avx2" or "scalar" */

    /* Squared L2 distance and inner product of two d-vectors. */
    float (*l2sq)(const float *a, const float *b, size_t d);
    float (*ip)(const float *a, const float *b, size_t d);

    /* One query against n vectors stored back to back (x[i * d .. i * d + d)):
     * out[i] = l2sq(q, x_i), resp. ip(q, x_i). */
    void (*l2sq_n)(const float *q, const float *x, size_t n, size_t d, float *out);
    void (*ip_n)(const float *q, const float *x, size_t n, size_t d, float *out);

    /* k-means assignment: for each of n points x_i, the index of the nearest of k centroids c_j
     * by squared L2 and that distance. cnorm[j] = ||c_j||^2 (precomputed by the caller); the
     * kernel may compute ||x||^2 - 2<x,c> + ||c||^2 (clamped at 0) instead of the direct
     * difference, so dist_out matches the twin to ~1e-4 relative. On equal distances the lower
     * index wins. The SIMD variants pack panels of centroids in a buffer on the stack (32 KiB for
     * AVX2, 64 KiB for AVX-512): call it from a thread with at least 128 KiB of stack. */
    void (*assign)(const float *x, size_t n, const float *c, const float *cnorm, size_t k, size_t d,
                   uint32_t *idx_out, float *dist_out);

    /* assign with the centroids packed by vk_pack_panels() (pk, k of them), and optionally
     * (dist2_out not NULL) the second-smallest squared distance of each point: equal to dist_out
     * when two centroids tie, +inf when k = 1. Any n >= 0 and d >= 1; nothing is packed per call,
     * so a caller that assigns many batches against the same centroids packs them once. */
    void (*assign_packed)(const float *x, size_t n, const float *pk, const float *cnorm, size_t k,
                          size_t d, uint32_t *idx_out, float *dist_out, float *dist2_out);

    /* PQ lookup tables. The query q (d = m * dsub floats) is cut into m sub-vectors; the codebook
     * cb holds, for each sub-quantizer j, ksub centroids of dsub floats:
     * cb[(j * ksub + c) * dsub .. + dsub). Writes lut[j * ksub + c] = l2sq (resp. ip) of q's
     * sub-vector j and centroid c. ksub is 16 or 256. */
    void (*pq_lut_l2)(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                      float *lut);
    void (*pq_lut_ip)(const float *q, const float *cb, size_t m, size_t ksub, size_t dsub,
                      float *lut);

    /* 8-bit PQ scan (asymmetric distance): codes holds n codes of m bytes
     * (codes[i * m + j]); out[i] = sum over j of lut[j * 256 + codes[i * m + j]]. */
    void (*pq_scan8)(const uint8_t *codes, size_t n, size_t m, const float *lut, float *out);

    /* 4-bit fast scan over nblocks blocks in the layout above (m even). lut8 holds m tables of
     * 16 unsigned bytes (lut8[j * 16 + c]). out[b * 32 + v] = sum over j of
     * lut8[j * 16 + code(b, v, j)], as uint16 (exact: m <= 256 keeps it below 65536). */
    void (*pq_scan4)(const uint8_t *blocks, size_t nblocks, size_t m, const uint8_t *lut8,
                     uint16_t *out);

    /* Inner products of n points with k centroids packed by vk_pack_panels():
     * out[i * k + j] = <x_i, c_j>, the sum over t in ascending order (the SIMD variants fuse
     * each multiply-add). A search's coarse step: a few queries against every centroid. */
    void (*dots_packed)(const float *x, size_t n, const float *pk, size_t k, size_t d, float *out);
} vk_ops;

/* The table chosen for this machine (thread-safe; chosen once). */
const vk_ops *vk_get(void);

/* The individual tables, for tests and benchmarks. vk_avx512()/vk_avx2() return NULL when the
 * CPU lacks the instructions (or the variant was not built). */
const vk_ops *vk_scalar(void);
const vk_ops *vk_avx2(void);
const vk_ops *vk_avx512(void);

/* Pack n plain 4-bit codes (codes[i * m + j] in 0..15) into ceil(n / 32) blocks of the fast-scan
 * layout at out (ceil(n / 32) * m * 16 bytes; vectors past n in the last block get code 0).
 * m must be even. */
void vk_pack4(const uint8_t *codes, size_t n, size_t m, uint8_t *out);
/* Pack k centroids (c[j * d .. + d)) into the panel layout above at pk
 * (ceil(k / VK_PANEL) * VK_PANEL * d floats). */
void vk_pack_panels(const float *c, size_t k, size_t d, float *pk);
/* Read code j of vector v (0..31) of one block back out of the layout. */
static inline uint8_t vk_code4(const uint8_t *block, size_t v, size_t j)
{
    uint8_t b = block[j * 16 + (v & 15)];
    return (uint8_t)(v < 16 ? (b & 15) : (b >> 4));
}

#endif

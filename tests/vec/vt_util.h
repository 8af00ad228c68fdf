/* vt_util.h -- helpers for the vector index tests (tests/vec/): .fvecs/.ivecs readers for the
 * real SIFT data in $WEIR_SHARED/data/ann, a seeded clustered-data generator, brute-force
 * ground truth in double precision, recall@k, and key <-> row conversion. Include after
 * cmocka.h. */
#ifndef WEIR_VT_UTIL_H
#define WEIR_VT_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

static inline uint64_t vt_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float vt_unit(uint64_t *s) /* [0, 1) */
{
    return (float)(vt_rng(s) >> 40) * (1.0f / 16777216.0f);
}

static inline float vt_gauss(uint64_t *s)
{
    float u = vt_unit(s) + 1e-7f, v = vt_unit(s);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* n points of dimension d around @nc Gaussian centres (N(0,1) coordinates, then + @shift),
 * each coordinate + N(0, spread). */
static inline float *vt_clustered(uint64_t seed, size_t n, size_t d, size_t nc, float spread,
                                  float shift)
{
    uint64_t s = seed;
    float *c = malloc(nc * d * sizeof(float)), *x = malloc(n * d * sizeof(float));
    assert_non_null(c);
    assert_non_null(x);
    for (size_t i = 0; i < nc * d; i++)
        c[i] = vt_gauss(&s) + shift;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)(vt_rng(&s) % nc);
        for (size_t t = 0; t < d; t++)
            x[i * d + t] = c[k * d + t] + spread * vt_gauss(&s);
    }
    free(c);
    return x;
}

/* Reads a .fvecs/.ivecs file (4-byte element type): *n_out rows of *d_out values. */
static inline void *vt_read_vecs(const char *path, size_t *n_out, size_t *d_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (set WEIR_SHARED to the shared/ directory)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    int32_t d;
    assert_int_equal(fread(&d, 4, 1, f), 1);
    assert_true(d > 0);
    size_t rec = 4 + (size_t)d * 4, n = (size_t)len / rec;
    assert_int_equal((size_t)len % rec, 0);
    uint8_t *out = malloc(n * (size_t)d * 4);
    assert_non_null(out);
    fseek(f, 0, SEEK_SET);
    for (size_t i = 0; i < n; i++) {
        int32_t dd;
        assert_int_equal(fread(&dd, 4, 1, f), 1);
        assert_int_equal(dd, d);
        assert_int_equal(fread(out + i * (size_t)d * 4, 4, (size_t)d, f), (size_t)d);
    }
    fclose(f);
    *n_out = n;
    *d_out = (size_t)d;
    return out;
}

static inline const char *vt_shared(const char *rel)
{
    static char p[4096];
    const char *base = getenv("WEIR_SHARED");
    snprintf(p, sizeof p, "%s/%s", base ? base : "../shared", rel);
    return p;
}

/* Keys are "<prefix><row>". */
static inline void vt_key(char *buf, size_t cap, const char *prefix, size_t row)
{
    snprintf(buf, cap, "%s%zu", prefix, row);
}

static inline long vt_row(const char *key)
{
    const char *p = key;
    while (*p && (*p < '0' || *p > '9'))
        p++;
    return strtol(p, NULL, 10);
}

/* Inserts rows [0, n) of x with keys "<prefix><row>" in batches. */
static inline void vt_insert(vec_index *ix, uint32_t part, const float *x, size_t n, size_t d,
                             const char *prefix, size_t row0)
{
    enum { B = 512 };
    static char kb[B][64];
    const char *keys[B];
    for (size_t i = 0; i < n; i += B) {
        size_t cnt = n - i < B ? n - i : B;
        for (size_t j = 0; j < cnt; j++) {
            vt_key(kb[j], sizeof kb[j], prefix, row0 + i + j);
            keys[j] = kb[j];
        }
        assert_int_equal(vec_upsert_batch(ix, part, cnt, keys, x + i * d, NULL), WR_OK);
    }
}

/* Exact top-k rows of each query by squared L2 in double precision, ties to the lower row. */
static inline void vt_truth(const float *base, size_t n, const float *q, size_t nq, size_t d,
                            size_t k, long *gt)
{
    double *bd = malloc(k * sizeof(double));
    assert_non_null(bd);
    for (size_t qi = 0; qi < nq; qi++) {
        size_t have = 0;
        long *g = gt + qi * k;
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t t = 0; t < d; t++) {
                double df = (double)q[qi * d + t] - (double)base[i * d + t];
                s += df * df;
            }
            if (have == k && s >= bd[k - 1])
                continue;
            size_t j = have < k ? have++ : k - 1;
            while (j > 0 && bd[j - 1] > s) {
                bd[j] = bd[j - 1];
                g[j] = g[j - 1];
                j--;
            }
            bd[j] = s;
            g[j] = (long)i;
        }
    }
    free(bd);
}

/* recall@k of hits (rows from keys) against gt rows (gt_stride per query). */
static inline double vt_recall(const vec_hit *hits, const uint32_t *cnt, size_t nq, size_t k,
                               const long *gt, size_t gt_stride)
{
    size_t found = 0;
    for (size_t qi = 0; qi < nq; qi++)
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < cnt[qi]; b++)
                if (vt_row(hits[qi * k + b].key) == gt[qi * gt_stride + a]) {
                    found++;
                    break;
                }
    return (double)found / (double)(nq * k);
}

#endif

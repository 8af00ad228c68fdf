/* wb_vecgen.c -- `weir bench vec-gen`: clustered synthetic vectors and their exact ground truth,
 * the data sets of `weir bench vec` and bench/vec-peers.sh.
 *
 * Data model (a Gaussian mixture with skewed weights):
 *   - C cluster centres c_0..c_{C-1}, each coordinate drawn from N(0, 1);
 *   - cluster weights w_j proportional to 1 / (j + 1)^zipf (Zipf-like: with C = 1000 and
 *     zipf = 1 the largest cluster holds ~13% of the points and the smallest ~0.01%), so the
 *     inverted lists of an index built on the data are imbalanced, as with real embeddings;
 *   - a base point: pick cluster j with probability w_j, then x = c_j + spread * z with z from
 *     N(0, I_d) (isotropic noise, standard deviation `spread` per dimension);
 *   - a query: drawn the same way from the same mixture, from its own random stream, so it is
 *     never a copy of a base point.
 * Squared distances concentrate: two points of one cluster are ~2 d spread^2 apart, points of
 * different clusters ~2 d (1 + spread^2). Up to spread ~1 a query's nearest neighbours all
 * lie in its own cluster, so what an IVF index finds hard is the skew (see the presets). The
 * noise is full-rank, so the spread mostly sets how much of a neighbour's distance a PQ code
 * loses: the larger it is, the lower PQ recall is without re-ranking.
 *
 * Presets (--preset; the recall figures are Faiss IVF1024,Flat recall@10 at nprobe=1 against
 * gt.ivecs, measured once with Faiss 1.7.3; nprobe=64 reaches 0.98-1.0 on all three):
 *   easy  1 M x 128, 10,000 clusters, spread 0.5, zipf 0.5   ~0.83  clusters smaller than a list
 *   hard  1 M x 128,  1,000 clusters, spread 1.0, zipf 1.0   ~0.46  big clusters span many lists
 *   d384  500 k x 384, 5,000 clusters, spread 1.0, zipf 0.75 ~0.64
 * What makes a set hard for IVF is mostly the skew, not the spread: the k-means of the index
 * cuts a cluster much larger than a list into several lists, and the neighbours of a query
 * in such a cluster scatter over them (in 128 dimensions, one cut direction hardly orders
 * them). With equal clusters (zipf 0) of ~1,000 points, recall at nprobe=1 is ~0.93.
 *
 * Determinism: every vector has its own xoshiro256** stream, seeded by splitmix64 from (seed,
 * stream kind, row), so the files depend on the parameters and the seed only, not on --threads.
 * Normal deviates come from Marsaglia's polar method (in double, then rounded to float).
 *
 * Files written to --out (each to "<name>.tmp", then renamed; no fsync: scratch data):
 *   base.fvecs   n records    | int32 LE d | d x float32 LE |
 *   query.fvecs  nq records   | int32 LE d | d x float32 LE |
 *   gt.ivecs     nq records   | int32 LE k | k x int32 LE   |  0-based rows of base.fvecs
 *   README.txt   the parameters, the command line and the cluster-size statistics
 * gt.ivecs holds, per query, the exact gt-k nearest base rows by squared L2, nearest first, a
 * tie going to the lower row. "Exact" means: squared L2 accumulated in double (each difference
 * and square in double, summed in dimension order), then ordered by (distance, row).
 *
 * Ground truth (brute force, --threads threads, queries split between them):
 *   1. float pass: base rows are transposed in panels of 16 (panel[k * 16 + j] = x_j[k]); a
 *      4 x 16 micro-kernel (AVX2 + FMA when the CPU has it, otherwise portable C) computes the
 *      dot products of 4 queries with the panel while the panel sits in L1, and
 *      dist = ||q||^2 - 2 q.x + ||x||^2 in float feeds a per-query max-heap of the
 *      gt-k + VG_MARGIN smallest float distances;
 *   2. exact re-rank: the candidates get their double distance and are sorted by (dist, row);
 *   3. proof: with F the largest float distance in the heap, every row left out has a float
 *      distance >= F, hence an exact one >= F - E, where E = 2 (d + 4) 2^-24 (|q| + max|x|)^2
 *      bounds the float error (twice the textbook bound for a length-d dot product and the
 *      two additions). If F - E > the k-th exact distance, the candidates contain the exact
 *      top-k, ties included. Otherwise (rare) the query is rescanned in double over all rows.
 *      The number of rescans is reported. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VG_X86 1
#else
#define VG_X86 0
#endif

#include "wb.h"
#include "wb_util.h"
#include "wr.h"

#define VG_FAMILY       "vec-gen"
#define VG_PANEL        16 /* base rows per transposed panel (the kernel's width) */
#define VG_QGROUP       4  /* queries per kernel call */
#define VG_MARGIN       32 /* extra float candidates per query kept for the exact re-rank */
#define VG_MAX_THREADS  64
#define VG_SAY_NS       UINT64_C(5000000000) /* a progress line at most every 5 s */
#define VG_MAX_DIM      65536
#define VG_MAX_CLUSTERS 10000000u

enum { VG_STREAM_CENTRES = 1, VG_STREAM_BASE = 2, VG_STREAM_QUERY = 3 };

/* ---------------------------------------------------------------- options and presets */
typedef struct vg_opts {
    const char *out, *preset;
    uint64_t n, nq, seed;
    unsigned dim, clusters, gt_k, threads;
    double spread, zipf;
} vg_opts;

/* A preset gives defaults; an option given on the command line wins whatever its position. */
typedef struct vg_preset {
    const char *name;
    uint64_t n;
    unsigned dim, clusters;
    double spread, zipf;
    const char *what;
} vg_preset;

static const vg_preset vg_presets[] = {
    {"easy", 1000000, 128, 10000, 0.5, 0.5,
     "many compact clusters, mild skew: IVF1024,Flat R@10 ~0.83 at nprobe=1"},
    {"hard", 1000000, 128, 1000, 1.0, 1.0,
     "heavy skew (largest cluster ~13%): IVF1024,Flat R@10 ~0.46 at nprobe=1"},
    {"d384", 500000, 384, 5000, 1.0, 0.75,
     "embedding-sized rows, skewed: IVF1024,Flat R@10 ~0.64 at nprobe=1"},
};
#define VG_NPRESETS (sizeof vg_presets / sizeof vg_presets[0])

/* ---------------------------------------------------------------- random numbers */
static uint64_t vg_splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

typedef struct vg_rng {
    uint64_t s[4];
    double spare; /* second deviate of the last polar pair */
    int has_spare;
} vg_rng;

static void vg_rng_seed(vg_rng *r, uint64_t seed, unsigned stream, uint64_t row)
{
    uint64_t k = seed;
    uint64_t h = vg_splitmix(&k) ^ ((uint64_t)stream * UINT64_C(0xd1b54a32d192ed03));
    k = h;
    h = vg_splitmix(&k) ^ (row * UINT64_C(0x8cb92ba72f3d8dd7));
    k = h;
    for (int i = 0; i < 4; i++)
        r->s[i] = vg_splitmix(&k);
    r->has_spare = 0;
    r->spare = 0.0;
}

static inline uint64_t vg_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t vg_next(vg_rng *r) /* xoshiro256** */
{
    uint64_t *s = r->s, out = vg_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = vg_rotl(s[3], 45);
    return out;
}

static inline double vg_uniform(vg_rng *r) /* [0, 1), 53 bits */
{
    return (double)(vg_next(r) >> 11) * 0x1.0p-53;
}

static double vg_normal(vg_rng *r) /* N(0, 1), Marsaglia's polar method */
{
    double u, v, s, f;

    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    do {
        u = 2.0 * vg_uniform(r) - 1.0;
        v = 2.0 * vg_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    f = sqrt(-2.0 * log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

/* ---------------------------------------------------------------- data */
typedef struct vg_data {
    const vg_opts *o;
    float *centres; /* owned: clusters x dim */
    double *cdf;    /* owned: clusters, cumulative weights, last = 1 */
    float *base;    /* owned: n x dim */
    float *query;   /* owned: nq_pad x dim, rows >= nq are zero */
    int32_t *gt;    /* owned: nq x gt_k */
    uint64_t nq_pad;
    uint64_t *count;      /* owned: clusters, base points per cluster */
    double base_max_norm; /* max |x| over base rows, in double */
} vg_data;

static unsigned vg_pick_cluster(const vg_data *D, double u)
{
    unsigned lo = 0, hi = D->o->clusters - 1;

    while (lo < hi) { /* first j with cdf[j] > u */
        unsigned mid = lo + (hi - lo) / 2;
        if (D->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Row @row of stream @stream into @dst; returns its cluster. */
static unsigned vg_make_row(const vg_data *D, unsigned stream, uint64_t row, float *dst)
{
    const vg_opts *o = D->o;
    vg_rng r;
    unsigned c;
    const float *ctr;

    vg_rng_seed(&r, o->seed, stream, row);
    c = vg_pick_cluster(D, vg_uniform(&r));
    ctr = D->centres + (size_t)c * o->dim;
    for (unsigned k = 0; k < o->dim; k++)
        dst[k] = (float)((double)ctr[k] + o->spread * vg_normal(&r));
    return c;
}

typedef struct vg_gen_job {
    vg_data *D;
    unsigned stream;
    uint64_t r0, r1;
    float *dst;      /* borrowed: row r0 of the target array */
    uint64_t *count; /* owned by the caller: clusters counters of this job, or NULL */
    double max_norm;
} vg_gen_job;

static void *vg_gen_thread(void *arg)
{
    vg_gen_job *j = arg;
    unsigned dim = j->D->o->dim;

    for (uint64_t i = j->r0; i < j->r1; i++) {
        float *x = j->dst + (size_t)(i - j->r0) * dim;
        unsigned c = vg_make_row(j->D, j->stream, i, x);
        double nn = 0.0;
        if (j->count)
            j->count[c]++;
        for (unsigned k = 0; k < dim; k++)
            nn += (double)x[k] * (double)x[k];
        if (sqrt(nn) > j->max_norm)
            j->max_norm = sqrt(nn);
    }
    return NULL;
}

/* Rows [0, rows) of @stream into @dst with the configured threads. */
static wr_status vg_generate(vg_data *D, unsigned stream, uint64_t rows, float *dst, bool counts)
{
    const vg_opts *o = D->o;
    vg_gen_job jobs[VG_MAX_THREADS];
    pthread_t tid[VG_MAX_THREADS];
    unsigned nt = o->threads, started = 0;
    wr_status st = WR_OK;

    memset(jobs, 0, sizeof jobs);
    for (unsigned t = 0; t < nt; t++) {
        jobs[t].D = D;
        jobs[t].stream = stream;
        jobs[t].r0 = rows * t / nt;
        jobs[t].r1 = rows * (t + 1) / nt;
        jobs[t].dst = dst + (size_t)jobs[t].r0 * o->dim;
        if (counts && (jobs[t].count = wr_calloc(o->clusters, sizeof(uint64_t))) == NULL) {
            st = wr_err(WR_ERR_NOMEM, "cluster counters (%u clusters)", o->clusters);
            goto out_join;
        }
    }
    for (; started < nt; started++) {
        int e = pthread_create(&tid[started], NULL, vg_gen_thread, &jobs[started]);
        if (e != 0) {
            st = wr_err(WR_ERR_INTERNAL, "pthread_create: %s", strerror(e));
            break;
        }
    }
out_join:
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    for (unsigned t = 0; t < nt; t++) {
        if (st == WR_OK && jobs[t].count)
            for (unsigned c = 0; c < o->clusters; c++)
                D->count[c] += jobs[t].count[c];
        if (st == WR_OK && counts && jobs[t].max_norm > D->base_max_norm)
            D->base_max_norm = jobs[t].max_norm;
        wr_free(jobs[t].count);
    }
    return st;
}

/* ---------------------------------------------------------------- ground truth: kernels */
/* out[r * 16 + j] = q_r . panel_j for the 4 query rows at @q (row stride @d). */
typedef void (*vg_kernel_fn)(const float *panel, const float *q, size_t d, float *out);

static void vg_dot_4x16_c(const float *panel, const float *q, size_t d, float *out)
{
    float acc[VG_QGROUP * VG_PANEL];

    memset(acc, 0, sizeof acc);
    for (size_t k = 0; k < d; k++) {
        const float *p = panel + k * VG_PANEL;
        for (unsigned r = 0; r < VG_QGROUP; r++) {
            float qv = q[r * d + k];
            for (unsigned j = 0; j < VG_PANEL; j++)
                acc[r * VG_PANEL + j] += qv * p[j];
        }
    }
    memcpy(out, acc, sizeof acc);
}

#if VG_X86
__attribute__((target("avx2,fma"))) static void vg_dot_4x16_avx2(const float *panel, const float *q,
                                                                 size_t d, float *out)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();
    __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
    __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();
    __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
    const float *q0 = q, *q1 = q + d, *q2 = q + 2 * d, *q3 = q + 3 * d;

    for (size_t k = 0; k < d; k++) {
        __m256 x0 = _mm256_loadu_ps(panel + k * VG_PANEL);
        __m256 x1 = _mm256_loadu_ps(panel + k * VG_PANEL + 8);
        __m256 b = _mm256_broadcast_ss(q0 + k);
        a00 = _mm256_fmadd_ps(b, x0, a00);
        a01 = _mm256_fmadd_ps(b, x1, a01);
        b = _mm256_broadcast_ss(q1 + k);
        a10 = _mm256_fmadd_ps(b, x0, a10);
        a11 = _mm256_fmadd_ps(b, x1, a11);
        b = _mm256_broadcast_ss(q2 + k);
        a20 = _mm256_fmadd_ps(b, x0, a20);
        a21 = _mm256_fmadd_ps(b, x1, a21);
        b = _mm256_broadcast_ss(q3 + k);
        a30 = _mm256_fmadd_ps(b, x0, a30);
        a31 = _mm256_fmadd_ps(b, x1, a31);
    }
    _mm256_storeu_ps(out + 0, a00);
    _mm256_storeu_ps(out + 8, a01);
    _mm256_storeu_ps(out + 16, a10);
    _mm256_storeu_ps(out + 24, a11);
    _mm256_storeu_ps(out + 32, a20);
    _mm256_storeu_ps(out + 40, a21);
    _mm256_storeu_ps(out + 48, a30);
    _mm256_storeu_ps(out + 56, a31);
}
#endif

static vg_kernel_fn vg_pick_kernel(const char **name_out)
{
#if VG_X86
    const char *force = getenv("WEIR_FORCE_SCALAR");
    __builtin_cpu_init();
    if (!(force && *force && strcmp(force, "0") != 0) && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma")) {
        *name_out = "avx2+fma";
        return vg_dot_4x16_avx2;
    }
#endif
    *name_out = "portable C";
    return vg_dot_4x16_c;
}

/* ---------------------------------------------------------------- ground truth: heaps */
/* Max-heap on (dist, row): the root is the worst kept candidate. */
typedef struct vg_cand {
    double d;
    int32_t row;
} vg_cand;

static inline bool vg_worse(vg_cand a, vg_cand b) /* a ranks after b */
{
    return a.d > b.d || (a.d == b.d && a.row > b.row);
}

static void vg_heap_sift_down(vg_cand *h, unsigned cnt, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < cnt && vg_worse(h[l], h[m]))
            m = l;
        if (r < cnt && vg_worse(h[r], h[m]))
            m = r;
        if (m == i)
            return;
        vg_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Offer @c to the heap of capacity @cap holding *cnt entries. */
static void vg_heap_offer(vg_cand *h, unsigned *cnt, unsigned cap, vg_cand c)
{
    if (*cnt < cap) {
        unsigned i = (*cnt)++;
        h[i] = c;
        while (i > 0 && vg_worse(h[i], h[(i - 1) / 2])) {
            vg_cand t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    if (!vg_worse(h[0], c))
        return;
    h[0] = c;
    vg_heap_sift_down(h, *cnt, 0);
}

static int vg_cand_cmp(const void *a, const void *b)
{
    const vg_cand *x = a, *y = b;
    return vg_worse(*x, *y) - vg_worse(*y, *x);
}

static double vg_l2_exact(const float *a, const float *b, unsigned d)
{
    double s = 0.0;

    for (unsigned k = 0; k < d; k++) {
        double t = (double)a[k] - (double)b[k];
        s += t * t;
    }
    return s;
}

/* ---------------------------------------------------------------- ground truth: threads */
typedef struct vg_gt_job {
    vg_data *D;
    vg_kernel_fn kern;
    uint64_t q0, q1; /* queries [q0, q1) of the padded set, multiples of VG_QGROUP */
    unsigned id;
    uint64_t rescans;
    wr_status st;
} vg_gt_job;

static void vg_exact_scan(const vg_data *D, uint64_t q, vg_cand *heap, unsigned k)
{
    const vg_opts *o = D->o;
    const float *qv = D->query + (size_t)q * o->dim;
    unsigned cnt = 0;

    for (uint64_t i = 0; i < o->n; i++) {
        vg_cand c = {vg_l2_exact(qv, D->base + (size_t)i * o->dim, o->dim), (int32_t)i};
        vg_heap_offer(heap, &cnt, k, c);
    }
    qsort(heap, cnt, sizeof *heap, vg_cand_cmp);
}

static void *vg_gt_thread(void *arg)
{
    vg_gt_job *J = arg;
    vg_data *D = J->D;
    const vg_opts *o = D->o;
    const unsigned d = o->dim, k = o->gt_k;
    const uint64_t nql = J->q1 - J->q0;
    unsigned cap = k + VG_MARGIN;
    float *panel = NULL, *qn = NULL, *thr = NULL;
    vg_cand *heaps = NULL;
    unsigned *cnt = NULL;
    float tile[VG_QGROUP * VG_PANEL], xn[VG_PANEL];
    uint64_t t0 = wr_now_ns(), next_say = t0 + VG_SAY_NS;

    if (cap > o->n)
        cap = (unsigned)o->n;
    if (nql == 0)
        return NULL;
    panel = wr_malloc((size_t)d * VG_PANEL * sizeof(float));
    qn = wr_malloc(nql * sizeof(float));
    thr = wr_malloc(nql * sizeof(float));
    cnt = wr_calloc(nql, sizeof(unsigned));
    heaps = wr_malloc(nql * cap * sizeof(vg_cand));
    if (!panel || !qn || !thr || !cnt || !heaps) {
        J->st = wr_err(WR_ERR_NOMEM, "ground-truth buffers for %" PRIu64 " queries", nql);
        goto out_free;
    }
    for (uint64_t q = 0; q < nql; q++) {
        const float *qv = D->query + (size_t)(J->q0 + q) * d;
        float s = 0.0f;
        for (unsigned t = 0; t < d; t++)
            s += qv[t] * qv[t];
        qn[q] = s;
        thr[q] = INFINITY;
    }

    /* 1. float pass: one panel of 16 base rows at a time, all of this thread's queries. */
    for (uint64_t b0 = 0; b0 < o->n; b0 += VG_PANEL) {
        unsigned w = o->n - b0 < VG_PANEL ? (unsigned)(o->n - b0) : VG_PANEL;
        for (unsigned j = 0; j < VG_PANEL; j++) {
            const float *x = D->base + (size_t)(b0 + j) * d;
            float s = 0.0f;
            for (unsigned t = 0; t < d; t++) {
                float v = j < w ? x[t] : 0.0f;
                panel[(size_t)t * VG_PANEL + j] = v;
                s += v * v;
            }
            xn[j] = s;
        }
        for (uint64_t g = 0; g < nql; g += VG_QGROUP) {
            J->kern(panel, D->query + (size_t)(J->q0 + g) * d, d, tile);
            for (unsigned r = 0; r < VG_QGROUP; r++) {
                uint64_t q = g + r;
                for (unsigned j = 0; j < w; j++) {
                    float dist = qn[q] - 2.0f * tile[r * VG_PANEL + j] + xn[j];
                    if (dist < thr[q]) {
                        vg_cand c = {(double)dist, (int32_t)(b0 + j)};
                        vg_heap_offer(heaps + q * cap, &cnt[q], cap, c);
                        if (cnt[q] == cap)
                            thr[q] = (float)heaps[q * cap].d;
                    }
                }
            }
        }
        if (J->id == 0 && (b0 & 0xffff) == 0 && wr_now_ns() >= next_say) {
            wb_say(VG_FAMILY, "ground truth: %.0f%% of the base scanned (%.1f s)",
                   100.0 * (double)b0 / (double)o->n, (double)(wr_now_ns() - t0) / 1e9);
            next_say = wr_now_ns() + VG_SAY_NS;
        }
    }

    /* 2. exact re-rank and 3. the proof that nothing was left out (else rescan). */
    for (uint64_t q = 0; q < nql; q++) {
        uint64_t gq = J->q0 + q;
        vg_cand *h = heaps + q * cap;
        const float *qv = D->query + (size_t)gq * d;
        double fmax = h[0].d, qnorm = 0.0, e;

        if (gq >= o->nq)
            continue; /* padding row */
        for (unsigned i = 0; i < cnt[q]; i++)
            h[i].d = vg_l2_exact(qv, D->base + (size_t)h[i].row * d, d);
        qsort(h, cnt[q], sizeof *h, vg_cand_cmp);
        for (unsigned t = 0; t < d; t++)
            qnorm += (double)qv[t] * (double)qv[t];
        qnorm = sqrt(qnorm);
        e = 2.0 * (double)(d + 4) * 0x1.0p-24 * (qnorm + D->base_max_norm) *
            (qnorm + D->base_max_norm);
        if ((uint64_t)cnt[q] < o->n && !(fmax - e > h[k - 1].d)) {
            vg_exact_scan(D, gq, h, k);
            J->rescans++;
        }
        for (unsigned i = 0; i < k; i++)
            D->gt[(size_t)gq * k + i] = h[i].row;
    }
out_free:
    wr_free(heaps);
    wr_free(cnt);
    wr_free(thr);
    wr_free(qn);
    wr_free(panel);
    return NULL;
}

static wr_status vg_ground_truth(vg_data *D, uint64_t *rescans_out, const char **kern_out)
{
    const vg_opts *o = D->o;
    vg_gt_job jobs[VG_MAX_THREADS];
    pthread_t tid[VG_MAX_THREADS];
    uint64_t groups = D->nq_pad / VG_QGROUP;
    unsigned nt = o->threads, started = 0;
    vg_kernel_fn kern = vg_pick_kernel(kern_out);
    wr_status st = WR_OK;

    *rescans_out = 0;
    memset(jobs, 0, sizeof jobs);
    for (unsigned t = 0; t < nt; t++) {
        jobs[t].D = D;
        jobs[t].kern = kern;
        jobs[t].id = t;
        jobs[t].q0 = groups * t / nt * VG_QGROUP;
        jobs[t].q1 = groups * (t + 1) / nt * VG_QGROUP;
    }
    for (; started < nt; started++) {
        int e = pthread_create(&tid[started], NULL, vg_gt_thread, &jobs[started]);
        if (e != 0) {
            st = wr_err(WR_ERR_INTERNAL, "pthread_create: %s", strerror(e));
            break;
        }
    }
    for (unsigned t = 0; t < started; t++) {
        pthread_join(tid[t], NULL);
        if (st == WR_OK && jobs[t].st != WR_OK)
            st = jobs[t].st;
        *rescans_out += jobs[t].rescans;
    }
    return st;
}

/* ---------------------------------------------------------------- files */
/* Write @rows records of [int32 width][width x 4-byte values] to DIR/name.tmp, then rename it
 * to DIR/name. @vals holds rows x width 4-byte values (float or int32). */
/* Closes @f (written to @tmp) and renames it to @dst; on failure removes @tmp. */
static wr_status vg_commit(FILE *f, const char *tmp, const char *dst)
{
    wr_status st;
    if (fclose(f) != 0) {
        st = wr_err(wr_status_from_errno(errno), "%s: close failed: %s", tmp, strerror(errno));
        remove(tmp);
        return st;
    }
    if (rename(tmp, dst) != 0) {
        st = wr_err(wr_status_from_errno(errno), "rename %s -> %s: %s", tmp, dst, strerror(errno));
        remove(tmp);
        return st;
    }
    return WR_OK;
}

static wr_status vg_write_vecs(const char *dir, const char *name, const void *vals, uint64_t rows,
                               unsigned width)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    const unsigned char *p = vals;
    int32_t hdr = (int32_t)width;
    size_t row_len = (size_t)width * 4;
    FILE *f;
    wr_status st;

    if ((st = wr_path(dst, sizeof dst, "%s/%s", dir, name)) != WR_OK ||
        (st = wr_path(tmp, sizeof tmp, "%s/%s.tmp", dir, name)) != WR_OK)
        return st;
    if ((f = fopen(tmp, "wb")) == NULL)
        return wr_err(wr_status_from_errno(errno), "%s: cannot create: %s", tmp, strerror(errno));
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    /* x86 and arm64 are little-endian, as the formats are: the bytes go out as they are. */
    for (uint64_t i = 0; i < rows; i++) {
        if (fwrite(&hdr, 4, 1, f) != 1 || fwrite(p + i * row_len, row_len, 1, f) != 1) {
            st = wr_err(wr_status_from_errno(errno), "%s: write failed: %s", tmp, strerror(errno));
            fclose(f);
            remove(tmp);
            return st;
        }
    }
    return vg_commit(f, tmp, dst);
}

static wr_status vg_write_readme(const vg_data *D, int argc, char **argv, double gen_s, double gt_s,
                                 uint64_t rescans, const char *kern)
{
    const vg_opts *o = D->o;
    char tmp[PATH_MAX], dst[PATH_MAX], when[64];
    uint64_t cmin = UINT64_MAX, cmax = 0, empty = 0;
    double sq = 0.0;
    time_t now = time(NULL);
    struct tm tmv;
    FILE *f;
    wr_status st;

    for (unsigned c = 0; c < o->clusters; c++) {
        uint64_t v = D->count[c];
        cmin = v < cmin ? v : cmin;
        cmax = v > cmax ? v : cmax;
        empty += v == 0;
        sq += (double)v * (double)v;
    }
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    if ((st = wr_path(dst, sizeof dst, "%s/README.txt", o->out)) != WR_OK ||
        (st = wr_path(tmp, sizeof tmp, "%s/README.txt.tmp", o->out)) != WR_OK)
        return st;
    if ((f = fopen(tmp, "w")) == NULL)
        return wr_err(wr_status_from_errno(errno), "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "Synthetic clustered vectors made by `weir bench vec-gen` (weir %s), %s.\n\n",
            WR_VERSION, when);
    fprintf(f, "command:");
    for (int i = 0; i < argc; i++)
        fprintf(f, " %s", argv[i]);
    fprintf(f, "\n\nparameters (after the preset):\n");
    fprintf(f, "  preset    %s\n", o->preset ? o->preset : "(none)");
    fprintf(f, "  n         %" PRIu64 "\n", o->n);
    fprintf(f, "  dim       %u\n", o->dim);
    fprintf(f, "  queries   %" PRIu64 "\n", o->nq);
    fprintf(f, "  clusters  %u\n", o->clusters);
    fprintf(f, "  spread    %.17g\n", o->spread);
    fprintf(f, "  zipf      %.17g\n", o->zipf);
    fprintf(f, "  seed      %" PRIu64 "\n", o->seed);
    fprintf(f, "  gt-k      %u\n\n", o->gt_k);
    fprintf(f,
            "model: centres c_j ~ N(0, I_%u); cluster weights w_j ~ 1/(j+1)^%g; a base point or\n"
            "query picks cluster j with probability w_j and is c_j + %g * N(0, I_%u).\n"
            "Queries come from their own random stream (not copies of base points).\n"
            "PRNG: xoshiro256** per row, seeded with splitmix64(seed, stream, row); normals by\n"
            "Marsaglia's polar method in double, rounded to float32.\n\n",
            o->dim, o->zipf, o->spread, o->dim);
    fprintf(f,
            "base points per cluster: min %" PRIu64 ", max %" PRIu64 ", mean %.1f, empty %" PRIu64
            ";\n  imbalance clusters*sum(p_j^2) = %.3f (1 = equal sizes)\n\n",
            cmin, cmax, (double)o->n / o->clusters, empty,
            sq * o->clusters / ((double)o->n * (double)o->n));
    fprintf(f,
            "files:\n"
            "  base.fvecs   %" PRIu64 " x %u float32 (per row: int32 LE %u, then the floats)\n"
            "  query.fvecs  %" PRIu64 " x %u float32\n"
            "  gt.ivecs     %" PRIu64 " x %u int32: per query the exact %u nearest base rows\n"
            "               (0-based) by squared L2, nearest first, ties to the lower row;\n"
            "               distances accumulated in double (float pass + exact re-rank with a\n"
            "               proven float error bound; %" PRIu64
            " queries rescanned in double).\n\n",
            o->n, o->dim, o->dim, o->nq, o->dim, o->nq, o->gt_k, o->gt_k, rescans);
    fprintf(f, "timing: generate %.1f s, ground truth %.1f s (%u threads, %s kernel)\n", gen_s,
            gt_s, o->threads, kern);
    return vg_commit(f, tmp, dst);
}

/* ---------------------------------------------------------------- main */
static void vg_usage(FILE *f)
{
    fprintf(f, "usage: weir bench vec-gen --out DIR [--preset easy|hard|d384] [--n N] [--dim D]\n"
               "                          [--queries Q] [--clusters C] [--spread S] [--zipf Z]\n"
               "                          [--seed S] [--gt-k K] [--threads T]\n"
               "\n"
               "Writes clustered synthetic vectors and their exact nearest neighbours to DIR:\n"
               "base.fvecs, query.fvecs, gt.ivecs (per query the K nearest base rows, 0-based,\n"
               "by squared L2 accumulated in double, ties to the lower row) and README.txt.\n"
               "\n"
               "model: C cluster centres drawn from N(0, 1) per dimension; cluster j has weight\n"
               "1/(j+1)^Z (Zipf-like, so inverted lists come out imbalanced); a point picks a\n"
               "cluster by weight and adds Gaussian noise of standard deviation S per dimension;\n"
               "queries are drawn from the same mixture with their own random stream. The output\n"
               "depends on the parameters and --seed only (not on --threads).\n"
               "\n"
               "flags:\n"
               "  --out DIR       output directory (created if missing); required\n"
               "  --preset P      defaults for a named data set; options given also win, and\n"
               "                  with --n but no --clusters the cluster count scales with n:\n");
    for (size_t i = 0; i < VG_NPRESETS; i++)
        fprintf(f,
                "                  %-5s n=%" PRIu64 " dim=%u clusters=%u spread=%g zipf=%g\n"
                "                        %s\n",
                vg_presets[i].name, vg_presets[i].n, vg_presets[i].dim, vg_presets[i].clusters,
                vg_presets[i].spread, vg_presets[i].zipf, vg_presets[i].what);
    fprintf(f,
            "  --n N           base vectors (default 1000000; at most 2147483647)\n"
            "  --dim D         dimensions (default 128; 1..%d)\n"
            "  --queries Q     query vectors (default 1000)\n"
            "  --clusters C    mixture components (default 1000)\n"
            "  --spread S      noise standard deviation per dimension (default 0.5)\n"
            "  --zipf Z        cluster weight exponent, 0 = equal clusters (default 1)\n"
            "  --seed S        random seed (default 1)\n"
            "  --gt-k K        neighbours per query in gt.ivecs (default 100; <= n)\n"
            "  --threads T     threads for generation and ground truth (default 2; 1..%d)\n"
            "  -h, --help      show this help\n"
            "\n"
            "Progress goes to stderr. Files are written as NAME.tmp and renamed when complete.\n",
            VG_MAX_DIM, VG_MAX_THREADS);
}

static bool vg_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return false;
    *out = v;
    return true;
}

static bool vg_parse_double(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* An unsigned option in [lo, hi], or a message naming it. */
static bool vg_opt_u64(const char *name, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!vg_parse_u64(arg, out) || *out < lo || *out > hi) {
        wb_say(VG_FAMILY, "--%s '%s': expected an integer in %" PRIu64 "..%" PRIu64, name, arg, lo,
               hi);
        return false;
    }
    return true;
}

static void vg_data_free(vg_data *D)
{
    wr_free(D->centres);
    wr_free(D->cdf);
    wr_free(D->base);
    wr_free(D->query);
    wr_free(D->gt);
    wr_free(D->count);
}

int wb_vecgen_main(int argc, char **argv)
{
    enum { O_N = 1000, O_DIM, O_QUERIES, O_CLUSTERS, O_SPREAD, O_ZIPF, O_SEED, O_GTK, O_THREADS };
    static const struct option longopts[] = {{"out", required_argument, NULL, 'o'},
                                             {"preset", required_argument, NULL, 'p'},
                                             {"n", required_argument, NULL, O_N},
                                             {"dim", required_argument, NULL, O_DIM},
                                             {"queries", required_argument, NULL, O_QUERIES},
                                             {"clusters", required_argument, NULL, O_CLUSTERS},
                                             {"spread", required_argument, NULL, O_SPREAD},
                                             {"zipf", required_argument, NULL, O_ZIPF},
                                             {"seed", required_argument, NULL, O_SEED},
                                             {"gt-k", required_argument, NULL, O_GTK},
                                             {"threads", required_argument, NULL, O_THREADS},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    vg_opts o = {NULL, NULL, 1000000, 1000, 1, 128, 1000, 100, 2, 0.5, 1.0};
    bool set_n = false, set_dim = false, set_clusters = false, set_spread = false, set_zipf = false;
    vg_data D;
    uint64_t v, t0, t1, rescans = 0;
    double wsum = 0.0, acc = 0.0, gen_s;
    const char *kern = "";
    wr_status st;
    int c;

    memset(&D, 0, sizeof D);
    optind = 0; /* the CLI may have used getopt already: full reset */
    opterr = 0; /* our own messages below */
    while ((c = getopt_long(argc, argv, ":o:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out = optarg;
            break;
        case 'p':
            o.preset = optarg;
            break;
        case O_N:
            if (!vg_opt_u64("n", optarg, 1, INT32_MAX, &o.n))
                return 2;
            set_n = true;
            break;
        case O_DIM:
            if (!vg_opt_u64("dim", optarg, 1, VG_MAX_DIM, &v))
                return 2;
            o.dim = (unsigned)v;
            set_dim = true;
            break;
        case O_QUERIES:
            if (!vg_opt_u64("queries", optarg, 1, 100000000, &o.nq))
                return 2;
            break;
        case O_CLUSTERS:
            if (!vg_opt_u64("clusters", optarg, 1, VG_MAX_CLUSTERS, &v))
                return 2;
            o.clusters = (unsigned)v;
            set_clusters = true;
            break;
        case O_SPREAD:
        case O_ZIPF:
            if (!vg_parse_double(optarg, c == O_SPREAD ? &o.spread : &o.zipf) ||
                (c == O_SPREAD ? o.spread : o.zipf) < 0.0 ||
                (c == O_SPREAD ? o.spread : o.zipf) > 1e6) {
                wb_say(VG_FAMILY, "--%s '%s': expected a number in 0..1e6",
                       c == O_SPREAD ? "spread" : "zipf", optarg);
                return 2;
            }
            *(c == O_SPREAD ? &set_spread : &set_zipf) = true;
            break;
        case O_SEED:
            if (!vg_opt_u64("seed", optarg, 0, UINT64_MAX, &o.seed))
                return 2;
            break;
        case O_GTK:
            if (!vg_opt_u64("gt-k", optarg, 1, 100000, &v))
                return 2;
            o.gt_k = (unsigned)v;
            break;
        case O_THREADS:
            if (!vg_opt_u64("threads", optarg, 1, VG_MAX_THREADS, &v))
                return 2;
            o.threads = (unsigned)v;
            break;
        case 'h':
            vg_usage(stdout);
            return 0;
        case ':':
            wb_say(VG_FAMILY, "%s needs a value (see --help)", argv[optind - 1]);
            return 2;
        default:
            wb_say(VG_FAMILY, "unknown option '%s' (see --help)", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        wb_say(VG_FAMILY, "unexpected argument '%s' (see --help)", argv[optind]);
        return 2;
    }
    if (o.out == NULL || !*o.out) {
        wb_say(VG_FAMILY, "--out DIR is required (see --help)");
        return 2;
    }
    if (o.preset) {
        const vg_preset *p = NULL;
        for (size_t i = 0; i < VG_NPRESETS; i++)
            if (strcmp(o.preset, vg_presets[i].name) == 0)
                p = &vg_presets[i];
        if (p == NULL) {
            wb_say(VG_FAMILY, "--preset '%s': expected easy, hard or d384", o.preset);
            return 2;
        }
        o.n = set_n ? o.n : p->n;
        o.dim = set_dim ? o.dim : p->dim;
        /* A preset resized with --n keeps its mean cluster size (so --quick sizes keep the
         * structure of the full set) unless --clusters is given. */
        if (!set_clusters) {
            double cc = (double)p->clusters * (double)o.n / (double)p->n;
            o.clusters = cc < 1.0 ? 1u : (unsigned)(cc + 0.5);
        }
        o.spread = set_spread ? o.spread : p->spread;
        o.zipf = set_zipf ? o.zipf : p->zipf;
    }
    if (o.gt_k > o.n) {
        wb_say(VG_FAMILY, "--gt-k %u exceeds the number of base vectors (--n %" PRIu64 ")", o.gt_k,
               o.n);
        return 2;
    }
    if (o.n * o.dim > (uint64_t)SIZE_MAX / 8) {
        wb_say(VG_FAMILY, "--n %" PRIu64 " x --dim %u is too large for memory", o.n, o.dim);
        return 2;
    }

    D.o = &o;
    D.nq_pad = (o.nq + VG_QGROUP - 1) / VG_QGROUP * VG_QGROUP;
    D.centres = wr_malloc((size_t)o.clusters * o.dim * sizeof(float));
    D.cdf = wr_malloc((size_t)o.clusters * sizeof(double));
    D.count = wr_calloc(o.clusters, sizeof(uint64_t));
    D.base = wr_malloc((size_t)o.n * o.dim * sizeof(float));
    D.query = wr_calloc((size_t)D.nq_pad * o.dim, sizeof(float));
    D.gt = wr_malloc((size_t)o.nq * o.gt_k * sizeof(int32_t));
    if (!D.centres || !D.cdf || !D.count || !D.base || !D.query || !D.gt) {
        wb_say(VG_FAMILY, "out of memory for %" PRIu64 " x %u base vectors (%.2f GiB)", o.n, o.dim,
               (double)o.n * o.dim * 4.0 / (1u << 30));
        vg_data_free(&D);
        return 1;
    }
    if ((st = wr_mkdir_p(o.out)) != WR_OK) {
        wb_say_fail(VG_FAMILY, o.out, st);
        vg_data_free(&D);
        return 1;
    }
    wb_say(VG_FAMILY,
           "preset %s: n=%" PRIu64 " dim=%u queries=%" PRIu64
           " clusters=%u spread=%g zipf=%g seed=%" PRIu64 " gt-k=%u threads=%u -> %s",
           o.preset ? o.preset : "(none)", o.n, o.dim, o.nq, o.clusters, o.spread, o.zipf, o.seed,
           o.gt_k, o.threads, o.out);

    /* Centres from one sequential stream; weights 1/(j+1)^zipf as a cumulative table. */
    t0 = wr_now_ns();
    {
        vg_rng r;
        vg_rng_seed(&r, o.seed, VG_STREAM_CENTRES, 0);
        for (size_t i = 0; i < (size_t)o.clusters * o.dim; i++)
            D.centres[i] = (float)vg_normal(&r);
    }
    for (unsigned j = 0; j < o.clusters; j++)
        wsum += pow((double)j + 1.0, -o.zipf);
    for (unsigned j = 0; j < o.clusters; j++) {
        acc += pow((double)j + 1.0, -o.zipf);
        D.cdf[j] = acc / wsum;
    }
    D.cdf[o.clusters - 1] = 1.0;

    if ((st = vg_generate(&D, VG_STREAM_BASE, o.n, D.base, true)) != WR_OK ||
        (st = vg_generate(&D, VG_STREAM_QUERY, o.nq, D.query, false)) != WR_OK) {
        wb_say_fail(VG_FAMILY, "generate", st);
        vg_data_free(&D);
        return 1;
    }
    t1 = wr_now_ns();
    gen_s = (double)(t1 - t0) / 1e9;
    wb_say(VG_FAMILY, "generated %" PRIu64 " base + %" PRIu64 " query vectors in %.1f s", o.n, o.nq,
           gen_s);

    if ((st = vg_write_vecs(o.out, "base.fvecs", D.base, o.n, o.dim)) != WR_OK ||
        (st = vg_write_vecs(o.out, "query.fvecs", D.query, o.nq, o.dim)) != WR_OK) {
        wb_say_fail(VG_FAMILY, "write", st);
        vg_data_free(&D);
        return 1;
    }
    t0 = wr_now_ns();
    if ((st = vg_ground_truth(&D, &rescans, &kern)) != WR_OK) {
        wb_say_fail(VG_FAMILY, "ground truth", st);
        vg_data_free(&D);
        return 1;
    }
    t1 = wr_now_ns();
    wb_say(VG_FAMILY,
           "ground truth: top-%u of %" PRIu64 " queries in %.1f s (%s kernel, %u threads, %" PRIu64
           " queries rescanned in double)",
           o.gt_k, o.nq, (double)(t1 - t0) / 1e9, kern, o.threads, rescans);
    if ((st = vg_write_vecs(o.out, "gt.ivecs", D.gt, o.nq, o.gt_k)) != WR_OK ||
        (st = vg_write_readme(&D, argc, argv, gen_s, (double)(t1 - t0) / 1e9, rescans, kern)) !=
            WR_OK) {
        wb_say_fail(VG_FAMILY, "write", st);
        vg_data_free(&D);
        return 1;
    }
    wb_say(VG_FAMILY, "wrote %s/{base.fvecs,query.fvecs,gt.ivecs,README.txt}", o.out);
    vg_data_free(&D);
    return 0;
}

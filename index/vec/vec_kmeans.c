/* vec_kmeans.c -- Lloyd's k-means for the coarse quantizer and the PQ codebooks.
 *
 * Initialisation: k-means++ (D^2 sampling) when n * k is small enough for its k sequential
 * passes to be cheap, else k distinct points drawn at random (what Faiss does). Each
 * iteration assigns every point to its nearest centroid (the SIMD assign kernel, or the
 * pruning below), split over threads, then moves each centroid to the mean of its points (sums in
 * double). A centroid left without points is repaired by splitting a large cluster: it takes a copy
 * of that cluster's centroid nudged by +eps, the donor -eps, and the two share its points in the
 * next assignment (Faiss's and scikit-learn's approach). The sums of the clusters are kept
 * across iterations: only the points that changed cluster move between them (km_sums). For
 * the coarse quantizer the first 3 of 10 iterations run on a quarter of the points (the warm
 * start, below km_iterate: on the benchmark's d = 384 set it cut the coarse k-means from 6.08
 * to 4.67 full passes of distances, its error rose by 0.05%). An earlier note here said such a
 * start cost 0.03 recall@10 at nprobe 1 on the easy set: that was one seed's luck; three seeds
 * spread 0.79-0.82 with and without it.
 *
 * Moved-centroid pruning (exact). After the first iterations most centroids stop moving: a
 * centroid whose points did not change is recomputed bit for bit (the same sums in the same
 * order). A centroid that did not move is as far from every point as it was, so a point needs
 * only the moved centroids: each point keeps the squared distance to its own centroid (u2) and
 * a lower bound on the squared distance to every other (l2, the second-nearest when it was
 * last measured). If the nearest of its own centroid (u2 if it stayed, else measured) and the
 * moved ones is closer than l2, it is the nearest of all, and l2 becomes the smaller of l2 and
 * the second-nearest of those; else the point is measured against every centroid. Every
 * measurement is the assign_packed kernel (nearest and second-nearest in one fused pass, the
 * centroids packed once per iteration): the moved centroids, packed apart, against L2-sized
 * chunks of points, then every centroid for the points whose bound failed (about 1% on the
 * benchmark's hard set), so a pass costs about the share of centroids that moved. Above 90%
 * moved, every point is measured against every centroid. On the hard set (d = 128), where 65-99%
 * of the centroids move in every iteration, the coarse k-means took about 0.75 of Lloyd's time
 * in interleaved runs. An earlier version took the products from dots_packed and found the
 * nearest two in a scalar pass over them, which cost as much as the distances it saved at
 * d = 128 (hard-set training: 7.65 s then, 5.71 s now, medians of 3 interleaved runs). Bounds
 * on moving centroids were tried first and pruned little on the benchmark's d = 384 set
 * (Hamerly's: 6% of the distances; Yinyang's, 64 groups: 31%, on a per-point path twice as
 * slow): there a point's nearest and second-nearest centroids differ by 4-7% in distance, less
 * than the largest drift of a centroid in most iterations. On that set 94, 60, 46, 38, 33, 29, 26
 * and 24% of the centroids moved in iterations 2 to 9, and the coarse k-means computed 0.55 of
 * Lloyd's distances: 19 s -> 12 s. Used for d >= 16 and k >= 64; the PQ sub-quantizers (d of 2-16,
 * 16 or 256 centroids) run plain Lloyd on the assign kernel. */
#include <math.h>

#include "vec_int.h"

#define KM_PLUSPLUS_MAX_WORK                                                                       \
    (1ull << 22) /* n * k below which k-means++ is used: its k                                     \
                  * sequential passes cost more than they gain above */
#define KM_SPLIT_EPS (1.0f / 1024.0f)

void vec_norms(const vk_ops *kern, const float *c, size_t k, size_t d, float *out)
{
    for (size_t j = 0; j < k; j++)
        out[j] = kern->ip(c + j * d, c + j * d, d);
}

typedef struct km_job {
    const vk_ops *kern;
    const float *x, *c, *cnorm;
    size_t n, d, k;
    uint32_t *idx;
    float *dist;
} km_job;

/* In chunks of about 256 KiB of points: the SIMD assign kernels pack a panel of centroids
 * (32-64 KiB, 16 centroids at d = 384) and run every point of the call against it, so a
 * chunk that stays in L2 is read from there once per panel instead of from memory. At
 * d = 384, k = 1024 one call over a thread's 131,072 points read them 64 times from memory
 * per iteration; the coarse k-means took 1.5x Faiss's (OpenBLAS) time. */
#define KM_CHUNK_BYTES (256u << 10)

static void *km_assign_run(void *arg)
{
    km_job *j = arg;
    size_t ch = KM_CHUNK_BYTES / (j->d * sizeof(float));
    ch = ch < 256 ? 256 : ch; /* >= the kernels' 64-point threshold for packing */
    for (size_t i = 0; i < j->n; i += ch) {
        size_t cnt = j->n - i < ch ? j->n - i : ch;
        j->kern->assign(j->x + i * j->d, cnt, j->c, j->cnorm, j->k, j->d, j->idx + i, j->dist + i);
    }
    return NULL;
}

void vec_run_jobs(void *(*fn)(void *), void *jobs, size_t size, uint32_t cnt)
{
    pthread_t tid[VEC_MAX_JOBS];
    bool started[VEC_MAX_JOBS] = {false};
    char *j = jobs;
    WR_VERIFY(cnt <= VEC_MAX_JOBS);
    for (uint32_t t = 1; t < cnt; t++)
        started[t] = pthread_create(&tid[t], NULL, fn, j + t * size) == 0;
    if (cnt > 0)
        fn(j);
    for (uint32_t t = 1; t < cnt; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            fn(j + t * size); /* thread creation failed: do it here */
    }
}

void vec_assign_mt(const vk_ops *kern, const float *x, size_t n, size_t d, const float *c,
                   const float *cnorm, size_t k, uint32_t threads, uint32_t *idx_out,
                   float *dist_out)
{
    if (threads > VEC_MAX_JOBS)
        threads = VEC_MAX_JOBS;
    if (threads <= 1 || n < 1024) {
        kern->assign(x, n, c, cnorm, k, d, idx_out, dist_out);
        return;
    }
    km_job jobs[VEC_MAX_JOBS];
    size_t per = (n + threads - 1) / threads;
    for (uint32_t t = 0; t < threads; t++) {
        size_t lo = per * t > n ? n : per * t, hi = lo + per > n ? n : lo + per;
        jobs[t] = (km_job){kern, x + lo * d, c, cnorm, hi - lo, d, k, idx_out + lo, dist_out + lo};
    }
    vec_run_jobs(km_assign_run, jobs, sizeof jobs[0], threads);
}

/* ---------------------------------------------------------------- moved-centroid pruning */
#define KM_BOUNDS_MIN_D 16
#define KM_BOUNDS_MIN_K 64
#define KM_ALL_MOVED    0.9          /* above this share of moved centroids: measure every point */
#define KM_BOUND_TOL    1e-5f        /* of ||x||^2 + max ||c||^2: the rounding of a distance */
#define KM_CHUNK_PTS    (128u << 10) /* bytes of points per kernel call (they stay in L2) */

typedef struct km_prune km_prune;

typedef struct km_pjob {
    km_prune *b;
    size_t lo, hi;  /* points */
    uint32_t *mj;   /* ch: per point of a chunk, the nearest moved centroid (its place in moved), */
    float *m1, *m2; /* its distance and the second-nearest moved one's */
    float *gx;      /* ch * d: points to measure against every centroid */
    uint32_t *gi;   /* their indices */
    uint32_t *gj;   /* ch: their nearest centroid, */
    float *gu, *gl; /* its distance and the second-nearest distance */
    uint64_t dists; /* point-centroid distances computed */
} km_pjob;

struct km_prune {
    const vk_ops *kern;
    const float *x, *cnorm;
    size_t n, d, k, ch;
    uint32_t threads;
    bool all;        /* measure every point against every centroid */
    uint32_t *idx;   /* per point: its centroid */
    float *xn;       /* per point: ||x||^2 */
    float *u2;       /* per point: squared distance to its centroid */
    float *l2;       /* per point: lower bound on the squared distance to every other */
    float *cold;     /* the centroids of the last assignment */
    uint32_t *moved; /* the centroids that moved since, nm of them */
    uint32_t nm;
    uint8_t *ismoved; /* per centroid */
    float *pk, *pkm;  /* all centroids, the moved ones: packed (vk_pack_panels) */
    float *cnm;       /* ||c||^2 of the moved ones */
    float cmax;       /* the largest ||c||^2 */
    km_pjob job[VEC_MAX_JOBS];
};

/* Measures the g points gathered in j->gx (indices j->gi) against every centroid: the nearest
 * (lower index on a tie), its distance and the second-nearest distance as the bound. */
static void km_measure_all(km_prune *b, km_pjob *j, size_t g)
{
    b->kern->assign_packed(j->gx, g, b->pk, b->cnorm, b->k, b->d, j->gj, j->gu, j->gl);
    for (size_t p = 0; p < g; p++) {
        uint32_t i = j->gi[p];
        b->idx[i] = j->gj[p];
        b->u2[i] = j->gu[p];
        b->l2[i] = j->gl[p];
    }
    j->dists += (uint64_t)g * b->k;
}

static void km_gather(km_prune *b, km_pjob *j, size_t i, size_t *g)
{
    memcpy(j->gx + *g * b->d, b->x + i * b->d, b->d * sizeof(float));
    j->gi[(*g)++] = (uint32_t)i;
    if (*g == b->ch) {
        km_measure_all(b, j, *g);
        *g = 0;
    }
}

/* Point i against the moved centroids only: the nearest of them (moved[s], at e1) and the
 * second-nearest distance e2 among them. Every centroid that did not move is where it was, at
 * least sqrt(l2) away (l2 bounds all but the point's own), so if the nearest of its own and the
 * moved ones is closer than that, it is the nearest of all. Returns false if it is not (the
 * point is then measured against every centroid). */
static bool km_settle(km_prune *b, size_t i, uint32_t s, float e1, float e2)
{
    uint32_t a = b->idx[i], c = b->moved[s];
    float tol = KM_BOUND_TOL * (b->xn[i] + b->cmax), b1 = e1, b2 = e2;
    if (!b->ismoved[a]) { /* its own centroid is where it was: u2 is still its distance */
        float u = b->u2[i];
        if (e1 < u || (e1 == u && c < a)) { /* ties go to the lower index, as in assign */
            b2 = u < e2 ? u : e2;
        } else {
            b1 = u;
            b2 = e1;
            c = a;
        }
    }
    if (!(b1 + tol < b->l2[i]))
        return false;
    b->idx[i] = c;
    b->u2[i] = b1;
    b->l2[i] = b2 < b->l2[i] ? b2 : b->l2[i];
    return true;
}

static void *km_prune_run(void *arg)
{
    km_pjob *j = arg;
    km_prune *b = j->b;
    size_t d = b->d, g = 0;
    for (size_t i0 = j->lo; i0 < j->hi; i0 += b->ch) {
        size_t cnt = j->hi - i0 < b->ch ? j->hi - i0 : b->ch;
        if (b->all) {
            b->kern->assign_packed(b->x + i0 * d, cnt, b->pk, b->cnorm, b->k, d, b->idx + i0,
                                   b->u2 + i0, b->l2 + i0);
            j->dists += (uint64_t)cnt * b->k;
            continue;
        }
        b->kern->assign_packed(b->x + i0 * d, cnt, b->pkm, b->cnm, b->nm, d, j->mj, j->m1, j->m2);
        j->dists += (uint64_t)cnt * b->nm;
        for (size_t i = i0; i < i0 + cnt; i++)
            if (!km_settle(b, i, j->mj[i - i0], j->m1[i - i0], j->m2[i - i0]))
                km_gather(b, j, i, &g);
    }
    if (g)
        km_measure_all(b, j, g);
    return NULL;
}

static void km_prune_free(km_prune *b)
{
    if (!b)
        return;
    wr_free(b->xn);
    wr_free(b->u2);
    wr_free(b->l2);
    wr_free(b->cold);
    wr_free(b->moved);
    wr_free(b->ismoved);
    wr_free(b->pk);
    wr_free(b->pkm);
    wr_free(b->cnm);
    for (uint32_t q = 0; q < b->threads; q++) {
        wr_free(b->job[q].mj);
        wr_free(b->job[q].m1);
        wr_free(b->job[q].m2);
        wr_free(b->job[q].gx);
        wr_free(b->job[q].gi);
        wr_free(b->job[q].gj);
        wr_free(b->job[q].gu);
        wr_free(b->job[q].gl);
    }
    wr_free(b);
}

/* NULL if there is no memory for it (the caller then runs plain Lloyd). */
static km_prune *km_prune_new(const vk_ops *kern, const float *x, size_t n, size_t d, size_t k,
                              uint32_t threads)
{
    km_prune *b = wr_calloc(1, sizeof *b);
    if (!b)
        return NULL;
    threads = threads > VEC_MAX_JOBS ? VEC_MAX_JOBS : threads < 1 || n < 1024 ? 1 : threads;
    size_t kp = (k + VK_PANEL - 1) / VK_PANEL * VK_PANEL, ch = KM_CHUNK_PTS / (d * sizeof(float));
    *b = (km_prune){.kern = kern, .x = x, .n = n, .d = d, .k = k, .threads = threads};
    b->ch = ch < 16 ? 16 : ch > 256 ? 256 : ch;
    b->xn = wr_malloc(n * sizeof(float));
    b->u2 = wr_malloc(n * sizeof(float));
    b->l2 = wr_malloc(n * sizeof(float));
    b->cold = wr_malloc(k * d * sizeof(float));
    b->moved = wr_malloc(k * sizeof(uint32_t));
    b->ismoved = wr_malloc(k);
    b->pk = wr_malloc(kp * d * sizeof(float));
    b->pkm = wr_malloc(kp * d * sizeof(float));
    b->cnm = wr_malloc(k * sizeof(float));
    bool ok =
        b->xn && b->u2 && b->l2 && b->cold && b->moved && b->ismoved && b->pk && b->pkm && b->cnm;
    size_t per = (n + threads - 1) / threads;
    for (uint32_t q = 0; q < threads; q++) {
        km_pjob *j = &b->job[q];
        j->b = b;
        j->lo = per * q > n ? n : per * q;
        j->hi = j->lo + per > n ? n : j->lo + per;
        j->mj = wr_malloc(b->ch * sizeof(uint32_t));
        j->m1 = wr_malloc(b->ch * sizeof(float));
        j->m2 = wr_malloc(b->ch * sizeof(float));
        j->gx = wr_malloc(b->ch * d * sizeof(float));
        j->gi = wr_malloc(b->ch * sizeof(uint32_t));
        j->gj = wr_malloc(b->ch * sizeof(uint32_t));
        j->gu = wr_malloc(b->ch * sizeof(float));
        j->gl = wr_malloc(b->ch * sizeof(float));
        ok = ok && j->mj && j->m1 && j->m2 && j->gx && j->gi && j->gj && j->gu && j->gl;
    }
    if (!ok) {
        km_prune_free(b);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        b->xn[i] = kern->ip(x + i * d, x + i * d, d);
    return b;
}

/* Assigns every point (idx) to its nearest centroid of c; @first on the first call. Returns
 * the point-centroid distances computed. */
static uint64_t km_prune_assign(km_prune *b, const float *c, const float *cnorm, uint32_t *idx,
                                bool first)
{
    size_t d = b->d, k = b->k;
    b->cnorm = cnorm;
    b->idx = idx;
    b->nm = 0;
    b->cmax = 0;
    for (size_t j = 0; j < k; j++) {
        b->ismoved[j] = first || memcmp(c + j * d, b->cold + j * d, d * sizeof(float)) != 0;
        if (b->ismoved[j])
            b->moved[b->nm++] = (uint32_t)j;
        b->cmax = cnorm[j] > b->cmax ? cnorm[j] : b->cmax;
    }
    uint64_t dists = 0;
    if (b->nm > 0) { /* else nothing moved: every point stays */
        b->all = (double)b->nm > KM_ALL_MOVED * (double)k;
        if (b->all) {
            vk_pack_panels(c, k, d, b->pk);
        } else {
            float *cm = b->cold; /* the moved centroids, gathered here before it is refreshed */
            for (uint32_t s = 0; s < b->nm; s++) {
                memcpy(cm + (size_t)s * d, c + (size_t)b->moved[s] * d, d * sizeof(float));
                b->cnm[s] = cnorm[b->moved[s]];
            }
            vk_pack_panels(cm, b->nm, d, b->pkm);
            vk_pack_panels(c, k, d, b->pk); /* for the points that need every centroid */
        }
        for (uint32_t q = 0; q < b->threads; q++)
            b->job[q].dists = 0;
        vec_run_jobs(km_prune_run, b->job, sizeof b->job[0], b->threads);
        for (uint32_t q = 0; q < b->threads; q++)
            dists += b->job[q].dists;
    }
    memcpy(b->cold, c, k * d * sizeof(float)); /* what the next call compares with */
    return dists;
}

/* k-means++: each next centroid is a point drawn with probability proportional to its squared
 * distance to the nearest centroid chosen so far. */
static void km_init_plusplus(const vk_ops *kern, const float *x, size_t n, size_t d, size_t k,
                             uint64_t *rng, float *c, float *mind, float *tmp)
{
    size_t first = (size_t)vec_rng_below(rng, n);
    memcpy(c, x + first * d, d * sizeof(float));
    kern->l2sq_n(c, x, n, d, mind);
    for (size_t j = 1; j < k; j++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += (double)mind[i];
        size_t pick = (size_t)vec_rng_below(rng, n);
        if (total > 0) {
            double r = (double)vec_rng_unit(rng) * total, acc = 0;
            for (size_t i = 0; i < n; i++) {
                acc += (double)mind[i];
                if (acc > r) {
                    pick = i;
                    break;
                }
            }
        }
        float *cj = c + j * d;
        memcpy(cj, x + pick * d, d * sizeof(float));
        kern->l2sq_n(cj, x, n, d, tmp);
        for (size_t i = 0; i < n; i++)
            if (tmp[i] < mind[i])
                mind[i] = tmp[i];
    }
}

/* k distinct points, by a partial Fisher-Yates shuffle of the indices. */
static wr_status km_init_random(const float *x, size_t n, size_t d, size_t k, uint64_t *rng,
                                float *c)
{
    uint32_t *perm = wr_malloc(n * sizeof(uint32_t));
    if (!perm)
        return wr_err(WR_ERR_NOMEM, "k-means: no memory for %zu indices", n);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t j = 0; j < k; j++) {
        size_t r = j + (size_t)vec_rng_below(rng, n - j);
        uint32_t t = perm[j];
        perm[j] = perm[r];
        perm[r] = t;
        memcpy(c + j * d, x + (size_t)perm[j] * d, d * sizeof(float));
    }
    wr_free(perm);
    return WR_OK;
}

/* The sums and counts of the clusters of assignment idx, kept across iterations: from scratch
 * when @full, else only the points whose centroid changed since the last call (prev holds
 * their old one) leave one sum and join another. A cluster none of whose points changed keeps
 * its sum bit for bit, so its centroid comes out the same, which the pruning relies on. The
 * updates cost a pass over the points only in the first iterations: on the benchmark's d = 384
 * set the full recount took 4% of the coarse k-means. */
static void km_sums(const float *x, size_t n, size_t d, size_t k, const uint32_t *idx,
                    uint32_t *prev, double *sum, uint64_t *cnt, bool full)
{
    if (full) {
        memset(sum, 0, k * d * sizeof(double));
        memset(cnt, 0, k * sizeof(uint64_t));
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t a = idx[i], o = prev[i];
        if (!full && a == o)
            continue;
        const float *xi = x + i * d;
        double *s = sum + (size_t)a * d;
        for (size_t t = 0; t < d; t++)
            s[t] += (double)xi[t];
        cnt[a]++;
        if (!full) {
            s = sum + (size_t)o * d;
            for (size_t t = 0; t < d; t++)
                s[t] -= (double)xi[t];
            if (--cnt[o] == 0) /* no rounding residue in an empty cluster */
                memset(s, 0, d * sizeof(double));
        }
        prev[i] = a;
    }
}

/* Gives every empty cluster half of a large one. Returns the number repaired. */
static size_t km_repair(size_t k, size_t d, uint64_t *rng, float *c, uint64_t *cnt, size_t n)
{
    size_t fixed = 0;
    for (size_t j = 0; j < k; j++) {
        if (cnt[j] != 0)
            continue;
        uint64_t big = 0;
        for (size_t t = 0; t < k; t++)
            big = cnt[t] > big ? cnt[t] : big;
        if (big < 2)
            break; /* nothing to split: duplicate points */
        /* pick a donor with probability proportional to (size - 1) */
        size_t donor = 0;
        for (;;) {
            donor = (size_t)vec_rng_below(rng, k);
            double p = (double)(cnt[donor] > 0 ? cnt[donor] - 1 : 0) / (double)(n - k + 1);
            if ((double)vec_rng_unit(rng) < p)
                break;
        }
        float *cj = c + j * d, *cd = c + donor * d;
        for (size_t t = 0; t < d; t++) {
            float e = (t & 1) ? KM_SPLIT_EPS : -KM_SPLIT_EPS;
            cj[t] = cd[t] * (1 + e);
            cd[t] = cd[t] * (1 - e);
            if (cd[t] == 0 && cj[t] == 0) { /* a zero coordinate: nudge absolutely */
                cj[t] = e;
                cd[t] = -e;
            }
        }
        cnt[j] = cnt[donor] / 2;
        cnt[donor] -= cnt[j];
        fixed++;
    }
    return fixed;
}

/* The state of one clustering, shared by its warm start and its main run. */
typedef struct km_state {
    const vk_ops *kern;
    size_t d, k;
    uint32_t threads;
    uint64_t rng;
    float *c, *cnorm;
    uint32_t *idx, *prev; /* per point: its centroid, and the one km_sums last counted */
    float *dist;
    double *sum;
    uint64_t *cnt, *rc; /* cluster sizes; rc a copy for km_repair (which splits the counts) */
    uint64_t dists;     /* point-centroid distances computed */
} km_state;

/* Lloyd's iterations over the n points at x: @iters times assign (through the pruning when kb
 * is set) and move every centroid to its mean; with @last one more assignment, leaving idx
 * and dist for the final centroids. */
static void km_iterate(km_state *s, const float *x, size_t n, km_prune *kb, uint32_t iters,
                       bool last)
{
    size_t d = s->d, k = s->k;
    for (uint32_t it = 0; it < iters + (last ? 1u : 0u); it++) {
        vec_norms(s->kern, s->c, k, d, s->cnorm);
        if (kb) {
            s->dists += km_prune_assign(kb, s->c, s->cnorm, s->idx, it == 0);
            if (it == iters)
                for (size_t i = 0; i < n; i++)
                    s->dist[i] = s->kern->l2sq(x + i * d, s->c + (size_t)s->idx[i] * d, d);
        } else {
            vec_assign_mt(s->kern, x, n, d, s->c, s->cnorm, k, s->threads, s->idx, s->dist);
            s->dists += (uint64_t)n * k;
        }
        if (it == iters)
            break;
        km_sums(x, n, d, k, s->idx, s->prev, s->sum, s->cnt, it == 0);
        for (size_t j = 0; j < k; j++) {
            if (s->cnt[j] == 0)
                continue;
            double inv = 1.0 / (double)s->cnt[j];
            for (size_t t = 0; t < d; t++)
                s->c[j * d + t] = (float)(s->sum[j * d + t] * inv);
        }
        memcpy(s->rc, s->cnt, k * sizeof(uint64_t));
        km_repair(k, d, &s->rng, s->c, s->rc, n);
    }
}

/* Warm start: the first iters * 3 / 10 iterations run on every KM_WARM_DIV-th point (at least
 * KM_WARM_MIN_PER of them per centroid), the rest on all of them. The first iterations move
 * the centroids far (on the benchmark's d = 384 set the median moved centroid travels 19, then
 * 3.3, then 1.7 against a median point-centroid distance of 27), so almost every centroid
 * moves and the pruning saves nothing there: those passes cost as much as Lloyd's. On a
 * quarter of the points they cost a quarter. The move to all the points then takes two full
 * passes (every centroid moves once more, to the mean of its full cluster) before the pruning
 * takes over from centroids already near their place. Measured with the benchmark's 10
 * iterations (3 warm): the coarse k-means computed 4.67 full passes of distances instead of
 * 6.08 on the d = 384 set; the mean squared error rose by 0.05% there and 0.15-0.3% on the
 * 128-dimension sets, and recall@10 at nprobe 1, 4 and 16 stayed within the spread of three
 * seeds (on the easy set 0.79-0.82 at nprobe 1 with and without it). */
#define KM_WARM_DIV     4
#define KM_WARM_MIN_PER 32 /* points per centroid in the warm sample */

static uint32_t km_warm_iters(const vec_km_opts *o, size_t n, size_t k, uint32_t iters)
{
    if (!o->warm || o->lloyd || n / KM_WARM_DIV < (uint64_t)KM_WARM_MIN_PER * k)
        return 0;
    return iters * 3 / 10;
}

wr_status vec_kmeans(const vk_ops *kern, const float *x, size_t n, size_t d, size_t k,
                     const vec_km_opts *o, float *c, double *err_out)
{
    if (k == 0 || n < k)
        return wr_err(WR_ERR_INVAL, "k-means: %zu points cannot make %zu clusters", n, k);
    km_state s = {.kern = kern,
                  .d = d,
                  .k = k,
                  .threads = o->threads,
                  .rng = o->seed ? o->seed : 1,
                  .c = c,
                  .idx = wr_malloc(n * sizeof(uint32_t)),
                  .prev = wr_malloc(n * sizeof(uint32_t)),
                  .dist = wr_malloc(n * sizeof(float)),
                  .cnorm = wr_malloc(k * sizeof(float)),
                  .sum = wr_malloc(k * d * sizeof(double)),
                  .cnt = wr_malloc(k * sizeof(uint64_t)),
                  .rc = wr_malloc(k * sizeof(uint64_t))};
    wr_status st = WR_ERR_NOMEM;
    float *tmp = NULL, *xs = NULL;
    km_prune *kb = NULL;
    if (!s.idx || !s.prev || !s.dist || !s.cnorm || !s.sum || !s.cnt || !s.rc) {
        wr_err(st, "k-means: no memory for %zu points x %zu clusters", n, k);
        goto out;
    }
    if (o->plusplus && (uint64_t)n * k <= KM_PLUSPLUS_MAX_WORK) {
        if (!(tmp = wr_malloc(n * sizeof(float)))) {
            wr_err(st, "k-means: no memory");
            goto out;
        }
        km_init_plusplus(kern, x, n, d, k, &s.rng, c, s.dist, tmp);
    } else if ((st = km_init_random(x, n, d, k, &s.rng, c)) != WR_OK) {
        goto out;
    }
    uint32_t iters = o->iters ? o->iters : 10, warm = km_warm_iters(o, n, k, iters);
    size_t ns = n / KM_WARM_DIV;
    if (warm && (xs = wr_malloc(ns * d * sizeof(float)))) { /* no memory: no warm start */
        for (size_t i = 0; i < ns; i++)
            memcpy(xs + i * d, x + i * KM_WARM_DIV * d, d * sizeof(float));
        km_iterate(&s, xs, ns, NULL, warm, false);
        iters -= warm;
    }
    if (!o->lloyd && d >= KM_BOUNDS_MIN_D && k >= KM_BOUNDS_MIN_K)
        kb = km_prune_new(kern, x, n, d, k, o->threads);
    /* the last pass only assigns the points to the final centroids, when that or the error is
     * wanted */
    bool last = err_out || o->idx_out;
    km_iterate(&s, x, n, kb, iters, last);
    if (last) {
        double err = 0;
        for (size_t i = 0; i < n; i++)
            err += (double)s.dist[i];
        if (err_out)
            *err_out = err / (double)n;
        if (o->idx_out) {
            memcpy(o->idx_out, s.idx, n * sizeof(uint32_t));
            memcpy(o->dist_out, s.dist, n * sizeof(float));
        }
    }
    if (o->dists_out)
        *o->dists_out = s.dists;
    st = WR_OK;
out:
    km_prune_free(kb);
    wr_free(s.idx);
    wr_free(s.prev);
    wr_free(s.dist);
    wr_free(s.cnorm);
    wr_free(s.sum);
    wr_free(s.cnt);
    wr_free(s.rc);
    wr_free(tmp);
    wr_free(xs);
    return st;
}

/* vec_kmeans.c -- Lloyd's k-means for the coarse quantizer and the PQ codebooks.
 *
 * Initialisation: k-means++ (D^2 sampling) when n * k is small enough for its k sequential
 * passes to be cheap, else k distinct points drawn at random (what Faiss does). Each
 * iteration assigns every point to its nearest centroid with the SIMD assign kernel, split
 * over threads, then moves each centroid to the mean of its points (sums in double). A
 * centroid left without points is repaired by splitting a large cluster: it takes a copy of
 * that cluster's centroid nudged by +eps, the donor -eps, and the two share its points in the
 * next assignment (Faiss's and scikit-learn's approach). (Running the early iterations on a
 * quarter of the points halved the training time but cost 0.03 recall@10 at nprobe 1 on the
 * benchmark's easy set, so every iteration uses every point.) */
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

wr_status vec_kmeans(const vk_ops *kern, const float *x, size_t n, size_t d, size_t k,
                     const vec_km_opts *o, float *c, double *err_out)
{
    if (k == 0 || n < k)
        return wr_err(WR_ERR_INVAL, "k-means: %zu points cannot make %zu clusters", n, k);
    uint64_t rng = o->seed ? o->seed : 1;
    wr_status st = WR_ERR_NOMEM;
    uint32_t *idx = wr_malloc(n * sizeof(uint32_t));
    float *dist = wr_malloc(n * sizeof(float));
    float *cnorm = wr_malloc(k * sizeof(float));
    double *sum = wr_malloc(k * d * sizeof(double));
    uint64_t *cnt = wr_malloc(k * sizeof(uint64_t));
    float *tmp = NULL;
    if (!idx || !dist || !cnorm || !sum || !cnt) {
        wr_err(st, "k-means: no memory for %zu points x %zu clusters", n, k);
        goto out;
    }
    if (o->plusplus && (uint64_t)n * k <= KM_PLUSPLUS_MAX_WORK) {
        if (!(tmp = wr_malloc(n * sizeof(float)))) {
            wr_err(st, "k-means: no memory");
            goto out;
        }
        km_init_plusplus(kern, x, n, d, k, &rng, c, dist, tmp);
    } else if ((st = km_init_random(x, n, d, k, &rng, c)) != WR_OK) {
        goto out;
    }
    double err = 0;
    uint32_t iters = o->iters ? o->iters : 10;
    /* the last pass (it == iters) only measures the final error, when it is wanted */
    for (uint32_t it = 0; it < iters + (err_out ? 1u : 0u); it++) {
        vec_norms(kern, c, k, d, cnorm);
        vec_assign_mt(kern, x, n, d, c, cnorm, k, o->threads, idx, dist);
        if (it == iters) {
            for (size_t i = 0; i < n; i++)
                err += (double)dist[i];
            err /= (double)n;
            break;
        }
        memset(sum, 0, k * d * sizeof(double));
        memset(cnt, 0, k * sizeof(uint64_t));
        for (size_t i = 0; i < n; i++) {
            double *s = sum + (size_t)idx[i] * d;
            const float *xi = x + i * d;
            for (size_t t = 0; t < d; t++)
                s[t] += (double)xi[t];
            cnt[idx[i]]++;
        }
        for (size_t j = 0; j < k; j++) {
            if (cnt[j] == 0)
                continue;
            double inv = 1.0 / (double)cnt[j];
            for (size_t t = 0; t < d; t++)
                c[j * d + t] = (float)(sum[j * d + t] * inv);
        }
        km_repair(k, d, &rng, c, cnt, n);
    }
    if (err_out)
        *err_out = err;
    st = WR_OK;
out:
    wr_free(idx);
    wr_free(dist);
    wr_free(cnorm);
    wr_free(sum);
    wr_free(cnt);
    wr_free(tmp);
    return st;
}

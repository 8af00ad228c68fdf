/* vec_quant.c -- training and encoding with the trained quantizers.
 *
 * The coarse quantizer is k-means over the sample (nlist centroids). Vectors are encoded by
 * residual: r = x - c(x) for every metric (for inner product <q, c + r> = <q, c> + <q, r>,
 * so the list's centroid term is added once per list). The residual is cut into m
 * sub-vectors of dsub = dim / m floats; each sub-quantizer is a k-means codebook of ksub =
 * 2^nbits centroids trained on the sample's residuals (at most 256 per centroid, as Faiss;
 * as many iterations as the coarse k-means, 10 by default: 25, Faiss's choice, gave the same
 * recall on SIFT and the synthetic sets).
 * A code is the index of the nearest codebook centroid of each sub-vector. */
#include <math.h>

#include "vec_int.h"

#define PQ_TRAIN_PER_CENTROID 256
#define ENC_BATCH             1024

void vec_quant_ref(vec_quant *q)
{
    atomic_fetch_add_explicit(&q->refs, 1, memory_order_relaxed);
}

void vec_quant_unref(vec_quant *q)
{
    if (!q || atomic_fetch_sub_explicit(&q->refs, 1, memory_order_acq_rel) != 1)
        return;
    wr_free(q->centroids);
    wr_free(q->cnorm);
    wr_free(q->codebook);
    wr_free(q->cbnorm);
    wr_free(q->cpk);
    wr_free(q);
}

wr_status vec_quant_finish(const vk_ops *kern, vec_quant *q)
{
    size_t ncb = (size_t)q->m * q->ksub;
    if (!(q->cbnorm = wr_malloc(ncb * sizeof(float))))
        return wr_err(WR_ERR_NOMEM, "vector index: no memory for codebook norms");
    vec_norms(kern, q->codebook, ncb, q->dsub, q->cbnorm);
    size_t kp = ((size_t)q->nlist + VK_PANEL - 1) / VK_PANEL * VK_PANEL;
    if (!(q->cpk = wr_malloc(kp * q->dim * sizeof(float))))
        return wr_err(WR_ERR_NOMEM, "vector index: no memory for packed centroids");
    vk_pack_panels(q->centroids, q->nlist, q->dim, q->cpk);
    return WR_OK;
}

size_t vec_quant_code_bytes(const vec_quant *q)
{
    return q->nbits == 8 ? q->m : (size_t)q->m / 2;
}

/* With residual encoding, ||q - c - r||^2 = ||q - c||^2 + (||r||^2 + 2 <c, r>) - 2 <q, r>. The
 * middle term depends only on the stored code and its list, so it is computed once when the
 * vector is added and kept beside the code (4 bytes); a search then needs one table per query
 * (-2 <q, b> for every codebook entry b) for all lists, and adds ||q - c||^2 per list. */
float vec_quant_term(const vk_ops *kern, const vec_quant *q, uint32_t li, const uint8_t *code)
{
    if (q->metric != VEC_L2)
        return 0;
    float r[256], acc = 0;
    const float *c = q->centroids + (size_t)li * q->dim;
    for (uint32_t j0 = 0; j0 < q->m;) { /* in pieces of at most 256 floats */
        uint32_t j1 = j0, len = 0;
        while (j1 < q->m && len + q->dsub <= 256) {
            memcpy(r + len, q->codebook + ((size_t)j1 * q->ksub + code[j1]) * q->dsub,
                   q->dsub * sizeof(float));
            len += q->dsub;
            j1++;
        }
        if (len == 0) { /* dsub > 256: one sub-vector in place */
            const float *b = q->codebook + ((size_t)j0 * q->ksub + code[j0]) * q->dsub;
            acc += kern->ip(b, b, q->dsub) + 2 * kern->ip(c + (size_t)j0 * q->dsub, b, q->dsub);
            j0++;
            continue;
        }
        acc += kern->ip(r, r, len) + 2 * kern->ip(c + (size_t)j0 * q->dsub, r, len);
        j0 = j1;
    }
    return acc;
}

/* ---- PQ codebook training, one sub-quantizer per job */
typedef struct pq_job {
    const vk_ops *kern;
    const float *res; /* n * dim residuals */
    size_t n, dim, dsub, ksub;
    uint32_t j0, j1; /* sub-quantizers [j0, j1) */
    uint32_t iters;
    uint64_t seed;
    float *codebook;
    wr_status st;
} pq_job;

static void *pq_train_run(void *arg)
{
    pq_job *jb = arg;
    float *sub = wr_malloc(jb->n * jb->dsub * sizeof(float));
    if (!sub) {
        jb->st = wr_err(WR_ERR_NOMEM, "PQ training: no memory");
        return NULL;
    }
    for (uint32_t j = jb->j0; j < jb->j1 && jb->st == WR_OK; j++) {
        for (size_t i = 0; i < jb->n; i++)
            memcpy(sub + i * jb->dsub, jb->res + i * jb->dim + j * jb->dsub,
                   jb->dsub * sizeof(float));
        vec_km_opts ko = {
            .iters = jb->iters, .threads = 1, .seed = jb->seed + j * 7919u, .plusplus = true};
        jb->st = vec_kmeans(jb->kern, sub, jb->n, jb->dsub, jb->ksub, &ko,
                            jb->codebook + (size_t)j * jb->ksub * jb->dsub, NULL);
    }
    wr_free(sub);
    return NULL;
}

static wr_status pq_train(const vk_ops *kern, vec_quant *q, const float *res, size_t n,
                          uint32_t threads, uint32_t iters, uint64_t seed)
{
    enum { MAXT = 16 };
    if (threads < 1)
        threads = 1;
    if (threads > MAXT)
        threads = MAXT;
    if (threads > q->m)
        threads = q->m;
    pq_job jobs[MAXT];
    uint32_t per = (q->m + threads - 1) / threads;
    for (uint32_t t = 0; t < threads; t++) {
        uint32_t j0 = t * per, j1 = j0 + per > q->m ? q->m : j0 + per;
        jobs[t] = (pq_job){kern, res,   n,    q->dim,      q->dsub, q->ksub, j0 > j1 ? j1 : j0,
                           j1,   iters, seed, q->codebook, WR_OK};
    }
    vec_run_jobs(pq_train_run, jobs, sizeof jobs[0], threads);
    wr_status st = WR_OK;
    for (uint32_t t = 0; t < threads && st == WR_OK; t++)
        st = jobs[t].st;
    return st;
}

wr_status vec_quant_train(const vk_ops *kern, const vec_options *o, uint32_t nlist, const float *x,
                          size_t n, uint64_t version, vec_quant **out)
{
    uint32_t dim = o->dim, nbits = o->nbits ? o->nbits : 8;
    uint32_t m = o->m ? o->m : (nbits == 8 ? dim / 4 : dim / 2);
    if (m == 0)
        m = 1;
    if (dim % m != 0 || (nbits == 4 && m % 2 != 0) || (nbits != 4 && nbits != 8))
        return wr_err(WR_ERR_INVAL,
                      "vector index: m=%u sub-quantizers with nbits=%u do not fit dim=%u (m must "
                      "divide dim, be even for 4 bits; nbits is 4 or 8)",
                      m, nbits, dim);
    uint32_t ksub = 1u << nbits;
    if (n < nlist || n < ksub)
        return wr_err(WR_ERR_INVAL,
                      "vector index: %zu training vectors are too few for nlist=%u and %u-entry "
                      "codebooks",
                      n, nlist, ksub);
    vec_quant *q = wr_calloc(1, sizeof *q);
    if (!q)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory for quantizers");
    atomic_init(&q->refs, 1);
    q->version = version;
    q->metric = o->metric;
    q->dim = dim;
    q->nlist = nlist;
    q->m = m;
    q->nbits = nbits;
    q->ksub = ksub;
    q->dsub = dim / m;
    q->trained_on = n;
    q->centroids = wr_malloc((size_t)nlist * dim * sizeof(float));
    q->cnorm = wr_malloc((size_t)nlist * sizeof(float));
    q->codebook = wr_malloc((size_t)m * ksub * q->dsub * sizeof(float));
    uint32_t *idx = wr_malloc(n * sizeof(uint32_t));
    float *dist = wr_malloc(n * sizeof(float));
    float *res = NULL;
    uint64_t *cnt = wr_calloc(nlist, sizeof(uint64_t));
    wr_status st = WR_ERR_NOMEM;
    if (!q->centroids || !q->cnorm || !q->codebook || !idx || !dist || !cnt) {
        wr_err(st, "vector index: no memory to train on %zu vectors", n);
        goto fail;
    }
    uint32_t threads = o->train_threads ? o->train_threads : 1;
    uint32_t iters = o->train_iters ? o->train_iters : 10;
    vec_km_opts ko = {.iters = iters,
                      .threads = threads,
                      .seed = o->seed ^ (version * 0x9e3779b97f4a7c15ull),
                      .plusplus = true,
                      .warm = true,
                      .idx_out = idx,
                      .dist_out = dist};
    if ((st = vec_kmeans(kern, x, n, dim, nlist, &ko, q->centroids, NULL)) != WR_OK)
        goto fail;
    vec_norms(kern, q->centroids, nlist, dim, q->cnorm);
    double err = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        err += (double)dist[i];
        cnt[idx[i]]++;
    }
    for (uint32_t j = 0; j < nlist; j++)
        sq += (double)cnt[j] * (double)cnt[j];
    q->trained_err = err / (double)n;
    q->trained_imbalance = sq * nlist / ((double)n * (double)n);

    /* PQ on residuals of an evenly spread subset of the sample */
    size_t npq = (size_t)ksub * PQ_TRAIN_PER_CENTROID;
    if (npq > n)
        npq = n;
    if (!(res = wr_malloc(npq * dim * sizeof(float)))) {
        st = wr_err(WR_ERR_NOMEM, "vector index: no memory for PQ training");
        goto fail;
    }
    for (size_t i = 0; i < npq; i++) {
        size_t src = (size_t)((uint64_t)i * n / npq);
        const float *xi = x + src * dim, *c = q->centroids + (size_t)idx[src] * dim;
        float *r = res + i * dim;
        for (uint32_t t = 0; t < dim; t++)
            r[t] = xi[t] - c[t];
    }
    if ((st = pq_train(kern, q, res, npq, threads, iters, ko.seed + 1)) != WR_OK ||
        (st = vec_quant_finish(kern, q)) != WR_OK)
        goto fail;
    wr_free(res);
    wr_free(idx);
    wr_free(dist);
    wr_free(cnt);
    *out = q;
    return WR_OK;
fail:
    wr_free(res);
    wr_free(idx);
    wr_free(dist);
    wr_free(cnt);
    vec_quant_unref(q);
    return st;
}

/* ---- encoding */
typedef struct enc_job {
    const vk_ops *kern;
    const vec_quant *q;
    const float *x;
    size_t n;
    uint32_t *list;
    uint8_t *codes;
    float *err;
    float *sub;    /* owned by the caller: ENC_BATCH * dsub */
    float *dist;   /* ENC_BATCH */
    uint32_t *idx; /* ENC_BATCH */
} enc_job;

static void *enc_run(void *arg)
{
    enc_job *jb = arg;
    const vec_quant *q = jb->q;
    size_t dim = q->dim, dsub = q->dsub, m = q->m;
    for (size_t b = 0; b < jb->n; b += ENC_BATCH) {
        size_t nb = jb->n - b < ENC_BATCH ? jb->n - b : ENC_BATCH;
        const float *xb = jb->x + b * dim;
        jb->kern->assign_packed(xb, nb, q->cpk, q->cnorm, q->nlist, dim, jb->list + b, jb->dist,
                                NULL);
        if (jb->err)
            memcpy(jb->err + b, jb->dist, nb * sizeof(float));
        for (size_t j = 0; j < m; j++) {
            for (size_t i = 0; i < nb; i++) {
                const float *xi = xb + i * dim + j * dsub;
                const float *ci = q->centroids + (size_t)jb->list[b + i] * dim + j * dsub;
                for (size_t t = 0; t < dsub; t++)
                    jb->sub[i * dsub + t] = xi[t] - ci[t];
            }
            jb->kern->assign(jb->sub, nb, q->codebook + j * q->ksub * dsub, q->cbnorm + j * q->ksub,
                             q->ksub, dsub, jb->idx, jb->dist);
            for (size_t i = 0; i < nb; i++)
                jb->codes[(b + i) * m + j] = (uint8_t)jb->idx[i];
        }
    }
    return NULL;
}

wr_status vec_quant_encode(const vk_ops *kern, const vec_quant *q, const float *x, size_t n,
                           uint32_t threads, uint32_t *list_out, uint8_t *codes_out, float *err_out)
{
    enum { MAXT = 16 };
    if (threads < 1)
        threads = 1;
    if (threads > MAXT)
        threads = MAXT;
    if (n < 4096)
        threads = 1;
    size_t per_thread = ENC_BATCH * ((size_t)q->dsub + 2);
    float *mem = wr_malloc(per_thread * threads * sizeof(float));
    if (!mem)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory to encode %zu vectors", n);
    enc_job jobs[MAXT];
    size_t per = (n + threads - 1) / threads;
    for (uint32_t t = 0; t < threads; t++) {
        size_t lo = per * t > n ? n : per * t, hi = lo + per > n ? n : lo + per;
        float *buf = mem + per_thread * t;
        jobs[t] = (enc_job){kern,
                            q,
                            x + lo * q->dim,
                            hi - lo,
                            list_out + lo,
                            codes_out + lo * q->m,
                            err_out ? err_out + lo : NULL,
                            buf,
                            buf + ENC_BATCH * q->dsub,
                            (uint32_t *)(buf + ENC_BATCH * (q->dsub + 1))};
    }
    vec_run_jobs(enc_run, jobs, sizeof jobs[0], threads);
    wr_free(mem);
    return WR_OK;
}

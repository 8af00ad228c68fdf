/* vec_calib.c -- recall targets instead of knobs.
 *
 * A sample of the index's own live vectors serves as queries. For each, exact search (without
 * the vector itself) gives the true top-k; then every setting of a grid -- nprobe 1, 2, 4, ...
 * up to nlist, each without re-ranking and with refine 2, 4 and 8 -- is measured for recall@k.
 * For each target the cheapest setting meeting it is kept, by a cost model counted in code
 * bytes touched: nprobe lists of average length times the code size, plus one lookup-table
 * build per list, plus k * refine exact distances. Near-isotropic data (real text embeddings)
 * simply ends up with a large nprobe. If no setting meets a target, the best one measured is
 * kept and its measured recall says so. Each query takes the lock on its own, so writes go on
 * between them. */
#include <math.h>

#include "vec_int.h"

static const uint32_t refines[] = {0, 2, 4, 8};
#define NREF (sizeof refines / sizeof refines[0])

typedef struct grid_pt {
    uint32_t nprobe, refine;
    double recall, cost;
} grid_pt;

static double cost_of(const vec_quant *q, double avg_list, uint32_t nprobe, uint32_t refine,
                      uint32_t k)
{
    double code = q->nbits == 8 ? q->m : q->m / 2.0;
    double lut = q->metric == VEC_L2 ? (double)q->ksub * q->dim : 0;
    return nprobe * (avg_list * code + lut) + (double)(refine ? refine : 1) * k * q->dim * 4;
}

wr_status vec_calibrate(vec_index *ix, const float *targets, uint32_t target_cnt, uint32_t sample,
                        uint32_t k)
{
    if (target_cnt == 0 || target_cnt > 8)
        return wr_err(WR_ERR_INVAL, "calibration: 1..8 recall targets, not %u", target_cnt);
    for (uint32_t i = 0; i < target_cnt; i++)
        if (!(targets[i] > 0 && targets[i] <= 1))
            return wr_err(WR_ERR_INVAL, "calibration: target %g is not in (0, 1]",
                          (double)targets[i]);
    if (sample == 0)
        sample = 200;
    if (k == 0 || k > 256)
        k = 10;
    uint32_t dim = ix->o.dim;
    pthread_rwlock_rdlock(&ix->lk);
    if (!ix->q) {
        pthread_rwlock_unlock(&ix->lk);
        return wr_err(WR_ERR_INVAL,
                      "calibration: the index is not trained yet (%llu vectors, "
                      "training starts at %llu)",
                      (unsigned long long)ix->live, (unsigned long long)ix->o.train_threshold);
    }
    uint32_t nlist = ix->q->nlist;
    uint64_t version = ix->q->version, live = ix->live;
    if (sample > live)
        sample = (uint32_t)live;
    uint32_t ngrid = 0;
    for (uint32_t np = 1; np < nlist * 2; np *= 2)
        ngrid++;
    float *qs = wr_malloc((size_t)sample * dim * sizeof(float));
    int64_t *ids = wr_malloc(sample * sizeof(int64_t));
    uint64_t *gt = wr_malloc((size_t)sample * k * sizeof(uint64_t));
    vec_hit *hits = wr_malloc((size_t)k * 8 * sizeof(vec_hit));
    grid_pt *grid = wr_calloc((size_t)ngrid * NREF, sizeof(grid_pt));
    wr_status st = WR_OK;
    vec_quant *q = NULL;
    if (!qs || !ids || !gt || !hits || !grid) {
        pthread_rwlock_unlock(&ix->lk);
        st = wr_err(WR_ERR_NOMEM, "calibration: no memory");
        goto out;
    }
    /* the sample: evenly spaced live slots */
    uint64_t rng = ix->o.seed * 31 + version, seen = 0;
    uint32_t got = 0;
    for (uint32_t p = 0; p < ix->o.partitions && got < sample; p++) {
        const vec_part *pt = &ix->parts[p];
        for (uint32_t s = 0; s < pt->nslots && got < sample; s++) {
            if (pt->dead[s])
                continue;
            if (vec_rng_below(&rng, live - seen) < sample - got) {
                memcpy(qs + (size_t)got * dim, vec_slot_vec(pt, dim, s), dim * sizeof(float));
                ids[got++] = (int64_t)((uint64_t)p << 32 | s);
            }
            seen++;
        }
    }
    double avg_list = (double)live / nlist;
    q = ix->q;
    vec_quant_ref(q);
    pthread_rwlock_unlock(&ix->lk);

    vec_query o;
    vec_query_init(&o);
    o.k = k;
    uint32_t *gtn = wr_calloc(sample, sizeof(uint32_t));
    if (!gtn) {
        st = wr_err(WR_ERR_NOMEM, "calibration: no memory");
        goto out_q;
    }
    o.exact = true;
    for (uint32_t i = 0; i < got && st == WR_OK; i++) {
        uint32_t n;
        pthread_rwlock_rdlock(&ix->lk);
        st = vec_search_locked(ix, qs + (size_t)i * dim, &o, 0, 0, ids[i], hits, &n);
        pthread_rwlock_unlock(&ix->lk);
        for (uint32_t j = 0; j < n; j++)
            gt[(size_t)i * k + j] = (uint64_t)hits[j].part << 32 | hits[j].slot;
        gtn[i] = n;
    }
    o.exact = false;
    for (uint32_t g = 0; g < ngrid && st == WR_OK; g++) {
        uint32_t np = 1u << g > nlist ? nlist : 1u << g;
        for (uint32_t r = 0; r < NREF && st == WR_OK; r++) {
            uint64_t found = 0, want = 0;
            for (uint32_t i = 0; i < got && st == WR_OK; i++) {
                uint32_t n;
                pthread_rwlock_rdlock(&ix->lk);
                st = vec_search_locked(ix, qs + (size_t)i * dim, &o, np, refines[r], ids[i], hits,
                                       &n);
                pthread_rwlock_unlock(&ix->lk);
                for (uint32_t a = 0; a < gtn[i]; a++)
                    for (uint32_t b = 0; b < n; b++)
                        if (gt[(size_t)i * k + a] ==
                            ((uint64_t)hits[b].part << 32 | hits[b].slot)) {
                            found++;
                            break;
                        }
                want += gtn[i];
            }
            grid_pt *gp = &grid[g * NREF + r];
            *gp = (grid_pt){np, refines[r], want ? (double)found / (double)want : 1.0,
                            cost_of(q, avg_list, np, refines[r], k)};
        }
    }
    wr_free(gtn);
    if (st != WR_OK)
        goto out_q;
    vec_calib c = {0};
    c.k = k;
    c.sample = got;
    c.version = version;
    float sorted[8];
    memcpy(sorted, targets, target_cnt * sizeof(float));
    for (uint32_t i = 1; i < target_cnt; i++)
        for (uint32_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            float t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (uint32_t t = 0; t < target_cnt; t++) {
        const grid_pt *best = NULL, *top = &grid[0];
        for (uint32_t g = 0; g < ngrid * NREF; g++) {
            const grid_pt *gp = &grid[g];
            if (gp->recall > top->recall || (gp->recall == top->recall && gp->cost < top->cost))
                top = gp;
            if (gp->recall >= (double)sorted[t] && (!best || gp->cost < best->cost))
                best = gp;
        }
        if (!best)
            best = top;
        c.pt[c.cnt++] =
            (vec_calib_point){sorted[t], best->nprobe, best->refine, (float)best->recall};
    }
    pthread_rwlock_wrlock(&ix->lk);
    if (!ix->q || ix->q->version == version)
        ix->calib = c;
    ix->calib_wanted = true;
    memcpy(ix->calib_targets, sorted, target_cnt * sizeof(float));
    ix->calib_target_cnt = target_cnt;
    pthread_rwlock_unlock(&ix->lk);
out_q:
    vec_quant_unref(q);
out:
    wr_free(qs);
    wr_free(ids);
    wr_free(gt);
    wr_free(hits);
    wr_free(grid);
    return st;
}

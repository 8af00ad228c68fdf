/* vec_train.c -- training and retraining, in the background, with an atomic swap.
 *
 * A training runs in four steps, holding the index lock only for the first and the last:
 *  1. (shared lock) note each partition's slot count S[p] and draw a uniform sample of the
 *     live slots below it (nlist * train_per_list vectors at most);
 *  2. (no lock) copy the sample and train new quantizers on it (vec_quant.c);
 *  3. (no lock) encode every slot below S[p] into fresh lists for the new quantizers -- slot
 *     vectors never change and the chunks holding them never move, so this is safe while
 *     writers append and searches run on the old lists;
 *  4. (exclusive lock) encode the slots added since step 1, point every slot at its new list
 *     entry, count and compact the dead, then swap lists and quantizers in one step and reset
 *     the drift counters. A search sees either the old index or the new one, never a mix.
 *
 * Drift: every vector encoded after a training adds its coarse error (squared distance to its
 * centroid) to a running mean; when that mean exceeds the trained error by drift_ratio, or the
 * list imbalance exceeds the trained imbalance by drift_ratio, and enough vectors were added,
 * vec_train_maybe() starts a retraining. */
#include <math.h>
#include <stdio.h>

#include "vec_int.h"

#define IMBALANCE_EVERY 1024 /* additions between two imbalance checks */

static uint32_t auto_nlist(uint64_t n)
{
    double want = 4 * sqrt((double)n);
    uint32_t nl = 16;
    while (nl * 2 <= want && nl < 65536)
        nl *= 2;
    while (nl > 16 && (uint64_t)nl * 39 > n) /* at least 39 training vectors per list */
        nl /= 2;
    return nl;
}

static uint32_t ksub_of(const vec_options *o)
{
    return o->nbits == 4 ? 16u : 256u;
}

/* Step 1: under the shared lock, the slot counts and the sample's (part, slot) pairs. */
static wr_status pick_sample(vec_index *ix, uint32_t nlist, uint32_t *snap, uint64_t **pick_out,
                             size_t *n_out)
{
    uint64_t live = 0;
    for (uint32_t p = 0; p < ix->o.partitions; p++) {
        snap[p] = ix->parts[p].nslots;
        live += ix->parts[p].live;
    }
    uint64_t want = (uint64_t)nlist * (ix->o.train_per_list ? ix->o.train_per_list : 256);
    if (want < (uint64_t)ksub_of(&ix->o) * 256)
        want = (uint64_t)ksub_of(&ix->o) * 256; /* the PQ codebooks want 256 per centroid */
    if (want > live)
        want = live;
    uint64_t *pick = wr_malloc((want ? want : 1) * sizeof(uint64_t));
    if (!pick)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory for a training sample");
    /* selection sampling (Knuth's algorithm S) over the live slots: uniform, in slot order */
    uint64_t rng = ix->o.seed ^ (ix->next_version * 0x2545f4914f6cdd1dull), seen = 0;
    size_t got = 0;
    for (uint32_t p = 0; p < ix->o.partitions && got < want; p++) {
        const vec_part *pt = &ix->parts[p];
        for (uint32_t s = 0; s < snap[p] && got < want; s++) {
            if (pt->dead[s])
                continue;
            if (vec_rng_below(&rng, live - seen) < want - got)
                pick[got++] = (uint64_t)p << 32 | s;
            seen++;
        }
    }
    *pick_out = pick;
    *n_out = got;
    return WR_OK;
}

/* Step 4, under the exclusive lock: catch up, re-point the slots, swap. */
static wr_status swap_in(vec_index *ix, vec_quant *q, vec_lists **fresh, const uint32_t *snap)
{
    /* vectors added during the training were not in its sample: they count as added since */
    uint64_t caught = 0;
    double err = 0;
    for (uint32_t p = 0; p < ix->o.partitions; p++) {
        double e = 0;
        WR_TRY(vec_part_encode(ix, &ix->parts[p], fresh[p], snap[p], ix->parts[p].nslots, &e));
        caught += ix->parts[p].nslots - snap[p];
        err += e;
    }
    for (uint32_t p = 0; p < ix->o.partitions; p++) {
        vec_part *pt = &ix->parts[p];
        vec_lists *ls = fresh[p];
        for (uint32_t li = 0; li < q->nlist; li++) {
            vec_list *l = &ls->l[li];
            l->dead = 0;
            for (uint32_t i = 0; i < l->n; i++) {
                uint32_t s = l->slots[i];
                pt->list[s] = li;
                pt->pos[s] = i;
                l->dead += pt->dead[s];
            }
            if (l->dead)
                WR_IGNORE(vec_list_compact(q, l, pt->dead, pt->pos));
        }
        vec_lists *old = pt->lists;
        pt->lists = ls;
        fresh[p] = old; /* freed by the caller after the lock is dropped */
    }
    vec_quant *oldq = ix->q;
    ix->q = q; /* the caller's reference moves to the index */
    if (oldq)
        vec_quant_unref(oldq);
    ix->added_since_train = caught;
    ix->added_err_sum = err;
    ix->retrains++;
    return WR_OK;
}

static wr_status train_run(vec_index *ix)
{
    uint32_t np = ix->o.partitions, dim = ix->o.dim;
    uint32_t *snap = wr_calloc(np, sizeof(uint32_t));
    vec_lists **fresh = wr_calloc(np, sizeof(vec_lists *));
    uint64_t *pick = NULL;
    float *x = NULL;
    vec_quant *q = NULL;
    size_t n = 0;
    wr_status st = WR_OK;
    if (!snap || !fresh) {
        st = wr_err(WR_ERR_NOMEM, "vector index: no memory to train");
        goto out;
    }
    pthread_rwlock_rdlock(&ix->lk);
    uint64_t live = ix->live;
    uint32_t nlist = ix->o.nlist ? ix->o.nlist : auto_nlist(live);
    uint64_t version = ix->next_version;
    st = pick_sample(ix, nlist, snap, &pick, &n);
    pthread_rwlock_unlock(&ix->lk);
    if (st != WR_OK)
        goto out;
    if (n < nlist || n < ksub_of(&ix->o)) {
        st = wr_err(WR_ERR_INVAL,
                    "vector index: %zu live vectors are too few to train nlist=%u lists with "
                    "%u-entry codebooks",
                    n, nlist, ksub_of(&ix->o));
        goto out;
    }
    if (!(x = wr_malloc(n * dim * sizeof(float)))) {
        st = wr_err(WR_ERR_NOMEM, "vector index: no memory for %zu training vectors", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(x + i * dim, vec_slot_vec(&ix->parts[pick[i] >> 32], dim, (uint32_t)pick[i]),
               dim * sizeof(float));
    uint64_t t0 = wr_now_ns();
    if ((st = vec_quant_train(ix->kern, &ix->o, nlist, x, n, version, &q)) != WR_OK)
        goto out;
    uint64_t t1 = wr_now_ns();
    for (uint32_t p = 0; p < np; p++) {
        if (!(fresh[p] = vec_lists_create(q))) {
            st = wr_err(WR_ERR_NOMEM, "vector index: no memory for lists");
            goto out;
        }
        if ((st = vec_part_encode(ix, &ix->parts[p], fresh[p], 0, snap[p], NULL)) != WR_OK)
            goto out;
    }
    uint64_t t2 = wr_now_ns();
    pthread_rwlock_wrlock(&ix->lk);
    if (ix->next_version == version)
        ix->next_version++;
    st = swap_in(ix, q, fresh, snap);
    if (st == WR_OK) {
        q = NULL;
        ix->last_train_s = (double)(t1 - t0) / 1e9;
        ix->last_encode_s = (double)(wr_now_ns() - t1) / 1e9;
    }
    pthread_rwlock_unlock(&ix->lk);
    WR_LOGI("vector index: trained version %llu on %zu vectors (nlist %u): train %.2f s, "
            "encode %.2f s",
            (unsigned long long)version, n, nlist, (double)(t1 - t0) / 1e9,
            (double)(t2 - t1) / 1e9);
out:
    for (uint32_t p = 0; fresh && p < np; p++)
        vec_lists_destroy(fresh[p]);
    vec_quant_unref(q);
    wr_free(fresh);
    wr_free(snap);
    wr_free(pick);
    wr_free(x);
    return st;
}

/* The end of every training: recalibrate, note a failure, clear the flag. A failure is logged
 * by the callers that have no one to return it to (background and inline trainings). */
static void after_training(vec_index *ix, wr_status st)
{
    if (st == WR_OK && ix->calib_wanted)
        WR_IGNORE(vec_calibrate(ix, ix->calib_targets, ix->calib_target_cnt, ix->calib.sample,
                                ix->calib.k));
    pthread_rwlock_wrlock(&ix->lk);
    ix->train_status = st;
    if (st != WR_OK) /* do not retry on every write: wait for another threshold's worth */
        ix->train_retry_at = ix->live + ix->o.train_threshold;
    pthread_rwlock_unlock(&ix->lk);
    atomic_store(&ix->training, false);
}

static bool train_due(vec_index *ix);

static void *trainer_main(void *arg)
{
    vec_index *ix = arg;
    wr_status st;
    bool again;
    int rounds = 0;
    do { /* the data may have drifted again during a long training: go on while due */
        st = train_run(ix);
        pthread_rwlock_rdlock(&ix->lk);
        again = st == WR_OK && ++rounds < 4 && train_due(ix); /* the flag stays set */
        pthread_rwlock_unlock(&ix->lk);
    } while (again);
    if (st != WR_OK)
        WR_LOGW("vector index: background training failed: %s (searches stay on the previous "
                "index)",
                wr_errmsg());
    after_training(ix, st);
    return NULL;
}

/* Starts a training; wmu held. Returns false if a thread could not be started. */
static bool start_background(vec_index *ix)
{
    if (ix->trainer_running) {
        pthread_join(ix->trainer, NULL); /* a finished one: training is false */
        ix->trainer_running = false;
    }
    atomic_store(&ix->training, true);
    if (pthread_create(&ix->trainer, NULL, trainer_main, ix) != 0) {
        atomic_store(&ix->training, false);
        return false;
    }
    ix->trainer_running = true;
    return true;
}

/* Whether the data calls for a training, whatever the training flag says (lk held). */
static bool train_due(vec_index *ix)
{
    if (!ix->q)
        return ix->live >= ix->o.train_threshold && ix->live >= ix->train_retry_at;
    if (ix->live < ix->train_retry_at)
        return false;
    if (ix->o.drift_ratio <= 0)
        return false;
    uint64_t min_added = ix->o.drift_min_added;
    if (!min_added) {
        min_added = ix->q->trained_on / 10;
        if (min_added < 1000)
            min_added = 1000;
    }
    if (ix->added_since_train < min_added)
        return false;
    double recent = ix->added_err_sum / (double)ix->added_since_train;
    if (ix->q->trained_err > 0 && recent > ix->o.drift_ratio * ix->q->trained_err)
        return true;
    if (ix->added_since_train % IMBALANCE_EVERY != 0)
        return false;
    double sum = 0, sq = 0;
    for (uint32_t p = 0; p < ix->o.partitions; p++) {
        const vec_lists *ls = ix->parts[p].lists;
        for (uint32_t j = 0; ls && j < ls->q->nlist; j++) {
            double live = (double)(ls->l[j].n - ls->l[j].dead);
            sum += live;
            sq += live * live;
        }
    }
    double imb = sum > 0 ? sq * ix->q->nlist / (sum * sum) : 0;
    return imb > ix->o.drift_ratio * ix->q->trained_imbalance;
}

bool vec_train_due(vec_index *ix)
{
    return !atomic_load(&ix->training) && train_due(ix);
}

void vec_train_maybe(vec_index *ix)
{
    if (!ix->o.background || !vec_train_due(ix))
        return;
    if (!start_background(ix))
        WR_LOGW("vector index: could not start a training thread; will retry");
}

wr_status vec_train(vec_index *ix, bool wait)
{
    pthread_mutex_lock(&ix->wmu);
    /* trainings start only with wmu held: once the flag is clear under wmu, it stays clear */
    while (atomic_load(&ix->training)) {
        pthread_mutex_unlock(&ix->wmu);
        if (!wait)
            return wr_err(WR_ERR_BUSY, "vector index: a training is already running");
        vec_wait_idle(ix);
        pthread_mutex_lock(&ix->wmu);
    }
    if (!wait) {
        bool ok = start_background(ix);
        pthread_mutex_unlock(&ix->wmu);
        return ok ? WR_OK : wr_err(WR_ERR_NOMEM, "vector index: could not start a training thread");
    }
    atomic_store(&ix->training, true);
    wr_status st = train_run(ix);
    /* keep the detail of a failure: after_training may log and calibrate */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", wr_errmsg());
    after_training(ix, st);
    pthread_mutex_unlock(&ix->wmu);
    return st == WR_OK ? st : wr_err(st, "%s", msg);
}

void vec_train_inline(vec_index *ix)
{
    /* foreground mode: the writer that crossed the line trains, wmu held */
    atomic_store(&ix->training, true);
    wr_status st = train_run(ix);
    if (st != WR_OK)
        WR_LOGW("vector index: training failed: %s (search stays exact or on the previous index; "
                "retried after %llu more vectors)",
                wr_errmsg(), (unsigned long long)ix->o.train_threshold);
    after_training(ix, st);
}

void vec_wait_idle(vec_index *ix)
{
    pthread_mutex_lock(&ix->wmu);
    if (ix->trainer_running) {
        pthread_join(ix->trainer, NULL);
        ix->trainer_running = false;
    }
    pthread_mutex_unlock(&ix->wmu);
}

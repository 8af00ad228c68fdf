/* vec_search.c -- k-nearest-neighbour search: exact, IVF-PQ (8-bit ADC and 4-bit fast scan),
 * re-ranking with exact vectors, filters inside the scan, partition fan-out.
 *
 * IVF-PQ: the query's distance to every coarse centroid picks the nprobe closest lists (for
 * inner product: the largest <q, c>). One lookup table per query, m x ksub entries, turns
 * every code of every probed list into a distance by m lookups (the scan kernels): with
 * residual encoding ||q - c - r||^2 = ||q - c||^2 + (||r||^2 + 2 <c, r>) - 2 <q, r>, the table
 * holds -2 <q, b> for every codebook entry b, the list adds ||q - c||^2, and each entry adds
 * its own ||r||^2 + 2 <c, r>, computed when it was added (vec_list.term). For inner product
 * the table holds -<q, b> and the list adds -<q, c>. No per-list table is built, which is
 * what makes many short lists cheap. For 4-bit codes the table is quantized to bytes once
 * (per-sub-quantizer offset, one shared scale) so the scan runs on 16-bit integers with the
 * tables in registers; the sum comes back as offset + sum * scale.
 *
 * A candidate enters the results only if it beats their bound and its slot is alive
 * and passes the filter -- so a filtered search still fills k results from matching vectors.
 * If the probed lists hold fewer than k matching vectors, the next-closest lists are probed
 * too, until k are found or no list is left. With refine r, the results keep k * r candidates
 * whose exact distances (from the vectors kept beside the codes) pick the final k. */
#include <math.h>
#include <simde/x86/sse2.h>
#include <stdlib.h>

#include "vec_int.h"

#define SCAN_PIECE 4096 /* entries scanned per kernel call (a multiple of VK_BLOCK) */

/* ------------------------------------------------------------------ scratch */
typedef struct cand { /* a result candidate */
    float d;
    uint64_t id; /* part << 32 | slot */
} cand;

typedef struct scratch {
    size_t dim_cap, nlist_cap, lut_cap, cand_cap;
    float *q;                /* prepared query */
    float *cd;               /* coarse distances */
    uint32_t *order;         /* lists by coarse distance */
    float *lut;              /* m * ksub */
    uint8_t *lut8;           /* m * 16 */
    float *dbuf;             /* SCAN_PIECE */
    uint16_t *d16;           /* SCAN_PIECE */
    cand *hc;                /* result candidates: 2 * their cap, + as much to select in */
    const float *coarse_pre; /* set by a batch for the next search: its coarse distances */
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *s = p;
    if (!s)
        return;
    wr_free(s->q);
    wr_free(s->cd);
    wr_free(s->order);
    wr_free(s->lut);
    wr_free(s->lut8);
    wr_free(s->dbuf);
    wr_free(s->d16);
    wr_free(s->hc);
    wr_free(s);
}

static void scratch_key_make(void)
{
    WR_VERIFY(pthread_key_create(&scratch_key, scratch_free) == 0);
}

#define ENSURE(ptr, cnt)                                                                           \
    do {                                                                                           \
        void *n_ = wr_realloc((ptr), (size_t)(cnt) * sizeof(*(ptr)));                              \
        if (!n_)                                                                                   \
            return NULL;                                                                           \
        (ptr) = n_;                                                                                \
    } while (0)

static scratch *scratch_get(size_t dim, size_t nlist, size_t lut, size_t cands)
{
    pthread_once(&scratch_once, scratch_key_make);
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = wr_calloc(1, sizeof *s)))
            return NULL;
        pthread_setspecific(scratch_key, s);
        ENSURE(s->dbuf, SCAN_PIECE);
        ENSURE(s->d16, SCAN_PIECE);
    }
    if (dim > s->dim_cap) {
        ENSURE(s->q, dim);
        s->dim_cap = dim;
    }
    if (nlist > s->nlist_cap) {
        ENSURE(s->cd, nlist);
        ENSURE(s->order, nlist);
        s->nlist_cap = nlist;
    }
    if (lut > s->lut_cap) {
        ENSURE(s->lut, lut);
        ENSURE(s->lut8, lut);
        s->lut_cap = lut;
    }
    if (cands > s->cand_cap) {
        ENSURE(s->hc, 4 * cands); /* 2 * cap candidates + as many for cand_select */
        s->cand_cap = cands;
    }
    return s;
}

/* ------------------------------------------------------------------ result collector */
/* Keeps the cap candidates of smallest distance (between equal distances at the cut, the one
 * kept depends on the scan order, which is fixed); the caller sorts them by distance, then id.
 * A candidate below the bound is appended to a buffer of 2 * cap; when the buffer fills, a
 * quickselect keeps the cap best and the bound becomes the worst of them. Appending is a store,
 * where a binary heap's replace-the-worst is a sift through log2(cap) levels for every candidate
 * that beats the current worst -- most of them while the first lists are scanned. The bound lags
 * the true cap-th best (it is updated only at a shrink), so it is a valid cut-off: nothing at
 * or above it can be among the final cap. */
typedef struct topk {
    cand *c; /* 2 * cap, then 2 * cap for cand_select */
    uint32_t n, cap;
    float bound;
} topk;

static inline bool cand_less(const cand *a, const cand *b)
{
    return a->d < b->d || (a->d == b->d && a->id < b->id);
}

/* Rearranges c[0..n) so that c[0..want) hold want of its smallest distances (in no order),
 * want < n; tmp has room for n. Each round partitions the range around a median-of-three pivot
 * into tmp -- smaller distances from the left end, the others from the right, both stores made
 * every time so there is no branch on the comparison, which is a coin toss on this data -- and
 * copies it back. If no distance is below the pivot, the round is redone with <= (which takes
 * at least the pivot); if every one is <= too, they are all equal and any want of them do. */
static void cand_select(cand *c, cand *tmp, uint32_t n, uint32_t want)
{
    uint32_t lo = 0, hi = n; /* the boundary want lies in [lo, hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        float x = c[lo].d, y = c[mid].d, z = c[hi - 1].d;
        float pv = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
        uint32_t a = lo;
        for (int le = 0; le < 2 && a == lo; le++) {
            uint32_t b = hi - 1;
            for (uint32_t i = lo; i < hi; i++) {
                cand v = c[i];
                bool in = le ? v.d <= pv : v.d < pv;
                tmp[a] = v;
                tmp[b] = v;
                a += in;
                b -= !in;
            }
        }
        if (a == hi || a == lo) /* all equal (a == lo: a NaN pivot, no order to find) */
            return;
        memcpy(c + lo, tmp + lo, (hi - lo) * sizeof(cand));
        if (a == want)
            return;
        if (a > want)
            hi = a;
        else
            lo = a;
    }
}

static void topk_shrink(topk *h)
{
    cand_select(h->c, h->c + 2 * h->cap, h->n, h->cap);
    h->n = h->cap;
    float worst = h->c[0].d;
    for (uint32_t i = 1; i < h->n; i++)
        worst = h->c[i].d > worst ? h->c[i].d : worst;
    h->bound = worst;
}

static inline void topk_add(topk *h, float d, uint64_t id)
{
    h->c[h->n].d = d;
    h->c[h->n].id = id;
    if (++h->n == 2 * h->cap)
        topk_shrink(h);
}

/* Leaves the cap best (or all, if fewer) in c[0..n), in no order. */
static void topk_finish(topk *h)
{
    if (h->n > h->cap)
        topk_shrink(h);
}

static int cand_cmp(const void *a, const void *b)
{
    return cand_less(a, b) ? -1 : cand_less(b, a) ? 1 : 0;
}

/* Sorts c[0..n) ascending: insertion sort for the usual few, else qsort. */
static void cand_sort(cand *c, uint32_t n)
{
    if (n > 128) {
        qsort(c, n, sizeof(cand), cand_cmp);
        return;
    }
    for (uint32_t i = 1; i < n; i++) {
        cand x = c[i];
        uint32_t j = i;
        for (; j > 0 && cand_less(&x, &c[j - 1]); j--)
            c[j] = c[j - 1];
        c[j] = x;
    }
}

/* Puts the k smallest of c[0..n) (by distance, then id) in c[0..k), sorted; the rest stay
 * behind them in no order. After a re-rank only k of the k * refine are returned: one pass
 * compares each with the current k-th and most go no further, where sorting all of them was
 * a sixth of a 4-bit query at nprobe 1 (refine 16: 160 candidates, over cand_sort's cut to
 * qsort). */
static void cand_top(cand *c, uint32_t n, uint32_t k)
{
    if (k > 64 || k >= n) {
        cand_sort(c, n);
        return;
    }
    cand_sort(c, k);
    for (uint32_t i = k; i < n; i++) {
        if (!cand_less(&c[i], &c[k - 1]))
            continue;
        cand x = c[i];
        c[i] = c[k - 1]; /* the dropped one keeps a place in c[k..n) */
        uint32_t j = k - 1;
        for (; j > 0 && cand_less(&x, &c[j - 1]); j--)
            c[j] = c[j - 1];
        c[j] = x;
    }
}

/* ------------------------------------------------------------------ filter */
typedef struct filt {
    bool any;
    uint32_t agent; /* 0: any */
    const char *prefix;
    size_t prefix_len;
    int64_t tmin, tmax;
    int64_t exclude; /* part << 32 | slot, or -1 */
} filt;

static inline bool slot_ok(const vec_index *ix, const vec_part *p, uint32_t part, uint32_t slot,
                           const filt *f)
{
    if (p->dead[slot])
        return false;
    if (!f->any)
        return true;
    if (f->exclude >= 0 && (uint64_t)f->exclude == ((uint64_t)part << 32 | slot))
        return false;
    if (f->agent && p->agent[slot] != f->agent)
        return false;
    if (p->time[slot] < f->tmin || p->time[slot] > f->tmax)
        return false;
    if (f->prefix_len && strncmp(vec_slot_key(ix, p, slot), f->prefix, f->prefix_len) != 0)
        return false;
    return true;
}

/* ------------------------------------------------------------------ exact search */
static float to_dist(vec_metric m, float raw)
{
    /* raw: squared L2 for L2, inner product otherwise */
    return m == VEC_L2 ? raw : m == VEC_IP ? -raw : 1.0f - raw;
}

static void search_exact(const vec_index *ix, const float *q, scratch *s, topk *h, const filt *f)
{
    uint32_t dim = ix->o.dim;
    vec_metric met = ix->o.metric;
    for (uint32_t pi = 0; pi < ix->o.partitions; pi++) {
        const vec_part *p = &ix->parts[pi];
        for (uint32_t base = 0; base < p->nslots; base += SCAN_PIECE) {
            uint32_t n = p->nslots - base < SCAN_PIECE ? p->nslots - base : SCAN_PIECE;
            /* a piece never crosses a chunk: SCAN_PIECE divides VEC_CHUNK */
            const float *x = vec_slot_vec(p, dim, base);
            if (met == VEC_L2)
                ix->kern->l2sq_n(q, x, n, dim, s->dbuf);
            else
                ix->kern->ip_n(q, x, n, dim, s->dbuf);
            for (uint32_t i = 0; i < n; i++) {
                float d = to_dist(met, s->dbuf[i]);
                if (d < h->bound && slot_ok(ix, p, pi, base + i, f))
                    topk_add(h, d, (uint64_t)pi << 32 | (base + i));
            }
        }
    }
}

/* ------------------------------------------------------------------ IVF-PQ search */
static void sort_lists(uint32_t *order, const float *cd, uint32_t lo, uint32_t hi)
{
    /* insertion sort of order[lo..hi) by cd: used on the nprobe selected lists */
    for (uint32_t i = lo + 1; i < hi; i++) {
        uint32_t v = order[i], j = i;
        while (j > lo && cd[order[j - 1]] > cd[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

/* Moves the @want smallest (by cd) of order[lo..hi) to order[lo..lo+want), unsorted
 * (quickselect). */
static void select_lists(uint32_t *order, const float *cd, uint32_t lo, uint32_t hi, uint32_t want)
{
    uint32_t target = lo + want;
    while (hi - lo > 16) {
        float piv = cd[order[lo + (hi - lo) / 2]];
        uint32_t i = lo, j = hi - 1;
        while (i <= j) {
            while (cd[order[i]] < piv)
                i++;
            while (cd[order[j]] > piv)
                j--;
            if (i <= j) {
                uint32_t t = order[i];
                order[i] = order[j];
                order[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (target <= j)
            hi = j + 1;
        else if (target >= i)
            lo = i;
        else
            return;
    }
    sort_lists(order, cd, lo, hi);
}

/* The @want (<= 64) smallest of cd[0..n) in order[0..want), sorted, in one pass: each list is
 * compared with the current want-th best and most go no further (cheaper than a quickselect
 * for the usual small nprobe). */
static void pick_few(uint32_t *order, const float *cd, uint32_t n, uint32_t want)
{
    uint32_t have = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (have == want && (i & 3) == 0 && i + 4 <= n) {
            /* four at a time while none of them is closer than the want-th (SSE compare) */
            simde__m128 t = simde_mm_set1_ps(cd[order[want - 1]]);
            if (simde_mm_movemask_ps(simde_mm_cmplt_ps(simde_mm_loadu_ps(cd + i), t)) == 0) {
                i += 3;
                continue;
            }
        }
        float d = cd[i];
        if (have == want && d >= cd[order[want - 1]])
            continue;
        uint32_t j = have < want ? have++ : want - 1;
        while (j > 0 && cd[order[j - 1]] > d) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* After pick_few: fills order[want..n) with the lists not picked (any order). */
static void rest_after(uint32_t *order, uint32_t n, uint32_t want)
{
    uint32_t w = want;
    for (uint32_t i = 0; i < n; i++) {
        bool taken = false;
        for (uint32_t j = 0; j < want && !taken; j++)
            taken = order[j] == i;
        if (!taken)
            order[w++] = i;
    }
}

/* The smallest and largest of the 4 lanes. */
static inline void hminmax4(simde__m128 lo, simde__m128 hi, float *mn, float *mx)
{
    lo = simde_mm_min_ps(lo, simde_mm_shuffle_ps(lo, lo, SIMDE_MM_SHUFFLE(1, 0, 3, 2)));
    lo = simde_mm_min_ps(lo, simde_mm_shuffle_ps(lo, lo, SIMDE_MM_SHUFFLE(2, 3, 0, 1)));
    hi = simde_mm_max_ps(hi, simde_mm_shuffle_ps(hi, hi, SIMDE_MM_SHUFFLE(1, 0, 3, 2)));
    hi = simde_mm_max_ps(hi, simde_mm_shuffle_ps(hi, hi, SIMDE_MM_SHUFFLE(2, 3, 0, 1)));
    *mn = simde_mm_cvtss_f32(lo);
    *mx = simde_mm_cvtss_f32(hi);
}

/* Quantizes a float table (m x 16, m <= VEC_MAX_M4, smaller is better) to bytes; returns the
 * scale and the sum of the per-sub-quantizer offsets. Byte c of table j is
 * (lut - min_j) * 255 / range + 0.5, truncated, where range is the largest max_j - min_j. SSE2
 * through SIMDe, 16 entries (4 registers) per sub-quantizer: a scalar loop was 5% of a 4-bit
 * query at nprobe 2. */
static float lut_quantize(const float *lut, uint32_t m, uint8_t *lut8, float *base_out)
{
    float range = 0, base = 0, mns[VEC_MAX_M4];
    for (uint32_t j = 0; j < m; j++) {
        const float *t = lut + j * 16;
        simde__m128 a = simde_mm_loadu_ps(t), b = simde_mm_loadu_ps(t + 4);
        simde__m128 c = simde_mm_loadu_ps(t + 8), d = simde_mm_loadu_ps(t + 12);
        float mn, mx;
        hminmax4(simde_mm_min_ps(simde_mm_min_ps(a, b), simde_mm_min_ps(c, d)),
                 simde_mm_max_ps(simde_mm_max_ps(a, b), simde_mm_max_ps(c, d)), &mn, &mx);
        mns[j] = mn;
        range = mx - mn > range ? mx - mn : range;
        base += mn;
    }
    float a = range > 0 ? 255.0f / range : 0;
    simde__m128 av = simde_mm_set1_ps(a), half = simde_mm_set1_ps(0.5f);
    for (uint32_t j = 0; j < m; j++) {
        const float *t = lut + j * 16;
        simde__m128 mn = simde_mm_set1_ps(mns[j]);
        simde__m128i q[4];
        for (int r = 0; r < 4; r++) {
            simde__m128 v = simde_mm_sub_ps(simde_mm_loadu_ps(t + 4 * r), mn);
            q[r] = simde_mm_cvttps_epi32(simde_mm_add_ps(simde_mm_mul_ps(v, av), half));
        }
        /* 0.5 .. 255.5 truncates to 0 .. 255 (256 at worst after rounding: saturated) */
        simde__m128i w = simde_mm_packus_epi16(simde_mm_packs_epi32(q[0], q[1]),
                                               simde_mm_packs_epi32(q[2], q[3]));
        simde_mm_storeu_si128((void *)(lut8 + j * 16), w);
    }
    *base_out = base;
    return a > 0 ? 1.0f / a : 0;
}

/* out[i] = lbase + d16[i] * lscale + (bias + term[i]): 4-bit sums to distances, as take4
 * computes them (the same operations in the same order). */
static void d16_dists(float *out, const uint16_t *d16, const float *term, float lbase, float lscale,
                      float bias, uint32_t n)
{
    simde__m128 lb = simde_mm_set1_ps(lbase), ls = simde_mm_set1_ps(lscale);
    simde__m128 bv = simde_mm_set1_ps(bias);
    simde__m128i zero = simde_mm_setzero_si128();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        simde__m128i x = simde_mm_loadu_si128((const void *)(d16 + i));
        simde__m128 f0 = simde_mm_cvtepi32_ps(simde_mm_unpacklo_epi16(x, zero));
        simde__m128 f1 = simde_mm_cvtepi32_ps(simde_mm_unpackhi_epi16(x, zero));
        simde__m128 t0 = simde_mm_add_ps(bv, simde_mm_loadu_ps(term + i));
        simde__m128 t1 = simde_mm_add_ps(bv, simde_mm_loadu_ps(term + i + 4));
        simde_mm_storeu_ps(out + i,
                           simde_mm_add_ps(simde_mm_add_ps(lb, simde_mm_mul_ps(f0, ls)), t0));
        simde_mm_storeu_ps(out + i + 4,
                           simde_mm_add_ps(simde_mm_add_ps(lb, simde_mm_mul_ps(f1, ls)), t1));
    }
    for (; i < n; i++)
        out[i] = lbase + (float)d16[i] * lscale + (bias + term[i]);
}

/* d[i] += bias + term[i]; restrict and the 8-wide body let the compiler vectorize it. */
static void add_terms(float *restrict d, const float *restrict term, float bias, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t j = 0; j < 8; j++)
            d[i + j] += bias + term[i + j];
    for (; i < n; i++)
        d[i] += bias + term[i];
}

/* Offers entry (pi, slot) of list l at distance d, which beats the bound: it is taken if its
 * slot is alive and passes the filter. A list without dead entries, searched without a filter,
 * needs no look at the (cold) tombstones. */
static inline void offer(const vec_index *ix, const vec_part *p, uint32_t pi, const vec_list *l,
                         uint32_t slot, float d, topk *h, const filt *f)
{
    if ((l->dead == 0 && !f->any) || slot_ok(ix, p, pi, slot, f))
        topk_add(h, d, (uint64_t)pi << 32 | slot);
}

/* The candidates of one 4-bit piece: entry i's distance is lbase + d16[i] * lscale +
 * bias + term[i]. Every term is >= the list's term_lo, so no entry with d16[i] >= lim (the
 * bound's value in sums, rounded up, plus a margin for the float arithmetic) can beat the
 * bound: 16 sums at a time are compared with lim in 16-bit integers (SSE2, through SIMDe), and
 * only a group with an entry under lim gets its float distances computed -- at nprobe 64 on
 * the benchmark's hard set one group in five (one entry in eight is under lim, one in two
 * hundred beats the bound). */
static void take4(const vec_index *ix, const vec_part *p, uint32_t pi, const vec_list *l,
                  uint32_t base, uint32_t n, float bias, float lbase, float lscale,
                  const uint16_t *d16, topk *h, const filt *f)
{
    const float *term = l->term + base;
    uint32_t lim = 65536; /* d16 < lim: a possible candidate */
    if (h->bound < INFINITY && lscale > 0) {
        float rest = h->bound - bias - lbase - l->term_lo;
        float slack = 1e-4f * (fabsf(h->bound) + fabsf(bias) + fabsf(lbase) + fabsf(l->term_lo));
        float q = (rest + slack) / lscale + 1.0f;
        lim = q <= 0 ? 0 : q >= 65536.0f ? 65536 : (uint32_t)q;
    }
    if (lim == 0)
        return;
    simde__m128i limv = simde_mm_set1_epi16((int16_t)(uint16_t)(lim > 65535 ? 65535 : lim));
    simde__m128i zero = simde_mm_setzero_si128();
    for (uint32_t g = 0; g < n; g += 16) {
        /* two bits per entry under lim: lim - d16 (saturating) is not 0 */
        uint32_t pass = 0xFFFFFFFFu;
        if (lim <= 65535) {
            simde__m128i a = simde_mm_loadu_si128((const void *)(d16 + g));
            simde__m128i b = simde_mm_loadu_si128((const void *)(d16 + g + 8));
            uint32_t za = (uint32_t)simde_mm_movemask_epi8(
                simde_mm_cmpeq_epi16(simde_mm_subs_epu16(limv, a), zero));
            uint32_t zb = (uint32_t)simde_mm_movemask_epi8(
                simde_mm_cmpeq_epi16(simde_mm_subs_epu16(limv, b), zero));
            pass = ~(za | zb << 16);
        }
        uint32_t e = g + 16 < n ? g + 16 : n; /* past n: the last block's padding */
        if (e - g < 16)
            pass &= (1u << (2 * (e - g))) - 1u;
        if (!pass)
            continue;
        /* a group with a possible candidate: its exact distances (a fixed-length loop the
         * compiler vectorizes), then the entries that beat the bound */
        float dd[16];
        if (e - g == 16) {
            for (uint32_t i = 0; i < 16; i++)
                dd[i] = lbase + (float)d16[g + i] * lscale + (bias + term[g + i]);
        } else {
            for (uint32_t i = 0; i < e - g; i++)
                dd[i] = lbase + (float)d16[g + i] * lscale + (bias + term[g + i]);
        }
        for (uint32_t i = 0; i < e - g; i++) {
            if (dd[i] < h->bound)
                offer(ix, p, pi, l, l->slots[base + g + i], dd[i], h, f);
        }
    }
}

/* How many of d[0..n) are <= v: SSE2 compares (through SIMDe), the all-ones masks
 * subtracted from the counts. */
static uint32_t count_le(const float *d, uint32_t n, float v)
{
    simde__m128 vv = simde_mm_set1_ps(v);
    simde__m128i c0 = simde_mm_setzero_si128(), c1 = simde_mm_setzero_si128();
    uint32_t i = 0, r = 0;
    for (; i + 8 <= n; i += 8) {
        simde__m128 a = simde_mm_cmple_ps(simde_mm_loadu_ps(d + i), vv);
        simde__m128 b = simde_mm_cmple_ps(simde_mm_loadu_ps(d + i + 4), vv);
        c0 = simde_mm_sub_epi32(c0, simde_mm_castps_si128(a));
        c1 = simde_mm_sub_epi32(c1, simde_mm_castps_si128(b));
    }
    int32_t lanes[4];
    simde_mm_storeu_si128((void *)lanes, simde_mm_add_epi32(c0, c1));
    for (; i < n; i++)
        r += d[i] <= v;
    return r + (uint32_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
}

/* The smallest and largest of d[0..n), n >= 1. */
static void min_max(const float *d, uint32_t n, float *lo_out, float *hi_out)
{
    simde__m128 lo = simde_mm_set1_ps(d[0]), hi = lo;
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        simde__m128 x = simde_mm_loadu_ps(d + i);
        lo = simde_mm_min_ps(lo, x);
        hi = simde_mm_max_ps(hi, x);
    }
    float l[4], h[4];
    simde_mm_storeu_ps(l, lo);
    simde_mm_storeu_ps(h, hi);
    for (; i < n; i++) {
        l[0] = d[i] < l[0] ? d[i] : l[0];
        h[0] = d[i] > h[0] ? d[i] : h[0];
    }
    for (int t = 1; t < 4; t++) {
        l[0] = l[t] < l[0] ? l[t] : l[0];
        h[0] = h[t] > h[0] ? h[t] : h[0];
    }
    *lo_out = l[0];
    *hi_out = h[0];
}

/* The first piece a search scans (the results still empty, their bound infinite): if it holds
 * more than cap entries, all of them alive and unfiltered, a value with at least cap of its
 * distances d[0..n) at or below it becomes the bound at once -- nothing above it can be among
 * the final cap. The value is found by bisection between the smallest and the largest
 * distance, each step a vectorized count, until at most 5/4 cap are at or below it (or 16
 * steps). Without it every entry of the first list was a candidate until the buffer had
 * filled and shrunk a few times: at nprobe 1-2 with refine, the collector and its candidate
 * checks were a quarter of a query. (A quickselect for the exact cap-th distance cost more
 * than it saved: its comparisons are coin tosses for the branch predictor.) */
static void seed_bound(topk *h, const vec_list *l, const filt *f, const float *d, uint32_t n)
{
    if (h->n != 0 || h->bound < INFINITY || n <= h->cap || l->dead != 0 || f->any)
        return;
    float lo, hi;
    min_max(d, n, &lo, &hi);
    /* invariant: count_le(hi) >= cap (all n at the start) */
    for (int step = 0; step < 16; step++) {
        float mid = lo + (hi - lo) * 0.5f;
        if (!(mid > lo && mid < hi))
            break;
        uint32_t c = count_le(d, n, mid);
        if (c >= h->cap) {
            hi = mid;
            if (c <= h->cap + h->cap / 4)
                break;
        } else {
            lo = mid;
        }
    }
    h->bound = hi + fabsf(hi) * 1e-6f + 1e-30f; /* above hi even after rounding */
}

/* Scans list li of every partition with the query's table: the distance of entry i is
 * bias + term[i] + the sum of its code's table entries (the 4-bit sum comes back as 16-bit
 * integers: lbase + sum * lscale; take4). */
static void scan_list(const vec_index *ix, const vec_quant *qu, uint32_t li, float bias,
                      const float *lut, const uint8_t *lut8, float lbase, float lscale, scratch *s,
                      topk *h, const filt *f)
{
    for (uint32_t pi = 0; pi < ix->o.partitions; pi++) {
        const vec_part *p = &ix->parts[pi];
        const vec_list *l = &p->lists->l[li];
        for (uint32_t base = 0; base < l->n; base += SCAN_PIECE) {
            uint32_t n = l->n - base < SCAN_PIECE ? l->n - base : SCAN_PIECE;
            const float *term = l->term + base;
            if (qu->nbits == 4) {
                size_t nb = (n + VK_BLOCK - 1) / VK_BLOCK;
                ix->kern->pq_scan4(l->codes + (size_t)(base / VK_BLOCK) * qu->m * 16, nb, qu->m,
                                   lut8, s->d16);
                if (h->n == 0 && h->bound == INFINITY && n > h->cap) {
                    d16_dists(s->dbuf, s->d16, term, lbase, lscale, bias, n);
                    seed_bound(h, l, f, s->dbuf, n);
                }
                take4(ix, p, pi, l, base, n, bias, lbase, lscale, s->d16, h, f);
                continue;
            }
            ix->kern->pq_scan8(l->codes + (size_t)base * qu->m, n, qu->m, lut, s->dbuf);
            /* distances first (vectorized), then a group of 8 is looked
             * at only if its best beats the results' bound -- which most groups do not */
            float *d = s->dbuf;
            add_terms(d, term, bias, n);
            seed_bound(h, l, f, d, n);
            for (uint32_t g = 0; g < n; g += 8) {
                uint32_t e = g + 8 < n ? g + 8 : n;
                float best = d[g];
                for (uint32_t i = g + 1; i < e; i++)
                    best = d[i] < best ? d[i] : best;
                if (!(best < h->bound))
                    continue;
                for (uint32_t i = g; i < e; i++)
                    if (d[i] < h->bound)
                        offer(ix, p, pi, l, l->slots[base + i], d[i], h, f);
            }
        }
    }
}

/* Coarse distances of @nq prepared queries (q: nq * dim) to every centroid, out[i * nlist + c]:
 * ||q - c||^2 = ||q||^2 + ||c||^2 - 2 <q, c> (at least 0), or -<q, c> for inner product. The
 * inner products come from dots_packed, a matrix-product kernel over the centroids packed once
 * per quantizer, panel by panel, each panel used by every query of the group while it is in
 * L1 (the centroids are nlist * dim floats: 512 KiB at 1024 x 128, 1.5 MiB at 1024 x 384). */
static void coarse_dists(const vec_index *ix, const float *q, uint32_t nq, float *out)
{
    const vec_quant *qu = ix->q;
    uint32_t nlist = qu->nlist, dim = qu->dim;
    ix->kern->dots_packed(q, nq, qu->cpk, nlist, dim, out);
    for (uint32_t i = 0; i < nq; i++) {
        float *o = out + (size_t)i * nlist;
        if (qu->metric == VEC_L2) {
            float qn = ix->kern->ip(q + (size_t)i * dim, q + (size_t)i * dim, dim);
            simde__m128 qv = simde_mm_set1_ps(qn), two = simde_mm_set1_ps(2.0f);
            simde__m128 zero = simde_mm_setzero_ps();
            uint32_t c = 0;
            for (; c + 4 <= nlist; c += 4) { /* max(qn + cnorm - 2 dot, 0), SSE */
                simde__m128 e =
                    simde_mm_sub_ps(simde_mm_add_ps(qv, simde_mm_loadu_ps(qu->cnorm + c)),
                                    simde_mm_mul_ps(two, simde_mm_loadu_ps(o + c)));
                simde_mm_storeu_ps(o + c, simde_mm_max_ps(e, zero));
            }
            for (; c < nlist; c++) {
                float e = qn + qu->cnorm[c] - 2.0f * o[c];
                o[c] = e > 0.0f ? e : 0.0f;
            }
        } else {
            for (uint32_t c = 0; c < nlist; c++)
                o[c] = -o[c];
        }
    }
}

static void lut_scale(float *restrict v, float f, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) /* 8-wide body: vectorized at -O2 */
        for (size_t j = 0; j < 8; j++)
            v[i + j] *= f;
    for (; i < n; i++)
        v[i] *= f;
}

static void search_ivf(const vec_index *ix, const float *q, uint32_t nprobe, uint32_t need,
                       const float *coarse, scratch *s, topk *h, const filt *f)
{
    const vec_quant *qu = ix->q;
    uint32_t nlist = qu->nlist, m = qu->m, ksub = qu->ksub;
    vec_metric met = qu->metric;
    /* one table for every list: -2 <q, b> (L2) or -<q, b> (inner product) */
    ix->kern->pq_lut_ip(q, qu->codebook, m, ksub, qu->dsub, s->lut);
    lut_scale(s->lut, met == VEC_L2 ? -2.0f : -1.0f, (size_t)m * ksub);
    float lbase = 0, lscale = 0;
    if (qu->nbits == 4)
        lscale = lut_quantize(s->lut, m, s->lut8, &lbase);
    const float *cd = coarse; /* a batch's, else this query's own */
    if (!cd) {
        coarse_dists(ix, q, 1, s->cd);
        cd = s->cd;
    }
    if (nprobe > nlist)
        nprobe = nlist;
    if (nprobe <= 64) {
        pick_few(s->order, cd, nlist, nprobe);
    } else {
        for (uint32_t j = 0; j < nlist; j++)
            s->order[j] = j;
        select_lists(s->order, cd, 0, nlist, nprobe);
        sort_lists(s->order, cd, 0, nprobe);
    }
    uint32_t done = 0, upto = nprobe;
    for (;;) {
        for (; done < upto; done++) {
            uint32_t li = s->order[done];
            /* L2: ||q - c||^2; inner product: -<q, c>; cosine: 1 - <q, c> */
            float bias = cd[li] + (met == VEC_COSINE ? 1.0f : 0.0f);
            scan_list(ix, qu, li, bias, s->lut, s->lut8, lbase, lscale, s, h, f);
        }
        /* fewer than needed: probe further lists, closest first */
        if (h->n >= need || done >= nlist)
            break;
        if (upto == nprobe) { /* once, lazily: the other lists, closest first */
            if (nprobe <= 64)
                rest_after(s->order, nlist, nprobe);
            sort_lists(s->order, cd, nprobe, nlist);
        }
        upto = upto * 2 > nlist ? nlist : upto * 2;
    }
}

static float exact_dist(const vec_index *ix, const float *q, uint64_t id)
{
    const vec_part *p = &ix->parts[id >> 32];
    const float *x = vec_slot_vec(p, ix->o.dim, (uint32_t)id);
    if (ix->o.metric == VEC_L2)
        return ix->kern->l2sq(q, x, ix->o.dim);
    return to_dist(ix->o.metric, ix->kern->ip(q, x, ix->o.dim));
}

/* The exact distances of the n candidates. Their vectors are scattered over memory, so the
 * reads are asked for ahead (software prefetch), about AHEAD_LINES cache lines in front of
 * the vector being measured, and the misses overlap. The re-rank is bound by memory either
 * way (at refine 16, d = 128 it reads 1,280 random lines, a third of a 4-bit query at nprobe
 * 1); running ahead by a window rather than asking for every vector first keeps the distance
 * arithmetic inside the wait instead of after it. 32 ... 2,000 lines measured within noise of
 * each other on the hard set; 128 was at the top. */
static void rerank(const vec_index *ix, const float *q, cand *c, uint32_t n)
{
    enum { AHEAD_LINES = 128 };
    uint32_t dim = ix->o.dim;
    size_t vbytes = (size_t)dim * sizeof(float);
    uint32_t lines = (uint32_t)((vbytes + 63) / 64);
    uint32_t ahead = lines >= AHEAD_LINES ? 1 : AHEAD_LINES / lines;
    for (uint32_t i = 0; i < n + ahead; i++) {
        if (i < n) {
            const char *v =
                (const char *)vec_slot_vec(&ix->parts[c[i].id >> 32], dim, (uint32_t)c[i].id);
            for (size_t b = 0; b < vbytes; b += 64)
                __builtin_prefetch(v + b);
        }
        if (i >= ahead)
            c[i - ahead].d = exact_dist(ix, q, c[i - ahead].id);
    }
}

wr_status vec_search_locked(vec_index *ix, const float *qin, const vec_query *o, uint32_t nprobe,
                            uint32_t refine, int64_t exclude, vec_hit *out, uint32_t *cnt_out)
{
    uint32_t dim = ix->o.dim, k = o->k;
    bool exact = o->exact || !ix->q;
    uint32_t kk = exact || refine <= 1 ? k : k * refine;
    if (!exact && ix->q->nbits == 4 && refine <= 1)
        kk = k;
    const vec_quant *qu = ix->q;
    size_t lutn = qu ? (size_t)qu->m * qu->ksub : 16;
    scratch *s = scratch_get(dim, qu ? qu->nlist : 1, lutn, kk);
    if (!s)
        return wr_err(WR_ERR_NOMEM, "vector search: no memory for scratch buffers");
    const float *coarse = s->coarse_pre; /* for this search only */
    s->coarse_pre = NULL;
    memcpy(s->q, qin, dim * sizeof(float));
    if (ix->o.metric == VEC_COSINE)
        vec_normalise(s->q, dim);
    filt f = {false, 0, NULL, 0, INT64_MIN, INT64_MAX, exclude};
    if (exclude >= 0)
        f.any = true;
    if (o->filter) {
        const vec_filter *vf = o->filter;
        f.any = true;
        if (vf->agent && *vf->agent) {
            f.agent = vec_agent_find(ix, vf->agent);
            if (f.agent == UINT32_MAX) { /* no vector has that agent */
                *cnt_out = 0;
                return WR_OK;
            }
        }
        if (vf->key_prefix && *vf->key_prefix) {
            f.prefix = vf->key_prefix;
            f.prefix_len = strlen(vf->key_prefix);
        }
        f.tmin = vf->time_min ? vf->time_min : INT64_MIN; /* 0: no bound on that side */
        f.tmax = vf->time_max ? vf->time_max : INT64_MAX;
    }
    topk h = {s->hc, 0, kk, INFINITY};
    if (exact)
        search_exact(ix, s->q, s, &h, &f);
    else
        search_ivf(ix, s->q, nprobe ? nprobe : 1, k, coarse, s, &h, &f);
    topk_finish(&h);
    if (!exact && refine > 1)
        rerank(ix, s->q, h.c, h.n);
    cand_top(h.c, h.n, k);
    uint32_t n = h.n < k ? h.n : k;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pi = (uint32_t)(h.c[i].id >> 32), slot = (uint32_t)h.c[i].id;
        out[i] = (vec_hit){vec_slot_key(ix, &ix->parts[pi], slot), h.c[i].d, pi, slot};
    }
    *cnt_out = n;
    return WR_OK;
}

/* ------------------------------------------------------------------ public entry points */
static wr_status query_check(const vec_index *ix, const float *q, const vec_query *o)
{
    if (o->k < 1 || o->k > VEC_MAX_K)
        return wr_err(WR_ERR_INVAL, "vector search: k=%u is out of range 1..%u", o->k, VEC_MAX_K);
    if (o->refine > 64)
        return wr_err(WR_ERR_INVAL, "vector search: refine=%u is over the limit of 64", o->refine);
    if (o->recall < 0 || o->recall > 1)
        return wr_err(WR_ERR_INVAL, "vector search: recall=%g is not in 0..1", (double)o->recall);
    for (uint32_t t = 0; t < ix->o.dim; t++)
        if (!isfinite(q[t]))
            return wr_err(WR_ERR_INVAL, "vector search: query has a non-finite value at [%u]", t);
    return WR_OK;
}

/* nprobe and refine for this query: explicit values, else the calibration, else defaults. */
static void pick_knobs(const vec_index *ix, const vec_query *o, uint32_t *nprobe, uint32_t *refine)
{
    *nprobe = o->nprobe;
    *refine = o->refine;
    if (o->recall > 0 && ix->calib.cnt && (!o->nprobe || !o->refine)) {
        const vec_calib_point *best = &ix->calib.pt[ix->calib.cnt - 1];
        for (uint32_t i = 0; i < ix->calib.cnt; i++)
            if (ix->calib.pt[i].recall >= o->recall) {
                best = &ix->calib.pt[i];
                break;
            }
        if (!o->nprobe)
            *nprobe = best->nprobe;
        if (!o->refine)
            *refine = best->refine;
    }
    if (!*nprobe)
        *nprobe = 8;
    if (*refine > 64) /* the limit query_check applies to explicit values */
        *refine = 64;
}

wr_status vec_search(vec_index *ix, const float *q, const vec_query *o, vec_hit *out,
                     uint32_t *cnt_out)
{
    *cnt_out = 0;
    WR_TRY(query_check(ix, q, o));
    pthread_rwlock_rdlock(&ix->lk);
    uint32_t nprobe, refine;
    pick_knobs(ix, o, &nprobe, &refine);
    wr_status st = vec_search_locked(ix, q, o, nprobe, refine, -1, out, cnt_out);
    pthread_rwlock_unlock(&ix->lk);
    return st;
}

typedef struct batch_job {
    vec_index *ix;
    const float *q;
    size_t lo, hi;
    const vec_query *o;
    vec_hit *out;
    uint32_t *cnt;
    wr_status st;
} batch_job;

static void *batch_run(void *arg)
{
    enum { GROUP = 8 }; /* queries whose coarse distances are computed together */
    batch_job *j = arg;
    vec_index *ix = j->ix;
    uint32_t dim = ix->o.dim, k = j->o->k;
    pthread_rwlock_rdlock(&ix->lk);
    uint32_t nprobe, refine;
    pick_knobs(ix, j->o, &nprobe, &refine);
    const vec_quant *qu = ix->q;
    float *qb = NULL, *cdb = NULL;
    scratch *s = NULL;
    if (qu && !j->o->exact && j->hi - j->lo >= 2) {
        qb = wr_malloc((size_t)GROUP * dim * sizeof(float));
        cdb = wr_malloc((size_t)GROUP * qu->nlist * sizeof(float));
        s = scratch_get(1, 1, 1, 1);
    }
    bool grouped = qb && cdb && s; /* else (no memory) each search computes its own */
    for (size_t i = j->lo; i < j->hi && j->st == WR_OK; i += GROUP) {
        uint32_t g = j->hi - i < GROUP ? (uint32_t)(j->hi - i) : GROUP;
        if (grouped) {
            memcpy(qb, j->q + i * dim, (size_t)g * dim * sizeof(float));
            if (ix->o.metric == VEC_COSINE)
                for (uint32_t t = 0; t < g; t++)
                    vec_normalise(qb + (size_t)t * dim, dim);
            coarse_dists(ix, qb, g, cdb);
        }
        for (uint32_t t = 0; t < g && j->st == WR_OK; t++) {
            if (grouped)
                s->coarse_pre = cdb + (size_t)t * qu->nlist;
            j->st = vec_search_locked(ix, j->q + (i + t) * dim, j->o, nprobe, refine, -1,
                                      j->out + (i + t) * k, &j->cnt[i + t]);
        }
    }
    pthread_rwlock_unlock(&ix->lk);
    wr_free(qb);
    wr_free(cdb);
    return NULL;
}

wr_status vec_search_batch(vec_index *ix, const float *q, size_t nq, const vec_query *o,
                           vec_hit *out, uint32_t *cnt_out)
{
    enum { MAXT = VEC_MAX_JOBS };
    for (size_t i = 0; i < nq; i++) {
        cnt_out[i] = 0;
        WR_TRY(query_check(ix, q + i * ix->o.dim, o));
    }
    uint32_t threads = o->threads < 1 ? 1 : o->threads > MAXT ? MAXT : o->threads;
    if (threads > nq)
        threads = nq ? (uint32_t)nq : 1;
    batch_job jobs[MAXT];
    size_t per = (nq + threads - 1) / threads;
    for (uint32_t t = 0; t < threads; t++) {
        size_t lo = per * t > nq ? nq : per * t, hi = lo + per > nq ? nq : lo + per;
        jobs[t] = (batch_job){ix, q, lo, hi, o, out, cnt_out, WR_OK};
    }
    vec_run_jobs(batch_run, jobs, sizeof jobs[0], threads);
    wr_status st = WR_OK;
    for (uint32_t t = 0; t < threads && st == WR_OK; t++)
        st = jobs[t].st;
    return st;
}

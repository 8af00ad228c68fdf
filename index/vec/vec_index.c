/* vec_index.c -- the index object: options, slots, the key map, upsert and delete, stats.
 *
 * Every vector gets a new slot in its partition (an upsert of an existing key marks the old
 * slot dead and appends a new one), so a slot's vector never changes once written. That is
 * what lets a background training read slots below the count it saw without holding the
 * lock. Keys live in an append-only arena, so a search hit can hand out a key pointer that
 * stays valid until the index is closed. */
#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vec_int.h"

#define ARENA_BLOCK   (1u << 20)
#define MAX_KEY_BYTES 4096u
#define COMPACT_MIN   64u /* a list is compacted once a quarter of it, and this many, are dead */

/* ------------------------------------------------------------------ options */
void vec_options_init(vec_options *o)
{
    memset(o, 0, sizeof *o);
    o->metric = VEC_L2;
    o->nbits = 8;
    o->partitions = 1;
    o->train_threshold = 10000;
    o->train_iters = 10;
    o->train_per_list = 256;
    o->train_threads = 2;
    o->drift_ratio = 1.5;
    o->background = true;
    o->seed = 1;
}

void vec_query_init(vec_query *q)
{
    memset(q, 0, sizeof *q);
    q->k = 10;
    q->threads = 1;
}

const char *vec_metric_name(vec_metric m)
{
    switch (m) {
    case VEC_L2:
        return "l2";
    case VEC_IP:
        return "ip";
    case VEC_COSINE:
        return "cosine";
    }
    return "?";
}

static wr_status opts_check(const vec_options *o)
{
    if (o->dim < 1 || o->dim > VEC_MAX_DIM)
        return wr_err(WR_ERR_INVAL, "vector index: dim=%u is out of range 1..%u", o->dim,
                      VEC_MAX_DIM);
    if (o->metric != VEC_L2 && o->metric != VEC_IP && o->metric != VEC_COSINE)
        return wr_err(WR_ERR_INVAL, "vector index: unknown metric %d", (int)o->metric);
    if (o->nbits != 4 && o->nbits != 8)
        return wr_err(WR_ERR_INVAL, "vector index: nbits=%u; it must be 4 or 8", o->nbits);
    uint32_t m = o->m ? o->m : (o->nbits == 8 ? o->dim / 4 : o->dim / 2);
    if (m == 0)
        m = 1;
    if (o->dim % m != 0 || m > VEC_MAX_M || (o->nbits == 4 && (m % 2 != 0 || m > VEC_MAX_M4)))
        return wr_err(WR_ERR_INVAL,
                      "vector index: m=%u does not fit dim=%u with nbits=%u (m must divide the "
                      "dimension, be at most %u, and for 4 bits be even and at most 256)",
                      m, o->dim, o->nbits, VEC_MAX_M);
    if (o->partitions < 1 || o->partitions > 4096)
        return wr_err(WR_ERR_INVAL, "vector index: partitions=%u is out of range 1..4096",
                      o->partitions);
    if (o->nlist > (1u << 20))
        return wr_err(WR_ERR_INVAL, "vector index: nlist=%u is over the limit of %u", o->nlist,
                      1u << 20);
    if (o->drift_ratio < 0 || o->drift_ratio != o->drift_ratio)
        return wr_err(WR_ERR_INVAL, "vector index: drift_ratio must be >= 0");
    return WR_OK;
}

/* ------------------------------------------------------------------ arena */
const char *vec_arena_at(const vec_arena *a, uint64_t off)
{
    return a->blk[off >> 32] + (off & 0xffffffffu);
}

wr_status vec_arena_add(vec_arena *a, const char *s, size_t len, uint64_t *off_out)
{
    if (a->nblk == 0 || a->used + len + 1 > ARENA_BLOCK) {
        if (a->nblk == a->capblk) {
            uint32_t cap = a->capblk ? a->capblk * 2 : 16;
            char **blk = wr_realloc(a->blk, cap * sizeof(char *));
            if (!blk)
                return wr_err(WR_ERR_NOMEM, "vector index: no memory for keys");
            a->blk = blk;
            a->capblk = cap;
        }
        char *b = wr_malloc(len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK);
        if (!b)
            return wr_err(WR_ERR_NOMEM, "vector index: no memory for keys");
        a->blk[a->nblk++] = b;
        a->used = 0;
    }
    char *dst = a->blk[a->nblk - 1] + a->used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    *off_out = ((uint64_t)(a->nblk - 1) << 32) | a->used;
    a->used += len + 1;
    a->total += len + 1;
    return WR_OK;
}

void vec_arena_fini(vec_arena *a)
{
    for (uint32_t i = 0; i < a->nblk; i++)
        wr_free(a->blk[i]);
    wr_free(a->blk);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ key map */
static uint64_t map_hash(const char *k)
{
    uint64_t h = wr_xxh3(k, strlen(k));
    return h < 2 ? h + 2 : h;
}

wr_status vec_map_init(vec_map *m, size_t cap)
{
    memset(m, 0, sizeof *m);
    size_t c = 64;
    while (c < cap * 2)
        c *= 2;
    m->h = wr_calloc(c, sizeof(uint64_t));
    m->k = wr_calloc(c, sizeof(char *));
    m->v = wr_calloc(c, sizeof(uint64_t));
    if (!m->h || !m->k || !m->v) {
        vec_map_fini(m);
        return wr_err(WR_ERR_NOMEM, "vector index: no memory for the key map");
    }
    m->cap = c;
    return WR_OK;
}

void vec_map_fini(vec_map *m)
{
    wr_free(m->h);
    wr_free(m->k);
    wr_free(m->v);
    memset(m, 0, sizeof *m);
}

static size_t map_find(const vec_map *m, const char *k, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (m->h[i] == 0)
            return SIZE_MAX;
        if (m->h[i] == h && strcmp(m->k[i], k) == 0)
            return i;
    }
}

bool vec_map_get(const vec_map *m, const char *k, uint64_t *v_out)
{
    size_t i = map_find(m, k, map_hash(k));
    if (i == SIZE_MAX)
        return false;
    *v_out = m->v[i];
    return true;
}

static wr_status map_grow(vec_map *m)
{
    vec_map n;
    WR_TRY(vec_map_init(&n, m->cnt * 2 + 64));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->h[i] < 2)
            continue;
        size_t j = m->h[i] & (n.cap - 1);
        while (n.h[j] != 0)
            j = (j + 1) & (n.cap - 1);
        n.h[j] = m->h[i];
        n.k[j] = m->k[i];
        n.v[j] = m->v[i];
    }
    n.cnt = n.used = m->cnt;
    vec_map_fini(m);
    *m = n;
    return WR_OK;
}

wr_status vec_map_put(vec_map *m, const char *k, uint64_t v)
{
    uint64_t h = map_hash(k);
    size_t i = map_find(m, k, h);
    if (i != SIZE_MAX) {
        m->k[i] = k;
        m->v[i] = v;
        return WR_OK;
    }
    if ((m->used + 1) * 10 > m->cap * 7)
        WR_TRY(map_grow(m));
    size_t mask = m->cap - 1;
    for (i = h & mask; m->h[i] >= 2; i = (i + 1) & mask)
        ;
    if (m->h[i] == 0)
        m->used++;
    m->h[i] = h;
    m->k[i] = k;
    m->v[i] = v;
    m->cnt++;
    return WR_OK;
}

bool vec_map_del(vec_map *m, const char *k)
{
    size_t i = map_find(m, k, map_hash(k));
    if (i == SIZE_MAX)
        return false;
    m->h[i] = 1;
    m->k[i] = NULL;
    m->cnt--;
    return true;
}

/* ------------------------------------------------------------------ agents */
uint32_t vec_agent_find(const vec_index *ix, const char *name)
{
    uint64_t id;
    if (!name || !*name)
        return 0;
    return vec_map_get(&ix->amap, name, &id) ? (uint32_t)id : UINT32_MAX;
}

wr_status vec_agent_id(vec_index *ix, const char *name, uint32_t *id_out)
{
    uint64_t id;
    if (!name || !*name) {
        *id_out = 0;
        return WR_OK;
    }
    if (vec_map_get(&ix->amap, name, &id)) {
        *id_out = (uint32_t)id;
        return WR_OK;
    }
    if (ix->nagents + 1 >= ix->capagents) {
        uint32_t cap = ix->capagents ? ix->capagents * 2 : 16;
        const char **names = wr_realloc((void *)ix->agent_names, cap * sizeof(char *));
        if (!names)
            return wr_err(WR_ERR_NOMEM, "vector index: no memory for agent names");
        ix->agent_names = names;
        ix->capagents = cap;
        if (ix->nagents == 0)
            ix->agent_names[ix->nagents++] = ""; /* id 0: none */
    }
    uint64_t off;
    WR_TRY(vec_arena_add(&ix->agents, name, strlen(name), &off));
    const char *s = vec_arena_at(&ix->agents, off);
    WR_TRY(vec_map_put(&ix->amap, s, ix->nagents));
    ix->agent_names[ix->nagents] = s;
    *id_out = ix->nagents++;
    return WR_OK;
}

/* ------------------------------------------------------------------ slots */
static wr_status part_grow(vec_part *p)
{
    uint32_t cap = p->cap ? p->cap * 2 : 1024;
#define GROW(f)                                                                                    \
    do {                                                                                           \
        void *n_ = wr_realloc(p->f, (size_t)cap * sizeof(*p->f));                                  \
        if (!n_)                                                                                   \
            return wr_err(WR_ERR_NOMEM, "vector index: no memory for %u slots", cap);              \
        p->f = n_;                                                                                 \
    } while (0)
    GROW(key_off);
    GROW(agent);
    GROW(time);
    GROW(list);
    GROW(pos);
    GROW(dead);
#undef GROW
    p->cap = cap;
    return WR_OK;
}

/* Vector chunks are mapped directly and asked to be backed by huge pages: re-ranking reads a
 * few vectors at random from the whole store, and with 4 KiB pages each read is a TLB miss
 * as well as a cache miss. */
static size_t chunk_bytes(uint32_t dim)
{
    size_t b = (size_t)VEC_CHUNK * dim * sizeof(float), huge = (size_t)2 << 20;
    return (b + huge - 1) / huge * huge;
}

static float *chunk_alloc(uint32_t dim)
{
    size_t len = chunk_bytes(dim);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* a hint: fine if the kernel says no */
#endif
    return p;
}

static void chunk_free(float *c, uint32_t dim)
{
    if (c)
        munmap(c, chunk_bytes(dim));
}

wr_status vec_part_append(vec_index *ix, vec_part *p, const char *key, const float *v,
                          uint32_t agent, int64_t time, uint32_t *slot_out)
{
    uint32_t slot = p->nslots, dim = ix->o.dim;
    if (slot >= VEC_MAX_CHUNKS * VEC_CHUNK - 1)
        return wr_err(WR_ERR_FULL, "vector index: a partition is full (%u slots)", slot);
    if (slot == p->cap)
        WR_TRY(part_grow(p));
    uint32_t c = slot >> VEC_CHUNK_SHIFT;
    if (c == p->nchunks) {
        float *chunk = chunk_alloc(dim);
        if (!chunk)
            return wr_err(WR_ERR_NOMEM, "vector index: no memory for %u more vectors", VEC_CHUNK);
        p->chunks[p->nchunks++] = chunk;
    }
    uint64_t off;
    WR_TRY(vec_arena_add(&ix->keys, key, strlen(key), &off));
    memcpy(vec_slot_vec(p, dim, slot), v, dim * sizeof(float));
    p->key_off[slot] = off;
    p->agent[slot] = agent;
    p->time[slot] = time;
    p->list[slot] = VEC_NO_LIST;
    p->pos[slot] = 0;
    p->dead[slot] = 0;
    p->nslots = slot + 1;
    p->live++;
    *slot_out = slot;
    return WR_OK;
}

/* Marks a slot dead; compacts its list when a quarter of it is dead. lk held exclusively. */
static void slot_kill(vec_index *ix, vec_part *p, uint32_t slot)
{
    p->dead[slot] = 1;
    p->live--;
    ix->live--;
    ix->deleted++;
    uint32_t li = p->list[slot];
    if (!p->lists || li == VEC_NO_LIST)
        return;
    vec_list *l = &p->lists->l[li];
    l->dead++;
    if (l->dead >= COMPACT_MIN && l->dead * 4 >= l->n) {
        /* on failure (no memory) the list keeps its dead entries; searches skip them */
        WR_IGNORE(vec_list_compact(p->lists->q, l, p->dead, p->pos));
    }
}

void vec_normalise(float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)v[i] * (double)v[i];
    if (s <= 0)
        return;
    float inv = (float)(1.0 / sqrt(s));
    for (uint32_t i = 0; i < dim; i++)
        v[i] *= inv;
}

/* Copies n input vectors, checking they are finite (and not zero for cosine) and normalising
 * them for cosine. */
static wr_status prep_vectors(const vec_index *ix, const float *v, size_t n, float *out)
{
    uint32_t dim = ix->o.dim;
    for (size_t i = 0; i < n; i++) {
        const float *vi = v + i * dim;
        double s = 0;
        for (uint32_t t = 0; t < dim; t++) {
            if (!isfinite(vi[t]))
                return wr_err(WR_ERR_INVAL,
                              "vector index: vector %zu has a non-finite value at [%u]", i, t);
            s += (double)vi[t] * (double)vi[t];
        }
        if (ix->o.metric == VEC_COSINE && s == 0)
            return wr_err(WR_ERR_INVAL,
                          "vector index: vector %zu is all zeros, which has no cosine direction",
                          i);
    }
    memcpy(out, v, n * dim * sizeof(float));
    if (ix->o.metric == VEC_COSINE)
        for (size_t i = 0; i < n; i++)
            vec_normalise(out + i * dim, dim);
    return WR_OK;
}

wr_status vec_part_encode(vec_index *ix, vec_part *p, vec_lists *ls, uint32_t from, uint32_t to,
                          double *err_sum_out)
{
    const vec_quant *q = ls->q;
    uint32_t dim = q->dim, n = to - from;
    if (n == 0)
        return WR_OK;
    enum { B = 4096 };
    uint32_t nb = n < B ? n : B;
    float *x = wr_malloc((size_t)nb * dim * sizeof(float) + (size_t)nb * sizeof(float));
    uint8_t *codes = wr_malloc((size_t)nb * q->m + (size_t)nb * sizeof(uint32_t));
    wr_status st = WR_OK;
    if (!x || !codes) {
        st = wr_err(WR_ERR_NOMEM, "vector index: no memory to encode");
        goto out;
    }
    float *err = x + (size_t)nb * dim;
    uint32_t *list = (uint32_t *)(codes + (size_t)nb * q->m);
    double esum = 0;
    for (uint32_t b = from; b < to; b += nb) {
        uint32_t cnt = to - b < nb ? to - b : nb;
        for (uint32_t i = 0; i < cnt; i++)
            memcpy(x + (size_t)i * dim, vec_slot_vec(p, dim, b + i), dim * sizeof(float));
        if ((st = vec_quant_encode(ix->kern, q, x, cnt, ix->o.train_threads, list, codes, err)) !=
            WR_OK)
            goto out;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t slot = b + i, pos;
            esum += (double)err[i];
            if ((st = vec_list_add(ix->kern, q, &ls->l[list[i]], list[i], slot,
                                   codes + (size_t)i * q->m, &pos)) != WR_OK)
                goto out;
            if (p->lists == ls) { /* encoding into the lists in use: keep the slot's place */
                p->list[slot] = list[i];
                p->pos[slot] = pos;
                if (p->dead[slot])
                    ls->l[list[i]].dead++;
            }
        }
    }
    if (err_sum_out)
        *err_sum_out = esum;
out:
    wr_free(x);
    wr_free(codes);
    return st;
}

/* ------------------------------------------------------------------ open / close */
static wr_status index_alloc(const vec_options *o, const char *dir, vec_index **out)
{
    vec_index *ix = wr_calloc(1, sizeof *ix);
    if (!ix)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory");
    ix->o = *o;
    ix->kern = vk_get();
    ix->next_version = 1;
    pthread_rwlock_init(&ix->lk, NULL);
    pthread_mutex_init(&ix->wmu, NULL);
    *out = ix; /* from here on vec_close frees whatever was set up */
    if (dir && !(ix->dir = wr_strdup(dir)))
        return wr_err(WR_ERR_NOMEM, "vector index: no memory");
    ix->parts = wr_calloc(o->partitions, sizeof(vec_part));
    if (!ix->parts)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory");
    for (uint32_t i = 0; i < o->partitions; i++)
        if (!(ix->parts[i].chunks = wr_calloc(VEC_MAX_CHUNKS, sizeof(float *))))
            return wr_err(WR_ERR_NOMEM, "vector index: no memory");
    WR_TRY(vec_map_init(&ix->kmap, 1024));
    WR_TRY(vec_map_init(&ix->amap, 16));
    return WR_OK;
}

static bool dir_has_index(const char *dir)
{
    char p[4096];
    return wr_path(p, sizeof p, "%s/MANIFEST", dir) == WR_OK && access(p, F_OK) == 0;
}

wr_status vec_open(const char *dir, const vec_options *opts, vec_index **out)
{
    *out = NULL;
    vec_index *ix = NULL;
    wr_status st;
    if (dir && dir_has_index(dir)) {
        vec_options o;
        vec_options_init(&o); /* the loader replaces these with the MANIFEST's, but keeps */
        if (opts) {           /* the caller's run-time settings (threads, background) */
            o.train_threads = opts->train_threads ? opts->train_threads : o.train_threads;
            o.background = opts->background;
        }
        if ((st = index_alloc(&o, dir, &ix)) != WR_OK || (st = vec_file_load(ix)) != WR_OK)
            goto fail;
        if (opts && (opts->dim != ix->o.dim || opts->metric != ix->o.metric)) {
            st = wr_err(WR_ERR_INVAL,
                        "vector index %s: it holds dim=%u metric=%s; opened with dim=%u "
                        "metric=%s",
                        dir, ix->o.dim, vec_metric_name(ix->o.metric), opts->dim,
                        vec_metric_name(opts->metric));
            goto fail;
        }
        *out = ix;
        return WR_OK;
    }
    if (!opts)
        return wr_err(WR_ERR_NOTFOUND,
                      "vector index %s: no MANIFEST there; create it with options (e.g. `weir "
                      "vec build`)",
                      dir ? dir : "(memory)");
    if ((st = opts_check(opts)) != WR_OK)
        return st;
    if (dir && (st = wr_mkdir_p(dir)) != WR_OK)
        return st;
    if ((st = index_alloc(opts, dir, &ix)) != WR_OK)
        goto fail;
    *out = ix;
    return WR_OK;
fail:
    vec_close(ix);
    return st;
}

static void part_fini(vec_part *p, uint32_t ix_dim)
{
    for (uint32_t c = 0; c < p->nchunks; c++)
        chunk_free(p->chunks[c], ix_dim);
    wr_free(p->chunks);
    wr_free(p->key_off);
    wr_free(p->agent);
    wr_free(p->time);
    wr_free(p->list);
    wr_free(p->pos);
    wr_free(p->dead);
    vec_lists_destroy(p->lists);
}

void vec_close(vec_index *ix)
{
    if (!ix)
        return;
    vec_wait_idle(ix);
    if (ix->parts)
        for (uint32_t i = 0; i < ix->o.partitions; i++)
            part_fini(&ix->parts[i], ix->o.dim);
    wr_free(ix->parts);
    vec_quant_unref(ix->q);
    vec_arena_fini(&ix->keys);
    vec_arena_fini(&ix->agents);
    vec_map_fini(&ix->kmap);
    vec_map_fini(&ix->amap);
    wr_free((void *)ix->agent_names);
    wr_free(ix->dir);
    pthread_rwlock_destroy(&ix->lk);
    pthread_mutex_destroy(&ix->wmu);
    wr_free(ix);
}

/* ------------------------------------------------------------------ writes */
static wr_status check_key(const char *key)
{
    if (!key || !*key)
        return wr_err(WR_ERR_INVAL, "vector index: empty key");
    size_t len = strlen(key);
    if (len > MAX_KEY_BYTES)
        return wr_err(WR_ERR_TOOBIG, "vector index: key of %zu bytes is over the limit of %u", len,
                      MAX_KEY_BYTES);
    return WR_OK;
}

/* Adds prepared vectors; lk held exclusively. codes/lists: pre-encoded with quant q (or NULL). */
/* Adds prepared vectors; lk held exclusively. codes/lists: pre-encoded with quant q (or
 * NULL). On failure (out of memory) *done_out vectors were applied; a vector whose list entry
 * could not be added stays live, found by exact search, until the next training encodes it. */
static wr_status upsert_locked(vec_index *ix, uint32_t part, size_t n, const char *const *keys,
                               const float *x, const vec_attr *attrs, const vec_quant *q,
                               const uint32_t *lists, const uint8_t *codes, const float *err,
                               size_t *done_out)
{
    vec_part *p = &ix->parts[part];
    uint32_t dim = ix->o.dim;
    for (size_t i = 0; i < n; i++) {
        uint32_t agent = 0, slot;
        int64_t time = 0;
        *done_out = i;
        if (attrs) {
            WR_TRY(vec_agent_id(ix, attrs[i].agent, &agent));
            time = attrs[i].time;
        }
        WR_TRY(vec_part_append(ix, p, keys[i], x + i * dim, agent, time, &slot));
        uint64_t old;
        bool replaced = vec_map_get(&ix->kmap, keys[i], &old);
        wr_status st =
            vec_map_put(&ix->kmap, vec_slot_key(ix, p, slot), (uint64_t)part << 32 | slot);
        if (st != WR_OK) { /* the new slot is unreachable: retire it, keep the old one */
            p->dead[slot] = 1;
            p->live--;
            ix->deleted++;
            return st;
        }
        if (replaced)
            slot_kill(ix, &ix->parts[old >> 32], (uint32_t)old);
        ix->live++;
        *done_out = i + 1;
        if (p->lists && q == p->lists->q) {
            uint32_t pos;
            WR_TRY(vec_list_add(ix->kern, q, &p->lists->l[lists[i]], lists[i], slot,
                                codes + i * q->m, &pos));
            p->list[slot] = lists[i];
            p->pos[slot] = pos;
            ix->added_since_train++;
            ix->added_err_sum += (double)err[i];
        } else if (p->lists) {
            double e = 0;
            WR_TRY(vec_part_encode(ix, p, p->lists, slot, slot + 1, &e));
            ix->added_since_train++;
            ix->added_err_sum += e;
        }
    }
    *done_out = n;
    return WR_OK;
}

wr_status vec_upsert_batch(vec_index *ix, uint32_t part, size_t n, const char *const *keys,
                           const float *v, const vec_attr *attrs)
{
    if (part >= ix->o.partitions)
        return wr_err(WR_ERR_INVAL, "vector index: partition %u does not exist (%u partitions)",
                      part, ix->o.partitions);
    for (size_t i = 0; i < n; i++)
        WR_TRY(check_key(keys[i]));
    if (n == 0)
        return WR_OK;
    uint32_t dim = ix->o.dim;
    float *x = wr_malloc(n * dim * sizeof(float) + n * sizeof(float));
    if (!x)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory for %zu vectors", n);
    float *err = x + n * dim;
    uint32_t *lists = NULL;
    uint8_t *codes = NULL;
    vec_quant *q = NULL;
    wr_status st = prep_vectors(ix, v, n, x);
    if (st != WR_OK)
        goto out;
    /* encode outside the lock with the quantizers current now */
    pthread_mutex_lock(&ix->wmu);
    pthread_rwlock_rdlock(&ix->lk);
    if ((q = ix->q))
        vec_quant_ref(q);
    pthread_rwlock_unlock(&ix->lk);
    if (q) {
        lists = wr_malloc(n * sizeof(uint32_t));
        codes = wr_malloc(n * q->m);
        if (!lists || !codes)
            st = wr_err(WR_ERR_NOMEM, "vector index: no memory to encode %zu vectors", n);
        else
            st = vec_quant_encode(ix->kern, q, x, n, n >= 4096 ? ix->o.train_threads : 1, lists,
                                  codes, err);
    }
    if (st == WR_OK) {
        pthread_rwlock_wrlock(&ix->lk);
        size_t done = 0;
        st = upsert_locked(ix, part, n, keys, x, attrs, q, lists, codes, err, &done);
        if (st != WR_OK && n > 1) /* wr_err formats before it overwrites wr_errmsg() */
            st = wr_err(st, "%s (the first %zu of the batch's %zu vectors were applied)",
                        wr_errmsg(), done, n);
        vec_train_maybe(ix);
        bool inline_due = !ix->o.background && vec_train_due(ix);
        pthread_rwlock_unlock(&ix->lk);
        if (inline_due)
            vec_train_inline(ix);
    }
    pthread_mutex_unlock(&ix->wmu);
out:
    vec_quant_unref(q);
    wr_free(lists);
    wr_free(codes);
    wr_free(x);
    return st;
}

wr_status vec_upsert(vec_index *ix, uint32_t part, const char *key, const float *v,
                     const vec_attr *attr)
{
    return vec_upsert_batch(ix, part, 1, &key, v, attr);
}

wr_status vec_delete(vec_index *ix, const char *key)
{
    WR_TRY(check_key(key));
    pthread_mutex_lock(&ix->wmu);
    pthread_rwlock_wrlock(&ix->lk);
    uint64_t at;
    wr_status st = WR_OK;
    if (!vec_map_get(&ix->kmap, key, &at)) {
        st = wr_err(WR_ERR_NOTFOUND, "vector index: no key \"%s\"", key);
    } else {
        vec_map_del(&ix->kmap, key);
        slot_kill(ix, &ix->parts[at >> 32], (uint32_t)at);
    }
    pthread_rwlock_unlock(&ix->lk);
    pthread_mutex_unlock(&ix->wmu);
    return st;
}

/* ------------------------------------------------------------------ stats */
void vec_get_stats(vec_index *ix, vec_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_rwlock_rdlock(&ix->lk);
    s->metric = ix->o.metric;
    s->dim = ix->o.dim;
    s->partitions = ix->o.partitions;
    s->nbits = ix->o.nbits;
    s->nlist = ix->o.nlist;
    s->m = ix->o.m;
    s->live = ix->live;
    s->deleted = ix->deleted;
    s->retrains = ix->retrains;
    s->last_train_s = ix->last_train_s;
    s->last_encode_s = ix->last_encode_s;
    s->training = atomic_load(&ix->training);
    s->added_since_train = ix->added_since_train;
    uint64_t slots = 0;
    for (uint32_t i = 0; i < ix->o.partitions; i++)
        slots += ix->parts[i].nslots;
    s->slots = slots;
    s->vector_bytes = slots * ix->o.dim * sizeof(float);
    const vec_quant *q = ix->q;
    if (q) {
        s->trained = true;
        s->nlist = q->nlist;
        s->m = q->m;
        s->nbits = q->nbits;
        s->quant_version = q->version;
        s->trained_on = q->trained_on;
        s->trained_err = q->trained_err;
        s->trained_imbalance = q->trained_imbalance;
        if (ix->added_since_train)
            s->recent_err = ix->added_err_sum / (double)ix->added_since_train;
        if (q->trained_err > 0 && ix->added_since_train)
            s->drift = s->recent_err / q->trained_err;
        double sum = 0, sq = 0;
        for (uint32_t i = 0; i < ix->o.partitions; i++) {
            const vec_lists *ls = ix->parts[i].lists;
            if (!ls)
                continue;
            for (uint32_t j = 0; j < q->nlist; j++) {
                double live = (double)(ls->l[j].n - ls->l[j].dead);
                sum += live;
                sq += live * live;
                s->code_bytes += q->nbits == 8 ? (uint64_t)ls->l[j].n * q->m
                                               : (uint64_t)(ls->l[j].cap / VK_BLOCK) * q->m * 16;
            }
        }
        s->imbalance = sum > 0 ? sq * q->nlist / (sum * sum) : 0;
    }
    s->calib_cnt = ix->calib.cnt;
    s->calib_k = ix->calib.k;
    s->calib_version = ix->calib.version;
    memcpy(s->calib, ix->calib.pt, sizeof s->calib);
    pthread_rwlock_unlock(&ix->lk);
}

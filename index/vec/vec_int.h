/* vec_int.h -- the vector index's internal structures, shared by its files.
 *
 * vec_quant  trained quantizers: coarse centroids and PQ codebooks. Immutable once built and
 *            reference counted: a retraining builds a new one beside the old.
 * vec_lists  one partition's inverted lists for one vec_quant. Replaced as a whole (pointer
 *            swap under the write lock) by a retraining.
 * vec_part   one partition: the slot store (exact vectors in fixed chunks that never move, so
 *            background training reads them without the lock; key, attributes, tombstone and
 *            list of every slot) and its current vec_lists.
 * vec_index  partitions, the key map (key -> part/slot), the agent dictionary, the drift
 *            counters, the calibration, and the rwlock: searches take it shared, writes and
 *            the final step of a retraining take it exclusive. */
#ifndef WEIR_VEC_INT_H
#define WEIR_VEC_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "vec.h"
#include "vec_kern.h"

#define VEC_CHUNK_SHIFT 14 /* 16,384 vectors per chunk */
#define VEC_CHUNK       (1u << VEC_CHUNK_SHIFT)
#define VEC_MAX_CHUNKS  65536u /* 2^30 slots per partition */
#define VEC_NO_LIST     UINT32_MAX
#define VEC_MAX_K       4096u
#define VEC_MAX_DIM     65536u
#define VEC_MAX_M       4096u /* sub-quantizers */
#define VEC_MAX_M4      256u  /* with 4-bit codes: 16-bit sums of m bytes cannot overflow */

typedef struct vec_quant {
    atomic_uint refs;
    uint64_t version; /* 1, 2, ... per training of this index */
    vec_metric metric;
    uint32_t dim, nlist, m, nbits, ksub, dsub;
    float *centroids; /* owned: nlist * dim */
    float *cnorm;     /* owned: nlist, ||c||^2 */
    float *cbnorm;    /* owned: m * ksub, ||b||^2 of every codebook entry (vec_quant_finish) */
    float *cpk;       /* owned: the centroids packed for dots_packed (vec_quant_finish) */
    float *codebook;  /* owned: m * ksub * dsub */
    uint64_t trained_on;
    double trained_err;       /* mean coarse error on the training sample */
    double trained_imbalance; /* of the training sample's assignment */
} vec_quant;

/* One inverted list. 8-bit: codes[i * m + j]. 4-bit: blocks of VK_BLOCK vectors in the
 * fast-scan layout (vec_kern.h), m * 16 bytes each; capacity is a multiple of VK_BLOCK. */
typedef struct vec_list {
    uint32_t n, cap, dead;
    uint32_t *slots; /* owned */
    uint8_t *codes;  /* owned */
    float *term;     /* owned: per entry, L2 only (0 otherwise): ||r||^2 + 2 <c, r> of the
                        encoded residual r and the list's centroid c (vec_quant_term) */
    float term_lo;   /* with n > 0: at most every term[i] (the least added since the list was
                        last empty; compaction keeps it, a valid bound still) */
} vec_list;

typedef struct vec_lists {
    vec_quant *q; /* one reference held */
    vec_list *l;  /* owned: q->nlist lists */
} vec_lists;

typedef struct vec_part {
    uint32_t nslots; /* slots used */
    uint32_t cap;    /* metadata capacity */
    float **chunks;  /* owned: VEC_MAX_CHUNKS pointers, chunks of VEC_CHUNK * dim floats */
    uint32_t nchunks;
    uint64_t *key_off; /* owned: per slot, offset of its NUL-terminated key in keys */
    uint32_t *agent;   /* owned: per slot, agent id (0 = none) */
    int64_t *time;     /* owned */
    uint32_t *list;    /* owned: per slot, list holding it (VEC_NO_LIST before training) */
    uint32_t *pos;     /* owned: per slot, position in that list */
    uint8_t *dead;     /* owned: per slot, 1 = deleted or replaced */
    uint32_t live;
    vec_lists *lists; /* owned; NULL before training */
} vec_part;

/* Append-only string arena with stable addresses (chunks never move). */
typedef struct vec_arena {
    char **blk;
    uint32_t nblk, capblk;
    size_t used; /* in the last block */
    uint64_t total;
} vec_arena;

/* Open-addressing hash map: key (string in an arena) -> 64-bit value. */
typedef struct vec_map {
    uint64_t *h; /* hash, 0 = empty, 1 = deleted */
    const char **k;
    uint64_t *v;
    size_t cap, cnt, used;
} vec_map;

typedef struct vec_calib {
    uint32_t cnt, k, sample;
    uint64_t version;
    vec_calib_point pt[8];
} vec_calib;

struct vec_index {
    vec_options o;
    char *dir; /* owned; NULL in memory */
    const vk_ops *kern;
    pthread_rwlock_t lk;
    pthread_mutex_t wmu; /* serialises writers and training starts */
    vec_part *parts;     /* owned: o.partitions */
    vec_quant *q;        /* current (one reference); NULL before training */
    vec_arena keys;      /* key strings of every slot */
    vec_map kmap;        /* key -> part << 32 | slot, live keys only */
    vec_map amap;        /* agent name -> id */
    vec_arena agents;
    const char **agent_names; /* owned: id -> name (id 0 = none) */
    uint32_t nagents, capagents;
    uint64_t live, deleted;
    /* drift, guarded by lk (exclusive) */
    uint64_t added_since_train;
    double added_err_sum;
    uint64_t retrains;
    double last_train_s, last_encode_s;
    uint64_t next_version;
    /* background training */
    pthread_t trainer;
    bool trainer_running; /* a thread was started and not yet joined */
    atomic_bool training;
    wr_status train_status;  /* of the last background training */
    uint64_t train_retry_at; /* after a failed training: not before this many live vectors */
    vec_calib calib;
    bool calib_wanted; /* redo the calibration after each training */
    float calib_targets[8];
    uint32_t calib_target_cnt;
    uint64_t file_gen; /* generation of the files on disk */
};

/* ---- vec_index.c */
static inline float *vec_slot_vec(const vec_part *p, uint32_t dim, uint32_t slot)
{
    return p->chunks[slot >> VEC_CHUNK_SHIFT] + (size_t)(slot & (VEC_CHUNK - 1)) * dim;
}
static inline const char *vec_slot_key(const vec_index *ix, const vec_part *p, uint32_t slot);
const char *vec_arena_at(const vec_arena *a, uint64_t off);
wr_status vec_arena_add(vec_arena *a, const char *s, size_t len, uint64_t *off_out);
void vec_arena_fini(vec_arena *a);
wr_status vec_map_init(vec_map *m, size_t cap);
void vec_map_fini(vec_map *m);
bool vec_map_get(const vec_map *m, const char *k, uint64_t *v_out);
wr_status vec_map_put(vec_map *m, const char *k, uint64_t v); /* k must outlive the map */
bool vec_map_del(vec_map *m, const char *k);
uint32_t
vec_agent_find(const vec_index *ix,
               const char *name); /* 0 for NULL or "", UINT32_MAX for a name no vector has */
wr_status vec_agent_id(vec_index *ix, const char *name, uint32_t *id_out);
/* Appends one slot (vector already normalised); used by upsert and by the loader. */
wr_status vec_part_append(vec_index *ix, vec_part *p, const char *key, const float *v,
                          uint32_t agent, int64_t time, uint32_t *slot_out);

static inline const char *vec_slot_key(const vec_index *ix, const vec_part *p, uint32_t slot)
{
    return vec_arena_at(&ix->keys, p->key_off[slot]);
}

/* splitmix64: the index's seeded generator (sampling, initialisation). */
static inline uint64_t vec_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__extension__ typedef unsigned __int128 vec_u128;
static inline uint64_t vec_rng_below(uint64_t *s, uint64_t n) /* n > 0 */
{
    return (uint64_t)(((vec_u128)vec_rng(s) * n) >> 64);
}
static inline float vec_rng_unit(uint64_t *s) /* [0, 1) */
{
    return (float)(vec_rng(s) >> 40) * (1.0f / 16777216.0f);
}

/* ---- vec_kmeans.c */
typedef struct vec_km_opts {
    uint32_t iters;
    uint32_t threads;
    uint64_t seed;
    bool plusplus;       /* k-means++ initialisation (else k distinct random points) */
    bool lloyd;          /* every point against every centroid in every iteration (no bounds) */
    bool warm;           /* the first iterations on a strided quarter of the points (see
                          * vec_kmeans.c; ignored when there are too few points) */
    uint64_t *dists_out; /* if set: point-centroid distances computed, all iterations */
    uint32_t *idx_out;   /* if set: each point's nearest final centroid (n) ... */
    float *dist_out;     /* ... and its squared distance to it (n; set with idx_out) */
} vec_km_opts;
/* Clusters n points of d dims into k centroids (out: k * d). Needs n >= k. Returns the mean
 * squared distance of the points to their centroid in *err_out (may be NULL). With
 * o->idx_out, also the final assignment (cheaper than assigning again: see the moved-centroid
 * pruning in vec_kmeans.c). */
wr_status vec_kmeans(const vk_ops *kern, const float *x, size_t n, size_t d, size_t k,
                     const vec_km_opts *o, float *centroids_out, double *err_out);
/* Runs @fn on @cnt jobs (job i at (char *)jobs + i * size, cnt <= VEC_MAX_JOBS): job 0 on
 * the calling thread, the others on threads of their own; a job whose thread cannot be
 * started runs on the calling thread afterwards. Returns when all are done. */
#define VEC_MAX_JOBS 64
void vec_run_jobs(void *(*fn)(void *), void *jobs, size_t size, uint32_t cnt);
/* Nearest centroid of each of n points, in parallel over @threads threads. */
void vec_assign_mt(const vk_ops *kern, const float *x, size_t n, size_t d, const float *c,
                   const float *cnorm, size_t k, uint32_t threads, uint32_t *idx_out,
                   float *dist_out);
void vec_norms(const vk_ops *kern, const float *c, size_t k, size_t d, float *out);

/* ---- vec_quant.c */
void vec_quant_ref(vec_quant *q);
void vec_quant_unref(vec_quant *q); /* frees at zero; NULL is a no-op */
/* Trains quantizers on n sample vectors (already normalised for cosine). */
wr_status vec_quant_train(const vk_ops *kern, const vec_options *o, uint32_t nlist, const float *x,
                          size_t n, uint64_t version, vec_quant **out);
/* Encodes n vectors: list of each (coarse assignment, written to list_out) and its PQ code
 * (m bytes each, plain, one code per byte) of the residual (L2) or the vector (IP). err_out
 * (may be NULL) gets the coarse error of each. */
wr_status vec_quant_encode(const vk_ops *kern, const vec_quant *q, const float *x, size_t n,
                           uint32_t threads, uint32_t *list_out, uint8_t *codes_out,
                           float *err_out);
size_t vec_quant_code_bytes(const vec_quant *q); /* bytes per vector in a list */
/* Derives cbnorm and cpk from the codebooks and centroids, once, after a training or a load. */
wr_status vec_quant_finish(const vk_ops *kern, vec_quant *q);
/* The query-independent part of an L2 distance to a code of list li: with r the encoded
 * residual (the sum of the code's codebook entries), ||q - c - r||^2 = ||q - c||^2 +
 * (||r||^2 + 2 <c, r>) - 2 <q, r>; this returns the middle term (0 for inner product). */
float vec_quant_term(const vk_ops *kern, const vec_quant *q, uint32_t li, const uint8_t *code);

/* ---- vec_list.c */
vec_lists *vec_lists_create(vec_quant *q); /* takes a new reference */
void vec_lists_destroy(vec_lists *ls);
wr_status vec_list_add(const vk_ops *kern, const vec_quant *q, vec_list *l, uint32_t li,
                       uint32_t slot, const uint8_t *code, uint32_t *pos_out);
/* Computes term[] of every entry of list li (after a load). */
void vec_list_terms(const vk_ops *kern, const vec_quant *q, vec_list *l, uint32_t li);
void vec_list_code(const vec_quant *q, const vec_list *l, uint32_t pos, uint8_t *code_out);
/* Removes dead entries (dead[slot] != 0) and rewrites pos[] of the survivors. */
wr_status vec_list_compact(const vec_quant *q, vec_list *l, const uint8_t *dead, uint32_t *pos);

/* ---- vec_train.c */
/* Called by writers (wmu and lk held exclusively) after additions: starts the first
 * training or a drift retraining when due. */
void vec_train_maybe(vec_index *ix);
/* Whether a training is due (lk held); the foreground mode then calls vec_train_inline with
 * wmu held and lk released. */
bool vec_train_due(vec_index *ix);
void vec_train_inline(vec_index *ix);
/* Encodes slots [from, to) of partition p into its lists (lk exclusive). */
wr_status vec_part_encode(vec_index *ix, vec_part *p, vec_lists *ls, uint32_t from, uint32_t to,
                          double *err_sum_out);

/* ---- vec_search.c */
wr_status vec_search_locked(vec_index *ix, const float *q, const vec_query *o, uint32_t nprobe,
                            uint32_t refine, int64_t exclude, vec_hit *out, uint32_t *cnt_out);
void vec_normalise(float *v, uint32_t dim);

/* ---- vec_file.c */
wr_status vec_file_load(vec_index *ix);
wr_status vec_file_save(vec_index *ix);

#endif

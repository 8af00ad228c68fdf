/* vec.h -- weir's IVF-PQ vector index (public API).
 *
 * An index maps external string keys to vectors of a fixed dimension and answers k-nearest
 * neighbour queries. Vectors live in partitions; each partition keeps every vector it holds
 * (exact copies, for re-ranking, exact search and retraining) in slots numbered from 0, and,
 * once the index is trained, inverted lists of PQ codes: one list per coarse centroid. The
 * trained quantizers (coarse centroids + PQ codebooks) are shared by all partitions.
 *
 * Life of an index: below opts.train_threshold live vectors, search is exact (brute force).
 * Reaching the threshold starts training in a background thread; when it is done the index
 * swaps to IVF-PQ search. New vectors are encoded with the current quantizers; the index
 * tracks how well they fit (mean coarse quantization error against the training-time figure,
 * and list imbalance) and past opts.drift_ratio retrains in the background on a fresh sample,
 * re-encodes everything and swaps atomically. Searches never wait for training.
 *
 * Distances: smaller is better for every metric. L2 returns the squared L2 distance; inner
 * product returns -<q, x>; cosine (vectors and queries normalised on the way in) returns
 * 1 - cos(q, x).
 *
 * On disk (vec_save/vec_open with a directory): an immutable quantizer file per training
 * version, per-partition files for lists, vectors, keys/attributes and tombstones, each with
 * XXH3 checksums, tied together by a MANIFEST replaced atomically (docs/formats/ivf.md).
 *
 * Invariants: (1) a deleted key is never returned by any later search; (2) a search sees each
 * live key at most once; (3) a search with a filter returns min(k, matching live keys)
 * results, all matching; (4) a damaged file is an error naming it.
 *
 * Threading: a vec_index is shared by any number of threads; writes are serialised, searches
 * run concurrently with each other and with background training. */
#ifndef WEIR_VEC_H
#define WEIR_VEC_H

#include "wr.h"

typedef struct vec_index vec_index;

typedef enum vec_metric { VEC_L2 = 0, VEC_IP = 1, VEC_COSINE = 2 } vec_metric;

typedef struct vec_options {
    vec_metric metric;        /* default VEC_L2 */
    uint32_t dim;             /* required (1..65536) */
    uint32_t nlist;           /* coarse centroids; 0 = chosen at training: ~4 sqrt(n) */
    uint32_t m;               /* PQ sub-quantizers; 0 = dim / 4 (4-bit: dim / 2); must
                                 divide dim (and be even for 4-bit) */
    uint32_t nbits;           /* 8 (default) or 4 (fast-scan layout) */
    uint32_t partitions;      /* default 1 */
    uint64_t train_threshold; /* exact search below this many live vectors; 10,000 */
    uint32_t train_iters;     /* k-means iterations (coarse and PQ); 10 */
    uint32_t train_per_list;  /* coarse training sample: this many vectors per list; 256 */
    uint32_t train_threads;   /* default 2 */
    double drift_ratio;       /* retrain when the coarse error of vectors added since the
                                 last training exceeds the trained error by this factor, or
                                 list imbalance grows by it; 1.5; 0 disables automatic
                                 retraining */
    uint64_t drift_min_added; /* ... but only after this many additions; 0 = 10% of the
                                 vectors trained on (at least 1,000) */
    bool background;          /* train/retrain in a background thread (default true);
                                 false trains inline in the write that crosses the line */
    uint64_t seed;            /* sampling and initialisation; default 1 */
} vec_options;

/* Fills @o with the defaults above (dim 0: the caller must set it). */
void vec_options_init(vec_options *o);

/* Stored attributes of a vector, for filters. */
typedef struct vec_attr {
    const char *agent; /* NULL or "": none */
    int64_t time;      /* e.g. creation time in ms; 0 when unknown */
} vec_attr;

/* A search predicate, evaluated inside the list scan. Fields left at their zero value do not
 * restrict: time_min = 0 means no lower bound, time_max = 0 no upper bound (times are
 * normally milliseconds since the epoch, so 0 is never a useful bound). */
typedef struct vec_filter {
    const char *agent;      /* exact match */
    const char *key_prefix; /* key starts with it */
    int64_t time_min;       /* inclusive */
    int64_t time_max;       /* inclusive */
} vec_filter;

typedef struct vec_query {
    uint32_t k;               /* results wanted; 10 */
    uint32_t nprobe;          /* lists probed; 0 = from recall, else 8 */
    uint32_t refine;          /* re-rank the best k * refine by exact distance; 0 = off */
    float recall;             /* > 0: take nprobe/refine from the calibration for this recall
                                 (vec_calibrate); explicit nprobe/refine win */
    bool exact;               /* brute force over every vector (ground truth) */
    const vec_filter *filter; /* NULL: none */
    uint32_t threads;         /* vec_search_batch: worker threads; 1 */
} vec_query;

void vec_query_init(vec_query *q);

typedef struct vec_hit {
    const char *key; /* borrowed from the index; valid until vec_close */
    float dist;
    uint32_t part;
    uint32_t slot;
} vec_hit;

typedef struct vec_calib_point {
    float recall; /* target */
    uint32_t nprobe, refine;
    float measured; /* recall@k measured on the sample */
} vec_calib_point;

typedef struct vec_stats {
    vec_metric metric;
    uint32_t dim, nlist, m, nbits, partitions;
    bool trained;
    bool training;          /* a background training is running */
    uint64_t quant_version; /* 0 before the first training */
    uint64_t live, deleted; /* vectors */
    uint64_t slots;         /* live + deleted slots still held */
    uint64_t trained_on;    /* vectors in the last training sample */
    uint64_t added_since_train;
    double trained_err; /* mean coarse error of the training sample */
    double recent_err;  /* mean coarse error of vectors added since */
    double drift;       /* recent_err / trained_err, or 0 */
    double imbalance;   /* nlist * sum(n_i^2) / (sum n_i)^2; 1 = perfectly balanced */
    double trained_imbalance;
    uint64_t retrains;     /* trainings done since open */
    double last_train_s;   /* the last training: quantizers (k-means, codebooks) */
    double last_encode_s;  /* ... and encoding every vector into the new lists */
    uint64_t code_bytes;   /* bytes of PQ codes in lists */
    uint64_t vector_bytes; /* bytes of exact vectors */
    uint32_t calib_cnt;    /* calibration points (below) */
    vec_calib_point calib[8];
    uint32_t calib_k;
    uint64_t calib_version; /* quant version the calibration was made on */
} vec_stats;

/* Opens the index in @dir (NULL: in memory only). If @dir holds an index it is loaded and
 * @opts may be NULL (given options must then agree on metric and dim); otherwise @opts is
 * required and the directory is created. */
WR_MUST_CHECK wr_status vec_open(const char *dir, const vec_options *opts, vec_index **out);
/* Waits for a background training to finish, then frees everything. NULL is a no-op. It does
 * not save: call vec_save first. */
void vec_close(vec_index *ix);

/* Inserts or replaces the vector of @key in partition @part (< partitions). A replaced key may
 * move partitions. Cosine vectors are normalised; a zero vector is WR_ERR_INVAL. */
WR_MUST_CHECK wr_status vec_upsert(vec_index *ix, uint32_t part, const char *key, const float *v,
                                   const vec_attr *attr);
/* Inserts n vectors (v: n * dim floats; keys[i]; attrs NULL or n entries) in one lock hold.
 * Every key and vector is checked before anything is applied; only running out of memory
 * while applying can leave a prefix of the batch applied (the error says so). The index is
 * memory until vec_save: under the engine the log is its write-ahead log. */
WR_MUST_CHECK wr_status vec_upsert_batch(vec_index *ix, uint32_t part, size_t n,
                                         const char *const *keys, const float *v,
                                         const vec_attr *attrs);
/* Removes @key; WR_ERR_NOTFOUND when absent. */
WR_MUST_CHECK wr_status vec_delete(vec_index *ix, const char *key);

/* The k nearest live vectors to @q, best first, in out[0 .. *cnt_out). @out has room for
 * opts->k hits. */
WR_MUST_CHECK wr_status vec_search(vec_index *ix, const float *q, const vec_query *opts,
                                   vec_hit *out, uint32_t *cnt_out);
/* @nq queries (q: nq * dim floats); query i's hits at out[i * k ..], its count in cnt_out[i].
 * Uses opts->threads threads. */
WR_MUST_CHECK wr_status vec_search_batch(vec_index *ix, const float *q, size_t nq,
                                         const vec_query *opts, vec_hit *out, uint32_t *cnt_out);

/* Trains (or retrains) now on a sample of the live vectors. @wait: return when the new
 * quantizers are in use; otherwise start it in the background (WR_ERR_BUSY when a training is
 * already running). WR_ERR_INVAL with fewer live vectors than the larger of nlist and the PQ
 * codebook size. */
WR_MUST_CHECK wr_status vec_train(vec_index *ix, bool wait);
/* Waits until no background training runs. */
void vec_wait_idle(vec_index *ix);

/* Measures, on a sample of @sample live vectors used as queries (each excluded from its own
 * answer), the recall@k of a grid of nprobe/refine settings against exact search, and keeps,
 * for each target in @targets, the cheapest setting that meets it (ties to the faster one).
 * Trained indexes only. Re-done automatically after each retraining when it was done once. */
WR_MUST_CHECK wr_status vec_calibrate(vec_index *ix, const float *targets, uint32_t target_cnt,
                                      uint32_t sample, uint32_t k);

/* Writes the index to its directory: new files, fsynced, then the MANIFEST replaced
 * atomically; files no longer named are removed. Searches continue meanwhile. */
WR_MUST_CHECK wr_status vec_save(vec_index *ix);
/* Checks every file of the index in @dir against its checksums and the manifest; the first
 * problem is in wr_errmsg() (naming the file). */
WR_MUST_CHECK wr_status vec_verify(const char *dir);

void vec_get_stats(vec_index *ix, vec_stats *out);

/* Reads a .fvecs file (per vector: int32 LE dimension, then that many float32 LE) or, with
 * @ints, an .ivecs file (int32 values, returned as their bit patterns in *out; cast the
 * pointer to int32_t *). All vectors must have the same dimension. *out is wr_malloc'd;
 * errors name the file and the byte offset. */
WR_MUST_CHECK wr_status vec_fvecs_read(const char *path, bool ints, uint32_t *dim_out,
                                       size_t *n_out, float **out);
const char *vec_metric_name(vec_metric m);

#endif

/* tests/vec/test_vec_file.c -- the vector index on disk (vec_save, vec_open of a saved
 * directory, vec_verify; docs/formats/ivf.md).
 *
 * Round trips: an index of clustered 16-dim vectors in two partitions, with agents and times,
 * deletes and replaced keys (some moving partitions), trained inline (8-bit, and 4-bit fast
 * scan) and calibrated, is saved, closed and reopened: stats and the hits (keys, distances,
 * slots) of exact, IVF, re-ranked, recall-driven and filtered searches must be identical;
 * deleted keys stay gone, upserts after the reopen work, and a second save writes a new
 * generation and removes the old one (the quantizer file stays until a retraining replaces
 * it). Also an untrained index (it trains after the reopen), an empty one, a saved partition
 * count that differs from the one given to vec_open, and in-memory/dim misuse.
 *
 * Damage: for every file of a saved index, one byte flipped in the middle, bytes flipped at
 * spread offsets, the file cut to half its length, and the file missing each make vec_open
 * and vec_verify fail (WR_ERR_CORRUPT, NOTFOUND for a missing file) with the file's name in
 * wr_errmsg(); restored, everything opens again.
 *
 * Crash safety: the fault hook (wr_fault_set) fails the N-th write-side operation of a save,
 * for every N (EIO, and ENOSPC with half the bytes written): vec_save reports it, and a fresh
 * vec_open of the directory shows the previous saved state intact -- or the new one when the
 * failure came after the MANIFEST's rename -- and vec_verify passes. A final clean save leaves
 * exactly the files its MANIFEST names. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vec_int.h" /* white box: file_gen */

#define DIM      16
#define NCLUST   16
#define NQ       16
#define K        10
#define NMODE    8
#define KEYLEN   24
#define MAXFILES 64
#define NAMELEN  256

static char g_root[4096];

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    (void)state;
    snprintf(g_root, sizeof g_root, "%s/weir-vecfile-XXXXXX", base ? base : "/tmp");
    return mkdtemp(g_root) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    char cmd[4200];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh directory path under the scratch root (not created: vec_open creates it). */
static void test_dir(char *dst, size_t cap, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", g_root, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static void file_path(char *dst, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* ---------------------------------------------------------------- data */
static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float unit(uint64_t *s)
{
    return (float)(rng(s) >> 40) * (1.0f / 16777216.0f);
}

/* Vector @i of @dim floats: near centre i % NCLUST; the same i always gives the same vector. */
static void gen_vec_dim(uint32_t i, uint32_t dim, float *v)
{
    uint64_t c = i % NCLUST, s = 1000 + c, r = 0xabcdefull + i;
    for (uint32_t t = 0; t < dim; t++)
        v[t] = unit(&s) * 20.0f - 10.0f;
    for (uint32_t t = 0; t < dim; t++)
        v[t] += unit(&r) * 2.0f - 1.0f;
}

static void gen_vec(uint32_t i, float *v)
{
    gen_vec_dim(i, DIM, v);
}

static const char *const agents[4] = {"agent-a", "agent-b", NULL, "agent-c"};

static void key_of(char *dst, const char *prefix, uint32_t i)
{
    snprintf(dst, KEYLEN, "%s%05u", prefix, i);
}

/* Upserts keys prefix<i> for i in [from, to), partition i % 2. */
static void add_range(vec_index *ix, const char *prefix, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        char key[KEYLEN];
        float v[DIM];
        vec_attr a = {agents[i % 4], (int64_t)i * 10};
        key_of(key, prefix, i);
        gen_vec(i, v);
        assert_int_equal(vec_upsert(ix, i % 2, key, v, &a), WR_OK);
    }
}

static bool is_deleted(uint32_t i)
{
    return i % 17 == 3 || i < 2; /* 0 and 1: slot 0 of both partitions */
}

static bool is_replaced(uint32_t i)
{
    return i % 23 == 5 && !is_deleted(i);
}

/* Deletes some of prefix<i> in [from, to) and replaces others (into the other partition). */
static void churn(vec_index *ix, const char *prefix, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        char key[KEYLEN];
        key_of(key, prefix, i);
        if (is_deleted(i)) {
            assert_int_equal(vec_delete(ix, key), WR_OK);
        } else if (is_replaced(i)) {
            float v[DIM];
            vec_attr a = {"agent-r", -(int64_t)i};
            gen_vec(i + 7, v);
            assert_int_equal(vec_upsert(ix, (i + 1) % 2, key, v, &a), WR_OK);
        }
    }
}

static void base_opts(vec_options *o, uint32_t nbits, uint64_t threshold)
{
    vec_options_init(o);
    o->dim = DIM;
    o->nbits = nbits;
    o->nlist = 16;
    o->partitions = 2;
    o->train_threshold = threshold;
    o->train_threads = 1;
    o->background = false; /* training inline: deterministic */
    o->drift_ratio = 0;
    o->seed = 7;
}

/* ---------------------------------------------------------------- snapshots */
typedef struct snap {
    vec_stats st;
    uint32_t cnt[NQ][NMODE];
    char key[NQ][NMODE][K][KEYLEN];
    float dist[NQ][NMODE][K];
    uint32_t part[NQ][NMODE][K], slot[NQ][NMODE][K];
} snap;

static void take_snap(vec_index *ix, snap *s)
{
    vec_filter fa = {"agent-b", NULL, 0, 0}, ft = {NULL, NULL, 5000, 15000};
    vec_filter fp = {NULL, "k01", 0, 0}, fr = {"agent-r", NULL, 0, 0};
    memset(s, 0, sizeof *s);
    vec_get_stats(ix, &s->st);
    for (uint32_t qi = 0; qi < NQ; qi++) {
        float q[DIM];
        gen_vec(qi * 131 + 5, q);
        q[0] += 0.25f;
        for (uint32_t md = 0; md < NMODE; md++) {
            vec_query o;
            vec_hit hits[K];
            vec_query_init(&o);
            o.k = K;
            switch (md) {
            case 0:
                o.exact = true;
                break;
            case 1:
                o.nprobe = 4;
                break;
            case 2:
                o.nprobe = 2;
                o.refine = 4;
                break;
            case 3:
                o.recall = 0.9f;
                break;
            case 4:
                o.exact = true;
                o.filter = &fa;
                break;
            case 5:
                o.nprobe = 3;
                o.filter = &ft;
                break;
            case 6:
                o.nprobe = 16;
                o.filter = &fp;
                break;
            default:
                o.nprobe = 1;
                o.filter = &fr;
                break;
            }
            uint32_t n = 0;
            assert_int_equal(vec_search(ix, q, &o, hits, &n), WR_OK);
            s->cnt[qi][md] = n;
            for (uint32_t j = 0; j < n; j++) {
                snprintf(s->key[qi][md][j], KEYLEN, "%s", hits[j].key);
                s->dist[qi][md][j] = hits[j].dist;
                s->part[qi][md][j] = hits[j].part;
                s->slot[qi][md][j] = hits[j].slot;
            }
        }
    }
}

static void stats_eq(const vec_stats *a, const vec_stats *b)
{
    assert_int_equal(a->metric, b->metric);
    assert_int_equal(a->dim, b->dim);
    assert_int_equal(a->nlist, b->nlist);
    assert_int_equal(a->m, b->m);
    assert_int_equal(a->nbits, b->nbits);
    assert_int_equal(a->partitions, b->partitions);
    assert_int_equal(a->trained, b->trained);
    assert_int_equal(a->quant_version, b->quant_version);
    assert_int_equal(a->live, b->live);
    assert_int_equal(a->deleted, b->deleted);
    assert_int_equal(a->slots, b->slots);
    assert_int_equal(a->trained_on, b->trained_on);
    assert_int_equal(a->added_since_train, b->added_since_train);
    assert_true(a->trained_err == b->trained_err);
    assert_true(a->recent_err == b->recent_err);
    assert_true(a->drift == b->drift);
    assert_true(a->imbalance == b->imbalance);
    assert_true(a->trained_imbalance == b->trained_imbalance);
    assert_int_equal(a->code_bytes, b->code_bytes);
    assert_int_equal(a->vector_bytes, b->vector_bytes);
    assert_int_equal(a->calib_cnt, b->calib_cnt);
    assert_int_equal(a->calib_k, b->calib_k);
    assert_int_equal(a->calib_version, b->calib_version);
    assert_memory_equal(a->calib, b->calib, sizeof a->calib);
}

static void snap_eq(const snap *a, const snap *b)
{
    stats_eq(&a->st, &b->st);
    for (uint32_t qi = 0; qi < NQ; qi++)
        for (uint32_t md = 0; md < NMODE; md++) {
            assert_int_equal(a->cnt[qi][md], b->cnt[qi][md]);
            for (uint32_t j = 0; j < a->cnt[qi][md]; j++) {
                assert_string_equal(a->key[qi][md][j], b->key[qi][md][j]);
                assert_true(a->dist[qi][md][j] == b->dist[qi][md][j]);
                assert_int_equal(a->part[qi][md][j], b->part[qi][md][j]);
                assert_int_equal(a->slot[qi][md][j], b->slot[qi][md][j]);
            }
        }
}

/* Opens @dir (options from the MANIFEST), compares with @want, verifies, closes. */
static void reopen_eq(const char *dir, const snap *want)
{
    vec_index *ix;
    snap *s = malloc(sizeof *s);
    assert_non_null(s);
    assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
    take_snap(ix, s);
    snap_eq(want, s);
    vec_close(ix);
    assert_int_equal(vec_verify(dir), WR_OK);
    free(s);
}

/* Whether exactly one live vector has key @key (a key-prefix filter on the full key). */
static uint32_t key_count(vec_index *ix, const char *key)
{
    vec_filter f = {NULL, key, 0, 0};
    vec_query o;
    vec_hit hits[2];
    float q[DIM] = {0};
    uint32_t n = 0;
    vec_query_init(&o);
    o.k = 2;
    o.exact = true;
    o.filter = &f;
    assert_int_equal(vec_search(ix, q, &o, hits, &n), WR_OK);
    return n;
}

/* Deleted keys are gone, replaced keys hold their new vector, the rest their old one. */
static void check_keys(vec_index *ix, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        char key[KEYLEN];
        key_of(key, "k", i);
        assert_int_equal(key_count(ix, key), is_deleted(i) ? 0 : 1);
        if (is_deleted(i) || i % 7 != 0)
            continue;
        float v[DIM];
        vec_query o;
        vec_hit hits[1];
        uint32_t cnt;
        vec_filter f = {NULL, key, 0, 0};
        vec_query_init(&o);
        o.k = 1;
        o.exact = true;
        o.filter = &f;
        gen_vec(is_replaced(i) ? i + 7 : i, v);
        assert_int_equal(vec_search(ix, v, &o, hits, &cnt), WR_OK);
        assert_int_equal(cnt, 1);
        assert_true(hits[0].dist == 0.0f);
    }
}

static bool exists(const char *dir, const char *name)
{
    char p[8192];
    file_path(p, sizeof p, dir, name);
    return access(p, F_OK) == 0;
}

static ino_t inode_of(const char *dir, const char *name)
{
    char p[8192];
    struct stat sb;
    file_path(p, sizeof p, dir, name);
    assert_int_equal(stat(p, &sb), 0);
    return sb.st_ino;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The file names in @dir, sorted; returns the count. */
static int list_files(const char *dir, char names[MAXFILES][NAMELEN])
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        assert_true(n < MAXFILES);
        snprintf(names[n++], NAMELEN, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, NAMELEN, name_cmp);
    return n;
}

/* ---------------------------------------------------------------- round trips */
static void roundtrip_trained(uint32_t nbits, const char *name)
{
    char dir[4200];
    vec_options o;
    vec_index *ix;
    vec_stats st;
    snap *s1 = malloc(sizeof *s1), *s2 = malloc(sizeof *s2);
    const float targets[2] = {0.8f, 0.95f};
    assert_true(s1 && s2);
    test_dir(dir, sizeof dir, name);
    base_opts(&o, nbits, 2000);
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 3000);
    churn(ix, "k", 0, 3000);
    vec_get_stats(ix, &st);
    assert_true(st.trained);
    assert_int_equal(st.quant_version, 1);
    assert_true(st.deleted > 0);
    assert_int_equal(vec_calibrate(ix, targets, 2, 60, K), WR_OK);
    assert_int_equal(vec_save(ix), WR_OK);
    assert_int_equal(ix->file_gen, 1);
    take_snap(ix, s1);
    assert_true(s1->st.calib_cnt == 2);
    vec_close(ix);
    assert_true(exists(dir, "quant-1.ivq"));
    assert_true(exists(dir, "p1-1.ivl"));
    assert_int_equal(vec_verify(dir), WR_OK);

    /* reopen: identical, deleted keys gone, replaced keys replaced */
    assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
    take_snap(ix, s2);
    snap_eq(s1, s2);
    assert_int_equal(s2->st.retrains, 0);
    check_keys(ix, 3000);

    /* the key map: an old live key can be replaced and deleted, a deleted one is not there */
    float v[DIM];
    gen_vec(99999, v);
    assert_int_equal(vec_upsert(ix, 1, "k00004", v, NULL), WR_OK);
    assert_int_equal(vec_delete(ix, "k00006"), WR_OK);
    assert_int_equal(vec_delete(ix, "k00003"), WR_ERR_NOTFOUND);
    assert_int_equal(vec_delete(ix, "k00000"), WR_ERR_NOTFOUND);
    vec_get_stats(ix, &st);
    assert_int_equal(st.live, s2->st.live - 1);
    assert_int_equal(st.deleted, s2->st.deleted + 2);
    assert_int_equal(key_count(ix, "k00004"), 1);
    assert_int_equal(key_count(ix, "k00006"), 0);

    /* writes after the reopen, then a second save: a new generation, the same quantizer file */
    ino_t qino = inode_of(dir, "quant-1.ivq");
    add_range(ix, "new", 0, 400);
    churn(ix, "new", 0, 400);
    assert_int_equal(key_count(ix, "new00017"), 1);
    assert_int_equal(vec_save(ix), WR_OK);
    take_snap(ix, s1);
    vec_close(ix);
    assert_true(exists(dir, "p0-2.ivv") && exists(dir, "p1-2.ivl"));
    assert_false(exists(dir, "p0-1.ivv") || exists(dir, "p1-1.ivk") || exists(dir, "p0-1.ivt") ||
                 exists(dir, "p1-1.ivl"));
    assert_true(inode_of(dir, "quant-1.ivq") == qino);
    reopen_eq(dir, s1);

    /* a retraining: the next save replaces the quantizer file */
    assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
    assert_int_equal(vec_train(ix, true), WR_OK);
    vec_get_stats(ix, &st);
    assert_int_equal(st.quant_version, 2);
    assert_int_equal(vec_save(ix), WR_OK);
    take_snap(ix, s1);
    vec_close(ix);
    assert_false(exists(dir, "quant-1.ivq"));
    assert_true(exists(dir, "quant-2.ivq") && exists(dir, "p0-3.ivl"));
    reopen_eq(dir, s1);
    free(s1);
    free(s2);
}

static void test_roundtrip_8bit_two_partitions(void **state)
{
    (void)state;
    roundtrip_trained(8, "rt8");
}

static void test_roundtrip_4bit_two_partitions(void **state)
{
    (void)state;
    roundtrip_trained(4, "rt4");
}

static void test_roundtrip_untrained_then_trains(void **state)
{
    char dir[4200];
    vec_options o;
    vec_index *ix;
    vec_stats st;
    snap *s1 = malloc(sizeof *s1);
    (void)state;
    assert_non_null(s1);
    test_dir(dir, sizeof dir, "untrained");
    base_opts(&o, 8, 2000);
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 600);
    churn(ix, "k", 0, 600);
    assert_int_equal(vec_save(ix), WR_OK);
    take_snap(ix, s1);
    assert_false(s1->st.trained);
    vec_close(ix);
    assert_false(exists(dir, "p0-1.ivl"));
    reopen_eq(dir, s1);

    /* reopened with options (same dim and metric): crossing the threshold trains inline */
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    check_keys(ix, 600);
    add_range(ix, "k", 600, 2600);
    vec_get_stats(ix, &st);
    assert_true(st.trained);
    assert_int_equal(vec_save(ix), WR_OK);
    take_snap(ix, s1);
    vec_close(ix);
    assert_true(exists(dir, "p0-2.ivl") && exists(dir, "quant-1.ivq"));
    reopen_eq(dir, s1);
    free(s1);
}

static void test_roundtrip_empty(void **state)
{
    char dir[4200];
    vec_options o;
    vec_index *ix;
    vec_stats st;
    float v[DIM];
    (void)state;
    test_dir(dir, sizeof dir, "empty");
    base_opts(&o, 8, 2000);
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    assert_int_equal(vec_save(ix), WR_OK);
    vec_close(ix);
    assert_int_equal(vec_verify(dir), WR_OK);
    assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
    vec_get_stats(ix, &st);
    assert_int_equal(st.live + st.deleted + st.slots, 0);
    assert_int_equal(st.partitions, 2);
    assert_false(st.trained);
    gen_vec(1, v);
    assert_int_equal(vec_upsert(ix, 1, "only", v, NULL), WR_OK);
    assert_int_equal(key_count(ix, "only"), 1);
    assert_int_equal(vec_save(ix), WR_OK);
    vec_close(ix);
    assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
    assert_int_equal(key_count(ix, "only"), 1);
    vec_close(ix);
}

/* The MANIFEST's partition count wins over the caller's; dim and metric must agree. */
static void test_open_options_partitions_from_manifest(void **state)
{
    char dir[4200];
    vec_options o, o1;
    vec_index *ix;
    vec_stats st;
    float v[DIM];
    (void)state;
    test_dir(dir, sizeof dir, "parts");
    base_opts(&o, 8, 2000);
    o.partitions = 3;
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 50);
    gen_vec(77, v);
    assert_int_equal(vec_upsert(ix, 2, "third", v, NULL), WR_OK);
    assert_int_equal(vec_save(ix), WR_OK);
    vec_close(ix);
    o1 = o;
    o1.partitions = 1;
    assert_int_equal(vec_open(dir, &o1, &ix), WR_OK);
    vec_get_stats(ix, &st);
    assert_int_equal(st.partitions, 3);
    assert_int_equal(st.live, 51);
    assert_int_equal(key_count(ix, "third"), 1);
    assert_int_equal(vec_upsert(ix, 2, "third2", v, NULL), WR_OK);
    vec_close(ix);
    o1 = o;
    o1.partitions = 8;
    assert_int_equal(vec_open(dir, &o1, &ix), WR_OK);
    vec_get_stats(ix, &st);
    assert_int_equal(st.partitions, 3);
    vec_close(ix);
    o1 = o;
    o1.dim = DIM * 2;
    assert_int_equal(vec_open(dir, &o1, &ix), WR_ERR_INVAL);
    assert_null(ix);
}

static void test_save_in_memory_is_inval(void **state)
{
    vec_options o;
    vec_index *ix;
    (void)state;
    base_opts(&o, 8, 2000);
    assert_int_equal(vec_open(NULL, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 10);
    assert_int_equal(vec_save(ix), WR_ERR_INVAL);
    assert_non_null(strstr(wr_errmsg(), "memory"));
    vec_close(ix);
}

/* Files of several checksum blocks, slot chunks and writes: 40,000 vectors of 32 dims in one
 * partition (5 MiB of vectors), untrained. A flipped byte is reported with its block's slots; a
 * failed second write of the vectors keeps the previous save. */
#define BIG_N   40000u
#define BIG_DIM 32u

static void big_hits(vec_index *ix, uint32_t *cnt, char keys[4][K][KEYLEN], float dist[4][K])
{
    for (uint32_t qi = 0; qi < 4; qi++) {
        float q[BIG_DIM];
        vec_query o;
        vec_hit hits[K];
        vec_query_init(&o);
        o.k = K;
        o.exact = true;
        gen_vec_dim(qi * 977 + 3, BIG_DIM, q);
        assert_int_equal(vec_search(ix, q, &o, hits, &cnt[qi]), WR_OK);
        for (uint32_t j = 0; j < cnt[qi]; j++) {
            snprintf(keys[qi][j], KEYLEN, "%s", hits[j].key);
            dist[qi][j] = hits[j].dist;
        }
    }
}

static void big_eq(const char *dir, const vec_stats *st, const uint32_t *cnt,
                   char keys[4][K][KEYLEN], float dist[4][K])
{
    vec_index *ix;
    vec_stats st2;
    uint32_t cnt2[4];
    char keys2[4][K][KEYLEN];
    float dist2[4][K];
    assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
    vec_get_stats(ix, &st2);
    stats_eq(st, &st2);
    big_hits(ix, cnt2, keys2, dist2);
    vec_close(ix);
    for (uint32_t qi = 0; qi < 4; qi++) {
        assert_int_equal(cnt[qi], cnt2[qi]);
        for (uint32_t j = 0; j < cnt[qi]; j++) {
            assert_string_equal(keys[qi][j], keys2[qi][j]);
            assert_true(dist[qi][j] == dist2[qi][j]);
        }
    }
    assert_int_equal(vec_verify(dir), WR_OK);
}

static int fail_nth_write(void *ctx, wr_fault_io *io)
{
    int *left = ctx;
    if (io->op != WR_FAULT_WRITE || !io->path || !strstr(io->path, ".ivv"))
        return 0;
    return --*left == 0 ? EIO : 0;
}

static void test_large_files_blocks_and_partial_writes(void **state)
{
    char dir[4200], path[8192];
    vec_options o;
    vec_index *ix;
    vec_stats st;
    uint32_t cnt[4];
    char(*keys)[K][KEYLEN] = malloc(4 * sizeof *keys);
    float dist[4][K];
    float *v = malloc((size_t)BIG_N * BIG_DIM * sizeof(float));
    const char **kp = malloc(BIG_N * sizeof(char *));
    char *kb = malloc((size_t)BIG_N * KEYLEN);
    vec_attr *at = malloc(BIG_N * sizeof(vec_attr));
    (void)state;
    assert_true(keys && v && kp && kb && at);
    for (uint32_t i = 0; i < BIG_N; i++) {
        gen_vec_dim(i, BIG_DIM, v + (size_t)i * BIG_DIM);
        key_of(kb + (size_t)i * KEYLEN, "big", i);
        kp[i] = kb + (size_t)i * KEYLEN;
        at[i] = (vec_attr){agents[i % 4], (int64_t)i};
    }
    test_dir(dir, sizeof dir, "big");
    vec_options_init(&o);
    o.dim = BIG_DIM;
    o.train_threshold = 1000000;
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    assert_int_equal(vec_upsert_batch(ix, 0, BIG_N, kp, v, at), WR_OK);
    for (uint32_t i = 0; i < BIG_N; i += 3)
        assert_int_equal(vec_delete(ix, kp[i]), WR_OK);
    assert_int_equal(vec_save(ix), WR_OK);
    vec_get_stats(ix, &st);
    big_hits(ix, cnt, keys, dist);
    big_eq(dir, &st, cnt, keys, dist);

    /* the second write of the vectors file fails (the first flush wrote 4 MiB) */
    assert_int_equal(vec_upsert_batch(ix, 0, 1000, kp, v + 7 * BIG_DIM, NULL), WR_OK);
    int left = 2;
    wr_fault_set(fail_nth_write, &left);
    wr_status rc = vec_save(ix);
    wr_fault_set(NULL, NULL);
    assert_int_equal(left, 0);
    assert_int_equal(rc, WR_ERR_IO);
    assert_non_null(strstr(wr_errmsg(), "p0-2.ivv"));
    assert_false(exists(dir, "p0-2.ivv"));
    big_eq(dir, &st, cnt, keys, dist);
    vec_close(ix);

    /* a flipped byte in the fourth 1 MiB block of the vectors names its slots */
    file_path(path, sizeof path, dir, "p0-1.ivv");
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 128 + (3 << 20) + 4096, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, -1, SEEK_CUR), 0);
    fputc(c ^ 0x10, f);
    fclose(f);
    assert_int_equal(vec_open(dir, NULL, &ix), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "p0-1.ivv: checksum mismatch in the vectors of slots "
                                        "24576..32767"));
    assert_int_equal(vec_verify(dir), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "slots 24576..32767"));
    free(keys);
    free(v);
    free(kp);
    free(kb);
    free(at);
}

/* ---------------------------------------------------------------- damage */
static void read_all(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    *out = malloc((size_t)n);
    assert_non_null(*out);
    assert_int_equal(fread(*out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
}

static void write_all(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* vec_open and vec_verify of @dir both fail with @want and name @name. */
static void fails_naming(const char *dir, const char *name, wr_status want, const char *what)
{
    vec_index *ix = NULL;
    wr_status st = vec_open(dir, NULL, &ix);
    if (st != want || !strstr(wr_errmsg(), name))
        fail_msg("%s %s: vec_open gave %s \"%s\"", name, what, wr_status_str(st), wr_errmsg());
    assert_null(ix);
    st = vec_verify(dir);
    if (st != want || !strstr(wr_errmsg(), name))
        fail_msg("%s %s: vec_verify gave %s \"%s\"", name, what, wr_status_str(st), wr_errmsg());
}

static void test_damage_each_file_is_named(void **state)
{
    char dir[4200], path[8192], names[MAXFILES][NAMELEN];
    vec_options o;
    vec_index *ix;
    snap *s = malloc(sizeof *s);
    (void)state;
    assert_non_null(s);
    test_dir(dir, sizeof dir, "damage");
    base_opts(&o, 4, 2000);
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 2400);
    churn(ix, "k", 0, 2400);
    assert_int_equal(vec_save(ix), WR_OK);
    take_snap(ix, s);
    vec_close(ix);
    int n = list_files(dir, names);
    assert_int_equal(n, 1 + 1 + 2 * 4); /* MANIFEST, quantizer, 2 x (ivv ivk ivt ivl) */
    for (int f = 0; f < n; f++) {
        uint8_t *orig, *bad;
        size_t len;
        file_path(path, sizeof path, dir, names[f]);
        read_all(path, &orig, &len);
        bad = malloc(len);
        assert_non_null(bad);

        /* one byte flipped in the middle */
        memcpy(bad, orig, len);
        bad[len / 2] ^= 0x40;
        write_all(path, bad, len);
        fails_naming(dir, names[f], WR_ERR_CORRUPT, "with a flipped middle byte");

        /* flips spread over the file (not in the version field, which may then read as a
         * newer format: WR_ERR_UNSUPPORTED) */
        for (size_t at = 0; at < len; at += len / 13 + 1) {
            if (at >= 8 && at < 12)
                continue;
            memcpy(bad, orig, len);
            bad[at] ^= 0x01;
            write_all(path, bad, len);
            fails_naming(dir, names[f], WR_ERR_CORRUPT, "with a flipped byte");
        }
        memcpy(bad, orig, len);
        bad[len - 1] ^= 0x80;
        write_all(path, bad, len);
        fails_naming(dir, names[f], WR_ERR_CORRUPT, "with a flipped last byte");

        /* cut short */
        write_all(path, orig, len / 2);
        fails_naming(dir, names[f], WR_ERR_CORRUPT, "cut to half");

        /* missing */
        assert_int_equal(unlink(path), 0);
        fails_naming(dir, names[f], WR_ERR_NOTFOUND, "missing");

        write_all(path, orig, len);
        free(orig);
        free(bad);
    }
    reopen_eq(dir, s);
    free(s);
}

/* ---------------------------------------------------------------- forged files */
/* Recomputes the checksums of data file @b (docs/formats/ivf.md): every unit that still fits,
 * then the header's; returns the digest the MANIFEST records. */
static uint64_t resign_data(uint8_t *b, size_t len)
{
    uint64_t body = wr_get64(b + 32), units = wr_get64(b + 40), block = wr_get64(b + 48);
    bool fits = body <= len - 128 && units <= (len - 128 - body) / 8;
    uint8_t *bd = b + 128, *sums = fits ? bd + body : b;
    if (fits && block) {
        for (uint64_t u = 0; u < units && u * block < body; u++) {
            uint64_t lo = u * block, hi = lo + block > body ? body : lo + block;
            wr_put64(sums + 8 * u, wr_xxh3(bd + lo, hi - lo));
        }
    } else if (fits && memcmp(b, "WEIRIVL1", 8) == 0) {
        uint64_t nlist = wr_get32(b + 72), m = wr_get32(b + 76), nbits = wr_get32(b + 80);
        if (units == nlist + 1 && 8 * nlist <= body) {
            wr_put64(sums, wr_xxh3(bd, 8 * nlist));
            uint64_t at = 8 * nlist;
            for (uint64_t i = 0; i < nlist; i++) {
                uint64_t n = wr_get32(bd + 8 * i);
                uint64_t l = 4 * n + (nbits == 8 ? n * m : (n + 31) / 32 * m * 16);
                if (at + l > body)
                    break;
                wr_put64(sums + 8 * (i + 1), wr_xxh3(bd + at, l));
                at += l;
            }
        }
    }
    wr_put64(b + 120, wr_xxh3(b, 120));
    if (!fits)
        return 0;
    return wr_xxh3_seed(units ? sums : b, units * 8, wr_get64(b + 120));
}

/* Puts @size and @digest into the MANIFEST entry of file @name and re-checksums it. */
static void resign_manifest(uint8_t *mf, size_t len, const char *name, uint64_t size,
                            uint64_t digest)
{
    size_t nl = strlen(name);
    if (name[0]) {
        uint8_t *at = memmem(mf, len, name, nl);
        assert_non_null(at);
        wr_put64(at + nl, size);
        wr_put64(at + nl + 8, digest);
    }
    wr_put64(mf + len - 8, wr_xxh3(mf, len - 8));
}

static void test_forged_files_never_crash(void **state)
{
    char dir[4200], path[8192], mpath[8192], names[MAXFILES][NAMELEN];
    vec_options o;
    vec_index *ix;
    uint8_t *orig[MAXFILES], *bad, *mf;
    size_t len[MAXFILES], mlen = 0;
    int mi = -1, accepted = 0, rejected = 0;
    uint64_t seed = 42;
    const char *env = getenv("WEIR_VEC_FORGE_ITERS");
    int iters = env ? atoi(env) : 400;
    (void)state;
    test_dir(dir, sizeof dir, "forged");
    base_opts(&o, 4, 2000);
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 2100);
    churn(ix, "k", 0, 2100);
    assert_int_equal(vec_save(ix), WR_OK);
    vec_close(ix);
    int n = list_files(dir, names);
    for (int f = 0; f < n; f++) {
        file_path(path, sizeof path, dir, names[f]);
        read_all(path, &orig[f], &len[f]);
        if (strcmp(names[f], "MANIFEST") == 0)
            mi = f;
    }
    assert_true(mi >= 0);
    file_path(mpath, sizeof mpath, dir, "MANIFEST");
    mf = malloc(len[mi]);
    assert_non_null(mf);
    for (int it = 0; it < iters; it++) {
        int f = (int)(rng(&seed) % (uint64_t)n);
        size_t l = len[f];
        bad = malloc(l);
        assert_non_null(bad);
        memcpy(bad, orig[f], l);
        /* a header field (sizes and counts live there) or any byte, then a small or wild value */
        size_t at = rng(&seed) % 2 ? 16 + rng(&seed) % 104 : rng(&seed) % l;
        switch (rng(&seed) % 4) {
        case 0:
            bad[at] ^= (uint8_t)(1u << (rng(&seed) % 8));
            break;
        case 1:
            bad[at] = (uint8_t)rng(&seed);
            break;
        case 2:
            if (at + 4 <= l)
                wr_put32(bad + at,
                         (uint32_t)(rng(&seed) % 3) == 0 ? 0xffffffffu : wr_get32(bad + at) + 1);
            break;
        default:
            if (at + 4 <= l)
                wr_put32(bad + at, (uint32_t)(rng(&seed) % 40000));
            break;
        }
        memcpy(mf, orig[mi], len[mi]);
        mlen = len[mi];
        if (f == mi) {
            memcpy(mf, bad, l);
            resign_manifest(mf, mlen, "", 0, 0);
        } else {
            uint64_t dg = resign_data(bad, l);
            resign_manifest(mf, mlen, names[f], l, dg);
            file_path(path, sizeof path, dir, names[f]);
            write_all(path, bad, l);
        }
        write_all(mpath, mf, mlen);
        wr_status st = vec_open(dir, NULL, &ix);
        if (st == WR_OK) {
            vec_query q;
            vec_hit hits[K];
            uint32_t cnt;
            float v[DIM];
            accepted++;
            gen_vec(5, v);
            vec_query_init(&q);
            q.k = K;
            assert_int_equal(vec_search(ix, v, &q, hits, &cnt), WR_OK);
            q.exact = true;
            assert_int_equal(vec_search(ix, v, &q, hits, &cnt), WR_OK);
            vec_close(ix);
        } else {
            rejected++;
            assert_true(wr_failed(st));
            assert_non_null(strstr(wr_errmsg(), "vector index"));
        }
        wr_status vs = vec_verify(dir);
        if (vs != st)
            fail_msg("iteration %d (%s byte %zu): vec_open %s, vec_verify %s: %s", it, names[f], at,
                     wr_status_str(st), wr_status_str(vs), wr_errmsg());
        file_path(path, sizeof path, dir, names[f]);
        write_all(path, orig[f], l);
        write_all(mpath, orig[mi], len[mi]);
        free(bad);
    }
    if (getenv("WEIR_VEC_FORGE_ITERS"))
        print_message("forged: %d accepted, %d rejected\n", accepted, rejected);
    assert_true(rejected > iters / 2);
    assert_int_equal(vec_verify(dir), WR_OK);
    for (int f = 0; f < n; f++)
        free(orig[f]);
    free(mf);
}

/* ---------------------------------------------------------------- crash safety */
typedef struct fault {
    int n;         /* operations seen */
    int target;    /* fail this one (1-based) */
    int fired_at;  /* 0: not yet */
    int rename_at; /* the MANIFEST's rename */
    int err;
} fault;

static int fault_hook(void *ctx, wr_fault_io *io)
{
    fault *f = ctx;
    f->n++;
    if (io->op == WR_FAULT_RENAME && io->path2 && strstr(io->path2, "/MANIFEST"))
        f->rename_at = f->n;
    if (f->n != f->target)
        return 0;
    f->fired_at = f->n;
    if (io->op == WR_FAULT_WRITE && f->err == ENOSPC)
        io->len /= 2; /* a disk that filled up part-way */
    return f->err;
}

static void test_fault_during_save_keeps_previous_state(void **state)
{
    char dir[4200], names[MAXFILES][NAMELEN];
    vec_options o;
    vec_index *ix;
    snap *sa = malloc(sizeof *sa), *sb = malloc(sizeof *sb);
    const snap *ondisk;
    (void)state;
    assert_true(sa && sb);
    test_dir(dir, sizeof dir, "fault");
    base_opts(&o, 8, 2000);
    assert_int_equal(vec_open(dir, &o, &ix), WR_OK);
    add_range(ix, "k", 0, 2200);
    churn(ix, "k", 0, 1000);
    assert_int_equal(vec_save(ix), WR_OK);
    take_snap(ix, sa);
    /* state B: more writes and a retraining, so the save writes a quantizer file too */
    add_range(ix, "b", 0, 300);
    churn(ix, "k", 1000, 2200);
    assert_int_equal(vec_train(ix, true), WR_OK);
    take_snap(ix, sb);
    ondisk = sa;
    for (int pass = 0; pass < 2; pass++) {
        int err = pass == 0 ? EIO : ENOSPC, failures = 0;
        for (int target = 1;; target++) {
            fault f = {0, target, 0, 0, err};
            wr_fault_set(fault_hook, &f);
            wr_status st = vec_save(ix);
            wr_fault_set(NULL, NULL);
            if (!f.fired_at) {
                assert_int_equal(st, WR_OK);
                break;
            }
            failures++;
            if (st == WR_OK)
                fail_msg("operation %d failed with errno %d but vec_save returned WR_OK", target,
                         err);
            assert_non_null(strstr(wr_errmsg(), dir));
            if (f.rename_at && f.rename_at < f.fired_at)
                ondisk = sb; /* failed after the MANIFEST's rename: the new state is in force */
            reopen_eq(dir, ondisk);
        }
        assert_true(failures > 20);
        /* the clean save: state B, and only the files its MANIFEST names */
        reopen_eq(dir, sb);
        int n = list_files(dir, names);
        assert_int_equal(n, 1 + 1 + 2 * 4);
        for (int i = 0; i < n; i++)
            assert_true(strcmp(names[i], "MANIFEST") == 0 || strcmp(names[i], "quant-2.ivq") == 0 ||
                        strstr(names[i], "-") != NULL);
        assert_false(exists(dir, "quant-1.ivq"));
        ondisk = sb;
        if (pass == 0) { /* go back to a state A on disk for the ENOSPC pass */
            vec_close(ix);
            assert_int_equal(vec_open(dir, NULL, &ix), WR_OK);
            take_snap(ix, sa);
            add_range(ix, "c", 0, 200);
            churn(ix, "c", 0, 100);
            take_snap(ix, sb);
            ondisk = sa;
        }
    }
    vec_close(ix);
    free(sa);
    free(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_8bit_two_partitions),
        cmocka_unit_test(test_roundtrip_4bit_two_partitions),
        cmocka_unit_test(test_roundtrip_untrained_then_trains),
        cmocka_unit_test(test_roundtrip_empty),
        cmocka_unit_test(test_open_options_partitions_from_manifest),
        cmocka_unit_test(test_save_in_memory_is_inval),
        cmocka_unit_test(test_large_files_blocks_and_partial_writes),
        cmocka_unit_test(test_damage_each_file_is_named),
        cmocka_unit_test(test_forged_files_never_crash),
        cmocka_unit_test(test_fault_during_save_keeps_previous_state),
    };
    return cmocka_run_group_tests_name("vec_file", tests, group_setup, group_teardown);
}

/* leveldb_peer.c -- LevelDB driver for bench/kv-peers.sh: the db_bench workloads through
 * LevelDB's C API (Debian libleveldb-dev ships the library, not db_bench).
 *
 *   leveldb_peer [--num 1000000] [--sync-num 20000] [--runs 3] [--dir /tmp] [--json]
 *                [--bloom-bits 10] [--time-limit 600]
 *
 * db_bench semantics (LevelDB's benchmarks/db_bench.cc): keys are 16 bytes, the zero-padded
 * decimal "%016llu" of an index in [0, num); values are 100 bytes; one thread unless named.
 *   fillseq          fresh db, num puts, keys 0..num-1 in order
 *   fillrandom       fresh db, num puts, key = rand % num (duplicates, ~63% distinct)
 *   overwrite        on the fillrandom db, num more random puts
 *   readrandom       on that db, num gets of random keys per thread (threads=1, then 2)
 *   seekrandom       num times: new iterator, Seek(random key), then Next() up to 10 times
 *   readwhilewriting 1 reader doing num random gets (measured) + 1 writer putting random keys
 *                    without a pause until the reader is done (not measured)
 *   fillrandom sync  fresh db, sync-num puts with WriteOptions.sync = true (fsync per put)
 * Values come from a 1 MiB buffer made like db_bench's RandomGenerator: each 100-byte piece is
 * 50 random printable bytes repeated twice (compressible to half); a value is the next 100
 * bytes of the buffer. Compression is off anyway (leveldb_no_compression).
 *
 * Options: LevelDB defaults -- 4 MiB write buffer, 8 MiB LRU block cache, 4 KiB blocks,
 * 1000 open files -- plus a Bloom filter of --bloom-bits bits per key (10; 0 = none).
 *
 * Metrics per workload: ops_per_s (ops / wall time of the op loop, all threads), latency
 * percentiles p50/p99/p999 in microseconds (every op timed), rss_mib (VmHWM, reset by writing
 * 5 to /proc/self/clear_refs before the workload), found_pct for reads; for the write
 * workloads, after the loop the driver waits until LevelDB's background work is quiet (no new
 * bytes written for 1 s, at most 120 s), then write_amp = growth of write_bytes in
 * /proc/self/io (every thread of the process, i.e. WAL + flushes + compactions) / user bytes
 * (puts x 116 B), and space_amp = bytes allocated by the db directory's files (st_blocks) /
 * live user bytes (distinct keys present x 116 B). Each run uses a fresh db directory under
 * --dir, removed afterwards; the figures are the medians over --runs runs.
 *
 * Output: a table per workload, or with --json one object per workload (bench/README.md):
 * {"bench":"kv","peer":"leveldb","version":"1.23","workload":..,"variant":..,"ok":..,
 *  "runs":..,"params":{..},"metrics":{name:{unit,median,min,max,spread,noisy,values}},..}. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LP_KEY       16
#define LP_VALUE     100
#define LP_GEN_BYTES (1u << 20)
#define LP_MAX_RUNS  16
#define LP_NOISY     0.30
#define LP_NEXTS     10

/* ---------------------------------------------------------------- small helpers */
static uint64_t lp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void lp_die(const char *what, const char *err)
{
    fprintf(stderr, "leveldb_peer: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

static void lp_check(const char *what, char *err)
{
    if (err != NULL)
        lp_die(what, err);
}

static uint64_t lp_splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void lp_key(char *k, uint64_t i)
{
    char tmp[LP_KEY + 1];
    snprintf(tmp, sizeof tmp, "%016" PRIu64, i % UINT64_C(10000000000000000));
    memcpy(k, tmp, LP_KEY);
}

/* ---------------------------------------------------------------- latency histogram */
/* Log-linear like wr_hist (common/wr_hist.c): exact below 64, then 64 sub-buckets per power
 * of two (relative error <= 1.6%). Values in nanoseconds. One per thread, merged at the end. */
#define LP_SUB     64
#define LP_BUCKETS (59 * LP_SUB)
typedef struct lp_hist {
    uint64_t cnt;
    uint64_t b[LP_BUCKETS];
} lp_hist;

static unsigned lp_bucket(uint64_t v)
{
    unsigned e;
    if (v < LP_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    return (e - 5) * LP_SUB + (unsigned)((v >> (e - 6)) & (LP_SUB - 1));
}

static uint64_t lp_upper(unsigned i)
{
    unsigned e, sub;
    if (i < LP_SUB)
        return i;
    e = i / LP_SUB + 5;
    sub = i % LP_SUB;
    return ((uint64_t)(LP_SUB + sub) << (e - 6)) + ((uint64_t)1 << (e - 6)) - 1;
}

static void lp_hist_add(lp_hist *h, uint64_t v)
{
    h->b[lp_bucket(v)]++;
    h->cnt++;
}

static void lp_hist_merge(lp_hist *d, const lp_hist *s)
{
    for (unsigned i = 0; i < LP_BUCKETS; i++)
        d->b[i] += s->b[i];
    d->cnt += s->cnt;
}

static double lp_hist_us(const lp_hist *h, double q)
{
    uint64_t rank, seen = 0;
    if (h->cnt == 0)
        return 0.0;
    rank = (uint64_t)(q * (double)h->cnt);
    if (rank >= h->cnt)
        rank = h->cnt - 1;
    for (unsigned i = 0; i < LP_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank)
            return (double)lp_upper(i) / 1e3;
    }
    return 0.0;
}

/* ---------------------------------------------------------------- process statistics */
static uint64_t lp_write_bytes(void)
{
    char line[128];
    uint64_t v = 0;
    FILE *f = fopen("/proc/self/io", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "write_bytes: %" SCNu64, &v) == 1)
            break;
    fclose(f);
    return v;
}

static void lp_reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f != NULL) {
        fputs("5", f);
        fclose(f);
    }
}

static double lp_hwm_mib(void)
{
    char line[128];
    unsigned long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0.0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %lu kB", &kb) == 1)
            break;
    fclose(f);
    return (double)kb / 1024.0;
}

/* Bytes allocated by the files of @dir (LevelDB keeps a flat directory). */
static uint64_t lp_du(const char *dir)
{
    uint64_t total = 0;
    struct dirent *e;
    struct stat st;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512u;
    }
    closedir(d);
    return total;
}

/* ---------------------------------------------------------------- results */
enum { M_OPS, M_P50, M_P99, M_P999, M_FOUND, M_WAMP, M_SAMP, M_RSS, M_SECS, M_COUNT };
static const char *const lp_mname[M_COUNT] = {"ops_per_s", "p50_us",    "p99_us",
                                              "p999_us",   "found_pct", "write_amp",
                                              "space_amp", "rss_mib",   "seconds"};
static const char *const lp_munit[M_COUNT] = {"op/s", "us", "us", "us", "%", "x", "x", "MiB", "s"};

enum { W_FILLSEQ, W_FILLRANDOM, W_OVERWRITE, W_READ1, W_READ2, W_SEEK, W_RWW, W_FILLSYNC, W_COUNT };
typedef struct lp_workload {
    const char *name, *variant;
    unsigned threads;
    bool write, sync;
} lp_workload;
static const lp_workload lp_w[W_COUNT] = {
    {"fillseq", "threads=1", 1, true, false},
    {"fillrandom", "threads=1", 1, true, false},
    {"overwrite", "threads=1", 1, true, false},
    {"readrandom", "threads=1", 1, false, false},
    {"readrandom", "threads=2", 2, false, false},
    {"seekrandom", "threads=1", 1, false, false},
    {"readwhilewriting", "threads=1", 1, false, false},
    {"fillrandom", "sync=1", 1, true, true},
};

typedef struct lp_series {
    unsigned cnt;
    double v[LP_MAX_RUNS];
} lp_series;
static lp_series lp_res[W_COUNT][M_COUNT];
static bool lp_failed[W_COUNT];

static void lp_put_metric(unsigned w, unsigned m, double v)
{
    lp_series *s = &lp_res[w][m];
    if (s->cnt < LP_MAX_RUNS)
        s->v[s->cnt++] = v;
}

/* ---------------------------------------------------------------- options and state */
typedef struct lp_opts {
    uint64_t num, sync_num;
    unsigned runs, bloom_bits;
    const char *dir;
    bool json;
    double time_limit;
} lp_opts;

typedef struct lp_db {
    leveldb_t *db;
    leveldb_options_t *opt;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *ropt;
    leveldb_writeoptions_t *wopt, *wsync;
    char path[4096];
    uint8_t *present; /* bitmap of keys written, for the live-byte count */
    uint64_t n_keys;  /* key space of the db */
} lp_db;

static char *lp_gen;         /* LP_GEN_BYTES of value data, shared read-only */
static uint64_t lp_deadline; /* ns; op loops stop when passed */

static void lp_gen_init(void)
{
    uint64_t s = 301;
    lp_gen = malloc(LP_GEN_BYTES);
    if (lp_gen == NULL)
        lp_die("malloc", NULL);
    for (size_t pos = 0; pos < LP_GEN_BYTES; pos += LP_VALUE) {
        char piece[LP_VALUE / 2];
        size_t n = LP_GEN_BYTES - pos < LP_VALUE ? LP_GEN_BYTES - pos : LP_VALUE;
        for (size_t i = 0; i < sizeof piece; i++)
            piece[i] = (char)(' ' + (int)(lp_splitmix(&s) % 95));
        for (size_t i = 0; i < n; i++)
            lp_gen[pos + i] = piece[i % sizeof piece];
    }
}

static void lp_db_open(lp_db *d, const lp_opts *o, const char *name, uint64_t n_keys)
{
    char *err = NULL;
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s/%s", o->dir, name);
    d->opt = leveldb_options_create();
    d->cache = leveldb_cache_create_lru(8u << 20);
    leveldb_options_set_create_if_missing(d->opt, 1);
    leveldb_options_set_error_if_exists(d->opt, 1);
    leveldb_options_set_write_buffer_size(d->opt, 4u << 20);
    leveldb_options_set_cache(d->opt, d->cache);
    leveldb_options_set_compression(d->opt, leveldb_no_compression);
    if (o->bloom_bits > 0) {
        d->filter = leveldb_filterpolicy_create_bloom((int)o->bloom_bits);
        leveldb_options_set_filter_policy(d->opt, d->filter);
    }
    leveldb_destroy_db(d->opt, d->path, &err);
    if (err != NULL) {
        leveldb_free(err);
        err = NULL;
    }
    d->db = leveldb_open(d->opt, d->path, &err);
    lp_check(d->path, err);
    d->ropt = leveldb_readoptions_create();
    d->wopt = leveldb_writeoptions_create();
    d->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(d->wsync, 1);
    d->n_keys = n_keys;
    d->present = calloc((size_t)(n_keys / 8 + 1), 1);
    if (d->present == NULL)
        lp_die("calloc", NULL);
}

static void lp_db_destroy(lp_db *d)
{
    char *err = NULL;
    leveldb_close(d->db);
    leveldb_destroy_db(d->opt, d->path, &err);
    if (err != NULL) {
        fprintf(stderr, "leveldb_peer: destroy %s: %s\n", d->path, err);
        leveldb_free(err);
    }
    rmdir(d->path);
    leveldb_readoptions_destroy(d->ropt);
    leveldb_writeoptions_destroy(d->wopt);
    leveldb_writeoptions_destroy(d->wsync);
    leveldb_options_destroy(d->opt);
    leveldb_cache_destroy(d->cache);
    if (d->filter != NULL)
        leveldb_filterpolicy_destroy(d->filter);
    free(d->present);
}

/* Wait until LevelDB's background flushes/compactions are done: no growth of the process's
 * write_bytes and no change of "leveldb.stats" for 1 s (bounded by 120 s). */
static void lp_quiesce(lp_db *d)
{
    uint64_t wb = lp_write_bytes(), t0 = lp_now_ns();
    char *st = leveldb_property_value(d->db, "leveldb.stats");
    unsigned still = 0;

    while (still < 10 && lp_now_ns() - t0 < UINT64_C(120000000000)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        uint64_t wb2;
        char *st2;
        nanosleep(&ts, NULL);
        wb2 = lp_write_bytes();
        st2 = leveldb_property_value(d->db, "leveldb.stats");
        if (wb2 == wb && st != NULL && st2 != NULL && strcmp(st, st2) == 0)
            still++;
        else
            still = 0;
        wb = wb2;
        leveldb_free(st);
        st = st2;
    }
    leveldb_free(st);
}

/* ---------------------------------------------------------------- workers */
typedef enum { OP_FILLSEQ, OP_PUTRAND, OP_GET, OP_SEEK, OP_WRITER } lp_op;

typedef struct lp_worker {
    pthread_t th;
    lp_db *d;
    lp_op op;
    bool sync;
    uint64_t n, seed, done, found, t_start, t_end;
    bool truncated;
    atomic_bool *stop; /* OP_WRITER: runs until set */
    lp_hist *h;
} lp_worker;

static void *lp_worker_run(void *arg)
{
    lp_worker *w = arg;
    lp_db *d = w->d;
    uint64_t rng = w->seed, gpos = (w->seed % 1024) * LP_VALUE;
    const leveldb_writeoptions_t *wo = w->sync ? d->wsync : d->wopt;
    char key[LP_KEY];
    volatile unsigned sink = 0;
    char *err = NULL;

    w->t_start = lp_now_ns();
    for (uint64_t i = 0; w->op == OP_WRITER || i < w->n; i++) {
        uint64_t k, t0, t1;
        if ((i & 255) == 0) {
            uint64_t now = lp_now_ns();
            if (w->op == OP_WRITER ? atomic_load(w->stop) : now > lp_deadline) {
                w->truncated = w->op != OP_WRITER;
                break;
            }
        }
        k = w->op == OP_FILLSEQ ? i : lp_splitmix(&rng) % d->n_keys;
        lp_key(key, k);
        if (w->op == OP_FILLSEQ || w->op == OP_PUTRAND || w->op == OP_WRITER) {
            if (gpos + LP_VALUE > LP_GEN_BYTES)
                gpos = 0;
            t0 = lp_now_ns();
            leveldb_put(d->db, wo, key, LP_KEY, lp_gen + gpos, LP_VALUE, &err);
            t1 = lp_now_ns();
            lp_check("put", err);
            gpos += LP_VALUE;
            d->present[k / 8] |= (uint8_t)(1u << (k % 8));
        } else if (w->op == OP_GET) {
            size_t vlen = 0;
            char *v;
            t0 = lp_now_ns();
            v = leveldb_get(d->db, d->ropt, key, LP_KEY, &vlen, &err);
            t1 = lp_now_ns();
            lp_check("get", err);
            if (v != NULL) {
                w->found++;
                sink += (unsigned char)v[0] + (unsigned char)v[vlen - 1];
                leveldb_free(v);
            }
        } else {
            leveldb_iterator_t *it;
            t0 = lp_now_ns();
            it = leveldb_create_iterator(d->db, d->ropt);
            leveldb_iter_seek(it, key, LP_KEY);
            if (leveldb_iter_valid(it)) {
                size_t kl, vl;
                const char *ik = leveldb_iter_key(it, &kl);
                if (kl == LP_KEY && memcmp(ik, key, LP_KEY) == 0)
                    w->found++;
                for (unsigned j = 0; j < LP_NEXTS && leveldb_iter_valid(it); j++) {
                    const char *v = leveldb_iter_value(it, &vl);
                    sink += (unsigned char)v[0];
                    leveldb_iter_next(it);
                }
            }
            leveldb_iter_get_error(it, &err);
            leveldb_iter_destroy(it);
            t1 = lp_now_ns();
            lp_check("iterator", err);
        }
        if (w->h != NULL)
            lp_hist_add(w->h, t1 - t0);
        w->done++;
    }
    w->t_end = lp_now_ns();
    (void)sink;
    return NULL;
}

/* Runs workload @wi on @d with the measured threads (and a writer for readwhilewriting) and
 * records its metrics. */
static void lp_run_workload(unsigned wi, lp_db *d, uint64_t n, unsigned run)
{
    const lp_workload *wl = &lp_w[wi];
    lp_worker ws[3];
    lp_hist *hs[2];
    lp_hist total;
    atomic_bool stop = false;
    unsigned nt = wl->threads;
    uint64_t wb0, t_start = UINT64_MAX, t_end = 0, done = 0, found = 0;
    lp_op op = wi == W_FILLSEQ ? OP_FILLSEQ
               : wl->write     ? OP_PUTRAND
               : wi == W_SEEK  ? OP_SEEK
                               : OP_GET;
    bool truncated = false;

    lp_reset_hwm();
    wb0 = lp_write_bytes();
    memset(&total, 0, sizeof total);
    memset(ws, 0, sizeof ws);
    for (unsigned i = 0; i < nt; i++) {
        hs[i] = calloc(1, sizeof(lp_hist));
        if (hs[i] == NULL)
            lp_die("calloc", NULL);
        ws[i] = (lp_worker){.d = d,
                            .op = op,
                            .sync = wl->sync,
                            .n = n,
                            .seed = 1000u * run + 10u * wi + i + 1,
                            .h = hs[i]};
    }
    if (wi == W_RWW)
        ws[nt] = (lp_worker){
            .d = d, .op = OP_WRITER, .seed = 1000u * run + 999u, .stop = &stop, .h = NULL};
    if (wi == W_RWW && pthread_create(&ws[nt].th, NULL, lp_worker_run, &ws[nt]) != 0)
        lp_die("pthread_create", NULL);
    for (unsigned i = 0; i < nt; i++)
        if (pthread_create(&ws[i].th, NULL, lp_worker_run, &ws[i]) != 0)
            lp_die("pthread_create", NULL);
    for (unsigned i = 0; i < nt; i++) {
        pthread_join(ws[i].th, NULL);
        lp_hist_merge(&total, hs[i]);
        done += ws[i].done;
        found += ws[i].found;
        truncated |= ws[i].truncated;
        if (ws[i].t_start < t_start)
            t_start = ws[i].t_start;
        if (ws[i].t_end > t_end)
            t_end = ws[i].t_end;
        free(hs[i]);
    }
    if (wi == W_RWW) {
        atomic_store(&stop, true);
        pthread_join(ws[nt].th, NULL);
    }
    double secs = (double)(t_end - t_start) / 1e9;
    lp_put_metric(wi, M_OPS, secs > 0 ? (double)done / secs : 0.0);
    lp_put_metric(wi, M_P50, lp_hist_us(&total, 0.50));
    lp_put_metric(wi, M_P99, lp_hist_us(&total, 0.99));
    lp_put_metric(wi, M_P999, lp_hist_us(&total, 0.999));
    lp_put_metric(wi, M_SECS, secs);
    if (wl->write) {
        uint64_t live = 0;
        lp_quiesce(d);
        for (uint64_t i = 0; i < d->n_keys / 8 + 1; i++)
            live += (uint64_t)__builtin_popcount(d->present[i]);
        double user = (double)done * (LP_KEY + LP_VALUE);
        double wb = (double)(lp_write_bytes() - wb0);
        lp_put_metric(wi, M_WAMP, user > 0 ? wb / user : 0.0);
        lp_put_metric(wi, M_SAMP,
                      live ? (double)lp_du(d->path) / ((double)live * (LP_KEY + LP_VALUE)) : 0.0);
    } else {
        lp_put_metric(wi, M_FOUND, done ? 100.0 * (double)found / (double)done : 0.0);
    }
    lp_put_metric(wi, M_RSS, lp_hwm_mib());
    if (truncated) {
        lp_failed[wi] = true;
        fprintf(stderr, "leveldb_peer: %s %s stopped by the time limit after %" PRIu64 " ops\n",
                wl->name, wl->variant, done);
    }
    fprintf(stderr, "leveldb_peer: run %u %-16s %-9s %9.0f ops/s  p99 %.1f us\n", run + 1, wl->name,
            wl->variant, secs > 0 ? (double)done / secs : 0.0, lp_hist_us(&total, 0.99));
}

/* ---------------------------------------------------------------- output */
static int lp_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct lp_sum {
    double median, min, max, spread;
} lp_sum;

static lp_sum lp_summarize(const lp_series *s)
{
    double v[LP_MAX_RUNS];
    lp_sum out = {0, 0, 0, 0};
    if (s->cnt == 0)
        return out;
    memcpy(v, s->v, s->cnt * sizeof(double));
    qsort(v, s->cnt, sizeof(double), lp_cmp);
    out.min = v[0];
    out.max = v[s->cnt - 1];
    out.median = (s->cnt % 2) ? v[s->cnt / 2] : (v[s->cnt / 2 - 1] + v[s->cnt / 2]) / 2.0;
    out.spread = out.median != 0.0 ? (out.max - out.min) / out.median : 0.0;
    return out;
}

static void lp_print(unsigned wi, const lp_opts *o, const char *version)
{
    const lp_workload *wl = &lp_w[wi];
    uint64_t n = wl->sync ? o->sync_num : o->num;
    char params[512];
    bool noisy_any = false, first = true;

    snprintf(params, sizeof params,
             "\"num\":%" PRIu64 ",\"key_bytes\":%d,\"value_bytes\":%d,\"threads\":%u,"
             "\"sync\":%s,\"seek_nexts\":%d,\"bloom_bits\":%u,\"write_buffer\":%u,"
             "\"block_cache\":%u,\"compression\":\"none\"",
             n, LP_KEY, LP_VALUE, wl->threads, wl->sync ? "true" : "false",
             wi == W_SEEK ? LP_NEXTS : 0, o->bloom_bits, 4u << 20, 8u << 20);
    if (o->json) {
        printf("{\"bench\":\"kv\",\"peer\":\"leveldb\",\"version\":\"%s\",\"workload\":\"%s\","
               "\"variant\":\"%s\",\"ok\":%s,\"runs\":%u,\"params\":{%s},\"metrics\":{",
               version, wl->name, wl->variant, lp_failed[wi] ? "false" : "true",
               lp_res[wi][M_OPS].cnt, params);
        for (unsigned m = 0; m < M_COUNT; m++) {
            const lp_series *s = &lp_res[wi][m];
            lp_sum su;
            if (s->cnt == 0)
                continue;
            su = lp_summarize(s);
            noisy_any |= su.spread > LP_NOISY;
            printf("%s\"%s\":{\"unit\":\"%s\",\"median\":%.10g,\"min\":%.10g,\"max\":%.10g,"
                   "\"spread\":%.4f,\"noisy\":%s,\"values\":[",
                   first ? "" : ",", lp_mname[m], lp_munit[m], su.median, su.min, su.max, su.spread,
                   su.spread > LP_NOISY ? "true" : "false");
            for (unsigned j = 0; j < s->cnt; j++)
                printf("%s%.10g", j ? "," : "", s->v[j]);
            printf("]}");
            first = false;
        }
        printf("},\"noisy\":%s}\n", noisy_any ? "true" : "false");
    } else {
        printf("%s %s%s  (num=%" PRIu64 "%s)\n", wl->name, wl->variant,
               lp_failed[wi] ? "  FAILED" : "", n, wi == W_SEEK ? ", seek + 10 next" : "");
        printf("  %-12s %12s %12s %12s %8s\n", "metric", "median", "min", "max", "spread");
        for (unsigned m = 0; m < M_COUNT; m++) {
            const lp_series *s = &lp_res[wi][m];
            lp_sum su;
            if (s->cnt == 0)
                continue;
            su = lp_summarize(s);
            printf("  %-12s %12.4g %12.4g %12.4g %7.1f%%%s\n", lp_mname[m], su.median, su.min,
                   su.max, su.spread * 100.0, su.spread > LP_NOISY ? "  NOISY (spread > 30%)" : "");
        }
        printf("\n");
    }
    fflush(stdout);
}

/* ---------------------------------------------------------------- main */
static void lp_usage(void)
{
    fprintf(stderr, "usage: leveldb_peer [--num N] [--sync-num N] [--runs N] [--dir D] [--json]\n"
                    "                    [--bloom-bits B] [--time-limit S]\n"
                    "  --num         keys (and ops per workload), default 1000000\n"
                    "  --sync-num    puts of fillrandom sync=1, default 20000\n"
                    "  --runs        repetitions, each on fresh db directories (default 3)\n"
                    "  --dir         parent of the scratch db directories (default /tmp)\n"
                    "  --json        one JSON object per workload (bench/README.md)\n"
                    "  --bloom-bits  Bloom filter bits per key, 0 = none (default 10)\n"
                    "  --time-limit  seconds per op loop before it stops (default 600)\n");
}

static uint64_t lp_num(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0') {
        fprintf(stderr, "leveldb_peer: bad number '%s'\n", s);
        exit(2);
    }
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    lp_opts o = {1000000, 20000, 3, 10, "/tmp", false, 600.0};
    char version[32], base[4096], name[64];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--json") == 0)
            o.json = true;
        else if (strcmp(a, "--num") == 0 && has)
            o.num = lp_num(argv[++i]);
        else if (strcmp(a, "--sync-num") == 0 && has)
            o.sync_num = lp_num(argv[++i]);
        else if (strcmp(a, "--runs") == 0 && has)
            o.runs = (unsigned)lp_num(argv[++i]);
        else if (strcmp(a, "--bloom-bits") == 0 && has)
            o.bloom_bits = (unsigned)lp_num(argv[++i]);
        else if (strcmp(a, "--time-limit") == 0 && has)
            o.time_limit = (double)lp_num(argv[++i]);
        else if (strcmp(a, "--dir") == 0 && has)
            o.dir = argv[++i];
        else {
            lp_usage();
            return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 ? 0 : 2;
        }
    }
    if (o.num == 0 || o.sync_num == 0 || o.runs == 0 || o.runs > LP_MAX_RUNS) {
        fprintf(stderr, "leveldb_peer: --num, --sync-num > 0; 1 <= --runs <= %d\n", LP_MAX_RUNS);
        return 2;
    }
    if (o.runs < 3)
        fprintf(stderr, "leveldb_peer: warning: %u run(s); medians need >= 3\n", o.runs);
    snprintf(version, sizeof version, "%d.%d", leveldb_major_version(), leveldb_minor_version());
    snprintf(base, sizeof base, "%s/leveldb-peer-%ld", o.dir, (long)getpid());
    if (mkdir(base, 0755) != 0 && errno != EEXIST)
        lp_die(base, strerror(errno));
    o.dir = base;
    lp_gen_init();
    fprintf(stderr,
            "leveldb_peer: LevelDB %s, num=%" PRIu64 ", sync-num=%" PRIu64
            ", runs=%u, write buffer 4 MiB, block cache 8 MiB, bloom %u bits/key%s, no "
            "compression\n",
            version, o.num, o.sync_num, o.runs, o.bloom_bits, o.bloom_bits ? "" : " (none)");

    for (unsigned r = 0; r < o.runs; r++) {
        lp_db d;
        snprintf(name, sizeof name, "r%u-fillseq", r);
        lp_db_open(&d, &o, name, o.num);
        lp_deadline = lp_now_ns() + (uint64_t)(o.time_limit * 1e9);
        lp_run_workload(W_FILLSEQ, &d, o.num, r);
        lp_db_destroy(&d);

        snprintf(name, sizeof name, "r%u-random", r);
        lp_db_open(&d, &o, name, o.num);
        for (unsigned w = W_FILLRANDOM; w <= W_RWW; w++) {
            lp_deadline = lp_now_ns() + (uint64_t)(o.time_limit * 1e9);
            lp_run_workload(w, &d, o.num, r);
        }
        lp_db_destroy(&d);

        snprintf(name, sizeof name, "r%u-sync", r);
        lp_db_open(&d, &o, name, o.sync_num);
        lp_deadline = lp_now_ns() + (uint64_t)(o.time_limit * 1e9);
        lp_run_workload(W_FILLSYNC, &d, o.sync_num, r);
        lp_db_destroy(&d);
    }
    rmdir(base);
    if (!o.json)
        printf("LevelDB %s: write buffer 4 MiB, block cache 8 MiB, bloom %u bits/key, no "
               "compression; keys 16 B, values 100 B; medians of %u runs\n\n",
               version, o.bloom_bits, o.runs);
    for (unsigned w = 0; w < W_COUNT; w++)
        lp_print(w, &o, version);
    free(lp_gen);
    return 0;
}

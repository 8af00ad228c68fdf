/* wb_vec.c -- `weir bench vec`: build an IVF-PQ index from .fvecs files and measure recall@k
 * and queries per second over a sweep of nprobe, at 1 and 2 threads, with the JSON lines that
 * bench/vec-peers.sh joins with bench/peers/faiss_vec.py's (same schema, "engine":"faiss").
 *
 * Build: every base vector is inserted (keys are row numbers) into an in-memory index with
 * automatic training off, then vec_train() trains on a sample (nlist * 256 vectors, like
 * Faiss's max_points_per_centroid) and encodes everything. train_s is the quantizer training
 * (coarse k-means + PQ codebooks), add_s the insertion plus the encoding of every vector --
 * the same split as Faiss's train() and add(). bytes_per_vector counts what the lists hold
 * (PQ code + 4-byte slot id + 4-byte distance term); index_bytes_per_vector adds the exact
 * vector and per-slot metadata weir always keeps (for re-ranking, exact search, retraining).
 *
 * Search: for each re-rank factor (--refine takes a list, like faiss_vec.py: one build, one
 * configuration per factor), thread count and nprobe, the query set is searched as one batch
 * (vec_search_batch, split over the threads) --runs times after one untimed warm-up pass;
 * QPS is queries / wall seconds, reported as the median with min and max. --single also
 * measures one vec_search call per query on one thread (the latency-bound way an agent asks).
 * recall@k = |top-k ∩ true top-k| / k, averaged over the queries, against --gt (.ivecs).
 *
 * scan4: the 4-bit fast-scan kernel alone, over 8 M vectors of m codes in blocks of 32 (m/2
 * bytes per vector, 128 MiB at m = 32: well past the caches), median of 5 passes, in vectors/s
 * and GB/s of codes read, and as a fraction of the ~41 GB/s one thread reads on this machine
 * (shared/BENCHMARKING.md). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"
#include "vec_kern.h"
#include "wb.h"
#include "wb_util.h"

#define WV_FAMILY     "vec"
#define WV_MAX_POINTS 32
#define WV_BANDWIDTH  41.0 /* GB/s, one thread, this machine kind */

typedef struct wv_opts {
    const char *base, *query, *gt;
    uint32_t nlist, m, nbits, k, runs;
    uint32_t nprobe[WV_MAX_POINTS], nprobe_cnt;
    uint32_t refine[8], refine_cnt;
    uint32_t threads[4], threads_cnt;
    vec_metric metric;
    bool json, single, no_scan4;
} wv_opts;

static bool wv_list_from(const char *s, uint32_t *out, uint32_t cap, uint32_t *cnt, uint32_t min,
                         uint32_t max)
{
    *cnt = 0;
    while (*s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v < min || v > max || *cnt == cap)
            return false;
        out[(*cnt)++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return false;
    }
    return *cnt > 0;
}

static bool wv_list(const char *s, uint32_t *out, uint32_t cap, uint32_t *cnt, uint32_t max)
{
    return wv_list_from(s, out, cap, cnt, 1, max);
}

static void wv_list_print(char *buf, size_t cap, const uint32_t *v, uint32_t cnt)
{
    size_t at = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < cnt && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ",%u" : "%u", v[i]);
}

static void wv_usage(FILE *f)
{
    fprintf(f, "usage: weir bench vec --base F.fvecs --query F.fvecs --gt F.ivecs [flags]\n\n"
               "Builds an IVF-PQ index from --base and measures recall@k and queries/s over a\n"
               "sweep of nprobe, at each thread count; also the 4-bit scan kernel's rate.\n\n"
               "  --nlist N        coarse lists (default 1024)\n"
               "  --m M            PQ sub-quantizers (default 32; must divide the dimension)\n"
               "  --nbits 8|4      code bits per sub-quantizer (4 = fast-scan layout; default 8)\n"
               "  --nprobe LIST    comma-separated nprobe values (default 1,2,4,8,16,32,64)\n"
               "  --refine LIST    re-rank k*R candidates with exact vectors; a list (0,8,16)\n"
               "                   measures each factor on the one build (default 0 = off)\n"
               "  --k K            neighbours per query (default 10)\n"
               "  --threads LIST   thread counts (default 1,2)\n"
               "  --runs N         timed repetitions per point (default 3; medians need >= 3)\n"
               "  --metric l2|ip|cosine   (default l2; the ground truth must match it)\n"
               "  --single         also time one search call per query (1 thread)\n"
               "  --no-scan4       skip the scan-kernel measurement\n"
               "  --json           one JSON object per line on stdout instead of tables\n\n"
               "Data sets: weir bench vec-gen; the Faiss comparison: bench/vec-peers.sh.\n");
}

static double wv_recall(const vec_hit *hits, const uint32_t *cnt, size_t nq, uint32_t k,
                        const int32_t *gt, uint32_t gt_dim)
{
    size_t found = 0;
    for (size_t i = 0; i < nq; i++)
        for (uint32_t a = 0; a < k; a++)
            for (uint32_t b = 0; b < cnt[i]; b++)
                if (strtol(hits[i * k + b].key, NULL, 10) == gt[i * gt_dim + a]) {
                    found++;
                    break;
                }
    return (double)found / (double)(nq * k);
}

/* Fast-scan kernel rate; returns false when there is no memory. */
static bool wv_scan4(uint32_t m, bool json)
{
    const size_t n = (size_t)8 << 20, nb = n / VK_BLOCK, bytes = nb * m * 16;
    uint8_t *codes = malloc(bytes), lut[256 * 16];
    uint16_t *out = malloc(VK_BLOCK * 1024 * sizeof(uint16_t));
    if (!codes || !out) {
        free(codes);
        free(out);
        return false;
    }
    uint64_t s = 7;
    for (size_t i = 0; i < bytes; i++) { /* also pre-faults the buffer */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        codes[i] = (uint8_t)(s >> 56);
    }
    for (size_t i = 0; i < sizeof lut; i++)
        lut[i] = (uint8_t)(i * 37);
    const vk_ops *k = vk_get();
    double rate[5];
    volatile uint32_t sink = 0;
    for (int r = -1; r < 5; r++) { /* one warm-up pass */
        uint64_t t0 = wr_now_ns();
        for (size_t b = 0; b < nb; b += 1024) {
            size_t cnt = nb - b < 1024 ? nb - b : 1024;
            k->pq_scan4(codes + b * m * 16, cnt, m, lut, out);
            sink += out[0];
        }
        if (r >= 0)
            rate[r] = (double)n / ((double)(wr_now_ns() - t0) / 1e9);
    }
    (void)sink;
    wb_summary sm = wb_summarize(rate, 5);
    double gbs = sm.median * m / 2 / 1e9;
    if (json)
        printf("{\"engine\":\"weir\",\"event\":\"scan4\",\"kernel\":\"%s\",\"m\":%u,"
               "\"vectors_per_s\":%.0f,\"gb_per_s\":%.2f,\"fraction_of_bandwidth\":%.3f,"
               "\"bandwidth_gb_per_s\":%.1f,\"spread\":%.3f}\n",
               k->name, m, sm.median, gbs, gbs / WV_BANDWIDTH, WV_BANDWIDTH, sm.spread);
    else
        printf("\n4-bit fast scan (%s kernel, m=%u, 1 thread, %zu MiB of codes): %.0f M "
               "vectors/s = %.1f GB/s = %.0f%% of %.0f GB/s%s\n",
               k->name, m, bytes >> 20, sm.median / 1e6, gbs, 100 * gbs / WV_BANDWIDTH,
               WV_BANDWIDTH, sm.spread > 0.3 ? "  NOISY (spread > 30%)" : "");
    free(codes);
    free(out);
    return true;
}

static int wv_run(const wv_opts *o)
{
    uint32_t dim, qdim, gdim;
    size_t n, nq, ng;
    float *base = NULL, *q = NULL, *gtf = NULL;
    vec_index *ix = NULL;
    char **keys = NULL;
    vec_hit *hits = NULL;
    uint32_t *cnt = NULL;
    int rc = 1;
    wr_status st;
    if ((st = vec_fvecs_read(o->base, false, &dim, &n, &base)) != WR_OK ||
        (st = vec_fvecs_read(o->query, false, &qdim, &nq, &q)) != WR_OK ||
        (st = vec_fvecs_read(o->gt, true, &gdim, &ng, &gtf)) != WR_OK) {
        wb_say_fail(WV_FAMILY, "reading the data", st);
        goto out;
    }
    if (qdim != dim || ng < nq || gdim < o->k) {
        wb_say(WV_FAMILY,
               "data mismatch: base dim %u, query dim %u, %zu queries, %zu ground "
               "truth rows of %u (need >= k = %u)",
               dim, qdim, nq, ng, gdim, o->k);
        goto out;
    }
    const int32_t *gt = (const int32_t *)(const void *)gtf;
    vec_options vo;
    vec_options_init(&vo);
    vo.dim = dim;
    vo.metric = o->metric;
    vo.nlist = o->nlist;
    vo.m = o->m;
    vo.nbits = o->nbits;
    vo.train_threshold = UINT64_MAX; /* trained explicitly below */
    vo.background = false;
    vo.drift_ratio = 0;
    vo.train_threads = 2;
    if ((st = vec_open(NULL, &vo, &ix)) != WR_OK) {
        wb_say_fail(WV_FAMILY, "opening the index", st);
        goto out;
    }
    keys = malloc(n * sizeof(char *));
    char *kbuf = keys ? malloc(n * 12) : NULL;
    if (!kbuf) {
        wb_say(WV_FAMILY, "no memory for %zu keys", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = kbuf + i * 12;
        snprintf(keys[i], 12, "%u", (unsigned)i);
    }
    char rl[64];
    wv_list_print(rl, sizeof rl, o->refine, o->refine_cnt);
    wb_say(WV_FAMILY, "%zu x %u base, %zu queries; nlist %u, m %u, nbits %u, refine %s", n, dim, nq,
           o->nlist, o->m, o->nbits, rl);
    uint64_t t0 = wr_now_ns();
    for (size_t i = 0; i < n; i += 8192) {
        size_t c = n - i < 8192 ? n - i : 8192;
        if ((st = vec_upsert_batch(ix, 0, c, (const char *const *)keys + i, base + i * dim,
                                   NULL)) != WR_OK) {
            wb_say_fail(WV_FAMILY, "inserting", st);
            goto out_keys;
        }
    }
    double insert_s = (double)(wr_now_ns() - t0) / 1e9;
    if ((st = vec_train(ix, true)) != WR_OK) {
        wb_say_fail(WV_FAMILY, "training", st);
        goto out_keys;
    }
    vec_stats s;
    vec_get_stats(ix, &s);
    /* lists: code + slot id + the entry's distance term (vec_list.term) */
    double bpv = (double)(s.code_bytes + 8 * s.live) / (double)s.live;
    /* plus the exact vector, key offset, agent, time, list, position, tombstone per slot */
    double ibpv = bpv + 4.0 * dim + 8 + 4 + 8 + 4 + 4 + 1;
    if (o->json) /* one line per re-rank factor, like faiss_vec.py: each is a configuration */
        for (uint32_t ri = 0; ri < o->refine_cnt; ri++)
            printf("{\"engine\":\"weir\",\"version\":\"%s\",\"event\":\"build\",\"n\":%zu,"
                   "\"dim\":%u,\"nlist\":%u,\"m\":%u,\"nbits\":%u,\"refine\":%u,"
                   "\"train_s\":%.3f,\"add_s\":%.3f,\"bytes_per_vector\":%.1f,"
                   "\"index_bytes_per_vector\":%.1f,\"train_points\":%" PRIu64
                   ",\"train_niter\":10,\"kernel\":\"%s\"}\n",
                   WR_VERSION, n, dim, s.nlist, s.m, s.nbits, o->refine[ri], s.last_train_s,
                   insert_s + s.last_encode_s, bpv, ibpv, s.trained_on, vk_get()->name);
    else
        printf("weir %s, %s kernels: %zu x %u, nlist %u, m %u, nbits %u\n"
               "  train %.2f s (%" PRIu64 " vectors), add %.2f s, %.1f bytes/vector in lists "
               "(%.1f with the exact vectors kept)\n",
               WR_VERSION, vk_get()->name, n, dim, s.nlist, s.m, s.nbits, s.last_train_s,
               s.trained_on, insert_s + s.last_encode_s, bpv, ibpv);

    hits = malloc(nq * o->k * sizeof(vec_hit));
    cnt = malloc(nq * sizeof(uint32_t));
    if (!hits || !cnt) {
        wb_say(WV_FAMILY, "no memory for results");
        goto out_keys;
    }
    if (!o->json)
        printf("\n%-7s %-7s %-7s %-7s %-8s %12s %10s %10s\n", "mode", "refine", "threads", "nprobe",
               "recall", "QPS", "min", "max");
    for (uint32_t mode = 0; mode < (o->single ? 2u : 1u); mode++) {
        for (uint32_t ri = 0; ri < o->refine_cnt; ri++) {
            for (uint32_t ti = 0; ti < (mode ? 1 : o->threads_cnt); ti++) {
                uint32_t threads = mode ? 1 : o->threads[ti];
                for (uint32_t pi = 0; pi < o->nprobe_cnt; pi++) {
                    vec_query vq;
                    vec_query_init(&vq);
                    vq.k = o->k;
                    vq.nprobe = o->nprobe[pi];
                    vq.refine = o->refine[ri];
                    vq.threads = threads;
                    double qps[16], rec = 0;
                    for (int r = -1; r < (int)o->runs; r++) {
                        uint64_t a = wr_now_ns();
                        if (mode == 0) {
                            st = vec_search_batch(ix, q, nq, &vq, hits, cnt);
                        } else {
                            for (size_t i = 0; i < nq && st == WR_OK; i++)
                                st = vec_search(ix, q + i * dim, &vq, hits + i * o->k, &cnt[i]);
                        }
                        double sec = (double)(wr_now_ns() - a) / 1e9;
                        if (st != WR_OK) {
                            wb_say_fail(WV_FAMILY, "searching", st);
                            goto out_keys;
                        }
                        if (r >= 0)
                            qps[r] = (double)nq / sec;
                        else
                            rec = wv_recall(hits, cnt, nq, o->k, gt, gdim);
                    }
                    wb_summary sm = wb_summarize(qps, o->runs);
                    if (o->json)
                        printf("{\"engine\":\"weir\",\"event\":\"search\",\"mode\":\"%s\","
                               "\"threads\":%u,\"nprobe\":%u,\"refine\":%u,\"k\":%u,"
                               "\"recall\":%.4f,\"qps\":%.1f,\"qps_min\":%.1f,\"qps_max\":%.1f,"
                               "\"runs\":%u}\n",
                               mode ? "single" : "batch", threads, o->nprobe[pi], o->refine[ri],
                               o->k, rec, sm.median, sm.min, sm.max, o->runs);
                    else
                        printf("%-7s %-7u %-7u %-7u %-8.4f %12.0f %10.0f %10.0f%s\n",
                               mode ? "single" : "batch", o->refine[ri], threads, o->nprobe[pi],
                               rec, sm.median, sm.min, sm.max, sm.spread > 0.3 ? "  NOISY" : "");
                    fflush(stdout);
                }
            }
        }
    }
    if (!o->no_scan4 && !wv_scan4(o->m ? (o->m % 2 ? o->m + 1 : o->m) : 32, o->json))
        wb_say(WV_FAMILY, "no memory for the scan measurement");
    rc = 0;
out_keys:
    if (keys)
        free(keys[0]);
out:
    free(keys);
    free(hits);
    free(cnt);
    vec_close(ix);
    wr_free(base);
    wr_free(q);
    wr_free(gtf);
    return rc;
}

int wb_vec_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"base", required_argument, NULL, 'b'},
                                             {"query", required_argument, NULL, 'q'},
                                             {"gt", required_argument, NULL, 'g'},
                                             {"nlist", required_argument, NULL, 'L'},
                                             {"m", required_argument, NULL, 'm'},
                                             {"nbits", required_argument, NULL, 'B'},
                                             {"nprobe", required_argument, NULL, 'p'},
                                             {"refine", required_argument, NULL, 'R'},
                                             {"k", required_argument, NULL, 'k'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"runs", required_argument, NULL, 'r'},
                                             {"metric", required_argument, NULL, 'M'},
                                             {"single", no_argument, NULL, 's'},
                                             {"no-scan4", no_argument, NULL, 'S'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    wv_opts o = {0};
    o.nlist = 1024;
    o.m = 32;
    o.nbits = 8;
    o.k = 10;
    o.runs = 3;
    uint32_t one;
    const char *dflt_np = "1,2,4,8,16,32,64";
    wv_list(dflt_np, o.nprobe, WV_MAX_POINTS, &o.nprobe_cnt, 1u << 20);
    o.refine_cnt = 1; /* refine[0] = 0: no re-rank */
    o.threads[0] = 1;
    o.threads[1] = 2;
    o.threads_cnt = 2;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'b':
            o.base = optarg;
            break;
        case 'q':
            o.query = optarg;
            break;
        case 'g':
            o.gt = optarg;
            break;
        case 'L':
            ok = wv_list(optarg, &o.nlist, 1, &one, 1u << 20);
            break;
        case 'm':
            ok = wv_list(optarg, &o.m, 1, &one, 4096);
            break;
        case 'B':
            ok = wv_list(optarg, &o.nbits, 1, &one, 8) && (o.nbits == 4 || o.nbits == 8);
            break;
        case 'p':
            ok = wv_list(optarg, o.nprobe, WV_MAX_POINTS, &o.nprobe_cnt, 1u << 20);
            break;
        case 'R':
            ok = wv_list_from(optarg, o.refine, 8, &o.refine_cnt, 0, 64);
            break;
        case 'k':
            ok = wv_list(optarg, &o.k, 1, &one, 1024);
            break;
        case 't':
            ok = wv_list(optarg, o.threads, 4, &o.threads_cnt, 64);
            break;
        case 'r':
            ok = wv_list(optarg, &o.runs, 1, &one, 16);
            break;
        case 'M':
            ok = true;
            if (strcmp(optarg, "l2") == 0)
                o.metric = VEC_L2;
            else if (strcmp(optarg, "ip") == 0)
                o.metric = VEC_IP;
            else if (strcmp(optarg, "cosine") == 0)
                o.metric = VEC_COSINE;
            else
                ok = false;
            break;
        case 's':
            o.single = true;
            break;
        case 'S':
            o.no_scan4 = true;
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            wv_usage(stdout);
            return 0;
        default:
            wv_usage(stderr);
            return 2;
        }
        if (!ok) {
            wb_say(WV_FAMILY, "bad value '%s' (see --help for each flag's range)", optarg);
            return 2;
        }
    }
    if (!o.base || !o.query || !o.gt) {
        wb_say(WV_FAMILY, "--base, --query and --gt are required (make them with `weir bench "
                          "vec-gen`)");
        wv_usage(stderr);
        return 2;
    }
    if (o.runs < 3)
        wb_say(WV_FAMILY, "warning: --runs %u; medians need at least 3", o.runs);
    return wv_run(&o);
}

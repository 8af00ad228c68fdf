/* weir_vec.c -- `weir vec build|info|verify|retrain` and `weir search`: the IVF-PQ vector index
 * (vec.h) from the command line.
 *
 *   weir vec build   --index DIR --fvecs F [creation flags]   load F, train, calibrate, save
 *   weir vec info    --index DIR [--json]                      vec_get_stats + calibration
 *   weir vec verify  --index DIR                               vec_verify: every checksum
 *   weir vec retrain --index DIR [--recall-targets T]          vec_train now, save
 *   weir search      --index DIR (--vector JSON | --fvecs F)   the k nearest keys per query
 *
 * An index is a directory: a MANIFEST and the files it names (vec.h, docs/formats/ivf.md).
 * Every command opens it with vec_open(DIR, NULL), so the options stored in the MANIFEST win;
 * only build creates an index, from its flags, when DIR holds no MANIFEST. Creation flags
 * given to build for an existing index must agree with it (they cannot change it).
 *
 * Build. Row i of F gets the key "<prefix><i>" and goes to partition i % P; rows go in with
 * vec_upsert_batch, one call per partition per load step (an existing key is replaced). Before
 * anything is written every row is checked (finite; not zero for cosine), so a bad file leaves
 * the index as it was. The library trains by itself, in a background thread, once the index
 * holds train_threshold live vectors. A load step is at least WV_CHUNK_MIN rows, so a small
 * file goes in as one batch and that training sees all of it. When the training started before
 * the load was complete (vectors were added after it: added_since_train > 0), build trains
 * again with vec_train(ix, true), so that the quantizers of a new index are fit on all of F.
 * An index that was trained before the build keeps its quantizers (new vectors are encoded
 * with them; the library retrains on drift; `weir vec retrain` forces it). Then, unless
 * --no-calibrate, vec_calibrate() maps recall targets to nprobe/refine, and vec_save().
 *
 * The CLI's default train threshold is 1,000 rather than the library's 10,000: a build is a
 * bulk load, and at 1,000 vectors the 256-entry PQ codebooks already have ~4 points per entry
 * in every subspace; below it brute force is as fast as a probe.
 *
 * Exit status: 0 ok; 1 data: an unreadable or damaged file, no index, a failed training or
 * save; 2 usage: a bad flag, or inputs that do not fit the index (a query or F of another
 * dimension, creation flags that differ from the index's). */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "vec.h"
#include "weir_util.h"

#define WV_ARGS_MAX       128     /* words on one command line (the -k pre-pass copies them) */
#define WV_CHUNK_MIN      8192u   /* rows per load step: at least this, else ~10% of F */
#define WV_PROGRESS_MIN   100000u /* rows from which build reports progress on stderr */
#define WV_FILTER_MAX     16u     /* --filter given at most this many times */
#define WV_TARGETS_MAX    8u      /* vec_stats holds 8 calibration points */
#define WV_KEY_MAX        4096u   /* the index takes keys up to this many bytes */
#define WV_THRESHOLD_DFLT 1000u
#define WV_CALIB_SAMPLE   200u
#define WV_CALIB_K        10u
#define WV_DEFAULT_NPROBE 8u /* vec.h: vec_query.nprobe 0 and no calibration: 8 */

#define WV_FLAGS(t) .flags = (t), .flag_cnt = sizeof(t) / sizeof((t)[0])
#define WV_INDEX_FLAG                                                                              \
    {                                                                                              \
        .name = "index", .metavar = "DIR", .help = "the index directory (required)"                \
    }
#define WV_JSON_FLAG                                                                               \
    {                                                                                              \
        .name = "json", .metavar = NULL, .help = "one JSON object instead of text"                 \
    }
#define WV_TARGETS_FLAG(dflt)                                                                      \
    {                                                                                              \
        .name = "recall-targets", .metavar = "R,R,..",                                             \
        .help = "recall@10 targets in (0, 1] to calibrate nprobe/refine for, at most 8 " dflt      \
    }

/* ---------------------------------------------------------------- helpers */
static const char *wv_val(const wt_cmd *c, const char *name)
{
    const wt_flag *f = wt_flag_get(c, name);
    return f ? f->val : NULL;
}

static bool wv_has(const wt_cmd *c, const char *name)
{
    return wv_val(c, name) != NULL;
}

/* Flags through wt_cmd_parse(), then --index, which every command needs. */
static int wv_parse(const wt_cmd *c, int argc, char **argv)
{
    const char *dir;
    int rc = wt_cmd_parse(c, argc, argv);

    if (rc != WT_EXIT_OK)
        return rc;
    dir = wv_val(c, "index");
    if (dir == NULL || *dir == '\0')
        return wt_usage_err(c, "--index DIR is required: the index directory");
    return WT_EXIT_OK;
}

/* A decimal number in [lo, hi] (lo excluded when @lo_open), the whole of @s. */
static bool wv_parse_real(const char *s, double lo, double hi, bool lo_open, double *out)
{
    char *end;
    double v;

    if (*s == '\0' || *s == ' ')
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v > hi || v < lo || (lo_open && v == lo))
        return false;
    *out = v;
    return true;
}

/* The recall targets of --recall-targets (or @dflt when absent): 1..8 numbers in (0, 1]. */
static bool wv_parse_targets(const wt_cmd *c, const char *dflt, float *t, uint32_t *cnt)
{
    const char *v = wv_val(c, "recall-targets"), *s;
    char item[64];

    if (v == NULL)
        v = dflt;
    *cnt = 0;
    for (s = v;;) {
        size_t len = strcspn(s, ",");
        double d;

        if (len == 0 || len >= sizeof item) {
            wt_usage_err(c, "--recall-targets '%s': %s", v,
                         len == 0 ? "an empty item (give numbers separated by commas)"
                                  : "an item is too long");
            return false;
        }
        memcpy(item, s, len);
        item[len] = '\0';
        if (!wv_parse_real(item, 0, 1, true, &d)) {
            wt_usage_err(c, "--recall-targets: '%s' is not a recall in (0, 1], like 0.95", item);
            return false;
        }
        if (*cnt == WV_TARGETS_MAX) {
            wt_usage_err(c, "--recall-targets: at most %u targets", WV_TARGETS_MAX);
            return false;
        }
        t[(*cnt)++] = (float)d;
        s += len;
        if (*s == '\0')
            break;
        s++;
    }
    return true;
}

/* "<dir>/MANIFEST" exists: tells "no index here" from "a file the MANIFEST names is gone". */
static bool wv_manifest_exists(const char *dir)
{
    char p[4200];

    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    return access(p, F_OK) == 0;
}

static int wv_open_err(const wt_cmd *c, const char *dir, wr_status st)
{
    switch (st) {
    case WR_ERR_NOTFOUND:
        if (!wv_manifest_exists(dir)) {
            wt_err(c->name, WR_OK,
                   "no vector index in %s (build one with: weir vec build --index %s --fvecs F)",
                   dir, dir);
            break;
        }
        wt_err(c->name, st,
               "the index in %s is incomplete: a file its MANIFEST names is missing (restore it "
               "from a copy or rebuild the index with weir vec build)",
               dir);
        break;
    case WR_ERR_CORRUPT:
        wt_err(c->name, st,
               "the index in %s is damaged (list the damage with: weir vec verify --index %s; "
               "restore the named file from a copy or rebuild with weir vec build)",
               dir, dir);
        break;
    case WR_ERR_UNSUPPORTED:
        wt_err(c->name, st, "the index in %s was written by a newer weir (use that version)", dir);
        break;
    case WR_ERR_NOMEM:
        wt_err(c->name, st, "not enough memory to load the index in %s", dir);
        break;
    default:
        wt_err(c->name, st, "cannot open the index in %s (check that the directory is readable)",
               dir);
        break;
    }
    return WT_EXIT_DATA;
}

/* Open the existing index in --index. Returns an exit code; failures are explained. */
static int wv_open(const wt_cmd *c, vec_index **out)
{
    const char *dir = wv_val(c, "index");
    wr_status st;

    wr_err_clear();
    if ((st = vec_open(dir, NULL, out)) == WR_OK)
        return WT_EXIT_OK;
    *out = NULL;
    return wv_open_err(c, dir, st);
}

static int wv_save(const wt_cmd *c, vec_index *ix)
{
    wr_status st;

    wr_err_clear();
    if ((st = vec_save(ix)) == WR_OK)
        return WT_EXIT_OK;
    wt_err(c->name, st,
           "saving the index in %s failed; the files of the previous save are untouched (check "
           "free space and permissions, then run the command again)",
           wv_val(c, "index"));
    return WT_EXIT_DATA;
}

static int wv_stdout_done(const wt_cmd *c, int rc)
{
    if (fflush(stdout) != 0 && rc == WT_EXIT_OK) {
        wt_err(c->name, WR_OK, "writing to standard output failed");
        return WT_EXIT_DATA;
    }
    return rc;
}

/* Rows of F that the index would refuse: a non-finite value, or for cosine a zero vector. */
static bool wv_rows_check(const wt_cmd *c, const char *path, const float *v, size_t n, uint32_t dim,
                          vec_metric metric)
{
    for (size_t i = 0; i < n; i++) {
        const float *r = v + i * dim;
        bool zero = true;

        for (uint32_t t = 0; t < dim; t++) {
            if (!isfinite(r[t])) {
                wt_err(c->name, WR_OK, "%s: row %zu has a non-finite value at [%" PRIu32 "]", path,
                       i, t);
                return false;
            }
            zero = zero && r[t] == 0.0f;
        }
        if (zero && metric == VEC_COSINE) {
            wt_err(c->name, WR_OK,
                   "%s: row %zu is all zeros, which has no direction for the cosine metric", path,
                   i);
            return false;
        }
    }
    return true;
}

/* A float as the double with the fewest decimal digits that reads back as it, so that JSON
 * shows 0.95 and not 0.949999988079071. */
static double wv_short(float f)
{
    char s[32];

    snprintf(s, sizeof s, "%.7g", (double)f);
    return strtod(s, NULL);
}

/* Print @j as one compact line (reals with 15 significant digits) and release it. */
static bool wv_json_emit(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;

    json_decref(j);
    if (s == NULL)
        return false;
    fputs(s, stdout);
    fputc('\n', stdout);
    wr_free(s); /* main() routes jansson's allocations through wr_malloc */
    return true;
}

/* ---------------------------------------------------------------- stats output */
static const char *wv_plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* "the training needs this many live vectors": nlist lists (16 at least when chosen
 * automatically) and one vector per PQ codebook entry (vec.h, vec_train). */
static uint64_t wv_train_needs(uint32_t nlist, uint32_t nbits)
{
    uint64_t ksub = nbits == 4 ? 16 : 256, nl = nlist ? nlist : 16;
    return nl > ksub ? nl : ksub;
}

static void wv_calib_print(const vec_stats *s, const char *dir, const char *in)
{
    if (s->calib_cnt == 0) {
        if (s->trained)
            printf("%scalibration: none (--recall cannot be used; make one with: weir vec "
                   "retrain --index %s --recall-targets 0.9,0.95,0.99)\n",
                   in, dir);
        else
            printf("%scalibration: none (not trained: every search is exact)\n", in);
        return;
    }
    printf("%scalibration: recall@%" PRIu32 ", made on quantizer version %" PRIu64 "%s\n", in,
           s->calib_k, s->calib_version,
           s->calib_version == s->quant_version ? " (current)"
                                                : " (stale: the quantizer changed since)");
    printf("%s  %-8s %6s %6s %9s\n", in, "target", "nprobe", "refine", "measured");
    for (uint32_t i = 0; i < s->calib_cnt && i < WV_TARGETS_MAX; i++) {
        const vec_calib_point *p = &s->calib[i];
        printf("%s  %-8g %6" PRIu32 " %6" PRIu32 " %9.3f%s\n", in, (double)p->recall, p->nprobe,
               p->refine, (double)p->measured,
               p->measured < p->recall ? "  (not met: the best setting measured)" : "");
    }
}

static void wv_drift_print(const vec_stats *s, const char *in)
{
    if (!s->trained) {
        printf("%sdrift: none (not trained)\n", in);
        return;
    }
    printf("%sdrift: coarse error %.6g recent vs %.6g trained (ratio %.3f over %" PRIu64
           " vector%s added since training); imbalance %.3f vs %.3f trained\n",
           in, s->recent_err, s->trained_err, s->drift, s->added_since_train,
           wv_plural(s->added_since_train, "", "s"), s->imbalance, s->trained_imbalance);
}

static void wv_stats_print(const char *dir, const vec_stats *s)
{
    printf("index %s\n", dir);
    printf("  metric %s, dim %" PRIu32 ", %" PRIu32 " partition%s\n", vec_metric_name(s->metric),
           s->dim, s->partitions, wv_plural(s->partitions, "", "s"));
    if (s->trained)
        printf("  state: trained (IVF-PQ search), quantizer version %" PRIu64
               ", trained on %" PRIu64 " vectors%s\n",
               s->quant_version, s->trained_on, s->training ? "; a training is running" : "");
    else
        printf("  state: not trained (exact brute-force search)%s\n",
               s->training ? "; a training is running" : "");
    printf("  vectors: %" PRIu64 " live, %" PRIu64 " deleted, %" PRIu64 " slots\n", s->live,
           s->deleted, s->slots);
    if (s->trained) {
        printf("  quantizer: nlist %" PRIu32 ", m %" PRIu32 ", nbits %" PRIu32 "\n", s->nlist, s->m,
               s->nbits);
    } else {
        char nl[16];
        snprintf(nl, sizeof nl, "%" PRIu32, s->nlist);
        printf("  quantizer: nlist %s, m %" PRIu32 "%s, nbits %" PRIu32
               " (used when it trains; a training needs %" PRIu64 " live vectors)\n",
               s->nlist ? nl : "auto", s->m ? s->m : (s->nbits == 4 ? s->dim / 2 : s->dim / 4),
               s->m ? "" : " (default)", s->nbits, wv_train_needs(s->nlist, s->nbits));
    }
    printf("  bytes: %" PRIu64 " of PQ codes, %" PRIu64 " of vectors\n", s->code_bytes,
           s->vector_bytes);
    wv_drift_print(s, "  ");
    wv_calib_print(s, dir, "  ");
}

static json_t *wv_calib_json(const vec_stats *s)
{
    json_t *pts, *o;

    if (s->calib_cnt == 0)
        return json_null();
    if ((pts = json_array()) == NULL)
        return NULL;
    for (uint32_t i = 0; i < s->calib_cnt && i < WV_TARGETS_MAX; i++) {
        const vec_calib_point *p = &s->calib[i];
        if (json_array_append_new(
                pts, json_pack("{s:f, s:I, s:I, s:f}", "target", wv_short(p->recall), "nprobe",
                               (json_int_t)p->nprobe, "refine", (json_int_t)p->refine, "measured",
                               wv_short(p->measured))) != 0) {
            json_decref(pts);
            return NULL;
        }
    }
    o = json_pack("{s:I, s:I, s:b, s:o}", "k", (json_int_t)s->calib_k, "quant_version",
                  (json_int_t)s->calib_version, "current", s->calib_version == s->quant_version,
                  "points", pts); /* "o" steals pts, also on failure */
    return o;
}

static json_t *wv_stats_json(const char *dir, const vec_stats *s)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I}", "index", dir,
                          "metric", vec_metric_name(s->metric), "dim", (json_int_t)s->dim,
                          "partitions", (json_int_t)s->partitions, "trained", s->trained,
                          "training", s->training, "quant_version", (json_int_t)s->quant_version,
                          "live", (json_int_t)s->live, "deleted", (json_int_t)s->deleted, "slots",
                          (json_int_t)s->slots, "trained_on", (json_int_t)s->trained_on);
    json_t *q = json_pack("{s:I, s:I, s:I}", "nlist", (json_int_t)s->nlist, "m", (json_int_t)s->m,
                          "nbits", (json_int_t)s->nbits);
    json_t *d = json_pack("{s:f, s:f, s:f, s:I, s:f, s:f}", "recent_err", s->recent_err,
                          "trained_err", s->trained_err, "ratio", s->drift, "added_since_train",
                          (json_int_t)s->added_since_train, "imbalance", s->imbalance,
                          "trained_imbalance", s->trained_imbalance);
    json_t *cal = wv_calib_json(s);
    int bad = 0;

    if (o == NULL || q == NULL || d == NULL || cal == NULL) {
        json_decref(o);
        json_decref(q);
        json_decref(d);
        json_decref(cal);
        return NULL;
    }
    /* json_object_set_new() takes the value's reference also when it fails: no early exit */
    bad |= json_object_set_new(o, "quantizer", q);
    bad |= json_object_set_new(o, "code_bytes", json_integer((json_int_t)s->code_bytes));
    bad |= json_object_set_new(o, "vector_bytes", json_integer((json_int_t)s->vector_bytes));
    bad |= json_object_set_new(o, "drift", d);
    bad |= json_object_set_new(o, "calibration", cal);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------- build */
static wt_flag wv_build_flags[] = {
    WV_INDEX_FLAG,
    {.name = "fvecs", .metavar = "F", .help = "the vectors to add, a .fvecs file (required)"},
    {.name = "metric", .metavar = "l2|ip|cosine", .help = "distance of a new index (default: l2)"},
    {.name = "nlist",
     .metavar = "N",
     .help = "coarse lists of a new index (default: about 4 sqrt(n), chosen when it trains)"},
    {.name = "m",
     .metavar = "M",
     .help = "PQ sub-quantizers of a new index; must divide the dimension (default: dim/4, "
             "with --nbits 4: dim/2)"},
    {.name = "nbits",
     .metavar = "8|4",
     .help = "bits per PQ code of a new index (default: 8; 4 is the fast-scan layout)"},
    {.name = "partitions",
     .metavar = "P",
     .help = "partitions of a new index, 1..4096; row i goes to partition i % P (default: 1)"},
    {.name = "key-prefix",
     .metavar = "S",
     .help = "the key of row i is S followed by i (default: empty, so keys are 0, 1, ...)"},
    {.name = "train-threshold",
     .metavar = "N",
     .help = "a new index searches exactly below N live vectors and trains once it holds N "
             "(default: 1000, or --nlist when larger)"},
    WV_TARGETS_FLAG("(default: 0.9,0.95,0.99)"),
    {.name = "no-calibrate", .metavar = NULL, .help = "skip the recall calibration"},
};
static const wt_cmd wv_build_cmd = {
    .name = "weir vec build",
    .synopsis = "weir vec build --index DIR --fvecs F [--metric l2|ip|cosine] [--nlist N] [--m M] "
                "[--nbits 8|4] [--partitions P] [--key-prefix S] [--train-threshold N] "
                "[--recall-targets R,R,..] [--no-calibrate]",
    .about =
        "Create the index in DIR (or open the one there and add to it), insert every vector of "
        "F under the key <prefix><row> (row = 0-based row of F; an existing key is replaced), "
        "train the quantizers once the index holds --train-threshold vectors, calibrate nprobe "
        "and refine for the recall targets (recall@10 on 200 of the index's vectors), and "
        "save. Prints what was loaded, the training and the calibration table; large files "
        "report progress on stderr.\n"
        "--metric, --nlist, --m, --nbits, --partitions and --train-threshold apply when DIR "
        "holds no index yet; for an existing index they must match it (they cannot change "
        "it).\n"
        "Exit status: 0 done, 1 F or the index cannot be read, is damaged, or training or "
        "saving failed, 2 bad command line (also: F's dimension differs from the index's).",
    .examples = "  weir vec build --index ./idx --fvecs sift5k_base.fvecs --nlist 64 --m 32\n"
                "  weir vec build --index ./idx --fvecs more.fvecs --key-prefix batch2/\n"
                "  weir vec build --index ./cos --fvecs emb.fvecs --metric cosine --nbits 4 "
                "--partitions 4\n",
    WV_FLAGS(wv_build_flags),
};

typedef struct wv_build_opts {
    vec_options o; /* for a new index */
    bool given[6]; /* metric, nlist, m, nbits, partitions, train-threshold given */
    float targets[WV_TARGETS_MAX];
    uint32_t target_cnt;
    const char *prefix;
} wv_build_opts;

enum { WV_G_METRIC, WV_G_NLIST, WV_G_M, WV_G_NBITS, WV_G_PARTS, WV_G_THRESH };

/* The flags that do not depend on F. */
static int wv_build_flags_parse(const wt_cmd *c, wv_build_opts *b)
{
    const char *metric = wv_val(c, "metric");
    static const char *const names[] = {"metric", "nlist",      "m",
                                        "nbits",  "partitions", "train-threshold"};

    vec_options_init(&b->o);
    b->o.train_threshold = WV_THRESHOLD_DFLT;
    for (int i = 0; i < 6; i++)
        b->given[i] = wv_has(c, names[i]);
    if (!wv_has(c, "fvecs") || *wv_val(c, "fvecs") == '\0')
        return wt_usage_err(c, "--fvecs F is required: the vectors to add");
    if (metric == NULL || strcmp(metric, "l2") == 0)
        b->o.metric = VEC_L2;
    else if (strcmp(metric, "ip") == 0)
        b->o.metric = VEC_IP;
    else if (strcmp(metric, "cosine") == 0)
        b->o.metric = VEC_COSINE;
    else
        return wt_usage_err(c, "--metric must be l2, ip or cosine (got '%s')", metric);
    if (!wt_flag_u32(c, "nlist", 1, 1u << 20, &b->o.nlist) ||
        !wt_flag_u32(c, "m", 1, 4096, &b->o.m) || !wt_flag_u32(c, "nbits", 4, 8, &b->o.nbits) ||
        !wt_flag_u32(c, "partitions", 1, 4096, &b->o.partitions) ||
        !wt_flag_u64(c, "train-threshold", 1, UINT64_MAX, &b->o.train_threshold))
        return WT_EXIT_USAGE;
    if (b->o.nbits != 4 && b->o.nbits != 8)
        return wt_usage_err(c, "--nbits must be 8 or 4 (got %" PRIu32 ")", b->o.nbits);
    {
        uint64_t need = wv_train_needs(b->o.nlist, b->o.nbits);
        if (b->o.train_threshold < need && !b->given[WV_G_THRESH])
            b->o.train_threshold = need; /* the default, raised to what --nlist needs */
        if (b->o.train_threshold < need)
            return wt_usage_err(
                c,
                "--train-threshold %" PRIu64 " is below the %" PRIu64
                " vectors a training needs (%s%" PRIu32
                " lists and %u-entry codebooks for --nbits %" PRIu32 "); give at least %" PRIu64,
                b->o.train_threshold, need, b->o.nlist ? "" : "at least ",
                b->o.nlist ? b->o.nlist : 16u, b->o.nbits == 4 ? 16u : 256u, b->o.nbits, need);
    }
    if (!wv_has(c, "no-calibrate") &&
        !wv_parse_targets(c, "0.9,0.95,0.99", b->targets, &b->target_cnt))
        return WT_EXIT_USAGE;
    if (wv_has(c, "no-calibrate") && wv_has(c, "recall-targets"))
        return wt_usage_err(c, "give --recall-targets or --no-calibrate, not both");
    b->prefix = wv_has(c, "key-prefix") ? wv_val(c, "key-prefix") : "";
    if (strlen(b->prefix) + 20 > WV_KEY_MAX)
        return wt_usage_err(c,
                            "--key-prefix is %zu bytes; keys are at most %u bytes (prefix "
                            "and row number)",
                            strlen(b->prefix), WV_KEY_MAX);
    return WT_EXIT_OK;
}

/* m against the dimension of F, for a new index (the library says the same, less precisely). */
static int wv_build_check_m(const wt_cmd *c, const wv_build_opts *b, uint32_t dim)
{
    uint32_t m = b->o.m, nbits = b->o.nbits;
    bool dflt = m == 0;
    char div[256];
    size_t used = 0;

    if (dflt)
        m = nbits == 4 ? dim / 2 : dim / 4;
    if (m == 0)
        m = 1;
    if (dim % m == 0 && (nbits == 8 || (m % 2 == 0 && m <= 256)))
        return WT_EXIT_OK;
    div[0] = '\0';
    for (uint32_t d = 1; d <= dim && used + 12 < sizeof div; d++)
        if (dim % d == 0 && (nbits == 8 || (d % 2 == 0 && d <= 256)))
            used +=
                (size_t)snprintf(div + used, sizeof div - used, "%s%" PRIu32, used ? " " : "", d);
    if (dim % m != 0)
        return wt_usage_err(c,
                            "%s %" PRIu32 " does not divide the dimension %" PRIu32
                            " of %s; give --m as one of: %s",
                            dflt ? "the default m (dim/4)" : "--m", m, dim, wv_val(c, "fvecs"),
                            div[0] ? div : "(none)");
    return wt_usage_err(c,
                        "%s %" PRIu32 " does not fit --nbits 4, which needs an even m of at most "
                        "256 that divides the dimension %" PRIu32 "; give --m as one of: %s",
                        dflt ? "the default m (dim/2)" : "--m", m, dim, div[0] ? div : "(none)");
}

/* Creation flags given for an existing index must agree with it. */
static int wv_build_check_existing(const wt_cmd *c, const wv_build_opts *b, const vec_stats *s,
                                   uint32_t dim)
{
    const char *dir = wv_val(c, "index");
    uint32_t m_now = s->m ? s->m : (s->nbits == 4 ? s->dim / 2 : s->dim / 4);

    if (dim != s->dim)
        return wt_usage_err(
            c, "%s holds vectors of dimension %" PRIu32 "; the index in %s has dimension %" PRIu32,
            wv_val(c, "fvecs"), dim, dir, s->dim);
    if (b->given[WV_G_METRIC] && b->o.metric != s->metric)
        return wt_usage_err(c, "the index in %s uses metric %s; --metric %s cannot change it", dir,
                            vec_metric_name(s->metric), vec_metric_name(b->o.metric));
    if (b->given[WV_G_PARTS] && b->o.partitions != s->partitions)
        return wt_usage_err(c,
                            "the index in %s has %" PRIu32 " partitions; --partitions %" PRIu32
                            " cannot change it",
                            dir, s->partitions, b->o.partitions);
    if (b->given[WV_G_NBITS] && b->o.nbits != s->nbits)
        return wt_usage_err(
            c, "the index in %s has nbits %" PRIu32 "; --nbits %" PRIu32 " cannot change it", dir,
            s->nbits, b->o.nbits);
    if (b->given[WV_G_M] && b->o.m != m_now)
        return wt_usage_err(c,
                            "the index in %s has m %" PRIu32 "; --m %" PRIu32 " cannot change it",
                            dir, m_now, b->o.m);
    if (b->given[WV_G_NLIST] && b->o.nlist != s->nlist) {
        if (s->nlist == 0)
            return wt_usage_err(c,
                                "the index in %s chooses nlist when it trains; --nlist %" PRIu32
                                " cannot change it",
                                dir, b->o.nlist);
        return wt_usage_err(
            c, "the index in %s has nlist %" PRIu32 "; --nlist %" PRIu32 " cannot change it", dir,
            s->nlist, b->o.nlist);
    }
    if (b->given[WV_G_THRESH])
        return wt_usage_err(c,
                            "--train-threshold applies when an index is created; the index in "
                            "%s has its own (drop the flag, or train now with: weir vec retrain "
                            "--index %s)",
                            dir, dir);
    return WT_EXIT_OK;
}

/* Insert rows [0, n) of @v: one vec_upsert_batch per partition per step. */
static int wv_build_load(const wt_cmd *c, vec_index *ix, const wv_build_opts *b, const float *v,
                         size_t n, uint32_t dim, uint32_t parts)
{
    size_t chunk = n / 10 + 1, plen = strlen(b->prefix), next_pct = 10;
    char *keybuf = NULL, **keys = NULL;
    float *gather = NULL;
    int rc = WT_EXIT_OK;
    wr_status st;

    if (chunk < WV_CHUNK_MIN)
        chunk = WV_CHUNK_MIN;
    if (chunk > n)
        chunk = n;
    keybuf = wr_malloc(chunk * (plen + 21));
    keys = wr_malloc(chunk * sizeof(char *));
    if (parts > 1)
        gather = wr_malloc(((chunk + parts - 1) / parts) * dim * sizeof(float));
    if (keybuf == NULL || keys == NULL || (parts > 1 && gather == NULL)) {
        wt_err(c->name, WR_ERR_NOMEM, "no memory for a batch of %zu vectors", chunk);
        rc = WT_EXIT_DATA;
        goto out;
    }
    for (size_t lo = 0; lo < n; lo += chunk) {
        size_t hi = lo + chunk < n ? lo + chunk : n;

        for (uint32_t p = 0; p < parts; p++) {
            size_t cnt = 0, first = lo + (parts - lo % parts + p) % parts;
            char *kp = keybuf;

            for (size_t r = first; r < hi; r += parts) {
                keys[cnt] = kp;
                kp += (size_t)snprintf(kp, plen + 21, "%s%zu", b->prefix, r) + 1;
                if (parts > 1)
                    memcpy(gather + cnt * dim, v + r * dim, dim * sizeof(float));
                cnt++;
            }
            if (cnt == 0)
                continue;
            wr_err_clear();
            st = vec_upsert_batch(ix, p, cnt, (const char *const *)keys,
                                  parts > 1 ? gather : v + lo * dim, NULL);
            if (st != WR_OK) {
                wt_err(c->name, st,
                       "adding rows %zu..%zu of %s failed; nothing was saved, the index in %s "
                       "is as before",
                       lo, hi - 1, wv_val(c, "fvecs"), wv_val(c, "index"));
                rc = WT_EXIT_DATA;
                goto out;
            }
        }
        if (n >= WV_PROGRESS_MIN && hi * 100 >= next_pct * n) {
            fprintf(stderr, "%s: %zu%% (%zu of %zu vectors)\n", c->name, hi * 100 / n, hi, n);
            while (next_pct <= hi * 100 / n)
                next_pct += 10;
        }
    }
out:
    wr_free(gather);
    wr_free(keys);
    wr_free(keybuf);
    return rc;
}

static int wv_calibrate(const wt_cmd *c, vec_index *ix, const float *t, uint32_t cnt)
{
    wr_status st;

    wr_err_clear();
    if ((st = vec_calibrate(ix, t, cnt, WV_CALIB_SAMPLE, WV_CALIB_K)) == WR_OK)
        return WT_EXIT_OK;
    wt_err(c->name, st, "the recall calibration failed");
    return WT_EXIT_DATA;
}

static int wv_train(const wt_cmd *c, vec_index *ix)
{
    wr_status st;

    wr_err_clear();
    if ((st = vec_train(ix, true)) == WR_OK)
        return WT_EXIT_OK;
    wt_err(c->name, st, "training the index in %s failed; it keeps its previous state%s",
           wv_val(c, "index"),
           st == WR_ERR_INVAL ? " (add vectors with weir vec build, then train again)" : "");
    return WT_EXIT_DATA;
}

static int wv_build(int argc, char **argv)
{
    const wt_cmd *c = &wv_build_cmd;
    const char *dir, *path;
    wv_build_opts b;
    vec_index *ix = NULL;
    vec_stats s0, s;
    float *v = NULL;
    uint32_t dim = 0;
    size_t n = 0;
    bool created = false, was_trained;
    wr_status st;
    int rc = wv_parse(c, argc, argv);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if ((rc = wv_build_flags_parse(c, &b)) != WT_EXIT_OK)
        return rc;
    dir = wv_val(c, "index");
    path = wv_val(c, "fvecs");
    wr_err_clear();
    if ((st = vec_fvecs_read(path, false, &dim, &n, &v)) != WR_OK) {
        wt_err(c->name, st, "cannot read the vectors of --fvecs %s", path);
        return WT_EXIT_DATA;
    }
    wr_err_clear();
    st = vec_open(dir, NULL, &ix);
    if (st == WR_ERR_NOTFOUND && !wv_manifest_exists(dir)) {
        b.o.dim = dim;
        if ((rc = wv_build_check_m(c, &b, dim)) != WT_EXIT_OK)
            goto out;
        if (!wv_rows_check(c, path, v, n, dim, b.o.metric)) {
            rc = WT_EXIT_DATA;
            goto out;
        }
        wr_err_clear();
        if ((st = vec_open(dir, &b.o, &ix)) != WR_OK) {
            wt_err(c->name, st, "cannot create an index in %s", dir);
            rc = st == WR_ERR_INVAL ? WT_EXIT_USAGE : WT_EXIT_DATA;
            goto out;
        }
        created = true;
    } else if (st != WR_OK) {
        rc = wv_open_err(c, dir, st);
        goto out;
    }
    vec_get_stats(ix, &s0);
    if (!created && ((rc = wv_build_check_existing(c, &b, &s0, dim)) != WT_EXIT_OK ||
                     !wv_rows_check(c, path, v, n, dim, s0.metric))) {
        if (rc == WT_EXIT_OK)
            rc = WT_EXIT_DATA;
        goto out;
    }
    was_trained = s0.trained;
    if ((rc = wv_build_load(c, ix, &b, v, n, dim, s0.partitions)) != WT_EXIT_OK)
        goto out;
    vec_wait_idle(ix); /* a training the load started: let it finish */
    vec_get_stats(ix, &s);
    if (!was_trained && s.trained && s.added_since_train > 0 &&
        (rc = wv_train(c, ix)) != WT_EXIT_OK)
        goto out;
    if (!s.trained && s.live >= wv_train_needs(s.nlist, s.nbits) && created &&
        s.live >= b.o.train_threshold && (rc = wv_train(c, ix)) != WT_EXIT_OK)
        goto out; /* the background training failed (it logged why): say it as an error */
    vec_get_stats(ix, &s);
    if (s.trained && !wv_has(c, "no-calibrate") &&
        (rc = wv_calibrate(c, ix, b.targets, b.target_cnt)) != WT_EXIT_OK)
        goto out;
    if ((rc = wv_save(c, ix)) != WT_EXIT_OK)
        goto out;
    vec_get_stats(ix, &s);

    printf("index %s (%s): metric %s, dim %" PRIu32 ", %" PRIu32 " partition%s\n", dir,
           created ? "new" : "existing", vec_metric_name(s.metric), s.dim, s.partitions,
           wv_plural(s.partitions, "", "s"));
    printf("added %zu vector%s from %s as keys %s0..%s%zu: %" PRIu64 " live (was %" PRIu64
           "), %" PRIu64 " deleted\n",
           n, wv_plural(n, "", "s"), path, b.prefix, b.prefix, n ? n - 1 : 0, s.live, s0.live,
           s.deleted);
    if (s.trained && s.quant_version != s0.quant_version)
        printf("trained: quantizer version %" PRIu64 " on %" PRIu64 " vectors: nlist %" PRIu32
               ", m %" PRIu32 ", nbits %" PRIu32 " (train %.3f s, encode %.3f s)\n",
               s.quant_version, s.trained_on, s.nlist, s.m, s.nbits, s.last_train_s,
               s.last_encode_s);
    else if (s.trained)
        printf("quantizer: version %" PRIu64 " (nlist %" PRIu32 ", m %" PRIu32 ", nbits %" PRIu32
               ") encoded the new vectors; retrain with: weir vec retrain --index %s\n",
               s.quant_version, s.nlist, s.m, s.nbits, dir);
    else if (s.live < wv_train_needs(s.nlist, s.nbits))
        printf("not trained: the index stays in exact mode (brute-force search), because %" PRIu64
               " live vectors are too few to train %" PRIu64 "-entry codebooks and %s%" PRIu32
               " lists\n",
               s.live, s.nbits == 4 ? (uint64_t)16 : (uint64_t)256, s.nlist ? "" : "at least ",
               s.nlist ? s.nlist : 16u);
    else if (created)
        printf("not trained: the index stays in exact mode (brute-force search) until it holds "
               "%" PRIu64 " live vectors (--train-threshold; it has %" PRIu64 ")\n",
               b.o.train_threshold, s.live);
    else
        printf("not trained: the index stays in exact mode (brute-force search) until it holds "
               "the train threshold it was created with (it has %" PRIu64
               " live vectors); train it now with: weir vec retrain --index %s\n",
               s.live, dir);
    if (s.trained && !wv_has(c, "no-calibrate"))
        wv_calib_print(&s, dir, "");
    printf("saved: %" PRIu64 " bytes of vectors, %" PRIu64 " bytes of PQ codes\n", s.vector_bytes,
           s.code_bytes);
    rc = wv_stdout_done(c, WT_EXIT_OK);
out:
    vec_close(ix);
    wr_free(v);
    return rc;
}

/* ---------------------------------------------------------------- info */
static wt_flag wv_info_flags[] = {WV_INDEX_FLAG, WV_JSON_FLAG};
static const wt_cmd wv_info_cmd = {
    .name = "weir vec info",
    .synopsis = "weir vec info --index DIR [--json]",
    .about = "Print the index's state: metric, dimension, partitions, whether it is trained and "
             "its quantizer version, live/deleted vectors and slots, nlist/m/nbits, bytes of PQ "
             "codes and of vectors, drift (mean coarse error of the vectors added since the "
             "training against the training's, list imbalance against the training's) and the "
             "recall calibration: per target, the nprobe and refine a search with --recall "
             "uses, the recall measured, and the quantizer version and k it was measured on.\n"
             "Exit status: 0 done, 1 no index or it cannot be read, 2 bad command line.",
    .examples = "  weir vec info --index ./idx\n  weir vec info --index ./idx --json\n",
    WV_FLAGS(wv_info_flags),
};

static int wv_info(int argc, char **argv)
{
    const wt_cmd *c = &wv_info_cmd;
    vec_index *ix;
    vec_stats s;
    int rc = wv_parse(c, argc, argv);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if ((rc = wv_open(c, &ix)) != WT_EXIT_OK)
        return rc;
    vec_get_stats(ix, &s);
    vec_close(ix);
    if (wv_has(c, "json")) {
        if (!wv_json_emit(wv_stats_json(wv_val(c, "index"), &s))) {
            wt_err(c->name, WR_ERR_NOMEM, "printing the JSON failed");
            return WT_EXIT_DATA;
        }
    } else {
        wv_stats_print(wv_val(c, "index"), &s);
    }
    return wv_stdout_done(c, WT_EXIT_OK);
}

/* ---------------------------------------------------------------- verify */
static wt_flag wv_verify_flags[] = {WV_INDEX_FLAG};
static const wt_cmd wv_verify_cmd = {
    .name = "weir vec verify",
    .synopsis = "weir vec verify --index DIR",
    .about = "Check the MANIFEST and every file it names (quantizer; per partition the vectors, "
             "keys, tombstones and lists) against their sizes, checksums and structure, and "
             "that every live key is live once. Prints \"ok\" and what was checked, or the first "
             "problem, naming the damaged file.\n"
             "Exit status: 0 no damage, 1 damage found, no index or it cannot be read, 2 bad "
             "command line.",
    .examples = "  weir vec verify --index ./idx\n",
    WV_FLAGS(wv_verify_flags),
};

static int wv_verify(int argc, char **argv)
{
    const wt_cmd *c = &wv_verify_cmd;
    const char *dir;
    vec_index *ix = NULL;
    vec_stats s;
    wr_status st;
    int rc = wv_parse(c, argc, argv);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    dir = wv_val(c, "index");
    wr_err_clear();
    if ((st = vec_verify(dir)) != WR_OK) {
        if (st == WR_ERR_NOTFOUND && !wv_manifest_exists(dir)) {
            wt_err(c->name, WR_OK, "no vector index in %s (no MANIFEST)", dir);
        } else if (st == WR_ERR_CORRUPT || st == WR_ERR_NOTFOUND) {
            wt_err(c->name, st,
                   "the index in %s is damaged (restore the named file from a copy, or rebuild "
                   "the index with weir vec build)",
                   dir);
        } else {
            wt_err(c->name, st,
                   "verifying the index in %s could not finish (check that its files are "
                   "readable)",
                   dir);
        }
        return WT_EXIT_DATA;
    }
    /* The files passed; load the index too, which also says what the files hold. */
    wr_err_clear();
    if ((st = vec_open(dir, NULL, &ix)) != WR_OK)
        return wv_open_err(c, dir, st);
    vec_get_stats(ix, &s);
    vec_close(ix);
    printf("ok: index %s: MANIFEST, %s%" PRIu32 " partition%s x %u files (%s): sizes, "
           "checksums and structure match\n",
           dir, s.trained ? "quantizer file, " : "", s.partitions, wv_plural(s.partitions, "", "s"),
           s.trained ? 4u : 3u,
           s.trained ? "vectors, keys, tombstones, lists" : "vectors, keys, tombstones");
    printf("ok: %" PRIu64 " live key%s, each live once; %" PRIu64 " deleted; quantizer version "
           "%" PRIu64 "%s\n",
           s.live, wv_plural(s.live, "", "s"), s.deleted, s.quant_version,
           s.trained ? "" : " (not trained)");
    return wv_stdout_done(c, WT_EXIT_OK);
}

/* ---------------------------------------------------------------- retrain */
static wt_flag wv_retrain_flags[] = {
    WV_INDEX_FLAG,
    WV_TARGETS_FLAG("(default: the targets of the index's calibration, when it has one)"),
};
static const wt_cmd wv_retrain_cmd = {
    .name = "weir vec retrain",
    .synopsis = "weir vec retrain --index DIR [--recall-targets R,R,..]",
    .about = "Train the quantizers now on a fresh sample of the live vectors (also an index "
             "still in exact mode), re-encode every vector, redo the recall calibration when the "
             "index has one (or make one for --recall-targets), and save. Prints the drift "
             "before and after and the new quantizer version.\n"
             "Exit status: 0 done, 1 no index, too few vectors to train, or it cannot be read "
             "or saved, 2 bad command line.",
    .examples = "  weir vec retrain --index ./idx\n"
                "  weir vec retrain --index ./idx --recall-targets 0.8,0.9\n",
    WV_FLAGS(wv_retrain_flags),
};

static int wv_retrain(int argc, char **argv)
{
    const wt_cmd *c = &wv_retrain_cmd;
    float t[WV_TARGETS_MAX];
    uint32_t tcnt = 0;
    vec_index *ix;
    vec_stats s0, s;
    int rc = wv_parse(c, argc, argv);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if (wv_has(c, "recall-targets") && !wv_parse_targets(c, "", t, &tcnt))
        return WT_EXIT_USAGE;
    if ((rc = wv_open(c, &ix)) != WT_EXIT_OK)
        return rc;
    vec_get_stats(ix, &s0);
    if (!s0.trained && s0.live < wv_train_needs(s0.nlist, s0.nbits)) {
        /* said here, before vec_train() would fail and log it as a warning too */
        wt_err(c->name, WR_OK,
               "the index in %s has %" PRIu64 " live vectors, too few to train %" PRIu64
               "-entry codebooks and %s%" PRIu32 " lists; it stays in exact mode (add vectors "
               "with weir vec build)",
               wv_val(c, "index"), s0.live, s0.nbits == 4 ? (uint64_t)16 : (uint64_t)256,
               s0.nlist ? "" : "at least ", s0.nlist ? s0.nlist : 16u);
        rc = WT_EXIT_DATA;
        goto out;
    }
    if ((rc = wv_train(c, ix)) != WT_EXIT_OK)
        goto out;
    /* vec_train recalibrated for the stored targets when the index had a calibration. */
    if (tcnt > 0 && (rc = wv_calibrate(c, ix, t, tcnt)) != WT_EXIT_OK)
        goto out;
    if ((rc = wv_save(c, ix)) != WT_EXIT_OK)
        goto out;
    vec_get_stats(ix, &s);
    printf("index %s: quantizer version %" PRIu64 " -> %" PRIu64 ", trained on %" PRIu64
           " vectors: nlist %" PRIu32 ", m %" PRIu32 ", nbits %" PRIu32
           " (train %.3f s, encode %.3f s)\n",
           wv_val(c, "index"), s0.quant_version, s.quant_version, s.trained_on, s.nlist, s.m,
           s.nbits, s.last_train_s, s.last_encode_s);
    wv_drift_print(&s0, "before: ");
    wv_drift_print(&s, "after:  ");
    wv_calib_print(&s, wv_val(c, "index"), "");
    printf("saved\n");
    rc = wv_stdout_done(c, WT_EXIT_OK);
out:
    vec_close(ix);
    return rc;
}

/* ---------------------------------------------------------------- search */
static const char *wv_filter_all[WV_FILTER_MAX];
static wt_flag wv_search_flags[] = {
    WV_INDEX_FLAG,
    {.name = "vector",
     .metavar = "JSON",
     .help = "one query: a JSON array of numbers, as many as the index's dimension"},
    {.name = "fvecs", .metavar = "F", .help = "every vector of the .fvecs file F is a query"},
    {.name = "k", .metavar = "N", .help = "results per query, 1..4096 (default: 10; also -k N)"},
    {.name = "nprobe",
     .metavar = "N",
     .help = "lists probed (default: from --recall's calibration, else 8)"},
    {.name = "refine",
     .metavar = "R",
     .help = "re-rank the best k*R candidates by exact distance, 0..64 (default: from "
             "--recall's calibration, else 0 = off)"},
    {.name = "recall",
     .metavar = "R",
     .help = "take nprobe and refine from the index's calibration for recall R in (0, 1]"},
    {.name = "exact",
     .metavar = NULL,
     .help = "brute force over every vector (the ground truth; slow on big indexes)"},
    {.name = "filter",
     .metavar = "EXPR",
     .help = "agent=NAME, prefix=KEYPREFIX or time=FROM..TO (ms or ISO-8601 UTC, either side "
             "may be empty); several are combined with AND",
     .all = wv_filter_all,
     .all_cap = WV_FILTER_MAX},
    {.name = "json",
     .metavar = NULL,
     .help = "one JSON object per query: {\"query\":i,\"results\":[{\"key\",\"dist\",\"part\"}]}"},
};
static const wt_cmd wv_search_cmd = {
    .name = "weir search",
    .synopsis = "weir search --index DIR (--vector JSON | --fvecs F) [-k N] [--nprobe N] "
                "[--refine R] [--recall R] [--exact] [--filter EXPR]... [--json]",
    .about = "Print the k nearest live keys to each query, best first: rank, distance (squared "
             "L2 for l2, -<q,x> for ip, 1-cos for cosine; smaller is closer), partition and "
             "key. A trained index is searched with IVF-PQ (--nprobe, --refine, or --recall to "
             "use the calibration); an untrained one, or --exact, by brute force. Keys are "
             "printed with non-printable bytes escaped (\\xNN). Vectors added by weir vec build "
             "have no agent and time 0.\n"
             "Exit status: 0 done (also with no result), 1 no index, or it or F cannot be read, "
             "2 bad command line (also: a query whose dimension differs from the index's).",
    .examples = "  weir search --index ./idx --vector '[0.1, 0.2, ...]' -k 5\n"
                "  weir search --index ./idx --fvecs queries.fvecs --recall 0.95 --json\n"
                "  weir search --index ./idx --fvecs q.fvecs --filter prefix=docs/ "
                "--filter time=2026-01-01..\n",
    WV_FLAGS(wv_search_flags),
};

/* The AND of every --filter, as one vec_filter; @none when no key can match. */
typedef struct wv_filt {
    vec_filter f;
    bool any, none;
    int64_t lo, hi; /* time range, INT64_MIN/INT64_MAX when open */
} wv_filt;

static int wv_filter_parse(const wt_cmd *c, wv_filt *w)
{
    const wt_flag *fl = wt_flag_get(c, "filter");

    memset(w, 0, sizeof *w);
    w->lo = INT64_MIN;
    w->hi = INT64_MAX;
    for (uint32_t i = 0; i < fl->cnt; i++) {
        const char *e = fl->all[i], *v = strchr(e, '=');
        size_t klen = v ? (size_t)(v - e) : 0;

        if (v == NULL)
            return wt_usage_err(c,
                                "--filter '%s': expected agent=NAME, prefix=KEYPREFIX or "
                                "time=FROM..TO",
                                e);
        v++;
        w->any = true;
        if (klen == 5 && memcmp(e, "agent", 5) == 0) {
            if (*v == '\0')
                return wt_usage_err(c, "--filter agent= needs a name: agent=NAME");
            if (w->f.agent && strcmp(w->f.agent, v) != 0)
                w->none = true; /* a vector has one agent */
            w->f.agent = v;
        } else if (klen == 6 && memcmp(e, "prefix", 6) == 0) {
            const char *p = w->f.key_prefix;
            if (*v == '\0')
                return wt_usage_err(c, "--filter prefix= needs a key prefix: prefix=KEYPREFIX");
            if (p == NULL || strncmp(v, p, strlen(p)) == 0)
                w->f.key_prefix = v; /* the longer of two nested prefixes */
            else if (strncmp(p, v, strlen(v)) != 0)
                w->none = true;
        } else if (klen == 4 && memcmp(e, "time", 4) == 0) {
            const char *dots = strstr(v, "..");
            char from[64];
            int64_t lo = INT64_MIN, hi = INT64_MAX;
            size_t flen = dots ? (size_t)(dots - v) : 0;

            if (dots == NULL || flen >= sizeof from)
                return wt_usage_err(c,
                                    "--filter '%s': expected time=FROM..TO (ms since the epoch "
                                    "or ISO-8601 UTC like 2026-01-01T12:00:00Z; either side may "
                                    "be empty)",
                                    e);
            memcpy(from, v, flen);
            from[flen] = '\0';
            if (flen > 0 && !wt_parse_time_ms(from, &lo))
                return wt_usage_err(c,
                                    "--filter '%s': FROM '%s' is not a time (ms since the epoch "
                                    "or ISO-8601 UTC like 2026-01-01T12:00:00Z)",
                                    e, from);
            if (dots[2] != '\0' && !wt_parse_time_ms(dots + 2, &hi))
                return wt_usage_err(c,
                                    "--filter '%s': TO '%s' is not a time (ms since the epoch "
                                    "or ISO-8601 UTC like 2026-01-01T12:00:00Z)",
                                    e, dots + 2);
            if (lo > hi)
                return wt_usage_err(c, "--filter '%s': FROM is after TO", e);
            if (hi == 0) /* vec_filter reads time_max 0 as "no upper bound" */
                return wt_usage_err(c,
                                    "--filter '%s': an upper bound of 0 (1970-01-01T00:00:00Z) "
                                    "cannot be expressed; leave TO empty or give a later time",
                                    e);
            if (lo > w->lo)
                w->lo = lo;
            if (hi < w->hi)
                w->hi = hi;
            if (w->lo > w->hi)
                w->none = true;
        } else {
            return wt_usage_err(c, "--filter '%s': unknown kind '%.*s' (agent, prefix or time)", e,
                                (int)klen, e);
        }
    }
    w->f.time_min = w->lo;
    w->f.time_max = w->hi == INT64_MAX ? 0 : w->hi;
    return WT_EXIT_OK;
}

/* --vector: a JSON array of finite numbers within float range into a wr_malloc'd array. */
static int wv_vector_parse(const wt_cmd *c, const char *text, float **out, size_t *n_out)
{
    json_error_t je;
    json_t *a = json_loads(text, 0, &je);
    float *v;
    size_t n;

    *out = NULL;
    if (a == NULL)
        return wt_usage_err(c,
                            "--vector is not valid JSON: %s (at character %d); give an array "
                            "of numbers like [0.5, 1, 2]",
                            je.text, je.position);
    if (!json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return wt_usage_err(c, "--vector must be a non-empty JSON array of numbers, like "
                               "[0.5, 1, 2]");
    }
    n = json_array_size(a);
    if ((v = wr_malloc(n * sizeof(float))) == NULL) {
        json_decref(a);
        wt_err(c->name, WR_ERR_NOMEM, "no memory for a vector of %zu numbers", n);
        return WT_EXIT_DATA;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(a, i);
        double d = json_is_number(e) ? json_number_value(e) : (double)NAN;

        if (!isfinite(d) || fabs(d) > (double)FLT_MAX) {
            const char *why = json_is_number(e) ? "out of the range of a 32-bit float"
                                                : "not a number"; /* e dies with a */
            json_decref(a);
            wr_free(v);
            return wt_usage_err(c, "--vector: element [%zu] is %s", i, why);
        }
        v[i] = (float)d;
    }
    json_decref(a);
    *out = v;
    *n_out = n;
    return WT_EXIT_OK;
}

/* The -k pre-pass: wt_cmd_parse() takes long flags only, so "-k N" becomes "--k N" and "-kN"
 * "--k=N". Values of flags that take one are left alone. */
static int wv_short_k(const wt_cmd *c, int argc, char **argv, char **args, char *kbuf, size_t kcap)
{
    static char dashdash_k[] = "--k";
    bool kbuf_used = false;

    if (argc > WV_ARGS_MAX)
        return wt_usage_err(c, "too many arguments (at most %d)", WV_ARGS_MAX);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        args[i] = argv[i];
        if (strncmp(a, "--", 2) == 0 && strchr(a, '=') == NULL) {
            const wt_flag *f = wt_flag_get(c, a + 2);
            if (f && f->metavar && i + 1 < argc) {
                args[i + 1] = argv[i + 1];
                i++;
            }
        } else if (strcmp(a, "-k") == 0) {
            args[i] = dashdash_k;
        } else if (strncmp(a, "-k", 2) == 0 && !kbuf_used) {
            snprintf(kbuf, kcap, "--k=%s", a + 2 + (a[2] == '='));
            args[i] = kbuf;
            kbuf_used = true;
        }
    }
    return WT_EXIT_OK;
}

/* What the search uses, for the header line: explicit flags, else the calibration for
 * --recall, else the defaults (vec.h, vec_query). */
static void wv_knobs(const vec_stats *s, const vec_query *q, uint32_t *nprobe, uint32_t *refine,
                     const vec_calib_point **from)
{
    *nprobe = q->nprobe;
    *refine = q->refine;
    *from = NULL;
    if (q->recall > 0 && s->calib_cnt > 0 && (!q->nprobe || !q->refine)) {
        const vec_calib_point *best = &s->calib[s->calib_cnt - 1];
        for (uint32_t i = 0; i < s->calib_cnt; i++)
            if (s->calib[i].recall >= q->recall) {
                best = &s->calib[i];
                break;
            }
        if (!q->nprobe)
            *nprobe = best->nprobe;
        if (!q->refine)
            *refine = best->refine;
        *from = best;
    }
    if (!*nprobe)
        *nprobe = WV_DEFAULT_NPROBE;
}

static bool wv_hits_print(size_t qi, const vec_hit *h, uint32_t n, bool json, const char *how)
{
    if (json) {
        json_t *o = json_object(), *r = json_array();
        bool ok = o && r;

        for (uint32_t i = 0; ok && i < n; i++) {
            json_t *e = json_object();
            ok = e && wt_json_set_bytes(e, "key", wr_bytes_str(h[i].key)) &&
                 json_object_set_new(e, "dist", json_real(wv_short(h[i].dist))) == 0 &&
                 json_object_set_new(e, "part", json_integer((json_int_t)h[i].part)) == 0;
            if (json_array_append_new(r, e) != 0)
                ok = false;
        }
        ok = ok && json_object_set_new(o, "query", json_integer((json_int_t)qi)) == 0 &&
             json_object_set(o, "results", r) == 0;
        json_decref(r);
        if (!ok) {
            json_decref(o);
            return false;
        }
        return wv_json_emit(o);
    }
    printf("query %zu: %" PRIu32 " result%s (%s)\n", qi, n, wv_plural(n, "", "s"), how);
    if (n > 0)
        printf("%4s  %-14s %4s  %s\n", "rank", "distance", "part", "key");
    for (uint32_t i = 0; i < n; i++) {
        printf("%4" PRIu32 "  %-14.9g %4" PRIu32 "  ", i + 1, (double)h[i].dist, h[i].part);
        wt_print_escaped(stdout, wr_bytes_str(h[i].key), SIZE_MAX);
        putchar('\n');
    }
    return true;
}

int wt_search_main(int argc, char **argv)
{
    const wt_cmd *c = &wv_search_cmd;
    char *args[WV_ARGS_MAX], kbuf[64], how[160];
    const char *vec_json, *fvecs;
    const vec_calib_point *from;
    float *qv = NULL;
    vec_hit *hits = NULL;
    vec_index *ix = NULL;
    vec_query q;
    vec_stats s;
    wv_filt wf;
    size_t nq = 0;
    uint32_t qdim = 0, nprobe, refine;
    bool json;
    wr_status st;
    double recall = 0;
    int rc = wv_short_k(c, argc, argv, args, kbuf, sizeof kbuf);

    if (rc == WT_EXIT_OK)
        rc = wv_parse(c, argc, args);
    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    vec_query_init(&q);
    json = wv_has(c, "json");
    vec_json = wv_val(c, "vector");
    fvecs = wv_val(c, "fvecs");
    if ((vec_json == NULL) == (fvecs == NULL))
        return wt_usage_err(c, "give one of --vector JSON or --fvecs F%s",
                            vec_json ? ", not both" : "");
    if (!wt_flag_u32(c, "k", 1, 4096, &q.k) || !wt_flag_u32(c, "nprobe", 1, 1u << 20, &q.nprobe) ||
        !wt_flag_u32(c, "refine", 0, 64, &q.refine))
        return WT_EXIT_USAGE;
    if (wv_has(c, "recall")) {
        if (!wv_parse_real(wv_val(c, "recall"), 0, 1, true, &recall))
            return wt_usage_err(c, "--recall: '%s' is not a recall in (0, 1], like 0.95",
                                wv_val(c, "recall"));
        q.recall = (float)recall;
    }
    q.exact = wv_has(c, "exact");
    if ((rc = wv_filter_parse(c, &wf)) != WT_EXIT_OK)
        return rc;
    q.filter = wf.any ? &wf.f : NULL;
    if (vec_json) {
        size_t n = 0;
        if ((rc = wv_vector_parse(c, vec_json, &qv, &n)) != WT_EXIT_OK)
            return rc;
        nq = 1;
        qdim = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    } else {
        wr_err_clear();
        if ((st = vec_fvecs_read(fvecs, false, &qdim, &nq, &qv)) != WR_OK) {
            wt_err(c->name, st, "cannot read the queries of --fvecs %s", fvecs);
            return WT_EXIT_DATA;
        }
        if (!wv_rows_check(c, fvecs, qv, nq, qdim, VEC_L2)) { /* before any output */
            rc = WT_EXIT_DATA;
            goto out;
        }
    }
    if ((rc = wv_open(c, &ix)) != WT_EXIT_OK)
        goto out;
    vec_get_stats(ix, &s);
    if (qdim != s.dim && vec_json) {
        rc = wt_usage_err(c,
                          "--vector has %" PRIu32 " number%s; the index in %s holds vectors of "
                          "dimension %" PRIu32 " (give %" PRIu32 " numbers)",
                          qdim, wv_plural(qdim, "", "s"), wv_val(c, "index"), s.dim, s.dim);
        goto out;
    }
    if (qdim != s.dim) {
        rc = wt_usage_err(c,
                          "%s holds vectors of dimension %" PRIu32
                          "; the index in %s holds vectors of dimension %" PRIu32,
                          fvecs, qdim, wv_val(c, "index"), s.dim);
        goto out;
    }
    if (!s.trained && !q.exact && (q.nprobe || q.refine || q.recall > 0))
        fprintf(stderr,
                "%s: note: the index is not trained, so every search is exact; --nprobe, "
                "--refine and --recall do not apply\n",
                c->name);
    else if (s.trained && !q.exact && q.recall > 0 && s.calib_cnt == 0)
        fprintf(stderr,
                "%s: note: the index has no calibration, so --recall cannot choose nprobe and "
                "refine (using nprobe %" PRIu32 ", refine %" PRIu32 "); make one with: weir vec "
                "retrain --index %s --recall-targets 0.9,0.95,0.99\n",
                c->name, q.nprobe ? q.nprobe : WV_DEFAULT_NPROBE, q.refine, wv_val(c, "index"));
    wv_knobs(&s, &q, &nprobe, &refine, &from);
    if (q.exact || !s.trained) {
        snprintf(how, sizeof how, "exact");
    } else if (from) {
        snprintf(how, sizeof how,
                 "IVF-PQ, nprobe %" PRIu32 ", refine %" PRIu32 "; calibrated for recall %g, "
                 "measured %.3f",
                 nprobe, refine, (double)from->recall, (double)from->measured);
    } else {
        snprintf(how, sizeof how, "IVF-PQ, nprobe %" PRIu32 ", refine %" PRIu32, nprobe, refine);
    }
    if ((hits = wr_malloc((size_t)q.k * sizeof(vec_hit))) == NULL) {
        wt_err(c->name, WR_ERR_NOMEM, "no memory for %" PRIu32 " results", q.k);
        rc = WT_EXIT_DATA;
        goto out;
    }
    for (size_t i = 0; i < nq; i++) {
        uint32_t cnt = 0;

        if (!wf.none) {
            wr_err_clear();
            if ((st = vec_search(ix, qv + i * s.dim, &q, hits, &cnt)) != WR_OK) {
                fflush(stdout);
                wt_err(c->name, st, "query %zu: the search failed", i);
                rc = WT_EXIT_DATA; /* the flags were checked: the query's values are bad */
                goto out;
            }
        }
        if (!wv_hits_print(i, hits, cnt, json, how)) {
            wt_err(c->name, WR_ERR_NOMEM, "printing the JSON failed");
            rc = WT_EXIT_DATA;
            goto out;
        }
    }
    rc = wv_stdout_done(c, WT_EXIT_OK);
out:
    vec_close(ix);
    wr_free(hits);
    wr_free(qv);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */
typedef struct wv_sub {
    const char *name;
    int (*main)(int argc, char **argv);
    const wt_cmd *cmd;
    const char *about;
} wv_sub;

static const wv_sub wv_subs[] = {
    {"build", wv_build, &wv_build_cmd,
     "create or extend an index from an .fvecs file, train, "
     "calibrate, save"},
    {"info", wv_info, &wv_info_cmd, "state, sizes, drift and the recall calibration"},
    {"verify", wv_verify, &wv_verify_cmd, "check every file of the index against its checksums"},
    {"retrain", wv_retrain, &wv_retrain_cmd, "train the quantizers again now, recalibrate, save"},
};
#define WV_SUB_CNT (sizeof wv_subs / sizeof wv_subs[0])

static void wv_help(FILE *f)
{
    fprintf(f, "usage: weir vec <command> --index DIR [flags]\n\n"
               "Build, inspect, check and retrain an IVF-PQ vector index in directory DIR;\n"
               "query it with 'weir search --index DIR'.\n\ncommands:\n");
    for (size_t i = 0; i < WV_SUB_CNT; i++)
        fprintf(f, "  %-8s  %s\n", wv_subs[i].name, wv_subs[i].about);
    fprintf(f, "\nExit status: 0 ok, 1 no index, damaged or I/O error, 2 bad command line.\n"
               "run 'weir vec <command> --help' for its flags and examples\n");
}

/* Flags of any command that take a value: to skip them while looking for the command word. */
static bool wv_takes_value(const char *s)
{
    if (strncmp(s, "--", 2) != 0 || strchr(s, '=') != NULL)
        return false;
    for (size_t i = 0; i < WV_SUB_CNT; i++) {
        const wt_flag *f = wt_flag_get(wv_subs[i].cmd, s + 2);
        if (f && f->metavar)
            return true;
    }
    return false;
}

int wt_vec_main(int argc, char **argv)
{
    char *args[WV_ARGS_MAX];
    int cmd = -1, n = 0;

    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "-", 1) != 0) {
            cmd = i;
            break;
        }
        if (wv_takes_value(argv[i]) && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            i++;
    }
    if (cmd < 0) {
        for (int i = 0; i < argc; i++)
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                wv_help(stdout);
                return WT_EXIT_OK;
            }
        fprintf(stderr, "weir vec: missing command\n");
        wv_help(stderr);
        return WT_EXIT_USAGE;
    }
    if (strcmp(argv[cmd], "help") == 0) {
        wv_help(stdout);
        return WT_EXIT_OK;
    }
    if (argc > WV_ARGS_MAX) {
        fprintf(stderr, "weir vec: too many arguments (at most %d)\n", WV_ARGS_MAX);
        return WT_EXIT_USAGE;
    }
    /* The command's arguments: the flags given before the command word, then the rest. */
    for (int i = 0; i < cmd; i++)
        args[n++] = argv[i];
    for (int i = cmd + 1; i < argc; i++)
        args[n++] = argv[i];
    for (size_t i = 0; i < WV_SUB_CNT; i++)
        if (strcmp(argv[cmd], wv_subs[i].name) == 0)
            return wv_subs[i].main(n, args);
    fprintf(stderr, "weir vec: unknown command '%s'\n", argv[cmd]);
    wv_help(stderr);
    return WT_EXIT_USAGE;
}

/* wb_log.c -- `weir bench log`: the log workloads W1..W5 against the public log API (lg.h).
 *
 * Workloads (bench/README.md has the full description and the JSON schema):
 *   W1 throughput      1 producer, 16 B keys, 100 B and 1 KiB values, batches of 1,000,
 *                      a window of outstanding lg_append_async batches, fsync=interval=100.
 *   W2 durable events  fsync=always, 100 B records, N appenders each with one record in
 *                      flight (64 and 1024), driven by two threads through completion queues.
 *   W3 read-back       10 M records of 100 B written untimed, then full scans from offset 0.
 *   W4 restart         a 2 GiB topic; lg_topic_open timed after a clean close and after the
 *                      writer process was SIGKILLed mid-append.
 *   W5 compaction      a compacted topic (segment.bytes=64 MiB) of 1 GiB with 10% live keys;
 *                      lg_topic_compact timed while a thread appends and records its stalls.
 *
 * Method (shared/BENCHMARKING.md): every workload runs >= 3 repetitions and reports the median,
 * min, max and spread = (max - min) / median of each metric, flagging spread > 30%. Buffers
 * and records are generated and touched before the timed part, and each timed run follows an
 * untimed warm-up on the same topic. The timed loops do not allocate: batches live in a fixed
 * window of slots that are recycled as their acks come back.
 *
 * Threading: acks run on the topic's writer thread, which must not block or append. The ack
 * callbacks here only stamp the latency and push the slot index onto a completion queue
 * (wb_cq, a mutex-protected ring that never fills because it has room for every slot); the
 * driver thread that owns the queue reaps it and issues the next append. */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"
#include "wb.h"
#include "wb_util.h"
#include "wr.h"

#define WB_MAX_RUNS    32
#define WB_MAX_METRICS 16
#define WB_KEY_LEN     16
#define WB_BATCH       1000u
#define WB_WINDOW      64u  /* outstanding batches in W1 and the untimed writers */
#define WB_VAL_POOL    256u /* distinct values recycled by the generators */
#define WB_NOISY       0.30 /* spread above this is flagged */
#define WB_MIB         (1024.0 * 1024.0)

/* ---------------------------------------------------------------- options and results */

typedef struct wb_opts {
    char root[PATH_MAX]; /* scratch directory; created by us, removed at the end */
    unsigned runs;
    bool json;
    bool quick;
    uint64_t records;  /* 0: the workload's default */
    uint32_t inflight; /* 0: W2 runs 64 and 1024 */
    unsigned topic_seq;
} wb_opts;

typedef struct wb_metric {
    const char *name; /* static string */
    const char *unit; /* static string */
    double v[WB_MAX_RUNS];
    unsigned cnt;
} wb_metric;

typedef struct wb_result {
    const char *workload; /* static string */
    char variant[48];
    char params[256]; /* a JSON object body, e.g. "\"records\":1000,\"value_bytes\":100" */
    wb_metric m[WB_MAX_METRICS];
    unsigned m_cnt;
    unsigned runs;
    bool failed;
} wb_result;

static void wb_res_init(wb_result *r, const char *workload, const char *variant)
{
    memset(r, 0, sizeof(*r));
    r->workload = workload;
    snprintf(r->variant, sizeof(r->variant), "%s", variant);
}

static void wb_res_add(wb_result *r, const char *name, const char *unit, double v)
{
    wb_metric *m = NULL;

    for (unsigned i = 0; i < r->m_cnt; i++)
        if (strcmp(r->m[i].name, name) == 0)
            m = &r->m[i];
    if (m == NULL) {
        if (r->m_cnt == WB_MAX_METRICS)
            return;
        m = &r->m[r->m_cnt++];
        m->name = name;
        m->unit = unit;
    }
    if (m->cnt < WB_MAX_RUNS)
        m->v[m->cnt++] = v;
}

/* Four significant digits with an SI suffix: 5123456 -> "5.123M". */
static const char *wb_fmt(double v, char *buf, size_t cap)
{
    double a = v < 0 ? -v : v;

    if (a >= 1e9)
        snprintf(buf, cap, "%.4gG", v / 1e9);
    else if (a >= 1e6)
        snprintf(buf, cap, "%.4gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(buf, cap, "%.4gk", v / 1e3);
    else
        snprintf(buf, cap, "%.4g", v);
    return buf;
}

static void wb_res_print(const wb_result *r, const wb_opts *o)
{
    if (o->json) {
        bool noisy_any = false;

        printf("{\"bench\":\"log\",\"version\":\"%s\",\"workload\":\"%s\",\"variant\":\"%s\","
               "\"ok\":%s,\"runs\":%u,\"params\":{%s},\"metrics\":{",
               WR_VERSION, r->workload, r->variant, r->failed ? "false" : "true", r->runs,
               r->params);
        for (unsigned i = 0; i < r->m_cnt; i++) {
            const wb_metric *m = &r->m[i];
            wb_summary s = wb_summarize(m->v, m->cnt);
            bool noisy = s.spread > WB_NOISY;

            noisy_any |= noisy;
            printf("%s\"%s\":{\"unit\":\"%s\",\"median\":%.10g,\"min\":%.10g,\"max\":%.10g,"
                   "\"spread\":%.4f,\"noisy\":%s,\"values\":[",
                   i ? "," : "", m->name, m->unit, s.median, s.min, s.max, s.spread,
                   noisy ? "true" : "false");
            for (unsigned j = 0; j < m->cnt; j++)
                printf("%s%.10g", j ? "," : "", m->v[j]);
            printf("]}");
        }
        printf("},\"noisy\":%s}\n", noisy_any ? "true" : "false");
    } else {
        printf("%s %s%s  (%s)\n", r->workload, r->variant, r->failed ? "  FAILED" : "", r->params);
        printf("  %-22s %12s %12s %12s %8s\n", "metric", "median", "min", "max", "spread");
        for (unsigned i = 0; i < r->m_cnt; i++) {
            const wb_metric *m = &r->m[i];
            wb_summary s = wb_summarize(m->v, m->cnt);
            char a[32], b[32], c[32];

            printf("  %-22s %12s %12s %12s %7.1f%%%s\n", m->name, wb_fmt(s.median, a, sizeof a),
                   wb_fmt(s.min, b, sizeof b), wb_fmt(s.max, c, sizeof c), s.spread * 100.0,
                   s.spread > WB_NOISY ? "  NOISY (spread > 30%)" : "");
        }
        printf("\n");
    }
    fflush(stdout);
}

#define wb_progress(...)  wb_say("log", __VA_ARGS__)
#define wb_fail(what, st) wb_say_fail("log", what, st)

/* ---------------------------------------------------------------- process helpers */

/* Reset the peak RSS so VmHWM covers only what follows (Linux >= 4.0). */
static void wb_rss_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL)
        return;
    fputs("5", f);
    fclose(f);
}

static double wb_rss_hwm_mib(void)
{
    char line[256];
    unsigned long long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (double)kb / 1024.0;
}

static int wb_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void wb_rmrf(const char *path)
{
    nftw(path, wb_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static double wb_sec(uint64_t ns)
{
    return (double)ns / 1e9;
}

static double wb_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* Deterministic, cheap pseudo-random numbers (splitmix64). */
static uint64_t wb_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void wb_fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(wb_mix64(seed + i / 8) >> (8 * (i % 8)));
}

/* 16-byte key: the big-endian key number, then a constant tail. */
static void wb_key(uint8_t *k, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(n >> (56 - 8 * i));
    memcpy(k + 8, "wb-key--", 8);
}

/* ---------------------------------------------------------------- completion queue */

typedef struct wb_cq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t *items; /* owned */
    uint32_t mask;
    uint32_t head, tail;
} wb_cq;

static wr_status wb_cq_init(wb_cq *q, uint32_t min_cap)
{
    pthread_condattr_t ca;
    uint32_t cap = 1;

    while (cap < min_cap)
        cap <<= 1;
    memset(q, 0, sizeof(*q));
    if ((q->items = wr_calloc(cap, sizeof(uint32_t))) == NULL)
        return WR_ERR_NOMEM;
    q->mask = cap - 1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    return WR_OK;
}

static void wb_cq_fini(wb_cq *q)
{
    if (q->items == NULL)
        return;
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    wr_free(q->items);
    q->items = NULL;
}

/* Called from the ack callback: never blocks for long, never fails (room for every slot). */
static void wb_cq_push(wb_cq *q, uint32_t v)
{
    pthread_mutex_lock(&q->mu);
    q->items[q->tail++ & q->mask] = v;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Wait up to @timeout_ms for an item; false on timeout. */
static bool wb_cq_pop(wb_cq *q, uint32_t *v, int timeout_ms)
{
    struct timespec ts;
    bool got = false;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    while (q->head == q->tail)
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT)
            break;
    if (q->head != q->tail) {
        *v = q->items[q->head++ & q->mask];
        got = true;
    }
    pthread_mutex_unlock(&q->mu);
    return got;
}

/* ---------------------------------------------------------------- topics */

static wr_status wb_topic_new(wb_opts *o, const char *prefix, const char *const *settings,
                              char *name, size_t name_cap, lg_topic **out)
{
    lg_config c;
    lg_open_opts oo;
    wr_status st;

    *out = NULL;
    snprintf(name, name_cap, "%s-%u", prefix, o->topic_seq++);
    lg_config_default(&c);
    c.partitions = 1;
    c.retention_ms = -1;
    for (size_t i = 0; settings && settings[i]; i++)
        if ((st = lg_config_set(&c, settings[i])) != WR_OK) {
            wb_fail(settings[i], st);
            return st;
        }
    if ((st = lg_topic_create(o->root, name, &c)) != WR_OK) {
        wb_fail("lg_topic_create", st);
        return st;
    }
    memset(&oo, 0, sizeof(oo));
    if ((st = lg_topic_open(o->root, name, &oo, out)) != WR_OK)
        wb_fail("lg_topic_open", st);
    return st;
}

static void wb_topic_drop(const wb_opts *o, lg_topic *t, const char *name)
{
    char path[PATH_MAX + LG_TOPIC_NAME_MAX + 2];

    lg_topic_close(t);
    snprintf(path, sizeof(path), "%s/%s", o->root, name);
    if (getenv("WB_KEEP_SCRATCH") == NULL)
        wb_rmrf(path);
}

static uint64_t wb_topic_bytes(lg_topic *t)
{
    lg_partition_info info;

    if (lg_partition_info_get(t, 0, &info) != WR_OK)
        return 0;
    return info.bytes;
}

/* ---------------------------------------------------------------- pipelined batch writer */
/* One producer thread keeps a window of batches in flight. Used timed by W1 and untimed to
 * fill the topics of W3, W4 and W5. */

struct wb_pipe;

typedef struct wb_slot {
    struct wb_pipe *p; /* borrowed */
    uint32_t idx;
    uint64_t issue_ns;
    uint64_t lat_ns; /* written by the ack callback */
    wr_status st;    /* written by the ack callback */
    lg_rec_in *recs; /* borrowed from wb_pipe.recs */
    uint8_t *keys;   /* borrowed from wb_pipe.keys */
    lg_batch_in b;
} wb_slot;

typedef struct wb_pipe {
    lg_topic *t; /* borrowed */
    uint32_t batch, window;
    size_t vlen;
    uint64_t keyspace;  /* 0: key = record number (unique); else a hash of it mod keyspace */
    uint64_t next_rec;  /* number of the next record to generate */
    wb_slot *slots;     /* owned */
    lg_rec_in *recs;    /* owned */
    uint8_t *keys;      /* owned */
    uint8_t *vals;      /* owned: WB_VAL_POOL values of vlen bytes */
    uint32_t *free_idx; /* owned: stack of idle slots */
    uint32_t free_cnt;
    wb_cq cq;
    wr_hist *hist; /* owned: ack latency per batch */
} wb_pipe;

static void wb_pipe_fini(wb_pipe *p)
{
    wb_cq_fini(&p->cq);
    wr_free(p->slots);
    wr_free(p->recs);
    wr_free(p->keys);
    wr_free(p->vals);
    wr_free(p->free_idx);
    wr_free(p->hist);
    memset(p, 0, sizeof(*p));
}

static wr_status wb_pipe_init(wb_pipe *p, lg_topic *t, size_t vlen, uint64_t keyspace)
{
    size_t nrec;

    memset(p, 0, sizeof(*p));
    p->t = t;
    p->batch = WB_BATCH;
    p->window = WB_WINDOW;
    p->vlen = vlen;
    p->keyspace = keyspace;
    nrec = (size_t)p->batch * p->window;
    p->slots = wr_calloc(p->window, sizeof(wb_slot));
    p->recs = wr_calloc(nrec, sizeof(lg_rec_in));
    p->keys = wr_calloc(nrec, WB_KEY_LEN);
    p->vals = wr_malloc(WB_VAL_POOL * vlen);
    p->free_idx = wr_calloc(p->window, sizeof(uint32_t));
    p->hist = wr_malloc(sizeof(wr_hist));
    if (!p->slots || !p->recs || !p->keys || !p->vals || !p->free_idx || !p->hist ||
        wb_cq_init(&p->cq, p->window) != WR_OK) {
        wb_pipe_fini(p);
        return WR_ERR_NOMEM;
    }
    wb_fill_random(p->vals, WB_VAL_POOL * vlen, 42); /* also pre-faults the pool */
    wr_hist_init(p->hist);
    for (uint32_t s = 0; s < p->window; s++) {
        wb_slot *sl = &p->slots[s];

        sl->p = p;
        sl->idx = s;
        sl->recs = p->recs + (size_t)s * p->batch;
        sl->keys = p->keys + (size_t)s * p->batch * WB_KEY_LEN;
        for (uint32_t j = 0; j < p->batch; j++) {
            lg_rec_in *r = &sl->recs[j];
            size_t v = (s * 31u + j) % WB_VAL_POOL;

            r->key = wr_bytes_of(sl->keys + (size_t)j * WB_KEY_LEN, WB_KEY_LEN);
            r->val = wr_bytes_of(p->vals + v * vlen, vlen);
        }
        sl->b.recs = sl->recs;
        sl->b.producer_id = LG_NO_PRODUCER;
        sl->b.compression = LG_COMP_NONE;
        p->free_idx[p->free_cnt++] = s;
    }
    return WR_OK;
}

static void wb_pipe_ack(void *ctx, wr_status st, const lg_ack *ack)
{
    wb_slot *s = ctx;

    (void)ack;
    s->lat_ns = wr_now_ns() - s->issue_ns;
    s->st = st;
    wb_cq_push(&s->p->cq, s->idx);
}

/* Reap one completion (waiting up to 1 s); false on timeout. */
static bool wb_pipe_reap(wb_pipe *p, uint64_t *acked, wr_status *err)
{
    uint32_t idx;
    wb_slot *s;

    if (!wb_cq_pop(&p->cq, &idx, 1000))
        return false;
    s = &p->slots[idx];
    if (s->st != WR_OK && *err == WR_OK)
        *err = s->st;
    else
        *acked += s->b.rec_cnt;
    wr_hist_record(p->hist, s->lat_ns);
    p->free_idx[p->free_cnt++] = idx;
    return true;
}

/* Append @nrec records (or fewer if @deadline_ns passes first) and wait for all acks.
 * *acked_out gets the number of records acknowledged. */
static wr_status wb_pipe_run(wb_pipe *p, uint64_t nrec, uint64_t deadline_ns, uint64_t *acked_out)
{
    uint64_t issued = 0, acked = 0;
    uint32_t outstanding = 0;
    wr_status err = WR_OK, st;
    unsigned idle_s = 0;

    while (err == WR_OK) {
        if (issued < nrec && p->free_cnt > 0 && wr_now_ns() < deadline_ns) {
            wb_slot *s = &p->slots[p->free_idx[p->free_cnt - 1]];
            uint64_t left = nrec - issued;
            uint32_t cnt = left < p->batch ? (uint32_t)left : p->batch;

            for (uint32_t j = 0; j < cnt; j++) {
                uint64_t n = p->next_rec + j;
                wb_key(s->keys + (size_t)j * WB_KEY_LEN,
                       p->keyspace ? wb_mix64(n) % p->keyspace : n);
            }
            s->b.rec_cnt = cnt;
            s->issue_ns = wr_now_ns();
            st = lg_append_async(p->t, 0, &s->b, wb_pipe_ack, s);
            if (st == WR_OK) {
                p->free_cnt--;
                p->next_rec += cnt;
                issued += cnt;
                outstanding++;
                continue;
            }
            if (st != WR_AGAIN) {
                wb_fail("lg_append_async", st);
                err = st;
                break;
            }
            /* Back-pressure: wait for an ack, or briefly if none is outstanding. */
            if (outstanding == 0) {
                wr_sleep_ns(100000);
                continue;
            }
        } else if (outstanding == 0) {
            break;
        }
        if (wb_pipe_reap(p, &acked, &err)) {
            outstanding--;
            idle_s = 0;
        } else if (++idle_s >= 60) {
            fprintf(stderr, "weir bench log: no ack for 60 s, giving up\n");
            err = WR_ERR_INTERNAL;
        }
    }
    while (outstanding > 0 && idle_s < 60) { /* drain after an error */
        if (wb_pipe_reap(p, &acked, &err))
            outstanding--;
        else
            idle_s++;
    }
    *acked_out = acked;
    return err;
}

/* Untimed fill: @nrec records of @vlen bytes, then a sync. */
static wr_status wb_fill(lg_topic *t, uint64_t nrec, size_t vlen, uint64_t keyspace)
{
    wb_pipe p;
    uint64_t acked;
    wr_status st;

    if ((st = wb_pipe_init(&p, t, vlen, keyspace)) != WR_OK)
        return st;
    st = wb_pipe_run(&p, nrec, UINT64_MAX, &acked);
    wb_pipe_fini(&p);
    if (st == WR_OK && (st = lg_topic_sync(t)) != WR_OK)
        wb_fail("lg_topic_sync", st);
    return st;
}

/* ---------------------------------------------------------------- W1 throughput */

static int wb_w1(wb_opts *o, size_t vlen)
{
    static const char *const cfg[] = {"fsync=interval=100", NULL};
    uint64_t nrec = o->records    ? o->records
                    : vlen <= 100 ? (o->quick ? 2000000u : 10000000u)
                                  : (o->quick ? 262144u : 2097152u);
    uint64_t warm = nrec / 10 ? nrec / 10 : 1;
    uint64_t limit_ns = UINT64_C(1000000000) * (o->quick ? 60u : 300u);
    char variant[48], name[64];
    wb_result *res;
    int rc = 0;

    if ((res = wr_calloc(1, sizeof(*res))) == NULL)
        return 1;
    snprintf(variant, sizeof variant, "value=%zuB", vlen);
    wb_res_init(res, "W1", variant);
    snprintf(res->params, sizeof res->params,
             "\"records\":%" PRIu64 ",\"key_bytes\":%d,\"value_bytes\":%zu,\"batch\":%u,"
             "\"window\":%u,\"fsync\":\"interval=100\",\"warmup_records\":%" PRIu64,
             nrec, WB_KEY_LEN, vlen, WB_BATCH, WB_WINDOW, warm);
    for (unsigned run = 0; run < o->runs; run++) {
        lg_topic *t;
        wb_pipe p;
        uint64_t acked, b0, b1, t0, t1, dummy;
        wr_status st;

        wb_progress("W1 %s run %u/%u: %" PRIu64 " records (+%" PRIu64 " warm-up)", variant, run + 1,
                    o->runs, nrec, warm);
        if (wb_topic_new(o, "w1", cfg, name, sizeof name, &t) != WR_OK) {
            rc = 1;
            break;
        }
        if (wb_pipe_init(&p, t, vlen, 0) != WR_OK) {
            wb_topic_drop(o, t, name);
            rc = 1;
            break;
        }
        st = wb_pipe_run(&p, warm, UINT64_MAX, &dummy);
        wr_hist_init(p.hist);
        wb_rss_reset();
        b0 = wb_topic_bytes(t);
        t0 = wr_now_ns();
        if (st == WR_OK)
            st = wb_pipe_run(&p, nrec, t0 + limit_ns, &acked);
        t1 = wr_now_ns();
        b1 = wb_topic_bytes(t);
        if (st == WR_OK) {
            double s = wb_sec(t1 - t0);
            double recs = (double)acked;

            res->runs++;
            wb_res_add(res, "records_per_s", "rec/s", recs / s);
            wb_res_add(res, "payload_mib_s", "MiB/s",
                       recs * (double)(WB_KEY_LEN + vlen) / WB_MIB / s);
            wb_res_add(res, "disk_mib_s", "MiB/s", (double)(b1 - b0) / WB_MIB / s);
            wb_res_add(res, "disk_bytes_per_record", "B", (double)(b1 - b0) / recs);
            wb_res_add(res, "ack_p50_ms", "ms", wb_ms(wr_hist_quantile(p.hist, 0.50)));
            wb_res_add(res, "ack_p99_ms", "ms", wb_ms(wr_hist_quantile(p.hist, 0.99)));
            wb_res_add(res, "ack_p999_ms", "ms", wb_ms(wr_hist_quantile(p.hist, 0.999)));
            wb_res_add(res, "rss_mib", "MiB", wb_rss_hwm_mib());
            wb_res_add(res, "seconds", "s", s);
            if (acked < nrec)
                wb_progress("W1 %s: time limit hit after %" PRIu64 " records", variant, acked);
        } else {
            rc = 1;
        }
        wb_pipe_fini(&p);
        wb_topic_drop(o, t, name);
        if (rc)
            break;
    }
    res->failed = rc != 0;
    wb_res_print(res, o);
    wr_free(res);
    return rc;
}

/* ---------------------------------------------------------------- W2 durable small events */

#define WB_W2_DRIVERS 2u
#define WB_W2_VLEN    100u

struct wb_drv;

typedef struct wb_app {
    struct wb_drv *d; /* borrowed */
    uint32_t idx;     /* within the driver */
    uint64_t issue_ns;
    uint64_t lat_ns; /* written by the ack callback */
    wr_status st;    /* written by the ack callback */
    uint64_t seq;
    uint8_t key[WB_KEY_LEN];
    lg_rec_in rec;
    lg_batch_in b;
} wb_app;

typedef struct wb_drv {
    pthread_t th;
    lg_topic *t;    /* borrowed */
    wb_app *apps;   /* owned */
    uint32_t *pend; /* owned: stack of appenders waiting to issue */
    uint32_t app_cnt;
    wb_cq cq;
    wr_hist *hist;           /* owned */
    _Atomic int64_t *budget; /* borrowed: appends left to issue, shared by the drivers */
    uint64_t deadline_ns;
    uint64_t done;
    wr_status err;
} wb_drv;

static void wb_app_ack(void *ctx, wr_status st, const lg_ack *ack)
{
    wb_app *a = ctx;

    (void)ack;
    a->lat_ns = wr_now_ns() - a->issue_ns;
    a->st = st;
    wb_cq_push(&a->d->cq, a->idx);
}

static void *wb_drv_main(void *arg)
{
    wb_drv *d = arg;
    uint32_t pend_cnt = d->app_cnt, outstanding = 0;
    unsigned idle_s = 0;
    bool stop = false;

    for (uint32_t i = 0; i < d->app_cnt; i++)
        d->pend[i] = i;
    for (;;) {
        while (!stop && pend_cnt > 0) {
            wb_app *a = &d->apps[d->pend[pend_cnt - 1]];
            wr_status st;

            if (atomic_fetch_sub(d->budget, 1) <= 0 || wr_now_ns() >= d->deadline_ns) {
                stop = true;
                break;
            }
            a->seq++;
            wb_key(a->key, ((uint64_t)a->idx << 40) ^ ((uint64_t)(uintptr_t)d << 20) ^ a->seq);
            a->issue_ns = wr_now_ns();
            st = lg_append_async(d->t, 0, &a->b, wb_app_ack, a);
            if (st == WR_OK) {
                pend_cnt--;
                outstanding++;
                continue;
            }
            atomic_fetch_add(d->budget, 1);
            if (st != WR_AGAIN) {
                wb_fail("lg_append_async", st);
                d->err = st;
                stop = true;
            }
            break; /* back-pressure: reap first */
        }
        if (outstanding == 0) {
            if (stop || pend_cnt == 0)
                break;
            wr_sleep_ns(100000);
            continue;
        }
        uint32_t idx;
        if (!wb_cq_pop(&d->cq, &idx, 1000)) {
            if (++idle_s >= 60) {
                fprintf(stderr, "weir bench log: W2: no ack for 60 s, giving up\n");
                d->err = WR_ERR_INTERNAL;
                break;
            }
            continue;
        }
        idle_s = 0;
        outstanding--;
        wb_app *a = &d->apps[idx];
        if (a->st != WR_OK) {
            if (d->err == WR_OK)
                wb_fail("W2 append ack", a->st);
            d->err = a->st;
            stop = true;
        } else {
            d->done++;
            wr_hist_record(d->hist, a->lat_ns);
        }
        d->pend[pend_cnt++] = idx;
    }
    return NULL;
}

/* Run @total appends with @inflight appenders; returns the elapsed time in *ns_out. */
static wr_status wb_w2_round(lg_topic *t, wb_drv *drv, uint32_t ndrv, int64_t total,
                             uint64_t limit_ns, uint64_t *ns_out)
{
    _Atomic int64_t budget;
    uint64_t t0;
    wr_status err = WR_OK;
    uint32_t started = 0;

    atomic_init(&budget, total);
    t0 = wr_now_ns();
    for (uint32_t i = 0; i < ndrv; i++) {
        drv[i].t = t;
        drv[i].budget = &budget;
        drv[i].deadline_ns = t0 + limit_ns;
        drv[i].done = 0;
        drv[i].err = WR_OK;
        wr_hist_init(drv[i].hist);
        if (pthread_create(&drv[i].th, NULL, wb_drv_main, &drv[i]) != 0) {
            err = WR_ERR_NOMEM;
            break;
        }
        started++;
    }
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(drv[i].th, NULL);
        if (drv[i].err != WR_OK && err == WR_OK)
            err = drv[i].err;
    }
    *ns_out = wr_now_ns() - t0;
    return err;
}

static int wb_w2(wb_opts *o, uint32_t inflight)
{
    static const char *const cfg[] = {"fsync=always", NULL};
    uint64_t total = o->records ? o->records : (o->quick ? 50000u : 200000u);
    uint64_t warm = total / 10 < 5000 ? total / 10 : 5000;
    uint64_t limit_ns = UINT64_C(1000000000) * (o->quick ? 15u : 60u);
    uint32_t ndrv = inflight < WB_W2_DRIVERS ? inflight : WB_W2_DRIVERS;
    wb_drv drv[WB_W2_DRIVERS];
    uint8_t *vals = NULL;
    wr_hist *all = NULL;
    wb_result *res;
    char variant[48], name[64];
    int rc = 0;

    memset(drv, 0, sizeof drv);
    if ((res = wr_calloc(1, sizeof(*res))) == NULL)
        return 1;
    snprintf(variant, sizeof variant, "inflight=%u", inflight);
    wb_res_init(res, "W2", variant);
    snprintf(res->params, sizeof res->params,
             "\"records\":%" PRIu64 ",\"key_bytes\":%d,\"value_bytes\":%u,\"inflight\":%u,"
             "\"driver_threads\":%u,\"fsync\":\"always\",\"time_limit_s\":%" PRIu64,
             total, WB_KEY_LEN, WB_W2_VLEN, inflight, ndrv, limit_ns / UINT64_C(1000000000));
    vals = wr_malloc(WB_VAL_POOL * WB_W2_VLEN);
    all = wr_malloc(sizeof(wr_hist));
    if (vals == NULL || all == NULL) {
        rc = 1;
        goto out;
    }
    wb_fill_random(vals, WB_VAL_POOL * WB_W2_VLEN, 7);
    for (uint32_t i = 0; i < ndrv; i++) {
        wb_drv *d = &drv[i];

        d->app_cnt = inflight / ndrv + (i < inflight % ndrv);
        d->apps = wr_calloc(d->app_cnt, sizeof(wb_app));
        d->pend = wr_calloc(d->app_cnt, sizeof(uint32_t));
        d->hist = wr_malloc(sizeof(wr_hist));
        if (!d->apps || !d->pend || !d->hist || wb_cq_init(&d->cq, d->app_cnt) != WR_OK) {
            rc = 1;
            goto out;
        }
        for (uint32_t j = 0; j < d->app_cnt; j++) {
            wb_app *a = &d->apps[j];

            a->d = d;
            a->idx = j;
            a->rec.key = wr_bytes_of(a->key, WB_KEY_LEN);
            a->rec.val =
                wr_bytes_of(vals + ((i * 131u + j) % WB_VAL_POOL) * WB_W2_VLEN, WB_W2_VLEN);
            a->b.recs = &a->rec;
            a->b.rec_cnt = 1;
            a->b.producer_id = LG_NO_PRODUCER;
        }
    }
    for (unsigned run = 0; run < o->runs && rc == 0; run++) {
        lg_topic *t;
        uint64_t ns, done = 0, b0, b1;
        wr_status st;

        wb_progress("W2 %s run %u/%u: %" PRIu64 " appends (+%" PRIu64 " warm-up)", variant, run + 1,
                    o->runs, total, warm);
        if (wb_topic_new(o, "w2", cfg, name, sizeof name, &t) != WR_OK) {
            rc = 1;
            break;
        }
        st = wb_w2_round(t, drv, ndrv, (int64_t)warm, limit_ns, &ns);
        wb_rss_reset();
        b0 = wb_topic_bytes(t);
        if (st == WR_OK)
            st = wb_w2_round(t, drv, ndrv, (int64_t)total, limit_ns, &ns);
        b1 = wb_topic_bytes(t);
        if (st == WR_OK) {
            wr_hist_init(all);
            for (uint32_t i = 0; i < ndrv; i++) {
                wr_hist_merge(all, drv[i].hist);
                done += drv[i].done;
            }
            res->runs++;
            wb_res_add(res, "appends_per_s", "rec/s", (double)done / wb_sec(ns));
            wb_res_add(res, "ack_p50_ms", "ms", wb_ms(wr_hist_quantile(all, 0.50)));
            wb_res_add(res, "ack_p99_ms", "ms", wb_ms(wr_hist_quantile(all, 0.99)));
            wb_res_add(res, "ack_p999_ms", "ms", wb_ms(wr_hist_quantile(all, 0.999)));
            wb_res_add(res, "ack_max_ms", "ms", wb_ms(wr_hist_quantile(all, 1.0)));
            wb_res_add(res, "disk_bytes_per_record", "B",
                       done ? (double)(b1 - b0) / (double)done : 0.0);
            wb_res_add(res, "rss_mib", "MiB", wb_rss_hwm_mib());
            wb_res_add(res, "appends", "rec", (double)done);
            if (done < total)
                wb_progress("W2 %s: time limit hit after %" PRIu64 " appends", variant, done);
        } else {
            rc = 1;
        }
        wb_topic_drop(o, t, name);
    }
out:
    for (uint32_t i = 0; i < ndrv; i++) {
        wb_cq_fini(&drv[i].cq);
        wr_free(drv[i].apps);
        wr_free(drv[i].pend);
        wr_free(drv[i].hist);
    }
    wr_free(vals);
    wr_free(all);
    res->failed = rc != 0;
    wb_res_print(res, o);
    wr_free(res);
    return rc;
}

/* ---------------------------------------------------------------- W3 read-back */

static wr_status wb_read_all(lg_topic *t, uint64_t *recs_out, uint64_t *bytes_out,
                             uint64_t *check_out)
{
    lg_reader *r;
    lg_record rec;
    uint64_t n = 0, bytes = 0, check = 0;
    wr_status st;

    if ((st = lg_reader_open(t, 0, LG_FROM_OFFSET, 0, &r)) != WR_OK) {
        wb_fail("lg_reader_open", st);
        return st;
    }
    while ((st = lg_reader_next(r, &rec, 0)) == WR_OK) {
        n++;
        bytes += rec.key.len + rec.val.len;
        if (rec.val.len) /* touch the value, as a consumer would */
            check += rec.val.ptr[rec.val.len - 1];
    }
    lg_reader_close(r);
    *recs_out = n;
    *bytes_out = bytes;
    *check_out = check;
    if (st != WR_EOF) {
        wb_fail("lg_reader_next", st);
        return st;
    }
    return WR_OK;
}

static int wb_w3(wb_opts *o)
{
    static const char *const cfg[] = {"fsync=interval=100", NULL};
    uint64_t nrec = o->records ? o->records : (o->quick ? 1000000u : 10000000u);
    uint64_t n, bytes, check, t0, t1;
    wb_result *res;
    lg_topic *t;
    char name[64];
    int rc = 0;

    if ((res = wr_calloc(1, sizeof(*res))) == NULL)
        return 1;
    wb_res_init(res, "W3", "value=100B");
    snprintf(res->params, sizeof res->params,
             "\"records\":%" PRIu64 ",\"key_bytes\":%d,\"value_bytes\":100,\"partitions\":1,"
             "\"cache\":\"warm\"",
             nrec, WB_KEY_LEN);
    wb_progress("W3 writing %" PRIu64 " records of 100 B (untimed)", nrec);
    if (wb_topic_new(o, "w3", cfg, name, sizeof name, &t) != WR_OK) {
        rc = 1;
        goto out;
    }
    if (wb_fill(t, nrec, 100, 0) != WR_OK || wb_read_all(t, &n, &bytes, &check) != WR_OK) {
        rc = 1;
        goto out_drop;
    }
    if (n != nrec)
        wb_progress("W3: warm-up pass read %" PRIu64 " records, expected %" PRIu64, n, nrec);
    for (unsigned run = 0; run < o->runs; run++) {
        wb_progress("W3 run %u/%u: reading %" PRIu64 " records from offset 0", run + 1, o->runs,
                    nrec);
        wb_rss_reset();
        t0 = wr_now_ns();
        if (wb_read_all(t, &n, &bytes, &check) != WR_OK) {
            rc = 1;
            break;
        }
        t1 = wr_now_ns();
        res->runs++;
        wb_res_add(res, "records_per_s", "rec/s", (double)n / wb_sec(t1 - t0));
        wb_res_add(res, "payload_mib_s", "MiB/s", (double)bytes / WB_MIB / wb_sec(t1 - t0));
        wb_res_add(res, "records_read", "rec", (double)n);
        wb_res_add(res, "rss_mib", "MiB", wb_rss_hwm_mib());
        if (n != nrec) {
            wb_progress("W3: read %" PRIu64 " records, expected %" PRIu64, n, nrec);
            rc = 1;
        }
    }
    wb_res_add(res, "disk_bytes", "B", (double)wb_topic_bytes(t));
out_drop:
    wb_topic_drop(o, t, name);
out:
    res->failed = rc != 0;
    wb_res_print(res, o);
    wr_free(res);
    return rc;
}

/* ---------------------------------------------------------------- W4 restart */

/* The child of the kill -9 case: open, append 1 KiB records until killed (at most 30 s).
 * Signals the parent through the pipe once the first batch is acknowledged. */
typedef struct wb_w4_child_arg {
    const wb_opts *o;
    const char *name;
    int fd;
} wb_w4_child_arg;

static void *wb_w4_child_main(void *arg)
{
    enum { N = 100, VLEN = 1024 };
    static uint8_t vals[VLEN];
    static uint8_t keys[N][WB_KEY_LEN];
    static lg_rec_in recs[N];
    const wb_w4_child_arg *a = arg;
    lg_batch_in b;
    lg_open_opts oo;
    lg_topic *t;
    lg_ack ack;
    uint64_t t0 = wr_now_ns(), n = 0;
    bool told = false;

    memset(&oo, 0, sizeof oo);
    memset(&b, 0, sizeof b);
    wb_fill_random(vals, VLEN, 99);
    if (lg_topic_open(a->o->root, a->name, &oo, &t) != WR_OK)
        _exit(2);
    for (int i = 0; i < N; i++) {
        recs[i].key = wr_bytes_of(keys[i], WB_KEY_LEN);
        recs[i].val = wr_bytes_of(vals, VLEN);
    }
    b.recs = recs;
    b.rec_cnt = N;
    b.producer_id = LG_NO_PRODUCER;
    while (wr_now_ns() - t0 < UINT64_C(30000000000)) {
        for (int i = 0; i < N; i++)
            wb_key(keys[i], UINT64_C(1) << 62 | n++);
        if (lg_append(t, 0, &b, &ack) != WR_OK)
            _exit(3);
        if (!told) {
            char c = 'R';
            told = write(a->fd, &c, 1) == 1;
        }
    }
    _exit(0); /* no close: this path is a crash too */
}

/* Runs in the forked child; never returns. The work happens on a new thread because the
 * forked main thread inherits the parent's per-thread io_uring (wr_ring_thread()), whose
 * rings are shared memory: using it here would desynchronise the parent's view of it. */
static void wb_w4_child(const wb_opts *o, const char *name, int fd)
{
    wb_w4_child_arg a = {o, name, fd};
    pthread_t th;

    if (pthread_create(&th, NULL, wb_w4_child_main, &a) != 0)
        _exit(4);
    pthread_join(th, NULL);
    _exit(0);
}

static int wb_w4(wb_opts *o)
{
    static const char *const cfg[] = {"fsync=interval=100", NULL};
    uint64_t size = o->quick ? (256ull << 20) : (2048ull << 20);
    uint64_t nrec = o->records ? o->records : size / 1024u;
    wb_result *res;
    lg_topic *t;
    lg_open_opts oo;
    char name[64];
    int rc = 0;

    if ((res = wr_calloc(1, sizeof(*res))) == NULL)
        return 1;
    memset(&oo, 0, sizeof oo);
    wb_res_init(res, "W4", o->records ? "size=records" : o->quick ? "size=256MiB" : "size=2GiB");
    snprintf(res->params, sizeof res->params,
             "\"records\":%" PRIu64 ",\"key_bytes\":%d,\"value_bytes\":1024,\"partitions\":1,"
             "\"kill_after_first_ack_ms\":50",
             nrec, WB_KEY_LEN);
    wb_progress("W4 building a topic of %" PRIu64 " records of 1 KiB (untimed)", nrec);
    if (wb_topic_new(o, "w4", cfg, name, sizeof name, &t) != WR_OK) {
        res->failed = true;
        wb_res_print(res, o);
        wr_free(res);
        return 1;
    }
    if (wb_fill(t, nrec, 1024, 0) != WR_OK) {
        wb_topic_drop(o, t, name);
        res->failed = true;
        wb_res_print(res, o);
        wr_free(res);
        return 1;
    }
    wb_res_add(res, "topic_mib", "MiB", (double)wb_topic_bytes(t) / WB_MIB);
    lg_topic_close(t);
    t = NULL;
    for (unsigned run = 0; run < o->runs && rc == 0; run++) {
        uint64_t t0, t1;
        int pfd[2], status;
        pid_t pid;
        char c;
        wr_status st;

        wb_progress("W4 run %u/%u: open after clean close", run + 1, o->runs);
        t0 = wr_now_ns();
        st = lg_topic_open(o->root, name, &oo, &t);
        t1 = wr_now_ns();
        if (st != WR_OK) {
            wb_fail("W4 clean open", st);
            rc = 1;
            break;
        }
        wb_res_add(res, "clean_open_ms", "ms", wb_ms(t1 - t0));
        lg_topic_close(t);
        t = NULL;

        wb_progress("W4 run %u/%u: open after kill -9 of a writer", run + 1, o->runs);
        if (pipe(pfd) != 0) {
            rc = 1;
            break;
        }
        fflush(NULL);
        if ((pid = fork()) < 0) {
            close(pfd[0]);
            close(pfd[1]);
            rc = 1;
            break;
        }
        if (pid == 0) {
            close(pfd[0]);
            wb_w4_child(o, name, pfd[1]);
        }
        close(pfd[1]);
        if (read(pfd[0], &c, 1) != 1) /* EOF: the child failed before its first ack */
            fprintf(stderr, "weir bench log: W4: the writer child failed to start\n");
        else
            wr_sleep_ns(50000000); /* let it get well into appending */
        close(pfd[0]);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "weir bench log: W4: the writer child exited with %d\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            rc = 1;
            break;
        }
        t0 = wr_now_ns();
        st = lg_topic_open(o->root, name, &oo, &t);
        t1 = wr_now_ns();
        if (st != WR_OK) {
            wb_fail("W4 open after kill -9", st);
            rc = 1;
            break;
        }
        res->runs++;
        wb_res_add(res, "crash_open_ms", "ms", wb_ms(t1 - t0));
        lg_topic_close(t);
        t = NULL;
    }
    {
        char path[PATH_MAX + LG_TOPIC_NAME_MAX + 2];
        snprintf(path, sizeof path, "%s/%s", o->root, name);
        if (getenv("WB_KEEP_SCRATCH") == NULL)
            wb_rmrf(path);
    }
    res->failed = rc != 0;
    wb_res_print(res, o);
    wr_free(res);
    return rc;
}

/* ---------------------------------------------------------------- W5 compaction */

typedef struct wb_staller {
    lg_topic *t;       /* borrowed */
    uint64_t keyspace; /* the appender rewrites keys of the same key space */
    _Atomic int phase; /* 0 before compaction, 1 during, 2 stop */
    wr_hist *h[2];     /* owned: ack latency before and during compaction */
    wr_status err;
} wb_staller;

static void *wb_staller_main(void *arg)
{
    wb_staller *s = arg;
    uint8_t key[WB_KEY_LEN], val[100];
    lg_rec_in rec;
    lg_batch_in b;
    lg_ack ack;
    uint64_t n = 0;
    int ph;

    memset(&rec, 0, sizeof rec);
    memset(&b, 0, sizeof b);
    wb_fill_random(val, sizeof val, 5);
    rec.key = wr_bytes_of(key, sizeof key);
    rec.val = wr_bytes_of(val, sizeof val);
    b.recs = &rec;
    b.rec_cnt = 1;
    b.producer_id = LG_NO_PRODUCER;
    while ((ph = atomic_load(&s->phase)) < 2) {
        uint64_t t0;
        wr_status st;

        wb_key(key, wb_mix64(UINT64_C(1) << 50 | n++) % s->keyspace);
        t0 = wr_now_ns();
        st = lg_append(s->t, 0, &b, &ack);
        if (st == WR_AGAIN) {
            wr_sleep_ns(100000);
            continue;
        }
        if (st != WR_OK) {
            wb_fail("W5 append during compaction", st);
            s->err = st;
            break;
        }
        /* Attribute the append to the phase it started in, unless compaction began meanwhile:
         * a stall that straddles the start is compaction's. */
        ph = ph == 0 && atomic_load(&s->phase) == 1 ? 1 : ph;
        wr_hist_record(s->h[ph > 0], wr_now_ns() - t0);
    }
    return NULL;
}

static int wb_w5(wb_opts *o)
{
    static const char *const cfg[] = {"cleanup=compact", "segment.bytes=67108864",
                                      "fsync=interval=100", NULL};
    uint64_t size = o->quick ? (128ull << 20) : (1024ull << 20);
    uint64_t nrec = o->records ? o->records : size / (WB_KEY_LEN + 100);
    uint64_t keyspace = nrec / 10 ? nrec / 10 : 1;
    uint64_t base_ns = UINT64_C(1000000) * (o->quick ? 500u : 1000u);
    wb_staller sl;
    wb_result *res;
    char name[64];
    int rc = 0;

    memset(&sl, 0, sizeof sl);
    if ((res = wr_calloc(1, sizeof(*res))) == NULL)
        return 1;
    wb_res_init(res, "W5", o->records ? "size=records" : o->quick ? "size=128MiB" : "size=1GiB");
    snprintf(res->params, sizeof res->params,
             "\"records\":%" PRIu64 ",\"keyspace\":%" PRIu64 ",\"key_bytes\":%d,"
             "\"value_bytes\":100,\"segment_bytes\":67108864,\"fsync\":\"interval=100\","
             "\"appender\":\"1 sync append of 100 B at a time\"",
             nrec, keyspace, WB_KEY_LEN);
    sl.h[0] = wr_malloc(sizeof(wr_hist));
    sl.h[1] = wr_malloc(sizeof(wr_hist));
    if (sl.h[0] == NULL || sl.h[1] == NULL) {
        rc = 1;
        goto out;
    }
    for (unsigned run = 0; run < o->runs && rc == 0; run++) {
        lg_partition_info before, after;
        lg_config c;
        lg_open_opts oo;
        lg_topic *t;
        pthread_t th;
        uint64_t t0, t1, in;
        wr_status st;

        wb_progress("W5 run %u/%u: writing %" PRIu64 " records over %" PRIu64 " keys (untimed)",
                    run + 1, o->runs, nrec, keyspace);
        /* Created here rather than with wb_topic_new: the cleaner thread stays off so that
         * lg_topic_compact() does all the work and none of it happens during the fill. */
        snprintf(name, sizeof name, "w5-%u", o->topic_seq++);
        lg_config_default(&c);
        c.partitions = 1;
        c.retention_ms = -1;
        for (size_t i = 0; cfg[i]; i++)
            if ((st = lg_config_set(&c, cfg[i])) != WR_OK) {
                wb_fail(cfg[i], st);
                rc = 1;
                goto out;
            }
        if ((st = lg_topic_create(o->root, name, &c)) != WR_OK) {
            wb_fail("lg_topic_create", st);
            rc = 1;
            break;
        }
        memset(&oo, 0, sizeof oo);
        oo.no_cleaner = true;
        if ((st = lg_topic_open(o->root, name, &oo, &t)) != WR_OK) {
            wb_fail("lg_topic_open", st);
            rc = 1;
            break;
        }
        if (wb_fill(t, nrec, 100, keyspace) != WR_OK ||
            lg_partition_info_get(t, 0, &before) != WR_OK) {
            wb_topic_drop(o, t, name);
            rc = 1;
            break;
        }
        sl.t = t;
        sl.keyspace = keyspace;
        sl.err = WR_OK;
        atomic_store(&sl.phase, 0);
        wr_hist_init(sl.h[0]);
        wr_hist_init(sl.h[1]);
        if (pthread_create(&th, NULL, wb_staller_main, &sl) != 0) {
            wb_topic_drop(o, t, name);
            rc = 1;
            break;
        }
        wb_progress("W5 run %u/%u: compacting %.0f MiB", run + 1, o->runs,
                    (double)before.bytes / WB_MIB);
        wr_sleep_ns(base_ns); /* baseline latency without compaction */
        atomic_store(&sl.phase, 1);
        t0 = wr_now_ns();
        st = lg_topic_compact(t);
        t1 = wr_now_ns();
        wr_sleep_ns(100000000); /* catch the tail of a stall that outlives compact() */
        atomic_store(&sl.phase, 2);
        pthread_join(th, NULL);
        if (st != WR_OK)
            wb_fail("lg_topic_compact", st);
        if (st != WR_OK || sl.err != WR_OK || lg_partition_info_get(t, 0, &after) != WR_OK) {
            wb_topic_drop(o, t, name);
            rc = 1;
            break;
        }
        in = after.cleaner_bytes_in - before.cleaner_bytes_in;
        if (in == 0) /* the log does not count: everything before the compaction was input */
            in = before.bytes;
        res->runs++;
        wb_res_add(res, "compact_mib_s", "MiB/s", (double)in / WB_MIB / wb_sec(t1 - t0));
        wb_res_add(res, "compact_s", "s", wb_sec(t1 - t0));
        wb_res_add(res, "bytes_before", "B", (double)before.bytes);
        wb_res_add(res, "bytes_after", "B", (double)after.bytes);
        wb_res_add(res, "bytes_in", "B", (double)in);
        wb_res_add(res, "bytes_out", "B",
                   (double)(after.cleaner_bytes_out - before.cleaner_bytes_out));
        wb_res_add(res, "stall_max_ms", "ms", wb_ms(wr_hist_quantile(sl.h[1], 1.0)));
        wb_res_add(res, "base_max_ms", "ms", wb_ms(wr_hist_quantile(sl.h[0], 1.0)));
        wb_res_add(res, "during_p99_ms", "ms", wb_ms(wr_hist_quantile(sl.h[1], 0.99)));
        wb_res_add(res, "base_p99_ms", "ms", wb_ms(wr_hist_quantile(sl.h[0], 0.99)));
        wb_res_add(res, "appends_during", "rec", (double)sl.h[1]->cnt);
        wb_topic_drop(o, t, name);
    }
out:
    wr_free(sl.h[0]);
    wr_free(sl.h[1]);
    res->failed = rc != 0;
    wb_res_print(res, o);
    wr_free(res);
    return rc;
}

/* ---------------------------------------------------------------- main */

static void wb_usage(FILE *f)
{
    fprintf(f, "usage: weir bench log --workload W1|W2|W3|W4|W5|all [--dir SCRATCH] [--runs N]\n"
               "                      [--json] [--records N] [--inflight N] [--quick]\n"
               "  --dir       parent of the scratch directory weir-bench-<pid> (default /tmp)\n"
               "  --runs      repetitions per workload (default 3; medians need >= 3)\n"
               "  --json      one JSON object per workload/variant on stdout\n"
               "  --records   records per run instead of the workload default\n"
               "  --inflight  W2: appenders in flight (default: 64, then 1024)\n"
               "  --quick     smaller data sets (W4 256 MiB, W5 128 MiB, ...)\n");
}

static bool wb_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

int wb_log_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"workload", required_argument, NULL, 'w'},
                                             {"dir", required_argument, NULL, 'd'},
                                             {"runs", required_argument, NULL, 'r'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"records", required_argument, NULL, 'n'},
                                             {"inflight", required_argument, NULL, 'i'},
                                             {"quick", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *workload = NULL, *dir = "/tmp";
    wb_opts o;
    uint64_t v;
    int c, rc = 0;
    bool all, ran = false;
    wr_status st;

    memset(&o, 0, sizeof o);
    o.runs = 3;
    optind = 0; /* the CLI may have used getopt already: full reset */
    while ((c = getopt_long(argc, argv, "w:d:r:jn:i:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'w':
            workload = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'r':
            if (!wb_parse_u64(optarg, &v) || v < 1 || v > WB_MAX_RUNS) {
                fprintf(stderr, "weir bench log: --runs must be 1..%d\n", WB_MAX_RUNS);
                return 2;
            }
            o.runs = (unsigned)v;
            break;
        case 'j':
            o.json = true;
            break;
        case 'n':
            if (!wb_parse_u64(optarg, &v) || v < 1) {
                fprintf(stderr, "weir bench log: --records must be a positive integer\n");
                return 2;
            }
            o.records = v;
            break;
        case 'i':
            if (!wb_parse_u64(optarg, &v) || v < 1 || v > 1000000) {
                fprintf(stderr, "weir bench log: --inflight must be 1..1000000\n");
                return 2;
            }
            o.inflight = (uint32_t)v;
            break;
        case 'q':
            o.quick = true;
            break;
        case 'h':
            wb_usage(stdout);
            return 0;
        default:
            wb_usage(stderr);
            return 2;
        }
    }
    if (workload == NULL || optind < argc) {
        wb_usage(stderr);
        return 2;
    }
    all = strcmp(workload, "all") == 0;
    if (!all && !(strlen(workload) == 2 && (workload[0] == 'W' || workload[0] == 'w') &&
                  workload[1] >= '1' && workload[1] <= '5')) {
        fprintf(stderr, "weir bench log: unknown workload '%s' (W1..W5 or all)\n", workload);
        return 2;
    }
    if (o.runs < 3)
        fprintf(stderr, "weir bench log: warning: %u run(s); medians need >= 3\n", o.runs);
    if (snprintf(o.root, sizeof o.root, "%s/weir-bench-%ld", dir, (long)getpid()) >=
        (int)sizeof o.root) {
        fprintf(stderr, "weir bench log: --dir too long\n");
        return 2;
    }
    if ((st = wr_mkdir_p(o.root)) != WR_OK) {
        wb_fail(o.root, st);
        return 1;
    }
    if (!o.json)
        printf("weir %s bench log: scratch %s, %u run(s) per workload%s\n\n", WR_VERSION, o.root,
               o.runs, o.quick ? ", quick" : "");
    wb_progress("weir %s, scratch %s", WR_VERSION, o.root);
    fflush(stdout);
#define WB_WANT(n) (all || workload[1] == (n))
    if (WB_WANT('1')) {
        rc |= wb_w1(&o, 100);
        rc |= wb_w1(&o, 1024);
        ran = true;
    }
    if (WB_WANT('2')) {
        if (o.inflight) {
            rc |= wb_w2(&o, o.inflight);
        } else {
            rc |= wb_w2(&o, 64);
            rc |= wb_w2(&o, 1024);
        }
        ran = true;
    }
    if (WB_WANT('3')) {
        rc |= wb_w3(&o);
        ran = true;
    }
    if (WB_WANT('4')) {
        rc |= wb_w4(&o);
        ran = true;
    }
    if (WB_WANT('5')) {
        rc |= wb_w5(&o);
        ran = true;
    }
#undef WB_WANT
    (void)ran;
    if (getenv("WB_KEEP_SCRATCH") == NULL) /* debugging aid: keep the topics */
        wb_rmrf(o.root);
    else
        wb_progress("kept %s (WB_KEEP_SCRATCH)", o.root);
    wb_progress("done%s", rc ? " (with failures)" : "");
    return rc ? 1 : 0;
}

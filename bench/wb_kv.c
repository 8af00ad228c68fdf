/* wb_kv.c -- `weir bench kv`: the db_bench workloads against the LSM store (kv.h), with the
 * interface and JSON lines that bench/kv-peers.sh reads (bench/README.md, "KV peers").
 *
 * Workloads, with db_bench's semantics (keys: the zero-padded decimal "%016llu" of a key
 * number in [0, num), 16 bytes; values: 100 bytes; one thread unless named):
 *   fillseq          threads=1  fresh store, num puts, keys 0..num-1 in order
 *   fillrandom       threads=1  fresh store, num puts of key = rand % num (~63% distinct)
 *   overwrite        threads=1  num more random puts on the fillrandom store
 *   readrandom       threads=1, threads=2   num random gets per thread on that store
 *   seekrandom       threads=1  num x (new iterator, seek to a random key, up to 10 x next)
 *   readwhilewriting threads=1  1 reader doing num random gets (measured) + 1 writer putting
 *                               random keys without a pause until the reader is done
 *   fillrandom       sync=1     fresh store, --sync-num puts, WAL fdatasync per put
 * A workload of the fillrandom store that runs without fillrandom selected gets an untimed
 * fillrandom first. Values are the next 100 bytes of a 1 MiB buffer whose 100-byte pieces
 * are 50 random printable bytes repeated twice (db_bench's compressible-to-half generator);
 * the store does not compress (kv_options_default). Store options are kv_options_default()
 * (8 MiB memtable, 10-bit Bloom filter, 64 MiB block cache) plus the WAL: KV_WAL_NEVER (a
 * WAL written without fsync, db_bench's default) except KV_WAL_ALWAYS for sync=1.
 *
 * Processes: each workload runs in a forked child that opens the store, runs the op loop,
 * and, for the write workloads, flushes the memtable and waits for background compaction to
 * finish (db_bench's waitforcompaction) before it measures; it sends its figures to the
 * parent through a pipe. Like db_bench (one process per workload in kv-peers.sh), the peak
 * RSS and the write_bytes of /proc/self/io therefore belong to that workload alone. The
 * parent holds no store; it keeps the distinct-key bitmap in shared memory across the
 * children of one store, for space amplification.
 *
 * Metrics (the names kv-peers.sh and leveldb_peer use): ops_per_s (ops / wall time of the
 * op loop, all measured threads), p50_us/p99_us/p999_us (every op timed into a wr_hist),
 * found_pct (reads), write_amp (write_bytes growth over the child's life, after the flush and
 * compaction wait / puts x 116 B), space_amp (bytes allocated by the store's files,
 * st_blocks x 512 / distinct keys x 116 B), rss_mib (VmHWM of the child), seconds. Every
 * --runs repetition uses fresh store directories under --dir; the output gives the median,
 * min, max and spread of each metric (spread > 30% is flagged noisy). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv.h"
#include "wb.h"
#include "wb_util.h"
#include "wr.h"

#define WK_KEY       16
#define WK_VALUE     100
#define WK_USER      (WK_KEY + WK_VALUE) /* user bytes per put */
#define WK_GEN_BYTES (1u << 20)
#define WK_MAX_RUNS  32
#define WK_NEXTS     10   /* seekrandom: nexts after the seek (db_bench --seek_nexts=10) */
#define WK_NOISY     0.30 /* spread above this is flagged */
#define WK_QUIET_S   600  /* at most this long waiting for background work */

/* ---------------------------------------------------------------- workloads and metrics */
enum { M_OPS, M_P50, M_P99, M_P999, M_FOUND, M_WAMP, M_SAMP, M_RSS, M_SECS, M_COUNT };
static const char *const wk_mname[M_COUNT] = {"ops_per_s", "p50_us",    "p99_us",
                                              "p999_us",   "found_pct", "write_amp",
                                              "space_amp", "rss_mib",   "seconds"};
static const char *const wk_munit[M_COUNT] = {"op/s", "us", "us", "us", "%", "x", "x", "MiB", "s"};

enum { W_FILLSEQ, W_FILLRANDOM, W_OVERWRITE, W_READ1, W_READ2, W_SEEK, W_RWW, W_FILLSYNC, W_COUNT };
typedef enum { OP_FILLSEQ, OP_PUTRAND, OP_GET, OP_SEEK, OP_WRITER } wk_op;

typedef struct wk_workload {
    const char *name, *variant, *flag; /* flag: the --workload word that selects it */
    unsigned threads;
    bool write, sync, fresh; /* fresh: creates its store */
    wk_op op;
} wk_workload;

static const wk_workload wk_w[W_COUNT] = {
    {"fillseq", "threads=1", "fillseq", 1, true, false, true, OP_FILLSEQ},
    {"fillrandom", "threads=1", "fillrandom", 1, true, false, true, OP_PUTRAND},
    {"overwrite", "threads=1", "overwrite", 1, true, false, false, OP_PUTRAND},
    {"readrandom", "threads=1", "readrandom", 1, false, false, false, OP_GET},
    {"readrandom", "threads=2", "readrandom", 2, false, false, false, OP_GET},
    {"seekrandom", "threads=1", "seekrandom", 1, false, false, false, OP_SEEK},
    {"readwhilewriting", "threads=1", "readwhilewriting", 1, false, false, false, OP_GET},
    {"fillrandom", "sync=1", "fillsync", 1, true, true, true, OP_PUTRAND},
};

/* What a child reports through its pipe. */
typedef struct wk_report {
    bool ok;        /* the workload ran to the end without an error */
    bool truncated; /* stopped by --time-limit */
    uint64_t done;
    double m[M_COUNT];
    bool has[M_COUNT];
} wk_report;

typedef struct wk_series {
    unsigned cnt;
    double v[WK_MAX_RUNS];
} wk_series;

typedef struct wk_opts {
    uint64_t num, sync_num;
    unsigned runs;
    bool json;
    bool want[W_COUNT];
    double time_limit; /* seconds per op loop */
    char root[PATH_MAX];
} wk_opts;

/* Parent state. */
static wk_series wk_res[W_COUNT][M_COUNT];
static bool wk_failed[W_COUNT];
static unsigned wk_runs_ok[W_COUNT];
static char *wk_gen;       /* WK_GEN_BYTES of value data, read-only after setup */
static uint8_t *wk_live;   /* shared mapping: bit k set when key k was written to the store */
static size_t wk_live_len; /* bytes of wk_live */

/* ---------------------------------------------------------------- small helpers */
#define wk_say(...)       wb_say("kv", __VA_ARGS__)
#define wk_fail(what, st) wb_say_fail("kv", what, st)

static uint64_t wk_splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* db_bench's key: the zero-padded decimal of @i in 16 bytes. */
static void wk_key(char *k, uint64_t i)
{
    char tmp[WK_KEY + 1];
    snprintf(tmp, sizeof tmp, "%016" PRIu64, i % UINT64_C(10000000000000000));
    memcpy(k, tmp, WK_KEY);
}

static wr_status wk_gen_init(void)
{
    uint64_t s = 301;

    if ((wk_gen = wr_malloc(WK_GEN_BYTES)) == NULL)
        return WR_ERR_NOMEM;
    for (size_t pos = 0; pos < WK_GEN_BYTES; pos += WK_VALUE) {
        char piece[WK_VALUE / 2];
        size_t n = WK_GEN_BYTES - pos < WK_VALUE ? WK_GEN_BYTES - pos : WK_VALUE;
        for (size_t i = 0; i < sizeof piece; i++)
            piece[i] = (char)(' ' + (int)(wk_splitmix(&s) % 95));
        for (size_t i = 0; i < n; i++)
            wk_gen[pos + i] = piece[i % sizeof piece];
    }
    return WR_OK;
}

static uint64_t wk_write_bytes(void)
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

static double wk_hwm_mib(void)
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

/* Bytes allocated by the files of the store directory @dir (it is flat). */
static uint64_t wk_du(const char *dir)
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
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512u;
    }
    closedir(d);
    return total;
}

static int wk_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void wk_rmrf(const char *path)
{
    if (getenv("WB_KEEP_SCRATCH") == NULL)
        nftw(path, wk_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t wk_live_count(uint64_t nkeys)
{
    uint64_t live = 0;

    for (uint64_t i = 0; i < nkeys / 8 + 1 && i < wk_live_len; i++)
        live += (uint64_t)__builtin_popcount(wk_live[i]);
    return live;
}

/* ---------------------------------------------------------------- waiting for background work */
/* True while the store has work its background thread will pick up: an immutable memtable,
 * or a level whose score reaches 1 (kv_db.c: level 0 by file count against the trigger,
 * level n >= 1 by bytes against l1_bytes x 10^(n-1); the last level never compacts). */
static bool wk_busy(const kv_stats *s, const kv_options *o)
{
    double target = (double)o->l1_bytes;

    if (s->imm_memtables > 0 || s->files[0] >= o->l0_compaction_trigger)
        return true;
    for (int l = 1; l < 6; l++, target *= 10)
        if ((double)s->level_bytes[l] >= target)
            return true;
    return false;
}

/* Like db_bench's waitforcompaction: poll until no flush or compaction is due and nothing
 * changed for 3 polls (100 ms apart), at most WK_QUIET_S seconds. False on a background
 * error or the time limit. */
static bool wk_wait_quiet(kv_db *db, const kv_options *o)
{
    uint64_t t0 = wr_now_ns(), last_w = UINT64_MAX, last_c = UINT64_MAX;
    unsigned still = 0;
    kv_stats s;

    while (still < 3) {
        kv_stats_get(db, &s);
        if (s.bg_error[0]) {
            wk_say("background error: %s", s.bg_error);
            return false;
        }
        if (!wk_busy(&s, o) && s.bytes_written == last_w && s.compactions == last_c)
            still++;
        else
            still = 0;
        last_w = s.bytes_written;
        last_c = s.compactions;
        if (wr_now_ns() - t0 > UINT64_C(1000000000) * WK_QUIET_S) {
            wk_say("background work still busy after %d s", WK_QUIET_S);
            return false;
        }
        wr_sleep_ns(100000000);
    }
    return true;
}

/* ---------------------------------------------------------------- the child: op loops */
typedef struct wk_worker {
    pthread_t th;
    kv_db *db; /* borrowed */
    wk_op op;
    uint64_t n, nkeys, seed;
    uint64_t deadline_ns;
    atomic_bool *stop; /* OP_WRITER: runs until set */
    wr_hist *h;        /* owned; NULL for the unmeasured writer */
    uint64_t done, found, t_start, t_end;
    bool truncated;
    wr_status err;
} wk_worker;

static void *wk_worker_run(void *arg)
{
    wk_worker *w = arg;
    uint64_t rng = w->seed, gpos = (w->seed % 1024) * WK_VALUE;
    volatile unsigned sink = 0;
    wr_buf val = {0};
    char key[WK_KEY];
    wr_status st = WR_OK;

    w->t_start = wr_now_ns();
    for (uint64_t i = 0; w->op == OP_WRITER || i < w->n; i++) {
        uint64_t k, t0, t1;

        if ((i & 255) == 0) {
            if (w->op == OP_WRITER ? atomic_load(w->stop) : wr_now_ns() > w->deadline_ns) {
                w->truncated = w->op != OP_WRITER;
                break;
            }
        }
        k = w->op == OP_FILLSEQ ? i : wk_splitmix(&rng) % w->nkeys;
        wk_key(key, k);
        if (w->op == OP_FILLSEQ || w->op == OP_PUTRAND || w->op == OP_WRITER) {
            if (gpos + WK_VALUE > WK_GEN_BYTES)
                gpos = 0;
            t0 = wr_now_ns();
            st = kv_put(w->db, wr_bytes_of(key, WK_KEY), wr_bytes_of(wk_gen + gpos, WK_VALUE));
            t1 = wr_now_ns();
            if (st != WR_OK) {
                wk_fail("kv_put", st);
                break;
            }
            gpos += WK_VALUE;
            if (k / 8 < wk_live_len) /* one writer thread per store at a time: no race */
                wk_live[k / 8] |= (uint8_t)(1u << (k % 8));
        } else if (w->op == OP_GET) {
            t0 = wr_now_ns();
            st = kv_get(w->db, NULL, wr_bytes_of(key, WK_KEY), &val);
            t1 = wr_now_ns();
            if (st == WR_OK) {
                w->found++;
                sink += val.len ? val.ptr[0] + val.ptr[val.len - 1] : 0;
            } else if (st != WR_ERR_NOTFOUND) {
                wk_fail("kv_get", st);
                break;
            }
            st = WR_OK;
        } else {
            kv_iter *it = NULL;

            t0 = wr_now_ns();
            if ((st = kv_iter_open(w->db, NULL, &it)) == WR_OK &&
                (st = kv_iter_seek(it, wr_bytes_of(key, WK_KEY))) == WR_OK) {
                if (kv_iter_valid(it)) {
                    wr_bytes ik = kv_iter_key(it);
                    if (ik.len == WK_KEY && memcmp(ik.ptr, key, WK_KEY) == 0)
                        w->found++;
                }
                for (unsigned j = 0; j < WK_NEXTS && st == WR_OK && kv_iter_valid(it); j++) {
                    wr_bytes v = kv_iter_value(it);
                    sink += v.len ? v.ptr[0] : 0;
                    st = kv_iter_next(it);
                }
                if (st == WR_EOF)
                    st = WR_OK;
            }
            kv_iter_close(it);
            t1 = wr_now_ns();
            if (st != WR_OK) {
                wk_fail("iterator", st);
                break;
            }
        }
        if (w->h != NULL)
            wr_hist_record(w->h, t1 - t0);
        w->done++;
    }
    w->t_end = wr_now_ns();
    w->err = st;
    wr_buf_fini(&val);
    (void)sink;
    return NULL;
}

/* Run workload @wi on the store in @dir in this (child) process and fill @r. */
static void wk_child(const wk_opts *o, unsigned wi, const char *dir, unsigned run, wk_report *r)
{
    const wk_workload *wl = &wk_w[wi];
    uint64_t n = wl->sync ? o->sync_num : o->num, wb0 = wk_write_bytes();
    uint64_t t_start = UINT64_MAX, t_end = 0, done = 0, found = 0;
    unsigned nt = wl->threads;
    bool started[3] = {false, false, false};
    wk_worker ws[3];
    atomic_bool stop = false;
    wr_hist *total = NULL;
    kv_options ko;
    kv_db *db = NULL;
    wr_status st;
    double secs;
    bool ok = true;

    memset(r, 0, sizeof *r);
    memset(ws, 0, sizeof ws);
    kv_options_default(&ko);
    ko.wal = wl->sync ? KV_WAL_ALWAYS : KV_WAL_NEVER;
    ko.create_if_missing = wl->fresh;
    ko.error_if_exists = wl->fresh;
    if ((st = kv_open(dir, &ko, &db)) != WR_OK) {
        wk_fail(dir, st);
        return;
    }
    if ((total = wr_malloc(sizeof *total)) == NULL)
        goto out;
    wr_hist_init(total);
    for (unsigned i = 0; i < nt + (wi == W_RWW); i++) {
        bool writer = i == nt;

        ws[i] = (wk_worker){.db = db,
                            .op = writer ? OP_WRITER : wl->op,
                            .n = n,
                            .nkeys = n,
                            .seed = writer ? 1000u * run + 999u : 1000u * run + 10u * wi + i + 1,
                            .deadline_ns = wr_now_ns() + (uint64_t)(o->time_limit * 1e9),
                            .stop = &stop};
        if (!writer && (ws[i].h = wr_malloc(sizeof(wr_hist))) == NULL) {
            ok = false;
            break;
        }
        if (ws[i].h)
            wr_hist_init(ws[i].h);
    }
    /* The writer of readwhilewriting starts first, so that every read runs under writes. */
    if (ok && wi == W_RWW) {
        if (pthread_create(&ws[nt].th, NULL, wk_worker_run, &ws[nt]) == 0)
            started[nt] = true;
        else
            ok = false;
    }
    for (unsigned i = 0; ok && i < nt; i++) {
        if (pthread_create(&ws[i].th, NULL, wk_worker_run, &ws[i]) == 0)
            started[i] = true;
        else
            ok = false;
    }
    if (!ok)
        wk_say("cannot start a thread");
    for (unsigned i = 0; i < nt; i++) {
        if (!started[i])
            continue;
        pthread_join(ws[i].th, NULL);
        wr_hist_merge(total, ws[i].h);
        done += ws[i].done;
        found += ws[i].found;
        r->truncated |= ws[i].truncated;
        ok = ok && ws[i].err == WR_OK;
        if (ws[i].t_start < t_start)
            t_start = ws[i].t_start;
        if (ws[i].t_end > t_end)
            t_end = ws[i].t_end;
    }
    if (started[nt]) { /* the writer: stop it once the reader is done */
        atomic_store(&stop, true);
        pthread_join(ws[nt].th, NULL);
        ok = ok && ws[nt].err == WR_OK;
    }
    if (!ok || done == 0)
        goto out;
    secs = (double)(t_end - t_start) / 1e9;
    r->done = done;
    r->m[M_OPS] = secs > 0 ? (double)done / secs : 0.0;
    r->m[M_P50] = (double)wr_hist_quantile(total, 0.50) / 1e3;
    r->m[M_P99] = (double)wr_hist_quantile(total, 0.99) / 1e3;
    r->m[M_P999] = (double)wr_hist_quantile(total, 0.999) / 1e3;
    r->m[M_SECS] = secs;
    r->has[M_OPS] = r->has[M_P50] = r->has[M_P99] = r->has[M_P999] = r->has[M_SECS] = true;
    if (wl->write) {
        uint64_t live = wk_live_count(n);

        if ((st = kv_flush(db)) != WR_OK) {
            wk_fail("kv_flush", st);
            goto out;
        }
        if (!wk_wait_quiet(db, &ko))
            goto out;
        r->m[M_WAMP] = (double)(wk_write_bytes() - wb0) / ((double)done * WK_USER);
        r->m[M_SAMP] = live ? (double)wk_du(dir) / ((double)live * WK_USER) : 0.0;
        r->has[M_WAMP] = r->has[M_SAMP] = true;
    } else {
        r->m[M_FOUND] = 100.0 * (double)found / (double)done;
        r->has[M_FOUND] = true;
    }
    r->m[M_RSS] = wk_hwm_mib();
    r->has[M_RSS] = true;
    r->ok = true;
out:
    for (unsigned i = 0; i < 3; i++)
        wr_free(ws[i].h);
    wr_free(total);
    kv_close(db);
}

/* Fork a child for workload @wi; fold its report into the results unless @untimed. */
static bool wk_run(const wk_opts *o, unsigned wi, const char *dir, unsigned run, bool untimed)
{
    const wk_workload *wl = &wk_w[wi];
    wk_report r;
    int pfd[2], status = 0;
    size_t got = 0;
    pid_t pid;

    wk_say("run %u/%u: %s %s%s (num=%" PRIu64 ")...", run + 1, o->runs, wl->name, wl->variant,
           untimed ? " (untimed, to build the store)" : "", wl->sync ? o->sync_num : o->num);
    memset(&r, 0, sizeof r);
    if (pipe(pfd) != 0) {
        wk_say("pipe: %s", strerror(errno));
        return false;
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        wk_say("fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return false;
    }
    if (pid == 0) {
        const uint8_t *p = (const uint8_t *)&r;
        close(pfd[0]);
        wk_child(o, wi, dir, run, &r);
        for (size_t off = 0; off < sizeof r;) {
            ssize_t w = write(pfd[1], p + off, sizeof r - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        _exit(r.ok ? 0 : 1);
    }
    close(pfd[1]);
    while (got < sizeof r) {
        ssize_t n = read(pfd[0], (uint8_t *)&r + got, sizeof r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof r || !WIFEXITED(status)) {
        wk_say("%s %s: the child process %s", wl->name, wl->variant,
               WIFSIGNALED(status) ? "was killed by a signal" : "did not report");
        r.ok = false;
    }
    if (r.truncated)
        wk_say("%s %s stopped by --time-limit after %" PRIu64 " ops", wl->name, wl->variant,
               r.done);
    if (untimed)
        return r.ok;
    if (!r.ok || r.truncated)
        wk_failed[wi] = true;
    if (r.ok)
        wk_runs_ok[wi]++;
    for (unsigned m = 0; m < M_COUNT; m++) {
        wk_series *s = &wk_res[wi][m];
        if (r.has[m] && s->cnt < WK_MAX_RUNS)
            s->v[s->cnt++] = r.m[m];
    }
    if (r.ok)
        wk_say("run %u/%u: %s %s: %.0f ops/s, p99 %.1f us, %s %.3g%s, RSS %.1f MiB", run + 1,
               o->runs, wl->name, wl->variant, r.m[M_OPS], r.m[M_P99],
               wl->write ? "write amp" : "found", wl->write ? r.m[M_WAMP] : r.m[M_FOUND],
               wl->write ? "" : "%", r.m[M_RSS]);
    return r.ok;
}

/* ---------------------------------------------------------------- output */

static void wk_print(const wk_opts *o, unsigned wi)
{
    const wk_workload *wl = &wk_w[wi];
    uint64_t n = wl->sync ? o->sync_num : o->num;
    bool noisy_any = false, first = true;
    char params[512];
    kv_options ko;

    kv_options_default(&ko);
    snprintf(params, sizeof params,
             "\"num\":%" PRIu64 ",\"key_bytes\":%d,\"value_bytes\":%d,\"threads\":%u,"
             "\"sync\":%s,\"wal\":\"%s\",\"seek_nexts\":%d,\"bloom_bits\":%" PRIu32
             ",\"memtable_bytes\":%zu,\"block_cache\":%zu,\"compression\":\"%s\","
             "\"writer_threads\":%d,\"time_limit_s\":%.0f",
             n, WK_KEY, WK_VALUE, wl->threads, wl->sync ? "true" : "false",
             wl->sync ? "always" : "never", wi == W_SEEK ? WK_NEXTS : 0, ko.bloom_bits_per_key,
             ko.memtable_bytes, ko.block_cache_bytes, ko.compress ? "zstd" : "none",
             wi == W_RWW ? 1 : 0, o->time_limit);
    if (o->json) {
        printf("{\"bench\":\"kv\",\"version\":\"%s\",\"workload\":\"%s\",\"variant\":\"%s\","
               "\"ok\":%s,\"runs\":%u,\"params\":{%s},\"metrics\":{",
               WR_VERSION, wl->name, wl->variant,
               wk_failed[wi] || wk_runs_ok[wi] == 0 ? "false" : "true", wk_runs_ok[wi], params);
        for (unsigned m = 0; m < M_COUNT; m++) {
            const wk_series *s = &wk_res[wi][m];
            wb_summary su;

            if (s->cnt == 0)
                continue;
            su = wb_summarize(s->v, s->cnt);
            noisy_any |= su.spread > WK_NOISY;
            printf("%s\"%s\":{\"unit\":\"%s\",\"median\":%.10g,\"min\":%.10g,\"max\":%.10g,"
                   "\"spread\":%.4f,\"noisy\":%s,\"values\":[",
                   first ? "" : ",", wk_mname[m], wk_munit[m], su.median, su.min, su.max, su.spread,
                   su.spread > WK_NOISY ? "true" : "false");
            for (unsigned j = 0; j < s->cnt; j++)
                printf("%s%.10g", j ? "," : "", s->v[j]);
            printf("]}");
            first = false;
        }
        printf("},\"noisy\":%s}\n", noisy_any ? "true" : "false");
    } else {
        printf("%s %s%s  (num=%" PRIu64 ", WAL %s%s%s)\n", wl->name, wl->variant,
               wk_failed[wi] || wk_runs_ok[wi] == 0 ? "  FAILED" : "", n,
               wl->sync ? "fdatasync per put" : "without fsync",
               wi == W_SEEK ? ", seek + 10 next" : "", wi == W_RWW ? ", + 1 writer" : "");
        printf("  %-12s %12s %12s %12s %8s\n", "metric", "median", "min", "max", "spread");
        for (unsigned m = 0; m < M_COUNT; m++) {
            const wk_series *s = &wk_res[wi][m];
            wb_summary su;

            if (s->cnt == 0)
                continue;
            su = wb_summarize(s->v, s->cnt);
            printf("  %-12s %12.4g %12.4g %12.4g %7.1f%%%s\n", wk_mname[m], su.median, su.min,
                   su.max, su.spread * 100.0, su.spread > WK_NOISY ? "  NOISY (spread > 30%)" : "");
        }
        printf("\n");
    }
    fflush(stdout);
}

/* ---------------------------------------------------------------- main */
static void wk_usage(FILE *f)
{
    fprintf(f,
            "usage: weir bench kv --workload W[,W...]|all [--num N] [--sync-num N] [--runs N]\n"
            "                     [--dir SCRATCH] [--json] [--time-limit S]\n"
            "\n"
            "db_bench's workloads against weir's LSM store: 16-byte keys (\"%%016llu\" of the\n"
            "key number), 100-byte values, store defaults (8 MiB memtable, 10-bit Bloom\n"
            "filter, no compression), WAL without fsync except fillsync; each workload in a\n"
            "forked process; fresh stores for every run. bench/README.md, \"KV peers\".\n"
            "\n"
            "workloads (JSON \"workload\" / \"variant\"):\n"
            "  fillseq           fillseq / threads=1: num puts, keys in order, fresh store\n"
            "  fillrandom        fillrandom / threads=1: num puts of rand %% num, fresh store\n"
            "  overwrite         overwrite / threads=1: num more random puts on that store\n"
            "  readrandom        readrandom / threads=1 and threads=2: num random gets per thread\n"
            "  seekrandom        seekrandom / threads=1: new iterator, seek, up to 10 next\n"
            "  readwhilewriting  readwhilewriting / threads=1: 1 reader (measured), 1 writer\n"
            "  fillsync          fillrandom / sync=1: sync-num puts, fdatasync per put\n"
            "  all               every one, in this order (the reads use the fillrandom +\n"
            "                    overwrite store; selected alone they get an untimed fillrandom)\n"
            "\n"
            "flags:\n"
            "  --num N         keys, and ops per workload per thread (default 1000000)\n"
            "  --sync-num N    puts of fillsync (default 20000)\n"
            "  --runs N        repetitions, medians reported (default 3; 1..%d)\n"
            "  --dir SCRATCH   parent of the scratch directory weir-bench-kv-<pid> (default /tmp)\n"
            "  --json          one JSON object per workload/variant on stdout (bench/README.md)\n"
            "  --time-limit S  seconds per op loop before it stops and the workload is marked\n"
            "                  failed (default 600)\n"
            "  -h, --help      show this help\n"
            "\n"
            "metrics: ops_per_s, p50_us, p99_us, p999_us (every op timed), found_pct (reads),\n"
            "write_amp (process write_bytes after flush + compaction wait / puts x 116 B),\n"
            "space_amp (allocated bytes of the store / distinct keys x 116 B), rss_mib (peak\n"
            "RSS of the workload's process), seconds. Progress goes to stderr.\n",
            WK_MAX_RUNS);
}

static bool wk_parse_u64(const char *s, uint64_t *out)
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

/* "fillseq,readrandom" or "all" -> o->want. False on an unknown name. */
static bool wk_parse_workloads(const char *s, wk_opts *o)
{
    char buf[256], *save = NULL;

    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
        return false;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool hit = false;
        for (unsigned w = 0; w < W_COUNT; w++)
            if (strcmp(t, "all") == 0 || strcmp(t, wk_w[w].flag) == 0) {
                o->want[w] = true;
                hit = true;
            }
        if (!hit) {
            wk_say("unknown workload '%s' (fillseq, fillrandom, overwrite, readrandom, "
                   "seekrandom, readwhilewriting, fillsync or all)",
                   t);
            return false;
        }
    }
    return true;
}

/* A fresh store directory @name under the scratch root. */
static void wk_store_path(const wk_opts *o, char *dst, size_t cap, unsigned run, const char *name)
{
    snprintf(dst, cap, "%s/r%u-%s", o->root, run, name);
}

static void wk_live_reset(void)
{
    memset(wk_live, 0, wk_live_len);
}

int wb_kv_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"workload", required_argument, NULL, 'w'},
                                             {"num", required_argument, NULL, 'n'},
                                             {"sync-num", required_argument, NULL, 's'},
                                             {"runs", required_argument, NULL, 'r'},
                                             {"dir", required_argument, NULL, 'd'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"time-limit", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *workload = NULL, *dir = "/tmp";
    char path[PATH_MAX + 64];
    wk_opts o;
    uint64_t v;
    int c, rc = 0;
    bool need_random = false;
    wr_status st;

    memset(&o, 0, sizeof o);
    o.num = 1000000;
    o.sync_num = 20000;
    o.runs = 3;
    o.time_limit = 600;
    optind = 0; /* the CLI may have used getopt already: full reset */
    while ((c = getopt_long(argc, argv, "w:n:s:r:d:jt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'w':
            workload = optarg;
            break;
        case 'n':
        case 's':
            if (!wk_parse_u64(optarg, &v) || v < 1 || v > UINT64_C(1000000000000)) {
                wk_say("--%s must be a positive integer", c == 'n' ? "num" : "sync-num");
                return 2;
            }
            *(c == 'n' ? &o.num : &o.sync_num) = v;
            break;
        case 'r':
            if (!wk_parse_u64(optarg, &v) || v < 1 || v > WK_MAX_RUNS) {
                wk_say("--runs must be 1..%d", WK_MAX_RUNS);
                return 2;
            }
            o.runs = (unsigned)v;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 't':
            if (!wk_parse_u64(optarg, &v) || v < 1 || v > 86400) {
                wk_say("--time-limit must be 1..86400 seconds");
                return 2;
            }
            o.time_limit = (double)v;
            break;
        case 'h':
            wk_usage(stdout);
            return 0;
        default:
            wk_usage(stderr);
            return 2;
        }
    }
    if (workload == NULL || optind < argc) {
        if (workload == NULL)
            wk_say("--workload is required");
        else
            wk_say("unexpected argument '%s'", argv[optind]);
        wk_usage(stderr);
        return 2;
    }
    if (!wk_parse_workloads(workload, &o))
        return 2;
    if (o.runs < 3)
        wk_say("warning: %u run(s); medians need >= 3", o.runs);
    if (snprintf(o.root, sizeof o.root, "%s/weir-bench-kv-%ld", dir, (long)getpid()) >=
        (int)sizeof o.root) {
        wk_say("--dir too long");
        return 2;
    }
    if ((st = wr_mkdir_p(o.root)) != WR_OK) {
        wk_fail(o.root, st);
        return 1;
    }
    if (wk_gen_init() != WR_OK) {
        wk_say("out of memory");
        return 1;
    }
    wk_live_len = (size_t)((o.num > o.sync_num ? o.num : o.sync_num) / 8 + 1);
    wk_live = mmap(NULL, wk_live_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (wk_live == MAP_FAILED) {
        wk_say("mmap of the key bitmap (%zu bytes): %s", wk_live_len, strerror(errno));
        wr_free(wk_gen);
        return 1;
    }
    for (unsigned w = W_OVERWRITE; w <= W_RWW; w++)
        need_random |= o.want[w];
    wk_say("weir %s, scratch %s, num=%" PRIu64 ", sync-num=%" PRIu64 ", runs=%u", WR_VERSION,
           o.root, o.num, o.sync_num, o.runs);
    for (unsigned run = 0; run < o.runs; run++) {
        if (o.want[W_FILLSEQ]) {
            wk_store_path(&o, path, sizeof path, run, "fillseq");
            wk_live_reset();
            rc |= !wk_run(&o, W_FILLSEQ, path, run, false);
            wk_rmrf(path);
        }
        if (o.want[W_FILLRANDOM] || need_random) {
            wk_store_path(&o, path, sizeof path, run, "random");
            wk_live_reset();
            if (!wk_run(&o, W_FILLRANDOM, path, run, !o.want[W_FILLRANDOM])) {
                rc = 1;
                for (unsigned w = W_OVERWRITE; w <= W_RWW; w++)
                    wk_failed[w] |= o.want[w]; /* no store to run them on */
            } else {
                for (unsigned w = W_OVERWRITE; w <= W_RWW; w++)
                    if (o.want[w])
                        rc |= !wk_run(&o, w, path, run, false);
            }
            wk_rmrf(path);
        }
        if (o.want[W_FILLSYNC]) {
            wk_store_path(&o, path, sizeof path, run, "sync");
            wk_live_reset();
            rc |= !wk_run(&o, W_FILLSYNC, path, run, false);
            wk_rmrf(path);
        }
    }
    if (!o.json)
        printf("weir %s bench kv: keys 16 B, values 100 B, store defaults, num=%" PRIu64
               ", sync-num=%" PRIu64 "; medians of %u run(s)\n\n",
               WR_VERSION, o.num, o.sync_num, o.runs);
    for (unsigned w = 0; w < W_COUNT; w++)
        if (o.want[w])
            wk_print(&o, w);
    if (getenv("WB_KEEP_SCRATCH") == NULL)
        rmdir(o.root);
    else
        wk_say("kept %s (WB_KEEP_SCRATCH)", o.root);
    munmap(wk_live, wk_live_len);
    wr_free(wk_gen);
    wk_say("done%s", rc ? " (with failures)" : "");
    return rc ? 1 : 0;
}

/* tests/kv/test_kv_fault.c -- crash safety of the store's write paths (issue 4): an I/O fault
 * injected at the N-th write/sync/create/rename/directory-sync during a workload that flushes,
 * compacts and updates the MANIFEST, then a crash, then a reopen compared with the reference.
 *
 * One fault point = (class, N, errno, crash model). For each point a forked child opens a fresh
 * store with small limits (64 KiB memtables and SSTs, L0 trigger 2, L1 256 KiB, WAL always), arms
 * the common fault hook (wr_fault_set) to fail the N-th operation of the class, and runs a seeded
 * workload of puts, deletes and 3-key batches in two halves with a clean kv_close and kv_open
 * between them (so recovery's WAL replay, flush, new MANIFEST and CURRENT swap are fault points
 * too), marking each operation ACKED in shared memory only after kv_put/kv_delete/kv_write returned
 * WR_OK (it is marked UNKNOWN before the call, so a crash inside it leaves it ambiguous). The child
 * stops at the first refused write (or at the end of the workload), freezes the hook and _exit()s:
 * to the store, a kill -9 (the background thread dies wherever it is). The parent then
 *   - for the power-cut model, undoes what was not durable: every file is cut back to the
 *     length it had at its last successful sync (ENOSPC points keep a random prefix of the
 *     unsynced bytes: a torn write), files created or renamed since the last directory fsync
 *     lose their directory entry (a rename is reverted), as the hook recorded them (unlinks
 *     are not modelled: a file the store deleted stays deleted);
 *   - reopens the store, which must succeed, and checks with kv_get that every key holds a
 *     value some order of the ACKED and UNKNOWN operations allows (an ACKED write is never
 *     lost or reordered, a failed batch is all or nothing), that kv_stats shows a consistent
 *     structure (no background error, each level's file count matches its bytes, the sequence
 *     covers every acknowledged record) and that the directory holds exactly the files the
 *     store references (no orphan SST, one WAL, one MANIFEST);
 *   - overwrites every key, flushes, reopens once more and checks the new values won (a
 *     recovered sequence number below an SST's would hide them);
 *   - checks that a refused write reported a clear error: WR_ERR_IO/FULL/FAILED, with the
 *     injected errno's text and the store's path in wr_errmsg().
 *
 * Classes: "meta" is every operation except WAL appends: SST writes and syncs (flush and
 * compaction), MANIFEST create/append/sync, CURRENT's temp write/sync/rename, WAL creation and
 * directory fsyncs, all of them exhaustively; "wal" is the WAL's record writes and syncs, of
 * which an even sample is run (there are thousands, all alike). Each chosen operation is run
 * under both crash models, once with EIO and once with ENOSPC (a half-written write).
 *
 * Environment: WEIR_KV_FAULT_ITERS (default 440, 220 under a sanitizer) bounds the fault points
 * run; a value at or above twice the operation count makes every operation of both classes a fault
 * point. WEIR_KV_FAULT_SEED sets the workload seed; WEIR_KV_FAULT_ONLY=class:N:errno:model (model
 * "kill" or "power") replays one point; WEIR_KV_FAULT_DIR chooses the parent of the store
 * directories (default /dev/shm when writable: the fault model, not the disk, decides what
 * survives, and tmpfs keeps thousands of fsyncs cheap). A failure prints the seed and point.
 *
 * Two bugs this test found in kv_db.c are fixed (a number reused after a crash made the store
 * unopenable; compaction outputs were deleted after a failed MANIFEST sync whose edit a reopen
 * applies): by default they fail the test like any other; WEIR_KV_FAULT_STRICT=0 turns their
 * detection (known_orphan_collision, known_deleted_outputs) back into counted warnings that let
 * the other checks go on, for bisecting old commits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"

#define NKEYS    1000
#define NOPS     1500
#define MAXFILES 512
#define MAXREN   64
#define NAMELEN  64

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_ITERS 220 /* a sanitizer makes each point about three times slower */
#else
#define DEFAULT_ITERS 440
#endif

enum { CL_META, CL_WAL, CL_N };
static const char *const class_name[CL_N] = {"meta", "wal"};
enum { M_KILL, M_POWER };
enum { OP_NOTRUN = 0, OP_UNKNOWN, OP_ACKED };
enum { W_PUT, W_DEL, W_BATCH };

typedef struct wop {
    int kind;
    int cnt; /* keys: 1, or 3 for a batch (all puts) */
    int key[3];
} wop;

typedef struct ffile {  /* what the hook knows about one file of the store */
    char name[NAMELEN]; /* basename; "" = slot free */
    int64_t synced;     /* bytes durable (length at the last successful sync) */
    bool entry_durable; /* its directory entry survived a directory fsync */
} ffile;

typedef struct fren { /* a rename the directory fsync has not made durable yet */
    char from[NAMELEN], to[NAMELEN];
    char old[128]; /* the old content of @to (CURRENT is small), when had_old */
    int old_len;
    bool had_old;
} fren;

typedef struct shared { /* MAP_SHARED: written by the child, read by the parent after it died */
    pthread_mutex_t mu; /* the child's threads only */
    /* the fault point */
    bool armed, fired, frozen, torn;
    int cls, err;
    uint64_t target;
    uint64_t cnt[CL_N];
    char fired_desc[200];
    /* the power-cut model */
    ffile files[MAXFILES];
    fren ren[MAXREN];
    int ren_cnt;
    bool overflow;
    /* the workload's outcome */
    uint8_t state[NOPS];
    int open_failed;
    int fail_op; /* first refused operation, -1 if none */
    wr_status fail_st;
    char fail_msg[600];
    char bg_error[160];
    uint64_t flushes, compactions; /* kv_stats at the end of the child */
    uint64_t close_from, close_to; /* meta operations before and after the mid-way kv_close */
} shared;

static shared *S;
static wop ops[NOPS];
static char root[PATH_MAX], dir[PATH_MAX + 32];
static unsigned long long seed = 1;

/* ---------------------------------------------------------------- workload */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void gen_ops(void)
{
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int i = 0; i < NOPS; i++) {
        unsigned r = (unsigned)(rnd() % 10);
        wop *o = &ops[i];
        o->kind = r < 6 ? W_PUT : r < 8 ? W_DEL : W_BATCH;
        o->cnt = o->kind == W_BATCH ? 3 : 1;
        o->key[0] = (int)(rnd() % NKEYS);
        for (int j = 1; j < o->cnt; j++)
            o->key[j] = (o->key[0] + j * 7) % NKEYS;
    }
}

static void key_of(int k, char *buf)
{
    snprintf(buf, 16, "key-%05d", k);
}

/* The value operation @op writes to key @k: "k<k>-op<op>-" then filler, 100..699 bytes. */
static size_t value_of(int k, int op, char *buf)
{
    uint64_t h = (uint64_t)k * 1000003u + (uint64_t)op * 7919u + seed;
    size_t n = 100 + (size_t)(h % 600), at;
    at = (size_t)snprintf(buf, 32, "k%05d-op%06d-", k, op);
    for (size_t i = at; i < n; i++)
        buf[i] = (char)('a' + (h >> (i % 40)) % 26);
    return n;
}

static wr_status do_op(kv_db *db, int i)
{
    char key[16], val[800];
    const wop *o = &ops[i];
    kv_batch *b;
    wr_status st;

    key_of(o->key[0], key);
    if (o->kind == W_DEL)
        return kv_delete(db, wr_bytes_str(key));
    if (o->kind == W_PUT)
        return kv_put(db, wr_bytes_str(key), wr_bytes_of(val, value_of(o->key[0], i, val)));
    if ((st = kv_batch_create(&b)) != WR_OK)
        return st;
    for (int j = 0; j < o->cnt && st == WR_OK; j++) {
        key_of(o->key[j], key);
        st = kv_batch_put(b, wr_bytes_str(key), wr_bytes_of(val, value_of(o->key[j], i, val)));
    }
    if (st == WR_OK)
        st = kv_write(db, b);
    kv_batch_destroy(b);
    return st;
}

static void opts_small(kv_options *o)
{
    kv_options_default(o);
    o->wal = KV_WAL_ALWAYS;
    o->memtable_bytes = 64u << 10;
    o->sst_bytes = 64u << 10;
    o->l0_compaction_trigger = 2;
    o->l1_bytes = 256u << 10;
}

/* For the checks: no compaction starts, so the directory is stable while it is listed. */
static void opts_check(kv_options *o)
{
    opts_small(o);
    o->wal = KV_WAL_NEVER;
    o->l0_compaction_trigger = 1000;
    o->l0_slowdown_writes = 2000;
    o->l0_stop_writes = 3000;
    o->l1_bytes = 1ull << 40;
}

/* ---------------------------------------------------------------- the hook (child) */

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static ffile *file_get(const char *name, bool add)
{
    ffile *free_slot = NULL;
    for (int i = 0; i < MAXFILES; i++) {
        if (strcmp(S->files[i].name, name) == 0)
            return &S->files[i];
        if (free_slot == NULL && S->files[i].name[0] == '\0')
            free_slot = &S->files[i];
    }
    if (!add)
        return NULL;
    for (int i = 0; i < MAXFILES && free_slot == NULL; i++) { /* forget files the store deleted */
        char p[PATH_MAX + NAMELEN + 2];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, S->files[i].name);
        if (stat(p, &st) != 0 && errno == ENOENT)
            free_slot = &S->files[i];
    }
    if (free_slot == NULL || strlen(name) >= NAMELEN) {
        S->overflow = true;
        return NULL;
    }
    snprintf(free_slot->name, NAMELEN, "%.*s", NAMELEN - 1, name);
    free_slot->synced = 0;
    free_slot->entry_durable = false;
    return free_slot;
}

/* Record an operation that takes (or, for a torn write, partly takes) effect. */
static void model_note(const wr_fault_io *io, const char *name, bool failed)
{
    ffile *f;
    struct stat st;

    switch (io->op) {
    case WR_FAULT_OPEN: /* a new (or truncated) file: nothing durable, no durable entry */
        if (!failed && (f = file_get(name, true)) != NULL) {
            f->synced = 0;
            f->entry_durable = false;
        }
        break;
    case WR_FAULT_WRITE:
        (void)file_get(name, true); /* SSTs are created without the hook: first seen here */
        break;
    case WR_FAULT_SYNC:
        if (!failed && (f = file_get(name, true)) != NULL && fstat(io->fd, &st) == 0)
            f->synced = st.st_size;
        break;
    case WR_FAULT_RENAME:
        if (!failed && io->path2 != NULL) {
            const char *to = base_of(io->path2);
            ffile *src = file_get(name, false), *dst = file_get(to, true);
            fren *r;
            int fd;
            if (S->ren_cnt == MAXREN) {
                S->overflow = true;
                break;
            }
            r = &S->ren[S->ren_cnt++];
            snprintf(r->from, NAMELEN, "%.*s", NAMELEN - 1, name);
            snprintf(r->to, NAMELEN, "%.*s", NAMELEN - 1, to);
            r->had_old = false;
            if ((fd = open(io->path2, O_RDONLY | O_CLOEXEC)) >= 0) {
                ssize_t n = read(fd, r->old, sizeof(r->old));
                r->had_old = n >= 0;
                r->old_len = n > 0 ? (int)n : 0;
                close(fd);
            }
            if (dst != NULL) {
                dst->synced = src ? src->synced : 0;
                dst->entry_durable = false;
            }
            if (src != NULL)
                src->name[0] = '\0';
        }
        break;
    case WR_FAULT_SYNC_DIR:
        if (!failed) {
            for (int i = 0; i < MAXFILES; i++)
                S->files[i].entry_durable = true;
            S->ren_cnt = 0;
        }
        break;
    }
}

static const char *const op_name[] = {"create", "write", "sync", "rename", "dirsync"};

static int hook(void *ctx, wr_fault_io *io)
{
    char lnk[64], buf[PATH_MAX];
    const char *path = io->path;
    const char *name;
    int cls, inject = 0;
    uint64_t n;
    (void)ctx;

    if (path == NULL && io->fd >= 0) { /* wr_ring_pwrite_all knows only the descriptor */
        ssize_t k;
        snprintf(lnk, sizeof(lnk), "/proc/self/fd/%d", io->fd);
        k = readlink(lnk, buf, sizeof(buf) - 1);
        buf[k > 0 ? k : 0] = '\0';
        path = buf;
    }
    name = path ? base_of(path) : "?";
    cls = ends_with(name, ".wal") && (io->op == WR_FAULT_WRITE || io->op == WR_FAULT_SYNC)
              ? CL_WAL
              : CL_META;
    pthread_mutex_lock(&S->mu);
    if (S->frozen) { /* the machine is off: nothing reaches the disk any more */
        pthread_mutex_unlock(&S->mu);
        return EIO;
    }
    n = ++S->cnt[cls];
    if (S->armed && !S->fired && cls == S->cls && n == S->target) {
        inject = S->err;
        S->fired = true;
        if (io->op == WR_FAULT_WRITE && S->torn && io->len > 1)
            io->len /= 2; /* the disk filled up part-way through */
        snprintf(S->fired_desc, sizeof(S->fired_desc),
                 "%s %.60s%s%.60s (%s op %" PRIu64 ") -> %.40s", op_name[io->op], name,
                 io->path2 ? " -> " : "", io->path2 ? base_of(io->path2) : "", class_name[cls], n,
                 strerror(inject));
    }
    model_note(io, name, inject != 0 && !(io->op == WR_FAULT_WRITE && io->len > 0 && S->torn));
    pthread_mutex_unlock(&S->mu);
    return inject;
}

static void freeze(void)
{
    pthread_mutex_lock(&S->mu);
    S->frozen = true;
    pthread_mutex_unlock(&S->mu);
}

/* ---------------------------------------------------------------- the child */

static bool child_open(kv_db **db)
{
    kv_options o;
    wr_status st;

    opts_small(&o);
    if ((st = kv_open(dir, &o, db)) == WR_OK)
        return true;
    S->open_failed = 1;
    S->fail_st = st;
    snprintf(S->fail_msg, sizeof(S->fail_msg), "%s", wr_errmsg());
    return false;
}

static void child_exit(kv_db *db)
{
    if (db != NULL) {
        kv_stats ks;
        kv_stats_get(db, &ks);
        memcpy(S->bg_error, ks.bg_error, sizeof(S->bg_error));
        S->flushes += ks.flushes;
        S->compactions += ks.compactions;
    }
    freeze();
    _exit(0); /* no kv_close: a crash */
}

/* The workload in two halves with a clean close between: the second open replays the WAL,
 * flushes it, writes a new MANIFEST and swaps CURRENT, so recovery's writes are fault points
 * too. */
static void child_main(void)
{
    kv_db *db;
    wr_status st;
    pthread_mutexattr_t ma;

    alarm(120); /* a hang ends the child by SIGALRM, and the parent reports it */
    pthread_mutexattr_init(&ma);
    pthread_mutex_init(&S->mu, &ma);
    if (getenv("WEIR_KV_FAULT_VERBOSE") == NULL) { /* each point logs its background error */
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && dup2(fd, 2) < 0)
            _exit(3);
    }
    wr_fault_set(hook, S);
    if (!child_open(&db))
        child_exit(NULL);
    for (int i = 0; i < NOPS; i++) {
        if (i == NOPS / 2) {
            kv_stats ks;
            kv_stats_get(db, &ks);
            S->flushes = ks.flushes;
            S->compactions = ks.compactions;
            pthread_mutex_lock(&S->mu);
            S->close_from = S->cnt[CL_META];
            pthread_mutex_unlock(&S->mu);
            kv_close(db); /* a background failure during the close is nobody's to report */
            pthread_mutex_lock(&S->mu);
            S->close_to = S->cnt[CL_META];
            pthread_mutex_unlock(&S->mu);
            if (!child_open(&db))
                child_exit(NULL);
        }
        S->state[i] = OP_UNKNOWN;
        if ((st = do_op(db, i)) == WR_OK) {
            S->state[i] = OP_ACKED;
            continue;
        }
        S->fail_op = i;
        S->fail_st = st;
        snprintf(S->fail_msg, sizeof(S->fail_msg), "%s", wr_errmsg());
        break;
    }
    child_exit(db);
}

/* ---------------------------------------------------------------- the parent */

typedef struct point {
    int cls;
    uint64_t n;
    int err;
    int model;
} point;

static char where[512];

static void point_str(const point *p)
{
    snprintf(where, sizeof(where),
             "seed %llu, point %s:%" PRIu64 ":%d:%s (replay: WEIR_KV_FAULT_SEED=%llu "
             "WEIR_KV_FAULT_ONLY=%s:%" PRIu64 ":%d:%s); fault: %s",
             seed, class_name[p->cls], p->n, p->err, p->model == M_POWER ? "power" : "kill", seed,
             class_name[p->cls], p->n, p->err, p->model == M_POWER ? "power" : "kill",
             S->fired ? S->fired_desc : "(did not fire)");
}

static void failf(const char *fmt, ...) WR_PRINTF(1, 2);
static void failf(const char *fmt, ...)
{
    char m[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    fail_msg("%s\n  at %s", m, where);
}
#define FAIL(...) failf(__VA_ARGS__)

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *p)
{
    if (nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        fail_msg("cannot remove %s: %s", p, strerror(errno));
}

/* Power cut: undo what the hook saw that was not durable. */
static void power_cut(bool torn)
{
    char path[PATH_MAX + 100];

    for (int i = S->ren_cnt; i-- > 0;) { /* newest first */
        const fren *r = &S->ren[i];
        snprintf(path, sizeof(path), "%s/%s", dir, r->to);
        if (r->had_old) {
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 || write(fd, r->old, (size_t)r->old_len) != r->old_len)
                FAIL("power cut: cannot restore %s", path);
            close(fd);
        } else {
            unlink(path);
        }
        ffile *f = file_get(r->to, false);
        if (f != NULL)
            f->name[0] = '\0'; /* restored as it was: durable */
    }
    for (int i = 0; i < MAXFILES; i++) {
        const ffile *f = &S->files[i];
        struct stat st;
        if (f->name[0] == '\0')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, f->name);
        if (stat(path, &st) != 0)
            continue; /* deleted by the store */
        if (!f->entry_durable) {
            unlink(path);
        } else if (st.st_size > f->synced) {
            off_t keep = (off_t)f->synced;
            if (torn)
                keep += (off_t)(rnd() % (uint64_t)(st.st_size - f->synced + 1));
            if (truncate(path, keep) != 0)
                FAIL("power cut: truncate %s: %s", path, strerror(errno));
        }
    }
}

/* The values key @k may hold: each a put's op index, or -1 (absent). */
typedef struct cand {
    int v[16];
    int n;
} cand;

static void cand_add(cand *c, int v)
{
    for (int i = 0; i < c->n; i++)
        if (c->v[i] == v)
            return;
    if (c->n < 16)
        c->v[c->n++] = v;
}

static cand cands[NKEYS];
static int last_op[NKEYS]; /* the last op (any state but NOTRUN) touching the key */

static void build_reference(void)
{
    for (int k = 0; k < NKEYS; k++) {
        cands[k].n = 1;
        cands[k].v[0] = -1;
        last_op[k] = -1;
    }
    for (int i = 0; i < NOPS; i++) {
        const wop *o = &ops[i];
        if (S->state[i] == OP_NOTRUN)
            continue;
        for (int j = 0; j < o->cnt; j++) {
            int k = o->key[j], eff = o->kind == W_DEL ? -1 : i;
            if (S->state[i] == OP_ACKED)
                cands[k].n = 0;
            cand_add(&cands[k], eff);
            last_op[k] = i;
        }
    }
}

/* Observed op index for key k (-1 absent), after checking the bytes. */
static int observe(kv_db *db, int k, wr_buf *v)
{
    char key[16], want[800], head[32];
    int op, kk;
    wr_status st;

    key_of(k, key);
    st = kv_get(db, NULL, wr_bytes_str(key), v);
    if (st == WR_ERR_NOTFOUND)
        return -1;
    if (st != WR_OK)
        FAIL("kv_get %s after reopen: %s (%s)", key, wr_status_str(st), wr_errmsg());
    snprintf(head, sizeof(head), "%.*s", (int)(v->len < 31 ? v->len : 31), (const char *)v->ptr);
    if (sscanf(head, "k%05d-op%06d-", &kk, &op) != 2 || kk != k)
        FAIL("key %s: a value that no operation wrote (%zu bytes)", key, v->len);
    if (op >= 0 && op < NOPS && value_of(k, op, want) == v->len &&
        memcmp(want, v->ptr, v->len) == 0)
        return op;
    FAIL("key %s: damaged value claiming op %d", key, op);
    return -2;
}

static void check_values(kv_db *db)
{
    wr_buf v = {0};
    int *seen = calloc(NKEYS, sizeof(int));

    assert_non_null(seen);
    for (int k = 0; k < NKEYS; k++) {
        bool ok = false;
        int got = observe(db, k, &v);
        char c[200];
        size_t at = 0;
        seen[k] = got;
        for (int i = 0; i < cands[k].n; i++) {
            ok |= cands[k].v[i] == got;
            at += (size_t)snprintf(c + at, sizeof(c) - at, " %d", cands[k].v[i]);
            if (at >= sizeof(c))
                at = sizeof(c) - 1;
        }
        if (!ok)
            FAIL("key-%05d holds op %d (-1 = absent), allowed:%s (last op on it %d, state %d)", k,
                 got, c, last_op[k], last_op[k] >= 0 ? S->state[last_op[k]] : -1);
    }
    /* A batch that was not acknowledged is all or nothing, where no later op hides it. */
    for (int i = 0; i < NOPS; i++) {
        int applied = -1;
        if (S->state[i] != OP_UNKNOWN || ops[i].kind != W_BATCH)
            continue;
        for (int j = 0; j < 3; j++) {
            int k = ops[i].key[j];
            if (last_op[k] != i)
                continue;
            if (applied < 0)
                applied = seen[k] == i;
            else if (applied != (seen[k] == i))
                FAIL("unacknowledged batch op %d is half applied (key-%05d)", i, k);
        }
    }
    free(seen);
    wr_buf_fini(&v);
}

typedef struct tally {
    unsigned points, fired, refused, open_failed, swallowed, bg, known_orphan, known_lost;
} tally;

static bool strict; /* WEIR_KV_FAULT_STRICT: known bugs fail the test too */

/* Known bug 2 (kv_db.c compact_level()): the compaction's MANIFEST append wrote its edit but
 * the fdatasync failed; the compaction then deletes its output files as "never installed",
 * while the edit that installs them is in the MANIFEST, which the next open reads (in the
 * page cache it survives a process crash or a clean close): the store references deleted
 * files, and their keys are lost. Seen as referenced SSTs missing after a reopen, or as the
 * child's second open (after the clean close) failing a compaction on a missing input. */
static bool known_deleted_outputs(bool evidence, tally *t)
{
    if (strict || !evidence || !S->fired || strstr(S->fired_desc, "sync MANIFEST-") == NULL)
        return false;
    if (t->known_lost++ == 0)
        printf("known bug 2, first seen at %s\n", where);
    return true;
}

/* Returns false when a known bug makes the rest of the checks pointless. */
static bool check_dir_and_stats(kv_db *db, const point *p, tally *t)
{
    kv_stats ks;
    uint64_t files = 0, recs = 0;
    unsigned sst = 0, wal = 0, man = 0, other = 0;
    char names[512] = "";
    DIR *d;
    struct dirent *de;

    kv_stats_get(db, &ks);
    if (ks.bg_error[0] != '\0')
        FAIL("background error right after the reopen: %s", ks.bg_error);
    if (ks.imm_memtables != 0)
        FAIL("an immutable memtable right after the reopen");
    for (int l = 0; l < 8; l++) {
        files += ks.files[l];
        if ((ks.files[l] == 0) != (ks.level_bytes[l] == 0))
            FAIL("level %d: %u files but %" PRIu64 " bytes", l, ks.files[l], ks.level_bytes[l]);
    }
    for (int i = 0; i < NOPS; i++)
        if (S->state[i] == OP_ACKED)
            recs += (uint64_t)ops[i].cnt;
    if (ks.seq < recs)
        FAIL("sequence %" PRIu64 " after the reopen is below the %" PRIu64 " acknowledged records",
             ks.seq, recs);
    assert_non_null(d = opendir(dir));
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (n[0] == '.' || strcmp(n, "LOCK") == 0 || strcmp(n, "CURRENT") == 0)
            continue;
        if (ends_with(n, ".sst"))
            sst++;
        else if (ends_with(n, ".wal"))
            wal++;
        else if (strncmp(n, "MANIFEST-", 9) == 0)
            man++;
        else
            other++;
        if (strlen(names) + strlen(n) + 2 < sizeof(names)) {
            strcat(names, " ");
            strcat(names, n);
        }
    }
    closedir(d);
    (void)p;
    if (known_deleted_outputs(sst < files, t))
        return false;
    if (sst != files || wal != 1 || man != 1 || other != 0)
        FAIL("after the reopen the directory holds %u SSTs (the store references %" PRIu64
             "), %u WALs, %u MANIFESTs, %u other files (want 1, 1, 0):%s",
             sst, files, wal, man, other, names);
    return true;
}

/* Every key gets a new value (op index 1000000 + k), a flush, a reopen: the new values win. */
static void check_overwrite(kv_db **dbp)
{
    kv_options o;
    char key[16], val[64];
    wr_buf v = {0};
    wr_status st;

    for (int k = 0; k < NKEYS; k++) {
        int n = snprintf(val, sizeof(val), "k%05d-op%06d-after-recovery", k, 1000000 + k);
        key_of(k, key);
        if ((st = kv_put(*dbp, wr_bytes_str(key), wr_bytes_of(val, (size_t)n))) != WR_OK)
            FAIL("put after the reopen: %s (%s)", wr_status_str(st), wr_errmsg());
    }
    if ((st = kv_flush(*dbp)) != WR_OK)
        FAIL("flush after the reopen: %s (%s)", wr_status_str(st), wr_errmsg());
    kv_close(*dbp);
    opts_check(&o);
    if ((st = kv_open(dir, &o, dbp)) != WR_OK)
        FAIL("second reopen: %s (%s)", wr_status_str(st), wr_errmsg());
    for (int k = 0; k < NKEYS; k++) {
        key_of(k, key);
        st = kv_get(*dbp, NULL, wr_bytes_str(key), &v);
        snprintf(val, sizeof(val), "k%05d-op%06d-after-recovery", k, 1000000 + k);
        if (st != WR_OK || v.len != strlen(val) || memcmp(v.ptr, val, v.len) != 0)
            FAIL("key %s: the value written after recovery is not what a read returns (%s)", key,
                 wr_status_str(st));
    }
    wr_buf_fini(&v);
}

/* The refused write's error must say what failed and where. */
/* Returns false when a known bug makes the rest of the checks pointless. */
static bool check_error(tally *t)
{
    const char *want = strerror(S->err);

    if (S->fail_op < 0 && !S->open_failed)
        return true;
    if (known_deleted_outputs(strstr(S->fail_msg, "No such file or directory") != NULL, t))
        return false;
    if (S->fail_st != WR_ERR_IO && S->fail_st != WR_ERR_FULL && S->fail_st != WR_ERR_FAILED)
        FAIL("a write failed with %s (want io, full or failed): %s", wr_status_str(S->fail_st),
             S->fail_msg);
    if (strstr(S->fail_msg, dir) == NULL)
        FAIL("the error does not name the store's file: '%s'", S->fail_msg);
    if (strstr(S->fail_msg, want) == NULL)
        FAIL("the error does not say '%s': '%s'", want, S->fail_msg);
    if (S->fail_st == WR_ERR_FAILED && S->bg_error[0] == '\0')
        FAIL("writes refused with 'failed' but kv_stats has no background error: %s", S->fail_msg);
    return true;
}

/* Known bug 1 (kv_db.c recover()): an SST written by a flush or compaction that the MANIFEST
 * never recorded (killed, or its edit failed) keeps a number >= the MANIFEST's next file
 * number; recovery hands that number to the SST of the replayed WAL, whose O_EXCL create fails:
 * the store cannot be opened. Unless WEIR_KV_FAULT_STRICT=1, the test deletes the orphan (what
 * a fixed recovery does; were the file referenced, the value checks would catch the loss),
 * counts the hit, and goes on checking. */
static bool known_orphan_collision(tally *t)
{
    char path[PATH_MAX + 64];
    const char *msg = wr_errmsg(), *end = strstr(msg, ".sst: create:");

    if (strict || strncmp(msg, dir, strlen(dir)) != 0 || end == NULL ||
        (size_t)(end - msg) + 5 > sizeof(path))
        return false;
    snprintf(path, sizeof(path), "%.*s.sst", (int)(end - msg), msg);
    if (unlink(path) != 0)
        return false;
    if (t->known_orphan++ == 0)
        printf("known bug 1, first seen at %s\n  (%s)\n", where, msg);
    return true;
}

static void run_point(const point *p, tally *t)
{
    kv_options o;
    kv_db *db;
    wr_status st;
    pid_t pid;
    int status;

    rm_rf(dir);
    if (mkdir(dir, 0755) != 0)
        fail_msg("mkdir %s: %s", dir, strerror(errno));
    memset(S, 0, sizeof(*S));
    S->fail_op = -1;
    S->armed = p->n > 0;
    S->cls = p->cls;
    S->target = p->n;
    S->err = p->err;
    S->torn = p->err == ENOSPC;
    fflush(NULL);
    if ((pid = fork()) < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0)
        child_main();
    if (waitpid(pid, &status, 0) != pid)
        fail_msg("waitpid: %s", strerror(errno));
    point_str(p);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the child died (%s %d): a hang or a crash in the store",
             WIFSIGNALED(status) ? "signal" : "exit",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (S->overflow)
        FAIL("the fault model ran out of slots");
    t->points++;
    t->fired += S->fired;
    t->refused += S->fail_op >= 0;
    t->open_failed += (unsigned)S->open_failed;
    t->bg += S->fail_st == WR_ERR_FAILED;
    if (S->fired && S->fail_op < 0 && !S->open_failed &&
        !(p->cls == CL_META && p->n > S->close_from && p->n <= S->close_to) && t->swallowed++ < 3)
        printf("note: the store went on without an error after: %s\n", where);
    /* A point that did not fire (this run made fewer operations than the dry run) is still a
     * crash at the end of the workload, and is checked as one. */
    if (p->model == M_POWER)
        power_cut(S->torn);
    if (!check_error(t))
        return;
    build_reference();
    opts_check(&o);
    while ((st = kv_open(dir, &o, &db)) == WR_ERR_EXISTS && known_orphan_collision(t))
        ;
    if (st != WR_OK)
        FAIL("the store does not reopen after the crash: %s (%s)", wr_status_str(st), wr_errmsg());
    if (!check_dir_and_stats(db, p, t)) {
        kv_close(db);
        return;
    }
    check_values(db);
    check_overwrite(&db);
    kv_close(db);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static int setup(void **state)
{
    const char *base = getenv("WEIR_KV_FAULT_DIR");
    (void)state;
    if (base == NULL || *base == '\0')
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof(root), "%s/test_kv_fault.XXXXXX", base);
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(dir, sizeof(dir), "%s/db", root);
    S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED)
        return -1;
    seed = env_u64("WEIR_KV_FAULT_SEED", 1);
    strict = env_u64("WEIR_KV_FAULT_STRICT", 1) != 0;
    if (getenv("WEIR_KV_FAULT_VERBOSE") == NULL)
        wr_log_set_level(WR_LOG_ERROR); /* reopens warn about every torn tail they skip */
    gen_ops();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    munmap(S, sizeof(*S));
    rm_rf(root);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_fault_at_every_write_sync_create_rename(void **state)
{
    const char *only = getenv("WEIR_KV_FAULT_ONLY");
    uint64_t budget = env_u64("WEIR_KV_FAULT_ITERS", DEFAULT_ITERS), total[CL_N], slots[CL_N];
    tally t = {0, 0, 0, 0, 0, 0, 0, 0};
    double t0 = now_s();
    point p = {CL_META, 0, 0, M_KILL};
    (void)state;

    if (only != NULL && *only != '\0') {
        char cls[16], model[16];
        unsigned long long n;
        if (sscanf(only, "%15[a-z]:%llu:%d:%15s", cls, &n, &p.err, model) != 4)
            fail_msg("WEIR_KV_FAULT_ONLY=class:N:errno:model, e.g. meta:12:5:power");
        p.cls = strcmp(cls, "wal") == 0 ? CL_WAL : CL_META;
        p.n = n;
        p.model = strcmp(model, "power") == 0 ? M_POWER : M_KILL;
        run_point(&p, &t);
        printf("seed %llu: %s fired=%d refused=%d\n", seed, where, S->fired, S->fail_op >= 0);
        return;
    }
    /* A dry run (no fault) counts the operations of each class, and checks the workload. */
    run_point(&p, &t);
    for (int c = 0; c < CL_N; c++)
        total[c] = S->cnt[c];
    if (S->fail_op >= 0 || total[CL_META] == 0 || total[CL_WAL] == 0)
        fail_msg("dry run: op %d refused (%s), %" PRIu64 " meta and %" PRIu64 " wal operations",
                 S->fail_op, S->fail_msg, total[CL_META], total[CL_WAL]);
    /* Each chosen operation is a fault point twice, once per crash model, one with EIO and
     * one with ENOSPC (swapped from one operation to the next). Every meta operation is chosen
     * first; the WAL's get an even sample of the rest of the budget (at least a sixth). */
    slots[CL_WAL] = budget / 2 / 6;
    slots[CL_META] =
        total[CL_META] < budget / 2 - slots[CL_WAL] ? total[CL_META] : budget / 2 - slots[CL_WAL];
    if (budget / 2 - slots[CL_META] > slots[CL_WAL])
        slots[CL_WAL] = budget / 2 - slots[CL_META];
    if (slots[CL_WAL] > total[CL_WAL])
        slots[CL_WAL] = total[CL_WAL];
    printf("seed %llu: the workload makes %" PRIu64 " flushes, %" PRIu64 " compactions, %" PRIu64
           " meta and %" PRIu64 " wal operations; %" PRIu64 " + %" PRIu64
           " of them are fault points, under both crash models\n",
           seed, S->flushes, S->compactions, total[CL_META], total[CL_WAL], slots[CL_META],
           slots[CL_WAL]);
    for (int c = 0; c < CL_N; c++) {
        for (uint64_t i = 0; i < slots[c]; i++) {
            p.cls = c;
            /* even spread over 1..total; +(i & 1) staggers it against the WAL's write, sync
             * pairs */
            p.n = slots[c] >= total[c] ? i + 1 : 1 + (i * total[c]) / slots[c] + (i & 1);
            if (p.n > total[c])
                p.n = total[c];
            for (int m = M_KILL; m <= M_POWER; m++) {
                p.model = m;
                p.err = ((i + (uint64_t)m) & 1) ? ENOSPC : EIO;
                run_point(&p, &t);
            }
        }
    }
    printf("%u points in %.1f s: fault fired %u, a write refused %u (background failure %u), "
           "open failed %u, swallowed (workload finished) %u\n",
           t.points, now_s() - t0, t.fired, t.refused, t.bg, t.open_failed, t.swallowed);
    if (t.known_orphan > 0)
        printf("KNOWN BUG (kv_db.c recover): an unrecorded SST's number was reused and the "
               "store could not reopen at %u points (WEIR_KV_FAULT_STRICT=1 fails on it)\n",
               t.known_orphan);
    if (t.known_lost > 0)
        printf("KNOWN BUG (kv_db.c compact_level): outputs deleted after a failed MANIFEST sync "
               "whose edit the reopen applies, at %u points (WEIR_KV_FAULT_STRICT=1 fails on it)\n",
               t.known_lost);
    /* the points hit the operations they aim at (the background thread makes the count vary) */
    assert_true(t.fired + 1 >= t.points * 3 / 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fault_at_every_write_sync_create_rename, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

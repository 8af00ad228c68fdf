/* lg_faultio.c -- the fault-injecting lg_io (see lg_faultio.h for the model).
 *
 * State: a table of files (one per path seen through open(), with bytes written and bytes
 * durable) and a map fd -> file. submit() decides each op's fate under the mutex (pass, fail
 * the write, fail the sync), runs the surviving I/O through the real vtable without the
 * mutex, then updates written/durable for the ops that succeeded. */
#include "lg_faultio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Old content of a range that an unsynced write overwrote: a crash puts it back. Needed
 * since O_DIRECT appends rewrite the last partial block, so "durable" is not only a length. */
typedef struct lgf_undo {
    uint64_t off;
    uint8_t *old; /* owned */
    size_t len;   /* bytes that existed before the write */
} lgf_undo;

typedef struct lgf_file {
    char *path; /* owned; NULL once unlinked */
    int64_t written, durable;
    lgf_undo *undo; /* owned; since the last successful sync, oldest first */
    size_t undo_cnt, undo_cap;
} lgf_file;

struct lgf_io {
    lg_io vt;
    const lg_io *real; /* borrowed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lgf_file *files;
    size_t file_cnt, file_cap;
    int *fdmap; /* fd -> index into files, -1 if untracked */
    size_t fdmap_cap;
    uint64_t writes, syncs, failures;
    uint64_t fail_write_at, fail_sync_at; /* absolute op numbers; 0 = off */
    int fail_write_err, fail_sync_err;
    bool block, frozen;
    unsigned blocked;
    _Atomic uint64_t pread_bytes;
    uint64_t rng;
};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (p == NULL)
        abort();
    return p;
}

static uint64_t rnd(lgf_io *f)
{
    /* xorshift64*: plenty for picking crash points */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 2685821657736338717ull;
}

static lgf_file *file_of_fd(lgf_io *f, int fd)
{
    if (fd < 0 || (size_t)fd >= f->fdmap_cap || f->fdmap[fd] < 0)
        return NULL;
    return &f->files[f->fdmap[fd]];
}

static lgf_file *file_of_path(lgf_io *f, const char *path)
{
    for (size_t i = 0; i < f->file_cnt; i++)
        if (f->files[i].path && strcmp(f->files[i].path, path) == 0)
            return &f->files[i];
    return NULL;
}

static size_t file_add(lgf_io *f, const char *path, int64_t size)
{
    if (f->file_cnt == f->file_cap) {
        f->file_cap = f->file_cap ? f->file_cap * 2 : 64;
        f->files = realloc(f->files, f->file_cap * sizeof(*f->files));
        if (f->files == NULL)
            abort();
    }
    f->files[f->file_cnt].path = strdup(path);
    if (f->files[f->file_cnt].path == NULL)
        abort();
    f->files[f->file_cnt].written = f->files[f->file_cnt].durable = size;
    f->files[f->file_cnt].undo = NULL;
    f->files[f->file_cnt].undo_cnt = f->files[f->file_cnt].undo_cap = 0;
    return f->file_cnt++;
}

static void map_fd(lgf_io *f, int fd, size_t idx)
{
    if ((size_t)fd >= f->fdmap_cap) {
        size_t ncap = (size_t)fd * 2 + 64;
        f->fdmap = realloc(f->fdmap, ncap * sizeof(*f->fdmap));
        if (f->fdmap == NULL)
            abort();
        for (size_t i = f->fdmap_cap; i < ncap; i++)
            f->fdmap[i] = -1;
        f->fdmap_cap = ncap;
    }
    f->fdmap[fd] = (int)idx;
}

static void undo_clear(lgf_file *fl)
{
    for (size_t i = 0; i < fl->undo_cnt; i++)
        free(fl->undo[i].old);
    fl->undo_cnt = 0;
}

/* Remember what [off, off + len) of the file holds now, before a write replaces it. */
static void undo_note(lgf_file *fl, uint64_t off, size_t len)
{
    int fd;
    struct stat st;
    lgf_undo *u;
    if (fl->path == NULL || (fd = open(fl->path, O_RDONLY | O_CLOEXEC)) < 0)
        return;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > off) {
        size_t n = (uint64_t)st.st_size - off < len ? (size_t)((uint64_t)st.st_size - off) : len;
        if (fl->undo_cnt == fl->undo_cap) {
            fl->undo_cap = fl->undo_cap ? fl->undo_cap * 2 : 8;
            fl->undo = realloc(fl->undo, fl->undo_cap * sizeof(*fl->undo));
            if (fl->undo == NULL)
                abort();
        }
        u = &fl->undo[fl->undo_cnt];
        u->off = off;
        u->len = n;
        u->old = xcalloc(n ? n : 1, 1);
        if (pread(fd, u->old, n, (off_t)off) == (ssize_t)n)
            fl->undo_cnt++;
        else
            free(u->old);
    }
    close(fd);
}

/* ---------------------------------------------------------------- the vtable */

enum { FATE_PASS, FATE_FAIL_WRITE, FATE_FAIL_SYNC };

static void f_submit(void *ctx, lg_io_op *ops, size_t n)
{
    lgf_io *f = ctx;
    lg_io_op *run = xcalloc(n ? n : 1, sizeof(*run));
    int *fate = xcalloc(n ? n : 1, sizeof(*fate));
    int *ferr = xcalloc(n ? n : 1, sizeof(*ferr));
    bool any_sync = false;

    for (size_t i = 0; i < n; i++)
        any_sync |= ops[i].sync;
    pthread_mutex_lock(&f->mu);
    if (any_sync && f->block) {
        f->blocked++;
        pthread_cond_broadcast(&f->cv);
        while (f->block)
            pthread_cond_wait(&f->cv, &f->mu);
        f->blocked--;
    }
    if (f->frozen) {
        pthread_mutex_unlock(&f->mu);
        for (size_t i = 0; i < n; i++)
            ops[i].err = EIO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        run[i] = ops[i];
        run[i].err = 0;
        fate[i] = FATE_PASS;
        if (ops[i].len > 0 && ++f->writes == f->fail_write_at) {
            fate[i] = FATE_FAIL_WRITE;
            ferr[i] = f->fail_write_err;
            /* ENOSPC: the disk filled up part-way through the write. */
            run[i].len = ferr[i] == ENOSPC ? ops[i].len / 2 : 0;
            run[i].sync = false;
            f->failures++;
            continue;
        }
        if (ops[i].sync && ++f->syncs == f->fail_sync_at) {
            fate[i] = FATE_FAIL_SYNC;
            ferr[i] = f->fail_sync_err;
            run[i].sync = false; /* the bytes reach the page cache, never the disk */
            f->failures++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        lgf_file *fl = file_of_fd(f, run[i].fd);
        if (fl && run[i].len > 0)
            undo_note(fl, run[i].off, run[i].len);
    }
    pthread_mutex_unlock(&f->mu);

    /* Ops left with nothing to do are not passed on. */
    {
        size_t m = 0;
        lg_io_op *pass = xcalloc(n ? n : 1, sizeof(*pass));
        size_t *back = xcalloc(n ? n : 1, sizeof(*back));
        for (size_t i = 0; i < n; i++) {
            if (run[i].len == 0 && !run[i].sync)
                continue;
            pass[m] = run[i];
            back[m++] = i;
        }
        if (m)
            f->real->submit(f->real->ctx, pass, m);
        for (size_t k = 0; k < m; k++)
            run[back[k]].err = pass[k].err;
        free(pass);
        free(back);
    }

    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        lgf_file *fl = file_of_fd(f, ops[i].fd);
        if (run[i].err == 0 && fl && run[i].len > 0 &&
            (int64_t)(run[i].off + run[i].len) > fl->written)
            fl->written = (int64_t)(run[i].off + run[i].len);
        if (run[i].err == 0 && fl && run[i].sync) {
            fl->durable = fl->written;
            undo_clear(fl);
        }
        ops[i].err = fate[i] != FATE_PASS ? ferr[i] : run[i].err;
    }
    pthread_mutex_unlock(&f->mu);
out:
    free(run);
    free(fate);
    free(ferr);
}

static int f_open(void *ctx, const char *path, int flags, unsigned mode)
{
    lgf_io *f = ctx;
    struct stat st;
    bool existed = stat(path, &st) == 0;
    int fd;

    pthread_mutex_lock(&f->mu);
    if (f->frozen && (flags & (O_CREAT | O_TRUNC))) {
        pthread_mutex_unlock(&f->mu);
        return -EIO;
    }
    pthread_mutex_unlock(&f->mu);
    if ((fd = f->real->open(f->real->ctx, path, flags, mode)) < 0)
        return fd;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *fl = file_of_path(f, path);
        size_t idx;
        if (fl == NULL) {
            idx = file_add(f, path, existed ? (int64_t)st.st_size : 0);
        } else {
            idx = (size_t)(fl - f->files);
        }
        if (flags & O_TRUNC) {
            f->files[idx].written = f->files[idx].durable = 0;
            undo_clear(&f->files[idx]);
        }
        map_fd(f, fd, idx);
    }
    pthread_mutex_unlock(&f->mu);
    return fd;
}

static int f_close(void *ctx, int fd)
{
    lgf_io *f = ctx;
    pthread_mutex_lock(&f->mu);
    if (fd >= 0 && (size_t)fd < f->fdmap_cap)
        f->fdmap[fd] = -1;
    pthread_mutex_unlock(&f->mu);
    return f->real->close(f->real->ctx, fd);
}

static int64_t f_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
    lgf_io *f = ctx;
    int64_t n = f->real->pread(f->real->ctx, fd, buf, len, off);
    if (n > 0)
        atomic_fetch_add(&f->pread_bytes, (uint64_t)n);
    return n;
}

static bool frozen(lgf_io *f)
{
    bool z;
    pthread_mutex_lock(&f->mu);
    z = f->frozen;
    pthread_mutex_unlock(&f->mu);
    return z;
}

static int f_ftruncate(void *ctx, int fd, uint64_t len)
{
    lgf_io *f = ctx;
    int rc;
    if (frozen(f))
        return -EIO;
    if ((rc = f->real->ftruncate(f->real->ctx, fd, len)) < 0)
        return rc;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *fl = file_of_fd(f, fd);
        if (fl) {
            fl->written = (int64_t)len;
            if (fl->durable > (int64_t)len)
                fl->durable = (int64_t)len;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_fsync(void *ctx, int fd)
{
    lgf_io *f = ctx;
    int rc;
    if (frozen(f))
        return -EIO;
    if ((rc = f->real->fsync(f->real->ctx, fd)) < 0)
        return rc;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *fl = file_of_fd(f, fd);
        if (fl) {
            fl->durable = fl->written;
            undo_clear(fl);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    lgf_io *f = ctx;
    int rc;
    if (frozen(f))
        return -EIO;
    if ((rc = f->real->rename(f->real->ctx, from, to)) < 0)
        return rc;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *src = file_of_path(f, from), *dst = file_of_path(f, to);
        if (dst && dst != src) {
            free(dst->path);
            dst->path = NULL;
        }
        if (src) {
            char *p = strdup(to);
            if (p == NULL)
                abort();
            free(src->path);
            src->path = p;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_unlink(void *ctx, const char *path)
{
    lgf_io *f = ctx;
    int rc;
    if (frozen(f))
        return -EIO;
    if ((rc = f->real->unlink(f->real->ctx, path)) < 0)
        return rc;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *fl = file_of_path(f, path);
        if (fl) {
            free(fl->path);
            fl->path = NULL;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_fsync_dir(void *ctx, const char *path)
{
    lgf_io *f = ctx;
    if (frozen(f))
        return -EIO;
    return f->real->fsync_dir(f->real->ctx, path);
}

/* ---------------------------------------------------------------- control */

lgf_io *lgf_create(uint64_t seed)
{
    lgf_io *f = xcalloc(1, sizeof(*f));
    f->real = lg_io_default();
    f->vt = (lg_io){
        .ctx = f,
        .submit = f_submit,
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .ftruncate = f_ftruncate,
        .fsync = f_fsync,
        .rename = f_rename,
        .unlink = f_unlink,
        .fsync_dir = f_fsync_dir,
    };
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    return f;
}

void lgf_destroy(lgf_io *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->file_cnt; i++) {
        undo_clear(&f->files[i]);
        free(f->files[i].undo);
        free(f->files[i].path);
    }
    free(f->files);
    free(f->fdmap);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

const lg_io *lgf_io_get(lgf_io *f)
{
    return &f->vt;
}

void lgf_fail_write(lgf_io *f, uint64_t nth, int err)
{
    pthread_mutex_lock(&f->mu);
    f->fail_write_at = nth ? f->writes + nth : 0;
    f->fail_write_err = err;
    pthread_mutex_unlock(&f->mu);
}

void lgf_fail_sync(lgf_io *f, uint64_t nth, int err)
{
    pthread_mutex_lock(&f->mu);
    f->fail_sync_at = nth ? f->syncs + nth : 0;
    f->fail_sync_err = err;
    pthread_mutex_unlock(&f->mu);
}

void lgf_block_syncs(lgf_io *f)
{
    pthread_mutex_lock(&f->mu);
    f->block = true;
    pthread_mutex_unlock(&f->mu);
}

bool lgf_wait_blocked(lgf_io *f)
{
    struct timespec ts;
    bool ok;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60; /* a safety net so a broken log fails the test instead of hanging it */
    pthread_mutex_lock(&f->mu);
    while (f->blocked == 0)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
            break;
    ok = f->blocked > 0;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

void lgf_release(lgf_io *f)
{
    pthread_mutex_lock(&f->mu);
    f->block = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

#define GETTER(name, field)                                                                        \
    uint64_t name(lgf_io *f)                                                                       \
    {                                                                                              \
        uint64_t v;                                                                                \
        pthread_mutex_lock(&f->mu);                                                                \
        v = f->field;                                                                              \
        pthread_mutex_unlock(&f->mu);                                                              \
        return v;                                                                                  \
    }
GETTER(lgf_writes, writes)
GETTER(lgf_syncs, syncs)
GETTER(lgf_failures, failures)
#undef GETTER

uint64_t lgf_pread_bytes(lgf_io *f)
{
    return atomic_load(&f->pread_bytes);
}

void lgf_reset_counts(lgf_io *f)
{
    pthread_mutex_lock(&f->mu);
    f->writes = f->syncs = f->failures = 0;
    f->fail_write_at = f->fail_sync_at = 0;
    atomic_store(&f->pread_bytes, 0);
    pthread_mutex_unlock(&f->mu);
}

int64_t lgf_durable_len(lgf_io *f, const char *path)
{
    int64_t v = -1;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *fl = file_of_path(f, path);
        if (fl)
            v = fl->durable;
    }
    pthread_mutex_unlock(&f->mu);
    return v;
}

int64_t lgf_written_len(lgf_io *f, const char *path)
{
    int64_t v = -1;
    pthread_mutex_lock(&f->mu);
    {
        lgf_file *fl = file_of_path(f, path);
        if (fl)
            v = fl->written;
    }
    pthread_mutex_unlock(&f->mu);
    return v;
}

void lgf_freeze(lgf_io *f)
{
    pthread_mutex_lock(&f->mu);
    f->frozen = true;
    pthread_mutex_unlock(&f->mu);
}

uint64_t lgf_crash(lgf_io *f, lgf_crash_mode mode)
{
    uint64_t dropped = 0;

    pthread_mutex_lock(&f->mu);
    /* Overwrites since the last sync are lost: put the old bytes back, newest first. */
    for (size_t i = 0; i < f->file_cnt; i++) {
        lgf_file *fl = &f->files[i];
        int fd;
        if (fl->path == NULL || fl->undo_cnt == 0 ||
            (fd = open(fl->path, O_WRONLY | O_CLOEXEC)) < 0)
            continue;
        for (size_t k = fl->undo_cnt; k-- > 0;)
            if (pwrite(fd, fl->undo[k].old, fl->undo[k].len, (off_t)fl->undo[k].off) !=
                (ssize_t)fl->undo[k].len)
                abort();
        close(fd);
    }
    for (size_t i = 0; i < f->file_cnt; i++) {
        lgf_file *fl = &f->files[i];
        struct stat st;
        int64_t keep = fl->durable;
        if (fl->path == NULL || stat(fl->path, &st) != 0 || st.st_size <= fl->durable)
            continue;
        if (mode == LGF_KEEP_PREFIX && st.st_size > fl->durable)
            keep += (int64_t)(rnd(f) % (uint64_t)(st.st_size - fl->durable + 1));
        if (truncate(fl->path, keep) != 0)
            abort();
        dropped += (uint64_t)(st.st_size - keep);
        if (mode == LGF_GARBAGE) {
            uint8_t junk[64];
            size_t n = 1 + (size_t)(rnd(f) % sizeof(junk));
            FILE *fp = fopen(fl->path, "ab");
            if (fp == NULL)
                abort();
            for (size_t k = 0; k < n; k++)
                junk[k] = (uint8_t)rnd(f);
            if (fwrite(junk, 1, n, fp) != n)
                abort();
            fclose(fp);
        }
    }
    for (size_t i = 0; i < f->file_cnt; i++) {
        undo_clear(&f->files[i]);
        free(f->files[i].undo);
        free(f->files[i].path);
    }
    f->file_cnt = 0;
    for (size_t i = 0; i < f->fdmap_cap; i++)
        f->fdmap[i] = -1;
    f->frozen = false;
    pthread_mutex_unlock(&f->mu);
    return dropped;
}

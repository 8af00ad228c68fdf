/* lgf_util.h -- helpers shared by the logfault tests: records whose bytes are a function of a
 * 64-bit payload id (so any record read back can be checked on its own), reading a whole
 * partition, copying a topic directory, and running work in a child process that the test
 * SIGKILLs (an unclean stop: no CLEAN marker, no final sync). */
#ifndef WEIR_LGF_UTIL_H
#define WEIR_LGF_UTIL_H

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lg_testutil.h"

#define LGF_KEY_MAX 32
#define LGF_VAL_MAX 512

/* Key "k<16 hex digits>", value "v<id>:" then filler, 8 + id % 300 bytes long. */
static inline void lgf_rec_bytes(uint64_t id, char *key, char *val, size_t *val_len)
{
    size_t n, len = 8 + (size_t)(id % 300);
    snprintf(key, LGF_KEY_MAX, "k%016" PRIx64, id);
    n = (size_t)snprintf(val, LGF_VAL_MAX, "v%" PRIu64 ":", id);
    for (size_t i = n; i < len; i++)
        val[i] = (char)('a' + (id + i) % 26);
    *val_len = len > n ? len : n;
}

/* Storage for building a batch of consecutive ids. */
typedef struct lgf_batch {
    lg_rec_in recs[16];
    char keys[16][LGF_KEY_MAX];
    char vals[16][LGF_VAL_MAX];
    lg_batch_in b;
} lgf_batch;

/* Records id0 .. id0 + cnt - 1 (cnt <= 16); producer LG_NO_PRODUCER unless set after. */
static inline lg_batch_in *lgf_batch_make(lgf_batch *fb, uint64_t id0, uint32_t cnt)
{
    memset(&fb->b, 0, sizeof(fb->b));
    for (uint32_t i = 0; i < cnt; i++) {
        size_t vl;
        memset(&fb->recs[i], 0, sizeof(fb->recs[i]));
        lgf_rec_bytes(id0 + i, fb->keys[i], fb->vals[i], &vl);
        fb->recs[i].key = wr_bytes_str(fb->keys[i]);
        fb->recs[i].val = wr_bytes_of(fb->vals[i], vl);
    }
    fb->b.recs = fb->recs;
    fb->b.rec_cnt = cnt;
    fb->b.producer_id = LG_NO_PRODUCER;
    return &fb->b;
}

/* The payload id of a record, after checking its value matches its key. false if the record
 * was not made by lgf_rec_bytes (or its bytes were damaged). */
static inline bool lgf_rec_id(const lg_record *r, uint64_t *id)
{
    char key[LGF_KEY_MAX], val[LGF_VAL_MAX], kb[LGF_KEY_MAX];
    size_t vl;
    if (r->key.ptr == NULL || r->key.len != 17 || r->val.ptr == NULL)
        return false;
    memcpy(kb, r->key.ptr, 17);
    kb[17] = '\0';
    *id = strtoull(kb + 1, NULL, 16);
    lgf_rec_bytes(*id, key, val, &vl);
    return r->val.len == vl && memcmp(r->val.ptr, val, vl) == 0 && memcmp(kb, key, 17) == 0;
}

/* Append ids id0.. (cnt records) as one batch; returns the status, ack in *ack. */
static inline wr_status lgf_put(lg_topic *t, uint32_t part, uint64_t id0, uint32_t cnt, lg_ack *ack)
{
    lgf_batch fb;
    return lg_append(t, part, lgf_batch_make(&fb, id0, cnt), ack);
}

typedef struct lgf_seen {
    uint64_t offset, id;
} lgf_seen;

/* Read partition @part from the earliest offset to the high watermark (no waiting). Every
 * record must carry a valid payload (else WR_ERR_CORRUPT). *out is malloc'ed. Returns the
 * status that ended the read: WR_EOF or WR_ERR_FAILED at the end, anything else is an error. */
static inline wr_status lgf_read_all(lg_topic *t, uint32_t part, lgf_seen **out, size_t *cnt)
{
    lg_reader *r;
    lg_record rec;
    size_t cap = 256;
    wr_status st;

    *cnt = 0;
    *out = malloc(cap * sizeof(**out));
    if (*out == NULL)
        abort();
    if ((st = lg_reader_open(t, part, LG_FROM_EARLIEST, 0, &r)) != WR_OK)
        return st;
    while ((st = lg_reader_next(r, &rec, 0)) == WR_OK) {
        uint64_t id;
        if (!lgf_rec_id(&rec, &id)) {
            st = wr_err(WR_ERR_CORRUPT, "record at offset %" PRIu64 " has a bad payload",
                        rec.offset);
            break;
        }
        if (*cnt == cap) {
            *out = realloc(*out, (cap *= 2) * sizeof(**out));
            if (*out == NULL)
                abort();
        }
        (*out)[*cnt].offset = rec.offset;
        (*out)[*cnt].id = id;
        (*cnt)++;
    }
    lg_reader_close(r);
    return st;
}

/* Copy a file or directory tree (cp -a), replacing @to. */
static inline void lgf_copy_dir(const char *from, const char *to)
{
    char cmd[16000];
    if (strlen(from) + strlen(to) > 4800)
        abort();
    if (snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to) < 0)
        abort();
    if (system(cmd) != 0)
        abort();
}

static inline void lgf_truncate(const char *path, long len)
{
    if (truncate(path, len) != 0)
        abort();
}

/* Byte positions of the batches in a segment file: pos[i] is where batch i starts; returns
 * the count (pos[count] = end of the last complete batch). */
static inline size_t lgf_batch_positions(const char *path, uint64_t *pos, size_t cap)
{
    FILE *f = fopen(path, "rb");
    uint8_t h[LG_BATCH_HDR];
    size_t n = 0;
    uint64_t at = 0;
    if (f == NULL)
        abort();
    while (n + 1 < cap && fread(h, 1, sizeof(h), f) == sizeof(h)) {
        lg_bhdr bh;
        if (lg_bhdr_parse(h, sizeof(h), &bh) == WR_ERR_CORRUPT)
            break;
        pos[n++] = at;
        at += bh.len;
        if (fseek(f, (long)at, SEEK_SET) != 0)
            break;
    }
    pos[n] = at;
    fclose(f);
    return n;
}

/* ---------------------------------------------------------------- child processes */
/* The child runs @fn on a fresh thread (the parent's thread-local io_uring must not be shared
 * across fork), with @fd the write end of a pipe to the parent. When @fn returns, the child
 * reports "DONE\n" and waits to be killed. */
typedef void (*lgf_child_fn)(void *arg, int fd);

typedef struct lgf_child {
    pid_t pid;
    int rfd; /* read end */
    FILE *in;
} lgf_child;

typedef struct lgf_child_arg {
    lgf_child_fn fn;
    void *arg;
    int fd;
} lgf_child_arg;

static inline void *lgf_child_thread(void *p)
{
    lgf_child_arg *a = p;
    a->fn(a->arg, a->fd);
    return NULL;
}

static inline void lgf_child_start(lgf_child *c, lgf_child_fn fn, void *arg)
{
    int fds[2];
    if (pipe(fds) != 0)
        abort();
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0)
        abort();
    if (c->pid == 0) {
        lgf_child_arg a = {fn, arg, fds[1]};
        pthread_t th;
        close(fds[0]);
        if (pthread_create(&th, NULL, lgf_child_thread, &a) != 0)
            _exit(3);
        pthread_join(th, NULL);
        if (write(fds[1], "DONE\n", 5) != 5)
            _exit(4);
        for (;;)
            pause();
    }
    close(fds[1]);
    c->rfd = fds[0];
    c->in = fdopen(fds[0], "r");
    if (c->in == NULL)
        abort();
}

/* Write one line to the parent; the child exits if the parent is gone. */
static inline void lgf_child_say(int fd, const char *fmt, ...) WR_PRINTF(2, 3);
static inline void lgf_child_say(int fd, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof(line) || write(fd, line, (size_t)n) != n)
        _exit(5);
}

/* SIGKILL the child and reap it. Returns true if it died of the SIGKILL (not of a crash). */
static inline bool lgf_child_kill(lgf_child *c)
{
    int status = 0;
    kill(c->pid, SIGKILL);
    if (waitpid(c->pid, &status, 0) != c->pid)
        abort();
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static inline void lgf_child_fini(lgf_child *c)
{
    if (c->in)
        fclose(c->in);
    c->in = NULL;
}

#endif

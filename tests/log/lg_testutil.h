/* lg_testutil.h -- helpers shared by the log tests: scratch directories and small appends. */
#ifndef WEIR_LG_TESTUTIL_H
#define WEIR_LG_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lg_int.h"

/* A fresh directory under $TMPDIR (or /tmp); removed by lgt_rmrf. */
static inline void lgt_tmpdir(char *dst, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(dst, cap, "%s/weir-test-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(dst) == NULL)
        abort();
}

/* The scratch root of the current test (one per executable). */
static inline char *lgt_root(void)
{
    static char root[4096];
    return root;
}

static inline void lgt_rmrf(const char *dir);

/* cmocka fixtures: a fresh lgt_root() per test, removed afterwards. */
static inline int lgt_setup(void **state)
{
    (void)state;
    lgt_tmpdir(lgt_root(), 4096);
    return 0;
}

static inline int lgt_teardown(void **state)
{
    (void)state;
    lgt_rmrf(lgt_root());
    return 0;
}

static inline void lgt_rmrf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        abort();
}

/* Append one record with key/value strings; returns the status, offset in *off. */
static inline wr_status lgt_put(lg_topic *t, uint32_t part, const char *key, const char *val,
                                uint64_t *off)
{
    lg_rec_in r = {0};
    lg_batch_in b = {0};
    lg_ack ack;
    wr_status st;
    if (key)
        r.key = wr_bytes_str(key);
    if (val)
        r.val = wr_bytes_str(val);
    else
        r.tombstone = true;
    b.recs = &r;
    b.rec_cnt = 1;
    b.producer_id = LG_NO_PRODUCER;
    st = lg_append(t, part, &b, &ack);
    if (st == WR_OK && off)
        *off = ack.base_offset;
    return st;
}

static inline char *lgt_segpath(const char *root, const char *topic, uint32_t part, uint64_t base,
                                const char *ext)
{
    static char path[4400];
    snprintf(path, sizeof(path), "%s/%s/%05u/%020llu%s", root, topic, part,
             (unsigned long long)base, ext);
    return path;
}

static inline long lgt_file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fclose(f);
    return n;
}

static inline void lgt_flip(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    int c;
    if (f == NULL)
        abort();
    fseek(f, at, SEEK_SET);
    c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

#endif

/* tests/logfault/test_lg_fault.c -- the log under injected faults: failed writes and syncs are
 * sticky and lose no acknowledged record, back-pressure instead of unbounded queues, a torn
 * tail at every byte, bit flips, damaged index files, clean restarts that do not rescan, and
 * idempotent producers across clean and unclean restarts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lg_faultio.h"
#include "lgf_util.h"

static void mk_topic(const char *name, const char *const *settings)
{
    lg_config c;
    lg_config_default(&c);
    for (; settings && *settings; settings++)
        assert_int_equal(lg_config_set(&c, *settings), WR_OK);
    assert_int_equal(lg_topic_create(lgt_root(), name, &c), WR_OK);
}

static lg_topic *open_topic(const char *name, const lg_io *io, uint64_t max_inflight)
{
    lg_open_opts o = {0};
    lg_topic *t = NULL;
    o.no_cleaner = true;
    o.io = io;
    o.max_inflight_bytes = max_inflight;
    if (lg_topic_open(lgt_root(), name, &o, &t) != WR_OK)
        fail_msg("open %s: %s", name, wr_errmsg());
    return t;
}

static char *topic_dir(const char *name)
{
    static char path[4400];
    snprintf(path, sizeof(path), "%s/%s", lgt_root(), name);
    return path;
}

static char *part_file(const char *name, uint32_t part, const char *file)
{
    static char path[4400];
    snprintf(path, sizeof(path), "%s/%s/%05u/%s", lgt_root(), name, part, file);
    return path;
}

/* Every record of @part, which must be exactly ids @ids[0..n) at offsets first..first+n. */
static void expect_ids(lg_topic *t, uint32_t part, uint64_t first, const uint64_t *ids, size_t n)
{
    lgf_seen *s;
    size_t cnt;
    wr_status st = lgf_read_all(t, part, &s, &cnt);
    if (st != WR_EOF && st != WR_ERR_FAILED)
        fail_msg("read: %s (%s)", wr_status_str(st), wr_errmsg());
    assert_int_equal(cnt, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i].offset, first + i);
        assert_int_equal(s[i].id, ids[i]);
    }
    free(s);
}

typedef struct cb_state {
    pthread_mutex_t m;
    pthread_cond_t c;
    int calls, ok;
    wr_status last;
    lg_ack ack;
} cb_state;

static void cb_init(cb_state *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->m, NULL);
    pthread_cond_init(&s->c, NULL);
}

static void cb_fini(cb_state *s)
{
    pthread_mutex_destroy(&s->m);
    pthread_cond_destroy(&s->c);
}

static void cb_fn(void *ctx, wr_status st, const lg_ack *ack)
{
    cb_state *s = ctx;
    pthread_mutex_lock(&s->m);
    s->calls++;
    s->last = st;
    if (st == WR_OK) {
        s->ok++;
        s->ack = *ack;
    }
    pthread_cond_broadcast(&s->c);
    pthread_mutex_unlock(&s->m);
}

static void cb_wait(cb_state *s, int calls)
{
    pthread_mutex_lock(&s->m);
    while (s->calls < calls)
        pthread_cond_wait(&s->c, &s->m);
    pthread_mutex_unlock(&s->m);
}

/* ---------------------------------------------------------------- (a) sticky failure */

static void fail_one(bool sync, int err, unsigned n, bool crash)
{
    static const char *const cfg[] = {"fsync=always", NULL};
    char name[64];
    uint64_t acked[8], writes, syncs;
    unsigned i;
    lg_partition_info info;
    lg_topic *t;
    lgf_io *f = lgf_create(n * 31 + (unsigned)err);
    lg_ack ack;
    wr_status st;
    lgf_seen *s;
    size_t cnt;
    cb_state cb;

    snprintf(name, sizeof(name), "f%c%d_%u_%d", sync ? 's' : 'w', err, n, crash);
    mk_topic(name, cfg);
    t = open_topic(name, lgf_io_get(f), 0);
    if (sync)
        lgf_fail_sync(f, n, err);
    else
        lgf_fail_write(f, n, err);
    /* One append is one write linked to one sync: the Nth append fails. */
    for (i = 0; i < 8; i++) {
        st = lgf_put(t, 0, 100 + i, 1, &ack);
        if (st != WR_OK)
            break;
        assert_int_equal(ack.base_offset, i);
        acked[i] = 100 + i;
    }
    assert_int_equal(i, n - 1);
    assert_int_equal(st, err == ENOSPC ? WR_ERR_FULL : WR_ERR_IO);
    assert_non_null(strstr(wr_errmsg(), "00000000000000000000.log"));
    assert_int_equal(lgf_failures(f), 1);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_true(info.failed);
    assert_non_null(strstr(info.failure, part_file(name, 0, "00000000000000000000.log")));
    assert_int_equal(info.high_watermark, n - 1);

    /* Sticky: refused at once, nothing reaches the disk again. */
    writes = lgf_writes(f);
    syncs = lgf_syncs(f);
    cb_init(&cb);
    for (int k = 0; k < 3; k++) {
        lgf_batch fb;
        assert_int_equal(lgf_put(t, 0, 900 + k, 1, &ack), WR_ERR_FAILED);
        assert_non_null(strstr(wr_errmsg(), "FAILED"));
        assert_int_equal(lg_append_async(t, 0, lgf_batch_make(&fb, 950 + k, 1), cb_fn, &cb),
                         WR_ERR_FAILED);
    }
    assert_int_equal(lg_topic_sync(t), WR_ERR_FAILED);
    assert_int_equal(cb.calls, 0);
    cb_fini(&cb);
    assert_int_equal(lgf_writes(f), writes);
    assert_int_equal(lgf_syncs(f), syncs);

    /* Readers still see everything acknowledged, and nothing else. */
    expect_ids(t, 0, 0, acked, n - 1);

    lg_topic_close(t); /* a FAILED partition leaves no CLEAN marker */
    assert_int_equal(lgt_file_size(part_file(name, 0, "CLEAN")), -1);
    if (crash)
        lgf_crash(f, LGF_DROP_UNSYNCED);
    lgf_destroy(f);

    t = open_topic(name, NULL, 0);
    assert_int_equal(lgf_read_all(t, 0, &s, &cnt), WR_EOF);
    /* The failed append was never acknowledged; it may survive only when its bytes were
     * written and the machine did not lose them: a failed fdatasync, or an ENOSPC write that
     * got part-way (with O_DIRECT the first half of a padded block can hold the whole batch),
     * and no crash. Never more than that one. */
    if ((sync || err == ENOSPC) && !crash)
        assert_true(cnt == n - 1 || cnt == n);
    else
        assert_int_equal(cnt, n - 1);
    for (size_t k = 0; k < cnt; k++) {
        assert_int_equal(s[k].offset, k);
        assert_int_equal(s[k].id, 100 + k);
    }
    free(s);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_false(info.failed);
    assert_int_equal(lgf_put(t, 0, 7777, 1, &ack), WR_OK);
    assert_int_equal(ack.base_offset, cnt);
    lg_topic_close(t);
}

static void test_failed_write_or_sync_is_sticky_and_keeps_every_ack(void **state)
{
    static const int errs[] = {EIO, ENOSPC};
    (void)state;
    for (int sync = 0; sync < 2; sync++)
        for (size_t e = 0; e < 2; e++)
            for (unsigned n = 1; n <= 5; n++)
                fail_one(sync, errs[e], n, n % 2 == 0);
}

/* A failed sync fails every append of its round, and the ones queued behind it. */
static void test_failed_sync_fails_the_whole_round(void **state)
{
    static const char *const cfg[] = {"fsync=always", NULL};
    lgf_io *f = lgf_create(5);
    lg_topic *t;
    cb_state first, rest;
    lgf_batch fb;
    lg_ack ack;
    uint64_t ids[2] = {1, 2};
    (void)state;

    mk_topic("round", cfg);
    t = open_topic("round", lgf_io_get(f), 0);
    assert_int_equal(lgf_put(t, 0, 1, 1, &ack), WR_OK);
    assert_int_equal(lgf_put(t, 0, 2, 1, &ack), WR_OK);
    cb_init(&first);
    cb_init(&rest);
    lgf_block_syncs(f);
    assert_int_equal(lg_append_async(t, 0, lgf_batch_make(&fb, 3, 2), cb_fn, &first), WR_OK);
    assert_true(
        lgf_wait_blocked(f)); /* the writer is inside its round: the next ones queue behind it */
    for (int k = 0; k < 4; k++)
        assert_int_equal(
            lg_append_async(t, 0, lgf_batch_make(&fb, 10 + 3 * (uint64_t)k, 3), cb_fn, &rest),
            WR_OK);
    lgf_fail_sync(f, 1, EIO);
    lgf_release(f);
    cb_wait(&first, 1);
    cb_wait(&rest, 4);
    assert_int_equal(first.ok, 0);
    assert_int_equal(first.last, WR_ERR_IO);
    assert_int_equal(rest.ok, 0);
    assert_int_equal(rest.last, WR_ERR_FAILED);
    expect_ids(t, 0, 0, ids, 2);
    lg_topic_close(t);
    lgf_crash(f, LGF_DROP_UNSYNCED);
    lgf_destroy(f);
    cb_fini(&first);
    cb_fini(&rest);
    t = open_topic("round", NULL, 0);
    expect_ids(t, 0, 0, ids, 2);
    lg_topic_close(t);
}

/* ---------------------------------------------------------------- power cut */

typedef struct pc_ack {
    uint32_t part, cnt;
    uint64_t off, id0;
} pc_ack;

typedef struct pc_thread {
    lg_topic *t;
    int k;
    pc_ack acks[4096];
    size_t n;
} pc_thread;

static void *pc_appender(void *arg)
{
    pc_thread *a = arg;
    for (uint64_t i = 0; a->n < 4096; i++) {
        uint32_t part = (uint32_t)((i * 7 + (uint64_t)a->k) % 2), cnt = 1 + (uint32_t)(i % 3);
        uint64_t id0 = ((uint64_t)(a->k + 1) << 32) | (i * 4 + 1);
        lg_ack ack;
        if (lgf_put(a->t, part, id0, cnt, &ack) != WR_OK)
            break; /* the power is out */
        a->acks[a->n] = (pc_ack){part, cnt, ack.base_offset, id0};
        __atomic_store_n(&a->n, a->n + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* The machine loses power after some acknowledgements: every later operation fails, then
 * the bytes never synced are lost (or torn, or replaced by garbage). Everything acknowledged
 * under fsync=always was synced, so all of it must be there after the restart. */
static void test_power_cut_keeps_every_synced_ack(void **state)
{
    static const char *const cfg[] = {"fsync=always", "segment.bytes=8192", "partitions=2", NULL};
    (void)state;
    for (int round = 0; round < 9; round++) {
        lgf_io *f = lgf_create(1000 + (uint64_t)round);
        pc_thread th[3];
        pthread_t tid[3];
        char name[32];
        lg_topic *t;
        size_t total = 0, want = 20 + (size_t)round * 25;

        snprintf(name, sizeof(name), "pc%d", round);
        mk_topic(name, cfg);
        t = open_topic(name, lgf_io_get(f), 0);
        for (int k = 0; k < 3; k++) {
            th[k].t = t;
            th[k].k = k;
            th[k].n = 0;
            assert_int_equal(pthread_create(&tid[k], NULL, pc_appender, &th[k]), 0);
        }
        while (total < want) { /* cut the power somewhere after @want acknowledgements */
            total = 0;
            for (int k = 0; k < 3; k++)
                total += __atomic_load_n(&th[k].n, __ATOMIC_ACQUIRE);
            wr_sleep_ns(100000);
        }
        lgf_freeze(f);
        for (int k = 0; k < 3; k++)
            pthread_join(tid[k], NULL);
        lg_topic_close(t); /* writes nothing: every operation fails now */
        lgf_crash(f, (lgf_crash_mode)(round % 3));
        lgf_destroy(f);

        t = open_topic(name, NULL, 0);
        for (uint32_t p = 0; p < 2; p++) {
            lgf_seen *s;
            size_t cnt;
            assert_int_equal(lgf_read_all(t, p, &s, &cnt), WR_EOF);
            for (size_t i = 0; i < cnt; i++)
                assert_int_equal(s[i].offset, i);
            for (int k = 0; k < 3; k++)
                for (size_t i = 0; i < th[k].n; i++) {
                    const pc_ack *a = &th[k].acks[i];
                    if (a->part != p)
                        continue;
                    assert_true(a->off + a->cnt <= cnt);
                    for (uint32_t j = 0; j < a->cnt; j++)
                        assert_int_equal(s[a->off + j].id, a->id0 + j);
                }
            free(s);
        }
        assert_int_equal(lg_topic_verify(t, NULL, NULL), WR_OK);
        lg_topic_close(t);
    }
}

/* ---------------------------------------------------------------- (b) back-pressure */

static void test_blocked_sync_gives_backpressure_not_memory(void **state)
{
    static const char *const cfg[] = {"fsync=always", NULL};
    lgf_io *f = lgf_create(6);
    lg_topic *t;
    cb_state cb;
    lgf_batch fb;
    lg_ack ack;
    int queued = 0, again = 0;
    (void)state;

    mk_topic("bp", cfg);
    t = open_topic("bp", lgf_io_get(f), 1000);
    cb_init(&cb);
    lgf_block_syncs(f);
    /* Queue until refused: the bytes accepted stay within the limit. */
    for (int k = 0; k < 200; k++) {
        wr_status st =
            lg_append_async(t, 0, lgf_batch_make(&fb, 1000 + (uint64_t)k, 1), cb_fn, &cb);
        if (st == WR_AGAIN) {
            again++;
            continue;
        }
        assert_int_equal(st, WR_OK);
        queued++;
    }
    assert_true(queued >= 1);
    assert_true(again > 0);
    assert_true(atomic_load(&t->inflight_bytes) <= 1000);
    assert_true(lgf_wait_blocked(f));
    assert_int_equal(cb.calls, 0); /* nothing acknowledged while the sync hangs */
    assert_int_equal(lg_append_async(t, 0, lgf_batch_make(&fb, 5000, 1), cb_fn, &cb), WR_AGAIN);

    lgf_release(f);
    cb_wait(&cb, queued);
    assert_int_equal(cb.ok, queued);
    /* Space again: appends succeed and land after the queued ones. */
    assert_int_equal(lgf_put(t, 0, 6000, 1, &ack), WR_OK);
    assert_int_equal(ack.base_offset, (uint64_t)queued);
    assert_int_equal(atomic_load(&t->inflight_bytes), 0);
    lg_topic_close(t);
    lgf_destroy(f);
    cb_fini(&cb);
}

/* ---------------------------------------------------------------- (c) torn tail */

static void test_torn_tail_at_every_byte_of_the_last_batch(void **state)
{
    static const char *const cfg[] = {"fsync=always", NULL};
    enum { K = 5, PER = 3 };
    uint64_t pos[K + 2], ids[K * PER];
    char pristine[4400], seg[4400];
    lg_topic *t;
    lg_ack ack;
    size_t nb;
    (void)state;

    mk_topic("torn", cfg);
    t = open_topic("torn", NULL, 0);
    for (uint64_t b = 0; b < K; b++) {
        assert_int_equal(lgf_put(t, 0, 10 * b + 1, PER, &ack), WR_OK);
        for (uint64_t i = 0; i < PER; i++)
            ids[b * PER + i] = 10 * b + 1 + i;
    }
    lg_topic_close(t);
    snprintf(pristine, sizeof(pristine), "%s/pristine", lgt_root());
    lgf_copy_dir(topic_dir("torn"), pristine);
    snprintf(seg, sizeof(seg), "%s", part_file("torn", 0, "00000000000000000000.log"));
    nb = lgf_batch_positions(seg, pos, K + 2);
    assert_int_equal(nb, K);
    assert_int_equal(pos[K], lgt_file_size(seg));

    for (uint64_t len = pos[K - 1]; len <= pos[K]; len++) {
        bool whole = len == pos[K];
        size_t keep = whole ? K * PER : (K - 1) * PER;
        uint64_t nid = 5000 + len;
        lgf_copy_dir(pristine, topic_dir("torn"));
        /* Odd lengths: a crash (no CLEAN marker). Even: a clean marker whose index no longer
         * matches the file, which must not be trusted either. */
        if (len % 2)
            assert_int_equal(unlink(part_file("torn", 0, "CLEAN")), 0);
        lgf_truncate(seg, (long)len);
        t = open_topic("torn", NULL, 0);
        assert_int_equal(lgt_file_size(seg), whole ? pos[K] : pos[K - 1]);
        expect_ids(t, 0, 0, ids, keep);
        assert_int_equal(lgf_put(t, 0, nid, 1, &ack), WR_OK);
        assert_int_equal(ack.base_offset, keep);
        {
            lg_reader *r;
            lg_record rec;
            uint64_t id;
            assert_int_equal(lg_reader_open(t, 0, LG_FROM_OFFSET, (int64_t)keep, &r), WR_OK);
            assert_int_equal(lg_reader_next(r, &rec, 0), WR_OK);
            assert_int_equal(rec.offset, keep);
            assert_true(lgf_rec_id(&rec, &id));
            assert_int_equal(id, nid);
            assert_int_equal(lg_reader_next(r, &rec, 0), WR_EOF);
            lg_reader_close(r);
        }
        lg_topic_close(t);
    }
}

/* ---------------------------------------------------------------- (d) bit flips */

typedef struct lines {
    char buf[8][1024];
    int n;
} lines;

static void collect(void *ctx, const char *line)
{
    lines *l = ctx;
    if (l->n < 8)
        snprintf(l->buf[l->n], sizeof(l->buf[0]), "%s", line);
    l->n++;
}

/* Fill a 4 KiB-segment topic with several segments; returns the number of records. */
static uint64_t fill_small_segments(const char *name, uint32_t *segs)
{
    static const char *const cfg[] = {"fsync=always", "segment.bytes=4096", NULL};
    lg_partition_info info;
    lg_topic *t;
    lg_ack ack;
    uint64_t n = 0;

    mk_topic(name, cfg);
    t = open_topic(name, NULL, 0);
    for (; n < 400; n += 2)
        assert_int_equal(lgf_put(t, 0, n, 2, &ack), WR_OK);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_true(info.segments >= 4);
    *segs = info.segments;
    lg_topic_close(t);
    return n;
}

static void test_bit_flip_in_sealed_segment_is_corrupt(void **state)
{
    uint64_t pos[64], n;
    uint32_t segs;
    char seg[4400], off[64], idx[4400];
    lg_open_opts o = {0};
    lg_topic *t;
    lines l = {0};
    size_t nb;
    wr_status st;
    (void)state;

    n = fill_small_segments("flip", &segs);
    (void)n;
    snprintf(seg, sizeof(seg), "%s", part_file("flip", 0, "00000000000000000000.log"));
    nb = lgf_batch_positions(seg, pos, 64);
    assert_true(nb >= 3);
    lgt_flip(seg, (long)(pos[1] + 80)); /* inside the second batch's records */
    snprintf(off, sizeof(off), "byte %" PRIu64, pos[1]);

    /* With intact index files a clean open does not read sealed segments; the damage shows
     * when the batch is read, and verify finds it. */
    t = open_topic("flip", NULL, 0);
    {
        lgf_seen *s;
        size_t cnt;
        assert_int_equal(lgf_read_all(t, 0, &s, &cnt), WR_ERR_CORRUPT);
        assert_int_equal(cnt, 2); /* the first batch */
        assert_non_null(strstr(wr_errmsg(), seg));
        assert_non_null(strstr(wr_errmsg(), off));
        free(s);
    }
    assert_int_equal(lg_topic_verify(t, collect, &l), WR_ERR_CORRUPT);
    assert_int_equal(l.n, 1);
    assert_non_null(strstr(l.buf[0], "topic flip partition 0"));
    assert_non_null(strstr(l.buf[0], seg));
    assert_non_null(strstr(l.buf[0], off));
    lg_topic_close(t);

    /* Once the segment is scanned (its index is gone, or the stop was unclean and it is
     * checked), opening it is WR_ERR_CORRUPT naming topic, partition, file and byte. */
    snprintf(idx, sizeof(idx), "%s", part_file("flip", 0, "00000000000000000000.idx"));
    assert_int_equal(unlink(idx), 0);
    o.no_cleaner = true;
    st = lg_topic_open(lgt_root(), "flip", &o, &t);
    assert_int_equal(st, WR_ERR_CORRUPT);
    assert_null(t);
    assert_non_null(strstr(wr_errmsg(), "topic flip partition 0"));
    assert_non_null(strstr(wr_errmsg(), seg));
    assert_non_null(strstr(wr_errmsg(), off));
    /* Nothing was repaired behind our back. */
    assert_int_equal(lgt_file_size(seg), pos[nb]);
}

static void test_bit_flip_mid_active_segment_is_corrupt_not_torn(void **state)
{
    static const char *const cfg[] = {"fsync=always", NULL};
    uint64_t pos[16], ids[8];
    char seg[4400], off[64];
    lg_open_opts o = {0};
    lg_topic *t;
    lg_ack ack;
    lines l = {0};
    size_t nb;
    (void)state;

    mk_topic("aflip", cfg);
    t = open_topic("aflip", NULL, 0);
    for (uint64_t i = 0; i < 8; i++) {
        assert_int_equal(lgf_put(t, 0, 40 + i, 1, &ack), WR_OK);
        ids[i] = 40 + i;
    }
    lg_topic_close(t);
    snprintf(seg, sizeof(seg), "%s", part_file("aflip", 0, "00000000000000000000.log"));
    nb = lgf_batch_positions(seg, pos, 16);
    assert_int_equal(nb, 8);

    /* Damage in a header field and in a payload, each followed by valid batches. */
    for (int where = 0; where < 2; where++) {
        long at = where == 0 ? (long)pos[3] + 5 : (long)pos[3] + LG_BATCH_HDR + 3;
        wr_status st;
        lgt_flip(seg, at);
        assert_int_equal(unlink(part_file("aflip", 0, "CLEAN")), 0); /* unclean stop */
        o.no_cleaner = true;
        st = lg_topic_open(lgt_root(), "aflip", &o, &t);
        assert_int_equal(st, WR_ERR_CORRUPT);
        snprintf(off, sizeof(off), "byte %" PRIu64, pos[3]);
        assert_non_null(strstr(wr_errmsg(), "topic aflip partition 0"));
        assert_non_null(strstr(wr_errmsg(), seg));
        assert_non_null(strstr(wr_errmsg(), off));
        assert_int_equal(lgt_file_size(seg), pos[nb]); /* not truncated */
        lgt_flip(seg, at); /* repair; restore the marker via a clean open/close */
        t = open_topic("aflip", NULL, 0);
        expect_ids(t, 0, 0, ids, 8);
        lg_topic_close(t);
    }

    /* verify reports the same damage on an open topic. */
    lgt_flip(seg, (long)pos[5] + LG_BATCH_HDR + 2);
    t = open_topic("aflip", NULL, 0); /* clean: the active segment is not rescanned */
    assert_int_equal(lg_topic_verify(t, collect, &l), WR_ERR_CORRUPT);
    assert_true(l.n >= 1);
    snprintf(off, sizeof(off), "byte %" PRIu64, pos[5]);
    assert_non_null(strstr(l.buf[0], "topic aflip partition 0"));
    assert_non_null(strstr(l.buf[0], seg));
    assert_non_null(strstr(l.buf[0], off));
    lg_topic_close(t);
}

/* ---------------------------------------------------------------- (e) index files */

static char *idxf(char *dst, uint64_t base, const char *ext)
{
    char name[32];
    lg_seg_name(name, sizeof(name), base, ext);
    snprintf(dst, 4400, "%s", part_file("idx", 0, name));
    return dst;
}

static void check_reads_from_everywhere(lg_topic *t, uint64_t n)
{
    for (uint64_t o = 0; o < n; o++) {
        lg_reader *r;
        lg_record rec;
        uint64_t id;
        assert_int_equal(lg_reader_open(t, 0, LG_FROM_OFFSET, (int64_t)o, &r), WR_OK);
        for (uint64_t k = o; k < n && k < o + 3; k++) {
            assert_int_equal(lg_reader_next(r, &rec, 0), WR_OK);
            assert_int_equal(rec.offset, k);
            assert_true(lgf_rec_id(&rec, &id));
            assert_int_equal(id, k);
        }
        lg_reader_close(r);
        /* by time: timestamps are 1000 + offset */
        assert_int_equal(lg_reader_open(t, 0, LG_FROM_TIME, 1000 + (int64_t)o, &r), WR_OK);
        assert_int_equal(lg_reader_next(r, &rec, 0), WR_OK);
        assert_int_equal(rec.offset, o);
        lg_reader_close(r);
    }
}

static void test_damaged_or_missing_index_files_are_rebuilt(void **state)
{
    static const char *const cfg[] = {"fsync=always", "segment.bytes=4096", NULL};
    lg_partition_info info;
    lg_topic *t;
    lg_ack ack;
    uint64_t n = 0, bases[64];
    uint32_t segs;
    char path[4400], path2[4400];
    (void)state;

    mk_topic("idx", cfg);
    t = open_topic("idx", NULL, 0);
    for (; n < 300; n++) {
        lgf_batch fb;
        lg_batch_in *b = lgf_batch_make(&fb, n, 1);
        fb.recs[0].ts_ms = 1000 + (int64_t)n;
        assert_int_equal(lg_append(t, 0, b, &ack), WR_OK);
        assert_int_equal(ack.base_offset, n);
    }
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    segs = info.segments;
    assert_true(segs >= 6);
    pthread_mutex_lock(&t->parts[0]->mu);
    for (uint32_t i = 0; i < segs; i++)
        bases[i] = t->parts[0]->segs[i]->base;
    pthread_mutex_unlock(&t->parts[0]->mu);
    lg_topic_close(t);

    assert_int_equal(unlink(idxf(path, bases[0], ".idx")), 0); /* missing offset index */
    assert_int_equal(unlink(idxf(path, bases[1], ".tim")), 0); /* missing time index */
    lgf_truncate(idxf(path, bases[2], ".idx"), 30);            /* short header */
    lgt_flip(idxf(path, bases[3], ".idx"), LG_IDX_HDR + 4);    /* a flipped entry */
    lgt_flip(idxf(path, bases[3], ".tim"), 20);                /* a flipped header */
    idxf(path, bases[5], ".idx");
    lgf_copy_dir(path, idxf(path2, bases[4], ".idx")); /* another segment's index */
    idxf(path, bases[4], ".tim");
    lgf_copy_dir(path, idxf(path2, bases[segs - 1], ".tim")); /* active: a wrong file */
    lgf_truncate(idxf(path, bases[segs - 1], ".idx"), 0);     /* active: empty */

    t = open_topic("idx", NULL, 0);
    check_reads_from_everywhere(t, n);
    assert_int_equal(lg_topic_verify(t, NULL, NULL), WR_OK);
    lg_topic_close(t);
    /* Rebuilt on disk: every index file is whole again, and the next clean open uses them
     * without scanning (it reads far fewer bytes than the segments hold). */
    for (uint32_t i = 0; i < segs; i++) {
        assert_true(lgt_file_size(idxf(path, bases[i], ".idx")) >= LG_IDX_HDR + 8);
        assert_true(lgt_file_size(idxf(path, bases[i], ".tim")) >= LG_IDX_HDR + 16);
    }
    {
        lgf_io *f = lgf_create(7);
        t = open_topic("idx", lgf_io_get(f), 0);
        assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
        assert_true(lgf_pread_bytes(f) < info.bytes / 4);
        check_reads_from_everywhere(t, n);
        lg_topic_close(t);
        lgf_destroy(f);
    }
}

/* ---------------------------------------------------------------- (f) clean restart */

typedef struct fill_arg {
    const char *name;
    uint64_t from, cnt;
} fill_arg;

static void child_fill(void *arg, int fd)
{
    fill_arg *a = arg;
    lg_open_opts o = {0};
    lg_topic *t;
    lg_ack ack;
    o.no_cleaner = true;
    if (lg_topic_open(lgt_root(), a->name, &o, &t) != WR_OK)
        _exit(6);
    for (uint64_t i = 0; i < a->cnt; i += 8) {
        if (lgf_put(t, 0, a->from + i, 8, &ack) != WR_OK)
            _exit(7);
        lgf_child_say(fd, "ACK %" PRIu64 "\n", ack.base_offset);
    }
    /* returns without closing: the parent SIGKILLs us */
}

static void run_child_and_kill(lgf_child_fn fn, void *arg)
{
    lgf_child c;
    char line[256];
    bool done = false;
    lgf_child_start(&c, fn, arg);
    while (fgets(line, sizeof(line), c.in) != NULL)
        if (strcmp(line, "DONE\n") == 0) {
            done = true;
            break;
        }
    assert_true(done);
    assert_true(lgf_child_kill(&c));
    lgf_child_fini(&c);
}

static void test_clean_restart_does_not_rescan(void **state)
{
    static const char *const cfg[] = {"fsync=never", NULL};
    lg_partition_info info;
    lg_topic *t;
    lgf_io *f = lgf_create(8);
    uint64_t n = 0, read1;
    lg_ack ack;
    fill_arg fa;
    (void)state;

    mk_topic("fast", cfg);
    t = open_topic("fast", NULL, 0);
    for (; n < 12000; n += 8) /* ~2 MiB */
        assert_int_equal(lgf_put(t, 0, n, 8, &ack), WR_OK);
    lg_topic_close(t);
    t = open_topic("fast", lgf_io_get(f), 0);
    read1 = lgf_pread_bytes(f);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.high_watermark, n);
    assert_true(info.bytes > (2u << 20) - (1u << 18));
    assert_true(read1 * 100 < info.bytes);
    lg_topic_close(t);

    /* An unclean stop: the active segment must be scanned. */
    fa.name = "fast";
    fa.from = n;
    fa.cnt = 800;
    run_child_and_kill(child_fill, &fa);
    lgf_reset_counts(f);
    t = open_topic("fast", lgf_io_get(f), 0);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.high_watermark, n + 800);
    assert_true(lgf_pread_bytes(f) >= info.bytes);
    lg_topic_close(t);
    lgf_destroy(f);
}

/* ---------------------------------------------------------------- idempotent producers */

static lg_batch_in *pbatch(lgf_batch *fb, uint64_t id0, uint32_t cnt, uint16_t epoch, uint32_t seq)
{
    lg_batch_in *b = lgf_batch_make(fb, id0, cnt);
    b->producer_id = 7;
    b->producer_epoch = epoch;
    b->base_seq = seq;
    return b;
}

typedef struct prod_arg {
    const char *name;
} prod_arg;

/* In a child: append seq 10..19 (epoch 0) and report its offsets, then get killed. */
static void child_produce(void *arg, int fd)
{
    prod_arg *a = arg;
    lg_open_opts o = {0};
    lg_topic *t;
    lgf_batch fb;
    lg_ack ack;
    o.no_cleaner = true;
    if (lg_topic_open(lgt_root(), a->name, &o, &t) != WR_OK)
        _exit(6);
    if (lg_append(t, 0, pbatch(&fb, 10, 10, 0, 10), &ack) != WR_OK || ack.duplicate)
        _exit(7);
    lgf_child_say(fd, "ACK %" PRIu64 "\n", ack.base_offset);
}

static void expect_dup(lg_topic *t, uint64_t id0, uint32_t seq, uint64_t base)
{
    lgf_batch fb;
    lg_ack ack;
    assert_int_equal(lg_append(t, 0, pbatch(&fb, id0, 10, 0, seq), &ack), WR_OK);
    assert_true(ack.duplicate);
    assert_int_equal(ack.base_offset, base);
    assert_int_equal(ack.count, 10);
}

static void test_idempotent_retry_across_restarts(void **state)
{
    static const char *const cfg[] = {"fsync=always", "segment.bytes=4096", NULL};
    lg_partition_info info;
    lg_topic *t;
    lgf_batch fb;
    lg_ack ack;
    uint64_t ids[20], first;
    prod_arg pa = {"idem"};
    (void)state;

    for (int i = 0; i < 20; i++)
        ids[i] = (uint64_t)i;
    mk_topic("idem", cfg);
    t = open_topic("idem", NULL, 0);
    assert_int_equal(lg_append(t, 0, pbatch(&fb, 0, 10, 0, 0), &ack), WR_OK);
    assert_false(ack.duplicate);
    first = ack.base_offset;
    assert_int_equal(first, 0);
    expect_dup(t, 0, 0, first); /* same process */
    t = (lg_topic_close(t), open_topic("idem", NULL, 0));
    expect_dup(t, 0, 0, first); /* after a clean restart */
    lg_topic_close(t);

    /* After an unclean stop: the batch the child wrote, and the one before it. */
    run_child_and_kill(child_produce, &pa);
    t = open_topic("idem", NULL, 0);
    expect_dup(t, 10, 10, 10);
    expect_dup(t, 0, 0, first);
    expect_ids(t, 0, 0, ids, 20); /* nothing stored twice */

    /* Out of order: a gap, and an old sequence no longer matching a remembered batch. */
    assert_int_equal(lg_append(t, 0, pbatch(&fb, 100, 1, 0, 25), &ack), WR_ERR_SEQUENCE);
    assert_non_null(strstr(wr_errmsg(), "expected sequence 20"));
    assert_non_null(strstr(wr_errmsg(), "got 25"));
    assert_int_equal(lg_append(t, 0, pbatch(&fb, 100, 1, 0, 3), &ack), WR_ERR_SEQUENCE);
    assert_non_null(strstr(wr_errmsg(), "got 3"));
    /* A new epoch fences the old one. */
    assert_int_equal(lg_append(t, 0, pbatch(&fb, 20, 1, 1, 0), &ack), WR_OK);
    assert_false(ack.duplicate);
    assert_int_equal(ack.base_offset, 20);
    assert_int_equal(lg_append(t, 0, pbatch(&fb, 100, 1, 0, 20), &ack), WR_ERR_FENCED);
    assert_non_null(strstr(wr_errmsg(), "epoch 0"));
    lg_topic_close(t);
    /* Fencing survives a restart too. */
    t = open_topic("idem", NULL, 0);
    assert_int_equal(lg_append(t, 0, pbatch(&fb, 100, 1, 0, 20), &ack), WR_ERR_FENCED);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.high_watermark, 21);
    lg_topic_close(t);
}

int main(void)
{
    if (getenv("WEIR_LOG") == NULL) /* the recoveries below warn on purpose */
        wr_log_set_level(WR_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_write_or_sync_is_sticky_and_keeps_every_ack,
                                        lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_fails_the_whole_round, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_power_cut_keeps_every_synced_ack, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_blocked_sync_gives_backpressure_not_memory, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_at_every_byte_of_the_last_batch, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_bit_flip_in_sealed_segment_is_corrupt, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_bit_flip_mid_active_segment_is_corrupt_not_torn,
                                        lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_or_missing_index_files_are_rebuilt, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_clean_restart_does_not_rescan, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_retry_across_restarts, lgt_setup,
                                        lgt_teardown),
    };
    return cmocka_run_group_tests_name("lg_fault", tests, NULL, NULL);
}

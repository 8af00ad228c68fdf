/* tests/logfault/test_lg_concurrency.c -- appenders, followers and maintenance at once.
 *
 * 8 appender threads write batches of 1..3 records to 2 partitions (16 KiB segments, so
 * segments roll under the readers) while 2 follower threads read both partitions with
 * lg_reader_next(timeout) and a maintenance thread runs retention (cleanup=delete,
 * retention.ms=0, pinned at the slowest follower's position) or compaction (cleanup=compact,
 * unique keys) in a loop. Each under fsync=always and fsync=interval. Checked: every
 * acknowledged record is seen by every follower exactly once, in offset order, with its
 * payload; offsets per partition are dense (every append succeeds and no key repeats); each
 * offset was acknowledged to exactly one append. Meant to run under ASan+UBSan too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lgf_util.h"

#define APPENDERS 8
#define FOLLOWERS 2
#define PARTS     2
#define BATCHES   250 /* per appender */

typedef struct ackrec {
    uint32_t part, cnt;
    uint64_t offset, id0;
} ackrec;

typedef struct shared {
    lg_topic *t;
    bool compact;
    _Atomic bool appenders_done, stop_maint;
    _Atomic uint64_t final_hw[PARTS];
    _Atomic uint64_t pos[FOLLOWERS][PARTS]; /* next offset each follower will read */
    _Atomic uint64_t maint_runs;
    _Atomic int errors;
    char err[256];
    pthread_mutex_t err_mu;
} shared;

typedef struct appender {
    shared *sh;
    int k;
    ackrec acks[BATCHES];
    size_t n;
} appender;

typedef struct follower {
    shared *sh;
    int k;
    lgf_seen *seen[PARTS];
    size_t n[PARTS], cap[PARTS];
} follower;

static void report(shared *sh, const char *fmt, ...) WR_PRINTF(2, 3);
static void report(shared *sh, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&sh->err_mu);
    if (atomic_fetch_add(&sh->errors, 1) == 0) {
        va_start(ap, fmt);
        vsnprintf(sh->err, sizeof(sh->err), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&sh->err_mu);
}

static void *appender_main(void *arg)
{
    appender *a = arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(a->k + 1), next = 1;
    for (int i = 0; i < BATCHES; i++) {
        lgf_batch fb;
        lg_ack ack;
        wr_status st;
        uint32_t part, cnt;
        uint64_t id0 = ((uint64_t)(a->k + 1) << 32) | next;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        part = (uint32_t)(s % PARTS);
        cnt = 1 + (uint32_t)((s >> 8) % 3);
        next += cnt;
        st = lg_append(a->sh->t, part, lgf_batch_make(&fb, id0, cnt), &ack);
        if (st != WR_OK) {
            report(a->sh, "appender %d: %s %s", a->k, wr_status_str(st), wr_errmsg());
            return NULL;
        }
        a->acks[a->n++] = (ackrec){part, cnt, ack.base_offset, id0};
    }
    return NULL;
}

static void *follower_main(void *arg)
{
    follower *f = arg;
    shared *sh = f->sh;
    lg_reader *r[PARTS];
    bool done[PARTS] = {false};

    for (uint32_t p = 0; p < PARTS; p++)
        if (lg_reader_open(sh->t, p, LG_FROM_EARLIEST, 0, &r[p]) != WR_OK) {
            report(sh, "follower %d: open: %s", f->k, wr_errmsg());
            for (uint32_t q = 0; q < p; q++)
                lg_reader_close(r[q]);
            return NULL;
        }
    while (!(done[0] && done[1]) && atomic_load(&sh->errors) == 0) {
        for (uint32_t p = 0; p < PARTS; p++) {
            lg_record rec;
            wr_status st;
            uint64_t id;
            if (done[p])
                continue;
            /* Drain what is there, then wait a little for more. */
            while ((st = lg_reader_next(r[p], &rec, 5)) == WR_OK) {
                if (rec.offset != f->n[p]) {
                    report(sh, "follower %d partition %u: offset %" PRIu64 " after %zu records",
                           f->k, p, rec.offset, f->n[p]);
                    goto out;
                }
                if (!lgf_rec_id(&rec, &id)) {
                    report(sh, "follower %d partition %u: bad payload at %" PRIu64, f->k, p,
                           rec.offset);
                    goto out;
                }
                if (f->n[p] == f->cap[p]) {
                    f->cap[p] = f->cap[p] ? f->cap[p] * 2 : 1024;
                    f->seen[p] = realloc(f->seen[p], f->cap[p] * sizeof(lgf_seen));
                    if (f->seen[p] == NULL)
                        abort();
                }
                f->seen[p][f->n[p]++] = (lgf_seen){rec.offset, id};
                atomic_store(&sh->pos[f->k][p], rec.offset + 1);
            }
            if (st != WR_EOF) {
                report(sh, "follower %d partition %u: %s %s", f->k, p, wr_status_str(st),
                       wr_errmsg());
                goto out;
            }
            if (atomic_load(&sh->appenders_done) && f->n[p] >= atomic_load(&sh->final_hw[p]))
                done[p] = true;
        }
    }
out:
    for (uint32_t p = 0; p < PARTS; p++)
        lg_reader_close(r[p]);
    return NULL;
}

static void *maint_main(void *arg)
{
    shared *sh = arg;
    while (!atomic_load(&sh->stop_maint) && atomic_load(&sh->errors) == 0) {
        wr_status st;
        if (sh->compact) {
            st = lg_topic_compact(sh->t);
        } else {
            /* Retention may delete only what both followers have read. */
            for (uint32_t p = 0; p < PARTS; p++) {
                uint64_t low = UINT64_MAX;
                for (int k = 0; k < FOLLOWERS; k++)
                    if (atomic_load(&sh->pos[k][p]) < low)
                        low = atomic_load(&sh->pos[k][p]);
                if ((st = lg_pin_set(sh->t, "followers", p, low)) != WR_OK) {
                    report(sh, "pin: %s", wr_errmsg());
                    return NULL;
                }
            }
            st = lg_topic_retain(sh->t);
        }
        if (st != WR_OK) {
            report(sh, "maintenance: %s %s", wr_status_str(st), wr_errmsg());
            return NULL;
        }
        atomic_fetch_add(&sh->maint_runs, 1);
        wr_sleep_ns(2000000);
    }
    return NULL;
}

static void run(const char *name, bool compact, bool interval)
{
    lg_config cfg;
    lg_open_opts o = {0};
    shared sh;
    appender *ap = calloc(APPENDERS, sizeof(*ap));
    follower fo[FOLLOWERS];
    pthread_t ta[APPENDERS], tf[FOLLOWERS], tm;
    uint64_t *byoff[PARTS];
    lg_partition_info info;

    if (ap == NULL)
        abort();
    lg_config_default(&cfg);
    cfg.partitions = PARTS;
    cfg.segment_bytes = 16 << 10;
    cfg.fsync = interval ? LG_FSYNC_INTERVAL : LG_FSYNC_ALWAYS;
    cfg.fsync_interval_ms = 10;
    cfg.index_interval_bytes = 1024;
    if (compact) {
        cfg.cleanup = LG_CLEANUP_COMPACT;
        cfg.min_cleanable_ratio = 0.01;
    } else {
        cfg.retention_ms = 0; /* everything is old: only the pin holds it */
    }
    assert_int_equal(lg_topic_create(lgt_root(), name, &cfg), WR_OK);
    memset(&sh, 0, sizeof(sh));
    pthread_mutex_init(&sh.err_mu, NULL);
    sh.compact = compact;
    assert_int_equal(lg_topic_open(lgt_root(), name, &o, &sh.t), WR_OK); /* cleaner thread on too */
    if (!compact)
        for (uint32_t p = 0; p < PARTS; p++)
            assert_int_equal(lg_pin_set(sh.t, "followers", p, 0), WR_OK);

    memset(fo, 0, sizeof(fo));
    for (int k = 0; k < FOLLOWERS; k++) {
        fo[k].sh = &sh;
        fo[k].k = k;
        assert_int_equal(pthread_create(&tf[k], NULL, follower_main, &fo[k]), 0);
    }
    assert_int_equal(pthread_create(&tm, NULL, maint_main, &sh), 0);
    for (int k = 0; k < APPENDERS; k++) {
        ap[k].sh = &sh;
        ap[k].k = k;
        assert_int_equal(pthread_create(&ta[k], NULL, appender_main, &ap[k]), 0);
    }
    for (int k = 0; k < APPENDERS; k++)
        pthread_join(ta[k], NULL);
    for (uint32_t p = 0; p < PARTS; p++) {
        assert_int_equal(lg_partition_info_get(sh.t, p, &info), WR_OK);
        atomic_store(&sh.final_hw[p], info.high_watermark);
    }
    atomic_store(&sh.appenders_done, true);
    for (int k = 0; k < FOLLOWERS; k++)
        pthread_join(tf[k], NULL);
    atomic_store(&sh.stop_maint, true);
    pthread_join(tm, NULL);
    if (atomic_load(&sh.errors))
        fail_msg("%s (%d errors)", sh.err, atomic_load(&sh.errors));

    /* Each offset was acknowledged to exactly one append, and they are dense. */
    for (uint32_t p = 0; p < PARTS; p++) {
        uint64_t hw = atomic_load(&sh.final_hw[p]);
        byoff[p] = calloc(hw ? hw : 1, sizeof(uint64_t));
        if (byoff[p] == NULL)
            abort();
    }
    for (int k = 0; k < APPENDERS; k++) {
        assert_int_equal(ap[k].n, BATCHES);
        for (size_t i = 0; i < ap[k].n; i++) {
            const ackrec *a = &ap[k].acks[i];
            for (uint32_t j = 0; j < a->cnt; j++) {
                assert_true(a->offset + j < atomic_load(&sh.final_hw[a->part]));
                assert_int_equal(byoff[a->part][a->offset + j], 0);
                byoff[a->part][a->offset + j] = a->id0 + j;
            }
        }
    }
    for (uint32_t p = 0; p < PARTS; p++) {
        uint64_t hw = atomic_load(&sh.final_hw[p]);
        for (uint64_t o2 = 0; o2 < hw; o2++)
            assert_int_not_equal(byoff[p][o2], 0); /* dense: no offset without an ack */
        /* Every follower saw exactly those records, in order. */
        for (int k = 0; k < FOLLOWERS; k++) {
            assert_int_equal(fo[k].n[p], hw);
            for (uint64_t i = 0; i < hw; i++) {
                assert_int_equal(fo[k].seen[p][i].offset, i);
                assert_int_equal(fo[k].seen[p][i].id, byoff[p][i]);
            }
            free(fo[k].seen[p]);
        }
    }
    assert_true(atomic_load(&sh.maint_runs) > 0);
    assert_int_equal(lg_partition_info_get(sh.t, 0, &info), WR_OK);
    fprintf(stderr,
            "%s: hw %" PRIu64 "/%" PRIu64 ", %" PRIu64
            " maintenance runs; partition 0: start %" PRIu64 ", %u segments, %" PRIu64
            " cleaner runs (%" PRIu64 " bytes in)\n",
            name, atomic_load(&sh.final_hw[0]), atomic_load(&sh.final_hw[1]),
            atomic_load(&sh.maint_runs), info.log_start_offset, info.segments, info.cleaner_runs,
            info.cleaner_bytes_in);

    /* Afterwards the maintenance has its effect: retention deleted what the pin released;
     * compaction kept every record (all keys are unique) and the log still reads whole. */
    if (!compact) {
        for (uint32_t p = 0; p < PARTS; p++)
            assert_int_equal(lg_pin_set(sh.t, "followers", p, atomic_load(&sh.final_hw[p])), WR_OK);
        assert_int_equal(lg_topic_retain(sh.t), WR_OK);
        for (uint32_t p = 0; p < PARTS; p++) {
            assert_int_equal(lg_partition_info_get(sh.t, p, &info), WR_OK);
            assert_true(info.log_start_offset > 0);
        }
    } else {
        assert_int_equal(lg_topic_compact(sh.t), WR_OK);
        for (uint32_t p = 0; p < PARTS; p++) {
            lgf_seen *s;
            size_t cnt;
            assert_int_equal(lgf_read_all(sh.t, p, &s, &cnt), WR_EOF);
            assert_int_equal(cnt, atomic_load(&sh.final_hw[p]));
            for (size_t i = 0; i < cnt; i++)
                assert_int_equal(s[i].id, byoff[p][i]);
            free(s);
        }
    }
    assert_int_equal(lg_topic_verify(sh.t, NULL, NULL), WR_OK);
    for (uint32_t p = 0; p < PARTS; p++)
        free(byoff[p]);
    lg_topic_close(sh.t);
    pthread_mutex_destroy(&sh.err_mu);
    free(ap);
}

static void test_followers_see_every_ack_during_retention_always(void **state)
{
    (void)state;
    run("ret_always", false, false);
}

static void test_followers_see_every_ack_during_retention_interval(void **state)
{
    (void)state;
    run("ret_interval", false, true);
}

static void test_followers_see_every_ack_during_compaction_always(void **state)
{
    (void)state;
    run("cmp_always", true, false);
}

static void test_followers_see_every_ack_during_compaction_interval(void **state)
{
    (void)state;
    run("cmp_interval", true, true);
}

int main(void)
{
    if (getenv("WEIR_LOG") == NULL)
        wr_log_set_level(WR_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_followers_see_every_ack_during_retention_always,
                                        lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_followers_see_every_ack_during_retention_interval,
                                        lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_followers_see_every_ack_during_compaction_always,
                                        lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_followers_see_every_ack_during_compaction_interval,
                                        lgt_setup, lgt_teardown),
    };
    return cmocka_run_group_tests_name("lg_concurrency", tests, NULL, NULL);
}

/* tests/log/test_lg_compact.c -- key compaction: the result equals "latest record per key"
 * computed independently from what was appended; offsets are kept (gaps allowed);
 * tombstones go only after delete.retention.ms; a crash mid-compaction (a leftover
 * .cleaned file, or a swapped segment with stale indexes) loses nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lg_testutil.h"

#define NKEYS 50
#define NRECS 3000

typedef struct model {
    uint64_t last_off[NKEYS]; /* UINT64_MAX: never written */
    bool tomb[NKEYS];
    uint64_t hw;
} model;

static lg_topic *open_t(const char *name)
{
    lg_open_opts o = {0};
    lg_topic *t;
    o.no_cleaner = true;
    assert_int_equal(lg_topic_open(lgt_root(), name, &o, &t), WR_OK);
    return t;
}

static lg_topic *fill(const char *name, const char *tomb_ms, model *m, unsigned seed)
{
    lg_config c;
    lg_config_default(&c);
    assert_int_equal(lg_config_set(&c, "cleanup.policy=compact"), WR_OK);
    assert_int_equal(lg_config_set(&c, "segment.bytes=8192"), WR_OK);
    assert_int_equal(lg_config_set(&c, tomb_ms), WR_OK);
    assert_int_equal(lg_config_set(&c, "fsync=never"), WR_OK);
    assert_int_equal(lg_topic_create(lgt_root(), name, &c), WR_OK);
    lg_topic *t = open_t(name);
    srand(seed);
    for (int k = 0; k < NKEYS; k++)
        m->last_off[k] = UINT64_MAX;
    for (uint64_t i = 0; i < NRECS; i++) {
        int k = rand() % NKEYS;
        char key[16], val[32];
        uint64_t off = 0;
        bool tomb = rand() % 10 == 0;
        snprintf(key, sizeof(key), "key%02d", k);
        snprintf(val, sizeof(val), "val-%llu", (unsigned long long)i);
        assert_int_equal(lgt_put(t, 0, key, tomb ? NULL : val, &off), WR_OK);
        assert_int_equal(off, i);
        m->last_off[k] = off;
        m->tomb[k] = tomb;
    }
    m->hw = NRECS;
    return t;
}

/* After compaction: every record read is the newest for its key, or lies in the active
 * segment (never compacted); every key's newest record is still there (tombstones: unless
 * dropped, when @tomb_dropped). */
static void check(lg_topic *t, const model *m, bool tomb_dropped, uint64_t *records_out,
                  bool strict)
{
    lg_reader *r;
    lg_record rec;
    bool seen[NKEYS] = {false};
    uint64_t prev = 0, n = 0, active_base;
    lg_partition_info info;
    wr_status st;

    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.high_watermark, m->hw);
    {
        lg_part *p = t->parts[0];
        active_base = p->segs[p->seg_cnt - 1]->base;
    }
    assert_int_equal(lg_reader_open(t, 0, LG_FROM_EARLIEST, 0, &r), WR_OK);
    while ((st = lg_reader_next(r, &rec, 0)) == WR_OK) {
        int k = atoi((const char *)rec.key.ptr + 3);
        char want[32];
        if (n)
            assert_true(rec.offset > prev);
        prev = rec.offset;
        n++;
        if (strict && rec.offset < active_base)
            assert_int_equal(rec.offset, m->last_off[k]); /* shadowed versions are gone */
        if (rec.offset == m->last_off[k]) {
            seen[k] = true;
            assert_int_equal(rec.tombstone, m->tomb[k]);
            if (!rec.tombstone) {
                snprintf(want, sizeof(want), "val-%llu", (unsigned long long)rec.offset);
                assert_true(wr_bytes_eq(rec.val, wr_bytes_str(want)));
            }
        }
    }
    assert_int_equal(st, WR_EOF);
    lg_reader_close(r);
    for (int k = 0; k < NKEYS; k++) {
        if (m->last_off[k] == UINT64_MAX)
            continue;
        if (m->tomb[k] && tomb_dropped && m->last_off[k] < active_base)
            assert_false(seen[k]);
        else
            assert_true(seen[k]);
    }
    if (records_out)
        *records_out = n;
}

static void test_compaction_keeps_latest_per_key(void **state)
{
    model m;
    uint64_t n;
    lg_partition_info info;
    lg_topic *t = fill("c1", "delete.retention.ms=86400000", &m, 1);
    (void)state;
    assert_int_equal(lg_topic_compact(t), WR_OK);
    check(t, &m, false, &n, true);
    assert_true(n < NRECS / 2); /* most versions were shadowed */
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.cleaner, LG_CLEANER_IDLE);
    assert_int_equal(info.cleaner_runs, 1);
    assert_true(info.cleaner_bytes_out < info.cleaner_bytes_in);
    assert_true(info.dirty_ratio < 0.01);
    /* Survives a restart, and a second run changes nothing. */
    lg_topic_close(t);
    t = open_t("c1");
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_true(info.cleaned_offset > 0); /* progress is remembered: nothing looks dirty */
    assert_true(info.dirty_ratio < 0.01);
    check(t, &m, false, NULL, true);
    assert_int_equal(lg_topic_compact(t), WR_OK);
    check(t, &m, false, NULL, true);
    assert_int_equal(lg_topic_verify(t, NULL, NULL), WR_OK);
    lg_topic_close(t);
}

static void test_tombstones_drop_after_delay(void **state)
{
    model m;
    lg_topic *t = fill("c2", "delete.retention.ms=0", &m, 2);
    (void)state;
    assert_int_equal(lg_topic_compact(t), WR_OK);
    check(t, &m, true, NULL, true);
    lg_topic_close(t);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[9300];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void test_crash_mid_compaction_loses_nothing(void **state)
{
    model m;
    lg_topic *t = fill("c3", "delete.retention.ms=86400000", &m, 3);
    char saved[4600], cleaned[4600], seg[4400];
    (void)state;
    lg_topic_close(t);
    /* Crash before the swap: a finished .cleaned copy lies beside the old segment. */
    snprintf(seg, sizeof(seg), "%s", lgt_segpath(lgt_root(), "c3", 0, 0, ".log"));
    snprintf(saved, sizeof(saved), "%s.orig", seg);
    copy_file(seg, saved);
    t = open_t("c3");
    assert_int_equal(lg_topic_compact(t), WR_OK);
    lg_topic_close(t);
    snprintf(cleaned, sizeof(cleaned), "%s.cleaned", seg);
    copy_file(seg, cleaned); /* the compacted bytes, as if the rename had not happened */
    copy_file(saved, seg);   /* and the old segment still in place */
    unlink(saved);
    {
        char marker[4400];
        snprintf(marker, sizeof(marker), "%s/c3/00000/CLEAN", lgt_root());
        unlink(marker); /* and an unclean stop */
    }
    t = open_t("c3");
    assert_int_equal(lgt_file_size(cleaned), -1); /* the leftover is gone */
    check(t, &m, false, NULL, false);             /* the old, uncompacted state */
    /* Crash after the swap, before the new indexes: the stale index is rebuilt. */
    assert_int_equal(lg_topic_compact(t), WR_OK);
    lg_topic_close(t);
    copy_file(lgt_segpath(lgt_root(), "c3", 0, 0, ".idx"), saved);
    t = open_t("c3");
    lg_topic_close(t);
    t = open_t("c3");
    check(t, &m, false, NULL, true);
    assert_int_equal(lg_topic_verify(t, NULL, NULL), WR_OK);
    lg_topic_close(t);
}

static void test_appends_continue_during_compaction(void **state)
{
    model m;
    lg_topic *t = fill("c4", "delete.retention.ms=86400000", &m, 4);
    (void)state;
    /* The cleaner only rewrites sealed segments: appends after it see normal offsets. */
    assert_int_equal(lg_topic_compact(t), WR_OK);
    for (int i = 0; i < 100; i++) {
        uint64_t off = 0;
        char val[32];
        snprintf(val, sizeof(val), "val-%llu", (unsigned long long)m.hw);
        assert_int_equal(lgt_put(t, 0, "key07", val, &off), WR_OK);
        assert_int_equal(off, m.hw);
        m.last_off[7] = off;
        m.tomb[7] = false;
        m.hw++;
    }
    assert_int_equal(lg_topic_compact(t), WR_OK);
    check(t, &m, false, NULL, true);
    lg_topic_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compaction_keeps_latest_per_key, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_tombstones_drop_after_delay, lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_crash_mid_compaction_loses_nothing, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_appends_continue_during_compaction, lgt_setup,
                                        lgt_teardown),
    };
    return cmocka_run_group_tests_name("lg_compact", tests, NULL, NULL);
}

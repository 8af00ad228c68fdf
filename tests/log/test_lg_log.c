/* tests/log/test_lg_log.c -- the log end to end through its public API: appends and reads
 * from every kind of start, rolls, restarts, groups, pins and retention, read-only opens,
 * configuration and naming errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lg_testutil.h"

static lg_topic *mk(const char *name, const char *const *settings)
{
    lg_config c;
    lg_topic *t;
    lg_open_opts o = {0};
    lg_config_default(&c);
    for (; settings && *settings; settings++)
        assert_int_equal(lg_config_set(&c, *settings), WR_OK);
    assert_int_equal(lg_topic_create(lgt_root(), name, &c), WR_OK);
    o.no_cleaner = true;
    assert_int_equal(lg_topic_open(lgt_root(), name, &o, &t), WR_OK);
    return t;
}

static lg_topic *reopen(lg_topic *t, const char *name)
{
    lg_open_opts o = {0};
    lg_topic_close(t);
    o.no_cleaner = true;
    assert_int_equal(lg_topic_open(lgt_root(), name, &o, &t), WR_OK);
    return t;
}

/* Read everything from @start and check values "v<i>" for offsets from..to-1. */
static void expect_values(lg_topic *t, uint32_t part, uint64_t from, uint64_t to)
{
    lg_reader *r;
    lg_record rec;
    char want[32];
    assert_int_equal(lg_reader_open(t, part, LG_FROM_OFFSET, (int64_t)from, &r), WR_OK);
    for (uint64_t i = from; i < to; i++) {
        assert_int_equal(lg_reader_next(r, &rec, 0), WR_OK);
        assert_int_equal(rec.offset, i);
        snprintf(want, sizeof(want), "v%llu", (unsigned long long)i);
        assert_true(wr_bytes_eq(rec.val, wr_bytes_str(want)));
    }
    assert_int_equal(lg_reader_next(r, &rec, 0), WR_EOF);
    lg_reader_close(r);
}

static void put_n(lg_topic *t, uint32_t part, uint64_t from, uint64_t to)
{
    char v[32];
    for (uint64_t i = from; i < to; i++) {
        uint64_t off;
        snprintf(v, sizeof(v), "v%llu", (unsigned long long)i);
        assert_int_equal(lgt_put(t, part, "key", v, &off), WR_OK);
        assert_int_equal(off, i);
    }
}

static void test_append_read_roll_restart(void **state)
{
    static const char *const s[] = {"segment.bytes=4096", "index.interval.bytes=256", NULL};
    lg_topic *t = mk("roll", s);
    lg_partition_info info;
    (void)state;
    put_n(t, 0, 0, 600);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_true(info.segments > 5);
    assert_int_equal(info.high_watermark, 600);
    expect_values(t, 0, 0, 600);
    expect_values(t, 0, 377, 600); /* from the middle of a segment */
    t = reopen(t, "roll");
    expect_values(t, 0, 0, 600);
    put_n(t, 0, 600, 700); /* offsets continue after a restart */
    expect_values(t, 0, 590, 700);
    lg_topic_close(t);
}

static void test_batches_zstd_headers_partitions(void **state)
{
    lg_topic *t;
    static const char *const s[] = {"partitions=3", NULL};
    lg_rec_in r[100];
    lg_batch_in b = {0};
    lg_ack ack;
    lg_reader *rd;
    lg_record rec;
    char vals[100][40];
    lg_header h = {{(const uint8_t *)"h", 1}, {(const uint8_t *)"x", 1}};
    (void)state;
    t = mk("zstd", s);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 100; i++) {
        snprintf(vals[i], sizeof(vals[i]), "compressible value %d compressible", i);
        r[i].key = wr_bytes_str("k");
        r[i].val = wr_bytes_str(vals[i]);
        r[i].hdrs = &h;
        r[i].hdr_cnt = 1;
    }
    b.recs = r;
    b.rec_cnt = 100;
    b.producer_id = LG_NO_PRODUCER;
    b.compression = LG_COMP_ZSTD;
    assert_int_equal(lg_append(t, 2, &b, &ack), WR_OK);
    assert_int_equal(ack.partition, 2);
    assert_int_equal(ack.base_offset, 0);
    assert_int_equal(ack.count, 100);
    assert_int_equal(lg_append(t, 2, &b, &ack), WR_OK);
    assert_int_equal(ack.base_offset, 100);
    assert_int_equal(lg_append(t, 3, &b, &ack), WR_ERR_INVAL); /* no partition 3 */
    assert_int_equal(lg_reader_open(t, 2, LG_FROM_OFFSET, 150, &rd), WR_OK);
    for (int i = 50; i < 100; i++) {
        assert_int_equal(lg_reader_next(rd, &rec, 0), WR_OK);
        assert_int_equal(rec.offset, 100 + (uint64_t)i);
        assert_true(wr_bytes_eq(rec.val, wr_bytes_str(vals[i])));
        assert_int_equal(rec.hdr_cnt, 1);
    }
    assert_int_equal(lg_reader_next(rd, &rec, 0), WR_EOF);
    lg_reader_close(rd);
    assert_int_equal(lg_partition_for_key(wr_bytes_str("abc"), 3),
                     (uint32_t)(wr_xxh3("abc", 3) % 3));
    lg_topic_close(t);
}

static void test_read_from_time_and_latest(void **state)
{
    lg_topic *t = mk("time", NULL);
    lg_rec_in r = {0};
    lg_batch_in b = {0};
    lg_reader *rd;
    lg_record rec;
    (void)state;
    b.recs = &r;
    b.rec_cnt = 1;
    b.producer_id = LG_NO_PRODUCER;
    r.key = wr_bytes_str("k");
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof(v), "t%d", i);
        r.val = wr_bytes_str(v);
        r.ts_ms = 1000000 + i * 10;
        assert_int_equal(lg_append(t, 0, &b, NULL), WR_OK);
    }
    assert_int_equal(lg_reader_open(t, 0, LG_FROM_TIME, 1000000 + 205, &rd), WR_OK);
    assert_int_equal(lg_reader_next(rd, &rec, 0), WR_OK);
    assert_int_equal(rec.offset, 21); /* first record with ts >= 1000205 */
    assert_int_equal(rec.ts_ms, 1000210);
    lg_reader_close(rd);
    assert_int_equal(lg_reader_open(t, 0, LG_FROM_LATEST, 0, &rd), WR_OK);
    assert_int_equal(lg_reader_next(rd, &rec, 0), WR_EOF);
    assert_int_equal(lgt_put(t, 0, "k", "new", NULL), WR_OK);
    assert_int_equal(lg_reader_next(rd, &rec, 0), WR_OK);
    assert_int_equal(rec.offset, 50);
    lg_reader_close(rd);
    lg_topic_close(t);
}

/* Timestamps that go backwards: a time read must still return the first record with a
 * timestamp >= T, so the time index has to hold the running max of every batch. */
static void test_read_from_time_with_unordered_timestamps(void **state)
{
    static const char *const s[] = {"index.interval.bytes=300", "segment.bytes=8192", NULL};
    lg_topic *t = mk("unordered", s);
    lg_rec_in r = {0};
    lg_batch_in b = {0};
    int64_t ts[400];
    (void)state;
    b.recs = &r;
    b.rec_cnt = 1;
    b.producer_id = LG_NO_PRODUCER;
    r.key = wr_bytes_str("k");
    r.val = wr_bytes_str("some value bytes");
    srand(11);
    for (int i = 0; i < 400; i++) {
        ts[i] = 1000000 + (rand() % 5000);
        r.ts_ms = ts[i];
        assert_int_equal(lg_append(t, 0, &b, NULL), WR_OK);
    }
    for (int64_t q = 1000000; q < 1005000; q += 97) {
        lg_reader *rd;
        lg_record rec;
        int want = -1;
        for (int i = 0; i < 400 && want < 0; i++)
            if (ts[i] >= q)
                want = i;
        assert_int_equal(lg_reader_open(t, 0, LG_FROM_TIME, q, &rd), WR_OK);
        if (want < 0) {
            assert_int_equal(lg_reader_next(rd, &rec, 0), WR_EOF);
        } else {
            assert_int_equal(lg_reader_next(rd, &rec, 0), WR_OK);
            assert_int_equal(rec.offset, (uint64_t)want);
        }
        lg_reader_close(rd);
    }
    lg_topic_close(t);
}

static void test_segments_roll_by_age_also_across_restarts(void **state)
{
    static const char *const s[] = {"segment.ms=50", NULL};
    lg_topic *t = mk("age", s);
    lg_partition_info info;
    (void)state;
    put_n(t, 0, 0, 3);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.segments, 1);
    wr_sleep_ns(80000000);
    put_n(t, 0, 3, 4); /* older than segment.ms: a new segment */
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.segments, 2);
    wr_sleep_ns(80000000);
    t = reopen(t, "age"); /* the age counts from the first batch, not from the open */
    put_n(t, 0, 4, 5);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.segments, 3);
    expect_values(t, 0, 0, 5);
    lg_topic_close(t);
}

typedef struct later_ctx {
    lg_topic *t;
} later_ctx;

static void *append_later(void *arg)
{
    later_ctx *c = arg;
    wr_sleep_ns(50000000);
    if (lgt_put(c->t, 0, "k", "late", NULL) != WR_OK)
        abort();
    return NULL;
}

static void test_follow_waits_for_new_data(void **state)
{
    lg_topic *t = mk("follow", NULL);
    lg_reader *rd;
    lg_record rec;
    pthread_t th;
    later_ctx c = {t};
    (void)state;
    assert_int_equal(lg_reader_open(t, 0, LG_FROM_EARLIEST, 0, &rd), WR_OK);
    assert_int_equal(lg_reader_next(rd, &rec, 10), WR_EOF); /* times out */
    pthread_create(&th, NULL, append_later, &c);
    assert_int_equal(lg_reader_next(rd, &rec, 10000), WR_OK);
    assert_true(wr_bytes_eq(rec.val, wr_bytes_str("late")));
    pthread_join(th, NULL);
    lg_reader_close(rd);
    lg_topic_close(t);
}

static void test_groups_are_durable_and_pin_retention(void **state)
{
    static const char *const s[] = {"segment.bytes=4096", "retention.bytes=0", NULL};
    lg_topic *t = mk("groups", s);
    lg_partition_info info;
    uint64_t off;
    (void)state;
    put_n(t, 0, 0, 400);
    assert_int_equal(lg_group_fetch(t, "g1", 0, &off), WR_OK);
    assert_int_equal(off, LG_NO_OFFSET);
    assert_int_equal(lg_group_commit(t, "g1", 0, 120), WR_OK);
    assert_int_equal(lg_group_commit(t, "bad/name", 0, 1), WR_ERR_INVAL);
    t = reopen(t, "groups");
    assert_int_equal(lg_group_fetch(t, "g1", 0, &off), WR_OK);
    assert_int_equal(off, 120);
    /* retention.bytes=0 wants everything gone, but g1 pins offset 120. */
    assert_int_equal(lg_topic_retain(t), WR_OK);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.low_watermark, 120);
    assert_true(info.log_start_offset <= 120);
    assert_true(info.log_start_offset > 0);
    expect_values(t, 0, 120, 400);
    /* A pin holds too; releasing the group lets retention go up to the pin. */
    assert_int_equal(lg_pin_set(t, "ckpt", 0, 300), WR_OK);
    assert_int_equal(lg_group_delete(t, "g1"), WR_OK);
    assert_int_equal(lg_topic_retain(t), WR_OK);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.low_watermark, 300);
    assert_true(info.log_start_offset > 120 && info.log_start_offset <= 300);
    expect_values(t, 0, 300, 400);
    assert_int_equal(lg_pin_set(t, "ckpt", 0, LG_NO_OFFSET), WR_OK);
    assert_int_equal(lg_topic_retain(t), WR_OK);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_int_equal(info.segments, 1); /* only the active segment is left */
    lg_topic_close(t);
}

static void test_retention_by_time(void **state)
{
    static const char *const s[] = {"segment.bytes=4096", "retention.ms=1000", NULL};
    lg_topic *t = mk("rtime", s);
    lg_rec_in r = {0};
    lg_batch_in b = {0};
    lg_partition_info info;
    char v[32];
    (void)state;
    b.recs = &r;
    b.rec_cnt = 1;
    b.producer_id = LG_NO_PRODUCER;
    r.key = wr_bytes_str("k");
    for (int i = 0; i < 300; i++) { /* old records, then new ones */
        snprintf(v, sizeof(v), "v%d", i);
        r.val = wr_bytes_str(v);
        r.ts_ms = i < 200 ? wr_wall_ms() - 3600000 : 0;
        assert_int_equal(lg_append(t, 0, &b, NULL), WR_OK);
    }
    assert_int_equal(lg_topic_retain(t), WR_OK);
    assert_int_equal(lg_partition_info_get(t, 0, &info), WR_OK);
    assert_true(info.log_start_offset > 100);
    assert_true(info.log_start_offset <= 200); /* nothing newer than the limit is gone */
    lg_topic_close(t);
}

static void test_second_writer_is_busy_readonly_reads(void **state)
{
    lg_topic *t = mk("lock", NULL), *t2, *ro;
    lg_open_opts o = {0};
    lg_record rec;
    lg_reader *rd;
    (void)state;
    put_n(t, 0, 0, 10);
    assert_int_equal(lg_topic_open(lgt_root(), "lock", NULL, &t2), WR_ERR_BUSY);
    assert_non_null(strstr(wr_errmsg(), "another process"));
    o.readonly = true;
    if (lg_topic_open(lgt_root(), "lock", &o, &ro) != WR_OK)
        fail_msg("%s", wr_errmsg());
    assert_int_equal(lgt_put(ro, 0, "k", "v", NULL), WR_ERR_INVAL);
    {
        /* A consumer beside the writer commits its group offsets. */
        uint64_t off;
        assert_int_equal(lg_group_commit(ro, "beside", 0, 3), WR_OK);
        assert_int_equal(lg_group_fetch(t, "beside", 0, &off), WR_OK);
        assert_int_equal(off, 3);
    }
    assert_int_equal(lg_reader_open(ro, 0, LG_FROM_OFFSET, 5, &rd), WR_OK);
    assert_int_equal(lg_reader_next(rd, &rec, 0), WR_OK);
    assert_int_equal(rec.offset, 5);
    put_n(t, 0, 10, 12); /* the writer goes on; the read-only reader picks it up */
    for (uint64_t i = 6; i < 12; i++) {
        assert_int_equal(lg_reader_next(rd, &rec, 1000), WR_OK);
        assert_int_equal(rec.offset, i);
    }
    lg_reader_close(rd);
    lg_topic_close(ro);
    lg_topic_close(t);
}

static void test_config_and_name_errors(void **state)
{
    lg_config c;
    lg_topic *t;
    (void)state;
    lg_config_default(&c);
    assert_int_equal(c.fsync, LG_FSYNC_ALWAYS);
    assert_int_equal(lg_config_set(&c, "fsync=interval=100"), WR_OK);
    assert_int_equal(c.fsync, LG_FSYNC_INTERVAL);
    assert_int_equal(c.fsync_interval_ms, 100);
    assert_int_equal(lg_config_set(&c, "fsync=sometimes"), WR_ERR_INVAL);
    assert_non_null(strstr(wr_errmsg(), "always, never or interval"));
    assert_int_equal(lg_config_set(&c, "partitions=0"), WR_ERR_INVAL);
    assert_int_equal(lg_config_set(&c, "bogus=1"), WR_ERR_INVAL);
    assert_non_null(strstr(wr_errmsg(), "unknown setting 'bogus'"));
    assert_int_equal(lg_config_set(&c, "noequals"), WR_ERR_INVAL);
    lg_config_default(&c);
    assert_int_equal(lg_topic_create(lgt_root(), "../evil", &c), WR_ERR_INVAL);
    assert_int_equal(lg_topic_create(lgt_root(), "dup", &c), WR_OK);
    assert_int_equal(lg_topic_create(lgt_root(), "dup", &c), WR_ERR_EXISTS);
    assert_int_equal(lg_topic_open(lgt_root(), "missing", NULL, &t), WR_ERR_NOTFOUND);
    assert_non_null(strstr(wr_errmsg(), "not found"));
}

static void test_damaged_topic_meta_is_corrupt(void **state)
{
    lg_config c;
    lg_topic *t;
    char path[4300];
    (void)state;
    lg_config_default(&c);
    assert_int_equal(lg_topic_create(lgt_root(), "meta", &c), WR_OK);
    snprintf(path, sizeof(path), "%s/meta/topic.meta", lgt_root());
    lgt_flip(path, 20);
    assert_int_equal(lg_topic_open(lgt_root(), "meta", NULL, &t), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "topic.meta"));
}

static void test_compacted_topic_needs_keys(void **state)
{
    static const char *const s[] = {"cleanup.policy=compact", NULL};
    lg_topic *t = mk("needkey", s);
    (void)state;
    assert_int_equal(lgt_put(t, 0, NULL, "v", NULL), WR_ERR_INVAL);
    assert_non_null(strstr(wr_errmsg(), "compacted"));
    lg_topic_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read_roll_restart, lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_batches_zstd_headers_partitions, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_read_from_time_and_latest, lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_read_from_time_with_unordered_timestamps, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_segments_roll_by_age_also_across_restarts, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_follow_waits_for_new_data, lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_groups_are_durable_and_pin_retention, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_time, lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_is_busy_readonly_reads, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_config_and_name_errors, lgt_setup, lgt_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_topic_meta_is_corrupt, lgt_setup,
                                        lgt_teardown),
        cmocka_unit_test_setup_teardown(test_compacted_topic_needs_keys, lgt_setup, lgt_teardown),
    };
    return cmocka_run_group_tests_name("lg_log", tests, NULL, NULL);
}

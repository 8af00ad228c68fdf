/* tests/kv/test_kv_ckpt.c -- checkpoints, verify, snapshots kept through compaction, and
 * compaction of tombstone-dense files:
 *  - a checkpoint opens as a store holding exactly the writes before it (and the applied
 *    offset), keeps working after the source compacts its files away, refuses an existing
 *    directory;
 *  - kv_verify passes a clean store and names the file and byte of a flipped bit, a truncated
 *    SST and a damaged MANIFEST;
 *  - a snapshot reads its versions after kv_compact_all; once released, compaction drops them;
 *  - deleting most keys makes background compaction shrink the store without kv_compact_all;
 *  - the table cache keeps at most max_open_files tables open once reads are done;
 *  - an iterator's view does not change while a writer and compactions run. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"

static char dir[64], ckdir[96];
static bool no_mmap; /* open stores with mmap_reads off (tests that shrink a table under them) */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_kv_ckpt.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(ckdir, sizeof(ckdir), "%s.ck", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[256];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, ckdir);
    return system(cmd);
}

static kv_db *open_at(const char *d)
{
    kv_options o;
    kv_db *db;
    kv_options_default(&o);
    o.wal = KV_WAL_NEVER;
    o.memtable_bytes = 64u << 10;
    o.l0_compaction_trigger = 2;
    o.l1_bytes = 256u << 10;
    o.sst_bytes = 64u << 10;
    o.mmap_reads = !no_mmap;
    if (kv_open(d, &o, &db) != WR_OK)
        fail_msg("kv_open %s: %s", d, wr_errmsg());
    return db;
}

static void put_i(kv_db *db, int k, int ver)
{
    char key[32], val[128];
    snprintf(key, sizeof(key), "key-%06d", k);
    snprintf(val, sizeof(val), "v%d-of-%d-................................................", ver,
             k);
    assert_int_equal(kv_put(db, wr_bytes_str(key), wr_bytes_str(val)), WR_OK);
}

static void del_i(kv_db *db, int k)
{
    char key[32];
    snprintf(key, sizeof(key), "key-%06d", k);
    assert_int_equal(kv_delete(db, wr_bytes_str(key)), WR_OK);
}

/* -1: absent, else the version in the value. */
static int get_i(kv_db *db, const kv_snapshot *s, int k)
{
    char key[32];
    wr_buf v = {0};
    int ver = -1;
    wr_status st;
    snprintf(key, sizeof(key), "key-%06d", k);
    st = kv_get(db, s, wr_bytes_str(key), &v);
    if (st == WR_OK) {
        assert_int_equal(wr_buf_append(&v, "", 1), WR_OK); /* sscanf wants a string */
        assert_int_equal(sscanf((const char *)v.ptr, "v%d", &ver), 1);
    } else if (st != WR_ERR_NOTFOUND)
        fail_msg("get %s: %s", key, wr_errmsg());
    wr_buf_fini(&v);
    return ver;
}

static uint64_t total_bytes(kv_db *db)
{
    kv_stats s;
    uint64_t t = 0;
    kv_stats_get(db, &s);
    for (int l = 0; l < 8; l++)
        t += s.level_bytes[l];
    return t;
}

static void test_checkpoint_is_a_consistent_openable_copy(void **state)
{
    kv_db *db = open_at(dir), *ck;
    (void)state;
    for (int i = 0; i < 20000; i++)
        put_i(db, i % 5000, i);
    for (int k = 0; k < 5000; k += 3)
        del_i(db, k);
    assert_int_equal(kv_set_applied(db, 777), WR_OK);
    assert_int_equal(kv_checkpoint(db, ckdir), WR_OK);
    assert_int_equal(kv_checkpoint(db, ckdir), WR_ERR_EXISTS);
    /* The source moves on: new writes, and every file it had is compacted away. */
    for (int k = 0; k < 5000; k++)
        put_i(db, k, 99999);
    assert_int_equal(kv_compact_all(db), WR_OK);
    ck = open_at(ckdir);
    assert_int_equal(kv_applied(ck), 777);
    for (int k = 0; k < 5000; k++) {
        int want = k % 3 == 0 ? -1 : 15000 + k;
        assert_int_equal(get_i(ck, NULL, k), want);
        assert_int_equal(get_i(db, NULL, k), 99999);
    }
    assert_int_equal(kv_verify(ck, NULL, NULL), WR_OK);
    kv_close(ck);
    kv_close(db);
}

typedef struct lines {
    char text[8][512];
    int n;
} lines;

static void collect(void *ctx, const char *line)
{
    lines *l = ctx;
    if (l->n < 8)
        snprintf(l->text[l->n], sizeof(l->text[0]), "%s", line);
    l->n++;
}

/* The path of the first .sst in @d, into @out. */
static void first_sst(const char *d, char *out, size_t cap)
{
    char cmd[256];
    FILE *p;
    snprintf(cmd, sizeof(cmd), "ls %s/*.sst | head -1", d);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, (int)cap, p));
    out[strcspn(out, "\n")] = 0;
    pclose(p);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_verify_names_file_and_byte(void **state)
{
    kv_db *db;
    lines l = {0};
    char sst[512], *base;
    (void)state;
    no_mmap = true; /* the test truncates a table under the open store */
    db = open_at(dir);
    no_mmap = false;
    for (int i = 0; i < 3000; i++)
        put_i(db, i, i);
    assert_int_equal(kv_flush(db), WR_OK);
    assert_int_equal(kv_verify(db, collect, &l), WR_OK);
    assert_int_equal(l.n, 0);

    first_sst(dir, sst, sizeof(sst));
    base = strrchr(sst, '/') + 1;
    flip_byte(sst, 100); /* inside the first data block */
    assert_int_equal(kv_verify(db, collect, &l), WR_ERR_CORRUPT);
    assert_true(l.n >= 1);
    assert_non_null(strstr(l.text[0], base));
    assert_non_null(strstr(l.text[0], "byte"));
    assert_non_null(strstr(wr_errmsg(), "problem"));
    flip_byte(sst, 100);

    l.n = 0;
    assert_int_equal(kv_verify(db, collect, &l), WR_OK);
    {
        struct stat sb;
        assert_int_equal(stat(sst, &sb), 0);
        assert_int_equal(truncate(sst, sb.st_size - 10), 0);
        assert_int_equal(kv_verify(db, collect, &l), WR_ERR_CORRUPT);
        assert_non_null(strstr(l.text[0], base));
        assert_non_null(strstr(l.text[0], "MANIFEST says"));
    }
    kv_close(db);
}

/* A damaged data block read through a mapped table, and through the cache + io_uring path:
 * the read fails with WR_ERR_CORRUPT naming the file and the block's offset, and keys in other
 * blocks still read. */
static void corrupt_read(bool mapped)
{
    kv_db *db;
    char sst[512];
    int bad = 0, good = 0;
    no_mmap = !mapped;
    db = open_at(dir);
    for (int i = 0; i < 3000; i++)
        put_i(db, i, i);
    assert_int_equal(kv_flush(db), WR_OK);
    kv_close(db); /* the reopen below reads the damaged bytes afresh */
    first_sst(dir, sst, sizeof(sst));
    flip_byte(sst, 100);
    db = open_at(dir);
    no_mmap = false;
    for (int k = 0; k < 3000; k++) {
        char key[32];
        wr_buf v = {0};
        wr_status st;
        snprintf(key, sizeof(key), "key-%06d", k);
        st = kv_get(db, NULL, wr_bytes_str(key), &v);
        if (st == WR_ERR_CORRUPT) {
            assert_non_null(strstr(wr_errmsg(), strrchr(sst, '/') + 1));
            assert_non_null(strstr(wr_errmsg(), "offset 0"));
            bad++;
        } else {
            assert_int_equal(st, WR_OK);
            good++;
        }
        wr_buf_fini(&v);
    }
    assert_true(bad > 0 && good > bad);
    kv_close(db);
}

static void test_damaged_block_read_mapped_is_an_error_naming_it(void **state)
{
    (void)state;
    corrupt_read(true);
}

static void test_damaged_block_read_through_the_cache_is_an_error_naming_it(void **state)
{
    (void)state;
    corrupt_read(false);
}

static void test_verify_reports_a_damaged_manifest(void **state)
{
    kv_db *db = open_at(dir);
    lines l = {0};
    char man[512], cmd[256];
    FILE *p;
    (void)state;
    for (int i = 0; i < 3000; i++)
        put_i(db, i, i);
    assert_int_equal(kv_flush(db), WR_OK);
    snprintf(cmd, sizeof(cmd), "ls %s/MANIFEST-* | head -1", dir);
    p = popen(cmd, "r");
    assert_non_null(fgets(man, sizeof(man), p));
    pclose(p);
    man[strcspn(man, "\n")] = 0;
    flip_byte(man, 20); /* inside the first record (the snapshot), with edits after it */
    assert_int_equal(kv_verify(db, collect, &l), WR_ERR_CORRUPT);
    assert_true(l.n >= 1);
    assert_non_null(strstr(l.text[0], "MANIFEST"));
    kv_close(db);
}

static void test_snapshot_survives_compaction_then_versions_go(void **state)
{
    kv_db *db = open_at(dir);
    kv_snapshot *s;
    uint64_t with_snap, without;
    (void)state;
    for (int k = 0; k < 4000; k++)
        put_i(db, k, 1);
    assert_int_equal(kv_snapshot_take(db, &s), WR_OK);
    for (int k = 0; k < 4000; k++) {
        if (k % 2)
            put_i(db, k, 2);
        else
            del_i(db, k);
    }
    assert_int_equal(kv_compact_all(db), WR_OK);
    for (int k = 0; k < 4000; k++) {
        assert_int_equal(get_i(db, s, k), 1);
        assert_int_equal(get_i(db, NULL, k), k % 2 ? 2 : -1);
    }
    with_snap = total_bytes(db);
    kv_snapshot_release(db, s);
    assert_int_equal(kv_compact_all(db), WR_OK);
    without = total_bytes(db);
    for (int k = 0; k < 4000; k++)
        assert_int_equal(get_i(db, NULL, k), k % 2 ? 2 : -1);
    /* Old versions and the tombstones (with what they hid) are gone: about half the keys of
     * one version each, against two versions of every key before. */
    assert_true(without * 3 < with_snap);
    kv_close(db);
}

/* A full compaction of an empty store, and of one whose every key was deleted (the merges
 * drop everything, leaving the deepest level empty for the in-place step). */
static void test_compact_all_of_nothing(void **state)
{
    kv_db *db = open_at(dir);
    kv_stats st;
    (void)state;
    assert_int_equal(kv_compact_all(db), WR_OK);
    for (int k = 0; k < 2000; k++)
        put_i(db, k, 1);
    assert_int_equal(kv_flush(db), WR_OK);
    for (int k = 0; k < 2000; k++)
        del_i(db, k);
    assert_int_equal(kv_compact_all(db), WR_OK);
    assert_int_equal(kv_compact_all(db), WR_OK);
    kv_stats_get(db, &st);
    assert_string_equal(st.bg_error, "");
    assert_int_equal(total_bytes(db), 0);
    for (int k = 0; k < 2000; k += 97)
        assert_int_equal(get_i(db, NULL, k), -1);
    kv_close(db);
}

static void test_tombstone_dense_files_compact_without_being_asked(void **state)
{
    kv_db *db = open_at(dir);
    kv_stats st;
    uint64_t before, after = 0;
    kv_iter *it;
    (void)state;
    for (int k = 0; k < 20000; k++)
        put_i(db, k, 1);
    assert_int_equal(kv_compact_all(db), WR_OK);
    before = total_bytes(db);
    for (int k = 0; k < 19000; k++)
        del_i(db, k);
    assert_int_equal(kv_flush(db), WR_OK);
    /* No level is over its size; only the tombstone density triggers compactions. */
    for (int i = 0; i < 200; i++) {
        usleep(50000);
        after = total_bytes(db);
        if (after * 5 < before)
            break;
    }
    kv_stats_get(db, &st);
    assert_true(after * 5 < before);
    assert_true(st.compactions > 0);
    assert_int_equal(kv_iter_open(db, NULL, &it), WR_OK);
    assert_int_equal(kv_iter_seek_first(it), WR_OK);
    assert_true(kv_iter_valid(it));
    assert_memory_equal(kv_iter_key(it).ptr, "key-019000", 10);
    kv_iter_close(it);
    kv_close(db);
}

/* SST files this process has open (from /proc/self/fd). */
static int open_ssts(void)
{
    char cmd[128], line[64];
    FILE *p;
    int n = 0;
    snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd 2>/dev/null | grep -c '\\.sst$'", (int)getpid());
    p = popen(cmd, "r");
    assert_non_null(p);
    if (fgets(line, sizeof(line), p))
        n = atoi(line);
    pclose(p);
    return n;
}

static void test_table_cache_keeps_open_files_bounded(void **state)
{
    kv_options o;
    kv_db *db;
    kv_stats st;
    unsigned files = 0;
    (void)state;
    kv_options_default(&o);
    o.wal = KV_WAL_NEVER;
    o.memtable_bytes = 64u << 10;
    o.l0_compaction_trigger = 8;
    o.l1_bytes = 256u << 10;
    o.sst_bytes = 16u << 10; /* many small files */
    o.max_open_files = 4;
    assert_int_equal(kv_open(dir, &o, &db), WR_OK);
    for (int i = 0; i < 30000; i++)
        put_i(db, (i * 7919) % 10000, i);
    assert_int_equal(kv_flush(db), WR_OK);
    kv_stats_get(db, &st);
    for (int l = 0; l < 8; l++)
        files += st.files[l];
    assert_true(files > 20); /* far more files than the cache may keep open */
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 10000; k += 7) /* every file gets read */
            assert_true(get_i(db, NULL, k) >= 0);
    /* A compaction holds all its inputs open while it runs (tables in use do not count
     * against the bound); once none runs and gets hold nothing, at most max_open_files
     * stay open. */
    assert_int_equal(kv_compact_all(db), WR_OK);
    for (int k = 0; k < 10000; k += 7)
        assert_true(get_i(db, NULL, k) >= 0);
    assert_true(open_ssts() <= 4);
    kv_close(db);
}

typedef struct writer_arg {
    kv_db *db;
    volatile int stop;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    for (int i = 0; !w->stop; i++) {
        if (i % 4 == 0)
            del_i(w->db, (i * 7) % 3000);
        else
            put_i(w->db, (i * 13) % 3000, 1000000 + i);
    }
    return NULL;
}

static void test_iterator_view_is_fixed_under_writes_and_compaction(void **state)
{
    kv_db *db = open_at(dir);
    writer_arg w = {db, 0};
    pthread_t th;
    kv_iter *it;
    (void)state;
    for (int k = 0; k < 3000; k++)
        put_i(db, k, 5);
    assert_int_equal(kv_iter_open(db, NULL, &it), WR_OK);
    assert_int_equal(pthread_create(&th, NULL, writer, &w), 0);
    for (int round = 0; round < 5; round++) {
        int n = 0;
        assert_int_equal(kv_iter_seek_first(it), WR_OK);
        for (; kv_iter_valid(it); n++) {
            char want[32];
            snprintf(want, sizeof(want), "key-%06d", n);
            assert_true(wr_bytes_eq(kv_iter_key(it), wr_bytes_str(want)));
            assert_memory_equal(kv_iter_value(it).ptr, "v5-", 3);
            assert_int_equal(kv_iter_next(it), WR_OK);
        }
        assert_int_equal(n, 3000);
        if (round == 2)
            assert_int_equal(kv_compact_all(db), WR_OK);
    }
    w.stop = 1;
    pthread_join(th, NULL);
    kv_iter_close(it);
    kv_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoint_is_a_consistent_openable_copy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_verify_names_file_and_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_reports_a_damaged_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_block_read_mapped_is_an_error_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_damaged_block_read_through_the_cache_is_an_error_naming_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_survives_compaction_then_versions_go, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_compact_all_of_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_dense_files_compact_without_being_asked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_cache_keeps_open_files_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_view_is_fixed_under_writes_and_compaction,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

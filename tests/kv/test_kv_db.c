/* tests/kv/test_kv_db.c -- the store end to end (first slice: writes, point reads, flush,
 * recovery): a random workload checked against a reference map across flushes and reopens;
 * WAL replay after kill -9 loses no acknowledged write (fsync=always); the applied offset
 * persists with a flush (engine mode); a second open is refused; limits. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_int.h"

#define NKEYS 2000

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_kv_db.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static kv_db *open_db(kv_wal_mode wal, size_t memtable)
{
    kv_options o;
    kv_db *db;
    kv_options_default(&o);
    o.wal = wal;
    o.memtable_bytes = memtable;
    o.l1_bytes = 256u << 10; /* small levels: compactions reach level 2 and beyond */
    o.sst_bytes = 64u << 10; /* and cut their output into several files */
    if (kv_open(dir, &o, &db) != WR_OK)
        fail_msg("kv_open: %s", wr_errmsg());
    return db;
}

typedef struct model {
    int ver[NKEYS]; /* -1 absent, else the version of the value */
} model;

static void key_of(int k, char *buf)
{
    snprintf(buf, 32, "key-%05d", k);
}

static void check_all(kv_db *db, const model *m)
{
    wr_buf v = {0};
    char key[32], want[96];
    for (int k = 0; k < NKEYS; k++) {
        wr_status st;
        key_of(k, key);
        st = kv_get(db, NULL, wr_bytes_str(key), &v);
        if (m->ver[k] < 0) {
            if (st != WR_ERR_NOTFOUND)
                fail_msg("key %s: want absent, got %s", key, wr_status_str(st));
        } else {
            if (st != WR_OK)
                fail_msg("key %s: want v%d, got %s (%s)", key, m->ver[k], wr_status_str(st),
                         wr_errmsg());
            snprintf(want, sizeof(want), "value-%d-of-%s-padding-padding", m->ver[k], key);
            assert_int_equal(v.len, strlen(want));
            assert_memory_equal(v.ptr, want, v.len);
        }
    }
    wr_buf_fini(&v);
}

static void random_ops(kv_db *db, model *m, int n, unsigned seed)
{
    kv_batch *b;
    char key[32], val[96];
    srand(seed);
    assert_int_equal(kv_batch_create(&b), WR_OK);
    for (int i = 0; i < n; i++) {
        int k = rand() % NKEYS, op = rand() % 10;
        key_of(k, key);
        if (op < 6) {
            int ver = m->ver[k] + 1 + (m->ver[k] < 0);
            snprintf(val, sizeof(val), "value-%d-of-%s-padding-padding", ver, key);
            assert_int_equal(kv_put(db, wr_bytes_str(key), wr_bytes_str(val)), WR_OK);
            m->ver[k] = ver;
        } else if (op < 8) {
            assert_int_equal(kv_delete(db, wr_bytes_str(key)), WR_OK);
            m->ver[k] = m->ver[k] < 0 ? -1 : -1;
        } else { /* a batch of three: all or nothing */
            kv_batch_clear(b);
            for (int j = 0; j < 3; j++) {
                int kk = (k + j * 7) % NKEYS, ver;
                key_of(kk, key);
                ver = m->ver[kk] < 0 ? 1 : m->ver[kk] + 1;
                snprintf(val, sizeof(val), "value-%d-of-%s-padding-padding", ver, key);
                assert_int_equal(kv_batch_put(b, wr_bytes_str(key), wr_bytes_str(val)), WR_OK);
                m->ver[kk] = ver;
            }
            assert_int_equal(kv_write(db, b), WR_OK);
        }
    }
    kv_batch_destroy(b);
}

static unsigned count_sst(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned n = 0;
    while (d && (de = readdir(d)) != NULL)
        n += strstr(de->d_name, ".sst") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void test_reads_match_a_model_across_flushes_and_reopens(void **state)
{
    model m;
    kv_db *db;
    kv_stats st;
    (void)state;
    for (int k = 0; k < NKEYS; k++)
        m.ver[k] = -1;
    db = open_db(KV_WAL_ALWAYS, 64u << 10); /* tiny memtables: many flushes */
    random_ops(db, &m, 30000, 1);
    check_all(db, &m);
    assert_int_equal(kv_flush(db), WR_OK);
    kv_stats_get(db, &st);
    assert_true(st.flushes >= 10);
    assert_true(st.compactions >= 2);
    assert_true(st.files[1] + st.files[2] >= 2); /* data moved down the levels */
    assert_true(st.files[0] < 8);                /* and level 0 stays bounded */
    assert_string_equal(st.bg_error, "");
    check_all(db, &m);
    {
        /* Compacted-away files are gone once no version needs them (the background thread
         * may still be compacting: wait for it to settle, up to a minute). */
        unsigned live = 0;
        for (int tries = 0; tries < 600; tries++) {
            live = 0;
            kv_stats_get(db, &st);
            for (int l = 0; l < 8; l++)
                live += st.files[l];
            if (count_sst() == live)
                break;
            wr_sleep_ns(100000000);
        }
        assert_int_equal(count_sst(), live);
    }
    kv_close(db); /* the last memtable lives only in the WAL */
    db = open_db(KV_WAL_ALWAYS, 64u << 10);
    check_all(db, &m);
    random_ops(db, &m, 3000, 2);
    assert_int_equal(kv_flush(db), WR_OK);
    kv_close(db);
    db = open_db(KV_WAL_NEVER, 1u << 20);
    check_all(db, &m);
    kv_close(db);
}

/* A writer killed with SIGKILL: every put it acknowledged is there after a reopen. With
 * KV_WAL_NEVER this holds for a process crash (not a machine crash): the records sit in the
 * page cache, written through the WAL's mapping, and the reserved zero tail the kill leaves
 * must read as the end of the WAL. */
static void kill9_run(kv_wal_mode mode)
{
    int pfd[2];
    pid_t pid;
    model m;
    char line[64];
    FILE *in;
    kv_db *db;
    for (int k = 0; k < NKEYS; k++)
        m.ver[k] = -1;
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    if (pid == 0) { /* the writer: report each acknowledged put, then be killed */
        kv_db *cdb = open_db(mode, 64u << 10);
        char key[32], val[96];
        FILE *out = fdopen(pfd[1], "w");
        close(pfd[0]);
        for (int i = 0;; i++) {
            int k = i % NKEYS, ver = i / NKEYS + 1;
            key_of(k, key);
            snprintf(val, sizeof(val), "value-%d-of-%s-padding-padding", ver, key);
            if (kv_put(cdb, wr_bytes_str(key), wr_bytes_str(val)) != WR_OK)
                _exit(3);
            fprintf(out, "%d %d\n", k, ver);
            fflush(out);
        }
    }
    close(pfd[1]);
    in = fdopen(pfd[0], "r");
    for (int n = 0; n < 3000 && fgets(line, sizeof(line), in); n++) {
        int k, ver;
        assert_int_equal(sscanf(line, "%d %d", &k, &ver), 2);
        m.ver[k] = ver;
    }
    kill(pid, SIGKILL);
    while (fgets(line, sizeof(line), in)) { /* acknowledged before the kill landed */
        int k, ver;
        if (sscanf(line, "%d %d", &k, &ver) == 2)
            m.ver[k] = ver;
    }
    fclose(in);
    waitpid(pid, NULL, 0);
    db = open_db(mode, 64u << 10);
    {
        /* Every acknowledged write is there; a write not yet reported may be there too (it
         * was durable but the report was lost), so a key may be one version ahead. */
        wr_buf v = {0};
        char key[32], want[96], want2[96];
        for (int k = 0; k < NKEYS; k++) {
            if (m.ver[k] < 0)
                continue;
            key_of(k, key);
            assert_int_equal(kv_get(db, NULL, wr_bytes_str(key), &v), WR_OK);
            snprintf(want, sizeof(want), "value-%d-of-%s-padding-padding", m.ver[k], key);
            snprintf(want2, sizeof(want2), "value-%d-of-%s-padding-padding", m.ver[k] + 1, key);
            assert_true((v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0) ||
                        (v.len == strlen(want2) && memcmp(v.ptr, want2, v.len) == 0));
        }
        wr_buf_fini(&v);
    }
    kv_close(db);
}

static void test_kill9_loses_no_acknowledged_write(void **state)
{
    (void)state;
    kill9_run(KV_WAL_ALWAYS);
}

static void test_kill9_with_wal_never_loses_nothing_the_page_cache_holds(void **state)
{
    (void)state;
    kill9_run(KV_WAL_NEVER);
}

static void test_applied_offset_persists_with_a_flush(void **state)
{
    kv_db *db;
    (void)state;
    db = open_db(KV_WAL_OFF, 1u << 20);
    assert_int_equal(kv_applied(db), 0);
    assert_int_equal(kv_put(db, wr_bytes_str("a"), wr_bytes_str("1")), WR_OK);
    assert_int_equal(kv_set_applied(db, 41), WR_OK);
    assert_int_equal(kv_flush(db), WR_OK);
    assert_int_equal(kv_put(db, wr_bytes_str("b"), wr_bytes_str("2")), WR_OK);
    assert_int_equal(kv_set_applied(db, 42), WR_OK);
    kv_close(db); /* no WAL: "b" and offset 42 are the caller's to replay */
    db = open_db(KV_WAL_OFF, 1u << 20);
    assert_int_equal(kv_applied(db), 41);
    {
        wr_buf v = {0};
        assert_int_equal(kv_get(db, NULL, wr_bytes_str("a"), &v), WR_OK);
        assert_int_equal(kv_get(db, NULL, wr_bytes_str("b"), &v), WR_ERR_NOTFOUND);
        wr_buf_fini(&v);
    }
    kv_close(db);
}

static void test_second_open_is_busy_and_limits(void **state)
{
    kv_db *db = open_db(KV_WAL_OFF, 1u << 20), *db2;
    kv_options o;
    static uint8_t big[KV_KEY_MAX + 1];
    (void)state;
    kv_options_default(&o);
    assert_int_equal(kv_open(dir, &o, &db2), WR_ERR_BUSY);
    assert_non_null(strstr(wr_errmsg(), "another process"));
    assert_int_equal(kv_put(db, wr_bytes_of(big, sizeof(big)), wr_bytes_str("v")), WR_ERR_TOOBIG);
    kv_close(db);
    o.create_if_missing = false;
    assert_int_equal(kv_open("/tmp/definitely-not-a-weir-store", &o, &db2), WR_ERR_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_match_a_model_across_flushes_and_reopens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_no_acknowledged_write, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_kill9_with_wal_never_loses_nothing_the_page_cache_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applied_offset_persists_with_a_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open_is_busy_and_limits, setup, teardown),
    };
    return cmocka_run_group_tests_name("kv_db", tests, NULL, NULL);
}

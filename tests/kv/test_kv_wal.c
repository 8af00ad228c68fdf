/* tests/kv/test_kv_wal.c -- write batches (encoding, all-or-nothing, limits) and the KV
 * write-ahead log: replay returns every record; a torn tail at every byte of the last record
 * ends the replay quietly; damage that valid records follow is an error naming the offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_int.h"

typedef struct seen {
    int n;
    uint64_t seq[16];
    kv_type t[16];
    char key[16][32], val[16][32];
} seen;

static wr_status collect(void *ctx, uint64_t seq, kv_type t, wr_bytes key, wr_bytes val)
{
    seen *s = ctx;
    if (s->n >= 16)
        return WR_ERR_INTERNAL;
    s->seq[s->n] = seq;
    s->t[s->n] = t;
    snprintf(s->key[s->n], 32, "%.*s", (int)key.len, (const char *)key.ptr);
    snprintf(s->val[s->n], 32, "%.*s", (int)val.len, (const char *)val.ptr);
    s->n++;
    return WR_OK;
}

static void test_batch_roundtrip_and_limits(void **state)
{
    kv_batch *b;
    seen s = {0};
    static uint8_t big[KV_KEY_MAX + 1];
    (void)state;
    assert_int_equal(kv_batch_create(&b), WR_OK);
    assert_int_equal(kv_batch_put(b, wr_bytes_str("a"), wr_bytes_str("1")), WR_OK);
    assert_int_equal(kv_batch_delete(b, wr_bytes_str("b")), WR_OK);
    assert_int_equal(kv_batch_put(b, wr_bytes_str(""), wr_bytes_str("")), WR_OK);
    assert_int_equal(kv_batch_put(b, wr_bytes_of(big, sizeof(big)), wr_bytes_str("x")),
                     WR_ERR_TOOBIG);
    assert_int_equal(kv_batch_count(b), 3);
    kv_batch_set_seq(b, 100);
    assert_int_equal(kv_batch_iterate(kv_batch_rep(b), collect, &s), WR_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.seq[0], 100);
    assert_int_equal(s.seq[2], 102);
    assert_int_equal(s.t[1], KV_TYPE_DEL);
    assert_string_equal(s.key[0], "a");
    assert_string_equal(s.val[0], "1");
    assert_string_equal(s.key[1], "b");
    /* A failed allocation leaves the batch as it was. */
    wr_alloc_fail_at(1, true);
    assert_int_equal(kv_batch_put(b, wr_bytes_of(big, 4000), wr_bytes_of(big, 9000)), WR_ERR_NOMEM);
    wr_alloc_fail_at(0, false);
    assert_int_equal(kv_batch_count(b), 3);
    s.n = 0;
    assert_int_equal(kv_batch_iterate(kv_batch_rep(b), collect, &s), WR_OK);
    assert_int_equal(s.n, 3);
    /* Every truncation of the encoding is refused. */
    for (size_t n = 0; n < kv_batch_rep(b).len; n++) {
        s.n = 0;
        assert_int_equal(kv_batch_iterate(wr_bytes_of(kv_batch_rep(b).ptr, n), collect, &s),
                         WR_ERR_CORRUPT);
    }
    kv_batch_destroy(b);
}

typedef struct recs {
    int n;
    size_t len[64];
} recs;

static wr_status count_rec(void *ctx, wr_bytes p)
{
    recs *r = ctx;
    r->len[r->n++] = p.len;
    return WR_OK;
}

static void write_wal(const char *dir, int n, long *ends)
{
    kv_wal *w;
    uint8_t payload[300];
    assert_int_equal(kv_wal_create(dir, 7, &w), WR_OK);
    for (int i = 0; i < n; i++) {
        memset(payload, 'a' + i, sizeof(payload));
        assert_int_equal(kv_wal_append(w, wr_bytes_of(payload, 10 + (size_t)i * 7), i % 2), WR_OK);
        ends[i] = (long)kv_wal_bytes(w);
    }
    kv_wal_close(w);
}

static void test_wal_replay_and_torn_tail_at_every_byte(void **state)
{
    char dir[] = "/tmp/test_kv_wal.XXXXXX", path[128], cmd[200];
    long ends[8];
    recs r;
    uint64_t torn;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/000007.wal", dir);
    write_wal(dir, 8, ends);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kv_wal_replay(path, count_rec, &r, &torn), WR_OK);
    assert_int_equal(r.n, 8);
    assert_int_equal(torn, UINT64_MAX);
    for (int i = 0; i < 8; i++)
        assert_int_equal(r.len[i], 10 + (size_t)i * 7);
    for (long cut = ends[6]; cut < ends[7]; cut++) {
        assert_int_equal(truncate(path, cut), 0);
        memset(&r, 0, sizeof(r));
        assert_int_equal(kv_wal_replay(path, count_rec, &r, &torn), WR_OK);
        assert_int_equal(r.n, 7);
        assert_int_equal(torn, cut == ends[6] ? UINT64_MAX : (uint64_t)ends[6]);
        unlink(path);
        write_wal(dir, 8, ends);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_wal_damage_before_valid_records_is_corrupt(void **state)
{
    char dir[] = "/tmp/test_kv_wal.XXXXXX", path[128], cmd[200];
    long ends[8];
    recs r = {0};
    uint64_t torn;
    FILE *f;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/000007.wal", dir);
    write_wal(dir, 8, ends);
    f = fopen(path, "r+b");
    fseek(f, ends[2] + 20, SEEK_SET);
    fputc('Z', f);
    fclose(f);
    assert_int_equal(kv_wal_replay(path, count_rec, &r, &torn), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "000007.wal"));
    {
        char want[64];
        snprintf(want, sizeof(want), "byte %ld", ends[2]);
        assert_non_null(strstr(wr_errmsg(), want));
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_roundtrip_and_limits),
        cmocka_unit_test(test_wal_replay_and_torn_tail_at_every_byte),
        cmocka_unit_test(test_wal_damage_before_valid_records_is_corrupt),
    };
    return cmocka_run_group_tests_name("kv_wal", tests, NULL, NULL);
}

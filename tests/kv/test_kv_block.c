/* tests/kv/test_kv_block.c -- data blocks: round trips with prefix compression across restart
 * boundaries, seeks to every key and between keys, next/prev in both directions; then every
 * truncation and every bit flip yields WR_ERR_CORRUPT or a clean result, never a crash (ASan
 * sees every out-of-bounds read: damaged blocks live in buffers of exactly their size). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kv_sst.h"

#define MAXK 64

typedef struct ent {
    uint8_t key[MAXK];
    size_t klen;
    char val[32];
} ent;

/* Sorted entries: user keys "user/<i/3 zero-padded>" with up to 3 versions, so neighbours share
 * long prefixes; every 7th entry a tombstone with an empty value. */
static ent *make_ents(size_t n)
{
    ent *e = calloc(n, sizeof(*e));
    char uk[32];
    assert_non_null(e);
    for (size_t i = 0; i < n; i++) {
        int ul = snprintf(uk, sizeof uk, "user/%06zu", (i / 3) * 2);
        kv_type t = i % 7 == 3 ? KV_TYPE_DEL : KV_TYPE_PUT;
        e[i].klen = kv_ikey_put(e[i].key, wr_bytes_of(uk, (size_t)ul), 1000 - i % 3, t);
        if (t == KV_TYPE_PUT)
            snprintf(e[i].val, sizeof e[i].val, "v%zu", i * 31);
    }
    return e;
}

static wr_bytes ekey(const ent *e)
{
    return wr_bytes_of(e->key, e->klen);
}

static wr_bytes eval(const ent *e)
{
    return wr_bytes_str(e->val);
}

/* Build a block of @n entries; returns a malloc'ed copy of exactly its size. */
static uint8_t *build(const ent *e, size_t n, uint32_t interval, size_t *len)
{
    kv_block_builder b;
    wr_bytes out;
    uint8_t *copy;

    kv_block_builder_init(&b, interval);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kv_block_builder_add(&b, ekey(&e[i]), eval(&e[i])), WR_OK);
    assert_int_equal(kv_block_builder_size(&b), b.buf.len + 4 * b.rst_cnt + 4);
    assert_int_equal(kv_block_builder_finish(&b, &out), WR_OK);
    copy = malloc(out.len ? out.len : 1);
    assert_non_null(copy);
    memcpy(copy, out.ptr, out.len);
    *len = out.len;
    kv_block_builder_fini(&b);
    return copy;
}

/* The seek target (user key @uk, snapshot @seq) in @buf. */
static wr_bytes tkey(uint8_t *buf, const char *uk, uint64_t seq)
{
    return wr_bytes_of(buf, kv_ikey_put(buf, wr_bytes_str(uk), seq, KV_TYPE_SEEK));
}

static void check_at(const kv_block_iter *it, const ent *e)
{
    assert_true(it->valid);
    assert_true(wr_bytes_eq(kv_block_iter_key(it), ekey(e)));
    assert_true(wr_bytes_eq(it->val, eval(e)));
}

static void roundtrip(size_t n, uint32_t interval)
{
    ent *e = make_ents(n);
    size_t len, raw = 0;
    uint8_t *p = build(e, n, interval, &len);
    kv_block blk;
    kv_block_iter it;
    uint8_t tk[MAXK];
    char uk[32];

    for (size_t i = 0; i < n; i++)
        raw += e[i].klen + strlen(e[i].val);
    if (n > 32 && interval > 1)
        assert_true(len < raw); /* prefix compression pays for the varints and restarts */
    assert_int_equal(kv_block_parse(p, len, &blk), WR_OK);
    assert_int_equal(blk.rst_cnt, (n + interval - 1) / interval);
    kv_block_iter_init(&it, &blk);

    /* forwards and backwards */
    assert_int_equal(kv_block_iter_first(&it), WR_OK);
    for (size_t i = 0; i < n; i++) {
        check_at(&it, &e[i]);
        assert_int_equal(kv_block_iter_next(&it), i + 1 < n ? WR_OK : WR_EOF);
    }
    assert_false(it.valid);
    assert_int_equal(kv_block_iter_next(&it), WR_EOF);
    assert_int_equal(kv_block_iter_last(&it), WR_OK);
    for (size_t i = n; i-- > 0;) {
        check_at(&it, &e[i]);
        assert_int_equal(kv_block_iter_prev(&it), i > 0 ? WR_OK : WR_EOF);
    }
    assert_int_equal(kv_block_iter_prev(&it), WR_EOF);

    /* seek to every key, then step both ways from there */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kv_block_iter_seek(&it, ekey(&e[i])), WR_OK);
        check_at(&it, &e[i]);
        if (i > 0) {
            assert_int_equal(kv_block_iter_prev(&it), WR_OK);
            check_at(&it, &e[i - 1]);
            assert_int_equal(kv_block_iter_next(&it), WR_OK);
            check_at(&it, &e[i]);
        }
        assert_int_equal(kv_block_iter_next(&it), i + 1 < n ? WR_OK : WR_EOF);
        if (i + 1 < n)
            check_at(&it, &e[i + 1]);
    }
    /* seek between keys: odd user numbers sit between the even ones; a snapshot seq below a
     * user key's versions skips to the next user key; a seq between versions finds the older */
    for (size_t u = 0; u <= (n - 1) / 3 + 1; u++) {
        size_t want = (u + 1) * 3;
        snprintf(uk, sizeof uk, "user/%06zu", u * 2 + 1);
        assert_int_equal(kv_block_iter_seek(&it, tkey(tk, uk, KV_SEQ_MAX)),
                         want < n ? WR_OK : WR_EOF);
        if (want < n)
            check_at(&it, &e[want]);
        snprintf(uk, sizeof uk, "user/%06zu", u * 2);
        want = u * 3 + 3;
        assert_int_equal(kv_block_iter_seek(&it, tkey(tk, uk, 5)), want < n ? WR_OK : WR_EOF);
        if (want < n)
            check_at(&it, &e[want]);
        want = u * 3 + 2; /* versions 1000, 999, 998: seq 998 finds the third */
        assert_int_equal(kv_block_iter_seek(&it, tkey(tk, uk, 998)), want < n ? WR_OK : WR_EOF);
        if (want < n)
            check_at(&it, &e[want]);
    }
    /* before the first key */
    assert_int_equal(kv_block_iter_seek(&it, tkey(tk, "a", 1)), WR_OK);
    check_at(&it, &e[0]);
    kv_block_iter_fini(&it);
    free(p);
    free(e);
}

static void test_roundtrip_across_restart_boundaries(void **state)
{
    (void)state;
    roundtrip(1, 16);
    roundtrip(2, 16);
    roundtrip(16, 16);
    roundtrip(17, 16);
    roundtrip(200, 16);
    roundtrip(200, 1);
    roundtrip(200, 3);
    roundtrip(50, 1000);
}

static void test_empty_block_is_eof(void **state)
{
    size_t len;
    uint8_t *p = build(NULL, 0, 16, &len);
    kv_block blk;
    kv_block_iter it;
    uint8_t tk[16];
    (void)state;

    assert_int_equal(len, 4);
    assert_int_equal(kv_block_parse(p, len, &blk), WR_OK);
    kv_block_iter_init(&it, &blk);
    assert_int_equal(kv_block_iter_first(&it), WR_EOF);
    assert_int_equal(kv_block_iter_last(&it), WR_EOF);
    assert_int_equal(kv_block_iter_seek(&it, tkey(tk, "x", 1)), WR_EOF);
    kv_block_iter_fini(&it);
    free(p);
}

static int ok_status(wr_status st)
{
    return st == WR_OK || st == WR_EOF || st == WR_ERR_CORRUPT;
}

/* Run every operation over a possibly damaged block: statuses must be OK/EOF/CORRUPT, scans
 * must end, and a clean result keeps internal-key sized keys. */
static void exercise(const uint8_t *p, size_t len, const ent *e, size_t n)
{
    kv_block blk;
    kv_block_iter it;
    wr_status st;
    unsigned steps = 0;

    st = kv_block_parse(p, len, &blk);
    assert_true(st == WR_OK || st == WR_ERR_CORRUPT);
    if (st != WR_OK)
        return;
    kv_block_iter_init(&it, &blk);
    for (st = kv_block_iter_first(&it); st == WR_OK; st = kv_block_iter_next(&it)) {
        assert_true(kv_block_iter_key(&it).len >= KV_TRAILER);
        assert_true(++steps < 100000);
    }
    assert_true(ok_status(st));
    for (st = kv_block_iter_last(&it); st == WR_OK; st = kv_block_iter_prev(&it))
        assert_true(++steps < 200000);
    assert_true(ok_status(st));
    for (size_t i = 0; i < n; i += 5) {
        st = kv_block_iter_seek(&it, ekey(&e[i]));
        assert_true(ok_status(st));
        if (st == WR_OK) {
            assert_true(ok_status(kv_block_iter_prev(&it)));
            assert_true(ok_status(kv_block_iter_next(&it)));
        }
    }
    kv_block_iter_fini(&it);
}

static void test_every_truncation_is_corrupt_or_clean(void **state)
{
    const size_t n = 60;
    ent *e = make_ents(n);
    size_t len;
    uint8_t *p = build(e, n, 4, &len);
    (void)state;

    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *q = malloc(cut ? cut : 1);
        kv_block blk;
        assert_non_null(q);
        memcpy(q, p, cut);
        if (cut < 4)
            assert_int_equal(kv_block_parse(q, cut, &blk), WR_ERR_CORRUPT);
        exercise(q, cut, e, n);
        free(q);
    }
    free(p);
    free(e);
}

static void test_every_bit_flip_is_corrupt_or_clean(void **state)
{
    const size_t n = 40;
    ent *e = make_ents(n);
    size_t len;
    uint8_t *p = build(e, n, 4, &len);
    uint8_t *q = malloc(len);
    (void)state;

    assert_non_null(q);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(q, p, len);
            q[i] ^= (uint8_t)(1u << bit);
            exercise(q, len, e, n);
        }
    }
    /* a restart pointing into the middle of an entry, restarts out of order, count too big */
    memcpy(q, p, len);
    wr_put32(q + len - 4, 0xffffffffu);
    exercise(q, len, e, n);
    memcpy(q, p, len);
    wr_put32(q + len - 8, wr_get32(q + len - 12));
    exercise(q, len, e, n);
    free(q);
    free(p);
    free(e);
}

static void test_key_shorter_than_trailer_is_corrupt(void **state)
{
    /* hand-made: one entry with a 3-byte key, then restart array [0], count 1 */
    uint8_t blk_bytes[] = {0, 3, 1, 'a', 'b', 'c', 'v', 0, 0, 0, 0, 1, 0, 0, 0};
    kv_block blk;
    kv_block_iter it;
    (void)state;

    assert_int_equal(kv_block_parse(blk_bytes, sizeof blk_bytes, &blk), WR_OK);
    kv_block_iter_init(&it, &blk);
    assert_int_equal(kv_block_iter_first(&it), WR_ERR_CORRUPT);
    assert_false(it.valid);
    kv_block_iter_fini(&it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_across_restart_boundaries),
        cmocka_unit_test(test_empty_block_is_eof),
        cmocka_unit_test(test_every_truncation_is_corrupt_or_clean),
        cmocka_unit_test(test_every_bit_flip_is_corrupt_or_clean),
        cmocka_unit_test(test_key_shorter_than_trailer_is_corrupt),
    };
    wr_log_set_level(WR_LOG_ERROR); /* damaged input logs a WARN per WR_CORRUPT() */
    return cmocka_run_group_tests_name("kv_block", tests, NULL, NULL);
}

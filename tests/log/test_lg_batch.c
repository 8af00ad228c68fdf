/* tests/log/test_lg_batch.c -- the record batch format: round trips (plain, zstd, headers,
 * tombstones, no key), every truncation is EOF, every bit flip is corrupt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lg_int.h"

static void encode3(wr_buf *out, lg_compression comp, uint64_t base)
{
    static const lg_header hdrs[2] = {{{(const uint8_t *)"trace", 5}, {(const uint8_t *)"t1", 2}},
                                      {{(const uint8_t *)"nul", 3}, {NULL, 0}}};
    lg_rec_in r[3] = {0};
    lg_batch_in b = {0};
    uint64_t hash;
    r[0].key = wr_bytes_str("k0");
    r[0].val = wr_bytes_str("value zero value zero value zero value zero");
    r[0].ts_ms = 1000;
    r[1].key = wr_bytes_str("k1");
    r[1].tombstone = true;
    r[1].ts_ms = 999; /* older than the first: negative delta */
    r[1].hdrs = hdrs;
    r[1].hdr_cnt = 2;
    r[2].val = wr_bytes_str("no key here no key here no key here");
    r[2].ts_ms = 2000;
    b.recs = r;
    b.rec_cnt = 3;
    b.producer_id = 42;
    b.producer_epoch = 3;
    b.base_seq = 7;
    b.compression = comp;
    assert_int_equal(lg_batch_encode(&b, 5, 1 << 20, out, &hash), WR_OK);
    lg_batch_seal(out->ptr, base, hash);
}

static void check3(const uint8_t *p, uint64_t base)
{
    wr_buf scratch = {0};
    lg_rec_iter it;
    lg_record r;
    lg_header h;
    size_t pos = 0;

    assert_int_equal(lg_rec_iter_init(&it, p, &scratch), WR_OK);
    assert_int_equal(it.h.count, 3);
    assert_int_equal(it.h.producer_id, 42);
    assert_int_equal(it.h.producer_epoch, 3);
    assert_int_equal(it.h.base_seq, 7);
    assert_int_equal(it.h.first_ts, 1000);
    assert_int_equal(it.h.max_ts, 2000);
    assert_int_equal(lg_rec_iter_next(&it, &r), WR_OK);
    assert_int_equal(r.offset, base);
    assert_int_equal(r.ts_ms, 1000);
    assert_true(wr_bytes_eq(r.key, wr_bytes_str("k0")));
    assert_true(wr_bytes_eq(r.val, wr_bytes_str("value zero value zero value zero value zero")));
    assert_false(r.tombstone);
    assert_int_equal(r.hdr_cnt, 0);
    assert_int_equal(lg_rec_iter_next(&it, &r), WR_OK);
    assert_int_equal(r.offset, base + 1);
    assert_int_equal(r.ts_ms, 999);
    assert_true(r.tombstone);
    assert_null(r.val.ptr);
    assert_int_equal(r.hdr_cnt, 2);
    assert_int_equal(lg_header_next(r.hdrs, &pos, &h), WR_OK);
    assert_true(wr_bytes_eq(h.key, wr_bytes_str("trace")));
    assert_true(wr_bytes_eq(h.val, wr_bytes_str("t1")));
    assert_int_equal(lg_header_next(r.hdrs, &pos, &h), WR_OK);
    assert_true(wr_bytes_eq(h.key, wr_bytes_str("nul")));
    assert_null(h.val.ptr);
    assert_int_equal(lg_header_next(r.hdrs, &pos, &h), WR_EOF);
    assert_int_equal(lg_rec_iter_next(&it, &r), WR_OK);
    assert_null(r.key.ptr);
    assert_int_equal(r.offset, base + 2);
    assert_int_equal(lg_rec_iter_next(&it, &r), WR_EOF);
    wr_buf_fini(&scratch);
}

static void test_roundtrip_plain_and_zstd(void **state)
{
    wr_buf b = {0};
    (void)state;
    encode3(&b, LG_COMP_NONE, 100);
    check3(b.ptr, 100);
    encode3(&b, LG_COMP_ZSTD, 1ull << 40);
    check3(b.ptr, 1ull << 40);
    wr_buf_fini(&b);
}

static void test_every_truncation_is_eof(void **state)
{
    wr_buf b = {0};
    lg_bhdr h;
    (void)state;
    encode3(&b, LG_COMP_NONE, 5);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(lg_batch_check(b.ptr, n, &h), WR_EOF);
    assert_int_equal(lg_batch_check(b.ptr, b.len, &h), WR_OK);
    wr_buf_fini(&b);
}

static void test_every_bit_flip_is_corrupt(void **state)
{
    wr_buf b = {0};
    lg_bhdr h;
    (void)state;
    for (int comp = 0; comp < 2; comp++) {
        encode3(&b, comp ? LG_COMP_ZSTD : LG_COMP_NONE, 9);
        for (size_t i = 0; i < b.len; i++) {
            for (int bit = 0; bit < 8; bit++) {
                wr_status st;
                b.ptr[i] ^= (uint8_t)(1u << bit);
                st = lg_batch_check(b.ptr, b.len, &h);
                /* A flipped length may claim more bytes than exist: that reads as EOF (torn),
                 * which recovery then judges by what follows. Anything else is corrupt. */
                if (i >= 4 && i < 8 && st == WR_EOF)
                    ;
                else
                    assert_int_equal(st, WR_ERR_CORRUPT);
                b.ptr[i] ^= (uint8_t)(1u << bit);
            }
        }
    }
    wr_buf_fini(&b);
}

static void test_oversized_record_is_toobig(void **state)
{
    wr_buf b = {0};
    uint64_t hash;
    lg_rec_in r = {0};
    lg_batch_in bi = {0};
    static uint8_t big[2048];
    (void)state;
    r.key = wr_bytes_str("k");
    r.val = wr_bytes_of(big, sizeof(big));
    bi.recs = &r;
    bi.rec_cnt = 1;
    bi.producer_id = LG_NO_PRODUCER;
    assert_int_equal(lg_batch_encode(&bi, 1, 1024, &b, &hash), WR_ERR_TOOBIG);
    assert_non_null(strstr(wr_errmsg(), "max.record.bytes"));
    bi.rec_cnt = 0;
    assert_int_equal(lg_batch_encode(&bi, 1, 1024, &b, &hash), WR_ERR_INVAL);
    wr_buf_fini(&b);
}

static void test_malformed_records_are_corrupt(void **state)
{
    wr_buf b = {0}, scratch = {0};
    lg_rec_iter it;
    lg_record r;
    wr_status st = WR_OK;
    (void)state;
    encode3(&b, LG_COMP_NONE, 0);
    /* Overwrite the first record's length varint with a huge value, then re-checksum: the
     * iterator must refuse it without reading past the batch. */
    b.ptr[LG_BATCH_HDR] = 0x7f;
    lg_batch_seal(b.ptr, 0, wr_xxh3(b.ptr + 24, b.len - 24));
    assert_int_equal(lg_rec_iter_init(&it, b.ptr, &scratch), WR_OK);
    for (int i = 0; i < 4 && st == WR_OK; i++)
        st = lg_rec_iter_next(&it, &r);
    assert_int_equal(st, WR_ERR_CORRUPT);
    wr_buf_fini(&b);
    wr_buf_fini(&scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_plain_and_zstd),
        cmocka_unit_test(test_every_truncation_is_eof),
        cmocka_unit_test(test_every_bit_flip_is_corrupt),
        cmocka_unit_test(test_oversized_record_is_toobig),
        cmocka_unit_test(test_malformed_records_are_corrupt),
    };
    return cmocka_run_group_tests_name("lg_batch", tests, NULL, NULL);
}

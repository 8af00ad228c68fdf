/* tests/common/test_wr_varint.c -- LEB128 and zigzag: boundaries, truncation, over-long */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wr.h"

static void roundtrip_u(uint64_t v, size_t want_len)
{
    uint8_t buf[WR_VARINT_MAX + 2];
    uint64_t got = ~v;
    size_t n = wr_put_uvarint(buf, v);

    assert_int_equal(n, want_len);
    assert_int_equal(wr_uvarint_len(v), want_len);
    assert_int_equal(wr_get_uvarint(buf, buf + n, &got), n);
    assert_true(got == v);
    /* every proper prefix is truncated input */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(wr_get_uvarint(buf, buf + k, &got), 0);
}

static void test_uvarint_round_trip_at_boundaries(void **state)
{
    (void)state;
    roundtrip_u(0, 1);
    roundtrip_u(1, 1);
    roundtrip_u(127, 1);
    roundtrip_u(128, 2);
    roundtrip_u(16383, 2);
    roundtrip_u(16384, 3);
    roundtrip_u(UINT32_MAX, 5);
    roundtrip_u((uint64_t)1 << 56, 9);
    roundtrip_u(((uint64_t)1 << 63) - 1, 9);
    roundtrip_u((uint64_t)1 << 63, 10);
    roundtrip_u(UINT64_MAX, 10);
}

static void test_uvarint_known_encodings(void **state)
{
    (void)state;
    uint8_t buf[WR_VARINT_MAX];
    assert_int_equal(wr_put_uvarint(buf, 0), 1);
    assert_memory_equal(buf, "\x00", 1);
    assert_int_equal(wr_put_uvarint(buf, 128), 2);
    assert_memory_equal(buf, "\x80\x01", 2);
    assert_int_equal(wr_put_uvarint(buf, 300), 2);
    assert_memory_equal(buf, "\xac\x02", 2);
    assert_int_equal(wr_put_uvarint(buf, (uint64_t)1 << 63), 10);
    assert_memory_equal(buf, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10);
}

static void test_svarint_zigzag_round_trip_negatives(void **state)
{
    (void)state;
    const int64_t vals[] = {0,   1,         -1,        63,        -64,       64,
                            -65, INT32_MIN, INT32_MAX, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    const size_t lens[] = {1, 1, 1, 1, 1, 2, 2, 5, 5, 10, 10, 10};
    uint8_t buf[WR_VARINT_MAX];

    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int64_t got = ~vals[i];
        size_t n = wr_put_svarint(buf, vals[i]);
        assert_int_equal(n, lens[i]);
        assert_int_equal(wr_get_svarint(buf, buf + n, &got), n);
        assert_true(got == vals[i]);
        assert_int_equal(wr_get_svarint(buf, buf + n - 1, &got), 0);
    }
    /* zigzag maps -1 to 1 and 1 to 2 */
    assert_int_equal(wr_put_svarint(buf, -1), 1);
    assert_int_equal(buf[0], 1);
    assert_int_equal(wr_put_svarint(buf, 1), 1);
    assert_int_equal(buf[0], 2);
}

static void test_empty_and_truncated_input_is_rejected(void **state)
{
    (void)state;
    uint64_t v = 7;
    int64_t s = 7;
    const uint8_t cont[3] = {0x80, 0x80, 0x80};

    assert_int_equal(wr_get_uvarint(cont, cont, &v), 0);
    assert_int_equal(wr_get_uvarint(cont, cont + 3, &v), 0);
    assert_int_equal(wr_get_svarint(cont, cont + 3, &s), 0);
    assert_int_equal(v, 7); /* untouched on failure */
    assert_int_equal(s, 7);
}

static void test_overlong_and_overflow_are_rejected(void **state)
{
    (void)state;
    uint64_t v = 0;
    /* 11 bytes: ten continuation bytes then a terminator */
    const uint8_t eleven[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    /* 10 bytes whose last byte carries bits above 2^63 */
    const uint8_t over[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    const uint8_t max[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};

    assert_int_equal(wr_get_uvarint(eleven, eleven + sizeof eleven, &v), 0);
    assert_int_equal(wr_get_uvarint(over, over + sizeof over, &v), 0);
    assert_int_equal(wr_get_uvarint(max, max + sizeof max, &v), 10);
    assert_true(v == UINT64_MAX);
}

static void test_decoder_stops_at_terminator_not_end(void **state)
{
    (void)state;
    const uint8_t two[4] = {0xac, 0x02, 0xff, 0xff};
    uint64_t v;
    assert_int_equal(wr_get_uvarint(two, two + sizeof two, &v), 2);
    assert_int_equal(v, 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uvarint_round_trip_at_boundaries),
        cmocka_unit_test(test_uvarint_known_encodings),
        cmocka_unit_test(test_svarint_zigzag_round_trip_negatives),
        cmocka_unit_test(test_empty_and_truncated_input_is_rejected),
        cmocka_unit_test(test_overlong_and_overflow_are_rejected),
        cmocka_unit_test(test_decoder_stops_at_terminator_not_end),
    };
    return cmocka_run_group_tests_name("wr_varint", tests, NULL, NULL);
}

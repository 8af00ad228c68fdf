/* tests/common/test_wr_xxh3.c -- XXH3 wrappers: known value, streaming equals one-shot */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#include <cmocka.h>

#include "wr.h"

static void test_known_value_of_empty_input(void **state)
{
    (void)state;
    /* the reference value from the XXH3 spec test vectors */
    assert_true(wr_xxh3("", 0) == 0x2D06800538D394C2ull);
    assert_true(wr_xxh3_seed("", 0, 0) == 0x2D06800538D394C2ull);
    assert_true(wr_xxh3_seed("abc", 3, 1) != wr_xxh3("abc", 3));
}

static void test_128_is_big_endian_canonical(void **state)
{
    (void)state;
    uint8_t out[16];
    XXH128_hash_t h = XXH3_128bits("weir", 4);

    wr_xxh3_128("weir", 4, out);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(out[i], (uint8_t)(h.high64 >> (56 - 8 * i)));
        assert_int_equal(out[8 + i], (uint8_t)(h.low64 >> (56 - 8 * i)));
    }
}

static void test_streaming_equals_one_shot_for_any_split(void **state)
{
    (void)state;
    uint8_t data[3000];
    wr_xxh3_state *st;

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len <= sizeof data; len += 499) {
        for (size_t split = 0; split <= len; split += 97) {
            assert_int_equal(wr_xxh3_begin(&st), WR_OK);
            assert_true(((uintptr_t)st & 63) == 0);
            wr_xxh3_update(st, data, split);
            wr_xxh3_update(st, data + split, len - split);
            assert_true(wr_xxh3_digest(st) == wr_xxh3(data, len));
            wr_xxh3_end(st);
        }
    }
    wr_xxh3_end(NULL);
}

static void test_begin_out_of_memory_is_nomem(void **state)
{
    (void)state;
    wr_xxh3_state *st = (wr_xxh3_state *)(uintptr_t)1;
    wr_alloc_fail_at(1, false);
    assert_int_equal(wr_xxh3_begin(&st), WR_ERR_NOMEM);
    assert_null(st);
    wr_alloc_fail_at(0, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value_of_empty_input),
        cmocka_unit_test(test_128_is_big_endian_canonical),
        cmocka_unit_test(test_streaming_equals_one_shot_for_any_split),
        cmocka_unit_test(test_begin_out_of_memory_is_nomem),
    };
    return cmocka_run_group_tests_name("wr_xxh3", tests, NULL, NULL);
}

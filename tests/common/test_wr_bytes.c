/* tests/common/test_wr_bytes.c -- byte ordering, buffer growth, fixed-width LE encoding */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wr.h"

static void test_cmp_is_memcmp_order_shorter_first(void **state)
{
    (void)state;
    assert_int_equal(wr_bytes_cmp(wr_bytes_str("abc"), wr_bytes_str("abc")), 0);
    assert_int_equal(wr_bytes_cmp(wr_bytes_str("ab"), wr_bytes_str("abc")), -1);
    assert_int_equal(wr_bytes_cmp(wr_bytes_str("abc"), wr_bytes_str("ab")), 1);
    assert_int_equal(wr_bytes_cmp(wr_bytes_str("abd"), wr_bytes_str("abc")), 1);
    assert_int_equal(wr_bytes_cmp(wr_bytes_of("\x01", 1), wr_bytes_of("\xff", 1)), -1);
    assert_int_equal(wr_bytes_cmp(wr_bytes_of(NULL, 0), wr_bytes_of(NULL, 0)), 0);
    assert_int_equal(wr_bytes_cmp(wr_bytes_of(NULL, 0), wr_bytes_str("a")), -1);
    assert_true(wr_bytes_eq(wr_bytes_of(NULL, 0), wr_bytes_str("")));
    assert_false(wr_bytes_eq(wr_bytes_str("a"), wr_bytes_str("b")));
}

static void test_buf_grows_by_doubling_and_keeps_content(void **state)
{
    (void)state;
    wr_buf b = {0};
    size_t caps = 0, last_cap = 0;

    for (uint32_t i = 0; i < 10000; i++) {
        uint8_t v[4];
        wr_put32(v, i);
        assert_int_equal(wr_buf_append(&b, v, 4), WR_OK);
        if (b.cap != last_cap) {
            if (last_cap != 0)
                assert_int_equal(b.cap, 2 * last_cap);
            last_cap = b.cap;
            caps++;
        }
    }
    assert_int_equal(b.len, 40000);
    assert_true(caps < 20);
    for (uint32_t i = 0; i < 10000; i++)
        assert_int_equal(wr_get32(b.ptr + 4 * i), i);
    wr_buf_fini(&b);
    wr_buf_fini(&b); /* idempotent */
}

static void test_buf_append_of_own_bytes_survives_realloc(void **state)
{
    (void)state;
    wr_buf b = {0};
    assert_int_equal(wr_buf_append(&b, "0123456789", 10), WR_OK);
    for (int i = 0; i < 6; i++) /* each append doubles len, forcing reallocs */
        assert_int_equal(wr_buf_append(&b, b.ptr, b.len), WR_OK);
    assert_int_equal(b.len, 640);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.ptr[i], '0' + (int)(i % 10));
    wr_buf_fini(&b);
}

static void test_buf_reserve_overflow_is_refused(void **state)
{
    (void)state;
    wr_buf b = {0};
    assert_int_equal(wr_buf_append(&b, "x", 1), WR_OK);
    assert_int_equal(wr_buf_reserve(&b, SIZE_MAX), WR_ERR_TOOBIG);
    assert_int_equal(b.len, 1);
    assert_int_equal(wr_buf_append(&b, NULL, 0), WR_OK);
    wr_buf_fini(&b);
}

static void test_fixed_width_le_round_trip(void **state)
{
    (void)state;
    uint8_t p[8];
    wr_put16(p, 0xbeef);
    assert_memory_equal(p, "\xef\xbe", 2);
    assert_int_equal(wr_get16(p), 0xbeef);
    wr_put32(p, 0xdeadbeefu);
    assert_memory_equal(p, "\xef\xbe\xad\xde", 4);
    assert_int_equal(wr_get32(p), 0xdeadbeefu);
    wr_put64(p, 0x0123456789abcdefull);
    assert_memory_equal(p, "\xef\xcd\xab\x89\x67\x45\x23\x01", 8);
    assert_true(wr_get64(p) == 0x0123456789abcdefull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmp_is_memcmp_order_shorter_first),
        cmocka_unit_test(test_buf_grows_by_doubling_and_keeps_content),
        cmocka_unit_test(test_buf_append_of_own_bytes_survives_realloc),
        cmocka_unit_test(test_buf_reserve_overflow_is_refused),
        cmocka_unit_test(test_fixed_width_le_round_trip),
    };
    return cmocka_run_group_tests_name("wr_bytes", tests, NULL, NULL);
}

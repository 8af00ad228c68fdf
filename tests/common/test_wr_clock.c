/* tests/common/test_wr_clock.c -- monotonic clock, wall clock, sleep duration */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "wr.h"

static void test_monotonic_never_goes_back(void **state)
{
    (void)state;
    uint64_t prev = wr_now_ns();
    for (int i = 0; i < 10000; i++) {
        uint64_t now = wr_now_ns();
        assert_true(now >= prev);
        prev = now;
    }
}

static void test_sleep_lasts_at_least_the_request(void **state)
{
    (void)state;
    uint64_t t0 = wr_now_ns();
    wr_sleep_ns(20 * 1000 * 1000);
    uint64_t dt = wr_now_ns() - t0;
    assert_true(dt >= 20 * 1000 * 1000);
    assert_true(dt < 2000ull * 1000 * 1000); /* generous: loaded CI machines */
}

static void test_wall_ms_matches_time(void **state)
{
    (void)state;
    int64_t ms = wr_wall_ms();
    int64_t s = (int64_t)time(NULL);
    assert_true(ms / 1000 >= s - 1 && ms / 1000 <= s + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic_never_goes_back),
        cmocka_unit_test(test_sleep_lasts_at_least_the_request),
        cmocka_unit_test(test_wall_ms_matches_time),
    };
    return cmocka_run_group_tests_name("wr_clock", tests, NULL, NULL);
}

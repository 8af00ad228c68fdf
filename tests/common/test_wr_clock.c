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

static void test_abstime_is_now_plus_the_delay_normalised(void **state)
{
    struct timespec now, ts;
    (void)state;
    for (uint64_t ns = 0; ns < 3000000000u; ns += 999999937u) {
        int64_t diff;
        clock_gettime(CLOCK_REALTIME, &now);
        wr_abstime(&ts, ns);
        assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
        diff = (int64_t)(ts.tv_sec - now.tv_sec) * 1000000000 + (ts.tv_nsec - now.tv_nsec);
        assert_true(diff >= (int64_t)ns);
        assert_true(diff < (int64_t)ns + 1000000000); /* a generous bound: a busy machine */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic_never_goes_back),
        cmocka_unit_test(test_sleep_lasts_at_least_the_request),
        cmocka_unit_test(test_wall_ms_matches_time),
        cmocka_unit_test(test_abstime_is_now_plus_the_delay_normalised),
    };
    return cmocka_run_group_tests_name("wr_clock", tests, NULL, NULL);
}

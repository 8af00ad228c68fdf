/* tests/common/test_wr_hist.c -- quantiles of known distributions, merge, edge values */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "wr.h"

#define MAX_REL_ERR 0.016

static wr_hist *hist_new(void)
{
    wr_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    wr_hist_init(h);
    return h;
}

/* The true q-quantile of sorted @v is v[ceil(q*n) - 1]; the histogram may report at most
 * one bucket width above it, never below. */
static void check_quantile(const wr_hist *h, const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    uint64_t truth = sorted[rank ? rank - 1 : 0];
    uint64_t got = wr_hist_quantile(h, q);

    assert_true(got >= truth);
    assert_true((double)(got - truth) <= MAX_REL_ERR * (double)truth);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_small_values_are_exact(void **state)
{
    (void)state;
    wr_hist *h = hist_new();
    for (uint64_t v = 0; v < 128; v++)
        wr_hist_record(h, v);
    for (uint64_t v = 0; v < 128; v++)
        assert_int_equal(wr_hist_quantile(h, (double)(v + 1) / 128.0), v);
    assert_int_equal(h->cnt, 128);
    assert_int_equal(h->min, 0);
    assert_int_equal(h->max, 127);
    free(h);
}

static void test_uniform_quantiles_within_relative_error(void **state)
{
    (void)state;
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof(*v));
    wr_hist *h = hist_new();
    assert_non_null(v);
    for (size_t i = 0; i < N; i++) {
        v[i] = 1000 + rng() % 10000000; /* 1 us .. 10 ms in ns */
        wr_hist_record(h, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    const double qs[] = {0.001, 0.1, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        check_quantile(h, v, N, qs[i]);
    assert_true(wr_hist_quantile(h, 1.0) == v[N - 1]);
    assert_true(wr_hist_quantile(h, 0.0) == v[0]);
    free(v);
    free(h);
}

static void test_exponential_spread_quantiles_within_relative_error(void **state)
{
    (void)state;
    enum { N = 50000 };
    uint64_t *v = malloc(N * sizeof(*v));
    wr_hist *h = hist_new();
    assert_non_null(v);
    /* log-uniform over 2^0 .. 2^62: exercises every exponent */
    for (size_t i = 0; i < N; i++) {
        unsigned e = (unsigned)(rng() % 62);
        v[i] = ((uint64_t)1 << e) + (rng() & (((uint64_t)1 << e) - 1));
        wr_hist_record(h, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    for (double q = 0.01; q < 1.0; q += 0.01)
        check_quantile(h, v, N, q);
    free(v);
    free(h);
}

static void test_extreme_values_do_not_overflow(void **state)
{
    (void)state;
    wr_hist *h = hist_new();
    wr_hist_record(h, UINT64_MAX);
    wr_hist_record(h, UINT64_MAX - 1);
    wr_hist_record(h, (uint64_t)1 << 63);
    assert_true(wr_hist_quantile(h, 1.0) == UINT64_MAX);
    assert_true(wr_hist_quantile(h, 0.5) >= UINT64_MAX - ((uint64_t)1 << 57));
    assert_true(wr_hist_quantile(h, 0.1) >= (uint64_t)1 << 63);
    free(h);
}

static void test_quantile_clamped_to_max_and_empty_is_zero(void **state)
{
    (void)state;
    wr_hist *h = hist_new();
    assert_int_equal(wr_hist_quantile(h, 0.5), 0);
    assert_true(wr_hist_mean(h) == 0.0);
    wr_hist_record(h, 1000); /* its bucket spans 1000..1007 */
    assert_int_equal(wr_hist_quantile(h, 0.5), 1000);
    assert_int_equal(wr_hist_quantile(h, 0.99), 1000);
    wr_hist_record(h, 3000);
    assert_true(fabs(wr_hist_mean(h) - 2000.0) < 1e-9);
    free(h);
}

static void test_merge_equals_recording_both(void **state)
{
    (void)state;
    wr_hist *a = hist_new(), *b = hist_new(), *both = hist_new();
    for (int i = 0; i < 20000; i++) {
        uint64_t x = rng() % 5000000, y = 100 + rng() % 1000;
        wr_hist_record(a, x);
        wr_hist_record(both, x);
        wr_hist_record(b, y);
        wr_hist_record(both, y);
    }
    wr_hist_merge(a, b);
    assert_memory_equal(a, both, sizeof(*a));
    /* merging into an empty histogram copies, merging an empty one changes nothing */
    wr_hist *e = hist_new();
    wr_hist_merge(e, both);
    assert_memory_equal(e, both, sizeof(*e));
    wr_hist_init(e);
    wr_hist_merge(a, e);
    assert_memory_equal(a, both, sizeof(*a));
    free(a);
    free(b);
    free(both);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_uniform_quantiles_within_relative_error),
        cmocka_unit_test(test_exponential_spread_quantiles_within_relative_error),
        cmocka_unit_test(test_extreme_values_do_not_overflow),
        cmocka_unit_test(test_quantile_clamped_to_max_and_empty_is_zero),
        cmocka_unit_test(test_merge_equals_recording_both),
    };
    return cmocka_run_group_tests_name("wr_hist", tests, NULL, NULL);
}

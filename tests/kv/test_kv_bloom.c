/* tests/kv/test_kv_bloom.c -- the bloom filter: no false negatives, a measured false-positive
 * rate <= 1% at 10 bits per key on 100k absent keys, the same across key sizes, the probe count
 * formula, and a parser that refuses malformed filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kv_sst.h"

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s ^ (*s >> 29);
}

/* Key @i of set @set, @len bytes (>= 5): distinct across (set, i) for len >= 5. */
static void make_key(uint8_t *dst, size_t len, uint32_t set, uint32_t i)
{
    uint64_t s = ((uint64_t)set << 32) | i;
    dst[0] = (uint8_t)set;
    wr_put32(dst + 1, i);
    for (size_t j = 5; j < len; j++)
        dst[j] = (uint8_t)rng_next(&s);
}

/* Build over @n keys of set 0, probe @n keys of set 1: returns the false-positive rate. */
static double measure(size_t n, size_t klen, uint32_t bpk)
{
    uint64_t *h = malloc(n * sizeof(*h));
    uint8_t key[1024];
    wr_buf f = {0};
    kv_bloom b;
    size_t fp = 0;

    assert_non_null(h);
    for (size_t i = 0; i < n; i++) {
        make_key(key, klen, 0, (uint32_t)i);
        h[i] = kv_bloom_hash(wr_bytes_of(key, klen));
    }
    assert_int_equal(kv_bloom_build(h, n, bpk, &f), WR_OK);
    assert_int_equal(kv_bloom_parse(f.ptr, f.len, &b), WR_OK);
    assert_int_equal(b.k, kv_bloom_probes(bpk));
    assert_true(b.nbits >= (uint64_t)n * bpk);
    for (size_t i = 0; i < n; i++) /* no false negatives */
        assert_true(kv_bloom_may_contain(&b, h[i]));
    for (size_t i = 0; i < n; i++) {
        make_key(key, klen, 1, (uint32_t)i);
        fp += kv_bloom_may_contain(&b, kv_bloom_hash(wr_bytes_of(key, klen)));
    }
    wr_buf_fini(&f);
    free(h);
    return (double)fp / (double)n;
}

static void test_fpr_at_10_bits_is_at_most_1_percent(void **state)
{
    double r = measure(100000, 16, 10);
    (void)state;
    printf("bloom: 100000 keys of 16 B, 10 bits/key, k=%u: false-positive rate %.3f%%\n",
           kv_bloom_probes(10), r * 100);
    assert_true(r <= 0.01);
}

static void test_fpr_across_key_sizes(void **state)
{
    static const size_t sizes[] = {5, 8, 24, 100, 1000};
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        double r = measure(100000, sizes[i], 10);
        printf("bloom: keys of %4zu B: false-positive rate %.3f%%\n", sizes[i], r * 100);
        assert_true(r <= 0.01);
    }
    /* more bits, fewer false positives; fewer bits, more, but bounded by theory */
    assert_true(measure(20000, 16, 20) < 0.001);
    assert_true(measure(20000, 16, 5) < 0.15);
}

static void test_probe_count_is_bits_times_ln2_clamped(void **state)
{
    (void)state;
    assert_int_equal(kv_bloom_probes(0), 1);
    assert_int_equal(kv_bloom_probes(1), 1);
    assert_int_equal(kv_bloom_probes(2), 1);
    assert_int_equal(kv_bloom_probes(3), 2);
    assert_int_equal(kv_bloom_probes(10), 7);
    assert_int_equal(kv_bloom_probes(16), 11);
    assert_int_equal(kv_bloom_probes(43), 30);
    assert_int_equal(kv_bloom_probes(1000), 30);
}

static void test_small_and_empty_filters(void **state)
{
    uint64_t h = kv_bloom_hash(wr_bytes_str("only"));
    wr_buf f = {0};
    kv_bloom b;
    (void)state;

    assert_int_equal(kv_bloom_build(NULL, 0, 10, &f), WR_OK);
    assert_int_equal(f.len, 8 + 2); /* at least 64 bits */
    assert_int_equal(kv_bloom_parse(f.ptr, f.len, &b), WR_OK);
    assert_false(kv_bloom_may_contain(&b, h));
    f.len = 0;
    assert_int_equal(kv_bloom_build(&h, 1, 10, &f), WR_OK);
    assert_int_equal(kv_bloom_parse(f.ptr, f.len, &b), WR_OK);
    assert_true(kv_bloom_may_contain(&b, h));
    wr_buf_fini(&f);
}

static void test_malformed_filter_is_corrupt(void **state)
{
    uint8_t f[10] = {0};
    kv_bloom b;
    (void)state;

    assert_int_equal(kv_bloom_parse(f, 2, &b), WR_ERR_CORRUPT); /* no bit array */
    f[8] = 7;
    f[9] = 2; /* unknown scheme */
    assert_int_equal(kv_bloom_parse(f, 10, &b), WR_ERR_CORRUPT);
    f[9] = KV_BLOOM_SCHEME;
    f[8] = 0; /* k = 0 */
    assert_int_equal(kv_bloom_parse(f, 10, &b), WR_ERR_CORRUPT);
    f[8] = 31;
    assert_int_equal(kv_bloom_parse(f, 10, &b), WR_ERR_CORRUPT);
    f[8] = 30;
    assert_int_equal(kv_bloom_parse(f, 10, &b), WR_OK);
    assert_int_equal(b.nbits, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fpr_at_10_bits_is_at_most_1_percent),
        cmocka_unit_test(test_fpr_across_key_sizes),
        cmocka_unit_test(test_probe_count_is_bits_times_ln2_clamped),
        cmocka_unit_test(test_small_and_empty_filters),
        cmocka_unit_test(test_malformed_filter_is_corrupt),
    };
    wr_log_set_level(WR_LOG_ERROR); /* damaged input logs a WARN per WR_CORRUPT() */
    return cmocka_run_group_tests_name("kv_bloom", tests, NULL, NULL);
}

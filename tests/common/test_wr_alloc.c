/* tests/common/test_wr_alloc.c -- the fail-at-Nth hook, and wr_buf under a failing allocator */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wr.h"

static int disarm(void **state)
{
    (void)state;
    wr_alloc_fail_at(0, false);
    return 0;
}

static void test_fail_at_nth_fails_exactly_that_one(void **state)
{
    (void)state;
    void *p[5];
    uint64_t before = wr_alloc_count();

    wr_alloc_fail_at(3, false);
    for (int i = 0; i < 5; i++)
        p[i] = wr_malloc(16);
    assert_non_null(p[0]);
    assert_non_null(p[1]);
    assert_null(p[2]);
    assert_non_null(p[3]);
    assert_non_null(p[4]);
    assert_int_equal(wr_alloc_count() - before, 5);
    for (int i = 0; i < 5; i++)
        wr_free(p[i]);
}

static void test_sticky_fails_every_later_allocation(void **state)
{
    (void)state;
    void *a, *b, *c;
    char *d;

    wr_alloc_fail_at(2, true);
    a = wr_malloc(8);
    b = wr_calloc(4, 4);
    c = wr_realloc(NULL, 8);
    d = wr_strdup("x");
    assert_non_null(a);
    assert_null(b);
    assert_null(c);
    assert_null(d);
    wr_alloc_fail_at(0, false);
    b = wr_calloc(4, 4);
    assert_non_null(b);
    assert_memory_equal(b, (uint8_t[16]){0}, 16);
    wr_free(a);
    wr_free(b);
}

static void test_failed_realloc_keeps_old_block(void **state)
{
    (void)state;
    char *p = wr_strdup("keep me");
    assert_non_null(p);
    wr_alloc_fail_at(1, false);
    assert_null(wr_realloc(p, 1 << 20));
    assert_string_equal(p, "keep me");
    wr_free(p);
    wr_free(NULL); /* a no-op */
}

static void test_zero_byte_allocations_are_not_null(void **state)
{
    (void)state;
    void *a = wr_malloc(0), *b = wr_calloc(0, 8);
    assert_non_null(a);
    assert_non_null(b);
    wr_free(a);
    wr_free(b);
}

static void test_buf_append_under_failing_allocator_leaves_buffer_intact(void **state)
{
    (void)state;
    wr_buf b = {0};
    uint8_t big[1000];

    assert_int_equal(wr_buf_append(&b, "hello", 5), WR_OK);
    size_t cap = b.cap;
    uint8_t *ptr = b.ptr;
    memset(big, 'x', sizeof big);
    wr_alloc_fail_at(1, true);
    assert_int_equal(wr_buf_append(&b, big, sizeof big), WR_ERR_NOMEM);
    assert_true(strlen(wr_errmsg()) > 0);
    assert_int_equal(b.len, 5);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.ptr, ptr);
    assert_memory_equal(b.ptr, "hello", 5);
    /* appends that fit need no allocation and still work */
    assert_int_equal(wr_buf_append(&b, " w", 2), WR_OK);
    wr_alloc_fail_at(0, false);
    assert_int_equal(wr_buf_append(&b, big, sizeof big), WR_OK);
    assert_int_equal(b.len, 1007);
    assert_memory_equal(b.ptr, "hello w", 7);
    assert_memory_equal(b.ptr + 7, big, sizeof big);
    wr_buf_fini(&b);
    assert_null(b.ptr);
    assert_int_equal(b.len, 0);
}

static void *alloc_loop(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        wr_free(wr_malloc(1));
    return NULL;
}

static void test_counter_is_consistent_across_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    uint64_t before = wr_alloc_count();

    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, alloc_loop, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    /* atomic counting: no increment is lost to a race */
    assert_int_equal(wr_alloc_count() - before, 4000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fail_at_nth_fails_exactly_that_one, disarm),
        cmocka_unit_test_teardown(test_sticky_fails_every_later_allocation, disarm),
        cmocka_unit_test_teardown(test_failed_realloc_keeps_old_block, disarm),
        cmocka_unit_test_teardown(test_zero_byte_allocations_are_not_null, disarm),
        cmocka_unit_test_teardown(test_buf_append_under_failing_allocator_leaves_buffer_intact,
                                  disarm),
        cmocka_unit_test_teardown(test_counter_is_consistent_across_threads, disarm),
    };
    return cmocka_run_group_tests_name("wr_alloc", tests, NULL, NULL);
}

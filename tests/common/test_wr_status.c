/* tests/common/test_wr_status.c -- errno mapping, status names, thread-local error detail */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "wr.h"

static void test_errno_maps_to_status_both_signs(void **state)
{
    (void)state;
    assert_int_equal(wr_status_from_errno(0), WR_OK);
    assert_int_equal(wr_status_from_errno(ENOENT), WR_ERR_NOTFOUND);
    assert_int_equal(wr_status_from_errno(-ENOENT), WR_ERR_NOTFOUND);
    assert_int_equal(wr_status_from_errno(ENOMEM), WR_ERR_NOMEM);
    assert_int_equal(wr_status_from_errno(EEXIST), WR_ERR_EXISTS);
    assert_int_equal(wr_status_from_errno(ENOSPC), WR_ERR_FULL);
    assert_int_equal(wr_status_from_errno(EDQUOT), WR_ERR_FULL);
    assert_int_equal(wr_status_from_errno(EINVAL), WR_ERR_INVAL);
    assert_int_equal(wr_status_from_errno(EBADF), WR_ERR_INVAL);
    assert_int_equal(wr_status_from_errno(EAGAIN), WR_AGAIN);
    assert_int_equal(wr_status_from_errno(EBUSY), WR_ERR_BUSY);
    assert_int_equal(wr_status_from_errno(ENOSYS), WR_ERR_UNSUPPORTED);
    assert_int_equal(wr_status_from_errno(EIO), WR_ERR_IO);
    assert_int_equal(wr_status_from_errno(-ECANCELED), WR_ERR_IO);
    assert_int_equal(wr_status_from_errno(EACCES), WR_ERR_IO);
}

static void test_status_names_are_stable_and_never_null(void **state)
{
    (void)state;
    assert_string_equal(wr_status_str(WR_OK), "ok");
    assert_string_equal(wr_status_str(WR_ERR_CORRUPT), "corrupt");
    assert_string_equal(wr_status_str(WR_ERR_NOTFOUND), "notfound");
    assert_string_equal(wr_status_str(WR_ERR_INTERNAL), "internal");
    for (int s = 0; s < 64; s++) {
        const char *n = wr_status_str((wr_status)s);
        assert_non_null(n);
        assert_true(n[0] != '\0');
    }
    assert_string_equal(wr_status_str((wr_status)99), "unknown");
    assert_false(wr_failed(WR_OK));
    assert_false(wr_failed(WR_EOF));
    assert_false(wr_failed(WR_AGAIN));
    assert_true(wr_failed(WR_ERR_INVAL));
    assert_true(wr_failed(WR_ERR_INTERNAL));
}

static void test_err_formats_returns_status_and_keeps_errno(void **state)
{
    (void)state;
    wr_err_clear();
    assert_string_equal(wr_errmsg(), "");
    errno = ENOSPC;
    assert_int_equal(wr_err(WR_ERR_FULL, "%s: disk full at %d", "/x/seg", 42), WR_ERR_FULL);
    assert_int_equal(errno, ENOSPC);
    assert_string_equal(wr_errmsg(), "/x/seg: disk full at 42");
    /* adding context to the current message must not read a half-written buffer */
    assert_int_equal(wr_err(WR_ERR_IO, "open log: %s", wr_errmsg()), WR_ERR_IO);
    assert_string_equal(wr_errmsg(), "open log: /x/seg: disk full at 42");
    wr_err_clear();
    assert_string_equal(wr_errmsg(), "");
}

static void test_err_long_message_truncated_not_overflowed(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(wr_err(WR_ERR_INVAL, "%s", big), WR_ERR_INVAL);
    assert_true(strlen(wr_errmsg()) > 100);
    assert_true(strlen(wr_errmsg()) < sizeof big - 1);
}

static void *other_thread(void *arg)
{
    (void)arg;
    /* a fresh thread sees no detail, and its own detail stays its own */
    bool empty = wr_errmsg()[0] == '\0';
    WR_IGNORE(wr_err(WR_ERR_IO, "thread detail"));
    return empty ? (void *)1 : NULL;
}

static void test_err_detail_is_per_thread(void **state)
{
    (void)state;
    pthread_t t;
    void *ret = NULL;
    WR_IGNORE(wr_err(WR_ERR_IO, "main detail"));
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_non_null(ret);
    assert_string_equal(wr_errmsg(), "main detail");
}

static void test_corrupt_returns_corrupt_and_names_file_line(void **state)
{
    (void)state;
    wr_log_set_level(WR_LOG_ERROR); /* keep the WARN line out of the test output */
    int line = __LINE__ + 1;
    wr_status s = WR_CORRUPT();
    assert_int_equal(s, WR_ERR_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "test_wr_status.c:%d", line);
    assert_non_null(strstr(wr_errmsg(), want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errno_maps_to_status_both_signs),
        cmocka_unit_test(test_status_names_are_stable_and_never_null),
        cmocka_unit_test(test_err_formats_returns_status_and_keeps_errno),
        cmocka_unit_test(test_err_long_message_truncated_not_overflowed),
        cmocka_unit_test(test_err_detail_is_per_thread),
        cmocka_unit_test(test_corrupt_returns_corrupt_and_names_file_line),
    };
    return cmocka_run_group_tests_name("wr_status", tests, NULL, NULL);
}

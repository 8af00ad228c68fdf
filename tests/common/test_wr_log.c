/* tests/common/test_wr_log.c -- line format, $WEIR_LOG, levels, no interleaving across threads.
 * stderr is pointed at a temporary file for the checks and restored afterwards. */
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "wr.h"

#define LINE_RE                                                                                    \
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z (ERROR|WARN|INFO|DEBUG) "

static int saved_stderr = -1;
static char cap_path[] = "/tmp/test_wr_log.XXXXXX";

/* Points fd 2 at a fresh temporary file. */
static void capture_begin(void)
{
    int fd = mkstemp(cap_path);
    assert_true(fd >= 0);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, 2) == 2);
    close(fd);
}

/* Restores fd 2 and returns the captured text (caller frees). */
static char *capture_end(void)
{
    wr_buf b = {0};
    assert_true(dup2(saved_stderr, 2) == 2);
    close(saved_stderr);
    assert_int_equal(wr_file_read(cap_path, &b), WR_OK);
    unlink(cap_path);
    memcpy(cap_path + strlen(cap_path) - 6, "XXXXXX", 6);
    assert_int_equal(wr_buf_append(&b, "", 1), WR_OK);
    return (char *)b.ptr;
}

static int count_lines_matching(char *text, const char *msg_re, int *total)
{
    regex_t re;
    int n = 0;
    char pat[256];
    snprintf(pat, sizeof pat, "%s%s$", LINE_RE, msg_re);
    assert_int_equal(regcomp(&re, pat, REG_EXTENDED | REG_NOSUB), 0);
    *total = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        (*total)++;
        n += regexec(&re, l, 0, NULL, 0) == 0;
    }
    regfree(&re);
    return n;
}

static void test_env_level_read_on_first_use(void **state)
{
    (void)state;
    /* main() set WEIR_LOG=info before any logging call */
    assert_true(wr_log_enabled(WR_LOG_INFO));
    assert_false(wr_log_enabled(WR_LOG_DEBUG));
    setenv("WEIR_LOG", "debug", 1); /* read once: a later change has no effect */
    assert_false(wr_log_enabled(WR_LOG_DEBUG));
}

static void test_line_format_and_level_filter(void **state)
{
    (void)state;
    int total;
    wr_log_set_level(WR_LOG_WARN);
    capture_begin();
    WR_LOGE("disk %s failed", "sda");
    WR_LOGW("slow fsync: %d ms", 250);
    WR_LOGI("not shown");
    WR_LOGD("not shown");
    char *out = capture_end();
    char *copy = strdup(out);
    assert_int_equal(count_lines_matching(out, "disk sda failed", &total), 1);
    assert_int_equal(total, 2);
    assert_int_equal(count_lines_matching(copy, "slow fsync: 250 ms", &total), 1);
    assert_non_null(strstr(copy, "Z ERROR disk"));
    free(copy);
    wr_free(out);
}

static void test_long_message_is_cut_with_ellipsis(void **state)
{
    (void)state;
    char big[10000];
    int total;
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_begin();
    WR_LOGE("%s", big);
    char *out = capture_end();
    assert_true(strlen(out) <= 4096);
    assert_int_equal(count_lines_matching(out, "y+\\.\\.\\.", &total), 1);
    assert_int_equal(total, 1);
    wr_free(out);
}

static void *log_loop(void *arg)
{
    for (int i = 0; i < 300; i++)
        WR_LOGW("thread %d line %d padding-padding-padding-padding-padding", (int)(intptr_t)arg, i);
    return NULL;
}

static void test_concurrent_lines_never_interleave(void **state)
{
    (void)state;
    pthread_t t[4];
    int total;
    capture_begin();
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_loop, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    char *out = capture_end();
    int good = count_lines_matching(
        out, "thread [0-3] line [0-9]+ padding-padding-padding-padding-padding", &total);
    assert_int_equal(total, 1200);
    assert_int_equal(good, 1200);
    wr_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_level_read_on_first_use),
        cmocka_unit_test(test_line_format_and_level_filter),
        cmocka_unit_test(test_long_message_is_cut_with_ellipsis),
        cmocka_unit_test(test_concurrent_lines_never_interleave),
    };
    setenv("WEIR_LOG", "INFO", 1);
    return cmocka_run_group_tests_name("wr_log", tests, NULL, NULL);
}

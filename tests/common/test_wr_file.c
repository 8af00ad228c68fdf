/* tests/common/test_wr_file.c -- mkdir -p, atomic replace, whole-file read, wr_path, and the
 * fault hook (wr_fault_set) on every write-side helper */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "wr.h"

static char root[] = "/tmp/test_wr_file.XXXXXX";

static int rm_rf(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd);
}

static void test_mkdir_p_creates_nested_and_is_idempotent(void **state)
{
    (void)state;
    char p[PATH_MAX];
    struct stat st;

    assert_int_equal(wr_path(p, sizeof p, "%s/a/b//c/", root), WR_OK);
    assert_int_equal(wr_mkdir_p(p), WR_OK);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(wr_mkdir_p(p), WR_OK);
    assert_int_equal(wr_fsync_dir(p), WR_OK);
    assert_int_equal(wr_mkdir_p(""), WR_ERR_INVAL);
}

static void test_mkdir_p_over_a_file_fails_naming_it(void **state)
{
    (void)state;
    char p[PATH_MAX];
    assert_int_equal(wr_path(p, sizeof p, "%s/plainfile", root), WR_OK);
    assert_int_equal(wr_file_write_atomic(p, "x", 1), WR_OK);
    assert_int_equal(wr_mkdir_p(p), WR_ERR_EXISTS);
    assert_non_null(strstr(wr_errmsg(), p));
}

static void test_atomic_replace_round_trip_leaves_no_tmp(void **state)
{
    (void)state;
    char p[PATH_MAX], tmp[PATH_MAX];
    wr_buf b = {0};

    assert_int_equal(wr_path(p, sizeof p, "%s/MANIFEST", root), WR_OK);
    assert_int_equal(wr_path(tmp, sizeof tmp, "%s.tmp", p), WR_OK);
    assert_int_equal(wr_file_write_atomic(p, "first version", 13), WR_OK);
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, 13);
    assert_memory_equal(b.ptr, "first version", 13);
    /* replace with shorter content: no stale tail from the old file */
    assert_int_equal(wr_file_write_atomic(p, "v2", 2), WR_OK);
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.ptr, "v2", 2);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    /* empty content is a valid file */
    assert_int_equal(wr_file_write_atomic(p, NULL, 0), WR_OK);
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, 0);
    wr_buf_fini(&b);
}

static void test_atomic_replace_overwrites_stale_tmp(void **state)
{
    (void)state;
    char p[PATH_MAX], tmp[PATH_MAX];
    wr_buf b = {0};

    assert_int_equal(wr_path(p, sizeof p, "%s/stale", root), WR_OK);
    assert_int_equal(wr_path(tmp, sizeof tmp, "%s.tmp", p), WR_OK);
    FILE *f = fopen(tmp, "w"); /* left behind by a crash mid-replace */
    assert_non_null(f);
    fputs("garbage garbage garbage", f);
    fclose(f);
    assert_int_equal(wr_file_write_atomic(p, "good", 4), WR_OK);
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.ptr, "good", 4);
    wr_buf_fini(&b);
}

static void test_large_file_read_whole(void **state)
{
    (void)state;
    enum { LEN = 300000 };
    char p[PATH_MAX];
    uint8_t *data = malloc(LEN);
    wr_buf b = {0};

    assert_non_null(data);
    for (size_t i = 0; i < LEN; i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    assert_int_equal(wr_path(p, sizeof p, "%s/big", root), WR_OK);
    assert_int_equal(wr_file_write_atomic(p, data, LEN), WR_OK);
    assert_int_equal(wr_buf_append(&b, "old", 3), WR_OK); /* replaced, not appended to */
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, LEN);
    assert_memory_equal(b.ptr, data, LEN);
    wr_buf_fini(&b);
    /* files whose st_size lies (procfs) are read to the end anyway */
    assert_int_equal(wr_file_read("/proc/self/status", &b), WR_OK);
    assert_true(b.len > 0);
    assert_non_null(memmem(b.ptr, b.len, "Name:", 5));
    wr_buf_fini(&b);
    free(data);
}

static void test_read_missing_is_notfound_with_path_in_message(void **state)
{
    (void)state;
    char p[PATH_MAX];
    wr_buf b = {0};

    assert_int_equal(wr_path(p, sizeof p, "%s/does-not-exist", root), WR_OK);
    assert_int_equal(wr_file_read(p, &b), WR_ERR_NOTFOUND);
    assert_non_null(strstr(wr_errmsg(), p));
    assert_non_null(strstr(wr_errmsg(), strerror(ENOENT)));
    assert_int_equal(b.len, 0);
    wr_buf_fini(&b);
}

static void test_write_atomic_into_missing_dir_fails_cleanly(void **state)
{
    (void)state;
    char p[PATH_MAX];
    assert_int_equal(wr_path(p, sizeof p, "%s/no/such/dir/file", root), WR_OK);
    assert_int_equal(wr_file_write_atomic(p, "x", 1), WR_ERR_NOTFOUND);
    assert_non_null(strstr(wr_errmsg(), "file.tmp"));
    assert_int_equal(wr_fsync_dir(p), WR_ERR_NOTFOUND);
}

static void test_path_truncation_is_inval(void **state)
{
    (void)state;
    char small[8];

    assert_int_equal(wr_path(small, sizeof small, "%s/%d", "ab", 12), WR_OK);
    assert_string_equal(small, "ab/12");
    assert_int_equal(wr_path(small, sizeof small, "%s/%d", "abc", 1234), WR_ERR_INVAL);
    assert_string_equal(small, ""); /* a cut path is never left behind */
    assert_non_null(strstr(wr_errmsg(), "too long"));
    /* exactly fitting: 7 characters plus the NUL */
    assert_int_equal(wr_path(small, sizeof small, "%s", "1234567"), WR_OK);
    assert_int_equal(wr_path(small, sizeof small, "%s", "12345678"), WR_ERR_INVAL);
}

/* The fault hook: fails the op of kind `want` (counting from 1 at `nth`), records the ops. */
typedef struct fault_ctx {
    wr_fault_op want;
    int nth, err, seen[5];
    size_t torn; /* WRITE: bytes to let through before the error (0: none) */
    char last_path[PATH_MAX];
} fault_ctx;

static int fault_fn(void *ctx, wr_fault_io *io)
{
    fault_ctx *c = ctx;
    snprintf(c->last_path, sizeof c->last_path, "%s", io->path ? io->path : "");
    if (++c->seen[io->op] != c->nth || io->op != c->want)
        return 0;
    if (io->op == WR_FAULT_WRITE && c->torn > 0)
        io->len = c->torn;
    return c->err;
}

static void test_fault_hook_fails_like_the_syscall(void **state)
{
    (void)state;
    char p[PATH_MAX], cur[PATH_MAX];
    fault_ctx c = {WR_FAULT_WRITE, 1, ENOSPC, {0}, 3, ""};
    wr_buf b = {0};
    wr_ring *r;
    int fd, err;

    assert_int_equal(wr_path(p, sizeof p, "%s/hooked", root), WR_OK);
    assert_int_equal(wr_path(cur, sizeof cur, "%s/CURRENT", root), WR_OK);
    assert_int_equal(wr_file_write_atomic(cur, "old\n", 4), WR_OK);
    wr_fault_set(fault_fn, &c);
    /* a torn write: 3 bytes land, then ENOSPC -> WR_ERR_FULL naming the file */
    assert_int_equal(wr_file_create(p, &fd), WR_OK);
    assert_int_equal(wr_pwrite_all(fd, "abcdef", 6, 0, p), WR_ERR_FULL);
    assert_non_null(strstr(wr_errmsg(), p));
    assert_non_null(strstr(wr_errmsg(), strerror(ENOSPC)));
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, 3);
    c = (fault_ctx){WR_FAULT_SYNC, 1, EIO, {0}, 0, ""};
    assert_int_equal(wr_fdatasync(fd, p), WR_ERR_IO);
    assert_non_null(strstr(wr_errmsg(), p));
    close(fd);
    c = (fault_ctx){WR_FAULT_OPEN, 1, EIO, {0}, 0, ""};
    assert_int_equal(wr_file_create(p, &fd), WR_ERR_IO); /* the hook comes before EEXIST */
    assert_int_equal(fd, -1);
    /* the atomic replace: a failed rename leaves the old content and no temp */
    c = (fault_ctx){WR_FAULT_RENAME, 1, EIO, {0}, 0, ""};
    assert_int_equal(wr_file_write_atomic(cur, "new\n", 4), WR_ERR_IO);
    assert_non_null(strstr(wr_errmsg(), "rename"));
    assert_int_equal(wr_file_read(cur, &b), WR_OK);
    assert_memory_equal(b.ptr, "old\n", 4);
    assert_int_equal(c.seen[WR_FAULT_OPEN], 1);
    assert_int_equal(c.seen[WR_FAULT_WRITE], 1);
    assert_int_equal(c.seen[WR_FAULT_SYNC], 1);
    c = (fault_ctx){WR_FAULT_SYNC_DIR, 1, EIO, {0}, 0, ""};
    assert_int_equal(wr_fsync_dir(root), WR_ERR_IO);
    assert_string_equal(c.last_path, root);
    /* the ring helper: the write, then its sync, each announced; path unknown (NULL) */
    assert_int_equal(wr_ring_init(8, &r), WR_OK);
    assert_true((fd = open(p, O_WRONLY | O_CLOEXEC)) >= 0);
    c = (fault_ctx){WR_FAULT_SYNC, 1, EIO, {0}, 0, "x"};
    assert_int_equal(wr_ring_pwrite_all(r, fd, "xyz", 3, 10, true, &err), WR_ERR_IO);
    assert_int_equal(err, EIO);
    assert_int_equal(c.seen[WR_FAULT_WRITE], 1);
    assert_string_equal(c.last_path, "");
    c = (fault_ctx){WR_FAULT_WRITE, 1, ENOSPC, {0}, 0, ""};
    assert_int_equal(wr_ring_pwrite_all(r, fd, "xyz", 3, 20, true, &err), WR_ERR_FULL);
    assert_int_equal(err, ENOSPC);
    assert_int_equal(c.seen[WR_FAULT_SYNC], 0); /* a failed write is never synced */
    c.nth = 0;
    assert_int_equal(wr_ring_pwrite_all(r, fd, "xyz", 3, 20, true, &err), WR_OK);
    assert_int_equal(c.seen[WR_FAULT_SYNC], 1);
    wr_fault_set(NULL, NULL);
    assert_int_equal(wr_ring_pwrite_all(r, fd, "uvw", 3, 23, true, &err), WR_OK);
    assert_int_equal(c.seen[WR_FAULT_WRITE], 2); /* unset: no longer asked */
    assert_int_equal(wr_file_read(p, &b), WR_OK);
    assert_int_equal(b.len, 26);
    assert_memory_equal(b.ptr + 10, "xyz", 3);
    assert_memory_equal(b.ptr + 20, "xyzuvw", 6);
    close(fd);
    wr_ring_destroy(r);
    wr_buf_fini(&b);
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(root) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return rm_rf();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir_p_creates_nested_and_is_idempotent),
        cmocka_unit_test(test_mkdir_p_over_a_file_fails_naming_it),
        cmocka_unit_test(test_atomic_replace_round_trip_leaves_no_tmp),
        cmocka_unit_test(test_atomic_replace_overwrites_stale_tmp),
        cmocka_unit_test(test_large_file_read_whole),
        cmocka_unit_test(test_read_missing_is_notfound_with_path_in_message),
        cmocka_unit_test(test_write_atomic_into_missing_dir_fails_cleanly),
        cmocka_unit_test(test_path_truncation_is_inval),
        cmocka_unit_test(test_fault_hook_fails_like_the_syscall),
    };
    return cmocka_run_group_tests_name("wr_file", tests, group_setup, group_teardown);
}

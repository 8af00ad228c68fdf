/* tests/common/test_wr_ring.c -- the io_uring wrapper. The same executable runs twice (see
 * meson.build): with WEIR_NO_URING=1 it checks the synchronous fallback; without it, it
 * checks real io_uring and exits 77 (skip) when the kernel refuses io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "wr.h"

static bool want_uring;

typedef struct fixture {
    wr_ring *r;
    int fd;
    char path[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/test_wr_ring.XXXXXX");
    if ((f->fd = mkstemp(f->path)) < 0)
        return -1;
    if (wr_ring_init(64, &f->r) != WR_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    wr_ring_destroy(f->r);
    close(f->fd);
    unlink(f->path);
    free(f);
    return 0;
}

/* Reaps exactly @n completions (waiting as needed) into @out. */
static void reap_n(wr_ring *r, wr_cqe *out, unsigned n)
{
    unsigned got = 0;
    while (got < n) {
        assert_int_equal(wr_ring_submit(r, n - got), WR_OK);
        unsigned k = wr_ring_reap(r, out + got, n - got);
        assert_true(k > 0);
        got += k;
    }
}

static void test_mode_matches_request(void **state)
{
    fixture *f = *state;
    assert_int_equal(wr_ring_is_uring(f->r), want_uring);
    assert_int_equal(wr_ring_inflight(f->r), 0);
}

static void test_write_linked_fdatasync_round_trip(void **state)
{
    fixture *f = *state;
    char data[4096], back[4096];
    wr_cqe c[2];

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(wr_ring_write(f->r, f->fd, data, sizeof data, 512, WR_RING_LINK, 11), WR_OK);
    assert_int_equal(wr_ring_fdatasync(f->r, f->fd, 0, 12), WR_OK);
    assert_int_equal(wr_ring_inflight(f->r), 2);
    reap_n(f->r, c, 2);
    assert_int_equal(wr_ring_inflight(f->r), 0);
    /* a link chain completes in order */
    assert_true(c[0].tag == 11);
    assert_int_equal(c[0].res, (int32_t)sizeof data);
    assert_true(c[1].tag == 12);
    assert_int_equal(c[1].res, 0);
    assert_int_equal(pread(f->fd, back, sizeof back, 512), (ssize_t)sizeof back);
    assert_memory_equal(back, data, sizeof data);
    /* and back through the ring */
    memset(back, 0, sizeof back);
    assert_int_equal(wr_ring_read(f->r, f->fd, back, sizeof back, 512, 0, 13), WR_OK);
    reap_n(f->r, c, 1);
    assert_true(c[0].tag == 13);
    assert_int_equal(c[0].res, (int32_t)sizeof back);
    assert_memory_equal(back, data, sizeof data);
}

static void test_many_tagged_ops_each_reaped_once(void **state)
{
    fixture *f = *state;
    enum { N = 1000 };
    static uint8_t seen[N];
    static uint64_t vals[N];
    unsigned queued = 0, reaped = 0;
    wr_cqe c[16];

    memset(seen, 0, sizeof seen);
    while (reaped < N) {
        /* queue until the ring pushes back, then submit and reap a little */
        while (queued < N) {
            vals[queued] = queued * 0x9e3779b97f4a7c15ull;
            /* tags use the full 64-bit range */
            wr_status s = wr_ring_write(f->r, f->fd, &vals[queued], 8, 8 * (uint64_t)queued,
                                        queued % 3 == 0 ? WR_RING_DRAIN : 0, UINT64_MAX - queued);
            if (s == WR_AGAIN)
                break;
            assert_int_equal(s, WR_OK);
            queued++;
        }
        assert_int_equal(wr_ring_submit(f->r, 1), WR_OK);
        unsigned k = wr_ring_reap(f->r, c, 16);
        assert_true(k > 0);
        for (unsigned i = 0; i < k; i++) {
            uint64_t idx = UINT64_MAX - c[i].tag;
            assert_true(idx < queued);
            assert_int_equal(seen[idx], 0);
            seen[idx] = 1;
            assert_int_equal(c[i].res, 8);
        }
        reaped += k;
        assert_int_equal(wr_ring_inflight(f->r), queued - reaped);
    }
    assert_int_equal(wr_ring_submit(f->r, 0), WR_OK);
    assert_int_equal(wr_ring_reap(f->r, c, 16), 0);
    for (unsigned i = 0; i < N; i++) {
        uint64_t v;
        assert_int_equal(pread(f->fd, &v, 8, 8 * (off_t)i), 8);
        assert_true(v == vals[i]);
    }
}

static void test_ring_full_returns_again(void **state)
{
    fixture *f = *state;
    wr_cqe c[64];
    unsigned n = 0;
    wr_status s;
    uint8_t byte = 1;

    while ((s = wr_ring_write(f->r, f->fd, &byte, 1, 0, 0, n)) == WR_OK)
        n++;
    assert_int_equal(s, WR_AGAIN);
    assert_int_equal(n, 64);
    reap_n(f->r, c, 64);
    assert_int_equal(wr_ring_write(f->r, f->fd, &byte, 1, 0, 0, 0), WR_OK);
    reap_n(f->r, c, 1);
}

static void test_bad_fd_write_fails_and_cancels_linked_sync(void **state)
{
    fixture *f = *state;
    char data[16] = "doomed";
    wr_cqe c[4];

    /* chain: bad write -> sync -> sync; then an unlinked write that must still run */
    assert_int_equal(wr_ring_write(f->r, 12345, data, sizeof data, 0, WR_RING_LINK, 1), WR_OK);
    assert_int_equal(wr_ring_fdatasync(f->r, f->fd, WR_RING_LINK, 2), WR_OK);
    assert_int_equal(wr_ring_fdatasync(f->r, f->fd, 0, 3), WR_OK);
    assert_int_equal(wr_ring_write(f->r, f->fd, data, sizeof data, 0, 0, 4), WR_OK);
    reap_n(f->r, c, 4);
    int32_t res[5] = {0};
    for (int i = 0; i < 4; i++) {
        assert_true(c[i].tag >= 1 && c[i].tag <= 4);
        res[c[i].tag] = c[i].res;
    }
    assert_int_equal(res[1], -EBADF);
    assert_int_equal(res[2], -ECANCELED);
    assert_int_equal(res[3], -ECANCELED);
    assert_int_equal(res[4], (int32_t)sizeof data);
}

static void test_short_read_breaks_link_chain(void **state)
{
    fixture *f = *state;
    char buf[100];
    wr_cqe c[2];

    /* the file is empty: a read returns 0 < len, which fails the link like in the kernel */
    assert_int_equal(ftruncate(f->fd, 10), 0);
    assert_int_equal(wr_ring_read(f->r, f->fd, buf, sizeof buf, 0, WR_RING_LINK, 1), WR_OK);
    assert_int_equal(wr_ring_fdatasync(f->r, f->fd, 0, 2), WR_OK);
    reap_n(f->r, c, 2);
    assert_true(c[0].tag == 1);
    assert_int_equal(c[0].res, 10);
    assert_true(c[1].tag == 2);
    assert_int_equal(c[1].res, -ECANCELED);
}

static void test_pwrite_all_and_pread_all_round_trip(void **state)
{
    fixture *f = *state;
    enum { LEN = 1 << 20 };
    uint8_t *data = malloc(LEN), *back = malloc(LEN);
    size_t got = 0;
    int err = -1;
    wr_cqe c[1];

    assert_non_null(data);
    assert_non_null(back);
    for (size_t i = 0; i < LEN; i++)
        data[i] = (uint8_t)(i * 7);
    /* a caller op still queued (with a dangling LINK) must not chain into the helper's ops */
    assert_int_equal(wr_ring_write(f->r, f->fd, data, 4, 0, WR_RING_LINK, 77), WR_OK);
    assert_int_equal(wr_ring_pwrite_all(f->r, f->fd, data, LEN, 4096, true, &err), WR_OK);
    assert_int_equal(err, 0);
    assert_int_equal(wr_ring_pread_all(f->r, f->fd, back, LEN, 4096, &got, &err), WR_OK);
    assert_int_equal(got, LEN);
    assert_memory_equal(back, data, LEN);
    /* the caller's completion was kept for the caller, not swallowed by the helpers */
    assert_int_equal(wr_ring_inflight(f->r), 1);
    reap_n(f->r, c, 1);
    assert_true(c[0].tag == 77);
    assert_int_equal(c[0].res, 4);
    /* read past the end: short, reported through got_out, or WR_EOF without it */
    assert_int_equal(wr_ring_pread_all(f->r, f->fd, back, 100, LEN + 4096 - 10, &got, &err), WR_OK);
    assert_int_equal(got, 10);
    assert_int_equal(wr_ring_pread_all(f->r, f->fd, back, 100, LEN + 4096 - 10, NULL, NULL),
                     WR_EOF);
    free(data);
    free(back);
}

static void test_pwrite_all_bad_fd_reports_errno(void **state)
{
    fixture *f = *state;
    int err = 0;

    wr_err_clear();
    assert_int_equal(wr_ring_pwrite_all(f->r, 12345, "x", 1, 0, true, &err), WR_ERR_IO);
    assert_int_equal(err, EBADF);
    assert_non_null(strstr(wr_errmsg(), "12345"));
    assert_int_equal(wr_ring_inflight(f->r), 0);
    /* the ring is still usable */
    assert_int_equal(wr_ring_pwrite_all(f->r, f->fd, "y", 1, 0, false, NULL), WR_OK);
}

static void test_init_rejects_bad_depth_and_survives_nomem(void **state)
{
    (void)state;
    wr_ring *r = (wr_ring *)(uintptr_t)1;
    assert_int_equal(wr_ring_init(0, &r), WR_ERR_INVAL);
    assert_null(r);
    for (uint64_t n = 1; n <= 4; n++) {
        wr_alloc_fail_at(n, false);
        wr_status s = wr_ring_init(8, &r);
        wr_alloc_fail_at(0, false);
        if (s == WR_OK) {
            wr_ring_destroy(r);
            continue;
        }
        assert_int_equal(s, WR_ERR_NOMEM);
        assert_null(r);
    }
    wr_ring_destroy(NULL);
}

static void *thread_ring_user(void *arg)
{
    wr_ring *r = wr_ring_thread();
    *(wr_ring **)arg = r;
    if (r == NULL || wr_ring_thread() != r)
        return NULL;
    return wr_ring_is_uring(r) == want_uring ? r : NULL;
}

static void test_thread_ring_is_per_thread_and_stable(void **state)
{
    (void)state;
    pthread_t t;
    wr_ring *theirs = NULL;
    void *ok = NULL;
    wr_ring *mine = wr_ring_thread();

    assert_non_null(mine);
    assert_ptr_equal(wr_ring_thread(), mine);
    assert_int_equal(pthread_create(&t, NULL, thread_ring_user, &theirs), 0);
    assert_int_equal(pthread_join(t, &ok), 0); /* its ring is destroyed at thread exit */
    assert_non_null(ok);
    assert_true(theirs != mine);
}

/* A forked child must not use (and so corrupt) the ring it inherited: its shared queues are
 * the parent's. The child gets a ring of its own and the parent's keeps working. */
static void test_forked_child_gets_its_own_ring(void **state)
{
    char path[] = "/tmp/test_wr_ring_fork.XXXXXX";
    int fd = mkstemp(path), status;
    wr_ring *mine = wr_ring_thread();
    pid_t pid;
    char buf[8];
    (void)state;
    assert_true(fd >= 0);
    assert_non_null(mine);
    assert_int_equal(wr_ring_pwrite_all(mine, fd, "parent1", 7, 0, true, NULL), WR_OK);
    pid = fork();
    if (pid == 0) {
        wr_ring *r = wr_ring_thread();
        for (int i = 0; i < 50; i++) /* enough ops to wrap a shared queue if it were shared */
            if (r == NULL || r == mine ||
                wr_ring_pwrite_all(r, fd, "child!!", 7, 7, false, NULL) != WR_OK)
                _exit(1);
        _exit(0);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(wr_ring_pwrite_all(mine, fd, "parent2", 7, 14, true, NULL), WR_OK);
    assert_int_equal(pread(fd, buf, 7, 14), 7);
    assert_memory_equal(buf, "parent2", 7);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mode_matches_request, setup, teardown),
        cmocka_unit_test(test_forked_child_gets_its_own_ring),
        cmocka_unit_test_setup_teardown(test_write_linked_fdatasync_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_tagged_ops_each_reaped_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_full_returns_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fd_write_fails_and_cancels_linked_sync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_short_read_breaks_link_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pwrite_all_and_pread_all_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pwrite_all_bad_fd_reports_errno, setup, teardown),
        cmocka_unit_test(test_init_rejects_bad_depth_and_survives_nomem),
        cmocka_unit_test(test_thread_ring_is_per_thread_and_stable),
    };
    const char *e = getenv("WEIR_NO_URING");

    want_uring = !(e != NULL && e[0] != '\0' && strcmp(e, "0") != 0);
    if (want_uring && !wr_uring_supported()) {
        fprintf(stderr, "io_uring is not available here: skipping the io_uring-mode tests\n");
        return 77;
    }
    return cmocka_run_group_tests_name(want_uring ? "wr_ring_uring" : "wr_ring_fallback", tests,
                                       NULL, NULL);
}

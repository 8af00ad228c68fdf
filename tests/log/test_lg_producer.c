/* tests/log/test_lg_producer.c -- the producer table alone: the sequence rules, the
 * duplicate cache, expiry of idle producers (the table still finds the survivors), and the
 * snapshot round trip with damage detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lg_testutil.h"

static void test_sequence_rules(void **state)
{
    lg_prodtab t = {0};
    uint64_t dup = 0;
    (void)state;
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 0, 0, 10, 100, 1, &dup), WR_OK);
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 0, 10, 5, 110, 1, &dup), WR_OK);
    /* the same batch again: a duplicate with its first offsets */
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 0, 0, 10, 999, 1, &dup), WR_EOF);
    assert_int_equal(dup, 100);
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 0, 10, 5, 999, 1, &dup), WR_EOF);
    assert_int_equal(dup, 110);
    /* a gap */
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 0, 20, 1, 999, 1, &dup), WR_ERR_SEQUENCE);
    assert_non_null(strstr(wr_errmsg(), "expected sequence 15, got 20"));
    /* an older epoch is fenced; a newer one must start at 0 */
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 1, 3, 1, 999, 1, &dup), WR_ERR_SEQUENCE);
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 1, 0, 1, 200, 1, &dup), WR_OK);
    assert_int_equal(lg_prodtab_check(&t, 0, 7, 0, 15, 1, 999, 1, &dup), WR_ERR_FENCED);
    lg_prodtab_fini(&t);
}

static void test_expiry_keeps_survivors_findable(void **state)
{
    lg_prodtab t = {0};
    uint64_t dup;
    (void)state;
    /* 1000 producers; the even ones are old. */
    for (uint64_t pid = 0; pid < 1000; pid++)
        assert_int_equal(lg_prodtab_check(&t, 0, pid, 0, 0, 1, pid, pid % 2 ? 5000 : 10, &dup),
                         WR_OK);
    assert_int_equal(lg_prodtab_expire(&t, 1000), 500);
    assert_int_equal(t.cnt, 500);
    for (uint64_t pid = 1; pid < 1000; pid += 2) { /* survivors: still known (duplicate) */
        assert_int_equal(lg_prodtab_check(&t, 0, pid, 0, 0, 1, 0, 6000, &dup), WR_EOF);
        assert_int_equal(dup, pid);
    }
    /* an expired producer is new again: any sequence is accepted */
    assert_int_equal(lg_prodtab_check(&t, 0, 2, 0, 55, 1, 7, 6000, &dup), WR_OK);
    lg_prodtab_fini(&t);
}

static void test_snapshot_roundtrip_and_damage(void **state)
{
    char dir[4096], path[4400];
    lg_prodtab t = {0}, u = {0};
    uint64_t dup, off;
    (void)state;
    lgt_tmpdir(dir, sizeof(dir));
    for (uint64_t pid = 0; pid < 50; pid++)
        assert_int_equal(lg_prodtab_check(&t, 0, pid, 2, 0, 3, pid * 3, 1, &dup), WR_OK);
    assert_int_equal(lg_prodtab_save(&t, dir, 150), WR_OK);
    assert_int_equal(lg_prodtab_save(&t, dir, 100), WR_OK);
    assert_int_equal(lg_prodtab_load(&u, dir, UINT64_MAX, &off), WR_OK);
    assert_int_equal(off, 150); /* the newest */
    assert_int_equal(u.cnt, 50);
    assert_int_equal(lg_prodtab_check(&u, 0, 9, 2, 0, 3, 0, 1, &dup), WR_EOF);
    assert_int_equal(dup, 27);
    assert_int_equal(lg_prodtab_load(&u, dir, 120, &off), WR_OK);
    assert_int_equal(off, 100); /* none newer than the log's end */
    snprintf(path, sizeof(path), "%s/%020d.snap", dir, 150);
    lgt_flip(path, 40);
    assert_int_equal(lg_prodtab_load(&u, dir, UINT64_MAX, &off), WR_OK);
    assert_int_equal(off, 100); /* the damaged one is skipped */
    lg_prodtab_fini(&t);
    lg_prodtab_fini(&u);
    lgt_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence_rules),
        cmocka_unit_test(test_expiry_keeps_survivors_findable),
        cmocka_unit_test(test_snapshot_roundtrip_and_damage),
    };
    return cmocka_run_group_tests_name("lg_producer", tests, NULL, NULL);
}

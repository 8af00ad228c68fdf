/* tests/kv/test_kv_version.c -- version edits (round trip, validation), applying them
 * (level invariants), and the MANIFEST: recovery equals what was logged, a torn last record
 * at every byte falls back to the previous edit, damage before valid records and a bad
 * CURRENT are errors naming the file, and unknown fields are unsupported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_version.h"

static kv_fmeta *file(uint64_t num, const char *lo, const char *hi)
{
    uint8_t a[64], b[64];
    size_t na = kv_ikey_put(a, wr_bytes_str(lo), 100, KV_TYPE_PUT);
    size_t nb = kv_ikey_put(b, wr_bytes_str(hi), 1, KV_TYPE_PUT);
    kv_fmeta *f;
    assert_int_equal(kv_fmeta_create(num, num * 1000, wr_bytes_of(a, na), wr_bytes_of(b, nb), &f),
                     WR_OK);
    f->min_seq = 1;
    f->max_seq = 100;
    f->entries = num * 10;
    return f;
}

static void add(kv_edit *e, uint32_t level, uint64_t num, const char *lo, const char *hi)
{
    kv_fmeta *f = file(num, lo, hi);
    assert_int_equal(kv_edit_add_file(e, level, f), WR_OK);
    kv_fmeta_unref(f);
}

static void test_edit_roundtrip_and_truncations(void **state)
{
    kv_edit e, d;
    wr_buf b = {0};
    (void)state;
    kv_edit_init(&e);
    e.has_next_file = e.has_last_seq = e.has_applied = true;
    e.next_file = 77;
    e.last_seq = 1u << 30;
    e.applied = 12345;
    add(&e, 0, 5, "a", "m");
    add(&e, 2, 9, "n", "z");
    assert_int_equal(kv_edit_del_file(&e, 1, 3), WR_OK);
    assert_int_equal(kv_edit_encode(&e, &b), WR_OK);
    kv_edit_init(&d);
    assert_int_equal(kv_edit_decode(wr_bytes_of(b.ptr, b.len), &d), WR_OK);
    assert_true(d.has_next_file && d.has_last_seq && d.has_applied && !d.has_log_number);
    assert_int_equal(d.next_file, 77);
    assert_int_equal(d.last_seq, 1u << 30);
    assert_int_equal(d.applied, 12345);
    assert_int_equal(d.add_cnt, 2);
    assert_int_equal(d.adds[1].level, 2);
    assert_int_equal(d.adds[1].f->number, 9);
    assert_int_equal(d.adds[1].f->size, 9000);
    assert_int_equal(d.adds[1].f->entries, 90);
    assert_memory_equal(d.adds[1].f->largest.ptr, e.adds[1].f->largest.ptr,
                        e.adds[1].f->largest.len);
    assert_int_equal(d.del_cnt, 1);
    assert_int_equal(d.dels[0].number, 3);
    kv_edit_fini(&d);
    /* Every truncation inside a field is refused, never misread. */
    for (size_t n = 1; n < b.len; n++) {
        wr_status st;
        kv_edit_init(&d);
        st = kv_edit_decode(wr_bytes_of(b.ptr, n), &d);
        if (st == WR_OK) /* cut exactly between fields: a shorter but valid edit */
            assert_true(d.add_cnt + d.del_cnt < 3);
        else
            assert_int_equal(st, WR_ERR_CORRUPT);
        kv_edit_fini(&d);
    }
    /* An unknown field: written by a newer weir. */
    b.len = 0;
    assert_int_equal(wr_buf_append(&b, "\x2a\x01", 2), WR_OK);
    kv_edit_init(&d);
    assert_int_equal(kv_edit_decode(wr_bytes_of(b.ptr, b.len), &d), WR_ERR_UNSUPPORTED);
    kv_edit_fini(&d);
    kv_edit_fini(&e);
    wr_buf_fini(&b);
}

static void test_apply_keeps_level_invariants(void **state)
{
    kv_version *v0, *v1, *v2;
    kv_edit e;
    (void)state;
    assert_int_equal(kv_version_create(&v0), WR_OK);
    kv_edit_init(&e);
    add(&e, 0, 7, "a", "z");
    add(&e, 0, 4, "c", "d"); /* L0 may overlap; ordered by number */
    add(&e, 1, 8, "m", "p");
    add(&e, 1, 6, "a", "f");
    assert_int_equal(kv_version_apply(v0, &e, &v1), WR_OK);
    kv_edit_fini(&e);
    assert_int_equal(v1->cnt[0], 2);
    assert_int_equal(v1->files[0][0]->number, 4);
    assert_int_equal(v1->files[1][0]->number, 6); /* by smallest key */
    assert_int_equal(kv_version_level_bytes(v1, 1), 14000);
    /* overlap on L1 */
    kv_edit_init(&e);
    add(&e, 1, 9, "o", "q");
    assert_int_equal(kv_version_apply(v1, &e, &v2), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "overlap"));
    kv_edit_fini(&e);
    /* deleting a file the level does not hold */
    kv_edit_init(&e);
    assert_int_equal(kv_edit_del_file(&e, 2, 6), WR_OK);
    assert_int_equal(kv_version_apply(v1, &e, &v2), WR_ERR_CORRUPT);
    kv_edit_fini(&e);
    /* a compaction: 4 and 6 out, 10 in */
    kv_edit_init(&e);
    assert_int_equal(kv_edit_del_file(&e, 0, 4), WR_OK);
    assert_int_equal(kv_edit_del_file(&e, 1, 6), WR_OK);
    add(&e, 1, 10, "a", "g");
    assert_int_equal(kv_version_apply(v1, &e, &v2), WR_OK);
    kv_edit_fini(&e);
    assert_int_equal(v2->cnt[0], 1);
    assert_int_equal(v2->cnt[1], 2);
    assert_int_equal(v2->files[1][0]->number, 10);
    assert_int_equal(v1->cnt[1], 2); /* the old version is untouched */
    kv_version_unref(v0);
    kv_version_unref(v1);
    kv_version_unref(v2);
}

static char dir[64];

static void write_manifest(long *ends)
{
    kv_manifest_state s = {0};
    kv_manifest *m;
    char path[128];
    snprintf(path, sizeof(path), "%s/MANIFEST-000001", dir);
    unlink(path); /* start over: MANIFEST numbers are never reused within a store */
    assert_int_equal(kv_version_create(&s.version), WR_OK);
    s.next_file = 2;
    assert_int_equal(kv_manifest_create(dir, 1, &s, &m), WR_OK);
    ends[0] = (long)kv_manifest_bytes(m);
    for (int i = 0; i < 4; i++) {
        kv_edit e;
        char lo[8], hi[8];
        kv_edit_init(&e);
        snprintf(lo, sizeof(lo), "k%d0", i);
        snprintf(hi, sizeof(hi), "k%d9", i);
        add(&e, 1, 10 + (uint64_t)i, lo, hi);
        e.has_last_seq = true;
        e.last_seq = 100 * ((uint64_t)i + 1);
        assert_int_equal(kv_manifest_log(m, &e), WR_OK);
        ends[i + 1] = (long)kv_manifest_bytes(m);
        kv_edit_fini(&e);
    }
    kv_manifest_close(m);
    kv_manifest_state_fini(&s);
}

static void test_manifest_recover_torn_and_damaged(void **state)
{
    char path[128], cmd[128];
    long ends[5];
    kv_manifest_state r;
    FILE *f;
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_kv_version.XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(kv_manifest_recover(dir, &r), WR_ERR_NOTFOUND); /* a new store */
    write_manifest(ends);
    assert_int_equal(kv_manifest_recover(dir, &r), WR_OK);
    assert_int_equal(r.manifest_number, 1);
    assert_int_equal(r.version->cnt[1], 4);
    assert_int_equal(r.last_seq, 400);
    assert_int_equal(r.next_file, 2);
    kv_manifest_state_fini(&r);
    snprintf(path, sizeof(path), "%s/MANIFEST-000001", dir);
    for (long cut = ends[3]; cut < ends[4]; cut++) { /* torn last edit: it never happened */
        assert_int_equal(truncate(path, cut), 0);
        assert_int_equal(kv_manifest_recover(dir, &r), WR_OK);
        assert_int_equal(r.version->cnt[1], 3);
        assert_int_equal(r.last_seq, 300);
        kv_manifest_state_fini(&r);
        write_manifest(ends);
    }
    f = fopen(path, "r+b"); /* damage in the middle: refused, naming the file */
    fseek(f, ends[1] + 18, SEEK_SET);
    fputc('#', f);
    fclose(f);
    assert_int_equal(kv_manifest_recover(dir, &r), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "MANIFEST-000001"));
    write_manifest(ends);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    f = fopen(path, "wb");
    fputs("garbage", f);
    fclose(f);
    assert_int_equal(kv_manifest_recover(dir, &r), WR_ERR_CORRUPT);
    assert_non_null(strstr(wr_errmsg(), "CURRENT"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_roundtrip_and_truncations),
        cmocka_unit_test(test_apply_keeps_level_invariants),
        cmocka_unit_test(test_manifest_recover_torn_and_damaged),
    };
    return cmocka_run_group_tests_name("kv_version", tests, NULL, NULL);
}

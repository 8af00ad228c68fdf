/* lg_producer.c -- idempotent producer state per partition, and its snapshot files.
 *
 * For each producer id the table keeps the epoch, the next expected sequence and the last
 * LG_PROD_CACHE batches (base sequence, count, base offset), so a retried batch is answered
 * with the offsets it got the first time instead of being stored twice.
 *
 * Rules for a batch (pid, epoch, base_seq, count) (Kafka's, simplified):
 *   unknown pid              -> accept (new producer, or one whose state retention dropped)
 *   epoch <  known epoch     -> WR_ERR_FENCED
 *   epoch >  known epoch     -> accept only with base_seq 0 (a new incarnation)
 *   same epoch, in the cache -> duplicate
 *   base_seq == next_seq     -> accept
 *   otherwise                -> WR_ERR_SEQUENCE
 *
 * Snapshot "<20-digit offset>.snap" (little-endian; docs/formats/log.md):
 *   0 u32 magic "WRPS", 4 u16 version 1, 6 u16 reserved, 8 u64 offset (state covers every
 *   batch below it), 16 u32 producer count, 20 u32 reserved, 24 entries of 104 bytes:
 *   u64 pid, u16 epoch, u8 ring_len, u8 ring_head, u32 next_seq, i64 last_ms,
 *   5 x {u32 base_seq, u32 count, u64 base_offset}; then u64 XXH3-64 of everything before. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lg_int.h"

#define LG_SNAP_MAGIC   0x53505257u /* "WRPS" */
#define LG_SNAP_VERSION 1
#define LG_SNAP_ENT     (24 + LG_PROD_CACHE * 16)

static size_t slot_of(uint64_t pid, size_t cap)
{
    return (size_t)(wr_xxh3(&pid, sizeof(pid)) & (cap - 1));
}

void lg_prodtab_fini(lg_prodtab *t)
{
    wr_free(t->slots);
    memset(t, 0, sizeof(*t));
}

static wr_status rehash(lg_prodtab *t, size_t ncap)
{
    lg_prod *n = wr_calloc(ncap, sizeof(lg_prod));
    if (n == NULL)
        return WR_ERR_NOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].used)
            continue;
        size_t j = slot_of(t->slots[i].pid, ncap);
        while (n[j].used)
            j = (j + 1) & (ncap - 1);
        n[j] = t->slots[i];
    }
    wr_free(t->slots);
    t->slots = n;
    t->cap = ncap;
    return WR_OK;
}

static lg_prod *find(const lg_prodtab *t, uint64_t pid)
{
    if (t->cap == 0)
        return NULL;
    for (size_t j = slot_of(pid, t->cap);; j = (j + 1) & (t->cap - 1)) {
        if (!t->slots[j].used)
            return NULL;
        if (t->slots[j].pid == pid)
            return &t->slots[j];
    }
}

static wr_status insert(lg_prodtab *t, uint64_t pid, lg_prod **out)
{
    size_t j;
    if ((t->cnt + 1) * 4 > t->cap * 3)
        WR_TRY(rehash(t, t->cap ? t->cap * 2 : 16));
    for (j = slot_of(pid, t->cap); t->slots[j].used; j = (j + 1) & (t->cap - 1))
        ;
    memset(&t->slots[j], 0, sizeof(lg_prod));
    t->slots[j].used = true;
    t->slots[j].pid = pid;
    t->cnt++;
    *out = &t->slots[j];
    return WR_OK;
}

static void remember(lg_prod *pr, uint32_t base_seq, uint32_t count, uint64_t base_offset)
{
    uint8_t i = (uint8_t)((pr->ring_head + pr->ring_len) % LG_PROD_CACHE);
    if (pr->ring_len == LG_PROD_CACHE) {
        i = pr->ring_head;
        pr->ring_head = (uint8_t)((pr->ring_head + 1) % LG_PROD_CACHE);
    } else {
        pr->ring_len++;
    }
    pr->ring[i].base_seq = base_seq;
    pr->ring[i].count = count;
    pr->ring[i].base_offset = base_offset;
    pr->next_seq = base_seq + count;
}

wr_status lg_prodtab_check(lg_prodtab *t, uint32_t partition, uint64_t pid, uint16_t epoch,
                           uint32_t base_seq, uint32_t count, uint64_t base_offset, int64_t now_ms,
                           uint64_t *dup_base_out)
{
    lg_prod *pr = find(t, pid);

    if (pr == NULL) {
        WR_TRY(insert(t, pid, &pr));
        pr->epoch = epoch;
    } else if (epoch < pr->epoch) {
        return wr_err(WR_ERR_FENCED,
                      "producer %" PRIu64 " on partition %u: epoch %u is older than epoch %u, "
                      "which a newer instance of this producer already uses",
                      pid, partition, epoch, pr->epoch);
    } else if (epoch > pr->epoch) {
        if (base_seq != 0)
            return wr_err(WR_ERR_SEQUENCE,
                          "producer %" PRIu64 " on partition %u: a new epoch %u must start at "
                          "sequence 0, got %u",
                          pid, partition, epoch, base_seq);
        pr->epoch = epoch;
        pr->ring_len = pr->ring_head = 0;
    } else {
        for (uint8_t k = 0; k < pr->ring_len; k++) {
            const uint8_t i = (uint8_t)((pr->ring_head + k) % LG_PROD_CACHE);
            if (pr->ring[i].base_seq == base_seq && pr->ring[i].count == count) {
                *dup_base_out = pr->ring[i].base_offset;
                return WR_EOF;
            }
        }
        if (base_seq != pr->next_seq)
            return wr_err(WR_ERR_SEQUENCE,
                          "producer %" PRIu64 " epoch %u on partition %u: expected sequence %u, "
                          "got %u (%s)",
                          pid, epoch, partition, pr->next_seq, base_seq,
                          base_seq < pr->next_seq ? "an old batch that is no longer remembered"
                                                  : "a batch is missing before this one");
    }
    remember(pr, base_seq, count, base_offset);
    pr->last_ms = now_ms;
    return WR_OK;
}

size_t lg_prodtab_expire(lg_prodtab *t, int64_t before_ms)
{
    size_t gone = 0;
    lg_prod *n;

    for (size_t i = 0; i < t->cap; i++)
        gone += t->slots[i].used && t->slots[i].last_ms < before_ms;
    /* Linear probing cannot leave holes: copy the survivors into a fresh table. Out of
     * memory just postpones the expiry. */
    if (gone == 0 || (n = wr_calloc(t->cap, sizeof(lg_prod))) == NULL)
        return 0;
    for (size_t i = 0; i < t->cap; i++) {
        size_t j;
        if (!t->slots[i].used || t->slots[i].last_ms < before_ms)
            continue;
        for (j = slot_of(t->slots[i].pid, t->cap); n[j].used; j = (j + 1) & (t->cap - 1))
            ;
        n[j] = t->slots[i];
    }
    wr_free(t->slots);
    t->slots = n;
    t->cnt -= gone;
    return gone;
}

wr_status lg_prodtab_apply(lg_prodtab *t, const lg_bhdr *h)
{
    lg_prod *pr;
    if (h->producer_id == LG_NO_PRODUCER)
        return WR_OK;
    if ((pr = find(t, h->producer_id)) == NULL)
        WR_TRY(insert(t, h->producer_id, &pr));
    if (h->producer_epoch != pr->epoch) {
        pr->epoch = h->producer_epoch;
        pr->ring_len = pr->ring_head = 0;
    }
    remember(pr, h->base_seq, h->count, h->base);
    pr->last_ms = h->max_ts;
    return WR_OK;
}

wr_status lg_prodtab_copy(lg_prodtab *dst, const lg_prodtab *src)
{
    lg_prod *n = NULL;
    if (src->cap && (n = wr_malloc(src->cap * sizeof(lg_prod))) == NULL)
        return WR_ERR_NOMEM;
    if (src->cap)
        memcpy(n, src->slots, src->cap * sizeof(lg_prod));
    wr_free(dst->slots);
    dst->slots = n;
    dst->cap = src->cap;
    dst->cnt = src->cnt;
    return WR_OK;
}

wr_status lg_prodtab_save(const lg_prodtab *t, const char *dir, uint64_t offset)
{
    size_t n = 24 + t->cnt * LG_SNAP_ENT + 8;
    uint8_t *b = wr_calloc(1, n), *e;
    char name[32], path[4200];
    wr_status st;

    if (b == NULL)
        return WR_ERR_NOMEM;
    wr_put32(b, LG_SNAP_MAGIC);
    wr_put16(b + 4, LG_SNAP_VERSION);
    wr_put64(b + 8, offset);
    wr_put32(b + 16, (uint32_t)t->cnt);
    e = b + 24;
    for (size_t i = 0; i < t->cap; i++) {
        const lg_prod *pr = &t->slots[i];
        if (!pr->used)
            continue;
        wr_put64(e, pr->pid);
        wr_put16(e + 8, pr->epoch);
        e[10] = pr->ring_len;
        e[11] = pr->ring_head;
        wr_put32(e + 12, pr->next_seq);
        wr_put64(e + 16, (uint64_t)pr->last_ms);
        for (int k = 0; k < LG_PROD_CACHE; k++) {
            wr_put32(e + 24 + k * 16, pr->ring[k].base_seq);
            wr_put32(e + 28 + k * 16, pr->ring[k].count);
            wr_put64(e + 32 + k * 16, pr->ring[k].base_offset);
        }
        e += LG_SNAP_ENT;
    }
    wr_put64(e, wr_xxh3(b, n - 8));
    lg_seg_name(name, sizeof(name), offset, ".snap");
    if ((st = wr_path(path, sizeof(path), "%s/%s", dir, name)) == WR_OK)
        st = wr_file_write_atomic(path, b, n);
    wr_free(b);
    return st;
}

static wr_status decode(lg_prodtab *t, const uint8_t *b, size_t n, uint64_t *offset)
{
    uint32_t cnt;
    if (n < 32 || wr_get32(b) != LG_SNAP_MAGIC || wr_get16(b + 4) != LG_SNAP_VERSION)
        return WR_ERR_CORRUPT;
    cnt = wr_get32(b + 16);
    if (n != 24 + (size_t)cnt * LG_SNAP_ENT + 8 || wr_get64(b + n - 8) != wr_xxh3(b, n - 8))
        return WR_ERR_CORRUPT;
    *offset = wr_get64(b + 8);
    for (uint32_t i = 0; i < cnt; i++) {
        const uint8_t *e = b + 24 + (size_t)i * LG_SNAP_ENT;
        lg_prod *pr;
        if (e[10] > LG_PROD_CACHE || e[11] >= LG_PROD_CACHE)
            return WR_ERR_CORRUPT;
        if (find(t, wr_get64(e)) != NULL)
            return WR_ERR_CORRUPT;
        WR_TRY(insert(t, wr_get64(e), &pr));
        pr->epoch = wr_get16(e + 8);
        pr->ring_len = e[10];
        pr->ring_head = e[11];
        pr->next_seq = wr_get32(e + 12);
        pr->last_ms = (int64_t)wr_get64(e + 16);
        for (int k = 0; k < LG_PROD_CACHE; k++) {
            pr->ring[k].base_seq = wr_get32(e + 24 + k * 16);
            pr->ring[k].count = wr_get32(e + 28 + k * 16);
            pr->ring[k].base_offset = wr_get64(e + 32 + k * 16);
        }
    }
    return WR_OK;
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

wr_status lg_prodtab_load(lg_prodtab *t, const char *dir, uint64_t max_offset, uint64_t *offset_out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t *offs = NULL;
    size_t cnt = 0, cap = 0;
    wr_buf b = {0};
    wr_status st = WR_OK;

    lg_prodtab_fini(t);
    *offset_out = 0;
    if (d == NULL)
        return wr_err(WR_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n != 25 || strcmp(de->d_name + 20, ".snap") != 0)
            continue;
        if (cnt == cap) {
            uint64_t *no = wr_realloc(offs, (cap = cap ? cap * 2 : 16) * sizeof(*no));
            if (no == NULL) {
                closedir(d);
                wr_free(offs);
                return WR_ERR_NOMEM;
            }
            offs = no;
        }
        offs[cnt++] = strtoull(de->d_name, NULL, 10);
    }
    closedir(d);
    if (cnt > 1) /* offs is NULL when there is no snapshot; qsort's array is nonnull */
        qsort(offs, cnt, sizeof(offs[0]), cmp_u64_desc);
    for (size_t i = 0; i < cnt; i++) {
        char name[32], path[4200];
        uint64_t off;
        if (offs[i] > max_offset)
            continue;
        lg_seg_name(name, sizeof(name), offs[i], ".snap");
        if (wr_path(path, sizeof(path), "%s/%s", dir, name) != WR_OK)
            continue;
        if ((st = wr_file_read(path, &b)) != WR_OK) {
            WR_LOGW("%s: cannot read producer snapshot: %s", path, wr_errmsg());
            continue;
        }
        if ((st = decode(t, b.ptr, b.len, &off)) == WR_OK && off == offs[i]) {
            *offset_out = off;
            break;
        }
        WR_LOGW("%s: producer snapshot is damaged; using an older one and rescanning", path);
        lg_prodtab_fini(t);
        st = WR_OK;
    }
    wr_buf_fini(&b);
    wr_free(offs);
    return st == WR_ERR_NOMEM ? st : WR_OK;
}

/* lg_group.c -- consumer-group offsets and named pins; the low watermark.
 *
 * <topic>/groups/<group> and <topic>/pins/<holder> share one format (little-endian;
 * docs/formats/log.md): u32 magic ("WRGO" groups, "WRPN" pins), u16 version 1, u16 reserved,
 * u32 partition count P, u32 reserved, P x u64 offset (UINT64_MAX: none), u64 XXH3-64 of all
 * bytes before it. Each update rewrites the file atomically (temp, fsync, rename, fsync dir).
 * The low watermark of a partition is the smallest offset any group or pin holds for it;
 * retention never deletes a segment that holds offsets at or above it. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>

#include "lg_int.h"

#define LG_GROUP_MAGIC 0x4f475257u /* "WRGO" */
#define LG_PIN_MAGIC   0x4e505257u /* "WRPN" */

static wr_status file_path(lg_topic *t, const char *kind, const char *name, char *dst, size_t cap)
{
    size_t n = strlen(name);
    if (!lg_name_valid(name) || (n > 4 && strcmp(name + n - 4, ".tmp") == 0))
        return wr_err(WR_ERR_INVAL,
                      "invalid %s name '%s': use 1..%d characters from [A-Za-z0-9._-]",
                      kind[0] == 'g' ? "group" : "pin holder", name, LG_TOPIC_NAME_MAX);
    return wr_path(dst, cap, "%s/%s/%s", t->dir, kind, name);
}

/* Load offsets (all LG_NO_OFFSET when the file does not exist). */
static wr_status load(lg_topic *t, const char *path, uint32_t magic, uint64_t *offs)
{
    wr_buf b = {0};
    uint32_t P = t->cfg.partitions;
    wr_status st = wr_file_read(path, &b);

    for (uint32_t i = 0; i < P; i++)
        offs[i] = LG_NO_OFFSET;
    if (st == WR_ERR_NOTFOUND)
        return WR_OK;
    if (st != WR_OK)
        return st;
    if (b.len != 16 + (size_t)P * 8 + 8 || wr_get32(b.ptr) != magic || wr_get16(b.ptr + 4) != 1 ||
        wr_get32(b.ptr + 8) != P || wr_get64(b.ptr + b.len - 8) != wr_xxh3(b.ptr, b.len - 8)) {
        wr_buf_fini(&b);
        return wr_err(WR_ERR_CORRUPT,
                      "%s: damaged (bad size, magic or checksum); delete it to reset those "
                      "offsets",
                      path);
    }
    for (uint32_t i = 0; i < P; i++)
        offs[i] = wr_get64(b.ptr + 16 + (size_t)i * 8);
    wr_buf_fini(&b);
    return WR_OK;
}

static wr_status store(lg_topic *t, const char *path, uint32_t magic, const uint64_t *offs)
{
    uint32_t P = t->cfg.partitions;
    size_t n = 16 + (size_t)P * 8 + 8;
    uint8_t *b = wr_calloc(1, n);
    wr_status st;
    if (b == NULL)
        return WR_ERR_NOMEM;
    wr_put32(b, magic);
    wr_put16(b + 4, 1);
    wr_put32(b + 8, P);
    for (uint32_t i = 0; i < P; i++)
        wr_put64(b + 16 + (size_t)i * 8, offs[i]);
    wr_put64(b + n - 8, wr_xxh3(b, n - 8));
    st = wr_file_write_atomic(path, b, n);
    wr_free(b);
    return st;
}

static wr_status update(lg_topic *t, const char *kind, uint32_t magic, const char *name,
                        uint32_t partition, uint64_t off)
{
    char path[4200];
    uint64_t *offs;
    wr_status st;

    /* Allowed on read-only opens: a consumer commits beside the process that appends.
     * Group files are replaced atomically, so a reader never sees a torn one. */
    if (partition >= t->cfg.partitions)
        return wr_err(WR_ERR_INVAL, "partition %u does not exist (topic %s has %u)", partition,
                      t->name, t->cfg.partitions);
    WR_TRY(file_path(t, kind, name, path, sizeof(path)));
    if ((offs = wr_malloc(t->cfg.partitions * sizeof(*offs))) == NULL)
        return WR_ERR_NOMEM;
    pthread_mutex_lock(&t->maint_mu); /* serialise read-modify-write of the file */
    if ((st = load(t, path, magic, offs)) == WR_OK) {
        offs[partition] = off;
        st = store(t, path, magic, offs);
    }
    pthread_mutex_unlock(&t->maint_mu);
    wr_free(offs);
    return st;
}

wr_status lg_group_commit(lg_topic *t, const char *group, uint32_t partition, uint64_t next_offset)
{
    return update(t, "groups", LG_GROUP_MAGIC, group, partition, next_offset);
}

wr_status lg_pin_set(lg_topic *t, const char *holder, uint32_t partition, uint64_t offset)
{
    return update(t, "pins", LG_PIN_MAGIC, holder, partition, offset);
}

wr_status lg_group_fetch(lg_topic *t, const char *group, uint32_t partition, uint64_t *out)
{
    char path[4200];
    uint64_t *offs;
    wr_status st;

    *out = LG_NO_OFFSET;
    if (partition >= t->cfg.partitions)
        return wr_err(WR_ERR_INVAL, "partition %u does not exist", partition);
    WR_TRY(file_path(t, "groups", group, path, sizeof(path)));
    if ((offs = wr_malloc(t->cfg.partitions * sizeof(*offs))) == NULL)
        return WR_ERR_NOMEM;
    if ((st = load(t, path, LG_GROUP_MAGIC, offs)) == WR_OK)
        *out = offs[partition];
    wr_free(offs);
    return st;
}

wr_status lg_group_delete(lg_topic *t, const char *group)
{
    char path[4200];
    WR_TRY(file_path(t, "groups", group, path, sizeof(path)));
    if (t->io->unlink(t->io->ctx, path) < 0)
        return wr_err(WR_ERR_NOTFOUND, "group '%s' has no committed offsets in topic %s", group,
                      t->name);
    return wr_fsync_dir(t->dir);
}

static void min_of_dir(lg_topic *t, const char *kind, uint32_t magic, uint32_t partition,
                       uint64_t *lw, uint64_t *scratch)
{
    char dir[4200];
    DIR *d;
    struct dirent *de;
    snprintf(dir, sizeof(dir), "%s/%s", t->dir, kind);
    if ((d = opendir(dir)) == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[4500];
        size_t n = strlen(de->d_name);
        if (!lg_name_valid(de->d_name) || (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0))
            continue; /* a commit in progress, or one a crash interrupted */
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (load(t, path, magic, scratch) != WR_OK) {
            /* A damaged holder pins everything: losing data is worse than keeping it. */
            WR_LOGW("%s", wr_errmsg());
            *lw = 0;
            continue;
        }
        if (scratch[partition] < *lw)
            *lw = scratch[partition];
    }
    closedir(d);
}

uint64_t lg_low_watermark(lg_topic *t, uint32_t partition)
{
    uint64_t lw = LG_NO_OFFSET;
    uint64_t *scratch = wr_malloc(t->cfg.partitions * sizeof(uint64_t));
    if (scratch == NULL)
        return 0; /* pin everything */
    min_of_dir(t, "groups", LG_GROUP_MAGIC, partition, &lw, scratch);
    min_of_dir(t, "pins", LG_PIN_MAGIC, partition, &lw, scratch);
    wr_free(scratch);
    return lw;
}

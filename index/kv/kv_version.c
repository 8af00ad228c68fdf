/* kv_version.c -- versions, version edits and the MANIFEST (see kv_version.h).
 *
 * Edit encoding (docs/formats/manifest.md): a sequence of fields, each a uvarint tag then its
 * values (all uvarints unless said):
 *   1 next file number | 2 last sequence | 3 WAL number | 4 applied log offset
 *   5 add file: level, number, size, min seq, max seq, entries, tombstones,
 *     smallest (uvarint length + bytes), largest (uvarint length + bytes)
 *   6 delete file: level, number
 * Unknown tags are WR_ERR_UNSUPPORTED: a newer weir wrote this MANIFEST.
 * The MANIFEST file is a record file (kv_wal.c framing, magic "WRKM") of encoded edits; the
 * first record of every MANIFEST is a full snapshot. CURRENT holds "MANIFEST-<number>\n". */
#include "kv_version.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

enum { TAG_NEXT = 1, TAG_SEQ, TAG_LOG, TAG_APPLIED, TAG_ADD, TAG_DEL };

wr_status kv_fmeta_create(uint64_t number, uint64_t size, wr_bytes smallest, wr_bytes largest,
                          kv_fmeta **out)
{
    kv_fmeta *f = wr_calloc(1, sizeof(*f));
    *out = NULL;
    if (f == NULL)
        return WR_ERR_NOMEM;
    f->number = number;
    f->size = size;
    atomic_store(&f->refs, 1);
    if (wr_buf_append(&f->smallest, smallest.ptr, smallest.len) != WR_OK ||
        wr_buf_append(&f->largest, largest.ptr, largest.len) != WR_OK) {
        kv_fmeta_unref(f);
        return WR_ERR_NOMEM;
    }
    *out = f;
    return WR_OK;
}

void kv_fmeta_ref(kv_fmeta *f)
{
    atomic_fetch_add(&f->refs, 1);
}

void kv_fmeta_unref(kv_fmeta *f)
{
    if (f == NULL || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    if (f->on_free)
        f->on_free(f->on_free_ctx, f->number);
    wr_buf_fini(&f->smallest);
    wr_buf_fini(&f->largest);
    wr_free(f);
}

wr_status kv_version_create(kv_version **out)
{
    kv_version *v = wr_calloc(1, sizeof(*v));
    *out = v;
    if (v == NULL)
        return WR_ERR_NOMEM;
    atomic_store(&v->refs, 1);
    return WR_OK;
}

void kv_version_ref(kv_version *v)
{
    atomic_fetch_add(&v->refs, 1);
}

void kv_version_unref(kv_version *v)
{
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    for (int l = 0; l < KV_LEVELS; l++) {
        for (size_t i = 0; i < v->cnt[l]; i++)
            kv_fmeta_unref(v->files[l][i]);
        wr_free(v->files[l]);
    }
    wr_free(v);
}

uint64_t kv_version_level_bytes(const kv_version *v, int level)
{
    uint64_t n = 0;
    for (size_t i = 0; i < v->cnt[level]; i++)
        n += v->files[level][i]->size;
    return n;
}

void kv_edit_init(kv_edit *e)
{
    memset(e, 0, sizeof(*e));
}

void kv_edit_fini(kv_edit *e)
{
    for (size_t i = 0; i < e->add_cnt; i++)
        kv_fmeta_unref(e->adds[i].f);
    wr_free(e->adds);
    wr_free(e->dels);
    kv_edit_init(e);
}

static wr_status grow(void **arr, size_t *cap, size_t cnt, size_t esz)
{
    void *n;
    if (cnt < *cap)
        return WR_OK;
    if ((n = wr_realloc(*arr, (*cap ? *cap * 2 : 8) * esz)) == NULL)
        return WR_ERR_NOMEM;
    *arr = n;
    *cap = *cap ? *cap * 2 : 8;
    return WR_OK;
}

wr_status kv_edit_add_file(kv_edit *e, uint32_t level, kv_fmeta *f)
{
    if (level >= KV_LEVELS)
        return wr_err(WR_ERR_INVAL, "level %u does not exist", level);
    WR_TRY(grow((void **)&e->adds, &e->add_cap, e->add_cnt, sizeof(*e->adds)));
    kv_fmeta_ref(f);
    e->adds[e->add_cnt].level = level;
    e->adds[e->add_cnt++].f = f;
    return WR_OK;
}

wr_status kv_edit_del_file(kv_edit *e, uint32_t level, uint64_t number)
{
    if (level >= KV_LEVELS)
        return wr_err(WR_ERR_INVAL, "level %u does not exist", level);
    WR_TRY(grow((void **)&e->dels, &e->del_cap, e->del_cnt, sizeof(*e->dels)));
    e->dels[e->del_cnt].level = level;
    e->dels[e->del_cnt++].number = number;
    return WR_OK;
}

static wr_status put_u(wr_buf *b, uint64_t v)
{
    uint8_t tmp[WR_VARINT_MAX];
    return wr_buf_append(b, tmp, wr_put_uvarint(tmp, v));
}

static wr_status put_b(wr_buf *b, const wr_buf *s)
{
    WR_TRY(put_u(b, s->len));
    return wr_buf_append(b, s->ptr, s->len);
}

wr_status kv_edit_encode(const kv_edit *e, wr_buf *out)
{
    out->len = 0;
    if (e->has_next_file) {
        WR_TRY(put_u(out, TAG_NEXT));
        WR_TRY(put_u(out, e->next_file));
    }
    if (e->has_last_seq) {
        WR_TRY(put_u(out, TAG_SEQ));
        WR_TRY(put_u(out, e->last_seq));
    }
    if (e->has_log_number) {
        WR_TRY(put_u(out, TAG_LOG));
        WR_TRY(put_u(out, e->log_number));
    }
    if (e->has_applied) {
        WR_TRY(put_u(out, TAG_APPLIED));
        WR_TRY(put_u(out, e->applied));
    }
    for (size_t i = 0; i < e->del_cnt; i++) {
        WR_TRY(put_u(out, TAG_DEL));
        WR_TRY(put_u(out, e->dels[i].level));
        WR_TRY(put_u(out, e->dels[i].number));
    }
    for (size_t i = 0; i < e->add_cnt; i++) {
        const kv_fmeta *f = e->adds[i].f;
        WR_TRY(put_u(out, TAG_ADD));
        WR_TRY(put_u(out, e->adds[i].level));
        WR_TRY(put_u(out, f->number));
        WR_TRY(put_u(out, f->size));
        WR_TRY(put_u(out, f->min_seq));
        WR_TRY(put_u(out, f->max_seq));
        WR_TRY(put_u(out, f->entries));
        WR_TRY(put_u(out, f->tombstones));
        WR_TRY(put_b(out, &f->smallest));
        WR_TRY(put_b(out, &f->largest));
    }
    return WR_OK;
}

typedef struct rd {
    const uint8_t *p, *end;
    bool bad;
} rd;

static uint64_t get_u(rd *r)
{
    uint64_t v = 0;
    size_t k = r->bad ? 0 : wr_get_uvarint(r->p, r->end, &v);
    if (k == 0)
        r->bad = true;
    r->p += k;
    return v;
}

static wr_bytes get_b(rd *r)
{
    uint64_t n = get_u(r);
    wr_bytes b = {NULL, 0};
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return b;
    }
    b = wr_bytes_of(r->p, (size_t)n);
    r->p += n;
    return b;
}

wr_status kv_edit_decode(wr_bytes in, kv_edit *e)
{
    rd r = {in.ptr, in.ptr + in.len, false};
    while (r.p < r.end && !r.bad) {
        uint64_t tag = get_u(&r);
        switch (tag) {
        case TAG_NEXT:
            e->has_next_file = true;
            e->next_file = get_u(&r);
            break;
        case TAG_SEQ:
            e->has_last_seq = true;
            e->last_seq = get_u(&r);
            break;
        case TAG_LOG:
            e->has_log_number = true;
            e->log_number = get_u(&r);
            break;
        case TAG_APPLIED:
            e->has_applied = true;
            e->applied = get_u(&r);
            break;
        case TAG_DEL: {
            uint64_t level = get_u(&r), num = get_u(&r);
            if (r.bad || level >= KV_LEVELS)
                goto corrupt;
            WR_TRY(kv_edit_del_file(e, (uint32_t)level, num));
            break;
        }
        case TAG_ADD: {
            uint64_t level = get_u(&r), num = get_u(&r), size = get_u(&r);
            uint64_t mins = get_u(&r), maxs = get_u(&r), ents = get_u(&r), tombs = get_u(&r);
            wr_bytes sm = get_b(&r), lg = get_b(&r);
            kv_fmeta *f;
            wr_status st;
            if (r.bad || level >= KV_LEVELS || sm.len < KV_TRAILER || lg.len < KV_TRAILER ||
                kv_ikey_cmp(sm, lg) > 0)
                goto corrupt;
            WR_TRY(kv_fmeta_create(num, size, sm, lg, &f));
            f->min_seq = mins;
            f->max_seq = maxs;
            f->entries = ents;
            f->tombstones = tombs;
            st = kv_edit_add_file(e, (uint32_t)level, f);
            kv_fmeta_unref(f);
            WR_TRY(st);
            break;
        }
        default:
            if (r.bad)
                goto corrupt;
            return wr_err(WR_ERR_UNSUPPORTED,
                          "version edit field %" PRIu64 " is unknown: a newer weir wrote it", tag);
        }
    }
    if (!r.bad)
        return WR_OK;
corrupt:
    return wr_err(WR_ERR_CORRUPT, "malformed version edit at byte %zu", (size_t)(r.p - in.ptr));
}

static int cmp_smallest(const void *a, const void *b)
{
    const kv_fmeta *x = *(kv_fmeta *const *)a, *y = *(kv_fmeta *const *)b;
    return kv_ikey_cmp(wr_bytes_of(x->smallest.ptr, x->smallest.len),
                       wr_bytes_of(y->smallest.ptr, y->smallest.len));
}

static int cmp_number(const void *a, const void *b)
{
    const kv_fmeta *x = *(kv_fmeta *const *)a, *y = *(kv_fmeta *const *)b;
    return x->number < y->number ? -1 : x->number > y->number;
}

static bool deleted(const kv_edit *e, uint32_t level, uint64_t number)
{
    for (size_t i = 0; i < e->del_cnt; i++)
        if (e->dels[i].level == level && e->dels[i].number == number)
            return true;
    return false;
}

wr_status kv_version_apply(const kv_version *base, const kv_edit *e, kv_version **out)
{
    kv_version *v;
    wr_status st = WR_OK;

    WR_TRY(kv_version_create(&v));
    for (uint32_t l = 0; l < KV_LEVELS; l++) {
        size_t n = base->cnt[l];
        for (size_t i = 0; i < e->add_cnt; i++)
            n += e->adds[i].level == l;
        if (n && (v->files[l] = wr_malloc(n * sizeof(kv_fmeta *))) == NULL) {
            st = WR_ERR_NOMEM;
            goto err;
        }
        for (size_t i = 0; i < base->cnt[l]; i++)
            if (!deleted(e, l, base->files[l][i]->number)) {
                kv_fmeta_ref(base->files[l][i]);
                v->files[l][v->cnt[l]++] = base->files[l][i];
            }
        for (size_t i = 0; i < e->add_cnt; i++)
            if (e->adds[i].level == l) {
                kv_fmeta_ref(e->adds[i].f);
                v->files[l][v->cnt[l]++] = e->adds[i].f;
            }
        if (v->cnt[l] > 1)
            qsort(v->files[l], v->cnt[l], sizeof(kv_fmeta *), l == 0 ? cmp_number : cmp_smallest);
        for (size_t i = 1; i < v->cnt[l]; i++) {
            const kv_fmeta *a = v->files[l][i - 1], *b = v->files[l][i];
            if (a->number == b->number ||
                (l > 0 &&
                 wr_bytes_cmp(kv_ikey_user(wr_bytes_of(a->largest.ptr, a->largest.len)),
                              kv_ikey_user(wr_bytes_of(b->smallest.ptr, b->smallest.len))) >= 0)) {
                st = wr_err(WR_ERR_CORRUPT,
                            "version edit makes files %" PRIu64 " and %" PRIu64
                            " overlap on level %u",
                            a->number, b->number, l);
                goto err;
            }
        }
    }
    for (size_t i = 0; i < e->del_cnt; i++) {
        bool found = false;
        for (size_t k = 0; k < base->cnt[e->dels[i].level] && !found; k++)
            found = base->files[e->dels[i].level][k]->number == e->dels[i].number;
        if (!found) {
            st = wr_err(WR_ERR_CORRUPT,
                        "version edit deletes file %" PRIu64 " from level %u, which does not "
                        "hold it",
                        e->dels[i].number, e->dels[i].level);
            goto err;
        }
    }
    *out = v;
    return WR_OK;
err:
    kv_version_unref(v);
    *out = NULL;
    return st;
}

/* ---------------------------------------------------------------- MANIFEST */

struct kv_manifest {
    kv_wal *rf;
    wr_buf enc;
};

void kv_manifest_state_fini(kv_manifest_state *s)
{
    kv_version_unref(s->version);
    memset(s, 0, sizeof(*s));
}

typedef struct replay_ctx {
    kv_manifest_state *s;
    uint64_t records;
} replay_ctx;

static wr_status replay_edit(void *ctx, wr_bytes payload)
{
    replay_ctx *c = ctx;
    kv_edit e;
    kv_version *nv;
    wr_status st;

    kv_edit_init(&e);
    if ((st = kv_edit_decode(payload, &e)) == WR_OK &&
        (st = kv_version_apply(c->s->version, &e, &nv)) == WR_OK) {
        kv_version_unref(c->s->version);
        c->s->version = nv;
        if (e.has_next_file)
            c->s->next_file = e.next_file;
        if (e.has_last_seq)
            c->s->last_seq = e.last_seq;
        if (e.has_log_number)
            c->s->log_number = e.log_number;
        if (e.has_applied)
            c->s->applied = e.applied;
        c->records++;
    }
    kv_edit_fini(&e);
    return st;
}

wr_status kv_manifest_recover(const char *dir, kv_manifest_state *out)
{
    char path[4200], name[64];
    wr_buf cur = {0};
    replay_ctx c = {out, 0};
    uint64_t torn;
    wr_status st;
    char *end;

    memset(out, 0, sizeof(*out));
    WR_TRY(wr_path(path, sizeof(path), "%s/CURRENT", dir));
    if ((st = wr_file_read(path, &cur)) != WR_OK)
        return st; /* NOTFOUND: a new store */
    if (cur.len < 11 || cur.len > 40 || cur.ptr[cur.len - 1] != '\n' ||
        memcmp(cur.ptr, "MANIFEST-", 9) != 0) {
        wr_buf_fini(&cur);
        return wr_err(WR_ERR_CORRUPT, "%s: expected 'MANIFEST-<number>' and a newline", path);
    }
    memcpy(name, cur.ptr, cur.len - 1);
    name[cur.len - 1] = '\0';
    wr_buf_fini(&cur);
    out->manifest_number = strtoull(name + 9, &end, 10);
    if (*end != '\0')
        return wr_err(WR_ERR_CORRUPT, "%s/CURRENT: bad manifest name '%s'", dir, name);
    WR_TRY(kv_version_create(&out->version));
    WR_TRY(wr_path(path, sizeof(path), "%s/%s", dir, name));
    if ((st = kv_recfile_replay(path, KV_MANIFEST_MAGIC, replay_edit, &c, &torn)) != WR_OK) {
        char why[400];
        snprintf(why, sizeof(why), "%s", wr_errmsg());
        kv_manifest_state_fini(out);
        return wr_err(st, "%s: %s", path, why);
    }
    if (c.records == 0) {
        kv_manifest_state_fini(out);
        return wr_err(WR_ERR_CORRUPT, "%s: no complete record (CURRENT points at it)", path);
    }
    if (torn != UINT64_MAX)
        WR_LOGW("%s: ignoring a torn last record at byte %" PRIu64, path, torn);
    return WR_OK;
}

wr_status kv_manifest_create(const char *dir, uint64_t number, const kv_manifest_state *s,
                             kv_manifest **out)
{
    kv_manifest *m;
    kv_edit e;
    char path[4200], cur[64];
    int n;
    wr_status st;

    *out = NULL;
    if ((m = wr_calloc(1, sizeof(*m))) == NULL)
        return WR_ERR_NOMEM;
    kv_edit_init(&e);
    e.has_next_file = e.has_last_seq = e.has_log_number = e.has_applied = true;
    e.next_file = s->next_file;
    e.last_seq = s->last_seq;
    e.log_number = s->log_number;
    e.applied = s->applied;
    for (uint32_t l = 0; l < KV_LEVELS && s->version; l++)
        for (size_t i = 0; i < s->version->cnt[l]; i++)
            if ((st = kv_edit_add_file(&e, l, s->version->files[l][i])) != WR_OK)
                goto err;
    if ((st = wr_path(path, sizeof(path), "%s/MANIFEST-%06" PRIu64, dir, number)) != WR_OK ||
        (st = kv_recfile_create(dir, path, KV_MANIFEST_MAGIC, &m->rf)) != WR_OK ||
        (st = kv_edit_encode(&e, &m->enc)) != WR_OK ||
        (st = kv_wal_append(m->rf, wr_bytes_of(m->enc.ptr, m->enc.len), true)) != WR_OK)
        goto err;
    /* Only now does the new MANIFEST become the store's: CURRENT swaps atomically. */
    n = snprintf(cur, sizeof(cur), "MANIFEST-%06" PRIu64 "\n", number);
    if ((st = wr_path(path, sizeof(path), "%s/CURRENT", dir)) != WR_OK ||
        (st = wr_file_write_atomic(path, cur, (size_t)n)) != WR_OK)
        goto err;
    kv_edit_fini(&e);
    *out = m;
    return WR_OK;
err:
    kv_edit_fini(&e);
    kv_manifest_close(m);
    return st;
}

wr_status kv_manifest_log(kv_manifest *m, const kv_edit *e)
{
    WR_TRY(kv_edit_encode(e, &m->enc));
    return kv_wal_append(m->rf, wr_bytes_of(m->enc.ptr, m->enc.len), true);
}

uint64_t kv_manifest_bytes(const kv_manifest *m)
{
    return kv_wal_bytes(m->rf);
}

void kv_manifest_close(kv_manifest *m)
{
    if (m == NULL)
        return;
    kv_wal_close(m->rf);
    wr_buf_fini(&m->enc);
    wr_free(m);
}

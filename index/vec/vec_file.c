/* vec_file.c -- the vector index on disk: vec_save (writer), vec_file_load (vec_open's loader)
 * and vec_verify. The byte-level format is docs/formats/ivf.md; in short:
 *
 *   MANIFEST            options, generation, counters, calibration, agent dictionary, and the
 *                       name, size and digest of every file below; XXH3-64 at the end.
 *   quant-<v>.ivq       quantizer of training version v: centroids, PQ codebooks. Immutable.
 *   p<p>-<g>.ivv        partition p, generation g: the vectors, float32, slot order
 *   p<p>-<g>.ivk        keys and attributes per slot (times, agent ids, key lengths, key bytes)
 *   p<p>-<g>.ivt        tombstones: one bit per slot
 *   p<p>-<g>.ivl        inverted lists (trained only): directory, then per list slots and codes
 *
 * Every data file is [128-byte header | body | checksum table]. The header carries a magic,
 * the format version, its partition, generation and counts, and its own XXH3-64. The body is
 * cut into units -- 1 MiB blocks, or for .ivl the directory and then one unit per list -- and
 * the table holds one XXH3-64 per unit, so a damaged byte is reported with the unit (slots,
 * list) it sits in. The MANIFEST records each file's size and digest, the XXH3-64 of its
 * checksum table seeded with its header checksum: a digest that changes with any byte of the
 * file, checked without a second pass over the data.
 *
 * Save protocol (vec_file_save; writers blocked by wmu, searches run on under the shared lock):
 *   1. g = max(ix->file_gen, generation of the MANIFEST on disk) + 1;
 *   2. the quantizer file, unless the MANIFEST on disk already names this version's file;
 *   3. per partition the four files of generation g (a stale file of that name, left by a
 *      save that failed, is removed first), each written sequentially and fdatasynced;
 *   4. fsync of the directory, then the MANIFEST replaced with wr_file_write_atomic();
 *   5. files of the naming scheme the new MANIFEST does not name are unlinked.
 * A failure before step 4 unlinks what this save created; the old MANIFEST and its files were
 * never touched, so a crash anywhere leaves the previous saved state whole.
 *
 * Load (vec_file_load): each file is mmap'ed read-only, its size checked against the MANIFEST,
 * its header, every unit checksum, its digest and its structure checked, and only then is
 * anything copied into the index. Every count is checked against the file size before use.
 *
 * Invariants: (1) no byte of a file is used before the checksum covering it was checked;
 * (2) every error names the file (full path) and what is wrong, and says what to do;
 * (3) a file named by a MANIFEST on disk is never modified or removed by a save that has not
 * replaced that MANIFEST; (4) dead keys are not in ix->kmap after a load, live ones are, once. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vec_int.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vec_file.c copies float and integer arrays to and from disk as little-endian bytes"
#endif

#define VF_VERSION   1u
#define VF_HDR       128u        /* data-file header bytes */
#define VF_BLOCK     (1u << 20)  /* checksum unit of block-cut files */
#define VF_FLUSH     (4u << 20)  /* write once this much is buffered */
#define VF_NAME_MAX  255u        /* file names in the MANIFEST */
#define VF_KEY_MAX   65536u      /* key length a loader accepts */
#define VF_NO_PART   0xffffffffu /* partition field of the quantizer file */
#define VF_MAX_SLOTS (VEC_MAX_CHUNKS * VEC_CHUNK - 1)
#define MF_FIXED     336u /* MANIFEST bytes before the quantizer's file entry */
#define VF_HINT      "file damaged; restore it from a checkpoint or rebuild with weir vec build"

enum { VF_VEC, VF_KEY, VF_TOMB, VF_LIST, VF_QUANT, VF_NKIND };
static const char vf_magic[VF_NKIND][8] = {{'W', 'E', 'I', 'R', 'I', 'V', 'V', '1'},
                                           {'W', 'E', 'I', 'R', 'I', 'V', 'K', '1'},
                                           {'W', 'E', 'I', 'R', 'I', 'V', 'T', '1'},
                                           {'W', 'E', 'I', 'R', 'I', 'V', 'L', '1'},
                                           {'W', 'E', 'I', 'R', 'I', 'V', 'Q', '1'}};
static const char mf_magic[8] = {'W', 'E', 'I', 'R', 'I', 'V', 'M', '1'};
static const char *const vf_ext[VF_NKIND] = {"ivv", "ivk", "ivt", "ivl", "ivq"};
static const char *const vf_what[VF_NKIND] = {"vectors", "keys", "tombstones", "lists",
                                              "quantizer"};

/* ------------------------------------------------------------------ errors */
static wr_status vf_bad(wr_status st, const char *path, const char *fmt, ...) WR_PRINTF(3, 4);
static wr_status vf_bad(wr_status st, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (st == WR_ERR_CORRUPT)
        return wr_err(st, "vector index %s: %s (" VF_HINT ")", path, msg);
    return wr_err(st, "vector index %s: %s", path, msg);
}

#define VF_CORRUPT(path, ...) vf_bad(WR_ERR_CORRUPT, path, __VA_ARGS__)

/* ------------------------------------------------------------------ names */
static void part_name(char *dst, size_t cap, uint32_t part, uint64_t gen, int kind)
{
    snprintf(dst, cap, "p%u-%llu.%s", part, (unsigned long long)gen, vf_ext[kind]);
}

static void quant_name(char *dst, size_t cap, uint64_t version)
{
    snprintf(dst, cap, "quant-%llu.ivq", (unsigned long long)version);
}

/* A plain file name: no directory part, no NUL, not "." or "..". */
static bool name_ok(const uint8_t *s, size_t n)
{
    if (n == 0 || n > VF_NAME_MAX || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == '\0')
            return false;
    return true;
}

/* ------------------------------------------------------------------ sizes */
static uint64_t units_of(uint64_t body, uint64_t block)
{
    return (body + block - 1) / block;
}

/* Bytes of the codes of n entries as stored in a list (4-bit: whole blocks). */
static uint64_t list_bytes(uint32_t nbits, uint32_t m, uint64_t n)
{
    if (nbits == 8)
        return n * m;
    return (n + VK_BLOCK - 1) / VK_BLOCK * m * 16;
}

/* ------------------------------------------------------------------ data-file header */
typedef struct vf_hdr {
    uint32_t kind, part, dim;
    uint64_t gen, body, units, block, slots;
    uint8_t kf[56]; /* kind fields: header bytes [64, 120) */
} vf_hdr;

static void hdr_encode(const vf_hdr *h, uint8_t out[VF_HDR])
{
    memcpy(out, vf_magic[h->kind], 8);
    wr_put32(out + 8, VF_VERSION);
    wr_put32(out + 12, VF_HDR);
    wr_put32(out + 16, h->part);
    wr_put32(out + 20, h->dim);
    wr_put64(out + 24, h->gen);
    wr_put64(out + 32, h->body);
    wr_put64(out + 40, h->units);
    wr_put64(out + 48, h->block);
    wr_put64(out + 56, h->slots);
    memcpy(out + 64, h->kf, sizeof h->kf);
    wr_put64(out + 120, wr_xxh3(out, 120));
}

static vf_hdr hdr_base(int kind, uint32_t part, uint32_t dim, uint64_t gen, uint64_t slots)
{
    vf_hdr h;
    memset(&h, 0, sizeof h);
    h.kind = (uint32_t)kind;
    h.part = part;
    h.dim = dim;
    h.gen = gen;
    h.slots = slots;
    h.block = kind == VF_LIST ? 0 : VF_BLOCK;
    return h;
}

/* ------------------------------------------------------------------ MANIFEST in memory */
typedef struct mf_file {
    char name[VF_NAME_MAX + 1]; /* "" = absent */
    uint64_t size, digest;
} mf_file;

typedef struct mf_part {
    uint32_t slots, live;
    mf_file f[4]; /* VF_VEC, VF_KEY, VF_TOMB, VF_LIST */
} mf_part;

typedef struct manifest {
    vec_options o;
    uint64_t gen, next_version, live, deleted, added_since_train;
    double added_err_sum;
    vec_calib calib;
    bool calib_wanted;
    float calib_targets[8];
    uint32_t calib_target_cnt;
    uint64_t quant_version; /* 0: untrained */
    mf_file quant;
    mf_part *parts;            /* owned: o.partitions */
    uint32_t nagents;          /* names of agent ids 1 .. nagents */
    const uint8_t *agents;     /* borrowed from the MANIFEST bytes: the dictionary entries */
    const uint8_t *agents_end; /* end of the dictionary */
} manifest;

static void mf_fini(manifest *m)
{
    wr_free(m->parts);
    m->parts = NULL;
}

/* ------------------------------------------------------------------ byte encoder / decoder */
typedef struct enc {
    wr_buf b;
    wr_status st; /* sticky */
} enc;

static void enc_bytes(enc *e, const void *p, size_t n)
{
    if (e->st == WR_OK)
        e->st = wr_buf_append(&e->b, p, n);
}
static void enc_u16(enc *e, uint16_t v)
{
    uint8_t b[2];
    wr_put16(b, v);
    enc_bytes(e, b, 2);
}
static void enc_u32(enc *e, uint32_t v)
{
    uint8_t b[4];
    wr_put32(b, v);
    enc_bytes(e, b, 4);
}
static void enc_u64(enc *e, uint64_t v)
{
    uint8_t b[8];
    wr_put64(b, v);
    enc_bytes(e, b, 8);
}
static void enc_f32(enc *e, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    enc_u32(e, u);
}
static void enc_f64(enc *e, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    enc_u64(e, u);
}

typedef struct dec {
    const uint8_t *p, *end;
    bool bad; /* ran past the end */
} dec;

static const uint8_t *dec_take(dec *d, size_t n)
{
    if (d->bad || (size_t)(d->end - d->p) < n) {
        d->bad = true;
        return NULL;
    }
    const uint8_t *r = d->p;
    d->p += n;
    return r;
}
static uint16_t dec_u16(dec *d)
{
    const uint8_t *r = dec_take(d, 2);
    return r ? wr_get16(r) : 0;
}
static uint32_t dec_u32(dec *d)
{
    const uint8_t *r = dec_take(d, 4);
    return r ? wr_get32(r) : 0;
}
static uint64_t dec_u64(dec *d)
{
    const uint8_t *r = dec_take(d, 8);
    return r ? wr_get64(r) : 0;
}
static float dec_f32(dec *d)
{
    uint32_t u = dec_u32(d);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
static double dec_f64(dec *d)
{
    uint64_t u = dec_u64(d);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* ------------------------------------------------------------------ MANIFEST codec */
static void enc_file(enc *e, const mf_file *f)
{
    size_t n = strlen(f->name);
    enc_u16(e, (uint16_t)n);
    enc_bytes(e, f->name, n);
    enc_u64(e, f->size);
    enc_u64(e, f->digest);
}

/* The MANIFEST of @ix with the file entries of @m (lk held at least shared). */
static wr_status mf_encode(const vec_index *ix, const manifest *m, enc *e)
{
    const vec_options *o = &ix->o;
    enc_bytes(e, mf_magic, 8);
    enc_u32(e, VF_VERSION);
    enc_u32(e, 0);
    enc_u64(e, 0); /* file length, patched below */
    enc_u32(e, (uint32_t)o->metric);
    enc_u32(e, o->dim);
    enc_u32(e, o->nbits);
    enc_u32(e, o->m);
    enc_u32(e, o->nlist);
    enc_u32(e, o->partitions);
    enc_u64(e, o->train_threshold);
    enc_u32(e, o->train_iters);
    enc_u32(e, o->train_per_list);
    enc_f64(e, o->drift_ratio);
    enc_u64(e, o->drift_min_added);
    enc_u64(e, o->seed);
    enc_u64(e, m->gen);
    enc_u64(e, ix->next_version);
    enc_u64(e, ix->live);
    enc_u64(e, ix->deleted);
    enc_u64(e, ix->added_since_train);
    enc_f64(e, ix->added_err_sum);
    enc_u32(e, ix->calib.cnt);
    enc_u32(e, ix->calib.k);
    enc_u32(e, ix->calib.sample);
    enc_u32(e, ix->calib_wanted ? 1 : 0);
    enc_u64(e, ix->calib.version);
    for (uint32_t i = 0; i < 8; i++) {
        const vec_calib_point *pt = &ix->calib.pt[i];
        bool used = i < ix->calib.cnt;
        enc_f32(e, used ? pt->recall : 0);
        enc_u32(e, used ? pt->nprobe : 0);
        enc_u32(e, used ? pt->refine : 0);
        enc_f32(e, used ? pt->measured : 0);
    }
    enc_u32(e, ix->calib_target_cnt);
    enc_u32(e, 0);
    for (uint32_t i = 0; i < 8; i++)
        enc_f32(e, i < ix->calib_target_cnt ? ix->calib_targets[i] : 0);
    enc_u64(e, m->quant_version);
    if (e->st == WR_OK && e->b.len != MF_FIXED)
        return wr_err(WR_ERR_INTERNAL, "vector index: MANIFEST fixed part is %zu bytes, not %u",
                      e->b.len, MF_FIXED);
    enc_file(e, &m->quant);
    for (uint32_t p = 0; p < o->partitions; p++) {
        enc_u32(e, m->parts[p].slots);
        enc_u32(e, m->parts[p].live);
        for (int k = 0; k < 4; k++)
            enc_file(e, &m->parts[p].f[k]);
    }
    uint32_t na = ix->nagents ? ix->nagents - 1 : 0;
    enc_u32(e, na);
    for (uint32_t a = 1; a <= na; a++) {
        size_t n = strlen(ix->agent_names[a]);
        enc_u32(e, (uint32_t)n);
        enc_bytes(e, ix->agent_names[a], n);
    }
    enc_u64(e, 0); /* checksum, patched below */
    if (e->st != WR_OK)
        return e->st;
    wr_put64(e->b.ptr + 16, e->b.len);
    wr_put64(e->b.ptr + e->b.len - 8, wr_xxh3(e->b.ptr, e->b.len - 8));
    return WR_OK;
}

/* What is wrong with options read from a MANIFEST (the checks of vec_open), or NULL. */
static const char *opts_problem(const vec_options *o)
{
    if (o->dim < 1 || o->dim > VEC_MAX_DIM)
        return "dim out of range";
    if (o->metric != VEC_L2 && o->metric != VEC_IP && o->metric != VEC_COSINE)
        return "unknown metric";
    if (o->nbits != 4 && o->nbits != 8)
        return "nbits is not 4 or 8";
    uint32_t m = o->m ? o->m : (o->nbits == 8 ? o->dim / 4 : o->dim / 2);
    if (m == 0)
        m = 1;
    if (o->dim % m != 0 || m > VEC_MAX_M || (o->nbits == 4 && (m % 2 != 0 || m > VEC_MAX_M4)))
        return "m does not fit dim and nbits";
    if (o->partitions < 1 || o->partitions > 4096)
        return "partitions out of range";
    if (o->nlist > (1u << 20))
        return "nlist over the limit";
    if (!(o->drift_ratio >= 0) || !isfinite(o->drift_ratio))
        return "drift_ratio is not a finite number >= 0";
    return NULL;
}

static void dec_file(dec *d, mf_file *f, bool *bad_name)
{
    uint16_t n = dec_u16(d);
    const uint8_t *s = dec_take(d, n);
    memset(f->name, 0, sizeof f->name);
    if (s && n > 0) {
        if (name_ok(s, n))
            memcpy(f->name, s, n);
        else
            *bad_name = true;
    }
    f->size = dec_u64(d);
    f->digest = dec_u64(d);
}

static wr_status mf_parse(const char *path, const uint8_t *b, size_t n, manifest *m)
{
    memset(m, 0, sizeof *m);
    if (n < MF_FIXED + 8)
        return VF_CORRUPT(path, "%zu bytes is too short for a MANIFEST", n);
    if (memcmp(b, mf_magic, 8) != 0)
        return VF_CORRUPT(path, "bad magic: not the MANIFEST of a weir vector index");
    uint32_t ver = wr_get32(b + 8);
    if (ver > VF_VERSION)
        return vf_bad(WR_ERR_UNSUPPORTED, path,
                      "MANIFEST format version %u; this build reads version %u (use a newer weir)",
                      ver, VF_VERSION);
    if (ver == 0)
        return VF_CORRUPT(path, "MANIFEST format version 0");
    if (wr_get64(b + 16) != n)
        return VF_CORRUPT(path, "is %zu bytes; its header says %llu (truncated or damaged)", n,
                          (unsigned long long)wr_get64(b + 16));
    if (wr_xxh3(b, n - 8) != wr_get64(b + n - 8))
        return VF_CORRUPT(path, "checksum mismatch");
    dec d = {b + 12, b + n - 8, false};
    bool badname = false;
    if (dec_u32(&d) != 0)
        return VF_CORRUPT(path, "reserved field at offset 12 is not 0");
    dec_u64(&d); /* length, checked above */
    vec_options *o = &m->o;
    vec_options_init(o);
    o->metric = (vec_metric)dec_u32(&d);
    o->dim = dec_u32(&d);
    o->nbits = dec_u32(&d);
    o->m = dec_u32(&d);
    o->nlist = dec_u32(&d);
    o->partitions = dec_u32(&d);
    o->train_threshold = dec_u64(&d);
    o->train_iters = dec_u32(&d);
    o->train_per_list = dec_u32(&d);
    o->drift_ratio = dec_f64(&d);
    o->drift_min_added = dec_u64(&d);
    o->seed = dec_u64(&d);
    m->gen = dec_u64(&d);
    m->next_version = dec_u64(&d);
    m->live = dec_u64(&d);
    m->deleted = dec_u64(&d);
    m->added_since_train = dec_u64(&d);
    m->added_err_sum = dec_f64(&d);
    m->calib.cnt = dec_u32(&d);
    m->calib.k = dec_u32(&d);
    m->calib.sample = dec_u32(&d);
    uint32_t wanted = dec_u32(&d);
    m->calib.version = dec_u64(&d);
    for (uint32_t i = 0; i < 8; i++) {
        vec_calib_point *pt = &m->calib.pt[i];
        pt->recall = dec_f32(&d);
        pt->nprobe = dec_u32(&d);
        pt->refine = dec_u32(&d);
        pt->measured = dec_f32(&d);
    }
    m->calib_target_cnt = dec_u32(&d);
    uint32_t reserved = dec_u32(&d);
    for (uint32_t i = 0; i < 8; i++)
        m->calib_targets[i] = dec_f32(&d);
    m->quant_version = dec_u64(&d);
    const char *why = opts_problem(o);
    if (why)
        return VF_CORRUPT(path,
                          "options out of range (%s): dim=%u metric=%d nbits=%u m=%u "
                          "partitions=%u nlist=%u",
                          why, o->dim, (int)o->metric, o->nbits, o->m, o->partitions, o->nlist);
    if (wanted > 1 || reserved != 0 || m->calib.cnt > 8 || m->calib_target_cnt > 8)
        return VF_CORRUPT(path, "calibration fields out of range");
    /* searches take nprobe and refine from these points unchecked (vec_search.c) */
    if (m->calib.k > 256)
        return VF_CORRUPT(path, "calibration k=%u", m->calib.k);
    for (uint32_t i = 0; i < 8; i++) {
        const vec_calib_point *pt = &m->calib.pt[i];
        if (!(pt->recall >= 0 && pt->recall <= 1) || !(pt->measured >= 0 && pt->measured <= 1) ||
            !(m->calib_targets[i] >= 0 && m->calib_targets[i] <= 1) || pt->refine > 64 ||
            pt->nprobe > (1u << 20))
            return VF_CORRUPT(path, "calibration point %u out of range", i);
    }
    m->calib_wanted = wanted == 1;
    if (!isfinite(m->added_err_sum) || m->added_err_sum < 0)
        return VF_CORRUPT(path, "drift error sum is not a finite number >= 0");
    if (m->gen == 0)
        return VF_CORRUPT(path, "file generation 0");
    dec_file(&d, &m->quant, &badname);
    if (!(m->parts = wr_calloc(o->partitions, sizeof(mf_part))))
        return wr_err(WR_ERR_NOMEM, "vector index %s: no memory", path);
    for (uint32_t p = 0; p < o->partitions && !d.bad; p++) {
        m->parts[p].slots = dec_u32(&d);
        m->parts[p].live = dec_u32(&d);
        for (int k = 0; k < 4; k++)
            dec_file(&d, &m->parts[p].f[k], &badname);
    }
    m->nagents = dec_u32(&d);
    m->agents = d.p;
    for (uint32_t a = 0; a < m->nagents && !d.bad; a++) {
        uint32_t len = dec_u32(&d);
        const uint8_t *s = dec_take(&d, len);
        if (s && (len == 0 || memchr(s, 0, len)))
            return VF_CORRUPT(path, "agent %u has an empty name or one with a NUL byte", a + 1);
    }
    m->agents_end = d.p;
    if (d.bad)
        return VF_CORRUPT(path, "malformed: a field runs past the end");
    if (d.p != d.end)
        return VF_CORRUPT(path, "malformed: %zu bytes after the agent dictionary",
                          (size_t)(d.end - d.p));
    if (badname)
        return VF_CORRUPT(path, "a file name is not a plain file name");
    if (m->nagents >= UINT32_MAX - 1)
        return VF_CORRUPT(path, "%u agents", m->nagents);
    /* files: the quantizer exactly when trained, each partition's lists exactly then */
    if ((m->quant_version != 0) != (m->quant.name[0] != '\0'))
        return VF_CORRUPT(path, "quantizer version %llu with %s quantizer file",
                          (unsigned long long)m->quant_version, m->quant.name[0] ? "a" : "no");
    uint64_t live = 0, slots = 0;
    for (uint32_t p = 0; p < o->partitions; p++) {
        const mf_part *mp = &m->parts[p];
        if (mp->slots > VF_MAX_SLOTS || mp->live > mp->slots)
            return VF_CORRUPT(path, "partition %u: %u live of %u slots", p, mp->live, mp->slots);
        for (int k = 0; k < 4; k++) {
            bool want = k != VF_LIST || m->quant_version != 0;
            if (want != (mp->f[k].name[0] != '\0'))
                return VF_CORRUPT(path, "partition %u: %s %s file", p,
                                  want ? "no" : "an unexpected", vf_what[k]);
        }
        live += mp->live;
        slots += mp->slots;
    }
    if (live != m->live || slots - live != m->deleted)
        return VF_CORRUPT(path,
                          "partitions hold %llu live of %llu slots; the totals say %llu live, "
                          "%llu deleted",
                          (unsigned long long)live, (unsigned long long)slots,
                          (unsigned long long)m->live, (unsigned long long)m->deleted);
    return WR_OK;
}

/* Reads and parses @dir/MANIFEST into @m (its agent names point into @raw). */
static wr_status mf_read(const char *dir, wr_buf *raw, manifest *m, char *path, size_t cap)
{
    memset(m, 0, sizeof *m);
    WR_TRY(wr_path(path, cap, "%s/MANIFEST", dir));
    wr_status st = wr_file_read(path, raw);
    if (st == WR_ERR_NOTFOUND)
        return vf_bad(st, path, "missing: no vector index in this directory");
    if (st != WR_OK)
        return st;
    return mf_parse(path, raw->ptr, raw->len, m);
}

/* ------------------------------------------------------------------ reading data files */
typedef struct vf_view {
    char path[PATH_MAX];
    const uint8_t *map; /* owned mapping of the whole file, NULL when closed */
    size_t size;
    vf_hdr h;
    const uint8_t *body; /* map + VF_HDR */
    const uint8_t *sums; /* the checksum table, after the body */
} vf_view;

static void vf_close(vf_view *v)
{
    if (v->map)
        munmap((void *)(uintptr_t)v->map, v->size);
    v->map = NULL;
}

/* Where body bytes [lo, hi) of @v lie, for an error message. */
static void vf_where(const vf_view *v, uint64_t lo, uint64_t hi, char *dst, size_t cap)
{
    const vf_hdr *h = &v->h;
    uint64_t last = hi - 1, n = h->slots;
    unsigned long long a, b;
    int w = 0;

    switch (h->kind) {
    case VF_VEC:
        a = lo / ((uint64_t)h->dim * 4);
        b = last / ((uint64_t)h->dim * 4);
        w = snprintf(dst, cap, "the vectors of slots %llu..%llu", a, b);
        break;
    case VF_KEY: {
        static const char *const sec[4] = {"times", "agent ids", "key lengths", "key bytes"};
        uint64_t start[4] = {0, 8 * n, 12 * n, 16 * n};
        int s0 = 0, s1 = 0;
        for (int i = 0; i < 4; i++) {
            if (lo >= start[i])
                s0 = i;
            if (last >= start[i])
                s1 = i;
        }
        w = s0 == s1 ? snprintf(dst, cap, "the %s", sec[s0])
                     : snprintf(dst, cap, "the %s .. %s", sec[s0], sec[s1]);
        break;
    }
    case VF_TOMB:
        a = lo * 8;
        b = hi * 8 > n ? n - 1 : hi * 8 - 1;
        w = snprintf(dst, cap, "the tombstones of slots %llu..%llu", a, b);
        break;
    case VF_QUANT: {
        uint64_t nlist = wr_get32(h->kf + 4), cbytes = nlist * h->dim * 4;
        uint64_t sq = (uint64_t)wr_get32(h->kf + 16) * wr_get32(h->kf + 20) * 4; /* ksub*dsub */
        if (last < cbytes)
            w = snprintf(dst, cap, "the centroids of lists %llu..%llu",
                         (unsigned long long)(lo / ((uint64_t)h->dim * 4)),
                         (unsigned long long)(last / ((uint64_t)h->dim * 4)));
        else if (lo >= cbytes && sq > 0)
            w = snprintf(dst, cap, "the codebooks of sub-quantizers %llu..%llu",
                         (unsigned long long)((lo - cbytes) / sq),
                         (unsigned long long)((last - cbytes) / sq));
        else
            w = snprintf(dst, cap, "the centroids and codebooks");
        break;
    }
    default:
        w = snprintf(dst, cap, "the body");
        break;
    }
    if (w >= 0 && (size_t)w < cap)
        snprintf(dst + w, cap - (size_t)w, " (body bytes %llu..%llu)", (unsigned long long)lo,
                 (unsigned long long)last);
}

/* Opens @f (a file of @kind named by the MANIFEST) read-only, maps it, and checks its size
 * against the MANIFEST, its header (magic, version, checksum, the expected partition,
 * generation, dimension and slot count) and that the body and checksum table fill it. */
static wr_status vf_open(vf_view *v, const char *dir, const mf_file *f, int kind, uint32_t part,
                         uint64_t gen, uint32_t dim, uint64_t slots)
{
    struct stat sb;
    int fd;
    memset(v, 0, sizeof *v);
    WR_TRY(wr_path(v->path, sizeof v->path, "%s/%s", dir, f->name));
    const char *path = v->path;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        if (e == ENOENT)
            return vf_bad(WR_ERR_NOTFOUND, path,
                          "missing (the MANIFEST names it; restore it from a checkpoint or "
                          "rebuild with weir vec build)");
        return vf_bad(wr_status_from_errno(e), path, "open: %s", strerror(e));
    }
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return vf_bad(wr_status_from_errno(e), path, "fstat: %s", strerror(e));
    }
    if ((uint64_t)sb.st_size != f->size) {
        close(fd);
        return VF_CORRUPT(path, "is %llu bytes; the MANIFEST says %llu (truncated or damaged)",
                          (unsigned long long)sb.st_size, (unsigned long long)f->size);
    }
    if (f->size < VF_HDR) {
        close(fd);
        return VF_CORRUPT(path, "%llu bytes is too short for a header",
                          (unsigned long long)f->size);
    }
    void *map = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return vf_bad(wr_status_from_errno(e), path, "mmap of %llu bytes: %s",
                      (unsigned long long)f->size, strerror(e));
    (void)madvise(map, (size_t)f->size, MADV_SEQUENTIAL);
    v->map = map;
    v->size = (size_t)f->size;
    const uint8_t *b = v->map;
    if (memcmp(b, vf_magic[kind], 8) != 0)
        return VF_CORRUPT(path, "bad magic: not a %s file of a weir vector index", vf_what[kind]);
    uint32_t ver = wr_get32(b + 8);
    if (ver > VF_VERSION)
        return vf_bad(WR_ERR_UNSUPPORTED, path,
                      "format version %u; this build reads version %u (use a newer weir)", ver,
                      VF_VERSION);
    if (ver == 0 || wr_get32(b + 12) != VF_HDR)
        return VF_CORRUPT(path, "bad format version %u or header length %u", ver, wr_get32(b + 12));
    if (wr_xxh3(b, 120) != wr_get64(b + 120))
        return VF_CORRUPT(path, "header checksum mismatch");
    vf_hdr *h = &v->h;
    h->kind = (uint32_t)kind;
    h->part = wr_get32(b + 16);
    h->dim = wr_get32(b + 20);
    h->gen = wr_get64(b + 24);
    h->body = wr_get64(b + 32);
    h->units = wr_get64(b + 40);
    h->block = wr_get64(b + 48);
    h->slots = wr_get64(b + 56);
    memcpy(h->kf, b + 64, sizeof h->kf);
    if (h->part != part || h->gen != gen || h->dim != dim || h->slots != slots)
        return VF_CORRUPT(path,
                          "header says partition %u generation %llu dim %u slots %llu; the "
                          "MANIFEST expects %u, %llu, %u, %llu (a file of another save?)",
                          h->part, (unsigned long long)h->gen, h->dim, (unsigned long long)h->slots,
                          part, (unsigned long long)gen, dim, (unsigned long long)slots);
    uint64_t room = f->size - VF_HDR;
    if (h->body > room || h->units > (room - h->body) / 8 || room - h->body != h->units * 8)
        return VF_CORRUPT(path,
                          "body of %llu bytes and %llu checksums do not fill the %llu bytes "
                          "after the header",
                          (unsigned long long)h->body, (unsigned long long)h->units,
                          (unsigned long long)room);
    if (kind == VF_LIST) {
        if (h->block != 0)
            return VF_CORRUPT(path, "block size %llu in a lists file",
                              (unsigned long long)h->block);
    } else if (h->block < 4096 || h->block > (1u << 30) || (h->block & (h->block - 1)) != 0 ||
               h->units != units_of(h->body, h->block)) {
        return VF_CORRUPT(path, "block size %llu and %llu checksums do not fit a %llu-byte body",
                          (unsigned long long)h->block, (unsigned long long)h->units,
                          (unsigned long long)h->body);
    }
    v->body = b + VF_HDR;
    v->sums = v->body + h->body;
    return WR_OK;
}

/* The file digest the MANIFEST records (see the top of the file). */
static uint64_t vf_digest(const vf_view *v)
{
    return wr_xxh3_seed(v->sums, v->h.units * 8, wr_get64(v->map + 120));
}

static wr_status vf_check_digest(const vf_view *v, const mf_file *f)
{
    if (vf_digest(v) != f->digest)
        return VF_CORRUPT(v->path, "digest does not match the MANIFEST (its checksums are "
                                   "intact but differ from the saved file's: a file of another "
                                   "save or index?)");
    return WR_OK;
}

/* Unit checksums of a block-cut file. */
static wr_status vf_check_blocks(const vf_view *v)
{
    for (uint64_t u = 0; u < v->h.units; u++) {
        uint64_t lo = u * v->h.block,
                 hi = lo + v->h.block > v->h.body ? v->h.body : lo + v->h.block;
        if (wr_xxh3(v->body + lo, hi - lo) != wr_get64(v->sums + u * 8)) {
            char where[200];
            vf_where(v, lo, hi, where, sizeof where);
            return VF_CORRUPT(v->path, "checksum mismatch in %s", where);
        }
    }
    return WR_OK;
}

static bool kf_zero(const vf_hdr *h, size_t from)
{
    for (size_t i = from; i < sizeof h->kf; i++)
        if (h->kf[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------ checking each kind */
/* What a partition's lists file must agree with: the quantizer. */
typedef struct qinfo {
    uint64_t version;
    uint32_t nlist, m, nbits;
} qinfo;

static wr_status check_quant(vf_view *v, const char *dir, const manifest *mf, qinfo *qi)
{
    WR_TRY(vf_open(v, dir, &mf->quant, VF_QUANT, VF_NO_PART, mf->quant_version, mf->o.dim, 0));
    const vf_hdr *h = &v->h;
    const char *path = v->path;
    uint32_t metric = wr_get32(h->kf), nlist = wr_get32(h->kf + 4), m = wr_get32(h->kf + 8);
    uint32_t nbits = wr_get32(h->kf + 12), ksub = wr_get32(h->kf + 16);
    uint32_t dsub = wr_get32(h->kf + 20);
    double err, imb;
    memcpy(&err, h->kf + 32, 8);
    memcpy(&imb, h->kf + 40, 8);
    if (metric != (uint32_t)mf->o.metric || nbits != mf->o.nbits || (mf->o.m && m != mf->o.m) ||
        (mf->o.nlist && nlist != mf->o.nlist))
        return VF_CORRUPT(path,
                          "quantizer metric %u nbits %u m %u nlist %u disagree with the "
                          "MANIFEST's options",
                          metric, nbits, m, nlist);
    if (m == 0 || m > VEC_MAX_M || mf->o.dim % m != 0 || dsub != mf->o.dim / m ||
        ksub != 1u << nbits || (nbits == 4 && (m % 2 != 0 || m > VEC_MAX_M4)) || nlist == 0 ||
        nlist > (1u << 20) || !kf_zero(h, 48) || !isfinite(err) || err < 0 || !isfinite(imb) ||
        imb < 0)
        return VF_CORRUPT(path,
                          "quantizer header fields out of range (nlist %u, m %u, ksub %u, "
                          "dsub %u)",
                          nlist, m, ksub, dsub);
    uint64_t body = ((uint64_t)nlist * mf->o.dim + (uint64_t)m * ksub * dsub) * 4;
    if (h->body != body)
        return VF_CORRUPT(path, "body is %llu bytes; %u centroids and %u codebooks need %llu",
                          (unsigned long long)h->body, nlist, m, (unsigned long long)body);
    WR_TRY(vf_check_blocks(v));
    WR_TRY(vf_check_digest(v, &mf->quant));
    const float *x = (const float *)(const void *)v->body;
    for (uint64_t i = 0; i < body / 4; i++)
        if (!isfinite(x[i]))
            return VF_CORRUPT(path, "a centroid or codebook value is not finite (float %llu)",
                              (unsigned long long)i);
    qi->version = mf->quant_version;
    qi->nlist = nlist;
    qi->m = m;
    qi->nbits = nbits;
    return WR_OK;
}

/* The four files of partition @p (lists only when @qi), opened, mapped and checked: checksums,
 * digests, counts, ranges, and the lists against the tombstones. */
static wr_status check_part(vf_view v[4], const char *dir, const manifest *mf, uint32_t p,
                            const qinfo *qi)
{
    const mf_part *mp = &mf->parts[p];
    uint64_t n = mp->slots;
    uint32_t dim = mf->o.dim;
    const char *path;

    /* vectors */
    WR_TRY(vf_open(&v[VF_VEC], dir, &mp->f[VF_VEC], VF_VEC, p, mf->gen, dim, n));
    path = v[VF_VEC].path;
    if (v[VF_VEC].h.body != n * dim * 4 || !kf_zero(&v[VF_VEC].h, 0))
        return VF_CORRUPT(path, "body is %llu bytes; %llu vectors of dim %u need %llu",
                          (unsigned long long)v[VF_VEC].h.body, (unsigned long long)n, dim,
                          (unsigned long long)(n * dim * 4));
    WR_TRY(vf_check_blocks(&v[VF_VEC]));
    WR_TRY(vf_check_digest(&v[VF_VEC], &mp->f[VF_VEC]));
    const float *x = (const float *)(const void *)v[VF_VEC].body;
    for (uint64_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i]))
            return VF_CORRUPT(path, "the vector of slot %llu holds a value that is not finite",
                              (unsigned long long)(i / dim));

    /* keys and attributes */
    WR_TRY(vf_open(&v[VF_KEY], dir, &mp->f[VF_KEY], VF_KEY, p, mf->gen, dim, n));
    const vf_view *k = &v[VF_KEY];
    path = k->path;
    uint64_t kbytes = wr_get64(k->h.kf);
    if (kbytes > k->h.body || k->h.body - kbytes != 16 * n || !kf_zero(&k->h, 8))
        return VF_CORRUPT(path, "body is %llu bytes; %llu slots and %llu key bytes need %llu",
                          (unsigned long long)k->h.body, (unsigned long long)n,
                          (unsigned long long)kbytes, (unsigned long long)(16 * n + kbytes));
    WR_TRY(vf_check_blocks(k));
    WR_TRY(vf_check_digest(k, &mp->f[VF_KEY]));
    const uint8_t *agents = k->body + 8 * n, *lens = k->body + 12 * n, *keys = k->body + 16 * n;
    uint64_t sum = 0;
    for (uint64_t s = 0; s < n; s++) {
        uint32_t a = wr_get32(agents + 4 * s), len = wr_get32(lens + 4 * s);
        if (a > mf->nagents)
            return VF_CORRUPT(path, "slot %llu has agent id %u; the dictionary has %u agents",
                              (unsigned long long)s, a, mf->nagents);
        if (len == 0 || len > VF_KEY_MAX)
            return VF_CORRUPT(path, "slot %llu has a key of %u bytes", (unsigned long long)s, len);
        sum += len;
    }
    if (sum != kbytes)
        return VF_CORRUPT(path, "key lengths add up to %llu bytes; the header says %llu",
                          (unsigned long long)sum, (unsigned long long)kbytes);
    if (kbytes && memchr(keys, 0, kbytes))
        return VF_CORRUPT(path, "a key holds a NUL byte");

    /* tombstones */
    WR_TRY(vf_open(&v[VF_TOMB], dir, &mp->f[VF_TOMB], VF_TOMB, p, mf->gen, dim, n));
    const vf_view *t = &v[VF_TOMB];
    path = t->path;
    if (t->h.body != (n + 7) / 8 || !kf_zero(&t->h, 8))
        return VF_CORRUPT(path, "body is %llu bytes; %llu slots need %llu",
                          (unsigned long long)t->h.body, (unsigned long long)n,
                          (unsigned long long)((n + 7) / 8));
    WR_TRY(vf_check_blocks(t));
    WR_TRY(vf_check_digest(t, &mp->f[VF_TOMB]));
    const uint8_t *dead = t->body;
    uint64_t ndead = 0;
    for (uint64_t i = 0; i < t->h.body; i++)
        ndead += (uint64_t)__builtin_popcount(dead[i]);
    if ((n & 7) && (dead[n / 8] >> (n & 7)) != 0)
        return VF_CORRUPT(path, "bits past the last slot are set");
    if (wr_get64(t->h.kf) != n - ndead || n - ndead != mp->live)
        return VF_CORRUPT(path, "%llu live slots; the header says %llu, the MANIFEST %u",
                          (unsigned long long)(n - ndead), (unsigned long long)wr_get64(t->h.kf),
                          mp->live);
    if (!qi)
        return WR_OK;

    /* lists */
    WR_TRY(vf_open(&v[VF_LIST], dir, &mp->f[VF_LIST], VF_LIST, p, mf->gen, dim, n));
    const vf_view *l = &v[VF_LIST];
    const vf_hdr *h = &l->h;
    path = l->path;
    uint64_t lver = wr_get64(h->kf), entries = wr_get64(h->kf + 24);
    uint32_t nlist = wr_get32(h->kf + 8), m = wr_get32(h->kf + 12), nbits = wr_get32(h->kf + 16);
    if (lver != qi->version || nlist != qi->nlist || m != qi->m || nbits != qi->nbits ||
        wr_get32(h->kf + 20) != 0 || !kf_zero(h, 32))
        return VF_CORRUPT(path,
                          "lists of quantizer version %llu (nlist %u, m %u, %u bits); the "
                          "quantizer is version %llu (nlist %u, m %u, %u bits)",
                          (unsigned long long)lver, nlist, m, nbits,
                          (unsigned long long)qi->version, qi->nlist, qi->m, qi->nbits);
    if (h->units != (uint64_t)nlist + 1 || h->body < 8ull * nlist || entries > n)
        return VF_CORRUPT(path,
                          "%llu checksums, %llu body bytes and %llu entries do not fit "
                          "%u lists of %llu slots",
                          (unsigned long long)h->units, (unsigned long long)h->body,
                          (unsigned long long)entries, nlist, (unsigned long long)n);
    if (wr_xxh3(l->body, 8ull * nlist) != wr_get64(l->sums))
        return VF_CORRUPT(path, "checksum mismatch in the list directory");
    /* a list never holds more than the partition's slots, and grows by doubling: a capacity
     * far past that is damage (and would be a huge allocation) */
    uint64_t total = 8ull * nlist, cnt = 0, capmax = 4 * n + VK_BLOCK;
    for (uint32_t i = 0; i < nlist; i++) {
        uint32_t ln = wr_get32(l->body + 8ull * i), lcap = wr_get32(l->body + 8ull * i + 4);
        if (ln > n || lcap < ln || (nbits == 4 && lcap % VK_BLOCK != 0) || lcap > capmax)
            return VF_CORRUPT(path, "list %u: %u entries and capacity %u (partition of %llu slots)",
                              i, ln, lcap, (unsigned long long)n);
        cnt += ln;
        total += 4ull * ln + list_bytes(nbits, m, ln);
    }
    if (cnt != entries || total != h->body)
        return VF_CORRUPT(path,
                          "the list directory adds up to %llu entries in %llu bytes; the header "
                          "says %llu in %llu",
                          (unsigned long long)cnt, (unsigned long long)total,
                          (unsigned long long)entries, (unsigned long long)h->body);
    uint8_t *seen = wr_calloc(n / 8 + 1, 1);
    if (!seen)
        return wr_err(WR_ERR_NOMEM, "vector index %s: no memory", path);
    wr_status st = WR_OK;
    const uint8_t *at = l->body + 8ull * nlist;
    for (uint32_t i = 0; i < nlist && st == WR_OK; i++) {
        uint32_t ln = wr_get32(l->body + 8ull * i);
        uint64_t cb = list_bytes(nbits, m, ln), len = 4ull * ln + cb;
        if (wr_xxh3(at, len) != wr_get64(l->sums + 8ull * (i + 1))) {
            st = VF_CORRUPT(path, "checksum mismatch in list %u", i);
            break;
        }
        for (uint32_t j = 0; j < ln; j++) {
            uint32_t s = wr_get32(at + 4ull * j);
            if (s >= n || (seen[s / 8] >> (s % 8) & 1)) {
                st = VF_CORRUPT(path, "list %u entry %u: slot %u is %s", i, j, s,
                                s >= n ? "out of range" : "in a list twice");
                break;
            }
            seen[s / 8] |= (uint8_t)(1u << (s % 8));
        }
        if (st == WR_OK && nbits == 4 && ln % VK_BLOCK != 0) {
            /* entries past n in the last block must read as code 0 */
            const uint8_t *blk = at + 4ull * ln + cb - (uint64_t)m * 16;
            for (uint32_t e = ln % VK_BLOCK; e < VK_BLOCK && st == WR_OK; e++)
                for (uint32_t j = 0; j < m; j++)
                    if (vk_code4(blk, e, j) != 0) {
                        st = VF_CORRUPT(path, "list %u: padding after the last entry is not 0", i);
                        break;
                    }
        }
        at += len;
    }
    for (uint64_t s = 0; s < n && st == WR_OK; s++)
        if (!(dead[s / 8] >> (s % 8) & 1) && !(seen[s / 8] >> (s % 8) & 1))
            st = VF_CORRUPT(path, "live slot %llu is in no list", (unsigned long long)s);
    wr_free(seen);
    if (st == WR_OK)
        st = vf_check_digest(l, &mp->f[VF_LIST]);
    return st;
}

static void views_close(vf_view *v, int n)
{
    for (int i = 0; i < n; i++)
        vf_close(&v[i]);
}

/* ------------------------------------------------------------------ load */
/* Gives ix the manifest's options and @np partitions (index_alloc made the caller's count). */
static wr_status load_options(vec_index *ix, const manifest *mf)
{
    uint32_t np = mf->o.partitions;
    if (np != ix->o.partitions) {
        vec_part *parts = wr_calloc(np, sizeof(vec_part));
        if (!parts)
            return wr_err(WR_ERR_NOMEM, "vector index %s: no memory", ix->dir);
        for (uint32_t i = 0; i < np; i++)
            if (!(parts[i].chunks = wr_calloc(VEC_MAX_CHUNKS, sizeof(float *)))) {
                for (uint32_t j = 0; j < i; j++)
                    wr_free(parts[j].chunks);
                wr_free(parts);
                return wr_err(WR_ERR_NOMEM, "vector index %s: no memory", ix->dir);
            }
        /* the old partitions are empty: only their chunk tables were allocated */
        for (uint32_t i = 0; i < ix->o.partitions; i++)
            wr_free(ix->parts[i].chunks);
        wr_free(ix->parts);
        ix->parts = parts;
    }
    uint32_t threads = ix->o.train_threads;
    bool background = ix->o.background;
    ix->o = mf->o;
    ix->o.train_threads = threads;
    ix->o.background = background;
    return WR_OK;
}

static wr_status load_agents(vec_index *ix, const manifest *mf, const char *path)
{
    dec d = {mf->agents, mf->agents_end, false};
    wr_buf name = {0};
    wr_status st = WR_OK;
    for (uint32_t a = 1; a <= mf->nagents && st == WR_OK; a++) {
        uint32_t len = dec_u32(&d), id;
        const uint8_t *s = dec_take(&d, len);
        name.len = 0;
        if (!s) { /* cannot happen: mf_parse walked the same bytes */
            st = VF_CORRUPT(path, "agent dictionary runs past the end");
            break;
        }
        if ((st = wr_buf_append(&name, s, len)) != WR_OK ||
            (st = wr_buf_append(&name, "", 1)) != WR_OK)
            break;
        if ((st = vec_agent_id(ix, (const char *)name.ptr, &id)) != WR_OK)
            break;
        if (id != a)
            st = VF_CORRUPT(path, "agent \"%s\" is in the dictionary twice (ids %u and %u)",
                            (const char *)name.ptr, id, a);
    }
    wr_buf_fini(&name);
    return st;
}

static wr_status load_quant(vec_index *ix, const vf_view *v)
{
    const vf_hdr *h = &v->h;
    vec_quant *q = wr_calloc(1, sizeof *q);
    if (!q)
        return wr_err(WR_ERR_NOMEM, "vector index %s: no memory", v->path);
    atomic_init(&q->refs, 1);
    q->version = h->gen;
    q->metric = (vec_metric)wr_get32(h->kf);
    q->dim = h->dim;
    q->nlist = wr_get32(h->kf + 4);
    q->m = wr_get32(h->kf + 8);
    q->nbits = wr_get32(h->kf + 12);
    q->ksub = wr_get32(h->kf + 16);
    q->dsub = wr_get32(h->kf + 20);
    q->trained_on = wr_get64(h->kf + 24);
    memcpy(&q->trained_err, h->kf + 32, 8);
    memcpy(&q->trained_imbalance, h->kf + 40, 8);
    size_t cbytes = (size_t)q->nlist * q->dim * sizeof(float);
    size_t qbytes = (size_t)q->m * q->ksub * q->dsub * sizeof(float);
    q->centroids = wr_malloc(cbytes);
    q->cnorm = wr_malloc((size_t)q->nlist * sizeof(float));
    q->codebook = wr_malloc(qbytes);
    if (!q->centroids || !q->cnorm || !q->codebook) {
        vec_quant_unref(q);
        return wr_err(WR_ERR_NOMEM, "vector index %s: no memory for the quantizer", v->path);
    }
    memcpy(q->centroids, v->body, cbytes);
    memcpy(q->codebook, v->body + cbytes, qbytes);
    vec_norms(ix->kern, q->centroids, q->nlist, q->dim, q->cnorm);
    ix->q = q; /* from here vec_close frees it */
    return vec_quant_finish(ix->kern, q);
}

/* Copies partition @pi from its checked views into the index. */
static wr_status load_part(vec_index *ix, uint32_t pi, const vf_view v[4], char *key)
{
    vec_part *p = &ix->parts[pi];
    uint32_t dim = ix->o.dim, n = (uint32_t)v[VF_VEC].h.slots;
    const uint8_t *kb = v[VF_KEY].body;
    const uint8_t *times = kb, *agents = kb + 8ull * n, *lens = kb + 12ull * n;
    const uint8_t *keys = kb + 16ull * n, *dead = v[VF_TOMB].body;
    const char *kpath = v[VF_KEY].path;

    for (uint32_t s = 0; s < n; s++) {
        uint32_t len = wr_get32(lens + 4ull * s), slot;
        memcpy(key, keys, len);
        key[len] = '\0';
        keys += len;
        WR_TRY(vec_part_append(
            ix, p, key, (const float *)(const void *)v[VF_VEC].body + (size_t)s * dim,
            wr_get32(agents + 4ull * s), (int64_t)wr_get64(times + 8ull * s), &slot));
        if (slot != s)
            return wr_err(WR_ERR_INTERNAL, "vector index %s: slot %u appended as %u", kpath, s,
                          slot);
        if (dead[s / 8] >> (s % 8) & 1) {
            p->dead[s] = 1;
            p->live--;
            ix->deleted++;
            continue;
        }
        const char *k = vec_slot_key(ix, p, s);
        uint64_t at;
        if (vec_map_get(&ix->kmap, k, &at))
            return VF_CORRUPT(kpath, "live key \"%s\" is also live in partition %u slot %u", k,
                              (uint32_t)(at >> 32), (uint32_t)at);
        WR_TRY(vec_map_put(&ix->kmap, k, (uint64_t)pi << 32 | s));
        ix->live++;
    }
    if (!ix->q)
        return WR_OK;

    /* lists: n and cap from the directory, then each list's slots and codes */
    const vec_quant *q = ix->q;
    if (!(p->lists = vec_lists_create(ix->q)))
        return wr_err(WR_ERR_NOMEM, "vector index %s: no memory for lists", v[VF_LIST].path);
    const uint8_t *lb = v[VF_LIST].body, *at = lb + 8ull * q->nlist;
    for (uint32_t i = 0; i < q->nlist; i++) {
        vec_list *l = &p->lists->l[i];
        uint32_t ln = wr_get32(lb + 8ull * i), cap = wr_get32(lb + 8ull * i + 4);
        size_t cb = (size_t)list_bytes(q->nbits, q->m, ln);
        if (cap == 0)
            continue;
        l->slots = wr_malloc((size_t)cap * sizeof(uint32_t));
        l->codes = wr_calloc((size_t)list_bytes(q->nbits, q->m, cap), 1);
        l->term = wr_malloc((size_t)cap * sizeof(float));
        if (!l->slots || !l->codes || !l->term)
            return wr_err(WR_ERR_NOMEM, "vector index %s: no memory for list %u of %u entries",
                          v[VF_LIST].path, i, cap);
        l->cap = cap;
        l->n = ln;
        memcpy(l->slots, at, 4ull * ln);
        memcpy(l->codes, at + 4ull * ln, cb);
        vec_list_terms(ix->kern, q, l, i); /* derived from the codes, as when they were added */
        for (uint32_t j = 0; j < ln; j++) {
            uint32_t s = l->slots[j];
            p->list[s] = i;
            p->pos[s] = j;
            l->dead += p->dead[s];
        }
        at += 4ull * ln + cb;
    }
    return WR_OK;
}

wr_status vec_file_load(vec_index *ix)
{
    char mpath[PATH_MAX];
    wr_buf raw = {0};
    manifest mf;
    vf_view v[4], vq;
    qinfo qi;
    char *key = NULL;
    wr_status st;

    memset(v, 0, sizeof v);
    memset(&vq, 0, sizeof vq);
    if ((st = mf_read(ix->dir, &raw, &mf, mpath, sizeof mpath)) != WR_OK)
        goto out;
    if ((st = load_options(ix, &mf)) != WR_OK || (st = load_agents(ix, &mf, mpath)) != WR_OK)
        goto out;
    if (mf.quant_version) {
        if ((st = check_quant(&vq, ix->dir, &mf, &qi)) != WR_OK ||
            (st = load_quant(ix, &vq)) != WR_OK)
            goto out;
        vf_close(&vq);
    }
    if (!(key = wr_malloc(VF_KEY_MAX + 1))) {
        st = wr_err(WR_ERR_NOMEM, "vector index %s: no memory", ix->dir);
        goto out;
    }
    for (uint32_t p = 0; p < mf.o.partitions; p++) {
        if ((st = check_part(v, ix->dir, &mf, p, ix->q ? &qi : NULL)) != WR_OK ||
            (st = load_part(ix, p, v, key)) != WR_OK)
            goto out;
        views_close(v, 4);
    }
    if (ix->live != mf.live || ix->deleted != mf.deleted) {
        st = VF_CORRUPT(mpath, "loaded %llu live and %llu deleted vectors; it says %llu and %llu",
                        (unsigned long long)ix->live, (unsigned long long)ix->deleted,
                        (unsigned long long)mf.live, (unsigned long long)mf.deleted);
        goto out;
    }
    ix->next_version = mf.next_version;
    if (ix->q && ix->next_version <= ix->q->version)
        ix->next_version = ix->q->version + 1;
    if (ix->next_version == 0)
        ix->next_version = 1;
    ix->added_since_train = mf.added_since_train;
    ix->added_err_sum = mf.added_err_sum;
    ix->retrains = 0;
    ix->calib = mf.calib;
    ix->calib_wanted = mf.calib_wanted;
    memcpy(ix->calib_targets, mf.calib_targets, sizeof ix->calib_targets);
    ix->calib_target_cnt = mf.calib_target_cnt;
    ix->file_gen = mf.gen;
out:
    views_close(v, 4);
    vf_close(&vq);
    wr_free(key);
    mf_fini(&mf);
    wr_buf_fini(&raw);
    return st;
}

/* ------------------------------------------------------------------ verify */
wr_status vec_verify(const char *dir)
{
    char mpath[PATH_MAX];
    wr_buf raw = {0};
    manifest mf;
    vf_view v[4], vq;
    qinfo qi;
    vec_map keys, agents;
    vec_arena arena;
    wr_status st;

    memset(v, 0, sizeof v);
    memset(&vq, 0, sizeof vq);
    memset(&arena, 0, sizeof arena);
    memset(&keys, 0, sizeof keys);
    memset(&agents, 0, sizeof agents);
    if ((st = mf_read(dir, &raw, &mf, mpath, sizeof mpath)) != WR_OK)
        goto out;
    if ((st = vec_map_init(&keys, 1024)) != WR_OK || (st = vec_map_init(&agents, 16)) != WR_OK)
        goto out;
    /* the agent dictionary: no name twice */
    dec d = {mf.agents, mf.agents_end, false};
    for (uint32_t a = 1; a <= mf.nagents && st == WR_OK; a++) {
        uint32_t len = dec_u32(&d);
        const uint8_t *s = dec_take(&d, len);
        uint64_t off, prev;
        if (!s || (st = vec_arena_add(&arena, (const char *)s, len, &off)) != WR_OK)
            break;
        const char *name = vec_arena_at(&arena, off);
        if (vec_map_get(&agents, name, &prev))
            st = VF_CORRUPT(mpath, "agent \"%s\" is in the dictionary twice (ids %llu and %u)",
                            name, (unsigned long long)prev, a);
        else
            st = vec_map_put(&agents, name, a);
    }
    if (st != WR_OK)
        goto out;
    if (mf.quant_version) {
        if ((st = check_quant(&vq, dir, &mf, &qi)) != WR_OK)
            goto out;
        vf_close(&vq);
    }
    for (uint32_t p = 0; p < mf.o.partitions; p++) {
        if ((st = check_part(v, dir, &mf, p, mf.quant_version ? &qi : NULL)) != WR_OK)
            goto out;
        /* a live key must be live once in the whole index */
        uint64_t n = mf.parts[p].slots;
        const uint8_t *lens = v[VF_KEY].body + 12 * n, *kp = v[VF_KEY].body + 16 * n;
        for (uint64_t s = 0; s < n && st == WR_OK; s++) {
            uint32_t len = wr_get32(lens + 4 * s);
            uint64_t off, prev;
            if (!(v[VF_TOMB].body[s / 8] >> (s % 8) & 1)) {
                if ((st = vec_arena_add(&arena, (const char *)kp, len, &off)) != WR_OK)
                    break;
                const char *k = vec_arena_at(&arena, off);
                if (vec_map_get(&keys, k, &prev))
                    st = VF_CORRUPT(v[VF_KEY].path,
                                    "live key \"%s\" (slot %llu) is also live in partition %u "
                                    "slot %u",
                                    k, (unsigned long long)s, (uint32_t)(prev >> 32),
                                    (uint32_t)prev);
                else
                    st = vec_map_put(&keys, k, (uint64_t)p << 32 | s);
            }
            kp += len;
        }
        views_close(v, 4);
        if (st != WR_OK)
            goto out;
    }
out:
    views_close(v, 4);
    vf_close(&vq);
    vec_map_fini(&keys);
    vec_map_fini(&agents);
    vec_arena_fini(&arena);
    mf_fini(&mf);
    wr_buf_fini(&raw);
    return st;
}

/* ------------------------------------------------------------------ writer */
/* One data file being written: the header, then body bytes cut into units as they come (a
 * unit ends every @block bytes, or at fw_unit_end when block is 0), buffered and written in
 * large sequential writes, then the checksum table; fdatasync; close. Errors are sticky. */
typedef struct fw {
    char path[PATH_MAX];
    char name[VF_NAME_MAX + 1];
    int fd;
    uint64_t block;
    wr_buf buf; /* not yet written; the open unit is buf[ustart, len) */
    size_t ustart;
    uint64_t off;  /* file offset of buf[0] */
    uint64_t body; /* body bytes so far */
    wr_buf sums;   /* checksum table */
    uint8_t hdr[VF_HDR];
    wr_status st;
} fw;

static wr_status fw_open(fw *w, const char *dir, const char *name, const vf_hdr *h)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->block = h->block;
    hdr_encode(h, w->hdr);
    snprintf(w->name, sizeof w->name, "%s", name);
    if ((w->st = wr_path(w->path, sizeof w->path, "%s/%s", dir, name)) != WR_OK)
        return w->st;
    /* a file of this name is a leftover of a failed save: no MANIFEST names it */
    if (unlink(w->path) != 0 && errno != ENOENT)
        return w->st = vf_bad(wr_status_from_errno(errno), w->path, "remove a stale file: %s",
                              strerror(errno));
    if ((w->st = wr_file_create(w->path, &w->fd)) != WR_OK)
        return w->st;
    w->st = wr_buf_append(&w->buf, w->hdr, VF_HDR);
    w->ustart = w->buf.len;
    return w->st;
}

static void fw_flush(fw *w)
{
    if (w->st != WR_OK || w->buf.len == 0)
        return;
    w->st = wr_pwrite_all(w->fd, w->buf.ptr, w->buf.len, w->off, w->path);
    w->off += w->buf.len;
    w->buf.len = 0;
    w->ustart = 0;
}

static void fw_unit_end(fw *w)
{
    uint8_t s[8];
    if (w->st != WR_OK)
        return;
    wr_put64(s, wr_xxh3(w->buf.ptr + w->ustart, w->buf.len - w->ustart));
    if ((w->st = wr_buf_append(&w->sums, s, 8)) != WR_OK)
        return;
    w->ustart = w->buf.len;
    if (w->buf.len >= VF_FLUSH)
        fw_flush(w);
}

static void fw_put(fw *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0 && w->st == WR_OK) {
        size_t take = n;
        if (w->block && take > w->block - (w->buf.len - w->ustart))
            take = w->block - (w->buf.len - w->ustart);
        if ((w->st = wr_buf_append(&w->buf, b, take)) != WR_OK)
            return;
        w->body += take;
        b += take;
        n -= take;
        if (w->block && w->buf.len - w->ustart == w->block)
            fw_unit_end(w);
    }
}

/* Ends the body, writes the checksum table, syncs and closes; @out gets name, size, digest. */
static wr_status fw_finish(fw *w, mf_file *out)
{
    if (w->block && w->buf.len > w->ustart)
        fw_unit_end(w);
    if (w->st != WR_OK)
        return w->st;
    uint64_t body = wr_get64(w->hdr + 32), units = wr_get64(w->hdr + 40);
    if (w->body != body || w->sums.len != units * 8)
        return w->st = wr_err(WR_ERR_INTERNAL,
                              "vector index %s: wrote %llu body bytes and %zu checksums; the "
                              "header says %llu and %llu",
                              w->path, (unsigned long long)w->body, w->sums.len / 8,
                              (unsigned long long)body, (unsigned long long)units);
    if (w->sums.len && (w->st = wr_buf_append(&w->buf, w->sums.ptr, w->sums.len)) != WR_OK)
        return w->st;
    fw_flush(w);
    if (w->st == WR_OK)
        w->st = wr_fdatasync(w->fd, w->path);
    if (w->st != WR_OK)
        return w->st;
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0)
        return w->st = vf_bad(wr_status_from_errno(errno), w->path, "close: %s", strerror(errno));
    snprintf(out->name, sizeof out->name, "%s", w->name);
    out->size = w->off;
    out->digest =
        wr_xxh3_seed(w->sums.len ? w->sums.ptr : w->hdr, w->sums.len, wr_get64(w->hdr + 120));
    return WR_OK;
}

static void fw_free(fw *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    wr_buf_fini(&w->buf);
    wr_buf_fini(&w->sums);
}

/* ------------------------------------------------------------------ writing each kind */
static wr_status write_quant(const vec_index *ix, const vec_quant *q, mf_file *out)
{
    char name[64];
    fw w;
    vf_hdr h = hdr_base(VF_QUANT, VF_NO_PART, q->dim, q->version, 0);
    size_t cbytes = (size_t)q->nlist * q->dim * sizeof(float);
    size_t qbytes = (size_t)q->m * q->ksub * q->dsub * sizeof(float);
    h.body = cbytes + qbytes;
    h.units = units_of(h.body, h.block);
    wr_put32(h.kf, (uint32_t)q->metric);
    wr_put32(h.kf + 4, q->nlist);
    wr_put32(h.kf + 8, q->m);
    wr_put32(h.kf + 12, q->nbits);
    wr_put32(h.kf + 16, q->ksub);
    wr_put32(h.kf + 20, q->dsub);
    wr_put64(h.kf + 24, q->trained_on);
    memcpy(h.kf + 32, &q->trained_err, 8);
    memcpy(h.kf + 40, &q->trained_imbalance, 8);
    quant_name(name, sizeof name, q->version);
    if (fw_open(&w, ix->dir, name, &h) == WR_OK) {
        fw_put(&w, q->centroids, cbytes);
        fw_put(&w, q->codebook, qbytes);
    }
    wr_status st = w.st == WR_OK ? fw_finish(&w, out) : w.st;
    fw_free(&w);
    return st;
}

static wr_status write_vectors(const vec_index *ix, const vec_part *p, uint32_t pi, uint64_t gen,
                               mf_file *out)
{
    char name[64];
    fw w;
    uint32_t dim = ix->o.dim, n = p->nslots;
    vf_hdr h = hdr_base(VF_VEC, pi, dim, gen, n);
    h.body = (uint64_t)n * dim * sizeof(float);
    h.units = units_of(h.body, h.block);
    part_name(name, sizeof name, pi, gen, VF_VEC);
    if (fw_open(&w, ix->dir, name, &h) == WR_OK)
        for (uint32_t c = 0; (uint64_t)c * VEC_CHUNK < n; c++) {
            uint32_t cnt = n - c * VEC_CHUNK < VEC_CHUNK ? n - c * VEC_CHUNK : VEC_CHUNK;
            fw_put(&w, p->chunks[c], (size_t)cnt * dim * sizeof(float));
        }
    wr_status st = w.st == WR_OK ? fw_finish(&w, out) : w.st;
    fw_free(&w);
    return st;
}

static wr_status write_keys(const vec_index *ix, const vec_part *p, uint32_t pi, uint64_t gen,
                            mf_file *out)
{
    enum { PIECE = 1024 };
    char name[64];
    uint32_t tmp[PIECE];
    fw w;
    uint32_t n = p->nslots;
    uint64_t kbytes = 0;
    for (uint32_t s = 0; s < n; s++)
        kbytes += strlen(vec_slot_key(ix, p, s));
    vf_hdr h = hdr_base(VF_KEY, pi, ix->o.dim, gen, n);
    h.body = 16ull * n + kbytes;
    h.units = units_of(h.body, h.block);
    wr_put64(h.kf, kbytes);
    part_name(name, sizeof name, pi, gen, VF_KEY);
    if (fw_open(&w, ix->dir, name, &h) == WR_OK) {
        fw_put(&w, p->time, (size_t)n * sizeof(int64_t));
        fw_put(&w, p->agent, (size_t)n * sizeof(uint32_t));
        for (uint32_t s = 0; s < n; s += PIECE) {
            uint32_t cnt = n - s < PIECE ? n - s : PIECE;
            for (uint32_t i = 0; i < cnt; i++)
                tmp[i] = (uint32_t)strlen(vec_slot_key(ix, p, s + i));
            fw_put(&w, tmp, cnt * sizeof(uint32_t));
        }
        for (uint32_t s = 0; s < n; s++) {
            const char *k = vec_slot_key(ix, p, s);
            fw_put(&w, k, strlen(k));
        }
    }
    wr_status st = w.st == WR_OK ? fw_finish(&w, out) : w.st;
    fw_free(&w);
    return st;
}

static wr_status write_tombs(const vec_index *ix, const vec_part *p, uint32_t pi, uint64_t gen,
                             mf_file *out)
{
    enum { PIECE = 4096 };
    char name[64];
    uint8_t tmp[PIECE];
    fw w;
    uint32_t n = p->nslots;
    vf_hdr h = hdr_base(VF_TOMB, pi, ix->o.dim, gen, n);
    h.body = (n + 7ull) / 8;
    h.units = units_of(h.body, h.block);
    wr_put64(h.kf, p->live);
    part_name(name, sizeof name, pi, gen, VF_TOMB);
    if (fw_open(&w, ix->dir, name, &h) == WR_OK)
        for (uint32_t s = 0; s < n; s += PIECE * 8) {
            uint32_t cnt = n - s < PIECE * 8 ? n - s : PIECE * 8;
            memset(tmp, 0, sizeof tmp);
            for (uint32_t i = 0; i < cnt; i++)
                if (p->dead[s + i])
                    tmp[i / 8] |= (uint8_t)(1u << (i % 8));
            fw_put(&w, tmp, (cnt + 7) / 8);
        }
    wr_status st = w.st == WR_OK ? fw_finish(&w, out) : w.st;
    fw_free(&w);
    return st;
}

static wr_status write_lists(const vec_index *ix, const vec_part *p, uint32_t pi, uint64_t gen,
                             mf_file *out)
{
    enum { PIECE = 512 };
    char name[64];
    uint8_t dir[PIECE * 8], last[256 * 16];
    fw w;
    const vec_lists *ls = p->lists;
    const vec_quant *q = ls->q;
    uint64_t entries = 0, body = 8ull * q->nlist;
    for (uint32_t i = 0; i < q->nlist; i++) {
        entries += ls->l[i].n;
        body += 4ull * ls->l[i].n + list_bytes(q->nbits, q->m, ls->l[i].n);
    }
    vf_hdr h = hdr_base(VF_LIST, pi, ix->o.dim, gen, p->nslots);
    h.body = body;
    h.units = (uint64_t)q->nlist + 1;
    wr_put64(h.kf, q->version);
    wr_put32(h.kf + 8, q->nlist);
    wr_put32(h.kf + 12, q->m);
    wr_put32(h.kf + 16, q->nbits);
    wr_put64(h.kf + 24, entries);
    part_name(name, sizeof name, pi, gen, VF_LIST);
    if (fw_open(&w, ix->dir, name, &h) == WR_OK) {
        for (uint32_t i = 0; i < q->nlist; i += PIECE) {
            uint32_t cnt = q->nlist - i < PIECE ? q->nlist - i : PIECE;
            for (uint32_t j = 0; j < cnt; j++) {
                wr_put32(dir + 8 * j, ls->l[i + j].n);
                wr_put32(dir + 8 * j + 4, ls->l[i + j].cap);
            }
            fw_put(&w, dir, (size_t)cnt * 8);
        }
        fw_unit_end(&w);
        for (uint32_t i = 0; i < q->nlist; i++) {
            const vec_list *l = &ls->l[i];
            size_t cb = (size_t)list_bytes(q->nbits, q->m, l->n);
            fw_put(&w, l->slots, (size_t)l->n * sizeof(uint32_t));
            if (q->nbits == 4 && l->n % VK_BLOCK != 0) {
                /* the last block with its padding entries cleared to code 0 */
                size_t bb = (size_t)q->m * 16;
                fw_put(&w, l->codes, cb - bb);
                memcpy(last, l->codes + cb - bb, bb);
                for (uint32_t e = l->n % VK_BLOCK; e < VK_BLOCK; e++)
                    for (uint32_t j = 0; j < q->m; j++)
                        last[j * 16 + (e & 15)] &= e < 16 ? 0xf0 : 0x0f;
                fw_put(&w, last, bb);
            } else {
                fw_put(&w, l->codes, cb);
            }
            fw_unit_end(&w);
        }
    }
    wr_status st = w.st == WR_OK ? fw_finish(&w, out) : w.st;
    fw_free(&w);
    return st;
}

/* ------------------------------------------------------------------ save */
/* Unlinks files of the naming scheme that the MANIFEST just written does not name. A failure
 * only leaves a file behind for the next save to remove. */
static void remove_unnamed(const char *dir, uint64_t gen, uint32_t nparts, uint64_t qver)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char canon[64], path[PATH_MAX];

    if (!d) {
        WR_LOGW("vector index %s: cannot list the directory to remove old files: %s", dir,
                strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        unsigned pp;
        unsigned long long g;
        char ext[4];
        bool keep;
        if (sscanf(nm, "p%u-%llu.%3[a-z]", &pp, &g, ext) == 3) {
            int k = -1;
            for (int i = 0; i < VF_QUANT; i++)
                if (strcmp(ext, vf_ext[i]) == 0)
                    k = i;
            if (k < 0)
                continue;
            part_name(canon, sizeof canon, pp, g, k);
            keep = g == gen && pp < nparts && (k != VF_LIST || qver != 0);
        } else if (sscanf(nm, "quant-%llu.ivq", &g) == 1) {
            quant_name(canon, sizeof canon, g);
            keep = qver != 0 && g == qver;
        } else {
            continue;
        }
        if (strcmp(canon, nm) != 0 || keep)
            continue; /* not a name this code makes, or still named */
        if (wr_path(path, sizeof path, "%s/%s", dir, nm) != WR_OK || unlink(path) != 0)
            WR_LOGW("vector index %s: cannot remove the old file %s: %s", dir, nm, strerror(errno));
    }
    closedir(d);
}

/* Removes what a failed save created (never a file the MANIFEST on disk names). */
static void remove_created(const char *dir, uint64_t gen, uint32_t nparts, uint64_t qver)
{
    char name[64], path[PATH_MAX];
    for (uint32_t p = 0; p < nparts; p++)
        for (int k = 0; k < VF_QUANT; k++) {
            part_name(name, sizeof name, p, gen, k);
            if (wr_path(path, sizeof path, "%s/%s", dir, name) == WR_OK)
                (void)unlink(path);
        }
    if (qver) {
        quant_name(name, sizeof name, qver);
        if (wr_path(path, sizeof path, "%s/%s", dir, name) == WR_OK)
            (void)unlink(path);
    }
}

wr_status vec_file_save(vec_index *ix)
{
    char mpath[PATH_MAX];
    wr_buf oldraw = {0};
    manifest old, mf;
    enc e = {{0}, WR_OK};
    uint64_t wrote_quant = 0;
    wr_status st;

    memset(&mf, 0, sizeof mf);
    bool have_old = mf_read(ix->dir, &oldraw, &old, mpath, sizeof mpath) == WR_OK;
    wr_err_clear();
    uint64_t gen = ix->file_gen;
    if (have_old && old.gen > gen)
        gen = old.gen;
    gen++;
    mf.gen = gen;
    if (!(mf.parts = wr_calloc(ix->o.partitions, sizeof(mf_part)))) {
        st = wr_err(WR_ERR_NOMEM, "vector index %s: no memory to save", ix->dir);
        goto out;
    }
    if (ix->q) {
        mf.quant_version = ix->q->version;
        char qname[64];
        quant_name(qname, sizeof qname, ix->q->version);
        /* versions are never reused within a directory's save history: the file the
         * MANIFEST names for this version holds this quantizer */
        if (have_old && old.quant_version == ix->q->version && strcmp(old.quant.name, qname) == 0) {
            mf.quant = old.quant;
        } else {
            wrote_quant = ix->q->version;
            if ((st = write_quant(ix, ix->q, &mf.quant)) != WR_OK)
                goto err_remove;
        }
    }
    for (uint32_t p = 0; p < ix->o.partitions; p++) {
        const vec_part *pt = &ix->parts[p];
        mf_part *mp = &mf.parts[p];
        mp->slots = pt->nslots;
        mp->live = pt->live;
        if (ix->q && (!pt->lists || pt->lists->q != ix->q)) {
            st = wr_err(WR_ERR_INTERNAL,
                        "vector index %s: partition %u has no lists of the current quantizer",
                        ix->dir, p);
            goto err_remove;
        }
        if ((st = write_vectors(ix, pt, p, gen, &mp->f[VF_VEC])) != WR_OK ||
            (st = write_keys(ix, pt, p, gen, &mp->f[VF_KEY])) != WR_OK ||
            (st = write_tombs(ix, pt, p, gen, &mp->f[VF_TOMB])) != WR_OK ||
            (ix->q && (st = write_lists(ix, pt, p, gen, &mp->f[VF_LIST])) != WR_OK))
            goto err_remove;
    }
    if ((st = wr_fsync_dir(ix->dir)) != WR_OK || (st = mf_encode(ix, &mf, &e)) != WR_OK)
        goto err_remove;
    if ((st = wr_path(mpath, sizeof mpath, "%s/MANIFEST", ix->dir)) != WR_OK)
        goto err_remove;
    /* From here a failure may come after the rename (the directory fsync): the new MANIFEST
     * may be in force, so its files stay; the next save removes them if they are not named. */
    if ((st = wr_file_write_atomic(mpath, e.b.ptr, e.b.len)) != WR_OK)
        goto out;
    ix->file_gen = gen;
    remove_unnamed(ix->dir, gen, ix->o.partitions, mf.quant_version);
    goto out;
err_remove:
    remove_created(ix->dir, gen, ix->o.partitions, wrote_quant);
out:
    wr_buf_fini(&e.b);
    mf_fini(&mf);
    mf_fini(&old);
    wr_buf_fini(&oldraw);
    return st;
}

wr_status vec_save(vec_index *ix)
{
    if (!ix->dir)
        return wr_err(WR_ERR_INVAL, "vector index: vec_save on an index opened in memory (dir "
                                    "NULL); open it with a directory to save it");
    pthread_mutex_lock(&ix->wmu);
    pthread_rwlock_rdlock(&ix->lk);
    wr_status st = vec_file_save(ix);
    pthread_rwlock_unlock(&ix->lk);
    pthread_mutex_unlock(&ix->wmu);
    return st;
}

/* vec_list.c -- inverted lists: slots and PQ codes of the vectors assigned to one centroid.
 * 8-bit codes are stored plainly (m bytes per vector). 4-bit codes are stored in the
 * fast-scan layout (vec_kern.h): blocks of 32 vectors, m * 16 bytes per block, so a list is
 * scanned block by block with the lookup tables held in registers. Entries past n in the
 * last block have code 0 and are never reported (the scan stops at n). */
#include "vec_int.h"

static size_t list_code_bytes(const vec_quant *q, uint32_t cap)
{
    if (q->nbits == 8)
        return (size_t)cap * q->m;
    return (size_t)(cap / VK_BLOCK) * q->m * 16;
}

vec_lists *vec_lists_create(vec_quant *q)
{
    vec_lists *ls = wr_calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    ls->l = wr_calloc(q->nlist, sizeof(vec_list));
    if (!ls->l) {
        wr_free(ls);
        return NULL;
    }
    vec_quant_ref(q);
    ls->q = q;
    return ls;
}

void vec_lists_destroy(vec_lists *ls)
{
    if (!ls)
        return;
    for (uint32_t i = 0; i < ls->q->nlist; i++) {
        wr_free(ls->l[i].slots);
        wr_free(ls->l[i].codes);
        wr_free(ls->l[i].term);
    }
    wr_free(ls->l);
    vec_quant_unref(ls->q);
    wr_free(ls);
}

static wr_status list_grow(const vec_quant *q, vec_list *l, uint32_t want)
{
    if (want <= l->cap)
        return WR_OK;
    uint32_t cap = l->cap ? l->cap : VK_BLOCK;
    while (cap < want)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX - (UINT32_MAX % VK_BLOCK) : cap * 2;
    uint32_t *slots = wr_realloc(l->slots, (size_t)cap * sizeof(uint32_t));
    if (!slots)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory to grow a list to %u", cap);
    l->slots = slots;
    float *term = wr_realloc(l->term, (size_t)cap * sizeof(float));
    if (!term)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory to grow a list to %u", cap);
    l->term = term;
    size_t old = l->codes ? list_code_bytes(q, l->cap) : 0, now = list_code_bytes(q, cap);
    uint8_t *codes = wr_realloc(l->codes, now);
    if (!codes)
        return wr_err(WR_ERR_NOMEM, "vector index: no memory to grow a list to %u", cap);
    memset(codes + old, 0, now - old);
    l->codes = codes;
    l->cap = cap;
    return WR_OK;
}

/* Writes the plain code of entry pos into the list's layout. */
static void list_put(const vec_quant *q, vec_list *l, uint32_t pos, const uint8_t *code)
{
    if (q->nbits == 8) {
        memcpy(l->codes + (size_t)pos * q->m, code, q->m);
        return;
    }
    uint8_t *blk = l->codes + (size_t)(pos / VK_BLOCK) * q->m * 16;
    uint32_t v = pos % VK_BLOCK;
    for (uint32_t j = 0; j < q->m; j++) {
        uint8_t *b = blk + j * 16 + (v & 15);
        if (v < 16)
            *b = (uint8_t)((*b & 0xf0) | (code[j] & 15));
        else
            *b = (uint8_t)((*b & 0x0f) | (code[j] << 4));
    }
}

void vec_list_code(const vec_quant *q, const vec_list *l, uint32_t pos, uint8_t *code_out)
{
    if (q->nbits == 8) {
        memcpy(code_out, l->codes + (size_t)pos * q->m, q->m);
        return;
    }
    const uint8_t *blk = l->codes + (size_t)(pos / VK_BLOCK) * q->m * 16;
    for (uint32_t j = 0; j < q->m; j++)
        code_out[j] = vk_code4(blk, pos % VK_BLOCK, j);
}

wr_status vec_list_add(const vk_ops *kern, const vec_quant *q, vec_list *l, uint32_t li,
                       uint32_t slot, const uint8_t *code, uint32_t *pos_out)
{
    if (l->n == UINT32_MAX - VK_BLOCK)
        return wr_err(WR_ERR_FULL, "vector index: a list is full");
    WR_TRY(list_grow(q, l, l->n + 1));
    list_put(q, l, l->n, code);
    l->slots[l->n] = slot;
    float t = vec_quant_term(kern, q, li, code);
    l->term[l->n] = t;
    l->term_lo = l->n == 0 || t < l->term_lo ? t : l->term_lo;
    *pos_out = l->n++;
    return WR_OK;
}

void vec_list_terms(const vk_ops *kern, const vec_quant *q, vec_list *l, uint32_t li)
{
    uint8_t code[VEC_MAX_M];
    for (uint32_t i = 0; i < l->n; i++) {
        vec_list_code(q, l, i, code);
        l->term[i] = vec_quant_term(kern, q, li, code);
        l->term_lo = i == 0 || l->term[i] < l->term_lo ? l->term[i] : l->term_lo;
    }
}

wr_status vec_list_compact(const vec_quant *q, vec_list *l, const uint8_t *dead, uint32_t *pos)
{
    uint8_t code[VEC_MAX_M];
    if (q->m > sizeof code)
        return wr_err(WR_ERR_UNSUPPORTED, "vector index: m=%u too large to compact", q->m);
    uint32_t w = 0;
    for (uint32_t r = 0; r < l->n; r++) {
        uint32_t s = l->slots[r];
        if (dead[s])
            continue;
        if (w != r) {
            vec_list_code(q, l, r, code);
            list_put(q, l, w, code);
            l->slots[w] = s;
            l->term[w] = l->term[r];
        }
        pos[s] = w++;
    }
    /* clear the codes past the new end, so the last block's padding reads as code 0 */
    if (q->nbits == 8) {
        memset(l->codes + (size_t)w * q->m, 0, (size_t)(l->n - w) * q->m);
    } else {
        memset(code, 0, q->m);
        for (uint32_t r = w; r < l->n; r++)
            list_put(q, l, r, code);
    }
    l->n = w;
    l->dead = 0;
    return WR_OK;
}

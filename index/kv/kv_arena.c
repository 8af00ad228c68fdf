/* kv_arena.c -- bump allocator for the memtable (kv_mem.h).
 *
 * Memory comes from wr_malloc() in blocks; each block starts with a header that links it into
 * the arena's list, so kv_arena_fini() frees them all at once:
 *
 *     | kv_arena_block {next} | payload ... |
 *
 * Invariants: (1) ptr and left describe the tail of the current standard block (both 0/NULL
 * before the first one); (2) a request over block_size / 4 gets a dedicated block and leaves
 * the current block as it was, so small allocations keep filling it; (3) usage is the sum of
 * the sizes passed to wr_malloc(), updated before the memory is handed out; (4) a failed
 * allocation changes nothing. */
#include <assert.h>
#include <stdalign.h>
#include <stdint.h>

#include "kv_mem.h"

struct kv_arena_block {
    kv_arena_block *next;
    alignas(max_align_t) uint8_t data[]; /* payload */
};

void kv_arena_init(kv_arena *a, size_t block_size)
{
    a->ptr = NULL;
    a->left = 0;
    a->block_size = block_size < KV_ARENA_BLOCK_MIN ? KV_ARENA_BLOCK_MIN : block_size;
    a->blocks = NULL;
    atomic_init(&a->usage, 0);
}

void kv_arena_fini(kv_arena *a)
{
    kv_arena_block *b = a->blocks, *next;

    while (b != NULL) {
        next = b->next;
        wr_free(b);
        b = next;
    }
    a->blocks = NULL;
    a->ptr = NULL;
    a->left = 0;
    atomic_store_explicit(&a->usage, 0, memory_order_relaxed);
}

/* A new block with @payload bytes, linked into the list. NULL when wr_malloc() fails. */
static kv_arena_block *kv_arena_block_new(kv_arena *a, size_t payload)
{
    size_t n = sizeof(kv_arena_block) + payload;
    kv_arena_block *b;

    if (payload > SIZE_MAX - sizeof(kv_arena_block) || (b = wr_malloc(n)) == NULL)
        return NULL;
    b->next = a->blocks;
    a->blocks = b;
    /* only the owning thread writes usage; others read it for the flush trigger */
    atomic_store_explicit(&a->usage, atomic_load_explicit(&a->usage, memory_order_relaxed) + n,
                          memory_order_relaxed);
    return b;
}

static size_t kv_arena_pad(const uint8_t *p, size_t align)
{
    return (size_t)(-(uintptr_t)p) & (align - 1);
}

void *kv_arena_alloc(kv_arena *a, size_t n, size_t align)
{
    kv_arena_block *b;
    size_t pad;

    assert(align != 0 && (align & (align - 1)) == 0 && align <= 64);
    if (a->ptr != NULL) {
        pad = kv_arena_pad(a->ptr, align);
        if (pad <= a->left && n <= a->left - pad) {
            uint8_t *p = a->ptr + pad;
            a->ptr = p + n;
            a->left -= pad + n;
            return p;
        }
    }
    if (n > a->block_size / 4) {
        /* dedicated block: the current one keeps serving small requests */
        if (n > SIZE_MAX - align || (b = kv_arena_block_new(a, n + align)) == NULL)
            return NULL;
        return b->data + kv_arena_pad(b->data, align);
    }
    /* the tail of the current block is wasted: it is under a quarter of a block */
    if ((b = kv_arena_block_new(a, a->block_size)) == NULL)
        return NULL;
    pad = kv_arena_pad(b->data, align);
    a->ptr = b->data + pad + n;
    a->left = a->block_size - pad - n;
    return b->data + pad;
}

size_t kv_arena_usage(const kv_arena *a)
{
    return atomic_load_explicit(&a->usage, memory_order_relaxed);
}

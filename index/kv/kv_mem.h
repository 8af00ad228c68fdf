/* kv_mem.h -- the memtable of the LSM store and its arena (private to index/kv/).
 *
 * A memtable is a skiplist of internal keys (kv_key.h order) with their values, allocated
 * from an arena and freed all at once when the last reference goes. Each entry is encoded
 * compactly in the arena as
 *
 *     varint ikey_len | ikey (user key + 8-byte trailer) | varint val_len | value
 *
 * (a tombstone has val_len 0), preceded by its tower of next pointers (kv_memtable.c).
 *
 * Invariants: (1) internal keys in a memtable are unique and every level of the skiplist is
 * sorted strictly ascending in kv_ikey_cmp() order; (2) each level is a sub-list of the level
 * below it; (3) an entry, once added, is never moved or freed before the memtable is
 * destroyed; (4) a failed kv_mem_add() leaves the list exactly as it was.
 *
 * Threading: ONE writer at a time calls kv_mem_add() (serialise writers outside; handing the
 * memtable to another writer thread needs a happens-before, e.g. a mutex). Any number of
 * readers (kv_mem_get, iterators, kv_mem_usage, kv_mem_count) run concurrently with that
 * writer without locks: the writer publishes a node with release stores of the next pointers
 * that point to it and readers follow them with acquire loads (LevelDB's skiplist, the same
 * idea), so a search sees every entry whose kv_mem_add() happened before it (the caller
 * orders the two, e.g. through an atomic sequence number or a lock), possibly some that are
 * being added, and never a half-written one. kv_mem_ref/unref are thread-safe; a
 * flush thread and readers each hold a reference to an immutable memtable. */
#ifndef WEIR_KV_MEM_H
#define WEIR_KV_MEM_H

#include <stdatomic.h>

#include "kv_key.h"

/* ---------------------------------------------------------------- arena */
/* Bump allocator over blocks from wr_malloc(). Allocations are never freed one by one:
 * kv_arena_fini() frees every block. Requests over a quarter of the block size get a block
 * of their own, so a large value wastes at most its alignment. Threading: one thread
 * allocates; kv_arena_usage() may be called from any thread. */
#define KV_ARENA_BLOCK_MIN 1024u
typedef struct kv_arena_block kv_arena_block;
typedef struct kv_arena {
    uint8_t *ptr;           /* bump pointer in the current block (borrowed from blocks) */
    size_t left;            /* bytes left after ptr in the current block */
    size_t block_size;      /* payload bytes of a standard block */
    kv_arena_block *blocks; /* owned: every block, newest first */
    atomic_size_t usage;    /* bytes taken from wr_malloc, headers included */
} kv_arena;

/* Set up an empty arena; @block_size is raised to KV_ARENA_BLOCK_MIN. Allocates nothing. */
void kv_arena_init(kv_arena *a, size_t block_size);
/* Free every block. Every pointer the arena returned becomes invalid. */
void kv_arena_fini(kv_arena *a);
/* @n bytes aligned to @align (a power of two, at most 64). NULL when wr_malloc() fails;
 * the arena is then unchanged. The memory is not zeroed. */
void *kv_arena_alloc(kv_arena *a, size_t n, size_t align);
size_t kv_arena_usage(const kv_arena *a); /* any thread; relaxed (approximate while writing) */

/* ---------------------------------------------------------------- memtable */
#define KV_MEM_MAX_HEIGHT    12
#define KV_MEM_BLOCK_DEFAULT (64u << 10)

typedef struct kv_mem kv_mem;

/**
 * kv_mem_create() - an empty memtable with one reference (the caller's).
 * @block_size: arena block size in bytes; 0 picks KV_MEM_BLOCK_DEFAULT.
 * @out: OUT; NULL on error.
 * Return: WR_OK or WR_ERR_NOMEM.
 * Ownership: the caller owns that reference and drops it with kv_mem_unref().
 */
WR_MUST_CHECK wr_status kv_mem_create(size_t block_size, kv_mem **out);
/* Take one more reference; returns @m. Any thread. */
kv_mem *kv_mem_ref(kv_mem *m);
/* Drop a reference; the last one destroys the memtable and every entry, value and
 * iterator position borrowed from it. NULL is a no-op. Any thread. */
void kv_mem_unref(kv_mem *m);

/**
 * kv_mem_add() - add one entry (the writer only).
 * @seq: sequence number, <= KV_SEQ_MAX. @t: KV_TYPE_PUT or KV_TYPE_DEL.
 * @ukey: user key, at most KV_KEY_MAX bytes (empty is fine). @val: copied; ignored for DEL.
 * Return: WR_OK; WR_ERR_INVAL for a bad seq or type; WR_ERR_TOOBIG for a key or value over
 * the limits; WR_ERR_EXISTS when the same (key, seq, type) is already in the memtable;
 * WR_ERR_NOMEM when the arena cannot grow. On any error the memtable is unchanged.
 * Context: one writer at a time; never blocks readers.
 */
WR_MUST_CHECK wr_status kv_mem_add(kv_mem *m, uint64_t seq, kv_type t, wr_bytes ukey, wr_bytes val);

typedef enum kv_mem_found {
    KV_MEM_MISS = 0, /* no version of the key with seq <= the snapshot: look further down */
    KV_MEM_PUT,      /* *val_out is the value */
    KV_MEM_DEL       /* a tombstone: the key is deleted as of the snapshot */
} kv_mem_found;

/**
 * kv_mem_get() - the newest version of @ukey with seq <= @snap_seq.
 * @val_out: OUT; the value for KV_MEM_PUT, empty otherwise. Borrowed: valid while the caller
 * holds a reference to @m. @seq_out: OUT, may be NULL; that version's seq (0 on a miss).
 * Context: any thread, concurrently with the writer. Never allocates.
 */
kv_mem_found kv_mem_get(const kv_mem *m, wr_bytes ukey, uint64_t snap_seq, wr_bytes *val_out,
                        uint64_t *seq_out);

/* Approximate bytes held (arena blocks, headers included): the flush trigger. Any thread. */
size_t kv_mem_usage(const kv_mem *m);
/* Entries added so far (every version and tombstone counts). Any thread. */
uint64_t kv_mem_count(const kv_mem *m);

/* Debug invariant checker: every level sorted, each level a sub-list of the one below, the
 * entry count right. WR_ERR_INTERNAL with a wr_errmsg() on a broken list. Call it from the
 * writer thread or on a memtable no one is adding to. O(n * height). */
WR_MUST_CHECK wr_status kv_mem_check(const kv_mem *m);

/* ---------------------------------------------------------------- iterator */
/* A caller-allocated cursor over a memtable. It holds a reference to the memtable from
 * kv_mem_iter_init() to kv_mem_iter_fini(). It sees the entries present when each step runs:
 * entries added concurrently may or may not appear, and never appear out of order. Each
 * iterator belongs to one thread; any number may run while the writer adds. Starts invalid. */
typedef struct kv_mem_node kv_mem_node;
typedef struct kv_mem_iter {
    kv_mem *m;         /* owned: one reference */
    kv_mem_node *node; /* current entry (borrowed from m); NULL when invalid */
} kv_mem_iter;

void kv_mem_iter_init(kv_mem_iter *it, kv_mem *m);
void kv_mem_iter_fini(kv_mem_iter *it); /* drops the reference; a finished iterator is a no-op */
bool kv_mem_iter_valid(const kv_mem_iter *it);
/* Position at the first entry >= @ikey (an internal key: user key + trailer, len >= 8). */
void kv_mem_iter_seek(kv_mem_iter *it, wr_bytes ikey);
void kv_mem_iter_seek_first(kv_mem_iter *it);
void kv_mem_iter_seek_last(kv_mem_iter *it);
void kv_mem_iter_next(kv_mem_iter *it); /* requires valid; O(1) */
void kv_mem_iter_prev(kv_mem_iter *it); /* requires valid; O(log n): searches the predecessor */
/* Require valid. Borrowed: valid while the iterator (or any reference) is held. A tombstone's
 * value is empty; decode seq and type of the key with kv_ikey_seq()/kv_ikey_type(). */
wr_bytes kv_mem_iter_key(const kv_mem_iter *it);
wr_bytes kv_mem_iter_value(const kv_mem_iter *it);

#endif

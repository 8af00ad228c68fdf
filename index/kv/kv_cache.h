/* kv_cache.h -- the block cache: a sharded cache of decoded SST blocks, bounded in bytes
 * (private to index/kv/).
 *
 * Design. An entry maps (file id, block offset) to an immutable byte buffer (a decoded data
 * block, exactly the bytes kv_sst_read_block() produces) and a charge in bytes. The key's
 * XXH3-64 picks one of 2^shard_bits shards by its top bits; each shard has its own mutex, a
 * chained hash table (power-of-two buckets, doubled when the entries outnumber the buckets),
 * an intrusive list of its cached entries in eviction order, and a capacity of its own (the
 * total, split evenly). Eviction is second-chance (CLOCK): a hit only marks its entry "hot"
 * (no list surgery, which would touch two more cache lines under the lock); the sweep from
 * the oldest end moves held or hot entries to the back, clearing the mark, and frees the first
 * cold, unheld one. Recently used entries thus survive one more sweep, as under LRU.
 * Callers pin an entry through a kv_cache_handle; the handle is the entry.
 *
 * Invariants (per shard, whenever its mutex is free):
 *   (1) an entry is in the hash table ("cached") or detached; a detached entry is held, and
 *       is freed by the release that drops its last holder;
 *   (2) an entry is on the shard's list iff it is cached; the list runs from the entry the
 *       sweep looks at next to the one it moved or inserted last;
 *   (3) usage = the sum of the charges of the cached entries, and usage <= capacity unless
 *       every cached entry is held: eviction frees unheld entries (cold ones first, within
 *       two passes), so held entries may push usage over capacity but unheld bytes never
 *       exceed it;
 *   (4) an entry is never freed while a handle holds it; an entry charged more than its
 *       shard's capacity is handed back to the inserter detached, never cached;
 *   (5) at most one cached entry per key: inserting a key that is present replaces (detaches)
 *       the old entry.
 *
 * Threading: every function is thread-safe; a handle may be released by any thread. Hit, miss
 * and usage counters are per-shard atomics read without the locks, so kv_cache_stats() is a
 * consistent-enough snapshot for statistics, not a synchronisation point. */
#ifndef WEIR_KV_CACHE_H
#define WEIR_KV_CACHE_H

#include "wr.h"

/* Bytes of bookkeeping per entry (the entry struct, rounded up): callers add it to the
 * charge so the capacity bounds real memory. */
#define KV_CACHE_OVERHEAD      96u
#define KV_CACHE_SHARD_BITS    4u /* default: 16 shards */
#define KV_CACHE_SHARD_BITSMAX 8u

typedef struct kv_cache kv_cache;
typedef struct kv_cache_handle kv_cache_handle; /* a pinned entry */

/**
 * kv_cache_create() - make an empty cache of @capacity_bytes (0: caches nothing; lookups
 * always miss and inserts hand back detached entries).
 * @shard_bits: 2^shard_bits shards; 0 picks KV_CACHE_SHARD_BITS; at most
 *              KV_CACHE_SHARD_BITSMAX (else WR_ERR_INVAL).
 * Return: WR_OK, WR_ERR_INVAL, WR_ERR_NOMEM. Ownership: release with kv_cache_destroy(). */
WR_MUST_CHECK wr_status kv_cache_create(size_t capacity_bytes, unsigned shard_bits, kv_cache **out);
/* NULL is a no-op. Every handle must have been released. */
void kv_cache_destroy(kv_cache *c);

/* The entry for (@file, @off) pinned, or NULL on a miss. Counts a hit or a miss. */
kv_cache_handle *kv_cache_lookup(kv_cache *c, uint64_t file, uint64_t off);

/**
 * kv_cache_insert() - add (@file, @off) -> @data and pin it.
 * @data: @len bytes from wr_malloc(); on WR_OK the cache owns it (wr_free() once the entry is
 *        evicted, erased or replaced and unheld).  @charge: bytes counted against capacity.
 * @out: OUT: the pinned entry (also when it was too big to keep).
 * Return: WR_OK, or WR_ERR_NOMEM (the cache is unchanged, @data stays the caller's, *out
 * NULL). */
WR_MUST_CHECK wr_status kv_cache_insert(kv_cache *c, uint64_t file, uint64_t off, void *data,
                                        size_t len, size_t charge, kv_cache_handle **out);

/* The entry's bytes: borrowed, immutable, valid until kv_cache_release(@h). */
wr_bytes kv_cache_value(const kv_cache_handle *h);

/* Unpin @h (NULL is a no-op); @h must not be used afterwards. */
void kv_cache_release(kv_cache *c, kv_cache_handle *h);

/* Drop every entry of @file from the cache (call it when the file is deleted): unheld entries
 * are freed now, held ones detached and freed by their last release. Walks every shard's
 * table (O(entries)); @c NULL is a no-op. */
void kv_cache_erase_file(kv_cache *c, uint64_t file);

/* Any argument may be NULL (@c NULL: all zero). @usage_bytes: the charges of the cached
 * entries. */
void kv_cache_stats(const kv_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *usage_bytes);

size_t kv_cache_capacity(const kv_cache *c);
/* White box, for tests: the number of shards and the shard that holds (@file, @off). */
unsigned kv_cache_shard_cnt(const kv_cache *c);
unsigned kv_cache_shard_of(const kv_cache *c, uint64_t file, uint64_t off);

#endif

/* kv_cache.c -- the sharded block cache with second-chance eviction (design, invariants and
 * threading in kv_cache.h).
 *
 * Entry states (function behind each transition; all under the shard mutex):
 *
 *   (new) --insert, fits--> CACHED+HELD --release (last holder)--> CACHED
 *   CACHED --lookup--> CACHED+HELD (and hot)
 *   CACHED --evict (cold), erase_file, insert of the same key--> (freed)
 *   CACHED+HELD --erase_file, insert of the same key--> DETACHED+HELD
 *   (new) --insert, too big--> DETACHED+HELD --release (last holder)--> (freed)
 *
 * Data is freed outside the mutex where that is easy (release of a detached entry); eviction
 * frees under it, which keeps the code simple and costs one free() per evicted block. */
#include "kv_cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>

#define CACHE_MIN_BUCKETS 64u

typedef struct cache_ent {
    struct cache_ent *hnext;       /* hash chain, while cached */
    struct cache_ent *prev, *next; /* the shard's eviction order, while cached */
    uint64_t file, off, hash;
    void *data; /* owned */
    size_t len, charge;
    uint32_t refs; /* holders */
    bool cached;   /* in the hash table and the eviction order (else detached) */
    bool hot;      /* looked up since the sweep last passed it: it gets a second chance */
} cache_ent;

_Static_assert(sizeof(cache_ent) <= KV_CACHE_OVERHEAD, "KV_CACHE_OVERHEAD too small");

typedef struct cache_shard {
    pthread_mutex_t mu;
    cache_ent **bucket; /* owned: nbucket chains */
    size_t nbucket;     /* a power of two */
    size_t cnt;         /* cached entries */
    size_t capacity;
    cache_ent lru; /* sentinel: lru.next is the least recently used */
    _Atomic uint64_t usage, hits, misses;
    /* keeps the next shard's mutex off this shard's counters' cache line (the array comes
     * from wr_calloc, so an alignment attribute would not be honoured) */
    char pad[64];
} cache_shard;

struct kv_cache {
    cache_shard *shard; /* owned: 2^bits */
    unsigned bits;
    size_t capacity;
};

static uint64_t key_hash(uint64_t file, uint64_t off)
{
    uint8_t k[16];
    wr_put64(k, file);
    wr_put64(k + 8, off);
    return wr_xxh3(k, sizeof k);
}

static cache_shard *shard_of(const kv_cache *c, uint64_t hash)
{
    /* top bits pick the shard, low bits the bucket: the two stay independent */
    return &c->shard[c->bits ? hash >> (64 - c->bits) : 0];
}

static void lru_remove(cache_ent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void lru_append(cache_shard *s, cache_ent *e) /* as the most recently used */
{
    e->next = &s->lru;
    e->prev = s->lru.prev;
    e->prev->next = e;
    s->lru.prev = e;
}

static void ent_free(cache_ent *e)
{
    wr_free(e->data);
    wr_free(e);
}

static cache_ent **chain_find(cache_shard *s, uint64_t hash, uint64_t file, uint64_t off)
{
    cache_ent **p = &s->bucket[hash & (s->nbucket - 1)];
    while (*p != NULL && ((*p)->hash != hash || (*p)->file != file || (*p)->off != off))
        p = &(*p)->hnext;
    return p;
}

/* Take a cached entry out of the table (*p points at it); frees it when unheld. */
static void ent_uncache(cache_shard *s, cache_ent **p)
{
    cache_ent *e = *p;

    *p = e->hnext;
    e->hnext = NULL;
    e->cached = false;
    s->cnt--;
    atomic_fetch_sub_explicit(&s->usage, e->charge, memory_order_relaxed);
    lru_remove(e);
    if (e->refs == 0)
        ent_free(e);
}

/* Invariant (3): evict unheld entries until usage fits, sweeping from the oldest: a held or
 * marked (hot) entry loses its mark and goes to the back instead. Two passes at most: after
 * one, only held entries keep their place, and those cannot go. */
static void shard_evict(cache_shard *s)
{
    size_t budget = 2 * s->cnt + 1;
    while (atomic_load_explicit(&s->usage, memory_order_relaxed) > s->capacity &&
           s->lru.next != &s->lru && budget-- > 0) {
        cache_ent *e = s->lru.next;
        if (e->refs > 0 || e->hot) {
            e->hot = false;
            lru_remove(e);
            lru_append(s, e);
            continue;
        }
        ent_uncache(s, chain_find(s, e->hash, e->file, e->off));
    }
}

/* Double the buckets; on allocation failure keep the old ones (longer chains, still
 * correct), so an insert never fails because of it. */
static void shard_grow(cache_shard *s)
{
    size_t n = s->nbucket * 2;
    cache_ent **nb;

    if ((nb = wr_calloc(n, sizeof(*nb))) == NULL)
        return;
    for (size_t i = 0; i < s->nbucket; i++) {
        cache_ent *e = s->bucket[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    wr_free(s->bucket);
    s->bucket = nb;
    s->nbucket = n;
}

wr_status kv_cache_create(size_t capacity_bytes, unsigned shard_bits, kv_cache **out)
{
    kv_cache *c;
    unsigned n, i = 0;
    wr_status rc = WR_ERR_NOMEM;

    *out = NULL;
    if (shard_bits == 0)
        shard_bits = KV_CACHE_SHARD_BITS;
    if (shard_bits > KV_CACHE_SHARD_BITSMAX)
        return wr_err(WR_ERR_INVAL, "kv_cache_create: %u shard bits, at most %u", shard_bits,
                      KV_CACHE_SHARD_BITSMAX);
    n = 1u << shard_bits;
    if ((c = wr_calloc(1, sizeof(*c))) == NULL)
        return WR_ERR_NOMEM;
    c->bits = shard_bits;
    c->capacity = capacity_bytes;
    if ((c->shard = wr_calloc(n, sizeof(*c->shard))) == NULL)
        goto err_free_cache;
    for (i = 0; i < n; i++) {
        cache_shard *s = &c->shard[i];
        /* the shares add up to the capacity exactly */
        s->capacity = capacity_bytes / n + (i < capacity_bytes % n);
        s->lru.next = s->lru.prev = &s->lru;
        atomic_init(&s->usage, 0);
        atomic_init(&s->hits, 0);
        atomic_init(&s->misses, 0);
        s->nbucket = CACHE_MIN_BUCKETS;
        if ((s->bucket = wr_calloc(s->nbucket, sizeof(*s->bucket))) == NULL)
            goto err_free_shards;
        if (pthread_mutex_init(&s->mu, NULL) != 0) {
            wr_free(s->bucket);
            rc = wr_err(WR_ERR_NOMEM, "kv_cache_create: pthread_mutex_init failed");
            goto err_free_shards;
        }
    }
    *out = c;
    return WR_OK;
err_free_shards:
    while (i-- > 0) {
        pthread_mutex_destroy(&c->shard[i].mu);
        wr_free(c->shard[i].bucket);
    }
    wr_free(c->shard);
err_free_cache:
    wr_free(c);
    return rc;
}

void kv_cache_destroy(kv_cache *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < (1u << c->bits); i++) {
        cache_shard *s = &c->shard[i];
        for (size_t b = 0; b < s->nbucket; b++) {
            cache_ent *e = s->bucket[b], *next;
            for (; e != NULL; e = next) {
                next = e->hnext;
                assert(e->refs == 0); /* a handle outlived the cache: a bug in the caller */
                ent_free(e);
            }
        }
        wr_free(s->bucket);
        pthread_mutex_destroy(&s->mu);
    }
    wr_free(c->shard);
    wr_free(c);
}

kv_cache_handle *kv_cache_lookup(kv_cache *c, uint64_t file, uint64_t off)
{
    uint64_t h = key_hash(file, off);
    cache_shard *s = shard_of(c, h);
    cache_ent *e;

    pthread_mutex_lock(&s->mu);
    /* A hit only marks the entry (no list surgery, which would touch its neighbours): the
     * eviction sweep gives marked entries a second chance (CLOCK). */
    if ((e = *chain_find(s, h, file, off)) != NULL) {
        e->refs++;
        e->hot = true;
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add_explicit(e ? &s->hits : &s->misses, 1, memory_order_relaxed);
    return (kv_cache_handle *)e;
}

wr_status kv_cache_insert(kv_cache *c, uint64_t file, uint64_t off, void *data, size_t len,
                          size_t charge, kv_cache_handle **out)
{
    uint64_t h = key_hash(file, off);
    cache_shard *s = shard_of(c, h);
    cache_ent *e, **p;

    *out = NULL;
    if ((e = wr_malloc(sizeof(*e))) == NULL)
        return WR_ERR_NOMEM;
    *e = (cache_ent){
        .file = file, .off = off, .hash = h, .data = data, .len = len, .charge = charge, .refs = 1};
    *out = (kv_cache_handle *)e;
    if (s->capacity == 0 || charge > s->capacity)
        return WR_OK; /* invariant (4): detached, freed by its release */
    pthread_mutex_lock(&s->mu);
    if (*(p = chain_find(s, h, file, off)) != NULL) /* invariant (5) */
        ent_uncache(s, p);
    if (s->cnt >= s->nbucket)
        shard_grow(s);
    p = &s->bucket[h & (s->nbucket - 1)];
    e->hnext = *p;
    *p = e;
    e->cached = true;
    lru_append(s, e);
    s->cnt++;
    atomic_fetch_add_explicit(&s->usage, charge, memory_order_relaxed);
    shard_evict(s);
    pthread_mutex_unlock(&s->mu);
    return WR_OK;
}

wr_bytes kv_cache_value(const kv_cache_handle *h)
{
    const cache_ent *e = (const cache_ent *)h;
    return wr_bytes_of(e->data, e->len);
}

void kv_cache_release(kv_cache *c, kv_cache_handle *h)
{
    cache_ent *e = (cache_ent *)h;
    cache_shard *s;
    bool dead = false;

    if (e == NULL)
        return;
    s = shard_of(c, e->hash);
    pthread_mutex_lock(&s->mu);
    assert(e->refs > 0);
    if (--e->refs == 0) {
        if (e->cached) {
            if (atomic_load_explicit(&s->usage, memory_order_relaxed) > s->capacity)
                shard_evict(s); /* held entries may have pushed usage over capacity */
        } else {
            dead = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (dead)
        ent_free(e);
}

void kv_cache_erase_file(kv_cache *c, uint64_t file)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < (1u << c->bits); i++) {
        cache_shard *s = &c->shard[i];
        pthread_mutex_lock(&s->mu);
        for (size_t b = 0; b < s->nbucket; b++) {
            cache_ent **p = &s->bucket[b];
            while (*p != NULL) {
                if ((*p)->file == file)
                    ent_uncache(s, p); /* *p is now the next one */
                else
                    p = &(*p)->hnext;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
}

void kv_cache_stats(const kv_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *usage_bytes)
{
    uint64_t h = 0, m = 0, u = 0;

    for (unsigned i = 0; c != NULL && i < (1u << c->bits); i++) {
        /* the counters are atomics: reading them needs no lock, hence the const cast */
        cache_shard *s = (cache_shard *)(uintptr_t)&c->shard[i];
        h += atomic_load_explicit(&s->hits, memory_order_relaxed);
        m += atomic_load_explicit(&s->misses, memory_order_relaxed);
        u += atomic_load_explicit(&s->usage, memory_order_relaxed);
    }
    if (hits)
        *hits = h;
    if (misses)
        *misses = m;
    if (usage_bytes)
        *usage_bytes = u;
}

size_t kv_cache_capacity(const kv_cache *c)
{
    return c->capacity;
}

unsigned kv_cache_shard_cnt(const kv_cache *c)
{
    return 1u << c->bits;
}

unsigned kv_cache_shard_of(const kv_cache *c, uint64_t file, uint64_t off)
{
    return (unsigned)(shard_of(c, key_hash(file, off)) - c->shard);
}

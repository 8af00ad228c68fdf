/* tests/fuzz/fuzz_kv_block.c -- fuzz target for the block decoder and the filter parser: any
 * bytes given to kv_block_parse / kv_block_iter_* / kv_bloom_parse must yield a status, never a
 * crash, an out-of-bounds read or a hang. Build with clang -fsanitize=fuzzer for libFuzzer; the
 * normal test run links fuzz_replay.c instead and replays the corpus in corpus/kv_block/.
 * Blocks carry no checksum of their own (the table's block trailer does), so the decoder sees
 * fuzzed bytes directly. Seek targets are the block's own keys, each also with its sequence
 * number nudged, plus keys cut from the input. */
#include <stdint.h>
#include <stdlib.h>

#include "kv_sst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void seek_around(kv_block_iter *it, wr_bytes target)
{
    if (kv_block_iter_seek(it, target) != WR_OK)
        return;
    if (kv_block_iter_prev(it) == WR_OK)
        WR_IGNORE(kv_block_iter_next(it));
    WR_IGNORE(kv_block_iter_next(it));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kv_block blk;
    kv_block_iter it;
    kv_bloom bloom;
    wr_status st;
    uint8_t *copy, *keys = NULL;
    size_t keys_len = 0, nkeys = 0;
    unsigned steps = 0;
    static bool quiet;

    if (!quiet) { /* damaged input logs a WARN per WR_CORRUPT() */
        wr_log_set_level(WR_LOG_ERROR);
        quiet = true;
    }
    if (kv_bloom_parse(data, size, &bloom) == WR_OK) {
        (void)kv_bloom_may_contain(&bloom, wr_xxh3(data, size));
        (void)kv_bloom_may_contain(&bloom, 0);
    }
    /* an exact-size copy, so ASan sees any read past the end */
    if ((copy = malloc(size ? size : 1)) == NULL)
        return 0;
    if (size)
        memcpy(copy, data, size);
    if (kv_block_parse(copy, size, &blk) != WR_OK)
        goto out;
    kv_block_iter_init(&it, &blk);
    /* forwards, remembering up to 64 keys as seek targets */
    for (st = kv_block_iter_first(&it); st == WR_OK; st = kv_block_iter_next(&it)) {
        wr_bytes k = kv_block_iter_key(&it);
        if (++steps > 1000000)
            abort(); /* a scan that does not end is a bug */
        if (nkeys < 64) {
            uint8_t *nk = realloc(keys, keys_len + k.len + 4);
            if (nk == NULL)
                break;
            keys = nk;
            wr_put32(keys + keys_len, (uint32_t)k.len);
            memcpy(keys + keys_len + 4, k.ptr, k.len);
            keys_len += k.len + 4;
            nkeys++;
        }
    }
    for (st = kv_block_iter_last(&it); st == WR_OK; st = kv_block_iter_prev(&it))
        if (++steps > 2000000)
            abort();
    for (size_t off = 0; off < keys_len;) {
        uint32_t kl = wr_get32(keys + off);
        uint8_t *k = keys + off + 4;
        uint64_t t = wr_get64(k + kl - KV_TRAILER);
        seek_around(&it, wr_bytes_of(k, kl));
        wr_put64(k + kl - KV_TRAILER, t + 256); /* a newer snapshot of the same user key */
        seek_around(&it, wr_bytes_of(k, kl));
        wr_put64(k + kl - KV_TRAILER, t);
        off += kl + 4;
    }
    for (size_t n = KV_TRAILER; n <= size && n <= 40; n += 8) /* raw input slices as targets */
        seek_around(&it, wr_bytes_of(data, n));
    kv_block_iter_fini(&it);
out:
    free(keys);
    free(copy);
    return 0;
}

/* tests/fuzz/fuzz_lg_batch.c -- fuzz target for the batch decoder: any bytes given to
 * lg_batch_check / lg_rec_iter_* / lg_header_next must yield a status, never a crash, an
 * out-of-bounds read or a hang. Build with clang -fsanitize=fuzzer for libFuzzer; the normal
 * test run links fuzz_replay.c instead and replays the corpus in corpus/lg_batch/.
 * To make checksums no obstacle, the target also re-seals the input as a batch, so the
 * decoder behind the checksum is reached too. */
#include <stdint.h>
#include <stdlib.h>

#include "lg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(const uint8_t *p, size_t n)
{
    wr_buf scratch = {0};
    lg_rec_iter it;
    lg_record r;
    lg_bhdr h;

    if (lg_batch_check(p, n, &h) != WR_OK)
        return;
    if (lg_rec_iter_init(&it, p, &scratch) == WR_OK) {
        while (lg_rec_iter_next(&it, &r) == WR_OK) {
            size_t pos = 0;
            lg_header hh;
            while (lg_header_next(r.hdrs, &pos, &hh) == WR_OK)
                ;
        }
    }
    wr_buf_fini(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    decode(data, size);
    if (size < LG_BATCH_HDR || size > (1u << 20))
        return 0;
    /* Re-seal: valid magic, length and checksum over the fuzzed body. */
    if ((copy = malloc(size)) == NULL)
        return 0;
    memcpy(copy, data, size);
    wr_put32(copy, LG_BATCH_MAGIC);
    wr_put32(copy + 4, (uint32_t)size);
    copy[24] = LG_BATCH_VERSION;
    copy[25] &= LG_ATTR_COMP;
    lg_batch_seal(copy, wr_get64(copy + 8), wr_xxh3(copy + 24, size - 24));
    decode(copy, size);
    free(copy);
    return 0;
}

/* tests/fuzz/fuzz_replay.c -- runs a fuzz target over every file of a corpus directory (the
 * normal test run; zstd's approach), plus a few thousand deterministic mutations of each, so
 * a regression shows up without libFuzzer. Usage: fuzz_replay_<unit> CORPUS_DIR */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "wr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    DIR *d;
    struct dirent *de;
    wr_buf b = {0};
    unsigned files = 0;
    uint64_t rng = 42;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    if ((d = opendir(argv[1])) == NULL) {
        perror(argv[1]);
        return 1;
    }
    while ((de = readdir(d)) != NULL) {
        char path[4400];
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
        if (wr_file_read(path, &b) != WR_OK) {
            fprintf(stderr, "%s: %s\n", path, wr_errmsg());
            return 1;
        }
        files++;
        LLVMFuzzerTestOneInput(b.ptr, b.len);
        for (int m = 0; m < 2000 && b.len; m++) { /* flip, truncate, splice */
            size_t at, n = b.len;
            uint8_t saved;
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            at = (size_t)(rng >> 33) % b.len;
            saved = b.ptr[at];
            b.ptr[at] ^= (uint8_t)(rng >> 20);
            if (m % 7 == 0)
                n = at;
            LLVMFuzzerTestOneInput(b.ptr, n);
            b.ptr[at] = saved;
        }
    }
    closedir(d);
    wr_buf_fini(&b);
    if (files == 0) {
        fprintf(stderr, "%s: empty corpus\n", argv[1]);
        return 1;
    }
    printf("replayed %u corpus files with mutations\n", files);
    return 0;
}

/* vec_fvecs.c -- reader for the .fvecs/.ivecs files of the ANN benchmarks (TEXMEX layout):
 * each vector is an int32 little-endian dimension d followed by d 4-byte values. The file is
 * mapped, every record's dimension checked against the first, and the values copied out
 * without the dimension words. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vec_int.h"

wr_status vec_fvecs_read(const char *path, bool ints, uint32_t *dim_out, size_t *n_out, float **out)
{
    const char *kind = ints ? "ivecs" : "fvecs";
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wr_err(wr_status_from_errno(errno), "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return wr_err(wr_status_from_errno(e), "%s: cannot stat: %s", path, strerror(e));
    }
    size_t len = (size_t)st.st_size;
    if (len < 4) {
        close(fd);
        return wr_err(WR_ERR_CORRUPT, "%s: %zu bytes is too short for a .%s file", path, len, kind);
    }
    const uint8_t *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return wr_err(wr_status_from_errno(errno), "%s: cannot map: %s", path, strerror(errno));
    wr_status s = WR_OK;
    uint32_t d = wr_get32(m);
    size_t rec = 4 + (size_t)d * 4;
    if (d == 0 || d > VEC_MAX_DIM) {
        s = wr_err(WR_ERR_CORRUPT,
                   "%s: dimension %u at byte 0 is out of range 1..%u (not a .%s "
                   "file?)",
                   path, d, VEC_MAX_DIM, kind);
        goto out;
    }
    if (len % rec != 0) {
        s = wr_err(WR_ERR_CORRUPT,
                   "%s: %zu bytes is not a whole number of %zu-byte records of dimension %u "
                   "(truncated?)",
                   path, len, rec, d);
        goto out;
    }
    size_t n = len / rec;
    float *v = wr_malloc(n * (size_t)d * sizeof(float));
    if (!v) {
        s = wr_err(WR_ERR_NOMEM, "%s: no memory for %zu vectors of dimension %u", path, n, d);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = m + i * rec;
        if (wr_get32(r) != d) {
            wr_free(v);
            s = wr_err(WR_ERR_CORRUPT,
                       "%s: record %zu at byte %zu has dimension %u, the first had %u", path, i,
                       i * rec, wr_get32(r), d);
            goto out;
        }
        memcpy(v + i * d, r + 4, (size_t)d * 4);
    }
    *out = v;
    *dim_out = d;
    *n_out = n;
out:
    munmap((void *)(uintptr_t)m, len);
    return s;
}

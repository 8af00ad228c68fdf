/* vec_kern.c -- picks the kernel table for this CPU, once; plus the packers: vk_pack4() (fast-scan
 * codes) and vk_pack_panels() (centroids for dots_packed).
 * The AVX2 and AVX-512 tables live in their own libraries, compiled with their -m flags; nothing
 * here may call into them before the CPUID check has said yes (xxHash's dispatch). This file is
 * compiled with the project's baseline flags only.
 * Invariants: (1) vk_get() returns the same table for the life of the process, chosen at the
 * first call (pthread_once); (2) WEIR_FORCE_SCALAR=1 at that first call forces the scalar table;
 * (3) vk_avx512()/vk_avx2() never return a table the CPU cannot run. */
#include "vec_kern.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Defined in vec_kern_scalar.c, vec_kern_avx2.c and vec_kern_avx512.c. */
extern const vk_ops vk_ops_scalar;
extern const vk_ops vk_ops_avx2;
extern const vk_ops vk_ops_avx512;

static int vk_cpu_has_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return 0; /* SIMDe would emulate it, slower than the scalar twin */
#endif
}

static int vk_cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

const vk_ops *vk_scalar(void)
{
    return &vk_ops_scalar;
}

const vk_ops *vk_avx2(void)
{
    return vk_cpu_has_avx2() ? &vk_ops_avx2 : NULL;
}

const vk_ops *vk_avx512(void)
{
    return vk_cpu_has_avx512() ? &vk_ops_avx512 : NULL;
}

static pthread_once_t vk_once = PTHREAD_ONCE_INIT;
static const vk_ops *vk_chosen;

static void vk_choose(void)
{
    const char *force = getenv("WEIR_FORCE_SCALAR");
    const vk_ops *ops = NULL;

    if (force == NULL || strcmp(force, "1") != 0) {
        ops = vk_avx512();
        if (ops == NULL)
            ops = vk_avx2();
    }
    vk_chosen = ops != NULL ? ops : &vk_ops_scalar;
}

const vk_ops *vk_get(void)
{
    pthread_once(&vk_once, vk_choose); /* also orders vk_chosen's store before our load */
    return vk_chosen;
}

void vk_pack4(const uint8_t *codes, size_t n, size_t m, uint8_t *out)
{
    size_t nblocks = (n + VK_BLOCK - 1) / VK_BLOCK;

    for (size_t b = 0; b < nblocks; b++) {
        uint8_t *blk = out + b * m * 16;
        for (size_t j = 0; j < m; j++) {
            for (size_t i = 0; i < 16; i++) {
                size_t lo = b * VK_BLOCK + i, hi = lo + 16;
                unsigned cl = lo < n ? codes[lo * m + j] & 15u : 0u;
                unsigned ch = hi < n ? codes[hi * m + j] & 15u : 0u;
                blk[j * 16 + i] = (uint8_t)(cl | ch << 4);
            }
        }
    }
}

void vk_pack_panels(const float *c, size_t k, size_t d, float *pk)
{
    size_t np = (k + VK_PANEL - 1) / VK_PANEL;

    for (size_t s = 0; s < np; s++) {
        float *dst = pk + s * d * VK_PANEL;
        for (size_t l = 0; l < VK_PANEL; l++) {
            size_t j = s * VK_PANEL + l;
            for (size_t t = 0; t < d; t++)
                dst[t * VK_PANEL + l] = j < k ? c[j * d + t] : 0.0f;
        }
    }
}

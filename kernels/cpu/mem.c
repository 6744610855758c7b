/* kernels/cpu/mem.c: memory helpers and status of the CPU table (host memory, synchronous). Large
 * zeroing and copies are split across threads: one core alone does not saturate memory bandwidth,
 * and zeroing every gradient each step is a real share of a step for big models at small batches.
 */
#include "kernels/cpu/cpu.h"

#include <omp.h>
#include <string.h>

#define MEM_PARALLEL_BYTES (1u << 20) /* below this, one thread */
#define MEM_ALIGN 4096                /* thread pieces start on page boundaries */

/* [begin, end) of thread i's piece of `bytes`. */
static void mem_piece(size_t bytes, int parts, int i, size_t *begin, size_t *end)
{
    size_t per = (bytes / (size_t)parts + MEM_ALIGN - 1) / MEM_ALIGN * MEM_ALIGN;
    size_t b = per * (size_t)i, e = b + per;
    *begin = b < bytes ? b : bytes;
    *end = e < bytes ? e : bytes;
}

void kern_cpu_zero(kern_ctx *k, void *p, size_t bytes)
{
    (void)k;
    if (bytes < MEM_PARALLEL_BYTES) {
        if (bytes)
            memset(p, 0, bytes);
        return;
    }
#pragma omp parallel num_threads(kern_cpu_threads())
    {
        size_t b, e;
        mem_piece(bytes, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
        if (e > b)
            memset((char *)p + b, 0, e - b);
    }
}

/* Overlapping ranges are moved on one thread (memmove); disjoint large ones in pieces. */
void kern_cpu_copy(kern_ctx *k, void *dst, const void *src, size_t bytes)
{
    (void)k;
    const char *s = src;
    char *d = dst;
    if (!bytes || d == s)
        return;
    if (bytes < MEM_PARALLEL_BYTES || (d < s + bytes && s < d + bytes)) {
        memmove(d, s, bytes);
        return;
    }
#pragma omp parallel num_threads(kern_cpu_threads())
    {
        size_t b, e;
        mem_piece(bytes, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
        if (e > b)
            memcpy(d + b, s + b, e - b);
    }
}

/* CPU kernels cannot fail once their arguments are valid. */
remat_status kern_cpu_status(kern_ctx *k)
{
    (void)k;
    return REMAT_OK;
}

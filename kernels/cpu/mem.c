/* kernels/cpu/mem.c: memory helpers and status of the CPU table (host memory, synchronous). Large
 * zeroing and copies are split across threads: one core alone does not saturate memory bandwidth,
 * and zeroing every gradient each step is a real share of a step for big models at small batches.
 */
#include "kernels/cpu/cpu.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
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

void kern_cpu_upload(kern_ctx *k, void *dst, const void *host, size_t bytes)
{
    kern_cpu_copy(k, dst, host, bytes);
}

/* The float32 kernels cannot fail once their arguments are valid; a bf16 kernel fails only when
 * its host workspace cannot grow (kern_cpu_scratch), which is kept in the context. */
remat_status kern_cpu_status(kern_ctx *k)
{
    if (k && k->error != REMAT_OK)
        return remat_fail(k->error, "%s", k->error_msg);
    return REMAT_OK;
}

void *kern_cpu_scratch(kern_ctx *k, size_t bytes, const char *what)
{
    if (!k)
        return NULL;
    if (k->error != REMAT_OK)
        return NULL;
    if (bytes <= k->host_scratch_bytes)
        return k->host_scratch;
    void *p = malloc(bytes);
    if (!p) {
        k->error = REMAT_ENOMEM;
        snprintf(k->error_msg, sizeof k->error_msg,
                 "%s: cannot allocate %zu bytes of host workspace", what, bytes);
        return NULL;
    }
    free(k->host_scratch);
    k->host_scratch = p;
    k->host_scratch_bytes = bytes;
    return p;
}

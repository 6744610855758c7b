/* kernels/cpu/residual.c: the residual add and gradient accumulation. */
#include "kernels/cpu/cpu.h"

void kern_cpu_residual_forward(kern_ctx *k, float *out, const float *a, const float *b, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void kern_cpu_accumulate(kern_ctx *k, float *dst, const float *src, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

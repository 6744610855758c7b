/* kernels/cpu/encoder.c: token + position embedding, forward and backward. */
#include "kernels/cpu/cpu.h"

void kern_cpu_encoder_forward(kern_ctx *k, float *out, const int *inp, const float *wte,
                              const float *wpe, int B, int T, int C)
{
    (void)k;
    long rows = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < rows; n++) {
        const float *tok = wte + (size_t)inp[n] * C;
        const float *pos = wpe + (size_t)(n % T) * C;
        float *o = out + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = tok[c] + pos[c];
    }
}

/* Several rows may hold the same token, so threads split the channels, not the rows: each thread
 * owns a column block of dwte and dwpe and walks every row in order (deterministic sums). */
void kern_cpu_encoder_backward(kern_ctx *k, float *dwte, float *dwpe, const float *dout,
                               const int *inp, int B, int T, int C)
{
    (void)k;
    long rows = (long)B * T;
    int blocks = (C + KERN_CPU_COL_BLOCK - 1) / KERN_CPU_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * KERN_CPU_COL_BLOCK;
        int c1 = c0 + KERN_CPU_COL_BLOCK < C ? c0 + KERN_CPU_COL_BLOCK : C;
        for (long n = 0; n < rows; n++) {
            const float *d = dout + (size_t)n * C;
            float *tok = dwte + (size_t)inp[n] * C;
            float *pos = dwpe + (size_t)(n % T) * C;
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                tok[c] += d[c];
                pos[c] += d[c];
            }
        }
    }
}

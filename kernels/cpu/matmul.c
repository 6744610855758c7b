/* kernels/cpu/matmul.c: the linear layer out = inp @ weight^T + bias through OpenBLAS sgemm. */
#include "kernels/cpu/cpu.h"

#include <string.h>

/* The bias is fused into the GEMM: out is pre-filled with it and sgemm accumulates (beta = 1). */
void kern_cpu_matmul_forward(kern_ctx *k, float *out, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC)
{
    (void)k;
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    kern_cpu_sgemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

/* dbias[oc] += sum over rows of dout[., oc]; threads split the columns. */
static void matmul_bias_grad(float *dbias, const float *dout, int N, int OC)
{
    int blocks = (OC + KERN_CPU_COL_BLOCK - 1) / KERN_CPU_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * KERN_CPU_COL_BLOCK;
        int c1 = c0 + KERN_CPU_COL_BLOCK < OC ? c0 + KERN_CPU_COL_BLOCK : OC;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                dbias[c] += d[c];
        }
    }
}

void kern_cpu_matmul_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                              const float *dout, const float *inp, const float *weight, int N,
                              int C, int OC)
{
    (void)k;
    if (dinp) /* dinp[N,C] += dout[N,OC] @ weight[OC,C] */
        kern_cpu_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    /* dweight[OC,C] += dout^T[OC,N] @ inp[N,C] */
    kern_cpu_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias)
        matmul_bias_grad(dbias, dout, N, OC);
}

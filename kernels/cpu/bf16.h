/* kernels/cpu/bf16.h: the CPU bf16 kernels (kernels_bf16.h), gathered in the kern_cpu_bf16 table:
 * bf16 loads and stores through kernels/math.h, float32 arithmetic, OpenMP with static splits. */
#ifndef REMAT_KERNELS_CPU_BF16_H
#define REMAT_KERNELS_CPU_BF16_H

#include "kernels/cpu/cpu.h"
#include "kernels/kernels_bf16.h"

/* One bf16 GEMM, row-major: C[M,N] = op(A)[M,K] op(B)[K,N] with a float32 reduction, then
 * C = round(acc + bias[N]) (bias may be NULL) or, with accumulate, C = round(C + acc). */
typedef struct {
    int trans_a, trans_b, M, N, K;
    const kern_bf16 *A;
    int lda;
    const kern_bf16 *B;
    int ldb;
    kern_bf16 *C;
    int ldc;
    const kern_bf16 *bias;
    int accumulate;
} kern_bf16_gemm;

/* The GEMM the matmul kernels use: sgemm by default (the faster at most step shapes, measured:
 * docs/RESULTS.md); REMAT_BF16_GEMM=libxsmm in the environment picks libxsmm where this build has
 * it and the CPU has AVX512-BF16 (else sgemm still), =sgemm the default (read once; another value
 * fails the kernel context with EINVAL). */
void kern_cpu_bf16_gemm(kern_ctx *k, const kern_bf16_gemm *g);
/* "libxsmm" or "sgemm": what kern_cpu_bf16_gemm runs. */
const char *kern_cpu_bf16_gemm_name(void);
/* bf16 tiles converted to float32, then OpenBLAS sgemm (bf16_matmul.c). */
void kern_cpu_bf16_gemm_sgemm(kern_ctx *k, const kern_bf16_gemm *g);
/* libxsmm's bf16 GEMM (bf16 in, float32 accumulation, VNNI-packed tiles); returns 0 without
 * computing anything where it is unavailable (no libxsmm in the build, a CPU without
 * AVX512-BF16, no kernel for a shape), 1 when done (a workspace failure sets k's error). */
int kern_cpu_bf16_gemm_xsmm(kern_ctx *k, const kern_bf16_gemm *g);
/* libxsmm is in this build and the CPU has AVX512-BF16. */
int kern_cpu_bf16_xsmm_available(void);

void kern_cpu_bf16_matmul_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp,
                                  const kern_bf16 *weight, const kern_bf16 *bias, int N, int C,
                                  int OC);
void kern_cpu_bf16_matmul_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                   kern_bf16 *dbias, const kern_bf16 *dout, const kern_bf16 *inp,
                                   const kern_bf16 *weight, int N, int C, int OC);

size_t kern_cpu_bf16_attention_scratch_bytes(int B, int T, int C, int NH);
void kern_cpu_bf16_attention_forward(kern_ctx *k, kern_bf16 *out, kern_bf16 *att,
                                     const kern_bf16 *qkv, void *scratch, int B, int T, int C,
                                     int NH);
void kern_cpu_bf16_attention_backward(kern_ctx *k, kern_bf16 *dqkv, const kern_bf16 *dout,
                                      const kern_bf16 *qkv, const kern_bf16 *att, void *scratch,
                                      int B, int T, int C, int NH);

#endif

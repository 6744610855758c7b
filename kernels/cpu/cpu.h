/* kernels/cpu/cpu.h: the CPU kernels (one file per op family), gathered in the kern_cpu table.
 * Semantics are those of kernels/kernels.h; GEMMs go through OpenBLAS, loops over rows through
 * OpenMP. Every parallel loop splits work statically, so results do not depend on timing. */
#ifndef REMAT_KERNELS_CPU_H
#define REMAT_KERNELS_CPU_H

#include "kernels/internal.h"

#include <math.h>

void kern_cpu_encoder_forward(kern_ctx *k, float *out, const int *inp, const float *wte,
                              const float *wpe, int B, int T, int C);
void kern_cpu_encoder_backward(kern_ctx *k, float *dwte, float *dwpe, const float *dout,
                               const int *inp, int B, int T, int C);

void kern_cpu_layernorm_forward(kern_ctx *k, float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C);
void kern_cpu_layernorm_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                                 const float *dout, const float *inp, const float *weight,
                                 const float *mean, const float *rstd, int N, int C);

void kern_cpu_matmul_forward(kern_ctx *k, float *out, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC);
void kern_cpu_matmul_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                              const float *dout, const float *inp, const float *weight, int N,
                              int C, int OC);

size_t kern_cpu_attention_scratch_bytes(int B, int T, int C, int NH);
void kern_cpu_attention_forward(kern_ctx *k, float *out, float *att, const float *qkv,
                                void *scratch, int B, int T, int C, int NH);
void kern_cpu_attention_backward(kern_ctx *k, float *dqkv, const float *dout, const float *qkv,
                                 const float *att, void *scratch, int B, int T, int C, int NH);

void kern_cpu_gelu_forward(kern_ctx *k, float *out, const float *inp, size_t n);
void kern_cpu_gelu_backward(kern_ctx *k, float *dinp, const float *inp, const float *dout,
                            size_t n);

void kern_cpu_residual_forward(kern_ctx *k, float *out, const float *a, const float *b, size_t n);
void kern_cpu_accumulate(kern_ctx *k, float *dst, const float *src, size_t n);

void kern_cpu_softmax_xent(kern_ctx *k, float *losses, float *dlogits, const float *logits,
                           const int *targets, float dscale, int N, int V, int Vp);

void kern_cpu_adamw(kern_ctx *k, float *params, const float *grads, float *m, float *v, size_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int t);

/* The context's host workspace, grown to at least `bytes` (its contents are not kept); NULL when
 * k is NULL or it cannot grow, which sets k's sticky error naming `what` (status() reports it).
 * Call outside parallel regions. */
void *kern_cpu_scratch(kern_ctx *k, size_t bytes, const char *what);

void kern_cpu_zero(kern_ctx *k, void *p, size_t bytes);
void kern_cpu_copy(kern_ctx *k, void *dst, const void *src, size_t bytes);
remat_status kern_cpu_status(kern_ctx *k);
void kern_cpu_upload(kern_ctx *k, void *dst, const void *host, size_t bytes);

/* Threads the CPU kernels use: omp_get_max_threads() at their first use, fixed for the process so
 * that scratch sizes and results do not change. The first use also makes OpenBLAS single-threaded
 * (a process-wide setting): the kernels split GEMMs across OpenMP threads themselves. */
int kern_cpu_threads(void);
/* Row-major C[M,N] = alpha op(A) op(B) + beta C, split across kern_cpu_threads() threads by rows
 * or columns of C (whichever is longer): each element is computed by one thread. */
void kern_cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The same on the calling thread only (inside a parallel region). */
void kern_cpu_sgemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C,
                           int ldc);

/* Max of x[0..n). Eight running maxima break the dependency chain and let the compiler vectorize
 * (libm's fmaxf does not, without -ffinite-math-only); the max is the same in any order. */
static inline float kern_cpu_row_max(const float *x, int n)
{
    float m[8];
    for (int j = 0; j < 8; j++)
        m[j] = -INFINITY;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float best = m[0];
    for (int j = 1; j < 8; j++)
        best = m[j] > best ? m[j] : best;
    return best;
}

/* One (batch, head) slice of qkv for attention.c's per-head routines (also used, on float32 copies
 * of bf16 heads, by bf16_attention.c): q, k, v are [T, hs] with leading dimension ld. */
typedef struct {
    const float *q, *k, *v;
    int T, hs, ld;
} kern_cpu_att_head;
/* att[T,T] = causal softmax(scale q k^T) (0 above the diagonal); out[T,hs] (leading dimension
 * ldo) = att @ v. */
void kern_cpu_att_head_forward(float *out, int ldo, float *att, kern_cpu_att_head a);
/* dq, dk, dv += the head's gradients: dq points into an array laid out like a.q (dk, dv at the
 * same distances as a.k, a.v from a.q); ds is T x T scratch. */
void kern_cpu_att_head_backward(float *dq, const float *dout, int ldo, const float *att, float *ds,
                                kern_cpu_att_head a);

/* Channels per work item when a reduction over rows is split across threads by columns. */
#define KERN_CPU_COL_BLOCK 64

#endif

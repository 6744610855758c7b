/* kernels/cuda/cuda_kernels.h: the CUDA kernels (one file per op family, as in kernels/cpu/), the
 * context helpers they share, and cuBLAS reached through dlopen so that the binary starts (and
 * reports a clear status) on machines without cuBLAS. Semantics are those of kernels/kernels.h. */
#ifndef REMAT_KERNELS_CUDA_H
#define REMAT_KERNELS_CUDA_H

#include "kernels/internal.h"
#include "kernels/math.h"

#include <cublas_v2.h> /* types and constants only: the functions come from dlopen */
#include <cuda_runtime.h>

/* ---- Context ------------------------------------------------------------------------------ */

static inline cudaStream_t kc_stream(kern_ctx *k)
{
    return (cudaStream_t)k->stream;
}

/* Records the first failure in the context (reported by status()); returns 1 if e is success. */
int kern_cuda_check(kern_ctx *k, cudaError_t e, const char *what);
/* After a kernel launch: records a launch failure naming the kernel. */
void kern_cuda_launched(kern_ctx *k, const char *what);

/* Blocks of `threads` covering n items. */
static inline unsigned kc_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b ? b : 1);
}

/* ---- Reductions (deterministic: fixed order for a given launch shape) ---------------------- */

__device__ inline float kc_warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ inline float kc_warp_max(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Sum over a block of blockDim.x threads (a multiple of 32); every thread gets the result.
 * scratch: 32 floats of shared memory. */
__device__ inline float kc_block_sum(float v, float *scratch)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = kc_warp_sum(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    return kc_warp_sum(lane < warps ? scratch[lane] : 0.0f);
}

__device__ inline float kc_block_max(float v, float *scratch)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = kc_warp_max(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    return kc_warp_max(lane < warps ? scratch[lane] : -INFINITY);
}

/* ---- cuBLAS (column-major, as cuBLAS itself) ---------------------------------------------- */

void kern_cuda_sgemm(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int kk,
                     float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                     float *C, int ldc, const char *what);
void kern_cuda_sgemm_batched(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                             int kk, float alpha, const float *A, int lda, long long stride_a,
                             const float *B, int ldb, long long stride_b, float beta, float *C,
                             int ldc, long long stride_c, int batch, const char *what);

/* ---- Kernels ------------------------------------------------------------------------------ */

void kern_cuda_encoder_forward(kern_ctx *k, float *out, const int *inp, const float *wte,
                               const float *wpe, int B, int T, int C);
void kern_cuda_encoder_backward(kern_ctx *k, float *dwte, float *dwpe, const float *dout,
                                const int *inp, int B, int T, int C);
void kern_cuda_layernorm_forward(kern_ctx *k, float *out, float *mean, float *rstd,
                                 const float *inp, const float *weight, const float *bias, int N,
                                 int C);
void kern_cuda_layernorm_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                                  const float *dout, const float *inp, const float *weight,
                                  const float *mean, const float *rstd, int N, int C);
void kern_cuda_matmul_forward(kern_ctx *k, float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC);
void kern_cuda_matmul_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                               const float *dout, const float *inp, const float *weight, int N,
                               int C, int OC);
size_t kern_cuda_attention_scratch_bytes(int B, int T, int C, int NH);
void kern_cuda_attention_forward(kern_ctx *k, float *out, float *att, const float *qkv,
                                 void *scratch, int B, int T, int C, int NH);
void kern_cuda_attention_backward(kern_ctx *k, float *dqkv, const float *dout, const float *qkv,
                                  const float *att, void *scratch, int B, int T, int C, int NH);
void kern_cuda_gelu_forward(kern_ctx *k, float *out, const float *inp, size_t n);
void kern_cuda_gelu_backward(kern_ctx *k, float *dinp, const float *inp, const float *dout,
                             size_t n);
void kern_cuda_residual_forward(kern_ctx *k, float *out, const float *a, const float *b, size_t n);
void kern_cuda_accumulate(kern_ctx *k, float *dst, const float *src, size_t n);
void kern_cuda_softmax_xent(kern_ctx *k, float *losses, float *dlogits, const float *logits,
                            const int *targets, float dscale, int N, int V, int Vp);
void kern_cuda_adamw(kern_ctx *k, float *params, const float *grads, float *m, float *v, size_t n,
                     float lr, float beta1, float beta2, float eps, float weight_decay, int t);
void kern_cuda_zero(kern_ctx *k, void *p, size_t bytes);
void kern_cuda_copy(kern_ctx *k, void *dst, const void *src, size_t bytes);
remat_status kern_cuda_status(kern_ctx *k);
remat_status kern_cuda_check_only(kern_ctx *k);
void kern_cuda_upload(kern_ctx *k, void *dst, const void *host, size_t bytes);

/* Column sums of a row-major [N, C] matrix accumulated into out[C] (deterministic: one thread
 * block per 32 columns, fixed reduction order). Used by matmul's dbias. */
void kern_cuda_column_sums(kern_ctx *k, float *out, const float *x, int N, int C, const char *what);

#endif

/* kernels/cuda/cuda_kernels.h: the CUDA kernels (one file per op family, as in kernels/cpu/), the
 * context helpers they share, and cuBLAS reached through dlopen so that the binary starts (and
 * reports a clear status) on machines without cuBLAS. Semantics are those of kernels/kernels.h. */
#ifndef REMAT_KERNELS_CUDA_H
#define REMAT_KERNELS_CUDA_H

#include "kernels/internal.h"
#include "kernels/kernels_bf16.h"
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

/* Device memory owned by the context for a kernel's private workspace (the bf16 embedding
 * backward's token chains): grown with cudaMalloc after the queued work, freed by close. NULL
 * (and a recorded failure naming `what`) when it cannot grow. */
void *kern_cuda_scratch(kern_ctx *k, size_t bytes, const char *what);

/* Blocks of `threads` covering n items. */
static inline unsigned kc_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b ? b : 1);
}

/* ---- Storage: one kernel template serves float32 and bf16 tensors -------------------------- */

/* Loads as float32; stores round to nearest even (math.h's kern_f32_to_bf16, the CPU's rounding)
 * into bf16, so `kc_st(p, kc_ld(p) + x)` is kernels.h's += with one rounding in either type. */
__device__ __forceinline__ float kc_ld(const float *p)
{
    return *p;
}

__device__ __forceinline__ float kc_ld(const kern_bf16 *p)
{
    return kern_bf16_to_f32(*p);
}

__device__ __forceinline__ void kc_st(float *p, float v)
{
    *p = v;
}

__device__ __forceinline__ void kc_st(kern_bf16 *p, float v)
{
    *p = kern_f32_to_bf16(v);
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

/* Mixed precision: A and B of type `ab` (CUDA_R_16BF), C of type `c` (CUDA_R_16BF or
 * CUDA_R_32F), float32 accumulation (CUBLAS_COMPUTE_32F): C = alpha op(A) op(B) + beta C,
 * rounded once into C. */
void kern_cuda_gemm_ex(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                       int kk, float alpha, const void *A, int lda, const void *B, int ldb,
                       cudaDataType ab, float beta, void *C, int ldc, cudaDataType c,
                       const char *what);
void kern_cuda_gemm_ex_batched(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m,
                               int n, int kk, float alpha, const void *A, int lda,
                               long long stride_a, const void *B, int ldb, long long stride_b,
                               cudaDataType ab, float beta, void *C, int ldc, long long stride_c,
                               cudaDataType c, int batch, const char *what);

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
 * block per 32 columns, fixed reduction order, one rounding into bf16). Used by matmul's dbias. */
void kern_cuda_column_sums(kern_ctx *k, float *out, const float *x, int N, int C, const char *what);
void kern_cuda_column_sums(kern_ctx *k, kern_bf16 *out, const kern_bf16 *x, int N, int C,
                           const char *what);

/* ---- The bf16 kernels (kernels_bf16.h's semantics), gathered in kern_cuda_bf16 ------------- */

void kern_cuda_bf16_encoder_forward(kern_ctx *k, kern_bf16 *out, const int *inp,
                                    const kern_bf16 *wte, const kern_bf16 *wpe, int B, int T,
                                    int C);
void kern_cuda_bf16_encoder_backward(kern_ctx *k, kern_bf16 *dwte, kern_bf16 *dwpe,
                                     const kern_bf16 *dout, const int *inp, int B, int T, int C);
void kern_cuda_bf16_layernorm_forward(kern_ctx *k, kern_bf16 *out, float *mean, float *rstd,
                                      const kern_bf16 *inp, const kern_bf16 *weight,
                                      const kern_bf16 *bias, int N, int C);
void kern_cuda_bf16_layernorm_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                       kern_bf16 *dbias, const kern_bf16 *dout,
                                       const kern_bf16 *inp, const kern_bf16 *weight,
                                       const float *mean, const float *rstd, int N, int C);
void kern_cuda_bf16_matmul_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp,
                                   const kern_bf16 *weight, const kern_bf16 *bias, int N, int C,
                                   int OC);
void kern_cuda_bf16_matmul_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                    kern_bf16 *dbias, const kern_bf16 *dout, const kern_bf16 *inp,
                                    const kern_bf16 *weight, int N, int C, int OC);
void kern_cuda_bf16_attention_forward(kern_ctx *k, kern_bf16 *out, kern_bf16 *att,
                                      const kern_bf16 *qkv, void *scratch, int B, int T, int C,
                                      int NH);
void kern_cuda_bf16_attention_backward(kern_ctx *k, kern_bf16 *dqkv, const kern_bf16 *dout,
                                       const kern_bf16 *qkv, const kern_bf16 *att, void *scratch,
                                       int B, int T, int C, int NH);
void kern_cuda_bf16_gelu_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp, size_t n);
void kern_cuda_bf16_gelu_backward(kern_ctx *k, kern_bf16 *dinp, const kern_bf16 *inp,
                                  const kern_bf16 *dout, size_t n);
void kern_cuda_bf16_residual_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *a,
                                     const kern_bf16 *b, size_t n);
void kern_cuda_bf16_accumulate(kern_ctx *k, kern_bf16 *dst, const kern_bf16 *src, size_t n);
void kern_cuda_bf16_softmax_xent(kern_ctx *k, float *losses, kern_bf16 *dlogits,
                                 const kern_bf16 *logits, const int *targets, float dscale, int N,
                                 int V, int Vp);
void kern_cuda_bf16_adamw_master(kern_ctx *k, kern_bf16 *params, float *master,
                                 const kern_bf16 *grads, float *m, float *v, size_t n, float lr,
                                 float beta1, float beta2, float eps, float weight_decay, int t);
void kern_cuda_bf16_adamw_sr(kern_ctx *k, kern_bf16 *params, const kern_bf16 *grads, float *m,
                             float *v, size_t n, float lr, float beta1, float beta2, float eps,
                             float weight_decay, int t, uint64_t seed);
void kern_cuda_bf16_to_bf16(kern_ctx *k, kern_bf16 *dst, const float *src, size_t n);
void kern_cuda_bf16_to_f32(kern_ctx *k, float *dst, const kern_bf16 *src, size_t n);

#endif

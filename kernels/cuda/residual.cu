/* kernels/cuda/residual.cu: the residual add and gradient accumulation, over float32 or bf16. */
#include "kernels/cuda/cuda_kernels.h"

template <typename S> __global__ static void residual_kernel(S *out, const S *a, const S *b, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kc_st(&out[i], kc_ld(&a[i]) + kc_ld(&b[i]));
}

template <typename S>
static void residual(kern_ctx *k, S *out, const S *a, const S *b, size_t n, const char *what)
{
    residual_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, a, b, n);
    kern_cuda_launched(k, what);
}

void kern_cuda_residual_forward(kern_ctx *k, float *out, const float *a, const float *b, size_t n)
{
    residual(k, out, a, b, n, "residual_forward");
}

void kern_cuda_accumulate(kern_ctx *k, float *dst, const float *src, size_t n)
{
    residual(k, dst, dst, src, n, "accumulate");
}

void kern_cuda_bf16_residual_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *a,
                                     const kern_bf16 *b, size_t n)
{
    residual(k, out, a, b, n, "residual_forward (bf16)");
}

void kern_cuda_bf16_accumulate(kern_ctx *k, kern_bf16 *dst, const kern_bf16 *src, size_t n)
{
    residual(k, dst, dst, src, n, "accumulate (bf16)");
}

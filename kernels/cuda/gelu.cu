/* kernels/cuda/gelu.cu: tanh-approximated GELU, forward and backward, over float32 or bf16. */
#include "kernels/cuda/cuda_kernels.h"

template <typename S> __global__ static void gelu_forward_kernel(S *out, const S *inp, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kc_st(&out[i], kern_gelu(kc_ld(&inp[i])));
}

template <typename S>
__global__ static void gelu_backward_kernel(S *dinp, const S *inp, const S *dout, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kc_st(&dinp[i], kc_ld(&dinp[i]) + kern_gelu_grad(kc_ld(&inp[i])) * kc_ld(&dout[i]));
}

template <typename S> static void gelu_forward(kern_ctx *k, S *out, const S *inp, size_t n)
{
    gelu_forward_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, inp, n);
    kern_cuda_launched(k, "gelu_forward");
}

template <typename S>
static void gelu_backward(kern_ctx *k, S *dinp, const S *inp, const S *dout, size_t n)
{
    gelu_backward_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(dinp, inp, dout, n);
    kern_cuda_launched(k, "gelu_backward");
}

void kern_cuda_gelu_forward(kern_ctx *k, float *out, const float *inp, size_t n)
{
    gelu_forward(k, out, inp, n);
}

void kern_cuda_gelu_backward(kern_ctx *k, float *dinp, const float *inp, const float *dout,
                             size_t n)
{
    gelu_backward(k, dinp, inp, dout, n);
}

void kern_cuda_bf16_gelu_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp, size_t n)
{
    gelu_forward(k, out, inp, n);
}

void kern_cuda_bf16_gelu_backward(kern_ctx *k, kern_bf16 *dinp, const kern_bf16 *inp,
                                  const kern_bf16 *dout, size_t n)
{
    gelu_backward(k, dinp, inp, dout, n);
}

/* kernels/cuda/gelu.cu: tanh-approximated GELU, forward and backward. */
#include "kernels/cuda/cuda_kernels.h"

__global__ static void gelu_forward_kernel(float *out, const float *inp, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = kern_gelu(inp[i]);
}

__global__ static void gelu_backward_kernel(float *dinp, const float *inp, const float *dout,
                                            size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        dinp[i] += kern_gelu_grad(inp[i]) * dout[i];
}

void kern_cuda_gelu_forward(kern_ctx *k, float *out, const float *inp, size_t n)
{
    gelu_forward_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, inp, n);
    kern_cuda_launched(k, "gelu_forward");
}

void kern_cuda_gelu_backward(kern_ctx *k, float *dinp, const float *inp, const float *dout,
                             size_t n)
{
    gelu_backward_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(dinp, inp, dout, n);
    kern_cuda_launched(k, "gelu_backward");
}

/* kernels/cuda/adamw.cu: the AdamW update over a flat parameter array. */
#include "kernels/cuda/cuda_kernels.h"

__global__ static void adamw_kernel(float *params, const float *grads, float *m, float *v, size_t n,
                                    kern_adamw_step s)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kern_adamw_update(&params[i], grads[i], &m[i], &v[i], &s);
}

void kern_cuda_adamw(kern_ctx *k, float *params, const float *grads, float *m, float *v, size_t n,
                     float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
    adamw_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(params, grads, m, v, n, s);
    kern_cuda_launched(k, "adamw");
}

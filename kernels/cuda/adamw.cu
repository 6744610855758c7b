/* kernels/cuda/adamw.cu: the AdamW update over a flat parameter array: float32, bf16 with float32
 * master weights, and bf16 alone with stochastic rounding; and the float32/bf16 conversions. */
#include "kernels/cuda/cuda_kernels.h"

__global__ static void adamw_kernel(float *params, const float *grads, float *m, float *v, size_t n,
                                    kern_adamw_step s)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kern_adamw_update(&params[i], grads[i], &m[i], &v[i], &s);
}

__global__ static void adamw_master_kernel(kern_bf16 *params, float *master,
                                           const kern_bf16 *grads, float *m, float *v, size_t n,
                                           kern_adamw_step s)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kern_adamw_update_master(&params[i], &master[i], kc_ld(&grads[i]), &m[i], &v[i], &s);
}

__global__ static void adamw_sr_kernel(kern_bf16 *params, const kern_bf16 *grads, float *m,
                                       float *v, size_t n, kern_adamw_step s, uint64_t seed)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kern_adamw_update_sr(&params[i], kc_ld(&grads[i]), &m[i], &v[i], &s, kern_sr_bits(seed, i));
}

template <typename D, typename S> __global__ static void convert_kernel(D *dst, const S *src, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        kc_st(&dst[i], kc_ld(&src[i]));
}

void kern_cuda_adamw(kern_ctx *k, float *params, const float *grads, float *m, float *v, size_t n,
                     float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
    adamw_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(params, grads, m, v, n, s);
    kern_cuda_launched(k, "adamw");
}

void kern_cuda_bf16_adamw_master(kern_ctx *k, kern_bf16 *params, float *master,
                                 const kern_bf16 *grads, float *m, float *v, size_t n, float lr,
                                 float beta1, float beta2, float eps, float weight_decay, int t)
{
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
    adamw_master_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(params, master, grads, m, v,
                                                                     n, s);
    kern_cuda_launched(k, "adamw (bf16, master weights)");
}

void kern_cuda_bf16_adamw_sr(kern_ctx *k, kern_bf16 *params, const kern_bf16 *grads, float *m,
                             float *v, size_t n, float lr, float beta1, float beta2, float eps,
                             float weight_decay, int t, uint64_t seed)
{
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
    adamw_sr_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(params, grads, m, v, n, s, seed);
    kern_cuda_launched(k, "adamw (bf16, stochastic rounding)");
}

void kern_cuda_bf16_to_bf16(kern_ctx *k, kern_bf16 *dst, const float *src, size_t n)
{
    convert_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(dst, src, n);
    kern_cuda_launched(k, "to_bf16");
}

void kern_cuda_bf16_to_f32(kern_ctx *k, float *dst, const kern_bf16 *src, size_t n)
{
    convert_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(dst, src, n);
    kern_cuda_launched(k, "to_f32");
}

/* kernels/cuda/mem.cu: memory helpers of the CUDA table, queued on the context's stream. */
#include "kernels/cuda/cuda_kernels.h"

void kern_cuda_zero(kern_ctx *k, void *p, size_t bytes)
{
    if (bytes)
        kern_cuda_check(k, cudaMemsetAsync(p, 0, bytes, kc_stream(k)), "zero");
}

void kern_cuda_upload(kern_ctx *k, void *dst, const void *host, size_t bytes)
{
    if (bytes)
        kern_cuda_check(k, cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, kc_stream(k)),
                        "upload");
}

void kern_cuda_copy(kern_ctx *k, void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        kern_cuda_check(k, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, kc_stream(k)),
                        "copy");
}

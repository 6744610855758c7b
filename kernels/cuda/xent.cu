/* kernels/cuda/xent.cu: fused softmax + cross-entropy over the real vocabulary of padded rows.
 * One block per row. */
#include "kernels/cuda/cuda_kernels.h"

#define XENT_THREADS 512

__global__ static void softmax_xent_kernel(float *losses, float *dlogits, const float *logits,
                                           const int *targets, float dscale, int V, int Vp)
{
    __shared__ float red[32];
    int n = blockIdx.x, target = targets[n];
    const float *x = logits + (size_t)n * Vp;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        mx = fmaxf(mx, x[i]);
    mx = kc_block_max(mx, red);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        sum += kern_softmax_term(x[i], mx);
    sum = kc_block_sum(sum, red);
    float target_logit = x[target];
    __syncthreads(); /* every thread has read x[target] before dlogits (maybe x) is written */
    if (threadIdx.x == 0)
        losses[n] = kern_xent_loss(target_logit, mx, sum);
    if (!dlogits)
        return;
    float *d = dlogits + (size_t)n * Vp, inv = 1.0f / sum;
    for (int i = threadIdx.x; i < Vp; i += blockDim.x)
        d[i] =
            i < V ? kern_xent_dlogit(kern_softmax_term(x[i], mx) * inv, i == target, dscale) : 0.0f;
}

void kern_cuda_softmax_xent(kern_ctx *k, float *losses, float *dlogits, const float *logits,
                            const int *targets, float dscale, int N, int V, int Vp)
{
    if (N <= 0)
        return;
    softmax_xent_kernel<<<N, XENT_THREADS, 0, kc_stream(k)>>>(losses, dlogits, logits, targets,
                                                              dscale, V, Vp);
    kern_cuda_launched(k, "softmax_xent");
}

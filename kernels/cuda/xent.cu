/* kernels/cuda/xent.cu: fused softmax + cross-entropy over the real vocabulary of padded rows,
 * from float32 or bf16 logits (losses float32). One block per row. */
#include "kernels/cuda/cuda_kernels.h"

#define XENT_THREADS 512

/* The exponentials are computed twice (sum, then gradient) rather than parked in dlogits; dlogits
 * may alias logits: every thread reads the target logit first, and each element is read by the
 * thread that writes it, before it writes it. */
template <typename S>
__global__ static void softmax_xent_kernel(float *losses, S *dlogits, const S *logits,
                                           const int *targets, float dscale, int V, int Vp)
{
    __shared__ float red[32];
    int n = blockIdx.x, target = targets[n];
    const S *x = logits + (size_t)n * Vp;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        mx = fmaxf(mx, kc_ld(&x[i]));
    mx = kc_block_max(mx, red);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        sum += kern_softmax_term(kc_ld(&x[i]), mx);
    sum = kc_block_sum(sum, red);
    float target_logit = kc_ld(&x[target]);
    __syncthreads(); /* every thread has read x[target] before dlogits (maybe x) is written */
    if (threadIdx.x == 0)
        losses[n] = kern_xent_loss(target_logit, mx, sum);
    if (!dlogits)
        return;
    S *d = dlogits + (size_t)n * Vp;
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < Vp; i += blockDim.x)
        kc_st(&d[i], i < V ? kern_xent_dlogit(kern_softmax_term(kc_ld(&x[i]), mx) * inv,
                                              i == target, dscale)
                           : 0.0f);
}

template <typename S>
static void softmax_xent(kern_ctx *k, float *losses, S *dlogits, const S *logits,
                         const int *targets, float dscale, int N, int V, int Vp)
{
    if (N <= 0)
        return;
    softmax_xent_kernel<<<N, XENT_THREADS, 0, kc_stream(k)>>>(losses, dlogits, logits, targets,
                                                              dscale, V, Vp);
    kern_cuda_launched(k, "softmax_xent");
}

void kern_cuda_softmax_xent(kern_ctx *k, float *losses, float *dlogits, const float *logits,
                            const int *targets, float dscale, int N, int V, int Vp)
{
    softmax_xent(k, losses, dlogits, logits, targets, dscale, N, V, Vp);
}

void kern_cuda_bf16_softmax_xent(kern_ctx *k, float *losses, kern_bf16 *dlogits,
                                 const kern_bf16 *logits, const int *targets, float dscale, int N,
                                 int V, int Vp)
{
    softmax_xent(k, losses, dlogits, logits, targets, dscale, N, V, Vp);
}

/* kernels/cuda/layernorm.cu: LayerNorm over the channels of each row, forward and backward, over
 * float32 or bf16 tensors (statistics float32 in both). One warp per row; the parameter gradients
 * reduce over rows in a fixed order (no atomics). */
#include "kernels/cuda/cuda_kernels.h"

#define LN_WARPS 4      /* rows per block */
#define LN_ROW_LANES 32 /* row lanes of the parameter-gradient blocks */

template <typename S>
__global__ static void layernorm_forward_kernel(S *out, float *mean, float *rstd, const S *inp,
                                                const S *weight, const S *bias, int N, int C)
{
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N)
        return;
    const S *x = inp + (size_t)row * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32)
        sum += kc_ld(&x[c]);
    float m = kc_warp_sum(sum) / C;
    float sq = 0.0f;
    for (int c = lane; c < C; c += 32)
        sq += (kc_ld(&x[c]) - m) * (kc_ld(&x[c]) - m);
    float s = kern_ln_rstd(kc_warp_sum(sq) / C);
    S *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32)
        kc_st(&o[c], kern_ln_norm(kc_ld(&x[c]), m, s) * kc_ld(&weight[c]) + kc_ld(&bias[c]));
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

template <typename S>
__global__ static void layernorm_dinp_kernel(S *dinp, const S *dout, const S *inp, const S *weight,
                                             const float *mean, const float *rstd, int N, int C)
{
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N)
        return;
    const S *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], s = rstd[row], dsum = 0.0f, dnsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dnorm = kc_ld(&weight[c]) * kc_ld(&d[c]);
        dsum += dnorm;
        dnsum += dnorm * kern_ln_norm(kc_ld(&x[c]), m, s);
    }
    float dnorm_mean = kc_warp_sum(dsum) / C, dnorm_norm_mean = kc_warp_sum(dnsum) / C;
    S *di = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32)
        kc_st(&di[c], kc_ld(&di[c]) + kern_ln_dinp(kc_ld(&weight[c]) * kc_ld(&d[c]),
                                                   kern_ln_norm(kc_ld(&x[c]), m, s), dnorm_mean,
                                                   dnorm_norm_mean, s));
}

/* Block (32, LN_ROW_LANES): 32 channels; each row lane sums every LN_ROW_LANES-th row, then the
 * lanes are added in a fixed order, and the total into the gradient once. */
template <typename S>
__global__ static void layernorm_param_kernel(S *dweight, S *dbias, const S *dout, const S *inp,
                                              const float *mean, const float *rstd, int N, int C)
{
    __shared__ float sw[LN_ROW_LANES][33], sb[LN_ROW_LANES][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float aw = 0.0f, ab = 0.0f;
    if (c < C)
        for (int n = threadIdx.y; n < N; n += LN_ROW_LANES) {
            float d = kc_ld(&dout[(size_t)n * C + c]);
            aw += kern_ln_norm(kc_ld(&inp[(size_t)n * C + c]), mean[n], rstd[n]) * d;
            ab += d;
        }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int y = 0; y < LN_ROW_LANES; y++) {
            tw += sw[y][threadIdx.x];
            tb += sb[y][threadIdx.x];
        }
        kc_st(&dweight[c], kc_ld(&dweight[c]) + tw);
        kc_st(&dbias[c], kc_ld(&dbias[c]) + tb);
    }
}

template <typename S>
static void layernorm_forward(kern_ctx *k, S *out, float *mean, float *rstd, const S *inp,
                              const S *weight, const S *bias, int N, int C)
{
    layernorm_forward_kernel<<<kc_blocks(N, LN_WARPS), 32 * LN_WARPS, 0, kc_stream(k)>>>(
        out, mean, rstd, inp, weight, bias, N, C);
    kern_cuda_launched(k, "layernorm_forward");
}

template <typename S>
static void layernorm_backward(kern_ctx *k, S *dinp, S *dweight, S *dbias, const S *dout,
                               const S *inp, const S *weight, const float *mean, const float *rstd,
                               int N, int C)
{
    layernorm_dinp_kernel<<<kc_blocks(N, LN_WARPS), 32 * LN_WARPS, 0, kc_stream(k)>>>(
        dinp, dout, inp, weight, mean, rstd, N, C);
    kern_cuda_launched(k, "layernorm_backward (dinp)");
    layernorm_param_kernel<<<kc_blocks(C, 32), dim3(32, LN_ROW_LANES), 0, kc_stream(k)>>>(
        dweight, dbias, dout, inp, mean, rstd, N, C);
    kern_cuda_launched(k, "layernorm_backward (dweight, dbias)");
}

void kern_cuda_layernorm_forward(kern_ctx *k, float *out, float *mean, float *rstd,
                                 const float *inp, const float *weight, const float *bias, int N,
                                 int C)
{
    layernorm_forward(k, out, mean, rstd, inp, weight, bias, N, C);
}

void kern_cuda_layernorm_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                                  const float *dout, const float *inp, const float *weight,
                                  const float *mean, const float *rstd, int N, int C)
{
    layernorm_backward(k, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

void kern_cuda_bf16_layernorm_forward(kern_ctx *k, kern_bf16 *out, float *mean, float *rstd,
                                      const kern_bf16 *inp, const kern_bf16 *weight,
                                      const kern_bf16 *bias, int N, int C)
{
    layernorm_forward(k, out, mean, rstd, inp, weight, bias, N, C);
}

void kern_cuda_bf16_layernorm_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                       kern_bf16 *dbias, const kern_bf16 *dout,
                                       const kern_bf16 *inp, const kern_bf16 *weight,
                                       const float *mean, const float *rstd, int N, int C)
{
    layernorm_backward(k, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

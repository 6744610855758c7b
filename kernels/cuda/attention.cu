/* kernels/cuda/attention.cu: causal multi-head attention with strided batched cuBLAS GEMMs.
 *
 * For one batch row b, head h's q, k, v are T x hs row-major matrices inside qkv with leading
 * dimension 3C, and consecutive heads are hs floats apart: one strided batched GEMM over the NH
 * heads reads them in place (no permute copies). Column-major view: a row-major [T, hs] matrix
 * with leading dimension ld is the column-major [hs, T] matrix with the same ld. Scores are
 * computed for the full T x T square, then the causal softmax zeroes the upper triangle. */
#include "kernels/cuda/cuda_kernels.h"

#define ATT_WARPS 4 /* rows per block in the softmax kernels */

/* One warp per row of att (B*NH*T rows): causal softmax in place, 0 above the diagonal. */
__global__ static void att_softmax_kernel(float *att, int rows, int T)
{
    int row = blockIdx.x * ATT_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int t = row % T;
    float *a = att + (size_t)row * T;
    float mx = -INFINITY;
    for (int j = lane; j <= t; j += 32)
        mx = fmaxf(mx, a[j]);
    mx = kc_warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j <= t; j += 32) {
        float e = kern_softmax_term(a[j], mx);
        a[j] = e;
        sum += e;
    }
    float inv = 1.0f / kc_warp_sum(sum);
    for (int j = lane; j < T; j += 32)
        a[j] = j <= t ? a[j] * inv : 0.0f;
}

/* ds holds d(att) on entry and d(scores) (scale folded in) on exit. */
__global__ static void att_softmax_backward_kernel(float *ds, const float *att, int rows, int T,
                                                   float scale)
{
    int row = blockIdx.x * ATT_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int t = row % T;
    float *d = ds + (size_t)row * T;
    const float *p = att + (size_t)row * T;
    float dot = 0.0f;
    for (int j = lane; j <= t; j += 32)
        dot += p[j] * d[j];
    dot = kc_warp_sum(dot);
    for (int j = lane; j < T; j += 32)
        d[j] = j <= t ? scale * kern_softmax_dscore(p[j], d[j], dot) : 0.0f;
}

/* d(att) or d(scores) of one batch row: NH x T x T floats. */
size_t kern_cuda_attention_scratch_bytes(int B, int T, int C, int NH)
{
    (void)B, (void)C;
    return (size_t)NH * T * T * sizeof(float);
}

void kern_cuda_attention_forward(kern_ctx *k, float *out, float *att, const float *qkv,
                                 void *scratch, int B, int T, int C, int NH)
{
    (void)scratch;
    int hs = C / NH, ld = 3 * C;
    long long tt = (long long)T * T;
    float scale = kern_att_scale(hs);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * ld, *kk = q + C, *v = q + 2 * C;
        float *a = att + (size_t)b * NH * tt;
        /* scores (row-major [T,T]) = q k^T  <=>  column-major scores^T = k q^T */
        kern_cuda_sgemm_batched(k, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, scale, kk, ld, hs, q, ld, hs,
                                0.0f, a, T, tt, NH, "attention_forward (q k^T)");
        int rows = NH * T;
        att_softmax_kernel<<<kc_blocks(rows, ATT_WARPS), 32 * ATT_WARPS, 0, kc_stream(k)>>>(a, rows,
                                                                                            T);
        kern_cuda_launched(k, "attention_forward (softmax)");
        /* out (row-major [T,hs], ld C) = att v  <=>  column-major out^T = v^T att^T */
        kern_cuda_sgemm_batched(k, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, v, ld, hs, a, T, tt,
                                0.0f, out + (size_t)b * T * C, C, hs, NH,
                                "attention_forward (att v)");
    }
}

void kern_cuda_attention_backward(kern_ctx *k, float *dqkv, const float *dout, const float *qkv,
                                  const float *att, void *scratch, int B, int T, int C, int NH)
{
    int hs = C / NH, ld = 3 * C;
    long long tt = (long long)T * T;
    float scale = kern_att_scale(hs);
    float *ds = (float *)scratch;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * ld, *kk = q + C, *v = q + 2 * C;
        float *dq = dqkv + (size_t)b * T * ld, *dk = dq + C, *dv = dq + 2 * C;
        const float *a = att + (size_t)b * NH * tt, *d = dout + (size_t)b * T * C;
        /* d(att) = dout v^T  <=>  column-major d(att)^T = v dout^T */
        kern_cuda_sgemm_batched(k, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, 1.0f, v, ld, hs, d, C, hs,
                                0.0f, ds, T, tt, NH, "attention_backward (dout v^T)");
        /* dv += att^T dout  <=>  column-major dv^T += dout^T att */
        kern_cuda_sgemm_batched(k, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, d, C, hs, a, T, tt,
                                1.0f, dv, ld, hs, NH, "attention_backward (att^T dout)");
        int rows = NH * T;
        att_softmax_backward_kernel<<<kc_blocks(rows, ATT_WARPS), 32 * ATT_WARPS, 0,
                                      kc_stream(k)>>>(ds, a, rows, T, scale);
        kern_cuda_launched(k, "attention_backward (softmax)");
        /* dq += ds k  <=>  column-major dq^T += k^T ds^T */
        kern_cuda_sgemm_batched(k, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, kk, ld, hs, ds, T, tt,
                                1.0f, dq, ld, hs, NH, "attention_backward (ds k)");
        /* dk += ds^T q  <=>  column-major dk^T += q^T ds */
        kern_cuda_sgemm_batched(k, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, q, ld, hs, ds, T, tt,
                                1.0f, dk, ld, hs, NH, "attention_backward (ds^T q)");
    }
}

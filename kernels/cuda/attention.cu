/* kernels/cuda/attention.cu: causal multi-head attention with strided batched cuBLAS GEMMs.
 *
 * For one batch row b, head h's q, k, v are T x hs row-major matrices inside qkv with leading
 * dimension 3C, and consecutive heads are hs floats apart: one strided batched GEMM over the NH
 * heads reads them in place (no permute copies). Column-major view: a row-major [T, hs] matrix
 * with leading dimension ld is the column-major [hs, T] matrix with the same ld. Scores are
 * computed for the full T x T square, then the causal softmax zeroes the upper triangle.
 *
 * bf16: the same GEMMs through cublasGemmEx (bf16 operands, float32 accumulation). The scores
 * land as float32 in the scratch and the softmax rounds the probabilities to bf16 once (the
 * saved att, which a recomputation reproduces bit for bit); att v reads the bf16 probabilities.
 * Backward, d(att) lands as float32 in the scratch and the softmax backward overwrites each row
 * with its bf16 d(scores), in the first half of the row's own bytes (a bf16 matrix of leading
 * dimension 2T), so the scratch is the float32 kernel's NH x T x T floats. */
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

/* Warp per row: the float32 scores of sc, causally softmaxed, rounded into att (0 above the
 * diagonal). */
__global__ static void att_softmax_bf16_kernel(kern_bf16 *att, const float *sc, int rows, int T)
{
    int row = blockIdx.x * ATT_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int t = row % T;
    const float *a = sc + (size_t)row * T;
    float mx = -INFINITY;
    for (int j = lane; j <= t; j += 32)
        mx = fmaxf(mx, a[j]);
    mx = kc_warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j <= t; j += 32)
        sum += kern_softmax_term(a[j], mx);
    float inv = 1.0f / kc_warp_sum(sum);
    kern_bf16 *p = att + (size_t)row * T;
    for (int j = lane; j < T; j += 32)
        kc_st(&p[j], j <= t ? kern_softmax_term(a[j], mx) * inv : 0.0f);
}

/* Warp per row: ds holds the row's float32 d(att) on entry; on exit the row's first T bf16 are
 * its d(scores) (scale folded in). Element j's bf16 overwrites float j/2's first half: each
 * chunk of 32 is read by the whole warp before any lane writes, and a chunk's writes land on
 * floats already read (j0/2 + 16 <= j0 past the first chunk). */
__global__ static void att_softmax_backward_bf16_kernel(float *ds, const kern_bf16 *att, int rows,
                                                        int T, float scale)
{
    int row = blockIdx.x * ATT_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int t = row % T;
    float *d = ds + (size_t)row * T;
    kern_bf16 *out = (kern_bf16 *)d;
    const kern_bf16 *p = att + (size_t)row * T;
    float dot = 0.0f;
    for (int j = lane; j <= t; j += 32)
        dot += kc_ld(&p[j]) * d[j];
    dot = kc_warp_sum(dot);
    for (int j0 = 0; j0 < T; j0 += 32) {
        int j = j0 + lane;
        float v = j <= t && j < T ? scale * kern_softmax_dscore(kc_ld(&p[j]), d[j], dot) : 0.0f;
        __syncwarp();
        if (j < T)
            kc_st(&out[j], v);
    }
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

void kern_cuda_bf16_attention_forward(kern_ctx *k, kern_bf16 *out, kern_bf16 *att,
                                      const kern_bf16 *qkv, void *scratch, int B, int T, int C,
                                      int NH)
{
    int hs = C / NH, ld = 3 * C, rows = NH * T;
    long long tt = (long long)T * T;
    float scale = kern_att_scale(hs), *sc = (float *)scratch;
    for (int b = 0; b < B; b++) {
        const kern_bf16 *q = qkv + (size_t)b * T * ld, *kk = q + C, *v = q + 2 * C;
        kern_bf16 *a = att + (size_t)b * NH * tt;
        kern_cuda_gemm_ex_batched(k, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, scale, kk, ld, hs, q, ld,
                                  hs, CUDA_R_16BF, 0.0f, sc, T, tt, CUDA_R_32F, NH,
                                  "attention_forward (bf16 q k^T)");
        att_softmax_bf16_kernel<<<kc_blocks(rows, ATT_WARPS), 32 * ATT_WARPS, 0, kc_stream(k)>>>(
            a, sc, rows, T);
        kern_cuda_launched(k, "attention_forward (bf16 softmax)");
        kern_cuda_gemm_ex_batched(k, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, v, ld, hs, a, T, tt,
                                  CUDA_R_16BF, 0.0f, out + (size_t)b * T * C, C, hs, CUDA_R_16BF,
                                  NH, "attention_forward (bf16 att v)");
    }
}

void kern_cuda_bf16_attention_backward(kern_ctx *k, kern_bf16 *dqkv, const kern_bf16 *dout,
                                       const kern_bf16 *qkv, const kern_bf16 *att, void *scratch,
                                       int B, int T, int C, int NH)
{
    int hs = C / NH, ld = 3 * C, rows = NH * T;
    long long tt = (long long)T * T;
    float scale = kern_att_scale(hs), *ds = (float *)scratch;
    const kern_bf16 *dsb = (const kern_bf16 *)scratch; /* leading dimension 2T, heads 2 tt apart */
    for (int b = 0; b < B; b++) {
        const kern_bf16 *q = qkv + (size_t)b * T * ld, *kk = q + C, *v = q + 2 * C;
        kern_bf16 *dq = dqkv + (size_t)b * T * ld, *dk = dq + C, *dv = dq + 2 * C;
        const kern_bf16 *a = att + (size_t)b * NH * tt, *d = dout + (size_t)b * T * C;
        kern_cuda_gemm_ex_batched(k, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, 1.0f, v, ld, hs, d, C, hs,
                                  CUDA_R_16BF, 0.0f, ds, T, tt, CUDA_R_32F, NH,
                                  "attention_backward (bf16 dout v^T)");
        kern_cuda_gemm_ex_batched(k, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, d, C, hs, a, T, tt,
                                  CUDA_R_16BF, 1.0f, dv, ld, hs, CUDA_R_16BF, NH,
                                  "attention_backward (bf16 att^T dout)");
        att_softmax_backward_bf16_kernel<<<kc_blocks(rows, ATT_WARPS), 32 * ATT_WARPS, 0,
                                           kc_stream(k)>>>(ds, a, rows, T, scale);
        kern_cuda_launched(k, "attention_backward (bf16 softmax)");
        kern_cuda_gemm_ex_batched(k, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, kk, ld, hs, dsb,
                                  2 * T, 2 * tt, CUDA_R_16BF, 1.0f, dq, ld, hs, CUDA_R_16BF, NH,
                                  "attention_backward (bf16 ds k)");
        kern_cuda_gemm_ex_batched(k, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, q, ld, hs, dsb,
                                  2 * T, 2 * tt, CUDA_R_16BF, 1.0f, dk, ld, hs, CUDA_R_16BF, NH,
                                  "attention_backward (bf16 ds^T q)");
    }
}

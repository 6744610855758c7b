/* kernels/cpu/bf16_matmul.c: the linear layer over bf16 storage. Each output tile of
 * BF16_MT x BF16_NT is computed by one thread: for every K tile the bf16 tiles of both operands are
 * converted to float32 and multiplied by OpenBLAS sgemm into a float32 accumulator, so the whole
 * reduction over K runs in float32; the tile is rounded to bf16 once, after the bias (forward) or
 * the old gradient (backward) is added in float32. Fixed tiles and a static split: the result does
 * not depend on the thread count's timing. */
#include "kernels/cpu/bf16.h"

#include <omp.h>
#include <string.h>

#define BF16_MT 64
#define BF16_NT 128
#define BF16_KT 256
#define BF16_TILE_FLOATS (BF16_MT * BF16_KT + BF16_NT * BF16_KT + BF16_MT * BF16_NT)

/* dst[rows][cols] (contiguous) = src rows r0.., columns c0.. of a row-major bf16 matrix. */
static void bf16_tile_load(float *dst, const kern_bf16 *src, int ld, int r0, int rows, int c0,
                           int cols)
{
    for (int r = 0; r < rows; r++) {
        const kern_bf16 *s = src + (size_t)(r0 + r) * ld + c0;
        float *d = dst + (size_t)r * cols;
#pragma omp simd
        for (int c = 0; c < cols; c++)
            d[c] = kern_bf16_to_f32(s[c]);
    }
}

static int bf16_min(int a, int b)
{
    return a < b ? a : b;
}

/* acc[mt][nt] = sum over K of op(A) op(B) for rows m0.. and columns n0.. (float32). */
static void bf16_tile_product(float *acc, float *at, float *bt, const kern_bf16_gemm *g, int m0,
                              int mt, int n0, int nt)
{
    for (int k0 = 0; k0 < g->K; k0 += BF16_KT) {
        int kt = bf16_min(BF16_KT, g->K - k0);
        if (g->trans_a) /* A is [K][M]: the tile is [kt][mt] */
            bf16_tile_load(at, g->A, g->lda, k0, kt, m0, mt);
        else
            bf16_tile_load(at, g->A, g->lda, m0, mt, k0, kt);
        if (g->trans_b) /* B is [N][K]: the tile is [nt][kt] */
            bf16_tile_load(bt, g->B, g->ldb, n0, nt, k0, kt);
        else
            bf16_tile_load(bt, g->B, g->ldb, k0, kt, n0, nt);
        kern_cpu_sgemm_serial(g->trans_a, g->trans_b, mt, nt, kt, 1.0f, at, g->trans_a ? mt : kt,
                              bt, g->trans_b ? kt : nt, k0 == 0 ? 0.0f : 1.0f, acc, nt);
    }
    if (g->K == 0)
        memset(acc, 0, (size_t)mt * nt * sizeof *acc);
}

/* C = round(acc + bias) (forward) or C = round(C + acc) (accumulate). */
static void bf16_tile_store(const kern_bf16_gemm *g, const float *acc, int m0, int mt, int n0,
                            int nt)
{
    for (int r = 0; r < mt; r++) {
        kern_bf16 *c = g->C + (size_t)(m0 + r) * g->ldc + n0;
        const float *a = acc + (size_t)r * nt;
        if (g->accumulate) {
#pragma omp simd
            for (int j = 0; j < nt; j++)
                c[j] = kern_f32_to_bf16(kern_bf16_to_f32(c[j]) + a[j]);
        } else if (g->bias) {
            const kern_bf16 *b = g->bias + n0;
#pragma omp simd
            for (int j = 0; j < nt; j++)
                c[j] = kern_f32_to_bf16(a[j] + kern_bf16_to_f32(b[j]));
        } else {
#pragma omp simd
            for (int j = 0; j < nt; j++)
                c[j] = kern_f32_to_bf16(a[j]);
        }
    }
}

void kern_cpu_bf16_gemm_sgemm(kern_ctx *k, const kern_bf16_gemm *g)
{
    if (g->M == 0 || g->N == 0)
        return;
    int threads = kern_cpu_threads();
    float *scratch =
        kern_cpu_scratch(k, (size_t)threads * BF16_TILE_FLOATS * sizeof(float), "bf16 matmul");
    if (!scratch)
        return;
    int mtiles = (g->M + BF16_MT - 1) / BF16_MT, ntiles = (g->N + BF16_NT - 1) / BF16_NT;
    long tiles = (long)mtiles * ntiles;
    if ((double)g->M * g->N * g->K < (1 << 18))
        threads = 1;
#pragma omp parallel num_threads(threads)
    {
        float *at = scratch + (size_t)omp_get_thread_num() * BF16_TILE_FLOATS;
        float *bt = at + BF16_MT * BF16_KT, *acc = bt + BF16_NT * BF16_KT;
#pragma omp for schedule(static)
        for (long t = 0; t < tiles; t++) {
            int m0 = (int)(t / ntiles) * BF16_MT, n0 = (int)(t % ntiles) * BF16_NT;
            int mt = bf16_min(BF16_MT, g->M - m0), nt = bf16_min(BF16_NT, g->N - n0);
            bf16_tile_product(acc, at, bt, g, m0, mt, n0, nt);
            bf16_tile_store(g, acc, m0, mt, n0, nt);
        }
    }
}

const char *kern_cpu_bf16_gemm_name(void)
{
    return "sgemm";
}

void kern_cpu_bf16_matmul_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp,
                                  const kern_bf16 *weight, const kern_bf16 *bias, int N, int C,
                                  int OC)
{
    /* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias */
    kern_bf16_gemm g = {.trans_a = 0,
                        .trans_b = 1,
                        .M = N,
                        .N = OC,
                        .K = C,
                        .A = inp,
                        .lda = C,
                        .B = weight,
                        .ldb = C,
                        .C = out,
                        .ldc = OC,
                        .bias = bias};
    kern_cpu_bf16_gemm(k, &g);
}

/* dbias[oc] += sum over rows of dout[., oc], summed in float32 per column block. */
static void bf16_bias_grad(kern_bf16 *dbias, const kern_bf16 *dout, int N, int OC)
{
    int blocks = (OC + KERN_CPU_COL_BLOCK - 1) / KERN_CPU_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * KERN_CPU_COL_BLOCK, c1 = bf16_min(c0 + KERN_CPU_COL_BLOCK, OC);
        float sum[KERN_CPU_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const kern_bf16 *d = dout + (size_t)n * OC;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                sum[c - c0] += kern_bf16_to_f32(d[c]);
        }
        for (int c = c0; c < c1; c++)
            dbias[c] = kern_f32_to_bf16(kern_bf16_to_f32(dbias[c]) + sum[c - c0]);
    }
}

void kern_cpu_bf16_matmul_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                   kern_bf16 *dbias, const kern_bf16 *dout, const kern_bf16 *inp,
                                   const kern_bf16 *weight, int N, int C, int OC)
{
    if (dinp) { /* dinp[N,C] += dout[N,OC] @ weight[OC,C] */
        kern_bf16_gemm g = {.M = N,
                            .N = C,
                            .K = OC,
                            .A = dout,
                            .lda = OC,
                            .B = weight,
                            .ldb = C,
                            .C = dinp,
                            .ldc = C,
                            .accumulate = 1};
        kern_cpu_bf16_gemm(k, &g);
    }
    /* dweight[OC,C] += dout^T[OC,N] @ inp[N,C] */
    kern_bf16_gemm g = {.trans_a = 1,
                        .M = OC,
                        .N = C,
                        .K = N,
                        .A = dout,
                        .lda = OC,
                        .B = inp,
                        .ldb = C,
                        .C = dweight,
                        .ldc = C,
                        .accumulate = 1};
    kern_cpu_bf16_gemm(k, &g);
    if (dbias)
        bf16_bias_grad(dbias, dout, N, OC);
}

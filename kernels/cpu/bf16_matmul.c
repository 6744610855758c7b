/* kernels/cpu/bf16_matmul.c: the linear layer over bf16 storage. Each output tile of
 * BF16_MT x BF16_NT is computed by one thread: for every K tile the bf16 tiles of both operands are
 * converted to float32 and multiplied by OpenBLAS sgemm into a float32 accumulator, so the whole
 * reduction over K runs in float32; the tile is rounded to bf16 once, after the bias (forward) or
 * the old gradient (backward) is added in float32. Fixed tiles and a static split: the result does
 * not depend on the thread count's timing. */
#include "kernels/cpu/bf16.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ==== libxsmm: bf16 inputs, float32 accumulation, AVX512-BF16 ============================== */
/* libxsmm 1.17's JIT bf16 GEMM (libxsmm_bsmmdispatch: bf16 A and B, float32 C, column-major)
 * computes the same tiles: the row-major tile acc[mt][nt] = op(A) op(B) is, column-major, the
 * nt x mt product of op(B)^T (libxsmm's A, nt x kt) and op(A)^T (libxsmm's B, kt x mt). libxsmm's
 * A must be in VNNI order (K in pairs: [kt/2][nt][2]), so each B tile is packed once per K tile
 * and reused by all XS_MT rows of the tile; A is read in place when it is row-major with even
 * K and lda, else packed (transposed) too. Odd K is padded with a zero pair. Tiles and the split are
 * fixed, so the result does not depend on timing; the summation order is libxsmm's, so the two
 * GEMMs agree to float32 rounding, not bitwise. */
#ifdef REMAT_HAVE_LIBXSMM
#include <libxsmm.h>

#define XS_MT 256
#define XS_NT 64
#define XS_KT 256
#define XS_TILE_BF16 (XS_KT * XS_NT + XS_MT * XS_KT)
#define XS_TILE_BYTES (XS_TILE_BF16 * sizeof(kern_bf16) + XS_MT * XS_NT * sizeof(float))

int kern_cpu_bf16_xsmm_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        libxsmm_init();
        avail = libxsmm_get_target_archid() >= LIBXSMM_X86_AVX512_CPX;
    }
    return avail;
}

typedef struct {
    int pack_a;
    int size[3][2];                 /* nt, mt, kt: full tile and edge tile */
    libxsmm_bsmmfunction f[2][2][2][2]; /* [nt edge][mt edge][kt edge][beta 1] */
} xs_plan;

static int xs_even(int v)
{
    return v + (v & 1);
}

/* Dispatches every kernel the GEMM's tiles need (before the parallel loop); 0 when libxsmm
 * gives none for some shape. */
static int xs_dispatch(const kern_bf16_gemm *g, xs_plan *p)
{
    int full[3] = {bf16_min(XS_NT, g->N), bf16_min(XS_MT, g->M), bf16_min(XS_KT, g->K)};
    int dims[3] = {g->N, g->M, g->K}, tile[3] = {XS_NT, XS_MT, XS_KT};
    p->pack_a = g->trans_a || (g->K & 1) || (g->lda & 1); /* pairs of K at even offsets */
    for (int d = 0; d < 3; d++) {
        p->size[d][0] = full[d];
        p->size[d][1] = dims[d] % tile[d] ? dims[d] % tile[d] : full[d];
    }
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++)
                for (int beta = 0; beta < 2; beta++) {
                    libxsmm_blasint nt = p->size[0][a], mt = p->size[1][b];
                    libxsmm_blasint ktp = xs_even(p->size[2][c]);
                    libxsmm_blasint lda = nt, ldb = p->pack_a ? ktp : g->lda, ldc = nt;
                    float alpha = 1.0f, fbeta = (float)beta;
                    int flags = LIBXSMM_GEMM_FLAG_VNNI_A | (beta ? 0 : LIBXSMM_GEMM_FLAG_BETA_0);
                    p->f[a][b][c][beta] = libxsmm_bsmmdispatch(nt, mt, ktp, &lda, &ldb, &ldc,
                                                               &alpha, &fbeta, &flags, NULL);
                    if (!p->f[a][b][c][beta])
                        return 0;
                }
    return 1;
}

/* bp[kk/2][j][kk%2] = op(B)[k0 + kk][n0 + j], zero in the odd pad. */
static void xs_pack_b(kern_bf16 *bp, const kern_bf16_gemm *g, int k0, int kt, int n0, int nt)
{
    int ktp = xs_even(kt);
    for (int kk = 0; kk < ktp; kk += 2)
        for (int j = 0; j < nt; j++) {
            kern_bf16 *d = bp + ((size_t)(kk / 2) * nt + j) * 2;
            for (int h = 0; h < 2; h++) {
                int k = k0 + kk + h, n = n0 + j;
                d[h] = kk + h >= kt ? 0
                       : g->trans_b ? g->B[(size_t)n * g->ldb + k]
                                    : g->B[(size_t)k * g->ldb + n];
            }
        }
}

/* ap[r][kk] = op(A)[m0 + r][k0 + kk], zero in the odd pad. */
static void xs_pack_a(kern_bf16 *ap, const kern_bf16_gemm *g, int m0, int mt, int k0, int kt)
{
    int ktp = xs_even(kt);
    for (int r = 0; r < mt; r++)
        for (int kk = 0; kk < ktp; kk++) {
            int m = m0 + r, k = k0 + kk;
            ap[(size_t)r * ktp + kk] = kk >= kt      ? 0
                                       : g->trans_a ? g->A[(size_t)k * g->lda + m]
                                                    : g->A[(size_t)m * g->lda + k];
        }
}

static void xs_tile(const kern_bf16_gemm *g, const xs_plan *p, kern_bf16 *bp, kern_bf16 *ap,
                    float *acc, int m0, int mt, int n0, int nt)
{
    int ie = nt != p->size[0][0], je = mt != p->size[1][0];
    for (int k0 = 0; k0 < g->K; k0 += XS_KT) {
        int kt = bf16_min(XS_KT, g->K - k0), ke = kt != p->size[2][0];
        xs_pack_b(bp, g, k0, kt, n0, nt);
        const kern_bf16 *a = g->A + (size_t)m0 * g->lda + k0;
        if (p->pack_a) {
            xs_pack_a(ap, g, m0, mt, k0, kt);
            a = ap;
        }
        p->f[ie][je][ke][k0 > 0](bp, a, acc);
    }
    if (g->K == 0)
        memset(acc, 0, (size_t)mt * nt * sizeof *acc);
}

int kern_cpu_bf16_gemm_xsmm(kern_ctx *k, const kern_bf16_gemm *g)
{
    if (g->M == 0 || g->N == 0)
        return 1;
    xs_plan p;
    if (!kern_cpu_bf16_xsmm_available() || (g->K > 0 && !xs_dispatch(g, &p)))
        return 0;
    int threads = kern_cpu_threads();
    char *scratch = kern_cpu_scratch(k, (size_t)threads * XS_TILE_BYTES, "bf16 matmul (libxsmm)");
    if (!scratch)
        return 1; /* the context carries the error */
    int mtiles = (g->M + XS_MT - 1) / XS_MT, ntiles = (g->N + XS_NT - 1) / XS_NT;
    long tiles = (long)mtiles * ntiles;
    if ((double)g->M * g->N * g->K < (1 << 18))
        threads = 1;
#pragma omp parallel num_threads(threads)
    {
        char *mine = scratch + (size_t)omp_get_thread_num() * XS_TILE_BYTES;
        float *acc = (float *)mine;
        kern_bf16 *bp = (kern_bf16 *)(acc + XS_MT * XS_NT), *ap = bp + XS_KT * XS_NT;
#pragma omp for schedule(static)
        for (long t = 0; t < tiles; t++) {
            int m0 = (int)(t % mtiles) * XS_MT, n0 = (int)(t / mtiles) * XS_NT;
            int mt = bf16_min(XS_MT, g->M - m0), nt = bf16_min(XS_NT, g->N - n0);
            xs_tile(g, &p, bp, ap, acc, m0, mt, n0, nt);
            bf16_tile_store(g, acc, m0, mt, n0, nt);
        }
    }
    return 1;
}
#else
int kern_cpu_bf16_xsmm_available(void)
{
    return 0;
}

int kern_cpu_bf16_gemm_xsmm(kern_ctx *k, const kern_bf16_gemm *g)
{
    (void)k, (void)g;
    return 0;
}
#endif

/* ==== The choice =========================================================================== */
/* REMAT_BF16_GEMM=libxsmm|sgemm picks the GEMM, read once; unset, the default below. libxsmm is
 * used only where this build has it and the CPU has AVX512-BF16, else sgemm. */

/* sgemm measured faster at all 30 of gpt2-124m's step GEMM shapes (bench/bench_bf16.c, numbers in
 * docs/RESULTS.md): libxsmm stays opt-in (REMAT_BF16_GEMM=libxsmm). */
#define BF16_GEMM_DEFAULT_XSMM 0

typedef enum { GEMM_SGEMM, GEMM_XSMM, GEMM_BAD_ENV } bf16_gemm_choice;

static bf16_gemm_choice bf16_gemm_resolve(void)
{
    const char *env = getenv("REMAT_BF16_GEMM");
    int want_xsmm = BF16_GEMM_DEFAULT_XSMM;
    if (env && *env) {
        if (strcmp(env, "libxsmm") == 0)
            want_xsmm = 1;
        else if (strcmp(env, "sgemm") == 0)
            want_xsmm = 0;
        else
            return GEMM_BAD_ENV;
    }
    return want_xsmm && kern_cpu_bf16_xsmm_available() ? GEMM_XSMM : GEMM_SGEMM;
}

static bf16_gemm_choice bf16_gemm_choice_get(void)
{
    static int choice = -1;
    int c = __atomic_load_n(&choice, __ATOMIC_ACQUIRE);
    if (c < 0) {
        c = (int)bf16_gemm_resolve();
        __atomic_store_n(&choice, c, __ATOMIC_RELEASE);
    }
    return (bf16_gemm_choice)c;
}

void kern_cpu_bf16_gemm(kern_ctx *k, const kern_bf16_gemm *g)
{
    switch (bf16_gemm_choice_get()) {
    case GEMM_XSMM:
        if (kern_cpu_bf16_gemm_xsmm(k, g))
            return;
        break; /* libxsmm has no kernel for this shape: sgemm computes it */
    case GEMM_BAD_ENV:
        if (k && k->error == REMAT_OK) {
            k->error = REMAT_EINVAL;
            snprintf(k->error_msg, sizeof k->error_msg,
                     "REMAT_BF16_GEMM '%s': use libxsmm or sgemm", getenv("REMAT_BF16_GEMM"));
        }
        return;
    case GEMM_SGEMM: break;
    }
    kern_cpu_bf16_gemm_sgemm(k, g);
}

const char *kern_cpu_bf16_gemm_name(void)
{
    switch (bf16_gemm_choice_get()) {
    case GEMM_XSMM: return "libxsmm";
    case GEMM_BAD_ENV: return "invalid REMAT_BF16_GEMM";
    default: return "sgemm";
    }
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

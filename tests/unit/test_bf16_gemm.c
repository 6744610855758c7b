/* tests/unit/test_bf16_gemm.c: the CPU bf16 GEMM's two paths (bf16 tiles converted to float32 then
 * OpenBLAS sgemm, and libxsmm's AVX512-BF16 GEMM) against a float64 reference on bf16 inputs, and
 * against each other, at every transpose, with bias and accumulation, at edge tiles and odd K.
 *
 * The bound: inputs are bf16, so every product a*b (8 + 8 significant bits) is exact in float32;
 * a float32 sum of K such terms in any order (FMA or not) is within gamma_K * S of the exact sum,
 * S = sum |a*b| (+ |bias| or |C_old|), gamma_K = K u / (1 - K u) <= 2 K u with u = 2^-24 while
 * K u <= 1/2. The one rounding to bf16 adds at most 2^-8 of the value (round to nearest even,
 * 8 significant bits: half an ulp). So |got - ref| <= 2^-8 |ref| + (1 + 2^-8) 2 K u S, which the test
 * checks element by element (with a 2^-133 floor for bf16 subnormals, which never occur here). */
#include "kernels/cpu/bf16.h"
#include "kernels/kernels.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static remat_device *dev;
static kern_ctx *kc;

static void open_ctx(void)
{
    const kern_table *t = NULL;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(kern_open(dev, &t, &kc), REMAT_OK, "%s", remat_last_error());
}

static void close_ctx(void)
{
    kern_close(kc);
    remat_device_close(dev);
}

TestSuite(bf16_gemm, .init = open_ctx, .fini = close_ctx);

static uint64_t rng = 88172645463325252ull;

static double uniform(void) /* [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static kern_bf16 *rand_bf16(size_t n)
{
    kern_bf16 *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert_not_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = kern_f32_to_bf16((float)uniform());
    return x;
}

typedef struct {
    int trans_a, trans_b, M, N, K, bias, accumulate;
} shape;

/* op(A)[m][k] and op(B)[k][n] of g, as double. */
static double a_at(const kern_bf16_gemm *g, int m, int k)
{
    return kern_bf16_to_f32(g->trans_a ? g->A[(size_t)k * g->lda + m] : g->A[(size_t)m * g->lda + k]);
}

static double b_at(const kern_bf16_gemm *g, int k, int n)
{
    return kern_bf16_to_f32(g->trans_b ? g->B[(size_t)n * g->ldb + k] : g->B[(size_t)k * g->ldb + n]);
}

/* Runs both paths on one shape; checks each against the float64 reference within the bound and
 * returns the largest |xsmm - sgemm| in units of the bound. */
static double check_shape(const shape *s, int have_xsmm)
{
    int M = s->M, N = s->N, K = s->K;
    int lda = s->trans_a ? M + 3 : K + 5, ldb = s->trans_b ? K + 1 : N + 7, ldc = N + 2;
    size_t an = (size_t)(s->trans_a ? K : M) * lda, bn = (size_t)(s->trans_b ? N : K) * ldb;
    kern_bf16 *A = rand_bf16(an), *B = rand_bf16(bn), *bias = rand_bf16((size_t)N);
    kern_bf16 *c0 = rand_bf16((size_t)M * ldc);
    kern_bf16 *c_sg = malloc((size_t)M * ldc * sizeof *c_sg), *c_xs = malloc((size_t)M * ldc * 2);
    cr_assert(c_sg && c_xs);
    memcpy(c_sg, c0, (size_t)M * ldc * 2);
    memcpy(c_xs, c0, (size_t)M * ldc * 2);
    kern_bf16_gemm g = {.trans_a = s->trans_a,
                        .trans_b = s->trans_b,
                        .M = M,
                        .N = N,
                        .K = K,
                        .A = A,
                        .lda = lda,
                        .B = B,
                        .ldb = ldb,
                        .ldc = ldc,
                        .bias = s->bias ? bias : NULL,
                        .accumulate = s->accumulate};
    g.C = c_sg;
    kern_cpu_bf16_gemm_sgemm(kc, &g);
    g.C = c_xs;
    if (have_xsmm)
        cr_assert_eq(kern_cpu_bf16_gemm_xsmm(kc, &g), 1, "libxsmm gave no kernel for %dx%dx%d",
                     M, N, K);
    cr_assert_eq(kern_cpu_status(kc), REMAT_OK, "%s", remat_last_error());
    const double u = ldexp(1.0, -24), gamma = 2.0 * K * u;
    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double ref = 0, abs_sum = 0;
            for (int k = 0; k < K; k++) {
                double p = a_at(&g, m, k) * b_at(&g, k, n);
                ref += p;
                abs_sum += fabs(p);
            }
            double add = s->accumulate ? kern_bf16_to_f32(c0[(size_t)m * ldc + n])
                         : s->bias     ? kern_bf16_to_f32(bias[n])
                                       : 0.0;
            ref += add;
            abs_sum += fabs(add);
            double bound = ldexp(fabs(ref), -8) + (1 + ldexp(1.0, -8)) * gamma * abs_sum +
                           ldexp(1.0, -133);
            double sg = kern_bf16_to_f32(c_sg[(size_t)m * ldc + n]);
            cr_assert_leq(fabs(sg - ref), bound, "sgemm %dx%dx%d t%d%d at (%d,%d): %g vs %g", M, N,
                          K, s->trans_a, s->trans_b, m, n, sg, ref);
            if (!have_xsmm)
                continue;
            double xs = kern_bf16_to_f32(c_xs[(size_t)m * ldc + n]);
            cr_assert_leq(fabs(xs - ref), bound, "libxsmm %dx%dx%d t%d%d at (%d,%d): %g vs %g", M,
                          N, K, s->trans_a, s->trans_b, m, n, xs, ref);
            worst = fmax(worst, fabs(xs - sg) / bound);
        }
    /* the padding columns of C (ldc > N) are never written */
    for (int m = 0; m < M; m++)
        for (int n = N; n < ldc; n++) {
            cr_assert_eq(c_sg[(size_t)m * ldc + n], c0[(size_t)m * ldc + n]);
            cr_assert_eq(c_xs[(size_t)m * ldc + n], c0[(size_t)m * ldc + n]);
        }
    free(A), free(B), free(bias), free(c0), free(c_sg), free(c_xs);
    return worst;
}

/* The matmul kernels' three GEMMs (forward: A row-major, B transposed, bias; dinp: both plain,
 * accumulate; dweight: A transposed, accumulate) and the other transposes, at full and edge
 * tiles (the libxsmm tiles are 256 x 64 x 256, sgemm's 64 x 128 x 256) and odd K. */
Test(bf16_gemm, both_paths_within_the_float32_bound_of_float64)
{
    int have = kern_cpu_bf16_xsmm_available();
    const shape shapes[] = {
        {0, 1, 256, 192, 128, 1, 0}, /* forward, full tiles */
        {0, 1, 300, 70, 257, 1, 0},  /* edge tiles, odd K */
        {0, 0, 64, 128, 576, 0, 1},  /* dinp */
        {1, 0, 130, 96, 300, 0, 1},  /* dweight */
        {1, 1, 33, 65, 31, 0, 0},    /* both transposed, no bias, odd K */
        {0, 0, 1, 1, 1, 0, 0},       /* one element */
        {0, 1, 5, 7, 0, 1, 0},       /* K = 0: bias only */
        {1, 0, 17, 200, 1, 0, 1},    /* K = 1 */
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        worst = fmax(worst, check_shape(&shapes[i], have));
    /* each is within the bound of the reference, so they are within twice it of each other */
    cr_expect_leq(worst, 2.0, "libxsmm vs sgemm: %g bounds apart", worst);
    if (!have)
        cr_log_warn("libxsmm is not in this build or the CPU lacks AVX512-BF16: sgemm only");
}

/* The default is what gemm_name says, and both names are ones the docs list. */
Test(bf16_gemm, the_choice_is_named)
{
    const char *name = kern_cpu_bf16.gemm_name();
    cr_assert(strcmp(name, "libxsmm") == 0 || strcmp(name, "sgemm") == 0, "%s", name);
    const char *env = getenv("REMAT_BF16_GEMM");
    if (!env || !*env || strcmp(env, "sgemm") == 0 || !kern_cpu_bf16_xsmm_available())
        cr_assert_str_eq(name, "sgemm"); /* the default: the faster at most step shapes */
    else if (strcmp(env, "libxsmm") == 0)
        cr_assert_str_eq(name, "libxsmm");
}

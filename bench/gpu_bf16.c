/* bench/gpu_bf16.c: every CUDA bf16 kernel (kernels_bf16.h) against the CPU bf16 kernel on the same
 * random bf16 data (run by `make gpu-check`). Prints, per output, the max relative error (max abs
 * difference / max abs reference) and how many elements differ in their bits: bf16 outputs within
 * 1e-2 (GEMM-bound: matmul, attention) or 8e-3 (elementwise), float32 outputs within 1e-5
 * (LayerNorm statistics, losses) or 1e-4 (AdamW master weights and moments); bit for bit where
 * both sides do the same float32 operations in the same order (the conversions, the stochastically
 * rounded AdamW, the embedding's dwte), GELU's forward within 1 bf16 ulp. The GEMM-bound kernels
 * run twice on the GPU and must reproduce their bits. Then the GPU time and GFLOP/s of the matmul
 * and attention kernels at gpt2-124m shapes (B=8, T=1024), bf16 table against the fp32 one. Exits
 * 1 on a mismatch, 0 when all agree or when there is nothing to check (no CUDA in this build, or
 * no GPU: says so). */
#include "kernels/kernels_bf16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef REMAT_HAVE_CUDA

typedef struct {
    remat_device *dev, *host;
    remat_pool *pool;
    const kern_table *gpu;     /* the CUDA table: the fp32 kernels of the timing */
    const kern_bf16_table *bf; /* gpu->bf16, under test */
    kern_ctx *ctx;             /* the CUDA context */
    kern_ctx *hctx;            /* the host context of kern_cpu_bf16 (its workspace) */
    int failures;
} check;

static uint64_t rng = 88172645463325252ull;

static float rand_unit(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

/* An index in [0, n). */
static int rand_index(int n)
{
    return (int)((rand_unit() + 1.0f) * 0.5f * (float)(n - 1));
}

static void die(const char *what)
{
    fprintf(stderr, "gpu_bf16: %s: %s\n", what, remat_last_error());
    exit(1);
}

static void *host_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        die("host malloc");
    return p;
}

static void *host_dup(const void *p, size_t bytes)
{
    return memcpy(host_alloc(bytes), p, bytes);
}

static float *host_rand(size_t n, float scale)
{
    float *x = host_alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * rand_unit();
    return x;
}

/* Random floats rounded to bf16: the inputs of both sides. */
static kern_bf16 *host_rand_bf16(size_t n, float scale)
{
    kern_bf16 *x = host_alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = kern_f32_to_bf16(scale * rand_unit());
    return x;
}

static void *dev_upload(check *c, const void *h, size_t bytes)
{
    void *d = remat_alloc(c->pool, bytes, kern_stream(c->ctx));
    if (!d)
        die("device alloc");
    if (remat_device_copy(c->dev, d, h, bytes, REMAT_COPY_HOST_TO_DEVICE) != REMAT_OK)
        die("copy to device");
    return d;
}

/* Overwrites a device array with host data (a gradient's starting value before a rerun, the CPU's
 * saved statistics before a backward). The copy is ordered after the queued kernels. */
static void dev_reset(check *c, void *d, const void *h, size_t bytes)
{
    if (remat_device_copy(c->dev, d, h, bytes, REMAT_COPY_HOST_TO_DEVICE) != REMAT_OK)
        die("copy to device");
}

/* Waits for the GPU work (a failure names the kernel), then copies the device array back. */
static void *dev_download(check *c, const char *name, const void *d, size_t bytes)
{
    if (c->gpu->status(c->ctx) != REMAT_OK)
        die(name);
    void *h = host_alloc(bytes);
    if (remat_device_copy(c->dev, h, d, bytes, REMAT_COPY_DEVICE_TO_HOST) != REMAT_OK)
        die("copy from device");
    return h;
}

/* ---- Comparisons ------------------------------------------------------------------------- */

typedef enum {
    BY_TOL,  /* max relative error within tol */
    BITWISE, /* every element's bits equal */
    ONE_ULP, /* bf16 values at most one ulp apart */
} rule;

#define GEMM_TOL 1e-2 /* bf16 outputs of cuBLAS / OpenBLAS reductions in different orders */
#define ELEM_TOL 8e-3 /* bf16 outputs: one rounding apart at the largest element (2^-7) */
#define STAT_TOL 1e-5 /* float32 LayerNorm statistics, losses */
#define OPT_TOL 1e-4  /* float32 AdamW master weights and moments */

/* Distance in ulps between two bf16 values (the bit patterns in sign-magnitude order). */
static int bf16_ulps(kern_bf16 a, kern_bf16 b)
{
    int ka = a & 0x8000 ? -(int)(a & 0x7fff) : (int)a,
        kb = b & 0x8000 ? -(int)(b & 0x7fff) : (int)b;
    return abs(ka - kb);
}

/* Prints one output's line and counts a failure. max_ulp < 0: float32 output (no ulp count). */
static void verdict(check *c, const char *name, double err, size_t differ, size_t n, int max_ulp,
                    rule r, double tol)
{
    char how[24], bits[64];
    if (r == BITWISE)
        snprintf(how, sizeof how, "bitwise");
    else if (r == ONE_ULP)
        snprintf(how, sizeof how, "<= 1 ulp");
    else
        snprintf(how, sizeof how, "tol %.0e", tol);
    if (!differ)
        snprintf(bits, sizeof bits, "bitwise equal");
    else if (max_ulp >= 0)
        snprintf(bits, sizeof bits, "%zu of %zu differ (max %d ulp)", differ, n, max_ulp);
    else
        snprintf(bits, sizeof bits, "%zu of %zu differ", differ, n);
    int ok = r == BITWISE ? differ == 0 : r == ONE_ULP ? max_ulp <= 1 && isfinite(err) : err <= tol;
    printf("%-56s max rel err %9.2e  (%-9s) %-34s %s\n", name, err, how, bits,
           ok ? "ok" : "MISMATCH");
    c->failures += !ok;
}

/* Relative error of one element pair folded into (*diff, *mag); NaN on one side only is infinite.
 */
static void accumulate_err(double ref, double got, double *diff, double *mag)
{
    *diff = fmax(*diff, fabs(got - ref));
    *mag = fmax(*mag, fabs(ref));
    if (isnan(ref) != isnan(got))
        *diff = INFINITY;
}

/* The device bf16 array against the reference, after converting both to float. */
static void compare_bf16(check *c, const char *name, const kern_bf16 *ref, const kern_bf16 *dev,
                         size_t n, double tol, rule r)
{
    kern_bf16 *g = dev_download(c, name, dev, n * sizeof *g);
    double diff = 0.0, mag = 1e-6;
    size_t differ = 0;
    int max_ulp = 0;
    for (size_t i = 0; i < n; i++) {
        accumulate_err(kern_bf16_to_f32(ref[i]), kern_bf16_to_f32(g[i]), &diff, &mag);
        if (g[i] != ref[i]) {
            differ++;
            int u = bf16_ulps(ref[i], g[i]);
            max_ulp = u > max_ulp ? u : max_ulp;
        }
    }
    verdict(c, name, diff / mag, differ, n, max_ulp, r, tol);
    free(g);
}

static void compare_f32(check *c, const char *name, const float *ref, const float *dev, size_t n,
                        double tol, rule r)
{
    float *g = dev_download(c, name, dev, n * sizeof *g);
    double diff = 0.0, mag = 1e-6;
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        accumulate_err(ref[i], g[i], &diff, &mag);
        differ += memcmp(&ref[i], &g[i], sizeof g[i]) != 0;
    }
    verdict(c, name, diff / mag, differ, n, -1, r, tol);
    free(g);
}

/* "prefix what": one output's name (one at a time: a static buffer). */
static const char *nm(const char *prefix, const char *what)
{
    static char name[96];
    snprintf(name, sizeof name, "%s %s", prefix, what);
    return name;
}

#define CPU kern_cpu_bf16

/* ---- One check per kernel family ---------------------------------------------------------- */

static void check_encoder(check *c, int B, int T, int C, int V)
{
    size_t n = (size_t)B * T * C, nte = (size_t)V * C, npe = (size_t)T * C;
    int *tok = host_alloc((size_t)B * T * sizeof *tok);
    for (int i = 0; i < B * T; i++) /* half the rows on 16 tokens: dwte rows summed from many */
        tok[i] = rand_unit() < 0 ? rand_index(16) : rand_index(V);
    kern_bf16 *wte = host_rand_bf16(nte, 1), *wpe = host_rand_bf16(npe, 1);
    kern_bf16 *out = host_rand_bf16(n, 1), *dout = host_rand_bf16(n, 1);
    kern_bf16 *dwte = host_rand_bf16(nte, 1), *dwpe = host_rand_bf16(npe, 1);
    int *d_tok = dev_upload(c, tok, (size_t)B * T * sizeof *tok);
    kern_bf16 *d_wte = dev_upload(c, wte, nte * 2), *d_wpe = dev_upload(c, wpe, npe * 2);
    kern_bf16 *d_out = dev_upload(c, out, n * 2), *d_dout = dev_upload(c, dout, n * 2);
    kern_bf16 *d_dwte = dev_upload(c, dwte, nte * 2), *d_dwpe = dev_upload(c, dwpe, npe * 2);
    CPU.encoder_forward(c->hctx, out, tok, wte, wpe, B, T, C);
    c->bf->encoder_forward(c->ctx, d_out, d_tok, d_wte, d_wpe, B, T, C);
    compare_bf16(c, "encoder_forward out", out, d_out, n, ELEM_TOL, BY_TOL);
    CPU.encoder_backward(c->hctx, dwte, dwpe, dout, tok, B, T, C);
    c->bf->encoder_backward(c->ctx, d_dwte, d_dwpe, d_dout, d_tok, B, T, C);
    /* Each token's rows summed in float32 in row order, then one add: the same bits. */
    compare_bf16(c, "encoder_backward dwte", dwte, d_dwte, nte, 0, BITWISE);
    compare_bf16(c, "encoder_backward dwpe", dwpe, d_dwpe, npe, ELEM_TOL, BY_TOL);
}

static void check_layernorm(check *c, int N, int C)
{
    size_t n = (size_t)N * C;
    char pre[48];
    snprintf(pre, sizeof pre, "layernorm %dx%d", N, C);
    kern_bf16 *x = host_rand_bf16(n, 3), *w = host_rand_bf16(C, 1), *b = host_rand_bf16(C, 1);
    kern_bf16 *out = host_rand_bf16(n, 1), *dout = host_rand_bf16(n, 1);
    kern_bf16 *dx = host_rand_bf16(n, 1), *dw = host_rand_bf16(C, 1), *db = host_rand_bf16(C, 1);
    float *mean = host_rand(N, 1), *rstd = host_rand(N, 1);
    kern_bf16 *d_x = dev_upload(c, x, n * 2), *d_w = dev_upload(c, w, C * 2);
    kern_bf16 *d_b = dev_upload(c, b, C * 2), *d_out = dev_upload(c, out, n * 2);
    kern_bf16 *d_dout = dev_upload(c, dout, n * 2), *d_dx = dev_upload(c, dx, n * 2);
    kern_bf16 *d_dw = dev_upload(c, dw, C * 2), *d_db = dev_upload(c, db, C * 2);
    float *d_mean = dev_upload(c, mean, N * 4), *d_rstd = dev_upload(c, rstd, N * 4);
    CPU.layernorm_forward(c->hctx, out, mean, rstd, x, w, b, N, C);
    c->bf->layernorm_forward(c->ctx, d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C);
    compare_bf16(c, nm(pre, "forward out"), out, d_out, n, ELEM_TOL, BY_TOL);
    compare_f32(c, nm(pre, "forward mean"), mean, d_mean, N, STAT_TOL, BY_TOL);
    compare_f32(c, nm(pre, "forward rstd"), rstd, d_rstd, N, STAT_TOL, BY_TOL);
    /* The backward of both from the same inputs: the CPU's statistics. */
    dev_reset(c, d_mean, mean, N * 4);
    dev_reset(c, d_rstd, rstd, N * 4);
    CPU.layernorm_backward(c->hctx, dx, dw, db, dout, x, w, mean, rstd, N, C);
    c->bf->layernorm_backward(c->ctx, d_dx, d_dw, d_db, d_dout, d_x, d_w, d_mean, d_rstd, N, C);
    compare_bf16(c, nm(pre, "backward dinp"), dx, d_dx, n, ELEM_TOL, BY_TOL);
    compare_bf16(c, nm(pre, "backward dweight"), dw, d_dw, C, ELEM_TOL, BY_TOL);
    compare_bf16(c, nm(pre, "backward dbias"), db, d_db, C, ELEM_TOL, BY_TOL);
}

static void check_matmul(check *c, int N, int C, int OC, int with_bias)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    char pre[48];
    snprintf(pre, sizeof pre, "matmul %dx%dx%d%s", N, OC, C, with_bias ? "" : " (no bias)");
    kern_bf16 *x = host_rand_bf16(nx, 1), *w = host_rand_bf16(nw, 0.1f), *b = host_rand_bf16(OC, 1);
    kern_bf16 *out = host_rand_bf16(no, 1), *dout = host_rand_bf16(no, 1);
    kern_bf16 *dx0 = host_rand_bf16(nx, 1), *dw0 = host_rand_bf16(nw, 1),
              *db0 = host_rand_bf16(OC, 1);
    kern_bf16 *dx = host_dup(dx0, nx * 2), *dw = host_dup(dw0, nw * 2), *db = host_dup(db0, OC * 2);
    kern_bf16 *d_x = dev_upload(c, x, nx * 2), *d_w = dev_upload(c, w, nw * 2);
    kern_bf16 *d_b = dev_upload(c, b, OC * 2), *d_out = dev_upload(c, out, no * 2);
    kern_bf16 *d_dout = dev_upload(c, dout, no * 2), *d_dx = dev_upload(c, dx0, nx * 2);
    kern_bf16 *d_dw = dev_upload(c, dw0, nw * 2), *d_db = dev_upload(c, db0, OC * 2);
    kern_bf16 *bias = with_bias ? b : NULL, *d_bias = with_bias ? d_b : NULL;
    kern_bf16 *dbias = with_bias ? db : NULL, *d_dbias = with_bias ? d_db : NULL;

    CPU.matmul_forward(c->hctx, out, x, w, bias, N, C, OC);
    c->bf->matmul_forward(c->ctx, d_out, d_x, d_w, d_bias, N, C, OC);
    compare_bf16(c, nm(pre, "forward out"), out, d_out, no, GEMM_TOL, BY_TOL);

    CPU.matmul_backward(c->hctx, dx, dw, dbias, dout, x, w, N, C, OC);
    c->bf->matmul_backward(c->ctx, d_dx, d_dw, d_dbias, d_dout, d_x, d_w, N, C, OC);
    compare_bf16(c, nm(pre, "backward dinp"), dx, d_dx, nx, GEMM_TOL, BY_TOL);
    compare_bf16(c, nm(pre, "backward dweight"), dw, d_dw, nw, GEMM_TOL, BY_TOL);
    if (with_bias)
        compare_bf16(c, nm(pre, "backward dbias"), db, d_db, OC, ELEM_TOL, BY_TOL);

    /* The same backward again from the same starting gradients: the same bits. */
    kern_bf16 *gx = dev_download(c, pre, d_dx, nx * 2), *gw = dev_download(c, pre, d_dw, nw * 2);
    kern_bf16 *gb = dev_download(c, pre, d_db, OC * 2);
    dev_reset(c, d_dx, dx0, nx * 2);
    dev_reset(c, d_dw, dw0, nw * 2);
    dev_reset(c, d_db, db0, OC * 2);
    c->bf->matmul_backward(c->ctx, d_dx, d_dw, d_dbias, d_dout, d_x, d_w, N, C, OC);
    compare_bf16(c, nm(pre, "backward dinp, GPU rerun"), gx, d_dx, nx, 0, BITWISE);
    compare_bf16(c, nm(pre, "backward dweight, GPU rerun"), gw, d_dw, nw, 0, BITWISE);
    if (with_bias)
        compare_bf16(c, nm(pre, "backward dbias, GPU rerun"), gb, d_db, OC, 0, BITWISE);

    /* Without the input gradient (dinp NULL). */
    memcpy(dw, dw0, nw * 2);
    memcpy(db, db0, OC * 2);
    dev_reset(c, d_dw, dw0, nw * 2);
    dev_reset(c, d_db, db0, OC * 2);
    CPU.matmul_backward(c->hctx, NULL, dw, dbias, dout, x, w, N, C, OC);
    c->bf->matmul_backward(c->ctx, NULL, d_dw, d_dbias, d_dout, d_x, d_w, N, C, OC);
    compare_bf16(c, nm(pre, "backward dweight (dinp NULL)"), dw, d_dw, nw, GEMM_TOL, BY_TOL);
    if (with_bias)
        compare_bf16(c, nm(pre, "backward dbias (dinp NULL)"), db, d_db, OC, ELEM_TOL, BY_TOL);
    free(gx), free(gw), free(gb);
}

static void check_attention(check *c, int B, int T, int C, int NH)
{
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    char pre[48];
    snprintf(pre, sizeof pre, "attention T=%d", T);
    kern_bf16 *qkv = host_rand_bf16(nq, 2), *out = host_rand_bf16(no, 1),
              *att = host_rand_bf16(na, 1);
    kern_bf16 *dout = host_rand_bf16(no, 1), *dqkv0 = host_rand_bf16(nq, 1),
              *dqkv = host_dup(dqkv0, nq * 2);
    void *scratch = host_alloc(CPU.attention_scratch_bytes(B, T, C, NH));
    void *d_scratch =
        remat_alloc(c->pool, c->bf->attention_scratch_bytes(B, T, C, NH), kern_stream(c->ctx));
    if (!d_scratch)
        die("attention scratch");
    kern_bf16 *d_qkv = dev_upload(c, qkv, nq * 2), *d_out = dev_upload(c, out, no * 2);
    kern_bf16 *d_att = dev_upload(c, att, na * 2), *d_dout = dev_upload(c, dout, no * 2);
    kern_bf16 *d_dqkv = dev_upload(c, dqkv0, nq * 2);

    CPU.attention_forward(c->hctx, out, att, qkv, scratch, B, T, C, NH);
    c->bf->attention_forward(c->ctx, d_out, d_att, d_qkv, d_scratch, B, T, C, NH);
    compare_bf16(c, nm(pre, "forward out"), out, d_out, no, GEMM_TOL, BY_TOL);
    compare_bf16(c, nm(pre, "forward att"), att, d_att, na, GEMM_TOL, BY_TOL);
    /* A recomputation must reproduce the forward's bits. */
    kern_bf16 *go = dev_download(c, pre, d_out, no * 2), *ga = dev_download(c, pre, d_att, na * 2);
    c->bf->attention_forward(c->ctx, d_out, d_att, d_qkv, d_scratch, B, T, C, NH);
    compare_bf16(c, nm(pre, "forward out, GPU rerun"), go, d_out, no, 0, BITWISE);
    compare_bf16(c, nm(pre, "forward att, GPU rerun"), ga, d_att, na, 0, BITWISE);

    /* The backward of both from the same inputs: the CPU's probabilities. */
    dev_reset(c, d_att, att, na * 2);
    CPU.attention_backward(c->hctx, dqkv, dout, qkv, att, scratch, B, T, C, NH);
    c->bf->attention_backward(c->ctx, d_dqkv, d_dout, d_qkv, d_att, d_scratch, B, T, C, NH);
    compare_bf16(c, nm(pre, "backward dqkv"), dqkv, d_dqkv, nq, GEMM_TOL, BY_TOL);
    kern_bf16 *gq = dev_download(c, pre, d_dqkv, nq * 2);
    dev_reset(c, d_dqkv, dqkv0, nq * 2);
    c->bf->attention_backward(c->ctx, d_dqkv, d_dout, d_qkv, d_att, d_scratch, B, T, C, NH);
    compare_bf16(c, nm(pre, "backward dqkv, GPU rerun"), gq, d_dqkv, nq, 0, BITWISE);
    free(scratch), free(go), free(ga), free(gq);
}

static void check_elementwise(check *c, size_t n)
{
    kern_bf16 *x = host_rand_bf16(n, 5), *y = host_rand_bf16(n, 1), *out = host_rand_bf16(n, 1);
    kern_bf16 *dx = host_rand_bf16(n, 1);
    kern_bf16 *d_x = dev_upload(c, x, n * 2), *d_y = dev_upload(c, y, n * 2);
    kern_bf16 *d_out = dev_upload(c, out, n * 2), *d_dx = dev_upload(c, dx, n * 2);
    CPU.gelu_forward(c->hctx, out, x, n);
    c->bf->gelu_forward(c->ctx, d_out, d_x, n);
    compare_bf16(c, "gelu_forward out", out, d_out, n, 0, ONE_ULP);
    CPU.gelu_backward(c->hctx, dx, x, y, n);
    c->bf->gelu_backward(c->ctx, d_dx, d_x, d_y, n);
    compare_bf16(c, "gelu_backward dinp", dx, d_dx, n, ELEM_TOL, BY_TOL);
    CPU.residual_forward(c->hctx, out, x, y, n);
    c->bf->residual_forward(c->ctx, d_out, d_x, d_y, n);
    compare_bf16(c, "residual_forward out", out, d_out, n, ELEM_TOL, BY_TOL);
    CPU.accumulate(c->hctx, out, y, n);
    c->bf->accumulate(c->ctx, d_out, d_y, n);
    compare_bf16(c, "accumulate dst", out, d_out, n, ELEM_TOL, BY_TOL);
}

/* The conversions, with the special values in front: zeros, infinities, NaN, a tie to even, an
 * overflow, subnormals. */
static void check_conversions(check *c, size_t n)
{
    static const float f_special[] = {0.0f,     -0.0f,       INFINITY,    -INFINITY,
                                      NAN,      1.00390625f, 1.01171875f, 3.4e38f,
                                      -3.4e38f, 1e-40f,      -1e-45f};
    static const kern_bf16 h_special[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0,
                                          0xffc1, 0x0001, 0x807f, 0x7f7f, 0x3f80};
    size_t nf = sizeof f_special / sizeof f_special[0], nh = sizeof h_special / sizeof h_special[0];
    float *f = host_rand(n, 100), *f_out = host_rand(n, 1);
    kern_bf16 *h = host_rand_bf16(n, 100), *h_out = host_rand_bf16(n, 1);
    memcpy(f, f_special, nf * sizeof *f);
    memcpy(h, h_special, nh * sizeof *h);
    float *d_f = dev_upload(c, f, n * 4), *d_f_out = dev_upload(c, f_out, n * 4);
    kern_bf16 *d_h = dev_upload(c, h, n * 2), *d_h_out = dev_upload(c, h_out, n * 2);
    CPU.to_bf16(c->hctx, h_out, f, n);
    c->bf->to_bf16(c->ctx, d_h_out, d_f, n);
    compare_bf16(c, "to_bf16", h_out, d_h_out, n, 0, BITWISE);
    CPU.to_f32(c->hctx, f_out, h, n);
    c->bf->to_f32(c->ctx, d_f_out, d_h, n);
    compare_f32(c, "to_f32", f_out, d_f_out, n, 0, BITWISE);
}

static void check_xent(check *c, int N, int V, int Vp)
{
    size_t n = (size_t)N * Vp;
    kern_bf16 *logits = host_rand_bf16(n, 8), *dl = host_rand_bf16(n, 1);
    kern_bf16 *aliased = host_dup(logits, n * 2);
    float *losses0 = host_rand(N, 1), *losses = host_dup(losses0, (size_t)N * 4);
    int *targets = host_alloc((size_t)N * sizeof *targets);
    for (int i = 0; i < N; i++)
        targets[i] = rand_index(V);
    int *d_t = dev_upload(c, targets, (size_t)N * sizeof *targets);
    kern_bf16 *d_logits = dev_upload(c, logits, n * 2), *d_dl = dev_upload(c, dl, n * 2);
    float *d_losses = dev_upload(c, losses0, (size_t)N * 4);
    float dscale = 1.0f / N;

    CPU.softmax_xent(c->hctx, losses, dl, logits, targets, dscale, N, V, Vp);
    c->bf->softmax_xent(c->ctx, d_losses, d_dl, d_logits, d_t, dscale, N, V, Vp);
    compare_f32(c, "softmax_xent losses", losses, d_losses, N, STAT_TOL, BY_TOL);
    compare_bf16(c, "softmax_xent dlogits", dl, d_dl, n, ELEM_TOL, BY_TOL);

    memcpy(losses, losses0, (size_t)N * 4);
    dev_reset(c, d_losses, losses0, (size_t)N * 4);
    CPU.softmax_xent(c->hctx, losses, NULL, logits, targets, dscale, N, V, Vp);
    c->bf->softmax_xent(c->ctx, d_losses, NULL, d_logits, d_t, dscale, N, V, Vp);
    compare_f32(c, "softmax_xent losses (dlogits NULL)", losses, d_losses, N, STAT_TOL, BY_TOL);

    memcpy(losses, losses0, (size_t)N * 4);
    dev_reset(c, d_losses, losses0, (size_t)N * 4);
    CPU.softmax_xent(c->hctx, losses, aliased, aliased, targets, dscale, N, V, Vp);
    c->bf->softmax_xent(c->ctx, d_losses, d_logits, d_logits, d_t, dscale, N, V, Vp);
    compare_f32(c, "softmax_xent losses (dlogits = logits)", losses, d_losses, N, STAT_TOL, BY_TOL);
    compare_bf16(c, "softmax_xent dlogits (dlogits = logits)", aliased, d_logits, n, ELEM_TOL,
                 BY_TOL);
}

static void check_adamw(check *c, size_t n)
{
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    const uint64_t seed = 1234567;
    float *master = host_rand(n, 1), *m = calloc(n, 4), *v = calloc(n, 4);
    kern_bf16 *p = host_alloc(n * 2), *g = host_rand_bf16(n, 1);
    if (!m || !v)
        die("host calloc");
    for (size_t i = 0; i < n; i++)
        p[i] = kern_f32_to_bf16(master[i]);
    kern_bf16 *d_p = dev_upload(c, p, n * 2), *d_g = dev_upload(c, g, n * 2);
    float *d_master = dev_upload(c, master, n * 4), *d_m = dev_upload(c, m, n * 4),
          *d_v = dev_upload(c, v, n * 4);
    for (int t = 1; t <= 3; t++) {
        CPU.adamw_master(c->hctx, p, master, g, m, v, n, lr, b1, b2, eps, wd, t);
        c->bf->adamw_master(c->ctx, d_p, d_master, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, t);
    }
    compare_bf16(c, "adamw_master params (3 steps)", p, d_p, n, ELEM_TOL, BY_TOL);
    compare_f32(c, "adamw_master master", master, d_master, n, OPT_TOL, BY_TOL);
    compare_f32(c, "adamw_master m", m, d_m, n, OPT_TOL, BY_TOL);
    compare_f32(c, "adamw_master v", v, d_v, n, OPT_TOL, BY_TOL);

    /* Stochastic rounding: the same kern_sr_bits stream on both sides, so the same bits. */
    memset(m, 0, n * 4);
    memset(v, 0, n * 4);
    dev_reset(c, d_p, p, n * 2);
    dev_reset(c, d_m, m, n * 4);
    dev_reset(c, d_v, v, n * 4);
    for (int t = 1; t <= 3; t++) {
        CPU.adamw_sr(c->hctx, p, g, m, v, n, lr, b1, b2, eps, wd, t, seed + t);
        c->bf->adamw_sr(c->ctx, d_p, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, t, seed + t);
    }
    compare_bf16(c, "adamw_sr params (3 steps)", p, d_p, n, 0, BITWISE);
    compare_f32(c, "adamw_sr m", m, d_m, n, OPT_TOL, BY_TOL);
    compare_f32(c, "adamw_sr v", v, d_v, n, OPT_TOL, BY_TOL);
}

/* ---- GPU speed at gpt2-124m shapes: bf16 against fp32 ------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n random elements of `size` bytes (4: float, 2: bf16) on the device, from one repeated block. */
static void *dev_rand(check *c, size_t n, size_t size)
{
    enum { BLOCK = 1 << 20 };
    void *d = remat_alloc(c->pool, n * size, kern_stream(c->ctx));
    void *h = size == 4 ? (void *)host_rand(BLOCK, 0.1f) : (void *)host_rand_bf16(BLOCK, 0.1f);
    if (!d)
        die("device alloc");
    for (size_t i = 0; i < n; i += BLOCK) {
        size_t k = n - i < BLOCK ? n - i : BLOCK;
        dev_reset(c, (char *)d + i * size, h, k * size);
    }
    free(h);
    return d;
}

typedef enum { T_MM_FWD, T_MM_BWD, T_ATT_FWD, T_ATT_BWD } timed_kernel;

/* One precision's buffers (float or bf16 elements), sized for the largest OC. */
typedef struct {
    void *x, *w, *b, *out, *dx, *dw, *db, *qkv, *att, *aout, *dqkv, *scratch;
} timing_bufs;

typedef struct {
    int B, T, C, NH, OC;
} shape;

static timing_bufs timing_alloc(check *c, const shape *s, int max_oc, int bf16)
{
    size_t e = bf16 ? 2 : 4, N = (size_t)s->B * s->T, C = (size_t)s->C;
    size_t sb = bf16 ? c->bf->attention_scratch_bytes(s->B, s->T, s->C, s->NH)
                     : c->gpu->attention_scratch_bytes(s->B, s->T, s->C, s->NH);
    timing_bufs t = {dev_rand(c, N * C, e),
                     dev_rand(c, (size_t)max_oc * C, e),
                     dev_rand(c, (size_t)max_oc, e),
                     dev_rand(c, N * max_oc, e),
                     dev_rand(c, N * C, e),
                     dev_rand(c, (size_t)max_oc * C, e),
                     dev_rand(c, (size_t)max_oc, e),
                     dev_rand(c, N * 3 * C, e),
                     dev_rand(c, (size_t)s->B * s->NH * s->T * s->T, e),
                     dev_rand(c, N * C, e),
                     dev_rand(c, N * 3 * C, e),
                     remat_alloc(c->pool, sb, kern_stream(c->ctx))};
    if (!t.scratch)
        die("attention scratch");
    return t;
}

static void timed_call(check *c, const timing_bufs *t, int bf16, timed_kernel which, const shape *s)
{
    int N = s->B * s->T, C = s->C, OC = s->OC, B = s->B, T = s->T, NH = s->NH;
    const kern_table *f = c->gpu;
    const kern_bf16_table *h = c->bf;
    switch (which) {
    case T_MM_FWD:
        if (bf16)
            h->matmul_forward(c->ctx, t->out, t->x, t->w, t->b, N, C, OC);
        else
            f->matmul_forward(c->ctx, t->out, t->x, t->w, t->b, N, C, OC);
        break;
    case T_MM_BWD:
        if (bf16)
            h->matmul_backward(c->ctx, t->dx, t->dw, t->db, t->out, t->x, t->w, N, C, OC);
        else
            f->matmul_backward(c->ctx, t->dx, t->dw, t->db, t->out, t->x, t->w, N, C, OC);
        break;
    case T_ATT_FWD:
        if (bf16)
            h->attention_forward(c->ctx, t->aout, t->att, t->qkv, t->scratch, B, T, C, NH);
        else
            f->attention_forward(c->ctx, t->aout, t->att, t->qkv, t->scratch, B, T, C, NH);
        break;
    case T_ATT_BWD:
        if (bf16)
            h->attention_backward(c->ctx, t->dqkv, t->aout, t->qkv, t->att, t->scratch, B, T, C,
                                  NH);
        else
            f->attention_backward(c->ctx, t->dqkv, t->aout, t->qkv, t->att, t->scratch, B, T, C,
                                  NH);
        break;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of `REPS` calls, each waited for (status() before and after), after one
 * warm-up call. */
#define REPS 10
static double time_median(check *c, const timing_bufs *t, int bf16, timed_kernel which,
                          const shape *s, const char *name)
{
    double ms[REPS];
    timed_call(c, t, bf16, which, s);
    if (c->gpu->status(c->ctx) != REMAT_OK)
        die(name);
    for (int i = 0; i < REPS; i++) {
        double t0 = now_s();
        timed_call(c, t, bf16, which, s);
        if (c->gpu->status(c->ctx) != REMAT_OK)
            die(name);
        ms[i] = (now_s() - t0) * 1e3;
    }
    qsort(ms, REPS, sizeof ms[0], cmp_double);
    return 0.5 * (ms[REPS / 2 - 1] + ms[REPS / 2]);
}

static void time_both(check *c, const timing_bufs *f32, const timing_bufs *bf, timed_kernel which,
                      const shape *s, const char *name, double flops)
{
    double a = time_median(c, f32, 0, which, s, name), b = time_median(c, bf, 1, which, s, name);
    printf("%-34s fp32 %8.3f ms %9.1f GFLOP/s   bf16 %8.3f ms %9.1f GFLOP/s   bf16/fp32 %5.2fx\n",
           name, a, flops / (a * 1e-3) * 1e-9, b, flops / (b * 1e-3) * 1e-9, a / b);
}

static void time_kernels(check *c)
{
    shape s = {8, 1024, 768, 12, 0};
    static const int ocs[] = {3072, 2304};
    timing_bufs f32 = timing_alloc(c, &s, ocs[0], 0), bf = timing_alloc(c, &s, ocs[0], 1);
    int N = s.B * s.T;
    printf(
        "GPU timing at B=%d T=%d C=%d NH=%d, median of %d (fp32: cuBLAS default math; bf16 %s):\n",
        s.B, s.T, s.C, s.NH, REPS, c->bf->gemm_name());
    for (int i = 0; i < 2; i++) {
        char name[64];
        s.OC = ocs[i];
        double mm = 2.0 * N * s.C * s.OC;
        snprintf(name, sizeof name, "matmul_forward %dx%dx%d", N, s.OC, s.C);
        time_both(c, &f32, &bf, T_MM_FWD, &s, name, mm);
        snprintf(name, sizeof name, "matmul_backward %dx%dx%d", N, s.OC, s.C);
        time_both(c, &f32, &bf, T_MM_BWD, &s, name, 2 * mm);
    }
    double att = 4.0 * s.B * s.C * (double)s.T * s.T; /* the full T x T square, all heads */
    time_both(c, &f32, &bf, T_ATT_FWD, &s, "attention_forward", att);
    time_both(c, &f32, &bf, T_ATT_BWD, &s, "attention_backward", 2 * att);
}

static int run_checks(void)
{
    int count = 0;
    const char *why = NULL;
    (void)!remat_cuda_device_count(&count, &why); /* a failure reads as no GPU */
    if (count == 0) {
        printf("gpu_bf16: no GPU (%s); nothing checked\n", why && *why ? why : "no CUDA device");
        return 0;
    }
    check c = {0};
    const kern_table *host_table;
    if (remat_device_open("cuda:0", &c.dev) != REMAT_OK)
        die("open cuda:0");
    if (kern_open(c.dev, &c.gpu, &c.ctx) != REMAT_OK)
        die("kern_open cuda:0");
    if (remat_pool_create(c.dev, NULL, &c.pool) != REMAT_OK)
        die("pool");
    if (remat_device_open("host", &c.host) != REMAT_OK)
        die("open host");
    if (kern_open(c.host, &host_table, &c.hctx) != REMAT_OK)
        die("kern_open host");
    c.bf = c.gpu->bf16;
    if (!c.bf) {
        printf("gpu_bf16: the CUDA kernel table (%s) has no bf16 kernels (its bf16 is NULL)\n",
               c.gpu->name);
        c.failures++;
    } else {
        printf("%s (GEMM %s) against %s (GEMM %s):\n", c.bf->name, c.bf->gemm_name(), CPU.name,
               CPU.gemm_name());
        check_encoder(&c, 2, 64, 128, 1000);
        check_layernorm(&c, 128, 128);
        check_layernorm(&c, 77, 768);
        check_matmul(&c, 128, 128, 384, 1);
        check_matmul(&c, 77, 100, 130, 0);
        check_attention(&c, 2, 64, 128, 4);
        check_attention(&c, 2, 256, 128, 4);
        check_elementwise(&c, 100003);
        check_conversions(&c, 100003);
        check_xent(&c, 128, 1000, 1024);
        check_adamw(&c, 100003);
    }
    if (c.bf && !c.failures)
        time_kernels(&c);
    if (c.failures)
        printf("gpu_bf16: FAILED (%d mismatches)\n", c.failures);
    else
        printf("gpu_bf16: ok\n");
    int failures = c.failures;
    kern_close(c.hctx);
    remat_device_close(c.host);
    remat_pool_destroy(c.pool);
    kern_close(c.ctx);
    remat_device_close(c.dev);
    return failures ? 1 : 0;
}

int main(void)
{
    return run_checks();
}

#else

int main(void)
{
    printf("gpu_bf16: no GPU (this build has no CUDA); nothing checked\n");
    return 0;
}

#endif

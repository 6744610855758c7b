/* bench/gpu_kernels.c: every CUDA kernel against the CPU kernel on the same random data (run by
 * `make gpu-check`): prints the max relative error per output, then the GPU time and GFLOP/s of
 * the GEMM-bound kernels at gpt2-124m shapes (B=8, T=1024). Exits 1 on a mismatch, 0 when all
 * agree or when there is nothing to check (no CUDA in this build, or no GPU: says so and skips). */
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef REMAT_HAVE_CUDA

typedef struct {
    remat_device *dev;
    remat_pool *pool;
    const kern_table *gpu;
    kern_ctx *ctx;
    int failures;
} check;

static uint64_t rng = 88172645463325252ull;

static float rand_unit(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static void die(const char *what)
{
    fprintf(stderr, "gpu_kernels: %s: %s\n", what, remat_last_error());
    exit(1);
}

static float *host_rand(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    if (!x)
        die("host malloc");
    for (size_t i = 0; i < n; i++)
        x[i] = scale * rand_unit();
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

/* Waits for the GPU work, then compares the device array with the CPU result. */
static void compare(check *c, const char *name, const float *cpu, const float *dev, size_t n,
                    double tol)
{
    if (c->gpu->status(c->ctx) != REMAT_OK)
        die(name);
    float *g = malloc(n * sizeof *g);
    if (!g ||
        remat_device_copy(c->dev, g, dev, n * sizeof *g, REMAT_COPY_DEVICE_TO_HOST) != REMAT_OK)
        die("copy from device");
    double diff = 0.0, mag = 1e-6;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)g[i] - cpu[i]));
        mag = fmax(mag, fabs((double)cpu[i]));
        if (isnan(g[i]) != isnan(cpu[i]))
            diff = INFINITY;
    }
    double err = diff / mag;
    int ok = err <= tol;
    printf("%-40s max rel err %9.2e  (tol %.0e)  %s\n", name, err, tol, ok ? "ok" : "MISMATCH");
    c->failures += !ok;
    free(g);
}

#define FWD_TOL 1e-5
#define GEMM_TOL 1e-4 /* cuBLAS and OpenBLAS sum in different orders */

/* ---- One check per kernel family ---------------------------------------------------------- */

static void check_encoder(check *c, int B, int T, int C, int V)
{
    size_t n = (size_t)B * T * C;
    int *tok = malloc((size_t)B * T * sizeof *tok);
    for (int i = 0; i < B * T; i++)
        tok[i] = (int)((rand_unit() + 1.0f) * 0.5f * (V - 1));
    float *wte = host_rand((size_t)V * C, 1), *wpe = host_rand((size_t)T * C, 1);
    float *out = host_rand(n, 1), *dwte = host_rand((size_t)V * C, 1),
          *dwpe = host_rand((size_t)T * C, 1);
    int *d_tok = dev_upload(c, tok, (size_t)B * T * sizeof *tok);
    float *d_wte = dev_upload(c, wte, (size_t)V * C * 4),
          *d_wpe = dev_upload(c, wpe, (size_t)T * C * 4);
    float *d_out = dev_upload(c, out, n * 4);
    float *d_dwte = dev_upload(c, dwte, (size_t)V * C * 4),
          *d_dwpe = dev_upload(c, dwpe, (size_t)T * C * 4);
    kern_cpu.encoder_forward(NULL, out, tok, wte, wpe, B, T, C);
    c->gpu->encoder_forward(c->ctx, d_out, d_tok, d_wte, d_wpe, B, T, C);
    compare(c, "encoder_forward out", out, d_out, n, FWD_TOL);
    kern_cpu.encoder_backward(NULL, dwte, dwpe, out, tok, B, T, C);
    c->gpu->encoder_backward(c->ctx, d_dwte, d_dwpe, d_out, d_tok, B, T, C);
    compare(c, "encoder_backward dwte", dwte, d_dwte, (size_t)V * C, FWD_TOL);
    compare(c, "encoder_backward dwpe", dwpe, d_dwpe, (size_t)T * C, FWD_TOL);
}

static void check_layernorm(check *c, int N, int C)
{
    size_t n = (size_t)N * C;
    float *x = host_rand(n, 3), *w = host_rand(C, 1), *b = host_rand(C, 1), *out = host_rand(n, 1);
    float *mean = host_rand(N, 1), *rstd = host_rand(N, 1), *dout = host_rand(n, 1);
    float *dx = host_rand(n, 1), *dw = host_rand(C, 1), *db = host_rand(C, 1);
    float *d_x = dev_upload(c, x, n * 4), *d_w = dev_upload(c, w, C * 4),
          *d_b = dev_upload(c, b, C * 4);
    float *d_out = dev_upload(c, out, n * 4), *d_mean = dev_upload(c, mean, N * 4);
    float *d_rstd = dev_upload(c, rstd, N * 4), *d_dout = dev_upload(c, dout, n * 4);
    float *d_dx = dev_upload(c, dx, n * 4), *d_dw = dev_upload(c, dw, C * 4),
          *d_db = dev_upload(c, db, C * 4);
    kern_cpu.layernorm_forward(NULL, out, mean, rstd, x, w, b, N, C);
    c->gpu->layernorm_forward(c->ctx, d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C);
    compare(c, "layernorm_forward out", out, d_out, n, FWD_TOL);
    compare(c, "layernorm_forward mean", mean, d_mean, N, FWD_TOL);
    compare(c, "layernorm_forward rstd", rstd, d_rstd, N, FWD_TOL);
    kern_cpu.layernorm_backward(NULL, dx, dw, db, dout, x, w, mean, rstd, N, C);
    c->gpu->layernorm_backward(c->ctx, d_dx, d_dw, d_db, d_dout, d_x, d_w, d_mean, d_rstd, N, C);
    compare(c, "layernorm_backward dinp", dx, d_dx, n, 1e-4);
    compare(c, "layernorm_backward dweight", dw, d_dw, C, 1e-4);
    compare(c, "layernorm_backward dbias", db, d_db, C, 1e-4);
}

static void check_matmul(check *c, int N, int C, int OC, int with_bias)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = host_rand(nx, 1), *w = host_rand(nw, 0.1f), *b = host_rand(OC, 1);
    float *out = host_rand(no, 1), *dout = host_rand(no, 1);
    float *dx = host_rand(nx, 1), *dw = host_rand(nw, 1), *db = host_rand(OC, 1);
    float *d_x = dev_upload(c, x, nx * 4), *d_w = dev_upload(c, w, nw * 4),
          *d_b = dev_upload(c, b, OC * 4);
    float *d_out = dev_upload(c, out, no * 4), *d_dout = dev_upload(c, dout, no * 4);
    float *d_dx = dev_upload(c, dx, nx * 4), *d_dw = dev_upload(c, dw, nw * 4),
          *d_db = dev_upload(c, db, OC * 4);
    kern_cpu.matmul_forward(NULL, out, x, w, with_bias ? b : NULL, N, C, OC);
    c->gpu->matmul_forward(c->ctx, d_out, d_x, d_w, with_bias ? d_b : NULL, N, C, OC);
    compare(c, with_bias ? "matmul_forward out (bias)" : "matmul_forward out (no bias)", out, d_out,
            no, GEMM_TOL);
    kern_cpu.matmul_backward(NULL, dx, dw, with_bias ? db : NULL, dout, x, w, N, C, OC);
    c->gpu->matmul_backward(c->ctx, d_dx, d_dw, with_bias ? d_db : NULL, d_dout, d_x, d_w, N, C,
                            OC);
    compare(c, "matmul_backward dinp", dx, d_dx, nx, GEMM_TOL);
    compare(c, "matmul_backward dweight", dw, d_dw, nw, GEMM_TOL);
    compare(c, "matmul_backward dbias", db, d_db, OC, GEMM_TOL);
}

static void check_attention(check *c, int B, int T, int C, int NH)
{
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    float *qkv = host_rand(nq, 2), *out = host_rand(no, 1), *att = host_rand(na, 1);
    float *dout = host_rand(no, 1), *dqkv = host_rand(nq, 1);
    void *scratch = malloc(kern_cpu.attention_scratch_bytes(B, T, C, NH));
    size_t gsb = c->gpu->attention_scratch_bytes(B, T, C, NH);
    void *d_scratch = remat_alloc(c->pool, gsb, kern_stream(c->ctx));
    float *d_qkv = dev_upload(c, qkv, nq * 4), *d_out = dev_upload(c, out, no * 4);
    float *d_att = dev_upload(c, att, na * 4), *d_dout = dev_upload(c, dout, no * 4);
    float *d_dqkv = dev_upload(c, dqkv, nq * 4);
    if (!scratch || !d_scratch)
        die("attention scratch");
    kern_cpu.attention_forward(NULL, out, att, qkv, scratch, B, T, C, NH);
    c->gpu->attention_forward(c->ctx, d_out, d_att, d_qkv, d_scratch, B, T, C, NH);
    compare(c, "attention_forward out", out, d_out, no, GEMM_TOL);
    compare(c, "attention_forward att", att, d_att, na, GEMM_TOL);
    kern_cpu.attention_backward(NULL, dqkv, dout, qkv, att, scratch, B, T, C, NH);
    c->gpu->attention_backward(c->ctx, d_dqkv, d_dout, d_qkv, d_att, d_scratch, B, T, C, NH);
    compare(c, "attention_backward dqkv", dqkv, d_dqkv, nq, GEMM_TOL);
    free(scratch);
}

static void check_elementwise(check *c, size_t n)
{
    float *x = host_rand(n, 5), *y = host_rand(n, 1), *out = host_rand(n, 1), *dx = host_rand(n, 1);
    float *d_x = dev_upload(c, x, n * 4), *d_y = dev_upload(c, y, n * 4);
    float *d_out = dev_upload(c, out, n * 4), *d_dx = dev_upload(c, dx, n * 4);
    kern_cpu.gelu_forward(NULL, out, x, n);
    c->gpu->gelu_forward(c->ctx, d_out, d_x, n);
    compare(c, "gelu_forward out", out, d_out, n, FWD_TOL);
    kern_cpu.gelu_backward(NULL, dx, x, y, n);
    c->gpu->gelu_backward(c->ctx, d_dx, d_x, d_y, n);
    compare(c, "gelu_backward dinp", dx, d_dx, n, FWD_TOL);
    kern_cpu.residual_forward(NULL, out, x, y, n);
    c->gpu->residual_forward(c->ctx, d_out, d_x, d_y, n);
    compare(c, "residual_forward out", out, d_out, n, 0);
    kern_cpu.accumulate(NULL, out, y, n);
    c->gpu->accumulate(c->ctx, d_out, d_y, n);
    compare(c, "accumulate dst", out, d_out, n, 0);
    kern_cpu.zero(NULL, out, n * 4 / 2);
    c->gpu->zero(c->ctx, d_out, n * 4 / 2);
    kern_cpu.copy(NULL, out + n / 2, x, n * 4 / 2);
    c->gpu->copy(c->ctx, d_out + n / 2, d_x, n * 4 / 2);
    compare(c, "zero + copy", out, d_out, n, 0);
}

static void check_xent(check *c, int N, int V, int Vp)
{
    size_t n = (size_t)N * Vp;
    float *logits = host_rand(n, 8), *dl = host_rand(n, 1), *losses = host_rand(N, 1);
    int *targets = malloc((size_t)N * sizeof *targets);
    for (int i = 0; i < N; i++)
        targets[i] = (int)((rand_unit() + 1.0f) * 0.5f * (V - 1));
    int *d_t = dev_upload(c, targets, (size_t)N * sizeof *targets);
    float *d_logits = dev_upload(c, logits, n * 4), *d_dl = dev_upload(c, dl, n * 4);
    float *d_losses = dev_upload(c, losses, (size_t)N * 4);
    kern_cpu.softmax_xent(NULL, losses, dl, logits, targets, 1.0f / N, N, V, Vp);
    c->gpu->softmax_xent(c->ctx, d_losses, d_dl, d_logits, d_t, 1.0f / N, N, V, Vp);
    compare(c, "softmax_xent losses", losses, d_losses, N, FWD_TOL);
    compare(c, "softmax_xent dlogits", dl, d_dl, n, FWD_TOL);
    c->gpu->softmax_xent(c->ctx, d_losses, d_logits, d_logits, d_t, 1.0f / N, N, V, Vp);
    compare(c, "softmax_xent dlogits (aliasing logits)", dl, d_logits, n, FWD_TOL);
}

static void check_adamw(check *c, size_t n)
{
    float *p = host_rand(n, 1), *m = host_rand(n, 0), *v = host_rand(n, 0), *g = host_rand(n, 1);
    float *d_p = dev_upload(c, p, n * 4), *d_m = dev_upload(c, m, n * 4),
          *d_v = dev_upload(c, v, n * 4);
    float *d_g = dev_upload(c, g, n * 4);
    for (int t = 1; t <= 3; t++) {
        kern_cpu.adamw(NULL, p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        c->gpu->adamw(c->ctx, d_p, d_g, d_m, d_v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
    }
    compare(c, "adamw params (3 steps)", p, d_p, n, FWD_TOL);
    compare(c, "adamw m", m, d_m, n, FWD_TOL);
    compare(c, "adamw v", v, d_v, n, FWD_TOL);
}

/* ---- GPU speed at gpt2-124m shapes ------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *dev_zeros(check *c, size_t n)
{
    float *d = remat_alloc(c->pool, n * sizeof *d, kern_stream(c->ctx));
    if (!d)
        die("device alloc");
    c->gpu->zero(c->ctx, d, n * sizeof *d);
    return d;
}

typedef enum { T_MM_FWD, T_MM_BWD, T_ATT_FWD, T_ATT_BWD } timed_kernel;

typedef struct {
    float *x, *w, *b, *out, *dx, *dw, *db, *qkv, *att, *aout, *dqkv, *scratch;
} timing_bufs;

static void timed_call(check *c, timing_bufs *t, timed_kernel which, int B, int T, int C, int NH)
{
    int N = B * T, OC = 4 * C;
    switch (which) {
    case T_MM_FWD: c->gpu->matmul_forward(c->ctx, t->out, t->x, t->w, t->b, N, C, OC); break;
    case T_MM_BWD:
        c->gpu->matmul_backward(c->ctx, t->dx, t->dw, t->db, t->out, t->x, t->w, N, C, OC);
        break;
    case T_ATT_FWD:
        c->gpu->attention_forward(c->ctx, t->aout, t->att, t->qkv, t->scratch, B, T, C, NH);
        break;
    case T_ATT_BWD:
        c->gpu->attention_backward(c->ctx, t->dqkv, t->aout, t->qkv, t->att, t->scratch, B, T, C,
                                   NH);
        break;
    }
}

/* Median-free and short: one warm-up, then the mean of `reps` calls. */
static void time_kernel(check *c, timing_bufs *t, timed_kernel which, const char *name,
                        double flops, int B, int T, int C, int NH)
{
    const int reps = 5;
    timed_call(c, t, which, B, T, C, NH);
    if (c->gpu->status(c->ctx) != REMAT_OK)
        die(name);
    double t0 = now_s();
    for (int i = 0; i < reps; i++)
        timed_call(c, t, which, B, T, C, NH);
    if (c->gpu->status(c->ctx) != REMAT_OK)
        die(name);
    double ms = (now_s() - t0) / reps * 1e3;
    printf("%-40s %8.3f ms  %8.1f GFLOP/s\n", name, ms, flops / (ms * 1e-3) * 1e-9);
}

static void time_kernels(check *c)
{
    int B = 8, T = 1024, C = 768, NH = 12, N = B * T, OC = 4 * C;
    timing_bufs t = {dev_zeros(c, (size_t)N * C),
                     dev_zeros(c, (size_t)OC * C),
                     dev_zeros(c, OC),
                     dev_zeros(c, (size_t)N * OC),
                     dev_zeros(c, (size_t)N * C),
                     dev_zeros(c, (size_t)OC * C),
                     dev_zeros(c, OC),
                     dev_zeros(c, (size_t)N * 3 * C),
                     dev_zeros(c, (size_t)B * NH * T * T),
                     dev_zeros(c, (size_t)N * C),
                     dev_zeros(c, (size_t)N * 3 * C),
                     dev_zeros(c, c->gpu->attention_scratch_bytes(B, T, C, NH) / 4 + 1)};
    double mm = 2.0 * N * C * OC, att = 4.0 * B * NH * (C / NH) * (double)T * T; /* full square */
    printf("GPU timing at B=%d T=%d C=%d NH=%d (fp32, cuBLAS default math):\n", B, T, C, NH);
    time_kernel(c, &t, T_MM_FWD, "matmul_forward 8192x3072x768", mm, B, T, C, NH);
    time_kernel(c, &t, T_MM_BWD, "matmul_backward 8192x3072x768", 2 * mm, B, T, C, NH);
    time_kernel(c, &t, T_ATT_FWD, "attention_forward", att, B, T, C, NH);
    time_kernel(c, &t, T_ATT_BWD, "attention_backward", 2 * att, B, T, C, NH);
}

static int run_checks(void)
{
    int count = 0;
    const char *why = NULL;
    (void)!remat_cuda_device_count(&count, &why); /* a failure reads as no GPU */
    if (count == 0) {
        printf("gpu_kernels: no GPU (%s): skipped\n", why ? why : "none found");
        return 0;
    }
    check c = {0};
    if (remat_device_open("cuda:0", &c.dev) != REMAT_OK)
        die("open cuda:0");
    if (kern_open(c.dev, &c.gpu, &c.ctx) != REMAT_OK)
        die("kern_open cuda:0");
    if (remat_pool_create(c.dev, NULL, &c.pool) != REMAT_OK)
        die("pool");
    check_encoder(&c, 4, 64, 768, 1000);
    check_layernorm(&c, 333, 768);
    check_matmul(&c, 256, 768, 2304, 1);
    check_matmul(&c, 77, 100, 130, 0);
    check_attention(&c, 2, 64, 768, 12);
    check_attention(&c, 2, 200, 256, 4);
    check_elementwise(&c, 1000003);
    check_xent(&c, 64, 1000, 1024);
    check_adamw(&c, 100003);
    if (!c.failures)
        time_kernels(&c);
    printf("gpu_kernels: %s (%d mismatching outputs)\n", c.failures ? "FAILED" : "all match",
           c.failures);
    int failures = c.failures;
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
    printf("gpu_kernels: this build has no CUDA: skipped\n");
    return 0;
}

#endif

/* bench/bench_kernels.c: the CPU kernels at GPT-2-small shapes (B=4, T=256, C=768, NH=12), with
 * GFLOP/s or GB/s counters, against baselines measured in the same run: OpenBLAS's own threading
 * for the matmul, llm.c-style scalar loops for the matmul and the attention, libm's tanhf/expf for
 * GELU and the cross-entropy. */
#include "bench/bench.h"
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { B = 4, T = 256, C = 768, NH = 12, OC = 4 * C, V = 50257, VP = 50304, XN = 256 };
enum { SMALL_N = 64, ADAM_N = 1 << 23 };
#define N (B * T)

static struct {
    float *x, *w, *bias, *out, *dout, *dx, *dw, *dbias; /* matmul [N,C] [OC,C] [N,OC] */
    float *qkv, *att, *aout, *daout, *dqkv, *scratch;   /* attention */
    float *ln_w, *ln_b, *mean, *rstd;                   /* layernorm */
    float *logits, *dlogits, *losses;                   /* cross-entropy, XN rows */
    int *targets, *tokens;
    float *wte, *wpe, *dwte, *dwpe; /* encoder */
    float *p, *g, *m, *v;           /* adamw */
} d;

static float *rand_buf(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = scale * ((float)rand() / (float)RAND_MAX - 0.5f);
    return x;
}

static void bench_data(void)
{
    srand(1);
    d.x = rand_buf((size_t)N * C, 1), d.w = rand_buf((size_t)OC * C, 0.1f);
    d.bias = rand_buf(OC, 1), d.out = rand_buf((size_t)N * OC, 1);
    d.dout = rand_buf((size_t)N * OC, 1), d.dx = rand_buf((size_t)N * C, 1);
    d.dw = rand_buf((size_t)OC * C, 1), d.dbias = rand_buf(OC, 1);
    d.qkv = rand_buf((size_t)N * 3 * C, 2), d.att = rand_buf((size_t)B * NH * T * T, 1);
    d.aout = rand_buf((size_t)N * C, 1), d.daout = rand_buf((size_t)N * C, 1);
    d.dqkv = rand_buf((size_t)N * 3 * C, 1);
    d.scratch = malloc(kern_cpu.attention_scratch_bytes(B, T, C, NH));
    d.ln_w = rand_buf(C, 1), d.ln_b = rand_buf(C, 1);
    d.mean = rand_buf(N, 1), d.rstd = rand_buf(N, 1);
    d.logits = rand_buf((size_t)XN * VP, 8), d.dlogits = rand_buf((size_t)XN * VP, 1);
    d.losses = rand_buf(XN, 1);
    d.targets = malloc(XN * sizeof(int)), d.tokens = malloc(N * sizeof(int));
    for (int i = 0; i < XN; i++)
        d.targets[i] = rand() % V;
    for (int i = 0; i < N; i++)
        d.tokens[i] = rand() % V;
    d.wte = rand_buf((size_t)V * C, 1), d.wpe = rand_buf((size_t)T * C, 1);
    d.dwte = rand_buf((size_t)V * C, 1), d.dwpe = rand_buf((size_t)T * C, 1);
    d.p = rand_buf(ADAM_N, 1), d.g = rand_buf(ADAM_N, 1);
    d.m = rand_buf(ADAM_N, 0), d.v = rand_buf(ADAM_N, 0);
}

/* ---- Timing helpers: rate counters over the whole loop ------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*kernel_call)(void);

/* Runs `call` in the benchmark loop and reports GFLOP/s (flops > 0) and GB/s (bytes > 0). */
static void run_rated(remat_bench_state *st, kernel_call call, double flops, double bytes)
{
    long iters = 0;
    double t0 = now_s();
    while (remat_bench_running(st)) {
        call();
        iters++;
    }
    double secs = now_s() - t0;
    if (iters == 0 || secs <= 0)
        return;
    if (flops > 0)
        remat_bench_counter(st, "GFLOP/s", flops * iters / secs * 1e-9);
    if (bytes > 0)
        remat_bench_counter(st, "GB/s", bytes * iters / secs * 1e-9);
}

/* ---- Matmul ------------------------------------------------------------------------------- */

static void call_mm_forward(void)
{
    kern_cpu.matmul_forward(NULL, d.out, d.x, d.w, d.bias, N, C, OC);
}

static void call_mm_backward(void)
{
    kern_cpu.matmul_backward(NULL, d.dx, d.dw, d.dbias, d.dout, d.x, d.w, N, C, OC);
}

/* The same forward with OpenBLAS threading itself (as a plain cblas_sgemm caller would). */
static void call_mm_forward_openblas(void)
{
    for (int n = 0; n < N; n++)
        memcpy(d.out + (size_t)n * OC, d.bias, OC * sizeof(float));
    openblas_set_num_threads(kern_cpu_threads());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, d.x, C, d.w, C, 1.0f,
                d.out, OC);
    openblas_set_num_threads(1);
}

static void call_mm_forward_small(void)
{
    kern_cpu.matmul_forward(NULL, d.out, d.x, d.w, d.bias, SMALL_N, C, C);
}

/* llm.c train_gpt2.c's matmul_forward_naive: a dot product per output, rows in parallel. */
static void call_mm_forward_small_naive(void)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < SMALL_N; n++)
        for (int o = 0; o < C; o++) {
            float s = d.bias[o];
            for (int i = 0; i < C; i++)
                s += d.x[(size_t)n * C + i] * d.w[(size_t)o * C + i];
            d.out[(size_t)n * C + o] = s;
        }
}

static void bench_mm_forward(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_mm_forward, 2.0 * N * C * OC, 0);
}

static void bench_mm_forward_openblas(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_mm_forward_openblas, 2.0 * N * C * OC, 0);
}

static void bench_mm_backward(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_mm_backward, 4.0 * N * C * OC, 0);
}

static void bench_mm_small(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_mm_forward_small, 2.0 * SMALL_N * C * C, 0);
}

static void bench_mm_small_naive(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_mm_forward_small_naive, 2.0 * SMALL_N * C * C, 0);
}

/* ---- Attention ---------------------------------------------------------------------------- */

/* Useful (causal) flops of the forward: q k^T and att v over the lower triangle. */
static double att_flops(void)
{
    return 4.0 * B * NH * (C / NH) * (T * (T + 1) / 2.0);
}

static void call_att_forward(void)
{
    kern_cpu.attention_forward(NULL, d.aout, d.att, d.qkv, d.scratch, B, T, C, NH);
}

static void call_att_backward(void)
{
    kern_cpu.attention_backward(NULL, d.dqkv, d.daout, d.qkv, d.att, d.scratch, B, T, C, NH);
}

/* llm.c train_gpt2.c's attention_forward: scalar loops over (b, t, h). */
static void call_att_forward_naive(void)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *q = d.qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *a = d.att + (((size_t)b * NH + h) * T + t) * T, mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j <= t; j++) {
                    const float *k = d.qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++)
                        s += q[i] * k[i];
                    a[j] = s * scale;
                    mx = a[j] > mx ? a[j] : mx;
                }
                for (int j = 0; j <= t; j++)
                    sum += a[j] = expf(a[j] - mx);
                for (int j = 0; j < T; j++)
                    a[j] = j <= t ? a[j] / sum : 0.0f;
                float *o = d.aout + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++)
                    o[i] = 0.0f;
                for (int j = 0; j <= t; j++) {
                    const float *v = d.qkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++)
                        o[i] += a[j] * v[i];
                }
            }
}

static void bench_att_forward(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_att_forward, att_flops(), 0);
}

static void bench_att_backward(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_att_backward, 2.0 * att_flops(), 0);
}

static void bench_att_forward_naive(remat_bench_state *st, void *a)
{
    (void)a;
    run_rated(st, call_att_forward_naive, att_flops(), 0);
}

/* ---- Elementwise and row kernels ---------------------------------------------------------- */

static void call_ln_forward(void)
{
    kern_cpu.layernorm_forward(NULL, d.aout, d.mean, d.rstd, d.x, d.ln_w, d.ln_b, N, C);
}

static void call_ln_backward(void)
{
    kern_cpu.layernorm_backward(NULL, d.dx, d.ln_w, d.ln_b, d.aout, d.x, d.ln_w, d.mean, d.rstd, N,
                                C);
}

static void call_gelu_forward(void)
{
    kern_cpu.gelu_forward(NULL, d.dout, d.out, (size_t)N * OC);
}

static void call_gelu_backward(void)
{
    kern_cpu.gelu_backward(NULL, d.dout, d.out, d.out, (size_t)N * OC);
}

/* GELU with libm's tanhf (what llm.c does). */
static void call_gelu_forward_libm(void)
{
    size_t n = (size_t)N * OC;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = d.out[i];
        d.dout[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    }
}

static void call_xent(void)
{
    kern_cpu.softmax_xent(NULL, d.losses, d.dlogits, d.logits, d.targets, 1.0f / XN, XN, V, VP);
}

/* llm.c-style: softmax with libm's expf into probabilities, then loss and gradient passes. */
static void call_xent_libm(void)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < XN; n++) {
        const float *x = d.logits + (size_t)n * VP;
        float *p = d.dlogits + (size_t)n * VP, mx = -INFINITY, sum = 0.0f;
        for (int i = 0; i < V; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (int i = 0; i < V; i++)
            sum += p[i] = expf(x[i] - mx);
        for (int i = 0; i < V; i++)
            p[i] /= sum;
        d.losses[n] = -logf(p[d.targets[n]]);
        for (int i = 0; i < V; i++)
            p[i] = (p[i] - (i == d.targets[n])) / XN;
    }
}

static void call_adamw(void)
{
    kern_cpu.adamw(NULL, d.p, d.g, d.m, d.v, ADAM_N, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 10);
}

static void call_encoder_forward(void)
{
    kern_cpu.encoder_forward(NULL, d.aout, d.tokens, d.wte, d.wpe, B, T, C);
}

static void call_encoder_backward(void)
{
    kern_cpu.encoder_backward(NULL, d.dwte, d.dwpe, d.aout, d.tokens, B, T, C);
}

static void call_residual(void)
{
    kern_cpu.residual_forward(NULL, d.dout, d.out, d.dout, (size_t)N * OC);
}

typedef struct {
    kernel_call call;
    double bytes;
} mem_bench;

static void bench_mem(remat_bench_state *st, void *a)
{
    mem_bench *m = a;
    run_rated(st, m->call, 0, m->bytes);
}

#define F4 4.0 /* bytes per float */
static mem_bench mem_benches[] = {
    {call_ln_forward, F4 * 2 * N *C},       {call_ln_backward, F4 * 4 * N *C},
    {call_gelu_forward, F4 * 2 * N *OC},    {call_gelu_forward_libm, F4 * 2 * N *OC},
    {call_gelu_backward, F4 * 3 * N *OC},   {call_residual, F4 * 3 * N *OC},
    {call_xent, F4 * 2 * XN *VP},           {call_xent_libm, F4 * 2 * XN *VP},
    {call_adamw, F4 * 7 * ADAM_N},          {call_encoder_forward, F4 * 3 * N *C},
    {call_encoder_backward, F4 * 5 * N *C},
};
static const char *mem_names[] = {
    "layernorm/forward", "layernorm/backward", "gelu/forward",     "gelu/forward_libm_tanhf",
    "gelu/backward",     "residual/forward",   "xent/fused",       "xent/libm_expf",
    "adamw/update_8M",   "encoder/forward",    "encoder/backward",
};

int main(int argc, char **argv)
{
    bench_data();
    printf("CPU kernels at B=%d T=%d C=%d NH=%d, %d threads (OMP_NUM_THREADS)\n", B, T, C, NH,
           kern_cpu_threads());
    remat_bench_register("matmul/forward_1024x3072x768", bench_mm_forward, NULL);
    remat_bench_register("matmul/forward_openblas_threads", bench_mm_forward_openblas, NULL);
    remat_bench_register("matmul/backward_1024x3072x768", bench_mm_backward, NULL);
    remat_bench_register("matmul/forward_64x768x768", bench_mm_small, NULL);
    remat_bench_register("matmul/forward_64x768x768_naive", bench_mm_small_naive, NULL);
    remat_bench_register("attention/forward", bench_att_forward, NULL);
    remat_bench_register("attention/backward", bench_att_backward, NULL);
    remat_bench_register("attention/forward_naive", bench_att_forward_naive, NULL);
    for (size_t i = 0; i < sizeof mem_benches / sizeof mem_benches[0]; i++)
        remat_bench_register(mem_names[i], bench_mem, &mem_benches[i]);
    remat_bench_compare("matmul/forward_1024x3072x768", "matmul/forward_openblas_threads", 0);
    remat_bench_compare("matmul/forward_64x768x768", "matmul/forward_64x768x768_naive", 0);
    remat_bench_compare("attention/forward", "attention/forward_naive", 0);
    remat_bench_compare("gelu/forward", "gelu/forward_libm_tanhf", 0);
    remat_bench_compare("xent/fused", "xent/libm_expf", 0);

    /* Short by default: 0.1 s per repetition unless the caller sets --benchmark_min_time. */
    char **args = malloc((size_t)(argc + 2) * sizeof *args);
    int n = 0, has_min_time = 0;
    for (int i = 0; i < argc; i++) {
        has_min_time |= strncmp(argv[i], "--benchmark_min_time", 20) == 0;
        args[n++] = argv[i];
    }
    if (!has_min_time)
        args[n++] = "--benchmark_min_time=0.1";
    args[n] = NULL;
    return remat_bench_main(n, args);
}

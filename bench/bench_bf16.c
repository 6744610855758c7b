/* bench/bench_bf16.c: bf16 on the CPU, each comparison interleaved in one loop so that the shared
 * machine's load hits every side alike, and reported as medians over the loop's rounds.
 * gemm/...: the GEMMs of one gpt2-124m training step (qkv, attention projection, fc, fc
 * projection, head: the forward and both backward GEMMs, dinp and dweight) at B*T = 256 (B=4
 * T=64) and 1024 (B=1 T=1024): GFLOP/s of the bf16 GEMM's two paths (bf16 tiles converted to
 * float32 then OpenBLAS sgemm; libxsmm's AVX512-BF16 GEMM) and of OpenBLAS sgemm on float32 (the
 * baseline), one after the other each round; counters *_GFLOPs are the medians, xsmm_vs_sgemm
 * the bf16 paths' ratio of median times (> 1: libxsmm faster).
 * step/...: a whole training step (forward, backward, AdamW; store-all) of gpt2-124m in fp32 and
 * in bf16 (fp32 master weights; the GEMM is the build's default, kern_cpu_bf16_gemm_name), one
 * step of each in turn; counters fp32_ms, bf16_ms (medians) and bf16_speedup = fp32 / bf16. */
#include "bench/bench.h"
#include "kernels/cpu/bf16.h"
#include "model/gpt.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define MAX_ROUNDS 4096

/* ==== GEMMs ================================================================================ */

enum { C = 768, VP = 50304 };

typedef struct {
    char name[64];
    int trans_a, trans_b, M, N, K, bias, accumulate;
} gemm_case;

static gemm_case gemm_cases[2 * 15];
static int n_gemm_cases;

/* The linear layer out[BT,OC] = inp[BT,IC] w[OC,IC]^T + b, its dinp[BT,IC] += dout[BT,OC] w and
 * dweight[OC,IC] += dout^T inp (kernels/cpu/bf16_matmul.c's three GEMMs). */
static void add_layer(const char *layer, int BT, int IC, int OC, int bias)
{
    const char *tag = BT == 256 ? "b4-t64" : "b1-t1024";
    gemm_case f = {.trans_b = 1, .M = BT, .N = OC, .K = IC, .bias = bias};
    gemm_case di = {.M = BT, .N = IC, .K = OC, .accumulate = 1};
    gemm_case dw = {.trans_a = 1, .M = OC, .N = IC, .K = BT, .accumulate = 1};
    gemm_case *all[3] = {&f, &di, &dw};
    const char *what[3] = {"fwd", "dinp", "dweight"};
    for (int i = 0; i < 3; i++) {
        snprintf(all[i]->name, sizeof all[i]->name, "gemm/%s/%s-%s_%dx%dx%d", tag, layer, what[i],
                 all[i]->M, all[i]->N, all[i]->K);
        gemm_cases[n_gemm_cases++] = *all[i];
    }
}

static kern_bf16 *bf16_buf(size_t n)
{
    kern_bf16 *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_bf16: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = kern_f32_to_bf16((float)rand() / (float)RAND_MAX - 0.5f);
    return x;
}

static float *f32_of(const kern_bf16 *x, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) {
        fprintf(stderr, "bench_bf16: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        f[i] = kern_bf16_to_f32(x[i]);
    return f;
}

static remat_device *dev;
static kern_ctx *kc;

static void bench_gemm(remat_bench_state *st, void *arg)
{
    const gemm_case *c = arg;
    int M = c->M, N = c->N, K = c->K;
    int lda = c->trans_a ? M : K, ldb = c->trans_b ? K : N;
    size_t an = (size_t)M * K, bn = (size_t)K * N, cn = (size_t)M * N;
    kern_bf16 *A = bf16_buf(an), *B = bf16_buf(bn), *bias = bf16_buf((size_t)N);
    kern_bf16 *C1 = bf16_buf(cn), *C2 = bf16_buf(cn);
    float *Af = f32_of(A, an), *Bf = f32_of(B, bn), *Cf = f32_of(C1, cn);
    kern_bf16_gemm g = {.trans_a = c->trans_a,
                        .trans_b = c->trans_b,
                        .M = M,
                        .N = N,
                        .K = K,
                        .A = A,
                        .lda = lda,
                        .B = B,
                        .ldb = ldb,
                        .ldc = N,
                        .bias = c->bias ? bias : NULL,
                        .accumulate = c->accumulate};
    int have = kern_cpu_bf16_xsmm_available();
    static double t_sg[MAX_ROUNDS], t_xs[MAX_ROUNDS], t_f32[MAX_ROUNDS];
    int n = 0;
    while (remat_bench_running(st)) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, c->trans_a ? CblasTrans : CblasNoTrans,
                    c->trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, Af, lda, Bf, ldb,
                    c->accumulate ? 1.0f : 0.0f, Cf, N);
        double t1 = now_s();
        g.C = C1;
        kern_cpu_bf16_gemm_sgemm(kc, &g);
        double t2 = now_s();
        g.C = C2;
        if (have)
            kern_cpu_bf16_gemm_xsmm(kc, &g);
        double t3 = now_s();
        if (n < MAX_ROUNDS) {
            t_f32[n] = t1 - t0, t_sg[n] = t2 - t1, t_xs[n] = t3 - t2;
            n++;
        }
    }
    double flop = 2.0 * M * N * K, mf = median(t_f32, n), ms = median(t_sg, n),
           mx = median(t_xs, n);
    remat_bench_counter(st, "f32_sgemm_GFLOPs", mf > 0 ? flop / mf * 1e-9 : 0);
    remat_bench_counter(st, "bf16_sgemm_GFLOPs", ms > 0 ? flop / ms * 1e-9 : 0);
    remat_bench_counter(st, "bf16_xsmm_GFLOPs", have && mx > 0 ? flop / mx * 1e-9 : 0);
    remat_bench_counter(st, "xsmm_vs_sgemm", have && mx > 0 ? ms / mx : 0);
    remat_bench_counter(st, "rounds", n);
    if (kern_cpu_status(kc) != REMAT_OK)
        fprintf(stderr, "%s: %s\n", c->name, remat_last_error());
    free(A), free(B), free(bias), free(C1), free(C2), free(Af), free(Bf), free(Cf);
}

/* ==== Training steps ======================================================================= */

typedef struct {
    const char *name;
    int B, T;
} step_case;

static const step_case step_cases[] = {
    {"step/gpt2-124m-b4-t64/fp32-vs-bf16", 4, 64},
    {"step/gpt2-124m-b1-t1024/fp32-vs-bf16", 1, 1024},
};

typedef struct {
    remat_pool *pool;
    gpt_model *model;
    remat_chain *chain;
    remat_schedule *sched;
} step_rig;

static void step_close(step_rig *r)
{
    remat_schedule_free(r->sched);
    remat_chain_free(r->chain);
    gpt_model_destroy(r->model);
    remat_pool_destroy(r->pool);
}

static int step_open(step_rig *r, const gpt_config *cfg, int B, int T, const gpt_precision *prec,
                     const float *params)
{
    memset(r, 0, sizeof *r);
    remat_policy pol;
    uint64_t all = 0;
    if (remat_pool_create(dev, NULL, &r->pool) ||
        gpt_model_create_precision(dev, r->pool, cfg, B, T, prec, &r->model) ||
        gpt_model_chain(r->model, &r->chain) || remat_policy_parse("store-all", &pol) ||
        remat_store_all_peak(r->chain, &all) || remat_plan(r->chain, &pol, all, &r->sched))
        return -1;
    return gpt_model_set_params(r->model, params) == REMAT_OK ? 0 : -1;
}

static double step_once(step_rig *r, const int *inputs, const int *targets, int t)
{
    gpt_adamw hp = gpt_adamw_defaults();
    float loss = 0;
    double t0 = now_s();
    if (gpt_model_forward_backward(r->model, r->sched, r->chain, inputs, targets, &loss) ||
        gpt_model_update(r->model, &hp, t))
        fprintf(stderr, "bench_bf16: step failed: %s\n", remat_last_error());
    return now_s() - t0;
}

static void bench_step(remat_bench_state *st, void *arg)
{
    const step_case *c = arg;
    gpt_config cfg;
    step_rig f32, b16;
    int ok = gpt_preset("gpt2-124m", &cfg) == REMAT_OK;
    size_t n = (size_t)c->B * c->T;
    float *params = NULL;
    int *inputs = malloc(n * sizeof *inputs), *targets = malloc(n * sizeof *targets);
    gpt_param_layout lay;
    if (ok) {
        gpt_layout_params(&cfg, &lay);
        params = malloc(lay.total * sizeof *params);
    }
    ok = ok && params && inputs && targets;
    if (ok) {
        gpt_init_params(&cfg, 1337, params);
        gpt_rng g = {7};
        for (size_t i = 0; i < n; i++) {
            inputs[i] = (int)(gpt_rng_next(&g) % (uint64_t)cfg.vocab);
            targets[i] = (int)(gpt_rng_next(&g) % (uint64_t)cfg.vocab);
        }
    }
    gpt_precision p32 = gpt_precision_default(), p16 = gpt_precision_default();
    p16.dtype = GPT_BF16;
    memset(&f32, 0, sizeof f32);
    memset(&b16, 0, sizeof b16);
    ok = ok && step_open(&f32, &cfg, c->B, c->T, &p32, params) == 0 &&
         step_open(&b16, &cfg, c->B, c->T, &p16, params) == 0;
    if (!ok) {
        fprintf(stderr, "%s: setup failed: %s\n", c->name, remat_last_error());
        while (remat_bench_running(st)) {
        }
    } else {
        /* one untimed step each: the first pays the page faults of every new buffer */
        int t = 1;
        step_once(&f32, inputs, targets, t);
        step_once(&b16, inputs, targets, t);
        static double tf[MAX_ROUNDS], tb[MAX_ROUNDS];
        int rounds = 0;
        while (remat_bench_running(st)) {
            t++;
            double a = step_once(&f32, inputs, targets, t), b = step_once(&b16, inputs, targets, t);
            if (rounds < MAX_ROUNDS) {
                tf[rounds] = a, tb[rounds] = b;
                rounds++;
            }
        }
        double mf = median(tf, rounds), mb = median(tb, rounds);
        remat_bench_counter(st, "fp32_ms", mf * 1e3);
        remat_bench_counter(st, "bf16_ms", mb * 1e3);
        remat_bench_counter(st, "bf16_speedup", mb > 0 ? mf / mb : 0);
        remat_bench_counter(st, "rounds", rounds);
    }
    step_close(&f32);
    step_close(&b16);
    free(params), free(inputs), free(targets);
}

int main(int argc, char **argv)
{
    const kern_table *t = NULL;
    if (remat_device_open("host", &dev) != REMAT_OK || kern_open(dev, &t, &kc) != REMAT_OK) {
        fprintf(stderr, "bench_bf16: %s\n", remat_last_error());
        return 1;
    }
    srand(1);
    fprintf(stderr, "bench_bf16: bf16 GEMM default %s; libxsmm %s\n",
            kern_cpu_bf16_gemm_name(),
            kern_cpu_bf16_xsmm_available() ? "available (AVX512-BF16)" : "unavailable");
    const int bts[2] = {256, 1024};
    for (int i = 0; i < 2; i++) {
        add_layer("qkv", bts[i], C, 3 * C, 1);
        add_layer("attproj", bts[i], C, C, 1);
        add_layer("fc", bts[i], C, 4 * C, 1);
        add_layer("fcproj", bts[i], 4 * C, C, 1);
        add_layer("head", bts[i], C, VP, 0);
    }
    for (int i = 0; i < n_gemm_cases; i++)
        remat_bench_register(gemm_cases[i].name, bench_gemm, &gemm_cases[i]);
    for (size_t i = 0; i < sizeof step_cases / sizeof step_cases[0]; i++)
        remat_bench_register(step_cases[i].name, bench_step, (void *)&step_cases[i]);
    int rc = remat_bench_main(argc, argv);
    kern_close(kc);
    remat_device_close(dev);
    return rc;
}

/* bench/gpu_train.c: the training loop on a GPU (run by `make gpu-check`). First checks one step of
 * `small` on cuda:0 against the host path (same weights and batch: loss within 1e-4, every
 * gradient tensor within 1e-3 relative L2), then the same in bf16 with master weights (loss within
 * 2e-2, gradients within 5e-2). Then, on gpt2-124m at B=8, T=1024 (GPU_TRAIN_B, GPU_TRAIN_T
 * override), runs forward+backward under store-all, sqrt and optimal at 50% of store-all's
 * activation peak from the same weights: the loss must be bit-identical to store-all's, and it
 * prints the median step time, tokens/s, overhead and the pool's activation peak against the
 * prediction; then store-all and optimal at 50% in bf16 (optimal's loss bit-identical to bf16
 * store-all's), with their tokens/s against fp32 store-all's. Exits 0 when all agree or where
 * there is no GPU (says so), 1 on a mismatch. */
#include "model/rig.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef gpt_rig rig;

static int fail(const char *what)
{
    fprintf(stderr, "gpu_train: %s: %s\n", what, remat_last_error());
    return 1;
}

/* The library's rig on device `spec` with weights w; prec: the training precision (NULL: fp32).
 */
static int rig_open(rig *r, const char *spec, const gpt_config *cfg, int B, int T, const float *w,
                    const gpt_precision *prec)
{
    gpt_rig_spec rs = {.device = spec, .cfg = *cfg, .B = B, .T = T, .prec = prec, .params = w};
    if (gpt_rig_open(r, &rs) != REMAT_OK) {
        fail(r->failed ? r->failed : spec);
        gpt_rig_close(r);
        return 1;
    }
    return 0;
}

static void rig_close(rig *r)
{
    gpt_rig_close(r);
}

static remat_schedule *plan(const remat_chain *c, const char *policy, double pct)
{
    remat_policy p;
    uint64_t all;
    remat_schedule *s = NULL;
    if (remat_policy_parse(policy, &p) || remat_store_all_peak(c, &all) ||
        remat_plan(c, &p, (uint64_t)(all * pct / 100), &s))
        return NULL;
    return s;
}

static void batch(int n, int vocab, int *in, int *tg)
{
    gpt_rng g = {42};
    for (int i = 0; i < n; i++) {
        in[i] = (int)(gpt_rng_next(&g) % (uint64_t)vocab);
        tg[i] = (int)(gpt_rng_next(&g) % (uint64_t)vocab);
    }
}

/* The bf16 runs: mixed precision with float32 master weights. */
static gpt_precision bf16_precision(void)
{
    gpt_precision p = gpt_precision_default();
    p.dtype = GPT_BF16;
    p.master_weights = 1;
    return p;
}

/* A bound as written in the source: 1e-3, 5e-2. */
static const char *bound_text(double x, char buf[16])
{
    int e = (int)floor(log10(x) + 1e-9);
    snprintf(buf, 16, "%.0fe%d", x / pow(10, e), e);
    return buf;
}

/* One step of `small` on the host and on the GPU from the same weights and batch, in precision
 * prec: the losses within loss_bound (relative), every gradient tensor within grad_bound
 * (relative L2). */
static int check_against_host(const gpt_precision *prec, double loss_bound, double grad_bound)
{
    gpt_config cfg;
    gpt_preset("small", &cfg);
    int B = 4, T = 128, n = B * T;
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    float *w = malloc(lay.total * sizeof(float)), *gh = malloc(lay.total * sizeof(float)),
          *gd = malloc(lay.total * sizeof(float));
    int *in = malloc(n * sizeof(int)), *tg = malloc(n * sizeof(int));
    gpt_init_params(&cfg, 1337, w);
    batch(n, cfg.vocab, in, tg);
    float loss[2];
    float *grads[2] = {gh, gd};
    const char *specs[2] = {"host", "cuda:0"};
    int bad = 0;
    for (int d = 0; d < 2 && !bad; d++) {
        rig r;
        if (rig_open(&r, specs[d], &cfg, B, T, w, prec))
            return 1;
        remat_schedule *s = plan(r.chain, "store-all", 100);
        if (!s || gpt_model_forward_backward(r.model, s, r.chain, in, tg, &loss[d]) ||
            gpt_model_get_grads(r.model, grads[d]))
            bad = fail(specs[d]);
        remat_schedule_free(s);
        rig_close(&r);
    }
    if (!bad) {
        const char *tag = prec->dtype == GPT_BF16 ? " bf16" : "";
        char bound[16];
        bound_text(grad_bound, bound);
        double e = fabs(loss[1] - loss[0]) / loss[0];
        printf("small B=4 T=128%s: loss host %.7f, cuda %.7f (relative %.2e)\n", tag, loss[0],
               loss[1], e);
        bad |= e > loss_bound;
        for (int i = 0; i < GPT_N_PARAMS; i++) {
            double num = 0, den = 0;
            for (size_t k = lay.offset[i]; k < lay.offset[i] + lay.count[i]; k++) {
                num += ((double)gd[k] - gh[k]) * ((double)gd[k] - gh[k]);
                den += (double)gh[k] * gh[k];
            }
            double rel = den > 0 ? sqrt(num / den) : sqrt(num);
            if (rel > grad_bound) {
                printf("  d%s: relative error %.2e (bound %s)\n", gpt_param_names[i], rel, bound);
                bad = 1;
            }
        }
        if (bad)
            printf("gradients%s: MISMATCH\n", tag);
        else
            printf("gradients%s: all 16 tensors within %s of the host\n", tag, bound);
    }
    free(w), free(gh), free(gd), free(in), free(tg);
    return bad;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One policy's measured steps on r: the loss, the median of 5 timed forward+backwards after a
 * warm-up, the host waits a step, the pool's activation peak and the schedule's prediction. */
typedef struct {
    float loss;
    double ms, syncs;
    uint64_t act, predicted;
} policy_run;

static int run_policy(rig *r, const char *name, double pct, const int *in, const int *tg,
                      policy_run *out)
{
    remat_schedule *s = plan(r->chain, name, pct);
    if (!s)
        return fail(name);
    double ms[5];
    remat_pool_stats before, after;
    int bad = 0;
    if (remat_pool_reset_peaks(r->pool) != REMAT_OK ||
        remat_pool_stats_get(r->pool, &before) != REMAT_OK)
        bad = fail(name);
    uint64_t syncs0 = gpt_model_syncs(r->model);
    for (int k = 0; k < 6 && !bad; k++) {
        double t0 = gpt_now_ms();
        if (gpt_model_forward_backward(r->model, s, r->chain, in, tg, &out->loss))
            bad = fail(name);
        if (k > 0)
            ms[k - 1] = gpt_now_ms() - t0;
    }
    if (!bad && remat_pool_stats_get(r->pool, &after) != REMAT_OK)
        bad = fail(name);
    if (!bad) {
        qsort(ms, 5, sizeof ms[0], cmp_double);
        out->ms = ms[2];
        out->syncs = (double)(gpt_model_syncs(r->model) - syncs0) / 6;
        out->act = after.allocated.peak - before.allocated.current;
        out->predicted = s->peak_bytes;
    }
    remat_schedule_free(s);
    return bad;
}

/* The same model, weights and batch in bf16 (master weights): store-all and optimal at 50% of bf16
 * store-all's peak; optimal's loss must equal bf16 store-all's bit for bit. Each one's tokens/s is
 * also given against fp32 store-all's (fp32_ms a step). */
static int bf16_policies_on_gpu(const gpt_config *cfg, int B, int T, const float *w, const int *in,
                                const int *tg, double fp32_ms)
{
    gpt_precision prec = bf16_precision();
    rig r;
    if (rig_open(&r, "cuda:0", cfg, B, T, w, &prec))
        return 1;
    static const char *names[] = {"store-all", "optimal"};
    static const double pct[] = {100, 50};
    float ref = 0;
    double base_ms = 0;
    int bad = 0, n = B * T;
    for (int p = 0; p < 2 && !bad; p++) {
        policy_run run;
        if (run_policy(&r, names[p], pct[p], in, tg, &run)) {
            bad = 1;
            break;
        }
        if (p == 0) {
            ref = run.loss;
            base_ms = run.ms;
        }
        int same = memcmp(&run.loss, &ref, sizeof run.loss) == 0;
        bad |= !same;
        printf(
            "gpt2-124m B=%d T=%d bf16 %-9s loss %.6f (%s)  %8.1f ms  %8.0f tokens/s = %.2fx "
            "fp32 store-all's  overhead %+5.1f%%  activation peak %.2f GiB (predicted %.2f GiB)  "
            "host waits %.1f a step\n",
            B, T, names[p], run.loss, same ? "= bf16 store-all" : "DIFFERS", run.ms,
            n / (run.ms / 1e3), fp32_ms / run.ms, 100 * (run.ms / base_ms - 1),
            run.act / 1073741824.0, run.predicted / 1073741824.0, run.syncs);
    }
    rig_close(&r);
    return bad;
}

/* gpt2-124m under each policy from the same weights; losses must equal store-all's bit for bit.
 * Then the bf16 runs. */
static int policies_on_gpu(int B, int T)
{
    gpt_config cfg;
    gpt_preset("gpt2-124m", &cfg);
    int n = B * T;
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    float *w = malloc(lay.total * sizeof(float));
    int *in = malloc(n * sizeof(int)), *tg = malloc(n * sizeof(int));
    gpt_init_params(&cfg, 1337, w);
    batch(n, cfg.vocab, in, tg);
    rig r;
    if (rig_open(&r, "cuda:0", &cfg, B, T, w, NULL))
        return 1;
    static const char *names[] = {"store-all", "sqrt", "optimal"};
    static const double pct[] = {100, 400, 50};
    float ref = 0;
    double base_ms = 0;
    int bad = 0;
    for (int p = 0; p < 3 && !bad; p++) {
        policy_run run;
        if (run_policy(&r, names[p], pct[p], in, tg, &run)) {
            bad = 1;
            break;
        }
        if (p == 0) {
            ref = run.loss;
            base_ms = run.ms;
        }
        int same = memcmp(&run.loss, &ref, sizeof run.loss) == 0;
        bad |= !same;
        printf(
            "gpt2-124m B=%d T=%d %-9s loss %.6f (%s)  %8.1f ms  %8.0f tokens/s  overhead %+5.1f%%  "
            "activation peak %.2f GiB (predicted %.2f GiB)  host waits %.1f a step\n",
            B, T, names[p], run.loss, same ? "= store-all" : "DIFFERS", run.ms, n / (run.ms / 1e3),
            100 * (run.ms / base_ms - 1), run.act / 1073741824.0, run.predicted / 1073741824.0,
            run.syncs);
    }
    rig_close(&r);
    bad |= bf16_policies_on_gpu(&cfg, B, T, w, in, tg, base_ms);
    free(w), free(in), free(tg);
    return bad;
}

int main(void)
{
    int n = 0;
    const char *why = "";
    (void)!remat_cuda_device_count(&n, &why); /* a failure reads as no GPU */
    if (n == 0) {
        printf("gpu_train: no GPU (%s); nothing checked\n", why && *why ? why : "no CUDA device");
        return 0;
    }
    const char *b = getenv("GPU_TRAIN_B"), *t = getenv("GPU_TRAIN_T");
    gpt_precision fp32 = gpt_precision_default(), bf16 = bf16_precision();
    int bad = check_against_host(&fp32, 1e-4, 1e-3);
    bad |= check_against_host(&bf16, 2e-2, 5e-2);
    bad |= policies_on_gpu(b ? atoi(b) : 8, t ? atoi(t) : 1024);
    printf("gpu_train: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

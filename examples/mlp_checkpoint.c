/* examples/mlp_checkpoint.c: a small MLP trained on the CPU through remat's public API only.
 * Each layer is a stage of a checkpoint chain; activations and every workspace live in a remat
 * pool on the host device and the executor (remat_run) decides what is kept and what is
 * recomputed. The chain's times are measured by profiling the network's own callbacks
 * (remat_chain_profile), then planned. It trains the same network twice in lockstep, once storing
 * everything and once under the optimal plan at 40% of the store-all memory, and checks that the
 * gradients are bitwise identical and that the pool's measured activation peak equals the plan's.
 * Exit status 0 only if both hold.
 *
 *   build/examples/mlp_checkpoint [steps]
 */
#include "remat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 32, IN = 64, HIDDEN = 96, CLASSES = 10, LAYERS = 10 }; /* LAYERS hidden + 1 head */

/* ==== the model ============================================================================== */

typedef struct {
    int in, out;
    float *w, *b;   /* w: [out][in] */
    float *dw, *db; /* gradients, accumulated by backward */
} mlp_layer;

typedef struct {
    mlp_layer layer[LAYERS + 1]; /* layer LAYERS is the head: logits + cross-entropy */
    float x[BATCH * IN];
    int label[BATCH];
} mlp;

static uint64_t mlp_rng = 0x9e3779b97f4a7c15ull;
static float mlp_uniform(void) /* in [-1, 1) */
{
    mlp_rng ^= mlp_rng << 13;
    mlp_rng ^= mlp_rng >> 7;
    mlp_rng ^= mlp_rng << 17;
    return (float)((mlp_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static int mlp_init(mlp *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i <= LAYERS; i++) {
        mlp_layer *l = &m->layer[i];
        l->in = i == 0 ? IN : HIDDEN;
        l->out = i == LAYERS ? CLASSES : HIDDEN;
        size_t n = (size_t)l->in * (size_t)l->out;
        l->w = malloc(n * sizeof(float));
        l->dw = calloc(n, sizeof(float));
        l->b = calloc((size_t)l->out, sizeof(float));
        l->db = calloc((size_t)l->out, sizeof(float));
        if (!l->w || !l->dw || !l->b || !l->db)
            return -1;
        float scale = 1.0f / sqrtf((float)l->in);
        for (size_t k = 0; k < n; k++)
            l->w[k] = scale * mlp_uniform();
    }
    /* a learnable task: the label is the argmax of a fixed projection of the input */
    for (int r = 0; r < BATCH; r++) {
        float best = -1e30f;
        for (int j = 0; j < IN; j++)
            m->x[r * IN + j] = mlp_uniform();
        for (int c = 0; c < CLASSES; c++) {
            float s = 0;
            for (int j = 0; j < IN; j++)
                s += m->x[r * IN + j] * (float)(((c * 7 + j * 3) % 11) - 5);
            if (s > best)
                best = s, m->label[r] = c;
        }
    }
    return 0;
}

static void mlp_free(mlp *m)
{
    for (int i = 0; i <= LAYERS; i++) {
        free(m->layer[i].w);
        free(m->layer[i].dw);
        free(m->layer[i].b);
        free(m->layer[i].db);
    }
}

/* h = x W^T + b for one batch: [BATCH][out] from [BATCH][in]. */
static void mlp_linear(const mlp_layer *l, const float *x, float *h)
{
    for (int r = 0; r < BATCH; r++)
        for (int o = 0; o < l->out; o++) {
            float s = l->b[o];
            for (int i = 0; i < l->in; i++)
                s += x[r * l->in + i] * l->w[o * l->in + i];
            h[r * l->out + o] = s;
        }
}

static float mlp_gelu(float h)
{
    return 0.5f * h * (1.0f + tanhf(0.7978845608f * (h + 0.044715f * h * h * h)));
}

static float mlp_gelu_grad(float h)
{
    float u = 0.7978845608f * (h + 0.044715f * h * h * h), t = tanhf(u);
    return 0.5f * (1.0f + t) +
           0.5f * h * (1.0f - t * t) * 0.7978845608f * (1.0f + 3 * 0.044715f * h * h);
}

/* Accumulates dW += dh^T x, db += sum dh, and din += dh W (din NULL: the input has no gradient). */
static void mlp_linear_backward(mlp_layer *l, const float *x, const float *dh, float *din)
{
    for (int r = 0; r < BATCH; r++)
        for (int o = 0; o < l->out; o++) {
            float g = dh[r * l->out + o];
            l->db[o] += g;
            for (int i = 0; i < l->in; i++) {
                l->dw[o * l->in + i] += g * x[r * l->in + i];
                if (din)
                    din[r * l->in + i] += g * l->w[o * l->in + i];
            }
        }
}

/* ==== the stages, as remat callbacks ============================================================
 * Hidden stage i: a_{i+1} = gelu(a_i W^T + b). Its forward-with-grad keeps [a_{i+1} | h] (h the
 * pre-activation); option 0, "recompute-gelu", keeps only a_{i+1} and recomputes h from a_i in the
 * backward, into workspace of its own. Head: a_L = mean cross-entropy (one float); it keeps
 * [loss | probabilities]. Every temporary is the executor's `tmp`, so the plan counts it:
 * forward [h], backward [dh] (recompute-gelu: [dh | h]). The input x needs no gradient. */

static remat_status mlp_forward(void *ctx, int stage, int option, const void *in, void *out,
                                void *tmp)
{
    mlp *m = ctx;
    mlp_layer *l = &m->layer[stage];
    float *y = out, *h = tmp;
    mlp_linear(l, in, h);
    if (stage == LAYERS) {
        float loss = 0, *probs = option == REMAT_OPTION_NO_GRAD ? NULL : y + 1;
        for (int r = 0; r < BATCH; r++) {
            float mx = -1e30f, sum = 0;
            for (int c = 0; c < CLASSES; c++)
                mx = fmaxf(mx, h[r * CLASSES + c]);
            for (int c = 0; c < CLASSES; c++)
                sum += expf(h[r * CLASSES + c] - mx);
            loss += logf(sum) - (h[r * CLASSES + m->label[r]] - mx);
            for (int c = 0; probs && c < CLASSES; c++)
                probs[r * CLASSES + c] = expf(h[r * CLASSES + c] - mx) / sum;
        }
        y[0] = loss / BATCH;
        if (!isfinite(y[0]))
            return remat_callback_fail(REMAT_EINTERNAL, "head: the loss is %g", (double)y[0]);
        return REMAT_OK;
    }
    for (int k = 0; k < BATCH * l->out; k++)
        y[k] = mlp_gelu(h[k]);
    if (option == REMAT_OPTION_DEFAULT) /* default forward-with-grad: keep h after the output */
        memcpy(y + BATCH * l->out, h, sizeof(float) * BATCH * (size_t)l->out);
    return REMAT_OK;
}

static remat_status mlp_backward(void *ctx, int stage, int option, const void *in,
                                 const void *saved, const void *dout, void *din, void *tmp)
{
    mlp *m = ctx;
    mlp_layer *l = &m->layer[stage];
    const float *s = saved, *dy = dout;
    float *dh = tmp, *h = dh + BATCH * l->out;
    if (stage == LAYERS) {
        const float *probs = s + 1;
        for (int r = 0; r < BATCH; r++)
            for (int c = 0; c < CLASSES; c++)
                dh[r * CLASSES + c] = (probs[r * CLASSES + c] - (c == m->label[r])) * dy[0] / BATCH;
    } else {
        const float *hs = s + BATCH * l->out;
        if (option == 0) { /* recompute-gelu: h was not kept */
            mlp_linear(l, in, h);
            hs = h;
        }
        for (int k = 0; k < BATCH * l->out; k++)
            dh[k] = dy[k] * mlp_gelu_grad(hs[k]);
    }
    mlp_linear_backward(l, in, dh, din);
    return REMAT_OK;
}

static remat_status mlp_input(void *ctx, void *a0)
{
    memcpy(a0, ((mlp *)ctx)->x, sizeof((mlp *)ctx)->x);
    return REMAT_OK;
}

static remat_status mlp_seed(void *ctx, void *d)
{
    (void)ctx;
    *(float *)d = 1.0f; /* d loss / d loss */
    return REMAT_OK;
}

static remat_status mlp_zero(void *ctx, void *p, size_t bytes)
{
    (void)ctx;
    memset(p, 0, bytes);
    return REMAT_OK;
}

/* The chain's sizes in bytes; its times are measured (mlp_profile). */
static remat_status mlp_chain(const mlp *m, remat_chain **out)
{
    remat_chain *c;
    remat_status s = remat_chain_new(LAYERS + 1, &c);
    if (s != REMAT_OK)
        return s;
    snprintf(c->name, sizeof c->name, "mlp-%dx%d-b%d", LAYERS, HIDDEN, BATCH);
    c->input_bytes = sizeof m->x;
    c->input_no_grad = 1; /* nothing wants d x: B 0 gets din = NULL and d_0 costs no memory */
    for (int i = 0; i <= LAYERS; i++) {
        const mlp_layer *l = &m->layer[i];
        remat_stage *st = &c->stages[i];
        uint64_t h_bytes = sizeof(float) * BATCH * (size_t)l->out;
        snprintf(st->name, sizeof st->name, i == LAYERS ? "head" : "layer%d", i);
        st->fwd_tmp_bytes = h_bytes; /* h */
        st->bwd_tmp_bytes = h_bytes; /* dh */
        if (i == LAYERS) {
            st->out_bytes = sizeof(float);
            st->saved_bytes = sizeof(float) * (1 + BATCH * CLASSES);
            continue;
        }
        st->out_bytes = sizeof(float) * BATCH * (size_t)l->out;
        st->saved_bytes = 2 * st->out_bytes;
        st->n_options = 1;
        st->options = calloc(1, sizeof *st->options);
        if (!st->options) {
            remat_chain_free(c);
            return REMAT_ENOMEM;
        }
        snprintf(st->options[0].name, sizeof st->options[0].name, "recompute-gelu");
        st->options[0].saved_bytes = st->out_bytes;
        st->options[0].extra_bwd_tmp_bytes = h_bytes; /* h, recomputed in the backward */
    }
    *out = c;
    return REMAT_OK;
}

static void mlp_zero_grads(mlp *m)
{
    for (int i = 0; i <= LAYERS; i++) {
        mlp_layer *l = &m->layer[i];
        memset(l->dw, 0, (size_t)l->in * (size_t)l->out * sizeof(float));
        memset(l->db, 0, (size_t)l->out * sizeof(float));
    }
}

/* Measures the chain's times (ms) by calling the callbacks, stage by stage; the profile's
 * backwards accumulate into the gradients, so they are zeroed after. */
static remat_status mlp_profile(remat_chain *c, remat_pool *pool, const remat_callbacks *cb, mlp *m)
{
    remat_stage_profile sp[LAYERS + 1];
    remat_profile_options opt = {.reps = 5};
    remat_status s = remat_chain_profile(c, pool, NULL, cb, m, &opt, sp);
    mlp_zero_grads(m);
    if (s != REMAT_OK)
        return s;
    for (int i = 0; i <= LAYERS; i++)
        if (sp[i].fwd_alloc_bytes || sp[i].bwd_alloc_bytes) /* all temporaries are the plan's */
            return remat_callback_fail(REMAT_EINTERNAL, "stage %d allocates memory itself", i);
    printf("profiled: layer0 fwd %.3f ms bwd %.3f ms (recompute-gelu %.3f ms), head fwd %.3f ms\n",
           c->stages[0].fwd, c->stages[0].bwd, c->stages[0].options[0].bwd, c->stages[LAYERS].fwd);
    return REMAT_OK;
}

/* ==== training ==================================================================================
 */

typedef struct {
    const char *label;
    mlp model;
    remat_schedule *plan;
    remat_pool *pool;
} mlp_run;

static void mlp_sgd(mlp *m, float lr)
{
    for (int i = 0; i <= LAYERS; i++) {
        mlp_layer *l = &m->layer[i];
        size_t n = (size_t)l->in * (size_t)l->out;
        for (size_t k = 0; k < n; k++)
            l->w[k] -= lr * l->dw[k], l->dw[k] = 0;
        for (int o = 0; o < l->out; o++)
            l->b[o] -= lr * l->db[o], l->db[o] = 0;
    }
}

static int mlp_same_grads(const mlp *a, const mlp *b)
{
    for (int i = 0; i <= LAYERS; i++) {
        const mlp_layer *p = &a->layer[i], *q = &b->layer[i];
        size_t n = (size_t)p->in * (size_t)p->out;
        if (memcmp(p->dw, q->dw, n * sizeof(float)) ||
            memcmp(p->db, q->db, (size_t)p->out * sizeof(float)))
            return 0;
    }
    return 1;
}

static int mlp_fail(const char *what, remat_status s)
{
    fprintf(stderr, "mlp_checkpoint: %s: %s (%s)\n", what, remat_last_error(), remat_strerror(s));
    return 1;
}

static int mlp_plan(const remat_chain *c, const char *policy, uint64_t budget, remat_schedule **out)
{
    remat_policy p;
    remat_status s = remat_policy_parse(policy, &p);
    if (s == REMAT_OK)
        s = remat_plan(c, &p, budget, out);
    return s == REMAT_OK ? 0 : mlp_fail(policy, s);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 5;
    static const remat_callbacks cb = {mlp_forward, mlp_backward, mlp_input, mlp_seed,
                                       NULL,        NULL,         mlp_zero};
    static mlp_run runs[2] = {{.label = "store-all"}, {.label = "optimal@40%"}};
    remat_device *dev = NULL;
    remat_chain *chain = NULL;
    remat_status s = remat_device_open("host", &dev);
    if (s != REMAT_OK)
        return mlp_fail("host device", s);
    for (int k = 0; k < 2; k++) {
        mlp_rng = 0x9e3779b97f4a7c15ull; /* both copies start from the same weights */
        if (mlp_init(&runs[k].model) != 0)
            return mlp_fail("model", REMAT_ENOMEM);
        if ((s = remat_pool_create(dev, NULL, &runs[k].pool)) != REMAT_OK)
            return mlp_fail("pool", s);
    }
    if ((s = mlp_chain(&runs[0].model, &chain)) != REMAT_OK)
        return mlp_fail("chain", s);
    if ((s = mlp_profile(chain, runs[0].pool, &cb, &runs[0].model)) != REMAT_OK)
        return mlp_fail("profile", s);
    if ((s = remat_pool_reset_peaks(runs[0].pool)) != REMAT_OK)
        return mlp_fail("pool", s);
    uint64_t all;
    if ((s = remat_store_all_peak(chain, &all)) != REMAT_OK)
        return mlp_fail("store-all peak", s);
    if (mlp_plan(chain, "store-all", all, &runs[0].plan) ||
        mlp_plan(chain, "optimal", all * 2 / 5, &runs[1].plan))
        return 1;
    char b1[32], b2[32], b3[32];
    printf(
        "%s: %d stages, store-all peak %s; optimal at 40%% (%s): plan peak %s, overhead %+.1f%%\n",
        chain->name, chain->n_stages, remat_format_bytes(all, b1, sizeof b1),
        remat_format_bytes(all * 2 / 5, b2, sizeof b2),
        remat_format_bytes(runs[1].plan->peak_bytes, b3, sizeof b3), 100 * runs[1].plan->overhead);
    int same = 1;
    for (int step = 1; step <= steps; step++) {
        float loss[2];
        for (int k = 0; k < 2; k++)
            if ((s = remat_run_output(runs[k].plan, chain, runs[k].pool, NULL, &cb, &runs[k].model,
                                      &loss[k], sizeof loss[k])) != REMAT_OK)
                return mlp_fail(runs[k].label, s);
        int eq = mlp_same_grads(&runs[0].model, &runs[1].model);
        same &= eq;
        printf("step %d: loss %.6f (store-all) %.6f (optimal@40%%), gradients %s\n", step, loss[0],
               loss[1], eq ? "bitwise identical" : "DIFFER");
        for (int k = 0; k < 2; k++)
            mlp_sgd(&runs[k].model, 2.0f);
    }
    int peaks_ok = 1;
    for (int k = 0; k < 2; k++) {
        remat_stat act;
        if ((s = remat_pool_tag_stats(runs[k].pool, "act", &act)) != REMAT_OK)
            return mlp_fail("pool stats", s);
        int ok = act.peak == runs[k].plan->peak_bytes;
        peaks_ok &= ok;
        printf("%-12s activation peak measured by the pool %llu bytes, predicted by the plan %llu: "
               "%s\n",
               runs[k].label, (unsigned long long)act.peak,
               (unsigned long long)runs[k].plan->peak_bytes, ok ? "equal" : "DIFFERENT");
    }
    printf("%s\n", same && peaks_ok ? "ok" : "FAILED");
    for (int k = 0; k < 2; k++) {
        remat_schedule_free(runs[k].plan);
        remat_pool_destroy(runs[k].pool);
        mlp_free(&runs[k].model);
    }
    remat_chain_free(chain);
    remat_device_close(dev);
    return same && peaks_ok ? 0 : 1;
}

/* model/profile.c: measures the model's stages (forward and backward of each save option) into a
 * chain with times in milliseconds, the input of `remat profile` and of `remat train`'s planning.
 */
#include "core/core.h"
#include "model/stages.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Variants of a block's forward-with-grad: 0 the default, 1 + k save option k. */
enum { GPT_PROF_VARIANTS = 1 + GPT_N_BLOCK_OPTIONS };

/* The clock of the profile: wall time, on the host as on a GPU (every stage callback ends with
 * the kernels synchronised). A training step is measured in wall time; process CPU time would
 * count each OpenMP/BLAS thread's share (spinning included), so stages with more parallel work
 * would look dearer than they are. */
static double gpt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Series of samples: the embedding, the blocks (all one shape, so their samples are pooled), the
 * head. */
enum { GPT_PROF_EMBED, GPT_PROF_BLOCKS, GPT_PROF_HEAD, GPT_PROF_SERIES };

/* Samples of one profiling session: stage times of real forward+backward steps, taken inside
 * remat_run (so caches, pool calls and the order of stages are those of training). */
typedef struct {
    gpt_model *m;
    int cap;            /* samples per series */
    int recording;      /* 0 during the warm-up step */
    double *fwd;        /* [GPT_PROF_SERIES][cap] */
    double *bwd;        /* [GPT_PROF_SERIES][GPT_PROF_VARIANTS][cap] */
    int *n_fwd, *n_bwd; /* samples taken per series */
    double *fixed;      /* [cap]: per step, its wall time minus its stages' */
    int n_fixed;
    double stage_ms; /* sum of the current step's stage times */
} gpt_prof;

static int gpt_prof_series(const gpt_prof *p, int stage)
{
    return stage == 0 ? GPT_PROF_EMBED : stage <= p->m->cfg.layers ? GPT_PROF_BLOCKS : GPT_PROF_HEAD;
}

static void gpt_prof_push(gpt_prof *p, double *series, int *count, double ms)
{
    p->stage_ms += ms;
    if (p->recording && *count < p->cap)
        series[(*count)++] = ms;
}

static remat_status gpt_prof_forward(void *ctx, int stage, int option, const void *in, void *out,
                                     void *tmp)
{
    gpt_prof *p = ctx;
    REMAT_TRY(p->m->k->status(p->m->kc));
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_callbacks.forward(p->m, stage, option, in, out, tmp));
    int k = gpt_prof_series(p, stage);
    gpt_prof_push(p, p->fwd + (size_t)k * p->cap, &p->n_fwd[k], gpt_now_ms() - t0);
    return REMAT_OK;
}

static remat_status gpt_prof_backward(void *ctx, int stage, int option, const void *in,
                                      const void *saved, const void *dout, void *din, void *tmp)
{
    gpt_prof *p = ctx;
    REMAT_TRY(p->m->k->status(p->m->kc));
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_callbacks.backward(p->m, stage, option, in, saved, dout, din, tmp));
    size_t series = (size_t)gpt_prof_series(p, stage) * GPT_PROF_VARIANTS + (size_t)(option + 1);
    gpt_prof_push(p, p->bwd + series * p->cap, &p->n_bwd[series], gpt_now_ms() - t0);
    return REMAT_OK;
}

static remat_status gpt_prof_input(void *ctx, void *a0)
{
    return gpt_callbacks.input(((gpt_prof *)ctx)->m, a0);
}

static remat_status gpt_prof_seed(void *ctx, void *d_last)
{
    return gpt_callbacks.seed(((gpt_prof *)ctx)->m, d_last);
}

/* Sets the option of every block's forward-with-grad in the store-all schedule `s`: in step
 * `step`, block l runs variant (l + step) mod GPT_PROF_VARIANTS, so every GPT_PROF_VARIANTS steps
 * each block has run each variant once, in a step that mixes them like a selective plan. */
static void gpt_prof_rotate(const gpt_model *m, remat_schedule *s, int step)
{
    for (size_t k = 0; k < s->n_ops; k++) {
        int i = s->ops[k].stage;
        if (s->ops[k].kind == REMAT_OP_F_ALL && i >= 1 && i <= m->cfg.layers)
            s->ops[k].option = (i - 1 + step) % GPT_PROF_VARIANTS - 1;
    }
}

/* One forward+backward as gpt_model_forward_backward runs it (targets copied, gradients zeroed,
 * the schedule run), timing every stage; what the step took beyond its stages is `fixed`. */
static remat_status gpt_prof_step(gpt_prof *p, const remat_schedule *s, const remat_chain *ch)
{
    gpt_model *m = p->m;
    static const remat_callbacks cb = {.forward = gpt_prof_forward,
                                       .backward = gpt_prof_backward,
                                       .input = gpt_prof_input,
                                       .seed = gpt_prof_seed};
    REMAT_TRY(m->k->status(m->kc));
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_callbacks.input(m, m->targets)); /* the batch's tokens serve as targets */
    m->k->zero(m->kc, m->grads, m->lay.total * sizeof(float));
    m->head_grad_done = 0;
    p->stage_ms = 0;
    REMAT_TRY(remat_run(s, ch, m->pool, m->stream, &cb, p));
    REMAT_TRY(m->k->status(m->kc));
    double fixed = gpt_now_ms() - t0 - p->stage_ms;
    if (p->recording && p->n_fixed < p->cap)
        p->fixed[p->n_fixed++] = fixed > 0 ? fixed : 0;
    return REMAT_OK;
}

static int gpt_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n samples (sorted in place); 0 when there are none. */
static double gpt_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, gpt_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Writes each stage's median times into the chain. The per-step costs outside the stages
 * (zeroing the gradients, copying the batch, the executor's pool calls) are charged to the
 * embedding's backward, which every schedule runs exactly once per step. */
static void gpt_prof_store(gpt_prof *p, remat_chain *ch)
{
    double fwd[GPT_PROF_SERIES], bwd[GPT_PROF_SERIES][GPT_PROF_VARIANTS];
    for (int k = 0; k < GPT_PROF_SERIES; k++) {
        fwd[k] = gpt_median(p->fwd + (size_t)k * p->cap, p->n_fwd[k]);
        for (int v = 0; v < GPT_PROF_VARIANTS; v++) {
            size_t series = (size_t)k * GPT_PROF_VARIANTS + (size_t)v;
            bwd[k][v] = gpt_median(p->bwd + series * p->cap, p->n_bwd[series]);
        }
    }
    for (int i = 0; i < ch->n_stages; i++) {
        remat_stage *st = &ch->stages[i];
        int k = gpt_prof_series(p, i);
        st->fwd = fwd[k];
        st->bwd = bwd[k][0];
        for (int o = 0; o < st->n_options && o < GPT_N_BLOCK_OPTIONS; o++)
            st->options[o].bwd = bwd[k][1 + o];
    }
    ch->stages[0].bwd += gpt_median(p->fixed, p->n_fixed);
}

/* reps rounds of GPT_PROF_VARIANTS measured steps, after one warm-up step. */
static remat_status gpt_prof_run(gpt_prof *p, remat_chain *ch, int reps)
{
    uint64_t peak;
    remat_schedule *s = NULL;
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    REMAT_TRY(remat_store_all_peak(ch, &peak));
    REMAT_TRY(remat_plan(ch, &all, peak, &s));
    remat_status st = REMAT_OK;
    int steps = reps * GPT_PROF_VARIANTS;
    for (int k = 0; k <= steps && st == REMAT_OK; k++) {
        p->recording = k > 0;
        gpt_prof_rotate(p->m, s, k);
        st = gpt_prof_step(p, s, ch);
    }
    remat_schedule_free(s);
    REMAT_TRY(st);
    gpt_prof_store(p, ch);
    return REMAT_OK;
}

remat_status gpt_model_profile(gpt_model *m, const int *inputs, int reps, remat_chain **out)
{
    if (!m || !inputs || !out || reps < 1 || reps > 1000)
        return remat_fail(REMAT_EINVAL, "gpt_model_profile: bad arguments (reps %d)", reps);
    for (size_t i = 0; i < m->N; i++)
        if (inputs[i] < 0 || inputs[i] >= m->cfg.vocab)
            return remat_fail(REMAT_EINVAL,
                              "token %d at position %zu is outside the vocabulary [0, %d)",
                              inputs[i], i, m->cfg.vocab);
    remat_chain *ch = NULL;
    REMAT_TRY(gpt_model_chain(m, &ch));
    /* Every series gets at most one sample per block and measured step. */
    size_t cap = (size_t)reps * GPT_PROF_VARIANTS * (size_t)m->cfg.layers;
    size_t nb = (size_t)GPT_PROF_SERIES * GPT_PROF_VARIANTS;
    gpt_prof p = {.m = m,
                  .cap = (int)cap,
                  .fwd = malloc(GPT_PROF_SERIES * cap * sizeof(double)),
                  .bwd = malloc(nb * cap * sizeof(double)),
                  .n_fwd = calloc(GPT_PROF_SERIES, sizeof(int)),
                  .n_bwd = calloc(nb, sizeof(int)),
                  .fixed = malloc((size_t)cap * sizeof(double))};
    m->step_inputs = inputs;
    remat_status s = p.fwd && p.bwd && p.n_fwd && p.n_bwd && p.fixed
                         ? gpt_prof_run(&p, ch, reps)
                         : remat_fail(REMAT_ENOMEM, "cannot allocate the profile's samples");
    free(p.fwd);
    free(p.bwd);
    free(p.n_fwd);
    free(p.n_bwd);
    free(p.fixed);
    m->k->zero(m->kc, m->grads, m->lay.total * sizeof(float));
    if (s == REMAT_OK)
        s = m->k->status(m->kc);
    if (s != REMAT_OK) {
        remat_chain_free(ch);
        return s;
    }
    *out = ch;
    return REMAT_OK;
}

/* model/profile.c: measures the model's stages (forward and backward of each save option) into a
 * chain with times in milliseconds, the input of `remat profile` and of `remat train`'s planning.
 */
#include "core/core.h"
#include "model/stages.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Forward variants of a stage, indexed by callback option + 2: 0 without grad (F_ck / F_n),
 * 1 the default forward-with-grad, 2 + k save option k. Backward variants, indexed by option + 1:
 * 0 the default, 1 + k save option k. */
enum {
    GPT_PROF_FWD_VARIANTS = 2 + GPT_N_BLOCK_OPTIONS,
    GPT_PROF_BWD_VARIANTS = 1 + GPT_N_BLOCK_OPTIONS
};

/* One measured round: store-all steps, each with every block made with one save variant (as a
 * selective policy runs it), the default before every two options (D 1 2 D 3 4), so that each
 * option's step runs next to a default one; then one periodic:2 step, whose forwards without
 * grad (first pass and recomputations) time F_ck / F_n where a recomputing schedule runs them. */
enum {
    GPT_PROF_ROUND = GPT_PROF_BWD_VARIANTS + (GPT_N_BLOCK_OPTIONS + 1) / 2,
    GPT_PROF_NOGRAD_STEP = -1
};

/* The kind of step k of a round: a backward variant or GPT_PROF_NOGRAD_STEP. */
static int gpt_prof_round_kind(int k)
{
    if (k == GPT_PROF_ROUND - 1)
        return GPT_PROF_NOGRAD_STEP;
    return k % 3 == 0 ? 0 : k - k / 3;
}

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
    int cap;            /* samples per series and variant, and recorded steps */
    int recording;      /* 0 during the warm-up steps */
    int kind;           /* of the current step: a backward variant or GPT_PROF_NOGRAD_STEP */
    double *fwd;        /* [GPT_PROF_SERIES][GPT_PROF_FWD_VARIANTS][cap] */
    double *bwd;        /* [GPT_PROF_SERIES][GPT_PROF_BWD_VARIANTS][cap] */
    int *n_fwd, *n_bwd; /* samples taken per series and variant */
    double *fixed;      /* [cap]: per store-all step, its wall time minus its stages' */
    int n_fixed;
    double stage_ms;     /* sum of the current step's stage times */
    double block_ms;     /* sum of its blocks' forward-with-grad and backward times */
    double block_fwd_ms; /* sum of its blocks' forward times (with grad, or in the periodic step
                            without) */
    int block_fwd_n;     /* how many */
    double *step_blocks; /* [cap]: block_ms of each recorded step, in order */
    double *step_fwd;    /* [cap]: its block_fwd_ms / block_fwd_n */
    int *step_kind;      /* [cap]: its kind */
    int n_steps;
    double *scratch; /* [cap] */
} gpt_prof;

static int gpt_prof_series(const gpt_prof *p, int stage)
{
    return stage == 0                  ? GPT_PROF_EMBED
           : stage <= p->m->cfg.layers ? GPT_PROF_BLOCKS
                                       : GPT_PROF_HEAD;
}

/* Adds a stage time to the step's sums, and to its series when recording and `keep` (the
 * periodic step keeps only its forwards without grad). */
static void gpt_prof_push(gpt_prof *p, int series_kind, int is_forward, double *series, int *count,
                          int keep, double ms)
{
    p->stage_ms += ms;
    if (series_kind == GPT_PROF_BLOCKS && p->kind != GPT_PROF_NOGRAD_STEP)
        p->block_ms += ms;
    if (series_kind == GPT_PROF_BLOCKS && is_forward && keep)
        p->block_fwd_ms += ms, p->block_fwd_n++;
    if (p->recording && keep && *count < p->cap)
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
    size_t series = (size_t)k * GPT_PROF_FWD_VARIANTS + (size_t)(option + 2);
    int keep = p->kind != GPT_PROF_NOGRAD_STEP || option == -2;
    gpt_prof_push(p, k, 1, p->fwd + series * p->cap, &p->n_fwd[series], keep, gpt_now_ms() - t0);
    return REMAT_OK;
}

static remat_status gpt_prof_backward(void *ctx, int stage, int option, const void *in,
                                      const void *saved, const void *dout, void *din, void *tmp)
{
    gpt_prof *p = ctx;
    REMAT_TRY(p->m->k->status(p->m->kc));
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_callbacks.backward(p->m, stage, option, in, saved, dout, din, tmp));
    int k = gpt_prof_series(p, stage);
    size_t series = (size_t)k * GPT_PROF_BWD_VARIANTS + (size_t)(option + 1);
    int keep = p->kind != GPT_PROF_NOGRAD_STEP;
    gpt_prof_push(p, k, 0, p->bwd + series * p->cap, &p->n_bwd[series], keep, gpt_now_ms() - t0);
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

/* Sets the option of every block's forward-with-grad in the store-all schedule `s`: block l gets
 * backward variant (l + shift) mod GPT_PROF_BWD_VARIANTS when mixed, else variant `shift` (0 the
 * default, 1 + k option k). */
static void gpt_prof_set_options(const gpt_model *m, remat_schedule *s, int shift, int mixed)
{
    for (size_t k = 0; k < s->n_ops; k++) {
        int i = s->ops[k].stage;
        if (s->ops[k].kind == REMAT_OP_F_ALL && i >= 1 && i <= m->cfg.layers)
            s->ops[k].option = (mixed ? i - 1 + shift : shift) % GPT_PROF_BWD_VARIANTS - 1;
    }
}

/* One forward+backward as gpt_model_forward_backward runs it (targets copied, gradients zeroed,
 * the schedule run), timing every stage. A recorded store-all step also records its blocks' time
 * and what it took beyond its stages (`fixed`). */
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
    p->block_ms = 0;
    p->block_fwd_ms = 0;
    p->block_fwd_n = 0;
    REMAT_TRY(remat_run(s, ch, m->pool, m->stream, &cb, p));
    REMAT_TRY(m->k->status(m->kc));
    double fixed = gpt_now_ms() - t0 - p->stage_ms;
    if (p->recording && p->kind != GPT_PROF_NOGRAD_STEP && p->n_fixed < p->cap)
        p->fixed[p->n_fixed++] = fixed > 0 ? fixed : 0;
    if (p->recording && p->n_steps < p->cap) {
        p->step_blocks[p->n_steps] = p->block_ms;
        p->step_fwd[p->n_steps] = p->block_fwd_n ? p->block_fwd_ms / p->block_fwd_n : 0;
        p->step_kind[p->n_steps++] = p->kind;
    }
    return REMAT_OK;
}

static int gpt_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n samples (sorted in place; linear interpolation), `none` when there are
 * none. */
static double gpt_quantile(double *v, int n, double q, double none)
{
    if (n <= 0)
        return none;
    qsort(v, (size_t)n, sizeof *v, gpt_cmp_double);
    double x = q * (n - 1);
    int i = (int)x;
    return i + 1 < n ? v[i] + (x - i) * (v[i + 1] - v[i]) : v[i];
}

/* A stage's time from its samples: their 10th percentile. On a shared machine interference only
 * adds time, in bursts that can cover every block of a step or several steps: a low quantile
 * keeps the undisturbed samples where a median follows a burst that hit a third of them; the
 * 10th and not the least, so that one lucky sample does not set it. */
static double gpt_estimate(double *v, int n, double none)
{
    return gpt_quantile(v, n, 0.1, none);
}

/* The forward time of series k, forward variant v; `none` when it has no samples. */
static double gpt_prof_fwd_estimate(gpt_prof *p, int k, int v, double none)
{
    size_t series = (size_t)k * GPT_PROF_FWD_VARIANTS + (size_t)v;
    return gpt_estimate(p->fwd + series * p->cap, p->n_fwd[series], none);
}

/* The least sample of a backward series (0 when none): noise only ever adds time, so the least
 * time a backward was measured to take bounds it from below; an estimate under it (a ratio
 * taken while the neighbouring default step was disturbed) is raised to it. */
static double gpt_prof_bwd_floor(const gpt_prof *p, int k, int v)
{
    size_t series = (size_t)k * GPT_PROF_BWD_VARIANTS + (size_t)v;
    const double *x = p->bwd + series * p->cap;
    double least = p->n_bwd[series] ? x[0] : 0;
    for (int i = 1; i < p->n_bwd[series]; i++)
        least = x[i] < least ? x[i] : least;
    return least;
}

static double gpt_at_least(double x, double floor) { return x > floor ? x : floor; }

/* value[i] of recorded step i over that of the nearest default step (the mean of the two when
 * both neighbours are as near); 0 when there is none. A change of load that lasts longer than a
 * step slows both alike, so it cancels out of the ratio. */
static double gpt_prof_step_ratio(const gpt_prof *p, const double *value, int i)
{
    for (int d = 1; d < p->n_steps; d++) {
        double sum = 0;
        int n = 0;
        if (i - d >= 0 && p->step_kind[i - d] == 0)
            sum += value[i - d], n++;
        if (i + d < p->n_steps && p->step_kind[i + d] == 0)
            sum += value[i + d], n++;
        if (n)
            return sum > 0 ? value[i] * n / sum : 0;
    }
    return 0;
}

/* dflt times the median over the steps of kind `kind` of value[step] over the nearest default
 * step's; `none` when no such step ran next to a default one. */
static double gpt_prof_relative(gpt_prof *p, const double *value, int kind, double dflt,
                                double none)
{
    int n = 0;
    for (int i = 0; i < p->n_steps; i++)
        if (p->step_kind[i] == kind) {
            double r = gpt_prof_step_ratio(p, value, i);
            if (r > 0)
                p->scratch[n++] = r;
        }
    return n ? dflt * gpt_quantile(p->scratch, n, 0.5, 0) : none;
}

/* Writes each stage's times into the chain. The chain has one forward time per stage, charged to
 * every forward: it gets the forward without grad (what F_ck / F_n recompute), and each
 * forward-with-grad's excess over it goes into the backward of the same variant, because a
 * schedule runs exactly one B after each F_all (a stage never timed without grad keeps its
 * default forward-with-grad time and no excess). A block's cost under a save option, forward
 * plus backward, is the default's times its steps' ratio to the neighbouring default steps (as a
 * selective plan runs it, every block the same option). The per-step costs outside the stages
 * (zeroing the gradients, copying the batch, the executor's pool calls) are charged to the
 * embedding's backward, which every schedule runs exactly once per step. */
static void gpt_prof_store(gpt_prof *p, remat_chain *ch)
{
    double fwd[GPT_PROF_SERIES][GPT_PROF_FWD_VARIANTS], bwd[GPT_PROF_SERIES][GPT_PROF_BWD_VARIANTS];
    for (int k = 0; k < GPT_PROF_SERIES; k++) {
        /* A variant never run (no recomputation in a short chain; no options outside the blocks)
         * takes the default forward-with-grad's time. */
        fwd[k][1] = gpt_prof_fwd_estimate(p, k, 1, 0);
        fwd[k][0] = gpt_prof_fwd_estimate(p, k, 0, fwd[k][1]);
        for (int v = 2; v < GPT_PROF_FWD_VARIANTS; v++)
            fwd[k][v] = gpt_prof_fwd_estimate(p, k, v, fwd[k][1]);
        for (int v = 0; v < GPT_PROF_BWD_VARIANTS; v++) {
            size_t series = (size_t)k * GPT_PROF_BWD_VARIANTS + (size_t)v;
            bwd[k][v] = gpt_estimate(p->bwd + series * p->cap, p->n_bwd[series], 0);
        }
    }
    /* The blocks' variants, relative to the default steps next to them: each save option's
     * forward-with-grad plus backward, and the forward without grad. */
    double dflt = fwd[GPT_PROF_BLOCKS][1] + bwd[GPT_PROF_BLOCKS][0];
    fwd[GPT_PROF_BLOCKS][0] = gpt_prof_relative(p, p->step_fwd, GPT_PROF_NOGRAD_STEP,
                                                fwd[GPT_PROF_BLOCKS][1], fwd[GPT_PROF_BLOCKS][0]);
    for (int i = 0; i < ch->n_stages; i++) {
        remat_stage *st = &ch->stages[i];
        int k = gpt_prof_series(p, i);
        double nograd = fwd[k][0];
        st->fwd = nograd;
        st->bwd = gpt_at_least(bwd[k][0] + fwd[k][1] - nograd, gpt_prof_bwd_floor(p, k, 0));
        for (int o = 0; o < st->n_options && o < GPT_N_BLOCK_OPTIONS; o++) {
            double own = bwd[k][1 + o] + fwd[k][2 + o];
            st->options[o].bwd =
                gpt_at_least(gpt_prof_relative(p, p->step_blocks, 1 + o, dflt, own) - nograd,
                             gpt_prof_bwd_floor(p, k, 1 + o));
        }
    }
    ch->stages[0].bwd += gpt_estimate(p->fixed, p->n_fixed, 0);
}

/* Runs a step of kind `kind`: a store-all step with every block at that backward variant, or the
 * periodic step. */
static remat_status gpt_prof_kind_step(gpt_prof *p, remat_schedule *all,
                                       const remat_schedule *nograd, const remat_chain *ch,
                                       int kind)
{
    p->kind = kind;
    if (kind == GPT_PROF_NOGRAD_STEP)
        return nograd ? gpt_prof_step(p, nograd, ch) : REMAT_OK;
    gpt_prof_set_options(p->m, all, kind, 0);
    return gpt_prof_step(p, all, ch);
}

/* The measured rounds span at least this long (up to GPT_PROF_MAX_ROUNDS rounds): on a shared
 * machine a burst of load lasts a second or so, which would cover every step of a few short
 * rounds, and the options' per-step ratios (see gpt_prof_relative) need a few rounds to average
 * out the steps' noise (with 2 s, 3 to 4 rounds of `small` at batch 8, option costs still moved
 * by +-1 ms a block from run to run). Long steps reach reps rounds first: no extra cost there. */
enum { GPT_PROF_WINDOW_MS = 4000, GPT_PROF_MAX_ROUNDS = 40 };

/* Two warm-up steps (store-all with the variants mixed across blocks, so every option's buffers
 * have been touched once, then the periodic one), then at least reps rounds, more while they
 * have taken less than GPT_PROF_WINDOW_MS. */
static remat_status gpt_prof_run(gpt_prof *p, remat_chain *ch, int reps)
{
    uint64_t peak;
    remat_schedule *all = NULL, *nograd = NULL;
    remat_policy store_all = {.kind = REMAT_POLICY_STORE_ALL};
    remat_policy periodic = {.kind = REMAT_POLICY_PERIODIC, .period = 2};
    REMAT_TRY(remat_store_all_peak(ch, &peak));
    REMAT_TRY(remat_plan(ch, &store_all, peak, &all));
    /* A chain too short to recompute anything has no forward without grad: no periodic step. */
    if (remat_plan(ch, &periodic, 2 * peak, &nograd) != REMAT_OK)
        nograd = NULL;
    p->recording = 0;
    p->kind = 0;
    gpt_prof_set_options(p->m, all, 0, 1);
    remat_status st = gpt_prof_step(p, all, ch);
    if (st == REMAT_OK)
        st = gpt_prof_kind_step(p, all, nograd, ch, GPT_PROF_NOGRAD_STEP);
    p->recording = 1;
    double t0 = gpt_now_ms();
    for (int k = 0; st == REMAT_OK; k++) {
        int round = k / GPT_PROF_ROUND;
        if (k % GPT_PROF_ROUND == 0 && round >= reps &&
            (round >= GPT_PROF_MAX_ROUNDS || gpt_now_ms() - t0 >= GPT_PROF_WINDOW_MS))
            break;
        st = gpt_prof_kind_step(p, all, nograd, ch, gpt_prof_round_kind(k % GPT_PROF_ROUND));
    }
    remat_schedule_free(all);
    remat_schedule_free(nograd);
    REMAT_TRY(st);
    gpt_prof_store(p, ch);
    return REMAT_OK;
}

static void gpt_prof_free(gpt_prof *p)
{
    free(p->fwd);
    free(p->bwd);
    free(p->n_fwd);
    free(p->n_bwd);
    free(p->fixed);
    free(p->step_blocks);
    free(p->step_fwd);
    free(p->step_kind);
    free(p->scratch);
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
    /* A series and variant gets at most one sample per block and store-all step, and two (first
     * pass and recomputation) per block and periodic step. */
    size_t rounds = reps > GPT_PROF_MAX_ROUNDS ? (size_t)reps : GPT_PROF_MAX_ROUNDS;
    size_t cap = rounds * GPT_PROF_ROUND * 2 * (size_t)m->cfg.layers;
    size_t nf = (size_t)GPT_PROF_SERIES * GPT_PROF_FWD_VARIANTS;
    size_t nb = (size_t)GPT_PROF_SERIES * GPT_PROF_BWD_VARIANTS;
    gpt_prof p = {.m = m,
                  .cap = (int)cap,
                  .fwd = malloc(nf * cap * sizeof(double)),
                  .bwd = malloc(nb * cap * sizeof(double)),
                  .n_fwd = calloc(nf, sizeof(int)),
                  .n_bwd = calloc(nb, sizeof(int)),
                  .fixed = malloc(cap * sizeof(double)),
                  .step_blocks = malloc(cap * sizeof(double)),
                  .step_fwd = malloc(cap * sizeof(double)),
                  .step_kind = malloc(cap * sizeof(int)),
                  .scratch = malloc(cap * sizeof(double))};
    m->step_inputs = inputs;
    remat_status s = p.fwd && p.bwd && p.n_fwd && p.n_bwd && p.fixed && p.step_blocks &&
                             p.step_fwd && p.step_kind && p.scratch
                         ? gpt_prof_run(&p, ch, reps)
                         : remat_fail(REMAT_ENOMEM, "cannot allocate the profile's samples");
    gpt_prof_free(&p);
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

/* model/profile.c: measures the model's stages (forward and backward of each save option) into a
 * chain with times in milliseconds, the input of `remat profile` and of `remat train`'s planning.
 *
 * Stage by stage, as Rotor profiles: each stage's forward and backward is called on its own, with
 * only the buffers that one call needs live (its input, its output or ā, its output gradient, its
 * input gradient, its workspace), so the profile never holds more than the largest single stage
 * does, less than any schedule's peak. The buffers come from a pool of the profile's own on the
 * model's device, destroyed at the end: the model's pool (and an allocation trace recorded on it)
 * never sees them.
 */
#include "core/core.h"
#include "model/rig.h"
#include "model/stages.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Rounds at most. A call shorter than GPT_PROF_CALL_MS is repeated back to back within a round
 * until its repetitions have taken that long (at most GPT_PROF_MAX_REPEAT times), each one a
 * sample: a stage of tens of microseconds (the embedding) gets 16 samples a round, not one. */
enum { GPT_PROF_MAX_ROUNDS = 64, GPT_PROF_MAX_REPEAT = 16 };
enum { GPT_PROF_MAX_SAMPLES = GPT_PROF_MAX_ROUNDS * GPT_PROF_MAX_REPEAT };
#define GPT_PROF_CALL_MS 1.0
/* The profile stops, once it has its `reps` rounds, as soon as every time has GPT_PROF_CLEAN
 * undisturbed samples (a quiet machine), or else when GPT_PROF_STEPS_WINDOW training steps' worth
 * of its own estimate (warm-up included), and at least GPT_PROF_MIN_WINDOW_MS, have passed: on a
 * busy machine more rounds buy little, and the profile stays cheap next to training. */
enum { GPT_PROF_CLEAN = 16, GPT_PROF_MIN_WINDOW_MS = 1000 };
#define GPT_PROF_STEPS_WINDOW 4.0
/* An option's backward measured below the default's by more than this share contradicts the
 * work it adds: it is raised to the floor either way, and counted in info->contradicted. */
#define GPT_PROF_CONTRADICTION 0.03

/* Variants of the blocks: index 0 the default, 1 + k save option k. */
enum { GPT_PROF_VARIANTS = 1 + GPT_N_BLOCK_OPTIONS };

/* The measured times. Embedding and head: forward without grad (FN), forward-with-grad (FALL),
 * backward (B). Blocks: forward without grad, and forward-with-grad and backward per variant.
 * FIXED: the per-step work outside the stages (zeroing the gradients, copying the batch). */
enum {
    GPT_PF_FIXED,
    GPT_PF_EMBED_FN,
    GPT_PF_EMBED_FALL,
    GPT_PF_EMBED_B,
    GPT_PF_HEAD_FN,
    GPT_PF_HEAD_FALL,
    GPT_PF_HEAD_B,
    GPT_PF_BLOCK_FN,
    GPT_PF_BLOCK_FALL,                                      /* + variant */
    GPT_PF_BLOCK_B = GPT_PF_BLOCK_FALL + GPT_PROF_VARIANTS, /* + variant */
    GPT_PF_COUNT = GPT_PF_BLOCK_B + GPT_PROF_VARIANTS
};

/* One time's samples in ms, each marked disturbed when the process was preempted during it. */
typedef struct {
    int n, n_clean;
    double ms[GPT_PROF_MAX_SAMPLES];
    unsigned char disturbed[GPT_PROF_MAX_SAMPLES];
} gpt_prof_samples;

typedef struct {
    gpt_model *m;
    remat_pool *pool; /* the profile's own */
    void *a0, *x;     /* the batch's tokens; the embedding's output, input of blocks and head */
    gpt_prof_samples samples[GPT_PF_COUNT];
    double work[GPT_PROF_MAX_SAMPLES]; /* the estimator's scratch */
    int n_rounds;
} gpt_prof;

/* The clock of the profile: wall time, on the host as on a GPU (each timed call ends with the
 * kernels synchronised, kern status()). Process CPU time would count each OpenMP/BLAS thread's
 * share (spinning included), so stages with more parallel work would look dearer than they are. */

/* Involuntary context switches of the whole process (every thread): one during a call means some
 * thread of it was preempted for another task, and the call's wall time holds that task's. */
static long gpt_prof_preemptions(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_nivcsw : 0;
}

typedef struct {
    double ms;
    long preemptions;
} gpt_prof_mark;

static gpt_prof_mark gpt_prof_start(void)
{
    gpt_prof_mark t;
    t.preemptions = gpt_prof_preemptions();
    t.ms = gpt_now_ms();
    return t;
}

/* Records the time since t0 as a sample of `field`; returns it. */
static double gpt_prof_stop(gpt_prof *p, int field, gpt_prof_mark t0)
{
    double ms = gpt_now_ms() - t0.ms;
    int disturbed = gpt_prof_preemptions() != t0.preemptions;
    gpt_prof_samples *s = &p->samples[field];
    if (s->n < GPT_PROF_MAX_SAMPLES) {
        s->ms[s->n] = ms;
        s->disturbed[s->n] = (unsigned char)disturbed;
        s->n++;
        s->n_clean += !disturbed;
    }
    return ms;
}

/* Whether the repetitions of a call in this round are done: at least one, and either
 * GPT_PROF_CALL_MS spent or GPT_PROF_MAX_REPEAT made. */
static int gpt_prof_repeat_done(int k, double spent)
{
    return k >= GPT_PROF_MAX_REPEAT || (k >= 1 && spent >= GPT_PROF_CALL_MS);
}

static remat_status gpt_prof_alloc(gpt_prof *p, uint64_t bytes, void **out)
{
    *out = NULL;
    if (bytes == 0)
        return REMAT_OK;
    *out = remat_alloc_tagged(p->pool, (size_t)bytes, p->m->stream, "profile");
    if (!*out)
        return remat_fail_context(REMAT_ENOMEM, "the profile cannot allocate %llu bytes",
                                  (unsigned long long)bytes);
    return REMAT_OK;
}

static void gpt_prof_release(gpt_prof *p, void **ptr)
{
    if (*ptr)
        remat_free(p->pool, *ptr);
    *ptr = NULL;
}

/* The stage's input: the tokens for the embedding, else the embedding's output. */
static const void *gpt_prof_input(const gpt_prof *p, int stage)
{
    return stage == 0 ? p->a0 : p->x;
}

/* |a_stage|, the size of the stage's input and of its input gradient. */
static uint64_t gpt_prof_in_bytes(const remat_chain *ch, int stage)
{
    return stage == 0 ? ch->input_bytes : ch->stages[stage - 1].out_bytes;
}

/* The forward without grad of `stage` (output a_{i+1} and forward workspace live), repeated as
 * gpt_prof_repeat_done says: samples of `field`. */
static remat_status gpt_prof_nograd(gpt_prof *p, const remat_chain *ch, int stage, int field)
{
    const remat_stage *st = &ch->stages[stage];
    void *out = NULL, *tmp = NULL;
    remat_status s = gpt_prof_alloc(p, st->out_bytes, &out);
    if (s == REMAT_OK)
        s = gpt_prof_alloc(p, st->fwd_tmp_bytes, &tmp);
    if (s == REMAT_OK)
        s = p->m->k->status(p->m->kc);
    double spent = 0;
    for (int k = 0; s == REMAT_OK && !gpt_prof_repeat_done(k, spent); k++) {
        gpt_prof_mark t0 = gpt_prof_start();
        s = gpt_callbacks.forward(p->m, stage, -2, gpt_prof_input(p, stage), out, tmp);
        if (s == REMAT_OK && (s = p->m->k->status(p->m->kc)) == REMAT_OK)
            spent += gpt_prof_stop(p, field, t0);
    }
    gpt_prof_release(p, &tmp);
    gpt_prof_release(p, &out);
    return s;
}

/* One forward-with-grad of `stage` under `option` (-1 the default) into its ā, then its backward
 * from it: samples of fall and b; *spent grows by their times. Live during the forward: input,
 * ā, forward workspace; during the backward: input, ā, output gradient, input gradient,
 * backward workspace. */
static remat_status gpt_prof_pair(gpt_prof *p, const remat_chain *ch, int stage, int option,
                                  void *abar, const int fields[2], double *spent)
{
    const remat_stage *st = &ch->stages[stage];
    gpt_model *m = p->m;
    void *tmp = NULL, *dout = NULL, *din = NULL;
    const void *in = gpt_prof_input(p, stage);
    remat_status s = gpt_prof_alloc(p, st->fwd_tmp_bytes, &tmp);
    if (s == REMAT_OK)
        s = m->k->status(m->kc);
    m->head_grad_done = 0; /* the head adds its weight gradient once per forward-with-grad */
    gpt_prof_mark t0 = gpt_prof_start();
    if (s == REMAT_OK)
        s = gpt_callbacks.forward(m, stage, option, in, abar, tmp);
    if (s == REMAT_OK && (s = m->k->status(m->kc)) == REMAT_OK)
        *spent += gpt_prof_stop(p, fields[0], t0);
    gpt_prof_release(p, &tmp);
    if (s == REMAT_OK)
        s = gpt_prof_alloc(p, st->out_bytes, &dout);
    if (s == REMAT_OK)
        s = gpt_prof_alloc(p, gpt_prof_in_bytes(ch, stage), &din);
    if (s == REMAT_OK)
        s = gpt_prof_alloc(p, st->bwd_tmp_bytes, &tmp);
    if (s == REMAT_OK) {
        m->k->zero(m->kc, dout, (size_t)st->out_bytes); /* a defined gradient, no NaN garbage */
        s = m->k->status(m->kc);
    }
    t0 = gpt_prof_start();
    if (s == REMAT_OK)
        s = gpt_callbacks.backward(m, stage, option, in, abar, dout, din, tmp);
    if (s == REMAT_OK && (s = m->k->status(m->kc)) == REMAT_OK)
        *spent += gpt_prof_stop(p, fields[1], t0);
    gpt_prof_release(p, &tmp);
    gpt_prof_release(p, &din);
    gpt_prof_release(p, &dout);
    return s;
}

/* The forward-with-grad and backward of `stage` under `option`, repeated as pairs as
 * gpt_prof_repeat_done says: samples of fields[0] and fields[1]. */
static remat_status gpt_prof_with_grad(gpt_prof *p, const remat_chain *ch, int stage, int option,
                                       int fall_field, int b_field)
{
    const remat_stage *st = &ch->stages[stage];
    uint64_t saved = option < 0 ? st->saved_bytes : st->options[option].saved_bytes;
    const int fields[2] = {fall_field, b_field};
    void *abar = NULL;
    remat_status s = gpt_prof_alloc(p, saved, &abar);
    double spent = 0;
    for (int k = 0; s == REMAT_OK && !gpt_prof_repeat_done(k, spent); k++)
        s = gpt_prof_pair(p, ch, stage, option, abar, fields, &spent);
    gpt_prof_release(p, &abar);
    return s;
}

/* What a step runs outside its stages: zeroing the gradients and copying the batch in. */
static remat_status gpt_prof_fixed(gpt_prof *p)
{
    gpt_model *m = p->m;
    REMAT_TRY(m->k->status(m->kc));
    double spent = 0;
    for (int k = 0; !gpt_prof_repeat_done(k, spent); k++) {
        gpt_prof_mark t0 = gpt_prof_start();
        REMAT_TRY(gpt_callbacks.input(m, m->targets)); /* the batch's tokens serve as targets */
        m->k->zero(m->kc, m->grads, m->grad_elems * m->elem);
        REMAT_TRY(m->k->status(m->kc));
        spent += gpt_prof_stop(p, GPT_PF_FIXED, t0);
    }
    return REMAT_OK;
}

/* One round: the embedding (whose output becomes the blocks' and the head's input), block
 * `round mod L` under each variant back to back (starting with variant `round mod 5`, so no
 * variant always follows the forward without grad), the head. */
static remat_status gpt_prof_round_run(gpt_prof *p, const remat_chain *ch, int round)
{
    gpt_model *m = p->m;
    int L = m->cfg.layers, blk = 1 + round % L;
    REMAT_TRY(gpt_prof_fixed(p));
    REMAT_TRY(gpt_prof_with_grad(p, ch, 0, -1, GPT_PF_EMBED_FALL, GPT_PF_EMBED_B));
    REMAT_TRY(gpt_prof_nograd(p, ch, 0, GPT_PF_EMBED_FN));
    REMAT_TRY(gpt_callbacks.forward(m, 0, -2, p->a0, p->x, NULL));
    REMAT_TRY(gpt_prof_nograd(p, ch, blk, GPT_PF_BLOCK_FN));
    for (int k = 0; k < GPT_PROF_VARIANTS; k++) {
        int v = (k + round) % GPT_PROF_VARIANTS; /* each variant in every position in turn */
        REMAT_TRY(gpt_prof_with_grad(p, ch, blk, v - 1, GPT_PF_BLOCK_FALL + v, GPT_PF_BLOCK_B + v));
    }
    REMAT_TRY(gpt_prof_nograd(p, ch, L + 1, GPT_PF_HEAD_FN));
    return gpt_prof_with_grad(p, ch, L + 1, -1, GPT_PF_HEAD_FALL, GPT_PF_HEAD_B);
}

static int gpt_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n samples (sorted in place; linear interpolation). n >= 1. */
static double gpt_quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, gpt_cmp_double);
    double x = q * (n - 1);
    int i = (int)x;
    return i + 1 < n ? v[i] + (x - i) * (v[i + 1] - v[i]) : v[i];
}

/* A time from its samples (see gpt.h): the first quartile of the undisturbed ones when there are
 * at least GPT_PROFILE_MIN_CLEAN, else of all. Interference on a shared machine only adds time,
 * to single calls (a thread preempted: the same 1 ms call taking 1, 3.5 or 6 ms in consecutive
 * rounds) as well as to whole stretches of calls (another process's burst, undetected time taken
 * by the hypervisor): a preempted sample is no measurement of the stage, and a low quantile of
 * the rest keeps the undisturbed calls, not the least sample, so one lucky call does not set
 * it. Each variant is estimated from its own samples: a per-round ratio to the default would
 * carry the disturbance of either call. */
double gpt_profile_estimate(const double *ms, const unsigned char *disturbed, int n, double *work)
{
    int clean = 0;
    for (int i = 0; i < n; i++)
        clean += !disturbed[i];
    int k = 0, all = clean < GPT_PROFILE_MIN_CLEAN;
    for (int i = 0; i < n; i++)
        if (all || !disturbed[i])
            work[k++] = ms[i];
    return k ? gpt_quantile(work, k, GPT_PROFILE_QUANTILE) : 0;
}

static double gpt_prof_est(gpt_prof *p, int field)
{
    const gpt_prof_samples *s = &p->samples[field];
    return gpt_profile_estimate(s->ms, s->disturbed, s->n, p->work);
}

/* Share of a block's forward FLOPs that option o recomputes in its backward. */
static double gpt_prof_recompute_share(const gpt_model *m, int o)
{
    double share = gpt_option_extra_gflop(m, o) / gpt_block_forward_gflop(m);
    return share < 1 ? share : 1;
}

/* The estimate of one stage's times into st: fwd the forward without grad (what a recomputation
 * runs), bwd the backward plus the forward-with-grad's excess over fwd (a schedule runs exactly
 * one backward after each forward-with-grad). */
static void gpt_prof_set_stage(remat_stage *st, double fn, double fall, double b)
{
    st->fwd = fn;
    st->bwd = b + fall - fn;
    if (st->bwd < b)
        st->bwd = b; /* a forward without grad measured dearer than with: keep the backward */
}

/* Writes the times into the chain. A block option's backward is its forward-with-grad plus
 * backward, minus the forward without grad (what the chain charges to the forward); never less than
 * the default's backward plus the share of the forward it recomputes (by FLOPs): an option cannot
 * be cheaper than the work it adds. The step's work outside its stages is charged to the
 * embedding's backward, which every schedule runs exactly once per step. */
static void gpt_prof_store(gpt_prof *p, remat_chain *ch, gpt_profile_info *info)
{
    const gpt_model *m = p->m;
    int L = m->cfg.layers;
    gpt_prof_set_stage(&ch->stages[0], gpt_prof_est(p, GPT_PF_EMBED_FN),
                       gpt_prof_est(p, GPT_PF_EMBED_FALL), gpt_prof_est(p, GPT_PF_EMBED_B));
    ch->stages[0].bwd += gpt_prof_est(p, GPT_PF_FIXED);
    gpt_prof_set_stage(&ch->stages[L + 1], gpt_prof_est(p, GPT_PF_HEAD_FN),
                       gpt_prof_est(p, GPT_PF_HEAD_FALL), gpt_prof_est(p, GPT_PF_HEAD_B));
    remat_stage blk = {0};
    gpt_prof_set_stage(&blk, gpt_prof_est(p, GPT_PF_BLOCK_FN), gpt_prof_est(p, GPT_PF_BLOCK_FALL),
                       gpt_prof_est(p, GPT_PF_BLOCK_B));
    double option_bwd[GPT_N_BLOCK_OPTIONS];
    for (int o = 0; o < GPT_N_BLOCK_OPTIONS; o++) {
        double measured = gpt_prof_est(p, GPT_PF_BLOCK_FALL + 1 + o) +
                          gpt_prof_est(p, GPT_PF_BLOCK_B + 1 + o) - blk.fwd;
        double floor = blk.bwd + blk.fwd * gpt_prof_recompute_share(m, o);
        if (info)
            info->measured_option_bwd[o] = measured;
        if (info && measured < blk.bwd * (1 - GPT_PROF_CONTRADICTION))
            info->contradicted++;
        option_bwd[o] = measured > floor ? measured : floor;
    }
    for (int l = 1; l <= L; l++) {
        remat_stage *st = &ch->stages[l];
        st->fwd = blk.fwd;
        st->bwd = blk.bwd;
        for (int o = 0; o < st->n_options && o < GPT_N_BLOCK_OPTIONS; o++)
            st->options[o].bwd = option_bwd[o];
    }
    if (info)
        info->default_bwd = blk.bwd;
}

/* The samples' count and count of disturbed ones into info, and the times estimated from every
 * sample for want of GPT_PROFILE_MIN_CLEAN undisturbed ones. */
static void gpt_prof_count(const gpt_prof *p, gpt_profile_info *info)
{
    for (int f = 0; f < GPT_PF_COUNT; f++) {
        const gpt_prof_samples *s = &p->samples[f];
        info->samples += s->n;
        info->disturbed += s->n - s->n_clean;
        info->unclean_times += s->n_clean < GPT_PROFILE_MIN_CLEAN;
    }
}

/* The mean of a time's samples, disturbances included. */
static double gpt_prof_mean(const gpt_prof *p, int field)
{
    const gpt_prof_samples *s = &p->samples[field];
    double sum = 0;
    for (int i = 0; i < s->n; i++)
        sum += s->ms[i];
    return s->n ? sum / s->n : 0;
}

/* The time of a store-all step as the rounds so far ran its calls: their means, disturbances
 * included, so that the profile's cost is counted in steps of the same machine state (on a loaded
 * machine the rounds and the steps slow alike, and the profile takes more rounds of it). */
static double gpt_prof_step_ms(const gpt_prof *p)
{
    return gpt_prof_mean(p, GPT_PF_FIXED) + gpt_prof_mean(p, GPT_PF_EMBED_FALL) +
           gpt_prof_mean(p, GPT_PF_EMBED_B) + gpt_prof_mean(p, GPT_PF_HEAD_FALL) +
           gpt_prof_mean(p, GPT_PF_HEAD_B) +
           p->m->cfg.layers *
               (gpt_prof_mean(p, GPT_PF_BLOCK_FALL) + gpt_prof_mean(p, GPT_PF_BLOCK_B));
}

/* Whether every time has GPT_PROF_CLEAN undisturbed samples. */
static int gpt_prof_settled(const gpt_prof *p)
{
    for (int f = 0; f < GPT_PF_COUNT; f++)
        if (p->samples[f].n_clean < GPT_PROF_CLEAN)
            return 0;
    return 1;
}

/* One warm-up round (every buffer and code path touched once, its samples dropped), then rounds
 * until there are at least reps, and either every time is settled, or GPT_PROF_MAX_ROUNDS, or
 * the time of GPT_PROF_STEPS_WINDOW steps (at least GPT_PROF_MIN_WINDOW_MS) has passed. */
static remat_status gpt_prof_run(gpt_prof *p, const remat_chain *ch, int reps)
{
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_prof_round_run(p, ch, 0));
    for (int f = 0; f < GPT_PF_COUNT; f++)
        p->samples[f].n = p->samples[f].n_clean = 0;
    while (p->n_rounds < GPT_PROF_MAX_ROUNDS) {
        REMAT_TRY(gpt_prof_round_run(p, ch, p->n_rounds));
        p->n_rounds++;
        if (p->n_rounds < reps)
            continue;
        if (gpt_prof_settled(p))
            break;
        double window = GPT_PROF_STEPS_WINDOW * gpt_prof_step_ms(p);
        if (gpt_now_ms() - t0 >=
            (window > GPT_PROF_MIN_WINDOW_MS ? window : GPT_PROF_MIN_WINDOW_MS))
            break;
    }
    return REMAT_OK;
}

/* Allocates the tokens and the embedding's output, and fills the tokens. */
static remat_status gpt_prof_open(gpt_prof *p, const remat_chain *ch)
{
    REMAT_TRY(remat_pool_create(p->m->dev, NULL, &p->pool));
    REMAT_TRY(gpt_prof_alloc(p, ch->input_bytes, &p->a0));
    REMAT_TRY(gpt_prof_alloc(p, ch->stages[0].out_bytes, &p->x));
    return gpt_callbacks.input(p->m, p->a0);
}

/* Frees the profile's buffers and pool, reporting the pool's peak in info. */
static void gpt_prof_close(gpt_prof *p, gpt_profile_info *info)
{
    if (!p->pool)
        return;
    remat_pool_stats ps;
    if (remat_pool_stats_get(p->pool, &ps) == REMAT_OK && info)
        info->peak_bytes = ps.allocated.peak;
    gpt_prof_release(p, &p->x);
    gpt_prof_release(p, &p->a0);
    remat_pool_destroy(p->pool);
    p->pool = NULL;
}

remat_status gpt_model_profile(gpt_model *m, const int *inputs, int reps, remat_chain **out,
                               gpt_profile_info *info)
{
    if (!m || !inputs || !out || reps < 1 || reps > GPT_PROF_MAX_ROUNDS)
        return remat_fail(REMAT_EINVAL, "gpt_model_profile: bad arguments (reps %d, 1..%d)", reps,
                          GPT_PROF_MAX_ROUNDS);
    for (size_t i = 0; i < m->N; i++)
        if (inputs[i] < 0 || inputs[i] >= m->cfg.vocab)
            return remat_fail(REMAT_EINVAL,
                              "token %d at position %zu is outside the vocabulary [0, %d)",
                              inputs[i], i, m->cfg.vocab);
    if (info)
        memset(info, 0, sizeof *info);
    remat_chain *ch = NULL;
    REMAT_TRY(gpt_model_chain(m, &ch));
    gpt_prof *p = calloc(1, sizeof *p);
    if (!p) {
        remat_chain_free(ch);
        return remat_fail(REMAT_ENOMEM, "cannot allocate the profile's samples");
    }
    p->m = m;
    m->step_inputs = inputs;
    /* rank 0 profiles alone: ZeRO-3's gathers and ZeRO-2/3's reductions stay local (the times
     * are the stages' compute, without their communication) */
    int local = m->local;
    m->local = 1;
    double t0 = gpt_now_ms();
    remat_status s = gpt_prof_open(p, ch);
    if (s == REMAT_OK)
        s = gpt_prof_run(p, ch, reps);
    if (s == REMAT_OK)
        gpt_prof_store(p, ch, info);
    if (info) {
        info->rounds = p->n_rounds;
        info->elapsed_ms = gpt_now_ms() - t0;
    }
    if (info)
        gpt_prof_count(p, info);
    gpt_prof_close(p, info);
    free(p);
    m->local = local;
    gpt_unit_drop(m);
    m->head_grad_done = 0;
    m->k->zero(m->kc, m->grads, m->grad_elems * m->elem);
    if (s == REMAT_OK)
        s = m->k->status(m->kc);
    if (s != REMAT_OK) {
        remat_chain_free(ch);
        return s;
    }
    *out = ch;
    return REMAT_OK;
}

/* ==== Profile files ======================================================================== */

remat_status gpt_profile_key_of(const gpt_model *m, gpt_profile_key *out)
{
    if (!m || !out)
        return remat_fail(REMAT_EINVAL, "gpt_profile_key_of: arguments must not be NULL");
    remat_device_info info;
    REMAT_TRY(remat_device_info_get(m->dev, &info));
    memset(out, 0, sizeof *out);
    out->layers = m->cfg.layers;
    out->channels = m->cfg.channels;
    out->heads = m->cfg.heads;
    out->vocab = m->cfg.vocab;
    out->batch = m->B;
    out->seq = m->T;
    snprintf(out->device, sizeof out->device, "%s", info.spec);
    snprintf(out->device_name, sizeof out->device_name, "%s", info.name);
    snprintf(out->dtype, sizeof out->dtype, "%s", gpt_dtype_name(m->prec.dtype));
    return REMAT_OK;
}

/* The key's integer fields, by name, for writing and comparing alike. */
static int gpt_key_ints(const gpt_profile_key *k, const char **names, int *vals)
{
    static const char *const n[] = {"layers", "channels", "heads", "vocab", "batch", "seq"};
    const int v[] = {k->layers, k->channels, k->heads, k->vocab, k->batch, k->seq};
    for (int i = 0; i < 6; i++)
        names[i] = n[i], vals[i] = v[i];
    return 6;
}

static void gpt_key_strings(const gpt_profile_key *k, const char **names, const char **vals)
{
    names[0] = "device", vals[0] = k->device;
    names[1] = "device_name", vals[1] = k->device_name;
    names[2] = "dtype", vals[2] = k->dtype;
}

static cJSON *gpt_key_json(const gpt_profile_key *k)
{
    const char *names[6], *snames[3], *svals[3];
    int vals[6], n = gpt_key_ints(k, names, vals);
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < n; i++)
        if (!cJSON_AddNumberToObject(o, names[i], vals[i]))
            break;
    gpt_key_strings(k, snames, svals);
    for (int i = 0; o && i < 3; i++)
        if (!cJSON_AddStringToObject(o, snames[i], svals[i]))
            break;
    return o;
}

/* Reads the whole of a small file (at most 64 MiB) into a NUL-terminated buffer. */
static remat_status gpt_read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return remat_fail(REMAT_EIO, "cannot open profile file '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap && cap >= (64u << 20))
            break;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f), big = n == cap && fgetc(f) != EOF;
    fclose(f);
    if (!buf)
        return remat_fail(REMAT_ENOMEM, "cannot read profile file '%s': out of memory", path);
    if (err || big) {
        free(buf);
        return remat_fail(err ? REMAT_EIO : REMAT_EPARSE, "profile file '%s': %s", path,
                          err ? "read error" : "larger than 64 MiB");
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return REMAT_OK;
}

/* Compares the file's key object with key: 0 when equal, else 1 with the first difference in
 * why ("batch 8, this run 4"); -1 when a field is missing or of the wrong type. */
static int gpt_key_differs(const cJSON *obj, const gpt_profile_key *key, char *why, size_t n)
{
    const char *names[6], *snames[3], *svals[3];
    int vals[6], k = gpt_key_ints(key, names, vals);
    for (int i = 0; i < k; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, names[i]);
        if (!cJSON_IsNumber(v))
            return -1;
        if (v->valuedouble != vals[i]) {
            snprintf(why, n, "%s %.0f, this run %d", names[i], v->valuedouble, vals[i]);
            return 1;
        }
    }
    gpt_key_strings(key, snames, svals);
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, snames[i]);
        if (!cJSON_IsString(v))
            return -1;
        if (strcmp(v->valuestring, svals[i]) != 0) {
            snprintf(why, n, "%s '%s', this run '%s'", snames[i], v->valuestring, svals[i]);
            return 1;
        }
    }
    return 0;
}

/* The first stage (or option) whose byte counts differ between a and b, or -1 when none does:
 * the executor hands out exactly these sizes, so a chain with other counts must not run. */
static int gpt_chain_bytes_differ(const remat_chain *a, const remat_chain *b)
{
    if (a->n_stages != b->n_stages || a->input_bytes != b->input_bytes)
        return 0;
    for (int i = 0; i < a->n_stages; i++) {
        const remat_stage *x = &a->stages[i], *y = &b->stages[i];
        int differ = x->out_bytes != y->out_bytes || x->saved_bytes != y->saved_bytes ||
                     x->fwd_tmp_bytes != y->fwd_tmp_bytes || x->bwd_tmp_bytes != y->bwd_tmp_bytes ||
                     x->n_options != y->n_options;
        for (int o = 0; !differ && o < x->n_options; o++)
            differ = x->options[o].saved_bytes != y->options[o].saved_bytes;
        if (differ)
            return i;
    }
    return -1;
}

remat_status gpt_profile_load(const char *path, const gpt_profile_key *key,
                              const remat_chain *shape, remat_chain **out, char *why, size_t why_n)
{
    if (!path || !key || !shape || !out || !why || why_n == 0)
        return remat_fail(REMAT_EINVAL, "gpt_profile_load: arguments must not be NULL");
    *out = NULL;
    why[0] = 0;
    FILE *probe = fopen(path, "rb");
    if (!probe && errno == ENOENT) {
        snprintf(why, why_n, "no such file");
        return REMAT_OK;
    }
    if (probe)
        fclose(probe);
    char *buf = NULL;
    size_t len = 0;
    REMAT_TRY(gpt_read_file(path, &buf, &len));
    cJSON *root = cJSON_ParseWithLength(buf, len);
    const cJSON *k = root ? cJSON_GetObjectItemCaseSensitive(root, "key") : NULL;
    int d = cJSON_IsObject(k) ? gpt_key_differs(k, key, why, why_n) : -1;
    remat_status s = REMAT_OK;
    if (d < 0)
        s = remat_fail(REMAT_EPARSE,
                       "'%s' is not a profile file (no complete \"key\" object of model, batch, "
                       "seq, device and dtype)",
                       path);
    else if (d == 0 && (s = remat_chain_parse(buf, len, out)) != REMAT_OK)
        s = remat_fail_context(s, "profile file '%s'", path);
    cJSON_Delete(root);
    free(buf);
    int stage = s == REMAT_OK && *out ? gpt_chain_bytes_differ(*out, shape) : -1;
    if (stage >= 0) {
        snprintf(why, why_n, "stage %d's byte counts differ from this model's", stage);
        remat_chain_free(*out);
        *out = NULL;
    }
    return s;
}

remat_status gpt_profile_write(FILE *f, const remat_chain *ch, const gpt_profile_key *key)
{
    if (!f || !ch || !key)
        return remat_fail(REMAT_EINVAL, "gpt_profile_write: arguments must not be NULL");
    /* The chain as remat_chain_write writes it (validated, every time to 17 digits), with the key
     * spliced in after its opening brace (re-printing the whole chain through cJSON would round
     * the times to 15 digits). */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return remat_fail(REMAT_ENOMEM, "cannot build the profile file");
    remat_status s = remat_chain_write(ch, mem);
    if (fclose(mem) != 0 && s == REMAT_OK)
        s = remat_fail(REMAT_ENOMEM, "cannot build the profile file");
    cJSON *k = s == REMAT_OK && len && buf[0] == '{' ? gpt_key_json(key) : NULL;
    char *key_text = k ? cJSON_PrintUnformatted(k) : NULL;
    cJSON_Delete(k);
    if (s == REMAT_OK && !key_text)
        s = remat_fail(REMAT_ENOMEM, "cannot build the profile file");
    if (s == REMAT_OK && fprintf(f, "{\"key\": %s,\n %s", key_text, buf + 1) < 0)
        s = remat_fail(REMAT_EIO, "cannot write the profile file: %s", strerror(errno));
    cJSON_free(key_text);
    free(buf);
    return s;
}

remat_status gpt_profile_save(const char *path, const remat_chain *ch, const gpt_profile_key *key)
{
    if (!path)
        return remat_fail(REMAT_EINVAL, "gpt_profile_save: path must not be NULL");
    char tmp[4096 + 32];
    FILE *f = NULL;
    REMAT_TRY(remat_tmp_open(path, tmp, sizeof tmp, &f));
    remat_status s = gpt_profile_write(f, ch, key);
    remat_status fin = remat_tmp_finish(f, tmp, path, s == REMAT_OK);
    return s != REMAT_OK ? s : fin;
}

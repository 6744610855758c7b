/* checkpoint/profile.c: remat_chain_profile: measures a user's chain by calling the user's own
 * callbacks, stage by stage, as Rotor profiles an nn.Sequential: each stage's forward without
 * grad, each forward-with-grad variant and the backward of what it saved, on their own, with only
 * the buffers of that one call live (its input, output or ā, output gradient, input gradient and
 * workspace). Times are wall-clock medians; bytes are what the callbacks allocate from the pool
 * themselves during a call, beyond the buffers handed to them. */
#include "checkpoint/checkpoint.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROF_TAG "act"
#define PROF_DEFAULT_REPS 5
#define PROF_MAX_REPS 1000

typedef struct {
    remat_chain *chain;
    remat_pool *pool;
    remat_stream stream;
    const remat_callbacks *cb;
    void *ctx;
    const remat_profile_options *opt;
    int reps;
    double *samples; /* [reps] */
} prof_run;

static double prof_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static remat_status prof_alloc(prof_run *p, uint64_t bytes, void **out)
{
    *out = NULL;
    if (bytes == 0)
        return REMAT_OK;
    *out = remat_alloc_tagged(p->pool, (size_t)bytes, p->stream, PROF_TAG);
    if (!*out)
        return remat_fail_context(REMAT_ENOMEM, "remat_chain_profile: %llu bytes",
                                  (unsigned long long)bytes);
    return REMAT_OK;
}

static void prof_release(prof_run *p, void **ptr)
{
    remat_free(p->pool, *ptr);
    *ptr = NULL;
}

/* Waits for the work the callbacks queued (opt->sync), so a clock reading covers it. */
static remat_status prof_sync(prof_run *p)
{
    if (!p->opt || !p->opt->sync)
        return REMAT_OK;
    remat_clear_error();
    remat_status s = p->opt->sync(p->ctx);
    if (s != REMAT_OK && remat_last_error()[0] == '\0')
        return remat_fail(s, "remat_chain_profile: the sync callback failed without a message");
    return s == REMAT_OK ? s : remat_fail_context(s, "remat_chain_profile: sync");
}

/* The pool's requested bytes now; its peaks are reset so that the next reading is this call's. */
static remat_status prof_mark(prof_run *p, uint64_t *now)
{
    remat_pool_stats st;
    REMAT_TRY(remat_pool_reset_peaks(p->pool));
    REMAT_TRY(remat_pool_stats_get(p->pool, &st));
    *now = st.requested.current;
    return REMAT_OK;
}

/* Most bytes above `base` the pool held during the call, into *most. */
static remat_status prof_alloc_seen(prof_run *p, uint64_t base, uint64_t *most)
{
    remat_pool_stats st;
    REMAT_TRY(remat_pool_stats_get(p->pool, &st));
    uint64_t self = st.requested.peak > base ? st.requested.peak - base : 0;
    if (self > *most)
        *most = self;
    return REMAT_OK;
}

static remat_status prof_called(remat_status s, const char *what, int stage)
{
    if (s == REMAT_OK)
        return s;
    if (remat_last_error()[0] == '\0')
        return remat_fail(s,
                          "remat_chain_profile: the %s callback of stage %d failed (%s) "
                          "without a message",
                          what, stage, remat_strerror(s));
    return remat_fail_context(s, "remat_chain_profile: %s callback of stage %d", what, stage);
}

/* One timed forward of stage i into out; the workspace is allocated (and measured) around it. */
static remat_status prof_forward(prof_run *p, int i, int option, const void *in, void *out,
                                 double *ms, uint64_t *self)
{
    void *tmp;
    REMAT_TRY(prof_alloc(p, chain_fwd_tmp_bytes(p->chain, i, option), &tmp));
    uint64_t base = 0;
    remat_status s = prof_mark(p, &base);
    if (s == REMAT_OK && p->cb->restore_rng)
        p->cb->restore_rng(p->ctx, i);
    if (s == REMAT_OK)
        s = prof_sync(p);
    double t0 = prof_now_ms();
    if (s == REMAT_OK) {
        remat_clear_error();
        s = prof_called(p->cb->forward(p->ctx, i, option, in, out, tmp), "forward", i);
    }
    if (s == REMAT_OK)
        s = prof_sync(p);
    *ms = prof_now_ms() - t0;
    if (s == REMAT_OK)
        s = prof_alloc_seen(p, base, self);
    prof_release(p, &tmp);
    return s;
}

/* One timed backward of stage i from `saved` (made with option): fresh din and workspace. */
static remat_status prof_backward(prof_run *p, int i, int option, const void *in, const void *saved,
                                  const void *dout, double *ms, uint64_t *self)
{
    void *din = NULL, *tmp = NULL;
    uint64_t din_bytes = chain_grad_bytes(p->chain, i), base = 0;
    remat_status s = prof_alloc(p, din_bytes, &din);
    if (s == REMAT_OK)
        s = prof_alloc(p, chain_bwd_tmp_bytes(p->chain, i, option), &tmp);
    if (s == REMAT_OK && din && p->cb->zero) {
        remat_clear_error();
        s = prof_called(p->cb->zero(p->ctx, din, (size_t)din_bytes), "zero", i);
    }
    if (s == REMAT_OK)
        s = prof_mark(p, &base);
    if (s == REMAT_OK)
        s = prof_sync(p);
    double t0 = prof_now_ms();
    if (s == REMAT_OK) {
        remat_clear_error();
        s = prof_called(p->cb->backward(p->ctx, i, option, in, saved, dout, din, tmp), "backward",
                        i);
    }
    if (s == REMAT_OK)
        s = prof_sync(p);
    *ms = prof_now_ms() - t0;
    if (s == REMAT_OK)
        s = prof_alloc_seen(p, base, self);
    prof_release(p, &tmp);
    prof_release(p, &din);
    return s;
}

static int prof_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double prof_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, prof_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The forward without grad, one untimed warm-up and reps timed: the median into *ms. */
static remat_status prof_nograd(prof_run *p, int i, const void *in, void *out, double *ms,
                                uint64_t *self)
{
    double t;
    REMAT_TRY(prof_forward(p, i, REMAT_OPTION_NO_GRAD, in, out, &t, self));
    for (int r = 0; r < p->reps; r++)
        REMAT_TRY(prof_forward(p, i, REMAT_OPTION_NO_GRAD, in, out, &p->samples[r], self));
    *ms = prof_median(p->samples, p->reps);
    return REMAT_OK;
}

/* Forward-with-grad of `option` then its backward, each median of reps (after a warm-up). */
static remat_status prof_variant(prof_run *p, int i, int option, const void *in, const void *dout,
                                 double *fall, double *bwd, remat_stage_profile *sp)
{
    void *saved;
    REMAT_TRY(prof_alloc(p, chain_saved_bytes(p->chain, i, option), &saved));
    double t;
    remat_status s = prof_forward(p, i, option, in, saved, &t, &sp->fwd_alloc_bytes);
    for (int r = 0; s == REMAT_OK && r < p->reps; r++)
        s = prof_forward(p, i, option, in, saved, &p->samples[r], &sp->fwd_alloc_bytes);
    if (s == REMAT_OK) {
        *fall = prof_median(p->samples, p->reps);
        s = prof_backward(p, i, option, in, saved, dout, &t, &sp->bwd_alloc_bytes);
    }
    for (int r = 0; s == REMAT_OK && r < p->reps; r++)
        s = prof_backward(p, i, option, in, saved, dout, &p->samples[r], &sp->bwd_alloc_bytes);
    if (s == REMAT_OK)
        *bwd = prof_median(p->samples, p->reps);
    prof_release(p, &saved);
    return s;
}

/* d_{i+1} for stage i's backwards: the seed for the last stage, else zeros (or, without a zero
 * callback, whatever the pool's memory holds: only the time is wanted). */
static remat_status prof_dout(prof_run *p, int i, void *dout)
{
    uint64_t bytes = chain_act_bytes(p->chain, i + 1);
    remat_clear_error();
    if (i == p->chain->n_stages - 1 && p->cb->seed)
        return prof_called(p->cb->seed(p->ctx, dout), "seed", i);
    if (dout && p->cb->zero)
        return prof_called(p->cb->zero(p->ctx, dout, (size_t)bytes), "zero", i);
    return REMAT_OK;
}

/* Stores stage i's measurements into the chain, under the cost model's accounting (one time per
 * forward; the forward-with-grad's excess over the forward without grad goes to the backward that
 * always follows it, as `remat profile` does for the GPT model). */
static void prof_store(remat_stage *st, remat_stage_profile *sp, const double *fall,
                       const double *bwd)
{
    st->fwd = sp->fwd;
    double b = bwd[0] + fall[0] - sp->fwd;
    st->bwd = b > bwd[0] ? b : bwd[0];
    for (int k = 0; k < st->n_options; k++) {
        double o = bwd[k + 1] + fall[k + 1] - sp->fwd;
        st->options[k].bwd = o > bwd[k + 1] ? o : bwd[k + 1];
    }
    sp->fwd_all = fall[0];
    sp->bwd = bwd[0];
}

/* Measures stage i from a_i (in) and writes a_{i+1} into next. */
static remat_status prof_stage(prof_run *p, int i, const void *in, void *next,
                               remat_stage_profile *sp)
{
    remat_stage *st = &p->chain->stages[i];
    int nv = st->n_options + 1;
    double *fall = calloc((size_t)nv, sizeof *fall), *bwd = calloc((size_t)nv, sizeof *bwd);
    void *dout = NULL;
    remat_status s =
        fall && bwd ? REMAT_OK : remat_fail(REMAT_ENOMEM, "remat_chain_profile: out of memory");
    if (s == REMAT_OK && p->cb->save_rng)
        p->cb->save_rng(p->ctx, i);
    if (s == REMAT_OK)
        s = prof_nograd(p, i, in, next, &sp->fwd, &sp->fwd_alloc_bytes);
    if (s == REMAT_OK)
        s = prof_alloc(p, chain_act_bytes(p->chain, i + 1), &dout);
    if (s == REMAT_OK)
        s = prof_dout(p, i, dout);
    for (int v = 0; s == REMAT_OK && v < nv; v++)
        s = prof_variant(p, i, v - 1, in, dout, &fall[v], &bwd[v], sp);
    if (s == REMAT_OK)
        prof_store(st, sp, fall, bwd);
    if (dout)
        prof_release(p, &dout);
    free(fall);
    free(bwd);
    return s;
}

static remat_status prof_check(const remat_chain *chain, remat_pool *pool,
                               const remat_callbacks *cb, const remat_profile_options *opt)
{
    if (!pool || !cb)
        return remat_fail(REMAT_EINVAL, "remat_chain_profile: pool and cb must not be NULL");
    if (!cb->forward || !cb->backward || !cb->input)
        return remat_fail(REMAT_EINVAL, "remat_chain_profile: forward, backward and input "
                                        "callbacks are required");
    if (opt && (opt->reps < 0 || opt->reps > PROF_MAX_REPS))
        return remat_fail(REMAT_EINVAL, "remat_chain_profile: reps %d is outside [0, %d]",
                          opt->reps, PROF_MAX_REPS);
    return chain_validate(chain);
}

remat_status remat_chain_profile(remat_chain *chain, remat_pool *pool, remat_stream stream,
                                 const remat_callbacks *cb, void *ctx,
                                 const remat_profile_options *opt, remat_stage_profile *out)
{
    REMAT_TRY(prof_check(chain, pool, cb, opt));
    int L = chain->n_stages;
    prof_run p = {
        chain, pool, stream, cb, ctx, opt, opt && opt->reps > 0 ? opt->reps : PROF_DEFAULT_REPS,
        NULL};
    remat_stage_profile *sp = calloc((size_t)L, sizeof *sp);
    p.samples = calloc((size_t)p.reps, sizeof *p.samples);
    void *a = NULL, *next = NULL;
    remat_status s = sp && p.samples
                         ? prof_alloc(&p, chain->input_bytes, &a)
                         : remat_fail(REMAT_ENOMEM, "remat_chain_profile: out of memory");
    if (s == REMAT_OK) {
        remat_clear_error();
        s = prof_called(cb->input(ctx, a), "input", 0);
    }
    for (int i = 0; s == REMAT_OK && i < L; i++) {
        s = prof_alloc(&p, chain_act_bytes(chain, i + 1), &next);
        if (s == REMAT_OK)
            s = prof_stage(&p, i, a, next, &sp[i]);
        if (a)
            prof_release(&p, &a);
        a = next;
        next = NULL;
    }
    if (a)
        prof_release(&p, &a);
    if (s == REMAT_OK && out)
        memcpy(out, sp, (size_t)L * sizeof *sp);
    free(sp);
    free(p.samples);
    return s;
}

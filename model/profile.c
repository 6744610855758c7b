/* model/profile.c: measures the model's stages (forward and backward of each save option) into a
 * chain with times in milliseconds, the input of `remat profile` and of `remat train`'s planning.
 */
#include "core/core.h"
#include "model/stages.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The clock of the profile: on the host the process's CPU time (all threads), which other
 * processes' load on a shared machine barely moves (wall time there varied 3x between runs); on a
 * GPU the wall clock around synchronised kernels. Only ratios between stages matter to a planner.
 */
static double gpt_now_ms(const gpt_model *m)
{
    struct timespec ts;
    clock_gettime(m->host_memory ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
    gpt_model *m;
    void *a0, *a1, *saved, *tmp, *dout, *din;
} gpt_bench_bufs;

/* One timed forward-with-grad (timed = 1) or backward after an untimed forward of stage `stage`
 * with `option`; the elapsed milliseconds in *ms. */
static remat_status gpt_time_stage(gpt_bench_bufs *b, int stage, int option, int backward,
                                   double *ms)
{
    gpt_model *m = b->m;
    const void *in = stage == 0 ? b->a0 : b->a1;
    REMAT_TRY(m->k->status(m->kc));
    m->head_grad_done = 0;
    double t0 = gpt_now_ms(m);
    REMAT_TRY(gpt_callbacks.forward(m, stage, option, in, b->saved, b->tmp));
    if (backward) {
        REMAT_TRY(m->k->status(m->kc));
        t0 = gpt_now_ms(m);
        REMAT_TRY(gpt_callbacks.backward(m, stage, option, in, b->saved, b->dout, b->din, b->tmp));
    }
    REMAT_TRY(m->k->status(m->kc));
    *ms = gpt_now_ms(m) - t0;
    return REMAT_OK;
}

/* Times every variant of a stage (forward; backward of the default and of each option) `reps`
 * times, round-robin so that a burst of load elsewhere hits all variants alike, after one warm-up
 * round, and keeps each one's minimum: on a shared machine the least disturbed run is the best
 * estimate of a stage's own cost. */
static remat_status gpt_profile_stage(gpt_bench_bufs *b, remat_stage *st, int stage, int reps)
{
    enum { MAXV = 2 + GPT_N_BLOCK_OPTIONS };
    double best[MAXV] = {0};
    int nv = 2 + (st->n_options < GPT_N_BLOCK_OPTIONS ? st->n_options : GPT_N_BLOCK_OPTIONS);
    for (int v = 0; v < MAXV; v++)
        best[v] = 1e300;
    for (int r = 0; r <= reps; r++)
        for (int v = 0; v < nv; v++) {
            double t;
            int backward = v > 0, option = v < 2 ? -1 : v - 2;
            REMAT_TRY(gpt_time_stage(b, stage, option, backward, &t));
            if (r > 0 && t < best[v])
                best[v] = t;
        }
    st->fwd = best[0];
    st->bwd = best[1];
    for (int o = 0; o < st->n_options; o++)
        st->options[o].bwd = best[2 + o];
    return REMAT_OK;
}

static size_t gpt_max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

static remat_status gpt_profile_run(gpt_bench_bufs *b, const int *inputs, int reps, remat_chain *ch)
{
    gpt_model *m = b->m;
    int L = m->cfg.layers;
    m->step_inputs = inputs;
    REMAT_TRY(gpt_callbacks.input(m, b->a0));
    REMAT_TRY(gpt_callbacks.input(m, m->targets));
    REMAT_TRY(gpt_callbacks.forward(m, 0, -2, b->a0, b->a1, NULL));
    m->k->copy(m->kc, b->dout, b->a1, m->act_bytes);
    REMAT_TRY(gpt_profile_stage(b, &ch->stages[0], 0, reps));
    REMAT_TRY(gpt_profile_stage(b, &ch->stages[1], 1, reps));
    REMAT_TRY(gpt_profile_stage(b, &ch->stages[L + 1], L + 1, reps));
    for (int l = 2; l <= L; l++) {
        ch->stages[l].fwd = ch->stages[1].fwd;
        ch->stages[l].bwd = ch->stages[1].bwd;
        for (int o = 0; o < GPT_N_BLOCK_OPTIONS; o++)
            ch->stages[l].options[o].bwd = ch->stages[1].options[o].bwd;
    }
    m->k->zero(m->kc, m->grads, m->lay.total * sizeof(float));
    return m->k->status(m->kc);
}

remat_status gpt_model_profile(gpt_model *m, const int *inputs, int reps, remat_chain **out)
{
    if (!m || !inputs || !out || reps < 1)
        return remat_fail(REMAT_EINVAL, "gpt_model_profile: bad arguments (reps %d)", reps);
    for (size_t i = 0; i < m->N; i++)
        if (inputs[i] < 0 || inputs[i] >= m->cfg.vocab)
            return remat_fail(REMAT_EINVAL,
                              "token %d at position %zu is outside the vocabulary [0, %d)",
                              inputs[i], i, m->cfg.vocab);
    remat_chain *ch = NULL;
    REMAT_TRY(gpt_model_chain(m, &ch));
    gpt_bench_bufs b = {.m = m};
    size_t sizes[6] = {m->input_bytes,
                       m->act_bytes,
                       gpt_max3(m->saved[0].bytes, m->head_saved.bytes, m->act_bytes),
                       gpt_max3(m->fwd_tmp.bytes, m->bwd_tmp.bytes, m->head_tmp.bytes),
                       m->act_bytes,
                       m->act_bytes};
    void **ptrs[6] = {&b.a0, &b.a1, &b.saved, &b.tmp, &b.dout, &b.din};
    remat_status s = REMAT_OK;
    for (int i = 0; i < 6 && s == REMAT_OK; i++)
        if (!(*ptrs[i] = remat_alloc_tagged(m->pool, sizes[i], m->stream, "act")))
            s = remat_fail_context(REMAT_ENOMEM, "cannot allocate the profiling buffers");
    if (s == REMAT_OK)
        s = gpt_profile_run(&b, inputs, reps, ch);
    for (int i = 0; i < 6; i++)
        remat_free(m->pool, *ptrs[i]);
    if (s != REMAT_OK) {
        remat_chain_free(ch);
        return s;
    }
    *out = ch;
    return REMAT_OK;
}

/* tests/test_checkpoint_run.c: the executor remat_run driving a small real trainer through the
 * pool: gradients under every policy are bitwise those of store-all, the pool's activation peak
 * is the simulator's, RNG hooks make stochastic stages recompute exactly, failures free all. */
#include "remat.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MAXL 24

/* A chain of elementwise stages: a_{i+1}[j] = tanh(w[j % n_in] * a_i[j % n_in] + b[j] + noise),
 * noise drawn from the trainer's RNG (a stochastic stage, like dropout). Default ā_{i+1} keeps
 * the output and the pre-activation; option "lean" keeps only the output. */
typedef struct {
    int L;
    int dim[RUN_MAXL + 1];
    float w[RUN_MAXL][64], b[RUN_MAXL][64];
    float dw[RUN_MAXL][64], db[RUN_MAXL][64];
    uint64_t rng, saved_rng[RUN_MAXL];
    int forwards, fail_at; /* fail_at: make the n-th forward fail (0 = never) */
    float d0[64];
} trainer;

static float trainer_noise(trainer *t)
{
    t->rng = t->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((t->rng >> 40) & 0xff) * 1e-4f;
}

static remat_status tr_forward(void *ctx, int i, int option, const void *in, void *out, void *tmp)
{
    (void)tmp;
    trainer *t = ctx;
    if (t->fail_at && ++t->forwards == t->fail_at)
        return REMAT_EDEVICE;
    const float *x = in;
    float *y = out;
    int n_in = t->dim[i], n = t->dim[i + 1];
    for (int j = 0; j < n; j++) {
        float pre = t->w[i][j % n_in] * x[j % n_in] + t->b[i][j] + trainer_noise(t);
        y[j] = tanhf(pre);
        if (option == -1)
            y[n + j] = pre;
    }
    return REMAT_OK;
}

static remat_status tr_backward(void *ctx, int i, int option, const void *in, const void *saved,
                                const void *dout, void *din, void *tmp)
{
    (void)tmp;
    trainer *t = ctx;
    const float *x = in, *s = saved, *dy = dout;
    float *dx = din;
    int n_in = t->dim[i], n = t->dim[i + 1];
    for (int j = 0; j < n; j++) {
        float y = option == -1 ? tanhf(s[n + j]) : s[j];
        float g = dy[j] * (1 - y * y);
        dx[j % n_in] += g * t->w[i][j % n_in];
        t->dw[i][j % n_in] += g * x[j % n_in];
        t->db[i][j] += g;
    }
    if (i == 0)
        memcpy(t->d0, dx, (size_t)n_in * sizeof(float));
    return REMAT_OK;
}

static remat_status tr_input(void *ctx, void *a0)
{
    trainer *t = ctx;
    for (int j = 0; j < t->dim[0]; j++)
        ((float *)a0)[j] = sinf((float)j);
    return REMAT_OK;
}

static remat_status tr_seed(void *ctx, void *d)
{
    trainer *t = ctx;
    for (int j = 0; j < t->dim[t->L]; j++)
        ((float *)d)[j] = 1.0f / (float)(j + 1);
    return REMAT_OK;
}

static void tr_save_rng(void *ctx, int i)
{
    ((trainer *)ctx)->saved_rng[i] = ((trainer *)ctx)->rng;
}
static void tr_restore_rng(void *ctx, int i)
{
    ((trainer *)ctx)->rng = ((trainer *)ctx)->saved_rng[i];
}

static remat_status tr_zero(void *ctx, void *p, size_t bytes)
{
    (void)ctx;
    memset(p, 0, bytes);
    return REMAT_OK;
}

static const remat_callbacks tr_callbacks = {tr_forward,  tr_backward,    tr_input, tr_seed,
                                             tr_save_rng, tr_restore_rng, tr_zero};

static void trainer_init(trainer *t, int L)
{
    memset(t, 0, sizeof *t);
    t->L = L;
    for (int k = 0; k <= L; k++)
        t->dim[k] = 8 + (k * 7) % 33;
    for (int i = 0; i < L; i++)
        for (int j = 0; j < 64; j++) {
            t->w[i][j] = 0.5f + 0.01f * (float)((i * 13 + j * 7) % 50);
            t->b[i][j] = 0.02f * (float)((i + j) % 9) - 0.08f;
        }
    t->rng = 12345;
}

static remat_chain *trainer_chain(const trainer *t)
{
    remat_chain *c;
    cr_assert_eq(remat_chain_new(t->L, &c), REMAT_OK);
    c->input_bytes = (uint64_t)t->dim[0] * 4;
    for (int i = 0; i < t->L; i++) {
        remat_stage *s = &c->stages[i];
        uint64_t out = (uint64_t)t->dim[i + 1] * 4;
        *s = (remat_stage){.fwd = 1 + i % 3,
                           .bwd = 2 + i % 2,
                           .out_bytes = out,
                           .saved_bytes = 2 * out,
                           .fwd_tmp_bytes = (uint64_t)(i % 2) * 100,
                           .bwd_tmp_bytes = (uint64_t)(i % 3) * 64};
        s->n_options = 1;
        s->options = calloc(1, sizeof *s->options);
        snprintf(s->options[0].name, sizeof s->options[0].name, "lean");
        s->options[0].saved_bytes = out;
        s->options[0].bwd = s->bwd + 0.5;
    }
    return c;
}

/* Runs a plan of `policy` at `pct` of store-all through a fresh host pool; returns the measured
 * activation peak. */
static uint64_t run_policy(trainer *t, const remat_chain *c, const char *policy, int pct,
                           remat_schedule **plan)
{
    remat_policy p;
    cr_assert_eq(remat_policy_parse(policy, &p), REMAT_OK);
    uint64_t all, budget;
    cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
    budget = all * (uint64_t)pct / 100;
    uint64_t min;
    cr_assert_eq(remat_min_budget(c, &p, &min), REMAT_OK);
    if (budget < min)
        budget = min;
    cr_assert_eq(remat_plan(c, &p, budget, plan), REMAT_OK, "%s: %s", policy, remat_last_error());
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    cr_assert_eq(remat_run(*plan, c, pool, NULL, &tr_callbacks, t), REMAT_OK, "%s: %s", policy,
                 remat_last_error());
    remat_stat act;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0, "%s leaked %llu bytes", policy, (unsigned long long)act.current);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    return act.peak;
}

Test(run, every_policy_matches_store_all_bitwise_and_the_predicted_peak)
{
    static trainer ref, t;
    for (int L = 1; L <= RUN_MAXL; L += 5) {
        trainer_init(&ref, L);
        remat_chain *c = trainer_chain(&ref);
        remat_schedule *plan;
        uint64_t peak = run_policy(&ref, c, "store-all", 100, &plan);
        cr_assert_eq(peak, plan->peak_bytes);
        remat_schedule_free(plan);
        const char *policies[] = {"optimal", "sqrt", "periodic:2", "revolve", "optimal", "optimal"};
        int pcts[] = {40, 100, 100, 50, 70, 1};
        for (int p = 0; p < 6; p++) {
            trainer_init(&t, L);
            peak = run_policy(&t, c, policies[p], pcts[p], &plan);
            cr_assert_eq(peak, plan->peak_bytes, "%s L=%d: pool %llu, plan %llu", policies[p], L,
                         (unsigned long long)peak, (unsigned long long)plan->peak_bytes);
            cr_assert_eq(memcmp(t.dw, ref.dw, sizeof t.dw), 0, "%s L=%d: weight grads differ",
                         policies[p], L);
            cr_assert_eq(memcmp(t.db, ref.db, sizeof t.db), 0, "%s L=%d", policies[p], L);
            cr_assert_eq(memcmp(t.d0, ref.d0, sizeof t.d0), 0, "%s L=%d", policies[p], L);
            remat_schedule_free(plan);
        }
        remat_chain_free(c);
    }
}

Test(run, rng_hooks_are_needed_for_stochastic_stages)
{
    static trainer ref, t;
    trainer_init(&ref, 10);
    remat_chain *c = trainer_chain(&ref);
    remat_schedule *plan;
    run_policy(&ref, c, "store-all", 100, &plan);
    remat_schedule_free(plan);
    trainer_init(&t, 10);
    remat_callbacks no_rng = tr_callbacks;
    no_rng.save_rng = NULL;
    no_rng.restore_rng = NULL;
    remat_policy p;
    cr_assert_eq(remat_policy_parse("sqrt", &p), REMAT_OK);
    cr_assert_eq(remat_plan(c, &p, UINT64_MAX, &plan), REMAT_OK);
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    cr_assert_eq(remat_run(plan, c, pool, NULL, &no_rng, &t), REMAT_OK);
    cr_assert_neq(memcmp(t.dw, ref.dw, sizeof t.dw), 0,
                  "recomputation without hooks should differ");
    remat_schedule_free(plan);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    remat_chain_free(c);
}

Test(run, failures_stop_the_run_and_free_everything)
{
    static trainer t;
    trainer_init(&t, 6);
    remat_chain *c = trainer_chain(&t);
    remat_policy p;
    cr_assert_eq(remat_policy_parse("optimal", &p), REMAT_OK);
    uint64_t min;
    cr_assert_eq(remat_min_budget(c, &p, &min), REMAT_OK);
    remat_schedule *plan;
    cr_assert_eq(remat_plan(c, &p, min, &plan), REMAT_OK);
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    remat_stat act;
    for (int k = 1; k <= 9; k += 4) {
        t.fail_at = k;
        t.forwards = 0;
        cr_assert_eq(remat_run(plan, c, pool, NULL, &tr_callbacks, &t), REMAT_EDEVICE);
        cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
        cr_assert_eq(act.current, 0);
    }
    t.fail_at = 0;
    /* an invalid schedule: drop the last op */
    plan->n_ops--;
    cr_assert_eq(remat_run(plan, c, pool, NULL, &tr_callbacks, &t), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "B 0"), "%s", remat_last_error());
    plan->n_ops++;
    remat_callbacks nothing = {0};
    cr_assert_eq(remat_run(plan, c, pool, NULL, &nothing, &t), REMAT_EINVAL);
    remat_callbacks no_zero = tr_callbacks;
    no_zero.zero = NULL;
    no_zero.seed = NULL;
    cr_assert_eq(remat_run(plan, c, pool, NULL, &no_zero, &t), REMAT_EINVAL);
    /* a pool too small: ENOMEM, nothing leaked */
    remat_pool *small;
    remat_pool_config cfg = {0};
    cfg.limit_bytes = 1024;
    cr_assert_eq(remat_pool_create(dev, &cfg, &small), REMAT_OK);
    cr_assert_eq(remat_run(plan, c, small, NULL, &tr_callbacks, &t), REMAT_ENOMEM);
    cr_assert_eq(remat_pool_tag_stats(small, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0);
    remat_pool_destroy(small);
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0);
    remat_schedule_free(plan);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    remat_chain_free(c);
}

/* ==== planned and pool layouts =============================================================== */

/* Like run_policy with an explicit layout; returns the pool's "act" peak. */
static uint64_t run_layout(trainer *t, const remat_chain *c, const char *policy, int pct,
                           remat_layout_mode layout, remat_schedule **plan)
{
    remat_policy p;
    cr_assert_eq(remat_policy_parse(policy, &p), REMAT_OK);
    uint64_t all, min;
    cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
    cr_assert_eq(remat_min_budget_layout(c, &p, layout, &min), REMAT_OK);
    uint64_t budget = all * (uint64_t)pct / 100 < min ? min : all * (uint64_t)pct / 100;
    cr_assert_eq(remat_plan_layout(c, &p, layout, budget, plan), REMAT_OK, "%s: %s", policy,
                 remat_last_error());
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    cr_assert_eq(remat_run(*plan, c, pool, NULL, &tr_callbacks, t), REMAT_OK, "%s: %s", policy,
                 remat_last_error());
    remat_stat act;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    return act.peak;
}

Test(run, planned_and_pool_layouts_give_store_all_gradients_bitwise)
{
    static trainer ref, t;
    const char *policies[] = {"store-all", "optimal", "sqrt", "periodic:3", "revolve", "optimal"};
    int pcts[] = {100, 45, 100, 100, 50, 1};
    for (int L = 2; L <= RUN_MAXL; L += 7) {
        trainer_init(&ref, L);
        remat_chain *c = trainer_chain(&ref);
        remat_schedule *plan;
        run_layout(&ref, c, "store-all", 100, REMAT_LAYOUT_POOL, &plan);
        remat_schedule_free(plan);
        for (int p = 0; p < 6; p++)
            for (int lay = 0; lay < 2; lay++) {
                remat_layout_mode mode = lay ? REMAT_LAYOUT_POOL : REMAT_LAYOUT_PLANNED;
                trainer_init(&t, L);
                uint64_t peak = run_layout(&t, c, policies[p], pcts[p], mode, &plan);
                if (mode == REMAT_LAYOUT_PLANNED) {
                    cr_assert(plan->layout);
                    cr_assert_eq(peak, plan->layout->arena_bytes, "%s L=%d", policies[p], L);
                } else {
                    cr_assert_null(plan->layout);
                }
                cr_assert_eq(peak, plan->peak_bytes, "%s L=%d %s", policies[p], L,
                             lay ? "pool" : "planned");
                cr_assert_eq(memcmp(t.dw, ref.dw, sizeof t.dw), 0, "%s L=%d %s: weight grads",
                             policies[p], L, lay ? "pool" : "planned");
                cr_assert_eq(memcmp(t.db, ref.db, sizeof t.db), 0, "%s L=%d", policies[p], L);
                cr_assert_eq(memcmp(t.d0, ref.d0, sizeof t.d0), 0, "%s L=%d", policies[p], L);
                remat_schedule_free(plan);
            }
        remat_chain_free(c);
    }
}

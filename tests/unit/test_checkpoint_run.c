/* tests/unit/test_checkpoint_run.c: the executor remat_run driving a small real trainer through the
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
    const char *fail_msg;  /* with fail_at: fail through remat_callback_fail with this message */
    float d0[64];
    /* Workspace checks (chain != NULL): every call fills all of the tmp it is owed, and counts
     * a NULL or (pool layout) too small tmp in tmp_bad. */
    const remat_chain *chain;
    remat_pool *pool;
    int tmp_bad, din0_null;
    float last_out[64]; /* a_L from the first forward of the last stage */
    int last_seen;
} trainer;

static void trainer_use_tmp(trainer *t, void *tmp, uint64_t bytes)
{
    if (!t->chain || bytes == 0)
        return;
    size_t have;
    if (!tmp || (t->pool && remat_pool_block_size(t->pool, tmp, &have) == REMAT_OK && have < bytes))
        t->tmp_bad++;
    else
        memset(tmp, 0xab, (size_t)bytes);
}

static float trainer_noise(trainer *t)
{
    t->rng = t->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((t->rng >> 40) & 0xff) * 1e-4f;
}

static remat_status tr_forward(void *ctx, int i, int option, const void *in, void *out, void *tmp)
{
    trainer *t = ctx;
    if (t->fail_at && ++t->forwards == t->fail_at)
        return t->fail_msg ? remat_callback_fail(REMAT_EDEVICE, "%s at forward %d", t->fail_msg,
                                                 t->forwards)
                           : REMAT_EDEVICE;
    if (t->chain) {
        const remat_stage *st = &t->chain->stages[i];
        trainer_use_tmp(t, tmp,
                        st->fwd_tmp_bytes +
                            (option >= 0 ? st->options[option].extra_fwd_tmp_bytes : 0));
    }
    const float *x = in;
    float *y = out;
    int n_in = t->dim[i], n = t->dim[i + 1];
    for (int j = 0; j < n; j++) {
        float pre = t->w[i][j % n_in] * x[j % n_in] + t->b[i][j] + trainer_noise(t);
        y[j] = tanhf(pre);
        if (option == -1)
            y[n + j] = pre;
    }
    if (i == t->L - 1 && !t->last_seen) {
        memcpy(t->last_out, y, (size_t)n * sizeof(float));
        t->last_seen = 1;
    }
    return REMAT_OK;
}

static remat_status tr_backward(void *ctx, int i, int option, const void *in, const void *saved,
                                const void *dout, void *din, void *tmp)
{
    trainer *t = ctx;
    if (t->chain) {
        const remat_stage *st = &t->chain->stages[i];
        trainer_use_tmp(t, tmp,
                        st->bwd_tmp_bytes +
                            (option >= 0 ? st->options[option].extra_bwd_tmp_bytes : 0));
    }
    const float *x = in, *s = saved, *dy = dout;
    float *dx = din;
    int n_in = t->dim[i], n = t->dim[i + 1];
    if (!dx)
        t->din0_null += i == 0;
    for (int j = 0; j < n; j++) {
        float y = option == -1 ? tanhf(s[n + j]) : s[j];
        float g = dy[j] * (1 - y * y);
        if (dx)
            dx[j % n_in] += g * t->w[i][j % n_in];
        t->dw[i][j % n_in] += g * x[j % n_in];
        t->db[i][j] += g;
    }
    if (i == 0 && dx)
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
    t->pool = pool;
    cr_assert_eq(remat_run(*plan, c, pool, NULL, &tr_callbacks, t), REMAT_OK, "%s: %s", policy,
                 remat_last_error());
    t->pool = NULL;
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

/* ==== the executor API for custom chains ====================================================== */

/* trainer_chain with workspace on the lean option: 8 + 4 (i mod 4) extra bytes in its forward,
 * 16 in its backward (the default keeps only the stage's own): less than the option saves, so
 * plans under a tight budget still choose it. */
static remat_chain *trainer_chain_workspace(const trainer *t)
{
    remat_chain *c = trainer_chain(t);
    for (int i = 0; i < c->n_stages; i++) {
        c->stages[i].options[0].extra_fwd_tmp_bytes = 8 + 4 * (uint64_t)(i % 4);
        c->stages[i].options[0].extra_bwd_tmp_bytes = 16;
    }
    return c;
}

Test(run, option_workspace_is_counted_by_the_simulator_as_stage_workspace)
{
    /* Oracle: an op list using option 0 at every F_all and no forward without grad must simulate
     * exactly as the same chain with the option's extra folded into the stage's own workspace. */
    static trainer t;
    trainer_init(&t, 9);
    remat_chain *c = trainer_chain_workspace(&t), *folded = trainer_chain(&t);
    for (int i = 0; i < c->n_stages; i++) {
        folded->stages[i].fwd_tmp_bytes += c->stages[i].options[0].extra_fwd_tmp_bytes;
        folded->stages[i].bwd_tmp_bytes += c->stages[i].options[0].extra_bwd_tmp_bytes;
    }
    remat_op ops[18];
    int L = c->n_stages, n = 0;
    for (int i = 0; i < L; i++)
        ops[n++] = (remat_op){REMAT_OP_F_ALL, i, 0};
    for (int i = L - 1; i >= 0; i--)
        ops[n++] = (remat_op){REMAT_OP_B, i, 0};
    remat_sim_result a, b, plain;
    cr_assert_eq(remat_simulate(c, ops, (size_t)n, &a), REMAT_OK);
    cr_assert_eq(remat_simulate(folded, ops, (size_t)n, &b), REMAT_OK);
    cr_assert(a.valid && b.valid);
    cr_assert_eq(a.peak_bytes, b.peak_bytes, "with extras %llu, folded %llu",
                 (unsigned long long)a.peak_bytes, (unsigned long long)b.peak_bytes);
    remat_chain *none = trainer_chain(&t);
    cr_assert_eq(remat_simulate(none, ops, (size_t)n, &plain), REMAT_OK);
    cr_assert_gt(a.peak_bytes, plain.peak_bytes, "the extras must cost memory");
    /* the chain file keeps them */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(remat_chain_write(c, f), REMAT_OK);
    cr_assert_eq(fclose(f), 0);
    remat_chain *back;
    cr_assert_eq(remat_chain_parse(buf, len, &back), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(back->stages[3].options[0].extra_fwd_tmp_bytes, 20);
    cr_assert_eq(back->stages[3].options[0].extra_bwd_tmp_bytes, 16);
    free(buf);
    remat_chain_free(back);
    remat_chain_free(none);
    remat_chain_free(folded);
    remat_chain_free(c);
}

Test(run, option_workspace_is_allocated_and_pool_peak_is_plan_peak_under_both_layouts)
{
    static trainer ref, t;
    int used_option = 0;
    const char *policies[] = {"optimal", "optimal", "store-all", "revolve"};
    int pcts[] = {100, 45, 100, 50};
    for (int L = 3; L <= RUN_MAXL; L += 7) {
        trainer_init(&ref, L);
        remat_chain *c = trainer_chain_workspace(&ref);
        remat_schedule *plan;
        run_layout(&ref, c, "store-all", 100, REMAT_LAYOUT_POOL, &plan);
        remat_schedule_free(plan);
        for (int p = 0; p < 4; p++)
            for (int lay = 0; lay < 2; lay++) {
                remat_layout_mode mode = lay ? REMAT_LAYOUT_POOL : REMAT_LAYOUT_PLANNED;
                trainer_init(&t, L);
                t.chain = c;
                uint64_t peak = run_layout(&t, c, policies[p], pcts[p], mode, &plan);
                for (size_t k = 0; k < plan->n_ops; k++)
                    used_option |= plan->ops[k].kind == REMAT_OP_F_ALL && plan->ops[k].option == 0;
                remat_sim_result sim;
                cr_assert_eq(remat_simulate(c, plan->ops, plan->n_ops, &sim), REMAT_OK);
                cr_assert_eq(t.tmp_bad, 0, "%s L=%d: a call got less workspace than it is owed",
                             policies[p], L);
                cr_assert_eq(peak, plan->peak_bytes, "%s L=%d %s: pool %llu, plan %llu",
                             policies[p], L, lay ? "pool" : "planned", (unsigned long long)peak,
                             (unsigned long long)plan->peak_bytes);
                if (mode == REMAT_LAYOUT_POOL)
                    cr_assert_eq(peak, sim.peak_bytes);
                cr_assert_eq(memcmp(t.dw, ref.dw, sizeof t.dw), 0, "%s L=%d %s", policies[p], L,
                             lay ? "pool" : "planned");
                remat_schedule_free(plan);
            }
        remat_chain_free(c);
    }
    cr_assert(used_option, "no plan used the option with workspace");
}

Test(run, a_callback_fails_with_its_own_message)
{
    static trainer t;
    trainer_init(&t, 6);
    remat_chain *c = trainer_chain(&t);
    remat_policy p;
    cr_assert_eq(remat_policy_parse("store-all", &p), REMAT_OK);
    remat_schedule *plan;
    cr_assert_eq(remat_plan(c, &p, UINT64_MAX, &plan), REMAT_OK);
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    t.fail_at = 3;
    t.fail_msg = "the card caught fire";
    cr_assert_eq(remat_run(plan, c, pool, NULL, &tr_callbacks, &t), REMAT_EDEVICE);
    const char *e = remat_last_error();
    cr_assert(strstr(e, "the card caught fire at forward 3"), "%s", e);
    cr_assert(strstr(e, "forward callback of stage 2"), "%s", e);
    /* a callback that fails without a message never shows an older, unrelated one */
    uint64_t dummy;
    cr_assert_neq(remat_parse_size("no such size", &dummy), REMAT_OK);
    t.forwards = 0;
    t.fail_msg = NULL;
    cr_assert_eq(remat_run(plan, c, pool, NULL, &tr_callbacks, &t), REMAT_EDEVICE);
    e = remat_last_error();
    cr_assert_null(strstr(e, "no such size"), "%s", e);
    cr_assert(strstr(e, "without a message"), "%s", e);
    remat_stat act;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0);
    remat_schedule_free(plan);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    remat_chain_free(c);
}

Test(run, an_input_without_gradient_is_neither_allocated_nor_computed)
{
    /* One stage, sizes multiples of 512 (planned = simulated): B 0 holds a_0, d_1, ā_1, d_0 and
     * its workspace, the peak; without d_0 the peak is input_bytes less. */
    remat_chain *c;
    cr_assert_eq(remat_chain_new(1, &c), REMAT_OK);
    c->input_bytes = 4096;
    c->stages[0] = (remat_stage){
        .fwd = 1, .bwd = 2, .out_bytes = 512, .saved_bytes = 1024, .bwd_tmp_bytes = 8192};
    remat_policy p;
    cr_assert_eq(remat_policy_parse("store-all", &p), REMAT_OK);
    remat_schedule *with, *without;
    cr_assert_eq(remat_plan(c, &p, UINT64_MAX, &with), REMAT_OK);
    cr_assert_eq(with->peak_bytes, 4096 + 512 + 1024 + 4096 + 8192);
    c->input_no_grad = 1;
    cr_assert_eq(remat_plan(c, &p, UINT64_MAX, &without), REMAT_OK);
    cr_assert_eq(without->peak_bytes, 4096 + 512 + 1024 + 8192);
    remat_schedule_free(with);
    remat_schedule_free(without);
    remat_chain_free(c);

    /* a real run: every policy and layout, din of B 0 is NULL, pool peak = plan peak, weight
     * gradients those of the run that computes d_0 */
    static trainer ref, t;
    int L = 12;
    trainer_init(&ref, L);
    c = trainer_chain(&ref);
    remat_schedule *plan;
    run_layout(&ref, c, "store-all", 100, REMAT_LAYOUT_POOL, &plan);
    remat_schedule_free(plan);
    c->input_no_grad = 1;
    const char *policies[] = {"store-all", "optimal", "sqrt", "revolve"};
    int pcts[] = {100, 40, 100, 50};
    for (int k = 0; k < 4; k++)
        for (int lay = 0; lay < 2; lay++) {
            trainer_init(&t, L);
            uint64_t peak = run_layout(&t, c, policies[k], pcts[k],
                                       lay ? REMAT_LAYOUT_POOL : REMAT_LAYOUT_PLANNED, &plan);
            cr_assert_eq(peak, plan->peak_bytes, "%s", policies[k]);
            cr_assert_eq(t.din0_null, 1, "%s: B 0 must get din = NULL once", policies[k]);
            cr_assert_eq(memcmp(t.dw, ref.dw, sizeof t.dw), 0, "%s", policies[k]);
            remat_schedule_free(plan);
        }
    /* the chain file keeps the flag */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(remat_chain_write(c, f), REMAT_OK);
    cr_assert_eq(fclose(f), 0);
    remat_chain *back;
    cr_assert_eq(remat_chain_parse(buf, len, &back), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(back->input_no_grad, 1);
    free(buf);
    remat_chain_free(back);
    cr_assert_eq(
        remat_chain_parse("{\"input_bytes\": 8, \"input_no_grad\": 1, \"stages\": "
                          "[{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, \"saved_bytes\": 4}]}",
                          strlen("{\"input_bytes\": 8, \"input_no_grad\": 1, \"stages\": "
                                 "[{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
                                 "\"saved_bytes\": 4}]}"),
                          &back),
        REMAT_EPARSE);
    cr_assert(strstr(remat_last_error(), "input_no_grad"), "%s", remat_last_error());
    remat_chain_free(c);
}

Test(run, run_output_gives_back_what_the_last_stage_produced)
{
    static trainer t;
    int L = 10;
    trainer_init(&t, L);
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
    float out[64];
    memset(out, 0, sizeof out);
    size_t bytes = (size_t)c->stages[L - 1].out_bytes;
    cr_assert_eq(remat_run_output(plan, c, pool, NULL, &tr_callbacks, &t, out, bytes), REMAT_OK,
                 "%s", remat_last_error());
    cr_assert(t.last_seen);
    cr_assert_eq(memcmp(out, t.last_out, bytes), 0);
    cr_assert_neq(out[0], 0.0f);
    /* more than a_L has is refused before anything runs */
    t.last_seen = 0;
    cr_assert_eq(remat_run_output(plan, c, pool, NULL, &tr_callbacks, &t, out, bytes + 4),
                 REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "output_bytes"), "%s", remat_last_error());
    cr_assert_eq(t.last_seen, 0);
    remat_schedule_free(plan);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    remat_chain_free(c);
}

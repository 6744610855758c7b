/* bench/bench_arena.c: the planned activation arena of issue 15.
 *  - layout/...: the arena of each policy's schedule on our GPT's real training chains (tiny,
 *    small, gpt2-124m at T=256 and T=1024; the chain of fit_chain_build_gpt, which
 * tests/unit/test_fit.c checks byte for byte against the trainer's) against the lower bound (the most
 * rounded bytes live at any op), and the time remat_schedule_plan_layout takes. Counter
 * arena_over_lb is arena / lower bound (target <= 1.02).
 *  - step/...: one training step of `small` through remat_run, planned arena against the caching
 *    pool (the same ops); the pair's ratio is the planned path's extra cost (target <= 1.01).
 *  - exec/...: the executor alone (callbacks that do nothing) on a 96-stage chain under optimal:
 *    what the bookkeeping of each path costs per step. */
#include "bench/bench.h"
#include "kernels/cpu/cpu.h"
#include "model/gpt.h"
#include "fit/fit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== layouts of the real training schedules ================================================ */

typedef struct {
    char name[96];
    const char *model;
    int B, T;
    const char *policy; /* remat_policy_parse's name */
    double pct;         /* budget: % of store-all's peak */
} layout_case;

static const char *const layout_models[][3] = {{"tiny", "8", "64"},
                                               {"small", "8", "128"},
                                               {"gpt2-124m", "1", "256"},
                                               {"gpt2-124m", "1", "1024"}};
static const struct {
    const char *policy;
    double pct;
} layout_policies[] = {{"store-all", 100}, {"sqrt", 400},           {"periodic:2", 400},
                       {"revolve", 50},    {"optimal", 70},         {"optimal", 50},
                       {"optimal", 30},    {"selective:recompute-gelu-ln", 400},
                       {"megatron-selective", 400}};
enum { N_MODELS = 4, N_POLICIES = sizeof layout_policies / sizeof layout_policies[0] };
static layout_case layout_cases[N_MODELS * N_POLICIES];

static remat_status layout_chain(const layout_case *c, remat_chain **out)
{
    remat_model_desc m;
    gpt_config cfg;
    if (remat_model_lookup(c->model, &m) != REMAT_OK || gpt_preset(c->model, &cfg) != REMAT_OK)
        return REMAT_EINVAL;
    uint64_t scratch = kern_cpu_attention_scratch_bytes(c->B, c->T, cfg.channels, cfg.heads);
    return fit_chain_build_gpt(&m, (uint64_t)c->B, (uint64_t)c->T, 4, scratch, out);
}

/* The case's schedule, laid out (remat_plan's planned default). */
static remat_status layout_schedule(const layout_case *c, const remat_chain *ch,
                                    remat_schedule **out)
{
    uint64_t all;
    remat_status s = remat_store_all_peak(ch, &all);
    if (s != REMAT_OK)
        return s;
    uint64_t budget = (uint64_t)((double)all * c->pct / 100);
    remat_policy p;
    if ((s = remat_policy_parse(c->policy, &p)) != REMAT_OK)
        return s;
    uint64_t min;
    if ((s = remat_min_budget(ch, &p, &min)) != REMAT_OK)
        return s;
    return remat_plan(ch, &p, budget < min ? min : budget, out);
}

static void bench_layout(remat_bench_state *st, void *arg)
{
    const layout_case *c = arg;
    remat_chain *ch = NULL;
    remat_schedule *s = NULL;
    if (layout_chain(c, &ch) != REMAT_OK || layout_schedule(c, ch, &s) != REMAT_OK) {
        fprintf(stderr, "%s: setup failed: %s\n", c->name, remat_last_error());
        while (remat_bench_running(st)) {
        }
        fit_chain_free(ch);
        return;
    }
    uint64_t arena = s->layout->arena_bytes, lb = s->layout->lower_bound_bytes;
    size_t n = s->layout->n_buffers;
    while (remat_bench_running(st))
        if (remat_schedule_plan_layout(s, ch) != REMAT_OK)
            fprintf(stderr, "%s: %s\n", c->name, remat_last_error());
    remat_bench_counter(st, "arena_over_lb", lb ? (double)arena / (double)lb : 0);
    remat_bench_counter(st, "arena_MiB", (double)arena / 1048576.0);
    remat_bench_counter(st, "lower_bound_MiB", (double)lb / 1048576.0);
    remat_bench_counter(st, "live_peak_MiB", (double)s->layout->live_peak_bytes / 1048576.0);
    remat_bench_counter(st, "buffers", (double)n);
    remat_schedule_free(s);
    fit_chain_free(ch);
}

/* ==== a training step: planned against the caching pool ===================================== */

typedef struct {
    const char *name;
    int planned;
} step_case;

static const step_case step_cases[] = {{"step/small-b8-t128/optimal-50/planned", 1},
                                       {"step/small-b8-t128/optimal-50/pool", 0}};

static void bench_step(remat_bench_state *st, void *arg)
{
    const step_case *c = arg;
    gpt_config cfg;
    remat_device *dev = NULL;
    remat_pool *pool = NULL;
    gpt_model *m = NULL;
    remat_chain *ch = NULL;
    remat_schedule *s = NULL;
    remat_policy p = {.kind = REMAT_POLICY_OPTIMAL};
    remat_layout_mode layout = c->planned ? REMAT_LAYOUT_PLANNED : REMAT_LAYOUT_POOL;
    int B = 8, T = 128;
    uint64_t all = 0;
    int *in = calloc((size_t)B * T, sizeof *in), *tg = calloc((size_t)B * T, sizeof *tg);
    float *params = NULL;
    int bad = !in || !tg || gpt_preset("small", &cfg) || remat_device_open("host", &dev) ||
              remat_pool_create(dev, NULL, &pool) || gpt_model_create(dev, pool, &cfg, B, T, &m) ||
              gpt_model_chain(m, &ch) || remat_store_all_peak(ch, &all) ||
              remat_plan_layout(ch, &p, layout, all / 2, &s);
    if (!bad && (params = malloc(gpt_model_layout(m)->total * sizeof(float)))) {
        gpt_init_params(&cfg, 1337, params);
        bad = gpt_model_set_params(m, params) != REMAT_OK;
    }
    for (int i = 0; !bad && i < B * T; i++) {
        in[i] = (i * 7 + 3) % cfg.vocab;
        tg[i] = (i * 7 + 10) % cfg.vocab;
    }
    float loss = 0;
    if (bad || gpt_model_forward_backward(m, s, ch, in, tg, &loss) != REMAT_OK)
        fprintf(stderr, "%s: setup failed: %s\n", c->name, remat_last_error());
    while (remat_bench_running(st))
        gpt_model_forward_backward(m, s, ch, in, tg, &loss);
    remat_pool_stats ps;
    if (remat_pool_stats_get(pool, &ps) == REMAT_OK)
        remat_bench_counter(st, "pool_reserved_MiB", (double)ps.reserved.peak / 1048576.0);
    remat_bench_counter(st, "act_peak_MiB", s ? (double)s->peak_bytes / 1048576.0 : 0);
    remat_schedule_free(s);
    remat_chain_free(ch);
    gpt_model_destroy(m);
    remat_pool_destroy(pool);
    remat_device_close(dev);
    free(params), free(in), free(tg);
}

/* ==== the executor alone ==================================================================== */

static remat_status nop_forward(void *ctx, int i, int o, const void *in, void *out, void *tmp)
{
    (void)ctx, (void)i, (void)o, (void)in, (void)out, (void)tmp;
    return REMAT_OK;
}
static remat_status nop_backward(void *ctx, int i, int o, const void *in, const void *saved,
                                 const void *dout, void *din, void *tmp)
{
    (void)ctx, (void)i, (void)o, (void)in, (void)saved, (void)dout, (void)din, (void)tmp;
    return REMAT_OK;
}
static remat_status nop_buf(void *ctx, void *p)
{
    (void)ctx, (void)p;
    return REMAT_OK;
}
static const remat_callbacks nop_callbacks = {
    .forward = nop_forward, .backward = nop_backward, .input = nop_buf, .seed = nop_buf};

static const step_case exec_cases[] = {{"exec/L96-optimal-40/planned", 1},
                                       {"exec/L96-optimal-40/pool", 0}};

static void bench_exec(remat_bench_state *st, void *arg)
{
    const step_case *c = arg;
    remat_chain *ch = NULL;
    remat_device *dev = NULL;
    remat_pool *pool = NULL;
    remat_schedule *s = NULL;
    remat_policy p = {.kind = REMAT_POLICY_OPTIMAL};
    remat_layout_mode layout = c->planned ? REMAT_LAYOUT_PLANNED : REMAT_LAYOUT_POOL;
    uint64_t all = 0;
    int bad = remat_chain_new(96, &ch) != REMAT_OK;
    for (int i = 0; !bad && i < 96; i++) {
        remat_stage *g = &ch->stages[i];
        *g = (remat_stage){.fwd = 1,
                           .bwd = 2,
                           .out_bytes = 1 << 20,
                           .saved_bytes = 5 << 20,
                           .fwd_tmp_bytes = (uint64_t)(i % 3) << 19,
                           .bwd_tmp_bytes = 1 << 20};
    }
    if (!bad)
        ch->input_bytes = 1 << 20;
    bad = bad || remat_store_all_peak(ch, &all) ||
          remat_plan_layout(ch, &p, layout, all * 2 / 5, &s) ||
          remat_device_open("sim:64GiB", &dev) || remat_pool_create(dev, NULL, &pool) ||
          remat_run(s, ch, pool, NULL, &nop_callbacks, NULL);
    if (bad)
        fprintf(stderr, "%s: setup failed: %s\n", c->name, remat_last_error());
    while (remat_bench_running(st))
        (void)!remat_run(s, ch, pool, NULL, &nop_callbacks, NULL); /* checked once above */
    remat_bench_counter(st, "ops", s ? (double)s->n_ops : 0);
    remat_schedule_free(s);
    remat_chain_free(ch);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

int main(int argc, char **argv)
{
    for (int m = 0; m < N_MODELS; m++)
        for (int p = 0; p < N_POLICIES; p++) {
            layout_case *c = &layout_cases[m * N_POLICIES + p];
            c->model = layout_models[m][0];
            c->B = atoi(layout_models[m][1]);
            c->T = atoi(layout_models[m][2]);
            c->policy = layout_policies[p].policy;
            c->pct = layout_policies[p].pct;
            snprintf(c->name, sizeof c->name, "layout/%s-b%d-t%d/%s-%.0f", c->model, c->B, c->T,
                     c->policy, c->pct);
            remat_bench_register(c->name, bench_layout, c);
        }
    for (size_t i = 0; i < 2; i++)
        remat_bench_register(step_cases[i].name, bench_step, (void *)&step_cases[i]);
    for (size_t i = 0; i < 2; i++)
        remat_bench_register(exec_cases[i].name, bench_exec, (void *)&exec_cases[i]);
    remat_bench_compare(step_cases[0].name, step_cases[1].name, 1.01);
    remat_bench_compare(exec_cases[0].name, exec_cases[1].name, 0);
    return remat_bench_main(argc, argv);
}

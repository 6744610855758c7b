/* bench/bench_train.c: tokens/s of one GPT-2 training step (forward, backward, AdamW) on the host,
 * on `small`, on gpt2-124m's geometry at a short sequence and at T=1024, under store-all, sqrt and
 * optimal at 50% of store-all's activation peak (planned on the FLOP-count chain); prints each
 * policy's step time against store-all's. The 5% target is issue 5's: optimal at 50% with the
 * gpt2-124m geometry at T=1024. At short sequences the attention matrices are a small share of
 * the activations and 50% needs whole blocks recomputed: reported, no target.
 * profile/...: the stage profile's repeatability (two profiles of the same model back to back:
 * the largest relative difference of any stage's fwd, bwd or option bwd, max_stage_diff the
 * median over the repetition's pairs and worst_pair_diff its worst pair; issue 13's target is
 * 10% on a quiet machine) and its cost in store-all steps (issue 15's target: at most 5). */
#include "bench/bench.h"
#include "model/rig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double now_s(void)
{
    return gpt_now_ms() / 1e3;
}

typedef struct {
    const char *name, *model, *policy;
    int B, T;
    double budget_pct;
} train_case;

static const train_case cases[] = {
    {"train/small-b8-t128/store-all", "small", "store-all", 8, 128, 100},
    {"train/small-b8-t128/sqrt", "small", "sqrt", 8, 128, 400},
    {"train/small-b8-t128/optimal-50", "small", "optimal", 8, 128, 50},
    {"train/gpt2-124m-b1-t64/store-all", "gpt2-124m", "store-all", 1, 64, 100},
    {"train/gpt2-124m-b1-t64/sqrt", "gpt2-124m", "sqrt", 1, 64, 400},
    {"train/gpt2-124m-b1-t64/optimal-50", "gpt2-124m", "optimal", 1, 64, 50},
    {"train/gpt2-124m-b1-t1024/store-all", "gpt2-124m", "store-all", 1, 1024, 100},
    {"train/gpt2-124m-b1-t1024/optimal-50", "gpt2-124m", "optimal", 1, 1024, 50},
};

typedef struct {
    gpt_rig rig;
    remat_schedule *sched;
} train_rig;

static void rig_close(train_rig *r)
{
    remat_schedule_free(r->sched);
    gpt_rig_close(&r->rig);
}

/* Builds the model, the analytic chain and the plan; returns 0 on success. */
static int rig_open(train_rig *r, const train_case *c)
{
    memset(r, 0, sizeof *r);
    gpt_rig_spec spec = {.B = c->B, .T = c->T, .seed = 1337};
    remat_policy pol;
    uint64_t all;
    if (gpt_preset(c->model, &spec.cfg) || gpt_rig_open(&r->rig, &spec) ||
        remat_policy_parse(c->policy, &pol) || remat_store_all_peak(r->rig.chain, &all) ||
        remat_plan(r->rig.chain, &pol, (uint64_t)(all * c->budget_pct / 100), &r->sched))
        return -1;
    gpt_rng g = {7};
    for (size_t i = 0; i < r->rig.tokens; i++) {
        r->rig.inputs[i] = (int)(gpt_rng_next(&g) % (uint64_t)spec.cfg.vocab);
        r->rig.targets[i] = (int)(gpt_rng_next(&g) % (uint64_t)spec.cfg.vocab);
    }
    return 0;
}

static void bench_train_step(remat_bench_state *st, void *arg)
{
    const train_case *c = arg;
    train_rig r;
    if (rig_open(&r, c) != 0) {
        fprintf(stderr, "%s: setup failed: %s\n", c->name, remat_last_error());
        rig_close(&r);
        while (remat_bench_running(st)) {
        }
        return;
    }
    gpt_adamw hp = gpt_adamw_defaults();
    int t = 0;
    float loss = 0;
    /* One untimed step first: each repetition builds a fresh rig, and the first step pays the
     * page faults of every new buffer (parameters, gradients, AdamW states, activations), which
     * at one or two timed steps a repetition would dominate the comparison. */
    if (gpt_model_forward_backward(r.rig.model, r.sched, r.rig.chain, r.rig.inputs, r.rig.targets, &loss) ||
        gpt_model_update(r.rig.model, &hp, ++t))
        fprintf(stderr, "%s: step failed: %s\n", c->name, remat_last_error());
    int warm = t;
    double t0 = now_s();
    while (remat_bench_running(st)) {
        if (gpt_model_forward_backward(r.rig.model, r.sched, r.rig.chain, r.rig.inputs, r.rig.targets, &loss) ||
            gpt_model_update(r.rig.model, &hp, ++t))
            fprintf(stderr, "%s: step failed: %s\n", c->name, remat_last_error());
    }
    double wall = now_s() - t0;
    t -= warm;
    remat_bench_set_items(st, (int64_t)t * c->B * c->T);
    /* items_per_second counts the calling thread's CPU time; this is tokens per wall second. */
    remat_bench_counter(st, "tokens_per_wall_s", wall > 0 ? (double)t * c->B * c->T / wall : 0);
    remat_bench_counter(st, "act_peak_MiB", (double)r.sched->peak_bytes / 1048576.0);
    remat_bench_counter(st, "predicted_overhead", r.sched->overhead);
    rig_close(&r);
}

/* The largest relative difference between two profiles' times, over every stage and option. */
static double profile_diff(const remat_chain *a, const remat_chain *b)
{
    double worst = 0;
    for (int i = 0; i < a->n_stages; i++) {
        const remat_stage *x = &a->stages[i], *y = &b->stages[i];
        double v[2 + GPT_N_BLOCK_OPTIONS][2] = {{x->fwd, y->fwd}, {x->bwd, y->bwd}};
        int n = 2;
        for (int o = 0; o < x->n_options && o < GPT_N_BLOCK_OPTIONS; o++, n++)
            v[n][0] = x->options[o].bwd, v[n][1] = y->options[o].bwd;
        for (int k = 0; k < n; k++) {
            double lo = v[k][0] < v[k][1] ? v[k][0] : v[k][1];
            double d =
                lo > 0 ? (v[k][0] > v[k][1] ? v[k][0] - v[k][1] : v[k][1] - v[k][0]) / lo : 0;
            worst = d > worst ? d : worst;
        }
    }
    return worst;
}

static void bench_profile(remat_bench_state *st, void *arg)
{
    const train_case *c = arg;
    train_rig r;
    float loss = 0;
    if (rig_open(&r, c) != 0 ||
        gpt_model_forward_backward(r.rig.model, r.sched, r.rig.chain, r.rig.inputs, r.rig.targets, &loss)) {
        fprintf(stderr, "%s: setup failed: %s\n", c->name, remat_last_error());
        rig_close(&r);
        while (remat_bench_running(st)) {
        }
        return;
    }
    double worst = 0, cost = 0, pair[256];
    int n = 0;
    while (remat_bench_running(st)) {
        remat_chain *a = NULL, *b = NULL;
        gpt_profile_info ia, ib;
        double t0 = now_s();
        if (gpt_model_forward_backward(r.rig.model, r.sched, r.rig.chain, r.rig.inputs, r.rig.targets, &loss) ||
            gpt_model_profile(r.rig.model, r.rig.inputs, 3, &a, &ia) ||
            gpt_model_profile(r.rig.model, r.rig.inputs, 3, &b, &ib)) {
            fprintf(stderr, "%s: profile failed: %s\n", c->name, remat_last_error());
        } else {
            double step = now_s() - t0 - (ia.elapsed_ms + ib.elapsed_ms) / 1e3,
                   d = profile_diff(a, b);
            worst = d > worst ? d : worst;
            cost += step > 0 ? ia.elapsed_ms / 1e3 / step : 0;
            if (n < (int)(sizeof pair / sizeof pair[0]))
                pair[n] = d;
            n++;
        }
        remat_chain_free(a);
        remat_chain_free(b);
    }
    /* issue 13's measure is one pair of profiles: the median pair's largest difference; the worst
     * pair of the repetition beside it */
    int kept = n < (int)(sizeof pair / sizeof pair[0]) ? n : (int)(sizeof pair / sizeof pair[0]);
    remat_bench_counter(st, "max_stage_diff", kept ? gpt_median(pair, (size_t)kept) : 0);
    remat_bench_counter(st, "worst_pair_diff", worst);
    remat_bench_counter(st, "profile_cost_steps", n ? cost / n : 0);
    rig_close(&r);
}

static const train_case profile_cases[] = {
    {"profile/small-b4-t128", "small", "store-all", 4, 128, 100},
    {"profile/gpt2-124m-b1-t256", "gpt2-124m", "store-all", 1, 256, 100},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof profile_cases / sizeof profile_cases[0]; i++)
        remat_bench_register(profile_cases[i].name, bench_profile, (void *)&profile_cases[i]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        remat_bench_register(cases[i].name, bench_train_step, (void *)&cases[i]);
    remat_bench_compare("train/small-b8-t128/sqrt", "train/small-b8-t128/store-all", 0);
    remat_bench_compare("train/small-b8-t128/optimal-50", "train/small-b8-t128/store-all", 0);
    remat_bench_compare("train/gpt2-124m-b1-t64/sqrt", "train/gpt2-124m-b1-t64/store-all", 0);
    remat_bench_compare("train/gpt2-124m-b1-t64/optimal-50", "train/gpt2-124m-b1-t64/store-all", 0);
    remat_bench_compare("train/gpt2-124m-b1-t1024/optimal-50",
                        "train/gpt2-124m-b1-t1024/store-all", 1.05);
    return remat_bench_main(argc, argv);
}

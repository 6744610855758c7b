/* tests/unit/test_bf16.c: bf16 mixed-precision training: the first step against the PyTorch fixture,
 * bitwise identity under every checkpoint policy and save option, the byte counts against the
 * planner's (`remat fit --dtype bf16`), master weights and stochastic rounding, and the CLI. */
#include "kernels/kernels_bf16.h"
#include "model/gpt.h"
#include "fit/fit.h"
#include "tests/common/cli_run.h"
#include "tests/common/model_rig.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== Helpers ============================================================================== */

static gpt_precision bf16_prec(int master, uint64_t seed)
{
    gpt_precision p = gpt_precision_default();
    p.dtype = GPT_BF16;
    p.master_weights = master;
    p.seed = seed;
    return p;
}

static void random_batch(gpt_rng *g, int n, int vocab, int *inputs, int *targets)
{
    for (int i = 0; i < n; i++) {
        inputs[i] = (int)(gpt_rng_next(g) % (uint64_t)vocab);
        targets[i] = (int)(gpt_rng_next(g) % (uint64_t)vocab);
    }
}

/* ==== Accuracy against the PyTorch fixture ================================================= */

/* The fixture (tests/fixtures/gpt_tiny_*, PyTorch in float32, which the fp32 trainer matches to
 * 1e-5) is the reference: bf16's first loss within 1e-2 relative, its gradients within bf16's
 * precision, and ten AdamW steps on the batch tracking torch's losses. */
Test(bf16, first_step_and_adamw_match_the_pytorch_fixture)
{
    FILE *f = fopen(rig_fixture("gpt_tiny_ref.txt"), "r");
    cr_assert_not_null(f);
    char line[256];
    int B, T;
    double lr, first, losses[10];
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_eq(fscanf(f, "%d %d %lf %lf", &B, &T, &lr, &first), 4);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(fscanf(f, "%lf", &losses[i]), 1);
    fclose(f);
    gpt_config cfg, gcfg;
    float *w = NULL, *gref = NULL;
    cr_assert_eq(gpt_weights_read(rig_fixture("gpt_tiny_weights.bin"), &cfg, &w), REMAT_OK);
    cr_assert_eq(gpt_weights_read(rig_fixture("gpt_tiny_grads.bin"), &gcfg, &gref), REMAT_OK);
    gpt_tokens tok;
    cr_assert_eq(gpt_tokens_load(rig_fixture("gpt_tiny_batch.bin"), &tok), REMAT_OK);
    int n = B * T;
    cr_assert_eq(tok.n, (size_t)n + 1);

    rig r;
    gpt_precision prec = bf16_prec(1, 0);
    rig_open(&r, &cfg, B, T, &prec);
    cr_assert_eq(gpt_model_set_params(r.model, w), REMAT_OK, "%s", remat_last_error());
    remat_schedule *s = rig_plan(r.chain, "store-all", 100);
    float loss;
    cr_assert_eq(gpt_model_forward_backward(r.model, s, r.chain, tok.tokens, tok.tokens + 1, &loss),
                 REMAT_OK, "%s", remat_last_error());
    double lerr = fabs(loss - first) / first;
    printf("bf16 fixture: loss %.7f, torch %.7f, relative error %.2e\n", loss, first, lerr);
    cr_expect_leq(lerr, 1e-2, "bf16 loss %.7f vs torch %.7f", loss, first);
    cr_expect_gt(lerr, 0, "a bf16 loss equal to fp32's to the bit: bf16 did not run");

    const gpt_param_layout *lay = gpt_model_layout(r.model);
    float *g = malloc(lay->total * sizeof(float));
    cr_assert_eq(gpt_model_get_grads(r.model, g), REMAT_OK);
    for (int i = 0; i < GPT_N_PARAMS; i++) {
        double e = rig_rel_l2(g + lay->offset[i], gref + lay->offset[i], lay->count[i]);
        printf("bf16 fixture: d%-9s relative error %.2e\n", gpt_param_names[i], e);
        cr_expect_leq(e, 5e-2, "gradient of %s: relative error %.3e", gpt_param_names[i], e);
    }
    gpt_adamw hp = gpt_adamw_defaults();
    hp.lr = (float)lr;
    for (int t = 1; t <= 10; t++) {
        cr_assert_eq(
            gpt_model_forward_backward(r.model, s, r.chain, tok.tokens, tok.tokens + 1, &loss),
            REMAT_OK, "%s", remat_last_error());
        double e = fabs(loss - losses[t - 1]) / losses[t - 1];
        cr_expect_leq(e, 1e-2, "step %d: bf16 loss %.7f vs torch %.7f", t, loss, losses[t - 1]);
        cr_assert_eq(gpt_model_update(r.model, &hp, t), REMAT_OK, "%s", remat_last_error());
    }
    remat_schedule_free(s);
    rig_close(&r);
    gpt_tokens_free(&tok);
    free(g), free(w), free(gref);
}

/* ==== Bitwise identity under every policy and save option ================================== */

/* Makes block option `only` (or none, -1) the one a planner picks (as test_model.c does). */
static void chain_favour_option(remat_chain *c, const remat_chain *orig, int only)
{
    for (int i = 0; i < c->n_stages; i++)
        for (int o = 0; o < c->stages[i].n_options; o++) {
            remat_stage_option *op = &c->stages[i].options[o];
            *op = orig->stages[i].options[o];
            if (o == only) {
                op->bwd = c->stages[i].bwd;
            } else {
                op->saved_bytes = c->stages[i].saved_bytes;
                op->bwd = 1e9;
            }
        }
}

/* One step under s: loss and gradients bit for bit those of store-all, the pool's activation
 * peak exactly the planned arena. */
static void check_step(rig *r, const remat_schedule *s, const remat_chain *c, const char *what,
                       const int *in, const int *tg, float loss_ref, const float *g_ref, float *g)
{
    remat_pool_stats before, after;
    cr_assert_eq(remat_pool_reset_peaks(r->pool), REMAT_OK);
    cr_assert_eq(remat_pool_stats_get(r->pool, &before), REMAT_OK);
    float loss;
    cr_assert_eq(gpt_model_forward_backward(r->model, s, c, in, tg, &loss), REMAT_OK, "%s: %s",
                 what, remat_last_error());
    cr_assert_eq(remat_pool_stats_get(r->pool, &after), REMAT_OK);
    uint64_t measured = after.allocated.peak - before.allocated.current;
    cr_expect_eq(measured, s->peak_bytes, "%s: measured activation peak %llu vs planned %llu", what,
                 (unsigned long long)measured, (unsigned long long)s->peak_bytes);
    cr_expect_eq(memcmp(&loss, &loss_ref, sizeof loss), 0, "%s: loss %.9g vs store-all %.9g", what,
                 loss, loss_ref);
    const gpt_param_layout *lay = gpt_model_layout(r->model);
    cr_assert_eq(gpt_model_get_grads(r->model, g), REMAT_OK);
    cr_expect_eq(memcmp(g, g_ref, lay->total * sizeof(float)), 0,
                 "%s: bf16 gradients differ from store-all's", what);
}

Test(bf16, bitwise_identical_under_every_policy_and_option)
{
    gpt_config cfg = {.layers = 6, .channels = 32, .heads = 2, .vocab = 64, .max_seq = 16};
    cr_assert_eq(gpt_config_check(&cfg), REMAT_OK);
    int B = 2, T = 16, n = B * T;
    rig r;
    gpt_precision prec = bf16_prec(1, 0);
    rig_open(&r, &cfg, B, T, &prec);
    const gpt_param_layout *lay = gpt_model_layout(r.model);
    float *w = malloc(lay->total * sizeof(float)), *g_ref = malloc(lay->total * sizeof(float)),
          *g = malloc(lay->total * sizeof(float));
    gpt_init_params(&cfg, 7, w);
    cr_assert_eq(gpt_model_set_params(r.model, w), REMAT_OK);
    int in[32], tg[32];
    gpt_rng rng = {99};
    random_batch(&rng, n, cfg.vocab, in, tg);
    remat_schedule *s = rig_plan(r.chain, "store-all", 100);
    float loss_ref;
    cr_assert_eq(gpt_model_forward_backward(r.model, s, r.chain, in, tg, &loss_ref), REMAT_OK);
    cr_assert_eq(gpt_model_get_grads(r.model, g_ref), REMAT_OK);
    check_step(&r, s, r.chain, "store-all", in, tg, loss_ref, g_ref, g);
    remat_schedule_free(s);

    remat_chain *orig = NULL;
    cr_assert_eq(gpt_model_chain(r.model, &orig), REMAT_OK);
    for (int opt = -1; opt < GPT_N_BLOCK_OPTIONS; opt++) {
        const char *oname = opt < 0 ? "default" : gpt_block_option_names[opt];
        chain_favour_option(r.chain, orig, opt);
        char what[96];
        if (opt >= 0) {
            snprintf(what, sizeof what, "selective:%s", oname);
            s = rig_plan(r.chain, what, 400);
            check_step(&r, s, r.chain, what, in, tg, loss_ref, g_ref, g);
            remat_schedule_free(s);
        }
        s = rig_plan(r.chain, "sqrt", 400);
        snprintf(what, sizeof what, "sqrt/%s", oname);
        check_step(&r, s, r.chain, what, in, tg, loss_ref, g_ref, g);
        remat_schedule_free(s);
        static const double pcts[] = {40, 60, 80};
        for (int p = 0; p < 3; p++) {
            s = rig_plan(r.chain, "optimal", pcts[p]);
            snprintf(what, sizeof what, "optimal-%.0f%%/%s", pcts[p], oname);
            check_step(&r, s, r.chain, what, in, tg, loss_ref, g_ref, g);
            remat_schedule_free(s);
        }
    }
    remat_chain_free(orig);
    rig_close(&r);
    free(w), free(g_ref), free(g);
}

/* ==== Memory: the trainer's bytes are the planner's ======================================== */

/* The planner's bf16 chain for our GPT (act_bytes 2, with the CPU bf16 attention kernel's
 * scratch) carries exactly the trainer's byte counts, activations are half of fp32's, and the
 * trainer's persistent pool bytes are `remat fit --dtype bf16`'s states (2 + 2 + 12 bytes a
 * parameter) plus the targets, to the byte. */
static void check_against_planner(const char *name, int B, int T)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset(name, &cfg), REMAT_OK);
    cr_assert_eq(gpt_config_check(&cfg), REMAT_OK);
    rig r;
    gpt_precision prec = bf16_prec(1, 0);
    rig_open(&r, &cfg, B, T, &prec);
    remat_model_desc m;
    cr_assert_eq(remat_model_lookup(name, &m), REMAT_OK);
    uint64_t scratch = kern_cpu_bf16.attention_scratch_bytes(B, T, cfg.channels, cfg.heads);
    remat_chain *got = NULL;
    cr_assert_eq(fit_chain_build_gpt(&m, (uint64_t)B, (uint64_t)T, 2, scratch, &got), REMAT_OK);
    const remat_chain *want = r.chain;
    cr_assert_eq(got->input_bytes, want->input_bytes);
    for (int i = 0; i < want->n_stages; i++) {
        const remat_stage *g = &got->stages[i], *w = &want->stages[i];
        cr_expect_eq(g->out_bytes, w->out_bytes, "%s stage %d", name, i);
        cr_expect_eq(g->saved_bytes, w->saved_bytes, "%s stage %d", name, i);
        cr_expect_eq(g->fwd_tmp_bytes, w->fwd_tmp_bytes, "%s stage %d", name, i);
        cr_expect_eq(g->bwd_tmp_bytes, w->bwd_tmp_bytes, "%s stage %d", name, i);
        for (int k = 0; k < w->n_options; k++)
            cr_expect_eq(g->options[k].saved_bytes, w->options[k].saved_bytes, "%s %d %s", name, i,
                         w->options[k].name);
    }
    /* a block's activations are half of fp32's: a_{l+1} exactly, ā within the 512 rounding */
    rig f32;
    rig_open(&f32, &cfg, B, T, NULL);
    cr_expect_eq(2 * want->stages[1].out_bytes, f32.chain->stages[1].out_bytes);
    cr_expect_lt(want->stages[1].saved_bytes, f32.chain->stages[1].saved_bytes * 51 / 100);
    rig_close(&f32);

    remat_fit_request req;
    remat_fit_request_init(&req);
    req.model = m;
    req.card_bytes = 1ull << 40;
    req.batch = B;
    req.seq = T;
    req.dtype = REMAT_DTYPE_BF16;
    remat_fit_result res;
    cr_assert_eq(remat_fit(&req, &res), REMAT_OK, "%s", remat_last_error());
    uint64_t states = res.per_gpu.weights + res.per_gpu.gradients + res.per_gpu.optimizer;
    uint64_t psi = gpt_model_layout(r.model)->total;
    cr_expect_eq(states, 16 * psi, "%s: fit's bf16 states %llu, 16 x %llu parameters", name,
                 (unsigned long long)states, (unsigned long long)psi);
    cr_expect_eq(states + fit_chain_extra_bytes(&m, (uint64_t)B, (uint64_t)T),
                 gpt_model_persistent_bytes(r.model), "%s: fit %llu + targets vs trainer %llu",
                 name, (unsigned long long)states,
                 (unsigned long long)gpt_model_persistent_bytes(r.model));
    /* the estimate (what train checks before allocating) is the same */
    uint64_t est = 0;
    remat_chain *ec = NULL;
    cr_assert_eq(gpt_model_estimate_precision(r.dev, &cfg, B, T, &prec, &est, &ec), REMAT_OK);
    cr_expect_eq(est, gpt_model_persistent_bytes(r.model));
    cr_expect_eq(ec->stages[1].saved_bytes, want->stages[1].saved_bytes);
    remat_chain_free(ec);
    fit_chain_free(got);
    rig_close(&r);
}

Test(bf16, trainer_bytes_are_the_planners)
{
    check_against_planner("tiny", 4, 64);
    check_against_planner("small", 2, 32);
    check_against_planner("gpt2-124m", 1, 64);
}

static uint64_t round512(uint64_t v)
{
    return (v + 511) / 512 * 512;
}

/* --master-weights off: the trainer allocates bf16 weights and gradients and fp32 AdamW m and v,
 * no master copy (model/trainer.c gpt_model_buffers); `remat fit --dtype bf16 --master-weights
 * off` plans 2 + 2 + 8 bytes a parameter, and its states, each buffer rounded to the pool's 512 B
 * as the planner's reserve counts them (weights, gradients, then m and v as two equal arrays),
 * plus the targets, are the trainer's persistent pool bytes to the byte. Master weights on adds
 * exactly one fp32 array to both. */
static void check_no_master_against_planner(const char *name, int B, int T)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset(name, &cfg), REMAT_OK);
    cr_assert_eq(gpt_config_check(&cfg), REMAT_OK);
    gpt_precision off = bf16_prec(0, 7), on = bf16_prec(1, 0);
    rig r, with;
    rig_open(&r, &cfg, B, T, &off);
    rig_open(&with, &cfg, B, T, &on);
    remat_model_desc m;
    cr_assert_eq(remat_model_lookup(name, &m), REMAT_OK);
    remat_fit_request req;
    remat_fit_request_init(&req);
    req.model = m;
    req.card_bytes = 1ull << 40;
    req.batch = B;
    req.seq = T;
    req.dtype = REMAT_DTYPE_BF16;
    req.no_master_weights = 1;
    remat_fit_result res;
    cr_assert_eq(remat_fit(&req, &res), REMAT_OK, "%s", remat_last_error());
    uint64_t psi = gpt_model_layout(r.model)->total;
    cr_expect_eq(res.per_gpu.weights, 2 * psi, "%s", name);
    cr_expect_eq(res.per_gpu.gradients, 2 * psi, "%s", name);
    cr_expect_eq(res.per_gpu.optimizer, 8 * psi, "%s", name);
    uint64_t extra = fit_chain_extra_bytes(&m, (uint64_t)B, (uint64_t)T);
    uint64_t planned = round512(res.per_gpu.weights) + round512(res.per_gpu.gradients) +
                       2 * round512(res.per_gpu.optimizer / 2) + extra;
    uint64_t trainer = gpt_model_persistent_bytes(r.model);
    cr_expect_eq(planned, trainer, "%s: planned %llu, trainer %llu", name,
                 (unsigned long long)planned, (unsigned long long)trainer);
    cr_expect_eq(gpt_model_persistent_bytes(with.model) - trainer, round512(4 * psi), "%s", name);
    req.no_master_weights = 0;
    remat_fit_result res_on;
    cr_assert_eq(remat_fit(&req, &res_on), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(res_on.per_gpu.optimizer - res.per_gpu.optimizer, 4 * psi, "%s", name);
    /* the estimate (what train checks before allocating) agrees */
    uint64_t est = 0;
    remat_chain *ec = NULL;
    cr_assert_eq(gpt_model_estimate_precision(r.dev, &cfg, B, T, &off, &est, &ec), REMAT_OK);
    cr_expect_eq(est, trainer, "%s", name);
    remat_chain_free(ec);
    rig_close(&with);
    rig_close(&r);
}

Test(bf16, no_master_trainer_bytes_are_the_planners)
{
    check_no_master_against_planner("tiny", 4, 64);
    check_no_master_against_planner("small", 2, 32);
    check_no_master_against_planner("gpt2-124m", 1, 64);
}

/* ==== Master weights and stochastic rounding =============================================== */

static void train_steps(const gpt_config *cfg, const gpt_precision *prec, int steps, float *out,
                        uint64_t *persistent)
{
    int B = 2, T = 8, n = B * T;
    rig r;
    rig_open(&r, cfg, B, T, prec);
    const gpt_param_layout *lay = gpt_model_layout(r.model);
    float *w = malloc(lay->total * sizeof(float));
    gpt_init_params(cfg, 3, w);
    cr_assert_eq(gpt_model_set_params(r.model, w), REMAT_OK);
    remat_schedule *s = rig_plan(r.chain, "store-all", 100);
    gpt_adamw hp = gpt_adamw_defaults();
    hp.lr = 1e-2f;
    gpt_rng rng = {5};
    int in[16], tg[16];
    for (int t = 1; t <= steps; t++) {
        random_batch(&rng, n, cfg->vocab, in, tg);
        float loss;
        cr_assert_eq(gpt_model_forward_backward(r.model, s, r.chain, in, tg, &loss), REMAT_OK);
        cr_assert_eq(gpt_model_update(r.model, &hp, t), REMAT_OK);
    }
    cr_assert_eq(gpt_model_get_params(r.model, out), REMAT_OK);
    *persistent = gpt_model_persistent_bytes(r.model);
    remat_schedule_free(s);
    rig_close(&r);
    free(w);
}

static int bf16_representable(float x)
{
    return kern_bf16_to_f32(kern_f32_to_bf16(x)) == x;
}

Test(bf16, master_weights_and_stochastic_rounding)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset("tiny", &cfg), REMAT_OK);
    cr_assert_eq(gpt_config_check(&cfg), REMAT_OK);
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    size_t bytes = lay.total * sizeof(float), targets = 512; /* B T = 16 ints, one 512 block */
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    uint64_t pa, pb, pc;

    /* With master weights: the weights read back are the fp32 master copy (16 bytes a
     * parameter), not their bf16 rounding. */
    gpt_precision master = bf16_prec(1, 0);
    train_steps(&cfg, &master, 3, a, &pa);
    size_t not_bf16 = 0;
    for (size_t i = 0; i < lay.total; i++)
        not_bf16 += !bf16_representable(a[i]);
    cr_expect_gt(not_bf16, lay.total / 2, "only %zu of %zu master weights are not bf16 values",
                 not_bf16, lay.total);
    cr_expect_eq(pa, 16 * lay.total + targets);

    /* Without: 12 bytes a parameter, bf16 weights, a pure function of the seed. */
    gpt_precision sr = bf16_prec(0, 11), sr2 = bf16_prec(0, 12);
    train_steps(&cfg, &sr, 3, b, &pb);
    train_steps(&cfg, &sr, 3, c, &pc);
    cr_expect_eq(pb, 12 * lay.total + targets);
    cr_expect(memcmp(b, c, bytes) == 0, "two runs with one seed differ");
    for (size_t i = 0; i < lay.total; i++)
        cr_assert(bf16_representable(b[i]), "weight %zu = %g is not a bf16 value", i, (double)b[i]);
    train_steps(&cfg, &sr2, 3, c, &pc);
    cr_expect(memcmp(b, c, bytes) != 0, "another seed gives the same weights");
    /* and it trains the same model to within bf16's noise */
    cr_expect_lt(rig_rel_l2(b, a, lay.total), 2e-2,
                 "stochastic rounding strays %.3g from the master", rig_rel_l2(b, a, lay.total));
    free(a), free(b), free(c);
}

/* ==== The CLI ============================================================================== */

static double json_num(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(text, pat);
    cr_assert_not_null(p, "no %s in %s", key, text);
    return strtod(p + strlen(pat), NULL);
}

/* The accuracy bar, made cheap enough for `make test`: 300 steps of the tiny preset
 * (the 300-step run on `small` is in docs/RESULTS.md with its command). */
Test(bf16_cli, three_hundred_steps_track_fp32, .timeout = 120)
{
    static cli_result f32, b16;
    cli_run(&f32, "train --model tiny --steps 300 --device host --json");
    cr_assert_eq(f32.code, 0, "%s", f32.err);
    cli_run(&b16, "train --model tiny --steps 300 --device host --json --dtype bf16");
    cr_assert_eq(b16.code, 0, "%s", b16.err);
    const char *sf = strstr(f32.out, "\"summary\""), *sb = strstr(b16.out, "\"summary\"");
    cr_assert(sf && sb);
    double lf = json_num(sf, "final_loss"), lb = json_num(sb, "final_loss");
    printf("300 steps on tiny: fp32 %.6f, bf16 %.6f\n", lf, lb);
    cr_expect_lt(fabs(lf - lb), 0.02, "bf16 %.6f vs fp32 %.6f", lb, lf);
    cr_expect_lt(lb, json_num(sb, "first_loss") - 1.0, "bf16 did not learn");
    cr_expect_not_null(strstr(sb, "\"dtype\": \"bf16\""));
    /* activations halve */
    cr_expect_lt(json_num(sb, "measured_act_peak_bytes"),
                 0.6 * json_num(sf, "measured_act_peak_bytes"));
}

Test(bf16_cli, save_writes_fp32_master_weights_that_load_back)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/remat-bf16-save-%d.bin", (int)getpid());
    static cli_result a, b;
    cli_run(&a, "train --model tiny --steps 3 --device host --dtype bf16 --save %s", path);
    cr_assert_eq(a.code, 0, "%s", a.err);
    gpt_config cfg;
    float *w = NULL;
    cr_assert_eq(gpt_weights_read(path, &cfg, &w), REMAT_OK, "%s", remat_last_error());
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    size_t not_bf16 = 0;
    for (size_t i = 0; i < lay.total; i++)
        not_bf16 += !bf16_representable(w[i]);
    cr_expect_gt(not_bf16, lay.total / 2, "the saved weights look like bf16, not fp32 masters");
    free(w);
    cli_run(&b, "train --model %s --steps 2 --device host --dtype bf16 --json", path);
    cr_expect_eq(b.code, 0, "%s", b.err);
    unlink(path);
}

Test(bf16_cli, bad_dtype_options_exit_2)
{
    static cli_result r;
    cli_run(&r, "train --model tiny --steps 1 --dtype fp8");
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "fp8"), "%s", r.err);
    cli_run(&r, "train --model tiny --steps 1 --master-weights off");
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "--dtype bf16"), "%s", r.err);
    cli_run(&r, "train --model tiny --steps 1 --dtype bf16 --master-weights maybe");
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "maybe"), "%s", r.err);
}

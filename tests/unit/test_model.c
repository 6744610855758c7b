/* tests/unit/test_model.c: the GPT-2 training loop against a PyTorch fixture, files, the data loader,
 * bitwise identity under every checkpoint policy and save option, and the pool's measured peaks. */
#include "model/gpt.h"
#include "tests/common/cli_run.h"
#include "tests/common/model_rig.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== Helpers ============================================================================== */

static gpt_config small_deep_config(void)
{
    /* Six blocks of a narrow model: deep enough that 30% of store-all is a real constraint. */
    gpt_config c = {.layers = 6, .channels = 32, .heads = 2, .vocab = 64, .max_seq = 16};
    cr_assert_eq(gpt_config_check(&c), REMAT_OK, "%s", remat_last_error());
    return c;
}

/* ==== The PyTorch fixture ================================================================== */

typedef struct {
    int B, T;
    double lr, first;
    double losses[10];
} fixture_ref;

static void read_ref(fixture_ref *ref)
{
    FILE *f = fopen(rig_fixture("gpt_tiny_ref.txt"), "r");
    cr_assert_not_null(f, "missing fixture %s", rig_fixture("gpt_tiny_ref.txt"));
    char line[256];
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_eq(fscanf(f, "%d %d %lf %lf", &ref->B, &ref->T, &ref->lr, &ref->first), 4);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(fscanf(f, "%lf", &ref->losses[i]), 1);
    fclose(f);
}

static void fixture_batch(int n, int *inputs, int *targets)
{
    gpt_tokens tok;
    cr_assert_eq(gpt_tokens_load(rig_fixture("gpt_tiny_batch.bin"), &tok), REMAT_OK, "%s",
                 remat_last_error());
    cr_assert_eq(tok.n, (size_t)n + 1);
    memcpy(inputs, tok.tokens, n * sizeof(int));
    memcpy(targets, tok.tokens + 1, n * sizeof(int));
    gpt_tokens_free(&tok);
}

Test(model, matches_pytorch_loss_gradients_and_adamw)
{
    fixture_ref ref;
    read_ref(&ref);
    gpt_config cfg;
    float *w = NULL, *gref = NULL;
    cr_assert_eq(gpt_weights_read(rig_fixture("gpt_tiny_weights.bin"), &cfg, &w), REMAT_OK, "%s",
                 remat_last_error());
    gpt_config gcfg;
    cr_assert_eq(gpt_weights_read(rig_fixture("gpt_tiny_grads.bin"), &gcfg, &gref), REMAT_OK, "%s",
                 remat_last_error());
    gpt_config tiny;
    cr_assert_eq(gpt_preset("tiny", &tiny), REMAT_OK);
    cr_assert_eq(memcmp(&cfg, &tiny, sizeof cfg), 0, "the fixture is not the tiny preset");

    int n = ref.B * ref.T;
    int *inputs = malloc(n * sizeof(int)), *targets = malloc(n * sizeof(int));
    fixture_batch(n, inputs, targets);
    rig r;
    rig_open(&r, &cfg, ref.B, ref.T, NULL);
    cr_assert_eq(gpt_model_set_params(r.model, w), REMAT_OK);
    remat_schedule *s = rig_plan(r.chain, "store-all", 100);
    float loss;
    cr_assert_eq(gpt_model_forward_backward(r.model, s, r.chain, inputs, targets, &loss), REMAT_OK,
                 "%s", remat_last_error());
    double lerr = fabs(loss - ref.first) / ref.first;
    printf("fixture: loss %.7f, torch %.7f, relative error %.2e\n", loss, ref.first, lerr);
    cr_expect_leq(lerr, 1e-5, "loss %.8f vs torch %.8f", loss, ref.first);

    const gpt_param_layout *lay = gpt_model_layout(r.model);
    float *g = malloc(lay->total * sizeof(float));
    cr_assert_eq(gpt_model_get_grads(r.model, g), REMAT_OK);
    for (int i = 0; i < GPT_N_PARAMS; i++) {
        double e = rig_rel_l2(g + lay->offset[i], gref + lay->offset[i], lay->count[i]);
        printf("fixture: d%-9s relative error %.2e\n", gpt_param_names[i], e);
        cr_expect_leq(e, 1e-4, "gradient of %s: relative error %.3e", gpt_param_names[i], e);
    }

    gpt_adamw hp = gpt_adamw_defaults();
    hp.lr = (float)ref.lr;
    for (int t = 1; t <= 10; t++) {
        cr_assert_eq(gpt_model_forward_backward(r.model, s, r.chain, inputs, targets, &loss),
                     REMAT_OK, "%s", remat_last_error());
        double e = fabs(loss - ref.losses[t - 1]) / ref.losses[t - 1];
        cr_expect_leq(e, 1e-4, "step %d: loss %.7f vs torch %.7f", t, loss, ref.losses[t - 1]);
        cr_assert_eq(gpt_model_update(r.model, &hp, t), REMAT_OK, "%s", remat_last_error());
    }
    printf("fixture: loss after 10 AdamW steps %.7f (torch %.7f at step 10)\n", loss,
           ref.losses[9]);
    remat_schedule_free(s);
    rig_close(&r);
    free(g);
    free(w);
    free(gref);
    free(inputs);
    free(targets);
}

/* ==== Bitwise identity and measured peaks under every policy and save option =============== */

/* Makes the chain's block option `only` (or none for -1) the one a planner picks: its backward
 * costs the default's, every other option is made useless (default bytes, huge time). */
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

/* Store-all with every block made with `option`. */
/* The scheduler's selective policy of block option `option` (every block runs it). */
static remat_schedule *store_all_with_option(const remat_chain *c, int option)
{
    char name[REMAT_POLICY_NAME_MAX];
    snprintf(name, sizeof name, "selective:%s", gpt_block_option_names[option]);
    remat_schedule *s = rig_plan(c, name, 400);
    for (size_t k = 0; k < s->n_ops; k++)
        if (s->ops[k].kind == REMAT_OP_F_ALL && c->stages[s->ops[k].stage].n_options > 0)
            cr_assert_eq(s->ops[k].option, option, "%s: stage %d", name, s->ops[k].stage);
    return s;
}

static int count_option(const remat_schedule *s, int option)
{
    int n = 0;
    for (size_t k = 0; k < s->n_ops; k++)
        n += s->ops[k].kind == REMAT_OP_F_ALL && s->ops[k].option == option;
    return n;
}

static void random_batch(gpt_rng *g, int n, int vocab, int *inputs, int *targets)
{
    for (int i = 0; i < n; i++) {
        inputs[i] = (int)(gpt_rng_next(g) % (uint64_t)vocab);
        targets[i] = (int)(gpt_rng_next(g) % (uint64_t)vocab);
    }
}

/* Runs one step under s; checks loss and gradients bit for bit against the reference and the
 * pool's activation peak against the simulator's. */
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
    double dev = fabs((double)measured - (double)s->peak_bytes) / (double)s->peak_bytes;
    printf("%-34s loss %.7f  predicted peak %8llu  measured %8llu  (%.2f%%)  overhead %.3f\n", what,
           loss, (unsigned long long)s->peak_bytes, (unsigned long long)measured, 100 * dev,
           s->overhead);
    cr_expect_leq(dev, 0.02, "%s: measured activation peak %llu vs predicted %llu", what,
                  (unsigned long long)measured, (unsigned long long)s->peak_bytes);
    cr_expect_eq(memcmp(&loss, &loss_ref, sizeof loss), 0, "%s: loss %.9g vs store-all %.9g", what,
                 loss, loss_ref);
    const gpt_param_layout *lay = gpt_model_layout(r->model);
    cr_assert_eq(gpt_model_get_grads(r->model, g), REMAT_OK);
    cr_expect_eq(memcmp(g, g_ref, lay->total * sizeof(float)), 0,
                 "%s: gradients differ from store-all's", what);
}

Test(model, bitwise_identical_under_every_policy_and_option)
{
    gpt_config cfg = small_deep_config();
    int B = 2, T = 16, n = B * T;
    rig r;
    rig_open(&r, &cfg, B, T, NULL);
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
    cr_assert_eq(gpt_model_forward_backward(r.model, s, r.chain, in, tg, &loss_ref), REMAT_OK, "%s",
                 remat_last_error());
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
            s = store_all_with_option(r.chain, opt);
            snprintf(what, sizeof what, "store-all/%s", oname);
            check_step(&r, s, r.chain, what, in, tg, loss_ref, g_ref, g);
            remat_schedule_free(s);
        }
        s = rig_plan(r.chain, "sqrt", 400);
        snprintf(what, sizeof what, "sqrt/%s", oname);
        check_step(&r, s, r.chain, what, in, tg, loss_ref, g_ref, g);
        remat_schedule_free(s);
        static const double pcts[] = {30, 50, 80};
        for (int p = 0; p < 3; p++) {
            s = rig_plan(r.chain, "optimal", pcts[p]);
            snprintf(what, sizeof what, "optimal-%.0f%%/%s", pcts[p], oname);
            if (opt >= 0 && p == 0)
                cr_expect_gt(count_option(s, opt), 0, "%s never used the option", what);
            check_step(&r, s, r.chain, what, in, tg, loss_ref, g_ref, g);
            remat_schedule_free(s);
        }
    }
    remat_chain_free(orig);
    rig_close(&r);
    free(w);
    free(g_ref);
    free(g);
}

/* The profile fills every time of the model's chain (forward without grad, each option's
 * backward with its forward-with-grad's excess) with positive values, keeps every byte count,
 * validates, plans, and leaves the gradients zero. */
Test(model, profile_times_every_option_and_keeps_the_chain_valid)
{
    gpt_config cfg = small_deep_config();
    int B = 2, T = 16, n = B * T;
    rig r;
    rig_open(&r, &cfg, B, T, NULL);
    const gpt_param_layout *lay = gpt_model_layout(r.model);
    float *w = malloc(lay->total * sizeof(float));
    gpt_init_params(&cfg, 7, w);
    cr_assert_eq(gpt_model_set_params(r.model, w), REMAT_OK);
    int in[32], tg[32];
    gpt_rng rng = {5};
    random_batch(&rng, n, cfg.vocab, in, tg);
    remat_chain *ch = NULL;
    cr_assert_eq(gpt_model_profile(r.model, in, 2, &ch, NULL), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(ch->n_stages, r.chain->n_stages);
    for (int i = 0; i < ch->n_stages; i++) {
        const remat_stage *st = &ch->stages[i], *ref = &r.chain->stages[i];
        cr_expect(isfinite(st->fwd) && st->fwd > 0, "%s fwd %g", st->name, st->fwd);
        cr_expect(isfinite(st->bwd) && st->bwd > 0, "%s bwd %g", st->name, st->bwd);
        cr_expect_eq(st->out_bytes, ref->out_bytes, "%s", st->name);
        cr_expect_eq(st->saved_bytes, ref->saved_bytes, "%s", st->name);
        cr_expect_eq(st->fwd_tmp_bytes, ref->fwd_tmp_bytes, "%s", st->name);
        cr_expect_eq(st->bwd_tmp_bytes, ref->bwd_tmp_bytes, "%s", st->name);
        cr_assert_eq(st->n_options, ref->n_options, "%s", st->name);
        for (int o = 0; o < st->n_options; o++) {
            cr_expect(isfinite(st->options[o].bwd) && st->options[o].bwd > 0, "%s %s bwd %g",
                      st->name, st->options[o].name, st->options[o].bwd);
            cr_expect_eq(st->options[o].saved_bytes, ref->options[o].saved_bytes);
        }
    }
    /* Blocks share one shape, so they share every time. */
    for (int i = 2; i <= cfg.layers; i++) {
        cr_expect_eq(ch->stages[i].fwd, ch->stages[1].fwd);
        cr_expect_eq(ch->stages[i].bwd, ch->stages[1].bwd);
    }
    /* The chain round-trips through its file format (which validates every field) and plans. */
    char path[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_profile_%d.json", (int)getpid());
    cr_assert_eq(remat_chain_save(ch, path), REMAT_OK, "%s", remat_last_error());
    remat_chain *back = NULL;
    cr_assert_eq(remat_chain_load(path, &back), REMAT_OK, "%s", remat_last_error());
    remove(path);
    remat_schedule *s = rig_plan(back, "optimal", 50);
    cr_expect(s->peak_bytes <= s->budget_bytes && s->time > 0 && s->overhead >= 0);
    remat_schedule_free(s);
    remat_chain_free(back);
    float *g = malloc(lay->total * sizeof(float));
    cr_assert_eq(gpt_model_get_grads(r.model, g), REMAT_OK);
    for (size_t k = 0; k < lay->total; k++)
        cr_assert_eq(g[k], 0.0f, "gradient %zu left at %g", k, g[k]);
    remat_chain_free(ch);
    ch = NULL;
    cr_expect_eq(gpt_model_profile(r.model, in, 0, &ch, NULL), REMAT_EINVAL);
    cr_expect_eq(gpt_model_profile(r.model, in, 65, &ch, NULL), REMAT_EINVAL);
    in[3] = cfg.vocab;
    cr_expect_eq(gpt_model_profile(r.model, in, 1, &ch, NULL), REMAT_EINVAL);
    cr_expect_not_null(strstr(remat_last_error(), "outside the vocabulary"));
    cr_expect_null(ch);
    rig_close(&r);
    free(w);
    free(g);
}

/* Profiles `small` at batch B x T into *ch with info (the model's pool reset before). */
static void profile_small(rig *r, int B, int T, remat_chain **ch, gpt_profile_info *info)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset("small", &cfg), REMAT_OK);
    rig_open(r, &cfg, B, T, NULL);
    size_t n = (size_t)B * T, total = gpt_model_layout(r->model)->total;
    float *w = malloc(total * sizeof(float));
    int *in = malloc(n * sizeof(int));
    cr_assert(w && in);
    gpt_init_params(&cfg, 3, w);
    cr_assert_eq(gpt_model_set_params(r->model, w), REMAT_OK);
    gpt_rng rng = {9};
    for (size_t i = 0; i < n; i++)
        in[i] = (int)(gpt_rng_next(&rng) % (uint64_t)cfg.vocab);
    cr_assert_eq(remat_pool_reset_peaks(r->pool), REMAT_OK);
    cr_assert_eq(gpt_model_profile(r->model, in, 3, ch, info), REMAT_OK, "%s", remat_last_error());
    free(w);
    free(in);
}

/* Profiling runs stage by stage: it never holds more than a run planned at half of store-all's
 * peak may (or the least feasible budget, if larger), nor more than the least budget of any
 * schedule running the blocks' default save (it measures that variant); the model's pool (and a
 * trace on it) sees none of it. */
Test(model, profile_stays_within_the_budget)
{
    rig r;
    remat_chain *ch = NULL;
    gpt_profile_info info;
    profile_small(&r, 4, 128, &ch, &info);
    remat_policy opt = {.kind = REMAT_POLICY_OPTIMAL};
    uint64_t least = 0, all = 0, least_default = 0;
    cr_assert_eq(remat_min_budget(ch, &opt, &least), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(remat_store_all_peak(ch, &all), REMAT_OK);
    int n_options[64];
    for (int i = 0; i < ch->n_stages; i++)
        n_options[i] = ch->stages[i].n_options, ch->stages[i].n_options = 0;
    cr_assert_eq(remat_min_budget(ch, &opt, &least_default), REMAT_OK, "%s", remat_last_error());
    for (int i = 0; i < ch->n_stages; i++)
        ch->stages[i].n_options = n_options[i];
    uint64_t half = all / 2, bound = half > least ? half : least;
    cr_expect_leq(info.peak_bytes, bound, "profile held %llu bytes; budget 50%% %llu, least %llu",
                  (unsigned long long)info.peak_bytes, (unsigned long long)half,
                  (unsigned long long)least);
    cr_expect_leq(info.peak_bytes, least_default,
                  "profile held %llu bytes; least budget with default saves %llu",
                  (unsigned long long)info.peak_bytes, (unsigned long long)least_default);
    cr_expect_gt(info.peak_bytes, 0);
    remat_pool_stats ps;
    cr_assert_eq(remat_pool_stats_get(r.pool, &ps), REMAT_OK);
    cr_expect_eq(ps.allocated.peak, gpt_model_persistent_bytes(r.model),
                 "the model's pool peaked at %llu during the profile",
                 (unsigned long long)ps.allocated.peak);
    cr_expect_geq(info.rounds, 3);
    remat_chain_free(ch);
    rig_close(&r);
}

/* A save option only adds work to the backward: its profiled backward is never below the
 * default's, so the plan at 100% of store-all's peak is store-all's cost (overhead 0) and never
 * "saves" time by recomputing. */
Test(model, profile_never_makes_an_option_cheaper_than_the_default)
{
    rig r;
    remat_chain *ch = NULL;
    gpt_profile_info info;
    profile_small(&r, 4, 128, &ch, &info);
    for (int i = 1; i + 1 < ch->n_stages; i++) {
        const remat_stage *st = &ch->stages[i];
        cr_assert_eq(st->n_options, GPT_N_BLOCK_OPTIONS);
        for (int o = 0; o < st->n_options; o++)
            cr_expect_gt(st->options[o].bwd, st->bwd, "%s %s bwd %g <= default %g", st->name,
                         st->options[o].name, st->options[o].bwd, st->bwd);
    }
    remat_schedule *s = rig_plan(ch, "optimal", 100);
    cr_expect_eq(s->overhead, 0, "optimal at 100%% predicts overhead %g", s->overhead);
    cr_expect_eq(s->time, s->base_time);
    remat_schedule_free(s);
    remat_chain_free(ch);
    rig_close(&r);
}

/* A profile file is used only for its own key and the model's exact byte counts (the executor
 * allocates them): a file of another batch, or one whose sizes were changed, is not returned. */
Test(model, profile_files_match_key_and_byte_counts)
{
    gpt_config cfg = small_deep_config();
    rig r;
    rig_open(&r, &cfg, 2, 16, NULL);
    char path[256], why[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_pfile_%d.json", (int)getpid());
    remove(path);
    gpt_profile_key key, other;
    cr_assert_eq(gpt_profile_key_of(r.model, &key), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(key.batch, 2);
    cr_expect_str_eq(key.device, "host");
    remat_chain *back = NULL;
    cr_assert_eq(gpt_profile_load(path, &key, r.chain, &back, why, sizeof why), REMAT_OK);
    cr_expect_null(back);
    cr_expect_str_eq(why, "no such file");
    cr_assert_eq(gpt_profile_save(path, r.chain, &key), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(gpt_profile_load(path, &key, r.chain, &back, why, sizeof why), REMAT_OK, "%s",
                 remat_last_error());
    cr_assert_not_null(back);
    cr_expect_eq(back->stages[1].bwd, r.chain->stages[1].bwd);
    remat_chain_free(back);
    back = NULL;
    other = key;
    other.batch = 3;
    cr_assert_eq(gpt_profile_load(path, &other, r.chain, &back, why, sizeof why), REMAT_OK);
    cr_expect_null(back);
    cr_expect_str_eq(why, "batch 2, this run 3");
    r.chain->stages[2].options[1].saved_bytes += 512;
    cr_assert_eq(gpt_profile_save(path, r.chain, &key), REMAT_OK, "%s", remat_last_error());
    r.chain->stages[2].options[1].saved_bytes -= 512;
    cr_assert_eq(gpt_profile_load(path, &key, r.chain, &back, why, sizeof why), REMAT_OK);
    cr_expect_null(back);
    cr_expect_not_null(strstr(why, "stage 2's byte counts differ"), "%s", why);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"name\": \"x\", \"input_bytes\": 512, \"stages\": []}\n", f);
    fclose(f);
    cr_expect_eq(gpt_profile_load(path, &key, r.chain, &back, why, sizeof why), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "is not a profile file"), "%s",
                       remat_last_error());
    remove(path);
    rig_close(&r);
}

/* ==== Weights and token files ============================================================== */

static char *tmp_path(const char *name)
{
    static char p[4][512];
    static int next;
    char *s = p[next++ % 4];
    snprintf(s, sizeof p[0], "/tmp/remat_test_model_%d_%s", (int)getpid(), name);
    return s;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

Test(model, weights_round_trip_bit_exact)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset("tiny", &cfg), REMAT_OK);
    cfg.vocab = 200; /* padded rows too */
    cfg.padded_vocab = 0;
    cr_assert_eq(gpt_config_check(&cfg), REMAT_OK);
    cr_assert_eq(cfg.padded_vocab, 256);
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    float *w = malloc(lay.total * sizeof(float));
    gpt_init_params(&cfg, 42, w);
    const char *path = tmp_path("rt.bin");
    cr_assert_eq(gpt_weights_write(path, &cfg, w), REMAT_OK, "%s", remat_last_error());
    char ls[600]; /* no rt.bin.tmp.XXXXXX left */
    snprintf(ls, sizeof ls, "ls %s* 2>/dev/null | grep -q 'rt\\.bin\\.tmp'", tmp_path("rt.bin"));
    cr_assert_neq(system(ls), 0, "the temporary file was left behind");
    gpt_config back;
    float *r = NULL;
    cr_assert_eq(gpt_weights_read(path, &back, &r), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(memcmp(&back, &cfg, sizeof cfg), 0);
    cr_expect_eq(memcmp(r, w, lay.total * sizeof(float)), 0);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    cr_expect_eq((size_t)ftell(f), 1024 + lay.total * sizeof(float));
    fclose(f);
    remove(path);
    free(w);
    free(r);
}

Test(model, bad_weights_files_are_clean_errors)
{
    gpt_config cfg;
    float *p = NULL;
    cr_assert_eq(gpt_weights_read("/nonexistent/w.bin", &cfg, &p), REMAT_EIO);
    cr_expect_not_null(strstr(remat_last_error(), "/nonexistent/w.bin"));

    int32_t h[256] = {20240326, 3, 64, 256, 2, 4, 64, 256};
    const char *path = tmp_path("bad.bin");
    write_bytes(path, h, 100);
    cr_expect_eq(gpt_weights_read(path, &cfg, &p), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "truncated header"), "%s", remat_last_error());

    static unsigned char cut[sizeof h + 4000]; /* header fine, parameters cut short */
    memcpy(cut, h, sizeof h);
    write_bytes(path, cut, sizeof cut);
    cr_expect_eq(gpt_weights_read(path, &cfg, &p), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "truncated"), "%s", remat_last_error());
    cr_expect_not_null(strstr(remat_last_error(), path), "%s", remat_last_error());

    h[0] = 12345;
    write_bytes(path, h, sizeof h);
    cr_expect_eq(gpt_weights_read(path, &cfg, &p), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "bad magic 12345"), "%s", remat_last_error());

    h[0] = 20240326;
    h[1] = 5;
    write_bytes(path, h, sizeof h);
    cr_expect_eq(gpt_weights_read(path, &cfg, &p), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "version 5"), "%s", remat_last_error());

    h[1] = 3;
    h[5] = 3; /* heads do not divide channels */
    write_bytes(path, h, sizeof h);
    cr_expect_eq(gpt_weights_read(path, &cfg, &p), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "heads 3"), "%s", remat_last_error());
    cr_expect_null(p);
    remove(path);
    float dummy[1] = {0};
    gpt_config tiny;
    cr_assert_eq(gpt_preset("tiny", &tiny), REMAT_OK);
    cr_expect_eq(gpt_weights_write("/nonexistent/dir/w.bin", &tiny, dummy), REMAT_EIO);
}

Test(model, token_files_text_files_and_the_builtin_corpus)
{
    int32_t h[256] = {20240520, 1, 5};
    uint16_t toks[5] = {50256, 1, 2, 3, 40000};
    unsigned char buf[sizeof h + sizeof toks];
    memcpy(buf, h, sizeof h);
    memcpy(buf + sizeof h, toks, sizeof toks);
    const char *path = tmp_path("tok.bin");
    write_bytes(path, buf, sizeof buf);
    gpt_tokens t;
    cr_assert_eq(gpt_tokens_load(path, &t), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(t.n, 5);
    cr_expect_eq(t.tokens[0], 50256);
    cr_expect_eq(t.tokens[4], 40000);
    cr_expect_eq(t.max_token, 50256);
    gpt_tokens_free(&t);

    write_bytes(path, buf, sizeof buf - 3); /* truncated tokens */
    cr_expect_eq(gpt_tokens_load(path, &t), REMAT_EPARSE);
    cr_expect_not_null(strstr(remat_last_error(), "announces 5 tokens"), "%s", remat_last_error());

    write_bytes(path, "hello", 5);
    cr_assert_eq(gpt_tokens_load(path, &t), REMAT_OK);
    cr_expect_eq(t.n, 5);
    cr_expect_eq(t.tokens[1], 'e');
    cr_expect_eq(t.max_token, 'o');
    gpt_tokens_free(&t);
    remove(path);
    cr_expect_eq(gpt_tokens_load("/nonexistent/tok.bin", &t), REMAT_EIO);

    gpt_tokens a, b;
    cr_assert_eq(gpt_tokens_builtin(10000, &a), REMAT_OK);
    cr_assert_eq(gpt_tokens_builtin(10000, &b), REMAT_OK);
    cr_expect_eq(memcmp(a.tokens, b.tokens, 10000 * sizeof(int)), 0,
                 "the corpus is not deterministic");
    cr_expect_lt(a.max_token, 128);
    int distinct[256] = {0}, nd = 0;
    for (size_t i = 0; i < a.n; i++)
        nd += !distinct[a.tokens[i]]++;
    cr_expect_gt(nd, 20, "the corpus uses only %d distinct bytes", nd);
    gpt_tokens_free(&a);
    gpt_tokens_free(&b);
}

Test(model, loader_reads_batches_in_order_and_wraps_like_llmc)
{
    gpt_tokens t;
    cr_assert_eq(gpt_tokens_builtin(0, &t), REMAT_OK);
    free(t.tokens);
    t.n = 50; /* B*T = 12: batches start at 0, 12, 24, 36 (36 + 13 = 49 <= 50), then wrap */
    t.tokens = malloc(t.n * sizeof(int));
    for (size_t i = 0; i < t.n; i++)
        t.tokens[i] = (int)i;
    gpt_loader ld;
    cr_assert_eq(gpt_loader_init(&ld, &t, 3, 4, 0, 0), REMAT_OK);
    int in[12], tg[12];
    static const int starts[] = {0, 12, 24, 36, 0, 12};
    for (int k = 0; k < 6; k++) {
        gpt_loader_next(&ld, in, tg);
        for (int i = 0; i < 12; i++) {
            cr_assert_eq(in[i], starts[k] + i, "batch %d position %d", k, i);
            cr_assert_eq(tg[i], starts[k] + i + 1);
        }
    }
    gpt_loader_free(&ld);

    cr_assert_eq(gpt_loader_init(&ld, &t, 3, 4, 1, 5), REMAT_OK);
    int seen[4] = {0};
    for (int k = 0; k < 4; k++) {
        gpt_loader_next(&ld, in, tg);
        cr_assert_eq(in[0] % 12, 0);
        seen[in[0] / 12]++;
    }
    for (int k = 0; k < 4; k++)
        cr_expect_eq(seen[k], 1, "shuffled pass must visit every batch once");
    gpt_loader_free(&ld);
    cr_expect_eq(gpt_loader_init(&ld, &t, 7, 8, 0, 0), REMAT_EINVAL);
    gpt_tokens_free(&t);
}

Test(model, gpt2_init_statistics_and_presets)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset("small", &cfg), REMAT_OK);
    cfg.vocab = 250;
    cfg.padded_vocab = 0;
    cr_assert_eq(gpt_config_check(&cfg), REMAT_OK);
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    float *w = malloc(lay.total * sizeof(float)), *w2 = malloc(lay.total * sizeof(float));
    gpt_init_params(&cfg, 1, w);
    gpt_init_params(&cfg, 1, w2);
    cr_expect_eq(memcmp(w, w2, lay.total * sizeof(float)), 0);
    gpt_init_params(&cfg, 2, w2);
    cr_expect_neq(memcmp(w, w2, lay.total * sizeof(float)), 0);
    const int tensors[] = {GPT_QKVW, GPT_FCW, GPT_ATTPROJW, GPT_FCPROJW, GPT_WPE};
    const double want[] = {0.02, 0.02, 0.02 / sqrt(8.0), 0.02 / sqrt(8.0), 0.02};
    for (int k = 0; k < 5; k++) {
        const float *p = w + lay.offset[tensors[k]];
        double s = 0, s2 = 0;
        for (size_t i = 0; i < lay.count[tensors[k]]; i++) {
            s += p[i];
            s2 += (double)p[i] * p[i];
        }
        double n = (double)lay.count[tensors[k]], mean = s / n, sd = sqrt(s2 / n - mean * mean);
        cr_expect_lt(fabs(mean), 4 * want[k] / sqrt(n), "%s mean %g", gpt_param_names[tensors[k]],
                     mean);
        cr_expect_lt(fabs(sd / want[k] - 1), 0.02, "%s std %g, want %g",
                     gpt_param_names[tensors[k]], sd, want[k]);
    }
    for (size_t i = (size_t)cfg.vocab * cfg.channels; i < lay.count[GPT_WTE]; i++)
        cr_assert_eq(w[i], 0.0f, "padded wte rows must be zero");
    for (size_t i = 0; i < lay.count[GPT_LN1W]; i++)
        cr_assert_eq(w[lay.offset[GPT_LN1W] + i], 1.0f);
    for (size_t i = 0; i < lay.count[GPT_QKVB]; i++)
        cr_assert_eq(w[lay.offset[GPT_QKVB] + i], 0.0f);
    free(w);
    free(w2);

    cr_assert_eq(gpt_preset("gpt2-124m", &cfg), REMAT_OK);
    gpt_layout_params(&cfg, &lay);
    cr_expect_eq(cfg.padded_vocab, 50304);
    cr_expect_eq(lay.total, 124475904, "llm.c's gpt2-124m has 124475904 parameters");
    cr_expect_eq(gpt_preset("gpt3", &cfg), REMAT_EINVAL);
    gpt_config bad = {.layers = 2, .channels = 30, .heads = 4, .vocab = 10, .max_seq = 8};
    cr_expect_eq(gpt_config_check(&bad), REMAT_EINVAL);
}

/* ==== The CLI ============================================================================== */

static double json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    cr_assert_not_null(p, "no %s in %s", key, line);
    return strtod(p + strlen(pat), NULL);
}

Test(model_cli, train_json_lines_losses_fall_and_policies_agree)
{
    static cli_result a, b;
    cli_run(&a,
            "train --model tiny --batch 4 --steps 12 --lr 1e-3 --device host --analytic --json");
    cr_assert_eq(a.code, 0, "%s", a.err);
    cli_run(&b, "train --model tiny --batch 4 --steps 12 --lr 1e-3 --device host --analytic --json "
                "--policy sqrt");
    cr_assert_eq(b.code, 0, "%s", b.err);
    int lines = 0;
    double first = 0, last = 0;
    for (char *l = a.out, *m = b.out; l && *l; lines++) {
        char *e = strchr(l, '\n'), *f = strchr(m, '\n');
        cr_assert_not_null(e);
        *e = 0;
        *f = 0;
        if (lines < 12) {
            cr_expect_eq(json_num(l, "step"), lines + 1);
            cr_expect_gt(json_num(l, "peak_bytes"), 0);
            cr_expect_geq(json_num(l, "ms"), 0);
            /* Same losses, printed to 6 decimals, under store-all and sqrt. */
            cr_expect_eq(json_num(l, "loss"), json_num(m, "loss"), "step %d: %s vs %s", lines + 1,
                         l, m);
            if (lines == 0)
                first = json_num(l, "loss");
            last = json_num(l, "loss");
        } else {
            cr_expect_not_null(strstr(l, "\"summary\": true"), "%s", l);
            cr_expect_eq(json_num(l, "measured_act_peak_bytes"),
                         json_num(l, "predicted_act_peak_bytes"));
            cr_expect_not_null(strstr(m, "\"policy\": \"sqrt\""), "%s", m);
            cr_expect_lt(json_num(m, "measured_act_peak_bytes"),
                         json_num(l, "measured_act_peak_bytes"));
        }
        l = e + 1;
        m = f + 1;
    }
    cr_expect_eq(lines, 13);
    cr_expect_lt(last, first - 0.2, "loss did not fall: %f -> %f", first, last);
}

Test(model_cli, baseline_checks_every_policy_against_store_all_in_the_same_run)
{
    static cli_result r;
    static const char *policies[] = {"llmc-selective", "megatron-selective",
                                     "selective:recompute-attn-gelu-ln", "sqrt", "optimal"};
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        /* --baseline fails the run (exit 1) if a loss differs from store-all's by one bit. */
        cli_run(&r,
                "train --model tiny --batch 2 --seq 32 --steps 3 --device host --analytic "
                "--baseline --json --policy %s --budget %s",
                policies[i], i == 4 ? "50%" : "100%");
        cr_assert_eq(r.code, 0, "%s: %s", policies[i], r.err);
        const char *sum = strstr(r.out, "\"summary\"");
        cr_assert_not_null(sum, "%s", r.out);
        double meas = json_num(sum, "measured_act_peak_bytes"),
               pred = json_num(sum, "predicted_act_peak_bytes");
        double all = json_num(sum, "store_all_measured_act_peak_bytes");
        printf("%-34s activation peak measured %.0f, predicted %.0f, store-all measured %.0f\n",
               policies[i], meas, pred, all);
        cr_expect_eq(meas, pred, "%s", policies[i]);
        cr_expect_lt(meas, all, "%s saves nothing", policies[i]);
    }
}

Test(model_cli, train_saves_weights_that_load_back)
{
    static cli_result r;
    char path[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_cli_%d.bin", (int)getpid());
    cli_run(&r,
            "train --model tiny --batch 2 --seq 16 --steps 2 --device host --analytic --save %s",
            path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    gpt_config cfg;
    float *w = NULL;
    cr_assert_eq(gpt_weights_read(path, &cfg, &w), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(cfg.layers, 2);
    cr_expect_eq(cfg.max_seq, 64);
    free(w);
    cli_run(&r, "train --model %s --batch 2 --seq 16 --steps 1 --device host --analytic --json",
            path);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cli_run(&r, "train --model %s --layers 3 --steps 1 --device host", path);
    cr_expect_eq(r.code, 2, "%s", r.err);
    remove(path);
}

Test(model_cli, bad_usage_and_bad_files_exit_2)
{
    static cli_result r;
    cli_run(&r, "train --model nosuchmodel");
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "unknown model 'nosuchmodel'"), "%s", r.err);
    cli_run(&r, "train --batch 0");
    cr_expect_eq(r.code, 2);
    cli_run(&r, "train --bogus");
    cr_expect_eq(r.code, 2);
    cli_run(&r, "train --model tiny --policy nonsense --device host --analytic");
    cr_expect_eq(r.code, 2, "%s", r.err);
    cli_run(&r, "train --model tiny --heads 5 --device host");
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "heads 5"), "%s", r.err);
    cli_run(&r, "train --model %s/tests/fixtures/gpt_tiny_batch.bin --device host", cli_root());
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "bad magic 20240520"), "%s", r.err);
    cli_run(&r, "train --model %s/tests/fixtures/gpt_tiny_ref.txt --device host", cli_root());
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "truncated header"), "%s", r.err);
    cli_run(&r, "train --model tiny --data /nonexistent/data.bin --device host");
    cr_expect_eq(r.code, 2);
    cli_run(
        &r,
        "train --model tiny --vocab 100 --data %s/tests/fixtures/gpt_tiny_batch.bin --device host",
        cli_root());
    cr_expect_eq(r.code, 2);
    cr_expect_not_null(strstr(r.err, "outside the model's vocabulary"), "%s", r.err);
    cli_run(&r, "train --model tiny --budget 1KiB --policy store-all --device host --analytic");
    cr_expect_eq(r.code, 1, "%s", r.err);
    cli_run(&r, "profile --model tiny");
    cr_expect_eq(r.code, 2);
    cli_run(&r, "train --model tiny --policy selective:bogus --device host --analytic");
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "option 'bogus'") && strstr(r.err, "valid options: recompute-gelu"), "%s",
              r.err);
    cli_run(&r, "train --help");
    cr_expect_eq(r.code, 0);
    cr_expect_not_null(strstr(r.out, "--policy"));
}

Test(model_cli, profile_writes_a_chain_that_loads)
{
    static cli_result r;
    char path[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_chain_%d.json", (int)getpid());
    cli_run(&r, "profile --model tiny --batch 2 --seq 32 --device host --reps 1 -o %s", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_load(path, &c), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(c->n_stages, 4);
    cr_expect_str_eq(c->stages[1].name, "block0");
    cr_expect_eq(c->stages[1].n_options, GPT_N_BLOCK_OPTIONS);
    cr_expect_gt(c->stages[1].fwd, 0);
    cr_expect_gt(c->stages[1].bwd, 0);
    cr_expect_lt(c->stages[1].options[GPT_OPT_RECOMPUTE_GELU_LN].saved_bytes,
                 c->stages[1].saved_bytes);
    cr_expect_eq(c->stages[1].out_bytes % 512, 0);
    remat_chain_free(c);
    remove(path);
}

/* The most bytes live at once in a trace file (an independent replay of its events). */
static uint64_t trace_peak(const char *path)
{
    remat_trace *t = NULL;
    cr_assert_eq(remat_trace_load(path, &t), REMAT_OK, "%s", remat_last_error());
    size_t n = remat_trace_events(t), allocs = 0;
    uint64_t *bytes = calloc(n + 1, sizeof *bytes), live = 0, peak = 0;
    cr_assert_not_null(bytes);
    for (size_t i = 0; i < n; i++) {
        remat_trace_event e;
        cr_assert_eq(remat_trace_event_at(t, i, &e), REMAT_OK);
        cr_assert_lt(e.alloc_index, n + 1);
        if (e.op == 'a') {
            bytes[e.alloc_index] = e.bytes;
            live += e.bytes;
            allocs++;
        } else {
            live -= bytes[e.alloc_index];
        }
        peak = live > peak ? live : peak;
    }
    cr_expect_gt(allocs, 0);
    free(bytes);
    remat_trace_free(t);
    return peak;
}

/* --trace records the training steps, not the profile that precedes them: the trace's peak is
 * the run's (persistent state plus the plan's activation peak), not store-all's. */
Test(model_cli, train_trace_holds_the_run_not_its_profile)
{
    static cli_result r;
    char path[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_trace_%d.trace", (int)getpid());
    cli_run(&r,
            "train --model small --batch 2 --steps 2 --device host --policy optimal --budget 50%% "
            "--json --trace %s",
            path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    const char *sum = strstr(r.out, "\"summary\"");
    cr_assert_not_null(sum, "%s", r.out);
    double pool_peak = json_num(sum, "peak_bytes"), persistent = json_num(sum, "persistent_bytes");
    double all = json_num(sum, "store_all_act_peak_bytes");
    double act = json_num(sum, "measured_act_peak_bytes");
    uint64_t peak = trace_peak(path);
    remove(path);
    cr_expect_eq((double)peak, pool_peak, "trace peak %llu, the run's pool peak %.0f",
                 (unsigned long long)peak, pool_peak);
    cr_expect_eq((double)peak, persistent + act);
    cr_expect_lt((double)peak, persistent + all, "the trace holds a store-all step");
}

/* Writes a copy of weights file src to dst with every float of parameter tensor `t` set to v. */
static void weights_with(const char *src, const char *dst, int t, float v)
{
    gpt_config cfg;
    float *w = NULL;
    cr_assert_eq(gpt_weights_read(src, &cfg, &w), REMAT_OK, "%s", remat_last_error());
    gpt_param_layout lay;
    gpt_layout_params(&cfg, &lay);
    for (size_t i = 0; i < lay.count[t]; i++)
        w[lay.offset[t] + i] = v;
    cr_assert_eq(gpt_weights_write(dst, &cfg, w), REMAT_OK, "%s", remat_last_error());
    free(w);
}

/* A NaN loss is a clear failure naming its cause, never a "nan" in the JSON: weights holding a
 * NaN are refused before training, and weights whose loss is not finite at step 1 are bad
 * input; both exit 2. */
Test(model_cli, train_json_with_a_nan_loss_fails_naming_the_cause)
{
    static cli_result r;
    char good[256], bad[256];
    snprintf(good, sizeof good, "/tmp/remat_test_model_nan_good_%d.bin", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/remat_test_model_nan_bad_%d.bin", (int)getpid());
    cli_run(&r, "train --model tiny --batch 2 --seq 16 --steps 1 --device host --save %s", good);
    cr_assert_eq(r.code, 0, "%s", r.err);
    weights_with(good, bad, GPT_LN1B, NAN);
    cli_run(&r, "train --model %s --batch 2 --seq 16 --steps 2 --device host --json", bad);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "ln1b[0] is nan"), "%s", r.err);
    cr_expect_null(strstr(r.out, "nan"), "%s", r.out);
    weights_with(good, bad, GPT_LNFW, 3e38f); /* finite, but its logits overflow */
    cli_run(&r, "train --model %s --batch 2 --seq 16 --steps 2 --device host --json", bad);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "at step 1, before any update"), "%s", r.err);
    cr_expect_null(strstr(r.out, "nan"), "%s", r.out);
    cr_expect_null(strstr(r.out, "inf"), "%s", r.out);
    remove(good);
    remove(bad);
}

/* A run that cannot fit fails before allocating (no OOM kill): exit 1 naming what it needs and
 * what there is; a --seq beyond a weights file's positions is bad usage (exit 2). */
Test(model_cli, train_that_cannot_fit_fails_before_allocating)
{
    static cli_result r;
    cli_run(&r, "train --model tiny --seq 100000 --steps 1 --device host");
    cr_expect_eq(r.code, 1, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "does not fit in memory"), "%s", r.err);
    cr_expect_not_null(strstr(r.err, "MemAvailable"), "%s", r.err);
    cli_run(&r, "train --model tiny --seq 1048576 --batch 1048576 --steps 1 --device host");
    cr_expect_eq(r.code, 1, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "more than any machine has"), "%s", r.err);
    char path[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_maxt_%d.bin", (int)getpid());
    cli_run(&r, "train --model tiny --batch 1 --seq 8 --steps 1 --device host --save %s", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cli_run(&r, "train --model %s --seq 100000 --steps 1 --device host", path);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "maxT 64"), "%s", r.err);
    remove(path);
}

/* One default batch (4) and one default budget (100% of store-all, for fixed policies too), both
 * printed; the summary reports the process's peak RSS. */
Test(model_cli, train_prints_its_defaults_and_peak_rss)
{
    static cli_result r;
    cli_run(&r, "train --model tiny --steps 1 --device host --analytic --policy sqrt");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_not_null(strstr(r.out, "batch 4 x 64 (default batch)"), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "(100% of store-all's"), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "; the default)"), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "process peak RSS"), "%s", r.out);
    cli_run(&r, "train --model tiny --steps 1 --device host --analytic --policy sqrt --json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    const char *sum = strstr(r.out, "\"summary\"");
    cr_assert_not_null(sum, "%s", r.out);
    cr_expect_eq(json_num(sum, "batch"), 4);
    cr_expect_eq(json_num(sum, "budget_bytes"), json_num(sum, "store_all_act_peak_bytes"));
    double rss = json_num(sum, "peak_rss_bytes");
    cr_expect(rss > json_num(sum, "peak_bytes") && rss < 4e9, "peak RSS %.0f", rss);
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* store-all plans nothing and profiles nothing; --profile-file saves the profile (a chain file
 * `remat plan` reads) and reuses it while model, batch, seq, device and dtype match, re-profiles
 * and replaces it when they do not, and refuses a file that is no profile. */
Test(model_cli, train_profile_file_is_reused_and_store_all_never_profiles)
{
    static cli_result r;
    char path[256], chain[256];
    snprintf(path, sizeof path, "/tmp/remat_test_model_prof_%d.json", (int)getpid());
    snprintf(chain, sizeof chain, "/tmp/remat_test_model_prof_chain_%d.json", (int)getpid());
    remove(path);
    const char *run = "train --model tiny --seq 32 --steps 1 --device host";
    cli_run(&r, "%s --profile-file %s", run, path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_null(strstr(r.out, "profile:"), "store-all profiled: %s", r.out);
    cr_expect(!file_exists(path));
    cli_run(&r, "%s --policy optimal --budget 50%% --profile-file %s", run, path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_not_null(strstr(r.out, "profile: "), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "written to"), "%s", r.out);
    cli_run(&r, "plan %s --policy optimal --budget 50%%", path);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cli_run(&r, "%s --policy optimal --budget 50%% --profile-file %s", run, path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_not_null(strstr(r.out, "profile: read"), "%s", r.out);
    cli_run(&r, "%s --batch 2 --policy optimal --budget 50%% --profile-file %s", run, path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_not_null(strstr(r.out, "does not fit this run: batch 4, this run 2"), "%s", r.out);
    cli_run(&r, "%s --batch 2 --policy sqrt --profile-file %s", run, path);
    cr_expect_not_null(strstr(r.out, "profile: read"), "%s", r.out);
    /* `remat profile` writes the same kind of file. */
    cli_run(&r, "profile --model tiny --seq 32 --batch 2 --device host --reps 1 -o %s", chain);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cli_run(&r, "%s --batch 2 --policy sqrt --profile-file %s", run, chain);
    cr_expect_not_null(strstr(r.out, "profile: read"), "%s", r.out);
    /* A chain without a key is no profile: refused, left as it was. */
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_load(chain, &c), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(remat_chain_save(c, chain), REMAT_OK);
    remat_chain_free(c);
    cli_run(&r, "%s --policy sqrt --profile-file %s", run, chain);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "is not a profile file"), "%s", r.err);
    cr_expect(file_exists(chain));
    remove(path);
    remove(chain);
}

/* ZeRO-3's gathers added to a measured chain: every forward gathers its units (the embedding and
 * the head the embeddings', a block its own), a block's backward (every variant's) once more. */
Test(model, zero3_gathers_are_added_to_every_forward_and_each_blocks_backward)
{
    static const char json[] =
        "{\"name\": \"g\", \"input_bytes\": 64, \"stages\": ["
        "{\"name\": \"embed\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 64, \"saved_bytes\": 64},"
        "{\"name\": \"b0\", \"fwd\": 3, \"bwd\": 4, \"out_bytes\": 64, \"saved_bytes\": 256,"
        " \"options\": [{\"name\": \"o\", \"saved_bytes\": 128, \"bwd\": 5}]},"
        "{\"name\": \"b1\", \"fwd\": 3, \"bwd\": 4, \"out_bytes\": 64, \"saved_bytes\": 256},"
        "{\"name\": \"head\", \"fwd\": 6, \"bwd\": 7, \"out_bytes\": 8, \"saved_bytes\": 64}]}";
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_parse(json, sizeof json - 1, &c), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(gpt_chain_add_gathers(c, 2, 0.5, 0.25), REMAT_OK);
    const double fwd[] = {1.5, 3.25, 3.25, 6.5}, bwd[] = {2, 4.25, 4.25, 7};
    for (int i = 0; i < 4; i++) {
        cr_expect_float_eq(c->stages[i].fwd, fwd[i], 1e-12, "stage %d", i);
        cr_expect_float_eq(c->stages[i].bwd, bwd[i], 1e-12, "stage %d", i);
    }
    cr_expect_float_eq(c->stages[1].options[0].bwd, 5.25, 1e-12);
    cr_expect_eq(gpt_chain_add_gathers(c, 3, 0.5, 0.25), REMAT_EINVAL);
    cr_expect(strstr(remat_last_error(), "4 stages for 3 layers"), "%s", remat_last_error());
    cr_expect_eq(gpt_chain_add_gathers(c, 2, NAN, 0.25), REMAT_EINVAL);
    remat_chain_free(c);
}

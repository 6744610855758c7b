/* tests/cli/test_policy.c: one policy vocabulary. Every name and preset parses to the same solver and
 * option through every entry point (remat_policy_parse, the planner's activation policies, the
 * fit, plan, train and curve commands); an unknown option is REMAT_EINVAL
 * naming it and the valid ones; llmc-selective trains bit for bit as selective:recompute-gelu. */
#include "model/gpt.h"
#include "fit/fit.h"
#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== The parser ============================================================================ */

typedef struct {
    const char *text;
    remat_policy_kind kind;
    const char *option; /* SELECTIVE only */
    const char *canonical;
} policy_case;

static const policy_case cases[] = {
    {"optimal", REMAT_POLICY_OPTIMAL, "", "optimal"},
    {"store-all", REMAT_POLICY_STORE_ALL, "", "store-all"},
    {"sqrt", REMAT_POLICY_SQRT, "", "sqrt"},
    {"revolve", REMAT_POLICY_REVOLVE, "", "revolve"},
    {"periodic:3", REMAT_POLICY_PERIODIC, "", "periodic:3"},
    {"full-recompute", REMAT_POLICY_FULL_RECOMPUTE, "", "full-recompute"},
    {"llmc-selective", REMAT_POLICY_SELECTIVE, "recompute-gelu", "selective:recompute-gelu"},
    {"megatron-selective", REMAT_POLICY_SELECTIVE, "recompute-attn", "selective:recompute-attn"},
    {"selective:recompute-gelu", REMAT_POLICY_SELECTIVE, "recompute-gelu",
     "selective:recompute-gelu"},
    {"selective:recompute-gelu-ln", REMAT_POLICY_SELECTIVE, "recompute-gelu-ln",
     "selective:recompute-gelu-ln"},
    {"selective:recompute-attn-gelu-ln", REMAT_POLICY_SELECTIVE, "recompute-attn-gelu-ln",
     "selective:recompute-attn-gelu-ln"},
};

Test(policy, every_name_and_preset_parses_to_its_solver_and_option)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        remat_policy p, again;
        cr_assert_eq(remat_policy_parse(cases[i].text, &p), REMAT_OK, "%s: %s", cases[i].text,
                     remat_last_error());
        cr_expect_eq(p.kind, cases[i].kind, "%s", cases[i].text);
        cr_expect_str_eq(p.option, cases[i].option, "%s", cases[i].text);
        char name[REMAT_POLICY_NAME_MAX];
        cr_expect_str_eq(remat_policy_name(&p, name, sizeof name), cases[i].canonical);
        /* the canonical name parses back to the same policy */
        cr_assert_eq(remat_policy_parse(name, &again), REMAT_OK, "%s", name);
        cr_expect_eq(memcmp(&p, &again, sizeof p), 0, "%s -> %s", cases[i].text, name);
    }
}

Test(policy, bad_names_are_einval_naming_the_text)
{
    static const char *bad[] = {"selective:",  "selective:a b", "selective:x,y", "bogus",
                                "selective",   "llmc",          "periodic:0",
                                "selective:0123456789012345678901234567890123456789012345678"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        remat_policy p;
        cr_expect_eq(remat_policy_parse(bad[i], &p), REMAT_EINVAL, "%s", bad[i]);
        cr_expect_not_null(strstr(remat_last_error(), bad[i]), "%s: %s", bad[i],
                           remat_last_error());
    }
    remat_policy p;
    cr_expect_eq(remat_policy_parse("nope", &p), REMAT_EINVAL);
    cr_expect_not_null(strstr(remat_last_error(), "selective:OPTION"), "%s", remat_last_error());
    cr_expect_not_null(strstr(remat_last_error(), "llmc-selective"), "%s", remat_last_error());
}

/* The planner's activation policies are the parser's policies under the same names. */
Test(policy, the_planners_activation_policies_are_the_parsers)
{
    for (int a = 0; a < REMAT_ACT_COUNT; a++) {
        const char *name = remat_act_policy_name((remat_act_policy)a);
        remat_act_policy back;
        cr_assert_eq(remat_act_policy_parse(name, &back), REMAT_OK, "%s", name);
        cr_expect_eq(back, a);
        remat_policy want, got;
        cr_assert_eq(remat_policy_parse(name, &want), REMAT_OK, "%s", name);
        fit_act_policy((remat_act_policy)a, &got);
        cr_expect_eq(memcmp(&want, &got, sizeof want), 0, "%s", name);
    }
    remat_act_policy a;
    cr_expect_eq(remat_act_policy_parse("selective:recompute-gelu", &a), REMAT_OK);
    cr_expect_eq(a, REMAT_ACT_LLMC);
    cr_expect_eq(remat_act_policy_parse("selective:recompute-attn", &a), REMAT_OK);
    cr_expect_eq(a, REMAT_ACT_MEGATRON);
    cr_expect_eq(remat_act_policy_parse("selective:recompute-gelu-ln", &a), REMAT_EINVAL);
    cr_expect_not_null(strstr(remat_last_error(), "remat_fit_request.option"), "%s",
                       remat_last_error());
    cr_expect_eq(remat_act_policy_parse("sqrt", &a), REMAT_EINVAL);
}

/* ==== Planning ============================================================================== */

static remat_chain *tiny_chain(void)
{
    remat_model_desc m;
    cr_assert_eq(remat_model_lookup("tiny", &m), REMAT_OK, "%s", remat_last_error());
    remat_chain *c = NULL;
    cr_assert_eq(fit_chain_build(&m, 2, 32, 4, &c), REMAT_OK, "%s", remat_last_error());
    return c;
}

static remat_schedule *plan_named(const remat_chain *c, const char *name)
{
    remat_policy p;
    cr_assert_eq(remat_policy_parse(name, &p), REMAT_OK, "%s", name);
    remat_schedule *s = NULL;
    cr_assert_eq(remat_plan(c, &p, UINT64_MAX, &s), REMAT_OK, "%s: %s", name, remat_last_error());
    return s;
}

static void expect_same_ops(const remat_schedule *a, const remat_schedule *b, const char *what)
{
    cr_assert_eq(a->n_ops, b->n_ops, "%s", what);
    cr_expect_eq(memcmp(a->ops, b->ops, a->n_ops * sizeof *a->ops), 0, "%s", what);
    cr_expect_eq(a->peak_bytes, b->peak_bytes, "%s", what);
}

Test(policy, presets_plan_the_schedule_of_their_meaning)
{
    remat_chain *c = tiny_chain();
    static const char *pairs[][2] = {{"llmc-selective", "selective:recompute-gelu"},
                                     {"megatron-selective", "selective:recompute-attn"}};
    for (size_t i = 0; i < 2; i++) {
        remat_schedule *a = plan_named(c, pairs[i][0]), *b = plan_named(c, pairs[i][1]);
        expect_same_ops(a, b, pairs[i][0]);
        /* store-all with every block running the option; embedding and head their default */
        for (size_t k = 0; k < a->n_ops; k++) {
            const remat_op *op = &a->ops[k];
            if (op->kind != REMAT_OP_F_ALL)
                continue;
            const remat_stage *st = &c->stages[op->stage];
            if (st->n_options == 0) {
                cr_expect_eq(op->option, REMAT_OPTION_DEFAULT);
                continue;
            }
            cr_assert_geq(op->option, 0, "%s: stage %d", pairs[i][0], op->stage);
            cr_expect_str_eq(st->options[op->option].name, pairs[i][1] + 10);
        }
        remat_schedule_free(a);
        remat_schedule_free(b);
    }
    /* full-recompute keeps every input: the op list of periodic:1 */
    remat_schedule *f = plan_named(c, "full-recompute"), *p1 = plan_named(c, "periodic:1");
    expect_same_ops(f, p1, "full-recompute");
    remat_schedule_free(f);
    remat_schedule_free(p1);
    /* recompute-gelu-ln saves less than recompute-gelu: the presets are not it */
    remat_schedule *g = plan_named(c, "llmc-selective"),
                   *gl = plan_named(c, "selective:recompute-gelu-ln");
    cr_expect_lt(gl->peak_bytes, g->peak_bytes);
    remat_schedule_free(g);
    remat_schedule_free(gl);
    remat_chain_free(c);
}

/* A generic chain calls the MLP activation recompute "recompute-act": llmc-selective runs it. */
Test(policy, llmc_selective_takes_a_generic_chains_recompute_act)
{
    remat_model_desc m;
    cr_assert_eq(remat_model_lookup("llama3-8b", &m), REMAT_OK, "%s", remat_last_error());
    remat_chain *c = NULL;
    cr_assert_eq(fit_chain_build(&m, 1, 128, 2, &c), REMAT_OK, "%s", remat_last_error());
    remat_policy p;
    cr_assert_eq(remat_policy_parse("llmc-selective", &p), REMAT_OK);
    int k = remat_policy_stage_option(&p, &c->stages[1]);
    cr_assert_geq(k, 0);
    cr_expect_str_eq(c->stages[1].options[k].name, "recompute-act");
    cr_expect_eq(remat_policy_stage_option(&p, &c->stages[0]), REMAT_OPTION_DEFAULT);
    remat_chain_free(c);
}

Test(policy, an_unknown_option_is_einval_listing_the_chains_options)
{
    remat_chain *c = tiny_chain();
    remat_policy p;
    cr_assert_eq(remat_policy_parse("selective:bogus", &p), REMAT_OK);
    remat_schedule *s = NULL;
    uint64_t least = 0;
    remat_status st[] = {remat_plan(c, &p, UINT64_MAX, &s),
                         remat_plan_layout(c, &p, REMAT_LAYOUT_POOL, UINT64_MAX, &s),
                         remat_min_budget(c, &p, &least)};
    for (size_t i = 0; i < sizeof st / sizeof *st; i++)
        cr_expect_eq(st[i], REMAT_EINVAL, "call %zu", i);
    cr_expect_null(s);
    const char *msg = remat_last_error();
    cr_expect_not_null(strstr(msg, "'bogus'"), "%s", msg);
    for (int k = 0; k < GPT_N_BLOCK_OPTIONS; k++)
        cr_expect_not_null(strstr(msg, gpt_block_option_names[k]), "%s", msg);
    /* a chain without options says so */
    remat_chain *bare = NULL;
    cr_assert_eq(remat_chain_new(2, &bare), REMAT_OK);
    snprintf(bare->name, sizeof bare->name, "bare");
    bare->input_bytes = 512;
    for (int i = 0; i < 2; i++) {
        bare->stages[i].out_bytes = bare->stages[i].saved_bytes = 512;
        bare->stages[i].fwd = bare->stages[i].bwd = 1;
    }
    cr_expect_eq(remat_plan(bare, &p, UINT64_MAX, &s), REMAT_EINVAL);
    cr_expect_not_null(strstr(remat_last_error(), "no stage options"), "%s", remat_last_error());
    remat_chain_free(bare);
    remat_chain_free(c);
}

/* ==== remat_fit ============================================================================= */

static remat_fit_result fit_with(const char *policy_or_option, int is_option)
{
    remat_fit_request r;
    remat_fit_request_init(&r);
    cr_assert_eq(remat_model_lookup("gpt2-124m", &r.model), REMAT_OK);
    r.card_bytes = 80ull << 30;
    r.batch = 8;
    if (is_option)
        snprintf(r.option, sizeof r.option, "%s", policy_or_option);
    else
        cr_assert_eq(remat_act_policy_parse(policy_or_option, &r.policy), REMAT_OK);
    remat_fit_result res;
    cr_assert_eq(remat_fit(&r, &res), REMAT_OK, "%s: %s", policy_or_option, remat_last_error());
    return res;
}

Test(policy, fit_plans_a_selective_option_as_the_scheduler_does)
{
    remat_fit_result llmc = fit_with("llmc-selective", 0),
                     gelu = fit_with("recompute-gelu", 1),
                     gelu_ln = fit_with("recompute-gelu-ln", 1);
    cr_expect_eq(llmc.per_gpu.activations, gelu.per_gpu.activations);
    cr_expect_eq(memcmp(&llmc, &gelu, sizeof llmc), 0, "the whole result");
    cr_expect_lt(gelu_ln.per_gpu.activations, gelu.per_gpu.activations);
    remat_fit_request r;
    remat_fit_request_init(&r);
    cr_assert_eq(remat_model_lookup("gpt2-124m", &r.model), REMAT_OK);
    r.card_bytes = 80ull << 30;
    snprintf(r.option, sizeof r.option, "bogus");
    remat_fit_result res;
    cr_expect_eq(remat_fit(&r, &res), REMAT_EINVAL);
    cr_expect_not_null(strstr(remat_last_error(), "'bogus'"), "%s", remat_last_error());
    cr_expect_not_null(strstr(remat_last_error(), "recompute-gelu-ln"), "%s", remat_last_error());
}

/* ==== The commands ========================================================================= */

Test(policy_cli, fit_reads_presets_and_options_alike)
{
    static cli_result a, b, c;
    cli_run(&a, "fit --model gpt2-124m --card h100-80gb --batch 8 --json --policy llmc-selective");
    cli_run(&b, "fit --model gpt2-124m --card h100-80gb --batch 8 --json --policy "
                "selective:recompute-gelu");
    cr_assert_eq(a.code, 0, "%s", a.err);
    cr_assert_eq(b.code, 0, "%s", b.err);
    cr_expect_str_eq(a.out, b.out);
    cli_run(&c, "fit --model gpt2-124m --card h100-80gb --batch 8 --json --policy "
                "selective:recompute-gelu-ln");
    cr_assert_eq(c.code, 0, "%s", c.err);
    cr_expect_not_null(strstr(c.out, "\"policy\": \"selective:recompute-gelu-ln\""), "%s", c.out);
    cli_run(&c, "fit --model gpt2-124m --card h100-80gb --policy selective:bogus");
    cr_expect_eq(c.code, 2, "%s", c.err);
    cr_expect_not_null(strstr(c.err, "'bogus'"), "%s", c.err);
    cr_expect_not_null(strstr(c.err, "recompute-attn-gelu-ln"), "%s", c.err);
    cli_run(&c, "fit --model gpt2-124m --card h100-80gb --policy sqrt");
    cr_expect_eq(c.code, 2, "%s", c.err);
    cr_expect_not_null(strstr(c.err, "--policy sqrt"), "%s", c.err);
}

Test(policy_cli, plan_reads_presets_and_options_alike)
{
    remat_chain *c = tiny_chain();
    char path[256];
    snprintf(path, sizeof path, "/tmp/remat_test_policy_%d.json", (int)getpid());
    cr_assert_eq(remat_chain_save(c, path), REMAT_OK, "%s", remat_last_error());
    remat_chain_free(c);
    static cli_result a, b, e;
    cli_run(&a, "plan %s --budget 100%% --json --policy llmc-selective", cli_sh_quote(path));
    cli_run(&b, "plan %s --budget 100%% --json --policy selective:recompute-gelu",
            cli_sh_quote(path));
    cli_run(&e, "plan %s --budget 100%% --policy selective:bogus", cli_sh_quote(path));
    unlink(path);
    cr_assert_eq(a.code, 0, "%s", a.err);
    cr_assert_eq(b.code, 0, "%s", b.err);
    cr_expect_str_eq(a.out, b.out);
    cr_expect_not_null(strstr(a.out, "\"policy\": \"selective:recompute-gelu\""), "%s", a.out);
    cr_expect_eq(e.code, 2, "%s", e.err);
    cr_expect_not_null(strstr(e.err, "'bogus'"), "%s", e.err);
    cr_expect_not_null(strstr(e.err, "recompute-gelu-ln"), "%s", e.err);
}

/* The step lines without their timing: {"step": N, "loss": X, ... */
static void losses(const char *out, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const char *l = strstr(out, "\"loss\": "); l && used < n; l = strstr(l + 1, "\"loss\": ")) {
        const char *e = strchr(l, ',');
        cr_assert_not_null(e);
        used += (size_t)snprintf(buf + used, n - used, "%.*s;", (int)(e - l), l);
    }
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char *bufs[2];
    static int next;
    char *b = malloc(1 << 22);
    cr_assert_not_null(b);
    *n = fread(b, 1, 1 << 22, f);
    fclose(f);
    free(bufs[next % 2]);
    bufs[next++ % 2] = b;
    return b;
}

Test(policy_cli, train_llmc_selective_is_selective_recompute_gelu_bit_for_bit)
{
    static cli_result a, b, c;
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "/tmp/remat_test_policy_a_%d.bin", (int)getpid());
    snprintf(pb, sizeof pb, "/tmp/remat_test_policy_b_%d.bin", (int)getpid());
    const char *base = "train --model tiny --batch 2 --seq 32 --steps 2 --device host --analytic "
                       "--json";
    cli_run(&a, "%s --policy llmc-selective --save %s", base, cli_sh_quote(pa));
    cli_run(&b, "%s --policy selective:recompute-gelu --save %s", base, cli_sh_quote(pb));
    cli_run(&c, "%s --policy selective:recompute-gelu-ln", base);
    cr_assert_eq(a.code, 0, "%s", a.err);
    cr_assert_eq(b.code, 0, "%s", b.err);
    cr_assert_eq(c.code, 0, "%s", c.err);
    static char la[4096], lb[4096];
    losses(a.out, la, sizeof la);
    losses(b.out, lb, sizeof lb);
    cr_expect_neq(la[0], '\0', "%s", a.out);
    cr_expect_str_eq(la, lb);
    /* the trained weights, every bit */
    size_t na = 0, nb = 0;
    const char *wa = read_all(pa, &na), *wb = read_all(pb, &nb);
    unlink(pa);
    unlink(pb);
    cr_assert_gt(na, 0);
    cr_assert_eq(na, nb);
    cr_expect_eq(memcmp(wa, wb, na), 0, "the weights after 2 steps differ");
    /* the same plan; recompute-gelu-ln's is smaller (llmc-selective is not it) */
    const char *key = "\"predicted_act_peak_bytes\": ";
    const char *pka = strstr(a.out, key), *pkb = strstr(b.out, key), *pkc = strstr(c.out, key);
    cr_assert(pka && pkb && pkc, "%s", a.out);
    double va = strtod(pka + strlen(key), NULL), vb = strtod(pkb + strlen(key), NULL),
           vc = strtod(pkc + strlen(key), NULL);
    cr_expect_eq(va, vb);
    cr_expect_lt(vc, va);
    cli_run(&c, "%s --policy selective:bogus", base);
    cr_expect_eq(c.code, 2, "%s", c.err);
    cr_expect_not_null(strstr(c.err, "selective:bogus"), "%s", c.err);
    cr_expect_not_null(strstr(c.err, "recompute-gelu-ln"), "%s", c.err);
}

Test(policy_cli, curve_reads_presets_and_options_alike, .timeout = 120)
{
    char dir[256], csv[300];
    snprintf(dir, sizeof dir, "/tmp/remat_test_policy_curve_%d", (int)getpid());
    snprintf(csv, sizeof csv, "%s/curve.csv", dir);
    static cli_result r;
    cli_run(&r,
            "curve --model tiny --steps 1 --policies llmc-selective,selective:recompute-gelu "
            "--out %s",
            cli_sh_quote(dir));
    cr_assert_eq(r.code, 0, "%s", r.err);
    size_t n = 0;
    char *text = read_all(csv, &n);
    text[n < (1 << 22) ? n : n - 1] = '\0';
    /* policy,budget_bytes,predicted_peak,...: the two rows plan the same bytes */
    const char *a = strstr(text, "\nllmc-selective,"), *b = strstr(text, "\nselective:recompute-gelu,");
    cr_assert(a && b, "%s", text);
    a += strlen("\nllmc-selective,");
    b += strlen("\nselective:recompute-gelu,");
    cr_expect_eq(strtoull(a, NULL, 10), strtoull(b, NULL, 10), "%s", text);
    cr_expect_eq(strtoull(strchr(a, ',') + 1, NULL, 10), strtoull(strchr(b, ',') + 1, NULL, 10),
                 "%s", text);
    unlink(csv);
    char png[300];
    snprintf(png, sizeof png, "%s/curve.png", dir);
    unlink(png);
    rmdir(dir);
    cli_run(&r, "curve --model tiny --steps 1 --policies selective:bogus --out %s",
            cli_sh_quote(dir));
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "'bogus'"), "%s", r.err);
    cr_expect_not_null(strstr(r.err, "recompute-attn-gelu-ln"), "%s", r.err);
    rmdir(dir);
}

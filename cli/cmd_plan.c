/* cli/cmd_plan.c: `remat plan CHAIN.json --budget SIZE|PCT [--policy P] [--slots N] [--curve]
 * [--json]`: a checkpoint schedule for a chain file, or the whole overhead-versus-memory curve. */
#include "cli/cli.h"
#include "core/core.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void cmd_plan_usage(FILE *f)
{
    fprintf(
        f, "usage: remat plan CHAIN.json --budget SIZE|PCT [--policy P] [--slots N] [--curve] "
           "[--json]\n"
           "                  [--layout planned|pool]\n\n"
           "Plans which activations to keep and which to recompute so that training the chain\n"
           "(stages, times and bytes; see docs/checkpoint.md) fits the memory budget.\n\n"
           "  --budget SIZE|PCT  bytes (80GB, 512MiB, ...) or a percentage of the store-all peak "
           "(40%%)\n"
           "  --policy P         optimal (default), store-all, sqrt, periodic:K, revolve,\n"
           "                     full-recompute, selective:OPTION (store-all with every stage\n"
           "                     having option OPTION running it), llmc-selective (=\n"
           "                     selective:recompute-gelu), megatron-selective (=\n"
           "                     selective:recompute-attn)\n"
           "  --slots N          memory discretisation of optimal (default 500; exact when all\n"
           "                     sizes share a unit giving at most 10,000 slots)\n"
           "  --curve            the Pareto frontier of overhead against peak memory (optimal)\n"
           "  --json             one JSON object (docs/contracts.md, plan JSON)\n"
           "  --layout L         planned (default): the buffers get offsets in one arena, the\n"
           "                     peak is the arena's size and never exceeds the budget; pool:\n"
           "                     no arena, the peak is the most bytes live at any op\n\n"
           "Exit codes: 0 ok, 1 infeasible budget (the message gives the minimum), 2 bad usage or\n"
           "bad chain file.\n");
}

typedef struct {
    const char *chain_path, *budget_text;
    remat_policy policy;
    int curve, json;
    remat_layout_mode layout;
} plan_args;

static int plan_parse_args(int argc, char **argv, plan_args *a)
{
    static const struct option opts[] = {
        {"budget", required_argument, NULL, 'b'}, {"policy", required_argument, NULL, 'p'},
        {"slots", required_argument, NULL, 's'},  {"curve", no_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},         {"layout", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->policy.kind = REMAT_POLICY_OPTIMAL;
    long slots = 0;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'b')
            a->budget_text = optarg;
        else if (c == 'p') {
            if (remat_policy_parse(optarg, &a->policy) != REMAT_OK)
                return cli_usage_error("plan", "--policy: %s", remat_last_error());
        } else if (c == 's') {
            if (cli_parse_int("plan", "--slots", optarg, 1, 1000000, &slots) != 0)
                return EXIT_USAGE;
        } else if (c == 'c')
            a->curve = 1;
        else if (c == 'j')
            a->json = 1;
        else if (c == 'l') {
            if (remat_layout_mode_parse(optarg, &a->layout) != REMAT_OK)
                return cli_usage_error("plan", "--layout: %s", remat_last_error());
        } else
            return cli_bad_option("plan", argv);
    }
    a->policy.slots = (int)slots;
    if (optind >= argc)
        return cli_usage_error("plan", "missing CHAIN.json");
    a->chain_path = argv[optind++];
    if (optind < argc)
        return cli_usage_error("plan", "unexpected argument '%s'", argv[optind]);
    if (!a->budget_text && !a->curve)
        return cli_usage_error("plan", "--budget is required (bytes like 512MiB, or a percentage "
                                       "like 40%%)");
    if (a->curve && a->policy.kind != REMAT_POLICY_OPTIMAL)
        return cli_usage_error("plan", "--curve is the optimal policy's frontier; drop --policy");
    return EXIT_OK;
}

/* Resolves the budget: bytes, or a percentage of the store-all peak. */
static int plan_budget(const char *text, uint64_t store_all, uint64_t *out)
{
    double pct = 0;
    int is_pct = 0;
    if (remat_parse_budget(text, out, &pct, &is_pct) != REMAT_OK)
        return cli_usage_error("plan", "--budget: %s", remat_last_error());
    if (is_pct) {
        double b = (double)store_all * pct / 100.0;
        *out = b >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)b;
    }
    return EXIT_OK;
}

/* ---- text output ------------------------------------------------------------------------- */

static const char *plan_op_name(remat_op_kind k)
{
    static const char *names[] = {"F_ck", "F_n", "F_all", "B"};
    return names[k];
}

/* Prints ops compactly: runs of one kind over consecutive stages become "F_n 3-7" (B runs go
 * down: "B 7-3"); F_all with an option reads "F_all 4:name". */
static void plan_print_ops(const remat_schedule *s, const remat_chain *c)
{
    int col = 0;
    for (size_t k = 0; k < s->n_ops;) {
        const remat_op *op = &s->ops[k];
        int step = op->kind == REMAT_OP_B ? -1 : 1;
        size_t e = k + 1;
        while (op->option < 0 && e < s->n_ops && s->ops[e].kind == op->kind &&
               s->ops[e].option < 0 && s->ops[e].stage == s->ops[e - 1].stage + step)
            e++;
        char tok[96];
        if (op->kind == REMAT_OP_F_ALL && op->option >= 0)
            snprintf(tok, sizeof tok, "F_all %d:%s", op->stage,
                     c->stages[op->stage].options[op->option].name);
        else if (e - k > 1)
            snprintf(tok, sizeof tok, "%s %d-%d", plan_op_name(op->kind), op->stage,
                     s->ops[e - 1].stage);
        else
            snprintf(tok, sizeof tok, "%s %d", plan_op_name(op->kind), op->stage);
        int w = (int)strlen(tok) + 2;
        if (col > 0 && col + w > 96) {
            printf("\n");
            col = 0;
        }
        printf("%s%s", col ? ", " : "  ", tok);
        col += w;
        k = e;
    }
    printf("\n");
}

/* One comparison line: policy p's own plan with no budget limit. */
static void plan_print_reference(const remat_chain *c, const char *policy, remat_layout_mode layout,
                                 uint64_t budget, uint64_t store_all)
{
    remat_policy p;
    remat_schedule *s = NULL;
    char h[32];
    if (remat_policy_parse(policy, &p) != REMAT_OK)
        return;
    if (remat_plan_layout(c, &p, layout, UINT64_MAX, &s) != REMAT_OK)
        return;
    printf("  %-10s peak %9s (%5.1f%%), overhead %+6.1f%%, %s this budget\n", policy,
           remat_format_bytes(s->peak_bytes, h, sizeof h),
           store_all ? 100.0 * (double)s->peak_bytes / (double)store_all : 0.0, 100 * s->overhead,
           s->peak_bytes <= budget ? "fits" : "exceeds");
    remat_schedule_free(s);
}

static void plan_print_text(const remat_schedule *s, const remat_chain *c, uint64_t store_all)
{
    char h[32], b[32], name[32];
    printf("chain '%s': %d stages, store-all peak %s (%llu bytes)\n", c->name, c->n_stages,
           remat_format_bytes(store_all, h, sizeof h), (unsigned long long)store_all);
    printf("policy %s, budget %s (%llu bytes)\n", remat_policy_name(&s->policy, name, sizeof name),
           remat_format_bytes(s->budget_bytes, b, sizeof b), (unsigned long long)s->budget_bytes);
    printf("peak      %s (%llu bytes), %.1f%% of store-all\n",
           remat_format_bytes(s->peak_bytes, h, sizeof h), (unsigned long long)s->peak_bytes,
           store_all ? 100.0 * (double)s->peak_bytes / (double)store_all : 0.0);
    if (s->layout)
        printf("layout    planned: arena %s (%llu bytes), lower bound %llu bytes (%+.2f%%; "
               "%zu buffers, %s)\n",
               remat_format_bytes(s->layout->arena_bytes, h, sizeof h),
               (unsigned long long)s->layout->arena_bytes,
               (unsigned long long)s->layout->lower_bound_bytes,
               s->layout->lower_bound_bytes
                   ? 100.0 *
                         ((double)s->layout->arena_bytes / (double)s->layout->lower_bound_bytes - 1)
                   : 0.0,
               s->layout->n_buffers, s->layout->heuristic ? s->layout->heuristic : "-");
    else
        printf("layout    pool: no arena, the peak is the most bytes live at any op\n");
    printf("time      %.6g (store-all %.6g), overhead %+.2f%%\n", s->time, s->base_time,
           100 * s->overhead);
    printf("compare:\n");
    remat_layout_mode layout = s->layout ? REMAT_LAYOUT_PLANNED : REMAT_LAYOUT_POOL;
    plan_print_reference(c, "store-all", layout, s->budget_bytes, store_all);
    plan_print_reference(c, "sqrt", layout, s->budget_bytes, store_all);
    printf(
        "schedule (%zu ops; F_ck keeps its input, F_n frees it, F_all stores for the backward):\n",
        s->n_ops);
    plan_print_ops(s, c);
}

/* ---- the curve ---------------------------------------------------------------------------- */

static int plan_curve(const remat_chain *c, const plan_args *a, uint64_t store_all)
{
    remat_curve_point *pts = NULL;
    size_t n = 0;
    remat_status s = remat_curve(c, &a->policy, &pts, &n);
    if (s != REMAT_OK)
        return cli_fail("plan", s, "curve");
    double base = 0;
    for (int i = 0; i < c->n_stages; i++)
        base += c->stages[i].fwd + c->stages[i].bwd;
    if (a->json) {
        /* remat_json_number: JSON has no nan or inf (the loader keeps times finite anyway) */
        printf("{\"policy\": \"optimal\", \"store_all_peak_bytes\": %llu, \"base_time\": ",
               (unsigned long long)store_all);
        remat_json_number(stdout, base);
        printf(", \"points\": [");
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"budget_bytes\": %llu, \"peak_bytes\": %llu, \"time\": ", i ? ", " : "",
                   (unsigned long long)pts[i].budget_bytes, (unsigned long long)pts[i].peak_bytes);
            remat_json_number(stdout, pts[i].time);
            printf(", \"overhead\": ");
            remat_json_number(stdout, pts[i].overhead);
            printf("}");
        }
        printf("]}\n");
    } else {
        char h[32];
        printf("chain '%s': %d stages, store-all peak %s (%llu bytes)\n", c->name, c->n_stages,
               remat_format_bytes(store_all, h, sizeof h), (unsigned long long)store_all);
        printf("%14s %8s %12s %10s\n", "peak", "% store", "time", "overhead");
        for (size_t i = 0; i < n; i++)
            printf("%14s %7.1f%% %12.6g %+9.2f%%\n",
                   remat_format_bytes(pts[i].peak_bytes, h, sizeof h),
                   store_all ? 100.0 * (double)pts[i].peak_bytes / (double)store_all : 0.0,
                   pts[i].time, 100 * pts[i].overhead);
    }
    free(pts);
    return EXIT_OK;
}

int cmd_plan(int argc, char **argv)
{
    plan_args a;
    int rc = plan_parse_args(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc;
    remat_chain *c = NULL;
    remat_status s = remat_chain_load(a.chain_path, &c);
    if (s != REMAT_OK)
        return cli_fail("plan", s, NULL);
    uint64_t store_all = 0, budget = 0;
    s = remat_store_all_peak(c, &store_all);
    if (s != REMAT_OK)
        rc = cli_fail("plan", s, NULL);
    else if (a.curve)
        rc = plan_curve(c, &a, store_all);
    else if ((rc = plan_budget(a.budget_text, store_all, &budget)) == EXIT_OK) {
        remat_schedule *plan = NULL;
        s = remat_plan_layout(c, &a.policy, a.layout, budget, &plan);
        if (s != REMAT_OK)
            rc = cli_fail("plan", s, NULL);
        else if (a.json)
            s = remat_schedule_write_json(plan, c, stdout);
        else
            plan_print_text(plan, c, store_all);
        if (plan && s != REMAT_OK)
            rc = cli_fail("plan", s, "writing the plan");
        remat_schedule_free(plan);
    }
    remat_chain_free(c);
    return rc;
}

/* cli/cmd_curve.c: `remat curve`: measured recompute-versus-memory curves of each policy on our
 * GPT. */
#include "cli/cli.h"
#include "core/core.h"
#include "model/rig.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cmd_curve_usage(FILE *f)
{
    fprintf(
        f,
        "usage: remat curve [--model M] [--batch B] [--seq T] [--device SPEC] [--policies LIST]\n"
        "                   [--points N] [--steps K] [--reps R] [--out DIR] [--trace FILE]\n"
        "                   [--profile-file FILE] [--layout planned|pool]\n"
        "                   [--dtype fp32|bf16] [--master-weights on|off]\n\n"
        "Profiles the model, then for each policy trains K real steps at each memory budget and\n"
        "records the predicted and measured activation peak and step time. Fixed policies\n"
        "(store-all, sqrt, periodic:K, full-recompute, selective:OPTION, llmc-selective =\n"
        "selective:recompute-gelu, megatron-selective = selective:recompute-attn) are\n"
        "one point each, at their own peak; when optimal is listed it is also planned at exactly\n"
        "each fixed policy's peak and measured in the same steps (the dominance check below).\n"
        "Sweeping policies (optimal, revolve) get N budgets evenly spaced from their least\n"
        "feasible one to store-all's peak (optimal skips those equal to a fixed policy's peak).\n"
        "Every step runs the point's schedules and a store-all forward+backward of the same batch\n"
        "back to back (the order rotating), and a schedule's overhead is the median over steps of\n"
        "its time over store-all's, minus 1.\n"
        "  --model M       preset tiny, small (default), gpt2-124m, gpt2-350m\n"
        "  --batch B       sequences per step (default 4)\n"
        "  --seq T         tokens per sequence (default: the model's maxT)\n"
        "  --device SPEC   auto (default), host, cuda:N\n"
        "  --policies L    comma-separated (default store-all,sqrt,periodic:2,llmc-selective,\n"
        "                  megatron-selective,optimal)\n"
        "  --points N      budgets per sweeping policy (default 8)\n"
        "  --steps K       measured steps per point after one warm-up step (default 4; the\n"
        "                  standard errors and the dominance verdicts need K >= 3)\n"
        "  --reps R        profiling rounds, at least (default 3, at most 64; see\n"
        "                  `remat profile --help`)\n"
        "  --profile-file F  reuse the stage profile in F when it was measured for the same\n"
        "                  model, batch, seq, device and dtype; else profile and write it to F\n"
        "                  (as `remat train --profile-file`)\n"
        "  --out DIR       where curve.csv and curve.png go (default curve; created)\n"
        "  --trace FILE    also record the pool's allocation trace of the whole sweep\n"
        "  --dtype D       fp32 (default) or bf16 (mixed precision, as `remat train --dtype`);\n"
        "                  --master-weights on|off as train's (bf16 only)\n"
        "  --layout L      planned (default): each step's activations in one arena at offsets\n"
        "                  planned before the step (the predicted peak is the arena); pool: each\n"
        "                  buffer from the caching pool as the step goes\n"
        "curve.csv, one row per policy and budget, sorted by policy (as listed) then budget:\n"
        "  policy, budget_bytes, predicted_peak, measured_peak (bytes of activations),\n"
        "  predicted_time (the profile's ms), measured_ms (median forward+backward wall time),\n"
        "  overhead (median over steps of the time over the same step's store-all time, minus 1),\n"
        "  predicted_overhead, store_all_ms (store-all's median), store_all_peak, overhead_min\n"
        "  (the two fastest steps' ratio, minus 1), overhead_se (standard error of overhead:\n"
        "  1.2533 x 1.4826 x the median absolute deviation of the ratios / sqrt(K); nan if K < "
        "3),\n"
        "  paired (the policy measured in the same steps: optimal on a fixed policy's row, that\n"
        "  policy on optimal's row; - if none), optimal_minus_policy and diff_se (fixed rows:\n"
        "  median over steps of (optimal's time - the policy's) / store-all's, in the unit of\n"
        "  overhead, and its standard error; nan elsewhere), dominance (fixed rows: cheaper,\n"
        "  within-noise, worse (beyond 3 standard errors either way), same-schedule (optimal\n"
        "  planned the very same ops: differences are noise), unresolved (K < 3), peak-above\n"
        "  (optimal's measured peak above the policy's), infeasible (no optimal plan within the\n"
        "  policy's peak); - elsewhere).\n"
        "curve.png (gnuplot): measured overhead against measured activation peak, one line per\n"
        "policy. Progress goes to stderr. Run with OMP_WAIT_POLICY=passive on a shared machine.\n"
        "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input.\n");
}

/* ==== Options ============================================================================== */

typedef struct {
    const char *model, *device, *policies, *out, *trace, *profile_file;
    long batch, points, steps, reps;
    gpt_overrides ov;
    remat_layout_mode layout;
    cli_precision prec;
} curve_opts;

static int curve_parse(int argc, char **argv, curve_opts *o)
{
    enum { O_POINTS = 256, O_STEPS, O_REPS, O_TRACE, O_PROFILE_FILE };
    static const struct option opts[] = {CLI_OPT_MODEL,
                                         {"policies", required_argument, NULL, 'p'},
                                         {"points", required_argument, NULL, O_POINTS},
                                         {"steps", required_argument, NULL, O_STEPS},
                                         {"reps", required_argument, NULL, O_REPS},
                                         {"out", required_argument, NULL, 'o'},
                                         {"trace", required_argument, NULL, O_TRACE},
                                         {"profile-file", required_argument, NULL, O_PROFILE_FILE},
                                         CLI_OPT_BATCH,
                                         CLI_OPT_SEQ,
                                         CLI_OPT_PRECISION,
                                         CLI_OPT_LAYOUT,
                                         {NULL, 0, NULL, 0}};
    *o = (curve_opts){.device = "auto",
                      .policies = "store-all,sqrt,periodic:2,llmc-selective,megatron-selective,"
                                  "optimal",
                      .out = "curve",
                      .batch = 4,
                      .points = 8,
                      .steps = 4,
                      .reps = 3,
                      .prec = CLI_PRECISION_DEFAULT};
    opterr = 0;
    optind = 1;
    int c;
    const cli_model_opts shared = {
        .model = &o->model, .device = &o->device, .batch = &o->batch, .ov = &o->ov,
        .prec = &o->prec, .layout = &o->layout};
    while ((c = cli_next_option("curve", argc, argv, "", opts, &shared)) >= 0) {
        switch (c) {
        case 'p': o->policies = optarg; break;
        case 'o': o->out = optarg; break;
        case O_TRACE: o->trace = optarg; break;
        case O_PROFILE_FILE: o->profile_file = optarg; break;
        case O_POINTS:
            if (cli_parse_int("curve", "--points", optarg, 2, 1000, &o->points))
                return -1;
            break;
        case O_STEPS:
            if (cli_parse_int("curve", "--steps", optarg, 1, 100000, &o->steps))
                return -1;
            break;
        case O_REPS:
            if (cli_parse_int("curve", "--reps", optarg, 1, 64, &o->reps))
                return -1;
            break;
        default:
            cli_bad_option("curve", argv);
            return -1;
        }
    }
    if (c == -2) /* a bad value of a shared option, reported */
        return -1;
    if (optind < argc) {
        cli_usage_error("curve", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    return cli_check_precision("curve", &o->prec);
}

/* ==== Policies ============================================================================= */

enum { CURVE_MAX_POLICIES = 32 };

typedef struct {
    char name[64];
    remat_policy pol; /* remat_policy_parse of name */
    int sweeps;       /* optimal and revolve: one point per budget */
} curve_policy;

/* Splits the comma-separated list into policies; prints the usage error and returns -1 on a bad
 * name. */
static int curve_parse_policies(const char *list, curve_policy *out, size_t *n)
{
    *n = 0;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof out->name || *n == CURVE_MAX_POLICIES) {
            cli_usage_error("curve", "--policies %s: an empty or overlong name, or more than %d",
                            list, CURVE_MAX_POLICIES);
            return -1;
        }
        curve_policy *cp = &out[(*n)++];
        memset(cp, 0, sizeof *cp);
        memcpy(cp->name, p, len);
        if (remat_policy_parse(cp->name, &cp->pol) != REMAT_OK) {
            cli_usage_error("curve", "--policies: %s", remat_last_error());
            return -1;
        }
        cp->sweeps = cp->pol.kind == REMAT_POLICY_OPTIMAL || cp->pol.kind == REMAT_POLICY_REVOLVE;
        p += len;
        if (*p == '\0')
            return 0;
    }
}

/* ==== The run ============================================================================== */

/* Verdicts of the dominance check (a fixed policy's row against optimal at its peak). */
typedef enum {
    CURVE_DOM_NONE,       /* not a fixed policy with an optimal counterpart */
    CURVE_DOM_SAME,       /* optimal planned the very same op list: equal computation */
    CURVE_DOM_CHEAPER,    /* optimal measured cheaper by more than CURVE_DOM_SE standard errors */
    CURVE_DOM_NOISE,      /* the difference is within CURVE_DOM_SE standard errors */
    CURVE_DOM_WORSE,      /* optimal measured dearer by more than CURVE_DOM_SE standard errors */
    CURVE_DOM_UNRESOLVED, /* fewer than 3 measured steps: no noise estimate */
    CURVE_DOM_PEAK_ABOVE, /* optimal's measured peak exceeded the policy's */
    CURVE_DOM_INFEASIBLE, /* optimal found no plan within the policy's peak */
} curve_dom;

/* Standard errors a difference must exceed to be called resolved. The error is estimated from 8
 * or so steps' median absolute deviation, itself noisy: over 52 pairs where optimal planned the
 * very schedule of the policy (a true difference of 0), 5 were beyond 2 of them and 1 beyond 3
 * (small, batch 4, 8 steps, 2026-11-29). */
#define CURVE_DOM_SE 3.0

static const char *const curve_dom_names[] = {
    "-",     "same-schedule", "cheaper",    "within-noise",
    "worse", "unresolved",    "peak-above", "infeasible"};

typedef struct {
    char policy[64];
    int order; /* index of the policy in --policies, then the order measured (sorting the CSV) */
    size_t seq;
    uint64_t budget, predicted_peak, measured_peak;
    double predicted_time, measured_ms, overhead, predicted_overhead, base_ms, overhead_min;
    double overhead_se;      /* standard error of overhead, from the per-step spread */
    char paired[64];         /* the row measured in the same steps ("-" when none) */
    double dom_diff, dom_se; /* fixed rows: optimal's overhead minus this one's, and its error */
    curve_dom dom;
} curve_row;

typedef struct {
    curve_opts o;
    gpt_config cfg;
    int T;
    gpt_tokens data;
    gpt_loader loader;
    gpt_rig rig; /* its chain is the profiled one */
    remat_schedule *base_sched;
    uint64_t store_all_peak;
    long adam_step;
    double *ms[2], *base_ms, *diff; /* o.steps each */
    curve_row *rows;
    size_t n_rows, cap_rows, runs_done, runs_total;
    cli_output trace; /* --trace, renamed into place only after a complete sweep */
    int tracing, sweep_ok;
    int tty; /* progress redrawn in place on a terminal */
} curve_run;

static void curve_close(curve_run *r)
{
    remat_schedule_free(r->base_sched);
    gpt_rig_close(&r->rig); /* ends the pool's trace: a write error shows in cli_output_close */
    if (r->tracing && cli_output_close(&r->trace, r->sweep_ok) != REMAT_OK)
        cli_fail("curve", REMAT_EIO, "--trace");
    gpt_loader_free(&r->loader);
    gpt_tokens_free(&r->data);
    free(r->ms[0]);
    free(r->ms[1]);
    free(r->base_ms);
    free(r->diff);
    free(r->rows);
}

/* Data, device, pool, model with GPT-2 init weights; the profiled chain and the store-all plan. */
static int curve_open(curve_run *r)
{
    size_t need = (size_t)r->o.batch * r->T + 1;
    remat_status s = gpt_tokens_builtin(need > (1u << 20) ? need : (1u << 20), &r->data);
    if (s == REMAT_OK)
        s = gpt_loader_init(&r->loader, &r->data, (int)r->o.batch, r->T, 0, 1337);
    if (s != REMAT_OK)
        return cli_fail("curve", s, "cannot load the corpus");
    size_t k = (size_t)r->o.steps + 1;
    r->ms[0] = calloc(k, sizeof(double));
    r->ms[1] = calloc(k, sizeof(double));
    r->base_ms = calloc(k, sizeof(double));
    r->diff = calloc(k, sizeof(double));
    if (!r->ms[0] || !r->ms[1] || !r->base_ms || !r->diff)
        return cli_fail("curve", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    if (r->o.trace) {
        if ((s = cli_output_open(&r->trace, r->o.trace)) != REMAT_OK)
            return cli_fail("curve", s, "--trace");
        r->tracing = 1;
    }
    gpt_precision prec;
    cli_model_precision(&r->o.prec, 1337, &prec);
    gpt_rig_spec spec = {.device = r->o.device, .trace = r->tracing ? r->trace.f : NULL,
                         .cfg = r->cfg, .B = (int)r->o.batch, .T = r->T, .prec = &prec,
                         .seed = 1337};
    if ((s = gpt_rig_open(&r->rig, &spec)) != REMAT_OK)
        return cli_fail("curve", s, r->rig.failed ? r->rig.failed : "");
    fprintf(stderr, "curve: profiling the stages (%ld reps)...\n", r->o.reps);
    gpt_loader_next(&r->loader, r->rig.inputs, r->rig.targets);
    remat_chain *profiled = NULL;
    int rc = train_profile("curve", r->rig.model, r->rig.inputs, (int)r->o.reps, r->o.profile_file,
                           stderr, &profiled);
    if (rc != EXIT_OK)
        return rc;
    remat_chain_free(r->rig.chain);
    r->rig.chain = profiled;
    if ((s = remat_store_all_peak(r->rig.chain, &r->store_all_peak)) != REMAT_OK)
        return cli_fail("curve", s, "store-all peak");
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    if ((s = remat_plan_layout(r->rig.chain, &all, r->o.layout, r->store_all_peak,
                               &r->base_sched)) != REMAT_OK)
        return cli_fail("curve", s, "cannot plan store-all");
    return EXIT_OK;
}

/* One forward and backward under sched: wall milliseconds and the pool's activation peak. */
static remat_status curve_forward_backward(curve_run *r, const remat_schedule *sched, float *loss,
                                           double *ms, uint64_t *act_peak)
{
    gpt_rig_step st;
    REMAT_TRY(gpt_rig_run(&r->rig, sched, NULL, 0, &st));
    *loss = st.loss;
    *ms = st.ms;
    *act_peak = st.act_peak;
    return REMAT_OK;
}


/* One step of every arm and of store-all, in `order`; the losses must agree bit for bit. */
static remat_status curve_step(curve_run *r, const remat_schedule *const *scheds, curve_row **rows,
                               size_t n_arms, long step)
{
    /* The warm-up step 0 takes the first order; the measured steps 1..K start the cycle. */
    const int *order = gpt_ab_order(n_arms, step > 0 ? step - 1 : 0);
    float loss[3];
    double ms[3];
    uint64_t act[3];
    for (size_t k = 0; k <= n_arms; k++) {
        int j = order[k];
        const remat_schedule *s = j == 0 ? r->base_sched : scheds[j - 1];
        REMAT_TRY(curve_forward_backward(r, s, &loss[j], &ms[j], &act[j]));
    }
    for (size_t a = 0; a < n_arms; a++) {
        if (memcmp(&loss[a + 1], &loss[0], sizeof loss[0]) != 0)
            return remat_fail(REMAT_EINTERNAL, "%s: loss %.9g under the plan, %.9g under store-all",
                              rows[a]->policy, loss[a + 1], loss[0]);
        if (act[a + 1] > rows[a]->measured_peak)
            rows[a]->measured_peak = act[a + 1];
        if (step > 0)
            r->ms[a][step - 1] = ms[a + 1];
    }
    if (step > 0)
        r->base_ms[step - 1] = ms[0];
    if (r->tty)
        cli_progress(stderr, "\rcurve: [%zu/%zu] %s at %.2f MiB: step %ld/%ld, %.0f ms   ",
                     r->runs_done + 1, r->runs_total, rows[0]->policy,
                     (double)rows[0]->budget / 1048576.0, step, r->o.steps, ms[1]);
    return REMAT_OK;
}

/* Fills the measured fields of arm a's row from the steps in r->ms[a] and r->base_ms. */
static remat_status curve_arm_stats(curve_run *r, size_t a, curve_row *row)
{
    gpt_ab ab;
    REMAT_TRY(gpt_ab_compare(r->ms[a], r->base_ms, (size_t)r->o.steps, &ab));
    row->overhead = ab.overhead;
    row->overhead_se = ab.overhead_se;
    row->measured_ms = ab.ms;
    row->base_ms = ab.base_ms;
    row->overhead_min = ab.overhead_min;
    return REMAT_OK;
}

/* The dominance verdict of a fixed policy's row (arm 0) against optimal at its peak (arm 1):
 * the median over steps of their overhead difference, both measured in the same steps. */
static void curve_dominance(curve_run *r, curve_row *fixed, const curve_row *opt, int same)
{
    size_t k = (size_t)r->o.steps;
    for (size_t i = 0; i < k; i++)
        r->diff[i] = (r->ms[1][i] - r->ms[0][i]) / r->base_ms[i];
    fixed->dom_diff = gpt_median_se(r->diff, k, &fixed->dom_se);
    if (same)
        fixed->dom = CURVE_DOM_SAME;
    else if (opt->measured_peak > fixed->measured_peak)
        fixed->dom = CURVE_DOM_PEAK_ABOVE;
    else if (isnan(fixed->dom_se))
        fixed->dom = CURVE_DOM_UNRESOLVED;
    else if (fixed->dom_diff < -CURVE_DOM_SE * fixed->dom_se)
        fixed->dom = CURVE_DOM_CHEAPER;
    else if (fixed->dom_diff > CURVE_DOM_SE * fixed->dom_se)
        fixed->dom = CURVE_DOM_WORSE;
    else
        fixed->dom = CURVE_DOM_NOISE;
}

/* Trains one warm-up step and o.steps measured steps of each arm (one or two schedules), each
 * step interleaved with a store-all forward+backward of the same batch. Fills the measured fields
 * of the arms' rows. */
static remat_status curve_measure(curve_run *r, const remat_schedule *const *scheds,
                                  curve_row **rows, size_t n_arms)
{
    gpt_adamw hp = gpt_adamw_defaults();
    for (size_t a = 0; a < n_arms; a++)
        rows[a]->measured_peak = 0;
    for (long step = 0; step <= r->o.steps; step++) {
        gpt_loader_next(&r->loader, r->rig.inputs, r->rig.targets);
        REMAT_TRY(curve_step(r, scheds, rows, n_arms, step));
        REMAT_TRY(gpt_model_update(r->rig.model, &hp, (int)++r->adam_step));
    }
    for (size_t a = 0; a < n_arms; a++)
        REMAT_TRY(curve_arm_stats(r, a, rows[a]));
    r->runs_done++;
    for (size_t a = 0; a < n_arms; a++) /* the policy names are ones curve_parse_policies took */
        cli_progress(stderr,
                     "%scurve: [%zu/%zu] %s at %.2f MiB: %.1f ms vs store-all %.1f ms (%+.1f%%, "
                     "predicted %+.1f%%)%s\n",
                     r->tty && a == 0 ? "\r" : "", r->runs_done, r->runs_total, rows[a]->policy,
                     (double)rows[a]->budget / 1048576.0, rows[a]->measured_ms, rows[a]->base_ms,
                     100 * rows[a]->overhead, 100 * rows[a]->predicted_overhead,
                     r->tty && a == 0 ? "      " : "");
    return REMAT_OK;
}

static remat_status curve_push_row(curve_run *r, const curve_row *row)
{
    if (r->n_rows == r->cap_rows) {
        size_t cap = r->cap_rows ? 2 * r->cap_rows : 16;
        curve_row *rows = realloc(r->rows, cap * sizeof *rows);
        if (!rows)
            return remat_fail(REMAT_ENOMEM, "out of host memory");
        r->rows = rows;
        r->cap_rows = cap;
    }
    r->rows[r->n_rows] = *row;
    r->rows[r->n_rows].seq = r->n_rows;
    r->n_rows++;
    return REMAT_OK;
}

/* A row for schedule s of policy `name` (the order-th of --policies), measured fields empty. */
static curve_row curve_new_row(const char *name, int order, const remat_schedule *s)
{
    curve_row row;
    memset(&row, 0, sizeof row);
    snprintf(row.policy, sizeof row.policy, "%s", name);
    snprintf(row.paired, sizeof row.paired, "-");
    row.order = order;
    row.budget = s->budget_bytes;
    row.predicted_peak = s->peak_bytes;
    row.predicted_time = s->time;
    row.predicted_overhead = s->overhead;
    row.overhead_se = row.dom_diff = row.dom_se = NAN;
    row.dom = CURVE_DOM_NONE;
    return row;
}

/* Do a and b run the same ops? */
static int curve_same_ops(const remat_schedule *a, const remat_schedule *b)
{
    if (a->n_ops != b->n_ops)
        return 0;
    for (size_t i = 0; i < a->n_ops; i++)
        if (a->ops[i].kind != b->ops[i].kind || a->ops[i].stage != b->ops[i].stage ||
            a->ops[i].option != b->ops[i].option)
            return 0;
    return 1;
}

/* Measures one point of a policy: alone, or (a fixed policy with an optimal counterpart `opt`
 * planned at its peak) together with it, in the same steps, and records the dominance check. */
static remat_status curve_measure_point(curve_run *r, const char *name, int order,
                                        const remat_schedule *s, const char *opt_name,
                                        int opt_order, const remat_schedule *opt, int opt_missing)
{
    curve_row row = curve_new_row(name, order, s), orow;
    curve_row *rows[2] = {&row, &orow};
    const remat_schedule *scheds[2] = {s, opt};
    if (opt) {
        orow = curve_new_row(opt_name, opt_order, opt);
        snprintf(orow.paired, sizeof orow.paired, "%s", name);
        snprintf(row.paired, sizeof row.paired, "%s", opt_name);
    }
    REMAT_TRY(curve_measure(r, scheds, rows, opt ? 2 : 1));
    if (opt)
        curve_dominance(r, &row, &orow, curve_same_ops(s, opt));
    else if (opt_missing)
        row.dom = CURVE_DOM_INFEASIBLE;
    REMAT_TRY(curve_push_row(r, &row));
    return opt ? curve_push_row(r, &orow) : REMAT_OK;
}

/* The schedule of cp at budget (fixed policies: at their own least budget). */
static remat_status curve_plan(const curve_run *r, const curve_policy *cp, uint64_t budget,
                               remat_schedule **out)
{
    return remat_plan_layout(r->rig.chain, &cp->pol, r->o.layout, budget, out);
}

/* The budgets of cp: n evenly spaced from its least feasible one to store-all's peak (one, at its
 * own peak, for a fixed policy). */
static remat_status curve_budgets(const curve_run *r, const curve_policy *cp, uint64_t *budgets,
                                  size_t *n)
{
    uint64_t lo;
    REMAT_TRY(remat_min_budget_layout(r->rig.chain, &cp->pol, r->o.layout, &lo));
    if (!cp->sweeps || lo >= r->store_all_peak) {
        budgets[0] = cp->sweeps ? r->store_all_peak : lo;
        *n = 1;
        return REMAT_OK;
    }
    *n = (size_t)r->o.points;
    for (size_t i = 0; i < *n; i++)
        budgets[i] =
            lo + (uint64_t)((double)(r->store_all_peak - lo) * (double)i / (double)(*n - 1));
    return REMAT_OK;
}

/* The first optimal policy of the list (the counterpart of every fixed policy), or -1. */
static int curve_find_optimal(const curve_policy *pols, size_t n_pols)
{
    for (size_t p = 0; p < n_pols; p++)
        if (pols[p].pol.kind == REMAT_POLICY_OPTIMAL)
            return (int)p;
    return -1;
}

/* Is budget b the peak of a fixed policy (measured with optimal at it, so not swept again)? */
static int curve_is_fixed_peak(const curve_policy *pols, size_t n_pols, const uint64_t *budgets,
                               size_t stride, uint64_t b)
{
    for (size_t p = 0; p < n_pols; p++)
        if (!pols[p].sweeps && budgets[p * stride] == b)
            return 1;
    return 0;
}

/* A fixed policy's point, with optimal planned at exactly its peak when optimal is in the list
 * (an optimal that finds no plan there is recorded as "infeasible", and the point measured
 * alone). */
static remat_status curve_fixed_point(curve_run *r, const curve_policy *pols, size_t p, int opt,
                                      uint64_t budget)
{
    remat_schedule *s = NULL, *o = NULL;
    REMAT_TRY(curve_plan(r, &pols[p], budget, &s));
    remat_status st = REMAT_OK;
    int missing = 0;
    if (opt >= 0) {
        st = remat_plan_layout(r->rig.chain, &pols[opt].pol, r->o.layout, s->peak_bytes, &o);
        missing = st == REMAT_EINFEASIBLE;
        if (missing) {
            fprintf(stderr, "curve: optimal has no plan within %s's peak (%llu bytes): %s\n",
                    pols[p].name, (unsigned long long)s->peak_bytes, remat_last_error());
            st = REMAT_OK;
        }
    }
    if (st == REMAT_OK)
        st = curve_measure_point(r, pols[p].name, (int)p, s, opt >= 0 ? pols[opt].name : NULL, opt,
                                 o, missing);
    remat_schedule_free(s);
    remat_schedule_free(o);
    return st;
}

/* Every point of every policy: each fixed policy (with optimal at its peak), then the sweeps
 * (optimal skipping the budgets already measured at a fixed policy's peak). */
static int curve_sweep(curve_run *r, const curve_policy *pols, size_t n_pols)
{
    size_t n_budgets[CURVE_MAX_POLICIES], stride = (size_t)r->o.points;
    uint64_t *budgets = malloc(n_pols * stride * sizeof *budgets);
    if (!budgets)
        return cli_fail("curve", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    int opt = curve_find_optimal(pols, n_pols), rc = EXIT_OK;
    for (size_t p = 0; p < n_pols && rc == EXIT_OK; p++) {
        remat_status s = curve_budgets(r, &pols[p], budgets + p * stride, &n_budgets[p]);
        if (s != REMAT_OK)
            rc = cli_fail("curve", s, pols[p].name);
    }
    for (size_t p = 0; p < n_pols && rc == EXIT_OK; p++)
        for (size_t i = 0; i < n_budgets[p]; i++)
            r->runs_total += !((int)p == opt && curve_is_fixed_peak(pols, n_pols, budgets, stride,
                                                                    budgets[p * stride + i]));
    for (size_t p = 0; p < n_pols && rc == EXIT_OK; p++)
        if (!pols[p].sweeps) {
            remat_status st = curve_fixed_point(r, pols, p, opt, budgets[p * stride]);
            if (st != REMAT_OK)
                rc = cli_fail("curve", st, pols[p].name);
        }
    for (size_t p = 0; p < n_pols && rc == EXIT_OK; p++)
        for (size_t i = 0; pols[p].sweeps && i < n_budgets[p] && rc == EXIT_OK; i++) {
            uint64_t b = budgets[p * stride + i];
            if ((int)p == opt && curve_is_fixed_peak(pols, n_pols, budgets, stride, b))
                continue;
            remat_schedule *s = NULL;
            remat_status st = curve_plan(r, &pols[p], b, &s);
            if (st == REMAT_OK)
                st = curve_measure_point(r, pols[p].name, (int)p, s, NULL, 0, NULL, 0);
            remat_schedule_free(s);
            if (st != REMAT_OK)
                rc = cli_fail("curve", st, pols[p].name);
        }
    free(budgets);
    return rc;
}

/* CSV order: by policy (as listed), then budget, then the order measured. */
static int curve_cmp_rows(const void *a, const void *b)
{
    const curve_row *x = a, *y = b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    if (x->budget != y->budget)
        return x->budget < y->budget ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* ==== Output =============================================================================== */

/* dir/name into buf; -1 (usage error printed) when it does not fit. */
static int curve_path(const char *dir, const char *name, char *buf, size_t n)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
        return cli_usage_error("curve", "--out %s: path too long", dir), -1;
    return 0;
}

static int curve_write_csv(const curve_run *r, const char *path)
{
    cli_output out;
    remat_status s = cli_output_open(&out, path);
    if (s != REMAT_OK)
        return cli_fail("curve", s, "");
    FILE *f = out.f;
    fprintf(f, "policy,budget_bytes,predicted_peak,measured_peak,predicted_time,measured_ms,"
               "overhead,predicted_overhead,store_all_ms,store_all_peak,overhead_min,"
               "overhead_se,paired,optimal_minus_policy,diff_se,dominance\n");
    for (size_t i = 0; i < r->n_rows; i++) {
        const curve_row *w = &r->rows[i];
        fprintf(f, "%s,%llu,%llu,%llu,%.6g,%.4f,%.6f,%.6f,%.4f,%llu,%.6f,%.6f,%s,%.6f,%.6f,%s\n",
                w->policy, (unsigned long long)w->budget, (unsigned long long)w->predicted_peak,
                (unsigned long long)w->measured_peak, w->predicted_time, w->measured_ms,
                w->overhead, w->predicted_overhead, w->base_ms,
                (unsigned long long)r->store_all_peak, w->overhead_min, w->overhead_se, w->paired,
                w->dom_diff, w->dom_se, curve_dom_names[w->dom]);
    }
    if ((s = cli_output_close(&out, 1)) != REMAT_OK)
        return cli_fail("curve", s, "");
    return EXIT_OK;
}

/* Writes the gnuplot script plotting csv (pngcairo where gnuplot has it, else png). Every name
 * goes in through cli_plot_string. */
static void curve_write_gnuplot(FILE *f, const curve_run *r, const curve_policy *pols,
                                size_t n_pols, const char *csv)
{
    char title[512];
    snprintf(title, sizeof title,
             "remat curve: GPT L%d C%d, batch %ld x %d (%.300s, %s); measured, %ld steps per point",
             r->cfg.layers, r->cfg.channels, r->o.batch, r->T, r->o.model ? r->o.model : "small",
             cli_precision_name(&r->o.prec), r->o.steps);
    fprintf(f, "set datafile separator ','\nset title ");
    cli_plot_string(f, title);
    fprintf(f, " noenhanced\nset xlabel 'activation peak, measured (MiB)'\nset ylabel 'overhead "
               "vs store-all, measured (%%)'\nset grid\nset key outside right top noenhanced\n");
    fprintf(f, "curve_csv = ");
    cli_plot_string(f, csv);
    fprintf(f, "\nplot ");
    for (size_t p = 0; p < n_pols; p++) {
        int all = pols[p].pol.kind == REMAT_POLICY_STORE_ALL;
        fprintf(f, "%scurve_csv skip 1 using (strcol(1) eq ", p ? ", \\\n     " : "");
        cli_plot_string(f, pols[p].name);
        fprintf(f, " ? $4/1048576.0 : 1/0):($7*100) with %s pt %d ps %s title ",
                all ? "points" : "linespoints", all ? 5 : 7, all ? "2.5" : "1.2");
        cli_plot_string(f, pols[p].name);
    }
    for (size_t p = 0; p < n_pols; p++)
        if (pols[p].pol.kind == REMAT_POLICY_OPTIMAL) {
            fprintf(f, ", \\\n     curve_csv skip 1 using (strcol(1) eq ");
            cli_plot_string(f, pols[p].name);
            fprintf(f, " ? $3/1048576.0 : 1/0):($8*100) with lines dt 2 lc rgb 'gray40' title ");
            char t[sizeof pols[p].name + 16];
            snprintf(t, sizeof t, "%.63s (predicted)", pols[p].name);
            cli_plot_string(f, t);
        }
    fprintf(f, "\n");
}

/* Draws the CSV into dir/curve.png (a checked picture, put in place only when complete); *drew
 * says whether it did: without gnuplot there is no picture and no failure. */
static int curve_plot(const curve_run *r, const curve_policy *pols, size_t n_pols, const char *csv,
                      int *drew)
{
    char png[4096];
    *drew = 0;
    if (curve_path(r->o.out, "curve.png", png, sizeof png))
        return EXIT_USAGE;
    cli_plot p;
    int missing = 0;
    remat_status s = cli_plot_begin(&p, png,
                                    "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
                                    "{ set terminal pngcairo size 960,600 font 'sans,10' } "
                                    "else { set terminal png size 960,600 }");
    if (s != REMAT_OK)
        return cli_fail("curve", s, "curve.png");
    curve_write_gnuplot(p.script, r, pols, n_pols, csv);
    s = cli_plot_finish(&p, &missing);
    if (missing) {
        fprintf(stderr, "remat curve: gnuplot not found (install gnuplot, or set REMAT_GNUPLOT): "
                        "no curve.png (the CSV is written)\n");
        return EXIT_OK;
    }
    if (s != REMAT_OK) {
        cli_fail("curve", s, "curve.png");
        return EXIT_RUNTIME;
    }
    *drew = 1;
    return EXIT_OK;
}

static void curve_print_table(const curve_run *r)
{
    char sp[32];
    remat_format_bytes(r->store_all_peak, sp, sizeof sp);
    printf("store-all activation peak (predicted) %s; model L %d C %d, batch %ld x %d\n", sp,
           r->cfg.layers, r->cfg.channels, r->o.batch, r->T);
    printf("%-20s %10s %10s %10s %7s %9s %9s %8s %8s %6s\n", "policy", "budget", "pred peak",
           "meas peak", "peak %", "pred ms", "meas ms", "pred ovh", "meas ovh", "+-se");
    for (size_t i = 0; i < r->n_rows; i++) {
        const curve_row *w = &r->rows[i];
        char b[32], pp[32], mp[32];
        remat_format_bytes(w->budget, b, sizeof b);
        remat_format_bytes(w->predicted_peak, pp, sizeof pp);
        remat_format_bytes(w->measured_peak, mp, sizeof mp);
        printf("%-20s %10s %10s %10s %6.0f%% %9.3g %9.1f %7.1f%% %7.1f%% %5.1f%s%s\n", w->policy, b,
               pp, mp, 100.0 * (double)w->measured_peak / (double)r->store_all_peak,
               w->predicted_time, w->measured_ms, 100 * w->predicted_overhead, 100 * w->overhead,
               100 * w->overhead_se, strcmp(w->paired, "-") ? "  with " : "",
               strcmp(w->paired, "-") ? w->paired : "");
    }
}

/* The optimal row measured with fixed row w, or NULL. */
static const curve_row *curve_partner(const curve_run *r, const curve_row *w)
{
    for (size_t i = 0; i < r->n_rows; i++)
        if (&r->rows[i] != w && strcmp(r->rows[i].paired, w->policy) == 0 &&
            strcmp(w->paired, r->rows[i].policy) == 0 && r->rows[i].budget == w->predicted_peak)
            return &r->rows[i];
    return NULL;
}

/* The dominance check: each fixed policy against optimal at its peak, measured in the same
 * steps; the difference is in percentage points of store-all's step. */
static void curve_print_dominance(const curve_run *r)
{
    size_t count[sizeof curve_dom_names / sizeof curve_dom_names[0]] = {0}, n = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const curve_row *w = &r->rows[i];
        if (w->dom == CURVE_DOM_NONE)
            continue;
        if (n++ == 0)
            printf("dominance: optimal at each fixed policy's peak, measured in the same steps "
                   "(diff = optimal's overhead - the policy's, +-3 standard errors):\n");
        count[w->dom]++;
        const curve_row *o = curve_partner(r, w);
        if (!o) {
            printf("  %-20s optimal: no plan within its peak\n", w->policy);
            continue;
        }
        printf("  %-20s peak %5.1f%% vs optimal %5.1f%%: predicted %+5.1f pp, measured %+5.1f "
               "+- %.1f pp: %s\n",
               w->policy, 100.0 * (double)w->measured_peak / (double)r->store_all_peak,
               100.0 * (double)o->measured_peak / (double)r->store_all_peak,
               100 * (o->predicted_overhead - w->predicted_overhead), 100 * w->dom_diff,
               100 * CURVE_DOM_SE * w->dom_se, curve_dom_names[w->dom]);
    }
    if (n)
        printf("dominance summary: %zu cheaper, %zu within noise, %zu same schedule, %zu worse, "
               "%zu unresolved, %zu peak above, %zu infeasible\n",
               count[CURVE_DOM_CHEAPER], count[CURVE_DOM_NOISE], count[CURVE_DOM_SAME],
               count[CURVE_DOM_WORSE], count[CURVE_DOM_UNRESOLVED], count[CURVE_DOM_PEAK_ABOVE],
               count[CURVE_DOM_INFEASIBLE]);
}

/* Creates dir unless it exists. */
static int curve_make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode)
                   ? EXIT_OK
                   : cli_usage_error("curve", "--out %s exists and is not a directory", dir);
    if (mkdir(dir, 0777) != 0)
        return cli_fail(
            "curve", remat_fail(REMAT_EIO, "cannot create %s: %s", dir, strerror(errno)), "--out");
    return EXIT_OK;
}

/* A selective policy's option must be one of the chain's (the scheduler's check names them). */
static int curve_check_options(const curve_run *r, const curve_policy *pols, size_t n_pols)
{
    for (size_t p = 0; p < n_pols; p++) {
        uint64_t least = 0;
        if (pols[p].pol.kind == REMAT_POLICY_SELECTIVE &&
            remat_min_budget_layout(r->rig.chain, &pols[p].pol, REMAT_LAYOUT_POOL, &least) ==
                REMAT_EINVAL)
            return cli_usage_error("curve", "--policies %s: %s", pols[p].name, remat_last_error());
    }
    return EXIT_OK;
}

int cmd_curve(int argc, char **argv)
{
    curve_run r;
    memset(&r, 0, sizeof r);
    curve_policy pols[CURVE_MAX_POLICIES];
    size_t n_pols;
    if (curve_parse(argc, argv, &r.o) != 0 ||
        curve_parse_policies(r.o.policies, pols, &n_pols) != 0)
        return EXIT_USAGE;
    float *weights = NULL;
    remat_status s = gpt_resolve(r.o.model, &r.o.ov, &r.cfg, &r.T, &weights);
    free(weights);
    if (s != REMAT_OK)
        return cli_fail("curve", s, "");
    char csv[4096], png[4096];
    if (curve_path(r.o.out, "curve.csv", csv, sizeof csv) ||
        curve_path(r.o.out, "curve.png", png, sizeof png))
        return EXIT_USAGE;
    r.tty = isatty(STDERR_FILENO);
    int rc = curve_make_dir(r.o.out), drew = 0;
    const cli_file files[] = {
        {"--model", r.o.model, 0}, {"--out", csv, 1}, {"--out", png, 1}, {"--trace", r.o.trace, 1}};
    if (rc == EXIT_OK)
        rc = cli_check_files("curve", files, sizeof files / sizeof files[0]);
    if (rc == EXIT_OK)
        rc = curve_open(&r);
    if (rc == EXIT_OK)
        rc = curve_check_options(&r, pols, n_pols);
    if (rc == EXIT_OK)
        rc = curve_sweep(&r, pols, n_pols);
    r.sweep_ok = rc == EXIT_OK;
    if (rc == EXIT_OK) {
        qsort(r.rows, r.n_rows, sizeof *r.rows, curve_cmp_rows);
        rc = curve_write_csv(&r, csv);
    }
    if (rc == EXIT_OK) {
        curve_print_table(&r);
        curve_print_dominance(&r);
        rc = curve_plot(&r, pols, n_pols, csv, &drew);
    }
    if (rc == EXIT_OK)
        printf("wrote %s%s\n", csv, drew ? " and curve.png" : "");
    curve_close(&r);
    return rc;
}

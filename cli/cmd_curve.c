/* cli/cmd_curve.c: `remat curve`: measured recompute-versus-memory curves of each policy on our
 * GPT. */
#include "cli/cli.h"
#include "core/core.h"
#include "model/gpt.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cmd_curve_usage(FILE *f)
{
    fprintf(
        f,
        "usage: remat curve [--model M] [--batch B] [--seq T] [--device SPEC] [--policies LIST]\n"
        "                   [--points N] [--steps K] [--reps R] [--out DIR] [--trace FILE]\n\n"
        "Profiles the model, then for each policy trains K real steps at each memory budget and\n"
        "records the predicted and measured activation peak and step time. Sweeping policies\n"
        "(optimal, revolve) get N budgets evenly spaced from their least feasible one to\n"
        "store-all's peak; fixed policies (store-all, sqrt, periodic:K, llmc-selective,\n"
        "megatron-selective, selective:OPTION) are one point each, at their own peak. Every\n"
        "policy step is interleaved with a store-all step of the same batch (alternating which\n"
        "goes first), and the overhead is the ratio of their median forward+backward times.\n"
        "  --model M       preset tiny, small (default), gpt2-124m, gpt2-350m\n"
        "  --batch B       sequences per step (default 4)\n"
        "  --seq T         tokens per sequence (default: the model's maxT)\n"
        "  --device SPEC   auto (default), host, cuda:N\n"
        "  --policies L    comma-separated (default store-all,sqrt,periodic:2,llmc-selective,\n"
        "                  megatron-selective,optimal)\n"
        "  --points N      budgets per sweeping policy (default 8)\n"
        "  --steps K       measured steps per point after one warm-up step (default 4)\n"
        "  --reps R        profiling repetitions per stage (default 3)\n"
        "  --out DIR       where curve.csv and curve.png go (default curve; created)\n"
        "  --trace FILE    also record the pool's allocation trace of the whole sweep\n"
        "curve.csv columns: policy,budget_bytes,predicted_peak,measured_peak,predicted_time,\n"
        "measured_ms,overhead,predicted_overhead,store_all_ms,store_all_peak,overhead_min (bytes "
        "of\n"
        "activations, predicted_time in the profile's milliseconds, measured_ms the median\n"
        "forward+backward wall time, overhead the median over steps of its ratio to the "
        "interleaved\n"
        "store-all step's, store_all_ms that step's median, overhead_min the ratio of the two\n"
        "fastest steps).\n"
        "curve.png (gnuplot): measured overhead against measured activation peak, one line per\n"
        "policy. Progress goes to stderr. Run with OMP_WAIT_POLICY=passive on a shared machine.\n"
        "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input.\n");
}

/* ==== Options ============================================================================== */

typedef struct {
    const char *model, *device, *policies, *out, *trace;
    long batch, points, steps, reps;
    gpt_overrides ov;
} curve_opts;

static int curve_parse(int argc, char **argv, curve_opts *o)
{
    enum { O_SEQ = 256, O_POINTS, O_STEPS, O_REPS, O_TRACE };
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"device", required_argument, NULL, 'D'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"seq", required_argument, NULL, O_SEQ},
                                         {"policies", required_argument, NULL, 'p'},
                                         {"points", required_argument, NULL, O_POINTS},
                                         {"steps", required_argument, NULL, O_STEPS},
                                         {"reps", required_argument, NULL, O_REPS},
                                         {"out", required_argument, NULL, 'o'},
                                         {"trace", required_argument, NULL, O_TRACE},
                                         {NULL, 0, NULL, 0}};
    *o = (curve_opts){.device = "auto",
                      .policies = "store-all,sqrt,periodic:2,llmc-selective,megatron-selective,"
                                  "optimal",
                      .out = "curve",
                      .batch = 4,
                      .points = 8,
                      .steps = 4,
                      .reps = 3};
    long v;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'D': o->device = optarg; break;
        case 'p': o->policies = optarg; break;
        case 'o': o->out = optarg; break;
        case O_TRACE: o->trace = optarg; break;
        case 'b':
            if (cli_parse_int("curve", "--batch", optarg, 1, 1 << 20, &o->batch))
                return -1;
            break;
        case O_SEQ:
            if (cli_parse_int("curve", "--seq", optarg, 1, 1 << 20, &v))
                return -1;
            o->ov.seq = (int)v;
            break;
        case O_POINTS:
            if (cli_parse_int("curve", "--points", optarg, 2, 1000, &o->points))
                return -1;
            break;
        case O_STEPS:
            if (cli_parse_int("curve", "--steps", optarg, 1, 100000, &o->steps))
                return -1;
            break;
        case O_REPS:
            if (cli_parse_int("curve", "--reps", optarg, 1, 1000, &o->reps))
                return -1;
            break;
        default:
            if (optopt)
                cli_usage_error("curve", "option '%s' needs a value", argv[optind - 1]);
            else
                cli_usage_error("curve", "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        cli_usage_error("curve", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    return 0;
}

/* ==== Policies ============================================================================= */

enum { CURVE_MAX_POLICIES = 32 };

typedef struct {
    char name[64];
    remat_policy pol; /* when selective < 0 */
    int selective;    /* block option of a fixed selective policy, or -1 */
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
        cp->selective = gpt_selective_option(cp->name);
        if (cp->selective == -2) {
            cli_usage_error("curve",
                            "--policies: %s: unknown save option (recompute-gelu, "
                            "recompute-gelu-ln, recompute-attn, recompute-attn-gelu-ln)",
                            cp->name);
            return -1;
        }
        if (cp->selective < 0 && remat_policy_parse(cp->name, &cp->pol) != REMAT_OK) {
            cli_usage_error("curve", "--policies: %s", remat_last_error());
            return -1;
        }
        cp->sweeps = cp->selective < 0 &&
                     (cp->pol.kind == REMAT_POLICY_OPTIMAL || cp->pol.kind == REMAT_POLICY_REVOLVE);
        p += len;
        if (*p == '\0')
            return 0;
    }
}

/* ==== The run ============================================================================== */

typedef struct {
    char policy[64];
    uint64_t budget, predicted_peak, measured_peak;
    double predicted_time, measured_ms, overhead, predicted_overhead, base_ms, overhead_min;
} curve_row;

typedef struct {
    curve_opts o;
    gpt_config cfg;
    int T;
    float *host_params;
    gpt_tokens data;
    gpt_loader loader;
    int *inputs, *targets;
    remat_device *dev;
    remat_pool *pool;
    gpt_model *model;
    remat_chain *chain;
    remat_schedule *base_sched;
    uint64_t store_all_peak;
    long adam_step;
    double *ms, *base_ms, *ratio; /* o.steps each */
    curve_row *rows;
    size_t n_rows, cap_rows, runs_done, runs_total;
    cli_output trace; /* --trace, renamed into place only after a complete sweep */
    int tracing, sweep_ok;
    int tty; /* progress redrawn in place on a terminal */
} curve_run;

static double curve_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void curve_close(curve_run *r)
{
    if (r->tracing) {
        remat_pool_trace_end(r->pool);
        if (cli_output_close(&r->trace, r->sweep_ok) != REMAT_OK)
            cli_fail("curve", REMAT_EIO, "--trace");
    }
    remat_schedule_free(r->base_sched);
    remat_chain_free(r->chain);
    gpt_model_destroy(r->model);
    remat_pool_destroy(r->pool);
    remat_device_close(r->dev);
    gpt_loader_free(&r->loader);
    gpt_tokens_free(&r->data);
    free(r->inputs);
    free(r->targets);
    free(r->host_params);
    free(r->ms);
    free(r->base_ms);
    free(r->ratio);
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
    r->inputs = malloc(need * sizeof(int));
    r->targets = malloc(need * sizeof(int));
    r->ms = calloc((size_t)r->o.steps + 1, sizeof(double));
    r->base_ms = calloc((size_t)r->o.steps + 1, sizeof(double));
    r->ratio = calloc((size_t)r->o.steps + 1, sizeof(double));
    if (!r->inputs || !r->targets || !r->ms || !r->base_ms || !r->ratio)
        return cli_fail("curve", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    if ((s = remat_device_open(r->o.device, &r->dev)) != REMAT_OK)
        return cli_fail("curve", s, "cannot open the device");
    if ((s = remat_pool_create(r->dev, NULL, &r->pool)) != REMAT_OK)
        return cli_fail("curve", s, "cannot create the pool");
    if (r->o.trace) {
        if ((s = cli_output_open(&r->trace, r->o.trace)) != REMAT_OK)
            return cli_fail("curve", s, "--trace");
        r->tracing = 1;
        if ((s = remat_pool_trace_begin(r->pool, r->trace.f)) != REMAT_OK)
            return cli_fail("curve", s, "--trace");
    }
    s = gpt_model_create(r->dev, r->pool, &r->cfg, (int)r->o.batch, r->T, &r->model);
    if (s != REMAT_OK)
        return cli_fail("curve", s, "cannot create the model");
    r->host_params = malloc(gpt_model_layout(r->model)->total * sizeof(float));
    if (!r->host_params)
        return cli_fail("curve", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    gpt_init_params(&r->cfg, 1337, r->host_params);
    if ((s = gpt_model_set_params(r->model, r->host_params)) != REMAT_OK)
        return cli_fail("curve", s, "cannot set the weights");
    fprintf(stderr, "curve: profiling the stages (%ld reps)...\n", r->o.reps);
    gpt_loader_next(&r->loader, r->inputs, r->targets);
    if ((s = gpt_model_profile(r->model, r->inputs, (int)r->o.reps, &r->chain)) != REMAT_OK)
        return cli_fail("curve", s, "cannot profile the model");
    if ((s = remat_store_all_peak(r->chain, &r->store_all_peak)) != REMAT_OK)
        return cli_fail("curve", s, "store-all peak");
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    if ((s = remat_plan(r->chain, &all, r->store_all_peak, &r->base_sched)) != REMAT_OK)
        return cli_fail("curve", s, "cannot plan store-all");
    return EXIT_OK;
}

/* One forward and backward under sched: wall milliseconds and the pool's activation peak. */
static remat_status curve_forward_backward(curve_run *r, const remat_schedule *sched, float *loss,
                                           double *ms, uint64_t *act_peak)
{
    remat_pool_stats before, after;
    REMAT_TRY(remat_pool_reset_peaks(r->pool));
    REMAT_TRY(remat_pool_stats_get(r->pool, &before));
    double t0 = curve_now_ms();
    REMAT_TRY(gpt_model_forward_backward(r->model, sched, r->chain, r->inputs, r->targets, loss));
    *ms = curve_now_ms() - t0;
    REMAT_TRY(remat_pool_stats_get(r->pool, &after));
    *act_peak = after.allocated.peak - before.allocated.current;
    return REMAT_OK;
}

static int curve_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double curve_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, curve_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Trains one warm-up step and o.steps measured steps under sched, each interleaved with a
 * store-all forward+backward of the same batch (store-all first on even steps); the losses must
 * agree bit for bit. Fills the measured fields of row. */
static remat_status curve_measure(curve_run *r, const remat_schedule *sched, curve_row *row)
{
    gpt_adamw hp = gpt_adamw_defaults();
    row->measured_peak = 0;
    for (long step = 0; step <= r->o.steps; step++) {
        gpt_loader_next(&r->loader, r->inputs, r->targets);
        float loss, base_loss;
        double ms, base_ms;
        uint64_t act, base_act;
        if (step % 2 == 0)
            REMAT_TRY(curve_forward_backward(r, r->base_sched, &base_loss, &base_ms, &base_act));
        REMAT_TRY(curve_forward_backward(r, sched, &loss, &ms, &act));
        if (step % 2 == 1)
            REMAT_TRY(curve_forward_backward(r, r->base_sched, &base_loss, &base_ms, &base_act));
        if (memcmp(&loss, &base_loss, sizeof loss) != 0)
            return remat_fail(REMAT_EINTERNAL, "%s: loss %.9g under the plan, %.9g under store-all",
                              row->policy, loss, base_loss);
        REMAT_TRY(gpt_model_update(r->model, &hp, (int)++r->adam_step));
        if (act > row->measured_peak)
            row->measured_peak = act;
        if (step > 0) {
            r->ms[step - 1] = ms;
            r->base_ms[step - 1] = base_ms;
        }
        if (r->tty)
            fprintf(stderr, "\rcurve: [%zu/%zu] %s at %.2f MiB: step %ld/%ld, %.0f ms   ",
                    r->runs_done + 1, r->runs_total, row->policy, (double)row->budget / 1048576.0,
                    step, r->o.steps, ms);
    }
    /* The overhead is the median of the per-step ratios: each pair ran back to back, so a change
     * of load on a shared machine between steps cancels out of it. */
    for (long i = 0; i < r->o.steps; i++)
        r->ratio[i] = r->ms[i] / r->base_ms[i];
    row->overhead = curve_median(r->ratio, (size_t)r->o.steps) - 1;
    row->measured_ms = curve_median(r->ms, (size_t)r->o.steps);
    row->base_ms = curve_median(r->base_ms, (size_t)r->o.steps);
    /* Sorted by curve_median: the least disturbed run of each, as the profile estimates a stage. */
    row->overhead_min = r->ms[0] / r->base_ms[0] - 1;
    r->runs_done++;
    fprintf(stderr,
            "%scurve: [%zu/%zu] %s at %.2f MiB: %.1f ms vs store-all %.1f ms (%+.1f%%, "
            "predicted %+.1f%%)%s\n",
            r->tty ? "\r" : "", r->runs_done, r->runs_total, row->policy,
            (double)row->budget / 1048576.0, row->measured_ms, row->base_ms, 100 * row->overhead,
            100 * row->predicted_overhead, r->tty ? "      " : "");
    return REMAT_OK;
}

static remat_status curve_add_row(curve_run *r, const curve_policy *cp, const remat_schedule *s)
{
    if (r->n_rows == r->cap_rows) {
        size_t cap = r->cap_rows ? 2 * r->cap_rows : 16;
        curve_row *rows = realloc(r->rows, cap * sizeof *rows);
        if (!rows)
            return remat_fail(REMAT_ENOMEM, "out of host memory");
        r->rows = rows;
        r->cap_rows = cap;
    }
    curve_row *row = &r->rows[r->n_rows];
    memset(row, 0, sizeof *row);
    memcpy(row->policy, cp->name, sizeof row->policy);
    row->budget = s->budget_bytes;
    row->predicted_peak = s->peak_bytes;
    row->predicted_time = s->time;
    row->predicted_overhead = s->overhead;
    REMAT_TRY(curve_measure(r, s, row));
    r->n_rows++;
    return REMAT_OK;
}

/* The schedule of cp at budget (fixed policies: at their own least budget). */
static remat_status curve_plan(const curve_run *r, const curve_policy *cp, uint64_t budget,
                               remat_schedule **out)
{
    if (cp->selective >= 0)
        return gpt_plan_selective(r->chain, cp->selective, budget, out);
    return remat_plan(r->chain, &cp->pol, budget, out);
}

/* The budgets of cp: n evenly spaced from its least feasible one to store-all's peak (one, at its
 * own peak, for a fixed policy). */
static remat_status curve_budgets(const curve_run *r, const curve_policy *cp, uint64_t *budgets,
                                  size_t *n)
{
    if (cp->selective >= 0) {
        remat_schedule *s;
        REMAT_TRY(gpt_plan_selective(r->chain, cp->selective, 4 * r->store_all_peak, &s));
        budgets[0] = s->peak_bytes;
        remat_schedule_free(s);
        *n = 1;
        return REMAT_OK;
    }
    uint64_t lo;
    REMAT_TRY(remat_min_budget(r->chain, &cp->pol, &lo));
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

/* Every point of every policy. */
static int curve_sweep(curve_run *r, const curve_policy *pols, size_t n_pols)
{
    size_t n_budgets[CURVE_MAX_POLICIES];
    uint64_t *budgets = malloc(n_pols * (size_t)r->o.points * sizeof *budgets);
    if (!budgets)
        return cli_fail("curve", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    int rc = EXIT_OK;
    for (size_t p = 0; p < n_pols && rc == EXIT_OK; p++) {
        remat_status s = curve_budgets(r, &pols[p], budgets + p * r->o.points, &n_budgets[p]);
        if (s != REMAT_OK)
            rc = cli_fail("curve", s, pols[p].name);
        else
            r->runs_total += n_budgets[p];
    }
    for (size_t p = 0; p < n_pols && rc == EXIT_OK; p++)
        for (size_t i = 0; i < n_budgets[p] && rc == EXIT_OK; i++) {
            remat_schedule *s = NULL;
            remat_status st = curve_plan(r, &pols[p], budgets[p * r->o.points + i], &s);
            if (st == REMAT_OK)
                st = curve_add_row(r, &pols[p], s);
            remat_schedule_free(s);
            if (st != REMAT_OK)
                rc = cli_fail("curve", st, pols[p].name);
        }
    free(budgets);
    return rc;
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
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return cli_fail("curve", remat_fail(REMAT_EIO, "cannot write %s: %s", tmp, strerror(errno)),
                        "");
    fprintf(f, "policy,budget_bytes,predicted_peak,measured_peak,predicted_time,measured_ms,"
               "overhead,predicted_overhead,store_all_ms,store_all_peak,overhead_min\n");
    for (size_t i = 0; i < r->n_rows; i++) {
        const curve_row *w = &r->rows[i];
        fprintf(f, "%s,%llu,%llu,%llu,%.6g,%.4f,%.6f,%.6f,%.4f,%llu,%.6f\n", w->policy,
                (unsigned long long)w->budget, (unsigned long long)w->predicted_peak,
                (unsigned long long)w->measured_peak, w->predicted_time, w->measured_ms,
                w->overhead, w->predicted_overhead, w->base_ms,
                (unsigned long long)r->store_all_peak, w->overhead_min);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        return cli_fail("curve", remat_fail(REMAT_EIO, "cannot write %s", path), "");
    }
    return EXIT_OK;
}

/* Is an executable `name` on PATH? */
static int curve_have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[4096];
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && len + strlen(name) + 2 < sizeof buf) {
            memcpy(buf, path, len);
            snprintf(buf + len, sizeof buf - len, "/%s", name);
            if (access(buf, X_OK) == 0)
                return 1;
        }
        path += len + (path[len] == ':');
    }
    return 0;
}

/* Writes the gnuplot script plotting csv into png (pngcairo where gnuplot has it, else png). */
static void curve_write_gnuplot(FILE *f, const curve_run *r, const curve_policy *pols,
                                size_t n_pols, const char *csv, const char *png)
{
    char model[64];
    snprintf(model, sizeof model, "L%d C%d", r->cfg.layers, r->cfg.channels);
    fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
               "{ set terminal pngcairo size 960,600 font 'sans,10' } "
               "else { set terminal png size 960,600 }\n");
    fprintf(f, "set output '%s'\nset datafile separator ','\n", png);
    fprintf(f,
            "set title \"remat curve: GPT %s, batch %ld x %d (%s); measured, %ld steps per "
            "point\"\n",
            model, r->o.batch, r->T, r->o.model ? r->o.model : "small", r->o.steps);
    fprintf(f, "set xlabel 'activation peak, measured (MiB)'\nset ylabel 'overhead vs store-all, "
               "measured (%%)'\nset grid\nset key outside right top\n");
    fprintf(f, "plot ");
    for (size_t p = 0; p < n_pols; p++) {
        int all = pols[p].selective < 0 && pols[p].pol.kind == REMAT_POLICY_STORE_ALL;
        fprintf(f,
                "%s'%s' skip 1 using (strcol(1) eq '%s' ? $4/1048576.0 : 1/0):($7*100) "
                "with %s pt %d ps %s title '%s'",
                p ? ", \\\n     " : "", csv, pols[p].name, all ? "points" : "linespoints",
                all ? 5 : 7, all ? "2.5" : "1.2", pols[p].name);
    }
    for (size_t p = 0; p < n_pols; p++)
        if (pols[p].selective < 0 && pols[p].pol.kind == REMAT_POLICY_OPTIMAL)
            fprintf(f,
                    ", \\\n     '%s' skip 1 using (strcol(1) eq '%s' ? $3/1048576.0 : "
                    "1/0):($8*100) with lines dt 2 lc rgb 'gray40' title '%s (predicted)'",
                    csv, pols[p].name, pols[p].name);
    fprintf(f, "\n");
}

/* Runs gnuplot on the CSV into dir/curve.png (through a temporary file renamed at the end). */
static int curve_plot(const curve_run *r, const curve_policy *pols, size_t n_pols, const char *csv)
{
    if (!curve_have_program("gnuplot")) {
        fprintf(stderr, "remat curve: gnuplot not found on PATH: no curve.png (the CSV is "
                        "written)\n");
        return EXIT_OK;
    }
    char png[4096], tmp_png[4200], script[4200];
    if (curve_path(r->o.out, "curve.png", png, sizeof png))
        return EXIT_USAGE;
    snprintf(tmp_png, sizeof tmp_png, "%s.tmp", png);
    snprintf(script, sizeof script, "%s/curve.gp.tmp", r->o.out);
    FILE *f = fopen(script, "w");
    if (!f)
        return cli_fail("curve", remat_fail(REMAT_EIO, "cannot write %s", script), "");
    curve_write_gnuplot(f, r, pols, n_pols, csv, tmp_png);
    fclose(f);
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", script);
    int status = system(cmd);
    remove(script);
    if (status != 0 || rename(tmp_png, png) != 0) {
        remove(tmp_png);
        return cli_fail("curve",
                        remat_fail(REMAT_EIO, "gnuplot failed (status %d) on %s", status, csv),
                        "curve.png");
    }
    return EXIT_OK;
}

static void curve_print_table(const curve_run *r)
{
    char sp[32];
    remat_format_bytes(r->store_all_peak, sp, sizeof sp);
    printf("store-all activation peak (predicted) %s; model L %d C %d, batch %ld x %d\n", sp,
           r->cfg.layers, r->cfg.channels, r->o.batch, r->T);
    printf("%-20s %10s %10s %10s %7s %9s %9s %8s %8s\n", "policy", "budget", "pred peak",
           "meas peak", "peak %", "pred ms", "meas ms", "pred ovh", "meas ovh");
    for (size_t i = 0; i < r->n_rows; i++) {
        const curve_row *w = &r->rows[i];
        char b[32], pp[32], mp[32];
        remat_format_bytes(w->budget, b, sizeof b);
        remat_format_bytes(w->predicted_peak, pp, sizeof pp);
        remat_format_bytes(w->measured_peak, mp, sizeof mp);
        printf("%-20s %10s %10s %10s %6.0f%% %9.3g %9.1f %7.1f%% %7.1f%%\n", w->policy, b, pp, mp,
               100.0 * (double)w->measured_peak / (double)r->store_all_peak, w->predicted_time,
               w->measured_ms, 100 * w->predicted_overhead, 100 * w->overhead);
    }
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
    char csv[4096];
    if (strchr(r.o.out, '\''))
        return cli_usage_error("curve", "--out %s: the path may not hold a quote (gnuplot)",
                               r.o.out);
    if (curve_path(r.o.out, "curve.csv", csv, sizeof csv))
        return EXIT_USAGE;
    r.tty = isatty(STDERR_FILENO);
    int rc = curve_make_dir(r.o.out);
    if (rc == EXIT_OK)
        rc = curve_open(&r);
    if (rc == EXIT_OK)
        rc = curve_sweep(&r, pols, n_pols);
    r.sweep_ok = rc == EXIT_OK;
    if (rc == EXIT_OK)
        rc = curve_write_csv(&r, csv);
    if (rc == EXIT_OK) {
        curve_print_table(&r);
        rc = curve_plot(&r, pols, n_pols, csv);
    }
    if (rc == EXIT_OK)
        printf("wrote %s%s\n", csv, curve_have_program("gnuplot") ? " and curve.png" : "");
    curve_close(&r);
    return rc;
}

/* tests/cli/test_curve.c: `remat curve`: its CSV (columns, rows, budgets), peaks against the plan, the
 * plot, and bad arguments. Runs the CLI on the `tiny` preset with few points and steps. */
#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CURVE_HEADER                                                                               \
    "policy,budget_bytes,predicted_peak,measured_peak,predicted_time,measured_ms,overhead"

typedef struct {
    char policy[64], paired[64], dominance[32];
    unsigned long long budget, predicted_peak, measured_peak, store_all_peak;
    double predicted_time, measured_ms, overhead, predicted_overhead, base_ms, overhead_min;
    double overhead_se, dom_diff, dom_se;
} curve_csv_row;

static const char *curve_dir(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "/tmp/remat_test_curve_%d_%s", (int)getpid(), name);
    return p;
}

/* Reads dir/curve.csv into rows (at most cap); the header must start with the documented
 * columns. Returns the number of rows. */
static size_t curve_read(const char *dir, curve_csv_row *rows, size_t cap)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/curve.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_eq(strncmp(line, CURVE_HEADER, strlen(CURVE_HEADER)), 0, "header: %s", line);
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_lt(n, cap);
        curve_csv_row *w = &rows[n++];
        int got = sscanf(line,
                         "%63[^,],%llu,%llu,%llu,%lf,%lf,%lf,%lf,%lf,%llu,%lf,%lf,%63[^,],%lf,%lf,"
                         "%31[^,\n]",
                         w->policy, &w->budget, &w->predicted_peak, &w->measured_peak,
                         &w->predicted_time, &w->measured_ms, &w->overhead, &w->predicted_overhead,
                         &w->base_ms, &w->store_all_peak, &w->overhead_min, &w->overhead_se,
                         w->paired, &w->dom_diff, &w->dom_se, w->dominance);
        cr_assert_eq(got, 16, "row %zu: %s", n, line);
    }
    fclose(f);
    return n;
}

static void curve_setup(void)
{
    setenv("OMP_WAIT_POLICY", "passive", 1);
}

static size_t curve_count(const curve_csv_row *rows, size_t n, const char *policy)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += strcmp(rows[i].policy, policy) == 0;
    return k;
}

/* The optimal row measured with fixed row f (at its peak), or NULL. */
static const curve_csv_row *curve_partner(const curve_csv_row *rows, size_t n,
                                          const curve_csv_row *f)
{
    const curve_csv_row *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].policy, "optimal") == 0 && strcmp(rows[i].paired, f->policy) == 0) {
            cr_assert_null(found, "two optimal rows paired with %s", f->policy);
            found = &rows[i];
        }
    return found;
}

/* A fixed row's dominance verdict agrees with its numbers (3 standard errors either way). */
static void curve_check_verdict(const curve_csv_row *f, const curve_csv_row *o)
{
    const char *v = f->dominance;
    if (strcmp(v, "same-schedule") == 0) {
        /* The same ops: the same predicted time and peak. */
        cr_assert_eq(o->predicted_peak, f->predicted_peak, "%s", f->policy);
        cr_assert_float_eq(o->predicted_time, f->predicted_time, 1e-6 * f->predicted_time, "%s",
                           f->policy);
        return;
    }
    if (strcmp(v, "peak-above") == 0) {
        cr_assert_gt(o->measured_peak, f->measured_peak, "%s", f->policy);
        return;
    }
    cr_assert(isfinite(f->dom_diff) && isfinite(f->dom_se) && f->dom_se >= 0, "%s: %g +- %g",
              f->policy, f->dom_diff, f->dom_se);
    if (strcmp(v, "cheaper") == 0)
        cr_assert_lt(f->dom_diff, -3 * f->dom_se, "%s", f->policy);
    else if (strcmp(v, "worse") == 0)
        cr_assert_gt(f->dom_diff, 3 * f->dom_se, "%s", f->policy);
    else
        cr_assert(strcmp(v, "within-noise") == 0 && f->dom_diff >= -3 * f->dom_se &&
                      f->dom_diff <= 3 * f->dom_se,
                  "%s: %s with %g +- %g", f->policy, v, f->dom_diff, f->dom_se);
}

Test(curve, csv_rows_peaks_and_budgets, .init = curve_setup, .timeout = 60)
{
    cli_result r;
    const char *dir = curve_dir("all");
    cli_run(&r, "curve --model tiny --batch 2 --seq 32 --points 4 --steps 3 --reps 1 --out %s",
            dir);
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.out, "meas peak"), "table: %s", r.out);
    cr_assert_not_null(strstr(r.out, "dominance summary:"), "table: %s", r.out);
    curve_csv_row rows[64];
    size_t n = curve_read(dir, rows, 64);
    /* 5 fixed policies, one row each, each with optimal at its peak; the optimal sweep's budgets
     * that equal a fixed policy's peak (at least store-all's) are not measured twice. */
    const char *fixed[] = {"store-all", "sqrt", "periodic:2", "llmc-selective",
                           "megatron-selective"};
    for (size_t k = 0; k < 5; k++)
        cr_assert_eq(curve_count(rows, n, fixed[k]), 1, "%s", fixed[k]);
    size_t n_opt = curve_count(rows, n, "optimal"), swept = 0;
    cr_assert_eq(n, 5 + n_opt);
    char progress[32];
    snprintf(progress, sizeof progress, "[%zu/%zu]", n - 5, n - 5);
    cr_assert_not_null(strstr(r.err, progress), "progress %s: %s", progress, r.err);
    unsigned long long all = rows[0].store_all_peak, prev = 0;
    for (size_t i = 0; i < n; i++) {
        curve_csv_row *w = &rows[i];
        double dev =
            ((double)w->measured_peak - (double)w->predicted_peak) / (double)w->predicted_peak;
        cr_assert_lt(dev < 0 ? -dev : dev, 0.02, "%s at %llu: measured %llu, predicted %llu",
                     w->policy, w->budget, w->measured_peak, w->predicted_peak);
        cr_assert_leq(w->predicted_peak, w->budget, "%s", w->policy);
        cr_assert_leq(w->predicted_peak, all, "%s", w->policy);
        cr_assert_gt(w->measured_ms, 0);
        cr_assert_gt(w->base_ms, 0);
        cr_assert_gt(w->overhead, -1);
        cr_assert_gt(w->overhead_min, -1);
        cr_assert(isfinite(w->overhead_se) && w->overhead_se >= 0, "%s", w->policy);
        if (strcmp(w->policy, "optimal") == 0) {
            cr_assert_geq(w->budget, prev, "optimal rows not sorted by budget");
            prev = w->budget;
            swept += strcmp(w->paired, "-") == 0;
            cr_assert_str_eq(w->dominance, "-");
            continue;
        }
        if (strcmp(w->policy, "store-all") == 0) {
            cr_assert_eq(w->predicted_peak, all);
            cr_assert_eq(w->predicted_overhead, 0);
        } else {
            /* A fixed policy is measured at its own peak, below store-all's. */
            cr_assert_eq(w->budget, w->predicted_peak, "%s", w->policy);
            cr_assert_lt(w->predicted_peak, all, "%s", w->policy);
        }
        /* Optimal at exactly its peak, in the same steps: never a higher peak, and (optimal
         * under the model) never a higher predicted overhead. */
        cr_assert_str_eq(w->paired, "optimal", "%s", w->policy);
        const curve_csv_row *o = curve_partner(rows, n, w);
        cr_assert_not_null(o, "no optimal row at %s's peak", w->policy);
        cr_assert_eq(o->budget, w->predicted_peak, "%s", w->policy);
        cr_assert_leq(o->predicted_peak, w->predicted_peak, "%s", w->policy);
        cr_assert_leq(o->predicted_overhead, w->predicted_overhead + 1e-9, "%s: %g vs %g",
                      w->policy, o->predicted_overhead, w->predicted_overhead);
        curve_check_verdict(w, o);
    }
    cr_assert_eq(prev, all, "the optimal rows end at store-all's peak");
    cr_assert_geq(swept, 3, "the optimal sweep kept %zu of its 4 budgets", swept);
    char png[512];
    snprintf(png, sizeof png, "%s/curve.png", dir);
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        FILE *f = fopen(png, "rb");
        cr_assert_not_null(f, "gnuplot is installed but %s is missing", png);
        unsigned char magic[8] = {0};
        cr_assert_eq(fread(magic, 1, 8, f), 8);
        fclose(f);
        cr_assert_eq(memcmp(magic, "\x89PNG\r\n\x1a\n", 8), 0, "not a PNG");
    }
    char ls[600]; /* no curve.csv.tmp.XXXXXX (nor curve.png's) left */
    snprintf(ls, sizeof ls, "ls %s | grep -q '\\.tmp'", cli_sh_quote(dir));
    cr_assert_neq(system(ls), 0, "temporary file left behind");
}

/* Below 3 steps there is no noise estimate: no verdict is claimed. */
Test(curve, few_steps_claim_no_verdict, .init = curve_setup, .timeout = 60)
{
    cli_result r;
    const char *dir = curve_dir("few");
    cli_run(&r,
            "curve --model tiny --batch 1 --seq 16 --policies sqrt,optimal --points 2 --steps 2 "
            "--reps 1 --out %s",
            dir);
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    curve_csv_row rows[8];
    size_t n = curve_read(dir, rows, 8);
    cr_assert_eq(curve_count(rows, n, "sqrt"), 1);
    for (size_t i = 0; i < n; i++) {
        cr_assert(isnan(rows[i].overhead_se), "%s", rows[i].policy);
        if (strcmp(rows[i].policy, "sqrt") == 0)
            cr_assert(strcmp(rows[i].dominance, "unresolved") == 0 ||
                          strcmp(rows[i].dominance, "same-schedule") == 0 ||
                          strcmp(rows[i].dominance, "peak-above") == 0,
                      "%s", rows[i].dominance);
    }
}

/* The optimal sweep starts at the least feasible budget: a plan just below it is infeasible. */
Test(curve, optimal_sweep_starts_at_least_budget, .init = curve_setup, .timeout = 60)
{
    cli_result r;
    const char *dir = curve_dir("opt");
    cli_run(&r,
            "curve --model tiny --batch 1 --seq 16 --policies optimal --points 2 --steps 1 "
            "--reps 1 --out %s",
            dir);
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    curve_csv_row rows[8];
    size_t n = curve_read(dir, rows, 8);
    cr_assert_eq(n, 2);
    cr_assert_lt(rows[0].budget, rows[1].budget);
    cr_assert_eq(rows[1].budget, rows[1].store_all_peak);
    cr_assert_eq(rows[0].predicted_peak, rows[0].budget);
}

Test(curve, no_gnuplot_still_writes_csv, .init = curve_setup, .timeout = 60)
{
    cli_result r;
    const char *dir = curve_dir("nognuplot");
    setenv("PATH", "/nonexistent", 1);
    cli_run(&r,
            "curve --model tiny --batch 1 --seq 16 --policies store-all,sqrt --steps 1 "
            "--reps 1 --out %s",
            dir);
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.err, "gnuplot"), "stderr: %s", r.err);
    curve_csv_row rows[8];
    cr_assert_eq(curve_read(dir, rows, 8), 2);
    char png[512];
    snprintf(png, sizeof png, "%s/curve.png", dir);
    cr_assert_eq(access(png, F_OK), -1);
}

Test(curve, bad_arguments_exit_2, .init = curve_setup, .timeout = 60)
{
    static const char *bad[] = {
        "--points 1",
        "--points x",
        "--steps 0",
        "--batch -3",
        "--policies bogus",
        "--policies selective:bogus",
        "--policies ,sqrt",
        "--policies sqrt,",
        "--model nope",
        "--frobnicate",
        "extra",
        "--out /dev/null",
        "--policies periodic:0",
        "--seq 0",
        "--steps",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli_result r;
        cli_run(&r, "curve --model tiny --steps 1 --out %s %s", curve_dir("bad"), bad[i]);
        cr_assert_eq(r.code, 2, "'%s' exited %d: %s", bad[i], r.code, r.err);
        cr_assert_not_null(strstr(r.err, "remat curve"), "'%s': %s", bad[i], r.err);
    }
    cli_result r;
    cli_run(&r, "curve --help");
    cr_assert_eq(r.code, 0);
    cr_assert_not_null(strstr(r.out, "curve.csv"));
}

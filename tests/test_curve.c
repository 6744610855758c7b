/* tests/test_curve.c: `remat curve`: its CSV (columns, rows, budgets), peaks against the plan, the
 * plot, and bad arguments. Runs the CLI on the `tiny` preset with few points and steps. */
#include "tests/cli_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CURVE_HEADER                                                                               \
    "policy,budget_bytes,predicted_peak,measured_peak,predicted_time,measured_ms,overhead"

typedef struct {
    char policy[64];
    unsigned long long budget, predicted_peak, measured_peak, store_all_peak;
    double predicted_time, measured_ms, overhead, predicted_overhead, base_ms, overhead_min;
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
        int got = sscanf(line, "%63[^,],%llu,%llu,%llu,%lf,%lf,%lf,%lf,%lf,%llu,%lf", w->policy,
                         &w->budget, &w->predicted_peak, &w->measured_peak, &w->predicted_time,
                         &w->measured_ms, &w->overhead, &w->predicted_overhead, &w->base_ms,
                         &w->store_all_peak, &w->overhead_min);
        cr_assert_eq(got, 11, "row %zu: %s", n, line);
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

Test(curve, csv_rows_peaks_and_budgets, .init = curve_setup, .timeout = 60)
{
    cli_result r;
    const char *dir = curve_dir("all");
    cli_run(&r, "curve --model tiny --batch 2 --seq 32 --points 4 --steps 2 --reps 1 --out %s",
            dir);
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.err, "[9/9]"), "progress: %s", r.err);
    cr_assert_not_null(strstr(r.out, "meas peak"), "table: %s", r.out);
    curve_csv_row rows[64];
    size_t n = curve_read(dir, rows, 64);
    /* 5 fixed policies, one row each, and 4 budgets of optimal. */
    cr_assert_eq(n, 9);
    const char *fixed[] = {"store-all", "sqrt", "periodic:2", "llmc-selective",
                           "megatron-selective"};
    for (size_t k = 0; k < 5; k++)
        cr_assert_eq(curve_count(rows, n, fixed[k]), 1, "%s", fixed[k]);
    cr_assert_eq(curve_count(rows, n, "optimal"), 4);
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
        if (strcmp(w->policy, "optimal") == 0) {
            cr_assert_gt(w->budget, prev, "optimal budgets not increasing");
            prev = w->budget;
        }
        if (strcmp(w->policy, "store-all") == 0) {
            cr_assert_eq(w->predicted_peak, all);
            cr_assert_eq(w->predicted_overhead, 0);
        } else if (strcmp(w->policy, "optimal") != 0) {
            /* A fixed policy is measured at its own peak, below store-all's. */
            cr_assert_eq(w->budget, w->predicted_peak, "%s", w->policy);
            cr_assert_lt(w->predicted_peak, all, "%s", w->policy);
        }
    }
    cr_assert_eq(prev, all, "the sweep ends at store-all's peak");
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
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/curve.csv.tmp", dir);
    cr_assert_eq(access(tmp, F_OK), -1, "temporary file left behind");
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

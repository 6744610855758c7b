/* tests/cli/test_checkpoint_cli.c: `remat plan`: text and JSON output, curve, exit codes. */
#include "tests/common/cli_run.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *good_chain =
    "{\"name\": \"tiny\", \"input_bytes\": 4096, \"stages\": ["
    "{\"name\": \"b0\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4096, \"saved_bytes\": 16384,"
    " \"options\": [{\"name\": \"lean\", \"saved_bytes\": 8192, \"bwd\": 2.5}]},"
    "{\"name\": \"b1\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4096, \"saved_bytes\": 16384},"
    "{\"name\": \"b2\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4096, \"saved_bytes\": 16384,"
    " \"fwd_tmp_bytes\": 4096, \"bwd_tmp_bytes\": 8192},"
    "{\"name\": \"b3\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4096, \"saved_bytes\": 16384},"
    "{\"name\": \"loss\", \"fwd\": 0.5, \"bwd\": 0.5, \"out_bytes\": 4096, \"saved_bytes\": "
    "4096}]}";

/* Writes text to a fresh temporary file; returns its path (static buffer per slot). */
static const char *fixture(int slot, const char *text)
{
    static char paths[4][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/remat-plan-test-XXXXXX");
    int fd = mkstemp(paths[slot]);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return paths[slot];
}

static cli_result r;

Test(plan_cli, text_output_for_people)
{
    const char *path = fixture(0, good_chain);
    cli_run(&r, "plan %s --budget 50%%", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "chain 'tiny': 5 stages"), "%s", r.out);
    cr_assert(strstr(r.out, "peak"));
    cr_assert(strstr(r.out, "overhead"));
    cr_assert(strstr(r.out, "store-all"));
    cr_assert(strstr(r.out, "sqrt"));
    cr_assert(strstr(r.out, "B 0") || strstr(r.out, "-0"), "%s", r.out);
    unlink(path);
}

Test(plan_cli, json_is_the_plan_and_fits_the_budget)
{
    const char *path = fixture(0, good_chain);
    const char *policies[] = {"optimal", "store-all", "sqrt", "periodic:2", "revolve"};
    for (int p = 0; p < 5; p++) {
        cli_run(&r, "plan %s --budget 1MiB --policy %s --json", path, policies[p]);
        cr_assert_eq(r.code, 0, "%s: %s", policies[p], r.err);
        cJSON *j = cJSON_Parse(r.out);
        cr_assert(j, "not JSON: %s", r.out);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "policy")->valuestring, policies[p]);
        cr_assert_eq(cJSON_GetObjectItem(j, "budget_bytes")->valuedouble, 1048576.0);
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "feasible")));
        cr_assert_leq(cJSON_GetObjectItem(j, "peak_bytes")->valuedouble, 1048576.0);
        cr_assert(cJSON_GetObjectItem(j, "time") && cJSON_GetObjectItem(j, "base_time") &&
                  cJSON_GetObjectItem(j, "overhead"));
        cJSON *ops = cJSON_GetObjectItem(j, "ops");
        cr_assert(cJSON_IsArray(ops));
        cJSON *last = cJSON_GetArrayItem(ops, cJSON_GetArraySize(ops) - 1);
        cr_assert_str_eq(cJSON_GetObjectItem(last, "op")->valuestring, "B");
        cr_assert_eq(cJSON_GetObjectItem(last, "stage")->valueint, 0);
        cJSON *first = cJSON_GetArrayItem(ops, 0);
        if (strcmp(cJSON_GetObjectItem(first, "op")->valuestring, "F_all") == 0)
            cr_assert(cJSON_IsString(cJSON_GetObjectItem(first, "option")));
        cJSON_Delete(j);
    }
    unlink(path);
}

Test(plan_cli, tight_budget_uses_options_and_recomputation)
{
    const char *path = fixture(0, good_chain);
    /* store-all is 80 KiB; at 90% the cheapest saving is stage 0's "lean" option (+0.5 time) */
    cli_run(&r, "plan %s --budget 90%% --json", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"option\": \"lean\""), "%s", r.out);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "time")->valuedouble, 13.5, 1e-12);
    cJSON_Delete(j);
    cli_run(&r, "plan %s --budget 60%% --json", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = cJSON_Parse(r.out);
    cr_assert(j);
    cr_assert(strstr(r.out, "\"F_ck\""), "%s", r.out);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "time")->valuedouble, 15.5, 1e-12);
    cJSON_Delete(j);
    unlink(path);
}

Test(plan_cli, infeasible_budget_exit_1_with_minimum)
{
    const char *path = fixture(0, good_chain);
    cli_run(&r, "plan %s --budget 10KiB", path);
    cr_assert_eq(r.code, 1, "%s", r.err);
    cr_assert(strstr(r.err, "minimum feasible budget"), "%s", r.err);
    cli_run(&r, "plan %s --budget 1%% --policy store-all", path);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "store-all"), "%s", r.err);
    unlink(path);
}

Test(plan_cli, curve_is_monotone)
{
    const char *path = fixture(0, good_chain);
    cli_run(&r, "plan %s --curve --json", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "%s", r.out);
    cJSON *pts = cJSON_GetObjectItem(j, "points");
    int n = cJSON_GetArraySize(pts);
    cr_assert_geq(n, 2);
    for (int i = 1; i < n; i++) {
        cJSON *a = cJSON_GetArrayItem(pts, i - 1), *b = cJSON_GetArrayItem(pts, i);
        cr_assert_gt(cJSON_GetObjectItem(b, "peak_bytes")->valuedouble,
                     cJSON_GetObjectItem(a, "peak_bytes")->valuedouble);
        cr_assert_lt(cJSON_GetObjectItem(b, "time")->valuedouble,
                     cJSON_GetObjectItem(a, "time")->valuedouble);
    }
    cJSON_Delete(j);
    cli_run(&r, "plan %s --curve", path);
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "overhead"));
    unlink(path);
}

Test(plan_cli, bad_input_exit_2_naming_the_problem)
{
    const char *good = fixture(0, good_chain);
    const char *missing = fixture(1, "{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, "
                                     "\"saved_bytes\": 8}]}");
    const char *malformed = fixture(2, "{\"stages\": [");
    const char *small_saved =
        fixture(3, "{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, "
                   "\"out_bytes\": 8, \"saved_bytes\": 4}]}");
    cli_run(&r, "plan %s --budget 1MiB", missing);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "stages[0].out_bytes"), "%s", r.err);
    cli_run(&r, "plan %s --budget 1MiB", malformed);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "malformed"), "%s", r.err);
    cli_run(&r, "plan %s --budget 1MiB", small_saved);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "saved_bytes"), "%s", r.err);
    cli_run(&r, "plan /nonexistent/chain.json --budget 1MiB");
    cr_assert_eq(r.code, 2);
    cli_run(&r, "plan %s", good);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--budget"), "%s", r.err);
    cli_run(&r, "plan %s --budget lots", good);
    cr_assert_eq(r.code, 2);
    cli_run(&r, "plan %s --budget 1MiB --policy fastest", good);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "fastest"), "%s", r.err);
    cli_run(&r, "plan %s --budget 1MiB --slots 0", good);
    cr_assert_eq(r.code, 2);
    cli_run(&r, "plan %s --budget 1MiB --bogus", good);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--bogus"), "%s", r.err);
    cli_run(&r, "plan %s --curve --policy sqrt", good);
    cr_assert_eq(r.code, 2);
    cli_run(&r, "plan");
    cr_assert_eq(r.code, 2);
    cli_run(&r, "plan --help");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "usage: remat plan"));
    for (int i = 0; i < 4; i++)
        unlink((const char *[]){good, missing, malformed, small_saved}[i]);
}

Test(plan_cli, slots_option_keeps_the_plan_within_budget)
{
    const char *path =
        fixture(0, "{\"input_bytes\": 1001, \"stages\": ["
                   "{\"fwd\": 1, \"bwd\": 2, \"out_bytes\": 3001, \"saved_bytes\": 9007},"
                   "{\"fwd\": 2, \"bwd\": 3, \"out_bytes\": 2003, \"saved_bytes\": 7001},"
                   "{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 5003, \"saved_bytes\": 5003},"
                   "{\"fwd\": 3, \"bwd\": 5, \"out_bytes\": 1009, \"saved_bytes\": 11003}]}");
    for (int slots = 3; slots <= 3000; slots *= 7) {
        /* the DP's rounding under test, without the arena's 512-byte rounding */
        cli_run(&r, "plan %s --budget 60%% --slots %d --json --layout pool", path, slots);
        cr_assert_eq(r.code, 0, "slots %d: %s", slots, r.err);
        cJSON *j = cJSON_Parse(r.out);
        cr_assert(j);
        cr_assert_leq(cJSON_GetObjectItem(j, "peak_bytes")->valuedouble,
                      cJSON_GetObjectItem(j, "budget_bytes")->valuedouble);
        cJSON_Delete(j);
    }
    unlink(path);
}

/* ==== the planned layout ===================================================================== */

static double layout_num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

Test(plan_cli, planned_layout_is_the_default_and_its_arena_fits_the_budget)
{
    const char *path = fixture(0, good_chain);
    const char *policies[] = {"optimal", "store-all", "sqrt", "periodic:2", "revolve"};
    const char *budgets[] = {"60%", "100%", "100%", "100%", "70%"};
    for (int p = 0; p < 5; p++) {
        cli_run(&r, "plan %s --budget %s --policy %s --json", path, budgets[p], policies[p]);
        cr_assert_eq(r.code, 0, "%s: %s", policies[p], r.err);
        cJSON *j = cJSON_Parse(r.out);
        cr_assert(j, "%s", r.out);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "layout")->valuestring, "planned");
        double arena = layout_num(j, "arena_bytes"), lb = layout_num(j, "lower_bound_bytes");
        cr_assert_eq(arena, layout_num(j, "peak_bytes"), "%s", policies[p]);
        cr_assert_leq(arena, layout_num(j, "budget_bytes"), "%s", policies[p]);
        cr_assert_geq(arena, lb);
        cr_assert_geq(lb, layout_num(j, "live_peak_bytes"));
        cJSON_Delete(j);
        cli_run(&r, "plan %s --budget %s --policy %s --json --layout pool", path, budgets[p],
                policies[p]);
        cr_assert_eq(r.code, 0, "%s: %s", policies[p], r.err);
        j = cJSON_Parse(r.out);
        cr_assert(j, "%s", r.out);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "layout")->valuestring, "pool");
        cr_assert_null(cJSON_GetObjectItem(j, "arena_bytes"));
        cJSON_Delete(j);
    }
    cli_run(&r, "plan %s --budget 60%%", path);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "layout    planned: arena"), "%s", r.out);
    cli_run(&r, "plan %s --budget 60%% --layout heap", path);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "'heap'"), "%s", r.err);
    unlink(path);
}

/* Byte-sized stages: the arena rounds each buffer to 512, so a budget the pool layout meets may be
 * refused; the refusal's minimum is then accepted. */
Test(plan_cli, planned_infeasible_names_a_minimum_that_plans)
{
    const char *path =
        fixture(0, "{\"input_bytes\": 1001, \"stages\": ["
                   "{\"fwd\": 1, \"bwd\": 2, \"out_bytes\": 3001, \"saved_bytes\": 9007},"
                   "{\"fwd\": 2, \"bwd\": 3, \"out_bytes\": 2003, \"saved_bytes\": 7001},"
                   "{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 5003, \"saved_bytes\": 5003},"
                   "{\"fwd\": 3, \"bwd\": 5, \"out_bytes\": 1009, \"saved_bytes\": 11003}]}");
    cli_run(&r, "plan %s --budget 1KiB --json", path);
    cr_assert_eq(r.code, 1, "%s", r.err);
    const char *m = strstr(r.err, "planned layout: ");
    cr_assert(m, "%s", r.err);
    const char *open = strchr(m, '(');
    cr_assert(open, "%s", r.err);
    unsigned long long min = strtoull(open + 1, NULL, 10);
    cr_assert_gt(min, 0, "%s", r.err);
    cli_run(&r, "plan %s --budget %lluB --json", path, min);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j);
    cr_assert_leq(layout_num(j, "arena_bytes"), (double)min);
    cJSON_Delete(j);
    cli_run(&r, "plan %s --budget %lluB --json", path, min - 1);
    cr_assert_eq(r.code, 1, "%s", r.out);
    unlink(path);
}

Test(plan_cli, train_layouts_train_alike_and_the_arena_is_the_measured_peak)
{
    static cli_result a, b;
    const char *run = "train --model tiny --batch 2 --seq 32 --steps 3 --device host --analytic "
                      "--json --policy optimal --budget 50%";
    cli_run(&a, "%s --layout planned", run);
    cr_assert_eq(a.code, 0, "%s", a.err);
    cli_run(&b, "%s --layout pool", run);
    cr_assert_eq(b.code, 0, "%s", b.err);
    const char *sa = strstr(a.out, "{\"summary\""), *sb = strstr(b.out, "{\"summary\"");
    cr_assert(sa && sb, "%s\n%s", a.out, b.out);
    /* every step's loss is the same under both layouts (the arena changes addresses only) */
    for (const char *la = a.out, *lb = b.out; la < sa;
         la = strchr(la, '\n') + 1, lb = strchr(lb, '\n') + 1) {
        const char *xa = strstr(la, "\"loss\": "), *xb = strstr(lb, "\"loss\": ");
        cr_assert(xa && xb);
        cr_assert_eq(strtod(xa + 8, NULL), strtod(xb + 8, NULL), "%.60s vs %.60s", la, lb);
    }
    cJSON *ja = cJSON_Parse(sa), *jb = cJSON_Parse(sb);
    cr_assert(ja && jb);
    cr_assert_eq(layout_num(ja, "final_loss"), layout_num(jb, "final_loss"));
    cr_assert_eq(layout_num(ja, "measured_act_peak_bytes"),
                 layout_num(ja, "predicted_act_peak_bytes"));
    cr_assert_leq(layout_num(ja, "predicted_act_peak_bytes"), layout_num(ja, "budget_bytes"));
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    cli_run(&a, "%s --layout arena", run);
    cr_assert_eq(a.code, 2);
    cr_assert(strstr(a.err, "'arena'"), "%s", a.err);
    cli_run(&a, "curve --model tiny --layout arena");
    cr_assert_eq(a.code, 2);
    cr_assert(strstr(a.err, "'arena'"), "%s", a.err);
}

/* tests/unit/test_budget.c: remat_budget, the C form of `--budget 512MiB | 50%`: parsing, resolving on
 * a chain, planning at one, checked against the store-all peak and against `remat plan`. */
#include "remat.h"
#include "tests/common/cli_run.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sizes chosen so that odd percentages do not divide the store-all peak. */
static const char *budget_chain_json =
    "{\"name\": \"odd\", \"input_bytes\": 4100, \"stages\": ["
    "{\"name\": \"b0\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4100, \"saved_bytes\": 16411,"
    " \"options\": [{\"name\": \"lean\", \"saved_bytes\": 8201, \"bwd\": 2.5}]},"
    "{\"name\": \"b1\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4100, \"saved_bytes\": 16411},"
    "{\"name\": \"b2\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 4100, \"saved_bytes\": 16411,"
    " \"fwd_tmp_bytes\": 4099, \"bwd_tmp_bytes\": 8191},"
    "{\"name\": \"loss\", \"fwd\": 0.5, \"bwd\": 0.5, \"out_bytes\": 4, \"saved_bytes\": 4}]}";

static remat_chain *budget_chain(void)
{
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_parse(budget_chain_json, strlen(budget_chain_json), &c), REMAT_OK,
                 "%s", remat_last_error());
    return c;
}

Test(budget, parses_bytes_and_percentages)
{
    remat_budget b = {.bytes = 99, .percent = 99};
    cr_assert_eq(remat_budget_parse("512MiB", &b), REMAT_OK);
    cr_assert_eq(b.bytes, 536870912ull);
    cr_assert_eq(b.percent, 0.0);
    cr_assert_eq(remat_budget_parse("50%", &b), REMAT_OK);
    cr_assert_eq(b.bytes, 0);
    cr_assert_eq(b.percent, 50.0);
    cr_assert_eq(remat_budget_parse("12.5 %", &b), REMAT_OK);
    cr_assert_eq(b.percent, 12.5);
    cr_assert_eq(remat_budget_parse("250%", &b), REMAT_OK);
    cr_assert_eq(b.percent, 250.0);
    const char *bad[] = {"", "0%", "-5%", "%", "12XB", "half", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        remat_clear_error();
        cr_assert_eq(remat_budget_parse(bad[i], &b), REMAT_EINVAL, "'%s' accepted", bad[i]);
        cr_assert(*remat_last_error(), "no message for '%s'", bad[i]);
    }
    cr_assert_eq(remat_budget_parse("1GB", NULL), REMAT_EINVAL);
}

Test(budget, percent_is_of_the_store_all_peak)
{
    remat_chain *c = budget_chain();
    uint64_t all = 0, got = 0;
    cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
    cr_assert_eq(remat_budget_resolve(c, (remat_budget){.percent = 100}, &got), REMAT_OK);
    cr_assert_eq(got, all);
    cr_assert_eq(remat_budget_resolve(c, (remat_budget){.percent = 50}, &got), REMAT_OK);
    cr_assert_eq(got, all / 2);
    cr_assert_eq(remat_budget_resolve(c, (remat_budget){.percent = 33.3}, &got), REMAT_OK);
    cr_assert_eq(got, (uint64_t)floor((double)all * 0.333));
    cr_assert_eq(remat_budget_resolve(c, (remat_budget){.bytes = 12345}, &got), REMAT_OK);
    cr_assert_eq(got, 12345);
    cr_assert_eq(remat_budget_resolve(c, (remat_budget){.percent = 1e300}, &got), REMAT_OK);
    cr_assert_eq(got, UINT64_MAX);
    remat_chain_free(c);
}

Test(budget, contradictory_or_bad_budgets_are_refused)
{
    remat_chain *c = budget_chain();
    uint64_t got = 7;
    remat_budget bad[] = {
        {.bytes = 100, .percent = 50}, {.percent = -1}, {.percent = NAN}, {.percent = INFINITY}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(remat_budget_resolve(c, bad[i], &got), REMAT_EINVAL, "budget %zu", i);
        cr_assert(strstr(remat_last_error(), "budget"), "%s", remat_last_error());
    }
    cr_assert_eq(got, 7, "*out written on failure");
    cr_assert_eq(remat_budget_resolve(c, (remat_budget){.percent = 50}, NULL), REMAT_EINVAL);
    cr_assert_eq(remat_budget_resolve(NULL, (remat_budget){.percent = 50}, &got), REMAT_EINVAL);
    remat_schedule *s = NULL;
    remat_policy p = {.kind = REMAT_POLICY_OPTIMAL};
    cr_assert_eq(remat_plan_budget(c, &p, bad[0], &s), REMAT_EINVAL);
    cr_assert_null(s);
    remat_chain_free(c);
}

/* "50%" from C plans exactly what `remat plan --budget 50%` plans: same budget, peak, time. */
Test(budget, plan_at_a_percentage_is_the_clis)
{
    char path[] = "/tmp/remat-budget-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, budget_chain_json, strlen(budget_chain_json)),
                 (ssize_t)strlen(budget_chain_json));
    close(fd);
    remat_chain *c = budget_chain();
    /* 50% is below this chain's least feasible budget (62.4% under the planned layout, whose
     * buffers are rounded to 512 bytes): both must refuse it. */
    const char *pcts[] = {"50%", "65%", "73.7%", "100%"};
    for (int i = 0; i < 4; i++) {
        static cli_result r;
        cli_run(&r, "plan %s --budget %s --json", path, pcts[i]);
        remat_budget b;
        cr_assert_eq(remat_budget_parse(pcts[i], &b), REMAT_OK);
        remat_policy p = {.kind = REMAT_POLICY_OPTIMAL};
        remat_schedule *s = NULL;
        remat_status st = remat_plan_budget(c, &p, b, &s);
        if (i == 0) {
            cr_assert_eq(r.code, 1, "%s: %s", pcts[i], r.err);
            cr_assert_eq(st, REMAT_EINFEASIBLE);
            cr_assert_null(s);
            continue;
        }
        cr_assert_eq(r.code, 0, "%s: %s", pcts[i], r.err);
        cr_assert_eq(st, REMAT_OK, "%s", remat_last_error());
        cJSON *j = cJSON_Parse(r.out);
        cr_assert(j, "not JSON: %s", r.out);
        cr_assert_eq((double)s->budget_bytes, cJSON_GetObjectItem(j, "budget_bytes")->valuedouble,
                     "%s", pcts[i]);
        cr_assert_eq((double)s->peak_bytes, cJSON_GetObjectItem(j, "peak_bytes")->valuedouble);
        cr_assert_float_eq(s->time, cJSON_GetObjectItem(j, "time")->valuedouble, 1e-9);
        cr_assert_eq(s->n_ops, (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(j, "ops")));
        remat_schedule_free(s);
        cJSON_Delete(j);
    }
    remat_chain_free(c);
    unlink(path);
}

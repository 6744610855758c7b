/* checkpoint/budget.c: memory budgets as bytes or a percentage of the store-all peak (the
 * `--budget 50%` of the CLI) for C callers: parsing, resolving on a chain, and planning at one. */
#include "checkpoint/checkpoint.h"

#include <math.h>

remat_status remat_budget_parse(const char *text, remat_budget *out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_budget_parse: out must not be NULL");
    uint64_t bytes = 0;
    double percent = 0;
    int is_percent = 0;
    REMAT_TRY(remat_parse_budget(text, &bytes, &percent, &is_percent));
    out->bytes = is_percent ? 0 : bytes;
    out->percent = is_percent ? percent : 0;
    return REMAT_OK;
}

remat_status remat_budget_resolve(const remat_chain *chain, remat_budget budget, uint64_t *out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_budget_resolve: out must not be NULL");
    if (!(budget.percent >= 0) || !isfinite(budget.percent))
        return remat_fail(REMAT_EINVAL,
                          "budget: percent %g must be a finite number > 0 (or 0 for bytes)",
                          budget.percent);
    if (budget.percent > 0 && budget.bytes != 0)
        return remat_fail(REMAT_EINVAL,
                          "budget: both %llu bytes and %g%% given; set one (the other 0)",
                          (unsigned long long)budget.bytes, budget.percent);
    if (budget.percent == 0) {
        *out = budget.bytes;
        return REMAT_OK;
    }
    uint64_t store_all;
    REMAT_TRY(remat_store_all_peak(chain, &store_all));
    /* The same arithmetic as the CLI's percentage budgets, so "50%" means one byte count. */
    double b = (double)store_all * budget.percent / 100.0;
    *out = b >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)b;
    return REMAT_OK;
}

remat_status remat_plan_budget(const remat_chain *chain, const remat_policy *policy,
                               remat_budget budget, remat_schedule **out)
{
    uint64_t bytes;
    REMAT_TRY(remat_budget_resolve(chain, budget, &bytes));
    return remat_plan(chain, policy, bytes, out);
}

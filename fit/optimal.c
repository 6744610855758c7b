/* fit/optimal.c: the bridge from the planner to the checkpoint scheduler's optimal policy
 * (Rotor's dynamic program with per-stage options, checkpoint/). */
#include "fit/fit.h"

/* The optimal policy at the scheduler's default discretisation. */
static remat_policy optimal_policy(void)
{
    remat_policy p = {.kind = REMAT_POLICY_OPTIMAL, .period = 0, .slots = 0};
    return p;
}

/* Any schedule holds at least the starting state (a_0 and the seed gradient), and full recompute
 * is one schedule, so the optimal minimum lies between the two; a scheduler answering outside is
 * not trusted. */
remat_status fit_optimal_min_budget(const remat_chain *c, uint64_t *out)
{
    remat_policy p = optimal_policy();
    uint64_t least = 0;
    REMAT_TRY(remat_min_budget(c, &p, &least));
    uint64_t start = c->input_bytes + c->stages[c->n_stages - 1].out_bytes;
    remat_policy full_recompute = {.kind = REMAT_POLICY_FULL_RECOMPUTE};
    uint64_t full = fit_chain_peak(c, &full_recompute);
    if (least < start || least > full)
        return remat_fail(REMAT_EINTERNAL,
                          "the checkpoint scheduler's minimum budget %llu for '%s' is outside "
                          "[%llu, %llu] (start state, full recompute)",
                          (unsigned long long)least, c->name, (unsigned long long)start,
                          (unsigned long long)full);
    *out = least;
    return REMAT_OK;
}

remat_status fit_optimal_at(const remat_chain *c, uint64_t budget, uint64_t *peak,
                             double *overhead)
{
    remat_policy p = optimal_policy();
    remat_schedule *s = NULL;
    REMAT_TRY(remat_plan(c, &p, budget, &s));
    *peak = s->peak_bytes;
    *overhead = s->overhead;
    remat_schedule_free(s);
    return REMAT_OK;
}

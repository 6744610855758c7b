/* tests/fuzz/fuzz_chain.c: chain JSON through remat_chain_parse; a chain that parses is planned
 * under several policies and budgets, and every plan must re-simulate valid, within its budget and
 * at the peak it claims (its arena under the planned layout; abort() otherwise). Errors are fine;
 * crashes, leaks and lies are not. */
#include "remat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { FUZZ_MAX_STAGES = 40 }; /* keeps the optimal DP fast enough per input */

static void fuzz_check_plan(const remat_chain *chain, const remat_policy *policy, uint64_t budget)
{
    remat_schedule *s = NULL;
    if (remat_plan(chain, policy, budget, &s) != REMAT_OK)
        return;
    remat_sim_result sim;
    if (remat_simulate(chain, s->ops, s->n_ops, &sim) != REMAT_OK || !sim.valid) {
        fprintf(stderr, "plan does not simulate: %s\n", sim.why);
        abort();
    }
    /* The claimed peak is the arena under the planned layout (never below the live bytes, which
     * the layout must count exactly as the simulator), else the simulated peak. */
    const remat_schedule_layout *lay = s->layout;
    uint64_t claim = lay ? lay->arena_bytes : sim.peak_bytes;
    if (sim.peak_bytes > budget || s->peak_bytes > budget || s->peak_bytes != claim ||
        (lay &&
         (lay->live_peak_bytes != sim.peak_bytes || lay->lower_bound_bytes < sim.peak_bytes ||
          lay->arena_bytes < lay->lower_bound_bytes))) {
        fprintf(stderr,
                "plan over budget or misclaimed: live peak %llu, claimed %llu, budget %llu\n",
                (unsigned long long)sim.peak_bytes, (unsigned long long)s->peak_bytes,
                (unsigned long long)budget);
        abort();
    }
    remat_schedule_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    remat_chain *chain = NULL;
    if (remat_chain_parse((const char *)data, n, &chain) != REMAT_OK)
        return 0;
    if (chain->n_stages > FUZZ_MAX_STAGES) {
        remat_chain_free(chain);
        return 0;
    }
    uint64_t all = 0;
    if (remat_store_all_peak(chain, &all) == REMAT_OK) {
        const remat_policy policies[] = {
            {.kind = REMAT_POLICY_STORE_ALL},
            {.kind = REMAT_POLICY_PERIODIC, .period = 2},
            {.kind = REMAT_POLICY_SQRT},
            {.kind = REMAT_POLICY_REVOLVE},
            {.kind = REMAT_POLICY_OPTIMAL, .slots = 60},
        };
        const uint64_t budgets[] = {all, all - all / 3, all / 2, all / 5, UINT64_MAX};
        for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
            for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++)
                fuzz_check_plan(chain, &policies[p], budgets[b]);
            uint64_t min = 0;
            if (remat_min_budget(chain, &policies[p], &min) == REMAT_OK)
                fuzz_check_plan(chain, &policies[p], min);
        }
    }
    remat_chain_free(chain);
    return 0;
}

/* model/selective.c: fixed selective-recompute policies (llm.c's -r 2, Megatron's selective):
 * store-all with every transformer block saving less, shared by `remat train` and `remat curve`. */
#include "core/core.h"
#include "model/gpt.h"

#include <string.h>

int gpt_selective_option(const char *policy)
{
    const char *opt = NULL;
    if (!policy)
        return -1;
    if (strcmp(policy, "llmc-selective") == 0)
        opt = "recompute-gelu-ln";
    else if (strcmp(policy, "megatron-selective") == 0)
        opt = "recompute-attn";
    else if (strncmp(policy, "selective:", 10) == 0)
        opt = policy + 10;
    if (!opt)
        return -1;
    for (int k = 0; k < GPT_N_BLOCK_OPTIONS; k++)
        if (strcmp(opt, gpt_block_option_names[k]) == 0)
            return k;
    return -2;
}

remat_status gpt_plan_selective(const remat_chain *chain, int option, uint64_t budget,
                                remat_layout_mode layout, remat_schedule **out)
{
    if (!chain || !out || option < 0 || option >= GPT_N_BLOCK_OPTIONS)
        return remat_fail(REMAT_EINVAL, "gpt_plan_selective: bad arguments (option %d)", option);
    uint64_t store_all_peak;
    REMAT_TRY(remat_store_all_peak(chain, &store_all_peak));
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    remat_schedule *s = NULL;
    REMAT_TRY(remat_plan_layout(chain, &all, REMAT_LAYOUT_POOL, store_all_peak, &s));
    for (size_t k = 0; k < s->n_ops; k++)
        if (s->ops[k].kind == REMAT_OP_F_ALL && chain->stages[s->ops[k].stage].n_options > option)
            s->ops[k].option = option;
    remat_sim_result sim;
    remat_status st = remat_simulate(chain, s->ops, s->n_ops, &sim);
    if (st == REMAT_OK && !sim.valid)
        st = remat_fail(REMAT_EINTERNAL, "selective schedule invalid: %s", sim.why);
    s->peak_bytes = sim.peak_bytes;
    /* the options changed the buffers: lay out the edited ops (the peak becomes the arena) */
    if (st == REMAT_OK && layout == REMAT_LAYOUT_PLANNED)
        st = remat_schedule_plan_layout(s, chain);
    if (st == REMAT_OK && s->peak_bytes > budget)
        st =
            remat_fail(REMAT_EINFEASIBLE, "selective:%s peaks at %llu bytes, above the budget %llu",
                       gpt_block_option_names[option], (unsigned long long)s->peak_bytes,
                       (unsigned long long)budget);
    if (st != REMAT_OK) {
        remat_schedule_free(s);
        return st;
    }
    s->time = sim.time;
    s->overhead = s->base_time > 0 ? sim.time / s->base_time - 1 : 0;
    s->budget_bytes = budget;
    *out = s;
    return REMAT_OK;
}

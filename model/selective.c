/* model/selective.c: what is left of the old selective-policy helpers, kept only while
 * cli/cmd_train.c (being changed for data parallel by another engineer) still calls them. Both
 * are thin wrappers over the scheduler's one vocabulary (remat_policy_parse, REMAT_POLICY_SELECTIVE
 * in checkpoint/solvers.c), so train means what every other command means. Delete this file with
 * its two declarations once cmd_train.c plans through remat_plan_layout directly. */
#include "core/core.h"
#include "model/gpt.h"

#include <string.h>

int gpt_selective_option(const char *policy)
{
    remat_policy p;
    if (!policy || (strncmp(policy, "selective:", 10) != 0 &&
                    strcmp(policy, "llmc-selective") != 0 &&
                    strcmp(policy, "megatron-selective") != 0))
        return -1;
    if (remat_policy_parse(policy, &p) != REMAT_OK || p.kind != REMAT_POLICY_SELECTIVE)
        return -2;
    for (int k = 0; k < GPT_N_BLOCK_OPTIONS; k++)
        if (strcmp(p.option, gpt_block_option_names[k]) == 0)
            return k;
    return -2;
}

remat_status gpt_plan_selective(const remat_chain *chain, int option, uint64_t budget,
                                remat_layout_mode layout, remat_schedule **out)
{
    if (option < 0 || option >= GPT_N_BLOCK_OPTIONS)
        return remat_fail(REMAT_EINVAL, "gpt_plan_selective: bad option %d", option);
    remat_policy p = {.kind = REMAT_POLICY_SELECTIVE};
    snprintf(p.option, sizeof p.option, "%s", gpt_block_option_names[option]);
    return remat_plan_layout(chain, &p, layout, budget, out);
}

/* plan/cards.c: GPU presets with the capacity the driver reports (nvidia-smi memory.total), and
 * the names of data types, optimizers and activation policies. */
#include "plan/plan.h"

#include <string.h>
#include <strings.h>

#define MIB(n) ((uint64_t)(n) << 20)

/* nvidia-smi memory.total from public nvidia-smi output (docs/planner.md, "Cards"). */
static const remat_card cards[] = {
    {"t4", "NVIDIA Tesla T4 (16 GB GDDR6)", MIB(15360)},
    {"a10", "NVIDIA A10 (24 GB GDDR6, ECC on)", MIB(23028)},
    {"l4", "NVIDIA L4 (24 GB GDDR6)", MIB(23034)},
    {"a100-40gb", "NVIDIA A100 40GB", MIB(40960)},
    {"a100-80gb", "NVIDIA A100 80GB", MIB(81920)},
    {"h100-80gb", "NVIDIA H100 80GB HBM3", MIB(81559)},
    {"h200", "NVIDIA H200 (141 GB HBM3e)", MIB(143771)},
    {"rtx4090", "NVIDIA GeForce RTX 4090 (24 GB)", MIB(24564)},
    {"b200", "NVIDIA B200 (192 GB HBM3e)", MIB(183359)},
};
static const size_t n_cards = sizeof cards / sizeof cards[0];

size_t remat_card_count(void)
{
    return n_cards;
}

const remat_card *remat_card_at(size_t i)
{
    return i < n_cards ? &cards[i] : NULL;
}

remat_status remat_card_lookup(const char *name, remat_card *out)
{
    if (!name || !out)
        return remat_fail(REMAT_EINVAL, "remat_card_lookup: name and out must not be NULL");
    for (size_t i = 0; i < n_cards; i++) {
        if (strcasecmp(cards[i].name, name) == 0) {
            *out = cards[i];
            return REMAT_OK;
        }
    }
    return remat_fail(REMAT_EINVAL, "unknown card '%s' (see 'remat fit --list', or give a size)",
                      name);
}

/* ==== Names ================================================================================ */

static const char *const dtype_names[] = {"fp32", "bf16", "fp16", "fp8", "int8", "int4"};
static const char *const optimizer_names[] = {"adamw", "sgd", "sgd-momentum"};
static const char *const policy_names[] = {"store-all", "llmc-selective", "megatron-selective",
                                           "full-recompute", "optimal"};

/* Index of text in names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *text)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp(names[i], text) == 0)
            return i;
    return -1;
}

remat_status remat_dtype_parse(const char *text, remat_dtype *out)
{
    int i = name_index(dtype_names, 6, text);
    if (i < 0 || !out)
        return remat_fail(REMAT_EINVAL,
                          "unknown data type '%s' (fp32, bf16, fp16, fp8, int8, int4)",
                          text ? text : "(null)");
    *out = (remat_dtype)i;
    return REMAT_OK;
}

const char *remat_dtype_name(remat_dtype d)
{
    return (unsigned)d < 6 ? dtype_names[d] : "unknown";
}

remat_status remat_optimizer_parse(const char *text, remat_optimizer *out)
{
    int i = name_index(optimizer_names, 3, text);
    if (i < 0 || !out)
        return remat_fail(REMAT_EINVAL, "unknown optimizer '%s' (adamw, sgd, sgd-momentum)",
                          text ? text : "(null)");
    *out = (remat_optimizer)i;
    return REMAT_OK;
}

const char *remat_optimizer_name(remat_optimizer o)
{
    return (unsigned)o < 3 ? optimizer_names[o] : "unknown";
}

remat_status remat_act_policy_parse(const char *text, remat_act_policy *out)
{
    int i = name_index(policy_names, REMAT_ACT_COUNT, text);
    if (i < 0 || !out)
        return remat_fail(REMAT_EINVAL,
                          "unknown policy '%s' (store-all, llmc-selective, megatron-selective, "
                          "full-recompute, optimal)",
                          text ? text : "(null)");
    *out = (remat_act_policy)i;
    return REMAT_OK;
}

const char *remat_act_policy_name(remat_act_policy p)
{
    return (unsigned)p < REMAT_ACT_COUNT ? policy_names[p] : "unknown";
}

unsigned plan_dtype_bytes(remat_dtype d)
{
    switch (d) {
    case REMAT_DTYPE_FP32: return 4;
    case REMAT_DTYPE_BF16:
    case REMAT_DTYPE_FP16: return 2;
    default: return 1;
    }
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

uint64_t plan_weight_bytes(uint64_t params, remat_dtype q, int row)
{
    switch (q) {
    case REMAT_DTYPE_FP32: return 4 * params;
    case REMAT_DTYPE_BF16:
    case REMAT_DTYPE_FP16: return 2 * params;
    /* e4m3 plus one fp32 scale per 128x128 block (weight_block_size [128, 128]). */
    case REMAT_DTYPE_FP8: return params + 4 * ceil_div(params, 128 * 128);
    /* int8 plus one fp16 scale per output row of `row` inputs. */
    case REMAT_DTYPE_INT8: return params + 2 * ceil_div(params, row > 0 ? (uint64_t)row : 4096);
    /* two 4-bit values a byte plus one fp16 scale per group of 128. */
    case REMAT_DTYPE_INT4: return ceil_div(params, 2) + 2 * ceil_div(params, 128);
    }
    return 0;
}

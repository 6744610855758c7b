/* fit/cards.c: GPU presets with the capacity the driver reports (nvidia-smi memory.total), and
 * the names of data types, optimizers and activation policies. */
#include "fit/fit.h"

#include <ctype.h>
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

static const char *card_name_at(size_t i)
{
    return i < n_cards ? cards[i].name : NULL;
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
    char near[160];
    fit_suggest(name, card_name_at, n_cards, near, sizeof near);
    return remat_fail(REMAT_EINVAL,
                      "unknown card '%s'%s (see 'remat fit --list', or give a size such as 80GB)",
                      name, near);
}

/* ==== Suggestions ========================================================================== */

#define SUGGEST_MAX_LEN 64
#define SUGGEST_MAX 4

/* Levenshtein distance, case-insensitive, of the first 64 characters of a and b. */
static int suggest_distance(const char *a, const char *b)
{
    int la = (int)strnlen(a, SUGGEST_MAX_LEN), lb = (int)strnlen(b, SUGGEST_MAX_LEN);
    int row[SUGGEST_MAX_LEN + 1];
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j];
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            int best = diag + !same;
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Does name contain text (case-insensitive)? A name that holds the whole text ("a100" in
 * "a100-80gb", "4090" in "rtx4090") is the likeliest meaning. */
static int suggest_contains(const char *name, const char *text)
{
    size_t n = strlen(text);
    if (n < 2)
        return 0;
    for (const char *p = name; *p; p++)
        if (strncasecmp(p, text, n) == 0)
            return 1;
    return 0;
}

static void suggest_append(char *buf, size_t len, size_t *used, int *count, const char *name)
{
    if (*count >= SUGGEST_MAX || *used >= len)
        return;
    int k = snprintf(buf + *used, len - *used, "%s%s", *count ? ", " : " (did you mean ", name);
    if (k > 0)
        *used += (size_t)k;
    (*count)++;
}

void fit_suggest(const char *text, const char *(*name_at)(size_t), size_t n, char *buf, size_t len)
{
    size_t used = 0;
    int count = 0;
    if (!buf || len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (suggest_contains(name_at(i), text))
            suggest_append(buf, len, &used, &count, name_at(i));
    if (count == 0) {
        /* the closest names, if close enough to be a typo: a third of the text's length, >= 2 */
        int best = (int)strnlen(text, SUGGEST_MAX_LEN) / 3;
        best = best < 2 ? 2 : best;
        for (size_t i = 0; i < n; i++) {
            int d = suggest_distance(text, name_at(i));
            best = d < best ? d : best;
        }
        for (size_t i = 0; i < n; i++)
            if (suggest_distance(text, name_at(i)) == best)
                suggest_append(buf, len, &used, &count, name_at(i));
    }
    if (count > 0 && used < len)
        snprintf(buf + used, len - used, "?)");
}

/* ==== Names ================================================================================ */

const char *remat_arch_name(remat_arch a)
{
    switch (a) {
    case REMAT_ARCH_GPT2: return "gpt2";
    case REMAT_ARCH_LLAMA: return "llama";
    case REMAT_ARCH_DEEPSEEK: return "deepseek";
    }
    return "unknown";
}

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

void fit_act_policy(remat_act_policy p, remat_policy *out)
{
    /* the names are the scheduler's own vocabulary: its parser says what each one means */
    remat_status s = remat_policy_parse((unsigned)p < REMAT_ACT_COUNT ? policy_names[p] : "store-all", out);
    (void)s; /* every name of policy_names parses (tests/cli/test_policy.c) */
}

remat_status remat_act_policy_parse(const char *text, remat_act_policy *out)
{
    remat_policy want;
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_act_policy_parse: out must not be NULL");
    if (remat_policy_parse(text, &want) != REMAT_OK)
        return remat_fail(REMAT_EINVAL,
                          "unknown policy '%s' (store-all, llmc-selective = "
                          "selective:recompute-gelu, megatron-selective = "
                          "selective:recompute-attn, full-recompute, optimal)",
                          text ? text : "(null)");
    for (int i = 0; i < REMAT_ACT_COUNT; i++) {
        remat_policy p;
        fit_act_policy((remat_act_policy)i, &p);
        if (p.kind == want.kind && strcmp(p.option, want.option) == 0) {
            *out = (remat_act_policy)i;
            return REMAT_OK;
        }
    }
    char name[REMAT_POLICY_NAME_MAX];
    return remat_fail(REMAT_EINVAL,
                      "policy '%s' (%s) is not an activation policy of the planner (store-all, "
                      "llmc-selective, megatron-selective, full-recompute, optimal; another "
                      "selective:OPTION goes in remat_fit_request.option)",
                      text, remat_policy_name(&want, name, sizeof name));
}

const char *remat_act_policy_name(remat_act_policy p)
{
    return (unsigned)p < REMAT_ACT_COUNT ? policy_names[p] : "unknown";
}

unsigned fit_dtype_bytes(remat_dtype d)
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

uint64_t fit_weight_bytes(uint64_t params, remat_dtype q, int row)
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

/* cli/cmd_fit.c: `remat fit`: what a model needs per GPU on a card, for training or serving, and
 * the largest batch that fits per activation policy; `--card all` compares every preset. */
#include "cli/cli.h"
#include "fit/fit.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cmd_fit_usage(FILE *f)
{
    fprintf(
        f,
        "usage: remat fit (--model M | --params N | --layers L --hidden H --heads A --vocab V\n"
        "                  [--kv-heads K] [--ffn F] [--arch llama|gpt2])\n"
        "                 --card CARD|SIZE|all [--gpus N] [--batch B (default 1)] [--seq T]\n"
        "                 [--json]\n"
        "                 [--dtype fp32|bf16|fp16 [--master-weights on|off]]\n"
        "                 [--optimizer adamw|sgd|sgd-momentum]\n"
        "                 [--policy P] [--zero 0-3]\n"
        "                 [--inference [--quant fp32|bf16|fp16|fp8|int8|int4] [--kv-dtype D]]\n"
        "                 [--measure [--device SPEC] [--expandable]]\n"
        "       remat fit --list [--json]\n\n"
        "Prints the memory one GPU needs (weights, gradients, optimizer states, activations,\n"
        "KV cache, workspace, CUDA context and allocator reserve) and the largest batch that\n"
        "fits per activation policy: store-all, llmc-selective, megatron-selective,\n"
        "full-recompute, optimal. Training: --dtype fp32 is 4+4+8 bytes a parameter with\n"
        "AdamW; bf16/fp16 is mixed precision with fp32 master weights, 2+2+12, or with\n"
        "--master-weights off (16-bit weights only, as remat train's) 2+2+8. --zero shards\n"
        "states over --gpus data-parallel ranks. --inference: weights in --quant (default bf16,\n"
        "fp8 for deepseek-r1), KV cache of --batch x --seq tokens, tensor parallel over --gpus.\n"
        "--params N (7.5e9 allowed) plans model states only. A shape without --arch is\n"
        "Llama-style (RMSNorm, SwiGLU, untied head). CARD is a preset (--list), a size with a\n"
        "unit (24GB, 80GiB) or all (one row per preset). --policy picks the breakdown's policy\n"
        "(default store-all; selective:OPTION for any block option, llmc-selective =\n"
        "selective:recompute-gelu, megatron-selective = selective:recompute-attn, as in every\n"
        "command); --batch (default 1) and --seq (default: the model's context) too.\n"
        "Quantized formats (fp8, int8, int4) apply to the linear layers inside the blocks and\n"
        "the experts; embeddings, head, norms and routers stay 16-bit.\n"
        "--measure (our GPT: tiny, small, gpt2-124m, gpt2-350m) trains 2 steps at each policy's\n"
        "largest batch on --device (default host) in a pool limited to the card less context\n"
        "and workspace (--expandable: with expandable segments), prints planned against\n"
        "measured pool peak, and tries one more sequence. It trains in fp32 or, with --dtype\n"
        "bf16 [--master-weights off], in bf16 as `remat train --dtype bf16` does. With\n"
        "--zero K --gpus N it runs under `mpirun -np N`: every rank trains its part of the\n"
        "data-parallel step (ZeRO-2/3's unit buffers come from the pool) and rank 0 prints.\n"
        "Formulas and sources: docs/planner.md.\n");
}

/* ==== Arguments ============================================================================ */

typedef struct {
    remat_fit_request req;
    const char *model_name, *card_text;
    char card_name[32];
    int json, list, all_cards, measure, expandable;
    const char *device; /* --measure: where to train (default host) */
    int shaped;         /* a generic shape was given */
    int arch_set;       /* --arch was given (else a generic shape is Llama-style) */
    int quant_set, training_only_set, inference_only_set, gpus_set;
    const char *master_text; /* --master-weights as given (NULL: not given) */
} fit_args;

enum {
    OPT_MODEL = 256,
    OPT_PARAMS,
    OPT_LAYERS,
    OPT_HIDDEN,
    OPT_HEADS,
    OPT_KV_HEADS,
    OPT_FFN,
    OPT_VOCAB,
    OPT_ARCH,
    OPT_CARD,
    OPT_GPUS,
    OPT_BATCH,
    OPT_SEQ,
    OPT_DTYPE,
    OPT_MASTER_WEIGHTS,
    OPT_OPTIMIZER,
    OPT_POLICY,
    OPT_ZERO,
    OPT_INFERENCE,
    OPT_QUANT,
    OPT_KV_DTYPE,
    OPT_JSON,
    OPT_LIST,
    OPT_MEASURE,
    OPT_DEVICE,
    OPT_EXPANDABLE,
};

static const struct option fit_options[] = {
    {"model", required_argument, NULL, OPT_MODEL},
    {"params", required_argument, NULL, OPT_PARAMS},
    {"layers", required_argument, NULL, OPT_LAYERS},
    {"hidden", required_argument, NULL, OPT_HIDDEN},
    {"channels", required_argument, NULL, OPT_HIDDEN},
    {"heads", required_argument, NULL, OPT_HEADS},
    {"kv-heads", required_argument, NULL, OPT_KV_HEADS},
    {"ffn", required_argument, NULL, OPT_FFN},
    {"vocab", required_argument, NULL, OPT_VOCAB},
    {"arch", required_argument, NULL, OPT_ARCH},
    {"card", required_argument, NULL, OPT_CARD},
    {"gpus", required_argument, NULL, OPT_GPUS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"seq", required_argument, NULL, OPT_SEQ},
    {"dtype", required_argument, NULL, OPT_DTYPE},
    {"master-weights", required_argument, NULL, OPT_MASTER_WEIGHTS},
    {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"zero", required_argument, NULL, OPT_ZERO},
    {"inference", no_argument, NULL, OPT_INFERENCE},
    {"quant", required_argument, NULL, OPT_QUANT},
    {"kv-dtype", required_argument, NULL, OPT_KV_DTYPE},
    {"json", no_argument, NULL, OPT_JSON},
    {"list", no_argument, NULL, OPT_LIST},
    {"measure", no_argument, NULL, OPT_MEASURE},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"expandable", no_argument, NULL, OPT_EXPANDABLE},
    {NULL, 0, NULL, 0},
};

/* A whole number option into an int field; -1 on error (message printed). */
static int fit_int(const char *opt, const char *text, long lo, long hi, int *out)
{
    long v = 0;
    if (cli_parse_int("fit", opt, text, lo, hi, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* --params N: plain or scientific notation, a whole count in [1, 1e15]. */
static int fit_params(const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v) || v < 1 || v > 1e15 || v != floor(v)) {
        cli_usage_error("fit",
                        "--params expects a whole parameter count in [1, 1e15] (e.g. 7.5e9), "
                        "got '%s'",
                        text);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int fit_status(remat_status s)
{
    if (s == REMAT_OK)
        return 0;
    cli_usage_error("fit", "%s", remat_last_error());
    return -1;
}

/* --policy, read by remat_policy_parse (the one vocabulary): an activation policy of the
 * planner, or selective:OPTION with any other block option (req->option). */
static int fit_policy(const char *v, remat_fit_request *r)
{
    remat_policy p;
    if (fit_status(remat_policy_parse(v, &p)) != 0)
        return -1;
    r->option[0] = '\0';
    if (remat_act_policy_parse(v, &r->policy) == REMAT_OK)
        return 0;
    remat_clear_error();
    if (p.kind != REMAT_POLICY_SELECTIVE)
        return cli_usage_error("fit",
                               "--policy %s: fit plans store-all, full-recompute, optimal and "
                               "selective policies (selective:OPTION, llmc-selective, "
                               "megatron-selective)",
                               v),
               -1;
    r->policy = REMAT_ACT_STORE_ALL;
    snprintf(r->option, sizeof r->option, "%s", p.option);
    return 0;
}

/* The breakdown's policy as the scheduler names it (selective:OPTION, or the act policy). */
static const char *fit_policy_name(const remat_fit_request *r, char *buf, size_t n)
{
    if (!r->option[0])
        return remat_act_policy_name(r->policy);
    snprintf(buf, n, "selective:%s", r->option);
    return buf;
}

static int fit_arch(const char *text, remat_arch *out)
{
    if (strcmp(text, "llama") == 0)
        *out = REMAT_ARCH_LLAMA;
    else if (strcmp(text, "gpt2") == 0)
        *out = REMAT_ARCH_GPT2;
    else
        return cli_usage_error("fit", "--arch '%s': use llama or gpt2", text), -1;
    return 0;
}

/* Applies one shape option to the generic model. */
static int fit_shape_option(fit_args *a, int c, const char *v)
{
    remat_model_desc *m = &a->req.model;
    a->shaped = 1;
    switch (c) {
    case OPT_LAYERS: return fit_int("--layers", v, 1, 10000, &m->layers);
    case OPT_HIDDEN: return fit_int("--hidden", v, 1, 1 << 20, &m->hidden);
    case OPT_HEADS: return fit_int("--heads", v, 1, 1 << 16, &m->heads);
    case OPT_KV_HEADS: return fit_int("--kv-heads", v, 1, 1 << 16, &m->kv_heads);
    case OPT_FFN: return fit_int("--ffn", v, 1, 1 << 24, &m->ffn);
    case OPT_VOCAB: return fit_int("--vocab", v, 1, 1 << 26, &m->vocab);
    default: a->arch_set = 1; return fit_arch(v, &m->arch);
    }
}

/* Applies one option; -1 on a usage error (printed). */
static int fit_option(fit_args *a, int c, const char *v)
{
    remat_fit_request *r = &a->req;
    switch (c) {
    case OPT_MODEL: a->model_name = v; return 0;
    case OPT_PARAMS: return fit_params(v, &r->model.params_only);
    case OPT_CARD: a->card_text = v; return 0;
    case OPT_GPUS: a->gpus_set = 1; return fit_int("--gpus", v, 1, 65536, &r->gpus);
    case OPT_BATCH: return fit_int("--batch", v, 1, 1000000000, &r->batch);
    case OPT_SEQ: return fit_int("--seq", v, 1, 1 << 24, &r->seq);
    case OPT_DTYPE: return fit_status(remat_dtype_parse(v, &r->dtype));
    case OPT_MASTER_WEIGHTS:
        a->training_only_set = 1;
        a->master_text = v;
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return cli_usage_error("fit", "--master-weights '%s': use on or off", v), -1;
        r->no_master_weights = strcmp(v, "off") == 0;
        return 0;
    case OPT_OPTIMIZER:
        a->training_only_set = 1;
        return fit_status(remat_optimizer_parse(v, &r->optimizer));
    case OPT_POLICY:
        a->training_only_set = 1;
        return fit_policy(v, r);
    case OPT_ZERO: a->training_only_set = 1; return fit_int("--zero", v, 0, 3, &r->zero);
    case OPT_INFERENCE: r->inference = 1; return 0;
    case OPT_QUANT:
        a->quant_set = a->inference_only_set = 1;
        return fit_status(remat_dtype_parse(v, &r->quant));
    case OPT_KV_DTYPE:
        a->inference_only_set = 1;
        return fit_status(remat_dtype_parse(v, &r->kv_dtype));
    case OPT_JSON: a->json = 1; return 0;
    case OPT_LIST: a->list = 1; return 0;
    case OPT_MEASURE: a->measure = 1; return 0;
    case OPT_DEVICE: a->device = v; return 0;
    case OPT_EXPANDABLE: a->expandable = 1; return 0;
    default: return fit_shape_option(a, c, v);
    }
}

/* Completes a generic shape: defaults for kv-heads, ffn, padding and context. */
static void fit_generic_defaults(fit_args *a)
{
    remat_model_desc *m = &a->req.model;
    snprintf(m->name, sizeof m->name, "custom");
    if (!a->arch_set)
        m->arch = REMAT_ARCH_LLAMA; /* as documented; a zeroed description would be GPT-2 */
    if (!m->kv_heads)
        m->kv_heads = m->heads;
    if (!m->ffn && m->hidden > 0)
        m->ffn =
            m->arch == REMAT_ARCH_GPT2 ? 4 * m->hidden : 256 * ((8 * m->hidden / 3 + 255) / 256);
    m->padded_vocab = m->vocab;
    m->max_seq = a->req.seq > 0 ? a->req.seq : 2048;
    m->tied = m->arch == REMAT_ARCH_GPT2;
}

/* Picks the model from --model, --params or the generic shape; -1 on a usage error. */
static int fit_resolve_model(fit_args *a)
{
    remat_model_desc *m = &a->req.model;
    int sources = (a->model_name != NULL) + (m->params_only != 0) + a->shaped;
    if (sources == 0)
        return cli_usage_error("fit", "give a model: --model M, --params N or --layers/--hidden/"
                                      "--heads/--vocab"),
               -1;
    if (sources > 1)
        return cli_usage_error("fit", "--model, --params and a generic shape (--layers ...) "
                                      "exclude each other"),
               -1;
    if (a->model_name) {
        if (fit_status(remat_model_lookup(a->model_name, m)) != 0)
            return -1;
        if (m->arch == REMAT_ARCH_DEEPSEEK && !a->quant_set)
            a->req.quant = REMAT_DTYPE_FP8; /* R1 ships its weights in FP8 only */
        return 0;
    }
    if (m->params_only) {
        snprintf(m->name, sizeof m->name, "params");
        return 0;
    }
    if (!m->layers || !m->hidden || !m->heads || !m->vocab)
        return cli_usage_error("fit", "a generic model needs --layers, --hidden, --heads and "
                                      "--vocab"),
               -1;
    fit_generic_defaults(a);
    return fit_status(remat_model_validate(m));
}

/* --card NAME | SIZE | all; -1 on a usage error. */
static int fit_resolve_card(fit_args *a)
{
    if (!a->card_text)
        return cli_usage_error("fit", "give a card: --card NAME, --card SIZE or --card all"), -1;
    if (strcmp(a->card_text, "all") == 0) {
        a->all_cards = 1;
        return 0;
    }
    remat_card card;
    if (remat_card_lookup(a->card_text, &card) == REMAT_OK) {
        snprintf(a->card_name, sizeof a->card_name, "%s", card.name);
        a->req.card_bytes = card.bytes;
        return 0;
    }
    /* A name (with the nearest presets) unless it starts like a number: then it is a size and
     * needs a unit ("80" alone is refused, not read as 80 bytes). */
    if (!isdigit((unsigned char)a->card_text[0]) && a->card_text[0] != '.')
        return cli_usage_error("fit", "%s", remat_last_error()), -1;
    char as_name[320];
    snprintf(as_name, sizeof as_name, "%s", remat_last_error());
    uint64_t bytes = 0;
    if (remat_parse_size(a->card_text, &bytes) != REMAT_OK) {
        if (strstr(as_name, "did you mean")) /* "4090": a size without a unit, or rtx4090? */
            return cli_usage_error("fit", "--card: %s; as a name: %s", remat_last_error(), as_name),
                   -1;
        return cli_usage_error("fit", "--card: %s", remat_last_error()), -1;
    }
    if (bytes == 0)
        return cli_usage_error("fit", "--card %s: a card needs more than 0 bytes", a->card_text),
               -1;
    snprintf(a->card_name, sizeof a->card_name, "%s", a->card_text);
    a->req.card_bytes = bytes;
    return 0;
}

static int fit_check_conflicts(const fit_args *a)
{
    if (a->req.inference && a->training_only_set)
        return cli_usage_error("fit", "--optimizer, --policy, --zero and --master-weights describe "
                                      "training; they conflict with --inference"),
               -1;
    if (a->master_text && a->req.dtype == REMAT_DTYPE_FP32)
        return cli_usage_error("fit",
                               "--master-weights %s needs --dtype bf16 or fp16 (mixed precision); "
                               "in fp32 the weights are the master weights",
                               a->master_text),
               -1;
    if (!a->req.inference && a->inference_only_set)
        return cli_usage_error("fit", "--quant and --kv-dtype need --inference"), -1;
    if ((a->device || a->expandable) && !a->measure)
        return cli_usage_error("fit", "--device and --expandable are for --measure"), -1;
    if (a->measure && a->card_text && strcmp(a->card_text, "all") == 0)
        return cli_usage_error("fit", "--measure runs on one card size, not --card all"), -1;
    if (a->req.inference && a->req.dtype != REMAT_DTYPE_FP32)
        return cli_usage_error("fit", "--dtype describes training; with --inference use --quant "
                                      "and --kv-dtype"),
               -1;
    return 0;
}

static int fit_parse(fit_args *a, int argc, char **argv)
{
    remat_fit_request_init(&a->req);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", fit_options, NULL)) != -1) {
        if (c == '?' || c == ':')
            return cli_bad_option("fit", argv), -1;
        if (fit_option(a, c, optarg) != 0)
            return -1;
    }
    if (optind < argc)
        return cli_usage_error("fit", "unexpected argument '%s'", argv[optind]), -1;
    if (a->list)
        return 0;
    if (fit_check_conflicts(a) != 0 || fit_resolve_model(a) != 0)
        return -1;
    return fit_resolve_card(a);
}

/* ==== Output =============================================================================== */

static const char *const part_names[] = {"weights",  "gradients", "optimizer", "activations",
                                         "kv_cache", "workspace", "reserve",   "total"};

static uint64_t part(const remat_fit_bytes *b, int i)
{
    const uint64_t v[] = {b->weights,  b->gradients, b->optimizer, b->activations,
                          b->kv_cache, b->workspace, b->reserve,   b->total};
    return v[i];
}

/* The policy to name when the request's own policy does not fit its batch: the first policy,
 * in the order of remat_act_policy (less recompute first), whose largest batch reaches it; -1
 * when none does (or when there is nothing to suggest: inference, a bare count). */
static int fit_alternative(const remat_fit_request *r, const remat_fit_result *res)
{
    if (res->fits || r->inference || r->model.params_only)
        return -1;
    for (int p = 0; p < REMAT_ACT_COUNT; p++)
        if ((r->option[0] || p != (int)r->policy) && res->max_batch[p] >= r->batch)
            return p;
    return -1;
}

/* Signed headroom in bytes as JSON: card - total (negative when short). */
static void fit_json_headroom(const remat_fit_request *r, const remat_fit_result *res)
{
    uint64_t total = res->per_gpu.total;
    if (total <= r->card_bytes)
        printf("%llu", (unsigned long long)(r->card_bytes - total));
    else
        printf("-%llu", (unsigned long long)(total - r->card_bytes));
}

/* A JSON number, or null where it is not finite (JSON has no nan or inf). */
static void fit_json_fraction(double v)
{
    if (isfinite(v))
        printf("%.6f", v);
    else
        printf("null");
}

static void fit_json_name_or_null(int applies, const char *name)
{
    if (applies)
        printf("\"%s\"", name);
    else
        printf("null");
}

/* Mode, formats and sharding: what the text's "mode" line says. */
static void fit_json_mode(const remat_fit_request *r)
{
    int t = !r->inference;
    printf("\"mode\": \"%s\", \"dtype\": ", t ? "training" : "inference");
    fit_json_name_or_null(t, remat_dtype_name(r->dtype));
    printf(", \"master_weights\": ");
    if (t && r->dtype != REMAT_DTYPE_FP32)
        printf("%s", r->no_master_weights ? "false" : "true");
    else
        printf("null");
    printf(", \"optimizer\": ");
    fit_json_name_or_null(t, remat_optimizer_name(r->optimizer));
    printf(", \"zero\": ");
    if (t)
        printf("%d", r->zero);
    else
        printf("null");
    char pname[REMAT_POLICY_NAME_MAX];
    printf(", \"policy\": ");
    fit_json_name_or_null(t, fit_policy_name(r, pname, sizeof pname));
    printf(", \"quant\": ");
    fit_json_name_or_null(!t, remat_dtype_name(r->quant));
    printf(", \"kv_dtype\": ");
    fit_json_name_or_null(!t, remat_dtype_name(r->kv_dtype));
}

/* Inference weights: the part in --quant (scales included) and the part kept in 16 bits. */
static void fit_json_weights(const remat_fit_request *r, const remat_fit_result *res)
{
    if (!r->inference) {
        printf("null");
        return;
    }
    /* float formats hold every weight as is; fp8/int8/int4 keep the rest in bf16 */
    int integer = res->quant_params > 0 || r->quant == REMAT_DTYPE_FP8 ||
                  r->quant == REMAT_DTYPE_INT8 || r->quant == REMAT_DTYPE_INT4;
    printf("{\"format\": \"%s\", \"quantized_params\": %llu, \"quantized_bytes\": %llu, "
           "\"scale_bytes\": %llu, \"unquantized_format\": \"%s\", \"unquantized_bytes\": %llu}",
           remat_dtype_name(r->quant), (unsigned long long)res->quant_params,
           (unsigned long long)res->weights_quantized, (unsigned long long)res->weights_scales,
           integer ? "bf16" : remat_dtype_name(r->quant), (unsigned long long)res->weights_16bit);
}

/* max_batch and overhead per policy (training), or the inference answers. */
static void fit_json_answers(const remat_fit_request *r, const remat_fit_result *res)
{
    printf("\"max_batch\": {");
    if (r->inference && !r->model.params_only) {
        uint64_t per_token = 0;
        (void)!remat_kv_bytes_per_token(&r->model, r->kv_dtype, r->gpus, &per_token); /* fit ran */
        printf("\"inference\": %ld}, \"overhead\": {}, \"kv_bytes_per_token\": %llu, "
               "\"kv_tokens\": %ld, \"model_context\": %d",
               res->max_batch[0], (unsigned long long)per_token, res->max_tokens, r->model.max_seq);
        return;
    }
    for (int p = 0; p < REMAT_ACT_COUNT && !r->model.params_only; p++) {
        printf("%s\"%s\": ", p ? ", " : "", remat_act_policy_name((remat_act_policy)p));
        if (res->max_batch[p] < 0)
            printf("null");
        else
            printf("%ld", res->max_batch[p]);
    }
    printf("}, \"overhead\": {");
    for (int p = 0; p < REMAT_ACT_COUNT && !r->model.params_only; p++) {
        printf("%s\"%s\": ", p ? ", " : "", remat_act_policy_name((remat_act_policy)p));
        if (res->max_batch[p] <= 0)
            printf("null"); /* no batch fits: no overhead to report */
        else
            fit_json_fraction(res->overhead[p]);
    }
    printf("}, \"kv_bytes_per_token\": null, \"kv_tokens\": null, \"model_context\": ");
    if (r->model.params_only)
        printf("null");
    else
        printf("%d", r->model.max_seq);
}

static void fit_print_json(const remat_fit_request *r, const char *card,
                           const remat_fit_result *res)
{
    printf("{\"model\": ");
    cli_json_string(stdout, r->model.name);
    printf(", \"arch\": ");
    fit_json_name_or_null(!r->model.params_only, remat_arch_name(r->model.arch));
    printf(", \"params\": %llu, \"active_params\": %llu, ", (unsigned long long)res->params,
           (unsigned long long)res->active_params);
    fit_json_mode(r);
    printf(", \"card\": {\"name\": ");
    cli_json_string(stdout, card);
    printf(", \"bytes\": %llu}, \"gpus\": %d, \"batch\": %d, \"seq\": %d, \"per_gpu_bytes\": {",
           (unsigned long long)r->card_bytes, r->gpus, r->batch, r->seq);
    for (int i = 0; i < 8; i++)
        printf("%s\"%s\": %llu", i ? ", " : "", part_names[i],
               (unsigned long long)part(&res->per_gpu, i));
    printf("}, \"weights\": ");
    fit_json_weights(r, res);
    printf(", \"headroom_bytes\": ");
    fit_json_headroom(r, res);
    printf(", \"pool_bytes\": %llu, \"comm_bytes_per_step\": %llu, ",
           (unsigned long long)res->pool_bytes, (unsigned long long)res->comm_bytes_per_step);
    fit_json_answers(r, res);
    int alt = fit_alternative(r, res);
    printf(", \"fits\": %s, \"alternative\": ", res->fits ? "true" : "false");
    if (alt < 0)
        printf("null}");
    else
        printf("{\"policy\": \"%s\", \"max_batch\": %ld}}",
               remat_act_policy_name((remat_act_policy)alt), res->max_batch[alt]);
}

static const char *human(uint64_t bytes, char *buf)
{
    return remat_format_bytes(bytes, buf, 32);
}

static void fit_print_header(const remat_fit_request *r)
{
    const remat_model_desc *m = &r->model;
    uint64_t total = 0, active = 0;
    (void)!remat_model_params(m, &total, &active); /* remat_fit accepted m */
    printf("model      %s", m->name);
    if (!m->params_only)
        printf(" (%s)", remat_arch_name(m->arch));
    printf(": %llu parameters", (unsigned long long)total);
    if (active != total)
        printf(", %llu active per token (MoE)", (unsigned long long)active);
    uint64_t mtp = remat_model_mtp_params(m);
    if (mtp)
        printf("; MTP module %llu more, not counted", (unsigned long long)mtp);
    printf("\n");
    char pname[REMAT_POLICY_NAME_MAX];
    if (r->inference)
        printf("mode       inference: %s weights, %s KV cache, tensor parallel over %d GPU%s, "
               "batch %d x seq %d\n",
               remat_dtype_name(r->quant), remat_dtype_name(r->kv_dtype), r->gpus,
               r->gpus > 1 ? "s" : "", r->batch, r->seq);
    else
        printf(
            "mode       training: %s%s %s%s, ZeRO-%d over %d GPU%s, batch %d x seq %d, policy %s\n",
            remat_dtype_name(r->dtype), r->dtype == REMAT_DTYPE_FP32 ? "" : " mixed precision",
            remat_optimizer_name(r->optimizer),
            r->dtype == REMAT_DTYPE_FP32 ? ""
            : r->no_master_weights       ? " without master weights"
                                         : " with fp32 master weights",
            r->zero, r->gpus, r->gpus > 1 ? "s" : "", r->batch,
            r->seq, fit_policy_name(r, pname, sizeof pname));
}

static void fit_print_max_batch(const remat_fit_request *r, const remat_fit_result *res)
{
    if (r->model.params_only)
        return;
    if (r->inference) {
        printf("largest batch at seq %d: %ld sequences; KV capacity at batch 1: %ld tokens "
               "(model context %d)\n",
               r->seq, res->max_batch[0], res->max_tokens, r->model.max_seq);
        return;
    }
    printf("largest batch per policy (seq %d):\n", r->seq);
    for (int p = 0; p < REMAT_ACT_COUNT; p++) {
        printf("  %-20s", remat_act_policy_name((remat_act_policy)p));
        if (res->max_batch[p] < 0)
            printf("  n/a: the checkpoint scheduler gave no usable answer\n");
        else if (res->max_batch[p] == 0)
            printf("  0 (not even one sequence fits)\n");
        else
            printf("  %-10ld recompute overhead %.2f%%\n", res->max_batch[p],
                   100 * res->overhead[p]);
    }
}

/* Inference: the weights line split into the quantized linears and the 16-bit rest. */
static void fit_print_weight_split(const remat_fit_request *r, const remat_fit_result *res)
{
    char h[32];
    if (!r->inference || res->quant_params == 0)
        return;
    printf("    in %-7s %12s  %llu  (%llu parameters: block linears and experts; scales %llu B)\n",
           remat_dtype_name(r->quant), human(res->weights_quantized, h),
           (unsigned long long)res->weights_quantized, (unsigned long long)res->quant_params,
           (unsigned long long)res->weights_scales);
    printf("    in 16-bit  %12s  %llu  (embeddings, head, norms, biases, routers)\n",
           human(res->weights_16bit, h), (unsigned long long)res->weights_16bit);
}

/* The reserve's two parts: the CUDA context, and the allocator's part. For our GPT in training
 * that is the pool's computed rounding (the arena's segment, the states' 512 bytes); otherwise
 * an assumed 2% of the managed bytes. */
static void fit_print_reserve_split(const remat_fit_request *r, const remat_fit_result *res)
{
    char h[32];
    uint64_t context = FIT_CONTEXT_BYTES, reserve = res->per_gpu.reserve;
    uint64_t alloc = reserve > context ? reserve - context : 0;
    int exact = !r->inference && !r->model.params_only && r->model.arch == REMAT_ARCH_GPT2;
    printf("    context    %12s  %llu  (CUDA context, outside the pool)\n", human(context, h),
           (unsigned long long)context);
    printf("    allocator  %12s  %llu  (%s)\n", human(alloc, h), (unsigned long long)alloc,
           exact ? "our pool's rounding: the planned arena's 2 MiB segment and the states' "
                   "512 B; no fragmentation slack"
                 : "an assumed 2% slack of the managed bytes");
}

/* "fits: yes with store-all at batch 1 x seq 1024, ..." and, where the breakdown's policy does
 * not fit, the first policy that does. */
static void fit_print_fits(const remat_fit_request *r, const remat_fit_result *res)
{
    char h[32], what[128], pname[REMAT_POLICY_NAME_MAX];
    uint64_t total = res->per_gpu.total;
    if (r->model.params_only)
        snprintf(what, sizeof what, "(model states only)");
    else if (r->inference)
        snprintf(what, sizeof what, "at batch %d x seq %d", r->batch, r->seq);
    else
        snprintf(what, sizeof what, "with %s at batch %d x seq %d",
                 fit_policy_name(r, pname, sizeof pname), r->batch, r->seq);
    if (res->fits) {
        printf("fits: yes %s, %s headroom\n", what, human(r->card_bytes - total, h));
        return;
    }
    printf("fits: no %s, %s short", what, human(total - r->card_bytes, h));
    int alt = fit_alternative(r, res);
    if (alt >= 0)
        printf("; fits with %s (largest batch %ld)", remat_act_policy_name((remat_act_policy)alt),
               res->max_batch[alt]);
    else if (!r->inference && !r->model.params_only)
        printf("; no policy fits batch %d", r->batch);
    printf("\n");
}

static void fit_print_text(const char *card, const remat_fit_request *r,
                           const remat_fit_result *res)
{
    char h[32], c[32];
    fit_print_header(r);
    printf("card       %s: %s (%llu bytes)\n", card, human(r->card_bytes, c),
           (unsigned long long)r->card_bytes);
    printf("per GPU:\n");
    for (int i = 0; i < 8; i++) {
        uint64_t v = part(&res->per_gpu, i);
        printf("  %-12s %12s  %llu\n", part_names[i], human(v, h), (unsigned long long)v);
        if (i == 0)
            fit_print_weight_split(r, res);
        if (i == 6)
            fit_print_reserve_split(r, res);
    }
    printf("pool       %s (%llu bytes): the card less CUDA context and workspace\n",
           human(res->pool_bytes, h), (unsigned long long)res->pool_bytes);
    if (res->comm_bytes_per_step)
        printf("traffic    %s (%llu bytes) sent per GPU a step for data parallelism (ZeRO-%d, "
               "ring volumes)\n",
               human(res->comm_bytes_per_step, h), (unsigned long long)res->comm_bytes_per_step,
               r->zero);
    fit_print_fits(r, res);
    fit_print_max_batch(r, res);
}

static void fit_print_list_json(void)
{
    printf("{\"models\": [");
    for (size_t i = 0; i < remat_model_count(); i++) {
        remat_model_desc m;
        uint64_t total = 0, active = 0;
        if (remat_model_lookup(remat_model_at(i)->name, &m) != REMAT_OK ||
            remat_model_params(&m, &total, &active) != REMAT_OK)
            continue; /* cannot happen: every preset is valid */
        printf("%s{\"name\": ", i ? ", " : "");
        cli_json_string(stdout, m.name);
        printf(", \"arch\": \"%s\", \"params\": %llu, \"active_params\": %llu, \"context\": %d}",
               remat_arch_name(m.arch), (unsigned long long)total, (unsigned long long)active,
               m.max_seq);
    }
    printf("], \"cards\": [");
    for (size_t i = 0; i < remat_card_count(); i++) {
        const remat_card *c = remat_card_at(i);
        printf("%s{\"name\": ", i ? ", " : "");
        cli_json_string(stdout, c->name);
        printf(", \"label\": ");
        cli_json_string(stdout, c->label);
        printf(", \"bytes\": %llu}", (unsigned long long)c->bytes);
    }
    printf("]}\n");
}

static void fit_print_list(int json)
{
    char h[32];
    if (json) {
        fit_print_list_json();
        return;
    }
    printf("models:\n");
    for (size_t i = 0; i < remat_model_count(); i++) {
        remat_model_desc m;
        uint64_t total = 0, active = 0;
        if (remat_model_lookup(remat_model_at(i)->name, &m) != REMAT_OK ||
            remat_model_params(&m, &total, &active) != REMAT_OK)
            continue; /* cannot happen: every preset is valid */
        printf("  %-22s %-8s %16llu params", m.name, remat_arch_name(m.arch),
               (unsigned long long)total);
        if (active != total)
            printf(" (%llu active)", (unsigned long long)active);
        printf("\n");
    }
    printf("cards (capacity as the driver reports it):\n");
    for (size_t i = 0; i < remat_card_count(); i++) {
        const remat_card *c = remat_card_at(i);
        printf("  %-12s %10s  %-34s %llu bytes\n", c->name, human(c->bytes, h), c->label,
               (unsigned long long)c->bytes);
    }
}

/* ==== --card all ============================================================================ */

/* GPU counts to tabulate: 1, 2, 4, ... up to N, and N; only N when sharding is not asked. */
static int fit_gpu_counts(const remat_fit_request *r, int *counts, int max)
{
    int n = 0, sharded = r->inference || r->zero > 0;
    if (!sharded || r->gpus == 1) {
        counts[n++] = r->gpus;
        return n;
    }
    for (int g = 1; g < r->gpus && n < max - 1; g *= 2)
        counts[n++] = g;
    counts[n++] = r->gpus;
    return n;
}

static void fit_row_text(const remat_card *card, const remat_fit_request *r,
                         const remat_fit_result *res)
{
    char t[32], hr[32];
    uint64_t total = res->per_gpu.total;
    printf("%-10s %4d %10s %-4s", card->name, r->gpus, human(total, t), res->fits ? "yes" : "no");
    if (r->inference) {
        printf(" %10ld %12ld", res->max_batch[0], res->max_tokens);
    } else {
        for (int p = 0; p < REMAT_ACT_COUNT; p++) {
            if (res->max_batch[p] < 0)
                printf(" %9s", "n/a");
            else
                printf(" %9ld", res->max_batch[p]);
        }
    }
    char signed_hr[40];
    snprintf(signed_hr, sizeof signed_hr, "%s%s", res->fits ? "" : "-",
             human(res->fits ? card->bytes - total : total - card->bytes, hr));
    printf(" %10s\n", signed_hr);
}

static void fit_table_header(const remat_fit_request *r)
{
    if (r->inference) {
        printf("%-10s %4s %10s %-4s %10s %12s %10s\n", "card", "gpus", "per GPU", "fits",
               "max batch", "KV tokens", "headroom");
        return;
    }
    printf("%-10s %4s %10s %-4s %9s %9s %9s %9s %9s %10s\n", "card", "gpus", "per GPU", "fits",
           "store-all", "llmc", "megatron", "full", "optimal", "headroom");
}

static int fit_all_cards(fit_args *a)
{
    int counts[32], n_counts = fit_gpu_counts(&a->req, counts, 32), first = 1;
    if (a->json)
        printf("[");
    else {
        fit_print_header(&a->req);
        if (a->req.inference)
            printf("per GPU at batch %d; max batch of seq %d; KV tokens at batch 1\n", a->req.batch,
                   a->req.seq);
        else
            printf("per GPU at batch %d; max batch per policy (llmc/megatron = selective, full = "
                   "full recompute)\n",
                   a->req.batch);
        fit_table_header(&a->req);
    }
    for (size_t i = 0; i < remat_card_count(); i++) {
        const remat_card *card = remat_card_at(i);
        for (int k = 0; k < n_counts; k++) {
            remat_fit_request r = a->req;
            r.card_bytes = card->bytes;
            r.gpus = counts[k];
            remat_fit_result res;
            remat_status s = remat_fit(&r, &res);
            if (s != REMAT_OK) {
                if (a->json)
                    printf("]\n");
                return cli_fail("fit", s, card->name);
            }
            if (a->json) {
                printf("%s", first ? "" : ",\n ");
                fit_print_json(&r, card->name, &res);
            } else {
                fit_row_text(card, &r, &res);
            }
            first = 0;
        }
    }
    if (a->json)
        printf("]\n");
    return EXIT_OK;
}

int cmd_fit(int argc, char **argv)
{
    fit_args a;
    memset(&a, 0, sizeof a);
    if (fit_parse(&a, argc, argv) != 0)
        return EXIT_USAGE;
    if (a.list) {
        fit_print_list(a.json);
        return EXIT_OK;
    }
    if (a.req.seq == 0 && !a.req.model.params_only)
        a.req.seq = a.req.model.max_seq;
    if (a.all_cards)
        return fit_all_cards(&a);
    remat_fit_result res;
    remat_status s = remat_fit(&a.req, &res);
    if (s != REMAT_OK)
        return cli_fail("fit", s, NULL);
    remat_comm *comm = NULL;
    char spec[64];
    if (a.measure) {
        int code = fit_measure_ranks(&a.req, a.device ? a.device : "host", &comm, spec,
                                     sizeof spec);
        if (code != EXIT_OK) {
            remat_comm_destroy(comm);
            return code;
        }
    }
    if (a.json) {
        fit_print_json(&a.req, a.card_name, &res);
        printf("\n");
    } else {
        fit_print_text(a.card_name, &a.req, &res);
    }
    fflush(stdout);
    if (a.measure)
        return fit_measure(&a.req, &res, comm, spec, a.expandable, a.json);
    return EXIT_OK;
}

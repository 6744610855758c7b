/* cli/cmd_fit.c: `remat fit`: what a model needs per GPU on a card, for training or serving, and
 * the largest batch that fits per activation policy; `--card all` compares every preset. */
#include "cli/cli.h"

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
        "                 --card CARD|SIZE|all [--gpus N] [--batch B] [--seq T] [--json]\n"
        "                 [--dtype fp32|bf16|fp16] [--optimizer adamw|sgd|sgd-momentum]\n"
        "                 [--policy P] [--zero 0-3]\n"
        "                 [--inference [--quant fp32|bf16|fp16|fp8|int8|int4] [--kv-dtype D]]\n"
        "                 [--measure [--device SPEC] [--expandable]]\n"
        "       remat fit --list\n\n"
        "Prints the memory one GPU needs (weights, gradients, optimizer states, activations,\n"
        "KV cache, workspace, CUDA context and allocator reserve) and the largest batch that\n"
        "fits per activation policy: store-all, llmc-selective, megatron-selective,\n"
        "full-recompute, optimal. Training: --dtype fp32 is 4+4+8 bytes a parameter with\n"
        "AdamW; bf16/fp16 is mixed precision with fp32 master weights, 2+2+12. --zero shards\n"
        "states over --gpus data-parallel ranks. --inference: weights in --quant (default bf16,\n"
        "fp8 for deepseek-r1), KV cache of --batch x --seq tokens, tensor parallel over --gpus.\n"
        "--params N (7.5e9 allowed) plans model states only. CARD is a preset (--list), a size\n"
        "(24GB, 80GiB) or all (one row per preset). --policy picks the breakdown's policy.\n"
        "--measure (our GPT: tiny, small, gpt2-124m, gpt2-350m) trains 2 steps at each policy's\n"
        "largest batch on --device (default host) in a pool limited to the card less context\n"
        "and workspace (--expandable: with expandable segments), prints planned against\n"
        "measured pool peak, and tries one more sequence.\n"
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
    int quant_set, training_only_set, inference_only_set, gpus_set;
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
    default: return fit_arch(v, &m->arch);
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
    case OPT_OPTIMIZER:
        a->training_only_set = 1;
        return fit_status(remat_optimizer_parse(v, &r->optimizer));
    case OPT_POLICY:
        a->training_only_set = 1;
        return fit_status(remat_act_policy_parse(v, &r->policy));
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
    uint64_t bytes = 0;
    if (remat_parse_size(a->card_text, &bytes) != REMAT_OK || bytes == 0)
        return cli_usage_error("fit",
                               "unknown card '%s' (see 'remat fit --list', or give a size "
                               "such as 24GB)",
                               a->card_text),
               -1;
    snprintf(a->card_name, sizeof a->card_name, "%s", a->card_text);
    a->req.card_bytes = bytes;
    return 0;
}

static int fit_check_conflicts(const fit_args *a)
{
    if (a->req.inference && a->training_only_set)
        return cli_usage_error("fit", "--optimizer, --policy and --zero describe training; they "
                                      "conflict with --inference"),
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

static void fit_print_json(const remat_fit_request *r, const char *card,
                           const remat_fit_result *res)
{
    printf("{\"model\": ");
    cli_json_string(stdout, r->model.name);
    printf(", \"params\": %llu, \"active_params\": %llu, \"mode\": \"%s\", \"card\": {\"name\": ",
           (unsigned long long)res->params, (unsigned long long)res->active_params,
           r->inference ? "inference" : "training");
    cli_json_string(stdout, card);
    printf(", \"bytes\": %llu}, \"gpus\": %d, \"batch\": %d, \"seq\": %d, \"per_gpu_bytes\": {",
           (unsigned long long)r->card_bytes, r->gpus, r->batch, r->seq);
    for (int i = 0; i < 8; i++)
        printf("%s\"%s\": %llu", i ? ", " : "", part_names[i],
               (unsigned long long)part(&res->per_gpu, i));
    printf("}, \"max_batch\": {");
    if (r->inference && !r->model.params_only) {
        printf("\"inference\": %ld", res->max_batch[0]);
    } else if (!r->model.params_only) {
        for (int p = 0; p < REMAT_ACT_COUNT; p++) {
            printf("%s\"%s\": ", p ? ", " : "", remat_act_policy_name((remat_act_policy)p));
            if (res->max_batch[p] < 0)
                printf("null");
            else
                printf("%ld", res->max_batch[p]);
        }
    }
    printf("}, \"fits\": %s}", res->fits ? "true" : "false");
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
    printf("model      %s: %llu parameters", m->name, (unsigned long long)total);
    if (active != total)
        printf(", %llu active per token (MoE)", (unsigned long long)active);
    uint64_t mtp = remat_model_mtp_params(m);
    if (mtp)
        printf("; MTP module %llu more, not counted", (unsigned long long)mtp);
    printf("\n");
    if (r->inference)
        printf("mode       inference: %s weights, %s KV cache, tensor parallel over %d GPU%s, "
               "batch %d x seq %d\n",
               remat_dtype_name(r->quant), remat_dtype_name(r->kv_dtype), r->gpus,
               r->gpus > 1 ? "s" : "", r->batch, r->seq);
    else
        printf(
            "mode       training: %s%s %s, ZeRO-%d over %d GPU%s, batch %d x seq %d, policy %s\n",
            remat_dtype_name(r->dtype), r->dtype == REMAT_DTYPE_FP32 ? "" : " mixed precision",
            remat_optimizer_name(r->optimizer), r->zero, r->gpus, r->gpus > 1 ? "s" : "", r->batch,
            r->seq, remat_act_policy_name(r->policy));
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
    }
    uint64_t total = res->per_gpu.total;
    if (res->fits)
        printf("fits: yes, %s headroom\n", human(r->card_bytes - total, h));
    else
        printf("fits: no, %s short\n", human(total - r->card_bytes, h));
    fit_print_max_batch(r, res);
}

static void fit_print_list(void)
{
    char h[32];
    printf("models:\n");
    for (size_t i = 0; i < remat_model_count(); i++) {
        remat_model_desc m;
        uint64_t total = 0, active = 0;
        if (remat_model_lookup(remat_model_at(i)->name, &m) != REMAT_OK ||
            remat_model_params(&m, &total, &active) != REMAT_OK)
            continue; /* cannot happen: every preset is valid */
        printf("  %-22s %16llu params", m.name, (unsigned long long)total);
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
        fit_print_list();
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
    if (a.json) {
        fit_print_json(&a.req, a.card_name, &res);
        printf("\n");
    } else {
        fit_print_text(a.card_name, &a.req, &res);
    }
    fflush(stdout);
    if (a.measure)
        return fit_measure(&a.req, &res, a.device ? a.device : "host", a.expandable, a.json);
    return EXIT_OK;
}

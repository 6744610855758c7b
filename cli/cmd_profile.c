/* cli/cmd_profile.c: `remat profile`: measures the GPT-2 model's stages into a chain file. */
#include "cli/cli.h"
#include "core/core.h"
#include "model/gpt.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void cmd_profile_usage(FILE *f)
{
    fprintf(f,
            "usage: remat profile [--model M] [--batch B] [--seq T] [--device SPEC] -o CHAIN.json\n"
            "                     [--reps N] [--seed S] [--layers L --channels C --heads NH "
            "--vocab V]\n\n"
            "Runs 2 warm-up steps, then rounds of 7 forward+backward steps (no update) on one\n"
            "batch of the built-in corpus: 6 store-all steps with every block on one save variant\n"
            "(default, 2 options, default, 2 options) and one periodic:2 step; at least N rounds,\n"
            "more (up to 40) until 4 s have passed. It times every stage in wall time and writes\n"
            "a chain file for `remat plan`: per stage the forward time without grad (what a\n"
            "recomputation runs) and the backward time in ms (the 10th percentile of the samples,\n"
            "blocks pooled; a forward-with-grad's excess over the forward without grad goes into\n"
            "the backward; the step's time outside its stages goes to the embedding's backward),\n"
            "the bytes it keeps for its backward, its workspaces, and per block save option\n"
            "(recompute-gelu, recompute-gelu-ln, recompute-attn, recompute-attn-gelu-ln) the bytes\n"
            "kept and the backward time, from the ratio of that option's steps to the nearest\n"
            "default step (so a change of load cancels out), its recomputation included. N is\n"
            "--reps (default 5). --model, --seq and the architecture options are as in\n"
            "`remat train`; --batch defaults to 8, --device to auto.\n");
}

typedef struct {
    const char *model, *device, *out;
    long batch, reps, seed;
    gpt_overrides ov;
} profile_opts;

static int profile_parse(int argc, char **argv, profile_opts *o)
{
    enum { O_LAYERS = 256, O_CHANNELS, O_HEADS, O_VOCAB, O_SEQ, O_REPS, O_SEED };
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"device", required_argument, NULL, 'D'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"seq", required_argument, NULL, O_SEQ},
                                         {"output", required_argument, NULL, 'o'},
                                         {"reps", required_argument, NULL, O_REPS},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"layers", required_argument, NULL, O_LAYERS},
                                         {"channels", required_argument, NULL, O_CHANNELS},
                                         {"heads", required_argument, NULL, O_HEADS},
                                         {"vocab", required_argument, NULL, O_VOCAB},
                                         {NULL, 0, NULL, 0}};
    *o = (profile_opts){.device = "auto", .batch = 8, .reps = 5, .seed = 1337};
    long v;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'D': o->device = optarg; break;
        case 'o': o->out = optarg; break;
        case 'b':
            if (cli_parse_int("profile", "--batch", optarg, 1, 1 << 20, &o->batch))
                return -1;
            break;
        case O_REPS:
            if (cli_parse_int("profile", "--reps", optarg, 1, 64, &o->reps))
                return -1;
            break;
        case O_SEED:
            if (cli_parse_int("profile", "--seed", optarg, 0, 0x7fffffffL, &o->seed))
                return -1;
            break;
        case O_SEQ:
            if (cli_parse_int("profile", "--seq", optarg, 1, 1 << 20, &v))
                return -1;
            o->ov.seq = (int)v;
            break;
        case O_LAYERS:
            if (cli_parse_int("profile", "--layers", optarg, 1, 1024, &v))
                return -1;
            o->ov.layers = (int)v;
            break;
        case O_CHANNELS:
            if (cli_parse_int("profile", "--channels", optarg, 1, 65536, &v))
                return -1;
            o->ov.channels = (int)v;
            break;
        case O_HEADS:
            if (cli_parse_int("profile", "--heads", optarg, 1, 65536, &v))
                return -1;
            o->ov.heads = (int)v;
            break;
        case O_VOCAB:
            if (cli_parse_int("profile", "--vocab", optarg, 2, 1 << 24, &v))
                return -1;
            o->ov.vocab = (int)v;
            break;
        default:
            cli_bad_option("profile", argv);
            return -1;
        }
    }
    if (optind < argc) {
        cli_usage_error("profile", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!o->out) {
        cli_usage_error("profile", "-o CHAIN.json is required");
        return -1;
    }
    return 0;
}

typedef struct {
    remat_device *dev;
    remat_pool *pool;
    gpt_model *model;
    remat_chain *chain;
    float *params;
    int *inputs;
} profile_run;

static void profile_close(profile_run *r)
{
    remat_chain_free(r->chain);
    gpt_model_destroy(r->model);
    remat_pool_destroy(r->pool);
    remat_device_close(r->dev);
    free(r->params);
    free(r->inputs);
}

/* Opens everything and measures; returns the status of the first failure, with *what naming it. */
static remat_status profile_measure(profile_run *r, const profile_opts *o, const char **what)
{
    gpt_config cfg;
    int T;
    *what = "";
    REMAT_TRY(gpt_resolve(o->model, &o->ov, &cfg, &T, &r->params));
    *what = "cannot open the device";
    REMAT_TRY(remat_device_open(o->device, &r->dev));
    *what = "cannot create the pool";
    REMAT_TRY(remat_pool_create(r->dev, NULL, &r->pool));
    *what = "cannot create the model";
    REMAT_TRY(gpt_model_create(r->dev, r->pool, &cfg, (int)o->batch, T, &r->model));
    if (!r->params) {
        r->params = malloc(gpt_model_layout(r->model)->total * sizeof(float));
        if (!r->params)
            return remat_fail(REMAT_ENOMEM, "out of host memory");
        gpt_init_params(&cfg, (uint64_t)o->seed, r->params);
    }
    REMAT_TRY(gpt_model_set_params(r->model, r->params));
    size_t n = (size_t)o->batch * T;
    gpt_tokens corpus;
    *what = "cannot build the batch";
    REMAT_TRY(gpt_tokens_builtin(n, &corpus));
    r->inputs = corpus.tokens; /* bytes below 128: valid for any vocabulary of at least 128 */
    for (size_t i = 0; i < n; i++)
        r->inputs[i] %= cfg.vocab;
    *what = "profiling failed";
    return gpt_model_profile(r->model, r->inputs, (int)o->reps, &r->chain);
}

int cmd_profile(int argc, char **argv)
{
    profile_opts o;
    if (profile_parse(argc, argv, &o) != 0)
        return EXIT_USAGE;
    const cli_file files[] = {{"--model", o.model, 0}, {"-o", o.out, 1}};
    if (cli_check_files("profile", files, sizeof files / sizeof files[0]) != EXIT_OK)
        return EXIT_USAGE;
    profile_run r;
    memset(&r, 0, sizeof r);
    const char *what = "";
    remat_status s = profile_measure(&r, &o, &what);
    if (s == REMAT_OK) {
        what = "cannot write the chain";
        cli_output out;
        if ((s = cli_output_open(&out, o.out)) == REMAT_OK) {
            s = remat_chain_write(r.chain, out.f);
            remat_status fin = cli_output_close(&out, s == REMAT_OK);
            s = s != REMAT_OK ? s : fin;
        }
    }
    int rc = s == REMAT_OK ? EXIT_OK : cli_fail("profile", s, what);
    if (rc == EXIT_OK) {
        const remat_chain *c = r.chain;
        printf("%s: %d stages (embed, %d blocks, head); block: fwd %.3f ms, bwd %.3f ms", o.out,
               c->n_stages, c->n_stages - 2, c->stages[1].fwd, c->stages[1].bwd);
        for (int k = 0; k < c->stages[1].n_options; k++)
            printf(", %s bwd %.3f ms", c->stages[1].options[k].name, c->stages[1].options[k].bwd);
        printf("\n");
    }
    profile_close(&r);
    return rc;
}

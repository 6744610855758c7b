/* cli/cmd_profile.c: `remat profile`: measures the GPT-2 model's stages into a chain file. */
#include "cli/cli.h"
#include "core/core.h"
#include "model/rig.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void cmd_profile_usage(FILE *f)
{
    fprintf(f,
            "usage: remat profile [--model M] [--batch B] [--seq T] [--device SPEC] -o CHAIN.json\n"
            "                     [--reps N] [--seed S] [--dtype fp32|bf16] [--master-weights on|off]\n"
            "                     [--layers L --channels C --heads NH --vocab V]\n\n"
            "Measures the model stage by stage on one batch of the built-in corpus, as Rotor\n"
            "does: each stage's forward without grad, forward-with-grad and backward on its own,\n"
            "with only that call's buffers live, so the profile needs no more memory than any\n"
            "schedule keeping the default saves. A round times the embedding, one block under\n"
            "the default and every save option (recompute-gelu, recompute-gelu-ln,\n"
            "recompute-attn, recompute-attn-gelu-ln) back to back, and the head; a call under\n"
            "1 ms is repeated until its repetitions took 1 ms (at most 16). A call during which\n"
            "the process was preempted (an involuntary context switch) is disturbed. After one\n"
            "warm-up round it runs at least N rounds, and more until every time has 16\n"
            "undisturbed calls, or 64 rounds, or the time of 4 training steps (as its rounds ran\n"
            "them; at least 1 s) has passed. Each time is the first quartile of its undisturbed\n"
            "calls (of all, with fewer than 4: then a warning says the profile may not repeat;\n"
            "wall-clock ms, interference only adds time). Rounds, time and preempted calls are\n"
            "printed first.\n"
            "The chain file for `remat plan` holds per stage the forward time without grad (what\n"
            "a recomputation runs) and the backward time (a forward-with-grad's excess over the\n"
            "forward without grad goes into the backward; the step's work outside its stages into\n"
            "the embedding's backward), the bytes kept and workspaces, and per block option the\n"
            "bytes kept and the backward time. An option's backward is never below the default's\n"
            "plus the share of the forward it recomputes (by FLOPs); one measured more than 3%%\n"
            "below the default's is raised and warned about on stderr. N is --reps (default 5,\n"
            "at most 64). --model, --seq and the architecture options are as in `remat train`;\n"
            "--batch defaults to 4, --device to auto; --dtype bf16 [--master-weights off] profiles\n"
            "the bf16 training step (as `remat train --dtype`). The file also holds a \"key\" object\n"
            "(model, batch, seq, device, dtype): `remat train --profile-file` reuses it.\n");
}

typedef struct {
    const char *model, *device, *out;
    long batch, reps, seed;
    gpt_overrides ov;
    cli_precision prec;
} profile_opts;

static int profile_parse(int argc, char **argv, profile_opts *o)
{
    enum { O_REPS = 256, O_SEED };
    static const struct option opts[] = {CLI_OPT_MODEL,
                                         {"output", required_argument, NULL, 'o'},
                                         {"reps", required_argument, NULL, O_REPS},
                                         {"seed", required_argument, NULL, O_SEED},
                                         CLI_OPT_BATCH,
                                         CLI_OPT_SEQ,
                                         CLI_OPT_PRECISION,
                                         CLI_OPT_DIMS,
                                         {NULL, 0, NULL, 0}};
    *o = (profile_opts){
        .device = "auto", .batch = 4, .reps = 5, .seed = 1337, .prec = CLI_PRECISION_DEFAULT};
    opterr = 0;
    optind = 1;
    int c;
    const cli_model_opts shared = {
        .model = &o->model, .device = &o->device, .batch = &o->batch, .ov = &o->ov,
        .prec = &o->prec};
    while ((c = cli_next_option("profile", argc, argv, "o:", opts, &shared)) >= 0) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case O_REPS:
            if (cli_parse_int("profile", "--reps", optarg, 1, 64, &o->reps))
                return -1;
            break;
        case O_SEED:
            if (cli_parse_int("profile", "--seed", optarg, 0, 0x7fffffffL, &o->seed))
                return -1;
            break;
        default:
            cli_bad_option("profile", argv);
            return -1;
        }
    }
    if (c == -2) /* a bad value of a shared option, reported */
        return -1;
    if (optind < argc) {
        cli_usage_error("profile", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!o->out) {
        cli_usage_error("profile", "-o CHAIN.json is required");
        return -1;
    }
    return cli_check_precision("profile", &o->prec);
}

typedef struct {
    gpt_rig rig;
    gpt_profile_key key;
} profile_run;

/* Opens everything and measures; returns the status of the first failure, with *what naming it. */
static remat_status profile_measure(profile_run *r, const profile_opts *o, const char **what)
{
    gpt_rig_spec spec = {.device = o->device, .B = (int)o->batch, .seed = (uint64_t)o->seed};
    float *params = NULL;
    *what = "";
    REMAT_TRY(gpt_resolve(o->model, &o->ov, &spec.cfg, &spec.T, &params));
    gpt_precision prec;
    cli_model_precision(&o->prec, (uint64_t)o->seed, &prec);
    spec.prec = &prec;
    spec.params = params;
    remat_status s = gpt_rig_open(&r->rig, &spec);
    free(params);
    if (s != REMAT_OK) {
        *what = r->rig.failed ? r->rig.failed : "";
        return s;
    }
    gpt_tokens corpus;
    *what = "cannot build the batch";
    REMAT_TRY(gpt_tokens_builtin(r->rig.tokens, &corpus));
    /* bytes below 128: valid for any vocabulary of at least 128 */
    for (size_t i = 0; i < r->rig.tokens; i++)
        r->rig.inputs[i] = corpus.tokens[i] % spec.cfg.vocab;
    gpt_tokens_free(&corpus);
    *what = "cannot describe the device";
    return gpt_profile_key_of(r->rig.model, &r->key);
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
    remat_chain *chain = NULL;
    const char *what = "";
    remat_status s = profile_measure(&r, &o, &what);
    int rc = s == REMAT_OK ? EXIT_OK : cli_fail("profile", s, what);
    if (rc == EXIT_OK)
        rc = train_profile("profile", r.rig.model, r.rig.inputs, (int)o.reps, NULL, stdout,
                           &chain);
    if (rc == EXIT_OK) {
        cli_output out;
        if ((s = cli_output_open(&out, o.out)) == REMAT_OK) {
            s = gpt_profile_write(out.f, chain, &r.key);
            remat_status fin = cli_output_close(&out, s == REMAT_OK);
            s = s != REMAT_OK ? s : fin;
        }
        if (s != REMAT_OK)
            rc = cli_fail("profile", s, "cannot write the chain");
    }
    if (rc == EXIT_OK) {
        const remat_chain *c = chain;
        printf("%s: %d stages (embed, %d blocks, head); block: fwd %.3f ms, bwd %.3f ms", o.out,
               c->n_stages, c->n_stages - 2, c->stages[1].fwd, c->stages[1].bwd);
        for (int k = 0; k < c->stages[1].n_options; k++)
            printf(", %s bwd %.3f ms", c->stages[1].options[k].name, c->stages[1].options[k].bwd);
        printf("\n");
    }
    remat_chain_free(chain);
    gpt_rig_close(&r.rig);
    return rc;
}

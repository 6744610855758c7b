/* cli/cmd_train.c: `remat train`: trains GPT-2 through the pool under a checkpoint plan. */
#include "cli/cli.h"
#include "core/core.h"
#include "model/rig.h"

#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void cmd_train_usage(FILE *f)
{
    fprintf(
        f,
        "usage: remat train [--model M] [--data FILE] [--device SPEC] [--batch B] [--seq T]\n"
        "                   [--steps N] [--policy P] [--budget SIZE|PCT] [--seed S] [--save FILE]\n"
        "                   [--json] [--lr X] [--shuffle] [--analytic] [--baseline]\n"
        "                   [--trace FILE] [--profile-memory] [--profile-file FILE]\n"
        "                   [--layout planned|pool] [--dtype fp32|bf16] [--master-weights on|off]\n"
        "                   [--zero 0-3] [--accum M] [--layers L --channels C --heads NH --vocab V]\n"
        "       mpirun -np N remat train ... [--zero 0-3]\n\n"
        "Trains llm.c's GPT-2 with every parameter, gradient, optimizer state and activation in\n"
        "remat's pool, the activations following a checkpoint plan.\n"
        "  --model M       preset tiny, small (default), gpt2-124m, gpt2-350m,\n"
        "                  or an llm.c weights file\n"
        "  --data FILE     llm.c token file, or a text file (no NUL bytes, at most 1 GiB)\n"
        "                  read as bytes (vocab 256); default: the built-in corpus\n"
        "  --device SPEC   auto (default), host, cuda:N\n"
        "  --batch B       sequences per step and rank (default 4, as in `remat curve`,\n"
        "                  `remat profile`); an update sees ranks x accum x B sequences\n"
        "  --seq T         tokens per sequence (default: the model's maxT)\n"
        "  --steps N       optimizer steps (default 50)\n"
        "  --policy P      store-all (default), sqrt, periodic:K, revolve, optimal,\n"
        "                  full-recompute, or a selective policy: store-all with every block\n"
        "                  saving less: selective:OPTION (recompute-gelu, recompute-gelu-ln,\n"
        "                  recompute-attn, recompute-attn-gelu-ln), llmc-selective (=\n"
        "                  selective:recompute-gelu, llm.c's -r 1; its -r 2 is\n"
        "                  selective:recompute-gelu-ln), megatron-selective (=\n"
        "                  selective:recompute-attn)\n"
        "  --budget X      activation budget: bytes (512MiB) or a percentage of store-all (50%%);\n"
        "                  default 100%% for every policy (fixed policies need no more); the\n"
        "                  run's header prints the budget used\n"
        "  --seed S        init seed (default 1337); --shuffle also draws the batch order from it\n"
        "  --lr X          AdamW learning rate (default 3e-4; betas 0.9/0.95, eps 1e-8, wd 0)\n"
        "  --save FILE     write the trained weights (llm.c format) at the end\n"
        "  --analytic      plan on FLOP counts instead of profiling the stages first (store-all\n"
        "                  never profiles: it plans nothing)\n"
        "  --profile-file F  reuse the stage profile in F when it was measured for the same\n"
        "                  model, batch, seq, device and dtype; else profile and write it to F\n"
        "                  (replacing one of another key or shape); a file that is no profile is\n"
        "                  refused. F is a chain file `remat plan` reads.\n"
        "  --baseline      also run each step's forward and backward under store-all, interleaved\n"
        "                  (alternating which goes first), to measure the policy's overhead and\n"
        "                  store-all's activation peak in the same run; the losses must agree\n"
        "                  bit for bit (the gradients are identical, so training is unchanged).\n"
        "                  The overhead is curve's: the median over the steps after the first\n"
        "                  of each step's ratio, with its standard error (measured_overhead_se)\n"
        "  --trace FILE    record the pool's allocation trace of the whole run (tags: params,\n"
        "                  grads, optim, units, workspace, act) to FILE, for `remat memviz` and\n"
        "                  `remat replay` (the profile runs in a pool of its own: not in it);\n"
        "                  a step mark starts each step, for `remat replay --planned`\n"
        "  --profile-memory after the run, a table per stage, pass and tag: calls, time, bytes\n"
        "                  handed out, and the most bytes live under each tag while it ran\n"
        "                  (with --json: one {\"memory_profile\": ...} object after the summary)\n"
        "  --layout L      planned (default): each step's activations in one arena at offsets\n"
        "                  planned before the step, so the predicted peak (the arena) is what\n"
        "                  the pool holds; pool: each buffer from the caching pool as it comes\n"
        "  --dtype D       fp32 (default) or bf16: mixed precision, with bf16 parameters,\n"
        "                  gradients and activations, fp32 arithmetic, LayerNorm statistics,\n"
        "                  loss, AdamW moments and master weights (16 bytes a parameter)\n"
        "  --master-weights on|off  bf16 only: off keeps no fp32 master copy and rounds each\n"
        "                  update stochastically from --seed (12 bytes a parameter); default on.\n"
        "                  --save writes fp32 weights either way (the master copy when on)\n"
        "  --accum M       gradient accumulation: M micro-steps of B sequences per update\n"
        "                  (default 1); the loss printed is the mean over all of them\n"
        "  --zero K        under mpirun: 0 (default) all-reduces the gradients, every rank\n"
        "                  keeping all states; 1 (ZeRO-1) shards the AdamW moments (and bf16's\n"
        "                  master weights) over the ranks: gradients reduce-scattered,\n"
        "                  parameters all-gathered; 2 (ZeRO-2) keeps only the rank's shard of\n"
        "                  the gradients too, reduce-scattering each block's as its backward\n"
        "                  ends; 3 (ZeRO-3, FSDP) shards the parameters as well, gathering a\n"
        "                  block's before each forward (recomputations included) and backward.\n"
        "                  Rank r of N reads rows (r*M + j)*B.. of the one-process batch of\n"
        "                  N*M*B rows at micro-step j; only rank 0 prints.\n"
        "  --json          one JSON object a line: {\"step\", \"loss\", \"ms\", \"peak_bytes\"},\n"
        "                  then a summary object (with the process's peak RSS, peak_rss_bytes)\n"
        "Before allocating, the run's memory (parameters, gradients, AdamW states, the plan's\n"
        "activations) is checked against the device's free memory (on the host MemAvailable):\n"
        "a run that cannot fit exits 1 naming both. A non-finite loss stops the run: at step 1\n"
        "(the weights or data as given) exit 2, later (diverged) exit 1.\n"
        "On a machine shared with other work, OMP_WAIT_POLICY=passive keeps the CPU kernels' idle\n"
        "OpenMP workers from spinning (measured: several times faster steps under load).\n"
        "Exit codes: 0 ok, 1 runtime failure (out of memory, infeasible budget), 2 bad usage or "
        "input.\n");
}

/* ==== Options ============================================================================== */

typedef struct {
    const char *model, *data, *device, *policy, *budget, *save;
    long batch, steps, seed;
    double lr;
    int json, shuffle, analytic, baseline, batch_given;
    gpt_overrides ov;
    const char *trace, *profile_file;
    int profile_memory;
    remat_layout_mode layout;
    cli_precision prec;
    long zero, accum;
    int zero_given;
} train_opts;

static int train_parse(int argc, char **argv, train_opts *o)
{
    enum {
        O_LR = 256,
        O_SHUFFLE,
        O_ANALYTIC,
        O_BASELINE,
        O_TRACE,
        O_PROFILE_MEMORY,
        O_PROFILE_FILE,
        O_ZERO,
        O_ACCUM
    };
    static const struct option opts[] = {CLI_OPT_MODEL,
                                         {"data", required_argument, NULL, 'd'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"steps", required_argument, NULL, 'n'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"budget", required_argument, NULL, 'B'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"save", required_argument, NULL, 'o'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"lr", required_argument, NULL, O_LR},
                                         {"shuffle", no_argument, NULL, O_SHUFFLE},
                                         {"analytic", no_argument, NULL, O_ANALYTIC},
                                         {"baseline", no_argument, NULL, O_BASELINE},
                                         {"trace", required_argument, NULL, O_TRACE},
                                         {"profile-memory", no_argument, NULL, O_PROFILE_MEMORY},
                                         {"profile-file", required_argument, NULL, O_PROFILE_FILE},
                                         {"zero", required_argument, NULL, O_ZERO},
                                         {"accum", required_argument, NULL, O_ACCUM},
                                         CLI_OPT_SEQ,
                                         CLI_OPT_DIMS,
                                         CLI_OPT_PRECISION,
                                         CLI_OPT_LAYOUT,
                                         {NULL, 0, NULL, 0}};
    *o = (train_opts){.device = "auto",
                      .policy = "store-all",
                      .batch = 4,
                      .steps = 50,
                      .seed = 1337,
                      .lr = 3e-4,
                      .prec = CLI_PRECISION_DEFAULT,
                      .accum = 1};
    opterr = 0;
    optind = 1;
    int c;
    const cli_model_opts shared = {
        .model = &o->model, .device = &o->device, .ov = &o->ov, .prec = &o->prec,
        .layout = &o->layout};
    while ((c = cli_next_option("train", argc, argv, "", opts, &shared)) >= 0) {
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'p': o->policy = optarg; break;
        case 'B': o->budget = optarg; break;
        case 'o': o->save = optarg; break;
        case 'j': o->json = 1; break;
        case O_SHUFFLE: o->shuffle = 1; break;
        case O_ANALYTIC: o->analytic = 1; break;
        case O_BASELINE: o->baseline = 1; break;
        case O_TRACE: o->trace = optarg; break;
        case O_PROFILE_MEMORY: o->profile_memory = 1; break;
        case O_PROFILE_FILE: o->profile_file = optarg; break;
        case O_ZERO:
            if (cli_parse_int("train", "--zero", optarg, 0, 3, &o->zero))
                return -1;
            o->zero_given = 1;
            break;
        case O_ACCUM:
            if (cli_parse_int("train", "--accum", optarg, 1, 1 << 16, &o->accum))
                return -1;
            break;
        case 'b':
            if (cli_parse_int("train", "--batch", optarg, 1, 1 << 20, &o->batch))
                return -1;
            o->batch_given = 1;
            break;
        case 'n':
            if (cli_parse_int("train", "--steps", optarg, 1, 100000000, &o->steps))
                return -1;
            break;
        case 's':
            if (cli_parse_int("train", "--seed", optarg, 0, 0x7fffffffL, &o->seed))
                return -1;
            break;
        case O_LR:
            if (cli_parse_double("train", "--lr", optarg, 0, 10, &o->lr))
                return -1;
            break;
        default: cli_bad_option("train", argv); return -1;
        }
    }
    if (c == -2) /* a bad value of a shared option, reported */
        return -1;
    if (optind < argc) {
        cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (o->zero_given && !remat_built_with_mpi()) {
        cli_usage_error("train", "--zero needs MPI, and this build has none (built with "
                                 "REMAT_MPI=0: install libopenmpi-dev and rebuild)");
        return -1;
    }
    if (o->baseline && o->accum > 1) {
        cli_usage_error("train", "--baseline compares single forward-backward passes: it takes no "
                                 "--accum");
        return -1;
    }
    return cli_check_precision("train", &o->prec);
}

/* The model's precision from the options: master weights unless --master-weights off, the
 * stochastic rounding seeded from --seed. */
static gpt_precision train_precision(const train_opts *o)
{
    gpt_precision p;
    cli_model_precision(&o->prec, (uint64_t)o->seed, &p);
    return p;
}

/* ==== The run ============================================================================== */

typedef struct {
    train_opts o;
    gpt_config cfg;
    int T;
    float *host_params;
    gpt_tokens data;
    gpt_loader loader;
    int *inputs, *targets; /* the update's rows over every rank (the rig's hold one batch) */
    gpt_rig rig;           /* device, pool, model and chain */
    remat_schedule *sched;
    remat_schedule *base_sched; /* store-all, with --baseline */
    uint64_t store_all_peak;
    remat_policy pol;     /* --policy, as remat_policy_parse reads it */
    uint64_t budget;      /* activation budget in bytes */
    FILE *trace;          /* --trace: the temporary file being written (the rig records into it) */
    gpt_memprof *memprof; /* --profile-memory */
    remat_comm *comm;     /* the ranks (one without mpirun) */
    int rank, ranks;
    size_t rows;          /* sequences of one update over every rank: ranks x accum x batch */
    uint64_t comm_bytes;  /* bytes this rank sent in the training steps */
    double comm_ms;       /* time in the collectives of the training steps */
    uint64_t gathers;     /* ZeRO-3: parameter gathers of the last step */
    double gather_ms[2];  /* ZeRO-3: an all-gather of the embeddings and of a block, in the chain */
} train_run;


static gpt_parallel train_parallel(const train_run *r)
{
    return (gpt_parallel){.comm = r->comm, .zero = (int)r->o.zero, .accum = (int)r->o.accum};
}

static void train_close(train_run *r)
{
    remat_schedule_free(r->sched);
    remat_schedule_free(r->base_sched);
    gpt_rig_close(&r->rig);
    gpt_loader_free(&r->loader);
    gpt_tokens_free(&r->data);
    free(r->inputs);
    free(r->targets);
    free(r->host_params);
    remat_comm_destroy(r->comm);
}

/* Loads the data and checks it fits the model's vocabulary. Returns an exit code. */
static int train_load_data(train_run *r)
{
    size_t need = r->rows * r->T + 1;
    remat_status s = r->o.data
                         ? gpt_tokens_load(r->o.data, &r->data)
                         : gpt_tokens_builtin(need > (1u << 20) ? need : (1u << 20), &r->data);
    if (s != REMAT_OK)
        return cli_fail("train", s, "cannot load the data");
    if (r->data.max_token >= r->cfg.vocab)
        return cli_usage_error("train", "%s holds token %d, outside the model's vocabulary of %d",
                               r->o.data ? r->o.data : "the corpus", r->data.max_token,
                               r->cfg.vocab);
    if (r->rows > (size_t)INT32_MAX / (size_t)r->T)
        return cli_usage_error("train", "%d ranks x --accum %ld x --batch %ld x --seq %d tokens "
                                        "in one update: too many", r->ranks, r->o.accum,
                               r->o.batch, r->T);
    /* every rank reads the whole update's rows and takes its own (train_forward_backward) */
    s = gpt_loader_init(&r->loader, &r->data, (int)r->rows, r->T, r->o.shuffle,
                        (uint64_t)r->o.seed);
    if (s != REMAT_OK)
        return cli_fail("train", s, r->o.data ? r->o.data : "the corpus");
    r->inputs = malloc(need * sizeof(int));
    r->targets = malloc(need * sizeof(int));
    if (!r->inputs || !r->targets)
        return cli_fail("train", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    return EXIT_OK;
}

/* The first non-finite value of n floats, or -1. */
static long train_first_non_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return (long)i;
    return -1;
}

/* Weights from a file must be finite: a NaN or inf gives a NaN loss from the first step. */
static int train_check_weights(const train_run *r)
{
    if (!r->host_params)
        return EXIT_OK;
    gpt_param_layout lay;
    gpt_layout_params(&r->cfg, &lay);
    long i = train_first_non_finite(r->host_params, lay.total);
    if (i < 0)
        return EXIT_OK;
    int t = GPT_N_PARAMS - 1;
    while (t > 0 && lay.offset[t] > (size_t)i)
        t--;
    return cli_usage_error("train", "%s: parameter %s[%zu] is %g: the weights are unusable",
                           r->o.model, gpt_param_names[t], (size_t)i - lay.offset[t],
                           (double)r->host_params[i]);
}

/* Parses --policy (remat_policy_parse: the one vocabulary) and resolves --budget against the
 * store-all peak of r->rig.chain into r->pol, r->budget. A selective option the chain lacks is a
 * usage error listing the valid ones. Returns an exit code. */
static int train_resolve_policy(train_run *r)
{
    remat_status s = remat_policy_parse(r->o.policy, &r->pol);
    if (s != REMAT_OK)
        return cli_fail("train", s, "--policy");
    uint64_t least = 0;
    if (r->pol.kind == REMAT_POLICY_SELECTIVE &&
        remat_min_budget_layout(r->rig.chain, &r->pol, REMAT_LAYOUT_POOL, &least) == REMAT_EINVAL)
        return cli_usage_error("train", "--policy %s: %s", r->o.policy, remat_last_error());
    uint64_t bytes = 0;
    double pct = 100; /* the one default, for every policy */
    int is_pct = 1;
    if (r->o.budget && remat_parse_budget(r->o.budget, &bytes, &pct, &is_pct) != REMAT_OK)
        return cli_usage_error("train", "--budget: %s", remat_last_error());
    if ((s = remat_store_all_peak(r->rig.chain, &r->store_all_peak)) != REMAT_OK)
        return cli_fail("train", s, "store-all peak");
    r->budget = is_pct ? remat_budget_of_percent(pct, r->store_all_peak) : bytes;
    return EXIT_OK;
}

static remat_status train_make_plan(const train_run *r, remat_schedule **out)
{
    return remat_plan_layout(r->rig.chain, &r->pol, r->o.layout, r->budget, out);
}

/* MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read. */
static uint64_t train_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kib * 1024;
}

/* Before anything large is allocated: the model's size (from its dimensions, without
 * allocating), its chain and the plan's activation peak on it against the device's free memory
 * (MemAvailable on the host). Leaves the analytic chain in r->rig.chain. Returns an exit code: 1
 * when the run cannot fit. */
static int train_check_memory(train_run *r)
{
    uint64_t persistent = 0;
    gpt_precision prec = train_precision(&r->o);
    gpt_parallel par = train_parallel(r);
    remat_status s = gpt_model_estimate_parallel(r->rig.dev, &r->cfg, (int)r->o.batch, r->T, &prec,
                                                 &par, &persistent, &r->rig.chain);
    if (s != REMAT_OK)
        return cli_fail("train", s, "the run does not fit in memory");
    int rc = train_resolve_policy(r);
    if (rc != EXIT_OK)
        return rc;
    remat_schedule *plan = NULL;
    if ((s = train_make_plan(r, &plan)) != REMAT_OK)
        return cli_fail("train", s, "cannot plan");
    /* optimal re-plans on measured times: any schedule within the budget */
    uint64_t act =
        r->pol.kind == REMAT_POLICY_OPTIMAL && r->budget > plan->peak_bytes
            ? (r->budget < r->store_all_peak ? r->budget : r->store_all_peak)
            : plan->peak_bytes;
    remat_schedule_free(plan);
    remat_device_info info;
    if ((s = remat_device_info_get(r->rig.dev, &info)) != REMAT_OK)
        return cli_fail("train", s, "cannot query the device");
    uint64_t avail = info.kind == REMAT_DEVICE_HOST ? train_mem_available() : info.free_bytes;
    if (info.kind == REMAT_DEVICE_HOST && avail == 0)
        avail = info.free_bytes;
    uint64_t need = persistent + act;
    if (need <= avail)
        return EXIT_OK;
    char nb[32], pb[32], ab[32], fb[32], name[48];
    return cli_fail(
        "train",
        remat_fail(REMAT_ENOMEM,
                   "batch %ld x %d does not fit in memory: it needs %s (parameters, gradients "
                   "and AdamW states %s, activations %s under %s) but %s has %s %s; lower "
                   "--batch or --seq, or recompute (--policy optimal --budget 50%%)",
                   r->o.batch, r->T, remat_format_bytes(need, nb, sizeof nb),
                   remat_format_bytes(persistent, pb, sizeof pb),
                   remat_format_bytes(act, ab, sizeof ab),
                   r->pol.kind == REMAT_POLICY_SELECTIVE ? r->o.policy
                                                        : remat_policy_name(&r->pol, name, sizeof name),
                   info.spec, info.kind == REMAT_DEVICE_HOST ? "MemAvailable" : "free",
                   remat_format_bytes(avail, fb, sizeof fb)),
        "");
}

/* What the rig opens for this run: the device (cuda:LOCAL_RANK for "cuda" under mpirun), the
 * model, its weights (a weights file's, else GPT-2's init from --seed) and the ranks. */
static gpt_rig_spec train_rig_spec(const train_run *r, const char *device,
                                   const gpt_precision *prec, const gpt_parallel *par)
{
    return (gpt_rig_spec){.device = device, .trace = r->trace, .cfg = r->cfg,
                          .B = (int)r->o.batch, .T = r->T, .prec = prec, .par = par,
                          .params = r->host_params, .seed = (uint64_t)r->o.seed,
                          /* --zero alone on one GPU runs the NCCL path too, with one rank */
                          .comm_alone = r->o.zero_given};
}

/* Opens the device and checks the run fits before allocating anything large. */
static int train_open_device(train_run *r)
{
    char spec[32];
    const char *dev = r->o.device;
    int gpus = 0;
    const char *why = NULL;
    /* "cuda" (and "auto" where a GPU is) under mpirun: one GPU per rank, by local rank */
    if (strcmp(dev, "cuda") == 0 ||
        (r->ranks > 1 && strcmp(dev, "auto") == 0 &&
         remat_cuda_device_count(&gpus, &why) == REMAT_OK && gpus > 0)) {
        snprintf(spec, sizeof spec, "cuda:%d", remat_comm_local_rank(r->comm));
        dev = spec;
    }
    gpt_precision prec = train_precision(&r->o);
    gpt_parallel par = train_parallel(r);
    gpt_rig_spec rs = train_rig_spec(r, dev, &prec, &par);
    remat_status s = gpt_rig_open_device(&r->rig, &rs);
    if (s != REMAT_OK)
        return cli_fail("train", s, r->rig.failed ? r->rig.failed : "");
    return train_check_memory(r);
}

/* Opens the pool and the model, and sets the initial weights: GPT-2 init straight into the
 * model's parameters where they are host memory, so no host copy of them is ever made; a
 * weights file's host copy is freed once the model holds it. */
static int train_open_model(train_run *r)
{
    if (r->o.trace && train_trace_open(r->o.trace, &r->trace) != EXIT_OK)
        return EXIT_USAGE;
    gpt_precision prec = train_precision(&r->o);
    gpt_parallel par = train_parallel(r);
    gpt_rig_spec rs = train_rig_spec(r, NULL, &prec, &par);
    remat_status s = gpt_rig_open_model(&r->rig, &rs);
    if (s != REMAT_OK)
        return cli_fail("train", s, r->rig.failed ? r->rig.failed : "");
    free(r->host_params);
    r->host_params = NULL;
    return EXIT_OK;
}

/* Rank 0's chain (r->rig.chain there; NULL on the others) to every rank, as chain JSON: every rank,
 * rank 0 too, then holds the chain parsed from the same text, so all plan the same schedule. */
static remat_status train_share_chain(train_run *r)
{
    char *text = NULL;
    size_t len = 0;
    remat_status s = REMAT_OK;
    if (r->rank == 0) {
        FILE *f = open_memstream(&text, &len);
        if (!f)
            return remat_fail(REMAT_ENOMEM, "cannot write the chain to memory");
        s = remat_chain_write(r->rig.chain, f);
        if (fclose(f) != 0 && s == REMAT_OK)
            s = remat_fail(REMAT_ENOMEM, "cannot write the chain to memory");
    }
    /* the length goes first; 0 tells the other ranks that rank 0 failed */
    uint64_t n = s == REMAT_OK ? len : 0;
    remat_status b = remat_comm_broadcast(r->comm, &n, sizeof n, REMAT_COMM_BYTE, 0);
    if (b == REMAT_OK && n == 0 && r->rank != 0)
        b = remat_fail(REMAT_EINTERNAL, "rank 0 could not send its profile");
    if (b == REMAT_OK && r->rank != 0 && !(text = malloc(n)))
        b = remat_fail(REMAT_ENOMEM, "cannot hold rank 0's profile (%llu bytes)",
                       (unsigned long long)n);
    if (b == REMAT_OK && s == REMAT_OK)
        b = remat_comm_broadcast(r->comm, text, n, REMAT_COMM_BYTE, 0);
    remat_chain_free(r->rig.chain);
    r->rig.chain = NULL;
    if (b == REMAT_OK && s == REMAT_OK)
        b = remat_chain_parse(text, n, &r->rig.chain);
    free(text);
    return s != REMAT_OK ? s : b;
}

/* ZeRO-3 over ranks: the gathers timed on every rank and added to the measured chain (rank 0
 * profiled alone, without them), so that a recomputation's extra gather is weighed too. */
static int train_add_gathers(train_run *r)
{
    double embed_ms, block_ms;
    remat_status s = gpt_model_time_gathers(r->rig.model, &embed_ms, &block_ms);
    r->gather_ms[0] = embed_ms;
    r->gather_ms[1] = block_ms;
    if (s != REMAT_OK)
        return cli_fail("train", s, "cannot time ZeRO-3's gathers");
    if (embed_ms == 0 && block_ms == 0)
        return EXIT_OK;
    if ((s = gpt_chain_add_gathers(r->rig.chain, r->cfg.layers, embed_ms, block_ms)) != REMAT_OK)
        return cli_fail("train", s, "");
    if (!r->o.json && r->rank == 0)
        printf("zero-3: an all-gather takes %.3f ms for the embeddings, %.3f ms for a block: "
               "added to each forward of the chain and to each block's backward\n",
               embed_ms, block_ms);
    return EXIT_OK;
}

/* Profiles the chain (not for store-all, which plans nothing; not with --analytic) and plans it
 * under the budget. */
static int train_plan(train_run *r)
{
    remat_status s;
    if (!r->o.analytic && r->pol.kind != REMAT_POLICY_STORE_ALL) {
        remat_chain *measured = NULL;
        if (r->rank == 0) { /* the other ranks plan on rank 0's profile: one schedule for all */
            gpt_loader probe = r->loader;
            probe.order = NULL;
            probe.next = 0;
            gpt_loader_next(&probe, r->inputs, r->targets);
            int rc = train_profile("train", r->rig.model, r->inputs, 3, r->o.profile_file,
                                   r->o.json ? NULL : stdout, &measured);
            if (rc != EXIT_OK)
                return rc;
        }
        remat_chain_free(r->rig.chain);
        r->rig.chain = measured;
        if (r->ranks > 1 && (s = train_share_chain(r)) != REMAT_OK)
            return cli_fail("train", s, "cannot share rank 0's profile");
        int rc = train_add_gathers(r);
        if (rc != EXIT_OK)
            return rc;
    }
    if ((s = train_make_plan(r, &r->sched)) != REMAT_OK)
        return cli_fail("train", s, "cannot plan");
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    if (r->o.baseline && (s = remat_plan_layout(r->rig.chain, &all, r->o.layout, r->store_all_peak,
                                                &r->base_sched)) != REMAT_OK)
        return cli_fail("train", s, "cannot plan the store-all baseline");
    return EXIT_OK;
}

/* The policy's name as the user gave it for selective policies, else canonical. */
static const char *train_policy_name(const train_run *r, char *buf, size_t n)
{
    if (r->pol.kind == REMAT_POLICY_SELECTIVE) {
        snprintf(buf, n, "%s", r->o.policy);
        return buf;
    }
    return remat_policy_name(&r->sched->policy, buf, n);
}

static void train_print_plan(const train_run *r)
{
    char pb[32], bb[32], sb[32], name[48];
    train_policy_name(r, name, sizeof name);
    remat_format_bytes(r->sched->peak_bytes, pb, sizeof pb);
    remat_format_bytes(r->sched->budget_bytes, bb, sizeof bb);
    remat_format_bytes(r->store_all_peak, sb, sizeof sb);
    printf("model: L %d, C %d, NH %d, V %d (padded %d), batch %ld x %d%s; %zu parameters%s\n",
           r->cfg.layers, r->cfg.channels, r->cfg.heads, r->cfg.vocab, r->cfg.padded_vocab,
           r->o.batch, r->T, r->o.batch_given ? "" : " (default batch)",
           gpt_model_layout(r->rig.model)->total,
           !r->o.prec.bf16                 ? ""
           : r->o.prec.master_weights == 0 ? "; bf16, no master weights (stochastic rounding)"
                                      : "; bf16 with fp32 master weights");
    printf("plan: %s, budget %s (%.0f%% of store-all's %s%s): activation peak %s, predicted "
           "overhead %.1f%%\n",
           name, bb, 100.0 * (double)r->sched->budget_bytes / (double)r->store_all_peak, sb,
           r->o.budget ? "" : "; the default", pb, 100 * r->sched->overhead);
}

typedef struct {
    double *ms;      /* per step: forward, backward and update; allocated before the loop */
    double *fb_ms;   /* per step: forward and backward under the plan */
    double *base_ms; /* per step: forward and backward under store-all (--baseline) */
    double ms_total, ms_min, ms_median;
    uint64_t peak_max, act_peak_max, base_act_peak_max;
    float first_loss, last_loss;
} train_totals;

static void train_report_step(const train_run *r, long step, float loss, double ms, uint64_t peak,
                              int tty)
{
    if (r->o.json) {
        printf("{\"step\": %ld, \"loss\": %.6f, \"ms\": %.3f, \"peak_bytes\": %llu}\n", step, loss,
               ms, (unsigned long long)peak);
        fflush(stdout);
        return;
    }
    char pb[32];
    remat_format_bytes(peak, pb, sizeof pb);
    if (!tty) {
        printf("step %5ld/%ld  loss %.4f  %8.1f ms  peak %s\n", step, r->o.steps, loss, ms, pb);
        return;
    }
    int width = 24, done = (int)(width * step / r->o.steps);
    cli_progress(stdout, "\rstep %ld/%ld [%.*s%*s] loss %.4f  %.1f ms  peak %s   ", step,
                 r->o.steps, done, "========================", width - done, "", loss, ms, pb);
    if (step == r->o.steps)
        printf("\n");
    fflush(stdout);
}

/* The forward and backward passes of this rank's rows of the update under sched (its --accum
 * micro-steps, gradients summed): their time, the pool's peaks and this rank's mean loss. Rank r's
 * micro-step j takes rows (r * accum + j) * batch.. of the update's rows. */
static remat_status train_forward_backward(train_run *r, const remat_schedule *sched, float *loss,
                                           double *ms, uint64_t *act_peak, uint64_t *pool_peak)
{
    remat_pool_stats before, after;
    REMAT_TRY(remat_pool_reset_peaks(r->rig.pool));
    REMAT_TRY(remat_pool_stats_get(r->rig.pool, &before));
    remat_stat act_before = {0, 0}, act_after = {0, 0};
    if (remat_pool_tag_stats(r->rig.pool, "act", &act_before) != REMAT_OK) /* none allocated yet */
        act_before = (remat_stat){0, 0};
    double t0 = gpt_now_ms(), sum = 0;
    REMAT_TRY(gpt_model_zero_grads(r->rig.model));
    size_t tokens = (size_t)r->o.batch * r->T;
    for (long j = 0; j < r->o.accum; j++) {
        size_t at = ((size_t)r->rank * r->o.accum + j) * tokens;
        float l = 0;
        REMAT_TRY(gpt_model_accumulate(r->rig.model, sched, r->rig.chain, r->inputs + at, r->targets + at,
                                       &l));
        sum += l;
    }
    *loss = (float)(sum / (double)r->o.accum);
    *ms = gpt_now_ms() - t0;
    REMAT_TRY(remat_pool_stats_get(r->rig.pool, &after));
    /* the schedule's blocks (the executor's tag), not ZeRO-2/3's unit buffers beside them */
    if (remat_pool_tag_stats(r->rig.pool, "act", &act_after) != REMAT_OK)
        act_after = (remat_stat){0, 0};
    *act_peak = act_after.peak - act_before.current;
    *pool_peak = after.allocated.peak;
    r->gathers = gpt_model_gathers(r->rig.model);
    return REMAT_OK;
}

/* The store-all run of --baseline: its time, activation peak and loss. */
static remat_status train_baseline(train_run *r, train_totals *tot, long step, float *loss)
{
    uint64_t act, pool_peak;
    REMAT_TRY(
        train_forward_backward(r, r->base_sched, loss, &tot->base_ms[step - 1], &act, &pool_peak));
    if (act > tot->base_act_peak_max)
        tot->base_act_peak_max = act;
    return REMAT_OK;
}

/* One step: forward and backward under the plan (and under store-all with --baseline, in
 * gpt_ab_order's order: store-all first on even steps, last on odd ones), then the update. */
static remat_status train_step(train_run *r, train_totals *tot, const gpt_adamw *hp, long step,
                               float *loss, uint64_t *pool_peak)
{
    uint64_t act;
    float base_loss = 0;
    int base_first = gpt_ab_order(1, step)[0] == 0;
    if (r->o.baseline && base_first)
        REMAT_TRY(train_baseline(r, tot, step, &base_loss));
    REMAT_TRY(train_forward_backward(r, r->sched, loss, &tot->fb_ms[step - 1], &act, pool_peak));
    if (r->o.baseline && !base_first)
        REMAT_TRY(train_baseline(r, tot, step, &base_loss));
    if (r->o.baseline && memcmp(loss, &base_loss, sizeof base_loss) != 0)
        return remat_fail(REMAT_EINTERNAL,
                          "step %ld: loss %.9g under the plan, %.9g under store-all", step, *loss,
                          base_loss);
    if (act > tot->act_peak_max)
        tot->act_peak_max = act;
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_model_reduce_grads(r->rig.model));
    if (r->ranks > 1) { /* the mean over every rank's rows (each rank's mean weighs the same) */
        double mean = *loss;
        REMAT_TRY(remat_comm_allreduce(r->comm, &mean, &mean, 1, REMAT_COMM_F64));
        *loss = (float)(mean / r->ranks);
    }
    REMAT_TRY(gpt_model_update(r->rig.model, hp, (int)step));
    tot->ms[step - 1] = tot->fb_ms[step - 1] + gpt_now_ms() - t0;
    return REMAT_OK;
}

static int train_loop(train_run *r, train_totals *tot)
{
    gpt_adamw hp = gpt_adamw_defaults();
    hp.lr = (float)r->o.lr;
    int tty = isatty(STDOUT_FILENO);
    size_t n = (size_t)r->o.steps;
    tot->ms_min = 1e300;
    tot->ms = calloc(n, sizeof(double));
    tot->fb_ms = calloc(n, sizeof(double));
    tot->base_ms = calloc(n, sizeof(double));
    if (!tot->ms || !tot->fb_ms || !tot->base_ms)
        return cli_fail("train", remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    remat_comm_stats_reset(r->comm); /* the steps' traffic only */
    for (long step = 1; step <= r->o.steps; step++) {
        gpt_loader_next(&r->loader, r->inputs, r->targets);
        float loss;
        uint64_t pool_peak;
        /* a step mark in the --trace, so `remat replay --planned` can record a step */
        remat_status s = remat_pool_trace_step(r->rig.pool);
        if (s == REMAT_OK)
            s = train_step(r, tot, &hp, step, &loss, &pool_peak);
        if (s != REMAT_OK) {
            if (tty && !r->o.json)
                printf("\n");
            return cli_fail("train", s, "training step failed");
        }
        if (!isfinite(loss)) {
            if (tty && !r->o.json && step > 1)
                printf("\n");
            if (step == 1) /* before any update: the weights or data as given */
                return cli_usage_error("train",
                                       "the loss is %f at step 1, before any update: the weights "
                                       "%s give no finite loss on this data",
                                       loss, r->o.model ? r->o.model : "(GPT-2 init)");
            return cli_fail("train",
                            remat_fail(REMAT_EINTERNAL,
                                       "the loss became %f at step %ld: training diverged "
                                       "(--lr %g too high?)",
                                       loss, step, r->o.lr),
                            "");
        }
        double ms = tot->ms[step - 1];
        if (pool_peak > tot->peak_max)
            tot->peak_max = pool_peak;
        tot->ms_total += ms;
        if (ms < tot->ms_min)
            tot->ms_min = ms;
        if (step == 1)
            tot->first_loss = loss;
        tot->last_loss = loss;
        train_report_step(r, step, loss, ms, pool_peak, tty);
    }
    remat_comm_stats cs;
    if (remat_comm_stats_get(r->comm, &cs) == REMAT_OK) {
        r->comm_bytes = cs.bytes_sent;
        r->comm_ms = cs.ms;
    }
    return EXIT_OK;
}

/* Median of v[0..steps); the first step (cold caches, first touches of pool memory) is left out
 * when there are others. Sorts v. */
static double train_median(double *v, long steps)
{
    return gpt_median(v + (steps > 1), (size_t)(steps - (steps > 1)));
}

/* The process's peak resident set (getrusage ru_maxrss, KiB on Linux) in bytes. */
static uint64_t train_peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
}

/* The per-rank tags of the summary: the persistent states, and ZeRO-2/3's unit buffers
 * (gathered parameters, a unit's gradients until they are reduced). */
static const char *const train_tags[4] = {"params", "grads", "optim", "units"};

/* The pool's peak bytes under persistent tag i of train_tags (0 when the query fails). */
static uint64_t train_tag_peak(const train_run *r, int i)
{
    remat_stat st = {0, 0};
    return remat_pool_tag_stats(r->rig.pool, train_tags[i], &st) == REMAT_OK ? st.peak : 0;
}

static void train_summary(const train_run *r, train_totals *t)
{
    uint64_t rss = train_peak_rss();
    t->ms_median = train_median(t->ms, r->o.steps);
    /* --baseline: the A/B of curve over the steps after the first (cold caches, first touches) */
    gpt_ab ab = {.overhead_se = NAN};
    long skip = r->o.steps > 1;
    if (r->o.baseline && gpt_ab_compare(t->fb_ms + skip, t->base_ms + skip,
                                        (size_t)(r->o.steps - skip), &ab) != REMAT_OK)
        ab.overhead = NAN;
    double fb = train_median(t->fb_ms, r->o.steps);
    double base = ab.base_ms;
    char name[48];
    train_policy_name(r, name, sizeof name);
    double mean_ms = t->ms_total / (double)r->o.steps;
    double tok_s = (double)r->rows * r->T / (t->ms_median / 1e3);
    double dev = r->sched->peak_bytes ? ((double)t->act_peak_max - (double)r->sched->peak_bytes) /
                                            (double)r->sched->peak_bytes
                                      : 0;
    if (r->o.json) {
        printf("{\"summary\": true, \"steps\": %ld, \"policy\": ", r->o.steps);
        cli_json_string(stdout, name);
        printf(", \"budget_bytes\": %llu, \"first_loss\": %.6f, \"final_loss\": %.6f, "
               "\"mean_ms\": %.3f, \"median_ms\": %.3f, \"min_ms\": %.3f, \"tokens_per_s\": %.1f, "
               "\"predicted_act_peak_bytes\": %llu, \"measured_act_peak_bytes\": %llu, "
               "\"store_all_act_peak_bytes\": %llu, \"predicted_overhead\": %.6f, "
               "\"persistent_bytes\": %llu, \"peak_bytes\": %llu, \"parameters\": %zu, "
               "\"fwd_bwd_median_ms\": %.3f, \"batch\": %ld, \"peak_rss_bytes\": %llu, "
               "\"dtype\": \"%s\"",
               (unsigned long long)r->sched->budget_bytes, t->first_loss, t->last_loss, mean_ms,
               t->ms_median, t->ms_min, tok_s, (unsigned long long)r->sched->peak_bytes,
               (unsigned long long)t->act_peak_max, (unsigned long long)r->store_all_peak,
               r->sched->overhead, (unsigned long long)gpt_model_persistent_bytes(r->rig.model),
               (unsigned long long)t->peak_max, gpt_model_layout(r->rig.model)->total, fb, r->o.batch,
               (unsigned long long)rss, r->o.prec.bf16 ? "bf16" : "fp32");
        printf(", \"comm_backend\": \"%s\"", remat_comm_backend(r->comm));
        printf(", \"ranks\": %d, \"zero\": %ld, \"accum\": %ld, \"global_batch\": %zu, "
               "\"comm_bytes_per_step\": %llu, \"comm_ms_per_step\": %.3f, \"rank_peak_bytes\": {",
               r->ranks, r->o.zero, r->o.accum, r->rows,
               (unsigned long long)(r->comm_bytes / (uint64_t)r->o.steps),
               r->comm_ms / (double)r->o.steps);
        for (int i = 0; i < 4; i++)
            printf("\"%s\": %llu, ", train_tags[i], (unsigned long long)train_tag_peak(r, i));
        printf("\"act\": %llu}, \"param_gathers_per_step\": %llu", (unsigned long long)t->act_peak_max,
               (unsigned long long)r->gathers);
        printf(", \"chain_gather_ms\": {\"embeddings\": %.6f, \"block\": %.6f}", r->gather_ms[0],
               r->gather_ms[1]);
        if (r->o.baseline) {
            printf(", \"store_all_fwd_bwd_median_ms\": %.3f, \"measured_overhead\": %.6f, "
                   "\"measured_overhead_se\": ",
                   base, ab.overhead);
            if (isnan(ab.overhead_se))
                printf("null");
            else
                printf("%.6f", ab.overhead_se);
            printf(", \"store_all_measured_act_peak_bytes\": %llu",
                   (unsigned long long)t->base_act_peak_max);
        }
        printf("}\n");
        return;
    }
    char pp[32], mp[32], sp[32], tp[32];
    remat_format_bytes(r->sched->peak_bytes, pp, sizeof pp);
    remat_format_bytes(t->act_peak_max, mp, sizeof mp);
    remat_format_bytes(r->store_all_peak, sp, sizeof sp);
    remat_format_bytes(t->peak_max, tp, sizeof tp);
    printf("loss %.4f -> %.4f over %ld steps (ln V = %.4f)\n", t->first_loss, t->last_loss,
           r->o.steps, log((double)r->cfg.vocab));
    printf("activation peak: measured %s, predicted %s (%+.2f%%), store-all %s (%.0f%%)\n", mp, pp,
           100 * dev, sp, 100.0 * (double)t->act_peak_max / (double)r->store_all_peak);
    char rb[32];
    printf("pool peak %s; step %.1f ms median, %.1f ms mean, %.1f ms min; %.0f tokens/s; predicted "
           "overhead %.1f%%\n",
           tp, t->ms_median, mean_ms, t->ms_min, tok_s, 100 * r->sched->overhead);
    printf("process peak RSS %s\n", remat_format_bytes(rss, rb, sizeof rb));
    if (r->ranks > 1 || r->o.accum > 1 || r->o.zero_given) {
        char b[4][32], cb[32];
        for (int i = 0; i < 4; i++)
            remat_format_bytes(train_tag_peak(r, i), b[i], sizeof b[i]);
        printf("data parallel: %d rank%s, ZeRO-%ld, %ld micro-step%s of %ld: %zu sequences an "
               "update; per rank: params %s, grads %s, optim %s, unit buffers %s; sent %s a step "
               "in %.1f ms\n",
               r->ranks, r->ranks == 1 ? "" : "s", r->o.zero, r->o.accum,
               r->o.accum == 1 ? "" : "s", r->o.batch, r->rows, b[0], b[1], b[2], b[3],
               remat_format_bytes(r->comm_bytes / (uint64_t)r->o.steps, cb, sizeof cb),
               r->comm_ms / (double)r->o.steps);
    }
    if (r->o.baseline) {
        char bp[32];
        remat_format_bytes(t->base_act_peak_max, bp, sizeof bp);
        char se[32] = "";
        if (!isnan(ab.overhead_se))
            snprintf(se, sizeof se, " +- %.1f%%", 100 * ab.overhead_se);
        printf(
            "baseline (store-all, interleaved): forward+backward %.1f ms median vs %.1f ms under "
            "the plan: measured overhead %+.1f%%%s (median of the steps' ratios); store-all "
            "activation peak measured %s\n",
            base, fb, 100 * ab.overhead, se, bp);
    }
}

/* Writes the weights: straight from the model's parameters where they are host memory, else
 * through a host copy made only now. */
static int train_save(train_run *r)
{
    const float *params = gpt_model_host_params(r->rig.model);
    remat_status s = REMAT_OK;
    if (!params) {
        r->host_params = malloc(gpt_model_layout(r->rig.model)->total * sizeof(float));
        s = r->host_params ? gpt_model_get_params(r->rig.model, r->host_params)
                           : remat_fail(REMAT_ENOMEM, "out of host memory for the weights");
        params = r->host_params;
    }
    if (r->rank != 0) /* rank 0 writes; the others only took part in gathering the weights */
        return s == REMAT_OK ? EXIT_OK : cli_fail("train", s, "cannot gather the weights");
    cli_output out = {.slot = -1};
    if (s == REMAT_OK && (s = cli_output_open(&out, r->o.save)) == REMAT_OK) {
        s = gpt_weights_fwrite(out.f, gpt_model_config(r->rig.model), params);
        remat_status fin = cli_output_close(&out, s == REMAT_OK);
        s = s != REMAT_OK ? s : fin;
    }
    if (s != REMAT_OK)
        return cli_fail("train", s, "cannot save the weights");
    if (!r->o.json)
        printf("saved %s\n", r->o.save);
    return EXIT_OK;
}

/* The ranks: the MPI world under mpirun (every rank runs this same command), else one. Ranks
 * other than 0 print nothing on stdout (their errors still go to stderr) and write no file; the
 * options must be the same on every rank. Returns an exit code. */
static int train_open_comm(train_run *r)
{
    remat_status s = remat_comm_create_world(&r->comm);
    if (s != REMAT_OK)
        return cli_fail("train", s, "cannot start the ranks");
    r->rank = remat_comm_rank(r->comm);
    r->ranks = remat_comm_size(r->comm);
    if (r->ranks == 1)
        return EXIT_OK;
    if (r->rank != 0 && (s = cli_quiet_stdout()) != REMAT_OK)
        return cli_fail("train", s, "cannot silence the other ranks");
    const train_opts *o = &r->o;
    char key[2048];
    snprintf(key, sizeof key,
             "model=%s data=%s device=%s policy=%s budget=%s batch=%ld steps=%ld seed=%ld lr=%.17g "
             "shuffle=%d analytic=%d layout=%d dtype=%d master=%d zero=%ld accum=%ld ov=%d,%d,%d,%d,%d "
             "save=%d",
             o->model ? o->model : "", o->data ? o->data : "", o->device, o->policy,
             o->budget ? o->budget : "", o->batch, o->steps, o->seed, o->lr, o->shuffle,
             o->analytic, (int)o->layout, o->prec.bf16, o->prec.master_weights, o->zero, o->accum,
             o->ov.layers, o->ov.channels, o->ov.heads, o->ov.vocab, o->ov.seq, o->save != NULL);
    if ((s = remat_comm_check_same(r->comm, "the options of `remat train`", key, strlen(key))) !=
        REMAT_OK)
        return cli_usage_error("train", "%s: every rank must run the same command",
                               remat_last_error());
    if (o->baseline)
        return cli_usage_error("train", "--baseline runs in one process (not under mpirun with %d "
                                        "ranks)", r->ranks);
    if (r->rank != 0) { /* rank 0 records the trace and the memory profile */
        r->o.trace = NULL;
        r->o.profile_memory = 0;
    }
    return EXIT_OK;
}

int cmd_train(int argc, char **argv)
{
    train_run r;
    memset(&r, 0, sizeof r);
    if (train_parse(argc, argv, &r.o) != 0)
        return EXIT_USAGE;
    const cli_file files[] = {{"--model", r.o.model, 0},
                              {"--data", r.o.data, 0},
                              {"--save", r.o.save, 1},
                              {"--trace", r.o.trace, 1}};
    if (cli_check_files("train", files, sizeof files / sizeof files[0]) != EXIT_OK)
        return EXIT_USAGE;
    int rc = train_open_comm(&r);
    if (rc != EXIT_OK) {
        train_close(&r);
        return rc;
    }
    remat_status s = gpt_resolve(r.o.model, &r.o.ov, &r.cfg, &r.T, &r.host_params);
    if (s != REMAT_OK) {
        train_close(&r);
        return cli_fail("train", s, "");
    }
    r.rows = (size_t)r.ranks * (size_t)r.o.accum * (size_t)r.o.batch;
    rc = train_check_weights(&r);
    if (rc == EXIT_OK)
        rc = train_open_device(&r);
    if (rc == EXIT_OK)
        rc = train_load_data(&r);
    if (rc == EXIT_OK)
        rc = train_open_model(&r);
    if (rc == EXIT_OK)
        rc = train_plan(&r);
    train_totals tot = {0};
    if (rc == EXIT_OK && r.o.profile_memory &&
        (s = gpt_memprof_attach(r.rig.model, &r.memprof)) != REMAT_OK)
        rc = cli_fail("train", s, "--profile-memory");
    if (rc == EXIT_OK) {
        if (!r.o.json)
            train_print_plan(&r);
        rc = train_loop(&r, &tot);
    }
    if (rc == EXIT_OK)
        train_summary(&r, &tot);
    if (rc == EXIT_OK && r.memprof)
        rc = train_memprof_report(r.memprof, r.o.json);
    if (rc == EXIT_OK && r.o.save)
        rc = train_save(&r);
    gpt_memprof_detach(r.memprof);
    gpt_model_destroy(r.rig.model); /* before the trace ends, so it records the model's frees */
    r.rig.model = NULL;
    if (r.o.trace)
        rc = train_trace_finish(&r.rig, r.trace, rc);
    free(tot.ms);
    free(tot.fb_ms);
    free(tot.base_ms);
    train_close(&r);
    return rc;
}

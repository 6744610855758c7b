/* cli/cmd_fit_measure.c: `remat fit --measure`: trains our GPT at each policy's planned largest
 * batch in a pool limited to what the plan leaves the allocator, and compares the pool's measured
 * peak with the planned bytes; then checks that one more sequence does not fit. Under mpirun with
 * --zero K --gpus N (N the ranks) every rank trains its part of the data-parallel job and rank 0
 * reports its own pool (the ranks are alike). */
#include "cli/cli.h"
#include "core/core.h"
#include "model/rig.h"
#include "fit/fit.h"

#include <stdlib.h>
#include <string.h>

#define MEASURE_STEPS 2

typedef struct {
    long batch;
    uint64_t predicted, measured; /* pool bytes: states + activations */
    remat_status status;          /* of the run at `batch` */
    remat_status one_more;        /* of the run at batch + 1 (REMAT_ENOMEM = did not fit) */
    uint64_t one_more_measured;   /* its pool's peak reserved bytes when it ran */
    uint64_t one_more_slack;      /* what the plan counts at batch + 1 that this device does not
                                   * allocate, rounded up to the arena's 2 MiB segment */
    uint64_t device_extra;        /* workspace this device takes beyond the plan's at `batch` */
    char why[320];                /* the failure message of the run at `batch` */
} measure_row;

/* ==== Schedules ========================================================================== */

/* The scheduler's schedule of p (remat_policy_parse's meaning of its name), laid out in one
 * arena; fixed policies at their own peak, optimal within the budget. */
static remat_status measure_schedule(const remat_chain *c, remat_act_policy p, uint64_t budget,
                                     remat_schedule **out)
{
    remat_policy pol;
    fit_act_policy(p, &pol);
    return remat_plan(c, &pol, pol.kind == REMAT_POLICY_OPTIMAL ? budget : UINT64_MAX, out);
}

/* ==== One run ============================================================================== */

/* Deterministic tokens in [0, vocab). */
static void measure_tokens(int *inputs, int *targets, size_t n, int vocab)
{
    for (size_t i = 0; i < n; i++) {
        inputs[i] = (int)((i * 7 + 3) % (size_t)vocab);
        targets[i] = (int)((i * 7 + 10) % (size_t)vocab);
    }
}

/* The most workspace bytes the planner's chain of md at B x T counts for one op beyond this
 * device's chain `dev`: the plan assumes the CUDA attention kernel's NH x T x T floats of scratch,
 * the CPU kernels take threads x T x T. 0 when the device needs as much. */
static remat_status measure_allowance(const remat_model_desc *md, const remat_chain *dev, int B,
                                      int T, unsigned elem, uint64_t *out, uint64_t *excess)
{
    remat_chain *c = NULL;
    REMAT_TRY(fit_chain_build(md, (uint64_t)B, (uint64_t)T, elem, &c));
    uint64_t most = 0, over = 0;
    for (int i = 0; i < c->n_stages && i < dev->n_stages; i++) {
        const remat_stage *a = &c->stages[i], *d = &dev->stages[i];
        if (a->fwd_tmp_bytes > d->fwd_tmp_bytes && a->fwd_tmp_bytes - d->fwd_tmp_bytes > most)
            most = a->fwd_tmp_bytes - d->fwd_tmp_bytes;
        if (a->bwd_tmp_bytes > d->bwd_tmp_bytes && a->bwd_tmp_bytes - d->bwd_tmp_bytes > most)
            most = a->bwd_tmp_bytes - d->bwd_tmp_bytes;
        if (d->fwd_tmp_bytes > a->fwd_tmp_bytes && d->fwd_tmp_bytes - a->fwd_tmp_bytes > over)
            over = d->fwd_tmp_bytes - a->fwd_tmp_bytes;
        if (d->bwd_tmp_bytes > a->bwd_tmp_bytes && d->bwd_tmp_bytes - a->bwd_tmp_bytes > over)
            over = d->bwd_tmp_bytes - a->bwd_tmp_bytes;
    }
    fit_chain_free(c);
    *out = most;
    if (excess)
        *excess = over;
    return REMAT_OK;
}

/* Trains MEASURE_STEPS steps of policy p at batch B in a pool limited to `limit`; the pool's
 * peak allocated bytes in *peak, its peak reserved bytes in *reserved and the plan's workspace
 * allowance over this device (measure_allowance) in *allowance, and in *excess the most workspace
 * one op of this device takes beyond the plan's (the CPU bf16 attention's per-thread float32
 * scratch against the CUDA kernel's bf16 one), which optimal's budget gets on top (both may be
 * NULL). */
static remat_status measure_one(const char *device, uint64_t limit, int expandable,
                                const remat_model_desc *md, const gpt_config *cfg,
                                const gpt_precision *prec, const gpt_parallel *par, int B, int T,
                                remat_act_policy p, uint64_t budget, uint64_t *peak,
                                uint64_t *reserved, uint64_t *allowance, uint64_t *excess)
{
    gpt_rig m;
    remat_schedule *sched = NULL;
    gpt_adamw hp = gpt_adamw_defaults();
    uint64_t most = 0, over = 0;
    remat_pool_config pc;
    memset(&pc, 0, sizeof pc);
    pc.limit_bytes = limit;
    pc.expandable_segments = expandable;
    gpt_rig_spec spec = {.device = device, .pool = &pc, .cfg = *cfg, .B = B, .T = T,
                         .prec = prec, .par = par, .seed = 1};
    *peak = 0;
    remat_status s = gpt_rig_open(&m, &spec);
    if (s == REMAT_OK) {
        measure_tokens(m.inputs, m.targets, m.tokens, cfg->vocab);
        s = measure_allowance(md, m.chain, B, T, prec->dtype == GPT_BF16 ? 2 : 4, &most, &over);
    }
    if (allowance)
        *allowance = most;
    if (excess)
        *excess = over;
    if (s == REMAT_OK)
        s = measure_schedule(m.chain, p, budget + over, &sched);
    gpt_rig_step st = {0};
    for (int step = 1; s == REMAT_OK && step <= MEASURE_STEPS; step++) {
        s = gpt_rig_run(&m, sched, &hp, step, &st);
        if (s == REMAT_OK && st.pool_peak > *peak)
            *peak = st.pool_peak;
    }
    remat_pool_stats ps;
    if (s == REMAT_OK && reserved && (s = remat_pool_stats_get(m.pool, &ps)) == REMAT_OK)
        *reserved = ps.reserved.peak;
    remat_schedule_free(sched);
    gpt_rig_close(&m);
    return s;
}

/* ==== The comparison ======================================================================= */

/* The part of the plan's workspace that the trainer takes from its pool: ZeRO-2/3's unit
 * buffers (0 under the other stages). */
static uint64_t measure_units(const remat_fit_bytes *b)
{
    return b->workspace > FIT_WORKSPACE_BYTES ? b->workspace - FIT_WORKSPACE_BYTES : 0;
}

/* Planned pool bytes (states + activations + unit buffers) at `batch` under p and the activation
 * budget. */
static remat_status measure_predict(const remat_fit_request *req, remat_act_policy p, long batch,
                                    uint64_t *pool_bytes, uint64_t *budget)
{
    remat_fit_request r = *req;
    remat_fit_result res;
    r.policy = p;
    r.option[0] = '\0'; /* the breakdown under p itself */
    r.batch = (int)batch;
    REMAT_TRY(remat_fit(&r, &res));
    const remat_fit_bytes *b = &res.per_gpu;
    *pool_bytes = b->weights + b->gradients + b->optimizer + b->activations + measure_units(b);
    /* the trainer's targets sit outside the chain: the schedule's budget excludes them */
    *budget = b->activations - fit_chain_extra_bytes(&r.model, (uint64_t)batch, (uint64_t)r.seq);
    return REMAT_OK;
}

static uint64_t measure_segments(uint64_t bytes)
{
    const uint64_t seg = 2ull << 20; /* the pool's large segments are multiples of 2 MiB */
    return (bytes + seg - 1) / seg * seg;
}

static remat_status measure_policy(const remat_fit_request *req, const remat_fit_result *res,
                                   const char *device, int expandable, const gpt_config *cfg,
                                   const gpt_precision *prec, const gpt_parallel *par,
                                   remat_act_policy p, measure_row *row)
{
    uint64_t budget = 0, ignored = 0, next_budget = 0, allowance = 0;
    /* the unit buffers the plan counts as workspace come from the trainer's pool */
    uint64_t limit = res->pool_bytes + measure_units(&res->per_gpu);
    row->batch = res->max_batch[p];
    if (row->batch <= 0)
        return REMAT_OK;
    REMAT_TRY(measure_predict(req, p, row->batch, &row->predicted, &budget));
    row->status = measure_one(device, limit, expandable, &req->model, cfg, prec, par,
                              (int)row->batch, req->seq, p, budget, &row->measured, NULL, NULL,
                              &row->device_extra);
    if (row->status != REMAT_OK)
        snprintf(row->why, sizeof row->why, "%s", remat_last_error());
    if (measure_predict(req, p, row->batch + 1, &ignored, &next_budget) != REMAT_OK)
        next_budget = budget;
    row->one_more =
        measure_one(device, limit, expandable, &req->model, cfg, prec, par,
                    (int)row->batch + 1, req->seq, p, next_budget, &ignored,
                    &row->one_more_measured, &allowance, NULL);
    /* less workspace per op can save the arena one 2 MiB segment, never more than the rounded
     * difference */
    row->one_more_slack = allowance ? measure_segments(allowance) : 0;
    remat_clear_error();
    return REMAT_OK;
}

/* Batch + 1, which the plan refuses: out of memory, or fitting with less headroom below the pool's
 * limit than the slack: the workspace the plan counts and this device does not allocate, rounded
 * up to a 2 MiB segment ("in the slack"; 0 on a device with the CUDA kernels, where the plan is
 * exact). More headroom than that ("outside the slack") would mean the plan refused a batch that
 * fits. */
static const char *measure_next(const measure_row *r, uint64_t limit, char *buf, size_t n)
{
    if (r->one_more == REMAT_ENOMEM)
        return "out of memory";
    if (r->one_more != REMAT_OK)
        return remat_strerror(r->one_more);
    uint64_t room = limit > r->one_more_measured ? limit - r->one_more_measured : 0;
    char a[32], b[32];
    snprintf(buf, n, "fits %s the slack (%s left, slack %s)",
             room < r->one_more_slack ? "in" : "outside", remat_format_bytes(room, a, sizeof a),
             remat_format_bytes(r->one_more_slack, b, sizeof b));
    return buf;
}

static void measure_print(const measure_row *rows, uint64_t limit, int json)
{
    uint64_t extra = 0;
    char pb[32], mb[32], nb[96];
    if (json)
        printf("{\"measure\": [");
    else
        printf("measured (pool peak of %d training steps, states + activations):\n"
               "  %-20s %8s %12s %12s %8s  %s\n",
               MEASURE_STEPS, "policy", "batch", "predicted", "measured", "error", "batch + 1");
    for (int p = 0, first = 1; p < REMAT_ACT_COUNT; p++) {
        const measure_row *r = &rows[p];
        if (r->batch <= 0)
            continue;
        /* against the plan plus the workspace this device takes beyond it (0 on CUDA and in
         * fp32 on the host) */
        double want = (double)(r->predicted + r->device_extra);
        double err = r->status == REMAT_OK && want > 0 ? ((double)r->measured - want) / want : 0;
        if (r->device_extra > extra)
            extra = r->device_extra;
        const char *next = measure_next(r, limit, nb, sizeof nb);
        if (json) {
            printf("%s{\"policy\": \"%s\", \"batch\": %ld, \"predicted_bytes\": %llu, "
                   "\"measured_bytes\": %llu, \"device_extra_workspace_bytes\": %llu, "
                   "\"error\": %.6f, \"ok\": %s, \"one_more_fits\": %s",
                   first ? "" : ", ", remat_act_policy_name((remat_act_policy)p), r->batch,
                   (unsigned long long)r->predicted, (unsigned long long)r->measured,
                   (unsigned long long)r->device_extra, err,
                   r->status == REMAT_OK ? "true" : "false",
                   r->one_more == REMAT_OK ? "true" : "false");
            if (r->one_more == REMAT_OK)
                printf(", \"one_more_measured_bytes\": %llu, \"one_more_slack_bytes\": %llu, "
                       "\"pool_limit_bytes\": %llu",
                       (unsigned long long)r->one_more_measured,
                       (unsigned long long)r->one_more_slack, (unsigned long long)limit);
            printf("}");
        } else if (r->status != REMAT_OK) {
            printf("  %-20s %8ld %12s   run failed: %s\n",
                   remat_act_policy_name((remat_act_policy)p), r->batch,
                   remat_format_bytes(r->predicted, pb, sizeof pb), r->why);
        } else {
            printf("  %-20s %8ld %12s %12s %+7.2f%%  %s\n",
                   remat_act_policy_name((remat_act_policy)p), r->batch,
                   remat_format_bytes(r->predicted, pb, sizeof pb),
                   remat_format_bytes(r->measured, mb, sizeof mb), 100 * err, next);
        }
        first = 0;
    }
    if (json) {
        printf("]}\n");
    } else if (extra) {
        char eb[32];
        printf("  (this device's attention takes up to %s of workspace beyond the plan's, which\n"
               "  assumes the CUDA kernel's: the error is against the plan plus that)\n",
               remat_format_bytes(extra, eb, sizeof eb));
    }
}

int fit_measure_ranks(const remat_fit_request *req, const char *device, remat_comm **comm,
                      char *spec, size_t n)
{
    *comm = NULL;
    snprintf(spec, n, "%s", device);
    if (!req->zero && req->gpus == 1 && !remat_comm_launched())
        return EXIT_OK;
    if (!remat_built_with_mpi())
        return cli_usage_error("fit", "--measure with --zero or --gpus runs under mpirun, and this "
                                      "build has no MPI (built with REMAT_MPI=0)");
    remat_status s = remat_comm_create_world(comm);
    if (s != REMAT_OK)
        return cli_fail("fit", s, "cannot start the ranks");
    int ranks = remat_comm_size(*comm);
    if (ranks != req->gpus)
        return cli_usage_error("fit", "--measure --gpus %d: run it as `mpirun -np %d remat fit "
                                      "...` (%d rank%s started)",
                               req->gpus, req->gpus, ranks, ranks == 1 ? "" : "s");
    if (strcmp(device, "cuda") == 0) /* one GPU per rank, by local rank */
        snprintf(spec, n, "cuda:%d", remat_comm_local_rank(*comm));
    if (remat_comm_rank(*comm) != 0 && (s = cli_quiet_stdout()) != REMAT_OK)
        return cli_fail("fit", s, "cannot silence the other ranks");
    return EXIT_OK;
}

static int fit_measure_run(const remat_fit_request *req, const remat_fit_result *res,
                           remat_comm *comm, const char *spec, int expandable, int json)
{
    const remat_model_desc *m = &req->model;
    gpt_config cfg;
    if (req->inference || m->arch != REMAT_ARCH_GPT2 || gpt_preset(m->name, &cfg) != REMAT_OK)
        return cli_usage_error("fit",
                               "--measure trains our GPT: give --model tiny, small, "
                               "gpt2-124m or gpt2-350m (not '%s'), without --inference",
                               m->name);
    if ((req->dtype != REMAT_DTYPE_FP32 && req->dtype != REMAT_DTYPE_BF16) ||
        req->optimizer != REMAT_OPTIM_ADAMW)
        return cli_usage_error("fit", "--measure trains in fp32 or bf16 with AdamW: drop "
                                      "--optimizer (and use --dtype fp32 or bf16)");
    /* bf16 as `remat train --dtype bf16 [--master-weights off]` trains it */
    gpt_precision prec = gpt_precision_default();
    prec.dtype = req->dtype == REMAT_DTYPE_BF16 ? GPT_BF16 : GPT_FP32;
    prec.master_weights = !req->no_master_weights;
    if (gpt_config_check(&cfg) != REMAT_OK)
        return cli_fail("fit", REMAT_EINVAL, "--measure");
    int code = EXIT_OK;
    gpt_parallel par = {.comm = comm, .zero = req->zero, .accum = 1};
    measure_row rows[REMAT_ACT_COUNT];
    memset(rows, 0, sizeof rows);
    for (int p = 0; code == EXIT_OK && p < REMAT_ACT_COUNT; p++) {
        remat_status s = measure_policy(req, res, spec, expandable, &cfg, &prec, &par,
                                        (remat_act_policy)p, &rows[p]);
        if (s != REMAT_OK)
            code = cli_fail("fit", s, "--measure");
    }
    if (code == EXIT_OK)
        measure_print(rows, res->pool_bytes + measure_units(&res->per_gpu), json);
    return code;
}

int fit_measure(const remat_fit_request *req, const remat_fit_result *res, remat_comm *comm,
                const char *spec, int expandable, int json)
{
    int code = fit_measure_run(req, res, comm, spec, expandable, json);
    remat_comm_destroy(comm);
    return code;
}

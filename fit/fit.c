/* fit/fit.c: remat_fit: per-GPU memory of a training step or of serving, and the largest batch
 * that fits per activation policy. Formulas and their sources: docs/planner.md. */
#include "fit/fit.h"

#include "alloc/pool.h" /* the pool's rounding, which our GPT's fit models exactly */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIT_MAX_CARD (1ull << 47) /* 128 TiB per GPU: anything above is a typo */
#define FIT_MAX_SEQ (1 << 24)
#define FIT_MAX_BATCH 1000000000
#define FIT_MAX_GPUS 65536

void remat_fit_request_init(remat_fit_request *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->gpus = 1;
    r->batch = 1;
    r->dtype = REMAT_DTYPE_FP32;
    r->optimizer = REMAT_OPTIM_ADAMW;
    r->policy = REMAT_ACT_STORE_ALL;
    r->quant = REMAT_DTYPE_BF16;
    r->kv_dtype = REMAT_DTYPE_BF16;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* ==== Checks =============================================================================== */

static int is_float_type(remat_dtype d)
{
    return d == REMAT_DTYPE_FP32 || d == REMAT_DTYPE_BF16 || d == REMAT_DTYPE_FP16;
}

static remat_status fit_check_training(const remat_fit_request *r)
{
    if (!is_float_type(r->dtype))
        return remat_fail(REMAT_EINVAL,
                          "training dtype %s: use fp32, or bf16/fp16 (mixed precision)",
                          remat_dtype_name(r->dtype));
    if (r->zero < 0 || r->zero > 3)
        return remat_fail(REMAT_EINVAL, "ZeRO stage %d is not 0-3", r->zero);
    if ((unsigned)r->optimizer > REMAT_OPTIM_SGD_MOMENTUM)
        return remat_fail(REMAT_EINVAL, "optimizer %d is unknown", (int)r->optimizer);
    if ((unsigned)r->policy >= REMAT_ACT_COUNT)
        return remat_fail(REMAT_EINVAL, "policy %d is unknown", (int)r->policy);
    if (!memchr(r->option, '\0', sizeof r->option))
        return remat_fail(REMAT_EINVAL, "option: not NUL-terminated within %d bytes",
                          REMAT_POLICY_OPTION_MAX);
    if (r->no_master_weights != 0 && r->no_master_weights != 1)
        return remat_fail(REMAT_EINVAL, "no_master_weights %d: use 0 or 1", r->no_master_weights);
    if (r->no_master_weights && r->dtype == REMAT_DTYPE_FP32)
        return remat_fail(REMAT_EINVAL,
                          "no master weights with fp32 training: fp32 weights are the master "
                          "weights; it applies to bf16/fp16 mixed precision");
    return REMAT_OK;
}

static remat_status fit_check_inference(const remat_fit_request *r)
{
    if (r->zero != 0)
        return remat_fail(REMAT_EINVAL, "ZeRO stage %d applies to training, not to inference",
                          r->zero);
    if (r->no_master_weights != 0)
        return remat_fail(REMAT_EINVAL,
                          "no_master_weights %d applies to training, not to inference",
                          r->no_master_weights);
    if ((unsigned)r->quant > REMAT_DTYPE_INT4)
        return remat_fail(REMAT_EINVAL, "weight format %d is unknown", (int)r->quant);
    if (!is_float_type(r->kv_dtype) && r->kv_dtype != REMAT_DTYPE_FP8)
        return remat_fail(REMAT_EINVAL, "KV cache dtype %s: use fp32, bf16, fp16 or fp8",
                          remat_dtype_name(r->kv_dtype));
    return REMAT_OK;
}

static remat_status fit_check(const remat_fit_request *r)
{
    REMAT_TRY(remat_model_validate(&r->model));
    if (r->card_bytes == 0 || r->card_bytes > FIT_MAX_CARD)
        return remat_fail(REMAT_EINVAL, "card size %llu bytes is out of range (1 B to 128 TiB)",
                          (unsigned long long)r->card_bytes);
    if (r->gpus < 1 || r->gpus > FIT_MAX_GPUS)
        return remat_fail(REMAT_EINVAL, "gpus %d is out of range [1, %d]", r->gpus, FIT_MAX_GPUS);
    if (r->batch < 1 || r->batch > FIT_MAX_BATCH)
        return remat_fail(REMAT_EINVAL, "batch %d is out of range [1, %d]", r->batch,
                          FIT_MAX_BATCH);
    if (r->seq < 0 || r->seq > FIT_MAX_SEQ)
        return remat_fail(REMAT_EINVAL, "seq %d is out of range [1, %d]", r->seq, FIT_MAX_SEQ);
    const remat_model_desc *m = &r->model;
    if (!m->params_only && m->arch == REMAT_ARCH_GPT2 && r->seq > m->max_seq)
        return remat_fail(REMAT_EINVAL,
                          "seq %d exceeds the %d learned positions of %s (GPT-2 cannot go longer)",
                          r->seq, m->max_seq, m->name);
    return r->inference ? fit_check_inference(r) : fit_check_training(r);
}

/* ==== Model states ========================================================================= */

/* Bytes per parameter of weights, gradients and optimizer states. fp32: 4 + 4 + (AdamW m, v: 8;
 * SGD momentum: 4). Mixed precision (ZeRO §3.1): 2 + 2 + (fp32 master 4 + m 4 + v 4 = 12;
 * SGD: master 4, momentum 4 more); without master weights (llm.c's -w 0, our trainer's
 * --master-weights off) the 16-bit weights are the only copy: 2 + 2 + 8 with AdamW. Every
 * optimizer state is fp32. */
static void state_bytes_per_param(const remat_fit_request *r, unsigned *w, unsigned *g, unsigned *o)
{
    int mixed = r->dtype != REMAT_DTYPE_FP32;
    *w = *g = mixed ? 2 : 4;
    unsigned master = mixed && !r->no_master_weights ? 4 : 0;
    *o = master + 8;
    switch (r->optimizer) {
    case REMAT_OPTIM_ADAMW: *o = master + 8; break;
    case REMAT_OPTIM_SGD: *o = master; break;
    case REMAT_OPTIM_SGD_MOMENTUM: *o = master + 4; break;
    }
}

/* Elements one rank keeps of r's model under ZeRO-2/3 over n ranks: each unit padded to a
 * multiple of n (fit_units_of). */
static uint64_t zero_unit_shard(const remat_model_desc *m, uint64_t n)
{
    fit_units u;
    fit_units_of(m, &u);
    uint64_t shard = ceil_div(u.outer, n) + ceil_div(u.norm, n);
    for (int k = 0; k < 2; k++)
        shard = remat_sat_add(shard, remat_sat_mul(u.blocks[k], ceil_div(u.block[k], n)));
    return shard;
}

/* ZeRO-2/3's two unit buffers, as `remat train` allocates them: *held the outer unit's full
 * gradients, held from the head's forward to the embedding's backward (the tied embedding gets
 * both shares); *work one block's (or the norm's) full gradients, and under ZeRO-3 the weights a
 * stage gathers beside them, or the head's gathered outer unit and final norm. 0 below ZeRO-2
 * and for a bare parameter count, which has no units to tell apart. */
static void zero_unit_buffers(const remat_fit_request *r, uint64_t *held, uint64_t *work)
{
    *held = *work = 0;
    if (r->zero < 2 || r->model.params_only)
        return;
    unsigned w, g, o;
    state_bytes_per_param(r, &w, &g, &o);
    fit_units u;
    fit_units_of(&r->model, &u);
    uint64_t n = (uint64_t)r->gpus, outer = n * ceil_div(u.outer, n);
    uint64_t norm = n * ceil_div(u.norm, n), unit = norm;
    for (int k = 0; k < 2; k++)
        if (u.blocks[k] && n * ceil_div(u.block[k], n) > unit)
            unit = n * ceil_div(u.block[k], n);
    *held = remat_sat_mul(outer, g);
    *work = remat_sat_mul(unit, g);
    if (r->zero >= 3) {
        uint64_t head = remat_sat_mul(outer + norm, w), blk = remat_sat_mul(unit, w + g);
        *work = head > blk ? head : blk;
    }
}

/* ZeRO (Rajbhandari et al. 2020, §5): stage 1 shards optimizer states, 2 adds gradients, 3 adds
 * parameters, each over the N data-parallel ranks. */
static void training_states(const remat_fit_request *r, remat_fit_bytes *b)
{
    uint64_t psi = fit_stored_params(&r->model), n = (uint64_t)r->gpus;
    unsigned w, g, o;
    state_bytes_per_param(r, &w, &g, &o);
    b->workspace = FIT_WORKSPACE_BYTES;
    if (r->zero >= 2) {
        /* Unit by unit, as `remat train --zero 2|3` (and FSDP) shards them; the unit buffers
         * beside the shard are workspace. */
        uint64_t shard = zero_unit_shard(&r->model, n), held, work;
        b->weights = remat_sat_mul(r->zero >= 3 ? shard : n * shard, w);
        b->gradients = remat_sat_mul(shard, g);
        b->optimizer = remat_sat_mul(shard, o);
        zero_unit_buffers(r, &held, &work);
        b->workspace = remat_sat_add(b->workspace, remat_sat_add(held, work));
        return;
    }
    /* ZeRO-1 shards one flat buffer: ceil(psi / n) elements a rank, its full copies padded to
     * n shards, as `remat train --zero 1` allocates them, so the bytes are exact for our GPT. */
    int shards = r->zero == 1 && o > 0; /* plain SGD has no states */
    uint64_t shard = ceil_div(psi, n), padded = shards ? shard * n : psi;
    b->weights = padded * w;
    b->gradients = padded * g;
    b->optimizer = r->zero >= 1 ? shard * o : psi * o;
}

/* Weights in the serving format (block linears and experts in r->quant, the rest in 16 bits),
 * each part split over tp tensor-parallel ranks; the split goes to out. */
static void inference_states(const remat_fit_request *r, remat_fit_bytes *b, remat_fit_result *out)
{
    fit_weights w;
    fit_weights_split(&r->model, r->quant, &w);
    uint64_t tp = (uint64_t)r->gpus;
    out->weights_quantized = ceil_div(w.quant_bytes, tp);
    out->weights_scales = ceil_div(w.scale_bytes, tp);
    out->weights_16bit = ceil_div(w.plain_bytes, tp);
    out->quant_params = w.quant_params;
    b->weights = out->weights_quantized + out->weights_16bit;
    b->gradients = b->optimizer = 0;
    b->workspace = FIT_WORKSPACE_BYTES;
}

/* Sets reserve to the CUDA context plus `allocator` bytes and sums the total. */
static void fit_sum(remat_fit_bytes *b, uint64_t allocator)
{
    const uint64_t parts[] = {b->gradients, b->optimizer, b->activations, b->kv_cache,
                              b->workspace};
    uint64_t managed = b->weights;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        managed = remat_sat_add(managed, parts[i]);
    b->reserve = remat_sat_add(FIT_CONTEXT_BYTES, allocator);
    b->total = remat_sat_add(managed, b->reserve);
}

/* Adds reserve (CUDA context + the assumed allocator slack) and sums the total; workspace is
 * set. For models our trainer does not run. */
static void fit_finish(remat_fit_bytes *b)
{
    const uint64_t parts[] = {b->weights,     b->gradients, b->optimizer,
                              b->activations, b->kv_cache,  b->workspace};
    uint64_t managed = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        managed = remat_sat_add(managed, parts[i]);
    fit_sum(b, managed / 1000 * FIT_SLACK_PERMILLE);
}

/* Largest activation bytes that still fit on the card next to the other parts of b (the assumed
 * slack's rule). */
static uint64_t act_budget_slack(const remat_fit_request *r, const remat_fit_bytes *states)
{
    remat_fit_bytes b = *states;
    b.activations = 0;
    fit_finish(&b);
    if (b.total > r->card_bytes)
        return 0;
    uint64_t lo = 0, hi = r->card_bytes - b.total; /* the slack only shrinks it */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        b.activations = mid;
        fit_finish(&b);
        if (b.total <= r->card_bytes)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* ==== Our GPT's pool ======================================================================= */
/* Our trainer's pool holds exactly this (model/trainer.c, checkpoint/executor.c): each state
 * buffer (parameters, gradients, each optimizer state, the targets) in a dedicated segment of its
 * size rounded up to 512 bytes, and the step's activations in one arena block of the planned
 * layout's size, from the caching path: a 2 MiB small segment up to 1 MiB, else a segment rounded
 * up to 2 MiB. So the allocator's part of the reserve is computed, not assumed. */

static int fit_exact_pool(const remat_fit_request *r)
{
    return r->model.arch == REMAT_ARCH_GPT2 && !r->model.params_only;
}

static uint64_t round_up_u64(uint64_t v, uint64_t to)
{
    return v % to ? remat_sat_add(v - v % to, to) : v;
}

/* Bytes of `bytes` held as n equal buffers (per-parameter arrays), each in its own segment,
 * beyond `bytes`. */
static uint64_t fit_buffers_rounding(uint64_t bytes, uint64_t n)
{
    if (n == 0 || bytes == 0)
        return 0;
    return remat_sat_mul(n, round_up_u64(ceil_div(bytes, n), POOL_ALIGN)) - bytes;
}

/* The states' segment rounding: weights and gradients are one buffer each, the optimizer one
 * fp32 array per state (AdamW m and v, the master copy, the momentum). */
static uint64_t fit_states_rounding(const remat_fit_request *r, const remat_fit_bytes *b)
{
    unsigned w, g, o;
    state_bytes_per_param(r, &w, &g, &o);
    uint64_t held, work; /* ZeRO-2/3's unit buffers: two more of their own */
    zero_unit_buffers(r, &held, &work);
    return fit_buffers_rounding(b->weights, 1) + fit_buffers_rounding(b->gradients, 1) +
           fit_buffers_rounding(b->optimizer, o / 4) + fit_buffers_rounding(held, 1) +
           fit_buffers_rounding(work, 1);
}

/* The segment the pool takes for an arena block of `arena` bytes (0 for none). */
static uint64_t fit_arena_segment(uint64_t arena)
{
    if (arena == 0)
        return 0;
    return arena <= POOL_SMALL_MAX ? POOL_SMALL_SEGMENT : round_up_u64(arena, POOL_SEGMENT_ROUND);
}

/* Our GPT's reserve: the context plus the states' and the arena's rounding; activations hold the
 * arena and `extra` (the targets, already 512-rounded). */
static void fit_finish_gpt(const remat_fit_request *r, remat_fit_bytes *b, uint64_t extra)
{
    uint64_t arena = b->activations > extra ? b->activations - extra : 0;
    fit_sum(b, fit_states_rounding(r, b) + (fit_arena_segment(arena) - arena));
}

/* The largest arena + extra whose segments fit beside the states, workspace and context: the
 * arena may take the whole room left, rounded down to the 2 MiB its segment is a multiple of. */
static uint64_t act_budget_gpt(const remat_fit_request *r, const remat_fit_bytes *states,
                               uint64_t extra)
{
    uint64_t need = remat_sat_add(FIT_CONTEXT_BYTES, states->workspace);
    need = remat_sat_add(need, remat_sat_add(states->weights, states->gradients));
    need = remat_sat_add(need, states->optimizer);
    need = remat_sat_add(remat_sat_add(need, fit_states_rounding(r, states)), extra);
    if (need >= r->card_bytes)
        return 0;
    uint64_t arena = (r->card_bytes - need) / POOL_SEGMENT_ROUND * POOL_SEGMENT_ROUND;
    return arena ? arena + extra : 0;
}

/* ==== Activation budget ==================================================================== */

static uint64_t fit_seq(const remat_fit_request *r)
{
    return r->seq > 0 ? (uint64_t)r->seq : (uint64_t)r->model.max_seq;
}

/* Largest activation bytes (the chain's peak plus the step's extra) a step at `batch` may hold. */
static uint64_t act_budget(const remat_fit_request *r, const remat_fit_bytes *states,
                           uint64_t batch)
{
    if (!fit_exact_pool(r))
        return act_budget_slack(r, states);
    return act_budget_gpt(r, states, fit_chain_extra_bytes(&r->model, batch, fit_seq(r)));
}

/* Sums the breakdown of a training step at `batch`. */
static void fit_finish_training(const remat_fit_request *r, remat_fit_bytes *b, uint64_t batch)
{
    if (fit_exact_pool(r))
        fit_finish_gpt(r, b, fit_chain_extra_bytes(&r->model, batch, fit_seq(r)));
    else
        fit_finish(b);
}

/* ==== Training activations ================================================================= */

static unsigned training_act_bytes(const remat_fit_request *r)
{
    return r->dtype == REMAT_DTYPE_FP32 ? 4 : 2;
}

/* The policy of the per_gpu breakdown: selective:req->option when set, else req->policy. */
static remat_status fit_breakdown_policy(const remat_fit_request *r, remat_policy *out)
{
    if (r->option[0] == '\0') {
        fit_act_policy(r->policy, out);
        return REMAT_OK;
    }
    char text[REMAT_POLICY_NAME_MAX];
    snprintf(text, sizeof text, "selective:%.*s", REMAT_POLICY_OPTION_MAX - 1, r->option);
    return remat_policy_parse(text, out);
}

/* req->option must be one the chain's stages have: the scheduler's own check, which names the
 * valid ones. (The presets' options are not checked: a chain without them plans as store-all.) */
static remat_status fit_check_option(const remat_fit_request *r, const remat_chain *c,
                                     const remat_policy *p)
{
    uint64_t least = 0;
    return r->option[0] ? remat_min_budget_layout(c, p, REMAT_LAYOUT_POOL, &least) : REMAT_OK;
}

/* Peak and overhead of fixed policy p on c: our GPT's planned arena of the policy's schedule (what
 * remat_run takes), else the closed-form live peak. */
static remat_status fixed_activations(const remat_fit_request *r, const remat_chain *c,
                                      const remat_policy *p, uint64_t *peak, double *ov)
{
    *peak = fit_chain_peak(c, p);
    *ov = fit_chain_overhead(c, p);
    /* the arena is at least the live peak: above the card, the batch search's huge probes (whose
     * chains the layout would refuse) cannot fit anyway */
    if (!fit_exact_pool(r) || *peak > r->card_bytes)
        return REMAT_OK;
    remat_schedule *s = NULL;
    REMAT_TRY(remat_plan(c, p, UINT64_MAX, &s)); /* the scheduler's schedule of p, laid out */
    *peak = s->peak_bytes;
    remat_schedule_free(s);
    return REMAT_OK;
}

/* Activation peak of policy p at `batch` (the chain's peak plus what the step holds beside it);
 * for optimal, the optimal schedule's peak within `budget` (its minimum when that is above the
 * budget) and its overhead. */
static remat_status training_activations(const remat_fit_request *r, const remat_policy *p,
                                         uint64_t batch, uint64_t budget, uint64_t *bytes,
                                         double *overhead)
{
    uint64_t extra = fit_chain_extra_bytes(&r->model, batch, fit_seq(r)), peak = 0;
    double ov = 0;
    remat_chain *c = NULL;
    REMAT_TRY(fit_chain_build(&r->model, batch, fit_seq(r), training_act_bytes(r), &c));
    remat_status s = REMAT_OK;
    if (p->kind != REMAT_POLICY_OPTIMAL) {
        s = fixed_activations(r, c, p, &peak, &ov);
    } else {
        s = fit_optimal_min_budget(c, &peak);
        if (s == REMAT_OK && peak + extra <= budget)
            s = fit_optimal_at(c, budget - extra, &peak, &ov);
    }
    fit_chain_free(c);
    *bytes = peak + extra;
    if (overhead)
        *overhead = ov;
    return s;
}

/* A lower bound of every schedule's peak: each stage's output and, at its backward, its saved
 * activations in the leanest option are live at some point. */
static uint64_t optimal_lower_bound(const remat_chain *c)
{
    uint64_t bound = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const remat_stage *st = &c->stages[i];
        uint64_t saved = st->saved_bytes;
        for (int k = 0; k < st->n_options; k++)
            saved = st->options[k].saved_bytes < saved ? st->options[k].saved_bytes : saved;
        uint64_t need = saved > st->out_bytes ? saved : st->out_bytes;
        bound = need > bound ? need : bound;
    }
    return bound;
}

/* Is optimal certain not to fit at `batch` (its lower bound above the budget)? Rules out the
 * batch search's huge probes, whose chains the scheduler would refuse (stages above 128 TiB). */
static remat_status optimal_hopeless(const remat_fit_request *r, uint64_t batch, uint64_t budget,
                                     int *hopeless)
{
    remat_chain *c = NULL;
    REMAT_TRY(fit_chain_build(&r->model, batch, fit_seq(r), training_act_bytes(r), &c));
    uint64_t extra = fit_chain_extra_bytes(&r->model, batch, fit_seq(r));
    *hopeless = optimal_lower_bound(c) + extra > budget;
    fit_chain_free(c);
    return REMAT_OK;
}

/* Does a step at `batch` under p fit? Optimal fits when the scheduler returns a schedule within
 * the budget (a lower bound, then its minimum budget, first rule out hopeless batches cheaply). */
static remat_status training_fits(const remat_fit_request *r, const remat_fit_bytes *states,
                                  const remat_policy *p, uint64_t batch, int *fits)
{
    uint64_t budget = act_budget(r, states, batch), act = 0;
    *fits = 0;
    if (budget == 0)
        return REMAT_OK;
    int hopeless = 0;
    if (p->kind == REMAT_POLICY_OPTIMAL)
        REMAT_TRY(optimal_hopeless(r, batch, budget, &hopeless));
    if (hopeless)
        return REMAT_OK;
    remat_status s = training_activations(r, p, batch, budget, &act, NULL);
    if (s == REMAT_EINFEASIBLE) {
        remat_clear_error();
        return REMAT_OK;
    }
    REMAT_TRY(s);
    *fits = act <= budget;
    return REMAT_OK;
}

/* Largest b in [0, hi] with fits(b), fits being monotone (more sequences never need less). */
typedef remat_status (*fit_probe)(const remat_fit_request *r, const remat_fit_bytes *states,
                                  int policy, uint64_t n, int *fits);

static remat_status largest_fitting(const remat_fit_request *r, const remat_fit_bytes *states,
                                    int policy, uint64_t hi, fit_probe probe, uint64_t *out)
{
    uint64_t lo = 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        int fits = 0;
        REMAT_TRY(probe(r, states, policy, mid, &fits));
        if (fits)
            lo = mid;
        else
            hi = mid - 1;
    }
    *out = lo;
    return REMAT_OK;
}

static remat_status training_probe(const remat_fit_request *r, const remat_fit_bytes *states,
                                   int policy, uint64_t batch, int *fits)
{
    remat_policy p;
    fit_act_policy((remat_act_policy)policy, &p);
    return training_fits(r, states, &p, batch, fits);
}

/* Every sequence needs at least its 8 bytes a token of inputs and targets. */
static uint64_t batch_ceiling(const remat_fit_request *r, uint64_t per_token)
{
    uint64_t b = r->card_bytes / remat_sat_mul(per_token, fit_seq(r)) + 1;
    return b > FIT_MAX_BATCH ? FIT_MAX_BATCH : b;
}

/* max_batch[p] and overhead[p] of policy p. */
static remat_status training_max_batch(const remat_fit_request *r, const remat_fit_bytes *states,
                                       remat_act_policy p, remat_fit_result *out)
{
    uint64_t best = 0, act = 0;
    REMAT_TRY(largest_fitting(r, states, p, batch_ceiling(r, 8), training_probe, &best));
    out->max_batch[p] = (long)best;
    if (best == 0)
        return REMAT_OK;
    remat_policy pol;
    fit_act_policy(p, &pol);
    return training_activations(r, &pol, best, act_budget(r, states, best), &act,
                                &out->overhead[p]);
}

/* Bytes one GPU sends a step under r's ZeRO stage (remat_fit_result.comm_bytes_per_step). */
static uint64_t training_comm_bytes(const remat_fit_request *r)
{
    uint64_t psi = fit_stored_params(&r->model), n = (uint64_t)r->gpus;
    if (n < 2)
        return 0;
    unsigned w, g, o;
    state_bytes_per_param(r, &w, &g, &o);
    uint64_t shard = ceil_div(psi, n);
    if (r->zero == 0)
        return remat_sat_mul(remat_sat_mul(2 * (n - 1), psi), g) / n;
    if (r->zero >= 2) /* every unit is reduced and gathered (ZeRO-3: twice, store-all) */
        shard = zero_unit_shard(&r->model, n);
    uint64_t gathers = r->zero >= 3 ? 2 : 1;
    return remat_sat_mul(remat_sat_mul(n - 1, shard), gathers * w + g);
}

static remat_status fit_training(const remat_fit_request *r, remat_fit_result *out)
{
    remat_fit_bytes *b = &out->per_gpu;
    training_states(r, b);
    out->comm_bytes_per_step = training_comm_bytes(r);
    if (r->model.params_only) {
        fit_finish(b);
        return REMAT_OK;
    }
    remat_fit_bytes states = *b;
    uint64_t budget = act_budget(r, &states, (uint64_t)r->batch);
    remat_policy pol;
    REMAT_TRY(fit_breakdown_policy(r, &pol));
    if (r->option[0]) {
        remat_chain *c = NULL;
        REMAT_TRY(fit_chain_build(&r->model, (uint64_t)r->batch, fit_seq(r),
                                   training_act_bytes(r), &c));
        remat_status s = fit_check_option(r, c, &pol);
        fit_chain_free(c);
        REMAT_TRY(s);
    }
    REMAT_TRY(training_activations(r, &pol, (uint64_t)r->batch, budget, &b->activations, NULL));
    fit_finish_training(r, b, (uint64_t)r->batch);
    for (int p = 0; p < REMAT_ACT_COUNT; p++) {
        remat_status s = training_max_batch(r, &states, (remat_act_policy)p, out);
        if (s != REMAT_OK && p == REMAT_ACT_OPTIMAL) {
            out->max_batch[p] = -1; /* the scheduler failed: optimal stays unplanned */
            out->overhead[p] = 0;
            remat_clear_error();
            continue;
        }
        REMAT_TRY(s);
    }
    return REMAT_OK;
}

/* ==== Inference ============================================================================ */

remat_status remat_kv_bytes_per_token(const remat_model_desc *m, remat_dtype kv, int tp,
                                      uint64_t *out)
{
    if (!m || !out || tp < 1)
        return remat_fail(REMAT_EINVAL, "remat_kv_bytes_per_token: needs a model, out and tp >= 1");
    REMAT_TRY(remat_model_validate(m)); /* a zeroed description has no heads to divide by */
    if (!is_float_type(kv) && kv != REMAT_DTYPE_FP8)
        return remat_fail(REMAT_EINVAL, "KV cache dtype %s: use fp32, bf16, fp16 or fp8",
                          remat_dtype_name(kv));
    uint64_t e = fit_dtype_bytes(kv), L = (uint64_t)m->layers;
    if (m->params_only) {
        *out = 0;
    } else if (m->arch == REMAT_ARCH_DEEPSEEK) {
        /* MLA caches the compressed latent and the shared RoPE key: one "head", replicated. */
        *out = L * (uint64_t)(m->kv_lora_rank + m->qk_rope_dim) * e;
    } else {
        uint64_t hd = m->head_dim ? (uint64_t)m->head_dim : (uint64_t)(m->hidden / m->heads);
        *out = 2 * L * ceil_div((uint64_t)m->kv_heads, (uint64_t)tp) * hd * e;
    }
    return REMAT_OK;
}

/* One forward of a prefill chunk: the residual and its normed copy, the wider of attention
 * projections and the MLP intermediates (split over tp), and fp32 logits of the last token of
 * each sequence (vocabulary split over tp). */
static uint64_t inference_activations(const remat_fit_request *r, uint64_t batch, uint64_t seq)
{
    const remat_model_desc *m = &r->model;
    uint64_t tokens = batch * seq, tp = (uint64_t)r->gpus;
    if (tokens > FIT_PREFILL_CHUNK)
        tokens = FIT_PREFILL_CHUNK > batch ? FIT_PREFILL_CHUNK : batch;
    uint64_t e = r->quant == REMAT_DTYPE_FP32 ? 4 : 2, h = (uint64_t)m->hidden;
    uint64_t hd = m->head_dim ? (uint64_t)m->head_dim : h / (uint64_t)m->heads, attn, mlp;
    if (m->arch == REMAT_ARCH_DEEPSEEK) {
        attn = (uint64_t)m->heads * (uint64_t)(m->qk_nope_dim + m->qk_rope_dim + m->v_head_dim);
        uint64_t moe = (uint64_t)(m->active_experts + m->shared_experts) * (uint64_t)m->moe_ffn;
        mlp = 3 * (moe > (uint64_t)m->ffn ? moe : (uint64_t)m->ffn);
    } else {
        attn = (uint64_t)(m->heads + 2 * m->kv_heads) * hd;
        mlp = (m->arch == REMAT_ARCH_GPT2 ? 2 : 3) * (uint64_t)m->ffn;
    }
    uint64_t wide = ceil_div(attn > mlp ? attn : mlp, tp);
    uint64_t vocab = ceil_div((uint64_t)m->padded_vocab, tp);
    return remat_sat_add(remat_sat_mul(tokens * e, 2 * h + wide), remat_sat_mul(batch, vocab * 4));
}

static void inference_at(const remat_fit_request *r, const remat_fit_bytes *states, uint64_t batch,
                         uint64_t seq, remat_fit_bytes *b)
{
    *b = *states;
    uint64_t per_token = 0;
    /* fit_check_inference accepted the request, so this cannot fail */
    (void)!remat_kv_bytes_per_token(&r->model, r->kv_dtype, r->gpus, &per_token);
    b->kv_cache = remat_sat_mul(remat_sat_mul(per_token, batch), seq); /* never wraps to small */
    b->activations = inference_activations(r, batch, seq);
    fit_finish(b);
}

static remat_status inference_probe_batch(const remat_fit_request *r, const remat_fit_bytes *states,
                                          int unused, uint64_t batch, int *fits)
{
    (void)unused;
    remat_fit_bytes b;
    inference_at(r, states, batch, fit_seq(r), &b);
    *fits = b.total <= r->card_bytes;
    return REMAT_OK;
}

static remat_status inference_probe_tokens(const remat_fit_request *r,
                                           const remat_fit_bytes *states, int unused,
                                           uint64_t tokens, int *fits)
{
    (void)unused;
    remat_fit_bytes b;
    inference_at(r, states, 1, tokens, &b);
    *fits = b.total <= r->card_bytes;
    return REMAT_OK;
}

static remat_status fit_inference(const remat_fit_request *r, remat_fit_result *out)
{
    remat_fit_bytes states = {0}; /* activations and KV cache stay 0 for a bare count */
    inference_states(r, &states, out);
    if (r->model.params_only) {
        out->per_gpu = states;
        fit_finish(&out->per_gpu);
        return REMAT_OK;
    }
    inference_at(r, &states, (uint64_t)r->batch, fit_seq(r), &out->per_gpu);
    uint64_t per_token = 0, best = 0;
    REMAT_TRY(remat_kv_bytes_per_token(&r->model, r->kv_dtype, r->gpus, &per_token));
    REMAT_TRY(
        largest_fitting(r, &states, 0, batch_ceiling(r, per_token), inference_probe_batch, &best));
    out->max_batch[0] = (long)best;
    uint64_t max_tokens = r->card_bytes / per_token + 1;
    REMAT_TRY(largest_fitting(r, &states, 0, max_tokens, inference_probe_tokens, &best));
    out->max_tokens = (long)best;
    return REMAT_OK;
}

/* ==== Entry point ========================================================================== */

remat_status remat_fit(const remat_fit_request *req, remat_fit_result *out)
{
    if (!req || !out)
        return remat_fail(REMAT_EINVAL, "remat_fit: req and out must not be NULL");
    REMAT_TRY(fit_check(req));
    memset(out, 0, sizeof *out);
    for (int p = 0; p < REMAT_ACT_COUNT; p++)
        out->max_batch[p] = -1;
    REMAT_TRY(remat_model_params(&req->model, &out->params, &out->active_params));
    remat_fit_request r = *req;
    if (r.model.head_dim == 0 && !r.model.params_only)
        r.model.head_dim = r.model.hidden / r.model.heads;
    if (r.seq == 0)
        r.seq = r.model.params_only ? 1 : r.model.max_seq;
    REMAT_TRY(r.inference ? fit_inference(&r, out) : fit_training(&r, out));
    if (out->per_gpu.total == UINT64_MAX)
        return remat_fail(REMAT_EINVAL,
                          "batch %d x seq %d needs more than 2^64 - 1 bytes per GPU (%s): no card "
                          "holds that; lower --batch or --seq",
                          r.batch, r.seq,
                          out->per_gpu.kv_cache == UINT64_MAX ? "KV cache" : "total");
    out->fits = out->per_gpu.total <= r.card_bytes;
    uint64_t fixed = FIT_CONTEXT_BYTES + out->per_gpu.workspace;
    out->pool_bytes = r.card_bytes > fixed ? r.card_bytes - fixed : 0;
    return REMAT_OK;
}

/* ==== Training from a measured chain (remat_fit_chain) ====================================== */
/* The model is known by its parameter count and by its chain measured at two batch sizes; the
 * chain at any batch is the line through the two. The request sits first in the probe's
 * context, so the generic batch search (largest_fitting) passes it through unchanged. */

typedef struct {
    remat_fit_request req; /* first: probes receive &ctx->req */
    const remat_chain *c1, *c2;
    uint64_t b1, b2;
} fit_chain_ctx;

/* v1 at b1, v2 at b2, evaluated at b, rounded up and clamped to [0, 2^48]. */
static long double fit_line(long double v1, long double v2, const fit_chain_ctx *x, uint64_t b)
{
    long double slope = (v2 - v1) / (long double)(x->b2 - x->b1);
    long double v = v1 + slope * ((long double)b - (long double)x->b1);
    if (v < 0)
        v = 0;
    return v > (long double)(1ull << 48) ? (long double)(1ull << 48) : v;
}

static uint64_t fit_line_bytes(uint64_t v1, uint64_t v2, const fit_chain_ctx *x, uint64_t b)
{
    return (uint64_t)ceill(fit_line((long double)v1, (long double)v2, x, b));
}

static remat_status fit_chain_at(const fit_chain_ctx *x, uint64_t b, remat_chain **out)
{
    const remat_chain *c1 = x->c1, *c2 = x->c2;
    remat_chain *c = NULL;
    REMAT_TRY(remat_chain_new(c1->n_stages, &c));
    memcpy(c->name, c1->name, sizeof c->name); /* the batch is the caller's business */
    c->input_bytes = fit_line_bytes(c1->input_bytes, c2->input_bytes, x, b);
    for (int i = 0; i < c1->n_stages; i++) {
        const remat_stage *s1 = &c1->stages[i], *s2 = &c2->stages[i];
        remat_stage *s = &c->stages[i];
        memcpy(s->name, s1->name, sizeof s->name);
        s->fwd = (double)fit_line(s1->fwd, s2->fwd, x, b);
        s->bwd = (double)fit_line(s1->bwd, s2->bwd, x, b);
        s->out_bytes = fit_line_bytes(s1->out_bytes, s2->out_bytes, x, b);
        s->saved_bytes = fit_line_bytes(s1->saved_bytes, s2->saved_bytes, x, b);
        if (s->saved_bytes < s->out_bytes)
            s->saved_bytes = s->out_bytes;
        s->fwd_tmp_bytes = fit_line_bytes(s1->fwd_tmp_bytes, s2->fwd_tmp_bytes, x, b);
        s->bwd_tmp_bytes = fit_line_bytes(s1->bwd_tmp_bytes, s2->bwd_tmp_bytes, x, b);
        if (s1->n_options == 0)
            continue;
        s->options = calloc((size_t)s1->n_options, sizeof *s->options);
        if (!s->options) {
            remat_chain_free(c);
            return remat_fail(REMAT_ENOMEM, "remat_fit_chain: out of host memory");
        }
        s->n_options = s1->n_options;
        for (int k = 0; k < s1->n_options; k++) {
            const remat_stage_option *o1 = &s1->options[k], *o2 = &s2->options[k];
            memcpy(s->options[k].name, o1->name, sizeof o1->name);
            s->options[k].saved_bytes = fit_line_bytes(o1->saved_bytes, o2->saved_bytes, x, b);
            s->options[k].bwd = (double)fit_line(o1->bwd, o2->bwd, x, b);
        }
    }
    *out = c;
    return REMAT_OK;
}

/* Does any stage carry the option selective policy p runs? */
static int fit_chain_has_option(const remat_chain *c, const remat_policy *p)
{
    for (int i = 0; i < c->n_stages; i++)
        if (remat_policy_stage_option(p, &c->stages[i]) != REMAT_OPTION_DEFAULT)
            return 1;
    return 0;
}

/* Activation peak (and overhead) of policy p at batch b, as training_activations does for the
 * analytic chain. */
static remat_status fit_chain_activations(const fit_chain_ctx *x, const remat_policy *p, uint64_t b,
                                          uint64_t budget, uint64_t *bytes, double *overhead)
{
    remat_chain *c = NULL;
    REMAT_TRY(fit_chain_at(x, b, &c));
    uint64_t peak = 0;
    double ov = 0;
    remat_status s = REMAT_OK;
    if (p->kind != REMAT_POLICY_OPTIMAL) {
        peak = fit_chain_peak(c, p);
        ov = fit_chain_overhead(c, p);
    } else if (optimal_lower_bound(c) > budget) {
        peak = UINT64_MAX; /* hopeless: skip the scheduler */
    } else {
        s = fit_optimal_min_budget(c, &peak);
        if (s == REMAT_OK && peak <= budget)
            s = fit_optimal_at(c, budget, &peak, &ov);
    }
    remat_chain_free(c);
    *bytes = peak;
    if (overhead)
        *overhead = ov;
    return s;
}

/* The activation bytes the card leaves: in our own pool the peak in one segment beside the
 * states' exact segments (nothing else is held beside the chain), else the assumed slack's rule. */
static uint64_t fit_chain_budget(const remat_fit_request *r, const remat_fit_bytes *states,
                                 uint64_t batch)
{
    return r->own_pool ? act_budget_gpt(r, states, 0) : act_budget(r, states, batch);
}

static void fit_chain_finish(const remat_fit_request *r, remat_fit_bytes *b)
{
    if (r->own_pool)
        fit_finish_gpt(r, b, 0);
    else
        fit_finish(b);
}

static remat_status fit_chain_probe(const remat_fit_request *r, const remat_fit_bytes *states,
                                    int policy, uint64_t batch, int *fits)
{
    const fit_chain_ctx *x = (const fit_chain_ctx *)r;
    uint64_t budget = fit_chain_budget(r, states, batch), act = 0;
    *fits = 0;
    if (budget == 0 || batch == 0)
        return REMAT_OK;
    remat_policy p;
    fit_act_policy((remat_act_policy)policy, &p);
    remat_status s = fit_chain_activations(x, &p, batch, budget, &act, NULL);
    if (s == REMAT_EINFEASIBLE) {
        remat_clear_error();
        return REMAT_OK;
    }
    REMAT_TRY(s);
    *fits = act <= budget;
    return REMAT_OK;
}

static remat_status fit_chain_check(const remat_fit_request *req, const remat_chain *c1,
                                    uint64_t b1, const remat_chain *c2, uint64_t b2)
{
    if (!c1 || !c2 || c1->n_stages < 1)
        return remat_fail(REMAT_EINVAL, "remat_fit_chain: needs two chains");
    if (b1 < 1 || b2 <= b1)
        return remat_fail(REMAT_EINVAL,
                          "remat_fit_chain: batch sizes %llu and %llu: need 1 <= b1 < b2",
                          (unsigned long long)b1, (unsigned long long)b2);
    if (c1->n_stages != c2->n_stages)
        return remat_fail(REMAT_EINVAL, "remat_fit_chain: the chains have %d and %d stages",
                          c1->n_stages, c2->n_stages);
    for (int i = 0; i < c1->n_stages; i++)
        if (c1->stages[i].n_options != c2->stages[i].n_options)
            return remat_fail(REMAT_EINVAL,
                              "remat_fit_chain: stage %d has %d options at batch %llu, %d at %llu",
                              i, c1->stages[i].n_options, (unsigned long long)b1,
                              c2->stages[i].n_options, (unsigned long long)b2);
    if (req->inference)
        return remat_fail(REMAT_EINVAL, "remat_fit_chain: plans training only");
    if (req->model.params_only == 0)
        return remat_fail(REMAT_EINVAL,
                          "remat_fit_chain: model.params_only must hold the parameter count");
    return fit_check(req);
}

remat_status remat_fit_chain(const remat_fit_request *req, const remat_chain *c1, uint64_t b1,
                             const remat_chain *c2, uint64_t b2, remat_fit_result *out)
{
    if (!req || !out)
        return remat_fail(REMAT_EINVAL, "remat_fit_chain: req and out must not be NULL");
    REMAT_TRY(fit_chain_check(req, c1, b1, c2, b2));
    memset(out, 0, sizeof *out);
    fit_chain_ctx x = {.req = *req, .c1 = c1, .c2 = c2, .b1 = b1, .b2 = b2};
    out->params = out->active_params = req->model.params_only;
    remat_fit_bytes *b = &out->per_gpu;
    training_states(&x.req, b);
    remat_fit_bytes states = *b;
    uint64_t budget = fit_chain_budget(&x.req, &states, (uint64_t)req->batch);
    remat_policy pol;
    REMAT_TRY(fit_breakdown_policy(req, &pol));
    REMAT_TRY(fit_check_option(req, c1, &pol));
    remat_status s =
        fit_chain_activations(&x, &pol, (uint64_t)req->batch, budget, &b->activations, NULL);
    if (s == REMAT_EINFEASIBLE) /* optimal at a batch that does not fit: report its minimum */
        remat_clear_error();
    else
        REMAT_TRY(s);
    fit_chain_finish(&x.req, b);
    out->fits = b->total <= req->card_bytes;
    /* Every sample adds at least its input and its output gradient. */
    uint64_t grow = fit_line_bytes(c1->input_bytes, c2->input_bytes, &x, 2) -
                    fit_line_bytes(c1->input_bytes, c2->input_bytes, &x, 1);
    uint64_t hi = grow ? req->card_bytes / grow + 1 : FIT_MAX_BATCH;
    hi = hi > FIT_MAX_BATCH ? FIT_MAX_BATCH : hi;
    for (int p = 0; p < REMAT_ACT_COUNT; p++) {
        out->max_batch[p] = -1;
        fit_act_policy((remat_act_policy)p, &pol);
        if (pol.kind == REMAT_POLICY_SELECTIVE && !fit_chain_has_option(c1, &pol))
            continue;
        uint64_t best = 0, act = 0;
        s = largest_fitting(&x.req, &states, p, hi, fit_chain_probe, &best);
        if (s == REMAT_OK && best > 0)
            s = fit_chain_activations(&x, &pol, best, budget, &act, &out->overhead[p]);
        if (s != REMAT_OK && p == REMAT_ACT_OPTIMAL) {
            remat_clear_error(); /* the scheduler failed: optimal stays unplanned */
            out->overhead[p] = 0;
            continue;
        }
        REMAT_TRY(s);
        out->max_batch[p] = (long)best;
    }
    uint64_t fixed = FIT_CONTEXT_BYTES + out->per_gpu.workspace;
    out->pool_bytes = req->card_bytes > fixed ? req->card_bytes - fixed : 0;
    return REMAT_OK;
}

/* tests/unit/test_fit.chain.c: remat_fit_chain (training fit from a chain measured at two batch
 * sizes) against an independent oracle: the chain built at each batch by hand, the policies'
 * schedules run through remat_simulate, and the card arithmetic of docs/planner.md (states
 * 16 B a parameter in fp32 AdamW, 64 MiB workspace, 426 MiB context, 2% slack) redone here. */
#include "remat.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((uint64_t)1 << 20)
#define N_STAGES 4

/* A chain at batch b: fixed + per-sample bytes, times per sample. Stage k keeps 3 + k units. */
static remat_chain *make_chain(uint64_t b, uint64_t fixed, int with_option)
{
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_new(N_STAGES, &c), REMAT_OK);
    snprintf(c->name, sizeof c->name, "hand");
    c->input_bytes = fixed + 4096 * b;
    for (int k = 0; k < N_STAGES; k++) {
        remat_stage *s = &c->stages[k];
        snprintf(s->name, sizeof s->name, "s%d", k);
        s->fwd = 1.0 * (double)b;
        s->bwd = 2.0 * (double)b;
        s->out_bytes = fixed + 65536 * b;
        s->saved_bytes = fixed + 65536 * b * (3 + (uint64_t)k);
        s->fwd_tmp_bytes = 8192 * b;
        s->bwd_tmp_bytes = 16384 * b;
        if (with_option) {
            s->options = calloc(1, sizeof *s->options);
            s->n_options = 1;
            snprintf(s->options[0].name, sizeof s->options[0].name, "recompute-act");
            s->options[0].saved_bytes = fixed + 65536 * b * 2;
            s->options[0].bwd = 2.5 * (double)b;
        }
    }
    return c;
}

static uint64_t simulate(const remat_chain *c, const remat_op *ops, size_t n)
{
    remat_sim_result r;
    cr_assert_eq(remat_simulate(c, ops, n, &r), REMAT_OK, "%s", remat_last_error());
    cr_assert(r.valid, "%s", r.why);
    return r.peak_bytes;
}

/* Store-all: F_all 0..n-1, B n-1..0. Full recompute: F_ck 0..n-2, then F_all i, B i downwards. */
static uint64_t oracle_peak(const remat_chain *c, int full)
{
    remat_op ops[4 * N_STAGES];
    size_t n = 0;
    if (!full) {
        for (int i = 0; i < N_STAGES; i++)
            ops[n++] = (remat_op){REMAT_OP_F_ALL, i, -1};
        for (int i = N_STAGES - 1; i >= 0; i--)
            ops[n++] = (remat_op){REMAT_OP_B, i, -1};
    } else {
        for (int i = 0; i < N_STAGES - 1; i++)
            ops[n++] = (remat_op){REMAT_OP_F_CK, i, -1};
        for (int i = N_STAGES - 1; i >= 0; i--) {
            ops[n++] = (remat_op){REMAT_OP_F_ALL, i, -1};
            ops[n++] = (remat_op){REMAT_OP_B, i, -1};
        }
    }
    return simulate(c, ops, n);
}

/* Does `act` bytes of activations fit on `card` next to fp32 AdamW states of `params`? */
static int oracle_fits(uint64_t card, uint64_t params, uint64_t act)
{
    uint64_t managed = 16 * params + 64 * MiB + act;
    return managed + 426 * MiB + managed / 1000 * 20 <= card;
}

static long oracle_max_batch(uint64_t card, uint64_t params, uint64_t fixed, int full)
{
    long best = 0;
    for (uint64_t b = 1;; b++) {
        remat_chain *c = make_chain(b, fixed, 0);
        int fits = oracle_fits(card, params, oracle_peak(c, full));
        remat_chain_free(c);
        if (!fits)
            return best;
        best = (long)b;
    }
}

static remat_fit_request request(uint64_t card, uint64_t params)
{
    remat_fit_request r;
    remat_fit_request_init(&r);
    r.model.params_only = params;
    r.card_bytes = card;
    return r;
}

static remat_fit_result fit(const remat_fit_request *r, uint64_t b1, uint64_t b2, uint64_t fixed,
                            int with_option)
{
    remat_chain *c1 = make_chain(b1, fixed, with_option), *c2 = make_chain(b2, fixed, with_option);
    remat_fit_result out;
    cr_assert_eq(remat_fit_chain(r, c1, b1, c2, b2, &out), REMAT_OK, "%s", remat_last_error());
    remat_chain_free(c1);
    remat_chain_free(c2);
    return out;
}

Test(fit_chain, fixed_policies_match_the_simulated_oracle)
{
    uint64_t card = 600 * MiB, params = 1000000, fixed = 0;
    remat_fit_request r = request(card, params);
    remat_fit_result out = fit(&r, 1, 2, fixed, 0);
    long sa = oracle_max_batch(card, params, fixed, 0), full = oracle_max_batch(card, params, 0, 1);
    cr_assert_gt(sa, 10);
    cr_assert_eq(out.max_batch[REMAT_ACT_STORE_ALL], sa);
    cr_assert_eq(out.max_batch[REMAT_ACT_FULL], full);
    cr_assert_gt(full, sa);
    cr_assert_eq(out.max_batch[REMAT_ACT_LLMC], -1); /* no stage has the option */
    cr_assert_eq(out.max_batch[REMAT_ACT_MEGATRON], -1);
    cr_assert_eq(out.per_gpu.weights, 4 * params);
    cr_assert_eq(out.per_gpu.optimizer, 8 * params);
    cr_assert_eq(out.params, params);
    /* per_gpu is at batch 1, store-all */
    remat_chain *c = make_chain(1, fixed, 0);
    cr_assert_eq(out.per_gpu.activations, oracle_peak(c, 0));
    remat_chain_free(c);
    cr_assert(out.fits);
}

/* In remat's own pool (own_pool): each state in a segment of its size rounded to 512 B (fp32
 * AdamW: weights, gradients, m and v of 4 B a parameter each), the activation peak in one
 * segment (2 MiB up to 1 MiB, else rounded up to 2 MiB), the 426 MiB context and 64 MiB
 * workspace, and no slack. */
static uint64_t oracle_round(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

static int oracle_fits_pool(uint64_t card, uint64_t params, uint64_t act)
{
    uint64_t states = 4 * oracle_round(4 * params, 512);
    uint64_t segment = act <= MiB ? 2 * MiB : oracle_round(act, 2 * MiB);
    return states + 64 * MiB + 426 * MiB + segment <= card;
}

Test(fit_chain, own_pool_computes_the_rounding_instead_of_the_slack)
{
    uint64_t card = 600 * MiB, params = 1000001; /* 4 B x params is not a multiple of 512 */
    remat_fit_request r = request(card, params);
    remat_fit_result slack = fit(&r, 1, 2, 0, 0);
    r.own_pool = 1;
    remat_fit_result out = fit(&r, 1, 2, 0, 0);
    for (int full = 0; full <= 1; full++) {
        long best = 0;
        for (uint64_t b = 1;; b++) {
            remat_chain *c = make_chain(b, 0, 0);
            int fits = oracle_fits_pool(card, params, oracle_peak(c, full));
            remat_chain_free(c);
            if (!fits)
                break;
            best = (long)b;
        }
        int p = full ? REMAT_ACT_FULL : REMAT_ACT_STORE_ALL;
        cr_assert_eq(out.max_batch[p], best, "policy %d: %ld, oracle %ld", p, out.max_batch[p],
                     best);
        cr_assert_gt(out.max_batch[p], slack.max_batch[p], "policy %d", p);
    }
    /* per_gpu at batch 1, store-all: the reserve is the context plus the states' and the
     * activation segment's rounding. */
    remat_chain *c = make_chain(1, 0, 0);
    uint64_t act = oracle_peak(c, 0);
    remat_chain_free(c);
    uint64_t rounding = 4 * (oracle_round(4 * params, 512) - 4 * params) +
                        (act <= MiB ? 2 * MiB : oracle_round(act, 2 * MiB)) - act;
    cr_assert_eq(out.per_gpu.activations, act);
    cr_assert_eq(out.per_gpu.reserve, 426 * MiB + rounding);
    cr_assert_eq(out.per_gpu.total, 16 * params + 64 * MiB + act + 426 * MiB + rounding);
}

Test(fit_chain, optimal_is_the_largest_batch_the_scheduler_fits)
{
    uint64_t card = 600 * MiB, params = 1000000;
    remat_fit_request r = request(card, params);
    remat_fit_result out = fit(&r, 1, 2, 0, 0);
    long opt = out.max_batch[REMAT_ACT_OPTIMAL];
    cr_assert_geq(opt, out.max_batch[REMAT_ACT_FULL]);
    /* At opt+1 even the least-memory schedule is beyond what the card leaves. */
    remat_policy p = {.kind = REMAT_POLICY_OPTIMAL};
    remat_chain *c = make_chain((uint64_t)opt + 1, 0, 0);
    uint64_t least = 0;
    cr_assert_eq(remat_min_budget(c, &p, &least), REMAT_OK, "%s", remat_last_error());
    cr_assert(!oracle_fits(card, params, least));
    remat_chain_free(c);
    c = make_chain((uint64_t)opt, 0, 0);
    cr_assert_eq(remat_min_budget(c, &p, &least), REMAT_OK);
    cr_assert(oracle_fits(card, params, least));
    remat_chain_free(c);
}

/* Chains measured at batches 3 and 7 with a batch-independent part give the answers of the
 * chains at 1 and 2: the line is exact for sizes affine in the batch. */
Test(fit_chain, affine_sizes_extrapolate_from_any_two_batches)
{
    uint64_t card = 600 * MiB, params = 2000000, fixed = 3 * MiB;
    remat_fit_request r = request(card, params);
    remat_fit_result a = fit(&r, 3, 7, fixed, 0), b = fit(&r, 1, 2, fixed, 0);
    for (int p = 0; p < REMAT_ACT_COUNT; p++)
        cr_assert_eq(a.max_batch[p], b.max_batch[p], "policy %d", p);
    cr_assert_eq(a.per_gpu.total, b.per_gpu.total);
    remat_chain *c = make_chain((uint64_t)a.max_batch[REMAT_ACT_STORE_ALL] + 1, fixed, 0);
    cr_assert(!oracle_fits(card, params, oracle_peak(c, 0)));
    remat_chain_free(c);
}

Test(fit_chain, a_selective_option_enables_that_policy)
{
    remat_fit_request r = request(600 * MiB, 1000000);
    remat_fit_result out = fit(&r, 1, 2, 0, 1);
    cr_assert_gt(out.max_batch[REMAT_ACT_LLMC], out.max_batch[REMAT_ACT_STORE_ALL]);
    cr_assert_gt(out.overhead[REMAT_ACT_LLMC], 0);
    cr_assert_eq(out.max_batch[REMAT_ACT_MEGATRON], -1);
}

Test(fit_chain, states_that_do_not_fit_give_zero)
{
    remat_fit_request r = request(600 * MiB, 100000000); /* 1.6 GB of states */
    remat_fit_result out = fit(&r, 1, 2, 0, 0);
    cr_assert_not(out.fits);
    for (int p = 0; p < REMAT_ACT_COUNT; p++)
        if (p != REMAT_ACT_LLMC && p != REMAT_ACT_MEGATRON)
            cr_assert_eq(out.max_batch[p], 0, "policy %d", p);
}

Test(fit_chain, bad_requests)
{
    remat_fit_request r = request(600 * MiB, 1000000);
    remat_chain *c1 = make_chain(1, 0, 0), *c2 = make_chain(2, 0, 0), *c3 = NULL;
    remat_fit_result out;
    cr_assert_eq(remat_fit_chain(&r, c1, 2, c2, 2, &out), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "need 1 <= b1 < b2"), "%s", remat_last_error());
    cr_assert_eq(remat_fit_chain(&r, c1, 0, c2, 2, &out), REMAT_EINVAL);
    cr_assert_eq(remat_chain_new(2, &c3), REMAT_OK);
    cr_assert_eq(remat_fit_chain(&r, c1, 1, c3, 2, &out), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "4 and 2 stages"), "%s", remat_last_error());
    remat_fit_request bad = r;
    bad.model.params_only = 0;
    cr_assert_eq(remat_fit_chain(&bad, c1, 1, c2, 2, &out), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "params_only"), "%s", remat_last_error());
    bad = r;
    bad.inference = 1;
    cr_assert_eq(remat_fit_chain(&bad, c1, 1, c2, 2, &out), REMAT_EINVAL);
    bad = r;
    bad.card_bytes = 0;
    cr_assert_eq(remat_fit_chain(&bad, c1, 1, c2, 2, &out), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "card size 0"), "%s", remat_last_error());
    cr_assert_eq(remat_fit_chain(NULL, c1, 1, c2, 2, &out), REMAT_EINVAL);
    remat_chain_free(c1);
    remat_chain_free(c2);
    remat_chain_free(c3);
}

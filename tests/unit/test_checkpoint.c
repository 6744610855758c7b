/* tests/unit/test_checkpoint.c: the checkpoint scheduler: simulator rules, every solver against
 * brute-force search and closed forms, the Pareto curve, and the chain loader. */
#include "tests/common/test_rng.h"
#include "checkpoint/checkpoint.h"
#include "remat.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== helpers ============================================================================== */

static uint64_t rng_state; /* tests/common/test_rng.h draws from it */

/* A random chain: sizes are multiples of `unit`, times small integers (exact in doubles). Some
 * stages get an option with fewer saved bytes and a dearer backward. */
static remat_chain *random_chain(int L, uint64_t unit, int with_options, int with_tmp)
{
    remat_chain *c;
    cr_assert_eq(remat_chain_new(L, &c), REMAT_OK);
    snprintf(c->name, sizeof c->name, "random%d", L);
    c->input_bytes = unit * (uint64_t)test_rng_int(&rng_state, 1, 6);
    for (int i = 0; i < L; i++) {
        remat_stage *s = &c->stages[i];
        snprintf(s->name, sizeof s->name, "s%d", i);
        s->fwd = test_rng_int(&rng_state, 1, 9);
        s->bwd = test_rng_int(&rng_state, 1, 18);
        s->out_bytes = unit * (uint64_t)test_rng_int(&rng_state, 1, 6);
        s->saved_bytes = s->out_bytes + unit * (uint64_t)test_rng_int(&rng_state, 0, 8);
        s->fwd_tmp_bytes = with_tmp ? unit * (uint64_t)test_rng_int(&rng_state, 0, 3) : 0;
        s->bwd_tmp_bytes = with_tmp ? unit * (uint64_t)test_rng_int(&rng_state, 0, 3) : 0;
        if (with_options && s->saved_bytes > s->out_bytes && test_rng_int(&rng_state, 0, 1)) {
            s->n_options = 1;
            s->options = calloc(1, sizeof *s->options);
            snprintf(s->options[0].name, sizeof s->options[0].name, "lean");
            s->options[0].saved_bytes = s->out_bytes + (s->saved_bytes - s->out_bytes) / 2;
            s->options[0].bwd = s->bwd + test_rng_int(&rng_state, 1, 4);
        }
    }
    return c;
}

static remat_chain *uniform_chain(int L, uint64_t act, uint64_t saved)
{
    remat_chain *c;
    cr_assert_eq(remat_chain_new(L, &c), REMAT_OK);
    c->input_bytes = act;
    for (int i = 0; i < L; i++) {
        c->stages[i].fwd = 1;
        c->stages[i].bwd = 2;
        c->stages[i].out_bytes = act;
        c->stages[i].saved_bytes = saved;
    }
    return c;
}

static remat_policy policy_of(const char *text)
{
    remat_policy p;
    cr_assert_eq(remat_policy_parse(text, &p), REMAT_OK, "%s", text);
    return p;
}

/* These tests check the cost model's byte accounting (peaks of a few bytes), so they plan without
 * an arena (REMAT_LAYOUT_POOL); the planned layout has its own tests (test_checkpoint_layout.c). */
static remat_status plan_pool(const remat_chain *c, const remat_policy *p, uint64_t budget,
                              remat_schedule **out)
{
    return remat_plan_layout(c, p, REMAT_LAYOUT_POOL, budget, out);
}

/* Store-all's peak in the cost model (no arena): the simulator's, by hand in the tests below. */
static uint64_t store_all_pool(const remat_chain *c)
{
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    remat_schedule *s = NULL;
    cr_assert_eq(plan_pool(c, &all, UINT64_MAX, &s), REMAT_OK, "%s", remat_last_error());
    uint64_t peak = s->peak_bytes;
    remat_schedule_free(s);
    return peak;
}

/* remat_store_all_peak, the 100% of percentage budgets, is what store-all needs under the
 * default planned layout: its arena, so that a plan at 100% always fits. */
static void check_store_all_reference(const remat_chain *c)
{
    remat_policy all = {.kind = REMAT_POLICY_STORE_ALL};
    uint64_t ref = 0;
    cr_assert_eq(remat_store_all_peak(c, &ref), REMAT_OK);
    cr_assert_geq(ref, store_all_pool(c));
    remat_schedule *s = NULL;
    cr_assert_eq(remat_plan(c, &all, ref, &s), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(s->peak_bytes, ref);
    remat_schedule_free(s);
}

static remat_status min_pool(const remat_chain *c, const remat_policy *p, uint64_t *out)
{
    return remat_min_budget_layout(c, p, REMAT_LAYOUT_POOL, out);
}

/* Simulates a plan's ops and checks they agree with the plan's own numbers and its budget. */
static void check_plan(const remat_chain *c, const remat_schedule *s, uint64_t budget)
{
    remat_sim_result r;
    cr_assert_eq(remat_simulate(c, s->ops, s->n_ops, &r), REMAT_OK);
    cr_assert(r.valid, "invalid at op %zu: %s", r.bad_op, r.why);
    cr_assert_leq(r.peak_bytes, budget);
    cr_assert_eq(r.peak_bytes, s->peak_bytes);
    cr_assert_float_eq(r.time, s->time, 1e-9);
}

/* ==== simulator ============================================================================= */

Test(simulate, store_all_peak_by_hand)
{
    /* a_0 = 10, stages: out 20/30, saved 50/70, tmps 0; d_2 = 30 live from the start.
     * F_all 0: 10 + 30 + 50 = 90; F_all 1: 90 + 70 = 160; B 1: 160 + d_1 (20) = 180;
     * after B 1: 10 + 50 + 20 = 80; B 0: 80 + d_0 (10) = 90. Peak 180. */
    remat_chain *c;
    cr_assert_eq(remat_chain_new(2, &c), REMAT_OK);
    c->input_bytes = 10;
    c->stages[0] = (remat_stage){.fwd = 1, .bwd = 2, .out_bytes = 20, .saved_bytes = 50};
    c->stages[1] = (remat_stage){.fwd = 3, .bwd = 4, .out_bytes = 30, .saved_bytes = 70};
    cr_assert_eq(store_all_pool(c), 180);
    check_store_all_reference(c);
    c->stages[1].bwd_tmp_bytes = 5;
    c->stages[0].fwd_tmp_bytes = 100; /* F_all 0: 10 + 30 + 50 + 100 = 190 */
    cr_assert_eq(store_all_pool(c), 190);
    check_store_all_reference(c);
    remat_chain_free(c);
}

Test(simulate, recompute_schedule_by_hand)
{
    /* 3 uniform stages, |a| = 1, |ā| = 3. F_ck 0 (a_0 + d_3 + a_1 = 3), F_n 1 (a_0 a_1 d_3 + a_2
     * = 4, then a_1 freed), F_all 2 (a_0 a_2 d_3 + 3 = 6), B 2 (6 + d_2 = 7; then a_0 d_2 = 2),
     * F_all 0 (2 + 3 = 5), F_all 1 (5 + 3 = 8), B 1 (8 + 1 = 9), B 0 (a_0 ā_1 d_1 + d_0 = 6). */
    remat_chain *c = uniform_chain(3, 1, 3);
    remat_op ops[] = {{REMAT_OP_F_CK, 0, -1}, {REMAT_OP_F_N, 1, -1},   {REMAT_OP_F_ALL, 2, -1},
                      {REMAT_OP_B, 2, -1},    {REMAT_OP_F_ALL, 0, -1}, {REMAT_OP_F_ALL, 1, -1},
                      {REMAT_OP_B, 1, -1},    {REMAT_OP_B, 0, -1}};
    remat_sim_result r;
    cr_assert_eq(remat_simulate(c, ops, 8, &r), REMAT_OK);
    cr_assert(r.valid, "%s", r.why);
    cr_assert_eq(r.peak_bytes, 9);
    cr_assert_float_eq(r.time, 5 * 1.0 + 3 * 2.0, 1e-12);
    remat_chain_free(c);
}

Test(simulate, invalid_schedules_are_named)
{
    remat_chain *c = uniform_chain(2, 4, 8);
    remat_sim_result r;
    remat_op b_first[] = {{REMAT_OP_B, 1, -1}};
    cr_assert_eq(remat_simulate(c, b_first, 1, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert_eq(r.bad_op, 0);
    remat_op wrong_order[] = {
        {REMAT_OP_F_ALL, 0, -1}, {REMAT_OP_F_ALL, 1, -1}, {REMAT_OP_B, 0, -1}};
    cr_assert_eq(remat_simulate(c, wrong_order, 3, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert_eq(r.bad_op, 2);
    remat_op plain_not_enough[] = {
        {REMAT_OP_F_CK, 0, -1}, {REMAT_OP_F_ALL, 1, -1}, {REMAT_OP_B, 1, -1}, {REMAT_OP_B, 0, -1}};
    cr_assert_eq(remat_simulate(c, plain_not_enough, 4, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert_eq(r.bad_op, 3, "%s", r.why);
    remat_op lost_input[] = {{REMAT_OP_F_N, 0, -1}, {REMAT_OP_F_ALL, 0, -1}};
    cr_assert_eq(remat_simulate(c, lost_input, 2, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert_eq(r.bad_op, 1);
    remat_op bad_option[] = {{REMAT_OP_F_ALL, 0, 0}};
    cr_assert_eq(remat_simulate(c, bad_option, 1, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert(strstr(r.why, "option"), "%s", r.why);
    remat_op incomplete[] = {{REMAT_OP_F_ALL, 0, -1}, {REMAT_OP_F_ALL, 1, -1}, {REMAT_OP_B, 1, -1}};
    cr_assert_eq(remat_simulate(c, incomplete, 3, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert_eq(r.bad_op, 3);
    remat_op after_end[] = {{REMAT_OP_F_ALL, 0, -1},
                            {REMAT_OP_F_ALL, 1, -1},
                            {REMAT_OP_B, 1, -1},
                            {REMAT_OP_B, 0, -1},
                            {REMAT_OP_F_CK, 0, -1}};
    cr_assert_eq(remat_simulate(c, after_end, 5, &r), REMAT_OK);
    cr_assert(!r.valid);
    cr_assert_eq(r.bad_op, 4);
    remat_op out_of_range[] = {{REMAT_OP_F_CK, 7, -1}};
    cr_assert_eq(remat_simulate(c, out_of_range, 1, &r), REMAT_OK);
    cr_assert(!r.valid);
    remat_chain_free(c);
}

Test(simulate, live_output_recompute_and_abar_input)
{
    /* F_n 1 on a_1 held inside ā_1 frees nothing; recomputing a live output costs time and
     * transient memory only; F_all over a plain a_{i+1} absorbs it. */
    remat_chain *c = uniform_chain(2, 2, 5);
    remat_op ops[] = {{REMAT_OP_F_ALL, 0, -1},
                      {REMAT_OP_F_N, 1, -1},
                      {REMAT_OP_F_ALL, 1, -1},
                      {REMAT_OP_B, 1, -1},
                      {REMAT_OP_B, 0, -1}};
    remat_sim_result r;
    cr_assert_eq(remat_simulate(c, ops, 5, &r), REMAT_OK);
    cr_assert(r.valid, "%s", r.why);
    /* a_0 2 + d_2 2 + ā_1 5 = 9; F_n 1 adds a_2 (2) transient -> 11 then a_2 kept (11);
     * F_all 1: 11 + 5 = 16, then a_2 absorbed: 14; B 1: 14 + 2 = 16. */
    cr_assert_eq(r.peak_bytes, 16);
    cr_assert_float_eq(r.time, 3 * 1.0 + 2 * 2.0, 1e-12);
    remat_chain_free(c);
}

/* ==== brute force =========================================================================== */

/* Exhaustive shortest-path search over every op sequence of a chain of up to 6 stages, under a
 * budget: states are what is live; the cost is time. An independent implementation of
 * checkpoint.md's rules. persistent = 1 restricts to schedules that never recompute a live output
 * and never free an activation once an op kept it (F_ck / F_all on it) before its B. */
enum { BF_NONE = 0, BF_PLAIN = 1, BF_KEPT = 2, BF_ABAR = 3 /* + variant */ };
#define BF_MAXL 6

typedef struct {
    const remat_chain *c;
    int L, base, persistent;
    uint64_t budget;
} bf_ctx;

static uint64_t bf_act(const remat_chain *c, int k)
{
    return k == 0 ? c->input_bytes : c->stages[k - 1].out_bytes;
}

static void bf_decode(const bf_ctx *b, long code, int st[], int *grad)
{
    for (int k = 0; k <= b->L; k++) {
        st[k] = (int)(code % b->base);
        code /= b->base;
    }
    *grad = (int)code;
}

static long bf_encode(const bf_ctx *b, const int st[], int grad)
{
    long code = grad;
    for (int k = b->L; k >= 0; k--)
        code = code * b->base + st[k];
    return code;
}

static uint64_t bf_mem(const bf_ctx *b, const int st[], int grad)
{
    uint64_t m = 0;
    for (int k = 0; k <= b->L; k++) {
        if (st[k] == BF_PLAIN || st[k] == BF_KEPT)
            m += bf_act(b->c, k);
        else if (st[k] >= BF_ABAR) {
            int v = st[k] - BF_ABAR;
            const remat_stage *s = &b->c->stages[k - 1];
            m += v == 0 ? s->saved_bytes : s->options[v - 1].saved_bytes;
        }
    }
    if (grad >= 0)
        m += bf_act(b->c, grad);
    return m;
}

/* Applies op (kind, i, variant); returns its time, or -1 if invalid / over budget. */
static double bf_apply(const bf_ctx *b, int st[], int *grad, int kind, int i, int v)
{
    const remat_stage *s = &b->c->stages[i];
    uint64_t mem = bf_mem(b, st, *grad);
    if (kind != REMAT_OP_B) {
        if (st[i] == BF_NONE || *grad <= i)
            return -1;
        int out_live = st[i + 1] != BF_NONE;
        uint64_t out = kind == REMAT_OP_F_ALL
                           ? (v == 0 ? s->saved_bytes : s->options[v - 1].saved_bytes)
                           : s->out_bytes;
        if (mem + out + s->fwd_tmp_bytes > b->budget)
            return -1;
        if (kind == REMAT_OP_F_ALL) {
            if (st[i + 1] >= BF_ABAR)
                return b->persistent ? -1 : s->fwd; /* transient recompute */
            st[i + 1] = BF_ABAR + v;
        } else if (!out_live)
            st[i + 1] = BF_PLAIN;
        else if (b->persistent)
            return -1;
        if (kind == REMAT_OP_F_N && (st[i] == BF_PLAIN || st[i] == BF_KEPT)) {
            if (b->persistent && st[i] == BF_KEPT)
                return -1;
            st[i] = BF_NONE;
        } else if (kind != REMAT_OP_F_N && st[i] == BF_PLAIN && b->persistent)
            st[i] = BF_KEPT;
        return s->fwd;
    }
    if (*grad != i + 1 || st[i + 1] < BF_ABAR || st[i] == BF_NONE)
        return -1;
    if (mem + bf_act(b->c, i) + s->bwd_tmp_bytes > b->budget)
        return -1;
    int var = st[i + 1] - BF_ABAR;
    st[i + 1] = BF_NONE;
    if (st[i] == BF_PLAIN || st[i] == BF_KEPT)
        st[i] = BF_NONE;
    *grad = i;
    return var == 0 ? s->bwd : s->options[var - 1].bwd;
}

/* Dijkstra over states (a binary heap of (time, code)); returns the least time or DBL_MAX. */
typedef struct {
    double t;
    long code;
} bf_item;

static void bf_push(bf_item *h, size_t *n, bf_item it)
{
    size_t k = (*n)++;
    h[k] = it;
    while (k > 0 && h[(k - 1) / 2].t > h[k].t) {
        bf_item tmp = h[k];
        h[k] = h[(k - 1) / 2];
        h[(k - 1) / 2] = tmp;
        k = (k - 1) / 2;
    }
}

static bf_item bf_pop(bf_item *h, size_t *n)
{
    bf_item top = h[0];
    h[0] = h[--(*n)];
    size_t k = 0;
    for (;;) {
        size_t l = 2 * k + 1, r = l + 1, m = k;
        if (l < *n && h[l].t < h[m].t)
            m = l;
        if (r < *n && h[r].t < h[m].t)
            m = r;
        if (m == k)
            break;
        bf_item tmp = h[k];
        h[k] = h[m];
        h[m] = tmp;
        k = m;
    }
    return top;
}

static double brute_force(const remat_chain *c, uint64_t budget, int persistent)
{
    bf_ctx b = {c, c->n_stages, BF_ABAR + 1, persistent, budget};
    for (int i = 0; i < c->n_stages; i++)
        if (BF_ABAR + 1 + c->stages[i].n_options > b.base)
            b.base = BF_ABAR + 1 + c->stages[i].n_options;
    long n_states = 1;
    for (int k = 0; k <= b.L; k++)
        n_states *= b.base;
    n_states *= b.L + 1;
    double *dist = malloc((size_t)n_states * sizeof *dist);
    size_t cap = 1 << 14, n = 0;
    bf_item *heap = malloc(cap * sizeof *heap);
    cr_assert(dist && heap);
    for (long k = 0; k < n_states; k++)
        dist[k] = DBL_MAX;
    int st[BF_MAXL + 1] = {0}, grad = b.L;
    st[0] = BF_PLAIN;
    double best = DBL_MAX;
    if (bf_mem(&b, st, grad) <= budget) {
        long start = bf_encode(&b, st, grad);
        dist[start] = 0;
        bf_push(heap, &n, (bf_item){0, start});
    }
    while (n > 0) {
        bf_item it = bf_pop(heap, &n);
        if (it.t > dist[it.code])
            continue;
        bf_decode(&b, it.code, st, &grad);
        if (grad == 0) {
            best = it.t;
            break;
        }
        for (int i = 0; i < b.L; i++)
            for (int kind = 0; kind < 4; kind++) {
                int nv = kind == REMAT_OP_F_ALL ? c->stages[i].n_options + 1 : 1;
                for (int v = 0; v < nv; v++) {
                    int s2[BF_MAXL + 1], g2 = grad;
                    memcpy(s2, st, sizeof s2);
                    double dt = bf_apply(&b, s2, &g2, kind, i, v);
                    if (dt < 0)
                        continue;
                    long code = bf_encode(&b, s2, g2);
                    if (it.t + dt < dist[code]) {
                        dist[code] = it.t + dt;
                        if (n == cap) {
                            cap *= 2;
                            heap = realloc(heap, cap * sizeof *heap);
                            cr_assert(heap);
                        }
                        bf_push(heap, &n, (bf_item){it.t + dt, code});
                    }
                }
            }
    }
    free(dist);
    free(heap);
    return best;
}

Test(optimal, matches_exhaustive_search_up_to_6_stages, .timeout = 120)
{
    test_rng_seed(&rng_state, 42);
    int cases = 0, gaps = 0;
    double worst_gap = 0;
    for (int trial = 0; trial < 36; trial++) {
        int L = 1 + trial % 6;
        remat_chain *c = random_chain(L, 512, trial % 3 != 0, trial % 2 == 0);
        remat_policy opt = policy_of("optimal");
        uint64_t lo, hi;
        cr_assert_eq(min_pool(c, &opt, &lo), REMAT_OK);
        cr_assert_eq(remat_store_all_peak(c, &hi), REMAT_OK);
        for (int k = 0; k <= 4; k++) {
            uint64_t budget = lo + (hi > lo ? (hi - lo) * (uint64_t)k / 4 : 0);
            budget -= budget % 512;
            double persistent = brute_force(c, budget, 1);
            double unrestricted = brute_force(c, budget, 0);
            cr_assert_leq(unrestricted, persistent);
            remat_schedule *s = NULL;
            remat_status st = plan_pool(c, &opt, budget, &s);
            if (persistent == DBL_MAX) {
                cr_assert_eq(st, REMAT_EINFEASIBLE, "L=%d budget %llu", L,
                             (unsigned long long)budget);
                continue;
            }
            cr_assert_eq(st, REMAT_OK, "L=%d budget %llu: %s", L, (unsigned long long)budget,
                         remat_last_error());
            check_plan(c, s, budget);
            cr_assert_leq(s->time, persistent + 1e-9, "L=%d budget %llu: dp %g > persistent %g", L,
                          (unsigned long long)budget, s->time, persistent);
            cr_assert_geq(s->time, unrestricted - 1e-9);
            double gap = s->time / unrestricted - 1.0;
            if (gap > 1e-12)
                gaps++;
            if (gap > worst_gap)
                worst_gap = gap;
            cases++;
            remat_schedule_free(s);
        }
        remat_chain_free(c);
    }
    fprintf(stderr,
            "exhaustive: %d feasible cases; optimal persistent = unrestricted optimum in "
            "%d, slower in %d (worst +%.1f%%)\n",
            cases, cases - gaps, gaps, 100 * worst_gap);
    cr_assert_gt(cases, 100);
}

Test(optimal, minimum_budget_is_tight)
{
    test_rng_seed(&rng_state, 7);
    for (int trial = 0; trial < 12; trial++) {
        remat_chain *c = random_chain(1 + trial % 5, 512, 1, 1);
        remat_policy opt = policy_of("optimal");
        uint64_t lo;
        cr_assert_eq(min_pool(c, &opt, &lo), REMAT_OK);
        remat_schedule *s = NULL;
        cr_assert_eq(plan_pool(c, &opt, lo, &s), REMAT_OK, "%s", remat_last_error());
        check_plan(c, s, lo);
        remat_schedule_free(s);
        cr_assert_eq(plan_pool(c, &opt, lo - 1, &s), REMAT_EINFEASIBLE);
        char want[64];
        snprintf(want, sizeof want, "%llu bytes", (unsigned long long)lo);
        cr_assert(strstr(remat_last_error(), want), "%s", remat_last_error());
        cr_assert_eq(brute_force(c, lo - 1, 1), DBL_MAX);
        remat_chain_free(c);
    }
}

/* ==== all policies on long chains ============================================================ */

static const char *all_policies[] = {"store-all",  "sqrt",    "periodic:2", "periodic:3",
                                     "periodic:5", "revolve", "optimal"};

Test(policies, random_chains_up_to_64_stages, .timeout = 120)
{
    test_rng_seed(&rng_state, 1234);
    int lengths[] = {1, 2, 3, 7, 12, 20, 33, 48, 64};
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        int L = lengths[li];
        remat_chain *c = random_chain(L, 4096, li % 2, li % 3 != 1);
        uint64_t all;
        cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
        for (int pct = 30; pct <= 100; pct += 35) {
            uint64_t budget = all * (uint64_t)pct / 100;
            budget -= budget % 4096; /* exact: a common unit, few slots */
            double best_other = DBL_MAX;
            remat_schedule *opt = NULL;
            for (size_t p = 0; p < sizeof all_policies / sizeof *all_policies; p++) {
                remat_policy pol = policy_of(all_policies[p]);
                remat_schedule *s = NULL;
                remat_status st = plan_pool(c, &pol, budget, &s);
                uint64_t min;
                cr_assert_eq(min_pool(c, &pol, &min), REMAT_OK);
                if (st == REMAT_EINFEASIBLE) {
                    cr_assert_gt(min, budget, "%s L=%d", all_policies[p], L);
                    continue;
                }
                cr_assert_eq(st, REMAT_OK, "%s: %s", all_policies[p], remat_last_error());
                cr_assert_leq(min, budget);
                check_plan(c, s, budget);
                if (pol.kind == REMAT_POLICY_OPTIMAL)
                    opt = s;
                else {
                    if (s->time < best_other)
                        best_other = s->time;
                    remat_schedule_free(s);
                }
            }
            if (best_other < DBL_MAX) {
                cr_assert(opt, "optimal infeasible where another policy fits (L=%d)", L);
                cr_assert_leq(opt->time, best_other + 1e-9, "L=%d pct=%d", L, pct);
            }
            remat_schedule_free(opt);
        }
        remat_chain_free(c);
    }
}

Test(policies, inexact_slots_never_exceed_budget)
{
    test_rng_seed(&rng_state, 99);
    for (int trial = 0; trial < 10; trial++) {
        int L = 5 + trial * 6;
        remat_chain *c = random_chain(L, 1, 1, 1);
        for (int i = 0; i < L; i++) { /* odd sizes: no useful common unit */
            c->stages[i].out_bytes = c->stages[i].out_bytes * 100003 + 17;
            c->stages[i].saved_bytes = c->stages[i].saved_bytes * 100003 + 29;
            for (int k = 0; k < c->stages[i].n_options; k++)
                c->stages[i].options[k].saved_bytes = c->stages[i].saved_bytes - 5;
        }
        uint64_t all, min;
        remat_policy opt = policy_of("optimal");
        opt.slots = 20 + trial * 30;
        cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
        cr_assert_eq(min_pool(c, &opt, &min), REMAT_OK);
        for (int k = 0; k <= 6; k++) {
            uint64_t budget = min + (all - min) * (uint64_t)k / 6;
            remat_schedule *s = NULL;
            cr_assert_eq(plan_pool(c, &opt, budget, &s), REMAT_OK, "%s", remat_last_error());
            check_plan(c, s, budget);
            /* rounding may cost the DP time, but never below what a heuristic fits */
            for (size_t p = 0; p + 1 < sizeof all_policies / sizeof *all_policies; p++) {
                remat_policy pol = policy_of(all_policies[p]);
                remat_schedule *h = NULL;
                if (plan_pool(c, &pol, budget, &h) != REMAT_OK)
                    continue;
                cr_assert_leq(s->time, h->time + 1e-9, "%s at L=%d", all_policies[p], L);
                remat_schedule_free(h);
            }
            remat_schedule_free(s);
        }
        remat_chain_free(c);
    }
}

Test(curve, monotone_and_consistent_with_plans)
{
    test_rng_seed(&rng_state, 5);
    for (int trial = 0; trial < 6; trial++) {
        remat_chain *c = random_chain(4 + trial * 8, 4096, trial % 2, 1);
        remat_curve_point *pts = NULL;
        size_t n = 0;
        remat_policy opt = policy_of("optimal");
        cr_assert_eq(remat_curve(c, &opt, &pts, &n), REMAT_OK, "%s", remat_last_error());
        cr_assert_geq(n, 1);
        uint64_t min;
        cr_assert_eq(min_pool(c, &opt, &min), REMAT_OK);
        cr_assert_eq(pts[0].peak_bytes, min);
        for (size_t i = 1; i < n; i++) {
            cr_assert_gt(pts[i].peak_bytes, pts[i - 1].peak_bytes);
            cr_assert_lt(pts[i].time, pts[i - 1].time);
        }
        double base = 0;
        for (int i = 0; i < c->n_stages; i++)
            base += c->stages[i].fwd + c->stages[i].bwd;
        for (size_t i = 0; i < n;
             i += 1 + n / 7) { /* each point is what a plan at its budget gets */
            remat_schedule *s = NULL;
            cr_assert_eq(plan_pool(c, &opt, pts[i].budget_bytes, &s), REMAT_OK);
            cr_assert_float_eq(s->time, pts[i].time, 1e-9, "point %zu", i);
            cr_assert_float_eq(pts[i].overhead, pts[i].time / base - 1, 1e-12);
            remat_schedule_free(s);
        }
        free(pts);
        remat_chain_free(c);
    }
}

/* With inexact units a plan at a point's budget is made on a finer grid than the curve's table
 * and may differ from the point either way; it must still fit and be valid. How often it is
 * slower is reported (docs/checkpoint.md quotes it). */
Test(curve, inexact_units_plans_at_each_point_fit)
{
    test_rng_seed(&rng_state, 17);
    int points = 0, slower = 0;
    double worst = 0;
    for (int trial = 0; trial < 4; trial++) {
        int L = 6 + trial * 9;
        remat_chain *c = random_chain(L, 1, 1, 1);
        for (int i = 0; i < L; i++) { /* odd sizes: slots are not exact */
            c->stages[i].out_bytes = c->stages[i].out_bytes * 100003 + 7;
            c->stages[i].saved_bytes = c->stages[i].saved_bytes * 100003 + 11;
            for (int k = 0; k < c->stages[i].n_options; k++)
                c->stages[i].options[k].saved_bytes = c->stages[i].saved_bytes - 3;
        }
        remat_curve_point *pts = NULL;
        size_t n = 0;
        cr_assert_eq(remat_curve(c, NULL, &pts, &n), REMAT_OK, "%s", remat_last_error());
        remat_policy opt = policy_of("optimal");
        for (size_t i = 0; i < n; i++) {
            if (i > 0) {
                cr_assert_gt(pts[i].peak_bytes, pts[i - 1].peak_bytes);
                cr_assert_lt(pts[i].time, pts[i - 1].time);
            }
            remat_schedule *s = NULL;
            cr_assert_eq(plan_pool(c, &opt, pts[i].budget_bytes, &s), REMAT_OK);
            check_plan(c, s, pts[i].budget_bytes);
            points++;
            if (s->time > pts[i].time + 1e-9) {
                slower++;
                worst = fmax(worst, s->time / pts[i].time - 1);
            }
            remat_schedule_free(s);
        }
        free(pts);
        remat_chain_free(c);
    }
    fprintf(stderr,
            "inexact curve: %d points; the plan at a point's budget is slower in %d (worst "
            "+%.1f%%)\n",
            points, slower, 100 * worst);
}

/* ==== revolve, periodic, sqrt against closed forms and hand counts =========================== */

/* Forward ops of the best binomial schedule by brute-force recursion (independent of the closed
 * form): P(1, c) = 1, P(l, 1) = l(l+1)/2, P(l, c) = min_j j + P(l-j, c-1) + P(j, c). */
static uint64_t revolve_brute(int l, int c, uint64_t memo[][41])
{
    if (memo[l][c])
        return memo[l][c];
    uint64_t best;
    if (l == 1)
        best = 1;
    else if (c == 1)
        best = (uint64_t)l * (uint64_t)(l + 1) / 2;
    else {
        best = UINT64_MAX;
        for (int j = 1; j < l; j++) {
            uint64_t v =
                (uint64_t)j + revolve_brute(l - j, c - 1, memo) + revolve_brute(j, c, memo);
            if (v < best)
                best = v;
        }
    }
    return memo[l][c] = best;
}

static int count_forwards(const ckpt_oplist *l)
{
    int n = 0;
    for (size_t k = 0; k < l->n; k++)
        n += l->ops[k].kind != REMAT_OP_B;
    return n;
}

Test(revolve, binomial_closed_form)
{
    static uint64_t memo[41][41];
    for (int L = 1; L <= 40; L++)
        for (int snaps = 1; snaps <= L; snaps++) {
            uint64_t closed = ckpt_revolve_forwards((uint64_t)L, (uint64_t)snaps);
            cr_assert_eq(closed, revolve_brute(L, snaps, memo), "L=%d snaps=%d", L, snaps);
            remat_chain *c = uniform_chain(L, 8, 24);
            ckpt_oplist l = {0};
            cr_assert_eq(ckpt_build_revolve(c, snaps, &l), REMAT_OK);
            cr_assert_eq((uint64_t)count_forwards(&l), closed, "L=%d snaps=%d", L, snaps);
            remat_sim_result r;
            cr_assert_eq(remat_simulate(c, l.ops, l.n, &r), REMAT_OK);
            cr_assert(r.valid, "L=%d snaps=%d: %s", L, snaps, r.why);
            ckpt_oplist_free(&l);
            remat_chain_free(c);
        }
    /* Griewank's example: 10 steps, 3 snapshots, r = 2: 10 + 20 - C(5, 4) = 25 forwards. */
    cr_assert_eq(ckpt_revolve_forwards(10, 3), 25);
}

Test(revolve, plan_uses_the_most_checkpoints_that_fit)
{
    remat_chain *c = uniform_chain(20, 8, 24);
    remat_policy rv = policy_of("revolve");
    uint64_t all, min;
    cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
    cr_assert_eq(min_pool(c, &rv, &min), REMAT_OK);
    double last = DBL_MAX;
    for (uint64_t b = min; b <= all; b += 8) {
        remat_schedule *s = NULL;
        cr_assert_eq(plan_pool(c, &rv, b, &s), REMAT_OK);
        check_plan(c, s, b);
        cr_assert_leq(s->time, last); /* more memory never makes it slower */
        last = s->time;
        remat_schedule_free(s);
    }
    remat_schedule *s = NULL;
    cr_assert_eq(plan_pool(c, &rv, min - 1, &s), REMAT_EINFEASIBLE);
    remat_chain_free(c);
}

Test(periodic, hand_computed_peaks)
{
    /* 4 uniform stages, |a| = 1, |ā| = 3, fwd 1, bwd 2. periodic:2 keeps a_0, a_2.
     * Forward: F_ck 0 (a_0 d_4 + a_1 = 3), F_n 1 (+a_2 = 4, then 3: a_0 a_2 d_4), F_all 2 (6),
     * F_all 3 (9), B 3 (10), B 2 (a_0 a_2 ā_3 d_3 + d_2 = 1+1+3+1+1 = 7), then a_0 d_2 = 2;
     * F_all 0 (5), F_all 1 (8), B 1 (9), B 0 (a_0 ā_1 d_1 + d_0 = 6). Peak 10, time 6 + 8. */
    remat_chain *c = uniform_chain(4, 1, 3);
    remat_policy p2 = policy_of("periodic:2");
    remat_schedule *s = NULL;
    cr_assert_eq(plan_pool(c, &p2, 100, &s), REMAT_OK);
    cr_assert_eq(s->peak_bytes, 10);
    cr_assert_float_eq(s->time, 14, 1e-12);
    cr_assert_float_eq(s->overhead, 14.0 / 12 - 1, 1e-12);
    remat_schedule_free(s);
    /* sqrt(4) = 2: the same plan. store-all: a_0 d_4 + 4*3 = 14, B 3: +1 = 15. */
    remat_policy sq = policy_of("sqrt");
    cr_assert_eq(plan_pool(c, &sq, 100, &s), REMAT_OK);
    cr_assert_eq(s->peak_bytes, 10);
    remat_schedule_free(s);
    cr_assert_eq(store_all_pool(c), 15);
    check_store_all_reference(c);
    cr_assert_eq(plan_pool(c, &p2, 9, &s), REMAT_EINFEASIBLE);
    cr_assert(strstr(remat_last_error(), "(10 bytes)"), "%s", remat_last_error());
    remat_chain_free(c);
}

Test(periodic, sqrt_period)
{
    cr_assert_eq(ckpt_sqrt_period(1), 1);
    cr_assert_eq(ckpt_sqrt_period(4), 2);
    cr_assert_eq(ckpt_sqrt_period(5), 3);
    cr_assert_eq(ckpt_sqrt_period(9), 3);
    cr_assert_eq(ckpt_sqrt_period(10), 4);
    cr_assert_eq(ckpt_sqrt_period(64), 8);
}

/* ==== policies and JSON =========================================================================
 */

Test(policy, parse_and_name_round_trip)
{
    const char *ok[] = {"optimal", "store-all", "sqrt", "revolve", "periodic:4"};
    for (size_t i = 0; i < 5; i++) {
        remat_policy p = policy_of(ok[i]);
        char buf[32];
        cr_assert_str_eq(remat_policy_name(&p, buf, sizeof buf), ok[i]);
    }
    const char *bad[] = {"",    "opt", "periodic:", "periodic:0", "periodic:-3", "periodic:2x",
                         "SQRT"};
    for (size_t i = 0; i < 7; i++) {
        remat_policy p;
        cr_assert_eq(remat_policy_parse(bad[i], &p), REMAT_EINVAL, "%s", bad[i]);
    }
}

Test(plan_json, shape_and_option_names)
{
    remat_chain *c = uniform_chain(2, 4, 8);
    c->stages[1].n_options = 1;
    c->stages[1].options = calloc(1, sizeof(remat_stage_option));
    snprintf(c->stages[1].options[0].name, 48, "lean");
    c->stages[1].options[0].saved_bytes = 4;
    c->stages[1].options[0].bwd = 3;
    remat_schedule s = {0};
    remat_op ops[] = {
        {REMAT_OP_F_ALL, 0, -1}, {REMAT_OP_F_ALL, 1, 0}, {REMAT_OP_B, 1, -1}, {REMAT_OP_B, 0, -1}};
    s.ops = ops;
    s.n_ops = 4;
    s.policy = policy_of("optimal");
    s.budget_bytes = 100;
    s.feasible = 1;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(remat_schedule_write_json(&s, c, f), REMAT_OK);
    fclose(f);
    cr_assert(strstr(buf, "{\"policy\": \"optimal\", \"budget_bytes\": 100, \"feasible\": true, "
                          "\"peak_bytes\": 0"),
              "%s", buf);
    cr_assert(strstr(buf, "\"ops\": [{\"op\": \"F_all\", \"stage\": 0, \"option\": \"default\"}, "
                          "{\"op\": \"F_all\", \"stage\": 1, \"option\": \"lean\"}, "
                          "{\"op\": \"B\", \"stage\": 1}"),
              "%s", buf);
    free(buf);
    remat_chain_free(c);
}

/* ==== loader ================================================================================== */

static remat_status parse(const char *json, remat_chain **c)
{
    *c = NULL;
    return remat_chain_parse(json, strlen(json), c);
}

Test(chain, parse_save_load_round_trip)
{
    const char *json =
        "{ \"name\": \"gpt-tiny\", \"input_bytes\": 2048, \"stages\": ["
        "{ \"name\": \"block0\", \"fwd\": 1.5, \"bwd\": 2.0, \"out_bytes\": 65536, "
        "\"saved_bytes\": 720896, \"fwd_tmp_bytes\": 10, \"bwd_tmp_bytes\": 20, \"options\": "
        "[ { \"name\": \"recompute-gelu\", \"saved_bytes\": 458752, \"bwd\": 2.1 } ] },"
        "{ \"fwd\": 0.25, \"bwd\": 0.5, \"out_bytes\": 4, \"saved_bytes\": 4 } ] }";
    remat_chain *c;
    cr_assert_eq(parse(json, &c), REMAT_OK, "%s", remat_last_error());
    cr_assert_str_eq(c->name, "gpt-tiny");
    cr_assert_eq(c->n_stages, 2);
    cr_assert_eq(c->stages[0].saved_bytes, 720896);
    cr_assert_eq(c->stages[0].bwd_tmp_bytes, 20);
    cr_assert_eq(c->stages[0].n_options, 1);
    cr_assert_str_eq(c->stages[0].options[0].name, "recompute-gelu");
    cr_assert_str_eq(c->stages[1].name, "stage1");
    cr_assert_eq(c->stages[1].fwd_tmp_bytes, 0);
    char path[] = "/tmp/remat-chain-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(remat_chain_save(c, path), REMAT_OK);
    remat_chain *d;
    cr_assert_eq(remat_chain_load(path, &d), REMAT_OK, "%s", remat_last_error());
    cr_assert_str_eq(d->name, c->name);
    cr_assert_eq(d->input_bytes, c->input_bytes);
    cr_assert_eq(d->stages[0].options[0].saved_bytes, 458752);
    cr_assert_eq(d->stages[0].fwd, 1.5);
    cr_assert_eq(d->stages[0].options[0].bwd, 2.1);
    unlink(path);
    remat_chain_free(c);
    remat_chain_free(d);
}

Test(chain, validation_names_the_field)
{
    struct {
        const char *json, *field;
    } bad[] = {
        {"{", "malformed"},
        {"[]", "top level"},
        {"{\"input_bytes\": 4}", "stages"},
        {"{\"input_bytes\": 4, \"stages\": []}", "empty"},
        {"{\"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, \"saved_bytes\": 4}]}",
         "input_bytes"},
        {"{\"input_bytes\": 4, \"stages\": [{\"bwd\": 1, \"out_bytes\": 4, \"saved_bytes\": 4}]}",
         "stages[0].fwd"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": -1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 4}]}",
         "stages[0].fwd"},
        {"{\"input_bytes\": -4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 4}]}",
         "input_bytes"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 4}, {\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 8, \"saved_bytes\": 4}]}",
         "stages[1].saved_bytes"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4.5, "
         "\"saved_bytes\": 8}]}",
         "stages[0].out_bytes"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1e999, \"out_bytes\": 4, "
         "\"saved_bytes\": 8}]}",
         "stages[0].bwd"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": \"1\", \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 8}]}",
         "stages[0].fwd"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 8, \"options\": [{\"name\": \"a\", \"saved_bytes\": 4, \"bwd\": 2}, "
         "{\"name\": \"a\", \"saved_bytes\": 6, \"bwd\": 2}]}]}",
         "stages[0].options[1].name"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 8, \"options\": [{\"name\": \"a\", \"saved_bytes\": 2, \"bwd\": 2}]}]}",
         "stages[0].options[0].saved_bytes"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 8, \"options\": [{\"saved_bytes\": 6, \"bwd\": 2}]}]}",
         "stages[0].options[0].name"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 8, \"options\": [{\"name\": \"lean\", \"saved_bytes\": 6}]}]}",
         "stages[0].options[0].bwd"},
        {"{\"input_bytes\": 4, \"stages\": [{\"fwd\": 1, \"bwd\": 1, \"out_bytes\": 4, "
         "\"saved_bytes\": 8, \"options\": [{\"name\": \"default\", \"saved_bytes\": 6, "
         "\"bwd\": 2}]}]}",
         "stages[0].options[0].name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        remat_chain *c;
        cr_assert_eq(parse(bad[i].json, &c), REMAT_EPARSE, "case %zu", i);
        cr_assert_null(c);
        cr_assert(strstr(remat_last_error(), bad[i].field), "case %zu: '%s' lacks '%s'", i,
                  remat_last_error(), bad[i].field);
    }
    remat_chain *c;
    cr_assert_eq(remat_chain_load("/nonexistent/chain.json", &c), REMAT_EIO);
}

Test(chain, new_and_bad_arguments)
{
    remat_chain *c;
    cr_assert_eq(remat_chain_new(0, &c), REMAT_EINVAL);
    cr_assert_eq(remat_chain_new(3, &c), REMAT_OK);
    cr_assert_eq(c->n_stages, 3);
    cr_assert_eq(c->stages[2].saved_bytes, 0);
    remat_sim_result r;
    cr_assert_eq(remat_simulate(c, NULL, 0, &r), REMAT_OK);
    cr_assert(!r.valid);
    c->stages[1].out_bytes = 5; /* saved_bytes 0 < out_bytes */
    cr_assert_eq(remat_simulate(c, NULL, 0, &r), REMAT_EPARSE);
    remat_chain_free(c);
    remat_chain_free(NULL);
}

/* ==== limits: no chain the loader accepts may hang a solver or exhaust memory ================= */

Test(limits, optimal_refuses_chains_above_its_stage_limit_up_front, .timeout = 60)
{
    remat_chain *c = uniform_chain(1001, 1 << 20, 4 << 20);
    remat_policy opt = policy_of("optimal");
    uint64_t min = 0;
    remat_schedule *s = NULL;
    cr_assert_eq(remat_min_budget(c, &opt, &min), REMAT_EUNSUPPORTED);
    cr_expect(strstr(remat_last_error(), "at most 1000"), "%s", remat_last_error());
    cr_assert_eq(remat_plan(c, &opt, UINT64_MAX / 2, &s), REMAT_EUNSUPPORTED);
    cr_assert_null(s);
    remat_chain_free(c);
    c = uniform_chain(1000, 1 << 20, 4 << 20); /* the limit itself is solved */
    cr_assert_eq(remat_min_budget(c, &opt, &min), REMAT_OK, "%s", remat_last_error());
    remat_chain_free(c);
}

/* Revolve with one checkpoint on L stages is L(L+1)/2 forwards: 50 million ops at 10,000 stages.
 * It uses enough checkpoints to stay within 2^23 ops, decided before building. */
Test(limits, revolve_schedule_length_is_bounded, .timeout = 120)
{
    remat_chain *c = uniform_chain(10000, 1 << 20, 4 << 20);
    remat_policy rev = policy_of("revolve");
    uint64_t min = 0;
    cr_assert_eq(remat_min_budget(c, &rev, &min), REMAT_OK, "%s", remat_last_error());
    remat_schedule *s = NULL;
    cr_assert_eq(remat_plan(c, &rev, min, &s), REMAT_OK, "%s", remat_last_error());
    cr_expect_leq(s->n_ops, (size_t)1 << 23);
    check_plan(c, s, min);
    /* the fewest checkpoints within the limit: 2, so 3 stored inputs at most plus the work */
    cr_expect_leq(s->peak_bytes, (uint64_t)(3 + 4 + 2) << 20, "peak %llu",
                  (unsigned long long)s->peak_bytes);
    remat_schedule_free(s);
    remat_chain_free(c);
}

Test(chain, trailing_data_duplicate_keys_and_huge_times_are_refused)
{
    static const struct {
        const char *json, *why;
    } bad[] = {
        {"{\"input_bytes\": 8, \"stages\": [{\"fwd\": 1, \"bwd\": 2, \"out_bytes\": 8, "
         "\"saved_bytes\": 8}]} x",
         "after the JSON value at byte 87"},
        {"{\"input_bytes\": 8, \"stages\": [{\"fwd\": 1, \"bwd\": 2, \"out_bytes\": 8, "
         "\"saved_bytes\": 8, \"bwd\": 3}]}",
         "stages[0]: duplicate key 'bwd'"},
        {"{\"input_bytes\": 8, \"stages\": [{\"fwd\": 1, \"bwd\": 2, \"out_bytes\": 8, "
         "\"saved_bytes\": 8}], \"stages\": []}",
         "chain: duplicate key 'stages'"},
        {"{\"input_bytes\": 8, \"stages\": [{\"fwd\": 1e308, \"bwd\": 1e308, \"out_bytes\": 8, "
         "\"saved_bytes\": 8}, {\"fwd\": 1e308, \"bwd\": 2, \"out_bytes\": 8, \"saved_bytes\": "
         "8}]}",
         "the times are too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        remat_chain *c = NULL;
        cr_assert_eq(remat_chain_parse(bad[i].json, strlen(bad[i].json), &c), REMAT_EPARSE,
                     "case %zu", i);
        cr_assert_null(c);
        cr_expect(strstr(remat_last_error(), bad[i].why), "case %zu: '%s' lacks '%s'", i,
                  remat_last_error(), bad[i].why);
    }
    /* white space after the value is fine */
    const char *ok = "{\"input_bytes\": 8, \"stages\": [{\"fwd\": 1, \"bwd\": 2, \"out_bytes\": 8, "
                     "\"saved_bytes\": 8}]}\n \t\n";
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_parse(ok, strlen(ok), &c), REMAT_OK, "%s", remat_last_error());
    remat_chain_free(c);
}

/* checkpoint/solvers.c: policies (parse, name), the heuristic solvers (store-all, periodic, sqrt,
 * revolve), remat_plan and its companions, and the plan JSON. */
#include "checkpoint/checkpoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The longest schedule any policy builds (12 bytes an op: 100 MB). */
#define CKPT_MAX_OPS (1 << 23)

/* ==== policies ============================================================================= */

/* The fixed presets: a name standing for a selective policy. */
static const struct {
    const char *name, *option;
} policy_presets[] = {
    {"llmc-selective", "recompute-gelu"},     /* llm.c's default recompute=1 */
    {"megatron-selective", "recompute-attn"}, /* Korthikanti et al., selective recompute */
};

#define POLICY_EXPECTED                                                                            \
    "optimal, store-all, sqrt, periodic:K, revolve, full-recompute, selective:OPTION, "            \
    "llmc-selective or megatron-selective"

/* A stage option's name as a selective policy takes it: 1 to 47 of [A-Za-z0-9_.-]. */
static int policy_option_ok(const char *o)
{
    size_t n = strlen(o);
    if (n == 0 || n >= REMAT_POLICY_OPTION_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = o[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static remat_status policy_selective(const char *text, const char *option, remat_policy *out)
{
    if (!policy_option_ok(option))
        return remat_fail(REMAT_EINVAL,
                          "bad policy '%s': selective:OPTION needs a stage option's name (1 to "
                          "%d letters, digits, '-', '_' or '.'), e.g. selective:recompute-gelu",
                          text, REMAT_POLICY_OPTION_MAX - 1);
    out->kind = REMAT_POLICY_SELECTIVE;
    memcpy(out->option, option, strlen(option) + 1);
    return REMAT_OK;
}

remat_status remat_policy_parse(const char *text, remat_policy *out)
{
    if (!text || !out)
        return remat_fail(REMAT_EINVAL, "remat_policy_parse: text and out must not be NULL");
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof policy_presets / sizeof *policy_presets; i++)
        if (strcmp(text, policy_presets[i].name) == 0)
            return policy_selective(text, policy_presets[i].option, out);
    if (strcmp(text, "optimal") == 0)
        out->kind = REMAT_POLICY_OPTIMAL;
    else if (strcmp(text, "store-all") == 0)
        out->kind = REMAT_POLICY_STORE_ALL;
    else if (strcmp(text, "sqrt") == 0)
        out->kind = REMAT_POLICY_SQRT;
    else if (strcmp(text, "revolve") == 0)
        out->kind = REMAT_POLICY_REVOLVE;
    else if (strcmp(text, "full-recompute") == 0)
        out->kind = REMAT_POLICY_FULL_RECOMPUTE;
    else if (strncmp(text, "selective:", 10) == 0)
        return policy_selective(text, text + 10, out);
    else if (strncmp(text, "periodic:", 9) == 0) {
        char *end = NULL;
        long k = strtol(text + 9, &end, 10);
        if (text[9] < '0' || text[9] > '9' || *end || k < 1 || k > 1000000)
            return remat_fail(REMAT_EINVAL, "bad policy '%s': periodic:K needs a whole K >= 1",
                              text);
        out->kind = REMAT_POLICY_PERIODIC;
        out->period = (int)k;
    } else
        return remat_fail(REMAT_EINVAL, "unknown policy '%s' (expected " POLICY_EXPECTED ")",
                          text);
    return REMAT_OK;
}

const char *remat_policy_name(const remat_policy *p, char *buf, size_t n)
{
    if (!buf || n == 0)
        return "";
    switch (p ? p->kind : REMAT_POLICY_OPTIMAL) {
    case REMAT_POLICY_STORE_ALL: snprintf(buf, n, "store-all"); break;
    case REMAT_POLICY_PERIODIC: snprintf(buf, n, "periodic:%d", p->period); break;
    case REMAT_POLICY_SQRT: snprintf(buf, n, "sqrt"); break;
    case REMAT_POLICY_REVOLVE: snprintf(buf, n, "revolve"); break;
    case REMAT_POLICY_OPTIMAL: snprintf(buf, n, "optimal"); break;
    case REMAT_POLICY_FULL_RECOMPUTE: snprintf(buf, n, "full-recompute"); break;
    case REMAT_POLICY_SELECTIVE:
        snprintf(buf, n, "selective:%.*s", REMAT_POLICY_OPTION_MAX - 1, p->option);
        break;
    default: snprintf(buf, n, "unknown"); break;
    }
    return buf;
}

int remat_policy_stage_option(const remat_policy *p, const remat_stage *s)
{
    if (!p || !s || p->kind != REMAT_POLICY_SELECTIVE)
        return REMAT_OPTION_DEFAULT;
    /* the MLP activation recompute: GPT chains call it recompute-gelu, generic ones recompute-act */
    const char *alias = strcmp(p->option, "recompute-gelu") == 0 ? "recompute-act" : NULL;
    for (int k = 0; k < s->n_options; k++)
        if (strncmp(s->options[k].name, p->option, sizeof p->option) == 0)
            return k;
    for (int k = 0; alias && k < s->n_options; k++)
        if (strcmp(s->options[k].name, alias) == 0)
            return k;
    return REMAT_OPTION_DEFAULT;
}

static remat_status solver_check_policy(const remat_policy *p)
{
    if (!p)
        return remat_fail(REMAT_EINVAL, "policy must not be NULL");
    if (p->kind < REMAT_POLICY_STORE_ALL || p->kind > REMAT_POLICY_FULL_RECOMPUTE)
        return remat_fail(REMAT_EINVAL, "unknown policy kind %d", (int)p->kind);
    if (p->kind == REMAT_POLICY_PERIODIC && p->period < 1)
        return remat_fail(REMAT_EINVAL, "periodic:K needs K >= 1, got %d", p->period);
    if (p->kind == REMAT_POLICY_SELECTIVE &&
        (!memchr(p->option, 0, sizeof p->option) || !policy_option_ok(p->option)))
        return remat_fail(REMAT_EINVAL, "selective policy: option '%.*s' is not a stage option's "
                                        "name (NUL-terminated, under %d bytes)",
                          REMAT_POLICY_OPTION_MAX - 1, p->option, REMAT_POLICY_OPTION_MAX);
    if (p->slots < 0 || p->slots > 1000000)
        return remat_fail(REMAT_EINVAL, "slots must be in [1, 1000000] (0 = default 500), got %d",
                          p->slots);
    return REMAT_OK;
}

remat_status ckpt_check_policy_chain(const remat_chain *c, const remat_policy *p)
{
    REMAT_TRY(solver_check_policy(p));
    if (p->kind != REMAT_POLICY_SELECTIVE)
        return REMAT_OK;
    for (int i = 0; i < c->n_stages; i++)
        if (remat_policy_stage_option(p, &c->stages[i]) != REMAT_OPTION_DEFAULT)
            return REMAT_OK;
    /* the chain's distinct option names, in the order the stages list them */
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < c->n_stages; i++)
        for (int k = 0; k < c->stages[i].n_options; k++) {
            const char *name = c->stages[i].options[k].name;
            int seen = 0;
            for (int j = 0; j <= i && !seen; j++)
                for (int q = 0; q < c->stages[j].n_options && !seen; q++)
                    if ((j < i || q < k) && strncmp(c->stages[j].options[q].name, name,
                                                    sizeof c->stages[j].options[q].name) == 0)
                        seen = 1;
            if (!seen && used < sizeof list) {
                int w = snprintf(list + used, sizeof list - used, "%s%.*s", used ? ", " : "",
                                 (int)sizeof c->stages[i].options[k].name, name);
                used += w > 0 ? (size_t)w : 0;
            }
        }
    if (used == 0)
        return remat_fail(REMAT_EINVAL,
                          "policy selective:%s: chain '%s' has no stage options, so no selective "
                          "policy applies",
                          p->option, c->name);
    return remat_fail(REMAT_EINVAL,
                      "policy selective:%s: no stage of chain '%s' has option '%s' (valid "
                      "options: %s)",
                      p->option, c->name, p->option, list);
}

/* ==== store-all, periodic, sqrt ============================================================= */

/* F_all s..e-1 then B e-1..s: one segment stored whole and reversed. */
static void solver_segment(ckpt_oplist *l, int s, int e)
{
    for (int k = s; k < e; k++)
        ckpt_push(l, REMAT_OP_F_ALL, k, -1);
    for (int k = e - 1; k >= s; k--)
        ckpt_push(l, REMAT_OP_B, k, -1);
}

void ckpt_build_store_all(const remat_chain *c, ckpt_oplist *l)
{
    solver_segment(l, 0, c->n_stages);
}

/* Store-all with every stage's forward under the option p names. */
void ckpt_build_selective(const remat_chain *c, const remat_policy *p, ckpt_oplist *l)
{
    for (int k = 0; k < c->n_stages; k++)
        ckpt_push(l, REMAT_OP_F_ALL, k, remat_policy_stage_option(p, &c->stages[k]));
    for (int k = c->n_stages - 1; k >= 0; k--)
        ckpt_push(l, REMAT_OP_B, k, -1);
}

/* Keeps every K-th input a_0, a_K, a_2K, ... in the forward sweep, stores the last segment
 * whole, then recomputes each earlier segment from its checkpoint and reverses it. */
void ckpt_build_periodic(const remat_chain *c, int period, ckpt_oplist *l)
{
    int L = c->n_stages, K = period < 1 ? 1 : period;
    int last = ((L - 1) / K) * K;
    for (int s = 0; s < last; s += K) {
        ckpt_push(l, REMAT_OP_F_CK, s, -1);
        for (int k = s + 1; k < s + K; k++)
            ckpt_push(l, REMAT_OP_F_N, k, -1);
    }
    solver_segment(l, last, L);
    for (int s = last - K; s >= 0; s -= K)
        solver_segment(l, s, s + K);
}

int ckpt_sqrt_period(int n_stages)
{
    int k = (int)ceil(sqrt((double)n_stages));
    while (k > 1 && (k - 1) * (k - 1) >= n_stages)
        k--;
    while (k * k < n_stages)
        k++;
    return k < 1 ? 1 : k;
}

/* ==== revolve ================================================================================ */

/* C(n, k), saturating at UINT64_MAX. */
static uint64_t revolve_binom(uint64_t n, uint64_t k)
{
    if (k > n)
        return 0;
    if (k > n - k)
        k = n - k;
    unsigned __int128 r = 1;
    for (uint64_t i = 1; i <= k; i++) {
        r = r * (n - k + i) / i;
        if (r > UINT64_MAX)
            return UINT64_MAX;
    }
    return (uint64_t)r;
}

/* Forward ops of the binomial schedule of l stages with `snaps` checkpoints (Griewank's
 * closed form plus one taping forward per stage): l + r*l - C(snaps + r, snaps + 1), where r is
 * the smallest integer with C(snaps + r, snaps) >= l. */
uint64_t ckpt_revolve_forwards(uint64_t l, uint64_t snaps)
{
    if (l <= 1)
        return l;
    uint64_t r = 1;
    while (revolve_binom(snaps + r, snaps) < l)
        r++;
    return l + r * l - revolve_binom(snaps + r, snaps + 1);
}

/* The fewest checkpoints whose binomial schedule of l stages stays within CKPT_MAX_OPS ops (its
 * forwards plus l backwards): with one checkpoint it has l(l+1)/2 forwards, 450 million ops at
 * 30,000 stages, so revolve uses at least this many. */
static int revolve_min_snaps(int l)
{
    int snaps = 1;
    while (snaps < l && ckpt_revolve_forwards((uint64_t)l, (uint64_t)snaps) + (uint64_t)l >
                            (uint64_t)CKPT_MAX_OPS)
        snaps++;
    return snaps;
}

/* Forwards of the schedule that first advances j stages of len (with snaps checkpoints). */
static uint64_t revolve_cost(int len, int snaps, int j)
{
    return (uint64_t)j + ckpt_revolve_forwards((uint64_t)(len - j), (uint64_t)snaps - 1) +
           ckpt_revolve_forwards((uint64_t)j, (uint64_t)snaps);
}

/* The first split j in [1, len) whose schedule has the fewest (best) forwards. The cost is convex
 * in j, so a bisection on its slope finds it in O(log len) costs instead of len (30,000 stages
 * took minutes); should a chain ever break convexity, the scan decides. */
static int revolve_split(int len, int snaps, uint64_t best)
{
    int lo = 1, hi = len - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (revolve_cost(len, snaps, mid) <= revolve_cost(len, snaps, mid + 1))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (revolve_cost(len, snaps, lo) == best &&
        (lo == 1 || revolve_cost(len, snaps, lo - 1) > best))
        return lo;
    for (int j = 1; j < len; j++)
        if (revolve_cost(len, snaps, j) == best)
            return j;
    return 1;
}

/* Reverses stages s..t-1 with a_s live and `snaps` checkpoints (a_s's included). */
static void revolve_emit(ckpt_oplist *l, int s, int t, int snaps)
{
    int len = t - s;
    if (len == 1) {
        solver_segment(l, s, t);
        return;
    }
    if (snaps == 1) {
        for (int j = t - 1; j >= s; j--) {
            if (j > s)
                ckpt_push(l, REMAT_OP_F_CK, s, -1);
            for (int k = s + 1; k < j; k++)
                ckpt_push(l, REMAT_OP_F_N, k, -1);
            solver_segment(l, j, j + 1);
        }
        return;
    }
    uint64_t best = ckpt_revolve_forwards((uint64_t)len, (uint64_t)snaps);
    int split = revolve_split(len, snaps, best);
    ckpt_push(l, REMAT_OP_F_CK, s, -1);
    for (int k = s + 1; k < s + split; k++)
        ckpt_push(l, REMAT_OP_F_N, k, -1);
    revolve_emit(l, s + split, t, snaps - 1);
    revolve_emit(l, s, s + split, snaps);
}

remat_status ckpt_build_revolve(const remat_chain *c, int snaps, ckpt_oplist *l)
{
    if (snaps < 1)
        return remat_fail(REMAT_EINVAL, "revolve needs at least 1 checkpoint, got %d", snaps);
    if (snaps < revolve_min_snaps(c->n_stages)) /* checked before building, not by running out */
        return remat_fail(REMAT_EUNSUPPORTED,
                          "revolve with %d checkpoints on %d stages exceeds the limit of %d ops",
                          snaps, c->n_stages, CKPT_MAX_OPS);
    revolve_emit(l, 0, c->n_stages, snaps > c->n_stages ? c->n_stages : snaps);
    return l->oom ? remat_fail(REMAT_ENOMEM, "revolve schedule: out of memory") : REMAT_OK;
}

/* ==== planning ============================================================================== */

/* Simulates l; fails with EINTERNAL if a solver produced an invalid schedule. */
static remat_status solver_simulate(const remat_chain *c, const ckpt_oplist *l, remat_sim_result *r)
{
    if (l->oom)
        return remat_fail(REMAT_ENOMEM, "schedule of chain '%s': out of memory", c->name);
    REMAT_TRY(remat_simulate(c, l->ops, l->n, r));
    if (!r->valid)
        return remat_fail(REMAT_EINTERNAL, "solver produced an invalid schedule: op %zu: %s",
                          r->bad_op, r->why);
    return REMAT_OK;
}

static remat_status solver_fixed(const remat_chain *c, const remat_policy *p, ckpt_oplist *l)
{
    if (p->kind == REMAT_POLICY_STORE_ALL)
        ckpt_build_store_all(c, l);
    else if (p->kind == REMAT_POLICY_SELECTIVE)
        ckpt_build_selective(c, p, l);
    else if (p->kind == REMAT_POLICY_PERIODIC)
        ckpt_build_periodic(c, p->period, l);
    else if (p->kind == REMAT_POLICY_FULL_RECOMPUTE)
        ckpt_build_periodic(c, 1, l); /* every input kept: each stage recomputed once */
    else
        ckpt_build_periodic(c, ckpt_sqrt_period(c->n_stages), l);
    return l->oom ? remat_fail(REMAT_ENOMEM, "schedule: out of memory") : REMAT_OK;
}

/* Peak of the revolve schedule with `snaps` checkpoints. */
static remat_status revolve_peak(const remat_chain *c, int snaps, uint64_t *peak)
{
    ckpt_oplist l = {0};
    remat_sim_result r;
    remat_status s = ckpt_build_revolve(c, snaps, &l);
    if (s == REMAT_OK)
        s = solver_simulate(c, &l, &r);
    ckpt_oplist_free(&l);
    if (s == REMAT_OK)
        *peak = r.peak_bytes;
    return s;
}

/* The most checkpoints whose revolve schedule fits the budget (binary search: the peak grows with
 * the number of checkpoints); 0 if even one does not fit. */
static remat_status revolve_snaps_for(const remat_chain *c, uint64_t budget, int *out)
{
    uint64_t peak;
    int least = revolve_min_snaps(c->n_stages);
    REMAT_TRY(revolve_peak(c, least, &peak));
    if (peak > budget) {
        *out = 0;
        return REMAT_OK;
    }
    int lo = least, hi = c->n_stages;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        REMAT_TRY(revolve_peak(c, mid, &peak));
        if (peak <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    *out = lo;
    return REMAT_OK;
}

remat_status remat_store_all_peak(const remat_chain *chain, uint64_t *out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_store_all_peak: out must not be NULL");
    REMAT_TRY(chain_validate(chain));
    ckpt_oplist l = {0};
    remat_sim_result r;
    ckpt_build_store_all(chain, &l);
    remat_status s = solver_simulate(chain, &l, &r);
    /* Under the planned layout (the default) store-all needs its arena, which rounds every buffer
     * to 512 bytes: the reference is the larger of the two, so that "100%" always fits. */
    uint64_t arena = 0;
    if (s == REMAT_OK)
        s = ckpt_layout_arena(chain, l.ops, l.n, &arena);
    if (s == REMAT_OK)
        *out = arena > r.peak_bytes ? arena : r.peak_bytes;
    ckpt_oplist_free(&l);
    return s;
}

remat_status ckpt_min_budget_pool(const remat_chain *chain, const remat_policy *policy,
                                  uint64_t *out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_min_budget: out must not be NULL");
    REMAT_TRY(chain_validate(chain));
    REMAT_TRY(ckpt_check_policy_chain(chain, policy));
    if (policy->kind == REMAT_POLICY_OPTIMAL)
        return ckpt_optimal_min_budget(chain, out);
    if (policy->kind == REMAT_POLICY_REVOLVE)
        return revolve_peak(chain, revolve_min_snaps(chain->n_stages), out);
    ckpt_oplist l = {0};
    remat_sim_result r;
    remat_status s = solver_fixed(chain, policy, &l);
    if (s == REMAT_OK)
        s = solver_simulate(chain, &l, &r);
    ckpt_oplist_free(&l);
    if (s == REMAT_OK)
        *out = r.peak_bytes;
    return s;
}

static remat_status solver_infeasible(const remat_chain *c, const remat_policy *p, uint64_t budget)
{
    uint64_t min = 0;
    char name[REMAT_POLICY_NAME_MAX], b[32], m[32];
    remat_policy_name(p, name, sizeof name);
    if (ckpt_min_budget_pool(c, p, &min) != REMAT_OK)
        return remat_fail(REMAT_EINFEASIBLE, "no %s schedule of '%s' fits in %llu bytes", name,
                          c->name, (unsigned long long)budget);
    return remat_fail(REMAT_EINFEASIBLE,
                      "budget %s (%llu bytes) is below the minimum feasible "
                      "budget of policy %s for '%s': %s (%llu bytes)",
                      remat_format_bytes(budget, b, sizeof b), (unsigned long long)budget, name,
                      c->name, remat_format_bytes(min, m, sizeof m), (unsigned long long)min);
}

/* Replaces *best by cand if cand is valid, fits budget and is strictly faster. */
static void solver_keep_faster(const remat_chain *c, uint64_t budget, ckpt_oplist *best,
                               double *best_time, ckpt_oplist *cand)
{
    remat_sim_result r;
    if (!cand->oom && remat_simulate(c, cand->ops, cand->n, &r) == REMAT_OK && r.valid &&
        r.peak_bytes <= budget && r.time < *best_time) {
        ckpt_oplist_free(best);
        *best = *cand;
        *best_time = r.time;
        *cand = (ckpt_oplist){0};
    }
    ckpt_oplist_free(cand);
}

/* When the optimal DP had to round sizes to slots, its plan may lose to a heuristic whose plan
 * happens to fit the exact bytes; the heuristics are cheap, so the faster plan is kept (with exact
 * units the DP is never slower, as the tests check). */
static void solver_guard_rounding(const remat_chain *c, uint64_t budget, ckpt_oplist *l)
{
    remat_sim_result r;
    if (l->oom || remat_simulate(c, l->ops, l->n, &r) != REMAT_OK || !r.valid)
        return;
    double best = r.time;
    for (int k = 1; k <= c->n_stages; k++) {
        ckpt_oplist cand = {0};
        ckpt_build_periodic(c, k, &cand);
        solver_keep_faster(c, budget, l, &best, &cand);
    }
    int snaps = 0;
    if (revolve_snaps_for(c, budget, &snaps) == REMAT_OK && snaps > 0) {
        ckpt_oplist cand = {0};
        if (ckpt_build_revolve(c, snaps, &cand) == REMAT_OK)
            solver_keep_faster(c, budget, l, &best, &cand);
        else
            ckpt_oplist_free(&cand);
    }
}

/* Builds the op list of policy p under budget; EINFEASIBLE when it cannot fit. */
static remat_status solver_build(const remat_chain *c, const remat_policy *p, uint64_t budget,
                                 ckpt_oplist *l)
{
    if (p->kind == REMAT_POLICY_OPTIMAL) {
        int exact = 1;
        remat_status s = ckpt_optimal_plan(c, p->slots, budget, l, &exact);
        if (s == REMAT_OK && !exact)
            solver_guard_rounding(c, budget, l);
        return s == REMAT_EINFEASIBLE ? solver_infeasible(c, p, budget) : s;
    }
    if (p->kind == REMAT_POLICY_REVOLVE) {
        int snaps;
        REMAT_TRY(revolve_snaps_for(c, budget, &snaps));
        if (snaps == 0)
            return solver_infeasible(c, p, budget);
        return ckpt_build_revolve(c, snaps, l);
    }
    return solver_fixed(c, p, l);
}

remat_status ckpt_plan_ops(const remat_chain *chain, const remat_policy *policy,
                           uint64_t budget_bytes, remat_schedule **out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_plan: out must not be NULL");
    REMAT_TRY(chain_validate(chain));
    REMAT_TRY(ckpt_check_policy_chain(chain, policy));
    ckpt_oplist l = {0};
    remat_sim_result r;
    remat_status s = solver_build(chain, policy, budget_bytes, &l);
    if (s == REMAT_OK)
        s = solver_simulate(chain, &l, &r);
    if (s == REMAT_OK && r.peak_bytes > budget_bytes)
        s = policy->kind == REMAT_POLICY_OPTIMAL
                ? remat_fail(REMAT_EINTERNAL,
                             "optimal plan peaks at %llu bytes, above the budget "
                             "%llu",
                             (unsigned long long)r.peak_bytes, (unsigned long long)budget_bytes)
                : solver_infeasible(chain, policy, budget_bytes);
    remat_schedule *sc = s == REMAT_OK ? calloc(1, sizeof *sc) : NULL;
    if (s == REMAT_OK && !sc)
        s = remat_fail(REMAT_ENOMEM, "remat_plan: out of memory");
    if (s != REMAT_OK) {
        ckpt_oplist_free(&l);
        return s;
    }
    sc->ops = l.ops;
    sc->n_ops = l.n;
    sc->policy = *policy;
    sc->budget_bytes = budget_bytes;
    sc->feasible = 1;
    sc->peak_bytes = r.peak_bytes;
    sc->time = r.time;
    sc->base_time = chain_base_time(chain);
    sc->overhead = sc->base_time > 0 ? sc->time / sc->base_time - 1.0 : 0.0;
    *out = sc;
    return REMAT_OK;
}

/* ==== plan JSON ============================================================================== */

static const char *solver_op_name(remat_op_kind k)
{
    switch (k) {
    case REMAT_OP_F_CK: return "F_ck";
    case REMAT_OP_F_N: return "F_n";
    case REMAT_OP_F_ALL: return "F_all";
    case REMAT_OP_B: return "B";
    }
    return "?";
}

remat_status remat_schedule_write_json(const remat_schedule *s, const remat_chain *chain, FILE *f)
{
    if (!s || !f)
        return remat_fail(REMAT_EINVAL, "remat_schedule_write_json: s and f must not be NULL");
    REMAT_TRY(chain_validate(chain));
    char name[REMAT_POLICY_NAME_MAX];
    fprintf(f,
            "{\"policy\": \"%s\", \"budget_bytes\": %llu, \"feasible\": %s, \"peak_bytes\": %llu, "
            "\"time\": ",
            remat_policy_name(&s->policy, name, sizeof name), (unsigned long long)s->budget_bytes,
            s->feasible ? "true" : "false", (unsigned long long)s->peak_bytes);
    remat_json_number(f, s->time);
    fprintf(f, ", \"base_time\": ");
    remat_json_number(f, s->base_time);
    fprintf(f, ", \"overhead\": ");
    remat_json_number(f, s->overhead);
    fprintf(f, ", ");
    if (s->layout)
        fprintf(f,
                "\"layout\": \"planned\", \"arena_bytes\": %llu, \"lower_bound_bytes\": %llu, "
                "\"live_peak_bytes\": %llu, \"layout_heuristic\": ",
                (unsigned long long)s->layout->arena_bytes,
                (unsigned long long)s->layout->lower_bound_bytes,
                (unsigned long long)s->layout->live_peak_bytes);
    if (s->layout)
        remat_json_string(f, s->layout->heuristic ? s->layout->heuristic : "");
    fprintf(f, s->layout ? ", " : "\"layout\": \"pool\", ");
    fprintf(f, "\"ops\": [");
    for (size_t k = 0; k < s->n_ops; k++) {
        const remat_op *op = &s->ops[k];
        if (op->stage < 0 || op->stage >= chain->n_stages)
            return remat_fail(REMAT_EINVAL, "op %zu: stage %d is not in the chain", k, op->stage);
        fprintf(f, "%s{\"op\": \"%s\", \"stage\": %d", k ? ", " : "", solver_op_name(op->kind),
                op->stage);
        if (op->kind == REMAT_OP_F_ALL) {
            const remat_stage *st = &chain->stages[op->stage];
            fprintf(f, ", \"option\": ");
            remat_json_string(f, op->option >= 0 && op->option < st->n_options
                                      ? st->options[op->option].name
                                      : "default");
        }
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
    return ferror(f) ? remat_fail(REMAT_EIO, "cannot write the plan JSON") : REMAT_OK;
}

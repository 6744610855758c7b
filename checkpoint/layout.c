/* checkpoint/layout.c: the planned activation layout. Walks a schedule through the state machine
 * the simulator and the executor share, lists every buffer remat_run will allocate with its
 * lifetime in op indices, and places them in one arena with remat_layout_plan. remat_plan lives
 * here too: it re-plans until the arena, not just the live bytes, fits the budget. */
#include "checkpoint/checkpoint.h"

#include <stdlib.h>
#include <string.h>

/* Re-plans with a smaller budget at most this many times before trying the least-memory plan. */
#define LAYOUT_REPLANS 8
/* Then at most this many bisections of the solver's budget. */
#define LAYOUT_BISECTIONS 12
/* Schedules longer than this are not laid out by remat_plan (planning offsets for millions of
 * buffers would take longer than the training it serves): they run on the caching pool, and
 * their plan JSON says "layout": "pool". */
#define LAYOUT_MAX_OPS 65536
#define LAYOUT_ALIGN 512u
#define LAYOUT_NONE SIZE_MAX

remat_status remat_layout_mode_parse(const char *text, remat_layout_mode *out)
{
    if (!text || !out)
        return remat_fail(REMAT_EINVAL, "remat_layout_mode_parse: text and out must not be NULL");
    if (strcmp(text, "planned") == 0)
        *out = REMAT_LAYOUT_PLANNED;
    else if (strcmp(text, "pool") == 0)
        *out = REMAT_LAYOUT_POOL;
    else
        return remat_fail(REMAT_EINVAL, "unknown layout '%s' (expected planned or pool)", text);
    return REMAT_OK;
}

/* ==== the digest a layout is keyed by ======================================================== */

static uint64_t layout_mix(uint64_t h, uint64_t v)
{
    /* FNV-1a over the value's 8 bytes: cheap, and any edit of an op or a size changes it. */
    for (int k = 0; k < 8; k++) {
        h ^= (v >> (8 * k)) & 0xff;
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t ckpt_layout_key(const remat_chain *c, const remat_op *ops, size_t n_ops)
{
    uint64_t h = layout_mix(14695981039346656037ull, c->input_bytes);
    h = layout_mix(h, (uint64_t)c->n_stages);
    for (int i = 0; i < c->n_stages; i++) {
        const remat_stage *s = &c->stages[i];
        h = layout_mix(h, s->out_bytes);
        h = layout_mix(h, s->saved_bytes);
        h = layout_mix(h, s->fwd_tmp_bytes);
        h = layout_mix(h, s->bwd_tmp_bytes);
        for (int k = 0; k < s->n_options; k++) {
            h = layout_mix(h, s->options[k].saved_bytes);
            h = layout_mix(h, s->options[k].extra_fwd_tmp_bytes);
            h = layout_mix(h, s->options[k].extra_bwd_tmp_bytes);
        }
    }
    h = layout_mix(h, (uint64_t)c->input_no_grad);
    h = layout_mix(h, (uint64_t)n_ops);
    for (size_t k = 0; k < n_ops; k++)
        h = layout_mix(h, (uint64_t)ops[k].kind << 48 ^ (uint64_t)(uint32_t)ops[k].stage << 16 ^
                              (uint64_t)(uint16_t)ops[k].option);
    return h;
}

/* ==== the buffers of a schedule =============================================================== */

typedef struct {
    remat_layout_buffer *b;
    size_t n, cap;
    size_t *a, *abar, *d; /* [L+1]: the buffer now holding a_k, ā_k, d_k, or LAYOUT_NONE */
} layout_list;

/* Appends a buffer of `bytes` born at op `first` (none for 0 bytes, as the executor passes NULL).
 */
static remat_status layout_push(layout_list *l, uint64_t bytes, uint64_t first, size_t *id)
{
    *id = LAYOUT_NONE;
    if (bytes == 0)
        return REMAT_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        remat_layout_buffer *b = realloc(l->b, cap * sizeof *b);
        if (!b)
            return remat_fail(REMAT_ENOMEM, "layout of %zu buffers: out of memory", cap);
        l->b = b;
        l->cap = cap;
    }
    l->b[l->n] = (remat_layout_buffer){bytes, first, first};
    *id = l->n++;
    return REMAT_OK;
}

static size_t *layout_slot(layout_list *l, ckpt_buf b)
{
    return b.kind == CKPT_BUF_A      ? &l->a[b.index]
           : b.kind == CKPT_BUF_ABAR ? &l->abar[b.index]
                                     : &l->d[b.index];
}

/* The buffers of one op, in exec_op's order: output, workspace (freed at once), the output again
 * if it was transient, then the op's frees; all of them live during op k. */
static remat_status layout_op(layout_list *l, const ckpt_effect *eff, uint64_t k)
{
    size_t out, tmp;
    REMAT_TRY(layout_push(l, eff->out_bytes, k, &out));
    REMAT_TRY(layout_push(l, eff->tmp_bytes, k, &tmp));
    for (int f = 0; f < eff->n_free; f++) {
        size_t *slot = layout_slot(l, eff->frees[f]);
        if (*slot != LAYOUT_NONE)
            l->b[*slot].last = k;
        *slot = LAYOUT_NONE;
    }
    if (eff->keep_out)
        *layout_slot(l, eff->out) = out;
    return REMAT_OK;
}

/* Buffers still held after the last op live to its end (the executor frees them on return). */
static void layout_close(layout_list *l, size_t n_slots, uint64_t last)
{
    size_t *slots[] = {l->a, l->abar, l->d};
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < n_slots; k++)
            if (slots[s][k] != LAYOUT_NONE)
                l->b[slots[s][k]].last = last;
}

static remat_status layout_walk(layout_list *l, const remat_chain *c, const remat_op *ops,
                                size_t n_ops, ckpt_state *st)
{
    int L = c->n_stages;
    REMAT_TRY(layout_push(l, chain_act_bytes(c, 0), 0, &l->a[0]));
    REMAT_TRY(layout_push(l, chain_act_bytes(c, L), 0, &l->d[L]));
    for (size_t k = 0; k < n_ops; k++) {
        ckpt_effect eff;
        char why[160];
        if (ckpt_state_apply(st, &ops[k], &eff, why, sizeof why) != 0)
            return remat_fail(REMAT_EINVAL, "layout: op %zu is invalid: %s", k, why);
        REMAT_TRY(layout_op(l, &eff, k));
    }
    if (!st->done)
        return remat_fail(REMAT_EINVAL, "layout: the schedule ends before B 0");
    layout_close(l, (size_t)L + 1, n_ops - 1);
    return REMAT_OK;
}

remat_status ckpt_layout_buffers(const remat_chain *c, const remat_op *ops, size_t n_ops,
                                 remat_layout_buffer **out, size_t *n_out, uint64_t *live_peak)
{
    size_t n = (size_t)c->n_stages + 1;
    layout_list l = {0};
    l.a = malloc(n * sizeof *l.a);
    l.abar = malloc(n * sizeof *l.abar);
    l.d = malloc(n * sizeof *l.d);
    ckpt_state st;
    remat_status s = l.a && l.abar && l.d ? ckpt_state_init(&st, c)
                                          : remat_fail(REMAT_ENOMEM, "layout: out of memory");
    if (s == REMAT_OK) {
        for (size_t k = 0; k < n; k++)
            l.a[k] = l.abar[k] = l.d[k] = LAYOUT_NONE;
        s = layout_walk(&l, c, ops, n_ops, &st);
        *live_peak = st.peak;
        ckpt_state_free(&st);
    }
    free(l.a);
    free(l.abar);
    free(l.d);
    if (s != REMAT_OK) {
        free(l.b);
        return s;
    }
    *out = l.b;
    *n_out = l.n;
    return REMAT_OK;
}

/* ==== the layout ============================================================================== */

static void layout_free(remat_schedule_layout *lay)
{
    if (!lay)
        return;
    free(lay->buffers);
    free(lay->offsets);
    free(lay);
}

static remat_status layout_plan(const remat_chain *c, const remat_op *ops, size_t n_ops,
                                remat_schedule_layout **out)
{
    remat_schedule_layout *lay = calloc(1, sizeof *lay);
    if (!lay)
        return remat_fail(REMAT_ENOMEM, "layout: out of memory");
    remat_status s =
        ckpt_layout_buffers(c, ops, n_ops, &lay->buffers, &lay->n_buffers, &lay->live_peak_bytes);
    if (s == REMAT_OK) {
        lay->offsets = malloc((lay->n_buffers ? lay->n_buffers : 1) * sizeof *lay->offsets);
        if (!lay->offsets)
            s = remat_fail(REMAT_ENOMEM, "layout of %zu buffers: out of memory", lay->n_buffers);
    }
    remat_layout_result res;
    if (s == REMAT_OK)
        s = remat_layout_plan(lay->buffers, lay->n_buffers, LAYOUT_ALIGN, lay->offsets, &res);
    if (s != REMAT_OK) {
        layout_free(lay);
        return s;
    }
    lay->arena_bytes = res.arena_bytes;
    lay->lower_bound_bytes = res.lower_bound_bytes;
    lay->heuristic = res.heuristic;
    lay->key = ckpt_layout_key(c, ops, n_ops);
    *out = lay;
    return REMAT_OK;
}

remat_status ckpt_layout_arena(const remat_chain *c, const remat_op *ops, size_t n_ops,
                               uint64_t *arena)
{
    remat_schedule_layout *lay = NULL;
    REMAT_TRY(layout_plan(c, ops, n_ops, &lay));
    *arena = lay->arena_bytes;
    layout_free(lay);
    return REMAT_OK;
}

void remat_schedule_free(remat_schedule *s)
{
    if (!s)
        return;
    layout_free(s->layout);
    free(s->ops);
    free(s);
}

remat_status remat_schedule_plan_layout(remat_schedule *s, const remat_chain *chain)
{
    if (!s || (!s->ops && s->n_ops))
        return remat_fail(REMAT_EINVAL, "remat_schedule_plan_layout: no schedule");
    REMAT_TRY(chain_validate(chain));
    remat_schedule_layout *lay = NULL;
    REMAT_TRY(layout_plan(chain, s->ops, s->n_ops, &lay));
    layout_free(s->layout);
    s->layout = lay;
    s->peak_bytes = lay->arena_bytes;
    return REMAT_OK;
}

/* ==== remat_plan: the arena fits the budget =================================================== */

/* Plans under `budget` and lays the schedule out; *sc is NULL on failure. */
static remat_status layout_try(const remat_chain *c, const remat_policy *p, uint64_t budget,
                               remat_schedule **sc)
{
    *sc = NULL;
    REMAT_TRY(ckpt_plan_ops(c, p, budget, sc));
    if ((*sc)->n_ops > LAYOUT_MAX_OPS)
        return REMAT_OK; /* too long to lay out in reasonable time: the pool serves it */
    remat_status s = remat_schedule_plan_layout(*sc, c);
    if (s != REMAT_OK) {
        remat_schedule_free(*sc);
        *sc = NULL;
    }
    return s;
}

static remat_status layout_infeasible(const remat_chain *c, const remat_policy *p, uint64_t budget,
                                      uint64_t smallest)
{
    char name[REMAT_POLICY_NAME_MAX], b[32], m[32];
    remat_policy_name(p, name, sizeof name);
    return remat_fail(REMAT_EINFEASIBLE,
                      "budget %s (%llu bytes) is below the minimum feasible budget of policy %s "
                      "for '%s' under the planned layout: %s (%llu bytes, the arena of its "
                      "least-memory schedule)",
                      remat_format_bytes(budget, b, sizeof b), (unsigned long long)budget, name,
                      c->name, remat_format_bytes(smallest, m, sizeof m),
                      (unsigned long long)smallest);
}

/* The policy's least-memory schedule, laid out: the last resort, and the minimum to report. */
static remat_status layout_least(const remat_chain *c, const remat_policy *p, remat_schedule **sc)
{
    uint64_t min = 0;
    REMAT_TRY(ckpt_min_budget_pool(c, p, &min));
    return layout_try(c, p, min, sc);
}

remat_status remat_min_budget_layout(const remat_chain *chain, const remat_policy *policy,
                                     remat_layout_mode layout, uint64_t *out)
{
    if (layout == REMAT_LAYOUT_POOL)
        return ckpt_min_budget_pool(chain, policy, out);
    if (layout != REMAT_LAYOUT_PLANNED)
        return remat_fail(REMAT_EINVAL, "unknown layout mode %d", (int)layout);
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_min_budget: out must not be NULL");
    REMAT_TRY(ckpt_min_budget_pool(chain, policy, out)); /* validates chain and policy */
    remat_schedule *least = NULL;
    REMAT_TRY(layout_least(chain, policy, &least));
    *out = least->peak_bytes;
    remat_schedule_free(least);
    return REMAT_OK;
}

remat_status remat_min_budget(const remat_chain *chain, const remat_policy *policy, uint64_t *out)
{
    return remat_min_budget_layout(chain, policy, REMAT_LAYOUT_PLANNED, out);
}

/* Bisects the solver's budget between lo (its least-memory budget) and hi (one whose arena
 * exceeds `budget`) for the largest whose arena fits: *out the schedule found, or NULL. */
static remat_status layout_bisect(const remat_chain *c, const remat_policy *p, uint64_t budget,
                                  uint64_t lo, uint64_t hi, uint64_t *smallest,
                                  remat_schedule **out)
{
    *out = NULL;
    for (int it = 0; it < LAYOUT_BISECTIONS && lo + budget / 1024 < hi; it++) {
        uint64_t mid = lo + (hi - lo) / 2;
        remat_schedule *sc = NULL;
        remat_status s = layout_try(c, p, mid, &sc);
        if (s == REMAT_EINFEASIBLE) {
            remat_clear_error();
            lo = mid;
            continue;
        }
        if (s != REMAT_OK) {
            remat_schedule_free(*out);
            *out = NULL;
            return s;
        }
        if (sc->peak_bytes <= budget) {
            remat_schedule_free(*out);
            *out = sc;
            lo = mid;
        } else {
            if (sc->peak_bytes < *smallest)
                *smallest = sc->peak_bytes;
            remat_schedule_free(sc);
            hi = mid;
        }
    }
    return REMAT_OK;
}

static remat_status layout_fit(const remat_chain *c, const remat_policy *p, uint64_t budget,
                               remat_schedule **out)
{
    uint64_t b = budget, smallest = UINT64_MAX, over = 0;
    for (int it = 0; it < LAYOUT_REPLANS; it++) {
        remat_schedule *sc = NULL;
        remat_status s = layout_try(c, p, b, &sc);
        if (s == REMAT_EINFEASIBLE)
            break;
        REMAT_TRY(s);
        uint64_t arena = sc->peak_bytes;
        if (arena <= budget) {
            sc->budget_bytes = budget;
            *out = sc;
            return REMAT_OK;
        }
        remat_schedule_free(sc);
        over = b;
        if (arena < smallest)
            smallest = arena;
        if (b <= arena - budget)
            break;
        b -= arena - budget; /* the excess of the arena over the live bytes, taken off */
    }
    remat_clear_error();
    /* The excess taken off did not converge: bisect between the least-memory budget and the
     * smallest that overflowed, rather than fall to the least-memory schedule at once (its
     * overhead can be many times a schedule just below). */
    uint64_t min = 0;
    if (over && ckpt_min_budget_pool(c, p, &min) == REMAT_OK && min < over) {
        remat_schedule *sc = NULL;
        REMAT_TRY(layout_bisect(c, p, budget, min, over, &smallest, &sc));
        if (sc) {
            sc->budget_bytes = budget;
            *out = sc;
            return REMAT_OK;
        }
    }
    remat_clear_error();
    remat_schedule *least = NULL;
    remat_status s = layout_least(c, p, &least);
    if (s != REMAT_OK && s != REMAT_EINFEASIBLE)
        return s;
    if (s == REMAT_OK && least->peak_bytes <= budget) {
        least->budget_bytes = budget;
        *out = least;
        return REMAT_OK;
    }
    if (s == REMAT_OK && least->peak_bytes < smallest)
        smallest = least->peak_bytes;
    remat_schedule_free(least);
    return layout_infeasible(c, p, budget, smallest);
}

remat_status remat_plan_layout(const remat_chain *chain, const remat_policy *policy,
                               remat_layout_mode layout, uint64_t budget_bytes,
                               remat_schedule **out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_plan: out must not be NULL");
    REMAT_TRY(chain_validate(chain));
    if (!policy)
        return remat_fail(REMAT_EINVAL, "policy must not be NULL");
    if (layout == REMAT_LAYOUT_POOL)
        return ckpt_plan_ops(chain, policy, budget_bytes, out);
    if (layout != REMAT_LAYOUT_PLANNED)
        return remat_fail(REMAT_EINVAL, "unknown layout mode %d", (int)layout);
    return layout_fit(chain, policy, budget_bytes, out);
}

remat_status remat_plan(const remat_chain *chain, const remat_policy *policy, uint64_t budget_bytes,
                        remat_schedule **out)
{
    return remat_plan_layout(chain, policy, REMAT_LAYOUT_PLANNED, budget_bytes, out);
}

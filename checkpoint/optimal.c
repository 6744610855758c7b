/* checkpoint/optimal.c: the optimal persistent schedule (Rotor's dynamic program of Beaumont et
 * al., "Optimal checkpointing for heterogeneous chains"), extended with per-stage forward-with-grad
 * options chosen inside the recurrence, over memory discretised in slots; and the Pareto curve.
 *
 * Sub-problem (s, t, m): run forward and backward of stages s..t-1 when a_s is live (counted by
 * the caller) and d_t is live (counted here), within m units; it ends with d_s live. Either
 *   A: F_all s (variant v), solve (s+1, t, m - |ā_{s+1}|), B s;           or
 *   B: F_ck s, F_n s+1 .. s'-1 (reaching a_{s'}), solve (s', t, m - |a_{s'}|), solve (s, s', m).
 * Sizes are rounded up to whole units and the budget down, so a plan that fits in units fits in
 * bytes; every plan is then checked by the simulator. */
#include "checkpoint/checkpoint.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define OPT_EXACT_SLOTS 10000
#define OPT_DEFAULT_SLOTS 500
#define OPT_MAX_ENTRIES (48u * 1024 * 1024) /* DP cells (8 bytes each) one solve may use */
/* Relax steps (a cell lowered by one candidate) one table may take: about a second or two */
/* The table's time bound: one solve may take at most OPT_MAX_WORK steps, a step being one cell
 * lowered by one candidate, and a candidate of a row costing OPT_CAND_COST steps besides its cells
 * (listing, bisection, setup). About 2-5 s on a 2-core VM; the unit is coarsened to stay under. */
#define OPT_MAX_WORK 1e9
#define OPT_CAND_COST 64
/* The bounds alone take O(L^3) time and O(L^2) memory (52 bytes per sub-chain): above this the
 * optimal policy refuses the chain (about 1 s and 26 MB of bounds at 1000 stages). */
#define OPT_MAX_STAGES 1000
#define OPT_INF DBL_MAX

/* Chain sizes in units; variant 0 of a stage is its default, variant k+1 its option k. */
typedef struct {
    int L;
    uint64_t unit;
    uint64_t *x;       /* [L+1] |a_k| */
    uint64_t *ftmp;    /* [L]: workspace of the forward without grad (F_ck, F_n) */
    int *var0, *n_var; /* [L]: first variant index in xb/bw, number of variants */
    uint64_t *xb;      /* saved bytes per variant */
    uint64_t *vf, *vb; /* per variant: workspace of its F_all and of its backward */
    double *bw;        /* backward time per variant */
    double *fwd;       /* [L] */
    double *fsum;      /* [L+1]: prefix sums of fwd */
    int *best;         /* [L]: fastest variant (ties: fewer saved bytes) */
} opt_sizes;

/* Per sub-problem (s, t): the least memory any DP schedule needs (lb, with its choice) and the
 * memory from which the fastest one fits (ub). Indexed by opt_idx. */
typedef struct {
    uint64_t *lb, *ub;
    int32_t *lb_choice;
    double *lb_time; /* time of that least-memory schedule (ties are broken by it) */
    /* lb and lb_time again, by opt_ridx: (s, s') for s' = s+1.. contiguous, so the O(L) scan of
     * every (s, t) streams through memory instead of striding (8x faster at L = 1000) */
    uint64_t *lb_r;
    double *lb_time_r;
    int L;
} opt_bounds;

/* The cost table: one row per sub-problem over m in [lo, hi]. */
typedef struct {
    uint64_t M;
    uint64_t *lo, *hi;
    size_t *off;
    double *cost;     /* rows are non-increasing in m; choices are re-derived when emitting */
    double *best;     /* per row: its last (fastest) value, kept apart so bounds stay in cache */
    int from_scratch; /* cost is the thread's reusable buffer */
} opt_table;

static size_t opt_idx(int s, int t)
{
    return (size_t)t * (size_t)(t - 1) / 2 + (size_t)s;
}

/* Position of (s, t) in row-major order by s: the rows of s' < s hold L - s' entries each. */
static size_t opt_ridx(int L, int s, int t)
{
    return (size_t)s * (size_t)L - (size_t)s * (size_t)(s - 1) / 2 + (size_t)(t - s - 1);
}

/* Number of sub-problems (s, t), 0 <= s < t <= L. */
static size_t opt_count(int L)
{
    return (size_t)L * (size_t)(L + 1) / 2;
}

static uint64_t opt_max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t opt_units(uint64_t bytes, uint64_t unit)
{
    return bytes / unit + (bytes % unit != 0);
}

/* ==== sizes ================================================================================ */

static void opt_sizes_free(opt_sizes *z)
{
    free(z->x);
    free(z->ftmp);
    free(z->var0);
    free(z->n_var);
    free(z->xb);
    free(z->vf);
    free(z->vb);
    free(z->bw);
    free(z->fwd);
    free(z->fsum);
    free(z->best);
    memset(z, 0, sizeof *z);
}

static remat_status opt_sizes_make(const remat_chain *c, uint64_t unit, opt_sizes *z)
{
    int L = c->n_stages, nv = 0;
    for (int i = 0; i < L; i++)
        nv += c->stages[i].n_options + 1;
    memset(z, 0, sizeof *z);
    z->L = L;
    z->unit = unit;
    z->x = malloc(((size_t)L + 1) * sizeof *z->x);
    z->ftmp = malloc((size_t)L * sizeof *z->ftmp);
    z->var0 = malloc((size_t)L * sizeof *z->var0);
    z->n_var = malloc((size_t)L * sizeof *z->n_var);
    z->xb = malloc((size_t)nv * sizeof *z->xb);
    z->vf = malloc((size_t)nv * sizeof *z->vf);
    z->vb = malloc((size_t)nv * sizeof *z->vb);
    z->bw = malloc((size_t)nv * sizeof *z->bw);
    z->fwd = malloc((size_t)L * sizeof *z->fwd);
    z->fsum = malloc(((size_t)L + 1) * sizeof *z->fsum);
    z->best = malloc((size_t)L * sizeof *z->best);
    if (!z->x || !z->ftmp || !z->var0 || !z->n_var || !z->xb || !z->vf || !z->vb || !z->bw ||
        !z->fwd || !z->fsum || !z->best) {
        opt_sizes_free(z);
        return remat_fail(REMAT_ENOMEM, "optimal solver: out of memory for %d stages", L);
    }
    /* x[0] is only ever read as d_0 (the caller counts a_0): 0 when the input has no gradient */
    for (int k = 0; k <= L; k++)
        z->x[k] = opt_units(chain_grad_bytes(c, k), unit);
    z->fsum[0] = 0;
    for (int i = 0, v = 0; i < L; i++) {
        const remat_stage *st = &c->stages[i];
        z->ftmp[i] = opt_units(st->fwd_tmp_bytes, unit);
        z->fwd[i] = st->fwd;
        z->fsum[i + 1] = z->fsum[i] + st->fwd;
        z->var0[i] = v;
        z->n_var[i] = st->n_options + 1;
        z->best[i] = 0;
        for (int k = -1; k < st->n_options; k++, v++) {
            z->xb[v] = opt_units(chain_saved_bytes(c, i, k), unit);
            z->vf[v] = opt_units(chain_fwd_tmp_bytes(c, i, k), unit);
            z->vb[v] = opt_units(chain_bwd_tmp_bytes(c, i, k), unit);
            z->bw[v] = chain_bwd_time(c, i, k);
            int b = z->var0[i] + z->best[i];
            if (z->bw[v] < z->bw[b] || (z->bw[v] == z->bw[b] && z->xb[v] < z->xb[b]))
                z->best[i] = v - z->var0[i];
        }
    }
    return REMAT_OK;
}

/* Memory of option A's own ops (F_all s, B s) with variant v, beside the sub-problem. */
static uint64_t opt_need_a(const opt_sizes *z, int s, int t, int v)
{
    size_t w = (size_t)(z->var0[s] + v);
    uint64_t xb = z->xb[w];
    return opt_max(z->x[t] + xb + z->vf[w], xb + z->x[s + 1] + z->x[s] + z->vb[w]);
}

/* ==== bounds ================================================================================ */

static void opt_bounds_free(opt_bounds *b)
{
    free(b->lb);
    free(b->ub);
    free(b->lb_choice);
    free(b->lb_time);
    free(b->lb_r);
    free(b->lb_time_r);
    memset(b, 0, sizeof *b);
}

/* Keeps (need, time, choice) if it needs less memory, or as much and less time. */
static void opt_bound_keep(uint64_t need, double time, int32_t choice, uint64_t *best,
                           double *best_time, int32_t *best_choice)
{
    if (need < *best || (need == *best && time < *best_time)) {
        *best = need;
        *best_time = time;
        *best_choice = choice;
    }
}

static void opt_bound_one(const opt_sizes *z, opt_bounds *b, int s, int t)
{
    size_t e = opt_idx(s, t);
    uint64_t best = UINT64_MAX;
    double best_time = OPT_INF;
    int32_t choice = 0;
    for (int v = 0; v < z->n_var[s]; v++) {
        uint64_t need = opt_need_a(z, s, t, v);
        double time = z->fwd[s] + z->bw[z->var0[s] + v];
        if (t > s + 1) {
            need = opt_max(need, z->xb[z->var0[s] + v] + b->lb[opt_idx(s + 1, t)]);
            time += b->lb_time[opt_idx(s + 1, t)];
        }
        opt_bound_keep(need, time, -v, &best, &best_time, &choice);
    }
    uint64_t fm = z->x[s + 1] + z->ftmp[s];
    /* lb(s', t) at lb1[s'], lb(s, s') at lb2[s'] */
    const uint64_t *lb1 = b->lb + opt_idx(0, t),
                   *lb2 = b->lb_r + opt_ridx(b->L, s, s + 1) - (s + 1);
    const double *lt1 = b->lb_time + opt_idx(0, t);
    const double *lt2 = b->lb_time_r + opt_ridx(b->L, s, s + 1) - (s + 1);
    for (int sp = s + 1; sp < t; sp++) {
        if (sp > s + 1)
            fm = opt_max(fm, z->x[sp - 1] + z->x[sp] + z->ftmp[sp - 1]);
        uint64_t need = opt_max(z->x[t] + fm, opt_max(z->x[sp] + lb1[sp], lb2[sp]));
        double time = z->fsum[sp] - z->fsum[s] + lt1[sp] + lt2[sp];
        opt_bound_keep(need, time, sp - s, &best, &best_time, &choice);
    }
    b->lb[e] = best;
    b->lb_time[e] = best_time;
    b->lb_choice[e] = choice;
    b->lb_r[opt_ridx(b->L, s, t)] = best;
    b->lb_time_r[opt_ridx(b->L, s, t)] = best_time;
    int v = z->best[s];
    uint64_t ub = opt_need_a(z, s, t, v);
    if (t > s + 1)
        ub = opt_max(ub, z->xb[z->var0[s] + v] + b->ub[opt_idx(s + 1, t)]);
    b->ub[e] = ub;
}

static remat_status opt_bounds_make(const opt_sizes *z, opt_bounds *b)
{
    size_t n = opt_count(z->L);
    b->lb = malloc(n * sizeof *b->lb);
    b->ub = malloc(n * sizeof *b->ub);
    b->lb_choice = malloc(n * sizeof *b->lb_choice);
    b->lb_time = malloc(n * sizeof *b->lb_time);
    b->lb_r = malloc(n * sizeof *b->lb_r);
    b->lb_time_r = malloc(n * sizeof *b->lb_time_r);
    b->L = z->L;
    if (!b->lb || !b->ub || !b->lb_choice || !b->lb_time || !b->lb_r || !b->lb_time_r) {
        opt_bounds_free(b);
        return remat_fail(REMAT_ENOMEM, "optimal solver: out of memory for %d stages", z->L);
    }
    /* t rising, s falling: every (s, t) needs (s', t) for s' > s and (s, s') for s' < t only,
     * and row t stays in cache while it is filled */
    for (int t = 1; t <= z->L; t++)
        for (int s = t - 1; s >= 0; s--)
            opt_bound_one(z, b, s, t);
    return REMAT_OK;
}

/* ==== the cost table ========================================================================= */

/* The cost cells come from a per-thread buffer that outlives the solve (freed when the thread
 * exits): fresh pages are the dearest part of a solve (on a VM, first touch of an 18 MB table took
 * longer than filling it), and callers solve many budgets in a row (plans, curves, sweeps).
 * Buffers above OPT_KEEP_BYTES are not kept. */
#define OPT_KEEP_BYTES ((size_t)256 << 20)

typedef struct {
    double *p;
    size_t cap; /* doubles */
    int busy;   /* a solve on this thread holds it (the curve nests no solves, but be safe) */
} opt_scratch;

static pthread_key_t opt_scratch_key;
static pthread_once_t opt_scratch_once = PTHREAD_ONCE_INIT;

static void opt_scratch_destroy(void *arg)
{
    opt_scratch *sc = arg;
    free(sc->p);
    free(sc);
}

static void opt_scratch_init(void)
{
    pthread_key_create(&opt_scratch_key, opt_scratch_destroy);
}

static opt_scratch *opt_scratch_get(void)
{
    pthread_once(&opt_scratch_once, opt_scratch_init);
    opt_scratch *sc = pthread_getspecific(opt_scratch_key);
    if (!sc && (sc = calloc(1, sizeof *sc)) != NULL &&
        pthread_setspecific(opt_scratch_key, sc) != 0) {
        free(sc);
        sc = NULL;
    }
    return sc;
}

static double *opt_cells_alloc(size_t cells, int *from_scratch)
{
    size_t n = cells ? cells : 1;
    opt_scratch *sc = opt_scratch_get();
    *from_scratch = 0;
    if (!sc || sc->busy || n * sizeof(double) > OPT_KEEP_BYTES)
        return malloc(n * sizeof(double));
    if (sc->cap < n) {
        free(sc->p);
        sc->p = malloc(n * sizeof(double));
        sc->cap = sc->p ? n : 0;
        if (!sc->p)
            return NULL;
    }
    sc->busy = 1;
    *from_scratch = 1;
    return sc->p;
}

static void opt_cells_release(double *p, int from_scratch)
{
    if (!from_scratch) {
        free(p);
        return;
    }
    opt_scratch *sc = opt_scratch_get();
    if (sc)
        sc->busy = 0;
}

static void opt_table_free(opt_table *T)
{
    free(T->lo);
    free(T->hi);
    free(T->off);
    opt_cells_release(T->cost, T->from_scratch);
    free(T->best);
    memset(T, 0, sizeof *T);
}

static int opt_row_empty(const opt_table *T, size_t e)
{
    return T->hi[e] < T->lo[e];
}

/* Value of row e at m >= lo (rows keep their last, fastest value beyond hi). */
static double opt_at(const opt_table *T, size_t e, uint64_t m)
{
    uint64_t k = (m < T->hi[e] ? m : T->hi[e]) - T->lo[e];
    return T->cost[T->off[e] + k];
}

/* Lays out the rows: [lb, min(ub, M)] per sub-problem. Returns the number of cells. */
static size_t opt_table_layout(const opt_bounds *b, size_t n, opt_table *T)
{
    size_t total = 0;
    for (size_t e = 0; e < n; e++) {
        T->lo[e] = b->lb[e];
        T->hi[e] = b->ub[e] < T->M ? b->ub[e] : T->M;
        T->off[e] = total;
        if (T->hi[e] >= T->lo[e])
            total += (size_t)(T->hi[e] - T->lo[e] + 1);
        else
            T->lo[e] = T->hi[e] + 1; /* empty: infeasible within M */
    }
    return total;
}

/* One way to start sub-problem (s, t): cost fixed + row e1 at m - d1 (+ row e2 at m), for every
 * m >= need. kind <= 0: A with variant -kind; kind > 0: B with s' = s + kind. */
typedef struct {
    double fixed;
    size_t e1, e2; /* OPT_NO_ROW when absent */
    uint64_t d1, need;
    int kind;
} opt_cand;

#define OPT_NO_ROW SIZE_MAX

/* Lists the candidates of (s, t) whose sub-problems are feasible; returns how many. */
static size_t opt_candidates(const opt_sizes *z, const opt_table *T, int s, int t, opt_cand *out)
{
    size_t n = 0;
    for (int v = 0; v < z->n_var[s]; v++) {
        opt_cand c = {z->fwd[s] + z->bw[z->var0[s] + v],
                      OPT_NO_ROW,
                      OPT_NO_ROW,
                      z->xb[z->var0[s] + v],
                      opt_need_a(z, s, t, v),
                      -v};
        if (t > s + 1) {
            c.e1 = opt_idx(s + 1, t);
            if (opt_row_empty(T, c.e1))
                continue;
            c.need = opt_max(c.need, c.d1 + T->lo[c.e1]);
        }
        out[n++] = c;
    }
    uint64_t fm = z->x[s + 1] + z->ftmp[s];
    for (int sp = s + 1; sp < t; sp++) {
        if (sp > s + 1)
            fm = opt_max(fm, z->x[sp - 1] + z->x[sp] + z->ftmp[sp - 1]);
        if (z->x[t] + fm > T->M)
            break; /* the forward sweep alone no longer fits, nor for any later s' */
        opt_cand c = {
            z->fsum[sp] - z->fsum[s], opt_idx(sp, t), opt_idx(s, sp), z->x[sp], 0, sp - s};
        if (opt_row_empty(T, c.e1) || opt_row_empty(T, c.e2))
            continue;
        c.need = opt_max(z->x[t] + fm, opt_max(c.d1 + T->lo[c.e1], T->lo[c.e2]));
        out[n++] = c;
    }
    return n;
}

/* The candidate's value with unlimited memory: a floor under its value at every m. */
static double opt_cand_floor(const opt_table *T, const opt_cand *c)
{
    double v = c->fixed;
    if (c->e1 != OPT_NO_ROW)
        v += T->best[c->e1];
    if (c->e2 != OPT_NO_ROW)
        v += T->best[c->e2];
    return v;
}

static double opt_cand_value(const opt_table *T, const opt_cand *c, uint64_t m)
{
    double v = c->fixed;
    if (c->e1 != OPT_NO_ROW)
        v += opt_at(T, c->e1, m - c->d1);
    if (c->e2 != OPT_NO_ROW)
        v += opt_at(T, c->e2, m);
    return v;
}

/* o[k] = min(o[k], fixed + p1[k*s1] + p2[k*s2]): s1, s2 are 0 (a clamped row) or 1, constants
 * after inlining, so each use is a branch-free loop the compiler vectorises. */
static inline void opt_min_run(double *restrict o, size_t n, double fixed, const double *p1, int s1,
                               const double *p2, int s2)
{
#pragma omp simd
    for (size_t k = 0; k < n; k++) {
        double v = fixed + p1[k * (size_t)s1] + p2[k * (size_t)s2];
        o[k] = v < o[k] ? v : o[k];
    }
}

/* The relax loops are the solver's hot spot: on x86-64 GCC builds them twice, for AVX2 and for
 * the baseline ISA, and picks one at load time (4 doubles per instruction instead of 2). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define OPT_HOT __attribute__((target_clones("avx2", "default")))
#else
#define OPT_HOT
#endif

/* Lowers row e over m in [from, to] by candidate c, in up to three runs: both source rows
 * inside their range, one clamped at its top, both clamped. */
OPT_HOT static void opt_relax(opt_table *T, size_t e, const opt_cand *c, uint64_t from, uint64_t to)
{
    static const double zero = 0;
    double *row = T->cost + T->off[e];
    uint64_t lo = T->lo[e];
    const double *r1 = c->e1 != OPT_NO_ROW ? T->cost + T->off[c->e1] : &zero;
    const double *r2 = c->e2 != OPT_NO_ROW ? T->cost + T->off[c->e2] : &zero;
    uint64_t lo1 = c->e1 != OPT_NO_ROW ? T->lo[c->e1] : 0,
             lo2 = c->e2 != OPT_NO_ROW ? T->lo[c->e2] : 0;
    /* last m at which each row is read inside its range (UINT64_MAX: constant source) */
    uint64_t b1 = c->e1 != OPT_NO_ROW ? T->hi[c->e1] + c->d1 : 0;
    uint64_t b2 = c->e2 != OPT_NO_ROW ? T->hi[c->e2] : 0;
    const double *top1 = c->e1 != OPT_NO_ROW ? r1 + (T->hi[c->e1] - lo1) : &zero;
    const double *top2 = c->e2 != OPT_NO_ROW ? r2 + (T->hi[c->e2] - lo2) : &zero;
    uint64_t m = from;
    while (m <= to) {
        int in1 = c->e1 != OPT_NO_ROW && m <= b1, in2 = c->e2 != OPT_NO_ROW && m <= b2;
        uint64_t end = to;
        if (in1 && b1 < end)
            end = b1;
        if (in2 && b2 < end)
            end = b2;
        size_t n = (size_t)(end - m + 1);
        double *o = row + (m - lo);
        const double *p1 = in1 ? r1 + (m - c->d1 - lo1) : top1;
        const double *p2 = in2 ? r2 + (m - lo2) : top2;
        if (in1 && in2)
            opt_min_run(o, n, c->fixed, p1, 1, p2, 1);
        else if (in1)
            opt_min_run(o, n, c->fixed, p1, 1, p2, 0);
        else if (in2)
            opt_min_run(o, n, c->fixed, p1, 0, p2, 1);
        else
            opt_min_run(o, n, c->fixed, p1, 0, p2, 0);
        m = end + 1;
    }
}

/* First m in [from, hi] where the (non-increasing) row e is <= v; hi + 1 if none. */
static uint64_t opt_first_at_most(const opt_table *T, size_t e, uint64_t from, double v)
{
    const double *row = T->cost + T->off[e];
    uint64_t lo = T->lo[e], a = from, b = T->hi[e] + 1;
    while (a < b) {
        uint64_t mid = a + (b - a) / 2;
        if (row[mid - lo] <= v)
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

/* Fills row (s, t). A candidate can never go below its value at unlimited memory, so it only
 * touches the budgets where the row is still above that: far checkpoints (dear forward sweeps)
 * are skipped for most of the row. */
static void opt_fill_one(const opt_sizes *z, opt_table *T, int s, int t, opt_cand *cands)
{
    size_t e = opt_idx(s, t);
    if (opt_row_empty(T, e))
        return;
    double *row = T->cost + T->off[e];
    uint64_t lo = T->lo[e], hi = T->hi[e];
    for (uint64_t m = lo; m <= hi; m++)
        row[m - lo] = OPT_INF;
    size_t n = opt_candidates(z, T, s, t, cands);
    for (size_t k = 0; k < n; k++) {
        const opt_cand *c = &cands[k];
        uint64_t from = opt_max(lo, c->need);
        if (from > hi)
            continue;
        uint64_t to = opt_first_at_most(T, e, from, opt_cand_floor(T, c));
        if (to > from)
            opt_relax(T, e, c, from, to - 1);
    }
    T->best[e] = row[hi - lo];
}

static remat_status opt_table_make(const opt_sizes *z, const opt_bounds *b, uint64_t M,
                                   opt_table *T)
{
    size_t n = opt_count(z->L);
    int max_var = 0;
    for (int i = 0; i < z->L; i++)
        if (z->n_var[i] > max_var)
            max_var = z->n_var[i];
    memset(T, 0, sizeof *T);
    T->M = M;
    T->lo = malloc(n * sizeof *T->lo);
    T->hi = malloc(n * sizeof *T->hi);
    T->off = malloc(n * sizeof *T->off);
    opt_cand *cands = malloc(((size_t)max_var + (size_t)z->L) * sizeof *cands);
    if (!T->lo || !T->hi || !T->off || !cands) {
        free(cands);
        opt_table_free(T);
        return remat_fail(REMAT_ENOMEM, "optimal solver: out of memory");
    }
    size_t cells = opt_table_layout(b, n, T);
    T->cost = cells <= OPT_MAX_ENTRIES ? opt_cells_alloc(cells, &T->from_scratch) : NULL;
    T->best = malloc(n * sizeof *T->best);
    if (!T->cost || !T->best) {
        free(cands);
        opt_table_free(T);
        return remat_fail(REMAT_ENOMEM, "optimal solver: cannot allocate %zu table cells", cells);
    }
    for (int len = 1; len <= z->L; len++)
        for (int s = 0; s + len <= z->L; s++)
            opt_fill_one(z, T, s, s + len, cands);
    free(cands);
    return REMAT_OK;
}

/* Only the cells of sub-problems reachable from the top matter, but every row is laid out; the
 * count decides whether a resolution is affordable. */
static size_t opt_cells_for(const opt_bounds *b, int L, uint64_t M)
{
    size_t n = opt_count(L), total = 0;
    for (size_t e = 0; e < n; e++) {
        uint64_t hi = b->ub[e] < M ? b->ub[e] : M;
        if (hi >= b->lb[e])
            total += (size_t)(hi - b->lb[e] + 1);
    }
    return total;
}

/* ==== schedules ============================================================================= */

static void opt_forward_to(ckpt_oplist *l, int s, int sp)
{
    ckpt_push(l, REMAT_OP_F_CK, s, -1);
    for (int k = s + 1; k < sp; k++)
        ckpt_push(l, REMAT_OP_F_N, k, -1);
}

/* Emits the table's schedule of (s, t) within m units: the best candidate at m, found again
 * (the table keeps costs only; re-deriving the choice costs O(L) per node of the schedule). */
static void opt_emit(const opt_sizes *z, const opt_table *T, int s, int t, uint64_t m,
                     opt_cand *cands, ckpt_oplist *l)
{
    size_t n = opt_candidates(z, T, s, t, cands);
    size_t best = 0;
    double best_v = OPT_INF;
    for (size_t k = 0; k < n; k++) {
        if (cands[k].need > m)
            continue;
        double v = opt_cand_value(T, &cands[k], m);
        if (v < best_v)
            best_v = v, best = k;
    }
    opt_cand c = cands[best]; /* the caller guarantees m >= lb(s, t): some candidate fits */
    if (c.kind <= 0) {
        ckpt_push(l, REMAT_OP_F_ALL, s, -c.kind - 1);
        if (t > s + 1)
            opt_emit(z, T, s + 1, t, m - c.d1, cands, l);
        ckpt_push(l, REMAT_OP_B, s, -1);
        return;
    }
    int sp = s + c.kind;
    opt_forward_to(l, s, sp);
    opt_emit(z, T, sp, t, m - c.d1, cands, l);
    opt_emit(z, T, s, sp, m, cands, l);
}

/* opt_emit from the top with its scratch list. */
static void opt_emit_top(const opt_sizes *z, const opt_table *T, uint64_t m, ckpt_oplist *l)
{
    int max_var = 0;
    for (int i = 0; i < z->L; i++)
        if (z->n_var[i] > max_var)
            max_var = z->n_var[i];
    opt_cand *cands = malloc(((size_t)max_var + (size_t)z->L) * sizeof *cands);
    if (!cands) {
        l->oom = 1;
        return;
    }
    opt_emit(z, T, 0, z->L, m, cands, l);
    free(cands);
}

/* Emits the least-memory schedule of (s, t) from the bounds' choices. */
static void opt_emit_min(const opt_bounds *b, int s, int t, ckpt_oplist *l)
{
    int c = b->lb_choice[opt_idx(s, t)];
    if (c <= 0) {
        ckpt_push(l, REMAT_OP_F_ALL, s, -c - 1);
        if (t > s + 1)
            opt_emit_min(b, s + 1, t, l);
        ckpt_push(l, REMAT_OP_B, s, -1);
        return;
    }
    opt_forward_to(l, s, s + c);
    opt_emit_min(b, s + c, t, l);
    opt_emit_min(b, s, s + c, l);
}

/* Emits the fastest schedule: every stage stored with its fastest variant. */
static void opt_emit_fastest(const opt_sizes *z, ckpt_oplist *l)
{
    for (int i = 0; i < z->L; i++)
        ckpt_push(l, REMAT_OP_F_ALL, i, z->best[i] - 1);
    for (int i = z->L - 1; i >= 0; i--)
        ckpt_push(l, REMAT_OP_B, i, -1);
}

/* ==== units ================================================================================= */

static uint64_t opt_gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* The common unit of every size of the chain but a_0 (which the DP never sees), and of extra. */
static uint64_t opt_chain_gcd(const remat_chain *c, uint64_t extra)
{
    uint64_t g = extra;
    for (int i = 0; i < c->n_stages; i++) {
        const remat_stage *s = &c->stages[i];
        g = opt_gcd(g, s->out_bytes);
        g = opt_gcd(g, s->saved_bytes);
        g = opt_gcd(g, s->fwd_tmp_bytes);
        g = opt_gcd(g, s->bwd_tmp_bytes);
        for (int k = 0; k < s->n_options; k++) {
            g = opt_gcd(g, s->options[k].saved_bytes);
            g = opt_gcd(g, s->options[k].extra_fwd_tmp_bytes);
            g = opt_gcd(g, s->options[k].extra_bwd_tmp_bytes);
        }
    }
    return g;
}

/* The unit for memory `avail`: the exact common unit when it gives at most 10,000 slots, else
 * avail / slots rounded up. */
static uint64_t opt_unit(const remat_chain *c, uint64_t avail, int slots)
{
    uint64_t g = opt_chain_gcd(c, avail);
    if (g == 0)
        return 1;
    if (avail / g <= OPT_EXACT_SLOTS)
        return g;
    uint64_t n = (uint64_t)(slots > 0 ? slots : OPT_DEFAULT_SLOTS);
    uint64_t u = avail / n + (avail % n != 0);
    return u ? u : 1;
}

/* Builds sizes, bounds and the table for memory `avail` bytes, coarsening the unit until the table
 * fits in OPT_MAX_ENTRIES cells. */
/* Estimated relax steps of a table at `unit`: per row, its candidates times its width, from the
 * bounds in bytes (the unit's own bounds differ by rounding only); widened by a quarter for the
 * extension of opt_solve. */
static double opt_work(const opt_bounds *bb, const remat_chain *c, uint64_t avail, uint64_t unit)
{
    double work = 0;
    int L = c->n_stages;
    for (int t = 1; t <= L; t++)
        for (int s = 0; s < t; s++) {
            size_t e = opt_idx(s, t);
            if (bb->lb[e] > avail)
                continue;
            uint64_t hi = bb->ub[e] < avail ? bb->ub[e] : avail;
            double width = (double)((hi - bb->lb[e]) / unit) * 1.25 + OPT_CAND_COST;
            work += width * (double)(c->stages[s].n_options + 1 + (t - s - 1));
        }
    return work;
}

/* The unit for `avail` (opt_unit), coarsened until the table's estimated work is under
 * OPT_MAX_WORK: the solve time is then bounded whatever the chain and budget. */
static uint64_t opt_unit_bounded(const remat_chain *c, const opt_bounds *bb, uint64_t avail,
                                 int slots)
{
    uint64_t unit = opt_unit(c, avail, slots);
    if (opt_work(bb, c, avail, unit) <= OPT_MAX_WORK)
        return unit;
    uint64_t lo = unit, hi = avail > unit ? avail : unit; /* work(hi) is the least there is */
    while (lo + 1 < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (opt_work(bb, c, avail, mid) <= OPT_MAX_WORK)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static remat_status opt_solve(const remat_chain *c, const opt_bounds *bb, uint64_t avail, int slots,
                              int extend, opt_sizes *z, opt_bounds *b, opt_table *T)
{
    uint64_t unit = opt_unit_bounded(c, bb, avail, slots);
    for (;;) {
        REMAT_TRY(opt_sizes_make(c, unit, z));
        remat_status s = opt_bounds_make(z, b);
        if (s != REMAT_OK) {
            opt_sizes_free(z);
            return s;
        }
        uint64_t M = avail / unit;
        if (extend && opt_chain_gcd(c, avail) % unit != 0) /* see opt_widest_fit */
            M += M / 4 < 2 * (uint64_t)c->n_stages + 8 ? M / 4 : 2 * (uint64_t)c->n_stages + 8;
        if (opt_cells_for(b, c->n_stages, M) <= OPT_MAX_ENTRIES || M < 2) {
            s = opt_table_make(z, b, M, T);
            if (s != REMAT_OK) {
                opt_bounds_free(b);
                opt_sizes_free(z);
            }
            return s;
        }
        opt_bounds_free(b);
        opt_sizes_free(z);
        unit = unit * 2;
    }
}

/* ==== entry points ========================================================================== */

static remat_status opt_check_chain(const remat_chain *c)
{
    if (c->n_stages > OPT_MAX_STAGES)
        return remat_fail(REMAT_EUNSUPPORTED,
                          "chain '%s' has %d stages; the optimal policy solves at most %d (its "
                          "time grows as the cube of the stages): use revolve, sqrt or periodic:K",
                          c->name, c->n_stages, OPT_MAX_STAGES);
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].n_options > 30000)
            return remat_fail(REMAT_EUNSUPPORTED, "stage %d has %d options; at most 30000", i,
                              c->stages[i].n_options);
    return REMAT_OK;
}

/* Bounds in bytes (unit 1): exact least memory and fastest-schedule memory. */
static remat_status opt_byte_bounds(const remat_chain *c, opt_sizes *z, opt_bounds *b)
{
    REMAT_TRY(opt_check_chain(c));
    REMAT_TRY(opt_sizes_make(c, 1, z));
    remat_status s = opt_bounds_make(z, b);
    if (s != REMAT_OK)
        opt_sizes_free(z);
    return s;
}

remat_status ckpt_optimal_min_budget(const remat_chain *c, uint64_t *out)
{
    opt_sizes z;
    opt_bounds b = {0};
    REMAT_TRY(opt_byte_bounds(c, &z, &b));
    *out = chain_act_bytes(c, 0) + b.lb[opt_idx(0, c->n_stages)];
    opt_bounds_free(&b);
    opt_sizes_free(&z);
    return REMAT_OK;
}

/* Time of an op list under the model (the list is valid by construction; the caller checks). */
static double opt_time(const remat_chain *c, const ckpt_oplist *l)
{
    remat_sim_result r;
    if (l->oom || remat_simulate(c, l->ops, l->n, &r) != REMAT_OK || !r.valid)
        return OPT_INF;
    return r.time;
}

/* Peak of the table's schedule at m units, or UINT64_MAX if it cannot be built. */
static uint64_t opt_peak_at(const remat_chain *c, const opt_sizes *z, const opt_table *T,
                            uint64_t m)
{
    ckpt_oplist l = {0};
    remat_sim_result r;
    opt_emit_top(z, T, m, &l);
    uint64_t peak = UINT64_MAX;
    if (!l.oom && remat_simulate(c, l.ops, l.n, &r) == REMAT_OK && r.valid)
        peak = r.peak_bytes;
    ckpt_oplist_free(&l);
    return peak;
}

/* The most units m in [M, T->M] whose schedule still fits the budget in bytes (M's does).
 * Rounding every size up leaves slack (up to a unit per live buffer), so a plan made for a few
 * more units than the budget's often fits it exactly; the table is built that much wider and
 * searched by bisection (fit is nearly monotone in m, and rows never rise with m; every answer
 * is verified by simulation, so a non-monotone step can only cost time, never the budget). */
static uint64_t opt_widest_fit(const remat_chain *c, const opt_sizes *z, const opt_table *T,
                               uint64_t M, uint64_t budget)
{
    uint64_t lo = M, hi = T->M;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (opt_peak_at(c, z, T, mid) <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* The DP's schedule within avail bytes, or the least-memory one when rounding left none. */
static remat_status opt_plan_dp(const remat_chain *c, int slots, uint64_t avail,
                                const opt_bounds *bytes_b, ckpt_oplist *l, int *exact)
{
    opt_sizes z;
    opt_bounds b = {0};
    opt_table T;
    REMAT_TRY(opt_solve(c, bytes_b, avail, slots, 1, &z, &b, &T));
    /* exact when every size and the budget are whole units: rounding then changes nothing */
    *exact = opt_chain_gcd(c, avail) % z.unit == 0;
    int L = c->n_stages;
    uint64_t M = avail / z.unit;
    ckpt_oplist dp = {0}, least = {0};
    uint64_t budget = avail + chain_act_bytes(c, 0), top_lo = T.lo[opt_idx(0, L)];
    if (!opt_row_empty(&T, opt_idx(0, L)) && top_lo <= M)
        opt_emit_top(&z, &T, *exact ? M : opt_widest_fit(c, &z, &T, M, budget), &dp);
    else if (!opt_row_empty(&T, opt_idx(0, L)) && !*exact && top_lo <= T.M &&
             opt_peak_at(c, &z, &T, top_lo) <= budget) /* rounding hid a plan that fits */
        opt_emit_top(&z, &T, opt_widest_fit(c, &z, &T, top_lo, budget), &dp);
    opt_emit_min(bytes_b, 0, L, &least);
    double t_dp = dp.n ? opt_time(c, &dp) : OPT_INF, t_least = opt_time(c, &least);
    remat_status s = REMAT_OK;
    if (dp.oom || least.oom)
        s = remat_fail(REMAT_ENOMEM, "optimal schedule: out of memory");
    else if (t_dp <= t_least) {
        *exact = *exact && dp.n > 0;
        *l = dp;
        dp = (ckpt_oplist){0};
    } else {
        *exact = 0;
        *l = least;
        least = (ckpt_oplist){0};
    }
    ckpt_oplist_free(&dp);
    ckpt_oplist_free(&least);
    opt_table_free(&T);
    opt_bounds_free(&b);
    opt_sizes_free(&z);
    return s;
}

remat_status ckpt_optimal_plan(const remat_chain *c, int slots, uint64_t budget, ckpt_oplist *l,
                               int *exact)
{
    *exact = 1;
    uint64_t x0 = chain_act_bytes(c, 0);
    if (budget < x0)
        return REMAT_EINFEASIBLE;
    uint64_t avail = budget - x0;
    opt_sizes z;
    opt_bounds b = {0};
    REMAT_TRY(opt_byte_bounds(c, &z, &b));
    size_t top = opt_idx(0, c->n_stages);
    remat_status s = REMAT_OK;
    if (b.lb[top] > avail)
        s = REMAT_EINFEASIBLE;
    else if (b.ub[top] <= avail)
        opt_emit_fastest(&z, l);
    else
        s = opt_plan_dp(c, slots, avail, &b, l, exact);
    opt_bounds_free(&b);
    opt_sizes_free(&z);
    if (s == REMAT_OK && l->oom)
        s = remat_fail(REMAT_ENOMEM, "optimal schedule: out of memory");
    return s;
}

/* ==== the Pareto curve ====================================================================== */

typedef struct {
    remat_curve_point *p;
    size_t n, cap;
} opt_points;

static remat_status opt_add_point(const remat_chain *c, const ckpt_oplist *l, opt_points *pts)
{
    remat_sim_result r;
    if (l->oom)
        return remat_fail(REMAT_ENOMEM, "curve: out of memory");
    REMAT_TRY(remat_simulate(c, l->ops, l->n, &r));
    if (!r.valid)
        return remat_fail(REMAT_EINTERNAL, "curve: invalid schedule: op %zu: %s", r.bad_op, r.why);
    if (pts->n == pts->cap) {
        size_t cap = pts->cap ? pts->cap * 2 : 32;
        remat_curve_point *p = realloc(pts->p, cap * sizeof *p);
        if (!p)
            return remat_fail(REMAT_ENOMEM, "curve: out of memory");
        pts->p = p;
        pts->cap = cap;
    }
    double base = chain_base_time(c);
    pts->p[pts->n++] = (remat_curve_point){r.peak_bytes, r.peak_bytes, r.time,
                                           base > 0 ? r.time / base - 1.0 : 0.0};
    return REMAT_OK;
}

static int opt_point_cmp(const void *a, const void *b)
{
    const remat_curve_point *p = a, *q = b;
    if (p->peak_bytes != q->peak_bytes)
        return p->peak_bytes < q->peak_bytes ? -1 : 1;
    return p->time < q->time ? -1 : p->time > q->time;
}

/* Sorts by peak and keeps only points faster than every smaller one (by more than rounding:
 * the same schedule time summed in another order may differ in its last bits). */
static void opt_pareto(opt_points *pts)
{
    qsort(pts->p, pts->n, sizeof *pts->p, opt_point_cmp);
    size_t k = 0;
    for (size_t i = 0; i < pts->n; i++)
        if (k == 0 || pts->p[i].time < pts->p[k - 1].time - 1e-9 * fabs(pts->p[k - 1].time))
            pts->p[k++] = pts->p[i];
    pts->n = k;
}

/* One point per budget at which the table's top row improves. */
static remat_status opt_curve_table(const remat_chain *c, const opt_sizes *z, const opt_table *T,
                                    opt_points *pts)
{
    size_t e = opt_idx(0, c->n_stages);
    if (opt_row_empty(T, e))
        return REMAT_OK;
    const double *row = T->cost + T->off[e];
    for (uint64_t k = 0; k <= T->hi[e] - T->lo[e]; k++) {
        if (k > 0 && !(row[k] < row[k - 1]))
            continue;
        uint64_t m = T->lo[e] + k;
        ckpt_oplist l = {0};
        opt_emit_top(z, T, m, &l);
        remat_status s = opt_add_point(c, &l, pts);
        ckpt_oplist_free(&l);
        REMAT_TRY(s);
    }
    return REMAT_OK;
}

static remat_status opt_curve_points(const remat_chain *c, int slots, opt_points *pts)
{
    opt_sizes zb, z;
    opt_bounds bb = {0}, b = {0};
    opt_table T;
    REMAT_TRY(opt_byte_bounds(c, &zb, &bb));
    int L = c->n_stages;
    ckpt_oplist least = {0}, fastest = {0};
    opt_emit_min(&bb, 0, L, &least);
    opt_emit_fastest(&zb, &fastest);
    remat_status s = opt_add_point(c, &least, pts);
    if (s == REMAT_OK)
        s = opt_add_point(c, &fastest, pts);
    uint64_t top = bb.ub[opt_idx(0, L)];
    if (s == REMAT_OK && top > 0)
        s = opt_solve(c, &bb, top, slots, 0, &z, &b, &T);
    if (s == REMAT_OK && top > 0) {
        s = opt_curve_table(c, &z, &T, pts);
        opt_table_free(&T);
        opt_bounds_free(&b);
        opt_sizes_free(&z);
    }
    ckpt_oplist_free(&least);
    ckpt_oplist_free(&fastest);
    opt_bounds_free(&bb);
    opt_sizes_free(&zb);
    return s;
}

remat_status remat_curve(const remat_chain *chain, const remat_policy *policy,
                         remat_curve_point **out, size_t *n_out)
{
    if (!out || !n_out)
        return remat_fail(REMAT_EINVAL, "remat_curve: out and n_out must not be NULL");
    REMAT_TRY(chain_validate(chain));
    if (policy && policy->kind != REMAT_POLICY_OPTIMAL)
        return remat_fail(REMAT_EUNSUPPORTED, "remat_curve: the curve is the optimal policy's; "
                                              "other policies have one plan each");
    if (policy && (policy->slots < 0 || policy->slots > 1000000))
        return remat_fail(REMAT_EINVAL, "remat_curve: slots %d out of range", policy->slots);
    opt_points pts = {0};
    remat_status s = opt_curve_points(chain, policy ? policy->slots : 0, &pts);
    if (s != REMAT_OK) {
        free(pts.p);
        return s;
    }
    opt_pareto(&pts);
    *out = pts.p;
    *n_out = pts.n;
    return REMAT_OK;
}

/* tests/unit/test_layout.c: remat_layout_plan against independent oracles: random instances checked
 * pair by pair (no two buffers live at a same op overlap in address), the lower bound recomputed
 * op by op, alignment, a naive greedy-by-size best-fit that the planner must never lose to, the
 * instances whose optimum is known (nested lifetimes, disjoint lifetimes, one common op), and bad
 * input. */
#include "tests/common/test_rng.h"
#include "remat.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static uint64_t align_up(uint64_t b, uint64_t a)
{
    return (b + a - 1) / a * a;
}

/* ==== Oracles ================================================================================ */

static int lives_overlap(const remat_layout_buffer *a, const remat_layout_buffer *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* The most aligned bytes live at any op, trying every op where a lifetime starts. */
static uint64_t oracle_lower_bound(const remat_layout_buffer *b, size_t n, uint64_t align)
{
    uint64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t live = 0;
        for (size_t j = 0; j < n; j++)
            if (b[j].first <= b[i].first && b[i].first <= b[j].last)
                live += align_up(b[j].bytes, align);
        if (live > best)
            best = live;
    }
    return best;
}

/* Every pair: lifetime overlap implies disjoint address ranges; offsets aligned; inside the arena.
 */
static void check_layout(const remat_layout_buffer *b, size_t n, uint64_t align,
                         const uint64_t *off, const remat_layout_result *r)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t si = align_up(b[i].bytes, align);
        cr_assert_eq(off[i] % align, 0, "buffer %zu at %llu is not %llu-aligned", i,
                     (unsigned long long)off[i], (unsigned long long)align);
        if (si)
            cr_assert_leq(off[i] + si, r->arena_bytes, "buffer %zu ends past the arena", i);
        for (size_t j = i + 1; j < n; j++) {
            uint64_t sj = align_up(b[j].bytes, align);
            if (!si || !sj || !lives_overlap(&b[i], &b[j]))
                continue;
            cr_assert(off[i] + si <= off[j] || off[j] + sj <= off[i],
                      "buffers %zu [%llu,+%llu) and %zu [%llu,+%llu) overlap while both live", i,
                      (unsigned long long)off[i], (unsigned long long)si, j,
                      (unsigned long long)off[j], (unsigned long long)sj);
        }
    }
    cr_assert_eq(r->lower_bound_bytes, oracle_lower_bound(b, n, align));
    cr_assert_geq(r->arena_bytes, r->lower_bound_bytes);
    cr_assert(r->heuristic && r->heuristic[0], "no heuristic named");
}

typedef struct {
    uint64_t size, first, last;
    size_t idx;
} naive_item;

static int naive_order(const void *pa, const void *pb)
{
    const naive_item *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    if (a->last - a->first != b->last - b->first)
        return a->last - a->first > b->last - b->first ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->idx < b->idx ? -1 : 1;
}

static int by_offset(const void *pa, const void *pb)
{
    const uint64_t *a = pa, *b = pb;
    return a[0] < b[0] ? -1 : a[0] > b[0];
}

/* Greedy by size, best fit, written the slow obvious way: for each buffer (largest first), gather
 * the placed buffers whose lifetimes overlap, sort them by offset, take the smallest gap that holds
 * it, else the top. Returns the arena. */
static uint64_t naive_greedy_by_size(const remat_layout_buffer *b, size_t n, uint64_t align)
{
    naive_item *it = malloc(sizeof *it * n);
    uint64_t *off = calloc(n, sizeof *off), *busy = malloc(sizeof *busy * 2 * n);
    char *placed = calloc(n, 1);
    for (size_t i = 0; i < n; i++)
        it[i] = (naive_item){align_up(b[i].bytes, align), b[i].first, b[i].last, i};
    qsort(it, n, sizeof *it, naive_order);
    uint64_t arena = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = it[k].idx, m = 0;
        uint64_t s = it[k].size;
        if (!s)
            continue;
        for (size_t j = 0; j < n; j++)
            if (placed[j] && lives_overlap(&b[i], &b[j]))
                busy[2 * m] = off[j], busy[2 * m + 1] = off[j] + align_up(b[j].bytes, align), m++;
        qsort(busy, m, 2 * sizeof *busy, by_offset);
        uint64_t cursor = 0, best_gap = UINT64_MAX, at = UINT64_MAX;
        for (size_t q = 0; q < m; q++) {
            if (busy[2 * q] > cursor && busy[2 * q] - cursor >= s &&
                busy[2 * q] - cursor < best_gap)
                best_gap = busy[2 * q] - cursor, at = cursor;
            if (busy[2 * q + 1] > cursor)
                cursor = busy[2 * q + 1];
        }
        off[i] = at == UINT64_MAX ? cursor : at;
        placed[i] = 1;
        if (off[i] + s > arena)
            arena = off[i] + s;
    }
    free(it), free(off), free(busy), free(placed);
    return arena;
}

static int naive_start_order(const void *pa, const void *pb)
{
    const naive_item *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->last - a->first != b->last - b->first)
        return a->last - a->first > b->last - b->first ? -1 : 1;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    return a->idx < b->idx ? -1 : 1;
}

/* Lifetime order, first fit, the slow obvious way: buffers by first op (longer, then larger, first
 * on ties), each at the lowest gap between the placed buffers whose lifetimes overlap its own that
 * holds it, else on top of them. Returns the arena. */
static uint64_t naive_lifetime_first_fit(const remat_layout_buffer *b, size_t n, uint64_t align)
{
    naive_item *it = malloc(sizeof *it * n);
    uint64_t *off = calloc(n, sizeof *off), *busy = malloc(sizeof *busy * 2 * n);
    char *placed = calloc(n, 1);
    for (size_t i = 0; i < n; i++)
        it[i] = (naive_item){align_up(b[i].bytes, align), b[i].first, b[i].last, i};
    qsort(it, n, sizeof *it, naive_start_order);
    uint64_t arena = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = it[k].idx, m = 0;
        uint64_t s = it[k].size;
        if (!s)
            continue;
        for (size_t j = 0; j < n; j++)
            if (placed[j] && lives_overlap(&b[i], &b[j]))
                busy[2 * m] = off[j], busy[2 * m + 1] = off[j] + align_up(b[j].bytes, align), m++;
        qsort(busy, m, 2 * sizeof *busy, by_offset);
        uint64_t cursor = 0, at = UINT64_MAX;
        for (size_t q = 0; q < m && at == UINT64_MAX; q++) {
            if (busy[2 * q] > cursor && busy[2 * q] - cursor >= s)
                at = cursor;
            if (busy[2 * q + 1] > cursor)
                cursor = busy[2 * q + 1];
        }
        off[i] = at == UINT64_MAX ? cursor : at;
        placed[i] = 1;
        if (off[i] + s > arena)
            arena = off[i] + s;
    }
    free(it), free(off), free(busy), free(placed);
    return arena;
}

static remat_layout_result plan_ok(const remat_layout_buffer *b, size_t n, uint64_t align,
                                   uint64_t *off)
{
    remat_layout_result r;
    cr_assert_eq(remat_layout_plan(b, n, align, off, &r), REMAT_OK, "%s", remat_last_error());
    return r;
}

/* ==== Random instances ======================================================================= */

/* n buffers over `ops` ops: sizes log-uniform up to 2^bits (some 0 and unaligned), lifetimes of
 * random length, a few spanning most of the step. */
static void random_instance(uint64_t *seed, remat_layout_buffer *b, size_t n, uint64_t ops,
                            int bits)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes =
            test_rng_below(seed, 30) == 0
                ? 0
                : test_rng_below(seed, (uint64_t)1 << test_rng_below(seed, (uint64_t)bits + 1)) + 1;
        uint64_t f = test_rng_below(seed, ops);
        uint64_t len =
            test_rng_below(seed, 8) == 0 ? test_rng_below(seed, ops) : test_rng_below(seed, ops / 8 + 1);
        uint64_t l = f + len < ops ? f + len : ops - 1;
        b[i] = (remat_layout_buffer){bytes, f, l};
    }
}

Test(layout, random_instances_never_overlap_and_beat_naive_greedy)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    static const uint64_t aligns[] = {0, 1, 8, 512, 4096};
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + (size_t)test_rng_below(&seed, round < 200 ? 40 : 400);
        uint64_t ops = 1 + test_rng_below(&seed, 3 * n);
        uint64_t align = aligns[test_rng_below(&seed, 5)];
        uint64_t eff = align ? align : 512;
        remat_layout_buffer *b = malloc(sizeof *b * n);
        uint64_t *off = malloc(sizeof *off * n);
        random_instance(&seed, b, n, ops, round % 2 ? 24 : 12);
        remat_layout_result r = plan_ok(b, n, align, off);
        check_layout(b, n, eff, off, &r);
        uint64_t naive = naive_greedy_by_size(b, n, eff);
        cr_assert_leq(r.arena_bytes, naive, "round %d: arena %llu > naive greedy-by-size %llu",
                      round, (unsigned long long)r.arena_bytes, (unsigned long long)naive);
        free(b), free(off);
    }
}

/* Lifetime-order first fit runs as a sweep over lifetime starts (the live buffers in an offset
 * tree, retired at their last op): the planner never loses to it written the slow way, on
 * instances full of ties (many buffers starting or ending at one op, lifetimes that end where
 * others start) and of the online-allocator shape it suits (short lifetimes, every size). */
Test(layout, never_loses_to_naive_lifetime_order_first_fit)
{
    uint64_t seed = 0x243F6A8885A308D3ull;
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + (size_t)test_rng_below(&seed, round < 200 ? 60 : 500);
        uint64_t ops = 1 + test_rng_below(&seed, round % 3 ? n / 2 + 1 : 3 * n);
        remat_layout_buffer *b = malloc(sizeof *b * n);
        uint64_t *off = malloc(sizeof *off * n);
        random_instance(&seed, b, n, ops, round % 2 ? 20 : 10);
        remat_layout_result r = plan_ok(b, n, 512, off);
        check_layout(b, n, 512, off, &r);
        uint64_t naive = naive_lifetime_first_fit(b, n, 512);
        cr_assert_leq(r.arena_bytes, naive,
                      "round %d: arena %llu > naive lifetime-order first fit %llu (%s)", round,
                      (unsigned long long)r.arena_bytes, (unsigned long long)naive, r.heuristic);
        free(b), free(off);
    }
}

/* A training step's shape: activations saved in the forward and freed in reverse in the backward
 * (nested), gradients flowing between neighbours, short workspaces in between. */
Test(layout, training_step_shapes_stay_within_two_percent)
{
    uint64_t seed = 42;
    for (int round = 0; round < 20; round++) {
        size_t layers = 2 + (size_t)test_rng_below(&seed, 30), n = 0, cap = layers * 8 + 4;
        remat_layout_buffer *b = malloc(sizeof *b * cap);
        uint64_t *off = malloc(sizeof *off * cap), op = 0;
        uint64_t *fwd = malloc(sizeof *fwd * layers * 3);
        for (size_t l = 0; l < layers; l++)
            for (int k = 0; k < 3; k++) {
                fwd[l * 3 + k] = op++;
                if (k == 1)
                    b[n++] = (remat_layout_buffer){(1 + test_rng_below(&seed, 4)) << 20, op, op};
            }
        for (size_t l = layers; l-- > 0;)
            for (int k = 3; k-- > 0;) {
                uint64_t sz = ((uint64_t)(k + 1) << 20) + test_rng_below(&seed, 3) * 4096;
                b[n++] = (remat_layout_buffer){sz, fwd[l * 3 + k], op};
                b[n++] = (remat_layout_buffer){(2 + (uint64_t)k) << 20, op, op + 1};
                op++;
            }
        remat_layout_result r = plan_ok(b, n, 0, off);
        check_layout(b, n, 512, off, &r);
        cr_assert_leq((double)r.arena_bytes, 1.02 * (double)r.lower_bound_bytes,
                      "round %d: arena %llu vs bound %llu (%s)", round,
                      (unsigned long long)r.arena_bytes, (unsigned long long)r.lower_bound_bytes,
                      r.heuristic);
        free(b), free(off), free(fwd);
    }
}

/* ==== Instances with a known optimum ========================================================= */

/* Nested lifetimes (each two nested or disjoint, like a call stack): stacking each buffer on its
 * enclosing ones reaches the bound exactly. Built by a random walk of pushes and pops. */
Test(layout, nested_lifetimes_reach_the_lower_bound)
{
    uint64_t seed = 7;
    for (int round = 0; round < 100; round++) {
        size_t n = 1 + (size_t)test_rng_below(&seed, 200), made = 0, depth = 0;
        remat_layout_buffer *b = malloc(sizeof *b * n);
        uint64_t *off = malloc(sizeof *off * n), op = 0;
        size_t *stack = malloc(sizeof *stack * n);
        while (made < n || depth) {
            int push = made < n && (depth == 0 || test_rng_below(&seed, 2));
            if (push) {
                b[made] = (remat_layout_buffer){1 + test_rng_below(&seed, 1 << 20), op, 0};
                stack[depth++] = made++;
                if (test_rng_below(&seed, 2))
                    op++; /* or the next one starts at the same op, enclosed */
            } else {
                b[stack[--depth]].last = op++; /* the next lifetime starts after this one */
            }
        }
        remat_layout_result r = plan_ok(b, n, 0, off);
        check_layout(b, n, 512, off, &r);
        cr_assert_eq(r.arena_bytes, r.lower_bound_bytes, "round %d: %llu vs bound %llu (%s)", round,
                     (unsigned long long)r.arena_bytes, (unsigned long long)r.lower_bound_bytes,
                     r.heuristic);
        free(b), free(off), free(stack);
    }
}

Test(layout, disjoint_lifetimes_share_offset_zero)
{
    remat_layout_buffer b[50];
    uint64_t off[50], largest = 0;
    for (size_t i = 0; i < 50; i++) {
        b[i] = (remat_layout_buffer){1000 + 37 * i * i, 2 * i, 2 * i + 1};
        if (align_up(b[i].bytes, 512) > largest)
            largest = align_up(b[i].bytes, 512);
    }
    remat_layout_result r = plan_ok(b, 50, 0, off);
    check_layout(b, 50, 512, off, &r);
    cr_assert_eq(r.arena_bytes, largest);
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(off[i], 0);
}

Test(layout, one_common_op_needs_the_sum)
{
    remat_layout_buffer b[20];
    uint64_t off[20], sum = 0;
    for (size_t i = 0; i < 20; i++) {
        b[i] = (remat_layout_buffer){100 * (i + 1), i, 40 - i};
        sum += align_up(b[i].bytes, 64);
    }
    remat_layout_result r = plan_ok(b, 20, 64, off);
    check_layout(b, 20, 64, off, &r);
    cr_assert_eq(r.arena_bytes, sum);
    cr_assert_eq(r.lower_bound_bytes, sum);
}

/* Zero-byte buffers take no room; align 0 means 512; one byte rounds to a whole unit. */
Test(layout, sizes_round_up_to_the_alignment)
{
    remat_layout_buffer b[3] = {{1, 0, 5}, {0, 0, 5}, {513, 3, 4}};
    uint64_t off[3];
    remat_layout_result r = plan_ok(b, 3, 0, off);
    check_layout(b, 3, 512, off, &r);
    cr_assert_eq(r.arena_bytes, 512 + 1024);
    cr_assert_eq(r.lower_bound_bytes, 512 + 1024);
    r = plan_ok(b, 3, 1, off);
    cr_assert_eq(r.arena_bytes, 514);
    r = plan_ok(NULL, 0, 0, NULL);
    cr_assert_eq(r.arena_bytes, 0);
    cr_assert_eq(r.lower_bound_bytes, 0);
}

/* ==== Bad input ============================================================================== */

static void expect_einval(const remat_layout_buffer *b, size_t n, uint64_t align, uint64_t *off,
                          remat_layout_result *r, const char *needle)
{
    remat_clear_error();
    cr_assert_eq(remat_layout_plan(b, n, align, off, r), REMAT_EINVAL, "accepted (%s)", needle);
    cr_assert(strstr(remat_last_error(), needle), "message '%s' lacks '%s'", remat_last_error(),
              needle);
}

Test(layout, bad_input_is_einval_naming_the_problem)
{
    remat_layout_buffer ok[2] = {{10, 0, 1}, {10, 1, 2}};
    uint64_t off[2];
    remat_layout_result r;
    expect_einval(NULL, 2, 0, off, &r, "NULL");
    expect_einval(ok, 2, 0, NULL, &r, "NULL");
    expect_einval(ok, 2, 0, off, NULL, "NULL");
    expect_einval(ok, 2, 3, off, &r, "align 3 is not a power of two");
    expect_einval(ok, 2, 768, off, &r, "align 768");
    remat_layout_buffer backwards[2] = {{10, 0, 1}, {10, 5, 4}};
    expect_einval(backwards, 2, 0, off, &r, "buffer 1 lives from op 5 to op 4");
    remat_layout_buffer huge[1] = {{UINT64_MAX - 10, 0, 0}};
    expect_einval(huge, 1, 512, off, &r, "overflows");
    remat_layout_buffer sum[3] = {
        {(uint64_t)1 << 63, 0, 0}, {(uint64_t)1 << 62, 0, 0}, {(uint64_t)1 << 62, 0, 0}};
    expect_einval(sum, 3, 512, off, &r, "2^64");
}

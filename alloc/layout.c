/* alloc/layout.c: offset planning for a known set of buffers (remat_layout_plan). Every buffer has
 * a size and a lifetime [first, last] in op order; the planner gives each one an offset in a single
 * arena so that buffers live at a same op never overlap, and keeps the smallest arena among several
 * greedy heuristics:
 *   - greedy by size, best fit (the TFLite arena planner; Pisarchyk & Lee 2020): largest first,
 *     each into the smallest gap left between the already placed buffers whose lifetimes overlap;
 *   - greedy by breadth (Pisarchyk & Lee): buffers of the op with the most bytes live first;
 *   - greedy by area (size x lifetime) and by lifetime length (XLA's spatial/temporal orders);
 *   - lifetime order, first fit (what an online allocator without fragmentation would do);
 *   and keeps the smallest, as XLA's "choose the best heap". A compaction pass (every buffer,
 * lowest first, drops to the lowest free offset) then runs when the winner is above the lower
 * bound. Lifetime order runs first, as a sweep in O(n log n) (layout_place_sweep): on training
 * steps it often reaches the lower bound, and the planner stops there. A heuristic whose order
 * repeats an earlier one's with the same fit is skipped.
 *
 * The placed buffers are kept sorted by offset in chunks of up to LAYOUT_CHUNK; each chunk knows
 * the hull of its lifetimes, whether a query's lifetime overlaps all of them, and the largest gap
 * between its own buffers. Placing a buffer walks the chunks once: a chunk whose lifetimes all miss
 * it is skipped, one whose lifetimes all overlap it and whose gaps are too small is taken whole,
 * and only the others are walked buffer by buffer. On a training step (offsets follow lifetimes)
 * that makes a placement about O(chunks); in the worst case it is O(placed buffers). The sweep
 * needs none of this (see its own comment). */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

#define LAYOUT_NONE UINT32_MAX
#define LAYOUT_CHUNK 64

typedef struct {
    uint32_t n;
    uint64_t min_first, max_first, min_last, max_last; /* lifetime hull and core */
    uint64_t max_end;                                  /* highest end of a buffer in the chunk */
    uint64_t max_gap; /* largest gap between its buffers if all of them overlap a query */
    uint64_t off[LAYOUT_CHUNK], end[LAYOUT_CHUNK], first[LAYOUT_CHUNK], last[LAYOUT_CHUNK];
} layout_chunk;

typedef struct {
    size_t n;
    const uint64_t *size; /* aligned sizes */
    const uint64_t *first, *last;
    uint64_t *off; /* the placement being built */
    /* the placed buffers: chunks (from `chunks`) in offset order in `seq` */
    layout_chunk *chunks;
    uint32_t *seq;
    size_t n_seq, n_chunks;
} layout_ctx;

/* ---- The placed set -------------------------------------------------------------------------- */

static void layout_reset(layout_ctx *c)
{
    c->n_seq = c->n_chunks = 0;
}

/* Recomputes a chunk's summary after its buffers changed. */
static void layout_summarise(layout_chunk *ch)
{
    ch->min_first = ch->min_last = UINT64_MAX;
    ch->max_first = ch->max_last = 0;
    uint64_t cursor = ch->off[0], gap = 0;
    for (uint32_t e = 0; e < ch->n; e++) {
        if (ch->first[e] < ch->min_first)
            ch->min_first = ch->first[e];
        if (ch->first[e] > ch->max_first)
            ch->max_first = ch->first[e];
        if (ch->last[e] < ch->min_last)
            ch->min_last = ch->last[e];
        if (ch->last[e] > ch->max_last)
            ch->max_last = ch->last[e];
        if (ch->off[e] > cursor && ch->off[e] - cursor > gap)
            gap = ch->off[e] - cursor;
        if (ch->end[e] > cursor)
            cursor = ch->end[e];
    }
    ch->max_end = cursor, ch->max_gap = gap;
}

/* Adds buffer i at offset `off`, keeping the chunks sorted by offset (a full chunk splits). */
static void layout_insert(layout_ctx *c, uint32_t i, uint64_t off)
{
    c->off[i] = off;
    if (c->n_seq == 0) {
        c->seq[c->n_seq++] = (uint32_t)c->n_chunks;
        c->chunks[c->n_chunks++].n = 0;
    }
    /* the last chunk starting at or below off (else the first) */
    size_t lo = 0, hi = c->n_seq;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (c->chunks[c->seq[mid]].off[0] <= off)
            lo = mid;
        else
            hi = mid;
    }
    layout_chunk *ch = &c->chunks[c->seq[lo]];
    uint32_t p = ch->n;
    while (p > 0 && ch->off[p - 1] > off)
        p--;
    size_t tail = ch->n - p;
    memmove(&ch->off[p + 1], &ch->off[p], tail * sizeof ch->off[0]);
    memmove(&ch->end[p + 1], &ch->end[p], tail * sizeof ch->end[0]);
    memmove(&ch->first[p + 1], &ch->first[p], tail * sizeof ch->first[0]);
    memmove(&ch->last[p + 1], &ch->last[p], tail * sizeof ch->last[0]);
    ch->off[p] = off, ch->end[p] = off + c->size[i];
    ch->first[p] = c->first[i], ch->last[p] = c->last[i];
    ch->n++;
    if (ch->n == LAYOUT_CHUNK) { /* split: the upper half goes to a new chunk after this one */
        layout_chunk *up = &c->chunks[c->n_chunks];
        uint32_t half = LAYOUT_CHUNK / 2;
        up->n = LAYOUT_CHUNK - half;
        memcpy(up->off, &ch->off[half], up->n * sizeof up->off[0]);
        memcpy(up->end, &ch->end[half], up->n * sizeof up->end[0]);
        memcpy(up->first, &ch->first[half], up->n * sizeof up->first[0]);
        memcpy(up->last, &ch->last[half], up->n * sizeof up->last[0]);
        ch->n = half;
        layout_summarise(up);
        memmove(&c->seq[lo + 2], &c->seq[lo + 1], (c->n_seq - lo - 1) * sizeof c->seq[0]);
        c->seq[lo + 1] = (uint32_t)c->n_chunks++;
        c->n_seq++;
    }
    layout_summarise(ch);
}

/* Tracks the walk in offset order: `cursor` is the top of the overlapping buffers seen so far. */
typedef struct {
    uint64_t s, cursor, best_gap, best_off;
    int best_fit, done;
} layout_walk;

/* One overlapping buffer at [o, end): the gap below it is a candidate. */
static void layout_step(layout_walk *w, uint64_t o, uint64_t end)
{
    if (o > w->cursor && o - w->cursor >= w->s && o - w->cursor < w->best_gap) {
        w->best_gap = o - w->cursor, w->best_off = w->cursor;
        w->done = !w->best_fit || w->best_gap == w->s;
    }
    if (end > w->cursor)
        w->cursor = end;
}

/* The offset for buffer i among the placed buffers whose lifetimes overlap its own: the smallest
 * gap that holds it (best_fit) or the lowest one, else the top of those buffers. */
static uint64_t layout_find(const layout_ctx *c, uint32_t i, int best_fit)
{
    uint64_t f = c->first[i], l = c->last[i];
    layout_walk w = {c->size[i], 0, UINT64_MAX, 0, best_fit, 0};
    for (size_t k = 0; k < c->n_seq && !w.done; k++) {
        const layout_chunk *ch = &c->chunks[c->seq[k]];
        if (ch->min_first > l || ch->max_last < f)
            continue; /* no lifetime overlaps */
        if (ch->max_first <= l && ch->min_last >= f && ch->max_gap < w.s) {
            /* all overlap and no gap inside holds it (gaps only shrink with a higher cursor) */
            layout_step(&w, ch->off[0], ch->max_end);
            continue;
        }
        for (uint32_t e = 0; e < ch->n && !w.done; e++)
            if (ch->first[e] <= l && ch->last[e] >= f)
                layout_step(&w, ch->off[e], ch->end[e]);
    }
    return w.best_gap == UINT64_MAX ? w.cursor : w.best_off;
}

/* Places the buffers in `order` (zero-sized ones sit at 0 and take no room); returns the arena. */
static uint64_t layout_place(layout_ctx *c, const uint32_t *order, int best_fit)
{
    uint64_t arena = 0;
    layout_reset(c);
    for (size_t k = 0; k < c->n; k++) {
        uint32_t i = order[k];
        if (c->size[i] == 0) {
            c->off[i] = 0;
            continue;
        }
        uint64_t off = layout_find(c, i, best_fit);
        layout_insert(c, i, off);
        if (off + c->size[i] > arena)
            arena = off + c->size[i];
    }
    return arena;
}

/* ---- Lifetime order, first fit, as a sweep ------------------------------------------------ */

/* Placing buffers in order of their first op, the placed buffers whose lifetimes overlap buffer
 * i's are exactly those still live at its first op (they all started at or before it), and those
 * are pairwise disjoint in address: what remains is an allocator's free list. The live buffers sit
 * in a treap keyed by offset, each node holding the gap below it (down to the previous live
 * buffer's end, or to 0) and the largest gap in its subtree; the lowest gap that holds a buffer is
 * one descent, and a min-heap by last op retires buffers as the sweep passes their end. O(n log n)
 * for the same placement as layout_place(order, first fit) would give. */
typedef struct {
    uint32_t *left, *right, *heap;
    uint64_t *gap, *max_gap; /* per buffer index */
    uint32_t root;
    size_t n_heap;
} layout_sweep;

/* Treap priorities: a fixed mix of the index (balanced in expectation whatever the order). */
static uint32_t sweep_prio(uint32_t i)
{
    uint32_t x = i * 0x9E3779B1u;
    x ^= x >> 15, x *= 0x85EBCA77u, x ^= x >> 13;
    return x;
}

static void sweep_pull(layout_sweep *t, uint32_t x)
{
    uint64_t m = t->gap[x];
    if (t->left[x] != LAYOUT_NONE && t->max_gap[t->left[x]] > m)
        m = t->max_gap[t->left[x]];
    if (t->right[x] != LAYOUT_NONE && t->max_gap[t->right[x]] > m)
        m = t->max_gap[t->right[x]];
    t->max_gap[x] = m;
}

/* Splits the treap at x into the nodes at offsets below `key` (*lo) and the others (*hi). */
static void sweep_split(const layout_ctx *c, layout_sweep *t, uint32_t x, uint64_t key,
                        uint32_t *lo, uint32_t *hi)
{
    if (x == LAYOUT_NONE) {
        *lo = *hi = LAYOUT_NONE;
        return;
    }
    if (c->off[x] < key) {
        sweep_split(c, t, t->right[x], key, &t->right[x], hi);
        *lo = x;
    } else {
        sweep_split(c, t, t->left[x], key, lo, &t->left[x]);
        *hi = x;
    }
    sweep_pull(t, x);
}

/* Joins two treaps, every offset in a below every offset in b. */
static uint32_t sweep_merge(layout_sweep *t, uint32_t a, uint32_t b)
{
    if (a == LAYOUT_NONE)
        return b;
    if (b == LAYOUT_NONE)
        return a;
    if (sweep_prio(a) > sweep_prio(b)) {
        t->right[a] = sweep_merge(t, t->right[a], b);
        sweep_pull(t, a);
        return a;
    }
    t->left[b] = sweep_merge(t, a, t->left[b]);
    sweep_pull(t, b);
    return b;
}

/* Adds delta (mod 2^64) to the gap of the lowest node of x's treap. */
static void sweep_add_lowest(layout_sweep *t, uint32_t x, uint64_t delta)
{
    if (x == LAYOUT_NONE)
        return;
    if (t->left[x] == LAYOUT_NONE)
        t->gap[x] += delta;
    else
        sweep_add_lowest(t, t->left[x], delta);
    sweep_pull(t, x);
}

/* The lowest live buffer with a gap of at least s below it, or LAYOUT_NONE. */
static uint32_t sweep_lowest_gap(const layout_sweep *t, uint64_t s)
{
    uint32_t x = t->root;
    if (x == LAYOUT_NONE || t->max_gap[x] < s)
        return LAYOUT_NONE;
    for (;;) {
        uint32_t l = t->left[x];
        if (l != LAYOUT_NONE && t->max_gap[l] >= s)
            x = l;
        else if (t->gap[x] >= s)
            return x;
        else
            x = t->right[x];
    }
}

/* The end of the highest live buffer (0 if none). */
static uint64_t sweep_top(const layout_ctx *c, const layout_sweep *t)
{
    uint32_t x = t->root;
    if (x == LAYOUT_NONE)
        return 0;
    while (t->right[x] != LAYOUT_NONE)
        x = t->right[x];
    return c->off[x] + c->size[x];
}

/* Buffer i joins the live set at c->off[i], the bottom of a gap or the top: its own gap is 0 and
 * the buffer above it loses size[i] of its gap. */
static void sweep_insert(const layout_ctx *c, layout_sweep *t, uint32_t i)
{
    uint32_t lo, hi;
    sweep_split(c, t, t->root, c->off[i], &lo, &hi);
    sweep_add_lowest(t, hi, (uint64_t)0 - c->size[i]);
    t->left[i] = t->right[i] = LAYOUT_NONE;
    t->gap[i] = t->max_gap[i] = 0;
    t->root = sweep_merge(t, sweep_merge(t, lo, i), hi);
}

/* Buffer i leaves the live set: the buffer above it inherits its gap and its room. */
static void sweep_remove(const layout_ctx *c, layout_sweep *t, uint32_t i)
{
    uint32_t lo, mid, hi;
    sweep_split(c, t, t->root, c->off[i], &lo, &mid);
    sweep_split(c, t, mid, c->off[i] + 1, &mid, &hi);
    sweep_add_lowest(t, hi, t->gap[i] + c->size[i]);
    t->root = sweep_merge(t, lo, hi);
}

/* The min-heap of live buffers by last op. */
static void sweep_heap_push(const layout_ctx *c, layout_sweep *t, uint32_t i)
{
    size_t k = t->n_heap++;
    while (k > 0 && c->last[t->heap[(k - 1) / 2]] > c->last[i]) {
        t->heap[k] = t->heap[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    t->heap[k] = i;
}

static uint32_t sweep_heap_pop(const layout_ctx *c, layout_sweep *t)
{
    uint32_t top = t->heap[0], x = t->heap[--t->n_heap];
    size_t k = 0, n = t->n_heap;
    for (;;) {
        size_t m = 2 * k + 1;
        if (m >= n)
            break;
        if (m + 1 < n && c->last[t->heap[m + 1]] < c->last[t->heap[m]])
            m++;
        if (c->last[t->heap[m]] >= c->last[x])
            break;
        t->heap[k] = t->heap[m];
        k = m;
    }
    t->heap[k] = x;
    return top;
}

/* Places the buffers in `order` (sorted by first op) first fit; returns the arena. */
static uint64_t layout_place_sweep(layout_ctx *c, layout_sweep *t, const uint32_t *order)
{
    uint64_t arena = 0;
    t->root = LAYOUT_NONE, t->n_heap = 0;
    for (size_t k = 0; k < c->n; k++) {
        uint32_t i = order[k];
        if (c->size[i] == 0) {
            c->off[i] = 0;
            continue;
        }
        while (t->n_heap && c->last[t->heap[0]] < c->first[i])
            sweep_remove(c, t, sweep_heap_pop(c, t));
        uint32_t z = sweep_lowest_gap(t, c->size[i]);
        c->off[i] = z == LAYOUT_NONE ? sweep_top(c, t) : c->off[z] - t->gap[z];
        sweep_insert(c, t, i);
        sweep_heap_push(c, t, i);
        if (c->off[i] + c->size[i] > arena)
            arena = c->off[i] + c->size[i];
    }
    return arena;
}

/* ---- Orders ---------------------------------------------------------------------------------- */

typedef struct {
    unsigned __int128 k1; /* sorted ascending, then k2, k3, then the index */
    uint64_t k2, k3;
    uint32_t idx;
} layout_key;

static int layout_key_cmp(const void *pa, const void *pb)
{
    const layout_key *a = pa, *b = pb;
    if (a->k1 != b->k1)
        return a->k1 < b->k1 ? -1 : 1;
    if (a->k2 != b->k2)
        return a->k2 < b->k2 ? -1 : 1;
    if (a->k3 != b->k3)
        return a->k3 < b->k3 ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

enum { ORDER_SIZE, ORDER_BREADTH, ORDER_AREA, ORDER_DURATION, ORDER_START, ORDERS };

typedef struct {
    int order, best_fit;
    const char *name, *compacted;
} layout_heuristic;

static const layout_heuristic layout_heuristics[] = {
    {ORDER_SIZE, 1, "greedy-by-size best-fit", "greedy-by-size best-fit + compaction"},
    {ORDER_BREADTH, 1, "greedy-by-breadth best-fit", "greedy-by-breadth best-fit + compaction"},
    {ORDER_AREA, 1, "greedy-by-area best-fit", "greedy-by-area best-fit + compaction"},
    {ORDER_DURATION, 1, "greedy-by-lifetime-length best-fit",
     "greedy-by-lifetime-length best-fit + compaction"},
    {ORDER_START, 0, "lifetime-order first-fit", "lifetime-order first-fit + compaction"},
    {ORDER_SIZE, 0, "greedy-by-size first-fit", "greedy-by-size first-fit + compaction"},
};
#define LAYOUT_HEURISTICS (sizeof layout_heuristics / sizeof layout_heuristics[0])
/* The order they are tried in: lifetime-order first fit first, as it runs as a sweep in
 * O(n log n) (layout_place_sweep) and often reaches the bound on training steps by itself. */
static const size_t layout_trials[LAYOUT_HEURISTICS] = {4, 0, 1, 2, 3, 5};

/* Fills order[] with the buffer indices sorted for `kind`; breadth[i] is the most bytes live at any
 * op of buffer i's lifetime (for ORDER_BREADTH). Ties go to the larger, longer, earlier buffer. */
static void layout_order(const layout_ctx *c, int kind, const uint64_t *breadth, layout_key *keys,
                         uint32_t *order)
{
    for (size_t i = 0; i < c->n; i++) {
        uint64_t s = c->size[i], d = c->last[i] - c->first[i];
        layout_key *k = &keys[i];
        k->idx = (uint32_t)i;
        k->k3 = c->first[i];
        switch (kind) {
        case ORDER_SIZE: k->k1 = ~s, k->k2 = ~d; break;
        case ORDER_BREADTH: k->k1 = ~breadth[i], k->k2 = ~s; break;
        case ORDER_AREA:
            k->k1 = ~((unsigned __int128)s * ((unsigned __int128)d + 1)), k->k2 = ~s;
            break;
        case ORDER_DURATION: k->k1 = ~d, k->k2 = ~s; break;
        /* lifetime order: an enclosing lifetime before the ones it encloses, so nested
         * (stack-like) lifetimes stack up exactly */
        default: k->k1 = c->first[i], k->k2 = ~d, k->k3 = ~s; break;
        }
    }
    qsort(keys, c->n, sizeof *keys, layout_key_cmp);
    for (size_t i = 0; i < c->n; i++)
        order[i] = keys[i].idx;
}

/* ---- The lower bound and breadths (one sweep over lifetime starts and ends) ------------------ */

typedef struct {
    uint64_t t;
    uint32_t kind; /* 0: start, 1: end (ends at t come after starts at t: `last` is inclusive) */
    uint32_t idx;
} layout_event;

static int layout_event_cmp(const void *pa, const void *pb)
{
    const layout_event *a = pa, *b = pb;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* The most bytes live at any op (the lower bound). The events are sorted by op, and at[e] is the
 * live total just after event e if it is a start (else 0); pos[2i], pos[2i + 1] are the positions
 * of buffer i's start and end events (for layout_breadths). ev: 2n events; at: 2n totals; pos: 2n
 * positions. */
static uint64_t layout_sweep_bound(const layout_ctx *c, layout_event *ev, uint64_t *at,
                                   uint32_t *pos)
{
    size_t n = c->n, m = 2 * n;
    for (size_t i = 0; i < n; i++) {
        ev[2 * i] = (layout_event){c->first[i], 0, (uint32_t)i};
        ev[2 * i + 1] = (layout_event){c->last[i], 1, (uint32_t)i};
    }
    qsort(ev, m, sizeof *ev, layout_event_cmp);
    uint64_t live = 0, lb = 0;
    for (size_t e = 0; e < m; e++) {
        if (ev[e].kind == 0)
            live += c->size[ev[e].idx];
        else
            live -= c->size[ev[e].idx];
        at[e] = ev[e].kind == 0 ? live : 0;
        if (at[e] > lb)
            lb = at[e];
        pos[2 * ev[e].idx + ev[e].kind] = (uint32_t)e;
    }
    return lb;
}

/* breadth[i]: the most bytes live at an op of buffer i's lifetime (for greedy by breadth). The
 * live total only rises at starts, so that maximum is the largest at[] between buffer i's start
 * and end events; a sparse table of at[] (built level by level in `lvl`, 2n totals, O(n log n))
 * answers every buffer's range. */
static void layout_breadths(const layout_ctx *c, const uint64_t *at, uint64_t *lvl,
                            const uint32_t *pos, uint64_t *breadth)
{
    size_t n = c->n, m = 2 * n;
    /* Level k of lvl holds the maximum of at[e .. e + 2^k); a range [a, b] whose length has top
     * bit k is covered by the two windows at a and at b + 1 - 2^k. */
    int maxk = 0;
    while (((size_t)1 << (maxk + 1)) <= m)
        maxk++;
    memcpy(lvl, at, sizeof *lvl * m);
    for (int k = 0; k <= maxk; k++) {
        size_t w = (size_t)1 << k;
        for (size_t i = 0; i < n; i++) {
            size_t a = pos[2 * i], b = pos[2 * i + 1];
            if (63 - __builtin_clzll((unsigned long long)(b - a + 1)) != k)
                continue;
            uint64_t x = lvl[a], y = lvl[b + 1 - w];
            breadth[i] = x > y ? x : y;
        }
        if (k < maxk)
            for (size_t e = 0; e + 2 * w <= m; e++)
                lvl[e] = lvl[e] > lvl[e + w] ? lvl[e] : lvl[e + w];
    }
}

/* ---- The planner ----------------------------------------------------------------------------- */

/* Checks the input and writes the aligned sizes; REMAT_EINVAL naming the first bad buffer. */
static remat_status layout_check(const remat_layout_buffer *bufs, size_t n, uint64_t align,
                                 uint64_t *size, uint64_t *first, uint64_t *last)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const remat_layout_buffer *b = &bufs[i];
        if (b->first > b->last)
            return remat_fail(REMAT_EINVAL,
                              "remat_layout_plan: buffer %zu lives from op %llu to op %llu "
                              "(first > last)",
                              i, (unsigned long long)b->first, (unsigned long long)b->last);
        if (b->bytes > UINT64_MAX - (align - 1))
            return remat_fail(REMAT_EINVAL,
                              "remat_layout_plan: buffer %zu of %llu bytes overflows when aligned "
                              "to %llu",
                              i, (unsigned long long)b->bytes, (unsigned long long)align);
        size[i] = (b->bytes + align - 1) & ~(align - 1);
        if (size[i] > UINT64_MAX - total)
            return remat_fail(REMAT_EINVAL,
                              "remat_layout_plan: the buffers' sizes add up to more than 2^64 "
                              "bytes (at buffer %zu)",
                              i);
        total += size[i];
        first[i] = b->first, last[i] = b->last;
    }
    return REMAT_OK;
}

remat_status remat_layout_plan(const remat_layout_buffer *bufs, size_t n, uint64_t align,
                               uint64_t *offsets, remat_layout_result *out)
{
    if ((n && (!bufs || !offsets)) || !out)
        return remat_fail(REMAT_EINVAL,
                          "remat_layout_plan: bufs, offsets and out must not be NULL");
    if (align == 0)
        align = 512;
    if (align & (align - 1))
        return remat_fail(REMAT_EINVAL, "remat_layout_plan: align %llu is not a power of two",
                          (unsigned long long)align);
    if (n >= LAYOUT_NONE)
        return remat_fail(REMAT_EINVAL, "remat_layout_plan: %zu buffers is too many", n);
    *out = (remat_layout_result){0, 0, "empty"};
    if (n == 0)
        return REMAT_OK;

    uint64_t *u64 = malloc(sizeof *u64 * n * 12);
    uint32_t *u32 = malloc(sizeof *u32 * n * (9 + ORDERS));
    layout_key *keys = malloc(sizeof *keys * n);
    layout_event *ev = malloc(sizeof *ev * 2 * n);
    /* every chunk but the last holds at least LAYOUT_CHUNK / 2 buffers */
    size_t cap_chunks = n / (LAYOUT_CHUNK / 2) + 2;
    layout_chunk *chunks = malloc(sizeof *chunks * cap_chunks);
    remat_status s = REMAT_OK;
    if (!u64 || !u32 || !keys || !ev || !chunks) {
        s = remat_fail(REMAT_ENOMEM, "remat_layout_plan: out of host memory for %zu buffers", n);
        goto done;
    }
    uint64_t *size = u64, *first = u64 + n, *last = u64 + 2 * n, *off = u64 + 3 * n;
    uint64_t *breadth = u64 + 4 * n, *best = u64 + 5 * n;
    uint64_t *at = u64 + 6 * n, *lvl = u64 + 8 * n;
    uint32_t *order = u32, *pos = u32 + n, *seq = u32 + 3 * n, *orders = u32 + 9 * n;
    layout_sweep sweep = {
        u32 + 6 * n, u32 + 7 * n, u32 + 8 * n, u64 + 10 * n, u64 + 11 * n, LAYOUT_NONE, 0};
    s = layout_check(bufs, n, align, size, first, last);
    if (s != REMAT_OK)
        goto done;
    layout_ctx c = {n, size, first, last, off, chunks, seq, 0, 0};
    uint64_t lb = layout_sweep_bound(&c, ev, at, pos);
    int have_breadth = 0, have_order[ORDERS] = {0};

    /* Every heuristic, the cheap sweep first; keep the smallest arena (on ties the one first in
     * layout_heuristics), stop at the lower bound. A heuristic whose order and fit repeat an
     * earlier one's would repeat its layout: skipped. */
    uint64_t best_arena = UINT64_MAX;
    size_t best_h = 0;
    for (size_t t = 0; t < LAYOUT_HEURISTICS && best_arena > lb; t++) {
        size_t h = layout_trials[t];
        int kind = layout_heuristics[h].order, fit = layout_heuristics[h].best_fit;
        uint32_t *ord = orders + (size_t)kind * n;
        if (kind == ORDER_BREADTH && !have_breadth)
            layout_breadths(&c, at, lvl, pos, breadth), have_breadth = 1;
        if (!have_order[kind])
            layout_order(&c, kind, breadth, keys, ord), have_order[kind] = 1;
        int repeat = 0;
        for (size_t u = 0; u < t && !repeat; u++) {
            const layout_heuristic *e = &layout_heuristics[layout_trials[u]];
            repeat = e->best_fit == fit && have_order[e->order] &&
                     memcmp(orders + (size_t)e->order * n, ord, sizeof *ord * n) == 0;
        }
        if (repeat)
            continue;
        uint64_t arena = kind == ORDER_START && !fit ? layout_place_sweep(&c, &sweep, ord)
                                                     : layout_place(&c, ord, fit);
        if (arena < best_arena || (arena == best_arena && h < best_h)) {
            best_arena = arena, best_h = h;
            memcpy(best, off, sizeof *best * n);
        }
    }
    const char *name = layout_heuristics[best_h].name;
    if (best_arena > lb) {
        /* Compaction: place again, lowest offset first, each at the lowest free offset. A
         * buffer's old place stays free (every buffer placed before it, overlapping it in time,
         * lay wholly below it and has only moved down), so nothing moves up and the arena never
         * grows. Repeat while it shrinks. */
        for (int pass = 0; pass < 4 && best_arena > lb; pass++) {
            for (size_t i = 0; i < n; i++)
                keys[i] = (layout_key){best[i], 0, 0, (uint32_t)i};
            qsort(keys, n, sizeof *keys, layout_key_cmp);
            for (size_t k = 0; k < n; k++)
                order[k] = keys[k].idx;
            uint64_t arena = layout_place(&c, order, 0);
            if (arena >= best_arena)
                break;
            best_arena = arena;
            name = layout_heuristics[best_h].compacted;
            memcpy(best, off, sizeof *best * n);
        }
    }
    memcpy(offsets, best, sizeof *offsets * n);
    *out = (remat_layout_result){best_arena, lb, name};
done:
    free(u64);
    free(u32);
    free(keys);
    free(ev);
    free(chunks);
    return s;
}

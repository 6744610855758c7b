/* alloc/pool_plan.c: planned mode. One step's allocations are recorded (each one's rounded size,
 * tag and stream, and when it is freed), laid out in one arena by remat_layout_plan, and the next
 * steps are served from that arena while their requests repeat the recording.
 *
 * Safety: the layout only keeps apart buffers whose recorded lifetimes overlap, so the arena may
 * hand out recorded allocation k only if every planned block still live would also have been live
 * when k was recorded. Each allocation k carries the list of planned allocations the recording had
 * freed just before it ("due" at k); when a step reaches k, those still live become overdue, and
 * while anything is overdue the arena hands nothing out (the caching path serves instead). A
 * request that differs from recorded allocation k > 0 (size, tag or stream; at k = 0 it is a new
 * shape, recorded anew) resumes matching at the
 * next recorded allocation like it, all those between reached (their due lists applied) and
 * skipped: a step that leaves out what only the recorded one did (gradients allocated in step 0)
 * goes on from the arena. If there is none, matching ends for the rest of the step. A request
 * held back by an overdue block and one without a match are misses; nothing fails.
 *
 * Recorded allocations still live when the recording ends (gradients, optimizer states) are not
 * planned. So that they pin no segment of the step's freed blocks, every request of at least
 * PLAN_EXACT_MIN made while recording gets a segment of exactly its size (as
 * remat_alloc_dedicated): a freed one goes straight back to the device, a persistent one stays
 * where it is without waste. */
#include "alloc/pool.h"

#include <stdlib.h>
#include <string.h>

enum { PLAN_RECORDING, PLAN_IDLE, PLAN_STEP, PLAN_STOPPING };

/* While recording, requests of at least this size get a segment of exactly their size (smaller
 * ones pack into the caching path's 2 MiB small segments, where a few that persist cost little). */
#define PLAN_EXACT_MIN ((size_t)64 << 10)

typedef struct {
    size_t size; /* rounded */
    remat_stream stream;
    uint32_t tag;
    uint64_t first, last; /* event clock of its allocation and free */
    size_t due_at;        /* its free came before recorded allocation due_at */
    int freed;
} plan_rec;

typedef struct pool_plan {
    int state;
    /* the recording */
    plan_rec *rec;
    size_t n_rec, cap_rec;
    uint64_t clock;
    pool_map rec_live; /* address -> record index + 1, while recording */
    int rec_broken;    /* host memory ran out while recording */
    /* the plan: recorded allocation k is planned if in_arena[k], at base + off[k] */
    size_t n;
    uint8_t *in_arena, *live, *overdue;
    uint64_t *off;
    uint64_t *requested; /* of live planned blocks */
    uint64_t *trace_id;
    size_t *due_start, *due; /* CSR: due[due_start[k] .. due_start[k + 1]) */
    remat_stream stream;
    pool_block *arena;
    uintptr_t base, limit;
    pool_map live_at; /* address -> k + 1 of live planned blocks */
    /* the current step */
    size_t next;
    int diverged;
    size_t n_live, n_overdue;
    uint64_t step_hits, step_misses;
    int auto_recording; /* recording started by step_begin after a step that mostly missed */
} pool_plan;

static size_t plan_round(size_t bytes)
{
    return bytes ? (bytes + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN : POOL_ALIGN;
}

static void plan_free_struct(pool_plan *pl)
{
    if (!pl)
        return;
    free(pl->rec);
    pool_map_destroy(&pl->rec_live);
    pool_map_destroy(&pl->live_at);
    free(pl->in_arena), free(pl->live), free(pl->overdue);
    free(pl->off), free(pl->requested), free(pl->trace_id);
    free(pl->due_start), free(pl->due);
    free(pl);
}

/* Ends the plan for good: the arena goes back to the cache. Only with no planned block live. */
static void plan_finish(remat_pool *pool)
{
    pool_plan *pl = pool->plan;
    if (pl->arena)
        pool_arena_release(pool, pl->arena);
    pool->st.planned_arena_bytes = 0;
    pool->plan = NULL;
    plan_free_struct(pl);
}

void pool_plan_destroy(remat_pool *pool)
{
    /* the pool is going away with every segment: the arena block needs no release */
    plan_free_struct(pool->plan);
    pool->plan = NULL;
}

/* ==== Recording =============================================================================== */

static void plan_record_alloc(pool_plan *pl, void *p, size_t bytes, remat_stream stream,
                              uint32_t tag)
{
    if (pl->n_rec == pl->cap_rec) {
        size_t cap = pl->cap_rec ? pl->cap_rec * 2 : 256;
        plan_rec *r = realloc(pl->rec, cap * sizeof *r);
        if (!r) {
            pl->rec_broken = 1;
            return;
        }
        pl->rec = r, pl->cap_rec = cap;
    }
    if (pool_map_put(&pl->rec_live, (uintptr_t)p, (void *)(uintptr_t)(pl->n_rec + 1)) != REMAT_OK) {
        pl->rec_broken = 1;
        return;
    }
    pl->rec[pl->n_rec++] = (plan_rec){plan_round(bytes), stream, tag, pl->clock++, 0, 0, 0};
}

static void plan_record_free(pool_plan *pl, uintptr_t p)
{
    void *v = pool_map_take(&pl->rec_live, p);
    if (!v)
        return; /* allocated before the recording began */
    plan_rec *r = &pl->rec[(uintptr_t)v - 1];
    r->last = pl->clock++;
    r->due_at = pl->n_rec;
    r->freed = 1;
}

static remat_status plan_record_start(remat_pool *pool, int automatic);

/* ==== Serving a step ========================================================================== */

/* The step reaches recorded allocation k: planned blocks the recording had freed by then and that
 * are still live become overdue. */
static void plan_reach(pool_plan *pl, size_t k)
{
    for (size_t d = pl->due_start[k]; d < pl->due_start[k + 1]; d++) {
        size_t i = pl->due[d];
        if (pl->live[i] && !pl->overdue[i])
            pl->overdue[i] = 1, pl->n_overdue++;
    }
}

/* Hands out recorded allocation k from the arena, with the stats and trace line of any block. */
static void *plan_hand_out(remat_pool *pool, pool_plan *pl, size_t k, size_t bytes, uint32_t tag)
{
    uintptr_t addr = pl->base + pl->off[k];
    if (pool_map_put(&pl->live_at, addr, (void *)(uintptr_t)(k + 1)) != REMAT_OK)
        return NULL;
    pl->live[k] = 1, pl->n_live++;
    pl->requested[k] = bytes;
    pool_stat_add(&pool->st.requested, bytes);
    pool_stat_add(&pool->tags[tag].st, bytes);
    pool->st.n_alloc++;
    pool->st.n_planned_hits++;
    if (pool->trace) {
        pl->trace_id[k] = ++pool->next_trace_id;
        fprintf(pool->trace, "a %llu %zu %llu %s\n", (unsigned long long)pl->trace_id[k], bytes,
                (unsigned long long)pool_stream_number(pool, pl->stream), pool->tags[tag].name);
    }
    return (void *)addr;
}

static int plan_same(const plan_rec *r, size_t size, remat_stream stream, uint32_t tag)
{
    return r->size == size && r->tag == tag && r->stream == stream;
}

/* The first recorded allocation from k on with this rounded size, tag and stream, or pl->n. */
static size_t plan_match(const pool_plan *pl, size_t k, size_t size, remat_stream stream,
                         uint32_t tag)
{
    while (k < pl->n && !plan_same(&pl->rec[k], size, stream, tag))
        k++;
    return k;
}

/* A recorded request: large ones get a segment of their own, of exactly their size (see the top
 * of the file), small ones and any the device refuses that way the caching path. */
static void *plan_record_serve(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t tag)
{
    void *p = bytes >= PLAN_EXACT_MIN
                  ? pool_alloc_exact(pool, bytes, stream, tag, POOL_EXACT_RECORDING)
                  : NULL;
    return p ? p : pool_alloc_cached(pool, bytes, stream, tag);
}

void *pool_plan_alloc(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t tag)
{
    pool_plan *pl = pool->plan;
    if (pl->state == PLAN_RECORDING) {
        void *p = plan_record_serve(pool, bytes, stream, tag);
        if (p)
            plan_record_alloc(pl, p, bytes, stream, tag);
        return p;
    }
    if (pl->state != PLAN_STEP)
        return pool_alloc_cached(pool, bytes, stream, tag);
    size_t k = pl->next, size = bytes <= POOL_MAX_REQUEST ? plan_round(bytes) : 0;
    /* Request k departs from the recording: at k = 0 that is a new shape (below); later it may
     * be a request the recording had and this step skips (step 0 allocating the gradients, say),
     * so matching resumes at the next recorded request like it, passing the ones between. */
    size_t j = pl->n;
    if (!pl->diverged && size && k < pl->n)
        j = k > 0                                       ? plan_match(pl, k, size, stream, tag)
            : plan_same(&pl->rec[0], size, stream, tag) ? 0
                                                        : pl->n;
    if (j < pl->n) {
        for (; k <= j; k++)
            plan_reach(pl, k);
        pl->next = j + 1;
        if (pl->in_arena[j] && pl->arena && !pl->n_overdue && !pl->live[j]) {
            void *p = plan_hand_out(pool, pl, j, bytes, tag);
            if (p) {
                pl->step_hits++;
                return p;
            }
        }
    } else if (k == 0 && pl->n_live == 0) {
        /* The first request departs: a new shape. This step is recorded instead (the arena goes
         * back to the cache for it) and planned at the next step_begin. */
        pool->st.n_planned_misses++;
        if (plan_record_start(pool, 1) != REMAT_OK)
            return pool_alloc_cached(pool, bytes, stream, tag); /* no plan any more */
        return pool_plan_alloc(pool, bytes, stream, tag);
    } else {
        pl->diverged = 1;
    }
    pool->st.n_planned_misses++;
    pl->step_misses++;
    return pool_alloc_cached(pool, bytes, stream, tag);
}

int pool_plan_free(remat_pool *pool, uintptr_t p)
{
    pool_plan *pl = pool->plan;
    if (p < pl->base || p >= pl->limit) {
        if (pl->state == PLAN_RECORDING)
            plan_record_free(pl, p);
        return 0;
    }
    void *v = pool_map_take(&pl->live_at, p);
    if (!v) {
        remat_fail(REMAT_EINVAL,
                   "remat_free: %p lies in the planned arena but is not a live "
                   "planned block (double free or interior pointer); ignored",
                   (void *)p);
        return 1;
    }
    size_t k = (uintptr_t)v - 1;
    uint64_t bytes = pl->requested[k];
    pool->st.requested.current -= bytes;
    pool->tags[pl->rec[k].tag].st.current -= bytes;
    pool->st.n_free++;
    if (pool->trace && pl->trace_id[k])
        fprintf(pool->trace, "f %llu\n", (unsigned long long)pl->trace_id[k]);
    pl->trace_id[k] = 0;
    pl->live[k] = 0, pl->n_live--;
    pl->requested[k] = 0;
    if (pl->overdue[k])
        pl->overdue[k] = 0, pl->n_overdue--;
    if (pl->state == PLAN_STOPPING && pl->n_live == 0)
        plan_finish(pool);
    return 1;
}

int pool_plan_block_size(const remat_pool *pool, uintptr_t p, size_t *size)
{
    const pool_plan *pl = pool->plan;
    if (p < pl->base || p >= pl->limit)
        return 0;
    void *v = pool_map_get(&pl->live_at, p);
    if (!v)
        return 0;
    *size = pl->rec[(uintptr_t)v - 1].size;
    return 1;
}

remat_stream pool_plan_stream(const remat_pool *pool)
{
    return pool->plan->stream;
}

/* ==== Planning ================================================================================ */

/* Builds the plan from the recording: the layout, the due lists, the arena. */
static remat_status plan_build(remat_pool *pool, pool_plan *pl, remat_layout_result *res)
{
    size_t n = pl->n = pl->n_rec;
    size_t cap = n ? n : 1;
    pl->in_arena = calloc(cap, 1), pl->live = calloc(cap, 1), pl->overdue = calloc(cap, 1);
    pl->off = calloc(cap, sizeof *pl->off), pl->requested = calloc(cap, sizeof *pl->requested);
    pl->trace_id = calloc(cap, sizeof *pl->trace_id);
    pl->due_start = calloc(n + 2, sizeof *pl->due_start), pl->due = calloc(cap, sizeof *pl->due);
    remat_layout_buffer *bufs = malloc(cap * sizeof *bufs);
    size_t *which = malloc(cap * sizeof *which);
    uint64_t *offs = malloc(cap * sizeof *offs);
    remat_status s = REMAT_OK;
    if (!pl->in_arena || !pl->live || !pl->overdue || !pl->off || !pl->requested || !pl->trace_id ||
        !pl->due_start || !pl->due || !bufs || !which || !offs ||
        pool_map_init(&pl->live_at) != REMAT_OK) {
        s = remat_fail(REMAT_ENOMEM, "remat_pool_plan_record_end: out of host memory");
        goto done;
    }
    /* planned: freed within the step, on the stream of the step's first allocation */
    pl->stream = n ? pl->rec[0].stream : NULL;
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        const plan_rec *r = &pl->rec[k];
        if (!r->freed || r->stream != pl->stream)
            continue;
        pl->in_arena[k] = 1;
        which[m] = k;
        bufs[m++] = (remat_layout_buffer){r->size, r->first, r->last};
        pl->due_start[r->due_at + 1]++;
    }
    for (size_t k = 0; k <= n; k++)
        pl->due_start[k + 1] += pl->due_start[k];
    size_t *fill = calloc(n + 1, sizeof *fill);
    if (!fill) {
        s = remat_fail(REMAT_ENOMEM, "remat_pool_plan_record_end: out of host memory");
        goto done;
    }
    for (size_t j = 0; j < m; j++) {
        size_t at = pl->rec[which[j]].due_at;
        pl->due[pl->due_start[at] + fill[at]++] = which[j];
    }
    free(fill);
    s = remat_layout_plan(bufs, m, POOL_ALIGN, offs, res);
    if (s != REMAT_OK)
        goto done;
    for (size_t j = 0; j < m; j++)
        pl->off[which[j]] = offs[j];
    if (res->arena_bytes) {
        /* The recording step's cached segments are not needed any more (the arena replaces
         * them): returning them first keeps the reserved peak at what the plan needs. */
        uint64_t released;
        pool_release_cached(pool, &released);
        s = pool_arena_new(pool, (size_t)res->arena_bytes, pl->stream, &pl->arena);
        if (s != REMAT_OK)
            goto done;
        pl->base = pl->arena->addr;
        pl->limit = pl->base + pl->arena->size;
    }
done:
    free(bufs), free(which), free(offs);
    return s;
}

/* ==== The public calls ======================================================================== */

/* Starts a recording (any plan without live blocks is dropped first). The recording's large
 * requests get segments of their own, so what the cache holds wholly free (the old arena, say)
 * would only sit next to them: it goes back to the device first. */
static remat_status plan_record_start(remat_pool *pool, int automatic)
{
    if (pool->plan)
        plan_finish(pool);
    uint64_t released;
    pool_release_cached(pool, &released); /* a segment the device refuses to take stays cached */
    pool_plan *pl = calloc(1, sizeof *pl);
    if (!pl || pool_map_init(&pl->rec_live) != REMAT_OK) {
        free(pl);
        return remat_fail(REMAT_ENOMEM, "remat_pool_plan: out of host memory to record");
    }
    pl->state = PLAN_RECORDING;
    pl->auto_recording = automatic;
    pool->plan = pl;
    return REMAT_OK;
}

/* Ends the recording and plans it; on failure there is no plan. */
static remat_status plan_record_finish(remat_pool *pool, remat_layout_result *res)
{
    pool_plan *pl = pool->plan;
    remat_status s = pl->rec_broken ? remat_fail(REMAT_ENOMEM, "remat_pool_plan_record_end: host "
                                                               "memory ran out while recording")
                                    : plan_build(pool, pl, res);
    pool_map_destroy(&pl->rec_live);
    if (s != REMAT_OK) {
        plan_finish(pool); /* no plan: the pool goes on as before */
        return s;
    }
    pl->state = PLAN_IDLE;
    pool->st.planned_arena_bytes = pl->arena ? pl->arena->size : 0;
    pool->st.n_plans++;
    return REMAT_OK;
}

remat_status remat_pool_plan_record_begin(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_plan_record_begin: pool must not be NULL");
    remat_status s = REMAT_OK;
    pool_lock(pool);
    if (pool->plan && (pool->plan->state == PLAN_RECORDING || pool->plan->n_live))
        s = remat_fail(REMAT_EINVAL, "remat_pool_plan_record_begin: %s",
                       pool->plan->state == PLAN_RECORDING
                           ? "already recording"
                           : "planned blocks of the current plan are still live; free them first");
    else
        s = plan_record_start(pool, 0);
    if (s == REMAT_OK && pool->trace)
        fprintf(pool->trace, "s\n");
    pool_unlock(pool);
    return s;
}

remat_status remat_pool_plan_record_end(remat_pool *pool, remat_layout_result *out)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_plan_record_end: pool must not be NULL");
    pool_lock(pool);
    remat_layout_result res = {0, 0, "empty"};
    remat_status s =
        pool->plan && pool->plan->state == PLAN_RECORDING
            ? plan_record_finish(pool, &res)
            : remat_fail(REMAT_EINVAL, "remat_pool_plan_record_end: the pool is not recording");
    pool_unlock(pool);
    if (s == REMAT_OK && out)
        *out = res;
    return s;
}

remat_status remat_pool_plan_step_begin(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_plan_step_begin: pool must not be NULL");
    remat_status s = REMAT_OK;
    pool_lock(pool);
    pool_plan *pl = pool->plan;
    remat_layout_result res;
    if (pl && pl->state == PLAN_RECORDING && pl->auto_recording) {
        s = plan_record_finish(pool, &res); /* the step recorded after a new shape */
        pl = pool->plan;
    } else if (pl && pl->state == PLAN_STEP && pl->step_misses > pl->step_hits && !pl->n_live) {
        /* The last step mostly missed (its shape changed): record this one instead. */
        s = plan_record_start(pool, 1);
        if (s == REMAT_OK && pool->trace)
            fprintf(pool->trace, "s\n");
        pool_unlock(pool);
        return s;
    }
    if (s != REMAT_OK) {
    } else if (!pl || (pl->state != PLAN_IDLE && pl->state != PLAN_STEP)) {
        s = remat_fail(REMAT_EINVAL, "remat_pool_plan_step_begin: %s",
                       !pl                           ? "the pool has no plan"
                       : pl->state == PLAN_RECORDING ? "still recording (call record_end first)"
                                                     : "the plan is stopping");
    } else {
        /* blocks kept from the last step were never live at this point of the recording */
        for (size_t k = 0; k < pl->n && pl->n_live; k++)
            if (pl->live[k] && !pl->overdue[k])
                pl->overdue[k] = 1, pl->n_overdue++;
        pl->state = PLAN_STEP;
        pl->next = 0;
        pl->diverged = 0;
        pl->step_hits = pl->step_misses = 0;
        if (pool->trace)
            fprintf(pool->trace, "s\n");
    }
    pool_unlock(pool);
    return s;
}

remat_status remat_pool_plan_stop(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_plan_stop: pool must not be NULL");
    pool_lock(pool);
    pool_plan *pl = pool->plan;
    if (pl) {
        pl->state = PLAN_STOPPING;
        if (pl->n_live == 0)
            plan_finish(pool);
    }
    pool_unlock(pool);
    return REMAT_OK;
}

/* ==== Checking ================================================================================ */

typedef struct {
    uint64_t off, end;
} plan_span;

static int plan_span_cmp(const void *pa, const void *pb)
{
    const plan_span *a = pa, *b = pb;
    return a->off < b->off ? -1 : a->off > b->off;
}

remat_status pool_plan_check(const remat_pool *pool, uint64_t *requested, uint64_t *tag_bytes)
{
    const pool_plan *pl = pool->plan;
    if (!pl || pl->state == PLAN_RECORDING)
        return REMAT_OK;
    plan_span *sp = malloc((pl->n_live ? pl->n_live : 1) * sizeof *sp);
    if (!sp)
        return remat_fail(REMAT_ENOMEM, "pool check: out of host memory");
    size_t m = 0, overdue = 0;
    for (size_t k = 0; k < pl->n; k++) {
        overdue += pl->overdue[k];
        if (!pl->live[k])
            continue;
        if (m < pl->n_live)
            sp[m] = (plan_span){pl->off[k], pl->off[k] + pl->rec[k].size};
        m++;
        *requested += pl->requested[k];
        tag_bytes[pl->rec[k].tag] += pl->requested[k];
    }
    remat_status s = REMAT_OK;
    if (m != pl->n_live || overdue != pl->n_overdue || pl->live_at.n != m)
        s = remat_fail(REMAT_EINTERNAL,
                       "pool check: plan counts %zu live (%zu overdue), holds %zu "
                       "(%zu overdue), maps %zu",
                       pl->n_live, pl->n_overdue, m, overdue, pl->live_at.n);
    if (s == REMAT_OK) {
        qsort(sp, m, sizeof *sp, plan_span_cmp);
        for (size_t i = 0; i < m && s == REMAT_OK; i++)
            if (sp[i].end > pl->limit - pl->base || (i + 1 < m && sp[i].end > sp[i + 1].off))
                s = remat_fail(REMAT_EINTERNAL,
                               "pool check: live planned block at offset %llu "
                               "overlaps the next one or leaves the arena",
                               (unsigned long long)sp[i].off);
    }
    free(sp);
    return s;
}

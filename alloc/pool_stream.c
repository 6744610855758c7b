/* alloc/pool_stream.c: stream-ordered reuse. A freed block carries one fence (an event) per stream
 * that used it; a reuse on another stream waits for those events on the device, never on the
 * host. Devices without events (host, sim) run in order, so they carry no fences at all. */
#include "alloc/pool.h"

#include <stdlib.h>

#define FENCE_PRUNE_AT 16 /* beyond this many fences on a block, drop the completed ones */

static void fence_release(remat_pool *pool, pool_fence *f)
{
    if (--f->refs > 0)
        return;
    f->next = pool->spare_fences;
    pool->spare_fences = f;
}

void pool_fence_drop_all(remat_pool *pool, pool_block *b)
{
    for (uint32_t i = 0; i < b->n_fences; i++)
        fence_release(pool, b->fences[i]);
    b->n_fences = 0;
}

void pool_fence_destroy_spares(remat_pool *pool)
{
    while (pool->spare_fences) {
        pool_fence *f = pool->spare_fences;
        pool->spare_fences = f->next;
        if (pool->dev->ops->event_destroy)
            pool->dev->ops->event_destroy(pool->dev, f->ev);
        free(f);
    }
}

/* A fence recorded on `stream` now. */
static remat_status fence_record(remat_pool *pool, remat_stream stream, pool_fence **out)
{
    pool_fence *f = pool->spare_fences;
    if (f) {
        pool->spare_fences = f->next;
    } else {
        f = calloc(1, sizeof *f);
        if (!f)
            return remat_fail(REMAT_ENOMEM, "pool: out of host memory for a stream fence");
        remat_status s = pool_dev_event_create(pool, &f->ev);
        if (s != REMAT_OK) {
            free(f);
            return s;
        }
    }
    f->refs = 1;
    f->stream = stream;
    remat_status s = pool_dev_event_record(pool, f->ev, stream);
    if (s != REMAT_OK)
        fence_release(pool, f);
    else
        *out = f;
    return s;
}

static int fence_reserve(pool_block *b, uint32_t n)
{
    if (n <= b->cap_fences)
        return 1;
    uint32_t cap = b->cap_fences ? b->cap_fences * 2 : 4;
    while (cap < n)
        cap *= 2;
    pool_fence **p = realloc(b->fences, cap * sizeof *p);
    if (!p)
        return 0;
    b->fences = p;
    b->cap_fences = cap;
    return 1;
}

/* Last resort when a fence cannot be made: wait for the whole device, after which no fence is
 * needed. The failure's message stays in remat_last_error. */
static void fence_fallback_sync(remat_pool *pool, pool_block *b)
{
    pool_dev_sync(pool);
    pool_fence_drop_all(pool, b);
}

void pool_fence_on_free(remat_pool *pool, pool_block *b)
{
    uint32_t n_uses = b->n_uses;
    b->n_uses = 0;
    if (!pool_dev_has_events(pool))
        return;
    if (!fence_reserve(b, b->n_fences + 1 + n_uses)) {
        fence_fallback_sync(pool, b);
        return;
    }
    for (uint32_t i = 0; i <= n_uses; i++) {
        pool_fence *f = NULL;
        if (fence_record(pool, i == 0 ? b->stream : b->uses[i - 1], &f) != REMAT_OK) {
            fence_fallback_sync(pool, b);
            return;
        }
        b->fences[b->n_fences++] = f;
    }
}

remat_status pool_fence_on_reuse(remat_pool *pool, pool_block *b, remat_stream stream)
{
    for (uint32_t i = 0; i < b->n_fences; i++) {
        if (b->fences[i]->stream == stream)
            continue; /* same stream: ordered already */
        remat_status s = pool_dev_stream_wait(pool, stream, b->fences[i]->ev);
        if (s != REMAT_OK) {
            if (pool_dev_sync(pool) != REMAT_OK)
                return s;
            break;
        }
    }
    pool_fence_drop_all(pool, b);
    return REMAT_OK;
}

/* Drops the fences of b whose events have completed. */
static void fence_prune(remat_pool *pool, pool_block *b)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < b->n_fences; i++) {
        int done = 0;
        if (pool_dev_event_query(pool, b->fences[i]->ev, &done) == REMAT_OK && done)
            fence_release(pool, b->fences[i]);
        else
            b->fences[kept++] = b->fences[i];
    }
    b->n_fences = kept;
}

void pool_fence_merge(remat_pool *pool, pool_block *to, pool_block *from, int share)
{
    if (from->n_fences == 0)
        return;
    if (!fence_reserve(to, to->n_fences + from->n_fences)) {
        fence_fallback_sync(pool, to);
        if (!share)
            pool_fence_drop_all(pool, from);
        return;
    }
    for (uint32_t i = 0; i < from->n_fences; i++) {
        to->fences[to->n_fences++] = from->fences[i];
        if (share)
            from->fences[i]->refs++;
    }
    if (!share)
        from->n_fences = 0;
    if (to->n_fences > FENCE_PRUNE_AT)
        fence_prune(pool, to);
}

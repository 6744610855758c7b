/* alloc/pool_expand.c: the expandable segment: large requests share one reserved address range
 * whose mapped prefix grows at its end in granules (2 MiB) and shrinks from its free tail, like
 * PyTorch's expandable segments. No segment-sized rounding: the only slack is under one granule. */
#include "alloc/pool.h"

#include <stdlib.h>

static size_t expand_round(size_t v, size_t to) { return (v + to - 1) / to * to; }

remat_status pool_expand_init(remat_pool *pool)
{
    remat_device *dev = pool->dev;
    if (!pool_dev_has_vm(pool))
        return remat_fail(REMAT_EUNSUPPORTED, "remat_pool_create: expandable segments need virtual "
                                              "memory, which %s does not offer", dev->info.spec);
    REMAT_TRY(dev->ops->vm_granularity(dev, &pool->vm_gran));
    if (pool->vm_gran < POOL_ALIGN || pool->vm_gran % POOL_ALIGN)
        return remat_fail(REMAT_EDEVICE, "%s: odd mapping granularity %zu", dev->info.spec, pool->vm_gran);
    uint64_t free_b = 0, total = dev->info.total_bytes;
    dev->ops->mem_info(dev, &free_b, &total);
    if (pool->cfg.limit_bytes && pool->cfg.limit_bytes < total)
        total = pool->cfg.limit_bytes;
    size_t size = expand_round((size_t)total, pool->vm_gran);
    void *base = NULL;
    REMAT_TRY(dev->ops->vm_reserve(dev, size, &base));
    pool->vm_base = (uintptr_t)base;
    pool->vm_size = size;
    return REMAT_OK;
}

void pool_expand_destroy(remat_pool *pool)
{
    if (pool->vm_size)
        pool->dev->ops->vm_release(pool->dev, (void *)pool->vm_base, pool->vm_size);
    pool->vm_size = 0;
    pool->expand_seg = NULL;
}

static pool_block *expand_last(const pool_segment *seg)
{
    pool_block *b = seg->first;
    while (b->next)
        b = b->next;
    return b;
}

/* The first mapping: a segment struct with one free block. */
static remat_status expand_start(remat_pool *pool, size_t bytes)
{
    pool_segment *seg = calloc(1, sizeof *seg);
    pool_block *b = pool_block_new(pool);
    if (!seg || !b) {
        free(seg);
        if (b)
            pool_block_recycle(pool, b);
        return remat_fail(REMAT_ENOMEM, "pool: out of host memory for segment metadata");
    }
    remat_status s = pool_dev_vm_map(pool, pool->vm_base, bytes);
    if (s != REMAT_OK) {
        free(seg);
        pool_block_recycle(pool, b);
        return s;
    }
    seg->base = pool->vm_base;
    seg->size = bytes;
    seg->va_size = pool->vm_size;
    seg->kind = POOL_LARGE;
    seg->expandable = 1;
    seg->first = b;
    b->addr = seg->base;
    b->size = bytes;
    b->seg = seg;
    pool_segment_link(pool, seg);
    pool->expand_seg = seg;
    pool_index_insert(&pool->free[POOL_LARGE], b);
    return REMAT_OK;
}

/* Maps `bytes` more at the end; the free tail grows (or a new free tail block appears). */
static remat_status expand_more(remat_pool *pool, size_t bytes)
{
    pool_segment *seg = pool->expand_seg;
    pool_block *tail = expand_last(seg);
    pool_block *nb = NULL;
    if (!pool_block_is_free(tail) && !(nb = pool_block_new(pool)))
        return remat_fail(REMAT_ENOMEM, "pool: out of host memory for block metadata");
    remat_status s = pool_dev_vm_map(pool, seg->base + seg->size, bytes);
    if (s != REMAT_OK) {
        if (nb)
            pool_block_recycle(pool, nb);
        return s;
    }
    if (nb) {
        nb->addr = seg->base + seg->size;
        nb->size = bytes;
        nb->seg = seg;
        nb->prev = tail;
        tail->next = nb;
        pool_index_insert(&pool->free[POOL_LARGE], nb);
    } else {
        pool_index_remove(&pool->free[POOL_LARGE], tail);
        tail->size += bytes;
        pool_index_insert(&pool->free[POOL_LARGE], tail);
    }
    seg->size += bytes;
    return REMAT_OK;
}

remat_status pool_expand_grow(remat_pool *pool, size_t size, pool_block **out)
{
    pool_segment *seg = pool->expand_seg;
    pool_block *tail = seg ? expand_last(seg) : NULL;
    size_t have = tail && pool_block_is_free(tail) ? tail->size : 0;
    size_t mapped = seg ? seg->size : 0;
    size_t need = size > have ? expand_round(size - have, pool->vm_gran) : 0;
    uint64_t limit = pool->cfg.limit_bytes;
    if (need == 0) { /* the free tail is big enough (it was passed over as oversize) */
        pool_index_remove(&pool->free[POOL_LARGE], tail);
        *out = tail;
        return REMAT_OK;
    }
    if (need > pool->vm_size - mapped)
        return remat_fail(REMAT_ENOMEM, "the expandable segment's address range is used up");
    if (limit && (need > limit || pool->st.reserved.current > limit - need))
        return REMAT_ENOMEM;
    REMAT_TRY(seg ? expand_more(pool, need) : expand_start(pool, need));
    pool_stat_add(&pool->st.reserved, need);
    pool->st.n_device_alloc++;
    tail = expand_last(pool->expand_seg);
    pool_index_remove(&pool->free[POOL_LARGE], tail);
    *out = tail;
    return REMAT_OK;
}

remat_status pool_expand_trim(remat_pool *pool, uint64_t *released)
{
    pool_segment *seg = pool->expand_seg;
    pool_block *tail = expand_last(seg);
    if (!pool_block_is_free(tail))
        return REMAT_OK;
    uintptr_t start = seg->base + expand_round(tail->addr - seg->base, pool->vm_gran);
    uintptr_t end = seg->base + seg->size;
    if (start >= end)
        return REMAT_OK;
    if (tail->n_fences)
        REMAT_TRY(pool_dev_sync(pool)); /* work on other streams may still use the range */
    REMAT_TRY(pool_dev_vm_unmap(pool, start, end - start));
    pool_index_remove(&pool->free[POOL_LARGE], tail);
    seg->size -= end - start;
    pool->st.reserved.current -= end - start;
    pool->st.n_device_free++;
    *released += end - start;
    if (start > tail->addr) {
        tail->size = start - tail->addr;
        pool_index_insert(&pool->free[POOL_LARGE], tail);
        return REMAT_OK;
    }
    if (tail->prev) {
        tail->prev->next = NULL;
    } else { /* nothing mapped any more: the segment goes, the address range stays */
        pool_segment_unlink(pool, seg);
        free(seg);
        pool->expand_seg = NULL;
    }
    pool_block_recycle(pool, tail);
    return REMAT_OK;
}

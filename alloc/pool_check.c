/* alloc/pool_check.c: the pool's debug invariant check (remat_pool_check), run by the tests after
 * every kind of operation: tiling without overlap, free neighbours merged, index and live map
 * consistent, stats equal to the sums over blocks. */
#include "alloc/pool.h"

#include <stdlib.h>

typedef struct {
    uint64_t requested, allocated, reserved, free_blocks, live_blocks, parked_blocks;
} check_sums;

static remat_status check_segment(const remat_pool *pool, const pool_segment *seg, check_sums *sum,
                                  uint64_t *tag_bytes)
{
    uintptr_t at = seg->base;
    if (seg->base % POOL_ALIGN || seg->size % POOL_ALIGN)
        return remat_fail(REMAT_EINTERNAL, "pool check: segment %p of %zu bytes is not 512-aligned",
                          (void *)seg->base, seg->size);
    for (const pool_block *b = seg->first, *prev = NULL; b; prev = b, b = b->next) {
        if (b->seg != seg || b->prev != prev)
            return remat_fail(REMAT_EINTERNAL, "pool check: block %p has broken links", (void *)b->addr);
        if (b->addr != at)
            return remat_fail(REMAT_EINTERNAL, "pool check: block %p should start at %p (overlap or gap)",
                              (void *)b->addr, (void *)at);
        if (b->size == 0 || b->size % POOL_ALIGN)
            return remat_fail(REMAT_EINTERNAL, "pool check: block %p has size %zu", (void *)b->addr, b->size);
        if (prev && pool_block_is_free(prev) && pool_block_is_free(b))
            return remat_fail(REMAT_EINTERNAL, "pool check: free neighbours %p and %p are not merged",
                              (void *)prev->addr, (void *)b->addr);
        if (b->allocated) {
            if (pool_map_get(&pool->live, b->addr) != b)
                return remat_fail(REMAT_EINTERNAL, "pool check: allocated block %p is not in the live map",
                                  (void *)b->addr);
            if (b->requested > b->size)
                return remat_fail(REMAT_EINTERNAL, "pool check: block %p holds %zu bytes but %zu were requested",
                                  (void *)b->addr, b->size, b->requested);
            sum->requested += b->requested;
            sum->allocated += b->size;
            sum->live_blocks++;
            tag_bytes[b->tag] += b->requested;
        } else if (b->parked) {
            if (pool_map_get(&pool->live, b->addr) != b || b->size > POOL_QUICK_MAX)
                return remat_fail(REMAT_EINTERNAL, "pool check: parked block %p of %zu bytes is "
                                  "not in the live map or too large", (void *)b->addr, b->size);
            sum->parked_blocks++;
        } else {
            sum->free_blocks++;
        }
        at += b->size;
    }
    if (at != seg->base + seg->size)
        return remat_fail(REMAT_EINTERNAL, "pool check: blocks of segment %p end at %p, not at its end",
                          (void *)seg->base, (void *)at);
    sum->reserved += seg->size;
    return REMAT_OK;
}

/* Every parked block is on the quick list of its size, and the counts agree. */
static remat_status check_quick(const remat_pool *pool, uint64_t parked)
{
    uint64_t n = 0;
    for (size_t c = 0; c < POOL_QUICK_CLASSES; c++) {
        uint32_t k = 0;
        for (const pool_block *b = pool->quick[c]; b; b = b->bin_next, k++)
            if (!b->parked || b->allocated || b->size != (c + 1) * POOL_ALIGN)
                return remat_fail(REMAT_EINTERNAL, "pool check: block %p is on the quick list of "
                                  "%zu bytes but is not parked there", (void *)b->addr,
                                  (c + 1) * POOL_ALIGN);
        if (k != pool->n_quick[c] || k > POOL_QUICK_DEPTH)
            return remat_fail(REMAT_EINTERNAL, "pool check: quick list %zu holds %u blocks, counts %u",
                              c, k, pool->n_quick[c]);
        n += k;
    }
    if (n != parked || n != pool->quick_blocks)
        return remat_fail(REMAT_EINTERNAL, "pool check: %llu parked blocks in segments, %llu on quick "
                          "lists, %zu counted", (unsigned long long)parked, (unsigned long long)n,
                          pool->quick_blocks);
    return REMAT_OK;
}

/* Every indexed block is free and belongs to a segment of the index's kind. */
static remat_status check_index(const pool_index *idx, int kind, uint64_t *total)
{
    uint64_t n = 0;
    for (uint32_t bin = 0; bin < POOL_BINS; bin++) {
        int bit = (idx->bits[bin / 64] >> (bin % 64)) & 1;
        if (bit != (idx->head[bin] != NULL))
            return remat_fail(REMAT_EINTERNAL, "pool check: bitmap of bin %u is wrong", bin);
        int word = (idx->words[bin / 4096] >> (bin / 64 % 64)) & 1;
        if (word != (idx->bits[bin / 64] != 0))
            return remat_fail(REMAT_EINTERNAL, "pool check: summary bit of bin %u is wrong", bin);
        for (const pool_block *b = idx->head[bin]; b; b = b->bin_next) {
            if (!pool_block_is_free(b) || b->seg->kind != kind)
                return remat_fail(REMAT_EINTERNAL, "pool check: block %p is indexed but %s",
                                  (void *)b->addr, b->allocated ? "allocated" : "of the other kind");
            n++;
        }
    }
    if (n != idx->count)
        return remat_fail(REMAT_EINTERNAL, "pool check: index counts %zu blocks, holds %llu",
                          idx->count, (unsigned long long)n);
    *total += n;
    return REMAT_OK;
}

static remat_status check_stat(const char *name, uint64_t stat, uint64_t sum)
{
    if (stat == sum)
        return REMAT_OK;
    return remat_fail(REMAT_EINTERNAL, "pool check: %s is %llu but the blocks sum to %llu", name,
                      (unsigned long long)stat, (unsigned long long)sum);
}

remat_status pool_check_locked(const remat_pool *pool)
{
    check_sums sum = {0};
    uint64_t *tag_bytes = calloc(pool->n_tags, sizeof *tag_bytes);
    if (!tag_bytes)
        return remat_fail(REMAT_ENOMEM, "pool check: out of host memory");
    remat_status s = REMAT_OK;
    size_t n_segments = 0;
    for (const pool_segment *seg = pool->segments; seg && s == REMAT_OK; seg = seg->next, n_segments++)
        s = check_segment(pool, seg, &sum, tag_bytes);
    if (s == REMAT_OK)
        s = pool_plan_check(pool, &sum.requested, tag_bytes);
    uint64_t indexed = 0;
    for (int k = 0; k < POOL_KINDS && s == REMAT_OK; k++)
        s = check_index(&pool->free[k], k, &indexed);
    if (s == REMAT_OK && indexed != sum.free_blocks)
        s = remat_fail(REMAT_EINTERNAL, "pool check: %llu free blocks but %llu indexed",
                       (unsigned long long)sum.free_blocks, (unsigned long long)indexed);
    if (s == REMAT_OK)
        s = check_quick(pool, sum.parked_blocks);
    if (s == REMAT_OK && pool->live.n != sum.live_blocks + sum.parked_blocks)
        s = remat_fail(REMAT_EINTERNAL, "pool check: live map holds %zu blocks, segments %llu",
                       pool->live.n, (unsigned long long)(sum.live_blocks + sum.parked_blocks));
    if (s == REMAT_OK && n_segments != pool->n_segments)
        s = remat_fail(REMAT_EINTERNAL, "pool check: %zu segments counted, %zu listed",
                       pool->n_segments, n_segments);
    if (s == REMAT_OK)
        s = check_stat("requested", pool->st.requested.current, sum.requested);
    if (s == REMAT_OK)
        s = check_stat("allocated", pool->st.allocated.current, sum.allocated);
    if (s == REMAT_OK)
        s = check_stat("reserved", pool->st.reserved.current, sum.reserved);
    for (size_t i = 0; i < pool->n_tags && s == REMAT_OK; i++)
        s = check_stat(pool->tags[i].name, pool->tags[i].st.current, tag_bytes[i]);
    free(tag_bytes);
    return s;
}

remat_status remat_pool_check(const remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_check: pool must not be NULL");
    pool_lock(pool);
    remat_status s = pool_check_locked(pool);
    pool_unlock(pool);
    return s;
}

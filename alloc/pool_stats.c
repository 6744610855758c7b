/* alloc/pool_stats.c: what the pool tells about itself: stats, peaks, tags, fragmentation and the
 * JSON snapshot of every segment and block. */
#include "alloc/pool.h"

#include <string.h>

/* The bytes of the run of free and parked blocks around parked b: what merging would give. */
static uint64_t stats_parked_run(const pool_block *b)
{
    uint64_t run = b->size;
    for (const pool_block *p = b->prev; p && !p->allocated; p = p->prev)
        run += p->size;
    for (const pool_block *n = b->next; n && !n->allocated; n = n->next)
        run += n->size;
    return run;
}

/* The largest free block, counting parked blocks as merged with their free neighbours (as they
 * will be before the pool grows). */
static uint64_t stats_largest_free(const remat_pool *pool)
{
    uint64_t largest = 0;
    for (int k = 0; k < POOL_KINDS; k++) {
        const pool_block *b = pool_index_largest(&pool->free[k]);
        if (b && b->size > largest)
            largest = b->size;
    }
    for (size_t c = 0; c < POOL_QUICK_CLASSES; c++)
        for (const pool_block *b = pool->quick[c]; b; b = b->bin_next) {
            uint64_t run = stats_parked_run(b);
            if (run > largest)
                largest = run;
        }
    return largest;
}

remat_status remat_pool_stats_get(const remat_pool *pool, remat_pool_stats *out)
{
    if (!pool || !out)
        return remat_fail(REMAT_EINVAL, "remat_pool_stats_get: pool and out must not be NULL");
    pool_lock(pool);
    *out = pool->st;
    out->largest_free_block = stats_largest_free(pool);
    pool_unlock(pool);
    return REMAT_OK;
}

remat_status remat_pool_reset_peaks(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_reset_peaks: pool must not be NULL");
    pool_lock(pool);
    pool->st.requested.peak = pool->st.requested.current;
    pool->st.allocated.peak = pool->st.allocated.current;
    pool->st.reserved.peak = pool->st.reserved.current;
    for (size_t i = 0; i < pool->n_tags; i++)
        pool->tags[i].st.peak = pool->tags[i].st.current;
    pool_unlock(pool);
    return REMAT_OK;
}

double remat_pool_fragmentation(const remat_pool *pool)
{
    if (!pool)
        return 0.0;
    pool_lock(pool);
    uint64_t r = pool->st.reserved.current, a = pool->st.allocated.current;
    pool_unlock(pool);
    return r ? 1.0 - (double)a / (double)r : 0.0;
}

/* ==== Tags ==================================================================================== */

remat_status remat_pool_tag_stats(const remat_pool *pool, const char *tag, remat_stat *out)
{
    if (!pool || !out)
        return remat_fail(REMAT_EINVAL, "remat_pool_tag_stats: pool and out must not be NULL");
    memset(out, 0, sizeof *out);
    pool_lock(pool);
    const char *name = tag ? tag : "untagged";
    for (size_t i = 0; i < pool->n_tags; i++)
        if (strcmp(pool->tags[i].name, name) == 0)
            *out = pool->tags[i].st;
    pool_unlock(pool);
    return REMAT_OK;
}

size_t remat_pool_tag_count(const remat_pool *pool)
{
    if (!pool)
        return 0;
    pool_lock(pool);
    size_t n = pool->n_tags;
    pool_unlock(pool);
    return n;
}

remat_status remat_pool_tag_at(const remat_pool *pool, size_t i, char *name, size_t n, remat_stat *out)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_tag_at: pool must not be NULL");
    remat_status s = REMAT_OK;
    pool_lock(pool);
    if (i >= pool->n_tags) {
        s = remat_fail(REMAT_EINVAL, "remat_pool_tag_at: tag %zu out of range (%zu tags)", i,
                       pool->n_tags);
    } else {
        if (name && n)
            snprintf(name, n, "%s", pool->tags[i].name);
        if (out)
            *out = pool->tags[i].st;
    }
    pool_unlock(pool);
    return s;
}

/* ==== Snapshot ================================================================================ */

static void snapshot_stat(FILE *f, const char *name, remat_stat s)
{
    fprintf(f, "\"%s\": {\"current\": %llu, \"peak\": %llu}", name, (unsigned long long)s.current,
            (unsigned long long)s.peak);
}

static void snapshot_stats(const remat_pool *pool, FILE *f)
{
    const remat_pool_stats *s = &pool->st;
    fprintf(f, "{");
    snapshot_stat(f, "requested", s->requested);
    fprintf(f, ", ");
    snapshot_stat(f, "allocated", s->allocated);
    fprintf(f, ", ");
    snapshot_stat(f, "reserved", s->reserved);
    fprintf(f, ", \"n_alloc\": %llu, \"n_free\": %llu, \"n_cache_hits\": %llu, "
               "\"n_device_alloc\": %llu, \"n_device_free\": %llu, \"n_retries\": %llu, "
               "\"n_ooms\": %llu, \"largest_free_block\": %llu}",
            (unsigned long long)s->n_alloc, (unsigned long long)s->n_free,
            (unsigned long long)s->n_cache_hits, (unsigned long long)s->n_device_alloc,
            (unsigned long long)s->n_device_free, (unsigned long long)s->n_retries,
            (unsigned long long)s->n_ooms, (unsigned long long)stats_largest_free(pool));
}

static void snapshot_segment(const remat_pool *pool, const pool_segment *seg, FILE *f)
{
    fprintf(f, "{\"address\": %llu, \"size\": %llu, \"kind\": \"%s\", \"expandable\": %s, "
               "\"blocks\": [",
            (unsigned long long)seg->base, (unsigned long long)seg->size,
            seg->kind == POOL_SMALL ? "small" : "large", seg->expandable ? "true" : "false");
    for (const pool_block *b = seg->first; b; b = b->next) {
        fprintf(f, "%s{\"offset\": %llu, \"size\": %llu, \"requested\": %llu, \"state\": \"%s\", "
                   "\"stream\": %llu, \"tag\": \"%s\"}",
                b == seg->first ? "" : ", ", (unsigned long long)(b->addr - seg->base),
                (unsigned long long)b->size, (unsigned long long)b->requested,
                b->allocated ? "allocated" : b->parked ? "parked" : "free",
                (unsigned long long)pool_stream_number((remat_pool *)pool, b->stream),
                b->allocated ? pool_tag_name(pool, b->tag) : "");
    }
    fprintf(f, "]}");
}

remat_status remat_pool_snapshot(const remat_pool *pool, FILE *f)
{
    if (!pool || !f)
        return remat_fail(REMAT_EINVAL, "remat_pool_snapshot: pool and f must not be NULL");
    pool_lock(pool);
    fprintf(f, "{\"device\": \"%s\", \"limit_bytes\": %llu, \"stats\": ", pool->dev->info.spec,
            (unsigned long long)pool->cfg.limit_bytes);
    snapshot_stats(pool, f);
    fprintf(f, ", \"segments\": [");
    for (const pool_segment *seg = pool->segments; seg; seg = seg->next) {
        snapshot_segment(pool, seg, f);
        if (seg->next)
            fprintf(f, ", ");
    }
    fprintf(f, "]}\n");
    int bad = ferror(f);
    pool_unlock(pool);
    return bad ? remat_fail(REMAT_EIO, "remat_pool_snapshot: write failed") : REMAT_OK;
}

/* alloc/pool.c: the caching pool: segments come from the device; blocks are carved from segments
 * best-fit, split on allocation, merged with free neighbours on free, and kept for reuse. */
#include "alloc/pool.h"

#include <stdlib.h>
#include <string.h>

#define BLOCKS_PER_CHUNK 256

/* ==== Small helpers ========================================================================== */

static void stat_sub(remat_stat *s, uint64_t v) { s->current -= v; }

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* ==== Block structs (host memory, recycled) ================================================== */

pool_block *pool_block_new(remat_pool *pool)
{
    if (!pool->spare_blocks) {
        if (pool->n_chunks == pool->cap_chunks) {
            size_t cap = pool->cap_chunks ? pool->cap_chunks * 2 : 16;
            void **c = realloc(pool->chunks, cap * sizeof *c);
            if (!c)
                return NULL;
            pool->chunks = c;
            pool->cap_chunks = cap;
        }
        pool_block *chunk = calloc(BLOCKS_PER_CHUNK, sizeof *chunk);
        if (!chunk)
            return NULL;
        pool->chunks[pool->n_chunks++] = chunk;
        for (int i = BLOCKS_PER_CHUNK; i-- > 0;) {
            chunk[i].bin_next = pool->spare_blocks;
            pool->spare_blocks = &chunk[i];
        }
    }
    pool_block *b = pool->spare_blocks;
    pool->spare_blocks = b->bin_next;
    b->bin_next = NULL;
    return b;
}

/* Returns b's struct to the spares, keeping its stream arrays for the next user. */
void pool_block_recycle(remat_pool *pool, pool_block *b)
{
    remat_stream *uses = b->uses;
    pool_fence **fences = b->fences;
    uint32_t cap_uses = b->cap_uses, cap_fences = b->cap_fences;
    pool_fence_drop_all(pool, b);
    memset(b, 0, sizeof *b);
    b->uses = uses, b->cap_uses = cap_uses;
    b->fences = fences, b->cap_fences = cap_fences;
    b->bin_next = pool->spare_blocks;
    pool->spare_blocks = b;
}

/* ==== Tags and stream numbers ================================================================ */

int pool_tag_is_word(const char *tag)
{
    size_t n = 0;
    for (const char *p = tag; *p; p++, n++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok)
            return 0;
    }
    return n > 0 && n < sizeof(((pool_tag *)0)->name);
}

static const char *tag_name_at(const void *tags, size_t i)
{
    return ((const pool_tag *)tags)[i].name;
}

/* Index of `tag` in pool->tags, adding it when `create`; UINT32_MAX if absent or on failure. */
static uint32_t tag_find(remat_pool *pool, const char *tag, int create)
{
    if (!tag)
        return 0;
    if (strcmp(pool->tags[pool->last_tag].name, tag) == 0)
        return pool->last_tag;
    /* through the index, not a scan: a trace of many distinct tags stays linear */
    size_t i = strcmp(tag, "untagged") == 0
                   ? 0
                   : pool_names_find(&pool->tag_index, tag, tag_name_at, pool->tags, pool->n_tags);
    if (i < pool->n_tags)
        return pool->last_tag = (uint32_t)i;
    if (!create)
        return UINT32_MAX;
    if (!pool_tag_is_word(tag)) {
        remat_fail(REMAT_EINVAL, "bad allocation tag '%.80s': use a word of letters, digits, '_', "
                                 "'-' or '.' of at most 63 characters", tag);
        return UINT32_MAX;
    }
    if (pool->n_tags == pool->cap_tags) {
        size_t cap = pool->cap_tags * 2;
        pool_tag *t = realloc(pool->tags, cap * sizeof *t);
        if (!t) {
            remat_fail(REMAT_ENOMEM, "pool: out of host memory for tag '%s'", tag);
            return UINT32_MAX;
        }
        pool->tags = t;
        pool->cap_tags = cap;
    }
    if (pool_names_add(&pool->tag_index, tag, pool->n_tags) != REMAT_OK) {
        remat_fail(REMAT_ENOMEM, "pool: out of host memory for tag '%s'", tag);
        return UINT32_MAX;
    }
    pool_tag *t = &pool->tags[pool->n_tags];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", tag);
    return pool->last_tag = (uint32_t)pool->n_tags++;
}

const char *pool_tag_name(const remat_pool *pool, uint32_t tag) { return pool->tags[tag].name; }

uint64_t pool_stream_number(remat_pool *pool, remat_stream s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < pool->n_streams; i++)
        if (pool->streams[i] == s)
            return i + 1;
    if (pool->n_streams == pool->cap_streams) {
        size_t cap = pool->cap_streams ? pool->cap_streams * 2 : 8;
        remat_stream *p = realloc(pool->streams, cap * sizeof *p);
        if (!p)
            return 0; /* trace numbering only: fall back to the default stream's number */
        pool->streams = p;
        pool->cap_streams = cap;
    }
    pool->streams[pool->n_streams++] = s;
    return pool->n_streams;
}

/* ==== Segments ================================================================================ */

void pool_segment_link(remat_pool *pool, pool_segment *seg)
{
    seg->id = pool->next_segment_id++;
    seg->prev = NULL;
    seg->next = pool->segments;
    if (seg->next)
        seg->next->prev = seg;
    pool->segments = seg;
    pool->n_segments++;
}

void pool_segment_unlink(remat_pool *pool, pool_segment *seg)
{
    if (seg->prev)
        seg->prev->next = seg->next;
    else
        pool->segments = seg->next;
    if (seg->next)
        seg->next->prev = seg->prev;
    pool->n_segments--;
}

/* Takes a segment of `size` bytes from the device; returns its one free block (not indexed). */
static remat_status segment_new(remat_pool *pool, int kind, size_t size, pool_block **out)
{
    pool_segment *seg = calloc(1, sizeof *seg);
    pool_block *b = pool_block_new(pool);
    if (!seg || !b) {
        free(seg);
        if (b)
            pool_block_recycle(pool, b);
        return remat_fail(REMAT_ENOMEM, "pool: out of host memory for segment metadata");
    }
    void *p = NULL;
    remat_status s = pool_dev_malloc(pool, size, &p);
    if (s != REMAT_OK) {
        free(seg);
        pool_block_recycle(pool, b);
        return s;
    }
    seg->base = (uintptr_t)p;
    seg->size = seg->va_size = size;
    seg->kind = kind;
    seg->first = b;
    pool_segment_link(pool, seg);
    b->addr = seg->base;
    b->size = size;
    b->seg = seg;
    pool_stat_add(&pool->st.reserved, size);
    pool->st.n_device_alloc++;
    *out = b;
    return REMAT_OK;
}

static int segment_is_free(const pool_segment *seg)
{
    return pool_block_is_free(seg->first) && !seg->first->next;
}

/* Returns a segment whose one block is free and not indexed to the device. On a device failure
 * the segment stays (still counted) and the status is returned. */
static remat_status segment_release(remat_pool *pool, pool_segment *seg)
{
    pool_block *b = seg->first;
    if (b->n_fences)
        REMAT_TRY(pool_dev_sync(pool)); /* the device may still be using it on another stream */
    REMAT_TRY(pool_dev_free(pool, (void *)seg->base, seg->size));
    pool_segment_unlink(pool, seg);
    stat_sub(&pool->st.reserved, seg->size);
    pool->st.n_device_free++;
    pool_block_recycle(pool, b);
    free(seg);
    return REMAT_OK;
}

static void pool_quick_flush(remat_pool *pool);

/* Releases every segment holding no allocated block; *released gets the bytes returned. */
remat_status pool_release_cached(remat_pool *pool, uint64_t *released)
{
    remat_status first_error = REMAT_OK;
    *released = 0;
    pool_quick_flush(pool);
    if (pool->expand_seg)
        first_error = pool_expand_trim(pool, released);
    for (pool_segment *seg = pool->segments, *next; seg; seg = next) {
        next = seg->next;
        if (seg->expandable || !segment_is_free(seg))
            continue;
        size_t size = seg->size;
        pool_index_remove(&pool->free[seg->kind], seg->first);
        remat_status s = segment_release(pool, seg);
        if (s == REMAT_OK) {
            *released += size;
        } else {
            pool_index_insert(&pool->free[seg->kind], seg->first);
            if (first_error == REMAT_OK)
                first_error = s;
        }
    }
    return first_error;
}

remat_status remat_pool_empty_cache(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_empty_cache: pool must not be NULL");
    uint64_t released;
    pool_lock(pool);
    remat_status s = pool_release_cached(pool, &released);
    pool_unlock(pool);
    return s;
}

/* ==== Allocation ============================================================================== */

/* May a request below POOL_MIN_LARGE_ALLOC take free block b? Not if b is a whole segment made
 * for a request of at least POOL_MIN_LARGE_ALLOC: kept whole, it serves the next such request
 * (training allocates the same activation sizes every step), while a smaller block placed in it
 * that outlives it (a gradient, an optimizer state) would push that request into a new segment
 * (docs/allocator.md, "Spare segments"). */
static int pool_medium_may_take(const pool_block *b)
{
    return !b->seg->big || b->prev || b->next;
}

/* The cached block best fitting `size`, honouring the cap on splitting very large blocks; with
 * `spare`, a request below POOL_MIN_LARGE_ALLOC leaves whole big segments alone. */
static pool_block *pool_find_free(remat_pool *pool, int kind, size_t size, int spare)
{
    if (kind == POOL_SMALL) {
        /* A free block of a large segment that is no bigger than a small request can never
         * serve a large one (the tail a 2 MiB rounding leaves): small requests use it first. */
        pool_block *left = pool_index_best_fit(&pool->free[POOL_LARGE], size);
        if (left && left->size <= POOL_SMALL_MAX)
            return left;
    }
    pool_block *b = spare && kind == POOL_LARGE && size < POOL_MIN_LARGE_ALLOC
                        ? pool_index_best_fit_if(&pool->free[kind], size, pool_medium_may_take)
                        : pool_index_best_fit(&pool->free[kind], size);
    uint64_t cap = pool->cfg.expandable_segments ? 0 : pool->cfg.max_split_bytes;
    if (!b || !cap || b->size < cap)
        return b;
    /* b is oversize: only a request that is oversize itself and wastes under 20 MiB may use it,
     * and since b is the best fit, no larger block can do better. */
    if (size < cap || b->size - size >= POOL_LARGE_BUFFER)
        return NULL;
    return b;
}

/* Segment sizes to try for a new segment, preferred first; returns how many (1 or 2). */
static int pool_segment_sizes(const remat_pool *pool, int kind, size_t size, size_t sizes[2])
{
    if (pool->cfg.no_cache) {
        sizes[0] = size;
        return 1;
    }
    if (kind == POOL_SMALL) {
        sizes[0] = POOL_SMALL_SEGMENT;
        return 1;
    }
    /* Below 10 MiB: room for as many requests of this size as fit in a buffer (training repeats
     * sizes), rounded to 2 MiB; the buffer is 20 MiB, but at most a quarter of what the pool's
     * large segments already hold, so a small pool grows in proportion to itself instead of in
     * 20 MiB steps that would dominate it. From 10 MiB on: the request rounded to 2 MiB. Under
     * a limit only the latter: a shared buffer held by one live block strands memory that fixed
     * segments can never combine with the rest of the limit (docs/allocator.md, "Memory
     * limit"). */
    sizes[1] = round_up(size, POOL_SEGMENT_ROUND);
    sizes[0] = sizes[1];
    if (size < POOL_MIN_LARGE_ALLOC && !pool->cfg.limit_bytes) {
        uint64_t buffer = 0; /* a share of the large segments (runs on growth only) */
        for (const pool_segment *seg = pool->segments; seg; seg = seg->next)
            buffer += seg->kind == POOL_LARGE ? seg->size : 0;
        buffer /= POOL_BUFFER_SHARE;
        if (buffer > POOL_LARGE_BUFFER)
            buffer = POOL_LARGE_BUFFER;
        size_t copies = buffer / size ? (size_t)(buffer / size) : 1;
        sizes[0] = round_up(copies * size, POOL_SEGMENT_ROUND);
    }
    return sizes[0] == sizes[1] ? 1 : 2;
}

/* Tries each segment size within the limit; REMAT_ENOMEM if none could be had. */
static remat_status pool_try_grow(remat_pool *pool, int kind, size_t size, pool_block **out)
{
    if (kind == POOL_LARGE && pool->vm_size)
        return pool_expand_grow(pool, size, out);
    size_t sizes[2];
    int n = pool_segment_sizes(pool, kind, size, sizes);
    remat_status s = REMAT_ENOMEM;
    for (int i = 0; i < n; i++) {
        uint64_t limit = pool->cfg.limit_bytes;
        if (limit && (sizes[i] > limit || pool->st.reserved.current > limit - sizes[i]))
            continue;
        s = segment_new(pool, kind, sizes[i], out);
        if (s == REMAT_OK)
            (*out)->seg->big = kind == POOL_LARGE && size >= POOL_MIN_LARGE_ALLOC;
        if (s != REMAT_ENOMEM)
            return s;
    }
    return s == REMAT_OK ? REMAT_ENOMEM : s;
}

/* What the device said when it last refused a segment on this thread: the out-of-memory message
 * repeats it, since the free-memory figure alone hides causes such as a host refusing address
 * space to a sim device. */
static _Thread_local char pool_refusal[256];

/* pool_try_grow, noting the device's refusal. */
static remat_status pool_grow_noting(remat_pool *pool, int kind, size_t size, pool_block **out)
{
    remat_clear_error();
    remat_status s = pool_try_grow(pool, kind, size, out);
    if (s == REMAT_ENOMEM && remat_last_error()[0])
        snprintf(pool_refusal, sizeof pool_refusal, "%s", remat_last_error());
    return s;
}

/* Writes the out-of-memory message: what was asked and where the memory went. */
static void pool_oom_message(remat_pool *pool, size_t bytes)
{
    char a[32], l[32], r[32], al[32], c[32], lb[32];
    uint64_t free_b = 0, total_b = 0;
    pool_block *big0 = pool_index_largest(&pool->free[POOL_SMALL]);
    pool_block *big1 = pool_index_largest(&pool->free[POOL_LARGE]);
    uint64_t largest = big0 ? big0->size : 0;
    if (big1 && big1->size > largest)
        largest = big1->size;
    uint64_t reserved = pool->st.reserved.current, allocated = pool->st.allocated.current;
    char where[96];
    if (pool->cfg.limit_bytes)
        snprintf(where, sizeof where, "pool limit %s",
                 remat_format_bytes(pool->cfg.limit_bytes, l, sizeof l));
    else if (pool->dev->ops->mem_info(pool->dev, &free_b, &total_b) == REMAT_OK)
        snprintf(where, sizeof where, "%s free on the device",
                 remat_format_bytes(free_b, l, sizeof l));
    else
        snprintf(where, sizeof where, "device free memory unknown");
    remat_fail(REMAT_ENOMEM,
               "cannot allocate %s (%zu bytes) on %s: %s; %s reserved by this pool, %s allocated, "
               "%s cached but free, largest free block %s, fragmentation %.1f%%%s%s",
               remat_format_bytes(bytes, a, sizeof a), bytes, pool->dev->info.spec, where,
               remat_format_bytes(reserved, r, sizeof r),
               remat_format_bytes(allocated, al, sizeof al),
               remat_format_bytes(reserved - allocated, c, sizeof c),
               remat_format_bytes(largest, lb, sizeof lb),
               reserved ? 100.0 * (1.0 - (double)allocated / (double)reserved) : 0.0,
               pool_refusal[0] ? "; the device refused: " : "", pool_refusal);
    pool_refusal[0] = '\0';
}

/* Before the pool grows for a large request of `size` bytes: returns to the device every wholly
 * free large segment too small for it. This request cannot use them, and held they would only
 * add to the reserved peak the growth is about to raise: the segments of an earlier phase (a
 * smaller batch, a freed buffer) that the current one never reuses (docs/allocator.md, "Growth
 * and release"). Stops at the first device free that fails (that segment stays cached). */
static void pool_release_smaller(remat_pool *pool, int kind, size_t size)
{
    if (kind != POOL_LARGE || pool->cfg.no_cache)
        return;
    for (pool_segment *seg = pool->segments, *next; seg; seg = next) {
        next = seg->next;
        if (seg->expandable || seg->kind != POOL_LARGE || seg->size >= size || !segment_is_free(seg))
            continue;
        pool_index_remove(&pool->free[POOL_LARGE], seg->first);
        if (segment_release(pool, seg) != REMAT_OK) {
            pool_index_insert(&pool->free[POOL_LARGE], seg->first);
            return;
        }
    }
}

/* A free block of at least `size` bytes, not indexed: from the cache, else from a new segment
 * (after releasing the cache once if the device or the limit refuses). */
static pool_block *pool_obtain(remat_pool *pool, int kind, size_t size, size_t bytes)
{
    pool_block *b = pool->cfg.no_cache ? NULL : pool_find_free(pool, kind, size, 1);
    if (b) {
        pool_index_remove(&pool->free[b->seg->kind], b);
        pool->st.n_cache_hits++;
        return b;
    }
    if (pool->quick_blocks) { /* parked blocks never make the pool grow: merge them first */
        pool_quick_flush(pool);
        if ((b = pool_find_free(pool, kind, size, 1))) {
            pool_index_remove(&pool->free[b->seg->kind], b);
            pool->st.n_cache_hits++;
            return b;
        }
    }
    pool_release_smaller(pool, kind, size);
    pool_refusal[0] = '\0';
    remat_status s = pool_grow_noting(pool, kind, size, &b);
    if (s == REMAT_ENOMEM) {
        uint64_t released = 0;
        pool_release_cached(pool, &released);
        if (released) {
            pool->st.n_retries++;
            s = pool_grow_noting(pool, kind, size, &b);
        }
    }
    if (s == REMAT_ENOMEM && !pool->cfg.no_cache) {
        /* Out of room: spared segments and the kinds are preferences, not walls; any free
         * block serves rather than fail (docs/allocator.md, "Memory limit"). */
        b = pool_find_free(pool, kind, size, 0);
        if (!b)
            b = pool_find_free(pool, kind == POOL_SMALL ? POOL_LARGE : POOL_SMALL, size, 0);
        if (b) {
            pool_index_remove(&pool->free[b->seg->kind], b);
            pool->st.n_cache_hits++;
            return b;
        }
    }
    if (s == REMAT_OK)
        return b;
    pool->st.n_ooms++;
    if (s == REMAT_ENOMEM)
        pool_oom_message(pool, bytes);
    return NULL;
}

/* Makes the tail of b beyond `size` a free block of its own (b was free, so its successor is
 * allocated: nothing to merge). */
static void pool_split(remat_pool *pool, pool_block *b, size_t size)
{
    pool_block *rest = pool_block_new(pool);
    if (!rest)
        return; /* no host memory for the struct: hand out the whole block instead */
    rest->addr = b->addr + size;
    rest->size = b->size - size;
    rest->seg = b->seg;
    rest->stream = b->stream;
    rest->prev = b;
    rest->next = b->next;
    if (rest->next)
        rest->next->prev = rest;
    b->next = rest;
    b->size = size;
    pool_fence_merge(pool, rest, b, 1);
    pool_index_insert(&pool->free[b->seg->kind], rest);
}

static int pool_should_split(const remat_pool *pool, const pool_block *b, size_t size)
{
    if (pool->cfg.no_cache || b->size - size < POOL_ALIGN)
        return 0;
    return !pool->cfg.max_split_bytes || pool->cfg.expandable_segments ||
           b->size < pool->cfg.max_split_bytes;
}

static inline void *pool_commit(remat_pool *pool, pool_block *b, size_t bytes,
                                remat_stream stream, uint32_t tag);

/* Takes b out of circulation for the caller: live map, stream wait, split, stats. */
static void *pool_hand_out(remat_pool *pool, pool_block *b, size_t size, size_t bytes,
                           remat_stream stream, uint32_t tag)
{
    remat_status s = pool_map_put(&pool->live, b->addr, b);
    if (s == REMAT_OK) {
        s = pool_fence_on_reuse(pool, b, stream);
        if (s != REMAT_OK)
            pool_map_take(&pool->live, b->addr);
    }
    if (s != REMAT_OK) {
        pool_index_insert(&pool->free[b->seg->kind], b);
        return NULL;
    }
    if (pool_should_split(pool, b, size))
        pool_split(pool, b, size);
    return pool_commit(pool, b, bytes, stream, tag);
}

/* Marks b handed out: its fields, the stats, the trace line. */
static inline void *pool_commit(remat_pool *pool, pool_block *b, size_t bytes,
                                remat_stream stream, uint32_t tag)
{
    b->allocated = 1;
    b->requested = bytes;
    b->stream = stream;
    b->tag = tag;
    pool_stat_add(&pool->st.requested, bytes);
    pool_stat_add(&pool->st.allocated, b->size);
    pool_stat_add(&pool->tags[tag].st, bytes);
    pool->st.n_alloc++;
    pool->recent[(b->addr / POOL_ALIGN) & (POOL_RECENT - 1)] = b;
    if (pool->trace) {
        b->trace_id = ++pool->next_trace_id;
        /* "d": a dedicated segment, so a replay serves it as this pool did */
        fprintf(pool->trace, "%c %llu %zu %llu %s\n",
                b->seg->dedicated == POOL_EXACT_USER ? 'd' : 'a',
                (unsigned long long)b->trace_id, bytes,
                (unsigned long long)pool_stream_number(pool, stream), pool->tags[tag].name);
    }
    return (void *)b->addr;
}

/* ==== Quick cache: exact-size LIFO lists of parked small blocks ============================= */

static pool_block *pool_coalesce(remat_pool *pool, pool_block *b);

/* Can freed b be parked instead of merged? Small enough, caching on, room on its list. */
static int pool_quick_can_park(const remat_pool *pool, const pool_block *b)
{
    return b->size <= POOL_QUICK_MAX && !pool->cfg.no_cache &&
           pool->n_quick[b->size / POOL_ALIGN - 1] < POOL_QUICK_DEPTH;
}

/* Parks freed b (still in the live map, so its next hand-out needs no map update). */
static void pool_quick_park(remat_pool *pool, pool_block *b)
{
    size_t c = b->size / POOL_ALIGN - 1;
    b->parked = 1;
    b->bin_prev = NULL;
    b->bin_next = pool->quick[c];
    pool->quick[c] = b;
    pool->n_quick[c]++;
    pool->quick_blocks++;
}

/* A parked block of exactly `size` bytes, taken off its list, or NULL. */
static pool_block *pool_quick_take(remat_pool *pool, size_t size)
{
    size_t c = size / POOL_ALIGN - 1;
    pool_block *b = pool->quick[c];
    if (!b)
        return NULL;
    pool->quick[c] = b->bin_next;
    pool->n_quick[c]--;
    pool->quick_blocks--;
    b->bin_next = NULL;
    b->parked = 0;
    return b;
}

/* Merges every parked block back into the free index (before the pool grows or releases). */
static void pool_quick_flush(remat_pool *pool)
{
    for (size_t c = 0; c < POOL_QUICK_CLASSES && pool->quick_blocks; c++)
        for (pool_block *b; (b = pool_quick_take(pool, (c + 1) * POOL_ALIGN));) {
            pool_map_take(&pool->live, b->addr);
            b = pool_coalesce(pool, b);
            pool_index_insert(&pool->free[b->seg->kind], b);
        }
}

/* The fast path: a parked block of the exact size, handed out without split or map update. */
static void *pool_quick_alloc(remat_pool *pool, size_t size, size_t bytes, remat_stream stream,
                              uint32_t tag)
{
    pool_block *b = pool_quick_take(pool, size);
    if (!b)
        return NULL;
    if (b->n_fences && pool_fence_on_reuse(pool, b, stream) != REMAT_OK) {
        pool_quick_park(pool, b);
        return NULL;
    }
    pool->st.n_cache_hits++;
    return pool_commit(pool, b, bytes, stream, tag);
}

/* The caching path of an allocation (tag resolved). Forced inline into the normal path: with two
 * callers gcc would call it out of line, which costs the 256-byte pair about 8 ns (bench_pool). */
static inline __attribute__((always_inline)) void *
pool_alloc_cache_path(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t t)
{
    if (bytes > POOL_MAX_REQUEST) {
        pool->st.n_ooms++;
        pool_oom_message(pool, bytes);
        return NULL;
    }
    size_t size = bytes ? round_up(bytes, POOL_ALIGN) : POOL_ALIGN;
    if (size <= POOL_QUICK_MAX && pool->quick[size / POOL_ALIGN - 1]) {
        void *q = pool_quick_alloc(pool, size, bytes, stream, t);
        if (q)
            return q;
    }
    /* With expandable segments every request shares the one range (see docs/allocator.md). */
    int kind = size <= POOL_SMALL_MAX && !pool->vm_size ? POOL_SMALL : POOL_LARGE;
    pool_block *b = pool_obtain(pool, kind, size, bytes);
    if (!b)
        return NULL;
    void *p = pool_hand_out(pool, b, size, bytes, stream, t);
    if (!p && !b->allocated && pool->cfg.no_cache) {
        pool_index_remove(&pool->free[b->seg->kind], b);
        segment_release(pool, b->seg);
    }
    return p;
}

static void *pool_alloc_locked(remat_pool *pool, size_t bytes, remat_stream stream, const char *tag)
{
    uint32_t t = tag_find(pool, tag, 1);
    if (t == UINT32_MAX)
        return NULL;
    if (pool->plan) /* planned mode (pool_plan.c): one branch on the normal path */
        return pool_plan_alloc(pool, bytes, stream, t);
    return pool_alloc_cache_path(pool, bytes, stream, t);
}

void *pool_alloc_cached(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t tag)
{
    return pool_alloc_cache_path(pool, bytes, stream, tag);
}

/* Planned mode's arena: a segment of exactly `size` bytes whose one block is handed to the plan
 * (allocated, in the live map, requested 0: the plan counts its requests itself). */
remat_status pool_arena_new(remat_pool *pool, size_t size, remat_stream stream, pool_block **out)
{
    uint64_t limit = pool->cfg.limit_bytes;
    if (limit && (size > limit || pool->st.reserved.current > limit - size))
        return remat_fail(REMAT_ENOMEM, "planned arena of %zu bytes exceeds the pool limit", size);
    pool_block *b;
    REMAT_TRY(segment_new(pool, POOL_LARGE, size, &b));
    if (pool_map_put(&pool->live, b->addr, b) != REMAT_OK) {
        segment_release(pool, b->seg);
        return remat_fail(REMAT_ENOMEM, "pool: out of host memory for the planned arena");
    }
    b->allocated = 1;
    b->stream = stream;
    pool_stat_add(&pool->st.allocated, b->size);
    *out = b;
    return REMAT_OK;
}

/* Gives the arena block back: it becomes a cached free block like any other. */
void pool_arena_release(remat_pool *pool, pool_block *b)
{
    stat_sub(&pool->st.allocated, b->size);
    b->allocated = 0;
    pool_map_take(&pool->live, b->addr);
    pool_fence_on_free(pool, b);
    pool_index_insert(&pool->free[b->seg->kind], b);
}

void *remat_alloc_tagged(remat_pool *pool, size_t bytes, remat_stream stream, const char *tag)
{
    if (!pool) {
        remat_fail(REMAT_EINVAL, "remat_alloc: pool must not be NULL");
        return NULL;
    }
    int locked = pool_enter(pool);
    void *p = pool_alloc_locked(pool, bytes, stream, tag);
    pool_leave(pool, locked);
    return p;
}

/* A segment of exactly the rounded size for one block: never split, shared or cached. */
void *pool_alloc_exact(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t t, int kind)
{
    int quiet = kind == POOL_EXACT_RECORDING;
    size_t size = bytes > POOL_MAX_REQUEST ? 0 : bytes ? round_up(bytes, POOL_ALIGN) : POOL_ALIGN;
    uint64_t limit = pool->cfg.limit_bytes, released = 0;
    pool_block *b = NULL;
    remat_status s = REMAT_ENOMEM;
    for (int attempt = 0; size && attempt < 2 && s == REMAT_ENOMEM; attempt++) {
        if (attempt && (pool_release_cached(pool, &released), !released))
            break;
        if (!limit || (size <= limit && pool->st.reserved.current <= limit - size))
            s = segment_new(pool, POOL_LARGE, size, &b);
    }
    if (s != REMAT_OK) {
        if (!quiet) {
            pool->st.n_ooms++;
            if (s == REMAT_ENOMEM)
                pool_oom_message(pool, bytes);
        }
        return NULL;
    }
    b->seg->dedicated = kind;
    void *p = pool_hand_out(pool, b, size, bytes, stream, t);
    if (!p && !b->allocated) {
        pool_index_remove(&pool->free[b->seg->kind], b);
        segment_release(pool, b->seg);
    }
    return p;
}

static void *pool_alloc_dedicated_locked(remat_pool *pool, size_t bytes, remat_stream stream,
                                         const char *tag)
{
    uint32_t t = tag_find(pool, tag, 1);
    return t == UINT32_MAX ? NULL : pool_alloc_exact(pool, bytes, stream, t, POOL_EXACT_USER);
}

void *remat_alloc_dedicated(remat_pool *pool, size_t bytes, remat_stream stream, const char *tag)
{
    if (!pool) {
        remat_fail(REMAT_EINVAL, "remat_alloc_dedicated: pool must not be NULL");
        return NULL;
    }
    int locked = pool_enter(pool);
    void *p = pool_alloc_dedicated_locked(pool, bytes, stream, tag);
    pool_leave(pool, locked);
    return p;
}

void *remat_alloc(remat_pool *pool, size_t bytes, remat_stream stream)
{
    return remat_alloc_tagged(pool, bytes, stream, NULL);
}

/* ==== Free ==================================================================================== */

/* Explains a pointer that is not live: a double free, an interior pointer, or a foreign one. */
static void pool_bad_free_message(const remat_pool *pool, uintptr_t p)
{
    for (const pool_segment *seg = pool->segments; seg; seg = seg->next) {
        if (p < seg->base || p >= seg->base + seg->size)
            continue;
        for (const pool_block *b = seg->first; b; b = b->next) {
            if (p < b->addr || p >= b->addr + b->size)
                continue;
            if (b->allocated)
                remat_fail(REMAT_EINVAL, "remat_free: %p points inside the block at %p, not to its "
                                         "start; ignored", (void *)p, (void *)b->addr);
            else
                remat_fail(REMAT_EINVAL, "remat_free: double free of %p (it is already free in "
                                         "the pool); ignored", (void *)p);
            return;
        }
    }
    remat_fail(REMAT_EINVAL, "remat_free: %p was not allocated by this pool; ignored", (void *)p);
}

/* Merges b with its free neighbours (taking them out of the index); returns the merged block. */
static pool_block *pool_coalesce(remat_pool *pool, pool_block *b)
{
    pool_index *idx = &pool->free[b->seg->kind];
    pool_block *p = b->prev, *n = b->next;
    if (p && pool_block_is_free(p)) {
        pool_index_remove(idx, p);
        p->size += b->size;
        p->next = n;
        if (n)
            n->prev = p;
        pool_fence_merge(pool, p, b, 0);
        pool_block_recycle(pool, b);
        b = p;
    }
    if (n && pool_block_is_free(n)) {
        pool_index_remove(idx, n);
        b->size += n->size;
        b->next = n->next;
        if (b->next)
            b->next->prev = b;
        pool_fence_merge(pool, b, n, 0);
        pool_block_recycle(pool, n);
    }
    return b;
}

/* The allocated block at p, or NULL: the hint for p's slot if it is that block, else the map. */
static pool_block *pool_live_block(const remat_pool *pool, uintptr_t p)
{
    pool_block *h = pool->recent[(p / POOL_ALIGN) & (POOL_RECENT - 1)];
    if (h && h->addr == p && h->allocated)
        return h;
    pool_block *b = pool_map_get(&pool->live, p);
    return b && b->allocated ? b : NULL;
}

static void pool_free_locked(remat_pool *pool, void *ptr)
{
    if (pool->plan && pool_plan_free(pool, (uintptr_t)ptr))
        return; /* a planned block (pool_plan.c) */
    pool_block *b = pool_live_block(pool, (uintptr_t)ptr);
    if (!b || !b->allocated) {
        pool_bad_free_message(pool, (uintptr_t)ptr);
        return;
    }
    stat_sub(&pool->st.requested, b->requested);
    stat_sub(&pool->st.allocated, b->size);
    stat_sub(&pool->tags[b->tag].st, b->requested);
    pool->st.n_free++;
    if (pool->trace && b->trace_id)
        fprintf(pool->trace, "f %llu\n", (unsigned long long)b->trace_id);
    b->allocated = 0;
    b->requested = 0;
    b->trace_id = 0;
    b->tag = 0;
    if (b->seg->dedicated) { /* its own segment: straight back to the device */
        pool_map_take(&pool->live, b->addr);
        if (segment_release(pool, b->seg) == REMAT_OK)
            return;
        b->seg->dedicated = 0; /* the device refused: the block stays, as a cached one */
        pool_fence_on_free(pool, b);
        pool_index_insert(&pool->free[b->seg->kind], b);
        return;
    }
    if (pool_quick_can_park(pool, b)) {
        if (b->n_uses || pool_dev_has_events(pool))
            pool_fence_on_free(pool, b);
        pool_quick_park(pool, b);
        return;
    }
    pool_map_take(&pool->live, b->addr);
    /* No cache: straight back to the device (cudaFree waits for the device by itself). */
    if (pool->cfg.no_cache && segment_release(pool, b->seg) == REMAT_OK)
        return;
    pool_fence_on_free(pool, b);
    b = pool_coalesce(pool, b);
    pool_index_insert(&pool->free[b->seg->kind], b);
}

void remat_free(remat_pool *pool, void *ptr)
{
    if (!ptr)
        return;
    if (!pool) {
        remat_fail(REMAT_EINVAL, "remat_free: pool must not be NULL (freeing %p)", ptr);
        return;
    }
    int locked = pool_enter(pool);
    pool_free_locked(pool, ptr);
    pool_leave(pool, locked);
}


remat_status remat_pool_record_stream(remat_pool *pool, void *ptr, remat_stream stream)
{
    if (!pool || !ptr)
        return remat_fail(REMAT_EINVAL, "remat_pool_record_stream: pool and ptr must not be NULL");
    remat_status s = REMAT_OK;
    pool_lock(pool);
    pool_block *b = pool_map_get(&pool->live, (uintptr_t)ptr);
    size_t planned;
    if (pool->plan && pool_plan_block_size(pool, (uintptr_t)ptr, &planned)) {
        if (stream != pool_plan_stream(pool))
            s = remat_fail(REMAT_EUNSUPPORTED, "remat_pool_record_stream: %p is a planned block; "
                                               "planned blocks stay on the plan's stream", ptr);
    } else if (!b || !b->allocated) {
        s = remat_fail(REMAT_EINVAL, "remat_pool_record_stream: %p is not an allocated block of "
                                     "this pool", ptr);
    } else if (stream != b->stream && pool_dev_has_events(pool)) {
        int seen = 0;
        for (uint32_t i = 0; i < b->n_uses; i++)
            seen |= b->uses[i] == stream;
        if (!seen && b->n_uses == b->cap_uses) {
            uint32_t cap = b->cap_uses ? b->cap_uses * 2 : 4;
            remat_stream *u = realloc(b->uses, cap * sizeof *u);
            if (!u)
                s = remat_fail(REMAT_ENOMEM, "remat_pool_record_stream: out of host memory");
            else
                b->uses = u, b->cap_uses = cap;
        }
        if (!seen && s == REMAT_OK)
            b->uses[b->n_uses++] = stream;
    }
    pool_unlock(pool);
    return s;
}

remat_status remat_pool_block_size(const remat_pool *pool, const void *ptr, size_t *out)
{
    if (!pool || !out)
        return remat_fail(REMAT_EINVAL, "remat_pool_block_size: pool and out must not be NULL");
    pool_lock(pool);
    if (pool->plan && pool_plan_block_size(pool, (uintptr_t)ptr, out)) {
        pool_unlock(pool);
        return REMAT_OK;
    }
    pool_block *b = pool_map_get(&pool->live, (uintptr_t)ptr);
    if (b && !b->allocated)
        b = NULL; /* parked: free to the caller */
    if (b)
        *out = b->size;
    pool_unlock(pool);
    return b ? REMAT_OK : remat_fail(REMAT_EINVAL, "remat_pool_block_size: %p is not live", ptr);
}

/* ==== Create and destroy ====================================================================== */

remat_status remat_pool_create(remat_device *dev, const remat_pool_config *cfg, remat_pool **out)
{
    if (!dev || !out)
        return remat_fail(REMAT_EINVAL, "remat_pool_create: dev and out must not be NULL");
    *out = NULL;
    if (!dev->ops || !dev->ops->malloc)
        return remat_fail(REMAT_EDEVICE, "remat_pool_create: device %s cannot allocate", dev->info.spec);
    if (cfg && cfg->expandable_segments && cfg->no_cache)
        return remat_fail(REMAT_EINVAL, "remat_pool_create: expandable_segments and no_cache exclude "
                                        "each other");
    remat_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return remat_fail(REMAT_ENOMEM, "remat_pool_create: out of host memory");
    pool->dev = dev;
    if (cfg)
        pool->cfg = *cfg;
    pool->cap_tags = 8;
    pool->tags = calloc(pool->cap_tags, sizeof *pool->tags);
    atomic_init(&pool->lock, 0);
    atomic_init(&pool->bias_owner, 0);
    atomic_init(&pool->bias_busy, 0);
    atomic_init(&pool->bias_revoked, 0);
    if (!pool->tags || pool_map_init(&pool->live) != REMAT_OK) {
        free(pool->tags);
        pool_map_destroy(&pool->live);
        free(pool);
        return remat_fail(REMAT_ENOMEM, "remat_pool_create: out of host memory");
    }
    snprintf(pool->tags[0].name, sizeof pool->tags[0].name, "untagged");
    pool->n_tags = 1;
    if (pool->cfg.expandable_segments) {
        remat_status s = pool_expand_init(pool);
        if (s != REMAT_OK) {
            remat_pool_destroy(pool);
            return s;
        }
    }
    *out = pool;
    return REMAT_OK;
}

void remat_pool_destroy(remat_pool *pool)
{
    if (!pool)
        return;
    pool_plan_destroy(pool);
    int synced = 0;
    while (pool->segments) {
        pool_segment *seg = pool->segments;
        if (!synced && pool_dev_has_events(pool))
            pool_dev_sync(pool), synced = 1;
        if (seg->expandable)
            pool->dev->ops->vm_unmap(pool->dev, (void *)seg->base, seg->size);
        else
            pool->dev->ops->free(pool->dev, (void *)seg->base, seg->size);
        for (pool_block *b = seg->first; b; b = b->next)
            pool_fence_drop_all(pool, b), free(b->uses), free(b->fences);
        pool->segments = seg->next;
        free(seg);
    }
    for (pool_block *b = pool->spare_blocks; b; b = b->bin_next)
        free(b->uses), free(b->fences);
    for (size_t i = 0; i < pool->n_chunks; i++)
        free(pool->chunks[i]);
    pool_expand_destroy(pool);
    pool_fence_destroy_spares(pool);
    free(pool->chunks);
    free(pool->tags);
    free(pool->streams);
    pool_map_destroy(&pool->live);
    pool_map_destroy(&pool->tag_index);
    free(pool);
}

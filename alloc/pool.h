/* alloc/pool.h: the caching pool's private structures, shared by alloc/pool*.c and alloc/trace.c.
 *
 * All metadata lives in host memory, out of band: the pool never writes into device memory (sim
 * memory cannot even be touched). A segment is one device allocation (or one growable virtual
 * range); it is tiled by blocks in address order; a block is either handed out (and then found by
 * pointer in the live map), free (and then in one bin of the free index of its segment kind), or
 * parked: free but kept whole on an exact-size quick list and still in the live map. */
#ifndef REMAT_ALLOC_POOL_H
#define REMAT_ALLOC_POOL_H

#include "alloc/device.h"

#include <stdatomic.h>

/* ---- Policy constants (docs/allocator.md gives the reasons) --------------------------------- */
#define POOL_ALIGN 512u                       /* rounding and alignment of every block */
#define POOL_SMALL_MAX ((size_t)1 << 20)      /* requests up to 1 MiB are small */
#define POOL_SMALL_SEGMENT ((size_t)2 << 20)  /* small requests are packed in 2 MiB segments */
#define POOL_LARGE_BUFFER ((size_t)20 << 20)  /* segment for large requests below 10 MiB */
#define POOL_MIN_LARGE_ALLOC ((size_t)10 << 20)
#define POOL_BUFFER_SHARE 4u /* buffer <= 1/4 of the large segments' bytes */
#define POOL_SEGMENT_ROUND ((size_t)2 << 20)  /* larger segments are a multiple of 2 MiB */
#define POOL_MAX_REQUEST ((size_t)1 << 62)    /* anything above is refused before rounding */
/* Quick cache: a freed block of up to POOL_QUICK_MAX bytes is parked (not merged) on a LIFO list
 * of its exact size, up to POOL_QUICK_DEPTH per size, and handed out again as is. */
#define POOL_QUICK_MAX ((size_t)8192)
#define POOL_QUICK_CLASSES (POOL_QUICK_MAX / POOL_ALIGN)
#define POOL_QUICK_DEPTH 8u
#define POOL_RECENT 64u /* live-map hints (power of two), indexed by address / POOL_ALIGN */

enum { POOL_SMALL, POOL_LARGE, POOL_KINDS };

/* ---- Free index: segregated bins with a bitmap (best fit in O(bins/64)) ---------------------- */
/* Bins 0..4095 hold exactly one size each (512 B .. 2 MiB); above, 16 bins per power of two. */
#define POOL_EXACT_BINS 4096u
#define POOL_BINS (POOL_EXACT_BINS + 43u * 16u)
#define POOL_BIN_WORDS ((POOL_BINS + 63u) / 64u)

typedef struct pool_block pool_block;
typedef struct pool_segment pool_segment;

typedef struct {
    pool_block *head[POOL_BINS];
    uint64_t bits[POOL_BIN_WORDS];                /* bin b is non-empty */
    uint64_t words[(POOL_BIN_WORDS + 63u) / 64u]; /* bits[w] is non-zero */
    size_t count;
} pool_index;

/* ---- Stream fences: an event recorded on a stream when a block was freed --------------------- */
typedef struct pool_fence {
    device_event *ev;
    remat_stream stream;
    int refs;               /* blocks sharing this fence (split halves, merged neighbours) */
    struct pool_fence *next; /* pool's list of spare fences */
} pool_fence;

struct pool_block {
    uintptr_t addr;
    size_t size;             /* multiple of POOL_ALIGN */
    size_t requested;        /* bytes asked for (allocated blocks) */
    pool_segment *seg;
    pool_block *prev, *next; /* address neighbours inside the segment */
    pool_block *bin_prev, *bin_next; /* free blocks: their bin's list; spare blocks: next spare */
    int allocated;
    int parked;              /* free, on a quick list, still in the live map, not indexed */
    uint32_t tag;            /* index into pool->tags */
    remat_stream stream;     /* allocated: its stream; free: the stream that freed it */
    remat_stream *uses;      /* other streams recorded by remat_pool_record_stream */
    uint32_t n_uses, cap_uses;
    pool_fence **fences;     /* free blocks: events a reuse on another stream must wait for */
    uint32_t n_fences, cap_fences;
    uint64_t trace_id;
};

struct pool_segment {
    uintptr_t base;
    size_t size;             /* bytes mapped / held from the device */
    size_t va_size;          /* expandable: bytes of address space reserved (>= size) */
    int kind;                /* POOL_SMALL or POOL_LARGE */
    int expandable;
    /* Made for a request of at least POOL_MIN_LARGE_ALLOC: while wholly free, only such a
     * request may take it (pool_find_free in pool.c; docs/allocator.md, "Spare segments"). */
    int big;
    /* One block in a segment of its own, back to the device on free: POOL_EXACT_USER for
     * remat_alloc_dedicated, POOL_EXACT_RECORDING for planned mode's recorded requests (only the
     * first kind is traced as 'd': a replay of the trace records the others itself). 0: neither. */
    int dedicated;
    uint64_t id;             /* creation order: ties in best fit go to older segments, so a
                                replay makes the same choices whatever addresses it gets */
    pool_block *first;
    pool_segment *prev, *next;
};

/* ---- Hash map: nonzero key -> pointer (the live map: address -> allocated block) -------------- */
typedef struct {
    uint64_t *keys; /* 0 = empty */
    void **vals;
    size_t cap, n;   /* cap is a power of two */
} pool_map;

typedef struct {
    char name[64];
    remat_stat st; /* requested bytes currently live and their peak */
} pool_tag;

struct remat_pool {
    atomic_int lock; /* spinlock: 1 = held (pool_lock.c) */
    /* The bias (pool_lock.c): the owner thread enters alloc/free without the lock. */
    _Atomic uintptr_t bias_owner; /* pool_self() of the owner; 0 = none */
    atomic_int bias_busy;         /* the owner is inside without the lock */
    atomic_int bias_revoked;      /* another thread took the lock: the bias is over */
    int bias_off;                 /* never bias again (under the lock) */
    remat_device *dev;
    remat_pool_config cfg;
    pool_index free[POOL_KINDS];
    pool_map live;            /* allocated and parked blocks by address */
    /* Direct-mapped hints in front of the live map: the last block handed out at each slot of
     * address bits. A hint is trusted only if its block is allocated at that very address (block
     * structs live until the pool is destroyed and are zeroed when recycled), else the map is
     * asked: a free finds its block without hashing in the common case. */
    pool_block *recent[POOL_RECENT];
    pool_block *quick[POOL_QUICK_CLASSES]; /* parked blocks of size (i + 1) * POOL_ALIGN */
    uint32_t n_quick[POOL_QUICK_CLASSES];
    size_t quick_blocks;
    pool_segment *segments;
    size_t n_segments;
    uint64_t next_segment_id;
    remat_pool_stats st;
    pool_tag *tags;
    size_t n_tags, cap_tags;
    pool_map tag_index; /* tag name -> index in tags (pool_names_*) */
    uint32_t last_tag; /* cache for the fast path */
    pool_block *spare_blocks;
    void **chunks; /* slabs that spare blocks come from */
    size_t n_chunks, cap_chunks;
    pool_fence *spare_fences;
    FILE *trace;
    uint64_t next_trace_id;
    remat_stream *streams; /* trace numbering: streams[i] is stream number i + 1 */
    size_t n_streams, cap_streams;
    uint64_t fault_calls[REMAT_FAULT_SITES];
    uint64_t fault_at[REMAT_FAULT_SITES]; /* absolute call number that fails; 0 = none */
    /* Expandable segments: one reserved address range; its mapped prefix is expand_seg. */
    uintptr_t vm_base;
    size_t vm_size, vm_gran;
    pool_segment *expand_seg;
    struct pool_plan *plan; /* planned mode (pool_plan.c); NULL = off */
};

/* Does the device have events (CUDA)? Without them everything runs in order. */
static inline int pool_dev_has_events(const remat_pool *pool)
{
    const device_ops *ops = pool->dev->ops;
    return ops->event_create && ops->event_record && ops->stream_wait;
}

/* ---- pool_index.c ----------------------------------------------------------------------------- */
void pool_index_insert(pool_index *idx, pool_block *b);
void pool_index_remove(pool_index *idx, pool_block *b);
/* The smallest free block of at least `size` bytes, or NULL. */
pool_block *pool_index_best_fit(const pool_index *idx, size_t size);
/* Like pool_index_best_fit among the blocks that keep(b) accepts; scans past the refused ones. */
pool_block *pool_index_best_fit_if(const pool_index *idx, size_t size,
                                   int (*keep)(const pool_block *b));
/* The largest free block, or NULL. */
pool_block *pool_index_largest(const pool_index *idx);

/* ---- pool_map.c ------------------------------------------------------------------------------- */
remat_status pool_map_init(pool_map *m);
void pool_map_destroy(pool_map *m);
remat_status pool_map_put(pool_map *m, uint64_t key, void *val);
void *pool_map_get(const pool_map *m, uint64_t key);
void *pool_map_take(pool_map *m, uint64_t key);
/* A name index: a map from a seeded hash of each name to its position in an array of names, so
 * that looking up one of n names costs O(1), whatever names an input picks. The map may start
 * zeroed (it is allocated on the first add). at(names, i) is the i-th name. */
typedef const char *(*pool_name_at)(const void *names, size_t i);
/* Position of name among the n names, or n if it is not there. */
size_t pool_names_find(const pool_map *index, const char *name, pool_name_at at, const void *names,
                       size_t n);
/* Records that the i-th name is name. */
remat_status pool_names_add(pool_map *index, const char *name, size_t i);

/* ---- pool_device.c: every device call of the pool, counted for fault injection --------------- */
remat_status pool_dev_malloc(remat_pool *pool, size_t bytes, void **out);
remat_status pool_dev_free(remat_pool *pool, void *ptr, size_t bytes);
remat_status pool_dev_event_create(remat_pool *pool, device_event **out);
remat_status pool_dev_event_record(remat_pool *pool, device_event *ev, remat_stream stream);
remat_status pool_dev_stream_wait(remat_pool *pool, remat_stream stream, device_event *ev);
remat_status pool_dev_event_query(remat_pool *pool, device_event *ev, int *done);
remat_status pool_dev_sync(remat_pool *pool);
int pool_dev_has_vm(const remat_pool *pool);
remat_status pool_dev_vm_map(remat_pool *pool, uintptr_t addr, size_t bytes);
remat_status pool_dev_vm_unmap(remat_pool *pool, uintptr_t addr, size_t bytes);

/* ---- pool_stream.c ---------------------------------------------------------------------------- */
/* On free: records one event per stream that used b (no-op without device events). */
void pool_fence_on_free(remat_pool *pool, pool_block *b);
/* On reuse by `stream`: makes it wait for the fences of other streams; drops b's fences. */
remat_status pool_fence_on_reuse(remat_pool *pool, pool_block *b, remat_stream stream);
/* Appends the fences of `from` to `to` (merge) or shares them (split: `share` = 1). */
void pool_fence_merge(remat_pool *pool, pool_block *to, pool_block *from, int share);
void pool_fence_drop_all(remat_pool *pool, pool_block *b);
void pool_fence_destroy_spares(remat_pool *pool);

/* ---- pool.c ----------------------------------------------------------------------------------- */
/* ---- pool_lock.c: the lock, biased towards the first thread that allocates ------------------ */
/* A token of the calling thread (the address of a thread-local byte). Default TLS model: an
 * initial-exec variable marks libremat.so STATIC_TLS, and with cudart_static's page-aligned TLS
 * block no dlopen (Python's ctypes, torch's CUDAPluggableAllocator) can then load it. Programs
 * linked with libremat.a still get the direct access: the linker relaxes it. */
extern _Thread_local char pool_thread_token;
static inline uintptr_t pool_self(void) { return (uintptr_t)&pool_thread_token; }
void pool_lock_wait(const remat_pool *pool);
/* With the lock held and the bias not settled for good (bias_off == 0): revokes the bias if
 * another thread owns it; else, with `claim`, makes this thread the owner. */
void pool_bias_check(remat_pool *pool, int claim);
/* Takes the spinlock (one atomic exchange uncontended), then revokes the bias if another thread
 * holds it. Every entry into the pool other than alloc and free uses this. */
static inline void pool_lock(const remat_pool *cpool)
{
    remat_pool *pool = (remat_pool *)cpool;
    if (atomic_exchange_explicit(&pool->lock, 1, memory_order_acquire))
        pool_lock_wait(pool);
    if (!pool->bias_off)
        pool_bias_check(pool, 0);
}
static inline void pool_unlock(const remat_pool *pool)
{
    atomic_store_explicit(&((remat_pool *)pool)->lock, 0, memory_order_release);
}
/* Entry for alloc and free: the owner enters with plain stores and no lock (returns 0); anyone
 * else takes the lock (returns 1), and the first thread to do so becomes the owner. Pass the
 * result to pool_leave. The protocol is explained in pool_lock.c. */
static inline int pool_enter(remat_pool *pool)
{
    if (atomic_load_explicit(&pool->bias_owner, memory_order_relaxed) == pool_self()) {
        atomic_store_explicit(&pool->bias_busy, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst); /* the compiler keeps the store first */
        if (!atomic_load_explicit(&pool->bias_revoked, memory_order_acquire))
            return 0;
        atomic_store_explicit(&pool->bias_busy, 0, memory_order_release);
    }
    if (atomic_exchange_explicit(&pool->lock, 1, memory_order_acquire))
        pool_lock_wait(pool);
    if (!pool->bias_off)
        pool_bias_check(pool, 1);
    return 1;
}
static inline void pool_leave(remat_pool *pool, int locked)
{
    if (locked)
        pool_unlock(pool);
    else
        atomic_store_explicit(&pool->bias_busy, 0, memory_order_release);
}
const char *pool_tag_name(const remat_pool *pool, uint32_t tag);
/* Is tag a valid tag word (letters, digits, '_', '-', '.', 1..63 characters)? */
int pool_tag_is_word(const char *tag);
/* Trace number of a stream (0 = default), registering it on first sight. */
uint64_t pool_stream_number(remat_pool *pool, remat_stream s);

/* ---- pool_expand.c: the expandable segment (large requests, cfg.expandable_segments) ---------- */
remat_status pool_expand_init(remat_pool *pool);
/* Unmaps what is still mapped and releases the address range. */
void pool_expand_destroy(remat_pool *pool);
/* Maps more memory at the end so that the segment's free tail holds `size` bytes; returns that
 * tail block, taken out of the index. */
remat_status pool_expand_grow(remat_pool *pool, size_t size, pool_block **out);
/* Unmaps the free tail (whole granules); *released gets the bytes. */
remat_status pool_expand_trim(remat_pool *pool, uint64_t *released);

/* ---- pool.c, for the other pool files ----------------------------------------------------- */
/* Free, merged and indexed (not allocated, not parked)? */
static inline int pool_block_is_free(const pool_block *b) { return !b->allocated && !b->parked; }
pool_block *pool_block_new(remat_pool *pool);
void pool_block_recycle(remat_pool *pool, pool_block *b);
static inline void pool_stat_add(remat_stat *s, uint64_t v)
{
    s->current += v;
    if (s->current > s->peak)
        s->peak = s->current;
}
void pool_segment_link(remat_pool *pool, pool_segment *seg);
void pool_segment_unlink(remat_pool *pool, pool_segment *seg);

/* Releases every segment holding no allocated block; *released gets the bytes. */
remat_status pool_release_cached(remat_pool *pool, uint64_t *released);
/* The caching path of an allocation (the tag already resolved). */
void *pool_alloc_cached(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t tag);
enum { POOL_EXACT_USER = 1, POOL_EXACT_RECORDING = 2 };
/* remat_alloc_dedicated with the tag resolved (kind POOL_EXACT_USER), or a recorded request of
 * planned mode (POOL_EXACT_RECORDING): a segment of exactly the rounded size, returned to the
 * device on free. NULL on failure; for a recording the failure is neither counted nor reported as
 * an out-of-memory (the caller serves it from the cache instead). */
void *pool_alloc_exact(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t tag,
                       int kind);
/* Planned mode's arena: a segment of exactly `size` bytes, its one block allocated to the plan. */
remat_status pool_arena_new(remat_pool *pool, size_t size, remat_stream stream, pool_block **out);
void pool_arena_release(remat_pool *pool, pool_block *b);

/* ---- pool_plan.c: planned mode (record one step, serve the next ones from one arena) -------- */
/* An allocation while a plan exists: recorded, served from the arena, or by the caching path. */
void *pool_plan_alloc(remat_pool *pool, size_t bytes, remat_stream stream, uint32_t tag);
/* A free while a plan exists: 1 if p was a planned block (then handled), else 0. */
int pool_plan_free(remat_pool *pool, uintptr_t p);
/* 1 with *size if p is a live planned block. */
int pool_plan_block_size(const remat_pool *pool, uintptr_t p, size_t *size);
remat_stream pool_plan_stream(const remat_pool *pool);
void pool_plan_destroy(remat_pool *pool);
/* For pool_check: adds the live planned requests to *requested and tag_bytes; checks that live
 * planned blocks lie in the arena without overlapping. */
remat_status pool_plan_check(const remat_pool *pool, uint64_t *requested, uint64_t *tag_bytes);

/* ---- pool_check.c ----------------------------------------------------------------------------- */
remat_status pool_check_locked(const remat_pool *pool);

#endif

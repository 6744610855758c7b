/* remat.h: the whole public interface of libremat: statuses, sizes, devices, the caching pool,
 * the checkpoint scheduler and its executor. Everything a user may call is declared and documented
 * here; module-private headers live in their own folders.
 *
 * Conventions: every fallible call returns a remat_status and writes results through
 * out-parameters; on failure remat_last_error() holds a readable, thread-local message. The library
 * never prints, exits or aborts on bad input. remat_alloc is the one exception: like malloc it
 * returns a pointer or NULL (and sets the message). File formats, size syntax, device specs, CLI
 * exit codes and the linking contract (exports, versions, pkg-config): docs/contracts.md. */
#ifndef REMAT_H
#define REMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h> /* ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/* REMAT_API marks what libremat exports. The library is built with -fvisibility=hidden, so only
 * the functions declared here with REMAT_API are visible in libremat.so (and stay global in
 * libremat.a); every module-private name is hidden. On Windows, define REMAT_SHARED_LIB when
 * using the DLL (and REMAT_SHARED_LIB_EXPORT when building it). */
#if defined(_WIN32) || defined(__CYGWIN__)
#if !defined(REMAT_SHARED_LIB)
#define REMAT_API
#elif defined(REMAT_SHARED_LIB_EXPORT)
#define REMAT_API __declspec(dllexport)
#else
#define REMAT_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define REMAT_API __attribute__((visibility("default")))
#else
#define REMAT_API
#endif

/* Attributes of the API (GCC and Clang; empty elsewhere). Ignoring a remat_status is a warning
 * (REMAT_NODISCARD, on every function returning one): handle it, or write (void)!f(...) where
 * ignoring is right. REMAT_ALLOC tells the compiler a function returns fresh memory of the size
 * given by that argument, as malloc does (for alias analysis and object-size checks). */
#if defined(__GNUC__) || defined(__clang__)
#define REMAT_NODISCARD __attribute__((warn_unused_result))
#define REMAT_ALLOC(size_arg) __attribute__((malloc, alloc_size(size_arg)))
#define REMAT_FORMAT(fmt_arg, first_arg) __attribute__((format(printf, fmt_arg, first_arg)))
#else
#define REMAT_NODISCARD
#define REMAT_ALLOC(size_arg)
#define REMAT_FORMAT(fmt_arg, first_arg)
#endif

/* The version, here and nowhere else (the Makefile reads it from these lines): MAJOR changes
 * when the ABI does (it is the 0 of the SONAME libremat.so.0), MINOR when API is added, PATCH for
 * fixes. REMAT_VERSION_NUMBER compares in #if (0.1.0 = 100); remat_version() is the string of the
 * library actually loaded. */
#define REMAT_VERSION_MAJOR 0
#define REMAT_VERSION_MINOR 1
#define REMAT_VERSION_PATCH 0
#define REMAT_VERSION_NUMBER                                                                       \
    (REMAT_VERSION_MAJOR * 10000 + REMAT_VERSION_MINOR * 100 + REMAT_VERSION_PATCH)
#define REMAT_VERSION_STR_(x) #x
#define REMAT_VERSION_STR(x) REMAT_VERSION_STR_(x)
#define REMAT_VERSION                                                                              \
    REMAT_VERSION_STR(REMAT_VERSION_MAJOR)                                                         \
    "." REMAT_VERSION_STR(REMAT_VERSION_MINOR) "." REMAT_VERSION_STR(REMAT_VERSION_PATCH)

/* ==== Statuses and errors ================================================================== */

typedef enum {
    REMAT_OK = 0,
    REMAT_EINVAL,       /* bad argument or bad option value */
    REMAT_ENOMEM,       /* out of memory (host, device, or the pool's limit) */
    REMAT_EDEVICE,      /* device missing, driver missing, or a device call failed */
    REMAT_EINFEASIBLE,  /* no schedule fits the memory budget */
    REMAT_EIO,          /* a file could not be read or written */
    REMAT_EPARSE,       /* a file or string is malformed */
    REMAT_EUNSUPPORTED, /* valid request this build or device cannot do */
    REMAT_EINTERNAL,    /* an internal invariant failed: a bug in remat */
} remat_status;

/* A short constant name for a status ("invalid argument", ...). Never NULL. */
REMAT_API const char *remat_strerror(remat_status s);
/* The detail message of the last failure on this thread ("" if none). Valid until the next
 * failing call on the same thread. */
REMAT_API const char *remat_last_error(void);
/* Clears this thread's last-error message. */
REMAT_API void remat_clear_error(void);
/* The library's version string: REMAT_VERSION of the build that made it ("0.1.0"). */
REMAT_API const char *remat_version(void);
/* 1 if this build contains the CUDA backend and kernels, else 0. */
REMAT_API int remat_built_with_cuda(void);

/* ==== Sizes ================================================================================ */

/* Parses a byte count: a non-negative integer or decimal with a unit B, KB, MB, GB, TB (powers of
 * 1000) or KiB, MiB, GiB, TiB (powers of 1024); case-sensitive as written, spaces between number
 * and unit allowed. "1.5GiB" = 1610612736, "512B" = 512. Fractions are rounded down to a whole
 * byte. A number without a unit is ambiguous and fails, except "0". Garbage, negative numbers,
 * empty strings and values above UINT64_MAX fail with REMAT_EINVAL naming the text. */
REMAT_API REMAT_NODISCARD remat_status remat_parse_size(const char *text, uint64_t *out);

/* Like remat_parse_size, but also accepts a percentage "40%" (0 < p, decimals allowed); then
 * *is_percent = 1 and *out is unused and *percent holds the number (40.0). */
REMAT_API REMAT_NODISCARD remat_status remat_parse_budget(const char *text, uint64_t *out,
                                                          double *percent, int *is_percent);

/* percent % of reference in bytes, rounded down; saturates at UINT64_MAX where the product does
 * not fit (a huge percentage never wraps to a small budget); 0 for percent <= 0 or NaN. */
REMAT_API uint64_t remat_budget_of_percent(double percent, uint64_t reference);

/* Writes a human form of `bytes` into buf ("512 B", "1.50 KiB", "37.5 GiB": binary units, three
 * significant digits) and returns buf. n >= 16 is always enough. */
REMAT_API char *remat_format_bytes(uint64_t bytes, char *buf, size_t n);

/* ==== Devices ============================================================================== */

typedef struct remat_device remat_device;

typedef enum { REMAT_DEVICE_HOST, REMAT_DEVICE_SIM, REMAT_DEVICE_CUDA } remat_device_kind;

typedef struct {
    remat_device_kind kind;
    int index;             /* CUDA ordinal; 0 otherwise */
    char spec[64];         /* canonical spec: "host", "sim:85899345920", "cuda:0" */
    char name[128];        /* "host (jemalloc)", "sim", "NVIDIA H200" */
    uint64_t total_bytes;  /* capacity: physical RAM, the sim size, or the card's memory */
    uint64_t free_bytes;   /* what the device reports free now (sim: capacity - reserved) */
} remat_device_info;

/* Opens a device from its spec: "auto" (first usable CUDA device, else host), "cuda:N", "host",
 * "sim:SIZE" (SIZE as remat_parse_size; address space is reserved, never committed). A bad spec is
 * REMAT_EINVAL naming it; a missing driver or GPU is REMAT_EDEVICE ("no CUDA driver found"). */
REMAT_API REMAT_NODISCARD remat_status remat_device_open(const char *spec, remat_device **out);
REMAT_API void remat_device_close(remat_device *dev);
REMAT_API REMAT_NODISCARD remat_status remat_device_info_get(const remat_device *dev,
                                                             remat_device_info *out);
/* Number of usable CUDA devices; 0 (and REMAT_OK) where there is no driver, no GPU, or no CUDA in
 * this build. *why, if not NULL, receives a short reason when the count is 0. */
REMAT_API REMAT_NODISCARD remat_status remat_cuda_device_count(int *out, const char **why);
/* The direction of remat_device_copy (the values of the int it used to take). */
typedef enum {
    REMAT_COPY_DEVICE_TO_HOST = 0,
    REMAT_COPY_HOST_TO_DEVICE = 1,
    REMAT_COPY_DEVICE_TO_DEVICE = 2,
} remat_copy_kind;
/* Copies bytes between host memory and memory of `dev` (or within either), in direction `kind`.
 * On host/sim devices this is memcpy (sim memory cannot be touched: REMAT_EUNSUPPORTED); another
 * kind is REMAT_EINVAL. Synchronous. */
REMAT_API REMAT_NODISCARD remat_status remat_device_copy(remat_device *dev, void *dst,
                                                         const void *src, size_t bytes,
                                                         remat_copy_kind kind);
/* Waits for all work on the device (cudaDeviceSynchronize; no-op elsewhere). */
REMAT_API REMAT_NODISCARD remat_status remat_device_sync(remat_device *dev);

/* ==== Caching pool (alloc/) ================================================================ */

typedef struct remat_pool remat_pool;
typedef void *remat_stream; /* a cudaStream_t on CUDA; NULL = default stream */

typedef struct {
    uint64_t current, peak;
} remat_stat;

typedef struct {
    remat_stat requested, allocated, reserved; /* bytes asked for; bytes in blocks handed out;
                                                  bytes held from the device */
    uint64_t n_alloc, n_free, n_cache_hits, n_device_alloc, n_device_free, n_retries, n_ooms;
    uint64_t largest_free_block; /* bytes, among cached free blocks */
    /* Planned mode (remat_pool_plan_*): requests served from the arena, requests of a planned
     * step served by the caching path instead, the bytes of the arena now held, and the
     * recordings planned so far. */
    uint64_t n_planned_hits, n_planned_misses, planned_arena_bytes, n_plans;
} remat_pool_stats;

typedef struct {
    uint64_t limit_bytes; /* 0 = no limit beyond the device */
    /* Cached blocks of at least this many bytes are never split, and serve only requests of at
     * least this size wasting under 20 MiB (PyTorch's max_split_size). 0 = no cap. Fixed
     * segments only: ignored with expandable_segments. */
    uint64_t max_split_bytes;
    /* 1: large requests grow one segment in place (virtual memory: cuMemCreate/cuMemMap on
     * CUDA, mmap/mprotect on host and sim) instead of adding segments, like PyTorch's
     * expandable segments. Refused with REMAT_EUNSUPPORTED where the device cannot. */
    int expandable_segments;
    /* 1: no caching at all: every request is its own device allocation, returned on free. The
     * baseline of `remat replay --baseline`. */
    int no_cache;
} remat_pool_config; /* may grow: zero-initialise */

REMAT_API REMAT_NODISCARD remat_status remat_pool_create(
    remat_device *dev, const remat_pool_config *cfg /* NULL = defaults */, remat_pool **out);
/* Returns every segment to the device. Blocks still allocated are released with it. */
REMAT_API void remat_pool_destroy(remat_pool *pool);
/* Allocates `bytes` (rounded up to 512, 512-byte aligned) for use on `stream`; NULL on failure
 * with remat_last_error() saying why (on OOM: requested size, limit or device free memory,
 * reserved, allocated, cached-but-free, largest free block, fragmentation). bytes = 0 gives a
 * distinct 512-byte block. Thread-safe, like every pool call. */
REMAT_API REMAT_ALLOC(2) void *remat_alloc(remat_pool *pool, size_t bytes, remat_stream stream);
/* Returns ptr to the pool; NULL is a no-op. A pointer the pool did not hand out, or a double
 * free, is ignored with a message in remat_last_error() and leaves the pool intact. */
REMAT_API void remat_free(remat_pool *pool, void *ptr);
REMAT_API REMAT_NODISCARD remat_status remat_pool_stats_get(const remat_pool *pool,
                                                            remat_pool_stats *out);

/* Like remat_alloc, and counts the requested bytes under `tag` (a word: letters, digits, '_',
 * '-', '.', at most 63 characters; NULL = "untagged"), e.g. "params", "grads", "optim", "act". */
REMAT_API REMAT_ALLOC(2) void *remat_alloc_tagged(remat_pool *pool, size_t bytes,
                                                  remat_stream stream, const char *tag);
/* Like remat_alloc_tagged, in a segment of its own of exactly the rounded size (a multiple of
 * 512): the block is never split, shared or cached, and its free returns the segment to the
 * device. For state held as long as the pool's user runs (parameters, gradients, optimizer
 * states), so it neither interleaves with short-lived blocks nor pays the rounding of shared
 * segments (2 MiB). Within the pool's limit like any block; NULL with the reason on failure. */
REMAT_API REMAT_ALLOC(2) void *remat_alloc_dedicated(remat_pool *pool, size_t bytes,
                                                     remat_stream stream, const char *tag);
/* Current and peak requested bytes under `tag` (zeros for a tag never used). */
REMAT_API REMAT_NODISCARD remat_status remat_pool_tag_stats(const remat_pool *pool, const char *tag,
                                                            remat_stat *out);
/* Number of tags seen so far ("untagged" is always tag 0), and the i-th one's name and bytes. */
REMAT_API size_t remat_pool_tag_count(const remat_pool *pool);
REMAT_API REMAT_NODISCARD remat_status remat_pool_tag_at(const remat_pool *pool, size_t i,
                                                         char *name, size_t n, remat_stat *out);
/* Marks ptr as also used on `stream`: its free then waits for that stream's work too before the
 * block is reused elsewhere (as torch's record_stream). */
REMAT_API REMAT_NODISCARD remat_status remat_pool_record_stream(remat_pool *pool, void *ptr,
                                                                remat_stream stream);
/* Returns every cached segment that holds no allocated block to the device. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_empty_cache(remat_pool *pool);
/* Sets every peak (stats and tags) to its current value. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_reset_peaks(remat_pool *pool);
/* 1 - allocated/reserved now (0 when nothing is reserved). */
REMAT_API double remat_pool_fragmentation(const remat_pool *pool);
/* Writes a JSON object {"device", "stats", "segments": [{"address", "size", "kind",
 * "expandable", "blocks": [{"offset", "size", "requested", "state", "stream", "tag"}]}]} to f. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_snapshot(const remat_pool *pool, FILE *f);
/* Debug invariant check: blocks tile their segments without overlap, no two free neighbours are
 * left unmerged, every free block is indexed and every allocated one is in the live map, and the
 * stats (and per-tag bytes) equal the sums over blocks. REMAT_EINTERNAL naming the first broken
 * invariant. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_check(const remat_pool *pool);
/* Size of the block behind ptr (its rounded size) in *out; REMAT_EINVAL if ptr is not live. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_block_size(const remat_pool *pool,
                                                             const void *ptr, size_t *out);

/* Records every later allocation and free to f in the trace format of docs/contracts.md
 * ("a <id> <bytes> <stream> <tag>", "f <id>"); only blocks allocated while recording are freed in
 * the trace. f stays the caller's. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_trace_begin(remat_pool *pool, FILE *f);
REMAT_API REMAT_NODISCARD remat_status remat_pool_trace_end(remat_pool *pool);
/* Writes a step mark "s" to the trace being recorded (nothing when none is): a trainer calls it
 * at the start of each training step, so `remat replay --planned` can record one step and replay
 * the rest. The planned mode (remat_pool_plan_*) writes its own marks: use one or the other.
 * REMAT_EINVAL for a NULL pool. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_trace_step(remat_pool *pool);

/* ---- Fault injection (a testing hook) ---------------------------------------------------- */
/* Each device call the pool makes passes one of these sites. remat_pool_fault_at(pool, site, n)
 * makes the n-th call at that site from now (n = 1: the next) fail as the device would
 * (REMAT_ENOMEM for allocations, REMAT_EDEVICE otherwise), once; n = 0 disarms it.
 * remat_pool_fault_calls counts the calls made at a site so far, so a test can run a workload
 * once, read the count, and then fail each call in turn. */
typedef enum {
    REMAT_FAULT_DEVICE_ALLOC, /* device malloc, and mapping memory into an expandable segment */
    REMAT_FAULT_DEVICE_FREE,  /* device free, and unmapping */
    REMAT_FAULT_EVENT,        /* event create / record / stream wait (CUDA only) */
    REMAT_FAULT_SITES
} remat_fault_site;
REMAT_API REMAT_NODISCARD remat_status remat_pool_fault_at(remat_pool *pool, remat_fault_site site,
                                                           uint64_t n);
REMAT_API uint64_t remat_pool_fault_calls(const remat_pool *pool, remat_fault_site site);

/* ---- Traces and replay --------------------------------------------------------------------- */
typedef struct remat_trace remat_trace;

/* Reads a trace (docs/contracts.md; tags and streams optional). A malformed line, an allocation
 * of a live id or a free of an unknown id is REMAT_EPARSE with "NAME:LINE: why". */
REMAT_API REMAT_NODISCARD remat_status remat_trace_load(const char *path, remat_trace **out);
REMAT_API REMAT_NODISCARD remat_status remat_trace_parse(FILE *f, const char *name,
                                                         remat_trace **out);
REMAT_API void remat_trace_free(remat_trace *trace);
/* Number of events (allocations + frees) in the trace. */
REMAT_API size_t remat_trace_events(const remat_trace *trace);
/* One event of a trace: op 'a' (allocation) or 'f' (free); alloc_index numbers the trace's
 * allocations in order (a free names the allocation it frees); for an allocation, its bytes,
 * stream and tag (NULL = untagged); for a free these are 0 / NULL (look them up by alloc_index);
 * line is the event's line in the file. */
typedef struct {
    char op;
    size_t alloc_index;
    uint64_t bytes, line;
    uint32_t stream;
    const char *tag; /* owned by the trace */
} remat_trace_event;
/* The i-th event (i < remat_trace_events); REMAT_EINVAL for i out of range. */
REMAT_API REMAT_NODISCARD remat_status remat_trace_event_at(const remat_trace *trace, size_t i,
                                                            remat_trace_event *out);

typedef struct {
    uint64_t events;
    uint64_t peak_requested, peak_allocated, peak_reserved;
    uint64_t device_allocs, device_frees;
    double ns_per_op;
} remat_replay_result;

/* Runs the trace through a fresh pool on dev with cfg (NULL = defaults); blocks still live at the
 * end are freed. On CUDA every trace stream maps to the default stream. An allocation failure is
 * REMAT_ENOMEM naming the trace line. */
REMAT_API REMAT_NODISCARD remat_status remat_trace_replay(const remat_trace *trace,
                                                          remat_device *dev,
                                                          const remat_pool_config *cfg,
                                                          remat_replay_result *out);

/* ---- Planned replay (alloc/trace.c; the planned mode is declared further down) ------------ */
/* Number of step marks ('s' lines) in the trace. */
REMAT_API size_t remat_trace_steps(const remat_trace *trace);
typedef struct {
    remat_replay_result all;       /* the whole run, the recorded step included */
    uint64_t steps, planned_steps; /* step marks; steps served from the plan */
    uint64_t peak_reserved;        /* the most bytes reserved during the planned steps */
    uint64_t lower_bound; /* the most 512-rounded bytes live at once during the planned steps:
                             no pool can reserve less */
    uint64_t arena_bytes, arena_lower_bound; /* the layout of the recorded step */
    const char *heuristic;                   /* the layout's heuristic (static) */
    uint64_t hits, misses;                   /* requests served from the arena / not */
} remat_planned_replay_result;
/* Replays the trace in planned mode: events before the first step mark run as usual, the step
 * between the first and second marks is recorded (remat_pool_plan_record_begin/_end), and every
 * later step starts with remat_pool_plan_step_begin. A trace with fewer than two marks is
 * REMAT_EINVAL; otherwise as remat_trace_replay. */
REMAT_API REMAT_NODISCARD remat_status remat_trace_replay_planned(const remat_trace *trace, remat_device *dev,
                                        const remat_pool_config *cfg,
                                        remat_planned_replay_result *out);

/* ==== Offset planning (alloc/layout.c) ===================================================== */

/* One buffer of a planned layout: `bytes` live from op `first` to op `last`, inclusive (first <= last). */
typedef struct {
    uint64_t bytes;
    uint64_t first, last;
} remat_layout_buffer;
typedef struct {
    uint64_t arena_bytes;       /* size of the arena holding every buffer at its offset */
    uint64_t lower_bound_bytes; /* the most (aligned) bytes live at any op: no layout can be smaller */
    const char *heuristic;      /* static string: which heuristic gave the layout */
} remat_layout_result;
/* Assigns offsets (multiples of `align`, a power of two; 0 = 512) so that no two buffers live at a
 * same op overlap, trying several heuristics and keeping the smallest arena. offsets[i] for bufs[i].
 * Each size is rounded up to `align`; a 0-byte buffer takes no room (offset 0). The heuristics:
 * greedy by size, by breadth (bytes live at the buffer's busiest op), by area (size x lifetime) and
 * by lifetime length, each placing a buffer into the smallest gap among the placed buffers whose
 * lifetimes overlap its own, and lifetime order with first fit (tried first: it runs in
 * O(n log n)); then, if the best is above the lower bound, a compaction pass. Stops early at the
 * lower bound. heuristic names the winner, e.g. "greedy-by-size best-fit" ("empty" for n = 0).
 * NULL pointers (bufs and offsets may be NULL when n = 0), first > last, an align that is not a
 * power of two, and sizes that overflow 64 bits when aligned or added up are REMAT_EINVAL naming
 * the problem. */
REMAT_API REMAT_NODISCARD remat_status remat_layout_plan(const remat_layout_buffer *bufs, size_t n, uint64_t align,
                               uint64_t *offsets, remat_layout_result *out);

/* ---- Planned mode: record one step, serve the next ones from one planned arena ------------ */
/* For a training loop whose steps repeat the same allocations: record one step, and the pool lays
 * its blocks out in one arena (remat_layout_plan: no fragmentation, the arena close to the most
 * bytes live at once) and serves the following steps from it.
 *
 *   remat_pool_plan_record_begin(pool); step(); remat_pool_plan_record_end(pool, &layout);
 *   for (;;) { remat_pool_plan_step_begin(pool); step(); }
 *
 * While recording, the rounded sizes, tags, streams and frees of the requests are noted; a
 * recording starts by returning the pool's wholly free cached segments, and serves each request
 * of 64 KiB or more in a segment of exactly its size (as remat_alloc_dedicated; smaller ones, or
 * any the device refuses that way, by the caching path), so what the step leaves live (gradients,
 * optimizer states) pins none of the room its freed blocks leave. record_end plans the
 * allocations that were also freed during the recording (those still live stay where they are),
 * returns the pool's wholly free cached segments, and takes the arena as one segment of exactly
 * layout.arena_bytes. In a step, the k-th request is served from the arena if it has the size
 * (rounded to 512), tag and stream of the k-th recorded one and every planned block still live
 * was also live at that point of the recording. A request that differs from the k-th recorded
 * one (k > 0) is matched with the next recorded request like it, those between skipped (a step
 * may leave out what only the recorded step allocated). A request the arena does not serve is
 * served by the caching path and counted in n_planned_misses; after a request that matches no later recorded one, the
 * rest of the step is too. A miss is never a failure. Freeing a planned block is an
 * address-range check and a hash lookup. Planned blocks stay on the stream of the recording
 * (remat_pool_record_stream on one is REMAT_EUNSUPPORTED); remat_pool_block_size reports their
 * rounded size. With remat_pool_trace_begin active, record_begin and step_begin write a step mark
 * "s" to the trace.
 * Thread-safe like every pool call. */
/* Starts recording. REMAT_EINVAL while recording, or while blocks of the current plan are live
 * (a plan with none live is dropped first). */
REMAT_API REMAT_NODISCARD remat_status remat_pool_plan_record_begin(remat_pool *pool);
/* Ends the recording and plans it; *out (may be NULL) receives the layout (arena_bytes is 0 when
 * nothing could be planned). REMAT_EINVAL when not recording; REMAT_ENOMEM when the arena cannot be
 * had (then there is no plan and the pool goes on as before). */
REMAT_API REMAT_NODISCARD remat_status remat_pool_plan_record_end(remat_pool *pool, remat_layout_result *out);
/* Starts a step served from the plan (REMAT_EINVAL without a plan). Planned blocks kept from the
 * previous step block the arena until they are freed. A new shape re-plans by itself: when a
 * step's first request departs from the recording (and no planned block is live), the arena goes
 * back to the cache and that step is recorded instead (its first request counts as one miss);
 * after a step with more misses than hits, the next one is recorded. Such a recording is planned
 * at the next step_begin, which then returns what record_end would (REMAT_ENOMEM if the new arena
 * cannot be had: the pool goes on without a plan). */
REMAT_API REMAT_NODISCARD remat_status remat_pool_plan_step_begin(remat_pool *pool);
/* Ends planned mode: no more planned hand-outs; the arena returns to the cache once its last
 * planned block is freed. A no-op without a plan. */
REMAT_API REMAT_NODISCARD remat_status remat_pool_plan_stop(remat_pool *pool);

/* ==== Checkpoint scheduler (checkpoint/) =================================================== */

/* An alternative forward-with-grad variant of a stage: fewer saved bytes, a dearer backward.
 * Plain values, no pointers: the option array of its stage holds them. */
typedef struct {
    char name[48];
    uint64_t saved_bytes;
    double bwd;
    /* Workspace this option needs on top of its stage's: its F_all gets fwd_tmp_bytes +
     * extra_fwd_tmp_bytes of workspace, the backward of what it saved bwd_tmp_bytes +
     * extra_bwd_tmp_bytes (e.g. a buffer to recompute a dropped tensor in). The executor allocates
     * them with the rest and the simulator and every solver count them. 0 (zero-initialised):
     * none beyond the stage's. */
    uint64_t extra_fwd_tmp_bytes, extra_bwd_tmp_bytes;
} remat_stage_option;

/* Stage i maps activation a_i to a_{i+1}. Cost model: docs/checkpoint.md. */
typedef struct {
    char name[48];
    double fwd, bwd;          /* times, any consistent unit */
    uint64_t out_bytes;       /* |a_{i+1}|, also |d_{i+1}| */
    uint64_t saved_bytes;     /* |ā_{i+1}|, >= out_bytes */
    uint64_t fwd_tmp_bytes;   /* workspace during the forward */
    uint64_t bwd_tmp_bytes;   /* workspace during the backward */
    int n_options;
    /* n_options entries; "default" is implicit, never listed. Owned by the chain:
     * remat_chain_free frees it with free(), so build it with malloc/calloc (or leave it NULL
     * with n_options = 0). */
    remat_stage_option *options;
} remat_stage;

/* A chain. Ownership: a chain from remat_chain_new, _load or _parse owns `stages` (one calloc'd
 * array of n_stages) and each stage's `options`; remat_chain_free frees all three. Every call
 * taking a const remat_chain * only reads it during the call and keeps no pointer into it,
 * except that a remat_schedule's layout is keyed by the chain's sizes (not its address). */
typedef struct {
    char name[128];
    uint64_t input_bytes; /* |a_0|, also |d_0| unless input_no_grad */
    int n_stages;
    remat_stage *stages;
    /* 1: the input needs no gradient (token ids, a frozen stem's output): d_0 is neither
     * allocated nor computed, so B 0 gets din = NULL, and the cost model counts 0 bytes for d_0
     * (docs/checkpoint.md). 0 (zero-initialised): d_0 has input_bytes, as before. */
    int input_no_grad;
} remat_chain;

/* Reads, parses, writes a chain file (docs/contracts.md). Loading validates and names the offending
 * field: REMAT_EPARSE for malformed JSON or bad values, REMAT_EIO for unreadable files. */
REMAT_API REMAT_NODISCARD remat_status remat_chain_load(const char *path, remat_chain **out);
REMAT_API REMAT_NODISCARD remat_status remat_chain_parse(const char *json, size_t len, remat_chain **out);
REMAT_API REMAT_NODISCARD remat_status remat_chain_save(const remat_chain *chain, const char *path);
/* Writes the chain file's text to f (the caller owns f and checks it when closing); save is this
 * into a unique temporary file beside path (path.tmp.XXXXXX) renamed over path when complete. */
REMAT_API REMAT_NODISCARD remat_status remat_chain_write(const remat_chain *chain, FILE *f);
/* Allocates an empty chain with n stages (all fields zero) for building one in code. */
REMAT_API REMAT_NODISCARD remat_status remat_chain_new(int n_stages, remat_chain **out);
REMAT_API void remat_chain_free(remat_chain *chain);

typedef enum { REMAT_OP_F_CK, REMAT_OP_F_N, REMAT_OP_F_ALL, REMAT_OP_B } remat_op_kind;

/* The option values that are not an index into a stage's options: REMAT_OPTION_DEFAULT is the
 * stage's own forward-with-grad (saved_bytes, bwd); REMAT_OPTION_NO_GRAD is passed to the forward
 * callback for a forward that keeps nothing for the backward (F_ck, F_n). */
typedef enum { REMAT_OPTION_NO_GRAD = -2, REMAT_OPTION_DEFAULT = -1 } remat_option_value;

typedef struct {
    remat_op_kind kind;
    int stage;
    int option; /* F_ALL only: REMAT_OPTION_DEFAULT, else index into stages[stage].options */
} remat_op;

typedef enum {
    REMAT_POLICY_STORE_ALL,
    REMAT_POLICY_PERIODIC, /* keep every K-th input, recompute segments */
    REMAT_POLICY_SQRT,     /* Chen 2016: periodic with K ~ sqrt(L) */
    REMAT_POLICY_REVOLVE,  /* binomial checkpointing */
    REMAT_POLICY_OPTIMAL,  /* Rotor's DP with per-stage options */
    /* store-all with every stage that has the option named `option` running it in its forward
     * (the others their default): llm.c's and Megatron's selective recompute */
    REMAT_POLICY_SELECTIVE,
    /* keep only each stage's input; recompute each stage just before its backward */
    REMAT_POLICY_FULL_RECOMPUTE,
} remat_policy_kind;

/* Where remat_run puts a schedule's buffers (activations, stored states, gradients, workspaces). */
typedef enum {
    /* The default: before the step, every buffer gets an offset in one arena (no two buffers live
     * at the same op overlap); the step takes that arena from the pool as one block and hands out
     * the offsets, so it never fragments, and the plan's peak is the arena's size. */
    REMAT_LAYOUT_PLANNED,
    /* Every buffer is allocated from the caching pool when the step reaches it; the plan's peak
     * is the most bytes live at any op, and fragmentation comes on top. */
    REMAT_LAYOUT_POOL,
} remat_layout_mode;

/* Parses "planned" or "pool"; anything else is REMAT_EINVAL naming the text. */
REMAT_API REMAT_NODISCARD remat_status remat_layout_mode_parse(const char *text, remat_layout_mode *out);

/* The longest stage option name a selective policy holds (with its NUL), and a buffer size that
 * holds every canonical policy name ("selective:" + option). */
#define REMAT_POLICY_OPTION_MAX 48
#define REMAT_POLICY_NAME_MAX 64

typedef struct {
    remat_policy_kind kind;
    int period; /* PERIODIC: K */
    int slots;  /* OPTIMAL: memory discretisation; 0 = default (500) */
    /* SELECTIVE: the stage option's name, NUL-terminated (remat_stage_option.name); planning
     * refuses a chain none of whose stages has it (REMAT_EINVAL listing the chain's options).
     * Ignored by the other kinds. */
    char option[REMAT_POLICY_OPTION_MAX];
} remat_policy;

/* The one policy vocabulary of every command and of the planner (docs/checkpoint.md,
 * "Policies"): "optimal", "store-all", "sqrt", "periodic:K", "revolve", "full-recompute",
 * "selective:OPTION", and the presets "llmc-selective" (= selective:recompute-gelu, llm.c's
 * default recompute=1) and "megatron-selective" (= selective:recompute-attn). OPTION is a stage
 * option's name (letters, digits, '-', '_', '.'; under 48 bytes), checked against the chain when
 * planning. Anything else is REMAT_EINVAL naming the text. */
REMAT_API REMAT_NODISCARD remat_status remat_policy_parse(const char *text, remat_policy *out);
/* Writes the canonical name ("periodic:4", "selective:recompute-gelu": presets are written as
 * what they mean) into buf and returns buf; REMAT_POLICY_NAME_MAX bytes always suffice. */
REMAT_API const char *remat_policy_name(const remat_policy *p, char *buf, size_t n);
/* The option stage s runs in a store-all forward under p: for SELECTIVE the index of s's option
 * named p->option (a "recompute-gelu" policy also takes an option named "recompute-act", the
 * generic chains' name of the MLP activation recompute), else, or when s has no such option,
 * REMAT_OPTION_DEFAULT. */
REMAT_API int remat_policy_stage_option(const remat_policy *p, const remat_stage *s);

/* A schedule's planned layout: every buffer remat_run allocates for it, in the executor's order
 * (a_0, d_L, then each op's output and then its workspace; buffers of 0 bytes are left out), with
 * its lifetime in op indices (live from op `first` to op `last`, inclusive) and its offset in one
 * arena. Offsets are multiples of 512 (the pool's alignment) and each size is rounded up to 512. */
typedef struct {
    uint64_t arena_bytes;       /* the arena's size: the schedule's peak */
    uint64_t lower_bound_bytes; /* most (rounded) bytes live at any op: no layout is smaller */
    uint64_t live_peak_bytes;   /* most bytes live at any op, unrounded (remat_simulate's peak) */
    const char *heuristic;      /* static string: which placement heuristic gave the layout */
    size_t n_buffers;
    remat_layout_buffer *buffers; /* [n_buffers] */
    uint64_t *offsets;            /* [n_buffers] */
    uint64_t key; /* digest of the ops and the chain's sizes it was planned for (see remat_run) */
} remat_schedule_layout;

/* A schedule: an op list plus what the simulator says of it. */
typedef struct {
    remat_op *ops;
    size_t n_ops;
    remat_policy policy;
    uint64_t budget_bytes;
    int feasible;
    /* Planned layout: the arena's size; pool layout: simulated, temporaries included. */
    uint64_t peak_bytes;
    double time, base_time, overhead;
    remat_schedule_layout *layout; /* NULL: no planned layout (remat_run uses the pool) */
} remat_schedule;

/* Result of simulating an op list under the cost model. */
typedef struct {
    int valid;        /* 0: an op's inputs were not live, or the schedule never ran B 0 */
    size_t bad_op;    /* index of the first invalid op when !valid */
    char why[160];    /* reason when !valid */
    uint64_t peak_bytes;
    double time;
} remat_sim_result;

/* Simulates ops on chain (docs/checkpoint.md). Returns REMAT_OK even for an invalid schedule
 * (see out->valid); fails only on bad arguments. */
REMAT_API REMAT_NODISCARD remat_status remat_simulate(const remat_chain *chain, const remat_op *ops,
                                                      size_t n_ops, remat_sim_result *out);

/* Plans a schedule for chain under budget_bytes with policy. A budget too small for the policy is
 * REMAT_EINFEASIBLE with the minimum feasible budget in the message; *out is still not set.
 * Every plan is re-simulated: peak_bytes <= budget_bytes always. optimal discretises memory in
 * policy->slots units (sizes rounded up, budget down); it is exact when all sizes and the budget
 * share a unit giving at most 10,000 slots. See docs/checkpoint.md.
 * The schedule comes with its planned layout (REMAT_LAYOUT_PLANNED) and peak_bytes is the arena:
 * when the layout of the policy's schedule exceeds the budget, the schedule is planned again under
 * the budget less the excess (a few times at most, then the policy's least-memory schedule), so
 * the arena never exceeds budget_bytes; if none fits, REMAT_EINFEASIBLE names the smallest arena
 * found (the minimum feasible budget under the planned layout). */
REMAT_API REMAT_NODISCARD remat_status remat_plan(const remat_chain *chain, const remat_policy *policy,
                        uint64_t budget_bytes, remat_schedule **out);
/* remat_plan with a choice of layout: REMAT_LAYOUT_PLANNED is remat_plan; REMAT_LAYOUT_POOL plans
 * no arena (layout NULL, peak_bytes the simulated peak). Another value is REMAT_EINVAL. */
REMAT_API REMAT_NODISCARD remat_status remat_plan_layout(const remat_chain *chain, const remat_policy *policy,
                               remat_layout_mode layout, uint64_t budget_bytes,
                               remat_schedule **out);
/* Frees s, its ops and its layout. */
REMAT_API void remat_schedule_free(remat_schedule *s);

/* A memory budget as the CLI's --budget takes it: a byte count, or a percentage of the chain's
 * store-all peak (remat_store_all_peak). percent = 0: `bytes`; percent > 0: that percentage
 * (50 = "50%", above 100 allowed) and bytes must be 0. Build one with remat_budget_parse or
 * a designated initializer ({.percent = 50}). */
typedef struct {
    uint64_t bytes;
    double percent;
} remat_budget;

/* Parses "512MiB" (size syntax of remat_parse_size) or "50%" (0 < p, decimals allowed) into
 * *out. Bad text is REMAT_EINVAL naming it. Syntax: docs/contracts.md, "Sizes and budgets". */
REMAT_API REMAT_NODISCARD remat_status remat_budget_parse(const char *text, remat_budget *out);
/* The budget in bytes on chain: bytes, or floor(store-all peak x percent / 100), saturating at
 * UINT64_MAX (what `remat plan --budget 50%` plans at). A negative, non-finite percent, or one
 * set together with bytes, is REMAT_EINVAL. */
REMAT_API REMAT_NODISCARD remat_status remat_budget_resolve(const remat_chain *chain, remat_budget budget, uint64_t *out);
/* remat_plan at remat_budget_resolve(chain, budget): remat_plan_budget(c, &p, (remat_budget){
 * .percent = 50}, &s) plans at half the store-all peak. */
REMAT_API REMAT_NODISCARD remat_status remat_plan_budget(const remat_chain *chain, const remat_policy *policy,
                               remat_budget budget, remat_schedule **out);

/* Plans the layout of s's ops on chain (replacing any layout s had) and sets s->peak_bytes to
 * the arena's size; for schedules built or edited by hand. An invalid op list is REMAT_EINVAL
 * naming the op. */
REMAT_API REMAT_NODISCARD remat_status remat_schedule_plan_layout(remat_schedule *s, const remat_chain *chain);

/* Smallest budget for which remat_plan yields a schedule of `policy` on chain: the arena of the
 * policy's least-memory schedule, which remat_plan always accepts. */
REMAT_API REMAT_NODISCARD remat_status remat_min_budget(const remat_chain *chain, const remat_policy *policy,
                              uint64_t *out);
/* The same for remat_plan_layout with `layout` (REMAT_LAYOUT_POOL: the least simulated peak). */
REMAT_API REMAT_NODISCARD remat_status remat_min_budget_layout(const remat_chain *chain, const remat_policy *policy,
                                     remat_layout_mode layout, uint64_t *out);
/* Store-all peak, the 100% reference for percentage budgets: what store-all needs under the
 * default planned layout, i.e. the larger of the simulator's peak and store-all's arena (which
 * rounds each buffer to 512 bytes), so that a plan at 100% always fits. For chains whose sizes are
 * multiples of 512 (every GPT chain) the two are equal. */
REMAT_API REMAT_NODISCARD remat_status remat_store_all_peak(const remat_chain *chain,
                                                            uint64_t *out);

/* One point of the overhead-versus-memory Pareto frontier. */
typedef struct {
    uint64_t budget_bytes, peak_bytes;
    double time, overhead;
} remat_curve_point;

/* The Pareto frontier of (peak, time) of the optimal policy over all budgets, from one solve;
 * points sorted by increasing peak, time strictly decreasing; each point's budget_bytes is its
 * plan's peak (the least budget admitting it); the first point is remat_min_budget's under
 * REMAT_LAYOUT_POOL. Peaks are live bytes, as under that layout (a planned arena rounds each
 * buffer to 512 bytes, and may place them with gaps). policy may be NULL (optimal, 500 slots);
 * another kind is REMAT_EUNSUPPORTED. Caller frees *out with free(). */
REMAT_API REMAT_NODISCARD remat_status remat_curve(const remat_chain *chain, const remat_policy *policy,
                         remat_curve_point **out, size_t *n_out);

/* Writes the plan JSON of docs/contracts.md ({"policy", "budget_bytes", ...}) to f. */
REMAT_API REMAT_NODISCARD remat_status remat_schedule_write_json(const remat_schedule *s,
                                                                 const remat_chain *chain, FILE *f);

/* ---- Executor ---------------------------------------------------------------------------- */

/* Callbacks through which remat_run drives the trainer. Buffers are allocated and freed by the
 * executor through the pool; the callbacks only compute into them. Every pointer passed to a
 * callback is valid only during that call (the executor frees or reuses the buffer after).
 * - forward: a_{i+1} (out, out_bytes) from a_i (in). option = REMAT_OPTION_NO_GRAD (F_ck/F_n):
 *   out has out_bytes; option = REMAT_OPTION_DEFAULT or k >= 0: forward-with-grad, out is ā_{i+1}
 *   with saved_bytes of that option, and a_{i+1} must be its first out_bytes. tmp has
 *   fwd_tmp_bytes, plus the option's extra_fwd_tmp_bytes for option k >= 0 (NULL if 0). For stage
 *   0, in is a_0 as written by `input`.
 * - backward: d_i (din, size |a_i|) from a_i (in), ā_{i+1} (saved, made with `option`) and d_{i+1}
 *   (dout). tmp has bwd_tmp_bytes, plus the option's extra_bwd_tmp_bytes for option k >= 0. For
 *   stage 0 of a chain with input_no_grad, din is NULL (d_0 is not wanted): skip computing it.
 *   Parameter gradients are the trainer's business.
 * - input: writes a_0 (input_bytes). seed: writes d_L (out_bytes of the last stage); NULL = zeros.
 * Every buffer of 0 bytes is passed as NULL. Buffers come from the pool under the tag "act", so
 * remat_pool_tag_stats(pool, "act") measures exactly the plan's peak_bytes (if nothing else uses
 * it).
 * - save_rng / restore_rng (optional): called before the first forward of a stage and before
 *   every recomputation of it, so stochastic stages recompute exactly.
 * - zero (optional): sets `bytes` bytes at p to zero. The executor cannot touch device memory, so
 *   when zero is set it is called on every fresh din before `backward` (kernels may accumulate
 *   into din) and on d_L when `seed` is NULL. When zero is NULL, backward must overwrite all of
 *   din, and seed is required (REMAT_EINVAL otherwise).
 * A callback returning non-OK stops the run with that status (its message is kept). */
typedef struct {
    remat_status (*forward)(void *ctx, int stage, int option, const void *in, void *out, void *tmp);
    remat_status (*backward)(void *ctx, int stage, int option, const void *in, const void *saved,
                             const void *dout, void *din, void *tmp);
    remat_status (*input)(void *ctx, void *a0);
    remat_status (*seed)(void *ctx, void *d_last);
    void (*save_rng)(void *ctx, int stage);
    void (*restore_rng)(void *ctx, int stage);
    remat_status (*zero)(void *ctx, void *p, size_t bytes);
} remat_callbacks;

/* Runs `sched` on `chain` through `cb`, allocating activations, gradients and workspaces from
 * `pool` on `stream`. Every buffer is freed before return, on success and on failure.
 * With a layout (sched->layout, planned for these very ops and chain sizes) the run takes one
 * block of layout->arena_bytes from the pool under "act" and hands every buffer out at its planned
 * offset: the "act" peak is exactly the arena. Without one, or when the ops or the chain's sizes
 * changed since it was planned (its key differs), every buffer is allocated from the pool.
 * A callback's failure ends the run with the callback's status; remat_last_error() then reads
 * "remat_run: <callback> callback of stage i: <the callback's message>" (see
 * remat_callback_fail), or says the callback set no message. remat_run keeps no pointer to any
 * argument after it returns; sched, chain and cb are only read. */
REMAT_API REMAT_NODISCARD remat_status remat_run(const remat_schedule *sched, const remat_chain *chain, remat_pool *pool,
                       remat_stream stream, const remat_callbacks *cb, void *ctx);

/* remat_run that also gives back what the last stage produced (its a_L: the loss, for a loss
 * stage): the first output_bytes bytes of a_L are copied into `output`, host memory of the
 * caller's, as soon as the last stage's first forward has written them (recomputations give
 * the same bytes), with one synchronous remat_device_copy from the pool's device (so on CUDA it
 * waits for the work queued so far). output_bytes may be less than the last stage's out_bytes
 * (e.g. only a mean loss in front), not more: REMAT_EINVAL. output = NULL is remat_run. On a
 * failed run, output holds whatever was copied before the failure. */
REMAT_API REMAT_NODISCARD remat_status remat_run_output(const remat_schedule *sched,
                                                        const remat_chain *chain, remat_pool *pool,
                                                        remat_stream stream,
                                                        const remat_callbacks *cb, void *ctx,
                                                        void *output, size_t output_bytes);

/* For callbacks: sets this thread's error message (printf-style) and returns s, so a callback
 * fails with its own words: `return remat_callback_fail(REMAT_EDEVICE, "kernel %s: %s", k, why);`.
 * remat_run then returns s with that message after the name of the callback and stage. */
REMAT_API REMAT_NODISCARD REMAT_FORMAT(2, 3) remat_status remat_callback_fail(remat_status s, const char *fmt, ...);

/* ---- Profiling a chain ------------------------------------------------------------------- */

/* Options of remat_chain_profile; may grow: zero-initialise. */
typedef struct {
    int reps; /* timed calls of each kind per stage (after one untimed warm-up); 0 = 5 */
    /* Waits for the work the callbacks queued (e.g. cudaStreamSynchronize on their stream), called
     * before and after every timed call so that its time covers its kernels. NULL: the callbacks
     * run synchronously (CPU code). */
    remat_status (*sync)(void *ctx);
} remat_profile_options;

/* What remat_chain_profile measured of one stage. Times in milliseconds (medians). */
typedef struct {
    double fwd;     /* forward without grad */
    double fwd_all; /* default forward-with-grad */
    double bwd;     /* backward of the default's saved state */
    /* The most bytes the callbacks allocated from the pool themselves during one forward (any
     * variant) / one backward call, beyond the buffers handed to them (requested bytes above the
     * level before the call). The plan does not count these: declare them as the stage's
     * workspace (fwd_tmp_bytes, bwd_tmp_bytes) and use `tmp` instead, and they are counted. */
    uint64_t fwd_alloc_bytes, bwd_alloc_bytes;
} remat_stage_profile;

/* Measures `chain` by calling the trainer's own callbacks, as Rotor profiles an nn.Sequential:
 * stage by stage from a_0 (written by cb->input), its forward without grad, then each
 * forward-with-grad variant (default and every option) and the backward of what that variant
 * saved, one untimed warm-up and opt->reps timed calls each, with only that call's buffers
 * allocated (from `pool` on `stream`, tag "act", sizes as the chain declares them, freed after).
 * The output gradient of the last stage is cb->seed's (else zeros via cb->zero); of others,
 * zeros (or the pool's memory as it is when zero is NULL). save_rng is called before a stage's
 * first forward and restore_rng before every other, as in a run.
 * Writes into the chain, under the cost model's accounting: fwd = the forward without grad;
 * bwd = the backward plus the forward-with-grad's excess over fwd (never less than the
 * backward); options[k].bwd likewise for option k. Byte counts are left as declared. Per-stage
 * measurements go to out[n_stages] (may be NULL). The calls run real backwards: parameter
 * gradients the callbacks accumulate are garbage afterwards (zero them before training), and the
 * pool's peaks are reset (remat_pool_reset_peaks). A failing callback is returned as by
 * remat_run; the chain's times may then be partly updated. reps outside [0, 1000] is
 * REMAT_EINVAL. */
REMAT_API REMAT_NODISCARD remat_status remat_chain_profile(remat_chain *chain, remat_pool *pool,
                                                           remat_stream stream,
                                                           const remat_callbacks *cb, void *ctx,
                                                           const remat_profile_options *opt,
                                                           remat_stage_profile *out);

/* ==== Planner (fit/) ======================================================================= */
/* Memory arithmetic for training and inference: what a model needs per GPU on a card, and the
 * largest batch that fits under each activation policy. Formulas and sources: docs/planner.md. */

typedef enum {
    REMAT_ARCH_GPT2,     /* llm.c's GPT-2: learned positions, LayerNorm, GELU MLP 4C, tied head */
    REMAT_ARCH_LLAMA,    /* Llama/Qwen2: RMSNorm, RoPE, GQA, SwiGLU MLP, untied head */
    REMAT_ARCH_DEEPSEEK, /* DeepSeek-V3/R1: MLA attention, dense then MoE layers, MTP module */
} remat_arch;

/* A model's shape. Presets come from remat_model_lookup; a generic one may be filled in by hand
 * (zero the struct first, then set every size and the arch: a zeroed arch is REMAT_ARCH_GPT2,
 * while `remat fit` plans a shape given without --arch as REMAT_ARCH_LLAMA) and checked with
 * remat_model_validate. */
typedef struct {
    char name[48];
    remat_arch arch;
    int layers, hidden, heads, kv_heads, head_dim; /* head_dim = hidden / heads unless set */
    int ffn;                                       /* MLP width (dense layers) */
    int vocab, padded_vocab;                       /* padded_vocab >= vocab: rows actually stored */
    int max_seq;                                   /* context the model was trained for */
    int tied;                                      /* output head shares the token embedding */
    int qkv_bias;                                  /* Qwen2: q/k/v projections have biases */
    /* DeepSeek (REMAT_ARCH_DEEPSEEK) only; zero elsewhere. */
    int dense_layers, moe_ffn, routed_experts, shared_experts, active_experts;
    int q_lora_rank, kv_lora_rank, qk_nope_dim, qk_rope_dim, v_head_dim;
    int mtp_layers; /* multi-token-prediction layers shipped beside the main model */
    /* > 0: a bare parameter count (`--params N`); only model states are planned, the shape
     * fields above are ignored. */
    uint64_t params_only;
} remat_model_desc;

/* "gpt2", "llama", "deepseek" ("unknown" for anything else). */
REMAT_API const char *remat_arch_name(remat_arch a);

/* Copies the preset `name` ("gpt2-124m", "deepseek-r1", "tiny", ...) into *out; an unknown name
 * is REMAT_EINVAL naming it and the nearest presets. remat_model_at(i) for i < remat_model_count()
 * lists the presets. */
REMAT_API REMAT_NODISCARD remat_status remat_model_lookup(const char *name, remat_model_desc *out);
REMAT_API size_t remat_model_count(void);
REMAT_API const remat_model_desc *remat_model_at(size_t i);
/* Checks a (generic) description: positive sizes, heads dividing hidden, kv_heads dividing heads,
 * nothing absurd (> 1e15 parameters). REMAT_EINVAL names the offending field and value. */
REMAT_API REMAT_NODISCARD remat_status remat_model_validate(const remat_model_desc *m);
/* Parameter counts: *total of the main model (MTP excluded), *active per token (MoE: shared plus
 * routed experts in use; dense models: = total). Either pointer may be NULL. The description is
 * validated first (remat_model_validate): a zeroed or bad one is REMAT_EINVAL naming the field. */
REMAT_API REMAT_NODISCARD remat_status remat_model_params(const remat_model_desc *m, uint64_t *total, uint64_t *active);
/* Parameters of the MTP module (0 where there is none, or where m is invalid: then the last
 * error says why), embedding and head copies included. */
REMAT_API uint64_t remat_model_mtp_params(const remat_model_desc *m);

/* A GPU preset with the capacity the driver reports (nvidia-smi memory.total). */
typedef struct {
    const char *name;  /* "h200" */
    const char *label; /* "NVIDIA H200 (141 GB HBM3e)" */
    uint64_t bytes;
} remat_card;

/* Finds a card by name (case-insensitive); unknown names are REMAT_EINVAL naming them and the
 * nearest presets (edit distance or prefix: "a100" suggests a100-40gb and a100-80gb).
 * remat_card_at(i) for i < remat_card_count() lists the presets. */
REMAT_API REMAT_NODISCARD remat_status remat_card_lookup(const char *name, remat_card *out);
REMAT_API size_t remat_card_count(void);
REMAT_API const remat_card *remat_card_at(size_t i);

typedef enum {
    REMAT_DTYPE_FP32,
    REMAT_DTYPE_BF16,
    REMAT_DTYPE_FP16,
    REMAT_DTYPE_FP8,  /* e4m3 with one fp32 scale per 128x128 block (DeepSeek-V3) */
    REMAT_DTYPE_INT8, /* one fp16 scale per output row */
    REMAT_DTYPE_INT4, /* one fp16 scale per group of 128 */
} remat_dtype;
/* "fp32", "bf16", "fp16", "fp8", "int8", "int4"; anything else is REMAT_EINVAL. */
REMAT_API REMAT_NODISCARD remat_status remat_dtype_parse(const char *text, remat_dtype *out);
REMAT_API const char *remat_dtype_name(remat_dtype d);

typedef enum { REMAT_OPTIM_ADAMW, REMAT_OPTIM_SGD, REMAT_OPTIM_SGD_MOMENTUM } remat_optimizer;
/* "adamw", "sgd", "sgd-momentum". */
REMAT_API REMAT_NODISCARD remat_status remat_optimizer_parse(const char *text,
                                                             remat_optimizer *out);
REMAT_API const char *remat_optimizer_name(remat_optimizer o);

/* How a training step keeps its activations (docs/planner.md gives each one's bytes). */
typedef enum {
    REMAT_ACT_STORE_ALL, /* keep everything the backward needs */
    REMAT_ACT_LLMC,      /* llm.c's recompute=1 (selective:recompute-gelu): the GELU/SiLU output
                            is recomputed */
    REMAT_ACT_MEGATRON,  /* Korthikanti et al. (selective:recompute-attn): the attention core
                            (scores, softmax) is recomputed */
    REMAT_ACT_FULL,      /* keep only each layer's input; recompute the layer in the backward */
    REMAT_ACT_OPTIMAL,   /* the checkpoint scheduler's optimal schedule at the memory left */
    REMAT_ACT_COUNT,
} remat_act_policy;
/* "store-all", "llmc-selective", "megatron-selective", "full-recompute", "optimal", read by
 * remat_policy_parse (so "selective:recompute-gelu" is REMAT_ACT_LLMC); a policy with no value
 * here (sqrt, periodic:K, another selective:OPTION) is REMAT_EINVAL naming it. */
REMAT_API REMAT_NODISCARD remat_status remat_act_policy_parse(const char *text,
                                                              remat_act_policy *out);
REMAT_API const char *remat_act_policy_name(remat_act_policy p);

typedef struct {
    remat_model_desc model;
    uint64_t card_bytes;      /* capacity of one GPU */
    int inference;            /* 0: one training step; 1: serving (weights + KV cache) */
    int gpus;                 /* >= 1. Training: data-parallel ranks ZeRO shards over;
                                 inference: tensor-parallel degree */
    int zero;                 /* ZeRO stage 0-3 (training) */
    int batch;                /* sequences per GPU (training micro-batch) or served at once */
    int seq;                  /* tokens per sequence (0: the model's max_seq) */
    remat_dtype dtype;        /* training: fp32, or bf16/fp16 = mixed precision (fp32 master
                                 weights unless no_master_weights) */
    remat_optimizer optimizer;
    remat_act_policy policy;  /* the policy of the per_gpu breakdown */
    remat_dtype quant;        /* inference: weight format */
    remat_dtype kv_dtype;     /* inference: KV cache element (fp32, bf16, fp16 or fp8) */
    int own_pool;             /* remat_fit_chain: 1 = the trainer allocates from remat's pool
                                 (remat.torch.use_pool): its rounding is computed, no slack
                                 assumed; 0 = another allocator (2% of the managed bytes) */
    /* "" (zero-initialised): the per_gpu breakdown is under `policy`. A stage option's name: it
     * is under selective:OPTION instead (remat_policy_parse; `policy` is then ignored), and an
     * option no stage of the chain has is REMAT_EINVAL listing the chain's options. The
     * activation policies themselves are remat_policy_parse's: llmc-selective is
     * selective:recompute-gelu, megatron-selective selective:recompute-attn. */
    char option[REMAT_POLICY_OPTION_MAX];
    int no_master_weights;    /* training in bf16/fp16: 0 = fp32 master weights (4 B a parameter
                                 in the optimizer states: 2+2+12 with AdamW); 1 = none, the 16-bit
                                 weights are updated in place (`remat train --master-weights off`):
                                 2+2+8 with AdamW. 1 with fp32 training or with inference, or any
                                 value but 0 and 1, is REMAT_EINVAL */
} remat_fit_request;

/* Defaults: 1 GPU, ZeRO 0, batch 1, seq 0, fp32 AdamW training, store-all, bf16 weights and
 * cache. model and card_bytes are left zero for the caller. */
REMAT_API void remat_fit_request_init(remat_fit_request *r);

typedef struct {
    uint64_t weights, gradients, optimizer; /* model states */
    uint64_t activations; /* training: the step's activation peak under the policy, activation
                             gradients and op temporaries included; inference: one forward */
    uint64_t kv_cache;    /* inference: batch x seq tokens */
    uint64_t workspace;   /* library workspaces (cuBLAS, NCCL buffers) */
    uint64_t reserve;     /* CUDA context plus allocator slack */
    uint64_t total;       /* the sum of the above */
} remat_fit_bytes;

typedef struct {
    uint64_t params, active_params;
    remat_fit_bytes per_gpu; /* at req->batch, req->seq and req->policy */
    int fits;                /* per_gpu.total <= card_bytes */
    /* Largest batch that fits per policy (training) or, inference, in max_batch[0]: sequences of
     * seq tokens served at once. -1 = not planned (model states only, optimal unavailable). */
    long max_batch[REMAT_ACT_COUNT];
    /* Recompute overhead of each policy at its max batch: extra time / store-all time. */
    double overhead[REMAT_ACT_COUNT];
    long max_tokens; /* inference: tokens of KV cache that fit at batch 1 (0 if none) */
    /* What the plan leaves to the caching allocator: card - CUDA context - workspace. A pool
     * limited to this holds the states and activations of a fitting plan, with its slack. */
    uint64_t pool_bytes;
    /* Inference: per_gpu.weights = weights_quantized + weights_16bit. In fp8/int8/int4 the linear
     * layers inside the blocks and every expert are in req->quant (scales included:
     * weights_scales of it); embeddings, output head, norms, biases and routers stay in 16 bits.
     * In fp32/bf16/fp16 all weights are in weights_16bit (fp32: 4 bytes each). quant_params counts
     * the parameters stored in req->quant (whole model, not per GPU). Training: all 0. */
    uint64_t weights_quantized, weights_scales, weights_16bit, quant_params;
    /* Training on gpus > 1: the bytes each GPU sends a step for data parallelism under ZeRO-zero,
     * by the ring algorithms' volumes (what `remat train --zero` measures, its 8-byte loss
     * all-reduce aside): ZeRO-0 all-reduces the gradients, 2 (N - 1) / N x psi elements;
     * ZeRO-1 and 2 reduce-scatter them and all-gather the parameters, (N - 1) x ceil(psi / N)
     * elements each; ZeRO-3 also gathers the parameters again for the backward (3 volumes, the
     * paper's 3 psi), the extra gathers of recomputed blocks not counted. 0 otherwise. */
    uint64_t comm_bytes_per_step;
} remat_fit_result;

/* Plans req. Bad requests (no model, zero card, gpus < 1, zero stage outside 0-3, training in an
 * integer format, seq beyond 16M, batch beyond 1e9, a breakdown above 2^64 - 1 bytes) are
 * REMAT_EINVAL naming the value. A model that does not fit is not an error: out->fits = 0 and
 * max_batch entries 0. All byte arithmetic saturates, so no size wraps modulo 2^64. */
REMAT_API REMAT_NODISCARD remat_status remat_fit(const remat_fit_request *req, remat_fit_result *out);

/* Plans training for a model known by its parameter count (req->model.params_only: the stored
 * parameters; the shape fields are ignored) and its chain measured at two batch sizes b1 < b2
 * (the same stages and options at both, e.g. `remat.torch.profile` at two batches). The chain at
 * batch b is the line through c1 and c2, field by field (bytes rounded up, never below zero), so
 * per-sample and fixed bytes are both kept. States, workspace and reserve are remat_fit's;
 * out->per_gpu is at req->batch under req->policy (for optimal, its peak within the card or its
 * minimum); max_batch is filled for store-all, full-recompute and optimal, and for the selective
 * policies only when some stage carries their option ("recompute-gelu"/"recompute-act",
 * "recompute-attn"), else -1. The reserve: with req->own_pool the pool's rounding as our trainer's
 * (each state in a segment of its size rounded to 512 B, the activation peak in one segment of
 * the pool's 2 MiB rounding; no slack), else remat_fit's assumed 2% slack. Inference requests,
 * differing chains and b2 <= b1 are REMAT_EINVAL. */
REMAT_API REMAT_NODISCARD remat_status remat_fit_chain(const remat_fit_request *req, const remat_chain *c1, uint64_t b1,
                             const remat_chain *c2, uint64_t b2, remat_fit_result *out);

/* KV cache bytes per token per GPU: MHA/GQA 2 x layers x kv_heads x head_dim elements (kv heads
 * split over tp, at least one per GPU); MLA layers x (kv_lora_rank + qk_rope_dim) elements,
 * replicated on every GPU under plain tensor parallelism. The model is validated first (a
 * zeroed one is REMAT_EINVAL); a bare parameter count has no cache (0). */
REMAT_API REMAT_NODISCARD remat_status remat_kv_bytes_per_token(const remat_model_desc *m, remat_dtype kv, int tp,
                                      uint64_t *out);

/* ==== Communication between processes (comm/) ============================================== */
/* A small collective layer for data-parallel training, as llm.c and DeepSpeed use: MPI launches
 * the processes and moves host buffers; NCCL (loaded at run time with dlopen, its unique id
 * bootstrapped over MPI) moves device buffers once remat_comm_use_device names a CUDA device.
 * Every collective is blocking and sums (reductions are in the element type: float32 sums in
 * float32, bf16 in float32 then rounded once per pairwise step). A comm belongs to the thread
 * that created it. A build without MPI (REMAT_MPI=0) still has the 1-rank comm, so a trainer is
 * the same program with and without mpirun. Full contract: docs/distributed.md. */

typedef struct remat_comm remat_comm;

typedef enum {
    REMAT_COMM_F32,  /* float */
    REMAT_COMM_BF16, /* uint16_t holding a bfloat16 */
    REMAT_COMM_I32,  /* int32_t */
    REMAT_COMM_F64,  /* double */
    REMAT_COMM_BYTE  /* raw bytes (broadcast and allgather only: a sum of bytes is refused) */
} remat_comm_dtype;

/* Bytes of one element of dt (0 for an unknown value). */
REMAT_API size_t remat_comm_dtype_size(remat_comm_dtype dt);
/* 1 if this build can talk MPI (REMAT_HAVE_MPI), else 0. */
REMAT_API int remat_built_with_mpi(void);
/* 1 when this process was started by an MPI launcher (mpirun/mpiexec set OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE or PMIX_RANK) or REMAT_MPI_FORCE=1 is set, else 0. */
REMAT_API int remat_comm_launched(void);

/* The world: under an MPI launcher, every process of the job (MPI is initialised here if the
 * caller has not, and finalised by the last remat_comm_destroy of a comm that initialised it);
 * otherwise a comm of one rank that never touches MPI. Launched but built without MPI is
 * REMAT_EUNSUPPORTED saying so. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_create_world(remat_comm **out);
/* A comm over the caller's own MPI communicator: mpi_comm points to an MPI_Comm (MPI already
 * initialised). remat duplicates it (MPI_Comm_dup) and sets MPI_ERRORS_RETURN on its copy, so a
 * failed MPI call becomes a status, never an abort; the caller's communicator is untouched. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_create_mpi(const void *mpi_comm, remat_comm **out);
/* Frees c (NULL is a no-op). The NCCL communicator, if any, is destroyed first. */
REMAT_API void remat_comm_destroy(remat_comm *c);

REMAT_API int remat_comm_rank(const remat_comm *c);
REMAT_API int remat_comm_size(const remat_comm *c);
/* The rank among the processes of the same machine (Open MPI's OMPI_COMM_WORLD_LOCAL_RANK, else
 * MPI's shared-memory split): which GPU a rank takes. */
REMAT_API int remat_comm_local_rank(const remat_comm *c);
/* "self" (1 rank, no MPI), "mpi" (host buffers over MPI) or "nccl" (device buffers). */
REMAT_API const char *remat_comm_backend(const remat_comm *c);

/* Makes dev's buffers the ones the collectives take: a CUDA device loads NCCL
 * (REMAT_NCCL_LIBRARY, else libnccl.so.2) and builds its communicator, whose unique id rank 0
 * sends to the others over MPI (a 1-rank comm gets a 1-rank NCCL communicator, so one process
 * runs the same NCCL path as N); a missing NCCL is REMAT_EUNSUPPORTED naming what was tried.
 * host and sim devices keep MPI (a sim device's buffers are host memory). stream is the
 * cudaStream_t the collectives run on (NULL = default); they synchronise it before returning. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_use_device(remat_comm *c, remat_device *dev,
                                                             remat_stream stream);

/* send: count elements summed over the ranks into recv (same count). send == recv is in place. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_allreduce(remat_comm *c, const void *send, void *recv,
                                                            size_t count, remat_comm_dtype dt);
/* send: size * count elements; rank r receives the sum of every rank's elements
 * [r * count, (r + 1) * count) in recv (count elements). In place when
 * recv == send + r * count elements (NCCL's convention); other overlaps are REMAT_EINVAL. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_reduce_scatter(remat_comm *c, const void *send, void *recv,
                                                                 size_t count, remat_comm_dtype dt);
/* Every rank's count elements of send, in rank order, into recv (size * count elements). In place
 * when send == recv + r * count elements. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_allgather(remat_comm *c, const void *send, void *recv,
                                                            size_t count, remat_comm_dtype dt);
/* root's count elements of buf to every rank's buf. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_broadcast(remat_comm *c, void *buf, size_t count,
                                                            remat_comm_dtype dt, int root);
REMAT_API REMAT_NODISCARD remat_status remat_comm_barrier(remat_comm *c);
/* Collective: REMAT_OK when `bytes` bytes of data are the same on every rank (the size too), else
 * REMAT_EINVAL on every rank, naming `what` and the first rank whose value differs from rank 0's
 * ("--zero differs between ranks: rank 1 has other values than rank 0"). For checking options at
 * start. */
REMAT_API REMAT_NODISCARD remat_status remat_comm_check_same(remat_comm *c, const char *what,
                                                             const void *data, size_t bytes);

/* What the collectives of c moved since it was created or last reset, by the ring algorithms'
 * volumes per rank (what NCCL and MPI's large-message paths send): for a buffer of n bytes on p
 * ranks, allreduce sends and receives 2 (p - 1) / p * n, reduce-scatter and allgather (p - 1) / p
 * of the whole buffer, broadcast n (root sends, others receive). */
typedef struct {
    uint64_t calls;
    uint64_t bytes_sent, bytes_received;
    uint64_t allreduce_calls, reduce_scatter_calls, allgather_calls, broadcast_calls;
    double ms; /* wall time inside the collectives */
} remat_comm_stats;
REMAT_API REMAT_NODISCARD remat_status remat_comm_stats_get(const remat_comm *c, remat_comm_stats *out);
REMAT_API void remat_comm_stats_reset(remat_comm *c);

/* ==== PyTorch allocator (alloc/torch_alloc.c) ============================================== */
/* remat's pool as PyTorch's CUDA allocator: torch >= 2.0 loads remat_torch_alloc and
 * remat_torch_free from libremat.so through torch.cuda.memory.CUDAPluggableAllocator(path,
 * "remat_torch_alloc", "remat_torch_free") and calls them for every CUDA tensor. One pool per
 * device index is created on first use (tag "torch"); PyTorch's own memory statistics stay empty
 * with a pluggable allocator, so remat_torch_stats reads the pool's. */

/* Sets what the pools created from now on use: kind "cuda" (the default: device index N is
 * cuda:N), or "host" / "sim:SIZE" (every index on that device, for testing), and a limit in bytes
 * (0 = the device's). Once any pool exists this is REMAT_EINVAL ("already in use"); a bad kind is
 * REMAT_EINVAL naming it. */
REMAT_API REMAT_NODISCARD remat_status remat_torch_configure(const char *kind, uint64_t limit_bytes);
/* Allocates size bytes on device for stream (a cudaStream_t); NULL on failure (negative size, no
 * such device, the limit reached) with remat_last_error() saying why, as remat_alloc. */
REMAT_API void *remat_torch_alloc(ssize_t size, int device, void *stream);
/* Returns ptr (from remat_torch_alloc on the same device) to its pool; size and stream are
 * PyTorch's and unused. NULL is a no-op; an unknown pointer is ignored with a message. */
REMAT_API void remat_torch_free(void *ptr, ssize_t size, int device, void *stream);
/* The pool statistics of device (all zeros before its first allocation). */
REMAT_API REMAT_NODISCARD remat_status remat_torch_stats(int device, remat_pool_stats *out);
/* Destroys every pool, so remat_torch_configure may be called again; REMAT_EINVAL (and nothing
 * destroyed) while blocks are still allocated. */
REMAT_API REMAT_NODISCARD remat_status remat_torch_release(void);

#ifdef __cplusplus
}
#endif
#endif /* REMAT_H */

/* remat.h: the whole public interface of libremat: statuses, sizes, devices, the caching pool,
 * the checkpoint scheduler and its executor. Everything a user may call is declared and documented
 * here; module-private headers live in their own folders.
 *
 * Conventions: every fallible call returns a remat_status and writes results through
 * out-parameters; on failure remat_last_error() holds a readable, thread-local message. The library
 * never prints, exits or aborts on bad input. remat_alloc is the one exception: like malloc it
 * returns a pointer or NULL (and sets the message). */
#ifndef REMAT_H
#define REMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REMAT_VERSION "0.1.0"

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
const char *remat_strerror(remat_status s);
/* The detail message of the last failure on this thread ("" if none). Valid until the next
 * failing call on the same thread. */
const char *remat_last_error(void);
/* Clears this thread's last-error message. */
void remat_clear_error(void);
/* The library's version string (REMAT_VERSION). */
const char *remat_version(void);
/* 1 if this build contains the CUDA backend and kernels, else 0. */
int remat_built_with_cuda(void);

/* ==== Sizes ================================================================================ */

/* Parses a byte count: a non-negative integer or decimal with an optional suffix B, KB, MB, GB, TB
 * (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); case-sensitive as written, spaces
 * between number and suffix allowed. "1.5GiB" = 1610612736. Fractions are rounded down to a whole
 * byte. Garbage, negative numbers, empty strings and values above UINT64_MAX fail with
 * REMAT_EINVAL naming the text. */
remat_status remat_parse_size(const char *text, uint64_t *out);

/* Like remat_parse_size, but also accepts a percentage "40%" (0 < p, decimals allowed); then
 * *is_percent = 1 and *out is unused and *percent holds the number (40.0). */
remat_status remat_parse_budget(const char *text, uint64_t *out, double *percent, int *is_percent);

/* Writes a human form of `bytes` into buf ("512 B", "1.50 KiB", "37.5 GiB": binary units, three
 * significant digits) and returns buf. n >= 16 is always enough. */
char *remat_format_bytes(uint64_t bytes, char *buf, size_t n);

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
remat_status remat_device_open(const char *spec, remat_device **out);
void remat_device_close(remat_device *dev);
remat_status remat_device_info_get(const remat_device *dev, remat_device_info *out);
/* Number of usable CUDA devices; 0 (and REMAT_OK) where there is no driver, no GPU, or no CUDA in
 * this build. *why, if not NULL, receives a short reason when the count is 0. */
remat_status remat_cuda_device_count(int *out, const char **why);
/* Copies bytes between host memory and memory of `dev` (or within either). On host/sim devices
 * this is memcpy (sim memory cannot be touched: REMAT_EUNSUPPORTED). to_device: 1 host->dev,
 * 0 dev->host, 2 dev->dev. Synchronous. */
remat_status remat_device_copy(remat_device *dev, void *dst, const void *src, size_t bytes,
                               int to_device);
/* Waits for all work on the device (cudaDeviceSynchronize; no-op elsewhere). */
remat_status remat_device_sync(remat_device *dev);

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
} remat_pool_stats;

typedef struct {
    uint64_t limit_bytes; /* 0 = no limit beyond the device */
} remat_pool_config;      /* may grow: zero-initialise */

remat_status remat_pool_create(remat_device *dev, const remat_pool_config *cfg /* NULL = defaults */,
                               remat_pool **out);
void remat_pool_destroy(remat_pool *pool);
void *remat_alloc(remat_pool *pool, size_t bytes, remat_stream stream);
void remat_free(remat_pool *pool, void *ptr);
remat_status remat_pool_stats_get(const remat_pool *pool, remat_pool_stats *out);

/* ==== Checkpoint scheduler (checkpoint/) =================================================== */

/* An alternative forward-with-grad variant of a stage: fewer saved bytes, a dearer backward. */
typedef struct {
    char name[48];
    uint64_t saved_bytes;
    double bwd;
} remat_stage_option;

/* Stage i maps activation a_i to a_{i+1}. See DESIGN.md, "Checkpoint cost model". */
typedef struct {
    char name[48];
    double fwd, bwd;          /* times, any consistent unit */
    uint64_t out_bytes;       /* |a_{i+1}|, also |d_{i+1}| */
    uint64_t saved_bytes;     /* |ā_{i+1}|, >= out_bytes */
    uint64_t fwd_tmp_bytes;   /* workspace during the forward */
    uint64_t bwd_tmp_bytes;   /* workspace during the backward */
    int n_options;
    remat_stage_option *options; /* n_options entries; "default" is implicit, never listed */
} remat_stage;

typedef struct {
    char name[128];
    uint64_t input_bytes; /* |a_0|, also |d_0| */
    int n_stages;
    remat_stage *stages;
} remat_chain;

/* Reads, parses or writes a chain file (DESIGN.md). Loading validates and names the offending
 * field: REMAT_EPARSE for malformed JSON or bad values, REMAT_EIO for unreadable files. */
remat_status remat_chain_load(const char *path, remat_chain **out);
remat_status remat_chain_parse(const char *json, size_t len, remat_chain **out);
remat_status remat_chain_save(const remat_chain *chain, const char *path);
/* Allocates an empty chain with n stages (all fields zero) for building one in code. */
remat_status remat_chain_new(int n_stages, remat_chain **out);
void remat_chain_free(remat_chain *chain);

typedef enum { REMAT_OP_F_CK, REMAT_OP_F_N, REMAT_OP_F_ALL, REMAT_OP_B } remat_op_kind;

typedef struct {
    remat_op_kind kind;
    int stage;
    int option; /* F_ALL only: -1 = default, else index into stages[stage].options */
} remat_op;

typedef enum {
    REMAT_POLICY_STORE_ALL,
    REMAT_POLICY_PERIODIC, /* keep every K-th input, recompute segments */
    REMAT_POLICY_SQRT,     /* Chen 2016: periodic with K ~ sqrt(L) */
    REMAT_POLICY_REVOLVE,  /* binomial checkpointing */
    REMAT_POLICY_OPTIMAL,  /* Rotor's DP with per-stage options */
} remat_policy_kind;

typedef struct {
    remat_policy_kind kind;
    int period; /* PERIODIC: K */
    int slots;  /* OPTIMAL: memory discretisation; 0 = default (500) */
} remat_policy;

/* Parses "optimal", "store-all", "sqrt", "periodic:K", "revolve". */
remat_status remat_policy_parse(const char *text, remat_policy *out);
/* Writes the canonical name ("periodic:4") into buf and returns buf. */
const char *remat_policy_name(const remat_policy *p, char *buf, size_t n);

/* A schedule: an op list plus what the simulator says of it. */
typedef struct {
    remat_op *ops;
    size_t n_ops;
    remat_policy policy;
    uint64_t budget_bytes;
    int feasible;
    uint64_t peak_bytes; /* simulated, temporaries included */
    double time, base_time, overhead;
} remat_schedule;

/* Result of simulating an op list under the cost model. */
typedef struct {
    int valid;        /* 0: an op's inputs were not live, or the schedule never ran B 0 */
    size_t bad_op;    /* index of the first invalid op when !valid */
    char why[160];    /* reason when !valid */
    uint64_t peak_bytes;
    double time;
} remat_sim_result;

/* Simulates ops on chain (DESIGN.md accounting). Returns REMAT_OK even for an invalid schedule
 * (see out->valid); fails only on bad arguments. */
remat_status remat_simulate(const remat_chain *chain, const remat_op *ops, size_t n_ops,
                            remat_sim_result *out);

/* Plans a schedule for chain under budget_bytes with policy. A budget too small for the policy is
 * REMAT_EINFEASIBLE with the minimum feasible budget in the message; *out is still not set. */
remat_status remat_plan(const remat_chain *chain, const remat_policy *policy,
                        uint64_t budget_bytes, remat_schedule **out);
void remat_schedule_free(remat_schedule *s);

/* Smallest budget for which `policy` yields a feasible schedule on chain. */
remat_status remat_min_budget(const remat_chain *chain, const remat_policy *policy,
                              uint64_t *out);
/* Store-all peak (the 100% reference for percentage budgets). */
remat_status remat_store_all_peak(const remat_chain *chain, uint64_t *out);

/* One point of the overhead-versus-memory Pareto frontier. */
typedef struct {
    uint64_t budget_bytes, peak_bytes;
    double time, overhead;
} remat_curve_point;

/* The Pareto frontier of (peak, time) of the optimal policy over all budgets, from one solve;
 * points sorted by increasing peak, time strictly decreasing. Caller frees *out with free(). */
remat_status remat_curve(const remat_chain *chain, const remat_policy *policy,
                         remat_curve_point **out, size_t *n_out);

/* Writes the plan JSON of DESIGN.md ({"policy", "budget_bytes", ...}) to f. */
remat_status remat_schedule_write_json(const remat_schedule *s, const remat_chain *chain, FILE *f);

/* ---- Executor ---------------------------------------------------------------------------- */

/* Callbacks through which remat_run drives the trainer. Buffers are allocated and freed by the
 * executor through the pool; the callbacks only compute into them.
 * - forward: a_{i+1} (out, out_bytes) from a_i (in). option = -2: no grad (F_ck/F_n), out has
 *   out_bytes; option = -1 (default) or k: forward-with-grad, out is ā_{i+1} with saved_bytes of
 *   that option, and a_{i+1} must be its first out_bytes. tmp has fwd_tmp_bytes (may be NULL if
 *   0). For stage 0, in is a_0 as written by `input`.
 * - backward: d_i (din, size |a_i|) from a_i (in), ā_{i+1} (saved, made with `option`) and d_{i+1}
 *   (dout). tmp has bwd_tmp_bytes. Parameter gradients are the trainer's business.
 * - input: writes a_0 (input_bytes). seed: writes d_L (out_bytes of the last stage); NULL = zeros.
 * - save_rng / restore_rng (optional): called before the first forward of a stage and before
 *   every recomputation of it, so stochastic stages recompute exactly.
 * A callback returning non-OK stops the run with that status (its message is kept). */
typedef struct {
    remat_status (*forward)(void *ctx, int stage, int option, const void *in, void *out, void *tmp);
    remat_status (*backward)(void *ctx, int stage, int option, const void *in, const void *saved,
                             const void *dout, void *din, void *tmp);
    remat_status (*input)(void *ctx, void *a0);
    remat_status (*seed)(void *ctx, void *d_last);
    void (*save_rng)(void *ctx, int stage);
    void (*restore_rng)(void *ctx, int stage);
} remat_callbacks;

/* Runs `sched` on `chain` through `cb`, allocating activations, gradients and workspaces from
 * `pool` on `stream`. Every buffer is freed before return, on success and on failure. */
remat_status remat_run(const remat_schedule *sched, const remat_chain *chain, remat_pool *pool,
                       remat_stream stream, const remat_callbacks *cb, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* REMAT_H */

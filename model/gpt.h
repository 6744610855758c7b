/* model/gpt.h: the GPT-2 model of the training loop (module-private): configurations and presets,
 * the parameter layout of llm.c, GPT-2 init, weights and token files, the built-in corpus, the data
 * loader, and the trainer that runs one step as a checkpointable chain through remat_run.
 *
 * Architecture as llm.c's train_gpt2.c: learned position embeddings, pre-LayerNorm blocks (eps
 * 1e-5), causal multi-head attention, 4C tanh-GELU MLP, residuals, final LayerNorm, the token
 * embedding tied as the output head, vocabulary padded to a multiple of 128, mean cross-entropy
 * loss, AdamW.
 *
 * The model as a chain of L + 2 stages (stage i maps a_i to a_{i+1}):
 *   stage 0        token + position embedding; a_0 = the B*T int32 input tokens, a_1 = [B,T,C]
 *   stage 1..L     transformer block l-1; a_l = [B,T,C] residual stream in, a_{l+1} out
 *   stage L+1      final LayerNorm + tied head + fused softmax/cross-entropy; a_{L+2} = losses
 * [B*T]. Its forward-with-grad also computes the head's gradient (the logits are workspace, never
 * saved); the head's weight gradient is added once per step. Every byte count of the chain is a
 * multiple of 512 (the pool's rounding), so the pool hands out exactly what the simulator counts.
 */
#ifndef REMAT_MODEL_GPT_H
#define REMAT_MODEL_GPT_H

#include "kernels/kernels.h"
#include "remat.h"

#include <stddef.h>
#include <stdint.h>

/* ==== Configuration ======================================================================== */

typedef struct {
    int layers;       /* L */
    int channels;     /* C */
    int heads;        /* NH; C % NH == 0 */
    int vocab;        /* V */
    int padded_vocab; /* Vp: V rounded up to a multiple of 128 (0 in gpt_config_check: computed) */
    int max_seq;      /* maxT: rows of the position embedding */
} gpt_config;

/* Fills *out from a preset name: "tiny", "small", "gpt2-124m", "gpt2-350m". Unknown: REMAT_EINVAL
 * listing the presets. */
remat_status gpt_preset(const char *name, gpt_config *out);
/* Validates cfg (positive sizes, C % NH == 0, sane limits) and fills padded_vocab when it is 0. */
remat_status gpt_config_check(gpt_config *cfg);
/* Vocabulary rounded up to a multiple of 128, as llm.c pads it. */
int gpt_padded_vocab(int vocab);

/* Explicit architecture values from the command line; 0 = not given. */
typedef struct gpt_overrides {
    int layers, channels, heads, vocab, seq;
} gpt_overrides;

/* Resolves `model` (a preset name, or the path of an llm.c weights file; NULL = "small") and the
 * overrides into a checked config and the training sequence length *T (ov->seq, else maxT).
 * A weights file fills *params (malloc'd, caller frees) and allows no architecture overrides and
 * no T above its maxT; a preset leaves *params NULL and grows maxT to an explicit larger seq. */
remat_status gpt_resolve(const char *model, const gpt_overrides *ov, gpt_config *cfg, int *T,
                         float **params);

/* ==== Parameters (llm.c's order and layout) ================================================ */

enum { GPT_N_PARAMS = 16 };
enum {
    GPT_WTE,
    GPT_WPE,
    GPT_LN1W,
    GPT_LN1B,
    GPT_QKVW,
    GPT_QKVB,
    GPT_ATTPROJW,
    GPT_ATTPROJB,
    GPT_LN2W,
    GPT_LN2B,
    GPT_FCW,
    GPT_FCB,
    GPT_FCPROJW,
    GPT_FCPROJB,
    GPT_LNFW,
    GPT_LNFB
};
extern const char *const gpt_param_names[GPT_N_PARAMS];

typedef struct {
    size_t count[GPT_N_PARAMS];  /* floats per tensor (all layers together for per-layer ones) */
    size_t offset[GPT_N_PARAMS]; /* floats from the start of the flat buffer */
    size_t total;                /* floats in all */
} gpt_param_layout;

void gpt_layout_params(const gpt_config *cfg, gpt_param_layout *out);

/* GPT-2 init into host memory `params` (layout.total floats), deterministic in `seed`: every
 * matrix and both embeddings ~ N(0, 0.02), the two residual projections (attprojw, fcprojw)
 * ~ N(0, 0.02 / sqrt(2L)), biases 0, LayerNorm weights 1; wte's padded rows are 0. Normals come
 * from gpt_rng (splitmix64 + Box-Muller), drawn tensor by tensor in layout order. */
void gpt_init_params(const gpt_config *cfg, uint64_t seed, float *params);

/* The generator of the init and of --shuffle: splitmix64 (Steele, Lea, Flood 2014). */
typedef struct {
    uint64_t state;
} gpt_rng;
uint64_t gpt_rng_next(gpt_rng *r);
/* Uniform in (0, 1), 24 bits of randomness. */
double gpt_rng_uniform(gpt_rng *r);

/* llm.c weights file: int32 header[256] = {20240326, 3, maxT, V, L, NH, C, Vp, 0...} then every
 * parameter as fp32 in layout order. Read: fills *cfg and a malloc'd *params (caller frees);
 * errors name the file and the problem (REMAT_EIO unreadable, REMAT_EPARSE bad magic, version,
 * sizes or a truncated file). Write goes to a unique "path.tmp.XXXXXX" then renames, so no
 * partial file is left; fwrite writes the same bytes to a stream the caller owns. */
remat_status gpt_weights_read(const char *path, gpt_config *cfg, float **params);
remat_status gpt_weights_write(const char *path, const gpt_config *cfg, const float *params);
remat_status gpt_weights_fwrite(FILE *f, const gpt_config *cfg, const float *params);

/* ==== Tokens and the data loader =========================================================== */

typedef struct {
    int *tokens; /* malloc'd */
    size_t n;
    int max_token; /* the largest token present */
} gpt_tokens;

/* Loads a token file (llm.c: int32 header[256] = {20240520, 1, count, ...}, then count uint16) or,
 * when the file does not start with that magic, any other file as bytes (vocabulary 256). */
remat_status gpt_tokens_load(const char *path, gpt_tokens *out);
/* The built-in corpus: n bytes of deterministic English-like text (sentences drawn by a fixed
 * splitmix64 stream from a small grammar), so a model can learn it well below ln(256). */
remat_status gpt_tokens_builtin(size_t n, gpt_tokens *out);
void gpt_tokens_free(gpt_tokens *t);

/* Batches as llm.c's loader: batch k takes tokens [p, p + B*T + 1) with p = k*B*T, inputs the first
 * B*T and targets the last B*T; when p + B*T + 1 passes the end, p goes back to 0. With shuffle,
 * the batch order within each pass is a permutation drawn from seed. */
typedef struct {
    const gpt_tokens *data;
    int B, T;
    size_t n_batches, next; /* batches per pass; index of the next one within the pass */
    size_t *order;          /* n_batches entries when shuffling, else NULL */
    gpt_rng rng;
} gpt_loader;

remat_status gpt_loader_init(gpt_loader *ld, const gpt_tokens *data, int B, int T, int shuffle,
                             uint64_t seed);
void gpt_loader_next(gpt_loader *ld, int *inputs, int *targets);
void gpt_loader_free(gpt_loader *ld);

/* ==== The trainer ========================================================================== */

/* Block save options, in the order the chain lists them (remat_stage.options). */
enum {
    GPT_OPT_RECOMPUTE_GELU,
    GPT_OPT_RECOMPUTE_GELU_LN,
    GPT_OPT_RECOMPUTE_ATTN,
    GPT_OPT_RECOMPUTE_ATTN_GELU_LN,
    GPT_N_BLOCK_OPTIONS
};
extern const char *const gpt_block_option_names[GPT_N_BLOCK_OPTIONS];

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} gpt_adamw;
/* torch.optim.AdamW's defaults with betas (0.9, 0.95) and weight decay 0. */
gpt_adamw gpt_adamw_defaults(void);

typedef struct gpt_model gpt_model;

/* The training precision. fp32: everything float32. bf16 (mixed precision): parameters,
 * gradients, activations and activation gradients in bf16, float32 arithmetic, LayerNorm
 * statistics and losses float32, AdamW moments float32, and with master_weights a float32 master
 * copy of the parameters (16 bytes a parameter); without, the update rounds the bf16 weights
 * stochastically from a generator seeded by `seed` and the step (12 bytes a parameter). */
typedef enum { GPT_FP32, GPT_BF16 } gpt_dtype;
typedef struct gpt_precision {
    gpt_dtype dtype;
    int master_weights; /* bf16 only; 1 by default */
    uint64_t seed;      /* stochastic rounding's seed (bf16 without master weights) */
} gpt_precision;
/* fp32 (what gpt_model_create uses). */
gpt_precision gpt_precision_default(void);
/* "fp32" or "bf16". */
const char *gpt_dtype_name(gpt_dtype d);
/* Parses "fp32" / "bf16"; anything else is REMAT_EINVAL naming the value. */
remat_status gpt_dtype_parse(const char *s, gpt_dtype *out);

/* Creates the model for batches of B x T on dev: parameters, gradients and AdamW states come from
 * pool (tags params, grads, optim), plus the step's targets; parameters start at zero. T <= maxT.
 */
remat_status gpt_model_create(remat_device *dev, remat_pool *pool, const gpt_config *cfg, int B,
                              int T, gpt_model **out);
/* The same in precision *prec (NULL: fp32). bf16 on a device whose kernel table has no bf16
 * kernels is REMAT_EUNSUPPORTED. */
remat_status gpt_model_create_precision(remat_device *dev, remat_pool *pool, const gpt_config *cfg,
                                        int B, int T, const gpt_precision *prec, gpt_model **out);
/* Data parallelism: the ranks of `comm` train one model, each on its own rows. ZeRO-0 keeps
 * every state on every rank and all-reduces the gradients (buckets of 4 Mi elements); ZeRO-1
 * keeps only the rank's shard of the AdamW moments (and of the fp32 master weights in bf16),
 * reduce-scatters the gradients and all-gathers the updated parameters. Parameters and gradients
 * are padded to a multiple of the rank count (zeros), so shards are equal; a rank's shard is
 * elements [rank * shard, (rank + 1) * shard) of the flat layout. `accum` micro-steps make one
 * update: the loss gradient is seeded with 1 / (B * T * ranks * accum), so the reduced gradient
 * is that of the mean loss over every row of the update, as one process with the whole batch. */
typedef struct {
    remat_comm *comm; /* NULL: one process */
    int zero;         /* ZeRO stage 0-3 (docs/distributed.md) */
    int accum;        /* micro-steps per update; 0 means 1 */
} gpt_parallel;
remat_status gpt_model_create_parallel(remat_device *dev, remat_pool *pool, const gpt_config *cfg,
                                       int B, int T, const gpt_precision *prec,
                                       const gpt_parallel *par, gpt_model **out);
void gpt_model_destroy(gpt_model *m);
const gpt_precision *gpt_model_precision(const gpt_model *m);
const gpt_config *gpt_model_config(const gpt_model *m);
const gpt_param_layout *gpt_model_layout(const gpt_model *m);
/* Bytes of the pool held for the whole run (parameters, gradients, optimizer, targets): the pool's
 * activation use is its allocated bytes minus this. */
uint64_t gpt_model_persistent_bytes(const gpt_model *m);
/* ZeRO-3's parameter gathers in the last update's micro-steps (one per unit a stage's forward or
 * backward needed, recomputations included); 0 under the other stages. */
uint64_t gpt_model_gathers(const gpt_model *m);
/* Collective (every rank calls it): under ZeRO-3 over more than one rank, the median ms of an
 * all-gather of the embeddings' unit and of a block's, rank 0's times on every rank; 0 and 0
 * otherwise. For gpt_chain_add_gathers: the profile runs on rank 0 alone and times no gather. */
remat_status gpt_model_time_gathers(gpt_model *m, double *embed_ms, double *block_ms);
/* Adds ZeRO-3's gathers to a measured chain of our GPT (layers + 2 stages), so that the schedule
 * weighs what a recomputation costs in communication too: every forward gathers its units (the
 * embedding and the head embed_ms, a block block_ms) and a block's backward gathers again. */
remat_status gpt_chain_add_gathers(remat_chain *ch, int layers, double embed_ms, double block_ms);

/* What a B x T model would take, without allocating it: *persistent the pool bytes of its
 * parameters, gradients, AdamW states and targets (gpt_model_persistent_bytes' value), *chain
 * its chain as gpt_model_chain gives it (same byte counts, analytic times). A size too large for
 * any machine (a single buffer above 128 TiB) is REMAT_ENOMEM naming it. */
remat_status gpt_model_estimate(remat_device *dev, const gpt_config *cfg, int B, int T,
                                uint64_t *persistent, remat_chain **chain);
/* The same in precision *prec (NULL: fp32), and for the rank of par (NULL: one process). */
remat_status gpt_model_estimate_precision(remat_device *dev, const gpt_config *cfg, int B, int T,
                                          const gpt_precision *prec, uint64_t *persistent,
                                          remat_chain **chain);
remat_status gpt_model_estimate_parallel(remat_device *dev, const gpt_config *cfg, int B, int T,
                                         const gpt_precision *prec, const gpt_parallel *par,
                                         uint64_t *persistent, remat_chain **chain);
/* The model's parameters where they are host memory (host device) and fp32: layout.total floats
 * to read or fill in place, saving a host copy; NULL on other devices, in bf16 and under
 * ZeRO-2/3 (which lay them out by unit). */
float *gpt_model_host_params(gpt_model *m);
/* Copies all parameters from / to host memory (layout.total floats, llm.c's layout); gradients
 * to host. In bf16, set fills the master weights (with master weights) and the bf16 parameters
 * (rounded to nearest); get returns the master weights (or the bf16 weights widened); grads are
 * widened. Where the ranks hold shards (ZeRO-1 in bf16 with master weights, ZeRO-2/3), get
 * gathers them: every rank calls it. Under ZeRO-2/3 no rank has the full gradients: get_grads is
 * REMAT_EUNSUPPORTED. */
remat_status gpt_model_set_params(gpt_model *m, const float *host);
remat_status gpt_model_get_params(gpt_model *m, float *host);
remat_status gpt_model_get_grads(gpt_model *m, float *host);

/* The model's chain (L + 2 stages, names "embed", "block0".., "head") with the exact byte counts
 * the callbacks use and analytic times (FLOPs, in GFLOP). */
remat_status gpt_model_chain(const gpt_model *m, remat_chain **out);
/* How many times the model has waited for its device so far (kernel status() calls that
 * synchronise: 0 on the host). A training step waits twice: for the loss, and at its end. */
uint64_t gpt_model_syncs(const gpt_model *m);
/* What a profile did and found (all zero before it ran). */
typedef struct {
    int rounds;          /* measured rounds (after one warm-up round) */
    double elapsed_ms;   /* its wall time, warm-up and allocations included */
    uint64_t peak_bytes; /* the most bytes the profile's buffers held at once */
    double default_bwd;  /* a block's default backward (ms, as stored in the chain) */
    /* Each option's backward as measured, before the floor (default backward plus the share of
     * the forward it recomputes) is applied; the chain holds max(measured, floor). */
    double measured_option_bwd[GPT_N_BLOCK_OPTIONS];
    int contradicted; /* options measured more than 3% below the default backward */
    int samples;      /* timed calls, every measured time together */
    int disturbed;    /* of them, calls during which the process was preempted */
    int unclean_times; /* times with fewer than GPT_PROFILE_MIN_CLEAN undisturbed samples,
                        * estimated from all of theirs: a busy machine, a profile that may not
                        * repeat */
} gpt_profile_info;

/* The same chain with measured wall times in milliseconds, stage by stage: each stage's forward
 * without grad, forward-with-grad and backward called on its own with only that call's buffers
 * live (input, output or ā, output gradient, input gradient, workspace), from a pool of the
 * profile's own on the model's device (destroyed before returning, so m->pool and a trace on it
 * see nothing, and the profile never holds more than one stage needs). A round measures the
 * embedding, one block (round mod L: blocks share one shape) under the default and every save
 * option back to back, the head, and the per-step work outside the stages (zeroing gradients,
 * copying the batch); a call shorter than 1 ms is repeated back to back until its repetitions
 * took 1 ms (at most 16), each one a sample. A sample is disturbed when the process had an
 * involuntary context switch during it (getrusage: some thread was preempted). After one warm-up
 * round (its samples dropped): at least `reps` rounds (1..64), then more until every time has 16
 * undisturbed samples, or 64 rounds, or the time of 4 store-all steps (as the rounds ran them;
 * at least 1 s) has passed. Each time is gpt_profile_estimate of its samples. The chain's fwd is
 * the forward without grad; a forward-with-grad's excess over it goes into the backward; an
 * option's backward is never below the default's plus the share of the forward it recomputes (by
 * FLOPs); the work outside the stages goes into the embedding's backward. Leaves the gradients
 * zero. `inputs` are B*T host tokens of a real batch; info may be NULL. */
remat_status gpt_model_profile(gpt_model *m, const int *inputs, int reps, remat_chain **out,
                               gpt_profile_info *info);
/* The profile's estimator of one time from its n samples (ms[i], disturbed[i] nonzero when the
 * call was preempted): the GPT_PROFILE_QUANTILE-quantile (linear interpolation) of the
 * undisturbed samples when there are at least GPT_PROFILE_MIN_CLEAN of them, else of all n; 0
 * when n is 0. work holds n doubles of scratch. Interference only adds time, so a low quantile
 * of the undisturbed calls is what repeats, and not their least, which one lucky call sets. */
enum { GPT_PROFILE_MIN_CLEAN = 4 };
#define GPT_PROFILE_QUANTILE 0.25
double gpt_profile_estimate(const double *ms, const unsigned char *disturbed, int n, double *work);
/* What a profile's times depend on: the architecture, the batch shape, the device and the
 * dtype. A profile file is the chain JSON (readable by `remat plan`) with this as its "key"
 * object. */
typedef struct {
    int layers, channels, heads, vocab, batch, seq;
    char device[64];       /* the device's canonical spec: "host", "cuda:0" */
    char device_name[128]; /* "host (jemalloc)", "NVIDIA H200" */
    char dtype[8];         /* "fp32" or "bf16" (gpt_dtype_name) */
} gpt_profile_key;
remat_status gpt_profile_key_of(const gpt_model *m, gpt_profile_key *out);
/* Writes ch with the key as a profile file to f; gpt_profile_save to path (through a unique
 * temporary file beside it, renamed over path when complete). */
remat_status gpt_profile_write(FILE *f, const remat_chain *ch, const gpt_profile_key *key);
remat_status gpt_profile_save(const char *path, const remat_chain *ch, const gpt_profile_key *key);
/* Reads a profile file for key: REMAT_OK with *out the chain when its key matches and its byte
 * counts are those of `shape` (the model's gpt_model_chain: the executor allocates exactly them);
 * REMAT_OK with *out NULL and `why` saying so ("no such file", or the first difference: "batch 8,
 * this run 4", "stage 3's byte counts differ from this model's") otherwise; REMAT_EPARSE when the
 * file is no profile file (malformed, no complete key) or its chain is invalid; REMAT_EIO
 * unreadable. */
remat_status gpt_profile_load(const char *path, const gpt_profile_key *key,
                              const remat_chain *shape, remat_chain **out, char *why, size_t why_n);
/* GFLOP of a block's forward, and of what save option o recomputes in its backward. */
double gpt_block_forward_gflop(const gpt_model *m);
double gpt_option_extra_gflop(const gpt_model *m, int o);

/* One forward and backward of the batch (B*T host inputs and targets) under `sched` on `chain`
 * (from gpt_model_chain or gpt_model_profile): zeroes the gradients, runs the schedule through
 * remat_run, leaves the gradients in place and the mean loss in *loss. */
remat_status gpt_model_forward_backward(gpt_model *m, const remat_schedule *sched,
                                        const remat_chain *chain, const int *inputs,
                                        const int *targets, float *loss);
/* The same without zeroing the gradients first: this batch's gradients are added to them (a
 * micro-step of gradient accumulation). */
remat_status gpt_model_accumulate(gpt_model *m, const remat_schedule *sched,
                                  const remat_chain *chain, const int *inputs, const int *targets,
                                  float *loss);
remat_status gpt_model_zero_grads(gpt_model *m);
/* Collective over the model's comm (a no-op alone): sums every rank's gradients, all of them
 * (ZeRO-0) or this rank's shard (ZeRO-1). After the last micro-step, before gpt_model_update. */
remat_status gpt_model_reduce_grads(gpt_model *m);
/* One AdamW update (step t >= 1) of every parameter from the gradients (ZeRO-1: of this rank's
 * shard, then the parameters are all-gathered: a collective). */
remat_status gpt_model_update(gpt_model *m, const gpt_adamw *hp, int t);

/* ==== Memory profile (model/memprof.c) ===================================================== */

enum { GPT_MEMPROF_TAGS = 16 }; /* tag columns kept; more tags count in total_peak only */

/* One stage and pass of the step, summed over every call (recomputations included). */
typedef struct {
    char stage[32]; /* "embed", "block0".., "head" */
    int backward;   /* 0 forward (with or without grad), 1 backward */
    uint64_t calls;
    double ms;                           /* wall time inside the stage's callback */
    uint64_t alloc_bytes;                /* pool bytes handed to it (out/din and workspace) */
    uint64_t tag_peak[GPT_MEMPROF_TAGS]; /* most requested bytes live per tag while it ran */
    uint64_t total_peak;                 /* most requested bytes live in the pool then */
} gpt_memprof_row;

typedef struct gpt_memprof gpt_memprof;

/* Starts profiling every later gpt_model_forward_backward of m (replacing a profile attached
 * before); the profile lives until gpt_memprof_detach, which must come before the model's
 * destruction. */
remat_status gpt_memprof_attach(gpt_model *m, gpt_memprof **out);
void gpt_memprof_detach(gpt_memprof *p);
/* The 2 * (L + 2) rows, [2i] forward and [2i+1] backward of stage i; returns their count. */
int gpt_memprof_rows(const gpt_memprof *p, const gpt_memprof_row **rows);
/* The tag names of the tag_peak columns (names[GPT_MEMPROF_TAGS]); returns their count. */
int gpt_memprof_tags(const gpt_memprof *p, const char **names);
/* REMAT_OK, or the failure of a pool query made while profiling. */
remat_status gpt_memprof_status(const gpt_memprof *p);

#endif

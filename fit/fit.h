/* fit/fit.h: the planner's private interface: stored parameter counts, the analytic chain of a
 * model's training step, closed-form peaks of the fixed policies, and the scheduler bridge. */
#ifndef REMAT_FIT_H
#define REMAT_FIT_H

#include "core/core.h"

/* CUDA context with lazy module loading (unsloth-zoo #1053: 426 MiB, torch 2.10 / cu130). */
#define FIT_CONTEXT_BYTES (426ull << 20)
/* Library workspaces: cuBLAS/cuBLASLt (32 MiB on Hopper in PyTorch) and a margin for NCCL. */
#define FIT_WORKSPACE_BYTES (64ull << 20)
/* Allocator slack of models our trainer does not run (a PyTorch-style caching allocator): block
 * rounding and fragmentation, in parts per thousand of managed bytes. Our GPT's pool is modelled
 * exactly instead (fit.c, "Our GPT's pool"). */
#define FIT_SLACK_PERMILLE 20
/* Inference prefill is chunked: at most this many tokens go through one forward. */
#define FIT_PREFILL_CHUNK 8192

/* Parameters as stored (vocabulary rows padded), main model only. */
uint64_t fit_stored_params(const remat_model_desc *m);

/* The units ZeRO-2/3 shard one at a time, as `remat train` and FSDP's flat parameters do: the
 * parameters outside the blocks but the final norm (embeddings, untied head), each block (up to
 * two sizes: DeepSeek's dense and MoE layers), the final norm. A bare parameter count is one
 * unit. */
typedef struct {
    uint64_t outer, norm;
    uint64_t block[2];
    uint64_t blocks[2]; /* how many blocks of each size */
} fit_units;
void fit_units_of(const remat_model_desc *m, fit_units *u);

/* Bytes of one element of d for memory arithmetic (fp8 counts 1, int4 counts 1 here: callers
 * that need packed sizes use fit_weight_bytes). */
unsigned fit_dtype_bytes(remat_dtype d);
/* Bytes of `params` weights all in format q (scales included), for rows of `row` elements (0:
 * 4096); for a bare parameter count, which has no layers to tell apart. */
uint64_t fit_weight_bytes(uint64_t params, remat_dtype q, int row);

/* Stored weights of a model in serving format q. In fp8/int8/int4 only the linear layers inside
 * the blocks (and every expert) are in q, as GPTQ/AWQ/w4a16 checkpoints and DeepSeek's FP8
 * release store them; embeddings, the output head, norms, biases and routers stay in 16 bits.
 * In fp32/bf16/fp16 everything is in q (quant_* are 0). A bare count (--params) is all in q. */
typedef struct {
    uint64_t quant_params, quant_bytes; /* in q; bytes include the scales */
    uint64_t scale_bytes;               /* the scales' part of quant_bytes */
    uint64_t plain_params, plain_bytes; /* kept in 16 bits (or all, in a float format) */
} fit_weights;
void fit_weights_split(const remat_model_desc *m, remat_dtype q, fit_weights *out);

/* " (did you mean x, y?)" in buf: the names of name_at(0..n) that contain text, or else those
 * nearest to it by edit distance if that is small; "" when none is close. */
void fit_suggest(const char *text, const char *(*name_at)(size_t), size_t n, char *buf,
                  size_t len);

/* ---- The analytic chain of one training step ----------------------------------------------- */
/* Stages: 0 = token and position embedding, 1..L = transformer blocks, L+1 = final norm, head and
 * loss. Block stages carry options: "recompute-act" / "recompute-gelu" (llm.c's recompute=1: the
 * MLP activation output is recomputed), "recompute-attn" (Megatron's selective recompute of the
 * attention core), and combinations. act_bytes is the activation element size (4 in fp32
 * training, 2 in mixed precision). Times are FLOPs. Free with fit_chain_free. */
remat_status fit_chain_build(const remat_model_desc *m, uint64_t batch, uint64_t seq,
                              unsigned act_bytes, remat_chain **out);
void fit_chain_free(remat_chain *c);
/* Our GPT (REMAT_ARCH_GPT2) exactly as model/stages.c lays it out, with `scratch` bytes of
 * attention-kernel workspace (fit_chain_build assumes the CUDA kernel's NH x T x T floats). */
remat_status fit_chain_build_gpt(const remat_model_desc *m, uint64_t batch, uint64_t seq,
                                  unsigned act_bytes, uint64_t scratch, remat_chain **out);
/* Bytes the training step holds beside the chain: our GPT's targets (round512(4 B T)). */
uint64_t fit_chain_extra_bytes(const remat_model_desc *m, uint64_t batch, uint64_t seq);

/* Peak bytes and recompute overhead of a fixed policy (store-all, selective, full-recompute; the
 * scheduler's vocabulary) on chain under docs/checkpoint.md's model, in closed form: store-all and
 * selective run F_all (with the option remat_policy_stage_option picks) then B; full recompute
 * runs F_ck through the stages, then F_all i, B i from the last stage down. The schedules
 * themselves, laid out, are remat_plan's. */
uint64_t fit_chain_peak(const remat_chain *c, const remat_policy *p);
double fit_chain_overhead(const remat_chain *c, const remat_policy *p);

/* The scheduler's policy of an activation policy: store-all, llmc-selective (=
 * selective:recompute-gelu), megatron-selective (= selective:recompute-attn), full-recompute,
 * optimal, exactly as remat_policy_parse reads those names. */
void fit_act_policy(remat_act_policy p, remat_policy *out);

/* ---- Bridge to the checkpoint scheduler (fit/optimal.c) ------------------------------------ */
/* Smallest activation budget the optimal schedule fits in; REMAT_EUNSUPPORTED if the scheduler
 * is not available in this build. */
remat_status fit_optimal_min_budget(const remat_chain *c, uint64_t *out);
/* Peak and overhead of the optimal schedule at budget (REMAT_EINFEASIBLE below the minimum). */
remat_status fit_optimal_at(const remat_chain *c, uint64_t budget, uint64_t *peak,
                             double *overhead);

#endif

/* model/stages.h: the trainer's internals shared by the files of model/: the model struct, the
 * byte layouts of each stage's saved activations and workspaces, and the stage callbacks. */
#ifndef REMAT_MODEL_STAGES_H
#define REMAT_MODEL_STAGES_H

#include "core/gpt_layout.h"
#include "kernels/kernels_bf16.h"
#include "model/gpt.h"

enum { GPT_ABSENT = GPTL_ABSENT };

/* The byte layouts of the stages' buffers (core/gpt_layout.h, shared with the planner). */
typedef gptl_block_saved gpt_block_saved;
typedef gptl_block_fwd_tmp gpt_block_fwd_tmp;
typedef gptl_block_bwd_tmp gpt_block_bwd_tmp;
typedef gptl_head_fwd_tmp gpt_head_fwd_tmp;
typedef gptl_head_saved gpt_head_saved;

struct gpt_model {
    remat_device *dev;
    remat_pool *pool;
    const kern_table *k;
    kern_ctx *kc;
    remat_stream stream;
    int host_memory; /* parameters are host-addressable (host device) */

    gpt_config cfg;
    gpt_param_layout lay;
    int B, T;
    size_t N; /* B * T */

    /* Precision: fp32, or bf16 (kb set) with parameters, gradients and activations in bf16;
     * elem is their element size (4 or 2). m, v (and master, bf16 with master weights) are
     * float32. */
    gpt_precision prec;
    const kern_bf16_table *kb;
    size_t elem;
    void *params, *grads; /* flat, lay.total elements each */
    float *master;        /* bf16 with master weights: lay.total floats; else NULL */
    float *m, *v;         /* flat, lay.total floats each */
    void *p[GPT_N_PARAMS], *g[GPT_N_PARAMS];
    /* Data parallelism (gpt_model_create_parallel): the comm (NULL alone), its rank and size,
     * the ZeRO stage. The parameter and gradient buffers hold `padded` elements (lay.total
     * rounded up to a multiple of ranks, the tail zero) so every rank's shard of `shard`
     * elements is the same size; m, v and master hold `states` elements: the shard under
     * ZeRO-1, else lay.total. The loss gradient is seeded with 1 / loss_rows: the rows of every
     * rank's micro-steps of one update. */
    remat_comm *comm;
    int rank, ranks, zero;
    size_t padded, shard, states;
    size_t loss_rows;
    /* ZeRO-2/3 (zero >= 2, model/shard.c) shard unit by unit, as FSDP's flat parameters: unit 0
     * holds the embeddings (wte, wpe), units 1..L the blocks, unit L+1 the final LayerNorm, each
     * tensor's elements one after another in llm.c's order (gpt_unit_tensors). A unit of n
     * elements is padded to ranks * chunk (chunk = ceil(n / ranks)); rank r owns chunk r of every
     * unit, kept unit after unit in its shard (`states` elements). The parameter buffer holds
     * every unit padded (`padded` elements) under ZeRO-2, the shard under ZeRO-3; the gradient
     * buffer holds the shard. unit_elems / unit_chunk: [0] the embeddings, [1] a block, [2] the
     * final LayerNorm. */
    size_t unit_elems[3], unit_chunk[3];
    size_t param_elems, grad_elems; /* elements of the parameter and gradient buffers */
    /* ZeRO-2/3's unit buffers (pool tag "units", allocated with the states): grad0 holds unit 0's
     * full gradients from the head's forward-with-grad (its share of dwte) to the embedding's
     * backward, which reduces them (grad0_live meanwhile); work holds the other units' full
     * gradients in their backward and, under ZeRO-3, the weights a stage gathers
     * (gpt_units_work_elems). NULL below ZeRO-2. */
    void *grad0, *work;
    int grad0_live;
    int local;         /* 1 while rank 0 profiles alone: no collectives (shard.c) */
    uint64_t gathers;  /* ZeRO-3 parameter gathers of the last step */
    int *targets;        /* device, N */
    float *losses_host;  /* host, N: the last losses read back */
    uint64_t persistent; /* pool bytes of the flat buffers, the unit buffers and targets */

    /* Byte counts of the chain. */
    size_t input_bytes, act_bytes, loss_bytes;
    gpt_block_saved saved[1 + GPT_N_BLOCK_OPTIONS]; /* [0] = default, [k+1] = option k */
    gpt_block_fwd_tmp fwd_tmp;
    gpt_block_bwd_tmp bwd_tmp;
    gpt_head_fwd_tmp head_tmp;
    gpt_head_saved head_saved;

    /* Per-step state. */
    const int *step_inputs; /* host */
    int head_grad_done;
    double loss;

    struct gpt_memprof *memprof; /* NULL unless a memory profile is attached (memprof.c) */
};

/* ==== Units of ZeRO-2/3 (model/shard.c) ==== */
#define GPT_UNITS_TAG "units" /* the pool tag of the gathered and unreduced unit buffers */
/* Elements of the work buffer (0 below ZeRO-2), and in *held those of grad0. */
size_t gpt_units_work_elems(const gpt_model *m, size_t *held);
/* Sets unit_elems / unit_chunk and the buffer sizes (param_elems, grad_elems, padded, states)
 * for m's ZeRO stage and ranks (after gpt_layout_params). */
void gpt_units_layout(gpt_model *m);
/* Units in all (layers + 2), and unit u's chunk, its offset in the padded layout, its chunk's
 * offset in the rank's shard (elements). */
int gpt_unit_count(const gpt_model *m);
size_t gpt_unit_chunk(const gpt_model *m, int u);
size_t gpt_unit_full_offset(const gpt_model *m, int u);
size_t gpt_unit_shard_offset(const gpt_model *m, int u);
/* Pointers to the tensors of unit u (of the layer, for a block) in out[] (the others untouched):
 * inside buf, the unit's elements one after another, under ZeRO-2/3; at their place in the flat
 * buffer whose tensors start at flat[] (m->p or m->g) otherwise, buf unused. */
void gpt_unit_tensors(const gpt_model *m, int u, void *buf, void *const *flat,
                      void *out[GPT_N_PARAMS]);
/* The parameters of unit u for a stage: ZeRO-3 all-gathers them into the work buffer (one gather
 * counted), ZeRO-2 points into the parameter buffer, else *buf = NULL (use m->p). The work
 * buffer holds them until the next gather into the same place. */
remat_status gpt_unit_params_get(gpt_model *m, int u, void **buf);
/* A zeroed buffer for unit u's gradients under ZeRO-2/3 (unit 0: grad0, zeroed by its first get
 * of a step and live until the embedding's backward), else *buf = NULL (use m->g).
 * gpt_unit_grads_put reduce-scatters it and adds this rank's chunk to its gradient shard (unit 0:
 * only when reduce is 1). */
remat_status gpt_unit_grads_get(gpt_model *m, int u, void **buf);
remat_status gpt_unit_grads_put(gpt_model *m, int u, void *buf, int reduce);
/* Ends grad0's life if a step that failed left it live. */
void gpt_unit_drop(gpt_model *m);
/* Host fp32 parameters in llm.c's layout (lay.total floats) to what this rank stores in the
 * units' layout (ZeRO-2: param_elems floats, every unit padded; ZeRO-3 or shard_only: the shard,
 * states floats), and back from the padded layout. */
void gpt_units_pack(const gpt_model *m, const float *host, float *out, int shard_only);
void gpt_units_unpack(const gpt_model *m, const float *padded, float *host);
/* Whether the step runs its collectives (trainer.c): several ranks, or one through NCCL. */
int gpt_collective(const gpt_model *m);

/* Fills the byte layouts of m from its config and B, T. */
void gpt_stages_layout(gpt_model *m);
/* The remat_callbacks of the model (forward, backward, input). */
extern const remat_callbacks gpt_callbacks;
/* The callbacks of memprof.c: the model's, recording into the profile passed as ctx. */
remat_callbacks gpt_memprof_callbacks(void);

#endif

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
    int *targets;        /* device, N */
    float *losses_host;  /* host, N: the last losses read back */
    uint64_t persistent; /* pool bytes of the four flat buffers and targets */

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

/* Fills the byte layouts of m from its config and B, T. */
void gpt_stages_layout(gpt_model *m);
/* The remat_callbacks of the model (forward, backward, input). */
extern const remat_callbacks gpt_callbacks;
/* The callbacks of memprof.c: the model's, recording into the profile passed as ctx. */
remat_callbacks gpt_memprof_callbacks(void);

#endif

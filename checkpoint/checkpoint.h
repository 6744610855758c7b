/* checkpoint/checkpoint.h: module-private helpers of the checkpoint scheduler: chain sizes, op
 * lists, the shared state machine of the simulator and the executor, and the solvers. */
#ifndef REMAT_CHECKPOINT_H
#define REMAT_CHECKPOINT_H

#include "core/core.h"

/* ---- chain sizes ------------------------------------------------------------------------ */

/* |a_k|: input_bytes for k = 0, else out_bytes of stage k-1 (also |d_k|). */
uint64_t chain_act_bytes(const remat_chain *c, int k);
/* |ā_{i+1}| made by F_all i with `option` (-1 = default). */
uint64_t chain_saved_bytes(const remat_chain *c, int stage, int option);
/* |d_k|: 0 for k = 0 when the chain's input needs no gradient, else |a_k|. */
uint64_t chain_grad_bytes(const remat_chain *c, int k);
/* Workspace of stage i's forward / backward with `option` (-1 default, -2 no grad: the stage's
 * own), an option's extra included. */
uint64_t chain_fwd_tmp_bytes(const remat_chain *c, int stage, int option);
uint64_t chain_bwd_tmp_bytes(const remat_chain *c, int stage, int option);
/* Backward time of stage i when ā_{i+1} was made with `option`. */
double chain_bwd_time(const remat_chain *c, int stage, int option);
/* Σ fwd + Σ bwd (default options): the store-all time, the base of overhead. */
double chain_base_time(const remat_chain *c);
/* Checks the invariants the loader enforces (for chains built in code). */
remat_status chain_validate(const remat_chain *c);

/* ---- op lists --------------------------------------------------------------------------- */

typedef struct {
    remat_op *ops;
    size_t n, cap;
    int oom; /* a push failed: the list is incomplete */
} ckpt_oplist;

void ckpt_push(ckpt_oplist *l, remat_op_kind kind, int stage, int option);
void ckpt_oplist_free(ckpt_oplist *l);

/* ---- the state machine shared by simulator and executor -------------------------------- */

enum { CKPT_BUF_A, CKPT_BUF_ABAR, CKPT_BUF_D };

/* One buffer: an activation a_k (plain), a stored ā_k, or a gradient d_k. */
typedef struct {
    int kind, index;
} ckpt_buf;

/* What an op does to memory, in the order the executor performs it: allocate the output and the
 * workspace, run, free the workspace, free the output if it was only transient (already live), then
 * free the listed buffers. */
typedef struct {
    ckpt_buf out;
    uint64_t out_bytes, tmp_bytes;
    int keep_out;
    int first_forward; /* forward ops: first forward of this stage (save_rng, else restore_rng) */
    int n_free;
    ckpt_buf frees[3];
    int in_abar; /* the op's input a_i lives inside a stored ā_i */
    int option;  /* F_all: the option made; B: the option ā_{i+1} was made with */
} ckpt_effect;

typedef struct {
    const remat_chain *chain;
    unsigned char *plain;    /* [L+1]: a_k stored plain */
    int *abar;               /* [L+1]: option ā_k was made with, or CKPT_NONE */
    unsigned char *fwd_seen; /* [L]: stage forwarded before */
    int grad;                /* index of the live gradient, -1 none */
    int done;                /* B 0 has run */
    uint64_t mem, peak;
    double time;
} ckpt_state;

#define CKPT_NONE (-100)

remat_status ckpt_state_init(ckpt_state *st, const remat_chain *chain);
void ckpt_state_free(ckpt_state *st);
/* Applies op; returns 0 and fills *eff, or -1 with the reason in why (state unchanged). */
int ckpt_state_apply(ckpt_state *st, const remat_op *op, ckpt_effect *eff, char *why, size_t n);
/* Bytes of one buffer in the current state. */
uint64_t ckpt_buf_bytes(const ckpt_state *st, ckpt_buf b, int option);

/* ---- solvers ---------------------------------------------------------------------------- */

/* Builders append a complete schedule for chain to l. */
void ckpt_build_store_all(const remat_chain *c, ckpt_oplist *l);
void ckpt_build_periodic(const remat_chain *c, int period, ckpt_oplist *l);
/* Store-all with each stage's option under p (remat_policy_stage_option). */
void ckpt_build_selective(const remat_chain *c, const remat_policy *p, ckpt_oplist *l);
/* Checks p and, for a selective policy, that some stage of c has its option: REMAT_EINVAL names
 * the option and lists the chain's options otherwise. */
remat_status ckpt_check_policy_chain(const remat_chain *c, const remat_policy *p);
int ckpt_sqrt_period(int n_stages);
/* Forward ops of the binomial schedule (closed form) for l stages and `snaps` checkpoints. */
uint64_t ckpt_revolve_forwards(uint64_t l, uint64_t snaps);
/* Revolve with `snaps` plain checkpoints (a_0 included, snaps >= 1). */
remat_status ckpt_build_revolve(const remat_chain *c, int snaps, ckpt_oplist *l);

/* Optimal DP: best schedule within budget (bytes) or REMAT_EINFEASIBLE. *exact = 0 when memory
 * rounding may have cost time (sizes not all whole units of the discretisation). */
remat_status ckpt_optimal_plan(const remat_chain *c, int slots, uint64_t budget, ckpt_oplist *l,
                               int *exact);
/* Smallest budget any schedule of the optimal DP's structure fits in (exact, in bytes). */
remat_status ckpt_optimal_min_budget(const remat_chain *c, uint64_t *out);

/* remat_plan without a layout (peak_bytes = the simulated peak); remat_plan itself (layout.c) adds
 * the planned layout and re-plans until the arena fits. */
remat_status ckpt_plan_ops(const remat_chain *chain, const remat_policy *policy,
                           uint64_t budget_bytes, remat_schedule **out);

/* ---- planned layout (layout.c) ---------------------------------------------------------- */

/* Every buffer remat_run allocates for ops, in its order, with lifetimes in op indices; the
 * simulated peak (most bytes live at any op) in *live_peak. Caller frees *out. */
/* The arena of the planned layout of ops on c (the layout itself is not kept). */
remat_status ckpt_layout_arena(const remat_chain *c, const remat_op *ops, size_t n_ops,
                               uint64_t *arena);
remat_status ckpt_layout_buffers(const remat_chain *c, const remat_op *ops, size_t n_ops,
                                 remat_layout_buffer **out, size_t *n_out, uint64_t *live_peak);
/* remat_min_budget_layout with REMAT_LAYOUT_POOL: the least simulated peak. */
remat_status ckpt_min_budget_pool(const remat_chain *chain, const remat_policy *policy,
                                  uint64_t *out);
/* Digest of ops and of the chain's byte counts: a layout is used only for what it was made for. */
uint64_t ckpt_layout_key(const remat_chain *c, const remat_op *ops, size_t n_ops);

#endif

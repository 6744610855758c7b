/* checkpoint/simulate.c: the cost model's state machine (shared with the executor) and the
 * simulator that runs any op list through it (docs/checkpoint.md, "The model"). */
#include "checkpoint/checkpoint.h"

#include <stdlib.h>
#include <string.h>

/* ==== op lists ============================================================================= */

void ckpt_push(ckpt_oplist *l, remat_op_kind kind, int stage, int option)
{
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        remat_op *ops = realloc(l->ops, cap * sizeof *ops);
        if (!ops) {
            l->oom = 1;
            return;
        }
        l->ops = ops;
        l->cap = cap;
    }
    l->ops[l->n++] = (remat_op){kind, stage, option};
}

void ckpt_oplist_free(ckpt_oplist *l)
{
    free(l->ops);
    memset(l, 0, sizeof *l);
}

/* ==== state machine ======================================================================== */

remat_status ckpt_state_init(ckpt_state *st, const remat_chain *chain)
{
    int L = chain->n_stages;
    memset(st, 0, sizeof *st);
    st->chain = chain;
    st->plain = calloc((size_t)L + 1, 1);
    st->abar = malloc(((size_t)L + 1) * sizeof *st->abar);
    st->fwd_seen = calloc((size_t)L, 1);
    if (!st->plain || !st->abar || !st->fwd_seen) {
        ckpt_state_free(st);
        return remat_fail(REMAT_ENOMEM, "checkpoint state for %d stages: out of memory", L);
    }
    for (int k = 0; k <= L; k++)
        st->abar[k] = CKPT_NONE;
    st->plain[0] = 1;
    st->grad = L;
    st->mem = chain_act_bytes(chain, 0) + chain_act_bytes(chain, L);
    st->peak = st->mem;
    return REMAT_OK;
}

void ckpt_state_free(ckpt_state *st)
{
    free(st->plain);
    free(st->abar);
    free(st->fwd_seen);
    st->plain = NULL;
    st->abar = NULL;
    st->fwd_seen = NULL;
}

uint64_t ckpt_buf_bytes(const ckpt_state *st, ckpt_buf b, int option)
{
    if (b.kind == CKPT_BUF_ABAR)
        return chain_saved_bytes(st->chain, b.index - 1, option);
    return chain_act_bytes(st->chain, b.index);
}

static int state_a_live(const ckpt_state *st, int k)
{
    return st->plain[k] || st->abar[k] != CKPT_NONE;
}

static void state_free_buf(ckpt_state *st, ckpt_effect *eff, int kind, int index, uint64_t bytes)
{
    eff->frees[eff->n_free++] = (ckpt_buf){kind, index};
    st->mem -= bytes;
}

/* Runs the op's transient memory (output + workspace) through the peak and adds its time. */
static void state_account(ckpt_state *st, const ckpt_effect *eff, double time)
{
    uint64_t during = st->mem + eff->out_bytes + eff->tmp_bytes;
    if (during > st->peak)
        st->peak = during;
    st->time += time;
    if (eff->keep_out)
        st->mem += eff->out_bytes;
}

static int state_forward(ckpt_state *st, const remat_op *op, ckpt_effect *eff, char *why, size_t n)
{
    const remat_chain *c = st->chain;
    int i = op->stage;
    if (!state_a_live(st, i)) {
        snprintf(why, n, "%s %d needs a_%d, which is not live",
                 op->kind == REMAT_OP_F_ALL  ? "F_all"
                 : op->kind == REMAT_OP_F_CK ? "F_ck"
                                             : "F_n",
                 i, i);
        return -1;
    }
    eff->in_abar = !st->plain[i];
    eff->tmp_bytes = chain_fwd_tmp_bytes(c, i, -2);
    if (op->kind == REMAT_OP_F_ALL) {
        int o = op->option;
        if (o < -1 || o >= c->stages[i].n_options) {
            snprintf(why, n, "F_all %d: stage %d has no option %d", i, i, o);
            return -1;
        }
        eff->option = o;
        eff->tmp_bytes = chain_fwd_tmp_bytes(c, i, o);
        eff->out = (ckpt_buf){CKPT_BUF_ABAR, i + 1};
        eff->out_bytes = chain_saved_bytes(c, i, o);
        eff->keep_out = st->abar[i + 1] == CKPT_NONE;
    } else {
        eff->option = -2;
        eff->out = (ckpt_buf){CKPT_BUF_A, i + 1};
        eff->out_bytes = chain_act_bytes(c, i + 1);
        eff->keep_out = !state_a_live(st, i + 1);
    }
    eff->first_forward = !st->fwd_seen[i];
    st->fwd_seen[i] = 1;
    state_account(st, eff, c->stages[i].fwd);
    if (op->kind == REMAT_OP_F_ALL && eff->keep_out) {
        st->abar[i + 1] = op->option;
        if (st->plain[i + 1]) { /* a_{i+1} now lives inside ā_{i+1} */
            st->plain[i + 1] = 0;
            state_free_buf(st, eff, CKPT_BUF_A, i + 1, chain_act_bytes(c, i + 1));
        }
    } else if (op->kind != REMAT_OP_F_ALL && eff->keep_out) {
        st->plain[i + 1] = 1;
    }
    if (op->kind == REMAT_OP_F_N && st->plain[i]) {
        st->plain[i] = 0;
        state_free_buf(st, eff, CKPT_BUF_A, i, chain_act_bytes(c, i));
    }
    return 0;
}

static int state_backward(ckpt_state *st, const remat_op *op, ckpt_effect *eff, char *why, size_t n)
{
    const remat_chain *c = st->chain;
    int i = op->stage;
    if (st->grad != i + 1) {
        snprintf(why, n, "B %d needs d_%d, but the live gradient is d_%d", i, i + 1, st->grad);
        return -1;
    }
    if (st->abar[i + 1] == CKPT_NONE) {
        snprintf(why, n, "B %d needs the stored state of F_all %d, which is not live", i, i);
        return -1;
    }
    if (!state_a_live(st, i)) {
        snprintf(why, n, "B %d needs a_%d, which is not live", i, i);
        return -1;
    }
    int o = st->abar[i + 1];
    eff->option = o;
    eff->in_abar = !st->plain[i];
    eff->out = (ckpt_buf){CKPT_BUF_D, i};
    eff->out_bytes = chain_grad_bytes(c, i);
    eff->tmp_bytes = chain_bwd_tmp_bytes(c, i, o);
    eff->keep_out = 1;
    state_account(st, eff, chain_bwd_time(c, i, o));
    st->abar[i + 1] = CKPT_NONE;
    state_free_buf(st, eff, CKPT_BUF_ABAR, i + 1, chain_saved_bytes(c, i, o));
    state_free_buf(st, eff, CKPT_BUF_D, i + 1, chain_act_bytes(c, i + 1));
    if (st->plain[i]) {
        st->plain[i] = 0;
        state_free_buf(st, eff, CKPT_BUF_A, i, chain_act_bytes(c, i));
    }
    st->grad = i;
    st->done = i == 0;
    return 0;
}

int ckpt_state_apply(ckpt_state *st, const remat_op *op, ckpt_effect *eff, char *why, size_t n)
{
    memset(eff, 0, sizeof *eff);
    if (st->done) {
        snprintf(why, n, "op after B 0: the schedule is already complete");
        return -1;
    }
    if (op->stage < 0 || op->stage >= st->chain->n_stages) {
        snprintf(why, n, "stage %d is out of range [0, %d)", op->stage, st->chain->n_stages);
        return -1;
    }
    switch (op->kind) {
    case REMAT_OP_F_CK:
    case REMAT_OP_F_N:
    case REMAT_OP_F_ALL: return state_forward(st, op, eff, why, n);
    case REMAT_OP_B: return state_backward(st, op, eff, why, n);
    }
    snprintf(why, n, "unknown op kind %d", (int)op->kind);
    return -1;
}

/* ==== simulator ============================================================================= */

remat_status remat_simulate(const remat_chain *chain, const remat_op *ops, size_t n_ops,
                            remat_sim_result *out)
{
    if (!out || (!ops && n_ops > 0))
        return remat_fail(REMAT_EINVAL, "remat_simulate: out and ops must not be NULL");
    REMAT_TRY(chain_validate(chain));
    memset(out, 0, sizeof *out);
    ckpt_state st;
    REMAT_TRY(ckpt_state_init(&st, chain));
    out->valid = 1;
    for (size_t k = 0; k < n_ops; k++) {
        ckpt_effect eff;
        if (ckpt_state_apply(&st, &ops[k], &eff, out->why, sizeof out->why) != 0) {
            out->valid = 0;
            out->bad_op = k;
            break;
        }
    }
    if (out->valid && !st.done) {
        out->valid = 0;
        out->bad_op = n_ops;
        snprintf(out->why, sizeof out->why, "the schedule ends before B 0");
    }
    out->peak_bytes = st.peak;
    out->time = st.time;
    ckpt_state_free(&st);
    return REMAT_OK;
}

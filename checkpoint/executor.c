/* checkpoint/executor.c: remat_run: drives a trainer's callbacks through a schedule, allocating
 * every activation, gradient and workspace in the simulator's exact order: from the pool, or, with
 * a planned layout, at the planned offsets of one arena block (the n-th buffer the run asks for is
 * the layout's n-th buffer: both walk the same state machine). */
#include "alloc/pool.h"
#include "checkpoint/checkpoint.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_TAG "act"

typedef struct {
    const remat_chain *chain;
    remat_pool *pool;
    remat_stream stream;
    const remat_callbacks *cb;
    void *ctx;
    void **a, **abar, **d;            /* [L+1] each: live buffers by kind and index */
    const remat_schedule_layout *lay; /* NULL: every buffer from the pool */
    char *arena;                      /* lay's arena block */
    size_t next;                      /* the layout's next buffer */
    void *output;                     /* host memory for a_L (remat_run_output), or NULL */
    size_t output_bytes;
    int output_done; /* a_L was copied out */
} exec_run;

remat_status remat_callback_fail(remat_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    remat_status r = remat_failv(s, fmt, ap);
    va_end(ap);
    return r;
}

/* Names the callback that failed in the run's message: its own (set with remat_callback_fail,
 * or by any library call it made) is kept after "remat_run: <what> of stage i: "; a callback that
 * set none gets one saying so, never a stale message from an earlier call. */
static remat_status exec_called(remat_status s, const char *what, int stage)
{
    if (s == REMAT_OK)
        return REMAT_OK;
    if (remat_last_error()[0] == '\0')
        return remat_fail(s, "remat_run: the %s callback of stage %d failed (%s) without a message",
                          what, stage, remat_strerror(s));
    return remat_fail_context(s, "remat_run: %s callback of stage %d", what, stage);
}

static void **exec_slot(exec_run *r, ckpt_buf b)
{
    return b.kind == CKPT_BUF_A      ? &r->a[b.index]
           : b.kind == CKPT_BUF_ABAR ? &r->abar[b.index]
                                     : &r->d[b.index];
}

/* The layout's next buffer, born at op `op` (SIZE_MAX: before the first op). */
static remat_status exec_planned(exec_run *r, uint64_t bytes, size_t op, void **out)
{
    const remat_layout_buffer *b = r->next < r->lay->n_buffers ? &r->lay->buffers[r->next] : NULL;
    uint64_t first = op == SIZE_MAX ? 0 : op;
    if (!b || b->bytes != bytes || b->first != first)
        return remat_fail(REMAT_EINTERNAL,
                          "remat_run: allocation %zu (%llu bytes at op %llu) is not the layout's",
                          r->next, (unsigned long long)bytes, (unsigned long long)first);
    *out = r->arena + r->lay->offsets[r->next++];
    return REMAT_OK;
}

/* Allocates `bytes` (NULL for 0) from the pool or the arena, for op `op`. */
static remat_status exec_alloc(exec_run *r, uint64_t bytes, size_t op, void **out)
{
    *out = NULL;
    if (bytes == 0)
        return REMAT_OK;
    if (r->lay)
        return exec_planned(r, bytes, op, out);
    *out = remat_alloc_tagged(r->pool, (size_t)bytes, r->stream, EXEC_TAG);
    if (!*out)
        return remat_fail_context(REMAT_ENOMEM, "remat_run: %llu bytes", (unsigned long long)bytes);
    return REMAT_OK;
}

static void exec_release(exec_run *r, void **p)
{
    if (*p && !r->lay)
        remat_free(r->pool, *p);
    *p = NULL;
}

/* The buffer holding a_i: the plain one, else the first bytes of the stored ā_i. */
static void *exec_input(exec_run *r, int i, const ckpt_effect *eff)
{
    return eff->in_abar ? r->abar[i] : r->a[i];
}

static remat_status exec_compute(exec_run *r, const remat_op *op, const ckpt_effect *eff, void *out,
                                 void *tmp)
{
    int i = op->stage;
    const remat_callbacks *cb = r->cb;
    if (op->kind != REMAT_OP_B) {
        if (eff->first_forward && cb->save_rng)
            cb->save_rng(r->ctx, i);
        else if (!eff->first_forward && cb->restore_rng)
            cb->restore_rng(r->ctx, i);
        int option = op->kind == REMAT_OP_F_ALL ? eff->option : REMAT_OPTION_NO_GRAD;
        remat_clear_error();
        return exec_called(cb->forward(r->ctx, i, option, exec_input(r, i, eff), out, tmp),
                           "forward", i);
    }
    remat_clear_error();
    if (cb->zero && eff->out_bytes > 0)
        REMAT_TRY(exec_called(cb->zero(r->ctx, out, (size_t)eff->out_bytes), "zero", i));
    return exec_called(cb->backward(r->ctx, i, eff->option, exec_input(r, i, eff), r->abar[i + 1],
                                    r->d[i + 1], out, tmp),
                       "backward", i);
}

/* Copies a_L (the first out_bytes of the output of the last stage's first forward) to the
 * caller's host memory, once: recomputations give the same bytes. */
static remat_status exec_output(exec_run *r, const remat_op *op, const void *out)
{
    int L = r->chain->n_stages;
    if (!r->output || r->output_done || op->kind == REMAT_OP_B || op->stage != L - 1)
        return REMAT_OK;
    r->output_done = 1;
    if (r->output_bytes == 0)
        return REMAT_OK;
    remat_status s =
        remat_device_copy(r->pool->dev, r->output, out, r->output_bytes, REMAT_COPY_DEVICE_TO_HOST);
    return s == REMAT_OK ? s : remat_fail_context(s, "remat_run: copying out a_%d", L);
}

/* Performs one op exactly as ckpt_state_apply accounted it. */
static remat_status exec_op(exec_run *r, size_t k, const remat_op *op, const ckpt_effect *eff)
{
    void *out = NULL, *tmp = NULL;
    remat_status s = exec_alloc(r, eff->out_bytes, k, &out);
    if (s == REMAT_OK)
        s = exec_alloc(r, eff->tmp_bytes, k, &tmp);
    if (s == REMAT_OK)
        s = exec_compute(r, op, eff, out, tmp);
    if (s == REMAT_OK)
        s = exec_output(r, op, out);
    exec_release(r, &tmp);
    if (s != REMAT_OK || !eff->keep_out) /* failed, or recomputed an output already live */
        exec_release(r, &out);
    if (s != REMAT_OK)
        return s;
    for (int k = 0; k < eff->n_free; k++)
        exec_release(r, exec_slot(r, eff->frees[k]));
    if (eff->keep_out)
        *exec_slot(r, eff->out) = out;
    return REMAT_OK;
}

/* Allocates a_0 and d_L and lets the trainer fill them. */
static remat_status exec_start(exec_run *r)
{
    int L = r->chain->n_stages;
    REMAT_TRY(exec_alloc(r, chain_act_bytes(r->chain, 0), SIZE_MAX, &r->a[0]));
    REMAT_TRY(exec_alloc(r, chain_act_bytes(r->chain, L), SIZE_MAX, &r->d[L]));
    remat_clear_error();
    REMAT_TRY(exec_called(r->cb->input(r->ctx, r->a[0]), "input", 0));
    if (r->cb->seed)
        return exec_called(r->cb->seed(r->ctx, r->d[L]), "seed", L - 1);
    uint64_t bytes = chain_act_bytes(r->chain, L);
    return bytes ? exec_called(r->cb->zero(r->ctx, r->d[L], (size_t)bytes), "zero", L - 1)
                 : REMAT_OK;
}

static remat_status exec_steps(exec_run *r, const remat_schedule *sched, ckpt_state *st)
{
    REMAT_TRY(exec_start(r));
    for (size_t k = 0; k < sched->n_ops; k++) {
        ckpt_effect eff;
        char why[160];
        if (ckpt_state_apply(st, &sched->ops[k], &eff, why, sizeof why) != 0)
            return remat_fail(REMAT_EINVAL, "remat_run: op %zu is invalid: %s", k, why);
        REMAT_TRY(exec_op(r, k, &sched->ops[k], &eff));
    }
    if (!st->done)
        return remat_fail(REMAT_EINVAL, "remat_run: the schedule ends before B 0");
    return REMAT_OK;
}

static remat_status exec_check(const remat_schedule *sched, const remat_chain *chain,
                               remat_pool *pool, const remat_callbacks *cb)
{
    if (!sched || !pool || !cb)
        return remat_fail(REMAT_EINVAL, "remat_run: sched, pool and cb must not be NULL");
    if (!cb->forward || !cb->backward || !cb->input)
        return remat_fail(REMAT_EINVAL, "remat_run: forward, backward and input callbacks are "
                                        "required");
    if (!cb->seed && !cb->zero)
        return remat_fail(REMAT_EINVAL, "remat_run: without a seed callback the zero callback is "
                                        "required to clear d_L");
    if (!sched->ops && sched->n_ops)
        return remat_fail(REMAT_EINVAL, "remat_run: the schedule has no ops");
    return chain_validate(chain);
}

/* Uses sched's layout if it was planned for these ops and sizes: takes its arena block. */
static remat_status exec_arena(exec_run *r, const remat_schedule *sched)
{
    const remat_schedule_layout *lay = sched->layout;
    if (!lay || lay->key != ckpt_layout_key(r->chain, sched->ops, sched->n_ops))
        return REMAT_OK;
    if (lay->arena_bytes > 0) {
        r->arena = remat_alloc_tagged(r->pool, (size_t)lay->arena_bytes, r->stream, EXEC_TAG);
        if (!r->arena)
            return remat_fail_context(REMAT_ENOMEM, "remat_run: the planned arena of %llu bytes",
                                      (unsigned long long)lay->arena_bytes);
    }
    r->lay = lay;
    return REMAT_OK;
}

remat_status remat_run(const remat_schedule *sched, const remat_chain *chain, remat_pool *pool,
                       remat_stream stream, const remat_callbacks *cb, void *ctx)
{
    return remat_run_output(sched, chain, pool, stream, cb, ctx, NULL, 0);
}

remat_status remat_run_output(const remat_schedule *sched, const remat_chain *chain,
                              remat_pool *pool, remat_stream stream, const remat_callbacks *cb,
                              void *ctx, void *output, size_t output_bytes)
{
    REMAT_TRY(exec_check(sched, chain, pool, cb));
    uint64_t last = chain_act_bytes(chain, chain->n_stages);
    if (output && output_bytes > last)
        return remat_fail(REMAT_EINVAL,
                          "remat_run_output: output_bytes %zu is above the last stage's "
                          "out_bytes %llu",
                          output_bytes, (unsigned long long)last);
    size_t n = (size_t)chain->n_stages + 1;
    exec_run r = {.chain = chain,
                  .pool = pool,
                  .stream = stream,
                  .cb = cb,
                  .ctx = ctx,
                  .output = output,
                  .output_bytes = output_bytes,
                  .a = calloc(n, sizeof(void *)),
                  .abar = calloc(n, sizeof(void *)),
                  .d = calloc(n, sizeof(void *))};
    ckpt_state st;
    remat_status s = r.a && r.abar && r.d ? ckpt_state_init(&st, chain)
                                          : remat_fail(REMAT_ENOMEM, "remat_run: out of memory");
    if (s == REMAT_OK) {
        s = exec_arena(&r, sched);
        if (s == REMAT_OK)
            s = exec_steps(&r, sched, &st);
        ckpt_state_free(&st);
    }
    for (size_t k = 0; r.a && r.abar && r.d && k < n; k++) {
        exec_release(&r, &r.a[k]);
        exec_release(&r, &r.abar[k]);
        exec_release(&r, &r.d[k]);
    }
    if (r.arena)
        remat_free(pool, r.arena);
    free(r.a);
    free(r.abar);
    free(r.d);
    return s;
}

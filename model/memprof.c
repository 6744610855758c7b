/* model/memprof.c: per-stage memory profile of the training step: wraps the model's callbacks to
 * record, for every stage and pass, its calls, time, the bytes the executor handed it and the
 * bytes live under each pool tag while it ran. */
#include "core/core.h"
#include "model/stages.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gpt_memprof {
    gpt_model *m;
    int n_rows;            /* 2 * stages: [2i] forward of stage i, [2i+1] backward */
    gpt_memprof_row *rows; /* names and per-tag peaks filled as calls come */
    char tags[GPT_MEMPROF_TAGS][64];
    int n_tags;
    remat_status error; /* the first failure of a pool query inside a callback */
    remat_chain *chain; /* the model's byte counts, for buffers inside a planned arena */
};

static double memprof_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Bytes of the pool block behind ptr; a buffer inside a planned arena (not a block of its own)
 * counts its chain size `bytes`, rounded as the pool rounds. */
static uint64_t memprof_block(const gpt_memprof *p, const void *ptr, uint64_t bytes)
{
    size_t block = 0;
    if (!ptr)
        return 0;
    if (remat_pool_block_size(p->m->pool, ptr, &block) != REMAT_OK)
        return (bytes + 511) / 512 * 512;
    return block;
}

/* Raises the row's per-tag peaks to what the pool holds now. */
static void memprof_sample(gpt_memprof *p, gpt_memprof_row *row)
{
    size_t n = remat_pool_tag_count(p->m->pool);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        remat_stat st;
        if (remat_pool_tag_at(p->m->pool, i, name, sizeof name, &st) != REMAT_OK) {
            if (p->error == REMAT_OK)
                p->error = REMAT_EINTERNAL;
            return;
        }
        int t = 0;
        while (t < p->n_tags && strcmp(p->tags[t], name) != 0)
            t++;
        if (t == p->n_tags) {
            if (t == GPT_MEMPROF_TAGS)
                continue; /* more tags than columns: counted in total_peak only */
            snprintf(p->tags[t], sizeof p->tags[t], "%s", name);
            p->n_tags++;
        }
        if (st.current > row->tag_peak[t])
            row->tag_peak[t] = st.current;
    }
    remat_pool_stats ps;
    if (remat_pool_stats_get(p->m->pool, &ps) == REMAT_OK && ps.requested.current > row->total_peak)
        row->total_peak = ps.requested.current;
}

static gpt_memprof_row *memprof_row(gpt_memprof *p, int stage, int backward)
{
    return &p->rows[2 * stage + backward];
}

static remat_status memprof_forward(void *ctx, int stage, int option, const void *in, void *out,
                                    void *tmp)
{
    gpt_memprof *p = ctx;
    if (stage < 0 || 2 * stage >= p->n_rows)
        return gpt_callbacks.forward(p->m, stage, option, in, out, tmp);
    gpt_memprof_row *row = memprof_row(p, stage, 0);
    row->calls++;
    const remat_stage *st = &p->chain->stages[stage];
    uint64_t out_bytes = option == -2 ? st->out_bytes
                         : option < 0 ? st->saved_bytes
                                      : st->options[option].saved_bytes;
    row->alloc_bytes += memprof_block(p, out, out_bytes) + memprof_block(p, tmp, st->fwd_tmp_bytes);
    memprof_sample(p, row);
    double t0 = memprof_now_ms();
    remat_status s = gpt_callbacks.forward(p->m, stage, option, in, out, tmp);
    row->ms += memprof_now_ms() - t0;
    return s;
}

static remat_status memprof_backward(void *ctx, int stage, int option, const void *in,
                                     const void *saved, const void *dout, void *din, void *tmp)
{
    gpt_memprof *p = ctx;
    if (stage < 0 || 2 * stage >= p->n_rows)
        return gpt_callbacks.backward(p->m, stage, option, in, saved, dout, din, tmp);
    gpt_memprof_row *row = memprof_row(p, stage, 1);
    row->calls++;
    const remat_stage *st = &p->chain->stages[stage];
    uint64_t din_bytes = stage == 0 ? p->chain->input_bytes : p->chain->stages[stage - 1].out_bytes;
    row->alloc_bytes += memprof_block(p, din, din_bytes) + memprof_block(p, tmp, st->bwd_tmp_bytes);
    memprof_sample(p, row);
    double t0 = memprof_now_ms();
    remat_status s = gpt_callbacks.backward(p->m, stage, option, in, saved, dout, din, tmp);
    row->ms += memprof_now_ms() - t0;
    return s;
}

static remat_status memprof_input(void *ctx, void *a0)
{
    gpt_memprof *p = ctx;
    return gpt_callbacks.input(p->m, a0);
}

static remat_status memprof_seed(void *ctx, void *d_last)
{
    gpt_memprof *p = ctx;
    return gpt_callbacks.seed(p->m, d_last);
}

static void memprof_save_rng(void *ctx, int stage)
{
    gpt_memprof *p = ctx;
    gpt_callbacks.save_rng(p->m, stage);
}

static void memprof_restore_rng(void *ctx, int stage)
{
    gpt_memprof *p = ctx;
    gpt_callbacks.restore_rng(p->m, stage);
}

static remat_status memprof_zero(void *ctx, void *ptr, size_t bytes)
{
    gpt_memprof *p = ctx;
    return gpt_callbacks.zero(p->m, ptr, bytes);
}

/* The model's callbacks with ctx = the profile; optional ones stay absent where the model's are. */
remat_callbacks gpt_memprof_callbacks(void)
{
    return (remat_callbacks){
        .forward = memprof_forward,
        .backward = memprof_backward,
        .input = memprof_input,
        .seed = gpt_callbacks.seed ? memprof_seed : NULL,
        .save_rng = gpt_callbacks.save_rng ? memprof_save_rng : NULL,
        .restore_rng = gpt_callbacks.restore_rng ? memprof_restore_rng : NULL,
        .zero = gpt_callbacks.zero ? memprof_zero : NULL,
    };
}

/* Stage names as the chain gives them: embed, block0.., head. */
static void memprof_name(const gpt_model *m, int stage, char *buf, size_t n)
{
    if (stage == 0)
        snprintf(buf, n, "embed");
    else if (stage <= m->cfg.layers)
        snprintf(buf, n, "block%d", stage - 1);
    else
        snprintf(buf, n, "head");
}

remat_status gpt_memprof_attach(gpt_model *m, gpt_memprof **out)
{
    if (!m || !out)
        return remat_fail(REMAT_EINVAL, "gpt_memprof_attach: arguments must not be NULL");
    gpt_memprof *p = calloc(1, sizeof *p);
    int stages = m->cfg.layers + 2;
    if (p)
        p->rows = calloc((size_t)stages * 2, sizeof *p->rows);
    if (!p || !p->rows) {
        free(p);
        return remat_fail(REMAT_ENOMEM, "cannot allocate the memory profile");
    }
    remat_status s = gpt_model_chain(m, &p->chain);
    if (s != REMAT_OK) {
        free(p->rows);
        free(p);
        return s;
    }
    p->m = m;
    p->n_rows = 2 * stages;
    for (int i = 0; i < p->n_rows; i++) {
        memprof_name(m, i / 2, p->rows[i].stage, sizeof p->rows[i].stage);
        p->rows[i].backward = i % 2;
    }
    m->memprof = p;
    *out = p;
    return REMAT_OK;
}

void gpt_memprof_detach(gpt_memprof *p)
{
    if (!p)
        return;
    if (p->m && p->m->memprof == p)
        p->m->memprof = NULL;
    remat_chain_free(p->chain);
    free(p->rows);
    free(p);
}

int gpt_memprof_rows(const gpt_memprof *p, const gpt_memprof_row **rows)
{
    *rows = p->rows;
    return p->n_rows;
}

int gpt_memprof_tags(const gpt_memprof *p, const char **names)
{
    for (int t = 0; t < p->n_tags; t++)
        names[t] = p->tags[t];
    return p->n_tags;
}

remat_status gpt_memprof_status(const gpt_memprof *p)
{
    return p->error == REMAT_OK
               ? REMAT_OK
               : remat_fail(p->error, "the memory profile could not read the pool's tags");
}

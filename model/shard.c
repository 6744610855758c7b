/* model/shard.c: ZeRO-2/3's units: which parameters each holds, where a rank keeps its chunk of
 * them, the gathers of a unit's parameters for a stage and the reduce-scatter of its gradients
 * after the stage's backward (model/stages.h says how the buffers are laid out). */
#include "core/core.h"
#include "model/rig.h"
#include "model/stages.h"

#include <string.h>

static size_t ceil_div(size_t a, size_t b)
{
    return (a + b - 1) / b;
}

/* Unit u's tensors are first..last of llm.c's order, of layer *layer (0 outside the blocks). */
static void gpt_unit_range(const gpt_model *m, int u, int *first, int *last, int *layer)
{
    int L = m->cfg.layers;
    *layer = u >= 1 && u <= L ? u - 1 : 0;
    if (u == 0)
        *first = GPT_WTE, *last = GPT_WPE;
    else if (u <= L)
        *first = GPT_LN1W, *last = GPT_FCPROJB;
    else
        *first = GPT_LNFW, *last = GPT_LNFB;
}

/* Elements of tensor t in one unit: a layer's share for the block tensors. */
static size_t gpt_tensor_len(const gpt_model *m, int t)
{
    int per_layer = t >= GPT_LN1W && t <= GPT_FCPROJB;
    return per_layer ? m->lay.count[t] / (size_t)m->cfg.layers : m->lay.count[t];
}

/* Which of the three unit sizes unit u has: 0 embeddings, 1 block, 2 final LayerNorm. */
static int gpt_unit_kind(const gpt_model *m, int u)
{
    return u == 0 ? 0 : u <= m->cfg.layers ? 1 : 2;
}

void gpt_units_layout(gpt_model *m)
{
    size_t n = (size_t)m->ranks, L = (size_t)m->cfg.layers;
    for (int k = 0; k < 3; k++) {
        int first, last, layer;
        gpt_unit_range(m, k == 0 ? 0 : k == 1 ? 1 : m->cfg.layers + 1, &first, &last, &layer);
        m->unit_elems[k] = 0;
        for (int t = first; t <= last; t++)
            m->unit_elems[k] += gpt_tensor_len(m, t);
        m->unit_chunk[k] = ceil_div(m->unit_elems[k], n);
    }
    if (m->zero >= 2) {
        m->states = m->unit_chunk[0] + L * m->unit_chunk[1] + m->unit_chunk[2];
        m->shard = m->states;
        m->padded = n * m->states;
        m->param_elems = m->zero >= 3 ? m->states : m->padded;
        m->grad_elems = m->states;
        return;
    }
    m->shard = ceil_div(m->lay.total, n);
    m->padded = m->zero >= 1 ? m->shard * n : m->lay.total; /* ZeRO-0 shards nothing */
    m->states = m->zero >= 1 ? m->shard : m->lay.total;
    m->param_elems = m->grad_elems = m->padded;
}

int gpt_unit_count(const gpt_model *m)
{
    return m->cfg.layers + 2;
}

size_t gpt_unit_chunk(const gpt_model *m, int u)
{
    return m->unit_chunk[gpt_unit_kind(m, u)];
}

size_t gpt_unit_shard_offset(const gpt_model *m, int u)
{
    int L = m->cfg.layers;
    if (u == 0)
        return 0;
    size_t blocks = (size_t)(u <= L ? u - 1 : L);
    return m->unit_chunk[0] + blocks * m->unit_chunk[1];
}

size_t gpt_unit_full_offset(const gpt_model *m, int u)
{
    return (size_t)m->ranks * gpt_unit_shard_offset(m, u);
}

void gpt_unit_tensors(const gpt_model *m, int u, void *buf, void *const *flat,
                      void *out[GPT_N_PARAMS])
{
    int first, last, layer;
    gpt_unit_range(m, u, &first, &last, &layer);
    size_t at = 0;
    for (int t = first; t <= last; t++) {
        size_t len = gpt_tensor_len(m, t);
        out[t] = m->zero >= 2 ? (char *)buf + at * m->elem
                              : (char *)flat[t] + (size_t)layer * len * m->elem;
        at += len;
    }
}

int gpt_collective(const gpt_model *m)
{
    return m->comm && (m->ranks > 1 || strcmp(remat_comm_backend(m->comm), "nccl") == 0);
}

static remat_comm_dtype gpt_comm_dtype(const gpt_model *m)
{
    return m->kb ? REMAT_COMM_BF16 : REMAT_COMM_F32;
}

/* Whether this call talks to the other ranks: not alone, and not while rank 0 profiles. */
static int gpt_talks(const gpt_model *m)
{
    return gpt_collective(m) && !m->local;
}

/* Elements of unit u padded (ranks * chunk). */
static size_t gpt_unit_padded(const gpt_model *m, int u)
{
    return (size_t)m->ranks * gpt_unit_chunk(m, u);
}

size_t gpt_units_work_elems(const gpt_model *m, size_t *held)
{
    *held = 0;
    if (m->zero < 2)
        return 0;
    size_t n = (size_t)m->ranks, o = n * m->unit_chunk[0], b = n * m->unit_chunk[1],
           f = n * m->unit_chunk[2];
    *held = o;
    size_t most = b > f ? b : f; /* ZeRO-2: one block's (or the norm's) gradients */
    if (m->zero >= 3) { /* the head's embeddings and norm, or a unit's weights and gradients */
        most = 2 * most;
        if (o + f > most)
            most = o + f;
    }
    return most;
}

/* Where unit u's gathered weights (grads 0) or gradients (grads 1) go in the work buffer:
 * the head gathers the embeddings at 0 and the norm after them; a block's or the norm's
 * backward keeps its gradients at 0 (ZeRO-2) or after a block's weights (ZeRO-3), except the
 * norm's gradients, at 0 while its weights sit after the embeddings' place. */
static void *gpt_unit_slot(const gpt_model *m, int u, int grads)
{
    size_t at = 0;
    int L = m->cfg.layers;
    if (!grads && u == L + 1)
        at = gpt_unit_padded(m, 0);
    else if (grads && u >= 1 && u <= L && m->zero >= 3)
        at = gpt_unit_padded(m, u);
    return (char *)m->work + at * m->elem;
}

remat_status gpt_unit_params_get(gpt_model *m, int u, void **buf)
{
    *buf = NULL;
    if (m->zero < 2)
        return REMAT_OK;
    if (m->zero == 2) {
        *buf = (char *)m->params + gpt_unit_full_offset(m, u) * m->elem;
        return REMAT_OK;
    }
    size_t chunk = gpt_unit_chunk(m, u), f = m->elem;
    void *b = gpt_unit_slot(m, u, 0);
    const void *mine = (const char *)m->params + gpt_unit_shard_offset(m, u) * f;
    m->gathers++;
    if (gpt_talks(m)) {
        REMAT_TRY(m->k->status(m->kc)); /* the gather reads the shard the update wrote */
        REMAT_TRY(remat_comm_allgather(m->comm, mine, b, chunk, gpt_comm_dtype(m)));
    } else { /* one rank: its chunk is the unit; profiling: the others' chunks zero */
        if (m->ranks > 1)
            m->k->zero(m->kc, b, (size_t)m->ranks * chunk * f);
        m->k->copy(m->kc, (char *)b + (size_t)m->rank * chunk * f, mine, chunk * f);
        REMAT_TRY(m->k->check(m->kc));
    }
    *buf = b;
    return REMAT_OK;
}

remat_status gpt_unit_grads_get(gpt_model *m, int u, void **buf)
{
    *buf = NULL;
    if (m->zero < 2)
        return REMAT_OK;
    void *b = u == 0 ? m->grad0 : gpt_unit_slot(m, u, 1);
    if (u != 0 || !m->grad0_live) {
        m->k->zero(m->kc, b, gpt_unit_padded(m, u) * m->elem);
        m->grad0_live |= u == 0;
    }
    *buf = b;
    return m->k->check(m->kc);
}

remat_status gpt_unit_grads_put(gpt_model *m, int u, void *buf, int reduce)
{
    if (m->zero < 2 || !buf || (u == 0 && !reduce))
        return REMAT_OK;
    size_t chunk = gpt_unit_chunk(m, u), f = m->elem;
    void *mine = (char *)buf + (size_t)m->rank * chunk * f; /* in place: NCCL's convention */
    if (u == 0)
        m->grad0_live = 0;
    if (gpt_talks(m)) {
        REMAT_TRY(m->k->status(m->kc)); /* the reduction reads what the backward wrote */
        REMAT_TRY(remat_comm_reduce_scatter(m->comm, buf, mine, chunk, gpt_comm_dtype(m)));
    }
    /* accumulated over the micro-steps of an update */
    void *acc = (char *)m->grads + gpt_unit_shard_offset(m, u) * f;
    if (m->kb)
        m->kb->residual_forward(m->kc, acc, acc, mine, chunk);
    else
        m->k->residual_forward(m->kc, acc, acc, mine, chunk);
    return m->k->check(m->kc);
}

void gpt_unit_drop(gpt_model *m)
{
    m->grad0_live = 0;
}

/* Calls f(ctx, unit offset, host offset, len) for every tensor of unit u. */
static void gpt_unit_each(const gpt_model *m, int u,
                          void (*f)(void *ctx, size_t at, size_t host_at, size_t len), void *ctx)
{
    int first, last, layer;
    gpt_unit_range(m, u, &first, &last, &layer);
    size_t at = 0;
    for (int t = first; t <= last; t++) {
        size_t len = gpt_tensor_len(m, t);
        f(ctx, at, m->lay.offset[t] + (size_t)layer * len, len);
        at += len;
    }
}

typedef struct {
    const float *src;
    float *dst;
    size_t lo, hi; /* the unit positions kept: [lo, hi) */
    size_t base;   /* dst index of unit position lo */
    int to_host;
} gpt_pack_ctx;

static void gpt_pack_piece(void *ctx, size_t at, size_t host_at, size_t len)
{
    gpt_pack_ctx *c = ctx;
    size_t a = at > c->lo ? at : c->lo, b = at + len < c->hi ? at + len : c->hi;
    for (size_t i = a; i < b; i++) {
        size_t h = host_at + (i - at), d = c->base + (i - c->lo);
        if (c->to_host)
            c->dst[h] = c->src[d];
        else
            c->dst[d] = c->src[h];
    }
}

void gpt_units_pack(const gpt_model *m, const float *host, float *out, int shard_only)
{
    memset(out, 0, (shard_only ? m->states : m->padded) * sizeof(float));
    for (int u = 0; u < gpt_unit_count(m); u++) {
        size_t chunk = gpt_unit_chunk(m, u);
        gpt_pack_ctx c = {.src = host, .dst = out};
        if (shard_only) {
            c.lo = (size_t)m->rank * chunk;
            c.hi = c.lo + chunk;
            c.base = gpt_unit_shard_offset(m, u);
        } else {
            c.lo = 0;
            c.hi = (size_t)m->ranks * chunk;
            c.base = gpt_unit_full_offset(m, u);
        }
        gpt_unit_each(m, u, gpt_pack_piece, &c);
    }
}

void gpt_units_unpack(const gpt_model *m, const float *padded, float *host)
{
    for (int u = 0; u < gpt_unit_count(m); u++) {
        gpt_pack_ctx c = {.src = padded,
                          .dst = host,
                          .lo = 0,
                          .hi = (size_t)m->ranks * gpt_unit_chunk(m, u),
                          .base = gpt_unit_full_offset(m, u),
                          .to_host = 1};
        gpt_unit_each(m, u, gpt_pack_piece, &c);
    }
}

/* Median ms of `reps` gathers of unit u (after one untimed). */
static remat_status gpt_gather_median(gpt_model *m, int u, int reps, double *ms)
{
    double t[16];
    void *b;
    REMAT_TRY(gpt_unit_params_get(m, u, &b));
    for (int r = 0; r < reps; r++) {
        double t0 = gpt_now_ms();
        REMAT_TRY(gpt_unit_params_get(m, u, &b));
        REMAT_TRY(m->k->status(m->kc));
        t[r] = gpt_now_ms() - t0;
    }
    *ms = gpt_median(t, (size_t)reps);
    return REMAT_OK;
}

remat_status gpt_model_time_gathers(gpt_model *m, double *embed_ms, double *block_ms)
{
    *embed_ms = *block_ms = 0;
    if (m->zero < 3 || !gpt_talks(m))
        return REMAT_OK;
    enum { REPS = 5 };
    uint64_t gathers = m->gathers; /* not a step's */
    double t[2] = {0, 0};
    remat_status s = gpt_gather_median(m, 0, REPS, &t[0]);
    if (s == REMAT_OK)
        s = gpt_gather_median(m, 1, REPS, &t[1]);
    m->gathers = gathers;
    if (s == REMAT_OK) /* rank 0's numbers on every rank: one chain, one schedule */
        s = remat_comm_broadcast(m->comm, t, 2, REMAT_COMM_F64, 0);
    if (s == REMAT_OK) {
        *embed_ms = t[0];
        *block_ms = t[1];
    }
    return s;
}

remat_status gpt_chain_add_gathers(remat_chain *ch, int layers, double embed_ms, double block_ms)
{
    if (!ch || ch->n_stages != layers + 2 || !(embed_ms >= 0) || !(block_ms >= 0))
        return remat_fail(REMAT_EINVAL, "gpt_chain_add_gathers: a chain of %d stages for %d "
                                        "layers, gathers of %g and %g ms",
                          ch ? ch->n_stages : 0, layers, embed_ms, block_ms);
    /* every forward gathers its unit(s): the embedding unit 0, a block its own, the head the
     * embeddings and the final norm (about the embeddings' time); a block's backward again */
    ch->stages[0].fwd += embed_ms;
    ch->stages[layers + 1].fwd += embed_ms;
    for (int l = 1; l <= layers; l++) {
        remat_stage *st = &ch->stages[l];
        st->fwd += block_ms;
        st->bwd += block_ms;
        for (int o = 0; o < st->n_options; o++)
            st->options[o].bwd += block_ms;
    }
    return REMAT_OK;
}

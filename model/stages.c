/* model/stages.c: the model's stages as remat callbacks: embedding, transformer blocks with their
 * save options, and the head (final LayerNorm, tied output matrix, softmax cross-entropy). */
#include "model/stages.h"
#include "core/core.h"

#include <string.h>

const char *const gpt_block_option_names[GPT_N_BLOCK_OPTIONS] = {
    "recompute-gelu", "recompute-gelu-ln", "recompute-attn", "recompute-attn-gelu-ln"};

/* ==== Layouts ============================================================================== */

/* core/gpt_layout.h numbers the options in the order of gpt.h's enum. */
_Static_assert((int)GPT_N_BLOCK_OPTIONS == (int)GPTL_N_BLOCK_OPTIONS &&
                   GPT_OPT_RECOMPUTE_GELU == 0 && GPT_OPT_RECOMPUTE_GELU_LN == 1 &&
                   GPT_OPT_RECOMPUTE_ATTN == 2 && GPT_OPT_RECOMPUTE_ATTN_GELU_LN == 3,
               "the block options of gpt.h and core/gpt_layout.h differ");

void gpt_stages_layout(gpt_model *m)
{
    gptl_dims d = {
        .B = (uint64_t)m->B,
        .T = (uint64_t)m->T,
        .C = (uint64_t)m->cfg.channels,
        .NH = (uint64_t)m->cfg.heads,
        .Vp = (uint64_t)m->cfg.padded_vocab,
        .elem = (unsigned)m->elem,
        .scratch = m->kb
                       ? m->kb->attention_scratch_bytes(m->B, m->T, m->cfg.channels, m->cfg.heads)
                       : m->k->attention_scratch_bytes(m->B, m->T, m->cfg.channels, m->cfg.heads)};
    gptl_layout l;
    gptl_compute(&d, &l);
    m->input_bytes = l.input;
    m->act_bytes = l.act;
    m->loss_bytes = l.loss;
    for (int i = 0; i <= GPT_N_BLOCK_OPTIONS; i++)
        m->saved[i] = l.saved[i];
    m->fwd_tmp = l.fwd;
    m->bwd_tmp = l.bwd;
    m->head_tmp = l.head_tmp;
    m->head_saved = l.head_saved;
}

/* A region of a stage buffer: a tensor of the model's element type, or (as float *) statistics. */
static void *gpt_at(const void *base, size_t off)
{
    return (char *)base + off;
}

/* ==== Kernels of the model's dtype ========================================================= */
/* Tensors are void *: float32 or bf16 as the model's dtype says (m->kb set: bf16); LayerNorm
 * statistics and losses are float32 in both. */

static void op_encoder_forward(const gpt_model *m, void *out, const int *inp, const void *wte,
                               const void *wpe)
{
    if (m->kb)
        m->kb->encoder_forward(m->kc, out, inp, wte, wpe, m->B, m->T, m->cfg.channels);
    else
        m->k->encoder_forward(m->kc, out, inp, wte, wpe, m->B, m->T, m->cfg.channels);
}

static void op_encoder_backward(const gpt_model *m, void *dwte, void *dwpe, const void *dout,
                                const int *inp)
{
    if (m->kb)
        m->kb->encoder_backward(m->kc, dwte, dwpe, dout, inp, m->B, m->T, m->cfg.channels);
    else
        m->k->encoder_backward(m->kc, dwte, dwpe, dout, inp, m->B, m->T, m->cfg.channels);
}

static void op_ln_forward(const gpt_model *m, void *out, float *mean, float *rstd, const void *inp,
                          const void *w, const void *b, int N, int C)
{
    if (m->kb)
        m->kb->layernorm_forward(m->kc, out, mean, rstd, inp, w, b, N, C);
    else
        m->k->layernorm_forward(m->kc, out, mean, rstd, inp, w, b, N, C);
}

static void op_ln_backward(const gpt_model *m, void *dinp, void *dw, void *db, const void *dout,
                           const void *inp, const void *w, const float *mean, const float *rstd,
                           int N, int C)
{
    if (m->kb)
        m->kb->layernorm_backward(m->kc, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    else
        m->k->layernorm_backward(m->kc, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

static void op_matmul_forward(const gpt_model *m, void *out, const void *inp, const void *w,
                              const void *bias, int N, int C, int OC)
{
    if (m->kb)
        m->kb->matmul_forward(m->kc, out, inp, w, bias, N, C, OC);
    else
        m->k->matmul_forward(m->kc, out, inp, w, bias, N, C, OC);
}

static void op_matmul_backward(const gpt_model *m, void *dinp, void *dw, void *db, const void *dout,
                               const void *inp, const void *w, int N, int C, int OC)
{
    if (m->kb)
        m->kb->matmul_backward(m->kc, dinp, dw, db, dout, inp, w, N, C, OC);
    else
        m->k->matmul_backward(m->kc, dinp, dw, db, dout, inp, w, N, C, OC);
}

static void op_attention_forward(const gpt_model *m, void *out, void *att, const void *qkv,
                                 void *scratch)
{
    int C = m->cfg.channels, NH = m->cfg.heads;
    if (m->kb)
        m->kb->attention_forward(m->kc, out, att, qkv, scratch, m->B, m->T, C, NH);
    else
        m->k->attention_forward(m->kc, out, att, qkv, scratch, m->B, m->T, C, NH);
}

static void op_attention_backward(const gpt_model *m, void *dqkv, const void *dout, const void *qkv,
                                  const void *att, void *scratch)
{
    int C = m->cfg.channels, NH = m->cfg.heads;
    if (m->kb)
        m->kb->attention_backward(m->kc, dqkv, dout, qkv, att, scratch, m->B, m->T, C, NH);
    else
        m->k->attention_backward(m->kc, dqkv, dout, qkv, att, scratch, m->B, m->T, C, NH);
}

static void op_gelu_forward(const gpt_model *m, void *out, const void *inp, size_t n)
{
    if (m->kb)
        m->kb->gelu_forward(m->kc, out, inp, n);
    else
        m->k->gelu_forward(m->kc, out, inp, n);
}

static void op_gelu_backward(const gpt_model *m, void *dinp, const void *inp, const void *dout,
                             size_t n)
{
    if (m->kb)
        m->kb->gelu_backward(m->kc, dinp, inp, dout, n);
    else
        m->k->gelu_backward(m->kc, dinp, inp, dout, n);
}

static void op_residual(const gpt_model *m, void *out, const void *a, const void *b, size_t n)
{
    if (m->kb)
        m->kb->residual_forward(m->kc, out, a, b, n);
    else
        m->k->residual_forward(m->kc, out, a, b, n);
}

static void op_softmax_xent(const gpt_model *m, float *losses, void *dlogits, const void *logits)
{
    int N = (int)m->N, V = m->cfg.vocab, Vp = m->cfg.padded_vocab;
    float dscale = 1.0f / (float)m->loss_rows;
    if (m->kb)
        m->kb->softmax_xent(m->kc, losses, dlogits, logits, m->targets, dscale, N, V, Vp);
    else
        m->k->softmax_xent(m->kc, losses, dlogits, logits, m->targets, dscale, N, V, Vp);
}

/* ==== Per-layer parameters ================================================================= */

typedef struct {
    const void *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
        *fcprojb;
} gpt_layer_params;

typedef struct {
    void *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
        *fcprojb;
} gpt_layer_grads;

/* A layer's tensors from the pointers gpt_unit_tensors gave for its unit. */
static gpt_layer_params gpt_layer_p(void *const *t)
{
    return (gpt_layer_params){t[GPT_LN1W],     t[GPT_LN1B],     t[GPT_QKVW], t[GPT_QKVB],
                              t[GPT_ATTPROJW], t[GPT_ATTPROJB], t[GPT_LN2W], t[GPT_LN2B],
                              t[GPT_FCW],      t[GPT_FCB],      t[GPT_FCPROJW], t[GPT_FCPROJB]};
}

static gpt_layer_grads gpt_layer_g(void *const *t)
{
    return (gpt_layer_grads){t[GPT_LN1W],     t[GPT_LN1B],     t[GPT_QKVW], t[GPT_QKVB],
                             t[GPT_ATTPROJW], t[GPT_ATTPROJB], t[GPT_LN2W], t[GPT_LN2B],
                             t[GPT_FCW],      t[GPT_FCB],      t[GPT_FCPROJW], t[GPT_FCPROJB]};
}

/* ==== Embedding ============================================================================ */

/* Every stage's parameters come from its unit (model/shard.c): unit 0 the embeddings, 1 + l
 * block l, L + 1 the final LayerNorm; under ZeRO-3 each use gathers them, under ZeRO-2/3 each
 * backward's gradients go to a unit buffer reduced when it ends. */

static remat_status gpt_embed_forward(gpt_model *m, const int *tokens, void *out)
{
    void *buf, *w[GPT_N_PARAMS];
    REMAT_TRY(gpt_unit_params_get(m, 0, &buf));
    gpt_unit_tensors(m, 0, buf, m->p, w);
    op_encoder_forward(m, out, tokens, w[GPT_WTE], w[GPT_WPE]);
    return REMAT_OK;
}

/* The embeddings' gradient buffer is unit 0's, which the head's forward-with-grad began. */
static remat_status gpt_embed_backward(gpt_model *m, const int *tokens, const void *dout)
{
    void *buf, *g[GPT_N_PARAMS];
    REMAT_TRY(gpt_unit_grads_get(m, 0, &buf));
    gpt_unit_tensors(m, 0, buf, m->g, g);
    op_encoder_backward(m, g[GPT_WTE], g[GPT_WPE], dout, tokens);
    return gpt_unit_grads_put(m, 0, buf, 1);
}

/* ==== Blocks =============================================================================== */

/* Forward of a block with weights w from x into out. saved = NULL: no grad (every intermediate
 * lives in tmp); else saved is ā laid out by s (out == saved) and what s omits goes to tmp. */
static void gpt_block_forward(gpt_model *m, gpt_layer_params w, const void *x, void *out,
                              void *saved, const gpt_block_saved *s, void *tmp)
{
    int N = (int)m->N, C = m->cfg.channels;
    const gpt_block_fwd_tmp *ft = &m->fwd_tmp;
    void *t1 = gpt_at(tmp, ft->t1), *t2 = gpt_at(tmp, ft->t2), *t3 = gpt_at(tmp, ft->t3),
         *t4 = gpt_at(tmp, ft->t4);
    void *scratch = gpt_at(tmp, ft->scratch);
    float *stats = saved ? gpt_at(saved, s->stats) : gpt_at(tmp, ft->stats);
    float *ln2stats = saved ? stats + 2 * m->N : stats;
    /* Where each intermediate goes: saved if the option keeps it, else workspace. */
    void *ln1 = saved && s->ln1 != GPT_ABSENT ? gpt_at(saved, s->ln1) : t1;
    void *qkv = saved ? gpt_at(saved, s->qkv) : t2;
    void *atty = saved && s->atty != GPT_ABSENT ? gpt_at(saved, s->atty) : t4;
    void *att = saved && s->att != GPT_ABSENT ? gpt_at(saved, s->att) : t3;
    void *res2 = saved ? gpt_at(saved, s->res2) : out;
    void *ln2 = saved && s->ln2 != GPT_ABSENT ? gpt_at(saved, s->ln2) : t4;
    void *fch = saved ? gpt_at(saved, s->fch) : t2;
    void *gelu = saved && s->gelu != GPT_ABSENT ? gpt_at(saved, s->gelu) : t3;

    op_ln_forward(m, ln1, stats, stats + m->N, x, w.ln1w, w.ln1b, N, C);
    op_matmul_forward(m, qkv, ln1, w.qkvw, w.qkvb, N, C, 3 * C);
    op_attention_forward(m, atty, att, qkv, scratch);
    op_matmul_forward(m, t1, atty, w.attprojw, w.attprojb, N, C, C);
    op_residual(m, res2, x, t1, m->N * C);
    op_ln_forward(m, ln2, ln2stats, ln2stats + m->N, res2, w.ln2w, w.ln2b, N, C);
    op_matmul_forward(m, fch, ln2, w.fcw, w.fcb, N, C, 4 * C);
    op_gelu_forward(m, gelu, fch, m->N * 4 * C);
    op_matmul_forward(m, t1, gelu, w.fcprojw, w.fcprojb, N, 4 * C, C);
    op_residual(m, out, res2, t1, m->N * C);
}

/* What the backward of one block works with: its weights and gradients, the saved tensors (or
 * NULL for those its save option recomputes) and the workspace regions g1..g4 (see stages.h). */
typedef struct {
    gpt_model *m;
    int N, C;
    size_t NC;
    gpt_layer_params w;
    gpt_layer_grads dw;
    const gpt_block_saved *s;
    const void *saved;
    const void *x, *qkv, *res2, *fch;
    const float *stats; /* ln1 mean, ln1 rstd, ln2 mean, ln2 rstd */
    void *g1, *g2, *g3, *g4;
    float *rs;
    void *scratch;
} gpt_block_bwd;

/* A saved tensor, or NULL when the option omits it. */
static const void *gpt_saved_at(const gpt_block_bwd *b, size_t off)
{
    return off == GPT_ABSENT ? NULL : gpt_at(b->saved, off);
}

/* MLP, out = res2 + fcproj(gelu(fc(ln2(res2)))): leaves dres2 (dout plus the LayerNorm's share)
 * in g3. */
static void gpt_block_backward_mlp(const gpt_block_bwd *b, const void *dout)
{
    gpt_model *m = b->m;
    const kern_table *k = m->k;
    kern_ctx *kc = m->kc;
    int N = b->N, C = b->C;
    size_t f = m->elem;
    const void *gelu = gpt_saved_at(b, b->s->gelu), *ln2 = gpt_saved_at(b, b->s->ln2);
    if (!gelu) {
        op_gelu_forward(m, b->g2, b->fch, 4 * b->NC);
        gelu = b->g2;
    }
    k->zero(kc, b->g1, 4 * b->NC * f);
    op_matmul_backward(m, b->g1, b->dw.fcprojw, b->dw.fcprojb, dout, gelu, b->w.fcprojw, N, 4 * C,
                       C);
    k->zero(kc, b->g2, 4 * b->NC * f);
    op_gelu_backward(m, b->g2, b->fch, b->g1, 4 * b->NC);
    if (!ln2) {
        op_ln_forward(m, b->g3, b->rs, b->rs + m->N, b->res2, b->w.ln2w, b->w.ln2b, N, C);
        ln2 = b->g3;
    }
    k->zero(kc, b->g4, b->NC * f);
    op_matmul_backward(m, b->g4, b->dw.fcw, b->dw.fcb, b->g2, ln2, b->w.fcw, N, C, 4 * C);
    k->copy(kc, b->g3, dout, b->NC * f);
    op_ln_backward(m, b->g3, b->dw.ln2w, b->dw.ln2b, b->g4, b->res2, b->w.ln2w, b->stats + 2 * m->N,
                   b->stats + 3 * m->N, N, C);
}

/* Attention, res2 = x + attproj(attention(qkv(ln1(x)))), from dres2 in g3: din = dres2 plus the
 * branch's share. */
static void gpt_block_backward_attention(const gpt_block_bwd *b, void *din)
{
    gpt_model *m = b->m;
    const kern_table *k = m->k;
    kern_ctx *kc = m->kc;
    int N = b->N, C = b->C;
    size_t f = m->elem;
    k->copy(kc, din, b->g3, b->NC * f);
    const void *atty = gpt_saved_at(b, b->s->atty), *att = gpt_saved_at(b, b->s->att),
               *ln1 = gpt_saved_at(b, b->s->ln1);
    if (!att) {
        op_attention_forward(m, b->g2, b->g1, b->qkv, b->scratch);
        atty = b->g2;
        att = b->g1;
    }
    k->zero(kc, b->g4, b->NC * f);
    op_matmul_backward(m, b->g4, b->dw.attprojw, b->dw.attprojb, b->g3, atty, b->w.attprojw, N, C,
                       C);
    k->zero(kc, b->g2, 3 * b->NC * f);
    op_attention_backward(m, b->g2, b->g4, b->qkv, att, b->scratch);
    if (!ln1) {
        op_ln_forward(m, b->g3, b->rs, b->rs + m->N, b->x, b->w.ln1w, b->w.ln1b, N, C);
        ln1 = b->g3;
    }
    k->zero(kc, b->g1, b->NC * f);
    op_matmul_backward(m, b->g1, b->dw.qkvw, b->dw.qkvb, b->g2, ln1, b->w.qkvw, N, C, 3 * C);
    op_ln_backward(m, din, b->dw.ln1w, b->dw.ln1b, b->g1, b->x, b->w.ln1w, b->stats,
                   b->stats + m->N, N, C);
}

/* Backward of a block with weights w, gradients dw: din (= dx) from x, ā (saved, laid out by s)
 * and dout; recomputes into the workspace whatever s omits, with the same kernels on the same
 * inputs, so the bits are equal. */
static void gpt_block_backward(gpt_model *m, gpt_layer_params w, gpt_layer_grads dw, const void *x,
                               const void *saved, const gpt_block_saved *s, const void *dout,
                               void *din, void *tmp)
{
    const gpt_block_bwd_tmp *bt = &m->bwd_tmp;
    gpt_block_bwd b = {.m = m,
                       .N = (int)m->N,
                       .C = m->cfg.channels,
                       .NC = m->N * m->cfg.channels,
                       .w = w,
                       .dw = dw,
                       .s = s,
                       .saved = saved,
                       .x = x,
                       .qkv = gpt_at(saved, s->qkv),
                       .res2 = gpt_at(saved, s->res2),
                       .fch = gpt_at(saved, s->fch),
                       .stats = gpt_at(saved, s->stats),
                       .g1 = gpt_at(tmp, bt->g1),
                       .g2 = gpt_at(tmp, bt->g2),
                       .g3 = gpt_at(tmp, bt->g3),
                       .g4 = gpt_at(tmp, bt->g4),
                       .rs = gpt_at(tmp, bt->stats),
                       .scratch = gpt_at(tmp, bt->scratch)};
    gpt_block_backward_mlp(&b, dout);
    gpt_block_backward_attention(&b, din);
}

/* ==== Head ================================================================================= */

/* Reads the losses back and sets m->loss to their mean (summed in order, in double). */
static remat_status gpt_head_record_loss(gpt_model *m, const float *losses)
{
    REMAT_TRY(m->k->status(m->kc));
    if (m->host_memory)
        memcpy(m->losses_host, losses, m->N * sizeof(float));
    else
        REMAT_TRY(remat_device_copy(m->dev, m->losses_host, losses, m->N * sizeof(float),
                                    REMAT_COPY_DEVICE_TO_HOST));
    double sum = 0;
    for (size_t i = 0; i < m->N; i++)
        sum += m->losses_host[i];
    m->loss = sum / (double)m->N;
    return REMAT_OK;
}

/* Forward of the head from x: losses into out. With saved (ā), also the gradient of the mean loss
 * w.r.t. the final LayerNorm's output (saved there) and the head's share of dwte, added once. */
static remat_status gpt_head_forward(gpt_model *m, const void *x, float *out, void *saved,
                                     void *tmp)
{
    int N = (int)m->N, C = m->cfg.channels, Vp = m->cfg.padded_vocab;
    void *lnf = gpt_at(tmp, m->head_tmp.lnf), *logits = gpt_at(tmp, m->head_tmp.logits);
    float *stats = saved ? gpt_at(saved, m->head_saved.stats) : gpt_at(tmp, m->head_tmp.stats);
    if (saved && m->head_grad_done)
        return remat_fail(REMAT_EINTERNAL,
                          "the head's forward-with-grad ran twice in one step (its weight gradient "
                          "would be added twice)");
    int L = m->cfg.layers;
    void *emb, *fin, *gemb = NULL, *w[GPT_N_PARAMS], *g[GPT_N_PARAMS];
    REMAT_TRY(gpt_unit_params_get(m, 0, &emb));
    REMAT_TRY(gpt_unit_params_get(m, L + 1, &fin));
    if (saved) /* unit 0's gradients, until the embedding's backward */
        REMAT_TRY(gpt_unit_grads_get(m, 0, &gemb));
    gpt_unit_tensors(m, 0, emb, m->p, w);
    gpt_unit_tensors(m, L + 1, fin, m->p, w);
    op_ln_forward(m, lnf, stats, stats + m->N, x, w[GPT_LNFW], w[GPT_LNFB], N, C);
    op_matmul_forward(m, logits, lnf, w[GPT_WTE], NULL, N, C, Vp);
    op_softmax_xent(m, out, saved ? logits : NULL, logits);
    if (saved) {
        void *dlnf = gpt_at(saved, m->head_saved.dlnf);
        gpt_unit_tensors(m, 0, gemb, m->g, g);
        m->k->zero(m->kc, dlnf, m->N * C * m->elem);
        op_matmul_backward(m, dlnf, g[GPT_WTE], NULL, logits, lnf, w[GPT_WTE], N, C, Vp);
        m->head_grad_done = 1;
    }
    return gpt_head_record_loss(m, out);
}

static remat_status gpt_head_backward(gpt_model *m, const void *x, const void *saved, void *din)
{
    int N = (int)m->N, C = m->cfg.channels, u = m->cfg.layers + 1;
    const float *stats = gpt_at(saved, m->head_saved.stats);
    void *fin, *gfin, *w[GPT_N_PARAMS], *g[GPT_N_PARAMS];
    REMAT_TRY(gpt_unit_params_get(m, u, &fin));
    REMAT_TRY(gpt_unit_grads_get(m, u, &gfin));
    gpt_unit_tensors(m, u, fin, m->p, w);
    gpt_unit_tensors(m, u, gfin, m->g, g);
    m->k->zero(m->kc, din, m->N * C * m->elem);
    op_ln_backward(m, din, g[GPT_LNFW], g[GPT_LNFB], gpt_at(saved, m->head_saved.dlnf), x,
                   w[GPT_LNFW], stats, stats + m->N, N, C);
    return gpt_unit_grads_put(m, u, gfin, 1);
}

/* A block's forward or backward with its unit's parameters (and gradients: backward). */
static remat_status gpt_block_stage(gpt_model *m, int stage, int option, const void *in,
                                    const void *saved, void *out, const void *dout, void *din,
                                    void *tmp)
{
    void *buf, *gbuf = NULL, *w[GPT_N_PARAMS], *g[GPT_N_PARAMS];
    const gpt_block_saved *s = &m->saved[option < 0 ? 0 : 1 + option];
    REMAT_TRY(gpt_unit_params_get(m, stage, &buf));
    gpt_unit_tensors(m, stage, buf, m->p, w);
    if (!dout) { /* forward: saved is out, or NULL (no grad) */
        gpt_block_forward(m, gpt_layer_p(w), in, out, (void *)saved, s, tmp);
        return REMAT_OK;
    }
    REMAT_TRY(gpt_unit_grads_get(m, stage, &gbuf));
    gpt_unit_tensors(m, stage, gbuf, m->g, g);
    gpt_block_backward(m, gpt_layer_p(w), gpt_layer_g(g), in, saved, s, dout, din, tmp);
    return gpt_unit_grads_put(m, stage, gbuf, 1);
}

/* ==== Callbacks ============================================================================ */

static remat_status gpt_check_option(const gpt_model *m, int stage, int option)
{
    int is_block = stage >= 1 && stage <= m->cfg.layers;
    if (option < -2 || option >= (is_block ? GPT_N_BLOCK_OPTIONS : 0))
        return remat_fail(REMAT_EINTERNAL, "stage %d has no save option %d", stage, option);
    return REMAT_OK;
}

static remat_status gpt_cb_forward(void *ctx, int stage, int option, const void *in, void *out,
                                   void *tmp)
{
    gpt_model *m = ctx;
    REMAT_TRY(gpt_check_option(m, stage, option));
    int L = m->cfg.layers;
    void *saved = option == -2 ? NULL : out;
    if (stage == 0)
        REMAT_TRY(gpt_embed_forward(m, in, out));
    else if (stage <= L)
        REMAT_TRY(gpt_block_stage(m, stage, option, in, saved, out, NULL, NULL, tmp));
    else if (stage == L + 1)
        return gpt_head_forward(m, in, out, saved, tmp);
    else
        return remat_fail(REMAT_EINTERNAL, "the model has no stage %d", stage);
    return m->k->check(m->kc); /* no wait: the step synchronises where it reads results */
}

static remat_status gpt_cb_backward(void *ctx, int stage, int option, const void *in,
                                    const void *saved, const void *dout, void *din, void *tmp)
{
    gpt_model *m = ctx;
    REMAT_TRY(gpt_check_option(m, stage, option));
    int L = m->cfg.layers;
    if (stage == 0) {
        m->k->zero(m->kc, din, m->input_bytes); /* tokens have no gradient */
        REMAT_TRY(gpt_embed_backward(m, in, dout));
    } else if (stage <= L)
        REMAT_TRY(gpt_block_stage(m, stage, option, in, saved, NULL, dout, din, tmp));
    else if (stage == L + 1)
        REMAT_TRY(gpt_head_backward(m, in, saved, din));
    else
        return remat_fail(REMAT_EINTERNAL, "the model has no stage %d", stage);
    return m->k->check(m->kc); /* no wait: the step synchronises where it reads results */
}

static remat_status gpt_cb_input(void *ctx, void *a0)
{
    gpt_model *m = ctx;
    size_t bytes = m->N * sizeof(int);
    if (m->host_memory) {
        memcpy(a0, m->step_inputs, bytes);
        return REMAT_OK;
    }
    /* Queued on the kernels' stream, so it follows the work that may still use this block's
     * previous life, without waiting for it. */
    m->k->upload(m->kc, a0, m->step_inputs, bytes);
    return m->k->check(m->kc);
}

/* The loss stage ignores its output gradient (it seeds 1/N itself), so d_L is simply zeroed. */
static remat_status gpt_cb_seed(void *ctx, void *d_last)
{
    gpt_model *m = ctx;
    m->k->zero(m->kc, d_last, m->loss_bytes);
    return REMAT_OK;
}

/* zero is NULL: every backward overwrites all of its din. */
const remat_callbacks gpt_callbacks = {
    .forward = gpt_cb_forward,
    .backward = gpt_cb_backward,
    .input = gpt_cb_input,
    .seed = gpt_cb_seed,
    .save_rng = NULL,
    .restore_rng = NULL,
    .zero = NULL,
};
